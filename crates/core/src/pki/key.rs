//! Private keys: generation, reading existing keys, and PEM/DER in cert-manager's encodings.
//!
//! A key is held twice: as an rcgen [`KeyPair`] (which signs) and as its parsed parts, from which
//! PKCS#8, PKCS#1 and SEC1 are re-encoded on demand. rcgen only writes PKCS#8 and stores whatever
//! DER it was given, so the encodings cert-manager writes for `privateKey.encoding: PKCS1` ("RSA
//! PRIVATE KEY", and SEC1 "EC PRIVATE KEY" for ECDSA) are built here. Encodings are canonical and
//! match Go's `x509.Marshal*PrivateKey`: PKCS#8 v1 without attributes, EC inner keys without
//! curve parameters inside PKCS#8 but with them in SEC1, public keys included.

use std::fmt;

use rcgen::{KeyPair, PublicKeyData, SignatureAlgorithm, SigningKey};
use x509_parser::pem::Pem;
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;
use zeroize::Zeroizing;

use super::der::{self, Malformed};
use super::{PkiError, SecretBytes};
use crate::Secret;

const RSA_ENCRYPTION: &[u64] = &[1, 2, 840, 113549, 1, 1, 1];
const EC_PUBLIC_KEY: &[u64] = &[1, 2, 840, 10045, 2, 1];
const ED25519: &[u64] = &[1, 3, 101, 112];
const P256: &[u64] = &[1, 2, 840, 10045, 3, 1, 7];
const P384: &[u64] = &[1, 3, 132, 0, 34];
const P521: &[u64] = &[1, 3, 132, 0, 35];

/// Key type and size, as in cert-manager's `privateKey.algorithm` and `privateKey.size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyAlgorithm {
    /// RSA with a modulus of this many bits: 2048 to 8192, any size in between, as cert-manager.
    Rsa(u32),
    /// ECDSA on the NIST curve of this size: 256, 384 or 521.
    Ecdsa(u32),
    Ed25519,
}

/// `privateKey.encoding`. PKCS1 is PKCS#1 for RSA and SEC1 for ECDSA; Ed25519 is always PKCS#8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum KeyEncoding {
    /// cert-manager's default.
    #[default]
    Pkcs1,
    Pkcs8,
}

/// The CSR signature algorithm for a key, chosen as cert-manager does: SHA-256/384/512 for RSA
/// below 3072 / below 4096 / from 4096 bits, and the curve's own hash for ECDSA.
pub(crate) struct SignatureChoice {
    pub rcgen: &'static SignatureAlgorithm,
    oid: &'static [u64],
    null_params: bool,
}

impl SignatureChoice {
    /// The DER `AlgorithmIdentifier` of the signature.
    pub fn algorithm_identifier(&self) -> Vec<u8> {
        let oid = der::oid(self.oid);
        if self.null_params {
            der::sequence(&[&oid, &[der::NULL, 0]])
        } else {
            der::sequence(&[&oid])
        }
    }
}

impl KeyAlgorithm {
    pub(crate) fn signature(self) -> Result<SignatureChoice, PkiError> {
        let (rcgen, oid, null_params): (_, &'static [u64], _) = match self {
            KeyAlgorithm::Rsa(bits) if !(rsa_keys::MIN_BITS..=rsa_keys::MAX_BITS).contains(&bits) => {
                return Err(PkiError::UnsupportedAlgorithm(format!(
                    "{self}: RSA keys must have {} to {} bits",
                    rsa_keys::MIN_BITS,
                    rsa_keys::MAX_BITS
                )));
            }
            KeyAlgorithm::Rsa(4096..) => (&rcgen::PKCS_RSA_SHA512, &[1, 2, 840, 113549, 1, 1, 13], true),
            KeyAlgorithm::Rsa(3072..) => (&rcgen::PKCS_RSA_SHA384, &[1, 2, 840, 113549, 1, 1, 12], true),
            KeyAlgorithm::Rsa(_) => (&rcgen::PKCS_RSA_SHA256, &[1, 2, 840, 113549, 1, 1, 11], true),
            KeyAlgorithm::Ecdsa(256) => (
                &rcgen::PKCS_ECDSA_P256_SHA256,
                &[1, 2, 840, 10045, 4, 3, 2],
                false,
            ),
            KeyAlgorithm::Ecdsa(384) => (
                &rcgen::PKCS_ECDSA_P384_SHA384,
                &[1, 2, 840, 10045, 4, 3, 3],
                false,
            ),
            KeyAlgorithm::Ecdsa(521) => (
                &rcgen::PKCS_ECDSA_P521_SHA512,
                &[1, 2, 840, 10045, 4, 3, 4],
                false,
            ),
            KeyAlgorithm::Ecdsa(_) => {
                return Err(PkiError::UnsupportedAlgorithm(format!(
                    "{self}: ECDSA sizes are 256, 384 and 521"
                )));
            }
            KeyAlgorithm::Ed25519 => (&rcgen::PKCS_ED25519, ED25519, false),
        };
        Ok(SignatureChoice {
            rcgen,
            oid,
            null_params,
        })
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyAlgorithm::Rsa(bits) => write!(f, "RSA {bits}"),
            KeyAlgorithm::Ecdsa(bits) => write!(f, "ECDSA P-{bits}"),
            KeyAlgorithm::Ed25519 => f.write_str("Ed25519"),
        }
    }
}

/// The key's parts, from which every encoding is rebuilt.
enum Material {
    Rsa {
        pkcs1: Zeroizing<Vec<u8>>,
    },
    Ec {
        curve: &'static [u64],
        scalar: Zeroizing<Vec<u8>>,
        public: Vec<u8>,
    },
    Ed25519 {
        seed: Zeroizing<Vec<u8>>,
    },
}

/// A private key. `Debug` shows only the algorithm; encodings come back as [`Secret`] or
/// [`SecretBytes`], which are wiped on drop.
pub struct PrivateKey {
    pair: KeyPair,
    algorithm: KeyAlgorithm,
    material: Material,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

fn malformed(m: Malformed) -> PkiError {
    PkiError::MalformedKey(m.0)
}

fn curve_bits(curve: &[u8]) -> Result<(&'static [u64], u32), PkiError> {
    [(P256, 256), (P384, 384), (P521, 521)]
        .into_iter()
        .find(|(arcs, _)| der::oid_content(arcs) == curve)
        .ok_or_else(|| {
            PkiError::UnsupportedAlgorithm("ECDSA on a curve other than P-256, P-384, P-521".into())
        })
}

/// Reads `RSAPrivateKey` (PKCS#1) far enough to learn the modulus size.
fn parse_pkcs1(pkcs1: &[u8]) -> Result<(KeyAlgorithm, Material), PkiError> {
    let body =
        der::read_single(pkcs1, der::SEQUENCE, "RSAPrivateKey is not a SEQUENCE").map_err(malformed)?;
    let parts = der::elements(body).map_err(malformed)?;
    let modulus = parts
        .get(1)
        .ok_or(Malformed("RSAPrivateKey has no modulus"))
        .and_then(|m| m.expect(der::INTEGER, "RSA modulus is not an INTEGER"))
        .map_err(malformed)?;
    let algorithm = KeyAlgorithm::Rsa(der::uint_bits(modulus));
    Ok((
        algorithm,
        Material::Rsa {
            pkcs1: Zeroizing::new(pkcs1.to_vec()),
        },
    ))
}

/// Reads `ECPrivateKey` (SEC1, RFC 5915). The curve comes from its own parameters or, inside
/// PKCS#8, from the outer algorithm identifier.
fn parse_sec1(sec1: &[u8], outer_curve: Option<&[u8]>) -> Result<(KeyAlgorithm, Material), PkiError> {
    let body = der::read_single(sec1, der::SEQUENCE, "ECPrivateKey is not a SEQUENCE").map_err(malformed)?;
    let parts = der::elements(body).map_err(malformed)?;
    let scalar = parts
        .get(1)
        .ok_or(Malformed("ECPrivateKey has no private key"))
        .and_then(|p| p.expect(der::OCTET_STRING, "EC private key is not an OCTET STRING"))
        .map_err(malformed)?;
    let mut curve = outer_curve;
    let mut public = Vec::new();
    for part in &parts[2..] {
        match part.tag {
            0xa0 => {
                curve = Some(
                    der::read_single(part.content, der::OID, "EC parameters are not a named curve")
                        .map_err(malformed)?,
                )
            }
            0xa1 => {
                let bits =
                    der::read_single(part.content, der::BIT_STRING, "EC public key is not a BIT STRING")
                        .map_err(malformed)?;
                public = bits.get(1..).unwrap_or_default().to_vec();
            }
            _ => return Err(PkiError::MalformedKey("unexpected field in ECPrivateKey")),
        }
    }
    let (curve, bits) = curve_bits(curve.ok_or(PkiError::MalformedKey("EC private key names no curve"))?)?;
    let scalar = Zeroizing::new(scalar.to_vec());
    Ok((
        KeyAlgorithm::Ecdsa(bits),
        Material::Ec {
            curve,
            scalar,
            public,
        },
    ))
}

/// Reads `PrivateKeyInfo`/`OneAsymmetricKey` (PKCS#8 v1 or v2).
fn parse_pkcs8(pkcs8: &[u8]) -> Result<(KeyAlgorithm, Material), PkiError> {
    let body = der::read_single(pkcs8, der::SEQUENCE, "PKCS#8 key is not a SEQUENCE").map_err(malformed)?;
    let parts = der::elements(body).map_err(malformed)?;
    let (Some(alg), Some(private)) = (parts.get(1), parts.get(2)) else {
        return Err(PkiError::MalformedKey("PKCS#8 key is incomplete"));
    };
    let alg = der::elements(
        alg.expect(der::SEQUENCE, "PKCS#8 algorithm is not a SEQUENCE")
            .map_err(malformed)?,
    )
    .map_err(malformed)?;
    let private = private
        .expect(der::OCTET_STRING, "PKCS#8 private key is not an OCTET STRING")
        .map_err(malformed)?;
    let oid = alg
        .first()
        .ok_or(PkiError::MalformedKey("PKCS#8 algorithm has no OID"))?
        .content;
    if oid == der::oid_content(RSA_ENCRYPTION) {
        parse_pkcs1(private)
    } else if oid == der::oid_content(EC_PUBLIC_KEY) {
        let curve = alg.get(1).filter(|p| p.tag == der::OID).map(|p| p.content);
        parse_sec1(private, curve)
    } else if oid == der::oid_content(ED25519) {
        let seed = der::read_single(private, der::OCTET_STRING, "Ed25519 key is not an OCTET STRING")
            .map_err(malformed)?;
        if seed.len() != 32 {
            return Err(PkiError::MalformedKey("Ed25519 private key is not 32 bytes"));
        }
        Ok((
            KeyAlgorithm::Ed25519,
            Material::Ed25519 {
                seed: Zeroizing::new(seed.to_vec()),
            },
        ))
    } else {
        Err(PkiError::UnsupportedAlgorithm(
            "PKCS#8 key that is not RSA, ECDSA or Ed25519".into(),
        ))
    }
}

/// RSA key generation for every size cert-manager accepts. aws-lc (through aws-lc-rs) generates
/// the sizes it offers (2048, 3072, 4096, 8192: the common ones, and 8192 in seconds rather
/// than a minute); RustCrypto's `rsa` generates the others (6144, or any size in between, as
/// Go's `rsa.GenerateKey` does for cert-manager). Either way the key is then loaded into aws-lc,
/// which signs with it.
mod rsa_keys {
    use ::rsa::pkcs1::EncodeRsaPrivateKey;
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::rsa::{KeyPair, KeySize};

    use super::{KeyAlgorithm, Material, parse_pkcs1, parse_pkcs8};

    /// cert-manager's bounds (`MinRSAKeySize`, `MaxRSAKeySize`).
    pub const MIN_BITS: u32 = 2048;
    pub const MAX_BITS: u32 = 8192;

    /// A new RSA key of exactly `bits` bits; `Err` says why not.
    pub fn generate(bits: u32) -> Result<(KeyAlgorithm, Material), String> {
        if !(MIN_BITS..=MAX_BITS).contains(&bits) {
            return Err(format!("RSA keys must have {MIN_BITS} to {MAX_BITS} bits"));
        }
        let aws_lc_size = match bits {
            2048 => Some(KeySize::Rsa2048),
            3072 => Some(KeySize::Rsa3072),
            4096 => Some(KeySize::Rsa4096),
            8192 => Some(KeySize::Rsa8192),
            _ => None,
        };
        match aws_lc_size {
            Some(size) => {
                let pair = KeyPair::generate(size).map_err(|e| e.to_string())?;
                let pkcs8 = pair.as_der().map_err(|e| e.to_string())?;
                parse_pkcs8(pkcs8.as_ref()).map_err(|e| e.to_string())
            }
            None => {
                let bits = usize::try_from(bits).map_err(|e| e.to_string())?;
                let key = ::rsa::PrivateKey::new(&mut getrandom::SysRng, bits).map_err(|e| e.to_string())?;
                let pkcs1 = key.to_pkcs1_der().map_err(|e| e.to_string())?;
                parse_pkcs1(pkcs1.as_bytes()).map_err(|e| e.to_string())
            }
        }
    }
}

impl Material {
    fn pkcs8(&self) -> Zeroizing<Vec<u8>> {
        let v0 = der::small_int(0);
        let (alg, inner) = match self {
            Material::Rsa { pkcs1 } => (
                der::sequence(&[&der::oid(RSA_ENCRYPTION), &[der::NULL, 0]]),
                pkcs1.clone(),
            ),
            Material::Ec { curve, .. } => (
                der::sequence(&[&der::oid(EC_PUBLIC_KEY), &der::oid(curve)]),
                self.sec1(false),
            ),
            Material::Ed25519 { seed } => (
                der::sequence(&[&der::oid(ED25519)]),
                Zeroizing::new(der::tlv(der::OCTET_STRING, seed)),
            ),
        };
        let inner = Zeroizing::new(der::tlv(der::OCTET_STRING, &inner));
        der::secret_constructed(der::SEQUENCE, &[&v0, &alg, &inner])
    }

    /// SEC1 `ECPrivateKey`; `with_curve` for the standalone form ("EC PRIVATE KEY").
    fn sec1(&self, with_curve: bool) -> Zeroizing<Vec<u8>> {
        let Material::Ec {
            curve,
            scalar,
            public,
        } = self
        else {
            return Zeroizing::new(Vec::new());
        };
        let scalar = Zeroizing::new(der::tlv(der::OCTET_STRING, scalar));
        let params = if with_curve {
            der::tlv(0xa0, &der::oid(curve))
        } else {
            Vec::new()
        };
        let public = if public.is_empty() {
            Vec::new()
        } else {
            der::tlv(0xa1, &der::bit_string(public, 0))
        };
        der::secret_constructed(der::SEQUENCE, &[&der::small_int(1), &scalar, &params, &public])
    }
}

impl PrivateKey {
    /// Generates a new key: RSA of any size cert-manager accepts (2048 to 8192 bits), ECDSA
    /// P-256/P-384/P-521 or Ed25519. An 8192-bit RSA key takes seconds: callers on an async
    /// runtime run this on a blocking thread.
    pub fn generate(algorithm: KeyAlgorithm) -> Result<Self, PkiError> {
        let choice = algorithm.signature()?;
        let failed = |reason: String| PkiError::KeyGeneration { algorithm, reason };
        let (parsed, material, pair) = match algorithm {
            KeyAlgorithm::Rsa(bits) => {
                let (parsed, material) = rsa_keys::generate(bits).map_err(failed)?;
                (parsed, material, None)
            }
            _ => {
                let generated = KeyPair::generate_for(choice.rcgen).map_err(|e| failed(e.to_string()))?;
                // rcgen hands out its PKCS#8; re-reading it canonicalises (Ed25519 v2 -> v1)
                // and builds the parts every encoding is made from.
                let (parsed, material) = parse_pkcs8(generated.serialized_der())?;
                (parsed, material, Some(generated))
            }
        };
        if parsed != algorithm {
            return Err(failed(format!("generated a {parsed} key")));
        }
        Self::assemble_with(parsed, material, pair)
    }

    /// Reads an existing key (re-used when `rotationPolicy: Never`): PKCS#1 "RSA PRIVATE KEY", SEC1
    /// "EC PRIVATE KEY" or PKCS#8 "PRIVATE KEY". Other PEM blocks (certificates, "EC PARAMETERS")
    /// are skipped, so a combined PEM file works too.
    pub fn from_pem(pem: &str) -> Result<Self, PkiError> {
        if pem.contains("Proc-Type: 4,ENCRYPTED") {
            return Err(PkiError::UnsupportedKeyFormat("encrypted legacy PEM".into()));
        }
        let mut found = None;
        for block in Pem::iter_from_buffer(pem.as_bytes()) {
            let block = block.map_err(|e| PkiError::InvalidPem(e.to_string()))?;
            if !block.label.ends_with("PRIVATE KEY") {
                continue;
            }
            if found.is_some() {
                return Err(PkiError::MultiplePrivateKeys);
            }
            found = Some((block.label, Zeroizing::new(block.contents)));
        }
        let (label, der) = found.ok_or(PkiError::NoPrivateKey)?;
        let (algorithm, material) = match label.as_str() {
            "PRIVATE KEY" => parse_pkcs8(&der)?,
            "RSA PRIVATE KEY" => parse_pkcs1(&der)?,
            "EC PRIVATE KEY" => parse_sec1(&der, None)?,
            _ => return Err(PkiError::UnsupportedKeyFormat(label)),
        };
        Self::assemble(algorithm, material)
    }

    fn assemble(algorithm: KeyAlgorithm, material: Material) -> Result<Self, PkiError> {
        Self::assemble_with(algorithm, material, None)
    }

    /// `pair`: the signing key when it already exists (a key just generated: parsing its PKCS#8
    /// again would only repeat aws-lc's key checks).
    fn assemble_with(
        algorithm: KeyAlgorithm,
        mut material: Material,
        pair: Option<KeyPair>,
    ) -> Result<Self, PkiError> {
        let pair = match pair {
            Some(pair) => pair,
            None => {
                let choice = algorithm.signature()?;
                let pkcs8 = material.pkcs8();
                KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8.as_slice().into(), choice.rcgen)
                    .map_err(|e| PkiError::KeyRejected(e.to_string()))?
            }
        };
        if let Material::Ec { public, .. } = &mut material {
            if public.is_empty() {
                *public = pair.der_bytes().to_vec();
            } else if public.as_slice() != pair.der_bytes() {
                return Err(PkiError::KeyRejected(
                    "EC public key does not belong to the private key".into(),
                ));
            }
        }
        Ok(PrivateKey {
            pair,
            algorithm,
            material,
        })
    }

    /// The key's algorithm and size.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// PEM as cert-manager writes `tls.key` for the given encoding.
    pub fn to_pem(&self, encoding: KeyEncoding) -> Secret {
        let (label, der) = self.encoded(encoding);
        Secret::new(der::pem(label, &der))
    }

    /// DER in the given encoding: the content of the `tls.key` PEM block (cert-manager's `key.der`).
    pub fn to_der(&self, encoding: KeyEncoding) -> SecretBytes {
        let (_, mut der) = self.encoded(encoding);
        SecretBytes::new(std::mem::take(&mut *der))
    }

    /// Unencrypted PKCS#8 DER, whatever the configured encoding.
    pub fn to_der_pkcs8(&self) -> SecretBytes {
        self.to_der(KeyEncoding::Pkcs8)
    }

    fn encoded(&self, encoding: KeyEncoding) -> (&'static str, Zeroizing<Vec<u8>>) {
        match (encoding, &self.material) {
            (KeyEncoding::Pkcs1, Material::Rsa { pkcs1 }) => ("RSA PRIVATE KEY", pkcs1.clone()),
            (KeyEncoding::Pkcs1, Material::Ec { .. }) => ("EC PRIVATE KEY", self.material.sec1(true)),
            _ => ("PRIVATE KEY", self.material.pkcs8()),
        }
    }

    /// The DER SubjectPublicKeyInfo, for matching against certificates and CSRs.
    pub fn public_key_der(&self) -> Vec<u8> {
        self.pair.subject_public_key_info()
    }

    /// Whether a DER SubjectPublicKeyInfo holds this key's public key. Compares the algorithm and
    /// the key bits, not the raw encoding, so an absent-vs-NULL RSA parameter does not matter.
    pub fn matches_public_key(&self, spki_der: &[u8]) -> bool {
        let ours = self.public_key_der();
        match (
            SubjectPublicKeyInfo::from_der(spki_der),
            SubjectPublicKeyInfo::from_der(&ours),
        ) {
            (Ok((_, theirs)), Ok((_, ours))) => {
                theirs.algorithm.algorithm == ours.algorithm.algorithm
                    && theirs.subject_public_key.data == ours.subject_public_key.data
            }
            _ => false,
        }
    }

    /// Signs `message` with the key's CSR signature algorithm.
    pub(crate) fn sign(&self, message: &[u8]) -> Result<Vec<u8>, PkiError> {
        self.pair
            .sign(message)
            .map_err(|e| PkiError::Signing(e.to_string()))
    }

    /// The rcgen key pair, for the test CA.
    #[cfg(test)]
    pub(crate) fn key_pair(&self) -> &KeyPair {
        &self.pair
    }
}
