//! verify_issued against certificates from the local CA, and the outputs derived from them.

use std::time::Duration;

use super::support::{DAY, HOUR, TestCa, now, p256};
use crate::FailureClass;
use crate::pki::{
    CertError, KeyAlgorithm, KeyEncoding, NOT_BEFORE_SKEW, PrivateKey, describe_pem_bundle, verify_issued,
};

fn pems(certs: &[&String]) -> Vec<String> {
    certs.iter().map(|c| (*c).clone()).collect()
}

#[test]
fn a_good_answer_with_root_is_split_like_cert_manager() {
    let ca = TestCa::new();
    let key = p256();
    let leaf = ca.fresh(&key, 30 * DAY);
    let issued = verify_issued(
        &leaf,
        &pems(&[&ca.intermediate_pem, &ca.root_pem]),
        &key,
        30 * DAY,
        now(),
    )
    .unwrap();

    assert_eq!(issued.chain, std::slice::from_ref(&ca.intermediate_pem));
    assert_eq!(issued.root.as_deref(), Some(ca.root_pem.as_str()));
    assert_eq!(
        issued.tls_crt(),
        format!("{}{}", issued.leaf_pem, ca.intermediate_pem)
    );
    assert_eq!(issued.ca_crt().as_deref(), Some(ca.root_pem.as_str()));
    assert_eq!(issued.common_name.as_deref(), Some("a.example.com"));
    assert_eq!(
        issued.issuer_common_name.as_deref(),
        Some("certkeeper test intermediate")
    );
    assert_eq!(issued.dns_names, ["a.example.com"]);
    assert_eq!(
        issued.ip_addresses,
        ["10.0.0.1".parse::<std::net::IpAddr>().unwrap()]
    );
    assert_eq!(issued.not_after, now() - Duration::from_secs(30) + 30 * DAY);
    assert_eq!(
        issued.shortened, None,
        "30 s of backdating is not a shortened lifetime"
    );
    assert_eq!(issued.remaining(now()), 30 * DAY - Duration::from_secs(30));
    // The issuing CA is the intermediate: its expiry bounds every certificate it signs.
    assert_eq!(issued.issuer_not_after, Some(now() + 3650 * DAY));

    // The serial is lowercase colon hex, and matches what inspect reports.
    assert!(issued.serial.split(':').all(|b| {
        b.len() == 2
            && b.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    }));
    assert_eq!(
        describe_pem_bundle(&issued.leaf_pem).unwrap()[0].serial,
        issued.serial
    );
}

#[test]
fn without_a_root_ca_crt_is_the_highest_intermediate() {
    let ca = TestCa::new();
    let key = p256();
    let leaf = ca.fresh(&key, HOUR);
    let issued = verify_issued(&leaf, &pems(&[&ca.intermediate_pem]), &key, HOUR, now()).unwrap();
    assert_eq!(issued.root, None);
    assert_eq!(
        issued.tls_crt(),
        format!("{}{}", issued.leaf_pem, ca.intermediate_pem)
    );
    assert_eq!(issued.ca_crt().as_deref(), Some(ca.intermediate_pem.as_str()));
}

#[test]
fn a_leaf_from_the_root_has_no_intermediates() {
    let ca = TestCa::new();
    let key = p256();
    let start = now() - Duration::from_secs(30);
    let leaf = ca.issue_by_root(key.key_pair(), start, start + HOUR);
    let issued = verify_issued(&leaf, &pems(&[&ca.root_pem]), &key, HOUR, now()).unwrap();
    assert!(issued.chain.is_empty());
    assert_eq!(issued.tls_crt(), issued.leaf_pem);
    assert_eq!(issued.ca_crt().as_deref(), Some(ca.root_pem.as_str()));

    assert_eq!(issued.issuer_not_after, Some(now() + 3650 * DAY), "the root's");

    let bare = verify_issued(&leaf, &[String::new()], &key, HOUR, now()).unwrap();
    assert_eq!(bare.ca_crt(), None, "no CA returned: no ca.crt");
    assert_eq!(bare.issuer_not_after, None);
}

#[test]
fn chains_are_reordered_and_deduplicated() {
    let ca = TestCa::new();
    let key = p256();
    let leaf = ca.fresh(&key, HOUR);
    // Vault's issuing_ca repeats ca_chain[0]; a pem_bundle certificate carries the chain itself.
    let messy = pems(&[&ca.root_pem, &ca.intermediate_pem, &ca.intermediate_pem]);
    let bundle = format!("{leaf}{}", ca.root_pem);
    let issued = verify_issued(&bundle, &messy, &key, HOUR, now()).unwrap();
    assert_eq!(issued.chain, std::slice::from_ref(&ca.intermediate_pem));
    assert_eq!(issued.root.as_deref(), Some(ca.root_pem.as_str()));
    let joined = format!("{}\n{}", ca.intermediate_pem, ca.root_pem);
    assert_eq!(
        verify_issued(&leaf, &[joined], &key, HOUR, now()).unwrap(),
        issued
    );
}

#[test]
fn an_unrelated_ca_breaks_the_chain() {
    let ca = TestCa::new();
    let other = TestCa::new();
    let key = p256();
    let leaf = ca.fresh(&key, HOUR);
    let err = verify_issued(
        &leaf,
        &pems(&[&ca.intermediate_pem, &other.intermediate_pem]),
        &key,
        HOUR,
        now(),
    )
    .unwrap_err();
    assert!(matches!(err, CertError::BrokenChain(_)), "{err}");
    // The other CA's intermediate has the same subject name: the key identifiers tell them apart.
    let err = verify_issued(&leaf, &pems(&[&other.intermediate_pem]), &key, HOUR, now()).unwrap_err();
    assert!(matches!(err, CertError::BrokenChain(_)), "{err}");
    assert_eq!(err.class(), FailureClass::Rejected);
}

#[test]
fn a_certificate_for_another_key_is_refused() {
    let ca = TestCa::new();
    let key = p256();
    let other = PrivateKey::generate(KeyAlgorithm::Ed25519).unwrap();
    let leaf = ca.fresh(&other, HOUR);
    let err = verify_issued(&leaf, &pems(&[&ca.intermediate_pem]), &key, HOUR, now()).unwrap_err();
    assert!(matches!(err, CertError::KeyMismatch));
    assert_eq!(
        err.to_string(),
        "certificate public key does not match the private key"
    );
}

#[test]
fn expired_and_future_certificates_are_refused() {
    let ca = TestCa::new();
    let key = p256();
    let chain = pems(&[&ca.intermediate_pem]);

    let expired = ca.issue(key.key_pair(), now() - 2 * DAY, now() - DAY);
    let err = verify_issued(&expired, &chain, &key, DAY, now()).unwrap_err();
    assert!(matches!(err, CertError::Expired { .. }), "{err}");
    assert!(err.to_string().contains("2027-01-14T08:00:00Z"), "{err}");
    let ends_now = ca.issue(key.key_pair(), now() - DAY, now());
    assert!(matches!(
        verify_issued(&ends_now, &chain, &key, DAY, now()),
        Err(CertError::Expired { .. })
    ));

    let future = ca.issue(key.key_pair(), now() + HOUR, now() + DAY);
    let err = verify_issued(&future, &chain, &key, DAY, now()).unwrap_err();
    assert!(matches!(err, CertError::NotYetValid { .. }), "{err}");

    // A Vault clock slightly ahead of ours is tolerated.
    let skewed = ca.issue(key.key_pair(), now() + NOT_BEFORE_SKEW, now() + DAY);
    assert!(verify_issued(&skewed, &chain, &key, DAY, now()).is_ok());
}

#[test]
fn a_capped_ttl_is_reported_as_shortened() {
    let ca = TestCa::new();
    let key = p256();
    let chain = pems(&[&ca.intermediate_pem]);
    let leaf = ca.fresh(&key, 30 * DAY);
    let issued = verify_issued(&leaf, &chain, &key, 90 * DAY, now()).unwrap();
    assert_eq!(issued.shortened, Some(60 * DAY));

    // Within max(1 %, 60 s) it is not: 90 days -> 21.6 h of tolerance.
    let near = ca.fresh(&key, 90 * DAY - 20 * HOUR);
    assert_eq!(
        verify_issued(&near, &chain, &key, 90 * DAY, now())
            .unwrap()
            .shortened,
        None
    );
    let short = ca.fresh(&key, HOUR - Duration::from_secs(61));
    assert_eq!(
        verify_issued(&short, &chain, &key, HOUR, now())
            .unwrap()
            .shortened,
        Some(Duration::from_secs(61))
    );
    // Longer than requested is not shortened either.
    let long = ca.fresh(&key, 2 * HOUR);
    assert_eq!(
        verify_issued(&long, &chain, &key, HOUR, now()).unwrap().shortened,
        None
    );
}

#[test]
fn damaged_answers_are_refused() {
    let ca = TestCa::new();
    let key = p256();
    let leaf = ca.fresh(&key, HOUR);
    assert!(matches!(
        verify_issued("", &[], &key, HOUR, now()),
        Err(CertError::NoCertificate)
    ));
    assert!(matches!(
        verify_issued("<html>502</html>", &[], &key, HOUR, now()),
        Err(CertError::NoCertificate)
    ));
    let garbage = "-----BEGIN CERTIFICATE-----\nTWFu\n-----END CERTIFICATE-----\n".to_owned();
    assert!(matches!(
        verify_issued(&garbage, &[], &key, HOUR, now()),
        Err(CertError::InvalidLeaf(_))
    ));
    assert!(matches!(
        verify_issued(&leaf, &[garbage], &key, HOUR, now()),
        Err(CertError::InvalidChain { index: 0, .. })
    ));
    let truncated = leaf[..leaf.len() - 30].to_owned();
    assert!(matches!(
        verify_issued(&truncated, &[], &key, HOUR, now()),
        Err(CertError::InvalidPem(_))
    ));
}

#[test]
fn combined_pem_and_der_key_match_cert_manager() {
    let ca = TestCa::new();
    let key = PrivateKey::generate(KeyAlgorithm::Rsa(2048)).unwrap();
    let leaf = ca.fresh(&key, HOUR);
    let issued = verify_issued(
        &leaf,
        &pems(&[&ca.intermediate_pem, &ca.root_pem]),
        &key,
        HOUR,
        now(),
    )
    .unwrap();
    for encoding in [KeyEncoding::Pkcs1, KeyEncoding::Pkcs8] {
        let combined = issued.combined_pem(&key, encoding);
        let expected = format!("{}\n{}", key.to_pem(encoding).expose(), issued.tls_crt());
        assert_eq!(combined.expose(), expected);
        assert_eq!(issued.der_key(&key, encoding), key.to_der(encoding));
        assert!(!format!("{combined:?}").contains("BEGIN"));
    }
    let pkcs1 = issued.der_key(&key, KeyEncoding::Pkcs1);
    let back = PrivateKey::from_pem(&crate::pki::der::pem("RSA PRIVATE KEY", pkcs1.expose())).unwrap();
    assert_eq!(back.public_key_der(), key.public_key_der());
}
