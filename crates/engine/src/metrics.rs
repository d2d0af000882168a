//! Prometheus metrics shared by both runtimes.
//!
//! Certificates are exported under cert-manager's names and labels
//! (`certmanager_certificate_expiration_timestamp_seconds`, `..._renewal_timestamp_seconds`,
//! `..._ready_status`) so existing dashboards and alerts keep working. What cert-manager lacks
//! is exported under `certkeeper_*`: Vault requests by issuer, operation, status and class with
//! latency, issuance attempts by result and class, next-attempt times and each issuer's circuit.
//!
//! Counters are recorded as events happen; certificate gauges are rendered from a snapshot of
//! the engine's state at scrape time, so a deleted certificate simply stops appearing.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use certkeeper_core::FailureClass;
use certkeeper_vault::{Operation, RequestObserver};

use crate::gate::{CircuitInfo, CircuitState};

/// Latency buckets in seconds: loopback answers in a millisecond, a hung Vault in the timeout.
const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, secs: f64) {
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.counts[i] += 1;
            }
        }
        self.count += 1;
        self.sum += secs;
    }
}

type RequestKey = (String, &'static str, String, &'static str);

#[derive(Debug, Default)]
struct Counters {
    /// (issuer, operation, status, class) -> count
    requests: BTreeMap<RequestKey, u64>,
    /// (issuer, address, operation, status) -> count: which node of a Vault was asked.
    node_requests: BTreeMap<(String, String, &'static str, String), u64>,
    /// (issuer, operation) -> latency
    latency: BTreeMap<(String, &'static str), Histogram>,
    /// (issuer, result, class) -> count
    attempts: BTreeMap<(String, &'static str, &'static str), u64>,
    /// Manifest file -> documents (or the file itself) left out by the last load.
    manifest_problems: BTreeMap<String, usize>,
    /// Re-issues held by the issuance budget.
    deferred_issuances: u64,
    /// (issuer, result, class) -> revocations of superseded certificates
    revocations: BTreeMap<(String, &'static str, &'static str), u64>,
}

/// The process-wide metric store. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    counters: Arc<Mutex<Counters>>,
}

/// One certificate as the metrics see it at scrape time.
#[derive(Debug, Clone)]
pub struct CertificateSample {
    pub name: String,
    pub namespace: String,
    pub issuer_name: String,
    pub issuer_kind: String,
    pub issuer_group: String,
    /// `None` while nothing was issued (cert-manager exports 0 then).
    pub not_after: Option<i64>,
    pub renewal_time: Option<i64>,
    /// Ready condition: Some(true) True, Some(false) False, None Unknown.
    pub ready: Option<bool>,
    pub next_attempt: Option<i64>,
    pub failed_attempts: u32,
    /// Consecutive failed applies (hooks, verify) of the certificate stored.
    pub failed_applies: u32,
    /// The class of the certificate's current failure streak, if it has one.
    pub failure_class: Option<FailureClass>,
    /// The served certificate is shorter than `duration` asked (the role caps the TTL).
    pub shortened: bool,
    /// A re-issue is held by the issuance budget.
    pub deferred: bool,
}

fn class_label(class: Option<FailureClass>) -> &'static str {
    class.map_or("none", FailureClass::as_str)
}

impl Metrics {
    fn lock(&self) -> MutexGuard<'_, Counters> {
        // Counters are updated in single statements: a poisoned lock still holds valid data.
        self.counters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A [`RequestObserver`] that attributes a Vault client's requests to `issuer`.
    pub fn vault_observer(&self, issuer: &str) -> Arc<dyn RequestObserver> {
        Arc::new(IssuerObserver {
            metrics: self.clone(),
            issuer: issuer.to_owned(),
        })
    }

    /// Count one issuance attempt of a certificate of `issuer`.
    pub fn record_attempt(&self, issuer: &str, failure: Option<FailureClass>) {
        let result = if failure.is_some() { "failure" } else { "success" };
        *self
            .lock()
            .attempts
            .entry((issuer.to_owned(), result, class_label(failure)))
            .or_default() += 1;
    }

    /// Count one revocation of a superseded certificate of `issuer` (`failure`: its class).
    pub fn record_revocation(&self, issuer: &str, failure: Option<FailureClass>) {
        let result = if failure.is_some() { "failure" } else { "success" };
        *self
            .lock()
            .revocations
            .entry((issuer.to_owned(), result, class_label(failure)))
            .or_default() += 1;
    }

    /// Count one re-issue held by the issuance budget (once per deferral, not per wake-up).
    pub fn record_deferred_issuance(&self) {
        self.lock().deferred_issuances += 1;
    }

    /// Replace the manifest problems of the last load (file -> count). A file that has none is
    /// absent, so its series ends when it is fixed.
    pub fn set_manifest_problems(&self, per_file: BTreeMap<String, usize>) {
        self.lock().manifest_problems = per_file;
    }

    /// Render everything in the Prometheus text format.
    pub fn render(&self, certificates: &[CertificateSample], circuits: &[(String, CircuitInfo)]) -> String {
        let mut out = String::with_capacity(1024 + certificates.len() * 600);
        render_certificates(&mut out, certificates);
        let c = self.lock();
        header(
            &mut out,
            "certkeeper_vault_requests_total",
            "counter",
            "Requests sent to Vault, by issuer, operation, HTTP status (none: no answer) and failure class (none: success).",
        );
        for ((issuer, op, status, class), n) in &c.requests {
            let _ = writeln!(
                out,
                "certkeeper_vault_requests_total{{issuer=\"{}\",operation=\"{op}\",status=\"{status}\",class=\"{class}\"}} {n}",
                esc(issuer)
            );
        }
        header(
            &mut out,
            "certkeeper_vault_node_requests_total",
            "counter",
            "Requests sent to Vault, by issuer, the address asked (one of its nodes when it has several), operation and HTTP status (none: no answer).",
        );
        for ((issuer, address, op, status), n) in &c.node_requests {
            let _ = writeln!(
                out,
                "certkeeper_vault_node_requests_total{{issuer=\"{}\",address=\"{}\",operation=\"{op}\",status=\"{status}\"}} {n}",
                esc(issuer),
                esc(address)
            );
        }
        header(
            &mut out,
            "certkeeper_vault_request_duration_seconds",
            "histogram",
            "Latency of requests to Vault.",
        );
        for ((issuer, op), h) in &c.latency {
            let labels = format!("issuer=\"{}\",operation=\"{op}\"", esc(issuer));
            for (bound, n) in BUCKETS.iter().zip(h.counts) {
                let _ = writeln!(
                    out,
                    "certkeeper_vault_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "certkeeper_vault_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "certkeeper_vault_request_duration_seconds_sum{{{labels}}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "certkeeper_vault_request_duration_seconds_count{{{labels}}} {}",
                h.count
            );
        }
        header(
            &mut out,
            "certkeeper_issuance_attempts_total",
            "counter",
            "Issuance attempts by issuer, result and failure class.",
        );
        for ((issuer, result, class), n) in &c.attempts {
            let _ = writeln!(
                out,
                "certkeeper_issuance_attempts_total{{issuer=\"{}\",result=\"{result}\",class=\"{class}\"}} {n}",
                esc(issuer)
            );
        }
        header(
            &mut out,
            "certkeeper_revocations_total",
            "counter",
            "Revocations of superseded certificates (Certificates annotated certkeeper.io/revoke: superseded), by issuer, result and failure class.",
        );
        for ((issuer, result, class), n) in &c.revocations {
            let _ = writeln!(
                out,
                "certkeeper_revocations_total{{issuer=\"{}\",result=\"{result}\",class=\"{class}\"}} {n}",
                esc(issuer)
            );
        }
        header(
            &mut out,
            "certkeeper_issuances_deferred_total",
            "counter",
            "Re-issues held by the issuance budget (each deferral once).",
        );
        let _ = writeln!(
            out,
            "certkeeper_issuances_deferred_total {}",
            c.deferred_issuances
        );
        header(
            &mut out,
            "certkeeper_manifest_problems",
            "gauge",
            "Manifest documents (or whole files) left out by the last load, by file; the rest runs.",
        );
        for (file, n) in &c.manifest_problems {
            let _ = writeln!(out, "certkeeper_manifest_problems{{file=\"{}\"}} {n}", esc(file));
        }
        drop(c);
        header(
            &mut out,
            "certkeeper_issuer_circuit_state",
            "gauge",
            "1 for the current circuit state of each issuer (closed, open, probing).",
        );
        for (issuer, info) in circuits {
            for s in [CircuitState::Closed, CircuitState::Open, CircuitState::Probing] {
                let _ = writeln!(
                    out,
                    "certkeeper_issuer_circuit_state{{issuer=\"{}\",state=\"{}\"}} {}",
                    esc(issuer),
                    s.as_str(),
                    u8::from(info.state == s)
                );
            }
        }
        header(
            &mut out,
            "certkeeper_issuer_circuit_open_reason",
            "gauge",
            "1 for why each issuer's circuit is not closed: unavailable (transient failures) or the \
             class of an issuer-wide refusal (auth_rejected, rejected).",
        );
        for (issuer, info) in circuits {
            if let Some(cause) = info.cause.filter(|_| info.state != CircuitState::Closed) {
                let _ = writeln!(
                    out,
                    "certkeeper_issuer_circuit_open_reason{{issuer=\"{}\",reason=\"{}\"}} 1",
                    esc(issuer),
                    cause.as_str()
                );
            }
        }
        header(
            &mut out,
            "certkeeper_issuer_next_probe_timestamp_seconds",
            "gauge",
            "When an issuer whose circuit is open is probed next (Unix seconds).",
        );
        let (now, instant) = (std::time::SystemTime::now(), tokio::time::Instant::now());
        for (issuer, info) in circuits {
            if info.state == CircuitState::Open {
                let at = now + info.probe_at.saturating_duration_since(instant);
                let _ = writeln!(
                    out,
                    "certkeeper_issuer_next_probe_timestamp_seconds{{issuer=\"{}\"}} {}",
                    esc(issuer),
                    certkeeper_core::time::to_unix(at)
                );
            }
        }
        out
    }
}

fn render_certificates(out: &mut String, certs: &[CertificateSample]) {
    let labels = |c: &CertificateSample| {
        format!(
            "name=\"{}\",namespace=\"{}\",issuer_name=\"{}\",issuer_kind=\"{}\",issuer_group=\"{}\"",
            esc(&c.name),
            esc(&c.namespace),
            esc(&c.issuer_name),
            esc(&c.issuer_kind),
            esc(&c.issuer_group)
        )
    };
    header(
        out,
        "certmanager_certificate_expiration_timestamp_seconds",
        "gauge",
        "The date after which the certificate expires. Expressed as a Unix Epoch Time.",
    );
    for c in certs {
        let _ = writeln!(
            out,
            "certmanager_certificate_expiration_timestamp_seconds{{{}}} {}",
            labels(c),
            c.not_after.unwrap_or(0)
        );
    }
    header(
        out,
        "certmanager_certificate_renewal_timestamp_seconds",
        "gauge",
        "The number of seconds before expiration time the certificate should renew.",
    );
    for c in certs {
        let _ = writeln!(
            out,
            "certmanager_certificate_renewal_timestamp_seconds{{{}}} {}",
            labels(c),
            c.renewal_time.unwrap_or(0)
        );
    }
    header(
        out,
        "certmanager_certificate_ready_status",
        "gauge",
        "The ready status of the certificate.",
    );
    for c in certs {
        let current = match c.ready {
            Some(true) => "True",
            Some(false) => "False",
            None => "Unknown",
        };
        for condition in ["True", "False", "Unknown"] {
            let _ = writeln!(
                out,
                "certmanager_certificate_ready_status{{{},condition=\"{condition}\"}} {}",
                labels(c),
                u8::from(condition == current)
            );
        }
    }
    header(
        out,
        "certkeeper_certificate_next_attempt_timestamp_seconds",
        "gauge",
        "When the next issuance attempt of a failing certificate is due (0: none scheduled).",
    );
    for c in certs {
        let _ = writeln!(
            out,
            "certkeeper_certificate_next_attempt_timestamp_seconds{{{}}} {}",
            labels(c),
            c.next_attempt.unwrap_or(0)
        );
    }
    header(
        out,
        "certkeeper_certificate_failed_attempts",
        "gauge",
        "Consecutive failed issuance attempts of the certificate.",
    );
    for c in certs {
        let _ = writeln!(
            out,
            "certkeeper_certificate_failed_attempts{{{}}} {}",
            labels(c),
            c.failed_attempts
        );
    }
    header(
        out,
        "certkeeper_certificate_failed_applies",
        "gauge",
        "Consecutive failed applies of the stored certificate: its hooks failed (non-zero exit, \
         timeout, could not start) or its verify address serves another certificate. Retried \
         without issuing again; 0 once they succeed.",
    );
    for c in certs {
        let _ = writeln!(
            out,
            "certkeeper_certificate_failed_applies{{{}}} {}",
            labels(c),
            c.failed_applies
        );
    }
    header(
        out,
        "certkeeper_certificate_failure_class",
        "gauge",
        "1 for the class of the certificate's current failure streak (transient, auth_rejected, \
         rejected, invalid, apply); no series while it is not failing. apply: stored, but a hook \
         failed or the verify address serves another certificate.",
    );
    for c in certs {
        if let Some(class) = c.failure_class {
            let _ = writeln!(
                out,
                "certkeeper_certificate_failure_class{{{},class=\"{class}\"}} 1",
                labels(c)
            );
        }
    }
    header(
        out,
        "certkeeper_certificate_issuance_deferred",
        "gauge",
        "1 while a re-issue of the certificate the schedule did not plan (its Secret deleted or \
         overwritten, its spec changed) is held because the issuance budget is spent; renewals \
         still go at their time.",
    );
    for c in certs {
        let _ = writeln!(
            out,
            "certkeeper_certificate_issuance_deferred{{{}}} {}",
            labels(c),
            u8::from(c.deferred)
        );
    }
    header(
        out,
        "certkeeper_certificate_shortened",
        "gauge",
        "1 when Vault issued the served certificate shorter than its duration asked (the role caps \
         the TTL): reported once per certificate and spec in the log and Events, shown here always.",
    );
    for c in certs {
        let _ = writeln!(
            out,
            "certkeeper_certificate_shortened{{{}}} {}",
            labels(c),
            u8::from(c.shortened)
        );
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Escape a label value (backslash, double quote, newline).
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[derive(Debug)]
struct IssuerObserver {
    metrics: Metrics,
    issuer: String,
}

impl RequestObserver for IssuerObserver {
    fn observe_at(
        &self,
        address: &str,
        op: Operation,
        status: Option<u16>,
        class: Option<FailureClass>,
        elapsed: Duration,
    ) {
        let label = status.map_or_else(|| "none".to_owned(), |s| s.to_string());
        *self
            .metrics
            .lock()
            .node_requests
            .entry((self.issuer.clone(), address.to_owned(), op.as_str(), label))
            .or_default() += 1;
        self.observe(op, status, class, elapsed);
    }

    fn observe(&self, op: Operation, status: Option<u16>, class: Option<FailureClass>, elapsed: Duration) {
        let status = status.map_or_else(|| "none".to_owned(), |s| s.to_string());
        let mut c = self.metrics.lock();
        *c.requests
            .entry((self.issuer.clone(), op.as_str(), status, class_label(class)))
            .or_default() += 1;
        c.latency
            .entry((self.issuer.clone(), op.as_str()))
            .or_default()
            .observe(elapsed.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_cert_manager_names_and_certkeeper_counters() {
        let m = Metrics::default();
        let obs = m.vault_observer("default/vault");
        obs.observe(Operation::Sign, Some(200), None, Duration::from_millis(3));
        obs.observe(
            Operation::Sign,
            Some(503),
            Some(FailureClass::Transient),
            Duration::from_millis(2),
        );
        obs.observe_at(
            "http://127.0.0.1:8200",
            Operation::Login,
            None,
            Some(FailureClass::Transient),
            Duration::from_secs(3),
        );
        m.record_attempt("default/vault", Some(FailureClass::Transient));
        m.record_attempt("default/vault", None);
        m.set_manifest_problems(BTreeMap::from([("/etc/m/bad.yaml".to_owned(), 2)]));
        let cert = CertificateSample {
            name: "web".into(),
            namespace: "default".into(),
            issuer_name: "vault".into(),
            issuer_kind: "Issuer".into(),
            issuer_group: "cert-manager.io".into(),
            not_after: Some(1_800_000_000),
            renewal_time: Some(1_799_000_000),
            ready: Some(true),
            next_attempt: None,
            failed_attempts: 0,
            failed_applies: 0,
            failure_class: None,
            shortened: true,
            deferred: false,
        };
        let open = CircuitInfo {
            state: CircuitState::Open,
            cause: Some(crate::gate::OpenCause::Refused(FailureClass::AuthRejected)),
            probe_at: tokio::time::Instant::now(),
        };
        let failing = CertificateSample {
            name: "api".into(),
            failure_class: Some(FailureClass::Apply),
            failed_applies: 2,
            ..cert.clone()
        };
        let text = m.render(&[cert, failing], &[("default/vault".into(), open)]);
        let labels = "name=\"web\",namespace=\"default\",issuer_name=\"vault\",issuer_kind=\"Issuer\",issuer_group=\"cert-manager.io\"";
        for line in [
            format!("certmanager_certificate_expiration_timestamp_seconds{{{labels}}} 1800000000"),
            format!("certmanager_certificate_renewal_timestamp_seconds{{{labels}}} 1799000000"),
            format!("certmanager_certificate_ready_status{{{labels},condition=\"True\"}} 1"),
            format!("certmanager_certificate_ready_status{{{labels},condition=\"False\"}} 0"),
            "certkeeper_vault_requests_total{issuer=\"default/vault\",operation=\"sign\",status=\"503\",class=\"transient\"} 1".into(),
            "certkeeper_vault_requests_total{issuer=\"default/vault\",operation=\"sign\",status=\"200\",class=\"none\"} 1".into(),
            "certkeeper_vault_requests_total{issuer=\"default/vault\",operation=\"login\",status=\"none\",class=\"transient\"} 1".into(),
            "certkeeper_vault_node_requests_total{issuer=\"default/vault\",address=\"http://127.0.0.1:8200\",operation=\"login\",status=\"none\"} 1".into(),
            "certkeeper_vault_request_duration_seconds_bucket{issuer=\"default/vault\",operation=\"sign\",le=\"0.005\"} 2".into(),
            "certkeeper_vault_request_duration_seconds_count{issuer=\"default/vault\",operation=\"login\"} 1".into(),
            "certkeeper_issuance_attempts_total{issuer=\"default/vault\",result=\"failure\",class=\"transient\"} 1".into(),
            "certkeeper_issuance_attempts_total{issuer=\"default/vault\",result=\"success\",class=\"none\"} 1".into(),
            "certkeeper_issuer_circuit_state{issuer=\"default/vault\",state=\"open\"} 1".into(),
            "certkeeper_issuer_circuit_open_reason{issuer=\"default/vault\",reason=\"auth_rejected\"} 1".into(),
            "certkeeper_manifest_problems{file=\"/etc/m/bad.yaml\"} 2".into(),
            format!("certkeeper_certificate_shortened{{{labels}}} 1"),
            format!(
                "certkeeper_certificate_failure_class{{{},class=\"apply\"}} 1",
                labels.replace("name=\"web\"", "name=\"api\"")
            ),
            format!(
                "certkeeper_certificate_failed_applies{{{}}} 2",
                labels.replace("name=\"web\"", "name=\"api\"")
            ),
            format!(
                "certkeeper_certificate_failed_attempts{{{}}} 0",
                labels.replace("name=\"web\"", "name=\"api\"")
            ),
            "certkeeper_issuer_circuit_state{issuer=\"default/vault\",state=\"closed\"} 0".into(),
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
        }
        // A certificate that is not failing has no failure class series.
        assert!(
            !text.contains(&format!("certkeeper_certificate_failure_class{{{labels}")),
            "{text}"
        );
        // Every sample line belongs to a declared family.
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let name = l.split(['{', ' ']).next().unwrap();
            let family = name
                .trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count");
            assert!(
                text.contains(&format!("# TYPE {family} ")),
                "{name} has no TYPE line"
            );
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(esc("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
