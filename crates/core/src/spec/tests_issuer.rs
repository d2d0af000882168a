//! Issuer and ClusterIssuer tests, using the Vault examples from cert-manager's documentation
//! (docs/configuration/vault.md) with the placeholders filled in.

use super::*;
use crate::FailureClass;

/// A base64 `caBundle` holding a real (freshly generated) CA certificate.
fn ca_bundle() -> String {
    let ca = rcgen::generate_simple_self_signed(vec!["vault.local".to_owned()]).unwrap();
    syntax::encode_base64(ca.cert.pem().as_bytes())
}

fn one(yaml: &str) -> Resource {
    let mut resources = parse_documents("issuer.yaml", yaml).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resources.len(), 1);
    resources.remove(0)
}

fn issuer(yaml: &str) -> Issuer {
    match one(yaml) {
        Resource::Issuer(issuer) => *issuer,
        other => panic!("not an Issuer: {other:?}"),
    }
}

/// The error messages for a file, without the `issuer.yaml: document 1 (Issuer ns/name): `
/// prefix (tested separately in `tests_documents`).
fn errors(yaml: &str) -> Vec<String> {
    let errors = parse_documents("issuer.yaml", yaml).expect_err("should be rejected");
    errors.iter().map(|e| e.error.to_string()).collect()
}

fn vault_issuer(vault: &str) -> String {
    let indented: String = vault.lines().map(|l| format!("    {l}\n")).collect();
    format!(
        "apiVersion: cert-manager.io/v1\nkind: Issuer\nmetadata:\n  name: vault-issuer\n  namespace: sandbox\nspec:\n  vault:\n{indented}"
    )
}

#[test]
fn token_auth_issuer_from_the_docs() {
    let yaml = format!(
        "apiVersion: cert-manager.io/v1
kind: Issuer
metadata:
  name: vault-issuer
  namespace: sandbox
spec:
  vault:
    path: pki_int/sign/example-dot-com
    server: https://vault.local
    caBundle: {}
    auth:
      tokenSecretRef:
          name: cert-manager-vault-token
          key: token
",
        ca_bundle()
    );
    let issuer = issuer(&yaml);
    assert_eq!(
        issuer.key(),
        IssuerKey {
            kind: IssuerKind::Issuer,
            namespace: Some("sandbox".into()),
            name: "vault-issuer".into()
        }
    );
    let vault = issuer.spec.vault().unwrap();
    assert_eq!(vault.sign_path(), "/v1/pki_int/sign/example-dot-com");
    assert!(
        vault
            .ca_bundle_pem()
            .unwrap()
            .starts_with(b"-----BEGIN CERTIFICATE-----")
    );
    let Some(VaultAuthMethod::Token(token)) = vault.auth.method() else {
        panic!("token auth")
    };
    assert_eq!(
        (token.name.as_str(), token.key_or(DEFAULT_TOKEN_KEY)),
        ("cert-manager-vault-token", "token")
    );
}

#[test]
fn approle_issuer_from_the_docs() {
    let issuer = issuer(&vault_issuer(
        "path: pki_int/sign/example-dot-com
server: https://vault.local
auth:
  appRole:
    path: approle
    roleId: \"291b9d21-8ff5-4f3e-9d1c-1c2b3e4f5a6b\"
    secretRef:
      name: cert-manager-vault-approle
      key: secretId",
    ));
    let vault = issuer.spec.vault().unwrap();
    let Some(VaultAuthMethod::AppRole(app_role)) = vault.auth.method() else {
        panic!("approle")
    };
    assert_eq!(app_role.login_path(), "/v1/auth/approle/login");
    assert_eq!(app_role.secret_ref.key, "secretId");
    assert!(vault.ca_bundle_pem().is_none());
}

#[test]
fn kubernetes_service_account_issuer_from_the_docs() {
    let issuer = issuer(&vault_issuer(
        "path: pki_int/sign/example-dot-com
server: https://vault.local
auth:
  kubernetes:
    role: my-app-1
    mountPath: /v1/auth/kubernetes
    serviceAccountRef:
      name: vault-issuer",
    ));
    let vault = issuer.spec.vault().unwrap();
    let Some(VaultAuthMethod::Kubernetes(kubernetes)) = vault.auth.method() else {
        panic!("kubernetes")
    };
    assert_eq!(kubernetes.login_path(), "/v1/auth/kubernetes/login");
    assert_eq!(
        kubernetes.token_audiences(&issuer.key(), &vault.server),
        ["vault://sandbox/vault-issuer", "https://vault.local"]
    );
}

#[test]
fn kubernetes_secret_and_mtls_issuers_from_the_docs() {
    let issuer = issuer(&vault_issuer(
        "path: pki_int/sign/application-1
server: https://vault.vault:8200
caBundleSecretRef:
  key: server_ca.crt
  name: vault-client-tls
clientCertSecretRef:
  name: vault-client-tls
  key: client.crt
clientKeySecretRef:
  name: vault-client-tls
  key: client.key
auth:
  kubernetes:
    role: my-app-1
    secretRef:
      name: vault-issuer-token
      key: token",
    ));
    let vault = issuer.spec.vault().unwrap();
    let Some(VaultAuthMethod::Kubernetes(kubernetes)) = vault.auth.method() else {
        panic!("kubernetes")
    };
    // mountPath left out: cert-manager's default, which includes /v1.
    assert_eq!(kubernetes.login_path(), "/v1/auth/kubernetes/login");
    assert_eq!(
        vault
            .ca_bundle_secret_ref
            .as_ref()
            .unwrap()
            .key_or(DEFAULT_CA_BUNDLE_KEY),
        "server_ca.crt"
    );
    assert_eq!(
        vault
            .client_key_secret_ref
            .as_ref()
            .unwrap()
            .key_or(DEFAULT_CLIENT_KEY_KEY),
        "client.key"
    );
}

#[test]
fn cluster_issuer_has_no_namespace() {
    let resource = one("apiVersion: cert-manager.io/v1
kind: ClusterIssuer
metadata:
  name: vault
  namespace: ignored-for-cluster-scope
spec:
  vault:
    server: https://openbao.internal:8200
    path: pki/sign/web
    namespace: team-a
    auth:
      clientCertificate:
        secretName: vault-client
");
    let Resource::ClusterIssuer(issuer) = resource else {
        panic!("ClusterIssuer")
    };
    assert_eq!(
        issuer.key(),
        IssuerKey {
            kind: IssuerKind::ClusterIssuer,
            namespace: None,
            name: "vault".into()
        }
    );
    let vault = issuer.spec.vault().unwrap();
    assert_eq!(vault.namespace, "team-a");
    let Some(VaultAuthMethod::ClientCertificate(cert)) = vault.auth.method() else {
        panic!("cert auth")
    };
    assert_eq!(cert.login_path(), "/v1/auth/cert/login");
}

#[test]
fn several_auth_methods_use_cert_managers_precedence() {
    let issuer = issuer(&vault_issuer(
        "path: pki/sign/web
server: https://vault.local
auth:
  kubernetes: {role: web, serviceAccountRef: {name: web}}
  appRole: {path: approle, roleId: abc, secretRef: {name: s, key: k}}",
    ));
    assert!(matches!(
        issuer.spec.vault().unwrap().auth.method(),
        Some(VaultAuthMethod::AppRole(_))
    ));
}

#[test]
fn empty_vault_block_names_every_missing_field() {
    assert_eq!(
        errors(&vault_issuer("{}")),
        [
            "spec.vault.server: required",
            "spec.vault.path: required",
            "spec.vault.auth: required: set one of tokenSecretRef, appRole, clientCertificate, kubernetes, aws",
        ]
    );
}

#[test]
fn ca_bundle_rules() {
    let base = "server: https://vault.local\npath: pki/sign/web\nauth: {tokenSecretRef: {name: t}}\n";
    assert_eq!(
        errors(&vault_issuer(&format!("{base}caBundle: not-base64!"))),
        ["spec.vault.caBundle: invalid base64: length is not a multiple of 4 (missing padding?)"]
    );
    let not_pem = syntax::encode_base64(b"just some text");
    assert_eq!(
        errors(&vault_issuer(&format!("{base}caBundle: {not_pem}"))),
        ["spec.vault.caBundle: contains no valid PEM certificate"]
    );
    let both = format!("{base}caBundle: {}\ncaBundleSecretRef: {{name: ca}}", ca_bundle());
    assert_eq!(
        errors(&vault_issuer(&both)),
        ["spec.vault.caBundle: cannot be set together with caBundleSecretRef"]
    );
}

#[test]
fn server_path_and_client_certificate_rules() {
    let yaml = vault_issuer(
        "server: vault.local:8200
path: pki/../sys/sign/web
clientCertSecretRef: {name: client}
auth: {tokenSecretRef: {name: t}}",
    );
    assert_eq!(
        errors(&yaml),
        [
            "spec.vault.path: must not contain '..' path segments",
            "spec.vault.clientKeySecretRef: required when clientCertSecretRef is set",
        ]
    );
}

#[test]
fn an_issue_endpoint_is_refused_with_the_reason() {
    for refused in [
        "pki_int/issue/example",
        "/pki_int/issue/example",
        "pki/issue/web/",
        "teams/a/pki/issue/web",
        "pki/issuer/default/issue/web",
    ] {
        let yaml = vault_issuer(&format!(
            "server: https://vault.local\npath: {refused}\nauth: {{tokenSecretRef: {{name: t}}}}"
        ));
        let errors = errors(&yaml);
        assert_eq!(errors.len(), 1, "{refused}: {errors:?}");
        let message = &errors[0];
        assert!(
            message.starts_with(&format!("spec.vault.path: {refused:?} is a PKI issue endpoint")),
            "{message}"
        );
        for why in [
            "Vault generates the private key",
            "stores every request",
            "sign/<role>",
        ] {
            assert!(message.contains(why), "{message}");
        }
    }
    // sign/ and sign-verbatim/, and a mount or role that is merely named "issue", are signing.
    for signing in [
        "pki_int/sign/example",
        "pki/sign-verbatim/web",
        "issue/sign/web",
        "pki/sign/issue",
        "pki/issuer/default/sign/web",
    ] {
        let yaml = vault_issuer(&format!(
            "server: https://vault.local\npath: {signing}\nauth: {{tokenSecretRef: {{name: t}}}}"
        ));
        let issuer = issuer(&yaml);
        assert_eq!(issuer.spec.vault().unwrap().path, signing);
    }
}

#[test]
fn auth_method_fields_are_required() {
    let yaml = vault_issuer(
        "server: https://vault.local
path: pki/sign/web
auth:
  tokenSecretRef: {key: token}
  appRole: {path: '', roleId: '', secretRef: {name: approle}}
  kubernetes: {mountPath: /v1/auth/../x}",
    );
    assert_eq!(
        errors(&yaml),
        [
            "spec.vault.auth.tokenSecretRef.name: required",
            "spec.vault.auth.appRole.roleId: required",
            "spec.vault.auth.kubernetes.role: required",
            "spec.vault.auth.kubernetes.mountPath: must not contain '..' path segments",
            "spec.vault.auth.kubernetes: required: set one of secretRef, serviceAccountRef",
        ]
    );
    let both = vault_issuer(
        "server: https://vault.local
path: pki/sign/web
auth:
  kubernetes: {role: r, secretRef: {name: s}, serviceAccountRef: {name: ''}}",
    );
    assert_eq!(
        errors(&both),
        [
            "spec.vault.auth.kubernetes.serviceAccountRef.name: required",
            "spec.vault.auth.kubernetes: set only one of secretRef, serviceAccountRef",
        ]
    );
}

#[test]
fn other_issuer_types_are_recognised_but_unsupported() {
    let acme = "apiVersion: cert-manager.io/v1
kind: ClusterIssuer
metadata: {name: letsencrypt}
spec:
  acme:
    server: https://acme-v02.api.letsencrypt.org/directory
    privateKeySecretRef: {name: letsencrypt}
";
    assert_eq!(
        errors(acme),
        ["spec.acme: unsupported issuer type acme: certkeeper serves Vault (and OpenBao) issuers only"]
    );
    let none = "apiVersion: cert-manager.io/v1\nkind: Issuer\nmetadata: {name: x}\nspec: {}\n";
    assert_eq!(
        errors(none),
        ["spec: required: set one of acme, ca, selfSigned, vault, venafi"]
    );
    let two = vault_issuer("server: https://v\npath: p\nauth: {tokenSecretRef: {name: t}}")
        .replace("spec:\n", "spec:\n  selfSigned: {}\n");
    assert_eq!(
        errors(&two),
        [
            "spec: set only one of acme, ca, selfSigned, vault, venafi",
            "spec.selfSigned: unsupported issuer type selfSigned: certkeeper serves Vault (and OpenBao) issuers only",
        ]
    );
}

/// cert-manager's validation of `auth.aws` (`ValidateVaultIssuerAuth`): role required, no `..`
/// in mountPath, serviceAccountRef needs a name and iamRoleArn; nothing else is required.
#[test]
fn aws_auth_is_validated_as_cert_manager_does() {
    let ok = issuer(&vault_issuer(
        "server: https://v\npath: p\nauth: {aws: {role: r}}",
    ));
    let vault = ok.spec.vault.as_ref().unwrap();
    let Some(VaultAuthMethod::Aws(aws)) = vault.auth.method() else {
        panic!("aws expected");
    };
    assert_eq!(aws.login_path(), "/v1/auth/aws/login");
    assert!(aws.uses_ambient_credentials());

    let irsa = issuer(&vault_issuer(
        "server: https://v\npath: p\nauth:\n  aws:\n    role: r\n    region: eu-west-1\n    mountPath: /v1/auth/aws-eu\n    \
         iamRoleArn: arn:aws:iam::123456789012:role/certkeeper\n    vaultHeaderValue: vault.example.com\n    \
         serviceAccountRef: {name: vault-issuer, audiences: [extra]}",
    ));
    let aws = irsa.spec.vault.as_ref().unwrap().auth.aws.as_ref().unwrap();
    assert_eq!(aws.login_path(), "/v1/auth/aws-eu/login");
    assert_eq!(aws.token_audiences(), ["sts.amazonaws.com", "extra"]);
    assert_eq!(aws.vault_header_value, "vault.example.com");

    assert_eq!(
        errors(&vault_issuer(
            "server: https://v\npath: p\nauth: {aws: {mountPath: /v1/auth/../x}}"
        )),
        [
            "spec.vault.auth.aws.role: required",
            "spec.vault.auth.aws.mountPath: must not contain '..' path segments"
        ]
    );
    assert_eq!(
        errors(&vault_issuer(
            "server: https://v\npath: p\nauth: {aws: {role: r, serviceAccountRef: {name: ''}}}"
        )),
        [
            "spec.vault.auth.aws.serviceAccountRef.name: required",
            "spec.vault.auth.aws.iamRoleArn: required when serviceAccountRef is set"
        ]
    );
    assert_eq!(
        errors(&vault_issuer(
            "server: https://v\npath: p\nauth: {aws: {role: r, roleArn: x}}"
        )),
        ["spec.vault.auth.aws.roleArn: unknown field"]
    );
}

/// cert-manager's region choice: ambient credentials prefer the environment's region, IRSA the
/// Issuer's; us-east-1 when neither says.
#[test]
fn aws_region_follows_cert_manager() {
    let ambient = VaultAwsAuth {
        role: "r".into(),
        region: "eu-west-1".into(),
        ..VaultAwsAuth::default()
    };
    assert_eq!(ambient.region(Some("us-west-2")), "us-west-2");
    assert_eq!(ambient.region(None), "eu-west-1");
    let irsa = VaultAwsAuth {
        service_account_ref: Some(ServiceAccountRef {
            name: "sa".into(),
            audiences: vec![],
        }),
        ..ambient.clone()
    };
    assert_eq!(irsa.region(Some("us-west-2")), "eu-west-1");
    let bare = VaultAwsAuth::default();
    assert_eq!(bare.region(None), "us-east-1");
    assert_eq!(bare.region(Some("")), "us-east-1");
    assert_eq!(bare.region(Some("ap-south-1")), "ap-south-1");
}

#[test]
fn unknown_fields_are_reported_with_the_other_errors() {
    let yaml = vault_issuer(
        "sever: https://vault.local\npath: pki/sign/web\nauth: {tokenSecretRef: {name: t, keys: token}}",
    );
    assert_eq!(
        errors(&yaml),
        [
            "spec.vault.sever: unknown field",
            "spec.vault.auth.tokenSecretRef.keys: unknown field",
            "spec.vault.server: required"
        ]
    );
}

#[test]
fn errors_are_invalid_class() {
    let errors = parse_documents("issuer.yaml", &vault_issuer("{}")).unwrap_err();
    assert_eq!(errors.class(), FailureClass::Invalid);
    assert!(errors.iter().all(|e| e.class() == FailureClass::Invalid));
}

#[test]
fn issuer_spec_round_trips_through_serde() {
    let issuer = issuer(&vault_issuer(&format!(
        "server: https://vault.local\npath: pki/sign/web\ncaBundle: {}\nauth: {{kubernetes: {{role: r, serviceAccountRef: {{name: sa, audiences: [extra]}}}}}}",
        ca_bundle()
    )));
    let yaml = serde_yaml_ng::to_string(&issuer.spec).unwrap();
    assert!(
        yaml.contains("serviceAccountRef:") && yaml.contains("caBundle:"),
        "{yaml}"
    );
    let back: IssuerSpec = serde_yaml_ng::from_str(&yaml).unwrap();
    assert_eq!(back, issuer.spec);
}

/// Hostile references: each string below would leave the Issuer's namespace (a path in the
/// controller's API requests) or its Secret directory (a file path standalone). Each is refused
/// by validation with the field named, as the API server would refuse such a name or key.
#[test]
fn hostile_secret_references_are_refused_at_validation() {
    let cases: &[(&str, &str)] = &[
        (
            "auth: {tokenSecretRef: {name: ../../kube-system/secrets/victim}}",
            "spec.vault.auth.tokenSecretRef.name: invalid name",
        ),
        (
            "auth: {tokenSecretRef: {name: vault-token, key: /etc/shadow}}",
            "spec.vault.auth.tokenSecretRef.key: invalid Secret key",
        ),
        (
            "auth: {tokenSecretRef: {name: vault-token, key: ..data}}",
            "spec.vault.auth.tokenSecretRef.key: invalid Secret key",
        ),
        (
            "auth: {appRole: {path: approle, roleId: r, secretRef: {name: a/b, key: id}}}",
            "spec.vault.auth.appRole.secretRef.name: invalid name",
        ),
        (
            "auth: {appRole: {path: approle, roleId: r, secretRef: {name: ok, key: ../id}}}",
            "spec.vault.auth.appRole.secretRef.key: invalid Secret key",
        ),
        (
            "auth: {kubernetes: {role: r, serviceAccountRef: {name: ../../kube-system/serviceaccounts/admin}}}",
            "spec.vault.auth.kubernetes.serviceAccountRef.name: invalid name",
        ),
        (
            "auth: {kubernetes: {role: r, secretRef: {name: Upper}}}",
            "spec.vault.auth.kubernetes.secretRef.name: invalid name",
        ),
        (
            "auth: {clientCertificate: {secretName: x/../y}}",
            "spec.vault.auth.clientCertificate.secretName: invalid name",
        ),
        (
            "caBundleSecretRef: {name: ca, key: 'a b'}\nauth: {tokenSecretRef: {name: t}}",
            "spec.vault.caBundleSecretRef.key: invalid Secret key",
        ),
        (
            "clientCertSecretRef: {name: ../c}\nclientKeySecretRef: {name: k}\nauth: {tokenSecretRef: {name: t}}",
            "spec.vault.clientCertSecretRef.name: invalid name",
        ),
    ];
    for (vault, expected) in cases {
        let yaml = vault_issuer(&format!("server: https://vault.local\npath: pki/sign/r\n{vault}"));
        let errors = errors(&yaml);
        assert!(
            errors.iter().any(|e| e.starts_with(expected)),
            "{vault}: expected {expected:?}, got {errors:?}"
        );
    }
}

/// Paths that would change the host a request goes to, or escape the path: refused, not encoded.
#[test]
fn hostile_vault_paths_are_refused_at_validation() {
    for (field, value) in [
        ("path", "https://evil.example/v1/x"),
        ("path", "//evil.example/x"),
        ("path", "pki/sign/r?x=1"),
        ("path", "pki/sign/r#x"),
        ("path", "pki/%2e%2e/sys"),
        ("path", "pki\\sign"),
        ("path", "pki/sign/r x"),
    ] {
        let yaml = vault_issuer(&format!(
            "server: https://vault.local\n{field}: {value:?}\nauth: {{tokenSecretRef: {{name: t}}}}"
        ));
        let errors = errors(&yaml);
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("spec.vault.path: invalid Vault path")),
            "{value}: {errors:?}"
        );
    }
    for auth in [
        "{appRole: {path: 'https://evil/x', roleId: r, secretRef: {name: s, key: k}}}",
        "{kubernetes: {role: r, mountPath: '//evil/v1/auth/k8s', secretRef: {name: s}}}",
        "{clientCertificate: {mountPath: 'http://evil:80/v1/auth/cert'}}",
    ] {
        let yaml = vault_issuer(&format!(
            "server: https://vault.local\npath: pki/sign/r\nauth: {auth}"
        ));
        let errors = errors(&yaml);
        assert!(
            errors.iter().any(|e| e.contains("invalid Vault path")),
            "{auth}: {errors:?}"
        );
    }
}

/// An audience the Kubernetes API accepts would let whoever runs `server` use the token against
/// the cluster.
#[test]
fn hostile_kubernetes_api_audiences_are_refused() {
    for audience in [
        "https://kubernetes.default.svc",
        "https://kubernetes.default.svc.cluster.local",
        "kubernetes.default.svc",
        "HTTPS://Kubernetes.Default.Svc:443/",
        "k3s",
    ] {
        let yaml = vault_issuer(&format!(
            "server: https://vault.local\npath: pki/sign/r\nauth: {{kubernetes: {{role: r, serviceAccountRef: {{name: sa, audiences: [vault, {audience:?}]}}}}}}"
        ));
        let errors = errors(&yaml);
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("spec.vault.auth.kubernetes.serviceAccountRef.audiences[1]: audience")),
            "{audience}: {errors:?}"
        );
    }
}

/// What real manifests use stays valid: dotted names, keys with dots and underscores, issuer
/// paths, mount paths with /v1.
#[test]
fn ordinary_references_and_paths_stay_valid() {
    let yaml = vault_issuer(
        "server: https://vault.local
path: pki_int/issuer/default/sign/example-dot-com
caBundleSecretRef: {name: vault.ca-bundle, key: ca_bundle.pem}
auth:
  kubernetes:
    role: my-app-1
    mountPath: /v1/auth/kubernetes-cluster.a
    serviceAccountRef: {name: vault-issuer, audiences: [vault://vault, 'https://vault.local:8200']}",
    );
    issuer(&yaml);
}

/// cert-manager's webhook accepts an AppRole without `path` (its client logs in at `approle`)
/// and without `secretRef.key` (its client then fails the login), and any non-empty `server`.
#[test]
fn app_role_defaults_and_server_as_cert_manager_accepts_them() {
    let issuer = issuer(&vault_issuer(
        "server: vault.local:8200
path: pki/sign/web
auth: {appRole: {roleId: r, secretRef: {name: approle}}}",
    ));
    let vault = issuer.spec.vault().unwrap();
    let Some(VaultAuthMethod::AppRole(app_role)) = vault.auth.method() else {
        panic!("approle")
    };
    assert_eq!(app_role.mount(), DEFAULT_APPROLE_PATH);
    assert_eq!(app_role.login_path(), "/v1/auth/approle/login");
    assert_eq!(app_role.secret_ref.explicit_key(), None);
}
