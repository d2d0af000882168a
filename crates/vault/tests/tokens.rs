//! What the client's logins leave in Vault, and how many it sends, when Vault refuses: against a
//! real OpenBao 2.7.2, counting tokens through `auth/token/accessors` and requests through the
//! client's observer.
#![allow(clippy::unwrap_used)] // tests state their expectations by unwrapping

mod common;

use std::sync::Arc;
use std::time::Duration;

use certkeeper_core::{FailureClass, FailureScope};
use certkeeper_testkit::{Admin, DevServer, PkiOptions};
use certkeeper_vault::{ErrorKind, Operation, VaultConfig};
use common::{recorded_client, sign_request, token_auth};
use serde_json::json;

const HOUR: Duration = Duration::from_secs(3600);

/// Tokens stored in Vault now (one accessor each), the root token included.
async fn tokens_in_vault(admin: &Admin) -> usize {
    let v = admin.list("auth/token/accessors").await.unwrap();
    v["data"]["keys"].as_array().unwrap().len()
}

/// The sign policy removed while an AppRole issuer keeps trying: every attempt logs in again
/// and is refused. Each token dropped for a 403 is revoked, so the outage leaves none behind
/// (without revocation each login's token would stay for its whole lease, 32 days by default).
#[tokio::test]
async fn tokens_dropped_for_a_403_are_revoked() {
    const ATTEMPTS: usize = 5;
    let bao = DevServer::start().await.unwrap();
    let admin = bao.admin();
    let pki = admin.setup_pki(PkiOptions::default()).await.unwrap();
    let auth = common::approle(&admin, "ck", &pki.policy, 0).await;
    let (c, rec) = recorded_client(&VaultConfig::new(bao.addr()), auth);
    let before_login = tokens_in_vault(&admin).await;
    c.sign(&pki.sign_path, &sign_request("a.example.com", HOUR))
        .await
        .unwrap();
    let before = tokens_in_vault(&admin).await;
    assert_eq!(before, before_login + 1, "one login, one token");

    let policy_path = format!("sys/policies/acl/{}", pki.policy);
    let hcl = admin.read(&policy_path).await.unwrap()["data"]["policy"]
        .as_str()
        .unwrap()
        .to_owned();
    admin.delete(&policy_path).await.unwrap();
    for _ in 0..ATTEMPTS {
        let e = c
            .sign(&pki.sign_path, &sign_request("b.example.com", HOUR))
            .await
            .unwrap_err();
        assert_eq!(e.status(), Some(403), "{e}");
        assert!(e.fresh_token, "{e}");
        assert_eq!(e.scope(), FailureScope::Issuer, "{e}");
    }
    let logins = rec.count(Operation::Login) - 1;
    let after = tokens_in_vault(&admin).await;
    println!(
        "tokens in Vault: {before} before the fault, {after} after {ATTEMPTS} refused attempts \
         ({logins} logins; {} without revocation)",
        before + logins
    );
    assert_eq!(logins, ATTEMPTS, "one login per attempt");
    assert_eq!(
        after, before_login,
        "the cached token and every token of a refused attempt were revoked"
    );
    // One revoke per dropped token (the cached one, then one per attempt), all accepted.
    let revokes: Vec<_> = rec
        .events()
        .into_iter()
        .filter(|e| e.0 == Operation::RevokeToken)
        .collect();
    assert_eq!(revokes.len(), ATTEMPTS + 1, "{revokes:?}");
    assert!(
        revokes.iter().all(|e| e.1 == Some(204) || e.1 == Some(200)),
        "{revokes:?}"
    );

    // Restored: the issuer signs again with one new login.
    admin.put_policy(&pki.policy, &hcl).await.unwrap();
    c.sign(&pki.sign_path, &sign_request("c.example.com", HOUR))
        .await
        .unwrap();
    assert_eq!(tokens_in_vault(&admin).await, before);
}

/// A token the user gave (tokenSecretRef) is dropped from the cache on a 403 but never revoked:
/// it is theirs, and may serve other clients.
#[tokio::test]
async fn a_given_token_is_never_revoked() {
    let bao = DevServer::start().await.unwrap();
    let admin = bao.admin();
    let pki = admin.setup_pki(PkiOptions::default()).await.unwrap();
    let given = admin.create_token(&["default"], "1h", true, 0).await.unwrap();
    let (c, rec) = recorded_client(&VaultConfig::new(bao.addr()), token_auth(&given));
    let e = c
        .sign(&pki.sign_path, &sign_request("a.example.com", HOUR))
        .await
        .unwrap_err();
    assert_eq!((e.status(), e.fresh_token), (Some(403), true), "{e}");
    assert_eq!(rec.count(Operation::RevokeToken), 0, "{:?}", rec.events());
    admin
        .with_token(&given)
        .read("auth/token/lookup-self")
        .await
        .expect("the given token still works");
}

/// Vault revokes the issuer's tokens and its login starts failing (the AppRole role deleted):
/// the requests in flight all get 403, and all of them share the one login that failed instead
/// of each sending its own.
#[tokio::test]
async fn requests_in_flight_share_one_refused_login() {
    const IN_FLIGHT: usize = 8;
    let bao = DevServer::start().await.unwrap();
    let admin = bao.admin();
    let pki = admin.setup_pki(PkiOptions::default()).await.unwrap();
    let auth = common::approle(&admin, "ck", &pki.policy, 0).await;
    let (c, rec) = recorded_client(&VaultConfig::new(bao.addr()), auth);
    let c = Arc::new(c);
    c.sign(&pki.sign_path, &sign_request("a.example.com", HOUR))
        .await
        .unwrap();
    admin
        .write("sys/leases/revoke-prefix/auth/approle", json!({}))
        .await
        .unwrap();
    admin.delete("auth/approle/role/ck").await.unwrap();

    let requests: Vec<_> = (0..IN_FLIGHT)
        .map(|i| sign_request(&format!("r{i}.example.com"), HOUR))
        .collect();
    let mut calls = tokio::task::JoinSet::new();
    for req in requests {
        let (c, path) = (c.clone(), pki.sign_path.clone());
        calls.spawn(async move { c.sign(&path, &req).await });
    }
    let mut repeated = 0;
    while let Some(r) = calls.join_next().await {
        let e = r.unwrap().unwrap_err();
        assert_eq!(e.operation, Operation::Login, "{e}");
        assert_eq!(
            (e.class(), e.scope()),
            (FailureClass::Rejected, FailureScope::Issuer),
            "{e}"
        );
        repeated += usize::from(matches!(e.kind, ErrorKind::Repeated { .. }));
    }
    let logins = rec.count(Operation::Login) - 1;
    println!("{IN_FLIGHT} requests in flight: {logins} login(s) sent, {repeated} shared its verdict");
    assert_eq!(
        logins,
        1,
        "one login for all requests in flight: {:?}",
        rec.events()
    );
    assert_eq!(repeated, IN_FLIGHT - 1);
    // The revoked token was dropped (and its revocation tried) once, not once per request.
    assert_eq!(rec.count(Operation::RevokeToken), 1, "{:?}", rec.events());

    // The next attempt (a later probe) logs in again rather than repeating an old verdict.
    let e = c
        .sign(&pki.sign_path, &sign_request("b.example.com", HOUR))
        .await
        .unwrap_err();
    assert!(!matches!(e.kind, ErrorKind::Repeated { .. }), "{e}");
    assert_eq!(rec.count(Operation::Login), 3);
}
