//! `auth.aws` standalone, end to end, with the daemon's own (ambient) AWS credentials, logging in
//! to Vault's AWS auth method (certkeeper-testkit's `AwsAuthFront` in front of the real OpenBao,
//! which does not ship that method) and writing the certificate; STS is moto's `moto_server`,
//! started by each test on 127.0.0.1:
//! - IRSA's environment (`AWS_ROLE_ARN`, `AWS_WEB_IDENTITY_TOKEN_FILE`, `AWS_ENDPOINT_URL_STS`):
//!   the token file is exchanged at STS for the role's credentials;
//! - static keys (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`), whose SigV4 signature moto
//!   checks.
//!
//! Skipped (with a printed reason) only when `moto_server` is not installed and `CERTKEEPER_STS`
//! is unset.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use certkeeper_testkit::{AwsAuthConfig, AwsAuthFront, AwsAuthRole, STS_ACCOUNT, StsEmulator, sts_emulator};
use common::{Daemon, Setup, assert_pair, row, setup, wait_for};

fn emulator() -> Option<std::path::PathBuf> {
    let found = sts_emulator().unwrap();
    if found.is_none() {
        eprintln!(
            "SKIPPED: no moto_server on PATH and CERTKEEPER_STS unset (scripts/test installs moto[server] and sets it)"
        );
    }
    found
}

/// Vault's AWS auth at `auth/aws-daemon` in front of the layout's OpenBao, role `daemon` bound to
/// `arn`; the layout's issuer `default/vault` logs in with it.
async fn aws_issuer(s: &Setup, sts: &StsEmulator, arn: &str) -> AwsAuthFront {
    let front = AwsAuthFront::start(
        &s.bao.addr(),
        s.bao.root_token(),
        AwsAuthConfig {
            mount: "aws-daemon".into(),
            sts_endpoint: sts.url(),
            iam_server_id_header_value: None,
            roles: vec![AwsAuthRole {
                name: "daemon".into(),
                bound_iam_principal_arn: arn.into(),
                policy: s.policy.clone(),
            }],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    std::fs::write(
        s.root.join("manifests/issuer.yaml"),
        format!(
            "apiVersion: cert-manager.io/v1\nkind: Issuer\nmetadata: {{name: vault, namespace: default}}\nspec:\n  vault:\n    server: {}\n    path: {}\n    auth:\n      aws: {{role: daemon, mountPath: /v1/auth/aws-daemon, region: eu-west-1}}\n",
            front.addr(),
            s.sign_path
        ),
    )
    .unwrap();
    front
}

const CERT: (&str, &str) = (
    "web",
    "  duration: 1h\n  privateKey: {algorithm: ECDSA, size: 256}\n",
);

fn assert_issued(s: &Setup, daemon: &Daemon) {
    wait_for(&s.config, "issued", Duration::from_secs(60), daemon, |r| {
        r.iter().any(|x| x["name"] == "default/web") && row(r, "default/web")["ready"] == true
    });
    assert_pair(&s.root.join("certs/default/web-tls"), "web.example.com");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn irsa_environment_logs_in_and_issues() {
    let Some(moto) = emulator() else { return };
    let (s, sts) = tokio::join!(setup(&[CERT]), StsEmulator::start(&moto));
    let sts = sts.unwrap();
    let role_arn = format!("arn:aws:iam::{STS_ACCOUNT}:role/certkeeper-daemon");
    let front = aws_issuer(&s, &sts, &role_arn).await;
    let token_file = s.root.join("web-identity-token");
    std::fs::write(&token_file, "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJkYWVtb24ifQ.c2ln\n").unwrap();
    let sts_url = sts.url();
    let daemon = Daemon::start_with_env(
        &s.config,
        &[
            ("AWS_ROLE_ARN", &role_arn),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", token_file.to_str().unwrap()),
            ("AWS_ENDPOINT_URL_STS", &sts_url),
            ("AWS_REGION", "us-east-1"),
        ],
    );
    assert_issued(&s, &daemon);
    assert_eq!(front.logins(), vec![role_arn]);
    assert!(daemon.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_environment_keys_log_in_and_issue() {
    let Some(moto) = emulator() else { return };
    let (s, sts) = tokio::join!(setup(&[CERT]), StsEmulator::start_verifying(&moto, "daemon"));
    let (sts, key, secret) = sts.unwrap();
    let user_arn = format!("arn:aws:iam::{STS_ACCOUNT}:user/daemon");
    let front = aws_issuer(&s, &sts, &user_arn).await;
    let daemon = Daemon::start_with_env(
        &s.config,
        &[("AWS_ACCESS_KEY_ID", &key), ("AWS_SECRET_ACCESS_KEY", &secret)],
    );
    assert_issued(&s, &daemon);
    assert_eq!(front.logins(), vec![user_arn]);
    assert!(!daemon.log().contains(&secret), "the secret key is never logged");
    assert!(daemon.stop().success());
}
