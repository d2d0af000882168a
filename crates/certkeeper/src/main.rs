//! The `certkeeper` command.
//!
//! Exit codes: 0 success (for `status`: every certificate ready and its hooks succeeded; for
//! `check`: every issuer reachable and logged in); 1 the command ran but something is not well (a
//! certificate not ready or failing to apply, an issuer failing, a renew that did not finish in
//! time); 2 the configuration,
//! manifests or arguments are invalid, or a file cannot be read.

mod commands;
mod controller;
mod logging;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "certkeeper",
    version,
    about = "Keeps Vault/OpenBao certificates valid; speaks cert-manager's API",
    long_about = "Keeps Vault/OpenBao certificates valid; speaks cert-manager's API.\n\n\
        Standalone, `certkeeper run` reads cert-manager.io/v1 Issuers and Certificates from files, \
        writes certificates to files and keeps its state in an embedded database; under systemd \
        (Type=notify) it reports readiness, status and watchdog pings and reloads on SIGHUP. \
        In a cluster, `certkeeper controller` reconciles the same objects from the API server.\n\n\
        Exit codes: 0 success; 1 the command ran but something is not well (a certificate not \
        ready or its hooks failing, an issuer failing, a renew that did not finish in time); 2 the configuration, \
        manifests or arguments are invalid, or a file cannot be read.\n\n\
        Environment: CERTKEEPER_LOG overrides the log level (a tracing filter); NO_COLOR \
        disables coloured logs (they are coloured only on a terminal)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Output {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the standalone daemon: issue and renew the certificates of the manifests.
    Run {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Every certificate: ready, notAfter, renewal time, last failure and next attempt.
    Status {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long, short, value_enum, default_value = "table")]
        output: Output,
    },
    /// Issue a certificate (or all) now, bypassing any backoff; waits for the result.
    Renew {
        #[arg(long, short)]
        config: PathBuf,
        /// "namespace/name" (or "name" in namespace default).
        name: Option<String>,
        #[arg(long, conflicts_with = "name")]
        all: bool,
        /// How long to wait for the daemon to finish, in seconds (0: do not wait).
        #[arg(long, default_value_t = 120)]
        wait: u64,
    },
    /// Validate the configuration and manifests; reach every issuer (health and login).
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Show a PEM certificate file: subject, SANs, validity, issuer, chain.
    Inspect { file: PathBuf },
    /// Print the CRDs (cert-manager.io's Certificate, CertificateRequest, Issuer, ClusterIssuer;
    /// certkeeper.io's VaultIssuer, VaultClusterIssuer) as a YAML stream, for
    /// `certkeeper crds | kubectl apply -f -`.
    Crds {
        /// Only this API group's CRDs: `certkeeper.io` beside cert-manager (which installs its own).
        #[arg(long, value_parser = ["cert-manager.io", "certkeeper.io"])]
        group: Option<String>,
    },
    /// Run the Kubernetes controller: cert-manager.io/v1 Certificates with Vault issuers, from
    /// the API server (explicit URL and token, or the in-cluster service account).
    Controller(Box<controller::ControllerArgs>),
    /// Print a shell completion script, for example
    /// `certkeeper completions bash > /usr/share/bash-completion/completions/certkeeper`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page certkeeper(1) as roff (`certkeeper man | man -l -`), or with --dir write
    /// it and one page per subcommand (certkeeper-run(1), ...) into a directory.
    Man {
        /// Write certkeeper.1 and certkeeper-<subcommand>.1 here instead of printing.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

/// `certkeeper completions`: the script for `shell`, from the CLI definition.
fn completions(shell: clap_complete::Shell) -> ExitCode {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "certkeeper", &mut out);
    write_stdout(&out)
}

/// `certkeeper man`: the pages, from the CLI definition.
fn man(dir: Option<&std::path::Path>) -> anyhow::Result<ExitCode> {
    use anyhow::Context;
    let command = Cli::command();
    match dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            clap_mangen::generate_to(command, dir)
                .with_context(|| format!("writing man pages to {}", dir.display()))?;
            Ok(ExitCode::SUCCESS)
        }
        None => {
            // Built as generate_to builds it, so both list the same subcommands (help included).
            let mut command = command.disable_help_subcommand(true);
            command.build();
            let mut out = Vec::new();
            clap_mangen::Man::new(command)
                .render(&mut out)
                .context("rendering the man page")?;
            Ok(write_stdout(&out))
        }
    }
}

/// Writes `bytes` to standard output; a closed pipe (`| head`) is exit code 1, not a panic.
fn write_stdout(bytes: &[u8]) -> ExitCode {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("certkeeper: cannot write to standard output: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    certkeeper_engine::memory::configure_allocator();
    let cli = Cli::parse();
    // Neither needs the async runtime.
    match &cli.command {
        Command::Completions { shell } => return completions(*shell),
        Command::Man { dir } => {
            return man(dir.as_deref()).unwrap_or_else(|e| {
                eprintln!("certkeeper: {e:#}");
                ExitCode::from(2)
            });
        }
        _ => {}
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        // File writes and state commits run on blocking threads; a few suffice.
        .max_blocking_threads(8)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("certkeeper: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run { config } => commands::run(&config).await,
            Command::Status { config, output } => {
                commands::status(&config, matches!(output, Output::Json)).await
            }
            Command::Renew {
                config,
                name,
                all,
                wait,
            } => commands::renew(&config, name, all, wait).await,
            Command::Check { config } => commands::check(&config).await,
            Command::Inspect { file } => commands::inspect(&file),
            Command::Controller(args) => controller::run(*args).await,
            Command::Completions { .. } | Command::Man { .. } => Ok(ExitCode::SUCCESS),
            Command::Crds { group } => {
                match group {
                    Some(group) => print!("{}", certkeeper_crds::group_yaml(&group)),
                    None => print!("{}", certkeeper_crds::all_yaml()),
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("certkeeper: {e:#}");
            ExitCode::from(2)
        }
    }
}
