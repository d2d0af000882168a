//! A counting TCP proxy between certkeeper and OpenBao: what certkeeper really sends, whatever
//! its own counters say (a sealed OpenBao audits nothing, and a refused request may be logged
//! nowhere).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Result;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// Requests seen on the wire so far, by kind (classified by the request line's path).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Wire {
    pub requests: u64,
    /// `/v1/auth/<mount>/login` (AppRole, JWT, Kubernetes, cert).
    pub logins: u64,
    /// A PKI sign path (`.../sign/<role>`, `.../sign-verbatim...`).
    pub signs: u64,
}

impl std::ops::Sub for Wire {
    type Output = Wire;
    fn sub(self, earlier: Wire) -> Wire {
        Wire {
            requests: self.requests.saturating_sub(earlier.requests),
            logins: self.logins.saturating_sub(earlier.logins),
            signs: self.signs.saturating_sub(earlier.signs),
        }
    }
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    logins: AtomicU64,
    signs: AtomicU64,
}

impl Counters {
    fn record(&self, path: &[u8]) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let path = String::from_utf8_lossy(path);
        let path = path.split('?').next().unwrap_or("");
        if path.starts_with("/v1/auth/") && path.ends_with("/login") {
            self.logins.fetch_add(1, Ordering::Relaxed);
        } else if path.contains("/sign/") || path.contains("/sign-verbatim") {
            self.signs.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A TCP proxy on 127.0.0.1 that forwards to OpenBao and counts the HTTP/1.1 requests
/// certkeeper sends through it (request lines in the client-to-server bytes; a JSON body
/// escapes CR LF, so it cannot hold one). Dropping it closes every connection.
pub struct CountingProxy {
    port: u16,
    counters: Arc<Counters>,
    task: JoinHandle<()>,
}

impl CountingProxy {
    pub async fn start(upstream: &str) -> Result<Self> {
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let counters = Arc::new(Counters::default());
        let count = counters.clone();
        let task = tokio::spawn(async move {
            // Owned by the accept task: aborting it drops and aborts every connection.
            let mut conns = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((client, _)) = accepted else {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        };
                        let (upstream, count) = (upstream.clone(), count.clone());
                        conns.spawn(async move {
                            let Ok(server) = TcpStream::connect(&upstream).await else { return };
                            let _ = client.set_nodelay(true);
                            let _ = server.set_nodelay(true);
                            let (cr, cw) = client.into_split();
                            let (sr, sw) = server.into_split();
                            tokio::join!(pump(cr, sw, Some(count)), pump(sr, cw, None));
                        });
                    }
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            }
        });
        Ok(CountingProxy { port, counters, task })
    }

    pub fn addr(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// All requests so far.
    pub fn requests(&self) -> u64 {
        self.counters.requests.load(Ordering::Relaxed)
    }

    /// Requests so far, by kind.
    pub fn wire(&self) -> Wire {
        Wire {
            requests: self.requests(),
            logins: self.counters.logins.load(Ordering::Relaxed),
            signs: self.counters.signs.load(Ordering::Relaxed),
        }
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copy one direction until EOF or an error; count request lines if `count` is given.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, count: Option<Arc<Counters>>) {
    const NEEDLE: &[u8] = b" HTTP/1.1\r\n";
    // Enough of the bytes already scanned to hold a request line split across reads.
    const KEEP: usize = 2048;
    let mut buf = vec![0u8; 64 * 1024];
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(count) = &count {
            carry.extend_from_slice(&buf[..n]);
            let mut scanned = 0;
            while let Some(at) = carry[scanned..].windows(NEEDLE.len()).position(|w| w == NEEDLE) {
                let end = scanned + at;
                // The path is the token before " HTTP/1.1" (the method may follow a body
                // without a separator, the path has no space).
                let start = carry[..end].iter().rposition(|&b| b == b' ').map_or(0, |p| p + 1);
                count.record(&carry[start..end]);
                scanned = end + NEEDLE.len();
            }
            // Keep the unscanned tail (a request line may continue in the next read), never
            // what was already counted.
            let keep_from = scanned.max(carry.len().saturating_sub(KEEP));
            carry.drain(..keep_from);
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}
