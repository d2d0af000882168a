//! Turns the configuration and the manifests it points at into what the engine runs: one
//! [`IssuerRuntime`] per Vault issuer and one [`CertJob`] (with its [`CertMeta`]) per Certificate.
//!
//! - **An invalid document fails alone.** `manifests` is a file or a directory whose `*.yaml` /
//!   `*.yml` entries (sorted by name, not recursive) are read. A file that cannot be read or is
//!   over a [limit](certkeeper_core::spec::check_limits), a document with a spec error, an object
//!   another document defines too (the later one is left out): each is a [`ManifestProblem`] and
//!   everything else runs. Certkeeper holds certificates that must not expire because a
//!   colleague's manifest has a typo; the problems are reported (log, status, metric) and
//!   `certkeeper check` fails on them. Only an unreadable `manifests` path fails the whole load
//!   ([`LoadError`]): with nothing read, nothing can be told apart.
//! - **Directory entries.** A regular file is read; a symlink is followed to a regular file (a
//!   Kubernetes ConfigMap or Secret mount is `name.yaml -> ..data/name.yaml`), and the file is
//!   read where it points, wherever that is: the manifests directory is the operator's. A
//!   `*.yaml` entry that is a directory, a FIFO, a socket, a device or a dangling symlink is a
//!   problem, reported without being opened (a FIFO would block the reader). Other names are
//!   ignored.
//! - **Per-object problems do not stop the rest.** A Secret reference that resolves to nothing, a
//!   CA bundle or client certificate that cannot be read now, an unsupported auth source: the
//!   issuer is skipped and a [`LoadProblem`] says why. Its Certificates are still returned; the
//!   engine reports them as "issuer not configured" (class invalid) until a change fixes it, and
//!   their problem says which issuer they wait for and why it is not there.
//! - **Secret references** resolve through [`Config::secret_location`]. An `Issuer`'s references
//!   are in the Issuer's namespace; a `ClusterIssuer`'s in [`CLUSTER_RESOURCE_NAMESPACE`]
//!   (`cert-manager`, cert-manager's default cluster resource namespace). CA bundles and client
//!   certificates are read at load time (the TLS transport needs them); tokens, AppRole secret
//!   ids and Kubernetes JWTs are not: the client reads them at each login, so rotation needs no
//!   reload and a missing file becomes a login failure then.
//! - **Secrets in the manifests** (`v1` Secret documents) come first: a reference to a Secret the
//!   manifests define resolves there, and one the configuration provides too is a conflict
//!   ([`ManifestFault::SecretConflict`]); see [`secrets`].
//! - **Left alone, not problems:** documents of other kinds ([`Loaded::ignored`], a warning each)
//!   and Certificates of external issuers ([`Loaded::external`]).
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
mod secrets;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_secrets;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use certkeeper_core::spec::{
    self, FieldError, IgnoredDocument, IssuerKind, IssuerReference, LimitError, Location, MAX_MANIFEST_BYTES,
    ManifestSecret, Resource, ResourceId,
};
use certkeeper_engine::metrics::Metrics;
use certkeeper_engine::{CertJob, IssuerId, IssuerRuntime};

use crate::config::Config;
use crate::model::CertMeta;
pub use secrets::ManifestSecrets;
use secrets::{SecretEntry, SecretKey};

/// Where a ClusterIssuer's Secret references resolve (cert-manager's default
/// `--cluster-resource-namespace`).
pub const CLUSTER_RESOURCE_NAMESPACE: &str = "cert-manager";

/// Everything one load produced.
#[derive(Debug)]
pub struct Loaded {
    pub issuers: Vec<IssuerRuntime>,
    pub certificates: Vec<(CertJob, CertMeta)>,
    pub problems: Vec<LoadProblem>,
    /// Files and documents left out; everything else is in `issuers` and `certificates`.
    pub manifest_problems: Vec<ManifestProblem>,
    /// Documents of kinds certkeeper does not read (a ConfigMap, a Deployment): a warning each.
    pub ignored: Vec<IgnoredManifest>,
    /// Certificates of external issuers (`issuerRef.group` another API group): valid, not
    /// certkeeper's, left alone.
    pub external: Vec<ExternalCertificate>,
}

/// A document left out because certkeeper does not read its kind.
#[derive(Debug, Clone)]
pub struct IgnoredManifest {
    pub file: PathBuf,
    pub location: Location,
    pub document: IgnoredDocument,
}

/// `certs.yaml: document 4: ConfigMap apps/settings (v1) is not a kind certkeeper reads; ignored`.
impl fmt::Display for IgnoredManifest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.file.display(), self.location, self.document)
    }
}

/// A Certificate whose issuer is of another API group: another controller's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalCertificate {
    /// `namespace/name`.
    pub name: String,
    pub issuer_ref: IssuerReference,
}

impl ExternalCertificate {
    /// `AWSPCAClusterIssuer.awspca.cert-manager.io/pca`, as kubectl names a resource.
    pub fn issuer(&self) -> String {
        self.issuer_ref.qualified_name()
    }
}

/// A problem with one object that does not stop the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadProblem {
    /// The file or object concerned ("Issuer/default/vault", "Certificate default/web").
    pub source: String,
    pub message: String,
}

impl fmt::Display for LoadProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.source, self.message)
    }
}

/// A manifest file, or one document of it, that was left out.
#[derive(Debug, Clone)]
pub struct ManifestProblem {
    pub file: PathBuf,
    /// The document (and list item); `None` when the file as a whole was left out.
    pub location: Option<Location>,
    /// Kind and name as read from the document, when it got that far.
    pub object: Option<ResourceId>,
    pub fault: ManifestFault,
}

impl ManifestProblem {
    fn file(file: &Path, fault: ManifestFault) -> Self {
        ManifestProblem {
            file: file.to_owned(),
            location: None,
            object: None,
            fault,
        }
    }

    /// The id of the issuer this document would have defined (`Issuer/<ns>/<name>`,
    /// `ClusterIssuer/<name>`), as certificates name it.
    fn issuer_id(&self) -> Option<IssuerId> {
        let object = self.object.as_ref()?;
        let name = object.name.as_deref()?;
        let kind = IssuerKind::ALL.into_iter().find(|k| k.as_str() == object.kind)?;
        match object.namespace.as_deref() {
            Some(namespace) if kind.namespaced() => Some(IssuerId::new(kind, namespace, name)),
            _ if !kind.namespaced() => Some(IssuerId::new(kind, "", name)),
            _ => None,
        }
    }

    /// The (namespace, name) of the Secret this document would have defined.
    fn secret_key(&self) -> Option<SecretKey> {
        let object = self.object.as_ref()?;
        match (object.kind.as_str(), &object.namespace, &object.name) {
            ("Secret", Some(namespace), Some(name))
                if !matches!(self.fault, ManifestFault::Duplicate { .. }) =>
            {
                Some((namespace.clone(), name.clone()))
            }
            _ => None,
        }
    }

    /// Where it is: `file`, `file: document 2`, `file: document 2, item 3`.
    pub fn place(&self) -> String {
        match &self.location {
            Some(location) => format!("{}: {location}", self.file.display()),
            None => self.file.display().to_string(),
        }
    }
}

/// One line: `certs.yaml: document 2 (Certificate default/web): spec.a: required; spec.b: ...`.
impl fmt::Display for ManifestProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.place())?;
        if let Some(object) = &self.object {
            write!(f, " ({object})")?;
        }
        write!(f, ": {}", self.fault)
    }
}

/// Why a file or document was left out.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ManifestFault {
    #[error("cannot read: {0}")]
    Read(Arc<std::io::Error>),
    #[error("dangling symlink to {}", .0.display())]
    DanglingSymlink(PathBuf),
    #[error("is a directory (manifest directories are not read recursively)")]
    Directory,
    #[error("is a {0}, not a regular file; not opened")]
    NotRegular(&'static str),
    #[error(transparent)]
    Limit(#[from] LimitError),
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    #[error("{object} is already defined in {}: {first}", .file.display())]
    Duplicate {
        object: ResourceId,
        file: PathBuf,
        first: Location,
    },
    /// A Secret the manifests define and the configuration provides too: neither is used.
    #[error("is also provided by {elsewhere}: give each Secret one source (remove one); neither is used")]
    SecretConflict { elsewhere: String },
}

/// A failure of the whole load: nothing of it may be applied.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The manifests path (file or directory) cannot be read.
    #[error("cannot read manifests {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
}

/// Reads the manifests and builds issuers and certificate jobs. `previous` holds the issuers of
/// the configuration in force; unchanged ones are reused. `secrets` is the store of the
/// manifests' Secrets the issuers read (shared with the issuers of earlier loads): replaced with
/// this load's.
pub fn load(
    config: &Config,
    metrics: &Metrics,
    previous: &HashMap<IssuerId, IssuerRuntime>,
    secrets: &ManifestSecrets,
) -> Result<Loaded, LoadError> {
    let Manifests {
        resources,
        secrets: manifest_secrets,
        ignored,
        problems: mut manifest_problems,
    } = read_manifests(&config.manifests)?;
    secrets.replace(secret_entries(config, manifest_secrets, &mut manifest_problems));
    let mut problems = Vec::new();
    // Issuer id -> why certificates of that issuer wait.
    let mut unusable: HashMap<IssuerId, String> = manifest_problems
        .iter()
        .filter_map(|p| Some((p.issuer_id()?, format!("its manifest is invalid ({})", p.place()))))
        .collect();
    let mut issuers = Vec::new();
    for resource in &resources {
        let Some(issuer) = resource.issuer() else { continue };
        let Some(vault) = issuer.vault else { continue };
        let id = IssuerId::of_key(&issuer.key());
        let namespace = if issuer.kind.namespaced() {
            issuer.metadata.namespace_or_default()
        } else {
            CLUSTER_RESOURCE_NAMESPACE
        };
        // The configuration's entry for the issuer, else its annotations (as in a cluster).
        let extras = match config.vault_extras(&id) {
            Some(extras) => Ok(extras.clone()),
            None => certkeeper_engine::annotations::vault_extras(&issuer.metadata.annotations),
        };
        let extras = match extras {
            Ok(extras) => extras,
            Err(e) => {
                unusable.insert(id.clone(), format!("it cannot be used: {e}"));
                problems.push(LoadProblem {
                    source: id.to_string(),
                    message: e.to_string(),
                });
                continue;
            }
        };
        match issuer::build(config, secrets, metrics, previous, &id, namespace, vault, &extras) {
            Ok(runtime) => issuers.push(runtime),
            Err(e) => {
                unusable.insert(id.clone(), format!("it cannot be used: {e}"));
                problems.push(LoadProblem {
                    source: id.to_string(),
                    message: e.to_string(),
                });
            }
        }
    }
    let fingerprints: HashMap<&str, u64> = issuers.iter().map(|i| (i.id.as_str(), i.fingerprint)).collect();
    let mut certificates = Vec::new();
    let mut external = Vec::new();
    for resource in &resources {
        let Resource::Certificate(cert) = resource else {
            continue;
        };
        if !cert.spec.issuer_ref.is_served() {
            external.push(ExternalCertificate {
                name: format!("{}/{}", cert.namespace(), cert.metadata.name),
                issuer_ref: cert.spec.issuer_ref.clone(),
            });
            continue;
        }
        match certificate::build(config, secrets, cert, &fingerprints, &unusable) {
            Ok((job, meta, problem)) => {
                problems.extend(problem);
                certificates.push((job, meta));
            }
            Err(e) => problems.push(LoadProblem {
                source: format!("Certificate {}/{}", cert.namespace(), cert.metadata.name),
                message: e.to_string(),
            }),
        }
    }
    Ok(Loaded {
        issuers,
        certificates,
        problems,
        manifest_problems,
        ignored,
        external,
    })
}

/// A `*.yaml` / `*.yml` entry of the manifests directory, as found before opening it.
enum Entry {
    File(PathBuf),
    Skipped(Box<ManifestProblem>),
}

/// The manifest files: `path` itself, or its `*.yaml` / `*.yml` entries sorted by name.
fn manifest_files(path: &Path) -> Result<Vec<Entry>, LoadError> {
    let read_error = |source| LoadError::Read {
        path: path.to_owned(),
        source,
    };
    if !std::fs::metadata(path).map_err(read_error)?.is_dir() {
        return Ok(vec![Entry::File(path.to_owned())]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(read_error)? {
        let file = entry.map_err(read_error)?.path();
        let yaml = matches!(file.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"));
        if yaml {
            files.push(file);
        }
    }
    files.sort();
    Ok(files.into_iter().map(classify).collect())
}

/// Looks at an entry without opening it: symlinks are followed, and only a regular file is
/// read (a FIFO would block the reader until something writes to it).
fn classify(file: PathBuf) -> Entry {
    let skipped = |fault| Entry::Skipped(Box::new(ManifestProblem::file(&file, fault)));
    let metadata = match std::fs::metadata(&file) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // metadata follows the link; the link itself is there, its target is not.
            return match std::fs::read_link(&file) {
                Ok(target) => skipped(ManifestFault::DanglingSymlink(target)),
                Err(e) => skipped(ManifestFault::Read(Arc::new(e))),
            };
        }
        Err(e) => return skipped(ManifestFault::Read(Arc::new(e))),
    };
    match file_kind(&metadata.file_type()) {
        None => Entry::File(file),
        Some("directory") => skipped(ManifestFault::Directory),
        Some(kind) => skipped(ManifestFault::NotRegular(kind)),
    }
}

/// `None` for a regular file, else what it is.
fn file_kind(t: &std::fs::FileType) -> Option<&'static str> {
    Some(if t.is_file() {
        return None;
    } else if t.is_dir() {
        "directory"
    } else if t.is_fifo() {
        "FIFO"
    } else if t.is_socket() {
        "socket"
    } else if t.is_block_device() || t.is_char_device() {
        "device"
    } else {
        "special file"
    })
}

/// Reads one manifest file, at most [`MAX_MANIFEST_BYTES`] of it. Opened non-blocking and
/// checked again once open, so a FIFO swapped in after [`classify`] cannot block the reader.
fn read_manifest(file: &Path) -> Result<String, ManifestFault> {
    let read = |e| ManifestFault::Read(Arc::new(e));
    let handle = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(file)
        .map_err(read)?;
    let metadata = handle.metadata().map_err(read)?;
    if let Some(kind) = file_kind(&metadata.file_type()) {
        return Err(ManifestFault::NotRegular(kind));
    }
    let too_large = |size| {
        ManifestFault::Limit(LimitError::TooLarge {
            size,
            max: MAX_MANIFEST_BYTES,
        })
    };
    if metadata.len() > MAX_MANIFEST_BYTES as u64 {
        return Err(too_large(metadata.len()));
    }
    // The file may grow after the size check: read one byte past the limit to notice.
    let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
    handle
        .take(MAX_MANIFEST_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(read)?;
    if bytes.len() > MAX_MANIFEST_BYTES {
        return Err(too_large(bytes.len() as u64));
    }
    String::from_utf8(bytes).map_err(|e| {
        read(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            e.utf8_error(),
        ))
    })
}

/// What the manifest files hold.
#[derive(Debug, Default)]
struct Manifests {
    resources: Vec<Resource>,
    /// Valid Secrets, each with the file and document that defines it.
    secrets: Vec<(PathBuf, Location, ManifestSecret)>,
    ignored: Vec<IgnoredManifest>,
    problems: Vec<ManifestProblem>,
}

impl Manifests {
    /// Keeps an object unless an earlier document defined it (then it is a problem).
    fn first_definition(
        &mut self,
        seen: &mut BTreeMap<(&'static str, String, String), (PathBuf, Location)>,
        file: &Path,
        location: Location,
        object: ResourceId,
        key: (&'static str, String, String),
    ) -> bool {
        if let Some((first_file, first)) = seen.get(&key) {
            self.problems.push(ManifestProblem {
                file: file.to_owned(),
                location: Some(location),
                object: Some(object.clone()),
                fault: ManifestFault::Duplicate {
                    object,
                    file: first_file.clone(),
                    first: *first,
                },
            });
            false
        } else {
            seen.insert(key, (file.to_owned(), location));
            true
        }
    }
}

/// Parses every manifest file: the valid objects and Secrets, the documents ignored, and a
/// [`ManifestProblem`] for each file or document left out.
fn read_manifests(path: &Path) -> Result<Manifests, LoadError> {
    let mut out = Manifests::default();
    // (kind, namespace, name) -> the file and document that defined it first.
    let mut seen: BTreeMap<(&'static str, String, String), (PathBuf, Location)> = BTreeMap::new();
    for entry in manifest_files(path)? {
        let file = match entry {
            Entry::File(file) => file,
            Entry::Skipped(problem) => {
                out.problems.push(*problem);
                continue;
            }
        };
        let parsed = read_manifest(&file).and_then(|text| {
            let source = file.display().to_string();
            spec::parse_file(&source, &text).map_err(ManifestFault::from)
        });
        let parsed = match parsed {
            Ok(parsed) => parsed,
            Err(fault) => {
                out.problems.push(ManifestProblem::file(&file, fault));
                continue;
            }
        };
        // One problem per document (or list item), with every error of it: the parser reports
        // a document's errors together, in document order.
        for error in parsed.errors {
            match out.problems.last_mut() {
                Some(ManifestProblem {
                    file: last_file,
                    location: Some(location),
                    fault: ManifestFault::Invalid(errors),
                    ..
                }) if *last_file == file && *location == error.location => errors.push(error.error),
                _ => out.problems.push(ManifestProblem {
                    file: file.clone(),
                    location: Some(error.location),
                    object: error.resource,
                    fault: ManifestFault::Invalid(vec![error.error]),
                }),
            }
        }
        for (location, document) in parsed.ignored {
            out.ignored.push(IgnoredManifest {
                file: file.clone(),
                location,
                document,
            });
        }
        for (location, resource) in parsed.resources {
            let object = resource_id(&resource);
            let key = (
                resource.kind(),
                object.namespace.clone().unwrap_or_default(),
                resource.metadata().name.clone(),
            );
            if out.first_definition(&mut seen, &file, location, object, key) {
                out.resources.push(resource);
            }
        }
        for (location, secret) in parsed.secrets {
            let (namespace, name) = (secret.namespace().to_owned(), secret.name().to_owned());
            let object = ResourceId {
                kind: "Secret".to_owned(),
                namespace: Some(namespace.clone()),
                name: Some(name.clone()),
            };
            if out.first_definition(&mut seen, &file, location, object, ("Secret", namespace, name)) {
                out.secrets.push((file.clone(), location, secret));
            }
        }
    }
    Ok(out)
}

/// The store's content for the manifests' Secrets: each valid one, unless the configuration
/// provides it too (a conflict, added to `problems`); each invalid one as unusable, so a
/// reference to it says why instead of falling through to `secrets.dir`.
fn secret_entries(
    config: &Config,
    secrets: Vec<(PathBuf, Location, ManifestSecret)>,
    problems: &mut Vec<ManifestProblem>,
) -> BTreeMap<SecretKey, SecretEntry> {
    let mut entries: BTreeMap<SecretKey, SecretEntry> = problems
        .iter()
        .filter_map(|p| {
            let key = p.secret_key()?;
            let why = format!("its manifest is invalid ({})", p.place());
            Some((key, SecretEntry::Unusable { why }))
        })
        .collect();
    for (file, location, secret) in secrets {
        let key = (secret.namespace().to_owned(), secret.name().to_owned());
        let origin = format!("{}: {location}", file.display());
        let entry = match secrets::configured_elsewhere(config, &key.0, &key.1) {
            None => SecretEntry::Defined {
                origin,
                secret: Arc::new(secret),
            },
            Some(elsewhere) => {
                let fault = ManifestFault::SecretConflict { elsewhere };
                let why = format!("defined in {origin}, which {fault}");
                problems.push(ManifestProblem {
                    file,
                    location: Some(location),
                    object: Some(ResourceId {
                        kind: "Secret".to_owned(),
                        namespace: Some(key.0.clone()),
                        name: Some(key.1.clone()),
                    }),
                    fault,
                });
                SecretEntry::Unusable { why }
            }
        };
        entries.insert(key, entry);
    }
    entries
}

fn resource_id(resource: &Resource) -> ResourceId {
    let metadata = resource.metadata();
    ResourceId {
        kind: resource.kind().to_owned(),
        namespace: (!resource.cluster_scoped()).then(|| metadata.namespace_or_default().to_owned()),
        name: Some(metadata.name.clone()),
    }
}
