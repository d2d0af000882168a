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

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};

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

/// `t` as a Lease time (metav1.MicroTime: microseconds).
fn micro_time(t: SystemTime) -> Option<MicroTime> {
    let t = k8s_openapi::jiff::Timestamp::try_from(t).ok()?;
    let micros = t.as_microsecond();
    k8s_openapi::jiff::Timestamp::from_microsecond(micros)
        .ok()
        .map(MicroTime)
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
        let now = micro_time(SystemTime::now());
        let me = self.config.identity.clone();
        let seconds = i32::try_from(self.config.lease_duration.as_secs().max(1)).unwrap_or(i32::MAX);
        let path = self.config.path()?;
        let Some(mut lease) = self.client.get_object::<Lease>(&path).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(me),
                    lease_duration_seconds: Some(seconds),
                    acquire_time: now.clone(),
                    renew_time: now,
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            let collection = crate::kube::lease_path(&self.config.namespace, None)?;
            return match self.client.create_object(&collection, &lease).await {
                Ok(_) => Ok(self.won(Instant::now())),
                Err(e) if e.code() == Some(409) => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.get_or_insert_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let renew_time = spec
            .renew_time
            .as_ref()
            .map(|t| t.0.to_string())
            .unwrap_or_default();
        let record_duration = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
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
        let started = Instant::now();
        if holder != me {
            spec.acquire_time = now.clone();
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
        }
        spec.holder_identity = Some(me.clone());
        spec.lease_duration_seconds = Some(seconds);
        spec.renew_time = now;
        match self.client.replace_object(&path, &lease).await {
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
        let Ok(Some(mut lease)) = self.client.get_object::<Lease>(&path).await else {
            return;
        };
        let spec = lease.spec.get_or_insert_default();
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return;
        }
        spec.holder_identity = Some(String::new());
        spec.lease_duration_seconds = Some(1);
        match self.client.replace_object(&path, &lease).await {
            Ok(_) => tracing::info!(lease = %path, "released the leader lease"),
            Err(e) => tracing::warn!(lease = %path, error = %e, "cannot release the leader lease"),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn lease_times_are_written_with_microseconds() {
        let t = std::time::UNIX_EPOCH + Duration::from_nanos(1_800_000_000_123_456_789);
        let written = serde_json::to_value(micro_time(t).unwrap()).unwrap();
        assert_eq!(written, "2027-01-15T08:00:00.123456Z");
    }
}
