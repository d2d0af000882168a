//! `otherNames`, `literalSubject` and `nameConstraints` end to end: the standalone daemon
//! issues through a real OpenBao and the certificates are read back by `openssl x509 -text`.
//! What reaches the certificate depends on the Vault path (measured, see docs/migrating.md):
//! `sign/<role>` copies otherName SANs the role allows and rebuilds the subject from the CN
//! (plus the role's subject fields and allowed UIDs); `sign-verbatim/<role>` keeps the CSR's
//! subject, SANs and name constraints.
#![allow(clippy::unwrap_used)] // tests state their expectations by unwrapping

mod common;

use std::path::Path;
use std::time::Duration;

use certkeeper_testkit::{line_after, name_constraint_lines, role_body, x509_text};
use common::*;
use serde_json::json;

fn write_manifest(root: &Path, file: &str, yaml: &str) {
    std::fs::write(root.join("manifests").join(file), yaml).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_names_literal_subjects_and_name_constraints_reach_the_certificate() {
    let s = setup(&[]).await;
    let admin = s.bao.admin();
    let (int, role) = s.sign_path.split_once("/sign/").unwrap();
    // A role that allows the UPN otherName and the UID the literal subject carries.
    let overrides = json!({
        "allowed_other_sans": ["1.3.6.1.4.1.311.20.2.3;UTF8:*@example.com"],
        "allowed_user_ids": ["jdoe"],
    });
    admin
        .write(
            &format!("{int}/roles/{role}"),
            role_body("720h", "24h", &overrides),
        )
        .await
        .unwrap();
    // The AppRole's policy also allows sign-verbatim with the same role.
    let hcl = format!(
        "path \"{int}/sign/{role}\" {{ capabilities = [\"create\", \"update\"] }}\n\
         path \"{int}/sign-verbatim/{role}\" {{ capabilities = [\"create\", \"update\"] }}\n"
    );
    admin.put_policy(&s.policy, &hcl).await.unwrap();
    let issuer = std::fs::read_to_string(s.root.join("manifests/issuer.yaml")).unwrap();
    let verbatim = issuer
        .replace("name: vault,", "name: verbatim,")
        .replace("/sign/", "/sign-verbatim/");
    write_manifest(&s.root, "verbatim.yaml", &verbatim);

    let literal = "CN=ldap.example.com,UID=jdoe,OU=People,DC=example,DC=com";
    let cert = |name: &str, issuer: &str, extra: &str| {
        format!(
            "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  secretName: {name}-tls\n  issuerRef: {{name: {issuer}}}\n  literalSubject: '{literal}'\n  dnsNames: [ldap.example.com]\n  otherNames: [{{oid: 1.3.6.1.4.1.311.20.2.3, utf8Value: jdoe@example.com}}]\n{extra}"
        )
    };
    write_manifest(&s.root, "sign.yaml", &cert("sign", "vault", ""));
    write_manifest(
        &s.root,
        "verbatim-ca.yaml",
        &cert(
            "verbatim-ca",
            "verbatim",
            "  isCA: true\n  nameConstraints:\n    critical: true\n    permitted: {dnsDomains: [.example.com], ipRanges: [10.0.0.0/8]}\n    excluded: {emailAddresses: [bad.example.com], uriDomains: [.bad.example.com]}\n",
        ),
    );

    let daemon = Daemon::start(&s.config);
    wait_for(&s.config, "both issued", Duration::from_secs(60), &daemon, |r| {
        r.len() == 2 && r.iter().all(|x| x["ready"] == true)
    });
    let certs = s.root.join("certs/default");

    // sign/<role>: the otherName SAN is copied (the role allows it); the subject is rebuilt
    // by OpenBao from the CN and the allowed UID, so OU and DC are dropped.
    let text = x509_text(&certs.join("sign-tls")).unwrap();
    assert_eq!(
        line_after(&text, "X509v3 Subject Alternative Name").unwrap(),
        "othername: UPN::jdoe@example.com, DNS:ldap.example.com"
    );
    assert!(text.contains("Subject: UID=jdoe,CN=ldap.example.com\n"), "{text}");
    assert!(!text.contains("Name Constraints"), "{text}");

    // sign-verbatim/<role>: subject as written (same order and types), SANs and name
    // constraints as requested. OpenBao drops basicConstraints there, so it is no CA.
    let text = x509_text(&certs.join("verbatim-ca-tls")).unwrap();
    assert!(text.contains(&format!("Subject: {literal}\n")), "{text}");
    assert_eq!(
        line_after(&text, "X509v3 Subject Alternative Name").unwrap(),
        "othername: UPN::jdoe@example.com, DNS:ldap.example.com"
    );
    let constraints = name_constraint_lines(&text, 6);
    assert_eq!(
        constraints,
        [
            "Permitted:",
            "DNS:.example.com",
            "IP:10.0.0.0/255.0.0.0",
            "Excluded:",
            "email:bad.example.com",
            "URI:.bad.example.com",
        ],
        "{text}"
    );
    assert!(!text.contains("CA:TRUE"), "{text}");
    drop(daemon);
    drop(s.bao);
}
