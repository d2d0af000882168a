//! The controller while the leader of a real 3-node OpenBao raft cluster is killed and restarted,
//! against a genuine kube-apiserver: short certificates (Vault caps them at 2 minutes) renew
//! through the kills; no target Secret ever holds an expired certificate or a key that does not
//! match it; any failure shown in status is transient with a next attempt; afterwards everything
//! is Ready with no failure left, without anyone touching it.
//! Skipped (with a printed reason) only when the kube binaries are not installed.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Result, bail};
use certkeeper_core::pki::PrivateKey;
use certkeeper_testkit::{KubeApiServer, PkiOptions, RaftCluster};
use common::{Api, NS, apply_crds, create_token_issuer, decode, installed, ready, wait_for};
use serde_json::{Value, json};

const N: usize = 5;
const CERTS: &str = common::CERTIFICATES;

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Every target Secret serves an unexpired certificate with its key; every failure in status is
/// transient and scheduled. Returns the sum of revisions.
async fn check(api: &Api) -> Result<u64> {
    let mut revisions = 0;
    for i in 0..N {
        let secret = api
            .get(&format!("/api/v1/namespaces/apps/secrets/r{i}-tls"))
            .await?
            .unwrap();
        let crt = decode(&secret, "tls.crt");
        let (_, pem) = x509_parser::pem::parse_x509_pem(crt.as_bytes()).unwrap();
        let cert = pem.parse_x509().unwrap();
        let not_after = cert.validity().not_after.timestamp();
        if not_after <= now() {
            bail!("r{i} serves an expired certificate");
        }
        let key = PrivateKey::from_pem(&decode(&secret, "tls.key"))?;
        if !key.matches_public_key(cert.public_key().raw) {
            bail!("r{i}: tls.key does not match tls.crt");
        }
        let c = api.get(&format!("{CERTS}/r{i}")).await?.unwrap();
        let ck = &c["status"]["certkeeper"];
        if !ck.is_null() && (ck["failureClass"] != "transient" || !ck["nextAttemptTime"].is_string()) {
            bail!("r{i}: {ck}");
        }
        revisions += c["status"]["revision"].as_u64().unwrap_or(0);
    }
    Ok(revisions)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raft_leader_killed_while_certificates_renew() -> Result<()> {
    if !installed() {
        return Ok(());
    }
    let kube = KubeApiServer::start().await?;
    let mut cluster = RaftCluster::start(3).await?;
    let admin = cluster.admin().await?;
    let pki = admin
        .setup_pki(PkiOptions {
            max_ttl: "2m".into(),
            ttl: "2m".into(),
            ..PkiOptions::default()
        })
        .await?;
    let token = admin.create_token(&[&pki.policy], "2h", true, 0).await?;
    let api = Api::new(&kube)?;
    apply_crds(&kube).await?;
    kube.create_namespace(NS).await?;
    // One address, as behind a load balancer: node 0, unreachable while it is the killed leader.
    create_token_issuer(&api, &cluster.addrs()[0], &pki.sign_path, &token).await?;
    let config_limits = certkeeper_controller::load::IssuerLimits {
        request_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        ..Default::default()
    };
    let (stop_tx, controller) = {
        let mut config = common::config_for(&kube, kube.admin_token());
        config.limits = config_limits;
        common::spawn_controller(config)
    };
    for i in 0..N {
        api.create(
            CERTS,
            &json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
                    "metadata": {"name": format!("r{i}"), "namespace": NS},
                    "spec": {"secretName": format!("r{i}-tls"), "commonName": format!("r{i}.example.com"),
                             "duration": "1h", "issuerRef": {"name": "vault"}}}),
        )
        .await?;
    }
    wait_for("all Ready", Duration::from_secs(120), || async {
        let list = api.get(CERTS).await?.unwrap();
        let n = list["items"]
            .as_array()
            .map_or(0, |i| i.iter().filter(|c| ready(c)).count());
        Ok((n == N).then_some(()))
    })
    .await?;
    let first = check(&api).await?;

    let started = Instant::now();
    for round in 0..2 {
        let leader = cluster.wait_for_leader(None, Duration::from_secs(60)).await?;
        cluster.kill(leader);
        eprintln!(
            "{:>4}s: killed leader node {leader} (round {round})",
            started.elapsed().as_secs()
        );
        for pause in [10u64, 25] {
            let until = Instant::now() + Duration::from_secs(pause);
            while Instant::now() < until {
                check(&api).await?;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            if pause == 10 {
                cluster.restart(leader).await?;
            }
        }
    }
    let settled = Instant::now();
    let last = wait_for("all settled", Duration::from_secs(150), || async {
        let list = api.get(CERTS).await?.unwrap();
        let items: Vec<Value> = list["items"].as_array().cloned().unwrap_or_default();
        let done = items
            .iter()
            .all(|c| ready(c) && c["status"]["certkeeper"].is_null());
        let renewed = check(&api).await? >= first + N as u64;
        Ok((done && renewed).then_some(()))
    })
    .await;
    let revisions = check(&api).await?;
    eprintln!(
        "after {}s of kills: {} renewals, settled {:?} after the last restart",
        started.elapsed().as_secs(),
        revisions - first,
        settled.elapsed()
    );
    last?;
    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(30), controller).await???;
    Ok(())
}
