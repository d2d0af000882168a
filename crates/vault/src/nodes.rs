//! Several addresses for one Vault: which node a request goes to, and moving on at once when
//! that node fails.
//!
//! cert-manager's `spec.vault.server` is one address, usually a load balancer. Without one, each
//! node of a raft cluster is addressed directly; a node may be the active one, a standby (which
//! forwards what it cannot serve), sealed, uninitialised or gone. Nodes are ranked by what
//! `sys/health` last said ([`rank`]: active first, then standbys; sealed, uninitialised,
//! DR secondaries and unreachable nodes skipped) and a request tries them in that order: a
//! failure of the node rather than of the request ([`VaultError::is_node_failure`]: no answer, a
//! 307 to a dead leader, 503 sealed) marks it failed and the same request goes on to the next,
//! without waiting for the issuer's circuit breaker. Any other answer is Vault's verdict and is
//! returned as it is. When every node is marked failed, a request tries one node, a different
//! one each time ([`State::spread`]), so the breaker's single probe walks the addresses.
//!
//! A background task (started by the first request, ended when the client is dropped) probes
//! every node's `sys/health` every [`Schedule::interval`], and sooner after a node failed, never
//! more often than [`Schedule::spacing`]. With one address none of this runs: requests go
//! straight to it, as before.

use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::time::Duration;

use reqwest::Method;
use serde::Deserialize;
use tokio::sync::Notify;
use tokio::task::{AbortHandle, JoinSet};

use certkeeper_core::Secret;

use crate::client::{Health, HealthStatus};
use crate::error::{ErrorKind, Operation, VaultError};
use crate::path::ApiPath;
use crate::transport::{Answer, ErasedBody, Scope, Transport};

/// When the nodes' health is probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Schedule {
    /// Between two rounds while nothing fails.
    pub interval: Duration,
    /// The least time between two rounds, however many failures ask for one.
    pub spacing: Duration,
    /// Whether rounds run in the background at all (off: only [`Nodes::health`] probes; for
    /// tests that count requests).
    pub background: bool,
}

impl Schedule {
    pub const DEFAULT: Schedule = Schedule {
        interval: Duration::from_secs(10),
        // After a failure, the next round comes this soon: a raft election takes about 2 s
        // (performance_multiplier = 1), and the new active node should be known right after.
        spacing: Duration::from_secs(1),
        background: true,
    };

    /// How long to wait before the next round: `interval`, or only `spacing` when a failure
    /// asked for one (`kicked`), whichever the elapsed time since the last round allows.
    pub fn next_round(&self, since_last: Duration, kicked: bool) -> Duration {
        let wanted = if kicked {
            self.spacing
        } else {
            self.interval.max(self.spacing)
        };
        wanted.saturating_sub(since_last)
    }
}

/// What is known of one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NodeState {
    /// Not probed yet, or it answered a request since it last failed.
    Unknown,
    /// What its `sys/health` said.
    Reported(HealthStatus),
    /// It failed a request or a probe (no answer, redirect, sealed); skipped until a probe or a
    /// request finds it working.
    Failed,
}

/// The order nodes are preferred in (lower first); `None`: skipped.
pub(crate) fn rank(state: NodeState) -> Option<u8> {
    match state {
        NodeState::Reported(HealthStatus::Active) => Some(0),
        NodeState::Reported(HealthStatus::PerformanceStandby) => Some(1),
        NodeState::Reported(HealthStatus::Standby) => Some(2),
        NodeState::Unknown => Some(3),
        NodeState::Reported(
            HealthStatus::Sealed | HealthStatus::Uninitialized | HealthStatus::DrSecondary,
        )
        | NodeState::Failed => None,
    }
}

/// The nodes a request tries, in order: by [`rank`], and among equals from `current` (the node
/// that answered last) on, so requests stay on one node while it works.
pub(crate) fn candidates(states: &[NodeState], current: usize) -> Vec<usize> {
    let n = states.len();
    let mut order: Vec<(u8, usize, usize)> = states
        .iter()
        .enumerate()
        .filter_map(|(i, s)| rank(*s).map(|r| (r, (i + n - current % n.max(1)) % n.max(1), i)))
        .collect();
    order.sort_unstable();
    order.into_iter().map(|(_, _, i)| i).collect()
}

#[derive(Debug)]
struct State {
    nodes: Vec<NodeState>,
    current: usize,
    /// The node the next request tries when every node is marked failed; advances each time.
    spread: usize,
}

pub(crate) struct Nodes {
    inner: Arc<Inner>,
}

struct Inner {
    transports: Vec<Transport>,
    state: Mutex<State>,
    schedule: Schedule,
    /// Asks the prober for a round soon (a node failed).
    kick: Arc<Notify>,
    prober: OnceLock<AbortHandle>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(prober) = self.prober.get() {
            prober.abort();
        }
    }
}

impl std::fmt::Debug for Nodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(&self.inner.transports).finish()
    }
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        // The state is a few marks; one left half-updated by a panic is still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Nodes {
    /// `transports` is not empty (the client builds one per address).
    pub fn new(transports: Vec<Transport>, schedule: Schedule) -> Nodes {
        let n = transports.len();
        Nodes {
            inner: Arc::new(Inner {
                transports,
                state: Mutex::new(State {
                    nodes: vec![NodeState::Unknown; n],
                    current: 0,
                    spread: 0,
                }),
                schedule,
                kick: Arc::new(Notify::new()),
                prober: OnceLock::new(),
            }),
        }
    }

    pub fn first(&self) -> Option<&Transport> {
        self.inner.transports.first()
    }

    /// The configured addresses and what is known of each.
    pub fn states(&self) -> Vec<(String, NodeState)> {
        let state = self.inner.state();
        self.inner
            .transports
            .iter()
            .zip(&state.nodes)
            .map(|(t, s)| (t.address().to_owned(), *s))
            .collect()
    }

    /// One request, to the best node that works (see the module documentation).
    pub async fn request(
        &self,
        op: Operation,
        method: Method,
        path: &ApiPath,
        body: Option<&dyn ErasedBody>,
        token: Option<&Secret>,
        scope: Scope,
    ) -> Result<Answer, VaultError> {
        let inner = &self.inner;
        if let [only] = inner.transports.as_slice() {
            return only.request(op, method, path, body, token, scope).await;
        }
        self.start_prober();
        let order = {
            let mut state = inner.state();
            let order = candidates(&state.nodes, state.current);
            if order.is_empty() {
                let next = state.spread % state.nodes.len();
                state.spread = state.spread.wrapping_add(1);
                vec![next]
            } else {
                order
            }
        };
        let mut last = None;
        for i in order {
            let transport = &inner.transports[i];
            match transport
                .request(op, method.clone(), path, body, token, scope)
                .await
            {
                Err(e) if e.is_node_failure() => {
                    tracing::debug!(address = transport.address(), error = %e, "Vault node failed; trying the next address");
                    let mut state = inner.state();
                    // A node believed usable failed: probe every node soon. One already known
                    // not to serve (tried because none does) teaches nothing new; the regular
                    // rounds and the next requests, each on another node, find one that recovers.
                    if rank(state.nodes[i]).is_some() {
                        inner.kick.notify_one();
                    }
                    state.nodes[i] = NodeState::Failed;
                    drop(state);
                    last = Some(e);
                }
                answered => {
                    let mut state = inner.state();
                    state.current = i;
                    if rank(state.nodes[i]).is_none() {
                        state.nodes[i] = NodeState::Unknown;
                    }
                    return answered;
                }
            }
        }
        Err(last.unwrap_or_else(|| VaultError::config(op, "no Vault address to try")))
    }

    /// `sys/health` of every node now (updating what is known of each); the best answer, or the
    /// first node's error when none answered.
    pub async fn health(&self) -> Result<Health, VaultError> {
        if let [only] = self.inner.transports.as_slice() {
            return health(only).await;
        }
        let results = probe_round(&self.inner).await;
        let mut best: Option<Health> = None;
        let mut first_error = None;
        for result in results {
            match result {
                Ok(h) => {
                    if best
                        .as_ref()
                        .is_none_or(|b| health_order(h.status) < health_order(b.status))
                    {
                        best = Some(h);
                    }
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match (best, first_error) {
            (Some(h), _) => Ok(h),
            (None, Some(e)) => Err(e),
            (None, None) => Err(VaultError::config(Operation::Health, "no Vault address to probe")),
        }
    }

    fn start_prober(&self) {
        let inner = &self.inner;
        if !inner.schedule.background || inner.prober.get().is_some() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        // `get_or_init` runs one initialiser however many requests race here.
        inner.prober.get_or_init(|| {
            runtime
                .spawn(probe_loop(Arc::downgrade(inner), inner.kick.clone()))
                .abort_handle()
        });
    }
}

/// Probe rounds until the client is dropped ([`Inner`]'s drop aborts the task; between rounds
/// it holds no reference that would keep the client's nodes alive).
async fn probe_loop(weak: Weak<Inner>, kick: Arc<Notify>) {
    loop {
        let Some(inner) = weak.upgrade() else { return };
        let schedule = inner.schedule;
        let started = tokio::time::Instant::now();
        probe_round(&inner).await;
        drop(inner);
        // A kick (a node failed, perhaps during this round) brings the next round forward to
        // `spacing` after this one began; otherwise it comes after `interval`.
        let kicked = tokio::select! {
            () = kick.notified() => true,
            () = tokio::time::sleep(schedule.next_round(started.elapsed(), false)) => false,
        };
        if kicked {
            tokio::time::sleep(schedule.next_round(started.elapsed(), true)).await;
        }
    }
}

/// `sys/health` of every node at once, each bounded by the schedule's timeout; updates the
/// nodes' states and returns the results in node order.
async fn probe_round(inner: &Arc<Inner>) -> Vec<Result<Health, VaultError>> {
    let mut set = JoinSet::new();
    for i in 0..inner.transports.len() {
        let inner = inner.clone();
        set.spawn(async move { (i, health(&inner.transports[i]).await) });
    }
    let mut results: Vec<Option<Result<Health, VaultError>>> =
        (0..inner.transports.len()).map(|_| None).collect();
    while let Some(joined) = set.join_next().await {
        if let Ok((i, result)) = joined {
            results[i] = Some(result);
        }
    }
    let mut state = inner.state();
    let mut out = Vec::with_capacity(results.len());
    for (i, result) in results.into_iter().enumerate() {
        let result = result.unwrap_or_else(|| {
            Err(VaultError::config(
                Operation::Health,
                "health probe did not finish",
            ))
        });
        state.nodes[i] = match &result {
            Ok(h) => NodeState::Reported(h.status),
            Err(_) => NodeState::Failed,
        };
        out.push(result);
    }
    tracing::debug!(nodes = ?state.nodes, "probed the health of every Vault address");
    out
}

/// Which health answer [`Nodes::health`] reports when nodes differ (lower first).
fn health_order(status: HealthStatus) -> u8 {
    rank(NodeState::Reported(status)).unwrap_or(match status {
        HealthStatus::Sealed => 10,
        HealthStatus::Uninitialized => 11,
        _ => 12,
    })
}

/// Non-2xx statuses with which sys/health reports a node's state.
const HEALTH_ANSWERS: &[u16] = &[429, 472, 473, 501, 503];

/// `sys/health` of one node, without namespace header or token. Sealed, standby and
/// uninitialised are answers, not errors.
pub(crate) async fn health(transport: &Transport) -> Result<Health, VaultError> {
    let op = Operation::Health;
    let answer = transport
        .request_accepting(
            op,
            Method::GET,
            &ApiPath::fixed("sys/health"),
            None,
            None,
            Scope::Root,
            HEALTH_ANSWERS,
        )
        .await?;
    let status = health_status(answer.status).ok_or_else(|| {
        VaultError::new(
            op,
            ErrorKind::Decode {
                status: answer.status,
                reason: "not a sys/health status".into(),
            },
        )
    })?;
    #[derive(Deserialize, Default)]
    struct HealthBody {
        version: Option<String>,
        cluster_name: Option<String>,
    }
    let body: HealthBody = answer.decode(op)?;
    Ok(Health {
        status,
        version: body.version,
        cluster_name: body.cluster_name,
    })
}

fn health_status(code: u16) -> Option<HealthStatus> {
    Some(match code {
        200 => HealthStatus::Active,
        429 => HealthStatus::Standby,
        472 => HealthStatus::DrSecondary,
        473 => HealthStatus::PerformanceStandby,
        501 => HealthStatus::Uninitialized,
        503 => HealthStatus::Sealed,
        _ => return None,
    })
}

#[cfg(test)]
#[path = "nodes_tests.rs"]
mod tests;
