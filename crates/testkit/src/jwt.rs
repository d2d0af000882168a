//! RS256 JWTs for OpenBao's `jwt` auth method (configured with `jwt_validation_pubkeys`).
//!
//! The key pair comes from rcgen (RSA-2048 generation is provided by aws-lc-rs) and signing uses
//! rcgen's `SigningKey`, i.e. RSASSA-PKCS1-v1_5 with SHA-256: exactly JWS "RS256".

use anyhow::{Context, Result};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rcgen::{KeyPair, PKCS_RSA_SHA256, SigningKey};

/// A fresh RSA-2048 key pair: (private key as PKCS#8 PEM, public key as SPKI PEM).
pub fn rsa_keypair_pem() -> Result<(String, String)> {
    let key = KeyPair::generate_for(&PKCS_RSA_SHA256).context("generating an RSA-2048 key")?;
    Ok((key.serialize_pem(), key.public_key_pem()))
}

/// Signs `claims` as a compact JWS with header `{"alg":"RS256","typ":"JWT","kid":"test"}`.
pub fn sign_jwt_rs256(private_pem: &str, claims: &serde_json::Value) -> Result<String> {
    let key = KeyPair::from_pem_and_sign_algo(private_pem, &PKCS_RSA_SHA256)
        .context("parsing the RSA private key (PKCS#8 PEM expected)")?;
    let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": "test"});
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).context("JWT header")?),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).context("JWT claims")?)
    );
    let signature = key.sign(signing_input.as_bytes()).context("RS256 signing")?;
    Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature)))
}

/// Claims shaped like a Kubernetes projected service-account token for `ns`/`sa`, valid for
/// `ttl_seconds` from now, with audience `aud` and issuer `https://kubernetes.default.svc.cluster.local`.
pub fn kube_sa_claims(ns: &str, sa: &str, aud: &str, ttl_seconds: u64) -> serde_json::Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    serde_json::json!({
        "aud": [aud],
        "exp": now + ttl_seconds,
        "iat": now,
        "nbf": now,
        "iss": "https://kubernetes.default.svc.cluster.local",
        "sub": format!("system:serviceaccount:{ns}:{sa}"),
        "kubernetes.io": {
            "namespace": ns,
            "serviceaccount": {"name": sa, "uid": crate::ports::random_hex(16)},
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwt_has_three_parts_and_rs256_header() {
        let (private, public) = rsa_keypair_pem().unwrap();
        assert!(private.contains("BEGIN PRIVATE KEY"));
        assert!(public.contains("BEGIN PUBLIC KEY"));
        let jwt = sign_jwt_rs256(&private, &kube_sa_claims("default", "sa", "openbao", 600)).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["alg"], "RS256");
        // RSA-2048 signature is 256 bytes
        assert_eq!(URL_SAFE_NO_PAD.decode(parts[2]).unwrap().len(), 256);
    }
}
