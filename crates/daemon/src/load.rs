//! Turns the configuration and the manifests it points at into what the engine runs: one
//! [`IssuerRuntime`] per Vault issuer and one [`CertJob`] (with its [`CertMeta`]) per Certificate.
//!
//! - **All or nothing for manifests.** `manifests` is a file or a directory whose `*.yaml` /
//!   `*.yml` files (sorted by name, not recursive) are read. If any file cannot be read, has a spec
//!   error, or defines an object another file defines too, [`load`] returns a [`LoadError`] listing
//!   every error of every file, and nothing is applied: the caller keeps its last good
//!   configuration.
//! - **Per-object problems do not stop the rest.** A Secret reference that resolves to nothing, a
//!   CA bundle or client certificate that cannot be read now, an unsupported auth source: the
//!   issuer is skipped and a [`LoadProblem`] says why. Its Certificates are still returned; the
//!   engine reports them as "issuer not configured" (class invalid) until a change fixes it.
//! - **Secret references** resolve through [`Config::secret_location`]. An `Issuer`'s references
//!   are in the Issuer's namespace; a `ClusterIssuer`'s in [`CLUSTER_RESOURCE_NAMESPACE`]
//!   (`cert-manager`, cert-manager's default cluster resource namespace). CA bundles and client
//!   certificates are read at load time (the TLS transport needs them); tokens, AppRole secret
//!   ids and Kubernetes JWTs are not: the client reads them at each login, so rotation needs no
//!   reload and a missing file becomes a login failure then.
//! - **Issuer ids** are `Issuer/<namespace>/<name>` and `ClusterIssuer/<name>`.
//! - **Fingerprints** are [`stable_hash`](certkeeper_core::schedule::stable_hash) of serde JSON
//!   (never `Debug` output), so they survive releases. An issuer's covers its spec, where each of
//!   its Secret references resolves to, and the contents of the CA bundle and client certificate
//!   files; a Certificate's covers its spec and its issuer's fingerprint, so an issuer change
//!   re-issues its certificates. An issuer whose fingerprint is unchanged keeps its
//!   [`IssuerRuntime`] from `previous` (token cache, gate and circuit state) unless the
//!   configuration's issuer limits (gate, timeouts) changed: then it gets a new client and gate,
//!   and its certificates are not re-issued.

mod certificate;
mod issuer;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use certkeeper_core::spec::{self, Resource};
use certkeeper_engine::metrics::Metrics;
use certkeeper_engine::{CertJob, IssuerId, IssuerRuntime};

use crate::config::Config;
use crate::model::CertMeta;

/// Where a ClusterIssuer's Secret references resolve (cert-manager's default
/// `--cluster-resource-namespace`).
pub const CLUSTER_RESOURCE_NAMESPACE: &str = "cert-manager";

/// Everything one load produced.
#[derive(Debug)]
pub struct Loaded {
    pub issuers: Vec<IssuerRuntime>,
    pub certificates: Vec<(CertJob, CertMeta)>,
    pub problems: Vec<LoadProblem>,
}

/// A problem with one object that does not stop the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadProblem {
    /// The file or object concerned ("Issuer/default/vault", "Certificate default/web").
    pub source: String,
    pub message: String,
}

impl std::fmt::Display for LoadProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.source, self.message)
    }
}

/// A failure of the whole load: nothing of it may be applied.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The manifests path (file or directory) cannot be read.
    #[error("cannot read manifests {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// Manifest files have errors: every one of every file, one per line.
    #[error("{}", .0.join("\n"))]
    Invalid(Vec<String>),
}

/// Reads the manifests and builds issuers and certificate jobs. `previous` holds the issuers of
/// the configuration in force; unchanged ones are reused.
pub fn load(
    config: &Config,
    metrics: &Metrics,
    previous: &HashMap<IssuerId, IssuerRuntime>,
) -> Result<Loaded, LoadError> {
    let resources = read_manifests(&config.manifests)?;
    let mut problems = Vec::new();
    let mut issuers = Vec::new();
    for resource in &resources {
        let (id, namespace, spec) = match resource {
            Resource::Issuer(r) => (
                format!("Issuer/{}/{}", r.metadata.namespace_or_default(), r.metadata.name),
                r.metadata.namespace_or_default(),
                &r.spec,
            ),
            Resource::ClusterIssuer(r) => (
                format!("ClusterIssuer/{}", r.metadata.name),
                CLUSTER_RESOURCE_NAMESPACE,
                &r.spec,
            ),
            Resource::Certificate(_) => continue,
        };
        let Some(vault) = spec.vault() else { continue };
        match issuer::build(config, metrics, previous, &id, namespace, vault) {
            Ok(runtime) => issuers.push(runtime),
            Err(message) => problems.push(LoadProblem { source: id, message }),
        }
    }
    let fingerprints: HashMap<&str, u64> = issuers.iter().map(|i| (i.id.as_str(), i.fingerprint)).collect();
    let mut certificates = Vec::new();
    for resource in &resources {
        let Resource::Certificate(cert) = resource else {
            continue;
        };
        match certificate::build(config, cert, &fingerprints) {
            Ok((job, meta, problem)) => {
                problems.extend(problem);
                certificates.push((job, meta));
            }
            Err(message) => problems.push(LoadProblem {
                source: format!("Certificate {}/{}", cert.namespace(), cert.metadata.name),
                message,
            }),
        }
    }
    Ok(Loaded {
        issuers,
        certificates,
        problems,
    })
}

/// The manifest files: `path` itself, or its `*.yaml` / `*.yml` files sorted by name.
fn manifest_files(path: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let read_error = |source| LoadError::Read {
        path: path.to_owned(),
        source,
    };
    if !std::fs::metadata(path).map_err(read_error)?.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(read_error)? {
        let file = entry.map_err(read_error)?.path();
        let yaml = matches!(file.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"));
        if yaml && file.is_file() {
            files.push(file);
        }
    }
    files.sort();
    Ok(files)
}

/// Parses every manifest file; any error anywhere fails the whole load.
fn read_manifests(path: &Path) -> Result<Vec<Resource>, LoadError> {
    let mut resources = Vec::new();
    let mut errors = Vec::new();
    // (kind, namespace, name) -> the file that defined it first.
    let mut seen: BTreeMap<(&'static str, String, String), String> = BTreeMap::new();
    for file in manifest_files(path)? {
        let source = file.display().to_string();
        let text = match std::fs::read_to_string(&file) {
            Ok(text) => text,
            Err(e) => {
                errors.push(format!("{source}: cannot read: {e}"));
                continue;
            }
        };
        match spec::parse_documents(&source, &text) {
            Ok(parsed) => {
                for resource in parsed {
                    let namespace = match &resource {
                        Resource::ClusterIssuer(_) => String::new(),
                        other => other.metadata().namespace_or_default().to_owned(),
                    };
                    let name = resource.metadata().name.clone();
                    let key = (resource.kind(), namespace, name);
                    if let Some(first) = seen.get(&key) {
                        let (kind, namespace, name) = &key;
                        let object = if namespace.is_empty() {
                            format!("{kind} {name}")
                        } else {
                            format!("{kind} {namespace}/{name}")
                        };
                        errors.push(format!("{source}: {object} is already defined in {first}"));
                    } else {
                        seen.insert(key, source.clone());
                        resources.push(resource);
                    }
                }
            }
            Err(spec_errors) => errors.extend(spec_errors.iter().map(ToString::to_string)),
        }
    }
    if errors.is_empty() {
        Ok(resources)
    } else {
        Err(LoadError::Invalid(errors))
    }
}
