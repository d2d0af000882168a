//! Recovery from a sealed OpenBao, with the release binary against one dev server.
//!
//! Target (the project's issue): BENCH_CERTS (500) certificates due while OpenBao is sealed for
//! BENCH_SEAL_SECS (60): every one renewed within 10 s of the unseal, and the requests sent to
//! Vault during the outage at most one per second per issuer on average.
//!
//! 1. dev server, PKI, AppRole; BENCH_CERTS ECDSA P-256 certificates of one Issuer, issued by
//!    `certkeeper run` (certkeeper's default issuer limits unless BENCH_RATE is set);
//! 2. seal OpenBao, then `certkeeper renew --all --wait 0` (files the request; the daemon takes
//!    it within a second): every certificate is due while Vault answers 503;
//! 3. keep it sealed BENCH_SEAL_SECS, counting requests twice: certkeeper's own counter
//!    (`certkeeper_vault_requests_total`, all labels, delta seal..unseal) and the HTTP requests
//!    seen on the wire by a counting TCP proxy between certkeeper and OpenBao (a sealed OpenBao
//!    audits nothing, so its audit log cannot tell); also certkeeper's CPU, bytes written and
//!    failures recorded meanwhile (attempts its gate refuses locally never reach Vault);
//! 4. unseal; a certificate counts as renewed when its revision in `/api/v1/status` went up
//!    (a new certificate verified, written and recorded), checked afterwards against a changed
//!    serial and a later notAfter. Expect about the next probe (at most 5 s after the unseal)
//!    plus (BENCH_CERTS - burst) / ratePerSecond: the gate releases them at its rate.
//!
//! `scripts/bench-recovery` runs it. Knobs: BENCH_CERTS (500), BENCH_SEAL_SECS (60), BENCH_RATE
//! (issuers.ratePerSecond; unset: certkeeper's default).
#![allow(clippy::unwrap_used)] // a benchmark states its expectations by unwrapping

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use certkeeper_testkit::{DevServer, PkiOptions, free_port};
use common::{cpu_secs, env_or, listing_only};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

const BIN: &str = env!("CARGO_BIN_EXE_certkeeper");
/// The issue's targets.
const MAX_REQ_PER_SEC: f64 = 1.0;
const MAX_RECOVERY_SECS: f64 = 10.0;

/// A TCP proxy on 127.0.0.1 that forwards to OpenBao and counts the HTTP/1.1 requests
/// certkeeper sends through it (request lines in the client-to-server bytes; a JSON body
/// escapes CR LF, so it cannot hold one). Dropping it closes every connection.
struct CountingProxy {
    port: u16,
    requests: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl CountingProxy {
    async fn start(upstream: &str) -> Result<Self> {
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let requests = Arc::new(AtomicU64::new(0));
        let count = requests.clone();
        let task = tokio::spawn(async move {
            // Owned by the accept task: aborting it drops and aborts every connection.
            let mut conns = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((client, _)) = accepted else {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        };
                        let (upstream, count) = (upstream.clone(), count.clone());
                        conns.spawn(async move {
                            let Ok(server) = TcpStream::connect(&upstream).await else { return };
                            let _ = client.set_nodelay(true);
                            let _ = server.set_nodelay(true);
                            let (cr, cw) = client.into_split();
                            let (sr, sw) = server.into_split();
                            tokio::join!(pump(cr, sw, Some(count)), pump(sr, cw, None));
                        });
                    }
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            }
        });
        Ok(CountingProxy { port, requests, task })
    }

    fn addr(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copy one direction until EOF or an error; count request lines if `count` is given.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    count: Option<Arc<AtomicU64>>,
) {
    const NEEDLE: &[u8] = b" HTTP/1.1\r\n";
    let mut buf = vec![0u8; 64 * 1024];
    // The bytes scanned so far that could still start a request line split across reads.
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(count) = &count {
            carry.extend_from_slice(&buf[..n]);
            let found = carry.windows(NEEDLE.len()).filter(|w| *w == NEEDLE).count();
            count.fetch_add(found as u64, Ordering::Relaxed);
            let keep = carry.len().min(NEEDLE.len() - 1);
            carry.drain(..carry.len() - keep);
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// A certkeeper process, killed if the benchmark bails out before stopping it.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(root: &Path) -> Result<Daemon> {
    let log = std::fs::File::create(root.join("certkeeper.log"))?;
    Ok(Daemon(
        Command::new(BIN)
            .args(["run", "--config"])
            .arg(root.join("certkeeper.yaml"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?,
    ))
}

/// SIGTERM and wait (bounded): a clean shutdown, as an operator would do it.
fn stop(mut d: Daemon) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(d.0.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = d.0.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("certkeeper did not stop 30 s after SIGTERM; killing it");
    // Drop kills it.
}

fn write_setup(
    root: &Path,
    addr: &str,
    sign_path: &str,
    role_id: &str,
    secret_id: &str,
    n: usize,
    port: u16,
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
    // Issuer limits: certkeeper's defaults, which is what the target is about, unless asked.
    let issuers = std::env::var("BENCH_RATE")
        .ok()
        .and_then(|r| r.parse::<f64>().ok())
        .map(|r| format!("issuers: {{ratePerSecond: {r}}}\n"))
        .unwrap_or_default();
    std::fs::write(
        root.join("certkeeper.yaml"),
        format!(
            "manifests: manifests\nstateDir: state\nlisten: 127.0.0.1:{port}\nlog: {{level: warn}}\nsecrets: {{dir: secrets}}\n{issuers}"
        ),
    )
    .unwrap();
}

async fn get(http: &reqwest::Client, port: u16, path: &str) -> Option<String> {
    http.get(format!("http://127.0.0.1:{port}{path}"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()
}

/// `certkeeper_vault_requests_total` by label set.
fn vault_requests(metrics: &str) -> BTreeMap<String, u64> {
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix("certkeeper_vault_requests_total{"))
        .filter_map(|l| {
            let (labels, value) = l.rsplit_once("} ")?;
            Some((labels.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

fn total(m: &BTreeMap<String, u64>) -> u64 {
    m.values().sum()
}

fn circuit(metrics: &str) -> String {
    metrics
        .lines()
        .filter(|l| l.starts_with("certkeeper_issuer_circuit_state{") && l.ends_with(" 1"))
        .filter_map(|l| l.split("state=\"").nth(1)?.split('"').next())
        .collect::<Vec<_>>()
        .join(",")
}

/// One certificate in `/api/v1/status`.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    revision: u64,
    serial: String,
    not_after: String,
    ready: bool,
    failure: Option<String>,
    /// RFC 3339 time of the last failure ("" without one).
    last_failure: String,
}

async fn status(http: &reqwest::Client, port: u16) -> Option<HashMap<String, Row>> {
    let body = get(http, port, "/api/v1/status").await?;
    let v: Value = serde_json::from_str(&body).ok()?;
    let rows = v.as_array()?;
    rows.iter()
        .map(|r| {
            let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
            Some((
                s("name"),
                Row {
                    revision: r.get("revision")?.as_u64()?,
                    serial: s("serial"),
                    not_after: s("notAfter"),
                    ready: r.get("ready")?.as_bool()?,
                    last_failure: r
                        .pointer("/lastFailure/lastFailure")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                    failure: r.get("lastFailure").map(|f| {
                        format!(
                            "{} x{}: {}",
                            f.get("class").and_then(Value::as_str).unwrap_or("?"),
                            f.get("attempts").and_then(Value::as_u64).unwrap_or(0),
                            f.get("message").and_then(Value::as_str).unwrap_or("")
                        )
                    }),
                },
            ))
        })
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Bytes a process asked to write so far (`wchar` of /proc/PID/io).
fn written_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("wchar:").and_then(|v| v.trim().parse().ok()))
        })
        .unwrap_or(0)
}

fn log_lines(root: &Path) -> usize {
    std::fs::read_to_string(root.join("certkeeper.log")).map_or(0, |t| t.lines().count())
}

fn log_tail(root: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(root.join("certkeeper.log")).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    if listing_only() {
        return Ok(());
    }
    let n = env_or("BENCH_CERTS", 500);
    let seal_secs = env_or("BENCH_SEAL_SECS", 60) as u64;
    let bao = DevServer::start().await?;
    let admin = bao.admin();
    let pki = admin.setup_pki(PkiOptions::default()).await?;
    let (role_id, secret_id) = admin
        .approle_role("approle", "bench", &[&pki.policy], 0, "")
        .await?;
    let proxy = CountingProxy::start(&bao.addr()).await?;
    let http = reqwest::Client::new();

    // 1. Everything issued and idle.
    let dir = tempfile::tempdir()?;
    let root = dir.path();
    let port = free_port();
    write_setup(root, &proxy.addr(), &pki.sign_path, &role_id, &secret_id, n, port);
    let config = root.join("certkeeper.yaml");
    let daemon = start(root)?;
    let t = Instant::now();
    let before = loop {
        if let Some(rows) = status(&http, port).await
            && rows.len() == n
            && rows
                .values()
                .all(|r| r.ready && r.revision >= 1 && r.failure.is_none())
        {
            break rows;
        }
        if t.elapsed() > Duration::from_secs(600) {
            bail!(
                "certkeeper did not issue {n} certificates in 600 s; log:\n{}",
                log_tail(root, 20)
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let issue_secs = t.elapsed().as_secs_f64();
    // Let attempts and writes settle: nothing may be in flight when the outage starts.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = status(&http, port).await.unwrap_or(before);

    // 2. Seal, then make everything due.
    let pid = daemon.0.id();
    let (cpu_seal, written_seal, log_seal) = (cpu_secs(pid), written_bytes(pid), log_lines(root));
    let m_seal = vault_requests(&get(&http, port, "/metrics").await.context("metrics")?);
    let p_seal = proxy.requests();
    admin.seal().await?;
    let t_seal = Instant::now();
    if admin.health().await.ok() != Some(503) {
        bail!("OpenBao did not report itself sealed");
    }
    let renew = tokio::process::Command::new(BIN)
        // --wait 0: file the request and return (the default waits up to 120 s).
        .args(["renew", "--all", "--wait", "0", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let renew = tokio::time::timeout(Duration::from_secs(30), renew)
        .await
        .context("certkeeper renew --all did not return in 30 s")??;
    if !renew.status.success() {
        bail!(
            "certkeeper renew --all: {}\n{}{}",
            renew.status,
            String::from_utf8_lossy(&renew.stdout),
            String::from_utf8_lossy(&renew.stderr)
        );
    }
    let renew_cli_secs = t_seal.elapsed().as_secs_f64();

    // 3. The outage: one sample a second of certkeeper's counter and the proxy's.
    let seal_for = Duration::from_secs(seal_secs);
    let mut per_sec_ours: Vec<u64> = Vec::new();
    let mut per_sec_wire: Vec<u64> = Vec::new();
    let (mut last_ours, mut last_wire) = (total(&m_seal), p_seal);
    let mut renewed_while_sealed = 0;
    // Failures recorded while sealed (a certificate's lastFailure moved; second resolution, so
    // a lower bound): attempts the gate refused locally count too, which Vault never sees.
    let mut failures_recorded = 0usize;
    let mut last_rows = before.clone();
    let mut tick = 1u64;
    loop {
        let at = t_seal + Duration::from_secs(tick).min(seal_for);
        tokio::time::sleep_until(at.into()).await;
        if let Some(m) = get(&http, port, "/metrics").await {
            let now = total(&vault_requests(&m));
            per_sec_ours.push(now.saturating_sub(last_ours));
            last_ours = now;
        }
        if let Some(rows) = status(&http, port).await {
            failures_recorded += rows
                .iter()
                .filter(|(k, r)| {
                    !r.last_failure.is_empty()
                        && last_rows.get(*k).is_none_or(|l| l.last_failure != r.last_failure)
                })
                .count();
            last_rows = rows;
        }
        let wire = proxy.requests();
        per_sec_wire.push(wire - last_wire);
        last_wire = wire;
        if Duration::from_secs(tick) >= seal_for {
            break;
        }
        tick += 1;
    }
    let m_text = get(&http, port, "/metrics").await.context("metrics")?;
    let m_unseal = vault_requests(&m_text);
    let p_unseal = proxy.requests();
    let circuit_at_unseal = circuit(&m_text);
    let outage_cpu = cpu_secs(pid) - cpu_seal;
    let outage_written = written_bytes(pid).saturating_sub(written_seal);
    let outage_log = log_lines(root).saturating_sub(log_seal);
    let sealed_secs = t_seal.elapsed().as_secs_f64();
    if let Some(rows) = status(&http, port).await {
        renewed_while_sealed = rows
            .iter()
            .filter(|(k, r)| before.get(*k).is_some_and(|b| r.revision > b.revision))
            .count();
    }
    let pending_failures = status(&http, port)
        .await
        .map(|rows| rows.values().filter(|r| r.failure.is_some()).count())
        .unwrap_or(0);

    // 4. Unseal; every certificate's revision must go up.
    let t_unseal = Instant::now();
    bao.unseal().await?;
    let active_secs = t_unseal.elapsed().as_secs_f64();
    let mut renewed_at: HashMap<String, f64> = HashMap::new();
    let limit = Duration::from_secs(120);
    let mut last = before.clone();
    while renewed_at.len() < n && t_unseal.elapsed() < limit {
        if let Some(rows) = status(&http, port).await {
            let now = t_unseal.elapsed().as_secs_f64();
            for (name, r) in &rows {
                if before.get(name).is_some_and(|b| r.revision > b.revision) {
                    renewed_at.entry(name.clone()).or_insert(now);
                }
            }
            last = rows;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let all_renewed = renewed_at.len() >= n;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let m_end = vault_requests(&get(&http, port, "/metrics").await.unwrap_or_default());
    let p_end = proxy.requests();
    let after = status(&http, port).await.unwrap_or(last);
    stop(daemon);

    // Renewed means a new certificate: another serial and a later notAfter.
    let mut not_really = 0;
    for (name, b) in &before {
        if let Some(a) = after.get(name)
            && renewed_at.contains_key(name)
            && (a.serial == b.serial || a.not_after <= b.not_after)
        {
            not_really += 1;
        }
    }
    let mut times: Vec<f64> = renewed_at.values().copied().collect();
    times.sort_by(f64::total_cmp);

    let outage_ours = total(&m_unseal) - total(&m_seal);
    let outage_wire = p_unseal - p_seal;
    let ours_rate = outage_ours as f64 / sealed_secs;
    let wire_rate = outage_wire as f64 / sealed_secs;
    let max_secs = times.last().copied().unwrap_or(f64::NAN);
    let rate_ok = ours_rate <= MAX_REQ_PER_SEC && wire_rate <= MAX_REQ_PER_SEC;
    let time_ok = all_renewed && not_really == 0 && max_secs <= MAX_RECOVERY_SECS;

    println!(
        "certificates: {n} ECDSA P-256, one Issuer (AppRole), issued in {issue_secs:.1} s; issuer limits: {}",
        std::env::var("BENCH_RATE").map_or_else(
            |_| "certkeeper's defaults".to_owned(),
            |r| format!("ratePerSecond {r}")
        )
    );
    println!(
        "sealed:                         {sealed_secs:.1} s (renew --all filed {renew_cli_secs:.2} s after the seal)"
    );
    println!(
        "requests during the outage:     {outage_ours} by certkeeper's counter, {outage_wire} on the wire"
    );
    println!(
        "requests/s during the outage:   {ours_rate:.3} (counter), {wire_rate:.3} (wire); target <= {MAX_REQ_PER_SEC} per issuer: {}",
        if rate_ok { "PASS" } else { "FAIL" }
    );
    println!(
        "  busiest second:               {} (counter), {} (wire); on the wire, second by second: {}",
        per_sec_ours.iter().max().unwrap_or(&0),
        per_sec_wire.iter().max().unwrap_or(&0),
        per_sec_wire
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    );
    for (labels, v) in &m_unseal {
        let d = v - m_seal.get(labels).copied().unwrap_or(0);
        if d > 0 {
            println!("  {labels}: {d}");
        }
    }
    println!(
        "  circuit at unseal: {circuit_at_unseal}; certificates with a failure recorded: {pending_failures}; renewed while sealed: {renewed_while_sealed}"
    );
    println!(
        "  certkeeper during the outage: {outage_cpu:.2} s CPU, {:.1} MiB written (wchar: mostly the /metrics and status answers this bench polls each second), {outage_log} log lines, >= {failures_recorded} failures recorded ({:.1}/s)",
        outage_written as f64 / (1024.0 * 1024.0),
        failures_recorded as f64 / sealed_secs
    );
    println!("OpenBao active again:           {active_secs:.2} s after the unseal request");
    println!(
        "renewed after unseal:           {}/{n}: first {:.2} s, p50 {:.2} s, p90 {:.2} s, max (all renewed) {max_secs:.2} s; target <= {MAX_RECOVERY_SECS} s: {}",
        renewed_at.len(),
        times.first().copied().unwrap_or(f64::NAN),
        percentile(&times, 0.5),
        percentile(&times, 0.9),
        if time_ok { "PASS" } else { "FAIL" }
    );
    println!(
        "requests from unseal to the end: {} (counter), {} (wire); renewed with the same serial or notAfter: {not_really}",
        total(&m_end) - total(&m_unseal),
        p_end - p_unseal
    );
    if !all_renewed {
        let stuck: Vec<String> = after
            .iter()
            .filter(|(k, _)| !renewed_at.contains_key(*k))
            .take(5)
            .map(|(k, r)| format!("{k}: {}", r.failure.clone().unwrap_or_default()))
            .collect();
        println!(
            "not renewed within {} s, e.g.:\n  {}",
            limit.as_secs(),
            stuck.join("\n  ")
        );
        println!("certkeeper log tail:\n{}", log_tail(root, 10));
    }
    if rate_ok && time_ok {
        println!("PASS");
        Ok(())
    } else {
        println!("FAIL");
        bail!("recovery targets not met")
    }
}
