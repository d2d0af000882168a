//! `keystore.jks` and `truststore.jks`, as cert-manager's `spec.keystores.jks` writes them.
//!
//! What goes in each file (cert-manager, pkg/controller/certificates/issuing/internal/keystore.go):
//! - `keystore.jks`: one private-key entry under the alias (default `certificate`) holding the
//!   key (PKCS#8) and the certificates of `tls.crt` (leaf first); then every certificate of
//!   `ca.crt` as a trusted-certificate entry, aliased `ca`, `ca-1`, `ca-2`, ...
//! - `truststore.jks`: the same trusted-certificate entries alone, written only when there is a
//!   CA.
//!
//! Both are encrypted with the one password (store and key). Aliases are lower-cased, as Java's
//! JKS and cert-manager's JKS library store them. A CA entry whose alias equals the key's
//! alias would replace the key entry in cert-manager; here the key entry is kept and that CA
//! entry left out of `keystore.jks`.
//!
//! The format is Sun's JKS (version 2): magic `FEEDFEED`, entries, and a SHA-1 integrity digest
//! over the password (UTF-16BE), the text "Mighty Aphrodite" and the entries. Private keys are
//! protected with Sun's key protector (OID 1.3.6.1.4.1.42.2.17.1.1): a 20-byte random salt, the
//! key XORed with a SHA-1 keystream of the password and salt, and a SHA-1 check of password and
//! key. That protection is weak by design of the format, as it is in Java; the key sits
//! unencrypted in `tls.key` next to it anyway.

use std::time::{SystemTime, UNIX_EPOCH};

use sha1::{Digest, Sha1};
use zeroize::Zeroizing;

use super::der;
use super::issued::certificate_blocks;
use super::{IssuedCertificate, PkiError, PrivateKey};

/// cert-manager's default alias of the key entry.
pub const JKS_DEFAULT_ALIAS: &str = "certificate";

const MAGIC: u32 = 0xfeed_feed;
const VERSION: u32 = 2;
const TAG_PRIVATE_KEY: u32 = 1;
const TAG_TRUSTED_CERT: u32 = 2;
const KEY_PROTECTOR: &[u64] = &[1, 3, 6, 1, 4, 1, 42, 2, 17, 1, 1];
const INTEGRITY_WHITENER: &[u8] = b"Mighty Aphrodite";
const CERT_TYPE: &str = "X.509";
const SALT_LEN: usize = 20;

/// The two JKS files.
#[derive(Clone, PartialEq, Eq)]
pub struct JksBundle {
    /// `keystore.jks`.
    pub keystore: Vec<u8>,
    /// `truststore.jks`; `None` when there is no CA certificate (cert-manager then writes none).
    pub truststore: Option<Vec<u8>>,
}

impl std::fmt::Debug for JksBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JksBundle")
            .field("keystore", &format_args!("<{} bytes>", self.keystore.len()))
            .field("truststore", &self.truststore.as_ref().map(Vec::len))
            .finish()
    }
}

/// The password as Java hands it to JKS: its UTF-16 code units, big-endian.
fn password_bytes(password: &str) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(password.encode_utf16().flat_map(u16::to_be_bytes).collect())
}

/// A JKS store being written: the entries, then [`Writer::finish`] adds the digest.
struct Writer {
    out: Vec<u8>,
    count: u32,
}

impl Writer {
    fn new() -> Self {
        Writer {
            out: Vec::new(),
            count: 0,
        }
    }

    fn u32(&mut self, v: u32) {
        self.out.extend_from_slice(&v.to_be_bytes());
    }

    /// `DataOutputStream.writeUTF`: a 16-bit length and modified UTF-8 (NUL as two bytes,
    /// characters outside the BMP as two 3-byte surrogates).
    fn utf(&mut self, s: &str) -> Result<(), PkiError> {
        let mut bytes = Vec::with_capacity(s.len());
        for unit in s.encode_utf16() {
            match unit {
                0x0001..=0x007f => bytes.push(unit as u8),
                0x0000 | 0x0080..=0x07ff => {
                    bytes.extend_from_slice(&[0xc0 | (unit >> 6) as u8, 0x80 | (unit & 0x3f) as u8])
                }
                _ => bytes.extend_from_slice(&[
                    0xe0 | (unit >> 12) as u8,
                    0x80 | ((unit >> 6) & 0x3f) as u8,
                    0x80 | (unit & 0x3f) as u8,
                ]),
            }
        }
        let len =
            u16::try_from(bytes.len()).map_err(|_| PkiError::Jks("an alias is longer than 65535 bytes"))?;
        self.out.extend_from_slice(&len.to_be_bytes());
        self.out.extend_from_slice(&bytes);
        Ok(())
    }

    fn bytes(&mut self, data: &[u8]) -> Result<(), PkiError> {
        let len = u32::try_from(data.len()).map_err(|_| PkiError::Jks("an entry is larger than 4 GiB"))?;
        self.u32(len);
        self.out.extend_from_slice(data);
        Ok(())
    }

    fn certificate(&mut self, der: &[u8]) -> Result<(), PkiError> {
        self.utf(CERT_TYPE)?;
        self.bytes(der)
    }

    fn private_key(
        &mut self,
        alias: &str,
        created: u64,
        protected_key: &[u8],
        chain: &[Vec<u8>],
    ) -> Result<(), PkiError> {
        self.u32(TAG_PRIVATE_KEY);
        self.utf(alias)?;
        self.out.extend_from_slice(&created.to_be_bytes());
        self.bytes(protected_key)?;
        let count = u32::try_from(chain.len()).map_err(|_| PkiError::Jks("the chain is too long"))?;
        self.u32(count);
        for cert in chain {
            self.certificate(cert)?;
        }
        self.count += 1;
        Ok(())
    }

    fn trusted(&mut self, alias: &str, created: u64, der: &[u8]) -> Result<(), PkiError> {
        self.u32(TAG_TRUSTED_CERT);
        self.utf(alias)?;
        self.out.extend_from_slice(&created.to_be_bytes());
        self.certificate(der)?;
        self.count += 1;
        Ok(())
    }

    /// Header, entries and the integrity digest.
    fn finish(self, password: &[u8]) -> Vec<u8> {
        let mut store = Vec::with_capacity(12 + self.out.len() + 20);
        store.extend_from_slice(&MAGIC.to_be_bytes());
        store.extend_from_slice(&VERSION.to_be_bytes());
        store.extend_from_slice(&self.count.to_be_bytes());
        store.extend_from_slice(&self.out);
        let digest = Sha1::new()
            .chain_update(password)
            .chain_update(INTEGRITY_WHITENER)
            .chain_update(&store)
            .finalize();
        store.extend_from_slice(&digest);
        store
    }
}

/// Sun's JKS key protection of a PKCS#8 key with `salt`, as an `EncryptedPrivateKeyInfo`.
fn protect_key(pkcs8: &[u8], password: &[u8], salt: [u8; SALT_LEN]) -> Vec<u8> {
    let mut protected = Vec::with_capacity(SALT_LEN + pkcs8.len() + 20);
    protected.extend_from_slice(&salt);
    let mut stream: [u8; 20] = salt;
    for chunk in pkcs8.chunks(20) {
        stream = Sha1::new()
            .chain_update(password)
            .chain_update(stream)
            .finalize()
            .into();
        protected.extend(chunk.iter().zip(stream).map(|(k, s)| k ^ s));
    }
    let check = Sha1::new().chain_update(password).chain_update(pkcs8).finalize();
    protected.extend_from_slice(&check);
    let algorithm = der::sequence(&[&der::oid(KEY_PROTECTOR), &[der::NULL, 0]]);
    der::sequence(&[&algorithm, &der::tlv(der::OCTET_STRING, &protected)])
}

/// The trusted-certificate aliases cert-manager gives the certificates of `ca.crt`.
fn ca_alias(index: usize) -> String {
    match index {
        0 => "ca".to_owned(),
        n => format!("ca-{n}"),
    }
}

fn millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl IssuedCertificate {
    /// `keystore.jks` and `truststore.jks` (see the module docs). `alias` is the key entry's
    /// alias (`spec.keystores.jks.alias`, default [`JKS_DEFAULT_ALIAS`]); `created` the entries'
    /// creation date.
    pub fn jks(
        &self,
        key: &PrivateKey,
        password: &str,
        alias: &str,
        created: SystemTime,
    ) -> Result<JksBundle, PkiError> {
        let mut salt = [0u8; SALT_LEN];
        getrandom::fill(&mut salt).map_err(|e| PkiError::Random(e.to_string()))?;
        self.jks_with_salt(key, password, alias, created, salt)
    }

    fn jks_with_salt(
        &self,
        key: &PrivateKey,
        password: &str,
        alias: &str,
        created: SystemTime,
        salt: [u8; SALT_LEN],
    ) -> Result<JksBundle, PkiError> {
        let password = password_bytes(password);
        let created = millis(created);
        let alias = alias.to_lowercase();
        let chain = certificate_blocks(&self.tls_crt()).map_err(PkiError::InvalidPem)?;
        let cas = match self.ca_crt() {
            Some(pem) => certificate_blocks(&pem).map_err(PkiError::InvalidPem)?,
            None => Vec::new(),
        };

        let mut keystore = Writer::new();
        let pkcs8 = key.to_der_pkcs8();
        keystore.private_key(
            &alias,
            created,
            &protect_key(pkcs8.expose(), &password, salt),
            &chain,
        )?;
        for (i, ca) in cas.iter().enumerate() {
            let ca_alias = ca_alias(i);
            if ca_alias != alias {
                keystore.trusted(&ca_alias, created, ca)?;
            }
        }
        let keystore = keystore.finish(&password);

        let truststore = if cas.is_empty() {
            None
        } else {
            let mut store = Writer::new();
            for (i, ca) in cas.iter().enumerate() {
                store.trusted(&ca_alias(i), created, ca)?;
            }
            Some(store.finish(&password))
        };
        Ok(JksBundle { keystore, truststore })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Java's `DataOutputStream.writeUTF` of "a\0é€😀": NUL as C0 80, the emoji as two
    /// 3-byte surrogates.
    #[test]
    fn modified_utf8_as_java_writes_it() {
        let mut w = Writer::new();
        w.utf("a\0é€😀").unwrap();
        assert_eq!(
            w.out,
            [
                0, 14, b'a', 0xc0, 0x80, 0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xed, 0xa0, 0xbd, 0xed, 0xb8, 0x80
            ]
        );
        let long = "x".repeat(65_536);
        assert!(matches!(Writer::new().utf(&long), Err(PkiError::Jks(_))));
    }

    #[test]
    fn password_is_utf16_big_endian() {
        assert_eq!(*password_bytes("aé"), vec![0, b'a', 0, 0xe9]);
    }

    /// The key protector's layout: salt, key XOR SHA-1(password || previous), SHA-1 check.
    #[test]
    fn key_protection_inverts() {
        let password = password_bytes("changeit");
        let key: Vec<u8> = (0..=100u8).collect();
        let salt = [7u8; SALT_LEN];
        let wrapped = protect_key(&key, &password, salt);
        let (body, _) = der::read(&wrapped).unwrap();
        let parts = der::elements(body.content).unwrap();
        let alg = der::elements(parts[0].content).unwrap();
        assert_eq!(alg[0].content, der::oid_content(KEY_PROTECTOR));
        let protected = parts[1].content;
        assert_eq!(&protected[..SALT_LEN], &salt);
        let (xored, check) = protected[SALT_LEN..].split_at(key.len());
        let mut stream: [u8; 20] = salt;
        let mut plain = Vec::new();
        for chunk in xored.chunks(20) {
            stream = Sha1::new()
                .chain_update(&*password)
                .chain_update(stream)
                .finalize()
                .into();
            plain.extend(chunk.iter().zip(stream).map(|(c, s)| c ^ s));
        }
        assert_eq!(plain, key);
        assert_eq!(
            check,
            Sha1::new()
                .chain_update(&*password)
                .chain_update(&key)
                .finalize()
                .as_slice()
        );
    }
}
