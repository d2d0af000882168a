//! The standalone daemon end to end, through the `certkeeper` binary, against a real OpenBao.
#![allow(clippy::unwrap_used)] // tests state their expectations by unwrapping

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use certkeeper_testkit::{DevServer, PkiOptions};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_certkeeper");

/// A certkeeper child process, stopped (SIGTERM, then SIGKILL) when dropped.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(config: &Path) -> Daemon {
        let log = config.with_file_name(format!("daemon-{}.log", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(config)
            .env("CERTKEEPER_LOG", "info")
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        Daemon { child, log }
    }

    fn stop(mut self) -> std::process::ExitStatus {
        let _ = nix_kill(self.child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "daemon did not stop on SIGTERM:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nix_kill(pid: u32, sig: &str) -> std::io::Result<Output> {
    Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .output()
}

fn ck(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// A demo layout: OpenBao with PKI and AppRole, manifests, secrets and a config.
struct Setup {
    _dir: tempfile::TempDir,
    root: PathBuf,
    config: PathBuf,
    bao: DevServer,
    policy: String,
}

async fn setup(certs: &[(&str, &str)]) -> Setup {
    let bao = DevServer::start().await.unwrap();
    let admin = bao.admin();
    let pki = admin.setup_pki(PkiOptions::default()).await.unwrap();
    let (role_id, secret_id) = admin
        .approle_role("approle", "ck", &[&pki.policy], 0, "")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    for d in ["manifests", "secrets/default/vault-approle", "state", "certs"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("secrets/default/vault-approle/secretId"), secret_id).unwrap();
    std::fs::write(
        root.join("manifests/issuer.yaml"),
        format!(
            "apiVersion: cert-manager.io/v1\nkind: Issuer\nmetadata: {{name: vault, namespace: default}}\nspec:\n  vault:\n    server: {}\n    path: {}\n    auth:\n      appRole: {{path: approle, roleId: {role_id}, secretRef: {{name: vault-approle, key: secretId}}}}\n",
            bao.addr(),
            pki.sign_path
        ),
    )
    .unwrap();
    for (name, extra) in certs {
        write_cert(&root, name, extra);
    }
    let config = root.join("certkeeper.yaml");
    std::fs::write(
        &config,
        "manifests: manifests\nstateDir: state\nsecrets: {dir: secrets}\noutputs: {dir: \"certs/{namespace}/{secretName}\"}\n",
    )
    .unwrap();
    Setup {
        _dir: dir,
        root,
        config,
        bao,
        policy: pki.policy,
    }
}

fn write_cert(root: &Path, name: &str, extra: &str) {
    std::fs::write(
        root.join(format!("manifests/{name}.yaml")),
        format!(
            "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  secretName: {name}-tls\n  commonName: {name}.example.com\n  dnsNames: [{name}.example.com]\n  issuerRef: {{name: vault}}\n{extra}"
        ),
    )
    .unwrap();
}

fn status(config: &Path) -> Vec<Value> {
    let out = ck(&["status", "--config", config.to_str().unwrap(), "--output", "json"]);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("status json: {e}: {}", String::from_utf8_lossy(&out.stderr)))
}

fn row<'a>(rows: &'a [Value], name: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no row {name}: {rows:?}"))
}

/// Wait until `f` holds for the status rows.
fn wait_for(
    config: &Path,
    what: &str,
    bound: Duration,
    daemon: &Daemon,
    f: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + bound;
    loop {
        let rows = status(config);
        if f(&rows) {
            return rows;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {rows:#?}\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// The key in tls.key belongs to the leaf in tls.crt, and the leaf is for `cn`. Returns the serial.
fn assert_pair(dir: &Path, cn: &str) -> String {
    let crt = std::fs::read_to_string(dir.join("tls.crt")).unwrap();
    let key = std::fs::read_to_string(dir.join("tls.key")).unwrap();
    let key = certkeeper_core::pki::PrivateKey::from_pem(&key).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(crt.as_bytes()).unwrap();
    let leaf = pem.parse_x509().unwrap();
    assert_eq!(
        leaf.subject()
            .iter_common_name()
            .next()
            .and_then(|c| c.as_str().ok()),
        Some(cn)
    );
    assert_eq!(
        leaf.public_key().raw,
        key.public_key_der().as_slice(),
        "tls.key does not match tls.crt in {}",
        dir.display()
    );
    leaf.raw_serial_as_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issues_renews_restarts_and_renews_on_request() {
    let s = setup(&[
        ("web", "  duration: 1h\n  renewBefore: 59m\n  privateKey: {algorithm: ECDSA, size: 256}\n"),
        ("api", "  duration: 2h\n  privateKey: {algorithm: ECDSA, size: 256, rotationPolicy: Never}\n  additionalOutputFormats: [{type: CombinedPEM}, {type: DER}]\n"),
    ])
    .await;
    let daemon = Daemon::start(&s.config);
    let rows = wait_for(&s.config, "both issued", Duration::from_secs(60), &daemon, |r| {
        r.len() == 2 && r.iter().all(|x| x["ready"] == true)
    });
    assert_eq!(row(&rows, "default/web")["revision"], 1);
    let certs = s.root.join("certs/default");
    let web1 = assert_pair(&certs.join("web-tls"), "web.example.com");
    let api1 = assert_pair(&certs.join("api-tls"), "api.example.com");
    let api_key1 = std::fs::read(certs.join("api-tls/tls.key")).unwrap();
    assert!(certs.join("api-tls/tls-combined.pem").exists() && certs.join("api-tls/key.der").exists());
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(certs.join("web-tls/tls.key"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);

    // web renews ~1 minute after issue (renewBefore 59m of 1h, spread earlier by up to 6 s).
    let rows = wait_for(&s.config, "web renewed", Duration::from_secs(150), &daemon, |r| {
        row(r, "default/web")["revision"] == 2
    });
    assert_eq!(row(&rows, "default/api")["revision"], 1, "api is not due");
    let web2 = assert_pair(&certs.join("web-tls"), "web.example.com");
    assert_ne!(web1, web2);

    // Restart: nothing is re-issued.
    assert!(daemon.stop().success());
    let before = status(&s.config);
    let daemon = Daemon::start(&s.config);
    std::thread::sleep(Duration::from_secs(5));
    let after = status(&s.config);
    assert_eq!(
        row(&after, "default/api")["serial"],
        row(&before, "default/api")["serial"]
    );
    assert_eq!(assert_pair(&certs.join("api-tls"), "api.example.com"), api1);

    // Renew on request; rotationPolicy Never keeps api's key.
    let out = ck(&[
        "renew",
        "--config",
        s.config.to_str().unwrap(),
        "api",
        "--wait",
        "60",
    ]);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        daemon.log()
    );
    let api2 = assert_pair(&certs.join("api-tls"), "api.example.com");
    assert_ne!(api1, api2);
    assert_eq!(
        std::fs::read(certs.join("api-tls/tls.key")).unwrap(),
        api_key1,
        "rotationPolicy Never keeps the key"
    );
    drop(s.bao);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_removed_then_restored_recovers_on_renew() {
    let s = setup(&[("web", "  privateKey: {algorithm: ECDSA, size: 256}\n")]).await;
    // Take the signing right away before the first issuance.
    let admin = s.bao.admin();
    let original = admin
        .read(&format!("sys/policies/acl/{}", s.policy))
        .await
        .unwrap()["data"]["policy"]
        .as_str()
        .unwrap()
        .to_owned();
    admin
        .put_policy(&s.policy, "path \"sys/nothing\" { capabilities = [\"read\"] }")
        .await
        .unwrap();
    let daemon = Daemon::start(&s.config);
    let rows = wait_for(
        &s.config,
        "a recorded failure",
        Duration::from_secs(30),
        &daemon,
        |r| !row(r, "default/web")["lastFailure"].is_null(),
    );
    let failure = &row(&rows, "default/web")["lastFailure"];
    assert_eq!(failure["class"], "auth_rejected", "{failure}");
    assert!(failure["message"].as_str().unwrap().contains("permission denied"));
    assert_ne!(failure["nextAttempt"], "on change");
    // status exits 1 while a certificate is not ready.
    assert_eq!(
        ck(&["status", "--config", s.config.to_str().unwrap()])
            .status
            .code(),
        Some(1)
    );

    admin.put_policy(&s.policy, &original).await.unwrap();
    let out = ck(&[
        "renew",
        "--config",
        s.config.to_str().unwrap(),
        "web",
        "--wait",
        "60",
    ]);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        daemon.log()
    );
    let rows = status(&s.config);
    assert_eq!(row(&rows, "default/web")["ready"], true);
    assert!(row(&rows, "default/web")["lastFailure"].is_null());
    assert_eq!(
        ck(&["status", "--config", s.config.to_str().unwrap()])
            .status
            .code(),
        Some(0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_manifests_are_reported_and_lose_nothing() {
    let s = setup(&[("web", "  privateKey: {algorithm: ECDSA, size: 256}\n")]).await;
    let cfg = s.config.to_str().unwrap().to_owned();
    let out = ck(&["check", "--config", &cfg]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Issuer/default/vault"));

    let daemon = Daemon::start(&s.config);
    wait_for(&s.config, "issued", Duration::from_secs(60), &daemon, |r| {
        row(r, "default/web")["ready"] == true
    });
    let dir = s.root.join("certs/default/web-tls");
    let serial = assert_pair(&dir, "web.example.com");

    // An invalid edit: reported with file and field, the daemon keeps running, files stay.
    write_cert(&s.root, "web", "  privateKey: {algorithm: ECDSA, size: 2048}\n");
    let out = ck(&["check", "--config", &cfg]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("web.yaml") && err.contains("spec.privateKey.size"),
        "{err}"
    );
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        daemon.log().contains("keeping the last good configuration"),
        "{}",
        daemon.log()
    );
    assert_eq!(assert_pair(&dir, "web.example.com"), serial);

    // A valid edit of the spec re-issues at once.
    write_cert(&s.root, "web", "  privateKey: {algorithm: ECDSA, size: 384}\n");
    wait_for(
        &s.config,
        "re-issued after spec change",
        Duration::from_secs(30),
        &daemon,
        |r| row(r, "default/web")["revision"] == 2 && row(r, "default/web")["ready"] == true,
    );
    assert_ne!(assert_pair(&dir, "web.example.com"), serial);
    assert!(daemon.stop().success());

    // A broken configuration file: exit 2 naming the file and field.
    std::fs::write(
        &s.config,
        "manifests: manifests\nstateDir: state\nlisten: nowhere\n",
    )
    .unwrap();
    let out = ck(&["status", "--config", &cfg]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("listen"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// kill -9 at several points while forty certificates are being issued: every directory that
/// exists always holds a key that matches its certificate, and a restart completes the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_issuance_never_leaves_a_mismatched_pair() {
    let names: Vec<String> = (0..40).map(|i| format!("k{i}")).collect();
    let specs: Vec<(&str, &str)> = names
        .iter()
        .map(|n| (n.as_str(), "  privateKey: {algorithm: ECDSA, size: 256}\n"))
        .collect();
    let s = setup(&specs).await;
    let certs = s.root.join("certs/default");
    let check_pairs = || {
        let mut complete = 0;
        for n in &names {
            let dir = certs.join(format!("{n}-tls"));
            if dir.join("tls.crt").exists() {
                assert_pair(&dir, &format!("{n}.example.com"));
                complete += 1;
            }
        }
        complete
    };
    // First issuance, then crash repeatedly while everything is being re-issued (renew --all
    // requested before each start), so the kill lands in the middle of writes.
    let daemon = Daemon::start(&s.config);
    wait_for(&s.config, "all issued", Duration::from_secs(90), &daemon, |r| {
        r.iter().all(|x| x["ready"] == true)
    });
    drop(daemon);
    let cfg = s.config.to_str().unwrap().to_owned();
    for delay_ms in [10u64, 20, 30, 40, 50, 60, 80, 110] {
        let out = ck(&["renew", "--config", &cfg, "--all", "--wait", "0"]);
        assert!(out.status.success());
        let daemon = Daemon::start(&s.config);
        std::thread::sleep(Duration::from_millis(delay_ms));
        nix_kill(daemon.child.id(), "KILL").unwrap();
        drop(daemon);
        let complete = check_pairs();
        let revisions: u64 = status(&s.config)
            .iter()
            .map(|r| r["revision"].as_u64().unwrap())
            .sum();
        eprintln!(
            "kill -9 after {delay_ms} ms: {complete}/40 pairs consistent, revisions so far {revisions}"
        );
    }
    let daemon = Daemon::start(&s.config);
    wait_for(
        &s.config,
        "all issued after the crashes",
        Duration::from_secs(90),
        &daemon,
        |r| r.len() == 40 && r.iter().all(|x| x["ready"] == true),
    );
    assert_eq!(check_pairs(), 40);
}
