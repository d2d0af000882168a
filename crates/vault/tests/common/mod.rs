//! Helpers shared by the Vault client's integration tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use certkeeper_core::FailureClass;
use certkeeper_testkit::Admin;
use certkeeper_vault::{
    AuthMethod, Operation, RequestObserver, SecretSource, SignRequest, VaultClient, VaultConfig,
};

/// A P-256 CSR for `cn` (also its only DNS SAN) and its request, as the engine will build them.
pub fn sign_request(cn: &str, ttl: Duration) -> SignRequest {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(vec![cn.to_owned()]).expect("params");
    params.distinguished_name.push(rcgen::DnType::CommonName, cn);
    let csr = params.serialize_request(&key).expect("csr");
    SignRequest {
        csr_pem: csr.pem().expect("pem"),
        common_name: Some(cn.to_owned()),
        dns_names: vec![cn.to_owned()],
        ttl: Some(ttl),
        ..Default::default()
    }
}

/// AppRole login for a fresh role bound to `policy` on `admin`'s "approle" mount (enabled if
/// needed); `secret_id_uses` 0 means unlimited.
pub async fn approle(admin: &Admin, role: &str, policy: &str, secret_id_uses: u32) -> AuthMethod {
    let (role_id, secret_id) = admin
        .approle_role("approle", role, &[policy], secret_id_uses, "")
        .await
        .expect("approle role");
    AuthMethod::AppRole {
        mount: "approle".into(),
        role_id,
        secret_id: SecretSource::value(secret_id),
    }
}

pub fn token_auth(token: &str) -> AuthMethod {
    AuthMethod::Token {
        token: SecretSource::value(token),
    }
}

/// A client with short timeouts, so failure tests end quickly.
pub fn client(addr: &str, auth: AuthMethod) -> VaultClient {
    let mut cfg = VaultConfig::new(addr);
    cfg.connect_timeout = Duration::from_secs(2);
    cfg.request_timeout = Duration::from_secs(3);
    VaultClient::new(&cfg, auth).expect("client")
}

/// notAfter of a PEM certificate, Unix seconds.
pub fn not_after(pem: &str) -> i64 {
    let (_, der) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).expect("pem");
    let cert = der.parse_x509().expect("x509");
    cert.validity().not_after.timestamp()
}

/// Subject CN of a PEM certificate.
pub fn common_name(pem: &str) -> String {
    let (_, der) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).expect("pem");
    let cert = der.parse_x509().expect("x509");
    cert.subject()
        .iter_common_name()
        .next()
        .and_then(|c| c.as_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// One reported exchange: operation, HTTP status, failure class.
pub type Event = (Operation, Option<u16>, Option<FailureClass>);

/// Records every HTTP exchange the client reports, as the metrics layer will see them.
#[derive(Debug, Default)]
pub struct Recorder {
    events: Mutex<Vec<Event>>,
}

impl Recorder {
    pub fn count(&self, op: Operation) -> usize {
        self.events.lock().unwrap().iter().filter(|e| e.0 == op).count()
    }

    pub fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }
}

impl RequestObserver for Recorder {
    fn observe(&self, op: Operation, status: Option<u16>, class: Option<FailureClass>, _elapsed: Duration) {
        self.events.lock().unwrap().push((op, status, class));
    }
}

/// A client that reports to a fresh [`Recorder`].
pub fn recorded_client(cfg: &VaultConfig, auth: AuthMethod) -> (VaultClient, Arc<Recorder>) {
    let rec = Arc::new(Recorder::default());
    (
        VaultClient::with_observer(cfg, auth, Some(rec.clone())).expect("client"),
        rec,
    )
}
