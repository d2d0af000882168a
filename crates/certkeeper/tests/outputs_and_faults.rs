//! Through the `certkeeper` binary against a real OpenBao: every output format a Certificate can
//! ask for, JSON logs, and a Vault that accepts connections and never answers.
#![allow(clippy::unwrap_used)] // tests state their expectations by unwrapping

mod common;

use std::time::{Duration, Instant};

use certkeeper_testkit::{FaultProxy, Mode, PkiOptions};
use common::*;
use p12_keystore::{KeyStore, Pkcs12ImportPolicy};
use serde_json::Value;

const P12_PASSWORD: &str = "k3ystore-pass";

fn pem_der(pem: &str) -> Vec<u8> {
    x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .unwrap()
        .1
        .contents
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_output_format_and_json_logs() {
    let s = setup_with(
        PkiOptions::default(),
        &[(
            "web",
            "  privateKey: {algorithm: ECDSA, size: 384, encoding: PKCS8}\n  additionalOutputFormats: [{type: CombinedPEM}, {type: DER}]\n  keystores: {pkcs12: {create: true, profile: Modern2023, passwordSecretRef: {name: p12, key: password}}}\n",
        )],
        "log: {format: json}\n",
    )
    .await;
    std::fs::create_dir_all(s.root.join("secrets/default/p12")).unwrap();
    std::fs::write(s.root.join("secrets/default/p12/password"), P12_PASSWORD).unwrap();
    let daemon = Daemon::start(&s.config);
    wait_for(&s.config, "issued", Duration::from_secs(60), &daemon, |r| {
        r.len() == 1 && r[0]["ready"] == true
    });
    let dir = s.root.join("certs/default/web-tls");
    assert_pair(&dir, "web.example.com");
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    let (crt, key, ca) = (read("tls.crt"), read("tls.key"), read("ca.crt"));
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "PKCS#8 PEM");
    assert!(ca.contains("BEGIN CERTIFICATE"));

    // Combined PEM: the key, then the chain, joined with "\n" as cert-manager writes it.
    assert_eq!(read("tls-combined.pem"), format!("{key}\n{crt}"));
    // DER: the same key, binary.
    assert_eq!(std::fs::read(dir.join("key.der")).unwrap(), pem_der(&key));
    // PKCS#12 keystore and truststore, readable with the password from the Secret file.
    let store = KeyStore::from_pkcs12(
        &std::fs::read(dir.join("keystore.p12")).unwrap(),
        P12_PASSWORD,
        Pkcs12ImportPolicy::Strict,
    )
    .unwrap();
    let (_, chain) = store.private_key_chain().unwrap();
    assert_eq!(chain.key().as_der(), pem_der(&key));
    assert_eq!(chain.certs()[0].as_der(), pem_der(&crt));
    let trust = KeyStore::from_pkcs12(
        &std::fs::read(dir.join("truststore.p12")).unwrap(),
        P12_PASSWORD,
        Pkcs12ImportPolicy::Strict,
    )
    .unwrap();
    assert_eq!(trust.entries().count(), 1);

    // Renewal rewrites every format together.
    let out = ck(&[
        "renew",
        "--config",
        s.config.to_str().unwrap(),
        "web",
        "--wait",
        "60",
    ]);
    assert!(out.status.success(), "{}", daemon.log());
    let (crt2, key2) = (read("tls.crt"), read("tls.key"));
    assert_ne!(crt2, crt);
    assert_eq!(read("tls-combined.pem"), format!("{key2}\n{crt2}"));
    assert_eq!(std::fs::read(dir.join("key.der")).unwrap(), pem_der(&key2));
    assert!(daemon.stop().success());

    // JSON logs: every line is an object; issuance and renewal are one line each, with the
    // certificate, revision, serial and notAfter; no key material or password anywhere.
    let log = std::fs::read_to_string(s.root.join(format!("daemon-{}.log", std::process::id()))).unwrap();
    let lines: Vec<Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let find = |message: &str| {
        lines
            .iter()
            .filter(|l| l["message"] == message && l["certificate"] == "default/web")
            .collect::<Vec<_>>()
    };
    let issued = find("issued certificate");
    assert_eq!(issued.len(), 1, "{log}");
    assert_eq!(issued[0]["revision"], 1);
    assert!(issued[0]["not_after"].as_str().unwrap().ends_with('Z'));
    assert!(issued[0]["serial"].is_string());
    let renewed = find("renewed certificate");
    assert_eq!(renewed.len(), 1, "{log}");
    assert_eq!(renewed[0]["revision"], 2);
    assert!(!log.contains(P12_PASSWORD) && !log.contains("PRIVATE KEY"));
}

/// A Vault that accepts connections and never answers: attempts end at the configured request
/// timeout, the circuit breaker keeps it to about one request at a time, status explains, and
/// everything is issued as soon as Vault answers again. SIGTERM does not wait for a hung Vault.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_vault_is_bounded_by_timeouts() {
    let names: Vec<String> = (0..10).map(|i| format!("h{i}")).collect();
    let specs: Vec<(&str, &str)> = names
        .iter()
        .map(|n| (n.as_str(), "  privateKey: {algorithm: ECDSA, size: 256}\n"))
        .collect();
    let s = setup_with(
        PkiOptions::default(),
        &specs,
        "issuers: {requestTimeout: 1s, connectTimeout: 1s}\n",
    )
    .await;
    let proxy = FaultProxy::start(&s.bao.addr()).await.unwrap();
    proxy.set_mode(Mode::Hang).unwrap();
    let issuer = s.root.join("manifests/issuer.yaml");
    let text = std::fs::read_to_string(&issuer).unwrap();
    std::fs::write(&issuer, text.replace(&s.bao.addr(), &proxy.addr())).unwrap();

    let daemon = Daemon::start(&s.config);
    let hang = Duration::from_secs(12);
    let started = Instant::now();
    let rows = wait_for(&s.config, "failures recorded", hang, &daemon, |r| {
        r.len() == 10 && r.iter().all(|x| !x["lastFailure"].is_null())
    });
    std::thread::sleep(hang.saturating_sub(started.elapsed()));
    let rows = status(&s.config).into_iter().chain(rows).collect::<Vec<_>>();
    for r in &rows {
        assert_eq!(r["ready"], false);
        let f = &r["lastFailure"];
        assert_eq!(f["class"], "transient", "{r}");
        assert_ne!(f["nextAttempt"], "on change", "{r}");
    }
    let messages: Vec<&str> = rows
        .iter()
        .map(|r| r["lastFailure"]["message"].as_str().unwrap())
        .collect();
    assert!(
        messages.iter().any(|m| m.contains("timed out")),
        "some failure names the timeout: {messages:?}"
    );
    // One login attempt, then one probe at a time with a growing backoff: far fewer than one
    // connection per certificate per second.
    let during = proxy.connections();
    eprintln!("hanging Vault, 12 s, 10 certificates: {during} connections");
    assert!((1..=12).contains(&during), "{during} connections in 12 s");

    proxy.set_mode(Mode::Forward).unwrap();
    wait_for(
        &s.config,
        "all issued after recovery",
        Duration::from_secs(30),
        &daemon,
        |r| r.iter().all(|x| x["ready"] == true),
    );
    for n in &names {
        assert_pair(
            &s.root.join(format!("certs/default/{n}-tls")),
            &format!("{n}.example.com"),
        );
    }

    // Hung again with renewals in flight: SIGTERM still stops the daemon promptly.
    proxy.set_mode(Mode::Hang).unwrap();
    let out = ck(&[
        "renew",
        "--config",
        s.config.to_str().unwrap(),
        "--all",
        "--wait",
        "0",
    ]);
    assert!(out.status.success());
    std::thread::sleep(Duration::from_secs(3));
    let t = Instant::now();
    assert!(daemon.stop().success());
    eprintln!("SIGTERM with requests hanging: stopped in {:?}", t.elapsed());
    assert!(t.elapsed() < Duration::from_secs(10));
}
