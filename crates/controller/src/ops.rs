//! What `certkeeper controller status` and `certkeeper controller renew` do against a cluster.
//!
//! - Status rows come from the Certificates' status (cert-manager's fields and
//!   `status.certkeeper`), in the standalone runtime's row format.
//! - A renew request is what `cmctl renew` writes: the Certificate's `Issuing` condition set to
//!   `True` with reason [`MANUALLY_TRIGGERED`]. The controller issues it at once, bypassing any
//!   backoff, and acts on each such condition once (by its lastTransitionTime), so `cmctl renew`
//!   and `certkeeper controller renew` are interchangeable.

use std::time::SystemTime;

use certkeeper_core::spec::{
    CONDITION_ISSUING, CONDITION_READY, CertificateStatus, Condition, ConditionStatus, IssuerReference,
    set_condition,
};
use certkeeper_core::time::rfc3339;
use certkeeper_engine::{CertId, IssuerId};
use certkeeper_serve::status::{FailureRow, StatusRow};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::kube::{KubeClient, KubeError, cluster_cm_path, cm_path};

/// cmctl's reason of a renew request.
pub const MANUALLY_TRIGGERED: &str = "ManuallyTriggered";
/// cmctl's message of a renew request.
pub const MANUAL_RENEW_MESSAGE: &str = "Certificate re-issuance manually triggered";
/// Replaces retried when a concurrent status write changed the Certificate meanwhile.
const RENEW_CONFLICT_RETRIES: usize = 5;

/// What `status` and `renew` read of a Certificate: its name, issuer and status.
#[derive(Debug, Default, Deserialize)]
struct CertificateView {
    #[serde(default)]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: SpecView,
    #[serde(default)]
    status: CertificateStatus,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SpecView {
    #[serde(default)]
    issuer_ref: IssuerReference,
}

/// A renew request as a merge patch of the status's conditions, made conditional on the
/// resourceVersion read (a concurrent status write makes it 409).
#[derive(Debug, Serialize)]
struct RenewPatch<'a> {
    metadata: ResourceVersion<'a>,
    status: ConditionsOnly<'a>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ResourceVersion<'a> {
    resource_version: &'a str,
}

#[derive(Debug, Serialize)]
struct ConditionsOnly<'a> {
    conditions: &'a [Condition],
}

fn view(cert: &Value) -> CertificateView {
    serde_json::from_value(cert.clone()).unwrap_or_default()
}

/// The renew request on a Certificate's `status`, if any: the lastTransitionTime of an
/// `Issuing=True` condition with reason [`MANUALLY_TRIGGERED`] that the controller did not
/// write itself while issuing (`own_message`).
pub fn renew_request_of<'s>(status: &'s CertificateStatus, own_message: &str) -> Option<&'s str> {
    let issuing = status.condition(CONDITION_ISSUING)?;
    (issuing.status == ConditionStatus::True
        && issuing.reason == MANUALLY_TRIGGERED
        && issuing.message != own_message)
        .then_some(issuing.last_transition_time.as_deref())
        .flatten()
}

/// [`renew_request_of`] a Certificate object.
pub fn renew_request(cert: &Value, own_message: &str) -> Option<String> {
    renew_request_of(&view(cert).status, own_message).map(str::to_owned)
}

/// A Certificate's row, as `certkeeper controller status` prints it.
pub fn row(cert: &Value) -> StatusRow {
    let cert = view(cert);
    let ns = cert.metadata.namespace.unwrap_or_default();
    let name = cert.metadata.name.unwrap_or_default();
    let issuer_ref = &cert.spec.issuer_ref;
    // A Certificate of an external issuer is listed with its status (its issuer writes it),
    // marked as not certkeeper's.
    let (issuer, warning) = if let Some(kind) = issuer_ref.issuer_kind() {
        (IssuerId::new(kind, &ns, &issuer_ref.name).to_string(), None)
    } else {
        let note = "not certkeeper's: an external issuer's Certificate, left alone";
        (issuer_ref.qualified_name(), Some(note.to_owned()))
    };
    let status = cert.status;
    let ready = status
        .condition(CONDITION_READY)
        .is_some_and(|c| c.status == ConditionStatus::True);
    let last_failure = status.certkeeper.as_ref().and_then(|ck| {
        let class = ck.failure_class?;
        let last = status.last_failure_time.clone().unwrap_or_default();
        Some(FailureRow {
            class: class.as_str().to_owned(),
            message: ck.failure_message.clone(),
            attempts: status
                .failed_issuance_attempts
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(1),
            first_failure: last.clone(),
            last_failure: last,
            next_attempt: ck.next_attempt_time.clone().unwrap_or_else(|| "on change".into()),
        })
    });
    StatusRow {
        name: CertId::new(&ns, &name).to_string(),
        issuer,
        ready,
        not_after: status.not_after.clone(),
        renewal_time: status.renewal_time.clone(),
        // renewalTime is left out of a served certificate's status only when automatic renewal
        // is disabled (cert-manager does the same); the Ready message says more.
        renewal_note: (status.renewal_time.is_none() && status.not_after.is_some())
            .then(|| certkeeper_core::schedule::DISABLED_NOTE.to_owned()),
        revision: status.revision.and_then(|r| u64::try_from(r).ok()).unwrap_or(0),
        serial: None,
        last_failure,
        warning,
    }
}

/// The rows of every Certificate (of `namespace`, or of all), sorted by name.
pub async fn status_rows(client: &KubeClient, namespace: Option<&str>) -> Result<Vec<StatusRow>, KubeError> {
    let path = match namespace {
        Some(ns) => cm_path(ns, "certificates", None)?,
        None => cluster_cm_path("certificates", None)?,
    };
    let (items, _) = client.list(&path).await?;
    let mut rows: Vec<StatusRow> = items.iter().map(row).collect();
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(rows)
}

/// Writes cmctl's renew request on Certificate `namespace/name` (unless an issuance is already
/// in progress) and returns the revision before it.
pub async fn request_renew(client: &KubeClient, namespace: &str, name: &str) -> Result<u64, KubeError> {
    let path = cm_path(namespace, "certificates", Some(name))?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let Some(mut cert) = client.get_object::<CertificateView>(&path).await? else {
            return Err(KubeError::Decode {
                what: format!("Certificate {namespace}/{name}"),
                message: "not found".into(),
            });
        };
        let revision = revision_of(&cert.status);
        if cert
            .status
            .condition(CONDITION_ISSUING)
            .is_some_and(|c| c.status == ConditionStatus::True)
        {
            return Ok(revision);
        }
        set_condition(
            &mut cert.status.conditions,
            Condition::new(
                CONDITION_ISSUING,
                ConditionStatus::True,
                MANUALLY_TRIGGERED,
                MANUAL_RENEW_MESSAGE,
                cert.metadata.generation.unwrap_or(0),
            ),
            &rfc3339(SystemTime::now()),
        );
        let patch = RenewPatch {
            metadata: ResourceVersion {
                resource_version: cert.metadata.resource_version.as_deref().unwrap_or_default(),
            },
            status: ConditionsOnly {
                conditions: &cert.status.conditions,
            },
        };
        let body = serde_json::to_value(&patch).map_err(|e| KubeError::Decode {
            what: format!("the renew request of {namespace}/{name}"),
            message: e.to_string(),
        })?;
        match client.merge_patch(&format!("{path}/status"), &body).await {
            Ok(_) => return Ok(revision),
            Err(e) if e.code() == Some(409) && attempt < RENEW_CONFLICT_RETRIES => continue,
            Err(e) => return Err(e),
        }
    }
}

fn revision_of(status: &CertificateStatus) -> u64 {
    status.revision.and_then(|r| u64::try_from(r).ok()).unwrap_or(0)
}

/// The Certificate's `status.revision` (0 when it has none).
pub async fn revision(client: &KubeClient, namespace: &str, name: &str) -> Result<u64, KubeError> {
    let cert = client
        .get_object::<CertificateView>(&cm_path(namespace, "certificates", Some(name))?)
        .await?;
    Ok(cert.map_or(0, |c| revision_of(&c.status)))
}

#[cfg(test)]
mod tests {
    use super::*;

    use serde_json::json;

    fn with_issuing(status: &str, reason: &str, message: &str) -> Value {
        json!({"status": {"conditions": [
            {"type": "Ready", "status": "True", "reason": "Ready"},
            {"type": "Issuing", "status": status, "reason": reason, "message": message,
             "lastTransitionTime": "2026-11-26T05:00:00Z"},
        ]}})
    }

    #[test]
    fn renew_requests_are_cmctls_condition_and_not_our_own() {
        let own = "Issuing certificate as a renewal was requested";
        let cmctl = with_issuing("True", MANUALLY_TRIGGERED, MANUAL_RENEW_MESSAGE);
        assert_eq!(
            renew_request(&cmctl, own).as_deref(),
            Some("2026-11-26T05:00:00Z")
        );
        assert_eq!(
            renew_request(&with_issuing("True", MANUALLY_TRIGGERED, own), own),
            None
        );
        assert_eq!(
            renew_request(&with_issuing("False", MANUALLY_TRIGGERED, "x"), own),
            None
        );
        assert_eq!(renew_request(&with_issuing("True", "Renewing", "x"), own), None);
        assert_eq!(renew_request(&json!({"status": {}}), own), None);
    }

    /// `certkeeper controller status` lists a Certificate of an external issuer with its
    /// issuer's kind, group and name (its issuer writes its status), marked as not certkeeper's.
    #[test]
    fn an_external_issuers_certificate_is_listed_as_not_certkeepers() {
        let cert = |issuer_ref: Value| {
            row(&json!({"metadata": {"name": "pca", "namespace": "apps"},
                        "spec": {"issuerRef": issuer_ref},
                        "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Ready"}]}}))
        };
        let external =
            cert(json!({"name": "pca", "kind": "AWSPCAIssuer", "group": "awspca.cert-manager.io"}));
        assert_eq!(external.issuer, "AWSPCAIssuer.awspca.cert-manager.io/pca");
        assert!(external.ready);
        assert!(
            external
                .warning
                .as_deref()
                .is_some_and(|w| w.starts_with("not certkeeper's"))
        );
        let ours = cert(json!({"name": "vault", "group": "cert-manager.io"}));
        assert_eq!(ours.issuer, "Issuer/apps/vault");
        assert_eq!(ours.warning, None);
    }
}
