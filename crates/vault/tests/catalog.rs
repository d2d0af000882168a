//! The error catalog of OPENBAO.md, row by row, against a real OpenBao 2.7.2: each failure the
//! client can meet comes back with the class DESIGN.md gives it, and the scope (issuer or request)
//! `VaultError::scope` gives it.
#![allow(clippy::unwrap_used)] // tests state their expectations by unwrapping

mod common;

use std::time::Duration;

use certkeeper_core::FailureClass::{self, *};
use certkeeper_core::FailureScope::{self, Issuer, Request};
use certkeeper_testkit::{
    DevServer, KubernetesAuth, PkiOptions, kube_sa_claims, rsa_keypair_pem, sign_jwt_rs256,
};
use certkeeper_vault::{AuthMethod, HealthStatus, Operation, SecretSource, VaultConfig, VaultError};
use common::{client, sign_request, token_auth};
use serde_json::json;

const HOUR: Duration = Duration::from_secs(3600);

#[track_caller]
fn assert_verdict(
    err: &VaultError,
    class: FailureClass,
    scope: FailureScope,
    status: Option<u16>,
    text: &str,
) {
    assert_eq!(err.class(), class, "{err}");
    assert_eq!(err.scope(), scope, "{err}");
    assert_eq!(err.status(), status, "{err}");
    assert!(err.to_string().contains(text), "{err:?} should mention {text:?}");
}

#[tokio::test]
async fn sign_rejections_by_the_role_and_the_mount() {
    let bao = DevServer::start().await.unwrap();
    let admin = bao.admin();
    let pki = admin.setup_pki(PkiOptions::default()).await.unwrap();
    let root = client(&bao.addr(), token_auth(bao.root_token()));
    let sign = |path: String, cn: &'static str| {
        let root = &root;
        async move { root.sign(&path, &sign_request(cn, HOUR)).await.unwrap_err() }
    };

    // CN / SAN not allowed by the role.
    let e = sign(pki.sign_path.clone(), "x.other.org").await;
    assert_verdict(&e, Rejected, Request, Some(400), "not allowed by this role");
    assert_eq!(e.operation, Operation::Sign);
    // Unknown role (a token allowed to ask).
    let e = sign(format!("{}/sign/nope", pki.int_mount), "a.example.com").await;
    assert_verdict(&e, Rejected, Issuer, Some(400), "unknown role");
    // Missing mount.
    let e = sign("no_such_mount/sign/example".into(), "a.example.com").await;
    assert_verdict(&e, Rejected, Issuer, Some(404), "no handler for route");
    // Bad issuer_ref, and a PKI mount with no issuer at all: HTTP 500 that is NOT transient.
    let e = sign(pki.issuer_sign_path("nope"), "a.example.com").await;
    assert_verdict(&e, Rejected, Issuer, Some(500), "unable to find PKI issuer");
    let empty = admin.empty_pki_mount().await.unwrap();
    let e = sign(format!("{empty}/sign/example"), "a.example.com").await;
    assert_verdict(&e, Rejected, Issuer, Some(500), "no default issuer");
    // Key type not allowed.
    pki.set_role(
        "rsa-only",
        json!({"allowed_domains": ["example.com"], "allow_subdomains": true, "key_type": "rsa"}),
    )
    .await
    .unwrap();
    let e = sign(format!("{}/sign/rsa-only", pki.int_mount), "a.example.com").await;
    assert_verdict(&e, Rejected, Request, Some(400), "role requires keys of type rsa");

    // Malformed CSR.
    let mut bad = sign_request("a.example.com", HOUR);
    bad.csr_pem =
        "-----BEGIN CERTIFICATE REQUEST-----\nbm90IGEgY3Ny\n-----END CERTIFICATE REQUEST-----".into();
    let e = root.sign(&pki.sign_path, &bad).await.unwrap_err();
    assert_verdict(&e, Rejected, Request, Some(400), "");
    // A TTL past the CA's own notAfter.
    pki.set_role(
        "long",
        json!({"allowed_domains": ["example.com"], "allow_subdomains": true, "key_type": "any", "max_ttl": "1000000h"}),
    )
    .await
    .unwrap();
    let long = sign_request("a.example.com", Duration::from_secs(3600 * 24 * 365 * 30));
    let e = root
        .sign(&format!("{}/sign/long", pki.int_mount), &long)
        .await
        .unwrap_err();
    assert_verdict(&e, Rejected, Request, Some(400), "notAfter");
}

/// The refusals of issue 10 with the credentials an issuer really has (an AppRole bound to the
/// sign policy): a name the role refuses is about that request alone; a removed policy, a
/// deleted role and a disabled mount are about the issuer, which signs again once they are back.
#[tokio::test]
async fn issuer_wide_refusals_and_a_per_request_one() {
    let bao = DevServer::start().await.unwrap();
    let admin = bao.admin();
    let pki = admin.setup_pki(PkiOptions::default()).await.unwrap();
    let auth = common::approle(&admin, "ck", &pki.policy, 0).await;
    let c = client(&bao.addr(), auth);
    let sign = |cn: &'static str| {
        let (c, path) = (&c, &pki.sign_path);
        async move { c.sign(path, &sign_request(cn, HOUR)).await }
    };

    // A name the role refuses: that request alone; the issuer's next certificate signs.
    let e = sign("x.other.org").await.unwrap_err();
    let refused = "common name x.other.org not allowed by this role";
    assert_verdict(&e, Rejected, Request, Some(400), refused);
    sign("a.example.com").await.unwrap();

    // The sign policy removed: 403 even with a token obtained for this request.
    let policy_path = format!("sys/policies/acl/{}", pki.policy);
    let hcl = admin.read(&policy_path).await.unwrap()["data"]["policy"]
        .as_str()
        .unwrap()
        .to_owned();
    admin.delete(&policy_path).await.unwrap();
    let e = sign("b.example.com").await.unwrap_err();
    assert_verdict(&e, AuthRejected, Issuer, Some(403), "permission denied");
    assert!(e.fresh_token, "judged with a fresh token: {e}");
    admin.put_policy(&pki.policy, &hcl).await.unwrap();
    sign("b.example.com").await.unwrap();

    // The role deleted: "unknown role" for every name; re-created, signing resumes.
    let role_path = format!("{}/roles/{}", pki.int_mount, pki.role);
    admin.delete(&role_path).await.unwrap();
    let e = sign("c.example.com").await.unwrap_err();
    assert_verdict(&e, Rejected, Issuer, Some(400), "unknown role");
    pki.set_role(&pki.role, json!({})).await.unwrap();
    sign("c.example.com").await.unwrap();

    // The PKI mount disabled: a policy that names the path lets the request reach the router
    // (404); a token without one gets 403 (forbidden_is_judged_only_after_a_fresh_token).
    admin
        .delete(&format!("sys/mounts/{}", pki.int_mount))
        .await
        .unwrap();
    let e = sign("d.example.com").await.unwrap_err();
    assert_verdict(&e, Rejected, Issuer, Some(404), "no handler for route");
}

#[tokio::test]
async fn a_capped_ttl_is_success_with_a_warning() {
    let bao = DevServer::start().await.unwrap();
    let pki = bao.admin().setup_pki(PkiOptions::default()).await.unwrap();
    pki.set_role(
        "short",
        json!({"allowed_domains": ["example.com"], "allow_subdomains": true, "key_type": "any", "max_ttl": "2h"}),
    )
    .await
    .unwrap();
    let root = client(&bao.addr(), token_auth(bao.root_token()));
    let signed = root
        .sign(
            &format!("{}/sign/short", pki.int_mount),
            &sign_request("a.example.com", 10 * HOUR),
        )
        .await
        .unwrap();
    assert!(signed.ttl_capped_warning().is_some(), "{:?}", signed.warnings);
    let lifetime = common::not_after(&signed.certificate_pem)
        - std::time::UNIX_EPOCH.elapsed().unwrap().as_secs() as i64;
    assert!(
        lifetime <= 2 * 3600 && lifetime > 3600,
        "capped to the role's 2h, got {lifetime}s"
    );
    let plain = root
        .sign(&pki.sign_path, &sign_request("b.example.com", HOUR))
        .await
        .unwrap();
    assert!(plain.ttl_capped_warning().is_none(), "{:?}", plain.warnings);
}

#[tokio::test]
async fn forbidden_is_judged_only_after_a_fresh_token() {
    let bao = DevServer::start().await.unwrap();
    let admin = bao.admin();
    let pki = admin.setup_pki(PkiOptions::default()).await.unwrap();

    // A token without the policy: the client re-reads it, looks it up, retries once, then reports.
    let weak = admin.create_token(&["default"], "1h", true, 0).await.unwrap();
    let (c, rec) = common::recorded_client(&VaultConfig::new(bao.addr()), token_auth(&weak));
    for attempt in 1..=2 {
        let e = c
            .sign(&pki.sign_path, &sign_request("a.example.com", HOUR))
            .await
            .unwrap_err();
        assert_verdict(&e, AuthRejected, Issuer, Some(403), "permission denied");
        assert!(
            e.fresh_token,
            "attempt {attempt}: judged with a token read just now: {e}"
        );
        // Each attempt: read the token again, look it up, one sign. A 403 never keeps a token.
        assert_eq!(rec.count(Operation::LookupToken), attempt);
        assert_eq!(
            rec.count(Operation::Sign),
            attempt,
            "no second sign with the same fresh token"
        );
    }

    // A token that is not valid at all fails at lookup, with the same class.
    let e = client(&bao.addr(), token_auth("s.not-a-token"))
        .login_check()
        .await
        .unwrap_err();
    assert_verdict(&e, AuthRejected, Issuer, Some(403), "permission denied");
    assert_eq!(e.operation, Operation::LookupToken);

    // Login to an auth mount that does not exist.
    let auth = AuthMethod::AppRole {
        mount: "nope".into(),
        role_id: "r".into(),
        secret_id: SecretSource::value("s"),
    };
    let e = client(&bao.addr(), auth).login_check().await.unwrap_err();
    assert_verdict(&e, AuthRejected, Issuer, Some(403), "permission denied");

    // A non-root token asking for a mount that does not exist: ACLs answer first (403).
    let strong = admin.create_token(&[&pki.policy], "1h", true, 0).await.unwrap();
    let e = client(&bao.addr(), token_auth(&strong))
        .sign("no_such_mount/sign/example", &sign_request("a.example.com", HOUR))
        .await
        .unwrap_err();
    assert_verdict(&e, AuthRejected, Issuer, Some(403), "permission denied");
}

#[tokio::test]
async fn revoked_and_expired_tokens_are_replaced_by_a_fresh_login() {
    let bao = DevServer::start().await.unwrap();
    let admin = bao.admin();
    let pki = admin.setup_pki(PkiOptions::default()).await.unwrap();
    let auth = common::approle(&admin, "ck", &pki.policy, 0).await;
    admin
        .write(
            "auth/approle/role/ck",
            json!({"token_policies": [pki.policy], "token_ttl": "4s", "token_max_ttl": "4s"}),
        )
        .await
        .unwrap();
    let (c, rec) = common::recorded_client(&VaultConfig::new(bao.addr()), auth);
    c.sign(&pki.sign_path, &sign_request("a.example.com", HOUR))
        .await
        .unwrap();
    assert_eq!(rec.count(Operation::Login), 1);

    // Revoked behind our back: the sign gets 403, the client logs in again and succeeds.
    admin
        .write("sys/leases/revoke-prefix/auth/approle", json!({}))
        .await
        .unwrap();
    c.sign(&pki.sign_path, &sign_request("b.example.com", HOUR))
        .await
        .unwrap();
    assert_eq!(rec.count(Operation::Login), 2);
    let statuses: Vec<_> = rec
        .events()
        .iter()
        .filter(|e| e.0 == Operation::Sign)
        .map(|e| e.1)
        .collect();
    assert_eq!(statuses, vec![Some(200), Some(403), Some(200)]);

    // Expired (4 s lease, not renewable past its max TTL): replaced before it is used.
    tokio::time::sleep(Duration::from_secs(5)).await;
    c.sign(&pki.sign_path, &sign_request("c.example.com", HOUR))
        .await
        .unwrap();
    assert_eq!(rec.count(Operation::Login), 3);
    assert_eq!(
        rec.count(Operation::Sign),
        4,
        "no request was wasted on the expired token"
    );

    // A token file rotated by someone else is re-read after a 403.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    let t1 = admin.create_token(&[&pki.policy], "1h", true, 0).await.unwrap();
    std::fs::write(&file, &t1).unwrap();
    let c = client(
        &bao.addr(),
        AuthMethod::Token {
            token: SecretSource::File(file.clone()),
        },
    );
    c.sign(&pki.sign_path, &sign_request("d.example.com", HOUR))
        .await
        .unwrap();
    admin.revoke_token(&t1).await.unwrap();
    std::fs::write(
        &file,
        admin.create_token(&[&pki.policy], "1h", true, 0).await.unwrap(),
    )
    .unwrap();
    c.sign(&pki.sign_path, &sign_request("e.example.com", HOUR))
        .await
        .unwrap();
}

#[tokio::test]
async fn renewable_tokens_are_renewed_before_expiry() {
    let bao = DevServer::start().await.unwrap();
    let admin = bao.admin();
    let pki = admin.setup_pki(PkiOptions::default()).await.unwrap();
    // The client renews at two thirds of the lease: each sign below comes just past that point
    // (8.6 s of 12 s), leaving 3.4 s for a loaded machine to send it before the token expires
    // (a 6 s token left 1.7 s, and failed once under a load average of 5.6).
    let token = admin.create_token(&[&pki.policy], "12s", true, 0).await.unwrap();
    let (c, rec) = common::recorded_client(&VaultConfig::new(bao.addr()), token_auth(&token));
    c.sign(&pki.sign_path, &sign_request("a.example.com", HOUR))
        .await
        .unwrap();
    for i in 0..2 {
        tokio::time::sleep(Duration::from_millis(8600)).await;
        c.sign(&pki.sign_path, &sign_request(&format!("r{i}.example.com"), HOUR))
            .await
            .unwrap();
    }
    // 17 s of use on a 12 s token: kept alive by renew-self, never rejected.
    assert!(rec.count(Operation::RenewToken) >= 2, "{:?}", rec.events());
    assert!(
        rec.events().iter().all(|e| e.1 != Some(403)),
        "{:?}",
        rec.events()
    );
}

#[tokio::test]
async fn approle_and_jwt_login_failures_are_rejections() {
    let bao = DevServer::start().await.unwrap();
    let admin = bao.admin();
    let pki = admin.setup_pki(PkiOptions::default()).await.unwrap();
    admin.enable_auth("approle", "approle").await.unwrap();
    // A secret_id good for one login only.
    let (role_id, secret_id) = admin
        .approle_role("approle", "once", &[&pki.policy], 1, "")
        .await
        .unwrap();
    let auth = AuthMethod::AppRole {
        mount: "approle".into(),
        role_id: role_id.clone(),
        secret_id: SecretSource::value(secret_id),
    };
    let c = client(&bao.addr(), auth);
    c.login_check().await.unwrap();
    c.forget_token().await;
    let e = c.login_check().await.unwrap_err();
    assert_verdict(&e, Rejected, Issuer, Some(400), "invalid role or secret ID");
    assert_eq!(e.operation, Operation::Login);
    // A wrong secret_id.
    let auth = AuthMethod::AppRole {
        mount: "approle".into(),
        role_id,
        secret_id: SecretSource::value("wrong"),
    };
    let e = client(&bao.addr(), auth).login_check().await.unwrap_err();
    assert_verdict(&e, Rejected, Issuer, Some(400), "invalid role or secret ID");
    // A secret_id file that does not exist: our input, not Vault's verdict.
    let auth = AuthMethod::AppRole {
        mount: "approle".into(),
        role_id: "r".into(),
        secret_id: SecretSource::File("/nonexistent/secret-id".into()),
    };
    let e = client(&bao.addr(), auth).login_check().await.unwrap_err();
    assert_verdict(&e, Invalid, Issuer, None, "/nonexistent/secret-id");

    // JWT: expired token, unknown role.
    let (private_pem, public_pem) = rsa_keypair_pem().unwrap();
    admin.enable_auth("jwt", "jwt").await.unwrap();
    admin
        .jwt_auth("jwt", "ck", &[&pki.policy], &public_pem, &["openbao"], None)
        .await
        .unwrap();
    let now = std::time::UNIX_EPOCH.elapsed().unwrap().as_secs() as i64;
    let expired = sign_jwt_rs256(
        &private_pem,
        &json!({"aud": ["openbao"], "iat": now - 600, "nbf": now - 600, "exp": now - 300, "sub": "system:serviceaccount:default:ck", "iss": "test"}),
    ).unwrap();
    let auth = AuthMethod::Jwt {
        mount: "jwt".into(),
        role: "ck".into(),
        jwt: SecretSource::value(expired.clone()),
    };
    let e = client(&bao.addr(), auth).login_check().await.unwrap_err();
    assert_verdict(&e, Rejected, Issuer, Some(400), "");
    let auth = AuthMethod::Jwt {
        mount: "jwt".into(),
        role: "nope".into(),
        jwt: SecretSource::value(expired),
    };
    let e = client(&bao.addr(), auth).login_check().await.unwrap_err();
    assert_verdict(&e, Rejected, Issuer, Some(400), "could not be found");
}

/// Kubernetes auth whose TokenReview cannot reach the Kubernetes API answers 403, exactly like
/// a refused service account: it must stay retryable (auth_rejected), never "rejected".
#[tokio::test]
async fn kubernetes_auth_with_token_review_down_is_auth_rejected() {
    let bao = DevServer::start().await.unwrap();
    let admin = bao.admin();
    admin.enable_auth("kubernetes", "kubernetes").await.unwrap();
    let dead = format!("https://127.0.0.1:{}", certkeeper_testkit::free_port());
    let (private_pem, _) = rsa_keypair_pem().unwrap();
    admin
        .kubernetes_auth(KubernetesAuth {
            mount: "kubernetes",
            host: &dead,
            ca_pem: &certkeeper_testkit::TestTls::generate().unwrap().ca_pem,
            reviewer_jwt: "reviewer",
            role: "ck",
            sa_names: &["ck"],
            sa_namespaces: &["default"],
            policies: &["default"],
            audience: None,
        })
        .await
        .unwrap();
    let jwt = sign_jwt_rs256(&private_pem, &kube_sa_claims("default", "ck", "x", 600)).unwrap();
    let auth = AuthMethod::Kubernetes {
        mount: "kubernetes".into(),
        role: "ck".into(),
        jwt: SecretSource::value(jwt),
    };
    let e = client(&bao.addr(), auth).login_check().await.unwrap_err();
    assert_verdict(&e, AuthRejected, Issuer, Some(403), "permission denied");
}

#[tokio::test]
async fn sealed_vault_is_transient_and_health_says_sealed() {
    let bao = DevServer::start().await.unwrap();
    let admin = bao.admin();
    let pki = admin.setup_pki(PkiOptions::default()).await.unwrap();
    let auth = common::approle(&admin, "ck", &pki.policy, 0).await;
    let c = client(&bao.addr(), auth);
    let root = client(&bao.addr(), token_auth(bao.root_token()));
    root.sign(&pki.sign_path, &sign_request("a.example.com", HOUR))
        .await
        .unwrap();

    admin.seal().await.unwrap();
    assert_eq!(c.health().await.unwrap().status, HealthStatus::Sealed);
    let e = root
        .sign(&pki.sign_path, &sign_request("a.example.com", HOUR))
        .await
        .unwrap_err();
    assert_verdict(&e, Transient, Issuer, Some(503), "sealed");
    let e = c.login_check().await.unwrap_err();
    assert_verdict(&e, Transient, Issuer, Some(503), "sealed");

    bao.unseal().await.unwrap();
    assert_eq!(c.health().await.unwrap().status, HealthStatus::Active);
    c.sign(&pki.sign_path, &sign_request("b.example.com", HOUR))
        .await
        .unwrap();
}

#[tokio::test]
async fn rate_limit_quota_is_transient_with_retry_after_when_sent() {
    let bao = DevServer::start().await.unwrap();
    let admin = bao.admin();
    let pki = admin.setup_pki(PkiOptions::default()).await.unwrap();
    admin
        .rate_limit_quota("pki-limit", &format!("{}/", pki.int_mount), 2.0, "1s", "3s")
        .await
        .unwrap();
    let root = client(&bao.addr(), token_auth(bao.root_token()));
    let req = sign_request("a.example.com", HOUR);

    let first_429 = |headers: bool| {
        let (root, req, path) = (&root, &req, &pki.sign_path);
        async move {
            for _ in 0..20 {
                match root.sign(path, req).await {
                    Ok(_) => continue,
                    Err(e) => return e,
                }
            }
            panic!("no 429 in 20 requests (headers {headers})");
        }
    };
    let e = first_429(false).await;
    assert_verdict(&e, Transient, Issuer, Some(429), "rate limit quota exceeded");
    assert_eq!(
        e.retry_after(),
        None,
        "OpenBao sends Retry-After only when enabled"
    );

    admin.enable_rate_limit_headers(true).await.unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await; // past the block interval
    let e = first_429(true).await;
    assert_verdict(&e, Transient, Issuer, Some(429), "rate limit quota exceeded");
    let wait = e.retry_after().expect("Retry-After");
    assert!(wait <= Duration::from_secs(4), "{wait:?}");
    // sys/health is exempt from quotas.
    assert_eq!(root.health().await.unwrap().status, HealthStatus::Active);
}
