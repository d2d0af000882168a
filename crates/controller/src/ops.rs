//! What `certkeeper controller status` and `certkeeper controller renew` do against a cluster.
//!
//! - Status rows come from the Certificates' status (cert-manager's fields and
//!   `status.certkeeper`), in the standalone runtime's row format.
//! - A renew request is what `cmctl renew` writes: the Certificate's `Issuing` condition set to
//!   `True` with reason [`MANUALLY_TRIGGERED`]. The controller issues it at once, bypassing any
//!   backoff, and acts on each such condition once (by its lastTransitionTime), so `cmctl renew`
//!   and `certkeeper controller renew` are interchangeable.

use std::time::SystemTime;

use certkeeper_core::pki::rfc3339;
use certkeeper_serve::status::{FailureRow, StatusRow};
use serde_json::{Value, json};

use crate::kube::{KubeClient, KubeError, cluster_cm_path, cm_path, meta_str};

/// The `Issuing` reason of a renew request (cert-manager's `ManuallyTriggered`).
pub const MANUALLY_TRIGGERED: &str = "ManuallyTriggered";
/// cmctl's message on the `Issuing` condition of a renew request.
pub const MANUAL_RENEW_MESSAGE: &str = "Certificate re-issuance manually triggered";
/// Attempts at writing a renew request when the Certificate changes under us (409).
const RENEW_CONFLICT_RETRIES: usize = 5;

/// The renew request on a Certificate, if any: the lastTransitionTime of an `Issuing=True`
/// condition with reason [`MANUALLY_TRIGGERED`] that the controller did not write itself while
/// issuing (`own_message`).
pub fn renew_request<'a>(cert: &'a Value, own_message: &str) -> Option<&'a str> {
    let issuing = cert
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Issuing")?;
    (issuing["status"] == "True"
        && issuing["reason"] == MANUALLY_TRIGGERED
        && issuing["message"] != own_message)
        .then(|| issuing["lastTransitionTime"].as_str())
        .flatten()
}

fn text(v: &Value, pointer: &str) -> Option<String> {
    v.pointer(pointer).and_then(Value::as_str).map(str::to_owned)
}

/// A status row of one Certificate as the API server has it.
pub fn row(cert: &Value) -> StatusRow {
    let ns = meta_str(cert, "namespace");
    let name = meta_str(cert, "name");
    let issuer_name = text(cert, "/spec/issuerRef/name").unwrap_or_default();
    let issuer = match text(cert, "/spec/issuerRef/kind").as_deref() {
        Some("ClusterIssuer") => format!("ClusterIssuer/{issuer_name}"),
        _ => format!("Issuer/{ns}/{issuer_name}"),
    };
    let status = cert.get("status").cloned().unwrap_or(Value::Null);
    let ready = status["conditions"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"));
    let last_failure = status["certkeeper"]["failureClass"].as_str().map(|class| {
        let last = text(&status, "/lastFailureTime").unwrap_or_default();
        FailureRow {
            class: class.to_owned(),
            message: text(&status, "/certkeeper/failureMessage").unwrap_or_default(),
            attempts: status["failedIssuanceAttempts"]
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(1),
            first_failure: last.clone(),
            last_failure: last,
            next_attempt: text(&status, "/certkeeper/nextAttemptTime").unwrap_or_else(|| "on change".into()),
        }
    });
    StatusRow {
        name: format!("{ns}/{name}"),
        issuer,
        ready,
        not_after: text(&status, "/notAfter"),
        renewal_time: text(&status, "/renewalTime"),
        revision: status["revision"].as_u64().unwrap_or(0),
        serial: None,
        last_failure,
        warning: None,
    }
}

/// Every Certificate (of `namespace`, or all), sorted by name.
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

/// Asks the controller to issue `namespace/name` now, as `cmctl renew` does (see the module
/// docs); returns its revision before the request. A Certificate already issuing is left as is.
pub async fn request_renew(client: &KubeClient, namespace: &str, name: &str) -> Result<u64, KubeError> {
    let path = cm_path(namespace, "certificates", Some(name))?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let Some(mut cert) = client.get(&path).await? else {
            return Err(KubeError::Decode {
                what: format!("Certificate {namespace}/{name}"),
                message: "not found".into(),
            });
        };
        let revision = cert
            .pointer("/status/revision")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let mut conditions: Vec<Value> = cert
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if conditions
            .iter()
            .any(|c| c["type"] == "Issuing" && c["status"] == "True")
        {
            return Ok(revision);
        }
        conditions.retain(|c| c["type"] != "Issuing");
        conditions.push(
            json!({"type": "Issuing", "status": "True", "reason": MANUALLY_TRIGGERED,
                               "message": MANUAL_RENEW_MESSAGE,
                               "lastTransitionTime": rfc3339(SystemTime::now())}),
        );
        if !cert["status"].is_object() {
            cert["status"] = json!({});
        }
        cert["status"]["conditions"] = Value::Array(conditions);
        // A replace carries the resourceVersion read: a concurrent status write makes it 409.
        match client.replace(&format!("{path}/status"), &cert).await {
            Ok(_) => return Ok(revision),
            Err(e) if e.code() == Some(409) && attempt < RENEW_CONFLICT_RETRIES => continue,
            Err(e) => return Err(e),
        }
    }
}

/// The revision of `namespace/name` now (0 when it has none or is gone).
pub async fn revision(client: &KubeClient, namespace: &str, name: &str) -> Result<u64, KubeError> {
    let cert = client
        .get(&cm_path(namespace, "certificates", Some(name))?)
        .await?;
    Ok(cert
        .and_then(|c| c.pointer("/status/revision").and_then(Value::as_u64))
        .unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(renew_request(&cmctl, own), Some("2026-11-26T05:00:00Z"));
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
}
