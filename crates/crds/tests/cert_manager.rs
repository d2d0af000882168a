//! certkeeper's CRDs against cert-manager's published ones (a copy in
//! `tests/testdata/cert-manager`, version in its README): every property path of cert-manager's
//! schemas is in certkeeper's with the same type, enum, required list, default, format, pattern,
//! length and range limits and list/map markers; certkeeper has no path cert-manager lacks
//! except `status.certkeeper`; names and scope match, and every printer column of cert-manager's
//! is there (certkeeper shows more: `Expiration`, `NextAttempt`). What certkeeper leaves out (`selectableFields`, CEL rules) is listed here and in the
//! README, and a difference that is listed but gone fails the test, so the lists stay true.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::Value;

/// The keywords compared at every path.
const KEYWORDS: &[&str] = &[
    "type",
    "enum",
    "required",
    "default",
    "format",
    "pattern",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "maxItems",
    "minItems",
    "anyOf",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
    "x-kubernetes-int-or-string",
    "x-kubernetes-preserve-unknown-fields",
];

/// Where certkeeper's schemas differ from cert-manager's on purpose, because the test apiserver
/// (v1.20) does not know or refuses what cert-manager has: (path, keyword, certkeeper's value
/// (`None`: left out)), on Issuer and ClusterIssuer. Anything else, e.g. a CEL rule at another
/// path in a newer copy of cert-manager's CRDs, fails the test.
const FOR_V1_20: &[(&str, &str, Option<&str>)] = &[
    // CEL, Kubernetes 1.25+
    (".spec.venafi", "x-kubernetes-validations", None),
    // a map list keyed by `name` with `default: ""`: v1.20 reads the default as `null` and
    // refuses a map key without one; an atomic list accepts the same objects
    (IMAGE_PULL_SECRETS[0], "x-kubernetes-list-type", Some("atomic")),
    (IMAGE_PULL_SECRETS[0], "x-kubernetes-list-map-keys", None),
    (IMAGE_PULL_SECRETS[1], "x-kubernetes-list-type", Some("atomic")),
    (IMAGE_PULL_SECRETS[1], "x-kubernetes-list-map-keys", None),
    (IMAGE_PULL_SECRET_NAMES[0], "default", None),
    (IMAGE_PULL_SECRET_NAMES[1], "default", None),
];

const IMAGE_PULL_SECRETS: [&str; 2] = [
    ".spec.acme.solvers[].http01.ingress.podTemplate.spec.imagePullSecrets",
    ".spec.acme.solvers[].http01.gatewayHTTPRoute.podTemplate.spec.imagePullSecrets",
];
const IMAGE_PULL_SECRET_NAMES: [&str; 2] = [
    ".spec.acme.solvers[].http01.ingress.podTemplate.spec.imagePullSecrets[].name",
    ".spec.acme.solvers[].http01.gatewayHTTPRoute.podTemplate.spec.imagePullSecrets[].name",
];

/// certkeeper's value where it differs on purpose (see [`FOR_V1_20`]).
fn for_v1_20(kind: &str, path: &str, keyword: &str) -> Option<Option<&'static str>> {
    if !matches!(kind, "Issuer" | "ClusterIssuer") {
        return None;
    }
    FOR_V1_20
        .iter()
        .find(|(p, k, _)| *p == path && *k == keyword)
        .map(|(_, _, ours)| *ours)
}

/// Differences another branch is working on: (kind, path prefix, why). A listed difference
/// that no longer exists fails the test (remove it from the list).
const PENDING: &[(&str, &str, &str)] = &[];

fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/testdata/cert-manager")
}

/// cert-manager's CRD of `kind`, as JSON.
fn cert_manager(plural: &str) -> Value {
    let path = testdata().join(format!("cert-manager.io_{plural}.yaml"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml_ng::from_str(&text).unwrap()
}

/// Every schema node by its path: `.spec.dnsNames[]`, `.spec.secretTemplate.labels{}`.
fn paths(node: &Value) -> BTreeMap<String, &Value> {
    fn walk<'a>(path: String, node: &'a Value, out: &mut BTreeMap<String, &'a Value>) {
        if let Some(props) = node.get("properties").and_then(Value::as_object) {
            for (name, child) in props {
                walk(format!("{path}.{name}"), child, out);
            }
        }
        if let Some(items) = node.get("items") {
            walk(format!("{path}[]"), items, out);
        }
        if let Some(values) = node.get("additionalProperties").filter(|v| v.is_object()) {
            walk(format!("{path}{{}}"), values, out);
        }
        out.insert(path, node);
    }
    let mut out = BTreeMap::new();
    walk(String::new(), node, &mut out);
    out
}

/// A keyword's value as compared: `enum` and `required` as sets (their order means nothing),
/// `anyOf` without descriptions.
fn normalised(keyword: &str, value: Option<&Value>) -> Option<Value> {
    let value = value?.clone();
    Some(match (keyword, value) {
        ("enum" | "required", Value::Array(items)) => {
            let set: BTreeSet<String> = items.iter().map(Value::to_string).collect();
            Value::Array(set.into_iter().map(Value::String).collect())
        }
        ("anyOf", Value::Array(branches)) => Value::Array(
            branches
                .into_iter()
                .map(|mut b| {
                    if let Some(b) = b.as_object_mut() {
                        b.remove("description");
                    }
                    b
                })
                .collect(),
        ),
        (_, value) => value,
    })
}

fn pending(kind: &str, path: &str) -> Option<&'static str> {
    PENDING
        .iter()
        .find(|(k, prefix, _)| *k == kind && (path == *prefix || path.starts_with(&format!("{prefix}."))))
        .map(|(_, prefix, _)| *prefix)
}

#[test]
fn every_cert_manager_property_is_in_certkeepers_crds() {
    let mut differences = Vec::new();
    let mut pending_seen = BTreeSet::new();
    let mut v1_20_seen = BTreeSet::new();
    let mut compared = 0;
    for crd in certkeeper_crds::crds()
        .into_iter()
        .filter(|c| c.group == certkeeper_crds::GROUP)
    {
        let kind = crd.kind;
        let theirs_crd = cert_manager(crd.plural);
        let theirs_schema = &theirs_crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        let ours_schema = crd.schema();
        let theirs = paths(theirs_schema);
        let ours = paths(&ours_schema);
        let mut report = |path: &str, what: String| {
            if let Some(prefix) = pending(kind, path) {
                pending_seen.insert((kind, prefix));
            } else {
                differences.push(format!("{kind} {path}: {what}"));
            }
        };
        for (path, node) in &theirs {
            compared += 1;
            for (keyword, value) in node.as_object().into_iter().flatten() {
                if for_v1_20(kind, path, keyword).is_some() {
                    v1_20_seen.insert((kind, path.clone(), keyword.clone()));
                } else if !KEYWORDS.contains(&keyword.as_str())
                    && !matches!(
                        keyword.as_str(),
                        "description" | "properties" | "items" | "additionalProperties"
                    )
                {
                    report(
                        path,
                        format!("{keyword} not compared nor left out knowingly: {value}"),
                    );
                }
            }
            let Some(mine) = ours.get(path) else {
                report(path, "missing".into());
                continue;
            };
            for keyword in KEYWORDS {
                if let Some(expected) = for_v1_20(kind, path, keyword) {
                    assert_eq!(
                        mine.get(*keyword).and_then(Value::as_str),
                        expected,
                        "{kind} {path} {keyword}"
                    );
                    continue;
                }
                let (a, b) = (
                    normalised(keyword, node.get(*keyword)),
                    normalised(keyword, mine.get(*keyword)),
                );
                if a != b {
                    report(path, format!("{keyword}: cert-manager {a:?}, certkeeper {b:?}"));
                }
            }
        }
        for path in ours.keys() {
            let own = path == ".status.certkeeper" || path.starts_with(".status.certkeeper.");
            if !theirs.contains_key(path) && !own {
                report(path, "certkeeper has it, cert-manager does not".into());
            }
        }

        // names, scope, columns, subresources
        let ours_crd = crd.to_json();
        for pointer in [
            "/spec/group",
            "/spec/names",
            "/spec/scope",
            "/spec/versions/0/name",
        ] {
            assert_eq!(
                ours_crd.pointer(pointer),
                theirs_crd.pointer(pointer),
                "{kind} {pointer}"
            );
        }
        assert_eq!(
            ours_crd["spec"]["versions"][0]["subresources"],
            theirs_crd["spec"]["versions"][0]["subresources"],
            "{kind} subresources"
        );
        let columns = |crd: &Value| -> Vec<(Value, Value, Value, Value)> {
            crd["spec"]["versions"][0]["additionalPrinterColumns"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    (
                        c["name"].clone(),
                        c["jsonPath"].clone(),
                        c["type"].clone(),
                        c["priority"].clone(),
                    )
                })
                .collect()
        };
        // every column of cert-manager's, in its order; certkeeper may show more
        let theirs_columns = columns(&theirs_crd);
        let ours_columns: Vec<_> = columns(&ours_crd)
            .into_iter()
            .filter(|c| theirs_columns.contains(c))
            .collect();
        assert_eq!(ours_columns, theirs_columns, "{kind} printer columns");
        // selectableFields (Kubernetes 1.30+) are left out, see the README
        assert!(ours_crd["spec"]["versions"][0].get("selectableFields").is_none());
    }
    assert!(compared > 1_300, "only {compared} paths compared");
    assert!(
        differences.is_empty(),
        "{} differences from cert-manager's CRDs:\n{}",
        differences.len(),
        differences.join("\n")
    );
    for kind in ["Issuer", "ClusterIssuer"] {
        for (path, keyword, _) in FOR_V1_20 {
            assert!(
                v1_20_seen.contains(&(kind, (*path).to_owned(), (*keyword).to_owned())),
                "{kind} {path} {keyword} is listed in FOR_V1_20 but cert-manager's CRD has none"
            );
        }
    }
    for (kind, prefix, why) in PENDING {
        assert!(
            pending_seen.contains(&(*kind, *prefix)),
            "{kind} {prefix} ({why}) matches cert-manager now: remove it from PENDING"
        );
    }
    eprintln!("{compared} property paths of cert-manager's CRDs compared");
}

/// The copy is cert-manager's, unmodified, and the README names its version.
#[test]
fn testdata_readme_names_the_version() {
    let readme = std::fs::read_to_string(testdata().join("README.md")).unwrap();
    assert!(readme.contains("v1.21.1"), "{readme}");
    for plural in ["certificaterequests", "certificates", "clusterissuers", "issuers"] {
        let crd = cert_manager(plural);
        assert_eq!(
            crd["metadata"]["annotations"]["controller-gen.kubebuilder.io/version"], "v0.21.0",
            "{plural}"
        );
    }
}
