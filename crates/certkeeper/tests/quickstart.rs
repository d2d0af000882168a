//! The README's quick start, "Standalone, from the Debian package", step by step: the package
//! `scripts/deb` builds from the binary under test, unpacked (`dpkg-deb -x`, as `apt install`
//! would place it, under a scratch root instead of `/`); the Vault token in the file the
//! packaged configuration's `secrets.dir` names; the README's own `web.yaml` (read from README.md,
//! its Vault address and path pointed at a real OpenBao); certkeeper started with the unit's
//! `ExecStart` command line; `certkeeper status` and the certificate files where the README says.
//! The packaged configuration's absolute paths are moved under the scratch root and its listen
//! port to a free one (the only edits). Needs dpkg-deb, dpkg-shlibdeps and strip (scripts/test
//! installs them); skipped, saying so, without them.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use certkeeper_testkit::{DevServer, PkiOptions, free_port};
use common::{BIN, Daemon, leaf_sans, row, wait_for};

/// The first fenced ```yaml block of the README after `heading`.
fn readme_yaml(heading: &str) -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let section = &readme[readme.find(heading).unwrap_or_else(|| panic!("no {heading}"))..];
    let start = section.find("```yaml\n").unwrap() + "```yaml\n".len();
    let end = start + section[start..].find("```").unwrap();
    section[start..end].to_owned()
}

/// The `ExecStart=` command line of the packaged unit, its program and arguments.
fn exec_start(root: &Path) -> Vec<String> {
    let unit = std::fs::read_to_string(root.join("lib/systemd/system/certkeeper.service")).unwrap();
    let line = unit.lines().find_map(|l| l.strip_prefix("ExecStart=")).unwrap();
    line.split_whitespace().map(str::to_owned).collect()
}

fn on_path(tool: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|d| d.join(tool).is_file())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_from_the_package_as_the_readme_says() {
    if let Some(missing) = ["dpkg-deb", "dpkg-shlibdeps", "strip"]
        .into_iter()
        .find(|t| !on_path(t))
    {
        eprintln!("SKIPPED: no {missing} on PATH (apt-get install dpkg-dev binutils)");
        return;
    }
    let bao = DevServer::start().await.unwrap();
    let admin = bao.admin();
    let pki = admin.setup_pki(PkiOptions::default()).await.unwrap();
    let token = admin.create_token(&[&pki.policy], "1h", true, 0).await.unwrap();

    // scripts/deb, then the package's files in place (under a scratch root).
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/deb"))
        .arg(BIN)
        .arg(dir.path().join("debian"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scripts/deb: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deb = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    let root = dir.path().join("root");
    let unpacked = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&root)
        .output()
        .unwrap();
    assert!(unpacked.status.success(), "{unpacked:?}");
    // What the package's postinst creates (apt install): the manifests and secrets directories.
    for d in [
        "etc/certkeeper/manifests",
        "etc/certkeeper/secrets",
        "var/lib/certkeeper",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let base = root.to_str().unwrap();
    let config_path = root.join("etc/certkeeper/certkeeper.yaml");
    let port = free_port();
    let config = std::fs::read_to_string(&config_path)
        .unwrap()
        .replace("/etc/certkeeper", &format!("{base}/etc/certkeeper"))
        .replace("/var/lib/certkeeper", &format!("{base}/var/lib/certkeeper"))
        .replace("listen: 127.0.0.1:9402", &format!("listen: 127.0.0.1:{port}"));
    std::fs::write(&config_path, config).unwrap();

    // The token, where `secrets.dir` puts Secret default/vault-token, key token.
    let token_file = root.join("etc/certkeeper/secrets/default/vault-token/token");
    std::fs::create_dir_all(token_file.parent().unwrap()).unwrap();
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    // The README's web.yaml, pointed at this OpenBao.
    let web = readme_yaml("### Standalone, from the Debian package")
        .replace("https://vault.example.com:8200", &bao.addr())
        .replace("pki_int/sign/example-dot-com", &pki.sign_path);
    std::fs::write(root.join("etc/certkeeper/manifests/web.yaml"), web).unwrap();

    // systemctl enable --now certkeeper: the unit's command line, paths under the root.
    let command: Vec<String> = exec_start(&root)
        .into_iter()
        .map(|a| match a.strip_prefix('/') {
            Some(path) if a.starts_with("/usr/bin") || a.starts_with("/etc") => format!("{base}/{path}"),
            _ => a,
        })
        .collect();
    assert_eq!(command[0], format!("{base}/usr/bin/certkeeper"));
    assert_eq!(command[1..3], ["run", "--config"]);
    assert_eq!(command[3], config_path.to_str().unwrap());
    let daemon = Daemon::start_program(Path::new(&command[0]), &command[1..]);

    // certkeeper status --config /etc/certkeeper/certkeeper.yaml
    let rows = wait_for(
        &config_path,
        "web ready",
        Duration::from_secs(60),
        &daemon,
        |rows| {
            rows.iter()
                .any(|r| r["name"] == "default/web" && r["ready"] == true)
        },
    );
    assert_eq!(row(&rows, "default/web")["issuer"], "Issuer/default/vault");
    let status = Command::new(&command[0])
        .args(["status", "--config"])
        .arg(&config_path)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stdout)
    );
    // ls /var/lib/certkeeper/certs/default/web-tls/
    let certs = root.join("var/lib/certkeeper/certs/default/web-tls");
    for file in ["tls.crt", "tls.key", "ca.crt"] {
        assert!(certs.join(file).is_file(), "no {file} in {}", certs.display());
    }
    assert_eq!(leaf_sans(&certs), ["DNSName(web.example.com)"]);
    let pem = std::fs::read_to_string(certs.join("tls.crt")).unwrap();
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    let leaf = block.parse_x509().unwrap();
    let key = std::fs::read_to_string(certs.join("tls.key")).unwrap();
    let key = certkeeper_core::pki::PrivateKey::from_pem(&key).unwrap();
    assert_eq!(leaf.public_key().raw, key.public_key_der().as_slice());
    daemon.stop();
}
