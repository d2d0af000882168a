//! certkeeper's pure core.
//!
//! Everything here is a function of its inputs: no I/O, no HTTP, no Kubernetes. The crate's
//! dependency list enforces that boundary; the Vault client, the engine and both runtimes build on
//! the types defined here so that a failure's class, and what follows from it, is decided once.

pub mod failure;
pub mod pki;
pub mod schedule;
pub mod secret;
pub mod spec;
pub mod time;

pub use failure::{FailureClass, FailureScope};
pub use secret::{Secret, SecretBytes};
