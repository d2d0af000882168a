//! The controller's run loop: mirror Issuers, ClusterIssuers, Certificates, CertificateRequests
//! and the target Secrets (label selector), watch each referenced Secret by name (field
//! selector; never a cluster-wide Secret watch), rebuild the engine's issuers and jobs when
//! anything changes, write each issuer's Ready condition, act on renew requests, and serve
//! `/metrics`, `/healthz`, `/readyz` (and, when asked for, `/api/v1/status` on its own listener) with the standalone runtime's HTTP server.
//!
//! A reconcile runs after a change of a mirrored or watched object (debounced by [`DEBOUNCE`])
//! and every `secret_resync` anyway. When a referenced Secret appears, disappears or changes,
//! the certificates of its issuers that are failing are retried at once ("waiting for a change"
//! ends with the change).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use certkeeper_core::FailureClass;
use certkeeper_core::spec::{CONDITION_READY, Condition, ConditionStatus, IssuerKind, set_condition};
use certkeeper_core::time::rfc3339;
use certkeeper_engine::metrics::Metrics;
use certkeeper_engine::{CertId, CertJob, EngineConfig, IssuerId, IssuerRuntime};
use certkeeper_serve::http::{EngineEndpoints, Routes, serve_routes};
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};

use crate::kube::{KubeClient, KubeConfig, KubeError, meta_str};
use crate::leader::{Elector, LeaseConfig};
use crate::load::{AwsAmbient, IssuerLimits, SecretCache, build_issuer};
use crate::objects::{CertificateObject, IssuerObject};
use crate::plan::{self, SecretCheck, TargetSecret};
use crate::reflector::{Store, reflect, reflect_with};
use crate::runtime::{
    KubeRuntime, Tracked, current_request, namespace_requests, restore_state, spec_hash, status_current,
};
use crate::status::{StatusWriter, Target, Waiting};

/// Changes arriving within this window are applied together.
pub const DEBOUNCE: Duration = Duration::from_millis(200);
/// How often the engine's issuer holds are compared with the last reconcile's.
const HOLD_CHECK: Duration = Duration::from_secs(2);
/// A Ready issuer's login and health are re-checked this often.
pub const ISSUER_RECHECK: Duration = Duration::from_secs(300);

/// cert-manager's default `--cluster-resource-namespace`.
pub const DEFAULT_CLUSTER_RESOURCE_NAMESPACE: &str = "cert-manager";

/// What the controller reconciles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// certkeeper without cert-manager: Certificates, Issuers and ClusterIssuers
    /// (cert-manager.io), VaultIssuers and VaultClusterIssuers (certkeeper.io, when their CRDs
    /// are installed), and other tools' CertificateRequests for any of them.
    #[default]
    Full,
    /// Beside cert-manager, as its external issuer (cert-manager's external-issuer contract):
    /// only VaultIssuers, VaultClusterIssuers and the CertificateRequests that name them
    /// (cert-manager's Certificate controller creates them); no cert-manager.io Certificate,
    /// Issuer, ClusterIssuer or target Secret is read or written, and requests are never
    /// approved by certkeeper (cert-manager's approver, or approver-policy, decides).
    ExternalIssuer,
}

impl Mode {
    /// The issuer kinds reconciled.
    pub fn issuer_kinds(self) -> &'static [IssuerKind] {
        match self {
            Mode::Full => &IssuerKind::ALL,
            Mode::ExternalIssuer => &[IssuerKind::VaultIssuer, IssuerKind::VaultClusterIssuer],
        }
    }
}

#[derive(Debug, Clone)]
pub struct ControllerConfig {
    pub kube: KubeConfig,
    pub mode: Mode,
    /// Where a ClusterIssuer's Secret references resolve.
    pub cluster_resource_namespace: String,
    /// `/metrics`, `/healthz`, `/readyz` (what probes and scrapers reach, as cert-manager serves
    /// them).
    pub listen: Option<SocketAddr>,
    /// `/api/v1/status` and `/api/v1/summary`: every namespace's certificate names and Vault's
    /// error texts, so off unless asked for (and then best on loopback).
    pub status_listen: Option<SocketAddr>,
    /// How often a reconcile runs without any change (issuer re-checks, a safety net for
    /// missed watch events).
    pub secret_resync: Duration,
    pub limits: IssuerLimits,
    pub engine: EngineConfig,
    /// `None`: reconcile without leader election (a single replica).
    pub leader_election: Option<LeaseConfig>,
    /// Approve CertificateRequests for certkeeper's issuers that nobody approved or denied.
    pub auto_approve: bool,
    /// Watch only this namespace (Issuers, Certificates, CertificateRequests, Secrets);
    /// ClusterIssuers are not used, and RBAC can be a Role in that namespace. `None`: all.
    pub namespace: Option<String>,
    /// `auth.aws` without `serviceAccountRef`: the controller's own AWS identity and which
    /// issuers may use it.
    pub aws: AwsAmbient,
}

impl ControllerConfig {
    pub fn new(kube: KubeConfig) -> Self {
        ControllerConfig {
            kube,
            mode: Mode::Full,
            cluster_resource_namespace: DEFAULT_CLUSTER_RESOURCE_NAMESPACE.to_owned(),
            listen: None,
            status_listen: None,
            secret_resync: Duration::from_secs(30),
            limits: IssuerLimits::default(),
            engine: EngineConfig::default(),
            leader_election: None,
            auto_approve: true,
            namespace: None,
            aws: AwsAmbient::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error(transparent)]
    Kube(#[from] KubeError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("lost the leader lease {0}: stopped reconciling")]
    LostLeadership(String),
}

impl ControllerConfig {
    /// Refuses namespaces and names that could not exist (they become API paths).
    fn check(&self) -> Result<(), KubeError> {
        crate::kube::secrets_path(&self.cluster_resource_namespace)?;
        if let Some(namespace) = &self.namespace {
            crate::kube::secrets_path(namespace)?;
        }
        if let Some(lease) = &self.leader_election {
            crate::kube::lease_path(&lease.namespace, Some(&lease.name))?;
        }
        Ok(())
    }
}

/// The controller's shared state is what the HTTP endpoints show (the standalone runtime's).
type Shared = EngineEndpoints;

/// The mirrored collections.
struct Stores {
    /// One mirror per issuer kind (empty and synced when the kind is not watched).
    issuers: Vec<(IssuerKind, Arc<Store<IssuerObject>>)>,
    certificates: Arc<Store<CertificateObject>>,
    /// Target Secrets only: those carrying [`crate::runtime::FAO_LABEL`], which the controller
    /// sets; each kept as its resourceVersion and served serial, without keys and certificates.
    owned_secrets: Arc<Store<TargetSecret>>,
}

impl Stores {
    fn synced(&self) -> bool {
        self.issuers.iter().all(|(_, store)| store.synced())
            && self.certificates.synced()
            && self.owned_secrets.synced()
    }
}

/// The label selector of the target Secrets watch (`controller.cert-manager.io/fao=true`).
const OWNED_SECRETS_SELECTOR: &str = "labelSelector=controller.cert-manager.io%2Ffao%3Dtrue";

/// A cert-manager.io collection: cluster-wide, or of the one namespace watched.
fn cm_collection(namespace: Option<&str>, plural: &'static str) -> Result<String, KubeError> {
    match namespace {
        Some(ns) => crate::kube::cm_path(ns, plural, None),
        None => crate::kube::cluster_cm_path(plural, None),
    }
}

/// The target Secrets watch: cluster-wide, or of the one namespace watched.
fn owned_secrets(namespace: Option<&str>) -> Result<String, KubeError> {
    match namespace {
        Some(ns) => Ok(format!(
            "{}?{OWNED_SECRETS_SELECTOR}",
            crate::kube::secrets_path(ns)?
        )),
        None => Ok(format!("/api/v1/secrets?{OWNED_SECRETS_SELECTOR}")),
    }
}

/// How long a stopping controller waits for its last status writes.
const STATUS_FLUSH_ON_STOP: Duration = Duration::from_secs(10);

/// What the last reconcile applied.
struct Applied {
    /// (certificate id, fingerprint) set handed to the engine.
    jobs: BTreeMap<CertId, u64>,
    /// Issuer id -> versions of its referenced Secrets.
    secret_versions: HashMap<IssuerId, Vec<Option<String>>>,
    /// Issuer id -> (what was checked, when, the condition written).
    issuer_checks: HashMap<IssuerId, (u64, Instant)>,
    /// Certificate id -> resourceVersion of its target Secret last found to hold the
    /// certificate the engine serves.
    verified_secrets: HashMap<CertId, String>,
    /// Certificate id -> the renew request (its condition's lastTransitionTime) already acted on.
    renews_handled: HashMap<CertId, String>,
    /// Certificate id -> the missing-issuer message last written to its status.
    missing_issuer: HashMap<CertId, String>,
    /// Certificate id -> the validation errors last written to its status.
    invalid_certificates: HashMap<CertId, String>,
    /// What was built of each Certificate (rebuilt only when its input changes).
    built_jobs: plan::BuiltJobs,
    /// Problems already logged, by object: each is logged once, not at every reconcile.
    logged_problems: HashMap<String, String>,
    /// The watches of referenced Secrets.
    watches: SecretWatches,
}

/// One list+watch per referenced Secret, by name: no cluster-wide Secret watch, and a Secret
/// that appears, changes or disappears triggers a reconcile at once.
struct SecretWatches {
    changed: Arc<Notify>,
    stop: watch::Receiver<bool>,
    watches: HashMap<(String, String), SecretWatch>,
}

/// A watched Secret: its mirror, the stop signal of its watch, the watch task.
type SecretWatch = (Arc<Store>, watch::Sender<bool>, tokio::task::JoinHandle<()>);

impl SecretWatches {
    fn new(changed: Arc<Notify>, stop: watch::Receiver<bool>) -> Self {
        SecretWatches {
            changed,
            stop,
            watches: HashMap::new(),
        }
    }

    /// Starts watches for new references and stops those no longer referenced.
    fn sync(&mut self, wanted: &HashSet<(String, String)>, client: &KubeClient) {
        self.watches.retain(|key, (_, stop, task)| {
            let keep = wanted.contains(key);
            if !keep {
                let _ = stop.send(true);
                task.abort();
            }
            keep
        });
        for key in wanted {
            if self.watches.contains_key(key) || *self.stop.borrow() {
                continue;
            }
            let store = Arc::new(Store::default());
            let (stop_tx, stop_rx) = watch::channel(false);
            let mut global = self.stop.clone();
            let path = match crate::kube::secret_by_name_path(&key.0, &key.1) {
                Ok(path) => path,
                Err(e) => {
                    tracing::warn!(error = %e, "not watching a referenced Secret");
                    continue;
                }
            };
            let reflector = reflect(
                client.clone(),
                path,
                "Secret",
                store.clone(),
                self.changed.clone(),
                stop_rx,
            );
            let task = tokio::spawn(async move {
                tokio::select! {
                    _ = reflector => {}
                    _ = global.changed() => {}
                }
            });
            self.watches.insert(key.clone(), (store, stop_tx, task));
        }
    }

    /// The Secret as its watch has it (inner `None`: it does not exist); `None` before the
    /// watch has listed.
    fn current(&self, key: &(String, String)) -> Option<Option<Arc<Value>>> {
        let (store, _, _) = self.watches.get(key)?;
        store.synced().then(|| store.get(&format!("{}/{}", key.0, key.1)))
    }
}

impl Drop for SecretWatches {
    fn drop(&mut self) {
        for (_, (_, stop, task)) in self.watches.drain() {
            let _ = stop.send(true);
            task.abort();
        }
    }
}

impl Applied {
    /// Whether `problem` of `object` is new (and so worth logging); remembers it. Bounded: the
    /// memory is cleared when it grows past 10,000 entries.
    fn note_problem(&mut self, object: &str, problem: &str) -> bool {
        if self.logged_problems.get(object).map(String::as_str) == Some(problem) {
            return false;
        }
        if self.logged_problems.len() >= 10_000 {
            self.logged_problems.clear();
        }
        self.logged_problems.insert(object.to_owned(), problem.to_owned());
        true
    }
}

/// Runs the controller until `shutdown` completes (or, with leader election, until the Lease is
/// lost: then [`ControllerError::LostLeadership`]).
pub async fn run(
    config: ControllerConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ControllerError> {
    config.check()?;
    let client = KubeClient::new(&config.kube)?;
    tokio::pin!(shutdown);
    let stores = Stores {
        issuers: IssuerKind::ALL
            .iter()
            .map(|&kind| (kind, Arc::default()))
            .collect(),
        certificates: Arc::default(),
        owned_secrets: Arc::default(),
    };
    let metrics = Metrics::default();
    let (runtime, events) = KubeRuntime::new(
        client.clone(),
        stores.certificates.clone(),
        stores.owned_secrets.clone(),
    );
    let runtime = Arc::new(runtime);
    let events_task = tokio::spawn(events);
    let (status_stop, status_stop_rx) = watch::channel(false);
    let status_task = tokio::spawn(runtime.status_writer().run(status_stop_rx));
    let engine = certkeeper_engine::spawn(runtime.clone(), metrics.clone(), config.engine);
    let shared = Arc::new(Shared::new(engine.clone()));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut servers = Vec::new();
    for (addr, routes, what) in [
        (config.listen, Routes::Health, "/metrics, /healthz, /readyz"),
        (
            config.status_listen,
            Routes::Status,
            "/api/v1/status, /api/v1/summary",
        ),
    ] {
        let Some(addr) = addr else { continue };
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ControllerError::Listen { addr, source })?;
        if routes == Routes::Status && !addr.ip().is_loopback() {
            tracing::warn!(%addr, "the JSON status names every namespace's certificates and Vault errors: serving it beyond loopback");
        }
        tracing::info!(%addr, "serving {what}");
        servers.push(tokio::spawn(serve_routes(
            listener,
            shared.clone(),
            stop_rx.clone(),
            routes,
        )));
    }

    // A standby replica reports ready (it is healthy, and gating it would stall rollouts) and
    // does nothing else until it holds the Lease.
    let mut elector = config
        .leader_election
        .clone()
        .map(|lease| Elector::new(client.clone(), lease));
    if let Some(elector) = elector.as_mut() {
        shared.ready.store(true, Ordering::SeqCst);
        tracing::info!(identity = %elector.config().identity, "waiting for the leader lease");
        loop {
            match elector.try_acquire_or_renew().await {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "leader election failed; retrying"),
            }
            tokio::select! {
                _ = &mut shutdown => {
                    let _ = stop_tx.send(true);
                    engine.shutdown().await;
                    finish_statuses(status_stop, status_task).await;
                    events_task.abort();
                    for server in servers {
                        let _ = server.await;
                    }
                    return Ok(());
                }
                _ = tokio::time::sleep(elector.config().retry_period()) => {}
            }
        }
        shared.ready.store(false, Ordering::SeqCst);
    }

    let changed = Arc::new(Notify::new());
    let issuer_notes = crate::requests::SharedIssuerNotes::default();
    let mut tasks = Vec::new();
    let watched = config.namespace.as_deref();
    let certkeeper_kinds = match config.mode {
        Mode::ExternalIssuer => true,
        Mode::Full => certkeeper_kinds_usable(&client, watched).await,
    };
    for (kind, store) in &stores.issuers {
        let kind = *kind;
        let watch_kind = config.mode.issuer_kinds().contains(&kind)
            // One namespace watched: cluster-scoped issuers are not used (as cert-manager's
            // --namespace).
            && (kind.namespaced() || watched.is_none())
            && (kind.group() != certkeeper_core::spec::CERTKEEPER_GROUP || certkeeper_kinds);
        if !watch_kind {
            store.mark_synced();
            continue;
        }
        let cluster_ns = config.cluster_resource_namespace.clone();
        tasks.push(tokio::spawn(reflect_with(
            client.clone(),
            crate::kube::issuer_path(kind, watched, None)?,
            move |object, _: Option<&IssuerObject>| IssuerObject::of(object, kind, &cluster_ns),
            store.clone(),
            changed.clone(),
            stop_rx.clone(),
        )));
    }
    if config.mode == Mode::Full {
        tasks.push(tokio::spawn(reflect_with(
            client.clone(),
            cm_collection(watched, "certificates")?,
            CertificateObject::after,
            stores.certificates.clone(),
            changed.clone(),
            stop_rx.clone(),
        )));
    } else {
        stores.certificates.mark_synced();
    }
    let requests = Arc::new(Store::default());
    let requests_changed = Arc::new(Notify::new());
    let mode = config.mode;
    tasks.push(tokio::spawn(reflect_with(
        client.clone(),
        cm_collection(watched, "certificaterequests")?,
        move |object, _: Option<&_>| crate::requests::kept(object, mode),
        requests.clone(),
        requests_changed.clone(),
        stop_rx.clone(),
    )));
    tasks.push(tokio::spawn(crate::requests::run_requests(
        client.clone(),
        requests,
        shared.issuers.clone(),
        issuer_notes.clone(),
        requests_changed,
        config.mode,
        crate::requests::Approval::of(config.mode, config.auto_approve),
        stop_rx.clone(),
    )));
    if config.mode == Mode::Full {
        tasks.push(tokio::spawn(reflect_with(
            client.clone(),
            owned_secrets(watched)?,
            |secret, _: Option<&TargetSecret>| TargetSecret::of(&secret),
            stores.owned_secrets.clone(),
            changed.clone(),
            stop_rx.clone(),
        )));
    } else {
        stores.owned_secrets.mark_synced();
    }

    let mut applied = Applied {
        jobs: BTreeMap::new(),
        secret_versions: HashMap::new(),
        issuer_checks: HashMap::new(),
        verified_secrets: HashMap::new(),
        renews_handled: HashMap::new(),
        logged_problems: HashMap::new(),
        missing_issuer: HashMap::new(),
        invalid_certificates: HashMap::new(),
        built_jobs: plan::BuiltJobs::default(),
        watches: SecretWatches::new(changed.clone(), stop_rx.clone()),
    };
    let mut resync = tokio::time::interval(config.secret_resync);
    resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut holds_tick = tokio::time::interval(HOLD_CHECK);
    holds_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen_holds: Vec<(IssuerId, FailureClass)> = Vec::new();
    let renew_every = elector
        .as_ref()
        .map_or(Duration::from_secs(3600), |e| e.config().renew_period());
    let mut renew = tokio::time::interval(renew_every);
    renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut result = Ok(());
    tracing::info!(server = %config.kube.server(), "certkeeper controller running");
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = changed.notified() => {
                tokio::time::sleep(DEBOUNCE).await;
            }
            _ = resync.tick() => {}
            // An issuer held by a refusal (or released) changes its Ready condition now, not at
            // the next resync.
            _ = holds_tick.tick() => {
                let holds: Vec<(IssuerId, FailureClass)> =
                    shared.engine.holds().await.into_iter().map(|(id, h)| (id, h.class)).collect();
                if holds == seen_holds {
                    continue;
                }
                seen_holds = holds;
            }
            _ = renew.tick(), if elector.is_some() => {
                if let Some(elector) = elector.as_mut() {
                    if let Err(e) = elector.try_acquire_or_renew().await {
                        tracing::warn!(error = %e, "cannot renew the leader lease");
                    }
                    if !elector.is_leader() {
                        let lease = format!("{}/{}", elector.config().namespace, elector.config().name);
                        tracing::error!(lease = %lease, "lost the leader lease; stopping");
                        result = Err(ControllerError::LostLeadership(lease));
                        break;
                    }
                }
                continue;
            }
        }
        if !stores.synced() {
            continue;
        }
        let reconciler = Reconciler {
            config: &config,
            client: &client,
            stores: &stores,
            metrics: &metrics,
            shared: &shared,
            runtime: &runtime,
            issuer_notes: &issuer_notes,
        };
        reconciler.reconcile(&mut applied).await;
        shared.ready.store(true, Ordering::SeqCst);
    }
    tracing::info!("shutting down: finishing attempts in flight");
    shared.ready.store(false, Ordering::SeqCst);
    engine.shutdown().await;
    if result.is_ok() {
        finish_statuses(status_stop, status_task).await;
    } else {
        // The Lease is someone else's now: the new leader writes the status.
        status_task.abort();
    }
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    events_task.abort();
    if result.is_ok()
        && let Some(elector) = elector.as_mut()
    {
        elector.release().await;
    }
    for server in servers {
        let _ = server.await;
    }
    tracing::info!("stopped");
    result
}

/// Whether the full mode watches certkeeper's own kinds: not when their CRDs are not installed
/// (404) or the controller may not list them (403, RBAC from before they existed): a watch that
/// can never list would hold every reconcile back. Said in the log either way; a restart picks
/// them up once installed or granted.
async fn certkeeper_kinds_usable(client: &KubeClient, namespace: Option<&str>) -> bool {
    for kind in [IssuerKind::VaultIssuer, IssuerKind::VaultClusterIssuer] {
        if namespace.is_some() && !kind.namespaced() {
            continue;
        }
        let probe = match crate::kube::issuer_path(kind, namespace, None) {
            Ok(path) => client.get(&format!("{path}?limit=1")).await,
            Err(e) => Err(e),
        };
        let why = match probe {
            Ok(Some(_)) => continue,
            Ok(None) => "their CRDs are not installed".to_owned(),
            Err(e) if e.code() == Some(403) => format!("the controller may not list them ({e})"),
            Err(e) => {
                tracing::warn!(error = %e, "cannot tell whether the certkeeper.io kinds are served; watching them");
                continue;
            }
        };
        tracing::info!(
            "VaultIssuers and VaultClusterIssuers (certkeeper.io) are not watched: {why}; restart after installing or granting them"
        );
        return false;
    }
    true
}

/// The status writer's last pass after the engine stopped (its final states saved), bounded.
async fn finish_statuses(stop: watch::Sender<bool>, mut task: tokio::task::JoinHandle<()>) {
    let _ = stop.send(true);
    if tokio::time::timeout(STATUS_FLUSH_ON_STOP, &mut task)
        .await
        .is_err()
    {
        task.abort();
        tracing::warn!("Certificate status writes not finished at shutdown; the next leader recomputes them");
    }
}

/// What a reconcile works with (everything but its memory, [`Applied`]).
struct Reconciler<'a> {
    config: &'a ControllerConfig,
    client: &'a KubeClient,
    stores: &'a Stores,
    metrics: &'a Metrics,
    shared: &'a Arc<Shared>,
    runtime: &'a Arc<KubeRuntime>,
    /// Why issuers are not usable, for the requests that name them.
    issuer_notes: &'a crate::requests::SharedIssuerNotes,
}

impl Reconciler<'_> {
    /// One reconcile: gather (store snapshots, referenced Secrets, the engine's holds and
    /// snapshot), plan ([`crate::plan`], pure), act.
    async fn reconcile(&self, applied: &mut Applied) {
        let (client, stores, shared) = (self.client, self.stores, self.shared);

        // Issuers: sorted, their referenced Secrets gathered, built.
        let issuers = plan::sort_issuers(stores.issuers.iter().flat_map(|(_, store)| store.snapshot()));
        let mut problems: HashMap<IssuerId, String> = HashMap::new();
        for invalid in &issuers.invalid {
            if applied.note_problem(&invalid.id, &invalid.problem) {
                tracing::warn!(issuer = %invalid.id, problem = %invalid.problem, "invalid issuer");
            }
            problems.insert(invalid.id.clone(), invalid.problem.clone());
        }
        let secrets = self
            .referenced_secrets(plan::wanted_secrets(&issuers.found), applied)
            .await;
        let versions = plan::secret_versions(&issuers.found, &secrets, &applied.secret_versions);
        let previous = shared.issuers.lock().await.clone();
        let mut built: HashMap<IssuerId, IssuerRuntime> = HashMap::new();
        for issuer in &issuers.found {
            match build_issuer(
                client,
                &secrets,
                &self.config.limits,
                self.metrics,
                &previous,
                &issuer.id,
                &issuer.namespace,
                &issuer.vault,
                &issuer.extras,
                &self.config.aws,
            ) {
                Ok(rt) => {
                    if let Some(missing) = versions.missing.get(&issuer.id) {
                        problems.insert(
                            issuer.id.clone(),
                            format!("referenced Secret not found: {}", missing.join(", ")),
                        );
                    }
                    built.insert(issuer.id.clone(), rt);
                }
                Err(problem) => {
                    let problem = problem.to_string();
                    if applied.note_problem(&issuer.id, &problem) {
                        tracing::warn!(issuer = %issuer.id, problem = %problem, "issuer not usable");
                    }
                    problems.insert(issuer.id.clone(), problem);
                }
            }
        }
        applied.secret_versions = versions.versions;
        // An issuer held by an issuer-wide refusal is not Ready, with what Vault said, since
        // when and the next probe; no login check is sent to a Vault that refuses it.
        for (id, hold) in shared.engine.holds().await {
            if built.contains_key(&id) {
                problems
                    .entry(id.clone())
                    .or_insert_with(|| hold.issuer_message());
            }
        }
        let checked: Vec<&Arc<IssuerObject>> = issuers
            .found
            .iter()
            .map(|i| &i.object)
            .chain(issuers.invalid.iter().map(|i| &i.object))
            .collect();
        check_issuers(client, &checked, &built, &problems, applied);
        {
            let mut notes = self
                .issuer_notes
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            notes.reconciled = true;
            notes.problems = problems.clone();
        }

        // Certificates: planned, handed to the engine (restored when new), notes written.
        let fingerprints: HashMap<&str, u64> =
            built.iter().map(|(id, i)| (id.as_str(), i.fingerprint)).collect();
        let certificates = plan::plan_certificates(
            client,
            stores.certificates.snapshot(),
            &fingerprints,
            &applied.renews_handled,
            &mut applied.built_jobs,
        );
        for (id, _, problem) in &certificates.invalid {
            if applied.note_problem(id, problem) {
                tracing::warn!(certificate = %id, problem = %problem, "invalid certificate");
            }
        }
        for (id, issuer) in &certificates.external {
            if applied.note_problem(id, issuer) {
                tracing::info!(certificate = %id, %issuer, "certificate of an external issuer: not certkeeper's, left alone");
            }
        }
        for id in &certificates.renew_gone {
            applied.renews_handled.remove(id);
        }
        let known: HashSet<IssuerId> = built.keys().cloned().collect();
        let notes = plan::waiting_notes(
            &certificates,
            |id| {
                stores
                    .certificates
                    .get(id)
                    .filter(|_| certificates.tracked.contains_key(id))
            },
            &known,
            &problems,
            &applied.missing_issuer,
            &applied.invalid_certificates,
        );
        self.runtime.set_tracked(certificates.tracked.clone());
        shared.engine.set_issuers(built.values().cloned().collect());
        *shared.issuers.lock().await = built;
        let job_set = certificates.job_set();
        if job_set != applied.jobs {
            self.revoke_deleted(applied).await;
            self.apply_certificates(certificates.jobs, &certificates.tracked, job_set, applied)
                .await;
        }
        let status = self.runtime.status_writer();
        for (id, object, waiting) in notes.write {
            write_waiting_status(&status, &id, &object, waiting);
        }
        applied.missing_issuer = notes.missing_issuer;
        applied.invalid_certificates = notes.invalid;
        for (id, at) in certificates.renew {
            tracing::info!(certificate = %id, requested_at = %at, "renew requested");
            shared.engine.renew(Some(id.clone()));
            applied.renews_handled.insert(id, at);
        }
        let snapshot = shared.engine.snapshot().await;
        for id in plan::retries_after_secret_change(&snapshot, &versions.changed) {
            tracing::info!(certificate = %id, "a referenced Secret of its issuer changed; retrying");
            shared.engine.renew(Some(id));
        }
        self.check_target_secrets(&certificates.tracked, &snapshot, applied)
            .await;
    }

    /// Certificates deleted from the cluster since the last apply (gone from the API: an
    /// object turned invalid stays in the mirror) whose `certkeeper.io/revoke` lists `deleted`:
    /// their certificate is revoked through its issuer before the engine forgets it. One
    /// deleted while no controller ran is not seen.
    async fn revoke_deleted(&self, applied: &Applied) {
        let deleted: HashSet<&CertId> = applied
            .jobs
            .keys()
            .filter(|id| self.stores.certificates.get(id).is_none())
            .collect();
        if deleted.is_empty() {
            return;
        }
        let issuers = self.shared.issuers.lock().await.clone();
        for status in self.shared.engine.snapshot().await {
            if !status.job.revoke_deleted || !deleted.contains(&status.job.id) {
                continue;
            }
            let (Some(issued), Some(issuer)) = (&status.state.issued, issuers.get(&status.job.issuer)) else {
                continue;
            };
            certkeeper_engine::driver::revoke_certificate(
                issuer,
                self.metrics,
                &status.job.id,
                issued.serial.clone(),
                "deleted",
            );
        }
    }

    /// The referenced Secrets: one watch per Secret (field selector metadata.name), started and
    /// stopped as references come and go; a GET while a new watch has not listed yet.
    async fn referenced_secrets(
        &self,
        wanted: HashSet<(String, String)>,
        applied: &mut Applied,
    ) -> SecretCache {
        applied.watches.sync(&wanted, self.client);
        let mut secrets: SecretCache = HashMap::new();
        for key in wanted {
            if let Some(current) = applied.watches.current(&key) {
                secrets.insert(key, current);
                continue;
            }
            match self.client.get_secret(&key.0, &key.1).await {
                Ok(secret) => {
                    secrets.insert(key, secret.map(Arc::new));
                }
                Err(e) => {
                    tracing::warn!(secret = %format!("{}/{}", key.0, key.1), error = %e, "cannot read Secret")
                }
            }
        }
        secrets
    }

    /// Hands the engine its certificates: the state of each new one restored from its status
    /// and target Secret; a status found lagging behind the Secret is rewritten.
    async fn apply_certificates(
        &self,
        jobs: Vec<Arc<CertJob>>,
        tracked: &HashMap<CertId, Tracked>,
        job_set: BTreeMap<CertId, u64>,
        applied: &mut Applied,
    ) {
        let mut list = Vec::with_capacity(jobs.len());
        let mut deferred = Vec::new();
        let mut behind = Vec::new();
        // cert-manager's CertificateRequests, listed once per namespace of this pass.
        let mut requests = HashMap::new();
        for job in jobs {
            let persisted = if applied.jobs.contains_key(&job.id) {
                None
            } else {
                match restore(self.client, self.stores, tracked, &mut requests, &job).await {
                    Ok(Some((state, current))) => {
                        if !current {
                            behind.push((job.id.clone(), state.clone()));
                        }
                        Some(state)
                    }
                    Ok(None) => None,
                    // Not knowing what the Secret holds, issuing could replace a valid
                    // certificate: the next reconcile tries again.
                    Err(()) => {
                        deferred.push(job.id.clone());
                        continue;
                    }
                }
            };
            list.push((job, persisted));
        }
        tracing::info!(
            certificates = list.len(),
            deferred = deferred.len(),
            "certificates applied"
        );
        self.shared.engine.set_certificates(list);
        let mut applied_jobs = job_set;
        for id in &deferred {
            applied_jobs.remove(id);
        }
        applied.jobs = applied_jobs;
        if !behind.is_empty() {
            // The status lags behind the Secret (its last write was lost): publish what is served.
            tracing::info!(
                certificates = behind.len(),
                "rewriting status that lags behind the Secret"
            );
            let _ = certkeeper_engine::Runtime::save_states(self.runtime.as_ref(), behind).await;
        }
    }

    /// Re-issues certificates whose target Secret was deleted or no longer holds the certificate
    /// the engine serves (edited by hand, overwritten by another tool). A suspicion from the
    /// (possibly lagging) watch is confirmed with a GET before anything is re-issued.
    async fn check_target_secrets(
        &self,
        tracked: &HashMap<CertId, Tracked>,
        snapshot: &[certkeeper_engine::CertStatus],
        applied: &mut Applied,
    ) {
        applied.verified_secrets.retain(|id, _| tracked.contains_key(id));
        let checks = plan::target_secret_checks(
            snapshot,
            tracked,
            |key| self.stores.owned_secrets.get(key),
            &applied.verified_secrets,
        );
        for check in checks {
            let (id, namespace, secret_name, serial) = match check {
                SecretCheck::Verified { id, resource_version } => {
                    applied.verified_secrets.insert(id, resource_version);
                    continue;
                }
                SecretCheck::Confirm {
                    id,
                    namespace,
                    secret_name,
                    serial,
                } => (id, namespace, secret_name, serial),
            };
            let key = format!("{namespace}/{secret_name}");
            let live = match self.client.get_secret(&namespace, &secret_name).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(secret = %key, error = %e, "cannot read the target Secret");
                    continue;
                }
            };
            if let Some(s) = &live
                && plan::serial_of(s).as_deref() == Some(serial.as_str())
            {
                applied
                    .verified_secrets
                    .insert(id, meta_str(s, "resourceVersion").to_owned());
                continue;
            }
            let why = if live.is_none() {
                "the target Secret was deleted"
            } else {
                "the target Secret no longer holds the issued certificate"
            };
            tracing::info!(certificate = %id, secret = %key, "{why}; re-issuing");
            applied.verified_secrets.remove(&id);
            self.shared.engine.reissue(id);
        }
    }
}

/// The engine state of a certificate the engine has not seen yet, from the API, and whether
/// its status already says so. `Err`: the target Secret could not be read.
async fn restore(
    client: &KubeClient,
    stores: &Stores,
    tracked: &HashMap<CertId, Tracked>,
    requests: &mut HashMap<String, Vec<Value>>,
    job: &CertJob,
) -> Result<Option<(certkeeper_engine::state::CertState, bool)>, ()> {
    let (Some(object), Some(meta)) = (
        stores.certificates.get(&job.id),
        tracked.get(&job.id).map(|t| &t.meta),
    ) else {
        return Ok(None);
    };
    let secret = match client.get_secret(&meta.namespace, &meta.secret_name).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(certificate = %job.id, error = %e, "cannot read the target Secret; trying again at the next reconcile");
            return Err(());
        }
    };
    // A Secret certkeeper did not write is compared with cert-manager's request of its
    // revision when there is one (the adoption rule, `certkeeper_engine::adopt`).
    let revision = object.status.revision.and_then(|r| u64::try_from(r).ok());
    let request = match (&secret, revision) {
        (Some(s), Some(revision)) if spec_hash(s).is_none() => {
            if !requests.contains_key(&meta.namespace) {
                match namespace_requests(client, &meta.namespace).await {
                    Ok(listed) => {
                        requests.insert(meta.namespace.clone(), listed);
                    }
                    Err(e) => {
                        tracing::warn!(certificate = %job.id, error = %e, "cannot list the CertificateRequests; trying again at the next reconcile");
                        return Err(());
                    }
                }
            }
            requests
                .get(&meta.namespace)
                .and_then(|listed| current_request(listed, &meta.name, &object.meta.uid, revision))
        }
        _ => None,
    };
    Ok(
        restore_state(&object.status, secret.as_ref(), request, job).map(|state| {
            let current = status_current(&object.status, &state);
            (state, current)
        }),
    )
}

/// Writes each issuer's Ready condition (every issuer object, valid or not: `issuers` holds
/// both): False with the problem when it has one, else the outcome of a login and health check,
/// re-done when the issuer or its Secrets change and every [`ISSUER_RECHECK`].
fn check_issuers(
    client: &KubeClient,
    issuers: &[&Arc<IssuerObject>],
    built: &HashMap<IssuerId, IssuerRuntime>,
    problems: &HashMap<IssuerId, String>,
    applied: &mut Applied,
) {
    let mut seen = HashSet::new();
    for &object in issuers {
        let id = &object.id;
        seen.insert(id.clone());
        let problem = problems.get(id).cloned();
        let fingerprint = built.get(id).map_or(0, |b| b.fingerprint);
        let versions = applied.secret_versions.get(id).cloned().unwrap_or_default();
        let key = certkeeper_core::schedule::stable_hash(
            json!({"fp": fingerprint, "problem": problem, "secrets": versions, "gen": object.meta.generation})
                .to_string()
                .as_bytes(),
        );
        if applied
            .issuer_checks
            .get(id)
            .is_some_and(|(k, at)| *k == key && at.elapsed() < ISSUER_RECHECK)
        {
            continue;
        }
        applied.issuer_checks.insert(id.clone(), (key, Instant::now()));
        let client = client.clone();
        let vault = built.get(id).map(|b| b.client.clone());
        let object = object.clone();
        let id = id.clone();
        tokio::spawn(async move {
            let (status, reason, message) = match (problem, vault) {
                (Some(p), _) => (ConditionStatus::False, "VaultError", p),
                (None, None) => (
                    ConditionStatus::False,
                    "VaultError",
                    "issuer not usable".to_owned(),
                ),
                (None, Some(vault)) => match vault.login_check().await {
                    Ok(_) => (
                        ConditionStatus::True,
                        "VaultVerified",
                        "Vault verified".to_owned(),
                    ),
                    Err(e) => (
                        ConditionStatus::False,
                        "VaultError",
                        format!("Failed to initialize Vault client: {e}"),
                    ),
                },
            };
            write_issuer_ready(&client, &object, status, reason, &message).await;
            tracing::info!(issuer = %id, ready = ?status, reason, message = %message, "issuer checked");
        });
    }
    applied.issuer_checks.retain(|id, _| seen.contains(id));
}

async fn write_issuer_ready(
    client: &KubeClient,
    object: &IssuerObject,
    ready: ConditionStatus,
    reason: &str,
    message: &str,
) {
    let mut status = object.status.clone();
    set_condition(
        &mut status.conditions,
        Condition::new(CONDITION_READY, ready, reason, message, object.meta.generation),
        &rfc3339(SystemTime::now()),
    );
    let name = &object.meta.name;
    let patch = serde_json::to_value(IssuerConditionsPatch {
        status: IssuerConditions {
            conditions: &status.conditions,
        },
    });
    let written = async {
        let patch = patch.map_err(|e| KubeError::Decode {
            what: format!("the status of {}", object.id),
            message: e.to_string(),
        })?;
        let path = crate::kube::issuer_path(object.kind, Some(&object.meta.namespace), Some(name))?;
        let path = format!("{path}/status");
        client.merge_patch(&path, &patch).await
    }
    .await;
    if let Err(e) = written {
        tracing::warn!(issuer = %object.id, error = %e, "cannot write issuer status");
    }
}

/// The merge patch of an issuer's conditions (the rest of its status is left as it is).
#[derive(serde::Serialize)]
struct IssuerConditionsPatch<'a> {
    status: IssuerConditions<'a>,
}

#[derive(serde::Serialize)]
struct IssuerConditions<'a> {
    conditions: &'a [Condition],
}

/// Records (with the status writer) that a Certificate waits for a change of input.
fn write_waiting_status(status: &StatusWriter, id: &CertId, object: &CertificateObject, waiting: Waiting) {
    let target = Target {
        namespace: object.meta.namespace.clone(),
        name: object.meta.name.clone(),
        generation: object.meta.generation,
        fingerprint: 0,
        verifies: false,
    };
    status.waiting(id, &target, waiting);
}
