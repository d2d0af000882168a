//! The pure half of a reconcile: what the controller should do, as functions of the objects it
//! mirrors, the referenced Secrets, the engine's state and what the last reconcile did. A
//! reconcile ([`crate::run`]) gathers (store snapshots, referenced Secrets, the engine's holds
//! and snapshot), plans with these functions, then acts (the engine's issuers and certificates,
//! status notes, renewals, target-Secret checks). Nothing here talks to a server; every rule is
//! unit-tested below.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use certkeeper_core::spec::{Certificate, VaultIssuer};
use certkeeper_engine::build::VaultExtras;
use certkeeper_engine::state::IssueReason;
use certkeeper_engine::{CertId, CertJob, CertStatus, IssuerId};
use serde_json::Value;

use crate::kube::{KubeClient, meta_str};
use crate::load::{CertMeta, LoadError, SecretCache, build_certificate, issuer_id_of, referenced_secrets};
use crate::objects::{CertificateObject, IssuerObject, IssuerSpec};
use crate::runtime::{TLS_CRT, Tracked};
use crate::status::Waiting;

/// An Issuer or ClusterIssuer with a valid Vault spec.
#[derive(Debug, Clone)]
pub struct FoundIssuer {
    pub id: IssuerId,
    /// The namespace of its Secrets (the cluster resource namespace for a ClusterIssuer).
    pub namespace: String,
    pub vault: VaultIssuer,
    /// What its annotations add to `vault`.
    pub extras: VaultExtras,
    pub object: Arc<IssuerObject>,
}

/// An Issuer or ClusterIssuer whose spec is invalid: not Ready, with the fields named.
#[derive(Debug, Clone)]
pub struct InvalidIssuer {
    pub id: IssuerId,
    pub object: Arc<IssuerObject>,
    pub problem: String,
}

/// The issuer objects, sorted.
#[derive(Debug, Default)]
pub struct IssuerObjects {
    pub found: Vec<FoundIssuer>,
    pub invalid: Vec<InvalidIssuer>,
}

/// Sorts Issuer and ClusterIssuer objects into Vault issuers and invalid ones (other issuer
/// types are left alone).
pub fn sort_issuers(objects: impl IntoIterator<Item = Arc<IssuerObject>>) -> IssuerObjects {
    let mut sorted = IssuerObjects::default();
    for object in objects {
        match &object.spec {
            IssuerSpec::Vault {
                namespace,
                vault,
                extras,
            } => sorted.found.push(FoundIssuer {
                id: object.id.clone(),
                namespace: namespace.clone(),
                vault: (**vault).clone(),
                extras: extras.clone(),
                object: object.clone(),
            }),
            IssuerSpec::Other => {}
            IssuerSpec::Invalid(problem) => sorted.invalid.push(InvalidIssuer {
                id: object.id.clone(),
                problem: problem.to_string(),
                object: object.clone(),
            }),
        }
    }
    sorted
}

/// The Secrets the issuers reference: (namespace, name).
pub fn wanted_secrets(found: &[FoundIssuer]) -> HashSet<(String, String)> {
    found
        .iter()
        .flat_map(|i| referenced_secrets(&i.namespace, &i.vault))
        .collect()
}

/// The referenced Secrets' versions per issuer, against the last reconcile's.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SecretVersions {
    /// Issuer id -> the resourceVersion of each referenced Secret (`None`: missing).
    pub versions: HashMap<IssuerId, Vec<Option<String>>>,
    /// Issuers whose referenced Secrets changed since the last reconcile.
    pub changed: Vec<IssuerId>,
    /// Issuer id -> the referenced Secrets that do not exist ("namespace/name").
    pub missing: HashMap<IssuerId, Vec<String>>,
}

pub fn secret_versions(
    found: &[FoundIssuer],
    secrets: &SecretCache,
    before: &HashMap<IssuerId, Vec<Option<String>>>,
) -> SecretVersions {
    let mut out = SecretVersions::default();
    for issuer in found {
        let refs = referenced_secrets(&issuer.namespace, &issuer.vault);
        let versions: Vec<Option<String>> = refs
            .iter()
            .map(|k| {
                secrets
                    .get(k)
                    .cloned()
                    .flatten()
                    .map(|s| meta_str(&s, "resourceVersion").to_owned())
            })
            .collect();
        if before.get(&issuer.id).is_some_and(|old| *old != versions) {
            out.changed.push(issuer.id.clone());
        }
        let missing: Vec<String> = refs
            .iter()
            .zip(&versions)
            .filter(|(_, v)| v.is_none())
            .map(|((ns, name), _)| format!("{ns}/{name}"))
            .collect();
        if !missing.is_empty() {
            out.missing.insert(issuer.id.clone(), missing);
        }
        out.versions.insert(issuer.id.clone(), versions);
    }
    out
}

/// The Certificates: the engine's jobs, and those that wait for a change of their spec.
#[derive(Debug, Default)]
pub struct CertificatePlan {
    /// Shared with the build cache and the engine: one copy of each job.
    pub jobs: Vec<Arc<CertJob>>,
    pub tracked: HashMap<CertId, Tracked>,
    /// Invalid Certificates: (id, object, what is wrong).
    pub invalid: Vec<(CertId, Arc<CertificateObject>, String)>,
    /// Renew requests (cmctl's `Issuing=True`, `ManuallyTriggered`) not acted on yet:
    /// (id, the request's time).
    pub renew: Vec<(CertId, String)>,
    /// Certificates whose renew request is gone: no longer remembered as handled.
    pub renew_gone: Vec<CertId>,
    /// Certificates of external issuers (another API group): no job, no status write.
    pub external: Vec<(CertId, String)>,
}

impl CertificatePlan {
    /// (id, fingerprint) of every job: a change means the engine's certificates change.
    pub fn job_set(&self) -> BTreeMap<CertId, u64> {
        self.jobs.iter().map(|j| (j.id.clone(), j.fingerprint)).collect()
    }

    /// Certificate id -> its issuer.
    pub fn issuer_of_job(&self) -> HashMap<CertId, IssuerId> {
        self.jobs
            .iter()
            .map(|j| (j.id.clone(), j.issuer.clone()))
            .collect()
    }
}

/// What was built of each Certificate by earlier reconciles: a Certificate is built again only
/// when its spec or metadata, or its issuer's fingerprint, changes. A status write (the most
/// frequent change of a Certificate: several per issuance) builds nothing.
#[derive(Debug, Default)]
pub struct BuiltJobs {
    /// Boxed: the table holds pointers, not thousands of jobs inline (and twice that while it
    /// grows).
    entries: HashMap<CertId, Box<BuiltJob>>,
}

#[derive(Debug)]
struct BuiltJob {
    spec: Arc<Certificate>,
    uid: String,
    generation: i64,
    issuer_fingerprint: u64,
    job: Arc<CertJob>,
    meta: Arc<CertMeta>,
}

impl BuiltJobs {
    /// The job and settings of `object`, built when nothing built earlier still holds.
    fn get_or_build(
        &mut self,
        client: &KubeClient,
        object: &CertificateObject,
        fingerprints: &HashMap<&str, u64>,
    ) -> Result<(Arc<CertJob>, Arc<CertMeta>), LoadError> {
        let spec = object.spec.as_ref().map_err(Clone::clone)?;
        let issuer = issuer_id_of(spec)?;
        let issuer_fingerprint = fingerprints.get(issuer.as_str()).copied().unwrap_or(0);
        if let Some(b) = self.entries.get_mut(&object.id)
            && b.issuer_fingerprint == issuer_fingerprint
            && b.generation == object.meta.generation
            && b.uid == object.meta.uid
            && (Arc::ptr_eq(&b.spec, spec) || b.spec == *spec)
        {
            // Hold the mirror's copy of the spec, not a second one.
            b.spec = spec.clone();
            return Ok((b.job.clone(), b.meta.clone()));
        }
        let (job, meta) = build_certificate(client, object, fingerprints)?;
        let (job, meta) = (Arc::new(job), Arc::new(meta));
        self.entries.insert(
            object.id.clone(),
            Box::new(BuiltJob {
                spec: spec.clone(),
                uid: object.meta.uid.clone(),
                generation: object.meta.generation,
                issuer_fingerprint,
                job: job.clone(),
                meta: meta.clone(),
            }),
        );
        Ok((job, meta))
    }
}

/// Jobs from the Certificate objects, with the issuers' fingerprints (`fingerprints`: issuer id
/// -> fingerprint, of the issuers built), and the renew requests not in `renews_handled`;
/// `built` keeps what was built for the next plan.
pub fn plan_certificates(
    client: &KubeClient,
    objects: impl IntoIterator<Item = Arc<CertificateObject>>,
    fingerprints: &HashMap<&str, u64>,
    renews_handled: &HashMap<CertId, String>,
    built: &mut BuiltJobs,
) -> CertificatePlan {
    let mut plan = CertificatePlan::default();
    let mut seen = HashSet::new();
    for object in objects {
        if let Some(issuer_ref) = &object.external_issuer {
            plan.external
                .push((object.id.clone(), issuer_ref.qualified_name()));
            continue;
        }
        seen.insert(object.id.clone());
        match built.get_or_build(client, &object, fingerprints) {
            Ok((job, meta)) => {
                match crate::ops::renew_request_of(&object.status, IssueReason::ManuallyTriggered.message()) {
                    Some(at) if renews_handled.get(&job.id).map(String::as_str) != Some(at) => {
                        plan.renew.push((job.id.clone(), at.to_owned()));
                    }
                    Some(_) => {}
                    None => {
                        if renews_handled.contains_key(&job.id) {
                            plan.renew_gone.push(job.id.clone());
                        }
                    }
                }
                plan.tracked.insert(
                    job.id.clone(),
                    Tracked {
                        meta,
                        fingerprint: job.fingerprint,
                    },
                );
                plan.jobs.push(job);
            }
            Err(message) => {
                plan.invalid
                    .push((object.id.clone(), object.clone(), message.to_string()));
            }
        }
    }
    built.entries.retain(|id, _| seen.contains(id));
    plan
}

/// The status notes of Certificates that wait for their input, each written once per change of
/// what it says, and what is remembered as written afterwards.
#[derive(Debug, Default)]
pub struct Notes {
    /// (id, object, note) to record with the status writer.
    pub write: Vec<(CertId, Arc<CertificateObject>, Waiting)>,
    /// Certificate id -> the missing-issuer message written.
    pub missing_issuer: HashMap<CertId, String>,
    /// Certificate id -> the validation errors written.
    pub invalid: HashMap<CertId, String>,
}

/// Notes for Certificates whose issuer is missing or unusable (the engine waits for the issuer
/// without writing anything, so the status says it here) and for invalid Certificates (there is
/// no webhook to refuse them at admission, as cert-manager's does). `object_of` finds a
/// Certificate's object; `written_*` are what the last reconcile wrote.
pub fn waiting_notes(
    plan: &CertificatePlan,
    object_of: impl Fn(&str) -> Option<Arc<CertificateObject>>,
    built: &HashSet<IssuerId>,
    problems: &HashMap<IssuerId, String>,
    written_missing: &HashMap<CertId, String>,
    written_invalid: &HashMap<CertId, String>,
) -> Notes {
    let mut notes = Notes::default();
    for (id, issuer) in plan.issuer_of_job() {
        if built.contains(&issuer) {
            continue;
        }
        let message = match problems.get(&issuer) {
            Some(p) => format!("issuer {issuer} is not usable: {p}"),
            None => format!("issuer {issuer} does not exist or is not a Vault issuer"),
        };
        if written_missing.get(&id) != Some(&message)
            && let Some(object) = object_of(&id)
        {
            notes.write.push((
                id.clone(),
                object,
                Waiting {
                    reason: "IssuerNotReady",
                    ready_message: format!("Waiting for the issuer: {message}"),
                    message: message.clone(),
                },
            ));
        }
        notes.missing_issuer.insert(id, message);
    }
    for (id, object, message) in &plan.invalid {
        if written_invalid.get(id) != Some(message) {
            notes.write.push((
                id.clone(),
                object.clone(),
                Waiting {
                    reason: "InvalidSpec",
                    ready_message: format!("The spec is invalid: {message}"),
                    message: message.clone(),
                },
            ));
        }
        notes.invalid.insert(id.clone(), message.clone());
    }
    notes
}

/// Failing certificates of issuers whose referenced Secrets changed: retried at once (the
/// change may be the fix).
pub fn retries_after_secret_change(snapshot: &[CertStatus], changed: &[IssuerId]) -> Vec<CertId> {
    if changed.is_empty() {
        return Vec::new();
    }
    snapshot
        .iter()
        .filter(|s| s.state.failure.is_some() && changed.contains(&s.job.issuer))
        .map(|s| s.job.id.clone())
        .collect()
}

/// The serial of the first certificate in a Secret's `tls.crt` (only that key is decoded).
pub fn serial_of(secret: &Value) -> Option<String> {
    use base64::Engine;
    let encoded = secret.get("data")?.get(TLS_CRT)?.as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?;
    let pem = String::from_utf8(bytes).ok()?;
    certkeeper_core::pki::describe_pem_bundle(&pem)
        .ok()?
        .into_iter()
        .next()
        .map(|c| c.serial)
}

/// What the controller keeps of a target Secret (the watch of the Secrets labelled
/// [`FAO_LABEL`](crate::runtime::FAO_LABEL)): all [`target_secret_checks`] reads, its
/// resourceVersion and the serial of the certificate it serves, taken once as the object
/// arrives. Its keys, certificates and keystores are not kept (a few KB per Secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSecret {
    pub resource_version: String,
    /// The serial of the first certificate in `tls.crt` ([`serial_of`]); `None`: no `tls.crt`
    /// or none readable (a next-private-key Secret, a Secret edited by hand).
    pub serial: Option<String>,
}

impl TargetSecret {
    pub fn of(secret: &Value) -> Self {
        TargetSecret {
            resource_version: meta_str(secret, "resourceVersion").to_owned(),
            serial: serial_of(secret),
        }
    }
}

/// What to do about one issued certificate's target Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretCheck {
    /// The watched Secret holds the served certificate at this resourceVersion.
    Verified { id: CertId, resource_version: String },
    /// The watch shows nothing or something else: ask the API server (the watch may lag
    /// behind our own write) and re-issue if it is gone or holds another certificate.
    Confirm {
        id: CertId,
        namespace: String,
        secret_name: String,
        serial: String,
    },
}

/// The target-Secret checks of the engine's issued, idle certificates: one whose watched Secret
/// is at a resourceVersion already verified is skipped. `watched` finds a target Secret in the
/// watch ("namespace/name").
pub fn target_secret_checks(
    snapshot: &[CertStatus],
    tracked: &HashMap<CertId, Tracked>,
    watched: impl Fn(&str) -> Option<Arc<TargetSecret>>,
    verified: &HashMap<CertId, String>,
) -> Vec<SecretCheck> {
    let mut checks = Vec::new();
    for status in snapshot {
        let (Some(issued), false) = (&status.state.issued, status.issuing) else {
            continue;
        };
        let Some(meta) = tracked.get(&status.job.id).map(|t| &t.meta) else {
            continue;
        };
        let secret = watched(&format!("{}/{}", meta.namespace, meta.secret_name));
        let resource_version = secret.as_ref().map(|s| s.resource_version.clone());
        if resource_version.is_some() && verified.get(&status.job.id) == resource_version.as_ref() {
            continue;
        }
        match (&secret, resource_version) {
            (Some(s), Some(resource_version)) if s.serial.as_deref() == Some(issued.serial.as_str()) => {
                checks.push(SecretCheck::Verified {
                    id: status.job.id.clone(),
                    resource_version,
                });
            }
            _ => checks.push(SecretCheck::Confirm {
                id: status.job.id.clone(),
                namespace: meta.namespace.clone(),
                secret_name: meta.secret_name.clone(),
                serial: issued.serial.clone(),
            }),
        }
    }
    checks
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use certkeeper_core::FailureClass;
    use certkeeper_core::Secret as Token;
    use certkeeper_core::spec::IssuerKind;
    use certkeeper_engine::state::{CertState, FailureRecord, IssuedInfo};
    use serde_json::json;

    use super::*;
    use crate::kube::{KubeConfig, TokenSource};

    fn client() -> KubeClient {
        let config = KubeConfig::explicit(
            "https://127.0.0.1:6443",
            TokenSource::Value(Token::new("t")),
            None,
        )
        .unwrap();
        KubeClient::new(&config).unwrap()
    }

    fn issuer(name: &str, token_secret: &str) -> Arc<IssuerObject> {
        issuer_object(json!({"apiVersion": "cert-manager.io/v1", "kind": "Issuer",
            "metadata": {"name": name, "namespace": "apps", "generation": 1},
            "spec": {"vault": {"server": "https://vault:8200", "path": "pki/sign/web",
                               "auth": {"tokenSecretRef": {"name": token_secret, "key": "token"}}}}}))
    }

    fn issuer_object(object: Value) -> Arc<IssuerObject> {
        Arc::new(IssuerObject::of(object, IssuerKind::Issuer, "cert-manager"))
    }

    fn cid(id: &str) -> CertId {
        CertId::parse(id).unwrap()
    }

    fn certificate(name: &str, issuer: &str, status: Value) -> Arc<CertificateObject> {
        Arc::new(CertificateObject::of(
            json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
            "metadata": {"name": name, "namespace": "apps", "uid": format!("uid-{name}"), "generation": 1},
            "spec": {"secretName": format!("{name}-tls"), "dnsNames": [format!("{name}.example.com")],
                     "issuerRef": {"name": issuer}},
            "status": status}),
        ))
    }

    fn renew_requested(at: &str) -> Value {
        json!({"conditions": [{"type": "Issuing", "status": "True", "reason": "ManuallyTriggered",
                               "message": "Certificate re-issuance manually triggered", "lastTransitionTime": at}]})
    }

    #[test]
    fn issuers_are_sorted_into_vault_issuers_and_invalid_ones() {
        let objects = vec![
            issuer("good", "vault-token"),
            issuer("bad", "../../kube-system/victim"),
            issuer_object(json!({"apiVersion": "cert-manager.io/v1", "kind": "Issuer",
                "metadata": {"name": "ca", "namespace": "apps"}, "spec": {"ca": {"secretName": "x"}}})),
        ];
        let sorted = sort_issuers(objects);
        assert_eq!(sorted.found.len(), 1);
        assert_eq!(sorted.found[0].id, "Issuer/apps/good");
        assert_eq!(sorted.found[0].namespace, "apps");
        let invalid: Vec<(&str, &str)> = sorted
            .invalid
            .iter()
            .map(|i| (i.id.as_str(), i.problem.as_str()))
            .collect();
        // A hostile Secret name is refused where the spec is validated; an issuer type other
        // than Vault is not served (and says so).
        assert_eq!(invalid.len(), 2, "{invalid:?}");
        assert_eq!(invalid[0].0, "Issuer/apps/bad");
        assert!(invalid[0].1.contains("tokenSecretRef"), "{invalid:?}");
        assert_eq!(invalid[1].0, "Issuer/apps/ca");
        assert!(invalid[1].1.contains("unsupported issuer type"), "{invalid:?}");
        assert_eq!(
            wanted_secrets(&sorted.found),
            HashSet::from([("apps".to_owned(), "vault-token".to_owned())])
        );
    }

    #[test]
    fn a_changed_or_missing_referenced_secret_is_noticed() {
        let found = sort_issuers(vec![issuer("good", "vault-token")]).found;
        let key = ("apps".to_owned(), "vault-token".to_owned());
        let secret = |rv: &str| Some(Arc::new(json!({"metadata": {"resourceVersion": rv}})));
        let first = secret_versions(
            &found,
            &HashMap::from([(key.clone(), secret("1"))]),
            &HashMap::new(),
        );
        assert!(first.changed.is_empty() && first.missing.is_empty());
        let same = secret_versions(
            &found,
            &HashMap::from([(key.clone(), secret("1"))]),
            &first.versions,
        );
        assert!(same.changed.is_empty());
        let changed = secret_versions(
            &found,
            &HashMap::from([(key.clone(), secret("2"))]),
            &first.versions,
        );
        assert_eq!(changed.changed, ["Issuer/apps/good"]);
        let gone = secret_versions(&found, &HashMap::from([(key, None)]), &first.versions);
        assert_eq!(gone.missing["Issuer/apps/good"], ["apps/vault-token"]);
        assert_eq!(gone.changed, ["Issuer/apps/good"]);
    }

    // The API client (kube-rs) is built inside a runtime; no request is sent.
    #[tokio::test]
    async fn a_renew_request_is_acted_on_once() {
        let client = client();
        let fingerprints = HashMap::from([("Issuer/apps/vault", 9)]);
        let objects = || {
            vec![certificate(
                "web",
                "vault",
                renew_requested("2026-01-01T00:00:00Z"),
            )]
        };
        let plan = plan_certificates(
            &client,
            objects(),
            &fingerprints,
            &HashMap::new(),
            &mut BuiltJobs::default(),
        );
        assert_eq!(plan.renew, [(cid("apps/web"), "2026-01-01T00:00:00Z".to_owned())]);
        assert_eq!(plan.jobs.len(), 1);
        assert!(plan.tracked.contains_key("apps/web"));
        // Handled: not again while the same request stands.
        let handled = HashMap::from([(cid("apps/web"), "2026-01-01T00:00:00Z".to_owned())]);
        let plan = plan_certificates(
            &client,
            objects(),
            &fingerprints,
            &handled,
            &mut BuiltJobs::default(),
        );
        assert!(plan.renew.is_empty() && plan.renew_gone.is_empty());
        // A new request (a later time) is acted on; a consumed one is forgotten.
        let later = vec![certificate(
            "web",
            "vault",
            renew_requested("2026-01-02T00:00:00Z"),
        )];
        assert_eq!(
            plan_certificates(&client, later, &fingerprints, &handled, &mut BuiltJobs::default())
                .renew
                .len(),
            1
        );
        let consumed = vec![certificate("web", "vault", json!({}))];
        let plan = plan_certificates(
            &client,
            consumed,
            &fingerprints,
            &handled,
            &mut BuiltJobs::default(),
        );
        assert_eq!(plan.renew_gone, ["apps/web"]);
    }

    // The API client (kube-rs) is built inside a runtime; no request is sent.
    #[tokio::test]
    async fn a_certificate_is_built_again_only_when_its_input_changes() {
        let client = client();
        let mut built = BuiltJobs::default();
        let plan = |objects, fingerprints: &HashMap<&str, u64>, built: &mut BuiltJobs| {
            plan_certificates(&client, objects, fingerprints, &HashMap::new(), built)
        };
        let fingerprints = HashMap::from([("Issuer/apps/vault", 9)]);
        let first = plan(
            vec![certificate("web", "vault", json!({}))],
            &fingerprints,
            &mut built,
        );
        let cached = |built: &BuiltJobs| built.entries.get("apps/web").map(|b| Arc::as_ptr(&b.job));
        let spec = cached(&built).unwrap();
        // A status write (a new object, the same spec): nothing built, the same job, shared
        // with the plan (one copy); the cache now holds the newest object's spec, not a second.
        let status_write = certificate("web", "vault", json!({"revision": 1}));
        let again = plan(vec![status_write.clone()], &fingerprints, &mut built);
        assert_eq!(cached(&built), Some(spec), "kept, not rebuilt");
        assert!(Arc::ptr_eq(&again.jobs[0], &built.entries["apps/web"].job));
        let (Ok(newest), Some(b)) = (&status_write.spec, built.entries.get("apps/web")) else {
            panic!("valid and cached")
        };
        assert!(Arc::ptr_eq(newest, &b.spec));
        assert_eq!(again.job_set(), first.job_set());
        // The issuer's fingerprint changes: built again, with a new fingerprint.
        let changed = HashMap::from([("Issuer/apps/vault", 10)]);
        let rebuilt = plan(vec![certificate("web", "vault", json!({}))], &changed, &mut built);
        assert_ne!(cached(&built), Some(spec));
        assert_ne!(rebuilt.job_set(), first.job_set());
        // A spec change: built again.
        let other = Arc::new(CertificateObject::of(
            json!({"metadata": {"name": "web", "namespace": "apps", "uid": "uid-web", "generation": 2},
            "spec": {"secretName": "web-tls", "dnsNames": ["other.example.com"], "issuerRef": {"name": "vault"}}}),
        ));
        let respec = plan(vec![other], &changed, &mut built);
        assert_ne!(respec.job_set(), rebuilt.job_set());
        // Gone from the plan: forgotten.
        plan(Vec::new(), &changed, &mut built);
        assert!(built.entries.is_empty());
    }

    // The API client (kube-rs) is built inside a runtime; no request is sent.
    #[tokio::test]
    async fn waiting_notes_are_written_once_per_message() {
        let client = client();
        let objects = vec![
            certificate("web", "gone", json!({})),
            certificate("api", "vault", json!({})),
            Arc::new(CertificateObject::of(
                json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
                "metadata": {"name": "broken", "namespace": "apps"},
                "spec": {"secretName": "x", "issuerRef": {"name": "vault"}}}),
            )),
        ];
        let by_id: HashMap<CertId, Arc<CertificateObject>> =
            objects.iter().map(|o| (o.id.clone(), o.clone())).collect();
        let plan = plan_certificates(
            &client,
            objects,
            &HashMap::new(),
            &HashMap::new(),
            &mut BuiltJobs::default(),
        );
        assert_eq!(plan.invalid.len(), 1, "{:?}", plan.invalid);
        let built = HashSet::from([IssuerId::new(IssuerKind::Issuer, "apps", "vault")]);
        let notes = waiting_notes(
            &plan,
            |id| by_id.get(id).cloned(),
            &built,
            &HashMap::new(),
            &HashMap::new(),
            &HashMap::new(),
        );
        let mut written: Vec<(&str, &str)> = notes
            .write
            .iter()
            .map(|(id, _, w)| (id.as_str(), w.reason))
            .collect();
        written.sort_unstable();
        assert_eq!(
            written,
            [("apps/broken", "InvalidSpec"), ("apps/web", "IssuerNotReady")]
        );
        assert!(notes.missing_issuer["apps/web"].contains("Issuer/apps/gone does not exist"));
        // The same messages again: nothing to write.
        let again = waiting_notes(
            &plan,
            |id| by_id.get(id).cloned(),
            &built,
            &HashMap::new(),
            &notes.missing_issuer,
            &notes.invalid,
        );
        assert!(again.write.is_empty());
        // The issuer's problem changes the message: written again.
        let problems = HashMap::from([(
            IssuerId::new(IssuerKind::Issuer, "apps", "gone"),
            "referenced Secret not found".to_owned(),
        )]);
        let changed = waiting_notes(
            &plan,
            |id| by_id.get(id).cloned(),
            &built,
            &problems,
            &notes.missing_issuer,
            &notes.invalid,
        );
        assert_eq!(changed.write.len(), 1);
        assert!(
            changed.write[0]
                .2
                .message
                .contains("is not usable: referenced Secret not found")
        );
    }

    /// A Certificate of an external issuer (another API group, e.g. AWS PCA's) is valid and
    /// not certkeeper's: no job, no status note (not even for an invalid spec), never tracked.
    // The API client (kube-rs) is built inside a runtime; no request is sent.
    #[tokio::test]
    async fn a_certificate_of_an_external_issuer_gets_no_job_and_no_status_write() {
        let client = client();
        let external = |name: &str, secret: &str| {
            Arc::new(CertificateObject::of(
                json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
                "metadata": {"name": name, "namespace": "apps", "uid": format!("uid-{name}"), "generation": 1},
                "spec": {"secretName": secret, "dnsNames": ["pca.example.com"],
                         "issuerRef": {"name": "pca", "kind": "AWSPCAIssuer", "group": "awspca.cert-manager.io"}}}),
            ))
        };
        let objects = vec![
            external("pca", "pca-tls"),
            external("pca-broken", "../x"),
            certificate("web", "vault", json!({})),
        ];
        let by_id: HashMap<CertId, Arc<CertificateObject>> =
            objects.iter().map(|o| (o.id.clone(), o.clone())).collect();
        let plan = plan_certificates(
            &client,
            objects,
            &HashMap::from([("Issuer/apps/vault", 9)]),
            &HashMap::new(),
            &mut BuiltJobs::default(),
        );
        let jobs: Vec<&str> = plan.jobs.iter().map(|j| j.id.as_str()).collect();
        assert_eq!(jobs, ["apps/web"]);
        assert!(plan.invalid.is_empty(), "{:?}", plan.invalid);
        assert_eq!(
            plan.tracked.keys().map(CertId::as_str).collect::<Vec<_>>(),
            ["apps/web"]
        );
        let external: Vec<(&str, &str)> = plan
            .external
            .iter()
            .map(|(id, issuer)| (id.as_str(), issuer.as_str()))
            .collect();
        assert_eq!(
            external,
            [
                ("apps/pca", "AWSPCAIssuer.awspca.cert-manager.io/pca"),
                ("apps/pca-broken", "AWSPCAIssuer.awspca.cert-manager.io/pca")
            ]
        );
        let notes = waiting_notes(
            &plan,
            |id| by_id.get(id).cloned(),
            &HashSet::new(),
            &HashMap::new(),
            &HashMap::new(),
            &HashMap::new(),
        );
        let written: Vec<&str> = notes.write.iter().map(|(id, _, _)| id.as_str()).collect();
        assert_eq!(
            written,
            ["apps/web"],
            "only certkeeper's own Certificate waits for its issuer"
        );
    }

    fn status(id: &str, issuer: &str, failing: bool, issuing: bool) -> CertStatus {
        let client = client();
        let plan = plan_certificates(
            &client,
            vec![certificate(id, issuer, json!({}))],
            &HashMap::new(),
            &HashMap::new(),
            &mut BuiltJobs::default(),
        );
        let job = plan.jobs.into_iter().next().unwrap();
        CertStatus {
            job,
            state: CertState {
                revision: 1,
                issued: Some(IssuedInfo {
                    serial: "0a".into(),
                    not_before: 0,
                    not_after: i64::MAX / 2,
                    renewal_time: Some(i64::MAX / 4),
                    renewal_note: None,
                    spec_fingerprint: 0,
                    issued_at: 0,
                    warning: None,
                    ca_not_after: None,
                }),
                failure: failing.then(|| FailureRecord {
                    class: FailureClass::AuthRejected,
                    message: "denied".into(),
                    attempts: 1,
                    first_failure: 0,
                    last_failure: 0,
                    next_attempt: None,
                    spec_fingerprint: 0,
                }),
                deferred: None,
            },
            ready: true,
            issuing,
            next_check: None,
        }
    }

    // The API client (kube-rs) is built inside a runtime; no request is sent.
    #[tokio::test]
    async fn only_failing_certificates_of_a_changed_issuer_are_retried() {
        let snapshot = vec![
            status("a", "vault", true, false),
            status("b", "vault", false, false),
            status("c", "other", true, false),
        ];
        assert_eq!(
            retries_after_secret_change(&snapshot, &[IssuerId::new(IssuerKind::Issuer, "apps", "vault")]),
            ["apps/a"]
        );
        assert!(retries_after_secret_change(&snapshot, &[]).is_empty());
    }

    // The API client (kube-rs) is built inside a runtime; no request is sent.
    #[tokio::test]
    async fn target_secrets_are_confirmed_unless_verified_at_their_version() {
        let client = client();
        let plan = plan_certificates(
            &client,
            vec![
                certificate("a", "vault", json!({})),
                certificate("b", "vault", json!({})),
            ],
            &HashMap::new(),
            &HashMap::new(),
            &mut BuiltJobs::default(),
        );
        let snapshot = vec![
            status("a", "vault", false, false),
            status("b", "vault", false, false),
            status("c", "vault", false, true),
        ];
        let watched = |key: &str| {
            (key == "apps/a-tls")
                .then(|| Arc::new(TargetSecret::of(&json!({"metadata": {"resourceVersion": "7"}}))))
        };
        // `a` verified at 7: skipped; `b` not watched: confirmed; `c` issuing: left alone.
        let verified = HashMap::from([(cid("apps/a"), "7".to_owned())]);
        let checks = target_secret_checks(&snapshot, &plan.tracked, watched, &verified);
        assert_eq!(
            checks,
            [SecretCheck::Confirm {
                id: cid("apps/b"),
                namespace: "apps".into(),
                secret_name: "b-tls".into(),
                serial: "0a".into(),
            }]
        );
        // `a` at a new version whose certificate cannot be read: confirmed too.
        let checks = target_secret_checks(&snapshot, &plan.tracked, watched, &HashMap::new());
        assert_eq!(checks.len(), 2);
    }

    fn b64(text: &str) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(text)
    }

    #[test]
    fn a_target_secret_is_kept_as_its_version_and_served_serial() {
        let tls = certkeeper_testkit::TestTls::generate().unwrap();
        let leaf = certkeeper_core::pki::describe_pem_bundle(&tls.server_cert_pem).unwrap();
        let chain = format!("{}{}", tls.server_cert_pem, tls.ca_pem);
        let secret = json!({"metadata": {"name": "web-tls", "namespace": "apps", "resourceVersion": "42"},
            "data": {"tls.crt": b64(&chain), "tls.key": b64(&tls.server_key_pem), "ca.crt": b64(&tls.ca_pem)}});
        let kept = TargetSecret::of(&secret);
        assert_eq!(
            kept,
            TargetSecret {
                resource_version: "42".into(),
                serial: Some(leaf[0].serial.clone()),
            }
        );
        // The leaf's serial, not the CA's that follows it.
        let ca = certkeeper_core::pki::describe_pem_bundle(&tls.ca_pem).unwrap();
        assert_ne!(kept.serial, Some(ca[0].serial.clone()));
        assert_eq!(serial_of(&secret), kept.serial);
    }

    #[test]
    fn a_target_secret_without_a_readable_certificate_has_no_serial() {
        for data in [
            json!({}),
            json!({"tls.key": b64("key")}),
            json!({"tls.crt": "not base64!"}),
            json!({"tls.crt": b64("not a PEM")}),
            json!({"tls.crt": 7}),
        ] {
            let secret = json!({"metadata": {"resourceVersion": "3"}, "data": data});
            assert_eq!(
                TargetSecret::of(&secret),
                TargetSecret {
                    resource_version: "3".into(),
                    serial: None,
                },
                "{data}"
            );
        }
        assert_eq!(TargetSecret::of(&json!({})).resource_version, "");
    }
}
