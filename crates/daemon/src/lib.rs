//! certkeeper's standalone runtime: manifests from files, certificates to files, state in an
//! embedded database, no cluster needed.

pub mod config;
pub mod hooks;
pub mod load;
pub mod model;
pub mod notify;
pub mod output;
pub mod problems;
pub mod run;
pub mod runtime;
pub mod statedb;
/// The `verify` check, shared with the controller.
pub use certkeeper_engine::verify;
