//! A local AWS STS for the AWS auth tests: moto's server (`moto_server`, PyPI `moto[server]`,
//! installed by scripts/test), on 127.0.0.1 only. It answers `GetCallerIdentity` (the request
//! OpenBao's aws auth method replays, to `<sts_endpoint>//`, pointed here by its `config/client`
//! `sts_endpoint`; it answers `Content-Type: text/xml` as STS does, but its refusals of a
//! signature as `text/html`, which the plugin reports as `body of GetCallerIdentity is
//! invalid`) and
//! `AssumeRoleWithWebIdentity` (the IRSA exchange certkeeper makes); it does not check
//! signatures or web identity tokens, and assumed-role credentials it issued report the role's
//! ARN back, which is what the tests need.
//!
//! `moto_server` follows the pattern of `CERTKEEPER_KEYTOOL`: `$CERTKEEPER_STS` names the binary
//! and makes it required (a missing file fails the test); without it, `moto_server` is looked up
//! on PATH, and a test may skip, saying so, only when neither gives one.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use tempfile::TempDir;

use crate::ports::free_port;
use crate::process::ManagedProcess;
use crate::readers::optional_tool;

/// Readiness bound: moto imports every service model at start (~2-4 s on 2 cores).
const READY: Duration = Duration::from_secs(60);

/// The account moto's answers name.
pub const STS_ACCOUNT: &str = "123456789012";

/// The `moto_server` to use: `Ok(None)` only when `CERTKEEPER_STS` is unset and PATH has none.
pub fn sts_emulator() -> Result<Option<PathBuf>> {
    optional_tool(
        "CERTKEEPER_STS",
        "moto_server",
        "install moto (scripts/test: pip install 'moto[server]==5.2.1')",
    )
}

/// A running `moto_server` on loopback.
#[derive(Debug)]
pub struct StsEmulator {
    proc: ManagedProcess,
    port: u16,
    _dir: TempDir,
}

impl StsEmulator {
    /// Starts `binary` (see [`sts_emulator`]) and waits until it answers. Signatures are not
    /// checked: any access key is accepted, and web identity tokens are not verified.
    pub async fn start(binary: &std::path::Path) -> Result<Self> {
        Self::launch(binary, false).await
    }

    /// Starts `binary` checking every request's SigV4 signature (moto's
    /// `INITIAL_NO_AUTH_ACTION_COUNT`: after the first two requests, which create IAM user
    /// `user` and its access key here, a request signed with any other key or a wrong signature
    /// is refused with `SignatureDoesNotMatch` / `InvalidClientTokenId`). Returns the emulator
    /// and the user's access key id and secret key. Web identities cannot be exchanged on it.
    pub async fn start_verifying(binary: &std::path::Path, user: &str) -> Result<(Self, String, String)> {
        let sts = Self::launch(binary, true).await?;
        let http = reqwest::Client::new();
        // The two unauthenticated actions moto allows; the header only names the service.
        let unsigned = "AWS4-HMAC-SHA256 Credential=AKIAUNSIGNED/20260101/us-east-1/iam/aws4_request, \
                        SignedHeaders=host, Signature=0";
        let mut answers = Vec::new();
        for action in ["CreateUser", "CreateAccessKey"] {
            let resp = http
                .post(sts.url())
                .header("Host", "iam.amazonaws.com")
                .header("Authorization", unsigned)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(format!("Action={action}&Version=2010-05-08&UserName={user}"))
                .send()
                .await?;
            let (status, text) = (resp.status(), resp.text().await?);
            if !status.is_success() {
                bail!("moto {action}: {status}: {text}");
            }
            answers.push(text);
        }
        let field = |name: &str| -> Result<String> {
            let (open, close) = (format!("<{name}>"), format!("</{name}>"));
            let text = &answers[1];
            let start = text.find(&open).map(|i| i + open.len());
            let end = text.find(&close);
            match (start, end) {
                (Some(s), Some(e)) if s <= e => Ok(text[s..e].to_owned()),
                _ => bail!("moto CreateAccessKey answered without {name}: {text}"),
            }
        };
        let (key, secret) = (field("AccessKeyId")?, field("SecretAccessKey")?);
        Ok((sts, key, secret))
    }

    async fn launch(binary: &std::path::Path, verify: bool) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("certkeeper-sts").tempdir()?;
        let port = free_port();
        let mut cmd = Command::new(binary);
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        if verify {
            cmd.env("INITIAL_NO_AUTH_ACTION_COUNT", "2");
        } else {
            cmd.env_remove("INITIAL_NO_AUTH_ACTION_COUNT");
        }
        let mut proc = ManagedProcess::spawn("moto_server", cmd, &dir.path().join("moto.log"))?;
        let url = format!("http://127.0.0.1:{port}/moto-api/");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + READY;
        loop {
            if let Ok(resp) = http.get(&url).send().await
                && resp.status().is_success()
            {
                break;
            }
            if !proc.is_running() {
                bail!("moto_server exited: {}", proc.log_tail(20));
            }
            if Instant::now() > deadline {
                bail!(
                    "moto_server did not answer within {READY:?}: {}",
                    proc.log_tail(20)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(StsEmulator {
            proc,
            port,
            _dir: dir,
        })
    }

    /// `http://127.0.0.1:PORT`: the STS endpoint for both OpenBao and certkeeper.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log_tail(&self) -> String {
        self.proc.log_tail(30)
    }
}
