//! The Vault client for one issuer: transport, auth method and token cache together.

use std::sync::Arc;
use std::time::Duration;

use certkeeper_core::{FailureClass, Secret};
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::aws::sts::Sts;
use crate::aws::{self, AwsCredentialSource, AwsCredentials, AwsLogin};
use crate::config::{AuthMethod, VaultConfig};
use crate::error::{ErrorKind, Operation, VaultError};
use crate::nodes::{NodeState, Nodes, Schedule};
use crate::path::ApiPath;
use crate::pki::{SignRequest, SignedCertificate, parse_sign_answer};
use crate::token::{AuthBlock, CachedToken, LoginBody, LookupData, TokenAction, lease};
use crate::transport::{Answer, ErasedBody, RequestObserver, Scope, Transport};

/// What `sys/health` reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthStatus {
    /// 200: initialized, unsealed, active.
    Active,
    /// 429: unsealed standby (serves reads, forwards writes).
    Standby,
    /// 473: performance standby (Vault Enterprise).
    PerformanceStandby,
    /// 472: disaster-recovery secondary (Vault Enterprise).
    DrSecondary,
    /// 503: sealed.
    Sealed,
    /// 501: not initialized.
    Uninitialized,
}

impl HealthStatus {
    /// Whether requests sent to this node can be served (directly or by forwarding).
    pub fn can_serve(self) -> bool {
        matches!(
            self,
            HealthStatus::Active | HealthStatus::Standby | HealthStatus::PerformanceStandby
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Active => "active",
            HealthStatus::Standby => "standby",
            HealthStatus::PerformanceStandby => "performance standby",
            HealthStatus::DrSecondary => "dr secondary",
            HealthStatus::Sealed => "sealed",
            HealthStatus::Uninitialized => "uninitialized",
        }
    }
}

/// `sys/health` answer.
#[derive(Debug, Clone)]
pub struct Health {
    pub status: HealthStatus,
    pub version: Option<String>,
    pub cluster_name: Option<String>,
}

/// Outcome of [`VaultClient::login_check`]: who we are to Vault now.
#[derive(Debug, Clone)]
pub struct TokenInfo {
    /// Remaining lifetime; `None` for tokens that do not expire.
    pub ttl: Option<std::time::Duration>,
    pub renewable: bool,
}

/// A client for one Vault issuer. Cheap to share (`Arc`); concurrent callers share one token
/// and at most one login or renewal is in flight at a time.
pub struct VaultClient {
    /// One transport per address (`server`, or the configured addresses).
    nodes: Nodes,
    auth: AuthMethod,
    /// `auth/<mount>/login`, checked when the client is built; `None` for token auth.
    login_path: Option<ApiPath>,
    /// AWS auth with a web identity: the STS its token is exchanged at.
    sts: Option<Sts>,
    cache: Mutex<Cache>,
}

/// Bound on a best-effort `revoke-self`: it runs before the re-login it precedes, so it must
/// not hold that up for long; a token it fails to revoke only lives until its lease ends.
const REVOKE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Default)]
struct Cache {
    token: Option<CachedToken>,
    generation: u64,
    /// The last failed login: requests that were under way when it failed share its verdict
    /// instead of sending the same login again.
    failed_login: Option<(Instant, FailureClass, Option<u16>, String)>,
}

impl std::fmt::Debug for VaultClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultClient")
            .field("nodes", &self.nodes)
            .field("auth", &self.auth)
            .finish()
    }
}

impl VaultClient {
    pub fn new(config: &VaultConfig, auth: AuthMethod) -> Result<Self, VaultError> {
        Self::with_observer(config, auth, None)
    }

    pub fn with_observer(
        config: &VaultConfig,
        auth: AuthMethod,
        observer: Option<Arc<dyn RequestObserver>>,
    ) -> Result<Self, VaultError> {
        // Cert auth may bring its own certificate (cert-manager's clientCertificate.secretName);
        // otherwise the transport's mTLS identity is the one Vault's cert auth sees.
        let identity = match &auth {
            AuthMethod::Cert {
                identity: Some(id), ..
            } => Some(id),
            _ => config.client_identity.as_ref(),
        };
        if matches!(auth, AuthMethod::Cert { .. }) && identity.is_none() {
            return Err(VaultError::config(
                Operation::Login,
                "cert auth needs a client certificate and key",
            ));
        }
        let login_path = login_path(&auth)?;
        let sts = match &auth {
            AuthMethod::Aws(login) => sts_client(config, login)?,
            _ => None,
        };
        let nodes = if config.addresses.is_empty() {
            vec![Transport::new(config, identity, observer)?]
        } else {
            let addresses = crate::address::parse_addresses(config.addresses.iter().map(String::as_str))
                .map_err(|e| VaultError::config(Operation::Login, format!("addresses: {e}")))?;
            addresses
                .into_iter()
                .map(|server| {
                    let node = VaultConfig {
                        server,
                        ..config.clone()
                    };
                    Transport::new(&node, identity, observer.clone())
                })
                .collect::<Result<Vec<_>, _>>()?
        };
        Ok(VaultClient {
            nodes: Nodes::new(nodes, Schedule::DEFAULT),
            auth,
            login_path,
            sts,
            cache: Mutex::new(Cache::default()),
        })
    }

    /// The `/v1/` base URL of the first address.
    pub fn base_url(&self) -> &str {
        self.nodes.first().map_or("", |t| t.base().as_str())
    }

    /// Each address and what is known of it now: `Some` health it reported at the last probe,
    /// `None` when it failed since, or was not probed yet.
    pub fn addresses(&self) -> Vec<(String, Option<HealthStatus>)> {
        self.nodes
            .states()
            .into_iter()
            .map(|(address, state)| {
                let health = match state {
                    NodeState::Reported(h) => Some(h),
                    NodeState::Unknown | NodeState::Failed => None,
                };
                (address, health)
            })
            .collect()
    }

    pub fn auth(&self) -> &AuthMethod {
        &self.auth
    }

    /// `sys/health`, without namespace header or token. Sealed, standby and uninitialized are
    /// answers, not errors; transport failures and unexpected statuses are errors. With several
    /// addresses: every node is asked, and the best answer (active, then standby, ...) returned.
    pub async fn health(&self) -> Result<Health, VaultError> {
        self.nodes.health().await
    }

    /// Make sure a usable token is cached (logging in if needed) and report its lifetime.
    pub async fn login_check(&self) -> Result<TokenInfo, VaultError> {
        self.token(Instant::now()).await?;
        let cache = self.cache.lock().await;
        let t = cache
            .token
            .as_ref()
            .ok_or_else(|| VaultError::config(Operation::Login, "no token after login"))?;
        let ttl = t
            .lease
            .map(|l| l.saturating_sub(Instant::now().saturating_duration_since(t.obtained)));
        Ok(TokenInfo {
            ttl,
            renewable: t.renewable,
        })
    }

    /// Drop the cached token; the next call logs in again.
    pub async fn forget_token(&self) {
        self.cache.lock().await.token = None;
    }

    /// Sign a CSR at `path` (`<mount>/sign/<role>` or `<mount>/issuer/<ref>/sign/<role>`).
    /// A path that could leave `/v1/` or the server (see [`crate::PathError`]) is refused
    /// before any request, whatever the caller validated.
    pub async fn sign(&self, path: &str, request: &SignRequest) -> Result<SignedCertificate, VaultError> {
        let op = Operation::Sign;
        let api_path = ApiPath::parse_api(path).map_err(|problem| VaultError::path(op, path, problem))?;
        let answer = self
            .authed(op, Method::POST, &api_path, Some(&request.body()))
            .await?;
        parse_sign_answer(answer.decode(op)?).map_err(|reason| {
            VaultError::new(
                op,
                ErrorKind::Decode {
                    status: answer.status,
                    reason,
                },
            )
        })
    }

    /// Revoke the certificate with `serial` (Vault's colon hex, `1a:2b:...`) on the PKI mount
    /// of `sign_path` ([`pki_mount`]): `POST <mount>/revoke`. The serial and the mount are
    /// checked before any request.
    pub async fn revoke_certificate(&self, sign_path: &str, serial: &str) -> Result<(), VaultError> {
        let op = Operation::RevokeCertificate;
        let mount = pki_mount(sign_path).map_err(|problem| VaultError::path(op, sign_path, problem))?;
        if serial.is_empty()
            || serial.len() > 128
            || !serial
                .split(':')
                .all(|b| !b.is_empty() && b.bytes().all(|c| c.is_ascii_hexdigit()))
        {
            return Err(VaultError::config(op, "not a certificate serial number"));
        }
        let path = format!("{mount}/revoke");
        let api_path = ApiPath::parse_api(&path).map_err(|problem| VaultError::path(op, &path, problem))?;
        #[derive(serde::Serialize)]
        struct RevokeBody<'a> {
            serial_number: &'a str,
        }
        self.authed(
            op,
            Method::POST,
            &api_path,
            Some(&RevokeBody {
                serial_number: serial,
            }),
        )
        .await
        .map(|_| ())
    }

    /// A namespaced request with the cached token. A 403 invalidates that token (and revokes
    /// it, see [`VaultClient::drop_refused`]); unless it was obtained by a login in this same
    /// call, one fresh login and one retry follow before the failure is returned (marked
    /// `fresh_token`). A failed login is returned as it is, and shared with every request that
    /// was under way when it failed.
    async fn authed(
        &self,
        op: Operation,
        method: Method,
        path: &ApiPath,
        body: Option<&dyn ErasedBody>,
    ) -> Result<Answer, VaultError> {
        let started = Instant::now();
        let (token, generation, fresh) = self.token(started).await?;
        let first = self
            .nodes
            .request(op, method.clone(), path, body, Some(&token), Scope::Pki)
            .await;
        let err = match first {
            Ok(a) => return Ok(a),
            Err(e) => e,
        };
        if !err.is_forbidden() {
            return Err(VaultError {
                fresh_token: fresh,
                ..err
            });
        }
        // Whatever happens next, a token Vault refused is never sent again.
        self.drop_refused(generation).await;
        if fresh {
            return Err(VaultError {
                fresh_token: true,
                ..err
            });
        }
        tracing::debug!(operation = %op, "Vault answered 403; logging in again before judging");
        // `started`, not now: a login that failed while this request was under way (another
        // caller's re-login after the same 403) is this request's verdict too. Without it every
        // request in flight when Vault started refusing would send its own doomed login.
        let (token, generation, _) = self.token(started).await?;
        match self
            .nodes
            .request(op, method, path, body, Some(&token), Scope::Pki)
            .await
        {
            Ok(a) => Ok(a),
            Err(e) => {
                if e.is_forbidden() {
                    self.drop_refused(generation).await;
                }
                Err(VaultError {
                    fresh_token: true,
                    ..e
                })
            }
        }
    }

    /// Drop the cached token of `generation` after Vault refused a request made with it, and
    /// revoke it: each login stores a token in Vault until its lease ends, so an outage of 403s
    /// answered by re-logins would otherwise leave one behind per attempt. Only the caller that
    /// actually removed the token revokes it (once); a token already replaced is left alone.
    async fn drop_refused(&self, generation: u64) {
        let dropped = {
            let mut cache = self.cache.lock().await;
            if cache.token.as_ref().is_some_and(|t| t.generation == generation) {
                cache.token.take()
            } else {
                None
            }
        };
        if let Some(token) = dropped {
            self.revoke_best_effort(&token).await;
        }
    }

    /// `auth/token/revoke-self` with `token`, bounded by [`REVOKE_TIMEOUT`], never retried, its
    /// outcome only logged: the token may well be revoked or expired already (that is one way
    /// to get a 403), and a failure here changes nothing for the request being answered.
    async fn revoke_best_effort(&self, token: &CachedToken) {
        // A token given by the user (tokenSecretRef) is theirs: dropping it from the cache is
        // all we may do with it.
        if matches!(self.auth, AuthMethod::Token { .. }) {
            return;
        }
        let (path, body) = (ApiPath::fixed("auth/token/revoke-self"), json!({}));
        let revoke = self.nodes.request(
            Operation::RevokeToken,
            Method::POST,
            &path,
            Some(&body),
            Some(&token.token),
            Scope::Auth,
        );
        match tokio::time::timeout(REVOKE_TIMEOUT, revoke).await {
            Ok(Ok(_)) => tracing::debug!("revoked a token Vault refused"),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "could not revoke a refused token; it lasts until its lease ends")
            }
            Err(_) => tracing::debug!(
                timeout_ms = REVOKE_TIMEOUT.as_millis() as u64,
                "revoking a refused token timed out; it lasts until its lease ends"
            ),
        }
    }

    /// The token to use now: `(token, generation, obtained by a login in this call)`. A login
    /// that failed at or after `since` (when the caller's request began) is returned as
    /// [`ErrorKind::Repeated`] instead of being sent again.
    async fn token(&self, since: Instant) -> Result<(Secret, u64, bool), VaultError> {
        let mut cache = self.cache.lock().await;
        let now = Instant::now();
        if let Some(t) = &cache.token {
            match t.action(now) {
                TokenAction::Use => return Ok((t.token.clone(), t.generation, false)),
                TokenAction::Renew => match self.renew(t).await {
                    Ok(renewed) => {
                        let out = (renewed.token.clone(), renewed.generation, false);
                        cache.token = Some(renewed);
                        return Ok(out);
                    }
                    Err(e) if e.is_not_renewable() || e.is_forbidden() => {
                        tracing::debug!(error = %e, "token renewal refused; logging in again");
                    }
                    Err(e) => {
                        // Vault is unreachable: the current token still works until its lease ends.
                        tracing::debug!(error = %e, "token renewal failed; keeping the current token");
                        return Ok((t.token.clone(), t.generation, false));
                    }
                },
                TokenAction::Login => {}
            }
        }
        if let Some((at, class, status, message)) = &cache.failed_login
            && *at >= since
        {
            let kind = ErrorKind::Repeated {
                class: *class,
                status: *status,
                message: message.clone(),
            };
            return Err(VaultError::new(Operation::Login, kind));
        }
        let previous = cache.token.take();
        let generation = cache.generation + 1;
        match self.login(generation).await {
            Ok(t) => {
                cache.failed_login = None;
                cache.generation = generation;
                let out = (t.token.clone(), generation, true);
                cache.token = Some(t);
                Ok(out)
            }
            Err(e) => {
                cache.failed_login = Some((Instant::now(), e.class(), e.status(), e.kind.to_string()));
                // A failed re-login does not make a still-valid token worse than nothing.
                if let Some(prev) = previous.filter(|p| p.is_live(now) && !e.is_forbidden()) {
                    let out = (prev.token.clone(), prev.generation, false);
                    cache.token = Some(prev);
                    tracing::debug!(error = %e, "login failed; the current token is still valid");
                    return Ok(out);
                }
                Err(e)
            }
        }
    }

    async fn renew(&self, current: &CachedToken) -> Result<CachedToken, VaultError> {
        let op = Operation::RenewToken;
        let answer = self
            .nodes
            .request(
                op,
                Method::POST,
                &ApiPath::fixed("auth/token/renew-self"),
                Some(&json!({})),
                Some(&current.token),
                Scope::Auth,
            )
            .await?;
        let auth = auth_block(op, &answer)?;
        Ok(CachedToken {
            token: current.token.clone(),
            generation: current.generation,
            obtained: Instant::now(),
            lease: lease(auth.lease_duration),
            renewable: auth.renewable,
            login_lease: current.login_lease,
        })
    }

    async fn login(&self, generation: u64) -> Result<CachedToken, VaultError> {
        let op = Operation::Login;
        let credential = |source: &crate::config::SecretSource| {
            let source = source.clone();
            async move {
                source
                    .read()
                    .await
                    .map_err(|m| VaultError::new(op, ErrorKind::Credential(m)))
            }
        };
        // The credential is read first and borrowed by the body, so it lives only in `Secret`s.
        let credential_value = match &self.auth {
            AuthMethod::Token { token } => {
                return self.adopt_token(credential(token).await?, generation).await;
            }
            AuthMethod::Aws(login) => {
                let credentials = self.aws_credentials(login).await?;
                let now = certkeeper_core::time::rfc3339(std::time::SystemTime::now());
                let data = aws::login_data(&credentials, &login.region, login.server_id.as_deref(), &now);
                let body = LoginBody::Aws {
                    role: &login.role,
                    iam_http_request_method: data.method,
                    iam_request_url: &data.url,
                    iam_request_body: &data.body,
                    iam_request_headers: &data.headers,
                };
                return self.send_login(&body, generation).await;
            }
            AuthMethod::AppRole { secret_id: s, .. }
            | AuthMethod::Kubernetes { jwt: s, .. }
            | AuthMethod::Jwt { jwt: s, .. } => Some(credential(s).await?),
            AuthMethod::Cert { .. } => None,
        };
        let body = match (&self.auth, &credential_value) {
            (AuthMethod::AppRole { role_id, .. }, Some(secret_id)) => LoginBody::AppRole {
                role_id: role_id.trim(),
                secret_id,
            },
            (AuthMethod::Kubernetes { role, .. } | AuthMethod::Jwt { role, .. }, Some(jwt)) => {
                LoginBody::Role { role, jwt }
            }
            (AuthMethod::Cert { name, .. }, _) => LoginBody::Cert {
                name: name.as_deref().filter(|n| !n.is_empty()),
            },
            _ => return Err(VaultError::config(op, "login credential missing")),
        };
        self.send_login(&body, generation).await
    }

    /// `POST auth/<mount>/login` with `body`; the token of the answer.
    async fn send_login(&self, body: &LoginBody<'_>, generation: u64) -> Result<CachedToken, VaultError> {
        let op = Operation::Login;
        let login_path = self
            .login_path
            .as_ref()
            .ok_or_else(|| VaultError::config(op, "auth method has no login path"))?;
        let answer = self
            .nodes
            .request(op, Method::POST, login_path, Some(body), None, Scope::Auth)
            .await?;
        let auth = auth_block(op, &answer)?;
        tracing::debug!(
            method = self.auth.kind(),
            lease_secs = auth.lease_duration,
            "logged in to Vault"
        );
        let lease = lease(auth.lease_duration);
        Ok(CachedToken {
            token: auth.client_token,
            generation,
            obtained: Instant::now(),
            lease,
            renewable: auth.renewable,
            login_lease: lease,
        })
    }

    /// The AWS credentials of a login: the static keys, or a web identity exchanged at STS now.
    async fn aws_credentials(&self, login: &AwsLogin) -> Result<AwsCredentials, VaultError> {
        let op = Operation::Login;
        let ambient;
        let source = match &login.credentials {
            AwsCredentialSource::Ambient(environment) => {
                ambient = environment
                    .ambient_credentials()
                    .map_err(|e| VaultError::new(op, ErrorKind::Credential(e)))?;
                &ambient
            }
            other => other,
        };
        match source {
            AwsCredentialSource::Static(credentials) => Ok(credentials.clone()),
            AwsCredentialSource::WebIdentity {
                role_arn,
                session_name,
                token,
            } => {
                let token = token
                    .read()
                    .await
                    .map_err(|e| VaultError::new(op, ErrorKind::Credential(e)))?;
                let sts = self
                    .sts
                    .as_ref()
                    .ok_or_else(|| VaultError::config(op, "AWS web identity without an STS client"))?;
                let credentials = sts
                    .assume_role_with_web_identity(role_arn, session_name, &token)
                    .await
                    .map_err(|e| VaultError::new(op, ErrorKind::Sts(e)))?;
                tracing::debug!(role_arn = %role_arn, "exchanged a web identity for AWS credentials");
                Ok(credentials)
            }
            AwsCredentialSource::Ambient(_) => Err(VaultError::config(
                op,
                "ambient AWS credentials resolved to ambient credentials",
            )),
        }
    }

    /// A given token: learn its remaining TTL and renewability from `lookup-self`.
    async fn adopt_token(&self, token: Secret, generation: u64) -> Result<CachedToken, VaultError> {
        let op = Operation::LookupToken;
        let answer = self
            .nodes
            .request(
                op,
                Method::GET,
                &ApiPath::fixed("auth/token/lookup-self"),
                None,
                Some(&token),
                Scope::Auth,
            )
            .await?;
        #[derive(Deserialize)]
        struct Lookup {
            data: LookupData,
        }
        let data = answer.decode::<Lookup>(op)?.data;
        let lease = data.lease();
        Ok(CachedToken {
            token,
            generation,
            obtained: Instant::now(),
            lease,
            renewable: data.renewable,
            login_lease: lease,
        })
    }
}

fn auth_block(op: Operation, answer: &Answer) -> Result<AuthBlock, VaultError> {
    #[derive(Deserialize)]
    struct WithAuth {
        auth: Option<AuthBlock>,
    }
    let decode = |reason: &str| {
        VaultError::new(
            op,
            ErrorKind::Decode {
                status: answer.status,
                reason: reason.to_owned(),
            },
        )
    };
    let auth = answer
        .decode::<WithAuth>(op)?
        .auth
        .ok_or_else(|| decode("answer has no auth block"))?;
    if auth.client_token.is_empty() {
        return Err(decode("answer has an empty client_token"));
    }
    Ok(auth)
}

/// `auth/<mount>/login` for the auth methods that log in; `None` for a given token. Refused
/// when the mount could leave `/v1/auth/` or the server.
fn login_path(auth: &AuthMethod) -> Result<Option<ApiPath>, VaultError> {
    let mount = match auth {
        AuthMethod::Token { .. } => return Ok(None),
        AuthMethod::AppRole { mount, .. }
        | AuthMethod::Kubernetes { mount, .. }
        | AuthMethod::Jwt { mount, .. }
        | AuthMethod::Cert { mount, .. } => mount,
        AuthMethod::Aws(login) => &login.mount,
    };
    ApiPath::auth_mount(mount)
        .map(|p| Some(p.child("login")))
        .map_err(|problem| VaultError::path(Operation::Login, mount, problem))
}

/// The STS client of an AWS login that may exchange a web identity (`None` for static keys),
/// after checking the region that becomes part of a host name.
fn sts_client(config: &VaultConfig, login: &AwsLogin) -> Result<Option<Sts>, VaultError> {
    let op = Operation::Login;
    aws::check_region(&login.region)
        .map_err(|reason| VaultError::config(op, format!("AWS region {:?} {reason}", login.region)))?;
    match login.credentials {
        AwsCredentialSource::Static(_) => Ok(None),
        AwsCredentialSource::WebIdentity { .. } | AwsCredentialSource::Ambient(_) => {
            Sts::new(&login.sts_url(), config.connect_timeout, config.request_timeout)
                .map(Some)
                .map_err(|e| VaultError::config(op, e.to_string()))
        }
    }
}

/// The PKI mount of a sign path: the segments before `sign`, `sign-verbatim` or `issuer`
/// (`pki_int/sign/web` and `pki_int/issuer/default/sign/web` are on `pki_int`, `a/b/pki/sign-verbatim`
/// on `a/b/pki`). A path without one, or with nothing before it, is refused.
pub fn pki_mount(sign_path: &str) -> Result<&str, crate::PathError> {
    let trimmed = sign_path.trim_matches('/');
    let mut offset = 0;
    for segment in trimmed.split('/') {
        if matches!(segment, "sign" | "sign-verbatim" | "issuer") {
            let mount = trimmed[..offset].trim_end_matches('/');
            return if mount.is_empty() {
                Err(crate::PathError::NotAPkiPath(sign_path.to_owned()))
            } else {
                Ok(mount)
            };
        }
        offset += segment.len() + 1;
    }
    Err(crate::PathError::NotAPkiPath(sign_path.to_owned()))
}

#[cfg(test)]
mod pki_mount_tests {
    use super::pki_mount;

    #[test]
    fn the_mount_is_what_comes_before_sign_or_issuer() {
        for (path, mount) in [
            ("pki_int/sign/web", "pki_int"),
            ("/pki_int/sign/web/", "pki_int"),
            ("pki_int/issuer/default/sign/web", "pki_int"),
            ("team/a/pki/sign-verbatim/web", "team/a/pki"),
            ("pki/sign-verbatim", "pki"),
        ] {
            assert_eq!(pki_mount(path), Ok(mount), "{path}");
        }
        for path in ["sign/web", "pki_int/roles/web", "", "/"] {
            assert!(pki_mount(path).is_err(), "{path}");
        }
    }
}
