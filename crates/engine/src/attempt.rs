//! One issuance attempt: key, CSR, sign through the issuer's gate, verify, write.
//!
//! Every failure on the way is reduced to a [`FailureClass`] and a message here, by the class
//! functions of the failing layer (Vault client, runtime storage); nothing else is decided here.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use certkeeper_core::Secret;
use certkeeper_core::pki::{KeyAlgorithm, PrivateKey, build_csr, verify_issued};
use certkeeper_core::{FailureClass, FailureScope};
use certkeeper_vault::{SignRequest, SignedCertificate, VaultError};

use crate::clock::Clock;
use crate::driver::issued_info;
use crate::gate::{Outcome, Refusal, Transition};
use crate::job::{CertJob, Issued, IssuerRuntime, Runtime, RuntimeError};
use crate::state::IssuedInfo;

pub(crate) struct Attempt {
    pub job: Arc<CertJob>,
    pub issuer: IssuerRuntime,
    pub revision: u64,
    /// A certificate signed by an earlier attempt whose write failed, still fit to serve:
    /// written without asking Vault again.
    pub unwritten: Option<Box<Issued>>,
    pub clock: Arc<dyn Clock>,
    pub signer: Arc<dyn Signer>,
}

/// A sign request on its way to the issuer.
pub(crate) type SignFuture<'a> =
    Pin<Box<dyn Future<Output = Result<SignedCertificate, VaultError>> + Send + 'a>>;

/// Sends a sign request to an issuer: the engine's one seam around Vault. The engine signs
/// through [`VaultSigner`]; its unit tests answer for Vault (`driver/scheduling_tests.rs`).
pub(crate) trait Signer: Send + Sync + 'static {
    fn sign<'a>(&'a self, issuer: &'a IssuerRuntime, request: &'a SignRequest) -> SignFuture<'a>;
}

/// Signs with the issuer's Vault client.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct VaultSigner;

impl Signer for VaultSigner {
    fn sign<'a>(&'a self, issuer: &'a IssuerRuntime, request: &'a SignRequest) -> SignFuture<'a> {
        Box::pin(issuer.client.sign(&issuer.path, request))
    }
}

#[derive(Debug)]
pub(crate) enum AttemptOutcome {
    Issued {
        info: IssuedInfo,
        /// This attempt closed the issuer's circuit.
        recovered: bool,
        /// Stored, but putting it into use failed (class [`FailureClass::Apply`]): the
        /// certificate is the new one all the same, and only the apply is retried.
        apply_failure: Option<RuntimeError>,
    },
    /// A retry of a failed apply ([`crate::state::Decision::Apply`]): nothing was issued.
    Applied(Result<(), RuntimeError>),
    Failed {
        class: FailureClass,
        message: String,
        retry_after: Option<Duration>,
        /// The gate refused before anything was sent to Vault.
        refused_locally: bool,
        /// Vault's verdict was about the issuer as a whole (it opened or kept its circuit open);
        /// also set for a local refusal while the issuer's circuit is open for such a verdict.
        issuer_wide: bool,
        recovered: bool,
        /// Signed and verified, but the runtime could not store it (API server or disk
        /// trouble), with the fingerprint of the job it was signed for: the next attempt
        /// writes it instead of signing again if the spec is still the same.
        unwritten: Option<(u64, Box<Issued>)>,
    },
}

fn failed(class: FailureClass, message: String) -> AttemptOutcome {
    AttemptOutcome::Failed {
        class,
        message,
        retry_after: None,
        refused_locally: false,
        issuer_wide: false,
        recovered: false,
        unwritten: None,
    }
}

/// A certificate Vault signed through the issuer's gate.
#[derive(Debug, Clone)]
pub struct Signed {
    pub certificate: SignedCertificate,
    /// This sign closed the issuer's circuit.
    pub recovered: bool,
}

/// Why a sign through the issuer's gate gave no certificate.
#[derive(Debug, Clone)]
pub struct SignFailed {
    pub class: FailureClass,
    /// Whether the verdict is about the issuer or this request (the error catalog's).
    pub scope: FailureScope,
    pub message: String,
    /// When Vault asked to be retried (a 429's Retry-After): read here, nowhere else.
    pub retry_after: Option<Duration>,
    /// Nothing was sent: the issuer's circuit is open.
    pub refused_locally: bool,
    /// Vault's verdict was about the issuer as a whole (it opened or kept its circuit open);
    /// also set for a local refusal while the circuit is open for such a verdict.
    pub issuer_wide: bool,
    pub recovered: bool,
}

impl SignFailed {
    /// Whether the request waits behind the issuer's probe rather than on its own schedule.
    pub fn waits_for_probe(&self) -> bool {
        self.refused_locally || self.issuer_wide
    }
}

/// One sign of `request` by `issuer`, through its gate (concurrency, rate, circuit breaker):
/// the one signing step of a Certificate's attempt and of another tool's CertificateRequest.
pub async fn sign(issuer: &IssuerRuntime, request: &SignRequest) -> Result<Signed, SignFailed> {
    sign_with(&VaultSigner, issuer, request).await
}

pub(crate) async fn sign_with(
    signer: &dyn Signer,
    issuer: &IssuerRuntime,
    request: &SignRequest,
) -> Result<Signed, SignFailed> {
    let permit = match issuer.gate.acquire().await {
        Ok(p) => p,
        Err(Refusal::CircuitOpen(_)) => return Err(held_back(issuer)),
    };
    let signed = signer.sign(issuer, request).await;
    let outcome = Outcome::of_sign(&signed);
    let recovered = permit.finish(outcome) == Transition::Recovered;
    match signed {
        Ok(certificate) => Ok(Signed {
            certificate,
            recovered,
        }),
        Err(e) => Err(SignFailed {
            class: e.class(),
            scope: e.scope(),
            message: e.to_string(),
            retry_after: e.retry_after(),
            refused_locally: false,
            issuer_wide: matches!(outcome, Outcome::Refused(_)),
            recovered,
        }),
    }
}

/// The issuer's circuit is open: nothing is sent, the request waits for the issuer's probe
/// (the engine says when, in the message it records).
fn held_back(issuer: &IssuerRuntime) -> SignFailed {
    let (class, issuer_wide, what) = issuer.gate.circuit_info().held_back();
    SignFailed {
        class,
        scope: FailureScope::Issuer,
        message: format!("issuer {} {what}; waiting for its next probe", issuer.id),
        retry_after: None,
        refused_locally: true,
        issuer_wide,
        recovered: false,
    }
}

impl From<SignFailed> for AttemptOutcome {
    fn from(f: SignFailed) -> Self {
        AttemptOutcome::Failed {
            class: f.class,
            message: f.message,
            retry_after: f.retry_after,
            refused_locally: f.refused_locally,
            issuer_wide: f.issuer_wide,
            recovered: f.recovered,
            unwritten: None,
        }
    }
}

pub(crate) async fn run_attempt<R: Runtime>(mut attempt: Attempt, runtime: Arc<R>) -> AttemptOutcome {
    if let Some(issued) = attempt.unwritten.take() {
        tracing::info!(certificate = %attempt.job.id, serial = %issued.certificate.serial,
                       "writing the certificate signed by an earlier attempt");
        return write_issued(
            &attempt.job,
            runtime.as_ref(),
            *issued,
            false,
            attempt.clock.as_ref(),
        )
        .await;
    }
    // Refused by an open circuit: no key generated, nothing sent.
    if let Some(Refusal::CircuitOpen(_)) = attempt.issuer.gate.refusal() {
        return held_back(&attempt.issuer).into();
    }
    let job = attempt.job.clone();
    let (key, fresh) = match prepare_key(&job, runtime.as_ref()).await {
        Ok(k) => k,
        Err((class, message)) => return failed(class, message),
    };
    let key_pem = key.to_pem(job.key_encoding);
    let pending = fresh.then(|| key_pem.clone());
    let outcome = sign_and_write(attempt, runtime.as_ref(), key, key_pem).await;
    // A new key whose attempt failed is kept for the next attempt (nothing is stored when the
    // first attempt succeeds, the usual case).
    if let (AttemptOutcome::Failed { .. }, Some(pem)) = (&outcome, pending)
        && let Err(e) = runtime.store_pending_key(&job, &pem).await
    {
        tracing::warn!(certificate = %job.id, error = %e, "cannot keep the private key for the next attempt");
    }
    outcome
}

async fn sign_and_write<R: Runtime>(
    attempt: Attempt,
    runtime: &R,
    key: PrivateKey,
    key_pem: Secret,
) -> AttemptOutcome {
    let Attempt {
        job,
        issuer,
        revision,
        clock,
        signer,
        ..
    } = attempt;
    let csr_pem = match build_csr(&job.csr, &key) {
        Ok(c) => c,
        Err(e) => return failed(FailureClass::Invalid, format!("cannot build CSR: {e}")),
    };
    let request = SignRequest {
        csr_pem: csr_pem.clone(),
        common_name: job.csr.common_name.clone(),
        dns_names: job.csr.dns_names.clone(),
        ip_sans: job.csr.ip_addresses.iter().map(ToString::to_string).collect(),
        uri_sans: job.csr.uris.clone(),
        ttl: Some(job.duration),
    };

    let (signed, recovered) = match sign_with(signer.as_ref(), &issuer, &request).await {
        Ok(s) => (s.certificate, s.recovered),
        Err(f) => return f.into(),
    };

    let now = clock.now();
    let certificate = match verify_issued(
        &signed.certificate_pem,
        &signed.ca_chain_pem,
        &key,
        job.duration,
        now,
    ) {
        Ok(c) => c,
        Err(e) => {
            // Vault's answer is not a usable certificate: its verdict, not ours.
            return AttemptOutcome::Failed {
                class: FailureClass::Rejected,
                message: format!("issued certificate rejected: {e}"),
                retry_after: None,
                refused_locally: false,
                issuer_wide: false,
                recovered,
                unwritten: None,
            };
        }
    };
    let issued = Issued {
        key,
        key_pem,
        csr_pem,
        certificate,
        revision,
    };
    write_issued(&job, runtime, issued, recovered, clock.as_ref()).await
}

/// Stores a verified certificate; a failure hands it back for the next attempt.
async fn write_issued<R: Runtime>(
    job: &CertJob,
    runtime: &R,
    issued: Issued,
    recovered: bool,
    clock: &dyn Clock,
) -> AttemptOutcome {
    if let Err(e) = runtime.write(job, &issued).await {
        return AttemptOutcome::Failed {
            class: e.class,
            message: e.message,
            retry_after: None,
            refused_locally: false,
            issuer_wide: false,
            recovered,
            unwritten: Some((job.fingerprint, Box::new(issued))),
        };
    }
    let info = issued_info(job, &issued.certificate, clock.now());
    AttemptOutcome::Issued {
        info,
        recovered,
        apply_failure: apply(job, runtime).await.err(),
    }
}

/// Puts the stored certificate into use ([`Runtime::apply`]); a failure is always of class
/// [`FailureClass::Apply`], whatever the runtime reported, so that it is retried as an apply.
async fn apply<R: Runtime>(job: &CertJob, runtime: &R) -> Result<(), RuntimeError> {
    runtime.apply(job).await.map_err(|e| RuntimeError {
        class: FailureClass::Apply,
        message: e.message,
    })
}

/// The retry of a failed apply: the runtime's apply again, no key, no CSR, nothing sent to Vault.
pub(crate) async fn run_apply<R: Runtime>(job: Arc<CertJob>, runtime: Arc<R>) -> AttemptOutcome {
    AttemptOutcome::Applied(apply(&job, runtime.as_ref()).await)
}

/// The key for this attempt and whether it is new: the served one when rotation is off and it
/// still fits the spec; else the key kept from a failed attempt of this revision; else a new
/// one (RSA off the async threads: it takes tens of milliseconds).
async fn prepare_key<R: Runtime>(
    job: &CertJob,
    runtime: &R,
) -> Result<(PrivateKey, bool), (FailureClass, String)> {
    if !job.rotate_key
        && let Some(key) = usable_key(job, runtime.current_key(job).await, "existing")
    {
        return Ok((key, false));
    }
    if let Some(key) = usable_key(job, runtime.pending_key(job).await, "pending") {
        return Ok((key, false));
    }
    let algorithm = job.key_algorithm;
    let generated = if matches!(algorithm, KeyAlgorithm::Rsa(_)) {
        tokio::task::spawn_blocking(move || PrivateKey::generate(algorithm))
            .await
            .map_err(|e| (FailureClass::Invalid, format!("key generation task failed: {e}")))?
    } else {
        // ECDSA and Ed25519 keys take tens of microseconds: less than the hop to a thread.
        PrivateKey::generate(algorithm)
    };
    let key = generated.map_err(|e| {
        (
            FailureClass::Invalid,
            format!("cannot generate {algorithm:?} key: {e}"),
        )
    })?;
    Ok((key, true))
}

/// `pem` parsed, if it is a key of the spec's algorithm (`what` names it in the log otherwise).
fn usable_key(job: &CertJob, pem: Option<Secret>, what: &str) -> Option<PrivateKey> {
    match PrivateKey::from_pem(pem?.expose()) {
        Ok(k) if k.algorithm() == job.key_algorithm => Some(k),
        Ok(_) => {
            tracing::info!(certificate = %job.id, "{what} key does not match the spec; generating a new one");
            None
        }
        Err(e) => {
            tracing::warn!(certificate = %job.id, error = %e, "{what} key unreadable; generating a new one");
            None
        }
    }
}
