//! otherName SANs, name constraints and literal subjects: parsed as cert-manager parses them,
//! and the DER compared with what OpenSSL (another writer) produces, then read back with
//! x509-parser (another reader).

use x509_parser::extensions::{GeneralName, ParsedExtension};

use super::csr::with_csr;
use super::support::p256;
use crate::pki::der;
use crate::pki::{
    AttributeType, CsrRequest, DnError, IpRange, LiteralSubject, NameConstraints, NameSubtrees, Oid,
    OtherName, PkiError, build_csr,
};

const UPN: &str = "1.3.6.1.4.1.311.20.2.3";

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn csr_der(pem: &str) -> Vec<u8> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    block.contents
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn upn(value: &str) -> OtherName {
    OtherName {
        oid: UPN.parse().unwrap(),
        value: value.into(),
    }
}

fn openssl_case() -> CsrRequest {
    CsrRequest {
        common_name: Some("app.example.com".into()),
        dns_names: vec!["app.example.com".into()],
        other_names: vec![upn("upn@example.com")],
        is_ca: true,
        name_constraints: Some(Box::new(NameConstraints {
            critical: true,
            permitted: NameSubtrees {
                dns_domains: vec![".example.com".into()],
                ip_ranges: vec!["10.1.2.3/8".parse().unwrap()],
                ..Default::default()
            },
            excluded: NameSubtrees {
                email_addresses: vec!["bad.example.com".into()],
                ..Default::default()
            },
        })),
        ..Default::default()
    }
}

/// The extension values OpenSSL 3 writes for `subjectAltName=DNS:app.example.com,
/// otherName:1.3.6.1.4.1.311.20.2.3;UTF8:upn@example.com` and `nameConstraints=critical,
/// permitted;DNS:.example.com,permitted;IP:10.0.0.0/255.0.0.0,excluded;email:bad.example.com`.
#[test]
fn extensions_match_openssl_byte_for_byte() {
    let pem = build_csr(&openssl_case(), &p256()).unwrap();
    let der = csr_der(&pem);
    let san = hex(
        "3032820F6170702E6578616D706C652E636F6DA01F060A2B060104018237140203A0110C0F75706E406578616D706C652E636F6D",
    );
    let nc = hex(
        "3033A01C300E820C2E6578616D706C652E636F6D300A87080A000000FF000000A1133011810F6261642E6578616D706C652E636F6D",
    );
    assert!(contains(&der, &san), "SAN differs from OpenSSL's");
    // critical TRUE, then the value.
    let mut nc_ext = vec![0x01, 0x01, 0xff];
    nc_ext.extend(der::tlv(der::OCTET_STRING, &nc));
    assert!(contains(&der, &nc_ext), "name constraints differ from OpenSSL's");
}

#[test]
fn other_names_and_name_constraints_read_back() {
    let pem = build_csr(&openssl_case(), &p256()).unwrap();
    with_csr(&pem, |csr| {
        let exts: Vec<_> = csr.requested_extensions().into_iter().flatten().collect();
        let san = exts
            .iter()
            .find_map(|e| match e {
                ParsedExtension::SubjectAlternativeName(s) => Some(s),
                _ => None,
            })
            .unwrap();
        // cert-manager's order: DNS names first, otherNames last.
        assert!(matches!(
            san.general_names[0],
            GeneralName::DNSName("app.example.com")
        ));
        match &san.general_names[1] {
            GeneralName::OtherName(oid, value) => {
                assert_eq!(oid.to_id_string(), UPN);
                assert_eq!(
                    *value,
                    &der::tlv(0xa0, &der::tlv(der::UTF8_STRING, b"upn@example.com"))[..]
                );
            }
            other => panic!("{other:?}"),
        }
        let nc = exts
            .iter()
            .find_map(|e| match e {
                ParsedExtension::NameConstraints(n) => Some(n),
                _ => None,
            })
            .unwrap();
        let permitted = nc.permitted_subtrees.as_ref().unwrap();
        assert!(matches!(permitted[0].base, GeneralName::DNSName(".example.com")));
        assert!(matches!(
            permitted[1].base,
            GeneralName::IPAddress(&[10, 0, 0, 0, 255, 0, 0, 0])
        ));
        let excluded = nc.excluded_subtrees.as_ref().unwrap();
        assert!(matches!(
            excluded[0].base,
            GeneralName::RFC822Name("bad.example.com")
        ));
    });
}

#[test]
fn an_other_name_alone_is_a_request_and_makes_the_san_critical() {
    let req = CsrRequest {
        other_names: vec![upn("u@example.com")],
        ..Default::default()
    };
    let pem = build_csr(&req, &p256()).unwrap();
    with_csr(&pem, |csr| {
        assert_eq!(csr.certification_request_info.subject.iter_rdn().count(), 0);
        let ext = csr.certification_request_info.attributes().iter().count();
        assert_eq!(ext, 1);
    });
    assert!(contains(
        &csr_der(&pem),
        &[0x06, 0x03, 0x55, 0x1d, 0x11, 0x01, 0x01, 0xff]
    ));
}

#[test]
fn empty_name_constraints_write_no_extension() {
    let req = CsrRequest {
        common_name: Some("ca".into()),
        is_ca: true,
        name_constraints: Some(Box::new(NameConstraints {
            critical: true,
            ..Default::default()
        })),
        ..Default::default()
    };
    let der = csr_der(&build_csr(&req, &p256()).unwrap());
    assert!(!contains(&der, &[0x55, 0x1d, 0x1e]));
}

#[test]
fn oids_parse_like_go_and_encode_like_x690() {
    assert!("1.2.+3".parse::<Oid>().is_ok(), "Atoi takes a sign");
    for bad in ["", "1..2", "1.a", "1. 2", "1.2.", "99999999999999999999"] {
        assert!(bad.parse::<Oid>().is_err(), "{bad}");
    }
    // Accepted by the syntax (as by cert-manager's webhook), refused when the CSR is built.
    for unencodable in ["1", "3.1", "1.40", "1.-2"] {
        let req = CsrRequest {
            other_names: vec![OtherName {
                oid: unencodable.parse().unwrap(),
                value: "x".into(),
            }],
            ..Default::default()
        };
        assert!(
            matches!(build_csr(&req, &p256()), Err(PkiError::InvalidOid { .. })),
            "{unencodable}"
        );
    }
    let big: Oid = "2.999.9223372036854775807".parse().unwrap();
    assert_eq!(big.to_string(), "2.999.9223372036854775807");
}

#[test]
fn cidrs_parse_like_go() {
    let range: IpRange = "10.1.2.3/8".parse().unwrap();
    assert_eq!(range.to_string(), "10.0.0.0/8");
    assert_eq!(
        "2001:db8::1/32".parse::<IpRange>().unwrap().to_string(),
        "2001:db8::/32"
    );
    assert_eq!(
        "10.0.0.0/008".parse::<IpRange>().unwrap().to_string(),
        "10.0.0.0/8"
    );
    assert_eq!("0.0.0.0/0".parse::<IpRange>().unwrap().to_string(), "0.0.0.0/0");
    for bad in [
        "10.0.0.0",
        "10.0.0.0/33",
        "::/129",
        "10.0.0.0/+8",
        "10.0.0.0/",
        "fe80::1%eth0/64",
        "x/8",
        "10.0.0.0/8/8",
    ] {
        assert!(bad.parse::<IpRange>().is_err(), "{bad}");
    }
}

fn rdns(s: &str) -> Vec<Vec<String>> {
    let subject: LiteralSubject = s.parse().unwrap();
    subject
        .rdns()
        .iter()
        .map(|rdn| rdn.iter().map(ToString::to_string).collect())
        .collect()
}

#[test]
fn literal_subjects_parse_like_go_ldap() {
    // Reversed: the string names the last RDN first.
    assert_eq!(
        rdns("CN=foo,OU=bar+O=baz,DC=example,DC=com"),
        [
            vec!["DC=com"],
            vec!["DC=example"],
            vec!["OU=bar", "O=baz"],
            vec!["CN=foo"]
        ]
    );
    assert_eq!(
        rdns(" CN = a\\,b\\2Bc ; O=x\\ "),
        [vec!["O=x "], vec!["CN=a,b+c"]]
    );
    assert_eq!(
        rdns("1.2.840.113549.1.9.1=ops@example.com"),
        [vec!["1.2.840.113549.1.9.1=ops@example.com"]]
    );
    // #hex: the content octets of one BER element (here a UTF8String "foo").
    assert_eq!(rdns("CN=#0c03666f6f"), [vec!["CN=foo"]]);
    assert_eq!(
        rdns("CN=#300a0c03666f6f0c03626172"),
        [vec!["CN=\u{c}\u{3}foo\u{c}\u{3}bar"]]
    );
    assert_eq!(rdns("   "), Vec::<Vec<String>>::new());
    // Case matters: "cn" is not a known name, nor an OID.
    let subject: LiteralSubject = "cn=foo".parse().unwrap();
    assert_eq!(subject.unrecognized().collect::<Vec<_>>(), [("cn", &b"foo"[..])]);
    assert!(matches!(
        subject.rdns()[0][0].attribute_type,
        AttributeType::Unrecognized(_)
    ));

    for (bad, error) in [
        ("CN", DnError::EndedIncomplete),
        ("CN=a,", DnError::EndedIncomplete),
        (",CN=a", DnError::IncompletePair),
        ("CN=a\"b", DnError::UnescapedCharacter('"')),
        ("CN=a<b", DnError::UnescapedCharacter('<')),
        ("CN=a\\", DnError::CorruptedEscape("a\\".into())),
        ("CN=a\\zz", DnError::BadHexEscape("zz".into())),
        ("CN=#0c0366", DnError::Ber("unexpected end of data")),
        ("CN=#0c03666f6f00", DnError::Ber("trailing bytes after value")),
        ("CN=#0c02c328", DnError::Ber("invalid UTF-8 string")),
        ("CN=#abc", DnError::Ber("invalid hex")),
    ] {
        assert_eq!(bad.parse::<LiteralSubject>().unwrap_err(), error, "{bad}");
    }
    let deep = format!("CN=#{}", "3080".repeat(40));
    assert_eq!(
        deep.parse::<LiteralSubject>().unwrap_err(),
        DnError::Ber("nesting too deep")
    );
}

#[test]
fn the_common_name_is_the_last_in_der_order() {
    let subject: LiteralSubject = "CN=first,O=x,CN=second".parse().unwrap();
    assert_eq!(subject.common_name().as_deref(), Some("first"));
}

#[test]
fn a_literal_subject_is_written_in_order_with_gos_string_types() {
    let literal: LiteralSubject =
        "CN=app.example.com,UID=jdoe,OU=R&D+O=Example,DC=example,DC=com,1.2.840.113549.1.9.1=ops@example.com"
            .parse()
            .unwrap();
    let req = CsrRequest {
        common_name: literal.common_name(),
        literal_subject: Some(literal),
        ..Default::default()
    };
    let pem = build_csr(&req, &p256()).unwrap();
    with_csr(&pem, |csr| {
        let subject = &csr.certification_request_info.subject;
        let got: Vec<Vec<(String, u8, String)>> = subject
            .iter_rdn()
            .map(|rdn| {
                rdn.iter()
                    .map(|a| {
                        (
                            a.attr_type().to_id_string(),
                            a.attr_value().header.tag().0 as u8,
                            a.as_str().unwrap().to_owned(),
                        )
                    })
                    .collect()
            })
            .collect();
        let one = |oid: &str, tag: u8, v: &str| vec![(oid.to_owned(), tag, v.to_owned())];
        assert_eq!(
            got,
            [
                // '@' and '&' are outside PrintableString: UTF8String (12), else PrintableString (19).
                one("1.2.840.113549.1.9.1", 12, "ops@example.com"),
                one("0.9.2342.19200300.100.1.25", 19, "com"),
                one("0.9.2342.19200300.100.1.25", 19, "example"),
                // A multi-valued RDN is a DER SET, sorted by encoding as Go sorts it: the
                // shorter SEQUENCE (OU=R&D) first.
                vec![
                    ("2.5.4.11".to_owned(), 12, "R&D".to_owned()),
                    ("2.5.4.10".to_owned(), 19, "Example".to_owned()),
                ],
                one("0.9.2342.19200300.100.1.1", 19, "jdoe"),
                one("2.5.4.3", 19, "app.example.com"),
            ]
        );
    });
}

#[test]
fn a_literal_subject_refuses_what_it_cannot_encode_or_would_replace() {
    let build = |literal: &str, common_name: Option<&str>| {
        let req = CsrRequest {
            common_name: common_name.map(Into::into),
            dns_names: vec!["a.example.com".into()],
            literal_subject: Some(literal.parse().unwrap()),
            ..Default::default()
        };
        build_csr(&req, &p256())
    };
    assert!(matches!(build("CN=\\ff", None), Err(PkiError::SubjectNotUtf8(_))));
    assert!(matches!(
        build("cn=x", None),
        Err(PkiError::UnknownSubjectAttribute(_))
    ));
    assert!(matches!(
        build("CN=x", Some("y")),
        Err(PkiError::LiteralSubjectConflict("commonName"))
    ));
    assert!(build("CN=x", Some("x")).is_ok());
    // A literal subject without a CN and no SANs is no request.
    let req = CsrRequest {
        literal_subject: Some("O=x".parse().unwrap()),
        ..Default::default()
    };
    assert!(matches!(build_csr(&req, &p256()), Err(PkiError::EmptyRequest)));
}
