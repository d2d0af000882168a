//! Recovery from a sealed OpenBao, with the release binary against one dev server.
//!
//! Target (the project's issue): BENCH_CERTS (500) certificates due while OpenBao is sealed for
//! BENCH_SEAL_SECS (60): every one renewed within 10 s of the unseal, and the requests sent to
//! Vault during the outage at most one per second per issuer on average.
//!
//! 1. dev server, PKI, AppRole; BENCH_CERTS ECDSA P-256 certificates of one Issuer, issued by
//!    `certkeeper run` (certkeeper's default issuer limits unless BENCH_RATE is set);
//! 2. seal OpenBao, then `certkeeper renew --all --wait 0` (files the request; the daemon takes
//!    it within a second): every certificate is due while Vault answers 503;
//! 3. keep it sealed BENCH_SEAL_SECS, counting requests twice: certkeeper's own counter
//!    (`certkeeper_vault_requests_total`, all labels, delta seal..unseal) and the HTTP requests
//!    seen on the wire by a counting TCP proxy between certkeeper and OpenBao (a sealed OpenBao
//!    audits nothing, so its audit log cannot tell); also certkeeper's CPU, bytes written and
//!    failures recorded meanwhile (attempts its gate refuses locally never reach Vault);
//! 4. unseal; a certificate counts as renewed when its revision in `/api/v1/status` went up
//!    (a new certificate verified, written and recorded), checked afterwards against a changed
//!    serial and a later notAfter. Expect about the next probe (at most 5 s after the unseal)
//!    plus (BENCH_CERTS - burst) / ratePerSecond: the gate releases them at its rate.
//!
//! `scripts/bench-recovery` runs it. Knobs: BENCH_CERTS (500), BENCH_SEAL_SECS (60), BENCH_RATE
//! (issuers.ratePerSecond; unset: certkeeper's default).
#![allow(clippy::unwrap_used)] // a benchmark states its expectations by unwrapping

mod common;

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use common::daemon::{Bench, issuer_limits_text, pass, total, verdict};
use common::{env_or, listing_only};

/// The issue's targets.
const MAX_REQ_PER_SEC: f64 = 1.0;
const MAX_RECOVERY_SECS: f64 = 10.0;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    if listing_only() {
        return Ok(());
    }
    let n = env_or("BENCH_CERTS", 500);
    let seal_secs = env_or("BENCH_SEAL_SECS", 60) as u64;

    // 1. Everything issued and idle.
    let (b, daemon) = Bench::start(n).await?;
    let admin = &b.admin;

    // 2. Seal, then make everything due.
    let pid = daemon.pid();
    let start = b.snap(pid).await?;
    admin.seal().await?;
    let t_seal = Instant::now();
    if admin.health().await.ok() != Some(503) {
        bail!("OpenBao did not report itself sealed");
    }

    // 3. The outage: one sample a second of certkeeper's counter and the proxy's.
    let held = b.hold(pid, &start, t_seal, seal_secs).await?;
    let sealed_secs = t_seal.elapsed().as_secs_f64();
    let end = &held.end;

    // 4. Unseal; every certificate's revision must go up.
    let t_unseal = Instant::now();
    b.bao.unseal().await?;
    let active_secs = t_unseal.elapsed().as_secs_f64();
    let r = b.renewals(daemon, t_unseal, Duration::from_secs(120)).await;

    let outage_ours = total(&end.metrics) - total(&start.metrics);
    let outage_wire = end.wire.requests - start.wire.requests;
    let ours_rate = outage_ours as f64 / sealed_secs;
    let wire_rate = outage_wire as f64 / sealed_secs;
    let rate_ok = ours_rate <= MAX_REQ_PER_SEC && wire_rate <= MAX_REQ_PER_SEC;

    println!(
        "certificates: {n} ECDSA P-256, one Issuer (AppRole), issued in {:.1} s; issuer limits: {}",
        b.issue_secs,
        issuer_limits_text()
    );
    println!(
        "sealed:                         {sealed_secs:.1} s (renew --all filed {:.2} s after the seal)",
        held.renew_cli_secs
    );
    println!(
        "requests during the outage:     {outage_ours} by certkeeper's counter, {outage_wire} on the wire"
    );
    println!(
        "requests/s during the outage:   {ours_rate:.3} (counter), {wire_rate:.3} (wire); target <= {MAX_REQ_PER_SEC} per issuer: {}",
        pass(rate_ok)
    );
    held.print_requests(&start);
    println!(
        "  circuit at unseal: {}; certificates with a failure recorded: {}; renewed while sealed: {}",
        end.circuit, held.failing, held.renewed
    );
    println!(
        "  certkeeper during the outage: {:.2} s CPU, {:.1} MiB written (wchar: mostly the /metrics and status answers this bench polls each second), {} log lines, >= {} failures recorded ({:.1}/s)",
        end.cpu - start.cpu,
        end.written.saturating_sub(start.written) as f64 / (1024.0 * 1024.0),
        end.log.saturating_sub(start.log),
        held.outage.failures_recorded,
        held.outage.failures_recorded as f64 / sealed_secs
    );
    println!("OpenBao active again:           {active_secs:.2} s after the unseal request");
    r.print("after unseal:           ", n, MAX_RECOVERY_SECS, b.root());
    println!(
        "requests from unseal to the end: {} (counter), {} (wire); renewed with the same serial or notAfter: {}",
        total(&r.metrics) - total(&end.metrics),
        r.wire.requests - end.wire.requests,
        r.not_really
    );
    verdict(rate_ok && r.ok(n, MAX_RECOVERY_SECS), "recovery")
}
