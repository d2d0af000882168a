//! The settings certkeeper adds to cert-manager's `spec.vault`, checked as hostile input wherever
//! they come from (the standalone configuration, an annotation anyone who can edit an issuer may
//! write): the addresses of one Vault's nodes ([`parse_addresses`]) and the namespace of the
//! login ([`parse_namespace`]).

use url::Url;

/// The most addresses one issuer may list: a Vault cluster has 3 or 5 nodes; a list longer than
/// this is a mistake, and every address costs a health probe per round.
pub const MAX_ADDRESSES: usize = 16;
/// The longest address accepted (a URL with a host and port is far shorter).
pub const MAX_ADDRESS_LEN: usize = 512;
/// The longest namespace path accepted, and its deepest nesting.
pub const MAX_NAMESPACE_LEN: usize = 1024;
pub const MAX_NAMESPACE_DEPTH: usize = 16;

/// Why a list of Vault addresses was refused. Messages quote the address (which holds nothing
/// secret: credentials are refused without being repeated).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("no address given")]
    Empty,
    #[error("{count} addresses; at most {MAX_ADDRESSES}")]
    TooMany { count: usize },
    #[error("address of {len} bytes; at most {MAX_ADDRESS_LEN}")]
    TooLong { len: usize },
    #[error("{0:?} is not a URL")]
    NotAUrl(String),
    #[error("{0:?} must start with http:// or https://")]
    Scheme(String),
    #[error("{0:?} has no host")]
    NoHost(String),
    #[error("{0:?} has no port (write it, e.g. :8200)")]
    NoPort(String),
    /// The text is not repeated: it may hold a password.
    #[error("an address must not carry credentials (user:password@); use an auth method")]
    Credentials,
    #[error("{0:?} must be scheme://host:port only, without a path, query or fragment")]
    Extra(String),
    #[error("{0:?} is listed twice")]
    Duplicate(String),
}

/// Checks a list of Vault node addresses: 1 to [`MAX_ADDRESSES`], each `http(s)://host:port`
/// (an explicit port; no user, path, query or fragment), no repeats. Returns them normalised
/// (`https://a:8200`, without a trailing slash).
pub fn parse_addresses<'a>(
    addresses: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<String>, AddressError> {
    let mut out: Vec<String> = Vec::new();
    for (i, text) in addresses.into_iter().enumerate() {
        if i >= MAX_ADDRESSES {
            // Counted without parsing the rest: a hostile list is not walked to its end.
            return Err(AddressError::TooMany { count: i + 1 });
        }
        let address = parse_address(text)?;
        if out.contains(&address) {
            return Err(AddressError::Duplicate(address));
        }
        out.push(address);
    }
    if out.is_empty() {
        return Err(AddressError::Empty);
    }
    Ok(out)
}

/// One address, see [`parse_addresses`].
pub fn parse_address(text: &str) -> Result<String, AddressError> {
    let text = text.trim();
    if text.len() > MAX_ADDRESS_LEN {
        return Err(AddressError::TooLong { len: text.len() });
    }
    let url = Url::parse(text).map_err(|_| {
        if text.contains('@') {
            AddressError::Credentials
        } else {
            AddressError::NotAUrl(text.to_owned())
        }
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(AddressError::Credentials);
    }
    if !matches!(url.scheme(), "http" | "https") {
        return Err(AddressError::Scheme(text.to_owned()));
    }
    let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
        return Err(AddressError::NoHost(text.to_owned()));
    };
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(AddressError::Extra(text.to_owned()));
    }
    // `Url` drops a port equal to the scheme's default: an explicit ":443" is still written.
    let port = match url.port() {
        Some(port) => port,
        None => {
            let default = url.port_or_known_default().unwrap_or(0);
            let written = text.trim_end_matches('/');
            if !written.ends_with(&format!(":{default}")) {
                return Err(AddressError::NoPort(text.to_owned()));
            }
            default
        }
    };
    Ok(format!("{}://{host}:{port}", url.scheme()))
}

/// Why a Vault namespace path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NamespaceError {
    #[error("namespace is empty")]
    Empty,
    #[error("namespace of {len} bytes; at most {MAX_NAMESPACE_LEN}")]
    TooLong { len: usize },
    #[error("namespace {0:?} is nested more than {MAX_NAMESPACE_DEPTH} deep")]
    TooDeep(String),
    #[error(
        "namespace {0:?}: each part must be letters, digits, '-', '_' or '.' (not \".\" or \"..\"), parts separated by single '/'"
    )]
    Syntax(String),
}

/// Checks a Vault namespace path (`team-a`, `parent/child/`): parts of letters, digits, `-`,
/// `_` and `.` separated by single slashes, outer slashes ignored. It goes into the
/// `X-Vault-Namespace` header, so nothing else (spaces, control characters, `..`) passes.
/// Returns it without outer slashes.
pub fn parse_namespace(text: &str) -> Result<String, NamespaceError> {
    if text.len() > MAX_NAMESPACE_LEN {
        return Err(NamespaceError::TooLong { len: text.len() });
    }
    let trimmed = text.trim().trim_matches('/');
    if trimmed.is_empty() {
        return Err(NamespaceError::Empty);
    }
    let parts: Vec<&str> = trimmed.split('/').collect();
    if parts.len() > MAX_NAMESPACE_DEPTH {
        return Err(NamespaceError::TooDeep(trimmed.to_owned()));
    }
    let good_part = |p: &&str| {
        !p.is_empty()
            && *p != "."
            && *p != ".."
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    };
    if !parts.iter().all(good_part) {
        return Err(NamespaceError::Syntax(trimmed.to_owned()));
    }
    Ok(trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_normalised() {
        assert_eq!(
            parse_addresses(["https://a:8200", " http://127.0.0.1:8201/ ", "https://[::1]:8200"]).unwrap(),
            vec!["https://a:8200", "http://127.0.0.1:8201", "https://[::1]:8200"]
        );
        assert_eq!(parse_address("https://vault:443").unwrap(), "https://vault:443");
        assert_eq!(parse_address("http://vault:80/").unwrap(), "http://vault:80");
    }

    /// Each refusal below passes every other check, so it fails without its own.
    #[test]
    fn hostile_addresses_are_refused() {
        use AddressError as E;
        for (text, want) in [
            ("vault:8200", E::Scheme("vault:8200".into())),
            ("ftp://vault:8200", E::Scheme("ftp://vault:8200".into())),
            ("file:///etc/passwd", E::Scheme("file:///etc/passwd".into())),
            ("https://vault", E::NoPort("https://vault".into())),
            ("https://vault:8200/v1", E::Extra("https://vault:8200/v1".into())),
            (
                "https://vault:8200/?x=1",
                E::Extra("https://vault:8200/?x=1".into()),
            ),
            ("https://vault:8200#f", E::Extra("https://vault:8200#f".into())),
            ("https://user:hunter2@vault:8200", E::Credentials),
            ("https://hunter2@vault:8200", E::Credentials),
            ("not a url", E::NotAUrl("not a url".into())),
            ("https://:8200", E::NotAUrl("https://:8200".into())),
        ] {
            assert_eq!(parse_address(text), Err(want), "{text}");
        }
        assert!(
            !parse_address("https://u:hunter2@vault:8200")
                .unwrap_err()
                .to_string()
                .contains("hunter2")
        );
        let long = format!("https://{}:8200", "a".repeat(MAX_ADDRESS_LEN));
        assert!(matches!(parse_address(&long), Err(E::TooLong { .. })));
        assert_eq!(
            parse_addresses(["https://a:8200", "https://a:8200/"]),
            Err(E::Duplicate("https://a:8200".into()))
        );
        assert_eq!(parse_addresses(std::iter::empty()), Err(E::Empty));
        let many: Vec<String> = (0..=MAX_ADDRESSES)
            .map(|i| format!("https://n{i}:8200"))
            .collect();
        assert_eq!(
            parse_addresses(many.iter().map(String::as_str)),
            Err(E::TooMany {
                count: MAX_ADDRESSES + 1
            })
        );
    }

    #[test]
    fn namespaces() {
        assert_eq!(parse_namespace("/team-a/").unwrap(), "team-a");
        assert_eq!(parse_namespace("parent/child_1.x").unwrap(), "parent/child_1.x");
        use NamespaceError as E;
        for (text, want) in [
            ("", E::Empty),
            ("//", E::Empty),
            ("a//b", E::Syntax("a//b".into())),
            ("a/../b", E::Syntax("a/../b".into())),
            ("a b", E::Syntax("a b".into())),
            ("a\r\nX-Vault-Token: x", E::Syntax("a\r\nX-Vault-Token: x".into())),
            ("é", E::Syntax("é".into())),
        ] {
            assert_eq!(parse_namespace(text), Err(want), "{text:?}");
        }
        let deep = vec!["a"; MAX_NAMESPACE_DEPTH + 1].join("/");
        assert!(matches!(parse_namespace(&deep), Err(E::TooDeep(_))));
        let long = "a".repeat(MAX_NAMESPACE_LEN + 1);
        assert!(matches!(parse_namespace(&long), Err(E::TooLong { .. })));
    }
}
