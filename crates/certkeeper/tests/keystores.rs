//! Through the `certkeeper` binary against a real OpenBao: RSA keys of sizes rcgen does not
//! generate (8192, 3000), JKS keystores and each of cert-manager's PKCS#12 profiles, read back
//! by tools that share no code with certkeeper: openssl for keys and PKCS#12, Java's keytool for
//! JKS (see `certkeeper_testkit::keytool` for when that test may skip).
#![allow(clippy::unwrap_used)] // tests state their expectations by unwrapping

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use certkeeper_testkit::{PkiOptions, keytool, run};
use common::*;

const PASSWORD: &str = "k3ystore-pass";
const LITERAL: &str = "literal-pass";

fn openssl(args: &[&str], stdin: &[u8]) -> String {
    String::from_utf8(run(Path::new("openssl"), args, stdin).unwrap().stdout).unwrap()
}

/// The DER of every PEM block labelled `label`.
fn blocks(text: &str, label: &str) -> Vec<Vec<u8>> {
    x509_parser::pem::Pem::iter_from_buffer(text.as_bytes())
        .map(Result::unwrap)
        .filter(|p| p.label == label)
        .map(|p| p.contents)
        .collect()
}

/// `tls.key` as PKCS#8, converted by openssl (not by certkeeper).
fn pkcs8_by_openssl(dir: &Path) -> Vec<Vec<u8>> {
    let key = std::fs::read(dir.join("tls.key")).unwrap();
    blocks(&openssl(&["pkcs8", "-topk8", "-nocrypt"], &key), "PRIVATE KEY")
}

fn openssl_knows_pbmac1() -> bool {
    let version = openssl(&["version"], b"");
    let mut n = version
        .split_whitespace()
        .nth(1)
        .unwrap_or("0")
        .split('.')
        .map(|x| x.parse::<u32>().unwrap_or(0));
    (n.next().unwrap_or(0), n.next().unwrap_or(0)) >= (3, 4)
}

/// `openssl pkcs12 -info` on a file: its report (stderr) and the PEM it extracts (stdout).
fn openssl_pkcs12(file: &Path, password: &str, extra: &[&str]) -> String {
    let pass = format!("pass:{password}");
    let mut args = vec![
        "pkcs12",
        "-in",
        file.to_str().unwrap(),
        "-passin",
        &pass,
        "-nodes",
        "-info",
    ];
    args.extend_from_slice(extra);
    let out = run(Path::new("openssl"), &args, b"").unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    )
}

/// Reads keystore.p12 and truststore.p12 of `dir` with openssl: the key is tls.key, the first
/// certificate tls.crt's leaf, the trust store holds ca.crt; `report` lines name the profile's
/// algorithms.
fn check_pkcs12(dir: &Path, password: &str, extra: &[&str], report: &[&str]) {
    let keystore = openssl_pkcs12(&dir.join("keystore.p12"), password, extra);
    for line in report {
        assert!(
            keystore.contains(line),
            "{}: {line:?} not in\n{keystore}",
            dir.display()
        );
    }
    assert_eq!(
        blocks(&keystore, "PRIVATE KEY"),
        pkcs8_by_openssl(dir),
        "{}",
        dir.display()
    );
    let crt = std::fs::read_to_string(dir.join("tls.crt")).unwrap();
    assert_eq!(
        blocks(&keystore, "CERTIFICATE")[0],
        blocks(&crt, "CERTIFICATE")[0]
    );
    let trust = openssl_pkcs12(&dir.join("truststore.p12"), password, extra);
    let ca = std::fs::read_to_string(dir.join("ca.crt")).unwrap();
    assert_eq!(blocks(&trust, "CERTIFICATE"), blocks(&ca, "CERTIFICATE"));
    assert!(blocks(&trust, "PRIVATE KEY").is_empty());
}

/// keystore.jks and truststore.jks of `dir`, read by keytool: the key entry under `alias` holds
/// tls.key (exported through a PKCS#12 conversion keytool makes, read by openssl) and tls.crt's
/// chain; `ca` is ca.crt, trusted, in both files.
fn check_jks(keytool: &Path, dir: &Path, password: &str, alias: &str) {
    let store = dir.join("keystore.jks");
    let list = |file: &Path| {
        let out = run(
            keytool,
            &[
                "-list",
                "-v",
                "-storetype",
                "JKS",
                "-keystore",
                file.to_str().unwrap(),
                "-storepass",
                password,
            ],
            b"",
        )
        .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    let listed = list(&store);
    assert!(listed.contains("Your keystore contains 2 entries"), "{listed}");
    assert!(listed.contains(&format!("Alias name: {alias}\n")), "{listed}");
    assert!(listed.contains("Entry type: PrivateKeyEntry"), "{listed}");
    assert!(
        listed.contains("Alias name: ca\n") && listed.contains("Entry type: trustedCertEntry"),
        "{listed}"
    );
    let crt = std::fs::read_to_string(dir.join("tls.crt")).unwrap();
    let chain_len = blocks(&crt, "CERTIFICATE").len();
    assert!(
        listed.contains(&format!("Certificate chain length: {chain_len}")),
        "{listed}"
    );

    // The key itself: keytool re-encodes the entry as PKCS#12, openssl reads that.
    let converted = dir.with_extension("converted.p12");
    run(
        keytool,
        &[
            "-importkeystore",
            "-noprompt",
            "-srcstoretype",
            "JKS",
            "-srckeystore",
            store.to_str().unwrap(),
            "-srcstorepass",
            password,
            "-srcalias",
            alias,
            "-deststoretype",
            "PKCS12",
            "-destkeystore",
            converted.to_str().unwrap(),
            "-deststorepass",
            password,
        ],
        b"",
    )
    .unwrap();
    let exported = openssl_pkcs12(&converted, password, &[]);
    assert_eq!(blocks(&exported, "PRIVATE KEY"), pkcs8_by_openssl(dir));
    assert_eq!(blocks(&exported, "CERTIFICATE"), blocks(&crt, "CERTIFICATE"));

    let trust = dir.join("truststore.jks");
    let listed = list(&trust);
    assert!(listed.contains("Your keystore contains 1 entry"), "{listed}");
    let ca_out = run(
        keytool,
        &[
            "-exportcert",
            "-rfc",
            "-alias",
            "ca",
            "-keystore",
            trust.to_str().unwrap(),
            "-storepass",
            password,
        ],
        b"",
    )
    .unwrap();
    let ca = std::fs::read_to_string(dir.join("ca.crt")).unwrap();
    assert_eq!(
        blocks(&String::from_utf8(ca_out.stdout).unwrap(), "CERTIFICATE"),
        blocks(&ca, "CERTIFICATE")
    );
    // A wrong password fails keytool's integrity check.
    assert!(
        run(
            keytool,
            &[
                "-list",
                "-storetype",
                "JKS",
                "-keystore",
                store.to_str().unwrap(),
                "-storepass",
                "wrong-pass"
            ],
            b""
        )
        .is_err()
    );
}

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
        assert_eq!(openssl(&["rsa", "-check", "-noout"], &key).trim(), "RSA key ok");
        let text = openssl(&["pkey", "-noout", "-text"], &key);
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
    );
    check_pkcs12(
        &dir("odd"),
        LITERAL,
        &[],
        &[
            "MAC: sha1, Iteration 1",
            "PKCS7 Encrypted data: pbeWithSHA1And3-KeyTripleDES-CBC, Iteration 2048",
        ],
    );
    let pbes2 = "PBES2, PBKDF2, AES-256-CBC, Iteration 2048, PRF hmacWithSHA256";
    check_pkcs12(
        &dir("m23"),
        PASSWORD,
        &[],
        &[
            "MAC: sha256, Iteration 2048",
            &format!("Shrouded Keybag: {pbes2}"),
        ],
    );
    // PBMAC1 needs openssl 3.4; older ones read the contents without checking the MAC.
    let m26_extra: &[&str] = if openssl_knows_pbmac1() {
        &[]
    } else {
        &["-nomacver"]
    };
    check_pkcs12(
        &dir("m26"),
        LITERAL,
        m26_extra,
        &[&format!("Shrouded Keybag: {pbes2}")],
    );

    // JKS, read by keytool.
    match keytool().unwrap() {
        Some(keytool) => {
            let started = Instant::now();
            check_jks(&keytool, &dir("big"), PASSWORD, "mykey");
            check_jks(&keytool, &dir("m26"), LITERAL, "certificate");
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
