//! Dev server lifecycle, PKI setup and the Admin helpers, against the real `bao` binary.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns unwrap too

use std::time::Duration;

use certkeeper_testkit::{
    DevServer, PkiOptions, csr_p256, kube_sa_claims, pid_exists, rsa_keypair_pem, sign_jwt_rs256,
};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn starts_answers_health_and_dies_on_drop() {
    let t0 = std::time::Instant::now();
    let dev = DevServer::start().await.unwrap();
    eprintln!("dev server ready in {:?}", t0.elapsed());
    assert!(dev.addr().starts_with("http://127.0.0.1:"));
    assert!(dev.tls_addr().is_none() && dev.tls().is_none());
    let status = reqwest::get(format!("{}/v1/sys/health", dev.addr()))
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 200);
    assert_eq!(dev.admin().health().await.unwrap(), 200);
    let pid = dev.pid();
    assert!(pid_exists(pid));
    // a real root token: a root-only endpoint works with it and not with a made-up one
    dev.admin().read("sys/auth").await.unwrap();
    let bad = dev.admin().with_token("nope");
    let (code, _, body) = bad.raw(Method::GET, "sys/auth", None).await.unwrap();
    assert_eq!(code, 403, "{body}");
    let addr = dev.addr();
    drop(dev);
    assert!(!pid_exists(pid), "bao pid {pid} survived the drop");
    assert!(reqwest::get(format!("{addr}/v1/sys/health")).await.is_err());
}

#[tokio::test]
async fn stop_kills_now_and_seal_unseal_round_trips() {
    let mut dev = DevServer::start().await.unwrap();
    assert!(!dev.unseal_key().is_empty());
    dev.admin().seal().await.unwrap();
    assert_eq!(dev.admin().health().await.unwrap(), 503);
    let (code, _, body) = dev.admin().raw(Method::GET, "sys/mounts", None).await.unwrap();
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("sealed"), "{body}");
    dev.unseal().await.unwrap();
    assert_eq!(dev.admin().health().await.unwrap(), 200);
    let pid = dev.pid();
    dev.stop();
    assert!(!pid_exists(pid));
    assert!(dev.admin().health().await.is_err());
    assert!(dev.log_tail().contains("core"), "log tail: {}", dev.log_tail());
}

#[tokio::test]
async fn setup_pki_gives_distinct_mounts_that_sign() {
    let dev = DevServer::start().await.unwrap();
    let admin = dev.admin();
    let a = admin.setup_pki(PkiOptions::default()).await.unwrap();
    let b = admin.setup_pki(PkiOptions::default()).await.unwrap();
    assert_ne!(a.int_mount, b.int_mount);
    assert_ne!(a.root_mount, b.root_mount);
    assert_ne!(a.int_pem, b.int_pem);
    assert_eq!(a.sign_path, format!("{}/sign/example", a.int_mount));
    assert_eq!(a.policy, format!("{}-sign", a.int_mount));

    let (csr, _key) = csr_p256("a.example.com", &["a.example.com"]).unwrap();
    let v = admin
        .write(&a.sign_path, json!({"csr": csr, "ttl": "1h"}))
        .await
        .unwrap();
    let cert = v["data"]["certificate"].as_str().unwrap();
    assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
    assert_eq!(v["data"]["issuing_ca"].as_str().unwrap().trim(), a.int_pem.trim());
    let der = x509_parser::pem::parse_x509_pem(cert.as_bytes())
        .unwrap()
        .1
        .contents;
    let parsed = x509_parser::parse_x509_certificate(&der).unwrap().1;
    assert!(parsed.subject().to_string().contains("a.example.com"));

    // the policy allows exactly signing: a token with it signs via both paths, but cannot read mounts
    let token = admin.create_token(&[&a.policy], "10m", false, 0).await.unwrap();
    let client = admin.with_token(&token);
    client.write(&a.sign_path, json!({"csr": csr})).await.unwrap();
    client
        .write(&a.issuer_sign_path("int"), json!({"csr": csr}))
        .await
        .unwrap();
    client
        .write(&a.issuer_sign_path(&a.int_issuer_id), json!({"csr": csr}))
        .await
        .unwrap();
    let (code, _, _) = client
        .raw(Method::POST, &b.sign_path, Some(&json!({"csr": csr})))
        .await
        .unwrap();
    assert_eq!(code, 403);
    // disallowed name -> 400 from the role
    let (bad_csr, _) = csr_p256("evil.org", &["evil.org"]).unwrap();
    let (code, _, body) = client
        .raw(Method::POST, &a.sign_path, Some(&json!({"csr": bad_csr})))
        .await
        .unwrap();
    assert_eq!(code, 400, "{body}");
    // revoked token -> 403
    admin.revoke_token(&token).await.unwrap();
    let (code, _, _) = client
        .raw(Method::POST, &a.sign_path, Some(&json!({"csr": csr})))
        .await
        .unwrap();
    assert_eq!(code, 403);

    // set_role: a small max_ttl caps the certificate with a warning
    a.set_role("short", json!({"max_ttl": "2m"})).await.unwrap();
    let v = admin
        .write(&a.sign_path_for("short"), json!({"csr": csr, "ttl": "1h"}))
        .await
        .unwrap();
    let d = &v["data"];
    let lifetime = d["expiration"].as_i64().unwrap() - d["not_before"].as_i64().unwrap();
    assert!(lifetime <= 2 * 60 + 31, "lifetime {lifetime}");
    assert!(!v["warnings"].as_array().unwrap().is_empty(), "{v}");

    // a mount with no CA answers 500
    let empty = admin.empty_pki_mount().await.unwrap();
    let (code, _, body) = admin
        .raw(
            Method::POST,
            &format!("{empty}/sign/example"),
            Some(&json!({"csr": csr})),
        )
        .await
        .unwrap();
    assert_eq!(code, 500, "{body}");
}

#[tokio::test]
async fn auth_helpers_namespaces_and_quotas_work() {
    let dev = DevServer::start().await.unwrap();
    let admin = dev.admin();
    admin
        .put_policy("p1", "path \"sys/health\" { capabilities = [\"read\"] }")
        .await
        .unwrap();

    // AppRole
    let (role_id, secret_id) = admin
        .approle_role("approle", "r1", &["p1"], 1, "10m")
        .await
        .unwrap();
    let anon = admin.with_token("");
    let v = anon
        .write(
            "auth/approle/login",
            json!({"role_id": role_id, "secret_id": secret_id}),
        )
        .await
        .unwrap();
    assert_eq!(v["auth"]["policies"], json!(["default", "p1"]));
    // secret_id_num_uses = 1: the second login fails with 400
    let (code, _, _) = anon
        .raw(
            Method::POST,
            "auth/approle/login",
            Some(&json!({"role_id": role_id, "secret_id": secret_id})),
        )
        .await
        .unwrap();
    assert_eq!(code, 400);
    let fresh = admin.approle_secret_id("approle", "r1").await.unwrap();
    anon.write(
        "auth/approle/login",
        json!({"role_id": role_id, "secret_id": fresh}),
    )
    .await
    .unwrap();

    // JWT with a static public key
    let (private, public) = rsa_keypair_pem().unwrap();
    let sub = "system:serviceaccount:default:cm";
    admin
        .jwt_auth("jwt", "k8s", &["p1"], &public, &["openbao"], Some(sub))
        .await
        .unwrap();
    let jwt = sign_jwt_rs256(&private, &kube_sa_claims("default", "cm", "openbao", 600)).unwrap();
    let v = anon
        .write("auth/jwt/login", json!({"role": "k8s", "jwt": jwt}))
        .await
        .unwrap();
    assert!(v["auth"]["client_token"].as_str().is_some_and(|t| !t.is_empty()));
    let wrong_aud = sign_jwt_rs256(&private, &kube_sa_claims("default", "cm", "other", 600)).unwrap();
    let (code, _, _) = anon
        .raw(
            Method::POST,
            "auth/jwt/login",
            Some(&json!({"role": "k8s", "jwt": wrong_aud})),
        )
        .await
        .unwrap();
    assert_eq!(code, 400);

    // tokens: num_uses and revoke
    let t = admin.create_token(&["p1"], "1h", true, 1).await.unwrap();
    let user = admin.with_token(&t);
    user.read("auth/token/lookup-self").await.unwrap();
    let (code, _, _) = user
        .raw(Method::GET, "auth/token/lookup-self", None)
        .await
        .unwrap();
    assert_eq!(code, 403, "num_uses=1 token still usable");

    // namespaces
    admin.create_namespace("team-a").await.unwrap();
    let ns = admin.with_namespace("team-a");
    let pki = ns.setup_pki(PkiOptions::default()).await.unwrap();
    let (csr, _) = csr_p256("n.example.com", &[]).unwrap();
    ns.write(&pki.sign_path, json!({"csr": csr})).await.unwrap();
    let (code, _, _) = admin
        .raw(Method::POST, &pki.sign_path, Some(&json!({"csr": csr})))
        .await
        .unwrap();
    assert_eq!(code, 404, "root namespace must not see the namespaced mount");
    let (code, _, body) = admin
        .with_namespace("nope")
        .raw(Method::GET, "sys/mounts", None)
        .await
        .unwrap();
    assert_eq!(code, 404, "{body}");

    // rate-limit quota with headers
    let pki = admin.setup_pki(PkiOptions::default()).await.unwrap();
    admin.enable_rate_limit_headers(true).await.unwrap();
    admin
        .rate_limit_quota("q1", &format!("{}/", pki.int_mount), 2.0, "10s", "5s")
        .await
        .unwrap();
    let mut limited = None;
    for _ in 0..10 {
        let (code, headers, _) = admin
            .raw(Method::POST, &pki.sign_path, Some(&json!({"csr": csr})))
            .await
            .unwrap();
        if code == 429 {
            limited = Some(headers);
            break;
        }
    }
    let headers = limited.expect("never rate limited");
    assert!(headers.get("retry-after").is_some(), "{headers:?}");
    tokio::time::sleep(Duration::from_millis(10)).await;
}

/// Alive and not a zombie (an orphan reparented to a non-reaping init stays a zombie).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// PR_SET_PDEATHSIG: a test process killed with SIGKILL (no unwinding, no Drop) takes its bao along.
#[tokio::test]
async fn server_dies_when_the_test_process_is_killed() {
    const NAME: &str = "server_dies_when_the_test_process_is_killed";
    if std::env::var_os("CERTKEEPER_TESTKIT_CHILD").is_some() {
        let dev = DevServer::start().await.unwrap();
        println!("BAO_PID={}", dev.pid());
        tokio::time::sleep(Duration::from_secs(120)).await;
        return;
    }
    use std::io::BufRead;
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
        .env("CERTKEEPER_TESTKIT_CHILD", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let bao_pid = tokio::task::spawn_blocking(move || {
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            // libtest may print "test NAME ... " on the same line first
            .find_map(|l| {
                l.split("BAO_PID=")
                    .nth(1)
                    .map(|p| p.trim().parse::<u32>().unwrap())
            })
    });
    let bao_pid = match tokio::time::timeout(Duration::from_secs(30), bao_pid).await {
        Ok(pid) => pid.unwrap().expect("child test printed no BAO_PID"),
        Err(_) => {
            child.kill().unwrap();
            panic!("child test did not start a dev server within 30 s");
        }
    };
    assert!(alive(bao_pid));
    child.kill().unwrap(); // SIGKILL: the child test process cannot clean up
    child.wait().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while alive(bao_pid) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !alive(bao_pid),
        "bao {bao_pid} outlived its SIGKILLed test process"
    );
}
