//! `certkeeper controller status` / `renew` / the controller itself reach the cluster the way
//! kubectl does, through a kubeconfig file alone: a client-certificate user, a token user and an
//! exec-plugin user (client.authentication.k8s.io/v1beta1, as `aws eks get-token` or
//! `gke-gcloud-auth-plugin` answer); `--kubeconfig`, `--context`, `KUBECONFIG` with several files
//! (merged: the first to set current-context wins) and `~/.kube/config`. Genuine kube-apiserver,
//! no Vault needed (status and renew only read and patch Certificates).
//! Skipped (with a printed reason) only when the kube binaries are not installed.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use base64::Engine;
use certkeeper_testkit::{KubeApiServer, TestTls, free_port, kube_bin_dir};
use reqwest::Method;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_certkeeper");
const CERT: &str = "/apis/cert-manager.io/v1/namespaces/apps/certificates/web";
const CERT_USER: &str = "kubeconfig-cert-user";

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

async fn call(kube: &KubeApiServer, method: Method, path: &str, body: Value) -> Result<Value> {
    kube.request_when_served(method, path, &body, Duration::from_secs(60))
        .await
}

async fn bind_cluster_admin(kube: &KubeApiServer, name: &str, subject: Value) -> Result<()> {
    call(
        kube,
        Method::POST,
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": name},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
               "subjects": [subject]}),
    )
    .await?;
    Ok(())
}

/// Runs `certkeeper controller ARGS` with only the environment given (no KUBECONFIG, HOME
/// pointing at `home`, no in-cluster variables).
fn cli(home: &Path, env: &[(&str, &str)], args: &[&str]) -> Result<Output> {
    let mut cmd = Command::new(BIN);
    cmd.arg("controller")
        .args(args)
        .env_clear()
        .env("HOME", home)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().context("running certkeeper")
}

fn rows(out: &Output) -> Result<Value> {
    serde_json::from_slice(&out.stdout).with_context(|| format!("status --json printed: {out:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_renew_and_the_controller_reach_the_cluster_through_a_kubeconfig() -> Result<()> {
    if let Err(e) = kube_bin_dir() {
        eprintln!("SKIPPED: {e:#}");
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let tls = TestTls::generate()?;
    let client_ca = dir.path().join("client-ca.pem");
    std::fs::write(&client_ca, &tls.ca_pem)?;
    let kube = KubeApiServer::start_with(&[&format!("--client-ca-file={}", client_ca.display())]).await?;

    // The cluster: the CRDs, a Certificate, and the three users' rights.
    for crd in certkeeper_crds::crds() {
        call(
            &kube,
            Method::POST,
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            crd.to_json(),
        )
        .await?;
    }
    kube.create_namespace("apps").await?;
    call(
        &kube,
        Method::POST,
        "/apis/cert-manager.io/v1/namespaces/apps/certificates",
        json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "metadata": {"name": "web"},
               "spec": {"secretName": "web-tls", "dnsNames": ["web.example.com"], "issuerRef": {"name": "vault"}}}),
    )
    .await?;
    // Ready, as a controller would have left it (status subresource: GET, then PUT).
    let (_, mut cert) = kube.request(Method::GET, CERT, None).await?;
    cert["status"] = json!({"revision": 1, "conditions": [{"type": "Ready", "status": "True", "reason": "Ready",
        "message": "Certificate is up to date and has not expired", "lastTransitionTime": "2026-01-01T00:00:00Z"}]});
    call(&kube, Method::PUT, &format!("{CERT}/status"), cert).await?;
    let (cert_pem, key_pem) = tls.sign_client_cert(CERT_USER)?;
    bind_cluster_admin(
        &kube,
        "cert-user",
        json!({"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": CERT_USER}),
    )
    .await?;
    call(
        &kube,
        Method::POST,
        "/api/v1/namespaces/apps/serviceaccounts",
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "cli"}}),
    )
    .await?;
    bind_cluster_admin(
        &kube,
        "exec-user",
        json!({"kind": "ServiceAccount", "name": "cli", "namespace": "apps"}),
    )
    .await?;
    let answer = call(
        &kube,
        Method::POST,
        "/api/v1/namespaces/apps/serviceaccounts/cli/token",
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
               "spec": {"audiences": ["https://kubernetes.default.svc"], "expirationSeconds": 3600}}),
    )
    .await?;
    let sa_token = answer["status"]["token"]
        .as_str()
        .context("TokenRequest answer")?
        .to_owned();

    // The exec plugin: prints an ExecCredential and leaves a mark that it ran.
    let plugin = dir.path().join("get-token");
    let ran = dir.path().join("plugin-ran");
    std::fs::write(
        &plugin,
        format!(
            "#!/bin/sh\ntouch '{}'\nprintf '%s' '{{\"apiVersion\":\"client.authentication.k8s.io/v1beta1\",\"kind\":\"ExecCredential\",\"status\":{{\"token\":\"{sa_token}\"}}}}'\n",
            ran.display()
        ),
    )?;
    std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755))?;

    // One kubeconfig with three users and their contexts; current-context is the token user.
    let kubeconfig = dir.path().join("config");
    std::fs::write(
        &kubeconfig,
        format!(
            r#"apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: token
  user:
    token: {token}
- name: cert
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
- name: exec
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: {plugin}
      interactiveMode: Never
contexts:
- name: token
  context: {{cluster: test, user: token}}
- name: cert
  context: {{cluster: test, user: cert}}
- name: exec
  context: {{cluster: test, user: exec, namespace: apps}}
current-context: token
"#,
            server = kube.url(),
            ca = b64(kube.ca_pem()),
            token = kube.admin_token(),
            cert = b64(&cert_pem),
            key = b64(&key_pem),
            plugin = plugin.display(),
        ),
    )?;
    let home = tempfile::tempdir()?;
    let config = kubeconfig.to_str().context("path")?;

    // --kubeconfig, each user by --context.
    for context in ["token", "cert", "exec"] {
        let out = cli(
            home.path(),
            &[],
            &["--kubeconfig", config, "--context", context, "status", "--json"],
        )?;
        assert!(out.status.success(), "context {context}: {out:?}");
        let rows = rows(&out)?;
        assert_eq!(rows[0]["name"], "apps/web", "context {context}: {rows}");
        assert_eq!(rows[0]["ready"], true, "context {context}: {rows}");
    }
    assert!(ran.exists(), "the exec plugin was run");

    // renew through the exec user: cmctl's request lands on the Certificate.
    let out = cli(
        home.path(),
        &[],
        &[
            "--kubeconfig",
            config,
            "--context",
            "exec",
            "renew",
            "apps/web",
            "--wait",
            "0",
        ],
    )?;
    assert!(out.status.success(), "{out:?}");
    let (_, cert) = kube.request(Method::GET, CERT, None).await?;
    let issuing = cert["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Issuing").cloned())
        .unwrap_or_default();
    assert_eq!(issuing["status"], "True", "{cert}");
    assert_eq!(issuing["reason"], "ManuallyTriggered", "{cert}");

    // KUBECONFIG with two files: the first to set current-context (cert) wins; the users and
    // clusters come from the second.
    let first = dir.path().join("first");
    std::fs::write(&first, "apiVersion: v1\nkind: Config\ncurrent-context: cert\n")?;
    let merged = format!("{}:{}", first.display(), kubeconfig.display());
    let out = cli(home.path(), &[("KUBECONFIG", &merged)], &["status", "--json"])?;
    assert!(out.status.success(), "KUBECONFIG={merged}: {out:?}");
    assert_eq!(rows(&out)?[0]["name"], "apps/web");

    // ~/.kube/config when nothing else is given.
    std::fs::create_dir_all(home.path().join(".kube"))?;
    std::fs::copy(&kubeconfig, home.path().join(".kube/config"))?;
    let out = cli(home.path(), &[], &["status", "--json"])?;
    assert!(out.status.success(), "~/.kube/config: {out:?}");
    assert_eq!(rows(&out)?[0]["name"], "apps/web");

    // Refusals are clear: an unknown context, and no kubeconfig and no pod.
    let out = cli(home.path(), &[], &["--context", "nope", "status"])?;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"), "{out:?}");
    let empty = tempfile::tempdir()?;
    let out = cli(empty.path(), &[], &["status"])?;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("in-cluster"),
        "{out:?}"
    );

    // The controller itself, through the exec user: it lists and watches (ready) and stops.
    let port = free_port();
    let log = dir.path().join("controller.log");
    let file = std::fs::File::create(&log)?;
    let mut child = Command::new(BIN)
        .args(["controller", "--kubeconfig", config, "--context", "exec"])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env_remove("KUBECONFIG")
        .stdout(file.try_clone()?)
        .stderr(file)
        .stdin(Stdio::null())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let ready = loop {
        let status = reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
            .await
            .ok()
            .map(|r| r.status().as_u16());
        if status == Some(200) {
            break true;
        }
        if Instant::now() > deadline || child.try_wait()?.is_some() {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(ready, "controller not ready:\n{}", std::fs::read_to_string(&log)?);
    Ok(())
}
