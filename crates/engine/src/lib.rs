//! certkeeper's engine: one implementation of policy for both runtimes.
//!
//! It decides what is due ([`state::decide`]), sends it through the issuer's gate ([`gate`]),
//! issues and verifies ([`attempt`]), and hands the outcome to the runtime ([`job::Runtime`]):
//! the standalone runtime writes files and an embedded database, the Kubernetes runtime Secrets
//! and status. Neither re-implements any of the decisions.

pub mod adopt;
pub mod annotations;
pub mod attempt;
pub mod budget;
pub mod build;
pub mod clock;
pub mod driver;
pub mod gate;
pub mod hold;
pub mod job;
pub mod memory;
pub mod metrics;
pub mod outputs;
pub mod state;
pub mod verify;

pub use clock::{Clock, TokioClock, WallClock};
pub use driver::{CertStatus, EngineConfig, EngineHandle, Summary, spawn, spawn_with_clock};
pub use job::{
    CertId, CertJob, EngineEvent, Issued, IssuerId, IssuerRuntime, JobLabels, Runtime, RuntimeError,
};
