//! One client, the three nodes of a real OpenBao raft cluster as its addresses (no load
//! balancer): it uses the active node, keeps its one token across nodes, and when that node is
//! killed the very next calls move on to the others by themselves, each call bounded, until the
//! cluster has a new leader; no caller-side retry across addresses is needed.
#![allow(clippy::unwrap_used)] // tests state their expectations by unwrapping

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use certkeeper_core::FailureClass;
use certkeeper_testkit::{PkiOptions, RaftCluster};
use certkeeper_vault::{HealthStatus, Operation, RequestObserver, VaultClient, VaultConfig};
use common::sign_request;

const HOUR: Duration = Duration::from_secs(3600);

/// (address, operation) -> requests.
#[derive(Default)]
struct PerNode(Mutex<BTreeMap<(String, &'static str), u64>>);

impl RequestObserver for PerNode {
    fn observe(&self, _: Operation, _: Option<u16>, _: Option<FailureClass>, _: Duration) {}

    fn observe_at(&self, address: &str, op: Operation, _: Option<u16>, _: Option<FailureClass>, _: Duration) {
        *self
            .0
            .lock()
            .unwrap()
            .entry((address.to_owned(), op.as_str()))
            .or_default() += 1;
    }
}

impl PerNode {
    fn count(&self, address: &str, op: &str) -> u64 {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|((a, o), _)| a == address && *o == op)
            .map(|(_, n)| n)
            .sum()
    }
    fn total(&self, op: &str) -> u64 {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|((_, o), _)| *o == op)
            .map(|(_, n)| n)
            .sum()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_active_node_then_the_others_when_it_is_killed() {
    let mut cluster = RaftCluster::start(3).await.unwrap();
    let admin = cluster.admin().await.unwrap();
    let pki = admin.setup_pki(PkiOptions::default()).await.unwrap();
    let auth = common::approle(&admin, "ck", &pki.policy, 0).await;
    let addrs = cluster.addrs();
    let leader = cluster.leader_index().await.unwrap();

    // The leader listed last: health, not order, decides.
    let mut listed = addrs.clone();
    listed.swap(leader, 2);
    let mut cfg = VaultConfig::new("http://vault.invalid:8200");
    cfg.addresses = listed;
    cfg.connect_timeout = Duration::from_secs(2);
    cfg.request_timeout = Duration::from_secs(5);
    let observer = Arc::new(PerNode::default());
    let client = VaultClient::with_observer(&cfg, auth, Some(observer.clone())).unwrap();
    assert_eq!(client.health().await.unwrap().status, HealthStatus::Active);
    let known: BTreeMap<String, Option<HealthStatus>> = client.addresses().into_iter().collect();
    assert_eq!(known[&addrs[leader]], Some(HealthStatus::Active));
    assert_eq!(
        known
            .values()
            .filter(|h| **h == Some(HealthStatus::Standby))
            .count(),
        2,
        "{known:?}"
    );

    for i in 0..3 {
        client
            .sign(&pki.sign_path, &sign_request(&format!("a{i}.example.com"), HOUR))
            .await
            .unwrap();
    }
    assert_eq!(
        observer.count(&addrs[leader], "sign"),
        3,
        "all on the active node"
    );
    assert_eq!(observer.total("login"), 1);

    cluster.kill(leader);
    let killed = Instant::now();
    let mut calls = Vec::new();
    let recovered = loop {
        let started = Instant::now();
        let result = client
            .sign(&pki.sign_path, &sign_request("after.example.com", HOUR))
            .await;
        calls.push((started.duration_since(killed), started.elapsed(), result.is_ok()));
        if result.is_ok() {
            break killed.elapsed();
        }
        let e = result.unwrap_err();
        assert_eq!(e.class(), FailureClass::Transient, "{e}");
        assert!(e.is_node_failure(), "{e}");
        assert!(killed.elapsed() < Duration::from_secs(60), "{calls:?}");
        // As the breaker would: one call at a time, about a second apart.
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    eprintln!(
        "leader (node {leader}) killed: first successful sign after {:.2} s, {} calls: {:?}",
        recovered.as_secs_f64(),
        calls.len(),
        calls
            .iter()
            .map(|(at, took, ok)| format!(
                "at {:.2}s took {:.3}s {}",
                at.as_secs_f64(),
                took.as_secs_f64(),
                if *ok { "ok" } else { "failed" }
            ))
            .collect::<Vec<_>>()
    );
    // No call waits on the dead node: refused connections cost nothing.
    assert!(
        calls.iter().all(|(_, took, _)| *took < Duration::from_secs(6)),
        "{calls:?}"
    );
    assert!(recovered < Duration::from_secs(20), "{recovered:?}");
    // One token for the issuer, whichever node answers.
    assert_eq!(
        observer.total("login"),
        1,
        "the token made before the kill still works"
    );
    let served_by: Vec<&String> = addrs
        .iter()
        .filter(|a| **a != addrs[leader] && observer.count(a, "sign") > 0)
        .collect();
    assert!(!served_by.is_empty());
}
