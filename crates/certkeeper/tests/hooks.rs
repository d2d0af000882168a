//! Through the `certkeeper` binary against a real OpenBao: a hook that fails is the
//! certificate's failure (class `apply`), visible in `certkeeper status` (and its exit code),
//! `/api/v1/status` and the metrics, retried on its backoff until it succeeds, and never a reason
//! to issue the certificate again.
#![allow(clippy::unwrap_used)] // tests state their expectations by unwrapping

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_hook_is_an_apply_failure_retried_without_reissuing() {
    let s = setup(&[("web", "  privateKey: {algorithm: ECDSA, size: 256}\n")]).await;
    let port = certkeeper_testkit::free_port();
    let runs = s.root.join("hook-runs");
    // Fails its first three runs, as a reload against a broken server configuration would.
    let script = format!(
        "n=$(cat {runs} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {runs}; \
         [ $n -ge 4 ] || {{ echo \"reload failed (run $n)\" >&2; exit 1; }}",
        runs = runs.display()
    );
    std::fs::write(
        &s.config,
        format!(
            "manifests: manifests\nstateDir: state\nsecrets: {{dir: secrets}}\nlisten: 127.0.0.1:{port}\n\
             outputs:\n  dir: \"certs/{{namespace}}/{{secretName}}\"\n  certificates:\n    default/web:\n      \
             hooks: [{{command: [sh, -c, {script:?}], timeout: 10s}}]\n"
        ),
    )
    .unwrap();
    let daemon = Daemon::start(&s.config);

    // Issued and stored, but its hook failed: ready, failing with class apply.
    let rows = wait_for(
        &s.config,
        "the hook's failure",
        Duration::from_secs(60),
        &daemon,
        |r| r.len() == 1 && r[0]["lastFailure"]["class"] == "apply",
    );
    let failed_at = Instant::now();
    let web = row(&rows, "default/web");
    assert_eq!(web["ready"], true, "the certificate is valid: {web:#}");
    assert_eq!(web["revision"], 1);
    let serial = web["serial"].as_str().unwrap().to_owned();
    let message = web["lastFailure"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("hook 0 (sh) exited with exit status: 1: reload failed (run "),
        "{message}"
    );
    assert_eq!(
        status_code(&s.config),
        Some(1),
        "status exits 1 while the hooks fail"
    );
    let api: Value = serde_json::from_str(&get(port, "/api/v1/status").await).unwrap();
    assert_eq!(api[0]["lastFailure"]["class"], "apply", "{api:#}");
    let metrics = get(port, "/metrics").await;
    let series = failure_class_series(&metrics, "web");
    assert!(
        series.len() == 1 && series[0].ends_with(",class=\"apply\"} 1"),
        "{series:?}\n{metrics}"
    );
    let table = String::from_utf8(ck(&["status", "--config", s.config.to_str().unwrap()]).stdout).unwrap();
    assert!(table.contains("apply x"), "{table}");

    // Retried on the apply backoff (2 s, 4 s, 8 s less jitter): the fourth run succeeds and the
    // failure clears; the certificate was never issued again.
    let most = std::cell::Cell::new(0);
    let rows = wait_for(
        &s.config,
        "the hook to succeed",
        Duration::from_secs(60),
        &daemon,
        |r| {
            if let Some(n) = r[0]["lastFailure"]["attempts"].as_u64() {
                most.set(most.get().max(n));
            }
            r[0]["lastFailure"].is_null()
        },
    );
    let most_attempts = most.get();
    let cleared_after = failed_at.elapsed();
    let web = row(&rows, "default/web");
    assert_eq!(
        (web["revision"].as_u64(), web["serial"].as_str()),
        (Some(1), Some(serial.as_str()))
    );
    assert_eq!(
        std::fs::read_to_string(&runs).unwrap().trim(),
        "4",
        "{}",
        daemon.log()
    );
    assert!(most_attempts >= 2, "the retries were counted: {most_attempts}");
    assert_eq!(status_code(&s.config), Some(0));
    let metrics = get(port, "/metrics").await;
    assert!(failure_class_series(&metrics, "web").is_empty(), "{metrics}");
    let attempts: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("certkeeper_issuance_attempts_total{"))
        .collect();
    assert_eq!(
        attempts,
        [
            "certkeeper_issuance_attempts_total{issuer=\"Issuer/default/vault\",result=\"success\",class=\"none\"} 1"
        ],
        "one issuance, no failed one"
    );
    let log = daemon.log();
    assert!(log.contains("retrying its hooks, not issuing again"), "{log}");
    assert!(
        log.contains("certificate in use: its hooks succeeded after failing"),
        "{log}"
    );
    eprintln!(
        "hook failed 3 times; cleared {:.1} s after the failure was first seen; {most_attempts} attempts seen in status",
        cleared_after.as_secs_f64()
    );
    drop(s.bao);
}
