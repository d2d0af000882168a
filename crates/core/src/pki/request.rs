//! A CertificateRequest's CSR checked against what its spec asks for, as cert-manager's webhook
//! checks `spec.request` (`validateCertificateRequestSpecRequest`, with
//! `CertificateTemplateValidateAndOverrideBasicConstraints` and `...KeyUsages` of
//! pkg/util/pki/certificatetemplate.go): the CSR must parse; a basicConstraints extension must
//! say what `isCA` says; and when the CSR carries key usage or extended key usage extensions,
//! its key usages must be exactly the requested ones and its known extended key usages the
//! requested ones in the same order. The requested ones are `usages` (cert-manager's default
//! `digital signature`, `key encipherment` when empty) plus `cert sign` with `isCA`.
//!
//! Unlike cert-manager, the CSR's signature is not verified here: Vault verifies it when it signs.

use x509_parser::asn1_rs::{FromDer, Oid as DerOid};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::cri_attributes::ParsedCriAttribute;
use x509_parser::extensions::ParsedExtension;

use super::csr::{ExtendedKeyUsage, KeyUsage, Usage};

const OID_BASIC_CONSTRAINTS: &str = "2.5.29.19";
const OID_KEY_USAGE: &str = "2.5.29.15";
const OID_EXTENDED_KEY_USAGE: &str = "2.5.29.37";

/// Why a request's CSR does not match its spec. Messages follow cert-manager's
/// ("encoded CSR error: ...") so a user sees the same reason from either.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestCheckError {
    #[error("no PEM-encoded certificate request")]
    NotPem,
    #[error("the certificate request does not parse: {0}")]
    Parse(String),
    #[error("encoded CSR error: IsCA {csr} does not match expected value {spec}")]
    IsCa { csr: bool, spec: bool },
    #[error("encoded CSR error: the KeyUsages {csr:?} do not match the expected KeyUsages {spec:?}")]
    KeyUsages { csr: Vec<KeyUsage>, spec: Vec<KeyUsage> },
    #[error("encoded CSR error: the ExtKeyUsages {csr:?} do not match the expected ExtKeyUsages {spec:?}")]
    ExtKeyUsages {
        csr: Vec<ExtendedKeyUsage>,
        spec: Vec<ExtendedKeyUsage>,
    },
}

const ALL_KEY_USAGES: [KeyUsage; 9] = [
    KeyUsage::DigitalSignature,
    KeyUsage::ContentCommitment,
    KeyUsage::KeyEncipherment,
    KeyUsage::DataEncipherment,
    KeyUsage::KeyAgreement,
    KeyUsage::CertSign,
    KeyUsage::CrlSign,
    KeyUsage::EncipherOnly,
    KeyUsage::DecipherOnly,
];

const ALL_EXTENDED_KEY_USAGES: [ExtendedKeyUsage; 12] = [
    ExtendedKeyUsage::Any,
    ExtendedKeyUsage::ServerAuth,
    ExtendedKeyUsage::ClientAuth,
    ExtendedKeyUsage::CodeSigning,
    ExtendedKeyUsage::EmailProtection,
    ExtendedKeyUsage::IpsecEndSystem,
    ExtendedKeyUsage::IpsecTunnel,
    ExtendedKeyUsage::IpsecUser,
    ExtendedKeyUsage::Timestamping,
    ExtendedKeyUsage::OcspSigning,
    ExtendedKeyUsage::MicrosoftSgc,
    ExtendedKeyUsage::NetscapeSgc,
];

/// Key usages as a set of bits (bit n: key usage n of RFC 5280), in the listed order back.
fn key_usages_of(bits: u16) -> Vec<KeyUsage> {
    ALL_KEY_USAGES
        .into_iter()
        .filter(|u| bits & (1 << u.bit()) != 0)
        .collect()
}

fn extended_key_usage_of(oid: &DerOid<'_>) -> Option<ExtendedKeyUsage> {
    let arcs: Vec<u64> = oid.iter()?.collect();
    ALL_EXTENDED_KEY_USAGES
        .into_iter()
        .find(|u| u.oid() == arcs.as_slice())
}

/// What the CSR says: its basicConstraints CA flag, its key usage bits and known extended key
/// usages in order (each `None` when the extension is absent).
struct Requested {
    is_ca: Option<bool>,
    key_usages: Option<u16>,
    extended: Option<Vec<ExtendedKeyUsage>>,
}

fn requested(der: &[u8]) -> Result<Requested, RequestCheckError> {
    let parse = |e: &dyn std::fmt::Display| RequestCheckError::Parse(e.to_string());
    let (_, csr) = X509CertificationRequest::from_der(der).map_err(|e| parse(&e))?;
    let mut out = Requested {
        is_ca: None,
        key_usages: None,
        extended: None,
    };
    for attribute in csr.certification_request_info.attributes() {
        let ParsedCriAttribute::ExtensionRequest(request) = attribute.parsed_attribute() else {
            continue;
        };
        for extension in &request.extensions {
            match (
                extension.oid.to_id_string().as_str(),
                extension.parsed_extension(),
            ) {
                (OID_BASIC_CONSTRAINTS, ParsedExtension::BasicConstraints(bc)) => out.is_ca = Some(bc.ca),
                (OID_KEY_USAGE, ParsedExtension::KeyUsage(ku)) => out.key_usages = Some(ku.flags),
                (OID_EXTENDED_KEY_USAGE, _) => {
                    let (_, oids) = Vec::<DerOid<'_>>::from_der(extension.value).map_err(|e| parse(&e))?;
                    // Purposes Go does not know are kept apart by Go and not compared.
                    out.extended = Some(oids.iter().filter_map(extended_key_usage_of).collect());
                }
                (OID_BASIC_CONSTRAINTS | OID_KEY_USAGE, other) => {
                    return Err(RequestCheckError::Parse(format!(
                        "extension {} does not parse: {other:?}",
                        extension.oid
                    )));
                }
                _ => {}
            }
        }
    }
    Ok(out)
}

/// Checks `pem` (a PEM CSR, as `spec.request` holds it) against `usages` and `is_ca`.
pub fn check_request(pem: &[u8], usages: &[Usage], is_ca: bool) -> Result<(), RequestCheckError> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem).map_err(|_| RequestCheckError::NotPem)?;
    let csr = requested(&block.contents)?;
    if let Some(csr_is_ca) = csr.is_ca
        && csr_is_ca != is_ca
    {
        return Err(RequestCheckError::IsCa {
            csr: csr_is_ca,
            spec: is_ca,
        });
    }
    if csr.key_usages.is_none() && csr.extended.is_none() {
        return Ok(());
    }
    let default = [
        Usage::Key(KeyUsage::DigitalSignature),
        Usage::Key(KeyUsage::KeyEncipherment),
    ];
    let usages = if usages.is_empty() { &default[..] } else { usages };
    let mut bits = if is_ca { 1 << KeyUsage::CertSign.bit() } else { 0 };
    let mut extended = Vec::new();
    for usage in usages {
        match usage {
            Usage::Key(k) => bits |= 1 << k.bit(),
            Usage::Extended(e) => extended.push(*e),
        }
    }
    let csr_bits = csr.key_usages.unwrap_or(0);
    if csr_bits != bits {
        return Err(RequestCheckError::KeyUsages {
            csr: key_usages_of(csr_bits),
            spec: key_usages_of(bits),
        });
    }
    let csr_extended = csr.extended.unwrap_or_default();
    if csr_extended != extended {
        return Err(RequestCheckError::ExtKeyUsages {
            csr: csr_extended,
            spec: extended,
        });
    }
    Ok(())
}
