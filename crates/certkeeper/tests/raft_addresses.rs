//! One issuer, three addresses: the nodes of a real 3-node OpenBao raft cluster, addressed node by
//! node (no load balancer), through the standalone runtime's `issuers.vault.<issuer>.addresses`.
//!
//! - Certificates renew through the node the client chose by health (the active one).
//! - That node is killed (SIGKILL; the cluster has a failure tolerance of 1, which `RaftCluster`
//!   waits for): renewals go on through another node. Measured and printed: the time from the
//!   kill to the next successful renewal.
//! - Every node sealed: the issuer's breaker lets one probe through at a time and the client
//!   spreads those probes across the addresses; the requests per node over the outage are
//!   counted from `/metrics` (`certkeeper_vault_node_requests_total`), printed and bounded.
//! - Unsealed: every certificate is ready again.
#![allow(clippy::unwrap_used)] // tests state their expectations by unwrapping

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use certkeeper_testkit::{PkiOptions, RaftCluster};
use common::*;

/// (address, operation, status) -> count, for the issuer `Issuer/default/vault`.
type NodeCounts = BTreeMap<(String, String, String), u64>;

async fn node_counts(port: u16) -> NodeCounts {
    let text = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let label = |line: &str, name: &str| {
        let start = line.find(&format!("{name}=\""))? + name.len() + 2;
        let end = start + line[start..].find('"')?;
        Some(line[start..end].to_owned())
    };
    text.lines()
        .filter(|l| l.starts_with("certkeeper_vault_node_requests_total{issuer=\"Issuer/default/vault\""))
        .filter_map(|l| {
            let n = l.rsplit(' ').next()?.parse().ok()?;
            Some((
                (label(l, "address")?, label(l, "operation")?, label(l, "status")?),
                n,
            ))
        })
        .collect()
}

/// `after - before`, summed per address for `operation` (all operations when `None`).
fn per_address(before: &NodeCounts, after: &NodeCounts, operation: Option<&str>) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for ((address, op, status), n) in after {
        if operation.is_some_and(|o| o != op) {
            continue;
        }
        let was = before
            .get(&(address.clone(), op.clone(), status.clone()))
            .copied()
            .unwrap_or(0);
        *out.entry(address.clone()).or_default() += n - was;
    }
    out
}

fn revisions(config: &std::path::Path) -> u64 {
    status(config)
        .iter()
        .map(|r| r["revision"].as_u64().unwrap_or(0))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_addresses_a_node_killed_then_all_sealed() {
    let mut cluster = RaftCluster::start(3).await.unwrap();
    let admin = cluster.admin().await.unwrap();
    // Vault caps every certificate at 30 s: each renews about every 20 s, so with 6 of them a
    // renewal is due every few seconds.
    let pki = admin
        .setup_pki(PkiOptions {
            max_ttl: "30s".into(),
            ttl: "30s".into(),
            ..PkiOptions::default()
        })
        .await
        .unwrap();
    let (role_id, secret_id) = admin
        .approle_role("approle", "ck", &[&pki.policy], 0, "")
        .await
        .unwrap();
    let names: Vec<String> = (0..6).map(|i| format!("n{i}")).collect();
    let specs: Vec<(&str, &str)> = names
        .iter()
        .map(|n| {
            (
                n.as_str(),
                "  duration: 1h\n  privateKey: {algorithm: ECDSA, size: 256}\n",
            )
        })
        .collect();
    let addrs = cluster.addrs();
    let port = certkeeper_testkit::free_port();
    let l = layout(
        &Vault {
            // spec.vault.server: a name for the Vault; the addresses are where requests go.
            addr: "http://vault.invalid:8200",
            sign_path: &pki.sign_path,
            role_id: &role_id,
            secret_id: &secret_id,
        },
        &specs,
        &format!(
            "listen: 127.0.0.1:{port}\nissuers:\n  requestTimeout: 5s\n  connectTimeout: 2s\n  vault:\n    default/vault:\n      addresses: [{}]\n",
            addrs.join(", ")
        ),
    );
    let daemon = Daemon::start(&l.config);
    wait_for(&l.config, "all issued", Duration::from_secs(90), &daemon, |r| {
        r.len() == names.len() && r.iter().all(|x| x["ready"] == true)
    });

    // `check` tells what each address is.
    let out = ck(&["check", "--config", l.config.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let line = text
        .lines()
        .find(|l| l.starts_with("addresses of Issuer/default/vault: "))
        .unwrap_or_else(|| panic!("{text}"));
    let leader = cluster.leader_index().await.unwrap();
    assert!(line.contains(&format!("{} active", addrs[leader])), "{line}");
    assert_eq!(line.matches(" standby").count(), 2, "{line}");

    // The node in use: the one the sign requests of the last renewals went to.
    let before = node_counts(port).await;
    let start_rev = revisions(&l.config);
    let bound = Instant::now() + Duration::from_secs(60);
    while revisions(&l.config) < start_rev + 3 {
        assert!(Instant::now() < bound, "no renewals:\n{}", daemon.log());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let signs = per_address(&before, &node_counts(port).await, Some("sign"));
    let (in_use, _) = signs.iter().max_by_key(|(_, n)| **n).unwrap();
    eprintln!("sign requests per node while all are up: {signs:?}; leader is node {leader}");
    assert_eq!(in_use, &addrs[leader], "the active node is the one in use");
    assert_eq!(
        signs.values().sum::<u64>(),
        signs[in_use],
        "every sign went to the node in use"
    );

    // Kill it (the cluster tolerates one failure, which RaftCluster::start waited for).
    let killed_rev = revisions(&l.config);
    cluster.kill(leader);
    let killed = Instant::now();
    let bound = killed + Duration::from_secs(60);
    let natural = loop {
        if revisions(&l.config) > killed_rev {
            break killed.elapsed();
        }
        assert!(
            Instant::now() < bound,
            "no renewal after the kill:\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!(
        "killed node {leader} (in use): next successful renewal after {:.2} s",
        natural.as_secs_f64()
    );
    // What the engine saw meanwhile (failures that reached it: every node failed at once).
    for line in daemon
        .log()
        .lines()
        .filter(|l| l.contains("issuance failed") || l.contains("renewed certificate"))
        .rev()
        .take(12)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
    {
        eprintln!("  {line}");
    }
    // Within a few seconds: the raft election (~2 s with performance_multiplier = 1, during
    // which every node fails) plus the breaker's first probe (1-2 s).
    assert!(natural < Duration::from_secs(15), "{natural:?}");
    let after_kill = node_counts(port).await;
    let signs = per_address(&before, &after_kill, Some("sign"));
    eprintln!("sign requests per node since: {signs:?}");
    assert!(
        signs.iter().any(|(a, n)| a != &addrs[leader] && *n > 0),
        "renewals went through another node"
    );
    // Renewals go on.
    let rev = revisions(&l.config);
    let bound = Instant::now() + Duration::from_secs(40);
    while revisions(&l.config) < rev + 3 {
        assert!(Instant::now() < bound, "renewals stopped:\n{}", daemon.log());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // Every node sealed (restarted raft nodes come back sealed).
    cluster.restart_sealed(leader).await.unwrap();
    for i in (0..3).filter(|i| *i != leader) {
        cluster.restart_sealed(i).await.unwrap();
    }
    for i in 0..3 {
        assert_eq!(cluster.admin_at(i).health().await.unwrap(), 503, "node {i}");
    }
    // Let the breaker open, then count a window of the outage.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let outage = Duration::from_secs(30);
    let c0 = node_counts(port).await;
    tokio::time::sleep(outage).await;
    let c1 = node_counts(port).await;
    let all = per_address(&c0, &c1, None);
    let signs = per_address(&c0, &c1, Some("sign"));
    let health = per_address(&c0, &c1, Some("health"));
    eprintln!(
        "all sealed for {} s: requests per node {all:?} (sign {signs:?}, health {health:?})",
        outage.as_secs()
    );
    let total_signs: u64 = signs.values().sum();
    // One probe at a time, every 1-2 s (the gate's probe schedule), not one per certificate.
    assert!(total_signs <= outage.as_secs() + 4, "{total_signs} signs");
    // Spread across the three addresses.
    assert_eq!(signs.len(), 3, "{signs:?}");
    assert!(signs.values().all(|n| *n >= 2), "{signs:?}");
    // Health rounds: every 10 s; the probes' failures on nodes known sealed ask for none sooner.
    for (address, n) in &health {
        assert!(*n <= outage.as_secs() / 10 + 2, "{address}: {n} health requests");
    }
    let total: u64 = all.values().sum();
    assert!(total <= 3 * outage.as_secs(), "{total} requests in {outage:?}");

    // Unsealed: everything is ready again.
    // All at once: one node alone has no quorum to elect a leader.
    let key = cluster.unseal_key().to_owned();
    for i in 0..3 {
        cluster.admin_at(i).unseal_with(&key).await.unwrap();
    }
    let unsealed = Instant::now();
    let rev = revisions(&l.config);
    wait_for(
        &l.config,
        "renewals after unseal",
        Duration::from_secs(90),
        &daemon,
        |r| r.iter().map(|x| x["revision"].as_u64().unwrap_or(0)).sum::<u64>() > rev,
    );
    eprintln!(
        "unsealed: next successful renewal after {:.2} s",
        unsealed.elapsed().as_secs_f64()
    );
    wait_for(&l.config, "all ready", Duration::from_secs(90), &daemon, |r| {
        r.iter().all(|x| x["ready"] == true)
    });
    assert!(daemon.stop().success());
}
