//! What the standalone runtime knows about each certificate beyond the engine's job: where its
//! files go and which extra formats cert-manager's spec asks for.

use certkeeper_engine::outputs::OutputFormats;

use crate::config::CertOutput;

/// Output settings of one certificate.
#[derive(Debug, Clone)]
pub struct CertMeta {
    /// `spec.secretName` (names the default output directory).
    pub secret_name: String,
    pub output: CertOutput,
    /// Optional formats (combined PEM, DER, PKCS#12), named as cert-manager names them.
    pub formats: OutputFormats,
}
