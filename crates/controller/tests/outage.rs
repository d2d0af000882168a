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
use certkeeper_controller::runtime::parse_rfc3339;
use certkeeper_testkit::{DevServer, KubeApiServer, PkiOptions};
use common::{Api, BOUND, NS, apply_crds, installed, ready, secret_body, start_controller, wait_for};
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
    let (kube, bao) = tokio::join!(KubeApiServer::start(), DevServer::start());
    let (kube, bao) = (kube?, bao?);
    let admin = bao.admin();
    let pki = admin.setup_pki(PkiOptions::default()).await?;
    let token = admin.create_token(&[&pki.policy], "1h", true, 0).await?;
    let api = Api::new(&kube)?;
    apply_crds(&api).await?;
    kube.create_namespace(NS).await?;
    api.create(
        "/api/v1/namespaces/apps/secrets",
        &secret_body("vault-token", "token", &token),
    )
    .await?;
    api.create(
        "/apis/cert-manager.io/v1/namespaces/apps/issuers",
        &json!({"apiVersion": "cert-manager.io/v1", "kind": "Issuer",
                "metadata": {"name": "vault", "namespace": NS},
                "spec": {"vault": {"server": bao.addr(), "path": pki.sign_path,
                                   "auth": {"tokenSecretRef": {"name": "vault-token", "key": "token"}}}}}),
    )
    .await?;
    let (stop_tx, controller) = start_controller(&kube, None);
    let certs = "/apis/cert-manager.io/v1/namespaces/apps/certificates";
    api.create(certs, &certificate("web", "web.example.com")).await?;
    api.create(certs, &certificate("evil", "evil.org")).await?;
    let mut orphan = certificate("orphan", "orphan.example.com");
    orphan["spec"]["issuerRef"]["name"] = json!("later");
    api.create(certs, &orphan).await?;

    // The role refuses evil.org: slow schedule, status explains, not terminal.
    let evil = wait_for("evil.org rejected", BOUND, || async {
        Ok(api
            .get(&format!("{certs}/evil"))
            .await?
            .filter(|c| c["status"]["certkeeper"]["failureClass"] == "rejected"))
    })
    .await?;
    let ck = &evil["status"]["certkeeper"];
    let next = parse_rfc3339(ck["nextAttemptTime"].as_str().unwrap()).unwrap();
    eprintln!(
        "rejected -> next attempt in {} s: {}",
        next - now(),
        ck["failureMessage"]
    );
    assert!(next - now() >= 120, "slow schedule: {ck}");
    assert!(!ready(&evil));

    // An Issuer that does not exist yet: the status says so; creating it issues.
    let waiting = wait_for("orphan waiting for its issuer", BOUND, || async {
        Ok(api
            .get(&format!("{certs}/orphan"))
            .await?
            .filter(|c| c["status"]["certkeeper"]["failureClass"] == "invalid"))
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
    api.create("/apis/cert-manager.io/v1/namespaces/apps/issuers", &later)
        .await?;
    wait_for("orphan Ready once its issuer exists", BOUND, || async {
        Ok(api
            .get(&format!("{certs}/orphan"))
            .await?
            .filter(|c| ready(c) && c["status"]["certkeeper"].is_null()))
    })
    .await?;

    // Sealed while web is due for renewal (renewBefore 59m of 1h: about 30 s after issuance).
    let web = wait_for("web Ready", BOUND, || async {
        Ok(api.get(&format!("{certs}/web")).await?.filter(ready))
    })
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
    bao.unseal().await?;
    let unsealed = Instant::now();
    let renewed = wait_for("renewed after the unseal", BOUND, || async {
        Ok(api.get(&format!("{certs}/web")).await?.filter(|c| {
            ready(c)
                && c["status"]["certkeeper"].is_null()
                && c["status"]["revision"].as_u64() > Some(revision)
        }))
    })
    .await?;
    eprintln!(
        "unsealed -> renewed in {:?} (revision {})",
        unsealed.elapsed(),
        renewed["status"]["revision"]
    );
    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(30), controller).await???;
    Ok(())
}
