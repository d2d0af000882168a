//! Hostile manifests and configuration against the real `certkeeper` binary and a real OpenBao:
//! one invalid document fails alone (at start-up and at reload), manifest problems are reported
//! in `status`, `/api/v1/status` and `/metrics`, `check` fails on them, and a busy port stops the
//! daemon before it writes anything.
#![allow(clippy::unwrap_used)] // tests state their expectations by unwrapping

mod common;

use std::time::{Duration, Instant};

use common::*;

/// An invalid Certificate (a wrong key size and an unknown field).
const BROKEN: &str = "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {name: broken, namespace: default}\nspec:\n  secretName: broken-tls\n  dnsNames: [broken.example.com]\n  issuerRef: {name: vault}\n  privateKey: {algorithm: ECDSA, size: 2048}\n  colour: red\n";

fn problem_names(rows: &[serde_json::Value]) -> Vec<String> {
    rows.iter()
        .filter(|r| !r["manifestProblem"].is_null())
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_invalid_document_fails_alone_at_start_and_at_reload() {
    let port = certkeeper_testkit::free_port();
    let ecdsa = "  privateKey: {algorithm: ECDSA, size: 256}\n";
    let s = setup_with(
        Default::default(),
        &[("web", ecdsa), ("api", ecdsa)],
        &format!("listen: 127.0.0.1:{port}\n"),
    )
    .await;
    let manifests = s.root.join("manifests");
    std::fs::write(manifests.join("broken.yaml"), BROKEN).unwrap();

    // check reports the broken document and fails.
    let out = ck(&["check", "--config", s.config.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    let broken = manifests.join("broken.yaml").display().to_string();
    assert!(
        stdout.contains(&format!(
            "invalid: {broken}: document 1 (Certificate default/broken): spec.colour: unknown field; spec.privateKey.size:"
        )),
        "{stdout}"
    );

    // The daemon runs the valid certificates.
    let daemon = Daemon::start(&s.config);
    let rows = wait_for(
        &s.config,
        "web and api issued",
        Duration::from_secs(60),
        &daemon,
        |r| r.iter().filter(|x| x["ready"] == true).count() == 2,
    );
    assert_eq!(problem_names(&rows), ["Certificate default/broken"]);
    let certs = s.root.join("certs/default");
    let web_serial = assert_pair(&certs.join("web-tls"), "web.example.com");
    assert!(!certs.join("broken-tls").exists());
    let log = daemon.log();
    assert!(
        log.lines().any(|l| l.contains("invalid manifest left out")
            && l.contains("broken.yaml: document 1 (Certificate default/broken)")),
        "{log}"
    );
    let status: Vec<serde_json::Value> = serde_json::from_str(&get(port, "/api/v1/status").await).unwrap();
    let problem = &status
        .iter()
        .find(|r| r["name"] == "Certificate default/broken")
        .unwrap()["manifestProblem"];
    assert_eq!(
        (problem["file"].as_str(), problem["document"].as_u64()),
        (Some(broken.as_str()), Some(1))
    );
    assert!(
        get(port, "/metrics")
            .await
            .contains(&format!("certkeeper_manifest_problems{{file=\"{broken}\"}} 1"))
    );
    let table = ck(&["status", "--config", s.config.to_str().unwrap()]);
    assert_eq!(table.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&table.stdout).contains("MANIFEST PROBLEMS"));

    // Reload: api's document breaks, the issuer's too (its certificates wait for it); web keeps
    // its certificate and state.
    let api = std::fs::read_to_string(manifests.join("api.yaml")).unwrap();
    std::fs::write(manifests.join("api.yaml"), format!("{api}  bogus: 1\n")).unwrap();
    let issuer = std::fs::read_to_string(manifests.join("issuer.yaml")).unwrap();
    std::fs::write(
        manifests.join("issuer.yaml"),
        format!("{issuer}    nmespace: x\n"),
    )
    .unwrap();
    common::nix_kill(daemon.child.id(), "HUP").unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let status: Vec<serde_json::Value> =
            serde_json::from_str(&get(port, "/api/v1/status").await).unwrap();
        if problem_names(&status).len() >= 4 {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "no reload: {status:#?}\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let mut names = problem_names(&status);
    names.sort();
    assert_eq!(
        names,
        [
            "Certificate default/api",
            "Certificate default/broken",
            "Certificate default/web",
            "Issuer default/vault"
        ],
        "{status:#?}"
    );
    let waiting = &status
        .iter()
        .find(|r| r["name"] == "Certificate default/web")
        .unwrap()["manifestProblem"]["message"];
    assert!(
        waiting
            .as_str()
            .unwrap()
            .starts_with("spec.issuerRef: waiting for Issuer/default/vault: its manifest is invalid"),
        "{waiting}"
    );
    let web = status.iter().find(|r| r["name"] == "default/web").unwrap();
    assert_eq!(
        (web["revision"].as_u64(), web["serial"].as_str()),
        (Some(1), Some(web_serial.as_str()))
    );
    assert!(
        status.iter().all(|r| r["name"] != "default/api"),
        "api is left out"
    );
    assert_eq!(assert_pair(&certs.join("web-tls"), "web.example.com"), web_serial);
    assert!(daemon.stop().success());
    drop(s.bao);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_busy_port_stops_the_daemon_before_it_writes_anything() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let s = setup(&[("web", "  privateKey: {algorithm: ECDSA, size: 256}\n")]).await;
    // A state directory that does not exist yet: nothing may create it.
    std::fs::write(
        &s.config,
        format!(
            "manifests: manifests\nstateDir: fresh-state\nsecrets: {{dir: secrets}}\nlisten: 127.0.0.1:{port}\n"
        ),
    )
    .unwrap();
    let mut daemon = Daemon::start(&s.config);
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = daemon.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "daemon kept running:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(2), "{}", daemon.log());
    assert!(
        daemon
            .log()
            .contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{}",
        daemon.log()
    );
    // Give an engine that was started anyway the time it would need to issue.
    std::thread::sleep(Duration::from_secs(2));
    assert!(!s.root.join("fresh-state").exists(), "state written");
    assert!(
        !s.root.join("certs/default/web-tls").exists(),
        "certificate written"
    );
    drop(busy);
    drop(s.bao);
}
