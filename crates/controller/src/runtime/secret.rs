//! The target Secret: the certificate, key and CA in cert-manager's keys and formats, with
//! cert-manager's annotations and the spec fingerprint ([`SPEC_HASH_ANNOTATION`]).

use super::*;

impl KubeRuntime {
    pub(super) async fn write_secret(
        &self,
        job: &CertJob,
        meta: &CertMeta,
        issued: &Issued,
    ) -> Result<(), RuntimeError> {
        let cert = &issued.certificate;
        let data: BTreeMap<&str, String> = output_items(&meta.formats, issued, job.key_encoding)
            .await?
            .into_iter()
            .map(|item| (item.name, b64(&item.contents)))
            .collect();
        let mut annotations = meta.secret_annotations.clone();
        let ips: Vec<String> = cert.ip_addresses.iter().map(ToString::to_string).collect();
        for (k, v) in [
            ("cert-manager.io/certificate-name", meta.name.clone()),
            ("cert-manager.io/issuer-name", meta.issuer_name.clone()),
            ("cert-manager.io/issuer-kind", meta.issuer_kind.clone()),
            ("cert-manager.io/issuer-group", meta.issuer_group.clone()),
            (
                "cert-manager.io/common-name",
                cert.common_name.clone().unwrap_or_default(),
            ),
            ("cert-manager.io/alt-names", cert.dns_names.join(",")),
            ("cert-manager.io/ip-sans", ips.join(",")),
            ("cert-manager.io/uri-sans", cert.uris.join(",")),
            ("cert-manager.io/email-sans", cert.email_addresses.join(",")),
            (SPEC_HASH_ANNOTATION, format!("{:016x}", job.fingerprint)),
        ] {
            annotations.insert(k.to_owned(), v);
        }
        let mut labels = meta.secret_labels.clone();
        labels.insert(FAO_LABEL.to_owned(), "true".to_owned());

        let path = secret_path(&meta.namespace, &meta.secret_name)
            .map_err(|e| runtime_error(e, "the target Secret"))?;
        let existing = self
            .client
            .get(&path)
            .await
            .map_err(|e| runtime_error(e, "reading the target Secret"))?;
        match existing {
            Some(mut secret) => {
                let kind = secret.get("type").and_then(Value::as_str).unwrap_or_default();
                if !kind.is_empty() && kind != "kubernetes.io/tls" {
                    return Err(RuntimeError {
                        class: FailureClass::Invalid,
                        message: format!(
                            "Secret {}/{} exists with type {kind}, not kubernetes.io/tls",
                            meta.namespace, meta.secret_name
                        ),
                    });
                }
                let m = &mut secret["metadata"];
                for (field, values) in [("labels", &labels), ("annotations", &annotations)] {
                    if !m[field].is_object() {
                        m[field] = json!({});
                    }
                    for (k, v) in values {
                        m[field][k] = Value::String(v.clone());
                    }
                }
                if !secret["data"].is_object() {
                    secret["data"] = json!({});
                }
                for (k, v) in &data {
                    secret["data"][*k] = Value::String(v.clone());
                }
                // Formats no longer asked for (or a CA no longer returned) go away.
                if let Some(d) = secret["data"].as_object_mut() {
                    for name in CONDITIONAL {
                        if !data.contains_key(name) {
                            d.remove(name);
                        }
                    }
                }
                secret["type"] = json!("kubernetes.io/tls");
                self.client
                    .replace(&path, &secret)
                    .await
                    .map_err(|e| runtime_error(e, "updating the target Secret"))?;
            }
            None => {
                let body = json!({
                    "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                    "metadata": {"name": meta.secret_name, "namespace": meta.namespace,
                                 "labels": labels, "annotations": annotations},
                    "data": data,
                });
                let create = secrets_path(&meta.namespace)
                    .map_err(|e| runtime_error(e, "creating the target Secret"))?;
                self.client
                    .create(&create, &body)
                    .await
                    .map_err(|e| runtime_error(e, "creating the target Secret"))?;
            }
        }
        Ok(())
    }
}
