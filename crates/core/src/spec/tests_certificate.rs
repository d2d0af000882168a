//! Certificate tests: a typical manifest, defaults, and each validation rule with its exact
//! message and path.

use std::time::Duration;

use super::*;

const HOUR: u64 = 3600;

fn certificate(yaml: &str) -> Certificate {
    match parse_documents("certs.yaml", yaml)
        .unwrap_or_else(|e| panic!("{e}"))
        .remove(0)
    {
        Resource::Certificate(certificate) => *certificate,
        other => panic!("not a Certificate: {other:?}"),
    }
}

/// A valid minimal Certificate with `extra` lines appended under `spec` (2-space indented).
fn with_spec(extra: &str) -> String {
    let extra: String = extra.lines().map(|l| format!("  {l}\n")).collect();
    format!(
        "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata:\n  name: web\nspec:\n  secretName: web-tls\n  issuerRef:\n    name: vault-issuer\n{extra}"
    )
}

fn minimal(extra: &str) -> String {
    with_spec(&format!("dnsNames: [web.example.com]\n{extra}"))
}

/// [`minimal`] with another issuerRef.
fn issuer_ref(reference: &str) -> String {
    minimal("").replace(
        "  issuerRef:\n    name: vault-issuer\n",
        &format!("  issuerRef: {reference}\n"),
    )
}

fn errors(yaml: &str) -> Vec<String> {
    let errors = parse_documents("certs.yaml", yaml).expect_err("should be rejected");
    errors.iter().map(|e| e.error.to_string()).collect()
}

#[test]
fn typical_certificate() {
    let certificate = certificate(
        "apiVersion: cert-manager.io/v1
kind: Certificate
metadata:
  name: example-com
  namespace: sandbox
spec:
  secretName: example-com-tls
  secretTemplate:
    annotations:
      my-secret-annotation-1: \"foo\"
      cert-manager.io/allow-direct-injection: \"true\"
    labels:
      my-secret-label: foo
  duration: 2160h # 90d
  renewBefore: 360h # 15d
  isCA: false
  privateKey:
    algorithm: RSA
    encoding: PKCS1
    size: 2048
  usages:
    - server auth
    - client auth
  subject:
    organizations:
      - jetstack
  commonName: example.com
  dnsNames:
    - example.com
    - www.example.com
  uris:
    - spiffe://cluster.local/ns/sandbox/sa/example
  ipAddresses:
    - 192.168.0.5
    - 2001:db8::5
  emailAddresses:
    - ops@example.com
  keystores:
    pkcs12:
      create: true
      profile: Modern2023
      passwordSecretRef: {name: p12-password, key: password}
  additionalOutputFormats:
    - type: CombinedPEM
    - type: DER
  issuerRef:
    name: vault-cluster-issuer
    kind: ClusterIssuer
    group: cert-manager.io
",
    );
    assert_eq!(certificate.namespace(), "sandbox");
    assert_eq!(certificate.duration(), Duration::from_secs(2160 * HOUR));
    let policy = certificate.renewal_policy();
    assert_eq!(
        policy,
        RenewalPolicy {
            renew_before: Some(Duration::from_secs(360 * HOUR)),
            renew_before_percentage: None,
            ..RenewalPolicy::default()
        }
    );
    assert_eq!(
        certificate.private_key().unwrap(),
        PrivateKeyParams {
            algorithm: KeyAlgorithm::Rsa { bits: 2048 },
            encoding: PrivateKeyEncoding::Pkcs1,
            rotation_policy: RotationPolicy::Always,
        }
    );
    assert_eq!(certificate.usages(), [KeyUsage::ServerAuth, KeyUsage::ClientAuth]);
    assert_eq!(
        certificate.issuer_key(),
        Some(IssuerKey {
            kind: IssuerKind::ClusterIssuer,
            namespace: None,
            name: "vault-cluster-issuer".into()
        })
    );
    let p12 = certificate
        .spec
        .keystores
        .as_ref()
        .and_then(|k| k.pkcs12.as_ref())
        .unwrap();
    assert_eq!(p12.profile, Some(Pkcs12Profile::Modern2023));
    assert_eq!(
        certificate.spec.subject.as_ref().unwrap().organizations,
        ["jetstack"]
    );
}

#[test]
fn defaults_are_cert_managers() {
    let certificate = certificate(&minimal(""));
    assert_eq!(certificate.duration(), DEFAULT_DURATION);
    assert_eq!(certificate.duration(), Duration::from_secs(2160 * HOUR));
    assert_eq!(certificate.renewal_policy(), RenewalPolicy::default());
    assert_eq!(
        certificate.usages(),
        [KeyUsage::DigitalSignature, KeyUsage::KeyEncipherment]
    );
    assert!(certificate.spec.encode_usages_in_request());
    let key = certificate.private_key().unwrap();
    assert_eq!(key.algorithm, KeyAlgorithm::Rsa { bits: 2048 });
    assert_eq!(
        (key.encoding, key.rotation_policy),
        (PrivateKeyEncoding::Pkcs1, RotationPolicy::Always)
    );
    // No namespace in a standalone manifest: `default`, and so is the Issuer it names.
    assert_eq!(
        certificate.issuer_key(),
        Some(IssuerKey {
            kind: IssuerKind::Issuer,
            namespace: Some("default".into()),
            name: "vault-issuer".into()
        })
    );
}

#[test]
fn key_algorithms_and_sizes() {
    let key = |spec: &str| certificate(&minimal(spec)).private_key().unwrap().algorithm;
    assert_eq!(
        key("privateKey: {algorithm: ECDSA}"),
        KeyAlgorithm::Ecdsa(EcdsaCurve::P256)
    );
    assert_eq!(
        key("privateKey: {algorithm: ECDSA, size: 384}"),
        KeyAlgorithm::Ecdsa(EcdsaCurve::P384)
    );
    assert_eq!(
        key("privateKey: {algorithm: ECDSA, size: 521}"),
        KeyAlgorithm::Ecdsa(EcdsaCurve::P521)
    );
    assert_eq!(key("privateKey: {size: 3072}"), KeyAlgorithm::Rsa { bits: 3072 });
    let ed = certificate(&minimal(
        "privateKey: {algorithm: Ed25519, size: 4096, encoding: PKCS1, rotationPolicy: Never}",
    ));
    let params = ed.private_key().unwrap();
    assert_eq!(params.algorithm, KeyAlgorithm::Ed25519);
    assert_eq!(
        params.encoding,
        PrivateKeyEncoding::Pkcs8,
        "Ed25519 keys are always PKCS#8"
    );
    assert_eq!(params.rotation_policy, RotationPolicy::Never);

    let bad = parse_documents(
        "certs.yaml",
        &minimal("privateKey: {algorithm: ECDSA, size: 2048}"),
    )
    .unwrap_err();
    assert_eq!(
        bad.to_string(),
        "certs.yaml: document 1 (Certificate default/web): spec.privateKey.size: ECDSA keys must be 256, 384 or 521, got 2048"
    );
    assert_eq!(bad.0[0].error.path, FieldPath::parse("spec.privateKey.size"));
    assert_eq!(
        errors(&minimal("privateKey: {size: 1024}")),
        ["spec.privateKey.size: RSA keys must be between 2048 and 8192 bits, got 1024"]
    );
    assert_eq!(
        errors(&minimal(
            "privateKey: {algorithm: ECDSA}\nsignatureAlgorithm: SHA256WithRSA"
        )),
        [
            "spec.signatureAlgorithm: SHA256WithRSA cannot be used with ECDSA keys; use one of ECDSAWithSHA256, ECDSAWithSHA384, ECDSAWithSHA512"
        ]
    );
}

#[test]
fn required_fields_and_names() {
    let yaml = "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {name: web}\nspec: {issuerRef: {kind: Issuer}}\n";
    assert_eq!(
        errors(yaml),
        [
            "spec.secretName: required",
            "spec.issuerRef.name: required",
            "spec: required: set one of commonName (or a CN in literalSubject), dnsNames, ipAddresses, uris, emailAddresses, otherNames",
        ]
    );
    // URIs are not validated (cert-manager's webhook checks none); one that cannot be written
    // as cert-manager writes it fails the Certificate when its job is built.
    let uris = certificate(&minimal("uris: [foo.bar, 'spiffe://a b']"));
    assert_eq!(
        uris.spec.uris().map_err(|e| e.to_string()),
        Err(
            "spec.uris[1]: invalid URI \"spiffe://a b\": must not contain spaces or control characters"
                .to_owned()
        )
    );
    let long_cn = format!("commonName: {}", "a".repeat(65));
    assert_eq!(
        errors(&minimal(&long_cn)),
        ["spec.commonName: must be at most 64 bytes long, got 65"]
    );
    assert_eq!(
        errors(&minimal(
            "ipAddresses: [10.0.0.1, 10.0.0.256, \"fe80::1%eth0\"]\nemailAddresses: [Ops <ops@example.com>]\nuris: [cluster.local/web, 'spiffe://a b']"
        )),
        [
            "spec.ipAddresses[1]: invalid IP address \"10.0.0.256\"",
            "spec.ipAddresses[2]: invalid IP address \"fe80::1%eth0\"",
            "spec.emailAddresses[0]: invalid email address \"Ops <ops@example.com>\": invalid character",
        ]
    );
    assert_eq!(
        errors(&with_spec("commonName: web").replace("secretName: web-tls", "secretName: Web_TLS")),
        [
            "spec.secretName: invalid name \"Web_TLS\": must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
        ]
    );
}

#[test]
fn issuer_ref_kind() {
    assert_eq!(
        errors(&issuer_ref("{name: x, kind: VaultIssuer}")),
        [
            "spec.issuerRef.kind: must be Issuer or ClusterIssuer, got \"VaultIssuer\" (did you forget to set spec.issuerRef.group?)"
        ]
    );
    assert_eq!(
        errors(&issuer_ref(
            "{name: x, kind: VaultIssuer, group: cert-manager.io}"
        )),
        ["spec.issuerRef.kind: must be Issuer or ClusterIssuer, got \"VaultIssuer\""]
    );
    // An external issuer is valid for cert-manager; no certkeeper issuer key.
    let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(&issuer_ref(
        "{name: x, kind: AWSPCAIssuer, group: awspca.cert-manager.io}",
    ))
    .unwrap();
    let Ok(Resource::Certificate(external)) = parse_resource(&value) else {
        panic!("valid for cert-manager")
    };
    assert_eq!(external.issuer_key(), None);
}

#[test]
fn duration_rules() {
    assert_eq!(
        errors(&minimal("duration: 30m")),
        ["spec.duration: must be at least 1h0m0s, got 30m0s"]
    );
    assert_eq!(
        errors(&minimal("renewBefore: 4m")),
        ["spec.renewBefore: must be at least 5m0s, got 4m0s"]
    );
    assert_eq!(
        certificate(&minimal("duration: 1h\nrenewBefore: 5m")).duration(),
        Duration::from_secs(HOUR)
    );
    assert_eq!(
        errors(&minimal("duration: 24h\nrenewBefore: 24h")),
        ["spec.renewBefore: must be less than the certificate duration 24h0m0s, got 24h0m0s"]
    );
    assert_eq!(
        errors(&minimal("renewBefore: 720h\nrenewBeforePercentage: 30")),
        ["spec.renewBefore: cannot be set together with renewBeforePercentage"]
    );
    // cert-manager checks the percentage only when duration or renewBefore is set; alone, one
    // outside 1..=99 is accepted and ignored by the renewal time (2/3 of the lifetime).
    for p in [0, 100, -5] {
        assert_eq!(
            errors(&minimal(&format!("duration: 2160h\nrenewBeforePercentage: {p}"))),
            [format!(
                "spec.renewBeforePercentage: must be greater than 0 and less than 100, got {p}"
            )]
        );
        let alone = certificate(&minimal(&format!("renewBeforePercentage: {p}")));
        let lifetime = std::time::Duration::from_secs(90 * 24 * 3600);
        let not_before = std::time::UNIX_EPOCH;
        let at = |policy: &RenewalPolicy| {
            crate::schedule::renewal_time(not_before, not_before + lifetime, policy, "default/web")
        };
        assert_eq!(at(&alone.renewal_policy()), at(&RenewalPolicy::default()), "{p}");
    }
    // cert-manager's rule: duration * (100 - p) / 100 must be at least 5 minutes.
    assert_eq!(
        errors(&minimal("duration: 1h\nrenewBeforePercentage: 95")),
        [
            "spec.renewBeforePercentage: 95% of the duration 1h0m0s leaves 3m0s between issuance and renewal, less than the minimum 5m0s"
        ]
    );
    let ok = certificate(&minimal("duration: 48h\nrenewBeforePercentage: 25"));
    assert_eq!(
        ok.renewal_policy(),
        RenewalPolicy {
            renew_before: None,
            renew_before_percentage: Some(25),
            ..RenewalPolicy::default()
        }
    );
    assert_eq!(
        errors(&minimal("duration: 90d")),
        ["spec.duration: unknown unit \"d\" in duration \"90d\" (units: ns, us, ms, s, m, h)"]
    );
}

#[test]
fn outputs_keystores_and_templates() {
    assert_eq!(
        errors(&minimal(
            "additionalOutputFormats: [{type: DER}, {type: CombinedPEM}, {type: DER}]"
        )),
        ["spec.additionalOutputFormats[2].type: duplicate value \"DER\""]
    );
    assert_eq!(
        errors(&minimal(
            "keystores: {jks: {create: true, passwordSecretRef: {name: p, key: k}}, pkcs12: {create: true}}"
        )),
        ["spec.keystores.pkcs12: required: set one of passwordSecretRef, password"]
    );
    // keystores.jks: supported, with cert-manager's password rules (the same as PKCS#12's).
    assert_eq!(
        errors(&minimal("keystores: {jks: {create: true}}")),
        ["spec.keystores.jks: required: set one of passwordSecretRef, password"]
    );
    assert_eq!(
        errors(&minimal(
            "keystores: {jks: {create: true, password: s3cret, passwordSecretRef: {name: p, key: k}}}"
        )),
        ["spec.keystores.jks: set only one of passwordSecretRef, password"]
    );
    assert_eq!(
        errors(&minimal("keystores: {jks: {create: true, password: ''}}")),
        ["spec.keystores.jks.password: required"]
    );
    let jks = certificate(&minimal(
        "keystores: {jks: {create: true, alias: mykey, password: s3cret}}",
    ));
    let jks_spec = jks.spec.keystores.as_ref().and_then(|k| k.jks.as_ref()).unwrap();
    assert_eq!(jks_spec.alias.as_deref(), Some("mykey"));
    assert!(
        !format!("{jks:?}").contains("s3cret"),
        "the literal password must not be printed"
    );
    assert_eq!(
        errors(&minimal(
            "keystores: {pkcs12: {create: true, password: s3cret, passwordSecretRef: {name: p, key: k}}}"
        )),
        ["spec.keystores.pkcs12: set only one of passwordSecretRef, password"]
    );
    assert_eq!(
        errors(&minimal("keystores: {pkcs12: {create: true, password: ''}}")),
        ["spec.keystores.pkcs12.password: required"]
    );
    // No key is valid, as for cert-manager's webhook; the keystore fails when it is written
    // (certkeeper_engine::build::output_formats).
    let no_key = certificate(&minimal(
        "keystores: {pkcs12: {create: true, passwordSecretRef: {name: p}}}",
    ));
    let pkcs12 = no_key.spec.keystores.and_then(|k| k.pkcs12);
    assert_eq!(
        pkcs12
            .and_then(|p| p.password_secret_ref)
            .map(|r| r.explicit_key().is_none()),
        Some(true)
    );
    let literal = certificate(&minimal("keystores: {pkcs12: {create: true, password: s3cret}}"));
    let debug = format!("{literal:?}");
    assert!(
        !debug.contains("s3cret"),
        "the literal password must not be printed: {debug}"
    );
    assert_eq!(
        errors(&minimal(
            "secretTemplate:\n  annotations: {cert-manager.io/issuer-name: x}\n  labels: {team: 'a b'}"
        )),
        [
            "spec.secretTemplate.labels[team]: invalid name \"a b\": must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
            "spec.secretTemplate.annotations[cert-manager.io/issuer-name]: cert-manager.io/* annotations are not allowed (except cert-manager.io/allow-direct-injection)",
        ]
    );
    assert_eq!(
        errors(&minimal("revisionHistoryLimit: 0")),
        ["spec.revisionHistoryLimit: must be at least 1"]
    );
}

/// cert-manager's `validateCertificateRenewal` (its test cases), then certkeeper's own checks.
#[test]
fn renewal_policy_and_windows() {
    use crate::schedule::AutomaticRenewal;
    assert!(parse_documents("c.yaml", &minimal("renewal: {policy: RenewBefore}")).is_ok());
    let disabled = certificate(&minimal("renewal: {policy: Disabled}"));
    assert_eq!(disabled.renewal_policy().automatic, AutomaticRenewal::Disabled);
    let windowed = certificate(&minimal(
        "renewal:\n    policy: RenewBefore\n    windows:\n    - {cron: '0 12 * * *', windowDuration: 2h}\n    - {cron: '0 23 * * 1-5', windowDuration: 6h, timezone: America/Denver}",
    ));
    let AutomaticRenewal::RenewBefore(windows) = windowed.renewal_policy().automatic else {
        panic!("RenewBefore");
    };
    assert_eq!(windows.iter().count(), 2);
    assert_eq!(
        errors(&minimal("renewal: {}")),
        ["spec.renewal.policy: Unsupported value: \"\": supported values: Disabled, RenewBefore"]
    );
    assert_eq!(errors(&minimal("renewal: {policy: Sometimes}")).len(), 1);
    assert_eq!(
        errors(&minimal(
            "renewal: {policy: Disabled, windows: [{cron: '0 12 * * *', windowDuration: 2h}]}"
        )),
        ["spec.renewal.windows: windows cannot be set when `renewal.policy` is set to Disabled"]
    );
    assert_eq!(
        errors(&minimal(
            "renewal: {policy: RenewBefore, windows: [{cron: '0 12 * * *'}]}"
        )),
        ["spec.renewal.windows[0].windowDuration: required"]
    );
    let bad = errors(&minimal(
        "renewal: {policy: RenewBefore, windows: [{cron: 'CRON_TZ=UTC', windowDuration: 2h}, {cron: '0 0 * * *', timezone: Nowhere/Land, windowDuration: 1h}, {cron: '0 0 * * *', windowDuration: 0s}]}",
    ));
    assert_eq!(bad.len(), 3, "{bad:?}");
    assert!(
        bad[0].starts_with("spec.renewal.windows[0].cron: invalid cron syntax"),
        "{bad:?}"
    );
    assert!(
        bad[1].starts_with("spec.renewal.windows[1].timezone: invalid value for timezone"),
        "{bad:?}"
    );
    assert_eq!(
        bad[2],
        "spec.renewal.windows[2].windowDuration: windowDuration must be greater than 0"
    );
    // Beyond cert-manager: windows that cannot hold one renewal per certificate lifetime.
    let rare = errors(&minimal(
        "renewal: {policy: RenewBefore, windows: [{cron: '@yearly', windowDuration: 24h}]}",
    ));
    assert_eq!(rare.len(), 1);
    assert!(rare[0].starts_with("spec.renewal.windows: the renewal windows open at most once every 8760h0m0s, longer than the certificate duration 2160h0m0s"), "{rare:?}");
    let too_many = format!(
        "renewal: {{policy: RenewBefore, windows: [{}]}}",
        vec!["{cron: '@daily', windowDuration: 1h}"; 33].join(", ")
    );
    assert_eq!(
        errors(&minimal(&too_many)),
        ["spec.renewal.windows: must have at most 32 entries, got 33"]
    );
}

/// cert-manager's rules for literalSubject (its feature gate on), case by case from
/// `ValidateCertificateSpec` and its tests.
#[test]
fn literal_subject_follows_cert_managers_rules() {
    let c = certificate(&with_spec(
        "literalSubject: CN=web.example.com,OU=ldap,DC=example,DC=com",
    ));
    let literal = c.spec.literal_subject().unwrap().unwrap();
    assert_eq!(
        c.spec.common_name(Some(&literal)).as_deref(),
        Some("web.example.com")
    );
    // The CN from the literal subject satisfies "at least one name"; without one, SANs must.
    assert_eq!(
        errors(&with_spec("literalSubject: O=example")),
        [
            "spec: required: set one of commonName (or a CN in literalSubject), dnsNames, ipAddresses, uris, emailAddresses, otherNames"
        ]
    );
    assert!(parse_documents("c.yaml", &minimal("literalSubject: O=example")).is_ok());
    assert_eq!(
        errors(&minimal(
            "literalSubject: CN=a\ncommonName: a\nsubject: {organizations: [x]}"
        )),
        [
            "spec.commonName: cannot be set together with literalSubject",
            "spec.subject: cannot be set together with literalSubject",
        ]
    );
    // An empty subject object is no conflict (cert-manager checks the properties).
    assert!(parse_documents("c.yaml", &minimal("literalSubject: CN=a\nsubject: {}")).is_ok());
    assert_eq!(
        errors(&minimal("literalSubject: 'CN=a,cn=b,O=x'")),
        [
            "spec.literalSubject: unrecognized attribute type \"cn\" (value \"b\"): use C, O, OU, CN, SERIALNUMBER, L, ST, STREET, DC, UID or a dotted OID"
        ]
    );
    assert_eq!(
        errors(&minimal("literalSubject: 'CN=a,O'")),
        ["spec.literalSubject: DN ended with incomplete type, value pair"]
    );
    let long = format!("literalSubject: CN={}", "a".repeat(65));
    assert_eq!(
        errors(&with_spec(&long)),
        ["spec.commonName: must be at most 64 bytes long, got 65"]
    );
    // Accepted by the webhook; the CSR builder refuses invalid UTF-8 at issuance.
    assert!(parse_documents("c.yaml", &minimal("literalSubject: 'CN=\\ff'")).is_ok());
    let huge = format!("literalSubject: O={}", "a".repeat(MAX_NAME_VALUE_BYTES));
    assert_eq!(
        errors(&minimal(&huge)),
        [format!(
            "spec.literalSubject: must be at most {MAX_NAME_VALUE_BYTES} bytes long, got {}",
            MAX_NAME_VALUE_BYTES + 2
        )]
    );
}

#[test]
fn other_names_follow_cert_managers_rules() {
    let c = certificate(&with_spec(
        "otherNames: [{oid: 1.3.6.1.4.1.311.20.2.3, utf8Value: upn@example.com}]",
    ));
    let names = c.spec.other_names().unwrap();
    assert_eq!(
        (names[0].oid.to_string(), names[0].value.as_str()),
        ("1.3.6.1.4.1.311.20.2.3".into(), "upn@example.com")
    );
    assert_eq!(
        errors(&minimal(
            "otherNames: [{utf8Value: x}, {oid: 1.a, utf8Value: x}, {oid: '1.2'}]"
        )),
        [
            "spec.otherNames[0].oid: required",
            "spec.otherNames[0].oid: invalid OID syntax \"\": expected dot-separated integers such as 1.3.6.1.4.1.311.20.2.3",
            "spec.otherNames[1].oid: invalid OID syntax \"1.a\": expected dot-separated integers such as 1.3.6.1.4.1.311.20.2.3",
            "spec.otherNames[2].utf8Value: required",
        ]
    );
    // Syntax is the webhook's only rule; "5.1" fails when the CSR is built, as in cert-manager.
    assert!(parse_documents("c.yaml", &minimal("otherNames: [{oid: '5.1', utf8Value: x}]")).is_ok());
    let many: String = (0..=MAX_NAME_LIST_ENTRIES)
        .map(|_| "{oid: 1.2.3, utf8Value: x},")
        .collect();
    assert_eq!(
        errors(&minimal(&format!("otherNames: [{many}]"))),
        [format!(
            "spec.otherNames: must have at most {MAX_NAME_LIST_ENTRIES} entries, got {}",
            MAX_NAME_LIST_ENTRIES + 1
        )]
    );
}

#[test]
fn name_constraints_follow_cert_managers_rules() {
    let c = certificate(&minimal(
        "isCA: true\nnameConstraints: {critical: true, permitted: {dnsDomains: [example.com], ipRanges: [10.0.0.0/8]}, excluded: {emailAddresses: [x.example.com], uriDomains: [.bad.example.com]}}",
    ));
    let nc = c.spec.name_constraints().unwrap().unwrap();
    assert!(nc.critical);
    assert_eq!(nc.permitted.ip_ranges[0].to_string(), "10.0.0.0/8");
    assert_eq!(nc.excluded.uri_domains, [".bad.example.com"]);
    assert_eq!(
        errors(&minimal("nameConstraints: {}")),
        [
            "spec.nameConstraints: requires isCA: true",
            "spec.nameConstraints: required: set one of permitted, excluded",
        ]
    );
    assert_eq!(
        errors(&minimal(
            "isCA: true\nnameConstraints: {excluded: {ipRanges: [10.0.0.0/8, 10.0.0.1]}}"
        )),
        [
            "spec.nameConstraints.excluded.ipRanges[1]: invalid CIDR address \"10.0.0.1\": expected address/prefix-length such as 10.0.0.0/8 or 2001:db8::/32"
        ]
    );
    // An empty side passes, as in cert-manager (and then no extension is written).
    assert!(parse_documents("c.yaml", &minimal("isCA: true\nnameConstraints: {permitted: {}}")).is_ok());
    assert_eq!(
        errors(&minimal(
            "isCA: true\nnameConstraints: {permitted: {dnsDomain: [x]}}"
        )),
        ["spec.nameConstraints.permitted.dnsDomain: unknown field"]
    );
}

#[test]
fn type_errors_name_the_field() {
    assert_eq!(
        errors(&minimal("privateKey: {algorithm: rsa}")),
        ["spec.privateKey.algorithm: unknown variant `rsa`, expected one of `RSA`, `ECDSA`, `Ed25519`"]
    );
    assert_eq!(
        errors(&minimal("privateKey: {size: big}")),
        ["spec.privateKey.size: invalid type: string \"big\", expected u32"]
    );
    let usages = errors(&minimal("usages: [server auth, server-auth]"));
    assert_eq!(usages.len(), 1);
    assert!(
        usages[0].starts_with("spec.usages[1]: unknown variant `server-auth`, expected one of `signing`"),
        "{usages:?}"
    );
}

#[test]
fn is_ca_adds_cert_sign() {
    let ca = certificate(&minimal("isCA: true\nusages: [digital signature]"));
    assert_eq!(ca.usages(), [KeyUsage::DigitalSignature, KeyUsage::CertSign]);
    assert!(KeyUsage::ServerAuth.is_extended() && !KeyUsage::CertSign.is_extended());
}

#[test]
fn spec_round_trips_through_serde_with_cert_manager_names() {
    let original = certificate(&minimal(
        "isCA: true\nduration: 1.5h\nrenewBeforePercentage: 20\nprivateKey: {algorithm: ECDSA, size: 384, rotationPolicy: Never}\nadditionalOutputFormats: [{type: CombinedPEM}]\nencodeUsagesInRequest: false",
    ));
    let yaml = serde_yaml_ng::to_string(&original.spec).unwrap();
    for name in [
        "isCA: true",
        "duration: 1h30m0s",
        "renewBeforePercentage: 20",
        "rotationPolicy: Never",
        "type: CombinedPEM",
        "encodeUsagesInRequest: false",
    ] {
        assert!(yaml.contains(name), "{name} missing in\n{yaml}");
    }
    let back: CertificateSpec = serde_yaml_ng::from_str(&yaml).unwrap();
    assert_eq!(back, original.spec);
}

/// A PKCS#12 password reference is a Secret name and key like any other: one that would reach
/// outside the namespace (controller) or the Secret directory (standalone) is refused.
#[test]
fn hostile_keystore_password_references_are_refused() {
    assert_eq!(
        errors(&minimal(
            "keystores: {pkcs12: {create: true, passwordSecretRef: {name: ../../etc, key: passwd}}}"
        )),
        [
            "spec.keystores.pkcs12.passwordSecretRef.name: invalid name \"../../etc\": must consist of lower case \
          alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
        ]
    );
    assert_eq!(
        errors(&minimal(
            "keystores: {pkcs12: {create: true, passwordSecretRef: {name: p, key: /etc/shadow}}}"
        )),
        [
            "spec.keystores.pkcs12.passwordSecretRef.key: invalid Secret key \"/etc/shadow\": must consist of \
          alphanumeric characters, '-', '_' or '.'"
        ]
    );
}

/// cert-manager's "invalid due to too long 'CertificateSecretTemplate' annotations"
/// (certificate_test.go TestValidateCertificate): Kubernetes' 256 KiB limit on annotations.
#[test]
fn secret_template_annotations_are_bounded_as_kubernetes_bounds_them() {
    let at_limit = format!(
        "secretTemplate: {{annotations: {{app.com/a: '{}'}}}}",
        "0".repeat(256 * 1024 - 9)
    );
    certificate(&minimal(&at_limit));
    let over = format!(
        "secretTemplate: {{annotations: {{app.com/invalid: '{}'}}}}",
        "0".repeat(256 * 1024)
    );
    assert_eq!(
        errors(&minimal(&over)),
        ["spec.secretTemplate.annotations: must be at most 262144 bytes long, got 262159"]
    );
}
