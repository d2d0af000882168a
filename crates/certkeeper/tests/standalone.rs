//! The standalone daemon end to end, through the `certkeeper` binary, against a real OpenBao.
#![allow(clippy::unwrap_used)] // tests state their expectations by unwrapping

mod common;

use std::time::Duration;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issues_renews_restarts_and_renews_on_request() {
    let s = setup(&[
        ("web", "  duration: 1h\n  renewBefore: 59m\n  privateKey: {algorithm: ECDSA, size: 256}\n"),
        ("api", "  duration: 2h\n  privateKey: {algorithm: ECDSA, size: 256, rotationPolicy: Never}\n  additionalOutputFormats: [{type: CombinedPEM}, {type: DER}]\n"),
    ])
    .await;
    let daemon = Daemon::start(&s.config);
    let rows = wait_for(&s.config, "both issued", Duration::from_secs(60), &daemon, |r| {
        r.len() == 2 && r.iter().all(|x| x["ready"] == true)
    });
    assert_eq!(row(&rows, "default/web")["revision"], 1);
    let certs = s.root.join("certs/default");
    let web1 = assert_pair(&certs.join("web-tls"), "web.example.com");
    let api1 = assert_pair(&certs.join("api-tls"), "api.example.com");
    let api_key1 = std::fs::read(certs.join("api-tls/tls.key")).unwrap();
    assert!(certs.join("api-tls/tls-combined.pem").exists() && certs.join("api-tls/key.der").exists());
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(certs.join("web-tls/tls.key"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);

    // web renews ~1 minute after issue (renewBefore 59m of 1h, spread earlier by up to 6 s).
    let rows = wait_for(&s.config, "web renewed", Duration::from_secs(150), &daemon, |r| {
        row(r, "default/web")["revision"] == 2
    });
    assert_eq!(row(&rows, "default/api")["revision"], 1, "api is not due");
    let web2 = assert_pair(&certs.join("web-tls"), "web.example.com");
    assert_ne!(web1, web2);

    // Restart: nothing is re-issued.
    assert!(daemon.stop().success());
    let before = status(&s.config);
    let daemon = Daemon::start(&s.config);
    std::thread::sleep(Duration::from_secs(5));
    let after = status(&s.config);
    assert_eq!(
        row(&after, "default/api")["serial"],
        row(&before, "default/api")["serial"]
    );
    assert_eq!(assert_pair(&certs.join("api-tls"), "api.example.com"), api1);

    // Renew on request; rotationPolicy Never keeps api's key.
    let out = ck(&[
        "renew",
        "--config",
        s.config.to_str().unwrap(),
        "api",
        "--wait",
        "60",
    ]);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        daemon.log()
    );
    let api2 = assert_pair(&certs.join("api-tls"), "api.example.com");
    assert_ne!(api1, api2);
    assert_eq!(
        std::fs::read(certs.join("api-tls/tls.key")).unwrap(),
        api_key1,
        "rotationPolicy Never keeps the key"
    );
    drop(s.bao);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_removed_then_restored_recovers_on_renew() {
    let s = setup(&[("web", "  privateKey: {algorithm: ECDSA, size: 256}\n")]).await;
    // Take the signing right away before the first issuance.
    let admin = s.bao.admin();
    let original = policy_text(&admin, &s.policy).await;
    admin.put_policy(&s.policy, NO_RIGHTS_POLICY).await.unwrap();
    let daemon = Daemon::start(&s.config);
    let rows = wait_for(
        &s.config,
        "a recorded failure",
        Duration::from_secs(30),
        &daemon,
        |r| !row(r, "default/web")["lastFailure"].is_null(),
    );
    let failure = &row(&rows, "default/web")["lastFailure"];
    assert_eq!(failure["class"], "auth_rejected", "{failure}");
    assert!(failure["message"].as_str().unwrap().contains("permission denied"));
    assert_ne!(failure["nextAttempt"], "on change");
    // status exits 1 while a certificate is not ready.
    assert_eq!(
        ck(&["status", "--config", s.config.to_str().unwrap()])
            .status
            .code(),
        Some(1)
    );

    admin.put_policy(&s.policy, &original).await.unwrap();
    renew(&s.config, "web", &daemon);
    let rows = status(&s.config);
    assert_eq!(row(&rows, "default/web")["ready"], true);
    assert!(row(&rows, "default/web")["lastFailure"].is_null());
    assert_eq!(
        ck(&["status", "--config", s.config.to_str().unwrap()])
            .status
            .code(),
        Some(0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_manifests_are_reported_and_lose_nothing() {
    let s = setup(&[("web", "  privateKey: {algorithm: ECDSA, size: 256}\n")]).await;
    let cfg = s.config.to_str().unwrap().to_owned();
    let out = ck(&["check", "--config", &cfg]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Issuer/default/vault"));

    let daemon = Daemon::start(&s.config);
    wait_for(&s.config, "issued", Duration::from_secs(60), &daemon, |r| {
        row(r, "default/web")["ready"] == true
    });
    let dir = s.root.join("certs/default/web-tls");
    let serial = assert_pair(&dir, "web.example.com");

    // An invalid edit: reported with file and field, the daemon keeps running (the invalid
    // document is left out, the rest runs), files stay.
    write_cert(&s.root, "web", "  privateKey: {algorithm: ECDSA, size: 2048}\n");
    let out = ck(&["check", "--config", &cfg]);
    assert_eq!(out.status.code(), Some(2));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains("web.yaml") && report.contains("spec.privateKey.size"),
        "{report}"
    );
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        daemon.log().contains("invalid manifest left out"),
        "{}",
        daemon.log()
    );
    assert_eq!(assert_pair(&dir, "web.example.com"), serial);

    // A valid edit of the spec re-issues at once.
    write_cert(&s.root, "web", "  privateKey: {algorithm: ECDSA, size: 384}\n");
    wait_for(
        &s.config,
        "re-issued after spec change",
        Duration::from_secs(30),
        &daemon,
        |r| row(r, "default/web")["revision"] == 2 && row(r, "default/web")["ready"] == true,
    );
    assert_ne!(assert_pair(&dir, "web.example.com"), serial);
    assert!(daemon.stop().success());

    // A broken configuration file: exit 2 naming the file and field.
    std::fs::write(
        &s.config,
        "manifests: manifests\nstateDir: state\nlisten: nowhere\n",
    )
    .unwrap();
    let out = ck(&["status", "--config", &cfg]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("listen"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// kill -9 at several points while forty certificates are being issued: every directory that
/// exists always holds a key that matches its certificate, and a restart completes the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_issuance_never_leaves_a_mismatched_pair() {
    let names: Vec<String> = (0..40).map(|i| format!("k{i}")).collect();
    let specs: Vec<(&str, &str)> = names
        .iter()
        .map(|n| (n.as_str(), "  privateKey: {algorithm: ECDSA, size: 256}\n"))
        .collect();
    let s = setup(&specs).await;
    let certs = s.root.join("certs/default");
    let check_pairs = || {
        let mut complete = 0;
        for n in &names {
            let dir = certs.join(format!("{n}-tls"));
            if dir.join("tls.crt").exists() {
                assert_pair(&dir, &format!("{n}.example.com"));
                complete += 1;
            }
        }
        complete
    };
    // First issuance, then crash repeatedly while everything is being re-issued (renew --all
    // requested before each start), so the kill lands in the middle of writes.
    let daemon = Daemon::start(&s.config);
    wait_for(&s.config, "all issued", Duration::from_secs(90), &daemon, |r| {
        r.iter().all(|x| x["ready"] == true)
    });
    drop(daemon);
    let cfg = s.config.to_str().unwrap().to_owned();
    for delay_ms in [10u64, 20, 30, 40, 50, 60, 80, 110] {
        let out = ck(&["renew", "--config", &cfg, "--all", "--wait", "0"]);
        assert!(out.status.success());
        let daemon = Daemon::start(&s.config);
        std::thread::sleep(Duration::from_millis(delay_ms));
        nix_kill(daemon.child.id(), "KILL").unwrap();
        drop(daemon);
        let complete = check_pairs();
        let revisions: u64 = status(&s.config)
            .iter()
            .map(|r| r["revision"].as_u64().unwrap())
            .sum();
        eprintln!(
            "kill -9 after {delay_ms} ms: {complete}/40 pairs consistent, revisions so far {revisions}"
        );
    }
    let daemon = Daemon::start(&s.config);
    wait_for(
        &s.config,
        "all issued after the crashes",
        Duration::from_secs(90),
        &daemon,
        |r| r.len() == 40 && r.iter().all(|x| x["ready"] == true),
    );
    assert_eq!(check_pairs(), 40);
}

/// The state database is lost (or certkeeper takes over files another tool wrote): served pairs
/// that match their spec are adopted, not issued again; a pair that no longer matches is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_state_adopts_matching_served_certificates() {
    let ec = "  privateKey: {algorithm: ECDSA, size: 256}\n";
    let s = setup(&[("web", ec), ("api", ec), ("cn", ec)]).await;
    let daemon = Daemon::start(&s.config);
    let rows = wait_for(&s.config, "all issued", Duration::from_secs(60), &daemon, |r| {
        r.len() == 3 && r.iter().all(|x| x["ready"] == true)
    });
    let web_serial = row(&rows, "default/web")["serial"].clone();
    let cn_serial = row(&rows, "default/cn")["serial"].clone();
    let api_serial = row(&rows, "default/api")["serial"].clone();
    assert!(daemon.stop().success());

    std::fs::remove_dir_all(s.root.join("state")).unwrap();
    // api's spec changed while the state was gone: its served certificate no longer matches.
    write_cert(&s.root, "api", &format!("{ec}  ipAddresses: [127.0.0.9]\n"));
    // cn's spec now names its host as the common name only; the served certificate has it in
    // both. cert-manager compares the common name and DNS names together: still a match.
    let cn = s.root.join("manifests/cn.yaml");
    let text = std::fs::read_to_string(&cn).unwrap();
    std::fs::write(&cn, text.replace("dnsNames: [cn.example.com]", "dnsNames: []")).unwrap();
    let daemon = Daemon::start(&s.config);
    let rows = wait_for(
        &s.config,
        "adopted and re-issued",
        Duration::from_secs(60),
        &daemon,
        |r| {
            r.len() == 3
                && r.iter().all(|x| x["ready"] == true)
                && row(r, "default/api")["serial"] != api_serial
        },
    );
    assert_eq!(
        row(&rows, "default/web")["serial"],
        web_serial,
        "web adopted, not re-issued"
    );
    assert_eq!(row(&rows, "default/web")["revision"], 1);
    assert_eq!(
        row(&rows, "default/cn")["serial"],
        cn_serial,
        "cn adopted, not re-issued"
    );
    assert_pair(&s.root.join("certs/default/web-tls"), "web.example.com");
    assert_pair(&s.root.join("certs/default/api-tls"), "api.example.com");
    let log = daemon.log();
    assert!(log.contains("adopted the certificate already served"), "{log}");
    assert!(log.contains("IP addresses"), "api's mismatch is explained: {log}");
}

/// Issuer health: OpenBao's intermediate CA lives 90 minutes; a 1 h certificate renewed at about
/// 40 minutes would need it for 100: the first issuance works and says so in `certkeeper
/// status`, before any renewal fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issuing_ca_expiring_before_the_next_full_renewal_is_said_in_status() {
    let pki = certkeeper_testkit::PkiOptions {
        int_ttl: "90m".into(),
        ..Default::default()
    };
    let s = setup_with(
        pki,
        &[(
            "web",
            "  duration: 1h\n  privateKey: {algorithm: ECDSA, size: 256}\n",
        )],
        "",
    )
    .await;
    let daemon = Daemon::start(&s.config);
    let rows = wait_for(&s.config, "web issued", Duration::from_secs(60), &daemon, |r| {
        r.len() == 1 && r[0]["ready"] == true
    });
    let warning = row(&rows, "default/web")["warning"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        warning.contains("the issuing CA expires at") && warning.contains("renew or rotate the CA"),
        "{warning}"
    );
    daemon.stop();
}

/// Revocation, opt-in (`certkeeper.io/revoke: superseded` on the Certificate): once the renewal
/// is in place, the certificate it replaced is revoked in OpenBao, read back from the mount's
/// CRL; a Certificate without the annotation revokes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_superseded_certificate_is_revoked_when_asked_for() {
    let s = setup(&[("plain", "  privateKey: {algorithm: ECDSA, size: 256}\n")]).await;
    let admin = s.bao.admin();
    // The issuer's policy may revoke on the PKI mount (a grant revocation needs).
    let mount = s.sign_path.split("/sign/").next().unwrap().to_owned();
    let policy = policy_text(&admin, &s.policy).await;
    admin
        .put_policy(
            &s.policy,
            &format!("{policy}\npath \"{mount}/revoke\" {{ capabilities = [\"update\"] }}\n"),
        )
        .await
        .unwrap();
    std::fs::write(
        s.root.join("manifests/web.yaml"),
        "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata:\n  name: web\n  namespace: default\n  annotations: {certkeeper.io/revoke: superseded}\nspec:\n  secretName: web-tls\n  commonName: web.example.com\n  dnsNames: [web.example.com]\n  issuerRef: {name: vault}\n  privateKey: {algorithm: ECDSA, size: 256}\n",
    )
    .unwrap();
    let daemon = Daemon::start(&s.config);
    let rows = wait_for(&s.config, "both issued", Duration::from_secs(60), &daemon, |r| {
        r.len() == 2 && r.iter().all(|x| x["ready"] == true)
    });
    let first = row(&rows, "default/web")["serial"].as_str().unwrap().to_owned();
    let plain = row(&rows, "default/plain")["serial"].as_str().unwrap().to_owned();
    let revoked = |serial: String| {
        let admin = admin.clone();
        let mount = mount.clone();
        async move {
            let cert = admin.read(&format!("{mount}/cert/{serial}")).await.unwrap();
            cert["data"]["revocation_time"].as_i64().unwrap_or(0) > 0
        }
    };
    assert!(!revoked(first.clone()).await);
    let out = ck(&[
        "renew",
        "--config",
        s.config.to_str().unwrap(),
        "--all",
        "--wait",
        "60",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows = wait_for(&s.config, "both renewed", Duration::from_secs(60), &daemon, |r| {
        r.iter().all(|x| x["revision"] == 2)
    });
    assert_ne!(row(&rows, "default/web")["serial"], first.as_str());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !revoked(first.clone()).await {
        assert!(
            std::time::Instant::now() < deadline,
            "{first} not revoked:\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // On the CRL the mount publishes.
    let crl = admin.read(&format!("{mount}/cert/crl")).await.unwrap();
    let pem = crl["data"]["certificate"].as_str().unwrap().to_owned();
    let text = certkeeper_testkit::run(
        std::path::Path::new("openssl"),
        &["crl", "-noout", "-text"],
        pem.as_bytes(),
    )
    .unwrap();
    let listed = String::from_utf8_lossy(&text.stdout).to_uppercase();
    assert!(
        listed.contains(&first.replace(':', "").to_uppercase()),
        "{first} not on the CRL:\n{listed}"
    );
    assert!(
        !revoked(plain).await,
        "a Certificate without the annotation revoked"
    );
    daemon.stop();
}
