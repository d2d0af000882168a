//! What `certkeeper controller status` and `certkeeper controller renew` do against a cluster.
//!
//! - Status rows come from the Certificates' status (cert-manager's fields and
//!   `status.certkeeper`), in the standalone runtime's row format.
//! - A renew request is the annotation [`RENEW_ANNOTATION`] (an RFC 3339 time) on the
//!   Certificate: the controller issues it at once, bypassing any backoff (as `cmctl renew`
//!   does), and removes the annotation.

use std::time::SystemTime;

use certkeeper_core::pki::rfc3339;
use certkeeper_daemon::status::{FailureRow, StatusRow};
use serde_json::{Value, json};

use crate::kube::{KubeClient, KubeError, cm_path, meta_str};

/// Set by `certkeeper controller renew`; removed by the controller when it acts on it.
pub const RENEW_ANNOTATION: &str = "certkeeper.io/renew-requested-at";

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
        Some(ns) => cm_path(ns, "certificates", None),
        None => "/apis/cert-manager.io/v1/certificates".to_owned(),
    };
    let (items, _) = client.list(&path).await?;
    let mut rows: Vec<StatusRow> = items.iter().map(row).collect();
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(rows)
}

/// Asks the controller to issue `namespace/name` now; returns its revision before the request.
pub async fn request_renew(client: &KubeClient, namespace: &str, name: &str) -> Result<u64, KubeError> {
    let path = cm_path(namespace, "certificates", Some(name));
    let patch = json!({"metadata": {"annotations": {RENEW_ANNOTATION: rfc3339(SystemTime::now())}}});
    let cert = client.merge_patch(&path, &patch).await?;
    Ok(cert
        .pointer("/status/revision")
        .and_then(Value::as_u64)
        .unwrap_or(0))
}

/// The revision of `namespace/name` now (0 when it has none or is gone).
pub async fn revision(client: &KubeClient, namespace: &str, name: &str) -> Result<u64, KubeError> {
    let cert = client
        .get(&cm_path(namespace, "certificates", Some(name)))
        .await?;
    Ok(cert
        .and_then(|c| c.pointer("/status/revision").and_then(Value::as_u64))
        .unwrap_or(0))
}
