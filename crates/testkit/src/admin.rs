//! `Admin`: a small HTTP client for setting up an OpenBao server in tests (mounts, policies,
//! tokens, namespaces, quotas, seal). It is deliberately independent of certkeeper's own client,
//! so tests never set up the server with the code they are testing.
//!
//! Auth-method helpers live in `auth.rs`, PKI setup in `pki.rs` (both `impl Admin`).

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

/// The builder every testkit HTTP client starts from: no proxy, no redirects (a 307 from a
/// standby must stay visible), bounded connect and request times.
pub(crate) fn client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
}

/// A plain-HTTP client with short timeouts, for health polling.
pub(crate) fn probe_client() -> Result<reqwest::Client> {
    client_builder()
        .timeout(Duration::from_secs(3))
        .pool_max_idle_per_host(0)
        .build()
        .context("building an HTTP client")
}

/// The status of `GET {addr}/v1/sys/health`, or None if the request failed.
pub(crate) async fn health_status(client: &reqwest::Client, addr: &str) -> Option<u16> {
    client
        .get(format!("{addr}/v1/sys/health"))
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

/// An authenticated OpenBao client for test setup. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Admin {
    addr: String,
    token: String,
    namespace: Option<String>,
    client: Result<reqwest::Client, String>,
}

fn normalize(path: &str) -> &str {
    let path = path.trim_start_matches('/');
    path.strip_prefix("v1/").unwrap_or(path)
}

impl Admin {
    /// A client for `addr` (e.g. `http://127.0.0.1:8200`) using `token` (empty: no token header).
    pub fn new(addr: &str, token: &str) -> Self {
        let client = client_builder()
            .build()
            .map_err(|e| format!("building an HTTP client: {e}"));
        Self {
            addr: addr.trim_end_matches('/').to_string(),
            token: token.to_string(),
            namespace: None,
            client,
        }
    }

    /// The same server and token, requests sent with `X-Vault-Namespace: ns`.
    pub fn with_namespace(&self, ns: &str) -> Self {
        Self {
            namespace: Some(ns.to_string()),
            ..self.clone()
        }
    }

    /// The same server and namespace, another token.
    pub fn with_token(&self, token: &str) -> Self {
        Self {
            token: token.to_string(),
            ..self.clone()
        }
    }

    /// The same token and namespace, another server address (e.g. another raft node).
    pub fn with_addr(&self, addr: &str) -> Self {
        Self {
            addr: addr.trim_end_matches('/').to_string(),
            ..self.clone()
        }
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// Sends `method /v1/{path}` with an optional JSON body: (status, headers, body text).
    /// Never fails on a status; only on transport errors.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, HeaderMap, String)> {
        let client = self.client.as_ref().map_err(|e| anyhow!("{e}"))?;
        let url = format!("{}/v1/{}", self.addr, normalize(path));
        let mut req = client.request(method.clone(), &url);
        if !self.token.is_empty() {
            req = req.header("X-Vault-Token", &self.token);
        }
        if let Some(ns) = &self.namespace {
            req = req.header("X-Vault-Namespace", ns);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req.send().await.with_context(|| format!("{method} {url}"))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp
            .text()
            .await
            .with_context(|| format!("reading the body of {method} {url}"))?;
        Ok((status, headers, text))
    }

    async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value> {
        let (status, _, text) = self.raw(method.clone(), path, body).await?;
        if !(200..300).contains(&status) {
            bail!("{method} /v1/{} -> {status}: {}", normalize(path), text.trim());
        }
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text)
            .with_context(|| format!("{method} /v1/{} -> {status}: not JSON: {text}", normalize(path)))
    }

    /// `POST /v1/{path}`; the JSON answer (Null for 204). Errors carry status and body.
    pub async fn write(&self, path: &str, body: Value) -> Result<Value> {
        self.call(Method::POST, path, Some(&body)).await
    }

    /// `PUT /v1/{path}`.
    pub async fn put(&self, path: &str, body: Value) -> Result<Value> {
        self.call(Method::PUT, path, Some(&body)).await
    }

    /// `GET /v1/{path}`.
    pub async fn read(&self, path: &str) -> Result<Value> {
        self.call(Method::GET, path, None).await
    }

    /// `LIST /v1/{path}`.
    pub async fn list(&self, path: &str) -> Result<Value> {
        let list = Method::from_bytes(b"LIST").context("LIST method")?;
        self.call(list, path, None).await
    }

    /// `DELETE /v1/{path}`.
    pub async fn delete(&self, path: &str) -> Result<()> {
        self.call(Method::DELETE, path, None).await.map(|_| ())
    }

    /// Status of `GET /v1/sys/health` (200 active, 429 standby, 503 sealed, 501 uninitialized).
    pub async fn health(&self) -> Result<u16> {
        let (status, _, _) = self.raw(Method::GET, "sys/health", None).await?;
        Ok(status)
    }

    /// Creates a token (orphan, so revoking its creator does not cascade) and returns it.
    /// `num_uses` 0 means unlimited.
    pub async fn create_token(
        &self,
        policies: &[&str],
        ttl: &str,
        renewable: bool,
        num_uses: u32,
    ) -> Result<String> {
        let v = self
            .write(
                "auth/token/create",
                json!({"policies": policies, "ttl": ttl, "renewable": renewable,
                       "num_uses": num_uses, "no_parent": true}),
            )
            .await?;
        str_at(&v, "/auth/client_token")
    }

    pub async fn revoke_token(&self, token: &str) -> Result<()> {
        self.write("auth/token/revoke", json!({"token": token}))
            .await
            .map(|_| ())
    }

    /// Creates or replaces the ACL policy `name`.
    pub async fn put_policy(&self, name: &str, hcl: &str) -> Result<()> {
        self.put(&format!("sys/policies/acl/{name}"), json!({"policy": hcl}))
            .await
            .map(|_| ())
    }

    /// Enables auth method `kind` at `auth/{path}` (error if already enabled).
    pub async fn enable_auth(&self, path: &str, kind: &str) -> Result<()> {
        self.write(&format!("sys/auth/{path}"), json!({"type": kind}))
            .await
            .map(|_| ())
    }

    /// Enables auth method `kind` at `auth/{path}` unless something is already mounted there.
    pub async fn ensure_auth(&self, path: &str, kind: &str) -> Result<()> {
        let mounts = self.read("sys/auth").await?;
        let key = format!("{}/", path.trim_end_matches('/'));
        if let Some(existing) = mounts.pointer("/data").and_then(|d| d.get(&key)) {
            let existing_kind = existing.get("type").and_then(Value::as_str).unwrap_or("");
            if existing_kind != kind {
                bail!("auth/{key} is already a {existing_kind} mount, not {kind}");
            }
            return Ok(());
        }
        self.enable_auth(path, kind).await
    }

    /// Mounts secrets engine `kind` at `path`.
    pub async fn mount(&self, path: &str, kind: &str) -> Result<()> {
        self.write(&format!("sys/mounts/{path}"), json!({"type": kind}))
            .await
            .map(|_| ())
    }

    /// Mounts `kind` at `path` with a mount `config` object (e.g. `{"max_lease_ttl": "87600h"}`).
    pub async fn mount_with_config(&self, path: &str, kind: &str, config: Value) -> Result<()> {
        self.write(
            &format!("sys/mounts/{path}"),
            json!({"type": kind, "config": config}),
        )
        .await
        .map(|_| ())
    }

    /// Creates namespace `name` (relative to this client's namespace, if any).
    pub async fn create_namespace(&self, name: &str) -> Result<()> {
        self.write(&format!("sys/namespaces/{name}"), json!({}))
            .await
            .map(|_| ())
    }

    /// Seals the server (`PUT sys/seal`); needs a root token.
    pub async fn seal(&self) -> Result<()> {
        self.put("sys/seal", json!({})).await.map(|_| ())
    }

    /// Submits one unseal key share; returns whether the server reports itself unsealed.
    pub async fn unseal_with(&self, key: &str) -> Result<bool> {
        let v = self.put("sys/unseal", json!({"key": key})).await?;
        Ok(v.get("sealed").and_then(Value::as_bool) == Some(false))
    }

    /// A rate-limit quota: `rate` requests per `interval` on `path` (e.g. "pki_int/"), blocking
    /// offenders for `block_interval` (e.g. "3s"; empty string: no blocking).
    pub async fn rate_limit_quota(
        &self,
        name: &str,
        path: &str,
        rate: f64,
        interval: &str,
        block_interval: &str,
    ) -> Result<()> {
        let mut body = json!({"path": path, "rate": rate, "interval": interval});
        if !block_interval.is_empty() {
            body["block_interval"] = json!(block_interval);
        }
        self.write(&format!("sys/quotas/rate-limit/{name}"), body)
            .await
            .map(|_| ())
    }

    /// Whether 429s from rate-limit quotas carry `Retry-After` and `X-Ratelimit-*` headers.
    pub async fn enable_rate_limit_headers(&self, enabled: bool) -> Result<()> {
        self.write(
            "sys/quotas/config",
            json!({"enable_rate_limit_response_headers": enabled}),
        )
        .await
        .map(|_| ())
    }
}

/// The string at JSON pointer `ptr` in `v`, or an error naming what was there.
pub(crate) fn str_at(v: &Value, ptr: &str) -> Result<String> {
    v.pointer(ptr)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| anyhow!("no string at {ptr} in {v}"))
}
