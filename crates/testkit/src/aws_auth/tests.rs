//! The front's checks against the plugin's source (see the module docs): the pure steps, then
//! the login end to end against a recording STS, where no OpenBao is reached (every case fails
//! before the token is made).

use super::*;

#[test]
fn arns_are_parsed_and_made_canonical_as_parse_iam_arn_does() {
    let canonical = |arn: &str| parse_iam_arn(arn).map(|e| e.canonical_arn());
    assert_eq!(
        canonical("arn:aws:sts::123456789012:assumed-role/r/s").as_deref(),
        Ok("arn:aws:iam::123456789012:role/r")
    );
    assert_eq!(
        canonical("arn:aws:sts::123456789012:user/moto").as_deref(),
        Ok("arn:aws:iam::123456789012:user/moto")
    );
    assert_eq!(
        canonical("arn:aws:iam::123456789012:role/path/r").as_deref(),
        Ok("arn:aws:iam::123456789012:role/r")
    );
    // More than three parts of an assumed role: the role and session are parts 1 and 2.
    let e = parse_iam_arn("arn:aws:sts::1:assumed-role/r/s/x").unwrap();
    assert_eq!((e.friendly_name.as_str(), e.session_info.as_str()), ("r", "s"));
    // Exactly six colon-separated parts (a colon in the resource is refused).
    assert_eq!(
        canonical("arn:aws:iam::1:user/a:b"),
        Err("unrecognized arn: contains 7 colon-separated parts, expected 6".into())
    );
    assert_eq!(
        canonical("arn:aws:iam::1:group/g"),
        Err("unrecognized principal type: \"group\"".into())
    );
    assert_eq!(
        canonical("arn:aws:s3::1:user/u"),
        Err("unrecognized service: s3, not one of iam or sts".into())
    );
    assert_eq!(
        canonical("arn:aws:sts::1:assumed-role/r"),
        Err("unrecognized arn: \"assumed-role/r\" contains fewer than 3 slash-separated parts".into())
    );
    assert_eq!(
        canonical("nra:aws:iam::1:user/u"),
        Err("unrecognized arn: does not begin with \"arn:\"".into())
    );
    assert_eq!(
        canonical(""),
        Err("unrecognized arn: contains 1 colon-separated parts, expected 6".into())
    );
}

#[test]
fn the_body_is_validated_as_validate_login_iam_request_body_does() {
    assert_eq!(
        validate_request_body("Action=GetCallerIdentity&Version=2011-06-15"),
        Ok(())
    );
    // Version takes any value, and Action may be absent.
    assert_eq!(validate_request_body("Version=2099-01-01"), Ok(()));
    assert_eq!(validate_request_body("Action=GetCallerIdentity"), Ok(()));
    let invalid = Err(REQUEST_BODY_NOT_VALID.to_owned());
    assert_eq!(
        validate_request_body("Action=GetCallerIdentity&Action=GetCallerIdentity"),
        invalid
    );
    assert_eq!(
        validate_request_body("Action=AssumeRole&Version=2011-06-15"),
        invalid
    );
    assert_eq!(
        validate_request_body("Action=GetCallerIdentity&RoleArn=x"),
        invalid
    );
    assert_eq!(
        validate_request_body("Action=GetCallerIdentity;Version=1"),
        Err("invalid semicolon separator in query".into())
    );
    assert_eq!(
        validate_request_body("Action=%zz"),
        Err("invalid URL escape \"%zz\"".into())
    );
    assert_eq!(validate_request_body("Action=Get%43allerIdentity"), Ok(()));
}

#[test]
fn the_url_needs_an_empty_query_only() {
    let url = parse_request_url("https://sts.us-east-1.amazonaws.com/").unwrap();
    assert_eq!(url.host, "sts.us-east-1.amazonaws.com");
    assert_eq!(url.request_uri, "/");
    // The path is not checked; the port stays in Host.
    let url = parse_request_url("https://sts.amazonaws.com:443/some/path").unwrap();
    assert_eq!(
        (url.host.as_str(), url.request_uri.as_str()),
        ("sts.amazonaws.com:443", "/some/path")
    );
    assert_eq!(
        parse_request_url("https://sts.amazonaws.com/?Action=GetCallerIdentity")
            .err()
            .as_deref(),
        Some("invalid request")
    );
    assert_eq!(
        parse_request_url("https://sts.amazonaws.com/?")
            .unwrap()
            .request_uri,
        "/?"
    );
    assert_eq!(
        parse_request_url("not a url").err().as_deref(),
        Some("error parsing iam_request_url")
    );
    // buildHttpRequest: endpoint + "/" + RequestURI.
    let url = parse_request_url("https://sts.amazonaws.com/").unwrap();
    assert_eq!(replay_target("http://127.0.0.1:9", &url), "http://127.0.0.1:9//");
}

#[test]
fn headers_are_read_in_every_form_type_header_takes() {
    let expected: Headers = vec![
        ("Authorization".into(), vec!["a".into()]),
        ("X-Amz-Date".into(), vec!["d1".into(), "d2".into()]),
    ];
    let object = json!({"authorization": "a", "x-amz-date": ["d1", "d2"]});
    assert_eq!(parse_header_field(&object), Ok(expected.clone()));
    let text = object.to_string();
    assert_eq!(parse_header_field(&json!(text)), Ok(expected.clone()));
    assert_eq!(
        parse_header_field(&json!(BASE64.encode(&text))),
        Ok(expected.clone())
    );
    assert_eq!(
        parse_header_field(&json!(["authorization:a", "x-amz-date:d1", "X-Amz-Date:d2"])),
        Ok(expected)
    );
    assert_eq!(
        parse_header_field(&json!({"n": 5})),
        Ok(vec![("N".into(), vec!["5".into()])])
    );
    assert!(parse_header_field(&json!({"a": true})).is_err());
    assert!(parse_header_field(&json!(["novalue"])).is_err());
    assert!(parse_header_field(&json!("not json")).is_err());
}

fn with_authorization(id: &str, signed: &str) -> Headers {
    let mut h = Headers::new();
    header_add(&mut h, SERVER_ID_HEADER, id.into());
    header_add(
        &mut h,
        "authorization",
        format!(
            "AWS4-HMAC-SHA256 Credential=K/20260101/us-east-1/sts/aws4_request, SignedHeaders={signed}, Signature=0"
        ),
    );
    h
}

#[test]
fn the_server_id_header_is_checked_as_validate_vault_header_value_does() {
    let ok = "host;x-amz-date;x-vault-aws-iam-server-id";
    assert_eq!(
        validate_server_id_header(&with_authorization("v", ok), "v"),
        Ok(())
    );
    // Compared with the lowercase name exactly, not case-insensitively.
    assert_eq!(
        validate_server_id_header(&with_authorization("v", "host;X-Vault-AWS-IAM-Server-ID"), "v"),
        Err("vault header wasn't signed".into())
    );
    assert_eq!(
        validate_server_id_header(&with_authorization("w", ok), "v"),
        Err("expected \"v\" but got \"w\"".into())
    );
    // Present but empty counts as missing.
    assert_eq!(
        validate_server_id_header(&with_authorization("", ok), "v"),
        Err("missing header \"X-Vault-AWS-IAM-Server-ID\"".into())
    );
    let mut no_authz = Headers::new();
    header_add(&mut no_authz, "x-vault-aws-iam-server-id", "v".into());
    assert_eq!(
        validate_server_id_header(&no_authz, "v"),
        Err("missing Authorization header".into())
    );
    // The last SignedHeaders= counts (the plugin's regex is greedy).
    let mut twice = with_authorization("v", ok);
    twice[0].1[0].push_str(", SignedHeaders=host");
    assert_eq!(
        validate_server_id_header(&twice, "v"),
        Err("vault header wasn't signed".into())
    );
}

#[test]
fn x_amz_headers_must_be_allowed() {
    let mut h = Headers::new();
    header_add(&mut h, "x-amz-date", "d".into());
    header_add(&mut h, "x-amz-security-token", "t".into());
    assert_eq!(validate_allowed_sts_headers(&h, &[]), Ok(()));
    header_add(&mut h, "x-amz-foo", "f".into());
    assert_eq!(
        validate_allowed_sts_headers(&h, &[]),
        Err("invalid request header: X-Amz-Foo".into())
    );
    assert_eq!(validate_allowed_sts_headers(&h, &["x-amz-foo".into()]), Ok(()));
}

#[test]
fn sts_answers_are_parsed_as_parse_get_caller_identity_response_does() {
    let answer = "<?xml version=\"1.0\"?>\n<GetCallerIdentityResponse xmlns=\"x\"><GetCallerIdentityResult>\
                  <Arn>arn:aws:iam::1:user/a&amp;b</Arn><UserId>AID</UserId><Account>1</Account>\
                  </GetCallerIdentityResult></GetCallerIdentityResponse>";
    let id = parse_caller_identity(answer).unwrap().unwrap();
    assert_eq!(id.arn, "arn:aws:iam::1:user/a&b");
    assert_eq!(id.user_id, "AID");
    assert_eq!(
        parse_caller_identity("<GetCallerIdentityResponse></GetCallerIdentityResponse>"),
        Ok(None)
    );
    assert_eq!(parse_caller_identity("{\"Arn\": \"x\"}"), Err(()));
    assert_eq!(
        parse_caller_identity("<?xml version=\"1.0\"?><ErrorResponse></ErrorResponse>"),
        Err(())
    );
}

/// What the recording STS saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

/// A one-answer STS on loopback: every request gets `status`, `content_type` and `body`.
async fn recording_sts(
    status: u16,
    content_type: &'static str,
    body: String,
) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (record, body) = (record.clone(), body.clone());
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let (record, body) = (record.clone(), body.clone());
                    async move {
                        let (parts, b) = req.into_parts();
                        let b = b.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
                        record.lock().unwrap().push(Seen {
                            path: parts.uri.path().to_owned(),
                            headers: parts
                                .headers
                                .iter()
                                .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                                .collect(),
                            body: String::from_utf8_lossy(&b).into_owned(),
                        });
                        let mut resp = Response::new(Full::new(Bytes::from(body)));
                        *resp.status_mut() = StatusCode::from_u16(status).unwrap();
                        resp.headers_mut().insert(
                            "content-type",
                            hyper::header::HeaderValue::from_static(content_type),
                        );
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, seen)
}

fn identity(arn: &str) -> String {
    format!(
        "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
         <GetCallerIdentityResult><Arn>{arn}</Arn><UserId>AID:s</UserId><Account>123456789012</Account>\
         </GetCallerIdentityResult></GetCallerIdentityResponse>"
    )
}

async fn front(sts: &str, server_id: Option<&str>, max_retries: u32) -> AwsAuthFront {
    AwsAuthFront::start(
        "http://127.0.0.1:9",
        "root",
        AwsAuthConfig {
            sts_endpoint: sts.to_owned(),
            iam_server_id_header_value: server_id.map(str::to_owned),
            max_retries,
            roles: vec![AwsAuthRole {
                name: "Web".into(),
                bound_iam_principal_arn: "arn:aws:iam::123456789012:role/bound".into(),
                policy: "p".into(),
            }],
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

/// A login as certkeeper sends it (signature not checked by the recording STS).
fn login(role: &str, headers: Value) -> Value {
    json!({
        "role": role,
        "iam_http_request_method": "POST",
        "iam_request_url": BASE64.encode("https://sts.us-east-1.amazonaws.com/"),
        "iam_request_body": BASE64.encode("Action=GetCallerIdentity&Version=2011-06-15"),
        "iam_request_headers": BASE64.encode(headers.to_string()),
    })
}

fn signed_headers() -> Value {
    json!({
        "Content-Type": ["application/x-www-form-urlencoded; charset=utf-8"],
        "X-Vault-AWS-IAM-Server-ID": ["vault.test"],
        "X-Amz-Date": ["20260101T000000Z"],
        "Content-Length": ["999"],
        "Authorization": ["AWS4-HMAC-SHA256 Credential=K/20260101/us-east-1/sts/aws4_request, \
                           SignedHeaders=content-type;host;x-amz-date;x-vault-aws-iam-server-id, Signature=0"],
    })
}

async fn post(front: &AwsAuthFront, body: &Value) -> (u16, String) {
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/auth/aws/login", front.addr()))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let v: Value = resp.json().await.unwrap();
    (status, v["errors"][0].as_str().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn the_replay_goes_to_endpoint_slash_request_uri_with_the_urls_host_and_the_role_is_looked_up_after_sts()
 {
    let (sts, seen) = recording_sts(
        200,
        "text/xml",
        identity("arn:aws:sts::123456789012:assumed-role/other/s"),
    )
    .await;
    let front = front(&sts, Some("vault.test"), 0).await;
    // An unknown role is reported only after STS answered (as pathLoginUpdateIam does).
    let (status, error) = post(&front, &login("nope", signed_headers())).await;
    assert_eq!((status, error.as_str()), (400, "entry for role nope not found"));
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "//");
    let header = |n: &str| {
        seen[0]
            .headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(header("host").as_deref(), Some("sts.us-east-1.amazonaws.com"));
    assert_eq!(header("content-length").as_deref(), Some("43"));
    assert_eq!(header("x-vault-aws-iam-server-id").as_deref(), Some("vault.test"));
    assert_eq!(seen[0].body, "Action=GetCallerIdentity&Version=2011-06-15");
    // Role names are matched case-insensitively; the message names the caller's ARN as given.
    let (status, error) = post(&front, &login("WEB", signed_headers())).await;
    assert_eq!(status, 400);
    assert_eq!(
        error,
        "IAM Principal \"arn:aws:sts::123456789012:assumed-role/other/s\" does not belong to the role \"WEB\""
    );
    // Without a role, the caller's friendly name is the role's name.
    let mut no_role = login("", signed_headers());
    no_role.as_object_mut().unwrap().remove("role");
    let (_, error) = post(&front, &no_role).await;
    assert_eq!(error, "entry for role other not found");
}

#[tokio::test]
async fn sts_answers_are_checked_for_content_type_then_status_and_retried_on_5xx() {
    let (sts, _) = recording_sts(200, "application/xml", identity("arn:aws:iam::1:user/u")).await;
    let (_, error) = post(&front(&sts, None, 0).await, &login("web", signed_headers())).await;
    assert_eq!(
        error,
        "error making upstream request: body of GetCallerIdentity is invalid"
    );

    let (sts, _) = recording_sts(403, "text/xml", "<ErrorResponse/>".into()).await;
    let (status, error) = post(&front(&sts, None, 0).await, &login("web", signed_headers())).await;
    assert_eq!(status, 400);
    assert_eq!(
        error,
        "error making upstream request: received error code 403 from STS: <ErrorResponse/>"
    );

    let (sts, seen) = recording_sts(500, "text/xml", "<ErrorResponse/>".into()).await;
    let (_, error) = post(&front(&sts, None, 1).await, &login("web", signed_headers())).await;
    assert_eq!(
        error,
        format!(
            "error making upstream request: error making request: POST {sts}// giving up after 2 attempt(s)"
        )
    );
    assert_eq!(seen.lock().unwrap().len(), 2);

    let (sts, _) = recording_sts(200, "text/xml", "{}".into()).await;
    let (_, error) = post(&front(&sts, None, 0).await, &login("web", signed_headers())).await;
    assert_eq!(error, "error making upstream request: error parsing STS response");

    let (sts, _) = recording_sts(200, "text/xml", identity("arn:aws:iam::1:group/g")).await;
    let (_, error) = post(&front(&sts, None, 0).await, &login("web", signed_headers())).await;
    assert_eq!(
        error,
        "error parsing arn \"arn:aws:iam::1:group/g\": unrecognized principal type: \"group\""
    );
}

#[tokio::test]
async fn the_request_fields_are_checked_in_the_plugins_order() {
    let (sts, seen) = recording_sts(200, "text/xml", identity("arn:aws:iam::1:user/u")).await;
    let front = front(&sts, Some("vault.test"), 0).await;
    let base = login("web", signed_headers());
    let with = |field: &str, value: Value| {
        let mut b = base.clone();
        b[field] = value;
        b
    };
    let cases = [
        (
            with("iam_request_headers", json!("{not json")),
            "Field validation failed: error converting input {not json for field \"iam_request_headers\": ",
        ),
        (
            json!({"role": "web"}),
            "didn't supply required authentication values",
        ),
        (
            json!({"iam_http_request_method": "POST"}),
            "supplied some of the auth values for the iam auth type but not all",
        ),
        (
            with("pkcs7", json!("x")),
            "supplied auth values for both ec2 and iam auth types",
        ),
        (
            with("iam_http_request_method", json!("")),
            "missing iam_http_request_method",
        ),
        (
            with("iam_http_request_method", json!("GET")),
            "invalid iam_http_request_method; currently only 'POST' is supported",
        ),
        (with("iam_request_url", json!("")), "missing iam_request_url"),
        (
            with("iam_request_url", json!("%%%")),
            "failed to base64 decode iam_request_url",
        ),
        (
            with(
                "iam_request_url",
                json!(BASE64.encode("https://sts.amazonaws.com/?Action=GetCallerIdentity")),
            ),
            "invalid request",
        ),
        (
            with("iam_request_body", json!(BASE64.encode("Action=AssumeRole"))),
            "iam request body is invalid",
        ),
        (
            with("iam_request_headers", json!({})),
            "missing iam_request_headers",
        ),
        (
            with(
                "iam_request_headers",
                json!({"Authorization": "SignedHeaders=host, Signature=0"}),
            ),
            "error validating X-Vault-AWS-IAM-Server-ID header: missing header \"X-Vault-AWS-IAM-Server-ID\"",
        ),
        (
            with(
                "iam_request_headers",
                json!({"X-Vault-AWS-IAM-Server-ID": "vault.test", "Authorization": "SignedHeaders=X-Vault-AWS-IAM-Server-ID, Signature=0"}),
            ),
            "error validating X-Vault-AWS-IAM-Server-ID header: vault header wasn't signed",
        ),
        (
            with(
                "iam_request_headers",
                json!({"X-Vault-AWS-IAM-Server-ID": "vault.test", "X-Amz-Foo": "1",
                       "Authorization": "SignedHeaders=x-vault-aws-iam-server-id, Signature=0"}),
            ),
            "invalid request header: X-Amz-Foo",
        ),
    ];
    for (body, expected) in cases {
        let (status, error) = post(&front, &body).await;
        assert_eq!(status, 400, "{body}");
        assert!(error.starts_with(expected), "{body}: {error:?} vs {expected:?}");
    }
    assert!(seen.lock().unwrap().is_empty(), "no case reaches STS");
    // The headers as a JSON object (not base64) are taken too, and the path is not checked.
    let mut body = with("iam_request_headers", signed_headers());
    body["iam_request_url"] = json!(BASE64.encode("https://sts.us-east-1.amazonaws.com/x"));
    let (_, error) = post(&front, &body).await;
    assert!(error.starts_with("IAM Principal"), "{error}");
    assert_eq!(seen.lock().unwrap()[0].path, "//x");
}

#[tokio::test]
async fn wildcard_binds_are_refused_at_start() {
    let err = AwsAuthFront::start(
        "http://127.0.0.1:9",
        "root",
        AwsAuthConfig {
            roles: vec![AwsAuthRole {
                name: "w".into(),
                bound_iam_principal_arn: "arn:aws:iam::1:role/*".into(),
                policy: "p".into(),
            }],
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("wildcard"), "{err}");
}
