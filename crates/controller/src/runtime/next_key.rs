//! The next private key, kept between attempts in cert-manager's next-private-key Secret, so
//! every request of one revision carries the same public key.

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret as KubeSecret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::*;

impl KubeRuntime {
    pub(super) fn pending_name(&self, id: &str) -> Option<String> {
        let known = self
            .pending_keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(id)
            .cloned();
        known.or_else(|| {
            self.certificates
                .get(id)?
                .status
                .next_private_key_secret_name
                .clone()
        })
    }

    pub(super) fn set_pending_name(&self, id: &CertId, name: Option<String>) {
        let mut known = self
            .pending_keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match name {
            Some(n) => known.insert(id.clone(), n),
            None => known.remove(id),
        };
    }

    /// The next-private-key Secret of `meta`, if it exists and is ours: labelled as one and,
    /// when the Certificate's uid is known, owned by it (a Secret someone else named in the
    /// status is not a key source).
    pub(super) async fn pending_secret(
        &self,
        meta: &CertMeta,
        name: &str,
    ) -> Result<Option<KubeSecret>, KubeError> {
        let Some(secret) = self
            .client
            .get_object::<KubeSecret>(&secret_path(&meta.namespace, name)?)
            .await?
        else {
            return Ok(None);
        };
        let labelled = secret
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(NEXT_PRIVATE_KEY_LABEL))
            .is_some_and(|v| v == "true");
        let owned = meta.uid.is_empty()
            || secret
                .metadata
                .owner_references
                .iter()
                .flatten()
                .any(|r| r.uid == meta.uid);
        if labelled && owned {
            Ok(Some(secret))
        } else {
            tracing::warn!(certificate = %format!("{}/{}", meta.namespace, meta.name), secret = name,
                           "status.nextPrivateKeySecretName names a Secret that is not a next-private-key Secret of this Certificate; ignoring it");
            Ok(None)
        }
    }

    /// After an issuance: the next private key is now the served one; its Secret goes.
    pub(super) async fn discard_pending_key(&self, job: &CertJob, meta: &CertMeta) {
        let Some(name) = self.pending_name(&job.id) else {
            return;
        };
        let result = async { self.client.delete(&secret_path(&meta.namespace, &name)?).await }.await;
        match result {
            Ok(()) => {
                self.set_pending_name(&job.id, None);
                if let Some(target) = self.target(&job.id) {
                    self.status.next_private_key(&job.id, &target, None);
                }
            }
            Err(e) => {
                tracing::warn!(certificate = %job.id, secret = %name, error = %e, "cannot remove the next private key Secret")
            }
        }
    }

    /// The key of an earlier failed attempt, if its Secret exists and is ours.
    pub(super) async fn load_pending_key(&self, job: &CertJob) -> Option<Secret> {
        let meta = self.tracked(&job.id)?.meta;
        let name = self.pending_name(&job.id)?;
        let secret = match self.pending_secret(&meta, &name).await {
            Ok(s) => s?,
            Err(e) => {
                tracing::warn!(certificate = %job.id, secret = %name, error = %e, "cannot read the next private key Secret");
                return None;
            }
        };
        let key = String::from_utf8(secret.data?.remove(TLS_KEY)?.0).ok()?;
        // Left behind by an issuance whose clean-up failed: that key is served already, and
        // reusing it would skip a rotation.
        if self
            .current_key(job)
            .await
            .is_some_and(|served| served.expose() == key.as_str())
        {
            tracing::info!(certificate = %job.id, secret = %name, "the kept key is the one served; removing its Secret");
            self.discard_pending_key(job, &meta).await;
            return None;
        }
        Some(Secret::new(key))
    }

    /// cert-manager's next private key Secret, written when an attempt with a new key fails:
    /// `<certificate>-<random>`, labelled [`NEXT_PRIVATE_KEY_LABEL`] and [`FAO_LABEL`], owned by
    /// the Certificate (garbage-collected with it), named in `status.nextPrivateKeySecretName`.
    /// A replaced key (the spec's key algorithm changed) is written into the same Secret. An
    /// attempt that succeeds at once stores nothing here (no extra API calls per issuance).
    pub(super) async fn keep_pending_key(&self, job: &CertJob, key_pem: &Secret) -> Result<(), RuntimeError> {
        let meta = self.meta(&job.id)?;
        let data = BTreeMap::from([(
            TLS_KEY.to_owned(),
            ByteString(key_pem.expose().as_bytes().to_vec()),
        )]);
        if let Some(name) = self.pending_name(&job.id) {
            let existing = self
                .pending_secret(&meta, &name)
                .await
                .map_err(|e| runtime_error(e, "reading the next private key Secret"))?;
            if let Some(mut secret) = existing {
                secret.data = Some(data);
                async {
                    let path = secret_path(&meta.namespace, &name)?;
                    self.client.replace_object(&path, &secret).await
                }
                .await
                .map_err(|e| runtime_error(e, "updating the next private key Secret"))?;
                self.set_pending_name(&job.id, Some(name));
                return Ok(());
            }
        }
        let owner = (!meta.uid.is_empty()).then(|| vec![meta.owner_reference()]);
        let body = KubeSecret {
            metadata: ObjectMeta {
                generate_name: Some(format!("{}-", meta.name)),
                namespace: Some(meta.namespace.clone()),
                labels: Some(BTreeMap::from([
                    (NEXT_PRIVATE_KEY_LABEL.to_owned(), "true".to_owned()),
                    (FAO_LABEL.to_owned(), "true".to_owned()),
                ])),
                owner_references: owner,
                ..ObjectMeta::default()
            },
            type_: Some("Opaque".to_owned()),
            data: Some(data),
            ..KubeSecret::default()
        };
        let created = async {
            self.client
                .create_object(&secrets_path(&meta.namespace)?, &body)
                .await
        }
        .await
        .map_err(|e| runtime_error(e, "creating the next private key Secret"))?;
        let name = created.metadata.name.unwrap_or_default();
        self.set_pending_name(&job.id, Some(name.clone()));
        if let Some(target) = self.target(&job.id) {
            self.status.next_private_key(&job.id, &target, Some(name));
        }
        Ok(())
    }
}
