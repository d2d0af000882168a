//! The CertificateRequest kept per revision, as cert-manager keeps them (a record for tools that
//! watch them; the certificate is already served when it is written).

use certkeeper_core::spec::{
    API_VERSION, Base64Bytes, CERT_MANAGER_GROUP, CONDITION_APPROVED, CONDITION_READY,
    CertificateRequestCondition, CertificateRequestStatus, ConditionStatus, IssuerReference, REASON_ISSUED,
    format_go_duration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::*;
use crate::objects::CERTIFICATE_NAME_ANNOTATION;

/// cert-manager's annotations on the CertificateRequest of a revision.
const REVISION_ANNOTATION: &str = "cert-manager.io/certificate-revision";
const PRIVATE_KEY_ANNOTATION: &str = "cert-manager.io/private-key-secret-name";

/// The CertificateRequest of a revision, as created (its status is written after).
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct RequestRecord<'a> {
    api_version: &'static str,
    kind: &'static str,
    metadata: ObjectMeta,
    spec: RecordSpec<'a>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct RecordSpec<'a> {
    request: Base64Bytes,
    issuer_ref: IssuerReference,
    duration: String,
    #[serde(rename = "isCA", skip_serializing_if = "std::ops::Not::not")]
    is_ca: bool,
    /// cert-manager's wire names.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    usages: &'a [String],
}

#[derive(serde::Serialize)]
struct StatusOnly<'a> {
    status: &'a CertificateRequestStatus,
}

impl KubeRuntime {
    /// The CertificateRequest of this revision, Approved and Ready with the certificate, and
    /// the pruning of older ones beyond revisionHistoryLimit.
    pub(super) async fn record_request(
        &self,
        job: &CertJob,
        meta: &CertMeta,
        issued: &Issued,
        key_secret: &str,
    ) -> Result<(), KubeError> {
        let name = format!("{}-{}", meta.name, issued.revision);
        let collection = cm_path(&meta.namespace, "certificaterequests", None)?;
        let path = cm_path(&meta.namespace, "certificaterequests", Some(&name))?;
        let record = RequestRecord {
            api_version: API_VERSION,
            kind: "CertificateRequest",
            metadata: ObjectMeta {
                name: Some(name),
                namespace: Some(meta.namespace.clone()),
                annotations: Some(BTreeMap::from([
                    (CERTIFICATE_NAME_ANNOTATION.to_owned(), meta.name.clone()),
                    (REVISION_ANNOTATION.to_owned(), issued.revision.to_string()),
                    (PRIVATE_KEY_ANNOTATION.to_owned(), key_secret.to_owned()),
                ])),
                owner_references: (!meta.uid.is_empty()).then(|| vec![meta.owner_reference()]),
                ..ObjectMeta::default()
            },
            spec: RecordSpec {
                request: Base64Bytes(issued.csr_pem.as_bytes().to_vec()),
                issuer_ref: IssuerReference {
                    name: meta.issuer_name.clone(),
                    kind: meta.issuer_kind.clone(),
                    group: meta.issuer_group.clone(),
                },
                duration: format_go_duration(job.duration),
                is_ca: job.csr.is_ca,
                usages: &meta.usages,
            },
        };
        let body = serde_json::to_value(&record).map_err(|e| KubeError::Decode {
            what: format!("CertificateRequest {path}"),
            message: e.to_string(),
        })?;
        match self.client.create(&collection, &body).await {
            Ok(_) => {}
            Err(e) if e.code() == Some(409) => {
                // Left over from an earlier Certificate of the same name: replace it.
                self.client.delete(&path).await?;
                self.client.create(&collection, &body).await?;
            }
            Err(e) => return Err(e),
        }
        let now = rfc3339(SystemTime::now());
        let cert = &issued.certificate;
        let condition = |kind: &str, reason: &str, message: &str| CertificateRequestCondition {
            condition_type: kind.to_owned(),
            status: ConditionStatus::True,
            last_transition_time: Some(now.clone()),
            reason: reason.to_owned(),
            message: message.to_owned(),
        };
        let status = CertificateRequestStatus {
            conditions: vec![
                condition(
                    CONDITION_APPROVED,
                    CERT_MANAGER_GROUP,
                    "Certificate request has been approved by certkeeper",
                ),
                condition(
                    CONDITION_READY,
                    REASON_ISSUED,
                    "Certificate fetched from issuer successfully",
                ),
            ],
            certificate: Some(Base64Bytes(cert.tls_crt().into_bytes())),
            ca: cert.ca_crt().map(|ca| Base64Bytes(ca.into_bytes())),
            failure_time: None,
        };
        let patch = serde_json::to_value(StatusOnly { status: &status }).map_err(|e| KubeError::Decode {
            what: format!("the status of CertificateRequest {path}"),
            message: e.to_string(),
        })?;
        self.client.merge_patch(&format!("{path}/status"), &patch).await?;
        self.prune_requests(meta, issued.revision).await
    }

    pub(super) async fn prune_requests(&self, meta: &CertMeta, revision: u64) -> Result<(), KubeError> {
        let keep = u64::from(meta.revision_history_limit);
        if revision <= keep {
            return Ok(());
        }
        let (items, _) = self
            .client
            .list(&cm_path(&meta.namespace, "certificaterequests", None)?)
            .await?;
        for item in items {
            let Some(item_meta) = item
                .get("metadata")
                .cloned()
                .and_then(|m| serde_json::from_value::<ObjectMeta>(m).ok())
            else {
                continue;
            };
            let annotations = item_meta.annotations.unwrap_or_default();
            let annotation = |k: &str| annotations.get(k).map(String::as_str);
            if annotation(CERTIFICATE_NAME_ANNOTATION) != Some(meta.name.as_str()) {
                continue;
            }
            let Some(rev) = annotation(REVISION_ANNOTATION).and_then(|r| r.parse::<u64>().ok()) else {
                continue;
            };
            if rev + keep <= revision
                && let Some(name) = &item_meta.name
            {
                self.client
                    .delete(&cm_path(&meta.namespace, "certificaterequests", Some(name))?)
                    .await?;
            }
        }
        Ok(())
    }
}

/// The CertificateRequests of `namespace`, listed once per pass for the Certificates adopted in
/// it (see [`current_request`]).
pub async fn namespace_requests(client: &KubeClient, namespace: &str) -> Result<Vec<Value>, KubeError> {
    Ok(client
        .list(&cm_path(namespace, "certificaterequests", None)?)
        .await?
        .0)
}

/// cert-manager's CertificateRequest of `revision` of Certificate `name` (uid `uid`) among
/// `requests` (its namespace's): annotated with the Certificate's name and that revision and
/// owned by it, as cert-manager's issuing policies find it (`None`: there is none, or more
/// than one).
pub fn current_request<'a>(requests: &'a [Value], name: &str, uid: &str, revision: u64) -> Option<&'a Value> {
    let mut found = requests.iter().filter(|item| {
        let annotation = |k: &str| {
            item.pointer("/metadata/annotations")
                .and_then(|a| a.get(k))
                .and_then(Value::as_str)
        };
        let owned = item
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .is_some_and(|owners| owners.iter().any(|o| o["uid"] == uid));
        owned
            && annotation(CERTIFICATE_NAME_ANNOTATION) == Some(name)
            && annotation(REVISION_ANNOTATION).and_then(|r| r.parse::<u64>().ok()) == Some(revision)
    });
    match (found.next(), found.next()) {
        (Some(one), None) => Some(one),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::current_request;

    fn request(name: &str, certificate: &str, revision: &str, owner: &str) -> serde_json::Value {
        json!({"metadata": {"name": name,
                            "annotations": {"cert-manager.io/certificate-name": certificate,
                                            "cert-manager.io/certificate-revision": revision},
                            "ownerReferences": [{"uid": owner}]}})
    }

    #[test]
    fn the_current_request_is_the_one_of_the_revision_owned_by_the_certificate() {
        let requests = [
            request("web-a", "web", "1", "u1"),
            request("web-b", "web", "2", "u1"),
            request("api-c", "api", "2", "u2"),
            request("stale-d", "web", "2", "u0"),
        ];
        let found = current_request(&requests, "web", "u1", 2).map(|r| &r["metadata"]["name"]);
        assert_eq!(found, Some(&json!("web-b")));
        assert!(current_request(&requests, "web", "u1", 3).is_none());
        assert!(
            current_request(&requests, "web", "u9", 1).is_none(),
            "another owner"
        );
        // Two candidates: none is taken (cert-manager refuses to choose as well).
        let twice = [
            request("web-a", "web", "1", "u1"),
            request("web-b", "web", "1", "u1"),
        ];
        assert!(current_request(&twice, "web", "u1", 1).is_none());
    }
}
