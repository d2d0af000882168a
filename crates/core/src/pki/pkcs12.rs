//! `keystore.p12` and `truststore.p12`, as cert-manager's `spec.keystores.pkcs12` writes them.
//!
//! cert-manager (pkg/controller/certificates/issuing/internal/keystore.go) puts the key, the leaf,
//! the rest of `tls.crt` and then `ca.crt` into `keystore.p12`, and `ca.crt` alone, marked as a
//! trusted certificate for Java, into `truststore.p12` (written only when there is a CA).
//!
//! Profiles map onto p12-keystore, which uses one cipher for key and certificate bags:
//! - `Modern2023`: PBES2 (PBKDF2-HMAC-SHA-256, AES-256-CBC), HMAC-SHA-256 MAC, 2048 iterations,
//!   the same parameters as go-pkcs12's Modern2023.
//! - `LegacyDES`: pbeWithSHAAnd3-KeyTripleDES-CBC for keys and certificates, HMAC-SHA-1 MAC.
//! - `LegacyRC2` (cert-manager's default): go-pkcs12 encrypts certificates with 40-bit RC2 and the
//!   key with 3DES. p12-keystore cannot mix ciphers, and 40-bit RC2 over the key bag would make the
//!   key recoverable by brute force, so this profile is written like LegacyDES. Readers that
//!   accept LegacyRC2 files read 3DES certificate bags too.

use std::str::FromStr;

use p12_keystore::{
    Certificate, EncryptionAlgorithm, KeyStore, KeyStoreEntry, MacAlgorithm, PrivateKeyChain,
};

use super::issued::certificate_blocks;
use super::{IssuedCertificate, PkiError, PrivateKey};

/// The alias (friendlyName) of the key entry; cert-manager's JKS default alias.
pub const KEYSTORE_ALIAS: &str = "certificate";

/// The alias of the CA entry in the trust store; cert-manager's JKS trust store uses "ca".
pub const TRUSTSTORE_ALIAS: &str = "ca";

/// go-pkcs12 uses 2048 iterations for both key derivation and MAC in the profiles we mirror.
const ITERATIONS: u32 = 2048;

/// cert-manager's `spec.keystores.pkcs12.profile`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Pkcs12Profile {
    /// cert-manager's default. Written like LegacyDES; see the module documentation.
    #[default]
    LegacyRc2,
    LegacyDes,
    Modern2023,
}

impl FromStr for Pkcs12Profile {
    type Err = PkiError;

    /// cert-manager's spellings. "Modern2026" (newer cert-manager) is refused: p12-keystore has no
    /// PBMAC1.
    fn from_str(s: &str) -> Result<Self, PkiError> {
        match s {
            "LegacyRC2" => Ok(Pkcs12Profile::LegacyRc2),
            "LegacyDES" => Ok(Pkcs12Profile::LegacyDes),
            "Modern2023" => Ok(Pkcs12Profile::Modern2023),
            other => Err(PkiError::UnknownPkcs12Profile(other.to_owned())),
        }
    }
}

impl Pkcs12Profile {
    fn algorithms(self) -> (EncryptionAlgorithm, MacAlgorithm) {
        match self {
            Pkcs12Profile::LegacyRc2 | Pkcs12Profile::LegacyDes => (
                EncryptionAlgorithm::PbeWithShaAnd3KeyTripleDesCbc,
                MacAlgorithm::HmacSha1,
            ),
            Pkcs12Profile::Modern2023 => (
                EncryptionAlgorithm::PbeWithHmacSha256AndAes256,
                MacAlgorithm::HmacSha256,
            ),
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

fn p12_cert(pem: &str) -> Result<Vec<Certificate>, PkiError> {
    let blocks = certificate_blocks(pem).map_err(PkiError::InvalidPem)?;
    blocks
        .iter()
        .enumerate()
        .map(|(index, der)| {
            Certificate::from_der(der).map_err(|e| PkiError::InvalidCertificate {
                index,
                reason: e.to_string(),
            })
        })
        .collect()
}

fn write(store: &KeyStore, password: &str, profile: Pkcs12Profile) -> Result<Vec<u8>, PkiError> {
    let (encryption, mac) = profile.algorithms();
    store
        .writer(password)
        .encryption_algorithm(encryption)
        .encryption_iterations(ITERATIONS)
        .mac_algorithm(mac)
        .mac_iterations(ITERATIONS)
        .write()
        .map_err(|e| PkiError::Pkcs12(e.to_string()))
}

impl IssuedCertificate {
    /// `keystore.p12` (key + leaf + intermediates + CA) and `truststore.p12` (CA).
    pub fn pkcs12(
        &self,
        key: &PrivateKey,
        password: &str,
        profile: Pkcs12Profile,
    ) -> Result<Pkcs12Bundle, PkiError> {
        let mut certs = p12_cert(&self.tls_crt())?;
        let ca = match self.ca_crt() {
            Some(pem) => p12_cert(&pem)?,
            None => Vec::new(),
        };
        for cert in &ca {
            // Without a root, ca.crt repeats the top of tls.crt; one copy is enough.
            if !certs.iter().any(|c| c.as_der() == cert.as_der()) {
                certs.push(cert.clone());
            }
        }
        let key_der = key.to_der_pkcs8();
        let p12_key = p12_keystore::PrivateKey::from_der(key_der.expose())
            .map_err(|e| PkiError::Pkcs12(format!("key: {e}")))?;
        // localKeyId links the key bag to the leaf's certificate bag; the serial is unique enough.
        let local_key_id = self.serial.clone().into_bytes();

        let mut keystore = KeyStore::new();
        keystore.add_entry(
            KEYSTORE_ALIAS,
            KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(local_key_id, p12_key, certs)),
        );
        let keystore = write(&keystore, password, profile)?;

        let truststore = match ca.into_iter().next() {
            Some(ca) => {
                let mut store = KeyStore::new();
                store.add_entry(TRUSTSTORE_ALIAS, KeyStoreEntry::Certificate(ca));
                Some(write(&store, password, profile)?)
            }
            None => None,
        };
        Ok(Pkcs12Bundle { keystore, truststore })
    }
}
