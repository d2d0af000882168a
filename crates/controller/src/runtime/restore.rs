//! Reading a Certificate's state back on restart (see the module docs of [`super`]).

use certkeeper_core::spec::{CONDITION_ISSUING, CONDITION_READY, CertificateStatus};
use certkeeper_core::time::{from_unix, parse_rfc3339_unix, rfc3339_unix, to_unix};
use certkeeper_engine::adopt::{CurrentRequest, SecretAnnotations, Served};

use super::*;
use crate::objects::{
    CERTIFICATE_NAME_ANNOTATION, ISSUER_GROUP_ANNOTATION, ISSUER_KIND_ANNOTATION, ISSUER_NAME_ANNOTATION,
};

/// Whether a Certificate's status already shows `state` (revision, notAfter, failing or not):
/// a status that lags behind (its last write was lost) is rewritten after a restart.
pub fn status_current(status: &CertificateStatus, state: &CertState) -> bool {
    let revision = status.revision.and_then(|r| u64::try_from(r).ok()).unwrap_or(0);
    let not_after = status
        .not_after
        .as_deref()
        .and_then(|s| parse_rfc3339_unix(s).ok());
    // Failing: certkeeper's own record, or cert-manager's fields where the CRD has no
    // `status.certkeeper` (cert-manager's CRDs prune it, so it is never there).
    let failing = status.certkeeper.is_some() || cert_manager_streak(status).is_some();
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
fn cert_manager_streak(status: &CertificateStatus) -> Option<(u32, i64)> {
    let attempts = status
        .failed_issuance_attempts
        .and_then(|n| u32::try_from(n).ok())
        .filter(|&n| n > 0)?;
    let last = status
        .last_failure_time
        .as_deref()
        .and_then(|s| parse_rfc3339_unix(s).ok())?;
    Some((attempts, last))
}

/// The failure streak from cert-manager's fields alone (see the module docs): `status.certkeeper`
/// is absent, pruned by cert-manager's CRDs.
fn restore_cert_manager_failure(
    status: &CertificateStatus,
    issued: Option<&IssuedInfo>,
    job: &CertJob,
) -> Option<FailureRecord> {
    let (attempts, last) = cert_manager_streak(status)?;
    let failed_issuing = status
        .condition(CONDITION_ISSUING)
        .filter(|c| c.reason == "Failed")
        .map(|c| c.message.as_str());
    let message = match failed_issuing {
        Some(m) => m
            .strip_prefix(ISSUING_FAILED)
            .and_then(|rest| rest.split_once(": "))
            .map_or(m, |(_, failure)| failure)
            .to_owned(),
        None => format!("the last attempt failed at {}", rfc3339_unix(last)),
    };
    let class = status
        .condition(CONDITION_READY)
        .and_then(|c| c.message.split_once(READY_FAILURE_NOTE))
        .and_then(|(_, note)| note.split_once(','))
        .and_then(|(class, _)| FailureClass::parse(class))
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

/// `certkeeper.io/spec-hash` of a target Secret: the spec certkeeper wrote it for (`None`:
/// written by someone else).
pub fn spec_hash(secret: &Value) -> Option<u64> {
    secret
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(SPEC_HASH_ANNOTATION))
        .and_then(Value::as_str)
        .and_then(|h| u64::from_str_radix(h, 16).ok())
}

/// What the adoption rule reads of cert-manager's CertificateRequest (a spec that does not
/// decode reads as empty, and its CSR then fails the rule).
#[derive(Debug, Default)]
struct RequestFields {
    csr_pem: String,
    is_ca: bool,
    usages: Vec<String>,
    duration: Option<std::time::Duration>,
    issuer_name: String,
    issuer_kind: String,
    issuer_group: String,
}

impl RequestFields {
    fn of(request: &Value) -> RequestFields {
        use base64::Engine;
        let spec = &request["spec"];
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        RequestFields {
            csr_pem: base64::engine::general_purpose::STANDARD
                .decode(spec["request"].as_str().unwrap_or_default())
                .ok()
                .and_then(|der| String::from_utf8(der).ok())
                .unwrap_or_default(),
            is_ca: spec["isCA"].as_bool().unwrap_or(false),
            usages: spec["usages"]
                .as_array()
                .map(|u| u.iter().map(text).collect())
                .unwrap_or_default(),
            duration: spec["duration"]
                .as_str()
                .and_then(|d| certkeeper_core::spec::parse_go_duration(d).ok()),
            issuer_name: text(&spec["issuerRef"]["name"]),
            issuer_kind: text(&spec["issuerRef"]["kind"]),
            issuer_group: text(&spec["issuerRef"]["group"]),
        }
    }

    fn current(&self) -> CurrentRequest<'_> {
        CurrentRequest {
            csr_pem: &self.csr_pem,
            is_ca: self.is_ca,
            usages: &self.usages,
            duration: self.duration,
            issuer_name: &self.issuer_name,
            issuer_kind: &self.issuer_kind,
            issuer_group: &self.issuer_group,
        }
    }
}

/// The engine's state of a Certificate seen for the first time (see the module docs), from its
/// status and its target Secret (`None`: the Secret does not exist), and for a Secret
/// certkeeper did not write, cert-manager's CertificateRequest of the status's revision
/// ([`super::record::current_request`]).
pub fn restore_state(
    status: &CertificateStatus,
    secret: Option<&Value>,
    request: Option<&Value>,
    job: &CertJob,
) -> Option<CertState> {
    let revision = status.revision.and_then(|r| u64::try_from(r).ok()).unwrap_or(0);
    let issued = secret.and_then(|secret| {
        let data = secret_data(secret);
        let pem = String::from_utf8(data.get(TLS_CRT)?.clone()).ok()?;
        let leaf = describe_pem_bundle(&pem).ok()?.into_iter().next()?;
        let Some(hash) = spec_hash(secret) else {
            // Not written by certkeeper (cert-manager, by hand): adopted when it matches the spec.
            let key = String::from_utf8(data.get(TLS_KEY)?.clone()).ok()?;
            let annotation = |key: &str| {
                secret
                    .pointer("/metadata/annotations")
                    .and_then(|a| a.get(key))
                    .and_then(Value::as_str)
            };
            let request = request.map(RequestFields::of);
            let served = Served::Secret {
                annotations: SecretAnnotations {
                    certificate_name: annotation(CERTIFICATE_NAME_ANNOTATION),
                    issuer_name: annotation(ISSUER_NAME_ANNOTATION),
                    issuer_kind: annotation(ISSUER_KIND_ANNOTATION),
                    issuer_group: annotation(ISSUER_GROUP_ANNOTATION),
                },
                request: request.as_ref().map(RequestFields::current),
            };
            return match certkeeper_engine::adopt::adopt(job, served, &pem, &key, SystemTime::now()) {
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
        let (renewal_time, renewal_note) =
            certkeeper_engine::driver::planned_renewal(job, leaf.not_before, leaf.not_after);
        Some(IssuedInfo {
            serial: leaf.serial,
            not_before: to_unix(leaf.not_before),
            not_after: to_unix(leaf.not_after),
            renewal_time,
            renewal_note,
            spec_fingerprint: hash,
            issued_at: to_unix(leaf.not_before),
            warning: None,
            ca_not_after: None,
        })
    });
    let certkeeper_failure = status.certkeeper.as_ref().and_then(|ck| {
        let class = ck.failure_class?;
        let last = status
            .last_failure_time
            .as_deref()
            .and_then(|s| parse_rfc3339_unix(s).ok())
            .unwrap_or_else(|| to_unix(SystemTime::now()));
        Some(FailureRecord {
            class,
            message: ck.failure_message.clone(),
            attempts: status
                .failed_issuance_attempts
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(1),
            first_failure: last,
            last_failure: last,
            next_attempt: ck
                .next_attempt_time
                .as_deref()
                .and_then(|s| parse_rfc3339_unix(s).ok()),
            spec_fingerprint: job.fingerprint,
        })
    });
    let failure = certkeeper_failure.or_else(|| restore_cert_manager_failure(status, issued.as_ref(), job));
    if revision == 0 && issued.is_none() && failure.is_none() {
        return None;
    }
    Some(CertState {
        revision: revision.max(u64::from(issued.is_some())),
        issued,
        failure,
        // A deferral is the engine's memory of its budget, which a restart starts again.
        deferred: None,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use crate::status::status_patch;
    use std::time::Duration;

    use serde_json::json;

    use super::*;

    /// The typed status of a Certificate object written as JSON.
    fn st(certificate: &Value) -> CertificateStatus {
        serde_json::from_value(certificate["status"].clone()).unwrap_or_default()
    }

    /// A certificate served from 1_800_000_000 for an hour, issued for fingerprint 7.
    fn issued() -> IssuedInfo {
        IssuedInfo {
            serial: "aa".into(),
            not_before: 1_800_000_000,
            not_after: 1_800_003_600,
            renewal_time: Some(1_800_002_400),
            renewal_note: None,
            spec_fingerprint: 7,
            issued_at: 1_800_000_000,
            warning: None,
            ca_not_after: None,
        }
    }

    #[test]
    fn a_status_lagging_behind_the_state_is_noticed() {
        let state = CertState {
            revision: 2,
            issued: Some(issued()),
            failure: None,
            deferred: None,
        };
        let current = json!({"status": {"revision": 2, "notAfter": rfc3339_unix(1_800_003_600)}});
        assert!(status_current(&st(&current), &state));
        let old = json!({"status": {"revision": 1, "notAfter": rfc3339_unix(1_800_000_100)}});
        assert!(!status_current(&st(&old), &state));
        assert!(!status_current(&st(&json!({})), &state));
        let failing = json!({"status": {"revision": 2, "notAfter": rfc3339_unix(1_800_003_600),
                                        "certkeeper": {"failureClass": "transient"}}});
        assert!(
            !status_current(&st(&failing), &state),
            "a failure the state no longer has"
        );
    }

    fn job() -> CertJob {
        CertJob {
            id: CertId::new("apps", "web"),
            issuer: certkeeper_engine::IssuerId::new(
                certkeeper_core::spec::IssuerKind::Issuer,
                "apps",
                "vault",
            ),
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
            revoke_superseded: false,
            revoke_deleted: false,
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
            deferred: None,
        };
        let certificate = pruned_status(&refused, from_unix(last));
        assert!(certificate["status"].get("certkeeper").is_none());
        let restored = restore_state(&st(&certificate), None, None, &job()).expect("a failure streak");
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
        assert_eq!(
            restore_state(&st(&certificate), None, None, &job()),
            Some(restored.clone())
        );
        assert!(
            status_current(&st(&certificate), &restored),
            "the status already shows the failure"
        );

        // Without a failure streak there is nothing to restore.
        let mut no_streak = certificate.clone();
        no_streak["status"]["failedIssuanceAttempts"] = json!(0);
        assert_eq!(restore_state(&st(&no_streak), None, None, &job()), None);
        let mut no_time = certificate;
        no_time["status"]
            .as_object_mut()
            .unwrap()
            .remove("lastFailureTime");
        assert_eq!(restore_state(&st(&no_time), None, None, &job()), None);
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
            renewal_time: Some(now - 60),
            renewal_note: None,
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
            deferred: None,
        };
        let certificate = pruned_status(&failing, from_unix(now - 5));
        let f =
            restore_cert_manager_failure(&st(&certificate), Some(&served), &job()).expect("a failure streak");
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
        let f = restore_state(&st(&certificate), None, None, &job())
            .unwrap()
            .failure
            .unwrap();
        assert_eq!(f.message, "Vault failed to sign certificate: 400");
        assert_eq!(
            f.last_failure,
            parse_rfc3339_unix("2027-01-15T08:00:00Z").unwrap()
        );
        let bare =
            json!({"status": {"failedIssuanceAttempts": 3, "lastFailureTime": "2027-01-15T08:00:00Z"}});
        let f = restore_state(&st(&bare), None, None, &job())
            .unwrap()
            .failure
            .unwrap();
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
        let f = restore_state(&st(&certificate), None, None, &job())
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
            deferred: None,
        };
        let healthy = CertState {
            failure: None,
            ..failing.clone()
        };
        // cert-manager's CRDs: the failure shows in failedIssuanceAttempts and lastFailureTime.
        let shown = json!({"status": {"revision": 2, "notAfter": rfc3339_unix(1_800_003_600),
                                      "failedIssuanceAttempts": 1,
                                      "lastFailureTime": rfc3339_unix(1_800_002_500)}});
        assert!(status_current(&st(&shown), &failing));
        assert!(
            !status_current(&st(&shown), &healthy),
            "a failure the state no longer has"
        );
        let clean = json!({"status": {"revision": 2, "notAfter": rfc3339_unix(1_800_003_600)}});
        assert!(
            !status_current(&st(&clean), &failing),
            "a failure not written yet"
        );
        assert!(status_current(&st(&clean), &healthy));
        // What status_patch writes, once pruned, is current for the state it was written for.
        let now = from_unix(1_800_002_600);
        assert!(status_current(&st(&pruned_status(&failing, now)), &failing));
        assert!(status_current(&st(&pruned_status(&healthy, now)), &healthy));
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
            deferred: None,
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
