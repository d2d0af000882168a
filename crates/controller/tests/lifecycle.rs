//! The controller end to end against a genuine kube-apiserver (v1.20.2, certkeeper-testkit) with
//! certkeeper's CRDs and a real OpenBao dev server with a PKI: Certificate -> Ready Secret with a
//! matching key, status, a CertificateRequest and Events; a spec change re-issues with the new
//! SAN; renewal; a bad token and a missing Secret show in status with the next attempt; the
//! Secret appearing recovers without a restart; old CertificateRequests are pruned.
//! Skipped (with a printed reason) only when the kube binaries are not installed.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns unwrap too

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine;
use certkeeper_controller::{ControllerConfig, KubeConfig, TokenSource};
use certkeeper_core::Secret;
use certkeeper_core::pki::PrivateKey;
use certkeeper_testkit::{DevServer, KubeApiServer, PkiOptions, free_port, kube_bin_dir};
use reqwest::Method;
use serde_json::{Value, json};

const BOUND: Duration = Duration::from_secs(60);
const NS: &str = "apps";

fn installed() -> bool {
    match kube_bin_dir() {
        Ok(_) => true,
        Err(e) => {
            eprintln!("SKIPPED: {e:#}");
            false
        }
    }
}

/// An admin client of the apiserver.
struct Api<'a> {
    kube: &'a KubeApiServer,
    client: reqwest::Client,
}

impl<'a> Api<'a> {
    fn new(kube: &'a KubeApiServer) -> Result<Self> {
        let ca = reqwest::Certificate::from_pem(kube.ca_pem().as_bytes())?;
        let client = reqwest::Client::builder()
            .no_proxy()
            .tls_certs_only([ca])
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self { kube, client })
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value)> {
        let url = format!("{}{path}", self.kube.url());
        let mut request = self
            .client
            .request(method.clone(), &url)
            .bearer_auth(self.kube.admin_token())
            .header("Accept", "application/json");
        if let Some(body) = body {
            request = request
                .header("Content-Type", content_type)
                .body(serde_json::to_vec(body)?);
        }
        let response = request.send().await.with_context(|| format!("{method} {path}"))?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
    }

    async fn get(&self, path: &str) -> Result<Option<Value>> {
        match self.call(Method::GET, path, "", None).await? {
            (200, v) => Ok(Some(v)),
            (404, _) => Ok(None),
            (s, v) => bail!("GET {path} -> {s}: {v}"),
        }
    }

    /// POST; a 404 right after a CRD became Established is retried.
    async fn create(&self, path: &str, body: &Value) -> Result<Value> {
        let deadline = Instant::now() + BOUND;
        loop {
            match self
                .call(Method::POST, path, "application/json", Some(body))
                .await?
            {
                (201, v) => return Ok(v),
                (404, _) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
                (s, v) => bail!("POST {path} -> {s}: {v}"),
            }
        }
    }

    async fn patch(&self, path: &str, body: &Value) -> Result<Value> {
        match self
            .call(Method::PATCH, path, "application/merge-patch+json", Some(body))
            .await?
        {
            (200, v) => Ok(v),
            (s, v) => bail!("PATCH {path} -> {s}: {v}"),
        }
    }
}

async fn apply_crds(api: &Api<'_>) -> Result<()> {
    let path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
    let mut names = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(&certkeeper_crds::all_yaml()) {
        let crd: Value = serde::Deserialize::deserialize(document)?;
        names.push(crd["metadata"]["name"].as_str().unwrap().to_owned());
        api.create(path, &crd).await?;
    }
    let deadline = Instant::now() + BOUND;
    for name in names {
        loop {
            let crd = api.get(&format!("{path}/{name}")).await?.unwrap_or_default();
            let established = crd["status"]["conditions"].as_array().is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Established" && c["status"] == "True")
            });
            if established {
                break;
            }
            if Instant::now() > deadline {
                bail!("{name} not Established");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// Polls `probe` every 200 ms until it returns `Some`, at most `bound`.
async fn wait_for<T, F, Fut>(what: &str, bound: Duration, mut probe: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + bound;
    loop {
        if let Some(v) = probe().await? {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out after {bound:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn secret_body(name: &str, key: &str, value: &str) -> Value {
    let b64 = base64::engine::general_purpose::STANDARD.encode(value);
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": NS},
           "type": "Opaque", "data": {key: b64}})
}

fn decode(secret: &Value, key: &str) -> String {
    let b64 = secret["data"][key].as_str().unwrap_or_default();
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b64).unwrap()).unwrap()
}

/// (serial, DNS SANs, public key DER) of the first certificate of a PEM bundle.
fn leaf(pem: &str) -> (String, Vec<String>, Vec<u8>) {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    let cert = block.parse_x509().unwrap();
    let mut sans = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for name in &ext.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(d) = name {
                sans.push((*d).to_owned());
            }
        }
    }
    (cert.raw_serial_as_string(), sans, cert.public_key().raw.to_vec())
}

fn condition<'v>(object: &'v Value, kind: &str) -> Option<&'v Value> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

fn ready(object: &Value) -> bool {
    condition(object, "Ready").is_some_and(|c| c["status"] == "True")
}

const CERT_PATH: &str = "/apis/cert-manager.io/v1/namespaces/apps/certificates/web";
const ISSUER_PATH: &str = "/apis/cert-manager.io/v1/namespaces/apps/issuers/vault";
const SECRET_PATH: &str = "/api/v1/namespaces/apps/secrets/web-tls";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_lifecycle() -> Result<()> {
    if !installed() {
        return Ok(());
    }
    let (kube, bao) = tokio::join!(KubeApiServer::start(), DevServer::start());
    let (kube, bao) = (kube?, bao?);
    let admin = bao.admin();
    let pki = admin.setup_pki(PkiOptions::default()).await?;
    let token = admin.create_token(&[&pki.policy], "1h", true, 0).await?;
    let api = Api::new(&kube)?;
    apply_crds(&api).await?;
    kube.create_namespace(NS).await?;
    api.create(
        "/api/v1/namespaces/apps/secrets",
        &secret_body("vault-token", "token", &token),
    )
    .await?;
    api.create(
        "/apis/cert-manager.io/v1/namespaces/apps/issuers",
        &json!({"apiVersion": "cert-manager.io/v1", "kind": "Issuer",
                "metadata": {"name": "vault", "namespace": NS},
                "spec": {"vault": {"server": bao.addr(), "path": pki.sign_path,
                                   "auth": {"tokenSecretRef": {"name": "vault-token", "key": "token"}}}}}),
    )
    .await?;

    // The controller, in this process, with the admin token.
    let port = free_port();
    let mut config = ControllerConfig::new(KubeConfig::explicit(
        kube.url(),
        TokenSource::Value(Secret::new(kube.admin_token())),
        Some(kube.ca_pem().to_owned()),
    ));
    config.listen = Some(format!("127.0.0.1:{port}").parse()?);
    config.secret_resync = Duration::from_secs(1);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let controller = tokio::spawn(certkeeper_controller::run(config, async {
        let _ = stop_rx.await;
    }));

    // 1. Certificate -> Ready Secret, status, CertificateRequest, Event.
    let created = Instant::now();
    api.create(
        "/apis/cert-manager.io/v1/namespaces/apps/certificates",
        &json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
                "metadata": {"name": "web", "namespace": NS},
                "spec": {"secretName": "web-tls", "commonName": "web.example.com",
                         "dnsNames": ["web.example.com"], "duration": "1h", "renewBefore": "59m",
                         "revisionHistoryLimit": 2,
                         "privateKey": {"algorithm": "ECDSA", "size": 256},
                         "secretTemplate": {"labels": {"app": "web"}, "annotations": {"team": "platform"}},
                         "additionalOutputFormats": [{"type": "CombinedPEM"}],
                         "issuerRef": {"name": "vault", "kind": "Issuer"}}}),
    )
    .await?;
    let cert = wait_for("Certificate Ready", BOUND, || async {
        Ok(api.get(CERT_PATH).await?.filter(ready))
    })
    .await?;
    let to_ready = created.elapsed();
    let secret = api.get(SECRET_PATH).await?.context("target Secret")?;
    let to_secret = created.elapsed();
    eprintln!("Certificate created -> Ready status {to_ready:?}, Secret read back at {to_secret:?}");
    let status = &cert["status"];
    assert_eq!(status["revision"], 1, "{status}");
    for field in ["notBefore", "notAfter", "renewalTime"] {
        assert!(status[field].is_string(), "{field} in {status}");
    }
    assert!(status["certkeeper"].is_null(), "{status}");
    assert_eq!(secret["type"], "kubernetes.io/tls");
    let (serial1, sans, spki) = leaf(&decode(&secret, "tls.crt"));
    assert_eq!(sans, ["web.example.com"]);
    let key = PrivateKey::from_pem(&decode(&secret, "tls.key"))?;
    assert!(key.matches_public_key(&spki), "tls.key matches tls.crt");
    assert!(decode(&secret, "ca.crt").contains("BEGIN CERTIFICATE"));
    assert!(decode(&secret, "tls-combined.pem").contains("PRIVATE KEY"));
    let annotations = &secret["metadata"]["annotations"];
    assert_eq!(annotations["cert-manager.io/certificate-name"], "web");
    assert_eq!(annotations["cert-manager.io/issuer-name"], "vault");
    assert_eq!(annotations["cert-manager.io/issuer-kind"], "Issuer");
    assert_eq!(annotations["cert-manager.io/common-name"], "web.example.com");
    assert_eq!(annotations["cert-manager.io/alt-names"], "web.example.com");
    assert_eq!(annotations["team"], "platform");
    assert_eq!(secret["metadata"]["labels"]["app"], "web");
    let cr = api
        .get("/apis/cert-manager.io/v1/namespaces/apps/certificaterequests/web-1")
        .await?
        .context("CertificateRequest web-1")?;
    assert_eq!(
        cr["metadata"]["annotations"]["cert-manager.io/certificate-revision"],
        "1"
    );
    assert_eq!(
        cr["metadata"]["annotations"]["cert-manager.io/certificate-name"],
        "web"
    );
    assert!(
        ready(&cr) && condition(&cr, "Approved").is_some_and(|c| c["status"] == "True"),
        "{cr}"
    );
    assert!(cr["status"]["certificate"].is_string());
    let issuer = wait_for("Issuer Ready", BOUND, || async {
        Ok(api.get(ISSUER_PATH).await?.filter(ready))
    })
    .await?;
    assert_eq!(condition(&issuer, "Ready").unwrap()["reason"], "VaultVerified");
    wait_for("an Issued Event", BOUND, || async {
        let events = api
            .get("/api/v1/namespaces/apps/events")
            .await?
            .unwrap_or_default();
        Ok(events["items"]
            .as_array()
            .and_then(|items| items.iter().find(|e| e["reason"] == "Issued").cloned()))
    })
    .await?;
    let metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await?
        .text()
        .await?;
    assert!(
        metrics.contains("certmanager_certificate_expiration_timestamp_seconds{"),
        "{metrics}"
    );

    // 2. A spec change re-issues with the new SAN.
    let before = api.get(CERT_PATH).await?.unwrap()["status"]["revision"]
        .as_u64()
        .unwrap();
    api.patch(
        CERT_PATH,
        &json!({"spec": {"dnsNames": ["web.example.com", "extra.example.com"]}}),
    )
    .await?;
    let secret = wait_for("the new SAN in the Secret", BOUND, || async {
        let s = api.get(SECRET_PATH).await?.unwrap();
        Ok(leaf(&decode(&s, "tls.crt"))
            .1
            .contains(&"extra.example.com".to_owned())
            .then_some(s))
    })
    .await?;
    let cert = wait_for("revision after the spec change", BOUND, || async {
        Ok(api
            .get(CERT_PATH)
            .await?
            .filter(|c| ready(c) && c["status"]["revision"].as_u64() > Some(before)))
    })
    .await?;
    let (serial2, _, spki) = leaf(&decode(&secret, "tls.crt"));
    assert_ne!(serial1, serial2);
    assert!(PrivateKey::from_pem(&decode(&secret, "tls.key"))?.matches_public_key(&spki));
    eprintln!("spec change -> revision {}", cert["status"]["revision"]);

    // 3. Renewal (renewBefore 59m of 1h, notBefore backdated 30 s by Vault): a new revision
    // without any change.
    let rev = cert["status"]["revision"].as_u64().unwrap();
    let renewed = wait_for("a renewal", Duration::from_secs(120), || async {
        Ok(api
            .get(CERT_PATH)
            .await?
            .filter(|c| ready(c) && c["status"]["revision"].as_u64() > Some(rev)))
    })
    .await?;
    eprintln!("renewed -> revision {}", renewed["status"]["revision"]);

    // 4. A bad token: the failure and the next attempt show in status, the issuer is not Ready.
    api.create(
        "/api/v1/namespaces/apps/secrets",
        &secret_body("bad-token", "token", "s.not-a-real-token"),
    )
    .await?;
    api.patch(
        ISSUER_PATH,
        &json!({"spec": {"vault": {"auth": {"tokenSecretRef": {"name": "bad-token"}}}}}),
    )
    .await?;
    let failing = wait_for("a failure with a next attempt", BOUND, || async {
        Ok(api.get(CERT_PATH).await?.filter(|c| {
            c["status"]["certkeeper"]["nextAttemptTime"].is_string()
                && c["status"]["certkeeper"]["failureClass"] != "invalid"
        }))
    })
    .await?;
    let status = &failing["status"];
    eprintln!("bad token -> {}", status["certkeeper"]);
    assert!(status["lastFailureTime"].is_string() && status["failedIssuanceAttempts"].as_u64() >= Some(1));
    let issuing = condition(&failing, "Issuing").context("Issuing condition")?;
    assert_eq!(
        (issuing["status"].as_str(), issuing["reason"].as_str()),
        (Some("False"), Some("Failed"))
    );
    wait_for("Issuer not Ready", BOUND, || async {
        Ok(api.get(ISSUER_PATH).await?.filter(|i| !ready(i)))
    })
    .await?;

    // 5. A missing Secret: class invalid, no timer (it waits for the Secret).
    api.patch(
        ISSUER_PATH,
        &json!({"spec": {"vault": {"auth": {"tokenSecretRef": {"name": "vault-token-2"}}}}}),
    )
    .await?;
    let waiting = wait_for("a failure waiting for the Secret", BOUND, || async {
        Ok(api
            .get(CERT_PATH)
            .await?
            .filter(|c| c["status"]["certkeeper"]["failureClass"] == "invalid"))
    })
    .await?;
    let ck = &waiting["status"]["certkeeper"];
    eprintln!("missing Secret -> {ck}");
    assert!(
        ck["failureMessage"].as_str().unwrap().contains("not found"),
        "{ck}"
    );
    assert!(ck["nextAttemptTime"].is_null(), "{ck}");
    let issuer = api.get(ISSUER_PATH).await?.unwrap();
    let rev = waiting["status"]["revision"].as_u64().unwrap();

    // 6. The Secret appears: recovered without a restart.
    let appeared = Instant::now();
    api.create(
        "/api/v1/namespaces/apps/secrets",
        &secret_body("vault-token-2", "token", &token),
    )
    .await?;
    let recovered = wait_for("recovery", BOUND, || async {
        Ok(api.get(CERT_PATH).await?.filter(|c| {
            ready(c) && c["status"]["certkeeper"].is_null() && c["status"]["revision"].as_u64() > Some(rev)
        }))
    })
    .await?;
    eprintln!(
        "Secret created -> recovered in {:?} (revision {})",
        appeared.elapsed(),
        recovered["status"]["revision"]
    );
    assert!(recovered["status"]["lastFailureTime"].is_null());
    assert!(
        condition(&issuer, "Ready").is_some(),
        "issuer has a Ready condition"
    );
    wait_for("Issuer Ready again", BOUND, || async {
        Ok(api.get(ISSUER_PATH).await?.filter(ready))
    })
    .await?;

    // 7. Old CertificateRequests are pruned to revisionHistoryLimit (2).
    let requests = api
        .get("/apis/cert-manager.io/v1/namespaces/apps/certificaterequests")
        .await?
        .unwrap();
    let names: Vec<&str> = requests["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["metadata"]["name"].as_str().unwrap())
        .collect();
    assert!(names.len() <= 2, "{names:?}");
    assert!(!names.contains(&"web-1"), "{names:?}");

    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(30), controller).await???;
    Ok(())
}
