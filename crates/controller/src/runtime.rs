//! The engine's storage in Kubernetes: the target Secret, a CertificateRequest per revision, the
//! Certificate's status, and Events.
//!
//! **Where the engine's state lives, and how it is read back on restart** ([`restore_state`]):
//! - the certificate served is the target Secret's `tls.crt`: serial, notBefore and notAfter are
//!   read from it (never trusted from the status), the renewal time is recomputed from them with
//!   the same deterministic spread;
//! - the spec fingerprint it was issued for is the Secret's annotation
//!   [`SPEC_HASH_ANNOTATION`]; a Secret without it (written by cert-manager or by hand) is adopted
//!   when its key and certificate match the spec (the engine's `adopt`: key algorithm, unexpired,
//!   names), and issued afresh otherwise;
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

use base64::Engine;
use certkeeper_core::pki::{describe_pem_bundle, rfc3339};
use certkeeper_core::spec::CertificateStatus;
use certkeeper_core::{FailureClass, Secret};
use certkeeper_engine::state::{CertState, FailureRecord, IssuedInfo, from_unix, to_unix};
use certkeeper_engine::{CertId, CertJob, EngineEvent, Issued, Runtime, RuntimeError};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::kube::{
    KubeClient, KubeError, cm_path, events_path, meta_str, secret_data, secret_path, secrets_path,
};
use crate::load::CertMeta;
use crate::reflector::Store;
use crate::status::{StatusWriter, Target};

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

/// Events waiting to be posted; more are dropped (and logged) rather than queued without bound
/// (each is a few hundred bytes: 1,000 Certificates issued at once queue 2,000).
const EVENT_QUEUE: usize = 4096;
/// Events posted at once.
const EVENT_POSTS_IN_FLIGHT: usize = 8;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn runtime_error(e: KubeError, what: &str) -> RuntimeError {
    RuntimeError {
        class: e.class(),
        message: format!("{what}: {e}"),
    }
}

fn rfc(secs: i64) -> String {
    rfc3339(from_unix(secs))
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.frac]Z` (what the API server stores) to Unix seconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || !s.ends_with('Z') {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (hh, mm, ss) = (n(11..13)?, n(14..16)?, n(17..19)?);
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

/// What the runtime knows per certificate: its Kubernetes settings and the job's fingerprint.
#[derive(Debug, Clone)]
pub struct Tracked {
    pub meta: CertMeta,
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
        }
    }
}

/// An Event to post about a Certificate.
#[derive(Debug)]
struct Outgoing {
    namespace: String,
    name: String,
    uid: String,
    kind: &'static str,
    reason: &'static str,
    message: String,
}

/// Secrets, CertificateRequests, status and Events through the API server.
#[derive(Debug)]
pub struct KubeRuntime {
    client: KubeClient,
    tracked: RwLock<HashMap<CertId, Tracked>>,
    certificates: Arc<Store>,
    /// The one writer of Certificate status.
    status: Arc<StatusWriter>,
    events: mpsc::Sender<Outgoing>,
    dropped_events: AtomicU64,
    /// Certificate id -> the name of the Secret holding its next private key, as created here
    /// (the watch of the Certificate's status may lag behind).
    pending_keys: std::sync::Mutex<HashMap<CertId, String>>,
}

impl KubeRuntime {
    /// The runtime, and the task that posts its Events (spawn it).
    pub fn new(client: KubeClient, certificates: Arc<Store>) -> (Self, impl Future<Output = ()> + Send) {
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        let runtime = KubeRuntime {
            client: client.clone(),
            tracked: RwLock::new(HashMap::new()),
            status: Arc::new(StatusWriter::new(client.clone(), certificates.clone())),
            certificates,
            events: tx,
            dropped_events: AtomicU64::new(0),
            pending_keys: std::sync::Mutex::new(HashMap::new()),
        };
        (runtime, post_events(client, rx))
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

    fn meta(&self, id: &str) -> Result<CertMeta, RuntimeError> {
        self.tracked(id).map(|t| t.meta).ok_or_else(|| RuntimeError {
            class: FailureClass::Invalid,
            message: format!("certificate {id} is no longer known"),
        })
    }

    async fn write_secret(
        &self,
        job: &CertJob,
        meta: &CertMeta,
        issued: &Issued,
    ) -> Result<(), RuntimeError> {
        let cert = &issued.certificate;
        let data: BTreeMap<&str, String> = output_items(&meta.formats, issued, job.key_encoding)
            .await?
            .into_iter()
            .map(|item| (item.name, b64(&item.contents)))
            .collect();
        let mut annotations = meta.secret_annotations.clone();
        let ips: Vec<String> = cert.ip_addresses.iter().map(ToString::to_string).collect();
        for (k, v) in [
            ("cert-manager.io/certificate-name", meta.name.clone()),
            ("cert-manager.io/issuer-name", meta.issuer_name.clone()),
            ("cert-manager.io/issuer-kind", meta.issuer_kind.clone()),
            ("cert-manager.io/issuer-group", meta.issuer_group.clone()),
            (
                "cert-manager.io/common-name",
                cert.common_name.clone().unwrap_or_default(),
            ),
            ("cert-manager.io/alt-names", cert.dns_names.join(",")),
            ("cert-manager.io/ip-sans", ips.join(",")),
            ("cert-manager.io/uri-sans", cert.uris.join(",")),
            ("cert-manager.io/email-sans", cert.email_addresses.join(",")),
            (SPEC_HASH_ANNOTATION, format!("{:016x}", job.fingerprint)),
        ] {
            annotations.insert(k.to_owned(), v);
        }
        let mut labels = meta.secret_labels.clone();
        labels.insert(FAO_LABEL.to_owned(), "true".to_owned());

        let path = secret_path(&meta.namespace, &meta.secret_name)
            .map_err(|e| runtime_error(e, "the target Secret"))?;
        let existing = self
            .client
            .get(&path)
            .await
            .map_err(|e| runtime_error(e, "reading the target Secret"))?;
        match existing {
            Some(mut secret) => {
                let kind = secret.get("type").and_then(Value::as_str).unwrap_or_default();
                if !kind.is_empty() && kind != "kubernetes.io/tls" {
                    return Err(RuntimeError {
                        class: FailureClass::Invalid,
                        message: format!(
                            "Secret {}/{} exists with type {kind}, not kubernetes.io/tls",
                            meta.namespace, meta.secret_name
                        ),
                    });
                }
                let m = &mut secret["metadata"];
                for (field, values) in [("labels", &labels), ("annotations", &annotations)] {
                    if !m[field].is_object() {
                        m[field] = json!({});
                    }
                    for (k, v) in values {
                        m[field][k] = Value::String(v.clone());
                    }
                }
                if !secret["data"].is_object() {
                    secret["data"] = json!({});
                }
                for (k, v) in &data {
                    secret["data"][*k] = Value::String(v.clone());
                }
                // Formats no longer asked for (or a CA no longer returned) go away.
                if let Some(d) = secret["data"].as_object_mut() {
                    for name in CONDITIONAL {
                        if !data.contains_key(name) {
                            d.remove(name);
                        }
                    }
                }
                secret["type"] = json!("kubernetes.io/tls");
                self.client
                    .replace(&path, &secret)
                    .await
                    .map_err(|e| runtime_error(e, "updating the target Secret"))?;
            }
            None => {
                let body = json!({
                    "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                    "metadata": {"name": meta.secret_name, "namespace": meta.namespace,
                                 "labels": labels, "annotations": annotations},
                    "data": data,
                });
                let create = secrets_path(&meta.namespace)
                    .map_err(|e| runtime_error(e, "creating the target Secret"))?;
                self.client
                    .create(&create, &body)
                    .await
                    .map_err(|e| runtime_error(e, "creating the target Secret"))?;
            }
        }
        Ok(())
    }

    /// The CertificateRequest of this revision, Approved and Ready with the certificate, and
    /// the pruning of older ones beyond revisionHistoryLimit.
    async fn record_request(
        &self,
        job: &CertJob,
        meta: &CertMeta,
        issued: &Issued,
        key_secret: &str,
    ) -> Result<(), KubeError> {
        let csr = &issued.csr_pem;
        let name = format!("{}-{}", meta.name, issued.revision);
        let collection = cm_path(&meta.namespace, "certificaterequests", None)?;
        let path = cm_path(&meta.namespace, "certificaterequests", Some(&name))?;
        let mut issuer_ref = json!({"name": meta.issuer_name, "kind": meta.issuer_kind});
        if !meta.issuer_group.is_empty() {
            issuer_ref["group"] = json!(meta.issuer_group);
        }
        let mut spec = json!({
            "request": b64(csr.as_bytes()),
            "issuerRef": issuer_ref,
            "duration": certkeeper_core::spec::format_go_duration(job.duration),
        });
        if job.csr.is_ca {
            spec["isCA"] = json!(true);
        }
        if !meta.usages.is_empty() {
            spec["usages"] = json!(meta.usages);
        }
        let mut metadata = json!({
            "name": name, "namespace": meta.namespace,
            "annotations": {
                "cert-manager.io/certificate-name": meta.name,
                "cert-manager.io/certificate-revision": issued.revision.to_string(),
                "cert-manager.io/private-key-secret-name": key_secret,
            },
        });
        if !meta.uid.is_empty() {
            metadata["ownerReferences"] = json!([{
                "apiVersion": "cert-manager.io/v1", "kind": "Certificate", "name": meta.name,
                "uid": meta.uid, "controller": true, "blockOwnerDeletion": true,
            }]);
        }
        let body = json!({"apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest",
                          "metadata": metadata, "spec": spec});
        match self.client.create(&collection, &body).await {
            Ok(_) => {}
            Err(e) if e.code() == Some(409) => {
                // Left over from an earlier Certificate of the same name: replace it.
                self.client.delete(&path).await?;
                self.client.create(&collection, &body).await?;
            }
            Err(e) => return Err(e),
        }
        let now = rfc3339(SystemTime::now());
        let cert = &issued.certificate;
        let mut status = json!({
            "conditions": [
                {"type": "Approved", "status": "True", "reason": "cert-manager.io",
                 "message": "Certificate request has been approved by certkeeper", "lastTransitionTime": now},
                {"type": "Ready", "status": "True", "reason": "Issued",
                 "message": "Certificate fetched from issuer successfully", "lastTransitionTime": now},
            ],
            "certificate": b64(cert.tls_crt().as_bytes()),
        });
        if let Some(ca) = cert.ca_crt() {
            status["ca"] = json!(b64(ca.as_bytes()));
        }
        self.client
            .merge_patch(&format!("{path}/status"), &json!({ "status": status }))
            .await?;
        self.prune_requests(meta, issued.revision).await
    }

    async fn prune_requests(&self, meta: &CertMeta, revision: u64) -> Result<(), KubeError> {
        let keep = u64::from(meta.revision_history_limit);
        if revision <= keep {
            return Ok(());
        }
        let (items, _) = self
            .client
            .list(&cm_path(&meta.namespace, "certificaterequests", None)?)
            .await?;
        for item in items {
            let annotations = item.pointer("/metadata/annotations");
            let annotation = |k: &str| annotations.and_then(|a| a.get(k)).and_then(Value::as_str);
            if annotation("cert-manager.io/certificate-name") != Some(meta.name.as_str()) {
                continue;
            }
            let Some(rev) =
                annotation("cert-manager.io/certificate-revision").and_then(|r| r.parse::<u64>().ok())
            else {
                continue;
            };
            if rev + keep <= revision {
                let name = meta_str(&item, "name");
                self.client
                    .delete(&cm_path(&meta.namespace, "certificaterequests", Some(name))?)
                    .await?;
            }
        }
        Ok(())
    }

    fn pending_name(&self, id: &str) -> Option<String> {
        let known = self
            .pending_keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(id)
            .cloned();
        known.or_else(|| {
            let certificate = self.certificates.get(id)?;
            let name = certificate
                .pointer("/status/nextPrivateKeySecretName")?
                .as_str()?;
            Some(name.to_owned())
        })
    }

    fn set_pending_name(&self, id: &str, name: Option<String>) {
        let mut known = self
            .pending_keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match name {
            Some(n) => known.insert(id.to_owned(), n),
            None => known.remove(id),
        };
    }

    /// The next-private-key Secret of `meta`, if it exists and is ours: labelled as one and,
    /// when the Certificate's uid is known, owned by it (a Secret someone else named in the
    /// status is not a key source).
    async fn pending_secret(&self, meta: &CertMeta, name: &str) -> Result<Option<Value>, KubeError> {
        let Some(secret) = self.client.get(&secret_path(&meta.namespace, name)?).await? else {
            return Ok(None);
        };
        let labelled = secret
            .pointer("/metadata/labels")
            .and_then(|l| l.get(NEXT_PRIVATE_KEY_LABEL))
            .and_then(Value::as_str)
            == Some("true");
        let owned = meta.uid.is_empty()
            || secret
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .is_some_and(|refs| refs.iter().any(|r| r["uid"] == meta.uid.as_str()));
        if labelled && owned {
            Ok(Some(secret))
        } else {
            tracing::warn!(certificate = %format!("{}/{}", meta.namespace, meta.name), secret = name,
                           "status.nextPrivateKeySecretName names a Secret that is not a next-private-key Secret of this Certificate; ignoring it");
            Ok(None)
        }
    }

    /// After an issuance: the next private key is now the served one; its Secret goes.
    async fn discard_pending_key(&self, job: &CertJob, meta: &CertMeta) {
        let Some(name) = self.pending_name(&job.id) else {
            return;
        };
        let result = async { self.client.delete(&secret_path(&meta.namespace, &name)?).await }.await;
        match result {
            Ok(()) => {
                self.set_pending_name(&job.id, None);
                if let Some(target) = self.target(&job.id) {
                    self.status.next_private_key(&job.id, &target, None);
                }
            }
            Err(e) => {
                tracing::warn!(certificate = %job.id, secret = %name, error = %e, "cannot remove the next private key Secret")
            }
        }
    }

    fn queue_event(&self, meta: CertMeta, kind: &'static str, reason: &'static str, message: String) {
        let event = Outgoing {
            namespace: meta.namespace,
            name: meta.name,
            uid: meta.uid,
            kind,
            reason,
            message,
        };
        if self.events.try_send(event).is_err() {
            let dropped = self.dropped_events.fetch_add(1, Ordering::Relaxed);
            if dropped.is_multiple_of(100) {
                tracing::warn!(dropped = dropped + 1, "event queue full; dropping Events");
            }
        }
    }
}

/// The Certificate status for `state` on top of `old` (a status object), as the merge patch the
/// status writer sends ([`crate::status::show_state`]).
pub fn status_patch(
    state: &CertState,
    fingerprint: u64,
    generation: i64,
    old: Option<&Value>,
    now: SystemTime,
) -> Value {
    let mut status: CertificateStatus = old
        .and_then(|o| serde_json::from_value(o.clone()).ok())
        .unwrap_or_default();
    let target = Target {
        namespace: String::new(),
        name: String::new(),
        generation,
        fingerprint,
    };
    crate::status::show_state(&mut status, state, &target, now);
    serde_json::to_value(status.merge_patch()).unwrap_or(Value::Null)
}

/// Whether a Certificate's status already shows `state` (revision, notAfter, failing or not):
/// a status that lags behind (its last write was lost) is rewritten after a restart.
pub fn status_current(certificate: &Value, state: &CertState) -> bool {
    let status = certificate.get("status");
    let field = |name: &str| status.and_then(|s| s.get(name)).filter(|v| !v.is_null());
    let revision = field("revision").and_then(Value::as_u64).unwrap_or(0);
    let not_after = field("notAfter").and_then(Value::as_str).and_then(parse_rfc3339);
    // Failing: certkeeper's own record, or cert-manager's fields where the CRD has no
    // `status.certkeeper` (cert-manager's CRDs prune it, so it is never there).
    let failing = field("certkeeper").is_some() || status.and_then(cert_manager_streak).is_some();
    revision == state.revision
        && not_after == state.issued.as_ref().map(|i| i.not_after)
        && failing == state.failure.is_some()
}

use crate::status::ISSUING_FAILED;
/// Where [`status_patch`] names the failure's class in the `Ready` condition's message:
/// `; the last attempt failed (<class>, <n> attempts)`.
const READY_FAILURE_NOTE: &str = "; the last attempt failed (";
/// The class of a failure restored without `status.certkeeper` whose class no condition names:
/// the slow schedule, so a restart never retries sooner than a refusal would have been (nor
/// sooner than cert-manager, which waits an hour after any failure); the expiry clamp still
/// bounds the wait.
const UNKNOWN_FAILURE_CLASS: FailureClass = FailureClass::Rejected;

/// cert-manager's record of a failure streak: `failedIssuanceAttempts` (> 0) and
/// `lastFailureTime` (Unix seconds), both set.
fn cert_manager_streak(status: &Value) -> Option<(u32, i64)> {
    let attempts = status
        .get("failedIssuanceAttempts")
        .and_then(Value::as_u64)
        .filter(|&n| n > 0)
        .map(|n| u32::try_from(n).unwrap_or(u32::MAX))?;
    let last = status
        .get("lastFailureTime")
        .and_then(Value::as_str)
        .and_then(parse_rfc3339)?;
    Some((attempts, last))
}

/// The status condition of this type.
fn status_condition<'v>(status: &'v Value, kind: &str) -> Option<&'v Value> {
    status
        .get("conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

/// The failure streak from cert-manager's fields alone (see the module docs): `status.certkeeper`
/// is absent, pruned by cert-manager's CRDs.
fn restore_cert_manager_failure(
    status: &Value,
    issued: Option<&IssuedInfo>,
    job: &CertJob,
) -> Option<FailureRecord> {
    let (attempts, last) = cert_manager_streak(status)?;
    let failed_issuing = status_condition(status, "Issuing")
        .filter(|c| c["reason"] == "Failed")
        .and_then(|c| c["message"].as_str());
    let message = match failed_issuing {
        Some(m) => m
            .strip_prefix(ISSUING_FAILED)
            .and_then(|rest| rest.split_once(": "))
            .map_or(m, |(_, failure)| failure)
            .to_owned(),
        None => format!("the last attempt failed at {}", rfc(last)),
    };
    let class = status_condition(status, "Ready")
        .and_then(|c| c["message"].as_str())
        .and_then(|m| m.split_once(READY_FAILURE_NOTE))
        .and_then(|(_, note)| note.split_once(','))
        .and_then(|(class, _)| serde_json::from_value(Value::String(class.to_owned())).ok())
        .unwrap_or(UNKNOWN_FAILURE_CLASS);
    // The schedule's own jitter, drawn the same way at every restart.
    let sample = certkeeper_core::schedule::stable_hash(format!("{}#{attempts}", job.id).as_bytes());
    let input = certkeeper_core::schedule::RetryInput {
        class,
        attempts,
        failed_at: from_unix(last),
        current_not_after: issued.map(|i| from_unix(i.not_after)),
        retry_after: None,
        unit_random: (sample >> 11) as f64 / (1_u64 << 53) as f64,
    };
    Some(FailureRecord {
        class,
        message,
        attempts,
        first_failure: last,
        last_failure: last,
        next_attempt: certkeeper_core::schedule::next_attempt(&input).map(to_unix),
        spec_fingerprint: job.fingerprint,
    })
}

/// The engine's state of a Certificate seen for the first time (see the module docs), from its
/// status and its target Secret (`None`: the Secret does not exist).
pub fn restore_state(certificate: &Value, secret: Option<&Value>, job: &CertJob) -> Option<CertState> {
    let status = certificate.get("status");
    let revision = status
        .and_then(|s| s.get("revision"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let issued = secret.and_then(|secret| {
        let data = secret_data(secret);
        let pem = String::from_utf8(data.get(TLS_CRT)?.clone()).ok()?;
        let leaf = describe_pem_bundle(&pem).ok()?.into_iter().next()?;
        let hash = secret
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(SPEC_HASH_ANNOTATION))
            .and_then(Value::as_str)
            .and_then(|h| u64::from_str_radix(h, 16).ok());
        let Some(hash) = hash else {
            // Not written by certkeeper (cert-manager, by hand): adopted when it matches the spec.
            let key = String::from_utf8(data.get(TLS_KEY)?.clone()).ok()?;
            return match certkeeper_engine::adopt::adopt(job, &pem, &key, SystemTime::now()) {
                Ok(info) => {
                    tracing::info!(certificate = %job.id, serial = %info.serial, "adopted the certificate already in the Secret");
                    Some(info)
                }
                Err(e) => {
                    tracing::info!(certificate = %job.id, reason = %e, "the certificate in the Secret is not adopted; issuing");
                    None
                }
            };
        };
        let renewal =
            certkeeper_core::schedule::renewal_time(leaf.not_before, leaf.not_after, &job.renewal, &job.id);
        Some(IssuedInfo {
            serial: leaf.serial,
            not_before: to_unix(leaf.not_before),
            not_after: to_unix(leaf.not_after),
            renewal_time: to_unix(renewal),
            spec_fingerprint: hash,
            issued_at: to_unix(leaf.not_before),
            warning: None,
        })
    });
    let certkeeper_failure = status.and_then(|s| {
        let ck = s.get("certkeeper").filter(|v| !v.is_null())?;
        let class: FailureClass = serde_json::from_value(ck.get("failureClass")?.clone()).ok()?;
        let last = s
            .get("lastFailureTime")
            .and_then(Value::as_str)
            .and_then(parse_rfc3339)
            .unwrap_or_else(|| to_unix(SystemTime::now()));
        Some(FailureRecord {
            class,
            message: ck
                .get("failureMessage")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            attempts: s
                .get("failedIssuanceAttempts")
                .and_then(Value::as_u64)
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(1),
            first_failure: last,
            last_failure: last,
            next_attempt: ck
                .get("nextAttemptTime")
                .and_then(Value::as_str)
                .and_then(parse_rfc3339),
            spec_fingerprint: job.fingerprint,
        })
    });
    let failure = certkeeper_failure
        .or_else(|| status.and_then(|s| restore_cert_manager_failure(s, issued.as_ref(), job)));
    if revision == 0 && issued.is_none() && failure.is_none() {
        return None;
    }
    Some(CertState {
        revision: revision.max(u64::from(issued.is_some())),
        issued,
        failure,
    })
}

impl Runtime for KubeRuntime {
    async fn current_key(&self, job: &CertJob) -> Option<Secret> {
        let meta = self.tracked(&job.id)?.meta;
        let secret = self
            .client
            .get(&secret_path(&meta.namespace, &meta.secret_name).ok()?)
            .await
            .ok()??;
        let key = secret_data(&secret).remove(TLS_KEY)?;
        String::from_utf8(key).ok().map(Secret::new)
    }

    async fn pending_key(&self, job: &CertJob) -> Option<Secret> {
        let meta = self.tracked(&job.id)?.meta;
        let name = self.pending_name(&job.id)?;
        let secret = match self.pending_secret(&meta, &name).await {
            Ok(s) => s?,
            Err(e) => {
                tracing::warn!(certificate = %job.id, secret = %name, error = %e, "cannot read the next private key Secret");
                return None;
            }
        };
        let key = String::from_utf8(secret_data(&secret).remove(TLS_KEY)?).ok()?;
        // Left behind by an issuance whose clean-up failed: that key is served already, and
        // reusing it would skip a rotation.
        if self
            .current_key(job)
            .await
            .is_some_and(|served| served.expose() == key.as_str())
        {
            tracing::info!(certificate = %job.id, secret = %name, "the kept key is the one served; removing its Secret");
            self.discard_pending_key(job, &meta).await;
            return None;
        }
        Some(Secret::new(key))
    }

    /// cert-manager's next private key Secret, written when an attempt with a new key fails:
    /// `<certificate>-<random>`, labelled [`NEXT_PRIVATE_KEY_LABEL`] and [`FAO_LABEL`], owned by
    /// the Certificate (garbage-collected with it), named in `status.nextPrivateKeySecretName`.
    /// A replaced key (the spec's key algorithm changed) is written into the same Secret. An
    /// attempt that succeeds at once stores nothing here (no extra API calls per issuance).
    async fn store_pending_key(&self, job: &CertJob, key_pem: &Secret) -> Result<(), RuntimeError> {
        let meta = self.meta(&job.id)?;
        let data = json!({ TLS_KEY: b64(key_pem.expose().as_bytes()) });
        if let Some(name) = self.pending_name(&job.id) {
            let existing = self
                .pending_secret(&meta, &name)
                .await
                .map_err(|e| runtime_error(e, "reading the next private key Secret"))?;
            if let Some(mut secret) = existing {
                secret["data"] = data;
                async {
                    let path = secret_path(&meta.namespace, &name)?;
                    self.client.replace(&path, &secret).await
                }
                .await
                .map_err(|e| runtime_error(e, "updating the next private key Secret"))?;
                self.set_pending_name(&job.id, Some(name));
                return Ok(());
            }
        }
        let mut metadata = json!({
            "generateName": format!("{}-", meta.name), "namespace": meta.namespace,
            "labels": {NEXT_PRIVATE_KEY_LABEL: "true", FAO_LABEL: "true"},
        });
        if !meta.uid.is_empty() {
            metadata["ownerReferences"] = json!([{
                "apiVersion": "cert-manager.io/v1", "kind": "Certificate", "name": meta.name,
                "uid": meta.uid, "controller": true, "blockOwnerDeletion": true,
            }]);
        }
        let body = json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                          "metadata": metadata, "data": data});
        let created = async { self.client.create(&secrets_path(&meta.namespace)?, &body).await }
            .await
            .map_err(|e| runtime_error(e, "creating the next private key Secret"))?;
        let name = meta_str(&created, "name").to_owned();
        self.set_pending_name(&job.id, Some(name.clone()));
        if let Some(target) = self.target(&job.id) {
            self.status.next_private_key(&job.id, &target, Some(name));
        }
        Ok(())
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
        let id = job.id.as_str();
        let Some(meta) = self.tracked(id).map(|t| t.meta) else {
            return;
        };
        match event {
            EngineEvent::Issuing { reason } => {
                tracing::info!(certificate = id, reason = reason.as_str(), "issuing certificate");
                let message = reason.message().to_owned();
                if let Some(target) = self.target(id) {
                    self.status.issuing(id, &target, reason.as_str(), message.clone());
                }
                self.queue_event(meta, "Normal", "Issuing", message);
            }
            EngineEvent::Issued {
                revision,
                serial,
                not_after,
                warning,
            } => {
                tracing::info!(certificate = id, revision, serial, not_after = %rfc(not_after), "issued certificate");
                let mut message = format!(
                    "The certificate has been successfully issued (revision {revision}, serial {serial}, notAfter {})",
                    rfc(not_after)
                );
                if let Some(w) = warning {
                    message.push_str(&format!("; {w}"));
                }
                self.queue_event(meta, "Normal", "Issued", message);
            }
            EngineEvent::Failed {
                class,
                message,
                attempts,
                next_attempt,
            } => {
                let next = next_attempt.map_or("when its input changes".to_owned(), rfc);
                tracing::warn!(certificate = id, class = class.as_str(), attempts, next_attempt = %next, error = %message, "issuance failed");
                let text = format!(
                    "{message} ({}; attempt {attempts}; next attempt {next})",
                    class.as_str()
                );
                self.queue_event(meta, "Warning", "Failed", text);
            }
        }
    }
}

static EVENT_SEQ: AtomicU64 = AtomicU64::new(0);

async fn post_events(client: KubeClient, mut rx: mpsc::Receiver<Outgoing>) {
    let mut posting = tokio::task::JoinSet::new();
    while let Some(event) = rx.recv().await {
        while posting.len() >= EVENT_POSTS_IN_FLIGHT {
            posting.join_next().await;
        }
        posting.spawn(post_event(client.clone(), event));
        while posting.try_join_next().is_some() {}
    }
}

async fn post_event(client: KubeClient, event: Outgoing) {
    let Outgoing {
        namespace,
        name,
        uid,
        kind,
        reason,
        message,
    } = event;
    let now = SystemTime::now();
    let nanos = now
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let seq = EVENT_SEQ.fetch_add(1, Ordering::Relaxed);
    let stamp = rfc3339(now);
    let body = json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": format!("{name}.{nanos:x}{seq:x}"), "namespace": namespace},
        "involvedObject": {"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
                           "name": name, "namespace": namespace, "uid": uid},
        "reason": reason, "message": message, "type": kind,
        "source": {"component": "certkeeper"}, "reportingComponent": "certkeeper",
        "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
    });
    let created = async { client.create(&events_path(&namespace)?, &body).await }.await;
    if let Err(e) = created {
        tracing::debug!(error = %e, "cannot post an Event");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use super::*;

    /// A certificate served from 1_800_000_000 for an hour, issued for fingerprint 7.
    fn issued() -> IssuedInfo {
        IssuedInfo {
            serial: "aa".into(),
            not_before: 1_800_000_000,
            not_after: 1_800_003_600,
            renewal_time: 1_800_002_400,
            spec_fingerprint: 7,
            issued_at: 1_800_000_000,
            warning: None,
        }
    }

    #[test]
    fn a_status_lagging_behind_the_state_is_noticed() {
        let state = CertState {
            revision: 2,
            issued: Some(issued()),
            failure: None,
        };
        let current = json!({"status": {"revision": 2, "notAfter": rfc(1_800_003_600)}});
        assert!(status_current(&current, &state));
        let old = json!({"status": {"revision": 1, "notAfter": rfc(1_800_000_100)}});
        assert!(!status_current(&old, &state));
        assert!(!status_current(&json!({}), &state));
        let failing = json!({"status": {"revision": 2, "notAfter": rfc(1_800_003_600),
                                        "certkeeper": {"failureClass": "transient"}}});
        assert!(
            !status_current(&failing, &state),
            "a failure the state no longer has"
        );
    }

    fn job() -> CertJob {
        CertJob {
            id: "apps/web".into(),
            issuer: "Issuer/apps/vault".into(),
            fingerprint: 7,
            csr: certkeeper_core::pki::CsrRequest {
                common_name: Some("web.example.com".into()),
                ..Default::default()
            },
            key_algorithm: certkeeper_core::pki::KeyAlgorithm::Ecdsa(256),
            key_encoding: certkeeper_core::pki::KeyEncoding::Pkcs8,
            rotate_key: true,
            duration: Duration::from_secs(24 * 3600),
            renewal: certkeeper_core::schedule::RenewalPolicy::default(),
            labels: certkeeper_engine::job::JobLabels::default(),
        }
    }

    /// The status [`status_patch`] writes for `state`, as cert-manager's CRDs keep it: without
    /// `status.certkeeper` (their schema has no such field, so the API server prunes it) and
    /// without the fields the patch clears.
    fn pruned_status(state: &CertState, now: SystemTime) -> Value {
        let mut status = status_patch(state, 7, 1, None, now)["status"].clone();
        if let Some(s) = status.as_object_mut() {
            s.remove("certkeeper");
            s.retain(|_, v| !v.is_null());
        }
        json!({"status": status})
    }

    #[test]
    fn a_failure_is_restored_from_cert_managers_fields_alone() {
        let last = to_unix(SystemTime::now()) - 30;
        let refused = CertState {
            revision: 0,
            issued: None,
            failure: Some(FailureRecord {
                class: FailureClass::Rejected,
                message: "common name web.example.org not allowed by this role".into(),
                attempts: 2,
                first_failure: last - 300,
                last_failure: last,
                next_attempt: Some(last + 600),
                spec_fingerprint: 7,
            }),
        };
        let certificate = pruned_status(&refused, from_unix(last));
        assert!(certificate["status"].get("certkeeper").is_none());
        let restored = restore_state(&certificate, None, &job()).expect("a failure streak");
        let f = restored.failure.as_ref().expect("the failure");
        assert_eq!(f.attempts, 2);
        assert_eq!(f.last_failure, last);
        assert_eq!(f.message, "common name web.example.org not allowed by this role");
        assert_eq!(f.class, UNKNOWN_FAILURE_CLASS, "no condition names the class");
        // The next attempt is the schedule's from the last failure, not now: the second
        // rejection waits 10 min (jitter cuts at most a fifth), capped at the transient maximum
        // since nothing is served yet.
        let next = f.next_attempt.expect("retried on a timer");
        let expected = certkeeper_core::schedule::next_attempt(&certkeeper_core::schedule::RetryInput {
            class: f.class,
            attempts: 2,
            failed_at: from_unix(last),
            current_not_after: None,
            retry_after: None,
            unit_random: 0.0,
        })
        .map(to_unix);
        assert_eq!(Some(next), expected);
        assert_eq!(next, last + 300);
        assert!(next > to_unix(SystemTime::now()), "in the future");
        assert_eq!(
            decide_now(&restored),
            certkeeper_engine::state::Decision::WaitUntil(from_unix(next))
        );
        // Restoring again gives the same record.
        assert_eq!(restore_state(&certificate, None, &job()), Some(restored.clone()));
        assert!(
            status_current(&certificate, &restored),
            "the status already shows the failure"
        );

        // Without a failure streak there is nothing to restore.
        let mut no_streak = certificate.clone();
        no_streak["status"]["failedIssuanceAttempts"] = json!(0);
        assert_eq!(restore_state(&no_streak, None, &job()), None);
        let mut no_time = certificate;
        no_time["status"]
            .as_object_mut()
            .unwrap()
            .remove("lastFailureTime");
        assert_eq!(restore_state(&no_time, None, &job()), None);
    }

    fn decide_now(state: &CertState) -> certkeeper_engine::state::Decision {
        certkeeper_engine::state::decide(state, 7, SystemTime::now(), false)
    }

    #[test]
    fn a_renewal_failure_keeps_its_class_from_the_ready_condition() {
        let now = to_unix(SystemTime::now());
        let served = IssuedInfo {
            not_before: now - 3600,
            not_after: now + 90 * 24 * 3600,
            renewal_time: now - 60,
            ..issued()
        };
        let failing = CertState {
            revision: 3,
            issued: Some(served.clone()),
            failure: Some(FailureRecord {
                class: FailureClass::Transient,
                message: "Vault is sealed".into(),
                attempts: 4,
                first_failure: now - 20,
                last_failure: now - 5,
                next_attempt: Some(now + 3),
                spec_fingerprint: 7,
            }),
        };
        let certificate = pruned_status(&failing, from_unix(now - 5));
        let f = restore_cert_manager_failure(&certificate["status"], Some(&served), &job())
            .expect("a failure streak");
        assert_eq!(f.class, FailureClass::Transient);
        assert_eq!((f.attempts, f.last_failure), (4, now - 5));
        assert_eq!(f.message, "Vault is sealed");
        // The transient schedule: 8 s for the fourth failure, cut by up to a fifth.
        let wait = f.next_attempt.expect("on a timer") - f.last_failure;
        assert!((6..=8).contains(&wait), "{wait}");
    }

    #[test]
    fn a_message_cert_manager_wrote_is_restored_too() {
        let certificate = json!({"status": {
            "failedIssuanceAttempts": 1,
            "lastFailureTime": "2027-01-15T08:00:00Z",
            "conditions": [{"type": "Issuing", "status": "False", "reason": "Failed",
                            "message": "The certificate request has failed to complete and will be retried: Vault failed to sign certificate: 400"}],
        }});
        let f = restore_state(&certificate, None, &job())
            .unwrap()
            .failure
            .unwrap();
        assert_eq!(f.message, "Vault failed to sign certificate: 400");
        assert_eq!(f.last_failure, parse_rfc3339("2027-01-15T08:00:00Z").unwrap());
        let bare =
            json!({"status": {"failedIssuanceAttempts": 3, "lastFailureTime": "2027-01-15T08:00:00Z"}});
        let f = restore_state(&bare, None, &job()).unwrap().failure.unwrap();
        assert_eq!(f.attempts, 3);
        assert_eq!(f.message, "the last attempt failed at 2027-01-15T08:00:00Z");
    }

    #[test]
    fn certkeepers_own_record_is_still_preferred() {
        let certificate = json!({"status": {
            "failedIssuanceAttempts": 2,
            "lastFailureTime": "2027-01-15T08:00:00Z",
            "certkeeper": {"failureClass": "invalid", "failureMessage": "no such Issuer"},
        }});
        let f = restore_state(&certificate, None, &job())
            .unwrap()
            .failure
            .unwrap();
        assert_eq!(f.class, FailureClass::Invalid);
        assert_eq!(f.message, "no such Issuer");
        assert_eq!(f.next_attempt, None, "waits for a change");
    }

    #[test]
    fn a_failing_status_without_certkeepers_field_is_current() {
        let failure = FailureRecord {
            class: FailureClass::Rejected,
            message: "refused".into(),
            attempts: 1,
            first_failure: 1_800_002_500,
            last_failure: 1_800_002_500,
            next_attempt: Some(1_800_002_800),
            spec_fingerprint: 7,
        };
        let failing = CertState {
            revision: 2,
            issued: Some(issued()),
            failure: Some(failure),
        };
        let healthy = CertState {
            failure: None,
            ..failing.clone()
        };
        // cert-manager's CRDs: the failure shows in failedIssuanceAttempts and lastFailureTime.
        let shown = json!({"status": {"revision": 2, "notAfter": rfc(1_800_003_600),
                                      "failedIssuanceAttempts": 1,
                                      "lastFailureTime": rfc(1_800_002_500)}});
        assert!(status_current(&shown, &failing));
        assert!(
            !status_current(&shown, &healthy),
            "a failure the state no longer has"
        );
        let clean = json!({"status": {"revision": 2, "notAfter": rfc(1_800_003_600)}});
        assert!(!status_current(&clean, &failing), "a failure not written yet");
        assert!(status_current(&clean, &healthy));
        // What status_patch writes, once pruned, is current for the state it was written for.
        let now = from_unix(1_800_002_600);
        assert!(status_current(&pruned_status(&failing, now), &failing));
        assert!(status_current(&pruned_status(&healthy, now), &healthy));
    }

    #[test]
    fn rfc3339_round_trips() {
        for secs in [0, 951_782_400, 1_800_000_000, 4_102_444_800] {
            assert_eq!(parse_rfc3339(&rfc(secs)), Some(secs));
        }
        assert_eq!(
            parse_rfc3339("2026-01-02T03:04:05.123Z"),
            parse_rfc3339("2026-01-02T03:04:05Z")
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn status_shows_failures_and_keeps_transition_times() {
        let state = CertState {
            revision: 2,
            issued: Some(issued()),
            failure: Some(FailureRecord {
                class: FailureClass::AuthRejected,
                message: "permission denied".into(),
                attempts: 3,
                first_failure: 1_800_002_400,
                last_failure: 1_800_002_500,
                next_attempt: Some(1_800_002_800),
                spec_fingerprint: 7,
            }),
        };
        let old = json!({"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2027-01-15T08:00:00Z"}]});
        let now = from_unix(1_800_002_600);
        let patch = status_patch(&state, 7, 4, Some(&old), now);
        let s = &patch["status"];
        assert_eq!(s["conditions"][0]["status"], "True");
        assert_eq!(s["conditions"][0]["lastTransitionTime"], "2027-01-15T08:00:00Z");
        assert_eq!(s["conditions"][0]["observedGeneration"], 4);
        assert_eq!(s["conditions"][1]["reason"], "Failed");
        assert_eq!(s["certkeeper"]["failureClass"], "auth_rejected");
        assert_eq!(s["revision"], 2);
        assert_eq!(s["failedIssuanceAttempts"], 3);
        let cleared = status_patch(
            &CertState {
                failure: None,
                ..state
            },
            7,
            4,
            None,
            now,
        );
        assert!(cleared["status"]["certkeeper"].is_null() && cleared["status"]["lastFailureTime"].is_null());
        assert_eq!(cleared["status"]["conditions"].as_array().unwrap().len(), 1);
    }
}
