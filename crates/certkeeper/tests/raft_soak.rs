//! Soak: 100 certificates with 2-minute lifetimes renew for several minutes through the
//! `certkeeper` binary while the leader of a real 3-node OpenBao raft cluster is killed again and
//! again. Checked all along: no certificate file on disk is ever expired or mismatched with its
//! key, and no certificate is ever left without a next attempt.
//!
//! Scale: CERTKEEPER_SOAK_CERTS (default 100) and CERTKEEPER_SOAK_SECS (default 240).
#![allow(clippy::unwrap_used)] // tests state their expectations by unwrapping

mod common;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use certkeeper_testkit::{PkiOptions, RaftCluster};
use common::*;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// notAfter of the leaf served in `dir`, after checking the key beside it matches. Reads one
/// revision (the slot `..data` points to) so that a renewal flipping `..data` between the two
/// reads is not mistaken for a mismatch.
fn served_not_after(dir: &Path, cn: &str) -> Option<SystemTime> {
    let slot = dir.join(std::fs::read_link(dir.join("..data")).ok()?);
    assert_pair(&slot, cn);
    let crt = std::fs::read(slot.join("tls.crt")).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(&crt).unwrap();
    let secs = pem.parse_x509().unwrap().validity().not_after.timestamp();
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raft_leader_killed_repeatedly_while_short_certificates_renew() {
    let n = env_or("CERTKEEPER_SOAK_CERTS", 100);
    let soak = Duration::from_secs(env_or("CERTKEEPER_SOAK_SECS", 240));
    let mut cluster = RaftCluster::start(3).await.unwrap();
    let admin = cluster.admin().await.unwrap();
    // Vault caps every certificate at 2 minutes (the manifests ask for cert-manager's minimum of
    // 1 h): certkeeper renews at 2/3 of the actual lifetime, about every 80 s.
    let pki = admin
        .setup_pki(PkiOptions {
            max_ttl: "2m".into(),
            ttl: "2m".into(),
            ..PkiOptions::default()
        })
        .await
        .unwrap();
    let (role_id, secret_id) = admin
        .approle_role("approle", "ck", &[&pki.policy], 0, "")
        .await
        .unwrap();
    let names: Vec<String> = (0..n).map(|i| format!("s{i}")).collect();
    let specs: Vec<(&str, &str)> = names
        .iter()
        .map(|n| {
            (
                n.as_str(),
                "  duration: 1h\n  privateKey: {algorithm: ECDSA, size: 256}\n",
            )
        })
        .collect();
    // certkeeper talks to node 0, as it would to one address behind a load balancer; when node 0
    // is the leader that gets killed, it is unreachable until restarted.
    let addr = cluster.addrs()[0].clone();
    let l = layout(
        &Vault {
            addr: &addr,
            sign_path: &pki.sign_path,
            role_id: &role_id,
            secret_id: &secret_id,
        },
        &specs,
        "issuers: {requestTimeout: 5s, connectTimeout: 2s}\n",
    );
    let daemon = Daemon::start(&l.config);
    wait_for(&l.config, "all issued", Duration::from_secs(120), &daemon, |r| {
        r.len() == names.len() && r.iter().all(|x| x["ready"] == true)
    });
    let first_revisions: u64 = status(&l.config)
        .iter()
        .map(|r| r["revision"].as_u64().unwrap())
        .sum();

    let check = |now: SystemTime| {
        for name in &names {
            let dir = l.root.join(format!("certs/default/{name}-tls"));
            let not_after = served_not_after(&dir, &format!("{name}.example.com"))
                .unwrap_or_else(|| panic!("{name}: tls.crt disappeared"));
            assert!(
                not_after > now,
                "{name} is served expired (notAfter {not_after:?}):\n{}",
                daemon.log()
            );
        }
        for r in status(&l.config) {
            let f = &r["lastFailure"];
            if !f.is_null() {
                assert_ne!(f["nextAttempt"], "on change", "not retrying: {r}");
                assert_eq!(f["class"], "transient", "{r}");
            }
        }
    };

    let started = Instant::now();
    let mut kills = 0;
    let mut checks = 0;
    let mut failing_seen = 0usize;
    while started.elapsed() < soak {
        // Kill the leader, leave it dead for 10 s (a new leader is elected meanwhile), then bring
        // it back (it comes back sealed and is unsealed); 20 s of calm; again.
        let leader = cluster
            .wait_for_leader(None, Duration::from_secs(60))
            .await
            .unwrap();
        cluster.kill(leader);
        kills += 1;
        eprintln!("{:>4}s: killed leader node {leader}", started.elapsed().as_secs());
        for pause in [10u64, 20] {
            let until = Instant::now() + Duration::from_secs(pause);
            while Instant::now() < until {
                check(SystemTime::now());
                failing_seen += status(&l.config)
                    .iter()
                    .filter(|r| !r["lastFailure"].is_null())
                    .count();
                checks += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            if pause == 10 {
                cluster.restart(leader).await.unwrap();
            }
        }
    }
    // After the last restart, everything settles: all ready, no failure left.
    let rows = wait_for(&l.config, "all settled", Duration::from_secs(60), &daemon, |r| {
        r.iter().all(|x| x["ready"] == true && x["lastFailure"].is_null())
    });
    check(SystemTime::now());
    let revisions: u64 = rows.iter().map(|r| r["revision"].as_u64().unwrap()).sum();
    let renewals = revisions - first_revisions;
    eprintln!(
        "soak {}s, {n} certificates: {kills} leader kills, {checks} checks, {renewals} renewals, \
         {failing_seen} failing-row observations",
        soak.as_secs()
    );
    // Every certificate renewed at least once per lifetime's worth of soak.
    let lifetimes = soak.as_secs() / 120;
    assert!(
        renewals >= n * lifetimes,
        "{renewals} renewals for {n} certificates over {}s",
        soak.as_secs()
    );
    assert!(daemon.stop().success());
}
