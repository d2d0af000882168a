//! The container image scripts/image builds (README.md, "Container image"), checked without a
//! container daemon: built from the binary under test, its configuration read back (non-root
//! user 65532, entrypoint, cmd, port) and compared with the Dockerfile's, its root filesystem
//! unpacked with umoci and its entrypoint run from there as user 65532 — `--version`, then
//! `controller` against a genuine kube-apiserver and OpenBao with the root filesystem mounted
//! read-only (a private mount namespace), until /readyz answers 200 and a Certificate is issued.
//! Prints the image's sizes and the controller's RSS. Skipped (with a printed reason) when umoci,
//! skopeo or the kube binaries are missing, unless CERTKEEPER_UMOCI is set (scripts/test sets it).
//! CERTKEEPER_IMAGE_BIN builds the image from another binary (a release build, to measure it).
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use certkeeper_testkit::{KubeApiServer, PkiOptions, free_port, kube_bin_dir};
use reqwest::Method;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_certkeeper");
const BOUND: Duration = Duration::from_secs(60);
const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

fn tools_missing() -> Option<String> {
    let missing: Vec<&str> = ["umoci", "skopeo", "chroot", "unshare"]
        .into_iter()
        .filter(|t| {
            !Command::new("sh")
                .args(["-c", &format!("command -v {t}")])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .collect();
    if !missing.is_empty() {
        return Some(format!("{} not installed", missing.join(", ")));
    }
    // chroot and the read-only bind mount need root (as scripts/test runs).
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    if !uid.as_ref().is_ok_and(|u| u == "0") {
        return Some(format!("not run as root (id -u: {uid:?}): chroot needs it"));
    }
    kube_bin_dir().err().map(|e| format!("{e:#}"))
}

fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("{cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?}: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn du_bytes(path: &Path) -> Result<u64> {
    let out = run(Command::new("du").args(["-sb"]).arg(path))?;
    Ok(out.split_whitespace().next().unwrap_or("0").parse()?)
}

/// USER, ENTRYPOINT, CMD and EXPOSE of the Dockerfile's final stage, in the image config's terms.
fn dockerfile_config() -> Result<Value> {
    let text = std::fs::read_to_string(format!("{ROOT}/Dockerfile"))?;
    let last_stage = text.rsplit("\nFROM ").next().context("no FROM")?;
    let mut config = json!({});
    for line in last_stage.lines() {
        let Some((word, rest)) = line.split_once(' ') else {
            continue;
        };
        match word {
            "USER" => config["User"] = json!(rest.trim()),
            "ENTRYPOINT" => config["Entrypoint"] = serde_json::from_str(rest)?,
            "CMD" => config["Cmd"] = serde_json::from_str(rest)?,
            "EXPOSE" => config["ExposedPorts"] = json!({ rest.trim(): {} }),
            _ => {}
        }
    }
    Ok(config)
}

/// The controller run from the unpacked root filesystem, mounted read-only in a private mount
/// namespace, as user 65532. `unshare` and `sh` exec into it: its pid is the controller's.
struct Contained(Child);

impl Drop for Contained {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn kube_post(kube: &KubeApiServer, path: &str, body: Value) -> Result<()> {
    kube.request_when_served(Method::POST, path, &body, BOUND)
        .await
        .map(drop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_runs_the_controller_as_nonroot_from_a_read_only_root() -> Result<()> {
    if let Some(reason) = tools_missing() {
        if std::env::var_os("CERTKEEPER_UMOCI").is_some() {
            bail!("CERTKEEPER_UMOCI is set but {reason}");
        }
        eprintln!("SKIPPED: {reason}");
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("image");
    let started = Instant::now();
    let bin = std::env::var("CERTKEEPER_IMAGE_BIN").unwrap_or_else(|_| BIN.to_owned());
    run(Command::new(format!("{ROOT}/scripts/image")).arg(&bin).arg(&out))?;
    eprintln!("scripts/image: {:?}", started.elapsed());
    let version = run(Command::new(&bin).arg("--version"))?;
    // umoci names an image path:tag, skopeo transport:path:tag.
    let layout_ref = format!(
        "{}:certkeeper:{}",
        out.join("oci").display(),
        version.split_whitespace().nth(1).context("version")?
    );
    let image = format!("oci:{layout_ref}");

    // The configuration, as a runtime reads it, and the Dockerfile's.
    let config: Value =
        serde_json::from_str(&run(Command::new("skopeo").args(["inspect", "--config", &image]))?)?;
    let config = &config["config"];
    assert_eq!(config["User"], "65532:65532");
    assert_eq!(config["Entrypoint"], json!(["/usr/bin/certkeeper"]));
    assert_eq!(config["Cmd"], json!(["controller"]));
    assert_eq!(config["ExposedPorts"], json!({"9402/tcp": {}}));
    assert_eq!(config["Labels"]["org.opencontainers.image.title"], "certkeeper");
    let docker = dockerfile_config()?;
    for key in ["User", "Entrypoint", "Cmd", "ExposedPorts"] {
        assert_eq!(
            docker[key], config[key],
            "Dockerfile and scripts/image differ in {key}"
        );
    }
    // The docker-archive names the same image.
    let archive = out.join("certkeeper.tar");
    let manifest = run(Command::new("tar").arg("xOf").arg(&archive).arg("manifest.json"))?;
    assert!(manifest.contains("certkeeper:0.1.0"), "{manifest}");

    // Unpacked as a runtime would; the spec umoci writes names the same process.
    let bundle = dir.path().join("bundle");
    run(Command::new("umoci")
        .args(["unpack", "--image", &layout_ref])
        .arg(&bundle))?;
    let spec: Value = serde_json::from_slice(&std::fs::read(bundle.join("config.json"))?)?;
    assert_eq!(spec["process"]["user"]["uid"], 65532);
    assert_eq!(
        spec["process"]["args"],
        json!(["/usr/bin/certkeeper", "controller"])
    );
    let rootfs = bundle.join("rootfs");
    assert!(!rootfs.join("bin/sh").exists(), "the image has a shell");
    let chroot = |args: &[&str]| {
        let mut cmd = Command::new("chroot");
        cmd.arg("--userspec=65532:65532")
            .arg(&rootfs)
            .arg("/usr/bin/certkeeper")
            .args(args);
        cmd
    };
    assert_eq!(run(&mut chroot(&["--version"]))?, version);
    let (archive_size, layout_size, unpacked_size) = (
        std::fs::metadata(&archive)?.len(),
        du_bytes(&out.join("oci"))?,
        du_bytes(&rootfs)?,
    );

    // The controller against a genuine kube-apiserver and OpenBao.
    let (kube, bao) = tokio::join!(KubeApiServer::start(), certkeeper_testkit::DevServer::start());
    let (kube, bao) = (kube?, bao?);
    let admin = bao.admin();
    let pki = admin.setup_pki(PkiOptions::default()).await?;
    let token = admin.create_token(&[&pki.policy], "1h", true, 0).await?;
    for crd in certkeeper_crds::crds() {
        kube_post(
            &kube,
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            crd.to_json(),
        )
        .await?;
    }
    kube.create_namespace("apps").await?;
    kube_post(&kube, "/api/v1/namespaces/apps/secrets",
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "vault-token"}, "stringData": {"token": token}})).await?;
    kube_post(
        &kube,
        "/apis/cert-manager.io/v1/namespaces/apps/issuers",
        json!({"apiVersion": "cert-manager.io/v1", "kind": "Issuer", "metadata": {"name": "vault"},
               "spec": {"vault": {"server": bao.addr(), "path": pki.sign_path,
                                  "auth": {"tokenSecretRef": {"name": "vault-token", "key": "token"}}}}}),
    )
    .await?;
    kube_post(&kube, "/apis/cert-manager.io/v1/namespaces/apps/certificates",
        json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "metadata": {"name": "web"},
               "spec": {"secretName": "web-tls", "commonName": "web.example.com", "dnsNames": ["web.example.com"],
                        "duration": "1h", "issuerRef": {"name": "vault"}}})).await?;

    // The credentials where a Pod's service account volume would put them.
    let sa = rootfs.join("var/run/secrets/kubernetes.io/serviceaccount");
    std::fs::create_dir_all(&sa)?;
    std::fs::write(sa.join("token"), kube.admin_token())?;
    std::fs::write(sa.join("ca.crt"), kube.ca_pem())?;
    let port = free_port();
    let log = dir.path().join("controller.log");
    let file = std::fs::File::create(&log)?;
    let root = rootfs.display().to_string();
    let script = format!(
        "mount --bind '{root}' '{root}' && mount -o remount,bind,ro '{root}' && \
         exec chroot --userspec=65532:65532 '{root}' /usr/bin/certkeeper controller \
         --kube-server '{}' --token-file /var/run/secrets/kubernetes.io/serviceaccount/token \
         --ca-file /var/run/secrets/kubernetes.io/serviceaccount/ca.crt --listen 127.0.0.1:{port}",
        kube.url()
    );
    let mut controller = Contained(
        Command::new("unshare")
            .args(["-m", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()?,
    );
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();
    let started = Instant::now();
    let http = reqwest::Client::new();
    let cert_path = "/apis/cert-manager.io/v1/namespaces/apps/certificates/web";
    loop {
        if let Some(status) = controller.0.try_wait()? {
            bail!("the controller exited ({status}):\n{}", logs());
        }
        let readyz = http
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
            .map(|r| r.status().as_u16());
        let (_, cert) = kube.request(Method::GET, cert_path, None).await?;
        let issued = cert["status"]["conditions"]
            .as_array()
            .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"));
        if issued && readyz.as_ref().is_ok_and(|s| *s == 200) {
            break;
        }
        if started.elapsed() > BOUND {
            bail!(
                "not ready/issued after {BOUND:?} (readyz {readyz:?}): {cert}\n{}",
                logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, secret) = kube
        .request(Method::GET, "/api/v1/namespaces/apps/secrets/web-tls", None)
        .await?;
    assert_eq!(status, 200, "{secret}");
    assert!(secret["data"]["tls.crt"].is_string(), "{secret}");
    let pid = controller.0.id();
    let proc_status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let uid_line = proc_status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .context("Uid")?;
    assert!(
        uid_line.split_whitespace().skip(1).all(|u| u == "65532"),
        "{uid_line}"
    );
    let rss = proc_status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("VmRSS")?
        .to_owned();
    eprintln!(
        "image: docker-archive {:.1} MiB, OCI layout (gzip layer) {:.1} MiB, unpacked root filesystem {:.1} MiB; controller from it (read-only root, uid 65532): \
         ready and issued in {:?}, {rss}",
        archive_size as f64 / 1048576.0,
        layout_size as f64 / 1048576.0,
        unpacked_size as f64 / 1048576.0,
        started.elapsed()
    );
    drop(controller);
    Ok(())
}
