//! An issuer-wide refusal (Vault answers 403 "permission denied"), with the release binary
//! against one dev server.
//!
//! Target (issue 10): BENCH_CERTS (500) certificates due while the issuer's AppRole has lost its
//! sign policy for BENCH_FAULT_SECS (60): at most one request per second to Vault for the issuer
//! during the fault, logins included, and every certificate renewed within 10 s of the restore.
//!
//! 1. dev server, PKI, AppRole role `bench` with the sign policy; BENCH_CERTS ECDSA P-256
//!    certificates of one Issuer, issued by `certkeeper run` (certkeeper's default issuer limits
//!    unless BENCH_RATE is set);
//! 2. the fault: the role's `token_policies` emptied (its new tokens get `default` only, so a
//!    login succeeds and every sign answers 403) and its live tokens revoked
//!    (`sys/leases/revoke-prefix/auth/approle/login`, root token), so certkeeper's cached token
//!    is refused too; then `certkeeper renew --all --wait 0`: every certificate is due;
//! 3. hold it BENCH_FAULT_SECS, counting requests twice: certkeeper's own counter
//!    (`certkeeper_vault_requests_total`, all labels, delta) and the HTTP requests seen on the
//!    wire by a counting TCP proxy between certkeeper and OpenBao, logins (`/v1/auth/.../login`)
//!    and signs apart; and the tokens Vault holds (`LIST auth/token/accessors`): each login
//!    leaves one in Vault's storage until its TTL;
//! 4. restore the policy on the role; a certificate counts as renewed when its revision in
//!    `/api/v1/status` went up, checked afterwards against a changed serial and a later notAfter.
//!
//! `scripts/bench-refusal` runs it. Knobs: BENCH_CERTS (500), BENCH_FAULT_SECS (60), BENCH_RATE
//! (issuers.ratePerSecond; unset: certkeeper's default), BENCH_RESTORE_LIMIT_SECS (300: how long
//! to wait for the renewals after the restore).
#![allow(clippy::unwrap_used)] // a benchmark states its expectations by unwrapping

mod common;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use certkeeper_testkit::Admin;
use common::daemon::{Bench, issuer_limits_text, pass, total, total_with, verdict};
use common::{env_or, listing_only};
use reqwest::Method;
use serde_json::json;

/// The issue's targets.
const MAX_REQ_PER_SEC: f64 = 1.0;
const MAX_RECOVERY_SECS: f64 = 10.0;

/// Tokens Vault holds (root's included).
async fn tokens(admin: &Admin) -> Result<usize> {
    let v = admin.list("auth/token/accessors").await?;
    Ok(v.pointer("/data/keys")
        .and_then(|k| k.as_array())
        .context("auth/token/accessors: no data.keys")?
        .len())
}

/// The role's token policies: what its next logins get.
async fn set_policies(admin: &Admin, policies: &[&str]) -> Result<()> {
    admin
        .write(
            &format!("auth/approle/role/{}", Bench::ROLE),
            json!({"token_policies": policies}),
        )
        .await
        .map(|_| ())
}

/// Checks the fault from outside certkeeper: a fresh login succeeds and its sign answers 403.
async fn check_refused(b: &Bench) -> Result<()> {
    let v = b
        .admin
        .write(
            "auth/approle/login",
            json!({"role_id": b.role_id, "secret_id": b.secret_id}),
        )
        .await?;
    let token = v
        .pointer("/auth/client_token")
        .and_then(|t| t.as_str())
        .context("login: no client_token")?;
    // The ACL check comes before the CSR is parsed: without the policy, 403.
    let (code, _, body) = b
        .admin
        .with_token(token)
        .raw(Method::POST, &b.pki.sign_path, Some(&json!({"csr": "x"})))
        .await?;
    if code != 403 {
        bail!("a sign without the policy answered {code}, not 403: {body}");
    }
    b.admin.revoke_token(token).await
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    if listing_only() {
        return Ok(());
    }
    let n = env_or("BENCH_CERTS", 500);
    let fault_secs = env_or("BENCH_FAULT_SECS", 60) as u64;
    let limit = Duration::from_secs(env_or("BENCH_RESTORE_LIMIT_SECS", 300));

    // 1. Everything issued and idle.
    let (b, daemon) = Bench::start(n).await?;
    let admin = &b.admin;
    let tokens_idle = tokens(admin).await?;

    // 2. The fault: new tokens without the policy, the live ones revoked.
    let pid = daemon.pid();
    set_policies(admin, &[]).await?;
    admin
        .write("sys/leases/revoke-prefix/auth/approle/login", json!({}))
        .await
        .context("revoking the role's tokens")?;
    check_refused(&b).await?;
    let tokens_fault = tokens(admin).await?;
    let start = b.snap(pid).await?;
    let t_fault = Instant::now();

    // 3. Everything due while the fault holds: one sample a second of certkeeper's counter and
    //    the proxy's.
    let held = b.hold(pid, &start, t_fault, fault_secs).await?;
    let end = &held.end;
    let tokens_restore = tokens(admin).await?;

    // 4. Restore the policy; every certificate's revision must go up.
    set_policies(admin, &[&b.pki.policy]).await?;
    let t_restore = Instant::now();
    let fault_held = (t_restore - t_fault).as_secs_f64();
    let r = b.renewals(daemon, t_restore, limit).await;
    let tokens_end = tokens(admin).await?;

    let ours = total(&end.metrics) - total(&start.metrics);
    let wire = end.wire - start.wire;
    let ours_rate = ours as f64 / fault_held;
    let wire_rate = wire.requests as f64 / fault_held;
    let rate_ok = ours_rate <= MAX_REQ_PER_SEC && wire_rate <= MAX_REQ_PER_SEC;
    let grew = |label: &str| total_with(&end.metrics, label) - total_with(&start.metrics, label);

    println!(
        "certificates: {n} ECDSA P-256, one Issuer (AppRole), issued in {:.1} s; issuer limits: {}",
        b.issue_secs,
        issuer_limits_text()
    );
    println!(
        "fault:                          sign policy off the AppRole role, its tokens revoked; held {fault_held:.1} s (renew --all filed {:.2} s after)",
        held.renew_cli_secs
    );
    println!(
        "requests during the fault:      {ours} by certkeeper's counter ({} logins, {} signs), {} on the wire ({} logins, {} signs)",
        grew("operation=\"login\""),
        grew("operation=\"sign\""),
        wire.requests,
        wire.logins,
        wire.signs
    );
    println!(
        "requests/s during the fault:    {ours_rate:.3} (counter), {wire_rate:.3} (wire); target <= {MAX_REQ_PER_SEC} per issuer: {}",
        pass(rate_ok)
    );
    held.print_requests(&start);
    println!(
        "tokens in Vault:                {tokens_idle} idle before the fault, {tokens_fault} after the revocation, {tokens_restore} at the restore (+{} during the fault), {tokens_end} at the end",
        tokens_restore.saturating_sub(tokens_fault)
    );
    println!(
        "  circuit at restore: {}; certificates with a failure recorded: {}; renewed during the fault: {}",
        end.circuit, held.failing, held.renewed
    );
    println!(
        "  certkeeper during the fault: {:.2} s CPU, {} log lines, >= {} failures recorded ({:.1}/s)",
        end.cpu - start.cpu,
        end.log.saturating_sub(start.log),
        held.outage.failures_recorded,
        held.outage.failures_recorded as f64 / fault_held
    );
    r.print("after restore:          ", n, MAX_RECOVERY_SECS, b.root());
    let w_after = r.wire - end.wire;
    println!(
        "requests from restore to the end: {} (counter), {} (wire: {} logins, {} signs); renewed with the same serial or notAfter: {}",
        total(&r.metrics) - total(&end.metrics),
        w_after.requests,
        w_after.logins,
        w_after.signs,
        r.not_really
    );
    verdict(rate_ok && r.ok(n, MAX_RECOVERY_SECS), "refusal")
}
