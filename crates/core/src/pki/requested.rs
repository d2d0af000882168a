//! What a certificate request (CSR) asks for, read back once: the fields cert-manager's
//! `RequestMatchesSpec` compares with a Certificate's spec (used on cert-manager's
//! CertificateRequest of a served revision) and the extensions its webhook checks against a
//! CertificateRequest's `isCA` and `usages` ([`super::check_request`]).

use std::net::IpAddr;

use x509_parser::asn1_rs::Oid as DerOid;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::cri_attributes::ParsedCriAttribute;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::FromDer;
use x509_parser::x509::X509Name;

use super::csr::ExtendedKeyUsage;
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
    /// basicConstraints' CA flag (`None`: no such extension).
    pub is_ca: Option<bool>,
    /// The key usage bits (bit n: key usage n of RFC 5280; `None`: no such extension).
    pub key_usage_bits: Option<u16>,
    /// The extended key usages Go knows, in the CSR's order (`None`: no such extension).
    pub extended_key_usages: Option<Vec<ExtendedKeyUsage>>,
}

const OID_BASIC_CONSTRAINTS: &str = "2.5.29.19";
const OID_KEY_USAGE: &str = "2.5.29.15";
const OID_EXTENDED_KEY_USAGE: &str = "2.5.29.37";

fn extended_key_usage_of(oid: &DerOid<'_>) -> Option<ExtendedKeyUsage> {
    let arcs: Vec<u64> = oid.iter()?.collect();
    ExtendedKeyUsage::ALL
        .into_iter()
        .find(|u| u.oid() == arcs.as_slice())
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
    read_csr_der(&block.contents)
}

/// Reads a DER `CertificationRequest`.
pub fn read_csr_der(der: &[u8]) -> Result<Requested, PkiError> {
    let invalid = |e: &dyn std::fmt::Display| PkiError::InvalidCsr(e.to_string());
    let (_, csr) = X509CertificationRequest::from_der(der).map_err(|e| invalid(&e))?;
    let info = &csr.certification_request_info;
    let name = &info.subject;
    let mut sans = Sans::default();
    let (mut is_ca, mut key_usage_bits, mut extended_key_usages) = (None, None, None);
    for attribute in info.attributes() {
        let ParsedCriAttribute::ExtensionRequest(request) = attribute.parsed_attribute() else {
            continue;
        };
        for extension in &request.extensions {
            match (
                extension.oid.to_id_string().as_str(),
                extension.parsed_extension(),
            ) {
                (_, ParsedExtension::SubjectAlternativeName(san)) => sans = sans_of(&san.general_names),
                (OID_BASIC_CONSTRAINTS, ParsedExtension::BasicConstraints(bc)) => is_ca = Some(bc.ca),
                (OID_KEY_USAGE, ParsedExtension::KeyUsage(ku)) => key_usage_bits = Some(ku.flags),
                (OID_EXTENDED_KEY_USAGE, _) => {
                    // Read from the value: the parsed form loses the order, which Go compares.
                    let (_, oids) = Vec::<DerOid<'_>>::from_der(extension.value).map_err(|e| invalid(&e))?;
                    // Purposes Go does not know are kept apart by Go and not compared.
                    extended_key_usages = Some(oids.iter().filter_map(extended_key_usage_of).collect());
                }
                (OID_BASIC_CONSTRAINTS | OID_KEY_USAGE, other) => {
                    return Err(PkiError::InvalidCsr(format!(
                        "extension {} does not parse: {other:?}",
                        extension.oid
                    )));
                }
                _ => {}
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
        is_ca,
        key_usage_bits,
        extended_key_usages,
    })
}
