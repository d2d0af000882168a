//! describe_pem_bundle on tls.crt-like files.

use super::support::{HOUR, TestCa, now, p256};
use crate::pki::{KeyEncoding, PkiError, describe_pem_bundle, verify_issued};

#[test]
fn summarises_leaf_intermediate_and_root() {
    let ca = TestCa::new();
    let key = p256();
    let leaf = ca.fresh(&key, HOUR);
    let issued = verify_issued(
        &leaf,
        &[ca.intermediate_pem.clone(), ca.root_pem.clone()],
        &key,
        HOUR,
        now(),
    )
    .unwrap();
    // A combined PEM: the key block is skipped.
    let file = format!(
        "{}\n{}{}",
        key.to_pem(KeyEncoding::Pkcs1).expose(),
        issued.tls_crt(),
        ca.root_pem
    );
    let summaries = describe_pem_bundle(&file).unwrap();
    assert_eq!(summaries.len(), 3);

    let leaf = &summaries[0];
    assert_eq!(leaf.subject, "CN=a.example.com");
    assert_eq!(leaf.common_name.as_deref(), Some("a.example.com"));
    assert_eq!(leaf.dns_names, ["a.example.com"]);
    assert_eq!(leaf.ip_addresses.len(), 1);
    assert_eq!(leaf.issuer, "CN=certkeeper test intermediate");
    assert_eq!(leaf.not_after, issued.not_after);
    assert_eq!(leaf.not_before_rfc3339(), "2027-01-15T07:59:30Z");
    assert_eq!(leaf.public_key, "ECDSA P-256");
    assert!(!leaf.is_ca && !leaf.self_signed);

    assert!(summaries[1].is_ca && !summaries[1].self_signed);
    assert!(summaries[2].is_ca && summaries[2].self_signed);
}

#[test]
fn files_without_certificates_are_an_error() {
    let key = p256();
    assert!(matches!(
        describe_pem_bundle(key.to_pem(KeyEncoding::Pkcs8).expose()),
        Err(PkiError::NoCertificate)
    ));
    let broken = "-----BEGIN CERTIFICATE-----\nTWFu\n-----END CERTIFICATE-----\n";
    assert!(matches!(
        describe_pem_bundle(broken),
        Err(PkiError::InvalidCertificate { index: 0, .. })
    ));
}
