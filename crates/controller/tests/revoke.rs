//! `certkeeper.io/revoke: deleted` on a genuine kube-apiserver and OpenBao: deleting the
//! Certificate revokes its certificate in Vault (read back from the PKI mount), while a
//! Certificate without the annotation, and one merely turned invalid, revoke nothing.
//! Skipped (with a printed reason) only when the kube binaries are not installed.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use anyhow::Result;
use common::{
    Api, CERTIFICATES, NS, SECRETS, config_for, create_token_issuer, decode, installed, ready,
    spawn_controller, start_kube_and_bao, wait_for,
};
use reqwest::Method;
use serde_json::{Value, json};

fn certificate(name: &str, revoke: Option<&str>) -> Value {
    let mut cert = json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
           "metadata": {"name": name, "namespace": NS},
           "spec": {"secretName": format!("{name}-tls"), "commonName": format!("{name}.example.com"),
                    "duration": "1h", "issuerRef": {"name": "vault", "kind": "Issuer"}}});
    if let Some(revoke) = revoke {
        cert["metadata"]["annotations"] = json!({"certkeeper.io/revoke": revoke});
    }
    cert
}

/// The serial of the Secret's leaf as Vault writes it (lowercase colon hex, no leading zero byte).
fn serial(secret: &Value) -> String {
    let pem = decode(secret, "tls.crt");
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    let cert = block.parse_x509().unwrap();
    let serial = cert.raw_serial_as_string();
    serial.strip_prefix("00:").unwrap_or(&serial).to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_certificate_revokes_it_when_asked_for() -> Result<()> {
    if !installed() {
        return Ok(());
    }
    let (kube, bao, pki) = start_kube_and_bao().await?;
    let admin = bao.admin();
    // The issuer's token may sign and revoke on the PKI mount.
    admin
        .put_policy(
            "revoker",
            &format!(
                "path \"{}/revoke\" {{ capabilities = [\"update\"] }}",
                pki.int_mount
            ),
        )
        .await?;
    let token = admin
        .create_token(&[&pki.policy, "revoker"], "1h", true, 0)
        .await?;
    let api = Api::new(&kube)?;
    create_token_issuer(&api, &bao.addr(), &pki.sign_path, &token).await?;
    let (stop_tx, controller) = spawn_controller(config_for(&kube, kube.admin_token()));
    for (name, revoke) in [
        ("web", Some("deleted")),
        ("plain", None),
        ("edited", Some("deleted")),
    ] {
        api.create(CERTIFICATES, &certificate(name, revoke)).await?;
    }
    let mut serials = Vec::new();
    for name in ["web", "plain", "edited"] {
        api.wait_until(
            &format!("{name} issued"),
            &format!("{CERTIFICATES}/{name}"),
            ready,
        )
        .await?;
        let secret = api.get(&format!("{SECRETS}/{name}-tls")).await?.unwrap();
        serials.push(serial(&secret));
    }
    let revoked = |serial: String| {
        let (admin, mount) = (admin.clone(), pki.int_mount.clone());
        async move {
            let cert = admin.read(&format!("{mount}/cert/{serial}")).await.unwrap();
            cert["data"]["revocation_time"].as_i64().unwrap_or(0) > 0
        }
    };

    // `edited` turned invalid (a name certkeeper refuses; the API server stores it): no longer
    // run, still there, not revoked.
    api.patch(
        &format!("{CERTIFICATES}/edited"),
        &json!({"spec": {"dnsNames": ["bad..name"]}}),
    )
    .await?;
    for name in ["web", "plain"] {
        let (code, answer) = api
            .client
            .call(Method::DELETE, &format!("{CERTIFICATES}/{name}"), "", None)
            .await?;
        anyhow::ensure!(code == 200, "DELETE {name}: {code} {answer}");
    }
    wait_for("web's certificate revoked", Duration::from_secs(30), || {
        let check = revoked(serials[0].clone());
        async move { Ok(check.await.then_some(())) }
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !revoked(serials[1].clone()).await,
        "a Certificate without the annotation"
    );
    assert!(
        !revoked(serials[2].clone()).await,
        "a Certificate turned invalid, not deleted"
    );
    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(30), controller).await???;
    Ok(())
}
