//! A real nginx (Debian's package) serving TLS on a loopback port from certificate files, for
//! the tests of `verify`: the server certkeeper's hooks reload and whose served certificate it
//! reads back.
//!
//! `nginx` follows the pattern of `CERTKEEPER_KEYTOOL`: `$CERTKEEPER_NGINX` names the binary and
//! makes it required (a missing file fails the test); without it, `nginx` is looked up on PATH
//! (Debian puts it in /usr/sbin), and a test may skip, saying so, only when neither gives one.
//!
//! Everything lives in one directory (`-p <dir>`): the configuration, the pid file, the error
//! log. nginx runs in the foreground (`daemon off`) as a [`ManagedProcess`], killed with its
//! workers when dropped; [`Nginx::reload_command`] is the `nginx -s reload` a hook runs, with
//! the same prefix, configuration and globals.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::process::ManagedProcess;
use crate::readers::optional_tool;

/// Debian's `nginx` (package nginx-light, installed by scripts/test): `Ok(None)` only when
/// `CERTKEEPER_NGINX` is unset and PATH has none.
pub fn nginx_binary() -> Result<Option<PathBuf>> {
    optional_tool(
        "CERTKEEPER_NGINX",
        "nginx",
        "install Debian's nginx (scripts/test: apt-get install nginx-light)",
    )
}

/// nginx serving `cert`/`key` with TLS on `127.0.0.1:port`.
#[derive(Debug)]
pub struct Nginx {
    process: ManagedProcess,
    dir: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    pub port: u16,
}

impl Nginx {
    /// Writes the configuration into `dir` and starts nginx; returns once it accepts
    /// connections (at most 15 s).
    pub fn start(binary: &Path, dir: &Path, cert: &Path, key: &Path, port: u16) -> Result<Nginx> {
        std::fs::create_dir_all(dir.join("tmp"))?;
        let nginx = Nginx {
            process: {
                write_config(dir, cert, key, port, false)?;
                let mut cmd = Command::new(binary);
                cmd.args(args(dir));
                ManagedProcess::spawn("nginx", cmd, &dir.join("nginx.out"))?
            },
            dir: dir.to_owned(),
            cert: cert.to_owned(),
            key: key.to_owned(),
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("nginx did not listen on {port} in 15 s:\n{}", nginx.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(nginx)
    }

    /// The command of a reload hook: `nginx -s reload` for the instance `binary` runs (or will
    /// run) in `dir`.
    pub fn reload_command(binary: &Path, dir: &Path) -> Vec<String> {
        let mut command = vec![binary.display().to_string()];
        command.extend(args(dir));
        command.extend(["-s".to_owned(), "reload".to_owned()]);
        command
    }

    /// Breaks the configuration (an unterminated block): `nginx -s reload` then fails.
    pub fn break_config(&self) -> Result<()> {
        write_config(&self.dir, &self.cert, &self.key, self.port, true)
    }

    /// Restores the working configuration.
    pub fn fix_config(&self) -> Result<()> {
        write_config(&self.dir, &self.cert, &self.key, self.port, false)
    }

    /// Its error log and its output.
    pub fn log(&self) -> String {
        let error_log = std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default();
        format!("{error_log}{}", self.process.log())
    }
}

/// `-p <dir> -c <dir>/nginx.conf -e <dir>/error.log -g 'daemon off; pid <dir>/nginx.pid;'`: every
/// path in the test's directory, none of Debian's defaults (/etc/nginx, /var/log/nginx, /run).
fn args(dir: &Path) -> Vec<String> {
    let d = dir.display();
    vec![
        "-p".into(),
        format!("{d}/"),
        "-c".into(),
        format!("{d}/nginx.conf"),
        "-e".into(),
        format!("{d}/error.log"),
        "-g".into(),
        format!("daemon off; pid {d}/nginx.pid;"),
    ]
}

fn write_config(dir: &Path, cert: &Path, key: &Path, port: u16, broken: bool) -> Result<()> {
    let d = dir.display();
    let mut conf = format!(
        "worker_processes 1;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n\
           access_log off;\n\
           client_body_temp_path {d}/tmp;\n\
           server {{\n\
             listen 127.0.0.1:{port} ssl;\n\
             server_name web.example.com;\n\
             ssl_certificate {};\n\
             ssl_certificate_key {};\n\
             return 200 \"ok\\n\";\n\
           }}\n\
         }}\n",
        cert.display(),
        key.display()
    );
    if broken {
        // What a bad edit leaves: the last brace gone.
        conf.truncate(conf.trim_end().len() - 1);
    }
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).with_context(|| format!("writing {}", path.display()))
}
