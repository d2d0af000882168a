//! Small syntax checks the spec rules need: Kubernetes names and label syntax, IP, email, URI and
//! URL shapes, base64 (Go's `[]byte` JSON encoding) and "contains a PEM certificate".
//!
//! Written by hand because core stays free of parsing dependencies beyond serde; each check
//! follows the rule cert-manager or Kubernetes applies (cited per function), not a stricter one,
//! so manifests that cert-manager accepts are accepted here.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

const NAME_CHARS: &str = "must consist of lower case alphanumeric characters, '-' or '.', \
and must start and end with an alphanumeric character";
const LABEL_CHARS: &str = "must consist of lower case alphanumeric characters or '-', \
and must start and end with an alphanumeric character";
const QUALIFIED_CHARS: &str = "must consist of alphanumeric characters, '-', '_' or '.', \
and must start and end with an alphanumeric character";

fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    let ok = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty()
        && b.len() <= 63
        && b.first().is_some_and(ok)
        && b.last().is_some_and(ok)
        && b.iter().all(|c| ok(c) || *c == b'-')
}

/// Kubernetes `IsDNS1123Subdomain`: object names (Secrets, Certificates) must be one.
pub fn check_dns_subdomain(s: &str) -> Result<(), &'static str> {
    if s.len() > 253 {
        return Err("must be no more than 253 characters");
    }
    if s.split('.').all(is_dns_label) {
        Ok(())
    } else {
        Err(NAME_CHARS)
    }
}

/// Kubernetes `IsDNS1123Label`: namespace names must be one.
pub fn check_dns_label(s: &str) -> Result<(), &'static str> {
    if s.len() > 63 {
        return Err("must be no more than 63 characters");
    }
    if is_dns_label(s) { Ok(()) } else { Err(LABEL_CHARS) }
}

/// Kubernetes `IsConfigMapKey`, the rule for Secret `data` keys: at most 253 characters of
/// `[-._a-zA-Z0-9]`, and not `.`, `..` or anything starting with `..`.
pub fn check_secret_key(s: &str) -> Result<(), &'static str> {
    if s.len() > 253 {
        return Err("must be no more than 253 characters");
    }
    if s.is_empty()
        || !s
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
    {
        return Err("must consist of alphanumeric characters, '-', '_' or '.'");
    }
    if s == "." {
        return Err("must not be '.'");
    }
    if s.starts_with("..") {
        return Err("must not be '..' or start with '..'");
    }
    Ok(())
}

/// A character of a Vault path segment: what Vault's names allow (its `GenericNameRegex`). The
/// one rule for validation here and for the Vault client that builds request URLs.
pub fn is_vault_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

/// A Vault API path taken from a manifest (`spec.vault.path`, login mount paths): a path only,
/// appended to the server address. Every segment must be made of the characters Vault's names
/// use (`[A-Za-z0-9_.-]`, its `GenericNameRegex`; the Vault client applies the same rule when it
/// builds a request), so a scheme, `//host`, a query, a fragment, escapes, backslashes or
/// whitespace are refused rather than encoded. Empty and `.` segments are allowed (cert-manager
/// cleans them with Go's `path.Join`), `..` is not.
pub fn check_vault_path(s: &str) -> Result<(), &'static str> {
    if s.starts_with("//") || s.contains("://") {
        return Err("must be a path, not a URL (the server is set in spec.vault.server)");
    }
    for segment in s.split('/') {
        if segment == ".." {
            return Err("must not contain '..' path segments");
        }
        match segment.chars().find(|c| !is_vault_name_char(*c)) {
            None => {}
            Some(':') => return Err("must be a path, not a URL (the server is set in spec.vault.server)"),
            Some('?' | '#') => return Err("must be a path: no '?' query or '#' fragment"),
            Some(_) => return Err("Vault paths use letters, digits, '_', '-' and '.' between '/'"),
        }
    }
    Ok(())
}

/// Audiences for which a ServiceAccount token would be accepted by the Kubernetes API server
/// itself under the defaults of common distributions (`--api-audiences` defaults to the
/// service-account issuer, `https://kubernetes.default.svc[.cluster.local]` in kubeadm, kind,
/// EKS; k3s and RKE2 add their own names). A token minted for an Issuer must never be one of
/// these: whoever runs the Issuer's `server` could use it against the cluster. The controller
/// adds the audiences of the cluster it runs in (see its token source) to this static list.
pub fn is_kubernetes_api_audience(audience: &str) -> bool {
    let lower = audience.trim().to_ascii_lowercase();
    let host = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
        .unwrap_or(&lower);
    let host = host.split(['/', ':']).next().unwrap_or_default();
    host == "kubernetes"
        || host == "kubernetes.default"
        || host.starts_with("kubernetes.default.svc")
        || matches!(lower.as_str(), "k3s" | "rke2" | "api")
}

fn is_qualified_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// Kubernetes `IsQualifiedName`: label and annotation keys, `[prefix/]name`.
pub fn check_qualified_name(s: &str) -> Result<(), &'static str> {
    let (prefix, name) = match s.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, s),
    };
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            return Err("prefix part must not be empty");
        }
        check_dns_subdomain(prefix).map_err(|_| "prefix part must be a DNS subdomain")?;
    }
    if name.len() > 63 {
        return Err("name part must be no more than 63 characters");
    }
    if is_qualified_part(name) {
        Ok(())
    } else {
        Err(QUALIFIED_CHARS)
    }
}

/// Kubernetes `IsValidLabelValue`: empty, or a qualified name part of at most 63 characters.
pub fn check_label_value(s: &str) -> Result<(), &'static str> {
    if s.len() > 63 {
        return Err("must be no more than 63 characters");
    }
    if s.is_empty() || is_qualified_part(s) {
        Ok(())
    } else {
        Err(QUALIFIED_CHARS)
    }
}

/// An `addr-spec` only (`user@example.com`), as cert-manager's webhook requires: it parses with
/// Go's `mail.ParseAddress` and rejects values where the parsed address differs from the input,
/// so display names (`Jane <jane@example.com>`) and quoted local parts (Go's address drops the
/// quotes) are refused. A domain literal is accepted when it holds an IPv4 address
/// (`ops@[192.0.2.1]`), which every Go release with domain literals (1.23 on; cert-manager
/// builds with 1.26) accepts unchanged.
pub fn check_email(s: &str) -> Result<(), &'static str> {
    let (local, domain) = s.rsplit_once('@').ok_or("missing '@'")?;
    check_dot_atom(local).map_err(|e| if local.is_empty() { "empty local part" } else { e })?;
    if let Some(literal) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
        return literal
            .parse::<std::net::Ipv4Addr>()
            .map(|_| ())
            .map_err(|_| "a domain literal must hold an IPv4 address");
    }
    check_dot_atom(domain).map_err(|e| if domain.is_empty() { "empty domain" } else { e })
}

fn check_dot_atom(s: &str) -> Result<(), &'static str> {
    // RFC 5322 atext, plus UTF-8 as Go accepts it (RFC 6532).
    let atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii();
    if s.is_empty() || s.split('.').any(str::is_empty) {
        return Err("misplaced '.'");
    }
    if s.chars()
        .all(|c| c == '.' || (atext(c) && !c.is_whitespace() && !c.is_control()))
    {
        Ok(())
    } else {
        Err("invalid character")
    }
}

/// A URI as certkeeper writes it into the CSR: byte for byte as the spec has it. cert-manager's
/// webhook checks nothing; its controller parses each URI with Go's `url.Parse` and writes
/// `url.String()`, so a URI Go refuses fails the Certificate's request, and one Go rewrites
/// (escaping) reaches the CSR changed. This accepts the URIs for which both give the same
/// bytes: printable ASCII without spaces or the characters Go escapes, `%` only before two hex
/// digits, and a colon before the first `/` only after a valid scheme (`foo.bar`,
/// `spiffe://cluster.local/ns/x`, `urn:uuid:...`). Others fail the Certificate when its job is
/// built, not at validation.
pub fn check_uri(s: &str) -> Result<(), &'static str> {
    if let Some(c) = s.bytes().find(|c| !c.is_ascii_graphic()) {
        return Err(if c.is_ascii_whitespace() || c.is_ascii_control() {
            "must not contain spaces or control characters"
        } else {
            "must be ASCII"
        });
    }
    if s.bytes()
        .any(|c| matches!(c, b'"' | b'<' | b'>' | b'\\' | b'^' | b'`' | b'{' | b'|' | b'}'))
    {
        return Err("must not contain characters a URL escapes (\" < > \\ ^ ` { | })");
    }
    let bytes = s.as_bytes();
    for (i, _) in s.match_indices('%') {
        let hex = |j: usize| bytes.get(j).is_some_and(u8::is_ascii_hexdigit);
        if !hex(i + 1) || !hex(i + 2) {
            return Err("'%' must start a %XX escape");
        }
    }
    let first_segment = s.split(['/', '?', '#']).next().unwrap_or_default();
    if let Some((scheme, _)) = first_segment.split_once(':') {
        let mut chars = scheme.chars();
        let scheme_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if !scheme_ok {
            return Err("a colon before the first '/' must follow a valid scheme");
        }
    }
    // Go checks the port of an authority (`scheme://host:port/...`): digits only.
    if let Some((_, rest)) = s.split_once("://") {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
        let port = match host_port.rsplit_once(']') {
            Some((_, after)) => after.strip_prefix(':'),
            None => host_port.rsplit_once(':').map(|(_, port)| port),
        };
        if port.is_some_and(|p| !p.bytes().all(|c| c.is_ascii_digit())) {
            return Err("the port must be a number");
        }
    }
    Ok(())
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard padded base64, as Go's `encoding/json` decodes a `[]byte` field (`StdEncoding`,
/// which skips `\r` and `\n`). Unpadded input is an error there too.
pub fn decode_base64(text: &str) -> Result<Vec<u8>, &'static str> {
    let bytes: Vec<u8> = text.bytes().filter(|b| !matches!(b, b'\r' | b'\n')).collect();
    if !bytes.len().is_multiple_of(4) {
        return Err("length is not a multiple of 4 (missing padding?)");
    }
    let value = |c: u8| ALPHABET.iter().position(|&a| a == c).map(|v| v as u32);
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    let quads = bytes.len() / 4;
    for (i, quad) in bytes.chunks_exact(4).enumerate() {
        let padding = quad.iter().rev().take_while(|&&c| c == b'=').count();
        if padding > 2 || (padding > 0 && i + 1 != quads) {
            return Err("misplaced '=' padding");
        }
        let mut n = 0u32;
        for &c in &quad[..4 - padding] {
            n = (n << 6) | value(c).ok_or("invalid character")?;
        }
        n <<= 6 * padding as u32;
        let [_, a, b, c] = n.to_be_bytes();
        out.extend_from_slice(&[a, b, c][..3 - padding]);
    }
    Ok(out)
}

/// Standard padded base64 encoding (the inverse of [`decode_base64`]).
pub fn encode_base64(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let mut n = 0u32;
        for (i, &b) in chunk.iter().enumerate() {
            n |= u32::from(b) << (16 - 8 * i);
        }
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Whether `pem` holds at least one parseable `CERTIFICATE` block, the test cert-manager's
/// webhook applies to `caBundle` (Go's `CertPool.AppendCertsFromPEM`: other block types and
/// unparseable certificates are skipped; a malformed block ends the scan).
pub fn pem_has_certificate(pem: &[u8]) -> bool {
    for block in x509_parser::pem::Pem::iter_from_buffer(pem) {
        let Ok(block) = block else { return false };
        if block.label == "CERTIFICATE" && block.parse_x509().is_ok() {
            return true;
        }
    }
    false
}

/// A Go `[]byte` field: base64 text in YAML/JSON, bytes in Rust. Decoding fails, with the
/// field's path, on text that is not standard padded base64.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Base64Bytes(pub Vec<u8>);

impl fmt::Debug for Base64Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Base64Bytes({} bytes)", self.0.len())
    }
}

impl Serialize for Base64Bytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&encode_base64(&self.0))
    }
}

impl<'de> Deserialize<'de> for Base64Bytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        decode_base64(&text)
            .map(Base64Bytes)
            .map_err(|reason| serde::de::Error::custom(format_args!("invalid base64: {reason}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn kubernetes_names() {
        assert!(check_dns_subdomain("web-tls.example").is_ok());
        for bad in ["Web", "-web", "web-", "a..b", "a_b", ""] {
            assert!(check_dns_subdomain(bad).is_err(), "{bad}");
        }
        assert!(check_dns_subdomain(&"a".repeat(254)).is_err());
        assert!(check_dns_label("sandbox").is_ok());
        assert!(check_dns_label("a.b").is_err());
        assert!(check_qualified_name("app.kubernetes.io/name").is_ok());
        assert!(check_qualified_name("Team_Name").is_ok());
        for bad in ["/x", "a/b/c", "Bad_Prefix/x", "-x", ""] {
            assert!(check_qualified_name(bad).is_err(), "{bad}");
        }
        assert!(check_label_value("").is_ok());
        assert!(check_label_value("v1.2_x").is_ok());
        assert!(check_label_value("no spaces").is_err());
    }

    #[test]
    fn emails_and_uris() {
        assert!(check_email("ops+certs@example.com").is_ok());
        assert!(check_email("ops@[192.0.2.1]").is_ok());
        assert!(check_email("ops@[IPv6:::1]").is_err());
        assert!(check_email("ops@[example.com]").is_err());
        assert!(check_email("\"ops\"@example.com").is_err());
        for bad in [
            "Ops <ops@example.com>",
            "ops",
            "@example.com",
            "ops@",
            "a..b@x",
            "a b@x",
        ] {
            assert!(check_email(bad).is_err(), "{bad}");
        }
        for good in [
            "spiffe://cluster.local/ns/default/sa/web",
            "urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66",
            "foo.bar",
            "cluster.local/web",
            "spiffe:",
            "a/b:c",
            "https://x/%41",
            "https://[::1]:8200/x",
            "x://a:/b",
        ] {
            assert!(check_uri(good).is_ok(), "{good}");
        }
        for bad in [
            "1x://a",
            ":x",
            "spiffe://a b",
            "spiffe://a/\u{e9}",
            "x://a/{b}",
            "x://a/%4",
            "\u{7}",
            "x://a:port/b",
        ] {
            assert!(check_uri(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn base64_like_go_std_encoding() {
        assert_eq!(decode_base64("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(decode_base64("aGVs\nbG8=\r\n").unwrap(), b"hello");
        assert_eq!(decode_base64("").unwrap(), b"");
        assert!(decode_base64("aGVsbG8").is_err());
        assert!(decode_base64("aG=sbG8=").is_err());
        assert!(decode_base64("aGVsbG8=aGVs").is_err());
        assert!(decode_base64("aGVs*G8=").is_err());
    }

    proptest! {
        #[test]
        fn base64_round_trip(data in prop::collection::vec(any::<u8>(), 0..100)) {
            prop_assert_eq!(decode_base64(&encode_base64(&data)), Ok(data));
        }
    }
}
