//! certkeeper's Kubernetes runtime: the same engine as the standalone runtime, with
//! cert-manager.io/v1 objects from the API server as its input and Secrets, Certificate status,
//! CertificateRequests and Events as its output.
//!
//! - [`kube`]: the API client: kube-rs for the connection (kubeconfig, credentials), checked paths.
//! - [`reflector`]: list-then-watch mirrors of Issuers, ClusterIssuers and Certificates.
//! - [`load`]: issuers and certificate jobs from those objects and the Secrets they reference.
//! - [`plan`]: the pure half of a reconcile (what to do, from the objects and the engine's state).
//! - [`runtime`]: the engine's [`Runtime`](certkeeper_engine::Runtime) on the API server.
//! - [`status`]: the one writer of Certificate status, and what a status says (pure).
//! - [`requests`]: CertificateRequests made by other tools: approval and signing.
//! - [`ops`]: `certkeeper controller status` / `renew` against a cluster.
//! - [`leader`]: leader election through a coordination.k8s.io Lease.
//! - [`run`]: the loop that ties them together.

/// The `certkeeper.io/vault-*` issuer annotations, read the same way by both runtimes.
pub use certkeeper_engine::annotations;
pub mod kube;
pub mod leader;
pub mod load;
pub mod objects;
pub mod ops;
pub mod plan;
pub mod reflector;
pub mod requests;
pub mod run;
pub mod runtime;
pub mod status;

pub use kube::{KubeClient, KubeConfig, KubeError, TokenSource};
pub use load::AwsAmbient;
pub use run::{ControllerConfig, ControllerError, run};
