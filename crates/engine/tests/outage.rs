//! The engine against a real OpenBao through an outage: while Vault is sealed one probe at a
//! time reaches it, not one request per certificate; after unseal every waiting certificate is
//! renewed within seconds, released at the gate's rate.
#![allow(clippy::unwrap_used)] // tests state their expectations by unwrapping

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use certkeeper_core::FailureClass;
use certkeeper_engine::gate::{GateConfig, IssuerGate};
use certkeeper_engine::{EngineHandle, IssuerRuntime};
use certkeeper_testkit::{Admin, DevServer, Pki, PkiOptions};
use certkeeper_vault::{AuthMethod, Operation, SecretSource, VaultClient, VaultConfig};
use common::{MemoryRuntime, Sent, engine_with, job, revisions, wait_revision};

/// An engine with one Vault issuer reached through `cfg` (token auth with the PKI's policy)
/// and `n` certificates handed to it, so issuance starts at once. Every request is counted.
async fn start_engine(
    admin: &Admin,
    pki: &Pki,
    cfg: VaultConfig,
    n: usize,
) -> (Arc<MemoryRuntime>, EngineHandle, Arc<Sent>) {
    let token = admin.create_token(&[&pki.policy], "24h", true, 0).await.unwrap();
    let sent = Arc::new(Sent::default());
    let auth = AuthMethod::Token {
        token: SecretSource::value(token),
    };
    let client = VaultClient::with_observer(&cfg, auth, Some(sent.clone())).unwrap();
    let issuer = IssuerRuntime {
        id: certkeeper_engine::IssuerId::new(certkeeper_core::spec::IssuerKind::Issuer, "default", "vault"),
        client: Arc::new(client),
        gate: IssuerGate::new("Issuer/default/vault", &GateConfig::default()),
        path: pki.sign_path.clone(),
        fingerprint: 1,
        settings: 0,
    };
    let (runtime, engine) = engine_with(issuer, (0..n).map(|i| job(i, 1)).collect());
    (runtime, engine, sent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_vault_sees_one_probe_at_a_time_and_unseal_releases_everyone() {
    const N: usize = 50;
    let bao = DevServer::start().await.unwrap();
    let admin = bao.admin();
    let pki = admin.setup_pki(PkiOptions::default()).await.unwrap();
    let mut cfg = VaultConfig::new(bao.addr());
    cfg.request_timeout = Duration::from_secs(5);
    let (runtime, engine, sent) = start_engine(&admin, &pki, cfg, N).await;
    wait_revision(&runtime, N, 1, Duration::from_secs(60), "initial issuance").await;

    // Seal, then ask for everything at once: the worst case for a storm.
    admin.seal().await.unwrap();
    let before = sent.0.load(Ordering::SeqCst);
    let saved_before = runtime.saved.load(Ordering::SeqCst);
    engine.renew(None);
    let outage = Duration::from_secs(20);
    tokio::time::sleep(outage).await;
    let during = sent.0.load(Ordering::SeqCst) - before;
    // Every certificate records its failure once; after that only the one owning the next
    // probe comes back (about once per probe interval), the others are parked until recovery.
    let saved = runtime.saved.load(Ordering::SeqCst) - saved_before;
    eprintln!("failure records persisted during the outage: {saved} for {N} certificates");
    assert!(
        saved <= N + 3 * outage.as_secs() as usize,
        "{saved} records persisted in {outage:?}: certificates are not parked"
    );
    let statuses = revisions(&runtime.states);
    assert!(
        statuses.iter().all(|r| *r == 1),
        "nothing can be issued while sealed"
    );
    // A handful fail before the circuit opens (up to the concurrency limit), then one probe
    // per probe interval (1, 2, 4, 5, 5 ... s).
    let cfg = GateConfig::default();
    let bound = cfg.concurrency + cfg.open_after as usize + 20 / cfg.probe_min.as_secs() as usize;
    assert!(
        during <= bound,
        "{during} requests reached a sealed Vault in {outage:?} (bound {bound})"
    );
    eprintln!("requests to the sealed Vault in {outage:?}: {during} for {N} certificates");
    let failed = runtime
        .states
        .lock()
        .unwrap()
        .values()
        .filter(|s| s.failure.is_some())
        .count();
    assert_eq!(failed, N, "every certificate shows why it waits");

    bao.unseal().await.unwrap();
    let unsealed = Instant::now();
    wait_revision(&runtime, N, 2, Duration::from_secs(30), "after unseal").await;
    eprintln!("all {N} renewed {:?} after unseal", unsealed.elapsed());
    assert!(
        runtime
            .states
            .lock()
            .unwrap()
            .values()
            .all(|s| s.failure.is_none())
    );
    engine.shutdown().await;
}

/// A rate-limit quota far below the gate's own rate: 429s halve the gate's rate instead of
/// being retried per certificate, and every certificate is still issued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_quota_does_not_cause_a_storm() {
    const N: usize = 40;
    let bao = DevServer::start().await.unwrap();
    let admin = bao.admin();
    let pki = admin.setup_pki(PkiOptions::default()).await.unwrap();
    admin
        .rate_limit_quota("pki", &format!("{}/", pki.int_mount), 5.0, "1s", "2s")
        .await
        .unwrap();
    let started = Instant::now();
    let (runtime, engine, sent) = start_engine(&admin, &pki, VaultConfig::new(bao.addr()), N).await;
    wait_revision(&runtime, N, 1, Duration::from_secs(120), "issuance under a quota").await;
    let events = sent.1.lock().unwrap().clone();
    let limited = events.iter().filter(|e| e.1 == Some(429)).count();
    let signed = events
        .iter()
        .filter(|e| e.0 == Operation::Sign && e.1 == Some(200))
        .count();
    eprintln!(
        "{N} certificates through a 5/s quota in {:?}: {} requests, {limited} answered 429",
        started.elapsed(),
        events.len()
    );
    assert_eq!(signed, N);
    // Without a shared gate every certificate retries on its own (Vault Agent: ~20 requests per
    // certificate in an outage). Here the first burst meets the quota, then the rate adapts.
    assert!(
        limited <= N,
        "{limited} requests were refused by the quota: the gate kept pushing"
    );
    assert!(
        events.len() <= 2 * N + 10,
        "{} requests for {N} certificates",
        events.len()
    );
    engine.shutdown().await;
}

/// A listener that accepts and never answers: every attempt ends at the client's timeout, the
/// circuit opens so only probes keep reaching it, and the certificates are issued once it
/// answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_vault_is_bounded_by_timeouts_and_probes() {
    const N: usize = 20;
    let bao = DevServer::start().await.unwrap();
    let admin = bao.admin();
    let pki = admin.setup_pki(PkiOptions::default()).await.unwrap();
    let proxy = certkeeper_testkit::FaultProxy::start(&bao.addr()).await.unwrap();
    proxy.set_mode(certkeeper_testkit::Mode::Hang).unwrap();
    let mut cfg = VaultConfig::new(proxy.addr());
    cfg.connect_timeout = Duration::from_secs(1);
    cfg.request_timeout = Duration::from_secs(2);
    let (runtime, engine, sent) = start_engine(&admin, &pki, cfg, N).await;

    tokio::time::sleep(Duration::from_secs(15)).await;
    let hung = sent.0.load(Ordering::SeqCst);
    let connections = proxy.connections();
    {
        let states = runtime.states.lock().unwrap();
        assert_eq!(states.len(), N, "every certificate has a recorded failure by now");
        for s in states.values() {
            let f = s.failure.as_ref().expect("failure recorded");
            assert_eq!(f.class, FailureClass::Transient, "{}", f.message);
        }
    }
    eprintln!("hanging Vault, 15 s, {N} certificates: {hung} requests timed out, {connections} connections");
    // The first wave (up to the concurrency limit) and then one probe per interval.
    let cfg_gate = GateConfig::default();
    assert!(
        hung <= cfg_gate.concurrency + 15,
        "{hung} requests were sent to a hanging Vault"
    );

    proxy.set_mode(certkeeper_testkit::Mode::Forward).unwrap();
    wait_revision(
        &runtime,
        N,
        1,
        Duration::from_secs(30),
        "after the listener answers again",
    )
    .await;
    engine.shutdown().await;
}
