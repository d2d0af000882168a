//! Hostile answers and hostile paths against a real OpenBao 2.7.2, with the fault proxy damaging
//! answers on the way: a token in a login, lookup or renew answer never reaches an error's
//! Display or Debug, nor the logs; a request path from configuration never moves a request to
//! another host. Run with the rest of the project's hostile-input suite: `cargo test hostile_`.
#![allow(clippy::unwrap_used)] // tests state their expectations by unwrapping

mod common;

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use certkeeper_core::FailureClass;
use certkeeper_testkit::{DevServer, FaultProxy, Mode, PkiOptions, free_port};
use certkeeper_vault::{AuthMethod, ErrorKind, SecretSource, VaultConfig, VaultError};
use common::{sign_request, token_auth};

const HOUR: Duration = Duration::from_secs(3600);

/// Panics if any 8-character piece of `secret` appears in the error's Display or Debug
/// (a cut body leaks a piece, not the whole).
fn assert_no_piece_of(secret: &str, err: &VaultError) {
    assert!(secret.len() >= 16, "not a token: {secret:?}");
    let shown = format!("{err}\n{err:?}\n{err:#?}");
    for start in 0..=secret.len() - 8 {
        let piece = &secret[start..start + 8];
        assert!(!shown.contains(piece), "{piece:?} of the token is in:\n{shown}");
    }
}

/// Switch the proxy and give the client's connection pool a moment to see its forwarded
/// connections closed, so the next request opens a connection in the new mode.
async fn switch(proxy: &FaultProxy, mode: Mode) {
    proxy.set_mode(mode).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
}

fn token_in(body: &[u8], pointer: &str) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap();
    v.pointer(pointer).and_then(|t| t.as_str()).unwrap().to_owned()
}

/// Ways the proxy damages an answer that carries a token: every one leaves token text in it.
fn damaged(token_key: &'static str) -> Vec<Mode> {
    vec![
        // 200 whose body is no longer JSON, every byte of the token still there.
        Mode::PrefixBody {
            status: None,
            prefix: "<!-- proxy -->",
        },
        // 200 cut 12 bytes into the token.
        Mode::CutBody {
            status: None,
            from: "",
            after: token_key,
            extra: 12,
        },
        // 200 cut just after the whole token.
        Mode::CutBody {
            status: None,
            from: "",
            after: token_key,
            extra: 40,
        },
        // 200 whose beginning was lost: the token comes first.
        Mode::CutBody {
            status: None,
            from: token_key,
            after: token_key,
            extra: 60,
        },
        // An error status with the (non-JSON) answer as its body: the status-error path.
        Mode::PrefixBody {
            status: Some(502),
            prefix: "upstream said: ",
        },
    ]
}

#[tokio::test]
async fn hostile_login_body_is_never_quoted() {
    let bao = DevServer::start().await.unwrap();
    let admin = bao.admin();
    let proxy = FaultProxy::start(&bao.addr()).await.unwrap();
    let auth = common::approle(&admin, "hostile", "default", 0).await;

    for mode in damaged("\"client_token\":\"") {
        switch(&proxy, mode).await;
        // A fresh client per case: each one logs in through the damaged answer.
        let client = common::client(&proxy.addr(), auth.clone());
        let err = client.login_check().await.unwrap_err();
        let answer = proxy
            .last_upstream_body()
            .expect("the proxy saw the login answer");
        let token = token_in(&answer, "/auth/client_token");
        assert_no_piece_of(&token, &err);
        let accessor = token_in(&answer, "/auth/accessor");
        assert_no_piece_of(&accessor, &err);
        // Still a useful message: what was wrong and how big the answer was.
        let msg = err.to_string();
        assert!(msg.starts_with("failed to log in: "), "{msg}");
        assert!(msg.contains("not shown"), "{msg}");
        match &err.kind {
            ErrorKind::Decode { status: 200, .. } => {
                assert_eq!(err.class(), FailureClass::Transient, "{mode:?}")
            }
            ErrorKind::Status { status: 502, .. } => {
                assert!(msg.contains(" bytes"), "{msg}");
            }
            other => panic!("{mode:?}: unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn hostile_token_lookup_body_is_never_quoted() {
    let bao = DevServer::start().await.unwrap();
    let admin = bao.admin();
    let proxy = FaultProxy::start(&bao.addr()).await.unwrap();
    // `lookup-self` answers carry the token itself as `data.id`.
    let token = admin.create_token(&["default"], "1h", true, 0).await.unwrap();

    for mode in damaged("\"id\":\"") {
        switch(&proxy, mode).await;
        let client = common::client(&proxy.addr(), token_auth(&token));
        let err = client.login_check().await.unwrap_err();
        let answer = proxy
            .last_upstream_body()
            .expect("the proxy saw the lookup answer");
        assert_eq!(token_in(&answer, "/data/id"), token);
        assert_no_piece_of(&token, &err);
        assert!(err.to_string().starts_with("failed to look up token: "), "{err}");
    }
}

/// A `tracing` writer into a buffer, to read what the client logged.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// A renewal whose answer is damaged keeps the current token and logs the failure: the log
/// line must not carry the token from the renew answer.
#[tokio::test]
async fn hostile_token_renew_body_is_never_logged() {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("certkeeper_vault=debug")
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    // The test runs on one thread (current-thread runtime): the default covers the client.
    let _guard = tracing::subscriber::set_default(subscriber);

    let bao = DevServer::start().await.unwrap();
    let admin = bao.admin();
    let proxy = FaultProxy::start(&bao.addr()).await.unwrap();
    let token = admin.create_token(&["default"], "6s", true, 0).await.unwrap();
    let client = common::client(&proxy.addr(), token_auth(&token));
    client.login_check().await.unwrap();

    for mode in damaged("\"client_token\":\"") {
        // Past two thirds of the lease the token is renewed, not used as it is.
        tokio::time::sleep(Duration::from_millis(4200)).await;
        switch(&proxy, mode).await;
        client.login_check().await.unwrap();
        let answer = proxy
            .last_upstream_body()
            .expect("the proxy saw the renew answer");
        assert_eq!(token_in(&answer, "/auth/client_token"), token);
        // Renew for real, so the next round starts from a fresh lease.
        switch(&proxy, Mode::Forward).await;
        client.login_check().await.unwrap();
    }
    let logs = logs.text();
    assert!(
        logs.matches("token renewal failed").count() >= 5,
        "each damaged renewal is logged:\n{logs}"
    );
    for start in 0..=token.len() - 8 {
        let piece = &token[start..start + 8];
        assert!(
            !logs.contains(piece),
            "{piece:?} of the token is in the logs:\n{logs}"
        );
    }
}

/// Accepts connections on a port of its own and counts them: where a request must never go.
async fn evil_listener() -> (u16, Arc<AtomicUsize>) {
    let port = free_port();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((_sock, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    (port, hits)
}

fn hostile_paths(evil: u16) -> Vec<String> {
    vec![
        format!("http://127.0.0.1:{evil}/x"),
        format!("https://127.0.0.1:{evil}/x"),
        format!("//127.0.0.1:{evil}/x"),
        format!("\\\\127.0.0.1:{evil}\\x"),
        format!("/\\127.0.0.1:{evil}/x"),
        "/v1/../../x".into(),
        "%2e%2e/%2e%2e/x".into(),
        "pki/sign/web?x=1".into(),
        "pki/sign/web#frag".into(),
        "pki/sign/we\nb".into(),
        "pki/sign/we\u{0}b".into(),
    ]
}

#[tokio::test]
async fn hostile_sign_path_never_changes_the_host() {
    let bao = DevServer::start().await.unwrap();
    let admin = bao.admin();
    let pki = admin.setup_pki(PkiOptions::default()).await.unwrap();
    let (evil, hits) = evil_listener().await;
    let cfg = VaultConfig::new(bao.addr());
    let (client, rec) = common::recorded_client(&cfg, token_auth(bao.root_token()));

    for path in hostile_paths(evil) {
        let err = client
            .sign(&path, &sign_request("a.example.com", HOUR))
            .await
            .unwrap_err();
        assert!(matches!(err.kind, ErrorKind::Path { .. }), "{path:?}: {err}");
        assert_eq!(err.class(), FailureClass::Invalid, "{path:?}");
        assert!(err.to_string().contains("invalid request path"), "{err}");
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0, "a request went to the other host");
    assert!(
        rec.events().is_empty(),
        "refused before any request: {:?}",
        rec.events()
    );
    // The same client still signs at a real path.
    client
        .sign(&pki.sign_path, &sign_request("a.example.com", HOUR))
        .await
        .unwrap();
}

#[tokio::test]
async fn hostile_login_mount_never_changes_the_host() {
    let bao = DevServer::start().await.unwrap();
    let (evil, hits) = evil_listener().await;
    let cfg = VaultConfig::new(bao.addr());
    for mount in hostile_paths(evil) {
        let jwt = SecretSource::value("eyJhbGciOiJSUzI1NiJ9.e30.c2ln");
        for auth in [
            AuthMethod::AppRole {
                mount: mount.clone(),
                role_id: "r".into(),
                secret_id: SecretSource::value("s"),
            },
            AuthMethod::Kubernetes {
                mount: mount.clone(),
                role: "r".into(),
                jwt: jwt.clone(),
            },
            AuthMethod::Jwt {
                mount: mount.clone(),
                role: "r".into(),
                jwt,
            },
        ] {
            let err = certkeeper_vault::VaultClient::new(&cfg, auth).unwrap_err();
            assert!(matches!(err.kind, ErrorKind::Path { .. }), "{mount:?}: {err}");
            assert_eq!(err.class(), FailureClass::Invalid);
        }
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

/// Bodies of answers that carry no token are still quoted, so a proxy's error page explains
/// itself, with token shapes in them redacted.
#[tokio::test]
async fn hostile_sign_error_page_is_quoted_redacted() {
    let bao = DevServer::start().await.unwrap();
    let admin = bao.admin();
    let pki = admin.setup_pki(PkiOptions::default()).await.unwrap();
    let proxy = FaultProxy::start(&bao.addr()).await.unwrap();
    let client = common::client(&proxy.addr(), token_auth(bao.root_token()));
    client.login_check().await.unwrap();
    let page = "<html>bad gateway; X-Vault-Token: hvs.CAESIFakeTokenSeenByAProxy0123456789</html>";
    switch(
        &proxy,
        Mode::PrefixBody {
            status: Some(502),
            prefix: page,
        },
    )
    .await;
    let err = client
        .sign(&pki.sign_path, &sign_request("a.example.com", HOUR))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("HTTP 502: <html>bad gateway; X-Vault-Token: <redacted>"),
        "{msg}"
    );
    assert!(!format!("{msg}{err:?}").contains("CAESIFake"), "{err:?}");
}
