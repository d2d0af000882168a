//! Independent readers of the keystores certkeeper writes: Java's `keytool` for JKS (Debian's
//! JDK, installed by scripts/test) and `openssl` for keys and PKCS#12.
//!
//! `keytool` follows the pattern of `CERTKEEPER_BAO`: `$CERTKEEPER_KEYTOOL` names the binary and
//! makes it required (a missing file fails the test); without it, `keytool` is looked up on
//! PATH, and a test may skip, saying so, only when neither gives one.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use anyhow::{Context, Result, bail};

/// The `keytool` to use: `Ok(None)` only when `CERTKEEPER_KEYTOOL` is unset and PATH has none.
pub fn keytool() -> Result<Option<PathBuf>> {
    optional_tool(
        "CERTKEEPER_KEYTOOL",
        "keytool",
        "install a JDK (scripts/test: apt-get install default-jdk-headless)",
    )
}

/// A tool a test needs: `$variable` names it and makes it required (a missing file is an error
/// saying `install`); without it, `binary` is looked up on PATH, and `Ok(None)` means the test
/// may skip, saying so.
pub fn optional_tool(variable: &str, binary: &str, install: &str) -> Result<Option<PathBuf>> {
    if let Some(p) = std::env::var_os(variable).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        if !p.is_file() {
            bail!("{variable}={} is not a file; {install}", p.display());
        }
        return Ok(Some(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    Ok(std::env::split_paths(&path)
        .map(|dir| dir.join(binary))
        .find(|p| p.is_file()))
}

/// Runs `program args`, feeding `stdin`; fails with its stderr when it exits non-zero.
pub fn run(program: &Path, args: &[&str], stdin: &[u8]) -> Result<Output> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {}", program.display()))?;
    if let Some(mut input) = child.stdin.take() {
        // A reader that does not read stdin closes it early; that is not an error here.
        let _ = input.write_all(stdin);
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "{} {args:?} failed ({}): {}{}",
            program.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}
