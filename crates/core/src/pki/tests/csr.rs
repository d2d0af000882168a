//! CSR contents, read back with x509-parser.

use std::net::IpAddr;

use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::cri_attributes::ParsedCriAttribute;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::pem::Pem;
use x509_parser::prelude::FromDer;

use super::support::p256;
use crate::pki::{
    CsrRequest, ExtendedKeyUsage, KeyAlgorithm, KeyUsage, PkiError, PrivateKey, Subject, Usage, build_csr,
    parse_usages,
};

/// Decodes a CSR PEM and hands the parsed request to `f`.
pub fn with_csr<T>(pem: &str, f: impl FnOnce(&X509CertificationRequest<'_>) -> T) -> T {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    assert_eq!(block.label, "CERTIFICATE REQUEST");
    let block: Pem = block;
    let (rest, csr) = X509CertificationRequest::from_der(&block.contents).unwrap();
    assert!(rest.is_empty());
    f(&csr)
}

/// (DNS, IP, URI, e-mail) SANs of a CSR, and whether the SAN extension is critical.
pub fn csr_sans(csr: &X509CertificationRequest<'_>) -> (Vec<String>, Vec<IpAddr>, Vec<String>, Vec<String>) {
    let mut out: (Vec<String>, Vec<IpAddr>, Vec<String>, Vec<String>) = Default::default();
    for ext in csr.requested_extensions().into_iter().flatten() {
        if let ParsedExtension::SubjectAlternativeName(san) = ext {
            for name in &san.general_names {
                match name {
                    GeneralName::DNSName(d) => out.0.push((*d).to_owned()),
                    GeneralName::IPAddress(ip) if ip.len() == 4 => {
                        out.1.push(IpAddr::from(<[u8; 4]>::try_from(*ip).unwrap()))
                    }
                    GeneralName::IPAddress(ip) => {
                        out.1.push(IpAddr::from(<[u8; 16]>::try_from(*ip).unwrap()))
                    }
                    GeneralName::URI(u) => out.2.push((*u).to_owned()),
                    GeneralName::RFC822Name(e) => out.3.push((*e).to_owned()),
                    other => panic!("unexpected SAN {other:?}"),
                }
            }
        }
    }
    out
}

fn full_request() -> CsrRequest {
    CsrRequest {
        common_name: Some("a.example.com".into()),
        dns_names: vec!["a.example.com".into(), "*.b.example.com".into()],
        ip_addresses: vec!["10.0.0.1".parse().unwrap(), "2001:db8::1".parse().unwrap()],
        uris: vec!["spiffe://cluster.local/ns/a/sa/b".into()],
        email_addresses: vec!["ops@example.com".into()],
        subject: Subject {
            organizations: vec!["Example".into(), "Example Sub & Co".into()],
            countries: vec!["DE".into()],
            organizational_units: vec!["Ops".into()],
            localities: vec!["Berlin".into()],
            provinces: vec!["Berlin".into()],
            street_addresses: vec!["Straße 1".into()],
            postal_codes: vec!["10115".into()],
            serial_number: Some("1234".into()),
        },
        is_ca: false,
        key_usages: vec![
            KeyUsage::DigitalSignature,
            KeyUsage::KeyEncipherment,
            KeyUsage::DecipherOnly,
        ],
        extended_key_usages: vec![
            ExtendedKeyUsage::ServerAuth,
            ExtendedKeyUsage::ClientAuth,
            ExtendedKeyUsage::IpsecUser,
        ],
        encode_usages_in_request: true,
        ..Default::default()
    }
}

fn subject_values(csr: &X509CertificationRequest<'_>, oid: &str) -> Vec<String> {
    csr.certification_request_info
        .subject
        .iter_attributes()
        .filter(|a| a.attr_type().to_id_string() == oid)
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn every_field_reaches_the_csr() {
    let key = p256();
    let pem = build_csr(&full_request(), &key).unwrap();
    with_csr(&pem, |csr| {
        let info = &csr.certification_request_info;
        assert_eq!(info.subject_pki.raw, key.public_key_der().as_slice());
        assert_eq!(
            csr.signature_algorithm.algorithm.to_id_string(),
            "1.2.840.10045.4.3.2"
        );
        for (oid, expected) in [
            ("2.5.4.3", vec!["a.example.com"]),
            ("2.5.4.10", vec!["Example", "Example Sub & Co"]),
            ("2.5.4.6", vec!["DE"]),
            ("2.5.4.11", vec!["Ops"]),
            ("2.5.4.7", vec!["Berlin"]),
            ("2.5.4.8", vec!["Berlin"]),
            ("2.5.4.9", vec!["Straße 1"]),
            ("2.5.4.17", vec!["10115"]),
            ("2.5.4.5", vec!["1234"]),
        ] {
            let mut got = subject_values(csr, oid);
            got.sort();
            assert_eq!(got, expected, "{oid}");
        }
        // Two organizations share one multi-valued RDN, as Go writes them.
        assert_eq!(info.subject.iter_rdn().count(), 9);

        let (dns, ips, uris, emails) = csr_sans(csr);
        assert_eq!(dns, ["a.example.com", "*.b.example.com"]);
        assert_eq!(ips, full_request().ip_addresses);
        assert_eq!(uris, ["spiffe://cluster.local/ns/a/sa/b"]);
        assert_eq!(emails, ["ops@example.com"]);

        let mut seen = 0;
        for ext in csr.requested_extensions().into_iter().flatten() {
            match ext {
                ParsedExtension::KeyUsage(ku) => {
                    seen += 1;
                    assert!(ku.digital_signature() && ku.key_encipherment() && ku.decipher_only());
                    assert!(!ku.key_cert_sign() && !ku.crl_sign() && !ku.non_repudiation());
                }
                ParsedExtension::ExtendedKeyUsage(eku) => {
                    seen += 1;
                    assert!(eku.server_auth && eku.client_auth && !eku.code_signing);
                    let other: Vec<String> = eku.other.iter().map(|o| o.to_id_string()).collect();
                    assert_eq!(other, ["1.3.6.1.5.5.7.3.7"]);
                }
                ParsedExtension::BasicConstraints(_) => panic!("not a CA"),
                _ => {}
            }
        }
        assert_eq!(seen, 2);
    });
}

#[test]
fn extension_criticality_follows_rfc5280_and_cert_manager() {
    let key = p256();
    let only_sans = CsrRequest {
        dns_names: vec!["x.example.com".into()],
        ..Default::default()
    };
    let with_cn = CsrRequest {
        common_name: Some("x".into()),
        ..full_request()
    };
    for (req, san_critical) in [(only_sans, true), (with_cn, false)] {
        let pem = build_csr(&req, &key).unwrap();
        with_csr(&pem, |csr| {
            let attr = csr.certification_request_info.attributes().first().unwrap();
            let ParsedCriAttribute::ExtensionRequest(req) = attr.parsed_attribute() else {
                panic!("not an extension request");
            };
            for ext in &req.extensions {
                match ext.oid.to_id_string().as_str() {
                    "2.5.29.17" => assert_eq!(ext.critical, san_critical),
                    "2.5.29.15" => assert!(ext.critical),
                    "2.5.29.37" => assert!(!ext.critical),
                    other => panic!("unexpected extension {other}"),
                }
            }
        });
    }
}

#[test]
fn ca_requests_carry_basic_constraints_and_cert_sign() {
    let key = p256();
    let req = CsrRequest {
        is_ca: true,
        ..full_request()
    };
    with_csr(&build_csr(&req, &key).unwrap(), |csr| {
        let mut ca = false;
        for ext in csr.requested_extensions().into_iter().flatten() {
            match ext {
                ParsedExtension::BasicConstraints(bc) => ca = bc.ca,
                ParsedExtension::KeyUsage(ku) => assert!(ku.key_cert_sign()),
                _ => {}
            }
        }
        assert!(ca);
    });
}

#[test]
fn usages_can_be_left_to_the_issuer() {
    let key = p256();
    let req = CsrRequest {
        encode_usages_in_request: false,
        ..full_request()
    };
    with_csr(&build_csr(&req, &key).unwrap(), |csr| {
        for ext in csr.requested_extensions().into_iter().flatten() {
            assert!(!matches!(
                ext,
                ParsedExtension::KeyUsage(_) | ParsedExtension::ExtendedKeyUsage(_)
            ));
        }
        assert_eq!(csr_sans(csr).0.len(), 2);
    });
}

#[test]
fn every_key_algorithm_signs_with_cert_managers_algorithm() {
    for (alg, oid) in [
        (KeyAlgorithm::Rsa(2048), "1.2.840.113549.1.1.11"),
        (KeyAlgorithm::Ecdsa(384), "1.2.840.10045.4.3.3"),
        (KeyAlgorithm::Ecdsa(521), "1.2.840.10045.4.3.4"),
        (KeyAlgorithm::Ed25519, "1.3.101.112"),
    ] {
        let key = PrivateKey::generate(alg).unwrap();
        let req = CsrRequest {
            common_name: Some("a".into()),
            ..Default::default()
        };
        with_csr(&build_csr(&req, &key).unwrap(), |csr| {
            assert_eq!(csr.signature_algorithm.algorithm.to_id_string(), oid, "{alg}");
            assert!(
                csr.requested_extensions().is_none(),
                "no SANs, no usages: no extension request"
            );
        });
    }
}

#[test]
fn invalid_requests_are_refused() {
    let key = p256();
    assert!(matches!(
        build_csr(&CsrRequest::default(), &key),
        Err(PkiError::EmptyRequest)
    ));
    let empty_cn = CsrRequest {
        common_name: Some(String::new()),
        ..Default::default()
    };
    assert!(matches!(build_csr(&empty_cn, &key), Err(PkiError::EmptyRequest)));
    let idn = CsrRequest {
        dns_names: vec!["bücher.example".into()],
        ..Default::default()
    };
    assert!(matches!(build_csr(&idn, &key), Err(PkiError::NonAscii { .. })));
}

#[test]
fn every_cert_manager_usage_string_parses() {
    let all = [
        "signing",
        "digital signature",
        "content commitment",
        "key encipherment",
        "key agreement",
        "data encipherment",
        "cert sign",
        "crl sign",
        "encipher only",
        "decipher only",
        "any",
        "server auth",
        "client auth",
        "code signing",
        "email protection",
        "s/mime",
        "ipsec end system",
        "ipsec tunnel",
        "ipsec user",
        "timestamping",
        "ocsp signing",
        "microsoft sgc",
        "netscape sgc",
    ];
    let (ku, eku) = parse_usages(&all).unwrap();
    // "signing" and "s/mime" are aliases, so 9 + 12 distinct values.
    assert_eq!((ku.len(), eku.len()), (9, 12));
    assert_eq!(
        "s/mime".parse::<Usage>().unwrap(),
        Usage::Extended(ExtendedKeyUsage::EmailProtection)
    );
    assert!(matches!(
        "Server Auth".parse::<Usage>(),
        Err(PkiError::UnknownUsage(_))
    ));
}
