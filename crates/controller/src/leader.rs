//! Leader election through a `coordination.k8s.io/v1` Lease, as client-go's leaderelection does
//! it: one replica holds the Lease and reconciles; the others wait and take it over when it has
//! not been renewed for `lease_duration`.
//!
//! - Expiry is judged on the local clock from when this replica last saw the Lease record change
//!   (client-go's rule), so clock skew between nodes does not matter.
//! - Every write is a compare-and-swap on `metadata.resourceVersion`: of two replicas racing for
//!   an expired Lease, one wins and the other sees 409.
//! - The holder renews every `lease_duration / 3`; if it cannot renew for `lease_duration` it has
//!   lost the Lease and must stop reconciling ([`crate::run`] then exits with an error, and the
//!   Deployment restarts it as a candidate).
//! - A graceful stop releases the Lease (holder cleared, duration 1 s) so a standby takes over at
//!   once instead of after the lease time.

use std::time::{Duration, Instant, SystemTime};

use certkeeper_core::time::rfc3339_micros;
use serde_json::{Value, json};

use crate::kube::{KubeClient, KubeError};

/// Lease settings.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// This replica's identity (default: `$HOSTNAME` and the process id).
    pub identity: String,
    pub lease_duration: Duration,
}

impl LeaseConfig {
    pub fn new(namespace: impl Into<String>, identity: impl Into<String>) -> Self {
        LeaseConfig {
            namespace: namespace.into(),
            name: "certkeeper-controller".into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
        }
    }

    /// How often the holder renews.
    pub fn renew_period(&self) -> Duration {
        (self.lease_duration / 3).max(Duration::from_millis(200))
    }

    /// How often a candidate tries to acquire.
    pub fn retry_period(&self) -> Duration {
        (self.lease_duration / 4).max(Duration::from_millis(200))
    }

    fn path(&self) -> Result<String, KubeError> {
        crate::kube::lease_path(&self.namespace, Some(&self.name))
    }
}

/// A default identity: `$HOSTNAME` (the pod name in a Deployment) and the process id.
pub fn default_identity() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "certkeeper".into());
    format!("{host}_{}", std::process::id())
}

/// The election state of one replica.
#[derive(Debug)]
pub struct Elector {
    client: KubeClient,
    config: LeaseConfig,
    /// The last Lease record seen (holder, renewTime, transitions) and when it was first seen.
    observed: Option<(String, String, Instant)>,
    /// When this replica last renewed successfully (it holds the Lease until this + duration).
    renewed: Option<Instant>,
}

impl Elector {
    pub fn new(client: KubeClient, config: LeaseConfig) -> Self {
        Elector {
            client,
            config,
            observed: None,
            renewed: None,
        }
    }

    pub fn config(&self) -> &LeaseConfig {
        &self.config
    }

    /// Whether this replica still holds the Lease by its own last renewal.
    pub fn is_leader(&self) -> bool {
        self.renewed
            .is_some_and(|at| at.elapsed() < self.config.lease_duration)
    }

    /// One acquire-or-renew round; `Ok(true)`: this replica holds the Lease now.
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool, KubeError> {
        let now = SystemTime::now();
        let me = self.config.identity.clone();
        let seconds = self.config.lease_duration.as_secs().max(1);
        let path = self.config.path()?;
        let Some(mut lease) = self.client.get(&path).await? else {
            let body = json!({
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.config.name, "namespace": self.config.namespace},
                "spec": {"holderIdentity": me, "leaseDurationSeconds": seconds,
                         "acquireTime": rfc3339_micros(now), "renewTime": rfc3339_micros(now),
                         "leaseTransitions": 0},
            });
            let collection = crate::kube::lease_path(&self.config.namespace, None)?;
            return match self.client.create(&collection, &body).await {
                Ok(_) => Ok(self.won(Instant::now())),
                Err(e) if e.code() == Some(409) => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.get("spec").cloned().unwrap_or(Value::Null);
        let text = |k: &str| spec.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
        let holder = text("holderIdentity");
        let renew_time = text("renewTime");
        let record_duration = spec
            .get("leaseDurationSeconds")
            .and_then(Value::as_u64)
            .map_or(self.config.lease_duration, Duration::from_secs);
        let seen_at = match &self.observed {
            Some((h, r, at)) if *h == holder && *r == renew_time => *at,
            _ => Instant::now(),
        };
        self.observed = Some((holder.clone(), renew_time, seen_at));
        let expired = holder.is_empty() || seen_at.elapsed() >= record_duration;
        if holder != me && !expired {
            self.renewed = None;
            return Ok(false);
        }
        let transitions = spec.get("leaseTransitions").and_then(Value::as_u64).unwrap_or(0);
        let started = Instant::now();
        let s = &mut lease["spec"];
        if holder != me {
            s["acquireTime"] = json!(rfc3339_micros(now));
            s["leaseTransitions"] = json!(transitions + 1);
        }
        s["holderIdentity"] = json!(me);
        s["leaseDurationSeconds"] = json!(seconds);
        s["renewTime"] = json!(rfc3339_micros(now));
        match self.client.replace(&path, &lease).await {
            Ok(_) => {
                if holder != me {
                    tracing::info!(lease = %path, identity = %me, previous = %holder, "acquired the leader lease");
                }
                Ok(self.won(started))
            }
            Err(e) if e.code() == Some(409) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn won(&mut self, at: Instant) -> bool {
        self.renewed = Some(at);
        true
    }

    /// Gives the Lease up (graceful stop), so a standby takes over at once.
    pub async fn release(&mut self) {
        if !self.is_leader() {
            return;
        }
        self.renewed = None;
        let Ok(path) = self.config.path() else {
            return;
        };
        let Ok(Some(mut lease)) = self.client.get(&path).await else {
            return;
        };
        if lease.pointer("/spec/holderIdentity").and_then(Value::as_str)
            != Some(self.config.identity.as_str())
        {
            return;
        }
        lease["spec"]["holderIdentity"] = json!("");
        lease["spec"]["leaseDurationSeconds"] = json!(1);
        match self.client.replace(&path, &lease).await {
            Ok(_) => tracing::info!(lease = %path, "released the leader lease"),
            Err(e) => tracing::warn!(lease = %path, error = %e, "cannot release the leader lease"),
        }
    }
}
