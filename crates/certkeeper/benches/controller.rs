//! `certkeeper controller` (release binary) against a genuine kube-apiserver v1.20.2 and an
//! OpenBao dev server, both local:
//!
//! 1. BENCH_CERTS (default 1000) Certificates created at once (16 concurrent creates): time from
//!    the first create until every one is Ready (seen by a watch of the Certificates), the
//!    controller's RSS meanwhile (peak) and 2 s after;
//! 2. BENCH_UNRELATED (default 10000) unrelated 4 KB Secrets created: the controller's RSS after
//!    (it never watches them: only the target Secrets, by label, and referenced ones, by name).
//!
//! Until all are Ready it also counts the controller's API requests per issuance (the API
//! server's `apiserver_request_total` by verb and resource, less the benchmark's own creates and
//! watch) and the CPU seconds of each process on the machine (what bounds the time to Ready).
//!
//! Targets from issue 4: all Ready within 60 s with RSS <= 100 MB; RSS <= 80 MB with 10,000
//! unrelated Secrets. `scripts/bench-controller` runs it; BENCH_BIN=<path> runs another build
//! of certkeeper (an earlier commit's, to compare).
#![allow(clippy::unwrap_used)] // a benchmark states its expectations by unwrapping

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use certkeeper_testkit::{DevServer, KubeApiServer, PkiOptions, free_port};
use common::{cpu_secs, env_or, listing_only, rss_kib};
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
    /// For the watch: HTTP/1.1, its own connection (over HTTP/2, beside thousands of creates
    /// on the same connection, the h2 client may end it for "excessive resets").
    watch_client: reqwest::Client,
    /// POSTs sent (every try), to tell the benchmark's requests from the controller's.
    posts: Arc<AtomicU64>,
}

impl Api {
    fn new(kube: &KubeApiServer) -> Result<Self> {
        let ca = reqwest::Certificate::from_pem(kube.ca_pem().as_bytes())?;
        Ok(Api {
            url: kube.url(),
            token: kube.admin_token().to_owned(),
            client: reqwest::Client::builder()
                .no_proxy()
                .tls_certs_only([ca.clone()])
                .timeout(Duration::from_secs(60))
                .build()?,
            watch_client: reqwest::Client::builder()
                .no_proxy()
                .tls_certs_only([ca])
                .http1_only()
                .build()?,
            posts: Arc::default(),
        })
    }

    async fn post(&self, path: &str, body: &Value) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            self.posts.fetch_add(1, Ordering::Relaxed);
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

    /// `apiserver_request_total` summed by (verb, resource[/subresource]) over codes.
    async fn request_counts(&self) -> Result<BTreeMap<(String, String), u64>> {
        let text = self
            .client
            .get(format!("{}/metrics", self.url))
            .bearer_auth(&self.token)
            .send()
            .await?
            .text()
            .await?;
        let mut counts = BTreeMap::new();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
                continue;
            };
            let Some((labels, value)) = rest.rsplit_once("} ") else {
                continue;
            };
            let label = |name: &str| {
                labels
                    .split("\",")
                    .find_map(|kv| kv.strip_prefix(&format!("{name}=\"")))
                    .map(|v| v.trim_end_matches('"').to_owned())
                    .unwrap_or_default()
            };
            let (resource, sub) = (label("resource"), label("subresource"));
            if resource.is_empty() {
                continue;
            }
            let what = if sub.is_empty() {
                resource
            } else {
                format!("{resource}/{sub}")
            };
            *counts.entry((label("verb"), what)).or_default() +=
                value.trim().parse::<f64>().unwrap_or(0.0) as u64;
        }
        Ok(counts)
    }
}

/// Waits until `n` Certificates of namespace `apps` are Ready, watching them from `rv`, and
/// samples the controller's RSS every 500 ms meanwhile: (time since `started`, RSS peak MiB).
/// A watch the API server ends early (it closes a watcher that falls behind, as on a loaded
/// machine) is resumed from the last version seen.
async fn wait_ready(
    api: Api,
    mut rv: String,
    n: usize,
    started: Instant,
    pid: u32,
) -> Result<(Duration, f64)> {
    let mut ready = std::collections::HashSet::new();
    let mut peak = 0.0f64;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut resumes = 0;
    loop {
        let mut resp = api
            .watch_client
            .get(format!(
                "{}/apis/cert-manager.io/v1/namespaces/apps/certificates?watch=1&resourceVersion={rv}&timeoutSeconds=900",
                api.url
            ))
            .bearer_auth(&api.token)
            .timeout(Duration::from_secs(900))
            .send()
            .await?
            .error_for_status()?;
        let mut buf = Vec::new();
        loop {
            tokio::select! {
                chunk = resp.chunk() => {
                    let Some(chunk) = chunk? else { break };
                    buf.extend_from_slice(&chunk);
                    while let Some(end) = buf.iter().position(|&b| b == b'\n') {
                        let line: Vec<u8> = buf.drain(..=end).collect();
                        let event: Value = serde_json::from_slice(&line)?;
                        let certificate = &event["object"];
                        if event["type"] == "ERROR" {
                            bail!("watch error: {certificate}");
                        }
                        if let Some(v) = certificate["metadata"]["resourceVersion"].as_str() {
                            v.clone_into(&mut rv);
                        }
                        let name = certificate["metadata"]["name"].as_str().unwrap_or_default().to_owned();
                        let is_ready = event["type"] != "DELETED"
                            && certificate["status"]["conditions"]
                                .as_array()
                                .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"));
                        if is_ready {
                            ready.insert(name);
                        } else {
                            ready.remove(&name);
                        }
                    }
                    if ready.len() == n {
                        return Ok((started.elapsed(), peak.max(rss_mib(pid))));
                    }
                }
                _ = tick.tick() => {
                    peak = peak.max(rss_mib(pid));
                    if started.elapsed() > Duration::from_secs(600) {
                        bail!("only {}/{n} Ready after 600 s", ready.len());
                    }
                }
            }
        }
        resumes += 1;
        if resumes > 20 {
            bail!("the watch ended 20 times; {}/{n} Ready", ready.len());
        }
        eprintln!(
            "the watch ended with {}/{n} Ready; resuming from {rv}",
            ready.len()
        );
    }
}

/// CPU seconds so far of the processes that share the machine.
fn cpu_of(pids: &[(&'static str, u32)]) -> Vec<(&'static str, f64)> {
    pids.iter().map(|&(name, pid)| (name, cpu_secs(pid))).collect()
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
    // BENCH_BIN: another build of certkeeper to measure (an earlier commit's, to compare).
    let bin = std::env::var("BENCH_BIN").unwrap_or_else(|_| BIN.to_owned());
    let child = Command::new(&bin)
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
    let (apiserver_pid, etcd_pid) = kube.pids();
    let processes = [
        ("controller", pid),
        ("kube-apiserver", apiserver_pid),
        ("etcd", etcd_pid),
        ("openbao", bao.pid()),
        ("benchmark", std::process::id()),
    ];
    // Readiness comes from a watch: re-listing thousands of Certificates every half second
    // would cost the API server about as much CPU as the controller's own requests.
    let listed = api
        .get("/apis/cert-manager.io/v1/namespaces/apps/certificates")
        .await?;
    let rv = listed["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let requests_before = api.request_counts().await?;
    let posts_before = api.posts.load(Ordering::Relaxed);
    let cpu_before = cpu_of(&processes);
    let started = Instant::now();
    let waiter = tokio::spawn(wait_ready(api.clone(), rv, n, started, pid));
    post_all(
        &api,
        "/apis/cert-manager.io/v1/namespaces/apps/certificates",
        bodies,
        16,
    )
    .await?;
    let created = started.elapsed();
    let (all_ready, peak) = waiter.await??;
    let cpu_after = cpu_of(&processes);
    let posts = api.posts.load(Ordering::Relaxed) - posts_before;
    let mut requests = api.request_counts().await?;
    for (key, before) in &requests_before {
        if let Some(count) = requests.get_mut(key) {
            *count = count.saturating_sub(*before);
        }
    }
    // The benchmark's own: its creates and its watch.
    for (key, own) in [
        (("POST".to_owned(), "certificates".to_owned()), posts),
        (("WATCH".to_owned(), "certificates".to_owned()), 1),
    ] {
        if let Some(count) = requests.get_mut(&key) {
            *count = count.saturating_sub(own);
        }
    }
    requests.retain(|_, count| *count > 0);
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
    let total: u64 = requests.values().sum();
    println!(
        "controller API requests until all Ready: {total}, {:.2} per certificate",
        total as f64 / n as f64
    );
    for ((verb, what), count) in &requests {
        println!(
            "  {verb:<6} {what:<28} {count:>7} ({:.2} per certificate)",
            *count as f64 / n as f64
        );
    }
    let cpu: Vec<String> = cpu_before
        .iter()
        .zip(&cpu_after)
        .map(|((name, before), (_, after))| {
            let secs = after - before;
            format!(
                "{name} {secs:.1} s ({:.0}%)",
                100.0 * secs / all_ready.as_secs_f64()
            )
        })
        .collect();
    println!("CPU until all Ready (of 2 cores = 200%): {}", cpu.join(", "));

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
