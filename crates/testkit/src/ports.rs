//! Free loopback TCP ports for test servers.
//!
//! Tests run in parallel threads (and test binaries may run in parallel processes), each starting
//! servers on "free" ports. Asking the kernel for port 0 hands out ports from the ephemeral range,
//! which outgoing connections also use, and a just-released port may be handed out again to a
//! neighbour before our server binds it. To keep that race small:
//! - ports are picked at random in 20000..32000, below Linux's ephemeral range (32768..60999), so
//!   client sockets never sit on them;
//! - a port is only handed out if both it and `port + 1` can be bound right now, and both are
//!   remembered process-wide and never handed out twice: OpenBao silently binds its cluster
//!   listener on `api port + 1` when no `cluster_address` is configured (its dev listener always does).

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

const LOW: u16 = 20_000;
const HIGH: u16 = 32_000;

fn handed_out() -> &'static Mutex<HashSet<u16>> {
    static SET: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    SET.get_or_init(|| Mutex::new(HashSet::new()))
}

fn bindable(port: u16) -> bool {
    TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// A loopback port that is free now (and whose successor is free too), never returned before by
/// this process. Falls back to a kernel-chosen port if the low range looks exhausted.
pub fn free_port() -> u16 {
    let mut set = handed_out()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    for _ in 0..2_000 {
        let span = u64::from(HIGH - LOW);
        let port = LOW + u16::try_from(random_u64() % span).unwrap_or(0);
        if set.contains(&port) || set.contains(&(port + 1)) {
            continue;
        }
        if bindable(port) && bindable(port + 1) {
            set.insert(port);
            set.insert(port + 1);
            return port;
        }
    }
    // Practically unreachable; let the kernel choose (still recorded so we never repeat it).
    loop {
        let port = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or(0);
        if port != 0 && port < u16::MAX && !set.contains(&port) && !set.contains(&(port + 1)) {
            set.insert(port);
            set.insert(port + 1);
            return port;
        }
    }
}

/// 64 random bits, from /dev/urandom (falling back to a clock-and-counter mix).
pub(crate) fn random_u64() -> u64 {
    let mut buf = [0u8; 8];
    if read_urandom(&mut buf).is_ok() {
        return u64::from_le_bytes(buf);
    }
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    (nanos ^ (u64::from(std::process::id()) << 32)).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ n
}

/// `bytes` random bytes as lowercase hex (for tokens, names).
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    if read_urandom(&mut buf).is_err() {
        for chunk in buf.chunks_mut(8) {
            let r = random_u64().to_le_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn read_urandom(buf: &mut [u8]) -> std::io::Result<()> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")?.read_exact(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_and_bindable() {
        let ports: Vec<u16> = (0..50).map(|_| free_port()).collect();
        let unique: HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(unique.len(), ports.len());
        for p in &ports {
            // neither the port nor its successor was handed out twice
            assert!(!unique.contains(&(p + 1)), "{p} and {} both handed out", p + 1);
            assert!(bindable(*p));
        }
    }

    #[test]
    fn random_hex_has_requested_length() {
        let a = random_hex(16);
        assert_eq!(a.len(), 32);
        assert_ne!(a, random_hex(16));
    }
}
