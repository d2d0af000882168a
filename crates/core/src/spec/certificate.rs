//! `Certificate` types (cert-manager's `types_certificate.go` and the `KeyUsage` list of
//! `types.go`), field names exactly as cert-manager spells them.
//!
//! Fields certkeeper does not implement are still modelled, so
//! that a manifest using them gets a precise "not supported" error instead of "unknown field". Validation and the resolved views
//! the engine uses live in `certificate_rules`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::duration::GoDuration;
use super::meta::{IssuerReference, ObjectMeta, SecretKeySelector};
use crate::Secret;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Certificate {
    #[serde(default)]
    pub metadata: ObjectMeta,
    pub spec: CertificateSpec,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct CertificateSpec {
    // The rarely set subtrees are boxed: a controller mirrors thousands of Certificates, and
    // inline they would take ~550 bytes of each whether set or not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<Box<X509Subject>>,
    /// An RFC 4514 subject used as written (alpha in cert-manager, behind the
    /// LiteralCertificateSubject feature gate); excludes `subject` and `commonName`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub literal_subject: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub common_name: String,
    /// Requested lifetime; 90 days when unset (see `Certificate::duration`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<GoDuration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renew_before: Option<GoDuration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renew_before_percentage: Option<i32>,
    /// `renewal` allows configuration of how your certificate is renewed: policy `RenewBefore`
    /// (`renewBefore` and `renewBeforePercentage`, optionally inside `windows`) or `Disabled`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renewal: Option<CertificateRenewal>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns_names: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ip_addresses: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub uris: Vec<String>,
    /// otherName SANs with UTF8String values (alpha in cert-manager, behind the OtherNames
    /// feature gate).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub other_names: Vec<OtherName>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub email_addresses: Vec<String>,
    pub secret_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_template: Option<CertificateSecretTemplate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keystores: Option<Box<CertificateKeystores>>,
    pub issuer_ref: IssuerReference,
    #[serde(rename = "isCA", skip_serializing_if = "std::ops::Not::not")]
    pub is_ca: bool,
    /// Defaults to `digital signature`, `key encipherment` (see `Certificate::usages`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub usages: Vec<KeyUsage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_key: Option<CertificatePrivateKey>,
    /// Signature algorithm of the CSR. Vault signs the certificate with its own key and role
    /// settings regardless.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature_algorithm: Option<SignatureAlgorithm>,
    /// Whether the usages are encoded in the CSR; true when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encode_usages_in_request: Option<bool>,
    /// CertificateRequest history in Kubernetes; at least 1 when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision_history_limit: Option<i32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub additional_output_formats: Vec<CertificateAdditionalOutputFormat>,
    /// The NameConstraints extension of a CA (alpha in cert-manager, behind the
    /// NameConstraints feature gate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name_constraints: Option<Box<NameConstraints>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct X509Subject {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub organizations: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub countries: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub organizational_units: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub localities: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub provinces: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub street_addresses: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub postal_codes: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub serial_number: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct OtherName {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub oid: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub utf8_value: String,
}

/// x509 NameConstraints (RFC 5280 4.2.1.10), as cert-manager types it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct NameConstraints {
    /// Whether the extension is marked critical.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub critical: bool,
    /// Names must lie inside these.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permitted: Option<NameConstraintItem>,
    /// Names must not lie inside these, whatever `permitted` says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub excluded: Option<NameConstraintItem>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct NameConstraintItem {
    #[serde(rename = "dnsDomains", skip_serializing_if = "Vec::is_empty")]
    pub dns_domains: Vec<String>,
    /// CIDR ranges, e.g. `10.0.0.0/8`.
    #[serde(rename = "ipRanges", skip_serializing_if = "Vec::is_empty")]
    pub ip_ranges: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub email_addresses: Vec<String>,
    #[serde(rename = "uriDomains", skip_serializing_if = "Vec::is_empty")]
    pub uri_domains: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct CertificateSecretTemplate {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct CertificateKeystores {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jks: Option<JksKeystore>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pkcs12: Option<Pkcs12Keystore>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct Pkcs12Keystore {
    /// Write `keystore.p12` (and `truststore.p12` when a CA is known).
    pub create: bool,
    /// `LegacyRC2` when unset, as in cert-manager.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<Pkcs12Profile>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<SecretKeySelector>,
    /// A literal password in the manifest, mutually exclusive with `passwordSecretRef`.
    #[serde(with = "literal_password", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub password: Option<Secret>,
}

/// `keystores.jks`: `keystore.jks` (and `truststore.jks` when a CA is known), as cert-manager.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct JksKeystore {
    /// Write `keystore.jks` (and `truststore.jks` when a CA is known).
    pub create: bool,
    /// The key entry's alias; `certificate` when unset, as in cert-manager.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<SecretKeySelector>,
    /// A literal password in the manifest, mutually exclusive with `passwordSecretRef`.
    #[serde(with = "literal_password", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub password: Option<Secret>,
}

/// Keeps a literal keystore password in a [`Secret`] from the moment it is decoded.
mod literal_password {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::Secret;

    pub fn serialize<S: Serializer>(value: &Option<Secret>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(secret) => serializer.serialize_some(secret.expose()),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Secret>, D::Error> {
        Ok(Option::<String>::deserialize(deserializer)?.map(Secret::from))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum Pkcs12Profile {
    #[serde(rename = "LegacyRC2")]
    LegacyRc2,
    #[serde(rename = "LegacyDES")]
    LegacyDes,
    Modern2023,
    Modern2026,
}

/// `spec.renewal`: whether and when certkeeper renews on its own (cert-manager's
/// `CertificateRenewal`). Validation requires `policy` once `renewal` is set, as cert-manager's
/// webhook does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct CertificateRenewal {
    /// `policy` must be one of `Disabled`, `RenewBefore`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<CertificateRenewalPolicy>,
    /// `windows` mentions the behavior of when the renewal must happen.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "super::schema::renewal_windows")]
    pub windows: Vec<CertificateRenewalWindow>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum CertificateRenewalPolicy {
    RenewBefore,
    Disabled,
}

/// One `spec.renewal.windows[]` entry: renewals may start while it is open.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct CertificateRenewalWindow {
    /// IANA time zone name; UTC when unset.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub timezone: String,
    /// How long the window stays open from each time `cron` fires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_duration: Option<GoDuration>,
    /// Five-field cron expression (minute hour day-of-month month day-of-week).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cron: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct CertificatePrivateKey {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation_policy: Option<RotationPolicy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding: Option<PrivateKeyEncoding>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<PrivateKeyAlgorithm>,
    /// Bits; 0 (unset) means the algorithm's default.
    #[serde(skip_serializing_if = "is_zero")]
    #[schemars(schema_with = "super::schema::go_int")]
    pub size: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum RotationPolicy {
    Never,
    /// cert-manager's default since v1.18.
    #[default]
    Always,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum PrivateKeyEncoding {
    /// cert-manager's default. Ed25519 keys are always written as PKCS#8.
    #[default]
    #[serde(rename = "PKCS1")]
    Pkcs1,
    #[serde(rename = "PKCS8")]
    Pkcs8,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum PrivateKeyAlgorithm {
    #[default]
    #[serde(rename = "RSA")]
    Rsa,
    #[serde(rename = "ECDSA")]
    Ecdsa,
    Ed25519,
}

impl PrivateKeyAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            PrivateKeyAlgorithm::Rsa => "RSA",
            PrivateKeyAlgorithm::Ecdsa => "ECDSA",
            PrivateKeyAlgorithm::Ed25519 => "Ed25519",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum SignatureAlgorithm {
    #[serde(rename = "SHA256WithRSA")]
    Sha256WithRsa,
    #[serde(rename = "SHA384WithRSA")]
    Sha384WithRsa,
    #[serde(rename = "SHA512WithRSA")]
    Sha512WithRsa,
    #[serde(rename = "ECDSAWithSHA256")]
    EcdsaWithSha256,
    #[serde(rename = "ECDSAWithSHA384")]
    EcdsaWithSha384,
    #[serde(rename = "ECDSAWithSHA512")]
    EcdsaWithSha512,
    PureEd25519,
}

impl SignatureAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            SignatureAlgorithm::Sha256WithRsa => "SHA256WithRSA",
            SignatureAlgorithm::Sha384WithRsa => "SHA384WithRSA",
            SignatureAlgorithm::Sha512WithRsa => "SHA512WithRSA",
            SignatureAlgorithm::EcdsaWithSha256 => "ECDSAWithSHA256",
            SignatureAlgorithm::EcdsaWithSha384 => "ECDSAWithSHA384",
            SignatureAlgorithm::EcdsaWithSha512 => "ECDSAWithSHA512",
            SignatureAlgorithm::PureEd25519 => "PureEd25519",
        }
    }

    /// The signature algorithms cert-manager allows for a key algorithm.
    pub fn allowed_for(key: PrivateKeyAlgorithm) -> &'static [SignatureAlgorithm] {
        use SignatureAlgorithm::*;
        match key {
            PrivateKeyAlgorithm::Rsa => &[Sha256WithRsa, Sha384WithRsa, Sha512WithRsa],
            PrivateKeyAlgorithm::Ecdsa => &[EcdsaWithSha256, EcdsaWithSha384, EcdsaWithSha512],
            PrivateKeyAlgorithm::Ed25519 => &[PureEd25519],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
pub enum OutputFormat {
    /// `key.der`: the private key in DER.
    #[serde(rename = "DER")]
    Der,
    /// `tls-combined.pem`: the private key, a newline, then the certificate chain.
    CombinedPEM,
}

impl OutputFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            OutputFormat::Der => "DER",
            OutputFormat::CombinedPEM => "CombinedPEM",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct CertificateAdditionalOutputFormat {
    #[serde(rename = "type")]
    pub format: OutputFormat,
}

/// cert-manager's `KeyUsage` strings: key usages (RFC 5280 4.2.1.3) and extended key usages
/// (4.2.1.12) in one list, spelled exactly as cert-manager spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
pub enum KeyUsage {
    #[serde(rename = "signing")]
    Signing,
    #[serde(rename = "digital signature")]
    DigitalSignature,
    #[serde(rename = "content commitment")]
    ContentCommitment,
    #[serde(rename = "key encipherment")]
    KeyEncipherment,
    #[serde(rename = "key agreement")]
    KeyAgreement,
    #[serde(rename = "data encipherment")]
    DataEncipherment,
    #[serde(rename = "cert sign")]
    CertSign,
    #[serde(rename = "crl sign")]
    CrlSign,
    #[serde(rename = "encipher only")]
    EncipherOnly,
    #[serde(rename = "decipher only")]
    DecipherOnly,
    #[serde(rename = "any")]
    Any,
    #[serde(rename = "server auth")]
    ServerAuth,
    #[serde(rename = "client auth")]
    ClientAuth,
    #[serde(rename = "code signing")]
    CodeSigning,
    #[serde(rename = "email protection")]
    EmailProtection,
    #[serde(rename = "s/mime")]
    Smime,
    #[serde(rename = "ipsec end system")]
    IpsecEndSystem,
    #[serde(rename = "ipsec tunnel")]
    IpsecTunnel,
    #[serde(rename = "ipsec user")]
    IpsecUser,
    #[serde(rename = "timestamping")]
    Timestamping,
    #[serde(rename = "ocsp signing")]
    OcspSigning,
    #[serde(rename = "microsoft sgc")]
    MicrosoftSgc,
    #[serde(rename = "netscape sgc")]
    NetscapeSgc,
}

impl KeyUsage {
    /// cert-manager's `DefaultKeyUsages`. `server auth` is deliberately not among them (it
    /// breaks clients when the certificate is a CA); Vault roles usually add it.
    pub const DEFAULT: [KeyUsage; 2] = [KeyUsage::DigitalSignature, KeyUsage::KeyEncipherment];

    /// Whether this goes in the extended key usage extension rather than key usage.
    pub fn is_extended(self) -> bool {
        self >= KeyUsage::Any
    }
}

/// The one mapping from the manifest's profile to the writer's: every profile the spec accepts
/// is one the writer writes.
impl From<Pkcs12Profile> for crate::pki::Pkcs12Profile {
    fn from(profile: Pkcs12Profile) -> Self {
        match profile {
            Pkcs12Profile::LegacyRc2 => crate::pki::Pkcs12Profile::LegacyRc2,
            Pkcs12Profile::LegacyDes => crate::pki::Pkcs12Profile::LegacyDes,
            Pkcs12Profile::Modern2023 => crate::pki::Pkcs12Profile::Modern2023,
            Pkcs12Profile::Modern2026 => crate::pki::Pkcs12Profile::Modern2026,
        }
    }
}

/// The one mapping from the manifest's usage names to the CSR layer's (cert-manager's
/// `KeyUsageType` / `ExtKeyUsageType`: `signing` is digital signature, `s/mime` e-mail
/// protection).
impl From<KeyUsage> for crate::pki::Usage {
    fn from(usage: KeyUsage) -> Self {
        use crate::pki::{ExtendedKeyUsage as E, KeyUsage as K, Usage};
        match usage {
            KeyUsage::Signing | KeyUsage::DigitalSignature => Usage::Key(K::DigitalSignature),
            KeyUsage::ContentCommitment => Usage::Key(K::ContentCommitment),
            KeyUsage::KeyEncipherment => Usage::Key(K::KeyEncipherment),
            KeyUsage::KeyAgreement => Usage::Key(K::KeyAgreement),
            KeyUsage::DataEncipherment => Usage::Key(K::DataEncipherment),
            KeyUsage::CertSign => Usage::Key(K::CertSign),
            KeyUsage::CrlSign => Usage::Key(K::CrlSign),
            KeyUsage::EncipherOnly => Usage::Key(K::EncipherOnly),
            KeyUsage::DecipherOnly => Usage::Key(K::DecipherOnly),
            KeyUsage::Any => Usage::Extended(E::Any),
            KeyUsage::ServerAuth => Usage::Extended(E::ServerAuth),
            KeyUsage::ClientAuth => Usage::Extended(E::ClientAuth),
            KeyUsage::CodeSigning => Usage::Extended(E::CodeSigning),
            KeyUsage::EmailProtection | KeyUsage::Smime => Usage::Extended(E::EmailProtection),
            KeyUsage::IpsecEndSystem => Usage::Extended(E::IpsecEndSystem),
            KeyUsage::IpsecTunnel => Usage::Extended(E::IpsecTunnel),
            KeyUsage::IpsecUser => Usage::Extended(E::IpsecUser),
            KeyUsage::Timestamping => Usage::Extended(E::Timestamping),
            KeyUsage::OcspSigning => Usage::Extended(E::OcspSigning),
            KeyUsage::MicrosoftSgc => Usage::Extended(E::MicrosoftSgc),
            KeyUsage::NetscapeSgc => Usage::Extended(E::NetscapeSgc),
        }
    }
}
