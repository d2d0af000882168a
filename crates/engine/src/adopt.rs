//! Adopting a certificate that is already served but that the engine has no state for: files
//! from before certkeeper managed them (another tool, cert-manager's Secret), or a lost state
//! database. cert-manager keeps such a certificate when it matches the spec instead of
//! re-issuing; so does certkeeper, which also spares Vault a wave of requests on migration.
//!
//! The one match rule of both runtimes, cert-manager's checks of a served Secret (its issuing
//! trigger policies, `SecretPrivateKeyMismatchesSpec`, `SecretIssuerAnnotationsMismatch`,
//! `SecretCertificateNameAnnotationsMismatch` and `FuzzyX509AltNamesMatchSpec`) for the fields
//! certkeeper supports. A served certificate is adopted when:
//! - its key parses and is of the spec's algorithm and size (RSA modulus bits, ECDSA curve);
//! - the certificate belongs to that key and has not expired;
//! - on a Secret (the controller), cert-manager's issuer annotations name the spec's issuer
//!   (name when any is present; kind and group with their defaults `Issuer`, `cert-manager.io`)
//!   and its certificate-name annotation, when present, the Certificate;
//! - the common name and DNS names, taken together, are the spec's (a name may have moved
//!   between the two: many CAs list the common name among the DNS SANs, and a spec may name a
//!   host in one field or both); the IP addresses,
//!   URIs and email addresses are the spec's (as sets);
//! - when the spec has `otherNames`, the certificate's UTF-8 otherName SANs are those (as a set;
//!   cert-manager compares them on the request, Vault copies them or refuses the request).
//!
//! Subject fields, `literalSubject`, `isCA`, usages and `duration` are compared by cert-manager
//! only on the CertificateRequest of the current revision, not on the certificate (an issuer may
//! override them, and Vault's `sign` does): neither runtime has that request for a certificate
//! it did not issue, so they are not compared here either. Anything else is an ordinary first
//! issuance.

use std::collections::BTreeSet;
use std::fmt::Display;
use std::time::SystemTime;

use certkeeper_core::pki::{PrivateKey, verify_issued};
use certkeeper_core::spec::IssuerKind;
use certkeeper_core::time::to_unix;

use crate::driver::issued_info;
use crate::job::CertJob;
use crate::state::IssuedInfo;

/// The group of the issuers certkeeper serves; an empty group means it (cert-manager's default).
const ISSUER_GROUP: &str = "cert-manager.io";

/// cert-manager's annotations on a served Secret (`cert-manager.io/certificate-name`,
/// `issuer-name`, `issuer-kind`, `issuer-group`), each `None` when absent.
#[derive(Debug, Default, Clone, Copy)]
pub struct SecretAnnotations<'a> {
    pub certificate_name: Option<&'a str>,
    pub issuer_name: Option<&'a str>,
    pub issuer_kind: Option<&'a str>,
    pub issuer_group: Option<&'a str>,
}

/// Where a served pair was found: files (standalone: nothing beyond the pair) or a Secret with
/// its annotations (the controller).
#[derive(Debug, Clone, Copy)]
pub enum Served<'a> {
    Files,
    Secret(SecretAnnotations<'a>),
}

/// Why a served certificate is not adopted (logged; the certificate is issued afresh).
#[derive(Debug, thiserror::Error)]
pub enum NotAdopted {
    #[error("tls.key: {0}")]
    Key(String),
    #[error("tls.key is {found}, the spec asks for {wanted}")]
    KeyAlgorithm { found: String, wanted: String },
    #[error("tls.crt: {0}")]
    Certificate(String),
    #[error("the Secret was issued by {found}, the spec names {wanted}")]
    Issuer { found: String, wanted: String },
    #[error("the Secret was issued for Certificate {found:?}, not {wanted:?}")]
    CertificateName { found: String, wanted: String },
    #[error("tls.crt {field} {found:?} differ from the spec's {wanted:?}")]
    Names {
        field: &'static str,
        found: Vec<String>,
        wanted: Vec<String>,
    },
}

/// The state of a served `tls.crt` / `tls.key` pair that matches `job`'s spec (see the module
/// docs for the rule).
pub fn adopt(
    job: &CertJob,
    served: Served<'_>,
    tls_crt: &str,
    tls_key: &str,
    now: SystemTime,
) -> Result<IssuedInfo, NotAdopted> {
    let key = PrivateKey::from_pem(tls_key).map_err(|e| NotAdopted::Key(e.to_string()))?;
    if key.algorithm() != job.key_algorithm {
        return Err(NotAdopted::KeyAlgorithm {
            found: key.algorithm().to_string(),
            wanted: job.key_algorithm.to_string(),
        });
    }
    let cert = verify_issued(tls_crt, &[], &key, job.duration, now)
        .map_err(|e| NotAdopted::Certificate(e.to_string()))?;
    if let Served::Secret(annotations) = served {
        same_issuer(job, annotations)?;
    }
    let csr = &job.csr;
    // cert-manager's fuzzy rule: the common name and the DNS names as one set.
    same(
        "common name and DNS names",
        cert.common_name.iter().chain(&cert.dns_names),
        csr.common_name.iter().chain(&csr.dns_names),
    )?;
    same("IP addresses", &cert.ip_addresses, &csr.ip_addresses)?;
    same("URIs", &cert.uris, &csr.uris)?;
    same("email addresses", &cert.email_addresses, &csr.email_addresses)?;
    if !csr.other_names.is_empty() {
        let text = |o: &certkeeper_core::pki::OtherName| format!("{}={}", o.oid, o.value);
        let found: Vec<String> = cert.other_names.iter().map(text).collect();
        let wanted: Vec<String> = csr.other_names.iter().map(text).collect();
        same("otherNames", &found, &wanted)?;
    }
    let mut info = issued_info(job, &cert, now);
    // It was issued before we saw it; the shortened-lifetime warning only applies to what we ask.
    info.issued_at = to_unix(cert.not_before);
    info.warning = None;
    Ok(info)
}

/// cert-manager's `SecretIssuerAnnotationsMatch` and certificate-name check against `job`.
fn same_issuer(job: &CertJob, found: SecretAnnotations<'_>) -> Result<(), NotAdopted> {
    let key = job.issuer.key();
    let kind = match key.kind {
        IssuerKind::Issuer => "Issuer",
        IssuerKind::ClusterIssuer => "ClusterIssuer",
    };
    let any = found.issuer_name.is_some() || found.issuer_kind.is_some() || found.issuer_group.is_some();
    let found_kind = found.issuer_kind.filter(|k| !k.is_empty()).unwrap_or("Issuer");
    let found_group = found
        .issuer_group
        .filter(|g| !g.is_empty())
        .unwrap_or(ISSUER_GROUP);
    let found_name = found.issuer_name.unwrap_or_default();
    if (any && found_name != key.name) || found_kind != kind || found_group != ISSUER_GROUP {
        return Err(NotAdopted::Issuer {
            found: format!("{found_kind}.{found_group}/{found_name}"),
            wanted: format!("{kind}.{ISSUER_GROUP}/{}", key.name),
        });
    }
    let name = job.id.rsplit_once('/').map_or(&*job.id, |(_, name)| name);
    match found.certificate_name {
        Some(found) if found != name => Err(NotAdopted::CertificateName {
            found: found.to_owned(),
            wanted: name.to_owned(),
        }),
        _ => Ok(()),
    }
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

    use certkeeper_core::pki::{CsrRequest, KeyAlgorithm, KeyEncoding, OtherName};
    use certkeeper_core::schedule::RenewalPolicy;

    use super::*;
    use crate::job::JobLabels;

    const UPN: &str = "1.3.6.1.4.1.311.20.2.3";

    fn job() -> CertJob {
        CertJob {
            id: crate::CertId::new("default", "web"),
            issuer: crate::IssuerId::new(IssuerKind::Issuer, "default", "vault"),
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

    /// A served pair: a key of `algorithm` and a certificate for `cn` / `sans` (plus the
    /// otherName SANs `upns`) valid for a day.
    fn served_with(algorithm: KeyAlgorithm, cn: &str, sans: &[&str], upns: &[&str]) -> (String, String) {
        let key = PrivateKey::generate(algorithm).unwrap();
        let key_pem = key.to_pem(KeyEncoding::Pkcs8).expose().to_owned();
        let pair = rcgen::KeyPair::from_pem(&key_pem).unwrap();
        let mut params =
            rcgen::CertificateParams::new(sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).unwrap();
        let upn_arcs: Vec<u64> = UPN.split('.').map(|a| a.parse().unwrap()).collect();
        for upn in upns {
            params
                .subject_alt_names
                .push(rcgen::SanType::OtherName((upn_arcs.clone(), (*upn).into())));
        }
        params.distinguished_name.push(rcgen::DnType::CommonName, cn);
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::seconds(60);
        params.not_after = now + time::Duration::seconds(24 * 3600);
        (params.self_signed(&pair).unwrap().pem(), key_pem)
    }

    fn served(algorithm: KeyAlgorithm, cn: &str, sans: &[&str]) -> (String, String) {
        served_with(algorithm, cn, sans, &[])
    }

    fn web() -> (String, String) {
        served(
            KeyAlgorithm::Ecdsa(256),
            "web.example.com",
            &["www.example.com", "web.example.com"],
        )
    }

    #[test]
    fn a_matching_pair_is_adopted_with_its_own_dates() {
        let (crt, key) = web();
        let now = SystemTime::now();
        let info = adopt(&job(), Served::Files, &crt, &key, now).unwrap();
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
            adopt(&job(), Served::Files, &crt, &key, now),
            Err(NotAdopted::Names {
                field: "common name and DNS names",
                ..
            })
        ));
        // The key's size (the curve) is part of the spec, as cert-manager checks it.
        let (crt, key) = served(
            KeyAlgorithm::Ecdsa(384),
            "web.example.com",
            &["web.example.com", "www.example.com"],
        );
        assert!(matches!(
            adopt(&job(), Served::Files, &crt, &key, now),
            Err(NotAdopted::KeyAlgorithm { .. })
        ));
        let (crt, _) = web();
        let (_, other_key) = served(KeyAlgorithm::Ecdsa(256), "x", &["x"]);
        assert!(matches!(
            adopt(&job(), Served::Files, &crt, &other_key, now),
            Err(NotAdopted::Certificate(_))
        ));
        let (crt, key) = served(
            KeyAlgorithm::Ecdsa(256),
            "other.example.com",
            &["web.example.com", "www.example.com"],
        );
        let err = adopt(&job(), Served::Files, &crt, &key, now)
            .unwrap_err()
            .to_string();
        assert!(err.contains("common name"), "{err}");
        // Expired by the time it is looked at.
        let (crt, key) = web();
        let later = now + Duration::from_secs(2 * 24 * 3600);
        assert!(matches!(
            adopt(&job(), Served::Files, &crt, &key, later),
            Err(NotAdopted::Certificate(_))
        ));
    }

    /// cert-manager's fuzzy rule: a certificate that lists its common name among its DNS SANs
    /// (as many CAs write it, and certkeeper itself when the spec names the host in both) matches
    /// a spec that names that host only as the common name, and the other way round. Compared
    /// list by list, as before, such a certificate was not adopted where cert-manager keeps it.
    #[test]
    fn a_common_name_copied_into_the_dns_names_still_matches() {
        let mut job = job();
        job.csr.dns_names = vec!["www.example.com".into()];
        let (crt, key) = web();
        adopt(&job, Served::Files, &crt, &key, SystemTime::now()).unwrap();
        // And the other way round: no common name asked, the issuer promoted a DNS name.
        job.csr.common_name = None;
        job.csr.dns_names = vec!["www.example.com".into(), "web.example.com".into()];
        adopt(&job, Served::Files, &crt, &key, SystemTime::now()).unwrap();
    }

    #[test]
    fn other_names_the_spec_asks_for_must_be_served() {
        let now = SystemTime::now();
        let mut job = job();
        job.csr.other_names = vec![OtherName {
            oid: UPN.parse().unwrap(),
            value: "jdoe@example.com".into(),
        }];
        let sans = ["web.example.com", "www.example.com"];
        let (crt, key) = served(KeyAlgorithm::Ecdsa(256), "web.example.com", &sans);
        let err = adopt(&job, Served::Files, &crt, &key, now).unwrap_err();
        assert!(
            matches!(
                err,
                NotAdopted::Names {
                    field: "otherNames",
                    ..
                }
            ),
            "{err}"
        );
        let (crt, key) = served_with(
            KeyAlgorithm::Ecdsa(256),
            "web.example.com",
            &sans,
            &["other@example.com"],
        );
        assert!(adopt(&job, Served::Files, &crt, &key, now).is_err());
        let (crt, key) = served_with(
            KeyAlgorithm::Ecdsa(256),
            "web.example.com",
            &sans,
            &["jdoe@example.com"],
        );
        adopt(&job, Served::Files, &crt, &key, now).unwrap();
    }

    #[test]
    fn a_secret_issued_by_another_issuer_or_for_another_certificate_is_not_adopted() {
        let now = SystemTime::now();
        let (crt, key) = web();
        let secret = |a: SecretAnnotations<'static>| adopt(&job(), Served::Secret(a), &crt, &key, now);
        // No annotations (written by hand): kind and group take their defaults, as cert-manager's.
        secret(SecretAnnotations::default()).unwrap();
        let ours = SecretAnnotations {
            certificate_name: Some("web"),
            issuer_name: Some("vault"),
            issuer_kind: Some("Issuer"),
            issuer_group: Some("cert-manager.io"),
        };
        secret(ours).unwrap();
        secret(SecretAnnotations {
            issuer_group: Some(""),
            issuer_kind: None,
            ..ours
        })
        .unwrap();
        for other in [
            SecretAnnotations {
                issuer_name: Some("other"),
                ..ours
            },
            SecretAnnotations {
                issuer_kind: Some("ClusterIssuer"),
                ..ours
            },
            SecretAnnotations {
                issuer_group: Some("awspca.cert-manager.io"),
                ..ours
            },
            // A name annotation alone must name our issuer.
            SecretAnnotations {
                issuer_name: Some("other"),
                ..SecretAnnotations::default()
            },
        ] {
            let err = secret(other).unwrap_err();
            assert!(matches!(err, NotAdopted::Issuer { .. }), "{other:?}: {err}");
        }
        let err = secret(SecretAnnotations {
            certificate_name: Some("api"),
            ..ours
        })
        .unwrap_err();
        assert!(matches!(err, NotAdopted::CertificateName { .. }), "{err}");
        // A ClusterIssuer's certificate in a Secret without a kind annotation: cert-manager reads
        // the missing kind as Issuer, so it does not match.
        let mut cluster = job();
        cluster.issuer = crate::IssuerId::new(IssuerKind::ClusterIssuer, "", "vault");
        let err = adopt(
            &cluster,
            Served::Secret(SecretAnnotations::default()),
            &crt,
            &key,
            now,
        )
        .unwrap_err();
        assert!(matches!(err, NotAdopted::Issuer { .. }), "{err}");
        // Files have no annotations to compare.
        adopt(&cluster, Served::Files, &crt, &key, now).unwrap();
    }
}
