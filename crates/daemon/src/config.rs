//! The standalone configuration file: where manifests are, where state lives, where the
//! HTTP endpoints listen, how Secret references resolve to files or environment variables, and
//! per-certificate output settings that cert-manager's schema has no room for.
//!
//! ```yaml
//! manifests: ./manifests            # a file, or a directory of *.yaml / *.yml files
//! stateDir: ./state                 # holds state.redb
//! listen: 127.0.0.1:9402            # /metrics, /healthz, /readyz, /api/v1/status
//! log: { format: text, level: info }
//! secrets:
//!   dir: ./secrets                  # Secret <ns>/<name>, key <k>  ->  <dir>/<ns>/<name>/<k>
//!   refs:                           # exceptions, by "<namespace>/<name>" and key
//!     - { secret: default/vault-approle, key: secretId, env: VAULT_SECRET_ID }
//!     - { secret: default/vault-token, key: token, file: /run/secrets/vault-token }
//! outputs:
//!   dir: ./certs/{namespace}/{secretName}   # default for every certificate
//!   keyMode: "0600"
//!   certMode: "0644"
//!   certificates:
//!     default/web:
//!       dir: /etc/nginx/tls
//!       user: 33                    # numeric uid / gid
//!       group: 33
//!       hooks:                      # in order, after every write; a failure is class apply
//!         - { command: [systemctl, reload, nginx], timeout: 30s }
//!       verify:                     # after the hooks: these must serve the leaf written
//!         - { address: "127.0.0.1:443", serverName: web.example.com, timeout: 10s }
//! issuers:                          # gate limits and Vault timeouts for every issuer
//!   concurrency: 8                  # requests in flight per issuer
//!   ratePerSecond: 100              # token bucket; halved while Vault answers 429
//!   burst: 50
//!   connectTimeout: 5s
//!   requestTimeout: 30s             # a Vault that accepts and never answers
//!   vault:                          # per issuer, what spec.vault has no room for (replaces
//!                                   # the issuer's certkeeper.io/vault-* annotations)
//!     default/vault:                # "<namespace>/<name>" (an Issuer), or "Issuer/<ns>/<name>",
//!                                   # "ClusterIssuer/<name>", "VaultIssuer/<ns>/<name>", ...
//!       addresses:                  # the nodes of one Vault, chosen by health (else spec.vault.server)
//!         - https://vault-0.example.com:8200
//!         - https://vault-1.example.com:8200
//!         - https://vault-2.example.com:8200
//!       authNamespace: admin        # namespace of the login (spec.vault.namespace: of the PKI mount)
//! issuanceBudget: 6/1h              # re-issues per certificate the schedule did not plan
//!                                   # (Secret gone, spec changed) before they wait; or off
//! ```
//!
//! Relative paths are relative to the configuration file's directory.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use certkeeper_core::spec::{DurationError, IssuerKind, format_go_duration, parse_go_duration};
use certkeeper_engine::IssuerId;
use certkeeper_engine::budget::IssuanceBudget;
use certkeeper_vault::aws::AwsEnvironment;

use crate::verify::{AddressError, DEFAULT_VERIFY_TIMEOUT, VerifyTarget};
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {field}: {message}")]
    Invalid {
        path: PathBuf,
        field: String,
        message: String,
    },
    #[error("{path}: {field}: {source}")]
    Address {
        path: PathBuf,
        field: String,
        source: AddressError,
    },
    #[error("{path}: {field}: {source}")]
    Duration {
        path: PathBuf,
        field: String,
        source: ConfigDurationError,
    },
}

/// Why a duration in the configuration (a hook or Vault timeout) was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigDurationError {
    #[error(transparent)]
    Syntax(#[from] DurationError),
    #[error("{0:?} must be more than 0")]
    Zero(String),
    #[error("{value:?} is too large: at most {}", format_go_duration(*.max))]
    TooLarge { value: String, max: Duration },
}

/// The longest timeout the configuration accepts. A timeout of more than a day is a typo, and the
/// bound keeps every deadline computed from it (now + timeout) far from overflow.
pub const MAX_CONFIG_DURATION: Duration = Duration::from_secs(24 * 3600);

/// The largest `issuers.concurrency` (tokio's semaphore refuses more than `usize::MAX >> 3`
/// permits; no Vault wants more than this in flight from one client).
pub const MAX_CONCURRENCY: usize = 10_000;
/// The bounds of `issuers.ratePerSecond`. Below the minimum the wait for one token
/// (1 / rate seconds) leaves what a `Duration` can hold.
pub const RATE_BOUNDS: (f64, f64) = (0.001, 1_000_000.0);

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawConfig {
    manifests: PathBuf,
    state_dir: PathBuf,
    #[serde(default)]
    listen: Option<String>,
    #[serde(default)]
    log: LogConfig,
    #[serde(default)]
    secrets: RawSecrets,
    #[serde(default)]
    outputs: RawOutputs,
    #[serde(default)]
    issuers: RawIssuerLimits,
    /// `COUNT/WINDOW` or `off` ([`IssuanceBudget::parse`]).
    issuance_budget: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LogConfig {
    #[serde(default)]
    pub format: LogFormat,
    #[serde(default = "default_level")]
    pub level: String,
}

fn default_level() -> String {
    "info".into()
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawSecrets {
    dir: Option<PathBuf>,
    #[serde(default)]
    refs: Vec<RawSecretRef>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawSecretRef {
    secret: String,
    key: String,
    file: Option<PathBuf>,
    env: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawOutputs {
    dir: Option<String>,
    key_mode: Option<String>,
    cert_mode: Option<String>,
    #[serde(default)]
    certificates: BTreeMap<String, RawCertOutput>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawCertOutput {
    dir: Option<String>,
    key_mode: Option<String>,
    cert_mode: Option<String>,
    user: Option<u32>,
    group: Option<u32>,
    #[serde(default)]
    hooks: Vec<RawHook>,
    #[serde(default)]
    verify: Vec<RawVerify>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawVerify {
    address: String,
    server_name: Option<String>,
    timeout: Option<String>,
}

/// The longest `verify[].timeout`: the check holds the certificate's apply (and its retry) for
/// that long when the server keeps presenting another certificate.
pub const MAX_VERIFY_TIMEOUT: Duration = Duration::from_secs(300);

/// The most `verify` entries of one certificate.
pub const MAX_VERIFY_TARGETS: usize = 16;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawHook {
    command: Vec<String>,
    timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawIssuerLimits {
    #[serde(default = "default_concurrency")]
    concurrency: usize,
    #[serde(default = "default_rate")]
    rate_per_second: f64,
    #[serde(default = "default_burst")]
    burst: u32,
    connect_timeout: Option<String>,
    request_timeout: Option<String>,
    #[serde(default)]
    vault: BTreeMap<String, RawIssuerVault>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawIssuerVault {
    addresses: Option<Vec<String>>,
    auth_namespace: Option<String>,
}

impl Default for RawIssuerLimits {
    fn default() -> Self {
        let d = IssuerLimits::default();
        RawIssuerLimits {
            concurrency: d.concurrency,
            rate_per_second: d.rate_per_second,
            burst: d.burst,
            connect_timeout: None,
            request_timeout: None,
            vault: BTreeMap::new(),
        }
    }
}

pub use certkeeper_engine::build::{IssuerLimits, VaultExtras};

fn default_concurrency() -> usize {
    IssuerLimits::default().concurrency
}
fn default_rate() -> f64 {
    IssuerLimits::default().rate_per_second
}
fn default_burst() -> u32 {
    IssuerLimits::default().burst
}

/// Where one Secret key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretLocation {
    File(PathBuf),
    Env(String),
}

/// A command run after a certificate's files changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    pub command: Vec<String>,
    pub timeout: Duration,
}

/// Output settings of one certificate, defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertOutput {
    pub dir: PathBuf,
    pub key_mode: u32,
    pub cert_mode: u32,
    pub user: Option<u32>,
    pub group: Option<u32>,
    pub hooks: Vec<Hook>,
    /// Addresses that must serve the certificate written, checked after the hooks.
    pub verify: Vec<VerifyTarget>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub manifests: PathBuf,
    pub state_dir: PathBuf,
    pub listen: Option<SocketAddr>,
    pub log: LogConfig,
    pub secrets_dir: Option<PathBuf>,
    secret_refs: BTreeMap<(String, String), SecretLocation>,
    output_dir_template: String,
    key_mode: u32,
    cert_mode: u32,
    cert_outputs: BTreeMap<String, CertOutput>,
    pub issuers: IssuerLimits,
    /// Re-issues of one certificate the schedule did not plan, per window
    /// (`issuanceBudget`, default 6/1h; `None`: `off`).
    pub issuance_budget: Option<IssuanceBudget>,
    /// `issuers.vault`, by issuer id (`Issuer/<namespace>/<name>`, ...).
    issuer_extras: BTreeMap<String, VaultExtras>,
    /// The AWS settings of the daemon's environment (`auth.aws`: its credentials, region and
    /// `AWS_ENDPOINT_URL_STS`), read when the configuration loads, as the AWS SDKs read them.
    pub aws: AwsEnvironment,
}

const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(30);

impl Config {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let raw: RawConfig = serde_yaml_ng::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let abs = |p: &Path| {
            if p.is_absolute() {
                p.to_owned()
            } else {
                base.join(p)
            }
        };
        let invalid = |field: &str, message: String| ConfigError::Invalid {
            path: path.to_owned(),
            field: field.to_owned(),
            message,
        };

        let listen = match raw.listen.as_deref() {
            None | Some("") => None,
            Some(l) => Some(
                l.parse::<SocketAddr>()
                    .map_err(|e| invalid("listen", format!("{l:?} is not host:port ({e})")))?,
            ),
        };
        let mut secret_refs = BTreeMap::new();
        for (i, r) in raw.secrets.refs.iter().enumerate() {
            let field = format!("secrets.refs[{i}]");
            if r.secret.split('/').count() != 2 || r.secret.starts_with('/') || r.secret.ends_with('/') {
                return Err(invalid(
                    &format!("{field}.secret"),
                    format!("{:?} must be \"<namespace>/<name>\"", r.secret),
                ));
            }
            let location = match (&r.file, &r.env) {
                (Some(f), None) => SecretLocation::File(abs(f)),
                (None, Some(e)) if !e.is_empty() => SecretLocation::Env(e.clone()),
                _ => return Err(invalid(&field, "exactly one of file or env is required".into())),
            };
            secret_refs.insert((r.secret.clone(), r.key.clone()), location);
        }
        let key_mode =
            parse_mode(raw.outputs.key_mode.as_deref(), 0o600).map_err(|m| invalid("outputs.keyMode", m))?;
        let cert_mode = parse_mode(raw.outputs.cert_mode.as_deref(), 0o644)
            .map_err(|m| invalid("outputs.certMode", m))?;
        let template = raw
            .outputs
            .dir
            .unwrap_or_else(|| "certs/{namespace}/{secretName}".into());
        let template = if Path::new(&template).is_absolute() {
            template
        } else {
            base.join(&template).to_string_lossy().into_owned()
        };

        let mut cert_outputs = BTreeMap::new();
        for (id, o) in raw.outputs.certificates {
            let field = format!("outputs.certificates.{id}");
            let mut hooks = Vec::new();
            for (i, h) in o.hooks.into_iter().enumerate() {
                if h.command.first().is_none_or(String::is_empty) {
                    return Err(invalid(
                        &format!("{field}.hooks[{i}].command"),
                        "must name a program".into(),
                    ));
                }
                let timeout = match h.timeout.as_deref() {
                    None => DEFAULT_HOOK_TIMEOUT,
                    Some(t) => parse_duration(t).map_err(|source| ConfigError::Duration {
                        path: path.to_owned(),
                        field: format!("{field}.hooks[{i}].timeout"),
                        source,
                    })?,
                };
                hooks.push(Hook {
                    command: h.command,
                    timeout,
                });
            }
            if o.verify.len() > MAX_VERIFY_TARGETS {
                return Err(invalid(
                    &format!("{field}.verify"),
                    format!("at most {MAX_VERIFY_TARGETS} addresses"),
                ));
            }
            let mut verify = Vec::new();
            for (i, v) in o.verify.into_iter().enumerate() {
                let at = format!("{field}.verify[{i}]");
                let timeout = match v.timeout.as_deref() {
                    None => DEFAULT_VERIFY_TIMEOUT,
                    Some(t) => parse_duration(t)
                        .and_then(|d| {
                            if d > MAX_VERIFY_TIMEOUT {
                                Err(ConfigDurationError::TooLarge {
                                    value: t.to_owned(),
                                    max: MAX_VERIFY_TIMEOUT,
                                })
                            } else {
                                Ok(d)
                            }
                        })
                        .map_err(|source| ConfigError::Duration {
                            path: path.to_owned(),
                            field: format!("{at}.timeout"),
                            source,
                        })?,
                };
                let target =
                    VerifyTarget::parse(&v.address, v.server_name.as_deref(), timeout).map_err(|source| {
                        ConfigError::Address {
                            path: path.to_owned(),
                            field: if matches!(source, AddressError::ServerName(_)) {
                                format!("{at}.serverName")
                            } else {
                                format!("{at}.address")
                            },
                            source,
                        }
                    })?;
                verify.push(target);
            }
            let out = CertOutput {
                dir: o.dir.map(|d| abs(Path::new(&d))).unwrap_or_default(),
                key_mode: parse_mode(o.key_mode.as_deref(), key_mode)
                    .map_err(|m| invalid(&format!("{field}.keyMode"), m))?,
                cert_mode: parse_mode(o.cert_mode.as_deref(), cert_mode)
                    .map_err(|m| invalid(&format!("{field}.certMode"), m))?,
                user: o.user,
                group: o.group,
                hooks,
                verify,
            };
            cert_outputs.insert(id, out);
        }
        if !(1..=MAX_CONCURRENCY).contains(&raw.issuers.concurrency) {
            return Err(invalid(
                "issuers.concurrency",
                format!("must be between 1 and {MAX_CONCURRENCY}"),
            ));
        }
        let (min_rate, max_rate) = RATE_BOUNDS;
        // NaN fails the range check too.
        if !(min_rate..=max_rate).contains(&raw.issuers.rate_per_second) {
            return Err(invalid(
                "issuers.ratePerSecond",
                format!("must be between {min_rate} and {max_rate}"),
            ));
        }
        let defaults = IssuerLimits::default();
        let timeout = |field: &str, value: Option<&str>, default: Duration| match value {
            None => Ok(default),
            Some(t) => parse_duration(t).map_err(|source| ConfigError::Duration {
                path: path.to_owned(),
                field: field.to_owned(),
                source,
            }),
        };
        let mut issuer_extras = BTreeMap::new();
        for (key, v) in raw.issuers.vault {
            let field = format!("issuers.vault.{key}");
            let id = issuer_key(&key).map_err(|m| invalid(&field, m))?;
            let addresses = match v.addresses {
                None => Vec::new(),
                Some(list) => certkeeper_vault::parse_addresses(list.iter().map(String::as_str))
                    .map_err(|e| invalid(&format!("{field}.addresses"), e.to_string()))?,
            };
            let auth_namespace = match v.auth_namespace.as_deref() {
                None => None,
                Some(ns) => Some(
                    certkeeper_vault::parse_namespace(ns)
                        .map_err(|e| invalid(&format!("{field}.authNamespace"), e.to_string()))?,
                ),
            };
            if issuer_extras
                .insert(
                    id.to_string(),
                    VaultExtras {
                        addresses,
                        auth_namespace,
                    },
                )
                .is_some()
            {
                return Err(invalid(&field, format!("names issuer {id} a second time")));
            }
        }
        let issuers = IssuerLimits {
            concurrency: raw.issuers.concurrency,
            rate_per_second: raw.issuers.rate_per_second,
            burst: raw.issuers.burst,
            connect_timeout: timeout(
                "issuers.connectTimeout",
                raw.issuers.connect_timeout.as_deref(),
                defaults.connect_timeout,
            )?,
            request_timeout: timeout(
                "issuers.requestTimeout",
                raw.issuers.request_timeout.as_deref(),
                defaults.request_timeout,
            )?,
        };
        let issuance_budget = match raw.issuance_budget.as_deref() {
            None => Some(IssuanceBudget::default()),
            Some(text) => {
                IssuanceBudget::parse(text).map_err(|e| invalid("issuanceBudget", e.to_string()))?
            }
        };
        Ok(Config {
            path: path.to_owned(),
            manifests: abs(&raw.manifests),
            state_dir: abs(&raw.state_dir),
            listen,
            log: raw.log,
            secrets_dir: raw.secrets.dir.map(|d| abs(&d)),
            secret_refs,
            output_dir_template: template,
            key_mode,
            cert_mode,
            cert_outputs,
            issuers,
            issuance_budget,
            issuer_extras,
            aws: AwsEnvironment::from_process(),
        })
    }

    /// Whether `secrets.refs` names any key of Secret `namespace/name`.
    pub fn has_secret_ref(&self, namespace: &str, name: &str) -> bool {
        let secret = format!("{namespace}/{name}");
        self.secret_refs.keys().any(|(s, _)| *s == secret)
    }

    /// Where Secret `namespace/name`, key `key` is read from.
    pub fn secret_location(&self, namespace: &str, name: &str, key: &str) -> Option<SecretLocation> {
        if let Some(l) = self
            .secret_refs
            .get(&(format!("{namespace}/{name}"), key.to_owned()))
        {
            return Some(l.clone());
        }
        self.secrets_dir
            .as_ref()
            .map(|d| SecretLocation::File(d.join(namespace).join(name).join(key)))
    }

    /// Output settings of certificate `namespace/name` writing `secret_name`.
    pub fn output(&self, namespace: &str, name: &str, secret_name: &str) -> CertOutput {
        let default_dir = PathBuf::from(
            self.output_dir_template
                .replace("{namespace}", namespace)
                .replace("{name}", name)
                .replace("{secretName}", secret_name),
        );
        match self.cert_outputs.get(&format!("{namespace}/{name}")) {
            Some(o) => CertOutput {
                dir: if o.dir.as_os_str().is_empty() {
                    default_dir
                } else {
                    o.dir.clone()
                },
                ..o.clone()
            },
            None => CertOutput {
                dir: default_dir,
                key_mode: self.key_mode,
                cert_mode: self.cert_mode,
                user: None,
                group: None,
                hooks: Vec::new(),
                verify: Vec::new(),
            },
        }
    }

    /// `issuers.vault` of issuer `id`, if the configuration names it.
    pub fn vault_extras(&self, id: &IssuerId) -> Option<&VaultExtras> {
        self.issuer_extras.get(id.as_str())
    }

    pub fn state_db_path(&self) -> PathBuf {
        self.state_dir.join("state.redb")
    }
}

/// The issuer an `issuers.vault` key names: `<namespace>/<name>` (an Issuer, as
/// `outputs.certificates` names Certificates), or `<Kind>/<namespace>/<name>` for the namespaced
/// kinds and `<Kind>/<name>` for the cluster-scoped ones.
fn issuer_key(key: &str) -> Result<IssuerId, String> {
    let parts: Vec<&str> = key.split('/').collect();
    let kinds = || {
        IssuerKind::ALL
            .iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let shape = || {
        format!(
            "{key:?} must be \"<namespace>/<name>\" or \"<Kind>/[<namespace>/]<name>\" (Kind: {})",
            kinds()
        )
    };
    if parts
        .iter()
        .any(|p| p.is_empty() || p.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        return Err(shape());
    }
    let kind_of = |name: &str| IssuerKind::ALL.into_iter().find(|k| k.as_str() == name);
    match parts.as_slice() {
        [namespace, name] => match kind_of(namespace) {
            Some(kind) if !kind.namespaced() => Ok(IssuerId::new(kind, "", name)),
            Some(kind) => Err(format!(
                "{key:?}: a {} needs \"{}/<namespace>/<name>\"",
                kind.as_str(),
                kind.as_str()
            )),
            None => Ok(IssuerId::new(IssuerKind::Issuer, namespace, name)),
        },
        [kind, namespace, name] => match kind_of(kind) {
            Some(kind) if kind.namespaced() => Ok(IssuerId::new(kind, namespace, name)),
            Some(kind) => Err(format!("{key:?}: a {} has no namespace", kind.as_str())),
            None => Err(shape()),
        },
        _ => Err(shape()),
    }
}

/// An octal file mode such as "0600" or "640".
fn parse_mode(value: Option<&str>, default: u32) -> Result<u32, String> {
    let Some(v) = value else { return Ok(default) };
    match u32::from_str_radix(v.trim().trim_start_matches("0o"), 8) {
        Ok(m) if m <= 0o777 => Ok(m),
        _ => Err(format!("{v:?} is not an octal file mode like \"0600\"")),
    }
}

/// A timeout: a Go duration ("30s", "2m", "1h30m", "500ms", the grammar of manifests'
/// durations, overflow-checked), more than zero and at most [`MAX_CONFIG_DURATION`].
fn parse_duration(v: &str) -> Result<Duration, ConfigDurationError> {
    let d = parse_go_duration(v.trim())?;
    if d.is_zero() {
        return Err(ConfigDurationError::Zero(v.to_owned()));
    }
    if d > MAX_CONFIG_DURATION {
        return Err(ConfigDurationError::TooLarge {
            value: v.to_owned(),
            max: MAX_CONFIG_DURATION,
        });
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_addresses_are_checked_where_they_are_written() {
        let parse = |verify: &str| {
            Config::parse(
                Path::new("/x/ck.yaml"),
                &format!(
                    "manifests: m\nstateDir: s\noutputs: {{certificates: {{default/web: {{verify: [{verify}]}}}}}}\n"
                ),
            )
        };
        let config = parse("{address: '127.0.0.1:8443', serverName: web.example.com, timeout: 3s}").unwrap();
        let out = config.output("default", "web", "web");
        assert_eq!(out.verify.len(), 1);
        assert_eq!(out.verify[0].to_string(), "127.0.0.1:8443 (SNI web.example.com)");
        assert_eq!(out.verify[0].timeout, Duration::from_secs(3));
        let default = parse("{address: 'localhost:443'}").unwrap();
        assert_eq!(
            default.output("default", "web", "web").verify[0].timeout,
            DEFAULT_VERIFY_TIMEOUT
        );
        for (verify, message) in [
            (
                "{address: 'https://web:443/'}",
                "/x/ck.yaml: outputs.certificates.default/web.verify[0].address: \"https://web:443/\" must be host:port, not a URL: no scheme, path, query, fragment, user or spaces",
            ),
            (
                "{address: 'web:0'}",
                "/x/ck.yaml: outputs.certificates.default/web.verify[0].address: port \"0\" must be a number from 1 to 65535",
            ),
            (
                "{address: 'web:443', serverName: '10.0.0.1'}",
                "/x/ck.yaml: outputs.certificates.default/web.verify[0].serverName: serverName \"10.0.0.1\" is not a DNS name (SNI carries DNS names only; to reach an IP address, leave serverName out)",
            ),
            (
                "{address: 'web:443', timeout: 1h}",
                "/x/ck.yaml: outputs.certificates.default/web.verify[0].timeout: \"1h\" is too large: at most 5m0s",
            ),
            ("{address: 'web:443', path: /x}", "unknown field `path`"),
        ] {
            let error = parse(verify).unwrap_err().to_string();
            assert!(error.contains(message), "{verify}: {error}");
        }
        let many = vec!["{address: 'web:443'}"; MAX_VERIFY_TARGETS + 1].join(", ");
        assert!(
            parse(&many)
                .unwrap_err()
                .to_string()
                .contains("at most 16 addresses")
        );
    }

    /// The example in the module documentation is a valid configuration.
    #[test]
    fn documented_example_parses() {
        let doc: String = include_str!("config.rs")
            .lines()
            .skip_while(|l| !l.starts_with("//! ```yaml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| {
                format!(
                    "{}\n",
                    l.trim_start_matches("//!").strip_prefix(' ').unwrap_or("")
                )
            })
            .collect();
        let cfg = Config::parse(Path::new("/etc/certkeeper/certkeeper.yaml"), &doc).unwrap();
        assert_eq!(cfg.manifests, Path::new("/etc/certkeeper/./manifests"));
        assert_eq!(cfg.listen, Some("127.0.0.1:9402".parse().unwrap()));
        assert_eq!(
            cfg.secret_location("default", "vault-approle", "secretId"),
            Some(SecretLocation::Env("VAULT_SECRET_ID".into()))
        );
        assert_eq!(
            cfg.secret_location("default", "other", "token"),
            Some(SecretLocation::File(
                "/etc/certkeeper/./secrets/default/other/token".into()
            ))
        );
        let web = cfg.output("default", "web", "web-tls");
        assert_eq!(web.dir, Path::new("/etc/nginx/tls"));
        assert_eq!((web.user, web.group, web.key_mode), (Some(33), Some(33), 0o600));
        assert_eq!(web.hooks[0].timeout, Duration::from_secs(30));
        let api = cfg.output("prod", "api", "api-tls");
        assert_eq!(api.dir, Path::new("/etc/certkeeper/./certs/prod/api-tls"));
        assert_eq!(
            (cfg.issuers.connect_timeout, cfg.issuers.request_timeout),
            (Duration::from_secs(5), Duration::from_secs(30))
        );
    }

    /// The configuration reference in the README is a valid configuration.
    #[test]
    fn readme_configuration_reference_parses() {
        let readme = include_str!("../../../README.md");
        let after = readme
            .split_once("The configuration file says what cert-manager's schema has no room for:")
            .unwrap()
            .1;
        let block = after
            .split_once("```yaml\n")
            .unwrap()
            .1
            .split_once("```")
            .unwrap()
            .0;
        let cfg = Config::parse(Path::new("/etc/certkeeper/certkeeper.yaml"), block).unwrap();
        let id = IssuerId::new(IssuerKind::Issuer, "default", "vault");
        let extras = cfg.vault_extras(&id).unwrap();
        assert_eq!(extras.addresses.len(), 3);
        assert_eq!(extras.auth_namespace.as_deref(), Some("org"));
    }

    #[test]
    fn issuer_timeouts_default_and_parse() {
        let p = Path::new("/x/ck.yaml");
        let cfg = Config::parse(p, "manifests: m\nstateDir: s\n").unwrap();
        assert_eq!(cfg.issuers, IssuerLimits::default());
        let cfg = Config::parse(
            p,
            "manifests: m\nstateDir: s\nissuers: {requestTimeout: 1500ms, connectTimeout: 1s}\n",
        )
        .unwrap();
        assert_eq!(cfg.issuers.request_timeout, Duration::from_millis(1500));
        assert_eq!(cfg.issuers.connect_timeout, Duration::from_secs(1));
        assert_eq!(cfg.issuers.concurrency, IssuerLimits::default().concurrency);
        assert_eq!(
            Config::parse(p, "manifests: m\nstateDir: s\nissuers: {requestTimeout: 0s}\n")
                .unwrap_err()
                .to_string(),
            "/x/ck.yaml: issuers.requestTimeout: \"0s\" must be more than 0"
        );
    }

    #[test]
    fn errors_name_the_file_and_field() {
        let p = Path::new("/x/ck.yaml");
        let err = |text: &str| Config::parse(p, text).unwrap_err().to_string();
        assert!(err("manifests: m\n").contains("state_dir") || err("manifests: m\n").contains("stateDir"));
        assert_eq!(
            err("manifests: m\nstateDir: s\nlisten: nowhere\n"),
            "/x/ck.yaml: listen: \"nowhere\" is not host:port (invalid socket address syntax)"
        );
        assert!(err("manifests: m\nstateDir: s\nbogus: 1\n").contains("unknown field `bogus`"));
        assert_eq!(
            err("manifests: m\nstateDir: s\noutputs: {keyMode: \"0999\"}\n"),
            "/x/ck.yaml: outputs.keyMode: \"0999\" is not an octal file mode like \"0600\""
        );
        assert_eq!(
            err("manifests: m\nstateDir: s\nsecrets: {refs: [{secret: a/b, key: k}]}\n"),
            "/x/ck.yaml: secrets.refs[0]: exactly one of file or env is required"
        );
        assert_eq!(
            err(
                "manifests: m\nstateDir: s\noutputs: {certificates: {default/web: {hooks: [{command: [x], timeout: soon}]}}}\n"
            ),
            "/x/ck.yaml: outputs.certificates.default/web.hooks[0].timeout: invalid duration \"soon\""
        );
    }

    #[test]
    fn issuer_vault_extras_by_issuer() {
        let cfg = limits(
            "{vault: {default/v: {addresses: ['http://127.0.0.1:8200', 'https://b:8201/'], authNamespace: /org/}, \
             ClusterIssuer/c: {authNamespace: a/b}, VaultIssuer/ns/v: {addresses: ['https://x:1']}}}",
        )
        .unwrap();
        let issuer = IssuerId::new(IssuerKind::Issuer, "default", "v");
        assert_eq!(
            cfg.vault_extras(&issuer).unwrap(),
            &VaultExtras {
                addresses: vec!["http://127.0.0.1:8200".into(), "https://b:8201".into()],
                auth_namespace: Some("org".into()),
            }
        );
        let cluster = IssuerId::new(IssuerKind::ClusterIssuer, "", "c");
        assert_eq!(
            cfg.vault_extras(&cluster).unwrap().auth_namespace.as_deref(),
            Some("a/b")
        );
        let own = IssuerId::new(IssuerKind::VaultIssuer, "ns", "v");
        assert_eq!(cfg.vault_extras(&own).unwrap().addresses, vec!["https://x:1"]);
        let other = IssuerId::new(IssuerKind::Issuer, "default", "other");
        assert_eq!(cfg.vault_extras(&other), None);
    }

    /// Each entry fails only the check its message names.
    #[test]
    fn hostile_issuer_vault_extras_are_refused_naming_the_field() {
        for (vault, message) in [
            (
                "{default/v: {addresses: ['https://u:pw@a:8200']}}",
                "/x/ck.yaml: issuers.vault.default/v.addresses: an address must not carry credentials",
            ),
            (
                "{default/v: {addresses: ['https://a:8200/v1/sys']}}",
                "/x/ck.yaml: issuers.vault.default/v.addresses: \"https://a:8200/v1/sys\" must be scheme://host:port only",
            ),
            (
                "{default/v: {addresses: ['https://a']}}",
                "/x/ck.yaml: issuers.vault.default/v.addresses: \"https://a\" has no port",
            ),
            (
                "{default/v: {addresses: ['a:8200']}}",
                "/x/ck.yaml: issuers.vault.default/v.addresses: \"a:8200\" must start with http:// or https://",
            ),
            (
                "{default/v: {addresses: []}}",
                "/x/ck.yaml: issuers.vault.default/v.addresses: no address given",
            ),
            (
                "{default/v: {addresses: ['https://a:1', 'https://a:1']}}",
                "/x/ck.yaml: issuers.vault.default/v.addresses: \"https://a:1\" is listed twice",
            ),
            (
                "{default/v: {authNamespace: '../root'}}",
                "/x/ck.yaml: issuers.vault.default/v.authNamespace: namespace \"../root\": each part",
            ),
            (
                "{default/v: {authNamespace: ''}}",
                "/x/ck.yaml: issuers.vault.default/v.authNamespace: namespace is empty",
            ),
            ("{default/v: {server: x}}", "unknown field `server`"),
            (
                "{v: {authNamespace: a}}",
                "/x/ck.yaml: issuers.vault.v: \"v\" must be \"<namespace>/<name>\"",
            ),
            (
                "{'a/b/c/d': {authNamespace: a}}",
                "/x/ck.yaml: issuers.vault.a/b/c/d: \"a/b/c/d\" must be",
            ),
            (
                "{Issuer/v: {authNamespace: a}}",
                "/x/ck.yaml: issuers.vault.Issuer/v: \"Issuer/v\": a Issuer needs \"Issuer/<namespace>/<name>\"",
            ),
            (
                "{ClusterIssuer/ns/v: {authNamespace: a}}",
                "/x/ck.yaml: issuers.vault.ClusterIssuer/ns/v: \"ClusterIssuer/ns/v\": a ClusterIssuer has no namespace",
            ),
            (
                "{'default/ v': {authNamespace: a}}",
                "/x/ck.yaml: issuers.vault.default/ v: \"default/ v\" must be",
            ),
            (
                "{default/v: {authNamespace: a}, Issuer/default/v: {authNamespace: b}}",
                "names issuer Issuer/default/v a second time",
            ),
        ] {
            let err = limits(&format!("{{vault: {vault}}}")).unwrap_err().to_string();
            assert!(err.contains(message), "{vault}: {err}");
        }
        let many: Vec<String> = (0..=certkeeper_vault::MAX_ADDRESSES)
            .map(|i| format!("'https://n{i}:8200'"))
            .collect();
        let err = limits(&format!(
            "{{vault: {{default/v: {{addresses: [{}]}}}}}}",
            many.join(", ")
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("addresses; at most 16"), "{err}");
    }

    fn limits(issuers: &str) -> Result<Config, ConfigError> {
        Config::parse(
            Path::new("/x/ck.yaml"),
            &format!("manifests: m\nstateDir: s\nissuers: {issuers}\n"),
        )
    }

    #[test]
    fn hostile_config_durations_that_overflow_are_refused() {
        // Before: 5124095576030432h * 3600 wrapped to 3584 s (and panicked in debug builds).
        let hook = |timeout: &str| {
            Config::parse(
                Path::new("/x/ck.yaml"),
                &format!(
                    "manifests: m\nstateDir: s\noutputs: {{certificates: {{default/web: {{hooks: [{{command: [x], timeout: {timeout}}}]}}}}}}\n"
                ),
            )
        };
        assert_eq!(
            hook("5124095576030432h").unwrap_err().to_string(),
            "/x/ck.yaml: outputs.certificates.default/web.hooks[0].timeout: \
             duration \"5124095576030432h\" is too large (more than 2562047h)"
        );
        assert_eq!(
            limits("{connectTimeout: 99999999999999999999s}")
                .unwrap_err()
                .to_string(),
            "/x/ck.yaml: issuers.connectTimeout: duration \"99999999999999999999s\" is too large (more than 2562047h)"
        );
        assert_eq!(
            limits("{requestTimeout: 25h}").unwrap_err().to_string(),
            "/x/ck.yaml: issuers.requestTimeout: \"25h\" is too large: at most 24h0m0s"
        );
        assert_eq!(
            hook("1h30m").unwrap().output("default", "web", "w").hooks[0].timeout,
            Duration::from_secs(5400)
        );
    }

    #[test]
    fn hostile_issuer_gate_settings_out_of_range_are_refused() {
        for (issuers, field) in [
            ("{concurrency: 0}", "issuers.concurrency"),
            ("{concurrency: 18446744073709551615}", "issuers.concurrency"),
            ("{ratePerSecond: 0}", "issuers.ratePerSecond"),
            ("{ratePerSecond: 1e-300}", "issuers.ratePerSecond"),
            ("{ratePerSecond: .inf}", "issuers.ratePerSecond"),
            ("{ratePerSecond: .nan}", "issuers.ratePerSecond"),
        ] {
            let err = limits(issuers).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("/x/ck.yaml: {field}: must be between")),
                "{issuers}: {err}"
            );
        }
    }

    proptest::proptest! {
        /// Any text: no panic; what is accepted lies in (0, MAX_CONFIG_DURATION] and prints
        /// back to itself.
        #[test]
        fn hostile_config_duration_parsing_never_panics(text in "[0-9.+-]{0,24}(ns|us|µs|ms|s|m|h|d|)([0-9]{0,6}(m|s|))") {
            if let Ok(d) = parse_duration(&text) {
                proptest::prop_assert!(!d.is_zero() && d <= MAX_CONFIG_DURATION);
                proptest::prop_assert_eq!(parse_duration(&format_go_duration(d)), Ok(d));
            }
        }

        #[test]
        fn hostile_config_duration_any_number_of_hours(hours in proptest::num::u64::ANY) {
            match parse_duration(&format!("{hours}h")) {
                Ok(d) => proptest::prop_assert_eq!(d, Duration::from_secs(hours * 3600)),
                Err(ConfigDurationError::Zero(_)) => proptest::prop_assert_eq!(hours, 0),
                Err(e) => proptest::prop_assert!(hours > 24 && e.to_string().contains("too large"), "{}", e),
            }
        }
    }

    /// `issuanceBudget`: six per hour unless set; `off` removes it; anything else is refused
    /// naming the field.
    #[test]
    fn issuance_budget_defaults_parses_and_refuses() {
        let parse = |extra: &str| {
            Config::parse(
                Path::new("/x/ck.yaml"),
                &format!("manifests: m\nstateDir: s\n{extra}"),
            )
        };
        assert_eq!(
            parse("").unwrap().issuance_budget,
            Some(IssuanceBudget::default())
        );
        assert_eq!(parse("issuanceBudget: off\n").unwrap().issuance_budget, None);
        assert_eq!(
            parse("issuanceBudget: 20/30m\n").unwrap().issuance_budget,
            Some(IssuanceBudget {
                count: 20,
                window: Duration::from_secs(1800)
            })
        );
        assert_eq!(
            parse("issuanceBudget: lots\n").unwrap_err().to_string(),
            "/x/ck.yaml: issuanceBudget: expected COUNT/WINDOW (e.g. 6/1h) or off, got \"lots\""
        );
    }
}
