//! Each Vault auth method an issuer can use in the cluster, against a genuine kube-apiserver and
//! OpenBao: AppRole (secret id from a Secret), Kubernetes with `serviceAccountRef` (a TokenRequest
//! per login with cert-manager's audiences; OpenBao reviews it with the same apiserver's
//! TokenReview) on a ClusterIssuer, whose references resolve in the cluster resource namespace
//! (`cert-manager`), and Kubernetes with `secretRef`. Every Certificate becomes Ready and every
//! issuer Ready with reason VaultVerified; the AppRole one also gets PKCS#12 keystores.
//! Skipped (with a printed reason) only when the kube binaries are not installed.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Instant;

use anyhow::Result;
use certkeeper_testkit::KubernetesAuth;
use common::{
    Api, CERTIFICATES, NS, certificate_for, condition, create_secret, create_vault_issuer, installed, ready,
    start_controller, start_kube_and_bao,
};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approle_and_kubernetes_auth_issue() -> Result<()> {
    if !installed() {
        return Ok(());
    }
    let (kube, bao, pki) = start_kube_and_bao().await?;
    let admin = bao.admin();
    let api = Api::new(&kube)?;

    // AppRole: role id in the Issuer, secret id in a Secret.
    let (role_id, secret_id) = admin
        .approle_role("approle", "certkeeper", &[&pki.policy], 0, "0")
        .await?;
    create_secret(&api, "vault-approle", "secretId", &secret_id).await?;
    create_vault_issuer(
        &api,
        "vault-approle",
        &bao.addr(),
        &pki.sign_path,
        json!({"appRole": {"path": "approle", "roleId": role_id,
                           "secretRef": {"name": "vault-approle", "key": "secretId"}}}),
    )
    .await?;

    // Kubernetes auth, reviewed by this apiserver; the role requires the ClusterIssuer's audience.
    kube.create_service_account("cert-manager", "vault-issuer")
        .await?;
    kube.create_service_account(NS, "vault-issuer").await?;
    admin
        .kubernetes_auth(KubernetesAuth {
            mount: "kubernetes",
            host: &kube.url(),
            ca_pem: kube.ca_pem(),
            reviewer_jwt: kube.admin_token(),
            role: "certkeeper",
            sa_names: &["vault-issuer"],
            sa_namespaces: &["cert-manager", NS],
            policies: &[&pki.policy],
            audience: None,
        })
        .await?;
    admin
        .write(
            "auth/kubernetes/role/certkeeper-sa",
            json!({"bound_service_account_names": ["vault-issuer"],
                   "bound_service_account_namespaces": ["cert-manager"],
                   "audience": "vault://vault-kubernetes", "token_policies": [pki.policy]}),
        )
        .await?;
    api.create(
        "/apis/cert-manager.io/v1/clusterissuers",
        &json!({"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer",
                "metadata": {"name": "vault-kubernetes"},
                "spec": {"vault": {"server": bao.addr(), "path": pki.sign_path,
                                   "auth": {"kubernetes": {"role": "certkeeper-sa",
                                            "mountPath": "/v1/auth/kubernetes",
                                            "serviceAccountRef": {"name": "vault-issuer"}}}}}}),
    )
    .await?;
    // secretRef: a long-lived ServiceAccount token stored in a Secret.
    let jwt = kube.token_request(NS, "vault-issuer", &[], 3600).await?;
    create_secret(&api, "vault-sa-token", "token", &jwt).await?;
    create_vault_issuer(
        &api,
        "vault-k8s-secret",
        &bao.addr(),
        &pki.sign_path,
        json!({"kubernetes": {"role": "certkeeper",
                              "secretRef": {"name": "vault-sa-token", "key": "token"}}}),
    )
    .await?;

    let (stop_tx, controller) = start_controller(&kube, None);
    let created = Instant::now();
    let certificates = [
        ("approle", "vault-approle", "Issuer"),
        ("k8s-sa", "vault-kubernetes", "ClusterIssuer"),
        ("k8s-secret", "vault-k8s-secret", "Issuer"),
    ];
    // The AppRole one also asks for PKCS#12 keystores, password from a Secret.
    create_secret(&api, "p12-password", "password", "changeit").await?;
    for (name, issuer, kind) in certificates {
        let mut body = certificate_for(name, issuer, kind);
        if name == "approle" {
            body["spec"]["keystores"] = json!({"pkcs12": {"create": true,
                "passwordSecretRef": {"name": "p12-password", "key": "password"}}});
        }
        api.create(CERTIFICATES, &body).await?;
    }
    for (name, _, _) in certificates {
        let path = format!("/apis/cert-manager.io/v1/namespaces/apps/certificates/{name}");
        let cert = api
            .wait_until(&format!("{name} Ready"), &path, |c| {
                ready(c) || !c["status"]["certkeeper"].is_null()
            })
            .await?;
        assert!(ready(&cert), "{name}: {}", cert["status"]);
        eprintln!("{name}: Ready {:?} after creation", created.elapsed());
        let secret = api
            .get(&format!("/api/v1/namespaces/apps/secrets/{name}-tls"))
            .await?;
        let secret = secret.unwrap();
        let has = |k: &str| secret["data"][k].as_str().is_some_and(|v| !v.is_empty());
        assert!(has("tls.crt") && has("tls.key") && has("ca.crt"), "{name}");
        assert_eq!(
            has("keystore.p12") && has("truststore.p12"),
            name == "approle",
            "{name}"
        );
    }
    for path in [
        "/apis/cert-manager.io/v1/namespaces/apps/issuers/vault-approle",
        "/apis/cert-manager.io/v1/clusterissuers/vault-kubernetes",
        "/apis/cert-manager.io/v1/namespaces/apps/issuers/vault-k8s-secret",
    ] {
        let issuer = api.wait_until(path, path, ready).await?;
        assert_eq!(condition(&issuer, "Ready").unwrap()["reason"], "VaultVerified");
    }
    let _ = stop_tx.send(());
    tokio::time::timeout(std::time::Duration::from_secs(30), controller).await???;
    Ok(())
}
