//! certkeeper's issuer annotations in a cluster, against a genuine kube-apiserver and OpenBao:
//! an Issuer whose `certkeeper.io/vault-addresses` lists a dead address first and OpenBao second
//! is Ready and issues (its `spec.vault.server` is a name nothing answers at), with the sign sent
//! to OpenBao's address, as `certkeeper_vault_node_requests_total` shows; an Issuer whose
//! annotations are hostile (an address with a path into `sys/`, a login namespace with a header
//! in it) is not Ready, its condition naming the annotation.
//! Skipped (with a printed reason) only when the kube binaries are not installed.

#![allow(clippy::unwrap_used)]

mod common;

use anyhow::Result;
use certkeeper_testkit::free_port;
use common::{
    Api, CERTIFICATES, ISSUERS, NS, certificate_for, condition, config_for, create_secret, installed,
    metric_sum, ready, spawn_controller, start_kube_and_bao,
};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_annotations_choose_the_address_or_make_the_issuer_invalid() -> Result<()> {
    if !installed() {
        return Ok(());
    }
    let (kube, bao, pki) = start_kube_and_bao().await?;
    let api = Api::new(&kube)?;
    let token = bao.admin().create_token(&[&pki.policy], "1h", true, 0).await?;
    create_secret(&api, "vault-token", "token", &token).await?;
    let dead = format!("http://127.0.0.1:{}", free_port());
    let issuer = |name: &str, annotations: serde_json::Value| {
        json!({"apiVersion": "cert-manager.io/v1", "kind": "Issuer",
               "metadata": {"name": name, "namespace": NS, "annotations": annotations},
               "spec": {"vault": {"server": "http://vault.invalid:8200", "path": pki.sign_path,
                                  "auth": {"tokenSecretRef": {"name": "vault-token", "key": "token"}}}}})
    };
    api.create(
        ISSUERS,
        &issuer(
            "ha",
            json!({"certkeeper.io/vault-addresses": format!("{dead}, {}", bao.addr())}),
        ),
    )
    .await?;
    api.create(
        ISSUERS,
        &issuer(
            "bad-address",
            json!({"certkeeper.io/vault-addresses": format!("{}/v1/sys/seal", bao.addr())}),
        ),
    )
    .await?;
    api.create(
        ISSUERS,
        &issuer(
            "bad-namespace",
            json!({"certkeeper.io/vault-auth-namespace": "team\r\nX-Vault-Token: root"}),
        ),
    )
    .await?;
    api.create(CERTIFICATES, &certificate_for("web", "ha", "Issuer"))
        .await?;

    let port = free_port();
    let mut config = config_for(&kube, kube.admin_token());
    config.listen = Some(format!("127.0.0.1:{port}").parse()?);
    let (stop_tx, controller) = spawn_controller(config);

    let path = |name: &str| format!("{ISSUERS}/{name}");
    api.wait_until("ha Ready", &path("ha"), ready).await?;
    api.wait_until("web Ready", &format!("{CERTIFICATES}/web"), ready)
        .await?;
    for (name, wanted) in [
        ("bad-address", "annotation certkeeper.io/vault-addresses: "),
        (
            "bad-namespace",
            "annotation certkeeper.io/vault-auth-namespace: namespace ",
        ),
    ] {
        let object = api
            .wait_until(&format!("{name} not Ready"), &path(name), |i| {
                condition(i, "Ready").is_some_and(|c| c["status"] == "False")
            })
            .await?;
        let message = condition(&object, "Ready").unwrap()["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(message.contains(wanted), "{name}: {message}");
    }
    let http = reqwest::Client::new();
    let signs = |address: String| {
        let http = http.clone();
        async move {
            metric_sum(
                &http,
                port,
                "certkeeper_vault_node_requests_total",
                &format!("issuer=\"Issuer/apps/ha\",address=\"{address}\",operation=\"sign\""),
            )
            .await
        }
    };
    assert!(signs(bao.addr()).await? >= 1.0);
    // At most the first request tried the dead address; it is skipped from then on.
    assert!(signs(dead.clone()).await? <= 1.0);

    let _ = stop_tx.send(());
    controller.await??;
    Ok(())
}
