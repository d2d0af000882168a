//! What the engine's tests against a real OpenBao share: an in-memory runtime that counts
//! writes and persisted records, a request counter, certificate jobs and waits.
#![allow(clippy::unwrap_used, dead_code)] // not every test file uses every helper

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use certkeeper_core::pki::{CsrRequest, KeyAlgorithm, KeyEncoding};
use certkeeper_core::schedule::RenewalPolicy;
use certkeeper_core::{FailureClass, Secret};
use certkeeper_engine::metrics::Metrics;
use certkeeper_engine::state::CertState;
use certkeeper_engine::{
    CertJob, EngineConfig, EngineEvent, EngineHandle, Issued, IssuerRuntime, JobLabels, Runtime, RuntimeError,
};
use certkeeper_vault::{Operation, RequestObserver};

/// Keeps everything in memory and counts writes.
#[derive(Default)]
pub struct MemoryRuntime {
    pub writes: AtomicUsize,
    /// State records persisted, one per certificate per batch.
    pub saved: AtomicUsize,
    pub states: Mutex<HashMap<certkeeper_engine::CertId, CertState>>,
    /// Issued events that carried a warning (a capped TTL).
    pub warnings: AtomicUsize,
}

impl Runtime for MemoryRuntime {
    async fn current_key(&self, _job: &CertJob) -> Option<Secret> {
        None
    }
    async fn write(&self, _job: &CertJob, _issued: &Issued) -> Result<(), RuntimeError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    async fn save_states(
        &self,
        states: Vec<(certkeeper_engine::CertId, CertState)>,
    ) -> Result<(), RuntimeError> {
        self.saved.fetch_add(states.len(), Ordering::SeqCst);
        self.states.lock().unwrap().extend(states);
        Ok(())
    }
    fn event(&self, _job: &CertJob, event: EngineEvent) {
        if let EngineEvent::Issued { warning: Some(_), .. } = event {
            self.warnings.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Counts requests that reached Vault (or tried to).
#[derive(Default)]
pub struct Sent(pub AtomicUsize, pub Mutex<Vec<(Operation, Option<u16>)>>);

impl RequestObserver for Sent {
    fn observe(&self, op: Operation, status: Option<u16>, _c: Option<FailureClass>, _e: Duration) {
        self.0.fetch_add(1, Ordering::SeqCst);
        self.1.lock().unwrap().push((op, status));
    }
}

pub fn job(i: usize, fingerprint: u64) -> CertJob {
    let name = format!("c{i}");
    let cn = format!("{name}.example.com");
    CertJob {
        id: certkeeper_engine::CertId::new("default", &name),
        issuer: certkeeper_engine::IssuerId::new(
            certkeeper_core::spec::IssuerKind::Issuer,
            "default",
            "vault",
        ),
        fingerprint,
        csr: CsrRequest {
            common_name: Some(cn.clone()),
            dns_names: vec![cn],
            ..Default::default()
        },
        key_algorithm: KeyAlgorithm::Ecdsa(256),
        key_encoding: KeyEncoding::Pkcs8,
        rotate_key: true,
        duration: Duration::from_secs(3600),
        renewal: RenewalPolicy::default(),
        labels: JobLabels {
            name,
            namespace: "default".into(),
            ..Default::default()
        },
        revoke_superseded: false,
        revoke_deleted: false,
    }
}

pub fn revisions(states: &Mutex<HashMap<certkeeper_engine::CertId, CertState>>) -> Vec<u64> {
    states.lock().unwrap().values().map(|s| s.revision).collect()
}

/// Wait until all `n` certificates are at `revision`.
pub async fn wait_revision(runtime: &MemoryRuntime, n: usize, revision: u64, bound: Duration, what: &str) {
    let deadline = Instant::now() + bound;
    while revisions(&runtime.states)
        .iter()
        .filter(|r| **r == revision)
        .count()
        < n
    {
        assert!(
            Instant::now() < deadline,
            "{what}: {:?}",
            revisions(&runtime.states)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An engine with `issuer` and these jobs, issuance starting at once.
pub fn engine_with(issuer: IssuerRuntime, jobs: Vec<CertJob>) -> (Arc<MemoryRuntime>, EngineHandle) {
    let runtime = Arc::new(MemoryRuntime::default());
    let engine = certkeeper_engine::spawn(runtime.clone(), Metrics::default(), EngineConfig::default());
    engine.set_issuers(vec![issuer]);
    engine.set_certificates(jobs.into_iter().map(|j| (j, None)).collect());
    (runtime, engine)
}

impl Sent {
    /// Requests so far, by operation.
    pub fn count(&self, op: Operation) -> usize {
        self.1.lock().unwrap().iter().filter(|(o, _)| *o == op).count()
    }
}
