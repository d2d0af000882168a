//! HTTP transport: one pooled reqwest client per Vault server, and the single request function
//! that turns every answer into either JSON or a typed [`VaultError`].
//!
//! Redirects are never followed (a standby's 307 points at a leader that may be dead), every
//! request carries a timeout, and bodies are read with a size cap.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use certkeeper_core::{FailureClass, Secret};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{CONTENT_TYPE, HeaderMap, LOCATION, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use crate::config::{ClientIdentity, VaultConfig};
use crate::error::{ErrorKind, Operation, Unanswered, VaultError, clean_vault_errors};
use crate::path::ApiPath;
use crate::redact::{BodyPolicy, json_problem, quote_body, redact};

/// Bound on a `sys/health` request (when the request timeout is not shorter): a node that does
/// not answer its health check soon is passed over, and a probe round waits for its slowest node.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(3);

/// Answers larger than this are not Vault PKI answers.
const MAX_BODY: usize = 4 * 1024 * 1024;

/// Receives one call per HTTP exchange, for metrics. Implementations must be cheap.
pub trait RequestObserver: Send + Sync {
    /// `status` is `None` when no HTTP answer arrived; `class` is `None` on success.
    fn observe(
        &self,
        operation: Operation,
        status: Option<u16>,
        class: Option<FailureClass>,
        elapsed: Duration,
    );

    /// As [`RequestObserver::observe`], naming the node asked (its configured address) when the
    /// issuer has several; the default ignores the address.
    fn observe_at(
        &self,
        address: &str,
        operation: Operation,
        status: Option<u16>,
        class: Option<FailureClass>,
        elapsed: Duration,
    ) {
        let _ = address;
        self.observe(operation, status, class, elapsed);
    }
}

/// A successful (2xx or accepted) answer, not yet decoded.
pub(crate) struct Answer {
    pub status: u16,
    pub bytes: Vec<u8>,
    /// Whether errors about this answer may quote it.
    pub policy: BodyPolicy,
}

impl std::fmt::Debug for Answer {
    // The bytes of a login answer are a token: show only their size.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answer")
            .field("status", &self.status)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

impl Answer {
    /// Decode the body as `T`. A body that is not the JSON Vault sends (a proxy's page, a
    /// truncated answer) is a decode error, which is transient.
    pub fn decode<T: DeserializeOwned>(&self, op: Operation) -> Result<T, VaultError> {
        serde_json::from_slice(&self.bytes).map_err(|e| {
            VaultError::new(
                op,
                ErrorKind::Decode {
                    status: self.status,
                    reason: json_problem(&e, &self.bytes, self.policy),
                },
            )
        })
    }
}

pub(crate) struct Transport {
    http: reqwest::Client,
    base: Url,
    health_timeout: Duration,
    /// The address as configured (before `serverName` rewrote the host), for logs and observers.
    address: String,
    /// `X-Vault-Namespace` of PKI requests ([`Scope::Pki`]).
    namespace: Option<String>,
    /// `X-Vault-Namespace` of login and token requests ([`Scope::Auth`]).
    auth_namespace: Option<String>,
    observer: Option<Arc<dyn RequestObserver>>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("base", &self.base.as_str())
            .field("namespace", &self.namespace)
            .field("auth_namespace", &self.auth_namespace)
            .finish()
    }
}

/// A request body: any `Serialize` value, encoded once when the request is built.
pub(crate) trait ErasedBody: Send + Sync {
    fn to_json(&self) -> serde_json::Result<Vec<u8>>;
}

impl<T: Serialize + Send + Sync> ErasedBody for T {
    fn to_json(&self) -> serde_json::Result<Vec<u8>> {
        serde_json::to_vec(self)
    }
}

/// Which namespace header a request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// The PKI mount's namespace (`spec.vault.namespace`): sign.
    Pki,
    /// The auth method's namespace (`authNamespace` / `certkeeper.io/vault-auth-namespace`,
    /// else `spec.vault.namespace`): login, and what is done with the token it gives (renew,
    /// lookup, revoke), which lives where it was made.
    Auth,
    /// No namespace: `sys/health`.
    Root,
}

impl Transport {
    pub fn new(
        config: &VaultConfig,
        identity: Option<&ClientIdentity>,
        observer: Option<Arc<dyn RequestObserver>>,
    ) -> Result<Self, VaultError> {
        let bad = |msg: String| VaultError::config(Operation::Login, msg);
        let mut base = Url::parse(config.server.trim())
            .map_err(|e| bad(format!("server {:?} is not a URL: {e}", config.server)))?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(bad(format!(
                "server {:?} must be an http:// or https:// address",
                config.server
            )));
        }
        // The base URL is quoted in transport errors (and by reqwest's own errors): it must hold
        // nothing secret, and nothing that request paths could be confused with. The message
        // does not repeat the URL, which may carry a password.
        if !base.username().is_empty() || base.password().is_some() {
            return Err(bad(
                "server must not carry credentials (user:password@); use an auth method".into(),
            ));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(bad(format!(
                "server {:?} must not have a query or fragment",
                config.server
            )));
        }
        // Accept "https://vault:8200", "https://vault:8200/" and "https://vault:8200/v1".
        let trimmed = base
            .path()
            .trim_end_matches('/')
            .trim_end_matches("/v1")
            .to_owned();
        base.set_path(&format!("{trimmed}/v1/"));

        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .no_proxy()
            .tls_backend_rustls()
            .user_agent(concat!("certkeeper/", env!("CARGO_PKG_VERSION")));

        if let Some(bundle) = &config.ca_bundle_pem {
            let certs = reqwest::Certificate::from_pem_bundle(bundle.as_bytes())
                .map_err(|e| bad(format!("CA bundle is not valid PEM: {e}")))?;
            if certs.is_empty() {
                return Err(bad("CA bundle contains no certificate".into()));
            }
            builder = builder.tls_certs_only(certs);
        }
        if let Some(id) = identity {
            let mut pem = id.cert_pem.clone().into_bytes();
            pem.push(b'\n');
            pem.extend_from_slice(id.key_pem.expose().as_bytes());
            let identity = reqwest::Identity::from_pem(&pem)
                .map_err(|e| bad(format!("client certificate or key is not valid PEM: {e}")))?;
            builder = builder.identity(identity);
        }
        if let Some(name) = config
            .server_name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
        {
            // Verify the certificate for `name` and send it as SNI: the URL carries `name`
            // while the connection goes to the configured host.
            let original = base
                .host_str()
                .unwrap_or_default()
                .trim_matches(['[', ']'])
                .to_owned();
            builder = builder.dns_resolver(Arc::new(ServerNameResolver {
                name: name.to_owned(),
                original,
            }));
            base.set_host(Some(name))
                .map_err(|e| bad(format!("serverName {name:?} is not a host name: {e}")))?;
        }
        let http = builder
            .build()
            .map_err(|e| bad(format!("cannot build HTTP client: {e}")))?;
        let namespace = config
            .namespace
            .as_deref()
            .map(|n| n.trim_matches('/').to_owned())
            .filter(|n| !n.is_empty());
        let auth_namespace = match config.auth_namespace.as_deref() {
            Some(n) => {
                Some(crate::address::parse_namespace(n).map_err(|e| bad(format!("auth namespace: {e}")))?)
            }
            None => namespace.clone(),
        };
        Ok(Transport {
            http,
            base,
            health_timeout: config.request_timeout.min(HEALTH_TIMEOUT),
            address: config.server.trim().to_owned(),
            namespace,
            auth_namespace,
            observer,
        })
    }

    pub fn base(&self) -> &Url {
        &self.base
    }

    /// The address as configured.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Perform one request against `/v1/<path>`. Success is any 2xx with a JSON (or empty) body.
    pub async fn request(
        &self,
        op: Operation,
        method: Method,
        path: &ApiPath,
        body: Option<&dyn ErasedBody>,
        token: Option<&Secret>,
        scope: Scope,
    ) -> Result<Answer, VaultError> {
        self.request_accepting(op, method, path, body, token, scope, &[])
            .await
    }

    /// As [`Transport::request`], also treating the `accept` statuses as answers (sys/health
    /// reports standby, sealed and uninitialized through its status code).
    #[allow(clippy::too_many_arguments)]
    pub async fn request_accepting(
        &self,
        op: Operation,
        method: Method,
        path: &ApiPath,
        body: Option<&dyn ErasedBody>,
        token: Option<&Secret>,
        scope: Scope,
        accept: &[u16],
    ) -> Result<Answer, VaultError> {
        let started = Instant::now();
        let result = self.exchange(op, method, path, body, token, scope, accept).await;
        if let Some(obs) = &self.observer {
            let (status, class) = match &result {
                Ok(a) => (Some(a.status), None),
                Err(e) => (e.status(), Some(e.class())),
            };
            obs.observe_at(&self.address, op, status, class, started.elapsed());
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    async fn exchange(
        &self,
        op: Operation,
        method: Method,
        path: &ApiPath,
        body: Option<&dyn ErasedBody>,
        token: Option<&Secret>,
        scope: Scope,
        accept: &[u16],
    ) -> Result<Answer, VaultError> {
        // Segments appended to the configured base: a path cannot change where this goes.
        let url = path.url(&self.base);
        let policy = BodyPolicy::for_request(op, path);
        let mut req = self
            .http
            .request(method, url.clone())
            .header("X-Vault-Request", "true");
        if op == Operation::Health {
            req = req.timeout(self.health_timeout);
        }
        if let Some(token) = token {
            req = req.header("X-Vault-Token", token.expose());
        }
        let namespace = match scope {
            Scope::Pki => self.namespace.as_ref(),
            Scope::Auth => self.auth_namespace.as_ref(),
            Scope::Root => None,
        };
        if let Some(ns) = namespace {
            req = req.header("X-Vault-Namespace", ns);
        }
        if let Some(body) = body {
            let bytes = body
                .to_json()
                .map_err(|e| VaultError::config(op, format!("cannot encode request: {e}")))?;
            req = req.header(CONTENT_TYPE, "application/json").body(bytes);
        }
        let transport = |source: reqwest::Error| {
            VaultError::new(op, ErrorKind::Transport(Unanswered::new(url.as_str(), source)))
        };
        let mut resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        let accepted = status.is_success() || accept.contains(&status.as_u16());
        // Only failures need headers (Retry-After, Location); successes skip the copy.
        let headers = if accepted {
            HeaderMap::new()
        } else {
            resp.headers().clone()
        };
        let mut bytes = Vec::with_capacity(
            resp.content_length()
                .map_or(4096, |n| n.min(MAX_BODY as u64) as usize),
        );
        while let Some(chunk) = resp.chunk().await.map_err(transport)? {
            if bytes.len() + chunk.len() > MAX_BODY {
                return Err(VaultError::new(
                    op,
                    ErrorKind::Decode {
                        status: status.as_u16(),
                        reason: format!("body larger than {MAX_BODY} bytes"),
                    },
                ));
            }
            bytes.extend_from_slice(&chunk);
        }
        if accepted {
            return Ok(Answer {
                status: status.as_u16(),
                bytes,
                policy,
            });
        }
        Err(status_error(op, status, &headers, &bytes, policy))
    }
}

fn status_error(
    op: Operation,
    status: StatusCode,
    headers: &HeaderMap,
    bytes: &[u8],
    policy: BodyPolicy,
) -> VaultError {
    #[derive(serde::Deserialize)]
    struct VaultErrors {
        #[serde(default)]
        errors: Vec<String>,
    }
    let (errors, body) = match serde_json::from_slice::<VaultErrors>(bytes) {
        Ok(v) => (clean_vault_errors(v.errors), None),
        Err(_) => (Vec::new(), quote_body(bytes, policy)),
    };
    let retry_after = headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let location = headers.get(LOCATION).and_then(|v| v.to_str().ok()).map(redact);
    VaultError::new(
        op,
        ErrorKind::Status {
            status: status.as_u16(),
            errors,
            body,
            retry_after,
            location,
        },
    )
}

/// Retry-After is either delta-seconds or an HTTP date.
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// Resolves `serverName` to the address of the configured host, so the TLS layer verifies and
/// sends the configured name while connecting where `server` points.
struct ServerNameResolver {
    name: String,
    original: String,
}

impl Resolve for ServerNameResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let target = if name.as_str().eq_ignore_ascii_case(&self.name) {
            self.original.clone()
        } else {
            name.as_str().to_owned()
        };
        Box::pin(async move {
            // Port 0: reqwest substitutes the port from the URL.
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((target.as_str(), 0)).await?.collect();
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_seconds_and_dates() {
        assert_eq!(parse_retry_after("1"), Some(Duration::from_secs(1)));
        assert_eq!(parse_retry_after(" 30 "), Some(Duration::from_secs(30)));
        let future = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(120));
        let d = parse_retry_after(&future).unwrap();
        assert!(
            d > Duration::from_secs(100) && d <= Duration::from_secs(120),
            "{d:?}"
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn base_url_accepts_common_spellings() {
        for server in [
            "http://127.0.0.1:8200",
            "http://127.0.0.1:8200/",
            "http://127.0.0.1:8200/v1",
        ] {
            let t = Transport::new(&VaultConfig::new(server), None, None).unwrap();
            assert_eq!(t.base().as_str(), "http://127.0.0.1:8200/v1/", "{server}");
        }
        for bad in [
            "127.0.0.1:8200",
            "ftp://x",
            "not a url",
            "http://127.0.0.1:8200/?x=1",
            "http://127.0.0.1:8200/#f",
        ] {
            let err = Transport::new(&VaultConfig::new(bad), None, None).unwrap_err();
            assert_eq!(err.class(), FailureClass::Invalid, "{bad}");
            assert!(err.to_string().contains(bad), "{err}");
        }
    }

    /// Transport errors quote the URL (ours and reqwest's Debug): a server URL with
    /// credentials is refused, without repeating them.
    #[test]
    fn hostile_server_url_with_credentials_is_refused() {
        for bad in [
            "https://user:hunter2secret@127.0.0.1:8200",
            "https://hunter2secret@127.0.0.1:8200",
        ] {
            let err = Transport::new(&VaultConfig::new(bad), None, None).unwrap_err();
            assert_eq!(err.class(), FailureClass::Invalid);
            assert!(!format!("{err} {err:?}").contains("hunter2secret"), "{err:?}");
        }
    }

    /// Every request URL is the base plus validated segments; the shapes that `Url::join`
    /// would have let replace the host are refused by `ApiPath` before this point.
    #[test]
    fn request_urls_keep_the_configured_host() {
        let t = Transport::new(&VaultConfig::new("http://127.0.0.1:8200/vault"), None, None).unwrap();
        let url = ApiPath::parse("pki/sign/web").unwrap().url(t.base());
        assert_eq!(url.as_str(), "http://127.0.0.1:8200/vault/v1/pki/sign/web");
    }

    #[test]
    fn server_name_rewrites_the_url_host() {
        let mut cfg = VaultConfig::new("https://127.0.0.1:8200");
        cfg.server_name = Some("vault.test".into());
        let t = Transport::new(&cfg, None, None).unwrap();
        assert_eq!(t.base().as_str(), "https://vault.test:8200/v1/");
    }

    #[test]
    fn garbage_ca_bundle_is_a_config_error() {
        let mut cfg = VaultConfig::new("https://127.0.0.1:8200");
        cfg.ca_bundle_pem = Some("not pem".into());
        let err = Transport::new(&cfg, None, None).unwrap_err();
        assert_eq!(err.class(), FailureClass::Invalid);
        assert!(err.to_string().contains("CA bundle"), "{err}");
    }
}
