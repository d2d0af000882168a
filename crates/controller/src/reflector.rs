//! A list-then-watch mirror of one collection (all Issuers, all ClusterIssuers, all
//! Certificates) in memory, with a notification on every change.
//!
//! - The first list fills the store and marks it synced; a watch then resumes from the list's
//!   resourceVersion with bookmarks, so a quiet collection keeps a fresh resourceVersion.
//! - A watch the server ends (every [`WATCH_TIMEOUT_SECS`] by default) resumes from the last
//!   version seen.
//! - `410 Gone` (the version is too old, compacted) or an ERROR event re-lists and replaces the
//!   whole store, so deletions missed meanwhile are noticed.
//! - Every [`RELIST_EVERY`] the collection is re-listed anyway (a periodic resync).
//! - Failures back off 1 s doubling to 30 s; nothing is retried in a tight loop.
//!
//! Stored objects drop `metadata.managedFields` (the bulk of a large object, never used); a
//! mirror may keep less: what its reader needs of each object, projected once as the object
//! arrives ([`reflect_with`]; the target Secrets are kept as
//! [`TargetSecret`](crate::plan::TargetSecret)s, without their keys and certificates). The
//! projection sees the version it replaces, so what did not change (a Certificate's spec,
//! across the several status writes of each issuance) stays one shared copy.
//!
//! [`WATCH_TIMEOUT_SECS`]: crate::kube::WATCH_TIMEOUT_SECS

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::{Notify, watch};

use crate::kube::{KubeClient, KubeError, meta_str};

/// A full re-list this often, whatever the watch says.
pub const RELIST_EVERY: Duration = Duration::from_secs(600);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// The mirrored objects by "namespace/name" (cluster-scoped: "name"), each as `T`: the object
/// itself (a [`Value`] without managedFields) or what is kept of it ([`reflect_with`]).
#[derive(Debug)]
pub struct Store<T = Value> {
    objects: RwLock<HashMap<String, Arc<T>>>,
    synced: AtomicBool,
    lists: AtomicU64,
}

impl<T> Default for Store<T> {
    fn default() -> Self {
        Store {
            objects: RwLock::default(),
            synced: AtomicBool::new(false),
            lists: AtomicU64::new(0),
        }
    }
}

impl<T> Store<T> {
    pub fn synced(&self) -> bool {
        self.synced.load(Ordering::SeqCst)
    }

    /// Marks an empty store as complete (a collection that is not watched).
    pub fn mark_synced(&self) {
        self.synced.store(true, Ordering::SeqCst);
    }

    /// Full lists done so far (the first, re-lists after 410 Gone or a failure, resyncs).
    pub fn lists(&self) -> u64 {
        self.lists.load(Ordering::SeqCst)
    }

    pub fn snapshot(&self) -> Vec<Arc<T>> {
        self.objects
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    pub fn get(&self, key: &str) -> Option<Arc<T>> {
        self.objects
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<T>>> {
        self.objects
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// "namespace/name", or "name" for cluster-scoped objects.
pub fn object_key(object: &Value) -> String {
    let ns = meta_str(object, "namespace");
    let name = meta_str(object, "name");
    if ns.is_empty() {
        name.to_owned()
    } else {
        format!("{ns}/{name}")
    }
}

/// `object` without `metadata.managedFields`, with its `kind` and `apiVersion` (list items omit
/// them).
pub fn trimmed(mut object: Value, kind: &str) -> Value {
    // List items omit apiVersion and kind; the decoder of cert-manager kinds needs them.
    if object.get("kind").is_none_or(Value::is_null) {
        object["kind"] = Value::String(kind.to_owned());
    }
    if object.get("apiVersion").is_none_or(Value::is_null) {
        let version = if kind == "Secret" {
            "v1"
        } else {
            "cert-manager.io/v1"
        };
        object["apiVersion"] = Value::String(version.to_owned());
    }
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    object
}

/// Mirrors collection `path` (of `kind`: a cert-manager.io/v1 kind or `Secret`) into `store`,
/// each object [`trimmed`], until `stop` turns true; `changed` is notified after every change
/// (and after each list).
pub async fn reflect(
    client: KubeClient,
    path: String,
    kind: &'static str,
    store: Arc<Store>,
    changed: Arc<Notify>,
    stop: watch::Receiver<bool>,
) {
    reflect_with(
        client,
        path,
        move |object, _: Option<&Value>| trimmed(object, kind),
        store,
        changed,
        stop,
    )
    .await;
}

/// As [`reflect`], keeping `keep(object, previous)` of each object (what its reader needs: the
/// rest is freed as the object arrives; `previous` is the version it replaces, if any, so
/// unchanged parts can be shared rather than held twice).
pub async fn reflect_with<T, F>(
    client: KubeClient,
    path: String,
    keep: F,
    store: Arc<Store<T>>,
    changed: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) where
    F: Fn(Value, Option<&T>) -> T + Sync,
    T: Send + Sync,
{
    let mut backoff = Duration::from_secs(1);
    loop {
        let result = tokio::select! {
            r = run_once(&client, &path, &keep, &store, &changed) => r,
            _ = stop.changed() => return,
        };
        match result {
            Ok(()) => backoff = Duration::from_secs(1),
            Err(e) => {
                tracing::warn!(collection = %path, error = %e, retry_in = ?backoff, "list/watch failed");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => return,
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

/// One list and the watches that follow it, until a re-list is needed.
async fn run_once<T>(
    client: &KubeClient,
    path: &str,
    keep: &impl Fn(Value, Option<&T>) -> T,
    store: &Store<T>,
    changed: &Notify,
) -> Result<(), KubeError> {
    let (items, mut rv) = client.list(path).await?;
    // Projected before the store is locked, and the list's objects freed as they go.
    let items: Vec<(String, Arc<T>)> = items
        .into_iter()
        .map(|item| {
            let key = object_key(&item);
            let kept = keep(item, store.get(&key).as_deref());
            (key, Arc::new(kept))
        })
        .collect();
    {
        let mut map = store.write();
        map.clear();
        map.extend(items);
    }
    store.synced.store(true, Ordering::SeqCst);
    store.lists.fetch_add(1, Ordering::SeqCst);
    changed.notify_one();
    let listed = Instant::now();
    while listed.elapsed() < RELIST_EVERY {
        let mut stream = match client.watch(path, &rv).await {
            Ok(s) => s,
            Err(e) if e.code() == Some(410) => {
                tracing::debug!(collection = %path, "resourceVersion expired (410 Gone); re-listing");
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        while let Some(event) = stream.next().await? {
            if let Some(v) = event
                .object
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
            {
                rv = v.to_owned();
            }
            match event.kind.as_str() {
                "ADDED" | "MODIFIED" => {
                    let key = object_key(&event.object);
                    let kept = Arc::new(keep(event.object, store.get(&key).as_deref()));
                    store.write().insert(key, kept);
                    changed.notify_one();
                }
                "DELETED" => {
                    store.write().remove(&object_key(&event.object));
                    changed.notify_one();
                }
                "BOOKMARK" => {}
                // ERROR: 410 Gone (expired version) or anything else: re-list.
                _ => {
                    let code = event.object.get("code").and_then(Value::as_u64).unwrap_or(0);
                    tracing::debug!(collection = %path, code, "watch error event; re-listing");
                    return Ok(());
                }
            }
            if listed.elapsed() >= RELIST_EVERY {
                break;
            }
        }
    }
    Ok(())
}
