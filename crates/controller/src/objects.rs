//! The cert-manager objects as the controller mirrors them: typed, decoded and validated once
//! as they arrive from the watch (as a manifest file is decoded), with only the metadata the
//! controller uses. Nothing downstream reads an object's JSON: the plan, the status writer, the
//! restore and the Issuer checks work on these types.

use std::sync::Arc;

use certkeeper_core::spec::{
    self, Certificate, CertificateRequestStatus, CertificateStatus, ConditionStatus, FieldError, IssuerKind,
    IssuerReference, IssuerStatus, KeyUsage, Resource, VaultIssuer,
};
use certkeeper_engine::build::VaultExtras;
use certkeeper_engine::{CertId, IssuerId};

use crate::annotations::{AnnotationError, vault_extras};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;
use serde_json::Value;

/// The metadata the controller uses of a mirrored object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Meta {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub resource_version: String,
    /// `metadata.generation` (0: unknown).
    pub generation: i64,
}

impl Meta {
    fn of(meta: ObjectMeta) -> Meta {
        Meta {
            namespace: meta.namespace.unwrap_or_default(),
            name: meta.name.unwrap_or_default(),
            uid: meta.uid.unwrap_or_default(),
            resource_version: meta.resource_version.unwrap_or_default(),
            generation: meta.generation.unwrap_or(0),
        }
    }

    /// The store key: "namespace/name", or "name" for cluster-scoped objects.
    pub fn key(&self) -> String {
        if self.namespace.is_empty() {
            self.name.clone()
        } else {
            format!("{}/{}", self.namespace, self.name)
        }
    }
}

/// Why a mirrored object's spec is not usable: every problem, with its field, as a manifest
/// file's verdict says it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecProblem {
    /// The object does not convert to YAML (not expected of JSON from the API server).
    #[error("{0}")]
    Undecodable(String),
    #[error("{}", join_problems(.0))]
    Invalid(Vec<FieldError>),
    #[error("not a {0}")]
    WrongKind(&'static str),
    /// A `certkeeper.io/vault-*` annotation (see [`crate::annotations`]).
    #[error(transparent)]
    Annotation(#[from] AnnotationError),
}

fn join_problems(problems: &[FieldError]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Decodes and validates an object from the API server, as a manifest file is.
pub fn decode(object: &Value) -> Result<Resource, SpecProblem> {
    let yaml = serde_yaml_ng::to_value(object).map_err(|e| SpecProblem::Undecodable(e.to_string()))?;
    spec::parse_resource(&yaml).map_err(SpecProblem::Invalid)
}

/// `object`'s metadata and status (a status that does not decode reads as empty: the
/// controller rewrites it).
fn envelope<S: Default + for<'de> Deserialize<'de>>(object: &Value) -> (Meta, S) {
    let meta = object
        .get("metadata")
        .cloned()
        .and_then(|m| serde_json::from_value(m).ok())
        .map(Meta::of)
        .unwrap_or_default();
    let status = object
        .get("status")
        .cloned()
        .and_then(|s| serde_json::from_value(s).ok())
        .unwrap_or_default();
    (meta, status)
}

/// A Certificate: its id, metadata, decoded spec (or what is wrong with it) and status.
#[derive(Debug, Clone)]
pub struct CertificateObject {
    pub id: CertId,
    pub meta: Meta,
    pub spec: Result<Arc<Certificate>, SpecProblem>,
    pub status: CertificateStatus,
    /// `spec.issuerRef` when it names another API group (an external issuer): another
    /// controller's Certificate, left alone. Read from the object even when the rest of the spec
    /// is invalid, so certkeeper never writes to another issuer's Certificate.
    pub external_issuer: Option<IssuerReference>,
}

impl CertificateObject {
    /// Decodes a Certificate as it arrives from the API server (list items and watch events).
    pub fn of(object: Value) -> CertificateObject {
        let (meta, status) = envelope::<CertificateStatus>(&object);
        let external_issuer = object
            .pointer("/spec/issuerRef")
            .cloned()
            .and_then(|r| serde_json::from_value::<IssuerReference>(r).ok())
            .filter(|r| !r.is_served());
        let spec = match decode(&with_type(object, spec::API_VERSION, "Certificate")) {
            Ok(Resource::Certificate(c)) => Ok(Arc::new(*c)),
            Ok(_) => Err(SpecProblem::WrongKind("Certificate")),
            Err(e) => Err(e),
        };
        CertificateObject {
            id: CertId::new(&meta.namespace, &meta.name),
            meta,
            spec,
            status,
            external_issuer,
        }
    }

    /// As [`CertificateObject::of`], sharing with `previous` (the version this one replaces)
    /// the id and a spec that did not change: each issuance writes the status several times,
    /// and the mirror, the plan's build cache and the jobs then hold one spec, not one per
    /// version seen.
    pub fn after(object: Value, previous: Option<&CertificateObject>) -> CertificateObject {
        let mut next = CertificateObject::of(object);
        if let Some(previous) = previous {
            if previous.id == next.id {
                next.id = previous.id.clone();
            }
            if let (Ok(spec), Ok(before)) = (&next.spec, &previous.spec)
                && spec == before
            {
                next.spec = Ok(before.clone());
            }
        }
        next
    }
}

/// What an issuer object is, as far as the controller is concerned.
#[derive(Debug, Clone, PartialEq)]
pub enum IssuerSpec {
    /// A Vault issuer: the namespace of its Secrets (the cluster resource namespace for a
    /// ClusterIssuer), its spec, and what its annotations add to it.
    Vault {
        namespace: String,
        vault: Box<VaultIssuer>,
        extras: VaultExtras,
    },
    /// Another issuer type (ACME, CA, ...): left alone.
    Other,
    /// An invalid spec: not Ready, with the fields named.
    Invalid(SpecProblem),
}

/// An Issuer or ClusterIssuer.
#[derive(Debug, Clone)]
pub struct IssuerObject {
    pub id: IssuerId,
    pub kind: IssuerKind,
    pub meta: Meta,
    pub spec: IssuerSpec,
    pub status: IssuerStatus,
}

impl IssuerObject {
    /// Decodes an issuer object of `kind` (cert-manager's Issuer or ClusterIssuer, certkeeper's
    /// VaultIssuer or VaultClusterIssuer) whose Secrets, for a cluster-scoped kind, live in
    /// `cluster_ns`.
    pub fn of(object: Value, kind: IssuerKind, cluster_ns: &str) -> IssuerObject {
        let (meta, status) = envelope::<IssuerStatus>(&object);
        let decoded = decode(&with_type(object, kind.api_version(), kind.as_str()));
        let spec = match decoded.as_ref().map(|r| r.issuer()) {
            Ok(Some(issuer)) if issuer.kind == kind => {
                match (issuer.vault, vault_extras(&issuer.metadata.annotations)) {
                    (Some(v), Ok(extras)) => IssuerSpec::Vault {
                        namespace: if kind.namespaced() {
                            issuer.metadata.namespace_or_default().to_owned()
                        } else {
                            cluster_ns.to_owned()
                        },
                        vault: Box::new(v.clone()),
                        extras,
                    },
                    (Some(_), Err(problem)) => IssuerSpec::Invalid(problem.into()),
                    (None, _) => IssuerSpec::Other,
                }
            }
            Ok(_) => IssuerSpec::Invalid(SpecProblem::WrongKind(kind.as_str())),
            Err(e) => IssuerSpec::Invalid(e.clone()),
        };
        IssuerObject {
            id: IssuerId::new(kind, &meta.namespace, &meta.name),
            kind,
            meta,
            spec,
            status,
        }
    }
}

/// A CertificateRequest as the request loop needs it (another tool's request, or the record
/// the Certificate side wrote).
#[derive(Debug, Clone, PartialEq)]
pub struct RequestObject {
    pub meta: Meta,
    /// It carries `cert-manager.io/certificate-name`: a record the Certificate side wrote.
    pub from_certificate: bool,
    pub issuer_ref: IssuerReference,
    /// `spec.request` as base64 text (decoded when it is signed).
    pub request: String,
    /// `spec.duration` as written.
    pub duration: Option<String>,
    /// `spec.isCA` and `spec.usages`, which the CSR must match
    /// ([`certkeeper_core::spec::CertificateRequestSpec::check_request`]).
    pub is_ca: bool,
    pub usages: Vec<KeyUsage>,
    pub status: CertificateRequestStatus,
}

/// What the request loop reads of a request's spec (leniently: a spec that does not decode
/// reads as empty and is answered as an invalid request).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestSpecView {
    #[serde(default)]
    issuer_ref: IssuerReference,
    #[serde(default)]
    request: String,
    #[serde(default)]
    duration: Option<String>,
    #[serde(default, rename = "isCA")]
    is_ca: bool,
    #[serde(default)]
    usages: Vec<KeyUsage>,
}

/// cert-manager's annotation naming the Certificate a request was made for.
pub const CERTIFICATE_NAME_ANNOTATION: &str = "cert-manager.io/certificate-name";
/// cert-manager's annotations naming the issuer a target Secret was issued by.
pub const ISSUER_NAME_ANNOTATION: &str = "cert-manager.io/issuer-name";
pub const ISSUER_KIND_ANNOTATION: &str = "cert-manager.io/issuer-kind";
pub const ISSUER_GROUP_ANNOTATION: &str = "cert-manager.io/issuer-group";

impl RequestObject {
    pub fn of(object: Value) -> RequestObject {
        let (meta, status) = envelope::<CertificateRequestStatus>(&object);
        let from_certificate = object
            .get("metadata")
            .and_then(|m| m.get("annotations"))
            .and_then(|a| a.get(CERTIFICATE_NAME_ANNOTATION))
            .is_some();
        let spec: RequestSpecView = object
            .get("spec")
            .cloned()
            .and_then(|s| serde_json::from_value(s).ok())
            .unwrap_or_default();
        RequestObject {
            meta,
            from_certificate,
            issuer_ref: spec.issuer_ref,
            request: spec.request,
            duration: spec.duration,
            is_ca: spec.is_ca,
            usages: spec.usages,
            status,
        }
    }

    /// "namespace/name/uid": a request, told apart from an earlier one of the same name.
    pub fn key(&self) -> String {
        format!("{}/{}", self.meta.key(), self.meta.uid)
    }

    /// Whether its condition of this type is True.
    pub fn is_true(&self, condition_type: &str) -> bool {
        self.status
            .condition(condition_type)
            .is_some_and(|c| c.status == ConditionStatus::True)
    }
}

/// `object` with its `kind` and `apiVersion` (list items omit them; the decoder needs them) and
/// without `metadata.managedFields`.
fn with_type(mut object: Value, api_version: &str, kind: &str) -> Value {
    if object.get("kind").is_none_or(Value::is_null) {
        object["kind"] = Value::String(kind.to_owned());
    }
    if object.get("apiVersion").is_none_or(Value::is_null) {
        object["apiVersion"] = Value::String(api_version.to_owned());
    }
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    // The decoder checks the spec; the status is read on its own (envelope).
    if let Some(map) = object.as_object_mut() {
        map.remove("status");
    }
    object
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    #[test]
    fn a_certificate_is_decoded_once_with_its_status() {
        let object = json!({
            "metadata": {"name": "web", "namespace": "apps", "uid": "u1", "resourceVersion": "7",
                         "generation": 3, "managedFields": [{"manager": "kubectl"}]},
            "spec": {"secretName": "web-tls", "dnsNames": ["web.example.com"], "issuerRef": {"name": "vault"}},
            "status": {"revision": 2, "conditions": [{"type": "Ready", "status": "True", "reason": "Ready",
                       "message": "ok", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
        });
        let c = CertificateObject::of(object);
        assert_eq!(c.id, "apps/web");
        assert_eq!(
            c.meta,
            Meta {
                namespace: "apps".into(),
                name: "web".into(),
                uid: "u1".into(),
                resource_version: "7".into(),
                generation: 3
            }
        );
        assert_eq!(c.spec.unwrap().spec.secret_name, "web-tls");
        assert_eq!(c.status.revision, Some(2));
    }

    #[test]
    fn a_status_write_shares_the_unchanged_spec_with_the_version_it_replaces() {
        let version = |rv: &str, dns: &str| {
            json!({
                "metadata": {"name": "web", "namespace": "apps", "resourceVersion": rv},
                "spec": {"secretName": "web-tls", "dnsNames": [dns], "issuerRef": {"name": "vault"}},
                "status": {"revision": 1}
            })
        };
        let first = CertificateObject::after(version("1", "a.example.com"), None);
        let status_write = CertificateObject::after(version("2", "a.example.com"), Some(&first));
        let (Ok(before), Ok(after)) = (&first.spec, &status_write.spec) else {
            panic!("both versions are valid")
        };
        assert!(Arc::ptr_eq(before, after), "one spec held for both versions");
        assert_eq!(first.id.as_ptr(), status_write.id.as_ptr(), "one id");
        assert_eq!(status_write.meta.resource_version, "2");
        let spec_change = CertificateObject::after(version("3", "b.example.com"), Some(&status_write));
        let Ok(changed) = &spec_change.spec else {
            panic!("valid")
        };
        assert!(!Arc::ptr_eq(after, changed));
        assert_eq!(changed.spec.dns_names, ["b.example.com"]);
    }

    #[test]
    fn an_invalid_certificate_names_its_field_and_keeps_its_status() {
        let object = json!({
            "metadata": {"name": "web", "namespace": "apps"},
            "spec": {"secretName": "../x", "issuerRef": {"name": "vault"}},
            "status": {"failedIssuanceAttempts": 2}
        });
        let c = CertificateObject::of(object);
        let problem = c.spec.unwrap_err().to_string();
        assert!(problem.contains("spec.secretName"), "{problem}");
        assert_eq!(c.status.failed_issuance_attempts, Some(2));
    }

    /// cert-manager's webhook accepts a Certificate of another group's issuer without checking
    /// its kind; it is decoded as valid and marked external, even when its spec is invalid.
    #[test]
    fn a_certificate_of_an_external_issuer_is_marked_as_such() {
        let object = |spec: Value| {
            CertificateObject::of(json!({"metadata": {"name": "pca", "namespace": "apps"}, "spec": spec}))
        };
        let pca = object(json!({"secretName": "pca-tls", "dnsNames": ["pca.example.com"],
            "issuerRef": {"name": "pca", "kind": "AWSPCAClusterIssuer", "group": "awspca.cert-manager.io"}}));
        assert!(pca.spec.is_ok(), "{:?}", pca.spec);
        assert_eq!(
            pca.external_issuer.map(|r| r.qualified_name()).as_deref(),
            Some("AWSPCAClusterIssuer.awspca.cert-manager.io/pca")
        );
        let invalid = object(json!({"secretName": "../x",
            "issuerRef": {"name": "pca", "kind": "AWSPCAClusterIssuer", "group": "awspca.cert-manager.io"}}));
        assert!(invalid.spec.is_err());
        assert!(invalid.external_issuer.is_some());
        for group in ["", "cert-manager.io"] {
            let ours = object(json!({"secretName": "web-tls", "dnsNames": ["web.example.com"],
                "issuerRef": {"name": "vault", "group": group}}));
            assert!(ours.spec.is_ok() && ours.external_issuer.is_none(), "{group:?}");
        }
    }

    #[test]
    fn a_status_that_does_not_decode_reads_as_empty() {
        let object = json!({
            "metadata": {"name": "web", "namespace": "apps"},
            "spec": {"secretName": "web-tls", "dnsNames": ["a.example.com"], "issuerRef": {"name": "vault"}},
            "status": {"revision": "not a number"}
        });
        let c = CertificateObject::of(object);
        assert!(c.spec.is_ok());
        assert_eq!(c.status, CertificateStatus::default());
    }

    #[test]
    fn issuers_are_sorted_as_they_arrive() {
        let vault = json!({"metadata": {"name": "v", "namespace": "apps", "generation": 2},
            "spec": {"vault": {"server": "https://vault:8200", "path": "pki/sign/web",
                               "auth": {"tokenSecretRef": {"name": "t", "key": "token"}}}}});
        let i = IssuerObject::of(vault.clone(), IssuerKind::Issuer, "cert-manager");
        assert_eq!(i.id, "Issuer/apps/v");
        assert!(matches!(&i.spec, IssuerSpec::Vault { namespace, .. } if namespace == "apps"));
        let c = IssuerObject::of(vault, IssuerKind::ClusterIssuer, "cert-manager");
        assert_eq!(c.id, "ClusterIssuer/v");
        assert!(matches!(&c.spec, IssuerSpec::Vault { namespace, .. } if namespace == "cert-manager"));
        let ca =
            json!({"metadata": {"name": "ca", "namespace": "apps"}, "spec": {"ca": {"secretName": "x"}}});
        // Another issuer type is not served, and says so (as the spec's validation decides).
        let ca = IssuerObject::of(ca, IssuerKind::Issuer, "cm");
        assert!(
            matches!(&ca.spec, IssuerSpec::Invalid(p) if p.to_string().contains("unsupported issuer type")),
            "{:?}",
            ca.spec
        );
        let bad = json!({"metadata": {"name": "b", "namespace": "apps"},
            "spec": {"vault": {"server": "https://vault:8200", "path": "pki/sign/web",
                               "auth": {"tokenSecretRef": {"name": "../../kube-system/victim", "key": "token"}}}}});
        let b = IssuerObject::of(bad, IssuerKind::Issuer, "cm");
        assert!(matches!(b.spec, IssuerSpec::Invalid(SpecProblem::Invalid(_))));
    }

    /// The annotations reach the issuer's spec, on every kind; a bad one makes the issuer
    /// invalid (not Ready, naming the annotation) instead of being ignored.
    #[test]
    fn vault_annotations_reach_the_issuer_or_make_it_invalid() {
        let spec = json!({"server": "https://vault:8200", "path": "pki/sign/web",
                          "auth": {"tokenSecretRef": {"name": "t", "key": "token"}}});
        let object = |kind: IssuerKind, annotations: Value| {
            // certkeeper's own kinds carry the Vault settings as their whole spec.
            let spec = match kind {
                IssuerKind::VaultIssuer | IssuerKind::VaultClusterIssuer => spec.clone(),
                _ => json!({ "vault": spec }),
            };
            json!({"metadata": {"name": "v", "namespace": "apps", "annotations": annotations}, "spec": spec})
        };
        let vault = |annotations: Value| object(IssuerKind::Issuer, annotations);
        let good = json!({
            "certkeeper.io/vault-addresses": "https://a:8200,https://b:8200",
            "certkeeper.io/vault-auth-namespace": "org"
        });
        for kind in IssuerKind::ALL {
            match IssuerObject::of(object(kind, good.clone()), kind, "cm").spec {
                IssuerSpec::Vault { extras, .. } => {
                    assert_eq!(extras.addresses, vec!["https://a:8200", "https://b:8200"]);
                    assert_eq!(extras.auth_namespace.as_deref(), Some("org"));
                }
                other => panic!("{kind:?}: {other:?}"),
            }
        }
        let bad = vault(json!({"certkeeper.io/vault-addresses": "https://a:8200/v1/sys/seal"}));
        let spec = IssuerObject::of(bad, IssuerKind::Issuer, "cm").spec;
        assert!(
            matches!(&spec, IssuerSpec::Invalid(p) if p.to_string().starts_with("annotation certkeeper.io/vault-addresses: ")),
            "{spec:?}"
        );
    }
}
