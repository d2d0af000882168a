//! One manifest file as cert-manager's users write it, against a real OpenBao: the token Secret
//! next to the Issuer that uses it, a Certificate, a ConfigMap, and a Certificate of an
//! external issuer. The certificate is issued with the token from the manifest, the ConfigMap
//! is warned about by kind and name, the external Certificate is left alone and shown as not
//! certkeeper's, and `check` passes. The token never appears in any output.
#![allow(clippy::unwrap_used)] // tests state their expectations by unwrapping

mod common;

use std::time::{Duration, Instant};

use certkeeper_testkit::{PkiOptions, role_body};
use common::*;
use serde_json::json;

/// base64 as `kubectl create secret` writes `data` values.
fn base64(text: &str) -> String {
    let encoded = serde_json::to_value(certkeeper_core::spec::Base64Bytes(text.as_bytes().to_vec())).unwrap();
    encoded.as_str().unwrap().to_owned()
}

/// The documents, each with its source:
/// - Secret and Issuer: https://cert-manager.io/docs/configuration/vault/ ("B. Authenticating
///   with a Token"), verbatim except the token (elided there as "MjI..."), `server` and `path`
///   (the test's OpenBao), and `caBundle` (the dev server speaks plain HTTP).
/// - Certificate `example-com`: https://cert-manager.io/docs/usage/certificate/ (the renewal
///   example), with `issuerRef` naming the Vault Issuer and without its `renewal` block.
/// - Certificate `pca-issuer-rsa-cert`: aws-privateca-issuer's
///   `config/samples/awspcaissuer_rsa/rsa_certificate_awspcaissuer.yaml`, verbatim.
fn manifest(token_b64: &str, server: &str, path: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Secret
type: Opaque
metadata:
  name: cert-manager-vault-token
  namespace: sandbox
data:
  token: "{token_b64}"
---
apiVersion: cert-manager.io/v1
kind: Issuer
metadata:
  name: vault-issuer
  namespace: sandbox
spec:
  vault:
    path: {path}
    server: {server}
    auth:
      tokenSecretRef:
          name: cert-manager-vault-token
          key: token
---
apiVersion: cert-manager.io/v1
kind: Certificate
metadata:
  name: example-com
  namespace: sandbox
spec:
  secretName: example-com-tls
  dnsNames:
    - example.com
  issuerRef:
    name: vault-issuer
    kind: Issuer

  duration: 2160h # 90d
  renewBefore: 360h # 15d
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: app-settings
  namespace: sandbox
data:
  level: debug
---
apiVersion: cert-manager.io/v1
kind: Certificate
metadata:
  name: pca-issuer-rsa-cert
  namespace: default
spec:
  subject:
    organizations:
    - aws
  dnsNames:
    - issuer-rsa-example.com
  privateKey:
    algorithm: "RSA"
    size: 2048
  secretName: pca-issuer-rsa-cert-tls
  issuerRef:
    kind: AWSPCAIssuer
    name: pca-issuer-rsa
    group: awspca.cert-manager.io
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_issuer_certificate_file_issues_and_leaves_the_rest_alone() {
    let started = Instant::now();
    let s = setup_with(
        PkiOptions {
            max_ttl: "2160h".into(),
            ..PkiOptions::default()
        },
        &[],
        "",
    )
    .await;
    let admin = s.bao.admin();
    let (int, role) = s.sign_path.split_once("/sign/").unwrap();
    // The docs' Certificate is for the bare domain example.com, with no commonName.
    admin
        .write(
            &format!("{int}/roles/{role}"),
            role_body(
                "2160h",
                "24h",
                &json!({"allow_bare_domains": true, "require_cn": false}),
            ),
        )
        .await
        .unwrap();
    let token = admin.create_token(&[&s.policy], "1h", true, 0).await.unwrap();
    let token_b64 = base64(&token);
    std::fs::write(
        s.root.join("manifests/sandbox.yaml"),
        manifest(&token_b64, &s.bao.addr(), &s.sign_path),
    )
    .unwrap();
    let config = s.config.to_str().unwrap();

    // check: the Vault issuer logs in with the manifest's token; the ConfigMap is a warning,
    // the external Certificate is named as not certkeeper's; neither fails the check.
    let out = ck(&["check", "--config", config]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("sandbox.yaml: document 4: ConfigMap sandbox/app-settings (v1) is not a kind certkeeper reads; ignored"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "not certkeeper's: Certificate default/pca-issuer-rsa-cert (issuerRef AWSPCAIssuer.awspca.cert-manager.io/pca-issuer-rsa): an external issuer's; left alone"
        ),
        "{stdout}"
    );
    let issuer_line = stdout
        .lines()
        .find(|l| l.starts_with("Issuer/sandbox/vault-issuer"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(issuer_line.contains(" ok "), "{issuer_line}");
    assert!(
        stdout.contains("1 Secret(s) in the manifests: sandbox/cert-manager-vault-token"),
        "{stdout}"
    );

    let daemon = Daemon::start(&s.config);
    let rows = wait_for(
        &s.config,
        "example-com issued",
        Duration::from_secs(60),
        &daemon,
        |r| {
            r.iter()
                .any(|x| x["name"] == "sandbox/example-com" && x["ready"] == true)
        },
    );
    // The external Certificate is no job and no problem row.
    assert!(
        rows.iter().all(|r| r["name"] != "default/pca-issuer-rsa-cert"),
        "{rows:#?}"
    );
    assert!(
        rows.iter().all(|r| r.get("manifestProblem").is_none()),
        "{rows:#?}"
    );
    let dir = s.root.join("certs/sandbox/example-com-tls");
    assert_eq!(leaf_sans(&dir), ["DNSName(example.com)"]);
    assert!(!s.root.join("certs/default/pca-issuer-rsa-cert-tls").exists());

    // status (table): the external Certificate listed as not certkeeper's, the ConfigMap as
    // ignored; exit status 0 (everything of certkeeper's is Ready).
    let out = ck(&["status", "--config", config]);
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{table}");
    assert!(table.contains("NOT CERTKEEPER'S (external issuers; left alone)\ndefault/pca-issuer-rsa-cert  issuerRef AWSPCAIssuer.awspca.cert-manager.io/pca-issuer-rsa\n"), "{table}");
    assert!(
        table.contains("IGNORED DOCUMENTS (kinds certkeeper does not read)\n"),
        "{table}"
    );

    // The log warns about the ConfigMap and names the external Certificate; no output ever
    // holds the token.
    let log = daemon.log();
    assert!(log.contains("manifest document of another kind ignored"), "{log}");
    assert!(log.contains("ConfigMap sandbox/app-settings"), "{log}");
    assert!(log.contains("certificate of an external issuer"), "{log}");
    for text in [&stdout, &stderr, &table, &log] {
        assert!(!text.contains(&token) && !text.contains(&token_b64));
    }
    drop(daemon);
    drop(s.bao);
    eprintln!("took {:?}", started.elapsed());
}
