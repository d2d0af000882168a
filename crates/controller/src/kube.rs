//! A small typed client of the Kubernetes API on the workspace's reqwest (rustls with aws-lc-rs):
//! JSON get/list/create/replace/merge-patch/delete and line-delimited watches, nothing more.
//!
//! Why not kube-rs: the controller touches six resources (the four cert-manager kinds, Secrets,
//! Events) whose types it already has or builds as JSON; kube + kube-runtime + k8s-openapi would
//! add several minutes of compile time on a 2-core machine for a client of a few hundred lines,
//! and a second TLS stack configuration to keep ring out of the tree. See the crate docs.
//!
//! Connection: an explicit server URL, bearer token and CA bundle ([`KubeConfig::explicit`]), or
//! the in-cluster service account ([`KubeConfig::in_cluster`]: `KUBERNETES_SERVICE_HOST`/`_PORT`,
//! the token and CA under `/var/run/secrets/kubernetes.io/serviceaccount/`). A token file is
//! re-read for every request, so the kubelet's rotation of projected tokens needs no restart.
//! No kubeconfig parsing.

use std::path::PathBuf;
use std::time::Duration;

use certkeeper_core::spec::{check_dns_label, check_dns_subdomain};
use certkeeper_core::{FailureClass, Secret};
use reqwest::Method;
use serde_json::Value;

/// Where the in-cluster service account's files are.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The largest single watch event (one object) accepted; a bigger line ends the watch.
const MAX_EVENT_BYTES: usize = 16 << 20;

/// A watch that delivers nothing (not even a bookmark) for its server-side timeout plus this
/// long is presumed dead.
const WATCH_IDLE_GRACE: Duration = Duration::from_secs(40);

/// Server-side watch timeout by default: the apiserver ends the watch after this and the
/// reflector resumes.
pub const WATCH_TIMEOUT_SECS: u64 = 290;

/// The bearer token.
#[derive(Debug, Clone)]
pub enum TokenSource {
    Value(Secret),
    /// Re-read (trimmed) for every request.
    File(PathBuf),
}

/// How to reach the API server.
#[derive(Debug, Clone)]
pub struct KubeConfig {
    /// `https://host:port`
    pub server: String,
    pub token: TokenSource,
    /// PEM bundle that verifies the API server; `None`: the system roots.
    pub ca_pem: Option<String>,
    pub connect_timeout: Duration,
    /// Bounds every request except watches (which are bounded by `watch_timeout`).
    pub request_timeout: Duration,
    /// Server-side timeout of each watch ([`WATCH_TIMEOUT_SECS`] by default).
    pub watch_timeout: Duration,
}

impl KubeConfig {
    pub fn explicit(server: impl Into<String>, token: TokenSource, ca_pem: Option<String>) -> Self {
        KubeConfig {
            server: server.into(),
            token,
            ca_pem,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            watch_timeout: Duration::from_secs(WATCH_TIMEOUT_SECS),
        }
    }

    /// The pod's service account: `KUBERNETES_SERVICE_HOST`, `KUBERNETES_SERVICE_PORT`, and
    /// `token` / `ca.crt` in [`SERVICE_ACCOUNT_DIR`].
    pub fn in_cluster() -> Result<Self, KubeError> {
        let host = std::env::var("KUBERNETES_SERVICE_HOST")
            .map_err(|_| KubeError::Config("KUBERNETES_SERVICE_HOST is not set (not in a pod?)".into()))?;
        let port = std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_else(|_| "443".into());
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        let dir = PathBuf::from(SERVICE_ACCOUNT_DIR);
        let ca = std::fs::read_to_string(dir.join("ca.crt"))
            .map_err(|e| KubeError::Config(format!("cannot read {}/ca.crt: {e}", dir.display())))?;
        Ok(KubeConfig::explicit(
            format!("https://{host}:{port}"),
            TokenSource::File(dir.join("token")),
            Some(ca),
        ))
    }
}

/// A failed API call. Never carries the token or object contents.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("{0}")]
    Config(String),
    /// The cause is written out in the message (not chained as a source: printed with its
    /// causes, it would repeat them).
    #[error("{method} {path}: {}", transport_detail(error))]
    Transport {
        method: Method,
        path: String,
        error: reqwest::Error,
    },
    #[error("{method} {path}: {code} {reason}: {message}")]
    Status {
        method: Method,
        path: String,
        code: u16,
        reason: String,
        message: String,
    },
    #[error("{what}: {message}")]
    Decode { what: String, message: String },
    #[error("cannot read the API token: {0}")]
    Token(String),
    /// A name, namespace or path from an object was refused before any request was built: the
    /// client never sends a path made of a segment the API server would not accept as a name.
    #[error("refused to build an API path: {what} {value:?} {reason}")]
    UnsafePath {
        what: &'static str,
        value: String,
        reason: &'static str,
    },
}

/// What went wrong below HTTP: "timed out", or the error's chain of causes (reqwest's own
/// message alone says only "error sending request").
fn transport_detail(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".to_owned();
    }
    let mut parts = vec![e.to_string()];
    let mut cur = std::error::Error::source(e);
    while let Some(inner) = cur {
        let text = inner.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = inner.source();
    }
    parts.join(": ")
}

impl KubeError {
    /// The HTTP status of an API error.
    pub fn code(&self) -> Option<u16> {
        match self {
            KubeError::Status { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Transport problems, 429 and 5xx pass; everything else needs a change (RBAC, a conflicting
    /// object, an invalid object, missing CRDs).
    pub fn class(&self) -> FailureClass {
        match self {
            KubeError::Transport { .. } | KubeError::Decode { .. } => FailureClass::Transient,
            KubeError::Status { code, .. } if *code == 429 || *code >= 500 || *code == 409 => {
                FailureClass::Transient
            }
            _ => FailureClass::Invalid,
        }
    }
}

/// One watch event.
#[derive(Debug, Clone)]
pub struct WatchEvent {
    /// ADDED, MODIFIED, DELETED, BOOKMARK or ERROR.
    pub kind: String,
    pub object: Value,
}

/// The API client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct KubeClient {
    base: String,
    token: TokenSource,
    http: reqwest::Client,
    /// Without a total timeout: watches last minutes.
    watch_http: reqwest::Client,
    request_timeout: Duration,
    watch_timeout: Duration,
}

impl KubeClient {
    pub fn new(config: &KubeConfig) -> Result<Self, KubeError> {
        let build = |total: Option<Duration>| {
            let mut b = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(config.connect_timeout)
                .pool_idle_timeout(Duration::from_secs(60))
                .no_proxy()
                .tls_backend_rustls()
                .user_agent(concat!("certkeeper-controller/", env!("CARGO_PKG_VERSION")));
            if let Some(t) = total {
                b = b.timeout(t);
            }
            if let Some(pem) = &config.ca_pem {
                let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                    .map_err(|e| KubeError::Config(format!("API server CA is not valid PEM: {e}")))?;
                if certs.is_empty() {
                    return Err(KubeError::Config(
                        "API server CA bundle has no certificate".into(),
                    ));
                }
                b = b.tls_certs_only(certs);
            }
            b.build()
                .map_err(|e| KubeError::Config(format!("cannot build the HTTP client: {e}")))
        };
        Ok(KubeClient {
            base: config.server.trim_end_matches('/').to_owned(),
            token: config.token.clone(),
            http: build(Some(config.request_timeout))?,
            watch_http: build(None)?,
            request_timeout: config.request_timeout,
            watch_timeout: config.watch_timeout.max(Duration::from_secs(1)),
        })
    }

    async fn token(&self) -> Result<Secret, KubeError> {
        match &self.token {
            TokenSource::Value(s) => Ok(s.clone()),
            TokenSource::File(path) => tokio::fs::read_to_string(path)
                .await
                .map(|s| Secret::new(s.trim()))
                .map_err(|e| KubeError::Token(format!("{}: {e}", path.display()))),
        }
    }

    async fn send(
        &self,
        client: &reqwest::Client,
        method: Method,
        path: &str,
        body: Option<(&str, &Value)>,
    ) -> Result<reqwest::Response, KubeError> {
        check_request_path(path)?;
        let token = self.token().await?;
        let mut req = client
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(token.expose())
            .header("Accept", "application/json");
        if let Some((content_type, body)) = body {
            let bytes = serde_json::to_vec(body).map_err(|e| KubeError::Decode {
                what: format!("{method} {path}"),
                message: e.to_string(),
            })?;
            req = req.header("Content-Type", content_type).body(bytes);
        }
        let resp = req.send().await.map_err(|source| KubeError::Transport {
            method: method.clone(),
            path: path.to_owned(),
            error: source.without_url(),
        })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let code = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let status: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let field = |k: &str| {
            status
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let mut message = field("message");
        if message.is_empty() {
            message = text.chars().take(300).collect();
        }
        Err(KubeError::Status {
            method,
            path: path.to_owned(),
            code,
            reason: field("reason"),
            message,
        })
    }

    async fn json(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, &Value)>,
    ) -> Result<Value, KubeError> {
        let resp = self.send(&self.http, method.clone(), path, body).await?;
        let bytes = resp.bytes().await.map_err(|source| KubeError::Transport {
            method: method.clone(),
            path: path.to_owned(),
            error: source.without_url(),
        })?;
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|e| KubeError::Decode {
            what: format!("{method} {path}"),
            message: e.to_string(),
        })
    }

    /// GET; `None` on 404.
    pub async fn get(&self, path: &str) -> Result<Option<Value>, KubeError> {
        match self.json(Method::GET, path, None).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.code() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// LIST: the items and the list's resourceVersion.
    pub async fn list(&self, path: &str) -> Result<(Vec<Value>, String), KubeError> {
        let mut list = self.json(Method::GET, path, None).await?;
        let rv = list
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let items = match list.get_mut("items").map(Value::take) {
            Some(Value::Array(items)) => items,
            _ => Vec::new(),
        };
        Ok((items, rv))
    }

    /// The audiences the Kubernetes API server accepts, as far as this client can tell: the
    /// server's own URL and, when the client's token is a JWT (a service-account token, as in a
    /// pod), its `aud` and `iss` claims (a pod's token carries exactly the API server's
    /// audiences). A token requested for Vault with one of these would work against the cluster.
    pub async fn api_audiences(&self) -> Vec<String> {
        let mut audiences = vec![self.base.clone()];
        if let Ok(token) = self.token().await {
            audiences.extend(jwt_audiences(token.expose()));
        }
        audiences
    }

    /// GET Secret `namespace/name` (names checked, see [`secret_path`]); `None` on 404.
    pub async fn get_secret(&self, namespace: &str, name: &str) -> Result<Option<Value>, KubeError> {
        self.get(&secret_path(namespace, name)?).await
    }

    pub async fn create(&self, path: &str, body: &Value) -> Result<Value, KubeError> {
        self.json(Method::POST, path, Some(("application/json", body)))
            .await
    }

    /// PUT (a replace; with `metadata.resourceVersion` set it is a compare-and-swap).
    pub async fn replace(&self, path: &str, body: &Value) -> Result<Value, KubeError> {
        self.json(Method::PUT, path, Some(("application/json", body)))
            .await
    }

    /// JSON merge patch (RFC 7386): `null` removes a field.
    pub async fn merge_patch(&self, path: &str, body: &Value) -> Result<Value, KubeError> {
        self.json(Method::PATCH, path, Some(("application/merge-patch+json", body)))
            .await
    }

    /// DELETE; a 404 is success.
    pub async fn delete(&self, path: &str) -> Result<(), KubeError> {
        match self.json(Method::DELETE, path, None).await {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some(404) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Starts a watch of collection `path` from `resource_version`, with bookmarks; the server
    /// ends it after the configured watch timeout.
    pub async fn watch(&self, path: &str, resource_version: &str) -> Result<WatchStream, KubeError> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let full = format!(
            "{path}{sep}watch=1&allowWatchBookmarks=true&timeoutSeconds={}&resourceVersion={resource_version}",
            self.watch_timeout.as_secs()
        );
        let send = self.send(&self.watch_http, Method::GET, &full, None);
        let resp = tokio::time::timeout(self.request_timeout, send)
            .await
            .map_err(|_| KubeError::Status {
                method: Method::GET,
                path: path.to_owned(),
                code: 504,
                reason: "Timeout".into(),
                message: "the watch did not start in time".into(),
            })??;
        Ok(WatchStream {
            resp,
            buf: Vec::new(),
            path: path.to_owned(),
            idle: self.watch_timeout + WATCH_IDLE_GRACE,
        })
    }
}

/// The events of one watch, decoded line by line.
#[derive(Debug)]
pub struct WatchStream {
    resp: reqwest::Response,
    buf: Vec<u8>,
    path: String,
    idle: Duration,
}

impl WatchStream {
    /// The next event; `None` when the server ended the watch.
    pub async fn next(&mut self) -> Result<Option<WatchEvent>, KubeError> {
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                let line = line.trim_ascii();
                if line.is_empty() {
                    continue;
                }
                let mut event: Value =
                    serde_json::from_slice(line).map_err(|e| self.decode(e.to_string()))?;
                let kind = event
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let object = event.get_mut("object").map(Value::take).unwrap_or(Value::Null);
                return Ok(Some(WatchEvent { kind, object }));
            }
            if self.buf.len() > MAX_EVENT_BYTES {
                return Err(self.decode(format!("an event is larger than {MAX_EVENT_BYTES} bytes")));
            }
            let chunk = tokio::time::timeout(self.idle, self.resp.chunk())
                .await
                .map_err(|_| self.decode("no event or bookmark for too long".into()))?
                .map_err(|source| KubeError::Transport {
                    method: Method::GET,
                    path: self.path.clone(),
                    error: source.without_url(),
                })?;
            match chunk {
                Some(bytes) => self.buf.extend_from_slice(&bytes),
                None => return Ok(None),
            }
        }
    }

    fn decode(&self, message: String) -> KubeError {
        KubeError::Decode {
            what: format!("watch {}", self.path),
            message,
        }
    }
}

// API paths. Every segment that comes from an object (a namespace, a name) is checked here as
// the API server checks it (a namespace is a DNS label, an object name a DNS subdomain) and
// refused otherwise: `../../kube-system/secrets/x` is never encoded into a path that a URL
// parser would then normalise into another namespace. [`KubeClient`] checks every path once
// more before sending it ([`check_request_path`]).

fn namespace_segment(namespace: &str) -> Result<&str, KubeError> {
    check_dns_label(namespace).map_err(|reason| KubeError::UnsafePath {
        what: "namespace",
        value: namespace.to_owned(),
        reason,
    })?;
    Ok(namespace)
}

fn name_segment<'a>(what: &'static str, name: &'a str) -> Result<&'a str, KubeError> {
    check_dns_subdomain(name).map_err(|reason| KubeError::UnsafePath {
        what,
        value: name.to_owned(),
        reason,
    })?;
    Ok(name)
}

/// `/api/v1/namespaces/{ns}/secrets/{name}`
pub fn secret_path(namespace: &str, name: &str) -> Result<String, KubeError> {
    Ok(format!(
        "{}/{}",
        secrets_path(namespace)?,
        name_segment("Secret name", name)?
    ))
}

/// `/api/v1/namespaces/{ns}/secrets`
pub fn secrets_path(namespace: &str) -> Result<String, KubeError> {
    Ok(format!(
        "/api/v1/namespaces/{}/secrets",
        namespace_segment(namespace)?
    ))
}

/// The watch of one Secret by name: `/api/v1/namespaces/{ns}/secrets?fieldSelector=metadata.name={name}`.
pub fn secret_by_name_path(namespace: &str, name: &str) -> Result<String, KubeError> {
    Ok(format!(
        "{}?fieldSelector=metadata.name%3D{}",
        secrets_path(namespace)?,
        name_segment("Secret name", name)?
    ))
}

/// `/api/v1/namespaces/{ns}/serviceaccounts/{name}/token` (TokenRequest).
pub fn token_request_path(namespace: &str, service_account: &str) -> Result<String, KubeError> {
    Ok(format!(
        "/api/v1/namespaces/{}/serviceaccounts/{}/token",
        namespace_segment(namespace)?,
        name_segment("ServiceAccount name", service_account)?
    ))
}

/// `/api/v1/namespaces/{ns}/events`
pub fn events_path(namespace: &str) -> Result<String, KubeError> {
    Ok(format!(
        "/api/v1/namespaces/{}/events",
        namespace_segment(namespace)?
    ))
}

/// `/apis/coordination.k8s.io/v1/namespaces/{ns}/leases[/{name}]`
pub fn lease_path(namespace: &str, name: Option<&str>) -> Result<String, KubeError> {
    let collection = format!(
        "/apis/coordination.k8s.io/v1/namespaces/{}/leases",
        namespace_segment(namespace)?
    );
    match name {
        Some(n) => Ok(format!("{collection}/{}", name_segment("Lease name", n)?)),
        None => Ok(collection),
    }
}

/// `/apis/cert-manager.io/v1/namespaces/{ns}/{plural}[/{name}]`
pub fn cm_path(namespace: &str, plural: &'static str, name: Option<&str>) -> Result<String, KubeError> {
    let collection = format!(
        "/apis/cert-manager.io/v1/namespaces/{}/{plural}",
        namespace_segment(namespace)?
    );
    match name {
        Some(n) => Ok(format!("{collection}/{}", name_segment("object name", n)?)),
        None => Ok(collection),
    }
}

/// `/apis/cert-manager.io/v1/{plural}[/{name}]`: a cluster-scoped kind, or every namespace.
pub fn cluster_cm_path(plural: &'static str, name: Option<&str>) -> Result<String, KubeError> {
    match name {
        Some(n) => Ok(format!(
            "/apis/cert-manager.io/v1/{plural}/{}",
            name_segment("object name", n)?
        )),
        None => Ok(format!("/apis/cert-manager.io/v1/{plural}")),
    }
}

/// The last wall before a request leaves: every path segment must have the shape of an API
/// path segment (group, version, resource, namespace and object names are all DNS subdomains),
/// so no `..`, empty, encoded or foreign segment can reach the URL parser; the query may hold
/// only what the builders above put there.
fn check_request_path(full: &str) -> Result<(), KubeError> {
    let (path, query) = full.split_once('?').unwrap_or((full, ""));
    let refuse = |reason| KubeError::UnsafePath {
        what: "API path",
        value: full.to_owned(),
        reason,
    };
    let segments = path
        .strip_prefix('/')
        .ok_or_else(|| refuse("must start with '/'"))?;
    for segment in segments.split('/') {
        check_dns_subdomain(segment).map_err(|_| refuse("has a segment that is not an API name"))?;
    }
    if !query
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_' | b'%' | b'=' | b'&'))
    {
        return Err(refuse("has a query with characters the client never writes"));
    }
    Ok(())
}

/// `aud` (a string or a list) and `iss` of a JWT's payload, unverified (only used to refuse).
fn jwt_audiences(token: &str) -> Vec<String> {
    use base64::Engine;
    let Some(payload) = token.split('.').nth(1) else {
        return Vec::new();
    };
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('='))
    else {
        return Vec::new();
    };
    let Ok(claims) = serde_json::from_slice::<Value>(&bytes) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    match claims.get("aud") {
        Some(Value::String(a)) => out.push(a.clone()),
        Some(Value::Array(list)) => out.extend(list.iter().filter_map(Value::as_str).map(str::to_owned)),
        _ => {}
    }
    if let Some(iss) = claims.get("iss").and_then(Value::as_str) {
        out.push(iss.to_owned());
    }
    out
}

/// A Secret's `data` values, base64-decoded. Keys whose value does not decode are left out.
pub fn secret_data(secret: &Value) -> std::collections::BTreeMap<String, Vec<u8>> {
    use base64::Engine;
    let mut out = std::collections::BTreeMap::new();
    if let Some(data) = secret.get("data").and_then(Value::as_object) {
        for (k, v) in data {
            if let Some(decoded) = v
                .as_str()
                .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
            {
                out.insert(k.clone(), decoded);
            }
        }
    }
    out
}

/// `metadata.<field>` as a string ("" when absent).
pub fn meta_str<'a>(object: &'a Value, field: &str) -> &'a str {
    object
        .get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The paths of the issue: a Secret name or a ServiceAccount name that would climb out of
    /// the Issuer's namespace is refused before a path exists.
    #[test]
    fn hostile_names_never_become_paths() {
        for name in [
            "../../kube-system/secrets/victim",
            "..",
            "a/b",
            "a%2Fb",
            "UPPER",
            "",
            "a?watch=1",
            "a#b",
        ] {
            assert!(
                matches!(secret_path("apps", name), Err(KubeError::UnsafePath { .. })),
                "{name}"
            );
            assert!(
                matches!(
                    token_request_path("apps", name),
                    Err(KubeError::UnsafePath { .. })
                ),
                "{name}"
            );
            assert!(secret_by_name_path("apps", name).is_err(), "{name}");
            assert!(cm_path("apps", "certificates", Some(name)).is_err(), "{name}");
            assert!(cluster_cm_path("clusterissuers", Some(name)).is_err(), "{name}");
            assert!(secret_path(name, "ok").is_err(), "namespace {name}");
        }
        assert_eq!(
            secret_path("apps", "vault.token-1").unwrap(),
            "/api/v1/namespaces/apps/secrets/vault.token-1"
        );
        assert_eq!(
            token_request_path("apps", "vault-issuer").unwrap(),
            "/api/v1/namespaces/apps/serviceaccounts/vault-issuer/token"
        );
    }

    #[test]
    fn the_api_audiences_include_the_clients_own_token_claims() {
        use base64::Engine;
        let b64 = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let jwt = format!(
            "{}.{}.sig",
            b64(r#"{"alg":"RS256"}"#),
            b64(r#"{"aud":["https://oidc.example/cluster","extra"],"iss":"https://oidc.example/cluster"}"#)
        );
        assert_eq!(
            jwt_audiences(&jwt),
            [
                "https://oidc.example/cluster",
                "extra",
                "https://oidc.example/cluster"
            ]
        );
        assert!(jwt_audiences("static-token-not-a-jwt").is_empty());
        assert!(jwt_audiences("a.!!!.c").is_empty());
    }

    #[test]
    fn hostile_request_paths_are_refused_at_send() {
        for path in [
            "/api/v1/namespaces/a/secrets/../../kube-system/secrets/victim",
            "/api/v1/namespaces/a/secrets/%2e%2e",
            "/api/v1//secrets",
            "api/v1/secrets",
            "/api/v1/secrets?x=1#frag",
            "/api/v1/secrets?x=a b",
            "/api/v1/secrets/a\\b",
        ] {
            assert!(check_request_path(path).is_err(), "{path}");
        }
        for path in [
            "/api/v1/namespaces/apps/secrets?labelSelector=controller.cert-manager.io%2Ffao%3Dtrue",
            "/apis/cert-manager.io/v1/namespaces/apps/certificates/web/status",
            "/apis/coordination.k8s.io/v1/namespaces/cert-manager/leases/certkeeper-controller",
            "/api/v1/secrets?fieldSelector=metadata.name%3Dweb-tls&watch=1&allowWatchBookmarks=true&timeoutSeconds=290&resourceVersion=12",
        ] {
            check_request_path(path).unwrap();
        }
    }
}
