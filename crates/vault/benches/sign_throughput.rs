//! Signing throughput of `VaultClient::sign` against the raw OpenBao ceiling, in one run on the
//! same dev server: the raw side is a minimal HTTP loop posting pre-made sign bodies with an
//! AppRole token; the client side builds each body from a `SignRequest`, logs in with AppRole once, reuses
//! the cached token and parses every answer. Rounds alternate so drift affects both alike.
//!
//! `scripts/bench-sign` runs it; knobs: BENCH_REQUESTS (per round, default 2000),
//! BENCH_CONCURRENCY (default 4), BENCH_ROUNDS (default 5).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use certkeeper_testkit::{DevServer, PkiOptions};
use certkeeper_vault::{AuthMethod, SecretSource, SignRequest, VaultClient, VaultConfig};
use serde_json::json;
use tokio::task::JoinSet;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn make_requests(n: usize) -> Result<Vec<SignRequest>> {
    (0..n)
        .map(|i| {
            let cn = format!("bench{i}.example.com");
            let key = rcgen::KeyPair::generate()?;
            let mut params = rcgen::CertificateParams::new(vec![cn.clone()])?;
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, cn.clone());
            Ok(SignRequest {
                csr_pem: params.serialize_request(&key)?.pem()?,
                common_name: Some(cn.clone()),
                dns_names: vec![cn],
                ttl: Some(Duration::from_secs(3600)),
                ..Default::default()
            })
        })
        .collect()
}

/// Run `total` calls of `op` with `concurrency` workers; returns requests per second.
async fn drive<F, Fut>(total: usize, concurrency: usize, op: F) -> Result<f64>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send,
{
    let op = Arc::new(op);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..concurrency {
        let (op, next) = (op.clone(), next.clone());
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= total {
                    return Ok::<(), anyhow::Error>(());
                }
                op(i).await?;
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    // `cargo bench` passes --bench; `cargo test --benches` would pass nothing useful here.
    if std::env::args().any(|a| a == "--list") {
        return Ok(());
    }
    let total = env_or("BENCH_REQUESTS", 2000);
    let concurrency = env_or("BENCH_CONCURRENCY", 4);
    let rounds = env_or("BENCH_ROUNDS", 5);

    let bao = DevServer::start().await?;
    let admin = bao.admin();
    let pki = admin.setup_pki(PkiOptions::default()).await?;
    admin.enable_auth("approle", "approle").await?;
    let (role_id, secret_id) = admin
        .approle_role("approle", "bench", &[&pki.policy], 0, "")
        .await?;
    let requests = Arc::new(make_requests(256)?);

    // Raw side: the same bodies, serialised once, posted as-is; only the status is checked.
    let url = format!("{}/v1/{}", bao.addr(), pki.sign_path);
    let raw_bodies: Arc<Vec<Vec<u8>>> = Arc::new(
        requests
            .iter()
            .map(|r| {
                serde_json::to_vec(&json!({
                    "csr": r.csr_pem, "common_name": r.common_name, "alt_names": r.dns_names.join(","),
                    "ip_sans": "", "uri_sans": "", "ttl": "3600s", "exclude_cn_from_sans": true,
                }))
            })
            .collect::<Result<_, _>>()?,
    );
    let raw_http = reqwest::Client::builder().build()?;
    // The raw side uses a token from the same AppRole, so Vault does the same ACL work for both.
    let login: serde_json::Value = raw_http
        .post(format!("{}/v1/auth/approle/login", bao.addr()))
        .json(&json!({"role_id": role_id, "secret_id": secret_id}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let app_token = login["auth"]["client_token"]
        .as_str()
        .context("approle login token")?
        .to_owned();
    let root_token = bao.root_token().to_owned();

    let cfg = VaultConfig::new(bao.addr());
    let auth = AuthMethod::AppRole {
        mount: "approle".into(),
        role_id,
        secret_id: SecretSource::value(secret_id),
    };
    let client = Arc::new(VaultClient::new(&cfg, auth)?);
    client.login_check().await.context("login")?;

    let raw_round = |token: &str| {
        let (http, url, token, bodies) = (
            raw_http.clone(),
            url.clone(),
            token.to_owned(),
            raw_bodies.clone(),
        );
        drive(total, concurrency, move |i| {
            let req = http
                .post(&url)
                .header("X-Vault-Token", &token)
                .header("Content-Type", "application/json")
                .body(bodies[i % bodies.len()].clone());
            async move {
                let resp = req.send().await?;
                if !resp.status().is_success() {
                    bail!("raw sign: HTTP {}", resp.status());
                }
                resp.bytes().await?;
                Ok(())
            }
        })
    };
    let client_round = || {
        let (client, path, reqs) = (client.clone(), pki.sign_path.clone(), requests.clone());
        drive(total, concurrency, move |i| {
            let (client, path, reqs) = (client.clone(), path.clone(), reqs.clone());
            async move {
                client.sign(&path, &reqs[i % reqs.len()]).await?;
                Ok(())
            }
        })
    };

    // Warm both paths (connections, server caches).
    drive(200, concurrency, {
        let (client, path, reqs) = (client.clone(), pki.sign_path.clone(), requests.clone());
        move |i| {
            let (client, path, reqs) = (client.clone(), path.clone(), reqs.clone());
            async move {
                client.sign(&path, &reqs[i % reqs.len()]).await?;
                Ok(())
            }
        }
    })
    .await?;

    let (mut raw, mut ours, mut raw_root) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=rounds {
        let r = raw_round(&app_token).await?;
        let c = client_round().await?;
        let rr = raw_round(&root_token).await?;
        println!(
            "round {round}: raw {r:8.1} req/s   certkeeper-vault {c:8.1} req/s   ratio {:.3}   \
             (raw with root token {rr:8.1} req/s)",
            c / r
        );
        raw.push(r);
        ours.push(c);
        raw_root.push(rr);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let (r, c, rr) = (median(&mut raw), median(&mut ours), median(&mut raw_root));
    println!(
        "sign throughput, {total} requests x {rounds} rounds, concurrency {concurrency}, EC P-256 CSRs, OpenBao dev server: \
         raw median {r:.1} req/s, certkeeper-vault median {c:.1} req/s, ratio {:.3} \
         (same AppRole policy on both sides; a root token, which skips ACL checks, reaches {rr:.1} req/s)",
        c / r
    );
    Ok(())
}
