//! One Vault issuer: Secret references resolved, transport and auth configured, and the runtime
//! reused from the previous load when nothing it depends on changed.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use certkeeper_core::Secret;
use certkeeper_core::schedule::stable_hash;
use certkeeper_core::spec::{
    DEFAULT_CA_BUNDLE_KEY, DEFAULT_CLIENT_CERT_KEY, DEFAULT_CLIENT_CERTIFICATE_MOUNT_PATH,
    DEFAULT_CLIENT_KEY_KEY, DEFAULT_KUBERNETES_MOUNT_PATH, DEFAULT_TOKEN_KEY, SecretKeySelector,
    VaultAuthMethod, VaultIssuer,
};
use certkeeper_engine::gate::{GateConfig, IssuerGate};
use certkeeper_engine::metrics::Metrics;
use certkeeper_engine::{IssuerId, IssuerRuntime};
use certkeeper_vault::{AuthMethod, ClientIdentity, SecretSource, VaultClient, VaultConfig};

use crate::config::{Config, SecretLocation};

/// Resolves one issuer's Secret references and records what the fingerprint must cover.
struct Resolver<'a> {
    config: &'a Config,
    namespace: &'a str,
    /// Field -> where it resolved to, or the content read from there.
    inputs: BTreeMap<String, String>,
}

impl Resolver<'_> {
    fn locate(&self, field: &str, name: &str, key: &str) -> Result<SecretLocation, String> {
        self.config
            .secret_location(self.namespace, name, key)
            .ok_or_else(|| {
                format!(
                    "{field}: Secret {}/{name} key {key:?} resolves to nothing: set secrets.dir or add a \
                     secrets.refs entry to the configuration",
                    self.namespace
                )
            })
    }

    /// A source read by the client at each login; only its location is fingerprinted.
    fn source(&mut self, field: &str, name: &str, key: &str) -> Result<SecretSource, String> {
        let source = match self.locate(field, name, key)? {
            SecretLocation::File(path) => SecretSource::File(path),
            SecretLocation::Env(var) => SecretSource::Env(var),
        };
        self.inputs.insert(field.to_owned(), source.describe());
        Ok(source)
    }

    /// A value needed now (CA bundle, client certificate); its content is fingerprinted.
    fn read(&mut self, field: &str, name: &str, key: &str) -> Result<String, String> {
        let value = match self.locate(field, name, key)? {
            SecretLocation::File(path) => std::fs::read_to_string(&path)
                .map_err(|e| format!("{field}: cannot read {}: {e}", path.display()))?,
            SecretLocation::Env(var) => {
                std::env::var(&var).map_err(|_| format!("{field}: environment variable {var} is not set"))?
            }
        };
        if value.trim().is_empty() {
            return Err(format!(
                "{field}: Secret {}/{name} key {key:?} is empty",
                self.namespace
            ));
        }
        self.inputs.insert(field.to_owned(), value.clone());
        Ok(value)
    }

    fn read_selector(
        &mut self,
        field: &str,
        sel: &SecretKeySelector,
        default: &str,
    ) -> Result<String, String> {
        self.read(field, &sel.name, sel.key_or(default))
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

fn or_default(s: &str, default: &str) -> String {
    if s.is_empty() { default } else { s }.to_owned()
}

/// Builds (or reuses) the runtime of issuer `id`, whose Secrets live in `namespace`. The error is
/// a message for a [`super::LoadProblem`].
pub(super) fn build(
    config: &Config,
    metrics: &Metrics,
    previous: &HashMap<IssuerId, IssuerRuntime>,
    id: &str,
    namespace: &str,
    vault: &VaultIssuer,
) -> Result<IssuerRuntime, String> {
    let mut r = Resolver {
        config,
        namespace,
        inputs: BTreeMap::new(),
    };
    let mut cfg = VaultConfig::new(vault.server.clone());
    cfg.namespace = non_empty(&vault.namespace);
    cfg.server_name = non_empty(&vault.server_name);
    if let Some(pem) = vault.ca_bundle_pem() {
        cfg.ca_bundle_pem = Some(String::from_utf8_lossy(pem).into_owned());
    } else if let Some(sel) = &vault.ca_bundle_secret_ref {
        let pem = r.read_selector("spec.vault.caBundleSecretRef", sel, DEFAULT_CA_BUNDLE_KEY)?;
        cfg.ca_bundle_pem = Some(pem);
    }
    if let (Some(cert), Some(key)) = (&vault.client_cert_secret_ref, &vault.client_key_secret_ref) {
        let cert_pem = r.read_selector("spec.vault.clientCertSecretRef", cert, DEFAULT_CLIENT_CERT_KEY)?;
        let key_pem = r.read_selector("spec.vault.clientKeySecretRef", key, DEFAULT_CLIENT_KEY_KEY)?;
        cfg.client_identity = Some(ClientIdentity {
            cert_pem,
            key_pem: Secret::new(key_pem),
        });
    }
    let auth = auth_method(&mut r, vault)?;

    let limits = config.issuers;
    cfg.connect_timeout = limits.connect_timeout;
    cfg.request_timeout = limits.request_timeout;
    let fingerprint_input = serde_json::json!({ "spec": vault, "inputs": r.inputs });
    let fingerprint = stable_hash(fingerprint_input.to_string().as_bytes());
    // Limits are not in the fingerprint (changing them re-issues nothing), but a reload that
    // changes them rebuilds the client and gate.
    let settings = stable_hash(serde_json::json!(limits).to_string().as_bytes());
    if let Some(prev) = previous.get(id)
        && prev.fingerprint == fingerprint
        && prev.settings == settings
    {
        return Ok(prev.clone());
    }
    let client = VaultClient::with_observer(&cfg, auth, Some(metrics.vault_observer(id)))
        .map_err(|e| format!("spec.vault: {e}"))?;
    let gate = IssuerGate::new(
        id,
        &GateConfig {
            concurrency: limits.concurrency,
            rate_per_sec: limits.rate_per_second,
            burst: limits.burst,
            ..GateConfig::default()
        },
    );
    Ok(IssuerRuntime {
        id: id.to_owned(),
        client: Arc::new(client),
        gate,
        path: vault.path.clone(),
        fingerprint,
        settings,
    })
}

fn auth_method(r: &mut Resolver<'_>, vault: &VaultIssuer) -> Result<AuthMethod, String> {
    let method = vault
        .auth
        .method()
        .ok_or_else(|| "spec.vault.auth: no supported authentication method".to_owned())?;
    Ok(match method {
        VaultAuthMethod::Token(sel) => AuthMethod::Token {
            token: r.source(
                "spec.vault.auth.tokenSecretRef",
                &sel.name,
                sel.key_or(DEFAULT_TOKEN_KEY),
            )?,
        },
        VaultAuthMethod::AppRole(app_role) => AuthMethod::AppRole {
            mount: app_role.path.clone(),
            role_id: app_role.role_id.trim().to_owned(),
            secret_id: r.source(
                "spec.vault.auth.appRole.secretRef",
                &app_role.secret_ref.name,
                &app_role.secret_ref.key,
            )?,
        },
        VaultAuthMethod::Kubernetes(k) => {
            let Some(sel) = k.secret_ref.as_ref().filter(|s| !s.name.is_empty()) else {
                return Err(
                    "spec.vault.auth.kubernetes.serviceAccountRef needs the Kubernetes runtime; \
                            use secretRef standalone"
                        .to_owned(),
                );
            };
            AuthMethod::Kubernetes {
                mount: or_default(&k.mount_path, DEFAULT_KUBERNETES_MOUNT_PATH),
                role: k.role.clone(),
                jwt: r.source(
                    "spec.vault.auth.kubernetes.secretRef",
                    &sel.name,
                    sel.key_or(DEFAULT_TOKEN_KEY),
                )?,
            }
        }
        VaultAuthMethod::ClientCertificate(c) => {
            let identity = if c.secret_name.is_empty() {
                None
            } else {
                let field = "spec.vault.auth.clientCertificate.secretName";
                let cert_pem = r.read(
                    &format!("{field} {DEFAULT_CLIENT_CERT_KEY}"),
                    &c.secret_name,
                    DEFAULT_CLIENT_CERT_KEY,
                )?;
                let key_pem = r.read(
                    &format!("{field} {DEFAULT_CLIENT_KEY_KEY}"),
                    &c.secret_name,
                    DEFAULT_CLIENT_KEY_KEY,
                )?;
                Some(ClientIdentity {
                    cert_pem,
                    key_pem: Secret::new(key_pem),
                })
            };
            AuthMethod::Cert {
                mount: or_default(&c.mount_path, DEFAULT_CLIENT_CERTIFICATE_MOUNT_PATH),
                name: non_empty(&c.name),
                identity,
            }
        }
    })
}
