//! The one STS call certkeeper makes itself: `AssumeRoleWithWebIdentity`, which turns a web
//! identity token (IRSA's token file, or a ServiceAccount token for `serviceAccountRef`) into
//! temporary credentials. It is unsigned (the token is the proof), a form POST answered in XML.
//! Failures are [`StsFailure`]s, classified with every other Vault-client failure in
//! [`crate::VaultError::class`].

use std::time::Duration;

use certkeeper_core::Secret;
use reqwest::Url;

use super::AwsCredentials;
use crate::error::{StsFailure, Unanswered};
use crate::redact::redact;

/// The largest STS answer read (a credentials answer is about 2 KiB).
const MAX_ANSWER: usize = 64 * 1024;

/// A client for one STS endpoint.
/// Why the STS endpoint cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum StsEndpointError {
    #[error("STS endpoint {endpoint:?} is not a URL: {reason}")]
    NotAUrl { endpoint: String, reason: String },
    #[error("STS endpoint {0} must be an http:// or https:// address")]
    Scheme(String),
    #[error("STS endpoint must not carry credentials (user:password@)")]
    Credentials,
    #[error("STS endpoint {0} must not have a query or fragment")]
    QueryOrFragment(String),
    #[error("cannot build the STS HTTP client: {0}")]
    Client(String),
}

#[derive(Debug)]
pub(crate) struct Sts {
    http: reqwest::Client,
    endpoint: Url,
}

impl Sts {
    /// A client for `endpoint` (http or https, no credentials, query or fragment). The
    /// platform's trust store verifies an https endpoint.
    pub fn new(
        endpoint: &str,
        connect_timeout: Duration,
        request_timeout: Duration,
    ) -> Result<Self, StsEndpointError> {
        let endpoint = Url::parse(endpoint.trim()).map_err(|e| StsEndpointError::NotAUrl {
            endpoint: endpoint.to_owned(),
            reason: e.to_string(),
        })?;
        if !matches!(endpoint.scheme(), "http" | "https") || endpoint.host_str().is_none() {
            return Err(StsEndpointError::Scheme(endpoint.to_string()));
        }
        if !endpoint.username().is_empty() || endpoint.password().is_some() {
            return Err(StsEndpointError::Credentials);
        }
        if endpoint.query().is_some() || endpoint.fragment().is_some() {
            return Err(StsEndpointError::QueryOrFragment(endpoint.to_string()));
        }
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(connect_timeout)
            .timeout(request_timeout)
            .tls_backend_rustls()
            .user_agent(concat!("certkeeper/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| StsEndpointError::Client(e.to_string()))?;
        Ok(Sts { http, endpoint })
    }

    /// `AssumeRoleWithWebIdentity` of `role_arn` with `token`.
    pub async fn assume_role_with_web_identity(
        &self,
        role_arn: &str,
        session_name: &str,
        token: &Secret,
    ) -> Result<AwsCredentials, StsFailure> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("Action", "AssumeRoleWithWebIdentity")
            .append_pair("Version", "2011-06-15")
            .append_pair("RoleArn", role_arn)
            .append_pair("RoleSessionName", session_name)
            .append_pair("WebIdentityToken", token.expose())
            .finish();
        let body = Secret::new(body);
        let url = self.endpoint.to_string();
        let transport = |source: reqwest::Error| StsFailure::Transport(Unanswered::new(&url, source));
        let mut resp = self
            .http
            .post(self.endpoint.clone())
            .header("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
            .header("Accept", "text/xml")
            .body(body.expose().to_owned())
            .send()
            .await
            .map_err(transport)?;
        let status = resp.status().as_u16();
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(transport)? {
            if bytes.len() + chunk.len() > MAX_ANSWER {
                return Err(StsFailure::Decode {
                    status,
                    reason: format!("answer larger than {MAX_ANSWER} bytes"),
                });
            }
            bytes.extend_from_slice(&chunk);
        }
        let text = String::from_utf8_lossy(&bytes);
        if !(200..300).contains(&status) {
            return Err(StsFailure::Status {
                status,
                code: element(&text, "Code").map(|c| redact(&c)),
                message: element(&text, "Message").map(|m| redact(&m)),
            });
        }
        let decode = |reason: &str| StsFailure::Decode {
            status,
            reason: reason.to_owned(),
        };
        let credentials =
            element_raw(&text, "Credentials").ok_or_else(|| decode("no Credentials in the answer"))?;
        let field = |name: &str| element(credentials, name).filter(|v| !v.is_empty());
        Ok(AwsCredentials {
            access_key_id: field("AccessKeyId").ok_or_else(|| decode("no AccessKeyId in the answer"))?,
            secret_access_key: Secret::new(
                field("SecretAccessKey").ok_or_else(|| decode("no SecretAccessKey in the answer"))?,
            ),
            session_token: Some(Secret::new(
                field("SessionToken").ok_or_else(|| decode("no SessionToken in the answer"))?,
            )),
        })
    }
}

/// The text inside the first `<name>...</name>` of `xml`, entities decoded. STS answers are
/// flat, namespace-free at element level and carry no CDATA, so a search is enough.
fn element(xml: &str, name: &str) -> Option<String> {
    element_raw(xml, name).map(unescape)
}

fn element_raw<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = xml.find(&open)? + open.len();
    let len = xml[start..].find(&close)?;
    Some(xml[start..start + len].trim())
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_as_sts_writes_them() {
        let ok = r#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
          <AssumeRoleWithWebIdentityResult><Credentials>
            <AccessKeyId>ASIAEXAMPLE</AccessKeyId><SecretAccessKey>abc/def+g</SecretAccessKey>
            <SessionToken>FQo&amp;x=</SessionToken><Expiration>2026-12-07T22:33:45Z</Expiration>
          </Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>"#;
        let creds = element_raw(ok, "Credentials").unwrap();
        assert_eq!(element(creds, "AccessKeyId").as_deref(), Some("ASIAEXAMPLE"));
        assert_eq!(element(creds, "SessionToken").as_deref(), Some("FQo&x="));
        let refused = r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error>
          <Type>Sender</Type><Code>InvalidIdentityToken</Code>
          <Message>Couldn&apos;t retrieve verification key from your identity provider</Message>
          </Error></ErrorResponse>"#;
        assert_eq!(element(refused, "Code").as_deref(), Some("InvalidIdentityToken"));
        assert_eq!(
            element(refused, "Message").as_deref(),
            Some("Couldn't retrieve verification key from your identity provider")
        );
        assert_eq!(element("<a>", "Code"), None);
    }

    #[test]
    fn endpoints_are_checked() {
        let t = Duration::from_secs(1);
        Sts::new("http://127.0.0.1:5000", t, t).unwrap();
        Sts::new("https://sts.eu-west-1.amazonaws.com/", t, t).unwrap();
        for bad in ["ftp://x", "http://user:pw@host", "https://sts?x=1", "not a url"] {
            assert!(Sts::new(bad, t, t).is_err(), "{bad}");
        }
    }
}
