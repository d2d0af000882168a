//! cert-manager's `literalSubject`: an RFC 4514 string used as the CSR's subject as written,
//! attribute order and types kept (LDAP clients match on them).
//!
//! Parsed the way cert-manager parses it (`UnmarshalSubjectStringToRDNSequence`, which uses
//! go-ldap v3.4.14's `ParseDN`), so the same strings are accepted and give the same DER:
//! - RDNs are separated by `,` or `;`, multi-valued RDNs by `+`; the string lists the last RDN
//!   first, so the sequence is reversed;
//! - attribute types are the exact (case-sensitive) names `C`, `O`, `OU`, `CN`,
//!   `SERIALNUMBER`, `L`, `ST`, `STREET`, `DC`, `UID`, or a dotted OID; anything else is
//!   "unrecognized", which validation refuses;
//! - leading and trailing spaces are dropped, `\X` and `\XX` escapes decoded, and unescaped
//!   `"`, `;`, `<`, `>` and NUL refused inside a type or value;
//! - a value `#hex` is the hex of one BER element, of which the content octets are the value;
//! - each value is written as a PrintableString when it fits, else a UTF8String (Go's
//!   `asn1.Marshal` of a string), whatever type a `#hex` value had; invalid UTF-8 (from a
//!   `\XX` escape or a `#hex` value) makes the CSR fail, as in cert-manager.

use std::fmt;
use std::str::FromStr;

use super::PkiError;
use super::der;
use super::names::Oid;

/// The attribute types cert-manager knows by name (Go's `pkix` names plus `DC` and `UID`).
const NAMED_TYPES: [(&str, &[u64]); 10] = [
    ("C", &[2, 5, 4, 6]),
    ("O", &[2, 5, 4, 10]),
    ("OU", &[2, 5, 4, 11]),
    ("CN", &[2, 5, 4, 3]),
    ("SERIALNUMBER", &[2, 5, 4, 5]),
    ("L", &[2, 5, 4, 7]),
    ("ST", &[2, 5, 4, 8]),
    ("STREET", &[2, 5, 4, 9]),
    ("DC", &[0, 9, 2342, 19200300, 100, 1, 25]),
    ("UID", &[0, 9, 2342, 19200300, 100, 1, 1]),
];
const COMMON_NAME: &[u64] = &[2, 5, 4, 3];

/// The deepest BER nesting a `#hex` value may have (go-ldap allows 1000; real values are
/// one primitive element). Bounds the recursion of the reader.
pub const MAX_BER_DEPTH: usize = 32;

/// An attribute type as written in the string.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AttributeType {
    /// A known name or a dotted OID; the arcs are those of the OID.
    Known { arcs: Vec<u64> },
    /// A dotted OID that is not one of the names (kept as cert-manager parses it; whether it
    /// can be encoded is checked when the CSR is built).
    Oid(Oid),
    /// Neither a known name nor an OID (cert-manager's validation refuses these).
    Unrecognized(String),
}

/// One `type=value` of an RDN. The value is bytes: `\XX` escapes and `#hex` values may produce
/// octets that are not UTF-8.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SubjectAttribute {
    pub attribute_type: AttributeType,
    pub value: Vec<u8>,
}

/// A parsed `literalSubject`: RDNs in DER order (the reverse of the string's).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct LiteralSubject {
    rdns: Vec<Vec<SubjectAttribute>>,
}

/// Why a `literalSubject` does not parse (go-ldap's wording).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DnError {
    #[error("incomplete type, value pair")]
    IncompletePair,
    #[error("DN ended with incomplete type, value pair")]
    EndedIncomplete,
    #[error("got unescaped character: '{0}'")]
    UnescapedCharacter(char),
    #[error("got unescaped NULL character")]
    UnescapedNull,
    #[error("got corrupted escaped character: {0:?}")]
    CorruptedEscape(String),
    #[error("failed to decode escaped character {0:?}: expected a special character or two hex digits")]
    BadHexEscape(String),
    #[error("failed to decode BER encoding: {0}")]
    Ber(&'static str),
}

fn is_special(c: char) -> bool {
    matches!(c, ' ' | '"' | '#' | '+' | ',' | ';' | '<' | '=' | '>' | '\\')
}

/// go-ldap's `stripLeadingAndTrailingSpaces`: spaces (only) trimmed, a trailing space kept when
/// an odd number of backslashes escapes it.
fn strip_spaces(s: &str) -> &str {
    let trimmed = s.trim_matches(' ');
    if !trimmed.is_empty() && s.ends_with(' ') {
        let backslashes = trimmed.bytes().rev().take_while(|b| *b == b'\\').count();
        if backslashes % 2 == 1 {
            // The trimmed text is followed by at least one space in `s`.
            let start = s.len() - s.trim_start_matches(' ').len();
            return &s[start..start + trimmed.len() + 1];
        }
    }
    trimmed
}

/// go-ldap's `decodeString`: spaces stripped, escapes decoded, raw specials refused.
fn decode_string(s: &str) -> Result<Vec<u8>, DnError> {
    let chars: Vec<char> = strip_spaces(s).chars().collect();
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c != '\\' {
            match c {
                '"' | ';' | '<' | '>' => return Err(DnError::UnescapedCharacter(c)),
                '\0' => return Err(DnError::UnescapedNull),
                _ => {}
            }
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            i += 1;
            continue;
        }
        let Some(&next) = chars.get(i + 1) else {
            return Err(DnError::CorruptedEscape(s.to_owned()));
        };
        if is_special(next) {
            out.push(next as u8);
            i += 2;
            continue;
        }
        let hex: String = chars[i + 1..chars.len().min(i + 3)].iter().collect();
        let byte = (i + 2 < chars.len() && hex.len() == 2)
            .then(|| u8::from_str_radix(&hex, 16).ok())
            .flatten()
            .filter(|_| hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or(DnError::BadHexEscape(hex))?;
        out.push(byte);
        i += 3;
    }
    Ok(out)
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect::<Option<Vec<u8>>>()
        .filter(|_| s.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// One BER element as go-asn1-ber reads it: identifier, length (definite or indefinite), and
/// its "data": the content octets of a primitive, the re-encoded children of a constructed
/// element. Returns (constructed, data, rest).
fn read_ber(input: &[u8], depth: usize) -> Result<(Vec<u8>, &[u8], bool), DnError> {
    if depth >= MAX_BER_DEPTH {
        return Err(DnError::Ber("nesting too deep"));
    }
    let truncated = DnError::Ber("unexpected end of data");
    let (&first, mut rest) = input.split_first().ok_or(truncated.clone())?;
    let class = first & 0xc0;
    let constructed = first & 0x20 != 0;
    let mut tag = u64::from(first & 0x1f);
    if tag == 0x1f {
        tag = 0;
        for n in 1.. {
            let (&b, r) = rest.split_first().ok_or(truncated.clone())?;
            rest = r;
            tag = (tag << 7) | u64::from(b & 0x7f);
            if n == 1 && tag == 0 {
                return Err(DnError::Ber("invalid first high-tag-number tag byte"));
            }
            if n > 9 {
                return Err(DnError::Ber("high-tag-number tag overflow"));
            }
            if b & 0x80 == 0 {
                break;
            }
        }
    }
    let (&len_byte, r) = rest.split_first().ok_or(truncated.clone())?;
    rest = r;
    let length = match len_byte {
        0xff => return Err(DnError::Ber("invalid length byte 0xff")),
        0x80 => None,
        b if b < 0x80 => Some(usize::from(b)),
        b => {
            let n = usize::from(b & 0x7f);
            if n > 8 || rest.len() < n {
                return Err(DnError::Ber("long-form length overflow or truncated"));
            }
            let len = rest[..n].iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
            rest = &rest[n..];
            Some(usize::try_from(len).map_err(|_| DnError::Ber("length too large"))?)
        }
    };
    if !constructed {
        let length = length.ok_or(DnError::Ber("indefinite length used with primitive type"))?;
        if rest.len() < length {
            return Err(truncated);
        }
        let (content, rest) = rest.split_at(length);
        if class == 0 {
            check_universal(tag, content)?;
        }
        return Ok((content.to_vec(), rest, false));
    }
    let mut data = Vec::new();
    let mut content = match length {
        Some(length) if rest.len() < length => return Err(truncated),
        Some(length) => &rest[..length],
        None => rest,
    };
    loop {
        if length.is_some() && content.is_empty() {
            break;
        }
        let start = content;
        let (child, after, child_constructed) = read_ber(content, depth + 1)?;
        let is_eoc = start.first() == Some(&0) && child.is_empty() && !child_constructed;
        content = after;
        if is_eoc {
            if length.is_none() {
                break;
            }
            return Err(DnError::Ber("eoc child not allowed with definite length"));
        }
        // go-asn1-ber keeps a child as its identifier, the minimal length and its data.
        data.extend_from_slice(&start[..identifier_len(start)]);
        data.extend_from_slice(&der::tlv(0, &child)[1..]);
    }
    let rest = match length {
        Some(length) => &rest[length..],
        None => content,
    };
    Ok((data, rest, true))
}

fn identifier_len(element: &[u8]) -> usize {
    match element.first() {
        Some(b) if b & 0x1f == 0x1f => 1 + element[1..].iter().take_while(|b| *b & 0x80 != 0).count() + 1,
        _ => 1,
    }
}

/// The checks go-asn1-ber applies to universal string values (GeneralizedTime and REAL values
/// are not checked here).
fn check_universal(tag: u64, content: &[u8]) -> Result<(), DnError> {
    match tag {
        12 if std::str::from_utf8(content).is_err() => Err(DnError::Ber("invalid UTF-8 string")),
        19 if !content.iter().all(|b| is_printable(*b)) => {
            Err(DnError::Ber("invalid character in PrintableString"))
        }
        22 if !content.is_ascii() || content.contains(&0x7f) => {
            Err(DnError::Ber("invalid character for IA5String"))
        }
        _ => Ok(()),
    }
}

/// PrintableString's alphabet (X.680 41.4).
pub(crate) fn is_printable(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b" '()+,-./:=?".contains(&b)
}

/// go-ldap's `setValue`: `#hex` (only when `#` is the very first character) or a string.
fn decode_value(raw: &str) -> Result<Vec<u8>, DnError> {
    match raw.strip_prefix('#') {
        Some(hex) => {
            let bytes = hex_decode(hex).ok_or(DnError::Ber("invalid hex"))?;
            let (data, rest, _) = read_ber(&bytes, 0)?;
            if rest.is_empty() {
                Ok(data)
            } else {
                Err(DnError::Ber("trailing bytes after value"))
            }
        }
        None => decode_string(raw),
    }
}

fn attribute_type(name: Vec<u8>) -> AttributeType {
    let name = String::from_utf8_lossy(&name).into_owned();
    if let Some((_, arcs)) = NAMED_TYPES.iter().find(|(n, _)| *n == name) {
        return AttributeType::Known { arcs: arcs.to_vec() };
    }
    match name.parse::<Oid>() {
        Ok(oid) => AttributeType::Oid(oid),
        Err(_) => AttributeType::Unrecognized(name),
    }
}

impl FromStr for LiteralSubject {
    type Err = DnError;

    /// go-ldap's `ParseDN`, then the RDNs reversed as cert-manager does.
    fn from_str(s: &str) -> Result<Self, DnError> {
        let mut rdns = Vec::new();
        if s.trim().is_empty() {
            return Ok(LiteralSubject { rdns });
        }
        let (mut rdn, mut attr_type) = (Vec::new(), Vec::new());
        let (mut escaping, mut start) = (false, 0);
        for (i, b) in s.bytes().enumerate() {
            if escaping {
                escaping = false;
            } else if b == b'\\' {
                escaping = true;
            } else if b == b'=' && attr_type.is_empty() {
                attr_type = decode_string(&s[start..i])?;
                start = i + 1;
            } else if matches!(b, b',' | b'+' | b';') {
                if attr_type.is_empty() {
                    return Err(DnError::IncompletePair);
                }
                let value = decode_value(&s[start..i])?;
                rdn.push(SubjectAttribute {
                    attribute_type: attribute_type(std::mem::take(&mut attr_type)),
                    value,
                });
                start = i + 1;
                if b != b'+' {
                    rdns.push(std::mem::take(&mut rdn));
                }
            }
        }
        if attr_type.is_empty() {
            return Err(DnError::EndedIncomplete);
        }
        let value = decode_value(&s[start..])?;
        rdn.push(SubjectAttribute {
            attribute_type: attribute_type(attr_type),
            value,
        });
        rdns.push(rdn);
        rdns.reverse();
        Ok(LiteralSubject { rdns })
    }
}

impl LiteralSubject {
    /// The RDNs in DER order.
    pub fn rdns(&self) -> &[Vec<SubjectAttribute>] {
        &self.rdns
    }

    fn common_names(&self) -> impl Iterator<Item = &[u8]> {
        self.rdns
            .iter()
            .flatten()
            .filter(|a| matches!(&a.attribute_type, AttributeType::Known { arcs } if arcs == COMMON_NAME))
            .map(|a| a.value.as_slice())
    }

    /// The common name: the last CN in DER order, which is what Go's `pkix.Name` (and so the
    /// common_name cert-manager sends to Vault) and cert-manager's validation take.
    pub fn common_name_bytes(&self) -> Option<&[u8]> {
        self.common_names().last()
    }

    /// [`Self::common_name_bytes`] as text (invalid UTF-8 replaced; such a subject fails to
    /// encode anyway).
    pub fn common_name(&self) -> Option<String> {
        self.common_name_bytes()
            .map(|cn| String::from_utf8_lossy(cn).into_owned())
    }

    /// Attributes whose type is neither a known name nor an OID: (type, value).
    pub fn unrecognized(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.rdns
            .iter()
            .flatten()
            .filter_map(|a| match &a.attribute_type {
                AttributeType::Unrecognized(name) => Some((name.as_str(), a.value.as_slice())),
                _ => None,
            })
    }

    /// The subject Name DER: each RDN a SET (sorted, as DER and Go's encoder do), each value a
    /// PrintableString when it fits, else a UTF8String.
    pub(crate) fn der(&self) -> Result<Vec<u8>, PkiError> {
        let mut rdns = Vec::with_capacity(self.rdns.len());
        for rdn in &self.rdns {
            let mut set = Vec::with_capacity(rdn.len());
            for attribute in rdn {
                let oid = match &attribute.attribute_type {
                    AttributeType::Known { arcs } => der::oid(arcs),
                    AttributeType::Oid(oid) => oid.der()?,
                    AttributeType::Unrecognized(name) => {
                        return Err(PkiError::UnknownSubjectAttribute(name.clone()));
                    }
                };
                set.push(der::sequence(&[&oid, &directory_string(&attribute.value)?]));
            }
            rdns.push(der::set_of(set));
        }
        let refs: Vec<&[u8]> = rdns.iter().map(Vec::as_slice).collect();
        Ok(der::sequence(&refs))
    }
}

impl fmt::Display for SubjectAttribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.attribute_type {
            AttributeType::Known { arcs } => {
                let name = NAMED_TYPES
                    .iter()
                    .find(|(_, a)| a == arcs)
                    .map_or("?", |(n, _)| n);
                write!(f, "{name}")?;
            }
            AttributeType::Oid(oid) => write!(f, "{oid}")?,
            AttributeType::Unrecognized(name) => write!(f, "{name}")?,
        }
        write!(f, "={}", String::from_utf8_lossy(&self.value))
    }
}

/// A DirectoryString as Go writes a string: PrintableString when every byte is in its
/// alphabet, else UTF8String, which must then be valid UTF-8.
pub(crate) fn directory_string(value: &[u8]) -> Result<Vec<u8>, PkiError> {
    if value.iter().all(|b| is_printable(*b)) {
        Ok(der::tlv(der::PRINTABLE_STRING, value))
    } else if std::str::from_utf8(value).is_ok() {
        Ok(der::tlv(der::UTF8_STRING, value))
    } else {
        Err(PkiError::SubjectNotUtf8(
            String::from_utf8_lossy(value).into_owned(),
        ))
    }
}
