//! A real 3-node (or n-node) OpenBao raft cluster on 127.0.0.1, for HA and failover tests.
//!
//! Layout: node i (0-based) has API port P_i and cluster port P_i + 1, raft data in a temp dir,
//! `performance_multiplier = 1`, TLS disabled, Shamir 1/1. Node 0 is initialised and unsealed,
//! the others join it and are unsealed; `start` returns once autopilot reports the expected
//! `failure_tolerance` ((n-1)/2: 1 for 3 nodes), so killing the leader is survivable.
//!
//! Timing measured on the 2-core dev machine (see the crate tests): initialising node 0 takes ~6 s,
//! autopilot promotes joined non-voters after `server_stabilization_time` (default 10 s, lowered
//! here to 2 s through `sys/storage/raft/autopilot/configuration`). After SIGKILL of the leader,
//! with `performance_multiplier = 1` a standby becomes active in ~2-4 s (11-14 s with the
//! default multiplier 5); meanwhile standbys answer 307 (to the dead leader) or refuse.
//! A restarted node comes back sealed (503) and is unsealed by `restart`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::admin::{Admin, health_status, probe_client, str_at};
use crate::bao::bao_binary;
use crate::ports::free_port;
use crate::process::ManagedProcess;

/// Bound for the whole cluster formation.
const FORM_BOUND: Duration = Duration::from_secs(90);

#[derive(Debug)]
struct Node {
    port: u16,
    dir: PathBuf,
    proc: Option<ManagedProcess>,
}

impl Node {
    fn addr(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log_tail(&self) -> String {
        crate::process::log_tail(&self.dir.join("server.log"), 30)
    }
}

/// A running raft cluster; every node is killed on drop.
#[derive(Debug)]
pub struct RaftCluster {
    nodes: Vec<Node>,
    bao: PathBuf,
    root_token: String,
    unseal_key: String,
    _dir: TempDir,
}

impl RaftCluster {
    /// Starts `n` nodes, forms the cluster and waits for full fault tolerance (≤ 90 s).
    pub async fn start(n: usize) -> Result<Self> {
        if n == 0 {
            bail!("a cluster needs at least one node");
        }
        let bao = bao_binary()?;
        let dir = tempfile::Builder::new()
            .prefix("certkeeper-raft")
            .tempdir()
            .context("temp dir")?;
        let mut nodes = Vec::with_capacity(n);
        for i in 0..n {
            let port = free_port();
            let node_dir = dir.path().join(format!("node{i}"));
            std::fs::create_dir_all(node_dir.join("data")).context("creating raft data dir")?;
            let config = format!(
                "storage \"raft\" {{\n  path = \"{data}\"\n  node_id = \"node{i}\"\n  performance_multiplier = 1\n}}\n\
                 listener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  cluster_address = \"127.0.0.1:{cport}\"\n  \
                 tls_disable = true\n}}\n\
                 api_addr = \"http://127.0.0.1:{port}\"\ncluster_addr = \"https://127.0.0.1:{cport}\"\n",
                data = node_dir.join("data").display(),
                cport = port + 1,
            );
            std::fs::write(node_dir.join("config.hcl"), config).context("writing node config")?;
            nodes.push(Node {
                port,
                dir: node_dir,
                proc: None,
            });
        }
        let mut cluster = Self {
            nodes,
            bao,
            root_token: String::new(),
            unseal_key: String::new(),
            _dir: dir,
        };
        for i in 0..n {
            cluster.spawn_node(i)?;
        }
        let deadline = Instant::now() + FORM_BOUND;
        for i in 0..n {
            cluster.wait_status(i, &[501], deadline).await?; // 501 = uninitialised
        }
        let init = Admin::new(&cluster.nodes[0].addr(), "")
            .put("sys/init", json!({"secret_shares": 1, "secret_threshold": 1}))
            .await
            .context("sys/init on node 0")?;
        cluster.unseal_key = str_at(&init, "/keys_base64/0")?;
        cluster.root_token = str_at(&init, "/root_token")?;
        cluster.admin_at(0).unseal_with(&cluster.unseal_key).await?;
        cluster.wait_status(0, &[200], deadline).await?;
        // Promote joined non-voters sooner than the default 10 s.
        cluster
            .admin_at(0)
            .write(
                "sys/storage/raft/autopilot/configuration",
                json!({"server_stabilization_time": "2s"}),
            )
            .await
            .context("autopilot configuration")?;
        let leader_addr = cluster.nodes[0].addr();
        for i in 1..n {
            let node = cluster.admin_at(i);
            node.write("sys/storage/raft/join", json!({"leader_api_addr": leader_addr}))
                .await
                .with_context(|| format!("node {i} joining"))?;
            node.unseal_with(&cluster.unseal_key)
                .await
                .with_context(|| format!("unsealing node {i}"))?;
        }
        for i in 1..n {
            cluster.wait_status(i, &[429], deadline).await?; // 429 = unsealed standby
            cluster.wait_knows_leader(i, deadline).await?;
        }
        cluster.wait_failure_tolerance((n - 1) / 2, deadline).await?;
        Ok(cluster)
    }

    fn spawn_node(&mut self, i: usize) -> Result<()> {
        let node = &mut self.nodes[i];
        let mut cmd = crate::bao::server_command(&self.bao, &node.dir);
        cmd.arg(format!("-config={}", node.dir.join("config.hcl").display()));
        node.proc = Some(ManagedProcess::spawn(
            &format!("bao raft node{i}"),
            cmd,
            &node.dir.join("server.log"),
        )?);
        Ok(())
    }

    async fn wait_status(&mut self, i: usize, wanted: &[u16], deadline: Instant) -> Result<u16> {
        let client = probe_client()?;
        let addr = self.nodes[i].addr();
        let mut last = None;
        loop {
            if let Some(status) = self.nodes[i].proc.as_mut().and_then(|p| p.exit_status()) {
                bail!(
                    "raft node {i} exited ({status}); log:\n{}",
                    self.nodes[i].log_tail()
                );
            }
            last = health_status(&client, &addr).await.or(last);
            if let Some(code) = last.filter(|c| wanted.contains(c)) {
                return Ok(code);
            }
            if Instant::now() > deadline {
                bail!(
                    "raft node {i} ({addr}): health {last:?}, wanted {wanted:?}; log:\n{}",
                    self.nodes[i].log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn wait_failure_tolerance(&self, wanted: usize, deadline: Instant) -> Result<()> {
        let mut last = Value::Null;
        loop {
            if let Ok(leader) = self.admin().await
                && let Ok(state) = leader.read("sys/storage/raft/autopilot/state").await
            {
                let ft = state.pointer("/data/failure_tolerance").and_then(Value::as_u64);
                if ft.is_some_and(|ft| ft >= wanted as u64) {
                    return Ok(());
                }
                last = state;
            }
            if Instant::now() > deadline {
                bail!("autopilot failure_tolerance never reached {wanted}; last state: {last}");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// API addresses, `http://127.0.0.1:P`, by node index.
    pub fn addrs(&self) -> Vec<String> {
        self.nodes.iter().map(Node::addr).collect()
    }

    pub fn root_token(&self) -> &str {
        &self.root_token
    }

    pub fn unseal_key(&self) -> &str {
        &self.unseal_key
    }

    /// Process id of node `i`, if running.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.nodes.get(i)?.proc.as_ref().map(ManagedProcess::pid)
    }

    /// A root-token client for node `i` (a standby forwards writes to the leader).
    pub fn admin_at(&self, i: usize) -> Admin {
        Admin::new(&self.nodes[i].addr(), &self.root_token)
    }

    /// The index of the node whose `sys/health` answers 200 (active), if any right now.
    pub async fn leader_index(&self) -> Option<usize> {
        let client = probe_client().ok()?;
        for (i, node) in self.nodes.iter().enumerate() {
            if node.proc.is_some() && health_status(&client, &node.addr()).await == Some(200) {
                return Some(i);
            }
        }
        None
    }

    /// Waits (≤ `bound`) until some node other than `not` is active; returns its index.
    pub async fn wait_for_leader(&self, not: Option<usize>, bound: Duration) -> Result<usize> {
        let deadline = Instant::now() + bound;
        loop {
            if let Some(i) = self.leader_index().await.filter(|i| Some(*i) != not) {
                return Ok(i);
            }
            if Instant::now() > deadline {
                bail!("no active node (excluding {not:?}) after {bound:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A root-token client on the current leader (waits up to 30 s for one).
    pub async fn admin(&self) -> Result<Admin> {
        let i = self.wait_for_leader(None, Duration::from_secs(30)).await?;
        Ok(self.admin_at(i))
    }

    /// SIGKILLs node `i` (its data stays for `restart`).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut p) = self.nodes.get_mut(i).and_then(|n| n.proc.take()) {
            p.kill();
        }
    }

    /// Starts node `i` again with the same config and data, unseals it and waits (≤ 60 s) until
    /// it is a standby (or active) that knows the active node.
    pub async fn restart(&mut self, i: usize) -> Result<()> {
        self.restart_sealed(i).await?;
        self.unseal(i).await
    }

    /// Starts node `i` again with the same config and data and waits (≤ 60 s) until it answers;
    /// it comes back sealed (503), as a restarted raft node does.
    pub async fn restart_sealed(&mut self, i: usize) -> Result<()> {
        if i >= self.nodes.len() {
            bail!("no node {i}");
        }
        self.kill(i);
        self.spawn_node(i)?;
        let deadline = Instant::now() + Duration::from_secs(60);
        self.wait_status(i, &[503, 429, 200], deadline).await.map(|_| ())
    }

    /// Unseals node `i` and waits (≤ 60 s) until it is a standby (or active) that knows the
    /// active node.
    pub async fn unseal(&mut self, i: usize) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        self.admin_at(i)
            .unseal_with(&self.unseal_key)
            .await
            .with_context(|| format!("unsealing node {i}"))?;
        self.wait_status(i, &[429, 200], deadline).await?;
        self.wait_knows_leader(i, deadline).await
    }

    /// Waits until node `i` reports an active node in `sys/leader`. A standby that is unsealed
    /// (health 429) but has not found the active node yet answers forwarded requests with
    /// 500 "local node not active but active cluster node not found".
    async fn wait_knows_leader(&self, i: usize, deadline: Instant) -> Result<()> {
        let admin = self.admin_at(i);
        let mut last = Value::Null;
        loop {
            if let Ok(v) = admin.read("sys/leader").await {
                let known = |k: &str| v.get(k).and_then(Value::as_str).is_some_and(|s| !s.is_empty());
                if known("leader_address") && known("leader_cluster_address") {
                    return Ok(());
                }
                last = v;
            }
            if Instant::now() > deadline {
                bail!("node {i} never found the active node; sys/leader: {last}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The last lines of node `i`'s log.
    pub fn log_tail(&self, i: usize) -> String {
        self.nodes.get(i).map(Node::log_tail).unwrap_or_default()
    }
}
