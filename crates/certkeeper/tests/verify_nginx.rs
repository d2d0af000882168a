//! `verify` against a real nginx (Debian's package) serving the files certkeeper writes, through
//! the `certkeeper` binary and a real OpenBao: the reload hook runs, the served leaf is read back
//! and compared; a renewal is served after its reload; a broken nginx configuration makes the
//! reload fail, which is visible (status class `apply`, exit code, metric), retried, and clears
//! once the configuration is fixed; a server that keeps presenting another certificate is
//! reported by `verify` itself.
//!
//! Needs nginx: `CERTKEEPER_NGINX` names it and makes this test required (scripts/test installs
//! Debian's nginx-light and sets it); without it, nginx is looked up on PATH, and the test skips,
//! saying so, when there is none.
#![allow(clippy::unwrap_used)] // tests state their expectations by unwrapping

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use certkeeper_testkit::{Nginx, free_port, nginx_binary, pem_blocks};
use common::*;
use serde_json::Value;

/// The leaf nginx serves on `port` for SNI web.example.com, read by openssl (not certkeeper).
fn served_leaf(port: u16) -> Vec<u8> {
    let connect = format!("127.0.0.1:{port}");
    let out = certkeeper_testkit::run(
        Path::new("openssl"),
        &["s_client", "-connect", &connect, "-servername", "web.example.com"],
        b"",
    )
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    pem_blocks(&text, "CERTIFICATE").unwrap().remove(0)
}

/// The leaf nginx serves once `wanted` is: a reload is graceful (`nginx -s reload` returns
/// before the old workers stop accepting), so a connection right after certkeeper's `verify`
/// passed may still reach an old worker for a moment. Polled for at most 10 s; the last leaf
/// read is returned either way, for the assertion to show.
fn served_leaf_once(port: u16, wanted: &[u8]) -> Vec<u8> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let served = served_leaf(port);
        if served == wanted || std::time::Instant::now() >= deadline {
            return served;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The leaf of the `tls.crt` in `dir`.
fn written_leaf(dir: &Path) -> Vec<u8> {
    let crt = std::fs::read_to_string(dir.join("tls.crt")).unwrap();
    pem_blocks(&crt, "CERTIFICATE").unwrap().remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_serves_what_was_written_and_a_failed_reload_is_retried_until_fixed() {
    let Some(nginx_bin) = nginx_binary().unwrap() else {
        eprintln!(
            "SKIPPED the nginx verify test: no nginx on PATH and CERTKEEPER_NGINX unset (scripts/test installs Debian's nginx-light and sets it)"
        );
        return;
    };
    let s = setup(&[("web", "  privateKey: {algorithm: ECDSA, size: 256}\n")]).await;
    let (port, api_port) = (free_port(), free_port());
    let nginx_dir = s.root.join("nginx");
    let web_dir = s.root.join("certs/default/web-tls");
    let reload = serde_json::to_string(&Nginx::reload_command(&nginx_bin, &nginx_dir)).unwrap();
    std::fs::write(
        &s.config,
        format!(
            "manifests: manifests\nstateDir: state\nsecrets: {{dir: secrets}}\nlisten: 127.0.0.1:{api_port}\n\
             outputs:\n  dir: \"certs/{{namespace}}/{{secretName}}\"\n  certificates:\n\
             \x20   default/web:\n      hooks: [{{command: {reload}, timeout: 20s}}]\n\
             \x20     verify: [{{address: \"127.0.0.1:{port}\", serverName: web.example.com, timeout: 10s}}]\n\
             \x20   default/api:\n      verify: [{{address: \"127.0.0.1:{port}\", serverName: web.example.com, timeout: 2s}}]\n"
        ),
    )
    .unwrap();
    let daemon = Daemon::start(&s.config);

    // Issued before nginx runs: the reload hook fails (no nginx to signal), class apply.
    let rows = wait_for(
        &s.config,
        "the reload to fail",
        Duration::from_secs(60),
        &daemon,
        |r| r.len() == 1 && r[0]["lastFailure"]["class"] == "apply",
    );
    assert_eq!(rows[0]["revision"], 1);
    let message = rows[0]["lastFailure"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("hook 0 (") && message.contains("exited with exit status: 1"),
        "{message}"
    );

    // nginx starts on the files written; the next retry reloads it and the check passes.
    std::fs::create_dir_all(&nginx_dir).unwrap();
    let nginx = Nginx::start(
        &nginx_bin,
        &nginx_dir,
        &web_dir.join("tls.crt"),
        &web_dir.join("tls.key"),
        port,
    )
    .unwrap();
    let started = Instant::now();
    let rows = wait_for(
        &s.config,
        "served and verified",
        Duration::from_secs(60),
        &daemon,
        |r| r[0]["lastFailure"].is_null(),
    );
    eprintln!(
        "first issue: verified {:.1} s after nginx started",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(rows[0]["revision"], 1);
    let first = written_leaf(&web_dir);
    assert_eq!(served_leaf(port), first, "nginx serves the certificate written");
    assert!(
        daemon
            .log()
            .contains("verified: every address serves the certificate written")
    );

    // Renewal: written, reloaded, the new serial served, verified.
    renew(&s.config, "web", &daemon);
    let rows = wait_for(
        &s.config,
        "the renewal verified",
        Duration::from_secs(60),
        &daemon,
        |r| r[0]["revision"] == 2 && r[0]["lastFailure"].is_null(),
    );
    let second = written_leaf(&web_dir);
    assert_ne!(second, first);
    assert_eq!(
        served_leaf_once(port, &second),
        second,
        "the renewal is served: {rows:#?}"
    );
    assert_eq!(status_code(&s.config), Some(0));

    // A broken nginx configuration: the next renewal's reload fails. Visible, retried, and the
    // old certificate is still served.
    nginx.break_config().unwrap();
    renew(&s.config, "web", &daemon);
    let rows = wait_for(
        &s.config,
        "the failed reload retried",
        Duration::from_secs(60),
        &daemon,
        |r| {
            r[0]["revision"] == 3
                && r[0]["lastFailure"]["class"] == "apply"
                && r[0]["lastFailure"]["attempts"].as_u64() >= Some(2)
        },
    );
    let third = written_leaf(&web_dir);
    let message = rows[0]["lastFailure"]["message"].as_str().unwrap();
    assert!(message.contains("exited with exit status: 1"), "{message}");
    assert!(
        message.contains("nginx.conf"),
        "nginx says what is wrong: {message}"
    );
    assert_eq!(served_leaf(port), second, "the old certificate is still served");
    assert_eq!(status_code(&s.config), Some(1));
    let metrics = get(api_port, "/metrics").await;
    let series = failure_class_series(&metrics, "web");
    assert!(
        series.len() == 1 && series[0].ends_with(",class=\"apply\"} 1"),
        "{series:?}"
    );
    let api: Value = serde_json::from_str(&get(api_port, "/api/v1/status").await).unwrap();
    assert_eq!(api[0]["lastFailure"]["class"], "apply");

    // Fixed: the next retry reloads nginx, the new certificate is served, the failure clears.
    nginx.fix_config().unwrap();
    let fixed = Instant::now();
    let rows = wait_for(
        &s.config,
        "the fixed reload",
        Duration::from_secs(120),
        &daemon,
        |r| r[0]["lastFailure"].is_null(),
    );
    let cleared = fixed.elapsed();
    assert_eq!(rows[0]["revision"], 3, "never issued again for the failed reload");
    assert_eq!(served_leaf_once(port, &third), third);
    assert_eq!(status_code(&s.config), Some(0));
    let metrics = get(api_port, "/metrics").await;
    assert!(failure_class_series(&metrics, "web").is_empty(), "{metrics}");
    let issued: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("certkeeper_issuance_attempts_total{"))
        .collect();
    assert_eq!(
        issued,
        [
            "certkeeper_issuance_attempts_total{issuer=\"Issuer/default/vault\",result=\"success\",class=\"none\"} 3"
        ],
        "three issuances (issue, two renewals), none for the failed reloads"
    );
    eprintln!(
        "broken nginx config: cleared {:.1} s after the fix (apply backoff at its attempt then)",
        cleared.as_secs_f64()
    );

    // A certificate whose address serves another certificate (nothing reloads a server for
    // it): `verify` itself reports it, naming both serials.
    write_cert(&s.root, "api", "  privateKey: {algorithm: ECDSA, size: 256}\n");
    let rows = wait_for(
        &s.config,
        "api's mismatch",
        Duration::from_secs(60),
        &daemon,
        |r| r.len() == 2 && row(r, "default/api")["lastFailure"]["class"] == "apply",
    );
    let api_row = row(&rows, "default/api");
    let message = api_row["lastFailure"]["message"].as_str().unwrap();
    let web_serial = row(&rows, "default/web")["serial"].as_str().unwrap();
    assert!(
        message.starts_with(&format!(
            "127.0.0.1:{port} (SNI web.example.com) serves serial {web_serial} (not after "
        )) && message.contains(&format!(
            "not the certificate written (serial {}); the server did not load the new certificate",
            api_row["serial"].as_str().unwrap()
        )),
        "{message}"
    );
    assert_eq!(api_row["ready"], true);
    drop(nginx);
    drop(s.bao);
}
