//! FaultProxy modes, each checked with a plain tokio TCP client against a tiny tokio upstream.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns unwrap too

use std::time::Duration;

use certkeeper_testkit::{FaultProxy, Mode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const REQ: &[u8] = b"POST /v1/x HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello";

/// An upstream that answers every chunk it reads with "echo:" + the chunk.
async fn echo_upstream() -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&[b"echo:", &buf[..n]].concat()).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

async fn connect(p: &FaultProxy) -> TcpStream {
    TcpStream::connect(("127.0.0.1", p.port())).await.unwrap()
}

/// Sends REQ and reads until EOF/error or `wait` elapses: (bytes, Ok(()) on EOF / Err(kind)).
async fn exchange(p: &FaultProxy, wait: Duration) -> (Vec<u8>, Result<(), std::io::ErrorKind>, bool) {
    let mut s = connect(p).await;
    s.write_all(REQ).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let res = tokio::time::timeout(wait, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) => return Ok(()),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => return Err(e.kind()),
            }
        }
    })
    .await;
    match res {
        Ok(r) => (got, r, false),
        Err(_) => (got, Ok(()), true), // timed out: still open
    }
}

#[tokio::test]
async fn forward_passes_bytes_both_ways_and_counts_connections() {
    let p = FaultProxy::start(&echo_upstream().await).await.unwrap();
    assert!(p.addr().starts_with("http://127.0.0.1:"));
    let mut s = connect(&p).await;
    s.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], b"echo:ping");
    // the same connection keeps working
    s.write_all(b"again").await.unwrap();
    let n = s.read(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], b"echo:again");
    let _second = connect(&p).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(p.connections(), 2);
}

#[tokio::test]
async fn switching_away_from_forward_closes_forwarded_connections() {
    let p = FaultProxy::start(&echo_upstream().await).await.unwrap();
    let mut s = connect(&p).await;
    s.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 64];
    assert!(s.read(&mut buf).await.unwrap() > 0);
    p.set_mode(Mode::Hang).unwrap();
    let r = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf))
        .await
        .expect("not closed");
    assert!(
        matches!(r, Ok(0) | Err(_)),
        "forwarded connection still open: {r:?}"
    );
}

#[tokio::test]
async fn hang_never_answers() {
    let p = FaultProxy::start(&echo_upstream().await).await.unwrap();
    p.set_mode(Mode::Hang).unwrap();
    let (got, _, timed_out) = exchange(&p, Duration::from_millis(700)).await;
    assert!(timed_out && got.is_empty());
}

#[tokio::test]
async fn hung_connections_close_when_the_proxy_drops() {
    let p = FaultProxy::start(&echo_upstream().await).await.unwrap();
    p.set_mode(Mode::Hang).unwrap();
    let mut s = connect(&p).await;
    s.write_all(REQ).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(p);
    let mut buf = [0u8; 16];
    let r = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf))
        .await
        .expect("still hanging");
    assert!(matches!(r, Ok(0) | Err(_)), "{r:?}");
}

#[tokio::test]
async fn close_sends_fin_without_reply() {
    let p = FaultProxy::start(&echo_upstream().await).await.unwrap();
    p.set_mode(Mode::Close).unwrap();
    let (got, res, timed_out) = exchange(&p, Duration::from_secs(3)).await;
    assert!(!timed_out);
    assert!(got.is_empty());
    assert_eq!(res, Ok(()), "expected a clean EOF");
}

#[tokio::test]
async fn reset_sends_rst() {
    let p = FaultProxy::start(&echo_upstream().await).await.unwrap();
    p.set_mode(Mode::Reset).unwrap();
    let (got, res, timed_out) = exchange(&p, Duration::from_secs(3)).await;
    assert!(!timed_out && got.is_empty());
    assert_eq!(res, Err(std::io::ErrorKind::ConnectionReset));
}

#[tokio::test]
async fn garbage_answers_an_ssh_banner() {
    let p = FaultProxy::start(&echo_upstream().await).await.unwrap();
    p.set_mode(Mode::Garbage).unwrap();
    let (got, res, _) = exchange(&p, Duration::from_secs(3)).await;
    assert_eq!(got, b"SSH-2.0-OpenSSH_9.0\r\n");
    assert_eq!(res, Ok(()));
}

#[tokio::test]
async fn slow_body_sends_a_partial_body_then_stalls() {
    let p = FaultProxy::start(&echo_upstream().await).await.unwrap();
    p.set_mode(Mode::SlowBody).unwrap();
    let (got, _, timed_out) = exchange(&p, Duration::from_millis(700)).await;
    let text = String::from_utf8(got).unwrap();
    assert!(timed_out, "connection closed instead of stalling");
    assert!(
        text.starts_with("HTTP/1.1 200 OK\r\n") && text.contains("Content-Length: 100\r\n"),
        "{text}"
    );
    let body = text.split("\r\n\r\n").nth(1).unwrap();
    assert!(!body.is_empty() && body.len() < 100, "{body:?}");
}

#[tokio::test]
async fn html_answers_a_load_balancer_page() {
    let p = FaultProxy::start(&echo_upstream().await).await.unwrap();
    p.set_mode(Mode::Html(502)).unwrap();
    let (got, res, _) = exchange(&p, Duration::from_secs(3)).await;
    let text = String::from_utf8(got).unwrap();
    assert!(text.starts_with("HTTP/1.1 502 Bad Gateway\r\n"), "{text}");
    assert!(
        text.contains("Content-Type: text/html") && text.contains("<html>"),
        "{text}"
    );
    assert_eq!(res, Ok(()));
    // and an HTTP client sees the status
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    p.set_mode(Mode::Html(503)).unwrap();
    let r = client
        .get(format!("{}/v1/sys/health", p.addr()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 503);
    assert!(r.text().await.unwrap().contains("503"));
}

#[tokio::test]
async fn refuse_then_listen_again_on_the_same_port() {
    let p = FaultProxy::start(&echo_upstream().await).await.unwrap();
    let port = p.port();
    p.set_mode(Mode::Refuse).unwrap();
    let err = TcpStream::connect(("127.0.0.1", port)).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    p.set_mode(Mode::Forward).unwrap();
    assert_eq!(p.port(), port);
    let mut s = connect(&p).await;
    s.write_all(b"back").await.unwrap();
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], b"echo:back");
    // refuse twice in a row, and garbage after refuse, also work
    p.set_mode(Mode::Refuse).unwrap();
    p.set_mode(Mode::Refuse).unwrap();
    assert!(TcpStream::connect(("127.0.0.1", port)).await.is_err());
    p.set_mode(Mode::Garbage).unwrap();
    let (got, _, _) = exchange(&p, Duration::from_secs(3)).await;
    assert_eq!(got, b"SSH-2.0-OpenSSH_9.0\r\n");
}
