//! The `certkeeper` command.
//!
//! Exit codes: 0 success (for `status`: every certificate ready; for `check`: every issuer
//! reachable and logged in); 1 the command ran but something is not well (a certificate not
//! ready, an issuer failing, a renew that did not finish in time); 2 the configuration,
//! manifests or arguments are invalid, or a file cannot be read.

mod commands;
mod controller;
mod logging;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "certkeeper",
    version,
    about = "Keeps Vault/OpenBao certificates valid; speaks cert-manager's API"
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
    /// Print the CRDs (Certificate, CertificateRequest, Issuer, ClusterIssuer) as a YAML stream,
    /// for `certkeeper crds | kubectl apply -f -`.
    Crds,
    /// Run the Kubernetes controller: cert-manager.io/v1 Certificates with Vault issuers, from
    /// the API server (explicit URL and token, or the in-cluster service account).
    Controller(Box<controller::ControllerArgs>),
}

fn main() -> ExitCode {
    certkeeper_engine::memory::configure_allocator();
    let cli = Cli::parse();
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
            Command::Crds => {
                print!("{}", certkeeper_crds::all_yaml());
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
