//! The features added for cert-manager parity (issue 12), issued by the controller on a genuine
//! kube-apiserver (v1.20.2) through a real OpenBao, and read back by tools that share no code
//! with certkeeper (the standalone daemon's twins are `crates/certkeeper/tests/{keystores,names,
//! renewal}.rs`):
//! - `keystores.jks` (keytool), `keystores.pkcs12` in each profile (openssl), an RSA key of 3000
//!   bits (openssl);
//! - `otherNames`, `literalSubject` and `nameConstraints` (`openssl x509 -text`), through
//!   OpenBao's `sign` and `sign-verbatim`;
//! - `spec.renewal`: `Disabled` (issued, not renewed past its renewal point, re-issued on a spec
//!   change), a window that defers a renewal, and the latest safe point forcing a renewal that no
//!   window allows in time;
//! - adoption of a Secret certkeeper did not write: kept when cert-manager's annotations name the
//!   Certificate's issuer, issued afresh when they name another; with cert-manager's
//!   CertificateRequest of the served revision, kept when its CSR is the spec's, issued afresh
//!   when the spec's subject changed since.
//!
//! One kube-apiserver and one OpenBao for everything: the Certificates are created together and
//! checked while the renewal clocks run. Skipped (with a printed reason) only when the kube
//! binaries are not installed.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns unwrap too

mod common;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, ensure};
use base64::Engine;
use certkeeper_core::pki::{CsrRequest, PrivateKey, Subject, build_csr};
use certkeeper_core::time::parse_rfc3339_unix;
use certkeeper_testkit::{
    check_jks, check_pkcs12, keytool, line_after, name_constraint_lines, openssl, pbmac1_args, x509_text,
};
use common::{
    Api, CERTIFICATES, NS, SECRETS, condition, create_secret, create_token_issuer, create_vault_issuer,
    installed, leaf, ready, start_controller, start_kube_and_bao, wait_for,
};
use serde_json::{Value, json};

const PASSWORD: &str = "k3ystore-pass";
const LITERAL: &str = "literal-pass";
const SUBJECT: &str = "CN=ldap.example.com,UID=jdoe,OU=People,DC=example,DC=com";
/// OpenBao backdates notBefore by this much (`not_before_duration`).
const BACKDATE: u64 = 30;

fn cert_path(name: &str) -> String {
    format!("{CERTIFICATES}/{name}")
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A status time field as Unix seconds.
fn status_time(cert: &Value, field: &str) -> Result<u64> {
    let text = cert["status"][field]
        .as_str()
        .with_context(|| format!("no status.{field} in {}", cert["status"]))?;
    Ok(u64::try_from(parse_rfc3339_unix(text)?)?)
}

fn revision(cert: &Value) -> u64 {
    cert["status"]["revision"].as_u64().unwrap_or(0)
}

fn ready_message(cert: &Value) -> String {
    condition(cert, "Ready")
        .and_then(|c| c["message"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// Certificate `name` for Issuer `issuer` with `spec` (secretName `<name>-tls` added).
async fn create_certificate(api: &Api, name: &str, issuer: &str, mut spec: Value) -> Result<()> {
    spec["secretName"] = json!(format!("{name}-tls"));
    spec["issuerRef"] = json!({"name": issuer});
    api.create(
        CERTIFICATES,
        &json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
                "metadata": {"name": name, "namespace": NS}, "spec": spec}),
    )
    .await?;
    Ok(())
}

/// The plain spec of `<name>.example.com`: an ECDSA P-256 key and `extra` fields.
fn named(name: &str, extra: Value) -> Value {
    let mut spec = json!({"commonName": format!("{name}.example.com"),
                          "dnsNames": [format!("{name}.example.com")],
                          "privateKey": {"algorithm": "ECDSA", "size": 256}});
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    spec
}

/// Every data key of the Secret `<name>-tls` written as a file of `dir/<name>`, as a mounted
/// Secret shows them; returns that directory.
async fn secret_files(api: &Api, name: &str, dir: &Path) -> Result<std::path::PathBuf> {
    let secret = api
        .get(&format!("/api/v1/namespaces/{NS}/secrets/{name}-tls"))
        .await?
        .with_context(|| format!("Secret {name}-tls"))?;
    let out = dir.join(name);
    std::fs::create_dir_all(&out)?;
    for (key, value) in secret["data"].as_object().context("Secret data")? {
        let bytes = base64::engine::general_purpose::STANDARD.decode(value.as_str().unwrap_or_default())?;
        std::fs::write(out.join(key), bytes)?;
    }
    Ok(out)
}

/// Waits (at most `bound`) until Certificate `name` is Ready at a revision above `above`.
async fn wait_revision(api: &Api, name: &str, above: u64, bound: Duration) -> Result<Value> {
    let path = cert_path(name);
    wait_for(&format!("{name} Ready above revision {above}"), bound, || async {
        Ok(api.get(&path).await?.filter(|c| ready(c) && revision(c) > above))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parity_features_issued_and_read_back() -> Result<()> {
    if !installed() {
        return Ok(());
    }
    let started = Instant::now();
    let (kube, bao, pki) = start_kube_and_bao().await?;
    let admin = bao.admin();
    // The signing role allows the UPN otherName and the UID of the literal subject; role `short`
    // caps every certificate at 3 minutes (the forced-renewal case); the token may use both, and
    // sign-verbatim with the first.
    pki.set_role(
        &pki.role,
        json!({"allowed_other_sans": ["1.3.6.1.4.1.311.20.2.3;UTF8:*@example.com"],
               "allowed_user_ids": ["jdoe"]}),
    )
    .await?;
    pki.set_role("short", json!({"max_ttl": "3m"})).await?;
    let (int, role) = (&pki.int_mount, &pki.role);
    let verbatim_path = format!("{int}/sign-verbatim/{role}");
    let short_path = pki.sign_path_for("short");
    let hcl: String = [pki.sign_path.as_str(), &verbatim_path, &short_path]
        .iter()
        .map(|p| format!("path \"{p}\" {{ capabilities = [\"create\", \"update\"] }}\n"))
        .collect();
    admin.put_policy(&pki.policy, &hcl).await?;
    let token = admin.create_token(&[&pki.policy], "1h", true, 0).await?;
    let api = Api::new(&kube)?;
    let addr = bao.addr();
    create_token_issuer(&api, &addr, &pki.sign_path, &token).await?;
    let auth = json!({"tokenSecretRef": {"name": "vault-token", "key": "token"}});
    create_vault_issuer(&api, "verbatim", &addr, &verbatim_path, auth.clone()).await?;
    create_vault_issuer(&api, "short", &addr, &short_path, auth).await?;
    create_secret(&api, "ks", "password", PASSWORD).await?;
    let (stop_tx, controller) = start_controller(&kube, None);

    // The keystores and key sizes.
    let ks = json!({"name": "ks", "key": "password"});
    let keystore_specs = [
        (
            "rsa",
            json!({"privateKey": {"algorithm": "RSA", "size": 3000},
                   "keystores": {"jks": {"create": true, "alias": "MyKey", "passwordSecretRef": ks},
                                 "pkcs12": {"create": true, "profile": "LegacyRC2", "passwordSecretRef": ks}}}),
        ),
        (
            "des",
            json!({"keystores": {"pkcs12": {"create": true, "profile": "LegacyDES", "password": LITERAL}}}),
        ),
        (
            "m23",
            json!({"keystores": {"pkcs12": {"create": true, "profile": "Modern2023", "passwordSecretRef": ks}}}),
        ),
        (
            "m26",
            json!({"privateKey": {"algorithm": "ECDSA", "size": 384},
                   "keystores": {"jks": {"create": true, "password": LITERAL},
                                 "pkcs12": {"create": true, "profile": "Modern2026", "password": LITERAL}}}),
        ),
    ];
    for (name, extra) in &keystore_specs {
        create_certificate(&api, name, "vault", named(name, extra.clone())).await?;
    }
    // The names: the same literal subject and otherName through sign and sign-verbatim.
    let names = json!({"literalSubject": SUBJECT, "dnsNames": ["ldap.example.com"],
                       "privateKey": {"algorithm": "ECDSA", "size": 256},
                       "otherNames": [{"oid": "1.3.6.1.4.1.311.20.2.3", "utf8Value": "jdoe@example.com"}]});
    create_certificate(&api, "sign", "vault", names.clone()).await?;
    let mut verbatim = names;
    verbatim["isCA"] = json!(true);
    verbatim["nameConstraints"] = json!({"critical": true,
        "permitted": {"dnsDomains": [".example.com"], "ipRanges": ["10.0.0.0/8"]},
        "excluded": {"emailAddresses": ["bad.example.com"], "uriDomains": [".bad.example.com"]}});
    create_certificate(&api, "verbatim-ca", "verbatim", verbatim).await?;
    // spec.renewal. Each is 1h with renewBefore 59m: the renewal point is ~1 minute after issue.
    // `window`'s hourly window opens at a whole minute at least 150 s from now, after that
    // point; `forced` (3-minute certificates) has a window that opens only in ~30 minutes, after
    // every latest safe point of this test.
    let window_open = (now_unix() + 150).div_ceil(60) * 60;
    let forced_minute = (now_unix() + 1800) / 60 % 60;
    let hourly = |at: u64| json!([{"cron": format!("{} * * * *", at / 60 % 60), "windowDuration": "1m"}]);
    let short = json!({"duration": "1h", "renewBefore": "59m"});
    let with = |renewal: Value| {
        let mut extra = short.clone();
        extra["renewal"] = renewal;
        extra
    };
    create_certificate(
        &api,
        "disabled",
        "vault",
        named("disabled", with(json!({"policy": "Disabled"}))),
    )
    .await?;
    create_certificate(
        &api,
        "window",
        "vault",
        named(
            "window",
            with(json!({"policy": "RenewBefore", "windows": hourly(window_open)})),
        ),
    )
    .await?;
    create_certificate(
        &api,
        "forced",
        "short",
        named(
            "forced",
            with(json!({"policy": "RenewBefore", "windows": hourly(forced_minute * 60)})),
        ),
    )
    .await?;
    let created = Instant::now();

    let all = [
        "rsa",
        "des",
        "m23",
        "m26",
        "sign",
        "verbatim-ca",
        "disabled",
        "window",
        "forced",
    ];
    for name in all {
        wait_revision(&api, name, 0, Duration::from_secs(180)).await?;
    }
    eprintln!(
        "{} Certificates (one RSA-3000) Ready {:?} after creation ({:?} with the servers' start)",
        all.len(),
        created.elapsed(),
        started.elapsed()
    );

    // The window case's first revision, read before its window opens.
    let window = api.get(&cert_path("window")).await?.context("window")?;

    // Keystores and key sizes, from the Secrets' data as a pod mounts it.
    let files = tempfile::tempdir()?;
    let dir = |name: &'static str| secret_files(&api, name, files.path());
    let rsa = dir("rsa").await?;
    let key = std::fs::read(rsa.join("tls.key"))?;
    ensure!(openssl(&["rsa", "-check", "-noout"], &key)?.trim() == "RSA key ok");
    let text = openssl(&["pkey", "-noout", "-text"], &key)?;
    ensure!(text.contains("Private-Key: (3000 bit, 2 primes)"), "{text}");
    check_pkcs12(
        &rsa,
        PASSWORD,
        &["-legacy"],
        &[
            "MAC: sha1, Iteration 1",
            "PKCS7 Encrypted data: pbeWithSHA1And40BitRC2-CBC, Iteration 2048",
            "Shrouded Keybag: pbeWithSHA1And3-KeyTripleDES-CBC, Iteration 2048",
        ],
    )?;
    check_pkcs12(
        &dir("des").await?,
        LITERAL,
        &[],
        &[
            "MAC: sha1, Iteration 1",
            "PKCS7 Encrypted data: pbeWithSHA1And3-KeyTripleDES-CBC, Iteration 2048",
        ],
    )?;
    let pbes2 = "Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC, Iteration 2048, PRF hmacWithSHA256";
    check_pkcs12(
        &dir("m23").await?,
        PASSWORD,
        &[],
        &["MAC: sha256, Iteration 2048", pbes2],
    )?;
    let m26 = dir("m26").await?;
    check_pkcs12(&m26, LITERAL, pbmac1_args()?, &[pbes2])?;
    match keytool()? {
        Some(keytool) => {
            check_jks(&keytool, &rsa, PASSWORD, "mykey")?;
            check_jks(&keytool, &m26, LITERAL, "certificate")?;
        }
        None => eprintln!(
            "SKIPPED the JKS read-back: no keytool on PATH and CERTKEEPER_KEYTOOL unset (scripts/test installs a JDK and sets it)"
        ),
    }
    for name in ["des", "m23"] {
        ensure!(
            !dir(name).await?.join("keystore.jks").exists(),
            "{name}: no JKS asked for"
        );
    }

    // Adoption, cert-manager's rule: m23's pair copied into Secrets as cert-manager leaves them
    // (no certkeeper.io/spec-hash) for Certificates of the same key. `keep` (same names, its
    // issuer in the annotations) and `cn-only` (no dnsNames; the certificate has its common name
    // among the DNS SANs too, which cert-manager's rule accepts) are adopted with the same
    // serial; `moved`, whose Secret was issued by another
    // issuer, is issued afresh, as cert-manager would.
    let m23 = api
        .get(&format!("/api/v1/namespaces/{NS}/secrets/m23-tls"))
        .await?
        .context("m23-tls")?;
    let mut cn_only = named("m23", json!({}));
    cn_only["dnsNames"] = json!([]);
    let adoptions = [
        ("keep", "vault", named("m23", json!({})), true),
        ("cn-only", "vault", cn_only, true),
        ("moved", "other", named("m23", json!({})), false),
    ];
    for (name, issuer, spec, _) in &adoptions {
        let data = &m23["data"];
        api.create(
            SECRETS,
            &json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                    "metadata": {"name": format!("{name}-tls"), "namespace": NS,
                                 "labels": {"controller.cert-manager.io/fao": "true"},
                                 "annotations": {"cert-manager.io/certificate-name": name,
                                                 "cert-manager.io/issuer-name": issuer,
                                                 "cert-manager.io/issuer-kind": "Issuer",
                                                 "cert-manager.io/issuer-group": "cert-manager.io"}},
                    "data": {"tls.crt": data["tls.crt"], "tls.key": data["tls.key"], "ca.crt": data["ca.crt"]}}),
        )
        .await?;
        create_certificate(&api, name, "vault", spec.clone()).await?;
    }
    let serial = |secret: &Value| leaf(&common::decode(secret, "tls.crt")).0;
    let m23_serial = serial(&m23);
    for (name, _, _, adopted) in adoptions {
        api.wait_until(&format!("{name} Ready"), &cert_path(name), ready)
            .await?;
        let secret = api
            .get(&format!("/api/v1/namespaces/{NS}/secrets/{name}-tls"))
            .await?
            .context("the Secret")?;
        ensure!(
            (serial(&secret) == m23_serial) == adopted,
            "{name}: adopted {adopted} expected, serial {} (m23's {m23_serial})",
            serial(&secret)
        );
    }

    // Names (what OpenBao keeps: see crates/certkeeper/tests/names.rs). sign/<role> copies the
    // otherName and rebuilds the subject from the CN and the allowed UID.
    let text = x509_text(&dir("sign").await?)?;
    let sans = "othername: UPN::jdoe@example.com, DNS:ldap.example.com";
    ensure!(
        line_after(&text, "X509v3 Subject Alternative Name")? == sans,
        "{text}"
    );
    ensure!(text.contains("Subject: UID=jdoe,CN=ldap.example.com\n"), "{text}");
    ensure!(!text.contains("Name Constraints"), "{text}");
    // sign-verbatim keeps the subject, SANs and name constraints (and drops basicConstraints).
    let text = x509_text(&dir("verbatim-ca").await?)?;
    ensure!(text.contains(&format!("Subject: {SUBJECT}\n")), "{text}");
    ensure!(
        line_after(&text, "X509v3 Subject Alternative Name")? == sans,
        "{text}"
    );
    ensure!(
        name_constraint_lines(&text, 6)
            == [
                "Permitted:",
                "DNS:.example.com",
                "IP:10.0.0.0/255.0.0.0",
                "Excluded:",
                "email:bad.example.com",
                "URI:.bad.example.com",
            ],
        "{text}"
    );
    ensure!(!text.contains("CA:TRUE"), "{text}");
    eprintln!("keystores and names read back at {:?}", created.elapsed());

    // Disabled: no renewal time, the reason in Ready; not renewed past its renewal point
    // (notBefore + 60 s); a spec change still re-issues.
    let disabled = api.get(&cert_path("disabled")).await?.context("disabled")?;
    ensure!(
        disabled["status"]["renewalTime"].is_null(),
        "{}",
        disabled["status"]
    );
    ensure!(
        ready_message(&disabled).contains("automatic renewal is disabled"),
        "{}",
        disabled["status"]
    );
    let past_point = status_time(&disabled, "notBefore")? + 60 + 20;
    while now_unix() < past_point {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let disabled = api.get(&cert_path("disabled")).await?.context("disabled")?;
    ensure!(
        revision(&disabled) == 1,
        "renewed although Disabled: {}",
        disabled["status"]
    );
    api.patch(
        &cert_path("disabled"),
        &json!({"spec": {"dnsNames": ["disabled.example.com", "more.example.com"]}}),
    )
    .await?;
    let changed = wait_revision(&api, "disabled", 1, Duration::from_secs(60)).await?;
    ensure!(revision(&changed) == 2 && changed["status"]["renewalTime"].is_null());
    let text = x509_text(&dir("disabled").await?)?;
    ensure!(text.contains("DNS:more.example.com"), "{text}");

    // The safe point: no window before it, so the renewal starts there, saying why.
    let forced = api.get(&cert_path("forced")).await?.context("forced")?;
    let message = ready_message(&forced);
    ensure!(message.contains("outside the renewal windows"), "{message}");
    let safe_point = status_time(&forced, "renewalTime")?;
    let not_after = status_time(&forced, "notAfter")?;
    ensure!(safe_point < not_after, "{}", forced["status"]);
    let bound = Duration::from_secs((not_after + 60).saturating_sub(now_unix()));
    let renewed = wait_revision(&api, "forced", revision(&forced), bound).await?;
    let issued_at = status_time(&renewed, "notBefore")? + BACKDATE;
    ensure!(
        issued_at + 1 >= safe_point && issued_at <= not_after,
        "renewed at {issued_at}, safe point {safe_point}, notAfter {not_after}"
    );
    ensure!(
        ready_message(&renewed).contains("outside the renewal windows"),
        "{}",
        renewed["status"]
    );

    // The window: the renewal time is moved into the window (spread over its first minute),
    // and the renewal happens there, not at the renewal point.
    let renewal = status_time(&window, "renewalTime")?;
    ensure!(
        (window_open..window_open + 60).contains(&renewal),
        "renewal time {renewal} outside the window opening at {window_open}: {}",
        window["status"]
    );
    ensure!(
        status_time(&window, "notBefore")? + BACKDATE + 60 < window_open,
        "issued too late for the test: {}",
        window["status"]
    );
    let bound = Duration::from_secs((window_open + 180).saturating_sub(now_unix()));
    let renewed = wait_revision(&api, "window", 1, bound).await?;
    let issued_at = status_time(&renewed, "notBefore")? + BACKDATE;
    ensure!(
        issued_at + 1 >= renewal,
        "renewed at {issued_at}, before the window's time {renewal}"
    );
    eprintln!(
        "window: renewal waited {} s past the renewal point",
        renewal.saturating_sub(status_time(&window, "notBefore")? + 60)
    );
    eprintln!("renewal cases done {:?} after creation", created.elapsed());

    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(30), controller).await???;

    // Adoption with cert-manager's CertificateRequest of the served revision, as a migration
    // finds it (the controller stopped meanwhile): the request's CSR and fields are compared
    // with the spec. `req-keep`'s spec is what its request asked for (adopted); `req-moved`'s
    // subject changed since (issued afresh: cert-manager's RequestChanged).
    let m23_key = PrivateKey::from_pem(&common::decode(&m23, "tls.key"))?;
    let acme = CsrRequest {
        common_name: Some("m23.example.com".into()),
        dns_names: vec!["m23.example.com".into()],
        subject: Subject {
            organizations: vec!["Acme".into()],
            ..Subject::default()
        },
        ..CsrRequest::default()
    };
    let csr = base64::engine::general_purpose::STANDARD.encode(build_csr(&acme, &m23_key)?);
    for (name, organization) in [("req-keep", "Acme"), ("req-moved", "NewCo")] {
        let mut spec = named("m23", json!({"subject": {"organizations": [organization]}}));
        spec["secretName"] = json!(format!("{name}-tls"));
        spec["issuerRef"] = json!({"name": "vault"});
        let cert = api
            .create(
                CERTIFICATES,
                &json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
                        "metadata": {"name": name, "namespace": NS}, "spec": spec}),
            )
            .await?;
        api.patch(
            &format!("{}/status", cert_path(name)),
            &json!({"status": {"revision": 1}}),
        )
        .await?;
        api.create(
            "/apis/cert-manager.io/v1/namespaces/apps/certificaterequests",
            &json!({"apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest",
                    "metadata": {"name": format!("{name}-x7k2p"), "namespace": NS,
                                 "annotations": {"cert-manager.io/certificate-name": name,
                                                 "cert-manager.io/certificate-revision": "1"},
                                 "ownerReferences": [{"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
                                                      "name": name, "uid": cert["metadata"]["uid"],
                                                      "controller": true}]},
                    "spec": {"request": csr, "issuerRef": {"name": "vault", "kind": "Issuer",
                                                            "group": "cert-manager.io"}}}),
        )
        .await?;
        let data = &m23["data"];
        api.create(
            SECRETS,
            &json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                    "metadata": {"name": format!("{name}-tls"), "namespace": NS,
                                 "labels": {"controller.cert-manager.io/fao": "true"},
                                 "annotations": {"cert-manager.io/certificate-name": name,
                                                 "cert-manager.io/issuer-name": "vault",
                                                 "cert-manager.io/issuer-kind": "Issuer"}},
                    "data": {"tls.crt": data["tls.crt"], "tls.key": data["tls.key"], "ca.crt": data["ca.crt"]}}),
        )
        .await?;
    }
    let (stop_tx, controller) = start_controller(&kube, None);
    for (name, adopted) in [("req-keep", true), ("req-moved", false)] {
        let path = format!("/api/v1/namespaces/{NS}/secrets/{name}-tls");
        let secret = wait_for(&format!("{name} settled"), Duration::from_secs(60), || async {
            let ready = api.get(&cert_path(name)).await?.is_some_and(|c| ready(&c));
            let secret = api.get(&path).await?;
            Ok(secret.filter(|s| ready && (serial(s) == m23_serial) == adopted))
        })
        .await?;
        eprintln!("{name}: adopted {adopted}, serial {}", serial(&secret));
    }
    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(30), controller).await???;
    Ok(())
}
