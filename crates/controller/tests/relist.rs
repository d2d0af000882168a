//! The reflector against a genuine kube-apiserver whose watch cache is off and whose etcd is
//! compacted every second: a quiet collection's watch ends (server-side timeout, 2 s here), its
//! resourceVersion has been compacted meanwhile (other collections changed), so resuming gets
//! `410 Gone`; the reflector re-lists, keeps a correct store, and goes on watching. Nothing
//! else in the suite reaches that path: with the watch cache on, bookmarks keep versions fresh.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use certkeeper_controller::reflector::{Store, reflect};
use certkeeper_controller::{KubeClient, KubeConfig, TokenSource};
use certkeeper_core::Secret;
use certkeeper_testkit::KubeApiServer;
use common::{installed, secret_body};
use reqwest::Method;
use serde_json::json;
use tokio::sync::{Notify, watch};

const QUIET: &str = "/api/v1/namespaces/quiet/configmaps";
const BUSY: &str = "/api/v1/namespaces/busy/secrets";

/// The log lines of this test binary (its only test), to tell a 410 re-list from an error one.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_resource_version_relists() -> Result<()> {
    if !installed() {
        return Ok(());
    }
    let log = Log::default();
    let writer = log.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();
    let kube = KubeApiServer::start_with(&["--watch-cache=false", "--etcd-compaction-interval=1s"]).await?;
    for ns in ["quiet", "busy"] {
        kube.create_namespace(ns).await?;
    }
    let (status, _) = kube
        .request(
            Method::POST,
            QUIET,
            Some(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "first"}})),
        )
        .await?;
    assert_eq!(status, 201);

    let mut config = KubeConfig::explicit(
        &kube.url(),
        TokenSource::Value(Secret::new(kube.admin_token())),
        Some(kube.ca_pem()),
    )?;
    config.watch_timeout = Duration::from_secs(2);
    let client = KubeClient::new(&config)?;
    let store = Arc::new(Store::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = tokio::spawn(reflect(
        client,
        QUIET.to_owned(),
        "ConfigMap",
        store.clone(),
        Arc::new(Notify::new()),
        stop_rx,
    ));

    // Listed once; then the other namespace's churn moves etcd's revision past the quiet
    // collection's and compaction removes it. Bounded: 60 s, one write per 100 ms.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !store.synced() {
        if Instant::now() > deadline {
            bail!("the reflector never listed");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(store.lists(), 1);
    assert!(store.get("quiet/first").is_some());
    let mut writes = 0u32;
    let churn = Instant::now();
    while store.lists() < 2 {
        if Instant::now() > deadline {
            bail!("no re-list after {writes} writes elsewhere: {}", kube.log_tail());
        }
        let body = secret_body(&format!("churn-{}", writes % 5), "k", &writes.to_string());
        let path = format!("{BUSY}/churn-{}", writes % 5);
        let (status, _) = kube.request(Method::PUT, &path, Some(&body)).await?;
        if status == 404 {
            kube.request(Method::POST, BUSY, Some(&body)).await?;
        }
        writes += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "re-listed after {writes} writes elsewhere ({:?})",
        churn.elapsed()
    );
    let text = log.text();
    assert!(
        text.contains("re-listing") && !text.contains("list/watch failed"),
        "a re-list for an expired version, not for an error:\n{text}"
    );

    // The re-listed reflector still follows the collection.
    let (status, _) = kube
        .request(
            Method::POST,
            QUIET,
            Some(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "second"}})),
        )
        .await?;
    assert_eq!(status, 201);
    let (status, _) = kube
        .request(Method::DELETE, &format!("{QUIET}/first"), None)
        .await?;
    assert_eq!(status, 200);
    let until = Instant::now() + Duration::from_secs(30);
    while store.get("quiet/second").is_none() || store.get("quiet/first").is_some() {
        if Instant::now() > until {
            bail!("the store did not follow after the re-list");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop_tx.send(true);
    tokio::time::timeout(Duration::from_secs(10), task).await??;
    Ok(())
}
