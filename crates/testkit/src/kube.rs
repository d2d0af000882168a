//! A genuine kube-apiserver (v1.20.2) + etcd on 127.0.0.1, for Kubernetes-auth tests: service
//! accounts, TokenRequest (projected service-account tokens) and the TokenReview endpoint that
//! OpenBao's kubernetes auth calls.
//!
//! The binaries are built by `scripts/kube/install-kube-apiserver.sh ~/.cache/certkeeper/kube`
//! (`CERTKEEPER_KUBE_BIN` overrides the bin directory). The start-up logic is
//! `scripts/kube/start-kube-apiserver.sh` ported to Rust (without the controller manager), so both
//! processes are `ManagedProcess`es: killed on drop and on test-process death.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use reqwest::Method;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::ports::{free_port, random_hex};
use crate::process::ManagedProcess;

const READY_BOUND: Duration = Duration::from_secs(90);

/// The directory holding `kube-apiserver` and `etcd`.
pub fn kube_bin_dir() -> Result<PathBuf> {
    let dir = match std::env::var_os("CERTKEEPER_KUBE_BIN").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => {
            let home = std::env::var_os("HOME").ok_or_else(|| anyhow!("HOME is not set"))?;
            PathBuf::from(home).join(".cache/certkeeper/kube/bin")
        }
    };
    for bin in ["kube-apiserver", "etcd"] {
        if !dir.join(bin).is_file() {
            bail!(
                "{} not found: run scripts/kube/install-kube-apiserver.sh ~/.cache/certkeeper/kube \
                 (or set CERTKEEPER_KUBE_BIN to a directory with kube-apiserver and etcd)",
                dir.join(bin).display()
            );
        }
    }
    Ok(dir)
}

/// etcd + kube-apiserver, both killed on drop.
#[derive(Debug)]
pub struct KubeApiServer {
    // Declared first: dropped (killed) before the temp dir is removed.
    apiserver: ManagedProcess,
    etcd: ManagedProcess,
    port: u16,
    token: String,
    ca_pem: String,
    kubeconfig: PathBuf,
    _dir: TempDir,
}

impl KubeApiServer {
    /// Starts etcd and kube-apiserver on free ports; waits for `/readyz` (≤ 90 s).
    pub async fn start() -> Result<Self> {
        Self::start_with(&[]).await
    }

    /// As [`start`](Self::start), with extra kube-apiserver flags (`--flag=value` each).
    pub async fn start_with(extra_args: &[&str]) -> Result<Self> {
        let bin = kube_bin_dir()?;
        let dir = tempfile::Builder::new()
            .prefix("certkeeper-kube")
            .tempdir()
            .context("temp dir")?;
        let run = dir.path();
        let pki = run.join("pki");
        std::fs::create_dir_all(&pki).context("creating pki dir")?;
        let (sa_key, sa_pub) = crate::jwt::rsa_keypair_pem()?;
        std::fs::write(pki.join("sa.key"), sa_key).context("writing sa.key")?;
        std::fs::write(pki.join("sa.pub"), sa_pub).context("writing sa.pub")?;
        let token = random_hex(24);
        std::fs::write(
            pki.join("tokens.csv"),
            format!("{token},admin,admin,system:masters\n"),
        )
        .context("writing tokens.csv")?;
        let (port, etcd_port, etcd_peer) = (free_port(), free_port(), free_port());

        let etcd_client = format!("http://127.0.0.1:{etcd_port}");
        let etcd_peer_url = format!("http://127.0.0.1:{etcd_peer}");
        let mut cmd = Command::new(bin.join("etcd"));
        cmd.current_dir(run).args([
            "--name",
            "envtest",
            "--data-dir",
            &run.join("etcd").display().to_string(),
            "--unsafe-no-fsync=true",
            "--listen-client-urls",
            &etcd_client,
            "--advertise-client-urls",
            &etcd_client,
            "--listen-peer-urls",
            &etcd_peer_url,
            "--initial-advertise-peer-urls",
            &etcd_peer_url,
            "--initial-cluster",
            &format!("envtest={etcd_peer_url}"),
        ]);
        let mut etcd = ManagedProcess::spawn("etcd", cmd, &run.join("etcd.log"))?;

        let mut cmd = Command::new(bin.join("kube-apiserver"));
        let pki_s = |f: &str| pki.join(f).display().to_string();
        cmd.current_dir(run).args([
            "--etcd-servers",
            &etcd_client,
            "--bind-address",
            "127.0.0.1",
            "--advertise-address",
            "127.0.0.1",
            "--secure-port",
            &port.to_string(),
            "--insecure-port",
            "0",
            "--cert-dir",
            &pki.display().to_string(),
            "--token-auth-file",
            &pki_s("tokens.csv"),
            "--authorization-mode",
            "RBAC",
            "--service-cluster-ip-range",
            "10.0.0.0/24",
            "--allow-privileged=true",
            "--disable-admission-plugins",
            "ServiceAccount",
            "--service-account-key-file",
            &pki_s("sa.pub"),
            "--service-account-signing-key-file",
            &pki_s("sa.key"),
            "--service-account-issuer",
            "https://kubernetes.default.svc",
            "--api-audiences",
            "https://kubernetes.default.svc",
        ]);
        cmd.args(extra_args);
        let mut apiserver = ManagedProcess::spawn("kube-apiserver", cmd, &run.join("apiserver.log"))?;

        let url = format!("https://127.0.0.1:{port}");
        let ca_pem = wait_ready(
            &mut apiserver,
            &mut etcd,
            &pki.join("apiserver.crt"),
            &url,
            &token,
        )
        .await?;
        let kubeconfig = run.join("kubeconfig");
        let ca_b64 = base64::engine::general_purpose::STANDARD.encode(&ca_pem);
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: envtest\n  cluster: {{server: \"{url}\", \
                 certificate-authority-data: \"{ca_b64}\"}}\nusers:\n- name: admin\n  user: {{token: \"{token}\"}}\n\
                 contexts:\n- name: envtest\n  context: {{cluster: envtest, user: admin, namespace: default}}\n\
                 current-context: envtest\n"
            ),
        )
        .context("writing kubeconfig")?;
        Ok(Self {
            apiserver,
            etcd,
            port,
            token,
            ca_pem,
            kubeconfig,
            _dir: dir,
        })
    }

    /// `https://127.0.0.1:P`
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The self-signed CA of the apiserver's serving certificate (PEM).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// A static bearer token in group system:masters.
    pub fn admin_token(&self) -> &str {
        &self.token
    }

    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// (kube-apiserver pid, etcd pid)
    pub fn pids(&self) -> (u32, u32) {
        (self.apiserver.pid(), self.etcd.pid())
    }

    pub fn log_tail(&self) -> String {
        self.apiserver.log_tail(40)
    }

    /// An admin request: (status, JSON body or Null).
    pub async fn request(&self, method: Method, path: &str, body: Option<&Value>) -> Result<(u16, Value)> {
        let client = pinned_client(&self.ca_pem)?;
        let url = format!("{}{}", self.url(), path);
        let mut req = client.request(method.clone(), &url).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.with_context(|| format!("{method} {url}"))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.context("reading the kube-apiserver answer")?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
    }

    /// An admin request that must succeed, waiting up to `bound` while the path answers 404 (a
    /// custom resource is served a moment after its CRD is Established): the answer's body.
    pub async fn request_when_served(
        &self,
        method: Method,
        path: &str,
        body: &Value,
        bound: std::time::Duration,
    ) -> Result<Value> {
        let deadline = std::time::Instant::now() + bound;
        loop {
            let (status, answer) = self.request(method.clone(), path, Some(body)).await?;
            match status {
                200..=299 => return Ok(answer),
                404 if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                _ => bail!("{method} {path} -> {status}: {answer}"),
            }
        }
    }

    async fn create(&self, path: &str, body: Value) -> Result<()> {
        let (status, v) = self.request(Method::POST, path, Some(&body)).await?;
        match status {
            200..=299 | 409 => Ok(()), // 409: already exists
            _ => bail!("POST {path} -> {status}: {v}"),
        }
    }

    /// Creates namespace `ns` (no error if it exists).
    pub async fn create_namespace(&self, ns: &str) -> Result<()> {
        self.create(
            "/api/v1/namespaces",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        )
        .await
    }

    /// Creates service account `ns/name` (and the namespace; no error if they exist).
    pub async fn create_service_account(&self, ns: &str, name: &str) -> Result<()> {
        self.create_namespace(ns).await?;
        self.create(
            &format!("/api/v1/namespaces/{ns}/serviceaccounts"),
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}}),
        )
        .await
    }

    /// Binds cluster role `system:auth-delegator` to `ns/sa`, so its tokens can create
    /// TokenReviews (what OpenBao's `token_reviewer_jwt` needs).
    pub async fn grant_token_review(&self, ns: &str, sa: &str) -> Result<()> {
        self.create(
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                   "metadata": {"name": format!("{ns}-{sa}-auth-delegator")},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                               "name": "system:auth-delegator"},
                   "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": ns}]}),
        )
        .await
    }

    /// An admin client of this apiserver that keeps its connections (pinned to the CA, 5 s
    /// connect and 30 s request timeouts) and can send any content type.
    pub fn client(&self) -> Result<KubeClient> {
        Ok(KubeClient {
            url: self.url(),
            token: self.token.clone(),
            client: pinned_client(&self.ca_pem)?,
        })
    }

    /// Creates these CustomResourceDefinitions (parsed YAML or JSON documents, e.g. a
    /// `serde_yaml_ng` document stream) and waits until every one is Established, at most `bound`
    /// in all. Fails when a creation is refused or a CRD reports `NonStructuralSchema`. Returns
    /// the CRDs' names in order.
    pub async fn apply_crds(&self, crds: &[Value], bound: Duration) -> Result<Vec<String>> {
        const PATH: &str = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
        let mut names = Vec::new();
        for crd in crds {
            let name = crd["metadata"]["name"]
                .as_str()
                .ok_or_else(|| anyhow!("a CRD without a name: {crd}"))?;
            let (status, answer) = self.request(Method::POST, PATH, Some(crd)).await?;
            if status != 201 {
                bail!("POST {PATH} ({name}) -> {status}: {answer}");
            }
            names.push(name.to_owned());
        }
        let deadline = Instant::now() + bound;
        for name in &names {
            loop {
                let path = format!("{PATH}/{name}");
                let (status, crd) = self.request(Method::GET, &path, None).await?;
                if status != 200 {
                    bail!("GET {path} -> {status}: {crd}");
                }
                let conditions = crd["status"]["conditions"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let condition = |t: &str| conditions.iter().find(|c| c["type"] == t);
                if let Some(c) = condition("NonStructuralSchema") {
                    bail!("{name} is not structural: {c}");
                }
                if condition("Established").is_some_and(|c| c["status"] == "True") {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("{name} not Established after {bound:?}: {conditions:?}");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(names)
    }

    /// A projected service-account token (TokenRequest API) for `ns/sa` with these audiences
    /// (empty: the apiserver's default audience) and lifetime (the apiserver's minimum is 600 s).
    pub async fn token_request(
        &self,
        ns: &str,
        sa: &str,
        audiences: &[&str],
        expiration_seconds: u64,
    ) -> Result<String> {
        let body = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                          "spec": {"audiences": audiences, "expirationSeconds": expiration_seconds}});
        let path = format!("/api/v1/namespaces/{ns}/serviceaccounts/{sa}/token");
        let (status, v) = self.request(Method::POST, &path, Some(&body)).await?;
        if status != 201 && status != 200 {
            bail!("POST {path} -> {status}: {v}");
        }
        v.pointer("/status/token")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| anyhow!("no token in {v}"))
    }
}

/// An admin client of a [`KubeApiServer`], from [`KubeApiServer::client`].
#[derive(Debug, Clone)]
pub struct KubeClient {
    url: String,
    token: String,
    client: reqwest::Client,
}

impl KubeClient {
    /// The underlying HTTP client (the apiserver's CA pinned), for requests [`Self::call`] does
    /// not make (another `Accept`, e.g. a Table); the caller adds the URL and bearer token.
    pub fn http(&self) -> &reqwest::Client {
        &self.client
    }

    /// `method path` with `Accept: application/json` and, when there is a body, this
    /// `Content-Type` (e.g. `application/merge-patch+json`): (status, the answer as JSON, or as
    /// a JSON string when it is not JSON).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value)> {
        let url = format!("{}{path}", self.url);
        let mut request = self
            .client
            .request(method.clone(), &url)
            .bearer_auth(&self.token)
            .header("Accept", "application/json");
        if let Some(body) = body {
            request = request
                .header("Content-Type", content_type)
                .body(serde_json::to_vec(body)?);
        }
        let response = request.send().await.with_context(|| format!("{method} {path}"))?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
    }
}

fn pinned_client(ca_pem: &str) -> Result<reqwest::Client> {
    let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes()).context("kube CA")?;
    crate::admin::client_builder()
        .tls_certs_only([ca])
        .build()
        .context("kube HTTP client")
}

/// The last certificate in a PEM bundle (apiserver.crt = serving cert, then its CA).
fn last_pem_cert(bundle: &str) -> Option<String> {
    let start = bundle.rfind("-----BEGIN CERTIFICATE-----")?;
    let end_marker = "-----END CERTIFICATE-----";
    let end = bundle[start..].find(end_marker)? + start + end_marker.len();
    Some(format!("{}\n", &bundle[start..end]))
}

async fn wait_ready(
    apiserver: &mut ManagedProcess,
    etcd: &mut ManagedProcess,
    cert_file: &Path,
    url: &str,
    token: &str,
) -> Result<String> {
    let deadline = Instant::now() + READY_BOUND;
    let mut last = String::new();
    loop {
        for p in [&mut *apiserver, &mut *etcd] {
            if let Some(status) = p.exit_status() {
                bail!("{} exited ({status}); log:\n{}", p.name(), p.log_tail(30));
            }
        }
        let bundle = std::fs::read_to_string(cert_file).unwrap_or_default();
        if bundle.matches("-----END CERTIFICATE-----").count() >= 2
            && let Some(ca) = last_pem_cert(&bundle)
        {
            let Ok(client) = pinned_client(&ca) else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let probe = client
                .get(format!("{url}/readyz"))
                .bearer_auth(token)
                .timeout(Duration::from_secs(3))
                .send()
                .await;
            match probe {
                Ok(r) if r.status().is_success() => return Ok(ca),
                Ok(r) => last = format!("readyz {}", r.status()),
                Err(e) => last = format!("{e:#}"),
            }
        }
        if Instant::now() > deadline {
            bail!(
                "kube-apiserver not ready after {READY_BOUND:?} (last: {last}); log:\n{}\netcd:\n{}",
                apiserver.log_tail(30),
                etcd.log_tail(10)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
