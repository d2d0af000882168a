//! certkeeper's engine: one implementation of policy for both runtimes.
//!
//! It decides what is due, sends it through the issuer's gate ([`gate`]), and hands the outcome
//! to the runtime's store. The runtimes (standalone files + embedded database, Kubernetes objects)
//! only provide storage and event sinks.

pub mod gate;
pub mod metrics;
pub mod state;
