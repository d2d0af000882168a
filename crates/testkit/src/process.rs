//! Child processes that cannot outlive their owner.
//!
//! Every server the harness starts (bao, etcd, kube-apiserver) is a [`ManagedProcess`]:
//! - it runs in its own process group, and dropping the value SIGKILLs the whole group and reaps it
//!   (also when a test panics, since unwinding drops it);
//! - it gets `PR_SET_PDEATHSIG(SIGKILL)`, so it dies if the test process dies without unwinding
//!   (SIGKILL, abort, a timeout killing the test binary).
//!
//! Linux sends the parent-death signal when the *thread* that forked the child exits, not the
//! process. Tokio's blocking-pool threads exit after 10 s idle, and test threads end with their
//! test, so all children are forked from one dedicated thread that lives as long as the process.
//! stdout and stderr go to a log file, which [`ManagedProcess::log_tail`] reads for error messages.

use std::fs::File;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;

use anyhow::{Context, Result, anyhow};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

/// The long-lived thread that forks every child (see the module docs for why).
fn spawner() -> Result<&'static mpsc::Sender<SpawnRequest>> {
    static SPAWNER: OnceLock<mpsc::Sender<SpawnRequest>> = OnceLock::new();
    if let Some(tx) = SPAWNER.get() {
        return Ok(tx);
    }
    let (tx, rx) = mpsc::channel::<SpawnRequest>();
    let started = std::thread::Builder::new()
        .name("testkit-spawner".into())
        .spawn(move || {
            for (mut cmd, reply) in rx {
                // The requester may have given up; nothing to do then.
                let _ = reply.send(cmd.spawn());
            }
        });
    match started {
        Ok(_) => Ok(SPAWNER.get_or_init(|| tx)),
        Err(e) => Err(anyhow!("cannot start the process spawner thread: {e}")),
    }
}

/// A running child process in its own process group, killed (group-wide) on drop.
#[derive(Debug)]
pub struct ManagedProcess {
    name: String,
    pid: u32,
    child: Option<Child>,
    log_path: PathBuf,
}

impl ManagedProcess {
    /// Spawns `cmd` with stdin from /dev/null and stdout+stderr appended to `log_path`.
    pub fn spawn(name: &str, mut cmd: Command, log_path: &Path) -> Result<Self> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(log_path)
            .with_context(|| format!("opening log file {}", log_path.display()))?;
        let log_err = log.try_clone().context("duplicating the log file handle")?;
        cmd.stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .process_group(0);
        let parent = std::process::id();
        // SAFETY: the hook runs between fork and exec; it only calls prctl(2) and getppid(2),
        // both async-signal-safe, and builds its error without allocating.
        #[allow(unsafe_code)]
        unsafe {
            cmd.pre_exec(move || {
                nix::sys::prctl::set_pdeathsig(Some(Signal::SIGKILL))
                    .map_err(|e| io::Error::from_raw_os_error(e as i32))?;
                // The parent may have died before prctl took effect: then never start.
                if std::os::unix::process::parent_id() != parent {
                    return Err(io::Error::from_raw_os_error(nix::errno::Errno::ESRCH as i32));
                }
                Ok(())
            });
        }
        let (reply_tx, reply_rx) = mpsc::channel();
        spawner()?
            .send((cmd, reply_tx))
            .map_err(|_| anyhow!("the process spawner thread is gone"))?;
        let child = reply_rx
            .recv()
            .map_err(|_| anyhow!("the process spawner thread did not answer"))?
            .with_context(|| format!("spawning {name}"))?;
        Ok(Self {
            name: name.to_string(),
            pid: child.id(),
            child: Some(child),
            log_path: log_path.to_path_buf(),
        })
    }

    /// The process id (also its process-group id).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// What the process is called in messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file that receives its stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Whether the process is still running (reaps it if it exited).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The exit status if the process has exited, as text.
    pub fn exit_status(&mut self) -> Option<String> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            _ => None,
        }
    }

    /// SIGKILLs the process group now and reaps the child. Idempotent.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pgid = Pid::from_raw(i32::try_from(self.pid).unwrap_or(i32::MAX));
            if killpg(pgid, Signal::SIGKILL).is_err() {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log_path, lines)
    }

    /// The whole log so far.
    pub fn log(&self) -> String {
        std::fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }
}

impl Drop for ManagedProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The last `lines` lines of a text file (empty if unreadable).
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Whether a process with this pid exists (zombies count as existing).
pub fn pid_exists(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else { return false };
    nix::sys::signal::kill(Pid::from_raw(raw), None).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn killed_on_drop_with_its_group() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("sh.log");
        let mut cmd = Command::new("sh");
        // a grandchild in the same group, plus the shell itself
        cmd.arg("-c").arg("sleep 300 & echo started; wait");
        let mut p = ManagedProcess::spawn("sh", cmd, &log).unwrap();
        let pid = p.pid();
        assert!(p.is_running());
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(p.log().contains("started"));
        let group_before = count_group(pid);
        assert!(
            group_before >= 2,
            "expected shell + sleep in group {pid}, saw {group_before}"
        );
        drop(p);
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(!pid_exists(pid));
        assert_eq!(count_group(pid), 0, "group {pid} still has members");
    }

    fn count_group(pgid: u32) -> usize {
        let mut n = 0;
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // fields after the ")" : state ppid pgrp ...
            let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
                continue;
            };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            if fields.get(2) == Some(&pgid.to_string().as_str()) && fields.first() != Some(&"Z") {
                n += 1;
            }
        }
        n
    }
}
