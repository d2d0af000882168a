//! Tests for the pki module, split by topic. `support` holds a local rcgen CA standing in for
//! Vault, so issued-certificate checks run against real certificates without a server.

mod csr;
mod inspect;
mod issued;
mod keys;
mod names;
mod pkcs12;
mod props;
mod support;
