//! Independent readers of the keystores certkeeper writes: Java's `keytool` for JKS (Debian's
//! JDK, installed by scripts/test) and `openssl` for keys and PKCS#12.
//!
//! `keytool` follows the pattern of `CERTKEEPER_BAO`: `$CERTKEEPER_KEYTOOL` names the binary and
//! makes it required (a missing file fails the test); without it, `keytool` is looked up on
//! PATH, and a test may skip, saying so, only when neither gives one.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use anyhow::{Context, Result, bail, ensure};

/// The `keytool` to use: `Ok(None)` only when `CERTKEEPER_KEYTOOL` is unset and PATH has none.
pub fn keytool() -> Result<Option<PathBuf>> {
    optional_tool(
        "CERTKEEPER_KEYTOOL",
        "keytool",
        "install a JDK (scripts/test: apt-get install default-jdk-headless)",
    )
}

/// Prometheus's `promtool` (Debian's `prometheus` package, installed by scripts/test):
/// `Ok(None)` only when `CERTKEEPER_PROMTOOL` is unset and PATH has none.
pub fn promtool() -> Result<Option<PathBuf>> {
    optional_tool(
        "CERTKEEPER_PROMTOOL",
        "promtool",
        "install Prometheus's tools (scripts/test: apt-get install prometheus)",
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

/// `openssl args`, fed `stdin`; its stdout as text.
pub fn openssl(args: &[&str], stdin: &[u8]) -> Result<String> {
    Ok(String::from_utf8(run(Path::new("openssl"), args, stdin)?.stdout)?)
}

/// The DER of every PEM block labelled `label` in `text`.
pub fn pem_blocks(text: &str, label: &str) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for pem in x509_parser::pem::Pem::iter_from_buffer(text.as_bytes()) {
        let pem = pem.context("parsing PEM")?;
        if pem.label == label {
            out.push(pem.contents);
        }
    }
    Ok(out)
}

/// `tls.key` of `dir` as PKCS#8, converted by openssl (not by certkeeper).
pub fn pkcs8_by_openssl(dir: &Path) -> Result<Vec<Vec<u8>>> {
    let key = std::fs::read(dir.join("tls.key"))?;
    pem_blocks(&openssl(&["pkcs8", "-topk8", "-nocrypt"], &key)?, "PRIVATE KEY")
}

/// Whether this openssl verifies PBMAC1 (PKCS#12 profile Modern2026): 3.4 and later.
pub fn openssl_knows_pbmac1() -> Result<bool> {
    let version = openssl(&["version"], b"")?;
    let mut n = version
        .split_whitespace()
        .nth(1)
        .unwrap_or("0")
        .split('.')
        .map(|x| x.parse::<u32>().unwrap_or(0));
    Ok((n.next().unwrap_or(0), n.next().unwrap_or(0)) >= (3, 4))
}

/// The extra `openssl pkcs12` arguments for a Modern2026 file: `-nomacver` when this openssl
/// cannot verify PBMAC1 (it still reads the contents; [`check_pkcs12`] then has the MAC
/// verified by [`verify_mac_with_python`]).
pub fn pbmac1_args() -> Result<&'static [&'static str]> {
    Ok(if openssl_knows_pbmac1()? {
        &[]
    } else {
        &["-nomacver"]
    })
}

/// Verifies the MAC of a PKCS#12 `file` (read with `-nomacver` by an openssl older than 3.4)
/// with another reader: Python's `cryptography` (installed with moto by scripts/test), whose
/// own OpenSSL (3.4 or later) verifies PBMAC1. A wrong password must fail, so the MAC is known
/// to be checked.
pub fn verify_mac_with_python(file: &Path, password: &str) -> Result<()> {
    const SCRIPT: &str = r#"
import sys
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.hazmat.backends.openssl import backend
if backend.openssl_version_number() < 0x30400000:
    sys.exit("cryptography's OpenSSL cannot verify PBMAC1: " + backend.openssl_version_text())
data = open(sys.argv[1], "rb").read()
pkcs12.load_pkcs12(data, sys.argv[2].encode())
try:
    pkcs12.load_pkcs12(data, sys.argv[2].encode() + b"x")
    sys.exit("a wrong password was accepted")
except ValueError:
    pass
"#;
    let file = file.to_str().context("a UTF-8 path")?;
    run(Path::new("python3"), &["-c", SCRIPT, file, password], b"")
        .with_context(|| format!("{file}: MAC verified by Python's cryptography"))?;
    Ok(())
}

/// `openssl pkcs12 -info` on a file: its report (stderr) and the PEM it extracts (stdout).
pub fn openssl_pkcs12(file: &Path, password: &str, extra: &[&str]) -> Result<String> {
    let pass = format!("pass:{password}");
    let file = file.to_str().context("a UTF-8 path")?;
    let mut args = vec!["pkcs12", "-in", file, "-passin", &pass, "-nodes", "-info"];
    args.extend_from_slice(extra);
    let out = run(Path::new("openssl"), &args, b"")?;
    Ok(format!(
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    ))
}

/// Reads keystore.p12 and truststore.p12 of `dir` with openssl: the key is tls.key, the first
/// certificate tls.crt's leaf, the trust store holds ca.crt; `report` lines name the profile's
/// algorithms.
pub fn check_pkcs12(dir: &Path, password: &str, extra: &[&str], report: &[&str]) -> Result<()> {
    if extra.contains(&"-nomacver") {
        for file in ["keystore.p12", "truststore.p12"] {
            verify_mac_with_python(&dir.join(file), password)?;
        }
    }
    let keystore = openssl_pkcs12(&dir.join("keystore.p12"), password, extra)?;
    for line in report {
        ensure!(
            keystore.contains(line),
            "{}: {line:?} not in\n{keystore}",
            dir.display()
        );
    }
    ensure!(
        pem_blocks(&keystore, "PRIVATE KEY")? == pkcs8_by_openssl(dir)?,
        "{}: keystore.p12's key is not tls.key",
        dir.display()
    );
    let crt = std::fs::read_to_string(dir.join("tls.crt"))?;
    ensure!(
        pem_blocks(&keystore, "CERTIFICATE")?.first() == pem_blocks(&crt, "CERTIFICATE")?.first(),
        "{}: keystore.p12's first certificate is not tls.crt's leaf",
        dir.display()
    );
    let trust = openssl_pkcs12(&dir.join("truststore.p12"), password, extra)?;
    let ca = std::fs::read_to_string(dir.join("ca.crt"))?;
    ensure!(
        pem_blocks(&trust, "CERTIFICATE")? == pem_blocks(&ca, "CERTIFICATE")?,
        "{}: truststore.p12 is not ca.crt",
        dir.display()
    );
    ensure!(
        pem_blocks(&trust, "PRIVATE KEY")?.is_empty(),
        "{}: a key in truststore.p12",
        dir.display()
    );
    Ok(())
}

/// keystore.jks and truststore.jks of `dir`, read by keytool: the key entry under `alias` holds
/// tls.key (exported through a PKCS#12 conversion keytool makes, read by openssl) and tls.crt's
/// chain; `ca` is ca.crt, trusted, in both files; a wrong password fails the integrity check.
pub fn check_jks(keytool: &Path, dir: &Path, password: &str, alias: &str) -> Result<()> {
    let store = dir.join("keystore.jks");
    let store_s = store.to_str().context("a UTF-8 path")?;
    let list = |file: &str| -> Result<String> {
        let args = [
            "-list",
            "-v",
            "-storetype",
            "JKS",
            "-keystore",
            file,
            "-storepass",
            password,
        ];
        Ok(String::from_utf8(run(keytool, &args, b"")?.stdout)?)
    };
    let listed = list(store_s)?;
    ensure!(listed.contains("Your keystore contains 2 entries"), "{listed}");
    ensure!(listed.contains(&format!("Alias name: {alias}\n")), "{listed}");
    ensure!(listed.contains("Entry type: PrivateKeyEntry"), "{listed}");
    ensure!(
        listed.contains("Alias name: ca\n") && listed.contains("Entry type: trustedCertEntry"),
        "{listed}"
    );
    let crt = std::fs::read_to_string(dir.join("tls.crt"))?;
    let chain_len = pem_blocks(&crt, "CERTIFICATE")?.len();
    ensure!(
        listed.contains(&format!("Certificate chain length: {chain_len}")),
        "{listed}"
    );

    // The key itself: keytool re-encodes the entry as PKCS#12, openssl reads that.
    let converted = dir.with_extension("converted.p12");
    let converted_s = converted.to_str().context("a UTF-8 path")?;
    run(
        keytool,
        &[
            "-importkeystore",
            "-noprompt",
            "-srcstoretype",
            "JKS",
            "-srckeystore",
            store_s,
            "-srcstorepass",
            password,
            "-srcalias",
            alias,
            "-deststoretype",
            "PKCS12",
            "-destkeystore",
            converted_s,
            "-deststorepass",
            password,
        ],
        b"",
    )?;
    let exported = openssl_pkcs12(&converted, password, &[])?;
    ensure!(
        pem_blocks(&exported, "PRIVATE KEY")? == pkcs8_by_openssl(dir)?,
        "{}: keystore.jks's key is not tls.key",
        dir.display()
    );
    ensure!(
        pem_blocks(&exported, "CERTIFICATE")? == pem_blocks(&crt, "CERTIFICATE")?,
        "{}: keystore.jks's chain is not tls.crt",
        dir.display()
    );

    let trust = dir.join("truststore.jks");
    let trust_s = trust.to_str().context("a UTF-8 path")?;
    let listed = list(trust_s)?;
    ensure!(listed.contains("Your keystore contains 1 entry"), "{listed}");
    let ca_out = run(
        keytool,
        &[
            "-exportcert",
            "-rfc",
            "-alias",
            "ca",
            "-keystore",
            trust_s,
            "-storepass",
            password,
        ],
        b"",
    )?;
    let ca = std::fs::read_to_string(dir.join("ca.crt"))?;
    ensure!(
        pem_blocks(&String::from_utf8(ca_out.stdout)?, "CERTIFICATE")? == pem_blocks(&ca, "CERTIFICATE")?,
        "{}: truststore.jks is not ca.crt",
        dir.display()
    );
    let wrong = [
        "-list",
        "-storetype",
        "JKS",
        "-keystore",
        store_s,
        "-storepass",
        "wrong-pass",
    ];
    ensure!(
        run(keytool, &wrong, b"").is_err(),
        "keytool read keystore.jks with a wrong password"
    );
    Ok(())
}

/// `openssl x509 -noout -text` of `dir/tls.crt`, names in RFC 2253 form.
pub fn x509_text(dir: &Path) -> Result<String> {
    let crt = std::fs::read(dir.join("tls.crt"))?;
    openssl(&["x509", "-noout", "-text", "-nameopt", "RFC2253"], &crt)
}

/// The line after the first line of `text` that contains `header`, trimmed.
pub fn line_after<'a>(text: &'a str, header: &str) -> Result<&'a str> {
    let mut lines = text.lines();
    lines
        .find(|l| l.contains(header))
        .with_context(|| format!("no {header} in\n{text}"))?;
    Ok(lines.next().context("nothing after the header")?.trim())
}

/// The `n` lines after openssl's critical Name Constraints header, trimmed (empty when absent).
pub fn name_constraint_lines(text: &str, n: usize) -> Vec<&str> {
    text.lines()
        .skip_while(|l| !l.contains("X509v3 Name Constraints: critical"))
        .skip(1)
        .take(n)
        .map(str::trim)
        .collect()
}
