//! The subcommands. Each returns the process exit code (see main.rs) or an error (exit 2).

use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use certkeeper_core::time::to_unix;
use certkeeper_daemon::config::{Config, LogFormat};
use certkeeper_daemon::load::{Loaded, ManifestSecrets, load};
use certkeeper_daemon::problems::problem_rows;
use certkeeper_daemon::statedb::{RENEW_ALL, StateDb, request_renew};
use certkeeper_engine::metrics::Metrics;
use certkeeper_engine::state::CertState;
use certkeeper_serve::status::{ProblemStatusRow, StatusRow, problems_table, row, status_json, table};
use tracing_subscriber::EnvFilter;

pub async fn run(config_path: &Path) -> Result<ExitCode> {
    let config = Config::load(config_path)?;
    let filter = EnvFilter::try_from_env("CERTKEEPER_LOG")
        .or_else(|_| EnvFilter::try_new(&config.log.level))
        .context("log.level")?;
    crate::logging::init(filter, matches!(config.log.format, LogFormat::Json));
    certkeeper_daemon::run::run(config_path).await?;
    Ok(ExitCode::SUCCESS)
}

/// Every persisted state. Read-only next to a running daemon; a database left by a crash needs
/// the repair a writable open performs, which works when no daemon holds it. A daemon that is
/// just creating the file is given a moment.
fn read_states(path: &Path) -> Result<std::collections::BTreeMap<String, CertState>> {
    let mut tries = 0;
    loop {
        let err = match StateDb::open_read_only(path) {
            Ok(db) => return Ok(db.load_all()?),
            Err(read_only) => match StateDb::open(path) {
                Ok(db) => return Ok(db.load_all()?),
                Err(_) => read_only,
            },
        };
        tries += 1;
        if tries >= 5 {
            return Err(err.into());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The rows for every certificate of the manifests, from the state database, the rows of the
/// manifests' problems, and what the load left alone.
fn status_rows(config: &Config) -> Result<(Vec<StatusRow>, Vec<ProblemStatusRow>, Loaded)> {
    let loaded = load(
        config,
        &Metrics::default(),
        &HashMap::new(),
        &ManifestSecrets::default(),
    )?;
    let states = if config.state_db_path().exists() {
        read_states(&config.state_db_path())?
    } else {
        Default::default()
    };
    let now = to_unix(SystemTime::now());
    let mut rows: Vec<StatusRow> = loaded
        .certificates
        .iter()
        .map(|(job, _)| {
            row(
                job,
                states.get(job.id.as_str()).unwrap_or(&CertState::default()),
                now,
            )
        })
        .collect();
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    let problems = problem_rows(&loaded);
    Ok((rows, problems, loaded))
}

/// What a load leaves alone, as sections of `certkeeper status` and `check`: Certificates of
/// external issuers (not certkeeper's; neither a problem nor a failure) and documents of other
/// kinds.
fn left_alone(loaded: &Loaded) -> String {
    let mut out = String::new();
    if !loaded.external.is_empty() {
        out.push_str("NOT CERTKEEPER'S (external issuers; left alone)\n");
        for external in &loaded.external {
            out.push_str(&format!("{}  issuerRef {}\n", external.name, external.issuer()));
        }
    }
    if !loaded.ignored.is_empty() {
        out.push_str("IGNORED DOCUMENTS (kinds certkeeper does not read)\n");
        for ignored in &loaded.ignored {
            out.push_str(&format!("{ignored}\n"));
        }
    }
    out
}

pub async fn status(config_path: &Path, json: bool) -> Result<ExitCode> {
    let config = Config::load(config_path)?;
    let (rows, problems, loaded) = status_rows(&config)?;
    if json {
        println!("{}", status_json(&rows, &problems));
    } else {
        print!("{}", table(&rows));
        if !problems.is_empty() {
            print!("\n{}", problems_table(&problems));
        }
        let alone = left_alone(&loaded);
        if !alone.is_empty() {
            print!("\n{alone}");
        }
    }
    // A certificate whose hooks fail (class apply) is valid but not in use: not well either.
    Ok(if problems.is_empty() && rows.iter().all(StatusRow::is_well) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn full_name(name: &str) -> String {
    if name.contains('/') {
        name.to_owned()
    } else {
        format!("default/{name}")
    }
}

pub async fn renew(config_path: &Path, name: Option<String>, all: bool, wait: u64) -> Result<ExitCode> {
    let config = Config::load(config_path)?;
    let (before, _, _) = status_rows(&config)?;
    let targets: Vec<StatusRow> = match (&name, all) {
        (Some(n), false) => {
            let id = full_name(n);
            let Some(r) = before.iter().find(|r| r.name == id) else {
                bail!(
                    "no certificate {id} in the manifests of {}",
                    config_path.display()
                );
            };
            vec![r.clone()]
        }
        (None, true) => before.clone(),
        _ => bail!("name a certificate or pass --all"),
    };
    match &name {
        Some(n) if !all => request_renew(&config.state_dir, &full_name(n))?,
        _ => request_renew(&config.state_dir, RENEW_ALL)?,
    }
    if wait == 0 {
        println!("renew requested for {} certificate(s)", targets.len());
        return Ok(ExitCode::SUCCESS);
    }
    // Done when the revision went up or a new failure was recorded after the request.
    let deadline = Instant::now() + Duration::from_secs(wait);
    let total = targets.len();
    let mut last_shown = usize::MAX;
    loop {
        let (now_rows, _, _) = status_rows(&config)?;
        let mut done = 0;
        let mut failed = Vec::new();
        for t in &targets {
            let Some(r) = now_rows.iter().find(|r| r.name == t.name) else {
                continue;
            };
            if r.revision > t.revision {
                done += 1;
            } else if let Some(f) = &r.last_failure
                && t.last_failure
                    .as_ref()
                    .is_none_or(|old| old.last_failure != f.last_failure)
            {
                done += 1;
                failed.push((r.name.clone(), f.class.clone(), f.message.clone()));
            }
        }
        if done != last_shown {
            let width = 30;
            let filled = (done * width).checked_div(total).unwrap_or(width);
            eprint!(
                "\r[{}{}] {done}/{total}",
                "#".repeat(filled),
                " ".repeat(width - filled)
            );
            last_shown = done;
        }
        if done >= total {
            eprintln!();
            for (n, class, msg) in &failed {
                println!("{n}: failed ({class}): {msg}");
            }
            return Ok(if failed.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            });
        }
        if Instant::now() > deadline {
            eprintln!();
            println!(
                "{done}/{total} finished within {wait}s; is `certkeeper run` running with this configuration?"
            );
            return Ok(ExitCode::from(1));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

pub async fn check(config_path: &Path) -> Result<ExitCode> {
    let config = Config::load(config_path)?;
    let secrets = ManifestSecrets::default();
    let loaded = load(&config, &Metrics::default(), &HashMap::new(), &secrets)?;
    for p in &loaded.manifest_problems {
        println!("invalid: {p}");
    }
    for ignored in &loaded.ignored {
        println!("warning: {ignored}");
    }
    for external in &loaded.external {
        println!(
            "not certkeeper's: Certificate {} (issuerRef {}): an external issuer's; left alone",
            external.name,
            external.issuer()
        );
    }
    for p in &loaded.problems {
        println!("problem: {}: {}", p.source, p.message);
    }
    let mut rows = vec![[
        "ISSUER".to_owned(),
        "HEALTH".to_owned(),
        "LOGIN".to_owned(),
        "DETAIL".to_owned(),
    ]];
    let mut all_ok = loaded.problems.is_empty();
    // Issuers with several addresses: what each address said (after the health check below).
    let mut nodes = Vec::new();
    for issuer in &loaded.issuers {
        let (health, detail_h) = match issuer.client.health().await {
            Ok(h) if h.status.can_serve() => (h.status.as_str().to_owned(), String::new()),
            Ok(h) => (
                h.status.as_str().to_owned(),
                format!("Vault is {}", h.status.as_str()),
            ),
            Err(e) => (format!("error ({})", e.class()), e.to_string()),
        };
        let addresses = issuer.client.addresses();
        if addresses.len() > 1 {
            let each: Vec<String> = addresses
                .iter()
                .map(|(address, health)| {
                    format!("{address} {}", health.map_or("unreachable", |h| h.as_str()))
                })
                .collect();
            nodes.push(format!("addresses of {}: {}", issuer.id, each.join(", ")));
        }
        let (login, detail_l) = match issuer.client.login_check().await {
            Ok(info) => (
                "ok".to_owned(),
                info.ttl.map_or_else(
                    || "token does not expire".to_owned(),
                    |t| format!("token ttl {}s", t.as_secs()),
                ),
            ),
            Err(e) => (format!("error ({})", e.class()), e.to_string()),
        };
        all_ok &= detail_h.is_empty() && login == "ok";
        let detail = if detail_h.is_empty() { detail_l } else { detail_h };
        rows.push([issuer.id.to_string(), health, login, detail]);
    }
    let widths: Vec<usize> = (0..4)
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    for r in &rows {
        let cells: Vec<String> = r.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("{}", cells.join("  ").trim_end());
    }
    for line in &nodes {
        println!("{line}");
    }
    println!("{} certificate(s) in the manifests", loaded.certificates.len());
    // Secrets by name only: their values are never shown.
    let names = secrets.names();
    if !names.is_empty() {
        println!("{} Secret(s) in the manifests: {}", names.len(), names.join(", "));
    }
    // Invalid manifests are what exit code 2 means; the daemon runs the rest, check does not
    // pass them.
    if !loaded.manifest_problems.is_empty() {
        println!(
            "{} manifest file(s) or document(s) are invalid and left out",
            loaded.manifest_problems.len()
        );
        return Ok(ExitCode::from(2));
    }
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub fn inspect(file: &Path) -> Result<ExitCode> {
    let pem = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let certs =
        certkeeper_core::pki::describe_pem_bundle(&pem).with_context(|| format!("{}", file.display()))?;
    if certs.is_empty() {
        bail!("{}: no certificate found", file.display());
    }
    let now = SystemTime::now();
    for (i, c) in certs.iter().enumerate() {
        let role = match (i, c.self_signed, c.is_ca) {
            (0, _, false) => "leaf",
            (_, true, _) => "root CA",
            (_, false, true) => "intermediate CA",
            _ => "certificate",
        };
        println!("[{i}] {role}");
        println!("  subject:    {}", c.subject);
        println!("  issuer:     {}", c.issuer);
        println!("  serial:     {}", c.serial);
        println!("  key:        {}", c.public_key);
        let left = c.not_after.duration_since(now).map_or_else(
            |_| "expired".to_owned(),
            |d| format!("{}h left", d.as_secs() / 3600),
        );
        println!(
            "  validity:   {} .. {} ({left})",
            c.not_before_rfc3339(),
            c.not_after_rfc3339()
        );
        let mut sans: Vec<String> = c.dns_names.iter().map(|d| format!("DNS:{d}")).collect();
        sans.extend(c.ip_addresses.iter().map(|ip| format!("IP:{ip}")));
        sans.extend(c.uris.iter().map(|u| format!("URI:{u}")));
        sans.extend(c.email_addresses.iter().map(|e| format!("email:{e}")));
        if !sans.is_empty() {
            println!("  SANs:       {}", sans.join(", "));
        }
    }
    Ok(ExitCode::SUCCESS)
}
