//! `keystore.p12` and `truststore.p12`, as cert-manager's `spec.keystores.pkcs12` writes them.
//!
//! cert-manager (pkg/controller/certificates/issuing/internal/keystore.go) encodes with
//! go-pkcs12: `keystore.p12` holds the key (a shrouded PKCS#8 bag) and the leaf, both with a
//! `localKeyId` of the leaf's SHA-1, and then the rest of `tls.crt` and `ca.crt`, no friendly
//! names; `truststore.p12` holds every certificate of `ca.crt`, each with a friendly name (its
//! subject) and Java's trusted-certificate attribute (anyExtendedKeyUsage), and is written
//! only when there is a CA. Certificates go in one encrypted SafeContents, the key in a plain
//! one (the key bag is itself encrypted).
//!
//! The profiles, with go-pkcs12's parameters (its `LegacyRC2`, `LegacyDES`, `Modern2023` and
//! `Modern2026` encoders):
//!
//! | profile | certificates | key | MAC | salt |
//! |---|---|---|---|---|
//! | `LegacyRC2` (default) | pbeWithSHAAnd40BitRC2-CBC, 2048 it. | pbeWithSHAAnd3-KeyTripleDES-CBC, 2048 it. | HMAC-SHA-1, 1 it. | 8 B |
//! | `LegacyDES` | pbeWithSHAAnd3-KeyTripleDES-CBC, 2048 it. | the same | HMAC-SHA-1, 1 it. | 8 B |
//! | `Modern2023` | PBES2: PBKDF2-HMAC-SHA-256, 2048 it., AES-256-CBC | the same | HMAC-SHA-256, 2048 it. | 16 B |
//! | `Modern2026` | as Modern2023 | the same | PBMAC1: PBKDF2-HMAC-SHA-256 (2048 it., 32-byte key), HMAC-SHA-256 | 16 B |
//!
//! The PKCS#12 PBE (RFC 7292 appendix B) and the traditional MAC take the password as a
//! NUL-terminated BMPString; PBES2 and PBMAC1 take it as UTF-8, as go-pkcs12 and OpenSSL do.
//! OpenSSL 3 reads `LegacyRC2` files only with `-legacy`, and PBMAC1 (`Modern2026`) from 3.4 on.

use std::str::FromStr;

use cbc::cipher::{BlockCipherEncrypt, BlockModeEncrypt, KeyInit, KeyIvInit, block_padding::Pkcs7};
use hmac::{Hmac, Mac};
use pkcs12::kdf::{Pkcs12KeyType, derive_key_utf8};
use sha1::{Digest, Sha1};
use sha2::Sha256;
use x509_parser::prelude::FromDer;
use x509_parser::x509::X509Name;

use super::der;
use super::issued::certificate_blocks;
use super::{IssuedCertificate, PkiError, PrivateKey};

/// go-pkcs12's iteration count for key derivation in every profile, and for Modern* MACs.
const ITERATIONS: u32 = 2048;

const DATA: &[u64] = &[1, 2, 840, 113549, 1, 7, 1];
const ENCRYPTED_DATA: &[u64] = &[1, 2, 840, 113549, 1, 7, 6];
const CERT_BAG: &[u64] = &[1, 2, 840, 113549, 1, 12, 10, 1, 3];
const SHROUDED_KEY_BAG: &[u64] = &[1, 2, 840, 113549, 1, 12, 10, 1, 2];
const X509_CERTIFICATE: &[u64] = &[1, 2, 840, 113549, 1, 9, 22, 1];
const FRIENDLY_NAME: &[u64] = &[1, 2, 840, 113549, 1, 9, 20];
const LOCAL_KEY_ID: &[u64] = &[1, 2, 840, 113549, 1, 9, 21];
const JAVA_TRUSTED: &[u64] = &[2, 16, 840, 1, 113894, 746875, 1, 1];
const ANY_EXTENDED_KEY_USAGE: &[u64] = &[2, 5, 29, 37, 0];
const PBE_SHA_3DES: &[u64] = &[1, 2, 840, 113549, 1, 12, 1, 3];
const PBE_SHA_RC2_40: &[u64] = &[1, 2, 840, 113549, 1, 12, 1, 6];
const PBES2: &[u64] = &[1, 2, 840, 113549, 1, 5, 13];
const PBKDF2: &[u64] = &[1, 2, 840, 113549, 1, 5, 12];
const PBMAC1: &[u64] = &[1, 2, 840, 113549, 1, 5, 14];
const HMAC_SHA256: &[u64] = &[1, 2, 840, 113549, 2, 9];
const AES256_CBC: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 1, 42];
const SHA1_OID: &[u64] = &[1, 3, 14, 3, 2, 26];
const SHA256_OID: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 2, 1];

/// cert-manager's `spec.keystores.pkcs12.profile`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Pkcs12Profile {
    /// cert-manager's default.
    #[default]
    LegacyRc2,
    LegacyDes,
    Modern2023,
    Modern2026,
}

impl FromStr for Pkcs12Profile {
    type Err = PkiError;

    /// cert-manager's spellings.
    fn from_str(s: &str) -> Result<Self, PkiError> {
        match s {
            "LegacyRC2" => Ok(Pkcs12Profile::LegacyRc2),
            "LegacyDES" => Ok(Pkcs12Profile::LegacyDes),
            "Modern2023" => Ok(Pkcs12Profile::Modern2023),
            "Modern2026" => Ok(Pkcs12Profile::Modern2026),
            other => Err(PkiError::UnknownPkcs12Profile(other.to_owned())),
        }
    }
}

/// A password-based cipher of a profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cipher {
    /// RFC 7292 appendix B PBE with 40-bit RC2-CBC.
    Rc2_40,
    /// RFC 7292 appendix B PBE with three-key 3DES-CBC.
    TripleDes,
    /// PBES2 with PBKDF2-HMAC-SHA-256 and AES-256-CBC.
    Pbes2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MacKind {
    /// RFC 7292 MAC with HMAC-SHA-1 and one iteration.
    Sha1,
    /// RFC 7292 MAC with HMAC-SHA-256.
    Sha256,
    /// RFC 9579 PBMAC1.
    Pbmac1,
}

impl Pkcs12Profile {
    /// (certificates, key, MAC, salt length).
    fn parameters(self) -> (Cipher, Cipher, MacKind, usize) {
        match self {
            Pkcs12Profile::LegacyRc2 => (Cipher::Rc2_40, Cipher::TripleDes, MacKind::Sha1, 8),
            Pkcs12Profile::LegacyDes => (Cipher::TripleDes, Cipher::TripleDes, MacKind::Sha1, 8),
            Pkcs12Profile::Modern2023 => (Cipher::Pbes2, Cipher::Pbes2, MacKind::Sha256, 16),
            Pkcs12Profile::Modern2026 => (Cipher::Pbes2, Cipher::Pbes2, MacKind::Pbmac1, 16),
        }
    }
}

/// The two PKCS#12 files. Both are encrypted with the password; the key inside the keystore is
/// protected only as well as the password is.
#[derive(Clone, PartialEq, Eq)]
pub struct Pkcs12Bundle {
    /// `keystore.p12`.
    pub keystore: Vec<u8>,
    /// `truststore.p12`; `None` when there is no CA certificate (cert-manager then writes none).
    pub truststore: Option<Vec<u8>>,
}

impl std::fmt::Debug for Pkcs12Bundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs12Bundle")
            .field("keystore", &format_args!("<{} bytes>", self.keystore.len()))
            .field("truststore", &self.truststore.as_ref().map(Vec::len))
            .finish()
    }
}

fn random<const N: usize>() -> Result<[u8; N], PkiError> {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).map_err(|e| PkiError::Random(e.to_string()))?;
    Ok(out)
}

fn random_vec(len: usize) -> Result<Vec<u8>, PkiError> {
    let mut out = vec![0u8; len];
    getrandom::fill(&mut out).map_err(|e| PkiError::Random(e.to_string()))?;
    Ok(out)
}

fn crypto_failed(what: &str) -> PkiError {
    PkiError::Pkcs12(format!("{what} failed"))
}

/// A DER INTEGER of a non-negative value.
fn uint(v: u32) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count().min(3);
    let mut content = Vec::with_capacity(5);
    if bytes[skip] & 0x80 != 0 {
        content.push(0);
    }
    content.extend_from_slice(&bytes[skip..]);
    der::tlv(der::INTEGER, &content)
}

/// `[0] EXPLICIT` around `inner`.
fn explicit0(inner: &[u8]) -> Vec<u8> {
    der::constructed(0xa0, &[inner])
}

/// `SEQUENCE { OID, params }`, or without parameters.
fn algorithm(oid: &[u64], params: Option<&[u8]>) -> Vec<u8> {
    match params {
        Some(p) => der::sequence(&[&der::oid(oid), p]),
        None => der::sequence(&[&der::oid(oid)]),
    }
}

/// `ContentInfo` of type data holding `content` in an OCTET STRING.
fn data_content(content: &[u8]) -> Vec<u8> {
    der::sequence(&[&der::oid(DATA), &explicit0(&der::tlv(der::OCTET_STRING, content))])
}

/// A PKCS#12 PBE cipher (RFC 7292 appendix B.2) in CBC mode with PKCS#7 padding.
fn pbe_cbc<C>(password: &str, salt: &[u8], key_len: usize, data: &[u8]) -> Result<Vec<u8>, PkiError>
where
    C: KeyInit + BlockCipherEncrypt,
{
    let rounds = ITERATIONS as i32;
    let derive = |id, len| {
        derive_key_utf8::<Sha1>(password, salt, id, rounds, len)
            .map_err(|e| PkiError::Pkcs12(format!("password: {e}")))
    };
    let key = zeroize::Zeroizing::new(derive(Pkcs12KeyType::EncryptionKey, key_len)?);
    let iv = derive(Pkcs12KeyType::Iv, 8)?;
    let cipher =
        cbc::Encryptor::<C>::new_from_slices(&key, &iv).map_err(|_| crypto_failed("PBE key setup"))?;
    Ok(cipher.encrypt_padded_vec::<Pkcs7>(data))
}

/// Encrypts `data` with `cipher`: (AlgorithmIdentifier, ciphertext).
fn encrypt(
    cipher: Cipher,
    password: &str,
    salt_len: usize,
    data: &[u8],
) -> Result<(Vec<u8>, Vec<u8>), PkiError> {
    let salt = random_vec(salt_len)?;
    match cipher {
        Cipher::Rc2_40 | Cipher::TripleDes => {
            let params = der::sequence(&[&der::tlv(der::OCTET_STRING, &salt), &uint(ITERATIONS)]);
            let (oid, encrypted) = if cipher == Cipher::Rc2_40 {
                (PBE_SHA_RC2_40, pbe_cbc::<rc2::Rc2>(password, &salt, 5, data)?)
            } else {
                (PBE_SHA_3DES, pbe_cbc::<des::TdesEde3>(password, &salt, 24, data)?)
            };
            Ok((algorithm(oid, Some(&params)), encrypted))
        }
        Cipher::Pbes2 => {
            let iv: [u8; 16] = random()?;
            let mut key = zeroize::Zeroizing::new([0u8; 32]);
            pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &salt, ITERATIONS, &mut *key);
            let encrypted = cbc::Encryptor::<aes::Aes256>::new_from_slices(&*key, &iv)
                .map_err(|_| crypto_failed("AES key setup"))?
                .encrypt_padded_vec::<Pkcs7>(data);
            let kdf_params = der::sequence(&[
                &der::tlv(der::OCTET_STRING, &salt),
                &uint(ITERATIONS),
                &algorithm(HMAC_SHA256, None),
            ]);
            let params = der::sequence(&[
                &algorithm(PBKDF2, Some(&kdf_params)),
                &algorithm(AES256_CBC, Some(&der::tlv(der::OCTET_STRING, &iv))),
            ]);
            Ok((algorithm(PBES2, Some(&params)), encrypted))
        }
    }
}

/// `MacData` over the AuthenticatedSafe's bytes.
fn mac_data(kind: MacKind, password: &str, salt_len: usize, auth_safe: &[u8]) -> Result<Vec<u8>, PkiError> {
    let salt = random_vec(salt_len)?;
    let hmac_failed = |_| crypto_failed("HMAC key setup");
    match kind {
        MacKind::Sha1 | MacKind::Sha256 => {
            let (oid, iterations) = if kind == MacKind::Sha1 {
                (SHA1_OID, 1)
            } else {
                (SHA256_OID, ITERATIONS)
            };
            let derive = |len| {
                derive_key_utf8::<Sha1>(password, &salt, Pkcs12KeyType::Mac, iterations as i32, len)
                    .map_err(|e| PkiError::Pkcs12(format!("password: {e}")))
            };
            let digest = if kind == MacKind::Sha1 {
                let key = zeroize::Zeroizing::new(derive(20)?);
                let mut mac = Hmac::<Sha1>::new_from_slice(&key).map_err(hmac_failed)?;
                mac.update(auth_safe);
                mac.finalize().into_bytes().to_vec()
            } else {
                let key = zeroize::Zeroizing::new(
                    derive_key_utf8::<Sha256>(password, &salt, Pkcs12KeyType::Mac, iterations as i32, 32)
                        .map_err(|e| PkiError::Pkcs12(format!("password: {e}")))?,
                );
                let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(hmac_failed)?;
                mac.update(auth_safe);
                mac.finalize().into_bytes().to_vec()
            };
            let digest_info = der::sequence(&[&algorithm(oid, None), &der::tlv(der::OCTET_STRING, &digest)]);
            // iterations is DEFAULT 1: omitted when 1, as DER requires.
            let iterations = if iterations == 1 {
                Vec::new()
            } else {
                uint(iterations)
            };
            Ok(der::sequence(&[
                &digest_info,
                &der::tlv(der::OCTET_STRING, &salt),
                &iterations,
            ]))
        }
        MacKind::Pbmac1 => {
            let mut key = zeroize::Zeroizing::new([0u8; 32]);
            pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &salt, ITERATIONS, &mut *key);
            let mut mac = Hmac::<Sha256>::new_from_slice(&*key).map_err(hmac_failed)?;
            mac.update(auth_safe);
            let digest = mac.finalize().into_bytes();
            let kdf_params = der::sequence(&[
                &der::tlv(der::OCTET_STRING, &salt),
                &uint(ITERATIONS),
                &uint(32),
                &algorithm(HMAC_SHA256, None),
            ]);
            let params = der::sequence(&[
                &algorithm(PBKDF2, Some(&kdf_params)),
                &algorithm(HMAC_SHA256, None),
            ]);
            let digest_info = der::sequence(&[
                &algorithm(PBMAC1, Some(&params)),
                &der::tlv(der::OCTET_STRING, &digest),
            ]);
            // RFC 9579: macSalt and iterations are ignored with PBMAC1; written as go-pkcs12
            // writes them (empty, 0).
            Ok(der::sequence(&[
                &digest_info,
                &der::tlv(der::OCTET_STRING, &[]),
                &uint(0),
            ]))
        }
    }
}

fn attribute(oid: &[u64], value: &[u8]) -> Vec<u8> {
    der::sequence(&[&der::oid(oid), &der::set_of(vec![value.to_vec()])])
}

fn safe_bag(bag: &[u64], value: &[u8], attributes: Vec<Vec<u8>>) -> Vec<u8> {
    let value = explicit0(value);
    if attributes.is_empty() {
        der::sequence(&[&der::oid(bag), &value])
    } else {
        der::sequence(&[&der::oid(bag), &value, &der::set_of(attributes)])
    }
}

fn cert_bag(cert: &[u8], attributes: Vec<Vec<u8>>) -> Vec<u8> {
    let value = der::sequence(&[
        &der::oid(X509_CERTIFICATE),
        &explicit0(&der::tlv(der::OCTET_STRING, cert)),
    ]);
    safe_bag(CERT_BAG, &value, attributes)
}

/// A BMPString (UTF-16BE); `None` when `s` has characters outside the BMP.
fn bmp_string(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 2);
    for c in s.chars() {
        let unit = u16::try_from(u32::from(c)).ok()?;
        out.extend_from_slice(&unit.to_be_bytes());
    }
    Some(der::tlv(0x1e, &out))
}

/// A certificate's subject as Go's `pkix.Name.String()` prints it (RFC 4514: the last RDN
/// first), the friendly name go-pkcs12 gives trust-store entries.
fn subject_string(cert: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(cert).ok()?;
    Some(rfc4514(cert.subject()))
}

fn rfc4514(name: &X509Name<'_>) -> String {
    let short = |oid: &str| match oid {
        "2.5.4.3" => Some("CN"),
        "2.5.4.5" => Some("SERIALNUMBER"),
        "2.5.4.6" => Some("C"),
        "2.5.4.7" => Some("L"),
        "2.5.4.8" => Some("ST"),
        "2.5.4.9" => Some("STREET"),
        "2.5.4.10" => Some("O"),
        "2.5.4.11" => Some("OU"),
        "2.5.4.17" => Some("POSTALCODE"),
        _ => None,
    };
    let mut rdns: Vec<String> = name
        .iter()
        .map(|rdn| {
            rdn.iter()
                .map(|atv| {
                    let oid = atv.attr_type().to_id_string();
                    match (short(&oid), atv.as_str()) {
                        (Some(key), Ok(value)) => format!("{key}={}", escape(value)),
                        _ => {
                            let hex: String = atv
                                .attr_value()
                                .as_bytes()
                                .iter()
                                .map(|b| format!("{b:02x}"))
                                .collect();
                            format!("{oid}=#{hex}")
                        }
                    }
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    rdns.reverse();
    rdns.join(",")
}

/// RFC 4514 escaping of an attribute value.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == ' ' || c == '#'))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `PFX { version 3, authSafe, macData }` around the AuthenticatedSafe's ContentInfos.
fn pfx(profile: Pkcs12Profile, password: &str, contents: &[&[u8]]) -> Result<Vec<u8>, PkiError> {
    let (_, _, mac, salt_len) = profile.parameters();
    let auth_safe = der::sequence(contents);
    let mac = mac_data(mac, password, salt_len, &auth_safe)?;
    Ok(der::sequence(&[
        &der::small_int(3),
        &data_content(&auth_safe),
        &mac,
    ]))
}

/// The encrypted SafeContents holding `bags`.
fn encrypted_bags(profile: Pkcs12Profile, password: &str, bags: &[Vec<u8>]) -> Result<Vec<u8>, PkiError> {
    let (cipher, _, _, salt_len) = profile.parameters();
    let refs: Vec<&[u8]> = bags.iter().map(Vec::as_slice).collect();
    let (alg, encrypted) = encrypt(cipher, password, salt_len, &der::sequence(&refs))?;
    let info = der::sequence(&[&der::oid(DATA), &alg, &der::tlv(0x80, &encrypted)]);
    let encrypted_data = der::sequence(&[&der::small_int(0), &info]);
    Ok(der::sequence(&[
        &der::oid(ENCRYPTED_DATA),
        &explicit0(&encrypted_data),
    ]))
}

fn certificates(pem: &str) -> Result<Vec<Vec<u8>>, PkiError> {
    certificate_blocks(pem).map_err(PkiError::InvalidPem)
}

impl IssuedCertificate {
    /// `keystore.p12` (key + leaf + intermediates + CA) and `truststore.p12` (CA), in
    /// `profile` (see the module docs).
    pub fn pkcs12(
        &self,
        key: &PrivateKey,
        password: &str,
        profile: Pkcs12Profile,
    ) -> Result<Pkcs12Bundle, PkiError> {
        let mut certs = certificates(&self.tls_crt())?;
        let cas = match self.ca_crt() {
            Some(pem) => certificates(&pem)?,
            None => Vec::new(),
        };
        for ca in &cas {
            // Without a root, ca.crt repeats the top of tls.crt; one copy is enough.
            if !certs.contains(ca) {
                certs.push(ca.clone());
            }
        }
        let Some(leaf) = certs.first() else {
            return Err(PkiError::NoCertificate);
        };
        let local_key_id = attribute(LOCAL_KEY_ID, &der::tlv(der::OCTET_STRING, &Sha1::digest(leaf)));

        let cert_bags: Vec<Vec<u8>> = certs
            .iter()
            .enumerate()
            .map(|(i, cert)| {
                let attributes = if i == 0 {
                    vec![local_key_id.clone()]
                } else {
                    Vec::new()
                };
                cert_bag(cert, attributes)
            })
            .collect();
        let certs_safe = encrypted_bags(profile, password, &cert_bags)?;

        let (_, key_cipher, _, salt_len) = profile.parameters();
        let pkcs8 = key.to_der_pkcs8();
        let (alg, encrypted) = encrypt(key_cipher, password, salt_len, pkcs8.expose())?;
        let shrouded = der::sequence(&[&alg, &der::tlv(der::OCTET_STRING, &encrypted)]);
        let key_bag = safe_bag(SHROUDED_KEY_BAG, &shrouded, vec![local_key_id]);
        let key_safe = data_content(&der::sequence(&[&key_bag]));
        let keystore = pfx(profile, password, &[&certs_safe, &key_safe])?;

        let truststore = if cas.is_empty() {
            None
        } else {
            let trusted = attribute(JAVA_TRUSTED, &der::oid(ANY_EXTENDED_KEY_USAGE));
            let bags: Vec<Vec<u8>> = cas
                .iter()
                .map(|ca| {
                    let mut attributes = vec![trusted.clone()];
                    if let Some(name) = subject_string(ca).as_deref().and_then(bmp_string) {
                        attributes.push(attribute(FRIENDLY_NAME, &name));
                    }
                    cert_bag(ca, attributes)
                })
                .collect();
            let safe = encrypted_bags(profile, password, &bags)?;
            Some(pfx(profile, password, &[&safe])?)
        };
        Ok(Pkcs12Bundle { keystore, truststore })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_minimal_and_positive() {
        assert_eq!(uint(0), [2, 1, 0]);
        assert_eq!(uint(1), [2, 1, 1]);
        assert_eq!(uint(32), [2, 1, 32]);
        assert_eq!(uint(128), [2, 2, 0, 128]);
        assert_eq!(uint(2048), [2, 2, 8, 0]);
        assert_eq!(uint(0x0080_0000), [2, 4, 0, 0x80, 0, 0]);
    }

    #[test]
    fn rfc4514_escapes_and_reverses() {
        assert_eq!(escape(" a,b+c "), "\\ a\\,b\\+c\\ ");
        assert_eq!(escape("#x"), "\\#x");
    }
}
