//! A real 3-node raft cluster: formation, leader SIGKILL and re-election, restart of the old leader.
//! Slow (tens of seconds): it waits for autopilot to promote the joined nodes to voters.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns unwrap too

use std::time::{Duration, Instant};

use certkeeper_testkit::{PkiOptions, RaftCluster, csr_p256, pid_exists};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_killed_new_leader_elected_within_30s() {
    let t0 = Instant::now();
    let mut cluster = RaftCluster::start(3).await.unwrap();
    eprintln!("cluster formed (failure_tolerance=1) in {:?}", t0.elapsed());
    assert_eq!(cluster.addrs().len(), 3);
    assert!(!cluster.root_token().is_empty() && !cluster.unseal_key().is_empty());

    let leader = cluster.leader_index().await.expect("no leader");
    let admin = cluster.admin().await.unwrap();
    assert_eq!(admin.addr(), cluster.addrs()[leader]);
    let pki = admin.setup_pki(PkiOptions::default()).await.unwrap();
    let (csr, _) = csr_p256("a.example.com", &[]).unwrap();
    admin.write(&pki.sign_path, json!({"csr": csr})).await.unwrap();
    // a standby forwards writes to the leader
    let standby = (leader + 1) % 3;
    cluster
        .admin_at(standby)
        .write(&pki.sign_path, json!({"csr": csr}))
        .await
        .unwrap();

    let old_pid = cluster.pid(leader).unwrap();
    let killed_at = Instant::now();
    cluster.kill(leader);
    assert!(!pid_exists(old_pid));
    let new_leader = cluster
        .wait_for_leader(Some(leader), Duration::from_secs(30))
        .await
        .unwrap();
    let failover = killed_at.elapsed();
    eprintln!("failover: node {leader} killed, node {new_leader} active after {failover:?}");
    assert_ne!(new_leader, leader);

    // the new leader serves signing with the replicated PKI
    let admin = cluster.admin().await.unwrap();
    admin.write(&pki.sign_path, json!({"csr": csr})).await.unwrap();

    // the old leader comes back (sealed), is unsealed and rejoins as a standby
    let t1 = Instant::now();
    cluster.restart(leader).await.unwrap();
    eprintln!("restart + unseal of node {leader}: {:?}", t1.elapsed());
    assert_eq!(cluster.admin_at(leader).health().await.unwrap(), 429);
    cluster
        .admin_at(leader)
        .write(&pki.sign_path, json!({"csr": csr}))
        .await
        .unwrap();

    let pids: Vec<u32> = (0..3).filter_map(|i| cluster.pid(i)).collect();
    assert_eq!(pids.len(), 3);
    drop(cluster);
    assert!(
        pids.iter().all(|p| !pid_exists(*p)),
        "raft nodes survived the drop"
    );
}
