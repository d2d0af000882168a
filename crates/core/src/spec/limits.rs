//! Bounds checked on a manifest's bytes before the YAML parser sees them.
//!
//! The parser (serde_yaml_ng on libyaml) does work proportional to size times nesting depth
//! while scanning (each token revisits the simple-key state of every open flow level), and its
//! own recursion limit applies only when the scanned events are turned into values, after that
//! work is done: a 400 KB file of 100 000 nested flow mappings took 53 s. [`check_limits`] is a
//! single linear pass that bounds size, documents and nesting first.
//!
//! The depth counted is an upper bound of what the parser will see: flow collections (`[`, `{`
//! outside quoted scalars and comments) plus block levels (distinct indentation columns, and
//! compact `- - x` entries). Where the scan cannot tell (a quote that may be the continuation of a
//! plain scalar), it chooses the reading that counts more, so nothing can hide nesting from it;
//! the price is that odd text may count a level too many, which a limit far above any real
//! manifest absorbs.

/// The largest manifest file read (cert-manager objects are a few KB; a `kubectl get -o yaml`
/// list of a thousand Certificates is about 2 MiB).
pub const MAX_MANIFEST_BYTES: usize = 4 << 20;
/// The most documents (`---` separated) one file may hold.
pub const MAX_DOCUMENTS: usize = 5_000;
/// The deepest nesting accepted. A Certificate nests 6 levels, 8 inside a `kind: List`.
pub const MAX_DEPTH: usize = 64;

/// The most entries in one list of names that certkeeper puts into a CSR beyond the usual SANs
/// (`otherNames`, each `nameConstraints` list). cert-manager sets no bound; this one is far
/// above real use and keeps a CSR within what Vault and TLS stacks take.
pub const MAX_NAME_LIST_ENTRIES: usize = 1024;
/// The longest `literalSubject` and `otherNames[].utf8Value`, in bytes (the same reasoning).
pub const MAX_NAME_VALUE_BYTES: usize = 64 << 10;

/// The most `spec.renewal.windows` one Certificate may list. cert-manager sets no bound; every
/// renewal decision searches each window, so the count is bounded far above real use.
pub const MAX_RENEWAL_WINDOWS: usize = 32;
/// The longest `spec.renewal.windows[].cron`, in bytes (a five-field expression with lists is
/// rarely above 100).
pub const MAX_CRON_BYTES: usize = 256;
/// The longest `spec.renewal.windows[].timezone`, in bytes (the longest IANA name is about 32).
pub const MAX_TIMEZONE_BYTES: usize = 64;

/// A manifest rejected before parsing, naming the limit it exceeds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("file is {size} bytes, more than the limit of {max} bytes")]
    TooLarge { size: u64, max: usize },
    #[error("more than {max} documents in one file (the limit)")]
    TooManyDocuments { max: usize },
    #[error("nesting deeper than {max} levels at line {line} (the limit)")]
    TooDeep { max: usize, line: usize },
}

/// Checks `text` against [`MAX_MANIFEST_BYTES`], [`MAX_DOCUMENTS`] and [`MAX_DEPTH`] in one
/// pass, without parsing it.
pub fn check_limits(text: &str) -> Result<(), LimitError> {
    if text.len() > MAX_MANIFEST_BYTES {
        return Err(LimitError::TooLarge {
            size: text.len() as u64,
            max: MAX_MANIFEST_BYTES,
        });
    }
    let mut scan = Scan::default();
    for (index, line) in text.split('\n').enumerate() {
        scan.line(line.as_bytes(), index + 1)?;
    }
    Ok(())
}

#[derive(Default)]
struct Scan {
    documents: usize,
    /// Open flow collections.
    flow: usize,
    /// Columns of open block nodes, strictly increasing.
    indents: Vec<usize>,
    /// Inside a quoted scalar (the quote byte) carried over from an earlier line.
    quote: Option<u8>,
    /// Inside a block scalar (`|`, `>`) whose parent is at this indentation.
    block_scalar: Option<usize>,
    /// The previous block line ended inside a plain scalar, which a more indented line continues.
    plain_open: bool,
    /// In flow context, whether the next non-space byte starts a node (carried over lines).
    flow_node_start: bool,
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t' || b == b'\r'
}

impl Scan {
    fn depth_check(&self, line: usize) -> Result<(), LimitError> {
        if self.indents.len() + self.flow > MAX_DEPTH {
            return Err(LimitError::TooDeep { max: MAX_DEPTH, line });
        }
        Ok(())
    }

    fn line(&mut self, bytes: &[u8], number: usize) -> Result<(), LimitError> {
        let indent = bytes.iter().take_while(|&&b| b == b' ').count();
        let rest = &bytes[indent..];
        let blank = rest.iter().all(|&b| is_blank(b));
        if let Some(parent) = self.block_scalar {
            if blank || indent > parent {
                return Ok(());
            }
            self.block_scalar = None;
        }
        let mut start = 0;
        let mut node_start = self.flow_node_start;
        if self.quote.is_none() && self.flow == 0 {
            if bytes.starts_with(b"---") && bytes.get(3).is_none_or(|&b| is_blank(b)) {
                self.documents += 1;
                if self.documents > MAX_DOCUMENTS {
                    return Err(LimitError::TooManyDocuments { max: MAX_DOCUMENTS });
                }
                self.indents.clear();
                self.plain_open = false;
                start = 3;
                node_start = true;
            } else if bytes.starts_with(b"...") && bytes.get(3).is_none_or(|&b| is_blank(b)) {
                self.indents.clear();
                self.plain_open = false;
                return Ok(());
            } else if blank || rest.first() == Some(&b'#') || bytes.first() == Some(&b'%') {
                return Ok(());
            } else {
                // A more indented line after an unfinished plain scalar continues it: a quote
                // there is text, not the start of a quoted scalar.
                let parent = self.indents.last().copied();
                let continuation = self.plain_open && parent.is_some_and(|p| indent > p);
                while self.indents.last().is_some_and(|&top| top > indent) {
                    self.indents.pop();
                }
                if self.indents.last().is_none_or(|&top| top < indent) {
                    self.indents.push(indent);
                }
                self.depth_check(number)?;
                start = indent;
                node_start = !continuation;
            }
        }
        self.content(bytes, start, node_start, number)
    }

    /// Scans one line's bytes from `i`; `node_start`: a node may begin at the next non-space.
    fn content(
        &mut self,
        b: &[u8],
        mut i: usize,
        mut node_start: bool,
        number: usize,
    ) -> Result<(), LimitError> {
        let mut after_space = true;
        // The last token closed a quoted scalar or a flow collection: a `:` right after it is
        // an indicator even without a space (JSON style).
        let mut after_json_node = false;
        let mut plain = false;
        while i < b.len() {
            let c = b[i];
            if let Some(q) = self.quote {
                match (q, c) {
                    (b'"', b'\\') => i += 1,
                    (b'\'', b'\'') if b.get(i + 1) == Some(&b'\'') => i += 1,
                    (_, c) if c == q => {
                        self.quote = None;
                        node_start = false;
                        after_json_node = true;
                        plain = false;
                    }
                    _ => {}
                }
                i += 1;
                continue;
            }
            let next_blank = b.get(i + 1).is_none_or(|&n| is_blank(n));
            match c {
                c if is_blank(c) => {
                    after_space = true;
                    i += 1;
                    continue;
                }
                b'#' if after_space => break,
                b'"' | b'\'' if node_start => {
                    self.quote = Some(c);
                    plain = false;
                }
                b'[' | b'{' if node_start || self.flow > 0 => {
                    self.flow += 1;
                    self.depth_check(number)?;
                    node_start = true;
                    plain = false;
                }
                b']' | b'}' if self.flow > 0 => {
                    self.flow -= 1;
                    node_start = false;
                    after_json_node = true;
                    plain = false;
                }
                b',' if self.flow > 0 => {
                    node_start = true;
                    plain = false;
                }
                b':' if next_blank || (self.flow > 0 && after_json_node) => {
                    node_start = true;
                    plain = false;
                }
                b'-' | b'?' if node_start && next_blank => {
                    if self.flow == 0 {
                        // A compact nested node (`- - x`, `- key: v`) is one level deeper.
                        let child = i + 1 + b[i + 1..].iter().take_while(|&&n| n == b' ').count();
                        if self.indents.last().is_none_or(|&top| top < child) {
                            self.indents.push(child);
                            self.depth_check(number)?;
                        }
                    }
                    node_start = true;
                    plain = false;
                }
                b'&' | b'!' if node_start => {
                    // An anchor or tag: the node itself follows it.
                    while i < b.len() && !is_blank(b[i]) && !(self.flow > 0 && b",[]{}".contains(&b[i])) {
                        i += 1;
                    }
                    after_space = false;
                    continue;
                }
                b'|' | b'>' if node_start && self.flow == 0 => {
                    let header_end = b[i + 1..]
                        .iter()
                        .position(|&n| !(n.is_ascii_digit() || n == b'+' || n == b'-'))
                        .map_or(b.len(), |p| i + 1 + p);
                    let tail = &b[header_end..];
                    let ends_line = tail.iter().all(|&n| is_blank(n))
                        || tail.first().is_some_and(|&n| is_blank(n))
                            && tail.iter().find(|&&n| !is_blank(n)) == Some(&b'#');
                    if ends_line {
                        // Content is what is more indented than the innermost block level
                        // holding the indicator; taking the innermost (not the line's own
                        // indentation) never skips a line the parser reads as structure.
                        let parent = self.indents.iter().rev().find(|&&col| col <= i);
                        self.block_scalar = Some(parent.copied().unwrap_or(0));
                        self.plain_open = false;
                        return Ok(());
                    }
                    node_start = false;
                    plain = true;
                }
                _ => {
                    node_start = false;
                    plain = true;
                }
            }
            after_space = false;
            if !matches!(c, b']' | b'}' | b'"' | b'\'') {
                after_json_node = false;
            }
            i += 1;
        }
        self.flow_node_start = node_start;
        if self.flow == 0 && self.quote.is_none() {
            self.plain_open = plain;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth_error(text: &str) -> bool {
        matches!(check_limits(text), Err(LimitError::TooDeep { .. }))
    }

    #[test]
    fn hostile_deep_flow_nesting_is_rejected_before_parsing() {
        let text = format!("{}{}", "{a: ".repeat(100_000), "}".repeat(100_000));
        assert_eq!(
            check_limits(&text),
            Err(LimitError::TooDeep {
                max: MAX_DEPTH,
                line: 1
            })
        );
        assert!(depth_error(&"[".repeat(MAX_DEPTH + 1)));
        // The top-level node is one block level.
        let deepest = MAX_DEPTH - 1;
        assert_eq!(
            check_limits(&format!("{}{}", "[".repeat(deepest), "]".repeat(deepest))),
            Ok(())
        );
    }

    #[test]
    fn hostile_deep_block_nesting_is_rejected() {
        let compact = format!("{}x\n", "- ".repeat(MAX_DEPTH + 1));
        assert!(depth_error(&compact));
        let indented: String = (0..=MAX_DEPTH)
            .map(|d| format!("{}k{d}:\n", " ".repeat(d)))
            .collect();
        assert!(depth_error(&indented));
    }

    #[test]
    fn hostile_nesting_hidden_behind_quotes_comments_or_anchors_is_counted() {
        let deep = "{".repeat(MAX_DEPTH + 1);
        for text in [
            // A quote that is text inside a plain scalar continued on the next line.
            format!("a: foo\n  'x\nb: {deep}\n"),
            // A double-quoted scalar over two lines with " #" inside it.
            format!("a: [\"x\n # \", {deep}]\n"),
            // An anchor and a tag before the collection.
            format!("a: &x !!map {deep}\n"),
            // Closing brackets inside quotes do not close anything.
            format!("a: [{}{deep}]\n", "\"]]]]\", ".repeat(10)),
            format!("a: {}\n", "{\"}\": ".repeat(MAX_DEPTH + 1)),
        ] {
            assert!(depth_error(&text), "{text}");
        }
    }

    #[test]
    fn hostile_many_documents_and_large_files_are_rejected() {
        assert_eq!(
            check_limits(&"---\n".repeat(MAX_DOCUMENTS + 1)),
            Err(LimitError::TooManyDocuments { max: MAX_DOCUMENTS })
        );
        assert!(matches!(
            check_limits(&" ".repeat(MAX_MANIFEST_BYTES + 1)),
            Err(LimitError::TooLarge { .. })
        ));
    }

    #[test]
    fn real_manifests_pass() {
        let certificate = r#"# comment with { [ and "
apiVersion: cert-manager.io/v1
kind: Certificate
metadata:
  name: web
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: '{"apiVersion":"cert-manager.io/v1","spec":{"privateKey":{"size":256}}}'
    note: "braces { [ in text, it's fine"
    plain: a{b[c it's
spec:
  secretName: web-tls
  dnsNames: [a.example.com, "b.example.com"]
  privateKey: {algorithm: ECDSA, size: 256}
  keystores:
    pkcs12:
      create: true
      passwordSecretRef: {name: p12, key: password}
  secretTemplate:
    annotations:
      script: |
        {{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{
        [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[
  issuerRef:
    name: vault
---
apiVersion: v1
kind: List
items:
- apiVersion: cert-manager.io/v1
  kind: Certificate
  spec:
    usages:
    - server auth
    - - nested
"#;
        assert_eq!(check_limits(certificate), Ok(()));
        let many: String = (0..2000)
            .map(|i| {
                format!("---\nkind: Certificate\nmetadata: {{name: c{i}}}\nspec: {{dnsNames: [a, b]}}\n")
            })
            .collect();
        assert_eq!(check_limits(&many), Ok(()));
    }
}
