//! PKI setup on a test server: a fresh EC P-256 root + intermediate pair of mounts per call,
//! a signing role and a policy allowing exactly the sign endpoints. Mount names are unique in
//! the process (`pki_root_<n>`, `pki_int_<n>`), so tests can share a server.

use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::admin::{Admin, str_at};

static MOUNT_COUNTER: AtomicU64 = AtomicU64::new(1);

fn next_n() -> u64 {
    MOUNT_COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// What [`Admin::setup_pki`] creates.
#[derive(Debug, Clone)]
pub struct PkiOptions {
    /// Role name on the intermediate mount (default "example").
    pub role: String,
    /// Role `max_ttl` (default "720h") and `ttl` (default "24h").
    pub max_ttl: String,
    pub ttl: String,
    /// Validity of the intermediate CA (default "43800h"); make it short to test
    /// "ttl beyond the CA's notAfter".
    pub int_ttl: String,
}

impl Default for PkiOptions {
    fn default() -> Self {
        Self {
            role: "example".into(),
            max_ttl: "720h".into(),
            ttl: "24h".into(),
            int_ttl: "43800h".into(),
        }
    }
}

/// The default role body: example.com and its subdomains, IP SANs, `spiffe://*` URI SANs,
/// any key type. `overrides` (a JSON object) replaces top-level fields; overriding `max_ttl`
/// alone also drops the default `ttl` (it could exceed the new max).
pub fn role_body(max_ttl: &str, ttl: &str, overrides: &Value) -> Value {
    let mut body = json!({
        "allowed_domains": ["example.com"],
        "allow_subdomains": true,
        "allow_ip_sans": true,
        "allowed_uri_sans": ["spiffe://*"],
        "allow_any_name": false,
        "enforce_hostnames": true,
        "key_type": "any",
        "max_ttl": max_ttl,
        "ttl": ttl,
    });
    if let (Some(base), Some(extra)) = (body.as_object_mut(), overrides.as_object()) {
        if extra.contains_key("max_ttl") && !extra.contains_key("ttl") {
            // A default ttl above the new max_ttl is a 400; without one OpenBao uses max_ttl.
            base.remove("ttl");
        }
        for (k, v) in extra {
            base.insert(k.clone(), v.clone());
        }
    }
    body
}

/// A ready PKI: root mount, intermediate mount with a role, and a sign policy.
#[derive(Debug, Clone)]
pub struct Pki {
    pub root_mount: String,
    pub int_mount: String,
    pub role: String,
    /// `<int_mount>/sign/<role>`
    pub sign_path: String,
    /// ACL policy `<int_mount>-sign`: create/update on `<int>/sign/<role>` and `<int>/issuer/+/sign/<role>`.
    pub policy: String,
    pub root_pem: String,
    pub int_pem: String,
    /// Issuer id of the intermediate in `int_mount` (also named "int" there).
    pub int_issuer_id: String,
    options: PkiOptions,
    admin: Admin,
}

impl Pki {
    /// `<int_mount>/issuer/<issuer_ref>/sign/<role>`
    pub fn issuer_sign_path(&self, issuer_ref: &str) -> String {
        format!("{}/issuer/{issuer_ref}/sign/{}", self.int_mount, self.role)
    }

    /// `<int_mount>/sign/<role>` for another role.
    pub fn sign_path_for(&self, role: &str) -> String {
        format!("{}/sign/{role}", self.int_mount)
    }

    /// Creates or replaces role `name` on the intermediate mount: the default role body with
    /// `overrides` applied (e.g. `json!({"max_ttl": "2m"})`). Note the sign policy only covers
    /// the default role; use the root token or `put_policy` for others.
    pub async fn set_role(&self, name: &str, overrides: Value) -> Result<()> {
        let body = role_body(&self.options.max_ttl, &self.options.ttl, &overrides);
        self.admin
            .write(&format!("{}/roles/{name}", self.int_mount), body)
            .await
            .map(|_| ())
    }

    /// Writes fields of the intermediate issuer, e.g. `{"leaf_not_after_behavior": "truncate"}`.
    pub async fn set_int_issuer(&self, fields: Value) -> Result<()> {
        let path = format!("{}/issuer/{}", self.int_mount, self.int_issuer_id);
        self.admin.write(&path, fields).await.map(|_| ())
    }
}

impl Admin {
    /// Creates a fresh root + intermediate pair of PKI mounts, role and sign policy.
    pub async fn setup_pki(&self, opts: PkiOptions) -> Result<Pki> {
        let n = next_n();
        let root = format!("pki_root_{n}");
        let int = format!("pki_int_{n}");
        self.mount_with_config(&root, "pki", json!({"max_lease_ttl": "87600h"}))
            .await?;
        let v = self
            .write(
                &format!("{root}/root/generate/internal"),
                json!({"common_name": format!("Test Root CA {n}"), "key_type": "ec", "key_bits": 256,
                       "ttl": "87600h", "issuer_name": "root"}),
            )
            .await
            .context("generating the root CA")?;
        let root_pem = str_at(&v, "/data/certificate")?;

        self.mount_with_config(&int, "pki", json!({"max_lease_ttl": "87600h"}))
            .await?;
        let v = self
            .write(
                &format!("{int}/intermediate/generate/internal"),
                json!({"common_name": format!("Test Intermediate CA {n}"), "key_type": "ec", "key_bits": 256}),
            )
            .await
            .context("generating the intermediate CSR")?;
        let csr = str_at(&v, "/data/csr")?;
        let v = self
            .write(
                &format!("{root}/root/sign-intermediate"),
                json!({"csr": csr, "format": "pem", "ttl": opts.int_ttl, "issuer_ref": "root"}),
            )
            .await
            .context("signing the intermediate")?;
        let int_pem = str_at(&v, "/data/certificate")?;
        let v = self
            .write(
                &format!("{int}/intermediate/set-signed"),
                json!({"certificate": int_pem}),
            )
            .await
            .context("installing the intermediate")?;
        let int_issuer_id = str_at(&v, "/data/imported_issuers/0")?;
        self.write(
            &format!("{int}/issuer/{int_issuer_id}"),
            json!({"issuer_name": "int"}),
        )
        .await
        .context("naming the intermediate issuer")?;

        let body = role_body(&opts.max_ttl, &opts.ttl, &json!({}));
        self.write(&format!("{int}/roles/{}", opts.role), body)
            .await
            .context("creating the role")?;
        let policy = format!("{int}-sign");
        let hcl = format!(
            "path \"{int}/sign/{role}\" {{ capabilities = [\"create\", \"update\"] }}\n\
             path \"{int}/issuer/+/sign/{role}\" {{ capabilities = [\"create\", \"update\"] }}\n",
            role = opts.role
        );
        self.put_policy(&policy, &hcl).await?;
        Ok(Pki {
            sign_path: format!("{int}/sign/{}", opts.role),
            root_mount: root,
            int_mount: int,
            role: opts.role.clone(),
            policy,
            root_pem,
            int_pem,
            int_issuer_id,
            options: opts,
            admin: self.clone(),
        })
    }

    /// A PKI mount with role "example" but no CA at all (signing answers 500, permanently).
    pub async fn empty_pki_mount(&self) -> Result<String> {
        let mount = format!("pki_empty_{}", next_n());
        self.mount(&mount, "pki").await?;
        let defaults = PkiOptions::default();
        self.write(
            &format!("{mount}/roles/example"),
            role_body(&defaults.max_ttl, &defaults.ttl, &json!({})),
        )
        .await
        .context("creating a role on the empty PKI mount")?;
        Ok(mount)
    }
}
