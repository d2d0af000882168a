//! A two-level CA made with rcgen (root -> intermediate) that signs leaves for any public key,
//! standing in for Vault's PKI engine.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, PublicKeyData,
};

use crate::pki::{KeyAlgorithm, PrivateKey};

/// A fixed "now" (2027-01-15T08:00:00Z) so no test reads the clock.
pub fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

pub const HOUR: Duration = Duration::from_secs(3600);
pub const DAY: Duration = Duration::from_secs(86_400);

pub fn p256() -> PrivateKey {
    PrivateKey::generate(KeyAlgorithm::Ecdsa(256)).unwrap()
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = (now() - 365 * DAY).into();
    params.not_after = (now() + 3650 * DAY).into();
    params
}

pub struct TestCa {
    pub root_pem: String,
    pub intermediate_pem: String,
    root: Issuer<'static, KeyPair>,
    intermediate: Issuer<'static, KeyPair>,
}

impl TestCa {
    pub fn new() -> Self {
        let root_key = KeyPair::generate().unwrap();
        let root_params = ca_params("certkeeper test root");
        let root_pem = root_params.self_signed(&root_key).unwrap().pem();
        let root = Issuer::new(root_params, root_key);

        let inter_key = KeyPair::generate().unwrap();
        let mut inter_params = ca_params("certkeeper test intermediate");
        inter_params.use_authority_key_identifier_extension = true;
        let intermediate_pem = inter_params.signed_by(&inter_key, &root).unwrap().pem();
        let intermediate = Issuer::new(inter_params, inter_key);
        TestCa {
            root_pem,
            intermediate_pem,
            root,
            intermediate,
        }
    }

    /// A leaf for `public_key`, signed by the intermediate.
    pub fn issue(
        &self,
        public_key: &impl PublicKeyData,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> String {
        self.issue_by(&self.intermediate, public_key, not_before, not_after)
    }

    /// A leaf signed directly by the root.
    pub fn issue_by_root(
        &self,
        public_key: &impl PublicKeyData,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> String {
        self.issue_by(&self.root, public_key, not_before, not_after)
    }

    fn issue_by(
        &self,
        issuer: &Issuer<'static, KeyPair>,
        public_key: &impl PublicKeyData,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> String {
        let mut params =
            CertificateParams::new(vec!["a.example.com".to_owned(), "10.0.0.1".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "a.example.com");
        params.use_authority_key_identifier_extension = true;
        params.not_before = not_before.into();
        params.not_after = not_after.into();
        params.signed_by(public_key, issuer).unwrap().pem()
    }

    /// A leaf backdated 30 s (as Vault does) and valid for `lifetime` from then.
    pub fn fresh(&self, key: &PrivateKey, lifetime: Duration) -> String {
        let start = now() - Duration::from_secs(30);
        self.issue(key.key_pair(), start, start + lifetime)
    }
}

/// Runs `openssl` with `stdin` and returns its stdout; panics with openssl's stderr if it fails.
/// openssl is one of the project's requirements (README), so it is an independent reader every
/// machine that runs the tests has.
pub fn openssl(args: &[&str], stdin: &[u8]) -> Vec<u8> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl is installed (see README, Requirements)");
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || input.write_all(&data));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
