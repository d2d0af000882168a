//! The per-issuer token cache: log in once, renew before expiry, replace when Vault says no.
//!
//! When a token is reused: until two thirds of its lease have passed (the same point Vault Agent
//! renews at). Then a renewable token is renewed with `renew-self`; a token that cannot be
//! renewed, or whose renewal returned much less time than the original lease (its max TTL is
//! near), is replaced by a fresh login. A 403 on a request invalidates the token that was used
//! (revoking it best-effort when a login of ours created it), and the caller logs in again once
//! before judging the failure.

use std::time::Duration;

use std::fmt;

use certkeeper_core::Secret;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tokio::time::Instant;

/// A token and what Vault told us about its lifetime.
#[derive(Debug, Clone)]
pub(crate) struct CachedToken {
    pub token: Secret,
    /// Increases with every new token, so a 403 only invalidates the token it was seen with.
    pub generation: u64,
    pub obtained: Instant,
    /// `None`: the token does not expire (root tokens, lookup impossible).
    pub lease: Option<Duration>,
    pub renewable: bool,
    /// The lease of the last login, to notice renewals that no longer extend the token.
    pub login_lease: Option<Duration>,
}

/// What to do with the cached token now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenAction {
    Use,
    Renew,
    Login,
}

/// Fraction of the lease after which the token is refreshed.
const REFRESH_NUM: u32 = 2;
const REFRESH_DEN: u32 = 3;
/// Leases shorter than this are not worth renewing: log in again instead.
const MIN_RENEWABLE_LEASE: Duration = Duration::from_secs(3);

impl CachedToken {
    pub fn action(&self, now: Instant) -> TokenAction {
        let Some(lease) = self.lease else {
            return TokenAction::Use;
        };
        let age = now.saturating_duration_since(self.obtained);
        if age < lease * REFRESH_NUM / REFRESH_DEN {
            return TokenAction::Use;
        }
        if age >= lease || !self.renewable || lease < MIN_RENEWABLE_LEASE {
            return TokenAction::Login;
        }
        // A renewal that came back with under a third of the login lease means the token's max
        // TTL is close: a login gives a full lease, another renewal would not.
        if let Some(login) = self.login_lease
            && lease < login / 3
        {
            return TokenAction::Login;
        }
        TokenAction::Renew
    }

    /// Still accepted by Vault (not past its lease), so usable while a refresh fails.
    pub fn is_live(&self, now: Instant) -> bool {
        self.lease
            .is_none_or(|lease| now.saturating_duration_since(self.obtained) < lease)
    }
}

/// `auth` block of a login or renew answer. The token goes straight into a [`Secret`], so
/// `Debug` prints a placeholder and the bytes are wiped when dropped.
#[derive(Debug, Deserialize)]
pub(crate) struct AuthBlock {
    #[serde(deserialize_with = "secret")]
    pub client_token: Secret,
    #[serde(default)]
    pub lease_duration: u64,
    #[serde(default)]
    pub renewable: bool,
}

fn secret<'de, D: Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
    String::deserialize(d).map(Secret::new)
}

fn expose<S: Serializer>(secret: &&Secret, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(secret.expose())
}

/// Body of a login request, borrowing the credential from its [`Secret`] (no copy in a JSON
/// value). `Debug` names the fields, never the credential.
#[derive(Serialize)]
#[serde(untagged)]
pub(crate) enum LoginBody<'a> {
    /// `auth/<approle>/login`.
    AppRole {
        role_id: &'a str,
        #[serde(serialize_with = "expose")]
        secret_id: &'a Secret,
    },
    /// `auth/<kubernetes|jwt>/login`.
    Role {
        role: &'a str,
        #[serde(serialize_with = "expose")]
        jwt: &'a Secret,
    },
    /// `auth/<aws>/login`, IAM type: a signed `sts:GetCallerIdentity` (see [`crate::aws`]). The
    /// headers carry the session token and the signature.
    Aws {
        role: &'a str,
        iam_http_request_method: &'a str,
        iam_request_url: &'a str,
        iam_request_body: &'a str,
        #[serde(serialize_with = "expose")]
        iam_request_headers: &'a Secret,
    },
    /// `auth/<cert>/login`: the credential is the TLS client certificate.
    Cert {
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<&'a str>,
    },
}

impl fmt::Debug for LoginBody<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoginBody::AppRole { role_id, secret_id } => f
                .debug_struct("AppRole")
                .field("role_id", role_id)
                .field("secret_id", secret_id)
                .finish(),
            LoginBody::Role { role, jwt } => f
                .debug_struct("Role")
                .field("role", role)
                .field("jwt", jwt)
                .finish(),
            LoginBody::Aws {
                role,
                iam_request_headers,
                ..
            } => f
                .debug_struct("Aws")
                .field("role", role)
                .field("iam_request_headers", iam_request_headers)
                .finish(),
            LoginBody::Cert { name } => f.debug_struct("Cert").field("name", name).finish(),
        }
    }
}

/// `data` block of `auth/token/lookup-self`. Its `id` (the token itself) is deliberately not
/// read.
#[derive(Debug, Deserialize)]
pub(crate) struct LookupData {
    /// Remaining seconds, rounded down: 0 both for tokens without expiry and for tokens about
    /// to expire, so `expire_time` tells the two apart.
    #[serde(default)]
    pub ttl: u64,
    #[serde(default)]
    pub expire_time: Option<serde_json::Value>,
    #[serde(default)]
    pub renewable: bool,
}

impl LookupData {
    /// The remaining lease; `None` only for tokens that never expire.
    pub fn lease(&self) -> Option<Duration> {
        match &self.expire_time {
            None | Some(serde_json::Value::Null) => None,
            Some(_) => Some(Duration::from_secs(self.ttl)),
        }
    }
}

/// Lease seconds as Vault reports them; 0 means "does not expire".
pub(crate) fn lease(secs: u64) -> Option<Duration> {
    (secs > 0).then(|| Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(lease: Option<u64>, renewable: bool, login: Option<u64>) -> CachedToken {
        CachedToken {
            token: Secret::new("t"),
            generation: 1,
            obtained: Instant::now(),
            lease: lease.map(Duration::from_secs),
            renewable,
            login_lease: login.map(Duration::from_secs),
        }
    }

    #[test]
    fn refresh_at_two_thirds_renew_or_login() {
        let t = token(Some(300), true, Some(300));
        let at = |s| t.obtained + Duration::from_secs(s);
        assert_eq!(t.action(at(0)), TokenAction::Use);
        assert_eq!(t.action(at(199)), TokenAction::Use);
        assert_eq!(t.action(at(200)), TokenAction::Renew);
        assert_eq!(t.action(at(300)), TokenAction::Login);
        assert!(t.is_live(at(299)) && !t.is_live(at(300)));

        let n = token(Some(300), false, Some(300));
        assert_eq!(
            n.action(n.obtained + Duration::from_secs(200)),
            TokenAction::Login
        );
    }

    #[test]
    fn lookup_tells_no_expiry_from_about_to_expire() {
        let parse = |v: serde_json::Value| serde_json::from_value::<LookupData>(v).unwrap().lease();
        assert_eq!(parse(serde_json::json!({"ttl": 0, "expire_time": null})), None);
        assert_eq!(parse(serde_json::json!({"ttl": 0})), None);
        let soon = parse(serde_json::json!({"ttl": 0, "expire_time": "2026-11-25T23:00:00Z"}));
        assert_eq!(soon, Some(Duration::ZERO));
        assert_eq!(
            parse(serde_json::json!({"ttl": 90, "expire_time": "2026-11-25T23:00:00Z"})),
            Some(Duration::from_secs(90))
        );
    }

    const TOKEN: &str = "hvs.CAESIJ3u4B1mX9dZr7kq0v8Wc2YtPpLqN5aGhTfR2xUe";

    #[test]
    fn hostile_auth_answer_debug_never_prints_the_token() {
        let auth: AuthBlock = serde_json::from_value(serde_json::json!({
            "client_token": TOKEN, "accessor": "acc", "lease_duration": 60, "renewable": true
        }))
        .unwrap();
        assert_eq!(auth.client_token.expose(), TOKEN);
        let debug = format!("{auth:?} {auth:#?}");
        assert!(!debug.contains("CAESIJ3u"), "{debug}");
        assert!(debug.contains("lease_duration: 60"), "{debug}");

        let cached = CachedToken {
            token: auth.client_token,
            ..token(Some(60), true, Some(60))
        };
        assert!(!format!("{cached:?}").contains("CAESIJ3u"));
    }

    #[test]
    fn hostile_login_bodies_debug_never_print_the_credential() {
        let secret = Secret::new("6f1c7d2e-9a4b-4c3d-8e5f-1a2b3c4d5e6f");
        let jwt = Secret::new("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzYSJ9.c2ln");
        let approle = LoginBody::AppRole {
            role_id: "role-1",
            secret_id: &secret,
        };
        let role = LoginBody::Role {
            role: "web",
            jwt: &jwt,
        };
        for (body, hidden) in [(&approle, "6f1c7d2e"), (&role, "eyJhbGci")] {
            let debug = format!("{body:?} {body:#?}");
            assert!(!debug.contains(hidden), "{debug}");
            // The wire format still carries it, under Vault's field names.
            assert!(serde_json::to_string(body).unwrap().contains(hidden));
        }
        assert_eq!(
            serde_json::to_value(&approle).unwrap(),
            serde_json::json!({"role_id": "role-1", "secret_id": secret.expose()})
        );
        assert_eq!(
            serde_json::to_value(&role).unwrap(),
            serde_json::json!({"role": "web", "jwt": jwt.expose()})
        );
        assert_eq!(
            serde_json::to_value(LoginBody::Cert { name: None }).unwrap(),
            serde_json::json!({})
        );
        assert_eq!(
            serde_json::to_value(LoginBody::Cert { name: Some("c") }).unwrap(),
            serde_json::json!({"name": "c"})
        );
    }

    #[test]
    fn tokens_without_expiry_are_always_used() {
        let t = token(None, false, None);
        assert_eq!(
            t.action(t.obtained + Duration::from_secs(10_000_000)),
            TokenAction::Use
        );
        assert!(t.is_live(t.obtained + Duration::from_secs(10_000_000)));
    }

    #[test]
    fn renewal_capped_by_max_ttl_leads_to_login() {
        // Renewed, but Vault only granted 60 s of a 600 s login lease: the max TTL is near.
        let t = token(Some(60), true, Some(600));
        assert_eq!(t.action(t.obtained + Duration::from_secs(45)), TokenAction::Login);
        let tiny = token(Some(2), true, Some(2));
        assert_eq!(
            tiny.action(tiny.obtained + Duration::from_millis(1500)),
            TokenAction::Login
        );
    }
}
