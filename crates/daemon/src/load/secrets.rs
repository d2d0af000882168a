//! `v1` Secrets defined in the manifests, as the standalone runtime's source of Secret values
//! next to `secrets.dir` and `secrets.refs`.
//!
//! - **One source per Secret.** A Secret (namespace/name) the manifests define is read from the
//!   manifests only. If the configuration also provides it (a `<secrets.dir>/<namespace>/<name>`
//!   entry, or a `secrets.refs` entry for that Secret), that is a conflict: it is reported as a
//!   manifest problem (`certkeeper check` exits 2) and references to the Secret fail until one
//!   source is removed. In a cluster a Secret exists once; two definitions that could differ
//!   would leave it to an ordering rule which token is sent to Vault.
//! - **Read at each login.** The issuers' clients read tokens, AppRole secret ids and JWTs from
//!   the store at every login, and a reload replaces the store's content: editing a Secret in a
//!   manifest rotates the token without rebuilding the issuer, as editing a file under
//!   `secrets.dir` does. CA bundles and client certificates are read when the issuer is built
//!   (a change rebuilds it).
//! - **Never shown.** Values stay in [`certkeeper_core::SecretBytes`]; messages name the Secret,
//!   its key and its manifest, never a value.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, PoisonError, RwLock};

use certkeeper_core::Secret;
use certkeeper_core::spec::ManifestSecret;
use certkeeper_engine::build::CredentialError;
use certkeeper_vault::SecretProvider;

use crate::config::Config;

/// (namespace, name) of a Secret.
pub(crate) type SecretKey = (String, String);

/// What the manifests say about one Secret.
#[derive(Debug, Clone)]
pub(crate) enum SecretEntry {
    /// Defined in `origin` (`file: document n`).
    Defined {
        origin: String,
        secret: Arc<ManifestSecret>,
    },
    /// Defined, but not usable: its document is invalid, or the configuration provides it too.
    Unusable { why: String },
}

/// The manifests' Secrets, shared between loads and the issuers' clients: a load replaces the
/// content, and every login reads the current one. Cloning shares the store.
#[derive(Debug, Clone, Default)]
pub struct ManifestSecrets(Arc<RwLock<Arc<BTreeMap<SecretKey, SecretEntry>>>>);

impl ManifestSecrets {
    pub(crate) fn replace(&self, entries: BTreeMap<SecretKey, SecretEntry>) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(entries);
    }

    pub(crate) fn snapshot(&self) -> Arc<BTreeMap<SecretKey, SecretEntry>> {
        self.0.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The names of the Secrets defined and usable (`namespace/name`), for `certkeeper check`.
    pub fn names(&self) -> Vec<String> {
        self.snapshot()
            .iter()
            .filter(|(_, e)| matches!(e, SecretEntry::Defined { .. }))
            .map(|((namespace, name), _)| format!("{namespace}/{name}"))
            .collect()
    }
}

/// `Secret <namespace>/<name>`.
fn what(namespace: &str, name: &str) -> String {
    format!("Secret {namespace}/{name}")
}

/// Secret `namespace/name` key `key` from `entries`: `None` when the manifests do not define the
/// Secret (the configuration resolves it), else its value or why there is none.
pub(crate) fn lookup(
    entries: &BTreeMap<SecretKey, SecretEntry>,
    namespace: &str,
    name: &str,
    key: &str,
) -> Option<Result<Secret, CredentialError>> {
    let entry = entries.get(&(namespace.to_owned(), name.to_owned()))?;
    Some(match entry {
        SecretEntry::Unusable { why } => Err(CredentialError::Failed {
            what: what(namespace, name),
            message: why.clone(),
        }),
        SecretEntry::Defined { origin, secret } => match secret.get(key) {
            None => Err(CredentialError::MissingKey {
                what: format!("{} (defined in {origin})", what(namespace, name)),
                key: key.to_owned(),
            }),
            Some(bytes) => bytes.to_secret().ok_or_else(|| CredentialError::InvalidContent {
                what: format!("{} key {key:?}", what(namespace, name)),
                problem: "is not UTF-8 text",
            }),
        },
    })
}

/// How the configuration also provides Secret `namespace/name`, if it does. The namespace and
/// name were validated as the API server validates them (a DNS label and subdomain: no `/`, no
/// `..`), so the path built from them stays under `secrets.dir`.
pub(crate) fn configured_elsewhere(config: &Config, namespace: &str, name: &str) -> Option<String> {
    if config.has_secret_ref(namespace, name) {
        return Some(format!("a secrets.refs entry for {namespace}/{name}"));
    }
    let dir = config.secrets_dir.as_deref()?.join(namespace).join(name);
    std::fs::symlink_metadata(&dir)
        .is_ok()
        .then(|| format!("secrets.dir ({})", Path::new(&dir).display()))
}

/// One key of a manifest Secret, read from the store at each login.
#[derive(Debug)]
pub(crate) struct ManifestKey {
    pub store: ManifestSecrets,
    pub namespace: String,
    pub name: String,
    pub key: String,
}

impl SecretProvider for ManifestKey {
    fn describe(&self) -> String {
        format!(
            "{} key {:?} in the manifests",
            what(&self.namespace, &self.name),
            self.key
        )
    }

    fn fetch(&self) -> Pin<Box<dyn Future<Output = Result<Secret, CredentialError>> + Send + '_>> {
        Box::pin(async move {
            let entries = self.store.snapshot();
            let value = lookup(&entries, &self.namespace, &self.name, &self.key).unwrap_or_else(|| {
                Err(CredentialError::NotFound {
                    what: format!(
                        "{} (no longer in the manifests)",
                        what(&self.namespace, &self.name)
                    ),
                })
            })?;
            Ok(Secret::new(value.expose().trim()))
        })
    }
}
