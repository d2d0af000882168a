//! Helpers shared by the end-to-end tests of the `certkeeper` binary.
#![allow(clippy::unwrap_used, dead_code)] // tests state their expectations by unwrapping; not every test file uses every helper

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use certkeeper_testkit::{DevServer, PkiOptions};
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_certkeeper");

/// A certkeeper child process, stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Daemon {
    pub child: Child,
    log: PathBuf,
}

impl Daemon {
    pub fn start(config: &Path) -> Daemon {
        Self::start_with_env(config, &[])
    }

    /// As [`Daemon::start`], with `env` added to the daemon's environment.
    pub fn start_with_env(config: &Path, env: &[(&str, &str)]) -> Daemon {
        let args = [
            "run".to_owned(),
            "--config".to_owned(),
            config.display().to_string(),
        ];
        Self::spawn(Path::new(BIN), &args, config, env)
    }

    /// `program` (another build of certkeeper, e.g. a package's) with `args`, whose last is the
    /// configuration file.
    pub fn start_program(program: &Path, args: &[String]) -> Daemon {
        let config = PathBuf::from(args.last().unwrap());
        Self::spawn(program, args, &config, &[])
    }

    fn spawn(program: &Path, args: &[String], config: &Path, env: &[(&str, &str)]) -> Daemon {
        let log = config.with_file_name(format!("daemon-{}.log", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = Command::new(program)
            .args(args)
            .env("CERTKEEPER_LOG", "info")
            .envs(env.iter().copied())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        Daemon { child, log }
    }

    pub fn stop(mut self) -> std::process::ExitStatus {
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

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn nix_kill(pid: u32, sig: &str) -> std::io::Result<Output> {
    Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .output()
}

pub fn ck(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// A certkeeper layout: manifests (an AppRole Issuer `default/vault` and the given
/// Certificates), the AppRole secret, a config file (plus `config_extra` lines), empty state.
pub struct Layout {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
    pub config: PathBuf,
}

pub struct Vault<'a> {
    pub addr: &'a str,
    pub sign_path: &'a str,
    pub role_id: &'a str,
    pub secret_id: &'a str,
}

pub fn layout(vault: &Vault<'_>, certs: &[(&str, &str)], config_extra: &str) -> Layout {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    for d in ["manifests", "secrets/default/vault-approle", "state", "certs"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(
        root.join("secrets/default/vault-approle/secretId"),
        vault.secret_id,
    )
    .unwrap();
    std::fs::write(
        root.join("manifests/issuer.yaml"),
        format!(
            "apiVersion: cert-manager.io/v1\nkind: Issuer\nmetadata: {{name: vault, namespace: default}}\nspec:\n  vault:\n    server: {}\n    path: {}\n    auth:\n      appRole: {{path: approle, roleId: {}, secretRef: {{name: vault-approle, key: secretId}}}}\n",
            vault.addr, vault.sign_path, vault.role_id
        ),
    )
    .unwrap();
    for (name, extra) in certs {
        write_cert(&root, name, extra);
    }
    let config = root.join("certkeeper.yaml");
    std::fs::write(
        &config,
        format!("manifests: manifests\nstateDir: state\nsecrets: {{dir: secrets}}\noutputs: {{dir: \"certs/{{namespace}}/{{secretName}}\"}}\n{config_extra}"),
    )
    .unwrap();
    Layout {
        _dir: dir,
        root,
        config,
    }
}

/// A dev server with PKI and AppRole, and a [`Layout`] using it.
pub struct Setup {
    pub layout: Layout,
    pub root: PathBuf,
    pub config: PathBuf,
    pub bao: DevServer,
    pub policy: String,
    pub sign_path: String,
}

pub async fn setup(certs: &[(&str, &str)]) -> Setup {
    setup_with(PkiOptions::default(), certs, "").await
}

pub async fn setup_with(pki: PkiOptions, certs: &[(&str, &str)], config_extra: &str) -> Setup {
    let bao = DevServer::start().await.unwrap();
    let admin = bao.admin();
    let pki = admin.setup_pki(pki).await.unwrap();
    let (role_id, secret_id) = admin
        .approle_role("approle", "ck", &[&pki.policy], 0, "")
        .await
        .unwrap();
    let addr = bao.addr();
    let vault = Vault {
        addr: &addr,
        sign_path: &pki.sign_path,
        role_id: &role_id,
        secret_id: &secret_id,
    };
    let layout = layout(&vault, certs, config_extra);
    Setup {
        root: layout.root.clone(),
        config: layout.config.clone(),
        layout,
        bao,
        policy: pki.policy,
        sign_path: pki.sign_path,
    }
}

/// A policy that grants nothing certkeeper uses: Vault answers its sign requests 403.
pub const NO_RIGHTS_POLICY: &str = "path \"sys/nothing\" { capabilities = [\"read\"] }";

/// The HCL text of ACL policy `name`.
pub async fn policy_text(admin: &certkeeper_testkit::Admin, name: &str) -> String {
    admin.read(&format!("sys/policies/acl/{name}")).await.unwrap()["data"]["policy"]
        .as_str()
        .unwrap()
        .to_owned()
}

pub fn write_cert(root: &Path, name: &str, extra: &str) {
    std::fs::write(
        root.join(format!("manifests/{name}.yaml")),
        format!(
            "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  secretName: {name}-tls\n  commonName: {name}.example.com\n  dnsNames: [{name}.example.com]\n  issuerRef: {{name: vault}}\n{extra}"
        ),
    )
    .unwrap();
}

pub fn status(config: &Path) -> Vec<Value> {
    let out = ck(&["status", "--config", config.to_str().unwrap(), "--output", "json"]);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("status json: {e}: {}", String::from_utf8_lossy(&out.stderr)))
}

pub fn row<'a>(rows: &'a [Value], name: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no row {name}: {rows:?}"))
}

/// Wait until `f` holds for the status rows.
pub fn wait_for(
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
pub fn assert_pair(dir: &Path, cn: &str) -> String {
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

/// The body of `GET http://127.0.0.1:<port><path>` (the daemon's HTTP endpoints).
pub async fn get(port: u16, path: &str) -> String {
    reqwest::get(format!("http://127.0.0.1:{port}{path}"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The exit code of `certkeeper status`.
pub fn status_code(config: &Path) -> Option<i32> {
    ck(&["status", "--config", config.to_str().unwrap()])
        .status
        .code()
}

/// Certificate `name`'s `certkeeper_certificate_failure_class` series in a metrics text.
pub fn failure_class_series(metrics: &str, name: &str) -> Vec<String> {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("certkeeper_certificate_failure_class{{name=\"{name}\"")))
        .map(str::to_owned)
        .collect()
}

/// The SANs of the leaf in `dir/tls.crt`, as x509-parser prints them (`DNSName(a.example.com)`).
pub fn leaf_sans(dir: &Path) -> Vec<String> {
    let pem = std::fs::read_to_string(dir.join("tls.crt")).unwrap();
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    let leaf = block.parse_x509().unwrap();
    leaf.subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// `certkeeper renew NAME --wait 60`, which must succeed (the daemon's log shown if not).
pub fn renew(config: &Path, name: &str, daemon: &Daemon) {
    let out = ck(&[
        "renew",
        "--config",
        config.to_str().unwrap(),
        name,
        "--wait",
        "60",
    ]);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        daemon.log()
    );
}
