//! Request paths: the only way a path from configuration reaches a URL.
//!
//! The sign path (`spec.vault.path`) and auth mount paths come from manifests. Joined onto the
//! server URL with `Url::join`, an absolute URL (`https://evil/x`), a scheme-relative one
//! (`//evil/x`, `\\evil`) or dot segments replace the host or climb out of `/v1/`. So a path is
//! split into segments, each segment checked against the characters Vault names use, and the
//! request URL is built only by appending those segments to the configured server URL: scheme,
//! host and port can come from nowhere else. A path that does not pass is refused, not encoded.

use certkeeper_core::spec::is_vault_name_char;
use url::Url;

/// Why a request path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("is empty")]
    Empty,
    #[error("has an empty segment (\"//\" would start a host name)")]
    EmptySegment,
    #[error("has a {0:?} segment")]
    DotSegment(String),
    #[error("contains {0:?}; Vault paths use letters, digits, '_', '-' and '.' between '/'")]
    ForbiddenChar(char),
    #[error("{0:?} names no PKI mount before sign/, sign-verbatim or issuer/")]
    NotAPkiPath(String),
}

/// A validated path under `/v1/`, as segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiPath {
    segments: Vec<String>,
}

impl ApiPath {
    /// Split and check `raw`. One leading and one trailing `/` are accepted (cert-manager
    /// writes paths both ways); any other empty segment is refused.
    pub fn parse(raw: &str) -> Result<ApiPath, PathError> {
        let inner = raw.strip_prefix('/').unwrap_or(raw);
        let inner = inner.strip_suffix('/').unwrap_or(inner);
        if inner.is_empty() {
            return Err(PathError::Empty);
        }
        let mut segments = Vec::new();
        for segment in inner.split('/') {
            check_segment(segment)?;
            segments.push(segment.to_owned());
        }
        Ok(ApiPath { segments })
    }

    /// A path as configuration writes it (`pki/sign/web`, `/v1/pki/sign/web`): Vault's `v1`
    /// prefix, which cert-manager accepts, is dropped.
    pub fn parse_api(raw: &str) -> Result<ApiPath, PathError> {
        let mut path = ApiPath::parse(raw)?;
        if path.segments[0] == "v1" {
            path.segments.remove(0);
        }
        if path.segments.is_empty() {
            return Err(PathError::Empty);
        }
        Ok(path)
    }

    /// An auth mount in any of cert-manager's spellings (`approle`, `/v1/auth/kubernetes`,
    /// `auth/jwt/`) as the path under `/v1/`: `auth/<mount>`.
    pub fn auth_mount(raw: &str) -> Result<ApiPath, PathError> {
        let mut path = ApiPath::parse_api(raw)?;
        if path.segments[0] == "auth" {
            path.segments.remove(0);
        }
        if path.segments.is_empty() {
            return Err(PathError::Empty);
        }
        path.segments.insert(0, "auth".to_owned());
        Ok(path)
    }

    /// Vault's built-in paths, written in this crate.
    pub fn fixed(raw: &'static str) -> ApiPath {
        ApiPath {
            segments: raw.split('/').map(str::to_owned).collect(),
        }
    }

    /// This path with `segment` appended (`auth/approle` + `login`).
    pub fn child(&self, segment: &'static str) -> ApiPath {
        let mut segments = self.segments.clone();
        segments.push(segment.to_owned());
        ApiPath { segments }
    }

    /// Whether the path lies under `prefix` (`auth`, `sys/wrapping`), segment by segment.
    pub fn is_under(&self, prefix: &[&str]) -> bool {
        self.segments.len() >= prefix.len() && self.segments.iter().zip(prefix).all(|(s, p)| s == p)
    }

    /// `base` (the server's `/v1/` URL) with the segments appended. Every segment passed
    /// [`check_segment`], so appending cannot change the scheme, host or port, nor need escaping.
    pub fn url(&self, base: &Url) -> Url {
        let mut url = base.clone();
        url.set_query(None);
        url.set_fragment(None);
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(&self.segments);
        }
        url
    }
}

impl std::fmt::Display for ApiPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.segments.join("/"))
    }
}

/// Characters of Vault mount, role and issuer names (its `GenericNameRegex` is `\w[\w-.]*`).
/// Anything else (':', '\\', '%', '?', '#', '@', spaces, control characters) is refused: each
/// could change how the URL is read, and none appears in a real mount or role name.
fn check_segment(segment: &str) -> Result<(), PathError> {
    if segment.is_empty() {
        return Err(PathError::EmptySegment);
    }
    if segment == "." || segment == ".." {
        return Err(PathError::DotSegment(segment.to_owned()));
    }
    match segment.chars().find(|c| !is_vault_name_char(*c)) {
        Some(c) => Err(PathError::ForbiddenChar(c)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Url {
        Url::parse("https://vault.example:8200/v1/").unwrap()
    }

    #[test]
    fn vault_paths_append_to_the_base() {
        for (raw, want) in [
            (
                "pki_int/sign/web",
                "https://vault.example:8200/v1/pki_int/sign/web",
            ),
            (
                "/pki/issuer/default/sign/web/",
                "https://vault.example:8200/v1/pki/issuer/default/sign/web",
            ),
            (
                "auth/my.approle-1/login",
                "https://vault.example:8200/v1/auth/my.approle-1/login",
            ),
        ] {
            assert_eq!(ApiPath::parse(raw).unwrap().url(&base()).as_str(), want, "{raw}");
        }
        let nested = Url::parse("https://lb.example/vault/v1/").unwrap();
        assert_eq!(
            ApiPath::fixed("sys/health").url(&nested).as_str(),
            "https://lb.example/vault/v1/sys/health"
        );
        assert!(ApiPath::parse("auth/approle/login").unwrap().is_under(&["auth"]));
        assert!(!ApiPath::parse("pki/sign/auth").unwrap().is_under(&["auth"]));
    }

    #[test]
    fn mounts_and_sign_paths_in_every_spelling() {
        for (input, want) in [
            ("approle", "auth/approle"),
            ("/v1/auth/kubernetes", "auth/kubernetes"),
            ("v1/auth/kubernetes/", "auth/kubernetes"),
            ("auth/jwt", "auth/jwt"),
            ("my/nested/approle", "auth/my/nested/approle"),
        ] {
            assert_eq!(ApiPath::auth_mount(input).unwrap().to_string(), want, "{input}");
        }
        assert_eq!(ApiPath::auth_mount("/v1/auth/"), Err(PathError::Empty));
        assert_eq!(
            ApiPath::parse_api("/v1/pki/sign/web").unwrap().to_string(),
            "pki/sign/web"
        );
        assert_eq!(ApiPath::parse_api("/v1/"), Err(PathError::Empty));
        assert_eq!(
            ApiPath::auth_mount("/v1/auth/../../../sys").unwrap_err(),
            PathError::DotSegment("..".into())
        );
        assert_eq!(
            ApiPath::auth_mount("https://evil/x").unwrap_err(),
            PathError::ForbiddenChar(':')
        );
        assert_eq!(
            ApiPath::auth_mount("//evil/x").unwrap_err(),
            PathError::EmptySegment
        );
    }

    /// Every shape that could move a request to another host or out of `/v1/` is refused
    /// with the reason, before any URL is built.
    #[test]
    fn hostile_paths_are_refused() {
        use PathError::*;
        let cases: &[(&str, PathError)] = &[
            ("https://evil.example/x", ForbiddenChar(':')),
            ("http://127.0.0.1:1/x", ForbiddenChar(':')),
            ("//evil/x", EmptySegment),
            ("///evil/x", EmptySegment),
            ("pki//sign", EmptySegment),
            ("/v1/../../x", DotSegment("..".into())),
            ("pki/sign/..", DotSegment("..".into())),
            ("./pki", DotSegment(".".into())),
            ("\\\\evil\\x", ForbiddenChar('\\')),
            ("pki\\..\\..\\x", ForbiddenChar('\\')),
            ("%2e%2e/x", ForbiddenChar('%')),
            ("pki/sign/%2F%2Fevil", ForbiddenChar('%')),
            ("pki/sign/web?x=https://evil", ForbiddenChar('?')),
            ("pki/sign/web#frag", ForbiddenChar('#')),
            ("pki/sign/we\nb", ForbiddenChar('\n')),
            ("pki/sign/we\tb", ForbiddenChar('\t')),
            ("pki/sign/\u{0}", ForbiddenChar('\u{0}')),
            ("pki/sign/w eb", ForbiddenChar(' ')),
            ("user@evil/x", ForbiddenChar('@')),
            ("pki/sign/ｗeb", ForbiddenChar('ｗ')),
            ("", Empty),
            ("/", Empty),
        ];
        for (raw, want) in cases {
            assert_eq!(ApiPath::parse(raw).as_ref(), Err(want), "{raw:?}");
        }
    }
}
