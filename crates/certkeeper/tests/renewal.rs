//! `spec.renewal` end to end through the `certkeeper` binary against a real OpenBao (the
//! controller's twin is `crates/controller/tests/parity.rs`):
//! - `policy: Disabled`: issued once, not renewed past its renewal point, re-issued when the
//!   manifest's spec changes;
//! - a renewal window defers a renewal from the renewal point to the window;
//! - the latest safe point: when no window opens before it, the renewal starts there anyway and
//!   the status says why (certificates capped at 3 minutes by the role, a window ~30 min away).
#![allow(clippy::unwrap_used)] // tests state their expectations by unwrapping

mod common;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use certkeeper_core::time::parse_rfc3339_unix;
use certkeeper_testkit::{role_body, x509_text};
use common::*;
use serde_json::{Value, json};

/// OpenBao backdates notBefore by this much (`not_before_duration`).
const BACKDATE: u64 = 30;

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn unix(row: &Value, field: &str) -> u64 {
    let text = row[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {row}"));
    u64::try_from(parse_rfc3339_unix(text).unwrap()).unwrap()
}

/// notBefore of the served `tls.crt` in `dir`, Unix seconds.
fn not_before(dir: &Path) -> u64 {
    let crt = std::fs::read_to_string(dir.join("tls.crt")).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(crt.as_bytes()).unwrap();
    let leaf = pem.parse_x509().unwrap();
    u64::try_from(leaf.validity().not_before.timestamp()).unwrap()
}

/// An hourly window of one minute opening at the minute of `at`.
fn hourly(at: u64) -> String {
    format!(
        "  renewal:\n    policy: RenewBefore\n    windows: [{{cron: \"{} * * * *\", windowDuration: 1m}}]\n",
        at / 60 % 60
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_disabled_windows_and_the_safe_point() {
    // Each is 1h with renewBefore 59m: the renewal point is ~1 minute after issue. `window`'s
    // hourly window opens at a whole minute at least 150 s from now, after that point;
    // `forced` (3-minute certificates) has a window that opens only in ~30 minutes, after every
    // latest safe point of this test.
    let base = "  duration: 1h\n  renewBefore: 59m\n  privateKey: {algorithm: ECDSA, size: 256}\n";
    let disabled = format!("{base}  renewal: {{policy: Disabled}}\n");
    let window_open = (now_unix() + 150).div_ceil(60) * 60;
    let window = format!("{base}{}", hourly(window_open));
    let forced = format!("{base}{}", hourly(now_unix() + 1800));
    let s = setup(&[("disabled", &disabled), ("window", &window)]).await;
    // Role `short` caps certificates at 3 minutes; Issuer `short` signs with it.
    let admin = s.bao.admin();
    let (int, _) = s.sign_path.split_once("/sign/").unwrap();
    admin
        .write(&format!("{int}/roles/short"), role_body("3m", "3m", &json!({})))
        .await
        .unwrap();
    let hcl: String = [s.sign_path.clone(), format!("{int}/sign/short")]
        .iter()
        .map(|p| format!("path \"{p}\" {{ capabilities = [\"create\", \"update\"] }}\n"))
        .collect();
    admin.put_policy(&s.policy, &hcl).await.unwrap();
    let issuer = std::fs::read_to_string(s.root.join("manifests/issuer.yaml")).unwrap();
    let short_issuer = issuer
        .replace("name: vault,", "name: short,")
        .replace(&s.sign_path, &format!("{int}/sign/short"));
    std::fs::write(s.root.join("manifests/short.yaml"), short_issuer).unwrap();
    write_cert(&s.root, "forced", &forced);
    let forced_yaml = s.root.join("manifests/forced.yaml");
    let text = std::fs::read_to_string(&forced_yaml).unwrap();
    std::fs::write(
        &forced_yaml,
        text.replace("issuerRef: {name: vault}", "issuerRef: {name: short}"),
    )
    .unwrap();

    let created = Instant::now();
    let daemon = Daemon::start(&s.config);
    let rows = wait_for(&s.config, "issued", Duration::from_secs(60), &daemon, |r| {
        r.len() == 3 && r.iter().all(|x| x["ready"] == true)
    });
    let certs = s.root.join("certs/default");
    let dir = |name: &str| certs.join(format!("{name}-tls"));

    // The window case's first revision, read before its window opens.
    let row_w = row(&rows, "default/window").clone();
    let window_nb = not_before(&dir("window"));

    // Disabled: no renewal time, the reason shown; not renewed past its renewal point
    // (notBefore + 60 s); a spec change still re-issues.
    let row_d = row(&rows, "default/disabled");
    assert!(row_d["renewalTime"].is_null(), "{row_d}");
    assert!(
        row_d["renewalNote"]
            .as_str()
            .unwrap_or_default()
            .contains("automatic renewal is disabled"),
        "{row_d}"
    );
    let past_point = not_before(&dir("disabled")) + 60 + 20;
    while now_unix() < past_point {
        std::thread::sleep(Duration::from_secs(1));
    }
    let rows = status(&s.config);
    assert_eq!(
        row(&rows, "default/disabled")["revision"],
        1,
        "renewed although Disabled"
    );
    write_cert(
        &s.root,
        "disabled",
        &format!("{disabled}  ipAddresses: [127.0.0.9]\n"),
    );
    wait_for(
        &s.config,
        "disabled re-issued after the spec change",
        Duration::from_secs(60),
        &daemon,
        |r| row(r, "default/disabled")["revision"] == 2 && row(r, "default/disabled")["ready"] == true,
    );
    let text = x509_text(&dir("disabled")).unwrap();
    assert!(text.contains("IP Address:127.0.0.9"), "{text}");

    // The safe point: no window before it, so the renewal starts there, saying why.
    let rows = status(&s.config);
    let row_f = row(&rows, "default/forced").clone();
    assert!(
        row_f["renewalNote"]
            .as_str()
            .unwrap_or_default()
            .contains("outside the renewal windows"),
        "{row_f}"
    );
    let safe_point = unix(&row_f, "renewalTime");
    let not_after = unix(&row_f, "notAfter");
    assert!(safe_point < not_after, "{row_f}");
    let rev = row_f["revision"].as_u64().unwrap();
    let bound = Duration::from_secs((not_after + 60).saturating_sub(now_unix()));
    wait_for(&s.config, "forced renewed", bound, &daemon, |r| {
        row(r, "default/forced")["revision"].as_u64() > Some(rev)
    });
    let issued_at = not_before(&dir("forced")) + BACKDATE;
    assert!(
        issued_at + 1 >= safe_point && issued_at <= not_after,
        "renewed at {issued_at}, safe point {safe_point}, notAfter {not_after}"
    );

    // The window: the renewal time is moved into the window (spread over its first minute),
    // and the renewal happens there, not at the renewal point.
    let renewal = unix(&row_w, "renewalTime");
    assert!(
        (window_open..window_open + 60).contains(&renewal),
        "renewal time {renewal} outside the window opening at {window_open}: {row_w}"
    );
    assert!(
        window_nb + BACKDATE + 60 < window_open,
        "issued too late for the test: {row_w}"
    );
    let bound = Duration::from_secs((window_open + 180).saturating_sub(now_unix()));
    wait_for(&s.config, "window renewed", bound, &daemon, |r| {
        row(r, "default/window")["revision"] == 2
    });
    let issued_at = not_before(&dir("window")) + BACKDATE;
    assert!(
        issued_at + 1 >= renewal,
        "renewed at {issued_at}, before the window's time {renewal}"
    );
    eprintln!("renewal cases done {:?} after the start", created.elapsed());
    assert!(daemon.stop().success());
}
