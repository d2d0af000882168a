//! The little DER, PEM and time arithmetic this module needs beyond what rcgen and x509-parser expose.
//!
//! rcgen keeps its ASN.1 writer private and writes only PKCS#8, and its distinguished names hold one
//! value per attribute type; x509-parser only reads. Converting keys between PKCS#8, PKCS#1 and
//! SEC1 and writing cert-manager-shaped CSRs (multi-valued RDNs, the extra EKU OIDs) takes a few
//! dozen lines of TLV handling, which is less risk than a new dependency. Only single-byte tags
//! and definite lengths are supported: everything this module reads or writes fits that.

use zeroize::Zeroizing;

pub(crate) const BOOLEAN: u8 = 0x01;
pub(crate) const INTEGER: u8 = 0x02;
pub(crate) const BIT_STRING: u8 = 0x03;
pub(crate) const OCTET_STRING: u8 = 0x04;
pub(crate) const NULL: u8 = 0x05;
pub(crate) const OID: u8 = 0x06;
pub(crate) const UTF8_STRING: u8 = 0x0c;
pub(crate) const PRINTABLE_STRING: u8 = 0x13;
pub(crate) const SEQUENCE: u8 = 0x30;
pub(crate) const SET: u8 = 0x31;

/// A DER structure did not have the expected shape; the text names what was expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Malformed(pub &'static str);

/// One decoded tag-length-value, borrowing its content.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tlv<'a> {
    pub tag: u8,
    pub content: &'a [u8],
}

impl<'a> Tlv<'a> {
    /// The content if the tag is `tag`.
    pub fn expect(self, tag: u8, what: &'static str) -> Result<&'a [u8], Malformed> {
        if self.tag == tag {
            Ok(self.content)
        } else {
            Err(Malformed(what))
        }
    }
}

/// Reads one TLV from the front of `input`, returning it and the rest.
pub(crate) fn read(input: &[u8]) -> Result<(Tlv<'_>, &[u8]), Malformed> {
    let truncated = Malformed("truncated DER");
    let (&tag, rest) = input.split_first().ok_or(truncated)?;
    let (&first, rest) = rest.split_first().ok_or(truncated)?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return Err(Malformed("unsupported DER length"));
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return Err(truncated);
    }
    let (content, rest) = rest.split_at(len);
    Ok((Tlv { tag, content }, rest))
}

/// Reads exactly one TLV with tag `tag` spanning all of `input`.
pub(crate) fn read_single<'a>(input: &'a [u8], tag: u8, what: &'static str) -> Result<&'a [u8], Malformed> {
    let (tlv, rest) = read(input)?;
    if !rest.is_empty() {
        return Err(Malformed("trailing data after DER structure"));
    }
    tlv.expect(tag, what)
}

/// Splits the content of a constructed value into its elements.
pub(crate) fn elements(mut content: &[u8]) -> Result<Vec<Tlv<'_>>, Malformed> {
    let mut out = Vec::new();
    while !content.is_empty() {
        let (tlv, rest) = read(content)?;
        out.push(tlv);
        content = rest;
    }
    Ok(out)
}

fn length_bytes(len: usize) -> Vec<u8> {
    if len < 0x80 {
        // Fits in the short form by the check above.
        vec![len as u8]
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        let mut out = vec![0x80 | (bytes.len() - skip) as u8];
        out.extend_from_slice(&bytes[skip..]);
        out
    }
}

/// Encodes a TLV. The buffer is allocated at its final size so that key material is never left
/// behind in a reallocated copy.
pub(crate) fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let len = length_bytes(content.len());
    let mut out = Vec::with_capacity(1 + len.len() + content.len());
    out.push(tag);
    out.extend_from_slice(&len);
    out.extend_from_slice(content);
    out
}

/// Encodes a TLV whose content is the concatenation of `parts` (SEQUENCE, SET, context tags).
pub(crate) fn constructed(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let len = length_bytes(total);
    let mut out = Vec::with_capacity(1 + len.len() + total);
    out.push(tag);
    out.extend_from_slice(&len);
    for part in parts {
        out.extend_from_slice(part);
    }
    out
}

/// Like [`constructed`] for key material: the result is wiped on drop.
pub(crate) fn secret_constructed(tag: u8, parts: &[&[u8]]) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(constructed(tag, parts))
}

/// `SEQUENCE { parts }`.
pub(crate) fn sequence(parts: &[&[u8]]) -> Vec<u8> {
    constructed(SEQUENCE, parts)
}

/// `SET OF`, sorted by encoding as DER requires.
pub(crate) fn set_of(mut parts: Vec<Vec<u8>>) -> Vec<u8> {
    parts.sort();
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    constructed(SET, &refs)
}

/// The content octets of an OBJECT IDENTIFIER.
pub(crate) fn oid_content(arcs: &[u64]) -> Vec<u8> {
    let mut out = Vec::new();
    let (first, rest) = match arcs {
        [a, b, rest @ ..] => (a * 40 + b, rest),
        [a] => (a * 40, &[][..]),
        [] => return out,
    };
    for arc in std::iter::once(first).chain(rest.iter().copied()) {
        let mut chunk = vec![(arc & 0x7f) as u8];
        let mut v = arc >> 7;
        while v > 0 {
            chunk.push(0x80 | (v & 0x7f) as u8);
            v >>= 7;
        }
        out.extend(chunk.iter().rev());
    }
    out
}

/// A complete OBJECT IDENTIFIER TLV.
pub(crate) fn oid(arcs: &[u64]) -> Vec<u8> {
    tlv(OID, &oid_content(arcs))
}

/// A non-negative INTEGER that fits in a byte.
pub(crate) fn small_int(v: u8) -> Vec<u8> {
    if v < 0x80 {
        vec![INTEGER, 1, v]
    } else {
        vec![INTEGER, 2, 0, v]
    }
}

/// A BIT STRING whose last byte has `unused` padding bits.
pub(crate) fn bit_string(bytes: &[u8], unused: u8) -> Vec<u8> {
    let mut content = Vec::with_capacity(bytes.len() + 1);
    content.push(unused);
    content.extend_from_slice(bytes);
    tlv(BIT_STRING, &content)
}

/// The number of significant bits of an unsigned big-endian INTEGER's content.
pub(crate) fn uint_bits(content: &[u8]) -> u32 {
    let skip = content.iter().take_while(|b| **b == 0).count();
    match content.get(skip) {
        Some(first) => (content.len() - skip - 1) as u32 * 8 + (8 - first.leading_zeros()),
        None => 0,
    }
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// PEM with 64-column lines and `\n` endings, as Go's `encoding/pem` (and so cert-manager) writes
/// it. The string is allocated at its final size, so a private key leaves no reallocated copies.
pub(crate) fn pem(label: &str, der: &[u8]) -> String {
    let b64_len = der.len().div_ceil(3) * 4;
    let mut out = String::with_capacity(2 * label.len() + 32 + b64_len + b64_len / 64 + 1);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    let mut column = 0;
    for chunk in der.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            let c = if i <= chunk.len() {
                BASE64[(n >> (18 - 6 * i) & 0x3f) as usize]
            } else {
                b'='
            };
            out.push(char::from(c));
            column += 1;
            if column == 64 {
                out.push('\n');
                column = 0;
            }
        }
    }
    if column != 0 {
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tlv_round_trips_short_and_long_lengths() {
        for len in [0usize, 1, 127, 128, 255, 256, 70_000] {
            let content = vec![7u8; len];
            let enc = tlv(OCTET_STRING, &content);
            let (t, rest) = read(&enc).unwrap();
            assert_eq!((t.tag, t.content.len(), rest.len()), (OCTET_STRING, len, 0));
        }
        assert!(read(&[0x30, 0x05, 1]).is_err());
        assert!(read(&[0x30, 0x80]).is_err());
    }

    #[test]
    fn oids_encode_like_the_standard_examples() {
        assert_eq!(
            oid(&[1, 2, 840, 113549, 1, 1, 1]),
            [6, 9, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 1, 1, 1]
        );
        assert_eq!(oid(&[2, 5, 29, 37, 0]), [6, 4, 0x55, 0x1d, 0x25, 0]);
    }

    #[test]
    fn pem_matches_known_base64() {
        assert_eq!(pem("X", b"Man"), "-----BEGIN X-----\nTWFu\n-----END X-----\n");
        assert_eq!(pem("X", b"Ma"), "-----BEGIN X-----\nTWE=\n-----END X-----\n");
        assert_eq!(pem("X", b"M"), "-----BEGIN X-----\nTQ==\n-----END X-----\n");
        let long = pem("X", &[0u8; 48]);
        assert!(long.lines().nth(1).unwrap().len() == 64 && long.lines().count() == 3);
    }

    #[test]
    fn uint_bits_ignores_sign_padding() {
        assert_eq!(uint_bits(&[0x00, 0x80, 0x00]), 16);
        assert_eq!(uint_bits(&[0x01]), 1);
        assert_eq!(uint_bits(&[]), 0);
    }
}
