//! keystore.p12 / truststore.p12, parsed back with p12-keystore.

use p12_keystore::{KeyStore, KeyStoreEntry, Pkcs12ImportPolicy};

use super::support::{HOUR, TestCa, now, p256};
use crate::pki::{IssuedCertificate, KEYSTORE_ALIAS, Pkcs12Profile, PkiError, PrivateKey, verify_issued};

fn der_of(pem: &str) -> Vec<u8> {
    x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .unwrap()
        .1
        .contents
}

fn issued(ca: &TestCa, key: &PrivateKey, with_root: bool) -> IssuedCertificate {
    let mut chain = vec![ca.intermediate_pem.clone()];
    if with_root {
        chain.push(ca.root_pem.clone());
    }
    verify_issued(&ca.fresh(key, HOUR), &chain, key, HOUR, now()).unwrap()
}

#[test]
fn every_profile_round_trips() {
    let ca = TestCa::new();
    let key = p256();
    let issued = issued(&ca, &key, true);
    for profile in [
        Pkcs12Profile::LegacyRc2,
        Pkcs12Profile::LegacyDes,
        Pkcs12Profile::Modern2023,
    ] {
        let bundle = issued.pkcs12(&key, "s3cret", profile).unwrap();

        let store = KeyStore::from_pkcs12(&bundle.keystore, "s3cret", Pkcs12ImportPolicy::Strict).unwrap();
        let (alias, chain) = store.private_key_chain().unwrap();
        assert_eq!(alias, KEYSTORE_ALIAS);
        assert_eq!(chain.key().as_der(), key.to_der_pkcs8().expose(), "{profile:?}");
        let certs: Vec<&[u8]> = chain.certs().iter().map(|c| c.as_der()).collect();
        assert_eq!(
            certs,
            [
                der_of(&issued.leaf_pem),
                der_of(&ca.intermediate_pem),
                der_of(&ca.root_pem)
            ],
            "{profile:?}: leaf, intermediates, CA"
        );

        let trust = KeyStore::from_pkcs12(
            bundle.truststore.as_ref().unwrap(),
            "s3cret",
            Pkcs12ImportPolicy::Strict,
        )
        .unwrap();
        let entries: Vec<_> = trust.entries().collect();
        assert_eq!(entries.len(), 1);
        let KeyStoreEntry::Certificate(cert) = entries[0].1 else {
            panic!("not a trusted certificate")
        };
        assert_eq!(cert.as_der(), der_of(&ca.root_pem));

        assert!(KeyStore::from_pkcs12(&bundle.keystore, "wrong", Pkcs12ImportPolicy::Strict).is_err());
        assert!(!format!("{bundle:?}").contains("s3cret"));
    }
}

#[test]
fn without_a_root_the_intermediate_is_not_repeated() {
    let ca = TestCa::new();
    let key = p256();
    let bundle = issued(&ca, &key, false)
        .pkcs12(&key, "pw", Pkcs12Profile::Modern2023)
        .unwrap();
    let store = KeyStore::from_pkcs12(&bundle.keystore, "pw", Pkcs12ImportPolicy::Strict).unwrap();
    assert_eq!(store.private_key_chain().unwrap().1.certs().len(), 2);
    assert!(bundle.truststore.is_some(), "ca.crt is the intermediate");
}

#[test]
fn profile_names_are_cert_managers() {
    assert_eq!(
        "LegacyRC2".parse::<Pkcs12Profile>().unwrap(),
        Pkcs12Profile::LegacyRc2
    );
    assert_eq!(
        "LegacyDES".parse::<Pkcs12Profile>().unwrap(),
        Pkcs12Profile::LegacyDes
    );
    assert_eq!(
        "Modern2023".parse::<Pkcs12Profile>().unwrap(),
        Pkcs12Profile::Modern2023
    );
    assert!(matches!(
        "Modern2026".parse::<Pkcs12Profile>(),
        Err(PkiError::UnknownPkcs12Profile(_))
    ));
    assert_eq!(Pkcs12Profile::default(), Pkcs12Profile::LegacyRc2);
}
