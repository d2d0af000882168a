//! The engine's single driver task: a queue of due times, no timer or task per certificate.
//!
//! The driver owns every certificate's entry. It sleeps until the earliest due time (or a
//! command), starts attempts for what is due (bounded by `max_in_flight`), and applies their
//! outcomes: persist the state, compute the next time from the pure schedule, requeue. When an
//! issuer's circuit reports recovery, every certificate of that issuer waiting on a transient
//! failure becomes due at once; the issuer's gate then releases them at its rate limit.
//!
//! While an issuer's circuit is open, one of its certificates is scheduled for the gate's next
//! probe time (the "probe owner") and every other one that fails transiently is parked for
//! [`PARK_WHILE_OPEN`]: recovery releases them long before that. Without parking, every
//! certificate would come back each second only to be refused locally, and each refusal would be
//! persisted (measured: 500 certificates during a 60 s seal wrote ~490 failure records a second).
//! A parked certificate's recorded next attempt is the probe's time, which is when it can next
//! be retried; the park is only the engine's fallback wake-up.
//!
//! An issuer-wide refusal (see [`crate::hold`]) holds the issuer the same way, with the probe's
//! time following the soonest-expiring waiting certificate's expiry-aware schedule.
//!
//! The driver reads the time only from its [`Clock`] (the system's by default; tests run it on
//! tokio's paused time, see [`crate::clock`]).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use certkeeper_core::FailureClass;
use certkeeper_core::time::{UnixSeconds, from_unix, rfc3339, to_unix};

use crate::attempt::{Attempt, AttemptOutcome, Signer, VaultSigner, run_attempt};
use crate::budget::IssuanceBudget;
use crate::clock::{Clock, WallClock};
use crate::gate::Refusal;
use crate::hold::{IssuerHold, probe_time};
use crate::job::{CertId, CertJob, EngineEvent, Issued, IssuerId, IssuerRuntime, Runtime};
use crate::metrics::{CertificateSample, Metrics};
use crate::state::{
    BudgetDeferral, CertState, Decision, FailureRecord, IssueReason, IssuedInfo, Readiness, decide,
};

/// How long a certificate waiting for a change of input goes without a look anyway: references
/// to files or Secrets can change without the spec changing.
const WAIT_FOR_CHANGE_RECHECK: Duration = Duration::from_secs(600);

/// How long a certificate that failed transiently waits while its issuer's circuit is open and
/// another certificate owns the next probe. Recovery releases it at once; this is the fallback.
pub const PARK_WHILE_OPEN: Duration = Duration::from_secs(300);

/// Engine settings.
#[derive(Debug, Clone, Copy)]
pub struct EngineConfig {
    /// Attempts running at once across all issuers (each issuer's gate limits its own share).
    pub max_in_flight: usize,
    /// Re-issues of one certificate the schedule did not plan, per window, before they wait
    /// ([`crate::budget`]); `None`: no budget.
    pub issuance_budget: Option<IssuanceBudget>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_in_flight: 64,
            issuance_budget: Some(IssuanceBudget::default()),
        }
    }
}

/// A certificate's status, for the CLI, the HTTP API and metrics.
#[derive(Debug, Clone)]
pub struct CertStatus {
    pub job: Arc<CertJob>,
    pub state: CertState,
    /// Issued, unexpired and issued for the current spec.
    pub ready: bool,
    pub issuing: bool,
    /// When the engine will next act on its own (`None`: waiting for a change).
    pub next_check: Option<i64>,
}

enum Command {
    SetIssuers(Vec<IssuerRuntime>),
    /// The full set of certificates, with persisted state for ones the engine has not seen.
    SetCertificates(Vec<(Arc<CertJob>, Option<CertState>)>),
    Renew(Option<CertId>),
    Repair(CertId),
    Snapshot(oneshot::Sender<Vec<CertStatus>>),
    Holds(oneshot::Sender<Vec<(IssuerId, IssuerHold)>>),
    Summary(oneshot::Sender<Summary>),
    Shutdown(oneshot::Sender<()>),
}

/// Counts over every certificate, computed without copying any of them: cheap enough to poll.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    pub certificates: usize,
    /// Issued, unexpired and issued for the current spec.
    pub ready: usize,
    /// With a failure recorded since the last success.
    pub failing: usize,
    /// Attempts running now.
    pub issuing: usize,
}

/// Controls a running engine. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EngineHandle {
    tx: mpsc::UnboundedSender<Command>,
    metrics: Metrics,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::SetIssuers(_) => "SetIssuers",
            Command::SetCertificates(_) => "SetCertificates",
            Command::Renew(_) => "Renew",
            Command::Repair(_) => "Repair",
            Command::Snapshot(_) => "Snapshot",
            Command::Holds(_) => "Holds",
            Command::Summary(_) => "Summary",
            Command::Shutdown(_) => "Shutdown",
        })
    }
}

impl EngineHandle {
    pub fn set_issuers(&self, issuers: Vec<IssuerRuntime>) {
        let _ = self.tx.send(Command::SetIssuers(issuers));
    }

    /// The certificates to keep: jobs may come shared (`Arc<CertJob>`, as a runtime that caches
    /// what it built keeps them), so the engine holds no second copy.
    pub fn set_certificates<J: Into<Arc<CertJob>>>(&self, certs: Vec<(J, Option<CertState>)>) {
        let certs = certs
            .into_iter()
            .map(|(job, state)| (job.into(), state))
            .collect();
        let _ = self.tx.send(Command::SetCertificates(certs));
    }

    /// Issue `id` (or every certificate) now, bypassing any backoff: a renew asked for by hand.
    pub fn renew(&self, id: Option<CertId>) {
        let _ = self.tx.send(Command::Renew(id));
    }

    /// Issue `id` again because the certificate stored is no longer served where it should be
    /// (its Secret deleted or overwritten), or its inputs changed while it was failing: now,
    /// unless the issuance budget is spent ([`crate::budget`]), then when it allows.
    pub fn reissue(&self, id: CertId) {
        let _ = self.tx.send(Command::Repair(id));
    }

    pub async fn snapshot(&self) -> Vec<CertStatus> {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Command::Snapshot(tx)).is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// The issuers held by an issuer-wide refusal: what Vault said, since when, the next probe.
    pub async fn holds(&self) -> Vec<(IssuerId, IssuerHold)> {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Command::Holds(tx)).is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    pub async fn summary(&self) -> Summary {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Command::Summary(tx)).is_err() {
            return Summary::default();
        }
        rx.await.unwrap_or_default()
    }

    /// Stop starting attempts, wait for running ones to finish and persist, then stop.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Command::Shutdown(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Metrics text, certificate gauges taken from a fresh snapshot.
    pub async fn render_metrics(&self, circuits: &[(String, crate::gate::CircuitInfo)]) -> String {
        let samples: Vec<CertificateSample> = self.snapshot().await.iter().map(sample).collect();
        self.metrics.render(&samples, circuits)
    }
}

fn sample(s: &CertStatus) -> CertificateSample {
    let l = &s.job.labels;
    // Issuance's gauges count issuance failures; a failed apply (hooks, verify) has its own.
    let failure = s.state.failure.as_ref();
    let issuing = failure.filter(|f| !f.class.is_apply());
    let applying = failure.filter(|f| f.class.is_apply());
    CertificateSample {
        name: l.name.clone(),
        namespace: l.namespace.clone(),
        issuer_name: l.issuer_name.clone(),
        issuer_kind: l.issuer_kind.clone(),
        issuer_group: l.issuer_group.clone(),
        not_after: s.state.issued.as_ref().map(|i| i.not_after),
        renewal_time: s.state.issued.as_ref().and_then(|i| i.renewal_time),
        ready: Some(s.ready),
        next_attempt: issuing.and_then(|f| f.next_attempt),
        failed_attempts: issuing.map_or(0, |f| f.attempts),
        failed_applies: applying.map_or(0, |f| f.attempts),
        failure_class: failure.map(|f| f.class),
        deferred: s.state.deferred.is_some(),
        shortened: s.state.issued.as_ref().is_some_and(|i| i.warning.is_some()),
    }
}

struct Entry {
    job: Arc<CertJob>,
    state: CertState,
    renew_now: bool,
    in_flight: bool,
    /// The queue key this entry is currently filed under.
    queued: Option<SystemTime>,
    /// Signed for this fingerprint but not stored yet (the write failed): the next attempt
    /// writes it instead of signing again, while it is before its renewal time. The fingerprint
    /// is the attempt's, not the entry's: an attempt in flight when the spec changes hands back
    /// a certificate for the old spec, which must not be written.
    unwritten: Option<(u64, Box<Issued>)>,
    /// Waiting behind its issuer's probe: woken by the issuer's recovery, or at this time at the
    /// latest (its recorded next attempt shows the probe's time).
    parked_until: Option<SystemTime>,
    /// Its last failure was (or waits on) an issuer-wide verdict: released with the issuer.
    behind_issuer: bool,
    /// Issue again for [`IssueReason::Repair`] ([`EngineHandle::reissue`]).
    repair_now: bool,
    /// Why the attempt in flight was started.
    attempt_reason: Option<IssueReason>,
    /// When the budgeted issuances of the budget's window succeeded (Unix seconds; in memory:
    /// a restart starts a new window).
    reissues: Vec<certkeeper_core::time::UnixSeconds>,
    /// The serial of a superseded certificate to revoke once its successor is in use (its
    /// hooks and `verify` passed), with `revoke_superseded`.
    pending_revoke: Option<String>,
}

struct Driver<R: Runtime> {
    runtime: Arc<R>,
    /// The one source of "now" (see [`crate::clock`]).
    clock: Arc<dyn Clock>,
    /// Sends sign requests: the issuer's Vault client ([`VaultSigner`]), a fake Vault in tests.
    signer: Arc<dyn Signer>,
    metrics: Metrics,
    config: EngineConfig,
    issuers: HashMap<IssuerId, IssuerRuntime>,
    /// Boxed: the table keeps pointers, so its slack (up to half of it after growing) costs
    /// 8 bytes a slot rather than a whole entry.
    entries: HashMap<CertId, Box<Entry>>,
    queue: BTreeSet<(SystemTime, CertId)>,
    running: JoinSet<(CertId, AttemptOutcome)>,
    /// Attempts finished since freed memory was last handed back (see [`crate::memory`]).
    finished_since_trim: usize,
    /// Per issuer with an open circuit: the certificate scheduled for the next probe, and when.
    probe_owner: HashMap<IssuerId, (CertId, SystemTime)>,
    /// Issuers held by an issuer-wide refusal.
    holds: HashMap<IssuerId, IssuerHold>,
    /// States changed outside an attempt's outcome (a held issuance), persisted by the run loop
    /// in order with the outcomes' states.
    unsaved: Vec<(CertId, CertState)>,
}

/// A burst at least this large is followed by [`crate::memory::release_free_memory`] once
/// nothing is in flight.
const TRIM_AFTER_ATTEMPTS: usize = 64;

/// Start the engine on the current tokio runtime, on the system's clock.
pub fn spawn<R: Runtime>(runtime: Arc<R>, metrics: Metrics, config: EngineConfig) -> EngineHandle {
    spawn_with_clock(runtime, metrics, config, Arc::new(WallClock))
}

/// Start the engine on the current tokio runtime, reading time from `clock` (a
/// [`crate::clock::TokioClock`] lets tests drive it with tokio's paused time).
pub fn spawn_with_clock<R: Runtime>(
    runtime: Arc<R>,
    metrics: Metrics,
    config: EngineConfig,
    clock: Arc<dyn Clock>,
) -> EngineHandle {
    spawn_driver(runtime, metrics, config, clock, Arc::new(VaultSigner))
}

fn spawn_driver<R: Runtime>(
    runtime: Arc<R>,
    metrics: Metrics,
    config: EngineConfig,
    clock: Arc<dyn Clock>,
    signer: Arc<dyn Signer>,
) -> EngineHandle {
    let (tx, rx) = mpsc::unbounded_channel();
    let driver = Driver {
        runtime,
        clock,
        signer,
        metrics: metrics.clone(),
        config,
        issuers: HashMap::new(),
        entries: HashMap::new(),
        queue: BTreeSet::new(),
        running: JoinSet::new(),
        finished_since_trim: 0,
        probe_owner: HashMap::new(),
        holds: HashMap::new(),
        unsaved: Vec::new(),
    };
    tokio::spawn(driver.run(rx));
    EngineHandle { tx, metrics }
}

impl<R: Runtime> Driver<R> {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Command>) {
        let mut shutdown: Option<oneshot::Sender<()>> = None;
        loop {
            if shutdown.is_none() {
                self.start_due();
            }
            if !self.unsaved.is_empty() {
                let states = std::mem::take(&mut self.unsaved);
                if let Err(err) = self.runtime.save_states(states).await {
                    tracing::error!(error = %err, "cannot persist certificate state");
                }
            }
            if shutdown.is_some() && self.running.is_empty() {
                break;
            }
            let wake = match (shutdown.is_none(), self.queue.first()) {
                (true, Some((at, _))) => *at,
                _ => self.clock.now() + Duration::from_secs(3600),
            };
            tokio::select! {
                cmd = rx.recv(), if shutdown.is_none() => match cmd {
                    Some(Command::Shutdown(done)) => shutdown = Some(done),
                    Some(cmd) => self.command(cmd),
                    None => shutdown = Some(oneshot::channel().0),
                },
                Some(joined) = self.running.join_next(), if !self.running.is_empty() => {
                    // Apply this outcome and every other one already finished, then persist
                    // them together.
                    let mut batch = Vec::new();
                    let mut next = Some(joined);
                    while let Some(joined) = next {
                        match joined {
                            Ok((id, outcome)) => {
                                if let Some(state) = self.apply(&id, outcome) {
                                    batch.push((id, state));
                                }
                            }
                            Err(e) => tracing::error!(error = %e, "issuance task failed"),
                        }
                        next = self.running.try_join_next();
                        self.finished_since_trim += 1;
                    }
                    if let Err(err) = self.runtime.save_states(batch).await {
                        tracing::error!(error = %err, "cannot persist certificate state");
                    }
                    if self.running.is_empty() && self.finished_since_trim >= TRIM_AFTER_ATTEMPTS {
                        self.finished_since_trim = 0;
                        crate::memory::release_free_memory();
                    }
                }
                _ = self.clock.sleep_until(wake) => {}
            }
        }
        if let Some(done) = shutdown {
            let _ = done.send(());
        }
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::SetIssuers(list) => {
                self.issuers = list.into_iter().map(|i| (i.id.clone(), i)).collect();
            }
            Command::SetCertificates(list) => {
                self.set_certificates(list);
                // A (re)load frees the runtime's parsed manifests and any replaced jobs.
                crate::memory::release_free_memory();
            }
            Command::Repair(id) => {
                if let Some(e) = self.entries.get_mut(&id) {
                    e.repair_now = true;
                    e.parked_until = None;
                }
                self.reschedule(&id);
            }
            Command::Renew(target) => {
                let ids: Vec<CertId> = match target {
                    Some(id) => vec![id],
                    None => self.entries.keys().cloned().collect(),
                };
                for id in ids {
                    if let Some(e) = self.entries.get_mut(&id) {
                        e.renew_now = true;
                        e.parked_until = None;
                    }
                    self.reschedule(&id);
                }
            }
            Command::Holds(reply) => {
                let _ = reply.send(self.hold_list());
            }
            Command::Snapshot(reply) => {
                let now = self.clock.now();
                let list = self
                    .entries
                    .values()
                    .map(|e| status(e, self.holds.get(&e.job.issuer), now))
                    .collect();
                let _ = reply.send(list);
            }
            Command::Summary(reply) => {
                let now = self.clock.now_unix();
                let mut s = Summary {
                    certificates: self.entries.len(),
                    issuing: self.running.len(),
                    ..Summary::default()
                };
                for e in self.entries.values() {
                    s.ready += usize::from(is_ready(e, now));
                    s.failing += usize::from(e.state.failure.is_some());
                }
                let _ = reply.send(s);
            }
            Command::Shutdown(_) => {}
        }
    }

    fn set_certificates(&mut self, list: Vec<(Arc<CertJob>, Option<CertState>)>) {
        let mut seen = std::collections::HashSet::new();
        for (job, persisted) in list {
            let id = job.id.clone();
            seen.insert(id.clone());
            match self.entries.get_mut(&id) {
                Some(e) => {
                    if e.job.fingerprint != job.fingerprint {
                        e.unwritten = None;
                    }
                    e.job = job;
                }
                None => {
                    let entry = Entry {
                        job,
                        state: persisted.unwrap_or_default(),
                        renew_now: false,
                        in_flight: false,
                        queued: None,
                        unwritten: None,
                        parked_until: None,
                        behind_issuer: false,
                        repair_now: false,
                        attempt_reason: None,
                        reissues: Vec::new(),
                        pending_revoke: None,
                    };
                    self.entries.insert(id.clone(), Box::new(entry));
                }
            }
            self.reschedule(&id);
        }
        let gone: Vec<CertId> = self
            .entries
            .keys()
            .filter(|id| !seen.contains(*id))
            .cloned()
            .collect();
        for id in gone {
            if let Some(e) = self.entries.remove(&id)
                && let Some(at) = e.queued
            {
                self.queue.remove(&(at, id));
            }
        }
        self.replace_departed_probe_owners();
    }

    /// A held issuer whose probe owner is gone (its Certificate deleted) hands the probe to the
    /// waiting certificate that expires first, at the same time: the others stay parked.
    fn replace_departed_probe_owners(&mut self) {
        let departed: Vec<IssuerId> = self
            .holds
            .iter()
            .filter(|(_, h)| !self.entries.contains_key(&h.owner))
            .map(|(i, _)| i.clone())
            .collect();
        for issuer in departed {
            let next = self
                .entries
                .values()
                .filter(|e| e.job.issuer == issuer && e.behind_issuer)
                .min_by_key(|e| e.state.issued.as_ref().map_or(i64::MIN, |i| i.not_after))
                .map(|e| e.job.id.clone());
            let Some(hold) = self.holds.get_mut(&issuer) else {
                continue;
            };
            match next {
                Some(owner) => {
                    hold.owner = owner.clone();
                    if let Some(e) = self.entries.get_mut(&owner) {
                        e.parked_until = None;
                    }
                    self.reschedule(&owner);
                }
                None => {
                    self.holds.remove(&issuer);
                }
            }
        }
    }

    /// File the entry under its next due time, from the pure decision.
    fn reschedule(&mut self, id: &CertId) {
        let Some(e) = self.entries.get_mut(id) else { return };
        if let Some(at) = e.queued.take() {
            self.queue.remove(&(at, id.clone()));
        }
        if e.in_flight {
            return;
        }
        let now = self.clock.now();
        let decision = decision_of(e, now);
        let mut held = None;
        let at = match (e.parked_until, decision) {
            (_, Decision::Issue(_)) if e.renew_now => now,
            // Automatic renewal disabled: nothing is filed until the spec changes or a renewal
            // is requested (both reschedule).
            (_, Decision::Idle) => return,
            // A hook retry is local: no issuer's probe to wait behind.
            (_, Decision::Apply) => now,
            (Some(parked), _) => parked,
            (None, Decision::Issue(reason)) => match budget_hold(self.config.issuance_budget, e, reason, now)
            {
                Some(until) => {
                    held = Some((reason, until));
                    until
                }
                None => now,
            },
            (None, Decision::WaitUntil(at)) => at,
            (None, Decision::WaitForChange) => now + WAIT_FOR_CHANGE_RECHECK,
        };
        e.queued = Some(at);
        self.queue.insert((at, id.clone()));
        if let Some((reason, until)) = held {
            self.note_deferral(id, reason, until);
        }
    }

    /// Records that the issuance budget holds `id`'s issuance for `reason` until `until`: in
    /// its state (status), the metric and one event, once per deferral.
    fn note_deferral(&mut self, id: &CertId, reason: IssueReason, until: SystemTime) {
        let Some(budget) = self.config.issuance_budget else {
            return;
        };
        let Some(e) = self.entries.get_mut(id) else {
            return;
        };
        let deferral = BudgetDeferral {
            until: to_unix(until),
            reason: reason.as_str().to_owned(),
            budget: budget.text(),
        };
        if e.state.deferred.as_deref() == Some(&deferral) {
            return;
        }
        let first = e.state.deferred.is_none();
        e.state.deferred = Some(Box::new(deferral.clone()));
        if first {
            self.metrics.record_deferred_issuance();
            self.runtime
                .event(&e.job, EngineEvent::IssuanceDeferred(deferral));
        }
        self.unsaved.push((id.clone(), e.state.clone()));
    }

    fn start_due(&mut self) {
        let now = self.clock.now();
        while self.running.len() < self.config.max_in_flight {
            let Some((at, id)) = self.queue.first().cloned() else {
                break;
            };
            if at > now {
                break;
            }
            self.queue.pop_first();
            let Some(e) = self.entries.get_mut(&id) else {
                continue;
            };
            e.queued = None;
            let parked = e.parked_until.take().is_some();
            let reason = match decision_of(e, now) {
                Decision::Issue(r) => r,
                Decision::Apply => {
                    // Only the hooks (and the verify check) again: no gate, nothing sent to Vault.
                    e.in_flight = true;
                    let (job, runtime) = (e.job.clone(), self.runtime.clone());
                    self.running.spawn(async move {
                        let id = job.id.clone();
                        (id, crate::attempt::run_apply(job, runtime).await)
                    });
                    continue;
                }
                // A wait-for-change recheck, or a park's fallback wake-up: try once more, as a
                // retry (an open circuit refuses it locally).
                Decision::WaitForChange => crate::state::IssueReason::Retry,
                Decision::WaitUntil(_) if parked => crate::state::IssueReason::Retry,
                Decision::WaitUntil(_) | Decision::Idle => {
                    self.reschedule(&id);
                    continue;
                }
            };
            if !parked && budget_hold(self.config.issuance_budget, e, reason, now).is_some() {
                // Held since it was filed (woken for another reason): filed again.
                self.reschedule(&id);
                continue;
            }
            let Some(issuer) = self.issuers.get(&e.job.issuer).cloned() else {
                let message = format!("issuer {} is not configured or not valid", e.job.issuer);
                self.fail_locally(&id, FailureClass::Invalid, message);
                continue;
            };
            // A renew asked by hand bypasses every backoff, the issuer's hold included: it is
            // the issuer's next probe (the gate still lets one probe through at a time).
            if e.renew_now
                && let Some(hold) = self.holds.get_mut(&e.job.issuer)
            {
                hold.owner = id.clone();
                hold.probe_at = now;
                issuer.gate.set_probe_at(tokio::time::Instant::now());
            }
            e.renew_now = false;
            e.repair_now = false;
            e.attempt_reason = Some(reason);
            e.state.deferred = None;
            e.in_flight = true;
            self.runtime.event(&e.job, EngineEvent::Issuing { reason });
            let fingerprint = e.job.fingerprint;
            let unwritten = e
                .unwritten
                .take()
                .filter(|(fp, issued)| {
                    *fp == fingerprint
                        && issued.revision == e.state.revision + 1
                        && issued_info(&e.job, &issued.certificate, now)
                            .renewal_time
                            .is_none_or(|renewal| to_unix(now) < renewal)
                })
                .map(|(_, issued)| issued);
            let attempt = Attempt {
                job: e.job.clone(),
                issuer,
                revision: e.state.revision + 1,
                unwritten,
                clock: self.clock.clone(),
                signer: self.signer.clone(),
            };
            let runtime = self.runtime.clone();
            self.running.spawn(async move {
                let id = attempt.job.id.clone();
                (id, run_attempt(attempt, runtime).await)
            });
        }
    }

    fn fail_locally(&mut self, id: &CertId, class: FailureClass, message: String) {
        if let Some(e) = self.entries.get_mut(id) {
            let record = failure_record(&e.state, &e.job, class, message, None, self.clock.now());
            e.state.failure = Some(record);
        }
        self.reschedule(id);
    }

    /// Apply an attempt's outcome; returns the state to persist.
    fn apply(&mut self, id: &CertId, outcome: AttemptOutcome) -> Option<CertState> {
        let now = self.clock.now();
        let e = self.entries.get_mut(id)?;
        e.in_flight = false;
        e.parked_until = None;
        let issuer = e.job.issuer.clone();
        let release = match outcome {
            AttemptOutcome::Applied(result) => {
                let record = match result {
                    Ok(()) => {
                        if let Some(f) = &e.state.failure {
                            tracing::info!(certificate = %id, failed_attempts = f.attempts,
                                           "certificate in use: its hooks succeeded after failing");
                        }
                        if let Some(serial) = e.pending_revoke.take() {
                            revoke(&self.issuers, &self.metrics, &e.job, serial);
                        }
                        None
                    }
                    Err(err) => Some(failure_record(
                        &e.state,
                        &e.job,
                        err.class,
                        err.message,
                        None,
                        now,
                    )),
                };
                e.state.failure = record;
                if let Some(f) = &e.state.failure {
                    self.runtime.event(&e.job, failed_event(f));
                }
                false
            }
            AttemptOutcome::Issued {
                info,
                recovered,
                apply_failure,
            } => {
                if let Some(budget) = self.config.issuance_budget {
                    budget.trim(&mut e.reissues, now);
                    if e.attempt_reason.is_some_and(IssueReason::budgeted) {
                        e.reissues.push(to_unix(now));
                    }
                }
                e.state.deferred = None;
                e.unwritten = None;
                e.behind_issuer = false;
                self.metrics.record_attempt(&issuer, None);
                e.state.revision += 1;
                // A role capping the TTL below `duration` caps every renewal alike: said once per
                // certificate and spec (the event, hence one log line and one Kubernetes Event),
                // then only kept in the state (status) and the shortened-certificate metric.
                let reported = e.state.issued.as_ref().is_some_and(|prev| {
                    prev.warning.is_some() && prev.spec_fingerprint == info.spec_fingerprint
                });
                let event = EngineEvent::Issued {
                    revision: e.state.revision,
                    serial: info.serial.clone(),
                    not_after: info.not_after,
                    warning: info.warning.clone().filter(|_| !reported),
                };
                let superseded = e
                    .state
                    .issued
                    .as_ref()
                    .map(|prev| prev.serial.clone())
                    .filter(|prev| e.job.revoke_superseded && *prev != info.serial);
                e.state.issued = Some(info);
                e.state.failure = None;
                self.runtime.event(&e.job, event);
                // The superseded certificate is revoked once this one is in use; until then
                // (its hooks or verify failing) it may still be what is served.
                match (superseded, &apply_failure) {
                    (Some(serial), None) => revoke(&self.issuers, &self.metrics, &e.job, serial),
                    (Some(serial), Some(_)) => e.pending_revoke = Some(serial),
                    (None, _) => {}
                }
                // Stored but not in use: a new streak of apply failures (the issuance's own
                // streak, if any, ended with this certificate).
                if let Some(err) = apply_failure {
                    let record = failure_record(&e.state, &e.job, err.class, err.message, None, now);
                    self.runtime.event(&e.job, failed_event(&record));
                    e.state.failure = Some(record);
                }
                // A success also ends a hold when something else closed the circuit first (a
                // CertificateRequest signed through the same gate): its waiters are released.
                recovered || self.holds.contains_key(&issuer) || self.probe_owner.contains_key(&issuer)
            }
            AttemptOutcome::Failed {
                class,
                message,
                retry_after,
                refused_locally,
                issuer_wide,
                recovered,
                unwritten,
            } => {
                e.unwritten = unwritten;
                e.behind_issuer = issuer_wide;
                if !refused_locally {
                    self.metrics.record_attempt(&issuer, Some(class));
                }
                let mut record = failure_record(&e.state, &e.job, class, message, retry_after, now);
                if refused_locally {
                    // Nothing reached Vault: the certificate waits for the issuer's recovery,
                    // its own backoff does not grow.
                    record.attempts = record.attempts.saturating_sub(1).max(1);
                }
                e.state.failure = Some(record);
                if issuer_wide {
                    self.hold(&issuer, id, refused_locally, now);
                } else if class == FailureClass::Transient {
                    self.holds.remove(&issuer);
                    let gate = self.issuers.get(&issuer).map(|i| i.gate.clone());
                    let e = self.entries.get_mut(id)?;
                    if let Some(f) = e.state.failure.as_mut() {
                        let (next, parked) = next_while_open(
                            &mut self.probe_owner,
                            (&issuer, id),
                            gate.and_then(|g| g.refusal()),
                            f.next_attempt.unwrap_or(to_unix(now)),
                            refused_locally,
                            now,
                        );
                        f.next_attempt = Some(next);
                        e.parked_until = parked;
                    }
                }
                let e = self.entries.get(id)?;
                if let Some(f) = &e.state.failure {
                    self.runtime.event(&e.job, failed_event(f));
                }
                recovered
            }
        };
        let state = self.entries.get(id)?.state.clone();
        self.reschedule(id);
        if release {
            self.release_waiting(&issuer, now);
        }
        Some(state)
    }

    /// A certificate of `issuer` failed on (or, `refused_locally`, waits on) an issuer-wide
    /// refusal: the issuer is held, one certificate carries the next probe at the time the
    /// soonest-expiring waiting certificate needs it ([`probe_time`]), the rest are parked and
    /// show the probe's time.
    fn hold(&mut self, issuer: &IssuerId, id: &CertId, refused_locally: bool, now: SystemTime) {
        let Some(failure) = self.entries.get(id).and_then(|e| e.state.failure.clone()) else {
            return;
        };
        let waiting = self.entries.values().filter(|e| {
            &e.job.issuer == issuer && (e.behind_issuer || e.job.id == *id) && e.state.failure.is_some()
        });
        let not_afters: Vec<Option<UnixSeconds>> = waiting
            .map(|e| e.state.issued.as_ref().map(|i| i.not_after))
            .collect();
        let existing = self.holds.get(issuer).cloned();
        // The first refusal, or a hold the gate knows and the engine does not (restarted, or the
        // verdict came through another path): a new record; a local refusal counts no probe.
        let start = || IssuerHold {
            class: failure.class,
            message: failure.message.clone(),
            since: now,
            probes: 1,
            probe_at: probe_time(failure.class, 1, not_afters.clone(), now, unit_random(issuer, 1)),
            owner: id.clone(),
        };
        let hold = match (existing, refused_locally) {
            // Vault refused the probe: one more step of the schedule.
            (Some(mut hold), false) if hold.owner == *id || hold.probe_at <= now + Duration::from_secs(1) => {
                hold.probes = hold.probes.saturating_add(1);
                hold.message = failure.message.clone();
                hold.probe_at = probe_time(
                    hold.class,
                    hold.probes,
                    not_afters.clone(),
                    now,
                    unit_random(issuer, hold.probes),
                );
                hold.owner = id.clone();
                hold
            }
            // A request already under way when the issuer was first refused: the same verdict,
            // not a probe; it waits with the others.
            (Some(hold), false) => hold,
            (None, _) => start(),
            // Refused by the gate: this certificate joins the waiters; the probe moves earlier
            // if it is the most urgent one now.
            (Some(mut hold), true) => {
                let own = probe_time(
                    hold.class,
                    hold.probes,
                    [self
                        .entries
                        .get(id)
                        .and_then(|e| e.state.issued.as_ref().map(|i| i.not_after))],
                    now,
                    unit_random(issuer, hold.probes),
                );
                if own < hold.probe_at || (hold.owner == *id && hold.probe_at <= now) {
                    hold.probe_at = own.max(now + Duration::from_secs(1));
                    hold.owner = id.clone();
                }
                hold
            }
        };
        if let Some(gate) = self.issuers.get(issuer).map(|i| &i.gate) {
            let wait = hold.probe_at.duration_since(now).unwrap_or(Duration::ZERO);
            gate.set_probe_at(tokio::time::Instant::now() + wait);
        }
        let message = hold.waiting_message(issuer);
        let probe_at = probe_second(hold.probe_at);
        let is_owner = hold.owner == *id;
        if let Some(e) = self.entries.get_mut(id) {
            if let Some(f) = e.state.failure.as_mut() {
                f.next_attempt = Some(probe_at);
                f.message = if refused_locally {
                    message
                } else {
                    format!(
                        "{}; the issuer's certificates wait for its next probe at {}",
                        f.message,
                        rfc3339(hold.probe_at)
                    )
                };
            }
            // The probe's pace already follows the most urgent waiting certificate; the park
            // is only a fallback (a departed owner is replaced in `set_certificates`).
            e.parked_until = (!is_owner).then(|| now + PARK_WHILE_OPEN);
        }
        if !refused_locally {
            tracing::info!(issuer = %issuer, class = %hold.class, probes = hold.probes,
                           next_probe = %rfc3339(hold.probe_at),
                           "issuer refused; its certificates wait for the next probe");
        }
        self.holds.insert(issuer.clone(), hold);
    }

    /// The issuer answers again: everything of it that waits on a transient failure or on an
    /// issuer-wide refusal is due now.
    fn release_waiting(&mut self, issuer: &IssuerId, now: SystemTime) {
        self.probe_owner.remove(issuer);
        if let Some(hold) = self.holds.remove(issuer) {
            tracing::info!(issuer = %issuer, class = %hold.class, probes = hold.probes,
                           refused_for_secs = now.duration_since(hold.since).unwrap_or_default().as_secs(),
                           "issuer no longer refused");
        }
        let ids: Vec<CertId> = self
            .entries
            .iter()
            .filter(|(_, e)| {
                &e.job.issuer == issuer
                    && !e.in_flight
                    && e.state
                        .failure
                        .as_ref()
                        .is_some_and(|f| f.class == FailureClass::Transient || e.behind_issuer)
            })
            .map(|(id, _)| id.clone())
            .collect();
        tracing::info!(issuer = %issuer, released = ids.len(), "issuer recovered; releasing waiting certificates");
        for id in ids {
            if let Some(e) = self.entries.get_mut(&id) {
                e.parked_until = None;
                e.behind_issuer = false;
                if let Some(f) = e.state.failure.as_mut() {
                    f.next_attempt = Some(to_unix(now));
                }
            }
            self.reschedule(&id);
        }
    }

    /// The issuers held by a refusal, for status.
    fn hold_list(&self) -> Vec<(IssuerId, IssuerHold)> {
        let mut list: Vec<_> = self.holds.iter().map(|(i, h)| (i.clone(), h.clone())).collect();
        list.sort_by(|a, b| a.0.cmp(&b.0));
        list
    }
}

/// The next attempt of a certificate that just failed transiently (`scheduled` by its own
/// backoff), given its issuer's circuit, and how long it is parked: closed, the schedule stands
/// (or, for an attempt the gate refused while it was still open, now: the issuer recovered
/// meanwhile); open, the certificate owns the next probe if nobody else does, and is parked
/// otherwise, its next attempt shown as the probe's time (it goes when the probe succeeds).
fn next_while_open(
    owners: &mut HashMap<IssuerId, (CertId, SystemTime)>,
    (issuer, id): (&IssuerId, &CertId),
    refusal: Option<Refusal>,
    scheduled: UnixSeconds,
    refused_locally: bool,
    now: SystemTime,
) -> (UnixSeconds, Option<SystemTime>) {
    let Some(Refusal::CircuitOpen(probe)) = refusal else {
        return (if refused_locally { to_unix(now) } else { scheduled }, None);
    };
    let probe_at = probe_second(now + probe.saturating_duration_since(tokio::time::Instant::now()));
    match owners.get(issuer) {
        Some((owner, at)) if owner != id && *at + Duration::from_secs(1) >= now => {
            (probe_at, Some((now + PARK_WHILE_OPEN).max(from_unix(scheduled))))
        }
        _ => {
            owners.insert(issuer.clone(), (id.clone(), from_unix(probe_at)));
            (probe_at, None)
        }
    }
}

/// A probe's time as a certificate's next attempt: whole seconds, rounded up (due before the
/// gate's probe time, it would only be refused again).
fn probe_second(probe_at: SystemTime) -> UnixSeconds {
    to_unix(probe_at + Duration::from_millis(999))
}

/// The event of a failure just recorded.
fn failed_event(f: &FailureRecord) -> EngineEvent {
    EngineEvent::Failed {
        class: f.class,
        message: f.message.clone(),
        attempts: f.attempts,
        next_attempt: f.next_attempt,
    }
}

/// The failure record after one more failed attempt, with its next attempt from the schedule.
fn failure_record(
    state: &CertState,
    job: &CertJob,
    class: FailureClass,
    message: String,
    retry_after: Option<Duration>,
    now: SystemTime,
) -> FailureRecord {
    let previous = state
        .failure
        .as_ref()
        .filter(|f| f.spec_fingerprint == job.fingerprint);
    let attempts = previous.map_or(0, |f| f.attempts).saturating_add(1);
    let input = certkeeper_core::schedule::RetryInput {
        class,
        attempts,
        failed_at: now,
        current_not_after: state.issued.as_ref().map(|i| from_unix(i.not_after)),
        retry_after,
        unit_random: unit_random(&job.id, attempts),
    };
    FailureRecord {
        class,
        message,
        attempts,
        first_failure: previous.map_or(to_unix(now), |f| f.first_failure),
        last_failure: to_unix(now),
        next_attempt: certkeeper_core::schedule::next_attempt(&input).map(to_unix),
        spec_fingerprint: job.fingerprint,
    }
}

/// Jitter source: uniform enough, and different per certificate and attempt.
fn unit_random(id: &str, attempt: u32) -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write(id.as_bytes());
    h.write_u32(attempt);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Issued, unexpired and issued for the current spec.
/// Revokes `serial`, a superseded certificate of `job`, through its issuer's client, in the
/// background: best effort (logged and counted), never a failure of the certificate.
fn revoke(issuers: &HashMap<IssuerId, IssuerRuntime>, metrics: &Metrics, job: &CertJob, serial: String) {
    if let Some(issuer) = issuers.get(&job.issuer) {
        revoke_certificate(issuer, metrics, &job.id, serial, "superseded");
    }
}

/// Revokes `serial`, a certificate of `id` issued by `issuer`, in the background: best effort,
/// logged and counted (`certkeeper_revocations_total`), never a failure of the certificate.
/// `why` says which certificate it is (`superseded`, `deleted`).
pub fn revoke_certificate(
    issuer: &IssuerRuntime,
    metrics: &Metrics,
    id: &CertId,
    serial: String,
    why: &'static str,
) {
    let (issuer, metrics, id) = (issuer.clone(), metrics.clone(), id.clone());
    tokio::spawn(async move {
        match issuer.client.revoke_certificate(&issuer.path, &serial).await {
            Ok(()) => {
                metrics.record_revocation(&issuer.id, None);
                tracing::info!(certificate = %id, serial, why, "revoked the certificate");
            }
            Err(e) => {
                metrics.record_revocation(&issuer.id, Some(e.class()));
                tracing::warn!(certificate = %id, serial, why, error = %e, "cannot revoke the certificate");
            }
        }
    });
}

/// What to do with `e` now: the pure decision, with a repair asked for
/// ([`EngineHandle::reissue`]) turning a wait into an issuance for [`IssueReason::Repair`].
fn decision_of(e: &Entry, now: SystemTime) -> Decision {
    match decide(&e.state, e.job.fingerprint, now, e.renew_now) {
        Decision::Issue(reason) => Decision::Issue(reason),
        _ if e.repair_now => Decision::Issue(IssueReason::Repair),
        other => other,
    }
}

/// When the issuance budget lets an issuance of `e` for `reason` go, if not now: only
/// budgeted reasons ([`IssueReason::budgeted`]) and never a renew asked for by hand.
fn budget_hold(
    budget: Option<IssuanceBudget>,
    e: &Entry,
    reason: IssueReason,
    now: SystemTime,
) -> Option<SystemTime> {
    if e.renew_now || !reason.budgeted() {
        return None;
    }
    let until = budget?.deferred_until(&e.reissues, now)?;
    // Never past the served certificate's renewal point (or its expiry, with renewal
    // disabled): it is issued then, whatever the budget.
    let renews = e
        .state
        .issued
        .as_ref()
        .map(|i| from_unix(i.renewal_time.unwrap_or(i.not_after)));
    match renews {
        Some(renews) if renews <= now => None,
        Some(renews) => Some(until.min(renews)),
        None => Some(until),
    }
}

fn is_ready(e: &Entry, now_unix: i64) -> bool {
    Readiness::of(e.state.issued.as_ref(), e.job.fingerprint, now_unix).is_ready()
}

/// A certificate's status; one waiting behind its issuer's hold shows the hold's current probe
/// time (the recorded one was current when it parked: later probes move it in memory only, not
/// by rewriting every waiting certificate's state at every probe).
fn status(e: &Entry, hold: Option<&IssuerHold>, now: SystemTime) -> CertStatus {
    let mut state = e.state.clone();
    if let (true, Some(hold), Some(failure)) = (e.behind_issuer, hold, state.failure.as_mut()) {
        failure.next_attempt = Some(probe_second(hold.probe_at));
    }
    CertStatus {
        job: e.job.clone(),
        state,
        ready: is_ready(e, to_unix(now)),
        issuing: e.in_flight,
        next_check: e.queued.map(to_unix),
    }
}

/// When `job`'s certificate valid from `not_before` to `not_after` renews: the one call of the
/// schedule's [`plan_renewal`](certkeeper_core::schedule::plan_renewal) for both runtimes
/// (issuance here, a restart's recomputation in the controller, adoption).
pub fn planned_renewal(
    job: &CertJob,
    not_before: SystemTime,
    not_after: SystemTime,
) -> (Option<UnixSeconds>, Option<crate::state::RenewalNote>) {
    let plan = certkeeper_core::schedule::plan_renewal(not_before, not_after, &job.renewal, &job.id);
    if let certkeeper_core::schedule::Renewal::Forced { .. } = plan {
        tracing::warn!(
            certificate = %job.id,
            note = plan.note().unwrap_or_default(),
            "no renewal window opens before the latest safe renewal point; renewing there anyway"
        );
    }
    crate::state::renewal_fields(plan)
}

/// Convenience for tests and runtimes: the issued info for a verified certificate.
pub(crate) fn issued_info(
    job: &CertJob,
    cert: &certkeeper_core::pki::IssuedCertificate,
    now: SystemTime,
) -> IssuedInfo {
    let (renewal_time, renewal_note) = planned_renewal(job, cert.not_before, cert.not_after);
    let shortened = cert.shortened.map(|d| {
        format!(
            "Vault issued a certificate {}s shorter than requested (TTL capped)",
            d.as_secs()
        )
    });
    let ca_expiring = ca_expiry_warning(job, cert, renewal_time);
    let warning = match (shortened, ca_expiring) {
        (Some(a), Some(b)) => Some(format!("{a}; {b}")),
        (a, b) => a.or(b),
    };
    IssuedInfo {
        serial: cert.serial.clone(),
        not_before: to_unix(cert.not_before),
        not_after: to_unix(cert.not_after),
        renewal_time,
        renewal_note,
        spec_fingerprint: job.fingerprint,
        issued_at: to_unix(now),
        warning,
        ca_not_after: cert.issuer_not_after.map(to_unix),
    }
}

/// Issuer health beyond login: the issuing CA expires before a certificate of the configured
/// duration, renewed at its next renewal point, could be issued in full. Said at this issuance,
/// while renewals still work: from then on Vault caps them at the CA's expiry or refuses them
/// (its `leaf_not_after_behavior`).
fn ca_expiry_warning(
    job: &CertJob,
    cert: &certkeeper_core::pki::IssuedCertificate,
    renewal_time: Option<UnixSeconds>,
) -> Option<String> {
    let ca_not_after = cert.issuer_not_after?;
    let renews = renewal_time.map_or(cert.not_after, from_unix);
    let needed = renews + job.duration;
    (ca_not_after < needed).then(|| {
        format!(
            "the issuing CA expires at {}, before a certificate of duration {} renewed at {} could be issued in full: renew or rotate the CA",
            rfc3339(ca_not_after),
            certkeeper_core::spec::format_go_duration(job.duration),
            rfc3339(renews)
        )
    })
}

/// The driver under tokio's paused time: parking, probing and applying outcomes.
#[cfg(test)]
mod scheduling_tests;

#[cfg(test)]
mod tests {
    use super::*;

    /// Ids of Issuer "ns/<issuer>" and Certificate "ns/<cert>".
    fn ids(issuer: &str, cert: &str) -> (IssuerId, CertId) {
        (
            IssuerId::new(certkeeper_core::spec::IssuerKind::Issuer, "ns", issuer),
            CertId::new("ns", cert),
        )
    }

    /// Issuer health: an issuing CA that expires before the next renewal could be issued for
    /// the full duration is said at this issuance (status warning), with the times involved;
    /// one that outlives it is not; both record the CA's expiry.
    #[test]
    fn an_issuing_ca_expiring_before_a_full_renewal_is_said_at_issuance() {
        let now = certkeeper_core::time::from_unix(1_800_000_000);
        let hour = Duration::from_secs(3600);
        let job = CertJob {
            id: CertId::new("ns", "web"),
            issuer: IssuerId::new(certkeeper_core::spec::IssuerKind::Issuer, "ns", "vault"),
            fingerprint: 1,
            csr: certkeeper_core::pki::CsrRequest::default(),
            key_algorithm: certkeeper_core::pki::KeyAlgorithm::Ecdsa(256),
            key_encoding: certkeeper_core::pki::KeyEncoding::Pkcs8,
            rotate_key: true,
            duration: 24 * hour,
            renewal: certkeeper_core::schedule::RenewalPolicy::default(),
            labels: crate::job::JobLabels::default(),
            revoke_superseded: false,
            revoke_deleted: false,
        };
        let cert = |ca_not_after: SystemTime| certkeeper_core::pki::IssuedCertificate {
            leaf_pem: String::new(),
            chain: Vec::new(),
            root: None,
            not_before: now,
            not_after: now + 24 * hour,
            serial: "01".into(),
            common_name: None,
            dns_names: Vec::new(),
            ip_addresses: Vec::new(),
            uris: Vec::new(),
            email_addresses: Vec::new(),
            other_names: Vec::new(),
            issuer_common_name: None,
            shortened: None,
            issuer_not_after: Some(ca_not_after),
        };
        // Renewed at about 16 h: a full 24 h certificate then needs the CA until about 40 h.
        let healthy = issued_info(&job, &cert(now + 100 * hour), now);
        assert_eq!(healthy.warning, None);
        assert_eq!(healthy.ca_not_after, Some(to_unix(now + 100 * hour)));
        let expiring = issued_info(&job, &cert(now + 30 * hour), now);
        let warning = expiring.warning.unwrap();
        assert!(
            warning.starts_with(&format!(
                "the issuing CA expires at {}, before a certificate of duration 24h0m0s renewed at ",
                rfc3339(now + 30 * hour)
            )),
            "{warning}"
        );
    }

    #[test]
    fn one_certificate_owns_the_probe_and_the_rest_park() {
        let now = SystemTime::now();
        let mut owners = HashMap::new();
        let open = || {
            Some(Refusal::CircuitOpen(
                tokio::time::Instant::now() + Duration::from_secs(2),
            ))
        };
        let scheduled = to_unix(now) + 1;
        let (issuer, a) = ids("v", "a");
        let (_, b) = ids("v", "b");
        // The first failure while open takes the probe, at the gate's probe time (rounded up).
        let (at_a, parked_a) = next_while_open(&mut owners, (&issuer, &a), open(), scheduled, true, now);
        assert!((to_unix(now) + 2..=to_unix(now) + 3).contains(&at_a), "{at_a}");
        assert_eq!(parked_a, None);
        // The next one parks, and shows the probe's time as its next attempt (the truth: it
        // goes when the probe succeeds), not the park's.
        let (at_b, parked_b) = next_while_open(&mut owners, (&issuer, &b), open(), scheduled, true, now);
        assert_eq!(at_b, at_a);
        assert_eq!(parked_b, Some(now + PARK_WHILE_OPEN));
        // The owner coming back refused keeps the probe.
        let later = now + Duration::from_secs(3);
        let (again, parked) = next_while_open(&mut owners, (&issuer, &a), open(), scheduled, true, later);
        assert!(again >= to_unix(later) + 2 && again < to_unix(later + PARK_WHILE_OPEN));
        assert_eq!(parked, None);
        // An owner that never came back (stale by more than a second) is replaced.
        let much_later = now + Duration::from_secs(60);
        let (_, parked) = next_while_open(&mut owners, (&issuer, &b), open(), scheduled, true, much_later);
        assert_eq!(parked, None);
        assert_eq!(owners[&issuer].0, b);
        // Another issuer has its own owner.
        let (other, c) = ids("ClusterIssuer/w", "ns/c");
        let (_, parked_c) = next_while_open(&mut owners, (&other, &c), open(), scheduled, false, now);
        assert_eq!(parked_c, None);
    }

    #[test]
    fn closed_circuit_keeps_the_schedule_and_retries_refusals_at_once() {
        let now = SystemTime::now();
        let mut owners = HashMap::new();
        let (issuer, a) = ids("v", "a");
        let scheduled = to_unix(now) + 7;
        assert_eq!(
            next_while_open(&mut owners, (&issuer, &a), None, scheduled, false, now),
            (scheduled, None)
        );
        // Refused while open, but the circuit closed before the outcome was applied.
        assert_eq!(
            next_while_open(&mut owners, (&issuer, &a), None, scheduled, true, now),
            (to_unix(now), None)
        );
        assert!(owners.is_empty());
    }
}
