//! CertificateRequests made by other tools (istio-csr, csi-driver, by hand) for certkeeper's Vault
//! issuers: approved (unless auto-approval is off; `Denied` is respected), signed through the
//! issuer's client and gate (the same token cache, rate limit and circuit breaker as the
//! Certificates of that issuer), and answered in the request's status.
//!
//! - Only a rejection by Vault (class `rejected`: the role does not allow the name, no such mount
//!   ...) fails a request (`Ready=False`, reason `Failed`, `failureTime`): cert-manager's terminal
//!   state. Everything else keeps it `Pending` with the reason in the message and retries on the
//!   engine's schedule (`certkeeper_core::schedule::next_attempt`: ~1 s doubling for transient
//!   failures, slower for auth rejections; a failure that waits for a change is re-tried every
//!   [`INVALID_RECHECK`]), so nothing waits an hour because of a blip.
//! - In the full mode, requests carrying `cert-manager.io/certificate-name` are the records the
//!   Certificate side writes itself and are left alone; so are requests for issuers that are not
//!   certkeeper's Vault issuers (other issuer types, other groups).
//! - Beside cert-manager ([`Mode::ExternalIssuer`]) those annotated requests are cert-manager's
//!   own, made by its Certificate controller for a `VaultIssuer` or `VaultClusterIssuer`: they
//!   are signed like any other, and only requests naming certkeeper.io kinds are read. The
//!   contract is cert-manager's for external issuers (as its issuer-lib implements it): nothing
//!   happens before an approval controller sets `Approved` or `Denied`; `Denied` ends the request
//!   (`Ready=False`, reason `Denied`, `failureTime`); a request for an issuer that does not exist
//!   or is not usable stays `Pending` and says so; an issued one is `Ready=True`, reason `Issued`,
//!   with `status.certificate` and `status.ca`.
//! - The signed certificate is what Vault returned (leaf + chain in `certificate`, the issuing CA
//!   in `ca`); the CSR is not re-checked beyond being a PEM CERTIFICATE REQUEST.
//! - A certificate Vault signed whose status write fails (API server trouble) is kept and
//!   written again on the transient schedule; the request is never signed twice for that.
//! - Retry state is in memory: a restart retries pending requests at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine;
use certkeeper_core::pki::RequestCheckError;
use certkeeper_core::spec::{
    Base64Bytes, CERT_MANAGER_GROUP, CERTKEEPER_GROUP, CONDITION_APPROVED, CONDITION_DENIED,
    CONDITION_INVALID_REQUEST, CONDITION_READY, CertificateRequestCondition, CertificateRequestSpec,
    CertificateRequestStatus, ConditionStatus, FieldError, FieldPath, Problem, REASON_DENIED, REASON_FAILED,
    REASON_ISSUED, REASON_PENDING, set_condition,
};
use certkeeper_core::time::rfc3339;
use certkeeper_core::{FailureClass, FailureScope};
use certkeeper_engine::{IssuerId, IssuerRuntime};
use certkeeper_vault::SignRequest;
use serde_json::Value;
use tokio::sync::{Mutex, Notify, watch};
use tokio::task::JoinSet;

use crate::kube::{KubeClient, KubeError, cm_path};
use crate::objects::RequestObject;
use crate::reflector::Store;
use crate::run::Mode;

/// Who approves requests for certkeeper's issuers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Approval {
    /// certkeeper approves those that nobody approved or denied (the full mode's default).
    Auto,
    /// An approval controller does (cert-manager's, or approver-policy); certkeeper waits.
    WaitForApprover,
}

impl Approval {
    /// Beside cert-manager, certkeeper never approves: cert-manager's approver has the RBAC for
    /// certkeeper's signers, and approver-policy users rely on nothing else approving.
    pub fn of(mode: Mode, auto_approve: bool) -> Approval {
        match (mode, auto_approve) {
            (Mode::Full, true) => Approval::Auto,
            _ => Approval::WaitForApprover,
        }
    }
}

/// What the reconcile knows of issuers that exist but are not usable, for the requests that
/// name them ("waiting for the issuer" notes).
#[derive(Debug, Default)]
pub struct IssuerNotes {
    /// Whether a reconcile ran: before it no issuer is known, missing or not.
    pub reconciled: bool,
    /// Issuer id -> why it is not usable (its Ready condition's message).
    pub problems: HashMap<IssuerId, String>,
}

pub type SharedIssuerNotes = Arc<std::sync::Mutex<IssuerNotes>>;

/// How often a request whose failure waits for a change is tried again anyway.
pub const INVALID_RECHECK: Duration = Duration::from_secs(60);
/// Signing requests in flight at once (each issuer's gate limits its own share further).
const MAX_IN_FLIGHT: usize = 32;

type SignResult = Result<(String, Option<String>), SignFailure>;

/// Why a request was not signed.
#[derive(Debug)]
struct SignFailure {
    class: FailureClass,
    /// Only a refusal of this one request fails it; one of the issuer (its credentials, role,
    /// mount) can end, so the request stays Pending.
    scope: FailureScope,
    message: String,
    retry_after: Option<Duration>,
    /// The gate held it back (the issuer's circuit is open): nothing was sent, and it goes with
    /// the issuer's next probe (`retry_after`) without counting an attempt.
    held: bool,
}

#[derive(Debug, Clone, Copy)]
struct Retry {
    attempts: u32,
    next: SystemTime,
}

/// The conditions of `cr` with `new` set (other types kept; lastTransitionTime kept when the
/// status does not change).
fn with_condition(
    cr: &RequestObject,
    kind: &str,
    status: ConditionStatus,
    reason: &str,
    message: &str,
) -> Vec<CertificateRequestCondition> {
    let mut conditions = cr.status.conditions.clone();
    set_condition(
        &mut conditions,
        CertificateRequestCondition {
            condition_type: kind.to_owned(),
            status,
            last_transition_time: None,
            reason: reason.to_owned(),
            message: message.to_owned(),
        },
        &rfc3339(SystemTime::now()),
    );
    conditions
}

/// A status with only these conditions (a merge patch leaves the rest as it is).
fn conditions_only(conditions: Vec<CertificateRequestCondition>) -> CertificateRequestStatus {
    CertificateRequestStatus {
        conditions,
        ..CertificateRequestStatus::default()
    }
}

/// The merge patch of a request's status.
#[derive(serde::Serialize)]
struct StatusPatch<'a> {
    status: &'a CertificateRequestStatus,
}

/// Writes `status` on `cr`; `false` (logged) when the API server did not take it.
async fn patch_status(client: &KubeClient, cr: &RequestObject, status: &CertificateRequestStatus) -> bool {
    let written = async {
        let path = cm_path(&cr.meta.namespace, "certificaterequests", Some(&cr.meta.name))?;
        let body = serde_json::to_value(StatusPatch { status }).map_err(|e| KubeError::Decode {
            what: format!("the status of CertificateRequest {}", cr.meta.key()),
            message: e.to_string(),
        })?;
        client.merge_patch(&format!("{path}/status"), &body).await
    }
    .await;
    match written {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(request = %cr.meta.key(), error = %e, "cannot write CertificateRequest status");
            false
        }
    }
}

/// The issuer id a request refers to, if it names an issuer kind `mode` reconciles.
fn issuer_id(cr: &RequestObject, mode: Mode) -> Option<IssuerId> {
    let r = &cr.issuer_ref;
    let kind = r.issuer_kind().filter(|k| mode.issuer_kinds().contains(k))?;
    if r.name.is_empty() {
        return None;
    }
    Some(IssuerId::new(kind, &cr.meta.namespace, &r.name))
}

/// (record, done): whether `cr` is a record the Certificate side wrote (it carries
/// `cert-manager.io/certificate-name`; in the full mode only, where certkeeper is the Certificate
/// side), and whether it is answered (`Ready=True`, `Failed`, `Denied`, or an invalid request).
/// Either way the loop leaves it alone.
fn handled(cr: &RequestObject, mode: Mode) -> (bool, bool) {
    let done = cr.status.condition(CONDITION_READY).is_some_and(|c| {
        c.status == ConditionStatus::True || c.reason == REASON_FAILED || c.reason == REASON_DENIED
    }) || cr.is_true(CONDITION_INVALID_REQUEST);
    (cr.from_certificate && mode == Mode::Full, done)
}

/// What the controller keeps of a CertificateRequest (the mirror's projection, [`kept`]).
#[derive(Debug, Clone, PartialEq)]
pub enum KeptRequest {
    /// Still to be answered: what the loop reads of it ([`RequestObject`]).
    Pending(Arc<RequestObject>),
    /// [`handled`]: all the loop needs of it, its key ("namespace/name/uid") and whether it is
    /// answered. Not its CSR, certificate, CA nor metadata (a few KB per request as JSON).
    Handled { key: String, done: bool },
}

/// What is kept of `object` ([`KeptRequest`]). A handled request that changes arrives whole
/// and is projected again.
pub fn kept(object: Value, mode: Mode) -> KeptRequest {
    let cr = RequestObject::of(object);
    match handled(&cr, mode) {
        (false, false) => KeptRequest::Pending(Arc::new(cr)),
        (_, done) => KeptRequest::Handled { key: cr.key(), done },
    }
}

/// Signs pending requests until `stop` turns true.
#[allow(clippy::too_many_arguments)] // the loop's inputs, each from its own owner
pub async fn run_requests(
    client: KubeClient,
    store: Arc<Store<KeptRequest>>,
    issuers: Arc<Mutex<HashMap<IssuerId, IssuerRuntime>>>,
    notes: SharedIssuerNotes,
    changed: Arc<Notify>,
    mode: Mode,
    approval: Approval,
    mut stop: watch::Receiver<bool>,
) {
    let mut retries: HashMap<String, Retry> = HashMap::new();
    let mut running: JoinSet<(String, SignResult)> = JoinSet::new();
    let mut in_flight: HashMap<String, Arc<RequestObject>> = HashMap::new();
    // Signed certificates whose status write failed: written again, never signed again.
    let mut unsent: HashMap<String, CertificateRequestStatus> = HashMap::new();
    // Requests whose final status (signed, rejected) is written but not yet seen in the store:
    // the watch may lag behind our own write, and they must not be signed again meanwhile.
    let mut answered: std::collections::HashSet<String> = std::collections::HashSet::new();
    // Requests told why they wait for their issuer: the note written last, not written again.
    let mut waiting: HashMap<String, String> = HashMap::new();
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = changed.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            Some(joined) = running.join_next(), if !running.is_empty() => {
                let Ok((key, result)) = joined else { continue };
                let Some(cr) = in_flight.remove(&key) else { continue };
                if finish(&client, &cr, result, &mut retries, &mut unsent).await {
                    answered.insert(key);
                }
            }
        }
        if !store.synced() {
            continue;
        }
        let issuers = issuers.lock().await.clone();
        let now = SystemTime::now();
        let mut live = std::collections::HashSet::new();
        for kept in store.snapshot() {
            let cr = match &*kept {
                KeptRequest::Handled { key, done } => {
                    live.insert(key.clone());
                    if *done {
                        answered.remove(key);
                    }
                    continue;
                }
                KeptRequest::Pending(cr) => cr.clone(),
            };
            let key = cr.key();
            live.insert(key.clone());
            let (record, done) = handled(&cr, mode);
            if done {
                answered.remove(&key);
            }
            if record || done || in_flight.contains_key(&key) || answered.contains(&key) {
                continue;
            }
            let Some(id) = issuer_id(&cr, mode) else {
                continue;
            };
            let issuer = issuers.get(&id).cloned();
            // certkeeper.io kinds are certkeeper's whether or not one exists; a cert-manager.io
            // issuer certkeeper has not built may be another type's (ACME, CA): left alone.
            let ours = issuer.is_some() || id.key().kind.group() == CERTKEEPER_GROUP;
            if !ours {
                continue;
            }
            if cr.is_true(CONDITION_DENIED) {
                let message = "The CertificateRequest was denied by an approval controller";
                let status = failed(&cr, REASON_DENIED, message, now);
                patch_status(&client, &cr, &status).await;
                continue;
            }
            let mut cr = cr;
            if !cr.is_true(CONDITION_APPROVED) {
                if approval == Approval::WaitForApprover || issuer.is_none() {
                    continue;
                }
                let conditions = with_condition(
                    &cr,
                    CONDITION_APPROVED,
                    ConditionStatus::True,
                    CERT_MANAGER_GROUP,
                    "Certificate request has been approved by certkeeper",
                );
                patch_status(&client, &cr, &conditions_only(conditions.clone())).await;
                // Sign in the same pass, remembering the approval for the next status write.
                let mut approved = (*cr).clone();
                approved.status.conditions = conditions;
                cr = Arc::new(approved);
            }
            let Some(issuer) = issuer else {
                let note = {
                    let notes = notes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    if !notes.reconciled {
                        continue;
                    }
                    waiting_note(&id, notes.problems.get(&id))
                };
                let shown = cr
                    .status
                    .condition(CONDITION_READY)
                    .is_some_and(|c| c.reason == REASON_PENDING && c.message == note);
                if !shown && waiting.get(&key) != Some(&note) {
                    let status = conditions_only(with_condition(
                        &cr,
                        CONDITION_READY,
                        ConditionStatus::False,
                        REASON_PENDING,
                        &note,
                    ));
                    if patch_status(&client, &cr, &status).await {
                        waiting.insert(key.clone(), note);
                    }
                }
                continue;
            };
            waiting.remove(&key);
            if retries.get(&key).is_some_and(|r| r.next > now) || running.len() >= MAX_IN_FLIGHT {
                continue;
            }
            if let Some(status) = unsent.get(&key) {
                if patch_status(&client, &cr, status).await {
                    unsent.remove(&key);
                    retries.remove(&key);
                    answered.insert(key.clone());
                } else {
                    schedule_retry(&mut retries, &key, FailureClass::Transient, None, now);
                }
                continue;
            }
            let csr_pem = match request_csr(&cr) {
                Ok(pem) => pem,
                Err(error) => {
                    let message = error.to_string();
                    let message = message.as_str();
                    let mut invalid = (*cr).clone();
                    invalid.status.conditions = with_condition(
                        &cr,
                        CONDITION_INVALID_REQUEST,
                        ConditionStatus::True,
                        "RequestParsingError",
                        message,
                    );
                    let status = failed(&invalid, REASON_FAILED, message, now);
                    patch_status(&client, &cr, &status).await;
                    continue;
                }
            };
            let ttl = cr
                .duration
                .as_deref()
                .and_then(|d| certkeeper_core::spec::parse_go_duration(d).ok());
            let request = SignRequest {
                csr_pem,
                common_name: None,
                dns_names: Vec::new(),
                ip_sans: Vec::new(),
                uri_sans: Vec::new(),
                ttl,
            };
            in_flight.insert(key.clone(), cr.clone());
            running.spawn(async move { (key, sign(issuer, request).await) });
        }
        retries.retain(|k, _| live.contains(k));
        waiting.retain(|k, _| live.contains(k));
        unsent.retain(|k, _| live.contains(k));
        answered.retain(|k| live.contains(k));
    }
}

/// Why a request waits for its issuer (issuer-lib's wording): it does not exist, or it exists
/// and is not usable (`problem`, its Ready condition's message).
fn waiting_note(id: &IssuerId, problem: Option<&String>) -> String {
    let key = id.key();
    let name = match &key.namespace {
        Some(namespace) => format!("{} {namespace}/{}", key.kind, key.name),
        None => format!("{} {}", key.kind, key.name),
    };
    match problem {
        Some(problem) => format!("Waiting for issuer to become ready. {name} is not ready: {problem}"),
        None => format!("{name} not found. Waiting for it to be created."),
    }
}

/// Schedules the next try of `key` after a failure of `class` (the engine's schedule); returns
/// it. A failed status write counts as a transient failure.
fn schedule_retry(
    retries: &mut HashMap<String, Retry>,
    key: &str,
    class: FailureClass,
    retry_after: Option<Duration>,
    now: SystemTime,
) -> Retry {
    let attempts = retries.get(key).map_or(0, |r| r.attempts).saturating_add(1);
    let input = certkeeper_core::schedule::RetryInput {
        class,
        attempts,
        failed_at: now,
        current_not_after: None,
        retry_after,
        unit_random: unit_random(key, attempts),
    };
    let next = certkeeper_core::schedule::next_attempt(&input).unwrap_or(now + INVALID_RECHECK);
    let retry = Retry { attempts, next };
    retries.insert(key.to_owned(), retry);
    retry
}

/// How long until just after the issuer's next probe: a request waiting behind it comes back
/// then, and goes through if the probe succeeded.
fn after_probe(issuer: &IssuerRuntime) -> Duration {
    let probe_at = issuer.gate.circuit_info().probe_at;
    probe_at.saturating_duration_since(tokio::time::Instant::now()) + Duration::from_secs(1)
}

async fn sign(issuer: IssuerRuntime, request: SignRequest) -> SignResult {
    match certkeeper_engine::attempt::sign(&issuer, &request).await {
        Ok(signed) => {
            let s = signed.certificate;
            let mut chain = s.certificate_pem.trim_end().to_owned();
            chain.push('\n');
            for ca in s
                .ca_chain_pem
                .iter()
                .filter(|c| !is_self_signed_root(c, &s.issuing_ca_pem))
            {
                chain.push_str(ca.trim_end());
                chain.push('\n');
            }
            let ca = (!s.issuing_ca_pem.is_empty()).then(|| s.issuing_ca_pem.clone());
            Ok((chain, ca))
        }
        // Held back by the issuer's open circuit, or Vault refused the issuer itself (this
        // request was the first, or the gate's probe): the request waits behind the issuer's
        // probe like any other, instead of falling back on its own slow schedule.
        Err(f) => {
            let held = f.waits_for_probe();
            Err(SignFailure {
                class: f.class,
                scope: f.scope,
                message: f.message,
                retry_after: if held {
                    Some(after_probe(&issuer))
                } else {
                    f.retry_after
                },
                held,
            })
        }
    }
}

/// Vault's chain ends with the root when it knows it; `tls.crt`-style chains stop below it. The
/// issuing CA itself always stays.
fn is_self_signed_root(pem: &str, issuing: &str) -> bool {
    if pem.trim() == issuing.trim() {
        return false;
    }
    certkeeper_core::pki::describe_pem_bundle(pem)
        .ok()
        .and_then(|c| c.into_iter().next())
        .is_some_and(|c| c.self_signed)
}

/// Writes the outcome of a signing; `true` when a final status (signed, rejected) was written.
async fn finish(
    client: &KubeClient,
    cr: &RequestObject,
    result: SignResult,
    retries: &mut HashMap<String, Retry>,
    unsent: &mut HashMap<String, CertificateRequestStatus>,
) -> bool {
    let key = cr.key();
    let now = SystemTime::now();
    match result {
        Ok((chain, ca)) => {
            retries.remove(&key);
            let status = CertificateRequestStatus {
                certificate: Some(Base64Bytes(chain.into_bytes())),
                ca: ca.map(|ca| Base64Bytes(ca.into_bytes())),
                ..conditions_only(with_condition(
                    cr,
                    CONDITION_READY,
                    ConditionStatus::True,
                    REASON_ISSUED,
                    "Certificate fetched from issuer successfully",
                ))
            };
            tracing::info!(request = %cr.meta.key(), "signed CertificateRequest");
            if patch_status(client, cr, &status).await {
                return true;
            }
            schedule_retry(retries, &key, FailureClass::Transient, None, now);
            unsent.insert(key, status);
            false
        }
        Err(SignFailure {
            class: FailureClass::Rejected,
            scope: FailureScope::Request,
            message,
            held: false,
            ..
        }) => {
            retries.remove(&key);
            tracing::warn!(request = %cr.meta.key(), error = %message, "Vault rejected the CertificateRequest");
            let status = CertificateRequestStatus {
                failure_time: Some(rfc3339(now)),
                ..conditions_only(with_condition(
                    cr,
                    CONDITION_READY,
                    ConditionStatus::False,
                    REASON_FAILED,
                    &format!("Vault rejected the request: {message}"),
                ))
            };
            patch_status(client, cr, &status).await
        }
        Err(SignFailure {
            class,
            message,
            retry_after,
            held,
            ..
        }) => {
            let Retry { attempts, next } = if held {
                // Nothing was sent: no attempt counted, back just after the issuer's probe.
                let attempts = retries.get(&key).map_or(1, |r| r.attempts);
                let retry = Retry {
                    attempts,
                    next: now + retry_after.unwrap_or(Duration::from_secs(1)),
                };
                retries.insert(key.clone(), retry);
                retry
            } else {
                schedule_retry(retries, &key, class, retry_after, now)
            };
            let text = format!(
                "Waiting to retry ({}, attempt {attempts}, next attempt {}): {message}",
                class.as_str(),
                rfc3339(next)
            );
            tracing::warn!(request = %cr.meta.key(), class = class.as_str(), attempts, error = %message, "CertificateRequest not signed yet");
            let status = conditions_only(with_condition(
                cr,
                CONDITION_READY,
                ConditionStatus::False,
                REASON_PENDING,
                &text,
            ));
            let _ = patch_status(client, cr, &status).await;
            false
        }
    }
}

fn unit_random(id: &str, attempt: u32) -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write(id.as_bytes());
    h.write_u32(attempt);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// The status of a request that will not be signed: `Ready` False with `reason` and `message`,
/// and `failureTime`.
fn failed(cr: &RequestObject, reason: &str, message: &str, now: SystemTime) -> CertificateRequestStatus {
    CertificateRequestStatus {
        failure_time: Some(rfc3339(now)),
        ..conditions_only(with_condition(
            cr,
            CONDITION_READY,
            ConditionStatus::False,
            reason,
            message,
        ))
    }
}

/// The request's CSR (PEM text) if it is one cert-manager's webhook accepts for the request's
/// `isCA` and `usages` (the core's one check, `CertificateRequestSpec::check_request`), else
/// why not, at `spec.request`.
fn request_csr(cr: &RequestObject) -> Result<String, FieldError> {
    let not_pem = || {
        FieldError::new(
            FieldPath::parse("spec.request"),
            Problem::InvalidRequest(RequestCheckError::NotPem),
        )
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&cr.request)
        .map_err(|_| not_pem())?;
    let spec = CertificateRequestSpec {
        request: Base64Bytes(bytes),
        is_ca: cr.is_ca,
        usages: cr.usages.clone(),
        issuer_ref: cr.issuer_ref.clone(),
        ..CertificateRequestSpec::default()
    };
    spec.check_request()?;
    String::from_utf8(spec.request.0).map_err(|_| not_pem())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use certkeeper_core::spec::IssuerKind;
    use serde_json::json;

    use super::*;

    fn request(annotations: Value, status: Value) -> Value {
        json!({"metadata": {"name": "web-1", "namespace": "apps", "uid": "u1", "resourceVersion": "9",
                            "annotations": annotations, "labels": {"a": "b"},
                            "ownerReferences": [{"kind": "Certificate", "name": "web"}],
                            "managedFields": [{"manager": "certkeeper"}]},
               "spec": {"request": "Q1NS", "issuerRef": {"name": "vault"}, "duration": "24h"},
               "status": status})
    }

    fn ready(status: &str, reason: &str) -> Value {
        json!({"conditions": [{"type": "Ready", "status": status, "reason": reason, "message": "m"}],
               "certificate": "Q0VSVA==", "ca": "Q0E="})
    }

    /// A request whose CSR does not carry its `usages` is refused as cert-manager's webhook
    /// refuses it, naming `spec.request`; one that matches (or whose CSR has no usage
    /// extensions, as rcgen writes them) is signed.
    #[test]
    fn a_request_whose_csr_does_not_match_its_usages_is_invalid() {
        let (csr, _key) = certkeeper_testkit::csr_p256("web", &["web"]).unwrap();
        let request = base64::engine::general_purpose::STANDARD.encode(&csr);
        let with = |usages: Value| {
            RequestObject::of(json!({"metadata": {"name": "r", "namespace": "apps", "uid": "u"},
                "spec": {"request": request, "issuerRef": {"name": "vault"}, "usages": usages}}))
        };
        assert_eq!(request_csr(&with(json!(["server auth"]))).ok(), Some(csr));
        let cert = certkeeper_core::pki::PrivateKey::generate(certkeeper_core::pki::KeyAlgorithm::Ecdsa(256))
            .unwrap();
        let req = certkeeper_core::pki::CsrRequest {
            common_name: Some("web".into()),
            key_usages: vec![certkeeper_core::pki::KeyUsage::DigitalSignature],
            encode_usages_in_request: true,
            ..Default::default()
        };
        let pem = certkeeper_core::pki::build_csr(&req, &cert).unwrap();
        let object = RequestObject::of(json!({"metadata": {"name": "r", "namespace": "apps", "uid": "u"},
            "spec": {"request": base64::engine::general_purpose::STANDARD.encode(&pem),
                     "issuerRef": {"name": "vault"}, "usages": ["digital signature", "server auth"]}}));
        let error = request_csr(&object).unwrap_err().to_string();
        assert!(
            error.starts_with("spec.request: encoded CSR error: the ExtKeyUsages [] do not match"),
            "{error}"
        );
        let object = RequestObject::of(json!({"metadata": {"name": "r", "namespace": "apps", "uid": "u"},
            "spec": {"request": "aGVsbG8=", "issuerRef": {"name": "vault"}}}));
        assert_eq!(
            request_csr(&object).map_err(|e| e.to_string()),
            Err("spec.request: no PEM-encoded certificate request".to_owned())
        );
    }

    #[test]
    fn a_pending_request_is_kept_whole() {
        for status in [json!({}), ready("False", "Pending")] {
            let object = request(json!({}), status);
            let KeptRequest::Pending(kept) = kept(object.clone(), Mode::Full) else {
                panic!("not kept whole");
            };
            assert_eq!(kept.key(), "apps/web-1/u1");
            assert_eq!(kept.issuer_ref.name, "vault");
            assert_eq!(
                (kept.request.as_str(), kept.duration.as_deref()),
                ("Q1NS", Some("24h"))
            );
            assert_eq!(serde_json::to_value(&kept.status).unwrap(), object["status"]);
            assert!(!kept.from_certificate);
        }
    }

    #[test]
    fn a_handled_request_is_kept_as_its_key_and_whether_it_is_answered() {
        let cases = [
            // The Certificate side's own records: left alone, answered or not.
            (
                request(
                    json!({"cert-manager.io/certificate-name": "web"}),
                    ready("True", "Issued"),
                ),
                true,
            ),
            (
                request(json!({"cert-manager.io/certificate-name": "web"}), json!({})),
                false,
            ),
            // Answered: signed, failed, denied, invalid.
            (request(json!({}), ready("True", "Issued")), true),
            (request(json!({}), ready("False", "Failed")), true),
            (request(json!({}), ready("False", "Denied")), true),
            (
                request(
                    json!({}),
                    json!({"conditions": [{"type": "InvalidRequest", "status": "True"}]}),
                ),
                true,
            ),
        ];
        for (object, done) in cases {
            assert_eq!(
                kept(object.clone(), Mode::Full),
                KeptRequest::Handled {
                    key: "apps/web-1/u1".into(),
                    done,
                },
                "{object}"
            );
            assert_eq!(handled(&RequestObject::of(object.clone()), Mode::Full).1, done);
        }
    }

    /// Beside cert-manager, the requests cert-manager's Certificate controller makes (they carry
    /// `cert-manager.io/certificate-name`) are the ones to sign: kept whole until answered.
    #[test]
    fn beside_cert_manager_its_certificate_requests_are_kept_whole() {
        let annotated = request(json!({"cert-manager.io/certificate-name": "web"}), json!({}));
        assert!(matches!(
            kept(annotated.clone(), Mode::ExternalIssuer),
            KeptRequest::Pending(_)
        ));
        assert!(matches!(kept(annotated, Mode::Full), KeptRequest::Handled { .. }));
        let issued = request(
            json!({"cert-manager.io/certificate-name": "web"}),
            ready("True", "Issued"),
        );
        assert!(matches!(
            kept(issued, Mode::ExternalIssuer),
            KeptRequest::Handled { done: true, .. }
        ));
    }

    /// Which requests each mode reads, by the issuer they name: certkeeper.io kinds in both
    /// modes, cert-manager.io kinds only in the full mode, other groups never.
    #[test]
    fn each_mode_reads_the_requests_of_its_issuer_kinds() {
        let with_ref = |reference: Value| {
            RequestObject::of(json!({"metadata": {"name": "r", "namespace": "apps", "uid": "u"},
                "spec": {"request": "Q1NS", "issuerRef": reference}}))
        };
        let cases = [
            (json!({"name": "vault"}), Some("Issuer/apps/vault"), None),
            (
                json!({"name": "vault", "kind": "ClusterIssuer", "group": "cert-manager.io"}),
                Some("ClusterIssuer/vault"),
                None,
            ),
            (
                json!({"name": "vault", "kind": "VaultIssuer", "group": "certkeeper.io"}),
                Some("VaultIssuer/apps/vault"),
                Some("VaultIssuer/apps/vault"),
            ),
            (
                json!({"name": "vault", "kind": "VaultClusterIssuer", "group": "certkeeper.io"}),
                Some("VaultClusterIssuer/vault"),
                Some("VaultClusterIssuer/vault"),
            ),
            (
                json!({"name": "pca", "kind": "AWSPCAIssuer", "group": "awspca.cert-manager.io"}),
                None,
                None,
            ),
            (
                json!({"name": "vault", "kind": "Issuer", "group": "certkeeper.io"}),
                None,
                None,
            ),
        ];
        for (reference, full, external) in cases {
            let cr = with_ref(reference.clone());
            let id = |mode| issuer_id(&cr, mode).map(|id| id.to_string());
            assert_eq!(id(Mode::Full).as_deref(), full, "{reference}");
            assert_eq!(id(Mode::ExternalIssuer).as_deref(), external, "{reference}");
        }
        assert_eq!(
            waiting_note(&IssuerId::new(IssuerKind::VaultIssuer, "apps", "vault"), None),
            "VaultIssuer apps/vault not found. Waiting for it to be created."
        );
        assert_eq!(
            waiting_note(
                &IssuerId::new(IssuerKind::VaultClusterIssuer, "", "vault"),
                Some(&"referenced Secret not found: cert-manager/token".to_owned())
            ),
            "Waiting for issuer to become ready. VaultClusterIssuer vault is not ready: referenced \
             Secret not found: cert-manager/token"
        );
        assert_eq!(Approval::of(Mode::Full, true), Approval::Auto);
        assert_eq!(
            Approval::of(Mode::ExternalIssuer, true),
            Approval::WaitForApprover
        );
    }
}
