//! CertificateRequests made by hand (as istio-csr or csi-driver make them) for a certkeeper Vault
//! issuer, against a genuine kube-apiserver and OpenBao: approved and signed; a Denied one is not
//! signed; one for a name the role refuses fails (Vault's rejection is the only terminal state);
//! one created while OpenBao is sealed stays Pending with the reason and is signed after the
//! unseal without anyone touching it.
//! Skipped (with a printed reason) only when the kube binaries are not installed.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use anyhow::Result;
use base64::Engine;
use certkeeper_testkit::csr_p256;
use common::{Api, NS, condition, installed, leaf, ready, start_controller, start_with_vault_issuer};
use serde_json::{Value, json};

const REQUESTS: &str = "/apis/cert-manager.io/v1/namespaces/apps/certificaterequests";

fn request(name: &str, cn: &str) -> Value {
    let (csr, _key) = csr_p256(cn, &[cn]).unwrap();
    json!({"apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest",
           "metadata": {"name": name, "namespace": NS},
           "spec": {"request": base64::engine::general_purpose::STANDARD.encode(csr),
                    "duration": "1h", "issuerRef": {"name": "vault", "kind": "Issuer"},
                    "usages": ["digital signature", "server auth"]}})
}

fn reason(cr: &Value) -> String {
    condition(cr, "Ready")
        .and_then(|c| c["reason"].as_str())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_by_other_tools_are_approved_signed_denied_and_retried() -> Result<()> {
    if !installed() {
        return Ok(());
    }
    let (kube, bao, _token) = start_with_vault_issuer().await?;
    let admin = bao.admin();
    let api = Api::new(&kube)?;
    // Denied before the controller starts (as an approval policy would).
    api.create(REQUESTS, &request("denied", "denied.example.com"))
        .await?;
    api.patch(
        &format!("{REQUESTS}/denied/status"),
        &json!({"status": {"conditions": [{"type": "Denied", "status": "True", "reason": "policy",
                                           "message": "not on the list",
                                           "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}),
    )
    .await?;

    let (stop_tx, controller) = start_controller(&kube, None);
    let created = Instant::now();
    api.create(REQUESTS, &request("by-hand", "by-hand.example.com"))
        .await?;
    api.create(REQUESTS, &request("refused", "evil.org")).await?;

    let signed = api
        .wait_until("by-hand signed", &format!("{REQUESTS}/by-hand"), ready)
        .await?;
    eprintln!("hand-made request signed {:?} after creation", created.elapsed());
    assert_eq!(condition(&signed, "Approved").unwrap()["status"], "True");
    let pem = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(signed["status"]["certificate"].as_str().unwrap())?,
    )?;
    assert_eq!(leaf(&pem).1, ["by-hand.example.com"]);
    assert!(signed["status"]["ca"].is_string());

    let refused = api
        .wait_until("evil.org failed", &format!("{REQUESTS}/refused"), |c| {
            reason(c) == "Failed"
        })
        .await?;
    assert!(refused["status"]["failureTime"].is_string() && refused["status"]["certificate"].is_null());

    let denied = api
        .wait_until("denied answered", &format!("{REQUESTS}/denied"), |c| {
            reason(c) == "Denied"
        })
        .await?;
    assert!(denied["status"]["certificate"].is_null() && !ready(&denied));
    assert!(
        condition(&denied, "Approved").is_none(),
        "a denied request is not approved"
    );

    // Sealed: Pending with the reason, signed after the unseal.
    admin.seal().await?;
    api.create(REQUESTS, &request("outage", "outage.example.com"))
        .await?;
    let pending = api
        .wait_until("outage Pending", &format!("{REQUESTS}/outage"), |c| {
            reason(c) == "Pending"
        })
        .await?;
    eprintln!("sealed -> {}", condition(&pending, "Ready").unwrap()["message"]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let still = api.get(&format!("{REQUESTS}/outage")).await?.unwrap();
    assert_eq!(
        reason(&still),
        "Pending",
        "a transient failure never fails the request"
    );
    bao.unseal().await?;
    let unsealed = Instant::now();
    api.wait_until(
        "outage signed after the unseal",
        &format!("{REQUESTS}/outage"),
        ready,
    )
    .await?;
    eprintln!("unsealed -> signed in {:?}", unsealed.elapsed());

    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(30), controller).await???;
    Ok(())
}
