//! `AwsAuthFront`: Vault's AWS auth method (IAM type) in front of a real OpenBao, because
//! OpenBao 2.7.2 does not ship it: its plugin catalog has approle, cert, jwt, kubernetes, oidc
//! and userpass only (the AWS method lives in the separate openbao-plugins, which needs a Go
//! toolchain this machine cannot fetch). Everything except `POST /v1/auth/<mount>/login` is
//! forwarded to OpenBao unchanged; that login does what Vault's `pathLoginUpdateIam` does, in
//! its order and with its messages:
//!
//! - `iam_http_request_method` must be POST, `iam_request_url` (base64) a URL with path `/` and
//!   no query, `iam_request_body` (base64) a form of only `Action=GetCallerIdentity` and
//!   `Version`, `iam_request_headers` base64 JSON (a string or a list of strings per name);
//! - with a server ID configured, `X-Vault-AWS-IAM-Server-ID` must carry it and be among the
//!   `SignedHeaders` of `Authorization`;
//! - the request is replayed to the STS endpoint (the `sts_endpoint` of Vault's
//!   `config/client`) with the headers given and `Host` from the URL, so STS (moto, which can
//!   verify SigV4 signatures) judges the signature;
//! - the caller's ARN is made canonical (`assumed-role/R/S` -> `role/R`, `sts` -> `iam`) and
//!   must equal the role's `bound_iam_principal_arn` (`resolve_aws_unique_ids=false`);
//! - the token is a real OpenBao token with the role's policy, made with the root token, so the
//!   client signs with it on the real PKI.
//!
//! Failures answer 400 with Vault's `errors` array, as `logical.ErrorResponse` does.

use std::collections::HashMap;
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

/// A role of the emulated method: `auth_type=iam`, `resolve_aws_unique_ids=false`.
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
    pub sts_endpoint: String,
    pub iam_server_id_header_value: Option<String>,
    pub roles: Vec<AwsAuthRole>,
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
    pub async fn start(vault: &str, root_token: &str, config: AwsAuthConfig) -> Result<Self> {
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
            Err(message) => answer(StatusCode::BAD_REQUEST, json!({"errors": [message]})),
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

fn b64_text(data: &Value, field: &str) -> Result<String, String> {
    let raw = data[field].as_str().unwrap_or_default();
    if raw.is_empty() {
        return Err(format!("missing {field}"));
    }
    BASE64
        .decode(raw)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| format!("failed to base64 decode {field}"))
}

/// Vault's `pathLoginUpdateIam`, see the module docs. `Ok`: the `auth` block.
async fn aws_login(state: &State, body: &[u8]) -> Result<Value, String> {
    let data: Value = serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    let method = data["iam_http_request_method"].as_str().unwrap_or_default();
    if method.is_empty() {
        return Err("missing iam_http_request_method".into());
    }
    if method != "POST" {
        return Err("invalid iam_http_request_method; currently only 'POST' is supported".into());
    }
    let url = reqwest::Url::parse(&b64_text(&data, "iam_request_url")?)
        .map_err(|e| format!("error parsing login request URL: {e}"))?;
    if url.path() != "/" || url.query().is_some() {
        return Err("error validating login request URL: invalid request URL".into());
    }
    let form = b64_text(&data, "iam_request_body")?;
    let pairs: HashMap<String, String> = reqwest::Url::parse(&format!("http://x/?{form}"))
        .map(|u| u.query_pairs().into_owned().collect())
        .unwrap_or_default();
    if pairs.get("Action").map(String::as_str) != Some("GetCallerIdentity")
        || pairs.keys().any(|k| k != "Action" && k != "Version")
    {
        return Err("error validating request body: invalid request body".into());
    }
    let headers_json = b64_text(&data, "iam_request_headers")?;
    let headers: HashMap<String, Value> =
        serde_json::from_str(&headers_json).map_err(|_| "error parsing iam_request_headers".to_string())?;
    let header = |name: &str| -> Option<String> {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| match v {
                Value::Array(items) => items
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(","),
                other => other.as_str().unwrap_or_default().to_owned(),
            })
    };
    let role_name = data["role"].as_str().unwrap_or_default();
    let role = state
        .config
        .roles
        .iter()
        .find(|r| r.name == role_name)
        .ok_or_else(|| format!("entry for role {role_name} not found"))?;
    if let Some(required) = &state.config.iam_server_id_header_value {
        let given =
            header(SERVER_ID_HEADER).ok_or_else(|| format!("missing header \"{SERVER_ID_HEADER}\""))?;
        if &given != required {
            return Err(format!("expected \"{required}\" but got \"{given}\""));
        }
        let authorization = header("Authorization").unwrap_or_default();
        let signed = authorization
            .split("SignedHeaders=")
            .nth(1)
            .and_then(|s| s.split(',').next())
            .unwrap_or_default();
        if !signed
            .split(';')
            .any(|h| h.eq_ignore_ascii_case(SERVER_ID_HEADER))
        {
            return Err("vault header wasn't signed".into());
        }
    }
    // The replay to STS: its endpoint, the URL's path, the headers as given, Host from the URL.
    let host = url.host_str().unwrap_or_default().to_owned();
    let mut replay = state
        .http
        .post(format!(
            "{}{}",
            state.config.sts_endpoint.trim_end_matches('/'),
            url.path()
        ))
        .header("Host", host)
        .body(form);
    for (name, value) in &headers {
        let values: Vec<&str> = match value {
            Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
            other => other.as_str().into_iter().collect(),
        };
        for v in values {
            replay = replay.header(name.as_str(), v);
        }
    }
    let resp = replay
        .send()
        .await
        .map_err(|e| format!("error making upstream request: {e}"))?;
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    if status != 200 {
        return Err(format!(
            "error making upstream request: received error code {status} from STS: {text}"
        ));
    }
    let arn = between(&text, "<Arn>", "</Arn>")
        .ok_or_else(|| "error making upstream request: no Arn in the GetCallerIdentity answer".to_string())?;
    let canonical = canonical_arn(arn).ok_or_else(|| format!("unrecognized principal type in {arn:?}"))?;
    if canonical != role.bound_iam_principal_arn {
        return Err(format!(
            "IAM Principal {arn:?} does not belong to the role {role_name:?}"
        ));
    }
    let created = state
        .http
        .post(format!("{}/v1/auth/token/create", state.vault))
        .header("X-Vault-Token", &state.root_token)
        .json(
            &json!({"policies": [role.policy], "ttl": "1h", "renewable": true, "no_parent": true,
                      "meta": {"canonical_arn": canonical}}),
        )
        .send()
        .await
        .map_err(|e| format!("creating the token: {e}"))?;
    let created: Value = created
        .json()
        .await
        .map_err(|e| format!("creating the token: {e}"))?;
    if let Ok(mut logins) = state.logins.lock() {
        logins.push(canonical.clone());
    }
    Ok(created["auth"].clone())
}

fn between<'a>(text: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = text.find(open)? + open.len();
    let len = text[start..].find(close)?;
    Some(&text[start..start + len])
}

/// Vault's `parseIamArn` + canonical form: `arn:<partition>:iam::<account>:<type>/<name>`,
/// assumed roles as their role.
fn canonical_arn(arn: &str) -> Option<String> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [_, partition, _, _, account, resource] = parts[..] else {
        return None;
    };
    let pieces: Vec<&str> = resource.split('/').collect();
    let (kind, name) = match pieces.as_slice() {
        ["assumed-role", role, _session] => ("role", *role),
        [kind @ ("user" | "role" | "instance-profile"), .., name] => (*kind, *name),
        _ => return None,
    };
    Some(format!("arn:{partition}:iam::{account}:{kind}/{name}"))
}

#[cfg(test)]
mod tests {
    use super::canonical_arn;

    #[test]
    fn arns_are_made_canonical_as_vault_does() {
        assert_eq!(
            canonical_arn("arn:aws:sts::123456789012:assumed-role/r/s").as_deref(),
            Some("arn:aws:iam::123456789012:role/r")
        );
        assert_eq!(
            canonical_arn("arn:aws:sts::123456789012:user/moto").as_deref(),
            Some("arn:aws:iam::123456789012:user/moto")
        );
        assert_eq!(
            canonical_arn("arn:aws:iam::123456789012:role/path/r").as_deref(),
            Some("arn:aws:iam::123456789012:role/r")
        );
        assert_eq!(canonical_arn("arn:aws:iam::1:group/g"), None);
    }
}
