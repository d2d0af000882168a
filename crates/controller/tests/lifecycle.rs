//! The controller end to end against a genuine kube-apiserver (v1.20.2, certkeeper-testkit) with
//! certkeeper's CRDs and a real OpenBao dev server with a PKI: Certificate -> Ready Secret with a
//! matching key, status, a CertificateRequest and Events; a spec change re-issues with the new
//! SAN; renewal; a bad token and a missing Secret show in status with the next attempt; the
//! Secret appearing recovers without a restart; a deleted target Secret is re-issued; old
//! CertificateRequests are pruned.
//! Skipped (with a printed reason) only when the kube binaries are not installed.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns unwrap too

mod common;

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use certkeeper_core::pki::PrivateKey;
use certkeeper_testkit::{DevServer, KubeApiServer, PkiOptions, free_port};
use common::{
    Api, BOUND, NS, apply_crds, condition, decode, installed, leaf, ready, secret_body, start_controller,
    wait_for,
};
use serde_json::json;

const CERT_PATH: &str = "/apis/cert-manager.io/v1/namespaces/apps/certificates/web";
const ISSUER_PATH: &str = "/apis/cert-manager.io/v1/namespaces/apps/issuers/vault";
const SECRET_PATH: &str = "/api/v1/namespaces/apps/secrets/web-tls";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_lifecycle() -> Result<()> {
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

    let port = free_port();
    let (stop_tx, controller) = start_controller(&kube, Some(format!("127.0.0.1:{port}").parse()?));

    // 1. Certificate -> Ready Secret, status, CertificateRequest, Event.
    let created = Instant::now();
    api.create(
        "/apis/cert-manager.io/v1/namespaces/apps/certificates",
        &json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
                "metadata": {"name": "web", "namespace": NS},
                "spec": {"secretName": "web-tls", "commonName": "web.example.com",
                         "dnsNames": ["web.example.com"], "duration": "1h", "renewBefore": "59m",
                         "revisionHistoryLimit": 2,
                         "privateKey": {"algorithm": "ECDSA", "size": 256},
                         "secretTemplate": {"labels": {"app": "web"}, "annotations": {"team": "platform"}},
                         "additionalOutputFormats": [{"type": "CombinedPEM"}],
                         "issuerRef": {"name": "vault", "kind": "Issuer"}}}),
    )
    .await?;
    let cert = wait_for("Certificate Ready", BOUND, || async {
        Ok(api.get(CERT_PATH).await?.filter(ready))
    })
    .await?;
    let to_ready = created.elapsed();
    let secret = api.get(SECRET_PATH).await?.context("target Secret")?;
    let to_secret = created.elapsed();
    eprintln!("Certificate created -> Ready status {to_ready:?}, Secret read back at {to_secret:?}");
    let status = &cert["status"];
    assert_eq!(status["revision"], 1, "{status}");
    for field in ["notBefore", "notAfter", "renewalTime"] {
        assert!(status[field].is_string(), "{field} in {status}");
    }
    assert!(status["certkeeper"].is_null(), "{status}");
    assert!(
        condition(&cert, "Issuing").is_none(),
        "no Issuing condition after success: {status}"
    );
    assert_eq!(secret["type"], "kubernetes.io/tls");
    let (serial1, sans, spki) = leaf(&decode(&secret, "tls.crt"));
    assert_eq!(sans, ["web.example.com"]);
    let key = PrivateKey::from_pem(&decode(&secret, "tls.key"))?;
    assert!(key.matches_public_key(&spki), "tls.key matches tls.crt");
    assert!(decode(&secret, "ca.crt").contains("BEGIN CERTIFICATE"));
    assert!(decode(&secret, "tls-combined.pem").contains("PRIVATE KEY"));
    let annotations = &secret["metadata"]["annotations"];
    assert_eq!(annotations["cert-manager.io/certificate-name"], "web");
    assert_eq!(annotations["cert-manager.io/issuer-name"], "vault");
    assert_eq!(annotations["cert-manager.io/issuer-kind"], "Issuer");
    assert_eq!(annotations["cert-manager.io/common-name"], "web.example.com");
    assert_eq!(annotations["cert-manager.io/alt-names"], "web.example.com");
    assert_eq!(annotations["team"], "platform");
    assert_eq!(secret["metadata"]["labels"]["app"], "web");
    let cr = api
        .get("/apis/cert-manager.io/v1/namespaces/apps/certificaterequests/web-1")
        .await?
        .context("CertificateRequest web-1")?;
    assert_eq!(
        cr["metadata"]["annotations"]["cert-manager.io/certificate-revision"],
        "1"
    );
    assert_eq!(
        cr["metadata"]["annotations"]["cert-manager.io/certificate-name"],
        "web"
    );
    assert!(
        ready(&cr) && condition(&cr, "Approved").is_some_and(|c| c["status"] == "True"),
        "{cr}"
    );
    assert!(cr["status"]["certificate"].is_string());
    let issuer = wait_for("Issuer Ready", BOUND, || async {
        Ok(api.get(ISSUER_PATH).await?.filter(ready))
    })
    .await?;
    assert_eq!(condition(&issuer, "Ready").unwrap()["reason"], "VaultVerified");
    wait_for("an Issued Event", BOUND, || async {
        let events = api
            .get("/api/v1/namespaces/apps/events")
            .await?
            .unwrap_or_default();
        Ok(events["items"]
            .as_array()
            .and_then(|items| items.iter().find(|e| e["reason"] == "Issued").cloned()))
    })
    .await?;
    let metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await?
        .text()
        .await?;
    assert!(
        metrics.contains("certmanager_certificate_expiration_timestamp_seconds{"),
        "{metrics}"
    );

    // 2. A spec change re-issues with the new SAN.
    let before = api.get(CERT_PATH).await?.unwrap()["status"]["revision"]
        .as_u64()
        .unwrap();
    api.patch(
        CERT_PATH,
        &json!({"spec": {"dnsNames": ["web.example.com", "extra.example.com"]}}),
    )
    .await?;
    let secret = wait_for("the new SAN in the Secret", BOUND, || async {
        let s = api.get(SECRET_PATH).await?.unwrap();
        Ok(leaf(&decode(&s, "tls.crt"))
            .1
            .contains(&"extra.example.com".to_owned())
            .then_some(s))
    })
    .await?;
    let cert = wait_for("revision after the spec change", BOUND, || async {
        Ok(api
            .get(CERT_PATH)
            .await?
            .filter(|c| ready(c) && c["status"]["revision"].as_u64() > Some(before)))
    })
    .await?;
    let (serial2, _, spki) = leaf(&decode(&secret, "tls.crt"));
    assert_ne!(serial1, serial2);
    assert!(PrivateKey::from_pem(&decode(&secret, "tls.key"))?.matches_public_key(&spki));
    eprintln!("spec change -> revision {}", cert["status"]["revision"]);

    // 3. Renewal (renewBefore 59m of 1h, notBefore backdated 30 s by Vault): a new revision
    // without any change.
    let rev = cert["status"]["revision"].as_u64().unwrap();
    let renewed = wait_for("a renewal", Duration::from_secs(120), || async {
        Ok(api
            .get(CERT_PATH)
            .await?
            .filter(|c| ready(c) && c["status"]["revision"].as_u64() > Some(rev)))
    })
    .await?;
    eprintln!("renewed -> revision {}", renewed["status"]["revision"]);

    // 4. A bad token: the failure and the next attempt show in status, the issuer is not Ready.
    api.create(
        "/api/v1/namespaces/apps/secrets",
        &secret_body("bad-token", "token", "s.not-a-real-token"),
    )
    .await?;
    api.patch(
        ISSUER_PATH,
        &json!({"spec": {"vault": {"auth": {"tokenSecretRef": {"name": "bad-token"}}}}}),
    )
    .await?;
    let failing = wait_for("a failure with a next attempt", BOUND, || async {
        Ok(api.get(CERT_PATH).await?.filter(|c| {
            c["status"]["certkeeper"]["nextAttemptTime"].is_string()
                && c["status"]["certkeeper"]["failureClass"] != "invalid"
        }))
    })
    .await?;
    let status = &failing["status"];
    eprintln!("bad token -> {}", status["certkeeper"]);
    assert!(status["lastFailureTime"].is_string() && status["failedIssuanceAttempts"].as_u64() >= Some(1));
    let issuing = condition(&failing, "Issuing").context("Issuing condition")?;
    assert_eq!(
        (issuing["status"].as_str(), issuing["reason"].as_str()),
        (Some("False"), Some("Failed"))
    );
    wait_for("Issuer not Ready", BOUND, || async {
        Ok(api.get(ISSUER_PATH).await?.filter(|i| !ready(i)))
    })
    .await?;

    // 5. A missing Secret: class invalid, no timer (it waits for the Secret).
    api.patch(
        ISSUER_PATH,
        &json!({"spec": {"vault": {"auth": {"tokenSecretRef": {"name": "vault-token-2"}}}}}),
    )
    .await?;
    let waiting = wait_for("a failure waiting for the Secret", BOUND, || async {
        Ok(api
            .get(CERT_PATH)
            .await?
            .filter(|c| c["status"]["certkeeper"]["failureClass"] == "invalid"))
    })
    .await?;
    let ck = &waiting["status"]["certkeeper"];
    eprintln!("missing Secret -> {ck}");
    assert!(
        ck["failureMessage"].as_str().unwrap().contains("not found"),
        "{ck}"
    );
    assert!(ck["nextAttemptTime"].is_null(), "{ck}");
    let issuer = api.get(ISSUER_PATH).await?.unwrap();
    let rev = waiting["status"]["revision"].as_u64().unwrap();

    // 6. The Secret appears: recovered without a restart.
    let appeared = Instant::now();
    api.create(
        "/api/v1/namespaces/apps/secrets",
        &secret_body("vault-token-2", "token", &token),
    )
    .await?;
    let recovered = wait_for("recovery", BOUND, || async {
        Ok(api.get(CERT_PATH).await?.filter(|c| {
            ready(c) && c["status"]["certkeeper"].is_null() && c["status"]["revision"].as_u64() > Some(rev)
        }))
    })
    .await?;
    eprintln!(
        "Secret created -> recovered in {:?} (revision {})",
        appeared.elapsed(),
        recovered["status"]["revision"]
    );
    assert!(recovered["status"]["lastFailureTime"].is_null());
    assert!(
        condition(&issuer, "Ready").is_some(),
        "issuer has a Ready condition"
    );
    wait_for("Issuer Ready again", BOUND, || async {
        Ok(api.get(ISSUER_PATH).await?.filter(ready))
    })
    .await?;

    // 7. The target Secret deleted: re-issued at once.
    let rev = api.get(CERT_PATH).await?.unwrap()["status"]["revision"]
        .as_u64()
        .unwrap();
    let (status, _) = api.call(reqwest::Method::DELETE, SECRET_PATH, "", None).await?;
    assert_eq!(status, 200);
    let deleted = Instant::now();
    let secret = wait_for("the Secret re-created", BOUND, || async {
        api.get(SECRET_PATH).await
    })
    .await?;
    eprintln!("Secret deleted -> re-created in {:?}", deleted.elapsed());
    let (_, _, spki) = leaf(&decode(&secret, "tls.crt"));
    assert!(PrivateKey::from_pem(&decode(&secret, "tls.key"))?.matches_public_key(&spki));
    wait_for("a new revision after the deletion", BOUND, || async {
        Ok(api
            .get(CERT_PATH)
            .await?
            .filter(|c| ready(c) && c["status"]["revision"].as_u64() > Some(rev)))
    })
    .await?;

    // 8. Old CertificateRequests are pruned to revisionHistoryLimit (2).
    let requests = api
        .get("/apis/cert-manager.io/v1/namespaces/apps/certificaterequests")
        .await?
        .unwrap();
    let names: Vec<&str> = requests["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["metadata"]["name"].as_str().unwrap())
        .collect();
    assert!(names.len() <= 2, "{names:?}");
    assert!(!names.contains(&"web-1"), "{names:?}");

    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(30), controller).await???;
    Ok(())
}
