//! The issuance budget against a loop that deletes a Certificate's Secret as soon as it is
//! written (another controller fighting over the name, a cleanup job), on a genuine
//! kube-apiserver and OpenBao: the controller re-issues the first times, then holds the
//! re-issue once the budget (3 per hour here) is spent, says so (an `IssuanceDeferred` Event,
//! `certkeeper_certificate_issuance_deferred`), and Vault sees no more sign requests however
//! often the Secret is deleted. A renew asked for by hand still goes.
//! Skipped (with a printed reason) only when the kube binaries are not installed.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use anyhow::Result;
use certkeeper_testkit::free_port;
use common::{
    Api, CERTIFICATES, SECRETS, certificate_for, config_for, find_event, installed, metric_sum, ready,
    spawn_controller, start_with_vault_issuer, wait_for, wait_for_event,
};
use reqwest::Method;

/// How often the loop deletes the Secret, at most, and for how long.
const DELETIONS: usize = 10;
const LOOP_BOUND: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_deleting_loop_is_stopped_by_the_issuance_budget() -> Result<()> {
    if !installed() {
        return Ok(());
    }
    let (kube, _bao, _token) = start_with_vault_issuer().await?;
    let api = Api::new(&kube)?;
    let port = free_port();
    let mut config = config_for(&kube, kube.admin_token());
    config.listen = Some(([127, 0, 0, 1], port).into());
    config.engine.issuance_budget = Some(certkeeper_engine::budget::IssuanceBudget {
        count: 3,
        window: Duration::from_secs(3600),
    });
    let (stop_tx, controller) = spawn_controller(config);
    api.create(CERTIFICATES, &certificate_for("web", "vault", "Issuer"))
        .await?;
    let cert = format!("{CERTIFICATES}/web");
    let secret = format!("{SECRETS}/web-tls");
    api.wait_until("web issued", &cert, ready).await?;
    let http = reqwest::Client::new();
    let issued = |http: reqwest::Client| async move {
        metric_sum(
            &http,
            port,
            "certkeeper_issuance_attempts_total",
            "result=\"success\"",
        )
        .await
    };

    // The loop: delete the Secret whenever it is there, DELETIONS times at most, until the
    // controller says it holds the re-issue (or LOOP_BOUND: then the assertions say why).
    let started = Instant::now();
    let mut deleted = 0;
    while deleted < DELETIONS
        && started.elapsed() < LOOP_BOUND
        && find_event(&api, "IssuanceDeferred").await?.is_none()
    {
        if api.get(&secret).await?.is_some() {
            let (code, _) = api.client.call(Method::DELETE, &secret, "", None).await?;
            if code == 200 {
                deleted += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let event = wait_for_event(&api, "IssuanceDeferred").await?;
    let message = event["message"].as_str().unwrap_or_default().to_owned();
    eprintln!("{deleted} deletions in {:?}; {message}", started.elapsed());
    assert!(
        message.contains("issuance budget (3/1h0m0s) is spent"),
        "{message}"
    );
    // One issuance, then two repairs: the third deletion is not repaired.
    let successes = issued(http.clone()).await?;
    assert_eq!(successes, 3.0, "issuances");
    assert!(deleted >= 3, "the loop deleted {deleted} times");
    assert!(api.get(&secret).await?.is_none(), "a re-issue past the budget");
    let held = metric_sum(
        &http,
        port,
        "certkeeper_certificate_issuance_deferred",
        "name=\"web\"",
    )
    .await?;
    assert_eq!(held, 1.0);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(issued(http.clone()).await?, 3.0, "Vault asked again while held");

    // cmctl renew (the Issuing condition cmctl writes): a renew by hand goes.
    api.patch(
        &format!("{cert}/status"),
        &serde_json::json!({"status": {"conditions": [
            {"type": "Issuing", "status": "True", "reason": "ManuallyTriggered",
             "message": "Certificate re-issuance manually triggered",
             "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}),
    )
    .await?;
    wait_for(
        "the Secret written again by a renew",
        Duration::from_secs(60),
        || async { Ok(api.get(&secret).await?.map(|_| ())) },
    )
    .await?;
    assert_eq!(issued(http.clone()).await?, 4.0);
    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(30), controller).await???;
    Ok(())
}
