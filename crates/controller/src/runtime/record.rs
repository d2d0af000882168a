//! The CertificateRequest kept per revision, as cert-manager keeps them (a record for tools that
//! watch them; the certificate is already served when it is written).

use super::*;

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
        let csr = &issued.csr_pem;
        let name = format!("{}-{}", meta.name, issued.revision);
        let collection = cm_path(&meta.namespace, "certificaterequests", None)?;
        let path = cm_path(&meta.namespace, "certificaterequests", Some(&name))?;
        let mut issuer_ref = json!({"name": meta.issuer_name, "kind": meta.issuer_kind});
        if !meta.issuer_group.is_empty() {
            issuer_ref["group"] = json!(meta.issuer_group);
        }
        let mut spec = json!({
            "request": b64(csr.as_bytes()),
            "issuerRef": issuer_ref,
            "duration": certkeeper_core::spec::format_go_duration(job.duration),
        });
        if job.csr.is_ca {
            spec["isCA"] = json!(true);
        }
        if !meta.usages.is_empty() {
            spec["usages"] = json!(meta.usages);
        }
        let mut metadata = json!({
            "name": name, "namespace": meta.namespace,
            "annotations": {
                "cert-manager.io/certificate-name": meta.name,
                "cert-manager.io/certificate-revision": issued.revision.to_string(),
                "cert-manager.io/private-key-secret-name": key_secret,
            },
        });
        if !meta.uid.is_empty() {
            metadata["ownerReferences"] = json!([{
                "apiVersion": "cert-manager.io/v1", "kind": "Certificate", "name": meta.name,
                "uid": meta.uid, "controller": true, "blockOwnerDeletion": true,
            }]);
        }
        let body = json!({"apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest",
                          "metadata": metadata, "spec": spec});
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
        let mut status = json!({
            "conditions": [
                {"type": "Approved", "status": "True", "reason": "cert-manager.io",
                 "message": "Certificate request has been approved by certkeeper", "lastTransitionTime": now},
                {"type": "Ready", "status": "True", "reason": "Issued",
                 "message": "Certificate fetched from issuer successfully", "lastTransitionTime": now},
            ],
            "certificate": b64(cert.tls_crt().as_bytes()),
        });
        if let Some(ca) = cert.ca_crt() {
            status["ca"] = json!(b64(ca.as_bytes()));
        }
        self.client
            .merge_patch(&format!("{path}/status"), &json!({ "status": status }))
            .await?;
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
            let annotations = item.pointer("/metadata/annotations");
            let annotation = |k: &str| annotations.and_then(|a| a.get(k)).and_then(Value::as_str);
            if annotation("cert-manager.io/certificate-name") != Some(meta.name.as_str()) {
                continue;
            }
            let Some(rev) =
                annotation("cert-manager.io/certificate-revision").and_then(|r| r.parse::<u64>().ok())
            else {
                continue;
            };
            if rev + keep <= revision {
                let name = meta_str(&item, "name");
                self.client
                    .delete(&cm_path(&meta.namespace, "certificaterequests", Some(name))?)
                    .await?;
            }
        }
        Ok(())
    }
}
