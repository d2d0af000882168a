//! The release `certkeeper run` on one Issuer of BENCH_CERTS certificates, and what the
//! outage benchmarks read from it: `/metrics`, `/api/v1/status`, its log.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use certkeeper_testkit::{Admin, DevServer, Pki, PkiOptions, free_port};

use super::cpu_secs;
use super::proxy::{CountingProxy, Wire};

pub const BIN: &str = env!("CARGO_BIN_EXE_certkeeper");

/// One OpenBao dev server with PKI and AppRole role `bench` (the sign policy), a counting proxy
/// in front of it, and `certkeeper run` on BENCH_CERTS certificates of one Issuer through the
/// proxy, all issued and idle.
pub struct Bench {
    pub bao: DevServer,
    pub admin: Admin,
    pub pki: Pki,
    pub role_id: String,
    pub secret_id: String,
    pub proxy: CountingProxy,
    pub http: reqwest::Client,
    /// certkeeper's listener (metrics and status).
    pub port: u16,
    /// The certificates once all were issued, and the seconds it took.
    pub before: HashMap<String, Row>,
    pub issue_secs: f64,
    dir: tempfile::TempDir,
}

impl Bench {
    /// The AppRole role certkeeper logs in with (on mount `approle`).
    pub const ROLE: &'static str = "bench";

    pub async fn start(n: usize) -> Result<(Bench, Daemon)> {
        let bao = DevServer::start().await?;
        let admin = bao.admin();
        let pki = admin.setup_pki(PkiOptions::default()).await?;
        let (role_id, secret_id) = admin
            .approle_role("approle", Self::ROLE, &[&pki.policy], 0, "")
            .await?;
        let proxy = CountingProxy::start(&bao.addr()).await?;
        let http = reqwest::Client::new();
        let dir = tempfile::tempdir()?;
        let port = free_port();
        write_setup(
            dir.path(),
            &proxy.addr(),
            &pki.sign_path,
            (&role_id, &secret_id),
            n,
            port,
        );
        let daemon = start(dir.path())?;
        // Nothing may be in flight when a fault starts.
        let (before, issue_secs) = issued(&http, port, n, dir.path()).await?;
        let bench = Bench {
            bao,
            admin,
            pki,
            role_id,
            secret_id,
            proxy,
            http,
            port,
            before,
            issue_secs,
            dir,
        };
        Ok((bench, daemon))
    }

    /// certkeeper's files: config, manifests, state, log.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn config(&self) -> PathBuf {
        self.root().join("certkeeper.yaml")
    }

    /// `/metrics`.
    pub async fn metrics(&self) -> Result<String> {
        get(&self.http, self.port, "/metrics").await.context("metrics")
    }

    /// `/api/v1/status` by certificate name.
    pub async fn status(&self) -> Option<HashMap<String, Row>> {
        status(&self.http, self.port).await
    }

    /// certkeeper's process and request counters now.
    pub async fn snap(&self, pid: u32) -> Result<Snap> {
        let metrics = self.metrics().await?;
        Ok(Snap {
            cpu: cpu_secs(pid),
            written: written_bytes(pid),
            log: log_lines(self.root()),
            circuit: circuit(&metrics),
            metrics: vault_requests(&metrics),
            wire: self.proxy.wire(),
        })
    }

    /// A fault started at `t0` (`start` taken just before it): files `renew --all` (every
    /// certificate due), samples `secs` from `t0` (see [`sample_outage`]), and takes what it
    /// looked like at the end.
    pub async fn hold(&self, pid: u32, start: &Snap, t0: Instant, secs: u64) -> Result<Held> {
        renew_all(&self.config()).await?;
        let renew_cli_secs = t0.elapsed().as_secs_f64();
        let ours = total(&start.metrics);
        let outage = sample_outage(
            &self.http,
            self.port,
            &self.proxy,
            (t0, secs),
            ours,
            start.wire,
            &self.before,
        )
        .await;
        let end = self.snap(pid).await?;
        let rows = self.status().await.unwrap_or_default();
        let renewed = rows
            .iter()
            .filter(|(k, r)| self.before.get(*k).is_some_and(|b| r.revision > b.revision))
            .count();
        let failing = rows.values().filter(|r| r.failure.is_some()).count();
        Ok(Held {
            outage,
            renew_cli_secs,
            end,
            renewed,
            failing,
        })
    }

    /// Waits for every certificate to be renewed after `t0` (see [`wait_renewed`]), 2 s more for
    /// stragglers' requests, then stops certkeeper.
    pub async fn renewals(&self, daemon: Daemon, t0: Instant, limit: Duration) -> Renewals {
        let (renewed_at, last) = wait_renewed(&self.http, self.port, &self.before, t0, limit).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let metrics = vault_requests(&self.metrics().await.unwrap_or_default());
        let wire = self.proxy.wire();
        let after = self.status().await.unwrap_or(last);
        stop(daemon);
        let not_really = not_really_renewed(&self.before, &after, &renewed_at);
        Renewals {
            renewed_at,
            after,
            metrics,
            wire,
            not_really,
            limit,
        }
    }
}

/// certkeeper at one moment: its process and its request counters.
pub struct Snap {
    pub cpu: f64,
    pub written: u64,
    pub log: usize,
    pub circuit: String,
    pub metrics: BTreeMap<String, u64>,
    pub wire: Wire,
}

/// A fault held: sampled second by second, and certkeeper at its end.
pub struct Held {
    pub outage: Outage,
    /// Seconds from the fault until `renew --all` returned.
    pub renew_cli_secs: f64,
    pub end: Snap,
    /// Certificates renewed during the fault, and those with a failure recorded at its end.
    pub renewed: usize,
    pub failing: usize,
}

impl Held {
    /// The busiest second of the fault, the requests on the wire second by second, and the
    /// counter's label sets that grew since `start`.
    pub fn print_requests(&self, start: &Snap) {
        let o = &self.outage;
        println!(
            "  busiest second:               {} (counter), {} (wire); on the wire, second by second: {}",
            o.per_sec_ours.iter().max().unwrap_or(&0),
            o.per_sec_wire.iter().map(|w| w.requests).max().unwrap_or(0),
            o.per_sec_wire
                .iter()
                .map(|w| w.requests.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        );
        for line in deltas(&start.metrics, &self.end.metrics) {
            println!("  {line}");
        }
    }
}

/// The renewals after a fault ended.
pub struct Renewals {
    /// Seconds after the end of the fault at which each certificate was first seen renewed.
    pub renewed_at: HashMap<String, f64>,
    pub after: HashMap<String, Row>,
    /// certkeeper's counter and the proxy's at the end.
    pub metrics: BTreeMap<String, u64>,
    pub wire: Wire,
    /// Renewed with the same serial or notAfter.
    pub not_really: usize,
    limit: Duration,
}

impl Renewals {
    /// All renewed, really, within `max_secs`.
    pub fn ok(&self, n: usize, max_secs: f64) -> bool {
        self.renewed_at.len() >= n && self.not_really == 0 && spread(&self.renewed_at).3 <= max_secs
    }

    /// The renewal line (`what`: "after unseal") with its verdict, and what was not renewed.
    pub fn print(&self, what: &str, n: usize, max_secs: f64, root: &Path) {
        let (first, p50, p90, max) = spread(&self.renewed_at);
        println!(
            "renewed {what}{}/{n}: first {first:.2} s, p50 {p50:.2} s, p90 {p90:.2} s, max (all renewed) {max:.2} s; target <= {max_secs} s: {}",
            self.renewed_at.len(),
            pass(self.ok(n, max_secs))
        );
        if self.renewed_at.len() < n {
            println!(
                "not renewed within {} s, e.g.:\n  {}",
                self.limit.as_secs(),
                stuck(&self.after, &self.renewed_at)
            );
            println!("certkeeper log tail:\n{}", log_tail(root, 10));
        }
    }
}

pub fn pass(ok: bool) -> &'static str {
    if ok { "PASS" } else { "FAIL" }
}

/// The last line and the exit status.
pub fn verdict(ok: bool, what: &str) -> Result<()> {
    println!("{}", pass(ok));
    if ok {
        Ok(())
    } else {
        bail!("{what} targets not met")
    }
}

/// A certkeeper process, killed if the benchmark bails out before stopping it.
pub struct Daemon(pub Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Daemon {
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

pub fn start(root: &Path) -> Result<Daemon> {
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
pub fn stop(mut d: Daemon) {
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

/// One Issuer (AppRole on mount `approle`) and `n` ECDSA P-256 certificates of 24 h; the
/// issuer limits are certkeeper's defaults unless BENCH_RATE sets `ratePerSecond`.
pub fn write_setup(
    root: &Path,
    addr: &str,
    sign_path: &str,
    (role_id, secret_id): (&str, &str),
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
    std::fs::write(
        root.join("certkeeper.yaml"),
        format!(
            "manifests: manifests\nstateDir: state\nlisten: 127.0.0.1:{port}\nlog: {{level: warn}}\nsecrets: {{dir: secrets}}\n{}",
            issuer_limits()
        ),
    )
    .unwrap();
}

/// The `issuers:` line of the config, from BENCH_RATE ("" = certkeeper's defaults, which is
/// what the targets are about).
fn issuer_limits() -> String {
    std::env::var("BENCH_RATE")
        .ok()
        .and_then(|r| r.parse::<f64>().ok())
        .map(|r| format!("issuers: {{ratePerSecond: {r}}}\n"))
        .unwrap_or_default()
}

/// How the issuer limits were set, for the report.
pub fn issuer_limits_text() -> String {
    std::env::var("BENCH_RATE").map_or_else(
        |_| "certkeeper's defaults".to_owned(),
        |r| format!("ratePerSecond {r}"),
    )
}

pub async fn get(http: &reqwest::Client, port: u16, path: &str) -> Option<String> {
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
pub fn vault_requests(metrics: &str) -> BTreeMap<String, u64> {
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix("certkeeper_vault_requests_total{"))
        .filter_map(|l| {
            let (labels, value) = l.rsplit_once("} ")?;
            Some((labels.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

pub fn total(m: &BTreeMap<String, u64>) -> u64 {
    m.values().sum()
}

/// The sum over the label sets that contain `label` (e.g. `operation="login"`).
pub fn total_with(m: &BTreeMap<String, u64>, label: &str) -> u64 {
    m.iter().filter(|(k, _)| k.contains(label)).map(|(_, v)| v).sum()
}

/// The label sets that grew from `from` to `to`, one line each.
pub fn deltas(from: &BTreeMap<String, u64>, to: &BTreeMap<String, u64>) -> Vec<String> {
    to.iter()
        .filter_map(|(labels, v)| {
            let d = v - from.get(labels).copied().unwrap_or(0);
            (d > 0).then(|| format!("{labels}: {d}"))
        })
        .collect()
}

/// The issuer circuits' states (`certkeeper_issuer_circuit_state` at 1), comma-separated.
pub fn circuit(metrics: &str) -> String {
    metrics
        .lines()
        .filter(|l| l.starts_with("certkeeper_issuer_circuit_state{") && l.ends_with(" 1"))
        .filter_map(|l| l.split("state=\"").nth(1)?.split('"').next())
        .collect::<Vec<_>>()
        .join(",")
}

/// One certificate in `/api/v1/status`.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub revision: u64,
    pub serial: String,
    pub not_after: String,
    pub ready: bool,
    pub failure: Option<String>,
    /// RFC 3339 time of the last failure ("" without one).
    pub last_failure: String,
}

pub async fn status(http: &reqwest::Client, port: u16) -> Option<HashMap<String, Row>> {
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

/// Waits (up to 600 s) until all `n` certificates are issued, ready and without a failure,
/// then 2 s more so that nothing is in flight: the rows then, and the seconds it took.
pub async fn issued(
    http: &reqwest::Client,
    port: u16,
    n: usize,
    root: &Path,
) -> Result<(HashMap<String, Row>, f64)> {
    let t = Instant::now();
    let rows = loop {
        if let Some(rows) = status(http, port).await
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
    let secs = t.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    Ok((status(http, port).await.unwrap_or(rows), secs))
}

/// `certkeeper renew --all --wait 0`: files the request and returns (the daemon takes it
/// within a second; the default would wait up to 120 s for the renewals).
pub async fn renew_all(config: &Path) -> Result<()> {
    let renew = tokio::process::Command::new(BIN)
        .args(["renew", "--all", "--wait", "0", "--config"])
        .arg(config)
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
    Ok(())
}

/// Polls `/api/v1/status` every 100 ms until every certificate of `before` has a higher
/// revision or `limit` has passed: seconds since `t0` at which each was first seen renewed,
/// and the last rows read.
pub async fn wait_renewed(
    http: &reqwest::Client,
    port: u16,
    before: &HashMap<String, Row>,
    t0: Instant,
    limit: Duration,
) -> (HashMap<String, f64>, HashMap<String, Row>) {
    let mut renewed_at: HashMap<String, f64> = HashMap::new();
    let mut last = before.clone();
    while renewed_at.len() < before.len() && t0.elapsed() < limit {
        if let Some(rows) = status(http, port).await {
            let now = t0.elapsed().as_secs_f64();
            for (name, r) in &rows {
                if before.get(name).is_some_and(|b| r.revision > b.revision) {
                    renewed_at.entry(name.clone()).or_insert(now);
                }
            }
            last = rows;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (renewed_at, last)
}

/// What an outage looked like, sampled once a second.
pub struct Outage {
    /// Requests by certkeeper's counter, second by second.
    pub per_sec_ours: Vec<u64>,
    /// Requests on the wire, second by second.
    pub per_sec_wire: Vec<Wire>,
    /// Failures recorded meanwhile (a certificate's lastFailure moved; second resolution, so
    /// a lower bound): attempts refused locally count too, which Vault never sees.
    pub failures_recorded: usize,
}

/// Samples certkeeper's request counter, the proxy and the status from `t0` for `secs`
/// seconds, one sample a second; `ours` is the counter's total at `t0`, `before` the rows.
pub async fn sample_outage(
    http: &reqwest::Client,
    port: u16,
    proxy: &CountingProxy,
    (t0, secs): (Instant, u64),
    ours: u64,
    wire: Wire,
    before: &HashMap<String, Row>,
) -> Outage {
    let until = Duration::from_secs(secs);
    let mut out = Outage {
        per_sec_ours: Vec::new(),
        per_sec_wire: Vec::new(),
        failures_recorded: 0,
    };
    let (mut last_ours, mut last_wire, mut last_rows) = (ours, wire, before.clone());
    let mut tick = 1u64;
    loop {
        tokio::time::sleep_until((t0 + Duration::from_secs(tick).min(until)).into()).await;
        if let Some(m) = get(http, port, "/metrics").await {
            let now = total(&vault_requests(&m));
            out.per_sec_ours.push(now.saturating_sub(last_ours));
            last_ours = now;
        }
        if let Some(rows) = status(http, port).await {
            out.failures_recorded += rows
                .iter()
                .filter(|(k, r)| {
                    !r.last_failure.is_empty()
                        && last_rows.get(*k).is_none_or(|l| l.last_failure != r.last_failure)
                })
                .count();
            last_rows = rows;
        }
        let wire = proxy.wire();
        out.per_sec_wire.push(wire - last_wire);
        last_wire = wire;
        if Duration::from_secs(tick) >= until {
            return out;
        }
        tick += 1;
    }
}

/// Certificates counted as renewed whose serial did not change or whose notAfter did not
/// move on: renewed means a new certificate.
pub fn not_really_renewed(
    before: &HashMap<String, Row>,
    after: &HashMap<String, Row>,
    renewed_at: &HashMap<String, f64>,
) -> usize {
    before
        .iter()
        .filter(|(name, b)| {
            after.get(*name).is_some_and(|a| {
                renewed_at.contains_key(*name) && (a.serial == b.serial || a.not_after <= b.not_after)
            })
        })
        .count()
}

/// Up to five certificates not renewed, with their last failure.
pub fn stuck(after: &HashMap<String, Row>, renewed_at: &HashMap<String, f64>) -> String {
    after
        .iter()
        .filter(|(k, _)| !renewed_at.contains_key(*k))
        .take(5)
        .map(|(k, r)| format!("{k}: {}", r.failure.clone().unwrap_or_default()))
        .collect::<Vec<_>>()
        .join("\n  ")
}

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The renewal times, sorted: (first, p50, p90, max).
pub fn spread(renewed_at: &HashMap<String, f64>) -> (f64, f64, f64, f64) {
    let mut times: Vec<f64> = renewed_at.values().copied().collect();
    times.sort_by(f64::total_cmp);
    (
        times.first().copied().unwrap_or(f64::NAN),
        percentile(&times, 0.5),
        percentile(&times, 0.9),
        times.last().copied().unwrap_or(f64::NAN),
    )
}

/// Bytes a process asked to write so far (`wchar` of /proc/PID/io).
pub fn written_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("wchar:").and_then(|v| v.trim().parse().ok()))
        })
        .unwrap_or(0)
}

pub fn log_lines(root: &Path) -> usize {
    std::fs::read_to_string(root.join("certkeeper.log")).map_or(0, |t| t.lines().count())
}

pub fn log_tail(root: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(root.join("certkeeper.log")).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
