//! Hooks: commands the administrator configures to run after a certificate's files changed
//! (reload a server, copy a keystore).
//!
//! A hook that fails (exits non-zero, times out, cannot start) is a failure of the certificate,
//! of class `apply` ([`HookError::class`]): the engine retries the hooks on their schedule and
//! never issues the certificate again for it. The hooks run in order and stop at the first
//! failure (a later hook may rely on an earlier one); a retry runs them all again.
//!
//! A hook is not trusted to behave: its output is captured up to [`CAPTURE_LIMIT`] per stream
//! (the rest is read and discarded, so it never blocks on a full pipe and never fills our
//! memory), and it runs in its own process group, so a timeout kills everything it started,
//! not only the direct child.

use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};

use certkeeper_core::FailureClass;

use crate::config::{CertOutput, Hook};

/// Bytes kept of each of a hook's output streams.
pub const CAPTURE_LIMIT: usize = 64 * 1024;

/// Bytes of stderr quoted in the log line of a failed hook.
const LOGGED_STDERR: usize = 500;

/// One output stream of a hook: its first [`CAPTURE_LIMIT`] bytes, and how many it wrote.
#[derive(Debug, Default)]
pub struct Captured {
    pub bytes: Vec<u8>,
    pub total: u64,
}

#[derive(Debug)]
pub enum HookResult {
    Exited(ExitStatus),
    /// Killed, with its whole process group, after the hook's timeout.
    TimedOut,
    NotStarted(std::io::Error),
    /// Started, but waiting for it failed (it was killed with its group).
    WaitFailed(std::io::Error),
}

#[derive(Debug)]
pub struct HookRun {
    pub result: HookResult,
    pub stdout: Captured,
    pub stderr: Captured,
    pub elapsed: Duration,
}

/// Why a hook failed. The program is named, never its arguments (they may carry secrets).
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("hook {index} ({program}) exited with {status}{}", stderr_suffix(.stderr))]
    Exited {
        index: usize,
        program: String,
        status: ExitStatus,
        /// The start of its stderr, lossily decoded.
        stderr: String,
    },
    #[error("hook {index} ({program}) timed out after {}s and was killed with its process group",
            .timeout.as_secs_f64())]
    TimedOut {
        index: usize,
        program: String,
        timeout: Duration,
    },
    #[error("hook {index} ({program}) could not start: {source}")]
    NotStarted {
        index: usize,
        program: String,
        source: std::io::Error,
    },
    #[error("hook {index} ({program}) could not be waited for and was killed: {source}")]
    WaitFailed {
        index: usize,
        program: String,
        source: std::io::Error,
    },
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!(": {stderr}")
    }
}

impl HookError {
    /// Always [`FailureClass::Apply`]: the certificate is stored; only its hooks are retried.
    pub fn class(&self) -> FailureClass {
        FailureClass::Apply
    }
}

/// Run the certificate's hooks one after the other, stopping at the first that fails.
pub async fn run_hooks(id: &str, output: &CertOutput) -> Result<(), HookError> {
    for (index, hook) in output.hooks.iter().enumerate() {
        let (Some(run), Some(program)) = (run_hook(id, &output.dir, hook).await, hook.command.first()) else {
            continue;
        };
        log(id, program, hook.timeout, &run);
        let program = program.clone();
        match run.result {
            HookResult::Exited(status) if status.success() => {}
            HookResult::Exited(status) => {
                let stderr = &run.stderr.bytes[..run.stderr.bytes.len().min(LOGGED_STDERR)];
                return Err(HookError::Exited {
                    index,
                    program,
                    status,
                    stderr: String::from_utf8_lossy(stderr).trim().to_owned(),
                });
            }
            HookResult::TimedOut => {
                return Err(HookError::TimedOut {
                    index,
                    program,
                    timeout: hook.timeout,
                });
            }
            HookResult::NotStarted(source) => {
                return Err(HookError::NotStarted {
                    index,
                    program,
                    source,
                });
            }
            HookResult::WaitFailed(source) => {
                return Err(HookError::WaitFailed {
                    index,
                    program,
                    source,
                });
            }
        }
    }
    Ok(())
}

fn log(id: &str, program: &str, timeout: Duration, run: &HookRun) {
    let elapsed_ms = u64::try_from(run.elapsed.as_millis()).unwrap_or(u64::MAX);
    match &run.result {
        HookResult::Exited(status) if status.success() => {
            tracing::info!(certificate = id, hook = program, elapsed_ms, "hook ran")
        }
        HookResult::Exited(status) => {
            let stderr = &run.stderr.bytes[..run.stderr.bytes.len().min(LOGGED_STDERR)];
            tracing::warn!(
                certificate = id,
                hook = program,
                status = %status,
                stderr = %String::from_utf8_lossy(stderr).trim(),
                stderr_bytes = run.stderr.total,
                "hook failed"
            )
        }
        HookResult::NotStarted(e) => {
            tracing::warn!(certificate = id, hook = program, error = %e, "hook could not start")
        }
        HookResult::WaitFailed(e) => {
            tracing::warn!(certificate = id, hook = program, error = %e, "hook could not be waited for and was killed")
        }
        HookResult::TimedOut => tracing::warn!(
            certificate = id,
            hook = program,
            timeout = ?timeout,
            "hook timed out and was killed with its process group"
        ),
    }
}

/// Kills the hook's process group when dropped while armed: on a timeout, and when the
/// daemon drops the hook's future (shutdown), so nothing it started outlives it unnoticed.
/// Disarmed when the hook finished by itself: what it deliberately left running stays.
struct GroupGuard {
    pgid: Option<Pid>,
}

impl GroupGuard {
    fn kill(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            // ESRCH: every member already exited.
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Run one hook with its timeout. `None` for an empty command (nothing to run).
pub async fn run_hook(id: &str, dir: &Path, hook: &Hook) -> Option<HookRun> {
    let (program, args) = hook.command.split_first()?;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        // A hook is not the service: it must not speak to systemd in its name.
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .env("CERTKEEPER_CERTIFICATE", id)
        .env("CERTKEEPER_OUTPUT_DIR", dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group (pgid = its pid): everything it forks can be killed at once.
        .process_group(0)
        .kill_on_drop(true);
    let started = Instant::now();
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            return Some(HookRun {
                result: HookResult::NotStarted(e),
                stdout: Captured::default(),
                stderr: Captured::default(),
                elapsed: started.elapsed(),
            });
        }
    };
    // Taken now: once the child is reaped, `id()` no longer answers, but the group lives on
    // as long as any of its members does.
    let mut guard = GroupGuard {
        pgid: child
            .id()
            .and_then(|pid| i32::try_from(pid).ok())
            .map(Pid::from_raw),
    };
    let (out_pipe, err_pipe) = (child.stdout.take(), child.stderr.take());
    let mut stdout = Captured::default();
    let mut stderr = Captured::default();
    // Done when the hook exited and both pipes are closed (as `Command::output` did): a
    // background process still holding them counts against the timeout.
    let finished = tokio::time::timeout(hook.timeout, async {
        let (status, (), ()) = tokio::join!(
            child.wait(),
            capture(out_pipe, &mut stdout),
            capture(err_pipe, &mut stderr)
        );
        status
    })
    .await;
    let result = match finished {
        Ok(Ok(status)) => {
            guard.pgid = None;
            HookResult::Exited(status)
        }
        Ok(Err(e)) => HookResult::WaitFailed(e),
        Err(_) => HookResult::TimedOut,
    };
    guard.kill();
    // Reap the direct child (a no-op when it was waited for); the rest of its group was
    // reparented to init, which reaps them.
    if !matches!(result, HookResult::Exited(_)) {
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
    Some(HookRun {
        result,
        stdout,
        stderr,
        elapsed: started.elapsed(),
    })
}

/// Read a pipe to its end, keeping the first [`CAPTURE_LIMIT`] bytes.
async fn capture(pipe: Option<impl AsyncRead + Unpin>, into: &mut Captured) {
    let Some(mut pipe) = pipe else {
        return;
    };
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match pipe.read(&mut buf).await {
            // A read error ends the capture; the hook's exit is still waited for.
            Ok(0) | Err(_) => return,
            Ok(n) => {
                into.total += n as u64;
                let room = CAPTURE_LIMIT - into.bytes.len();
                into.bytes.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: String, timeout: Duration) -> Hook {
        Hook {
            command: vec!["sh".into(), "-c".into(), script],
            timeout,
        }
    }

    #[tokio::test]
    async fn hooks_run_with_their_environment_and_time_out() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        let output = CertOutput {
            dir: dir.path().to_owned(),
            key_mode: 0o600,
            cert_mode: 0o644,
            user: None,
            group: None,
            verify: Vec::new(),
            hooks: vec![
                sh(
                    format!("echo $CERTKEEPER_CERTIFICATE > {}", marker.display()),
                    Duration::from_secs(10),
                ),
                Hook {
                    command: vec!["sleep".into(), "30".into()],
                    timeout: Duration::from_millis(200),
                },
            ],
        };
        let t = Instant::now();
        let error = run_hooks("default/web", &output).await.unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(10), "the slow hook was cut off");
        assert_eq!(std::fs::read_to_string(&marker).unwrap().trim(), "default/web");
        assert_eq!(
            error.to_string(),
            "hook 1 (sleep) timed out after 0.2s and was killed with its process group"
        );
        assert_eq!(error.class(), FailureClass::Apply);
    }

    /// A failing hook is an error naming it, its status and its stderr; the hooks after it do
    /// not run; a hook that cannot start is an error too.
    #[tokio::test]
    async fn a_failing_hook_stops_the_rest_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let after = dir.path().join("after");
        let output = |first: Hook| CertOutput {
            dir: dir.path().to_owned(),
            key_mode: 0o600,
            cert_mode: 0o644,
            user: None,
            group: None,
            verify: Vec::new(),
            hooks: vec![
                first,
                sh(format!("touch {}", after.display()), Duration::from_secs(10)),
            ],
        };
        let failing = sh(
            "echo 'nginx: [emerg] unexpected end of file' >&2; exit 1".into(),
            Duration::from_secs(10),
        );
        let error = run_hooks("default/web", &output(failing)).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            "hook 0 (sh) exited with exit status: 1: nginx: [emerg] unexpected end of file"
        );
        assert!(!after.exists(), "the hook after the failing one did not run");
        let missing = Hook {
            command: vec!["/nonexistent/reload".into()],
            timeout: Duration::from_secs(10),
        };
        let error = run_hooks("default/web", &output(missing)).await.unwrap_err();
        assert!(
            matches!(&error, HookError::NotStarted { program, .. } if program == "/nonexistent/reload"),
            "{error}"
        );
        assert!(!after.exists());
        let ok = sh("true".into(), Duration::from_secs(10));
        run_hooks("default/web", &output(ok)).await.unwrap();
        assert!(after.exists());
    }

    /// Gone, or a zombie waiting for init to reap it: either way it no longer runs.
    fn runs(pid: i32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => stat
                .rsplit_once(") ")
                .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X')),
            Err(_) => nix::sys::signal::kill(Pid::from_raw(pid), None).is_ok(),
        }
    }

    #[tokio::test]
    async fn hostile_hook_grandchild_is_killed_on_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let hook = sh(
            format!("sleep 600 & echo $! > {}; sleep 600", pidfile.display()),
            Duration::from_secs(1),
        );
        let t = Instant::now();
        let run = run_hook("default/web", dir.path(), &hook).await.unwrap();
        assert!(matches!(run.result, HookResult::TimedOut), "{:?}", run.result);
        assert!(t.elapsed() < Duration::from_secs(10));
        let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
        // SIGKILL is delivered asynchronously; give it a moment.
        let deadline = Instant::now() + Duration::from_secs(5);
        while runs(pid) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            !runs(pid),
            "the hook's background process {pid} survived its timeout"
        );
    }

    #[tokio::test]
    async fn hostile_hook_output_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let hook = sh(
            "head -c 50000000 /dev/zero; head -c 50000000 /dev/zero >&2; exit 3".into(),
            Duration::from_secs(120),
        );
        let run = run_hook("default/web", dir.path(), &hook).await.unwrap();
        assert!(
            matches!(run.result, HookResult::Exited(s) if s.code() == Some(3)),
            "the hook ran to its end: {:?}",
            run.result
        );
        for stream in [&run.stdout, &run.stderr] {
            assert_eq!(stream.bytes.len(), CAPTURE_LIMIT);
            assert_eq!(stream.total, 50_000_000, "everything was read");
        }
    }
}
