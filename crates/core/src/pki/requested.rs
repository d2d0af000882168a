//! What a certificate request (CSR) asks for, read back: the fields cert-manager's
//! `RequestMatchesSpec` compares with a Certificate's spec (used on cert-manager's
//! CertificateRequest of a served revision).

use std::net::IpAddr;

use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::FromDer;
use x509_parser::x509::X509Name;

use super::issued::{Sans, common_name, sans_of};
use super::{OtherName, PkiError, Subject};

/// The subject, SANs and public key of a CSR.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requested {
    /// The subject Name as encoded (compared byte for byte with a `literalSubject`).
    pub subject_der: Vec<u8>,
    pub common_name: Option<String>,
    /// The subject's attributes of cert-manager's `spec.subject`.
    pub subject: Subject,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
    pub uris: Vec<String>,
    pub email_addresses: Vec<String>,
    pub other_names: Vec<OtherName>,
    /// SubjectPublicKeyInfo, DER.
    pub public_key_der: Vec<u8>,
}

const OID_SERIAL_NUMBER: &str = "2.5.4.5";
const OID_COUNTRY: &str = "2.5.4.6";
const OID_LOCALITY: &str = "2.5.4.7";
const OID_PROVINCE: &str = "2.5.4.8";
const OID_STREET: &str = "2.5.4.9";
const OID_ORGANIZATION: &str = "2.5.4.10";
const OID_ORGANIZATIONAL_UNIT: &str = "2.5.4.11";
const OID_POSTAL_CODE: &str = "2.5.4.17";

/// The values of the attributes of type `oid` in `name`, in order (values that are not text
/// are left out).
fn values(name: &X509Name<'_>, oid: &str) -> Vec<String> {
    name.iter_attributes()
        .filter(|a| a.attr_type().to_id_string() == oid)
        .filter_map(|a| a.as_str().ok().map(str::to_owned))
        .collect()
}

/// Reads a PEM `CERTIFICATE REQUEST`.
pub fn read_csr(pem: &str) -> Result<Requested, PkiError> {
    let (_, block) =
        x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|e| PkiError::InvalidCsr(e.to_string()))?;
    let (_, csr) = X509CertificationRequest::from_der(&block.contents)
        .map_err(|e| PkiError::InvalidCsr(e.to_string()))?;
    let info = &csr.certification_request_info;
    let name = &info.subject;
    let mut sans = Sans::default();
    if let Some(extensions) = csr.requested_extensions() {
        for ext in extensions {
            if let ParsedExtension::SubjectAlternativeName(san) = ext {
                sans = sans_of(&san.general_names);
            }
        }
    }
    Ok(Requested {
        subject_der: name.as_raw().to_vec(),
        common_name: common_name(name),
        subject: Subject {
            organizations: values(name, OID_ORGANIZATION),
            countries: values(name, OID_COUNTRY),
            organizational_units: values(name, OID_ORGANIZATIONAL_UNIT),
            localities: values(name, OID_LOCALITY),
            provinces: values(name, OID_PROVINCE),
            street_addresses: values(name, OID_STREET),
            postal_codes: values(name, OID_POSTAL_CODE),
            serial_number: values(name, OID_SERIAL_NUMBER).into_iter().next(),
        },
        dns_names: sans.dns_names,
        ip_addresses: sans.ip_addresses,
        uris: sans.uris,
        email_addresses: sans.email_addresses,
        other_names: sans.other_names,
        public_key_der: info.subject_pki.raw.to_vec(),
    })
}
