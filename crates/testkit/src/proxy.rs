//! `FaultProxy`: a TCP proxy on 127.0.0.1 in front of a real server, whose behaviour can be
//! switched at run time to reproduce network and load-balancer failures (the ones catalogued in
//! OPENBAO.md): hang, close without reply, RST, garbage bytes, a stalled body, an HTML error page,
//! connection refused; and answers whose body is damaged on the way (`CutBody`, `PrefixBody`):
//! the real server's answer, cut or garbled, re-framed as a well-formed HTTP answer.
//!
//! A new mode applies to new connections. Switching away from `Forward` also closes the
//! connections being forwarded, so a client's pooled keep-alive connections see the new mode.
//! `Refuse` closes the listening socket at once (inside `set_mode`, via `shutdown(2)` on it);
//! switching back binds the same port again (SO_REUSEADDR) before `set_mode` returns.
//! Dropping the proxy closes everything, including hung connections.

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::ports::free_port;

/// How the proxy treats connections accepted while the mode is in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Byte-for-byte pass-through in both directions.
    Forward,
    /// Accept and read, never answer (only a client timeout ends it).
    Hang,
    /// Read the request, then close with no reply (FIN).
    Close,
    /// Read the request, then reset the connection (SO_LINGER 0: RST).
    Reset,
    /// Read the request, answer `SSH-2.0-OpenSSH_9.0\r\n`, close.
    Garbage,
    /// Read the request, send a 200 JSON header with Content-Length 100 and 8 body bytes, stall.
    SlowBody,
    /// Read the request, answer this HTTP status with an HTML body (a load balancer's error page).
    Html(u16),
    /// Not listening: connection refused.
    Refuse,
    /// Forward the request; answer with the upstream body starting at the first occurrence of
    /// `from` (at its start if `from` is empty or absent, as when a desynchronised proxy lost the
    /// beginning) and cut `extra` bytes after the first `after` (whole if absent), under
    /// `status` or upstream's.
    CutBody {
        status: Option<u16>,
        from: &'static str,
        after: &'static str,
        extra: usize,
    },
    /// Forward the request; answer with `prefix` put before the whole upstream body (no longer
    /// JSON, every byte still there), under `status` or upstream's.
    PrefixBody {
        status: Option<u16>,
        prefix: &'static str,
    },
}

type Slot = Arc<Mutex<Option<Arc<TcpListener>>>>;
/// The last upstream body a rewriting mode received, before damage.
type Seen = Arc<Mutex<Option<Vec<u8>>>>;

/// A fault-injecting TCP proxy; see the module docs.
#[derive(Debug)]
pub struct FaultProxy {
    port: u16,
    upstream: String,
    mode_tx: watch::Sender<Mode>,
    listener: Slot,
    connections: Arc<AtomicU64>,
    seen: Seen,
    runtime: tokio::runtime::Handle,
    task: JoinHandle<()>,
}

fn listen(port: u16) -> Result<TcpListener> {
    let sock = TcpSocket::new_v4().context("socket")?;
    sock.set_reuseaddr(true).context("SO_REUSEADDR")?;
    sock.bind(([127, 0, 0, 1], port).into())
        .with_context(|| format!("binding 127.0.0.1:{port}"))?;
    sock.listen(1024)
        .with_context(|| format!("listening on 127.0.0.1:{port}"))
}

fn lock(slot: &Slot) -> std::sync::MutexGuard<'_, Option<Arc<TcpListener>>> {
    slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl FaultProxy {
    /// Starts a proxy in `Forward` mode in front of `upstream` (`http://127.0.0.1:P` or `127.0.0.1:P`).
    /// Must be called inside a tokio runtime.
    pub async fn start(upstream: &str) -> Result<Self> {
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .trim_end_matches('/')
            .to_string();
        let port = free_port();
        let listener: Slot = Arc::new(Mutex::new(Some(Arc::new(listen(port)?))));
        let (mode_tx, mode_rx) = watch::channel(Mode::Forward);
        let connections = Arc::new(AtomicU64::new(0));
        let seen = Seen::default();
        let task = tokio::spawn(accept_loop(
            listener.clone(),
            upstream.clone(),
            mode_rx,
            connections.clone(),
            seen.clone(),
        ));
        Ok(Self {
            port,
            upstream,
            mode_tx,
            listener,
            connections,
            seen,
            runtime: tokio::runtime::Handle::current(),
            task,
        })
    }

    /// `http://127.0.0.1:P`
    pub fn addr(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The upstream `host:port`.
    pub fn upstream(&self) -> &str {
        &self.upstream
    }

    /// How many connections have been accepted so far.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::SeqCst)
    }

    pub fn mode(&self) -> Mode {
        *self.mode_tx.borrow()
    }

    /// The last upstream body `CutBody` or `PrefixBody` received, before it was damaged: what
    /// the client must not leak (a login answer's token).
    pub fn last_upstream_body(&self) -> Option<Vec<u8>> {
        self.seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Switches the mode; takes effect for the listener before returning (see module docs).
    pub fn set_mode(&self, mode: Mode) -> Result<()> {
        let mut slot = lock(&self.listener);
        if mode == Mode::Refuse {
            if let Some(l) = slot.take() {
                // Stops listening now, even though the accept task still holds the socket.
                let _ = nix::sys::socket::shutdown(l.as_raw_fd(), nix::sys::socket::Shutdown::Both);
            }
        } else if slot.is_none() {
            let _guard = self.runtime.enter();
            *slot = Some(Arc::new(listen(self.port)?));
        }
        drop(slot);
        self.mode_tx.send_replace(mode);
        Ok(())
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(l) = lock(&self.listener).take() {
            let _ = nix::sys::socket::shutdown(l.as_raw_fd(), nix::sys::socket::Shutdown::Both);
        }
        // Aborting the accept task drops its JoinSet, which aborts every connection task.
        self.task.abort();
    }
}

async fn accept_loop(
    slot: Slot,
    upstream: String,
    mut mode_rx: watch::Receiver<Mode>,
    counter: Arc<AtomicU64>,
    seen: Seen,
) {
    let mut conns = JoinSet::new();
    loop {
        let listener = lock(&slot).clone();
        let Some(listener) = listener else {
            tokio::select! {
                changed = mode_rx.changed() => if changed.is_err() { return },
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
            continue;
        };
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((sock, _)) => {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let mode = *mode_rx.borrow();
                    conns.spawn(handle(sock, mode, upstream.clone(), mode_rx.clone(), seen.clone()));
                }
                // Listener shut down by set_mode(Refuse), or a transient error (EMFILE).
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            changed = mode_rx.changed() => if changed.is_err() { return },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

async fn handle(
    mut sock: TcpStream,
    mode: Mode,
    upstream: String,
    mut mode_rx: watch::Receiver<Mode>,
    seen: Seen,
) {
    match mode {
        Mode::Forward | Mode::Refuse => {
            let Ok(Ok(mut up)) =
                tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(upstream.as_str())).await
            else {
                return; // upstream down: the client sees a closed connection
            };
            let _ = sock.set_nodelay(true);
            let _ = up.set_nodelay(true);
            let switched_away = async {
                loop {
                    if mode_rx.changed().await.is_err() || *mode_rx.borrow() != Mode::Forward {
                        return;
                    }
                }
            };
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut sock, &mut up) => {}
                _ = switched_away => {}
            }
        }
        Mode::Hang => {
            let mut buf = [0u8; 8192];
            while let Ok(n) = sock.read(&mut buf).await {
                if n == 0 {
                    // Client gone; keep quiet until the proxy drops, as a black hole would.
                    std::future::pending::<()>().await;
                }
            }
        }
        Mode::Close => {
            read_request(&mut sock).await;
            let _ = sock.shutdown().await;
        }
        Mode::Reset => {
            read_request(&mut sock).await;
            let _ = sock.set_zero_linger();
            drop(sock);
        }
        Mode::Garbage => {
            read_request(&mut sock).await;
            let _ = sock.write_all(b"SSH-2.0-OpenSSH_9.0\r\n").await;
            let _ = sock.shutdown().await;
        }
        Mode::SlowBody => {
            read_request(&mut sock).await;
            let head =
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"data\":";
            let _ = sock.write_all(head.as_bytes()).await;
            std::future::pending::<()>().await;
        }
        Mode::Html(status) => {
            read_request(&mut sock).await;
            let body = format!(
                "<html><head><title>{status} {reason}</title></head><body><center><h1>{status} {reason}</h1>\
                 </center><hr><center>nginx</center></body></html>\n",
                reason = reason(status)
            );
            let resp = format!(
                "HTTP/1.1 {status} {}\r\nServer: nginx\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                reason(status),
                body.len()
            );
            let _ = sock.write_all(resp.as_bytes()).await;
            let _ = sock.shutdown().await;
        }
        Mode::CutBody { status, .. } | Mode::PrefixBody { status, .. } => {
            let Some(request) = read_request_bytes(&mut sock).await else {
                return;
            };
            let Some((code, head, body)) = exchange_upstream(&upstream, &request).await else {
                return; // upstream down or unreadable: the client sees a closed connection
            };
            *seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(body.clone());
            let body = match mode {
                Mode::CutBody {
                    from, after, extra, ..
                } => {
                    let start = find(&body, from.as_bytes()).unwrap_or(0);
                    let body = &body[start..];
                    let keep = find(body, after.as_bytes())
                        .map_or(body.len(), |i| (i + after.len() + extra).min(body.len()));
                    body[..keep].to_vec()
                }
                Mode::PrefixBody { prefix, .. } => [prefix.as_bytes(), &body].concat(),
                _ => body,
            };
            let code = status.unwrap_or(code);
            // Upstream's headers, re-framed: the new length, and no keep-alive.
            let mut resp = format!("HTTP/1.1 {code} {}\r\n", reason(code));
            for line in head.lines().skip(1).filter(|l| !l.is_empty()) {
                let lower = line.to_ascii_lowercase();
                if ["content-length:", "transfer-encoding:", "connection:"]
                    .iter()
                    .any(|h| lower.starts_with(h))
                {
                    continue;
                }
                resp.push_str(line);
                resp.push_str("\r\n");
            }
            resp.push_str(&format!(
                "Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            ));
            let _ = sock.write_all(resp.as_bytes()).await;
            let _ = sock.write_all(&body).await;
            let _ = sock.shutdown().await;
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Sends `request` upstream and reads one answer: `(status, head, body)`, the body de-chunked.
/// Bounded to 5 s and 4 MiB.
async fn exchange_upstream(upstream: &str, request: &[u8]) -> Option<(u16, String, Vec<u8>)> {
    tokio::time::timeout(Duration::from_secs(5), async {
        let mut up = TcpStream::connect(upstream).await.ok()?;
        up.write_all(request).await.ok()?;
        let mut buf = Vec::with_capacity(8192);
        let mut chunk = [0u8; 8192];
        let header_end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i + 4;
            }
            match up.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..header_end]).into_owned();
        let lower = head.to_ascii_lowercase();
        let code: u16 = head.split_whitespace().nth(1)?.parse().ok()?;
        let length: Option<usize> = lower
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok());
        let chunked = lower
            .lines()
            .any(|l| l.starts_with("transfer-encoding:") && l.contains("chunked"));
        let mut body = buf[header_end..].to_vec();
        loop {
            let done = match length {
                Some(n) => body.len() >= n,
                None if chunked => body.ends_with(b"0\r\n\r\n"),
                None => false,
            };
            if done || body.len() > 4 << 20 {
                break;
            }
            match up.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => body.extend_from_slice(&chunk[..n]),
            }
        }
        if chunked {
            body = dechunk(&body);
        }
        Some((code, head, body))
    })
    .await
    .ok()
    .flatten()
}

/// The payload of a chunked body (extensions and trailers ignored).
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = find(raw, b"\r\n") {
        let size_text = String::from_utf8_lossy(&raw[..eol]);
        let size_hex = size_text.split(';').next().unwrap_or_default().trim();
        let Ok(size) = usize::from_str_radix(size_hex, 16) else {
            break;
        };
        let start = eol + 2;
        if size == 0 || start + size > raw.len() {
            break;
        }
        out.extend_from_slice(&raw[start..start + size]);
        raw = &raw[(start + size + 2).min(raw.len())..];
    }
    out
}

fn reason(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Temporarily Unavailable",
        504 => "Gateway Time-out",
        _ => "Error",
    }
}

/// Reads one HTTP/1 request (headers, then a Content-Length body), bounded to 5 s and 1 MiB, so
/// that closing afterwards sends FIN rather than RST (unread data makes Linux reset).
async fn read_request(sock: &mut TcpStream) {
    let _ = read_request_bytes(sock).await;
}

/// As [`read_request`], returning the request's bytes when it arrived whole.
async fn read_request_bytes(sock: &mut TcpStream) -> Option<Vec<u8>> {
    tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = Vec::with_capacity(4096);
        let mut chunk = [0u8; 8192];
        let header_end = loop {
            match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if buf.len() > 1 << 20 {
                return None;
            }
        };
        let head = String::from_utf8_lossy(&buf[..header_end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() - header_end < len.min(1 << 20) {
            match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        Some(buf)
    })
    .await
    .ok()
    .flatten()
}
