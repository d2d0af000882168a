//! Both runtimes' HTTP endpoints: `/metrics` (Prometheus text), `/healthz`, `/readyz`,
//! `/api/v1/status` (JSON, every certificate) and `/api/v1/summary` (JSON counts). A small hyper server: listener and shutdown are injected, so tests
//! run it on port 0.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use certkeeper_engine::gate::CircuitInfo;
use certkeeper_engine::{IssuerId, IssuerRuntime};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// What the endpoints show.
pub trait Endpoints: Send + Sync + 'static {
    fn metrics(&self) -> impl Future<Output = String> + Send;
    /// Manifests loaded and the engine running.
    fn ready(&self) -> bool;
    fn status_json(&self) -> impl Future<Output = String> + Send;
    /// Counts (certificates, ready, failing, issuing) as JSON: cheap enough to poll.
    fn summary_json(&self) -> impl Future<Output = String> + Send {
        async { "{}".to_owned() }
    }
}

/// The endpoints of a runtime driving one engine: metrics (with each issuer's circuit), status
/// and summary from the engine, readiness from the runtime.
#[derive(Debug)]
pub struct EngineEndpoints {
    pub engine: certkeeper_engine::EngineHandle,
    pub issuers: Arc<tokio::sync::Mutex<std::collections::HashMap<IssuerId, IssuerRuntime>>>,
    /// Set by the runtime once its first configuration is applied.
    pub ready: std::sync::atomic::AtomicBool,
    /// Rows shown after the engine's: the standalone runtime's manifest problems.
    pub problem_rows: std::sync::Mutex<Vec<crate::status::ProblemStatusRow>>,
}

impl EngineEndpoints {
    pub fn new(engine: certkeeper_engine::EngineHandle) -> Self {
        EngineEndpoints {
            engine,
            issuers: Arc::default(),
            ready: std::sync::atomic::AtomicBool::new(false),
            problem_rows: std::sync::Mutex::default(),
        }
    }
}

impl Endpoints for EngineEndpoints {
    async fn metrics(&self) -> String {
        let circuits: Vec<(String, CircuitInfo)> = self
            .issuers
            .lock()
            .await
            .values()
            .map(|i| (i.id.to_string(), i.gate.circuit_info()))
            .collect();
        self.engine.render_metrics(&circuits).await
    }

    fn ready(&self) -> bool {
        self.ready.load(std::sync::atomic::Ordering::SeqCst)
    }

    async fn status_json(&self) -> String {
        let rows = crate::status::rows_from_engine(&self.engine.snapshot().await);
        // A poisoned lock still holds a whole list: it is only ever replaced.
        let problems = self
            .problem_rows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        crate::status::status_json(&rows, &problems)
    }

    async fn summary_json(&self) -> String {
        serde_json::to_string(&self.engine.summary().await).unwrap_or_else(|_| "{}".into())
    }
}

/// Which endpoints a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routes {
    /// Everything (the standalone daemon: one listener, its operator's).
    All,
    /// `/metrics`, `/healthz`, `/readyz` only, as cert-manager serves them: what a cluster's
    /// scrapers and probes reach. The JSON status names every namespace's certificates and
    /// Vault's error texts, so the controller keeps it off this listener.
    Health,
    /// `/api/v1/status` and `/api/v1/summary` only.
    Status,
}

impl Routes {
    fn serves(self, path: &str) -> bool {
        let status = path.starts_with("/api/");
        match self {
            Routes::All => true,
            Routes::Health => !status,
            Routes::Status => status,
        }
    }
}

/// Serve every endpoint until `shutdown` turns true.
pub async fn serve<E: Endpoints>(listener: TcpListener, endpoints: Arc<E>, shutdown: watch::Receiver<bool>) {
    serve_routes(listener, endpoints, shutdown, Routes::All).await
}

/// Serve `routes` until `shutdown` turns true; other paths are 404.
pub async fn serve_routes<E: Endpoints>(
    listener: TcpListener,
    endpoints: Arc<E>,
    mut shutdown: watch::Receiver<bool>,
    routes: Routes,
) {
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let endpoints = endpoints.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let endpoints = endpoints.clone();
                async move {
                    if !routes.serves(req.uri().path()) {
                        return Ok::<_, Infallible>(text(
                            StatusCode::NOT_FOUND,
                            "text/plain",
                            "not found\n".into(),
                        ));
                    }
                    Ok::<_, Infallible>(route(req, endpoints.as_ref()).await)
                }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "http connection ended");
            }
        });
    }
}

async fn route<E: Endpoints>(req: Request<Incoming>, e: &E) -> Response<Full<Bytes>> {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => text(StatusCode::OK, "text/plain; version=0.0.4", e.metrics().await),
        (&Method::GET, "/healthz") => text(StatusCode::OK, "text/plain", "ok\n".into()),
        (&Method::GET, "/readyz") if e.ready() => text(StatusCode::OK, "text/plain", "ready\n".into()),
        (&Method::GET, "/readyz") => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "not ready\n".into(),
        ),
        (&Method::GET, "/api/v1/status") => text(StatusCode::OK, "application/json", e.status_json().await),
        (&Method::GET, "/api/v1/summary") => text(StatusCode::OK, "application/json", e.summary_json().await),
        _ => text(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
    }
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    struct Fake {
        ready: AtomicBool,
    }

    impl Endpoints for Fake {
        async fn metrics(&self) -> String {
            "# TYPE x gauge\nx 1\n".into()
        }
        fn ready(&self) -> bool {
            self.ready.load(Ordering::SeqCst)
        }
        async fn status_json(&self) -> String {
            "[]".into()
        }
    }

    async fn get(addr: std::net::SocketAddr, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn endpoints_answer_and_shutdown_stops_the_server() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let fake = Arc::new(Fake {
            ready: AtomicBool::new(false),
        });
        let (tx, rx) = watch::channel(false);
        let server = tokio::spawn(serve(listener, fake.clone(), rx));
        assert!(get(addr, "/metrics").await.ends_with("x 1\n"));
        assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 200"));
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 503"));
        fake.ready.store(true, Ordering::SeqCst);
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 200"));
        assert!(get(addr, "/api/v1/status").await.ends_with("[]"));
        assert!(get(addr, "/nope").await.starts_with("HTTP/1.1 404"));
        tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .unwrap()
            .unwrap();
    }
}

#[cfg(test)]
mod routes_tests {
    use super::*;

    /// The controller's cluster-facing listener: the JSON status (every namespace's certificate
    /// names, Vault's error texts) is not on it, with or without a trailing path or query.
    #[test]
    fn hostile_health_listener_never_serves_the_status() {
        for path in ["/api/v1/status", "/api/v1/summary", "/api/v1/status/", "/api/x"] {
            assert!(!Routes::Health.serves(path), "{path}");
            assert!(Routes::Status.serves(path), "{path}");
        }
        for path in ["/metrics", "/healthz", "/readyz"] {
            assert!(Routes::Health.serves(path), "{path}");
            assert!(!Routes::Status.serves(path), "{path}");
        }
        assert!(Routes::All.serves("/api/v1/status"));
    }
}
