//! certkeeper beside cert-manager, as its external issuer (`--external-issuer`), against a
//! genuine kube-apiserver carrying cert-manager's own Certificate and CertificateRequest CRDs
//! (the copy in `crates/crds/tests/testdata/cert-manager`) and certkeeper's two, and a genuine
//! OpenBao.
//!
//! No cert-manager binary runs here, so the test writes what cert-manager's controllers write,
//! field for field:
//! - the CertificateRequest of a Certificate's issuance, as cert-manager's request manager
//!   creates it (`pkg/controller/certificates/requestmanager/requestmanager_controller.go`,
//!   `createNewCertificateRequest`, cert-manager 2d0d7f7f7): `generateName` `<certificate>-`,
//!   the Certificate's labels, annotations `cert-manager.io/certificate-name`,
//!   `cert-manager.io/certificate-revision` and `cert-manager.io/private-key-secret-name`, a
//!   controller ownerReference to the Certificate, and `spec.duration`, `issuerRef`, `request`,
//!   `isCA`, `usages` copied from the Certificate;
//! - the approval, as cert-manager's approver writes it
//!   (`pkg/controller/certificaterequests/approver/approver.go`): condition `Approved` True,
//!   reason `cert-manager.io`, message `Certificate request has been approved by
//!   cert-manager.io`; and a denial as an approver-policy would write it (`Denied` True).
//!
//! What it shows: nothing happens before the approval; a request for a `VaultIssuer` or a
//! `VaultClusterIssuer` is signed (`Ready` True, reason `Issued`, `status.certificate` and
//! `status.ca`); a denied one ends `Denied` with `failureTime`; one for an issuer that does not
//! exist yet says so and is signed once it is created; Vault's 403 (`permission denied`, the
//! answer of a token whose policy is gone, and of a Vault during a leader election), a sealed
//! Vault and a 429 from a rate-limit quota keep the request `Pending` with the reason — never
//! `Failed` — and it is signed once Vault serves again; no cert-manager.io Certificate, Issuer
//! or Secret is read into action or written (their resourceVersions do not move, no target
//! Secret appears). Then the same manifests under certkeeper's full mode: the Certificate that
//! names the `VaultIssuer` is issued by certkeeper itself, unchanged.
//! Skipped (with a printed reason) only when the kube binaries are not installed.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use base64::Engine;
use certkeeper_controller::run::Mode;
use certkeeper_testkit::{DevServer, KubeApiServer, PkiOptions, csr_p256};
use common::{
    Api, BOUND, CERTIFICATES, ISSUERS, NS, SECRETS, condition, config_for, installed, leaf, ready,
    secret_body, spawn_controller, wait_for,
};
use serde::Deserialize;
use serde_json::{Value, json};

const REQUESTS: &str = "/apis/cert-manager.io/v1/namespaces/apps/certificaterequests";
const VAULT_ISSUERS: &str = "/apis/certkeeper.io/v1/namespaces/apps/vaultissuers";
const VAULT_CLUSTER_ISSUERS: &str = "/apis/certkeeper.io/v1/vaultclusterissuers";
/// cert-manager's default cluster resource namespace (a VaultClusterIssuer's Secrets).
const CLUSTER_NS: &str = "cert-manager";

/// cert-manager's own Certificate and CertificateRequest CRDs (its release's files, as checked
/// in for the CRD comparison test), certkeeper's Issuer and ClusterIssuer CRDs (cert-manager's
/// do not install on this v1.20 API server: an ACME solver's `imagePullSecrets` default, see
/// `certkeeper_crds`), then certkeeper's two.
async fn install_crds(kube: &KubeApiServer) -> Result<()> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../crds/tests/testdata/cert-manager");
    let mut crds: Vec<Value> = certkeeper_crds::crds()
        .iter()
        .filter(|c| matches!(c.kind, "Issuer" | "ClusterIssuer"))
        .map(certkeeper_crds::Crd::to_json)
        .collect();
    for plural in ["certificates", "certificaterequests"] {
        let text = std::fs::read_to_string(format!("{dir}/cert-manager.io_{plural}.yaml"))?;
        for document in serde_yaml_ng::Deserializer::from_str(&text) {
            let crd = Value::deserialize(document)?;
            if crd.is_object() {
                crds.push(crd);
            }
        }
    }
    for document in serde_yaml_ng::Deserializer::from_str(&certkeeper_crds::group_yaml("certkeeper.io")) {
        crds.push(Value::deserialize(document)?);
    }
    kube.apply_crds(&crds, BOUND).await?;
    Ok(())
}

/// The `spec` of a VaultIssuer: cert-manager's `spec.vault`, token from Secret `vault-token`.
fn vault_spec(server: &str, path: &str) -> Value {
    json!({"server": server, "path": path,
           "auth": {"tokenSecretRef": {"name": "vault-token", "key": "token"}}})
}

fn reason(cr: &Value) -> String {
    condition(cr, "Ready")
        .and_then(|c| c["reason"].as_str())
        .unwrap_or_default()
        .to_owned()
}

fn message(cr: &Value) -> String {
    condition(cr, "Ready")
        .and_then(|c| c["message"].as_str())
        .unwrap_or_default()
        .to_owned()
}

fn resource_version(object: &Value) -> String {
    object["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// A CertificateRequest as cert-manager's request manager makes it for revision 1 of
/// `certificate` (see the module docs); returns its generated name.
async fn request_of(api: &Api, certificate: &Value, next_key: &str) -> Result<String> {
    let spec = &certificate["spec"];
    let name = certificate["metadata"]["name"].as_str().unwrap_or_default();
    let cn = spec["commonName"].as_str().unwrap_or_default();
    let (csr, _key) = csr_p256(cn, &[cn])?;
    let mut annotations = certificate["metadata"]["annotations"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    annotations.insert("cert-manager.io/certificate-revision".into(), json!("1"));
    annotations.insert("cert-manager.io/private-key-secret-name".into(), json!(next_key));
    annotations.insert("cert-manager.io/certificate-name".into(), json!(name));
    let body = json!({
        "apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest",
        "metadata": {
            "generateName": format!("{name}-"),
            "namespace": NS,
            "annotations": annotations,
            "labels": certificate["metadata"]["labels"],
            "ownerReferences": [{
                "apiVersion": "cert-manager.io/v1", "kind": "Certificate", "name": name,
                "uid": certificate["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true,
            }],
        },
        "spec": {
            "duration": spec["duration"],
            "issuerRef": spec["issuerRef"],
            "request": base64::engine::general_purpose::STANDARD.encode(csr),
            "isCA": false,
            "usages": spec["usages"],
        },
    });
    let created = api
        .create(
            &format!("{REQUESTS}?fieldManager=cert-manager-certificates-request-manager"),
            &body,
        )
        .await?;
    Ok(created["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

/// cert-manager's approver's (or a policy's, for `Denied`) condition on request `name`.
async fn decide(api: &Api, name: &str, condition: &str) -> Result<()> {
    let (reason, message) = match condition {
        "Approved" => (
            "cert-manager.io",
            "Certificate request has been approved by cert-manager.io",
        ),
        _ => ("policy.cert-manager.io", "No matching policy found"),
    };
    api.patch(
        &format!("{REQUESTS}/{name}/status"),
        &json!({"status": {"conditions": [{"type": condition, "status": "True", "reason": reason,
                                           "message": message,
                                           "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}),
    )
    .await?;
    Ok(())
}

/// A Certificate `name` in [`NS`] for `<name>.example.com` from certkeeper.io `kind` `issuer`,
/// created; returns it as stored (with its uid).
async fn certificate(api: &Api, name: &str, kind: &str, issuer: &str) -> Result<Value> {
    api.create(
        CERTIFICATES,
        &json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
                "metadata": {"name": name, "namespace": NS, "labels": {"app": name},
                             "annotations": {"team": "payments"}},
                "spec": {"secretName": format!("{name}-tls"), "commonName": format!("{name}.example.com"),
                         "duration": "1h", "usages": ["digital signature", "server auth"],
                         "issuerRef": {"name": issuer, "kind": kind, "group": "certkeeper.io"}}}),
    )
    .await
}

async fn wait_reason(api: &Api, name: &str, wanted: &str) -> Result<Value> {
    api.wait_until(&format!("{name} {wanted}"), &format!("{REQUESTS}/{name}"), |cr| {
        reason(cr) == wanted
    })
    .await
}

/// `name` stays Pending (never Failed) for `hold`, then is signed once `restore` ran.
async fn pending_then_signed(api: &Api, name: &str, hold: Duration) -> Result<String> {
    let pending = wait_reason(api, name, "Pending").await?;
    let said = message(&pending);
    let until = Instant::now() + hold;
    while Instant::now() < until {
        let now = api.get(&format!("{REQUESTS}/{name}")).await?.unwrap();
        ensure!(
            reason(&now) == "Pending",
            "{name} left Pending while Vault refused: {}",
            now["status"]
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(said)
}

fn issued_leaf(cr: &Value) -> Vec<String> {
    let pem = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(cr["status"]["certificate"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    leaf(&pem).1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beside_cert_manager_its_requests_for_vault_issuers_are_signed_and_never_failed_by_a_blip()
-> Result<()> {
    if !installed() {
        return Ok(());
    }
    let (kube, bao) = tokio::join!(KubeApiServer::start(), DevServer::start());
    let (kube, bao) = (kube?, bao?);
    let admin = bao.admin();
    let pki = admin.setup_pki(PkiOptions::default()).await?;
    install_crds(&kube).await?;
    kube.create_namespace(NS).await?;
    kube.create_namespace(CLUSTER_NS).await?;
    let api = Api::new(&kube)?;
    let token = admin.create_token(&[&pki.policy], "1h", true, 0).await?;
    api.create(SECRETS, &secret_body("vault-token", "token", &token))
        .await?;
    let mut cluster_secret = secret_body("vault-token", "token", &token);
    cluster_secret["metadata"]["namespace"] = json!(CLUSTER_NS);
    api.create(
        &format!("/api/v1/namespaces/{CLUSTER_NS}/secrets"),
        &cluster_secret,
    )
    .await?;
    let spec = vault_spec(&bao.addr(), &pki.sign_path);
    api.create(
        VAULT_ISSUERS,
        &json!({"apiVersion": "certkeeper.io/v1", "kind": "VaultIssuer",
                "metadata": {"name": "vault", "namespace": NS}, "spec": spec}),
    )
    .await?;
    api.create(
        VAULT_CLUSTER_ISSUERS,
        &json!({"apiVersion": "certkeeper.io/v1", "kind": "VaultClusterIssuer",
                "metadata": {"name": "vault"}, "spec": spec}),
    )
    .await?;
    // cert-manager's own objects, which the external issuer must never touch: a cert-manager
    // Vault Issuer and the Certificates whose requests it signs.
    api.create(
        ISSUERS,
        &json!({"apiVersion": "cert-manager.io/v1", "kind": "Issuer",
                "metadata": {"name": "vault", "namespace": NS}, "spec": {"vault": spec}}),
    )
    .await?;
    let web = certificate(&api, "web", "VaultIssuer", "vault").await?;
    let shop = certificate(&api, "shop", "VaultClusterIssuer", "vault").await?;
    let untouched = [
        format!("{ISSUERS}/vault"),
        format!("{CERTIFICATES}/web"),
        format!("{CERTIFICATES}/shop"),
    ];
    let mut versions = Vec::new();
    for path in &untouched {
        versions.push(resource_version(&api.get(path).await?.unwrap()));
    }

    let mut config = config_for(&kube, kube.admin_token());
    config.mode = Mode::ExternalIssuer;
    config.cluster_resource_namespace = CLUSTER_NS.into();
    let (stop_tx, controller) = spawn_controller(config);
    for path in [
        format!("{VAULT_ISSUERS}/vault"),
        format!("{VAULT_CLUSTER_ISSUERS}/vault"),
    ] {
        let issuer = api.wait_until(&format!("{path} Ready"), &path, ready).await?;
        assert_eq!(condition(&issuer, "Ready").unwrap()["reason"], "VaultVerified");
    }

    // Nothing before the approval; signed after it, for both kinds.
    let started = Instant::now();
    let web_cr = request_of(&api, &web, "web-tls-next").await?;
    let shop_cr = request_of(&api, &shop, "shop-tls-next").await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    for name in [&web_cr, &shop_cr] {
        let cr = api.get(&format!("{REQUESTS}/{name}")).await?.unwrap();
        assert!(
            condition(&cr, "Ready").is_none(),
            "{name} answered before any approval: {}",
            cr["status"]
        );
    }
    for name in [&web_cr, &shop_cr] {
        decide(&api, name, "Approved").await?;
    }
    for (name, host) in [(&web_cr, "web.example.com"), (&shop_cr, "shop.example.com")] {
        let signed = api
            .wait_until(&format!("{name} signed"), &format!("{REQUESTS}/{name}"), ready)
            .await?;
        assert_eq!(reason(&signed), "Issued");
        assert_eq!(issued_leaf(&signed), [host]);
        assert!(signed["status"]["ca"].is_string(), "{}", signed["status"]);
        assert!(signed["status"]["failureTime"].is_null());
    }
    eprintln!("created, approved and signed in {:?}", started.elapsed());

    // Denied: the end of it.
    let denied = request_of(&api, &web, "web-tls-next").await?;
    decide(&api, &denied, "Denied").await?;
    let answered = wait_reason(&api, &denied, "Denied").await?;
    assert!(answered["status"]["failureTime"].is_string());
    assert!(answered["status"]["certificate"].is_null());

    // An issuer that does not exist yet: said so, signed once it is created.
    let later = certificate(&api, "later", "VaultIssuer", "later").await?;
    let later_cr = request_of(&api, &later, "later-tls-next").await?;
    decide(&api, &later_cr, "Approved").await?;
    let waiting = wait_reason(&api, &later_cr, "Pending").await?;
    assert_eq!(
        message(&waiting),
        "VaultIssuer apps/later not found. Waiting for it to be created."
    );
    api.create(
        VAULT_ISSUERS,
        &json!({"apiVersion": "certkeeper.io/v1", "kind": "VaultIssuer",
                "metadata": {"name": "later", "namespace": NS}, "spec": spec}),
    )
    .await?;
    api.wait_until(
        "later signed once its issuer exists",
        &format!("{REQUESTS}/{later_cr}"),
        ready,
    )
    .await?;

    // Vault's 403: the token's policy gone (Vault's answer during a leader election too).
    let policy = admin.read(&format!("sys/policies/acl/{}", pki.policy)).await?["data"]["policy"]
        .as_str()
        .unwrap()
        .to_owned();
    admin
        .put_policy(&pki.policy, "path \"sys/nothing\" { capabilities = [\"read\"] }")
        .await?;
    let refused = request_of(&api, &web, "web-tls-next").await?;
    decide(&api, &refused, "Approved").await?;
    let said = pending_then_signed(&api, &refused, Duration::from_secs(4)).await?;
    eprintln!("403 -> {said}");
    assert!(said.contains("auth_rejected"), "{said}");
    admin.put_policy(&pki.policy, &policy).await?;
    let restored = Instant::now();
    api.wait_until(
        "signed after the 403 ended",
        &format!("{REQUESTS}/{refused}"),
        ready,
    )
    .await?;
    eprintln!("403 ended -> signed in {:?}", restored.elapsed());

    // Sealed.
    admin.seal().await?;
    let sealed = request_of(&api, &web, "web-tls-next").await?;
    decide(&api, &sealed, "Approved").await?;
    let said = pending_then_signed(&api, &sealed, Duration::from_secs(3)).await?;
    eprintln!("sealed -> {said}");
    bao.unseal().await?;
    let unsealed = Instant::now();
    api.wait_until("signed after the unseal", &format!("{REQUESTS}/{sealed}"), ready)
        .await?;
    eprintln!("unsealed -> signed in {:?}", unsealed.elapsed());

    // A 429 from a rate-limit quota on the PKI mount (2 per 10 s): its client blocked for 20 s
    // after a burst (long enough for the request's first attempt to meet it on a busy machine).
    admin.enable_rate_limit_headers(true).await?;
    admin
        .rate_limit_quota("external", &format!("{}/", pki.int_mount), 2.0, "10s", "20s")
        .await?;
    let (csr, _key) = csr_p256("spent.example.com", &["spent.example.com"])?;
    let mut blocked = false;
    for _ in 0..10 {
        let (code, _, _) = admin
            .raw(
                reqwest::Method::POST,
                &pki.sign_path,
                Some(&json!({"csr": csr, "common_name": "spent.example.com"})),
            )
            .await?;
        if code == 429 {
            blocked = true;
            break;
        }
    }
    ensure!(blocked, "the quota never limited");
    let limited = request_of(&api, &web, "web-tls-next").await?;
    decide(&api, &limited, "Approved").await?;
    let said = wait_for("the 429 shown", BOUND, || async {
        let cr = api.get(&format!("{REQUESTS}/{limited}")).await?.unwrap();
        ensure!(reason(&cr) != "Failed", "failed on a 429: {}", cr["status"]);
        Ok((ready(&cr) || message(&cr).contains("429")).then(|| message(&cr)))
    })
    .await?;
    eprintln!("429 -> {said}");
    assert!(said.contains("429"), "{said}");
    api.wait_until(
        "signed after the quota's interval",
        &format!("{REQUESTS}/{limited}"),
        ready,
    )
    .await?;
    admin.delete("sys/quotas/rate-limit/external").await?;

    // cert-manager's objects untouched, no target Secret written.
    for (path, version) in untouched.iter().zip(&versions) {
        let now = api.get(path).await?.unwrap();
        assert_eq!(&resource_version(&now), version, "{path} was written");
        assert!(
            now.get("status").is_none_or(|s| s.get("conditions").is_none()),
            "{path}: {}",
            now["status"]
        );
    }
    for secret in ["web-tls", "shop-tls"] {
        assert!(api.get(&format!("{SECRETS}/{secret}")).await?.is_none());
    }
    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(30), controller).await???;

    // The same manifests under the full mode: certkeeper issues the Certificate that names the
    // VaultIssuer itself, and the cert-manager Issuer becomes its own too.
    let mut config = config_for(&kube, kube.admin_token());
    config.cluster_resource_namespace = CLUSTER_NS.into();
    let (stop_tx, controller) = spawn_controller(config);
    let issued = api
        .wait_until(
            "web issued in the full mode",
            &format!("{CERTIFICATES}/web"),
            ready,
        )
        .await?;
    assert_eq!(issued["spec"]["issuerRef"]["kind"], "VaultIssuer");
    let secret = api.get(&format!("{SECRETS}/web-tls")).await?.unwrap();
    assert_eq!(
        secret["metadata"]["annotations"]["cert-manager.io/issuer-group"],
        "certkeeper.io"
    );
    assert_eq!(
        secret["metadata"]["annotations"]["cert-manager.io/issuer-kind"],
        "VaultIssuer"
    );
    api.wait_until(
        "shop issued from the VaultClusterIssuer",
        &format!("{CERTIFICATES}/shop"),
        ready,
    )
    .await?;
    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(30), controller).await???;
    Ok(())
}
