//! Every auth method logs in and signs against a real OpenBao 2.7.2, over plain HTTP, over TLS
//! with a custom CA, `serverName` and mTLS, and inside a namespace.
#![allow(clippy::unwrap_used)] // tests state their expectations by unwrapping

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use certkeeper_core::Secret;
use certkeeper_testkit::{
    DevServer, KubeApiServer, KubernetesAuth, PkiOptions, TlsOptions, rsa_keypair_pem, sign_jwt_rs256,
};
use certkeeper_vault::{
    AuthMethod, ClientIdentity, CredentialError, HealthStatus, Operation, SecretProvider, SecretSource,
    VaultClient, VaultConfig,
};
use common::{common_name, not_after, sign_request, token_auth};
use serde_json::json;

const HOUR: Duration = Duration::from_secs(3600);

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Sign `cn` and check the answer is the certificate we asked for.
async fn assert_signs(client: &VaultClient, path: &str, cn: &str) {
    let signed = client
        .sign(path, &sign_request(cn, HOUR))
        .await
        .unwrap_or_else(|e| panic!("sign {cn}: {e}"));
    assert_eq!(common_name(&signed.certificate_pem), cn);
    let expires = not_after(&signed.certificate_pem);
    assert!(
        (expires - (now() + 3600)).abs() < 120,
        "notAfter {expires} is not about an hour away"
    );
    assert_eq!(
        signed.expiration, expires,
        "Vault's expiration matches the certificate"
    );
    assert!(!signed.ca_chain_pem.is_empty() && signed.issuing_ca_pem.contains("BEGIN CERTIFICATE"));
    assert!(signed.serial_number.contains(':'));
}

#[tokio::test]
async fn token_auth_signs_at_both_path_shapes() {
    let bao = DevServer::start().await.unwrap();
    let admin = bao.admin();
    let pki = admin.setup_pki(PkiOptions::default()).await.unwrap();
    let token = admin.create_token(&[&pki.policy], "1h", true, 0).await.unwrap();
    let client = common::client(&bao.addr(), token_auth(&token));

    assert_signs(&client, &pki.sign_path, "a.example.com").await;
    assert_signs(&client, &pki.issuer_sign_path("default"), "b.example.com").await;
    // cert-manager's `path` may carry a leading slash or "/v1/".
    assert_signs(&client, &format!("/v1/{}", pki.sign_path), "c.example.com").await;

    let info = client.login_check().await.unwrap();
    assert!(
        info.renewable && info.ttl.is_some_and(|t| t <= HOUR && t > HOUR / 2),
        "{info:?}"
    );
    assert_eq!(client.health().await.unwrap().status, HealthStatus::Active);
}

#[tokio::test]
async fn approle_logs_in_once_and_reuses_the_token() {
    let bao = DevServer::start().await.unwrap();
    let admin = bao.admin();
    let pki = admin.setup_pki(PkiOptions::default()).await.unwrap();
    let auth = common::approle(&admin, "certkeeper", &pki.policy, 0).await;
    let mut cfg = VaultConfig::new(bao.addr());
    cfg.request_timeout = Duration::from_secs(5);
    let (client, rec) = common::recorded_client(&cfg, auth);
    for i in 0..5 {
        assert_signs(&client, &pki.sign_path, &format!("app{i}.example.com")).await;
    }
    assert_eq!(rec.count(Operation::Login), 1, "one login serves every sign");
    assert_eq!(rec.count(Operation::Sign), 5);
}

#[tokio::test]
async fn jwt_role_login_signs() {
    let bao = DevServer::start().await.unwrap();
    let admin = bao.admin();
    let pki = admin.setup_pki(PkiOptions::default()).await.unwrap();
    let (private_pem, public_pem) = rsa_keypair_pem().unwrap();
    admin.enable_auth("jwt", "jwt").await.unwrap();
    admin
        .jwt_auth(
            "jwt",
            "certkeeper",
            &[&pki.policy],
            &public_pem,
            &["openbao"],
            None,
        )
        .await
        .unwrap();
    let jwt = sign_jwt_rs256(&private_pem, &service_account_claims("openbao", 600)).unwrap();

    // cert-manager's spelling of a mount path: "/v1/auth/<mount>".
    let auth = AuthMethod::Jwt {
        mount: "/v1/auth/jwt".into(),
        role: "certkeeper".into(),
        jwt: SecretSource::value(jwt),
    };
    let client = common::client(&bao.addr(), auth);
    assert_signs(&client, &pki.sign_path, "jwt.example.com").await;
}

/// TLS listener with a private CA, `serverName` different from the URL's host, required client
/// certificates, and Vault's cert auth method logging in with that same client certificate.
#[tokio::test]
async fn cert_auth_over_mtls_with_custom_ca_and_server_name() {
    let bao = DevServer::start_tls(TlsOptions {
        require_client_cert: true,
    })
    .await
    .unwrap();
    let tls = bao.tls().unwrap().clone();
    let admin = bao.admin();
    let pki = admin.setup_pki(PkiOptions::default()).await.unwrap();
    admin.enable_auth("cert", "cert").await.unwrap();
    admin
        .cert_auth("cert", "certkeeper", &tls.ca_pem, &[&pki.policy])
        .await
        .unwrap();

    let tls_addr = bao.tls_addr().unwrap();
    let mut cfg = VaultConfig::new(&tls_addr);
    cfg.ca_bundle_pem = Some(tls.ca_pem.clone());
    cfg.server_name = Some("vault.test".into());
    cfg.client_identity = Some(ClientIdentity {
        cert_pem: tls.client_cert_pem.clone(),
        key_pem: Secret::new(tls.client_key_pem.clone()),
    });
    let auth = AuthMethod::Cert {
        mount: "/v1/auth/cert".into(),
        name: Some("certkeeper".into()),
        identity: None,
    };
    let client = VaultClient::new(&cfg, auth).unwrap();
    assert!(
        client.base_url().starts_with("https://vault.test:"),
        "{}",
        client.base_url()
    );
    assert_signs(&client, &pki.sign_path, "mtls.example.com").await;
    assert_eq!(client.health().await.unwrap().status, HealthStatus::Active);

    // Token auth over the same mTLS transport; the cert auth identity can also be given on the
    // auth method itself (cert-manager's clientCertificate.secretName).
    let token = admin.create_token(&[&pki.policy], "1h", true, 0).await.unwrap();
    let client = VaultClient::new(&cfg, token_auth(&token)).unwrap();
    assert_signs(&client, &pki.sign_path, "tok.example.com").await;
    let mut plain_cfg = cfg.clone();
    plain_cfg.client_identity = None;
    let auth = AuthMethod::Cert {
        mount: "cert".into(),
        name: None,
        identity: Some(ClientIdentity {
            cert_pem: tls.client_cert_pem,
            key_pem: Secret::new(tls.client_key_pem),
        }),
    };
    assert_signs(
        &VaultClient::new(&plain_cfg, auth).unwrap(),
        &pki.sign_path,
        "own.example.com",
    )
    .await;
}

#[tokio::test]
async fn namespace_header_goes_on_login_and_sign_not_on_health() {
    let bao = DevServer::start().await.unwrap();
    let root = bao.admin();
    root.create_namespace("team-a").await.unwrap();
    let ns = root.with_namespace("team-a");
    let pki = ns.setup_pki(PkiOptions::default()).await.unwrap();
    let auth = common::approle(&ns, "certkeeper", &pki.policy, 0).await;
    let mut cfg = VaultConfig::new(bao.addr());
    cfg.namespace = Some("team-a".into());
    let client = VaultClient::new(&cfg, auth).unwrap();
    assert_signs(&client, &pki.sign_path, "ns.example.com").await;

    // The same mount does not exist at the root: the namespace header is what made it work.
    let root_token = bao.root_token().to_owned();
    let root_client = common::client(&bao.addr(), token_auth(&root_token));
    let err = root_client
        .sign(&pki.sign_path, &sign_request("ns.example.com", HOUR))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(404), "{err}");

    // sys/health is root-only: with a namespace that does not exist it still answers.
    let mut missing = VaultConfig::new(bao.addr());
    missing.namespace = Some("does-not-exist".into());
    let client = VaultClient::new(&missing, token_auth(&root_token)).unwrap();
    assert_eq!(client.health().await.unwrap().status, HealthStatus::Active);
}

/// A JWT per login, as the Kubernetes runtime will make with TokenRequest.
#[derive(Debug)]
struct TokenRequestSource {
    kube: Arc<KubeApiServer>,
    calls: AtomicUsize,
}

impl SecretProvider for TokenRequestSource {
    fn describe(&self) -> String {
        "TokenRequest for default/certkeeper".into()
    }

    fn fetch(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Secret, CredentialError>> + Send + '_>>
    {
        Box::pin(async move {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let token = self
                .kube
                .token_request("default", "certkeeper", &["openbao"], 600)
                .await
                .map_err(|e| CredentialError::Failed {
                    what: self.describe(),
                    message: e.to_string(),
                })?;
            Ok(Secret::new(token))
        })
    }
}

/// Kubernetes auth against a real kube-apiserver's TokenReview.
#[tokio::test]
async fn kubernetes_auth_with_a_real_token_review() {
    let kube = Arc::new(KubeApiServer::start().await.unwrap());
    kube.create_service_account("default", "certkeeper")
        .await
        .unwrap();
    let bao = DevServer::start().await.unwrap();
    let admin = bao.admin();
    let pki = admin.setup_pki(PkiOptions::default()).await.unwrap();
    admin.enable_auth("kubernetes", "kubernetes").await.unwrap();
    admin
        .kubernetes_auth(KubernetesAuth {
            mount: "kubernetes",
            host: &kube.url(),
            ca_pem: kube.ca_pem(),
            reviewer_jwt: kube.admin_token(),
            role: "certkeeper",
            sa_names: &["certkeeper"],
            sa_namespaces: &["default"],
            policies: &[&pki.policy],
            audience: Some("openbao"),
        })
        .await
        .unwrap();

    let source = Arc::new(TokenRequestSource {
        kube: kube.clone(),
        calls: AtomicUsize::new(0),
    });
    let auth = AuthMethod::Kubernetes {
        mount: "/v1/auth/kubernetes".into(),
        role: "certkeeper".into(),
        jwt: SecretSource::Provider(source.clone()),
    };
    let client = common::client(&bao.addr(), auth);
    assert_signs(&client, &pki.sign_path, "k8s.example.com").await;
    assert_signs(&client, &pki.sign_path, "k8s2.example.com").await;
    assert_eq!(
        source.calls.load(Ordering::SeqCst),
        1,
        "the Vault token is cached, not the JWT re-requested"
    );

    // A service account the role does not bind is refused by Vault itself (403).
    kube.create_service_account("default", "intruder").await.unwrap();
    let jwt = kube
        .token_request("default", "intruder", &["openbao"], 600)
        .await
        .unwrap();
    let auth = AuthMethod::Kubernetes {
        mount: "kubernetes".into(),
        role: "certkeeper".into(),
        jwt: SecretSource::value(jwt),
    };
    let err = common::client(&bao.addr(), auth).login_check().await.unwrap_err();
    assert_eq!(err.status(), Some(403), "{err}");
}

pub fn service_account_claims(aud: &str, ttl: i64) -> serde_json::Value {
    let now = now();
    json!({
        "aud": [aud], "iat": now, "nbf": now, "exp": now + ttl,
        "iss": "https://kubernetes.default.svc.cluster.local",
        "sub": "system:serviceaccount:default:certkeeper",
        "kubernetes.io": {"namespace": "default", "serviceaccount": {"name": "certkeeper", "uid": "1"}}
    })
}

/// Login in one namespace, PKI mount in another (Vault Enterprise and HCP layouts; cert-manager
/// #2917, #5563). The layout OpenBao allows: AppRole in namespace `org`, the PKI mount in its
/// child `org/team`, and a policy in `org` that grants `team/<mount>/sign/<role>`: a token
/// made in a parent namespace acts in a child one when the parent's policy names the child's
/// paths. The login goes to `org` (`auth_namespace`), the sign to `org/team` (`namespace`), and
/// the token's own requests (renew, lookup, revoke) to `org`, where it lives.
#[tokio::test]
async fn login_namespace_apart_from_the_pki_namespace() {
    let bao = DevServer::start().await.unwrap();
    let root = bao.admin();
    root.create_namespace("org").await.unwrap();
    let org = root.with_namespace("org");
    org.create_namespace("team").await.unwrap();
    let team = root.with_namespace("org/team");
    let pki = team.setup_pki(PkiOptions::default()).await.unwrap();
    let policy = format!(
        "path \"team/{0}\" {{ capabilities = [\"create\", \"update\"] }}\n",
        pki.sign_path
    );
    org.put_policy("team-sign", &policy).await.unwrap();
    let auth = common::approle(&org, "certkeeper", "team-sign", 0).await;

    let mut cfg = VaultConfig::new(bao.addr());
    cfg.namespace = Some("org/team".into());
    cfg.auth_namespace = Some("/org/".into());
    let client = VaultClient::new(&cfg, auth.clone()).unwrap();
    assert_signs(&client, &pki.sign_path, "split.example.com").await;
    assert!(client.login_check().await.unwrap().ttl.is_some());

    // Without the login namespace, the login goes to org/team, where no AppRole is mounted.
    let mut same = cfg.clone();
    same.auth_namespace = None;
    let err = VaultClient::new(&same, auth.clone())
        .unwrap()
        .sign(&pki.sign_path, &sign_request("split.example.com", HOUR))
        .await
        .unwrap_err();
    assert_eq!(err.operation, Operation::Login, "{err}");

    // And with both in `org`, the sign goes where the PKI mount is not.
    let mut both_org = cfg.clone();
    both_org.namespace = Some("org".into());
    let err = VaultClient::new(&both_org, auth.clone())
        .unwrap()
        .sign(&pki.sign_path, &sign_request("split.example.com", HOUR))
        .await
        .unwrap_err();
    assert_eq!(err.operation, Operation::Sign, "{err}");

    // A login namespace that would not be a namespace path is refused before any request.
    let mut hostile = cfg.clone();
    hostile.auth_namespace = Some("org\r\nX-Vault-Token: x".into());
    let err = VaultClient::new(&hostile, auth).unwrap_err();
    assert!(err.to_string().contains("auth namespace"), "{err}");
}
