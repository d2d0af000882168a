//! One gate per issuer: a concurrency limit, a rate limit and a circuit breaker.
//!
//! The gate is what keeps thousands of certificates from storming a Vault that is down: after a
//! few consecutive transient failures the circuit opens, and from then on only one probe is let
//! through at a time (on its own backoff) while every other request is told when to come back.
//! When a probe succeeds the circuit closes and the gate reports the recovery, so the engine can
//! make every certificate that waits on a transient failure of this issuer due at once; the rate
//! limit then releases them without a burst.
//!
//! The circuit also opens at once on an issuer-wide refusal ([`Outcome::Refused`]: a 403 with a
//! freshly obtained token, a missing mount or role, see `VaultError::scope`): every certificate
//! of the issuer would get the same answer, so they wait behind one probe instead of each
//! retrying on its own. The engine, which knows how soon the waiting certificates expire, sets
//! that probe's time ([`IssuerGate::set_probe_at`]).
//!
//! The breaker and the bucket are plain state machines over an injected `now`, tested without a
//! runtime; [`IssuerGate`] puts them behind a mutex next to a semaphore.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use certkeeper_core::FailureClass;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Limits for one issuer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GateConfig {
    /// Requests in flight to this issuer at once.
    pub concurrency: usize,
    /// Sustained requests per second.
    pub rate_per_sec: f64,
    /// Requests allowed back to back after a quiet period.
    pub burst: u32,
    /// Consecutive transient failures that open the circuit.
    pub open_after: u32,
    /// First and last delay between probes while the circuit is open. The cap bounds how long
    /// a recovered Vault waits to be noticed; 2 s keeps an outage at half a request per second.
    pub probe_min: Duration,
    pub probe_max: Duration,
}

impl Default for GateConfig {
    fn default() -> Self {
        GateConfig {
            concurrency: 8,
            rate_per_sec: 100.0,
            burst: 50,
            open_after: 3,
            probe_min: Duration::from_secs(1),
            probe_max: Duration::from_secs(2),
        }
    }
}

/// A token bucket: `rate` tokens per second up to `burst`. The rate adapts to Vault's rate
/// limits: halved on every 429 (down to [`MIN_RATE`]), raised by a fiftieth of the configured
/// rate on every success (additive increase, multiplicative decrease), so a quota below the
/// configured rate is found within a few answers and not hammered.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    max_rate: f64,
    burst: f64,
    tokens: f64,
    updated: Instant,
}

/// The slowest an issuer is ever driven after rate-limit answers: one request per two seconds.
pub const MIN_RATE: f64 = 0.5;

impl TokenBucket {
    pub fn new(rate_per_sec: f64, burst: u32, now: Instant) -> Self {
        let burst = f64::from(burst.max(1));
        let rate = rate_per_sec.max(0.001);
        TokenBucket {
            rate,
            max_rate: rate,
            burst,
            tokens: burst,
            updated: now,
        }
    }

    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Vault said 429: halve the rate and drop any saved-up burst.
    pub fn slow_down(&mut self) {
        self.rate = (self.rate / 2.0).max(MIN_RATE.min(self.max_rate));
        self.tokens = self.tokens.min(0.0);
    }

    /// A success: creep back towards the configured rate.
    pub fn speed_up(&mut self) {
        self.rate = (self.rate + self.max_rate / 50.0).min(self.max_rate);
    }

    /// Take one token, or say how long until one is available.
    pub fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.updated = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
        }
    }
}

/// Circuit state, also exported as a metric (0 closed, 1 open, 2 probing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    Closed,
    /// Requests are refused until `probe_at`, when one probe may go.
    Open,
    /// One probe is in flight.
    Probing,
}

impl CircuitState {
    pub fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::Probing => "probing",
        }
    }
}

/// What the breaker allows a caller to do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Go ahead (circuit closed).
    Pass,
    /// Go ahead as the single probe; report the outcome with `probe = true`.
    Probe,
    /// Come back at this time.
    Wait(Instant),
}

/// The outcome of a request, as far as the issuer's health is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// Vault answered 429: it is up, but we are too fast.
    RateLimited,
    Failure(FailureClass),
    /// Vault refused the issuer itself (its credentials, mount, role or CA), with this class:
    /// every request of the issuer would get the same answer.
    Refused(FailureClass),
}

impl Outcome {
    /// The outcome of a sign call: the one place a Vault answer becomes a gate outcome, for the
    /// engine's attempts and for other tools' CertificateRequests alike.
    pub fn of_sign<T>(result: &Result<T, certkeeper_vault::VaultError>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(e) if e.status() == Some(429) => Outcome::RateLimited,
            Err(e) => match (e.class(), e.scope()) {
                (
                    class @ (FailureClass::AuthRejected | FailureClass::Rejected),
                    certkeeper_core::FailureScope::Issuer,
                ) => Outcome::Refused(class),
                (class, _) => Outcome::Failure(class),
            },
        }
    }
}

/// Why a circuit is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenCause {
    /// Consecutive transient failures: Vault is down, sealed, electing or unreachable.
    Unavailable,
    /// Vault refused the issuer itself, with this class.
    Refused(FailureClass),
}

impl OpenCause {
    /// Metric label and status text.
    pub fn as_str(self) -> &'static str {
        match self {
            OpenCause::Unavailable => "unavailable",
            OpenCause::Refused(class) => class.as_str(),
        }
    }
}

/// A circuit's state for status and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitInfo {
    pub state: CircuitState,
    /// Set while the state is not closed.
    pub cause: Option<OpenCause>,
    /// When the next probe may go (meaningful while open).
    pub probe_at: Instant,
}

impl CircuitInfo {
    /// What a request the gate held back failed with: the refusal's class when Vault refuses
    /// the issuer (an issuer-wide verdict), else transient; and how to say why. The engine's
    /// attempts and other tools' CertificateRequests word it alike.
    pub fn held_back(&self) -> (FailureClass, bool, &'static str) {
        match self.cause {
            Some(OpenCause::Refused(class)) => (class, true, "refuses its requests"),
            _ => (FailureClass::Transient, false, "is unavailable"),
        }
    }
}

/// What changed when an outcome was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    None,
    Opened,
    /// The issuer answers again: waiting certificates may be released.
    Recovered,
}

/// Consecutive-failure circuit breaker with a single probe.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    open_after: u32,
    probe_min: Duration,
    probe_max: Duration,
    state: CircuitState,
    cause: Option<OpenCause>,
    consecutive: u32,
    probes_failed: u32,
    probe_at: Instant,
}

/// Until the engine sets it, a refused circuit's first probe comes this long after the refusal
/// (the engine's first probe delay).
pub const REFUSED_FIRST_PROBE: Duration = crate::hold::REFUSED_PROBE_MIN;

impl CircuitBreaker {
    pub fn new(config: &GateConfig, now: Instant) -> Self {
        CircuitBreaker {
            open_after: config.open_after.max(1),
            probe_min: config.probe_min,
            probe_max: config.probe_max.max(config.probe_min),
            state: CircuitState::Closed,
            cause: None,
            consecutive: 0,
            probes_failed: 0,
            probe_at: now,
        }
    }

    pub fn state(&self) -> CircuitState {
        self.state
    }

    pub fn info(&self) -> CircuitInfo {
        CircuitInfo {
            state: self.state,
            cause: self.cause,
            probe_at: self.probe_at,
        }
    }

    /// Moves a refused circuit's next probe (the engine's expiry-aware schedule). Ignored
    /// while closed, probing, or open for unavailability (that probe has its own backoff).
    pub fn set_probe_at(&mut self, at: Instant) {
        if self.state == CircuitState::Open && matches!(self.cause, Some(OpenCause::Refused(_))) {
            self.probe_at = at;
        }
    }

    pub fn admit(&mut self, now: Instant) -> Admission {
        match self.state {
            CircuitState::Closed => Admission::Pass,
            CircuitState::Open if now >= self.probe_at => {
                self.state = CircuitState::Probing;
                Admission::Probe
            }
            CircuitState::Open => Admission::Wait(self.probe_at),
            // The probe's own timeout bounds how long this lasts; others check back after the
            // shortest probe interval.
            CircuitState::Probing => Admission::Wait(now + self.probe_min),
        }
    }

    /// Record an outcome. Transient failures open the circuit after `open_after` in a row; an
    /// issuer-wide refusal opens it at once (one verdict about the issuer is enough); an answer
    /// about one request (a role refusing one name) proves the issuer works and closes it.
    pub fn record(&mut self, outcome: Outcome, probe: bool, now: Instant) -> Transition {
        match outcome {
            Outcome::Failure(FailureClass::Transient) => {
                if probe || self.state != CircuitState::Closed {
                    self.probes_failed = self.probes_failed.saturating_add(u32::from(probe));
                    self.reopen(now);
                    return Transition::None;
                }
                self.consecutive = self.consecutive.saturating_add(1);
                if self.consecutive >= self.open_after {
                    self.probes_failed = 0;
                    self.reopen(now);
                    Transition::Opened
                } else {
                    Transition::None
                }
            }
            Outcome::Refused(class) => {
                let was_closed = self.state == CircuitState::Closed;
                self.state = CircuitState::Open;
                self.cause = Some(OpenCause::Refused(class));
                self.consecutive = 0;
                self.probe_at = now + REFUSED_FIRST_PROBE;
                if was_closed {
                    Transition::Opened
                } else {
                    Transition::None
                }
            }
            // Vault answered: it is up, even if it said no (or "slower").
            Outcome::Success | Outcome::RateLimited | Outcome::Failure(_) => {
                let was_open = self.state != CircuitState::Closed;
                self.state = CircuitState::Closed;
                self.cause = None;
                self.consecutive = 0;
                self.probes_failed = 0;
                if was_open {
                    Transition::Recovered
                } else {
                    Transition::None
                }
            }
        }
    }

    fn reopen(&mut self, now: Instant) {
        self.state = CircuitState::Open;
        self.cause = Some(OpenCause::Unavailable);
        let factor = 1u32.checked_shl(self.probes_failed.min(16)).unwrap_or(u32::MAX);
        let delay = self.probe_min.saturating_mul(factor).min(self.probe_max);
        self.probe_at = now + delay;
    }
}

/// Permission to send one request to the issuer. Dropping it releases the concurrency slot;
/// [`Permit::finish`] also reports the outcome to the breaker.
#[derive(Debug)]
pub struct Permit {
    gate: Arc<GateInner>,
    probe: bool,
    _slot: OwnedSemaphorePermit,
}

impl Permit {
    pub fn is_probe(&self) -> bool {
        self.probe
    }

    pub fn finish(self, outcome: Outcome) -> Transition {
        let now = Instant::now();
        let transition = {
            let mut state = self.gate.lock();
            match outcome {
                Outcome::Success => state.bucket.speed_up(),
                Outcome::RateLimited => state.bucket.slow_down(),
                Outcome::Failure(_) | Outcome::Refused(_) => {}
            }
            state.breaker.record(outcome, self.probe, now)
        };
        if transition != Transition::None {
            tracing::info!(issuer = %self.gate.name, transition = ?transition, "issuer circuit changed");
        }
        transition
    }
}

/// Why a request may not go now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The circuit is open: retry at this time (the engine parks the certificate until then or
    /// until the issuer recovers, whichever is first).
    CircuitOpen(Instant),
}

#[derive(Debug)]
struct GateInner {
    name: String,
    slots: Arc<Semaphore>,
    state: Mutex<GateState>,
}

#[derive(Debug)]
struct GateState {
    bucket: TokenBucket,
    breaker: CircuitBreaker,
}

impl GateInner {
    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        // The state is plain data updated in single statements: a panic elsewhere cannot leave
        // it half-written, so a poisoned lock is still usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The gate of one issuer. Cheap to clone.
#[derive(Debug, Clone)]
pub struct IssuerGate {
    inner: Arc<GateInner>,
}

impl IssuerGate {
    pub fn new(name: impl Into<String>, config: &GateConfig) -> Self {
        let now = Instant::now();
        IssuerGate {
            inner: Arc::new(GateInner {
                name: name.into(),
                slots: Arc::new(Semaphore::new(config.concurrency.max(1))),
                state: Mutex::new(GateState {
                    bucket: TokenBucket::new(config.rate_per_sec, config.burst, now),
                    breaker: CircuitBreaker::new(config, now),
                }),
            }),
        }
    }

    pub fn circuit(&self) -> CircuitState {
        self.inner.lock().breaker.state()
    }

    pub fn circuit_info(&self) -> CircuitInfo {
        self.inner.lock().breaker.info()
    }

    /// See [`CircuitBreaker::set_probe_at`].
    pub fn set_probe_at(&self, at: Instant) {
        self.inner.lock().breaker.set_probe_at(at);
    }

    /// Whether the circuit would refuse a request now, without taking a slot, a token or the
    /// probe: lets a caller skip key generation for a request that cannot go anyway.
    pub fn refusal(&self) -> Option<Refusal> {
        let state = self.inner.lock();
        let now = Instant::now();
        match state.breaker.state {
            CircuitState::Closed => None,
            CircuitState::Open if now >= state.breaker.probe_at => None,
            CircuitState::Open => Some(Refusal::CircuitOpen(state.breaker.probe_at)),
            CircuitState::Probing => Some(Refusal::CircuitOpen(now + state.breaker.probe_min)),
        }
    }

    /// Wait for a concurrency slot and a rate token, unless the circuit refuses the request.
    pub async fn acquire(&self) -> Result<Permit, Refusal> {
        let slot = match self.inner.slots.clone().acquire_owned().await {
            Ok(slot) => slot,
            // The semaphore is never closed; treat it like an open circuit if it ever is.
            Err(_) => return Err(Refusal::CircuitOpen(Instant::now() + Duration::from_secs(1))),
        };
        loop {
            let now = Instant::now();
            let wait = {
                let mut state = self.inner.lock();
                match state.breaker.admit(now) {
                    Admission::Wait(at) => return Err(Refusal::CircuitOpen(at)),
                    admission => match state.bucket.try_take(now) {
                        Ok(()) => {
                            let probe = admission == Admission::Probe;
                            return Ok(Permit {
                                gate: self.inner.clone(),
                                probe,
                                _slot: slot,
                            });
                        }
                        Err(wait) => {
                            // Not admitted after all: give the probe back.
                            if admission == Admission::Probe {
                                state.breaker.state = CircuitState::Open;
                            }
                            wait
                        }
                    },
                }
            };
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn config() -> GateConfig {
        GateConfig {
            open_after: 3,
            probe_min: Duration::from_secs(1),
            probe_max: Duration::from_secs(30),
            ..Default::default()
        }
    }

    #[test]
    fn opens_after_consecutive_transient_failures_and_lets_one_probe_through() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(&config(), t0);
        let transient = Outcome::Failure(FailureClass::Transient);
        assert_eq!(b.record(transient, false, t0), Transition::None);
        assert_eq!(b.record(transient, false, t0), Transition::None);
        assert_eq!(b.record(transient, false, t0), Transition::Opened);
        assert_eq!(b.admit(t0), Admission::Wait(t0 + Duration::from_secs(1)));
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(b.admit(t1), Admission::Probe);
        // Only one probe at a time.
        assert!(matches!(b.admit(t1), Admission::Wait(_)));
        // Failed probe: back off 2 s, then 4 s ...
        assert_eq!(b.record(transient, true, t1), Transition::None);
        assert_eq!(b.admit(t1), Admission::Wait(t1 + Duration::from_secs(2)));
        let t2 = t1 + Duration::from_secs(2);
        assert_eq!(b.admit(t2), Admission::Probe);
        assert_eq!(b.record(Outcome::Success, true, t2), Transition::Recovered);
        assert_eq!(b.admit(t2), Admission::Pass);
    }

    #[test]
    fn an_issuer_wide_refusal_opens_at_once_and_an_answer_about_one_request_closes() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(&config(), t0);
        let refused = Outcome::Refused(FailureClass::AuthRejected);
        assert_eq!(b.record(refused, false, t0), Transition::Opened);
        let info = b.info();
        assert_eq!(info.state, CircuitState::Open);
        assert_eq!(info.cause, Some(OpenCause::Refused(FailureClass::AuthRejected)));
        assert_eq!(info.probe_at, t0 + REFUSED_FIRST_PROBE);
        // The engine moves the probe to what the waiting certificates need.
        b.set_probe_at(t0 + Duration::from_secs(7));
        assert_eq!(
            b.admit(t0 + Duration::from_secs(6)),
            Admission::Wait(t0 + Duration::from_secs(7))
        );
        assert_eq!(b.admit(t0 + Duration::from_secs(7)), Admission::Probe);
        // Probing: the schedule belongs to the probe now, not to a setter.
        b.set_probe_at(t0);
        assert_eq!(b.state(), CircuitState::Probing);
        // Refused again: still open, not a new opening.
        assert_eq!(
            b.record(refused, true, t0 + Duration::from_secs(8)),
            Transition::None
        );
        assert_eq!(b.state(), CircuitState::Open);
        // A probe whose name the role refuses proves the credentials work: released.
        let _ = b.admit(t0 + Duration::from_secs(60));
        assert_eq!(
            b.record(
                Outcome::Failure(FailureClass::Rejected),
                true,
                t0 + Duration::from_secs(60)
            ),
            Transition::Recovered
        );
        assert_eq!(b.info().cause, None);
        // A transient failure while refused turns it into an outage (fast probes).
        b.record(refused, false, t0);
        b.record(Outcome::Failure(FailureClass::Transient), false, t0);
        assert_eq!(b.info().cause, Some(OpenCause::Unavailable));
        b.set_probe_at(t0 + Duration::from_secs(3600));
        assert!(
            b.info().probe_at <= t0 + Duration::from_secs(30),
            "ignored while unavailable"
        );
    }

    #[test]
    fn answers_from_vault_do_not_open_the_circuit() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(&config(), t0);
        for class in [
            FailureClass::Rejected,
            FailureClass::AuthRejected,
            FailureClass::Invalid,
        ] {
            for _ in 0..10 {
                assert_eq!(b.record(Outcome::Failure(class), false, t0), Transition::None);
            }
        }
        assert_eq!(b.state(), CircuitState::Closed);
        // A transient streak is broken by any answer.
        let transient = Outcome::Failure(FailureClass::Transient);
        b.record(transient, false, t0);
        b.record(transient, false, t0);
        b.record(Outcome::Failure(FailureClass::Rejected), false, t0);
        assert_eq!(b.record(transient, false, t0), Transition::None);
        assert_eq!(b.state(), CircuitState::Closed);
    }

    #[test]
    fn a_probe_answered_with_a_rejection_still_proves_the_issuer_is_up() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(&config(), t0);
        for _ in 0..3 {
            b.record(Outcome::Failure(FailureClass::Transient), false, t0);
        }
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(b.admit(t1), Admission::Probe);
        assert_eq!(
            b.record(Outcome::Failure(FailureClass::Rejected), true, t1),
            Transition::Recovered
        );
    }

    #[test]
    fn rate_limits_halve_the_rate_and_successes_restore_it() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(50.0, 20, t0);
        for want in [25.0, 12.5, 6.25, 3.125, 1.5625, 0.78125, MIN_RATE, MIN_RATE] {
            bucket.slow_down();
            assert!((bucket.rate() - want).abs() < 1e-9, "{} != {want}", bucket.rate());
        }
        // The saved-up burst is gone: the next token comes at the lowered rate.
        assert!(bucket.try_take(t0).is_err());
        for _ in 0..100 {
            bucket.speed_up();
        }
        assert_eq!(bucket.rate(), 50.0);
    }

    #[test]
    fn bucket_releases_at_the_rate_after_the_burst() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(10.0, 5, t0);
        for _ in 0..5 {
            bucket.try_take(t0).unwrap();
        }
        let wait = bucket.try_take(t0).unwrap_err();
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-6, "{wait:?}");
        bucket.try_take(t0 + Duration::from_millis(100)).unwrap();
    }

    proptest! {
        /// Whatever the sequence of outcomes, probe delays stay within [probe_min, probe_max]
        /// and an open circuit never admits two probes at once.
        #[test]
        fn probe_delays_are_bounded(outcomes in proptest::collection::vec((0u8..4, any::<bool>()), 1..200)) {
            let cfg = config();
            let t0 = Instant::now();
            let mut b = CircuitBreaker::new(&cfg, t0);
            let mut now = t0;
            let mut in_flight_probe = false;
            for (kind, advance) in outcomes {
                if advance { now += Duration::from_millis(700); }
                match b.admit(now) {
                    Admission::Probe => { prop_assert!(!in_flight_probe); in_flight_probe = true; }
                    Admission::Wait(at) => {
                        prop_assert!(at > now && at <= now + cfg.probe_max);
                    }
                    Admission::Pass => {}
                }
                let outcome = match kind {
                    0 => Outcome::Success,
                    1 => Outcome::Failure(FailureClass::Rejected),
                    _ => Outcome::Failure(FailureClass::Transient),
                };
                let probe = std::mem::take(&mut in_flight_probe);
                b.record(outcome, probe, now);
            }
        }

        /// Over any window, a bucket hands out at most burst + rate * window tokens.
        #[test]
        fn bucket_never_exceeds_its_rate(steps in proptest::collection::vec(0u64..500, 1..300)) {
            let t0 = Instant::now();
            let mut bucket = TokenBucket::new(20.0, 4, t0);
            let mut now = t0;
            let mut taken = 0u32;
            for ms in steps {
                now += Duration::from_millis(ms);
                if bucket.try_take(now).is_ok() { taken += 1; }
            }
            let window = now.duration_since(t0).as_secs_f64();
            prop_assert!(f64::from(taken) <= 4.0 + 20.0 * window + 1e-6);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn gate_refuses_while_open_and_releases_after_recovery() {
        let gate = IssuerGate::new("vault-a", &config());
        for _ in 0..3 {
            let p = gate.acquire().await.unwrap();
            assert!(!p.is_probe());
            p.finish(Outcome::Failure(FailureClass::Transient));
        }
        assert_eq!(gate.circuit(), CircuitState::Open);
        let Err(Refusal::CircuitOpen(at)) = gate.acquire().await else {
            panic!("open circuit admitted a request")
        };
        tokio::time::sleep_until(at).await;
        let probe = gate.acquire().await.unwrap();
        assert!(probe.is_probe());
        assert!(
            gate.acquire().await.is_err(),
            "second request while the probe is out"
        );
        assert_eq!(probe.finish(Outcome::Success), Transition::Recovered);
        assert!(!gate.acquire().await.unwrap().is_probe());
    }
}
