//! Auth-method setup helpers on [`Admin`]: AppRole, JWT (static public keys), TLS certificates and
//! Kubernetes (TokenReview against a real kube-apiserver). Each one enables its auth mount if
//! nothing is mounted there yet, so calling it twice with different roles is fine.

use anyhow::Result;
use serde_json::json;

use crate::admin::{Admin, str_at};

/// Parameters for [`Admin::kubernetes_auth`].
#[derive(Debug, Clone, Copy)]
pub struct KubernetesAuth<'a> {
    /// Auth mount path, e.g. "kubernetes".
    pub mount: &'a str,
    /// The kube-apiserver URL OpenBao calls for TokenReview, e.g. `https://127.0.0.1:16443`.
    pub host: &'a str,
    /// The CA that signed the kube-apiserver's serving certificate.
    pub ca_pem: &'a str,
    /// Bearer token OpenBao uses for TokenReview (needs `tokenreviews` create).
    pub reviewer_jwt: &'a str,
    pub role: &'a str,
    pub sa_names: &'a [&'a str],
    pub sa_namespaces: &'a [&'a str],
    pub policies: &'a [&'a str],
    /// If set, the role requires this audience in the service-account token.
    pub audience: Option<&'a str>,
}

impl Admin {
    /// Creates AppRole `role` on auth mount `mount` (enabled if needed) and returns
    /// `(role_id, secret_id)` with one fresh secret_id. `secret_id_num_uses` 0 = unlimited;
    /// `secret_id_ttl` e.g. "10m" ("0" = no expiry).
    pub async fn approle_role(
        &self,
        mount: &str,
        role: &str,
        policies: &[&str],
        secret_id_num_uses: u32,
        secret_id_ttl: &str,
    ) -> Result<(String, String)> {
        self.ensure_auth(mount, "approle").await?;
        self.write(
            &format!("auth/{mount}/role/{role}"),
            json!({"token_policies": policies, "secret_id_num_uses": secret_id_num_uses,
                   "secret_id_ttl": secret_id_ttl}),
        )
        .await?;
        let v = self.read(&format!("auth/{mount}/role/{role}/role-id")).await?;
        let role_id = str_at(&v, "/data/role_id")?;
        let secret_id = self.approle_secret_id(mount, role).await?;
        Ok((role_id, secret_id))
    }

    /// A new secret_id for an existing AppRole.
    pub async fn approle_secret_id(&self, mount: &str, role: &str) -> Result<String> {
        let v = self
            .write(&format!("auth/{mount}/role/{role}/secret-id"), json!({}))
            .await?;
        str_at(&v, "/data/secret_id")
    }

    /// JWT auth on `mount` validating signatures with `pubkey_pem` (SPKI PEM), and role `role`
    /// (`role_type` jwt, `user_claim` sub) bound to `bound_audiences` and optionally `bound_subject`.
    pub async fn jwt_auth(
        &self,
        mount: &str,
        role: &str,
        policies: &[&str],
        pubkey_pem: &str,
        bound_audiences: &[&str],
        bound_subject: Option<&str>,
    ) -> Result<()> {
        self.ensure_auth(mount, "jwt").await?;
        self.write(
            &format!("auth/{mount}/config"),
            json!({"jwt_validation_pubkeys": [pubkey_pem]}),
        )
        .await?;
        let mut body = json!({"role_type": "jwt", "user_claim": "sub", "bound_audiences": bound_audiences,
                              "token_policies": policies});
        if let Some(sub) = bound_subject {
            body["bound_subject"] = json!(sub);
        }
        self.write(&format!("auth/{mount}/role/{role}"), body)
            .await
            .map(|_| ())
    }

    /// TLS certificate auth on `mount`: certificates signed by `ca_pem` log in as `name`.
    /// Logins only work over a TLS listener (see `DevServer::start_tls`).
    pub async fn cert_auth(&self, mount: &str, name: &str, ca_pem: &str, policies: &[&str]) -> Result<()> {
        self.ensure_auth(mount, "cert").await?;
        self.write(
            &format!("auth/{mount}/certs/{name}"),
            json!({"certificate": ca_pem, "token_policies": policies}),
        )
        .await
        .map(|_| ())
    }

    /// Kubernetes auth: OpenBao reviews presented service-account tokens with the
    /// kube-apiserver at `cfg.host`. The local-CA/JWT fallbacks are disabled.
    pub async fn kubernetes_auth(&self, cfg: KubernetesAuth<'_>) -> Result<()> {
        let mount = cfg.mount;
        self.ensure_auth(mount, "kubernetes").await?;
        self.write(
            &format!("auth/{mount}/config"),
            json!({"kubernetes_host": cfg.host, "kubernetes_ca_cert": cfg.ca_pem,
                   "token_reviewer_jwt": cfg.reviewer_jwt, "disable_local_ca_jwt": true}),
        )
        .await?;
        let mut body = json!({"bound_service_account_names": cfg.sa_names,
                              "bound_service_account_namespaces": cfg.sa_namespaces,
                              "token_policies": cfg.policies});
        if let Some(aud) = cfg.audience {
            body["audience"] = json!(aud);
        }
        self.write(&format!("auth/{mount}/role/{}", cfg.role), body)
            .await
            .map(|_| ())
    }
}
