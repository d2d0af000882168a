//! An Issuer author tries to make the controller reach outside their namespace, against a
//! genuine kube-apiserver (RBAC on, an audit log of every request) and OpenBao, with the
//! controller running on the shipped RBAC only (`deploy/controller/`):
//! - `tokenSecretRef.name: ../../kube-system/secrets/victim` (the victim holds a working Vault
//!   token) and `serviceAccountRef.name: ../../kube-system/serviceaccounts/admin` leave their
//!   Issuers not Ready, naming the field, and the audit log shows no request for either object;
//! - a ServiceAccount in the Issuer's own namespace works only once its owner grants it with the
//!   Role of docs/issuers.md; without it the API server refuses the TokenRequest (the default
//!   RBAC has no `serviceaccounts/token`);
//! - an audience equal to the API server's own address is refused before any token is minted;
//! - the metrics listener does not serve `/api/v1/status`.
//!
//! Skipped (with a printed reason) only when the kube binaries are not installed.

#![allow(clippy::unwrap_used)]

mod common;

use anyhow::{Context, Result};
use certkeeper_testkit::{DevServer, KubeApiServer, KubernetesAuth, PkiOptions, free_port};
use common::{
    Api, CERTIFICATES, ISSUERS, NS, apply_crds, apply_file, apply_object, condition, config_for,
    create_vault_issuer, installed, ready, spawn_controller, wait_for,
};
use serde_json::{Value, json};

const CONTROLLER_USER: &str = "system:serviceaccount:cert-manager:certkeeper";

/// The RBAC block of docs/issuers.md (the Role a ServiceAccount's owner applies), moved to
/// namespace `ns` and service account `sa`.
fn documented_token_role(ns: &str, sa: &str) -> Result<Vec<Value>> {
    let doc = include_str!("../../../docs/issuers.md");
    let start = doc
        .find("```yaml # RBAC")
        .context("RBAC block in docs/issuers.md")?;
    let body = &doc[start..];
    let body = &body[body.find('\n').context("block start")? + 1..];
    let body = &body[..body.find("```").context("block end")?];
    let mut objects: Vec<Value> = serde_yaml_ng::Deserializer::from_str(body)
        .map(|d| Ok(serde::Deserialize::deserialize(d)?))
        .collect::<Result<_>>()?;
    for object in &mut objects {
        object["metadata"]["namespace"] = json!(ns);
        if object["kind"] == "Role" {
            object["rules"][0]["resourceNames"] = json!([sa]);
        }
    }
    Ok(objects)
}

/// The audit log's events (one JSON object per line).
fn audit_events(path: &std::path::Path) -> Result<Vec<Value>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

fn ready_message(issuer: &Value) -> String {
    condition(issuer, "Ready")
        .and_then(|c| c["message"].as_str())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_issuers_reach_nothing_outside_their_namespace() -> Result<()> {
    if !installed() {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let policy = dir.path().join("audit-policy.yaml");
    std::fs::write(
        &policy,
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n- level: Metadata\n",
    )?;
    let audit_log = dir.path().join("audit.log");
    let audit_args = [
        format!("--audit-policy-file={}", policy.display()),
        format!("--audit-log-path={}", audit_log.display()),
        "--audit-log-mode=blocking".to_owned(),
    ];
    let audit_args: Vec<&str> = audit_args.iter().map(String::as_str).collect();
    let (kube, bao) = tokio::join!(KubeApiServer::start_with(&audit_args), DevServer::start());
    let (kube, bao) = (kube?, bao?);
    let pki = bao.admin().setup_pki(PkiOptions::default()).await?;
    apply_crds(&kube).await?;
    kube.create_namespace(NS).await?;
    let api = Api::new(&kube)?;
    for file in ["namespace.yaml", "serviceaccount.yaml", "rbac.yaml"] {
        apply_file(&api, file).await?;
    }

    // What the attacker is after: a Secret holding a working Vault token, and an account.
    kube.create_service_account("kube-system", "admin").await?;
    api.create(
        "/api/v1/namespaces/kube-system/secrets",
        &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "victim", "namespace": "kube-system"},
                "stringData": {"token": bao.root_token()}}),
    )
    .await?;
    // Accounts of the Issuers' own namespace; only vault-issuer is granted (docs' Role).
    kube.create_service_account(NS, "vault-issuer").await?;
    kube.create_service_account(NS, "not-granted").await?;
    for object in documented_token_role(NS, "vault-issuer")? {
        apply_object(&api, &object).await?;
    }
    bao.admin()
        .kubernetes_auth(KubernetesAuth {
            mount: "kubernetes",
            host: &kube.url(),
            ca_pem: kube.ca_pem(),
            reviewer_jwt: kube.admin_token(),
            role: "certkeeper",
            sa_names: &["vault-issuer", "not-granted", "admin"],
            sa_namespaces: &[NS, "kube-system"],
            policies: &[&pki.policy],
            audience: Some("vault://apps/granted"),
        })
        .await?;

    let server = bao.addr();
    let path = &pki.sign_path;
    let sa = |name: &str| json!({"kubernetes": {"role": "certkeeper", "serviceAccountRef": {"name": name}}});
    create_vault_issuer(
        &api,
        "steal-secret",
        &server,
        path,
        json!({"tokenSecretRef": {"name": "../../kube-system/secrets/victim", "key": "token"}}),
    )
    .await?;
    create_vault_issuer(
        &api,
        "steal-sa",
        &server,
        path,
        sa("../../kube-system/serviceaccounts/admin"),
    )
    .await?;
    create_vault_issuer(&api, "granted", &server, path, sa("vault-issuer")).await?;
    create_vault_issuer(&api, "not-granted", &server, path, sa("not-granted")).await?;
    create_vault_issuer(
        &api,
        "api-audience",
        &server,
        path,
        json!({"kubernetes": {"role": "certkeeper",
                              "serviceAccountRef": {"name": "vault-issuer", "audiences": [kube.url()]}}}),
    )
    .await?;

    // A Certificate whose Secret would be outside its namespace, next to a good one: the bad one
    // says why in its status and stops nothing.
    for (name, secret_name) in [("evil", "../../kube-system/secrets/victim"), ("good", "good-tls")] {
        api.create(
            CERTIFICATES,
            &json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
                    "metadata": {"name": name, "namespace": NS},
                    "spec": {"secretName": secret_name, "commonName": format!("{name}.example.com"),
                             "issuerRef": {"name": "granted"}}}),
        )
        .await?;
    }

    let sa_token = kube
        .token_request("cert-manager", "certkeeper", &[], 3600)
        .await?;
    let mut config = config_for(&kube, &sa_token);
    let (metrics_port, status_port) = (free_port(), free_port());
    config.listen = Some(format!("127.0.0.1:{metrics_port}").parse()?);
    config.status_listen = Some(format!("127.0.0.1:{status_port}").parse()?);
    let (stop_tx, controller) = spawn_controller(config);

    let issuer = |name: &str| format!("{ISSUERS}/{name}");
    api.wait_until("granted Ready", &issuer("granted"), ready).await?;
    let mut messages = std::collections::BTreeMap::new();
    for name in ["steal-secret", "steal-sa", "not-granted", "api-audience"] {
        let object = api
            .wait_until(&format!("{name} not Ready"), &issuer(name), |i| {
                condition(i, "Ready").is_some_and(|c| c["status"] == "False")
            })
            .await?;
        messages.insert(name, ready_message(&object));
    }
    eprintln!("{messages:#?}");
    assert!(
        messages["steal-secret"].contains("spec.vault.auth.tokenSecretRef.name: invalid name"),
        "{messages:?}"
    );
    assert!(
        messages["steal-sa"].contains("spec.vault.auth.kubernetes.serviceAccountRef.name: invalid name"),
        "{messages:?}"
    );
    assert!(messages["not-granted"].contains("403"), "{messages:?}");
    assert!(
        messages["api-audience"].contains("refused: audience"),
        "{messages:?}"
    );

    api.wait_until("good Ready", &format!("{CERTIFICATES}/good"), ready)
        .await?;
    let evil = api
        .wait_until("evil's status", &format!("{CERTIFICATES}/evil"), |c| {
            condition(c, "Ready").is_some()
        })
        .await?;
    let evil_ready = condition(&evil, "Ready").unwrap();
    assert_eq!(evil_ready["status"], "False");
    assert_eq!(evil_ready["reason"], "InvalidSpec");
    assert!(
        evil["status"]["certkeeper"]["failureMessage"]
            .as_str()
            .is_some_and(|m| m.contains("spec.secretName: invalid name")),
        "{evil}"
    );

    // The JSON status is not on the cluster-facing listener; it is on its own.
    let http = reqwest::Client::new();
    let on_metrics = http
        .get(format!("http://127.0.0.1:{metrics_port}/api/v1/status"))
        .send()
        .await?;
    assert_eq!(on_metrics.status(), 404);
    let on_status = http
        .get(format!("http://127.0.0.1:{status_port}/api/v1/status"))
        .send()
        .await?;
    assert_eq!(on_status.status(), 200);

    let _ = stop_tx.send(());
    tokio::time::timeout(std::time::Duration::from_secs(30), controller).await???;

    // What the controller asked the API server for, from the server's own record.
    let events = wait_for("the audit log", common::BOUND, || async {
        let events = audit_events(&audit_log)?;
        Ok((!events.is_empty()).then_some(events))
    })
    .await?;
    let by_controller: Vec<&Value> = events
        .iter()
        .filter(|e| e["user"]["username"] == CONTROLLER_USER)
        .collect();
    assert!(!by_controller.is_empty(), "the controller's requests are audited");
    for event in &by_controller {
        let uri = event["requestURI"].as_str().unwrap_or_default();
        assert!(
            !uri.contains("kube-system") && !uri.contains(".."),
            "the controller asked for {uri}"
        );
    }
    let token_requests: Vec<(String, i64)> = by_controller
        .iter()
        .filter(|e| e["objectRef"]["subresource"] == "token")
        .map(|e| {
            (
                e["objectRef"]["name"].as_str().unwrap_or_default().to_owned(),
                e["responseStatus"]["code"].as_i64().unwrap_or_default(),
            )
        })
        .collect();
    assert!(
        token_requests
            .iter()
            .any(|(n, c)| n == "vault-issuer" && *c == 201),
        "{token_requests:?}"
    );
    assert!(
        token_requests
            .iter()
            .filter(|(n, _)| n == "not-granted")
            .all(|(_, c)| *c == 403),
        "{token_requests:?}"
    );
    Ok(())
}
