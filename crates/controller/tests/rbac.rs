//! The least-privilege RBAC of `deploy/controller/` is enough: the controller runs with a token
//! of the `certkeeper` ServiceAccount bound by `deploy/controller/rbac.yaml` (nothing else) and
//! leader election on, against a genuine kube-apiserver with RBAC authorization and OpenBao. It
//! takes the Lease, issues (Secret, status, CertificateRequest, Event), writes the Issuer's
//! status, re-issues on a spec change, prunes the old CertificateRequest, and signs a
//! CertificateRequest made by hand.
//! Skipped (with a printed reason) only when the kube binaries are not installed.

#![allow(clippy::unwrap_used)]

mod common;

use anyhow::{Result, bail};
use certkeeper_controller::leader::LeaseConfig;
use certkeeper_testkit::{DevServer, KubeApiServer, PkiOptions};
use common::{
    Api, BOUND, NS, apply_crds, config_for, installed, ready, secret_body, spawn_controller, wait_for,
};
use serde_json::{Value, json};

const CERT: &str = "/apis/cert-manager.io/v1/namespaces/apps/certificates/web";

/// Creates every object of a YAML file of `deploy/controller/`.
async fn apply_file(api: &Api<'_>, file: &str) -> Result<()> {
    let path = format!("{}/../../deploy/controller/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path)?;
    for document in serde_yaml_ng::Deserializer::from_str(&text) {
        let object: Value = serde::Deserialize::deserialize(document)?;
        let kind = object["kind"].as_str().unwrap_or_default();
        let ns = object["metadata"]["namespace"].as_str().unwrap_or_default();
        let collection = match kind {
            "Namespace" => "/api/v1/namespaces".to_owned(),
            "ServiceAccount" => format!("/api/v1/namespaces/{ns}/serviceaccounts"),
            "ClusterRole" => "/apis/rbac.authorization.k8s.io/v1/clusterroles".to_owned(),
            "ClusterRoleBinding" => "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings".to_owned(),
            "Role" => format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles"),
            "RoleBinding" => format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings"),
            other => bail!("{file}: unexpected kind {other}"),
        };
        api.create(&collection, &object).await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_with_the_shipped_rbac_only() -> Result<()> {
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
    for file in ["namespace.yaml", "serviceaccount.yaml", "rbac.yaml"] {
        apply_file(&api, file).await?;
    }
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
    api.create(
        "/apis/cert-manager.io/v1/namespaces/apps/certificates",
        &json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
                "metadata": {"name": "web", "namespace": NS},
                "spec": {"secretName": "web-tls", "commonName": "web.example.com", "duration": "1h",
                         "revisionHistoryLimit": 1, "issuerRef": {"name": "vault"}}}),
    )
    .await?;

    let sa_token = kube
        .token_request("cert-manager", "certkeeper", &[], 3600)
        .await?;
    let mut config = config_for(&kube, &sa_token);
    config.leader_election = Some(LeaseConfig::new("cert-manager", "rbac-test"));
    let (stop_tx, controller) = spawn_controller(config);

    wait_for("Certificate Ready", BOUND, || async {
        Ok(api.get(CERT).await?.filter(ready))
    })
    .await?;
    assert!(
        api.get("/api/v1/namespaces/apps/secrets/web-tls")
            .await?
            .is_some()
    );
    let lease = api
        .get("/apis/coordination.k8s.io/v1/namespaces/cert-manager/leases/certkeeper-controller")
        .await?
        .unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "rbac-test");
    wait_for("Issuer status", BOUND, || async {
        Ok(api
            .get("/apis/cert-manager.io/v1/namespaces/apps/issuers/vault")
            .await?
            .filter(ready))
    })
    .await?;
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
    assert!(
        api.get("/apis/cert-manager.io/v1/namespaces/apps/certificaterequests/web-1")
            .await?
            .is_some()
    );

    // A spec change: revision 2, and revision 1's CertificateRequest pruned (limit 1).
    api.patch(
        CERT,
        &json!({"spec": {"dnsNames": ["web.example.com", "www.example.com"]}}),
    )
    .await?;
    wait_for("revision 2", BOUND, || async {
        Ok(api
            .get(CERT)
            .await?
            .filter(|c| ready(c) && c["status"]["revision"] == 2))
    })
    .await?;
    wait_for("web-1 pruned", BOUND, || async {
        let gone = api
            .get("/apis/cert-manager.io/v1/namespaces/apps/certificaterequests/web-1")
            .await?
            .is_none();
        Ok(gone.then_some(()))
    })
    .await?;
    let cr = api
        .get("/apis/cert-manager.io/v1/namespaces/apps/certificaterequests/web-2")
        .await?
        .unwrap();
    assert!(ready(&cr), "status written: {cr}");
    // A CertificateRequest made by hand is approved and signed.
    let (csr, _key) = certkeeper_testkit::csr_p256("by-hand.example.com", &["by-hand.example.com"])?;
    api.create(
        "/apis/cert-manager.io/v1/namespaces/apps/certificaterequests",
        &json!({"apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest",
                "metadata": {"name": "by-hand", "namespace": NS},
                "spec": {"request": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, csr),
                         "issuerRef": {"name": "vault"}}}),
    )
    .await?;
    wait_for("by-hand signed", BOUND, || async {
        Ok(api
            .get("/apis/cert-manager.io/v1/namespaces/apps/certificaterequests/by-hand")
            .await?
            .filter(ready))
    })
    .await?;
    let _ = stop_tx.send(());
    tokio::time::timeout(std::time::Duration::from_secs(30), controller).await???;
    let lease = api
        .get("/apis/coordination.k8s.io/v1/namespaces/cert-manager/leases/certkeeper-controller")
        .await?
        .unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "", "released");
    Ok(())
}
