//! certkeeper next to `bao agent` (OpenBao's Vault Agent) keeping the same certificates, in one run
//! on one OpenBao dev server, one after the other (never both at once: the machine is shared).
//!
//! Both sides get the same PKI role (EC P-256, so Vault's `issue` and `sign` both accept it) and
//! the same AppRole credentials (role_id + secret_id):
//!
//! 1. `bao agent` with BENCH_CERTS `template` stanzas, each
//!    `{{ with pkiCert "<int>/issue/<role>" "common_name=cN.example.com" "ttl=24h" }}{{ .Cert }}{{ .Key }}{{ end }}`
//!    (Vault generates the key), auto_auth `approle` from role_id/secret_id files;
//! 2. certkeeper with BENCH_CERTS cert-manager Certificates (ECDSA P-256, key and CSR made locally,
//!    `sign`), its default issuer limits (100 requests/s, burst 50), then again without the rate
//!    limit (concurrency 8 either way).
//!
//! For each: time from spawn until every certificate is there (agent: every file holds a
//! certificate and a key; certkeeper: every `certmanager_certificate_ready_status` is True, and
//! the time its files were all there), CPU seconds until then, VmRSS sampled 5 times after,
//! requests the dev server handled meanwhile (its own Prometheus counters) and its CPU.
//!
//! BENCH_AGENT_SECS > 0 (at most 180) also caps the role's max_ttl to BENCH_AGENT_TTL (default 2m)
//! from the start and watches each tool's files for that long after issuance: renewals, when in
//! the certificate's lifetime they happen, and whether they come in lockstep (the widest spread
//! of the first renewals and the most renewals within one second).
//!
//! `scripts/bench-agent` runs it. Knobs: BENCH_CERTS (default 50), BENCH_AGENT_SECS (0),
//! BENCH_AGENT_TTL (2m), BENCH_KEEP (keep the work directories and logs, print their paths).
#![allow(clippy::unwrap_used, clippy::too_many_lines, clippy::too_many_arguments)] // a benchmark states its expectations by unwrapping

mod common;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use certkeeper_testkit::{DevServer, ManagedProcess, PkiOptions, bao_binary, free_port};
use common::{cpu_secs, env_or, listing_only, rss_kib};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_certkeeper");
/// Bound on "every certificate is there", per tool.
const ISSUE_BOUND: Duration = Duration::from_secs(300);
/// Upper bound of BENCH_AGENT_SECS.
const MAX_OBSERVE_SECS: u64 = 180;
const RSS_SAMPLES: usize = 5;
/// How often files (and certkeeper's /metrics) are looked at until everything is issued.
const POLL: Duration = Duration::from_millis(50);

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// One certificate version seen in a file.
struct Version {
    /// Seconds since the tool was spawned, at the poll that saw it.
    seen: f64,
    seen_unix: f64,
    not_before: i64,
    not_after: i64,
}

/// Polls the certificate files of one tool and records every new certificate (by serial).
struct Watch {
    files: Vec<PathBuf>,
    /// The agent writes certificate and key into one file: both must be there.
    need_key: bool,
    start: Instant,
    serials: Vec<Option<Vec<u8>>>,
    versions: Vec<Vec<Version>>,
}

impl Watch {
    fn new(files: Vec<PathBuf>, need_key: bool, start: Instant) -> Self {
        let n = files.len();
        Self {
            files,
            need_key,
            start,
            serials: vec![None; n],
            versions: (0..n).map(|_| Vec::new()).collect(),
        }
    }

    /// Reads every file once; returns how many hold a certificate.
    fn poll(&mut self) -> usize {
        let seen = self.start.elapsed().as_secs_f64();
        let seen_unix = unix_now();
        for (i, file) in self.files.iter().enumerate() {
            let Ok(bytes) = std::fs::read(file) else { continue };
            let text = String::from_utf8_lossy(&bytes);
            if !text.contains("-----END CERTIFICATE-----")
                || (self.need_key && !text.contains("PRIVATE KEY-----"))
            {
                continue;
            }
            let Ok((_, pem)) = x509_parser::pem::parse_x509_pem(&bytes) else {
                continue;
            };
            let Ok(cert) = pem.parse_x509() else { continue };
            let serial = cert.raw_serial().to_vec();
            if self.serials[i].as_ref() != Some(&serial) {
                self.versions[i].push(Version {
                    seen,
                    seen_unix,
                    not_before: cert.validity().not_before.timestamp(),
                    not_after: cert.validity().not_after.timestamp(),
                });
                self.serials[i] = Some(serial);
            }
        }
        self.serials.iter().filter(|s| s.is_some()).count()
    }

    /// Seconds since spawn at which the last of the files got its first certificate.
    fn all_first_seen(&self) -> f64 {
        self.versions
            .iter()
            .filter_map(|v| v.first().map(|v| v.seen))
            .fold(0.0, f64::max)
    }

    fn renewal_stats(&self) -> Renewals {
        let mut r = Renewals::default();
        let mut firsts = Vec::new();
        for versions in &self.versions {
            for (k, pair) in versions.windows(2).enumerate() {
                let (old, new) = (&pair[0], &pair[1]);
                r.times.push(new.seen);
                if k == 0 {
                    firsts.push(new.seen);
                }
                let life = (old.not_after - old.not_before) as f64;
                if life > 0.0 {
                    r.at_fraction.push((new.seen_unix - old.not_before as f64) / life);
                }
            }
        }
        r.times.sort_by(f64::total_cmp);
        r.at_fraction.sort_by(f64::total_cmp);
        firsts.sort_by(f64::total_cmp);
        r.first_round = firsts
            .first()
            .zip(firsts.last())
            .map(|(a, b)| (*a, *b, firsts.len()));
        // The most renewals seen within one second (a window sliding over the sorted times).
        let mut lo = 0;
        for hi in 0..r.times.len() {
            while r.times[hi] - r.times[lo] > 1.0 {
                lo += 1;
            }
            r.max_per_second = r.max_per_second.max(hi - lo + 1);
        }
        r.lifetimes = self
            .versions
            .iter()
            .flatten()
            .map(|v| v.not_after - v.not_before)
            .collect();
        r.lifetimes.sort_unstable();
        r.lifetimes.dedup();
        r
    }
}

#[derive(Default)]
struct Renewals {
    times: Vec<f64>,
    /// Where in the old certificate's lifetime (notBefore..notAfter) the new one appeared.
    at_fraction: Vec<f64>,
    /// (first, last, count) of each certificate's first renewal.
    first_round: Option<(f64, f64, usize)>,
    max_per_second: usize,
    lifetimes: Vec<i64>,
}

impl Renewals {
    fn describe(&self, tool: &str, n: usize) -> String {
        let mut s = format!("{tool}: {} renewals", self.times.len());
        let lifetimes: Vec<String> = self.lifetimes.iter().map(|l| format!("{l}s")).collect();
        let _ = write!(s, " (certificate lifetimes {})", lifetimes.join(", "));
        if let Some((a, b, count)) = self.first_round {
            let _ = write!(
                s,
                "\n  first renewal of {count}/{n} certificates between {a:.1} s and {b:.1} s after start (spread {:.1} s)",
                b - a
            );
        }
        if !self.at_fraction.is_empty() {
            let f = &self.at_fraction;
            let _ = write!(
                s,
                "\n  renewed at {:.1}% / {:.1}% / {:.1}% (min / median / max) of the old certificate's lifetime",
                f[0] * 100.0,
                f[f.len() / 2] * 100.0,
                f[f.len() - 1] * 100.0
            );
            let _ = write!(
                s,
                "\n  most renewals within one second: {} (of {})",
                self.max_per_second,
                self.times.len()
            );
        }
        s
    }
}

/// The dev server's cumulative request counters (Prometheus format of `sys/metrics`, which the
/// scrape itself does not count).
#[derive(Clone, Copy, Default)]
struct ServerCount {
    requests: f64,
    logins: f64,
    pki: f64,
}

impl std::ops::Sub for ServerCount {
    type Output = ServerCount;
    fn sub(self, o: ServerCount) -> ServerCount {
        ServerCount {
            requests: self.requests - o.requests,
            logins: self.logins - o.logins,
            pki: self.pki - o.pki,
        }
    }
}

/// `mount`: the PKI mount whose `issue` and `sign` counters are summed (OpenBao names them
/// `vault_<mount>_issue` and `vault_<mount>_sign`).
async fn server_count(http: &reqwest::Client, bao: &DevServer, mount: &str) -> Result<ServerCount> {
    let text = http
        .get(format!("{}/v1/sys/metrics?format=prometheus", bao.addr()))
        .header("X-Vault-Token", bao.root_token())
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    let value = |l: &str| {
        l.rsplit(' ')
            .next()
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let sum = |prefix: &str| -> f64 { text.lines().filter(|l| l.starts_with(prefix)).map(value).sum() };
    Ok(ServerCount {
        requests: sum("vault_core_handle_request_count "),
        logins: sum("vault_core_handle_login_request_count "),
        pki: sum(&format!("vault_{mount}_issue_count{{")) + sum(&format!("vault_{mount}_sign_count{{")),
    })
}

/// What one tool did.
struct Run {
    tool: &'static str,
    /// Spawn to every certificate there (agent: files; certkeeper: Ready).
    issued_secs: f64,
    /// Spawn to every file holding a certificate (both).
    files_secs: f64,
    cpu_at_issued: f64,
    rss_kib: Vec<u64>,
    server: ServerCount,
    server_cpu: f64,
    observe: Option<ObserveResult>,
}

struct ObserveResult {
    renewals: Renewals,
    cpu: f64,
    server: ServerCount,
    server_cpu: f64,
}

impl Run {
    fn rss_mib(&self) -> f64 {
        let sum: u64 = self.rss_kib.iter().sum();
        sum as f64 / self.rss_kib.len().max(1) as f64 / 1024.0
    }
}

/// What every run shares: the dev server, the PKI mount both tools use, the renewal watch length.
struct Measure<'a> {
    http: &'a reqwest::Client,
    bao: &'a DevServer,
    mount: &'a str,
    observe_secs: u64,
}

impl Measure<'_> {
    /// After issuance: RSS samples, then (optionally) the renewal watch.
    async fn after_issue(
        &self,
        proc: &mut ManagedProcess,
        watch: &mut Watch,
        observe: bool,
    ) -> Result<(Vec<u64>, Option<ObserveResult>)> {
        let pid = proc.pid();
        let mut rss = Vec::new();
        for _ in 0..RSS_SAMPLES {
            tokio::time::sleep(Duration::from_secs(1)).await;
            watch.poll();
            rss.push(rss_kib(pid));
        }
        if !observe || self.observe_secs == 0 {
            return Ok((rss, None));
        }
        let before = server_count(self.http, self.bao, self.mount).await?;
        let (cpu0, server_cpu0) = (cpu_secs(pid), cpu_secs(self.bao.pid()));
        let until = Instant::now() + Duration::from_secs(self.observe_secs);
        while Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(250)).await;
            watch.poll();
            if !proc.is_running() {
                bail!(
                    "{} exited while watching renewals:\n{}",
                    proc.name(),
                    proc.log_tail(30)
                );
            }
        }
        let observed = ObserveResult {
            renewals: watch.renewal_stats(),
            cpu: cpu_secs(pid) - cpu0,
            server: server_count(self.http, self.bao, self.mount).await? - before,
            server_cpu: cpu_secs(self.bao.pid()) - server_cpu0,
        };
        Ok((rss, Some(observed)))
    }
}

fn agent_config(
    dir: &Path,
    addr: &str,
    issue_path: &str,
    role_id: &str,
    secret_id: &str,
    n: usize,
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir.join("out"))?;
    let (role_file, secret_file) = (dir.join("role_id"), dir.join("secret_id"));
    std::fs::write(&role_file, role_id)?;
    std::fs::write(&secret_file, secret_id)?;
    let mut hcl = format!(
        "vault {{\n  address = \"{addr}\"\n}}\n\
         auto_auth {{\n  method \"approle\" {{\n    config = {{\n      role_id_file_path = \"{}\"\n      secret_id_file_path = \"{}\"\n      remove_secret_id_file_after_reading = false\n    }}\n  }}\n}}\n\
         template_config {{\n  exit_on_retry_failure = true\n}}\n",
        role_file.display(),
        secret_file.display()
    );
    let mut files = Vec::new();
    for i in 0..n {
        let dest = dir.join(format!("out/c{i}.pem"));
        let _ = write!(
            hcl,
            "template {{\n  contents = \"{{{{ with pkiCert \\\"{issue_path}\\\" \\\"common_name=c{i}.example.com\\\" \\\"ttl=24h\\\" }}}}{{{{ .Cert }}}}{{{{ .Key }}}}{{{{ end }}}}\"\n  destination = \"{}\"\n}}\n",
            dest.display()
        );
        files.push(dest);
    }
    std::fs::write(dir.join("agent.hcl"), hcl)?;
    Ok(files)
}

async fn run_agent(
    m: &Measure<'_>,
    observe: bool,
    dir: &Path,
    issue_path: &str,
    role_id: &str,
    secret_id: &str,
    n: usize,
) -> Result<Run> {
    let files = agent_config(dir, &m.bao.addr(), issue_path, role_id, secret_id, n)?;
    let before = server_count(m.http, m.bao, m.mount).await?;
    let server_cpu0 = cpu_secs(m.bao.pid());
    let mut cmd = Command::new(bao_binary()?);
    cmd.arg("agent")
        .arg(format!("-config={}", dir.join("agent.hcl").display()))
        .arg("-log-level=info")
        .current_dir(dir);
    for var in [
        "BAO_TOKEN",
        "VAULT_TOKEN",
        "BAO_ADDR",
        "VAULT_ADDR",
        "BAO_AGENT_ADDR",
    ] {
        cmd.env_remove(var);
    }
    let start = Instant::now();
    let mut proc = ManagedProcess::spawn("bao agent", cmd, &dir.join("agent.log"))?;
    let pid = proc.pid();
    let mut watch = Watch::new(files, true, start);
    while watch.poll() < n {
        if !proc.is_running() {
            bail!("bao agent exited:\n{}", proc.log_tail(30));
        }
        if start.elapsed() > ISSUE_BOUND {
            bail!(
                "bao agent did not write {n} certificates in {ISSUE_BOUND:?}:\n{}",
                proc.log_tail(30)
            );
        }
        tokio::time::sleep(POLL).await;
    }
    let issued_secs = watch.all_first_seen();
    let cpu_at_issued = cpu_secs(pid);
    let server = server_count(m.http, m.bao, m.mount).await? - before;
    let server_cpu = cpu_secs(m.bao.pid()) - server_cpu0;
    let (rss_kib, observe) = m.after_issue(&mut proc, &mut watch, observe).await?;
    drop(proc);
    Ok(Run {
        tool: "bao agent (pkiCert)",
        issued_secs,
        files_secs: issued_secs,
        cpu_at_issued,
        rss_kib,
        server,
        server_cpu,
        observe,
    })
}

fn certkeeper_config(
    dir: &Path,
    addr: &str,
    sign_path: &str,
    role_id: &str,
    secret_id: &str,
    n: usize,
    port: u16,
    limits: Option<&str>,
) -> Result<Vec<PathBuf>> {
    for d in ["manifests", "secrets/default/approle", "state", "certs"] {
        std::fs::create_dir_all(dir.join(d))?;
    }
    std::fs::write(dir.join("secrets/default/approle/secretId"), secret_id)?;
    let mut m = format!(
        "apiVersion: cert-manager.io/v1\nkind: Issuer\nmetadata: {{name: vault, namespace: default}}\nspec:\n  vault:\n    server: {addr}\n    path: {sign_path}\n    auth:\n      appRole: {{path: approle, roleId: {role_id}, secretRef: {{name: approle, key: secretId}}}}\n"
    );
    let mut files = Vec::new();
    for i in 0..n {
        let _ = write!(
            m,
            "---\napiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {{name: c{i}, namespace: default}}\nspec:\n  secretName: c{i}-tls\n  commonName: c{i}.example.com\n  dnsNames: [c{i}.example.com]\n  duration: 24h\n  privateKey: {{algorithm: ECDSA, size: 256}}\n  issuerRef: {{name: vault}}\n"
        );
        files.push(dir.join(format!("certs/default/c{i}-tls/tls.crt")));
    }
    std::fs::write(dir.join("manifests/all.yaml"), m)?;
    let mut config = format!(
        "manifests: manifests\nstateDir: state\nlisten: 127.0.0.1:{port}\nlog: {{level: warn}}\nsecrets: {{dir: secrets}}\n"
    );
    if let Some(limits) = limits {
        let _ = writeln!(config, "issuers: {limits}");
    }
    std::fs::write(dir.join("certkeeper.yaml"), config)?;
    Ok(files)
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

/// `limits`: the value of `issuers:` in the configuration (None: the defaults).
async fn run_certkeeper(
    m: &Measure<'_>,
    tool: &'static str,
    limits: Option<&str>,
    observe: bool,
    dir: &Path,
    sign_path: &str,
    role_id: &str,
    secret_id: &str,
    n: usize,
) -> Result<Run> {
    let port = free_port();
    let files = certkeeper_config(dir, &m.bao.addr(), sign_path, role_id, secret_id, n, port, limits)?;
    let before = server_count(m.http, m.bao, m.mount).await?;
    let server_cpu0 = cpu_secs(m.bao.pid());
    let mut cmd = Command::new(BIN);
    cmd.arg("run")
        .arg("--config")
        .arg(dir.join("certkeeper.yaml"))
        .current_dir(dir);
    let start = Instant::now();
    let mut proc = ManagedProcess::spawn("certkeeper", cmd, &dir.join("certkeeper.log"))?;
    let pid = proc.pid();
    let mut watch = Watch::new(files, false, start);
    let metrics_url = format!("http://127.0.0.1:{port}/metrics");
    let issued_secs = loop {
        watch.poll();
        if let Ok(r) = m.http.get(&metrics_url).send().await
            && let Ok(text) = r.text().await
            && ready_count(&text) >= n
        {
            break start.elapsed().as_secs_f64();
        }
        if !proc.is_running() {
            bail!("certkeeper exited:\n{}", proc.log_tail(30));
        }
        if start.elapsed() > ISSUE_BOUND {
            bail!(
                "certkeeper did not make {n} certificates Ready in {ISSUE_BOUND:?}:\n{}",
                proc.log_tail(30)
            );
        }
        tokio::time::sleep(POLL).await;
    };
    let cpu_at_issued = cpu_secs(pid);
    let server = server_count(m.http, m.bao, m.mount).await? - before;
    let server_cpu = cpu_secs(m.bao.pid()) - server_cpu0;
    // Ready means written: the files are there too (bounded, in case of a surprise).
    let t = Instant::now();
    while watch.poll() < n && t.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(POLL).await;
    }
    let files_secs = watch.all_first_seen();
    let (rss_kib, observe) = m.after_issue(&mut proc, &mut watch, observe).await?;
    drop(proc);
    Ok(Run {
        tool,
        issued_secs,
        files_secs,
        cpu_at_issued,
        rss_kib,
        server,
        server_cpu,
        observe,
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    if listing_only() {
        return Ok(());
    }
    let n = usize::try_from(env_or("BENCH_CERTS", 50)).context("BENCH_CERTS")?;
    let observe_secs = env_or("BENCH_AGENT_SECS", 0).min(MAX_OBSERVE_SECS);
    let short_ttl = std::env::var("BENCH_AGENT_TTL").unwrap_or_else(|_| "2m".into());
    let keep = std::env::var_os("BENCH_KEEP").is_some();

    let bao = DevServer::start().await?;
    let admin = bao.admin();
    let mut opts = PkiOptions::default();
    if observe_secs > 0 {
        // Short-lived certificates from the start: both tools then renew within the watch.
        opts.max_ttl.clone_from(&short_ttl);
        opts.ttl.clone_from(&short_ttl);
    }
    let pki = admin.setup_pki(opts).await?;
    // `issue` (Vault makes the key, what pkiCert calls) refuses a role with key_type "any";
    // P-256 suits both tools' requests.
    pki.set_role(&pki.role, json!({"key_type": "ec", "key_bits": 256}))
        .await?;
    let issue_path = format!("{}/issue/{}", pki.int_mount, pki.role);
    let issue_policy = format!("{}-issue", pki.int_mount);
    admin
        .put_policy(
            &issue_policy,
            &format!("path \"{issue_path}\" {{ capabilities = [\"create\", \"update\"] }}\n"),
        )
        .await?;
    let (role_id, secret_id) = admin
        .approle_role("approle", "bench", &[&pki.policy, &issue_policy], 0, "")
        .await?;
    let http = reqwest::Client::new();
    let m = Measure {
        http: &http,
        bao: &bao,
        mount: &pki.int_mount,
        observe_secs,
    };

    let agent_dir = tempfile::Builder::new().prefix("bench-agent-").tempdir()?;
    let agent = run_agent(&m, true, agent_dir.path(), &issue_path, &role_id, &secret_id, n).await?;
    let ck_dir = tempfile::Builder::new().prefix("bench-certkeeper-").tempdir()?;
    let ck = run_certkeeper(
        &m,
        "certkeeper",
        None,
        true,
        ck_dir.path(),
        &pki.sign_path,
        &role_id,
        &secret_id,
        n,
    )
    .await?;
    // The defaults pace an issuer at 100 requests/s (burst 50); the same without that pacing.
    let fast_dir = tempfile::Builder::new().prefix("bench-certkeeper-").tempdir()?;
    let unpaced = Some("{concurrency: 8, ratePerSecond: 100000, burst: 100000}");
    let fast = run_certkeeper(
        &m,
        "certkeeper (no rate)",
        unpaced,
        false,
        fast_dir.path(),
        &pki.sign_path,
        &role_id,
        &secret_id,
        n,
    )
    .await?;

    println!();
    println!(
        "{n} certificates, ECDSA P-256, one OpenBao dev server (same role {}, same AppRole), tools run one after the other",
        pki.role
    );
    println!(
        "bao agent: {n} templates with pkiCert on {issue_path} (key made by Vault); certkeeper: {n} Certificates, sign on {} (key made locally)",
        pki.sign_path
    );
    if observe_secs > 0 {
        println!("role max_ttl {short_ttl} (both ask for 24h and get the cap)");
    }
    println!();
    println!(
        "{:<22} {:>5} {:>18} {:>10} {:>10} {:>7} {:>10} {:>10} {:>9}",
        "tool",
        "certs",
        "time-to-all-issued",
        "all files",
        "RSS MiB",
        "CPU s",
        "requests",
        "PKI calls",
        "bao CPU s"
    );
    for r in [&agent, &ck, &fast] {
        println!(
            "{:<22} {:>5} {:>17.3}s {:>9.3}s {:>10.1} {:>7.2} {:>10} {:>10} {:>9.2}",
            r.tool,
            n,
            r.issued_secs,
            r.files_secs,
            r.rss_mib(),
            r.cpu_at_issued,
            r.server.requests + r.server.logins,
            r.server.pki,
            r.server_cpu
        );
    }
    println!();
    println!(
        "time-to-all-issued: from spawn; bao agent: every file holds a certificate and key; certkeeper: every certificate Ready in /metrics (polled every {} ms); all files: every file holds a certificate",
        POLL.as_millis()
    );
    println!(
        "certkeeper: default issuer limits (concurrency 8, 100 requests/s, burst 50); certkeeper (no rate): concurrency 8, rate unlimited"
    );
    println!(
        "CPU s: the tool's user+system CPU from spawn until then; RSS: mean VmRSS of {RSS_SAMPLES} samples 1 s apart after"
    );
    println!(
        "requests: handled by the dev server meanwhile (logins {} / {} / {}), PKI calls: issue + sign; bao CPU s: the dev server's CPU meanwhile",
        agent.server.logins, ck.server.logins, fast.server.logins
    );
    for r in [&agent, &ck, &fast] {
        let kib: Vec<String> = r.rss_kib.iter().map(u64::to_string).collect();
        println!("{} VmRSS samples (KiB): {}", r.tool, kib.join(" "));
    }
    if observe_secs > 0 {
        println!();
        println!("renewals watched for {observe_secs} s after issuance (files polled every 250 ms):");
        for r in [&agent, &ck] {
            if let Some(o) = &r.observe {
                println!("{}", o.renewals.describe(r.tool, n));
                println!(
                    "  during the watch: {:.2} CPU s, dev server {} requests ({} PKI calls, {} logins), {:.2} CPU s",
                    o.cpu,
                    o.server.requests + o.server.logins,
                    o.server.pki,
                    o.server.logins,
                    o.server_cpu
                );
            }
        }
    }
    if keep {
        println!(
            "kept: {} {} {}",
            agent_dir.keep().display(),
            ck_dir.keep().display(),
            fast_dir.keep().display()
        );
    }
    Ok(())
}
