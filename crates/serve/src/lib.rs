//! What both runtimes show, in one place: the standalone daemon and the Kubernetes controller
//! are siblings that depend on this crate, not on each other.
//!
//! - [`status`]: one row per certificate (and per manifest problem), as `certkeeper status`,
//!   `certkeeper controller status` and `/api/v1/status` show them.
//! - [`http`]: the endpoints `/metrics`, `/healthz`, `/readyz`, `/api/v1/status`, `/api/v1/summary`.

pub mod http;
pub mod status;
