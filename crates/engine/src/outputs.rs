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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::{Duration, SystemTime};

    use certkeeper_core::pki::{KeyAlgorithm, PrivateKey, verify_issued};
    use certkeeper_core::spec::{Certificate, Resource, parse_documents};

    use super::*;
    use crate::build::output_formats;

    fn certificate(keystores: &str) -> Certificate {
        let yaml = format!(
            "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {{name: web, namespace: default}}\nspec:\n  secretName: web-tls\n  commonName: web.example.com\n  issuerRef: {{name: vault}}\n  keystores: {keystores}\n"
        );
        match parse_documents("cert.yaml", &yaml).unwrap().remove(0) {
            Resource::Certificate(cert) => *cert,
            other => panic!("not a Certificate: {}", other.kind()),
        }
    }

    fn issued() -> Issued {
        let key = PrivateKey::generate(KeyAlgorithm::Ecdsa(256)).unwrap();
        let key_pem = key.to_pem(KeyEncoding::Pkcs8);
        let pair = rcgen::KeyPair::from_pem(key_pem.expose()).unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["web.example.com".to_owned()]).unwrap();
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::seconds(60);
        params.not_after = now + time::Duration::seconds(3600);
        let crt = params.self_signed(&pair).unwrap().pem();
        let certificate =
            verify_issued(&crt, &[], &key, Duration::from_secs(3600), SystemTime::now()).unwrap();
        Issued {
            key,
            key_pem,
            csr_pem: String::new(),
            certificate,
            revision: 1,
        }
    }

    /// `keystores.jks` becomes `keystore.jks` (a private item, the key inside) for both runtimes,
    /// with the literal password and the default alias; the password of a `passwordSecretRef`
    /// comes from the runtime's resolver, named by its field. Without a CA there is no trust
    /// store, as in cert-manager. Before, `keystores.jks` was refused and never written.
    #[tokio::test]
    async fn jks_is_one_more_output_of_both_runtimes() {
        let cert = certificate("{jks: {create: true, password: s3cret}}");
        let formats = output_formats(&cert, |_, _| unreachable!("no reference")).unwrap();
        let jks = formats.jks.as_ref().unwrap();
        assert_eq!(jks.alias, "certificate");
        assert!(formats.pkcs12.is_none());

        let items = output_items(&formats, &issued(), KeyEncoding::Pkcs8)
            .await
            .unwrap();
        let names: Vec<_> = items.iter().map(|i| (i.name, i.private)).collect();
        assert_eq!(names, [(TLS_CRT, false), (TLS_KEY, true), (KEYSTORE_JKS, true)]);
        let store = &items[2].contents;
        assert_eq!(store[..4], [0xfe, 0xed, 0xfe, 0xed], "JKS magic");

        // A stored JKS no longer asked for is removed by the runtimes.
        assert!(CONDITIONAL.contains(&KEYSTORE_JKS) && CONDITIONAL.contains(&TRUSTSTORE_JKS));

        let cert = certificate(
            "{jks: {create: true, alias: Mine, passwordSecretRef: {name: ks, key: pw}}, pkcs12: {create: true, profile: Modern2026, password: p}}",
        );
        let mut asked = Vec::new();
        let formats = output_formats(&cert, |field, sel| {
            asked.push((field, sel.name.clone(), sel.key.clone()));
            Ok(SecretSource::value("from-the-runtime"))
        })
        .unwrap();
        assert_eq!(
            asked,
            [(
                "spec.keystores.jks.passwordSecretRef",
                "ks".to_owned(),
                "pw".to_owned()
            )]
        );
        assert_eq!(formats.jks.as_ref().unwrap().alias, "Mine");
        assert_eq!(
            formats.pkcs12.as_ref().unwrap().profile,
            Pkcs12Profile::Modern2026
        );
        let items = output_items(&formats, &issued(), KeyEncoding::Pkcs8)
            .await
            .unwrap();
        let names: Vec<_> = items.iter().map(|i| i.name).collect();
        assert_eq!(names, [TLS_CRT, TLS_KEY, KEYSTORE_P12, KEYSTORE_JKS]);

        // create: false writes nothing.
        let cert = certificate("{jks: {create: false, password: s3cret}}");
        assert!(
            output_formats(&cert, |_, _| unreachable!())
                .unwrap()
                .jks
                .is_none()
        );
    }
}
