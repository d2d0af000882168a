//! keystore.p12 / truststore.p12: every profile read back by openssl (the independent reader)
//! and by p12-keystore, and its algorithms checked against go-pkcs12's.

use p12_keystore::{KeyStore, KeyStoreEntry, Pkcs12ImportPolicy};

use super::support::{HOUR, TestCa, now, openssl, p256};
use crate::pki::{IssuedCertificate, KeyEncoding, Pkcs12Profile, PkiError, PrivateKey, verify_issued};

const PROFILES: [Pkcs12Profile; 4] = [
    Pkcs12Profile::LegacyRc2,
    Pkcs12Profile::LegacyDes,
    Pkcs12Profile::Modern2023,
    Pkcs12Profile::Modern2026,
];

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

/// The PEM blocks of `label` in openssl's output, as DER.
fn blocks(text: &str, label: &str) -> Vec<Vec<u8>> {
    x509_parser::pem::Pem::iter_from_buffer(text.as_bytes())
        .map(Result::unwrap)
        .filter(|p| p.label == label)
        .map(|p| p.contents)
        .collect()
}

/// openssl from 3.4 on verifies PBMAC1; older ones read the contents with `-nomacver`.
fn openssl_knows_pbmac1() -> bool {
    let version = String::from_utf8(openssl(&["version"], b"")).unwrap();
    let mut numbers = version
        .split_whitespace()
        .nth(1)
        .unwrap_or("0")
        .split('.')
        .map(|n| n.parse::<u32>().unwrap_or(0));
    (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0)) >= (3, 4)
}

/// `openssl pkcs12 -info`'s report and the PEM it extracts.
fn openssl_reads(p12: &[u8], password: &str, profile: Pkcs12Profile) -> String {
    let pass = format!("pass:{password}");
    let mut args = vec!["pkcs12", "-in", "/dev/stdin", "-passin", &pass, "-nodes", "-info"];
    match profile {
        // OpenSSL 3 keeps RC2 in its legacy provider.
        Pkcs12Profile::LegacyRc2 => args.push("-legacy"),
        Pkcs12Profile::Modern2026 if !openssl_knows_pbmac1() => args.push("-nomacver"),
        _ => {}
    }
    let out = std::process::Command::new("openssl")
        .args(&args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    let mut child = out;
    child.stdin.take().unwrap().write_all(p12).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{profile:?}: openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // -info reports the algorithms on stderr.
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    )
}

/// go-pkcs12's algorithms per profile, as `openssl pkcs12 -info` names them.
fn expected_report(profile: Pkcs12Profile) -> [&'static str; 3] {
    match profile {
        Pkcs12Profile::LegacyRc2 => [
            "MAC: sha1, Iteration 1",
            "PKCS7 Encrypted data: pbeWithSHA1And40BitRC2-CBC, Iteration 2048",
            "Shrouded Keybag: pbeWithSHA1And3-KeyTripleDES-CBC, Iteration 2048",
        ],
        Pkcs12Profile::LegacyDes => [
            "MAC: sha1, Iteration 1",
            "PKCS7 Encrypted data: pbeWithSHA1And3-KeyTripleDES-CBC, Iteration 2048",
            "Shrouded Keybag: pbeWithSHA1And3-KeyTripleDES-CBC, Iteration 2048",
        ],
        Pkcs12Profile::Modern2023 => [
            "MAC: sha256, Iteration 2048",
            "PKCS7 Encrypted data: PBES2, PBKDF2, AES-256-CBC, Iteration 2048, PRF hmacWithSHA256",
            "Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC, Iteration 2048, PRF hmacWithSHA256",
        ],
        Pkcs12Profile::Modern2026 => [
            "",
            "PKCS7 Encrypted data: PBES2, PBKDF2, AES-256-CBC, Iteration 2048, PRF hmacWithSHA256",
            "Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC, Iteration 2048, PRF hmacWithSHA256",
        ],
    }
}

/// Each of cert-manager's four profiles is read back by openssl with go-pkcs12's algorithms
/// (Modern2026 was refused before): the key, the leaf, intermediate and CA in the keystore, the
/// CA alone in the trust store, and the wrong password refused.
#[test]
fn every_profile_read_back_by_openssl() {
    let ca = TestCa::new();
    let key = p256();
    let issued = issued(&ca, &key, true);
    let key_pem = key.to_pem(KeyEncoding::Pkcs8);
    for profile in PROFILES {
        let bundle = issued.pkcs12(&key, "s3cret", profile).unwrap();
        let report = openssl_reads(&bundle.keystore, "s3cret", profile);
        for line in expected_report(profile) {
            assert!(report.contains(line), "{profile:?}: {line:?} not in\n{report}");
        }
        if profile == Pkcs12Profile::Modern2026 && openssl_knows_pbmac1() {
            assert!(report.contains("PBMAC1"), "{report}");
        }
        assert_eq!(
            blocks(&report, "PRIVATE KEY"),
            blocks(key_pem.expose(), "PRIVATE KEY"),
            "{profile:?}"
        );
        assert_eq!(
            blocks(&report, "CERTIFICATE"),
            [
                der_of(&issued.leaf_pem),
                der_of(&ca.intermediate_pem),
                der_of(&ca.root_pem)
            ],
            "{profile:?}: leaf, intermediates, CA"
        );

        let trust = openssl_reads(bundle.truststore.as_ref().unwrap(), "s3cret", profile);
        assert_eq!(
            blocks(&trust, "CERTIFICATE"),
            [der_of(&ca.root_pem)],
            "{profile:?}"
        );
        assert!(blocks(&trust, "PRIVATE KEY").is_empty());
        assert!(trust.contains("friendlyName: CN=certkeeper test root"), "{trust}");
        assert!(
            trust.contains("2.16.840.1.113894.746875.1.1"),
            "{profile:?}: Java's trusted attribute\n{trust}"
        );

        assert!(!format!("{bundle:?}").contains("s3cret"));
    }
}

/// The wrong password fails openssl's MAC check.
#[test]
fn wrong_password_is_refused() {
    let ca = TestCa::new();
    let key = p256();
    let bundle = issued(&ca, &key, true)
        .pkcs12(&key, "right", Pkcs12Profile::LegacyDes)
        .unwrap();
    let out = std::process::Command::new("openssl")
        .args(["pkcs12", "-in", "/dev/stdin", "-passin", "pass:wrong", "-nodes"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = out;
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&bundle.keystore).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Mac verify error"));
}

/// A second reader, p12-keystore, for the profiles it reads (not PBMAC1).
#[test]
fn p12_keystore_reads_the_legacy_and_2023_profiles() {
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
        let (_, chain) = store.private_key_chain().unwrap();
        assert_eq!(chain.key().as_der(), key.to_der_pkcs8().expose(), "{profile:?}");
        assert_eq!(chain.certs()[0].as_der(), der_of(&issued.leaf_pem));
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
    }
}

#[test]
fn without_a_root_the_intermediate_is_not_repeated() {
    let ca = TestCa::new();
    let key = p256();
    let bundle = issued(&ca, &key, false)
        .pkcs12(&key, "pw", Pkcs12Profile::Modern2023)
        .unwrap();
    let report = openssl_reads(&bundle.keystore, "pw", Pkcs12Profile::Modern2023);
    assert_eq!(blocks(&report, "CERTIFICATE").len(), 2);
    assert!(bundle.truststore.is_some(), "ca.crt is the intermediate");
}

#[test]
fn profile_names_are_cert_managers() {
    for (name, profile) in ["LegacyRC2", "LegacyDES", "Modern2023", "Modern2026"]
        .into_iter()
        .zip(PROFILES)
    {
        assert_eq!(name.parse::<Pkcs12Profile>().unwrap(), profile);
    }
    assert!(matches!(
        "Modern2027".parse::<Pkcs12Profile>(),
        Err(PkiError::UnknownPkcs12Profile(_))
    ));
    assert_eq!(Pkcs12Profile::default(), Pkcs12Profile::LegacyRc2);
}
