//! The controller end to end against a genuine kube-apiserver (v1.20.2, certkeeper-testkit) with
//! certkeeper's CRDs and a real OpenBao dev server with a PKI: Certificate -> Ready Secret with a
//! matching key, status, a CertificateRequest and Events; a spec change re-issues with the new
//! SAN; renewal; a bad token and a missing Secret show in status with the next attempt; the
//! Secret appearing recovers without a restart; a deleted target Secret is re-issued; old
//! CertificateRequests are pruned; a deleted Certificate is no longer managed (its Secret stays).
//! Skipped (with a printed reason) only when the kube binaries are not installed.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns unwrap too

mod common;

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use certkeeper_core::pki::PrivateKey;
use certkeeper_testkit::free_port;
use common::{
    Api, BOUND, CERTIFICATES, NS, condition, config_for, create_secret, csr_public_key, decode, installed,
    leaf, meta_name, ready, spawn_controller, start_with_vault_issuer, wait_for, wait_for_event,
    wait_kept_key,
};
use serde_json::json;

const CERT_PATH: &str = "/apis/cert-manager.io/v1/namespaces/apps/certificates/web";
const ISSUER_PATH: &str = "/apis/cert-manager.io/v1/namespaces/apps/issuers/vault";
const SECRET_PATH: &str = "/api/v1/namespaces/apps/secrets/web-tls";

/// Points Issuer `vault`'s token auth at Secret `name`.
async fn use_token_secret(api: &Api, name: &str) -> Result<()> {
    api.patch(
        ISSUER_PATH,
        &json!({"spec": {"vault": {"auth": {"tokenSecretRef": {"name": name}}}}}),
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_lifecycle() -> Result<()> {
    if !installed() {
        return Ok(());
    }
    let (kube, _bao, token) = start_with_vault_issuer().await?;
    let api = Api::new(&kube)?;

    let (port, status_port) = (free_port(), free_port());
    let mut config = config_for(&kube, kube.admin_token());
    config.listen = Some(format!("127.0.0.1:{port}").parse()?);
    config.status_listen = Some(format!("127.0.0.1:{status_port}").parse()?);
    let (stop_tx, controller) = spawn_controller(config);

    // 1. Certificate -> Ready Secret, status, CertificateRequest, Event.
    let created = Instant::now();
    api.create(
        CERTIFICATES,
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
    let cert = api.wait_until("Certificate Ready", CERT_PATH, ready).await?;
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
    // The request carries the CSR that was signed (its key is tls.key). Issued at the first
    // attempt, the key was never kept elsewhere: the request names the target Secret.
    assert!(
        key.matches_public_key(&csr_public_key(&cr)),
        "the request's CSR is for tls.key"
    );
    assert_eq!(
        cr["metadata"]["annotations"]["cert-manager.io/private-key-secret-name"],
        "web-tls"
    );
    assert!(
        cert["status"]["nextPrivateKeySecretName"].is_null(),
        "{}",
        cert["status"]
    );
    let issuer = api.wait_until("Issuer Ready", ISSUER_PATH, ready).await?;
    assert_eq!(condition(&issuer, "Ready").unwrap()["reason"], "VaultVerified");
    wait_for_event(&api, "Issued").await?;
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
    let cert = api
        .wait_until("revision after the spec change", CERT_PATH, |c| {
            ready(c) && c["status"]["revision"].as_u64() > Some(before)
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
    create_secret(&api, "bad-token", "token", "s.not-a-real-token").await?;
    use_token_secret(&api, "bad-token").await?;
    let failing = api
        .wait_until("a failure with a next attempt", CERT_PATH, |c| {
            c["status"]["certkeeper"]["nextAttemptTime"].is_string()
                && c["status"]["certkeeper"]["failureClass"] != "invalid"
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
    api.wait_until("Issuer not Ready", ISSUER_PATH, |i| !ready(i))
        .await?;
    // The key of the failing revision is kept in a next-private-key Secret (cert-manager's
    // keymanager contract) and reused by every retry.
    let (failing, next_secret) = wait_kept_key(&api, CERT_PATH).await?;
    let next_name = meta_name(&next_secret);
    assert_eq!(
        next_secret["metadata"]["labels"]["cert-manager.io/next-private-key"],
        "true"
    );
    assert_eq!(
        next_secret["metadata"]["ownerReferences"][0]["uid"], failing["metadata"]["uid"],
        "owned by the Certificate"
    );
    let next_key = decode(&next_secret, "tls.key");
    assert!(PrivateKey::from_pem(&next_key).is_ok());

    // 5. A missing Secret: class invalid, no timer (it waits for the Secret).
    use_token_secret(&api, "vault-token-2").await?;
    let waiting = api
        .wait_until("a failure waiting for the Secret", CERT_PATH, |c| {
            c["status"]["certkeeper"]["failureClass"] == "invalid"
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
    create_secret(&api, "vault-token-2", "token", &token).await?;
    let recovered = api
        .wait_until("recovery", CERT_PATH, |c| {
            ready(c) && c["status"]["certkeeper"].is_null() && c["status"]["revision"].as_u64() > Some(rev)
        })
        .await?;
    eprintln!(
        "Secret created -> recovered in {:?} (revision {})",
        appeared.elapsed(),
        recovered["status"]["revision"]
    );
    assert!(recovered["status"]["lastFailureTime"].is_null());
    // Issued with the key kept through the failures; its Secret is gone.
    let secret = api.get(SECRET_PATH).await?.context("target Secret")?;
    assert_eq!(
        decode(&secret, "tls.key"),
        next_key,
        "the kept key is the one served"
    );
    let revision = recovered["status"]["revision"].as_u64().unwrap();
    let cr = api
        .get(&format!(
            "/apis/cert-manager.io/v1/namespaces/apps/certificaterequests/web-{revision}"
        ))
        .await?
        .context("CertificateRequest of the recovery")?;
    assert_eq!(
        cr["metadata"]["annotations"]["cert-manager.io/private-key-secret-name"],
        next_name.as_str()
    );
    wait_for("the kept key's Secret removed", BOUND, || async {
        let gone = api
            .get(&format!("/api/v1/namespaces/apps/secrets/{next_name}"))
            .await?
            .is_none();
        let cleared = api.get(CERT_PATH).await?.unwrap()["status"]["nextPrivateKeySecretName"].is_null();
        Ok::<_, anyhow::Error>((gone && cleared).then_some(()))
    })
    .await?;
    assert!(
        condition(&issuer, "Ready").is_some(),
        "issuer has a Ready condition"
    );
    api.wait_until("Issuer Ready again", ISSUER_PATH, ready).await?;

    // 7. The target Secret deleted: re-issued at once.
    let rev = api.get(CERT_PATH).await?.unwrap()["status"]["revision"]
        .as_u64()
        .unwrap();
    let (status, _) = api
        .client
        .call(reqwest::Method::DELETE, SECRET_PATH, "", None)
        .await?;
    assert_eq!(status, 200);
    let deleted = Instant::now();
    let secret = wait_for("the Secret re-created", BOUND, || async {
        api.get(SECRET_PATH).await
    })
    .await?;
    eprintln!("Secret deleted -> re-created in {:?}", deleted.elapsed());
    let (_, _, spki) = leaf(&decode(&secret, "tls.crt"));
    assert!(PrivateKey::from_pem(&decode(&secret, "tls.key"))?.matches_public_key(&spki));
    api.wait_until("a new revision after the deletion", CERT_PATH, |c| {
        ready(c) && c["status"]["revision"].as_u64() > Some(rev)
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

    // 9. The Certificate deleted: the controller stops managing it (no job, no metrics); the
    // Secret stays, as with cert-manager (no owner reference on it by default).
    let (status, _) = api
        .client
        .call(reqwest::Method::DELETE, CERT_PATH, "", None)
        .await?;
    assert_eq!(status, 200);
    let http = reqwest::Client::new();
    let summary = wait_for("the job dropped", BOUND, || async {
        let s: serde_json::Value = http
            .get(format!("http://127.0.0.1:{status_port}/api/v1/summary"))
            .send()
            .await?
            .json()
            .await?;
        Ok::<_, anyhow::Error>((s["certificates"] == 0).then_some(s))
    })
    .await?;
    assert_eq!(summary["issuing"], 0);
    let metrics = http
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    assert!(
        !metrics.contains("certmanager_certificate_ready_status{"),
        "no certificate metrics left: {metrics}"
    );
    assert!(api.get(SECRET_PATH).await?.is_some(), "the Secret stays");

    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(30), controller).await???;
    Ok(())
}
