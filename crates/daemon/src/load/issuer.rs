//! One Vault issuer for the standalone runtime: its Secret references resolve to files or
//! environment variables (see [`crate::config`]); the runtime itself is built by the engine's
//! shared [`certkeeper_engine::build::build_issuer`].

use std::collections::HashMap;

use certkeeper_core::spec::VaultIssuer;
use certkeeper_engine::build::{SecretResolver, build_issuer};
use certkeeper_engine::metrics::Metrics;
use certkeeper_engine::{IssuerId, IssuerRuntime};
use certkeeper_vault::SecretSource;

use crate::config::{Config, SecretLocation};

/// Resolves one issuer's Secret references through the configuration.
struct Resolver<'a> {
    config: &'a Config,
    namespace: &'a str,
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
}

impl SecretResolver for Resolver<'_> {
    fn source(&mut self, field: &str, name: &str, key: &str) -> Result<SecretSource, String> {
        Ok(match self.locate(field, name, key)? {
            SecretLocation::File(path) => SecretSource::File(path),
            SecretLocation::Env(var) => SecretSource::Env(var),
        })
    }

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
        Ok(value)
    }

    fn service_account_token(
        &mut self,
        field: &str,
        _service_account: &str,
        _audiences: Vec<String>,
    ) -> Result<SecretSource, String> {
        Err(format!(
            "{field} needs the Kubernetes runtime; use secretRef standalone"
        ))
    }
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
    let mut resolver = Resolver { config, namespace };
    build_issuer(&mut resolver, id, vault, &config.issuers, metrics, previous)
}
