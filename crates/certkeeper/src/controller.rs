//! `certkeeper controller`: the Kubernetes runtime (crate `certkeeper-controller`).
//!
//! Connection: `--kube-server URL --token-file F [--ca-file F]` (the token file is re-read for
//! every request), or nothing: the in-cluster service account
//! (`KUBERNETES_SERVICE_HOST`/`_PORT`, `/var/run/secrets/kubernetes.io/serviceaccount/{token,ca.crt}`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use certkeeper_controller::leader::{LeaseConfig, default_identity};
use certkeeper_controller::{ControllerConfig, KubeConfig, TokenSource};
use tokio::signal::unix::{SignalKind, signal};
use tracing_subscriber::EnvFilter;

#[derive(Debug, clap::Args)]
pub struct ControllerArgs {
    /// API server URL (https://host:port); without it the in-cluster service account is used.
    #[arg(long, requires = "token_file")]
    pub kube_server: Option<String>,
    /// File holding the bearer token (re-read for every request).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// PEM bundle that verifies the API server (default: the system roots).
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// Namespace of the Secrets that ClusterIssuers reference.
    #[arg(long, default_value = certkeeper_controller::run::DEFAULT_CLUSTER_RESOURCE_NAMESPACE)]
    pub cluster_resource_namespace: String,
    /// Serve /metrics, /healthz, /readyz and /api/v1/status here.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// How often referenced Secrets are re-read, in seconds.
    #[arg(long, default_value_t = 30)]
    pub secret_resync: u64,
    /// Log as JSON lines instead of text.
    #[arg(long)]
    pub json_logs: bool,
    /// Run as one of several replicas: only the holder of a coordination.k8s.io Lease reconciles.
    #[arg(long)]
    pub leader_elect: bool,
    /// Namespace of the Lease (default: the cluster resource namespace).
    #[arg(long)]
    pub leader_election_namespace: Option<String>,
    /// Lease duration in seconds: a standby takes over this long after the leader stopped renewing.
    #[arg(long, default_value_t = 15)]
    pub lease_duration: u64,
}

pub async fn run(args: ControllerArgs) -> Result<ExitCode> {
    let filter = EnvFilter::try_from_env("CERTKEEPER_LOG")
        .or_else(|_| EnvFilter::try_new("info"))
        .context("CERTKEEPER_LOG")?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    if args.json_logs {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
    let kube = match &args.kube_server {
        Some(server) => {
            let ca = match &args.ca_file {
                Some(path) => Some(
                    std::fs::read_to_string(path)
                        .with_context(|| format!("cannot read {}", path.display()))?,
                ),
                None => None,
            };
            let token = args
                .token_file
                .clone()
                .context("--token-file is required with --kube-server")?;
            KubeConfig::explicit(server.clone(), TokenSource::File(token), ca)
        }
        None => KubeConfig::in_cluster()?,
    };
    let mut config = ControllerConfig::new(kube);
    if args.leader_elect {
        let namespace = args
            .leader_election_namespace
            .clone()
            .unwrap_or_else(|| args.cluster_resource_namespace.clone());
        let mut lease = LeaseConfig::new(namespace, default_identity());
        lease.lease_duration = std::time::Duration::from_secs(args.lease_duration.max(2));
        config.leader_election = Some(lease);
    }
    config.cluster_resource_namespace = args.cluster_resource_namespace;
    config.listen = args.listen;
    config.secret_resync = std::time::Duration::from_secs(args.secret_resync.max(1));
    let mut term = signal(SignalKind::terminate()).context("signal handler")?;
    let mut int = signal(SignalKind::interrupt()).context("signal handler")?;
    certkeeper_controller::run(config, async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}
