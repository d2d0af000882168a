//! Multi-document files: what is skipped, how errors are located and collected.

use super::*;

const ISSUER: &str = "apiVersion: cert-manager.io/v1
kind: Issuer
metadata:
  name: vault-issuer
spec:
  vault:
    server: https://vault.local
    path: pki_int/sign/example-dot-com
    auth:
      tokenSecretRef: {name: cert-manager-vault-token, key: token}
";

const CERTIFICATE: &str = "apiVersion: cert-manager.io/v1
kind: Certificate
metadata:
  name: web
spec:
  secretName: web-tls
  dnsNames: [web.example.com]
  issuerRef: {name: vault-issuer}
";

fn messages(text: &str) -> Vec<String> {
    let errors = parse_documents("certs.yaml", text).expect_err("should be rejected");
    errors.iter().map(ToString::to_string).collect()
}

#[test]
fn issuers_and_certificates_in_one_file() {
    let text = format!("---\n# comment only\n---\n{ISSUER}---\n\n---\n{CERTIFICATE}...\n");
    let resources = parse_documents("certs.yaml", &text).unwrap();
    assert_eq!(
        resources.iter().map(Resource::kind).collect::<Vec<_>>(),
        ["Issuer", "Certificate"]
    );
    let (Resource::Issuer(issuer), Resource::Certificate(certificate)) = (&resources[0], &resources[1])
    else {
        panic!("order")
    };
    // Neither names a namespace: both are in `default`, so the Certificate finds the Issuer.
    assert_eq!(certificate.issuer_key(), Some(issuer.key()));
    assert!(parse_documents("empty.yaml", "").unwrap().is_empty());
    assert!(parse_documents("empty.yaml", "---\n---\n").unwrap().is_empty());
}

#[test]
fn every_error_of_every_document_is_reported_with_its_location() {
    let bad_cert = CERTIFICATE
        .replace("  secretName: web-tls\n", "")
        .replace("name: web\n", "name: web\n  namespace: shop\n");
    let text = format!(
        "{ISSUER}---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: x}}\n---\n---\n{bad_cert}  privateKey: {{algorithm: ECDSA, size: 2048}}\n"
    );
    assert_eq!(
        messages(&text),
        [
            "certs.yaml: document 4 (Certificate shop/web): spec.secretName: required",
            "certs.yaml: document 4 (Certificate shop/web): spec.privateKey.size: ECDSA keys must be 256, 384 or 521, got 2048",
        ]
    );
}

#[test]
fn old_api_versions_and_unknown_cert_manager_kinds_are_rejected() {
    let v1alpha2 = CERTIFICATE.replace("cert-manager.io/v1", "cert-manager.io/v1alpha2");
    let typo = CERTIFICATE.replace("kind: Certificate", "kind: Certifcate");
    let no_kind = "apiVersion: v1\nmetadata: {name: x}\n";
    assert_eq!(
        messages(&format!("{v1alpha2}---\n{typo}---\n{no_kind}")),
        [
            "certs.yaml: document 1: unsupported object cert-manager.io/v1alpha2 Certificate: expected cert-manager.io/v1 Issuer, ClusterIssuer or Certificate, or certkeeper.io/v1 VaultIssuer or VaultClusterIssuer",
            "certs.yaml: document 2: unsupported object cert-manager.io/v1 Certifcate: expected cert-manager.io/v1 Issuer, ClusterIssuer or Certificate, or certkeeper.io/v1 VaultIssuer or VaultClusterIssuer",
            "certs.yaml: document 3: unsupported object v1 : expected cert-manager.io/v1 Issuer, ClusterIssuer or Certificate, or certkeeper.io/v1 VaultIssuer or VaultClusterIssuer",
        ]
    );
    assert_eq!(
        messages("- a\n- b\n"),
        ["certs.yaml: document 1: expected a mapping with apiVersion and kind"]
    );
}

#[test]
fn yaml_syntax_error_ends_the_file() {
    let text = format!("{ISSUER}---\nkind: Certificate\n  spec: [\n---\n{CERTIFICATE}");
    let errors = messages(&text);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("certs.yaml: document 2: invalid YAML: "),
        "{errors:?}"
    );
    assert!(errors[0].contains("line 13"), "{errors:?}");
}

#[test]
fn kubectl_list_output_parses_including_status_and_server_metadata() {
    let text = "apiVersion: v1
kind: List
metadata: {resourceVersion: \"\"}
items:
- apiVersion: cert-manager.io/v1
  kind: Certificate
  metadata:
    name: web
    namespace: shop
    uid: 1f0c3b5e-8a3c-4d55-9b5f-0c1c1a7e4a11
    resourceVersion: \"12345\"
    generation: 2
    creationTimestamp: \"2026-01-01T00:00:00Z\"
    managedFields: [{manager: kubectl, operation: Apply}]
    labels: {app: web}
  spec:
    secretName: web-tls
    dnsNames: [web.shop.svc]
    issuerRef: {name: vault, kind: ClusterIssuer}
  status:
    conditions: [{type: Ready, status: \"True\"}]
    notAfter: \"2026-04-01T00:00:00Z\"
- apiVersion: cert-manager.io/v1
  kind: Certificate
  metadata: {name: api, namespace: shop}
  spec:
    secretName: api-tls
    dnsNames: [api.shop.svc]
    issuerRef: {name: vault, kind: ClusterIssuer}
    renewBefor: 24h
";
    assert_eq!(
        messages(text),
        ["certs.yaml: document 1, item 2 (Certificate shop/api): spec.renewBefor: unknown field"]
    );
    let fixed = text.replace("    renewBefor: 24h\n", "");
    let resources = parse_documents("certs.yaml", &fixed).unwrap();
    assert_eq!(resources.len(), 2);
    assert_eq!(resources[0].metadata().labels["app"], "web");
}

#[test]
fn unknown_fields_everywhere_are_collected_with_validation_errors() {
    let text = CERTIFICATE
        .replace("kind: Certificate\n", "kind: Certificate\nstatuss: {}\n")
        .replace("name: web\n", "name: web\n  lables: {a: b}\n")
        .replace("  dnsNames:", "  commmonName: web\n  duration: 10m\n  dnsNames:");
    assert_eq!(
        messages(&text),
        [
            "certs.yaml: document 1 (Certificate default/web): statuss: unknown field",
            "certs.yaml: document 1 (Certificate default/web): metadata.lables: unknown field",
            "certs.yaml: document 1 (Certificate default/web): spec.commmonName: unknown field",
            "certs.yaml: document 1 (Certificate default/web): spec.duration: must be at least 1h0m0s, got 10m0s",
        ]
    );
}

#[test]
fn metadata_rules() {
    let text = CERTIFICATE.replace("name: web\n", "name: Web\n  namespace: Shop\n");
    assert_eq!(
        messages(&text),
        [
            "certs.yaml: document 1 (Certificate Shop/Web): metadata.name: invalid name \"Web\": must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
            "certs.yaml: document 1 (Certificate Shop/Web): metadata.namespace: invalid name \"Shop\": must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character",
        ]
    );
    let unnamed = CERTIFICATE.replace("  name: web\n", "  labels: {}\n");
    assert_eq!(
        messages(&unnamed),
        ["certs.yaml: document 1 (Certificate default/<no name>): metadata.name: required"]
    );
}

#[test]
fn file_level_rules_duplicates_and_external_issuers_are_valid() {
    let external = CERTIFICATE.replace("name: web\n", "name: pca\n").replace(
        "{name: vault-issuer}",
        "{name: pca, kind: AWSPCAClusterIssuer, group: awspca.cert-manager.io}",
    );
    let text = format!("{CERTIFICATE}---\n{ISSUER}---\n{CERTIFICATE}---\n{external}");
    assert_eq!(
        messages(&text),
        [
            "certs.yaml: document 3 (Certificate default/web): metadata.name: Certificate web is already defined in document 1"
        ]
    );
    // cert-manager's webhook accepts a Certificate of an external issuer (its kind is not
    // checked for other groups): valid here, and no issuer of certkeeper's.
    let parsed = parse_file("certs.yaml", &external).unwrap();
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    let Resource::Certificate(pca) = &parsed.resources[0].1 else {
        panic!("Certificate")
    };
    assert!(!pca.spec.issuer_ref.is_cert_manager());
    assert_eq!(pca.issuer_key(), None);
    // The same name in another namespace, or of another kind, is a different object.
    let other_namespace = CERTIFICATE.replace("name: web\n", "name: web\n  namespace: shop\n");
    let cluster_issuer = ISSUER.replace("kind: Issuer", "kind: ClusterIssuer");
    assert!(
        parse_documents(
            "ok.yaml",
            &format!("{CERTIFICATE}---\n{other_namespace}---\n{ISSUER}---\n{cluster_issuer}")
        )
        .is_ok()
    );
}

#[test]
fn cluster_issuer_errors_show_no_namespace() {
    let text = ISSUER
        .replace("kind: Issuer", "kind: ClusterIssuer")
        .replace("    server: https://vault.local\n", "");
    assert_eq!(
        messages(&text),
        ["certs.yaml: document 1 (ClusterIssuer vault-issuer): spec.vault.server: required"]
    );
}

#[test]
fn parse_resource_is_the_per_object_entry_point() {
    let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(CERTIFICATE).unwrap();
    assert!(matches!(parse_resource(&value), Ok(Resource::Certificate(_))));
    let bad: serde_yaml_ng::Value = serde_yaml_ng::from_str(&CERTIFICATE.replace("web-tls", "")).unwrap();
    let errors = parse_resource(&bad).unwrap_err();
    assert_eq!(
        errors,
        [FieldError::new(
            FieldPath::parse("spec.secretName"),
            Problem::Required
        )]
    );
}

#[test]
fn yaml_merge_keys_are_applied() {
    let text = "apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: web}
spec:
  <<: {secretName: web-tls, issuerRef: {name: vault-issuer}}
  dnsNames: [web.example.com]
";
    let resources = parse_documents("certs.yaml", text).unwrap();
    let Resource::Certificate(certificate) = &resources[0] else {
        panic!("Certificate")
    };
    assert_eq!(certificate.spec.secret_name, "web-tls");
}

/// The token Secret as cert-manager's Vault page writes it
/// (https://cert-manager.io/docs/configuration/vault/#b-authenticating-with-a-token, whose
/// value is elided there as "MjI..."; a full one here).
const TOKEN_SECRET: &str = "apiVersion: v1
kind: Secret
type: Opaque
metadata:
  name: cert-manager-vault-token
  namespace: sandbox
data:
  token: \"MjI0ODRkODctNTVkNS0xOWI1LWFhMDctYTMyZGM4ZTYzNmFi\"
";

#[test]
fn secrets_are_read_and_other_kinds_ignored_by_name() {
    let text = format!(
        "{TOKEN_SECRET}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: settings, namespace: apps}}\ndata: {{a: b}}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\n---\napiVersion: cert-manager.io/v1\nkind: CertificateRequest\nmetadata: {{name: r}}\n---\n{ISSUER}"
    );
    let parsed = parse_file("certs.yaml", &text).unwrap();
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    assert_eq!(parsed.resources.len(), 1);
    assert_eq!(parsed.secrets.len(), 1);
    let (location, secret) = &parsed.secrets[0];
    assert_eq!(location.document, 1);
    assert_eq!(
        (secret.namespace(), secret.name()),
        ("sandbox", "cert-manager-vault-token")
    );
    assert_eq!(
        secret.get("token").unwrap().expose(),
        b"22484d87-55d5-19b5-aa07-a32dc8e636ab"
    );
    let ignored: Vec<String> = parsed.ignored.iter().map(|(l, d)| format!("{l}: {d}")).collect();
    assert_eq!(
        ignored,
        [
            "document 2: ConfigMap apps/settings (v1) is not a kind certkeeper reads; ignored",
            "document 3: Deployment web (apps/v1) is not a kind certkeeper reads; ignored",
            "document 4: CertificateRequest r (cert-manager.io/v1) is not a kind certkeeper reads; ignored",
        ]
    );
    // A hostile name in an ignored document cannot fake a log line or flood the warning.
    let hostile = format!(
        "apiVersion: v1\nkind: \"Config\\nMap\"\nmetadata: {{name: \"x\\ninvalid: forged\\u001b[31m{}\"}}\n",
        "y".repeat(10_000)
    );
    let parsed = parse_file("certs.yaml", &hostile).unwrap();
    let warning = parsed.ignored[0].1.to_string();
    assert!(
        warning.starts_with("Config?Map x?invalid: forged?[31myyy"),
        "{warning}"
    );
    assert!(warning.len() < 600 && !warning.contains('\n'), "{warning}");
    // All or nothing: a file of valid documents and ignored ones is accepted.
    assert_eq!(parse_documents("certs.yaml", &text).unwrap().len(), 1);
}

#[test]
fn hostile_secret_documents_fail_alone_and_never_show_values() {
    let hostile_name = TOKEN_SECRET.replace("name: cert-manager-vault-token", "name: ../../etc/passwd");
    let hostile_key = TOKEN_SECRET.replace("  token:", "  ../token:");
    let huge = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: huge}}\nstringData:\n  token: {}\n",
        "s".repeat(MAX_SECRET_BYTES + 1)
    );
    let text = format!(
        "{hostile_name}---\n{hostile_key}---\n{huge}---\n{TOKEN_SECRET}---\n{TOKEN_SECRET}---\n{ISSUER}---\n{CERTIFICATE}"
    );
    let parsed = parse_file("certs.yaml", &text).unwrap();
    let errors: Vec<String> = parsed.errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        errors,
        [
            "certs.yaml: document 1 (Secret sandbox/../../etc/passwd): metadata.name: invalid name \"../../etc/passwd\": must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
            "certs.yaml: document 2 (Secret sandbox/cert-manager-vault-token): data[../token]: invalid Secret key \"../token\": must consist of alphanumeric characters, '-', '_' or '.'",
            "certs.yaml: document 3 (Secret default/huge): data: must be at most 1048576 bytes long, got 1048577",
            "certs.yaml: document 5 (Secret sandbox/cert-manager-vault-token): metadata.name: Secret cert-manager-vault-token is already defined in document 4",
        ]
    );
    assert!(
        errors
            .iter()
            .all(|e| !e.contains("MjI0ODRk") && !e.contains("sss"))
    );
    // Nothing else in the file is lost.
    assert_eq!(parsed.secrets.len(), 1);
    assert_eq!(parsed.secrets[0].0.document, 4);
    assert_eq!(parsed.resources.len(), 2);
}

/// certkeeper's own kinds: cert-manager's `spec.vault` as the whole spec, checked as an
/// Issuer's `spec.vault` is (errors at `spec.*`), found by Certificates that name them with
/// group `certkeeper.io`; an unknown kind of that group is refused as cert-manager refuses one
/// of its own.
#[test]
fn vault_issuers_of_the_certkeeper_group() {
    let vault_issuer = "apiVersion: certkeeper.io/v1
kind: VaultIssuer
metadata: {name: vault, namespace: apps}
spec:
  server: https://vault.local
  path: pki_int/sign/example-dot-com
  auth:
    tokenSecretRef: {name: vault-token, key: token}
";
    let cluster = vault_issuer
        .replace("kind: VaultIssuer", "kind: VaultClusterIssuer")
        .replace(", namespace: apps", "");
    let certificate = |kind: &str| {
        CERTIFICATE
            .replace(
                "issuerRef: {name: vault-issuer}",
                &format!("issuerRef: {{name: vault, kind: {kind}, group: certkeeper.io}}"),
            )
            .replace("name: web\n", "name: web\n  namespace: apps\n")
    };
    let text = format!(
        "{vault_issuer}---\n{cluster}---\n{}---\n{}",
        certificate("VaultIssuer"),
        certificate("VaultClusterIssuer").replace("name: web\n", "name: api\n")
    );
    let resources = parse_documents("certs.yaml", &text).unwrap();
    assert_eq!(
        resources.iter().map(Resource::kind).collect::<Vec<_>>(),
        ["VaultIssuer", "VaultClusterIssuer", "Certificate", "Certificate"]
    );
    let keys: Vec<IssuerKey> = resources
        .iter()
        .filter_map(|r| r.issuer())
        .map(|i| i.key())
        .collect();
    let wanted: Vec<Option<IssuerKey>> = resources
        .iter()
        .filter_map(|r| match r {
            Resource::Certificate(c) => Some(c.issuer_key()),
            _ => None,
        })
        .collect();
    assert_eq!(wanted, [Some(keys[0].clone()), Some(keys[1].clone())]);
    assert_eq!(keys[0].namespace.as_deref(), Some("apps"));
    assert_eq!(keys[1].namespace, None);
    assert!(resources[0].issuer().unwrap().vault.is_some());

    // Errors name the fields of the certkeeper kind: `spec.path`, not `spec.vault.path`.
    let broken = vault_issuer.replace("  path: pki_int/sign/example-dot-com\n", "");
    assert_eq!(
        messages(&broken),
        ["certs.yaml: document 1 (VaultIssuer apps/vault): spec.path: required"]
    );
    let typo = vault_issuer.replace("kind: VaultIssuer", "kind: VaultIsuer");
    assert_eq!(
        messages(&typo),
        [
            "certs.yaml: document 1: unsupported object certkeeper.io/v1 VaultIsuer: expected \
          cert-manager.io/v1 Issuer, ClusterIssuer or Certificate, or certkeeper.io/v1 VaultIssuer \
          or VaultClusterIssuer"
        ]
    );
    let wrong_kind = certificate("Vault");
    assert_eq!(
        messages(&wrong_kind),
        [
            "certs.yaml: document 1 (Certificate apps/web): spec.issuerRef.kind: must be VaultIssuer \
          or VaultClusterIssuer in group certkeeper.io, got \"Vault\""
        ]
    );
    // The same name in both groups is two issuers, not a duplicate.
    let both = format!(
        "{vault_issuer}---\n{}",
        ISSUER.replace("name: vault-issuer", "name: vault\n  namespace: apps")
    );
    assert_eq!(parse_documents("certs.yaml", &both).unwrap().len(), 2);
}
