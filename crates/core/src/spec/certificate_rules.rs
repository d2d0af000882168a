//! Certificate validation (cert-manager's `internal/apis/certmanager/validation/certificate.go`)
//! and the resolved views the engine uses, with cert-manager's defaults applied
//! (`const.go`, `types.go`, `internal/apis/certmanager/v1/defaults.go`).
//!
//! Views and validation share code where they can: [`CertificateSpec::private_key`] is both the
//! key-size rule and the resolved key parameters, so the two cannot drift apart.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use crate::Secret;

use super::certificate::{
    Certificate, CertificateSpec, KeyUsage, NameConstraintItem, PrivateKeyAlgorithm, PrivateKeyEncoding,
    RotationPolicy, SignatureAlgorithm,
};
use super::error::{FieldError, FieldPath, Problem};
use super::limits::{MAX_NAME_LIST_ENTRIES, MAX_NAME_VALUE_BYTES};
use super::meta::{IssuerKey, SecretKeySelector};
use super::syntax::{check_dns_subdomain, check_email, check_label_value, check_qualified_name, check_uri};
use crate::pki::{self, LiteralSubject, NameSubtrees};

/// `duration` when the spec sets none: 90 days.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(90 * 24 * 3600);
/// The shortest `duration` cert-manager accepts.
pub const MIN_DURATION: Duration = Duration::from_secs(3600);
/// The shortest `renewBefore` cert-manager accepts.
pub const MIN_RENEW_BEFORE: Duration = Duration::from_secs(300);
/// RSA key sizes cert-manager accepts (any size in between, not only powers of two).
pub const RSA_KEY_BITS: std::ops::RangeInclusive<u32> = 2048..=8192;
/// cert-manager's limit on `commonName`, from the X.520 upper bound.
pub const MAX_COMMON_NAME_BYTES: usize = 64;

/// Kubernetes' limit on an object's annotations (keys and values), `TotalAnnotationSizeLimitB`.
const MAX_ANNOTATIONS_BYTES: usize = 256 * 1024;

/// The one annotation under `cert-manager.io/` that a secretTemplate may set.
const ALLOWED_CERT_MANAGER_ANNOTATION: &str = "cert-manager.io/allow-direct-injection";

/// ECDSA curves by cert-manager's `size` (256, 384, 521).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EcdsaCurve {
    P256,
    P384,
    P521,
}

/// The key to generate, with sizes resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyAlgorithm {
    Rsa { bits: u32 },
    Ecdsa(EcdsaCurve),
    Ed25519,
}

/// `spec.privateKey` with defaults applied: RSA 2048 (ECDSA P-256 when only the algorithm is
/// given), PKCS#1 (always PKCS#8 for Ed25519, as cert-manager does), rotation `Always`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PrivateKeyParams {
    pub algorithm: KeyAlgorithm,
    pub encoding: PrivateKeyEncoding,
    pub rotation_policy: RotationPolicy,
}

/// When to renew, as the spec says it: the schedule's own type, so the two cannot drift.
/// At most one field is set on a valid spec; with neither, the renewal point is 2/3 of the
/// issued certificate's actual lifetime (cert-manager's rule, applied by the schedule).
pub use crate::schedule::RenewalPolicy;

impl From<KeyAlgorithm> for crate::pki::KeyAlgorithm {
    /// The manifest's vocabulary (sizes by curve name) to the key generator's.
    fn from(a: KeyAlgorithm) -> Self {
        match a {
            KeyAlgorithm::Rsa { bits } => crate::pki::KeyAlgorithm::Rsa(bits),
            KeyAlgorithm::Ecdsa(EcdsaCurve::P256) => crate::pki::KeyAlgorithm::Ecdsa(256),
            KeyAlgorithm::Ecdsa(EcdsaCurve::P384) => crate::pki::KeyAlgorithm::Ecdsa(384),
            KeyAlgorithm::Ecdsa(EcdsaCurve::P521) => crate::pki::KeyAlgorithm::Ecdsa(521),
            KeyAlgorithm::Ed25519 => crate::pki::KeyAlgorithm::Ed25519,
        }
    }
}

impl From<PrivateKeyEncoding> for crate::pki::KeyEncoding {
    fn from(e: PrivateKeyEncoding) -> Self {
        match e {
            PrivateKeyEncoding::Pkcs1 => crate::pki::KeyEncoding::Pkcs1,
            PrivateKeyEncoding::Pkcs8 => crate::pki::KeyEncoding::Pkcs8,
        }
    }
}

pub(super) fn push(errors: &mut Vec<FieldError>, path: FieldPath, problem: Problem) {
    errors.push(FieldError::new(path, problem));
}

/// A view from a validation pass: its value, or the first problem it found.
fn first_error<T>(check: impl FnOnce(&mut Vec<FieldError>) -> T) -> Result<T, FieldError> {
    let mut errors = Vec::new();
    let value = check(&mut errors);
    match errors.into_iter().next() {
        Some(error) => Err(error),
        None => Ok(value),
    }
}

impl CertificateSpec {
    /// Requested lifetime, [`DEFAULT_DURATION`] when unset.
    pub fn duration(&self) -> Duration {
        self.duration.map_or(DEFAULT_DURATION, |d| d.get())
    }

    /// Key parameters with defaults applied, or the size rule the spec breaks (the error is
    /// the one validation reports, located at `spec.privateKey.size`).
    pub fn private_key(&self) -> Result<PrivateKeyParams, FieldError> {
        let spec = self.private_key.clone().unwrap_or_default();
        let size_error = |problem| FieldError::new(FieldPath::parse("spec.privateKey.size"), problem);
        let algorithm = match spec.algorithm.unwrap_or_default() {
            PrivateKeyAlgorithm::Rsa => {
                let bits = if spec.size == 0 { 2048 } else { spec.size };
                if !RSA_KEY_BITS.contains(&bits) {
                    return Err(size_error(Problem::RsaKeySize(bits)));
                }
                KeyAlgorithm::Rsa { bits }
            }
            PrivateKeyAlgorithm::Ecdsa => KeyAlgorithm::Ecdsa(match spec.size {
                0 | 256 => EcdsaCurve::P256,
                384 => EcdsaCurve::P384,
                521 => EcdsaCurve::P521,
                other => return Err(size_error(Problem::EcdsaKeySize(other))),
            }),
            // cert-manager ignores size for Ed25519.
            PrivateKeyAlgorithm::Ed25519 => KeyAlgorithm::Ed25519,
        };
        let encoding = match algorithm {
            KeyAlgorithm::Ed25519 => PrivateKeyEncoding::Pkcs8,
            _ => spec.encoding.unwrap_or_default(),
        };
        Ok(PrivateKeyParams {
            algorithm,
            encoding,
            rotation_policy: spec.rotation_policy.unwrap_or_default(),
        })
    }

    /// Requested usages: the spec's, or [`KeyUsage::DEFAULT`]; plus `cert sign` when `isCA`,
    /// which cert-manager adds to the CSR itself.
    pub fn usages(&self) -> Vec<KeyUsage> {
        let mut usages = if self.usages.is_empty() {
            KeyUsage::DEFAULT.to_vec()
        } else {
            self.usages.clone()
        };
        if self.is_ca && !usages.contains(&KeyUsage::CertSign) {
            usages.push(KeyUsage::CertSign);
        }
        usages
    }

    /// Whether usages go into the CSR's extensions (true unless the spec says false).
    pub fn encode_usages_in_request(&self) -> bool {
        self.encode_usages_in_request.unwrap_or(true)
    }

    /// Every problem cert-manager's webhook would report, plus what certkeeper does not
    /// implement. Paths are rooted at `spec`.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        self.validate_into(&mut errors);
        errors
    }

    fn validate_into(&self, errors: &mut Vec<FieldError>) {
        let spec = FieldPath::parse("spec");
        if self.secret_name.is_empty() {
            push(errors, spec.field("secretName"), Problem::Required);
        } else if let Err(reason) = check_dns_subdomain(&self.secret_name) {
            push(
                errors,
                spec.field("secretName"),
                Problem::InvalidName {
                    value: self.secret_name.clone(),
                    reason,
                },
            );
        }
        self.issuer_ref.validate(&spec.field("issuerRef"), errors);
        self.validate_names(&spec, errors);
        if let Err(error) = self.private_key() {
            errors.push(error);
        }
        if let Some(signature) = self.signature_algorithm {
            let key = self
                .private_key
                .as_ref()
                .and_then(|k| k.algorithm)
                .unwrap_or_default();
            if !SignatureAlgorithm::allowed_for(key).contains(&signature) {
                push(
                    errors,
                    spec.field("signatureAlgorithm"),
                    Problem::SignatureAlgorithm { signature, key },
                );
            }
        }
        self.validate_durations(&spec, errors);
        if let Some(limit) = self.revision_history_limit
            && limit < 1
        {
            push(
                errors,
                spec.field("revisionHistoryLimit"),
                Problem::TooSmall { min: 1 },
            );
        }
        self.validate_outputs(&spec, errors);
        self.checked_name_constraints(errors);
        self.validate_renewal(&spec, errors);
    }

    /// `literalSubject` parsed, `None` when unset; the error is the first validation reports.
    pub fn literal_subject(&self) -> Result<Option<LiteralSubject>, FieldError> {
        first_error(|errors| self.checked_literal_subject(errors))
    }

    /// `otherNames` as the CSR writes them; the error is the first validation reports.
    pub fn other_names(&self) -> Result<Vec<pki::OtherName>, FieldError> {
        first_error(|errors| self.checked_other_names(errors))
    }

    /// `nameConstraints` as the CSR writes them; the error is the first validation reports.
    pub fn name_constraints(&self) -> Result<Option<pki::NameConstraints>, FieldError> {
        first_error(|errors| self.checked_name_constraints(errors))
    }

    /// `uris` as the CSR writes them, or the first one that cannot be written as cert-manager
    /// would write it ([`check_uri`]). Not a validation rule (cert-manager's webhook accepts any
    /// URI): the Certificate fails when its job is built, as cert-manager's request fails.
    pub fn uris(&self) -> Result<Vec<String>, FieldError> {
        for (i, uri) in self.uris.iter().enumerate() {
            if let Err(reason) = check_uri(uri) {
                let problem = Problem::InvalidUri {
                    value: uri.clone(),
                    reason,
                };
                return Err(FieldError::new(FieldPath::parse("spec.uris").index(i), problem));
            }
        }
        Ok(self.uris.clone())
    }

    /// The common name asked for: `commonName`, or the literal subject's CN (the last in DER
    /// order, as cert-manager's validation and its Vault request take it). `None` when empty.
    pub fn common_name(&self, literal: Option<&LiteralSubject>) -> Option<String> {
        match literal {
            Some(literal) => literal.common_name(),
            None => Some(self.common_name.clone()),
        }
        .filter(|cn| !cn.is_empty())
    }

    /// cert-manager's literalSubject rules: not with commonName or subject, RFC 4514 syntax,
    /// known attribute types only. Bounded by [`MAX_NAME_VALUE_BYTES`].
    fn checked_literal_subject(&self, errors: &mut Vec<FieldError>) -> Option<LiteralSubject> {
        if self.literal_subject.is_empty() {
            return None;
        }
        let spec = FieldPath::parse("spec");
        let at = spec.field("literalSubject");
        if !self.common_name.is_empty() {
            push(
                errors,
                spec.field("commonName"),
                Problem::MutuallyExclusive("literalSubject"),
            );
        }
        if self.subject.as_ref().is_some_and(|s| *s != Default::default()) {
            push(
                errors,
                spec.field("subject"),
                Problem::MutuallyExclusive("literalSubject"),
            );
        }
        if self.literal_subject.len() > MAX_NAME_VALUE_BYTES {
            let problem = Problem::TooLong {
                max: MAX_NAME_VALUE_BYTES,
                len: self.literal_subject.len(),
            };
            push(errors, at, problem);
            return None;
        }
        let literal = match self.literal_subject.parse::<LiteralSubject>() {
            Ok(literal) => literal,
            Err(e) => {
                push(errors, at, Problem::InvalidLiteralSubject(e));
                return None;
            }
        };
        for (attribute_type, value) in literal.unrecognized() {
            let problem = Problem::UnrecognizedSubjectAttribute {
                attribute_type: attribute_type.to_owned(),
                value: String::from_utf8_lossy(value).into_owned(),
            };
            push(errors, at.clone(), problem);
        }
        Some(literal)
    }

    /// cert-manager's otherNames rules: an OID in dotted syntax and a non-empty value. Whether
    /// the OID can be encoded is the CSR builder's check, as in cert-manager.
    fn checked_other_names(&self, errors: &mut Vec<FieldError>) -> Vec<pki::OtherName> {
        let at = FieldPath::parse("spec.otherNames");
        if self.other_names.len() > MAX_NAME_LIST_ENTRIES {
            let problem = Problem::TooMany {
                max: MAX_NAME_LIST_ENTRIES,
                len: self.other_names.len(),
            };
            push(errors, at, problem);
            return Vec::new();
        }
        let mut out = Vec::with_capacity(self.other_names.len());
        for (i, name) in self.other_names.iter().enumerate() {
            let at = at.index(i);
            if name.oid.is_empty() {
                push(errors, at.field("oid"), Problem::Required);
            }
            let oid = name
                .oid
                .parse::<pki::Oid>()
                .map_err(|e| push(errors, at.field("oid"), Problem::InvalidOid(e)));
            if name.utf8_value.is_empty() {
                push(errors, at.field("utf8Value"), Problem::Required);
            } else if name.utf8_value.len() > MAX_NAME_VALUE_BYTES {
                let problem = Problem::TooLong {
                    max: MAX_NAME_VALUE_BYTES,
                    len: name.utf8_value.len(),
                };
                push(errors, at.field("utf8Value"), problem);
            }
            if let Ok(oid) = oid {
                out.push(pki::OtherName {
                    oid,
                    value: name.utf8_value.clone(),
                });
            }
        }
        out
    }

    /// cert-manager's nameConstraints rules: only on a CA, one side at least, CIDR ranges.
    fn checked_name_constraints(&self, errors: &mut Vec<FieldError>) -> Option<pki::NameConstraints> {
        let constraints = self.name_constraints.as_ref()?;
        let at = FieldPath::parse("spec.nameConstraints");
        if !self.is_ca {
            push(errors, at.clone(), Problem::RequiresIsCa);
        }
        if constraints.permitted.is_none() && constraints.excluded.is_none() {
            push(
                errors,
                at.clone(),
                Problem::RequiredOneOf(&["permitted", "excluded"]),
            );
        }
        let side = |item: &Option<NameConstraintItem>, at: FieldPath, errors: &mut Vec<FieldError>| {
            let item = item.clone().unwrap_or_default();
            let lists = [
                ("dnsDomains", item.dns_domains.len()),
                ("ipRanges", item.ip_ranges.len()),
                ("emailAddresses", item.email_addresses.len()),
                ("uriDomains", item.uri_domains.len()),
            ];
            for (field, len) in lists {
                if len > MAX_NAME_LIST_ENTRIES {
                    push(
                        errors,
                        at.field(field),
                        Problem::TooMany {
                            max: MAX_NAME_LIST_ENTRIES,
                            len,
                        },
                    );
                }
            }
            let mut ip_ranges = Vec::with_capacity(item.ip_ranges.len());
            for (i, range) in item.ip_ranges.iter().enumerate() {
                match range.parse::<pki::IpRange>() {
                    Ok(range) => ip_ranges.push(range),
                    Err(e) => push(errors, at.field("ipRanges").index(i), Problem::InvalidCidr(e)),
                }
            }
            NameSubtrees {
                dns_domains: item.dns_domains,
                ip_ranges,
                email_addresses: item.email_addresses,
                uri_domains: item.uri_domains,
            }
        };
        Some(pki::NameConstraints {
            critical: constraints.critical,
            permitted: side(&constraints.permitted, at.field("permitted"), errors),
            excluded: side(&constraints.excluded, at.field("excluded"), errors),
        })
    }

    /// Subject and subject alternative names.
    fn validate_names(&self, spec: &FieldPath, errors: &mut Vec<FieldError>) {
        let literal = self.checked_literal_subject(errors);
        let common_name = match &literal {
            Some(literal) => literal.common_name_bytes().unwrap_or_default(),
            None => self.common_name.as_bytes(),
        };
        if common_name.is_empty()
            && self.dns_names.is_empty()
            && self.ip_addresses.is_empty()
            && self.uris.is_empty()
            && self.email_addresses.is_empty()
            && self.other_names.is_empty()
        {
            const NAMES: &[&str] = &[
                "commonName (or a CN in literalSubject)",
                "dnsNames",
                "ipAddresses",
                "uris",
                "emailAddresses",
                "otherNames",
            ];
            push(errors, spec.clone(), Problem::RequiredOneOf(NAMES));
        }
        if common_name.len() > MAX_COMMON_NAME_BYTES {
            let problem = Problem::TooLong {
                max: MAX_COMMON_NAME_BYTES,
                len: common_name.len(),
            };
            push(errors, spec.field("commonName"), problem);
        }
        for (i, ip) in self.ip_addresses.iter().enumerate() {
            if ip.parse::<IpAddr>().is_err() {
                push(
                    errors,
                    spec.field("ipAddresses").index(i),
                    Problem::InvalidIp(ip.clone()),
                );
            }
        }
        for (i, email) in self.email_addresses.iter().enumerate() {
            if let Err(reason) = check_email(email) {
                let problem = Problem::InvalidEmail {
                    value: email.clone(),
                    reason,
                };
                push(errors, spec.field("emailAddresses").index(i), problem);
            }
        }
        // URIs are not checked here, as cert-manager's webhook checks none: see `uris`.
        self.checked_other_names(errors);
    }

    /// duration, renewBefore and renewBeforePercentage: cert-manager's `ValidateDuration`, which
    /// its webhook applies only when `duration` or `renewBefore` is set. A percentage alone is
    /// not checked, and one outside 1..=99 is then ignored when the renewal time is computed
    /// (2/3 of the lifetime), by cert-manager and by the schedule alike.
    fn validate_durations(&self, spec: &FieldPath, errors: &mut Vec<FieldError>) {
        if self.duration.is_none() && self.renew_before.is_none() {
            return;
        }
        let duration = self.duration();
        if duration < MIN_DURATION {
            push(
                errors,
                spec.field("duration"),
                Problem::DurationTooShort {
                    value: duration,
                    min: MIN_DURATION,
                },
            );
        }
        if let Some(renew_before) = self.renew_before.map(|d| d.get()) {
            if self.renew_before_percentage.is_some() {
                push(
                    errors,
                    spec.field("renewBefore"),
                    Problem::MutuallyExclusive("renewBeforePercentage"),
                );
            }
            if renew_before < MIN_RENEW_BEFORE {
                let problem = Problem::DurationTooShort {
                    value: renew_before,
                    min: MIN_RENEW_BEFORE,
                };
                push(errors, spec.field("renewBefore"), problem);
            }
            if renew_before >= duration {
                let problem = Problem::RenewBeforeNotBelowDuration {
                    renew_before,
                    duration,
                };
                push(errors, spec.field("renewBefore"), problem);
            }
        }
        if let Some(percentage) = self.renew_before_percentage {
            let path = spec.field("renewBeforePercentage");
            if !(1..=99).contains(&percentage) {
                push(errors, path, Problem::PercentageOutOfRange(percentage));
            } else {
                // cert-manager computes this in float64; 100 - percentage is 1..=99 here.
                #[allow(
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss,
                    clippy::cast_precision_loss
                )]
                let renew_after = Duration::from_nanos(
                    (duration.as_nanos() as f64 * f64::from(100 - percentage) / 100.0) as u64,
                );
                if renew_after < MIN_RENEW_BEFORE {
                    let problem = Problem::PercentageTooLarge {
                        percentage,
                        duration,
                        renew_after,
                        min: MIN_RENEW_BEFORE,
                    };
                    push(errors, path, problem);
                }
            }
        }
    }

    /// secretTemplate, additionalOutputFormats, keystores.
    fn validate_outputs(&self, spec: &FieldPath, errors: &mut Vec<FieldError>) {
        if let Some(template) = &self.secret_template {
            let at = spec.field("secretTemplate");
            for (key, value) in &template.labels {
                let path = at.field("labels").key(key.clone());
                if let Err(reason) = check_qualified_name(key) {
                    push(
                        errors,
                        path.clone(),
                        Problem::InvalidName {
                            value: key.clone(),
                            reason,
                        },
                    );
                }
                if let Err(reason) = check_label_value(value) {
                    push(
                        errors,
                        path,
                        Problem::InvalidName {
                            value: value.clone(),
                            reason,
                        },
                    );
                }
            }
            for key in template.annotations.keys() {
                let path = at.field("annotations").key(key.clone());
                if key.starts_with("cert-manager.io/") && key != ALLOWED_CERT_MANAGER_ANNOTATION {
                    push(errors, path, Problem::ReservedAnnotation);
                } else if let Err(reason) = check_qualified_name(key) {
                    push(
                        errors,
                        path,
                        Problem::InvalidName {
                            value: key.clone(),
                            reason,
                        },
                    );
                }
            }
            // Kubernetes' ValidateAnnotations, which cert-manager's webhook applies: keys and
            // values together at most 256 KiB.
            let size: usize = template.annotations.iter().map(|(k, v)| k.len() + v.len()).sum();
            if size > MAX_ANNOTATIONS_BYTES {
                let problem = Problem::TooLong {
                    max: MAX_ANNOTATIONS_BYTES,
                    len: size,
                };
                push(errors, at.field("annotations"), problem);
            }
        }
        let mut seen = BTreeSet::new();
        for (i, format) in self.additional_output_formats.iter().enumerate() {
            if !seen.insert(format.format) {
                let path = spec.field("additionalOutputFormats").index(i).field("type");
                push(
                    errors,
                    path,
                    Problem::Duplicate(format.format.as_str().to_owned()),
                );
            }
        }
        let Some(keystores) = &self.keystores else { return };
        let at = spec.field("keystores");
        if let Some(jks) = &keystores.jks {
            let secret_ref = jks.password_secret_ref.as_ref();
            validate_keystore_password(&at.field("jks"), secret_ref, jks.password.as_ref(), errors);
        }
        if let Some(pkcs12) = &keystores.pkcs12 {
            let secret_ref = pkcs12.password_secret_ref.as_ref();
            validate_keystore_password(&at.field("pkcs12"), secret_ref, pkcs12.password.as_ref(), errors);
        }
    }
}

/// cert-manager's password rules, the same for JKS and PKCS#12: exactly one of
/// `passwordSecretRef` and `password`, and a literal password is not empty.
fn validate_keystore_password(
    at: &FieldPath,
    secret_ref: Option<&SecretKeySelector>,
    password: Option<&Secret>,
    errors: &mut Vec<FieldError>,
) {
    const SOURCES: &[&str] = &["passwordSecretRef", "password"];
    let secret_ref = secret_ref.filter(|r| !r.name.is_empty());
    match (secret_ref, password) {
        (Some(_), Some(_)) => push(errors, at.clone(), Problem::OnlyOneOf(SOURCES)),
        (None, None) => push(errors, at.clone(), Problem::RequiredOneOf(SOURCES)),
        (None, Some(password)) if password.is_empty() => {
            push(errors, at.field("password"), Problem::Required)
        }
        // Without a key the keystore fails when it is written (SecretKeySelector::explicit_key).
        (Some(r), None) => r.validate(&at.field("passwordSecretRef"), errors),
        _ => {}
    }
}

impl Certificate {
    /// The namespace with the standalone default applied (see `DEFAULT_NAMESPACE`).
    pub fn namespace(&self) -> &str {
        self.metadata.namespace_or_default()
    }

    pub fn duration(&self) -> Duration {
        self.spec.duration()
    }

    pub fn renewal_policy(&self) -> RenewalPolicy {
        self.spec.renewal_policy()
    }

    pub fn private_key(&self) -> Result<PrivateKeyParams, FieldError> {
        self.spec.private_key()
    }

    pub fn usages(&self) -> Vec<KeyUsage> {
        self.spec.usages()
    }

    /// The issuer this Certificate asks for: an `Issuer` in the Certificate's own namespace, or
    /// a `ClusterIssuer` (or certkeeper's own `VaultIssuer` / `VaultClusterIssuer`). `None` when
    /// the reference is to another API group (an external issuer, not certkeeper's) or to an
    /// unknown kind (a validation error).
    pub fn issuer_key(&self) -> Option<IssuerKey> {
        let reference = &self.spec.issuer_ref;
        let kind = reference.issuer_kind()?;
        Some(IssuerKey {
            kind,
            namespace: kind.namespaced().then(|| self.namespace().to_owned()),
            name: reference.name.clone(),
        })
    }

    /// Metadata (name, namespace) and spec problems together.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        self.metadata
            .validate(&FieldPath::parse("metadata"), true, &mut errors);
        self.spec.validate_into(&mut errors);
        errors
    }
}
