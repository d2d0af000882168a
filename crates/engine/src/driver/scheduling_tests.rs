//! The driver under tokio's paused time: parking behind an issuer's probe, the probe's pace, and
//! what an attempt's outcome schedules next.
//!
//! The engine runs on a [`TokioClock`] starting at a fixed wall-clock time, so every timer fires
//! at exactly the wall-clock second it was set for and nothing really sleeps. Vault is a
//! [`FakeVault`] behind the engine's sign seam: it answers at once (the circuit sees each answer
//! before the next request goes, as with one request in flight), refusing the issuer (403),
//! unavailable (503) or signing with a local key; the issuer's gate is the real one.
#![allow(clippy::unwrap_used)] // tests state their expectations by unwrapping

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use certkeeper_core::pki::{CsrRequest, KeyAlgorithm, KeyEncoding, PrivateKey};
use certkeeper_core::schedule::{
    AutomaticRenewal, RenewalPolicy, RenewalWindow, RenewalWindows, RetryInput, latest_safe_point,
    next_attempt, plan_renewal, renewal_time,
};
use certkeeper_core::time::{UnixSeconds, from_unix, to_unix};
use certkeeper_core::{FailureClass, Secret};
use certkeeper_vault::{
    AuthMethod, ErrorKind, Operation, SecretSource, SignRequest, SignedCertificate, VaultClient, VaultConfig,
    VaultError,
};

use super::{CertStatus, EngineConfig, EngineHandle, spawn_driver};
use crate::attempt::{SignFuture, Signer};
use crate::clock::{Clock, TokioClock};
use crate::gate::{CircuitState, GateConfig, IssuerGate, OpenCause};
use crate::hold::probe_time;
use crate::job::{
    CertId, CertJob, EngineEvent, Issued, IssuerId, IssuerRuntime, JobLabels, Runtime, RuntimeError,
};
use crate::metrics::Metrics;
use crate::state::{CertState, IssueReason, IssuedInfo, RenewalNote};

const ISSUER: &str = "Issuer/default/vault";
/// The wall-clock time the tests start at, in Unix seconds.
const EPOCH: u64 = 1_800_000_000;
const LIFETIME: Duration = Duration::from_secs(3600);

/// `s` seconds after the start, on the engine's clock.
fn at(s: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(EPOCH + s)
}

/// `ms` milliseconds after the start.
fn at_ms(ms: u64) -> SystemTime {
    at(0) + Duration::from_millis(ms)
}

/// `s` seconds after the start, as persisted.
fn unix(s: u64) -> UnixSeconds {
    to_unix(at(s))
}

/// Seconds since the start, for readable assertions.
fn since_start(t: SystemTime) -> u64 {
    t.duration_since(at(0)).unwrap().as_secs()
}

const MS: Duration = Duration::from_millis(1);

fn id(i: usize) -> CertId {
    CertId::new("default", &format!("c{i}"))
}

fn issuer() -> IssuerId {
    IssuerId::new(certkeeper_core::spec::IssuerKind::Issuer, "default", "vault")
}

fn job(i: usize) -> CertJob {
    let cn = format!("c{i}.example.com");
    CertJob {
        id: id(i),
        issuer: issuer(),
        fingerprint: 1,
        csr: CsrRequest {
            common_name: Some(cn.clone()),
            dns_names: vec![cn],
            ..Default::default()
        },
        key_algorithm: KeyAlgorithm::Ecdsa(256),
        key_encoding: KeyEncoding::Pkcs8,
        // The runtime serves one key for all: no key generation, and the fake Vault signs it.
        rotate_key: false,
        duration: LIFETIME,
        renewal: RenewalPolicy::default(),
        labels: JobLabels::default(),
        revoke_superseded: false,
        revoke_deleted: false,
    }
}

/// What the fake Vault answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Vault {
    /// 403 with a fresh token: Vault refuses the issuer itself.
    Refuses,
    /// 503: sealed.
    Unavailable,
    Signs,
}

/// A request that reached the fake Vault: when, for which certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Call {
    at: SystemTime,
    cert: CertId,
}

struct FakeVault {
    clock: TokioClock,
    /// The key every certificate is served with (see [`FakeRuntime::current_key`]).
    key: rcgen::KeyPair,
    mode: Mutex<Vault>,
    calls: Mutex<Vec<Call>>,
}

fn status_error(status: u16, message: &str) -> VaultError {
    VaultError {
        operation: Operation::Sign,
        kind: ErrorKind::Status {
            status,
            errors: vec![message.to_owned()],
            body: None,
            retry_after: None,
            location: None,
        },
        fresh_token: true,
    }
}

impl FakeVault {
    fn set(&self, mode: Vault) {
        *self.mode.lock().unwrap() = mode;
    }

    /// A certificate for `cn` valid from now for `ttl`, self-signed with the served key.
    fn certificate(&self, cn: &str, ttl: Duration) -> SignedCertificate {
        let now = self.clock.now();
        let mut params = rcgen::CertificateParams::new(vec![cn.to_owned()]).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, cn);
        params.not_before = now.into();
        params.not_after = (now + ttl).into();
        SignedCertificate {
            certificate_pem: params.self_signed(&self.key).unwrap().pem(),
            issuing_ca_pem: String::new(),
            ca_chain_pem: Vec::new(),
            serial_number: String::new(),
            expiration: to_unix(now + ttl),
            warnings: Vec::new(),
        }
    }
}

impl Signer for FakeVault {
    fn sign<'a>(&'a self, _issuer: &'a IssuerRuntime, request: &'a SignRequest) -> SignFuture<'a> {
        let cn = request.common_name.clone().unwrap();
        let cert = CertId::new("default", cn.split('.').next().unwrap());
        self.calls.lock().unwrap().push(Call {
            at: self.clock.now(),
            cert,
        });
        let mode = *self.mode.lock().unwrap();
        let answer = match mode {
            Vault::Refuses => Err(status_error(403, "permission denied")),
            Vault::Unavailable => Err(status_error(503, "Vault is sealed")),
            Vault::Signs => Ok(self.certificate(&cn, request.ttl.unwrap())),
        };
        Box::pin(std::future::ready(answer))
    }
}

/// Keeps states in memory and records events with the engine's time.
struct FakeRuntime {
    clock: TokioClock,
    key_pem: Secret,
    states: Mutex<HashMap<CertId, CertState>>,
    events: Mutex<Vec<(SystemTime, CertId, EngineEvent)>>,
    /// How many of the next applies (the hooks) fail.
    apply_failures: Mutex<u32>,
    /// When each apply ran.
    applies: Mutex<Vec<SystemTime>>,
}

impl Runtime for FakeRuntime {
    async fn current_key(&self, _job: &CertJob) -> Option<Secret> {
        Some(self.key_pem.clone())
    }
    async fn write(&self, _job: &CertJob, _issued: &Issued) -> Result<(), RuntimeError> {
        Ok(())
    }
    async fn apply(&self, _job: &CertJob) -> Result<(), RuntimeError> {
        self.applies.lock().unwrap().push(self.clock.now());
        let mut failures = self.apply_failures.lock().unwrap();
        if *failures == 0 {
            return Ok(());
        }
        *failures -= 1;
        // The runtime's own class is not trusted: the engine records every apply failure as
        // class apply.
        Err(RuntimeError {
            class: FailureClass::Transient,
            message: "hook [reload] exited with status 1".into(),
        })
    }
    async fn save_states(&self, states: Vec<(CertId, CertState)>) -> Result<(), RuntimeError> {
        self.states.lock().unwrap().extend(states);
        Ok(())
    }
    fn event(&self, job: &CertJob, event: EngineEvent) {
        self.events
            .lock()
            .unwrap()
            .push((self.clock.now(), job.id.clone(), event));
    }
}

/// An engine on paused time with one issuer behind a fake Vault.
struct Harness {
    clock: TokioClock,
    vault: Arc<FakeVault>,
    runtime: Arc<FakeRuntime>,
    engine: EngineHandle,
    gate: IssuerGate,
}

impl Harness {
    /// Must be called at the start of a `start_paused` test: the clock reads [`at`]`(0)` now.
    fn start(gate: GateConfig, certs: Vec<(CertJob, Option<CertState>)>, mode: Vault) -> Harness {
        Self::start_with(gate, certs, mode, EngineConfig::default())
    }

    /// As [`Harness::start`], with this engine configuration.
    fn start_with(
        gate: GateConfig,
        certs: Vec<(CertJob, Option<CertState>)>,
        mode: Vault,
        config: EngineConfig,
    ) -> Harness {
        let clock = TokioClock::starting_at(at(0));
        let key = PrivateKey::generate(KeyAlgorithm::Ecdsa(256)).unwrap();
        let key_pem = key.to_pem(KeyEncoding::Pkcs8);
        let vault = Arc::new(FakeVault {
            clock,
            key: rcgen::KeyPair::from_pem(key_pem.expose()).unwrap(),
            mode: Mutex::new(mode),
            calls: Mutex::new(Vec::new()),
        });
        let runtime = Arc::new(FakeRuntime {
            clock,
            key_pem,
            states: Mutex::new(HashMap::new()),
            events: Mutex::new(Vec::new()),
            apply_failures: Mutex::new(0),
            applies: Mutex::new(Vec::new()),
        });
        let gate = IssuerGate::new(ISSUER, &gate);
        // Never called: signing goes through the fake Vault.
        let client = VaultClient::new(
            &VaultConfig::new("http://127.0.0.1:9"),
            AuthMethod::Token {
                token: SecretSource::value("unused"),
            },
        )
        .unwrap();
        let issuer = IssuerRuntime {
            id: issuer(),
            client: Arc::new(client),
            gate: gate.clone(),
            path: "pki/sign/test".into(),
            fingerprint: 1,
            settings: 0,
        };
        let engine = spawn_driver(
            runtime.clone(),
            Metrics::default(),
            config,
            Arc::new(clock),
            vault.clone(),
        );
        engine.set_issuers(vec![issuer]);
        engine.set_certificates(certs);
        Harness {
            clock,
            vault,
            runtime,
            engine,
            gate,
        }
    }

    /// Let paused time run to `t`: every timer of the engine due by then fires at its time.
    async fn run_until(&self, t: SystemTime) {
        assert!(t >= self.clock.now(), "time only runs forward");
        tokio::time::sleep_until(self.clock.instant_at(t)).await;
    }

    fn calls(&self) -> Vec<Call> {
        self.vault.calls.lock().unwrap().clone()
    }

    /// The requests that reached Vault, as (seconds since the start, certificate).
    fn requests(&self) -> Vec<(u64, CertId)> {
        self.calls()
            .into_iter()
            .map(|c| (since_start(c.at), c.cert))
            .collect()
    }

    fn state(&self, id: &str) -> CertState {
        self.runtime.states.lock().unwrap()[id].clone()
    }

    /// The attempts the engine started, as (time, certificate).
    fn attempts(&self) -> Vec<(SystemTime, CertId)> {
        self.runtime
            .events
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, _, e)| matches!(e, EngineEvent::Issuing { .. }))
            .map(|(t, id, _)| (*t, id.clone()))
            .collect()
    }

    async fn status(&self, id: &str) -> CertStatus {
        self.engine
            .snapshot()
            .await
            .into_iter()
            .find(|s| s.job.id == id)
            .unwrap()
    }
}

/// Many certificates due at once against an issuer Vault refuses: the first refusal opens the
/// circuit and holds the issuer; one certificate probes at 2 s, 4 s, then every 5 s; the others
/// are parked and start no attempt. The first success releases them all in the same instant.
#[tokio::test(start_paused = true)]
async fn a_refused_issuer_is_probed_by_one_certificate_and_a_success_releases_all_at_once() {
    const N: usize = 8;
    let h = Harness::start(
        GateConfig::default(),
        (0..N).map(|i| (job(i), None)).collect(),
        Vault::Refuses,
    );

    h.run_until(at_ms(500)).await;
    // All were due and started; one reached Vault, whose refusal opened the circuit before the
    // next went: those were refused by the gate.
    assert_eq!(h.attempts().len(), N);
    assert_eq!(h.requests(), [(0, id(0))]);
    let owner = id(0);
    let circuit = h.gate.circuit_info();
    assert_eq!(circuit.state, CircuitState::Open);
    assert_eq!(
        circuit.cause,
        Some(OpenCause::Refused(FailureClass::AuthRejected))
    );
    let holds = h.engine.holds().await;
    assert_eq!(holds.len(), 1);
    let (issuer, hold) = &holds[0];
    assert_eq!(issuer, ISSUER);
    assert_eq!((hold.probes, hold.probe_at, &hold.owner), (1, at(2), &owner));
    // Everyone shows the probe's time as its next attempt; only the owner wakes for it, the
    // others are parked (the park is the fallback, recovery releases them).
    for i in 0..N {
        let status = h.status(&id(i)).await;
        let failure = status.state.failure.unwrap();
        assert_eq!(failure.class, FailureClass::AuthRejected);
        assert_eq!(failure.next_attempt, Some(unix(2)), "{}", id(i));
        let wake = if id(i) == owner {
            unix(2)
        } else {
            to_unix(at(0) + super::PARK_WHILE_OPEN)
        };
        assert_eq!(status.next_check, Some(wake), "{}", id(i));
    }

    // One probe per probe time: 2 s, 4 s, then every 5 s (hold.rs), each by the owner.
    h.run_until(at_ms(20_500)).await;
    assert_eq!(h.requests(), [0, 2, 6, 11, 16].map(|s| (s, owner.clone())));
    // The parked ones started nothing after the first round.
    let later: Vec<_> = h
        .attempts()
        .into_iter()
        .filter(|(t, _)| *t > at(0))
        .map(|(t, id)| (since_start(t), id))
        .collect();
    assert_eq!(later, [2, 6, 11, 16].map(|s| (s, owner.clone())));
    let hold = h.engine.holds().await.remove(0).1;
    assert_eq!((hold.probes, hold.probe_at), (5, at(21)));

    // Vault signs again: the probe at 21 s succeeds and releases everyone at once.
    h.vault.set(Vault::Signs);
    h.run_until(at_ms(21_500)).await;
    let released: Vec<Call> = h.calls().into_iter().filter(|c| c.at > at(16)).collect();
    assert_eq!(released.len(), N, "{released:?}");
    assert_eq!(released[0].cert, owner, "the probe goes first");
    assert!(released.iter().all(|c| c.at == at(21)), "{released:?}");
    for i in 0..N {
        let state = h.state(&id(i));
        assert_eq!(state.revision, 1, "{}", id(i));
        assert_eq!(state.failure, None);
    }
    assert!(h.engine.holds().await.is_empty());
    assert_eq!(h.gate.circuit(), CircuitState::Closed);
}

/// A certificate served until `not_after` (seconds from the start), due for renewal now.
fn served(i: usize, not_after: UnixSeconds) -> (CertJob, Option<CertState>) {
    let job = job(i);
    let state = CertState {
        revision: 1,
        issued: Some(IssuedInfo {
            serial: format!("old-{i}"),
            not_before: not_after - 3600,
            not_after,
            renewal_time: Some(unix(0) - 1),
            renewal_note: None,
            spec_fingerprint: job.fingerprint,
            issued_at: not_after - 3600,
            warning: None,
            ca_not_after: None,
        }),
        failure: None,
        deferred: None,
    };
    (job, Some(state))
}

/// While the issuer is held, the probe's time is never later than the expiry-aware schedule of
/// the soonest-expiring waiting certificate; when the probing certificate goes away, the
/// soonest-expiring waiting one takes the probe over, at the same time.
#[tokio::test(start_paused = true)]
async fn the_probe_follows_the_soonest_expiring_waiting_certificate() {
    // c1 expires first, 40 s from the start.
    let not_afters = [unix(3600), unix(40), unix(600), unix(1800)];
    let certs = not_afters
        .iter()
        .enumerate()
        .map(|(i, n)| served(i, *n))
        .collect();
    let h = Harness::start(GateConfig::default(), certs, Vault::Refuses);

    // Each probe goes when `probe_time` says for the certificates then waiting; never later
    // than the soonest-expiring one's own schedule (the same retry schedule its own failures
    // follow: 5 s this close to expiry).
    let check_probes = |h: &Harness, waiting: &[usize], from: usize| {
        let calls = h.calls();
        for pair in calls[from..].windows(2) {
            let probes = u32::try_from(calls.iter().position(|c| c == &pair[1]).unwrap()).unwrap();
            let waiting = waiting.iter().map(|i| Some(not_afters[*i]));
            let expected = probe_time(FailureClass::AuthRejected, probes, waiting, pair[0].at, 0.0);
            assert_eq!(pair[1].at, expected, "probe {}", probes + 1);
            let soonest = next_attempt(&RetryInput {
                class: FailureClass::AuthRejected,
                attempts: probes,
                failed_at: pair[0].at,
                current_not_after: Some(from_unix(not_afters[1])),
                retry_after: None,
                unit_random: 0.0,
            })
            .unwrap();
            assert!(pair[1].at <= soonest, "probe {} later than c1 needs", probes + 1);
        }
    };

    h.run_until(at_ms(7_500)).await;
    assert_eq!(h.requests(), [(0, id(0)), (2, id(0)), (6, id(0))]);
    check_probes(&h, &[0, 1, 2, 3], 0);

    // The probing certificate is deleted: c1, the soonest to expire of those waiting, owns the
    // probe, at the time already set.
    h.engine
        .set_certificates([1, 2, 3].map(|i| served(i, not_afters[i])).to_vec());
    h.run_until(at_ms(7_600)).await;
    let hold = h.engine.holds().await.remove(0).1;
    assert_eq!((hold.owner.as_str(), hold.probe_at), (id(1).as_str(), at(11)));
    // c1 woke for it and was refused by the gate (nothing reached Vault); it now waits for the
    // probe's time, the others stay parked.
    assert_eq!(h.requests().len(), 3);
    assert_eq!(h.status(&id(1)).await.next_check, Some(unix(11)));

    h.run_until(at_ms(21_500)).await;
    assert_eq!(h.requests()[3..], [(11, id(1)), (16, id(1)), (21, id(1))]);
    check_probes(&h, &[1, 2, 3], 2);
    // Only c1 started attempts after the first round.
    assert!(
        h.attempts()
            .iter()
            .filter(|(t, _)| *t > at(0))
            .all(|(_, c)| *c == id(0) || *c == id(1))
    );
}

/// A transient failure (Vault sealed) is retried when core's retry schedule says, counted from
/// the failure on the engine's clock: not a millisecond before, and exactly then.
#[tokio::test(start_paused = true)]
async fn a_transient_failure_is_retried_on_cores_schedule() {
    // The circuit stays closed for these five failures: each is the certificate's own.
    let gate = GateConfig {
        open_after: 10,
        ..GateConfig::default()
    };
    let h = Harness::start(gate, vec![(job(0), None)], Vault::Unavailable);
    let mut failed_at = at(0);
    for attempt in 1..=5u32 {
        h.run_until(failed_at + MS).await;
        let calls = h.calls();
        assert_eq!(calls.len(), attempt as usize);
        assert_eq!(calls[calls.len() - 1].at, failed_at);

        let failure = h.state(&id(0)).failure.unwrap();
        assert_eq!(failure.class, FailureClass::Transient);
        assert_eq!(failure.attempts, attempt);
        assert_eq!(failure.first_failure, unix(0));
        assert_eq!(failure.last_failure, to_unix(failed_at));
        // Core's schedule, whose jitter (a random cut of up to a fifth) the engine draws.
        let schedule = |unit_random| {
            to_unix(
                next_attempt(&RetryInput {
                    class: FailureClass::Transient,
                    attempts: attempt,
                    failed_at,
                    current_not_after: None,
                    retry_after: None,
                    unit_random,
                })
                .unwrap(),
            )
        };
        let next = failure.next_attempt.unwrap();
        assert!(
            (schedule(1.0)..=schedule(0.0)).contains(&next),
            "attempt {attempt}: {next} not in {}..={}",
            schedule(1.0),
            schedule(0.0)
        );
        if attempt == 1 {
            // The first delay is the minimum, which jitter never cuts.
            assert_eq!(next, unix(1));
        }
        assert_eq!(h.status(&id(0)).await.next_check, Some(next));

        let next = from_unix(next);
        h.run_until(next - MS).await;
        assert_eq!(h.calls().len(), attempt as usize, "retried early");
        failed_at = next;
    }
    assert_eq!(h.gate.circuit(), CircuitState::Closed);
}

/// A success records the certificate's renewal time (core's, from the issued validity) and the
/// engine sleeps until exactly then.
#[tokio::test(start_paused = true)]
async fn a_success_is_renewed_at_its_renewal_time() {
    let job = job(0);
    let h = Harness::start(GateConfig::default(), vec![(job.clone(), None)], Vault::Signs);
    h.run_until(at_ms(500)).await;
    assert_eq!(h.requests(), [(0, id(0))]);
    let issued = h.state(&id(0)).issued.unwrap();
    assert_eq!(
        (issued.not_before, issued.not_after, issued.issued_at),
        (unix(0), to_unix(at(0) + LIFETIME), unix(0))
    );
    let renewal = to_unix(renewal_time(at(0), at(0) + LIFETIME, &job.renewal, &job.id));
    assert_eq!(issued.renewal_time, Some(renewal));
    assert!(renewal > unix(60) && renewal < to_unix(at(0) + LIFETIME));
    assert_eq!(h.status(&id(0)).await.next_check, Some(renewal));

    let renewal = from_unix(renewal);
    h.run_until(renewal - MS).await;
    assert_eq!(h.calls().len(), 1, "renewed early");
    h.run_until(renewal + MS).await;
    let calls = h.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1].at, renewal);
    let state = h.state(&id(0));
    assert_eq!(state.revision, 2);
    let issued = state.issued.unwrap();
    assert_eq!(issued.not_before, to_unix(renewal));
    assert_eq!(
        issued.renewal_time,
        Some(to_unix(renewal_time(
            renewal,
            renewal + LIFETIME,
            &job.renewal,
            &job.id
        )))
    );
    let reasons: Vec<&str> = h
        .runtime
        .events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|(_, _, e)| match e {
            EngineEvent::Issuing { reason } => Some(reason.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(reasons, ["DoesNotExist", "Renewing"]);
}

/// A job whose renewals may start only inside the window `cron` (UTC) open for `open_for`.
fn windowed_job(cron: &str, open_for: Duration) -> CertJob {
    let window = RenewalWindow::parse(cron, "", open_for).unwrap();
    CertJob {
        renewal: RenewalPolicy {
            automatic: AutomaticRenewal::RenewBefore(RenewalWindows::new(vec![window]).unwrap()),
            ..RenewalPolicy::default()
        },
        ..job(0)
    }
}

/// The reasons of the attempts started, in order.
fn reasons(h: &Harness) -> Vec<IssueReason> {
    h.runtime
        .events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|(_, _, e)| match e {
            EngineEvent::Issuing { reason } => Some(*reason),
            _ => None,
        })
        .collect()
}

/// The start is 08:00:00 UTC; a one-hour certificate issued then reaches its renewal point at
/// about 08:36-08:40 and its latest safe point at 08:50. A window opening at 08:45 takes the
/// renewal: nothing happens at the renewal point, the renewal starts inside the window.
#[tokio::test(start_paused = true)]
async fn a_renewal_waits_for_its_window() {
    assert_eq!(to_unix(at(0)) % 86_400, 8 * 3600, "the start is 08:00 UTC");
    let job = windowed_job("45 8 * * *", Duration::from_secs(600));
    let h = Harness::start(GateConfig::default(), vec![(job.clone(), None)], Vault::Signs);
    h.run_until(at_ms(500)).await;
    assert_eq!(h.requests(), [(0, id(0))]);

    let desired = renewal_time(at(0), at(0) + LIFETIME, &job.renewal, &job.id);
    let planned = plan_renewal(at(0), at(0) + LIFETIME, &job.renewal, &job.id);
    let renewal = planned.time().unwrap();
    assert!(
        since_start(desired) < 2700,
        "the renewal point is before the window"
    );
    assert!((2700..3000).contains(&since_start(renewal)), "{planned:?}");
    let issued = h.state(&id(0)).issued.unwrap();
    assert_eq!(issued.renewal_time, Some(to_unix(renewal)));
    assert_eq!(issued.renewal_note, None);
    assert_eq!(h.status(&id(0)).await.next_check, Some(to_unix(renewal)));

    // The renewal point passes without a request; the window's start brings it.
    h.run_until(desired + Duration::from_secs(60)).await;
    assert_eq!(h.calls().len(), 1, "renewed outside the window");
    h.run_until(renewal + MS).await;
    let calls = h.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1].at, renewal);
    assert_eq!(reasons(&h), [IssueReason::DoesNotExist, IssueReason::Renewing]);
}

/// A window at 03:00 UTC does not open before the latest safe point (08:50): the renewal starts
/// there anyway, says why, and the certificate never comes close to expiring.
#[tokio::test(start_paused = true)]
async fn a_renewal_with_no_window_before_the_safe_point_is_forced_there() {
    let job = windowed_job("0 3 * * *", Duration::from_secs(3600));
    let h = Harness::start(GateConfig::default(), vec![(job.clone(), None)], Vault::Signs);
    h.run_until(at_ms(500)).await;

    let safe = latest_safe_point(at(0), at(0) + LIFETIME, &job.renewal);
    assert_eq!(since_start(safe), 3000);
    let issued = h.state(&id(0)).issued.unwrap();
    assert_eq!(issued.renewal_time, Some(to_unix(safe)));
    let Some(RenewalNote::OutsideWindows { message }) = issued.renewal_note else {
        panic!("no note: {:?}", issued.renewal_note);
    };
    assert!(
        message.contains("no window opens between the renewal point"),
        "{message}"
    );

    h.run_until(safe - MS).await;
    assert_eq!(h.calls().len(), 1, "renewed before the safe point");
    h.run_until(safe + MS).await;
    let calls = h.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1].at, safe);
    assert_eq!(
        reasons(&h),
        [IssueReason::DoesNotExist, IssueReason::RenewingOutsideWindows]
    );
    assert_eq!(IssueReason::RenewingOutsideWindows.as_str(), "Renewing");
}

/// `renewal.policy: Disabled`: issued once, never renewed (not even expired), renewed by hand.
#[tokio::test(start_paused = true)]
async fn disabled_renewal_issues_once_and_renews_only_by_hand() {
    let job = CertJob {
        renewal: RenewalPolicy {
            automatic: AutomaticRenewal::Disabled,
            ..RenewalPolicy::default()
        },
        ..job(0)
    };
    let h = Harness::start(GateConfig::default(), vec![(job, None)], Vault::Signs);
    h.run_until(at_ms(500)).await;
    let issued = h.state(&id(0)).issued.unwrap();
    assert_eq!(issued.renewal_time, None);
    assert_eq!(issued.renewal_note, Some(RenewalNote::Disabled));
    assert_eq!(h.status(&id(0)).await.next_check, None);

    h.run_until(at(3 * 3600)).await;
    assert_eq!(h.calls().len(), 1, "renewed automatically");
    assert!(!h.status(&id(0)).await.ready, "expired and still served");

    h.engine.renew(Some(id(0)));
    h.run_until(at(3 * 3600) + Duration::from_secs(1)).await;
    assert_eq!(h.calls().len(), 2);
    assert_eq!(
        reasons(&h),
        [IssueReason::DoesNotExist, IssueReason::ManuallyTriggered]
    );
}

/// A certificate whose hooks fail three times: the failure is the certificate's, class apply;
/// only the hooks are retried, on the apply schedule (2 s, 4 s, 8 s less jitter); Vault is asked
/// once; the failure clears when the hooks succeed, and a restart keeps the backoff.
#[tokio::test(start_paused = true)]
async fn failing_hooks_are_retried_on_their_schedule_and_never_reissue() {
    let h = Harness::start(GateConfig::default(), vec![(job(0), None)], Vault::Signs);
    *h.runtime.apply_failures.lock().unwrap() = 3;

    h.run_until(at_ms(500)).await;
    assert_eq!(h.requests(), [(0, id(0))]);
    let state = h.state(&id(0));
    assert_eq!(state.revision, 1, "stored all the same");
    let failure = state.failure.unwrap();
    assert_eq!(failure.class, FailureClass::Apply);
    assert_eq!(failure.attempts, 1);
    assert_eq!(failure.message, "hook [reload] exited with status 1");
    // APPLY_BACKOFF's first delay, 2 s less up to a fifth of jitter, in whole seconds.
    let first = failure.next_attempt.unwrap();
    assert!((unix(1)..=unix(2)).contains(&first), "{first}");
    let status = h.status(&id(0)).await;
    assert!(status.ready, "the certificate stored is current");
    assert_eq!(status.next_check, Some(first));

    h.run_until(at(60)).await;
    let applies: Vec<u64> = h
        .runtime
        .applies
        .lock()
        .unwrap()
        .iter()
        .map(|t| since_start(*t))
        .collect();
    assert_eq!(applies.len(), 4, "{applies:?}");
    // Each retry waits its step of the schedule: 2, 4, 8 s (jitter cuts at most a fifth, and
    // retry times are whole seconds).
    for (k, pair) in applies.windows(2).enumerate() {
        let ceiling = 2u64 << k;
        let gap = pair[1] - pair[0];
        assert!(
            gap <= ceiling && gap + 1 >= ceiling * 4 / 5,
            "gap {k}: {gap} s in {applies:?}"
        );
    }
    // Never issued again: one sign, one Issuing event, revision 1, cleared.
    assert_eq!(h.requests(), [(0, id(0))]);
    assert_eq!(h.attempts().len(), 1);
    let state = h.state(&id(0));
    assert_eq!((state.revision, state.failure), (1, None));
    let failures: Vec<(FailureClass, u32)> = h
        .runtime
        .events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|(_, _, e)| match e {
            EngineEvent::Failed { class, attempts, .. } => Some((*class, *attempts)),
            _ => None,
        })
        .collect();
    assert_eq!(
        failures,
        [1, 2, 3].map(|n| (FailureClass::Apply, n)),
        "one event per failed apply"
    );
}

/// A persisted apply failure (a restart while the hooks fail): the hooks run when its retry is
/// due, nothing is issued.
#[tokio::test(start_paused = true)]
async fn a_restart_retries_the_hooks_at_the_persisted_time() {
    let (job, state) = served(0, unix(3000));
    let mut state = state.unwrap();
    if let Some(issued) = state.issued.as_mut() {
        issued.renewal_time = Some(unix(2000));
    }
    state.failure = Some(crate::state::FailureRecord {
        class: FailureClass::Apply,
        message: "hook [reload] timed out".into(),
        attempts: 4,
        first_failure: unix(0) - 30,
        last_failure: unix(0) - 5,
        next_attempt: Some(unix(10)),
        spec_fingerprint: job.fingerprint,
    });
    let h = Harness::start(GateConfig::default(), vec![(job, Some(state))], Vault::Signs);
    h.run_until(at(9)).await;
    assert!(
        h.runtime.applies.lock().unwrap().is_empty(),
        "not before its time"
    );
    h.run_until(at(11)).await;
    let applies: Vec<u64> = h
        .runtime
        .applies
        .lock()
        .unwrap()
        .iter()
        .map(|t| since_start(*t))
        .collect();
    assert_eq!(applies, [10]);
    assert!(h.requests().is_empty(), "nothing issued");
    let state = h.state(&id(0));
    assert_eq!((state.revision, state.failure), (1, None));
}

/// The issuance budget (3 per hour here) against a loop repairing the certificate (its Secret
/// deleted as soon as it is written): the first issuance and two repairs go at once, the third
/// repair waits until the first issuance leaves the window, saying so once (event, state,
/// status); meanwhile the renewal point still issues (renewals are never held), and a renew
/// asked for by hand goes at once.
#[tokio::test(start_paused = true)]
async fn a_repair_loop_is_held_by_the_issuance_budget_and_renewals_still_go() {
    let budget = crate::budget::IssuanceBudget {
        count: 3,
        window: Duration::from_secs(3600),
    };
    let config = EngineConfig {
        issuance_budget: Some(budget),
        ..EngineConfig::default()
    };
    let job = job(0);
    let h = Harness::start_with(
        GateConfig::default(),
        vec![(job.clone(), None)],
        Vault::Signs,
        config,
    );
    h.run_until(at(1)).await;
    for s in [60, 120] {
        h.engine.reissue(id(0));
        h.run_until(at(s)).await;
    }
    assert_eq!(h.requests(), [(0, id(0)), (1, id(0)), (60, id(0))]);
    // The budget is spent: the next repair waits for the first issuance (at 0) to leave the
    // window at 3600 s, or for the served certificate's renewal point if that comes first.
    h.engine.reissue(id(0));
    h.run_until(at(180)).await;
    assert_eq!(h.calls().len(), 3, "a repair past the budget went to Vault");
    let renewal = h.state(&id(0)).issued.unwrap().renewal_time.unwrap();
    assert!(renewal < unix(3600), "renewal at {renewal}");
    let deferred = h.state(&id(0)).deferred.unwrap();
    assert_eq!(
        (deferred.until, deferred.reason.as_str(), deferred.budget.as_str()),
        (renewal, "SecretMismatch", "3/1h0m0s")
    );
    let status = h.status(&id(0)).await;
    assert!(status.state.deferred.is_some());
    // Asked again while held: no second event.
    h.engine.reissue(id(0));
    h.run_until(at(240)).await;
    let deferrals = h
        .runtime
        .events
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, _, e)| matches!(e, EngineEvent::IssuanceDeferred(_)))
        .count();
    assert_eq!(deferrals, 1);

    // The renewal point comes: the certificate is renewed there (renewals are never held).
    let renewal = from_unix(renewal);
    h.run_until(renewal - MS).await;
    assert_eq!(h.calls().len(), 3);
    h.run_until(renewal + MS).await;
    assert_eq!(h.calls().len(), 4);
    assert_eq!(h.calls()[3].at, renewal);
    assert_eq!(reasons(&h).last(), Some(&IssueReason::Renewing));
    assert!(
        h.state(&id(0)).deferred.is_none(),
        "an issuance clears the deferral"
    );

    // A renew by hand is never held.
    h.engine.reissue(id(0));
    let now = h.clock.now();
    h.run_until(now + Duration::from_secs(5)).await;
    assert_eq!(h.calls().len(), 4, "the repair is still held");
    h.engine.renew(Some(id(0)));
    h.run_until(now + Duration::from_secs(10)).await;
    assert_eq!(h.calls().len(), 5);
    assert_eq!(reasons(&h).last(), Some(&IssueReason::ManuallyTriggered));
}
