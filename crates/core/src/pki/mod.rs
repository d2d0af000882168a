//! Keys, CSRs, issued-certificate checks and output formats, with cert-manager's semantics.
//!
//! certkeeper generates keys locally and sends only a CSR to Vault (`sign`, never `issue`), so the
//! private key never leaves the machine. What comes back is checked before anything is written
//! ([`verify_issued`]): a certificate whose public key is not ours, that is expired, or whose chain
//! does not link up is a failure, not a success. Outputs follow cert-manager byte for byte where
//! cert-manager defines them (`tls.crt`, `ca.crt`, `tls-combined.pem`, `key.der`,
//! `keystore.p12`/`truststore.p12`) so that consumers migrating from cert-manager see no change.
//!
//! Everything here is pure: no files, no network, no clock (`now` is always a parameter). The API
//! takes plain parameters rather than spec types so that the spec layer maps onto it and tests do
//! not need manifests.
//!
//! Crypto comes from rcgen on aws-lc-rs (key generation, parsing, signing); certificates are read
//! with x509-parser; RSA sizes aws-lc does not generate come from RustCrypto's `rsa`. PKCS#12 and
//! JKS stores are written here (`pkcs12`, `jks`) with RustCrypto's ciphers, MACs and PKCS#12 KDF,
//! because no crate writes go-pkcs12's exact profiles; those and the few other DER structures no
//! library exposes (PKCS#1/SEC1 conversion, the CSR body) go through the small `der` helper.

mod csr;
mod der;
mod inspect;
mod issued;
mod jks;
mod key;
mod names;
mod pkcs12;
mod request;
mod requested;
mod subject;

#[cfg(test)]
mod tests;

use std::fmt;

use zeroize::Zeroize;

use crate::FailureClass;

/// Re-exported from [`crate::time`], the one place times are formatted, for the controller's
/// modules that still import it from here.
pub use csr::{CsrRequest, ExtendedKeyUsage, KeyUsage, Subject, Usage, build_csr, parse_usages};
pub use inspect::{CertSummary, certificate_ders, describe_der, describe_pem_bundle};
pub use issued::{IssuedCertificate, NOT_BEFORE_SKEW, SHORTENED_MIN_TOLERANCE, verify_issued};
pub use jks::{JKS_DEFAULT_ALIAS, JksBundle};
pub use key::{KeyAlgorithm, KeyEncoding, PrivateKey};
pub use names::{CidrError, IpRange, NameConstraints, NameSubtrees, Oid, OidSyntaxError, OtherName};
pub use pkcs12::{Pkcs12Bundle, Pkcs12Profile};
pub use request::{RequestCheckError, check_request};
pub use requested::{Requested, read_csr};
pub use subject::{AttributeType, DnError, LiteralSubject, MAX_BER_DEPTH, SubjectAttribute};

/// Why a key, CSR or output could not be produced.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// The algorithm or size is not one certkeeper can generate or use.
    #[error("unsupported key algorithm {0}")]
    UnsupportedAlgorithm(String),
    /// The crypto library failed to generate a key (an RNG failure; not expected).
    #[error("generating a {algorithm} key failed: {reason}")]
    KeyGeneration { algorithm: KeyAlgorithm, reason: String },
    /// The PEM data holds no private key block.
    #[error("no private key found in the PEM data")]
    NoPrivateKey,
    /// The PEM data holds several private keys; which one is meant is ambiguous.
    #[error("the PEM data holds more than one private key")]
    MultiplePrivateKeys,
    /// The PEM block is a private key in a format certkeeper does not read.
    #[error(
        "unsupported private key format {0:?}: expected PKCS#1 \"RSA PRIVATE KEY\", SEC1 \
         \"EC PRIVATE KEY\" or PKCS#8 \"PRIVATE KEY\" (encrypted keys are not supported)"
    )]
    UnsupportedKeyFormat(String),
    /// The key's DER structure is not what its label promises.
    #[error("malformed private key: {0}")]
    MalformedKey(&'static str),
    /// The crypto library refused the key (inconsistent, too small, unknown curve).
    #[error("private key rejected: {0}")]
    KeyRejected(String),
    /// PEM armour that does not decode.
    #[error("invalid PEM: {0}")]
    InvalidPem(String),
    /// cert-manager's rule: a request needs a subject CN or at least one SAN.
    #[error("a certificate request needs a common name or at least one subject alternative name")]
    EmptyRequest,
    /// DNS names, URIs and e-mail addresses are IA5String (ASCII) in X.509.
    #[error("{field} {value:?} is not ASCII: internationalised names must be punycode or percent-encoded")]
    NonAscii { field: &'static str, value: String },
    /// An OID that parses but that X.690 cannot encode (cert-manager's webhook accepts these
    /// too; its CSR builder fails the same way).
    #[error("OID {oid} cannot be encoded: {reason}")]
    InvalidOid { oid: String, reason: &'static str },
    /// A literalSubject attribute type that is neither a known name nor an OID.
    #[error(
        "literalSubject attribute type {0:?} is not a known name (C, O, OU, CN, SERIALNUMBER, L, ST, STREET, DC, UID) or an OID"
    )]
    UnknownSubjectAttribute(String),
    /// A subject value that is neither PrintableString nor valid UTF-8 (from an escape or a
    /// `#hex` value in literalSubject).
    #[error("subject value {0:?} is not valid UTF-8")]
    SubjectNotUtf8(String),
    /// A literal subject given together with subject fields it would replace.
    #[error("literalSubject cannot be combined with {0}")]
    LiteralSubjectConflict(&'static str),
    /// A usage string that is not one of cert-manager's.
    #[error("unknown key usage {0:?}")]
    UnknownUsage(String),
    /// Signing the CSR failed inside the crypto library (not expected).
    #[error("signing the certificate request failed: {0}")]
    Signing(String),
    /// The PEM data holds no certificate.
    #[error("no certificate found in the PEM data")]
    NoCertificate,
    /// A certificate block does not parse.
    #[error("certificate {index} in the PEM data does not parse: {reason}")]
    InvalidCertificate { index: usize, reason: String },
    /// A PKCS#12 profile name cert-manager does not define.
    #[error("unknown PKCS#12 profile {0:?}: expected LegacyRC2, LegacyDES, Modern2023 or Modern2026")]
    UnknownPkcs12Profile(String),
    /// A cipher or MAC of the PKCS#12 store could not be set up (not expected).
    #[error("encoding the PKCS#12 store failed: {0}")]
    Pkcs12(String),
    /// The JKS store cannot hold this (an alias longer than the format allows).
    #[error("encoding the JKS store failed: {0}")]
    Jks(&'static str),
    /// The system's random number generator failed (salts, IVs).
    #[error("the random number generator failed: {0}")]
    Random(String),
    /// A certificate request (PEM) that does not parse.
    #[error("the certificate request does not parse: {0}")]
    InvalidCsr(String),
}

impl PkiError {
    /// Crypto-library failures may pass; everything else is our input and waits for a change.
    pub fn class(&self) -> FailureClass {
        match self {
            PkiError::KeyGeneration { .. }
            | PkiError::Signing(_)
            | PkiError::Pkcs12(_)
            | PkiError::Random(_) => FailureClass::Transient,
            _ => FailureClass::Invalid,
        }
    }
}

/// Why an issued certificate was refused. Each variant is named after the check that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// The answer's certificate field holds no PEM certificate.
    #[error("the issued answer contains no certificate")]
    NoCertificate,
    /// A PEM block is damaged.
    #[error("the issued answer's PEM does not decode: {0}")]
    InvalidPem(String),
    /// The leaf does not parse as X.509.
    #[error("the issued certificate does not parse: {0}")]
    InvalidLeaf(String),
    /// A certificate of the returned chain does not parse.
    #[error("CA certificate {index} of the returned chain does not parse: {reason}")]
    InvalidChain { index: usize, reason: String },
    /// Vault signed some other key (wrong CSR, or a bug somewhere between).
    #[error("certificate public key does not match the private key")]
    KeyMismatch,
    /// Already expired on arrival (e.g. the CA itself is expired, or a clock is far off).
    #[error("certificate expired at {} (now {})", crate::time::rfc3339(*.not_after), crate::time::rfc3339(*.now))]
    Expired {
        not_after: std::time::SystemTime,
        now: std::time::SystemTime,
    },
    /// notBefore lies further in the future than clock skew explains.
    #[error(
        "certificate is not valid before {}, more than the allowed clock skew after now ({})",
        crate::time::rfc3339(*.not_before),
        crate::time::rfc3339(*.now)
    )]
    NotYetValid {
        not_before: std::time::SystemTime,
        now: std::time::SystemTime,
    },
    /// The certificates do not form a single chain from the leaf (cert-manager refuses these too).
    #[error("certificate chain is malformed or broken: {0}")]
    BrokenChain(String),
}

impl CertError {
    /// Vault answered, but with something unusable: the slow schedule, never terminal.
    pub fn class(&self) -> FailureClass {
        FailureClass::Rejected
    }
}

/// Secret bytes (a DER private key): `Debug` prints a placeholder, the bytes are wiped on drop.
///
/// The byte counterpart of [`crate::Secret`]; read it with [`SecretBytes::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    pub(crate) fn new(bytes: Vec<u8>) -> Self {
        SecretBytes(bytes)
    }

    /// The secret bytes. Call sites must not log them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretBytes(\"...\")")
    }
}

impl Drop for SecretBytes {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}
