//! Leader loss in a real 3-node OpenBao raft cluster: while the cluster elects, every failure
//! the client sees is transient, and a caller that keeps retrying succeeds after failover.
#![allow(clippy::unwrap_used)] // tests state their expectations by unwrapping

mod common;

use std::time::{Duration, Instant};

use certkeeper_core::FailureClass;
use certkeeper_testkit::{PkiOptions, RaftCluster};
use certkeeper_vault::{HealthStatus, VaultConfig};
use common::sign_request;

const HOUR: Duration = Duration::from_secs(3600);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_gives_transient_failures_then_success() {
    let mut cluster = RaftCluster::start(3).await.unwrap();
    let admin = cluster.admin().await.unwrap();
    let pki = admin.setup_pki(PkiOptions::default()).await.unwrap();
    let auth = common::approle(&admin, "ck", &pki.policy, 0).await;

    let leader = cluster.leader_index().await.expect("a leader");
    let standby = (leader + 1) % 3;
    let addrs = cluster.addrs();
    let mut cfg = VaultConfig::new(&addrs[standby]);
    cfg.connect_timeout = Duration::from_secs(2);
    cfg.request_timeout = Duration::from_secs(5);
    let (via_standby, _) = common::recorded_client(&cfg, auth.clone());
    // A client pointed at the node that will die, as a single-address config would be.
    let mut dead_cfg = cfg.clone();
    dead_cfg.server = addrs[leader].clone();
    let (via_leader, _) = common::recorded_client(&dead_cfg, auth);

    assert_eq!(via_standby.health().await.unwrap().status, HealthStatus::Standby);
    // A standby serves logins from its own copy of storage, which trails the leader by a moment:
    // a secret_id created a moment ago on the leader is "invalid" there until it replicates.
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Err(e) = via_standby.login_check().await {
        assert!(
            Instant::now() < deadline,
            "secret_id never replicated to the standby: {e}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    via_standby
        .sign(&pki.sign_path, &sign_request("before.example.com", HOUR))
        .await
        .expect("standby forwards");
    via_leader
        .sign(&pki.sign_path, &sign_request("leader.example.com", HOUR))
        .await
        .expect("leader signs");

    cluster.kill(leader);
    let killed = Instant::now();
    let mut failures = Vec::new();
    let deadline = killed + Duration::from_secs(90);
    let recovered = loop {
        assert!(
            Instant::now() < deadline,
            "no success 90 s after the leader died: {failures:?}"
        );
        match via_standby
            .sign(&pki.sign_path, &sign_request("after.example.com", HOUR))
            .await
        {
            Ok(_) => break killed.elapsed(),
            Err(e) => {
                failures.push((e.status(), e.class(), e.to_string()));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let seen: std::collections::BTreeSet<String> = failures
        .iter()
        .map(|(status, _, msg)| status.map_or_else(|| msg.clone(), |s| s.to_string()))
        .collect();
    eprintln!(
        "failover: first success {recovered:?} after the kill; {} failures: {seen:?}",
        failures.len()
    );
    for (status, class, msg) in &failures {
        assert_eq!(*class, FailureClass::Transient, "status {status:?}: {msg}");
    }

    // The dead node: connection refused, transient; it comes back sealed (503), still transient.
    let e = via_leader
        .sign(&pki.sign_path, &sign_request("dead.example.com", HOUR))
        .await
        .unwrap_err();
    assert_eq!(e.class(), FailureClass::Transient, "{e}");
    cluster.restart_sealed(leader).await.unwrap();
    assert_eq!(via_leader.health().await.unwrap().status, HealthStatus::Sealed);
    let e = via_leader
        .sign(&pki.sign_path, &sign_request("sealed.example.com", HOUR))
        .await
        .unwrap_err();
    assert_eq!(
        (e.class(), e.status()),
        (FailureClass::Transient, Some(503)),
        "{e}"
    );
    cluster.unseal(leader).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match via_leader
            .sign(&pki.sign_path, &sign_request("back.example.com", HOUR))
            .await
        {
            Ok(_) => break,
            Err(e) => {
                assert_eq!(e.class(), FailureClass::Transient, "{e}");
                assert!(Instant::now() < deadline, "rejoined node never served: {e}");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
}
