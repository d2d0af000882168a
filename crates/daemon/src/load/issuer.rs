//! One Vault issuer for the standalone runtime: its Secret references resolve to files or
//! environment variables (see [`crate::config`]); the runtime itself is built by the engine's
//! shared [`certkeeper_engine::build::build_issuer`].
//!
//! A reference resolved through `secrets.dir` (`<dir>/<namespace>/<name>/<key>`) is a path built
//! from a manifest, so it gets two walls: the namespace, name and key must be what the API
//! server would accept (no `/`, no `..`; validation already refuses other manifests, this
//! refuses whatever reaches here), and the file actually read, after symlinks are resolved,
//! must lie under `secrets.dir` (symlinks inside it, such as a mounted Secret's `..data`, are
//! fine). Files named in `secrets.refs` are the operator's own choice and read as given.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use certkeeper_core::Secret;
use certkeeper_core::spec::VaultIssuer;
use certkeeper_core::spec::{check_dns_label, check_dns_subdomain, check_secret_key};
use certkeeper_engine::build::{SecretResolver, build_issuer};
use certkeeper_engine::metrics::Metrics;
use certkeeper_engine::{IssuerId, IssuerRuntime};
use certkeeper_vault::{SecretProvider, SecretSource};

use crate::config::{Config, SecretLocation};

/// Resolves one issuer's Secret references through the configuration.
struct Resolver<'a> {
    config: &'a Config,
    namespace: &'a str,
}

/// Why a Secret reference was not resolved to a file.
#[derive(Debug, thiserror::Error)]
pub enum SecretPathError {
    #[error("{what} {value:?} is not valid: {reason}")]
    InvalidSegment {
        what: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{} resolves to {}, outside secrets.dir {}", path.display(), resolved.display(), root.display())]
    Outside {
        path: PathBuf,
        resolved: PathBuf,
        root: PathBuf,
    },
}

/// The namespace, name and key of a reference, checked as the API server checks them.
fn check_reference(namespace: &str, name: &str, key: &str) -> Result<(), SecretPathError> {
    fn invalid(what: &'static str, value: &str, reason: &'static str) -> SecretPathError {
        SecretPathError::InvalidSegment {
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
fn contained(root: &Path, path: &Path) -> Result<PathBuf, SecretPathError> {
    fn canonical(path: &Path) -> Result<PathBuf, SecretPathError> {
        std::fs::canonicalize(path).map_err(|source| SecretPathError::Read {
            path: path.to_owned(),
            source,
        })
    }
    let root = canonical(root)?;
    let resolved = canonical(path)?;
    if resolved.starts_with(&root) {
        Ok(resolved)
    } else {
        Err(SecretPathError::Outside {
            path: path.to_owned(),
            resolved,
            root,
        })
    }
}

/// Reads `path` if it resolves under `root`; the file read is the one checked (its resolved
/// path), so a link swapped in between cannot redirect the read.
fn read_contained(root: &Path, path: &Path) -> Result<String, SecretPathError> {
    let resolved = contained(root, path)?;
    std::fs::read_to_string(&resolved).map_err(|source| SecretPathError::Read {
        path: path.to_owned(),
        source,
    })
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

    fn fetch(&self) -> Pin<Box<dyn Future<Output = Result<Secret, String>> + Send + '_>> {
        Box::pin(async move {
            let (root, path) = (self.root.clone(), self.path.clone());
            tokio::task::spawn_blocking(move || read_contained(&root, &path))
                .await
                .map_err(|e| format!("{}: {e}", self.describe()))?
                .map(|s| Secret::new(s.trim()))
                .map_err(|e| e.to_string())
        })
    }
}

/// Where a reference resolves: the configuration's answer, with the `secrets.dir` root when
/// that is where it came from.
enum Located {
    Dir { root: PathBuf, path: PathBuf },
    Given(SecretLocation),
}

impl Resolver<'_> {
    fn locate(&self, field: &str, name: &str, key: &str) -> Result<Located, String> {
        let location = self
            .config
            .secret_location(self.namespace, name, key)
            .ok_or_else(|| {
                format!(
                    "{field}: Secret {}/{name} key {key:?} resolves to nothing: set secrets.dir or add a \
                     secrets.refs entry to the configuration",
                    self.namespace
                )
            })?;
        match (location, &self.config.secrets_dir) {
            (SecretLocation::File(path), Some(root))
                if path == root.join(self.namespace).join(name).join(key) =>
            {
                check_reference(self.namespace, name, key).map_err(|e| format!("{field}: {e}"))?;
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
    fn source(&mut self, field: &str, name: &str, key: &str) -> Result<SecretSource, String> {
        Ok(match self.locate(field, name, key)? {
            Located::Dir { root, path } => SecretSource::Provider(Arc::new(ContainedFile { root, path })),
            Located::Given(SecretLocation::File(path)) => SecretSource::File(path),
            Located::Given(SecretLocation::Env(var)) => SecretSource::Env(var),
        })
    }

    fn read(&mut self, field: &str, name: &str, key: &str) -> Result<String, String> {
        let value = match self.locate(field, name, key)? {
            Located::Dir { root, path } => {
                read_contained(&root, &path).map_err(|e| format!("{field}: {e}"))?
            }
            Located::Given(SecretLocation::File(path)) => std::fs::read_to_string(&path)
                .map_err(|e| format!("{field}: cannot read {}: {e}", path.display()))?,
            Located::Given(SecretLocation::Env(var)) => {
                std::env::var(&var).map_err(|_| format!("{field}: environment variable {var} is not set"))?
            }
        };
        if value.trim().is_empty() {
            return Err(format!(
                "{field}: Secret {}/{name} key {key:?} is empty",
                self.namespace
            ));
        }
        Ok(value)
    }

    fn service_account_token(
        &mut self,
        field: &str,
        _service_account: &str,
        _audiences: Vec<String>,
    ) -> Result<SecretSource, String> {
        Err(format!(
            "{field} needs the Kubernetes runtime; use secretRef standalone"
        ))
    }
}

/// Where Secret `namespace/name` key `key` is read from, checked as an Issuer's references are
/// (used for a Certificate's PKCS#12 password).
pub(super) fn secret_source(
    config: &Config,
    namespace: &str,
    field: &str,
    name: &str,
    key: &str,
) -> Result<SecretSource, String> {
    Resolver { config, namespace }.source(field, name, key)
}

/// Builds (or reuses) the runtime of issuer `id`, whose Secrets live in `namespace`. The error is
/// a message for a [`super::LoadProblem`].
pub(super) fn build(
    config: &Config,
    metrics: &Metrics,
    previous: &HashMap<IssuerId, IssuerRuntime>,
    id: &str,
    namespace: &str,
    vault: &VaultIssuer,
) -> Result<IssuerRuntime, String> {
    let mut resolver = Resolver { config, namespace };
    build_issuer(&mut resolver, id, vault, &config.issuers, metrics, previous)
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
                    Err(SecretPathError::InvalidSegment { .. })
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
        assert!(matches!(err, SecretPathError::Outside { .. }), "{err}");
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
