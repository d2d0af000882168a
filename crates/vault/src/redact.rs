//! What of a Vault answer may appear in an error.
//!
//! Errors reach logs, the state database and the status API, so they are written for readers who
//! must never see a token. This module is the one place that decides how a body is shown:
//! answers that can carry a token (logins, token renew and lookup, anything under `auth/`) are
//! never quoted, only described by size and the kind of problem; every other excerpt goes through
//! [`redact`] first, which removes the values of secret-named keys, bare Vault/OpenBao token
//! shapes and PEM private-key blocks, wherever the text was cut.

use std::fmt;

use crate::error::Operation;
use crate::path::ApiPath;

/// How many characters of a body an error quotes.
pub(crate) const BODY_SNIPPET: usize = 200;
/// How many bytes of a body are looked at to build the quote (flattening whitespace shrinks it).
const BODY_WINDOW: usize = BODY_SNIPPET * 4;
/// What replaces a secret value.
const REDACTED: &str = "<redacted>";
const REDACTED_KEY: &str = "<redacted private key>";

/// Whether an answer's body may be quoted in an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyPolicy {
    /// The answer can carry a token: describe it without content.
    Withhold,
    /// Quote a bounded excerpt, redacted.
    Quote,
}

impl BodyPolicy {
    /// The one decision of whether an answer may be quoted. Logins and token renew/lookup
    /// answers carry the token (`auth.client_token`, lookup's `data.id`); so can anything else
    /// under `auth/` and response-wrapping answers (`sys/wrapping/*`), whatever the operation.
    pub(crate) fn for_request(op: Operation, path: &ApiPath) -> BodyPolicy {
        let auth_op = matches!(
            op,
            Operation::Login | Operation::RenewToken | Operation::LookupToken | Operation::RevokeToken
        );
        if auth_op || path.is_under(&["auth"]) || path.is_under(&["sys", "wrapping"]) {
            BodyPolicy::Withhold
        } else {
            BodyPolicy::Quote
        }
    }
}

/// A body as an error shows it: a redacted excerpt, or only its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyExcerpt {
    /// A bounded excerpt that went through [`redact`].
    Quoted(String),
    /// An answer that can carry a token; only its size is kept.
    Withheld { bytes: usize },
}

impl BodyExcerpt {
    fn is_empty(&self) -> bool {
        matches!(self, BodyExcerpt::Quoted(s) if s.is_empty())
            || matches!(self, BodyExcerpt::Withheld { bytes: 0 })
    }
}

impl fmt::Display for BodyExcerpt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyExcerpt::Quoted(text) => f.write_str(text),
            BodyExcerpt::Withheld { bytes } => {
                write!(f, "answer of {bytes} bytes (not shown: it may carry a token)")
            }
        }
    }
}

/// The excerpt of a non-JSON answer body an error may carry; `None` for an empty body.
pub(crate) fn quote_body(bytes: &[u8], policy: BodyPolicy) -> Option<BodyExcerpt> {
    let excerpt = match policy {
        BodyPolicy::Withhold => BodyExcerpt::Withheld { bytes: bytes.len() },
        BodyPolicy::Quote => {
            // Redact before cutting to the quoted length, so that a secret straddling the cut
            // is recognised whole; the window's own cut is handled by `redact`'s end-of-text rules.
            let window = String::from_utf8_lossy(&bytes[..bytes.len().min(BODY_WINDOW)]);
            let clean = redact(&window);
            let flat: String = clean.split_whitespace().collect::<Vec<_>>().join(" ");
            let mut out: String = flat
                .chars()
                .filter(|c| !c.is_control())
                .take(BODY_SNIPPET)
                .collect();
            if flat.chars().count() > BODY_SNIPPET || bytes.len() > BODY_WINDOW {
                out.push_str("...");
            }
            BodyExcerpt::Quoted(out)
        }
    };
    (!excerpt.is_empty()).then_some(excerpt)
}

/// Why a body could not be decoded as the JSON expected, for an error's reason. Under
/// [`BodyPolicy::Withhold`] neither serde's message (it quotes offending values, e.g. `invalid
/// type: string "hvs..."`) nor the body appears: only the kind of problem, where and the size.
pub(crate) fn json_problem(err: &serde_json::Error, bytes: &[u8], policy: BodyPolicy) -> String {
    match policy {
        BodyPolicy::Withhold => {
            let what = match err.classify() {
                serde_json::error::Category::Syntax => "is not valid JSON",
                serde_json::error::Category::Eof => "is truncated JSON",
                serde_json::error::Category::Data => "is JSON of an unexpected shape",
                serde_json::error::Category::Io => "could not be read",
            };
            format!(
                "answer {what} (line {}, column {}; {} bytes, not shown: it may carry a token)",
                err.line(),
                err.column(),
                bytes.len()
            )
        }
        BodyPolicy::Quote => {
            let mut reason = format!("body is not the expected JSON ({})", redact(&err.to_string()));
            if let Some(excerpt) = quote_body(bytes, policy) {
                reason.push_str(": ");
                reason.push_str(&excerpt.to_string());
            }
            reason
        }
    }
}

/// `text` with secrets replaced by `<redacted>`:
/// - the value after a secret-named key (`client_token`, `token`, `accessor`, `secret_id`,
///   `private_key`, `password`, `jwt`, `id`, ...) and `:` or `=`, quoted or not, escaped or not
///   (JSON inside a JSON string), up to its end or the end of the text;
/// - bare token shapes: `hvs.`, `hvb.`, `hvr.` followed by token characters, `s.`, `b.`, `r.`
///   followed by at least [`SHORT_PREFIX_MIN`] of them (or cut by the end of the text), and
///   JWT-shaped runs (`eyJ...`);
/// - PEM private-key blocks, up to their END line or the end of the text.
///
/// Over-redaction is accepted: an error that hides a harmless identifier is still useful, one
/// that shows a token is a leak.
pub(crate) fn redact(text: &str) -> String {
    let text = redact_pem_keys(text);
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < b.len() {
        if !is_ident(b[i]) {
            i += 1;
            continue;
        }
        let end = run_end(b, i, is_ident);
        let name = &text[i..end];
        if is_secret_key(name)
            && let Some((from, to)) = value_after(b, end)
        {
            out.push_str(&text[copied..from]);
            out.push_str(REDACTED);
            copied = to;
            i = to;
            continue;
        }
        if let Some((from, to)) = token_shape(b, i, end) {
            out.push_str(&text[copied..from]);
            out.push_str(REDACTED);
            copied = to;
            i = to;
            continue;
        }
        i = end;
    }
    out.push_str(&text[copied..]);
    out
}

/// Minimum run after a one-letter prefix (`s.`, `b.`, `r.`) for it to count as a token: legacy
/// service tokens have 24 characters; shorter runs are ordinary words ("items.a", "b.example").
const SHORT_PREFIX_MIN: usize = 16;
/// Minimum length of a JWT-shaped run (`eyJ` + base64url header).
const JWT_MIN: usize = 16;

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-'
}

fn run_end(b: &[u8], from: usize, pred: impl Fn(u8) -> bool) -> usize {
    b[from..]
        .iter()
        .position(|&c| !pred(c))
        .map_or(b.len(), |n| from + n)
}

fn is_secret_key(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    // `id`: `auth/token/lookup-self` answers carry the token itself as `data.id`.
    name == "id"
        || name == "jwt"
        || ["token", "secret", "accessor", "password", "private_key", "hmac"]
            .iter()
            .any(|k| name.contains(k))
}

/// The byte range of the value following a key ending at `at`: separators (quotes, escapes,
/// spaces) with one `:` or `=` among them, then a quoted value up to its closing quote (escapes
/// honoured, so an escaped quote over-redacts rather than ending early) or a bare value of at
/// least [`BARE_VALUE_MIN`] characters up to a delimiter. `None` when no value follows (the name
/// was a word in prose, not a key) or the value is an object or array, whose own keys are
/// examined one by one.
fn value_after(b: &[u8], at: usize) -> Option<(usize, usize)> {
    let mut i = at;
    let mut separated = false;
    let mut quoted = false;
    while i < b.len() {
        match b[i] {
            b':' | b'=' if !separated => separated = true,
            b'"' | b'\'' if separated => quoted = true,
            b'"' | b'\'' | b'\\' | b' ' | b'\t' | b'\r' | b'\n' => {}
            _ => break,
        }
        i += 1;
    }
    if !separated || matches!(b.get(i), Some(b'{' | b'[')) {
        return None;
    }
    let start = i;
    if quoted {
        while i < b.len() {
            match b[i] {
                b'\\' => i += 2,
                b'"' | b'\'' => break,
                _ => i += 1,
            }
        }
        return Some((start, i.min(b.len())));
    }
    let end = run_end(b, i, |c| {
        !matches!(
            c,
            b',' | b'}' | b']' | b'"' | b'&' | b';' | b' ' | b'\t' | b'\r' | b'\n'
        )
    });
    (end - start >= BARE_VALUE_MIN).then_some((start, end))
}

/// A bare (unquoted) value shorter than this after a secret-named key is prose, not a secret:
/// "error validating token: token is expired" keeps its words.
const BARE_VALUE_MIN: usize = 8;

/// The byte range of a bare token whose first identifier run is `start..run`.
fn token_shape(b: &[u8], start: usize, run: usize) -> Option<(usize, usize)> {
    let word = &b[start..run];
    if word.starts_with(b"eyJ") {
        // A JWT: base64url parts joined by dots.
        let end = run_end(b, start, |c| is_ident(c) || c == b'.');
        return (end - start >= JWT_MIN).then_some((start, end));
    }
    if b.get(run) != Some(&b'.') {
        return None;
    }
    let body_end = run_end(b, run + 1, is_ident);
    let len = body_end - (run + 1);
    if len == 0 {
        return None;
    }
    // The three-letter prefixes are distinctive enough to be found glued to other characters
    // (a garbled body); the one-letter ones only as a word of their own.
    for prefix in [&b"hvs"[..], b"hvb", b"hvr"] {
        if word.ends_with(prefix) {
            return Some((run - prefix.len(), body_end));
        }
    }
    let cut_by_end = body_end == b.len();
    (matches!(word, b"s" | b"b" | b"r") && (len >= SHORT_PREFIX_MIN || cut_by_end))
        .then_some((start, body_end))
}

/// Replace every `-----BEGIN ... PRIVATE KEY-----` block, up to its END line or the end of
/// the text (a body cut inside the key).
fn redact_pem_keys(text: &str) -> String {
    const BEGIN: &str = "-----BEGIN ";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find(BEGIN) {
        let after = &rest[pos + BEGIN.len()..];
        // A text that ends inside the BEGIN line holds nothing of the key yet.
        let Some(label_end) = after
            .find("-----")
            .filter(|&n| after[..n].ends_with("PRIVATE KEY"))
        else {
            out.push_str(&rest[..pos + BEGIN.len()]);
            rest = after;
            continue;
        };
        out.push_str(&rest[..pos]);
        out.push_str(REDACTED_KEY);
        let body = &after[label_end + 5..];
        rest = match body.find("-----END ") {
            Some(end) => {
                let tail = &body[end + "-----END ".len()..];
                tail.find("-----").map_or("", |n| &tail[n + 5..])
            }
            None => "",
        };
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HVS: &str = "hvs.CAESIJ3u4B1mX9dZr7kq0v8Wc2YtPpLqN5aGhTfR2xUeKoMzGh4KHGh2cy5XbmNsQ2R2Yk1PZ3pYbk1Q";
    const LEGACY: &str = "s.Xk3v9QpL2mN8rT5wY7zA1bC4";

    fn quoted(body: &str) -> String {
        match quote_body(body.as_bytes(), BodyPolicy::Quote) {
            Some(BodyExcerpt::Quoted(s)) => s,
            other => panic!("expected a quote, got {other:?}"),
        }
    }

    fn assert_clean(out: &str, secrets: &[&str]) {
        for s in secrets {
            // Any 8-character piece of a secret is a leak, not only the whole of it.
            let chars: Vec<char> = s.chars().collect();
            for w in chars.windows(8) {
                let piece: String = w.iter().collect();
                assert!(!out.contains(&piece), "{piece:?} of a secret leaked in {out:?}");
            }
        }
    }

    #[test]
    fn hostile_json_secret_values_are_redacted() {
        let body = format!(
            r#"{{"request_id":"r1","auth":{{"client_token":"{HVS}","accessor":"Zq8mV3xR7tB2nK5pW9yC1dF4","policies":["default"]}},"data":{{"secret_id":"6f1c7d2e-9a4b-4c3d-8e5f-1a2b3c4d5e6f","password":"hunter2\"x y","token":"{LEGACY}","private_key":"k"}}}}"#
        );
        let out = redact(&body);
        assert_clean(
            &out,
            &[
                HVS,
                LEGACY,
                "Zq8mV3xR7tB2nK5pW9yC1dF4",
                "6f1c7d2e-9a4b-4c3d",
                "hunter2\"x y",
            ],
        );
        assert!(out.contains(r#""policies":["default"]"#), "{out}");
        assert!(out.contains(r#""request_id":"r1""#), "{out}");
    }

    #[test]
    fn hostile_nested_and_escaped_json_is_redacted() {
        // An error string carrying a JSON answer: every quote is escaped.
        let body = format!(r#"{{"errors":["upstream said: {{\"auth\":{{\"client_token\":\"{HVS}\"}}}}"]}}"#);
        assert_clean(&redact(&body), &[HVS]);
        // Pretty-printed, with spaces around the colon.
        let pretty = format!("{{\n  \"auth\": {{\n    \"client_token\" :  \"{LEGACY}\"\n  }}\n}}");
        assert_clean(&redact(&pretty), &[LEGACY]);
        // Form and header spellings.
        assert_clean(&redact(&format!("token={LEGACY}&x=1")), &[LEGACY]);
        assert_clean(&redact(&format!("X-Vault-Token: {HVS}")), &[HVS]);
    }

    #[test]
    fn hostile_bare_token_shapes_are_redacted_anywhere() {
        for token in [
            HVS,
            "hvb.AAAAAQKp3nZ8dW4kLmN7oQrStUvWxYz0123456789abcdefABCDEF",
            "hvr.Q2x5bmRlbnRpYWw",
            LEGACY,
            "b.AAAAAQJ3k4l5m6n7o8p9q0r1s2t3u4v5w6x7y8z9",
            "r.Kd83jd8Sk2lq0aPq9xZ3",
        ] {
            let text = format!("<html>garbage {token} more</html>");
            let out = redact(&text);
            assert_clean(&out, &[token]);
            assert!(
                out.starts_with("<html>garbage ") && out.ends_with(" more</html>"),
                "{out}"
            );
        }
        let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2EifQ.c2lnbmF0dXJlLXNpZ25hdHVyZQ";
        assert_clean(&redact(&format!("bad jwt {jwt}")), &[jwt]);
        // Glued to garbage by a corrupted body: the three-letter prefixes are still found.
        assert_clean(&redact(&format!("xq9{HVS}")), &[HVS]);
    }

    #[test]
    fn ordinary_text_is_kept() {
        for text in [
            "502 Bad Gateway nginx",
            "could not fetch the CA certificate (was one set?): no default issuer",
            "s.short items.a b.example.com",
            "error validating token: token is expired",
            "1 error occurred: permission denied",
            "the token is invalid",
        ] {
            assert_eq!(redact(text), text);
        }
    }

    #[test]
    fn hostile_body_cut_mid_token_is_redacted() {
        // The body itself ends inside the token (a connection cut, re-framed by a proxy).
        let full = format!(r#"{{"auth":{{"client_token":"{HVS}"#);
        let cut = &full[..full.find("hvs.").unwrap() + 8];
        assert!(cut.ends_with("hvs.CAES"), "{cut}");
        assert_clean(&quoted(cut), &["CAES"]);
        // Without the key: a bare token cut by the end of the text.
        assert_eq!(redact("trailing s.Xk3v"), "trailing <redacted>");
        assert_eq!(redact("trailing hvs.C"), "trailing <redacted>");
    }

    #[test]
    fn hostile_token_at_the_quote_boundary_is_redacted() {
        // Put the token so that the 200-character cut falls at every offset inside it.
        for lead in 150..=BODY_SNIPPET {
            let body = format!("{}{HVS} tail", ".".repeat(lead));
            let out = quoted(&body);
            assert_clean(&out, &[HVS]);
            assert!(out.chars().count() <= BODY_SNIPPET + 3, "{out}");
        }
        // And the 800-byte window: a body much longer than the quote, token straddling it.
        for lead in (BODY_WINDOW - 40)..BODY_WINDOW {
            let body = format!("{}\"client_token\":\"{LEGACY}\"", " ".repeat(lead));
            assert_clean(&quoted(&body), &[LEGACY]);
            let body = format!("{}{HVS}", " ".repeat(lead));
            assert_clean(&quoted(&body), &[HVS]);
        }
    }

    #[test]
    fn hostile_pem_private_keys_are_redacted() {
        let key = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAsecretkeymaterial\n-----END RSA PRIVATE KEY-----";
        let out = redact(&format!("before {key} after"));
        assert_eq!(out, "before <redacted private key> after");
        // Escaped in JSON, and cut before its END line.
        let json = r#"{"data":{"certificate":"-----BEGIN CERTIFICATE-----\nMIIBcert\n-----END CERTIFICATE-----","private_key":"-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIsecretkeymaterial"#;
        let out = redact(json);
        assert_clean(&out, &["MHcCAQEEIsecretkeymaterial"]);
        assert!(out.contains("MIIBcert"), "certificates are not secret: {out}");
        let bare = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49secretkeymaterial";
        assert_clean(
            &redact(bare),
            &["MIGHAgEAMBMGByqGSM49AgEGCCqGSM49secretkeymaterial"],
        );
    }

    #[test]
    fn hostile_withheld_bodies_say_only_their_size() {
        let body = format!(r#"{{"auth":{{"client_token":"{HVS}""#);
        let excerpt = quote_body(body.as_bytes(), BodyPolicy::Withhold).unwrap();
        assert_eq!(excerpt, BodyExcerpt::Withheld { bytes: body.len() });
        assert!(!excerpt.to_string().contains("hvs."), "{excerpt}");
        let err = serde_json::from_slice::<serde_json::Value>(body.as_bytes()).unwrap_err();
        let reason = json_problem(&err, body.as_bytes(), BodyPolicy::Withhold);
        assert!(
            reason.contains("truncated JSON") && reason.contains(&body.len().to_string()),
            "{reason}"
        );
        assert_clean(&reason, &[HVS]);
        // serde quotes offending values in its messages: never under Withhold.
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Shape {
            auth: u64,
        }
        let wrong = format!(r#"{{"auth":"{HVS}"}}"#);
        let err = serde_json::from_str::<Shape>(&wrong).unwrap_err();
        assert!(err.to_string().contains("hvs."), "serde quotes the value: {err}");
        assert_clean(
            &json_problem(&err, wrong.as_bytes(), BodyPolicy::Withhold),
            &[HVS],
        );
        // Under Quote, serde's message is redacted too.
        assert_clean(&json_problem(&err, wrong.as_bytes(), BodyPolicy::Quote), &[HVS]);
    }

    #[test]
    fn answers_that_can_carry_a_token_are_withheld() {
        let sign = ApiPath::parse("pki/sign/web").unwrap();
        let login = ApiPath::parse("auth/approle/login").unwrap();
        assert_eq!(BodyPolicy::for_request(Operation::Sign, &sign), BodyPolicy::Quote);
        assert_eq!(
            BodyPolicy::for_request(Operation::Health, &ApiPath::fixed("sys/health")),
            BodyPolicy::Quote
        );
        for op in [Operation::Login, Operation::RenewToken, Operation::LookupToken] {
            assert_eq!(BodyPolicy::for_request(op, &sign), BodyPolicy::Withhold, "{op}");
        }
        assert_eq!(
            BodyPolicy::for_request(Operation::Sign, &login),
            BodyPolicy::Withhold
        );
        let unwrap = ApiPath::fixed("sys/wrapping/unwrap");
        assert_eq!(
            BodyPolicy::for_request(Operation::Sign, &unwrap),
            BodyPolicy::Withhold
        );
    }

    #[test]
    fn snippets_are_flat_and_bounded() {
        let html = format!("<html>\n<body>\t502 Bad Gateway{}</body></html>", "x".repeat(500));
        let s = quoted(&html);
        assert!(s.starts_with("<html> <body> 502 Bad Gateway"));
        assert!(s.ends_with("...") && s.chars().count() == BODY_SNIPPET + 3);
        assert_eq!(quote_body(b"", BodyPolicy::Quote), None);
        assert_eq!(quote_body(b"", BodyPolicy::Withhold), None);
    }
}
