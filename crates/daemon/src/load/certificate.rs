//! One Certificate: its engine job (built by the engine's shared
//! [`certkeeper_engine::build::certificate_job`]) and the standalone runtime's output settings.

use std::collections::HashMap;

use certkeeper_core::spec::Certificate;
use certkeeper_engine::build::{BuildError, certificate_issuer, certificate_job, output_formats};
use certkeeper_engine::outputs::OutputFormats;
use certkeeper_engine::{CertJob, IssuerId};

use super::{LoadProblem, ManifestSecrets};
use crate::config::Config;
use crate::model::CertMeta;

/// The job and output settings of `cert`, plus a problem when its issuer is not one of
/// `issuers` (issuer id -> fingerprint): the certificate waits for it, for the reason `unusable`
/// gives (issuer id -> why: its manifest is invalid, its references do not resolve). An error's
/// message is a [`LoadProblem`]'s; the certificate is then left out.
pub(super) fn build(
    config: &Config,
    secrets: &ManifestSecrets,
    cert: &Certificate,
    issuers: &HashMap<&str, u64>,
    unusable: &HashMap<IssuerId, String>,
) -> Result<(CertJob, CertMeta, Option<LoadProblem>), BuildError> {
    let namespace = cert.namespace();
    let name = &cert.metadata.name;
    let spec = &cert.spec;
    let issuer = certificate_issuer(cert)?;
    let issuer_fingerprint = issuers.get(issuer.as_str()).copied();
    let problem = issuer_fingerprint.is_none().then(|| LoadProblem {
        source: format!("Certificate {namespace}/{name}"),
        message: match unusable.get(&issuer) {
            Some(why) => format!("spec.issuerRef: waiting for {issuer}: {why}"),
            None => format!("spec.issuerRef: {issuer} is not a configured Vault issuer"),
        },
    });
    let job = certificate_job(cert, issuer_fingerprint.unwrap_or(0))?;
    let meta = CertMeta {
        secret_name: spec.secret_name.clone(),
        output: config.output(namespace, name, &spec.secret_name),
        formats: formats(config, secrets, cert)?,
    };
    Ok((job, meta, problem))
}

/// The output formats, keystore passwords resolved as an issuer's Secrets are (a Secret in the
/// manifests, a file or an environment variable).
fn formats(
    config: &Config,
    secrets: &ManifestSecrets,
    cert: &Certificate,
) -> Result<OutputFormats, BuildError> {
    output_formats(cert, |field, sel| {
        super::issuer::secret_source(config, secrets, cert.namespace(), field, &sel.name, &sel.key)
    })
}
