//! Dev server with an extra TLS listener: mTLS enforcement and TLS certificate auth.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns unwrap too

use certkeeper_testkit::{ClientCert, DevServer, TlsOptions};
use serde_json::json;

async fn health(client: &reqwest::Client, addr: &str) -> Result<u16, String> {
    client
        .get(format!("{addr}/v1/sys/health"))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .map_err(|e| format!("{e:?}"))
}

#[tokio::test]
async fn mtls_required_accepts_only_the_trusted_client_cert() {
    let dev = DevServer::start_tls(TlsOptions {
        require_client_cert: true,
    })
    .await
    .unwrap();
    let tls = dev.tls().unwrap();
    let addr = dev.tls_addr().unwrap();
    assert!(addr.starts_with("https://127.0.0.1:"));

    assert_eq!(
        health(&tls.https_client(ClientCert::Trusted).unwrap(), &addr).await,
        Ok(200)
    );
    let no_cert = health(&tls.https_client(ClientCert::None).unwrap(), &addr).await;
    assert!(no_cert.is_err(), "no client cert got {no_cert:?}");
    let untrusted = health(&tls.https_client(ClientCert::Untrusted).unwrap(), &addr).await;
    assert!(untrusted.is_err(), "untrusted client cert got {untrusted:?}");

    // "vault.test" is a SAN too: reach it through a resolve override
    let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
    let identity = reqwest::Identity::from_pem(tls.client_identity_pem().as_bytes()).unwrap();
    let by_name = reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([reqwest::Certificate::from_pem(tls.ca_pem.as_bytes()).unwrap()])
        .identity(identity)
        .resolve("vault.test", ([127, 0, 0, 1], port).into())
        .build()
        .unwrap();
    assert_eq!(
        health(&by_name, &format!("https://vault.test:{port}")).await,
        Ok(200)
    );

    // the plain listener still works
    assert_eq!(dev.admin().health().await.unwrap(), 200);
}

#[tokio::test]
async fn tls_without_client_cert_requirement_and_cert_auth_login() {
    let dev = DevServer::start_tls(TlsOptions {
        require_client_cert: false,
    })
    .await
    .unwrap();
    let tls = dev.tls().unwrap().clone();
    let addr = dev.tls_addr().unwrap();
    assert_eq!(
        health(&tls.https_client(ClientCert::None).unwrap(), &addr).await,
        Ok(200)
    );

    // a client that does not trust the test CA fails
    let stranger = reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([reqwest::Certificate::from_pem(tls.untrusted_ca_pem.as_bytes()).unwrap()])
        .build()
        .unwrap();
    assert!(health(&stranger, &addr).await.is_err());

    let admin = dev.admin();
    admin
        .put_policy("p-cert", "path \"sys/health\" { capabilities = [\"read\"] }")
        .await
        .unwrap();
    admin
        .cert_auth("cert", "clients", &tls.ca_pem, &["p-cert"])
        .await
        .unwrap();
    let login = |client: reqwest::Client| {
        let url = format!("{addr}/v1/auth/cert/login");
        async move { client.post(url).json(&json!({})).send().await.unwrap() }
    };
    let ok = login(tls.https_client(ClientCert::Trusted).unwrap()).await;
    assert_eq!(ok.status().as_u16(), 200);
    let v: serde_json::Value = ok.json().await.unwrap();
    assert!(
        v["auth"]["policies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "p-cert"),
        "{v}"
    );
    // no certificate, or one from another CA: 400
    assert_eq!(
        login(tls.https_client(ClientCert::None).unwrap())
            .await
            .status()
            .as_u16(),
        400
    );
    assert_eq!(
        login(tls.https_client(ClientCert::Untrusted).unwrap())
            .await
            .status()
            .as_u16(),
        400
    );
}
