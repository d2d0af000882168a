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
//! - with cert-manager's CertificateRequest of the served revision (the controller finds it), its
//!   key is the served key and it asks for what the spec asks (`RequestMatchesSpec`): the CSR's
//!   names exactly, its subject field by field (or byte for byte for a `literalSubject`), its
//!   otherNames, and the request's isCA, usages, duration and issuerRef;
//! - without one (files, or a Secret without its request), on the certificate
//!   (`FuzzyX509AltNamesMatchSpec`): the common name and DNS names, taken together, are the
//!   spec's (a name may have moved between the two: many CAs list the common name among the DNS
//!   SANs, and a spec may name a host in one field or both); the IP addresses,
//!   URIs and email addresses are the spec's (as sets);
//! - when the spec has `otherNames`, the certificate's UTF-8 otherName SANs are those (as a set;
//!   cert-manager compares them on the request, Vault copies them or refuses the request).
//!
//! Subject fields, `literalSubject`, `isCA`, usages and `duration` are never compared on the
//! certificate (an issuer may override them, and Vault's `sign` does), as cert-manager never
//! does. Anything that does not match is an ordinary first issuance.

use std::collections::BTreeSet;
use std::fmt::Display;
use std::time::{Duration, SystemTime};

use certkeeper_core::pki::{IssuedCertificate, PrivateKey, parse_usages, read_csr, verify_issued};
use certkeeper_core::spec::IssuerKind;
use certkeeper_core::time::to_unix;

use crate::driver::issued_info;
use crate::job::CertJob;
use crate::state::IssuedInfo;

/// cert-manager's annotations on a served Secret (`cert-manager.io/certificate-name`,
/// `issuer-name`, `issuer-kind`, `issuer-group`), each `None` when absent.
#[derive(Debug, Default, Clone, Copy)]
pub struct SecretAnnotations<'a> {
    pub certificate_name: Option<&'a str>,
    pub issuer_name: Option<&'a str>,
    pub issuer_kind: Option<&'a str>,
    pub issuer_group: Option<&'a str>,
}

/// cert-manager's CertificateRequest of the served revision (the controller finds it by its
/// `certificate-name` and `certificate-revision` annotations and its owner): what cert-manager
/// compares with the spec when it has one.
#[derive(Debug, Clone, Copy)]
pub struct CurrentRequest<'a> {
    /// `spec.request`, decoded: the CSR, PEM.
    pub csr_pem: &'a str,
    pub is_ca: bool,
    /// `spec.usages` as written.
    pub usages: &'a [String],
    /// `spec.duration`, when set.
    pub duration: Option<Duration>,
    pub issuer_name: &'a str,
    pub issuer_kind: &'a str,
    pub issuer_group: &'a str,
}

/// Where a served pair was found: files (standalone: nothing beyond the pair) or a Secret with
/// its annotations and, when cert-manager left one, the request of its revision (the controller).
#[derive(Debug, Clone, Copy)]
pub enum Served<'a> {
    Files,
    Secret {
        annotations: SecretAnnotations<'a>,
        request: Option<CurrentRequest<'a>>,
    },
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
    #[error("the current CertificateRequest: {0}")]
    Request(String),
    #[error("the Secret's key is not the key of the current CertificateRequest")]
    RequestKey,
    #[error("fields on the current CertificateRequest not up to date: {0:?}")]
    RequestChanged(Vec<&'static str>),
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
    let request = match served {
        Served::Files => None,
        Served::Secret { annotations, request } => {
            same_issuer(job, annotations)?;
            request
        }
    };
    match request {
        Some(request) => request_matches(job, &key, &request)?,
        None => certificate_matches(job, &cert)?,
    }
    let mut info = issued_info(job, &cert, now);
    // It was issued before we saw it; the shortened-lifetime warning only applies to what we ask.
    info.issued_at = to_unix(cert.not_before);
    info.warning = None;
    Ok(info)
}

/// Without a request: cert-manager's `FuzzyX509AltNamesMatchSpec` on the certificate, and the
/// spec's otherNames.
fn certificate_matches(job: &CertJob, cert: &IssuedCertificate) -> Result<(), NotAdopted> {
    let csr = &job.csr;
    // The common name and the DNS names as one set.
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
    Ok(())
}

/// With cert-manager's request of the served revision: its key is the served key
/// (`SecretPublicKeyDiffersFromCurrentCertificateRequest`) and its CSR and fields are the spec's
/// (`RequestMatchesSpec`): names exactly, the subject (field by field, or byte for byte for a
/// `literalSubject`), otherNames, isCA, usages, duration and issuerRef. Differences: usages are
/// compared with cert-manager's defaults applied on both sides, and a request's duration with
/// the spec's (or its default when unset).
fn request_matches(job: &CertJob, key: &PrivateKey, request: &CurrentRequest<'_>) -> Result<(), NotAdopted> {
    let asked = read_csr(request.csr_pem).map_err(|e| NotAdopted::Request(e.to_string()))?;
    if !key.matches_public_key(&asked.public_key_der) {
        return Err(NotAdopted::RequestKey);
    }
    let csr = &job.csr;
    let mut changed = Vec::new();
    let mut check = |equal: bool, field: &'static str| {
        if !equal {
            changed.push(field);
        }
    };
    check(set_eq(&asked.ip_addresses, &csr.ip_addresses), "spec.ipAddresses");
    check(set_eq(&asked.uris, &csr.uris), "spec.uris");
    check(
        set_eq(&asked.email_addresses, &csr.email_addresses),
        "spec.emailAddresses",
    );
    check(set_eq(&asked.dns_names, &csr.dns_names), "spec.dnsNames");
    if !csr.other_names.is_empty() {
        check(set_eq(&asked.other_names, &csr.other_names), "spec.otherNames");
    }
    if csr.literal_subject.is_some() {
        let wanted = csr
            .subject_der()
            .map_err(|e| NotAdopted::Request(e.to_string()))?;
        check(asked.subject_der == wanted, "spec.literalSubject");
    } else {
        let (found, wanted) = (&asked.subject, &csr.subject);
        check(
            asked.common_name.as_deref().unwrap_or_default()
                == csr.common_name.as_deref().unwrap_or_default(),
            "spec.commonName",
        );
        check(
            found.serial_number.as_deref().unwrap_or_default()
                == wanted.serial_number.as_deref().unwrap_or_default(),
            "spec.subject.serialNumber",
        );
        for (found, wanted, field) in [
            (
                &found.organizations,
                &wanted.organizations,
                "spec.subject.organizations",
            ),
            (&found.countries, &wanted.countries, "spec.subject.countries"),
            (&found.localities, &wanted.localities, "spec.subject.localities"),
            (
                &found.organizational_units,
                &wanted.organizational_units,
                "spec.subject.organizationalUnits",
            ),
            (
                &found.postal_codes,
                &wanted.postal_codes,
                "spec.subject.postalCodes",
            ),
            (&found.provinces, &wanted.provinces, "spec.subject.provinces"),
            (
                &found.street_addresses,
                &wanted.street_addresses,
                "spec.subject.streetAddresses",
            ),
        ] {
            check(set_eq(found, wanted), field);
        }
    }
    check(request.is_ca == csr.is_ca, "spec.isCA");
    check(usages_match(request, job), "spec.usages");
    check(
        request.duration.is_none_or(|d| d == job.duration),
        "spec.duration",
    );
    let issuer = job.issuer.key();
    check(
        request.issuer_name == issuer.name
            && IssuerKind::of(request.issuer_group, request.issuer_kind) == Some(issuer.kind),
        "spec.issuerRef",
    );
    if changed.is_empty() {
        Ok(())
    } else {
        Err(NotAdopted::RequestChanged(changed))
    }
}

/// The request's usages, with cert-manager's defaults (`digital signature`, `key
/// encipherment`; `cert sign` for a CA) applied as the spec's are, equal to the job's.
fn usages_match(request: &CurrentRequest<'_>, job: &CertJob) -> bool {
    let mut names: Vec<&str> = if request.usages.is_empty() {
        vec!["digital signature", "key encipherment"]
    } else {
        request.usages.iter().map(String::as_str).collect()
    };
    if request.is_ca && !names.contains(&"cert sign") {
        names.push("cert sign");
    }
    match parse_usages(&names) {
        Ok((key_usages, extended)) => {
            set_eq(&key_usages, &job.csr.key_usages) && set_eq(&extended, &job.csr.extended_key_usages)
        }
        Err(_) => false,
    }
}

/// The same elements, ignoring order and repeats (cert-manager's `EqualUnsorted`).
fn set_eq<T: PartialEq>(a: &[T], b: &[T]) -> bool {
    a.iter().all(|x| b.contains(x)) && b.iter().all(|x| a.contains(x))
}

/// cert-manager's `SecretIssuerAnnotationsMatch` and certificate-name check against `job`.
fn same_issuer(job: &CertJob, found: SecretAnnotations<'_>) -> Result<(), NotAdopted> {
    let key = job.issuer.key();
    let (kind, group) = (key.kind.as_str(), key.kind.group());
    let any = found.issuer_name.is_some() || found.issuer_kind.is_some() || found.issuer_group.is_some();
    let found_kind = found.issuer_kind.filter(|k| !k.is_empty()).unwrap_or("Issuer");
    let found_group = found
        .issuer_group
        .filter(|g| !g.is_empty())
        .unwrap_or(certkeeper_core::spec::CERT_MANAGER_GROUP);
    let found_name = found.issuer_name.unwrap_or_default();
    if (any && found_name != key.name) || found_kind != kind || found_group != group {
        return Err(NotAdopted::Issuer {
            found: format!("{found_kind}.{found_group}/{found_name}"),
            wanted: format!("{kind}.{group}/{}", key.name),
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

    use certkeeper_core::pki::{CsrRequest, KeyAlgorithm, KeyEncoding, KeyUsage, OtherName};
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
                // cert-manager's default usages, as the spec layer applies them.
                key_usages: vec![KeyUsage::DigitalSignature, KeyUsage::KeyEncipherment],
                ..Default::default()
            },
            key_algorithm: KeyAlgorithm::Ecdsa(256),
            key_encoding: KeyEncoding::Pkcs8,
            rotate_key: true,
            duration: Duration::from_secs(24 * 3600),
            renewal: RenewalPolicy::default(),
            labels: JobLabels::default(),
            revoke_superseded: false,
            revoke_deleted: false,
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
        let secret = |annotations: SecretAnnotations<'static>| {
            adopt(
                &job(),
                Served::Secret {
                    annotations,
                    request: None,
                },
                &crt,
                &key,
                now,
            )
        };
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
            Served::Secret {
                annotations: SecretAnnotations::default(),
                request: None,
            },
            &crt,
            &key,
            now,
        )
        .unwrap_err();
        assert!(matches!(err, NotAdopted::Issuer { .. }), "{err}");
        // Files have no annotations to compare.
        adopt(&cluster, Served::Files, &crt, &key, now).unwrap();
    }

    /// A request as cert-manager leaves it for `job`'s spec, its CSR made with `key_pem`.
    fn request_csr(job: &CertJob, key_pem: &str) -> String {
        let key = PrivateKey::from_pem(key_pem).unwrap();
        certkeeper_core::pki::build_csr(&job.csr, &key).unwrap()
    }

    fn current(csr_pem: &str) -> CurrentRequest<'_> {
        CurrentRequest {
            csr_pem,
            is_ca: false,
            usages: &[],
            duration: None,
            issuer_name: "vault",
            issuer_kind: "Issuer",
            issuer_group: "",
        }
    }

    fn with_request(
        job: &CertJob,
        crt: &str,
        key: &str,
        request: CurrentRequest<'_>,
    ) -> Result<IssuedInfo, NotAdopted> {
        let served = Served::Secret {
            annotations: SecretAnnotations::default(),
            request: Some(request),
        };
        adopt(job, served, crt, key, SystemTime::now())
    }

    fn changed(result: Result<IssuedInfo, NotAdopted>) -> Vec<&'static str> {
        match result {
            Err(NotAdopted::RequestChanged(fields)) => fields,
            other => panic!("expected RequestChanged, got {other:?}"),
        }
    }

    /// With cert-manager's request of the served revision, its CSR and fields are compared with
    /// the spec as cert-manager's RequestMatchesSpec does: what the certificate cannot show
    /// (subject fields, isCA, usages, duration, issuerRef) counts too.
    #[test]
    fn the_current_request_is_compared_field_by_field() {
        let (crt, key) = web();
        let job = job();
        let csr = request_csr(&job, &key);
        with_request(&job, &crt, &key, current(&csr)).unwrap();
        let usages = ["key encipherment".to_owned(), "digital signature".to_owned()];
        with_request(
            &job,
            &crt,
            &key,
            CurrentRequest {
                usages: &usages,
                duration: Some(job.duration),
                issuer_group: "cert-manager.io",
                ..current(&csr)
            },
        )
        .unwrap();

        // The spec changed after the request: a subject field, the names (exactly here).
        let mut acme = job.clone();
        acme.csr.subject.organizations = vec!["Acme".into()];
        assert_eq!(
            changed(with_request(&acme, &crt, &key, current(&csr))),
            ["spec.subject.organizations"]
        );
        let mut fewer = job.clone();
        fewer.csr.dns_names = vec!["www.example.com".into()];
        assert_eq!(
            changed(with_request(&fewer, &crt, &key, current(&csr))),
            ["spec.dnsNames"]
        );
        // The request's own fields.
        let one = ["digital signature".to_owned()];
        for (request, field) in [
            (
                CurrentRequest {
                    usages: &one,
                    ..current(&csr)
                },
                "spec.usages",
            ),
            (
                CurrentRequest {
                    duration: Some(Duration::from_secs(3600)),
                    ..current(&csr)
                },
                "spec.duration",
            ),
            (
                CurrentRequest {
                    issuer_name: "other",
                    ..current(&csr)
                },
                "spec.issuerRef",
            ),
            (
                CurrentRequest {
                    issuer_kind: "ClusterIssuer",
                    ..current(&csr)
                },
                "spec.issuerRef",
            ),
        ] {
            assert_eq!(changed(with_request(&job, &crt, &key, request)), [field]);
        }
        let fields = changed(with_request(
            &job,
            &crt,
            &key,
            CurrentRequest {
                is_ca: true,
                ..current(&csr)
            },
        ));
        assert!(fields.contains(&"spec.isCA"), "{fields:?}");

        // A request made with another key than the Secret's, and one that does not parse.
        let (_, other_key) = served(KeyAlgorithm::Ecdsa(256), "x", &["x"]);
        let other = request_csr(&job, &other_key);
        assert!(matches!(
            with_request(&job, &crt, &key, current(&other)),
            Err(NotAdopted::RequestKey)
        ));
        assert!(matches!(
            with_request(&job, &crt, &key, current("not a CSR")),
            Err(NotAdopted::Request(_))
        ));
    }

    #[test]
    fn a_literal_subject_is_compared_byte_for_byte() {
        let (crt, key) = web();
        let mut job = job();
        job.csr.literal_subject = Some("CN=web.example.com,O=Acme".parse().unwrap());
        let csr = request_csr(&job, &key);
        with_request(&job, &crt, &key, current(&csr)).unwrap();
        let mut reordered = job.clone();
        reordered.csr.literal_subject = Some("O=Acme,CN=web.example.com".parse().unwrap());
        assert_eq!(
            changed(with_request(&reordered, &crt, &key, current(&csr))),
            ["spec.literalSubject"]
        );
    }
}
