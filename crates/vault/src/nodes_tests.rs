use super::*;
use crate::config::VaultConfig;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use HealthStatus::*;
use NodeState::*;

#[test]
fn candidates_active_first_then_standbys_skipping_sealed_and_failed() {
    let states = [
        Reported(Standby),
        Reported(Active),
        Reported(Sealed),
        Failed,
        Unknown,
    ];
    assert_eq!(candidates(&states, 0), vec![1, 0, 4]);
    assert_eq!(
        candidates(&[Reported(Uninitialized), Reported(DrSecondary), Failed], 1),
        Vec::<usize>::new()
    );
    assert_eq!(
        candidates(&[Reported(PerformanceStandby), Reported(Standby)], 1),
        vec![0, 1]
    );
}

#[test]
fn candidates_stay_on_the_current_node_among_equals() {
    let states = [Unknown, Unknown, Unknown];
    assert_eq!(candidates(&states, 0), vec![0, 1, 2]);
    assert_eq!(candidates(&states, 1), vec![1, 2, 0]);
    assert_eq!(candidates(&states, 2), vec![2, 0, 1]);
    let standbys = [Reported(Standby), Reported(Standby), Reported(Active)];
    assert_eq!(candidates(&standbys, 1), vec![2, 1, 0]);
}

#[test]
fn probe_schedule_is_bounded_both_ways() {
    let s = Schedule::DEFAULT;
    assert_eq!(s.next_round(Duration::ZERO, false), s.interval);
    assert_eq!(
        s.next_round(Duration::from_secs(4), false),
        s.interval - Duration::from_secs(4)
    );
    assert_eq!(s.next_round(Duration::ZERO, true), s.spacing);
    assert_eq!(s.next_round(Duration::from_secs(60), true), Duration::ZERO);
    // An interval configured below the spacing still waits the spacing.
    let odd = Schedule {
        interval: Duration::from_millis(10),
        spacing: Duration::from_secs(1),
        background: true,
    };
    assert_eq!(odd.next_round(Duration::ZERO, false), Duration::from_secs(1));
}

/// A stand-in Vault node: answers `sys/health` with `health` and everything else with
/// `answer`, counting requests. Loopback, real time, each exchange a few milliseconds.
struct Stub {
    addr: String,
    requests: Arc<AtomicU64>,
    health: Arc<std::sync::atomic::AtomicU16>,
    answer: Arc<std::sync::atomic::AtomicU16>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn stub(health: u16, answer: u16) -> Stub {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicU64::new(0));
    let health = Arc::new(std::sync::atomic::AtomicU16::new(health));
    let answer = Arc::new(std::sync::atomic::AtomicU16::new(answer));
    let (r, h, a) = (requests.clone(), health.clone(), answer.clone());
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let (r, h, a) = (r.clone(), h.clone(), a.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16384];
                let mut got = Vec::new();
                // One request per connection, headers then Content-Length bytes.
                loop {
                    let Ok(n) = sock.read(&mut buf).await else { return };
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&got).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text[..end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if got.len() >= end + 4 + len {
                            break;
                        }
                    }
                }
                r.fetch_add(1, Ordering::SeqCst);
                let text = String::from_utf8_lossy(&got);
                let status = if text.starts_with("GET /v1/sys/health") {
                    h.load(Ordering::SeqCst)
                } else {
                    a.load(Ordering::SeqCst)
                };
                let body = if status == 200 && !text.starts_with("GET /v1/sys/health") {
                    r#"{"data":{"ok":true}}"#.to_owned()
                } else if (300..400).contains(&status) {
                    String::new()
                } else {
                    r#"{"errors":["stub"]}"#.to_owned()
                };
                let body = if text.starts_with("GET /v1/sys/health") {
                    "{}".to_owned()
                } else {
                    body
                };
                let extra = if (300..400).contains(&status) {
                    "Location: http://127.0.0.1:9/v1/x\r\n"
                } else {
                    ""
                };
                let reply = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(reply.as_bytes()).await;
            });
        }
    });
    Stub {
        addr,
        requests,
        health,
        answer,
        task,
    }
}

fn nodes_for(addrs: &[String], schedule: Schedule) -> Nodes {
    let transports = addrs
        .iter()
        .map(|a| {
            let mut cfg = VaultConfig::new(a.clone());
            cfg.connect_timeout = Duration::from_secs(1);
            cfg.request_timeout = Duration::from_secs(2);
            Transport::new(&cfg, None, None).unwrap()
        })
        .collect();
    Nodes::new(transports, schedule)
}

/// A port nothing listens on (bound, then released).
fn dead_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", l.local_addr().unwrap())
}

async fn get(nodes: &Nodes) -> Result<Answer, VaultError> {
    nodes
        .request(
            Operation::Sign,
            Method::GET,
            &ApiPath::fixed("pki/x"),
            None,
            None,
            Scope::Pki,
        )
        .await
}

const SLOW: Schedule = Schedule {
    interval: Duration::from_secs(3600),
    spacing: Duration::from_secs(3600),
    background: false,
};

#[tokio::test]
async fn a_request_moves_on_at_once_from_a_dead_a_sealed_and_a_redirecting_node() {
    let sealed = stub(503, 503).await;
    let redirect = stub(429, 307).await;
    let good = stub(429, 200).await;
    let nodes = nodes_for(
        &[
            dead_addr(),
            sealed.addr.clone(),
            redirect.addr.clone(),
            good.addr.clone(),
        ],
        SLOW,
    );
    let answer = get(&nodes).await.unwrap();
    assert_eq!(answer.status, 200);
    let states: Vec<NodeState> = nodes.states().into_iter().map(|(_, s)| s).collect();
    assert_eq!(states, vec![Failed, Failed, Failed, Unknown]);
    // The next request goes straight to the node that worked.
    let before = (
        sealed.requests.load(Ordering::SeqCst),
        good.requests.load(Ordering::SeqCst),
    );
    get(&nodes).await.unwrap();
    assert_eq!(sealed.requests.load(Ordering::SeqCst), before.0);
    assert_eq!(good.requests.load(Ordering::SeqCst), before.1 + 1);
}

#[tokio::test]
async fn vaults_verdict_is_returned_without_trying_other_nodes() {
    let refusing = stub(200, 400).await;
    let other = stub(200, 200).await;
    let nodes = nodes_for(&[refusing.addr.clone(), other.addr.clone()], SLOW);
    let err = get(&nodes).await.unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert_eq!(other.requests.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn health_prefers_the_active_node_and_skips_sealed_ones() {
    let standby = stub(429, 200).await;
    let sealed = stub(503, 503).await;
    let active = stub(200, 200).await;
    let nodes = nodes_for(
        &[standby.addr.clone(), sealed.addr.clone(), active.addr.clone()],
        SLOW,
    );
    assert_eq!(nodes.health().await.unwrap().status, Active);
    let states: Vec<NodeState> = nodes.states().into_iter().map(|(_, s)| s).collect();
    assert_eq!(
        states,
        vec![Reported(Standby), Reported(Sealed), Reported(Active)]
    );
    get(&nodes).await.unwrap();
    assert_eq!(
        active.requests.load(Ordering::SeqCst),
        2,
        "health, then the request"
    );
    assert_eq!(standby.requests.load(Ordering::SeqCst), 1, "health only");
}

/// When every node fails, each request tries one node, a different one each time: the
/// breaker's single probe walks the addresses instead of hammering one (or all).
#[tokio::test]
async fn with_every_node_failing_each_request_tries_one_node_in_turn() {
    let a = stub(503, 503).await;
    let b = stub(503, 503).await;
    let c = stub(503, 503).await;
    let nodes = nodes_for(&[a.addr.clone(), b.addr.clone(), c.addr.clone()], SLOW);
    // The first request tries all three (they were unknown) and marks them failed.
    assert_eq!(get(&nodes).await.unwrap_err().status(), Some(503));
    let counts = || [&a, &b, &c].map(|s| s.requests.load(Ordering::SeqCst));
    let start = counts();
    for _ in 0..6 {
        assert!(get(&nodes).await.unwrap_err().is_node_failure());
    }
    let end = counts();
    let per_node: Vec<u64> = end.iter().zip(start).map(|(e, s)| e - s).collect();
    assert_eq!(per_node, vec![2, 2, 2], "{per_node:?}");
    // A node that comes back answers the probe that reaches it, and is used from then on.
    b.answer.store(200, Ordering::SeqCst);
    let mut ok = 0;
    for _ in 0..3 {
        ok += u32::from(get(&nodes).await.is_ok());
    }
    assert!(ok >= 1);
    let before = b.requests.load(Ordering::SeqCst);
    get(&nodes).await.unwrap();
    assert_eq!(b.requests.load(Ordering::SeqCst), before + 1);
}

/// A failure asks the background prober for a round after `spacing`, not `interval`; a node
/// that recovered is found by that round without a request having to fail on it first.
#[tokio::test]
async fn a_failure_brings_the_next_health_round_forward() {
    let a = stub(200, 200).await;
    let b = stub(429, 200).await;
    let schedule = Schedule {
        interval: Duration::from_secs(3600),
        spacing: Duration::from_millis(200),
        background: true,
    };
    let nodes = nodes_for(&[a.addr.clone(), b.addr.clone()], schedule);
    get(&nodes).await.unwrap(); // starts the prober: first round at once
    let wait_health = |want: Vec<NodeState>| {
        let nodes = &nodes;
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            loop {
                let states: Vec<NodeState> = nodes.states().into_iter().map(|(_, s)| s).collect();
                if states == want {
                    return;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{states:?}, wanted {want:?}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    wait_health(vec![Reported(Active), Reported(Standby)]).await;
    // a is sealed: the next request fails over to b and kicks a round.
    a.health.store(503, Ordering::SeqCst);
    a.answer.store(503, Ordering::SeqCst);
    get(&nodes).await.unwrap();
    wait_health(vec![Reported(Sealed), Reported(Standby)]).await;
    // a is unsealed and b's leader is gone; a round only comes when something fails.
    a.health.store(200, Ordering::SeqCst);
    a.answer.store(200, Ordering::SeqCst);
    b.answer.store(307, Ordering::SeqCst);
    assert_eq!(get(&nodes).await.unwrap_err().status(), Some(307));
    wait_health(vec![Reported(Active), Reported(Standby)]).await;
    let before = a.requests.load(Ordering::SeqCst);
    get(&nodes).await.unwrap();
    assert_eq!(
        a.requests.load(Ordering::SeqCst),
        before + 1,
        "back on the active node"
    );
}

#[tokio::test]
async fn the_prober_ends_with_the_client() {
    let a = stub(200, 200).await;
    let b = stub(429, 200).await;
    let schedule = Schedule {
        interval: Duration::from_millis(50),
        spacing: Duration::from_millis(50),
        background: true,
    };
    let nodes = nodes_for(&[a.addr.clone(), b.addr.clone()], schedule);
    get(&nodes).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(nodes);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let after_drop = a.requests.load(Ordering::SeqCst);
    assert!(after_drop >= 3, "rounds ran: {after_drop}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(a.requests.load(Ordering::SeqCst), after_drop);
}

/// During a total outage the requests that walk the addresses (each on a node already known
/// not to serve) do not ask for extra health rounds: only the regular interval probes.
#[tokio::test]
async fn failures_of_nodes_known_down_ask_for_no_extra_rounds() {
    let a = stub(503, 503).await;
    let b = stub(503, 503).await;
    let schedule = Schedule {
        interval: Duration::from_secs(3600),
        spacing: Duration::from_millis(50),
        background: true,
    };
    let nodes = nodes_for(&[a.addr.clone(), b.addr.clone()], schedule);
    get(&nodes).await.unwrap_err();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    // Sealed (by a probe) or failed (by a request, which may land after the probe).
    while nodes.states().iter().any(|(_, s)| rank(*s).is_some()) {
        assert!(tokio::time::Instant::now() < deadline, "{:?}", nodes.states());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Let a round kicked by the first request's failures finish.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = a.requests.load(Ordering::SeqCst) + b.requests.load(Ordering::SeqCst);
    for _ in 0..6 {
        get(&nodes).await.unwrap_err();
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = a.requests.load(Ordering::SeqCst) + b.requests.load(Ordering::SeqCst);
    assert_eq!(after - before, 6, "one request each, no health rounds");
}
