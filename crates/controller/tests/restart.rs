//! A controller restart against a genuine kube-apiserver and OpenBao: the state comes back from
//! the Secret, and a status that lags behind it (its last write was lost, e.g. the controller
//! died while the API server did not answer) is rewritten to what is served, without issuing.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use anyhow::Result;
use common::{
    Api, CERTIFICATES, NS, decode, installed, leaf, not_after, ready, start_controller,
    start_with_vault_issuer,
};
use serde_json::json;

const CERT: &str = "/apis/cert-manager.io/v1/namespaces/apps/certificates/web";
const SECRET: &str = "/api/v1/namespaces/apps/secrets/web-tls";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_status_is_rewritten_after_a_restart_without_issuing() -> Result<()> {
    if !installed() {
        return Ok(());
    }
    let (kube, _bao, _token) = start_with_vault_issuer().await?;
    let api = Api::new(&kube)?;
    let (stop_tx, controller) = start_controller(&kube, None);
    api.create(
        CERTIFICATES,
        &json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
                "metadata": {"name": "web", "namespace": NS},
                "spec": {"secretName": "web-tls", "commonName": "web.example.com", "duration": "24h",
                         "issuerRef": {"name": "vault"}}}),
    )
    .await?;
    api.wait_until("web Ready", CERT, |c| ready(c) && c["status"]["revision"] == 1)
        .await?;
    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(30), controller).await???;
    let secret = api.get(SECRET).await?.unwrap();
    let serial = leaf(&decode(&secret, "tls.crt")).0;

    // The status as it was before the last issuance was recorded.
    let mut cert = api.get(CERT).await?.unwrap();
    cert["status"] = json!({"conditions": [{"type": "Ready", "status": "False", "reason": "DoesNotExist",
                                            "message": "Issuing certificate as Secret does not exist",
                                            "lastTransitionTime": "2026-01-01T00:00:00Z"}]});
    let (code, body) = api
        .client
        .call(
            reqwest::Method::PUT,
            &format!("{CERT}/status"),
            "application/json",
            Some(&cert),
        )
        .await?;
    assert_eq!(code, 200, "{body}");

    let (stop_tx, controller) = start_controller(&kube, None);
    let cert = api
        .wait_until("status rewritten", CERT, |c| {
            ready(c) && c["status"]["notAfter"] == not_after(&secret)
        })
        .await?;
    assert_eq!(
        cert["status"]["revision"], 1,
        "nothing issued: {}",
        cert["status"]
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let now = api.get(SECRET).await?.unwrap();
    assert_eq!(
        leaf(&decode(&now, "tls.crt")).0,
        serial,
        "the served certificate is kept"
    );
    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(30), controller).await???;
    Ok(())
}
