//! Through the `certkeeper` binary against a real OpenBao: RSA keys of sizes rcgen does not
//! generate (8192, 3000), JKS keystores and each of cert-manager's PKCS#12 profiles, read back
//! by tools that share no code with certkeeper: openssl for keys and PKCS#12, Java's keytool for
//! JKS (see `certkeeper_testkit::keytool` for when that test may skip).
#![allow(clippy::unwrap_used)] // tests state their expectations by unwrapping

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use certkeeper_testkit::{PkiOptions, check_jks, check_pkcs12, keytool, openssl, pbmac1_args};
use common::*;

const PASSWORD: &str = "k3ystore-pass";
const LITERAL: &str = "literal-pass";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsa_sizes_jks_and_every_pkcs12_profile_read_back_independently() {
    let secret = "{name: ks, key: password}";
    let certs = [
        (
            "big",
            format!(
                "  privateKey: {{algorithm: RSA, size: 8192}}\n  keystores:\n    jks: {{create: true, alias: MyKey, passwordSecretRef: {secret}}}\n    pkcs12: {{create: true, profile: LegacyRC2, passwordSecretRef: {secret}}}\n"
            ),
        ),
        (
            "odd",
            format!(
                "  privateKey: {{algorithm: RSA, size: 3000}}\n  keystores: {{pkcs12: {{create: true, profile: LegacyDES, password: {LITERAL}}}}}\n"
            ),
        ),
        (
            "m23",
            format!(
                "  privateKey: {{algorithm: ECDSA, size: 256}}\n  keystores: {{pkcs12: {{create: true, profile: Modern2023, passwordSecretRef: {secret}}}}}\n"
            ),
        ),
        (
            "m26",
            format!(
                "  privateKey: {{algorithm: ECDSA, size: 384}}\n  keystores:\n    jks: {{create: true, password: {LITERAL}}}\n    pkcs12: {{create: true, profile: Modern2026, password: {LITERAL}}}\n"
            ),
        ),
    ];
    let specs: Vec<(&str, &str)> = certs.iter().map(|(n, s)| (*n, s.as_str())).collect();
    let s = setup_with(PkiOptions::default(), &specs, "").await;
    std::fs::create_dir_all(s.root.join("secrets/default/ks")).unwrap();
    std::fs::write(s.root.join("secrets/default/ks/password"), PASSWORD).unwrap();

    let started = Instant::now();
    let daemon = Daemon::start(&s.config);
    wait_for(&s.config, "issued", Duration::from_secs(180), &daemon, |r| {
        r.len() == 4 && r.iter().all(|x| x["ready"] == true)
    });
    eprintln!("4 certificates (one RSA-8192) issued in {:?}", started.elapsed());
    let dir = |name: &str| -> PathBuf { s.root.join(format!("certs/default/{name}-tls")) };
    for (name, _) in &certs {
        assert_pair(&dir(name), &format!("{name}.example.com"));
    }

    // RSA keys: openssl checks them and reports their sizes.
    for (name, bits) in [("big", 8192), ("odd", 3000)] {
        let key = std::fs::read(dir(name).join("tls.key")).unwrap();
        assert_eq!(
            openssl(&["rsa", "-check", "-noout"], &key).unwrap().trim(),
            "RSA key ok"
        );
        let text = openssl(&["pkey", "-noout", "-text"], &key).unwrap();
        assert!(
            text.contains(&format!("Private-Key: ({bits} bit, 2 primes)")),
            "{name}: {text}"
        );
    }

    // PKCS#12, each profile with go-pkcs12's algorithms.
    check_pkcs12(
        &dir("big"),
        PASSWORD,
        &["-legacy"],
        &[
            "MAC: sha1, Iteration 1",
            "PKCS7 Encrypted data: pbeWithSHA1And40BitRC2-CBC, Iteration 2048",
            "Shrouded Keybag: pbeWithSHA1And3-KeyTripleDES-CBC, Iteration 2048",
        ],
    )
    .unwrap();
    check_pkcs12(
        &dir("odd"),
        LITERAL,
        &[],
        &[
            "MAC: sha1, Iteration 1",
            "PKCS7 Encrypted data: pbeWithSHA1And3-KeyTripleDES-CBC, Iteration 2048",
        ],
    )
    .unwrap();
    let pbes2 = "PBES2, PBKDF2, AES-256-CBC, Iteration 2048, PRF hmacWithSHA256";
    check_pkcs12(
        &dir("m23"),
        PASSWORD,
        &[],
        &[
            "MAC: sha256, Iteration 2048",
            &format!("Shrouded Keybag: {pbes2}"),
        ],
    )
    .unwrap();
    // PBMAC1 needs openssl 3.4; older ones read the contents without checking the MAC.
    let m26_extra = pbmac1_args().unwrap();
    check_pkcs12(
        &dir("m26"),
        LITERAL,
        m26_extra,
        &[&format!("Shrouded Keybag: {pbes2}")],
    )
    .unwrap();

    // JKS, read by keytool.
    match keytool().unwrap() {
        Some(keytool) => {
            let started = Instant::now();
            check_jks(&keytool, &dir("big"), PASSWORD, "mykey").unwrap();
            check_jks(&keytool, &dir("m26"), LITERAL, "certificate").unwrap();
            eprintln!("keytool checks took {:?}", started.elapsed());
        }
        None => eprintln!(
            "SKIPPED the JKS read-back: no keytool on PATH and CERTKEEPER_KEYTOOL unset (scripts/test installs a JDK and sets it)"
        ),
    }
    for name in ["odd", "m23"] {
        assert!(
            !dir(name).join("keystore.jks").exists(),
            "{name}: no JKS asked for"
        );
    }
    assert!(daemon.stop().success());
    let log = std::fs::read_to_string(s.root.join(format!("daemon-{}.log", std::process::id())))
        .unwrap_or_default();
    assert!(!log.contains(PASSWORD) && !log.contains(LITERAL) && !log.contains("PRIVATE KEY"));
}
