//! `certkeeper run`: load the configuration and manifests, start the engine and the HTTP
//! endpoints, and keep going: reload on SIGHUP or when a manifest file changes, pick up renew
//! requests from `certkeeper renew`, and shut down cleanly on SIGTERM or Ctrl-C.
//!
//! - The listener is bound before anything else is done: a port already in use is a
//!   configuration error that must stop the daemon before it issues or writes anything.
//! - Manifests are read and parsed on a thread of their own ([`start_load`]), never on the run
//!   loop: the loop keeps answering SIGTERM while a load runs, and a load still running at
//!   shutdown is abandoned. The engine (renewals) runs on its own task throughout.
//! - Every load is applied, valid objects in, invalid documents reported (see [`crate::load`]);
//!   only a load that could not read the manifests at all keeps the last good configuration
//!   (and, at start-up, stops the daemon: there is nothing to fall back on).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use certkeeper_engine::adopt::{Served, adopt};
use certkeeper_engine::metrics::Metrics;
use certkeeper_engine::state::CertState;
use certkeeper_engine::{CertId, CertJob, EngineConfig, IssuerId, IssuerRuntime};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{oneshot, watch};

use crate::config::Config;
use crate::load::{LoadError, Loaded, ManifestSecrets, load};
use crate::notify::Notifier;
use crate::problems::problem_rows;
use crate::runtime::{FileRuntime, RENEW_POLL, TLS_CRT, TLS_KEY};
use crate::statedb::{RENEW_ALL, StateDb, take_renew_requests};
use certkeeper_serve::http::{EngineEndpoints, serve};

/// How often manifest files are checked for changes.
const WATCH_INTERVAL: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    State(#[from] crate::statedb::StateError),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("loading the manifests stopped without a result (the load thread could not start or panicked)")]
    LoadAborted,
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

/// A load running on its own thread.
type PendingLoad = oneshot::Receiver<Result<Loaded, LoadError>>;

/// Run until SIGTERM / SIGINT.
///
/// Under systemd (`Type=notify`, see [`crate::notify`]): `READY=1` once the manifests are
/// loaded and applied and the engine runs; `RELOADING=1` when a reload starts (SIGHUP or a
/// manifest change) and `READY=1` again when it is applied (or kept the last good
/// configuration); `WATCHDOG=1` from the run loop at half `WATCHDOG_USEC`; `STOPPING=1` on
/// SIGTERM / SIGINT.
pub async fn run(config_path: &Path) -> Result<(), RunError> {
    let config = Config::load(config_path)?;
    let notifier = Notifier::from_env();
    // First, before any file is written or certificate issued.
    let listener = match config.listen {
        Some(addr) => Some((
            addr,
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| RunError::Listen { addr, source })?,
        )),
        None => None,
    };
    let mut hup = signal(SignalKind::hangup()).map_err(RunError::Signal)?;
    let mut term = signal(SignalKind::terminate()).map_err(RunError::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(RunError::Signal)?;
    std::fs::create_dir_all(&config.state_dir).map_err(|source| RunError::StateDir {
        path: config.state_dir.clone(),
        source,
    })?;
    let db = Arc::new(StateDb::open(&config.state_db_path())?);
    let metrics = Metrics::default();
    let runtime = Arc::new(FileRuntime::new(db.clone()));
    let engine = certkeeper_engine::spawn(
        runtime.clone(),
        metrics.clone(),
        EngineConfig {
            issuance_budget: config.issuance_budget,
            ..EngineConfig::default()
        },
    );
    let shared = Arc::new(Shared::new(engine.clone()));

    let (stop_tx, stop_rx) = watch::channel(false);
    let server = listener.map(|(addr, listener)| {
        tracing::info!(%addr, "serving /metrics, /healthz, /readyz, /api/v1/status, /api/v1/summary");
        tokio::spawn(serve(listener, shared.clone(), stop_rx))
    });

    let mut watch_tick = tokio::time::interval(WATCH_INTERVAL);
    let mut watchdog_tick = notifier.watchdog_interval().map(|every| {
        let mut tick = tokio::time::interval(every);
        // After a stall, one ping, not a burst of the missed ones.
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick
    });
    let mut renew_tick = tokio::time::interval(RENEW_POLL);
    let mut seen = manifest_stamp(&config.manifests);
    // The manifests' Secrets, shared by every load and the issuers' clients (read at each login).
    let secrets = ManifestSecrets::default();
    notifier.status("starting: loading the manifests");
    let mut loading = Some(start_load(&config, &metrics, HashMap::new(), &secrets));
    let mut reload_wanted = false;
    tracing::info!(config = %config_path.display(), "certkeeper running");
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading manifests");
                reload_wanted = true;
            }
            () = watchdog(&mut watchdog_tick) => notifier.watchdog(),
            _ = watch_tick.tick() => {
                if manifest_stamp(&config.manifests) != seen {
                    tracing::info!("manifests changed: reloading");
                    reload_wanted = true;
                }
            }
            done = next_load(&mut loading) => {
                loading = None;
                let first = !shared.ready.load(Ordering::SeqCst);
                match done {
                    Ok(Ok(loaded)) => {
                        let (certificates, issuers) = apply(&shared, &runtime, &db, &metrics, loaded).await;
                        shared.ready.store(true, Ordering::SeqCst);
                        notifier.ready(&format!("running: {certificates} certificates, {issuers} issuers"));
                    }
                    // Nothing to fall back on at start-up.
                    Ok(Err(e)) if first => return Err(e.into()),
                    Err(_) if first => return Err(RunError::LoadAborted),
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "cannot read manifests; keeping the last good configuration");
                        notifier.ready(&format!("running the last good configuration: cannot read manifests: {e}"));
                    }
                    Err(e) => {
                        tracing::error!(error = %RunError::LoadAborted, detail = %e, "keeping the last good configuration");
                        notifier.ready("running the last good configuration: the reload stopped without a result");
                    }
                }
            }
            _ = renew_tick.tick() => {
                let state_dir = config.state_dir.clone();
                match tokio::task::spawn_blocking(move || take_renew_requests(&state_dir)).await {
                    Ok(Ok(ids)) => for id in ids {
                        tracing::info!(certificate = %id, "renew requested");
                        if id == RENEW_ALL {
                            engine.renew(None);
                        } else if let Some(id) = CertId::parse(&id) {
                            engine.renew(Some(id));
                        }
                    },
                    Ok(Err(e)) => tracing::warn!(error = %e, "cannot read renew requests"),
                    Err(e) => tracing::warn!(error = %e, "renew poll failed"),
                }
            }
        }
        // One load at a time; a change seen during a load starts another once it is applied.
        if reload_wanted && loading.is_none() {
            reload_wanted = false;
            seen = manifest_stamp(&config.manifests);
            notifier.reloading("reloading the manifests");
            let previous = shared.issuers.lock().await.clone();
            loading = Some(start_load(&config, &metrics, previous, &secrets));
        }
    }
    tracing::info!("shutting down: finishing attempts in flight");
    notifier.stopping();
    shared.ready.store(false, Ordering::SeqCst);
    engine.shutdown().await;
    let _ = stop_tx.send(true);
    if let Some(server) = server {
        let _ = server.await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Reads and parses the manifests on a thread of its own. The thread is not a tokio blocking
/// task on purpose: the runtime waits for those at exit, and shutdown must not wait for a
/// load. The receiver fails if the thread could not start or panicked.
fn start_load(
    config: &Config,
    metrics: &Metrics,
    previous: HashMap<IssuerId, IssuerRuntime>,
    secrets: &ManifestSecrets,
) -> PendingLoad {
    let (tx, rx) = oneshot::channel();
    let (config, metrics, secrets) = (config.clone(), metrics.clone(), secrets.clone());
    // Issuers' clients are built in the load; they belong to this runtime.
    let handle = tokio::runtime::Handle::current();
    let spawned = std::thread::Builder::new()
        .name("certkeeper-load".into())
        .spawn(move || {
            let _runtime = handle.enter();
            let _ = tx.send(load(&config, &metrics, &previous, &secrets));
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start a thread to load the manifests");
    }
    rx
}

/// The next watchdog ping; never resolves without a watchdog.
async fn watchdog(tick: &mut Option<tokio::time::Interval>) {
    match tick {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// The result of the pending load; never resolves while none is pending.
async fn next_load(
    pending: &mut Option<PendingLoad>,
) -> Result<Result<Loaded, LoadError>, oneshot::error::RecvError> {
    match pending {
        Some(rx) => rx.await,
        None => std::future::pending().await,
    }
}

async fn apply(
    shared: &Arc<Shared>,
    runtime: &Arc<FileRuntime>,
    db: &Arc<StateDb>,
    metrics: &Metrics,
    loaded: Loaded,
) -> (usize, usize) {
    let mut per_file: BTreeMap<String, usize> = BTreeMap::new();
    for p in &loaded.manifest_problems {
        tracing::warn!(problem = %p, "invalid manifest left out; the rest runs");
        *per_file.entry(p.file.display().to_string()).or_default() += 1;
    }
    for p in &loaded.problems {
        tracing::warn!(source = %p.source, problem = %p.message, "manifest problem");
    }
    for ignored in &loaded.ignored {
        tracing::warn!(document = %ignored, "manifest document of another kind ignored");
    }
    for external in &loaded.external {
        tracing::info!(
            certificate = %external.name,
            issuer = %external.issuer(),
            "certificate of an external issuer: not certkeeper's, left alone"
        );
    }
    metrics.set_manifest_problems(per_file);
    *shared
        .problem_rows
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = problem_rows(&loaded);
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
        match states.get(job.id.as_str()) {
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
    let counts = (certs.len(), shared.issuers.lock().await.len());
    tracing::info!(
        certificates = counts.0,
        issuers = counts.1,
        "configuration applied"
    );
    shared.engine.set_certificates(certs);
    counts
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
            match adopt(&job, Served::Files, &crt, &key, now) {
                Ok(issued) => {
                    tracing::info!(certificate = %job.id, serial = %issued.serial, "adopted the certificate already served");
                    let state = CertState {
                        revision: 1,
                        issued: Some(issued),
                        ..CertState::default()
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
