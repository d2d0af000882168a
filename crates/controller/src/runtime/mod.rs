//! The engine's storage in Kubernetes, one module per thing it keeps: the target Secret
//! ([`secret`]), a CertificateRequest per revision ([`record`]), the next private key between
//! attempts ([`next_key`]), Events ([`events`]); the Certificate's status goes through the one
//! status writer ([`crate::status`]) and is read back on restart by [`restore`].
//!
//! **Where the engine's state lives, and how it is read back on restart** ([`restore_state`]):
//! - the certificate served is the target Secret's `tls.crt`: serial, notBefore and notAfter are
//!   read from it (never trusted from the status), the renewal time is recomputed from them with
//!   the same deterministic spread;
//! - the spec fingerprint it was issued for is the Secret's annotation
//!   [`SPEC_HASH_ANNOTATION`]; a Secret without it (written by cert-manager or by hand) is adopted
//!   when it passes cert-manager's checks (the engine's `adopt`: key algorithm and size,
//!   unexpired, the issuer annotations, and cert-manager's CertificateRequest of the status's
//!   revision compared with the spec when there is one ([`current_request`]), else the
//!   certificate's names), and issued afresh otherwise;
//! - the revision is `status.revision`;
//! - the failure streak is `status.failedIssuanceAttempts`, `status.lastFailureTime` and
//!   `status.certkeeper` (class, message, next attempt), taken as being for the current spec.
//!   With cert-manager's own CRDs the API server prunes `status.certkeeper` (their schema has no
//!   such field): the streak is then restored from cert-manager's two fields alone, the message
//!   from the `Issuing` condition, the class from the `Ready` condition's note when it has one
//!   (else `rejected`, the slow schedule), and the next attempt recomputed from the last failure
//!   by the retry schedule ([`certkeeper_core::schedule::next_attempt`]), as the engine would
//!   have computed it.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use certkeeper_core::pki::describe_pem_bundle;
use certkeeper_core::time::rfc3339;
use certkeeper_core::{FailureClass, Secret};
use certkeeper_engine::state::{CertState, FailureRecord, IssuedInfo};
use certkeeper_engine::{CertId, CertJob, EngineEvent, Issued, Runtime, RuntimeError};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::kube::{KubeClient, KubeError, cm_path, events_path, secret_data, secret_path, secrets_path};
use crate::load::CertMeta;
use crate::objects::CertificateObject;
use crate::plan::TargetSecret;
use crate::reflector::Store;
use crate::status::{StatusWriter, Target};

mod events;
mod next_key;
mod record;
pub mod restore;
mod secret;

pub use record::{current_request, namespace_requests};
pub use restore::{restore_state, spec_hash, status_current};

/// The fingerprint of the spec a Secret's certificate was issued for (hex).
pub const SPEC_HASH_ANNOTATION: &str = "certkeeper.io/spec-hash";
/// cert-manager's label on Secrets it manages ("for attention of").
pub const FAO_LABEL: &str = "controller.cert-manager.io/fao";
/// cert-manager's label on a Secret holding a Certificate's next private key.
pub const NEXT_PRIVATE_KEY_LABEL: &str = "cert-manager.io/next-private-key";

/// Secret keys, as cert-manager names them (the standalone runtime's file names).
pub use certkeeper_engine::outputs::{
    CA_CRT, COMBINED_PEM, KEY_DER, KEYSTORE_P12, TLS_CRT, TLS_KEY, TRUSTSTORE_P12,
};
use certkeeper_engine::outputs::{CONDITIONAL, output_items};

fn runtime_error(e: KubeError, what: &str) -> RuntimeError {
    RuntimeError {
        class: e.class(),
        message: format!("{what}: {e}"),
    }
}

/// What the runtime knows per certificate: its Kubernetes settings and the job's fingerprint.
#[derive(Debug, Clone)]
pub struct Tracked {
    /// Shared with the plan's build cache: one copy per Certificate.
    pub meta: Arc<CertMeta>,
    pub fingerprint: u64,
}

impl Tracked {
    /// The Certificate its status is written to.
    pub fn target(&self) -> Target {
        Target {
            namespace: self.meta.namespace.clone(),
            name: self.meta.name.clone(),
            generation: self.meta.generation,
            fingerprint: self.fingerprint,
            verifies: !self.meta.verify.is_empty(),
        }
    }
}

/// Secrets, CertificateRequests, status and Events through the API server.
#[derive(Debug)]
pub struct KubeRuntime {
    client: KubeClient,
    tracked: RwLock<HashMap<CertId, Tracked>>,
    certificates: Arc<Store<CertificateObject>>,
    /// The target Secrets' watch: a Secret it does not show is created without a read first.
    owned_secrets: Arc<Store<TargetSecret>>,
    /// The one writer of Certificate status.
    status: Arc<StatusWriter>,
    events: mpsc::Sender<events::Outgoing>,
    dropped_events: AtomicU64,
    /// Certificate id -> the name of the Secret holding its next private key, as created here
    /// (the watch of the Certificate's status may lag behind).
    pending_keys: std::sync::Mutex<HashMap<CertId, String>>,
}

impl KubeRuntime {
    /// The runtime, and the task that posts its Events (spawn it).
    pub fn new(
        client: KubeClient,
        certificates: Arc<Store<CertificateObject>>,
        owned_secrets: Arc<Store<TargetSecret>>,
    ) -> (Self, impl Future<Output = ()> + Send) {
        let (tx, rx) = mpsc::channel(events::EVENT_QUEUE);
        let runtime = KubeRuntime {
            client: client.clone(),
            tracked: RwLock::new(HashMap::new()),
            status: Arc::new(StatusWriter::new(client.clone(), certificates.clone())),
            certificates,
            owned_secrets,
            events: tx,
            dropped_events: AtomicU64::new(0),
            pending_keys: std::sync::Mutex::new(HashMap::new()),
        };
        (runtime, events::post_events(client, rx))
    }

    pub fn set_tracked(&self, tracked: HashMap<CertId, Tracked>) {
        self.status.retain(|id| tracked.contains_key(id));
        *self
            .tracked
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = tracked;
    }

    /// The one writer of Certificate status (run its task: [`StatusWriter::run`]).
    pub fn status_writer(&self) -> Arc<StatusWriter> {
        self.status.clone()
    }

    /// The status writer's view of a tracked certificate.
    fn target(&self, id: &str) -> Option<Target> {
        self.tracked(id).map(|t| t.target())
    }

    fn tracked(&self, id: &str) -> Option<Tracked> {
        self.tracked
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(id)
            .cloned()
    }

    fn meta(&self, id: &str) -> Result<Arc<CertMeta>, RuntimeError> {
        self.tracked(id).map(|t| t.meta).ok_or_else(|| RuntimeError {
            class: FailureClass::Invalid,
            message: format!("certificate {id} is no longer known"),
        })
    }
}

impl Runtime for KubeRuntime {
    async fn current_key(&self, job: &CertJob) -> Option<Secret> {
        let meta = self.tracked(&job.id)?.meta;
        let secret: k8s_openapi::api::core::v1::Secret = self
            .client
            .get_object(&secret_path(&meta.namespace, &meta.secret_name).ok()?)
            .await
            .ok()??;
        let key = secret.data?.remove(TLS_KEY)?.0;
        String::from_utf8(key).ok().map(Secret::new)
    }

    async fn pending_key(&self, job: &CertJob) -> Option<Secret> {
        self.load_pending_key(job).await
    }

    async fn store_pending_key(&self, job: &CertJob, key_pem: &Secret) -> Result<(), RuntimeError> {
        self.keep_pending_key(job, key_pem).await
    }

    async fn write(&self, job: &CertJob, issued: &Issued) -> Result<(), RuntimeError> {
        let meta = self.meta(&job.id)?;
        self.write_secret(job, &meta, issued).await?;
        // The CertificateRequest is a record for tools that watch them; the certificate is
        // already served, so a failure here is logged, not retried by re-issuing.
        let key_secret = self
            .pending_name(&job.id)
            .unwrap_or_else(|| meta.secret_name.clone());
        if let Err(e) = self.record_request(job, &meta, issued, &key_secret).await {
            tracing::warn!(certificate = %job.id, error = %e, "cannot record the CertificateRequest");
        }
        self.discard_pending_key(job, &meta).await;
        Ok(())
    }

    /// With [`crate::load::VERIFY_ANNOTATION`]: the addresses must serve the leaf the target
    /// Secret holds (read back, not remembered: a retry after a restart checks the same). A
    /// mismatch or an unreachable address fails the certificate with class `apply`, retried on
    /// its schedule without re-issuing.
    async fn apply(&self, job: &CertJob) -> Result<(), RuntimeError> {
        let meta = self.meta(&job.id)?;
        if meta.verify.is_empty() {
            return Ok(());
        }
        let apply_error = |message: String| RuntimeError {
            class: FailureClass::Apply,
            message,
        };
        let secret = self
            .client
            .get_secret(&meta.namespace, &meta.secret_name)
            .await
            .map_err(|e| apply_error(format!("cannot read the target Secret to verify it: {e}")))?
            .ok_or_else(|| apply_error("the target Secret is gone; cannot verify it".to_owned()))?;
        let shown = format!("Secret {}/{}", meta.namespace, meta.secret_name);
        let pem = secret_data(&secret)
            .remove("tls.crt")
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| apply_error(format!("{shown} has no tls.crt to verify")))?;
        let written =
            certkeeper_engine::verify::written_leaf(&pem, &shown).map_err(|e| apply_error(e.to_string()))?;
        let targets = meta.verify.clone();
        let checked = tokio::task::spawn_blocking(move || {
            targets
                .iter()
                .try_for_each(|target| certkeeper_engine::verify::check(target, &written))
        })
        .await
        .map_err(|e| apply_error(format!("the verify task failed: {e}")))?;
        checked.map_err(|e| apply_error(e.to_string()))?;
        tracing::info!(certificate = %job.id, addresses = meta.verify.len(), "verified: every address serves the certificate written");
        Ok(())
    }

    /// Hands the states to the status writer ([`StatusWriter`]) and returns: the engine's
    /// truth is in memory and in the Secrets; the status is its published view.
    async fn save_states(&self, states: Vec<(CertId, CertState)>) -> Result<(), RuntimeError> {
        for (id, state) in states {
            if let Some(target) = self.target(&id) {
                self.status.state(&id, &target, state);
            }
        }
        Ok(())
    }

    fn event(&self, job: &CertJob, event: EngineEvent) {
        self.on_event(job, event);
    }
}
