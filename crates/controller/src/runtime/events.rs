//! Kubernetes Events about Certificates: queued without blocking the engine, posted a few at a
//! time, dropped (and counted) when the queue is full.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use certkeeper_core::time::rfc3339_unix;

use super::*;

/// Events waiting to be posted; more are dropped (and logged) rather than queued without bound
/// (each is a few hundred bytes: 1,000 Certificates issued at once queue 2,000).
pub(super) const EVENT_QUEUE: usize = 4096;
/// Events posted at once.
const EVENT_POSTS_IN_FLIGHT: usize = 8;

static EVENT_SEQ: AtomicU64 = AtomicU64::new(0);

/// The Events' source and reporting component.
const COMPONENT: &str = "certkeeper";

/// An Event to post about a Certificate.
#[derive(Debug)]
pub(super) struct Outgoing {
    namespace: String,
    name: String,
    uid: String,
    kind: &'static str,
    reason: &'static str,
    message: String,
}

impl KubeRuntime {
    /// Logs an engine event, records an attempt's start with the status writer and queues
    /// the Certificate's Event.
    pub(super) fn on_event(&self, job: &CertJob, event: EngineEvent) {
        let id = &job.id;
        event.log(id);
        let Some(meta) = self.tracked(id).map(|t| t.meta) else {
            return;
        };
        match event {
            EngineEvent::Issuing { reason } => {
                let message = reason.message().to_owned();
                if let Some(target) = self.target(id) {
                    self.status.issuing(id, &target, reason.as_str(), message.clone());
                }
                self.queue_event(&meta, "Normal", "Issuing", message);
            }
            EngineEvent::Issued {
                revision,
                serial,
                not_after,
                warning,
            } => {
                let mut message = format!(
                    "The certificate has been successfully issued (revision {revision}, serial {serial}, notAfter {})",
                    rfc3339_unix(not_after)
                );
                if let Some(w) = warning {
                    message.push_str(&format!("; {w}"));
                }
                self.queue_event(&meta, "Normal", "Issued", message);
            }
            EngineEvent::Failed {
                class,
                message,
                attempts,
                next_attempt,
            } => {
                let next = crate::status::next_attempt_text(next_attempt);
                let text = format!(
                    "{message} ({}; attempt {attempts}; next attempt {next})",
                    class.as_str()
                );
                self.queue_event(&meta, "Warning", "Failed", text);
            }
            EngineEvent::IssuanceDeferred(deferral) => {
                let message = format!("The certificate's {}", deferral.message());
                self.queue_event(&meta, "Warning", "IssuanceDeferred", message);
            }
        }
    }

    pub(super) fn queue_event(
        &self,
        meta: &CertMeta,
        kind: &'static str,
        reason: &'static str,
        message: String,
    ) {
        let event = Outgoing {
            namespace: meta.namespace.clone(),
            name: meta.name.clone(),
            uid: meta.uid.clone(),
            kind,
            reason,
            message,
        };
        if self.events.try_send(event).is_err() {
            let dropped = self.dropped_events.fetch_add(1, Ordering::Relaxed);
            if dropped.is_multiple_of(100) {
                tracing::warn!(dropped = dropped + 1, "event queue full; dropping Events");
            }
        }
    }
}

pub(super) async fn post_events(client: KubeClient, mut rx: mpsc::Receiver<Outgoing>) {
    let mut posting = tokio::task::JoinSet::new();
    while let Some(event) = rx.recv().await {
        while posting.len() >= EVENT_POSTS_IN_FLIGHT {
            posting.join_next().await;
        }
        posting.spawn(post_event(client.clone(), event));
        while posting.try_join_next().is_some() {}
    }
}

async fn post_event(client: KubeClient, event: Outgoing) {
    let Outgoing {
        namespace,
        name,
        uid,
        kind,
        reason,
        message,
    } = event;
    let now = SystemTime::now();
    let nanos = now
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let seq = EVENT_SEQ.fetch_add(1, Ordering::Relaxed);
    let stamp = k8s_openapi::jiff::Timestamp::try_from(now).ok().map(Time);
    let body = Event {
        metadata: ObjectMeta {
            name: Some(format!("{name}.{nanos:x}{seq:x}")),
            namespace: Some(namespace.clone()),
            ..ObjectMeta::default()
        },
        involved_object: ObjectReference {
            api_version: Some("cert-manager.io/v1".to_owned()),
            kind: Some("Certificate".to_owned()),
            name: Some(name),
            namespace: Some(namespace.clone()),
            uid: Some(uid),
            ..ObjectReference::default()
        },
        reason: Some(reason.to_owned()),
        message: Some(message),
        type_: Some(kind.to_owned()),
        source: Some(EventSource {
            component: Some(COMPONENT.to_owned()),
            host: None,
        }),
        reporting_component: Some(COMPONENT.to_owned()),
        first_timestamp: stamp.clone(),
        last_timestamp: stamp,
        count: Some(1),
        ..Event::default()
    };
    let created = async { client.create_object(&events_path(&namespace)?, &body).await }.await;
    if let Err(e) = created {
        tracing::debug!(error = %e, "cannot post an Event");
    }
}
