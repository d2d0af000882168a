//! The API server hangs (SIGSTOP: connections open, nothing answers) while a Certificate is due
//! for renewal, against a genuine kube-apiserver and OpenBao: the controller keeps serving what
//! it has, shows the transient failure on its own endpoint, asks Vault to sign once (the
//! retries write the certificate already signed), and once the API server answers again (SIGCONT) the renewal lands and the status
//! catches up with the Secret without anyone touching anything.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use certkeeper_testkit::{KubeApiServer, free_port};
use common::{
    Api, CERTIFICATES, NS, config_for, decode, installed, leaf, metric_sum, not_after, ready,
    spawn_controller, start_with_vault_issuer,
};
use serde_json::{Value, json};

const CERT: &str = "/apis/cert-manager.io/v1/namespaces/apps/certificates/web";
const SECRET: &str = "/api/v1/namespaces/apps/secrets/web-tls";

/// SIGSTOP / SIGCONT to the apiserver process; resumed on drop whatever happens.
struct Hung(u32);

impl Hung {
    fn new(kube: &KubeApiServer) -> Result<Self> {
        let pid = kube.pids().0;
        signal(pid, "-STOP")?;
        Ok(Hung(pid))
    }
}

impl Drop for Hung {
    fn drop(&mut self) {
        let _ = signal(self.0, "-CONT");
    }
}

fn signal(pid: u32, sig: &str) -> Result<()> {
    let status = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()?;
    if !status.success() {
        bail!("kill {sig} {pid}: {status}");
    }
    Ok(())
}

/// web's row on the controller's /api/v1/status.
async fn row(http: &reqwest::Client, port: u16) -> Result<Value> {
    let rows: Value = http
        .get(format!("http://127.0.0.1:{port}/api/v1/status"))
        .send()
        .await?
        .json()
        .await?;
    rows.as_array()
        .and_then(|r| r.iter().find(|r| r["name"] == "apps/web"))
        .cloned()
        .context("web in /api/v1/status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_api_server_delays_a_renewal_and_loses_nothing() -> Result<()> {
    if !installed() {
        return Ok(());
    }
    let (kube, _bao, _token) = start_with_vault_issuer().await?;
    let api = Api::new(&kube)?;
    let port = free_port();
    let mut config = config_for(&kube, kube.admin_token());
    config.listen = Some(format!("127.0.0.1:{port}").parse()?);
    // The JSON status has its own (loopback) listener; the metrics one does not serve it.
    let status_port = free_port();
    config.status_listen = Some(format!("127.0.0.1:{status_port}").parse()?);
    config.kube.request_timeout = Duration::from_secs(2);
    let (stop_tx, controller) = spawn_controller(config);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;

    // Renewal about 30 s after issuance (renewBefore 59m30s of 1h).
    api.create(
        CERTIFICATES,
        &json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
                "metadata": {"name": "web", "namespace": NS},
                "spec": {"secretName": "web-tls", "commonName": "web.example.com", "duration": "1h",
                         "renewBefore": "59m30s", "issuerRef": {"name": "vault"}}}),
    )
    .await?;
    let api_renewal = api.wait_until("web Ready", CERT, ready).await?["status"]["renewalTime"].clone();
    let first_serial = leaf(&decode(&api.get(SECRET).await?.unwrap(), "tls.crt")).0;

    // Hung through the renewal: the failure shows on the controller's endpoint.
    let attempts_before = metric_sum(&http, port, "certkeeper_issuance_attempts_total", "").await?;
    let signs_before = metric_sum(
        &http,
        port,
        "certkeeper_vault_requests_total",
        "operation=\"sign\"",
    )
    .await?;
    let hung = Hung::new(&kube)?;
    let hung_at = Instant::now();
    eprintln!("API server hung; web renews at {api_renewal}");
    let failing = loop {
        let r = row(&http, status_port).await?;
        if r["lastFailure"]["class"] == "transient" {
            break r;
        }
        if hung_at.elapsed() > Duration::from_secs(90) {
            bail!("no transient failure while the API server hangs: {r}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    eprintln!(
        "API server hung -> after {:?}: {}",
        hung_at.elapsed(),
        failing["lastFailure"]
    );
    assert!(
        failing["ready"] == true,
        "the valid certificate is still served: {failing}"
    );
    let message = failing["lastFailure"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("timed out"), "the cause is named: {message}");
    tokio::time::sleep(Duration::from_secs(15)).await;
    let attempts = metric_sum(&http, port, "certkeeper_issuance_attempts_total", "").await? - attempts_before;
    let signs = metric_sum(
        &http,
        port,
        "certkeeper_vault_requests_total",
        "operation=\"sign\"",
    )
    .await?
        - signs_before;
    eprintln!(
        "{attempts} attempts, {signs} sign requests to Vault in {:?} of a hung API server",
        hung_at.elapsed()
    );
    assert!(
        (2.0..=8.0).contains(&attempts),
        "retried, bounded by the backoff: {attempts}"
    );
    assert_eq!(
        signs, 1.0,
        "signed once; the retries write the certificate already signed"
    );
    drop(hung);
    let resumed = Instant::now();

    // Renewed without help; the status agrees with the Secret.
    let until = Instant::now() + Duration::from_secs(90);
    loop {
        let cert = api.get(CERT).await?.unwrap();
        let secret = api.get(SECRET).await?.unwrap();
        let served = leaf(&decode(&secret, "tls.crt")).0;
        let status = &cert["status"];
        let caught_up = ready(&cert)
            && status["certkeeper"].is_null()
            && status["revision"].as_u64() >= Some(2)
            && served != first_serial
            && status["notAfter"] == not_after(&secret);
        if caught_up {
            eprintln!(
                "API server back -> renewed and status caught up in {:?} (revision {})",
                resumed.elapsed(),
                status["revision"]
            );
            break;
        }
        if Instant::now() > until {
            bail!("not renewed, or status behind the Secret: {status}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(30), controller).await???;
    Ok(())
}
