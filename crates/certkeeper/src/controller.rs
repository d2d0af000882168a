//! `certkeeper controller`: the Kubernetes runtime (crate `certkeeper-controller`), and
//! `certkeeper controller status` / `certkeeper controller renew` against a cluster.
//!
//! Connection, as kubectl finds it: `--kubeconfig FILE`, else `KUBECONFIG` (several files,
//! merged), else `~/.kube/config`, else the in-cluster service account
//! (`KUBERNETES_SERVICE_HOST`/`_PORT`, `/var/run/secrets/kubernetes.io/serviceaccount/{token,ca.crt}`);
//! `--context` picks a kubeconfig context. Token, client-certificate and exec-plugin users all
//! work. The explicit form `--kube-server URL --token-file F [--ca-file F]` stays.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use certkeeper_controller::leader::{LeaseConfig, default_identity};
use certkeeper_controller::{ControllerConfig, KubeClient, KubeConfig, TokenSource};
use tokio::signal::unix::{SignalKind, signal};
use tracing_subscriber::EnvFilter;

#[derive(Debug, clap::Args)]
pub struct ControllerArgs {
    /// The kubeconfig file to use (default: KUBECONFIG, then ~/.kube/config, then the
    /// in-cluster service account).
    #[arg(long, global = true, conflicts_with = "kube_server")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: its current-context).
    #[arg(long, global = true, conflicts_with = "kube_server")]
    pub context: Option<String>,
    /// API server URL (https://host:port), with --token-file: instead of a kubeconfig.
    #[arg(long, global = true)]
    pub kube_server: Option<String>,
    /// File holding the bearer token (re-read for every request).
    #[arg(long, global = true)]
    pub token_file: Option<PathBuf>,
    /// PEM bundle that verifies the API server (default: the system roots).
    #[arg(long, global = true)]
    pub ca_file: Option<PathBuf>,
    /// Without one: run the controller.
    #[command(subcommand)]
    pub action: Option<Action>,
    /// Namespace of the Secrets that ClusterIssuers reference.
    #[arg(long, default_value = certkeeper_controller::run::DEFAULT_CLUSTER_RESOURCE_NAMESPACE)]
    pub cluster_resource_namespace: String,
    /// Serve /metrics, /healthz and /readyz here (as cert-manager serves them).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Serve /api/v1/status and /api/v1/summary (JSON: every namespace's certificates and Vault's
    /// error texts) here; off by default. Keep it on loopback (e.g. 127.0.0.1:9403) and read it
    /// with `kubectl exec` or a port-forward; `certkeeper controller status` needs none of it.
    #[arg(long)]
    pub status_listen: Option<SocketAddr>,
    /// How often a reconcile runs without any change, in seconds (referenced Secrets are watched).
    #[arg(long, default_value_t = 30)]
    pub secret_resync: u64,
    /// Log as JSON lines instead of text.
    #[arg(long)]
    pub json_logs: bool,
    /// Run as one of several replicas: only the holder of a coordination.k8s.io Lease reconciles.
    #[arg(long)]
    pub leader_elect: bool,
    /// Namespace of the Lease (default: --namespace if set, else the cluster resource namespace).
    #[arg(long)]
    pub leader_election_namespace: Option<String>,
    /// Lease duration in seconds: a standby takes over this long after the leader stopped renewing.
    #[arg(long, default_value_t = 15)]
    pub lease_duration: u64,
    /// Leave CertificateRequests made by other tools unapproved (an approver must approve them).
    #[arg(long)]
    pub no_auto_approve: bool,
    /// Run beside cert-manager as its external issuer: reconcile only VaultIssuers and
    /// VaultClusterIssuers (certkeeper.io) and the CertificateRequests that name them (made by
    /// cert-manager's Certificate controller, ingress-shim, csi-driver, istio-csr); read or write
    /// no cert-manager.io Certificate, Issuer, ClusterIssuer or target Secret; approve nothing
    /// (cert-manager's approver does, given the RBAC in deploy/).
    #[arg(long)]
    pub external_issuer: bool,
    /// Re-issues of one Certificate that its schedule did not plan (its Secret deleted or
    /// overwritten, its spec changed) allowed per window before they wait: COUNT/WINDOW, or
    /// `off`. Renewals, expiry and `renew` are never held.
    #[arg(long, default_value = "6/1h", value_parser = parse_budget)]
    pub issuance_budget: BudgetSetting,
    /// Watch only this namespace (Issuers, Certificates, CertificateRequests, Secrets), as
    /// cert-manager's --namespace: ClusterIssuers are not used, RBAC can be a Role there, and the
    /// Lease defaults to this namespace.
    #[arg(long)]
    pub namespace: Option<String>,
    /// Let Issuers with `auth.aws` and no `serviceAccountRef` use the controller's own AWS
    /// credentials (cert-manager's flag, default false).
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub issuer_ambient_credentials: bool,
    /// Let ClusterIssuers with `auth.aws` and no `serviceAccountRef` use the controller's own AWS
    /// credentials (cert-manager's flag, default true).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub cluster_issuer_ambient_credentials: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Every Certificate in the cluster: ready, notAfter, renewal time, last failure, next attempt.
    /// Exit status 1 when one is not ready.
    Status {
        /// Only this namespace (default: all).
        #[arg(long, short)]
        namespace: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Issue a Certificate now, bypassing any backoff (the running controller does it); waits for
    /// the new revision.
    Renew {
        /// "namespace/name", or a name in --namespace.
        name: String,
        #[arg(long, short, default_value = "default")]
        namespace: String,
        /// How long to wait for the new revision, in seconds (0: do not wait).
        #[arg(long, default_value_t = 120)]
        wait: u64,
    },
}

/// `--issuance-budget`: a budget, or none (`off`).
#[derive(Debug, Clone, Copy)]
pub struct BudgetSetting(pub Option<certkeeper_engine::budget::IssuanceBudget>);

fn parse_budget(text: &str) -> Result<BudgetSetting, certkeeper_engine::budget::BudgetError> {
    certkeeper_engine::budget::IssuanceBudget::parse(text).map(BudgetSetting)
}

async fn kube_config(args: &ControllerArgs) -> Result<KubeConfig> {
    Ok(match &args.kube_server {
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
            KubeConfig::explicit(server, TokenSource::File(token), ca.as_deref())?
        }
        None => KubeConfig::load(args.kubeconfig.as_deref(), args.context.as_deref()).await?,
    })
}

pub async fn run(args: ControllerArgs) -> Result<ExitCode> {
    let kube = kube_config(&args).await?;
    match &args.action {
        Some(Action::Status { namespace, json }) => return status(&kube, namespace.as_deref(), *json).await,
        Some(Action::Renew {
            name,
            namespace,
            wait,
        }) => return renew(&kube, name, namespace, *wait).await,
        None => {}
    }
    let filter = EnvFilter::try_from_env("CERTKEEPER_LOG")
        .or_else(|_| EnvFilter::try_new("info"))
        .context("CERTKEEPER_LOG")?;
    crate::logging::init(filter, args.json_logs);
    let mut config = ControllerConfig::new(kube);
    if args.leader_elect {
        let namespace = args
            .leader_election_namespace
            .clone()
            .or_else(|| args.namespace.clone())
            .unwrap_or_else(|| args.cluster_resource_namespace.clone());
        let mut lease = LeaseConfig::new(namespace, default_identity());
        lease.lease_duration = Duration::from_secs(args.lease_duration.max(2));
        config.leader_election = Some(lease);
    }
    config.cluster_resource_namespace = args.cluster_resource_namespace;
    config.listen = args.listen;
    config.status_listen = args.status_listen;
    config.secret_resync = Duration::from_secs(args.secret_resync.max(1));
    config.auto_approve = !args.no_auto_approve;
    config.engine.issuance_budget = args.issuance_budget.0;
    if args.external_issuer {
        config.mode = certkeeper_controller::run::Mode::ExternalIssuer;
    }
    config.namespace = args.namespace;
    config.aws.issuers = args.issuer_ambient_credentials;
    config.aws.cluster_issuers = args.cluster_issuer_ambient_credentials;
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

async fn status(kube: &KubeConfig, namespace: Option<&str>, json: bool) -> Result<ExitCode> {
    let client = KubeClient::new(kube)?;
    let rows = certkeeper_controller::ops::status_rows(&client, namespace).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", certkeeper_serve::status::table(&rows));
    }
    Ok(if rows.iter().all(|r| r.ready) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn renew(kube: &KubeConfig, name: &str, namespace: &str, wait: u64) -> Result<ExitCode> {
    let (namespace, name) = name.split_once('/').unwrap_or((namespace, name));
    if name.is_empty() || namespace.is_empty() {
        bail!("expected namespace/name or a name with --namespace");
    }
    let client = KubeClient::new(kube)?;
    let before = certkeeper_controller::ops::request_renew(&client, namespace, name).await?;
    println!("renew of {namespace}/{name} requested (revision {before})");
    if wait == 0 {
        return Ok(ExitCode::SUCCESS);
    }
    let deadline = Instant::now() + Duration::from_secs(wait);
    loop {
        let now = certkeeper_controller::ops::revision(&client, namespace, name).await?;
        if now > before {
            println!("{namespace}/{name} renewed: revision {now}");
            return Ok(ExitCode::SUCCESS);
        }
        if Instant::now() > deadline {
            eprintln!("{namespace}/{name} not renewed within {wait} s (is the controller running?)");
            return Ok(ExitCode::from(1));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
