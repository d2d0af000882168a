//! One Certificate: its engine job (CSR contents, key, lifetime, renewal, fingerprint) and the
//! standalone runtime's output settings.

use std::collections::HashMap;
use std::net::IpAddr;

use certkeeper_core::pki::{self, CsrRequest, Subject};
use certkeeper_core::schedule::stable_hash;
use certkeeper_core::spec::{Certificate, IssuerKind, OutputFormat, RotationPolicy};
use certkeeper_engine::{CertJob, JobLabels};
use certkeeper_vault::SecretSource;

use super::LoadProblem;
use crate::config::{Config, SecretLocation};
use crate::model::{CertMeta, Pkcs12Output};

/// A serde enum's wire name (cert-manager's spelling), e.g. "digital signature" or "LegacyRC2".
fn wire_name<T: serde::Serialize>(value: &T) -> Result<String, String> {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => Ok(s),
        Ok(other) => Err(format!("unexpected value {other}")),
        Err(e) => Err(e.to_string()),
    }
}

/// The job and output settings of `cert`, plus a problem when its issuer is not one of
/// `issuers` (issuer id -> fingerprint). An error is a message for a [`LoadProblem`]; the
/// certificate is then left out.
pub(super) fn build(
    config: &Config,
    cert: &Certificate,
    issuers: &HashMap<&str, u64>,
) -> Result<(CertJob, CertMeta, Option<LoadProblem>), String> {
    let namespace = cert.namespace();
    let name = &cert.metadata.name;
    let spec = &cert.spec;
    let key = cert
        .issuer_key()
        .ok_or_else(|| "spec.issuerRef: not an Issuer or ClusterIssuer of cert-manager.io".to_owned())?;
    let issuer = match (key.kind, &key.namespace) {
        (IssuerKind::Issuer, Some(ns)) => format!("Issuer/{ns}/{}", key.name),
        _ => format!("ClusterIssuer/{}", key.name),
    };
    let issuer_fingerprint = issuers.get(issuer.as_str()).copied();
    let problem = issuer_fingerprint.is_none().then(|| LoadProblem {
        source: format!("Certificate {namespace}/{name}"),
        message: format!("spec.issuerRef: {issuer} is not a configured Vault issuer"),
    });

    let private_key = cert.private_key().map_err(|e| e.to_string())?;
    let usage_names = cert
        .usages()
        .iter()
        .map(wire_name)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("spec.usages: {e}"))?;
    let (key_usages, extended_key_usages) =
        pki::parse_usages(&usage_names).map_err(|e| format!("spec.usages: {e}"))?;
    let ip_addresses = spec
        .ip_addresses
        .iter()
        .map(|ip| {
            ip.parse::<IpAddr>()
                .map_err(|_| format!("spec.ipAddresses: {ip:?} is not an IP address"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let subject = spec
        .subject
        .as_ref()
        .map(|s| Subject {
            organizations: s.organizations.clone(),
            countries: s.countries.clone(),
            organizational_units: s.organizational_units.clone(),
            localities: s.localities.clone(),
            provinces: s.provinces.clone(),
            street_addresses: s.street_addresses.clone(),
            postal_codes: s.postal_codes.clone(),
            serial_number: (!s.serial_number.is_empty()).then(|| s.serial_number.clone()),
        })
        .unwrap_or_default();
    let csr = CsrRequest {
        common_name: (!spec.common_name.is_empty()).then(|| spec.common_name.clone()),
        dns_names: spec.dns_names.clone(),
        ip_addresses,
        uris: spec.uris.clone(),
        email_addresses: spec.email_addresses.clone(),
        subject,
        is_ca: spec.is_ca,
        key_usages,
        extended_key_usages,
        encode_usages_in_request: spec.encode_usages_in_request(),
    };

    let fingerprint_input = serde_json::json!({ "spec": spec, "issuer": issuer_fingerprint.unwrap_or(0) });
    let job = CertJob {
        id: format!("{namespace}/{name}"),
        issuer,
        fingerprint: stable_hash(fingerprint_input.to_string().as_bytes()),
        csr,
        key_algorithm: private_key.algorithm.into(),
        key_encoding: private_key.encoding.into(),
        rotate_key: private_key.rotation_policy == RotationPolicy::Always,
        duration: cert.duration(),
        renewal: cert.renewal_policy(),
        labels: JobLabels {
            name: name.clone(),
            namespace: namespace.to_owned(),
            issuer_name: spec.issuer_ref.name.clone(),
            issuer_kind: spec.issuer_ref.kind.clone(),
            issuer_group: spec.issuer_ref.group.clone(),
        },
    };
    let meta = CertMeta {
        secret_name: spec.secret_name.clone(),
        output: config.output(namespace, name, &spec.secret_name),
        combined_pem: spec
            .additional_output_formats
            .iter()
            .any(|f| f.format == OutputFormat::CombinedPEM),
        der: spec
            .additional_output_formats
            .iter()
            .any(|f| f.format == OutputFormat::Der),
        pkcs12: pkcs12(config, cert)?,
    };
    Ok((job, meta, problem))
}

/// `keystores.pkcs12` with `create: true`: the password's source and the profile.
fn pkcs12(config: &Config, cert: &Certificate) -> Result<Option<Pkcs12Output>, String> {
    let Some(keystore) = cert
        .spec
        .keystores
        .as_ref()
        .and_then(|k| k.pkcs12.as_ref())
        .filter(|k| k.create)
    else {
        return Ok(None);
    };
    let field = "spec.keystores.pkcs12";
    let password = match (&keystore.password_secret_ref, &keystore.password) {
        (Some(sel), _) if !sel.name.is_empty() => {
            match config.secret_location(cert.namespace(), &sel.name, &sel.key) {
                Some(SecretLocation::File(path)) => SecretSource::File(path),
                Some(SecretLocation::Env(var)) => SecretSource::Env(var),
                None => {
                    return Err(format!(
                        "{field}.passwordSecretRef: Secret {}/{} key {:?} resolves to nothing: set \
                         secrets.dir or add a secrets.refs entry to the configuration",
                        cert.namespace(),
                        sel.name,
                        sel.key
                    ));
                }
            }
        }
        (_, Some(password)) => SecretSource::Value(password.clone()),
        _ => return Err(format!("{field}: no password")),
    };
    let profile = match &keystore.profile {
        None => pki::Pkcs12Profile::default(),
        Some(p) => wire_name(p)?
            .parse()
            .map_err(|e| format!("{field}.profile: {e}"))?,
    };
    Ok(Some(Pkcs12Output { password, profile }))
}
