//! Checking what Vault returned, and the outputs cert-manager derives from it.
//!
//! A sign answer is only used once [`verify_issued`] accepts it: the leaf parses, carries our
//! public key, is valid now (allowing a little clock skew for notBefore), and the returned CA
//! certificates form one chain from the leaf, as cert-manager's `ParseSingleCertificateChain`
//! demands. Links are matched by issuer/subject name and, where both are present, authority/
//! subject key identifier; signatures are not verified because x509-parser's `verify-aws` feature
//! is not enabled in this crate.
//!
//! Outputs follow cert-manager: `tls.crt` is the leaf and intermediates without a self-signed root;
//! `ca.crt` is the root when one was returned, else the highest intermediate; `tls-combined.pem`
//! is the key PEM, a newline, then `tls.crt`; `key.der` is the DER of the `tls.key` block.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::pem::Pem;

use super::der;
use super::{CertError, KeyEncoding, OtherName, PrivateKey, SecretBytes};
use crate::Secret;

/// How far notBefore may lie after `now`: Vault backdates by 30 s by default, but its clock and
/// ours may disagree by more than that.
pub const NOT_BEFORE_SKEW: Duration = Duration::from_secs(300);

/// A lifetime shorter than requested by at most this much (or 1 %, whichever is larger) is not
/// reported as shortened: Vault's 30 s backdating and rounding live below it.
pub const SHORTENED_MIN_TOLERANCE: Duration = Duration::from_secs(60);

/// Chain building is quadratic; a real answer has a handful of certificates.
const MAX_CHAIN_CERTIFICATES: usize = 64;

/// A certificate Vault issued that passed every check, with the facts status and metrics need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCertificate {
    /// The leaf, PEM.
    pub leaf_pem: String,
    /// Intermediates, the leaf's issuer first; never a self-signed root.
    pub chain: Vec<String>,
    /// The self-signed root, if the answer contained it.
    pub root: Option<String>,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    /// Lowercase colon-separated hex without leading zero bytes, as Vault prints serials.
    pub serial: String,
    pub common_name: Option<String>,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
    pub uris: Vec<String>,
    pub email_addresses: Vec<String>,
    /// otherName SANs with a UTF8String value.
    pub other_names: Vec<OtherName>,
    pub issuer_common_name: Option<String>,
    /// By how much the lifetime falls short of the requested duration, when Vault capped the TTL
    /// (role or mount max_ttl, or the CA's own expiry) by more than the tolerance.
    pub shortened: Option<Duration>,
    /// When the issuing CA (the leaf's issuer: the first intermediate, else the root) expires,
    /// when the answer carried it: no certificate it signs can outlive it.
    pub issuer_not_after: Option<SystemTime>,
}

/// One parsed certificate, kept as DER so borrowed parses can be made when needed.
struct Der {
    bytes: Vec<u8>,
}

impl Der {
    fn parse(&self) -> Option<X509Certificate<'_>> {
        x509_parser::parse_x509_certificate(&self.bytes)
            .ok()
            .map(|(_, c)| c)
    }
}

/// Decodes every CERTIFICATE block of a PEM text; other blocks are ignored.
pub(crate) fn certificate_blocks(pem: &str) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    for block in Pem::iter_from_buffer(pem.as_bytes()) {
        let block = block.map_err(|e| e.to_string())?;
        if block.label == "CERTIFICATE" {
            out.push(block.contents);
        }
    }
    Ok(out)
}

/// Lowercase colon hex of a serial number, without the DER sign byte.
pub(crate) fn serial_hex(raw: &[u8]) -> String {
    let skip = raw
        .iter()
        .take_while(|b| **b == 0)
        .count()
        .min(raw.len().saturating_sub(1));
    raw[skip..]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

pub(crate) fn common_name(name: &x509_parser::x509::X509Name<'_>) -> Option<String> {
    name.iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned)
}

/// The SANs of a certificate, each list in certificate order.
#[derive(Debug, Default)]
pub(crate) struct Sans {
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
    pub uris: Vec<String>,
    pub email_addresses: Vec<String>,
    /// otherNames with a UTF8String value (cert-manager's `otherNames`); others are left out.
    pub other_names: Vec<OtherName>,
}

pub(crate) fn sans(cert: &X509Certificate<'_>) -> Sans {
    match cert.subject_alternative_name() {
        Ok(Some(ext)) => sans_of(&ext.value.general_names),
        _ => Sans::default(),
    }
}

/// The SAN lists of a SubjectAltName extension's names.
pub(crate) fn sans_of(names: &[GeneralName<'_>]) -> Sans {
    let mut out = Sans::default();
    for name in names {
        match name {
            GeneralName::DNSName(d) => out.dns_names.push((*d).to_owned()),
            GeneralName::IPAddress(ip) => {
                if let Ok(v4) = <[u8; 4]>::try_from(*ip) {
                    out.ip_addresses.push(IpAddr::from(v4));
                } else if let Ok(v6) = <[u8; 16]>::try_from(*ip) {
                    out.ip_addresses.push(IpAddr::from(v6));
                }
            }
            GeneralName::URI(u) => out.uris.push((*u).to_owned()),
            GeneralName::RFC822Name(e) => out.email_addresses.push((*e).to_owned()),
            GeneralName::OtherName(oid, value) => out.other_names.extend(utf8_other_name(oid, value)),
            _ => {}
        }
    }
    out
}

/// An otherName whose value (`[0] EXPLICIT`, after the type id) is one UTF8String.
fn utf8_other_name(oid: &x509_parser::oid_registry::Oid<'_>, value: &[u8]) -> Option<OtherName> {
    let explicit = der::read_single(value, 0xa0, "otherName value").ok()?;
    let text = der::read_single(explicit, der::UTF8_STRING, "UTF8String").ok()?;
    Some(OtherName {
        oid: oid.to_id_string().parse().ok()?,
        value: String::from_utf8(text.to_vec()).ok()?,
    })
}

fn key_ids<'a>(cert: &'a X509Certificate<'_>) -> (Option<&'a [u8]>, Option<&'a [u8]>) {
    let (mut ski, mut aki) = (None, None);
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) => ski = Some(id.0),
            ParsedExtension::AuthorityKeyIdentifier(a) => aki = a.key_identifier.as_ref().map(|id| id.0),
            _ => {}
        }
    }
    (ski, aki)
}

/// Whether `parent` plausibly issued `child`: names match and key identifiers do not contradict.
pub(crate) fn issued_by(child: &X509Certificate<'_>, parent: &X509Certificate<'_>) -> bool {
    if child.issuer().as_raw() != parent.subject().as_raw() {
        return false;
    }
    match (key_ids(child).1, key_ids(parent).0) {
        (Some(aki), Some(ski)) => aki == ski,
        _ => true,
    }
}

pub(crate) fn is_self_signed(cert: &X509Certificate<'_>) -> bool {
    issued_by(cert, cert)
}

/// Orders `others` into the chain above `leaf`; fails if any certificate does not fit.
fn build_chain(leaf: &Der, others: Vec<Der>) -> Result<(Vec<Der>, Option<Der>), CertError> {
    let mut remaining: Vec<Der> = Vec::new();
    for cert in others {
        if cert.bytes != leaf.bytes && !remaining.iter().any(|r| r.bytes == cert.bytes) {
            remaining.push(cert);
        }
    }
    let mut chain: Vec<Der> = Vec::new();
    loop {
        let current = chain.last().unwrap_or(leaf);
        let Some(current) = current.parse() else { break };
        if is_self_signed(&current) {
            break;
        }
        let next = remaining
            .iter()
            .position(|c| c.parse().is_some_and(|p| issued_by(&current, &p)));
        match next {
            Some(i) => {
                let cert = remaining.remove(i);
                chain.push(cert);
            }
            None => break,
        }
    }
    if !remaining.is_empty() {
        let names: Vec<String> = remaining
            .iter()
            .filter_map(|c| c.parse().map(|p| p.subject().to_string()))
            .map(|s| format!("{s:?}"))
            .collect();
        return Err(CertError::BrokenChain(format!(
            "{} does not chain to the leaf",
            names.join(", ")
        )));
    }
    let root = match chain.last().and_then(Der::parse) {
        Some(top) if is_self_signed(&top) => chain.pop(),
        _ => None,
    };
    Ok((chain, root))
}

/// Checks Vault's answer (`cert_pem` = the `certificate` field, `chain_pems` = `issuing_ca` and
/// `ca_chain`, issuing CA first; duplicates and empty strings are fine) against the key the CSR
/// was made with, and returns what was issued.
pub fn verify_issued(
    cert_pem: &str,
    chain_pems: &[String],
    key: &PrivateKey,
    requested_duration: Duration,
    now: SystemTime,
) -> Result<IssuedCertificate, CertError> {
    let mut blocks = certificate_blocks(cert_pem)
        .map_err(CertError::InvalidPem)?
        .into_iter();
    let leaf = Der {
        bytes: blocks.next().ok_or(CertError::NoCertificate)?,
    };
    // A `pem_bundle`-style certificate field carries its chain after the leaf.
    let mut others: Vec<Der> = blocks.map(|bytes| Der { bytes }).collect();
    for pem in chain_pems {
        let parsed = certificate_blocks(pem).map_err(CertError::InvalidPem)?;
        others.extend(parsed.into_iter().map(|bytes| Der { bytes }));
    }
    if others.len() > MAX_CHAIN_CERTIFICATES {
        return Err(CertError::BrokenChain(format!(
            "more than {MAX_CHAIN_CERTIFICATES} CA certificates"
        )));
    }
    for (index, cert) in others.iter().enumerate() {
        if let Err(e) = x509_parser::parse_x509_certificate(&cert.bytes) {
            return Err(CertError::InvalidChain {
                index,
                reason: e.to_string(),
            });
        }
    }

    let (_, cert) = x509_parser::parse_x509_certificate(&leaf.bytes)
        .map_err(|e| CertError::InvalidLeaf(e.to_string()))?;
    if !key.matches_public_key(cert.public_key().raw) {
        return Err(CertError::KeyMismatch);
    }
    let not_before = cert.validity().not_before.timestamp();
    let not_after = cert.validity().not_after.timestamp();
    let now_s = crate::time::to_unix(now);
    if not_after <= now_s {
        return Err(CertError::Expired {
            not_after: crate::time::from_unix(not_after),
            now,
        });
    }
    if not_before > now_s.saturating_add(NOT_BEFORE_SKEW.as_secs() as i64) {
        return Err(CertError::NotYetValid {
            not_before: crate::time::from_unix(not_before),
            now,
        });
    }

    let lifetime = Duration::from_secs(not_after.saturating_sub(not_before).max(0).unsigned_abs());
    let tolerance = (requested_duration / 100).max(SHORTENED_MIN_TOLERANCE);
    let shortened = requested_duration
        .checked_sub(lifetime)
        .filter(|short| *short > tolerance);

    let (chain, root) = build_chain(&leaf, others)?;
    let issuer_not_after = chain
        .first()
        .or(root.as_ref())
        .and_then(Der::parse)
        .map(|ca| crate::time::from_unix(ca.validity().not_after.timestamp()));
    let Sans {
        dns_names,
        ip_addresses,
        uris,
        email_addresses,
        other_names,
    } = sans(&cert);
    Ok(IssuedCertificate {
        leaf_pem: der::pem("CERTIFICATE", &leaf.bytes),
        chain: chain.iter().map(|c| der::pem("CERTIFICATE", &c.bytes)).collect(),
        root: root.map(|r| der::pem("CERTIFICATE", &r.bytes)),
        not_before: crate::time::from_unix(not_before),
        not_after: crate::time::from_unix(not_after),
        serial: serial_hex(cert.raw_serial()),
        common_name: common_name(cert.subject()),
        dns_names,
        ip_addresses,
        uris,
        email_addresses,
        other_names,
        issuer_common_name: common_name(cert.issuer()),
        shortened,
        issuer_not_after,
    })
}

impl IssuedCertificate {
    /// `tls.crt`: the leaf, then the intermediates up to (not including) a self-signed root.
    pub fn tls_crt(&self) -> String {
        let mut out = self.leaf_pem.clone();
        for cert in &self.chain {
            out.push_str(cert);
        }
        out
    }

    /// `ca.crt`: the root if Vault returned one, else the highest intermediate; `None` when the
    /// answer had no CA certificate at all (cert-manager then writes an empty `ca.crt`).
    pub fn ca_crt(&self) -> Option<String> {
        self.root.clone().or_else(|| self.chain.last().cloned())
    }

    /// `tls-combined.pem`: the key PEM, a newline, then `tls.crt` (cert-manager's
    /// `OutputFormatCombinedPEM` joins the two with "\n").
    pub fn combined_pem(&self, key: &PrivateKey, encoding: KeyEncoding) -> Secret {
        let key_pem = key.to_pem(encoding);
        let tls_crt = self.tls_crt();
        let mut out = String::with_capacity(key_pem.expose().len() + 1 + tls_crt.len());
        out.push_str(key_pem.expose());
        out.push('\n');
        out.push_str(&tls_crt);
        Secret::new(out)
    }

    /// `key.der`: the DER inside the `tls.key` PEM block, so PKCS#1/SEC1 or PKCS#8 following the
    /// key encoding, exactly as cert-manager's `OutputFormatDER` decodes `tls.key`.
    pub fn der_key(&self, key: &PrivateKey, encoding: KeyEncoding) -> SecretBytes {
        key.to_der(encoding)
    }

    /// Time left before notAfter (zero once expired).
    pub fn remaining(&self, now: SystemTime) -> Duration {
        self.not_after.duration_since(now).unwrap_or_default()
    }
}
