//! With cert-manager's own CRDs installed (issue 11), against a genuine kube-apiserver and
//! OpenBao: their Certificate status schema has no `status.certkeeper`, so the API server prunes
//! it from every status write, and a restart has only cert-manager's `failedIssuanceAttempts` and
//! `lastFailureTime` to restore a failure streak from. A Certificate whose name Vault refuses (a
//! rejection of that request: 5 min before the next attempt) keeps its backoff across a
//! controller restart: no sign request, the streak not reset, the status left as it was.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use certkeeper_testkit::{DevServer, KubeApiServer, PkiOptions, free_port};
use common::{
    Api, BOUND, CERTIFICATES, NS, config_for, create_token_issuer, installed, metric_sum, ready,
    spawn_controller, wait_for,
};
use serde_json::{Value, json};

const REFUSED: &str = "/apis/cert-manager.io/v1/namespaces/apps/certificates/refused";
const WEB: &str = "/apis/cert-manager.io/v1/namespaces/apps/certificates/web";
/// How long the restarted controller is watched for a sign request.
const WATCH: Duration = Duration::from_secs(8);

/// certkeeper's CRDs made like cert-manager's where it matters here: cert-manager's Certificate
/// CRD has no `status.certkeeper` (certkeeper's retry state), so its property is removed from
/// the Certificate's status schema (the schema is structural, so the API server then prunes the
/// field from every write, as it does with cert-manager's CRDs), and the printer column that
/// shows it goes too.
fn cert_manager_shaped_crds() -> Result<Vec<Value>> {
    let mut crds: Vec<Value> = certkeeper_crds::crds().iter().map(|c| c.to_json()).collect();
    let mut removed = 0;
    for crd in crds
        .iter_mut()
        .filter(|c| c["spec"]["names"]["kind"] == "Certificate")
    {
        let versions = crd["spec"]["versions"]
            .as_array_mut()
            .context("the Certificate CRD's versions")?;
        for version in versions {
            let status = version
                .pointer_mut("/schema/openAPIV3Schema/properties/status/properties")
                .and_then(Value::as_object_mut)
                .context("the Certificate status schema's properties")?;
            removed += usize::from(status.remove("certkeeper").is_some());
            if let Some(columns) = version["additionalPrinterColumns"].as_array_mut() {
                columns.retain(|c| {
                    !c["jsonPath"]
                        .as_str()
                        .is_some_and(|p| p.starts_with(".status.certkeeper"))
                });
            }
        }
    }
    ensure!(
        removed > 0,
        "no status.certkeeper in the Certificate CRD to remove"
    );
    Ok(crds)
}

/// A running controller: its stop signal and its task.
type Running = (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), certkeeper_controller::ControllerError>>,
);

/// A controller with its /metrics on a free port, reconciling every second; returns the port.
fn start(kube: &KubeApiServer) -> Result<(u16, Running)> {
    let port = free_port();
    let mut config = config_for(kube, kube.admin_token());
    config.listen = Some(format!("127.0.0.1:{port}").parse()?);
    Ok((port, spawn_controller(config)))
}

fn certificate(name: &str, common_name: &str) -> Value {
    json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
           "metadata": {"name": name, "namespace": NS},
           "spec": {"secretName": format!("{name}-tls"), "commonName": common_name, "duration": "1h",
                    "issuerRef": {"name": "vault"}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_keeps_its_backoff_across_a_restart_with_cert_managers_crds() -> Result<()> {
    if !installed() {
        return Ok(());
    }
    let began = Instant::now();
    let (kube, bao) = tokio::join!(KubeApiServer::start(), DevServer::start());
    let (kube, bao) = (kube?, bao?);
    let admin = bao.admin();
    let pki = admin.setup_pki(PkiOptions::default()).await?;
    kube.apply_crds(&cert_manager_shaped_crds()?, BOUND).await?;
    kube.create_namespace(NS).await?;
    let api = Api::new(&kube)?;
    let token = admin.create_token(&[&pki.policy], "1h", true, 0).await?;
    create_token_issuer(&api, &bao.addr(), &pki.sign_path, &token).await?;
    // The role allows example.com and its subdomains: Vault refuses this name, a rejection of
    // this request alone (the slow schedule: the next attempt 5 min after the first failure).
    api.create(CERTIFICATES, &certificate("refused", "refused.example.org"))
        .await?;
    // A certificate Vault signs, to see the controllers at work.
    api.create(CERTIFICATES, &certificate("web", "web.example.com"))
        .await?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;

    let (port, (stop_tx, controller)) = start(&kube)?;
    api.wait_until("web Ready", WEB, ready).await?;
    let failed = api
        .wait_until("refused's failure in its status", REFUSED, |c| {
            c["status"]["failedIssuanceAttempts"]
                .as_u64()
                .is_some_and(|n| n >= 1)
                && c["status"]["lastFailureTime"].is_string()
        })
        .await?;
    let status = &failed["status"];
    eprintln!("failing after {:?}: {status}", began.elapsed());
    assert!(
        status.get("certkeeper").is_none(),
        "the API server prunes status.certkeeper: {status}"
    );
    let issuing = status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Issuing"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(issuing["reason"], "Failed", "{status}");
    assert!(
        issuing["message"]
            .as_str()
            .unwrap_or_default()
            .contains("not allowed by this role"),
        "{issuing}"
    );
    let last_failure =
        certkeeper_core::time::parse_rfc3339_unix(status["lastFailureTime"].as_str().unwrap_or_default())
            .context("lastFailureTime")?;
    let labels = "name=\"refused\"";
    let next_family = "certkeeper_certificate_next_attempt_timestamp_seconds";
    let first_next = metric_sum(&http, port, next_family, labels).await?;
    eprintln!(
        "first controller: next attempt {} s after the failure",
        first_next - last_failure as f64
    );
    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(30), controller).await???;
    // A failure after the restart would then show a later lastFailureTime (whole seconds).
    tokio::time::sleep(Duration::from_millis(1100)).await;

    // The status as the restart finds it, after any write the stop let through.
    let before = api.get(REFUSED).await?.context("refused")?;
    let attempts = before["status"]["failedIssuanceAttempts"]
        .as_u64()
        .unwrap_or_default();
    let last_failure_time = before["status"]["lastFailureTime"].clone();

    let restarted = Instant::now();
    let (port, (stop_tx, controller)) = start(&kube)?;
    wait_for("the restarted controller ready", BOUND, || async {
        let answer = http.get(format!("http://127.0.0.1:{port}/readyz")).send().await;
        Ok(answer.ok().filter(|a| a.status() == 200).map(|_| ()))
    })
    .await?;
    eprintln!("restarted controller ready after {:?}", restarted.elapsed());
    tokio::time::sleep(WATCH).await;

    let signs = metric_sum(
        &http,
        port,
        "certkeeper_vault_requests_total",
        "operation=\"sign\"",
    )
    .await?;
    let tried = metric_sum(&http, port, "certkeeper_issuance_attempts_total", "").await?;
    let next = metric_sum(&http, port, next_family, labels).await?;
    let after = api.get(REFUSED).await?.context("refused")?;
    let status = &after["status"];
    eprintln!(
        "{:?} after the restart: {signs} sign requests, {tried} attempts, next attempt {} s after \
         the last failure; status {status}",
        restarted.elapsed(),
        next - last_failure as f64
    );
    assert_eq!(
        signs, 0.0,
        "no sign request after the restart (refused is backing off, web is valid)"
    );
    assert_eq!(tried, 0.0, "no issuance attempt after the restart");
    assert!(
        status["failedIssuanceAttempts"]
            .as_u64()
            .is_some_and(|n| n >= attempts),
        "failedIssuanceAttempts kept (was {attempts}): {status}"
    );
    assert_eq!(
        status["lastFailureTime"], last_failure_time,
        "no new failure: {status}"
    );
    // The restored next attempt is the rejection schedule's from lastFailureTime (the first
    // rejection waits 5 min; nothing is served, so no clamp shortens it below that), not now.
    assert!(
        (last_failure + 240..=last_failure + 300).contains(&(next as i64)),
        "next attempt {next} for a failure at {last_failure}"
    );
    assert!(ready(&api.get(WEB).await?.context("web")?));
    // Nothing changed the status. (A rewrite of it would be the same status here, so whether
    // a status without `certkeeper` counts as current is checked by runtime.rs's unit tests.)
    assert_eq!(
        after["metadata"]["resourceVersion"], before["metadata"]["resourceVersion"],
        "status changed after the restart: before {} after {}",
        before["status"], after["status"]
    );
    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(30), controller).await???;
    eprintln!("whole test: {:?}", began.elapsed());
    Ok(())
}
