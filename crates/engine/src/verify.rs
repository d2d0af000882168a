//! `verify`: proof that a certificate is in use. After a certificate's hooks ran, certkeeper
//! connects to each address that should serve it, reads the leaf certificate the server presents
//! and compares it, byte for byte, with the leaf it wrote to `tls.crt`.
//!
//! Trust is not the question here (the server may present any chain, and a self-signed one is
//! read like any other): the question is whether the bytes are ours. The handshake's signature
//! is still checked against the presented leaf, so a match also proves the server holds its key.
//!
//! The address comes from the configuration and is treated as hostile input: `host:port` only
//! (no scheme, path, query or user), a port from 1 to 65535, a host that is an IP address (IPv6
//! in brackets) or a DNS name, and a `serverName` (SNI) that is a DNS name. Every connection is
//! bounded by the target's timeout; a server that keeps presenting another certificate is polled
//! a few times a second until then (a reload takes a moment to reach the workers).

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use certkeeper_core::pki::{CertSummary, certificate_ders, describe_der};
use certkeeper_core::time::rfc3339;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, DnsName, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// The longest address accepted: a DNS name (253) with a port.
pub const MAX_ADDRESS_LEN: usize = 260;

/// Time between two looks at a server that still presents another certificate.
const POLL: Duration = Duration::from_millis(250);

/// A served certificate with less than this part of its lifetime left is "near its expiry"
/// (1/3: past cert-manager's default renewal point, 2/3 of the lifetime).
const NEAR_EXPIRY_DIVISOR: u32 = 3;

/// The default of `verify[].timeout`.
pub const DEFAULT_VERIFY_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a `verify` entry of the configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("must not be empty")]
    Empty,
    #[error("is {0} bytes long: at most {MAX_ADDRESS_LEN}")]
    TooLong(usize),
    #[error("{0:?} must be host:port, not a URL: no scheme, path, query, fragment, user or spaces")]
    NotHostPort(String),
    #[error("{0:?} has no port: write host:port")]
    NoPort(String),
    #[error("port {0:?} must be a number from 1 to 65535")]
    Port(String),
    #[error("{0:?}: an IPv6 address goes in brackets, as [::1]:443")]
    BareIpv6(String),
    #[error("host {0:?} is neither an IP address nor a DNS name")]
    Host(String),
    #[error(
        "serverName {0:?} is not a DNS name (SNI carries DNS names only; to reach an IP address, leave serverName out)"
    )]
    ServerName(String),
}

/// Where a server is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Ip(IpAddr),
    Dns(DnsName<'static>),
}

/// One address that should serve a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyTarget {
    pub host: Host,
    pub port: u16,
    /// The SNI name sent; `None`: the host's name (none for an IP address).
    pub server_name: Option<DnsName<'static>>,
    /// The whole check's bound: connections, handshakes and the polling of a server that still
    /// presents another certificate.
    pub timeout: Duration,
}

impl std::fmt::Display for VerifyTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.host {
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]:{}", self.port)?,
            Host::Ip(ip) => write!(f, "{ip}:{}", self.port)?,
            Host::Dns(name) => write!(f, "{}:{}", name.as_ref(), self.port)?,
        }
        if let Some(sni) = &self.server_name {
            write!(f, " (SNI {})", sni.as_ref())?;
        }
        Ok(())
    }
}

impl VerifyTarget {
    /// Checks `address` (`host:port`) and `server_name` as hostile input.
    pub fn parse(address: &str, server_name: Option<&str>, timeout: Duration) -> Result<Self, AddressError> {
        let (host, port) = split_host_port(address)?;
        let server_name = match server_name {
            None => None,
            Some(name) => Some(dns_name(name).ok_or_else(|| AddressError::ServerName(name.to_owned()))?),
        };
        Ok(VerifyTarget {
            host,
            port,
            server_name,
            timeout,
        })
    }

    fn tls_name(&self) -> ServerName<'static> {
        match (&self.server_name, &self.host) {
            (Some(name), _) | (None, Host::Dns(name)) => ServerName::DnsName(name.clone()),
            (None, Host::Ip(ip)) => ServerName::IpAddress((*ip).into()),
        }
    }
}

/// A DNS name (not an IP address written as one), lowercase as DNS compares.
fn dns_name(name: &str) -> Option<DnsName<'static>> {
    if name.parse::<IpAddr>().is_ok() {
        return None;
    }
    DnsName::try_from(name.to_owned()).ok()
}

fn split_host_port(address: &str) -> Result<(Host, u16), AddressError> {
    if address.is_empty() {
        return Err(AddressError::Empty);
    }
    if address.len() > MAX_ADDRESS_LEN {
        return Err(AddressError::TooLong(address.len()));
    }
    let not_host_port = || AddressError::NotHostPort(address.to_owned());
    if address
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '/' | '?' | '#' | '@' | '\\' | '%'))
    {
        return Err(not_host_port());
    }
    let (host, port) = if let Some(rest) = address.strip_prefix('[') {
        let (ip, port) = rest.split_once(']').ok_or_else(not_host_port)?;
        let port = port
            .strip_prefix(':')
            .ok_or_else(|| AddressError::NoPort(address.to_owned()))?;
        let ip: std::net::Ipv6Addr = ip.parse().map_err(|_| AddressError::Host(ip.to_owned()))?;
        (Host::Ip(IpAddr::V6(ip)), port)
    } else {
        let (host, port) = address
            .rsplit_once(':')
            .ok_or_else(|| AddressError::NoPort(address.to_owned()))?;
        if host.contains(':') {
            return Err(AddressError::BareIpv6(address.to_owned()));
        }
        let host = match host.parse::<IpAddr>() {
            Ok(ip) => Host::Ip(ip),
            Err(_) => Host::Dns(dns_name(host).ok_or_else(|| AddressError::Host(host.to_owned()))?),
        };
        (host, port)
    };
    // Digits only: `u16::from_str` would take a leading '+'.
    let number = (!port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit()))
        .then(|| port.parse::<u16>().ok())
        .flatten()
        .filter(|p| *p != 0)
        .ok_or_else(|| AddressError::Port(port.to_owned()))?;
    Ok((host, number))
}

/// Why a served certificate could not be confirmed.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("cannot read the certificate written to {path}: {reason}")]
    Written { path: String, reason: String },
    #[error("cannot resolve {target}: {source}")]
    Resolve { target: String, source: std::io::Error },
    #[error("cannot read the certificate served at {target}: {reason}")]
    Unreachable { target: String, reason: String },
    #[error(
        "{target} serves serial {} (not after {}), not the certificate written (serial {written_serial}); {}",
        .served.serial, rfc3339(.served.not_after), expiry_note(.near_expiry, .served)
    )]
    Differs {
        target: String,
        served: Box<CertSummary>,
        written_serial: String,
        /// The certificate served is in the last third of its lifetime, or expired.
        near_expiry: bool,
    },
}

fn expiry_note(near_expiry: &bool, served: &CertSummary) -> String {
    if *near_expiry {
        format!(
            "THE SERVED CERTIFICATE IS NEAR ITS EXPIRY ({}): its clients fail then unless the server \
             loads the new one",
            rfc3339(served.not_after)
        )
    } else {
        "the server did not load the new certificate".to_owned()
    }
}

impl VerifyError {
    /// Whether the certificate served is close to its own expiry (said loudly in the log).
    pub fn near_expiry(&self) -> bool {
        matches!(
            self,
            VerifyError::Differs {
                near_expiry: true,
                ..
            }
        )
    }
}

/// Whether `served` has less than a third of its lifetime left at `now`.
pub fn is_near_expiry(served: &CertSummary, now: SystemTime) -> bool {
    let lifetime = served
        .not_after
        .duration_since(served.not_before)
        .unwrap_or_default();
    match served.not_after.duration_since(now) {
        Ok(left) => left < lifetime / NEAR_EXPIRY_DIVISOR,
        Err(_) => true,
    }
}

/// The leaf of the PEM written to `tls.crt`.
pub fn written_leaf(pem: &str, path: &str) -> Result<Vec<u8>, VerifyError> {
    let reason = |reason: String| VerifyError::Written {
        path: path.to_owned(),
        reason,
    };
    certificate_ders(pem)
        .map_err(|e| reason(e.to_string()))?
        .into_iter()
        .next()
        .ok_or_else(|| reason("no certificate in it".to_owned()))
}

/// Connects to `target` until it presents `written` (the leaf's DER) or its timeout passes.
/// Blocking: run it off the async threads.
pub fn check(target: &VerifyTarget, written: &[u8]) -> Result<(), VerifyError> {
    let deadline = Instant::now() + target.timeout;
    let name = target.to_string();
    let addrs: Vec<SocketAddr> = match &target.host {
        Host::Ip(ip) => vec![SocketAddr::new(*ip, target.port)],
        Host::Dns(dns) => (dns.as_ref(), target.port)
            .to_socket_addrs()
            .map_err(|source| VerifyError::Resolve {
                target: name.clone(),
                source,
            })?
            .collect(),
    };
    let config = Arc::new(client_config());
    loop {
        let served = addrs
            .iter()
            .map(|addr| served_leaf(*addr, target.tls_name(), config.clone(), deadline))
            .find(Result::is_ok)
            .unwrap_or_else(|| Err("no address answered".to_owned()));
        let done = Instant::now() + POLL >= deadline;
        match served {
            Ok(leaf) if leaf == written => return Ok(()),
            Ok(leaf) if done => {
                let served = describe_der(&leaf, 0).map_err(|e| VerifyError::Unreachable {
                    target: name.clone(),
                    reason: format!("the leaf it presents is not a certificate: {e}"),
                })?;
                let written_serial = describe_der(written, 0)
                    .map(|w| w.serial)
                    .unwrap_or_else(|_| "unreadable".to_owned());
                return Err(VerifyError::Differs {
                    near_expiry: is_near_expiry(&served, SystemTime::now()),
                    target: name,
                    served: Box::new(served),
                    written_serial,
                });
            }
            Err(reason) if done => return Err(VerifyError::Unreachable { target: name, reason }),
            _ => std::thread::sleep(POLL),
        }
    }
}

/// One TLS handshake with `addr`: the leaf it presents. Every step is bounded by `deadline`.
fn served_leaf(
    addr: SocketAddr,
    name: ServerName<'static>,
    config: Arc<rustls::ClientConfig>,
    deadline: Instant,
) -> Result<Vec<u8>, String> {
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| "timed out".to_owned())
    };
    let mut tcp = TcpStream::connect_timeout(&addr, left()?).map_err(|e| format!("{addr}: {e}"))?;
    tcp.set_read_timeout(Some(left()?)).map_err(|e| e.to_string())?;
    tcp.set_write_timeout(Some(left()?)).map_err(|e| e.to_string())?;
    let mut conn = rustls::ClientConnection::new(config, name).map_err(|e| e.to_string())?;
    while conn.is_handshaking() {
        left()?;
        conn.complete_io(&mut tcp)
            .map_err(|e| format!("{addr}: TLS handshake: {e}"))?;
    }
    let leaf = conn
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|leaf| leaf.as_ref().to_vec())
        .ok_or_else(|| format!("{addr}: presented no certificate"))?;
    conn.send_close_notify();
    // Best effort: the answer is already in hand.
    let _ = conn.write_tls(&mut tcp);
    let _ = tcp.flush();
    let _ = tcp.read(&mut [0u8; 0]);
    Ok(leaf)
}

fn client_config() -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = Arc::new(ReadAnyLeaf {
        provider: provider.clone(),
    });
    // The provider's defaults always include TLS 1.2 and 1.3 (features tls12 and std are on).
    match rustls::ClientConfig::builder_with_provider(provider).with_safe_default_protocol_versions() {
        Ok(builder) => builder
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth(),
        Err(_) => rustls::ClientConfig::builder()
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth(),
    }
}

/// Accepts any chain (the leaf is compared, not trusted) but checks the handshake's signature
/// with the presented leaf's key: the server holds the key of what it presents.
#[derive(Debug)]
struct ReadAnyLeaf {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for ReadAnyLeaf {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = DEFAULT_VERIFY_TIMEOUT;

    #[test]
    fn addresses_are_host_and_port() {
        let t = VerifyTarget::parse("127.0.0.1:8443", None, T).unwrap();
        assert_eq!(t.host, Host::Ip("127.0.0.1".parse().unwrap()));
        assert_eq!((t.port, t.to_string()), (8443, "127.0.0.1:8443".to_owned()));
        let t = VerifyTarget::parse("[::1]:443", Some("web.example.com"), T).unwrap();
        assert_eq!(t.to_string(), "[::1]:443 (SNI web.example.com)");
        assert_eq!(
            t.tls_name(),
            ServerName::DnsName(DnsName::try_from("web.example.com").unwrap())
        );
        let t = VerifyTarget::parse("web.example.com:443", None, T).unwrap();
        assert_eq!(t.tls_name().to_str(), "web.example.com");
        assert_eq!(
            VerifyTarget::parse("localhost:65535", None, T).unwrap().port,
            65535
        );
    }

    #[test]
    fn hostile_addresses_are_refused_saying_why() {
        use AddressError as E;
        let refused = |a: &str| VerifyTarget::parse(a, None, T).unwrap_err();
        assert_eq!(refused(""), E::Empty);
        assert_eq!(refused(&"a".repeat(300)), E::TooLong(300));
        for url in [
            "https://web:443",
            "web:443/healthz",
            "web:443?x=1",
            "web:443#f",
            "user@web:443",
            "web :443",
            "web:443\n",
            "web%2f:443",
            "web\\x:443",
        ] {
            assert_eq!(refused(url), E::NotHostPort(url.to_owned()), "{url:?}");
        }
        assert_eq!(refused("web"), E::NoPort("web".into()));
        assert_eq!(refused("[::1]"), E::NoPort("[::1]".into()));
        for port in ["0", "65536", "99999999", "+443", "-1", "", "44a", "0x1bb"] {
            assert_eq!(refused(&format!("web:{port}")), E::Port(port.into()), "{port:?}");
        }
        assert_eq!(refused("::1:443"), E::BareIpv6("::1:443".into()));
        assert_eq!(refused("[web]:443"), E::Host("web".into()));
        for host in ["-web", "web..example", "we*b", "1.2.3.999", ""] {
            assert_eq!(refused(&format!("{host}:443")), E::Host(host.into()), "{host:?}");
        }
        // webpki's DNS name rules accept underscores and a trailing dot, as resolvers do.
        assert!(VerifyTarget::parse("ex_ample.com.:443", None, T).is_ok());
        for sni in ["127.0.0.1", "::1", "web example", "", "-x", "a/b"] {
            assert_eq!(
                VerifyTarget::parse("127.0.0.1:443", Some(sni), T).unwrap_err(),
                E::ServerName(sni.into()),
                "{sni:?}"
            );
        }
    }

    #[test]
    fn an_unreachable_address_fails_within_its_timeout() {
        // A port nothing listens on (bound, then released).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let target =
            VerifyTarget::parse(&format!("127.0.0.1:{port}"), None, Duration::from_millis(800)).unwrap();
        let started = Instant::now();
        let error = check(&target, b"not used").unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert!(
            matches!(&error, VerifyError::Unreachable { target, .. } if target.ends_with(&format!(":{port}"))),
            "{error}"
        );
    }

    /// A self-signed certificate for web.example.com valid from `age` ago for `lifetime`:
    /// (its DER, its key's PKCS#8 DER).
    fn certificate(age: Duration, lifetime: Duration) -> (Vec<u8>, Vec<u8>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["web.example.com".to_owned()]).unwrap();
        let start = SystemTime::now() - age;
        params.not_before = start.into();
        params.not_after = (start + lifetime).into();
        let cert = params.self_signed(&key).unwrap();
        (cert.der().to_vec(), key.serialize_der())
    }

    /// A TLS server on a loopback port presenting `cert`, answering handshakes for 10 s at most.
    fn serve(cert: Vec<u8>, key: Vec<u8>) -> u16 {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(cert)],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.into()),
            )
            .unwrap();
        let config = Arc::new(config);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                let Ok((mut tcp, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                tcp.set_nonblocking(false).unwrap();
                tcp.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                let mut conn = rustls::ServerConnection::new(config.clone()).unwrap();
                while conn.is_handshaking() {
                    if conn.complete_io(&mut tcp).is_err() {
                        break;
                    }
                }
            }
        });
        port
    }

    #[test]
    fn the_served_leaf_is_compared_and_a_near_expiry_one_is_said_loudly() {
        const HOUR: Duration = Duration::from_secs(3600);
        let target = |port: u16| {
            VerifyTarget::parse(
                &format!("127.0.0.1:{port}"),
                Some("web.example.com"),
                Duration::from_millis(700),
            )
            .unwrap()
        };
        // The certificate written is the one served.
        let (written, key) = certificate(Duration::ZERO, 90 * 24 * HOUR);
        let port = serve(written.clone(), key);
        check(&target(port), &written).unwrap();

        // An older one is served, ten minutes from its expiry after a two-hour life.
        let (old, old_key) = certificate(2 * HOUR, 2 * HOUR + 600 * Duration::from_secs(1));
        let port = serve(old, old_key);
        let started = Instant::now();
        let error = check(&target(port), &written).unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "bounded by the timeout"
        );
        assert!(error.near_expiry(), "{error}");
        let message = error.to_string();
        assert!(
            message.starts_with(&format!("127.0.0.1:{port} (SNI web.example.com) serves serial ")),
            "{message}"
        );
        assert!(
            message.contains("THE SERVED CERTIFICATE IS NEAR ITS EXPIRY"),
            "{message}"
        );

        // Served, different, far from its expiry: reported, not shouted.
        let (other, other_key) = certificate(Duration::ZERO, 90 * 24 * HOUR);
        let port = serve(other, other_key);
        let error = check(&target(port), &written).unwrap_err();
        assert!(!error.near_expiry());
        assert!(
            error
                .to_string()
                .ends_with("the server did not load the new certificate"),
            "{error}"
        );
    }

    #[test]
    fn near_expiry_is_the_last_third_of_the_lifetime() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let summary = |not_after: u64| CertSummary {
            subject: String::new(),
            common_name: None,
            dns_names: vec![],
            ip_addresses: vec![],
            uris: vec![],
            email_addresses: vec![],
            issuer: String::new(),
            not_before: t0,
            not_after: t0 + Duration::from_secs(not_after),
            serial: "01".into(),
            is_ca: false,
            self_signed: false,
            public_key: String::new(),
        };
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert!(!is_near_expiry(&summary(3000), at(1999)));
        assert!(is_near_expiry(&summary(3000), at(2001)));
        assert!(is_near_expiry(&summary(3000), at(4000)), "expired");
    }
}
