//! Secrets in the manifests, documents of other kinds, and Certificates of external issuers.

use std::collections::HashMap;

use certkeeper_engine::metrics::Metrics;
use certkeeper_vault::{AuthMethod, SecretSource};

use super::*;

/// cert-manager's token Secret and Issuer
/// (https://cert-manager.io/docs/configuration/vault/#b-authenticating-with-a-token), with a
/// full token where the page elides it.
const SANDBOX: &str = "\
apiVersion: v1
kind: Secret
type: Opaque
metadata:
  name: cert-manager-vault-token
  namespace: sandbox
data:
  token: \"aHZzLmZyb20tdGhlLW1hbmlmZXN0\"
---
apiVersion: cert-manager.io/v1
kind: Issuer
metadata:
  name: vault-issuer
  namespace: sandbox
spec:
  vault:
    path: pki_int/sign/example-dot-com
    server: https://vault.local
    auth:
      tokenSecretRef:
          name: cert-manager-vault-token
          key: token
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: sandbox}
data: {level: debug}
---
apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: example-com, namespace: sandbox}
spec:
  secretName: example-com-tls
  dnsNames: [example.com]
  issuerRef: {name: vault-issuer}
---
apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: pca, namespace: sandbox}
spec:
  secretName: pca-tls
  dnsNames: [pca.example.com]
  issuerRef: {name: pca, kind: AWSPCAClusterIssuer, group: awspca.cert-manager.io}
";

struct Fixture {
    dir: tempfile::TempDir,
    config: Config,
    secrets: ManifestSecrets,
}

impl Fixture {
    fn new(manifest: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("manifests")).unwrap();
        std::fs::create_dir_all(dir.path().join("secrets")).unwrap();
        std::fs::write(dir.path().join("manifests/sandbox.yaml"), manifest).unwrap();
        let text = "manifests: manifests\nstateDir: state\nsecrets:\n  dir: secrets\n  refs:\n    \
                    - { secret: apps/vault-token, key: token, file: /run/secrets/vault-token }\n";
        let config = Config::parse(&dir.path().join("certkeeper.yaml"), text).unwrap();
        Fixture {
            dir,
            config,
            secrets: ManifestSecrets::default(),
        }
    }

    fn write(&self, text: &str) {
        std::fs::write(self.dir.path().join("manifests/sandbox.yaml"), text).unwrap();
    }

    fn load(&self, previous: &HashMap<IssuerId, IssuerRuntime>) -> Loaded {
        load(&self.config, &Metrics::default(), previous, &self.secrets).unwrap()
    }
}

fn token_source(loaded: &Loaded, id: &str) -> SecretSource {
    let issuer = loaded.issuers.iter().find(|i| i.id == id).expect("issuer built");
    match issuer.client.auth() {
        AuthMethod::Token { token } => token.clone(),
        other => panic!("{other:?}"),
    }
}

fn problem_lines(loaded: &Loaded) -> Vec<String> {
    loaded
        .manifest_problems
        .iter()
        .map(ToString::to_string)
        .chain(loaded.problems.iter().map(ToString::to_string))
        .collect()
}

#[tokio::test]
async fn a_secret_next_to_its_issuer_is_the_token_and_a_reload_rotates_it() {
    let fx = Fixture::new(SANDBOX);
    let first = fx.load(&HashMap::new());
    assert_eq!(problem_lines(&first), Vec::<String>::new());
    assert_eq!(first.certificates.len(), 1);
    let source = token_source(&first, "Issuer/sandbox/vault-issuer");
    assert_eq!(
        source.describe(),
        "Secret sandbox/cert-manager-vault-token key \"token\" in the manifests"
    );
    assert_eq!(source.read().await.unwrap().expose(), "hvs.from-the-manifest");

    // The token changes in the manifest: the issuer (token cache, gate) is kept, and its next
    // login reads the new value, as with a file under secrets.dir.
    fx.write(&SANDBOX.replace("aHZzLmZyb20tdGhlLW1hbmlmZXN0", "aHZzLnJvdGF0ZWQ="));
    let previous: HashMap<IssuerId, IssuerRuntime> =
        first.issuers.iter().map(|i| (i.id.clone(), i.clone())).collect();
    let second = fx.load(&previous);
    let kept = &second.issuers[0];
    assert!(Arc::ptr_eq(&kept.client, &previous[&kept.id].client));
    assert_eq!(source.read().await.unwrap().expose(), "hvs.rotated");

    // stringData wins over data, as the API server merges them.
    fx.write(&SANDBOX.replace(
        "data:\n  token: \"aHZzLmZyb20tdGhlLW1hbmlmZXN0\"\n",
        "data:\n  token: \"aHZzLmZyb20tdGhlLW1hbmlmZXN0\"\nstringData:\n  token: hvs.string-data\n",
    ));
    let third = fx.load(&HashMap::new());
    let source = token_source(&third, "Issuer/sandbox/vault-issuer");
    assert_eq!(source.read().await.unwrap().expose(), "hvs.string-data");

    // The Secret is removed from the manifests: the reference resolves through secrets.dir
    // again, and a client still running with the old source says why its login fails.
    fx.write(&SANDBOX.replace("kind: Secret", "kind: ConfigMap"));
    let fourth = fx.load(&HashMap::new());
    let dir = fx
        .dir
        .path()
        .join("secrets/sandbox/cert-manager-vault-token/token");
    assert_eq!(
        token_source(&fourth, "Issuer/sandbox/vault-issuer").describe(),
        format!("file {}", dir.display())
    );
    let err = source.read().await.unwrap_err().to_string();
    assert_eq!(
        err,
        "Secret sandbox/cert-manager-vault-token (no longer in the manifests) not found"
    );
}

#[test]
fn other_kinds_are_warned_about_and_external_certificates_left_alone() {
    let fx = Fixture::new(SANDBOX);
    let loaded = fx.load(&HashMap::new());
    // Neither is a problem (`certkeeper check` passes), neither is a job.
    assert_eq!(problem_lines(&loaded), Vec::<String>::new());
    let ignored: Vec<String> = loaded.ignored.iter().map(ToString::to_string).collect();
    let file = fx.dir.path().join("manifests/sandbox.yaml");
    assert_eq!(
        ignored,
        [format!(
            "{}: document 3: ConfigMap sandbox/settings (v1) is not a kind certkeeper reads; ignored",
            file.display()
        )]
    );
    assert_eq!(loaded.external.len(), 1);
    assert_eq!(loaded.external[0].name, "sandbox/pca");
    assert_eq!(
        loaded.external[0].issuer(),
        "AWSPCAClusterIssuer.awspca.cert-manager.io/pca"
    );
    let jobs: Vec<&str> = loaded.certificates.iter().map(|(j, _)| j.id.as_str()).collect();
    assert_eq!(jobs, ["sandbox/example-com"]);
}

/// A Secret both in the manifests and under secrets.dir (or in secrets.refs) is a reported
/// conflict, and neither source is used.
#[test]
fn a_secret_from_two_sources_is_a_conflict_and_neither_is_used() {
    let fx = Fixture::new(SANDBOX);
    let dir = fx.dir.path().join("secrets/sandbox/cert-manager-vault-token");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("token"), "hvs.from-the-dir").unwrap();
    let loaded = fx.load(&HashMap::new());
    let file = fx.dir.path().join("manifests/sandbox.yaml");
    assert_eq!(
        problem_lines(&loaded),
        [
            format!(
                "{}: document 1 (Secret sandbox/cert-manager-vault-token): is also provided by secrets.dir ({}): give each Secret one source (remove one); neither is used",
                file.display(),
                dir.display()
            ),
            format!(
                "Issuer/sandbox/vault-issuer: spec.vault.auth.tokenSecretRef: Secret sandbox/cert-manager-vault-token: defined in {}: document 1, which is also provided by secrets.dir ({}): give each Secret one source (remove one); neither is used",
                file.display(),
                dir.display()
            ),
            "Certificate sandbox/example-com: spec.issuerRef: waiting for Issuer/sandbox/vault-issuer: it cannot be used: spec.vault.auth.tokenSecretRef: Secret sandbox/cert-manager-vault-token: defined in ".to_owned()
                + &format!("{}: document 1, which is also provided by secrets.dir ({}): give each Secret one source (remove one); neither is used", file.display(), dir.display()),
        ]
    );
    assert!(loaded.issuers.is_empty());

    // A secrets.refs entry for the Secret conflicts the same way.
    let fx = Fixture::new(
        &SANDBOX
            .replace("sandbox", "apps")
            .replace("cert-manager-vault-token", "vault-token"),
    );
    let loaded = fx.load(&HashMap::new());
    assert!(
        problem_lines(&loaded)[0].ends_with(
            "(Secret apps/vault-token): is also provided by a secrets.refs entry for apps/vault-token: give each Secret one source (remove one); neither is used"
        ),
        "{:?}",
        problem_lines(&loaded)
    );
}

/// A hostile Secret document fails alone: the Issuer that references it says why (and is not
/// resolved through secrets.dir instead), everything else in the file runs, and no message
/// quotes a value.
#[test]
fn hostile_secret_documents_fail_alone() {
    let hostile = SANDBOX.replace("  token: \"aHZz", "  ../token: \"aHZz").replace(
        "kind: ConfigMap\nmetadata: {name: settings",
        "kind: Secret\nmetadata: {name: ../../etc/passwd",
    );
    let fx = Fixture::new(&hostile);
    let dir = fx.dir.path().join("secrets/sandbox/cert-manager-vault-token");
    let loaded = fx.load(&HashMap::new());
    let lines = problem_lines(&loaded);
    let file = fx.dir.path().join("manifests/sandbox.yaml");
    assert_eq!(
        lines[..2],
        [
            format!(
                "{}: document 1 (Secret sandbox/cert-manager-vault-token): data[../token]: invalid Secret key \"../token\": must consist of alphanumeric characters, '-', '_' or '.'",
                file.display()
            ),
            format!(
                "{}: document 3 (Secret sandbox/../../etc/passwd): metadata.name: invalid name \"../../etc/passwd\": must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character; data[level]: invalid base64: length is not a multiple of 4 (missing padding?)",
                file.display()
            ),
        ]
    );
    assert_eq!(
        lines[2],
        format!(
            "Issuer/sandbox/vault-issuer: spec.vault.auth.tokenSecretRef: Secret sandbox/cert-manager-vault-token: its manifest is invalid ({}: document 1)",
            file.display()
        )
    );
    assert!(!dir.exists());
    assert!(
        lines.iter().all(|l| !l.contains("aHZz") && !l.contains("debug")),
        "{lines:?}"
    );
    // The external Certificate is still left alone, the other one waits for its issuer.
    assert_eq!(loaded.external.len(), 1);
    assert_eq!(loaded.certificates.len(), 1);

    // A Secret over Kubernetes' 1 MiB: refused alone.
    let huge = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: huge, namespace: sandbox}}\nstringData:\n  blob: {}\n---\n{SANDBOX}",
        "x".repeat(spec::MAX_SECRET_BYTES + 1)
    );
    let fx = Fixture::new(&huge);
    let loaded = fx.load(&HashMap::new());
    assert_eq!(
        problem_lines(&loaded),
        [format!(
            "{}: document 1 (Secret sandbox/huge): data: must be at most 1048576 bytes long, got 1048577",
            fx.dir.path().join("manifests/sandbox.yaml").display()
        )]
    );
    assert_eq!(loaded.issuers.len(), 1);
    assert_eq!(loaded.certificates.len(), 1);
}

/// A Secret without the referenced key: the issuer says which key is missing and where the
/// Secret is defined.
#[test]
fn a_missing_key_names_the_secret_and_its_manifest() {
    let fx = Fixture::new(&SANDBOX.replace("          key: token", "          key: other"));
    let loaded = fx.load(&HashMap::new());
    let file = fx.dir.path().join("manifests/sandbox.yaml");
    assert_eq!(
        problem_lines(&loaded)[0],
        format!(
            "Issuer/sandbox/vault-issuer: spec.vault.auth.tokenSecretRef: Secret sandbox/cert-manager-vault-token (defined in {}: document 1) has no key \"other\"",
            file.display()
        )
    );
}
