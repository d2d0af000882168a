//! PKI sign requests and answers, in the shape cert-manager uses.
//!
//! cert-manager posts `common_name`, `alt_names`, `ip_sans`, `uri_sans`, `ttl`, `csr` and
//! `exclude_cn_from_sans=true` to the issuer's `path` (`<mount>/sign/<role>` or
//! `<mount>/issuer/<ref>/sign/<role>`); so does certkeeper. Only the CSR leaves the machine.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What to ask Vault to sign.
#[derive(Clone, Default)]
pub struct SignRequest {
    /// PEM-encoded PKCS#10 request.
    pub csr_pem: String,
    pub common_name: Option<String>,
    pub dns_names: Vec<String>,
    pub ip_sans: Vec<String>,
    pub uri_sans: Vec<String>,
    /// Requested lifetime; Vault caps it at the role's max_ttl and says so in `warnings`.
    pub ttl: Option<Duration>,
}

impl fmt::Debug for SignRequest {
    // The CSR is not secret, but it is bulky and identifying: keep it out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignRequest")
            .field("csr_pem", &"<pem>")
            .field("common_name", &self.common_name)
            .field("dns_names", &self.dns_names)
            .field("ip_sans", &self.ip_sans)
            .field("uri_sans", &self.uri_sans)
            .field("ttl", &self.ttl)
            .finish()
    }
}

/// The JSON body of a sign request, borrowing the CSR.
#[derive(Serialize)]
pub(crate) struct SignBody<'a> {
    csr: &'a str,
    common_name: &'a str,
    alt_names: String,
    ip_sans: String,
    uri_sans: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    ttl: Option<String>,
    exclude_cn_from_sans: bool,
}

impl SignRequest {
    pub(crate) fn body(&self) -> SignBody<'_> {
        SignBody {
            csr: &self.csr_pem,
            common_name: self.common_name.as_deref().unwrap_or_default(),
            alt_names: self.dns_names.join(","),
            ip_sans: self.ip_sans.join(","),
            uri_sans: self.uri_sans.join(","),
            ttl: self.ttl.map(|ttl| format!("{}s", ttl.as_secs().max(1))),
            exclude_cn_from_sans: true,
        }
    }
}

/// Vault's answer to a sign request.
#[derive(Debug, Clone)]
pub struct SignedCertificate {
    /// The leaf certificate, PEM.
    pub certificate_pem: String,
    /// The CA that issued the leaf, PEM.
    pub issuing_ca_pem: String,
    /// Issuing CA first, then its issuers up to the root when Vault knows them, PEM each.
    pub ca_chain_pem: Vec<String>,
    /// Colon-separated hex, as Vault prints it.
    pub serial_number: String,
    /// notAfter as Unix seconds, from Vault's answer (the certificate itself is authoritative).
    pub expiration: i64,
    /// Warnings Vault attached to a successful answer (e.g. the TTL was capped).
    pub warnings: Vec<String>,
}

impl SignedCertificate {
    /// Vault's warning that it shortened the requested TTL to the role's or mount's maximum.
    /// Not an error: the certificate is valid, only shorter than asked for.
    pub fn ttl_capped_warning(&self) -> Option<&str> {
        self.warnings
            .iter()
            .map(String::as_str)
            .find(|w| w.contains("is longer than permitted") || w.contains("is being used"))
    }
}

#[derive(Deserialize)]
pub(crate) struct SignAnswer {
    data: Option<SignData>,
    #[serde(default)]
    warnings: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct SignData {
    certificate: String,
    #[serde(default)]
    issuing_ca: String,
    #[serde(default)]
    ca_chain: Option<Vec<String>>,
    #[serde(default)]
    serial_number: String,
    #[serde(default)]
    expiration: i64,
}

/// Check a decoded sign answer. `Err` carries the reason for a decode error.
pub(crate) fn parse_sign_answer(answer: SignAnswer) -> Result<SignedCertificate, String> {
    let data = answer.data.ok_or("sign answer has no data")?;
    if !data.certificate.contains("-----BEGIN CERTIFICATE-----") {
        return Err("sign answer's certificate is not PEM".into());
    }
    Ok(SignedCertificate {
        certificate_pem: data.certificate,
        issuing_ca_pem: data.issuing_ca,
        ca_chain_pem: data.ca_chain.unwrap_or_default(),
        serial_number: data.serial_number,
        expiration: data.expiration,
        warnings: answer.warnings.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn body_matches_what_cert_manager_sends() {
        let req = SignRequest {
            csr_pem: "-----BEGIN CERTIFICATE REQUEST-----".into(),
            common_name: Some("a.example.com".into()),
            dns_names: vec!["a.example.com".into(), "b.example.com".into()],
            ip_sans: vec!["127.0.0.1".into()],
            uri_sans: vec!["spiffe://example.com/a".into()],
            ttl: Some(Duration::from_secs(3600)),
        };
        let body = serde_json::to_value(req.body()).unwrap();
        assert_eq!(body["alt_names"], "a.example.com,b.example.com");
        assert_eq!(body["ip_sans"], "127.0.0.1");
        assert_eq!(body["uri_sans"], "spiffe://example.com/a");
        assert_eq!(body["ttl"], "3600s");
        assert_eq!(body["exclude_cn_from_sans"], true);
        assert!(!format!("{req:?}").contains("BEGIN"));
    }

    #[test]
    fn answers_with_capped_ttl_are_success_with_a_warning() {
        let body = json!({
            "data": {"certificate": "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----",
                     "issuing_ca": "ca", "ca_chain": ["ca", "root"], "serial_number": "aa:bb",
                     "expiration": 1798238760},
            "warnings": ["TTL \"10000h0m0s\" is longer than permitted maxTTL \"720h0m0s\", so maxTTL is being used"]
        });
        let signed = parse_sign_answer(serde_json::from_value(body).unwrap()).unwrap();
        assert_eq!(signed.ca_chain_pem.len(), 2);
        assert!(signed.ttl_capped_warning().unwrap().contains("maxTTL"));
        let parse = |v| parse_sign_answer(serde_json::from_value(v).unwrap());
        assert!(parse(json!({"data": null})).is_err());
        assert!(parse(json!({"data": {"certificate": "<html>"}})).is_err());
    }
}
