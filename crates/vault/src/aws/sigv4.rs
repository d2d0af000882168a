//! AWS Signature Version 4 (header form) for the one request Vault's AWS auth method needs: a
//! signed `sts:GetCallerIdentity` that Vault replays to STS to learn who we are. Written on
//! `sha2` (HMAC-SHA256 is a few lines on it) instead of pulling in an AWS SDK; checked against
//! AWS's published SigV4 test-suite vectors and AWS's documented IAM `ListUsers` example below.
//!
//! Scope: the canonical request of the AWS documentation for a request whose path and query
//! are given already URI-encoded as AWS wants them (`/` and `Action=...&Version=...` here);
//! header values are trimmed and inner runs of spaces folded; every header given is signed.

use sha2::{Digest, Sha256};

use super::AwsCredentials;

/// What is signed: method, host, encoded path and query, headers other than `host` and
/// `x-amz-date` (both added here), body.
#[derive(Debug)]
pub(crate) struct Request<'a> {
    pub method: &'a str,
    pub host: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

/// Headers to add to the request: `X-Amz-Date`, `X-Amz-Security-Token` for temporary
/// credentials, and `Authorization`. The Authorization value is derived from the secret key but
/// does not reveal it; the session token is itself a secret.
#[derive(Debug)]
pub(crate) struct Signed {
    pub amz_date: String,
    pub authorization: String,
}

/// `YYYYMMDD'T'HHMMSS'Z'` from RFC 3339 `YYYY-MM-DDTHH:MM:SSZ`.
pub(crate) fn amz_date(rfc3339: &str) -> String {
    rfc3339.chars().filter(|c| *c != '-' && *c != ':').collect()
}

/// Sign `req` for `region` and `service` at `amz_date` (see [`amz_date`]). A session token, when
/// the credentials have one, must be among `req.headers` as `X-Amz-Security-Token`: it is
/// signed like any other header.
pub(crate) fn sign(
    req: &Request<'_>,
    credentials: &AwsCredentials,
    region: &str,
    service: &str,
    amz_date: &str,
) -> Signed {
    let date = amz_date.get(..8).unwrap_or(amz_date);
    let mut headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), fold_spaces(v)))
        .chain([
            ("host".to_owned(), req.host.to_owned()),
            ("x-amz-date".to_owned(), amz_date.to_owned()),
        ])
        .collect();
    // By name only, and stable: repeated headers keep the order they were given in.
    headers.sort_by(|a, b| a.0.cmp(&b.0));
    // Repeated headers are one line with their values joined by commas, in the order given.
    let mut lines: Vec<(String, String)> = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        match lines.last_mut() {
            Some((last, joined)) if *last == name => {
                joined.push(',');
                joined.push_str(&value);
            }
            _ => lines.push((name, value)),
        }
    }
    let signed_headers = lines
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let canonical_headers: String = lines.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
    let canonical_request = format!(
        "{}\n{}\n{}\n{canonical_headers}\n{signed_headers}\n{}",
        req.method,
        req.path,
        canonical_query(req.query),
        hex(&Sha256::digest(req.body)),
    );
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical_request.as_bytes()))
    );
    let key = format!("AWS4{}", credentials.secret_access_key.expose());
    let mut k = hmac_sha256(key.as_bytes(), date.as_bytes());
    for part in [region, service, "aws4_request"] {
        k = hmac_sha256(&k, part.as_bytes());
    }
    let signature = hex(&hmac_sha256(&k, string_to_sign.as_bytes()));
    Signed {
        amz_date: amz_date.to_owned(),
        authorization: format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            credentials.access_key_id
        ),
    }
}

/// A header value as SigV4 canonicalises it: trimmed, inner runs of spaces made one.
fn fold_spaces(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Query parameters sorted by name, then value (already encoded by the caller).
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(&str, &str)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// HMAC-SHA256 (RFC 2104) with SHA-256's 64-byte block.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use certkeeper_core::Secret;

    /// The credentials of AWS's SigV4 test suite and documentation examples.
    fn example(session_token: Option<&str>) -> AwsCredentials {
        AwsCredentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
            session_token: session_token.map(Secret::new),
        }
    }

    const SUITE_DATE: &str = "20150830T123600Z";

    fn signature(authorization: &str) -> &str {
        authorization.rsplit("Signature=").next().unwrap_or_default()
    }

    /// aws-sig-v4-test-suite `get-vanilla`.
    #[test]
    fn suite_get_vanilla() {
        let req = Request {
            method: "GET",
            host: "example.amazonaws.com",
            path: "/",
            query: "",
            headers: &[],
            body: b"",
        };
        let signed = sign(&req, &example(None), "us-east-1", "service", SUITE_DATE);
        assert_eq!(
            signed.authorization,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    /// aws-sig-v4-test-suite `post-x-www-form-urlencoded`: a signed body, as GetCallerIdentity's.
    #[test]
    fn suite_post_x_www_form_urlencoded() {
        let req = Request {
            method: "POST",
            host: "example.amazonaws.com",
            path: "/",
            query: "",
            headers: &[("Content-Type", "application/x-www-form-urlencoded")],
            body: b"Param1=value1",
        };
        let signed = sign(&req, &example(None), "us-east-1", "service", SUITE_DATE);
        assert_eq!(
            signed.authorization,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, \
             Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"
        );
    }

    /// AWS's documented example (IAM `ListUsers`, "Create a signed AWS API request"): a query
    /// string to sort and a header value with `; charset=utf-8`.
    #[test]
    fn documented_iam_list_users_example() {
        let req = Request {
            method: "GET",
            host: "iam.amazonaws.com",
            path: "/",
            query: "Version=2010-05-08&Action=ListUsers",
            headers: &[("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")],
            body: b"",
        };
        let signed = sign(&req, &example(None), "us-east-1", "iam", SUITE_DATE);
        assert_eq!(
            signature(&signed.authorization),
            "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );
        assert_eq!(signed.amz_date, SUITE_DATE);
    }

    /// aws-sig-v4-test-suite `get-header-value-trim` and `get-header-key-duplicate`: values are
    /// trimmed, inner spaces folded, repeated headers joined in order.
    #[test]
    fn suite_header_canonicalisation() {
        let req = Request {
            method: "GET",
            host: "example.amazonaws.com",
            path: "/",
            query: "",
            headers: &[("My-Header1", " value1"), ("My-Header2", " \"a   b   c\"")],
            body: b"",
        };
        let signed = sign(&req, &example(None), "us-east-1", "service", SUITE_DATE);
        assert_eq!(
            signature(&signed.authorization),
            "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"
        );
        let req = Request {
            headers: &[
                ("My-Header1", "value2"),
                ("My-Header1", "value2"),
                ("My-Header1", "value1"),
            ],
            ..req
        };
        let signed = sign(&req, &example(None), "us-east-1", "service", SUITE_DATE);
        assert_eq!(
            signature(&signed.authorization),
            "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea"
        );
    }

    /// The request this module exists for, with a session token and Vault's server-ID header,
    /// signed by an independent implementation (botocore 1.43.11's `SigV4Auth`) at the date below.
    #[test]
    fn get_caller_identity_as_botocore_signs_it() {
        let req = Request {
            method: "POST",
            host: "sts.eu-west-1.amazonaws.com",
            path: "/",
            query: "",
            headers: &[
                ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"),
                ("X-Vault-AWS-IAM-Server-ID", "vault.example.com"),
                ("X-Amz-Security-Token", "session-token-example"),
            ],
            body: b"Action=GetCallerIdentity&Version=2011-06-15",
        };
        let signed = sign(
            &req,
            &example(Some("session-token-example")),
            "eu-west-1",
            "sts",
            "20261207T213525Z",
        );
        assert_eq!(
            signed.authorization,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261207/eu-west-1/sts/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-vault-aws-iam-server-id, \
             Signature=9f2c37b796ded189ea2e86a3161c5373b7754b867b35b3aa612064c8f36a7c01"
        );
    }

    /// RFC 4231 test case 2 and case 6 (a key longer than the block).
    #[test]
    fn hmac_matches_rfc_4231() {
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex(&hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn the_secret_key_is_not_in_what_is_sent() {
        let req = Request {
            method: "POST",
            host: "sts.us-east-1.amazonaws.com",
            path: "/",
            query: "",
            headers: &[],
            body: b"Action=GetCallerIdentity&Version=2011-06-15",
        };
        let signed = sign(&req, &example(None), "us-east-1", "sts", SUITE_DATE);
        assert!(!signed.authorization.contains("wJalrXUtnFEMI"));
        assert!(!format!("{signed:?}").contains("wJalrXUtnFEMI"));
    }
}
