//! Test PKI material made with rcgen: a CA, a server certificate for OpenBao's TLS listener, a
//! trusted client certificate and an untrusted one (signed by an unrelated CA), plus CSRs for
//! signing tests and ready-made reqwest clients.
//!
//! All keys are ECDSA P-256. Validity is rcgen's default (1975..4096), which every verifier accepts.

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// The common name of the trusted client certificate.
pub const CLIENT_CN: &str = "certkeeper-client";
const TEST_CA_CN: &str = "certkeeper test CA";

/// PEM material for a TLS-enabled test server and its clients.
#[derive(Debug, Clone)]
pub struct TestTls {
    /// The test CA that signed the server and the trusted client certificate.
    pub ca_pem: String,
    /// The test CA's private key (PKCS#8), to sign more certificates.
    pub ca_key_pem: String,
    /// Server certificate: SANs localhost, vault.test, IP 127.0.0.1.
    pub server_cert_pem: String,
    pub server_key_pem: String,
    /// Client certificate, CN "certkeeper-client", signed by the test CA.
    pub client_cert_pem: String,
    pub client_key_pem: String,
    /// A CA unrelated to the server, and a client certificate it signed.
    pub untrusted_ca_pem: String,
    pub untrusted_client_cert_pem: String,
    pub untrusted_client_key_pem: String,
}

/// Which client certificate [`TestTls::https_client`] presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientCert {
    None,
    Trusted,
    Untrusted,
}

fn ca_params(cn: &str) -> Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new()).context("CA params")?;
    params.distinguished_name.push(DnType::CommonName, cn);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "certkeeper tests");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}

fn leaf(
    issuer: &Issuer<'_, KeyPair>,
    cn: &str,
    sans: &[&str],
    eku: ExtendedKeyUsagePurpose,
) -> Result<(String, String)> {
    let key = KeyPair::generate().context("generating a leaf key")?;
    let mut params = CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .with_context(|| format!("leaf params for {cn}"))?;
    params.distinguished_name.push(DnType::CommonName, cn);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![eku];
    params.use_authority_key_identifier_extension = true;
    let cert = params
        .signed_by(&key, issuer)
        .with_context(|| format!("signing {cn}"))?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn new_ca(cn: &str) -> Result<(String, Issuer<'static, KeyPair>)> {
    let key = KeyPair::generate().context("generating a CA key")?;
    let params = ca_params(cn)?;
    let cert = params.self_signed(&key).context("self-signing the CA")?;
    Ok((cert.pem(), Issuer::new(params, key)))
}

impl TestTls {
    /// Generates a fresh set of CA, server, client and untrusted-client material.
    pub fn generate() -> Result<Self> {
        let (ca_pem, issuer) = new_ca(TEST_CA_CN)?;
        let ca_key_pem = issuer.key().serialize_pem();
        let (server_cert_pem, server_key_pem) = leaf(
            &issuer,
            "localhost",
            &["localhost", "vault.test", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        )?;
        let (client_cert_pem, client_key_pem) =
            leaf(&issuer, CLIENT_CN, &[], ExtendedKeyUsagePurpose::ClientAuth)?;
        let (untrusted_ca_pem, untrusted) = new_ca("unrelated CA")?;
        let (untrusted_client_cert_pem, untrusted_client_key_pem) =
            leaf(&untrusted, CLIENT_CN, &[], ExtendedKeyUsagePurpose::ClientAuth)?;
        Ok(Self {
            ca_pem,
            ca_key_pem,
            server_cert_pem,
            server_key_pem,
            client_cert_pem,
            client_key_pem,
            untrusted_ca_pem,
            untrusted_client_cert_pem,
            untrusted_client_key_pem,
        })
    }

    /// Signs another client certificate (clientAuth) with the test CA: (cert_pem, key_pem).
    pub fn sign_client_cert(&self, cn: &str) -> Result<(String, String)> {
        let key = KeyPair::from_pem(&self.ca_key_pem).context("parsing the test CA key")?;
        // Same subject and key as the CA certificate, so the issuer name and AKI match it.
        let issuer = Issuer::new(ca_params(TEST_CA_CN)?, key);
        leaf(&issuer, cn, &[], ExtendedKeyUsagePurpose::ClientAuth)
    }

    /// Certificate then key, as one PEM (what `reqwest::Identity::from_pem` takes).
    pub fn client_identity_pem(&self) -> String {
        format!("{}{}", self.client_cert_pem, self.client_key_pem)
    }

    /// The untrusted client's certificate then key, as one PEM.
    pub fn untrusted_identity_pem(&self) -> String {
        format!(
            "{}{}",
            self.untrusted_client_cert_pem, self.untrusted_client_key_pem
        )
    }

    /// A reqwest client that trusts only the test CA and presents the chosen client certificate.
    pub fn https_client(&self, cert: ClientCert) -> Result<reqwest::Client> {
        let ca = reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).context("test CA for reqwest")?;
        let mut builder = crate::admin::client_builder().tls_certs_only([ca]);
        let identity = match cert {
            ClientCert::None => None,
            ClientCert::Trusted => Some(self.client_identity_pem()),
            ClientCert::Untrusted => Some(self.untrusted_identity_pem()),
        };
        if let Some(pem) = identity {
            builder =
                builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).context("client identity")?);
        }
        builder.build().context("building an https client")
    }
}

/// A PKCS#10 CSR (PEM) for `cn` with DNS/IP SANs `sans`, with a new P-256 key: (csr_pem, key_pem).
pub fn csr_p256(cn: &str, sans: &[&str]) -> Result<(String, String)> {
    let key = KeyPair::generate().context("generating a CSR key")?;
    let mut params = CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .with_context(|| format!("CSR params for {cn}"))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    let csr = params.serialize_request(&key).context("serializing the CSR")?;
    Ok((csr.pem().context("CSR to PEM")?, key.serialize_pem()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::{ParsedExtension, X509Certificate};

    fn parse(pem: &str) -> Vec<u8> {
        x509_parser::pem::parse_x509_pem(pem.as_bytes())
            .unwrap()
            .1
            .contents
    }

    fn aki(cert: &X509Certificate<'_>) -> Vec<u8> {
        cert.extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::AuthorityKeyIdentifier(a) => a.key_identifier.as_ref().map(|k| k.0.to_vec()),
                _ => None,
            })
            .unwrap()
    }

    fn ski(cert: &X509Certificate<'_>) -> Vec<u8> {
        cert.extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
                _ => None,
            })
            .unwrap()
    }

    #[test]
    fn server_cert_has_the_sans_and_chains_to_the_ca() {
        let tls = TestTls::generate().unwrap();
        let (ca_der, server_der) = (parse(&tls.ca_pem), parse(&tls.server_cert_pem));
        let ca = x509_parser::parse_x509_certificate(&ca_der).unwrap().1;
        let server = x509_parser::parse_x509_certificate(&server_der).unwrap().1;
        let san = server.subject_alternative_name().unwrap().unwrap().value;
        let names: Vec<String> = san.general_names.iter().map(|n| n.to_string()).collect();
        assert!(names.iter().any(|n| n.contains("localhost")), "{names:?}");
        assert!(names.iter().any(|n| n.contains("vault.test")), "{names:?}");
        assert!(names.iter().any(|n| n.contains("7f:00:00:01")), "{names:?}");
        assert!(ca.is_ca());
        assert_eq!(server.issuer(), ca.subject());
        assert_eq!(aki(&server), ski(&ca));

        let client_der = parse(&tls.client_cert_pem);
        let client = x509_parser::parse_x509_certificate(&client_der).unwrap().1;
        assert!(client.subject().to_string().contains(CLIENT_CN));
        assert_eq!(aki(&client), ski(&ca));

        let other_der = parse(&tls.untrusted_client_cert_pem);
        let other = x509_parser::parse_x509_certificate(&other_der).unwrap().1;
        assert_ne!(aki(&other), ski(&ca));

        let (extra_pem, _) = tls.sign_client_cert("another").unwrap();
        let extra_der = parse(&extra_pem);
        let extra = x509_parser::parse_x509_certificate(&extra_der).unwrap().1;
        assert_eq!(extra.issuer(), ca.subject());
        assert_eq!(aki(&extra), ski(&ca));
    }

    #[test]
    fn csr_parses() {
        let (csr, key) = csr_p256("a.example.com", &["a.example.com"]).unwrap();
        assert!(csr.starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
        assert!(key.contains("PRIVATE KEY"));
    }
}
