//! An issuer-wide refusal in the cluster (a genuine kube-apiserver and OpenBao): the Vault
//! policy of the Issuer's token is emptied while its Certificates renew. The Issuer's Ready
//! condition says what Vault said, since when and when the next probe goes; the Certificates
//! show the probe's time as their next attempt; Vault sees one probe at a time; restoring the
//! policy renews them all and makes the Issuer Ready again. A CertificateRequest made by hand
//! meanwhile stays Pending (never Failed: the refusal is the issuer's, not the request's) and is
//! signed after the restore; one made while the role is deleted ("unknown role": the issuer's
//! rejection, not the request's) stays Pending too and is signed once the role is back.
//! Skipped (with a printed reason) only when the kube binaries are not installed.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use anyhow::Result;
use certkeeper_testkit::{DevServer, KubeApiServer, PkiOptions};
use common::{
    Api, CERTIFICATES, NS, apply_crds, condition, config_for, create_request, create_token_issuer, installed,
    ready, request_path, spawn_controller,
};
use serde_json::json;

const N: usize = 5;
const ISSUER: &str = "/apis/cert-manager.io/v1/namespaces/apps/issuers/vault";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_issuer_says_so_and_its_certificates_wait_for_the_probe() -> Result<()> {
    if !installed() {
        return Ok(());
    }
    let (kube, bao) = tokio::join!(KubeApiServer::start(), DevServer::start());
    let (kube, bao) = (kube?, bao?);
    let admin = bao.admin();
    let pki = admin.setup_pki(PkiOptions::default()).await?;
    apply_crds(&kube).await?;
    kube.create_namespace(NS).await?;
    let api = Api::new(&kube)?;
    let token = admin.create_token(&[&pki.policy], "1h", true, 0).await?;
    create_token_issuer(&api, &bao.addr(), &pki.sign_path, &token).await?;
    for i in 0..N {
        api.create(
            CERTIFICATES,
            &json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
                    "metadata": {"name": format!("c{i}"), "namespace": NS},
                    "spec": {"secretName": format!("c{i}-tls"), "commonName": format!("c{i}.example.com"),
                             "duration": "1h", "issuerRef": {"name": "vault"}}}),
        )
        .await?;
    }
    // No periodic reconcile during the test: the Issuer's condition follows the hold itself.
    let mut config = config_for(&kube, kube.admin_token());
    config.secret_resync = Duration::from_secs(600);
    let (stop_tx, controller) = spawn_controller(config);
    let cert = |i: usize| format!("{CERTIFICATES}/c{i}");
    for i in 0..N {
        api.wait_until("Ready", &cert(i), ready).await?;
    }
    api.wait_until("Issuer Ready", ISSUER, ready).await?;

    let policy = admin.read(&format!("sys/policies/acl/{}", pki.policy)).await?["data"]["policy"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    admin
        .put_policy(&pki.policy, "path \"sys/nothing\" { capabilities = [\"read\"] }")
        .await?;
    // As `cmctl renew` (or `certkeeper controller renew`) asks it.
    let client = certkeeper_controller::KubeClient::new(&config_for(&kube, kube.admin_token()).kube)?;
    for i in 0..N {
        certkeeper_controller::ops::request_renew(&client, NS, &format!("c{i}")).await?;
    }
    let issuer = api
        .wait_until("Issuer not Ready", ISSUER, |i| {
            condition(i, "Ready").is_some_and(|c| c["status"] == "False")
        })
        .await?;
    let message = condition(&issuer, "Ready").unwrap()["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    eprintln!("Issuer: {message}");
    assert!(
        message.contains("Vault refuses this issuer (auth_rejected) since"),
        "{message}"
    );
    assert!(message.contains("next probe at"), "{message}");
    create_request(&api, "held").await?;
    let held = api
        .wait_until("the request Pending", &request_path("held"), |r| {
            condition(r, "Ready").is_some_and(|c| c["reason"] == "Pending")
        })
        .await?;
    let pending = condition(&held, "Ready").unwrap()["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(pending.contains("auth_rejected"), "{pending}");
    for i in 0..N {
        let c = api
            .wait_until("a recorded failure", &cert(i), |c| {
                !c["status"]["certkeeper"].is_null()
            })
            .await?;
        let status = &c["status"]["certkeeper"];
        assert_eq!(status["failureClass"], "auth_rejected", "{status}");
        assert!(
            status["failureMessage"]
                .as_str()
                .unwrap_or_default()
                .contains("probe"),
            "{status}"
        );
    }

    admin.put_policy(&pki.policy, &policy).await?;
    let restored = Instant::now();
    for i in 0..N {
        api.wait_until("renewed", &cert(i), |c| ready(c) && c["status"]["revision"] == 2)
            .await?;
    }
    eprintln!(
        "{N} certificates renewed {:?} after the restore",
        restored.elapsed()
    );
    api.wait_until("Issuer Ready again", ISSUER, ready).await?;
    let signed = api
        .wait_until("the request signed", &request_path("held"), ready)
        .await?;
    assert!(signed["status"]["failureTime"].is_null(), "{signed}");

    // Vault's "unknown role" is a rejection, but of the issuer, not of the request: a request
    // made while the role is deleted stays Pending (cert-manager's contract keeps Failed for
    // Vault refusing the request itself), and is signed once the role is back.
    let role_path = format!("{}/roles/{}", pki.int_mount, pki.role);
    let role = admin.read(&role_path).await?["data"].clone();
    admin.delete(&role_path).await?;
    create_request(&api, "no-role").await?;
    let held = api
        .wait_until("the request Pending", &request_path("no-role"), |r| {
            condition(r, "Ready").is_some_and(|c| c["reason"] != "Issued")
        })
        .await?;
    let waiting = condition(&held, "Ready").unwrap();
    assert_eq!(waiting["reason"], "Pending", "{held}");
    assert!(held["status"]["failureTime"].is_null(), "{held}");
    pki.set_role(&pki.role, role).await?;
    api.wait_until("the request signed", &request_path("no-role"), ready)
        .await?;
    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(30), controller).await???;
    Ok(())
}
