//! Adopting a certificate that is already served but that the engine has no state for: files
//! from before certkeeper managed them (another tool, cert-manager's Secret), or a lost state
//! database. cert-manager keeps such a certificate when it matches the spec instead of
//! re-issuing; so does certkeeper, which also spares Vault a wave of requests on migration.
//!
//! A served certificate is adopted when its key parses and is of the spec's algorithm, the
//! certificate belongs to that key and has not expired, and its common name and every SAN list
//! are the spec's (as sets). Anything else is an ordinary first issuance.

use std::collections::BTreeSet;
use std::fmt::Display;
use std::time::SystemTime;

use certkeeper_core::pki::{PrivateKey, verify_issued};
use certkeeper_core::time::to_unix;

use crate::driver::issued_info;
use crate::job::CertJob;
use crate::state::IssuedInfo;

/// Why a served certificate is not adopted (logged; the certificate is issued afresh).
#[derive(Debug, thiserror::Error)]
pub enum NotAdopted {
    #[error("tls.key: {0}")]
    Key(String),
    #[error("tls.key is {found}, the spec asks for {wanted}")]
    KeyAlgorithm { found: String, wanted: String },
    #[error("tls.crt: {0}")]
    Certificate(String),
    #[error("tls.crt {field} {found:?} differ from the spec's {wanted:?}")]
    Names {
        field: &'static str,
        found: Vec<String>,
        wanted: Vec<String>,
    },
}

/// The state of a served `tls.crt` / `tls.key` pair that matches `job`'s spec.
pub fn adopt(job: &CertJob, tls_crt: &str, tls_key: &str, now: SystemTime) -> Result<IssuedInfo, NotAdopted> {
    let key = PrivateKey::from_pem(tls_key).map_err(|e| NotAdopted::Key(e.to_string()))?;
    if key.algorithm() != job.key_algorithm {
        return Err(NotAdopted::KeyAlgorithm {
            found: key.algorithm().to_string(),
            wanted: job.key_algorithm.to_string(),
        });
    }
    let cert = verify_issued(tls_crt, &[], &key, job.duration, now)
        .map_err(|e| NotAdopted::Certificate(e.to_string()))?;
    let csr = &job.csr;
    same("common name", cert.common_name.iter(), csr.common_name.iter())?;
    same("DNS names", &cert.dns_names, &csr.dns_names)?;
    same("IP addresses", &cert.ip_addresses, &csr.ip_addresses)?;
    same("URIs", &cert.uris, &csr.uris)?;
    same("email addresses", &cert.email_addresses, &csr.email_addresses)?;
    let mut info = issued_info(job, &cert, now);
    // It was issued before we saw it; the shortened-lifetime warning only applies to what we ask.
    info.issued_at = to_unix(cert.not_before);
    info.warning = None;
    Ok(info)
}

fn same<'a, T: Display + Ord + 'a>(
    field: &'static str,
    found: impl IntoIterator<Item = &'a T>,
    wanted: impl IntoIterator<Item = &'a T>,
) -> Result<(), NotAdopted> {
    let found: BTreeSet<&T> = found.into_iter().collect();
    let wanted: BTreeSet<&T> = wanted.into_iter().collect();
    if found == wanted {
        return Ok(());
    }
    let list = |s: &BTreeSet<&T>| s.iter().map(ToString::to_string).collect();
    Err(NotAdopted::Names {
        field,
        found: list(&found),
        wanted: list(&wanted),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use certkeeper_core::pki::{CsrRequest, KeyAlgorithm, KeyEncoding};
    use certkeeper_core::schedule::RenewalPolicy;

    use super::*;
    use crate::job::JobLabels;

    fn job() -> CertJob {
        CertJob {
            id: crate::CertId::new("default", "web"),
            issuer: crate::IssuerId::new(certkeeper_core::spec::IssuerKind::Issuer, "default", "vault"),
            fingerprint: 7,
            csr: CsrRequest {
                common_name: Some("web.example.com".into()),
                dns_names: vec!["web.example.com".into(), "www.example.com".into()],
                ..Default::default()
            },
            key_algorithm: KeyAlgorithm::Ecdsa(256),
            key_encoding: KeyEncoding::Pkcs8,
            rotate_key: true,
            duration: Duration::from_secs(24 * 3600),
            renewal: RenewalPolicy::default(),
            labels: JobLabels::default(),
        }
    }

    /// A served pair: a key of `algorithm` and a certificate for `cn` / `sans` valid for a day.
    fn served(algorithm: KeyAlgorithm, cn: &str, sans: &[&str]) -> (String, String) {
        let key = PrivateKey::generate(algorithm).unwrap();
        let key_pem = key.to_pem(KeyEncoding::Pkcs8).expose().to_owned();
        let pair = rcgen::KeyPair::from_pem(&key_pem).unwrap();
        let mut params =
            rcgen::CertificateParams::new(sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, cn);
        let now = time_now();
        params.not_before = now - rcgen_duration(60);
        params.not_after = now + rcgen_duration(24 * 3600);
        (params.self_signed(&pair).unwrap().pem(), key_pem)
    }

    fn time_now() -> time::OffsetDateTime {
        time::OffsetDateTime::now_utc()
    }

    fn rcgen_duration(secs: i64) -> time::Duration {
        time::Duration::seconds(secs)
    }

    #[test]
    fn a_matching_pair_is_adopted_with_its_own_dates() {
        let (crt, key) = served(
            KeyAlgorithm::Ecdsa(256),
            "web.example.com",
            &["www.example.com", "web.example.com"],
        );
        let now = SystemTime::now();
        let info = adopt(&job(), &crt, &key, now).unwrap();
        assert_eq!(info.spec_fingerprint, 7);
        assert!(info.not_after > to_unix(now) + 23 * 3600);
        assert!(info.issued_at < to_unix(now));
        let renewal = info.renewal_time.expect("renewed automatically");
        assert!(renewal > to_unix(now) && renewal < info.not_after);
        assert!(info.warning.is_none());
    }

    #[test]
    fn anything_that_differs_from_the_spec_is_not_adopted() {
        let now = SystemTime::now();
        let (crt, key) = served(KeyAlgorithm::Ecdsa(256), "web.example.com", &["web.example.com"]);
        assert!(matches!(
            adopt(&job(), &crt, &key, now),
            Err(NotAdopted::Names {
                field: "DNS names",
                ..
            })
        ));
        let (crt, key) = served(
            KeyAlgorithm::Ecdsa(384),
            "web.example.com",
            &["web.example.com", "www.example.com"],
        );
        assert!(matches!(
            adopt(&job(), &crt, &key, now),
            Err(NotAdopted::KeyAlgorithm { .. })
        ));
        let (crt, _) = served(
            KeyAlgorithm::Ecdsa(256),
            "web.example.com",
            &["web.example.com", "www.example.com"],
        );
        let (_, other_key) = served(KeyAlgorithm::Ecdsa(256), "x", &["x"]);
        assert!(matches!(
            adopt(&job(), &crt, &other_key, now),
            Err(NotAdopted::Certificate(_))
        ));
        let (crt, key) = served(
            KeyAlgorithm::Ecdsa(256),
            "other.example.com",
            &["web.example.com", "www.example.com"],
        );
        let err = adopt(&job(), &crt, &key, now).unwrap_err().to_string();
        assert!(err.contains("common name"), "{err}");
        // Expired by the time it is looked at.
        let (crt, key) = served(
            KeyAlgorithm::Ecdsa(256),
            "web.example.com",
            &["web.example.com", "www.example.com"],
        );
        let later = now + Duration::from_secs(2 * 24 * 3600);
        assert!(matches!(
            adopt(&job(), &crt, &key, later),
            Err(NotAdopted::Certificate(_))
        ));
    }
}
