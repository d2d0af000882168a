//! Failures in the cluster, against a genuine kube-apiserver and OpenBao: a Certificate whose name
//! the role refuses is retried on the slow schedule with the status explaining (class `rejected`,
//! the next attempt minutes away, never terminal); a Certificate due for renewal while OpenBao is
//! sealed keeps serving (Ready) with the transient failure and the next attempt in status, and is
//! renewed after the unseal without anyone touching it; a Certificate whose Issuer does not exist
//! says so in status and is issued when the Issuer is created.
//! Skipped (with a printed reason) only when the kube binaries are not installed.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use certkeeper_core::time::parse_rfc3339_unix;
use common::{
    Api, BOUND, CERTIFICATES, ISSUERS, NS, decode, installed, meta_name, ready, start_controller,
    start_with_vault_issuer, wait_for, wait_kept_key,
};
use serde_json::{Value, json};

fn certificate(name: &str, cn: &str) -> Value {
    json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
           "metadata": {"name": name, "namespace": NS},
           "spec": {"secretName": format!("{name}-tls"), "commonName": cn, "duration": "1h",
                    "renewBefore": "59m", "issuerRef": {"name": "vault"}}})
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_names_and_a_sealed_openbao() -> Result<()> {
    if !installed() {
        return Ok(());
    }
    let (kube, bao, _token) = start_with_vault_issuer().await?;
    let admin = bao.admin();
    let api = Api::new(&kube)?;
    let (stop_tx, controller) = start_controller(&kube, None);
    let certs = CERTIFICATES;
    api.create(certs, &certificate("web", "web.example.com")).await?;
    api.create(certs, &certificate("evil", "evil.org")).await?;
    let mut orphan = certificate("orphan", "orphan.example.com");
    orphan["spec"]["issuerRef"]["name"] = json!("later");
    api.create(certs, &orphan).await?;

    // The role refuses evil.org: slow schedule, status explains, not terminal.
    let evil = api
        .wait_until("evil.org rejected", &format!("{certs}/evil"), |c| {
            c["status"]["certkeeper"]["failureClass"] == "rejected"
        })
        .await?;
    let ck = &evil["status"]["certkeeper"];
    let next = parse_rfc3339_unix(ck["nextAttemptTime"].as_str().unwrap()).unwrap();
    eprintln!(
        "rejected -> next attempt in {} s: {}",
        next - now(),
        ck["failureMessage"]
    );
    assert!(next - now() >= 120, "slow schedule: {ck}");
    assert!(!ready(&evil));

    // An Issuer that does not exist yet: the status says so; creating it issues.
    let waiting = api
        .wait_until("orphan waiting for its issuer", &format!("{certs}/orphan"), |c| {
            c["status"]["certkeeper"]["failureClass"] == "invalid"
        })
        .await?;
    let message = waiting["status"]["certkeeper"]["failureMessage"]
        .as_str()
        .unwrap();
    assert!(message.contains("Issuer/apps/later"), "{message}");
    assert!(!ready(&waiting));
    let mut later = api
        .get("/apis/cert-manager.io/v1/namespaces/apps/issuers/vault")
        .await?
        .unwrap();
    later = json!({"apiVersion": "cert-manager.io/v1", "kind": "Issuer",
                   "metadata": {"name": "later", "namespace": NS}, "spec": later["spec"]});
    api.create(ISSUERS, &later).await?;
    api.wait_until(
        "orphan Ready once its issuer exists",
        &format!("{certs}/orphan"),
        |c| ready(c) && c["status"]["certkeeper"].is_null(),
    )
    .await?;

    // Sealed while web is due for renewal (renewBefore 59m of 1h: about 30 s after issuance).
    let web = api
        .wait_until("web Ready", &format!("{certs}/web"), ready)
        .await?;
    let revision = web["status"]["revision"].as_u64().unwrap();
    admin.seal().await?;
    let failing = wait_for(
        "a transient failure while sealed",
        Duration::from_secs(120),
        || async {
            Ok(api
                .get(&format!("{certs}/web"))
                .await?
                .filter(|c| c["status"]["certkeeper"]["failureClass"] == "transient"))
        },
    )
    .await?;
    let ck = &failing["status"]["certkeeper"];
    eprintln!("sealed -> {ck}");
    assert!(ck["nextAttemptTime"].is_string(), "{ck}");
    assert!(ready(&failing), "the valid certificate is still served and Ready");
    // The renewal's new key is kept for the retries (cert-manager's next private key).
    let (_, next_secret) = wait_kept_key(&api, &format!("{certs}/web")).await?;
    let next_path = format!("/api/v1/namespaces/apps/secrets/{}", meta_name(&next_secret));
    let next_key = decode(&next_secret, "tls.key");
    bao.unseal().await?;
    let unsealed = Instant::now();
    let renewed = api
        .wait_until("renewed after the unseal", &format!("{certs}/web"), |c| {
            ready(c)
                && c["status"]["certkeeper"].is_null()
                && c["status"]["revision"].as_u64() > Some(revision)
        })
        .await?;
    eprintln!(
        "unsealed -> renewed in {:?} (revision {})",
        unsealed.elapsed(),
        renewed["status"]["revision"]
    );
    let secret = api.get("/api/v1/namespaces/apps/secrets/web-tls").await?.unwrap();
    assert_eq!(decode(&secret, "tls.key"), next_key, "renewed with the kept key");
    wait_for("the kept key's Secret removed", BOUND, || async {
        Ok::<_, anyhow::Error>(api.get(&next_path).await?.is_none().then_some(()))
    })
    .await?;
    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(30), controller).await???;
    Ok(())
}
