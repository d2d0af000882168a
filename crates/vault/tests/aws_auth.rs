//! AWS IAM auth end to end: certkeeper signs `GetCallerIdentity`, Vault's AWS auth method
//! replays it to a local STS and binds the role to the ARN STS answers, and the token it gives
//! signs on the real OpenBao 2.7.2 PKI. OpenBao 2.7.2 does not ship the AWS auth method (its
//! catalog: approle, cert, jwt, kubernetes, oidc, userpass), so the method is certkeeper-testkit's
//! `AwsAuthFront`, the IAM login of openbao/openbao-plugins `auth/aws/path_login.go` (commit
//! 2ff5b9e) in front of OpenBao; STS is moto's `moto_server`
//! (PyPI `moto[server]`, testkit's `StsEmulator`), started by each test on 127.0.0.1. For static
//! keys moto checks the SigV4 signature itself (an independent implementation, botocore's).
//!
//! Covered: static credentials with the server-ID header (cert-manager's `vaultHeaderValue`),
//! a wrong secret key (STS refuses the signature), a web identity exchanged at STS (IRSA's role
//! ARN and token file), a login refused for a bound ARN that does not match, an STS that cannot
//! be reached. Skipped (with a printed reason) only when `moto_server` is not installed and
//! `CERTKEEPER_STS` is unset; scripts/test installs it and sets that variable, which makes these
//! tests required.
#![allow(clippy::unwrap_used)] // tests state their expectations by unwrapping

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use certkeeper_core::{FailureClass, FailureScope, Secret};
use certkeeper_testkit::{
    AwsAuthConfig, AwsAuthFront, AwsAuthRole, DevServer, Pki, PkiOptions, STS_ACCOUNT, StsEmulator,
    sts_emulator,
};
use certkeeper_vault::aws::{AwsCredentialSource, AwsCredentials, AwsLogin};
use certkeeper_vault::{AuthMethod, ErrorKind, SecretSource, VaultClient};
use common::{common_name, sign_request};

const SERVER_ID: &str = "vault.certkeeper.test";
const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

fn emulator() -> Option<PathBuf> {
    let found = sts_emulator().unwrap();
    if found.is_none() {
        eprintln!(
            "SKIPPED: no moto_server on PATH and CERTKEEPER_STS unset (scripts/test installs moto[server] and sets it)"
        );
    }
    found
}

/// Vault's AWS auth at `auth/aws` in front of `bao`, replaying to `sts`, requiring the
/// server-ID header, with role `role` bound to `arn` and the PKI's policy.
async fn aws_auth(bao: &DevServer, sts: &StsEmulator, role: &str, arn: &str, policy: &str) -> AwsAuthFront {
    let config = AwsAuthConfig {
        mount: "aws".into(),
        sts_endpoint: sts.url(),
        iam_server_id_header_value: Some(SERVER_ID.into()),
        roles: vec![AwsAuthRole {
            name: role.into(),
            bound_iam_principal_arn: arn.into(),
            policy: policy.into(),
        }],
        ..Default::default()
    };
    AwsAuthFront::start(&bao.addr(), bao.root_token(), config)
        .await
        .unwrap()
}

/// `client` logs in and signs `cn` at `path`.
async fn assert_signs(client: &VaultClient, path: &str, cn: &str, sts: &StsEmulator) {
    let signed = client
        .sign(path, &sign_request(cn, Duration::from_secs(3600)))
        .await
        .unwrap_or_else(|e| panic!("{e}; sts log: {}", sts.log_tail()));
    assert_eq!(common_name(&signed.certificate_pem), cn);
}

/// OpenBao with a PKI, a (non-verifying) STS, and Vault's AWS auth in front with `role` bound
/// to `arn`.
async fn servers(moto: &Path, role: &str, arn: &str) -> (DevServer, StsEmulator, Pki, AwsAuthFront) {
    let (bao, sts) = tokio::join!(DevServer::start(), StsEmulator::start(moto));
    let (bao, sts) = (bao.unwrap(), sts.unwrap());
    let pki = bao.admin().setup_pki(PkiOptions::default()).await.unwrap();
    let front = aws_auth(&bao, &sts, role, arn, &pki.policy).await;
    (bao, sts, pki, front)
}

fn static_keys(key: &str, secret: &str) -> AwsCredentialSource {
    AwsCredentialSource::Static(AwsCredentials {
        access_key_id: key.into(),
        secret_access_key: Secret::new(secret),
        session_token: None,
    })
}

fn login(role: &str, credentials: AwsCredentialSource, sts: Option<String>) -> AuthMethod {
    AuthMethod::Aws(Box::new(AwsLogin {
        mount: "/v1/auth/aws".into(),
        role: role.into(),
        region: "us-east-1".into(),
        server_id: Some(SERVER_ID.into()),
        credentials,
        sts_endpoint: sts,
    }))
}

#[tokio::test]
async fn static_credentials_log_in_and_sign() {
    let Some(moto) = emulator() else { return };
    let (bao, sts) = tokio::join!(
        DevServer::start(),
        StsEmulator::start_verifying(&moto, "certkeeper")
    );
    let (bao, (sts, key, secret)) = (bao.unwrap(), sts.unwrap());
    let pki = bao.admin().setup_pki(PkiOptions::default()).await.unwrap();
    let user = format!("arn:aws:iam::{STS_ACCOUNT}:user/certkeeper");
    let front = aws_auth(&bao, &sts, "static", &user, &pki.policy).await;

    let client = common::client(&front.addr(), login("static", static_keys(&key, &secret), None));
    assert_signs(&client, &pki.sign_path, "aws.example.com", &sts).await;
    let info = client.login_check().await.unwrap();
    assert!(
        info.ttl.is_some_and(|t| t > Duration::from_secs(1800)),
        "{info:?}"
    );
    assert_eq!(front.logins(), vec![user.clone()]);

    // A wrong secret key: STS (moto, checking SigV4) refuses the signature, Vault the login.
    // The plugin checks the answer's Content-Type (exactly text/xml) before its status, and
    // moto sends its refusals as text/html, so Vault's message is the Content-Type one (real
    // STS, answering text/xml, gets "received error code 403 from STS: ...").
    let client = common::client(
        &front.addr(),
        login("static", static_keys(&key, SECRET_KEY), None),
    );
    let err = client.login_check().await.unwrap_err();
    assert!(
        err.to_string()
            .contains("error making upstream request: body of GetCallerIdentity is invalid"),
        "{err}"
    );
    assert!(sts.log_tail().contains("\" 403 "), "{}", sts.log_tail());
    assert_eq!(err.class(), FailureClass::Rejected, "{err}");
    assert!(!format!("{err} {err:?}").contains(SECRET_KEY));

    // Without the server-ID header Vault refuses the login: a rejection, about the issuer.
    let AuthMethod::Aws(mut no_header) = login("static", static_keys(&key, &secret), None) else {
        unreachable!()
    };
    no_header.server_id = None;
    let client = common::client(&front.addr(), AuthMethod::Aws(no_header));
    let err = client.login_check().await.unwrap_err();
    assert!(err.to_string().contains("X-Vault-AWS-IAM-Server-ID"), "{err}");
    assert_eq!(err.class(), FailureClass::Rejected, "{err}");
    assert_eq!(err.scope(), FailureScope::Issuer);
    assert!(!format!("{err} {err:?}").contains(&secret));
    assert_eq!(front.logins().len(), 1);
}

#[tokio::test]
async fn web_identity_is_exchanged_at_sts_then_logs_in() {
    let Some(moto) = emulator() else { return };
    let role_arn = format!("arn:aws:iam::{STS_ACCOUNT}:role/certkeeper-irsa");
    let (_bao, sts, pki, front) = servers(&moto, "irsa", &role_arn).await;

    // IRSA's projected token file; re-read at each login.
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(
        &token_file,
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJjZXJ0a2VlcGVyIn0.c2ln\n",
    )
    .unwrap();
    let credentials = AwsCredentialSource::WebIdentity {
        role_arn: role_arn.clone(),
        session_name: "certkeeper".into(),
        token: SecretSource::File(token_file.clone()),
    };
    let client = common::client(&front.addr(), login("irsa", credentials.clone(), Some(sts.url())));
    assert_signs(&client, &pki.sign_path, "irsa.example.com", &sts).await;
    // Vault saw the assumed role, not a user: the exchange happened.
    assert_eq!(front.logins(), vec![role_arn.clone()]);

    // A missing token file waits for a change; it names the file.
    std::fs::remove_file(&token_file).unwrap();
    client.forget_token().await;
    let err = client.login_check().await.unwrap_err();
    assert_eq!(err.class(), FailureClass::Invalid, "{err}");
    assert!(err.to_string().contains("token"), "{err}");

    // STS that cannot be reached: transient.
    std::fs::write(&token_file, "eyJhbGciOiJSUzI1NiJ9.e30.c2ln").unwrap();
    let dead = format!("http://127.0.0.1:{}", certkeeper_testkit::free_port());
    let client = common::client(&front.addr(), login("irsa", credentials, Some(dead)));
    let err = client.login_check().await.unwrap_err();
    assert!(matches!(err.kind, ErrorKind::Sts(_)), "{err}");
    assert_eq!(err.class(), FailureClass::Transient, "{err}");
}

#[tokio::test]
async fn a_login_for_another_principal_is_refused() {
    let Some(moto) = emulator() else { return };
    let other = format!("arn:aws:iam::{STS_ACCOUNT}:role/someone-else");
    let (_bao, _sts, pki, front) = servers(&moto, "bound", &other).await;

    let client = common::client(
        &front.addr(),
        login("bound", static_keys("AKIAIOSFODNN7EXAMPLE", SECRET_KEY), None),
    );
    let err = client
        .sign(
            &pki.sign_path,
            &sign_request("no.example.com", Duration::from_secs(3600)),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("does not belong to the role"), "{err}");
    assert_eq!(err.status(), Some(400), "{err}");
    assert_eq!(err.class(), FailureClass::Rejected, "{err}");
    assert_eq!(err.scope(), FailureScope::Issuer);
    assert!(!format!("{err} {err:?}").contains(SECRET_KEY));
}
