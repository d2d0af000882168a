//! The target Secret: the certificate, key and CA in cert-manager's keys and formats, with
//! cert-manager's annotations and the spec fingerprint ([`SPEC_HASH_ANNOTATION`]).

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::*;
use crate::objects::{
    CERTIFICATE_NAME_ANNOTATION, ISSUER_GROUP_ANNOTATION, ISSUER_KIND_ANNOTATION, ISSUER_NAME_ANNOTATION,
};

/// The type of a target Secret, as cert-manager writes it.
const TLS_SECRET_TYPE: &str = "kubernetes.io/tls";

impl KubeRuntime {
    pub(super) async fn write_secret(
        &self,
        job: &CertJob,
        meta: &CertMeta,
        issued: &Issued,
    ) -> Result<(), RuntimeError> {
        let cert = &issued.certificate;
        let data: BTreeMap<String, ByteString> = output_items(&meta.formats, issued, job.key_encoding)
            .await?
            .into_iter()
            .map(|item| (item.name.to_owned(), ByteString(item.contents.to_vec())))
            .collect();
        let mut annotations = meta.secret_annotations.clone();
        let ips: Vec<String> = cert.ip_addresses.iter().map(ToString::to_string).collect();
        for (k, v) in [
            (CERTIFICATE_NAME_ANNOTATION, meta.name.clone()),
            (ISSUER_NAME_ANNOTATION, meta.issuer_name.clone()),
            (ISSUER_KIND_ANNOTATION, meta.issuer_kind.clone()),
            (ISSUER_GROUP_ANNOTATION, meta.issuer_group.clone()),
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
        let create =
            secrets_path(&meta.namespace).map_err(|e| runtime_error(e, "creating the target Secret"))?;
        let new_secret = || Secret {
            metadata: ObjectMeta {
                name: Some(meta.secret_name.clone()),
                namespace: Some(meta.namespace.clone()),
                labels: Some(labels.clone()),
                annotations: Some(annotations.clone()),
                ..ObjectMeta::default()
            },
            type_: Some(TLS_SECRET_TYPE.to_owned()),
            data: Some(data.clone()),
            ..Secret::default()
        };
        // A Secret the target Secrets' watch does not show is most likely not there (a first
        // issuance): it is created without a read first. One that exists all the same (written
        // without cert-manager's label, or not in the watch yet) answers 409 Conflict and is
        // read and updated as any other.
        let key = format!("{}/{}", meta.namespace, meta.secret_name);
        if self.owned_secrets.synced() && self.owned_secrets.get(&key).is_none() {
            match self.client.create_object(&create, &new_secret()).await {
                Ok(_) => return Ok(()),
                Err(e) if e.code() == Some(409) => {}
                Err(e) => return Err(runtime_error(e, "creating the target Secret")),
            }
        }
        let existing: Option<Secret> = self
            .client
            .get_object(&path)
            .await
            .map_err(|e| runtime_error(e, "reading the target Secret"))?;
        match existing {
            Some(mut secret) => {
                let kind = secret.type_.as_deref().unwrap_or_default();
                if !kind.is_empty() && kind != TLS_SECRET_TYPE {
                    return Err(RuntimeError {
                        class: FailureClass::Invalid,
                        message: format!(
                            "Secret {}/{} exists with type {kind}, not {TLS_SECRET_TYPE}",
                            meta.namespace, meta.secret_name
                        ),
                    });
                }
                secret.metadata.labels.get_or_insert_default().extend(labels);
                secret
                    .metadata
                    .annotations
                    .get_or_insert_default()
                    .extend(annotations);
                let stored = secret.data.get_or_insert_default();
                // Formats no longer asked for (or a CA no longer returned) go away.
                for name in CONDITIONAL {
                    if !data.contains_key(name) {
                        stored.remove(name);
                    }
                }
                stored.extend(data);
                secret.type_ = Some(TLS_SECRET_TYPE.to_owned());
                self.client
                    .replace_object(&path, &secret)
                    .await
                    .map_err(|e| runtime_error(e, "updating the target Secret"))?;
            }
            None => {
                self.client
                    .create_object(&create, &new_secret())
                    .await
                    .map_err(|e| runtime_error(e, "creating the target Secret"))?;
            }
        }
        Ok(())
    }
}
