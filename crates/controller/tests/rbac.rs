//! The least-privilege RBAC of `deploy/controller/` is enough: the controller runs with a token
//! of the `certkeeper` ServiceAccount bound by `deploy/controller/rbac.yaml` (nothing else) and
//! leader election on, against a genuine kube-apiserver with RBAC authorization and OpenBao. It
//! takes the Lease, issues (Secret, status, CertificateRequest, Event), writes the Issuer's
//! status, re-issues on a spec change, prunes the old CertificateRequest, and signs a
//! CertificateRequest made by hand. With `--namespace`, the same rules as a Role in that namespace
//! are enough.
//! Skipped (with a printed reason) only when the kube binaries are not installed.

#![allow(clippy::unwrap_used)]

mod common;

use anyhow::Result;
use certkeeper_controller::leader::LeaseConfig;
use certkeeper_testkit::KubeApiServer;
use common::{
    Api, BOUND, CERTIFICATES, NS, apply_file, config_for, create_request, deploy_objects, installed, ready,
    request_path, spawn_controller, start_with_vault_issuer, wait_for, wait_for_event,
};
use serde_json::{Value, json};

const CERT: &str = "/apis/cert-manager.io/v1/namespaces/apps/certificates/web";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_with_the_shipped_rbac_only() -> Result<()> {
    if !installed() {
        return Ok(());
    }
    let (kube, _bao, _token) = start_with_vault_issuer().await?;
    let api = Api::new(&kube)?;
    for file in ["namespace.yaml", "serviceaccount.yaml", "rbac.yaml"] {
        apply_file(&api, file).await?;
    }
    api.create(
        CERTIFICATES,
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

    api.wait_until("Certificate Ready", CERT, ready).await?;
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
    api.wait_until(
        "Issuer status",
        "/apis/cert-manager.io/v1/namespaces/apps/issuers/vault",
        ready,
    )
    .await?;
    wait_for_event(&api, "Issued").await?;
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
    api.wait_until("revision 2", CERT, |c| ready(c) && c["status"]["revision"] == 2)
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
    create_request(&api, "by-hand").await?;
    api.wait_until("by-hand signed", &request_path("by-hand"), ready)
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

/// `--namespace apps`: the shipped ClusterRole's rules as a Role in `apps` (ClusterIssuers
/// dropped) plus a Lease Role there are enough; the controller lists and watches nothing
/// cluster-wide (it would be refused and never sync), issues in `apps`, signs a hand-made
/// request there, and leaves another namespace's Certificate alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_namespace_with_a_role_only() -> Result<()> {
    if !installed() {
        return Ok(());
    }
    let (kube, _bao, token) = start_with_vault_issuer().await?;
    let api = Api::new(&kube)?;
    grant_namespaced(&api, &kube, &namespaced_rules(&[])?).await?;
    // Another namespace, with its own Issuer and a Certificate: not this controller's.
    kube.create_namespace("other").await?;
    let other_issuer = api
        .get("/apis/cert-manager.io/v1/namespaces/apps/issuers/vault")
        .await?
        .unwrap();
    api.create(
        "/api/v1/namespaces/other/secrets",
        &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "vault-token", "namespace": "other"},
                "stringData": {"token": token}}),
    )
    .await?;
    api.create(
        "/apis/cert-manager.io/v1/namespaces/other/issuers",
        &json!({"apiVersion": "cert-manager.io/v1", "kind": "Issuer",
                "metadata": {"name": "vault", "namespace": "other"}, "spec": other_issuer["spec"]}),
    )
    .await?;
    for ns in [NS, "other"] {
        api.create(
            &format!("/apis/cert-manager.io/v1/namespaces/{ns}/certificates"),
            &json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
                    "metadata": {"name": "web", "namespace": ns},
                    "spec": {"secretName": "web-tls", "commonName": "web.example.com", "duration": "1h",
                             "issuerRef": {"name": "vault"}}}),
        )
        .await?;
    }

    let sa_token = kube.token_request(NS, "certkeeper", &[], 3600).await?;
    let mut config = config_for(&kube, &sa_token);
    config.namespace = Some(NS.to_owned());
    config.leader_election = Some(LeaseConfig::new(NS, "namespaced-test"));
    let (stop_tx, controller) = spawn_controller(config);

    api.wait_until("Certificate Ready", CERT, ready).await?;
    assert!(
        api.get("/api/v1/namespaces/apps/secrets/web-tls")
            .await?
            .is_some()
    );
    create_request(&api, "by-hand").await?;
    api.wait_until("by-hand signed", &request_path("by-hand"), ready)
        .await?;
    let other = api
        .get("/apis/cert-manager.io/v1/namespaces/other/certificates/web")
        .await?
        .unwrap();
    assert!(other["status"].is_null(), "not touched: {other}");
    assert!(
        api.get("/api/v1/namespaces/other/secrets/web-tls")
            .await?
            .is_none()
    );
    let _ = stop_tx.send(());
    tokio::time::timeout(std::time::Duration::from_secs(30), controller).await???;
    Ok(())
}

/// The shipped ClusterRole's rules for one namespace: without `clusterissuers` (unused with
/// `--namespace`) and without the resources in `without`, plus the Lease verbs.
fn namespaced_rules(without: &[&str]) -> Result<Vec<Value>> {
    let mut rules = Vec::new();
    for object in deploy_objects("rbac.yaml")? {
        if object["kind"] != "ClusterRole" {
            continue;
        }
        for mut rule in object["rules"].as_array().cloned().unwrap_or_default() {
            let resources: Vec<Value> = rule["resources"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|r| {
                    let r = r.as_str().unwrap_or_default();
                    !r.starts_with("clusterissuers") && !without.contains(&r)
                })
                .collect();
            if !resources.is_empty() {
                rule["resources"] = Value::Array(resources);
                rules.push(rule);
            }
        }
    }
    rules.push(
        json!({"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                      "verbs": ["create", "get", "update"]}),
    );
    Ok(rules)
}

/// ServiceAccount `certkeeper` in [`NS`] bound to a Role `certkeeper` there with `rules`.
async fn grant_namespaced(api: &Api, kube: &KubeApiServer, rules: &[Value]) -> Result<()> {
    kube.create_service_account(NS, "certkeeper").await?;
    let rbac = "/apis/rbac.authorization.k8s.io/v1/namespaces/apps";
    api.create(
        &format!("{rbac}/roles"),
        &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                "metadata": {"name": "certkeeper", "namespace": NS}, "rules": rules}),
    )
    .await?;
    api.create(
        &format!("{rbac}/rolebindings"),
        &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": "certkeeper", "namespace": NS},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "certkeeper"},
                "subjects": [{"kind": "ServiceAccount", "name": "certkeeper", "namespace": NS}]}),
    )
    .await?;
    Ok(())
}

/// A hand-made CertificateRequest whose status cannot be written (the Role lacks
/// `certificaterequests/status`): Vault signs it once; the signed certificate is kept and
/// written when the permission is granted, without a second sign request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_request_whose_status_write_fails_is_not_signed_again() -> Result<()> {
    if !installed() {
        return Ok(());
    }
    let (kube, _bao, _token) = start_with_vault_issuer().await?;
    let api = Api::new(&kube)?;
    grant_namespaced(&api, &kube, &namespaced_rules(&["certificaterequests/status"])?).await?;
    let sa_token = kube.token_request(NS, "certkeeper", &[], 3600).await?;
    let mut config = config_for(&kube, &sa_token);
    config.namespace = Some(NS.to_owned());
    let port = certkeeper_testkit::free_port();
    config.listen = Some(format!("127.0.0.1:{port}").parse()?);
    let (stop_tx, controller) = spawn_controller(config);
    let signs = || async move {
        let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
            .await?
            .text()
            .await?;
        Ok::<f64, anyhow::Error>(
            text.lines()
                .filter(|l| {
                    l.starts_with("certkeeper_vault_requests_total{") && l.contains("operation=\"sign\"")
                })
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum(),
        )
    };
    create_request(&api, "kept").await?;
    wait_for("the request signed", BOUND, || async {
        Ok((signs().await? >= 1.0).then_some(()))
    })
    .await?;
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    assert_eq!(
        signs().await?,
        1.0,
        "signed once while its status cannot be written"
    );
    let path = request_path("kept");
    assert!(!ready(&api.get(&path).await?.unwrap()));

    let mut role = api
        .get("/apis/rbac.authorization.k8s.io/v1/namespaces/apps/roles/certkeeper")
        .await?
        .unwrap();
    role["rules"] = json!(namespaced_rules(&[])?);
    let (code, body) = api
        .client
        .call(
            reqwest::Method::PUT,
            "/apis/rbac.authorization.k8s.io/v1/namespaces/apps/roles/certkeeper",
            "application/json",
            Some(&role),
        )
        .await?;
    assert_eq!(code, 200, "{body}");
    let cr = api
        .wait_until("the kept certificate written", &path, ready)
        .await?;
    assert!(cr["status"]["certificate"].is_string());
    assert_eq!(signs().await?, 1.0, "written, not signed again");
    let _ = stop_tx.send(());
    tokio::time::timeout(std::time::Duration::from_secs(30), controller).await???;
    Ok(())
}
