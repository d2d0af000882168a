//! Helpers shared by the controller's end-to-end tests.
#![allow(clippy::unwrap_used, dead_code)] // not every test file uses every helper

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine;
use certkeeper_controller::{ControllerConfig, KubeConfig, TokenSource};
use certkeeper_core::Secret;
use certkeeper_testkit::{KubeApiServer, kube_bin_dir};
use reqwest::Method;
use serde_json::{Value, json};

pub const BOUND: Duration = Duration::from_secs(60);
pub const NS: &str = "apps";

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
pub struct Api<'a> {
    kube: &'a KubeApiServer,
    client: reqwest::Client,
}

impl<'a> Api<'a> {
    pub fn new(kube: &'a KubeApiServer) -> Result<Self> {
        let ca = reqwest::Certificate::from_pem(kube.ca_pem().as_bytes())?;
        let client = reqwest::Client::builder()
            .no_proxy()
            .tls_certs_only([ca])
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self { kube, client })
    }

    pub async fn call(
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

    pub async fn get(&self, path: &str) -> Result<Option<Value>> {
        match self.call(Method::GET, path, "", None).await? {
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
                .call(Method::POST, path, "application/json", Some(body))
                .await?
            {
                (201, v) => return Ok(v),
                (404, _) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
                (s, v) => bail!("POST {path} -> {s}: {v}"),
            }
        }
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Result<Value> {
        match self
            .call(Method::PATCH, path, "application/merge-patch+json", Some(body))
            .await?
        {
            (200, v) => Ok(v),
            (s, v) => bail!("PATCH {path} -> {s}: {v}"),
        }
    }
}

pub async fn apply_crds(api: &Api<'_>) -> Result<()> {
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
    let mut config = ControllerConfig::new(KubeConfig::explicit(
        kube.url(),
        TokenSource::Value(Secret::new(token)),
        Some(kube.ca_pem().to_owned()),
    ));
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
