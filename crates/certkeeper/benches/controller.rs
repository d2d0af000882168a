//! `certkeeper controller` (release binary) against a genuine kube-apiserver v1.20.2 and an
//! OpenBao dev server, both local:
//!
//! 1. BENCH_CERTS (default 1000) Certificates created at once (16 concurrent creates): time from
//!    the first create until every one is Ready, and the controller's RSS then;
//! 2. BENCH_UNRELATED (default 10000) unrelated 4 KB Secrets created: the controller's RSS after
//!    (it never watches them: only the target Secrets, by label, and referenced ones, by name).
//!
//! Targets from issue 4: all Ready within 60 s with RSS <= 100 MB; RSS <= 80 MB with 10,000
//! unrelated Secrets. `scripts/bench-controller` runs it.
#![allow(clippy::unwrap_used)] // a benchmark states its expectations by unwrapping

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use certkeeper_testkit::{DevServer, KubeApiServer, PkiOptions, free_port};
use common::{env_or, listing_only, rss_kib};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_certkeeper");

fn rss_mib(pid: u32) -> f64 {
    rss_kib(pid) as f64 / 1024.0
}

#[derive(Clone)]
struct Api {
    url: String,
    token: String,
    client: reqwest::Client,
}

impl Api {
    fn new(kube: &KubeApiServer) -> Result<Self> {
        let ca = reqwest::Certificate::from_pem(kube.ca_pem().as_bytes())?;
        Ok(Api {
            url: kube.url(),
            token: kube.admin_token().to_owned(),
            client: reqwest::Client::builder()
                .no_proxy()
                .tls_certs_only([ca])
                .timeout(Duration::from_secs(60))
                .build()?,
        })
    }

    async fn post(&self, path: &str, body: &Value) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let sent = self
                .client
                .post(format!("{}{path}", self.url))
                .bearer_auth(&self.token)
                .json(body)
                .send()
                .await;
            let resp = match sent {
                Ok(r) => r,
                // The apiserver under load may drop a connection: retry.
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let status = resp.status().as_u16();
            match status {
                200..=299 | 409 => return Ok(()),
                404 | 429 | 500..=599 if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await
                }
                _ => bail!(
                    "POST {path} -> {status}: {}",
                    resp.text().await.unwrap_or_default()
                ),
            }
        }
    }

    async fn get(&self, path: &str) -> Result<Value> {
        let resp = self
            .client
            .get(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .send()
            .await?;
        Ok(resp.json().await?)
    }
}

/// POSTs every body to `path`, `concurrency` at a time.
async fn post_all(api: &Api, path: &str, bodies: Vec<Value>, concurrency: usize) -> Result<()> {
    let bodies = Arc::new(tokio::sync::Mutex::new(bodies));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (api, bodies, path) = (api.clone(), bodies.clone(), path.to_owned());
        tasks.push(tokio::spawn(async move {
            loop {
                let Some(body) = bodies.lock().await.pop() else {
                    return Ok::<(), anyhow::Error>(());
                };
                api.post(&path, &body).await?;
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

struct Controller(Child);

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    if listing_only() {
        return Ok(());
    }
    let n = env_or("BENCH_CERTS", 1000);
    let unrelated = env_or("BENCH_UNRELATED", 10_000);
    let (kube, bao) = tokio::join!(KubeApiServer::start(), DevServer::start());
    let (kube, bao) = (kube?, bao?);
    let admin = bao.admin();
    let pki = admin.setup_pki(PkiOptions::default()).await?;
    let token = admin.create_token(&[&pki.policy], "4h", true, 0).await?;
    let api = Api::new(&kube)?;
    for crd in certkeeper_crds::crds() {
        api.post(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            &crd.to_json(),
        )
        .await?;
    }
    kube.create_namespace("apps").await?;
    kube.create_namespace("noise").await?;
    api.post(
        "/api/v1/namespaces/apps/secrets",
        &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "vault-token"},
                "stringData": {"token": token}}),
    )
    .await?;
    api.post(
        "/apis/cert-manager.io/v1/namespaces/apps/issuers",
        &json!({"apiVersion": "cert-manager.io/v1", "kind": "Issuer", "metadata": {"name": "vault"},
                "spec": {"vault": {"server": bao.addr(), "path": pki.sign_path,
                                   "auth": {"tokenSecretRef": {"name": "vault-token", "key": "token"}}}}}),
    )
    .await?;

    let dir = tempfile::tempdir()?;
    let (token_file, ca_file) = (dir.path().join("token"), dir.path().join("ca.crt"));
    std::fs::write(&token_file, kube.admin_token())?;
    std::fs::write(&ca_file, kube.ca_pem())?;
    let log = std::fs::File::create(dir.path().join("controller.log"))?;
    let port = free_port();
    let child = Command::new(BIN)
        .arg("controller")
        .args(["--kube-server", &kube.url()])
        .arg("--token-file")
        .arg(&token_file)
        .arg("--ca-file")
        .arg(&ca_file)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("CERTKEEPER_LOG", "warn")
        .stdout(log.try_clone()?)
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .context("starting the controller")?;
    let controller = Controller(child);
    let pid = controller.0.id();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = rss_mib(pid);

    let bodies: Vec<Value> = (0..n)
        .map(|i| {
            json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
                   "metadata": {"name": format!("c{i}")},
                   "spec": {"secretName": format!("c{i}-tls"), "commonName": format!("c{i}.example.com"),
                            "duration": "24h", "privateKey": {"algorithm": "ECDSA", "size": 256},
                            "issuerRef": {"name": "vault"}}})
        })
        .collect();
    let started = Instant::now();
    post_all(
        &api,
        "/apis/cert-manager.io/v1/namespaces/apps/certificates",
        bodies,
        16,
    )
    .await?;
    let created = started.elapsed();
    let mut peak = 0.0f64;
    let all_ready = loop {
        let list = api
            .get("/apis/cert-manager.io/v1/namespaces/apps/certificates")
            .await?;
        let ready = list["items"].as_array().map_or(0, |items| {
            items
                .iter()
                .filter(|c| {
                    c["status"]["conditions"]
                        .as_array()
                        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
                })
                .count()
        });
        peak = peak.max(rss_mib(pid));
        if ready == n {
            break started.elapsed();
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!("only {ready}/{n} Ready after 600 s");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_mib(pid);
    println!("certificates: {n} created in {created:.1?} (16 concurrent creates)");
    println!(
        "all Ready {all_ready:.1?} after the first create (target 60 s): {}",
        if all_ready <= Duration::from_secs(60) {
            "PASS"
        } else {
            "FAIL"
        }
    );
    println!(
        "controller RSS: idle {idle:.1} MiB, peak while issuing {peak:.1} MiB, after {after:.1} MiB (target 100 MB): {}",
        if peak * 1.048_576 <= 100.0 { "PASS" } else { "FAIL" }
    );
    let events = api.get("/api/v1/namespaces/apps/events").await?;
    let issued_events = events["items"].as_array().map_or(0, |items| {
        items.iter().filter(|e| e["reason"] == "Issued").count()
    });
    println!("Events: {issued_events} 'Issued' for {n} certificates (2 s after all Ready)");

    if unrelated > 0 {
        let payload = "x".repeat(4096);
        let bodies: Vec<Value> = (0..unrelated)
            .map(|i| {
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": format!("noise-{i}")},
                       "stringData": {"data": payload}})
            })
            .collect();
        let t = Instant::now();
        post_all(&api, "/api/v1/namespaces/noise/secrets", bodies, 16).await?;
        tokio::time::sleep(Duration::from_secs(5)).await;
        let with_noise = rss_mib(pid);
        println!(
            "{unrelated} unrelated 4 KB Secrets created in {:.1?}; controller RSS {with_noise:.1} MiB (target 80 MB): {}",
            t.elapsed(),
            if with_noise * 1.048_576 <= 80.0 {
                "PASS"
            } else {
                "FAIL"
            }
        );
    }
    drop(controller);
    Ok(())
}
