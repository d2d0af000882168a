//! certkeeper-testkit: harnesses that run *real* servers for certkeeper's tests.
//!
//! - [`DevServer`]: `bao server -dev` (OpenBao 2.7.2), optionally with an extra TLS/mTLS listener;
//! - [`RaftCluster`]: an n-node raft cluster for HA/failover tests;
//! - [`Admin`]: an independent HTTP helper to set servers up (PKI, auth methods, quotas, seal);
//! - [`FaultProxy`]: a TCP proxy that can hang, reset, close, send garbage, stall or refuse;
//! - [`KubeApiServer`]: etcd + a genuine kube-apiserver for Kubernetes auth;
//! - independent keystore readers ([`keytool`], [`run`]);
//! - `kubectl kustomize` with components ([`kustomize_kubectl`], [`kustomize`]);
//! - [`AwsAuthFront`]: the AWS auth method's IAM login in front of OpenBao, which lacks it,
//!   following openbao/openbao-plugins `auth/aws/path_login.go` (commit 2ff5b9e);
//! - [`StsEmulator`]: moto's `moto_server` as a local AWS STS for the AWS auth tests;
//! - [`Nginx`]: Debian's nginx serving certificate files with TLS, reloaded by a hook (`verify`);
//! - TLS material ([`TestTls`], [`csr_p256`]) and RS256 JWTs ([`rsa_keypair_pem`], [`sign_jwt_rs256`]).
//!
//! Everything listens on 127.0.0.1 only. Every process is a [`ManagedProcess`]: in its own process
//! group, killed with the group when its owner is dropped (also on panic), and killed by the
//! kernel (PR_SET_PDEATHSIG) if the test process dies.

mod admin;
mod auth;
mod aws_auth;
mod bao;
mod cluster;
mod jwt;
mod kube;
mod kustomize;
mod nginx;
mod pki;
mod ports;
mod process;
mod proxy;
mod readers;
mod sts;
mod tlsgen;

pub use admin::Admin;
pub use auth::KubernetesAuth;
pub use aws_auth::{AwsAuthConfig, AwsAuthFront, AwsAuthRole};
pub use bao::{DevServer, TlsOptions, bao_binary};
pub use cluster::RaftCluster;
pub use jwt::{kube_sa_claims, rsa_keypair_pem, sign_jwt_rs256};
pub use kube::{KubeApiServer, KubeClient, kube_bin_dir};
pub use kustomize::{kustomize, kustomize_kubectl, renders_components};
pub use nginx::{Nginx, nginx_binary};
pub use pki::{Pki, PkiOptions, role_body};
pub use ports::{free_port, random_hex};
pub use process::{ManagedProcess, pid_exists};
pub use proxy::{FaultProxy, Mode};
pub use readers::{
    check_jks, check_pkcs12, keytool, line_after, name_constraint_lines, openssl, openssl_knows_pbmac1,
    openssl_pkcs12, optional_tool, pbmac1_args, pem_blocks, pkcs8_by_openssl, promtool, run, x509_text,
};
pub use sts::{STS_ACCOUNT, StsEmulator, sts_emulator};
pub use tlsgen::{CLIENT_CN, ClientCert, TestTls, csr_p256};
