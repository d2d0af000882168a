//! `certkeeper crds` prints the six CRDs, exactly the generated (and checked-in) ones; with
//! `--group`, one group's.

#![allow(clippy::unwrap_used)]

use std::process::Command;

#[test]
fn crds_prints_the_six_crds() {
    let out = Command::new(env!("CARGO_BIN_EXE_certkeeper"))
        .arg("crds")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text, certkeeper_crds::all_yaml());
    let names: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("  name: ")).collect();
    assert_eq!(
        names,
        [
            "issuers.cert-manager.io",
            "clusterissuers.cert-manager.io",
            "certificates.cert-manager.io",
            "certificaterequests.cert-manager.io",
            "vaultissuers.certkeeper.io",
            "vaultclusterissuers.certkeeper.io"
        ]
    );
    let out = Command::new(env!("CARGO_BIN_EXE_certkeeper"))
        .args(["crds", "--group", "certkeeper.io"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text, certkeeper_crds::group_yaml("certkeeper.io"));
    assert_eq!(text.matches("kind: CustomResourceDefinition").count(), 2);
    let refused = Command::new(env!("CARGO_BIN_EXE_certkeeper"))
        .args(["crds", "--group", "example.com"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
}
