//! Issuer-wide refusals against a real OpenBao: while Vault refuses the issuer itself (its
//! policy emptied, its role deleted) the certificates wait behind one probe, whose pace follows
//! the soonest-expiring certificate, instead of each retrying (and logging in) on its own; the
//! first success releases them all. A refusal of one certificate's name stays that
//! certificate's own and stops nobody else.
#![allow(clippy::unwrap_used)] // tests state their expectations by unwrapping

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use certkeeper_core::FailureClass;
use certkeeper_engine::gate::{CircuitState, GateConfig, IssuerGate, OpenCause};
use certkeeper_engine::{CertJob, IssuerRuntime};
use certkeeper_testkit::{Admin, DevServer, Pki, PkiOptions};
use certkeeper_vault::{AuthMethod, Operation, SecretSource, VaultClient, VaultConfig};
use common::{MemoryRuntime, Sent, engine_with, job, wait_revision};

const N: usize = 20;
/// Short-lived certificates: near expiry the schedule (and so the probe) is fast, as in the
/// issue's scenario (3-minute certificates renewing at about 1 minute).
const LIFETIME: Duration = Duration::from_secs(120);

fn short_job(i: usize) -> CertJob {
    CertJob {
        duration: LIFETIME,
        ..job(i, 1)
    }
}

/// An AppRole issuer (a fresh login per 403, as in the issue) with a request counter.
async fn approle_issuer(admin: &Admin, pki: &Pki, addr: &str, path: &str) -> (IssuerRuntime, Arc<Sent>) {
    let (role_id, secret_id) = admin
        .approle_role("approle", "certkeeper", &[&pki.policy], 0, "0")
        .await
        .unwrap();
    let sent = Arc::new(Sent::default());
    let auth = AuthMethod::AppRole {
        mount: "approle".into(),
        role_id,
        secret_id: SecretSource::value(secret_id),
    };
    let client = VaultClient::with_observer(&VaultConfig::new(addr), auth, Some(sent.clone())).unwrap();
    let issuer = IssuerRuntime {
        id: certkeeper_engine::IssuerId::new(certkeeper_core::spec::IssuerKind::Issuer, "default", "vault"),
        client: Arc::new(client),
        gate: IssuerGate::new("Issuer/default/vault", &GateConfig::default()),
        path: path.to_owned(),
        fingerprint: 1,
        settings: 0,
    };
    (issuer, sent)
}

/// The most probes a held issuer can make in `window`: one per shortest probe delay, plus one.
fn max_probes(window: Duration) -> usize {
    (window.as_secs() / certkeeper_engine::hold::REFUSED_PROBE_MIN.as_secs()) as usize + 1
}

/// An OpenBao dev server with a PKI (`options`) and an AppRole issuer reaching it.
struct Setup {
    bao: DevServer,
    admin: Admin,
    pki: Pki,
    issuer: IssuerRuntime,
    sent: Arc<Sent>,
}

async fn setup(options: PkiOptions) -> Setup {
    let bao = DevServer::start().await.unwrap();
    let admin = bao.admin();
    let pki = admin.setup_pki(options).await.unwrap();
    let (issuer, sent) = approle_issuer(&admin, &pki, &bao.addr(), &pki.sign_path).await;
    Setup {
        bao,
        admin,
        pki,
        issuer,
        sent,
    }
}

fn failures(runtime: &MemoryRuntime) -> Vec<(FailureClass, String, Option<i64>)> {
    runtime
        .states
        .lock()
        .unwrap()
        .values()
        .filter_map(|s| s.failure.as_ref())
        .map(|f| (f.class, f.message.clone(), f.next_attempt))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_policy_is_probed_not_stormed_and_its_restore_releases_everyone() {
    // CERTKEEPER_TEST_LOG=info shows the engine's decisions (probe times, releases).
    if let Ok(filter) = std::env::var("CERTKEEPER_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    }
    let Setup {
        bao: _bao,
        admin,
        pki,
        issuer,
        sent,
    } = setup(PkiOptions::default()).await;
    let gate = issuer.gate.clone();
    let (runtime, engine) = engine_with(issuer, (0..N).map(short_job).collect());
    wait_revision(&runtime, N, 1, Duration::from_secs(60), "initial issuance").await;

    // A policy edit: the role's tokens, fresh ones included, may no longer sign.
    let policy = admin
        .read(&format!("sys/policies/acl/{}", pki.policy))
        .await
        .unwrap()["data"]["policy"]
        .as_str()
        .unwrap()
        .to_owned();
    admin
        .put_policy(&pki.policy, "path \"sys/nothing\" { capabilities = [\"read\"] }")
        .await
        .unwrap();
    let (signs, logins) = (sent.count(Operation::Sign), sent.count(Operation::Login));
    engine.renew(None);
    let fault = Duration::from_secs(20);
    tokio::time::sleep(fault).await;
    let signs = sent.count(Operation::Sign) - signs;
    let logins = sent.count(Operation::Login) - logins;
    eprintln!("{N} certificates, policy removed for {fault:?}: {signs} sign and {logins} login requests");

    let info = gate.circuit_info();
    // Held: open, or probing when sampled while the probe (every 2-5 s) is in flight.
    assert!(
        matches!(info.state, CircuitState::Open | CircuitState::Probing),
        "{:?}",
        info.state
    );
    assert_eq!(info.cause, Some(OpenCause::Refused(FailureClass::AuthRejected)));
    let failed = failures(&runtime);
    assert_eq!(failed.len(), N, "every certificate shows why it waits");
    let now = certkeeper_core::time::to_unix(std::time::SystemTime::now());
    for (class, message, next) in &failed {
        assert_eq!(*class, FailureClass::AuthRejected, "{message}");
        assert!(message.contains("next probe at"), "{message}");
        // The truth about waiting: the probe's time, well within the 2-minute lifetime.
        let next = next.unwrap();
        assert!(next <= now + 15, "next attempt {}s away: {message}", next - now);
    }
    // Before: every certificate on its own expiry-clamped schedule (about every 12 s here), each
    // 403 buying a login: ~2 signs + 1 login per certificate per 12 s. Now: the requests already
    // under way when the first 403 came (up to the gate's concurrency), then one probe (at most
    // 2 signs and 1 login) per probe interval (2 s, 4 s, then 5 s).
    // What status shows (the engine's snapshot): the current probe's time, not the one that
    // was current when each certificate parked (long past after several probes).
    let shown = engine.snapshot().await;
    assert_eq!(shown.len(), N);
    for s in &shown {
        let next = s.state.failure.as_ref().and_then(|f| f.next_attempt).unwrap();
        assert!(next >= now - 1, "{}: next attempt {}s ago", s.job.id, now - next);
    }
    let concurrency = GateConfig::default().concurrency;
    let probes = max_probes(fault);
    assert!(signs <= 2 * (concurrency + probes), "{signs} sign requests");
    assert!(logins <= concurrency + probes, "{logins} logins");

    admin.put_policy(&pki.policy, &policy).await.unwrap();
    let restored = Instant::now();
    wait_revision(
        &runtime,
        N,
        2,
        Duration::from_secs(30),
        "after the policy is restored",
    )
    .await;
    eprintln!("all {N} renewed {:?} after the restore", restored.elapsed());
    assert!(failures(&runtime).is_empty());
    assert_eq!(gate.circuit(), CircuitState::Closed);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_role_holds_the_issuer_until_it_is_created_again() {
    let Setup {
        bao: _bao,
        admin,
        pki,
        issuer,
        sent,
    } = setup(PkiOptions::default()).await;
    let gate = issuer.gate.clone();
    let (runtime, engine) = engine_with(issuer, (0..N).map(short_job).collect());
    wait_revision(&runtime, N, 1, Duration::from_secs(60), "initial issuance").await;

    let role_path = format!("{}/roles/{}", pki.int_mount, pki.role);
    let role = admin.read(&role_path).await.unwrap()["data"].clone();
    admin.delete(&role_path).await.unwrap();
    let signs = sent.count(Operation::Sign);
    engine.renew(None);
    tokio::time::sleep(Duration::from_secs(15)).await;
    let signs = sent.count(Operation::Sign) - signs;
    eprintln!("{N} certificates, role deleted for 15 s: {signs} sign requests");
    assert_eq!(
        gate.circuit_info().cause,
        Some(OpenCause::Refused(FailureClass::Rejected))
    );
    assert!(
        failures(&runtime)
            .iter()
            .all(|(c, _, _)| *c == FailureClass::Rejected),
        "{:?}",
        failures(&runtime)
    );
    assert!(
        signs <= GateConfig::default().concurrency + max_probes(Duration::from_secs(15)),
        "{signs} sign requests"
    );

    pki.set_role(&pki.role, role).await.unwrap();
    let recreated = Instant::now();
    wait_revision(
        &runtime,
        N,
        2,
        Duration::from_secs(30),
        "after the role is created again",
    )
    .await;
    eprintln!(
        "all {N} renewed {:?} after the role came back",
        recreated.elapsed()
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_the_role_refuses_stays_that_certificates_own() {
    let Setup {
        bao: _bao, issuer, ..
    } = setup(PkiOptions::default()).await;
    let gate = issuer.gate.clone();
    let mut jobs: Vec<CertJob> = (0..5).map(short_job).collect();
    jobs[0].csr.common_name = Some("refused.invalid".into());
    jobs[0].csr.dns_names = vec!["refused.invalid".into()];
    let (runtime, engine) = engine_with(issuer, jobs);
    // The others are issued, renewed, and the circuit never opens.
    wait_revision(&runtime, 4, 1, Duration::from_secs(60), "the allowed names").await;
    engine.renew(None);
    wait_revision(
        &runtime,
        4,
        2,
        Duration::from_secs(60),
        "the allowed names, renewed",
    )
    .await;
    assert_eq!(gate.circuit(), CircuitState::Closed);
    let failed = failures(&runtime);
    assert_eq!(failed.len(), 1, "{failed:?}");
    let (class, message, next) = &failed[0];
    assert_eq!(*class, FailureClass::Rejected);
    assert!(message.contains("not allowed"), "{message}");
    assert!(!message.contains("probe"), "{message}");
    // Its own slow schedule (5 min; nothing served yet, so not clamped below that).
    let now = certkeeper_core::time::to_unix(std::time::SystemTime::now());
    assert!(next.unwrap() > now + 60, "{message}");
    engine.shutdown().await;
}

/// A role whose max_ttl is below the certificates' duration caps every issuance: said once per
/// certificate and spec (one warning event), not at every renewal; the state keeps it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capped_ttl_is_reported_once_per_certificate_and_spec() {
    let Setup {
        bao: _bao, issuer, ..
    } = setup(PkiOptions {
        max_ttl: "10m".into(),
        ttl: "10m".into(),
        ..PkiOptions::default()
    })
    .await;
    // One hour asked, ten minutes given.
    let (runtime, engine) = engine_with(issuer, (0..3).map(|i| job(i, 1)).collect());
    wait_revision(&runtime, 3, 1, Duration::from_secs(60), "first issuance").await;
    for revision in 2..=3 {
        engine.renew(None);
        wait_revision(&runtime, 3, revision, Duration::from_secs(60), "renewal").await;
    }
    assert_eq!(
        runtime.warnings.load(std::sync::atomic::Ordering::SeqCst),
        3,
        "one per certificate"
    );
    assert!(
        runtime
            .states
            .lock()
            .unwrap()
            .values()
            .all(|s| s.issued.as_ref().is_some_and(|i| i.warning.is_some())),
        "the state (status) keeps saying it"
    );
    engine.shutdown().await;
}
