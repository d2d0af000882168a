//! `CertificateRequest` (cert-manager's `types_certificaterequest.go`), field names exactly as
//! cert-manager spells them: one signing request (a PEM CSR) for an issuer, and its outcome.
//!
//! In cert-manager a Certificate creates one per issuance; certkeeper's Kubernetes runtime does
//! the same, so tools that watch CertificateRequests (approvers, policy engines, dashboards) keep
//! working. `username`, `uid`, `groups` and `extra` record who created the request.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::certificate::KeyUsage;
use super::duration::GoDuration;
use super::error::{FieldError, FieldPath, Problem};
use super::meta::{IssuerReference, ObjectMeta};
use super::syntax::Base64Bytes;

/// Condition types of a CertificateRequest besides `Ready`.
pub const CONDITION_INVALID_REQUEST: &str = "InvalidRequest";
pub const CONDITION_APPROVED: &str = "Approved";
pub const CONDITION_DENIED: &str = "Denied";

/// Reasons of a CertificateRequest's `Ready` condition.
pub const REASON_PENDING: &str = "Pending";
pub const REASON_FAILED: &str = "Failed";
pub const REASON_ISSUED: &str = "Issued";
pub const REASON_DENIED: &str = "Denied";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CertificateRequest {
    #[serde(default)]
    pub metadata: ObjectMeta,
    pub spec: CertificateRequestSpec,
    #[serde(default)]
    pub status: CertificateRequestStatus,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificateRequestSpec {
    /// Requested lifetime; the issuer may ignore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<GoDuration>,
    pub issuer_ref: IssuerReference,
    /// The PEM-encoded X.509 certificate signing request (base64 in YAML and JSON).
    pub request: Base64Bytes,
    /// Requested basic constraints isCA value; the issuer may ignore it.
    #[serde(default, rename = "isCA", skip_serializing_if = "std::ops::Not::not")]
    pub is_ca: bool,
    /// Requested key usages and extended key usages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub usages: Vec<KeyUsage>,
    /// Name of the user who created the request (set on creation, immutable).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    /// UID of the user who created the request (set on creation, immutable).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// Groups of the user who created the request (set on creation, immutable).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Extra attributes of the user who created the request (set on creation, immutable).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Vec<String>>,
}

/// A condition of a CertificateRequest: like [`super::Condition`] without
/// `observedGeneration`, as in cert-manager.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificateRequestCondition {
    /// `Ready`, `InvalidRequest`, `Approved` or `Denied`.
    #[serde(rename = "type")]
    pub condition_type: String,
    pub status: super::status::ConditionStatus,
    /// When the condition last changed from one status to another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::schema::date_time")]
    pub last_transition_time: Option<String>,
    /// Machine-readable, CamelCase reason for the last transition.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Human-readable details of the last transition.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct CertificateRequestStatus {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<CertificateRequestCondition>,
    /// The signed certificate, PEM (base64 in YAML and JSON).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<Base64Bytes>,
    /// Deprecated in cert-manager: the CA that signed the certificate, PEM, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca: Option<Base64Bytes>,
    /// When the request failed; the request is not retried after that.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::schema::date_time")]
    pub failure_time: Option<String>,
}

impl CertificateRequestStatus {
    /// The condition of this type, if set.
    pub fn condition(&self, condition_type: &str) -> Option<&CertificateRequestCondition> {
        self.conditions
            .iter()
            .find(|c| c.condition_type == condition_type)
    }
}

impl CertificateRequest {
    /// cert-manager's webhook rules that apply to a request certkeeper signs: a name, an issuer
    /// reference, and `request` (see [`CertificateRequestSpec::check_request`]).
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        self.metadata
            .validate(&FieldPath::parse("metadata"), true, &mut errors);
        let spec = FieldPath::parse("spec");
        self.spec
            .issuer_ref
            .validate(&spec.field("issuerRef"), &mut errors);
        if let Err(error) = self.spec.check_request() {
            errors.push(error);
        }
        errors
    }
}

impl CertificateRequestSpec {
    /// `spec.request` as cert-manager's webhook checks it: present, a PEM CSR whose basic
    /// constraints and key usages match `isCA` and `usages` ([`crate::pki::check_request`]).
    /// The one check of a request's CSR for validation and for the controller's request loop.
    pub fn check_request(&self) -> Result<(), FieldError> {
        let at = FieldPath::parse("spec.request");
        if self.request.0.is_empty() {
            return Err(FieldError::new(at, Problem::Required));
        }
        let usages: Vec<crate::pki::Usage> = self.usages.iter().map(|&u| u.into()).collect();
        crate::pki::check_request(&self.request.0, &usages, self.is_ca)
            .map_err(|e| FieldError::new(at, Problem::InvalidRequest(e)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::spec::ConditionStatus;

    /// CN=web, basicConstraints CA, key usages digital signature and cert sign, extended key
    /// usage server auth: what `isCA: true` with `usages: [digital signature, server auth]` asks.
    const CSR: &str = concat!(
        "-----BEGIN CERTIFICATE REQUEST-----\n",
        "MIIBEDCBtwIBADAOMQwwCgYDVQQDDAN3ZWIwWTATBgcqhkjOPQIBBggqhkjOPQMB\n",
        "BwNCAATaQ5JX42pEtrx2yAE6w76HfXTLZ429A2ZCiy0yTMPqsQKXRvDHaGRroqm1\n",
        "9G+ozqV70aJWHs3odPo9YFToACEJoEcwRQYJKoZIhvcNAQkOMTgwNjAOBgNVHQ8B\n",
        "Af8EBAMCAoQwEwYDVR0lBAwwCgYIKwYBBQUHAwEwDwYDVR0TAQH/BAUwAwEB/zAK\n",
        "BggqhkjOPQQDAgNIADBFAiEAzo8D2BqkCltXjE287Ri5ubuqLlGPgLDWWKjqkWja\n",
        "YDMCID68yJj6Q9tLKh/g/sDTHNvEO0qwkc5G5yK7zeIrdKK7\n",
        "-----END CERTIFICATE REQUEST-----\n",
    );

    #[test]
    fn round_trips_cert_manager_field_names() {
        let request = super::super::syntax::encode_base64(CSR.as_bytes());
        let yaml = format!(
            "metadata: {{name: web-1, namespace: apps}}\n\
             spec:\n  request: {request}\n  issuerRef: {{name: vault, kind: ClusterIssuer}}\n  \
             duration: 2160h\n  isCA: true\n  usages: [digital signature, server auth]\n  \
             username: system:serviceaccount:cert-manager:cert-manager\n  uid: u-1\n  \
             groups: [system:serviceaccounts]\n  extra: {{scopes: [a, b]}}\n\
             status:\n  conditions:\n  - {{type: Ready, status: 'False', reason: Pending, \
             lastTransitionTime: '2026-01-02T03:04:05Z'}}\n  failureTime: '2026-01-02T03:04:05Z'\n"
        );
        let cr: CertificateRequest = serde_yaml_ng::from_str(&yaml).unwrap();
        assert_eq!(cr.spec.request.0, CSR.as_bytes());
        assert!(cr.spec.is_ca);
        assert_eq!(cr.spec.usages, [KeyUsage::DigitalSignature, KeyUsage::ServerAuth]);
        assert_eq!(cr.spec.extra["scopes"], ["a", "b"]);
        let ready = cr.status.condition("Ready").unwrap();
        assert_eq!(
            (ready.status, ready.reason.as_str()),
            (ConditionStatus::False, "Pending")
        );
        assert!(cr.validate().is_empty(), "{:?}", cr.validate());
        let back: CertificateRequest =
            serde_yaml_ng::from_str(&serde_yaml_ng::to_string(&cr).unwrap()).unwrap();
        assert_eq!(back, cr);
        let json = serde_json_like(&cr);
        for field in ["issuerRef", "isCA", "failureTime", "lastTransitionTime"] {
            assert!(json.contains(field), "{field} in {json}");
        }
    }

    fn serde_json_like(cr: &CertificateRequest) -> String {
        serde_yaml_ng::to_string(cr).unwrap()
    }

    #[test]
    fn request_and_issuer_ref_are_required() {
        let err = serde_yaml_ng::from_str::<CertificateRequest>("spec: {issuerRef: {name: v}}");
        assert!(err.is_err());
        let cr: CertificateRequest =
            serde_yaml_ng::from_str("metadata: {name: x}\nspec: {issuerRef: {name: ''}, request: aGk=}")
                .unwrap();
        let errors: Vec<String> = cr.validate().iter().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 2, "{errors:?}");
    }

    /// cert-manager's webhook rule: the CSR's basic constraints and key usages are what the
    /// request asks for (here the CSR asks for a CA with digital signature, cert sign and
    /// server auth).
    #[test]
    fn request_must_match_is_ca_and_usages() {
        let errors = |extra: &str| {
            let request = super::super::syntax::encode_base64(CSR.as_bytes());
            let yaml = format!(
                "metadata: {{name: x}}\nspec: {{issuerRef: {{name: v}}, request: {request}, {extra}}}"
            );
            let cr: CertificateRequest = serde_yaml_ng::from_str(&yaml).unwrap();
            cr.validate().iter().map(ToString::to_string).collect::<Vec<_>>()
        };
        assert!(errors("isCA: true, usages: [signing, server auth]").is_empty());
        assert_eq!(
            errors("usages: [digital signature, server auth]"),
            ["spec.request: encoded CSR error: IsCA true does not match expected value false"]
        );
        assert_eq!(
            errors("isCA: true, usages: [digital signature, key encipherment, server auth]"),
            [
                "spec.request: encoded CSR error: the KeyUsages [DigitalSignature, CertSign] do not match the expected KeyUsages [DigitalSignature, KeyEncipherment, CertSign]"
            ]
        );
        assert_eq!(
            errors("isCA: true, usages: [digital signature, client auth, server auth]"),
            [
                "spec.request: encoded CSR error: the ExtKeyUsages [ServerAuth] do not match the expected ExtKeyUsages [ClientAuth, ServerAuth]"
            ]
        );
    }
}
