//! The per-issuer token cache: log in once, renew before expiry, replace when Vault says no.
//!
//! When a token is reused: until two thirds of its lease have passed (the same point Vault Agent
//! renews at). Then a renewable token is renewed with `renew-self`; a token that cannot be
//! renewed, or whose renewal returned much less time than the original lease (its max TTL is
//! near), is replaced by a fresh login. A 403 on a request invalidates the token that was used,
//! and the caller logs in again once before judging the failure.

use std::time::Duration;

use certkeeper_core::Secret;
use serde::Deserialize;
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

/// `auth` block of a login or renew answer.
#[derive(Debug, Deserialize)]
pub(crate) struct AuthBlock {
    pub client_token: String,
    #[serde(default)]
    pub lease_duration: u64,
    #[serde(default)]
    pub renewable: bool,
}

/// `data` block of `auth/token/lookup-self`.
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
