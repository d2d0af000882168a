//! `auth.aws` standalone, end to end: `certkeeper run` with IRSA's environment
//! (`AWS_ROLE_ARN`, `AWS_WEB_IDENTITY_TOKEN_FILE`, and `AWS_ENDPOINT_URL_STS` naming the local
//! STS) exchanges the token file at STS (moto's `moto_server`, started by the test on
//! 127.0.0.1) for the role's credentials, logs in to Vault's AWS auth method
//! (certkeeper-testkit's `AwsAuthFront` in front of the real OpenBao, which does not ship that
//! method) as the assumed role, and writes the certificate. Skipped (with a printed reason) only
//! when `moto_server` is not installed and `CERTKEEPER_STS` is unset.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use certkeeper_testkit::{AwsAuthConfig, AwsAuthFront, AwsAuthRole, STS_ACCOUNT, StsEmulator, sts_emulator};
use common::{Daemon, assert_pair, row, setup, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn irsa_environment_logs_in_and_issues() {
    let Some(moto) = sts_emulator().unwrap() else {
        eprintln!(
            "SKIPPED: no moto_server on PATH and CERTKEEPER_STS unset (scripts/test installs moto[server] and sets it)"
        );
        return;
    };
    let (s, sts) = tokio::join!(
        setup(&[(
            "web",
            "  duration: 1h\n  privateKey: {algorithm: ECDSA, size: 256}\n"
        )]),
        StsEmulator::start(&moto)
    );
    let sts = sts.unwrap();
    let role_arn = format!("arn:aws:iam::{STS_ACCOUNT}:role/certkeeper-daemon");
    let front = AwsAuthFront::start(
        &s.bao.addr(),
        s.bao.root_token(),
        AwsAuthConfig {
            mount: "aws-daemon".into(),
            sts_endpoint: sts.url(),
            iam_server_id_header_value: None,
            roles: vec![AwsAuthRole {
                name: "daemon".into(),
                bound_iam_principal_arn: role_arn.clone(),
                policy: s.policy.clone(),
            }],
        },
    )
    .await
    .unwrap();
    // The issuer `default/vault` of the layout, now logging in with AWS.
    std::fs::write(
        s.root.join("manifests/issuer.yaml"),
        format!(
            "apiVersion: cert-manager.io/v1\nkind: Issuer\nmetadata: {{name: vault, namespace: default}}\nspec:\n  vault:\n    server: {}\n    path: {}\n    auth:\n      aws: {{role: daemon, mountPath: /v1/auth/aws-daemon, region: eu-west-1}}\n",
            front.addr(),
            s.sign_path
        ),
    )
    .unwrap();
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
    wait_for(&s.config, "issued", Duration::from_secs(60), &daemon, |r| {
        r.iter().any(|x| x["name"] == "default/web") && row(r, "default/web")["ready"] == true
    });
    assert_pair(&s.root.join("certs/default/web-tls"), "web.example.com");
    assert_eq!(front.logins(), vec![role_arn]);
    assert!(daemon.stop().success());
}
