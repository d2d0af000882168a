//! A genuine kube-apiserver + etcd: service accounts, TokenRequest, and OpenBao's kubernetes auth
//! reviewing those tokens for real. Skipped (with a printed reason) only when the binaries from
//! scripts/kube/install-kube-apiserver.sh are not installed.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns unwrap too

use std::time::Instant;

use base64::Engine;
use certkeeper_testkit::{DevServer, KubeApiServer, KubernetesAuth, kube_bin_dir, pid_exists};
use reqwest::Method;
use serde_json::{Value, json};

fn installed() -> bool {
    match kube_bin_dir() {
        Ok(_) => true,
        Err(e) => {
            eprintln!("SKIPPED: {e:#}");
            false
        }
    }
}

fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_request_and_openbao_kubernetes_login() {
    if !installed() {
        return;
    }
    let t0 = Instant::now();
    let kube = KubeApiServer::start().await.unwrap();
    eprintln!("kube-apiserver ready in {:?}", t0.elapsed());
    assert!(kube.url().starts_with("https://127.0.0.1:"));
    assert!(kube.ca_pem().contains("BEGIN CERTIFICATE"));
    let kubeconfig = std::fs::read_to_string(kube.kubeconfig_path()).unwrap();
    assert!(kubeconfig.contains(&kube.url()) && kubeconfig.contains(kube.admin_token()));

    kube.create_service_account("certs", "cert-manager")
        .await
        .unwrap();
    kube.create_service_account("certs", "cert-manager")
        .await
        .unwrap(); // idempotent
    let jwt = kube
        .token_request("certs", "cert-manager", &["openbao"], 600)
        .await
        .unwrap();
    assert_eq!(jwt.split('.').count(), 3);
    let c = claims(&jwt);
    assert_eq!(c["sub"], "system:serviceaccount:certs:cert-manager");
    assert_eq!(c["aud"], json!(["openbao"]));
    let (status, _) = kube
        .request(Method::GET, "/api/v1/namespaces/certs/serviceaccounts/nope", None)
        .await
        .unwrap();
    assert_eq!(status, 404);

    // OpenBao reviews the token with this kube-apiserver
    kube.create_service_account("kube-system", "bao-reviewer")
        .await
        .unwrap();
    kube.grant_token_review("kube-system", "bao-reviewer")
        .await
        .unwrap();
    let reviewer = kube
        .token_request("kube-system", "bao-reviewer", &[], 3600)
        .await
        .unwrap();
    let dev = DevServer::start().await.unwrap();
    let admin = dev.admin();
    admin
        .put_policy("p-k8s", "path \"sys/health\" { capabilities = [\"read\"] }")
        .await
        .unwrap();
    admin
        .kubernetes_auth(KubernetesAuth {
            mount: "kubernetes",
            host: &kube.url(),
            ca_pem: kube.ca_pem(),
            reviewer_jwt: &reviewer,
            role: "cm",
            sa_names: &["cert-manager"],
            sa_namespaces: &["certs"],
            policies: &["p-k8s"],
            audience: Some("openbao"),
        })
        .await
        .unwrap();
    let anon = admin.with_token("");
    let v = anon
        .write("auth/kubernetes/login", json!({"role": "cm", "jwt": jwt}))
        .await
        .unwrap();
    assert!(
        v["auth"]["policies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "p-k8s"),
        "{v}"
    );
    // a token for a service account the role does not bind: 403 permission denied
    kube.create_service_account("certs", "intruder").await.unwrap();
    let other = kube
        .token_request("certs", "intruder", &["openbao"], 600)
        .await
        .unwrap();
    let (code, _, _) = anon
        .raw(
            Method::POST,
            "auth/kubernetes/login",
            Some(&json!({"role": "cm", "jwt": other})),
        )
        .await
        .unwrap();
    assert_eq!(
        code, 403,
        "a service account the role does not bind must be refused"
    );

    let (api_pid, etcd_pid) = kube.pids();
    drop(kube);
    assert!(
        !pid_exists(api_pid) && !pid_exists(etcd_pid),
        "kube processes survived the drop"
    );
}
