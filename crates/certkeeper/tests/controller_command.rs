//! `certkeeper controller` as a process against a genuine kube-apiserver and OpenBao: it issues a
//! Certificate, answers /readyz and /metrics, stops on SIGTERM with status 0, and a restart
//! reads its state back from the Certificate status and the Secret (adopting a Secret it did not
//! write when it matches the spec): nothing is re-issued;
//! `certkeeper controller status` shows it and `certkeeper controller renew` renews it.
//! Skipped (with a printed reason) only when the kube binaries are not installed.
#![allow(clippy::unwrap_used)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use certkeeper_testkit::{DevServer, KubeApiServer, PkiOptions, free_port, kube_bin_dir};
use reqwest::Method;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_certkeeper");
const BOUND: Duration = Duration::from_secs(60);
const CERT: &str = "/apis/cert-manager.io/v1/namespaces/apps/certificates/web";

struct Controller {
    child: Child,
    log: std::path::PathBuf,
}

impl Controller {
    fn start(kube: &KubeApiServer, dir: &std::path::Path, port: u16, log_name: &str) -> Result<Self> {
        Self::start_with(kube, dir, port, log_name, &[])
    }

    fn start_with(
        kube: &KubeApiServer,
        dir: &std::path::Path,
        port: u16,
        log_name: &str,
        extra: &[&str],
    ) -> Result<Self> {
        let (token, ca) = (dir.join("token"), dir.join("ca.crt"));
        std::fs::write(&token, kube.admin_token())?;
        std::fs::write(&ca, kube.ca_pem())?;
        let log = dir.join(log_name);
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&log)?;
        let child = Command::new(BIN)
            .arg("controller")
            .args(["--kube-server", &kube.url()])
            .arg("--token-file")
            .arg(&token)
            .arg("--ca-file")
            .arg(&ca)
            .args(["--listen", &format!("127.0.0.1:{port}"), "--secret-resync", "1"])
            .args(extra)
            .stdout(file.try_clone()?)
            .stderr(file)
            .stdin(Stdio::null())
            .spawn()?;
        Ok(Controller { child, log })
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn stop(&mut self) -> Result<std::process::ExitStatus> {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!("controller did not stop on SIGTERM:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn post(kube: &KubeApiServer, path: &str, body: Value) -> Result<()> {
    kube.request_when_served(Method::POST, path, &body, BOUND)
        .await
        .map(drop)
}

async fn get(kube: &KubeApiServer, path: &str) -> Result<Value> {
    let (status, v) = kube.request(Method::GET, path, None).await?;
    if status != 200 {
        bail!("GET {path} -> {status}: {v}");
    }
    Ok(v)
}

fn ready(cert: &Value) -> bool {
    cert["status"]["conditions"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

async fn http_get(url: &str) -> Option<(u16, String)> {
    let resp = reqwest::get(url).await.ok()?;
    let status = resp.status().as_u16();
    Some((status, resp.text().await.ok()?))
}

/// Starts the kube-apiserver and OpenBao together and runs [`setup`]; `None` (with a printed
/// reason) when the kube binaries are not installed.
async fn start_and_setup() -> Result<Option<(KubeApiServer, DevServer)>> {
    if let Err(e) = kube_bin_dir() {
        eprintln!("SKIPPED: {e:#}");
        return Ok(None);
    }
    let (kube, bao) = tokio::join!(KubeApiServer::start(), DevServer::start());
    let (kube, bao) = (kube?, bao?);
    setup(&kube, &bao).await?;
    Ok(Some((kube, bao)))
}

async fn setup(kube: &KubeApiServer, bao: &DevServer) -> Result<()> {
    let admin = bao.admin();
    let pki = admin.setup_pki(PkiOptions::default()).await?;
    let token = admin.create_token(&[&pki.policy], "1h", true, 0).await?;
    for crd in certkeeper_crds::crds() {
        post(
            kube,
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            crd.to_json(),
        )
        .await?;
    }
    kube.create_namespace("apps").await?;
    post(
        kube,
        "/api/v1/namespaces/apps/secrets",
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "vault-token"}, "stringData": {"token": token}}),
    )
    .await?;
    post(
        kube,
        "/apis/cert-manager.io/v1/namespaces/apps/issuers",
        json!({"apiVersion": "cert-manager.io/v1", "kind": "Issuer", "metadata": {"name": "vault"},
               "spec": {"vault": {"server": bao.addr(), "path": pki.sign_path,
                                  "auth": {"tokenSecretRef": {"name": "vault-token", "key": "token"}}}}}),
    )
    .await?;
    post(
        kube,
        "/apis/cert-manager.io/v1/namespaces/apps/certificates",
        json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "metadata": {"name": "web"},
               "spec": {"secretName": "web-tls", "commonName": "web.example.com", "dnsNames": ["web.example.com"], "duration": "1h",
                        "renewBefore": "20m", "issuerRef": {"name": "vault"}}}),
    )
    .await?;

    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_issues_and_a_restart_reissues_nothing() -> Result<()> {
    let Some((kube, _bao)) = start_and_setup().await? else {
        return Ok(());
    };

    let dir = tempfile::tempdir()?;
    let port = free_port();
    let mut controller = Controller::start(&kube, dir.path(), port, "first.log")?;
    let started = Instant::now();
    let cert = loop {
        let cert = get(&kube, CERT).await?;
        if ready(&cert) {
            break cert;
        }
        if started.elapsed() > BOUND {
            bail!("not Ready: {cert}\n{}", controller.log());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!(
        "controller started -> Certificate Ready in {:?}",
        started.elapsed()
    );
    assert_eq!(cert["status"]["revision"], 1);
    let readyz = http_get(&format!("http://127.0.0.1:{port}/readyz")).await;
    assert_eq!(readyz.map(|r| r.0), Some(200));
    let (_, metrics) = http_get(&format!("http://127.0.0.1:{port}/metrics"))
        .await
        .context("metrics")?;
    assert!(
        metrics.contains("certmanager_certificate_ready_status{"),
        "{metrics}"
    );
    let secret = get(&kube, "/api/v1/namespaces/apps/secrets/web-tls").await?;
    // Every write names certkeeper as its field manager (the Secret it created, the status it
    // wrote), so other writers' fields are told apart in managedFields.
    let managers = |o: &Value| -> Vec<String> {
        o["metadata"]["managedFields"]
            .as_array()
            .map(|m| {
                m.iter()
                    .filter_map(|f| f["manager"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert!(
        managers(&secret).contains(&"certkeeper".to_owned()),
        "{:?}",
        managers(&secret)
    );
    assert!(
        managers(&cert).contains(&"certkeeper".to_owned()),
        "{:?}",
        managers(&cert)
    );
    let status = controller.stop()?;
    assert!(status.success(), "{status:?}\n{}", controller.log());

    // A restart: the state comes back from status and Secret; nothing is issued. The Secret's
    // certkeeper.io/spec-hash is removed first, as if cert-manager had written it: the matching
    // certificate is adopted, not re-issued.
    let mut stripped = get(&kube, "/api/v1/namespaces/apps/secrets/web-tls").await?;
    stripped["metadata"]["annotations"]
        .as_object_mut()
        .unwrap()
        .remove("certkeeper.io/spec-hash");
    let (code, answer) = kube
        .request(
            Method::PUT,
            "/api/v1/namespaces/apps/secrets/web-tls",
            Some(&stripped),
        )
        .await?;
    assert_eq!(code, 200, "{answer}");
    let mut controller = Controller::start(&kube, dir.path(), port, "second.log")?;
    let deadline = Instant::now() + BOUND;
    while http_get(&format!("http://127.0.0.1:{port}/readyz"))
        .await
        .map(|r| r.0)
        != Some(200)
    {
        if Instant::now() > deadline {
            bail!("not ready after restart:\n{}", controller.log());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = get(&kube, CERT).await?;
    assert!(ready(&after), "{after}");
    assert_eq!(after["status"]["revision"], 1, "{after}\n{}", controller.log());
    let secret_after = get(&kube, "/api/v1/namespaces/apps/secrets/web-tls").await?;
    assert_eq!(secret_after["data"], secret["data"], "the Secret is untouched");
    assert!(
        controller
            .log()
            .contains("adopted the certificate already in the Secret"),
        "{}",
        controller.log()
    );

    // `certkeeper controller status` and `renew` against the cluster.
    let cli = |args: &[&str]| {
        let mut cmd = Command::new(BIN);
        cmd.arg("controller")
            .args(["--kube-server", &kube.url()])
            .arg("--token-file")
            .arg(dir.path().join("token"))
            .arg("--ca-file")
            .arg(dir.path().join("ca.crt"))
            .args(args);
        cmd.output()
    };
    let out = cli(&["status", "--json"])?;
    assert!(out.status.success(), "{out:?}");
    let rows: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(rows[0]["name"], "apps/web");
    assert_eq!(rows[0]["ready"], true);
    assert_eq!(rows[0]["revision"], 1);
    let table = String::from_utf8(cli(&["status"])?.stdout)?;
    assert!(table.starts_with("NAME") && table.contains("apps/web"), "{table}");
    let out = cli(&["renew", "apps/web", "--wait", "30"])?;
    assert!(out.status.success(), "{out:?}\n{}", controller.log());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("revision 2"),
        "{out:?}"
    );
    // The request is cmctl's (Issuing=True, ManuallyTriggered) and is acted on once: the
    // condition is consumed and no further revision follows.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cert = get(&kube, CERT).await?;
    assert_eq!(cert["status"]["revision"], 2, "{cert}");
    let conditions = cert["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        !conditions.iter().any(|c| c["type"] == "Issuing"),
        "the request is consumed: {cert}"
    );
    let status = controller.stop()?;
    assert!(status.success());
    assert_eq!(
        controller.log().matches("issuing certificate").count(),
        1,
        "only the requested renewal: {}",
        controller.log()
    );
    Ok(())
}

async fn lease_holder(kube: &KubeApiServer) -> Result<String> {
    let (status, lease) = kube
        .request(
            Method::GET,
            "/apis/coordination.k8s.io/v1/namespaces/cert-manager/leases/certkeeper-controller",
            None,
        )
        .await?;
    Ok(if status == 200 {
        lease["spec"]["holderIdentity"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    } else {
        String::new()
    })
}

/// Two replicas with `--leader-elect`: one reconciles, the other waits; when the leader is
/// killed (SIGKILL, no release) the standby takes the Lease within the lease time and
/// reconciles (a deleted target Secret is re-created by it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_election_fails_over_between_two_processes() -> Result<()> {
    let Some((kube, _bao)) = start_and_setup().await? else {
        return Ok(());
    };
    kube.create_namespace("cert-manager").await?;
    let dir = tempfile::tempdir()?;
    let elect = ["--leader-elect", "--lease-duration", "4"];
    let (port_a, port_b) = (free_port(), free_port());
    let mut a = Controller::start_with(&kube, dir.path(), port_a, "a.log", &elect)?;
    let deadline = Instant::now() + BOUND;
    while !ready(&get(&kube, CERT).await?) {
        if Instant::now() > deadline {
            bail!("not Ready under leader A:\n{}", a.log());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let b = Controller::start_with(&kube, dir.path(), port_b, "b.log", &elect)?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let holder = lease_holder(&kube).await?;
    assert!(holder.ends_with(&format!("_{}", a.child.id())), "holder {holder}");
    assert!(b.log().contains("waiting for the leader lease"), "{}", b.log());
    assert!(
        !b.log().contains("certificates applied"),
        "the standby reconciles:\n{}",
        b.log()
    );
    let readyz = http_get(&format!("http://127.0.0.1:{port_b}/readyz")).await;
    assert_eq!(readyz.map(|r| r.0), Some(200), "a standby is ready");

    a.child.kill()?;
    a.child.wait()?;
    let killed = Instant::now();
    let b_suffix = format!("_{}", b.child.id());
    while !lease_holder(&kube).await?.ends_with(&b_suffix) {
        if killed.elapsed() > Duration::from_secs(20) {
            bail!("B did not take over:\n{}", b.log());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took_over = killed.elapsed();
    eprintln!("leader killed -> standby holds the lease after {took_over:?} (lease 4 s)");
    assert!(took_over < Duration::from_secs(10), "{took_over:?}");

    // B reconciles: a deleted target Secret comes back.
    let (status, _) = kube
        .request(Method::DELETE, "/api/v1/namespaces/apps/secrets/web-tls", None)
        .await?;
    assert_eq!(status, 200);
    let deadline = Instant::now() + BOUND;
    loop {
        let (status, _) = kube
            .request(Method::GET, "/api/v1/namespaces/apps/secrets/web-tls", None)
            .await?;
        if status == 200 {
            break;
        }
        if Instant::now() > deadline {
            bail!("B did not re-create the Secret:\n{}", b.log());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "... and re-created the deleted Secret {:?} after the kill",
        killed.elapsed()
    );
    let mut b = b;
    let status = b.stop()?;
    assert!(status.success(), "{status:?}\n{}", b.log());
    assert_eq!(lease_holder(&kube).await?, "", "released on a graceful stop");
    Ok(())
}
