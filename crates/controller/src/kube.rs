//! The controller's client of the Kubernetes API: kube-rs for the connection (kubeconfig,
//! in-cluster service account, token / client-certificate / exec-plugin credentials, rustls with
//! aws-lc-rs), and on top of it the one thing the controller adds: every request path is built
//! from checked segments and checked once more before it leaves ([`check_request_path`]).
//!
//! Connection, as kubectl finds it ([`KubeConfig::load`]): `--kubeconfig FILE`, else the files
//! in `KUBECONFIG` (merged as kubectl merges them), else `~/.kube/config`, else the in-cluster
//! service account; `--context` picks a context. The old explicit form ([`KubeConfig::explicit`]:
//! server URL, bearer token or token file, CA bundle) stays for scripts and tests.

use std::path::{Path, PathBuf};
use std::time::Duration;

use certkeeper_core::spec::{IssuerKind, check_dns_label, check_dns_subdomain};
use certkeeper_core::{FailureClass, Secret};
use http::Method;
use http_body_util::BodyExt;
use kube::config::{KubeConfigOptions, Kubeconfig};
use secrecy::ExposeSecret;
use serde_json::Value;

/// Where the in-cluster service account's files are.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The largest single watch event (one object) accepted; a bigger line ends the watch.
const MAX_EVENT_BYTES: usize = 16 << 20;

/// The largest non-watch answer read (a list of every Secret in a big cluster stays far below).
const MAX_BODY_BYTES: usize = 512 << 20;

/// A watch that delivers nothing (not even a bookmark) for its server-side timeout plus this
/// long is presumed dead.
const WATCH_IDLE_GRACE: Duration = Duration::from_secs(40);

/// The field manager of every write (create, replace, patch).
pub const FIELD_MANAGER: &str = "certkeeper";

/// Server-side watch timeout by default: the apiserver ends the watch after this and the
/// reflector resumes.
pub const WATCH_TIMEOUT_SECS: u64 = 290;

/// The bearer token of an explicit connection.
#[derive(Debug, Clone)]
pub enum TokenSource {
    Value(Secret),
    /// Re-read by the client when it changes (kube-rs reloads token files within a minute),
    /// so the kubelet's rotation of projected tokens needs no restart.
    File(PathBuf),
}

/// How to reach the API server: kube-rs's connection settings (cluster URL, CA, credentials)
/// and the controller's own timeouts.
#[derive(Debug, Clone)]
pub struct KubeConfig {
    connection: kube::Config,
    /// Only to tell which audiences the API server accepts ([`KubeClient::api_audiences`]).
    token_hint: Option<TokenSource>,
    pub connect_timeout: Duration,
    /// Bounds every request except watches (which are bounded by `watch_timeout`).
    pub request_timeout: Duration,
    /// Server-side timeout of each watch ([`WATCH_TIMEOUT_SECS`] by default).
    pub watch_timeout: Duration,
}

impl KubeConfig {
    fn with(connection: kube::Config) -> Self {
        let token_hint = match (&connection.auth_info.token, &connection.auth_info.token_file) {
            (Some(token), _) => Some(TokenSource::Value(Secret::new(token.expose_secret().trim()))),
            (None, Some(file)) => Some(TokenSource::File(PathBuf::from(file))),
            (None, None) => None,
        };
        KubeConfig {
            connection,
            token_hint,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            watch_timeout: Duration::from_secs(WATCH_TIMEOUT_SECS),
        }
    }

    /// An explicit server URL, bearer token and CA bundle (`None`: the system roots).
    pub fn explicit(server: &str, token: TokenSource, ca_pem: Option<&str>) -> Result<Self, KubeError> {
        let url = server
            .parse::<http::Uri>()
            .map_err(|e| KubeError::Config(format!("API server URL {server:?}: {e}")))?;
        let mut connection = kube::Config::new(url);
        if let Some(pem) = ca_pem {
            connection.root_cert = Some(ca_bundle(pem)?);
        }
        match &token {
            TokenSource::Value(secret) => {
                connection.auth_info.token = Some(secret.expose().to_owned().into())
            }
            TokenSource::File(path) => connection.auth_info.token_file = Some(path.display().to_string()),
        }
        Ok(KubeConfig::with(connection))
    }

    /// The pod's service account: `KUBERNETES_SERVICE_HOST`, `KUBERNETES_SERVICE_PORT`, and
    /// `token` / `ca.crt` in [`SERVICE_ACCOUNT_DIR`].
    pub fn in_cluster() -> Result<Self, KubeError> {
        kube::Config::incluster()
            .map(KubeConfig::with)
            .map_err(|e| KubeError::Config(format!("in-cluster service account: {e}")))
    }

    /// As kubectl finds its cluster: `kubeconfig` (a file), else the files in `KUBECONFIG`
    /// (merged: the first file to set a value wins), else `~/.kube/config`, else the in-cluster
    /// service account. `context` picks a context of the kubeconfig (default: its current one).
    pub async fn load(kubeconfig: Option<&Path>, context: Option<&str>) -> Result<Self, KubeError> {
        let file = |e: kube::config::KubeconfigError| KubeError::Config(format!("kubeconfig: {e}"));
        let found = match kubeconfig {
            Some(path) => Some(Kubeconfig::read_from(path).map_err(file)?),
            None => match Kubeconfig::from_env().map_err(file)? {
                Some(merged) => Some(merged),
                None => match default_kubeconfig().filter(|p| p.exists()) {
                    Some(path) => Some(Kubeconfig::read_from(path).map_err(file)?),
                    None => None,
                },
            },
        };
        let Some(found) = found else {
            if let Some(context) = context {
                return Err(KubeError::Config(format!(
                    "--context {context}: no kubeconfig (neither --kubeconfig, KUBECONFIG nor ~/.kube/config)"
                )));
            }
            return KubeConfig::in_cluster();
        };
        let options = KubeConfigOptions {
            context: context.map(str::to_owned),
            ..KubeConfigOptions::default()
        };
        kube::Config::from_custom_kubeconfig(found, &options)
            .await
            .map(KubeConfig::with)
            .map_err(file)
    }

    /// The API server's URL.
    pub fn server(&self) -> String {
        self.connection
            .cluster_url
            .to_string()
            .trim_end_matches('/')
            .to_owned()
    }

    /// The namespace of the kubeconfig's context (or the pod's), `default` without one.
    pub fn default_namespace(&self) -> &str {
        &self.connection.default_namespace
    }
}

fn default_kubeconfig() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|home| Path::new(&home).join(".kube").join("config"))
}

/// The DER certificates of a PEM bundle.
fn ca_bundle(pem: &str) -> Result<Vec<Vec<u8>>, KubeError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| KubeError::Config(format!("API server CA is not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(KubeError::Config(
            "API server CA bundle has no certificate".into(),
        ));
    }
    Ok(certs)
}

/// A failed API call. Never carries the token or object contents.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("{0}")]
    Config(String),
    /// Below HTTP: the cause's chain is written out in `detail` ("timed out" for a timeout).
    #[error("{method} {path}: {detail}")]
    Transport {
        method: Method,
        path: String,
        detail: String,
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
    /// A name, namespace or path from an object was refused before any request was built: the
    /// client never sends a path made of a segment the API server would not accept as a name.
    #[error("refused to build an API path: {what} {value:?} {reason}")]
    UnsafePath {
        what: &'static str,
        value: String,
        reason: &'static str,
    },
}

/// An error and its causes, each once ("a: b: c").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
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

    fn transport(method: &Method, path: &str, detail: String) -> KubeError {
        KubeError::Transport {
            method: method.clone(),
            path: path.to_owned(),
            detail,
        }
    }

    fn timed_out(method: &Method, path: &str) -> KubeError {
        KubeError::transport(method, path, "timed out".to_owned())
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
#[derive(Clone)]
pub struct KubeClient {
    client: kube::Client,
    server: String,
    token_hint: Option<TokenSource>,
    request_timeout: Duration,
    watch_timeout: Duration,
}

impl std::fmt::Debug for KubeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeClient")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl KubeClient {
    pub fn new(config: &KubeConfig) -> Result<Self, KubeError> {
        let mut connection = config.connection.clone();
        connection.connect_timeout = Some(config.connect_timeout);
        // Requests are bounded here (`request_timeout`), watches by their idle timer.
        connection.read_timeout = None;
        connection.write_timeout = Some(config.request_timeout);
        // The controller decides its own retries (reconcile backoff, the engine's schedule).
        connection.default_retry = false;
        let client = kube::Client::try_from(connection)
            .map_err(|e| KubeError::Config(format!("cannot build the API client: {}", error_chain(&e))))?;
        Ok(KubeClient {
            client,
            server: config.server(),
            token_hint: config.token_hint.clone(),
            request_timeout: config.request_timeout,
            watch_timeout: config.watch_timeout.max(Duration::from_secs(1)),
        })
    }

    /// Sends one request (path checked first) and returns the response of a 2xx, the API's
    /// Status as an error otherwise.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, &Value)>,
    ) -> Result<http::Response<kube::client::Body>, KubeError> {
        check_request_path(path)?;
        let mut request = http::Request::builder()
            .method(method.clone())
            .uri(path)
            .header(http::header::ACCEPT, "application/json");
        let bytes = match body {
            Some((content_type, body)) => {
                request = request.header(http::header::CONTENT_TYPE, content_type);
                serde_json::to_vec(body).map_err(|e| KubeError::Decode {
                    what: format!("{method} {path}"),
                    message: e.to_string(),
                })?
            }
            None => Vec::new(),
        };
        let request = request
            .body(kube::client::Body::from(bytes))
            .map_err(|e| KubeError::Config(format!("{method} {path}: {e}")))?;
        let resp = self
            .client
            .send(request)
            .await
            .map_err(|e| KubeError::transport(&method, path, error_chain(&e)))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let code = resp.status().as_u16();
        let text = read_body(resp.into_body(), 64 << 10).await.unwrap_or_default();
        let status: Value = serde_json::from_slice(&text).unwrap_or(Value::Null);
        let field = |k: &str| {
            status
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let mut message = field("message");
        if message.is_empty() {
            message = String::from_utf8_lossy(&text).chars().take(300).collect();
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
        // Every write names its field manager, so managedFields tell certkeeper's fields from
        // other writers' (kubectl, cmctl, cert-manager's tools).
        let managed;
        let path = if body.is_some() && !path.contains("fieldManager=") {
            let sep = if path.contains('?') { '&' } else { '?' };
            managed = format!("{path}{sep}fieldManager={FIELD_MANAGER}");
            managed.as_str()
        } else {
            path
        };
        let call = async {
            let resp = self.send(method.clone(), path, body).await?;
            read_body(resp.into_body(), MAX_BODY_BYTES)
                .await
                .map_err(|detail| KubeError::transport(&method, path, detail))
        };
        let bytes = tokio::time::timeout(self.request_timeout, call)
            .await
            .map_err(|_| KubeError::timed_out(&method, path))??;
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
        let mut audiences = vec![self.server.clone()];
        let token = match &self.token_hint {
            Some(TokenSource::Value(s)) => Some(s.clone()),
            Some(TokenSource::File(path)) => tokio::fs::read_to_string(path)
                .await
                .ok()
                .map(|s| Secret::new(s.trim())),
            None => None,
        };
        if let Some(token) = token {
            audiences.extend(jwt_audiences(token.expose()));
        }
        audiences
    }

    /// GET of a typed object; `None` on 404.
    pub async fn get_object<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<Option<T>, KubeError> {
        match self.get(path).await? {
            Some(value) => decode_object(path, value).map(Some),
            None => Ok(None),
        }
    }

    /// POST of a typed object; the object as created.
    pub async fn create_object<T: serde::Serialize + serde::de::DeserializeOwned>(
        &self,
        path: &str,
        object: &T,
    ) -> Result<T, KubeError> {
        let created = self.create(path, &encode_object(path, object)?).await?;
        decode_object(path, created)
    }

    /// PUT of a typed object (a compare-and-swap on its `metadata.resourceVersion`).
    pub async fn replace_object<T: serde::Serialize + serde::de::DeserializeOwned>(
        &self,
        path: &str,
        object: &T,
    ) -> Result<T, KubeError> {
        let replaced = self.replace(path, &encode_object(path, object)?).await?;
        decode_object(path, replaced)
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
        let send = self.send(Method::GET, &full, None);
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
            body: resp.into_body(),
            buf: Vec::new(),
            path: path.to_owned(),
            idle: self.watch_timeout + WATCH_IDLE_GRACE,
        })
    }
}

fn encode_object<T: serde::Serialize>(path: &str, object: &T) -> Result<Value, KubeError> {
    serde_json::to_value(object).map_err(|e| KubeError::Decode {
        what: format!("the body for {path}"),
        message: e.to_string(),
    })
}

fn decode_object<T: serde::de::DeserializeOwned>(path: &str, value: Value) -> Result<T, KubeError> {
    serde_json::from_value(value).map_err(|e| KubeError::Decode {
        what: format!("the answer of {path}"),
        message: e.to_string(),
    })
}

/// A body read whole, at most `limit` bytes.
async fn read_body(mut body: kube::client::Body, limit: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| error_chain(&e))?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > limit {
                return Err(format!("the answer is larger than {limit} bytes"));
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out)
}

/// The events of one watch, decoded line by line.
pub struct WatchStream {
    body: kube::client::Body,
    buf: Vec<u8>,
    path: String,
    idle: Duration,
}

impl std::fmt::Debug for WatchStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchStream")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
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
            let frame = tokio::time::timeout(self.idle, self.body.frame())
                .await
                .map_err(|_| self.decode("no event or bookmark for too long".into()))?;
            match frame {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
                Some(Err(e)) => {
                    return Err(KubeError::transport(&Method::GET, &self.path, error_chain(&e)));
                }
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

/// An issuer object's path (`name` given) or collection, by kind: namespaced kinds in
/// `namespace` (every namespace when `None`), cluster-scoped kinds ignore it.
/// `/apis/certkeeper.io/v1/namespaces/apps/vaultissuers/vault`, `/apis/cert-manager.io/v1/clusterissuers`.
pub fn issuer_path(
    kind: IssuerKind,
    namespace: Option<&str>,
    name: Option<&str>,
) -> Result<String, KubeError> {
    let api = kind.api_version();
    let plural = kind.plural();
    let collection = match namespace.filter(|_| kind.namespaced()) {
        Some(ns) => format!("/apis/{api}/namespaces/{}/{plural}", namespace_segment(ns)?),
        None => format!("/apis/{api}/{plural}"),
    };
    match name {
        Some(n) => Ok(format!("{collection}/{}", name_segment("object name", n)?)),
        None => Ok(collection),
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
