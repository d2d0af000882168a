//! The names cert-manager puts into a CSR beyond DNS names, IPs, URIs and e-mail addresses:
//! `otherName` SANs (an OID with a UTF8String value) and the NameConstraints extension
//! (RFC 5280 4.2.1.10), with cert-manager's parsing rules for their manifest strings.
//!
//! Written with the module's own DER helper rather than x509-cert (which is in the dependency
//! tree): its `ObjectIdentifier` holds at most 39 encoded bytes, and cert-manager takes OIDs of
//! any length; the rest of the CSR is written by the same helper (see `csr.rs`).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use super::PkiError;
use super::der;

/// An OBJECT IDENTIFIER as cert-manager reads one from a manifest (`ParseObjectIdentifier`):
/// dot-separated integers, each what Go's `strconv.Atoi` takes (an optional sign, decimal
/// digits, within 64 bits). Whether it can be encoded is a separate question, answered when the
/// CSR is built ([`Oid::der`]), as in cert-manager, whose webhook accepts e.g. `1` or `5.1`
/// and whose CSR builder then fails.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Oid {
    arcs: Vec<i64>,
}

/// A string that is not dot-separated integers (cert-manager: "invalid oid syntax").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid OID syntax {0:?}: expected dot-separated integers such as 1.3.6.1.4.1.311.20.2.3")]
pub struct OidSyntaxError(pub String);

/// Go's `strconv.Atoi`: optional sign, then at least one decimal digit, within i64.
fn go_atoi(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // i64's parser takes the same sign and digits; it fails only on overflow here.
    s.parse().ok()
}

impl FromStr for Oid {
    type Err = OidSyntaxError;

    fn from_str(s: &str) -> Result<Self, OidSyntaxError> {
        let arcs = s
            .split('.')
            .map(go_atoi)
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| OidSyntaxError(s.to_owned()))?;
        Ok(Oid { arcs })
    }
}

impl fmt::Display for Oid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, arc) in self.arcs.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            write!(f, "{arc}")?;
        }
        Ok(())
    }
}

impl Oid {
    /// The OBJECT IDENTIFIER TLV, or why X.690 cannot encode it: fewer than two arcs, a first
    /// arc above 2, a second arc of 40 or more under 0 or 1 (Go's rules), or a negative arc
    /// (which Go would encode as garbage).
    pub(crate) fn der(&self) -> Result<Vec<u8>, PkiError> {
        let invalid = |reason| PkiError::InvalidOid {
            oid: self.to_string(),
            reason,
        };
        let mut arcs = Vec::with_capacity(self.arcs.len());
        for arc in &self.arcs {
            arcs.push(u64::try_from(*arc).map_err(|_| invalid("arcs cannot be negative"))?);
        }
        match arcs.as_slice() {
            [] | [_] => Err(invalid("an OID needs at least two arcs")),
            [first, ..] if *first > 2 => Err(invalid("the first arc must be 0, 1 or 2")),
            [first, second, ..] if *first < 2 && *second >= 40 => Err(invalid(
                "the second arc must be below 40 when the first is 0 or 1",
            )),
            // first * 40 + second: arcs are at most i64::MAX, so this fits in u64.
            _ => Ok(der::oid(&arcs)),
        }
    }
}

/// An `otherName` SAN (RFC 5280 4.2.1.6) whose value is a UTF8String, as cert-manager writes
/// it: `[0] { type-id, [0] EXPLICIT UTF8String }`. The common one is the Microsoft UPN,
/// `1.3.6.1.4.1.311.20.2.3`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OtherName {
    pub oid: Oid,
    pub value: String,
}

impl OtherName {
    /// The GeneralName TLV.
    pub(crate) fn der(&self) -> Result<Vec<u8>, PkiError> {
        let value = der::tlv(der::UTF8_STRING, self.value.as_bytes());
        Ok(der::constructed(
            0xa0,
            &[&self.oid.der()?, &der::constructed(0xa0, &[&value])],
        ))
    }
}

/// An IP range of a name constraint, parsed as Go's `net.ParseCIDR` parses it: `address/bits`,
/// no zone, bits in decimal digits within the address family; the host bits are cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpRange {
    network: IpAddr,
    prefix: u8,
}

/// Not a CIDR (cert-manager: "invalid CIDR address").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid CIDR address {0:?}: expected address/prefix-length such as 10.0.0.0/8 or 2001:db8::/32")]
pub struct CidrError(pub String);

impl FromStr for IpRange {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, CidrError> {
        let error = || CidrError(s.to_owned());
        let (address, bits) = s.split_once('/').ok_or_else(error)?;
        let address: IpAddr = address.parse().map_err(|_| error())?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        if bits.is_empty() || !bits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(error());
        }
        let prefix: u32 = bits.parse().map_err(|_| error())?;
        if prefix > max {
            return Err(error());
        }
        let prefix = u8::try_from(prefix).map_err(|_| error())?;
        let network = match address {
            IpAddr::V4(v4) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                IpAddr::from((u32::from(v4) & mask).to_be_bytes())
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                IpAddr::from((u128::from(v6) & mask).to_be_bytes())
            }
        };
        Ok(IpRange { network, prefix })
    }
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl IpRange {
    /// The iPAddress constraint's octets: the network address, then the mask (RFC 5280).
    fn octets(&self) -> Vec<u8> {
        match self.network {
            IpAddr::V4(v4) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                [v4.octets(), mask.to_be_bytes()].concat()
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                [v6.octets(), mask.to_be_bytes()].concat()
            }
        }
    }
}

/// The names one side of a NameConstraints extension lists (cert-manager's
/// `NameConstraintItem`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct NameSubtrees {
    pub dns_domains: Vec<String>,
    pub ip_ranges: Vec<IpRange>,
    pub email_addresses: Vec<String>,
    pub uri_domains: Vec<String>,
}

impl NameSubtrees {
    pub fn is_empty(&self) -> bool {
        self.dns_domains.is_empty()
            && self.ip_ranges.is_empty()
            && self.email_addresses.is_empty()
            && self.uri_domains.is_empty()
    }

    /// The GeneralSubtree SEQUENCEs, in cert-manager's order: DNS, IP, e-mail, URI.
    fn der(&self) -> Result<Vec<u8>, PkiError> {
        let mut out = Vec::new();
        let mut push = |tag: u8, value: &[u8]| out.extend(der::sequence(&[&der::tlv(tag, value)]));
        for dns in &self.dns_domains {
            ia5("name constraint DNS domain", dns)?;
            push(0x82, dns.as_bytes());
        }
        for range in &self.ip_ranges {
            push(0x87, &range.octets());
        }
        for email in &self.email_addresses {
            ia5("name constraint e-mail address", email)?;
            push(0x81, email.as_bytes());
        }
        for uri in &self.uri_domains {
            ia5("name constraint URI domain", uri)?;
            push(0x86, uri.as_bytes());
        }
        Ok(out)
    }
}

/// cert-manager's `nameConstraints`: what a CA may issue for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct NameConstraints {
    pub critical: bool,
    pub permitted: NameSubtrees,
    pub excluded: NameSubtrees,
}

impl NameConstraints {
    /// The extension value, or `None` when both sides are empty: cert-manager then writes no
    /// extension (RFC 5280 requires one side to be present).
    pub(crate) fn der(&self) -> Result<Option<Vec<u8>>, PkiError> {
        if self.permitted.is_empty() && self.excluded.is_empty() {
            return Ok(None);
        }
        let side = |tag: u8, subtrees: &NameSubtrees| -> Result<Vec<u8>, PkiError> {
            if subtrees.is_empty() {
                Ok(Vec::new())
            } else {
                Ok(der::tlv(tag, &subtrees.der()?))
            }
        };
        Ok(Some(der::sequence(&[
            &side(0xa0, &self.permitted)?,
            &side(0xa1, &self.excluded)?,
        ])))
    }
}

/// DNS names, URIs and e-mail addresses are IA5String (ASCII) in X.509.
pub(crate) fn ia5(field: &'static str, value: &str) -> Result<(), PkiError> {
    if value.is_ascii() {
        Ok(())
    } else {
        Err(PkiError::NonAscii {
            field,
            value: value.to_owned(),
        })
    }
}
