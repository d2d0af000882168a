//! The examples in docs/issuers.md parse and validate, so the documentation cannot drift.

use super::*;

const DOC: &str = include_str!("../../../../docs/issuers.md");

fn yaml_blocks(doc: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in doc.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```yaml") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

#[test]
fn every_documented_manifest_is_valid() {
    let blocks = yaml_blocks(DOC);
    assert_eq!(
        blocks.len(),
        9,
        "seven issuers, a certificate, and an issuer with certkeeper's annotations"
    );
    let mut methods = Vec::new();
    for (i, block) in blocks.iter().enumerate() {
        let resources = parse_documents(&format!("docs/issuers.md block {}", i + 1), block)
            .unwrap_or_else(|e| panic!("block {}: {e}\n{block}", i + 1));
        assert_eq!(resources.len(), 1);
        let Some(issuer) = resources[0].issuer() else {
            continue;
        };
        let vault = issuer.vault;
        let method = vault.and_then(|v| v.auth.method()).map(|m| match m {
            VaultAuthMethod::Token(_) => "token",
            VaultAuthMethod::AppRole(_) => "appRole",
            VaultAuthMethod::Kubernetes(k) if k.service_account_ref.is_some() => {
                "kubernetes serviceAccountRef"
            }
            VaultAuthMethod::Kubernetes(_) => "kubernetes secretRef",
            VaultAuthMethod::ClientCertificate(_) => "clientCertificate",
            VaultAuthMethod::Aws(a) if a.uses_ambient_credentials() => "aws ambient",
            VaultAuthMethod::Aws(_) => "aws serviceAccountRef",
        });
        methods.push(method.unwrap_or("none"));
    }
    assert_eq!(
        methods,
        [
            "token",
            "appRole",
            "kubernetes serviceAccountRef",
            "kubernetes secretRef",
            "clientCertificate",
            "aws ambient",
            "aws serviceAccountRef",
            "appRole"
        ]
    );
}
