//! Property: any SAN set survives CSR building and parsing unchanged.

use std::net::IpAddr;
use std::sync::OnceLock;

use proptest::prelude::*;

use super::csr::{csr_sans, with_csr};
use crate::pki::{CsrRequest, KeyAlgorithm, PrivateKey, build_csr};

fn key() -> &'static PrivateKey {
    static KEY: OnceLock<PrivateKey> = OnceLock::new();
    KEY.get_or_init(|| PrivateKey::generate(KeyAlgorithm::Ecdsa(256)).unwrap())
}

fn dns() -> impl Strategy<Value = String> {
    "(\\*\\.)?[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?(\\.[a-z0-9]{1,10}){0,4}"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    #[test]
    fn san_sets_survive_csr_round_trip(
        cn in proptest::option::of("[A-Za-z0-9 .*-]{1,40}"),
        dns_names in proptest::collection::vec(dns(), 0..8),
        ip_addresses in proptest::collection::vec(any::<IpAddr>(), 0..5),
        uris in proptest::collection::vec("spiffe://[a-z]{1,12}/[a-z0-9/._-]{0,30}", 0..4),
        email_addresses in proptest::collection::vec("[a-z0-9.+_-]{1,16}@[a-z0-9-]{1,12}\\.[a-z]{2,6}", 0..4),
    ) {
        let req = CsrRequest {
            common_name: cn.clone(),
            dns_names: dns_names.clone(),
            ip_addresses: ip_addresses.clone(),
            uris: uris.clone(),
            email_addresses: email_addresses.clone(),
            ..Default::default()
        };
        match build_csr(&req, key()) {
            Ok(pem) => with_csr(&pem, |csr| {
                let (d, i, u, e) = csr_sans(csr);
                assert_eq!((d, i, u, e), (dns_names, ip_addresses, uris, email_addresses));
                let got_cn = csr.certification_request_info.subject.iter_common_name().next()
                    .map(|a| a.as_str().unwrap().to_owned());
                assert_eq!(got_cn, cn);
            }),
            Err(e) => {
                prop_assert!(cn.is_none() && dns_names.is_empty() && ip_addresses.is_empty()
                    && uris.is_empty() && email_addresses.is_empty(), "{}", e);
            }
        }
    }
}
