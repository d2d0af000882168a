//! `auth.aws` in the cluster, end to end against a genuine kube-apiserver, the real OpenBao PKI,
//! Vault's AWS auth method (certkeeper-testkit's `AwsAuthFront`: OpenBao 2.7.2 does not ship it)
//! and moto's STS (`moto_server`, started on 127.0.0.1 by the test):
//! - an Issuer with `serviceAccountRef` + `iamRoleArn`: the controller requests a token for the
//!   ServiceAccount (TokenRequest, audiences `sts.amazonaws.com` and the listed ones), exchanges
//!   it with `AssumeRoleWithWebIdentity` at the STS endpoint of its environment
//!   (`AWS_ENDPOINT_URL_STS`), and Vault sees the assumed role;
//! - a ClusterIssuer without it uses the controller's own (ambient) static keys;
//! - an Issuer without it is refused as cert-manager refuses it by default
//!   (`--issuer-ambient-credentials` is off), and says so in its Ready condition.
//!
//! Skipped (with a printed reason) when the kube binaries are not installed, or when
//! `moto_server` is not installed and `CERTKEEPER_STS` is unset.

#![allow(clippy::unwrap_used)]

mod common;

use anyhow::Result;
use certkeeper_core::Secret;
use certkeeper_testkit::{AwsAuthConfig, AwsAuthFront, AwsAuthRole, STS_ACCOUNT, StsEmulator, sts_emulator};
use certkeeper_vault::aws::AwsEnvironment;
use common::{
    Api, CERTIFICATES, ISSUERS, NS, certificate_for, condition, config_for, installed, ready,
    spawn_controller, start_kube_and_bao,
};
use serde_json::{Value, json};

fn vault_spec(server: &str, path: &str, aws: Value) -> Value {
    json!({"vault": {"server": server, "path": path, "auth": {"aws": aws}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_account_and_ambient_credentials_issue() -> Result<()> {
    if !installed() {
        return Ok(());
    }
    let Some(moto) = sts_emulator()? else {
        eprintln!(
            "SKIPPED: no moto_server on PATH and CERTKEEPER_STS unset (scripts/test installs moto[server] and sets it)"
        );
        return Ok(());
    };
    let ((kube, bao, pki), sts) = tokio::try_join!(start_kube_and_bao(), StsEmulator::start(&moto))?;
    let api = Api::new(&kube)?;
    let role_arn = format!("arn:aws:iam::{STS_ACCOUNT}:role/vault-web");
    let user_arn = format!("arn:aws:iam::{STS_ACCOUNT}:user/moto");
    let front = AwsAuthFront::start(
        &bao.addr(),
        bao.root_token(),
        AwsAuthConfig {
            mount: "aws".into(),
            sts_endpoint: sts.url(),
            iam_server_id_header_value: Some("vault.certkeeper.test".into()),
            roles: vec![
                AwsAuthRole {
                    name: "web".into(),
                    bound_iam_principal_arn: role_arn.clone(),
                    policy: pki.policy.clone(),
                },
                AwsAuthRole {
                    name: "ambient".into(),
                    bound_iam_principal_arn: user_arn.clone(),
                    policy: pki.policy.clone(),
                },
            ],
            ..Default::default()
        },
    )
    .await?;

    kube.create_service_account(NS, "vault-issuer").await?;
    api.create(
        ISSUERS,
        &json!({"apiVersion": "cert-manager.io/v1", "kind": "Issuer",
                "metadata": {"name": "vault-irsa", "namespace": NS},
                "spec": vault_spec(&front.addr(), &pki.sign_path, json!({
                    "role": "web", "region": "eu-west-1", "iamRoleArn": role_arn,
                    "vaultHeaderValue": "vault.certkeeper.test",
                    "serviceAccountRef": {"name": "vault-issuer", "audiences": ["vault.certkeeper.test"]}}))}),
    )
    .await?;
    api.create(
        "/apis/cert-manager.io/v1/clusterissuers",
        &json!({"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer",
                "metadata": {"name": "vault-ambient"},
                "spec": vault_spec(&front.addr(), &pki.sign_path, json!({
                    "role": "ambient", "vaultHeaderValue": "vault.certkeeper.test"}))}),
    )
    .await?;
    api.create(
        ISSUERS,
        &json!({"apiVersion": "cert-manager.io/v1", "kind": "Issuer",
                "metadata": {"name": "vault-borrower", "namespace": NS},
                "spec": vault_spec(&front.addr(), &pki.sign_path, json!({"role": "ambient"}))}),
    )
    .await?;

    // The controller's environment: static keys (its ambient identity) and the STS endpoint,
    // as AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_ENDPOINT_URL_STS would give them.
    let mut config = config_for(&kube, kube.admin_token());
    config.aws.environment = AwsEnvironment {
        access_key_id: Some("AKIAIOSFODNN7EXAMPLE".into()),
        secret_access_key: Some(Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")),
        sts_endpoint: Some(sts.url()),
        ..AwsEnvironment::default()
    };
    let (stop_tx, controller) = spawn_controller(config);

    for (name, issuer, kind) in [
        ("irsa", "vault-irsa", "Issuer"),
        ("ambient", "vault-ambient", "ClusterIssuer"),
    ] {
        api.create(CERTIFICATES, &certificate_for(name, issuer, kind))
            .await?;
    }
    for name in ["irsa", "ambient"] {
        let path = format!("{CERTIFICATES}/{name}");
        let cert = api
            .wait_until(&format!("{name} Ready"), &path, |c| {
                ready(c) || !c["status"]["certkeeper"].is_null()
            })
            .await?;
        assert!(
            ready(&cert),
            "{name}: {}; sts: {}",
            cert["status"],
            sts.log_tail()
        );
        let secret = api
            .get(&format!("/api/v1/namespaces/{NS}/secrets/{name}-tls"))
            .await?
            .unwrap();
        assert!(
            secret["data"]["tls.crt"].as_str().is_some_and(|v| !v.is_empty()),
            "{name}"
        );
    }
    let logins = front.logins();
    assert!(
        logins.contains(&role_arn),
        "the assumed role logged in: {logins:?}"
    );
    assert!(
        logins.contains(&user_arn),
        "the controller's own keys logged in: {logins:?}"
    );
    let irsa = api
        .wait_until("vault-irsa Ready", &format!("{ISSUERS}/vault-irsa"), ready)
        .await?;
    assert_eq!(condition(&irsa, "Ready").unwrap()["reason"], "VaultVerified");

    // An Issuer may not borrow the controller's identity unless the controller allows it.
    let borrower = api
        .wait_until(
            "vault-borrower refused",
            &format!("{ISSUERS}/vault-borrower"),
            |i| condition(i, "Ready").is_some_and(|c| c["status"] == "False"),
        )
        .await?;
    let message = condition(&borrower, "Ready").unwrap()["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(message.contains("--issuer-ambient-credentials"), "{message}");
    assert!(!message.contains("wJalrXUtnFEMI"), "{message}");

    let _ = stop_tx.send(());
    tokio::time::timeout(std::time::Duration::from_secs(30), controller).await???;
    Ok(())
}
