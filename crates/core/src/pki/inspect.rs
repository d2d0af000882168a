//! Summaries of PEM certificate bundles for `certkeeper inspect FILE`.
//!
//! Any PEM file works: `tls.crt`, `ca.crt`, a combined PEM (its key block is skipped, never
//! decoded) or a Vault answer pasted into a file.

use std::net::IpAddr;
use std::time::SystemTime;

use x509_parser::certificate::X509Certificate;
use x509_parser::public_key::PublicKey;

use super::PkiError;
use super::issued::{certificate_blocks, common_name, is_self_signed, sans, serial_hex};

/// What `inspect` shows for one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSummary {
    /// The subject as an RFC 4514-style string ("CN=a.example.com, O=Example").
    pub subject: String,
    pub common_name: Option<String>,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
    pub uris: Vec<String>,
    pub email_addresses: Vec<String>,
    pub issuer: String,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    /// Lowercase colon hex, as Vault prints serials.
    pub serial: String,
    /// basicConstraints CA:TRUE.
    pub is_ca: bool,
    /// Issuer and subject match (and key identifiers agree): a root.
    pub self_signed: bool,
    /// "RSA 2048", "ECDSA P-256", "Ed25519", or the algorithm OID when unknown.
    pub public_key: String,
}

impl CertSummary {
    /// notBefore in RFC 3339 UTC.
    pub fn not_before_rfc3339(&self) -> String {
        crate::time::rfc3339(self.not_before)
    }

    /// notAfter in RFC 3339 UTC.
    pub fn not_after_rfc3339(&self) -> String {
        crate::time::rfc3339(self.not_after)
    }
}

fn public_key_name(cert: &X509Certificate<'_>) -> String {
    let spki = cert.public_key();
    match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => format!("RSA {}", rsa.key_size()),
        Ok(PublicKey::EC(point)) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|oid| oid.to_id_string());
            match curve.as_deref() {
                Some("1.2.840.10045.3.1.7") => "ECDSA P-256".to_owned(),
                Some("1.3.132.0.34") => "ECDSA P-384".to_owned(),
                Some("1.3.132.0.35") => "ECDSA P-521".to_owned(),
                _ => format!("ECDSA ({} bits)", point.key_size()),
            }
        }
        _ if spki.algorithm.algorithm.to_id_string() == "1.3.101.112" => "Ed25519".to_owned(),
        _ => spki.algorithm.algorithm.to_id_string(),
    }
}

/// Summarises every certificate in `pem`, in file order.
pub fn describe_pem_bundle(pem: &str) -> Result<Vec<CertSummary>, PkiError> {
    let blocks = certificate_ders(pem)?;
    if blocks.is_empty() {
        return Err(PkiError::NoCertificate);
    }
    blocks
        .iter()
        .enumerate()
        .map(|(index, der)| describe_der(der, index))
        .collect()
}

/// The DER of every certificate block of `pem`, in file order (other blocks skipped).
pub fn certificate_ders(pem: &str) -> Result<Vec<Vec<u8>>, PkiError> {
    certificate_blocks(pem).map_err(PkiError::InvalidPem)
}

/// Summarises one DER certificate (a leaf a server presented, a block of a file); `index` names
/// it in the error.
pub fn describe_der(der_bytes: &[u8], index: usize) -> Result<CertSummary, PkiError> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der_bytes).map_err(|e| PkiError::InvalidCertificate {
            index,
            reason: e.to_string(),
        })?;
    let super::issued::Sans {
        dns_names,
        ip_addresses,
        uris,
        email_addresses,
        ..
    } = sans(&cert);
    Ok(CertSummary {
        subject: cert.subject().to_string(),
        common_name: common_name(cert.subject()),
        dns_names,
        ip_addresses,
        uris,
        email_addresses,
        issuer: cert.issuer().to_string(),
        not_before: crate::time::from_unix(cert.validity().not_before.timestamp()),
        not_after: crate::time::from_unix(cert.validity().not_after.timestamp()),
        serial: serial_hex(cert.raw_serial()),
        is_ca: cert.is_ca(),
        self_signed: is_self_signed(&cert),
        public_key: public_key_name(&cert),
    })
}
