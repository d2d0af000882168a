//! One Vault issuer for the standalone runtime: its Secret references resolve to a Secret in the
//! manifests (see [`super::secrets`]), else to files or environment variables (see
//! [`crate::config`]); the runtime itself is built by the engine's shared
//! [`certkeeper_engine::build::build_issuer`].
//!
//! A reference resolved through `secrets.dir` (`<dir>/<namespace>/<name>/<key>`) is a path built
//! from a manifest, so it gets two walls: the namespace, name and key must be what the API
//! server would accept (no `/`, no `..`; validation already refuses other manifests, this
//! refuses whatever reaches here), and the file actually read, after symlinks are resolved,
//! must lie under `secrets.dir` (symlinks inside it, such as a mounted Secret's `..data`, are
//! fine). Files named in `secrets.refs` are the operator's own choice and read as given.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use certkeeper_core::Secret;
use certkeeper_core::spec::VaultIssuer;
use certkeeper_core::spec::{check_dns_label, check_dns_subdomain, check_secret_key};
use certkeeper_engine::build::{BuildError, CredentialError, SecretResolver, VaultExtras, build_issuer};
use certkeeper_engine::metrics::Metrics;
use certkeeper_engine::{IssuerId, IssuerRuntime};
use certkeeper_vault::aws::AwsEnvironment;
use certkeeper_vault::{SecretProvider, SecretSource};

use super::secrets::{ManifestKey, ManifestSecrets, SecretEntry, SecretKey, lookup};
use crate::config::{Config, SecretLocation};

/// Resolves one issuer's Secret references through the manifests' Secrets, then the
/// configuration.
struct Resolver<'a> {
    config: &'a Config,
    manifest: &'a ManifestSecrets,
    /// The store's content for this load.
    entries: Arc<BTreeMap<SecretKey, SecretEntry>>,
    namespace: &'a str,
}

/// The namespace, name and key of a reference, checked as the API server checks them.
fn check_reference(namespace: &str, name: &str, key: &str) -> Result<(), CredentialError> {
    fn invalid(what: &'static str, value: &str, reason: &'static str) -> CredentialError {
        CredentialError::InvalidReference {
            what,
            value: value.to_owned(),
            reason,
        }
    }
    check_dns_label(namespace).map_err(|r| invalid("namespace", namespace, r))?;
    check_dns_subdomain(name).map_err(|r| invalid("Secret name", name, r))?;
    check_secret_key(key).map_err(|r| invalid("Secret key", key, r))?;
    Ok(())
}

/// `path` with every symlink resolved, if that lies under `root` (resolved too).
fn contained(root: &Path, path: &Path) -> Result<PathBuf, CredentialError> {
    fn canonical(path: &Path) -> Result<PathBuf, CredentialError> {
        std::fs::canonicalize(path).map_err(|source| unreadable(path, source))
    }
    let root = canonical(root)?;
    let resolved = canonical(path)?;
    if resolved.starts_with(&root) {
        Ok(resolved)
    } else {
        Err(CredentialError::OutsideDirectory {
            path: path.to_owned(),
            resolved,
            root,
        })
    }
}

/// Reads `path` if it resolves under `root`; the file read is the one checked (its resolved
/// path), so a link swapped in between cannot redirect the read.
fn read_contained(root: &Path, path: &Path) -> Result<String, CredentialError> {
    let resolved = contained(root, path)?;
    std::fs::read_to_string(&resolved).map_err(|source| unreadable(path, source))
}

/// `cannot read <path>: <why>`.
fn unreadable(path: &Path, source: std::io::Error) -> CredentialError {
    CredentialError::Unreadable {
        what: path.display().to_string(),
        source,
    }
}

/// A file under `secrets.dir`, re-read (and re-checked) at every Vault login.
#[derive(Debug)]
struct ContainedFile {
    root: PathBuf,
    path: PathBuf,
}

impl SecretProvider for ContainedFile {
    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }

    fn fetch(&self) -> Pin<Box<dyn Future<Output = Result<Secret, CredentialError>> + Send + '_>> {
        Box::pin(async move {
            let (root, path) = (self.root.clone(), self.path.clone());
            tokio::task::spawn_blocking(move || read_contained(&root, &path))
                .await
                .map_err(|e| CredentialError::Failed {
                    what: self.describe(),
                    message: e.to_string(),
                })?
                .map(|s| Secret::new(s.trim()))
        })
    }
}

/// Where a reference resolves: a Secret in the manifests (its value now), or the
/// configuration's answer, with the `secrets.dir` root when that is where it came from.
enum Located {
    Manifest(Secret),
    Dir { root: PathBuf, path: PathBuf },
    Given(SecretLocation),
}

impl<'a> Resolver<'a> {
    fn new(config: &'a Config, manifest: &'a ManifestSecrets, namespace: &'a str) -> Self {
        Resolver {
            config,
            manifest,
            entries: manifest.snapshot(),
            namespace,
        }
    }

    fn locate(&self, field: &str, name: &str, key: &str) -> Result<Located, CredentialError> {
        if let Some(value) = lookup(&self.entries, self.namespace, name, key) {
            return value.map(Located::Manifest).map_err(|e| e.in_field(field));
        }
        let location = self
            .config
            .secret_location(self.namespace, name, key)
            .ok_or_else(|| {
                CredentialError::Unresolved {
                    what: format!("Secret {}/{name} key {key:?}", self.namespace),
                }
                .in_field(field)
            })?;
        match (location, &self.config.secrets_dir) {
            (SecretLocation::File(path), Some(root))
                if path == root.join(self.namespace).join(name).join(key) =>
            {
                check_reference(self.namespace, name, key).map_err(|e| e.in_field(field))?;
                Ok(Located::Dir {
                    root: root.clone(),
                    path,
                })
            }
            (location, _) => Ok(Located::Given(location)),
        }
    }
}

impl SecretResolver for Resolver<'_> {
    fn source(&mut self, field: &str, name: &str, key: &str) -> Result<SecretSource, CredentialError> {
        Ok(match self.locate(field, name, key)? {
            Located::Manifest(_) => SecretSource::Provider(Arc::new(ManifestKey {
                store: self.manifest.clone(),
                namespace: self.namespace.to_owned(),
                name: name.to_owned(),
                key: key.to_owned(),
            })),
            Located::Dir { root, path } => SecretSource::Provider(Arc::new(ContainedFile { root, path })),
            Located::Given(SecretLocation::File(path)) => SecretSource::File(path),
            Located::Given(SecretLocation::Env(var)) => SecretSource::Env(var),
        })
    }

    fn read(&mut self, field: &str, name: &str, key: &str) -> Result<String, CredentialError> {
        let value = match self.locate(field, name, key)? {
            Located::Manifest(value) => Ok(value.expose().to_owned()),
            Located::Dir { root, path } => read_contained(&root, &path),
            Located::Given(SecretLocation::File(path)) => {
                std::fs::read_to_string(&path).map_err(|source| unreadable(&path, source))
            }
            Located::Given(SecretLocation::Env(name)) => {
                std::env::var(&name).map_err(|_| CredentialError::EnvNotSet { name })
            }
        }
        .map_err(|e| e.in_field(field))?;
        if value.trim().is_empty() {
            let what = format!("Secret {}/{name} key {key:?}", self.namespace);
            return Err(CredentialError::Empty { what }.in_field(field));
        }
        Ok(value)
    }

    fn service_account_token(
        &mut self,
        field: &str,
        _service_account: &str,
        _audiences: Vec<String>,
    ) -> Result<SecretSource, CredentialError> {
        Err(CredentialError::NeedsKubernetes {
            field: field.to_owned(),
        })
    }

    fn aws_environment(&self) -> AwsEnvironment {
        self.config.aws.clone()
    }

    /// Standalone, the operator writes every manifest: any issuer may use the daemon's own AWS
    /// credentials (what cert-manager's ambient-credentials flags allow when both are on).
    fn ambient_aws(&mut self, _field: &str, _id: &IssuerId) -> Result<(), CredentialError> {
        Ok(())
    }
}

/// Where Secret `namespace/name` key `key` is read from, checked as an Issuer's references are
/// (used for a Certificate's PKCS#12 password).
pub(super) fn secret_source(
    config: &Config,
    manifest: &ManifestSecrets,
    namespace: &str,
    field: &str,
    name: &str,
    key: &str,
) -> Result<SecretSource, CredentialError> {
    Resolver::new(config, manifest, namespace).source(field, name, key)
}

/// Builds (or reuses) the runtime of issuer `id`, whose Secrets live in `namespace`. The error's
/// message is a [`super::LoadProblem`]'s.
#[allow(clippy::too_many_arguments)]
pub(super) fn build(
    config: &Config,
    manifest: &ManifestSecrets,
    metrics: &Metrics,
    previous: &HashMap<IssuerId, IssuerRuntime>,
    id: &IssuerId,
    namespace: &str,
    vault: &VaultIssuer,
    extras: &VaultExtras,
) -> Result<IssuerRuntime, BuildError> {
    let mut resolver = Resolver::new(config, manifest, namespace);
    build_issuer(
        &mut resolver,
        id,
        vault,
        extras,
        &config.issuers,
        metrics,
        previous,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The findings of the issue: a name of `../../x` or an absolute key read any file the
    /// daemon could read. Refused by shape before any path exists.
    #[test]
    fn hostile_references_are_refused_by_shape() {
        for (namespace, name, key) in [
            ("default", "../../etc", "passwd"),
            ("default", "vault", "/etc/shadow"),
            ("default", "vault", "../token"),
            ("default", "vault", ".."),
            ("..", "vault", "token"),
            ("default", "a/b", "token"),
            ("default", "", "token"),
        ] {
            assert!(
                matches!(
                    check_reference(namespace, name, key),
                    Err(CredentialError::InvalidReference { .. })
                ),
                "{namespace}/{name}/{key}"
            );
        }
        check_reference("default", "vault.token", "secret_id.txt").unwrap();
    }

    /// A symlink planted inside secrets.dir that points outside it is not followed; one inside
    /// it (a mounted Secret's `..data` layout) is.
    #[test]
    fn hostile_symlink_out_of_the_secrets_dir_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("secrets");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(root.join("default/vault")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("private"), "do-not-send").unwrap();
        std::os::unix::fs::symlink(outside.join("private"), root.join("default/vault/token")).unwrap();
        let err = read_contained(&root, &root.join("default/vault/token")).unwrap_err();
        assert!(matches!(err, CredentialError::OutsideDirectory { .. }), "{err}");
        assert!(!err.to_string().contains("do-not-send"));

        std::fs::create_dir_all(root.join("default/mounted/..2026_12_07")).unwrap();
        std::fs::write(root.join("default/mounted/..2026_12_07/token"), "s.abc\n").unwrap();
        std::os::unix::fs::symlink("..2026_12_07", root.join("default/mounted/..data")).unwrap();
        std::os::unix::fs::symlink("..data/token", root.join("default/mounted/token")).unwrap();
        assert_eq!(
            read_contained(&root, &root.join("default/mounted/token")).unwrap(),
            "s.abc\n"
        );
    }
}
