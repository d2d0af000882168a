//! `AwsAuthFront`: the AWS auth method's IAM login in front of a real OpenBao, because OpenBao
//! 2.7.2 does not ship the method: its plugin catalog has approle, cert, jwt, kubernetes, oidc
//! and userpass only, and the AWS method lives in the separate openbao-plugins, which needs a
//! Go toolchain this machine cannot fetch. Everything except `POST /v1/auth/<mount>/login` is
//! forwarded to OpenBao unchanged.
//!
//! The login follows, check by check and message by message, the plugin's source:
//! openbao/openbao-plugins at commit 2ff5b9ee413b6de6d7f8ddae7a82f40f670cf29a,
//! `auth/aws/path_login.go` (`pathLoginUpdate`, `pathLoginIamGetRoleNameCallerIdAndEntity`,
//! `pathLoginUpdateIam`, `validateLoginIamRequestBody`, `validateVaultHeaderValue`,
//! `ensureHeaderIsSigned`, `buildHttpRequest`, `submitCallerIdentityRequest`,
//! `parseGetCallerIdentityResponse`, `parseIamArn`, `canonicalArn`), `auth/aws/backend.go`
//! (`defaultAllowedSTSRequestHeaders`), `auth/aws/path_config_client.go`
//! (`validateAllowedSTSHeaderValues`) and `auth/aws/path_role.go` (roles stored lowercased);
//! with the SDK it builds on, openbao/openbao `sdk/v2.2.0`: `framework/field_data.go`
//! (`TypeHeader`: a JSON object, JSON in a string, base64 or not, or `name:value` strings;
//! names made canonical by `http.Header.Add`), `framework/backend.go` (fields converted first:
//! `Field validation failed: ...`), `logical/response_util.go` (an error response is 400), and
//! hashicorp/go-retryablehttp v0.7.7 `client.go` (the replay's retries). In order:
//!
//! 1. every field converted (bad `iam_request_headers`: `Field validation failed: ...`);
//! 2. ec2 vs iam fields (`supplied some of the auth values for the iam auth type but not all`);
//! 3. `iam_http_request_method` present and `POST`;
//! 4. `iam_request_url` present, base64, parseable, with an empty query (else `invalid
//!    request`); its path is not checked;
//! 5. `iam_request_body` present, base64, a form whose keys are only `Action` (at most once,
//!    `GetCallerIdentity`) and `Version` (any value); `Action` may be absent;
//! 6. `iam_request_headers` not empty;
//! 7. with `iam_server_id_header_value` set: `X-Vault-AWS-IAM-Server-ID` present and equal,
//!    `Authorization` present, and the lowercase name among its last `SignedHeaders=`;
//! 8. each `X-Amz-*` header one of the defaults or `allowed_sts_header_values`;
//! 9. the replay: `POST <sts_endpoint (default https://sts.amazonaws.com)>/<RequestURI>` (a
//!    URL of path `/` goes to `<endpoint>//`), `Host` the URL's host (port kept), the headers
//!    given except `Host`/`Content-Length`/`Transfer-Encoding`/`Trailer`; retried on
//!    connection errors, 429 and 5xx (not 501) `max_retries` times (default 3); redirects not
//!    followed; the answer's `Content-Type` must be exactly `text/xml`, then its status 200,
//!    then its XML a `GetCallerIdentityResponse` (each failure: `error making upstream
//!    request: ...`);
//! 10. the ARN parsed by `parseIamArn` (6 colon parts, `iam` or `sts`, `user`, `role`,
//!     `instance-profile` or `assumed-role/<role>/<session>`), the role name defaulting to its
//!     friendly name, the role looked up case-insensitively (`entry for role R not found`);
//! 11. the canonical ARN (`arn:<partition>:iam::<account>:<type>/<name>`, assumed-role as
//!     role, path dropped) equal to the role's `bound_iam_principal_arn` (check 2 of the
//!     plugin: `resolve_aws_unique_ids=false`), else `IAM Principal "<caller ARN>" does not
//!     belong to the role "<role>"`.
//!
//! Every failure is an error response, so OpenBao answers 400 with it in `errors`; the one
//! exception is a `GetCallerIdentityResponse` without a result, where the plugin panics
//! (500 here). Not reproduced: the ec2 auth type, `use_sts_region_from_client`,
//! `resolve_aws_unique_ids=true` (binding by unique ID, an IAM lookup) and wildcard
//! `bound_iam_principal_arn`s (a `GetUser`/`GetRole` lookup; refused by [`AwsAuthFront::start`]),
//! `token_bound_cidrs`, entity aliases. The token is a real OpenBao token with the role's
//! policy and the plugin's default metadata (`role_id`, `account_id`, `auth_type=iam`), made
//! with the root token, so the client signs with it on the real PKI.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

const SERVER_ID_HEADER: &str = "X-Vault-AWS-IAM-Server-ID";
const DEFAULT_STS_ENDPOINT: &str = "https://sts.amazonaws.com";
/// `backend.go`'s `defaultAllowedSTSRequestHeaders`.
const DEFAULT_ALLOWED_STS_REQUEST_HEADERS: [&str; 7] = [
    "X-Amz-Algorithm",
    "X-Amz-Content-Sha256",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Security-Token",
    "X-Amz-Signature",
    "X-Amz-SignedHeaders",
];
/// `errRequestBodyNotValid`.
const REQUEST_BODY_NOT_VALID: &str = "iam request body is invalid";
/// `errInvalidGetCallerIdentityResponse`.
const INVALID_GET_CALLER_IDENTITY_RESPONSE: &str = "body of GetCallerIdentity is invalid";
/// `logical.ErrInvalidRequest`.
const INVALID_REQUEST: &str = "invalid request";

/// A role of the emulated method: `auth_type=iam`, `resolve_aws_unique_ids=false`, one
/// `bound_iam_principal_arn` without a wildcard (empty: none, as a role with no bound ARN).
#[derive(Debug, Clone)]
pub struct AwsAuthRole {
    pub name: String,
    pub bound_iam_principal_arn: String,
    pub policy: String,
}

/// The emulated method's `config/client` and roles.
#[derive(Debug, Clone)]
pub struct AwsAuthConfig {
    /// Mount under `auth/` (`aws`).
    pub mount: String,
    /// `sts_endpoint`; empty: `https://sts.amazonaws.com`.
    pub sts_endpoint: String,
    pub iam_server_id_header_value: Option<String>,
    /// `allowed_sts_header_values`: `X-Amz-*` headers accepted besides the defaults.
    pub allowed_sts_header_values: Vec<String>,
    /// `max_retries` of the replay; the plugin's default (`-1`) means the AWS SDK's 3.
    pub max_retries: u32,
    pub roles: Vec<AwsAuthRole>,
}

impl Default for AwsAuthConfig {
    fn default() -> Self {
        AwsAuthConfig {
            mount: "aws".into(),
            sts_endpoint: String::new(),
            iam_server_id_header_value: None,
            allowed_sts_header_values: Vec::new(),
            max_retries: 3,
            roles: Vec::new(),
        }
    }
}

struct State {
    vault: String,
    root_token: String,
    config: AwsAuthConfig,
    http: reqwest::Client,
    logins: Mutex<Vec<String>>,
}

/// The front, listening on 127.0.0.1; stops when dropped.
#[derive(Debug)]
pub struct AwsAuthFront {
    addr: String,
    state: Arc<StateDebug>,
    task: JoinHandle<()>,
}

/// `State` without a `Debug` of its secrets.
struct StateDebug(Arc<State>);

impl std::fmt::Debug for StateDebug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AwsAuthFront state")
    }
}

impl Drop for AwsAuthFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl AwsAuthFront {
    /// Serves `config` in front of the OpenBao at `vault` (administered with `root_token`).
    /// Refuses a wildcard `bound_iam_principal_arn` (the plugin looks the caller's full ARN up
    /// with IAM for those, which this front does not do).
    pub async fn start(vault: &str, root_token: &str, config: AwsAuthConfig) -> Result<Self> {
        if let Some(role) = config
            .roles
            .iter()
            .find(|r| r.bound_iam_principal_arn.ends_with('*'))
        {
            anyhow::bail!(
                "role {}: wildcard bound_iam_principal_arn needs the plugin's IAM lookup, not emulated",
                role.name
            );
        }
        let listener = TcpListener::bind("127.0.0.1:0").await.context("bind")?;
        let addr = format!("http://{}", listener.local_addr()?);
        let state = Arc::new(State {
            vault: vault.trim_end_matches('/').to_owned(),
            root_token: root_token.to_owned(),
            config,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
            logins: Mutex::new(Vec::new()),
        });
        let serving = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = serving.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(handle(&state, req).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(AwsAuthFront {
            addr,
            state: Arc::new(StateDebug(state)),
            task,
        })
    }

    /// The address to use as the Vault server.
    pub fn addr(&self) -> String {
        self.addr.clone()
    }

    /// The canonical ARNs of the logins accepted so far, in order.
    pub fn logins(&self) -> Vec<String> {
        self.state.0.logins.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

async fn handle(state: &State, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let login = format!("/v1/auth/{}/login", state.config.mount.trim_matches('/'));
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return answer(StatusCode::BAD_REQUEST, json!({"errors": [e.to_string()]})),
    };
    if parts.method == hyper::Method::POST && parts.uri.path() == login {
        return match aws_login(state, &body).await {
            Ok(auth) => answer(StatusCode::OK, json!({"auth": auth})),
            Err((status, message)) => answer(status, json!({"errors": [message]})),
        };
    }
    forward(state, parts, body).await
}

fn answer(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp
}

/// Everything that is not the AWS login goes to OpenBao as it came.
async fn forward(state: &State, parts: hyper::http::request::Parts, body: Bytes) -> Response<Full<Bytes>> {
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let Ok(method) = reqwest::Method::from_bytes(parts.method.as_str().as_bytes()) else {
        return answer(StatusCode::BAD_REQUEST, json!({"errors": ["method"]}));
    };
    let mut req = state
        .http
        .request(method, format!("{}{path}", state.vault))
        .body(body);
    for (name, value) in &parts.headers {
        if name.as_str().starts_with("x-vault-") || name.as_str() == "content-type" {
            req = req.header(name.as_str(), value.as_bytes());
        }
    }
    match req.send().await {
        Ok(resp) => {
            let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let headers: Vec<(String, Vec<u8>)> = resp
                .headers()
                .iter()
                .filter(|(n, _)| matches!(n.as_str(), "content-type" | "retry-after" | "location"))
                .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
                .collect();
            let bytes = resp.bytes().await.unwrap_or_default();
            let mut out = Response::new(Full::new(bytes));
            *out.status_mut() = status;
            for (name, value) in headers {
                if let (Ok(n), Ok(v)) = (
                    hyper::header::HeaderName::from_bytes(name.as_bytes()),
                    hyper::header::HeaderValue::from_bytes(&value),
                ) {
                    out.headers_mut().insert(n, v);
                }
            }
            out
        }
        Err(e) => answer(StatusCode::BAD_GATEWAY, json!({"errors": [e.to_string()]})),
    }
}

/// A failed login: the status and the text of Vault's `errors` array.
type Failure = (StatusCode, String);

fn bad(message: impl Into<String>) -> Failure {
    (StatusCode::BAD_REQUEST, message.into())
}

/// Go's `textproto.CanonicalMIMEHeaderKey`: `x-amz-date` -> `X-Amz-Date`; a key with a byte
/// that is not a header token character is left as it is.
pub(crate) fn canonical_header_key(key: &str) -> String {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if !key.bytes().all(token) {
        return key.to_owned();
    }
    let mut upper = true;
    key.chars()
        .map(|c| {
            let out = if upper {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
            upper = c == '-';
            out
        })
        .collect()
}

/// Go's `http.Header`: canonical names (sorted, where Go's map has no order), each with its
/// values in the order given.
pub(crate) type Headers = Vec<(String, Vec<String>)>;

fn header_add(headers: &mut Headers, key: &str, value: String) {
    let key = canonical_header_key(key);
    match headers.iter_mut().find(|(k, _)| *k == key) {
        Some((_, values)) => values.push(value),
        None => {
            headers.push((key, vec![value]));
            headers.sort_by(|a, b| a.0.cmp(&b.0));
        }
    }
}

/// The SDK's `TypeHeader` conversion (`framework/field_data.go`): a JSON object; or a string
/// holding JSON, base64-encoded or not; or a list of `name:value` strings (the CLI's form).
/// A value is a string, a number or a list of those.
pub(crate) fn parse_header_field(raw: &Value) -> Result<Headers, String> {
    fn from_map(map: &serde_json::Map<String, Value>) -> Result<Headers, String> {
        let mut headers = Headers::new();
        for (key, group) in map {
            match group {
                Value::String(v) => header_add(&mut headers, key, v.clone()),
                Value::Number(n) => header_add(&mut headers, key, n.to_string()),
                Value::Array(items) => {
                    for item in items {
                        match item {
                            Value::String(v) => header_add(&mut headers, key, v.clone()),
                            Value::Number(n) => header_add(&mut headers, key, n.to_string()),
                            _ => {
                                return Err(format!(
                                    "received non-string value for header key:{key}, val:{group}"
                                ));
                            }
                        }
                    }
                }
                other => return Err(format!("unrecognized type for {other}")),
            }
        }
        Ok(headers)
    }
    match raw {
        Value::Object(map) => from_map(map),
        Value::String(text) => {
            let bytes = BASE64.decode(text).unwrap_or_else(|_| text.clone().into_bytes());
            match serde_json::from_slice::<Value>(&bytes) {
                Ok(Value::Object(map)) => from_map(&map),
                Ok(other) => Err(format!(
                    "json: cannot unmarshal {other} into map[string]interface {{}}"
                )),
                Err(e) => Err(e.to_string()),
            }
        }
        Value::Array(pairs) => {
            let mut headers = Headers::new();
            for pair in pairs {
                let text = pair.as_str().unwrap_or_default();
                match text.split_once(':') {
                    Some((key, value)) if pair.is_string() && !key.is_empty() => {
                        header_add(&mut headers, key, value.to_owned());
                    }
                    _ => return Err(format!("invalid key pair \"{text}\"")),
                }
            }
            Ok(headers)
        }
        other => Err(format!("could not decode header: {other}")),
    }
}

/// A `TypeString` field as the SDK's weak decoding reads it (absent or null: empty).
fn string_field(data: &serde_json::Map<String, Value>, field: &str) -> Result<String, Failure> {
    match data.get(field) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(Value::Bool(b)) => Ok(if *b { "1" } else { "0" }.to_owned()),
        Some(other) => Err(bad(format!(
            "Field validation failed: error converting input {other} for field \"{field}\": \
             expected type 'string', got unconvertible type"
        ))),
    }
}

/// Go's `url.ParseQuery` (`&`-separated, `;` refused, `+` and `%XX` unescaped, first error
/// returned) followed by `validateLoginIamRequestBody`: `Action`, if present, exactly once and
/// `GetCallerIdentity`; `Version` any; nothing else.
pub(crate) fn validate_request_body(body: &str) -> Result<(), String> {
    fn unescape(s: &str) -> Result<String, String> {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'%' => {
                    let hex = |b: u8| (b as char).to_digit(16);
                    match (
                        bytes.get(i + 1).copied().and_then(hex),
                        bytes.get(i + 2).copied().and_then(hex),
                    ) {
                        (Some(h), Some(l)) => out.push((h * 16 + l) as u8),
                        _ => {
                            let bad: String = s[i..].chars().take(3).collect();
                            return Err(format!("invalid URL escape \"{bad}\""));
                        }
                    }
                    i += 3;
                }
                b'+' => {
                    out.push(b' ');
                    i += 1;
                }
                b => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut first_error = None;
    for part in body.split('&') {
        if part.is_empty() {
            continue;
        }
        if part.contains(';') {
            first_error.get_or_insert_with(|| "invalid semicolon separator in query".to_owned());
            continue;
        }
        let (key, value) = part.split_once('=').unwrap_or((part, ""));
        match (unescape(key), unescape(value)) {
            (Ok(k), Ok(v)) => pairs.push((k, v)),
            (Err(e), _) | (_, Err(e)) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    let actions: Vec<&str> = pairs
        .iter()
        .filter(|(k, _)| k == "Action")
        .map(|(_, v)| v.as_str())
        .collect();
    if !actions.is_empty() && actions != ["GetCallerIdentity"] {
        return Err(REQUEST_BODY_NOT_VALID.into());
    }
    if pairs.iter().any(|(k, _)| k != "Action" && k != "Version") {
        return Err(REQUEST_BODY_NOT_VALID.into());
    }
    Ok(())
}

/// `validateVaultHeaderValue` + `ensureHeaderIsSigned`.
pub(crate) fn validate_server_id_header(headers: &Headers, required: &str) -> Result<(), String> {
    let provided = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(SERVER_ID_HEADER))
        .map(|(_, v)| v.join(","))
        .unwrap_or_default();
    if provided.is_empty() {
        return Err(format!("missing header \"{SERVER_ID_HEADER}\""));
    }
    if provided != required {
        return Err(format!("expected \"{required}\" but got \"{provided}\""));
    }
    let Some((_, authz)) = headers.iter().find(|(k, _)| k == "Authorization") else {
        return Err("missing Authorization header".into());
    };
    let authz = authz.join(",");
    // `.*SignedHeaders=([^,]+)`: greedy, so the last `SignedHeaders=`.
    let Some(at) = authz.rfind("SignedHeaders=") else {
        return Err("vault header wasn't signed".into());
    };
    let rest = &authz[at + "SignedHeaders=".len()..];
    let signed = &rest[..rest.find(',').unwrap_or(rest.len())];
    if signed.is_empty() {
        return Err("vault header wasn't signed".into());
    }
    let wanted = SERVER_ID_HEADER.to_lowercase();
    if signed.split(';').any(|h| h == wanted) {
        Ok(())
    } else {
        Err("vault header wasn't signed".into())
    }
}

/// `clientConfig.validateAllowedSTSHeaderValues`: an `X-Amz-` header must be one of the
/// defaults or of `allowed_sts_header_values`.
pub(crate) fn validate_allowed_sts_headers(headers: &Headers, allowed: &[String]) -> Result<(), String> {
    for (key, _) in headers {
        let h = canonical_header_key(key);
        let allowed = DEFAULT_ALLOWED_STS_REQUEST_HEADERS.contains(&h.as_str())
            || allowed.iter().any(|a| canonical_header_key(a) == h);
        if h.starts_with("X-Amz-") && !allowed {
            return Err(format!("invalid request header: {key}"));
        }
    }
    Ok(())
}

/// The parts of Go's `url.Parse` result the login uses: `Host` (as written, port included,
/// no user info) and `RequestURI()`.
pub(crate) struct RequestUrl {
    pub host: String,
    pub request_uri: String,
}

/// `iam_request_url` as `pathLoginIamGetRoleNameCallerIdAndEntity` takes it: any parseable URL
/// whose query is empty (the path is not checked).
pub(crate) fn parse_request_url(raw: &str) -> Result<RequestUrl, String> {
    let url = reqwest::Url::parse(raw).map_err(|_| "error parsing iam_request_url".to_owned())?;
    if url.query().is_some_and(|q| !q.is_empty()) {
        return Err(INVALID_REQUEST.into());
    }
    let authority = raw
        .split_once("://")
        .map(|(_, rest)| rest.split(['/', '?', '#']).next().unwrap_or_default())
        .unwrap_or_default();
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, h)| h)
        .to_owned();
    let path = if url.cannot_be_a_base() || url.path().is_empty() {
        "/"
    } else {
        url.path()
    };
    // Go's RequestURI keeps a lone `?` (ForceQuery).
    let request_uri = if url.query() == Some("") {
        format!("{path}?")
    } else {
        path.to_owned()
    };
    Ok(RequestUrl { host, request_uri })
}

/// `buildHttpRequest`'s target: `fmt.Sprintf("%s/%s", endpoint, parsedUrl.RequestURI())`, so
/// a URL of path `/` is replayed to `<endpoint>//`.
pub(crate) fn replay_target(endpoint: &str, url: &RequestUrl) -> String {
    format!("{endpoint}/{}", url.request_uri)
}

/// What `parseGetCallerIdentityResponse` reads from STS's XML.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct CallerIdentity {
    pub arn: String,
    pub user_id: String,
    pub account: String,
}

/// `parseGetCallerIdentityResponse`: after trimming, the text must start with
/// `<GetCallerIdentityResponse` or `<?xml`, its root must be `GetCallerIdentityResponse`; the
/// first `GetCallerIdentityResult` is used (`None`: there is none, where the plugin indexes
/// `[0]` of an empty list).
pub(crate) fn parse_caller_identity(text: &str) -> Result<Option<CallerIdentity>, ()> {
    let text = text.trim();
    if !text.starts_with("<GetCallerIdentityResponse") && !text.starts_with("<?xml") {
        return Err(());
    }
    let mut rest = text;
    if rest.starts_with("<?xml") {
        rest = rest[rest.find("?>").ok_or(())? + 2..].trim_start();
    }
    let root = rest.strip_prefix('<').ok_or(())?;
    let name_end = root
        .find(|c: char| c == '>' || c == '/' || c.is_whitespace())
        .ok_or(())?;
    if &root[..name_end] != "GetCallerIdentityResponse" || !text.ends_with('>') {
        return Err(());
    }
    if !rest.contains("</GetCallerIdentityResponse>") {
        return Err(());
    }
    let element = |scope: &str, name: &str| -> Option<String> {
        let open = scope.find(&format!("<{name}>"))? + name.len() + 2;
        let len = scope[open..].find(&format!("</{name}>"))?;
        Some(xml_unescape(&scope[open..open + len]))
    };
    let Some(result) = element(rest, "GetCallerIdentityResult") else {
        return Ok(None);
    };
    Ok(Some(CallerIdentity {
        arn: element(&result, "Arn").unwrap_or_default(),
        user_id: element(&result, "UserId").unwrap_or_default(),
        account: element(&result, "Account").unwrap_or_default(),
    }))
}

fn xml_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// `iamEntity`, from `parseIamArn`.
#[derive(Debug, PartialEq)]
pub(crate) struct IamEntity {
    pub partition: String,
    pub account: String,
    pub kind: String,
    pub path: String,
    pub friendly_name: String,
    pub session_info: String,
}

impl IamEntity {
    /// `canonicalArn()`: `assumed-role` becomes `role`, the path is dropped.
    pub fn canonical_arn(&self) -> String {
        let kind = if self.kind == "assumed-role" {
            "role"
        } else {
            &self.kind
        };
        format!(
            "arn:{}:iam::{}:{kind}/{}",
            self.partition, self.account, self.friendly_name
        )
    }
}

/// `parseIamArn`, with its messages.
pub(crate) fn parse_iam_arn(arn: &str) -> Result<IamEntity, String> {
    let full: Vec<&str> = arn.split(':').collect();
    if full.len() != 6 {
        return Err(format!(
            "unrecognized arn: contains {} colon-separated parts, expected 6",
            full.len()
        ));
    }
    if full[0] != "arn" {
        return Err("unrecognized arn: does not begin with \"arn:\"".into());
    }
    if full[2] != "iam" && full[2] != "sts" {
        return Err(format!(
            "unrecognized service: {}, not one of iam or sts",
            full[2]
        ));
    }
    let parts: Vec<&str> = full[5].split('/').collect();
    if parts.len() < 2 {
        return Err(format!(
            "unrecognized arn: \"{}\" contains fewer than 2 slash-separated parts",
            full[5]
        ));
    }
    let mut entity = IamEntity {
        partition: full[1].to_owned(),
        account: full[4].to_owned(),
        kind: parts[0].to_owned(),
        path: parts[1..parts.len() - 1].join("/"),
        friendly_name: parts[parts.len() - 1].to_owned(),
        session_info: String::new(),
    };
    match parts[0] {
        "assumed-role" => {
            if parts.len() < 3 {
                return Err(format!(
                    "unrecognized arn: \"{}\" contains fewer than 3 slash-separated parts",
                    full[5]
                ));
            }
            entity.path = String::new();
            entity.friendly_name = parts[1].to_owned();
            entity.session_info = parts[2].to_owned();
        }
        "user" | "role" | "instance-profile" => {}
        other => return Err(format!("unrecognized principal type: \"{other}\"")),
    }
    Ok(entity)
}

/// `submitCallerIdentityRequest`: the replay with go-retryablehttp's `DefaultRetryPolicy` and
/// `DefaultBackoff` (500 ms doubling up to 30 s, `Retry-After` on 429/503) for `max_retries`
/// retries, redirects not followed, then the `Content-Type`, status and body checks. `Err`:
/// the text after `error making upstream request: `.
async fn submit_caller_identity_request(
    state: &State,
    endpoint: &str,
    url: &RequestUrl,
    body: &str,
    headers: &Headers,
) -> Result<Option<CallerIdentity>, String> {
    let target = replay_target(endpoint, url);
    let mut attempt: u32 = 0;
    let response = loop {
        attempt += 1;
        // Go's request writer takes Host from the URL and Content-Length from the body, never
        // from the headers given; it sends User-Agent: Go-http-client/1.1 unless one is given.
        let mut replay = state
            .http
            .post(&target)
            .header("Host", &url.host)
            .body(body.to_owned());
        if !headers.iter().any(|(k, _)| k == "User-Agent") {
            replay = replay.header("User-Agent", "Go-http-client/1.1");
        }
        for (name, values) in headers {
            if matches!(
                name.as_str(),
                "Host" | "Content-Length" | "Transfer-Encoding" | "Trailer"
            ) {
                continue;
            }
            for v in values {
                replay = replay.header(name.as_str(), v.as_str());
            }
        }
        let outcome = replay.send().await;
        let retry = match &outcome {
            Err(_) => true,
            Ok(resp) => {
                let s = resp.status().as_u16();
                s == 429 || (s >= 500 && s != 501)
            }
        };
        if !retry {
            break outcome.map_err(|e| format!("error making request: {e}"))?;
        }
        if attempt > state.config.max_retries {
            let cause = match outcome {
                Err(e) => format!(": Post \"{target}\": {e}"),
                Ok(_) => String::new(),
            };
            return Err(format!(
                "error making request: POST {target} giving up after {attempt} attempt(s){cause}"
            ));
        }
        let mut wait = Duration::from_millis(500)
            .saturating_mul(1 << (attempt - 1).min(16))
            .min(Duration::from_secs(30));
        if let Ok(resp) = &outcome
            && matches!(resp.status().as_u16(), 429 | 503)
            && let Some(secs) = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        {
            wait = Duration::from_secs(secs);
        }
        tokio::time::sleep(wait).await;
    };
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if content_type != "text/xml" {
        return Err(INVALID_GET_CALLER_IDENTITY_RESPONSE.into());
    }
    let status = response.status().as_u16();
    let text = response.text().await.map_err(|e| e.to_string())?;
    if status != 200 {
        return Err(format!("received error code {status} from STS: {text}"));
    }
    parse_caller_identity(&text).map_err(|()| "error parsing STS response".to_owned())
}

/// `pathLoginUpdate` -> `pathLoginUpdateIam` (see the module docs). `Ok`: the `auth` block.
async fn aws_login(state: &State, body: &[u8]) -> Result<Value, Failure> {
    let data: serde_json::Map<String, Value> =
        serde_json::from_slice(body).map_err(|e| bad(format!("failed to parse JSON input: {e}")))?;
    // The framework converts every field before the handler runs.
    let mut headers = Headers::new();
    for field in [
        "role",
        "iam_http_request_method",
        "iam_request_url",
        "iam_request_body",
    ] {
        string_field(&data, field)?;
    }
    if let Some(raw) = data.get("iam_request_headers") {
        headers = parse_header_field(raw).map_err(|e| {
            // Go's `%v` of the raw input: a string as it is.
            let shown = raw.as_str().map_or_else(|| raw.to_string(), str::to_owned);
            bad(format!(
                "Field validation failed: error converting input {shown} for field \"iam_request_headers\": {e}"
            ))
        })?;
    }
    // `hasValuesForEc2Auth` / `hasValuesForIamAuth`: a field counts when it is present.
    let has = |f: &str| data.contains_key(f);
    let (all_ec2, any_ec2) = (
        has("pkcs7") || (has("identity") && has("signature")),
        has("pkcs7") || has("identity") || has("signature"),
    );
    let iam = [
        "iam_http_request_method",
        "iam_request_url",
        "iam_request_body",
        "iam_request_headers",
    ];
    let (all_iam, any_iam) = (iam.iter().all(|f| has(f)), iam.iter().any(|f| has(f)));
    match () {
        () if any_ec2 && any_iam => return Err(bad("supplied auth values for both ec2 and iam auth types")),
        () if any_ec2 && !all_ec2 => {
            return Err(bad(
                "supplied some of the auth values for the ec2 auth type but not all",
            ));
        }
        () if any_ec2 => return Err(bad("AwsAuthFront emulates the iam auth type only, not ec2")),
        () if any_iam && !all_iam => {
            return Err(bad(
                "supplied some of the auth values for the iam auth type but not all",
            ));
        }
        () if !any_iam => return Err(bad("didn't supply required authentication values")),
        () => {}
    }

    // pathLoginIamGetRoleNameCallerIdAndEntity
    let method = string_field(&data, "iam_http_request_method")?;
    if method.is_empty() {
        return Err(bad("missing iam_http_request_method"));
    }
    if method != "POST" {
        return Err(bad(
            "invalid iam_http_request_method; currently only 'POST' is supported",
        ));
    }
    let url_b64 = string_field(&data, "iam_request_url")?;
    if url_b64.is_empty() {
        return Err(bad("missing iam_request_url"));
    }
    let raw_url = BASE64
        .decode(&url_b64)
        .map_err(|_| bad("failed to base64 decode iam_request_url"))?;
    let url = parse_request_url(&String::from_utf8_lossy(&raw_url)).map_err(bad)?;
    let body_b64 = string_field(&data, "iam_request_body")?;
    if body_b64.is_empty() {
        return Err(bad("missing iam_request_body"));
    }
    let body_raw = BASE64
        .decode(&body_b64)
        .map_err(|_| bad("failed to base64 decode iam_request_body"))?;
    let form = String::from_utf8_lossy(&body_raw).into_owned();
    validate_request_body(&form).map_err(bad)?;
    if headers.is_empty() {
        return Err(bad("missing iam_request_headers"));
    }
    let config = &state.config;
    if let Some(required) = config
        .iam_server_id_header_value
        .as_deref()
        .filter(|v| !v.is_empty())
    {
        validate_server_id_header(&headers, required)
            .map_err(|e| bad(format!("error validating {SERVER_ID_HEADER} header: {e}")))?;
    }
    validate_allowed_sts_headers(&headers, &config.allowed_sts_header_values).map_err(bad)?;
    let endpoint = if config.sts_endpoint.is_empty() {
        DEFAULT_STS_ENDPOINT
    } else {
        config.sts_endpoint.as_str()
    };
    let caller = submit_caller_identity_request(state, endpoint, &url, &form, &headers)
        .await
        .map_err(|e| bad(format!("error making upstream request: {e}")))?
        // The plugin indexes the empty result list and panics; OpenBao answers 500.
        .ok_or_else(|| {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "GetCallerIdentityResponse without GetCallerIdentityResult: the plugin panics \
                 (index out of range)"
                    .to_owned(),
            )
        })?;
    let entity =
        parse_iam_arn(&caller.arn).map_err(|e| bad(format!("error parsing arn \"{}\": {e}", caller.arn)))?;
    let mut role_name = string_field(&data, "role")?;
    if role_name.is_empty() {
        role_name = entity.friendly_name.clone();
    }

    // pathLoginUpdateIam: roles are stored under their lowercased name.
    let role = config
        .roles
        .iter()
        .find(|r| r.name.to_lowercase() == role_name.to_lowercase())
        .ok_or_else(|| bad(format!("entry for role {role_name} not found")))?;
    let canonical = entity.canonical_arn();
    // resolve_aws_unique_ids=false and no wildcard binds (refused at start): check 2 only.
    if !role.bound_iam_principal_arn.is_empty() && role.bound_iam_principal_arn != canonical {
        return Err(bad(format!(
            "IAM Principal \"{}\" does not belong to the role \"{role_name}\"",
            caller.arn
        )));
    }
    let display_name = if entity.kind == "assumed-role" {
        format!("{}/{}", entity.friendly_name, entity.session_info)
    } else {
        entity.friendly_name.clone()
    };
    // The default iam_metadata: role_id, account_id and auth_type.
    let created = state
        .http
        .post(format!("{}/v1/auth/token/create", state.vault))
        .header("X-Vault-Token", &state.root_token)
        .json(&json!({
            "policies": [role.policy], "renewable": true, "no_parent": true,
            "display_name": format!("{}-{display_name}", config.mount.trim_matches('/')),
            "meta": {"role_id": role_id(&config.mount, &role.name), "account_id": entity.account,
                     "auth_type": "iam"},
        }))
        .send()
        .await
        .map_err(|e| {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("creating the token: {e}"),
            )
        })?;
    let created: Value = created.json().await.map_err(|e| {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("creating the token: {e}"),
        )
    })?;
    if let Ok(mut logins) = state.logins.lock() {
        logins.push(canonical);
    }
    Ok(created["auth"].clone())
}

/// A stable stand-in for the role's `role_id` (a UUID Vault makes at role creation).
fn role_id(mount: &str, role: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (mount, role.to_lowercase()).hash(&mut h);
    let x = h.finish();
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        x >> 32,
        (x >> 16) & 0xffff,
        x & 0xffff,
        (x >> 48) & 0xffff,
        x & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests;
