//! Object metadata and the reference types shared by issuers and certificates
//! (cert-manager's `pkg/apis/meta/v1`).

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::error::{FieldError, FieldPath, Problem};
use super::syntax::{check_dns_label, check_dns_subdomain, check_secret_key};

/// The namespace of a namespaced object whose manifest names none. `kubectl apply` would use the
/// context's namespace, which is `default` unless configured; standalone manifests have no
/// context, so `default` it is. An Issuer and the Certificates that use it must then agree.
pub const DEFAULT_NAMESPACE: &str = "default";

/// The API group of cert-manager's built-in issuers; an empty `issuerRef.group` means this.
pub const CERT_MANAGER_GROUP: &str = "cert-manager.io";

/// certkeeper's own API group: `VaultIssuer` and `VaultClusterIssuer`, the kinds cert-manager's
/// Certificates name when certkeeper runs beside cert-manager as an external issuer.
pub const CERTKEEPER_GROUP: &str = "certkeeper.io";

/// The subset of Kubernetes `ObjectMeta` certkeeper uses. The other standard metadata fields
/// (uid, resourceVersion, managedFields, ...) are accepted and ignored, so output of
/// `kubectl get -o yaml` parses; anything else under `metadata` is an unknown field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct ObjectMeta {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Empty for cluster-scoped objects and for manifests that leave it to the context.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Standard `ObjectMeta` fields that are recognised but not modelled.
pub(super) const IGNORED_META_FIELDS: &[&str] = &[
    "generateName",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

impl ObjectMeta {
    /// The namespace with [`DEFAULT_NAMESPACE`] applied (meaningful for namespaced kinds only).
    pub fn namespace_or_default(&self) -> &str {
        if self.namespace.is_empty() {
            DEFAULT_NAMESPACE
        } else {
            &self.namespace
        }
    }

    /// Name required and a DNS subdomain, namespace (if any) a DNS label, as the API server
    /// checks them for custom resources.
    pub(super) fn validate(&self, path: &FieldPath, namespaced: bool, errors: &mut Vec<FieldError>) {
        if self.name.is_empty() {
            errors.push(FieldError::new(path.field("name"), Problem::Required));
        } else if let Err(reason) = check_dns_subdomain(&self.name) {
            let problem = Problem::InvalidName {
                value: self.name.clone(),
                reason,
            };
            errors.push(FieldError::new(path.field("name"), problem));
        }
        if namespaced
            && !self.namespace.is_empty()
            && let Err(reason) = check_dns_label(&self.namespace)
        {
            let problem = Problem::InvalidName {
                value: self.namespace.clone(),
                reason,
            };
            errors.push(FieldError::new(path.field("namespace"), problem));
        }
    }
}

/// A referenced object's name (a Secret, a ServiceAccount): required, and a DNS subdomain as the
/// API server requires of every such name.
pub(super) fn validate_object_name(name: &str, path: &FieldPath, errors: &mut Vec<FieldError>) {
    if name.is_empty() {
        errors.push(FieldError::new(path.clone(), Problem::Required));
    } else if let Err(reason) = check_dns_subdomain(name) {
        let problem = Problem::InvalidName {
            value: name.to_owned(),
            reason,
        };
        errors.push(FieldError::new(path.clone(), problem));
    }
}

/// A reference to an object in the same namespace, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct LocalObjectReference {
    pub name: String,
}

/// A key in a Secret. An empty `key` means "the default for this field", which differs per
/// field (see [`SecretKeySelector::key_or`] and the defaults in `issuer`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct SecretKeySelector {
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub key: String,
}

impl SecretKeySelector {
    /// The key, or `default` when the manifest leaves it empty.
    pub fn key_or<'a>(&'a self, default: &'a str) -> &'a str {
        if self.key.is_empty() { default } else { &self.key }
    }

    /// The key as written, `None` when the manifest leaves it empty. For the references whose
    /// field has no default key (appRole `secretRef`, keystore `passwordSecretRef`):
    /// cert-manager's webhook accepts them without `key`, and its controller then reads the
    /// key `""`, which no Secret has, so the object fails when it is used. Both runtimes fail
    /// it there too (see `certkeeper_engine::build`), through this one check.
    pub fn explicit_key(&self) -> Option<&str> {
        (!self.key.is_empty()).then_some(self.key.as_str())
    }

    /// The name is required and must be a Secret name (a DNS subdomain), the key, when set, a
    /// Secret data key, as the API server checks them: these strings become API paths in the
    /// controller and file paths standalone, so nothing else may reach either. An empty key is
    /// not a validation error for any field, as in cert-manager's webhook.
    pub(super) fn validate(&self, path: &FieldPath, errors: &mut Vec<FieldError>) {
        validate_object_name(&self.name, &path.field("name"), errors);
        if !self.key.is_empty()
            && let Err(reason) = check_secret_key(&self.key)
        {
            let problem = Problem::InvalidSecretKey {
                value: self.key.clone(),
                reason,
            };
            errors.push(FieldError::new(path.field("key"), problem));
        }
    }
}

/// `spec.issuerRef` of a Certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct IssuerReference {
    pub name: String,
    /// `Issuer` when empty.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// `cert-manager.io` when empty.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub group: String,
}

impl IssuerReference {
    pub fn group_or_default(&self) -> &str {
        if self.group.is_empty() {
            CERT_MANAGER_GROUP
        } else {
            &self.group
        }
    }

    /// Whether the reference is to one of cert-manager's own kinds.
    pub fn is_cert_manager(&self) -> bool {
        self.group_or_default() == CERT_MANAGER_GROUP
    }

    /// Whether the reference is to a group certkeeper serves (cert-manager's, or its own
    /// `certkeeper.io`); other groups belong to other external issuers, left alone.
    pub fn is_served(&self) -> bool {
        matches!(self.group_or_default(), CERT_MANAGER_GROUP | CERTKEEPER_GROUP)
    }

    /// The issuer kind this reference names, the one place group and kind are read together:
    /// `Issuer` (also for an empty kind) and `ClusterIssuer` of `cert-manager.io`,
    /// `VaultIssuer` and `VaultClusterIssuer` of `certkeeper.io`. `None` for another group or an
    /// unknown kind (a validation error in a served group).
    pub fn issuer_kind(&self) -> Option<IssuerKind> {
        match (self.group_or_default(), self.kind.as_str()) {
            (CERT_MANAGER_GROUP, "" | "Issuer") => Some(IssuerKind::Issuer),
            (CERT_MANAGER_GROUP, "ClusterIssuer") => Some(IssuerKind::ClusterIssuer),
            (CERTKEEPER_GROUP, "VaultIssuer") => Some(IssuerKind::VaultIssuer),
            (CERTKEEPER_GROUP, "VaultClusterIssuer") => Some(IssuerKind::VaultClusterIssuer),
            _ => None,
        }
    }

    /// `<kind>.<group>/<name>` (`AWSPCAClusterIssuer.awspca.cert-manager.io/pca`), as kubectl
    /// names a resource of a group: how an external issuer is shown.
    pub fn qualified_name(&self) -> String {
        format!("{}.{}/{}", self.kind, self.group_or_default(), self.name)
    }

    pub(super) fn validate(&self, path: &FieldPath, errors: &mut Vec<FieldError>) {
        if self.name.is_empty() {
            errors.push(FieldError::new(path.field("name"), Problem::Required));
        }
        // cert-manager checks the kind only for its own group: other groups' kinds are unknown.
        // certkeeper checks its own group's kinds the same way.
        if self.is_served() && self.issuer_kind().is_none() {
            let problem = if self.is_cert_manager() {
                Problem::InvalidIssuerKind {
                    kind: self.kind.clone(),
                    group_missing: self.group.is_empty(),
                }
            } else {
                Problem::InvalidCertkeeperIssuerKind(self.kind.clone())
            };
            errors.push(FieldError::new(path.field("kind"), problem));
        }
    }
}

/// The issuer kinds certkeeper serves: cert-manager's two, and certkeeper's own two (the same
/// Vault issuer, named by cert-manager's Certificates when certkeeper is their external issuer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IssuerKind {
    Issuer,
    ClusterIssuer,
    /// `certkeeper.io/v1` `VaultIssuer`: namespaced, its `spec` is cert-manager's `spec.vault`.
    VaultIssuer,
    /// `certkeeper.io/v1` `VaultClusterIssuer`: cluster-scoped, as a ClusterIssuer.
    VaultClusterIssuer,
}

impl IssuerKind {
    pub const ALL: [IssuerKind; 4] = [
        IssuerKind::Issuer,
        IssuerKind::ClusterIssuer,
        IssuerKind::VaultIssuer,
        IssuerKind::VaultClusterIssuer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            IssuerKind::Issuer => "Issuer",
            IssuerKind::ClusterIssuer => "ClusterIssuer",
            IssuerKind::VaultIssuer => "VaultIssuer",
            IssuerKind::VaultClusterIssuer => "VaultClusterIssuer",
        }
    }

    /// The kind's API group.
    pub fn group(self) -> &'static str {
        match self {
            IssuerKind::Issuer | IssuerKind::ClusterIssuer => CERT_MANAGER_GROUP,
            IssuerKind::VaultIssuer | IssuerKind::VaultClusterIssuer => CERTKEEPER_GROUP,
        }
    }

    /// The kind's `apiVersion` (`v1` of its group).
    pub fn api_version(self) -> &'static str {
        match self {
            IssuerKind::Issuer | IssuerKind::ClusterIssuer => "cert-manager.io/v1",
            IssuerKind::VaultIssuer | IssuerKind::VaultClusterIssuer => "certkeeper.io/v1",
        }
    }

    /// The resource name in the API (`issuers`, `vaultclusterissuers`, ...).
    pub fn plural(self) -> &'static str {
        match self {
            IssuerKind::Issuer => "issuers",
            IssuerKind::ClusterIssuer => "clusterissuers",
            IssuerKind::VaultIssuer => "vaultissuers",
            IssuerKind::VaultClusterIssuer => "vaultclusterissuers",
        }
    }

    /// Whether objects of the kind live in a namespace (and serve only Certificates and
    /// requests of that namespace); the cluster-scoped kinds read their Secrets from the
    /// cluster resource namespace.
    pub fn namespaced(self) -> bool {
        matches!(self, IssuerKind::Issuer | IssuerKind::VaultIssuer)
    }

    /// The kind named `name` in `group`, as a reference names it ([`IssuerReference::issuer_kind`]).
    pub fn of(group: &str, kind: &str) -> Option<IssuerKind> {
        IssuerReference {
            name: String::new(),
            kind: kind.to_owned(),
            group: group.to_owned(),
        }
        .issuer_kind()
    }
}

impl fmt::Display for IssuerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Identifies an issuer for matching certificates to issuers, for per-issuer gates and token
/// caches. A namespaced `Issuer` is only visible to Certificates in its own namespace, so the
/// namespace is part of the key; a `ClusterIssuer` has none.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IssuerKey {
    pub kind: IssuerKind,
    pub namespace: Option<String>,
    pub name: String,
}

impl IssuerKey {
    /// The key of an issuer object of `kind` (its namespace, default applied, when the kind is
    /// namespaced).
    pub fn of(kind: IssuerKind, metadata: &ObjectMeta) -> IssuerKey {
        IssuerKey {
            kind,
            namespace: kind
                .namespaced()
                .then(|| metadata.namespace_or_default().to_owned()),
            name: metadata.name.clone(),
        }
    }
}

impl fmt::Display for IssuerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(namespace) => write!(f, "{} {namespace}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}
