//! cert-manager's own cases, with cert-manager's verdict on each, run through certkeeper's
//! validation: the corpus in `tests/cert_manager_corpus/` (its README says where the cases come
//! from and which cert-manager commit was read). For every case certkeeper's verdict must be
//! cert-manager's, and a rejection must name the field cert-manager names. A case where
//! certkeeper decides otherwise says so (`differs`, with the reason) and states certkeeper's
//! verdict, so a difference is a listed decision, never a silent skip.
//!
//! Where cert-manager's webhook accepts and its controller fails the object later, the case says
//! which field fails (`later`), and the test checks that the view the runtimes build from fails
//! there too.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use certkeeper_core::spec::{
    CertificateRequest, FieldError, FieldPath, Resource, VaultAuthMethod, parse_file, parse_resource,
};
use serde::Deserialize;
use serde_yaml_ng::Value;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cert_manager_corpus");

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Verdict {
    Accepted,
    Rejected,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Accepted => "accepted",
            Verdict::Rejected => "rejected",
        })
    }
}

/// One file: the kind its `spec` cases are, and the cases.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CorpusFile {
    kind: String,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Case {
    /// The test case name, or a short description of a docs or fixture manifest.
    case: String,
    /// Where it comes from: repository path and test function, or URL.
    source: String,
    /// The object's spec; wrapped into an object of the file's kind named `corpus`.
    #[serde(default)]
    spec: Option<Value>,
    /// A whole object (a docs manifest), used as written.
    #[serde(default)]
    object: Option<Value>,
    /// A whole manifest file (several documents, Secrets among them), parsed as the standalone
    /// runtime reads a file.
    #[serde(default)]
    documents: Option<String>,
    /// cert-manager's verdict (webhook and CRD schema).
    cert_manager: Verdict,
    /// The field cert-manager's rejection names.
    #[serde(default)]
    field: Option<String>,
    /// Why certkeeper decides otherwise or names another field; required with the next two.
    #[serde(default)]
    differs: Option<String>,
    /// certkeeper's verdict where it differs.
    #[serde(default)]
    certkeeper: Option<Verdict>,
    /// The field certkeeper names where it names another one.
    #[serde(default)]
    certkeeper_field: Option<String>,
    /// Accepted, and failing later at this field, in cert-manager and in certkeeper.
    #[serde(default)]
    later: Option<String>,
    /// What a reader should know (a placeholder replaced, a fragment completed).
    #[serde(default)]
    #[allow(dead_code)]
    note: Option<String>,
}

/// What certkeeper's validation says about one case: the paths of its errors (none: accepted),
/// and the fields that fail when the object is used.
struct Outcome {
    errors: Vec<String>,
    later: Vec<String>,
}

fn wrap(kind: &str, spec: &Value) -> Value {
    let mut object = BTreeMap::new();
    object.insert("apiVersion", Value::from("cert-manager.io/v1"));
    object.insert("kind", Value::from(kind));
    let metadata: Value = serde_yaml_ng::from_str("{name: corpus, namespace: default}").unwrap();
    object.insert("metadata", metadata);
    object.insert("spec", spec.clone());
    serde_yaml_ng::to_value(object).unwrap()
}

fn paths(errors: &[FieldError]) -> Vec<String> {
    errors.iter().map(|e| e.path.to_string()).collect()
}

/// The fields that fail when the runtimes build the object: the views they build from.
fn later(resource: &Resource) -> Vec<String> {
    let mut out = Vec::new();
    match resource {
        Resource::Certificate(cert) => {
            if let Err(e) = cert.spec.uris() {
                out.push(e.path.to_string());
            }
            let keystores = cert.spec.keystores.clone().unwrap_or_default();
            let refs = [
                (
                    "pkcs12",
                    keystores
                        .pkcs12
                        .filter(|k| k.create)
                        .and_then(|k| k.password_secret_ref),
                ),
                (
                    "jks",
                    keystores
                        .jks
                        .filter(|k| k.create)
                        .and_then(|k| k.password_secret_ref),
                ),
            ];
            for (store, reference) in refs {
                if reference.is_some_and(|r| !r.name.is_empty() && r.explicit_key().is_none()) {
                    out.push(format!("spec.keystores.{store}.passwordSecretRef.key"));
                }
            }
        }
        _ => {
            if let Some(VaultAuthMethod::AppRole(app_role)) = resource
                .issuer()
                .and_then(|i| i.vault)
                .and_then(|v| v.auth.method())
                && app_role.secret_ref.explicit_key().is_none()
            {
                out.push("spec.vault.auth.appRole.secretRef.key".to_owned());
            }
        }
    }
    out
}

fn evaluate(kind: &str, case: &Case) -> Outcome {
    if let Some(text) = &case.documents {
        let parsed = parse_file(&case.case, text).expect("within limits");
        let errors = parsed.errors.iter().map(|e| e.error.path.to_string()).collect();
        let later = parsed.resources.iter().flat_map(|(_, r)| later(r)).collect();
        return Outcome { errors, later };
    }
    let value = match (&case.object, &case.spec) {
        (Some(object), None) => object.clone(),
        (None, Some(spec)) => wrap(kind, spec),
        _ => panic!("{}: set exactly one of spec, object, documents", case.case),
    };
    if value.get("kind").and_then(Value::as_str) == Some("CertificateRequest") {
        let request: CertificateRequest = match serde_yaml_ng::from_value(value) {
            Ok(request) => request,
            Err(e) => {
                return Outcome {
                    errors: vec![format!("{}", FieldPath::root()), e.to_string()],
                    later: Vec::new(),
                };
            }
        };
        return Outcome {
            errors: paths(&request.validate()),
            later: Vec::new(),
        };
    }
    match parse_resource(&value) {
        Ok(resource) => Outcome {
            errors: Vec::new(),
            later: later(&resource),
        },
        Err(errors) => Outcome {
            errors: paths(&errors),
            later: Vec::new(),
        },
    }
}

#[derive(Default)]
struct Counts {
    accepted: usize,
    rejected: usize,
    /// Another verdict than cert-manager's, with the reason.
    differs: Vec<String>,
    /// cert-manager's verdict, another field named (cert-manager names a Go field or the map
    /// rather than the entry), with the reason.
    named_otherwise: Vec<String>,
}

fn check(file: &str, corpus: &CorpusFile, counts: &mut Counts) -> Vec<String> {
    let mut failures = Vec::new();
    for case in &corpus.cases {
        let name = format!("{file}: {:?} ({})", case.case, case.source);
        let has_override = case.certkeeper.is_some() || case.certkeeper_field.is_some();
        assert_eq!(
            case.differs.is_some(),
            has_override,
            "{name}: `differs` goes with `certkeeper` or `certkeeper-field`, and they with it"
        );
        assert_eq!(
            case.field.is_some(),
            case.cert_manager == Verdict::Rejected,
            "{name}: a rejection names its field, an acceptance none"
        );
        let expected = case.certkeeper.unwrap_or(case.cert_manager);
        let outcome = evaluate(&corpus.kind, case);
        let got = if outcome.errors.is_empty() {
            Verdict::Accepted
        } else {
            Verdict::Rejected
        };
        if got != expected {
            failures.push(format!(
                "{name}: expected {expected}, certkeeper {got}: {:?}",
                outcome.errors
            ));
            continue;
        }
        if expected == Verdict::Rejected {
            let field = case.certkeeper_field.as_ref().or(case.field.as_ref());
            let field = field.expect("checked above");
            if !outcome.errors.contains(field) {
                failures.push(format!(
                    "{name}: expected {field} to be named, certkeeper names {:?}",
                    outcome.errors
                ));
            }
        }
        if let Some(field) = &case.later
            && !outcome.later.contains(field)
        {
            failures.push(format!(
                "{name}: expected {field} to fail later, got {:?}",
                outcome.later
            ));
        }
        if case.later.is_none() && !outcome.later.is_empty() {
            failures.push(format!("{name}: fails later unannounced: {:?}", outcome.later));
        }
        match (&case.differs, case.certkeeper, case.cert_manager) {
            (Some(reason), Some(_), _) => counts.differs.push(format!("{name}: {reason}")),
            (Some(reason), None, _) => counts.named_otherwise.push(format!("{name}: {reason}")),
            (None, _, Verdict::Accepted) => counts.accepted += 1,
            (None, _, Verdict::Rejected) => counts.rejected += 1,
        }
    }
    failures
}

#[test]
fn certkeeper_decides_cert_managers_cases_as_cert_manager_does() {
    let mut files: Vec<_> = std::fs::read_dir(CORPUS)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut counts = Counts::default();
    let mut failures = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let corpus: CorpusFile =
            serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let file = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        failures.extend(check(file, &corpus, &mut counts));
    }
    let total = counts.accepted + counts.rejected + counts.named_otherwise.len() + counts.differs.len();
    println!(
        "cert-manager corpus: {total} cases in {} files: {} accepted and {} rejected as cert-manager \
         does; {} rejected as cert-manager does, naming another field; {} decided otherwise",
        files.len(),
        counts.accepted,
        counts.rejected,
        counts.named_otherwise.len(),
        counts.differs.len()
    );
    for (title, list) in [
        ("another field named:", &counts.named_otherwise),
        ("decided otherwise:", &counts.differs),
    ] {
        println!("{title}");
        for case in list {
            println!("  {case}");
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The corpus only grows: a case removed must be a decision, not an accident.
    assert!(total >= 200, "{total} cases");
    assert!(Path::new(CORPUS).join("README.md").exists());
}
