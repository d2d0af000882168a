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

use super::PkiError;
use super::csr::{ExtendedKeyUsage, KeyUsage, Usage};
use super::requested::read_csr_der;

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

/// Key usages as a set of bits (bit n: key usage n of RFC 5280), in the listed order back.
fn key_usages_of(bits: u16) -> Vec<KeyUsage> {
    KeyUsage::ALL
        .into_iter()
        .filter(|u| bits & (1 << u.bit()) != 0)
        .collect()
}

/// Checks `pem` (a PEM CSR, as `spec.request` holds it) against `usages` and `is_ca`.
pub fn check_request(pem: &[u8], usages: &[Usage], is_ca: bool) -> Result<(), RequestCheckError> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem).map_err(|_| RequestCheckError::NotPem)?;
    let csr = read_csr_der(&block.contents).map_err(|e| match e {
        PkiError::InvalidCsr(reason) => RequestCheckError::Parse(reason),
        other => RequestCheckError::Parse(other.to_string()),
    })?;
    if let Some(csr_is_ca) = csr.is_ca
        && csr_is_ca != is_ca
    {
        return Err(RequestCheckError::IsCa {
            csr: csr_is_ca,
            spec: is_ca,
        });
    }
    if csr.key_usage_bits.is_none() && csr.extended_key_usages.is_none() {
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
    let csr_bits = csr.key_usage_bits.unwrap_or(0);
    if csr_bits != bits {
        return Err(RequestCheckError::KeyUsages {
            csr: key_usages_of(csr_bits),
            spec: key_usages_of(bits),
        });
    }
    let csr_extended = csr.extended_key_usages.unwrap_or_default();
    if csr_extended != extended {
        return Err(RequestCheckError::ExtKeyUsages {
            csr: csr_extended,
            spec: extended,
        });
    }
    Ok(())
}
