//! What an issued certificate is stored as, for both runtimes: the keys of the Kubernetes
//! Secret and the file names of the standalone output directory are the same names
//! (cert-manager's), with the same contents.
//!
//! - always `tls.crt` (leaf + intermediates) and `tls.key` (in the spec's encoding), and
//!   `ca.crt` when Vault returned a CA;
//! - `additionalOutputFormats`: `tls-combined.pem` (key + "\n" + chain, as cert-manager writes
//!   it) and `key.der`;
//! - `keystores.pkcs12` with `create: true`: `keystore.p12` and, with a CA, `truststore.p12`;
//! - `keystores.jks` with `create: true`: `keystore.jks` and, with a CA, `truststore.jks`.

use certkeeper_core::pki::{KeyEncoding, Pkcs12Profile};
use certkeeper_core::spec::{CertificateSpec, OutputFormat};
use certkeeper_vault::SecretSource;

use crate::job::{Issued, RuntimeError};

pub const TLS_CRT: &str = "tls.crt";
pub const TLS_KEY: &str = "tls.key";
pub const CA_CRT: &str = "ca.crt";
pub const COMBINED_PEM: &str = "tls-combined.pem";
pub const KEY_DER: &str = "key.der";
pub const KEYSTORE_P12: &str = "keystore.p12";
pub const TRUSTSTORE_P12: &str = "truststore.p12";
pub const KEYSTORE_JKS: &str = "keystore.jks";
pub const TRUSTSTORE_JKS: &str = "truststore.jks";

/// Items written only in some cases: a runtime removes those a write did not produce, so a
/// format no longer asked for goes away.
pub const CONDITIONAL: [&str; 7] = [
    CA_CRT,
    COMBINED_PEM,
    KEY_DER,
    KEYSTORE_P12,
    TRUSTSTORE_P12,
    KEYSTORE_JKS,
    TRUSTSTORE_JKS,
];

/// A PKCS#12 keystore to write, with its password's source (read at every write).
#[derive(Debug, Clone)]
pub struct Pkcs12Output {
    pub password: SecretSource,
    pub profile: Pkcs12Profile,
}

/// A JKS keystore to write: its password's source (read at every write) and the key entry's
/// alias.
#[derive(Debug, Clone)]
pub struct JksOutput {
    pub password: SecretSource,
    pub alias: String,
}

/// The optional formats a Certificate asks for.
#[derive(Debug, Clone, Default)]
pub struct OutputFormats {
    /// `additionalOutputFormats: [{type: CombinedPEM}]`
    pub combined_pem: bool,
    /// `additionalOutputFormats: [{type: DER}]`
    pub der: bool,
    /// `keystores.pkcs12` with `create: true`.
    pub pkcs12: Option<Pkcs12Output>,
    /// `keystores.jks` with `create: true`.
    pub jks: Option<JksOutput>,
}

impl OutputFormats {
    /// Runtimes build this through [`crate::build::output_formats`], which resolves the
    /// keystores' passwords.
    pub(crate) fn new(spec: &CertificateSpec, pkcs12: Option<Pkcs12Output>, jks: Option<JksOutput>) -> Self {
        let asks = |format: OutputFormat| spec.additional_output_formats.iter().any(|f| f.format == format);
        OutputFormats {
            combined_pem: asks(OutputFormat::CombinedPEM),
            der: asks(OutputFormat::Der),
            pkcs12,
            jks,
        }
    }
}

/// One stored item of an issued certificate.
#[derive(Clone)]
pub struct OutputItem {
    pub name: &'static str,
    pub contents: Vec<u8>,
    /// Holds the private key (or a keystore): written with the key's file mode.
    pub private: bool,
}

impl std::fmt::Debug for OutputItem {
    // Contents may be a private key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputItem")
            .field("name", &self.name)
            .field("bytes", &self.contents.len())
            .field("private", &self.private)
            .finish()
    }
}

/// Everything `issued` is stored as under `formats` (see the module docs). Fails only when a
/// keystore password cannot be read (invalid until its source changes) or a keystore cannot be
/// built. JKS entries are dated with the certificate's notBefore.
pub async fn output_items(
    formats: &OutputFormats,
    issued: &Issued,
    encoding: KeyEncoding,
) -> Result<Vec<OutputItem>, RuntimeError> {
    let cert = &issued.certificate;
    let item = |name, contents, private| OutputItem {
        name,
        contents,
        private,
    };
    let mut items = vec![
        item(TLS_CRT, cert.tls_crt().into_bytes(), false),
        item(TLS_KEY, issued.key_pem.expose().as_bytes().to_vec(), true),
    ];
    if let Some(ca) = cert.ca_crt() {
        items.push(item(CA_CRT, ca.into_bytes(), false));
    }
    if formats.combined_pem {
        let pem = cert.combined_pem(&issued.key, encoding);
        items.push(item(COMBINED_PEM, pem.expose().as_bytes().to_vec(), true));
    }
    if formats.der {
        let der = cert.der_key(&issued.key, encoding);
        items.push(item(KEY_DER, der.expose().to_vec(), true));
    }
    if let Some(p12) = &formats.pkcs12 {
        let password = p12.password.read().await.map_err(|e| RuntimeError {
            class: e.class(),
            message: format!("spec.keystores.pkcs12 password: {e}"),
        })?;
        let bundle = cert
            .pkcs12(&issued.key, password.expose(), p12.profile)
            .map_err(|e| RuntimeError {
                class: e.class(),
                message: format!("cannot build the PKCS#12 keystore: {e}"),
            })?;
        items.push(item(KEYSTORE_P12, bundle.keystore, true));
        if let Some(trust) = bundle.truststore {
            items.push(item(TRUSTSTORE_P12, trust, false));
        }
    }
    if let Some(jks) = &formats.jks {
        let password = jks.password.read().await.map_err(|e| RuntimeError {
            class: e.class(),
            message: format!("spec.keystores.jks password: {e}"),
        })?;
        let bundle = cert
            .jks(&issued.key, password.expose(), &jks.alias, cert.not_before)
            .map_err(|e| RuntimeError {
                class: e.class(),
                message: format!("cannot build the JKS keystore: {e}"),
            })?;
        items.push(item(KEYSTORE_JKS, bundle.keystore, true));
        if let Some(trust) = bundle.truststore {
            items.push(item(TRUSTSTORE_JKS, trust, false));
        }
    }
    Ok(items)
}
