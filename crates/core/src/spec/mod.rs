//! cert-manager.io/v1 `Issuer`, `ClusterIssuer` and `Certificate`: types, parsing, validation
//! and resolved views with cert-manager's defaults; `CertificateRequest` and the `status` types
//! (with certkeeper's retry state, [`CertkeeperStatus`]) for the Kubernetes runtime. Every type
//! has a JSON schema (`schemars`), from which `certkeeper-crds` generates the CRDs.
//!
//! certkeeper reads cert-manager's API so existing manifests work unchanged. Field names,
//! defaults and validation rules follow cert-manager's Go source (the modules cite the files).
//! Decisions where certkeeper differs or cert-manager leaves a choice:
//!
//! - **Unknown fields are errors** when parsing manifests ([`parse_documents`],
//!   [`parse_resource`]), each reported with its path: the CRDs are structural, and a silently
//!   dropped typo (`renewBefor`) would change when a certificate renews. Standard metadata
//!   (`uid`, `managedFields`, ...) and top-level `status` are accepted and ignored, so
//!   `kubectl get -o yaml` output parses. The types do not deny unknown fields themselves, so plain
//!   serde decoding (e.g. from the API server) stays tolerant.
//! - **Other kinds in a manifest file**: a core `v1` `Secret` (as cert-manager's docs put the
//!   token next to the Issuer) is decoded and validated as the API server does
//!   ([`ManifestSecret`]); documents of other groups (ConfigMap, Deployment, ...) are listed as
//!   [`IgnoredDocument`]s for a warning, not errors. An unknown kind of the cert-manager.io group
//!   stays an error.
//! - **External issuers**: a Certificate whose `issuerRef.group` is neither empty nor
//!   `cert-manager.io` is valid (its kind is not checked, as cert-manager checks kinds of its own
//!   group only); [`IssuerReference::is_cert_manager`] is where both runtimes decide to leave it
//!   alone.
//! - **Namespace**: a namespaced object without `metadata.namespace` is in `default`
//!   ([`DEFAULT_NAMESPACE`]), like `kubectl apply` with the default context. A Certificate's
//!   `Issuer` must be in the Certificate's namespace; a `ClusterIssuer` has none ([`IssuerKey`]).
//! - **Vault auth**: cert-manager never enforced "exactly one method"; the first set, in the order
//!   tokenSecretRef, appRole, clientCertificate, kubernetes, aws, wins ([`VaultAuthMethod`]).
//! - **Not supported** (reported as such, not as unknown): issuer types other than Vault.
//! - **Feature gates**: `literalSubject`, `otherNames` and `nameConstraints` are validated as
//!   cert-manager validates them with their (alpha) feature gates enabled.
//! - **Accepted, failing later**, as cert-manager's webhook accepts and its controller fails:
//!   a `server` that is not an http(s) URL, appRole `secretRef` and keystore
//!   `passwordSecretRef` without `key` ([`SecretKeySelector::explicit_key`]), URIs Go's
//!   `url.Parse` would refuse or rewrite ([`CertificateSpec::uris`]). The runtimes fail that
//!   object when they build it. `renewBeforePercentage` is checked only with `duration` or
//!   `renewBefore`, as cert-manager checks it.
//! - **Stricter than cert-manager's webhook**, for the security model: reference names the API
//!   server could not store, Vault paths beyond Vault's name characters, token audiences the
//!   Kubernetes API accepts; and renewal windows that never open. The corpus of cert-manager's
//!   cases (`tests/cert_manager_corpus`) lists each such difference.
//!
//! Every error names where it is: `certs.yaml: document 2 (Certificate default/web):
//! spec.privateKey.size: ECDSA keys must be 256, 384 or 521, got 2048`, and all errors of a
//! file are reported together.

mod certificate;
mod certificate_renewal;
mod certificate_request;
mod certificate_rules;
mod de;
mod duration;
mod error;
mod issuer;
pub(crate) mod limits;
mod meta;
mod schema;
mod secret_object;
mod status;
mod syntax;
pub mod unserved;

#[cfg(test)]
mod tests_certificate;
#[cfg(test)]
mod tests_docs;
#[cfg(test)]
mod tests_documents;
#[cfg(test)]
mod tests_issuer;

use std::collections::HashMap;
use std::fmt;

use serde::Deserialize;
use serde_yaml_ng::Value;

pub use certificate::{
    Certificate, CertificateAdditionalOutputFormat, CertificateKeystores, CertificatePrivateKey,
    CertificateRenewal, CertificateRenewalPolicy, CertificateRenewalWindow, CertificateSecretTemplate,
    CertificateSpec, JksKeystore, KeyUsage, NameConstraintItem, NameConstraints, OtherName, OutputFormat,
    Pkcs12Keystore, Pkcs12Profile, PrivateKeyAlgorithm, PrivateKeyEncoding, RotationPolicy,
    SignatureAlgorithm, X509Subject,
};
pub use certificate_request::{
    CONDITION_APPROVED, CONDITION_DENIED, CONDITION_INVALID_REQUEST, CertificateRequest,
    CertificateRequestCondition, CertificateRequestSpec, CertificateRequestStatus, REASON_DENIED,
    REASON_FAILED, REASON_ISSUED, REASON_PENDING,
};
pub use certificate_rules::{
    DEFAULT_DURATION, EcdsaCurve, KeyAlgorithm, MAX_COMMON_NAME_BYTES, MIN_DURATION, MIN_RENEW_BEFORE,
    PrivateKeyParams, RSA_KEY_BITS, RenewalPolicy,
};
pub use duration::{DurationError, GoDuration, format_go_duration, parse_go_duration};
pub use error::{FieldError, FieldPath, Location, Problem, ResourceId, Segment, SpecError, SpecErrors};
pub use issuer::{
    AWS_STS_AUDIENCE, CertkeeperIssuer, ClusterIssuer, DEFAULT_APPROLE_PATH, DEFAULT_AWS_MOUNT_PATH,
    DEFAULT_AWS_REGION, DEFAULT_CA_BUNDLE_KEY, DEFAULT_CLIENT_CERT_KEY,
    DEFAULT_CLIENT_CERTIFICATE_MOUNT_PATH, DEFAULT_CLIENT_KEY_KEY, DEFAULT_KUBERNETES_MOUNT_PATH,
    DEFAULT_TOKEN_KEY, Issuer, IssuerSpec, ServiceAccountRef, VaultAppRole, VaultAuth, VaultAuthMethod,
    VaultAwsAuth, VaultClientCertificateAuth, VaultIssuer, VaultKubernetesAuth,
};
pub use limits::{
    LimitError, MAX_DEPTH, MAX_DOCUMENTS, MAX_MANIFEST_BYTES, MAX_NAME_LIST_ENTRIES, MAX_NAME_VALUE_BYTES,
    check_limits,
};
pub use meta::{
    CERT_MANAGER_GROUP, CERTKEEPER_GROUP, DEFAULT_NAMESPACE, IssuerKey, IssuerKind, IssuerReference,
    LocalObjectReference, ObjectMeta, SecretKeySelector,
};
pub use secret_object::{MAX_SECRET_BYTES, ManifestSecret, SECRET_TYPE_OPAQUE};
pub use status::{
    AcmeIssuerStatus, AcmeRenewalInfo, AcmeRenewalWindow, CONDITION_ISSUING, CONDITION_READY,
    CertificateAcmeStatus, CertificateCondition, CertificateStatus, CertificateStatusPatch, CertkeeperStatus,
    Condition, ConditionStatus, IssuerCondition, IssuerStatus, remove_condition, set_condition,
};
pub use syntax::{
    Base64Bytes, check_dns_label, check_dns_subdomain, check_secret_key, check_vault_path,
    is_kubernetes_api_audience, is_vault_name_char,
};

/// The only API version accepted for the three kinds.
pub const API_VERSION: &str = "cert-manager.io/v1";
/// The only API version of certkeeper's own kinds (`VaultIssuer`, `VaultClusterIssuer`).
pub const CERTKEEPER_API_VERSION: &str = "certkeeper.io/v1";

/// One decoded and validated object. Boxed: the specs are large, and a load holds thousands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    Issuer(Box<Issuer>),
    ClusterIssuer(Box<ClusterIssuer>),
    /// `certkeeper.io/v1` `VaultIssuer`.
    VaultIssuer(Box<CertkeeperIssuer>),
    /// `certkeeper.io/v1` `VaultClusterIssuer`.
    VaultClusterIssuer(Box<CertkeeperIssuer>),
    Certificate(Box<Certificate>),
}

/// An issuer object of any served kind, as both runtimes build it.
#[derive(Debug, Clone, Copy)]
pub struct IssuerView<'a> {
    pub kind: IssuerKind,
    pub metadata: &'a ObjectMeta,
    /// The Vault configuration; `None` for a cert-manager issuer of another type (ACME, CA, ...),
    /// reported as unsupported by its validation.
    pub vault: Option<&'a VaultIssuer>,
}

impl IssuerView<'_> {
    /// How Certificates and requests find this issuer.
    pub fn key(&self) -> IssuerKey {
        IssuerKey::of(self.kind, self.metadata)
    }
}

impl Resource {
    pub fn kind(&self) -> &'static str {
        match self.issuer() {
            Some(issuer) => issuer.kind.as_str(),
            None => "Certificate",
        }
    }

    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Resource::Issuer(r) => &r.metadata,
            Resource::ClusterIssuer(r) => &r.metadata,
            Resource::VaultIssuer(r) | Resource::VaultClusterIssuer(r) => &r.metadata,
            Resource::Certificate(r) => &r.metadata,
        }
    }

    /// The object as an issuer, whatever its kind; `None` for a Certificate.
    pub fn issuer(&self) -> Option<IssuerView<'_>> {
        let (kind, metadata, vault) = match self {
            Resource::Issuer(r) => (IssuerKind::Issuer, &r.metadata, r.spec.vault()),
            Resource::ClusterIssuer(r) => (IssuerKind::ClusterIssuer, &r.metadata, r.spec.vault()),
            Resource::VaultIssuer(r) => (IssuerKind::VaultIssuer, &r.metadata, Some(&r.spec)),
            Resource::VaultClusterIssuer(r) => (IssuerKind::VaultClusterIssuer, &r.metadata, Some(&r.spec)),
            Resource::Certificate(_) => return None,
        };
        Some(IssuerView {
            kind,
            metadata,
            vault,
        })
    }

    /// Whether the object is cluster-scoped (no namespace).
    pub fn cluster_scoped(&self) -> bool {
        self.issuer().is_some_and(|i| !i.kind.namespaced())
    }

    pub fn validate(&self) -> Vec<FieldError> {
        match self {
            Resource::Issuer(r) => r.validate(),
            Resource::ClusterIssuer(r) => r.validate(),
            Resource::VaultIssuer(r) => r.validate(IssuerKind::VaultIssuer),
            Resource::VaultClusterIssuer(r) => r.validate(IssuerKind::VaultClusterIssuer),
            Resource::Certificate(r) => r.validate(),
        }
    }
}

fn str_at<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

/// Decodes one object of a supported kind: the object if it decoded, and every problem found
/// (unknown fields, a type error, validation).
fn decode_resource(value: &Value) -> (Option<Resource>, Vec<FieldError>) {
    fn run<T: serde::de::DeserializeOwned>(
        value: &Value,
        validate: impl Fn(&T) -> Vec<FieldError>,
        wrap: impl Fn(T) -> Resource,
    ) -> (Option<Resource>, Vec<FieldError>) {
        let (decoded, mut errors) = de::decode::<T>(value, FieldPath::root());
        if let Some(object) = &decoded {
            errors.extend(validate(object));
        }
        (decoded.map(wrap), errors)
    }
    if !value.is_mapping() {
        return (
            None,
            vec![FieldError::new(FieldPath::root(), Problem::NotAnObject)],
        );
    }
    let api_version = str_at(value, "apiVersion").unwrap_or_default();
    let kind = str_at(value, "kind").unwrap_or_default();
    match (api_version, kind) {
        (API_VERSION, "Issuer") => run(value, Issuer::validate, |r| Resource::Issuer(Box::new(r))),
        (API_VERSION, "ClusterIssuer") => run(value, ClusterIssuer::validate, |r| {
            Resource::ClusterIssuer(Box::new(r))
        }),
        (API_VERSION, "Certificate") => run(value, Certificate::validate, |r| {
            Resource::Certificate(Box::new(r))
        }),
        (CERTKEEPER_API_VERSION, "VaultIssuer") => run(
            value,
            |r: &CertkeeperIssuer| r.validate(IssuerKind::VaultIssuer),
            |r| Resource::VaultIssuer(Box::new(r)),
        ),
        (CERTKEEPER_API_VERSION, "VaultClusterIssuer") => run(
            value,
            |r: &CertkeeperIssuer| r.validate(IssuerKind::VaultClusterIssuer),
            |r| Resource::VaultClusterIssuer(Box::new(r)),
        ),
        _ => {
            let problem = Problem::UnsupportedKind {
                api_version: api_version.to_owned(),
                kind: kind.to_owned(),
            };
            (None, vec![FieldError::new(FieldPath::root(), problem)])
        }
    }
}

/// Decodes and validates one object (a YAML or JSON value with apiVersion and kind). This is
/// what both runtimes use per object: the kube runtime converts what the API server returns
/// and gets the same errors the standalone runtime reports for files.
pub fn parse_resource(value: &Value) -> Result<Resource, Vec<FieldError>> {
    match decode_resource(value) {
        (Some(resource), errors) if errors.is_empty() => Ok(resource),
        (_, errors) => Err(errors),
    }
}

/// What a manifest document is, by its apiVersion and kind: one place decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DocumentKind {
    /// An object of the cert-manager.io or certkeeper.io group (or one naming no type):
    /// decoded, and an error unless it is one of the kinds read.
    Served,
    /// A core `v1` Secret: a source of Secret values.
    Secret,
    /// Any other object (a ConfigMap, a Deployment, another group's kinds): ignored, with a
    /// warning. cert-manager's CertificateRequest is one too: the standalone runtime makes its
    /// own requests and reads none.
    Other,
}

fn document_kind(api_version: &str, kind: &str) -> DocumentKind {
    let group = api_version.rsplit_once('/').map_or("", |(group, _)| group);
    match (api_version, kind) {
        ("v1", "Secret") => DocumentKind::Secret,
        ("" | CERT_MANAGER_GROUP | CERTKEEPER_GROUP, _) | (_, "") => DocumentKind::Served,
        (API_VERSION, "CertificateRequest") => DocumentKind::Other,
        _ if group == CERT_MANAGER_GROUP || group == CERTKEEPER_GROUP => DocumentKind::Served,
        _ => DocumentKind::Other,
    }
}

/// Text of an unvalidated document made safe to print in a warning: at most 253 characters
/// (the longest Kubernetes name), control characters (a newline that would fake a log line, a
/// terminal escape) replaced by `?`.
fn printable(text: &str) -> String {
    text.chars()
        .take(253)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// A document of a kind certkeeper does not read, left out with a warning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoredDocument {
    pub api_version: String,
    /// Kind, namespace (as written, if any) and name.
    pub object: ResourceId,
}

impl fmt::Display for IgnoredDocument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}) is not a kind certkeeper reads; ignored",
            self.object, self.api_version
        )
    }
}

/// Collects resources and errors of one file.
struct FileParser<'a> {
    source: &'a str,
    resources: Vec<(Location, Resource)>,
    secrets: Vec<(Location, ManifestSecret)>,
    ignored: Vec<(Location, IgnoredDocument)>,
    errors: Vec<SpecError>,
    /// (kind, namespace, name) -> document that defined it first.
    seen: HashMap<(&'static str, String, String), usize>,
}

impl FileParser<'_> {
    fn error(&mut self, location: Location, resource: Option<ResourceId>, error: FieldError) {
        self.errors.push(SpecError {
            file: self.source.to_owned(),
            location,
            resource,
            error,
        });
    }

    fn object(&mut self, value: &Value, location: Location) {
        let kind = str_at(value, "kind").unwrap_or_default();
        let api_version = str_at(value, "apiVersion").unwrap_or_default();
        let metadata = value.get("metadata");
        let name = metadata.and_then(|m| str_at(m, "name")).map(str::to_owned);
        match document_kind(api_version, kind) {
            DocumentKind::Served => {}
            DocumentKind::Secret => return self.secret(value, location),
            DocumentKind::Other => {
                let object = ResourceId {
                    kind: printable(kind),
                    namespace: metadata.and_then(|m| str_at(m, "namespace")).map(printable),
                    name: name.as_deref().map(printable),
                };
                let api_version = printable(api_version);
                self.ignored
                    .push((location, IgnoredDocument { api_version, object }));
                return;
            }
        }
        let supported = match api_version {
            API_VERSION => matches!(kind, "Issuer" | "ClusterIssuer" | "Certificate"),
            CERTKEEPER_API_VERSION => matches!(kind, "VaultIssuer" | "VaultClusterIssuer"),
            _ => false,
        };
        let cluster_scoped = matches!(kind, "ClusterIssuer" | "VaultClusterIssuer");
        let resource_id = supported.then(|| ResourceId {
            kind: kind.to_owned(),
            namespace: (!cluster_scoped).then(|| {
                let namespace = metadata.and_then(|m| str_at(m, "namespace")).unwrap_or_default();
                if namespace.is_empty() {
                    DEFAULT_NAMESPACE
                } else {
                    namespace
                }
                .to_owned()
            }),
            name: metadata.and_then(|m| str_at(m, "name")).map(str::to_owned),
        });
        let (decoded, mut errors) = decode_resource(value);
        if let Some(resource) = &decoded {
            errors.extend(self.file_rules(resource, location));
        }
        let failed = !errors.is_empty();
        for error in errors {
            self.error(location, resource_id.clone(), error);
        }
        if let (Some(resource), false) = (decoded, failed) {
            self.resources.push((location, resource));
        }
    }

    /// A `v1` Secret document: kept if valid and not defined before in the file. Its errors
    /// never quote a value.
    fn secret(&mut self, value: &Value, location: Location) {
        let metadata = value.get("metadata");
        let namespace = metadata
            .and_then(|m| str_at(m, "namespace"))
            .filter(|n| !n.is_empty())
            .unwrap_or(DEFAULT_NAMESPACE);
        let id = ResourceId {
            kind: "Secret".to_owned(),
            namespace: Some(namespace.to_owned()),
            name: metadata.and_then(|m| str_at(m, "name")).map(str::to_owned),
        };
        let errors = match secret_object::decode_secret(value) {
            Ok(secret) => {
                match self.first_definition("Secret", secret.namespace(), secret.name(), location) {
                    None => {
                        self.secrets.push((location, secret));
                        return;
                    }
                    Some(duplicate) => vec![duplicate],
                }
            }
            Err(errors) => errors,
        };
        for error in errors {
            self.error(location, Some(id.clone()), error);
        }
    }

    /// `None` when (kind, namespace, name) is defined here first, else the duplicate's error.
    fn first_definition(
        &mut self,
        kind: &'static str,
        namespace: &str,
        name: &str,
        location: Location,
    ) -> Option<FieldError> {
        let key = (kind, namespace.to_owned(), name.to_owned());
        if let Some(&first_document) = self.seen.get(&key) {
            let problem = Problem::DuplicateResource {
                kind,
                name: name.to_owned(),
                first_document,
            };
            Some(FieldError::new(FieldPath::parse("metadata.name"), problem))
        } else {
            self.seen.insert(key, location.document);
            None
        }
    }

    /// Rules that hold for a set of manifests but not for one object in a cluster: no object
    /// defined twice. (A Certificate for an external issuer is valid: the runtimes leave it
    /// alone.)
    fn file_rules(&mut self, resource: &Resource, location: Location) -> Vec<FieldError> {
        let metadata = resource.metadata();
        let namespace = if resource.cluster_scoped() {
            ""
        } else {
            metadata.namespace_or_default()
        };
        self.first_definition(resource.kind(), namespace, &metadata.name, location)
            .into_iter()
            .collect()
    }
}

/// One manifest file, parsed: the objects that are valid, each with its place in the file, the
/// valid `v1` Secrets, the documents of other kinds (ignored), and the errors of the others. An
/// invalid document does not affect the valid ones, so a runtime can run what is valid and report
/// the rest.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParsedFile {
    pub resources: Vec<(Location, Resource)>,
    pub secrets: Vec<(Location, ManifestSecret)>,
    pub ignored: Vec<(Location, IgnoredDocument)>,
    pub errors: Vec<SpecError>,
}

/// Parses a multi-document YAML file of cert-manager.io/v1 objects, all or nothing: the
/// objects if every document is valid, else every error. [`parse_file`] keeps the valid ones.
/// A file over one of the [limits](check_limits) is one error at document 1.
pub fn parse_documents(source: &str, text: &str) -> Result<Vec<Resource>, SpecErrors> {
    let parsed = parse_file(source, text).unwrap_or_else(|limit| ParsedFile {
        errors: vec![SpecError {
            file: source.to_owned(),
            location: Location {
                document: 1,
                item: None,
            },
            resource: None,
            error: FieldError::new(FieldPath::root(), Problem::Yaml(limit.to_string())),
        }],
        ..ParsedFile::default()
    });
    if parsed.errors.is_empty() {
        Ok(parsed.resources.into_iter().map(|(_, r)| r).collect())
    } else {
        Err(SpecErrors(parsed.errors))
    }
}

/// Parses a multi-document YAML file of cert-manager.io/v1 objects, document by document.
///
/// `source` names the file in messages. The text is first checked against the
/// [limits](check_limits) (size, documents, nesting), so the parser never starts on input that
/// would take it long. Empty documents are skipped but counted, so document numbers match the
/// file. A `kind: List` (apiVersion v1) document, as `kubectl get -o yaml` writes, contributes
/// its `items`. A `v1` Secret is decoded into [`ParsedFile::secrets`]; a document of another
/// group (a ConfigMap, a Deployment) is listed in [`ParsedFile::ignored`]; an unknown kind of the
/// cert-manager.io group is an error (a typo must not drop a Certificate silently). A YAML
/// syntax error ends the file, as nothing after it can be trusted; the documents before it
/// stand.
pub fn parse_file(source: &str, text: &str) -> Result<ParsedFile, LimitError> {
    check_limits(text)?;
    let mut parser = FileParser {
        source,
        resources: Vec::new(),
        secrets: Vec::new(),
        ignored: Vec::new(),
        errors: Vec::new(),
        seen: HashMap::new(),
    };
    for (index, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let location = Location {
            document: index + 1,
            item: None,
        };
        let mut value = match Value::deserialize(document).and_then(|mut v| v.apply_merge().map(|()| v)) {
            Ok(value) => value,
            Err(error) => {
                let error = FieldError::new(FieldPath::root(), Problem::Yaml(error.to_string()));
                parser.error(location, None, error);
                break;
            }
        };
        if value.is_null() {
            continue;
        }
        if str_at(&value, "apiVersion") == Some("v1") && str_at(&value, "kind") == Some("List") {
            let items = match value.get_mut("items").map(std::mem::take) {
                Some(Value::Sequence(items)) => items,
                None | Some(Value::Null) => Vec::new(),
                Some(_) => {
                    let error = FieldError::new(
                        FieldPath::parse("items"),
                        Problem::Decode("expected a list".into()),
                    );
                    parser.error(location, None, error);
                    continue;
                }
            };
            for (i, item) in items.iter().enumerate() {
                parser.object(
                    item,
                    Location {
                        document: index + 1,
                        item: Some(i + 1),
                    },
                );
            }
        } else {
            parser.object(&value, location);
        }
    }
    Ok(ParsedFile {
        resources: parser.resources,
        secrets: parser.secrets,
        ignored: parser.ignored,
        errors: parser.errors,
    })
}

#[cfg(test)]
mod tests_parse_file {
    use super::*;

    const VALID: &str = "apiVersion: cert-manager.io/v1\nkind: Issuer\nmetadata: {name: vault}\nspec:\n  vault: {server: https://v, path: pki/sign/r, auth: {tokenSecretRef: {name: t}}}\n";

    #[test]
    fn hostile_invalid_document_does_not_hide_the_valid_ones() {
        let text = format!(
            "{VALID}---\napiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {{name: web}}\nspec: {{secretName: web-tls, bogus: 1}}\n"
        );
        let parsed = parse_file("m.yaml", &text).unwrap();
        assert_eq!(parsed.resources.len(), 1);
        assert_eq!(parsed.resources[0].0.document, 1);
        assert!(!parsed.errors.is_empty());
        assert!(parsed.errors.iter().all(|e| e.location.document == 2));
        assert_eq!(
            parsed.errors[0]
                .resource
                .as_ref()
                .map(ToString::to_string)
                .as_deref(),
            Some("Certificate default/web")
        );
        assert!(parse_documents("m.yaml", &text).is_err());
    }

    #[test]
    fn hostile_deep_nesting_is_refused_before_parsing() {
        let text = format!("{}{}", "{a: ".repeat(100_000), "}".repeat(100_000));
        assert!(matches!(
            parse_file("deep.yaml", &text),
            Err(LimitError::TooDeep { max: MAX_DEPTH, .. })
        ));
        let errors = parse_documents("deep.yaml", &text).unwrap_err();
        assert!(
            errors.to_string().contains("nesting deeper than 64 levels"),
            "{errors}"
        );
    }
}
