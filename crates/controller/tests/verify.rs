//! `certkeeper.io/verify` in the cluster, on a genuine kube-apiserver and OpenBao: a Certificate
//! lists an address that must serve its certificate; a TLS server on loopback (rustls, in this
//! process: no workload runs on this API server) stands in for the workload. While the server
//! presents another certificate, the Certificate stays Ready (its certificate is valid) with
//! `Served=False` (reason `NotServed`, naming what is served), failure class `apply`, retried
//! without issuing again; once the server loads the Secret's certificate, `Served=True`
//! (`Verified`) and the failure clears. A hostile annotation makes the Certificate invalid,
//! naming it.
//! Skipped (with a printed reason) only when the kube binaries are not installed.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use common::{
    Api, CERTIFICATES, NS, SECRETS, condition, config_for, decode, installed, ready, spawn_controller,
    start_with_vault_issuer,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};

/// A TLS server on a loopback port presenting whatever chain and key it was last given, until
/// `stop` (or 120 s).
struct Workload {
    port: u16,
    config: Arc<Mutex<Arc<rustls::ServerConfig>>>,
}

fn server_config(chain_pem: &str, key_pem: &str) -> Arc<rustls::ServerConfig> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap(),
    )
}

impl Workload {
    fn start(chain_pem: &str, key_pem: &str) -> Workload {
        let config = Arc::new(Mutex::new(server_config(chain_pem, key_pem)));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = config.clone();
        std::thread::spawn(move || {
            let deadline = std::time::Instant::now() + Duration::from_secs(120);
            while std::time::Instant::now() < deadline {
                let Ok((mut tcp, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                let _ = tcp.set_nonblocking(false);
                let _ = tcp.set_read_timeout(Some(Duration::from_secs(2)));
                let config = shared.lock().unwrap().clone();
                let mut conn = rustls::ServerConnection::new(config).unwrap();
                while conn.is_handshaking() {
                    if conn.complete_io(&mut tcp).is_err() {
                        break;
                    }
                }
            }
        });
        Workload { port, config }
    }

    fn load(&self, chain_pem: &str, key_pem: &str) {
        *self.config.lock().unwrap() = server_config(chain_pem, key_pem);
    }
}

/// A self-signed certificate for web.example.com: what a workload serves before it has ours.
fn stranger() -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["web.example.com".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    (cert.pem(), key.serialize_pem())
}

fn certificate(name: &str, verify: &str) -> Value {
    json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
           "metadata": {"name": name, "namespace": NS,
                        "annotations": {"certkeeper.io/verify": verify,
                                        "certkeeper.io/verify-server-name": "web.example.com"}},
           "spec": {"secretName": format!("{name}-tls"), "commonName": "web.example.com",
                    "dnsNames": ["web.example.com"], "duration": "1h",
                    "issuerRef": {"name": "vault", "kind": "Issuer"}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_certificate_is_checked_and_said_in_a_condition() -> Result<()> {
    if !installed() {
        return Ok(());
    }
    let (kube, _bao, _token) = start_with_vault_issuer().await?;
    let api = Api::new(&kube)?;
    let (cert_pem, key_pem) = stranger();
    let workload = Workload::start(&cert_pem, &key_pem);
    let (stop_tx, controller) = spawn_controller(config_for(&kube, kube.admin_token()));
    api.create(
        CERTIFICATES,
        &certificate("web", &format!("127.0.0.1:{}", workload.port)),
    )
    .await?;
    api.create(CERTIFICATES, &certificate("bad", "https://127.0.0.1:443/path"))
        .await?;
    let path = format!("{CERTIFICATES}/web");

    // Issued, but the workload serves another certificate: Served=False, class apply.
    let not_served = api
        .wait_until("Served=False", &path, |c| {
            condition(c, "Served").is_some_and(|s| s["status"] == "False")
        })
        .await?;
    assert!(
        ready(&not_served),
        "the certificate is valid: {}",
        not_served["status"]
    );
    let served = condition(&not_served, "Served").unwrap();
    assert_eq!(served["reason"], "NotServed");
    let message = served["message"].as_str().unwrap_or_default();
    assert!(message.contains("not the certificate written"), "{message}");
    assert_eq!(not_served["status"]["certkeeper"]["failureClass"], "apply");
    assert!(
        condition(&not_served, "Issuing").is_none(),
        "{}",
        not_served["status"]
    );
    let revision = not_served["status"]["revision"].clone();

    // The workload loads the Secret's certificate: Verified, the failure cleared, no re-issue.
    let secret = api.get(&format!("{SECRETS}/web-tls")).await?.unwrap();
    workload.load(&decode(&secret, "tls.crt"), &decode(&secret, "tls.key"));
    let verified = api
        .wait_until("Served=True", &path, |c| {
            condition(c, "Served").is_some_and(|s| s["status"] == "True")
        })
        .await?;
    assert_eq!(condition(&verified, "Served").unwrap()["reason"], "Verified");
    assert_eq!(verified["status"]["revision"], revision, "issued again");
    assert!(
        verified["status"]["certkeeper"].is_null(),
        "{}",
        verified["status"]
    );

    // A hostile address: the Certificate is invalid, and says which annotation.
    let bad = api
        .wait_until("bad not Ready", &format!("{CERTIFICATES}/bad"), |c| {
            condition(c, "Ready").is_some_and(|r| r["status"] == "False")
        })
        .await?;
    let message = condition(&bad, "Ready").unwrap()["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(message.contains("certkeeper.io/verify"), "{message}");
    assert!(api.get(&format!("{SECRETS}/bad-tls")).await?.is_none());
    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(30), controller).await???;
    Ok(())
}
