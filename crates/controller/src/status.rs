//! The one writer of Certificate status.
//!
//! Everything the controller says in a Certificate's status goes through [`StatusWriter`]: an
//! attempt starting (`Issuing=True`), the engine's states (issued, failing), the notes of a
//! Certificate that waits for its input (an invalid spec, a missing issuer) and the name of the
//! next private key's Secret. Callers record what the status should say ([`Intent`], newest per
//! certificate) and return at once; one task writes, one Certificate at a time, so writes of one
//! Certificate can never overtake each other and no ordering state is needed: an outcome saved
//! after an attempt started replaces the attempt's `Issuing=True` before either is written.
//!
//! What a status says is decided by pure functions ([`show_state`], [`show_waiting`],
//! [`desired`]) on cert-manager's typed status, unit-tested without a server. Each write is a
//! JSON merge patch (with the field manager `certkeeper`) of every field certkeeper owns; other
//! writers' conditions (any type but `Ready` and `Issuing`) are kept.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use certkeeper_core::FailureClass;
use certkeeper_core::spec::{
    CONDITION_ISSUING, CONDITION_READY, CertificateStatus, CertkeeperStatus, Condition, ConditionStatus,
    remove_condition, set_condition,
};
use certkeeper_core::time::{rfc3339, rfc3339_unix, to_unix};
use certkeeper_engine::CertId;
use certkeeper_engine::state::{CertState, IssueReason, Readiness};
use serde_json::Value;
use tokio::sync::Notify;

use crate::kube::{KubeClient, KubeError, cm_path, meta_str};
use crate::objects::CertificateObject;
use crate::reflector::Store;

/// The status writer's pause after a transport failure: doubling up to the cap.
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// The Certificate a status belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub namespace: String,
    pub name: String,
    /// `metadata.generation`, written as the conditions' `observedGeneration` (0: unknown).
    pub generation: i64,
    /// The fingerprint of the spec the engine works on.
    pub fingerprint: u64,
    /// It lists addresses that must serve its certificate (`certkeeper.io/verify`): its
    /// [`CONDITION_SERVED`] says whether they do.
    pub verifies: bool,
}

/// The condition that says whether the `certkeeper.io/verify` addresses serve the current
/// certificate: True (`Verified`) once they do, False (`NotServed`) with what they serve while
/// they do not; absent without the annotation.
pub const CONDITION_SERVED: &str = "Served";

/// What a Certificate waits for when the engine does not run it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    /// `Ready`'s reason when it has no `Ready` condition yet (`InvalidSpec`, `IssuerNotReady`).
    pub reason: &'static str,
    /// The `Ready` message then.
    pub ready_message: String,
    /// What is wrong (`status.certkeeper.failureMessage`).
    pub message: String,
}

/// What a Certificate's status should show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shown {
    /// The engine's state of it.
    State(CertState),
    /// It waits for a change of its input.
    Waiting(Waiting),
}

/// What the status of one Certificate should say, as recorded since its last write.
#[derive(Debug, Clone)]
pub struct Intent {
    pub target: Target,
    pub shown: Option<Shown>,
    /// An attempt in progress: cert-manager's trigger reason and message.
    pub issuing: Option<(&'static str, String)>,
    /// `Some(name)`: record the next private key's Secret; `Some(None)`: clear it.
    pub next_private_key: Option<Option<String>>,
    /// Numbers intents in the order they were recorded (a failed write is put back unless a
    /// newer one arrived).
    version: u64,
}

impl Intent {
    fn new(target: Target) -> Self {
        Intent {
            target,
            shown: None,
            issuing: None,
            next_private_key: None,
            version: 0,
        }
    }
}

fn revision(state: &CertState) -> Option<i32> {
    (state.revision > 0).then(|| i32::try_from(state.revision).unwrap_or(i32::MAX))
}

/// When a failed certificate is tried again, as status and Events say it.
pub fn next_attempt_text(next_attempt: Option<i64>) -> String {
    next_attempt.map_or("when its input changes".to_owned(), rfc3339_unix)
}

/// `status` showing the engine's `state` of a Certificate whose spec has `fingerprint`:
/// cert-manager's `Ready` (Expired, RequestChanged, Ready, DoesNotExist), `Issuing=False`
/// (Failed) while failing, the times, the revision, the failure streak and certkeeper's retry
/// state.
pub fn show_state(status: &mut CertificateStatus, state: &CertState, target: &Target, now: SystemTime) {
    let now_unix = to_unix(now);
    let now_s = rfc3339(now);
    let generation = target.generation;
    let next_attempt = |f: &certkeeper_engine::state::FailureRecord| next_attempt_text(f.next_attempt);
    let failure_note = state.failure.as_ref().map(|f| {
        format!(
            "; the last attempt failed ({}, {} attempts), next attempt {}",
            f.class.as_str(),
            f.attempts,
            next_attempt(f)
        )
    });
    let readiness = Readiness::of(state.issued.as_ref(), target.fingerprint, now_unix);
    let message = match (readiness, &state.issued) {
        (Readiness::Expired, Some(i)) => format!("Certificate expired on {}", rfc3339_unix(i.not_after)),
        (Readiness::RequestChanged, _) => {
            "The certificate in the Secret was issued for a different spec; re-issuing".to_owned()
        }
        (Readiness::Ready, issued) => format!(
            "Certificate is up to date and has not expired{}{}",
            issued
                .as_ref()
                .and_then(|i| i.renewal_note.as_ref())
                .map(|n| format!("; {}", n.message()))
                .unwrap_or_default(),
            failure_note.unwrap_or_default()
        ),
        _ => IssueReason::DoesNotExist.message().to_owned(),
    };
    let ready = if readiness.is_ready() {
        ConditionStatus::True
    } else {
        ConditionStatus::False
    };
    let reason = readiness.reason();
    set_condition(
        &mut status.conditions,
        Condition::new(CONDITION_READY, ready, reason, message, generation),
        &now_s,
    );
    match &state.failure {
        // Stored but not served (class apply): not an issuance failure; `Served` says it.
        Some(f) if f.class.is_apply() => remove_condition(&mut status.conditions, CONDITION_ISSUING),
        Some(f) => set_condition(
            &mut status.conditions,
            Condition::new(
                CONDITION_ISSUING,
                ConditionStatus::False,
                "Failed",
                format!("{ISSUING_FAILED} at {}: {}", next_attempt(f), f.message),
                generation,
            ),
            &now_s,
        ),
        // Not failing: no attempt is pending (a renew request, cmctl's Issuing=True, is
        // consumed by the attempt this state is the outcome of).
        None => remove_condition(&mut status.conditions, CONDITION_ISSUING),
    }
    let served = match (&state.failure, target.verifies) {
        (Some(f), true) if f.class.is_apply() => Some(Condition::new(
            CONDITION_SERVED,
            ConditionStatus::False,
            "NotServed",
            format!(
                "{} (attempt {}; next check {})",
                f.message,
                f.attempts,
                next_attempt(f)
            ),
            generation,
        )),
        (None, true) if readiness.is_ready() => Some(Condition::new(
            CONDITION_SERVED,
            ConditionStatus::True,
            "Verified",
            "Every certkeeper.io/verify address serves the current certificate",
            generation,
        )),
        _ => None,
    };
    match served {
        Some(condition) => set_condition(&mut status.conditions, condition, &now_s),
        None if !target.verifies => remove_condition(&mut status.conditions, CONDITION_SERVED),
        None => {}
    }
    let issued = state.issued.as_ref();
    status.not_before = issued.map(|i| rfc3339_unix(i.not_before));
    status.not_after = issued.map(|i| rfc3339_unix(i.not_after));
    // Absent while automatic renewal is disabled, as cert-manager leaves it.
    status.renewal_time = issued.and_then(|i| i.renewal_time).map(rfc3339_unix);
    status.revision = revision(state);
    let failure = state.failure.as_ref();
    status.last_failure_time = failure.map(|f| rfc3339_unix(f.last_failure));
    status.failed_issuance_attempts = failure.map(|f| i32::try_from(f.attempts).unwrap_or(i32::MAX));
    status.certkeeper = failure.map(|f| CertkeeperStatus {
        failure_class: Some(f.class),
        failure_message: f.message.clone(),
        next_attempt_time: f.next_attempt.map(rfc3339_unix),
    });
}

/// The start of the `Issuing` condition's message while failing (it goes on with
/// ` at <next attempt>: <failure>`; cert-manager's with `: <failure>`).
pub const ISSUING_FAILED: &str = "The certificate request has failed to complete and will be retried";

/// `status` of a Certificate that waits for its input: `status.certkeeper` with class `invalid`
/// and what is wrong, and `Ready=False` when it has no `Ready` condition yet (a certificate issued
/// before stays served and Ready).
pub fn show_waiting(status: &mut CertificateStatus, waiting: &Waiting, target: &Target, now: SystemTime) {
    status.certkeeper = Some(CertkeeperStatus {
        failure_class: Some(FailureClass::Invalid),
        failure_message: waiting.message.clone(),
        next_attempt_time: None,
    });
    if status.condition(CONDITION_READY).is_none() {
        set_condition(
            &mut status.conditions,
            Condition::new(
                CONDITION_READY,
                ConditionStatus::False,
                waiting.reason,
                waiting.ready_message.clone(),
                target.generation,
            ),
            &rfc3339(now),
        );
    }
}

/// The status `intent` asks for, on top of the Certificate's current `status`.
pub fn desired(mut status: CertificateStatus, intent: &Intent, now: SystemTime) -> CertificateStatus {
    match &intent.shown {
        Some(Shown::State(state)) => show_state(&mut status, state, &intent.target, now),
        Some(Shown::Waiting(waiting)) => show_waiting(&mut status, waiting, &intent.target, now),
        None => {}
    }
    if let Some((reason, message)) = &intent.issuing {
        set_condition(
            &mut status.conditions,
            Condition::new(
                CONDITION_ISSUING,
                ConditionStatus::True,
                reason,
                message.clone(),
                intent.target.generation,
            ),
            &rfc3339(now),
        );
    }
    if let Some(name) = &intent.next_private_key {
        status.next_private_key_secret_name = name.clone();
    }
    status
}

/// The Certificate status for `state` on top of `old` (a status object), as the merge patch the
/// status writer sends ([`show_state`]).
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
        verifies: false,
    };
    show_state(&mut status, state, &target, now);
    serde_json::to_value(status.merge_patch()).unwrap_or(Value::Null)
}

/// The one writer of Certificate status (see the module docs). Cheap to share (`Arc`).
#[derive(Debug)]
pub struct StatusWriter {
    client: KubeClient,
    certificates: Arc<Store<CertificateObject>>,
    /// Boxed: after a mass issuance the table holds thousands of slots.
    intents: Mutex<HashMap<CertId, Box<Intent>>>,
    /// The status last written per Certificate and the resourceVersion the write made: the base
    /// of its next write while the watch of the Certificates does not show that write yet;
    /// forgotten once it does ([`StatusWriter::retain`]: the watch's object is then the same).
    written: Mutex<HashMap<CertId, (CertificateStatus, String)>>,
    versions: std::sync::atomic::AtomicU64,
    wake: Notify,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl StatusWriter {
    pub fn new(client: KubeClient, certificates: Arc<Store<CertificateObject>>) -> Self {
        StatusWriter {
            client,
            certificates,
            intents: Mutex::default(),
            written: Mutex::default(),
            versions: std::sync::atomic::AtomicU64::new(0),
            wake: Notify::new(),
        }
    }

    /// Records a change of what `target`'s status should say and wakes the writer.
    fn record(&self, id: &CertId, target: &Target, change: impl FnOnce(&mut Intent)) {
        let version = self.versions.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        {
            let mut intents = lock(&self.intents);
            let intent = intents
                .entry(id.clone())
                .or_insert_with(|| Box::new(Intent::new(target.clone())));
            intent.target = target.clone();
            intent.version = version;
            change(intent);
        }
        self.wake.notify_one();
    }

    /// An attempt started (`Issuing=True`, cert-manager's reason for the trigger).
    pub fn issuing(&self, id: &CertId, target: &Target, reason: &'static str, message: String) {
        self.record(id, target, |i| i.issuing = Some((reason, message)));
    }

    /// The engine's state: it replaces an attempt's `Issuing=True` (the attempt is over).
    pub fn state(&self, id: &CertId, target: &Target, state: CertState) {
        self.record(id, target, |i| {
            i.shown = Some(Shown::State(state));
            i.issuing = None;
        });
    }

    /// The Certificate waits for its input (not run by the engine).
    pub fn waiting(&self, id: &CertId, target: &Target, waiting: Waiting) {
        self.record(id, target, |i| {
            i.shown = Some(Shown::Waiting(waiting));
            i.issuing = None;
        });
    }

    /// Records (or clears) `status.nextPrivateKeySecretName`.
    pub fn next_private_key(&self, id: &CertId, target: &Target, name: Option<String>) {
        self.record(id, target, |i| i.next_private_key = Some(name));
    }

    /// Forgets the last writes of Certificates no longer tracked (what is still to be written
    /// stays: a Certificate deleted meanwhile answers 404 and is dropped then), and those the
    /// watch shows already (at the resourceVersion the write made).
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        let mut written = lock(&self.written);
        written.retain(|id, (_, written_at)| {
            keep(id)
                && !self
                    .certificates
                    .get(id)
                    .is_some_and(|c| !written_at.is_empty() && c.meta.resource_version == *written_at)
        });
        // Mostly empty between issuances: give back what a mass issuance made it grow to.
        if written.capacity() > 4 * written.len() + 64 {
            written.shrink_to_fit();
        }
    }

    /// Writes the recorded intents, off the engine's path (a slow or hung API server never
    /// holds up issuance). An intent whose write fails is kept (a newer one of the same
    /// Certificate replaces it) and written again: at once on the next change, or after a pause
    /// (1 s doubling to 30 s) when the API server did not answer. Ends when `stop` turns true,
    /// after one last pass.
    pub async fn run(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut pause = RETRY_MIN;
        loop {
            let failed = self.flush().await.is_err();
            let wait = if failed {
                let p = pause;
                pause = (pause * 2).min(RETRY_MAX);
                p
            } else {
                pause = RETRY_MIN;
                Duration::MAX
            };
            tokio::select! {
                _ = self.wake.notified(), if !failed => {}
                _ = tokio::time::sleep(wait), if failed => {}
                _ = stop.changed() => {
                    let _ = self.flush().await;
                    return;
                }
            }
        }
    }

    /// Writes every recorded intent once. After a transport failure, a timeout, 429 or 5xx the
    /// rest is not tried (it would wait out the same timeout once per Certificate) and is kept;
    /// other failures (RBAC, an invalid status) are kept and logged.
    async fn flush(&self) -> Result<(), KubeError> {
        // Taken, not drained: a drained table keeps its capacity (thousands of slots after a
        // mass issuance) for the life of the process.
        let batch = std::mem::take(&mut *lock(&self.intents));
        let mut left = batch.into_iter();
        let mut result = Ok(());
        for (id, intent) in left.by_ref() {
            if let Err(e) = self.write(&id, &intent).await {
                tracing::warn!(certificate = %id, error = %e, "cannot write Certificate status; kept for a retry");
                let passes = e.class() == FailureClass::Transient;
                self.keep(id, intent);
                if passes {
                    result = Err(e);
                    break;
                }
            }
        }
        for (id, intent) in left {
            self.keep(id, intent);
        }
        result
    }

    /// Puts `intent` back, under what was recorded for `id` meanwhile (newer changes win).
    fn keep(&self, id: CertId, mut intent: Box<Intent>) {
        let mut intents = lock(&self.intents);
        match intents.remove(&id) {
            Some(newer) => {
                if newer.shown.is_some() {
                    intent.shown = newer.shown;
                    intent.issuing = newer.issuing;
                } else if newer.issuing.is_some() {
                    intent.issuing = newer.issuing;
                }
                if newer.next_private_key.is_some() {
                    intent.next_private_key = newer.next_private_key;
                }
                intent.target = newer.target;
                intent.version = newer.version;
                intents.insert(id, intent);
            }
            None => {
                intents.insert(id, intent);
            }
        }
    }

    /// The Certificate's current status: our last write, else what the watch shows.
    fn current(&self, id: &CertId) -> CertificateStatus {
        if let Some((status, _)) = lock(&self.written).get(id) {
            return status.clone();
        }
        self.certificates
            .get(id)
            .map(|c| c.status.clone())
            .unwrap_or_default()
    }

    async fn write(&self, id: &CertId, intent: &Intent) -> Result<(), KubeError> {
        let status = desired(self.current(id), intent, SystemTime::now());
        let body = serde_json::to_value(status.merge_patch()).map_err(|e| KubeError::Decode {
            what: format!("the status of {id}"),
            message: e.to_string(),
        })?;
        let target = &intent.target;
        let path = format!(
            "{}/status",
            cm_path(&target.namespace, "certificates", Some(&target.name))?
        );
        match self.client.merge_patch(&path, &body).await {
            Ok(written) => {
                let version = meta_str(&written, "resourceVersion").to_owned();
                lock(&self.written).insert(id.clone(), (status, version));
                Ok(())
            }
            // Deleted meanwhile.
            Err(e) if e.code() == Some(404) => {
                lock(&self.written).remove(id);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use certkeeper_engine::state::{FailureRecord, IssuedInfo};

    use super::*;

    fn target() -> Target {
        Target {
            namespace: "apps".into(),
            name: "web".into(),
            generation: 4,
            fingerprint: 7,
            verifies: false,
        }
    }

    fn at(secs: i64) -> SystemTime {
        certkeeper_core::time::from_unix(secs)
    }

    fn issued(fingerprint: u64) -> IssuedInfo {
        IssuedInfo {
            serial: "01".into(),
            not_before: 1_000,
            not_after: 100_000,
            renewal_time: Some(60_000),
            renewal_note: None,
            spec_fingerprint: fingerprint,
            issued_at: 1_000,
            warning: None,
            ca_not_after: None,
        }
    }

    fn failure(next: Option<i64>) -> FailureRecord {
        FailureRecord {
            class: FailureClass::Transient,
            message: "vault is sealed".into(),
            attempts: 2,
            first_failure: 1_500,
            last_failure: 2_000,
            next_attempt: next,
            spec_fingerprint: 7,
        }
    }

    fn condition<'s>(status: &'s CertificateStatus, t: &str) -> Option<&'s Condition> {
        status.condition(t)
    }

    #[test]
    fn ready_follows_the_state() {
        let t = target();
        let cases = [
            (Some(issued(7)), 2_000, ConditionStatus::True, "Ready"),
            (Some(issued(7)), 100_000, ConditionStatus::False, "Expired"),
            (Some(issued(6)), 2_000, ConditionStatus::False, "RequestChanged"),
            (None, 2_000, ConditionStatus::False, "DoesNotExist"),
        ];
        for (issued, now, status, reason) in cases {
            let state = CertState {
                revision: 1,
                issued,
                failure: None,
                deferred: None,
            };
            let mut s = CertificateStatus::default();
            show_state(&mut s, &state, &t, at(now));
            let ready = condition(&s, CONDITION_READY).unwrap();
            assert_eq!((ready.status, ready.reason.as_str()), (status, reason));
            assert_eq!(ready.observed_generation, 4);
            assert!(condition(&s, CONDITION_ISSUING).is_none());
        }
    }

    #[test]
    fn a_failure_shows_issuing_false_and_the_retry_state_and_success_clears_it() {
        let t = target();
        let failing = CertState {
            revision: 1,
            issued: Some(issued(7)),
            failure: Some(failure(Some(2_030))),
            deferred: None,
        };
        let mut s = CertificateStatus::default();
        show_state(&mut s, &failing, &t, at(2_000));
        let issuing = condition(&s, CONDITION_ISSUING).unwrap();
        assert_eq!(issuing.status, ConditionStatus::False);
        assert!(issuing.message.starts_with(ISSUING_FAILED), "{}", issuing.message);
        assert!(issuing.message.ends_with("vault is sealed"));
        assert_eq!(s.failed_issuance_attempts, Some(2));
        assert_eq!(s.last_failure_time.as_deref(), Some("1970-01-01T00:33:20Z"));
        let ck = s.certkeeper.clone().unwrap();
        assert_eq!(ck.failure_class, Some(FailureClass::Transient));
        assert_eq!(ck.next_attempt_time.as_deref(), Some("1970-01-01T00:33:50Z"));
        let ready = condition(&s, CONDITION_READY).unwrap().clone();
        assert!(
            ready
                .message
                .contains("the last attempt failed (transient, 2 attempts)")
        );

        // Renewed: the failure fields and Issuing go; Ready stayed True, so its time stays.
        let renewed = CertState {
            revision: 2,
            issued: Some(issued(7)),
            failure: None,
            deferred: None,
        };
        show_state(&mut s, &renewed, &t, at(3_000));
        assert!(condition(&s, CONDITION_ISSUING).is_none());
        assert_eq!((s.certkeeper.clone(), s.failed_issuance_attempts), (None, None));
        assert_eq!(s.revision, Some(2));
        assert_eq!(
            condition(&s, CONDITION_READY).unwrap().last_transition_time,
            ready.last_transition_time
        );
    }

    #[test]
    fn an_outcome_recorded_after_the_attempt_started_replaces_issuing_true() {
        let t = target();
        let mut intent = Intent::new(t.clone());
        intent.issuing = Some(("Renewing", "Renewing certificate as renewal was scheduled".into()));
        let s = desired(CertificateStatus::default(), &intent, at(2_000));
        assert_eq!(
            condition(&s, CONDITION_ISSUING).unwrap().status,
            ConditionStatus::True
        );
        assert_eq!(condition(&s, CONDITION_ISSUING).unwrap().reason, "Renewing");

        // What StatusWriter::state does to the intent: the attempt is over.
        intent.shown = Some(Shown::State(CertState {
            revision: 2,
            issued: Some(issued(7)),
            failure: None,
            deferred: None,
        }));
        intent.issuing = None;
        let s = desired(s, &intent, at(2_001));
        assert!(condition(&s, CONDITION_ISSUING).is_none());
        assert_eq!(
            condition(&s, CONDITION_READY).unwrap().status,
            ConditionStatus::True
        );
    }

    #[test]
    fn other_writers_conditions_are_kept() {
        let mut s = CertificateStatus::default();
        s.conditions.push(Condition::new(
            "Approved",
            ConditionStatus::True,
            "SomeTool",
            "",
            0,
        ));
        let mut intent = Intent::new(target());
        intent.shown = Some(Shown::State(CertState {
            revision: 1,
            issued: Some(issued(7)),
            failure: None,
            deferred: None,
        }));
        let s = desired(s, &intent, at(2_000));
        assert!(condition(&s, "Approved").is_some());
        assert!(condition(&s, CONDITION_READY).is_some());
    }

    #[test]
    fn a_waiting_note_keeps_a_served_certificates_ready_condition() {
        let waiting = Waiting {
            reason: "IssuerNotReady",
            ready_message: "Waiting for the issuer: gone".into(),
            message: "issuer apps/vault does not exist".into(),
        };
        let mut fresh = CertificateStatus::default();
        show_waiting(&mut fresh, &waiting, &target(), at(2_000));
        let ready = condition(&fresh, CONDITION_READY).unwrap();
        assert_eq!(
            (ready.status, ready.reason.as_str()),
            (ConditionStatus::False, "IssuerNotReady")
        );
        assert_eq!(
            fresh.certkeeper.clone().unwrap().failure_class,
            Some(FailureClass::Invalid)
        );

        let mut served = CertificateStatus::default();
        show_state(
            &mut served,
            &CertState {
                revision: 1,
                issued: Some(issued(7)),
                failure: None,
                deferred: None,
            },
            &target(),
            at(2_000),
        );
        show_waiting(&mut served, &waiting, &target(), at(2_001));
        assert_eq!(
            condition(&served, CONDITION_READY).unwrap().status,
            ConditionStatus::True
        );
        assert!(served.certkeeper.is_some());
    }

    #[test]
    fn the_next_private_key_is_recorded_and_cleared() {
        let mut intent = Intent::new(target());
        intent.next_private_key = Some(Some("web-x7k2p".into()));
        let s = desired(CertificateStatus::default(), &intent, at(1));
        assert_eq!(s.next_private_key_secret_name.as_deref(), Some("web-x7k2p"));
        intent.next_private_key = Some(None);
        let s = desired(s, &intent, at(2));
        assert_eq!(s.next_private_key_secret_name, None);
        let patch = serde_json::to_value(s.merge_patch()).unwrap();
        assert!(patch["status"]["nextPrivateKeySecretName"].is_null());
    }
}
