//! Helpers shared by the controller's end-to-end tests.
#![allow(clippy::unwrap_used, dead_code)] // not every test file uses every helper

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use base64::Engine;
use certkeeper_controller::{ControllerConfig, KubeConfig, TokenSource};
use certkeeper_core::Secret;
use certkeeper_testkit::{DevServer, KubeApiServer, KubeClient, Pki, PkiOptions, kube_bin_dir};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

pub const BOUND: Duration = Duration::from_secs(60);
pub const NS: &str = "apps";
// The Secrets, Issuers and Certificates of `NS`.
pub const SECRETS: &str = "/api/v1/namespaces/apps/secrets";
pub const ISSUERS: &str = "/apis/cert-manager.io/v1/namespaces/apps/issuers";
pub const CERTIFICATES: &str = "/apis/cert-manager.io/v1/namespaces/apps/certificates";

pub fn installed() -> bool {
    match kube_bin_dir() {
        Ok(_) => true,
        Err(e) => {
            eprintln!("SKIPPED: {e:#}");
            false
        }
    }
}

/// An admin client of the apiserver.
pub struct Api {
    pub client: KubeClient,
}

impl Api {
    pub fn new(kube: &KubeApiServer) -> Result<Self> {
        Ok(Self {
            client: kube.client()?,
        })
    }

    pub async fn get(&self, path: &str) -> Result<Option<Value>> {
        match self.client.call(Method::GET, path, "", None).await? {
            (200, v) => Ok(Some(v)),
            (404, _) => Ok(None),
            (s, v) => bail!("GET {path} -> {s}: {v}"),
        }
    }

    /// POST; a 404 right after a CRD became Established is retried.
    pub async fn create(&self, path: &str, body: &Value) -> Result<Value> {
        let deadline = Instant::now() + BOUND;
        loop {
            match self
                .client
                .call(Method::POST, path, "application/json", Some(body))
                .await?
            {
                (201, v) => return Ok(v),
                (404, _) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
                (s, v) => bail!("POST {path} -> {s}: {v}"),
            }
        }
    }

    /// Polls the object at `path` until `accept` holds for it (at most [`BOUND`]); returns it.
    pub async fn wait_until(&self, what: &str, path: &str, accept: impl Fn(&Value) -> bool) -> Result<Value> {
        wait_for(what, BOUND, || async {
            Ok(self.get(path).await?.filter(|v| accept(v)))
        })
        .await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Result<Value> {
        match self
            .client
            .call(Method::PATCH, path, "application/merge-patch+json", Some(body))
            .await?
        {
            (200, v) => Ok(v),
            (s, v) => bail!("PATCH {path} -> {s}: {v}"),
        }
    }
}

/// certkeeper's CRDs created in `kube` and Established.
pub async fn apply_crds(kube: &KubeApiServer) -> Result<()> {
    let crds = serde_yaml_ng::Deserializer::from_str(&certkeeper_crds::all_yaml())
        .map(Value::deserialize)
        .collect::<Result<Vec<_>, _>>()?;
    kube.apply_crds(&crds, BOUND).await?;
    Ok(())
}

/// A kube-apiserver with certkeeper's CRDs (Established) and namespace [`NS`], and an OpenBao
/// dev server with a PKI (default options), both started together.
pub async fn start_kube_and_bao() -> Result<(KubeApiServer, DevServer, Pki)> {
    let (kube, bao) = tokio::join!(KubeApiServer::start(), DevServer::start());
    let (kube, bao) = (kube?, bao?);
    let pki = bao.admin().setup_pki(PkiOptions::default()).await?;
    apply_crds(&kube).await?;
    kube.create_namespace(NS).await?;
    Ok((kube, bao, pki))
}

/// [`start_kube_and_bao`], then Issuer `vault` in [`NS`] with a token of the PKI's policy (1 h,
/// renewable; [`create_token_issuer`]). Returns the servers and that token.
pub async fn start_with_vault_issuer() -> Result<(KubeApiServer, DevServer, String)> {
    let (kube, bao, pki) = start_kube_and_bao().await?;
    let token = bao.admin().create_token(&[&pki.policy], "1h", true, 0).await?;
    create_token_issuer(&Api::new(&kube)?, &bao.addr(), &pki.sign_path, &token).await?;
    Ok((kube, bao, token))
}

/// A Certificate `name` in [`NS`] for `<name>.example.com`, 1 h, from `issuer` of `kind`.
pub fn certificate_for(name: &str, issuer: &str, kind: &str) -> Value {
    json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
           "metadata": {"name": name, "namespace": NS},
           "spec": {"secretName": format!("{name}-tls"), "commonName": format!("{name}.example.com"),
                    "duration": "1h", "issuerRef": {"name": issuer, "kind": kind}}})
}

/// Creates Secret `name` in [`NS`] with one data `key`.
pub async fn create_secret(api: &Api, name: &str, key: &str, value: &str) -> Result<()> {
    api.create(SECRETS, &secret_body(name, key, value)).await?;
    Ok(())
}

/// Creates a Vault Issuer `name` in [`NS`] signing at `path` of `server`, logging in with `auth`
/// (the `spec.vault.auth` object).
pub async fn create_vault_issuer(api: &Api, name: &str, server: &str, path: &str, auth: Value) -> Result<()> {
    api.create(
        ISSUERS,
        &json!({"apiVersion": "cert-manager.io/v1", "kind": "Issuer",
                "metadata": {"name": name, "namespace": NS},
                "spec": {"vault": {"server": server, "path": path, "auth": auth}}}),
    )
    .await?;
    Ok(())
}

/// Stores the Vault `token` in Secret `vault-token` (key `token`) and creates Issuer `vault` in
/// [`NS`] that signs at `path` of `server` with it.
pub async fn create_token_issuer(api: &Api, server: &str, path: &str, token: &str) -> Result<()> {
    create_secret(api, "vault-token", "token", token).await?;
    create_vault_issuer(
        api,
        "vault",
        server,
        path,
        json!({"tokenSecretRef": {"name": "vault-token", "key": "token"}}),
    )
    .await
}

/// Polls `probe` every 200 ms until it returns `Some`, at most `bound`.
pub async fn wait_for<T, F, Fut>(what: &str, bound: Duration, mut probe: F) -> Result<T>
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

/// An Event in [`NS`] with this `reason`, if there is one now.
pub async fn find_event(api: &Api, reason: &str) -> Result<Option<Value>> {
    let events = api
        .get("/api/v1/namespaces/apps/events")
        .await?
        .unwrap_or_default();
    Ok(events["items"]
        .as_array()
        .and_then(|items| items.iter().find(|e| e["reason"] == reason).cloned()))
}

/// Waits (at most [`BOUND`]) for an Event in [`NS`] with this `reason`; returns it.
pub async fn wait_for_event(api: &Api, reason: &str) -> Result<Value> {
    wait_for(&format!("an {reason} Event"), BOUND, || find_event(api, reason)).await
}

pub fn secret_body(name: &str, key: &str, value: &str) -> Value {
    let b64 = base64::engine::general_purpose::STANDARD.encode(value);
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": NS},
           "type": "Opaque", "data": {key: b64}})
}

pub fn decode(secret: &Value, key: &str) -> String {
    let b64 = secret["data"][key].as_str().unwrap_or_default();
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b64).unwrap()).unwrap()
}

/// (serial, DNS SANs, public key DER) of the first certificate of a PEM bundle.
pub fn leaf(pem: &str) -> (String, Vec<String>, Vec<u8>) {
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

/// `metadata.name` of an object.
pub fn meta_name(object: &Value) -> String {
    object["metadata"]["name"].as_str().unwrap_or_default().to_owned()
}

/// Waits until the Certificate at `path` names a next-private-key Secret; returns the
/// Certificate and that Secret.
pub async fn wait_kept_key(api: &Api, path: &str) -> Result<(Value, Value)> {
    let cert = api
        .wait_until("status.nextPrivateKeySecretName", path, |c| {
            c["status"]["nextPrivateKeySecretName"].is_string()
        })
        .await?;
    let name = cert["status"]["nextPrivateKeySecretName"]
        .as_str()
        .unwrap_or_default();
    let ns = cert["metadata"]["namespace"].as_str().unwrap_or_default();
    let Some(secret) = api
        .get(&format!("/api/v1/namespaces/{ns}/secrets/{name}"))
        .await?
    else {
        bail!("next private key Secret {ns}/{name} not found");
    };
    Ok((cert, secret))
}

/// The public key (SubjectPublicKeyInfo DER) of a CertificateRequest's `spec.request` CSR.
pub fn csr_public_key(request: &Value) -> Vec<u8> {
    use x509_parser::prelude::FromDer;
    let b64 = request["spec"]["request"].as_str().unwrap_or_default();
    let pem = base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
    let (_, block) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
    let (_, csr) =
        x509_parser::certification_request::X509CertificationRequest::from_der(&block.contents).unwrap();
    csr.certification_request_info.subject_pki.raw.to_vec()
}

pub fn condition<'v>(object: &'v Value, kind: &str) -> Option<&'v Value> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

pub fn ready(object: &Value) -> bool {
    condition(object, "Ready").is_some_and(|c| c["status"] == "True")
}

/// A controller in this process, with the admin token and a 1 s Secret resync; stops when the
/// returned sender fires.
pub fn start_controller(
    kube: &KubeApiServer,
    listen: Option<std::net::SocketAddr>,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), certkeeper_controller::ControllerError>>,
) {
    let mut config = config_for(kube, kube.admin_token());
    config.listen = listen;
    spawn_controller(config)
}

/// A controller configuration for `kube` with this bearer token and a 1 s Secret resync.
pub fn config_for(kube: &KubeApiServer, token: &str) -> ControllerConfig {
    let connection = KubeConfig::explicit(
        &kube.url(),
        TokenSource::Value(Secret::new(token)),
        Some(kube.ca_pem()),
    )
    .expect("the test API server's URL and CA are valid");
    let mut config = ControllerConfig::new(connection);
    config.secret_resync = Duration::from_secs(1);
    config
}

pub fn spawn_controller(
    config: ControllerConfig,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), certkeeper_controller::ControllerError>>,
) {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(certkeeper_controller::run(config, async {
        let _ = stop_rx.await;
    }));
    (stop_tx, task)
}

/// notAfter of the Secret's leaf, as the status writes it (RFC 3339, seconds, Z).
pub fn not_after(secret: &Value) -> Value {
    let pem = decode(secret, "tls.crt");
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    let cert = block.parse_x509().unwrap();
    let t = cert.validity().not_after.to_datetime();
    json!(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    ))
}

/// The objects of a YAML file of `deploy/controller/`.
pub fn deploy_objects(file: &str) -> Result<Vec<Value>> {
    let path = format!("{}/../../deploy/controller/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path)?;
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|document| Ok(serde::Deserialize::deserialize(document)?))
        .collect()
}

/// Creates `object` (a Namespace, ServiceAccount or RBAC object) in its collection.
pub async fn apply_object(api: &Api, object: &Value) -> Result<()> {
    let kind = object["kind"].as_str().unwrap_or_default();
    let ns = object["metadata"]["namespace"].as_str().unwrap_or_default();
    let collection = match kind {
        "Namespace" => "/api/v1/namespaces".to_owned(),
        "ServiceAccount" => format!("/api/v1/namespaces/{ns}/serviceaccounts"),
        "ClusterRole" => "/apis/rbac.authorization.k8s.io/v1/clusterroles".to_owned(),
        "ClusterRoleBinding" => "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings".to_owned(),
        "Role" => format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles"),
        "RoleBinding" => format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings"),
        other => bail!("unexpected kind {other}"),
    };
    api.create(&collection, object).await?;
    Ok(())
}

/// Creates every object of a YAML file of `deploy/controller/`.
pub async fn apply_file(api: &Api, file: &str) -> Result<()> {
    for object in deploy_objects(file)? {
        apply_object(api, &object).await?;
    }
    Ok(())
}

pub fn request_path(name: &str) -> String {
    format!("/apis/cert-manager.io/v1/namespaces/apps/certificaterequests/{name}")
}

/// A CertificateRequest `name` in [`NS`] made by hand (as istio-csr or csi-driver make them) for
/// Issuer `vault`, with a CSR for `<name>.example.com`.
pub async fn create_request(api: &Api, name: &str) -> Result<()> {
    let host = format!("{name}.example.com");
    let (csr, _key) = certkeeper_testkit::csr_p256(&host, &[host.as_str()])?;
    api.create(
        "/apis/cert-manager.io/v1/namespaces/apps/certificaterequests",
        &json!({"apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest",
                "metadata": {"name": name, "namespace": NS},
                "spec": {"request": base64::engine::general_purpose::STANDARD.encode(csr),
                         "issuerRef": {"name": "vault"}}}),
    )
    .await?;
    Ok(())
}

/// The sum of the series of metric `family` whose labels contain `labels`, on the controller's
/// /metrics at `port` (0 when there is none).
pub async fn metric_sum(http: &reqwest::Client, port: u16, family: &str, labels: &str) -> Result<f64> {
    let text = http
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with(family) && l[family.len()..].starts_with('{') && l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        // From +0 (an empty `sum` of floats is -0).
        .fold(0.0, |sum, v| sum + v))
}
