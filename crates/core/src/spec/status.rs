//! The `status` of `Certificate`, `Issuer` and `ClusterIssuer` (cert-manager's
//! `types_certificate.go` and `types_issuer.go`), field names exactly as cert-manager spells them,
//! plus certkeeper's retry state ([`CertkeeperStatus`]).
//!
//! Timestamps are RFC 3339 strings (`2026-01-02T03:04:05Z`), as Kubernetes' `metav1.Time`
//! serialises them; the CRD schema has them checked by the API server (`format: date-time`).
//!
//! `status.acme` of Certificates and Issuers ([`CertificateAcmeStatus`], [`AcmeIssuerStatus`]) is
//! written by cert-manager's ACME issuers, never by certkeeper (it serves Vault issuers only): it
//! is in the types so that certkeeper's CRDs keep it when they replace cert-manager's.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::FailureClass;

/// Condition type `Ready` (Certificate, CertificateRequest, Issuer, ClusterIssuer).
pub const CONDITION_READY: &str = "Ready";
/// Condition type `Issuing` of a Certificate: set while a new certificate is being requested.
pub const CONDITION_ISSUING: &str = "Issuing";

/// cert-manager's `cmmeta.ConditionStatus`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ConditionStatus {
    True,
    False,
    #[default]
    Unknown,
}

/// A condition of a Certificate, Issuer or ClusterIssuer (cert-manager's `CertificateCondition`
/// and `IssuerCondition`, which have the same fields).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Ready` or `Issuing` ([`CONDITION_READY`], [`CONDITION_ISSUING`]).
    #[serde(rename = "type")]
    pub condition_type: String,
    pub status: ConditionStatus,
    /// When the condition last changed from one status to another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::schema::date_time")]
    pub last_transition_time: Option<String>,
    /// Machine-readable, CamelCase reason for the last transition.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Human-readable details of the last transition.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The `metadata.generation` the condition was set for.
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub observed_generation: i64,
}

pub type CertificateCondition = Condition;
pub type IssuerCondition = Condition;

fn is_zero_i64(n: &i64) -> bool {
    *n == 0
}

/// `status` of a Certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct CertificateStatus {
    /// `Ready` and `Issuing`; at most one per type.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<CertificateCondition>,
    /// When the last issuance failed; cleared by the next success.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::schema::date_time")]
    pub last_failure_time: Option<String>,
    /// notBefore of the certificate in the Secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::schema::date_time")]
    pub not_before: Option<String>,
    /// notAfter of the certificate in the Secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::schema::date_time")]
    pub not_after: Option<String>,
    /// When the certificate is due for renewal.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::schema::date_time")]
    pub renewal_time: Option<String>,
    /// Incremented on each issuance; 1 for the first certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::schema::go_int")]
    pub revision: Option<i32>,
    /// The Secret holding the private key for the issuance in progress.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_private_key_secret_name: Option<String>,
    /// Consecutive failed issuances; cleared by the next success.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::schema::go_int")]
    pub failed_issuance_attempts: Option<i32>,
    /// certkeeper's retry state (not in cert-manager's schema; see [`CertkeeperStatus`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certkeeper: Option<CertkeeperStatus>,
    /// Written by cert-manager's ACME issuers only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acme: Option<CertificateAcmeStatus>,
}

/// `status.acme` of a Certificate (cert-manager's `CertificateACMEStatus`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct CertificateAcmeStatus {
    /// ACME Renewal Information (RFC 9773) last fetched from the ACME server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ari: Option<AcmeRenewalInfo>,
}

/// `status.acme.ari` of a Certificate (cert-manager's `ACMERenewalInfo`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct AcmeRenewalInfo {
    #[serde(rename = "explanationURL", skip_serializing_if = "Option::is_none")]
    pub explanation_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::schema::date_time")]
    pub last_checked: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::schema::date_time")]
    pub next_check: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suggested_window: Option<AcmeRenewalWindow>,
}

/// The renewal window an ACME server suggests (RFC 9773); both ends are required.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AcmeRenewalWindow {
    #[schemars(schema_with = "super::schema::date_time")]
    pub start: String,
    #[schemars(schema_with = "super::schema::date_time")]
    pub end: String,
}

/// certkeeper's retry state of a Certificate: `status.certkeeper`, next to cert-manager's fields.
///
/// cert-manager's status has room for when the last issuance failed and how many times, but not
/// for why in certkeeper's terms (the [`FailureClass`] decides the schedule) nor for when the next
/// attempt is due. certkeeper ships its own CRDs (`deploy/crds/`, `certkeeper crds`), so the state
/// lives in the status, in this one extra field, rather than in annotations:
///
/// - it is written through the `status` subresource together with the `Ready` condition, in one
///   write that neither bumps `metadata.generation` nor races with users' `kubectl apply` of the
///   spec and metadata (annotations would be both);
/// - the API server checks it (the class is an enum, times are `format: date-time`);
/// - `kubectl get certificate` shows `nextAttemptTime` (column `NextAttempt`), and
///   `kubectl get -o yaml` / `describe` show all of it.
///
/// With cert-manager's own CRDs installed instead, the API server prunes this field; nothing
/// depends on reading it back: the controller recomputes the schedule from its own state and
/// cert-manager's `lastFailureTime` / `failedIssuanceAttempts`, and the `Ready` condition's
/// message repeats the class and the next attempt for humans.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct CertkeeperStatus {
    /// Class of the last failure: `transient`, `auth_rejected`, `rejected` or `invalid`. Unset
    /// after a success.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::schema::failure_class")]
    pub failure_class: Option<FailureClass>,
    /// The last failure, as certkeeper reports it (secrets never included).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub failure_message: String,
    /// When the next attempt is due; unset when none is scheduled (an `invalid` failure waits
    /// for a change of the Certificate or what it references).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::schema::date_time")]
    pub next_attempt_time: Option<String>,
}

/// `status` of an Issuer or ClusterIssuer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct IssuerStatus {
    /// `Ready`: whether the issuer can sign (Vault reachable, login works).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<IssuerCondition>,
    /// Written by cert-manager's ACME issuers only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acme: Option<AcmeIssuerStatus>,
}

/// `status.acme` of an Issuer (cert-manager's `ACMEIssuerStatus`): the registered account.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct AcmeIssuerStatus {
    /// The account's URI at the ACME server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_registered_email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_private_key_hash: Option<String>,
}

/// What [`set_condition`] needs of a condition: Certificates' and Issuers' [`Condition`] and
/// CertificateRequests' (which have no `observedGeneration`).
pub trait StatusCondition {
    fn condition_type(&self) -> &str;
    fn status(&self) -> ConditionStatus;
    fn last_transition_time(&mut self) -> &mut Option<String>;
}

impl StatusCondition for Condition {
    fn condition_type(&self) -> &str {
        &self.condition_type
    }
    fn status(&self) -> ConditionStatus {
        self.status
    }
    fn last_transition_time(&mut self) -> &mut Option<String> {
        &mut self.last_transition_time
    }
}

impl StatusCondition for super::CertificateRequestCondition {
    fn condition_type(&self) -> &str {
        &self.condition_type
    }
    fn status(&self) -> ConditionStatus {
        self.status
    }
    fn last_transition_time(&mut self) -> &mut Option<String> {
        &mut self.last_transition_time
    }
}

/// Sets `new` in `conditions` (replacing the condition of its type), as Kubernetes'
/// `meta.SetStatusCondition` does: `lastTransitionTime` is kept when the status does not change
/// and is `now` (RFC 3339) when it does or the condition is new (or `new` carries its own).
/// The one rule for every condition certkeeper writes.
pub fn set_condition<C: StatusCondition>(conditions: &mut Vec<C>, mut new: C, now: &str) {
    match conditions
        .iter_mut()
        .find(|c| c.condition_type() == new.condition_type())
    {
        Some(old) => {
            if old.status() == new.status() && old.last_transition_time().is_some() {
                *new.last_transition_time() = old.last_transition_time().take();
            } else if new.last_transition_time().is_none() {
                *new.last_transition_time() = Some(now.to_owned());
            }
            *old = new;
        }
        None => {
            if new.last_transition_time().is_none() {
                *new.last_transition_time() = Some(now.to_owned());
            }
            conditions.push(new);
        }
    }
}

/// Removes the condition of this type.
pub fn remove_condition<C: StatusCondition>(conditions: &mut Vec<C>, condition_type: &str) {
    conditions.retain(|c| c.condition_type() != condition_type);
}

/// A Certificate status as a merge patch, see [`CertificateStatus::merge_patch`].
#[derive(Debug, Serialize)]
pub struct CertificateStatusPatch<'a> {
    status: StatusFields<'a>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusFields<'a> {
    conditions: &'a [CertificateCondition],
    last_failure_time: &'a Option<String>,
    not_before: &'a Option<String>,
    not_after: &'a Option<String>,
    renewal_time: &'a Option<String>,
    revision: &'a Option<i32>,
    next_private_key_secret_name: &'a Option<String>,
    failed_issuance_attempts: &'a Option<i32>,
    certkeeper: Option<CertkeeperFields<'a>>,
}

/// `status.certkeeper` in a merge patch: every field, `null` when unset (a nested object is
/// merged field by field, so a field left out would keep its old value).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct CertkeeperFields<'a> {
    failure_class: &'a Option<FailureClass>,
    failure_message: &'a str,
    next_attempt_time: &'a Option<String>,
}

impl Condition {
    /// A condition of `condition_type` with this status, reason and message (the transition
    /// time is [`set_condition`]'s to decide).
    pub fn new(
        condition_type: &str,
        status: ConditionStatus,
        reason: &str,
        message: impl Into<String>,
        observed_generation: i64,
    ) -> Self {
        Condition {
            condition_type: condition_type.to_owned(),
            status,
            last_transition_time: None,
            reason: reason.to_owned(),
            message: message.into(),
            observed_generation,
        }
    }
}

impl CertificateStatus {
    /// The status as a JSON merge patch (RFC 7386) body of every field certkeeper writes
    /// (`{"status": {...}}`): a field that is `None` is written as `null`, so the patch removes
    /// what the status no longer says. Serialise it (e.g. with serde_json).
    pub fn merge_patch(&self) -> CertificateStatusPatch<'_> {
        CertificateStatusPatch {
            status: StatusFields {
                conditions: &self.conditions,
                last_failure_time: &self.last_failure_time,
                not_before: &self.not_before,
                not_after: &self.not_after,
                renewal_time: &self.renewal_time,
                revision: &self.revision,
                next_private_key_secret_name: &self.next_private_key_secret_name,
                failed_issuance_attempts: &self.failed_issuance_attempts,
                certkeeper: self.certkeeper.as_ref().map(|c| CertkeeperFields {
                    failure_class: &c.failure_class,
                    failure_message: &c.failure_message,
                    next_attempt_time: &c.next_attempt_time,
                }),
            },
        }
    }

    /// The condition of this type, if set.
    pub fn condition(&self, condition_type: &str) -> Option<&CertificateCondition> {
        self.conditions
            .iter()
            .find(|c| c.condition_type == condition_type)
    }
}

impl IssuerStatus {
    /// The condition of this type, if set.
    pub fn condition(&self, condition_type: &str) -> Option<&IssuerCondition> {
        self.conditions
            .iter()
            .find(|c| c.condition_type == condition_type)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn set_condition_keeps_the_transition_time_while_the_status_holds() {
        let mut conditions = Vec::new();
        let ready = |status, reason: &str| Condition::new(CONDITION_READY, status, reason, "m", 2);
        set_condition(&mut conditions, ready(ConditionStatus::False, "Pending"), "T1");
        assert_eq!(conditions[0].last_transition_time.as_deref(), Some("T1"));
        // Same status, new reason and message: the transition time stays.
        set_condition(&mut conditions, ready(ConditionStatus::False, "Failed"), "T2");
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].reason, "Failed");
        assert_eq!(conditions[0].last_transition_time.as_deref(), Some("T1"));
        // A change of status moves it.
        set_condition(&mut conditions, ready(ConditionStatus::True, "Ready"), "T3");
        assert_eq!(conditions[0].last_transition_time.as_deref(), Some("T3"));
        // Another type is added beside it; removing it leaves the first.
        set_condition(
            &mut conditions,
            Condition::new(CONDITION_ISSUING, ConditionStatus::True, "Renewing", "", 2),
            "T4",
        );
        assert_eq!(conditions.len(), 2);
        remove_condition(&mut conditions, CONDITION_ISSUING);
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].condition_type, CONDITION_READY);
    }

    #[test]
    fn a_merge_patch_clears_what_the_status_no_longer_says() {
        let status = CertificateStatus {
            revision: Some(3),
            ..CertificateStatus::default()
        };
        let yaml = serde_yaml_ng::to_string(&status.merge_patch()).unwrap();
        let back: serde_yaml_ng::Value = serde_yaml_ng::from_str(&yaml).unwrap();
        let fields = back["status"].as_mapping().unwrap();
        assert_eq!(fields.len(), 9, "{yaml}");
        assert_eq!(back["status"]["revision"], serde_yaml_ng::Value::from(3));
        for cleared in [
            "notAfter",
            "certkeeper",
            "failedIssuanceAttempts",
            "nextPrivateKeySecretName",
        ] {
            assert!(back["status"][cleared].is_null(), "{cleared}: {yaml}");
        }
    }

    #[test]
    fn certificate_status_with_cert_manager_names_and_certkeeper_state() {
        let yaml = "conditions:\n\
            - {type: Ready, status: 'False', reason: Failed, message: sealed, \
               lastTransitionTime: '2026-01-02T03:04:05Z', observedGeneration: 3}\n\
            - {type: Issuing, status: 'True'}\n\
            notBefore: '2026-01-01T00:00:00Z'\nnotAfter: '2026-04-01T00:00:00Z'\n\
            renewalTime: '2026-03-02T00:00:00Z'\nrevision: 4\nlastFailureTime: '2026-01-02T03:04:05Z'\n\
            failedIssuanceAttempts: 2\nnextPrivateKeySecretName: web-abcde\n\
            certkeeper: {failureClass: auth_rejected, failureMessage: denied, \
                         nextAttemptTime: '2026-01-02T03:09:05Z'}\n";
        let status: CertificateStatus = serde_yaml_ng::from_str(yaml).unwrap();
        let ready = status.condition(CONDITION_READY).unwrap();
        assert_eq!(ready.status, ConditionStatus::False);
        assert_eq!(ready.observed_generation, 3);
        assert_eq!(
            status.condition(CONDITION_ISSUING).unwrap().status,
            ConditionStatus::True
        );
        assert_eq!(
            (status.revision, status.failed_issuance_attempts),
            (Some(4), Some(2))
        );
        let ck = status.certkeeper.as_ref().unwrap();
        assert_eq!(ck.failure_class, Some(FailureClass::AuthRejected));
        assert_eq!(ck.next_attempt_time.as_deref(), Some("2026-01-02T03:09:05Z"));
        let text = serde_yaml_ng::to_string(&status).unwrap();
        let back: CertificateStatus = serde_yaml_ng::from_str(&text).unwrap();
        assert_eq!(back, status);
        assert!(text.contains("nextPrivateKeySecretName") && text.contains("failureClass: auth_rejected"));
        // an empty status serialises to an empty object
        assert_eq!(
            serde_yaml_ng::to_string(&CertificateStatus::default())
                .unwrap()
                .trim(),
            "{}"
        );
    }

    #[test]
    fn issuer_status() {
        let status: IssuerStatus =
            serde_yaml_ng::from_str("conditions: [{type: Ready, status: 'True', reason: VaultVerified}]")
                .unwrap();
        assert_eq!(status.condition("Ready").unwrap().reason, "VaultVerified");
        assert!(status.condition("Other").is_none());
    }
}
