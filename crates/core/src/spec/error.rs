//! Typed spec errors.
//!
//! A [`FieldError`] is what a check found, located by a [`FieldPath`] inside one object
//! (`spec.privateKey.size`). A [`SpecError`] adds where that object came from (file, document,
//! list item, kind and name) so that a user with fifty manifests can go straight to the line.
//! Messages are produced only by the `Display` of [`Problem`], so the same problem always reads the
//! same, whether it is printed by the CLI, put in a Kubernetes status or an Event.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use crate::FailureClass;

use super::certificate::{PrivateKeyAlgorithm, SignatureAlgorithm};
use super::duration::format_go_duration;

/// One step of a [`FieldPath`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    /// A field of an object, by its cert-manager (camelCase) name.
    Field(Cow<'static, str>),
    /// An element of a list, 0-based like Kubernetes' own paths.
    Index(usize),
    /// An entry of a string map (labels, annotations), by key.
    Key(String),
}

/// Where a field is inside one object, printed the way Kubernetes prints field paths:
/// `spec.dnsNames[2]`, `spec.secretTemplate.annotations[cert-manager.io/foo]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct FieldPath(Vec<Segment>);

impl FieldPath {
    /// The object itself (prints as nothing).
    pub fn root() -> Self {
        FieldPath(Vec::new())
    }

    /// A path from dotted field names, for tests and callers that name a fixed field.
    pub fn parse(dotted: &str) -> Self {
        FieldPath(
            dotted
                .split('.')
                .map(|f| Segment::Field(Cow::Owned(f.to_owned())))
                .collect(),
        )
    }

    pub fn field(&self, name: impl Into<Cow<'static, str>>) -> Self {
        self.push(Segment::Field(name.into()))
    }

    pub fn index(&self, index: usize) -> Self {
        self.push(Segment::Index(index))
    }

    pub fn key(&self, key: impl Into<String>) -> Self {
        self.push(Segment::Key(key.into()))
    }

    pub fn segments(&self) -> &[Segment] {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    fn push(&self, segment: Segment) -> Self {
        let mut segments = self.0.clone();
        segments.push(segment);
        FieldPath(segments)
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Field(name) if i == 0 => f.write_str(name)?,
                Segment::Field(name) => write!(f, ".{name}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
                Segment::Key(key) => write!(f, "[{key}]")?,
            }
        }
        Ok(())
    }
}

/// Formats a duration the way Go (and so cert-manager's messages) does: `1h0m0s`.
struct Go(Duration);

impl fmt::Display for Go {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_go_duration(self.0))
    }
}

fn list(items: &[&str]) -> String {
    items.join(", ")
}

fn signatures(key: PrivateKeyAlgorithm) -> String {
    let names: Vec<_> = SignatureAlgorithm::allowed_for(key)
        .iter()
        .map(|s| s.as_str())
        .collect();
    list(&names)
}

/// What is wrong with one field. The wording names the rule so a user can fix the manifest
/// without reading cert-manager's source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    #[error("required")]
    Required,
    #[error("required: set one of {}", list(.0))]
    RequiredOneOf(&'static [&'static str]),
    #[error("set only one of {}", list(.0))]
    OnlyOneOf(&'static [&'static str]),
    #[error("cannot be set together with {0}")]
    MutuallyExclusive(&'static str),
    #[error("required when {0} is set")]
    RequiredWith(&'static str),
    #[error("unknown field")]
    UnknownField,
    /// The value has the wrong shape (a string where a number belongs, an unknown enum value, a
    /// malformed duration or base64 string). The text is serde's or the field parser's.
    #[error("{0}")]
    Decode(String),
    #[error("invalid YAML: {0}")]
    Yaml(String),
    #[error("expected a mapping with apiVersion and kind")]
    NotAnObject,
    #[error(
        "unsupported object {api_version} {kind}: expected cert-manager.io/v1 Issuer, ClusterIssuer or \
         Certificate, or certkeeper.io/v1 VaultIssuer or VaultClusterIssuer"
    )]
    UnsupportedKind { api_version: String, kind: String },
    #[error("Unsupported value: {value:?}: supported values: {}", list(.supported))]
    UnsupportedValue {
        value: String,
        supported: &'static [&'static str],
    },
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0}")]
    RenewalWindow(crate::schedule::WindowError),
    #[error("unsupported issuer type {0}: certkeeper serves Vault (and OpenBao) issuers only")]
    UnsupportedIssuerType(&'static str),
    #[error("RSA keys must be between 2048 and 8192 bits, got {0}")]
    RsaKeySize(u32),
    #[error("ECDSA keys must be 256, 384 or 521, got {0}")]
    EcdsaKeySize(u32),
    #[error("{} cannot be used with {} keys; use one of {}",
        .signature.as_str(), .key.as_str(), signatures(*.key))]
    SignatureAlgorithm {
        signature: SignatureAlgorithm,
        key: PrivateKeyAlgorithm,
    },
    #[error("must be at most {max} bytes long, got {len}")]
    TooLong { max: usize, len: usize },
    #[error("requires isCA: true")]
    RequiresIsCa,
    #[error("must have at most {max} entries, got {len}")]
    TooMany { max: usize, len: usize },
    #[error("{0}")]
    InvalidLiteralSubject(crate::pki::DnError),
    #[error(
        "unrecognized attribute type {attribute_type:?} (value {value:?}): use C, O, OU, CN, SERIALNUMBER, L, ST, STREET, DC, UID or a dotted OID"
    )]
    UnrecognizedSubjectAttribute { attribute_type: String, value: String },
    #[error("{0}")]
    InvalidOid(crate::pki::OidSyntaxError),
    #[error("{0}")]
    InvalidCidr(crate::pki::CidrError),
    #[error("must be at least {min}")]
    TooSmall { min: i64 },
    #[error("must be at least {}, got {}", Go(*.min), Go(*.value))]
    DurationTooShort { value: Duration, min: Duration },
    #[error("must be less than the certificate duration {}, got {}", Go(*.duration), Go(*.renew_before))]
    RenewBeforeNotBelowDuration {
        renew_before: Duration,
        duration: Duration,
    },
    #[error("must be greater than 0 and less than 100, got {0}")]
    PercentageOutOfRange(i32),
    /// cert-manager's webhook requires `duration * (100 - percentage) / 100` (the time from
    /// issuance to renewal) to be at least 5 minutes; the same rule is applied here.
    #[error(
        "{percentage}% of the duration {} leaves {} between issuance and renewal, less than the minimum {}",
        Go(*.duration), Go(*.renew_after), Go(*.min)
    )]
    PercentageTooLarge {
        percentage: i32,
        duration: Duration,
        renew_after: Duration,
        min: Duration,
    },
    #[error("invalid IP address {0:?}")]
    InvalidIp(String),
    #[error("invalid email address {value:?}: {reason}")]
    InvalidEmail { value: String, reason: &'static str },
    #[error("invalid URI {value:?}: {reason}")]
    InvalidUri { value: String, reason: &'static str },
    #[error("invalid name {value:?}: {reason}")]
    InvalidName { value: String, reason: &'static str },
    #[error("duplicate value {0:?}")]
    Duplicate(String),
    #[error("must not contain '..' path segments")]
    DotDotSegment,
    #[error("invalid Secret key {value:?}: {reason}")]
    InvalidSecretKey { value: String, reason: &'static str },
    #[error("invalid Vault path {value:?}: {reason}")]
    InvalidVaultPath { value: String, reason: &'static str },
    /// `spec.vault.path` names a PKI `issue` endpoint (`<mount>/issue/<role>`), not `sign`.
    #[error(
        "{0:?} is a PKI issue endpoint: there Vault generates the private key and returns it, and \
         stores every request (cert-manager users have filled Vault and etcd with thousands of \
         certificates this way); certkeeper generates keys locally and has Vault sign the CSR: \
         use <mount>/sign/<role> (or <mount>/sign-verbatim/<role>)"
    )]
    IssueEndpoint(String),
    #[error(
        "audience {0:?} would make the token valid against the Kubernetes API server itself; \
         use an audience that names Vault (e.g. vault://<namespace>/<issuer>)"
    )]
    KubernetesApiAudience(String),
    #[error("must be Issuer or ClusterIssuer, got {kind:?}{}",
        if *.group_missing { " (did you forget to set spec.issuerRef.group?)" } else { "" })]
    InvalidIssuerKind { kind: String, group_missing: bool },
    #[error("must be VaultIssuer or VaultClusterIssuer in group certkeeper.io, got {0:?}")]
    InvalidCertkeeperIssuerKind(String),
    #[error("cert-manager.io/* annotations are not allowed (except cert-manager.io/allow-direct-injection)")]
    ReservedAnnotation,
    #[error("contains no valid PEM certificate")]
    NoCertificateInBundle,
    #[error("{0}")]
    InvalidRequest(crate::pki::RequestCheckError),
    #[error("{kind} {name} is already defined in document {first_document}")]
    DuplicateResource {
        kind: &'static str,
        name: String,
        first_document: usize,
    },
}

/// One problem at one place inside one object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct FieldError {
    pub path: FieldPath,
    pub problem: Problem,
}

impl FieldError {
    pub fn new(path: FieldPath, problem: Problem) -> Self {
        FieldError { path, problem }
    }

    /// A spec error never heals by itself: it waits for the manifest to change.
    pub fn class(&self) -> FailureClass {
        FailureClass::Invalid
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_root() {
            write!(f, "{}", self.problem)
        } else {
            write!(f, "{}: {}", self.path, self.problem)
        }
    }
}

/// Which document of a file (1-based, counting empty documents so the number matches what an
/// editor shows between `---` lines), and which item of a `kind: List` document (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Location {
    pub document: usize,
    pub item: Option<usize>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "document {}", self.document)?;
        if let Some(item) = self.item {
            write!(f, ", item {item}")?;
        }
        Ok(())
    }
}

/// The kind and name of the object an error is about, as read from the raw document (so it is
/// available even when the object did not decode).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResourceId {
    pub kind: String,
    /// `None` for cluster-scoped kinds; the effective namespace (`default` when unset) otherwise.
    pub namespace: Option<String>,
    pub name: Option<String>,
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ", self.kind)?;
        if let Some(namespace) = &self.namespace {
            write!(f, "{namespace}/")?;
        }
        f.write_str(self.name.as_deref().unwrap_or("<no name>"))
    }
}

/// A [`FieldError`] with the file and object it belongs to:
/// `certs.yaml: document 2 (Certificate default/web): spec.privateKey.size: ...`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SpecError {
    /// The file name (or other label) the caller passed to [`super::parse_documents`].
    pub file: String,
    pub location: Location,
    pub resource: Option<ResourceId>,
    pub error: FieldError,
}

impl SpecError {
    pub fn class(&self) -> FailureClass {
        FailureClass::Invalid
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file, self.location)?;
        if let Some(resource) = &self.resource {
            write!(f, " ({resource})")?;
        }
        write!(f, ": {}", self.error)
    }
}

/// Every error found in one file, in document order. Displayed one per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SpecErrors(pub Vec<SpecError>);

impl SpecErrors {
    pub fn class(&self) -> FailureClass {
        FailureClass::Invalid
    }

    pub fn iter(&self) -> impl Iterator<Item = &SpecError> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}
