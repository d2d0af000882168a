use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use certkeeper_core::pki::{ExtendedKeyUsage, KeyAlgorithm, KeyEncoding, KeyUsage, Pkcs12Profile};
use certkeeper_engine::metrics::Metrics;
use certkeeper_engine::{IssuerId, IssuerRuntime};
use certkeeper_vault::{AuthMethod, SecretSource};

use super::*;

/// A self-signed P-256 CA certificate (valid until 2126), as a caBundle file holds it.
const CA_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBkjCCATegAwIBAgIUIQoYXJvTEJcBv3QCotGcYAd+gWEwCgYIKoZIzj0EAwIw
HTEbMBkGA1UEAwwSY2VydGtlZXBlciB0ZXN0IENBMCAXDTI2MTEyNjAwMDYxMloY
DzIxMjYxMTAyMDAwNjEyWjAdMRswGQYDVQQDDBJjZXJ0a2VlcGVyIHRlc3QgQ0Ew
WTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAASuicp6GHct4i8wo8kmVdeTK4Wyje8/
1pN5v9GO31nKpvykx9AVLCRWWnE170qDzA5mYuezNZK2hD58GKvlQI1yo1MwUTAd
BgNVHQ4EFgQUdFZEeyANpUK3RzY4Qdb78X029GAwHwYDVR0jBBgwFoAUdFZEeyAN
pUK3RzY4Qdb78X029GAwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNJADBG
AiEAqaBEncXi2Uk5xalKk8kjdFgPJ2DfSD/qPekkckTQHTsCIQDM7MKO1xy06BO+
J7M/kB4JLdMeWJYjmz/cyxlmS5YIgw==
-----END CERTIFICATE-----
";

const ISSUERS: &str = "\
apiVersion: cert-manager.io/v1
kind: Issuer
metadata: {name: vault, namespace: apps}
spec:
  vault:
    server: https://vault.example.com:8200
    path: pki/sign/web
    namespace: team-a
    auth:
      tokenSecretRef: {name: vault-token}
---
apiVersion: cert-manager.io/v1
kind: ClusterIssuer
metadata: {name: shared}
spec:
  vault:
    server: https://bao.example.com
    path: pki_int/sign/internal
    caBundleSecretRef: {name: bao-ca}
    auth:
      appRole: {path: approle, roleId: role-123, secretRef: {name: bao-approle, key: secretId}}
";

const CERTIFICATES: &str = "\
apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: web, namespace: apps}
spec:
  secretName: web-tls
  commonName: web.example.com
  dnsNames: [web.example.com, www.example.com]
  ipAddresses: [10.0.0.1]
  duration: 720h
  renewBefore: 240h
  privateKey: {algorithm: ECDSA, size: 384, rotationPolicy: Never}
  usages: [server auth, digital signature]
  additionalOutputFormats: [{type: CombinedPEM}]
  issuerRef: {name: vault}
---
apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: api, namespace: apps}
spec:
  secretName: api-tls
  dnsNames: [api.internal]
  issuerRef: {name: shared, kind: ClusterIssuer}
  additionalOutputFormats: [{type: DER}]
  keystores: {pkcs12: {create: true, profile: Modern2023, passwordSecretRef: {name: p12, key: password}}}
";

struct Fixture {
    dir: tempfile::TempDir,
    config: Config,
    secrets: ManifestSecrets,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("manifests")).unwrap();
        std::fs::create_dir_all(root.join("secrets/cert-manager/bao-ca")).unwrap();
        std::fs::write(root.join("secrets/cert-manager/bao-ca/ca.crt"), CA_PEM).unwrap();
        std::fs::write(root.join("manifests/issuers.yaml"), ISSUERS).unwrap();
        std::fs::write(root.join("manifests/certificates.yml"), CERTIFICATES).unwrap();
        std::fs::write(root.join("manifests/notes.txt"), "not a manifest").unwrap();
        let config_path = root.join("certkeeper.yaml");
        let text = "manifests: manifests\nstateDir: state\nsecrets:\n  dir: secrets\n  refs:\n    \
                    - { secret: apps/vault-token, key: token, file: /run/secrets/vault-token }\n";
        let config = Config::parse(&config_path, text).unwrap();
        Fixture {
            dir,
            config,
            secrets: ManifestSecrets::default(),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn write(&self, rel: &str, text: &str) {
        std::fs::write(self.path(rel), text).unwrap();
    }

    fn load(&self, previous: &HashMap<IssuerId, IssuerRuntime>) -> Result<Loaded, LoadError> {
        load(&self.config, &Metrics::default(), previous, &self.secrets)
    }
}

fn by_id(loaded: &Loaded) -> HashMap<IssuerId, IssuerRuntime> {
    loaded.issuers.iter().map(|i| (i.id.clone(), i.clone())).collect()
}

fn cert<'a>(loaded: &'a Loaded, id: &str) -> &'a (CertJob, CertMeta) {
    loaded
        .certificates
        .iter()
        .find(|(job, _)| job.id == id)
        .unwrap_or_else(|| panic!("no certificate {id}"))
}

#[test]
fn builds_issuers_and_jobs_from_manifests() {
    let fx = Fixture::new();
    let loaded = fx.load(&HashMap::new()).unwrap();
    assert_eq!(loaded.problems, vec![]);

    let issuers = by_id(&loaded);
    let mut ids: Vec<_> = issuers.keys().cloned().collect();
    ids.sort();
    assert_eq!(ids, ["ClusterIssuer/shared", "Issuer/apps/vault"]);
    let token = &issuers["Issuer/apps/vault"];
    assert_eq!(token.path, "pki/sign/web");
    match token.client.auth() {
        AuthMethod::Token {
            token: SecretSource::File(path),
        } => assert_eq!(path, Path::new("/run/secrets/vault-token")),
        other => panic!("{other:?}"),
    }
    let approle = &issuers["ClusterIssuer/shared"];
    assert_eq!(approle.path, "pki_int/sign/internal");
    match approle.client.auth() {
        AuthMethod::AppRole {
            mount,
            role_id,
            secret_id,
        } => {
            assert_eq!((mount.as_str(), role_id.as_str()), ("approle", "role-123"));
            // A ClusterIssuer's Secrets are in cert-manager's cluster resource namespace; a file
            // under secrets.dir is read through the check that it stays there.
            let path = fx.path("secrets/cert-manager/bao-approle/secretId");
            assert_eq!(
                format!("{secret_id:?}"),
                format!("SecretSource(file {})", path.display())
            );
        }
        other => panic!("{other:?}"),
    }

    let (web, web_meta) = cert(&loaded, "apps/web");
    assert_eq!(web.issuer, "Issuer/apps/vault");
    assert_ne!(web.fingerprint, 0);
    assert_eq!(web.csr.common_name.as_deref(), Some("web.example.com"));
    assert_eq!(web.csr.dns_names, ["web.example.com", "www.example.com"]);
    assert_eq!(
        web.csr.ip_addresses,
        ["10.0.0.1".parse::<std::net::IpAddr>().unwrap()]
    );
    assert_eq!(web.csr.key_usages, [KeyUsage::DigitalSignature]);
    assert_eq!(web.csr.extended_key_usages, [ExtendedKeyUsage::ServerAuth]);
    assert!(web.csr.encode_usages_in_request);
    assert_eq!(web.key_algorithm, KeyAlgorithm::Ecdsa(384));
    assert_eq!(web.key_encoding, KeyEncoding::Pkcs1);
    assert!(!web.rotate_key);
    assert_eq!(web.duration, Duration::from_secs(720 * 3600));
    assert_eq!(web.renewal.renew_before, Some(Duration::from_secs(240 * 3600)));
    assert_eq!(web.labels.name, "web");
    assert_eq!(web.labels.issuer_name, "vault");
    assert_eq!(web_meta.secret_name, "web-tls");
    assert_eq!(web_meta.output.dir, fx.path("./certs/apps/web-tls"));
    let formats = &web_meta.formats;
    assert!(formats.combined_pem && !formats.der && formats.pkcs12.is_none());

    let (api, api_meta) = cert(&loaded, "apps/api");
    assert_eq!(api.issuer, "ClusterIssuer/shared");
    assert_eq!(api.csr.common_name, None);
    assert_eq!(api.key_algorithm, KeyAlgorithm::Rsa(2048));
    assert!(api.rotate_key);
    assert_eq!(api.duration, Duration::from_secs(90 * 24 * 3600));
    assert_eq!(api.renewal.renew_before, None);
    assert_eq!(
        api.csr.key_usages,
        [KeyUsage::DigitalSignature, KeyUsage::KeyEncipherment]
    );
    assert_eq!(api.labels.issuer_kind, "ClusterIssuer");
    assert!(!api_meta.formats.combined_pem && api_meta.formats.der);
    let p12 = api_meta.formats.pkcs12.as_ref().unwrap();
    assert_eq!(p12.profile, Pkcs12Profile::Modern2023);
    // A Certificate's own references resolve in its namespace.
    let password = fx.path("secrets/apps/p12/password");
    assert_eq!(
        format!("{:?}", p12.password),
        format!("SecretSource(file {})", password.display())
    );
}

#[test]
fn unchanged_issuers_are_reused_and_changes_rebuild_and_reissue() {
    let fx = Fixture::new();
    let first = fx.load(&HashMap::new()).unwrap();
    let second = fx.load(&by_id(&first)).unwrap();
    for (id, issuer) in by_id(&second) {
        let before = &by_id(&first)[&id];
        assert!(Arc::ptr_eq(&issuer.client, &before.client), "{id} rebuilt");
        assert_eq!(issuer.fingerprint, before.fingerprint);
    }
    for (job, _) in &second.certificates {
        assert_eq!(job.fingerprint, cert(&first, &job.id).0.fingerprint, "{}", job.id);
    }

    // An issuer spec edit rebuilds that issuer only and re-issues its certificates only.
    fx.write(
        "manifests/issuers.yaml",
        &ISSUERS.replace("pki/sign/web", "pki/sign/web2"),
    );
    let third = fx.load(&by_id(&second)).unwrap();
    let (old, new) = (by_id(&second), by_id(&third));
    assert!(!Arc::ptr_eq(
        &new["Issuer/apps/vault"].client,
        &old["Issuer/apps/vault"].client
    ));
    assert_eq!(new["Issuer/apps/vault"].path, "pki/sign/web2");
    assert_ne!(
        new["Issuer/apps/vault"].fingerprint,
        old["Issuer/apps/vault"].fingerprint
    );
    assert!(Arc::ptr_eq(
        &new["ClusterIssuer/shared"].client,
        &old["ClusterIssuer/shared"].client
    ));
    assert_ne!(
        cert(&third, "apps/web").0.fingerprint,
        cert(&second, "apps/web").0.fingerprint
    );
    assert_eq!(
        cert(&third, "apps/api").0.fingerprint,
        cert(&second, "apps/api").0.fingerprint
    );

    // New CA bundle contents rebuild the issuer that reads them.
    fx.write("secrets/cert-manager/bao-ca/ca.crt", &format!("{CA_PEM}{CA_PEM}"));
    let fourth = fx.load(&by_id(&third)).unwrap();
    assert!(!Arc::ptr_eq(
        &by_id(&fourth)["ClusterIssuer/shared"].client,
        &new["ClusterIssuer/shared"].client
    ));

    // A certificate spec edit changes that certificate's fingerprint only.
    fx.write(
        "manifests/certificates.yml",
        &CERTIFICATES.replace("api.internal", "api2.internal"),
    );
    let fifth = fx.load(&by_id(&fourth)).unwrap();
    assert_ne!(
        cert(&fifth, "apps/api").0.fingerprint,
        cert(&fourth, "apps/api").0.fingerprint
    );
    assert_eq!(
        cert(&fifth, "apps/web").0.fingerprint,
        cert(&fourth, "apps/web").0.fingerprint
    );
}

#[test]
fn changed_issuer_limits_rebuild_clients_without_reissuing() {
    let mut fx = Fixture::new();
    let first = fx.load(&HashMap::new()).unwrap();
    fx.config.issuers.request_timeout = Duration::from_secs(2);
    let second = fx.load(&by_id(&first)).unwrap();
    for (id, issuer) in by_id(&second) {
        let before = &by_id(&first)[&id];
        assert!(!Arc::ptr_eq(&issuer.client, &before.client), "{id} kept");
        assert_eq!(issuer.fingerprint, before.fingerprint);
        assert_ne!(issuer.settings, before.settings);
    }
    for (job, _) in &second.certificates {
        assert_eq!(job.fingerprint, cert(&first, &job.id).0.fingerprint, "{}", job.id);
    }
}

fn manifest_problems(loaded: &Loaded) -> Vec<String> {
    loaded.manifest_problems.iter().map(ToString::to_string).collect()
}

#[test]
fn hostile_invalid_documents_fail_alone() {
    let fx = Fixture::new();
    fx.write(
        "manifests/bad.yaml",
        "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {name: bad, namespace: apps}\n\
         spec: {secretName: s, dnsNames: [a.example], issuerRef: {name: vault}, \
         privateKey: {algorithm: ECDSA, size: 2048}, bogus: 1}\n---\n\
         apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {name: good, namespace: apps}\n\
         spec: {secretName: good-tls, dnsNames: [good.example], issuerRef: {name: vault}}\n",
    );
    fx.write("manifests/dup.yaml", &ISSUERS[..ISSUERS.find("---").unwrap()]);
    let loaded = fx.load(&HashMap::new()).unwrap();
    let bad = fx.path("manifests/bad.yaml").display().to_string();
    let dup = fx.path("manifests/dup.yaml").display().to_string();
    let issuers = fx.path("manifests/issuers.yaml").display().to_string();
    let problems = manifest_problems(&loaded);
    assert_eq!(problems.len(), 2, "{problems:#?}");
    // One line per document, with every error of it.
    assert!(
        problems[0].starts_with(&format!(
            "{bad}: document 1 (Certificate apps/bad): spec.bogus: unknown field; spec.privateKey.size:"
        )),
        "{problems:#?}"
    );
    // The later definition is the one left out (files are read in name order).
    assert_eq!(
        problems[1],
        format!(
            "{issuers}: document 1 (Issuer apps/vault): Issuer apps/vault is already defined in {dup}: document 1"
        )
    );
    // Everything else runs: both issuers, the three valid certificates.
    let mut ids: Vec<_> = loaded.issuers.iter().map(|i| i.id.clone()).collect();
    ids.sort();
    assert_eq!(ids, ["ClusterIssuer/shared", "Issuer/apps/vault"]);
    let mut certs: Vec<_> = loaded.certificates.iter().map(|(j, _)| j.id.clone()).collect();
    certs.sort();
    assert_eq!(certs, ["apps/api", "apps/good", "apps/web"]);
    assert_eq!(loaded.problems, vec![]);

    let missing = Fixture::new();
    std::fs::remove_dir_all(missing.path("manifests")).unwrap();
    assert!(matches!(
        missing.load(&HashMap::new()),
        Err(LoadError::Read { .. })
    ));
}

#[test]
fn hostile_invalid_issuer_document_leaves_its_certificates_waiting() {
    let fx = Fixture::new();
    fx.write(
        "manifests/issuers.yaml",
        &ISSUERS.replace("namespace: team-a", "namespace: team-a\n    nmespace: x"),
    );
    let loaded = fx.load(&HashMap::new()).unwrap();
    let issuers = fx.path("manifests/issuers.yaml").display().to_string();
    assert_eq!(
        manifest_problems(&loaded),
        [format!(
            "{issuers}: document 1 (Issuer apps/vault): spec.vault.nmespace: unknown field"
        )]
    );
    let ids: Vec<_> = loaded.issuers.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["ClusterIssuer/shared"]);
    // Its certificate is still there, waiting for it, and says why.
    assert_eq!(cert(&loaded, "apps/web").0.issuer, "Issuer/apps/vault");
    assert_eq!(
        loaded.problems,
        [LoadProblem {
            source: "Certificate apps/web".into(),
            message: format!(
                "spec.issuerRef: waiting for Issuer/apps/vault: its manifest is invalid ({issuers}: document 1)"
            ),
        }]
    );
}

#[test]
fn hostile_deep_and_oversized_files_are_left_out_before_parsing() {
    let fx = Fixture::new();
    fx.write(
        "manifests/deep.yaml",
        &format!("{}{}", "{a: ".repeat(100_000), "}".repeat(100_000)),
    );
    let big = std::fs::File::create(fx.path("manifests/big.yaml")).unwrap();
    big.set_len(spec::MAX_MANIFEST_BYTES as u64 + 1).unwrap();
    let loaded = fx.load(&HashMap::new()).unwrap();
    let mut faults: Vec<_> = loaded
        .manifest_problems
        .iter()
        .map(|p| (p.file.file_name().unwrap().to_owned(), p.fault.clone()))
        .collect();
    faults.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(
        matches!(&faults[..], [
            (big, ManifestFault::Limit(LimitError::TooLarge { max: spec::MAX_MANIFEST_BYTES, .. })),
            (deep, ManifestFault::Limit(LimitError::TooDeep { max: spec::MAX_DEPTH, line: 1 })),
        ] if big == "big.yaml" && deep == "deep.yaml"),
        "{faults:?}"
    );
    assert_eq!(loaded.certificates.len(), 2);
}

#[test]
fn hostile_directory_entries_are_reported_without_opening_them() {
    let fx = Fixture::new();
    let dir = fx.path("manifests");
    nix::unistd::mkfifo(
        &dir.join("fifo.yaml"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    std::fs::create_dir(dir.join("sub.yaml")).unwrap();
    std::os::unix::fs::symlink("nowhere.yaml", dir.join("gone.yml")).unwrap();
    // A ConfigMap mount: name.yaml -> ..data/name.yaml, ..data -> ..<timestamp>. Followed.
    let issuers = std::fs::read_to_string(dir.join("issuers.yaml")).unwrap();
    std::fs::remove_file(dir.join("issuers.yaml")).unwrap();
    std::fs::create_dir(dir.join("..2024_01_01")).unwrap();
    std::fs::write(dir.join("..2024_01_01/issuers.yaml"), issuers).unwrap();
    std::os::unix::fs::symlink("..2024_01_01", dir.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/issuers.yaml", dir.join("issuers.yaml")).unwrap();

    let loaded = fx.load(&HashMap::new()).unwrap();
    let problems = manifest_problems(&loaded);
    let at = |name: &str| dir.join(name).display().to_string();
    assert_eq!(
        problems,
        [
            format!("{}: is a FIFO, not a regular file; not opened", at("fifo.yaml")),
            format!("{}: dangling symlink to nowhere.yaml", at("gone.yml")),
            format!(
                "{}: is a directory (manifest directories are not read recursively)",
                at("sub.yaml")
            ),
        ]
    );
    assert_eq!(loaded.issuers.len(), 2, "the symlinked issuers are read");
    assert_eq!(loaded.certificates.len(), 2);
    // Opening a FIFO by name (a race with the type check) does not block either.
    assert!(matches!(
        read_manifest(&dir.join("fifo.yaml")),
        Err(ManifestFault::NotRegular("FIFO"))
    ));
}

#[test]
fn unresolvable_references_skip_the_issuer_with_a_problem() {
    let fx = Fixture::new();
    std::fs::remove_file(fx.path("secrets/cert-manager/bao-ca/ca.crt")).unwrap();
    fx.write(
        "manifests/more.yaml",
        "apiVersion: cert-manager.io/v1\nkind: Issuer\nmetadata: {name: k8s, namespace: apps}\n\
         spec: {vault: {server: https://v.example, path: pki/sign/x, \
         auth: {kubernetes: {role: r, serviceAccountRef: {name: sa}}}}}\n",
    );
    let loaded = fx.load(&HashMap::new()).unwrap();
    let ids: Vec<_> = loaded.issuers.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["Issuer/apps/vault"]);
    let problems: Vec<String> = loaded.problems.iter().map(ToString::to_string).collect();
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(
        problems[0].starts_with("ClusterIssuer/shared: spec.vault.caBundleSecretRef: cannot read "),
        "{problems:#?}"
    );
    assert!(problems[1].starts_with("Issuer/apps/k8s: spec.vault.auth.kubernetes.serviceAccountRef needs"));
    assert!(
        problems[2].starts_with(
            "Certificate apps/api: spec.issuerRef: waiting for ClusterIssuer/shared: it cannot be used: \
             spec.vault.caBundleSecretRef: cannot read "
        ),
        "{problems:#?}"
    );
    // The certificate is still handed to the engine, which reports it.
    assert_eq!(cert(&loaded, "apps/api").0.issuer, "ClusterIssuer/shared");

    // Without a secrets directory a reference with no explicit entry resolves to nothing.
    let text = "manifests: manifests\nstateDir: state\n";
    let config = Config::parse(&fx.path("certkeeper.yaml"), text).unwrap();
    let loaded = load(
        &config,
        &Metrics::default(),
        &HashMap::new(),
        &ManifestSecrets::default(),
    )
    .unwrap();
    assert!(loaded.issuers.is_empty());
    assert!(
        loaded.problems[0]
            .message
            .contains("Secret apps/vault-token key \"token\" resolves to nothing"),
        "{:?}",
        loaded.problems
    );
}

/// What cert-manager's webhook accepts and its controller fails later is valid here too, and
/// fails that object alone when it is built, saying why: an AppRole `secretRef` without `key`, a
/// `server` that is no http(s) URL, a PKCS#12 `passwordSecretRef` without `key`, a URI that
/// cannot be written as cert-manager writes it. The AppRole `path` defaults to `approle`.
#[test]
fn what_cert_manager_accepts_and_fails_later_fails_when_built() {
    let fx = Fixture::new();
    fx.write(
        "manifests/more.yaml",
        "apiVersion: cert-manager.io/v1\nkind: Issuer\nmetadata: {name: nokey, namespace: apps}\n\
         spec: {vault: {server: https://v.example, path: pki/sign/x, \
         auth: {appRole: {roleId: r, secretRef: {name: approle}}}}}\n\
         ---\napiVersion: cert-manager.io/v1\nkind: Issuer\nmetadata: {name: noscheme, namespace: apps}\n\
         spec: {vault: {server: 'v.example:8200', path: pki/sign/x, auth: {tokenSecretRef: {name: vault-token}}}}\n\
         ---\napiVersion: cert-manager.io/v1\nkind: Issuer\nmetadata: {name: nopath, namespace: apps}\n\
         spec: {vault: {server: https://v.example, path: pki/sign/x, \
         auth: {appRole: {roleId: r, secretRef: {name: approle, key: id}}}}}\n\
         ---\napiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {name: p12, namespace: apps}\n\
         spec: {secretName: p12-tls, commonName: p12, issuerRef: {name: vault}, \
         keystores: {pkcs12: {create: true, passwordSecretRef: {name: p12}}}}\n\
         ---\napiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {name: uri, namespace: apps}\n\
         spec: {secretName: uri-tls, uris: [foo.bar, 'spiffe://a b'], issuerRef: {name: vault}}\n",
    );
    std::fs::create_dir_all(fx.path("secrets/apps/approle")).unwrap();
    fx.write("secrets/apps/approle/id", "secret-id");
    let loaded = fx.load(&HashMap::new()).unwrap();
    assert!(
        loaded.manifest_problems.is_empty(),
        "{:?}",
        loaded.manifest_problems
    );
    let problems: Vec<String> = loaded.problems.iter().map(ToString::to_string).collect();
    let expect = [
        "Issuer/apps/nokey: spec.vault.auth.appRole.secretRef.key: not set, and this reference has no default key",
        "Issuer/apps/noscheme: spec.vault: ",
        "Certificate apps/p12: spec.keystores.pkcs12.passwordSecretRef.key: not set",
        "Certificate apps/uri: spec.uris[1]: invalid URI \"spiffe://a b\"",
    ];
    for prefix in expect {
        assert!(
            problems.iter().any(|p| p.starts_with(prefix)),
            "{prefix}: {problems:#?}"
        );
    }
    assert!(
        loaded.issuers.iter().any(|i| i.id == "Issuer/apps/nopath"),
        "{problems:#?}"
    );
}

/// certkeeper's own kinds in manifest files: a VaultIssuer (its Secrets in its namespace) and a
/// VaultClusterIssuer (its Secrets in the cluster resource namespace) are the same Vault issuers
/// as an Issuer and a ClusterIssuer with that `spec.vault`, and Certificates naming them (group
/// `certkeeper.io`) are issued by them, so manifests move between the runtimes and modes as they
/// are.
#[test]
fn vault_issuers_of_the_certkeeper_group_issue_the_certificates_that_name_them() {
    let fx = Fixture::new();
    fx.write(
        "manifests/issuers.yaml",
        "\
apiVersion: certkeeper.io/v1
kind: VaultIssuer
metadata: {name: vault, namespace: apps}
spec:
  server: https://vault.example.com:8200
  path: pki/sign/web
  auth:
    tokenSecretRef: {name: vault-token}
---
apiVersion: certkeeper.io/v1
kind: VaultClusterIssuer
metadata: {name: shared}
spec:
  server: https://bao.example.com
  path: pki_int/sign/internal
  caBundleSecretRef: {name: bao-ca}
  auth:
    appRole: {path: approle, roleId: role-123, secretRef: {name: bao-approle, key: secretId}}
",
    );
    fx.write(
        "manifests/certificates.yml",
        &CERTIFICATES
            .replace(
                "issuerRef: {name: vault}",
                "issuerRef: {name: vault, kind: VaultIssuer, group: certkeeper.io}",
            )
            .replace(
                "issuerRef: {name: shared, kind: ClusterIssuer}",
                "issuerRef: {name: shared, kind: VaultClusterIssuer, group: certkeeper.io}",
            ),
    );
    let loaded = fx.load(&HashMap::new()).unwrap();
    assert_eq!(loaded.problems, vec![]);
    assert!(loaded.external.is_empty(), "{:?}", loaded.external);
    let issuers = by_id(&loaded);
    let mut ids: Vec<_> = issuers.keys().cloned().collect();
    ids.sort();
    assert_eq!(ids, ["VaultClusterIssuer/shared", "VaultIssuer/apps/vault"]);
    match issuers["VaultClusterIssuer/shared"].client.auth() {
        AuthMethod::AppRole { secret_id, .. } => {
            let path = fx.path("secrets/cert-manager/bao-approle/secretId");
            assert_eq!(
                format!("{secret_id:?}"),
                format!("SecretSource(file {})", path.display())
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(cert(&loaded, "apps/web").0.issuer, "VaultIssuer/apps/vault");
    let (api, _) = cert(&loaded, "apps/api");
    assert_eq!(api.issuer, "VaultClusterIssuer/shared");
    assert_eq!(api.labels.issuer_kind, "VaultClusterIssuer");
}

/// Standalone reads the issuers' `certkeeper.io/vault-*` annotations as the controller does;
/// `issuers.vault.<issuer>` in the configuration replaces them. Addresses change the client,
/// not the fingerprint: no certificate is re-issued for them.
#[test]
fn vault_annotations_and_the_configuration_entry_that_replaces_them() {
    let fx = Fixture::new();
    let plain = by_id(&fx.load(&HashMap::new()).unwrap());
    let addresses =
        |rt: &IssuerRuntime| -> Vec<String> { rt.client.addresses().into_iter().map(|(a, _)| a).collect() };
    assert_eq!(
        addresses(&plain["Issuer/apps/vault"]),
        ["https://vault.example.com:8200"]
    );

    let annotated = ISSUERS.replace(
        "metadata: {name: vault, namespace: apps}",
        "metadata:\n  name: vault\n  namespace: apps\n  annotations:\n    certkeeper.io/vault-addresses: https://v0:8200,https://v1:8200\n    certkeeper.io/vault-auth-namespace: admin",
    );
    fx.write("manifests/issuers.yaml", &annotated);
    let loaded = fx.load(&plain).unwrap();
    assert_eq!(loaded.problems, vec![]);
    let issuers = by_id(&loaded);
    let vault = &issuers["Issuer/apps/vault"];
    assert_eq!(addresses(vault), ["https://v0:8200", "https://v1:8200"]);
    assert_eq!(vault.fingerprint, plain["Issuer/apps/vault"].fingerprint);
    assert_ne!(vault.settings, plain["Issuer/apps/vault"].settings);

    let config = Config::parse(
        &fx.path("certkeeper.yaml"),
        "manifests: manifests\nstateDir: state\nsecrets: {dir: secrets}\n\
         issuers: {vault: {apps/vault: {addresses: ['https://c:8200']}}}\n",
    )
    .unwrap();
    let loaded = load(&config, &Metrics::default(), &HashMap::new(), &fx.secrets).unwrap();
    assert_eq!(
        addresses(&by_id(&loaded)["Issuer/apps/vault"]),
        ["https://c:8200"]
    );

    fx.write(
        "manifests/issuers.yaml",
        &annotated.replace("https://v1:8200", "https://v1:8200/v1/sys/seal"),
    );
    let loaded = fx.load(&HashMap::new()).unwrap();
    assert!(!by_id(&loaded).contains_key("Issuer/apps/vault"));
    // The issuer, and its certificate waiting for it.
    assert_eq!(loaded.problems.len(), 2, "{:?}", loaded.problems);
    assert_eq!(loaded.problems[0].source, "Issuer/apps/vault");
    assert!(
        loaded.problems[1]
            .message
            .contains("waiting for Issuer/apps/vault")
    );
    assert!(
        loaded.problems[0]
            .message
            .starts_with("annotation certkeeper.io/vault-addresses: \"https://v1:8200/v1/sys/seal\""),
        "{}",
        loaded.problems[0].message
    );
}
