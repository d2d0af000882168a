//! PKCS#10 certificate requests, shaped like the ones cert-manager sends.
//!
//! The request body is written here rather than by rcgen because rcgen's distinguished names hold
//! one value per attribute type (cert-manager allows several organizations, OUs, ...), it refuses
//! basic constraints in a CSR, and its extended key usages lack the IPsec and SGC purposes. rcgen
//! still does the signing. Layout follows Go's `x509.CreateCertificateRequest` as cert-manager
//! calls it (pkg/util/pki/csr.go): subject attributes in the order C, O, OU, L, ST, STREET,
//! POSTALCODE, SERIALNUMBER, CN with multiple values sharing one RDN; SANs ordered DNS, e-mail, IP,
//! URI, otherName and marked critical when the subject is empty; key usage critical; EKU
//! non-critical; name constraints last. A `literalSubject` replaces the subject attributes and
//! common name with the RDNs as written (see `subject.rs`).

use std::net::IpAddr;
use std::str::FromStr;

use super::der;
use super::names::{NameConstraints, OtherName, ia5};
use super::subject::{LiteralSubject, directory_string};
use super::{PkiError, PrivateKey};

/// A key usage bit (RFC 5280 4.2.1.3), named as in cert-manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyUsage {
    DigitalSignature,
    ContentCommitment,
    KeyEncipherment,
    DataEncipherment,
    KeyAgreement,
    CertSign,
    CrlSign,
    EncipherOnly,
    DecipherOnly,
}

impl KeyUsage {
    /// Every key usage, in bit order.
    pub const ALL: [KeyUsage; 9] = [
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

    /// The bit number in the KeyUsage BIT STRING.
    pub(crate) fn bit(self) -> u16 {
        self as u16
    }
}

/// An extended key usage purpose (RFC 5280 4.2.1.12), named as in cert-manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ExtendedKeyUsage {
    Any,
    ServerAuth,
    ClientAuth,
    CodeSigning,
    EmailProtection,
    IpsecEndSystem,
    IpsecTunnel,
    IpsecUser,
    Timestamping,
    OcspSigning,
    MicrosoftSgc,
    NetscapeSgc,
}

impl ExtendedKeyUsage {
    /// Every purpose cert-manager (Go) names.
    pub const ALL: [ExtendedKeyUsage; 12] = [
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

    pub(crate) fn oid(self) -> &'static [u64] {
        match self {
            ExtendedKeyUsage::Any => &[2, 5, 29, 37, 0],
            ExtendedKeyUsage::ServerAuth => &[1, 3, 6, 1, 5, 5, 7, 3, 1],
            ExtendedKeyUsage::ClientAuth => &[1, 3, 6, 1, 5, 5, 7, 3, 2],
            ExtendedKeyUsage::CodeSigning => &[1, 3, 6, 1, 5, 5, 7, 3, 3],
            ExtendedKeyUsage::EmailProtection => &[1, 3, 6, 1, 5, 5, 7, 3, 4],
            ExtendedKeyUsage::IpsecEndSystem => &[1, 3, 6, 1, 5, 5, 7, 3, 5],
            ExtendedKeyUsage::IpsecTunnel => &[1, 3, 6, 1, 5, 5, 7, 3, 6],
            ExtendedKeyUsage::IpsecUser => &[1, 3, 6, 1, 5, 5, 7, 3, 7],
            ExtendedKeyUsage::Timestamping => &[1, 3, 6, 1, 5, 5, 7, 3, 8],
            ExtendedKeyUsage::OcspSigning => &[1, 3, 6, 1, 5, 5, 7, 3, 9],
            ExtendedKeyUsage::MicrosoftSgc => &[1, 3, 6, 1, 4, 1, 311, 10, 3, 3],
            ExtendedKeyUsage::NetscapeSgc => &[2, 16, 840, 1, 113730, 4, 1],
        }
    }
}

/// One entry of cert-manager's `spec.usages`: either a key usage or an extended key usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Usage {
    Key(KeyUsage),
    Extended(ExtendedKeyUsage),
}

impl FromStr for Usage {
    type Err = PkiError;

    /// Parses cert-manager's usage strings. As in cert-manager, "signing" is digital signature
    /// and "s/mime" is e-mail protection.
    fn from_str(s: &str) -> Result<Self, PkiError> {
        use ExtendedKeyUsage as E;
        use KeyUsage as K;
        Ok(match s {
            "signing" | "digital signature" => Usage::Key(K::DigitalSignature),
            "content commitment" => Usage::Key(K::ContentCommitment),
            "key encipherment" => Usage::Key(K::KeyEncipherment),
            "key agreement" => Usage::Key(K::KeyAgreement),
            "data encipherment" => Usage::Key(K::DataEncipherment),
            "cert sign" => Usage::Key(K::CertSign),
            "crl sign" => Usage::Key(K::CrlSign),
            "encipher only" => Usage::Key(K::EncipherOnly),
            "decipher only" => Usage::Key(K::DecipherOnly),
            "any" => Usage::Extended(E::Any),
            "server auth" => Usage::Extended(E::ServerAuth),
            "client auth" => Usage::Extended(E::ClientAuth),
            "code signing" => Usage::Extended(E::CodeSigning),
            "email protection" | "s/mime" => Usage::Extended(E::EmailProtection),
            "ipsec end system" => Usage::Extended(E::IpsecEndSystem),
            "ipsec tunnel" => Usage::Extended(E::IpsecTunnel),
            "ipsec user" => Usage::Extended(E::IpsecUser),
            "timestamping" => Usage::Extended(E::Timestamping),
            "ocsp signing" => Usage::Extended(E::OcspSigning),
            "microsoft sgc" => Usage::Extended(E::MicrosoftSgc),
            "netscape sgc" => Usage::Extended(E::NetscapeSgc),
            other => return Err(PkiError::UnknownUsage(other.to_owned())),
        })
    }
}

/// Splits cert-manager usage strings into key usages and extended key usages, in order and
/// without duplicates. An empty list stays empty: cert-manager's default ("digital signature",
/// "key encipherment") is the spec layer's to apply.
pub fn parse_usages<S: AsRef<str>>(names: &[S]) -> Result<(Vec<KeyUsage>, Vec<ExtendedKeyUsage>), PkiError> {
    let (mut ku, mut eku) = (Vec::new(), Vec::new());
    for name in names {
        match name.as_ref().parse()? {
            Usage::Key(k) if !ku.contains(&k) => ku.push(k),
            Usage::Extended(e) if !eku.contains(&e) => eku.push(e),
            _ => {}
        }
    }
    Ok((ku, eku))
}

/// cert-manager's `spec.subject` (X509Subject).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject {
    pub organizations: Vec<String>,
    pub countries: Vec<String>,
    pub organizational_units: Vec<String>,
    pub localities: Vec<String>,
    pub provinces: Vec<String>,
    pub street_addresses: Vec<String>,
    pub postal_codes: Vec<String>,
    pub serial_number: Option<String>,
}

/// What to put into a CSR. Plain data: the spec layer maps a Certificate onto it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CsrRequest {
    pub common_name: Option<String>,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
    pub uris: Vec<String>,
    pub email_addresses: Vec<String>,
    pub subject: Subject,
    /// Adds a critical `basicConstraints CA:TRUE` and, as cert-manager does, the cert-sign usage.
    pub is_ca: bool,
    pub key_usages: Vec<KeyUsage>,
    pub extended_key_usages: Vec<ExtendedKeyUsage>,
    /// cert-manager's `encodeUsagesInRequest` (default true there): without it the CSR carries no
    /// key usage or EKU extension and the issuer decides.
    pub encode_usages_in_request: bool,
    /// `otherName` SANs, written after the URIs as cert-manager does.
    pub other_names: Vec<OtherName>,
    /// The NameConstraints extension (for a CA); none is written when both sides are empty.
    /// Boxed: rare, and large inline in every job.
    pub name_constraints: Option<Box<NameConstraints>>,
    /// cert-manager's `literalSubject`: when set, it is the subject as written, and
    /// `common_name` must be its common name (what Vault is sent) and `subject` empty.
    pub literal_subject: Option<LiteralSubject>,
}

const PKCS9_EXTENSION_REQUEST: &[u64] = &[1, 2, 840, 113549, 1, 9, 14];
const EXT_KEY_USAGE: &[u64] = &[2, 5, 29, 15];
const EXT_SUBJECT_ALT_NAME: &[u64] = &[2, 5, 29, 17];
const EXT_BASIC_CONSTRAINTS: &[u64] = &[2, 5, 29, 19];
const EXT_EXTENDED_KEY_USAGE: &[u64] = &[2, 5, 29, 37];
const EXT_NAME_CONSTRAINTS: &[u64] = &[2, 5, 29, 30];

impl CsrRequest {
    /// The subject Name (DER) this request's CSR carries: the literal subject as written, or
    /// the one built from the common name and subject fields.
    pub fn subject_der(&self) -> Result<Vec<u8>, PkiError> {
        subject_name(self)
    }
}

fn subject_name(req: &CsrRequest) -> Result<Vec<u8>, PkiError> {
    let Some(literal) = &req.literal_subject else {
        return Ok(structured_subject(req));
    };
    if req.subject != Subject::default() {
        return Err(PkiError::LiteralSubjectConflict("subject"));
    }
    if req.common_name.is_some() && req.common_name != literal.common_name() {
        return Err(PkiError::LiteralSubjectConflict("commonName"));
    }
    literal.der()
}

fn structured_subject(req: &CsrRequest) -> Vec<u8> {
    let s = &req.subject;
    let cn: Vec<String> = req
        .common_name
        .iter()
        .filter(|c| !c.is_empty())
        .cloned()
        .collect();
    let serial: Vec<String> = s
        .serial_number
        .iter()
        .filter(|c| !c.is_empty())
        .cloned()
        .collect();
    let attributes: [(&[u64], &[String]); 9] = [
        (&[2, 5, 4, 6], &s.countries),
        (&[2, 5, 4, 10], &s.organizations),
        (&[2, 5, 4, 11], &s.organizational_units),
        (&[2, 5, 4, 7], &s.localities),
        (&[2, 5, 4, 8], &s.provinces),
        (&[2, 5, 4, 9], &s.street_addresses),
        (&[2, 5, 4, 17], &s.postal_codes),
        (&[2, 5, 4, 5], &serial),
        (&[2, 5, 4, 3], &cn),
    ];
    let rdns: Vec<Vec<u8>> = attributes
        .iter()
        .filter(|(_, values)| !values.is_empty())
        .map(|(oid, values)| {
            let oid = der::oid(oid);
            der::set_of(
                values
                    .iter()
                    .map(|v| der::sequence(&[&oid, &text_string(v)]))
                    .collect(),
            )
        })
        .collect();
    let refs: Vec<&[u8]> = rdns.iter().map(Vec::as_slice).collect();
    der::sequence(&refs)
}

/// A DirectoryString of Rust text, which is always valid UTF-8.
fn text_string(s: &str) -> Vec<u8> {
    directory_string(s.as_bytes()).unwrap_or_else(|_| der::tlv(der::UTF8_STRING, s.as_bytes()))
}

fn extension(oid: &[u64], critical: bool, value: &[u8]) -> Vec<u8> {
    let critical: &[u8] = if critical { &[der::BOOLEAN, 1, 0xff] } else { &[] };
    der::sequence(&[&der::oid(oid), critical, &der::tlv(der::OCTET_STRING, value)])
}

fn general_names(req: &CsrRequest) -> Result<Vec<Vec<u8>>, PkiError> {
    let mut names = Vec::new();
    for dns in &req.dns_names {
        ia5("DNS name", dns)?;
        names.push(der::tlv(0x82, dns.as_bytes()));
    }
    for email in &req.email_addresses {
        ia5("e-mail address", email)?;
        names.push(der::tlv(0x81, email.as_bytes()));
    }
    for ip in &req.ip_addresses {
        names.push(match ip {
            IpAddr::V4(v4) => der::tlv(0x87, &v4.octets()),
            IpAddr::V6(v6) => der::tlv(0x87, &v6.octets()),
        });
    }
    for uri in &req.uris {
        ia5("URI", uri)?;
        names.push(der::tlv(0x86, uri.as_bytes()));
    }
    for other in &req.other_names {
        names.push(other.der()?);
    }
    Ok(names)
}

fn key_usage_value(usages: &[KeyUsage]) -> Vec<u8> {
    // Bit 0 is the most significant bit of the first byte; trailing zero bits are dropped (DER).
    let bits = usages.iter().fold(0u16, |acc, u| acc | (0x8000 >> u.bit()));
    let bytes = bits.to_be_bytes();
    let len = if bits & 0x00ff != 0 { 2 } else { 1 };
    der::bit_string(&bytes[..len], (bits.trailing_zeros() % 8) as u8)
}

fn extensions(req: &CsrRequest, subject_is_empty: bool) -> Result<Vec<Vec<u8>>, PkiError> {
    let mut exts = Vec::new();
    let names = general_names(req)?;
    if !names.is_empty() {
        let refs: Vec<&[u8]> = names.iter().map(Vec::as_slice).collect();
        exts.push(extension(
            EXT_SUBJECT_ALT_NAME,
            subject_is_empty,
            &der::sequence(&refs),
        ));
    }
    if req.encode_usages_in_request {
        let mut ku = req.key_usages.clone();
        if req.is_ca && !ku.contains(&KeyUsage::CertSign) {
            ku.push(KeyUsage::CertSign);
        }
        if !ku.is_empty() {
            exts.push(extension(EXT_KEY_USAGE, true, &key_usage_value(&ku)));
        }
        let mut oids: Vec<Vec<u8>> = Vec::new();
        for eku in &req.extended_key_usages {
            let oid = der::oid(eku.oid());
            if !oids.contains(&oid) {
                oids.push(oid);
            }
        }
        if !oids.is_empty() {
            let refs: Vec<&[u8]> = oids.iter().map(Vec::as_slice).collect();
            exts.push(extension(EXT_EXTENDED_KEY_USAGE, false, &der::sequence(&refs)));
        }
    }
    if req.is_ca {
        exts.push(extension(
            EXT_BASIC_CONSTRAINTS,
            true,
            &der::sequence(&[&[der::BOOLEAN, 1, 0xff]]),
        ));
    }
    if let Some(constraints) = &req.name_constraints
        && let Some(value) = constraints.der()?
    {
        exts.push(extension(EXT_NAME_CONSTRAINTS, constraints.critical, &value));
    }
    Ok(exts)
}

/// Builds and signs a PEM "CERTIFICATE REQUEST" for `key`.
pub fn build_csr(req: &CsrRequest, key: &PrivateKey) -> Result<String, PkiError> {
    let has_cn = match &req.literal_subject {
        Some(literal) => literal.common_name_bytes().is_some_and(|cn| !cn.is_empty()),
        None => req.common_name.as_deref().is_some_and(|cn| !cn.is_empty()),
    };
    if !has_cn
        && req.other_names.is_empty()
        && req.dns_names.is_empty()
        && req.ip_addresses.is_empty()
        && req.uris.is_empty()
        && req.email_addresses.is_empty()
    {
        return Err(PkiError::EmptyRequest);
    }
    let choice = key.algorithm().signature()?;
    let subject = subject_name(req)?;
    let subject_is_empty = subject.len() == 2;
    let exts = extensions(req, subject_is_empty)?;
    let attributes = if exts.is_empty() {
        der::tlv(0xa0, &[])
    } else {
        let refs: Vec<&[u8]> = exts.iter().map(Vec::as_slice).collect();
        let ext_req = der::sequence(&[
            &der::oid(PKCS9_EXTENSION_REQUEST),
            &der::set_of(vec![der::sequence(&refs)]),
        ]);
        der::tlv(0xa0, &ext_req)
    };
    let info = der::sequence(&[&der::small_int(0), &subject, &key.public_key_der(), &attributes]);
    let signature = key.sign(&info)?;
    let csr = der::sequence(&[
        &info,
        &choice.algorithm_identifier(),
        &der::bit_string(&signature, 0),
    ]);
    Ok(der::pem("CERTIFICATE REQUEST", &csr))
}
