//! certkeeper as a service: plain logs off a terminal, the systemd notify protocol, the unit
//! file (systemd-analyze verify), the man pages and shell completions generated from the CLI.
#![allow(clippy::unwrap_used)] // tests state their expectations by unwrapping

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use certkeeper_testkit::optional_tool;
use common::*;

const ESC: u8 = 0x1b;

/// A config with no manifests: the daemon starts, logs and waits, needing no Vault.
fn empty_layout() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("manifests")).unwrap();
    let config = dir.path().join("certkeeper.yaml");
    std::fs::write(
        &config,
        "manifests: manifests\nstateDir: state\noutputs: {dir: \"certs/{namespace}/{secretName}\"}\n",
    )
    .unwrap();
    (dir, config)
}

/// Waits (bounded) until the daemon's log says `what`.
fn wait_log(daemon: &Daemon, what: &str, bound: Duration) {
    let deadline = Instant::now() + bound;
    while !daemon.log().contains(what) {
        assert!(
            Instant::now() < deadline,
            "no {what:?} in the log:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn logs_to_a_file_or_pipe_carry_no_colour() {
    let (_dir, config) = empty_layout();
    // To a file (Daemon::start redirects stdout and stderr to one).
    let daemon = Daemon::start(&config);
    wait_log(&daemon, "configuration applied", Duration::from_secs(30));
    assert!(daemon.stop().success());
    let log = std::fs::read(config.with_file_name(format!("daemon-{}.log", std::process::id()))).unwrap();
    assert!(
        log.windows(7).any(|w| w == b"running"),
        "{}",
        String::from_utf8_lossy(&log)
    );
    assert!(
        !log.contains(&ESC),
        "ANSI escapes in a log file:\n{}",
        String::from_utf8_lossy(&log)
    );

    // To a pipe: a one-shot command's output and errors are plain too.
    let out = ck(&["check", "--config", config.to_str().unwrap()]);
    assert!(!out.stdout.contains(&ESC) && !out.stderr.contains(&ESC));
}

/// At a terminal (a pseudo-terminal from util-linux `script`), log lines are coloured unless
/// NO_COLOR is set. Skipped, saying so, without `script`.
#[test]
fn colour_at_a_terminal_unless_no_color() {
    let Some(script) = optional_tool("CERTKEEPER_SCRIPT", "script", "apt-get install bsdutils").unwrap()
    else {
        eprintln!("SKIPPED: no `script` (util-linux) on PATH for a pseudo-terminal");
        return;
    };
    let (dir, config) = empty_layout();
    for (no_color, coloured) in [(None, true), (Some("1"), false)] {
        let typescript = dir.path().join("typescript");
        // The daemon gets a terminal; `timeout` bounds it (SIGTERM: a clean stop).
        let inner = format!("timeout -s TERM 3 {BIN} run --config {}", config.display());
        let mut cmd = Command::new(&script);
        cmd.args(["-q", "-e", "-c", &inner])
            .arg(&typescript)
            .env("CERTKEEPER_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd.env_remove("NO_COLOR");
        if let Some(v) = no_color {
            cmd.env("NO_COLOR", v);
        }
        let mut child = cmd.spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "script did not finish");
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = std::fs::read(&typescript).unwrap();
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("certkeeper running"), "{text}");
        assert_eq!(out.contains(&ESC), coloured, "NO_COLOR={no_color:?}:\n{text}");
    }
}

/// The test's end of `$NOTIFY_SOCKET`: every datagram certkeeper sends, in order.
struct NotifySocket {
    socket: UnixDatagram,
    seen: Vec<String>,
}

impl NotifySocket {
    fn bind(path: &Path) -> NotifySocket {
        let socket = UnixDatagram::bind(path).unwrap();
        socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        NotifySocket {
            socket,
            seen: Vec::new(),
        }
    }

    /// Waits (bounded) for a datagram with the line `line`; returns it.
    fn expect(&mut self, line: &str, bound: Duration, daemon: &Daemon) -> String {
        let deadline = Instant::now() + bound;
        let mut buf = [0u8; 4096];
        loop {
            assert!(
                Instant::now() < deadline,
                "no {line:?} within {bound:?}; received {:#?}\n{}",
                self.seen,
                daemon.log()
            );
            match self.socket.recv(&mut buf) {
                Ok(n) => {
                    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                    self.seen.push(msg.clone());
                    if msg.lines().any(|l| l == line) {
                        return msg;
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("notify socket: {e}"),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_notify_ready_watchdog_reload_stop() {
    let s = setup(&[("web", "  privateKey: {algorithm: ECDSA, size: 256}\n")]).await;
    let sock_path = s.root.join("notify.sock");
    let mut notify = NotifySocket::bind(&sock_path);
    let daemon = Daemon::start_with_env(
        &s.config,
        &[
            ("NOTIFY_SOCKET", sock_path.to_str().unwrap()),
            // 400 ms: pings every 200 ms.
            ("WATCHDOG_USEC", "400000"),
        ],
    );
    let ready = notify.expect("READY=1", Duration::from_secs(60), &daemon);
    assert!(
        ready.contains("STATUS=running: 1 certificates, 1 issuers"),
        "{ready}"
    );
    assert!(
        notify.seen[0].contains("STATUS=starting"),
        "the first notification is the start-up status: {:?}",
        notify.seen
    );
    // READY=1 comes once the manifests are applied to the running engine.
    assert!(daemon.log().contains("configuration applied"), "{}", daemon.log());
    wait_for(&s.config, "web issued", Duration::from_secs(60), &daemon, |r| {
        r.len() == 1 && r[0]["ready"] == true
    });
    assert_pair(&s.root.join("certs/default/web-tls"), "web.example.com");

    // The watchdog: several pings (every 200 ms) in a bounded window.
    for _ in 0..3 {
        notify.expect("WATCHDOG=1", Duration::from_secs(5), &daemon);
    }

    // SIGHUP: RELOADING=1 with MONOTONIC_USEC, then READY=1 once the reload is applied.
    notify.seen.clear();
    nix_kill(daemon.child.id(), "HUP").unwrap();
    let reloading = notify.expect("RELOADING=1", Duration::from_secs(20), &daemon);
    let usec = reloading
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .unwrap_or_else(|| panic!("no MONOTONIC_USEC with RELOADING=1: {reloading}"));
    assert!(usec.parse::<u64>().unwrap() > 0);
    notify.expect("READY=1", Duration::from_secs(30), &daemon);

    // SIGTERM: STOPPING=1, then a clean exit.
    nix_kill(daemon.child.id(), "TERM").unwrap();
    notify.expect("STOPPING=1", Duration::from_secs(20), &daemon);
    let log_text = daemon.log();
    let status = daemon.stop();
    assert!(status.success(), "{status}\n{log_text}");
    assert!(!log_text.as_bytes().contains(&ESC));
}

/// Without NOTIFY_SOCKET the daemon sends nothing and runs as before (covered by every other
/// daemon test); with one that nobody listens on it logs one warning and keeps running.
#[test]
fn a_dead_notify_socket_does_not_stop_the_daemon() {
    let (dir, config) = empty_layout();
    let missing = dir.path().join("nobody.sock");
    let daemon = Daemon::start_with_env(&config, &[("NOTIFY_SOCKET", missing.to_str().unwrap())]);
    wait_log(&daemon, "cannot notify systemd", Duration::from_secs(30));
    wait_log(&daemon, "configuration applied", Duration::from_secs(30));
    let log = daemon.log();
    assert_eq!(log.matches("cannot notify systemd").count(), 1, "{log}");
    assert!(daemon.stop().success());
}

fn man_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let man1 = dir.path().join("man1");
    let out = ck(&["man", "--dir", man1.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (dir, man1)
}

/// `systemd-analyze verify` on deploy/systemd/certkeeper.service, with ExecStart pointed at the
/// binary under test and the generated man pages on MANPATH (the unit's Documentation=): no
/// warning at all. `CERTKEEPER_SYSTEMD_ANALYZE` makes it required (scripts/test installs
/// Debian's systemd package for it); it needs no running systemd.
#[test]
fn unit_file_verifies() {
    let Some(analyze) = optional_tool(
        "CERTKEEPER_SYSTEMD_ANALYZE",
        "systemd-analyze",
        "apt-get install systemd",
    )
    .unwrap() else {
        eprintln!("SKIPPED: no systemd-analyze (CERTKEEPER_SYSTEMD_ANALYZE unset; scripts/test installs it)");
        return;
    };
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/systemd/certkeeper.service"
    ))
    .unwrap();
    for line in [
        "Type=notify",
        "WatchdogSec=",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "User=certkeeper",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/certkeeper",
        "NoNewPrivileges=yes",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=\n",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        "SystemCallFilter=@system-service",
    ] {
        assert!(unit.contains(line), "the unit lacks {line:?}");
    }
    assert!(unit.contains("ExecStart=/usr/bin/certkeeper run "));
    let (man, _) = man_dir();
    let path = man.path().join("certkeeper.service");
    std::fs::write(
        &path,
        unit.replace("ExecStart=/usr/bin/certkeeper ", &format!("ExecStart={BIN} ")),
    )
    .unwrap();
    let out = Command::new(&analyze)
        .arg("verify")
        .arg(&path)
        .env("MANPATH", man.path())
        .env("SYSTEMD_LOG_COLOR", "0")
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify: {}\n{said}",
        out.status
    );

    // And verify does catch a mistake (the test would pass vacuously otherwise).
    std::fs::write(&path, unit.replace("Type=notify", "Type=notifyy")).unwrap();
    let out = Command::new(&analyze)
        .arg("verify")
        .arg(&path)
        .env("MANPATH", man.path())
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("notifyy"),
        "{out:?}"
    );
}

#[test]
fn man_pages_render_and_name_every_subcommand() {
    let (_dir, man1) = man_dir();
    let mut pages: Vec<String> = std::fs::read_dir(&man1)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    for sub in [
        "run",
        "status",
        "renew",
        "check",
        "inspect",
        "crds",
        "controller",
        "completions",
        "man",
    ] {
        assert!(pages.contains(&format!("certkeeper-{sub}.1")), "{pages:?}");
    }
    let top = std::fs::read_to_string(man1.join("certkeeper.1")).unwrap();
    assert!(
        top.starts_with(".ie \\n(.g") || top.contains(".TH certkeeper 1"),
        "{top}"
    );
    // `certkeeper man` prints the same top page.
    let out = ck(&["man"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), top);
    let run = std::fs::read_to_string(man1.join("certkeeper-run.1")).unwrap();
    assert!(run.contains("\\-\\-config"), "{run}");

    // Rendered by man(1) (or groff) when present: no warnings, every subcommand named.
    let renderer = optional_tool("CERTKEEPER_MAN", "man", "apt-get install man-db").unwrap();
    let Some(man) = renderer else {
        eprintln!("SKIPPED the rendering: no man on PATH");
        return;
    };
    let out = Command::new(man)
        .args(["-l", "--warnings"])
        .arg(man1.join("certkeeper.1"))
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "80")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        out.stderr.is_empty(),
        "man warnings: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for sub in [
        "certkeeper-run(1)",
        "certkeeper-controller(1)",
        "certkeeper-completions(1)",
    ] {
        assert!(text.contains(sub), "{text}");
    }
}

#[test]
fn completions_are_valid_scripts() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = ck(&["completions", shell]);
        assert!(
            out.status.success(),
            "{shell}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(script.contains("certkeeper"), "{shell}");
        assert!(
            script.contains("controller"),
            "{shell}: subcommands are completed"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let bash = dir.path().join("certkeeper.bash");
    std::fs::write(&bash, ck(&["completions", "bash"]).stdout).unwrap();
    let out = Command::new("bash").arg("-n").arg(&bash).output().unwrap();
    assert!(
        out.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Sourced, it registers a completion for certkeeper that offers the subcommands.
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {}; complete -p certkeeper || exit 1; COMP_WORDS=(certkeeper r); COMP_CWORD=1; COMP_LINE='certkeeper r'; COMP_POINT=12; _certkeeper certkeeper r certkeeper; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            bash.display()
        ))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        text.lines().any(|l| l == "run") && text.lines().any(|l| l == "renew"),
        "{text}"
    );
    // A bad shell is an argument error (exit 2).
    assert_eq!(ck(&["completions", "tcsh"]).status.code(), Some(2));
}

/// scripts/deb packages the binary under test: dpkg-deb reads it back (control fields, conffile,
/// every file in place), the unpacked binary runs, its man pages render and its bash completion
/// parses, and lintian reports nothing (`CERTKEEPER_LINTIAN` makes lintian required; scripts/test
/// installs it). Needs dpkg-deb and dpkg-shlibdeps (dpkg-dev); skipped, saying so, without them.
#[test]
fn debian_package_is_complete_and_lintian_clean() {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let on_path = |tool: &str| std::env::split_paths(&path).any(|d| d.join(tool).is_file());
    if let Some(missing) = ["dpkg-deb", "dpkg-shlibdeps", "strip"]
        .into_iter()
        .find(|t| !on_path(t))
    {
        eprintln!("SKIPPED: no {missing} on PATH (apt-get install dpkg-dev binutils)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/deb"))
        .arg(BIN)
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scripts/deb: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deb = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    assert!(
        deb.file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("certkeeper_"),
        "{deb:?}"
    );

    let field = |name: &str| {
        let out = Command::new("dpkg-deb")
            .arg("--field")
            .arg(&deb)
            .arg(name)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    assert_eq!(field("Package"), "certkeeper");
    assert!(field("Version").starts_with(env!("CARGO_PKG_VERSION")));
    assert!(field("Depends").contains("libc6"), "{}", field("Depends"));
    let contents = Command::new("dpkg-deb")
        .arg("--contents")
        .arg(&deb)
        .output()
        .unwrap();
    let contents = String::from_utf8(contents.stdout).unwrap();
    for path in [
        "./usr/bin/certkeeper",
        "./lib/systemd/system/certkeeper.service",
        "./usr/lib/sysusers.d/certkeeper.conf",
        "./etc/certkeeper/certkeeper.yaml",
        "./usr/share/doc/certkeeper/examples/certkeeper.yaml",
        "./usr/share/doc/certkeeper/copyright",
        "./usr/share/man/man1/certkeeper.1.gz",
        "./usr/share/man/man1/certkeeper-run.1.gz",
        "./usr/share/bash-completion/completions/certkeeper",
        "./usr/share/zsh/vendor-completions/_certkeeper",
        "./usr/share/fish/vendor_completions.d/certkeeper.fish",
    ] {
        assert!(
            contents.lines().any(|l| l.ends_with(&format!(" {path}"))),
            "{path} missing:\n{contents}"
        );
    }
    assert!(
        contents.lines().all(|l| l.contains(" root/root ")),
        "every file owned by root:\n{contents}"
    );

    // Unpacked, it runs and its generated files are usable.
    let root = dir.path().join("root");
    let ok = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&root)
        .status()
        .unwrap();
    assert!(ok.success());
    let version = Command::new(root.join("usr/bin/certkeeper"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(version.status.success());
    assert!(String::from_utf8_lossy(&version.stdout).contains(env!("CARGO_PKG_VERSION")));
    let bash = Command::new("bash")
        .arg("-n")
        .arg(root.join("usr/share/bash-completion/completions/certkeeper"))
        .status()
        .unwrap();
    assert!(bash.success());
    let unit = std::fs::read_to_string(root.join("lib/systemd/system/certkeeper.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/bin/certkeeper run --config /etc/certkeeper/certkeeper.yaml"));

    let Some(lintian) = optional_tool("CERTKEEPER_LINTIAN", "lintian", "apt-get install lintian").unwrap()
    else {
        eprintln!("SKIPPED lintian: not on PATH (CERTKEEPER_LINTIAN unset; scripts/test installs it)");
        return;
    };
    let out = Command::new(lintian)
        .args(["--display-info", "--tag-display-limit", "0"])
        .arg(&deb)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "lintian: {out:?}");
    let tags: Vec<&str> = report
        .lines()
        .filter(|l| l.starts_with("E: ") || l.starts_with("W: ") || l.starts_with("I: "))
        .collect();
    assert!(tags.is_empty(), "lintian:\n{report}");
}

/// The example configuration the unit and the package ship is valid: with its absolute paths
/// moved into a scratch directory, `certkeeper check` accepts it.
#[test]
fn example_configuration_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/systemd/certkeeper.yaml"
    ))
    .unwrap();
    let base = dir.path().to_str().unwrap();
    let config = example
        .replace("/etc/certkeeper", &format!("{base}/etc"))
        .replace("/var/lib/certkeeper", &format!("{base}/var"));
    assert!(
        config.contains(&format!("manifests: {base}/etc/manifests")),
        "{config}"
    );
    assert!(
        config.contains(&format!("stateDir: {base}/var/state")),
        "{config}"
    );
    for d in ["etc/manifests", "etc/secrets"] {
        std::fs::create_dir_all(dir.path().join(d)).unwrap();
    }
    let path = dir.path().join("etc/certkeeper.yaml");
    std::fs::write(&path, config).unwrap();
    let out = ck(&["check", "--config", path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
