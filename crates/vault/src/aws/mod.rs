//! Vault's AWS auth method, IAM type, as cert-manager's `spec.vault.auth.aws` uses it
//! (`internal/vault/vault.go`, `requestTokenWithAWSAuth`).
//!
//! A login is a `sts:GetCallerIdentity` request signed with AWS credentials (SigV4, see
//! [`sigv4`]) and handed to Vault as `iam_http_request_method`, `iam_request_url`,
//! `iam_request_body` and `iam_request_headers` (base64, as cert-manager sends them) with the
//! Vault `role`; Vault replays it to STS and learns the caller's ARN. The signed request always
//! names `https://sts.<region>.amazonaws.com/`, as cert-manager's does: where Vault actually sends
//! it is Vault's own `auth/<mount>/config/client` `sts_endpoint`.
//!
//! Credentials ([`AwsCredentialSource`]) are either static keys or a web identity exchanged at
//! each login with `sts:AssumeRoleWithWebIdentity` (IRSA's `AWS_ROLE_ARN` and
//! `AWS_WEB_IDENTITY_TOKEN_FILE`, or a ServiceAccount token requested for `serviceAccountRef` with
//! `iamRoleArn`). That call goes to [`AwsLogin::sts_endpoint`], the `AWS_ENDPOINT_URL_STS` (or
//! `AWS_ENDPOINT_URL`) the AWS SDKs read, else `https://sts.<region>.amazonaws.com`.
//!
//! Credentials are [`Secret`]s: `Debug` prints `"..."`, no error quotes them, nothing logs them.

pub(crate) mod sigv4;
pub(crate) mod sts;

use std::fmt;
use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use certkeeper_core::Secret;

use crate::config::SecretSource;
use crate::credential::CredentialError;

/// The body of the signed request, the one AWS documents for `GetCallerIdentity`.
pub(crate) const GET_CALLER_IDENTITY: &str = "Action=GetCallerIdentity&Version=2011-06-15";
/// Header Vault checks against its `iam_server_id_header_value` (cert-manager's
/// `vaultHeaderValue`), signed with the rest so it cannot be replayed to another Vault.
pub(crate) const SERVER_ID_HEADER: &str = "X-Vault-AWS-IAM-Server-ID";
/// The region cert-manager signs for when neither the Issuer nor the environment names one.
pub const DEFAULT_REGION: &str = "us-east-1";
/// `RoleSessionName` of the web-identity exchange when the environment names none.
pub const DEFAULT_SESSION_NAME: &str = "certkeeper";

/// AWS access keys, temporary (with a session token) or not.
#[derive(Clone)]
pub struct AwsCredentials {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
}

impl fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AwsCredentials(...)")
    }
}

/// Where the AWS credentials of a login come from. Read at each login, so a rotated web
/// identity token is used by the next one.
#[derive(Debug, Clone)]
pub enum AwsCredentialSource {
    /// Static keys (the environment's `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_SESSION_TOKEN`).
    Static(AwsCredentials),
    /// `sts:AssumeRoleWithWebIdentity` of `role_arn` with the token `token` holds.
    WebIdentity {
        role_arn: String,
        session_name: String,
        token: SecretSource,
    },
    /// The runtime's own credentials ([`AwsEnvironment::ambient_credentials`]), resolved at each
    /// login: a command run in another environment (`certkeeper status`, `check`) judges
    /// nothing by its own.
    Ambient(AwsEnvironment),
}

impl AwsCredentialSource {
    /// Where the credentials come from, for the fingerprint and messages; never a value, and
    /// nothing read from the environment.
    pub fn describe(&self) -> String {
        match self {
            AwsCredentialSource::Static(c) => format!("static AWS access key {}", c.access_key_id),
            AwsCredentialSource::WebIdentity {
                role_arn,
                session_name,
                token,
            } => format!(
                "web identity for {role_arn} (session {session_name}) from {}",
                token.describe()
            ),
            // The same whatever the environment holds: a command run elsewhere (`status`)
            // must fingerprint an issuer as the daemon does.
            AwsCredentialSource::Ambient(_) => "the runtime's own AWS credentials".to_owned(),
        }
    }
}

/// The AWS settings of a runtime's environment, by the names the AWS SDKs read. Empty values
/// count as unset, as they do for the SDKs.
#[derive(Clone, Default)]
pub struct AwsEnvironment {
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<Secret>,
    pub session_token: Option<Secret>,
    /// `AWS_ROLE_ARN` with `AWS_WEB_IDENTITY_TOKEN_FILE`: IRSA's web identity.
    pub role_arn: Option<String>,
    pub web_identity_token_file: Option<PathBuf>,
    pub role_session_name: Option<String>,
    /// `AWS_REGION`, else `AWS_DEFAULT_REGION`.
    pub region: Option<String>,
    /// `AWS_ENDPOINT_URL_STS`, else `AWS_ENDPOINT_URL`.
    pub sts_endpoint: Option<String>,
}

impl fmt::Debug for AwsEnvironment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsEnvironment")
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "..."),
            )
            .field("session_token", &self.session_token.as_ref().map(|_| "..."))
            .field("role_arn", &self.role_arn)
            .field("web_identity_token_file", &self.web_identity_token_file)
            .field("role_session_name", &self.role_session_name)
            .field("region", &self.region)
            .field("sts_endpoint", &self.sts_endpoint)
            .finish()
    }
}

impl AwsEnvironment {
    /// The process environment.
    pub fn from_process() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// The settings `get` returns for each variable name.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        let var = |name: &str| get(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        AwsEnvironment {
            access_key_id: var("AWS_ACCESS_KEY_ID"),
            secret_access_key: var("AWS_SECRET_ACCESS_KEY").map(Secret::new),
            session_token: var("AWS_SESSION_TOKEN").map(Secret::new),
            role_arn: var("AWS_ROLE_ARN"),
            web_identity_token_file: var("AWS_WEB_IDENTITY_TOKEN_FILE").map(PathBuf::from),
            role_session_name: var("AWS_ROLE_SESSION_NAME"),
            region: var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")),
            sts_endpoint: var("AWS_ENDPOINT_URL_STS").or_else(|| var("AWS_ENDPOINT_URL")),
        }
    }

    /// The ambient credentials, in the order of the AWS SDKs' default chain: static keys from
    /// the environment, then the web identity of `AWS_ROLE_ARN` and
    /// `AWS_WEB_IDENTITY_TOKEN_FILE`. Shared credential files, container and instance metadata
    /// (the rest of that chain) are not read.
    pub fn ambient_credentials(&self) -> Result<AwsCredentialSource, CredentialError> {
        if let (Some(access_key_id), Some(secret)) = (&self.access_key_id, &self.secret_access_key) {
            return Ok(AwsCredentialSource::Static(AwsCredentials {
                access_key_id: access_key_id.clone(),
                secret_access_key: secret.clone(),
                session_token: self.session_token.clone(),
            }));
        }
        if let (Some(role_arn), Some(file)) = (&self.role_arn, &self.web_identity_token_file) {
            return Ok(AwsCredentialSource::WebIdentity {
                role_arn: role_arn.clone(),
                session_name: self.session_name(),
                token: SecretSource::File(file.clone()),
            });
        }
        Err(CredentialError::NoAwsCredentials)
    }

    /// `AWS_ROLE_SESSION_NAME`, else [`DEFAULT_SESSION_NAME`].
    pub fn session_name(&self) -> String {
        self.role_session_name
            .clone()
            .unwrap_or_else(|| DEFAULT_SESSION_NAME.to_owned())
    }
}

/// An AWS IAM login (cert-manager's `auth.aws`, resolved).
#[derive(Debug, Clone)]
pub struct AwsLogin {
    /// Auth mount (`/v1/auth/aws` when the Issuer names none), normalised by
    /// [`crate::auth_mount`].
    pub mount: String,
    /// The Vault role.
    pub role: String,
    /// The region the request is signed for (and whose STS is called when no endpoint is set).
    pub region: String,
    /// `X-Vault-AWS-IAM-Server-ID` (cert-manager's `vaultHeaderValue`).
    pub server_id: Option<String>,
    pub credentials: AwsCredentialSource,
    /// Where `AssumeRoleWithWebIdentity` goes; `None`: `https://sts.<region>.amazonaws.com`.
    pub sts_endpoint: Option<String>,
}

impl AwsLogin {
    /// The STS endpoint web identities are exchanged at.
    pub fn sts_url(&self) -> String {
        self.sts_endpoint
            .clone()
            .unwrap_or_else(|| format!("https://{}/", sts_host(&self.region)))
    }
}

/// `sts.<region>.amazonaws.com`.
fn sts_host(region: &str) -> String {
    format!("sts.{region}.amazonaws.com")
}

/// Whether `region` can be put in a host name: AWS region names are lowercase letters, digits
/// and dashes (`us-east-1`, `us-gov-west-1`).
pub(crate) fn check_region(region: &str) -> Result<(), &'static str> {
    if region.is_empty() {
        return Err("is empty");
    }
    if region.len() > 63 {
        return Err("is longer than 63 characters");
    }
    if !region
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        || region.starts_with('-')
        || region.ends_with('-')
    {
        return Err("must be lowercase letters, digits and inner dashes (us-east-1)");
    }
    Ok(())
}

/// What Vault's AWS login takes besides the role, each base64 as cert-manager sends them. The
/// headers include the session token, so they are a [`Secret`].
pub(crate) struct LoginData {
    pub method: &'static str,
    pub url: String,
    pub body: String,
    pub headers: Secret,
}

/// The signed `GetCallerIdentity` for `credentials` at `rfc3339_now` (RFC 3339, UTC).
pub(crate) fn login_data(
    credentials: &AwsCredentials,
    region: &str,
    server_id: Option<&str>,
    rfc3339_now: &str,
) -> LoginData {
    let host = sts_host(region);
    let mut headers: Vec<(&str, &str)> =
        vec![("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")];
    if let Some(id) = server_id {
        headers.push((SERVER_ID_HEADER, id));
    }
    if let Some(token) = &credentials.session_token {
        headers.push(("X-Amz-Security-Token", token.expose()));
    }
    let amz_date = sigv4::amz_date(rfc3339_now);
    let request = sigv4::Request {
        method: "POST",
        host: &host,
        path: "/",
        query: "",
        headers: &headers,
        body: GET_CALLER_IDENTITY.as_bytes(),
    };
    let signed = sigv4::sign(&request, credentials, region, "sts", &amz_date);
    // Go's http.Header as JSON (a list of values per name), as cert-manager sends it; Host is
    // not a header there either: Vault takes it from the URL.
    let mut map = serde_json::Map::new();
    for (name, value) in headers
        .iter()
        .copied()
        .chain([("X-Amz-Date", signed.amz_date.as_str())])
        .chain([("Authorization", signed.authorization.as_str())])
    {
        map.insert(name.to_owned(), serde_json::json!([value]));
    }
    let headers_json = serde_json::Value::Object(map).to_string();
    LoginData {
        method: "POST",
        url: BASE64.encode(format!("https://{host}/")),
        body: BASE64.encode(GET_CALLER_IDENTITY),
        headers: Secret::new(BASE64.encode(headers_json)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(b64: &str) -> String {
        String::from_utf8(BASE64.decode(b64).unwrap()).unwrap()
    }

    #[test]
    fn login_data_is_a_signed_get_caller_identity_for_the_region() {
        let credentials = AwsCredentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
            session_token: Some(Secret::new("session-token-example")),
        };
        let data = login_data(
            &credentials,
            "eu-west-1",
            Some("vault.example.com"),
            "2026-12-07T21:35:25Z",
        );
        assert_eq!(data.method, "POST");
        assert_eq!(decode(&data.url), "https://sts.eu-west-1.amazonaws.com/");
        assert_eq!(decode(&data.body), GET_CALLER_IDENTITY);
        let headers: serde_json::Value = serde_json::from_str(&decode(data.headers.expose())).unwrap();
        assert_eq!(headers["X-Vault-AWS-IAM-Server-ID"][0], "vault.example.com");
        assert_eq!(headers["X-Amz-Date"][0], "20261207T213525Z");
        assert_eq!(headers["X-Amz-Security-Token"][0], "session-token-example");
        // The same signature botocore computes for this request (see sigv4's tests).
        assert!(
            headers["Authorization"][0]
                .as_str()
                .unwrap()
                .ends_with("Signature=9f2c37b796ded189ea2e86a3161c5373b7754b867b35b3aa612064c8f36a7c01"),
            "{headers}"
        );
        assert!(!decode(data.headers.expose()).contains("wJalrXUtnFEMI"));
    }

    #[test]
    fn environment_reads_the_sdk_names_and_prefers_static_keys() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            AwsEnvironment::from_lookup(|name| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| (*v).to_owned())
            })
        };
        let irsa = env(&[
            ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/certkeeper"),
            (
                "AWS_WEB_IDENTITY_TOKEN_FILE",
                "/var/run/secrets/eks.amazonaws.com/serviceaccount/token",
            ),
            ("AWS_DEFAULT_REGION", "eu-west-1"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
            ("AWS_ACCESS_KEY_ID", ""),
        ]);
        assert_eq!(irsa.region.as_deref(), Some("eu-west-1"));
        assert_eq!(irsa.sts_endpoint.as_deref(), Some("http://127.0.0.1:5000"));
        let AwsCredentialSource::WebIdentity {
            role_arn,
            session_name,
            token,
        } = irsa.ambient_credentials().unwrap()
        else {
            panic!("web identity expected");
        };
        assert_eq!(role_arn, "arn:aws:iam::123456789012:role/certkeeper");
        assert_eq!(session_name, DEFAULT_SESSION_NAME);
        assert!(token.describe().contains("serviceaccount/token"));

        let both = env(&[
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            (
                "AWS_SECRET_ACCESS_KEY",
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            ),
            ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/certkeeper"),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", "/token"),
            ("AWS_REGION", "us-west-2"),
            ("AWS_DEFAULT_REGION", "eu-west-1"),
            ("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:5001"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
        ]);
        assert_eq!(both.region.as_deref(), Some("us-west-2"));
        assert_eq!(both.sts_endpoint.as_deref(), Some("http://127.0.0.1:5001"));
        assert!(matches!(
            both.ambient_credentials(),
            Ok(AwsCredentialSource::Static(_))
        ));
        let printed = format!("{both:?} {:?}", both.ambient_credentials().unwrap());
        assert!(!printed.contains("wJalrXUtnFEMI"), "{printed}");

        assert!(matches!(
            env(&[]).ambient_credentials(),
            Err(CredentialError::NoAwsCredentials)
        ));
    }

    #[test]
    fn a_login_prints_no_credential() {
        let login = AwsLogin {
            mount: "aws".into(),
            role: "r".into(),
            region: "us-east-1".into(),
            server_id: None,
            credentials: AwsCredentialSource::Static(AwsCredentials {
                access_key_id: "AKIDEXAMPLE".into(),
                secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
                session_token: Some(Secret::new("session-token-example")),
            }),
            sts_endpoint: None,
        };
        let printed = format!(
            "{:?} {}",
            crate::AuthMethod::Aws(Box::new(login.clone())),
            login.credentials.describe()
        );
        assert!(
            !printed.contains("wJalrXUtnFEMI") && !printed.contains("session-token-example"),
            "{printed}"
        );
        assert_eq!(login.sts_url(), "https://sts.us-east-1.amazonaws.com/");
    }

    #[test]
    fn regions_that_cannot_be_a_host_label_are_refused() {
        for ok in ["us-east-1", "us-gov-west-1", "eu-central-2"] {
            check_region(ok).unwrap();
        }
        for bad in [
            "",
            "US-EAST-1",
            "us-east-1.evil.com",
            "a/b",
            "-x",
            "x-",
            "us east",
        ] {
            assert!(check_region(bad).is_err(), "{bad}");
        }
    }
}
