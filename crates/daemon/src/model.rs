//! What the standalone runtime knows about each certificate beyond the engine's job: where its
//! files go and which extra formats cert-manager's spec asks for.

use certkeeper_core::pki::Pkcs12Profile;
use certkeeper_vault::SecretSource;

use crate::config::CertOutput;

/// Output settings of one certificate.
#[derive(Debug, Clone)]
pub struct CertMeta {
    /// `spec.secretName` (names the default output directory).
    pub secret_name: String,
    pub output: CertOutput,
    /// `additionalOutputFormats: [{type: CombinedPEM}]` -> tls-combined.pem
    pub combined_pem: bool,
    /// `additionalOutputFormats: [{type: DER}]` -> key.der
    pub der: bool,
    /// `keystores.pkcs12` with `create: true` -> keystore.p12 (+ truststore.p12).
    pub pkcs12: Option<Pkcs12Output>,
}

/// A PKCS#12 keystore to write, with its password's source.
#[derive(Debug, Clone)]
pub struct Pkcs12Output {
    pub password: SecretSource,
    pub profile: Pkcs12Profile,
}
