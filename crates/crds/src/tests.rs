#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use serde_json::Value;

use super::*;

fn deploy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/crds")
}

/// The checked-in files are what the types generate. `CERTKEEPER_UPDATE_CRDS=1` rewrites them.
#[test]
fn checked_in_crds_are_up_to_date() {
    let dir = deploy_dir();
    let update = std::env::var_os("CERTKEEPER_UPDATE_CRDS").is_some_and(|v| !v.is_empty() && v != "0");
    let mut stale = Vec::new();
    for crd in crds() {
        let path = dir.join(crd.file_name());
        let generated = crd.to_yaml();
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &generated).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(generated.as_str()) {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "out of date: {stale:?}; regenerate with CERTKEEPER_UPDATE_CRDS=1 cargo test -p certkeeper-crds --lib"
    );
}

/// Walks every schema node: (path, node).
fn walk<'a>(path: String, node: &'a Value, out: &mut Vec<(String, &'a Value)>) {
    out.push((path.clone(), node));
    if let Some(props) = node.get("properties").and_then(Value::as_object) {
        for (name, child) in props {
            walk(format!("{path}.{name}"), child, out);
        }
    }
    if let Some(items) = node.get("items") {
        walk(format!("{path}[]"), items, out);
    }
    if let Some(extra) = node.get("additionalProperties").filter(|v| v.is_object()) {
        walk(format!("{path}{{}}"), extra, out);
    }
}

#[test]
fn schemas_are_structural() {
    for crd in crds() {
        let schema = crd.schema();
        let text = schema.to_string();
        for keyword in [
            "$ref",
            "$schema",
            "$defs",
            "\"definitions\"",
            "\"const\"",
            "\"nullable\"",
            "x-certkeeper-default",
        ] {
            assert!(!text.contains(keyword), "{}: {keyword} in {text}", crd.kind);
        }
        let mut nodes = Vec::new();
        walk(String::new(), &schema, &mut nodes);
        for (path, node) in nodes {
            // defaults only where cert-manager's CRDs have them (none in certkeeper's own fields)
            if node.get("default").is_some() {
                let gateway = ".spec.acme.solvers[].http01.gatewayHTTPRoute.parentRefs[]";
                assert!(path.starts_with(gateway), "{}: default at {path}", crd.kind);
            }
            // int-or-string (resource quantities) is the one structural use of anyOf
            let int_or_string = node.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
            let free = node.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
            assert!(
                node.get("type").and_then(Value::as_str).is_some() || free || int_or_string,
                "{}: {path} has no single type: {node}",
                crd.kind
            );
            for combinator in ["oneOf", "anyOf", "allOf", "not"] {
                assert!(
                    node.get(combinator).is_none() || (combinator == "anyOf" && int_or_string),
                    "{}: {path} has {combinator}: {node}",
                    crd.kind
                );
            }
            assert!(
                !(node.get("properties").is_some() && node.get("additionalProperties").is_some()),
                "{}: {path}",
                crd.kind
            );
            if free {
                // only where certkeeper keeps a field undecoded
                let allowed = [
                    // arbitrary JSON in cert-manager's CRDs too
                    ".spec.acme.solvers[].dns01.webhook.config",
                ];
                assert!(allowed.contains(&path.as_str()), "{}: free-form {path}", crd.kind);
            }
        }
    }
}

/// `spec.renewal` typed as cert-manager's CRD types it: the policy enum, the windows' required
/// fields, patterns and list type.
#[test]
fn renewal_is_typed_as_cert_manager() {
    let cert = crds()
        .into_iter()
        .find(|c| c.kind == "Certificate")
        .unwrap()
        .schema();
    let renewal = at(&cert, "/properties/spec/properties/renewal");
    let windows = at(renewal, "/properties/windows");
    assert_eq!(at(windows, "/x-kubernetes-list-type"), "atomic");
    assert_eq!(
        at(windows, "/items/required"),
        &serde_json::json!(["cron", "windowDuration"])
    );
    assert_eq!(at(windows, "/items/properties/cron/minLength"), 1);
    assert_eq!(at(windows, "/items/properties/timezone/minLength"), 1);
    assert_eq!(
        at(windows, "/items/properties/windowDuration/pattern"),
        "^([0-9]+(\\.[0-9]+)?(s|m|h))+$"
    );
}

fn at<'a>(crd: &'a Value, pointer: &str) -> &'a Value {
    crd.pointer(pointer).unwrap_or_else(|| panic!("no {pointer}"))
}

#[test]
fn names_scope_and_columns_as_cert_manager() {
    let all = crds();
    let by_kind = |k: &str| all.iter().find(|c| c.kind == k).unwrap().to_json();
    let cert = by_kind("Certificate");
    assert_eq!(at(&cert, "/metadata/name"), "certificates.cert-manager.io");
    assert_eq!(
        at(&cert, "/spec/names/shortNames"),
        &serde_json::json!(["cert", "certs"])
    );
    assert_eq!(
        at(&cert, "/spec/names/categories"),
        &serde_json::json!(["cert-manager"])
    );
    assert_eq!(at(&cert, "/spec/scope"), "Namespaced");
    let columns: Vec<&str> = at(&cert, "/spec/versions/0/additionalPrinterColumns")
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        columns,
        [
            "Ready",
            "Secret",
            "Issuer",
            "Status",
            "Expiration",
            "NextAttempt",
            "Age"
        ]
    );
    assert_eq!(at(&by_kind("ClusterIssuer"), "/spec/scope"), "Cluster");
    assert_eq!(
        at(&by_kind("CertificateRequest"), "/spec/names/shortNames/1"),
        "crs"
    );
    for crd in &all {
        let json = crd.to_json();
        assert_eq!(
            at(&json, "/spec/versions/0/subresources"),
            &serde_json::json!({"status": {}})
        );
        assert_eq!(at(&json, "/spec/names/listKind"), &format!("{}List", crd.kind));
    }
}

#[test]
fn field_schemas_match_cert_manager() {
    let cert = crds()
        .into_iter()
        .find(|c| c.kind == "Certificate")
        .unwrap()
        .schema();
    let spec = "/properties/spec/properties";
    assert_eq!(
        at(&cert, &format!("{spec}/privateKey/properties/algorithm/enum")),
        &serde_json::json!(["RSA", "ECDSA", "Ed25519"])
    );
    assert_eq!(
        at(
            &cert,
            &format!("{spec}/privateKey/properties/rotationPolicy/enum")
        ),
        &serde_json::json!(["Never", "Always"])
    );
    assert_eq!(at(&cert, &format!("{spec}/duration/type")), "string");
    assert_eq!(at(&cert, &format!("{spec}/isCA/type")), "boolean");
    assert_eq!(
        at(&cert, &format!("{spec}/usages/items/enum/1")),
        "digital signature"
    );
    assert_eq!(
        at(
            &cert,
            &format!("{spec}/additionalOutputFormats/items/properties/type/enum")
        ),
        &serde_json::json!(["DER", "CombinedPEM"])
    );
    assert_eq!(
        at(
            &cert,
            &format!("{spec}/secretTemplate/properties/labels/additionalProperties/type")
        ),
        "string"
    );
    let status = "/properties/status/properties";
    assert_eq!(
        at(&cert, &format!("{status}/conditions/x-kubernetes-list-type")),
        "map"
    );
    assert_eq!(
        at(
            &cert,
            &format!("{status}/conditions/items/properties/status/enum")
        ),
        &serde_json::json!(["True", "False", "Unknown"])
    );
    assert_eq!(at(&cert, &format!("{status}/notAfter/format")), "date-time");
    assert_eq!(
        at(
            &cert,
            &format!("{status}/certkeeper/properties/failureClass/enum")
        ),
        &serde_json::json!(["transient", "auth_rejected", "rejected", "invalid", "apply"])
    );
    let issuer = crds().into_iter().find(|c| c.kind == "Issuer").unwrap().schema();
    assert_eq!(
        at(
            &issuer,
            "/properties/spec/properties/vault/properties/caBundle/format"
        ),
        "byte"
    );
    let cr = crds()
        .into_iter()
        .find(|c| c.kind == "CertificateRequest")
        .unwrap()
        .schema();
    assert_eq!(
        at(&cr, "/properties/spec/required"),
        &serde_json::json!(["issuerRef", "request"])
    );
    assert_eq!(
        at(
            &cr,
            "/properties/spec/properties/extra/additionalProperties/items/type"
        ),
        "string"
    );
}

#[test]
fn stream_holds_six_documents_two_of_certkeepers_group() {
    let count = |stream: &str| {
        serde_yaml_ng::Deserializer::from_str(stream)
            .map(|d| serde::Deserialize::deserialize(d).unwrap())
            .collect::<Vec<serde_yaml_ng::Value>>()
            .len()
    };
    assert_eq!(count(&all_yaml()), 6);
    assert_eq!(count(&group_yaml("cert-manager.io")), 4);
    assert_eq!(count(&group_yaml("certkeeper.io")), 2);
}

/// certkeeper's kinds: their `spec` is an Issuer's `spec.vault` schema, with the same required
/// fields; named and scoped as their cert-manager counterparts.
#[test]
fn certkeeper_kinds_take_the_vault_issuer_schema() {
    let all = crds();
    let by_kind = |k: &str| all.iter().find(|c| c.kind == k).unwrap().to_json();
    let issuer = by_kind("Issuer");
    for (kind, scope) in [("VaultIssuer", "Namespaced"), ("VaultClusterIssuer", "Cluster")] {
        let crd = by_kind(kind);
        assert_eq!(
            at(&crd, "/metadata/name"),
            &format!("{}s.certkeeper.io", kind.to_ascii_lowercase())
        );
        assert_eq!(at(&crd, "/spec/scope"), scope);
        assert_eq!(
            at(&crd, "/spec/names/categories"),
            &serde_json::json!(["certkeeper"])
        );
        let schema = "/spec/versions/0/schema/openAPIV3Schema/properties";
        assert_eq!(
            at(&crd, &format!("{schema}/spec")).get("properties"),
            at(&issuer, &format!("{schema}/spec/properties/vault")).get("properties")
        );
        assert_eq!(
            at(&crd, &format!("{schema}/spec/required")),
            &serde_json::json!(["auth", "path", "server"])
        );
        assert_eq!(
            at(&crd, &format!("{schema}/status")),
            at(&issuer, &format!("{schema}/status"))
        );
    }
}
