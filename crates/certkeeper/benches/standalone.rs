//! Standalone certkeeper against the raw OpenBao ceiling, in one run on one dev server.
//!
//! 1. raw: a minimal HTTP loop posting pre-made P-256 CSRs (AppRole token, same concurrency);
//! 2. certkeeper: the release binary issuing BENCH_CERTS new certificates from manifests
//!    (keys generated, CSRs built, answers verified, files written, state persisted);
//! 3. its RSS once they are all issued, and with a single certificate;
//! 4. a restart with every certificate valid: time to /readyz and requests sent (must be 0).
//!
//! `scripts/bench-standalone` runs it. Knobs: BENCH_CERTS (default 2000), BENCH_CONCURRENCY (8),
//! BENCH_DIR (output filesystem), BENCH_INSPECT_SECS (keep the daemon up for inspection).
#![allow(clippy::unwrap_used, clippy::too_many_arguments)] // a benchmark states its expectations by unwrapping

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use certkeeper_testkit::{DevServer, PkiOptions, free_port};
use common::{cpu_secs, env_or, listing_only, rss_kib};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_certkeeper");

fn write_setup(
    root: &Path,
    addr: &str,
    sign_path: &str,
    role_id: &str,
    secret_id: &str,
    n: usize,
    port: u16,
    conc: usize,
) {
    for d in ["manifests", "secrets/default/approle", "state", "certs"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("secrets/default/approle/secretId"), secret_id).unwrap();
    let mut m = format!(
        "apiVersion: cert-manager.io/v1\nkind: Issuer\nmetadata: {{name: vault, namespace: default}}\nspec:\n  vault:\n    server: {addr}\n    path: {sign_path}\n    auth:\n      appRole: {{path: approle, roleId: {role_id}, secretRef: {{name: approle, key: secretId}}}}\n"
    );
    for i in 0..n {
        m.push_str(&format!(
            "---\napiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {{name: c{i}, namespace: default}}\nspec:\n  secretName: c{i}-tls\n  commonName: c{i}.example.com\n  dnsNames: [c{i}.example.com]\n  duration: 24h\n  privateKey: {{algorithm: ECDSA, size: 256}}\n  issuerRef: {{name: vault}}\n"
        ));
    }
    std::fs::write(root.join("manifests/all.yaml"), m).unwrap();
    std::fs::write(
        root.join("certkeeper.yaml"),
        format!(
            "manifests: manifests\nstateDir: state\nlisten: 127.0.0.1:{port}\nlog: {{level: warn}}\nsecrets: {{dir: secrets}}\nissuers: {{concurrency: {conc}, ratePerSecond: 100000, burst: 100000}}\n"
        ),
    )
    .unwrap();
}

async fn metrics(http: &reqwest::Client, port: u16) -> Option<String> {
    http.get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()
}

/// Ready certificates according to the daemon's `/api/v1/summary`.
async fn summary_ready(http: &reqwest::Client, port: u16) -> Option<usize> {
    let v: serde_json::Value = http
        .get(format!("http://127.0.0.1:{port}/api/v1/summary"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    v["ready"].as_u64().and_then(|r| usize::try_from(r).ok())
}

fn ready_count(text: &str) -> usize {
    text.lines()
        .filter(|l| {
            l.starts_with("certmanager_certificate_ready_status")
                && l.contains("condition=\"True\"")
                && l.ends_with(" 1")
        })
        .count()
}

fn sign_requests(text: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with("certkeeper_vault_requests_total") && l.contains("operation=\"sign\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// A certkeeper process, killed if the benchmark bails out before stopping it.
struct Daemon(Child);

impl Daemon {
    fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(root: &Path) -> Daemon {
    Daemon(
        Command::new(BIN)
            .args(["run", "--config"])
            .arg(root.join("certkeeper.yaml"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    )
}

/// SIGTERM and wait: a clean shutdown, as an operator would do it.
fn stop(mut d: Daemon) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(d.0.id().to_string())
        .status();
    let _ = d.0.wait();
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    if listing_only() {
        return Ok(());
    }
    let n = env_or("BENCH_CERTS", 2000);
    let conc = env_or("BENCH_CONCURRENCY", 8);
    let bao = DevServer::start().await?;
    let admin = bao.admin();
    let pki = admin.setup_pki(PkiOptions::default()).await?;
    let (role_id, secret_id) = admin
        .approle_role("approle", "bench", &[&pki.policy], 0, "")
        .await?;
    let http = reqwest::Client::new();

    // 1. Raw ceiling: pre-made CSRs, an AppRole token, the same concurrency.
    let login: serde_json::Value = http
        .post(format!("{}/v1/auth/approle/login", bao.addr()))
        .json(&json!({"role_id": role_id, "secret_id": secret_id}))
        .send()
        .await?
        .json()
        .await?;
    let token = login["auth"]["client_token"]
        .as_str()
        .context("token")?
        .to_owned();
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..256)
            .map(|i| {
                let cn = format!("raw{i}.example.com");
                let key = rcgen::KeyPair::generate().unwrap();
                let mut p = rcgen::CertificateParams::new(vec![cn.clone()]).unwrap();
                p.distinguished_name.push(rcgen::DnType::CommonName, cn.clone());
                let csr = p.serialize_request(&key).unwrap().pem().unwrap();
                serde_json::to_vec(&json!({"csr": csr, "common_name": cn, "alt_names": cn, "ttl": "86400s", "exclude_cn_from_sans": true})).unwrap()
            })
            .collect(),
    );
    let url = format!("{}/v1/{}", bao.addr(), pki.sign_path);
    let next = Arc::new(AtomicUsize::new(0));
    let bao_cpu0 = cpu_secs(bao.pid());
    let t = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..conc {
        let (http, url, token, bodies, next) = (
            http.clone(),
            url.clone(),
            token.clone(),
            bodies.clone(),
            next.clone(),
        );
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, anyhow::Error>(());
                }
                let r = http
                    .post(&url)
                    .header("X-Vault-Token", &token)
                    .body(bodies[i % bodies.len()].clone())
                    .send()
                    .await?;
                if !r.status().is_success() {
                    bail!("raw sign: {}", r.status());
                }
                r.bytes().await?;
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    let raw = n as f64 / t.elapsed().as_secs_f64();
    let bao_cpu_raw = cpu_secs(bao.pid()) - bao_cpu0;

    // 2. certkeeper issuing n new certificates.
    // BENCH_DIR chooses the filesystem the certificates and state are written to: /tmp here is
    // ext4 without a journal, whose inode allocator dominates the daemon's CPU (perf: ~90% in
    // the kernel, mostly `recently_deleted`); /dev/shm separates certkeeper's own cost from that.
    let base = std::env::var("BENCH_DIR").unwrap_or_else(|_| std::env::temp_dir().display().to_string());
    let dir = tempfile::tempdir_in(&base)?;
    println!("output filesystem: {base}");
    let port = free_port();
    write_setup(
        dir.path(),
        &bao.addr(),
        &pki.sign_path,
        &role_id,
        &secret_id,
        n,
        port,
        conc,
    );
    let bao_cpu0 = cpu_secs(bao.pid());
    let t = Instant::now();
    let child = start(dir.path());
    let pid = child.id();
    let mut first_issued: Option<f64> = None;
    let deadline = t + Duration::from_secs(600);
    loop {
        if let Some(ready) = summary_ready(&http, port).await {
            if ready > 0 && first_issued.is_none() {
                first_issued = Some(t.elapsed().as_secs_f64());
            }
            if ready >= n {
                break;
            }
        }
        if Instant::now() > deadline {
            bail!("certkeeper did not issue {n} certificates in 600 s");
        }
        // /api/v1/summary counts without copying anything (a /metrics scrape renders every
        // certificate: polling it 5 times a second took ~20% of the daemon's CPU at 8000).
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let issue_secs = t.elapsed().as_secs_f64();
    let cpu = cpu_secs(pid);
    let bao_cpu_ours = cpu_secs(bao.pid()) - bao_cpu0;
    let startup_secs = first_issued.unwrap_or(0.0);
    let ours = n as f64 / issue_secs;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_n = rss_kib(pid);
    // BENCH_INSPECT_SECS: keep the daemon running for a look from outside (smaps, perf, heaptrack).
    let inspect = env_or("BENCH_INSPECT_SECS", 0);
    if inspect > 0 {
        println!(
            "daemon pid {pid} with {n} certificates, state in {}: inspecting for {inspect} s",
            dir.path().display()
        );
        tokio::time::sleep(Duration::from_secs(inspect as u64)).await;
    }

    // 4. Restart with everything valid.
    stop(child);
    let t = Instant::now();
    let child = start(dir.path());
    loop {
        if let Ok(r) = http.get(format!("http://127.0.0.1:{port}/readyz")).send().await
            && r.status().is_success()
        {
            break;
        }
        if t.elapsed() > Duration::from_secs(120) {
            bail!("restart: not ready in 120 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ready_secs = t.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let m = metrics(&http, port).await.unwrap_or_default();
    let resent = sign_requests(&m);
    let ready_after = ready_count(&m);
    stop(child);

    // 3b. One certificate.
    let one = tempfile::tempdir()?;
    let port1 = free_port();
    write_setup(
        one.path(),
        &bao.addr(),
        &pki.sign_path,
        &role_id,
        &secret_id,
        1,
        port1,
        conc,
    );
    let child = start(one.path());
    let pid1 = child.id();
    let t = Instant::now();
    while metrics(&http, port1).await.is_none_or(|m| ready_count(&m) < 1)
        && t.elapsed() < Duration::from_secs(60)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_1 = rss_kib(pid1);
    stop(child);

    println!(
        "certificates: {n} new ECDSA P-256, concurrency {conc}, one OpenBao dev server, AppRole token on both sides"
    );
    println!("raw sign ceiling (pre-made CSRs):      {raw:8.1} certificates/s");
    println!(
        "certkeeper (keys, CSRs, verify, files): {ours:8.1} certificates/s ({issue_secs:.2} s) ratio {:.3}",
        ours / raw
    );
    println!(
        "  of which start-up (config, {n} manifests, state) until the first is ready: {startup_secs:.2} s"
    );
    println!(
        "certkeeper CPU for the issuance:        {:.2} ms per certificate ({cpu:.2} s in all)",
        cpu * 1000.0 / n as f64
    );
    println!(
        "OpenBao CPU per certificate:            {:.2} ms in the raw run, {:.2} ms with certkeeper \
         (2 cores shared by both: the ceiling is OpenBao's CPU)",
        bao_cpu_raw * 1000.0 / n as f64,
        bao_cpu_ours * 1000.0 / n as f64
    );
    println!(
        "certkeeper RSS with {n} certificates:  {:.1} MiB",
        rss_n as f64 / 1024.0
    );
    println!(
        "certkeeper RSS with 1 certificate:     {:.1} MiB",
        rss_1 as f64 / 1024.0
    );
    println!(
        "restart with {n} valid certificates: ready in {ready_secs:.3} s, sign requests sent: {resent}, ready after restart: {ready_after}"
    );
    Ok(())
}
