//! `certkeeper run`: load the configuration and manifests, start the engine and the HTTP
//! endpoints, and keep going: reload on SIGHUP or when a manifest file changes (an invalid
//! change is reported and the last good configuration keeps running), pick up renew requests
//! from `certkeeper renew`, and shut down cleanly on SIGTERM or Ctrl-C.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use certkeeper_engine::adopt::adopt;
use certkeeper_engine::metrics::Metrics;
use certkeeper_engine::state::CertState;
use certkeeper_engine::{CertJob, EngineConfig, IssuerId, IssuerRuntime};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use crate::config::Config;
use crate::http::{EngineEndpoints, serve};
use crate::load::{Loaded, load};
use crate::runtime::{FileRuntime, RENEW_POLL, TLS_CRT, TLS_KEY};
use crate::statedb::{RENEW_ALL, StateDb, take_renew_requests};

/// How often manifest files are checked for changes.
const WATCH_INTERVAL: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    State(#[from] crate::statedb::StateError),
    #[error(transparent)]
    Load(#[from] crate::load::LoadError),
    #[error("cannot create state directory {path}: {source}")]
    StateDir { path: PathBuf, source: std::io::Error },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot install signal handler: {0}")]
    Signal(std::io::Error),
}

/// The daemon's shared state is exactly what its HTTP endpoints show.
type Shared = EngineEndpoints;

/// Run until SIGTERM / SIGINT.
pub async fn run(config_path: &Path) -> Result<(), RunError> {
    let config = Config::load(config_path)?;
    std::fs::create_dir_all(&config.state_dir).map_err(|source| RunError::StateDir {
        path: config.state_dir.clone(),
        source,
    })?;
    let db = Arc::new(StateDb::open(&config.state_db_path())?);
    let metrics = Metrics::default();
    let runtime = Arc::new(FileRuntime::new(db.clone()));
    let engine = certkeeper_engine::spawn(runtime.clone(), metrics.clone(), EngineConfig::default());
    let shared = Arc::new(Shared::new(engine.clone()));

    // The first load must succeed: there is no last good configuration to fall back on.
    let loaded = load(&config, &metrics, &HashMap::new())?;
    apply(&shared, &runtime, &db, loaded).await;
    shared.ready.store(true, Ordering::SeqCst);

    let (stop_tx, stop_rx) = watch::channel(false);
    let server = match config.listen {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| RunError::Listen { addr, source })?;
            tracing::info!(%addr, "serving /metrics, /healthz, /readyz, /api/v1/status, /api/v1/summary");
            Some(tokio::spawn(serve(listener, shared.clone(), stop_rx)))
        }
        None => None,
    };

    let mut hup = signal(SignalKind::hangup()).map_err(RunError::Signal)?;
    let mut term = signal(SignalKind::terminate()).map_err(RunError::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(RunError::Signal)?;
    let mut watch_tick = tokio::time::interval(WATCH_INTERVAL);
    let mut renew_tick = tokio::time::interval(RENEW_POLL);
    let mut seen = manifest_stamp(&config.manifests);
    tracing::info!(config = %config_path.display(), "certkeeper running");
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading manifests");
                reload(&config, &metrics, &shared, &runtime, &db).await;
                seen = manifest_stamp(&config.manifests);
            }
            _ = watch_tick.tick() => {
                let now = manifest_stamp(&config.manifests);
                if now != seen {
                    seen = now;
                    tracing::info!("manifests changed: reloading");
                    reload(&config, &metrics, &shared, &runtime, &db).await;
                }
            }
            _ = renew_tick.tick() => {
                let state_dir = config.state_dir.clone();
                match tokio::task::spawn_blocking(move || take_renew_requests(&state_dir)).await {
                    Ok(Ok(ids)) => for id in ids {
                        tracing::info!(certificate = %id, "renew requested");
                        engine.renew((id != RENEW_ALL).then_some(id));
                    },
                    Ok(Err(e)) => tracing::warn!(error = %e, "cannot read renew requests"),
                    Err(e) => tracing::warn!(error = %e, "renew poll failed"),
                }
            }
        }
    }
    tracing::info!("shutting down: finishing attempts in flight");
    shared.ready.store(false, Ordering::SeqCst);
    engine.shutdown().await;
    let _ = stop_tx.send(true);
    if let Some(server) = server {
        let _ = server.await;
    }
    tracing::info!("stopped");
    Ok(())
}

async fn reload(
    config: &Config,
    metrics: &Metrics,
    shared: &Arc<Shared>,
    runtime: &Arc<FileRuntime>,
    db: &Arc<StateDb>,
) {
    let previous = shared.issuers.lock().await.clone();
    match load(config, metrics, &previous) {
        Ok(loaded) => apply(shared, runtime, db, loaded).await,
        Err(e) => tracing::error!(error = %e, "invalid manifests; keeping the last good configuration"),
    }
}

async fn apply(shared: &Arc<Shared>, runtime: &Arc<FileRuntime>, db: &Arc<StateDb>, loaded: Loaded) {
    for p in &loaded.problems {
        tracing::warn!(source = %p.source, problem = %p.message, "manifest problem");
    }
    let states = match db.load_all() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot read state; starting these certificates afresh");
            Default::default()
        }
    };
    runtime.set_metas(
        loaded
            .certificates
            .iter()
            .map(|(job, meta)| (job.id.clone(), meta.clone()))
            .collect(),
    );
    let issuers: HashMap<IssuerId, IssuerRuntime> =
        loaded.issuers.iter().map(|i| (i.id.clone(), i.clone())).collect();
    shared.engine.set_issuers(loaded.issuers);
    *shared.issuers.lock().await = issuers;
    let mut certs = Vec::with_capacity(loaded.certificates.len());
    let mut unknown = Vec::new();
    for (job, meta) in loaded.certificates {
        match states.get(&job.id) {
            Some(state) => certs.push((job, Some(state.clone()))),
            None => unknown.push((job, meta.output.dir)),
        }
    }
    if !unknown.is_empty() {
        let fallback: Vec<_> = unknown.iter().map(|(job, _)| (job.clone(), None)).collect();
        let db = db.clone();
        let adopted = tokio::task::spawn_blocking(move || {
            let adopted = adopt_served(unknown);
            let persist: Vec<_> = adopted
                .iter()
                .filter_map(|(job, state)| Some((job.id.clone(), state.clone()?)))
                .collect();
            if !persist.is_empty()
                && let Err(e) = db.put_many(&persist)
            {
                tracing::error!(error = %e, "cannot persist adopted certificates");
            }
            adopted
        })
        .await
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "looking for served certificates failed; issuing them");
            fallback
        });
        certs.extend(adopted);
    }
    tracing::info!(
        certificates = certs.len(),
        issuers = shared.issuers.lock().await.len(),
        "configuration applied"
    );
    shared.engine.set_certificates(certs);
}

/// Certificates the state database does not know (new in the manifests, files written before
/// certkeeper managed them, or a lost database): each output directory that already serves a
/// pair matching the spec is adopted as revision 1 instead of being issued again at once.
fn adopt_served(unknown: Vec<(CertJob, PathBuf)>) -> Vec<(CertJob, Option<CertState>)> {
    let now = SystemTime::now();
    unknown
        .into_iter()
        .map(|(job, dir)| {
            let read = |name| std::fs::read_to_string(dir.join(name)).ok();
            let (Some(crt), Some(key)) = (read(TLS_CRT), read(TLS_KEY)) else {
                return (job, None);
            };
            match adopt(&job, &crt, &key, now) {
                Ok(issued) => {
                    tracing::info!(certificate = %job.id, serial = %issued.serial, "adopted the certificate already served");
                    let state = CertState {
                        revision: 1,
                        issued: Some(issued),
                        failure: None,
                    };
                    (job, Some(state))
                }
                Err(e) => {
                    tracing::info!(certificate = %job.id, reason = %e, "not adopting the certificate served; issuing");
                    (job, None)
                }
            }
        })
        .collect()
}

/// Names, sizes and modification times of the manifest files: a cheap change detector that
/// needs no inotify and works on every filesystem.
fn manifest_stamp(path: &Path) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    let files: Vec<PathBuf> = match std::fs::read_dir(path) {
        Ok(entries) => entries.flatten().map(|e| e.path()).collect(),
        Err(_) => vec![path.to_owned()],
    };
    let mut stamp: Vec<_> = files
        .into_iter()
        .filter_map(|p| {
            let m = std::fs::metadata(&p).ok()?;
            Some((p, m.len(), m.modified().ok()))
        })
        .collect();
    stamp.sort();
    stamp
}
