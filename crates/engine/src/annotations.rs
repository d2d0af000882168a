//! What an issuer's annotations add to its `spec.vault` where cert-manager's schema has no room:
//! the addresses of the Vault's nodes and the namespace of the login. Both runtimes read them
//! (standalone, the configuration's `issuers.vault.<issuer>` replaces them when it names the
//! issuer). Anyone who may edit an issuer may write these, so they are checked as hostile input,
//! bounded before they are split.

use std::collections::BTreeMap;

use crate::build::VaultExtras;
use certkeeper_vault::{AddressError, MAX_ADDRESSES, NamespaceError, parse_addresses, parse_namespace};

/// Comma-separated `http(s)://host:port` of the nodes of one Vault, chosen by health instead of
/// `spec.vault.server` alone.
pub const VAULT_ADDRESSES: &str = "certkeeper.io/vault-addresses";
/// The namespace of the login, when it is not `spec.vault.namespace` (the PKI mount's).
pub const VAULT_AUTH_NAMESPACE: &str = "certkeeper.io/vault-auth-namespace";

/// The longest `certkeeper.io/vault-addresses` read: [`MAX_ADDRESSES`] long addresses, commas
/// and spaces.
pub const MAX_ADDRESSES_ANNOTATION: usize = MAX_ADDRESSES * 600;

/// Why an issuer's annotations were refused; the message names the annotation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnotationError {
    #[error("annotation {VAULT_ADDRESSES}: {0}")]
    Addresses(AddressError),
    #[error("annotation {VAULT_ADDRESSES}: {len} bytes; at most {MAX_ADDRESSES_ANNOTATION}")]
    AddressesTooLong { len: usize },
    #[error("annotation {VAULT_AUTH_NAMESPACE}: {0}")]
    AuthNamespace(NamespaceError),
}

/// The Vault settings an issuer's `annotations` add (defaults when it has none of them).
pub fn vault_extras(annotations: &BTreeMap<String, String>) -> Result<VaultExtras, AnnotationError> {
    let addresses = match annotations.get(VAULT_ADDRESSES) {
        None => Vec::new(),
        Some(text) if text.len() > MAX_ADDRESSES_ANNOTATION => {
            return Err(AnnotationError::AddressesTooLong { len: text.len() });
        }
        Some(text) => parse_addresses(text.split(',')).map_err(AnnotationError::Addresses)?,
    };
    let auth_namespace = annotations
        .get(VAULT_AUTH_NAMESPACE)
        .map(|ns| parse_namespace(ns))
        .transpose()
        .map_err(AnnotationError::AuthNamespace)?;
    Ok(VaultExtras {
        addresses,
        auth_namespace,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn extras(pairs: &[(&str, &str)]) -> Result<VaultExtras, AnnotationError> {
        vault_extras(
            &pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn addresses_and_auth_namespace_from_annotations() {
        assert_eq!(extras(&[("other", "x")]).unwrap(), VaultExtras::default());
        let got = extras(&[
            (
                VAULT_ADDRESSES,
                "https://a:8200, https://b:8200,\n http://10.0.0.3:8200/",
            ),
            (VAULT_AUTH_NAMESPACE, "admin/"),
        ])
        .unwrap();
        assert_eq!(
            got.addresses,
            vec!["https://a:8200", "https://b:8200", "http://10.0.0.3:8200"]
        );
        assert_eq!(got.auth_namespace.as_deref(), Some("admin"));
    }

    /// The annotations shown in docs/issuers.md are valid.
    #[test]
    fn documented_annotations_parse() {
        let doc = include_str!("../../../docs/issuers.md");
        let annotations: BTreeMap<String, String> = doc
            .lines()
            .filter_map(|l| l.trim().split_once(": "))
            .filter(|(k, _)| k.starts_with("certkeeper.io/"))
            .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
            .collect();
        assert_eq!(annotations.len(), 2, "{annotations:?}");
        let extras = vault_extras(&annotations).unwrap();
        assert_eq!(extras.addresses.len(), 3);
        assert_eq!(extras.auth_namespace.as_deref(), Some("org"));
    }

    /// Each case fails only the check its error names.
    #[test]
    fn hostile_annotations_are_refused_naming_the_annotation() {
        use AddressError as A;
        for (value, want) in [
            ("", A::NotAUrl(String::new())),
            ("https://a:8200,", A::NotAUrl(String::new())),
            (
                "https://a:8200,https://a:8200",
                A::Duplicate("https://a:8200".into()),
            ),
            (
                "https://a:8200/v1/sys/seal",
                A::Extra("https://a:8200/v1/sys/seal".into()),
            ),
            ("https://a:8200?x=1", A::Extra("https://a:8200?x=1".into())),
            ("https://root:pw@a:8200", A::Credentials),
            ("gopher://a:70", A::Scheme("gopher://a:70".into())),
            ("https://a", A::NoPort("https://a".into())),
        ] {
            let err = extras(&[(VAULT_ADDRESSES, value)]).unwrap_err();
            assert_eq!(err, AnnotationError::Addresses(want), "{value:?}");
            assert!(
                err.to_string()
                    .starts_with("annotation certkeeper.io/vault-addresses: ")
            );
        }
        assert!(
            !extras(&[(VAULT_ADDRESSES, "https://root:hunter2@a:8200")])
                .unwrap_err()
                .to_string()
                .contains("hunter2")
        );
        let many: Vec<String> = (0..=MAX_ADDRESSES)
            .map(|i| format!("https://n{i}:8200"))
            .collect();
        assert_eq!(
            extras(&[(VAULT_ADDRESSES, &many.join(","))]),
            Err(AnnotationError::Addresses(A::TooMany {
                count: MAX_ADDRESSES + 1
            }))
        );
        // A huge annotation is refused by length before it is split.
        let huge = ",".repeat(MAX_ADDRESSES_ANNOTATION + 1);
        assert_eq!(
            extras(&[(VAULT_ADDRESSES, &huge)]),
            Err(AnnotationError::AddressesTooLong {
                len: MAX_ADDRESSES_ANNOTATION + 1
            })
        );
        for value in ["", "a/../b", "a\r\nX-Vault-Token: root", "a b"] {
            let err = extras(&[(VAULT_AUTH_NAMESPACE, value)]).unwrap_err();
            assert!(matches!(err, AnnotationError::AuthNamespace(_)), "{value:?}");
            assert!(
                err.to_string()
                    .starts_with("annotation certkeeper.io/vault-auth-namespace: ")
            );
        }
    }
}
