//! The generated CRDs against a genuine kube-apiserver (v1.20.2, certkeeper-testkit): accepted
//! as structural, Established, and then cert-manager manifests for the Vault issuer apply
//! unchanged and read back unchanged (nothing pruned), the status subresource takes cert-manager's
//! status plus `status.certkeeper`, printer columns show, and invalid objects are refused (422).
//! Skipped (with a printed reason) only when the binaries from
//! scripts/kube/install-kube-apiserver.sh are not installed.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns unwrap too

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use certkeeper_core::FailureClass;
use certkeeper_core::spec::{
    Base64Bytes, CertificateRequest, CertificateStatus, CertkeeperStatus, Condition, ConditionStatus,
    Resource, parse_resource,
};
use certkeeper_testkit::{KubeApiServer, KubeClient, csr_p256, kube_bin_dir};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

const BOUND: Duration = Duration::from_secs(60);
const NS: &str = "certs";
const CM: &str = "/apis/cert-manager.io/v1";

fn installed() -> bool {
    match kube_bin_dir() {
        Ok(_) => true,
        Err(e) => {
            eprintln!("SKIPPED: {e:#}");
            false
        }
    }
}

/// An admin client of the apiserver that can send any content type (merge patches, tables).
struct Api {
    client: KubeClient,
}

impl Api {
    fn new(kube: &KubeApiServer) -> Result<Self> {
        Ok(Self {
            client: kube.client()?,
        })
    }

    async fn get(&self, path: &str) -> Result<(u16, Value)> {
        self.client.call(Method::GET, path, "", None).await
    }

    /// POST; a 404 right after a CRD became Established (the resource not yet served) is retried.
    async fn post(&self, path: &str, body: &Value) -> Result<(u16, Value)> {
        let deadline = Instant::now() + BOUND;
        loop {
            let (status, answer) = self
                .client
                .call(Method::POST, path, "application/json", Some(body))
                .await?;
            if status != 404 || Instant::now() > deadline {
                return Ok((status, answer));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn create(&self, path: &str, body: &Value) -> Result<Value> {
        match self.post(path, body).await? {
            (201, created) => Ok(created),
            (status, answer) => bail!("POST {path} -> {status}: {answer}"),
        }
    }

    async fn merge_patch(&self, path: &str, body: &Value) -> Result<(u16, Value)> {
        self.client
            .call(Method::PATCH, path, "application/merge-patch+json", Some(body))
            .await
    }
}

fn yaml(text: &str) -> Value {
    serde_yaml_ng::from_str(text).unwrap()
}

/// The apiserver's copy of an object decodes into certkeeper's types without errors.
fn decodes(object: &Value) -> Resource {
    let value = serde_yaml_ng::to_value(object).unwrap();
    parse_resource(&value).unwrap_or_else(|e| panic!("{e:?} in {object}"))
}

async fn apply_crds(kube: &KubeApiServer) -> Result<()> {
    let stream = certkeeper_crds::all_yaml();
    let crds = serde_yaml_ng::Deserializer::from_str(&stream)
        .map(Value::deserialize)
        .collect::<Result<Vec<_>, _>>()?;
    let names = kube.apply_crds(&crds, BOUND).await?;
    assert_eq!(names.len(), 6);
    Ok(())
}

const APPROLE_ISSUER: &str = r#"
apiVersion: cert-manager.io/v1
kind: Issuer
metadata:
  name: vault-approle
  namespace: certs
spec:
  vault:
    path: pki_int/sign/example-dot-com
    server: https://vault.local:8200
    namespace: admin/team-a
    auth:
      appRole:
        path: approle
        roleId: "291b9d21-8ff5-f8b5-1f0b-f96e7ab2d8f9"
        secretRef:
          name: cert-manager-vault-approle
          key: secretId
"#;

const KUBERNETES_CLUSTER_ISSUER: &str = r#"
apiVersion: cert-manager.io/v1
kind: ClusterIssuer
metadata:
  name: vault-kubernetes
spec:
  vault:
    path: pki_int/sign/example-dot-com
    server: https://vault.local:8200
    serverName: vault.internal
    caBundleSecretRef:
      name: vault-ca
      key: ca.crt
    auth:
      kubernetes:
        role: cert-manager
        mountPath: /v1/auth/kubernetes
        serviceAccountRef:
          name: vault-issuer
          audiences:
          - vault://vault-kubernetes
"#;

fn token_issuer(ca_bundle: &str) -> Value {
    yaml(&format!(
        r#"
apiVersion: cert-manager.io/v1
kind: Issuer
metadata:
  name: vault-token
  namespace: certs
spec:
  vault:
    path: pki/sign/internal
    server: http://127.0.0.1:8200
    caBundle: {ca_bundle}
    auth:
      tokenSecretRef:
        name: cert-manager-vault-token
        key: token
"#
    ))
}

const CERTIFICATE: &str = r#"
apiVersion: cert-manager.io/v1
kind: Certificate
metadata:
  name: web
  namespace: certs
  labels:
    app: web
spec:
  secretName: web-tls
  commonName: web.example.com
  dnsNames:
  - web.example.com
  - www.example.com
  ipAddresses:
  - 10.0.0.10
  - "2001:db8::10"
  uris:
  - spiffe://cluster.local/ns/certs/sa/web
  emailAddresses:
  - ops@example.com
  subject:
    organizations: [Example Inc]
    countries: [DE]
    organizationalUnits: [Platform]
    localities: [Berlin]
    provinces: [Berlin]
    streetAddresses: [Main Street 1]
    postalCodes: ["10115"]
    serialNumber: "42"
  duration: 2160h0m0s
  renewBefore: 360h0m0s
  isCA: false
  privateKey:
    algorithm: ECDSA
    size: 384
    encoding: PKCS8
    rotationPolicy: Always
  signatureAlgorithm: ECDSAWithSHA384
  usages:
  - server auth
  - client auth
  - digital signature
  - key encipherment
  encodeUsagesInRequest: true
  revisionHistoryLimit: 3
  secretTemplate:
    annotations:
      reflector.v1.k8s.emberstack.com/reflection-allowed: "true"
    labels:
      team: platform
  additionalOutputFormats:
  - type: CombinedPEM
  - type: DER
  keystores:
    pkcs12:
      create: true
      profile: Modern2023
      passwordSecretRef:
        name: web-p12-password
        key: password
  issuerRef:
    name: vault-approle
    kind: Issuer
    group: cert-manager.io
"#;

fn certificate_request(csr_pem: &str) -> Value {
    let request = serde_json::to_value(Base64Bytes(csr_pem.as_bytes().to_vec())).unwrap();
    json!({
        "apiVersion": "cert-manager.io/v1",
        "kind": "CertificateRequest",
        "metadata": {"name": "web-1", "namespace": NS},
        "spec": {
            "request": request,
            "issuerRef": {"name": "vault-kubernetes", "kind": "ClusterIssuer", "group": "cert-manager.io"},
            "duration": "2160h0m0s",
            "isCA": false,
            "usages": ["digital signature", "key encipherment", "server auth"],
            "username": "system:serviceaccount:cert-manager:cert-manager",
            "uid": "0f4f0ea5-6c64-4d4c-8c1a-3b5f1d0f2a11",
            "groups": ["system:serviceaccounts", "system:authenticated"],
            "extra": {"authentication.kubernetes.io/pod-name": ["cert-manager-7d9f"]},
        },
    })
}

/// Creates `manifest` at `collection` and reads it back: the spec is unchanged.
async fn round_trip(api: &Api, collection: &str, manifest: &Value) -> Result<Value> {
    api.create(collection, manifest).await?;
    let name = manifest["metadata"]["name"].as_str().unwrap();
    let (status, stored) = api.get(&format!("{collection}/{name}")).await?;
    assert_eq!(status, 200, "{stored}");
    assert_eq!(
        stored["spec"], manifest["spec"],
        "{collection}/{name}: spec changed on the way"
    );
    Ok(stored)
}

fn assert_refused(answer: &(u16, Value), field: &str) {
    assert_eq!(answer.0, 422, "expected 422 mentioning {field}: {}", answer.1);
    assert!(
        answer.1.to_string().contains(field),
        "{field} not in {}",
        answer.1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crds_serve_cert_manager_manifests() {
    if !installed() {
        return;
    }
    let kube = KubeApiServer::start().await.unwrap();
    let api = Api::new(&kube).unwrap();
    apply_crds(&kube).await.unwrap();
    kube.create_namespace(NS).await.unwrap();

    // discovery: names, short names, category
    let (status, discovery) = api.get(CM).await.unwrap();
    assert_eq!(status, 200, "{discovery}");
    let resource = |name: &str| {
        discovery["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} not in {discovery}"))
    };
    assert_eq!(resource("certificates")["shortNames"], json!(["cert", "certs"]));
    assert_eq!(
        resource("certificaterequests")["shortNames"],
        json!(["cr", "crs"])
    );
    assert_eq!(resource("clusterissuers")["namespaced"], json!(false));
    assert_eq!(resource("issuers")["categories"], json!(["cert-manager"]));
    assert!(discovery.to_string().contains("certificates/status"));

    // unchanged cert-manager manifests: created, read back unchanged, decoded by certkeeper
    let issuers = format!("{CM}/namespaces/{NS}/issuers");
    let stored = round_trip(&api, &issuers, &yaml(APPROLE_ISSUER)).await.unwrap();
    assert!(matches!(decodes(&stored), Resource::Issuer(_)));
    let ca_bundle = serde_json::to_value(Base64Bytes(kube.ca_pem().as_bytes().to_vec())).unwrap();
    let stored = round_trip(&api, &issuers, &token_issuer(ca_bundle.as_str().unwrap()))
        .await
        .unwrap();
    let Resource::Issuer(issuer) = decodes(&stored) else {
        panic!()
    };
    assert_eq!(
        issuer.spec.vault.unwrap().ca_bundle.unwrap().0,
        kube.ca_pem().as_bytes()
    );
    let stored = round_trip(
        &api,
        &format!("{CM}/clusterissuers"),
        &yaml(KUBERNETES_CLUSTER_ISSUER),
    )
    .await
    .unwrap();
    assert!(matches!(decodes(&stored), Resource::ClusterIssuer(_)));
    // certkeeper's own kinds: an Issuer's spec.vault as the whole spec, stored and read back
    // unchanged, decoded as the same Vault issuer.
    let mut vault_issuer = yaml(KUBERNETES_CLUSTER_ISSUER);
    vault_issuer["apiVersion"] = json!("certkeeper.io/v1");
    vault_issuer["kind"] = json!("VaultClusterIssuer");
    vault_issuer["spec"] = vault_issuer["spec"]["vault"].clone();
    let stored = round_trip(&api, "/apis/certkeeper.io/v1/vaultclusterissuers", &vault_issuer)
        .await
        .unwrap();
    assert!(matches!(decodes(&stored), Resource::VaultClusterIssuer(_)));
    let mut vault_issuer = yaml(APPROLE_ISSUER);
    vault_issuer["apiVersion"] = json!("certkeeper.io/v1");
    vault_issuer["kind"] = json!("VaultIssuer");
    vault_issuer["spec"] = vault_issuer["spec"]["vault"].clone();
    let stored = round_trip(
        &api,
        &format!("/apis/certkeeper.io/v1/namespaces/{NS}/vaultissuers"),
        &vault_issuer,
    )
    .await
    .unwrap();
    assert!(matches!(decodes(&stored), Resource::VaultIssuer(_)));
    let certificates = format!("{CM}/namespaces/{NS}/certificates");
    let stored = round_trip(&api, &certificates, &yaml(CERTIFICATE)).await.unwrap();
    let Resource::Certificate(certificate) = decodes(&stored) else {
        panic!()
    };
    assert_eq!(certificate.spec.dns_names.len(), 2);
    assert_eq!(stored["metadata"]["generation"], 1);
    let (csr, _key) = csr_p256("web.example.com", &["web.example.com"]).unwrap();
    let requests = format!("{CM}/namespaces/{NS}/certificaterequests");
    let stored = round_trip(&api, &requests, &certificate_request(&csr))
        .await
        .unwrap();
    let request: CertificateRequest = serde_json::from_value(stored).unwrap();
    assert_eq!(request.spec.request.0, csr.as_bytes());
    assert!(request.validate().is_empty(), "{:?}", request.validate());

    // status subresource: cert-manager's status and certkeeper's retry state, from the Rust types
    let status = CertificateStatus {
        conditions: vec![Condition {
            condition_type: "Ready".into(),
            status: ConditionStatus::False,
            last_transition_time: Some("2026-01-02T03:04:05Z".into()),
            reason: "Failed".into(),
            message: "Vault is sealed; retrying at 2026-01-02T03:04:35Z".into(),
            observed_generation: 1,
        }],
        last_failure_time: Some("2026-01-02T03:04:05Z".into()),
        failed_issuance_attempts: Some(2),
        certkeeper: Some(CertkeeperStatus {
            failure_class: Some(FailureClass::Transient),
            failure_message: "Vault is sealed".into(),
            next_attempt_time: Some("2026-01-02T03:04:35Z".into()),
        }),
        ..CertificateStatus::default()
    };
    let web = format!("{certificates}/web");
    let patch = json!({"status": serde_json::to_value(&status).unwrap()});
    let (code, patched) = api.merge_patch(&format!("{web}/status"), &patch).await.unwrap();
    assert_eq!(code, 200, "{patched}");
    let (code, stored) = api.get(&format!("{web}/status")).await.unwrap();
    assert_eq!(code, 200, "{stored}");
    let read_back: CertificateStatus = serde_json::from_value(stored["status"].clone()).unwrap();
    assert_eq!(
        read_back, status,
        "status pruned or changed: {}",
        stored["status"]
    );
    assert_eq!(
        stored["metadata"]["generation"], 1,
        "a status write bumped the generation"
    );
    assert_eq!(stored["spec"], yaml(CERTIFICATE)["spec"]);
    // a status sent to the main resource is ignored (the subresource is enabled)
    let (code, _) = api
        .merge_patch(&web, &json!({"status": {"failedIssuanceAttempts": 9}}))
        .await
        .unwrap();
    assert_eq!(code, 200);
    let (_, stored) = api.get(&web).await.unwrap();
    assert_eq!(stored["status"]["failedIssuanceAttempts"], 2);

    // printer columns, as kubectl get asks for them
    let url = format!("{}{web}", kube.url());
    let table: Value = api
        .client
        .http()
        .get(&url)
        .bearer_auth(kube.admin_token())
        .header("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let columns: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap_or_else(|| panic!("no table: {table}"))
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        columns,
        [
            "Name",
            "Ready",
            "Secret",
            "Issuer",
            "Status",
            "Expiration",
            "NextAttempt",
            "Age"
        ]
    );
    let cells = &table["rows"][0]["cells"];
    assert_eq!(cells[1], "False");
    assert_eq!(cells[2], "web-tls");
    assert_eq!(cells[6], "2026-01-02T03:04:35Z");

    // refused by the schema: 422 naming the field
    let mut wrong = yaml(CERTIFICATE);
    wrong["metadata"]["name"] = json!("wrong-duration");
    wrong["spec"]["duration"] = json!(90);
    assert_refused(&api.post(&certificates, &wrong).await.unwrap(), "spec.duration");
    let mut wrong = yaml(CERTIFICATE);
    wrong["metadata"]["name"] = json!("wrong-algorithm");
    wrong["spec"]["privateKey"]["algorithm"] = json!("DSA");
    assert_refused(
        &api.post(&certificates, &wrong).await.unwrap(),
        "spec.privateKey.algorithm",
    );
    let mut wrong = yaml(CERTIFICATE);
    wrong["metadata"]["name"] = json!("wrong-usage");
    wrong["spec"]["usages"] = json!(["server auth", "world domination"]);
    assert_refused(&api.post(&certificates, &wrong).await.unwrap(), "spec.usages");
    let mut wrong = token_issuer("bm90IGEgUEVN");
    wrong["metadata"]["name"] = json!("wrong-ca-bundle");
    wrong["spec"]["vault"]["caBundle"] = json!("not base64!");
    assert_refused(&api.post(&issuers, &wrong).await.unwrap(), "spec.vault.caBundle");
    let mut wrong = yaml(APPROLE_ISSUER);
    wrong["metadata"]["name"] = json!("wrong-approle");
    wrong["spec"]["vault"]["auth"]["appRole"]
        .as_object_mut()
        .unwrap()
        .remove("roleId");
    assert_refused(
        &api.post(&issuers, &wrong).await.unwrap(),
        "spec.vault.auth.appRole.roleId",
    );
    let mut wrong = yaml(CERTIFICATE);
    wrong["metadata"]["name"] = json!("wrong-secret-name");
    wrong["spec"].as_object_mut().unwrap().remove("secretName");
    assert_refused(&api.post(&certificates, &wrong).await.unwrap(), "spec.secretName");
    let mut wrong = certificate_request(&csr);
    wrong["metadata"]["name"] = json!("web-2");
    wrong["spec"].as_object_mut().unwrap().remove("request");
    assert_refused(&api.post(&requests, &wrong).await.unwrap(), "spec.request");
    // and a status certkeeper would never write
    let bad_class = json!({"status": {"certkeeper": {"failureClass": "fatal"}}});
    assert_refused(
        &api.merge_patch(&format!("{web}/status"), &bad_class)
            .await
            .unwrap(),
        "status.certkeeper.failureClass",
    );
    let bad_time = json!({"status": {"certkeeper": {"nextAttemptTime": "in five minutes"}}});
    assert_refused(
        &api.merge_patch(&format!("{web}/status"), &bad_time)
            .await
            .unwrap(),
        "status.certkeeper.nextAttemptTime",
    );
}

/// An ACME Issuer as cert-manager's documentation and e2e tests write them: HTTP-01 through an
/// Ingress with a pod template, DNS-01 through Route 53 and a webhook, an external account
/// binding.
const ACME_ISSUER: &str = r#"
apiVersion: cert-manager.io/v1
kind: Issuer
metadata:
  name: letsencrypt
  namespace: certs
spec:
  acme:
    server: https://acme-v02.api.letsencrypt.org/directory
    email: ops@example.com
    profile: tlsserver
    privateKeySecretRef:
      name: letsencrypt-account
    externalAccountBinding:
      keyID: kid-1
      keyAlgorithm: HS256
      keySecretRef:
        name: eab
        key: secret
    solvers:
    - selector:
        dnsZones: [example.com]
      dns01:
        cnameStrategy: Follow
        route53:
          region: eu-central-1
          hostedZoneID: Z123
          auth:
            kubernetes:
              serviceAccountRef:
                name: route53
                audiences: [sts.amazonaws.com]
    - dns01:
        webhook:
          groupName: acme.example.com
          solverName: example
          config:
            apiKeySecretRef: {name: example, key: key}
            ttl: 60
    - http01:
        ingress:
          ingressClassName: nginx
          podTemplate:
            metadata:
              labels: {team: platform}
            spec:
              nodeSelector: {kubernetes.io/os: linux}
              tolerations:
              - {key: dedicated, operator: Equal, value: acme, effect: NoSchedule}
              resources:
                limits: {cpu: 100m, memory: 64Mi}
                requests: {cpu: 10m, memory: 1}
              imagePullSecrets:
              - name: registry
              affinity:
                nodeAffinity:
                  requiredDuringSchedulingIgnoredDuringExecution:
                    nodeSelectorTerms:
                    - matchExpressions:
                      - {key: kubernetes.io/arch, operator: In, values: [amd64]}
    - http01:
        gatewayHTTPRoute:
          parentRefs:
          - name: gateway
            namespace: gateways
            sectionName: http
"#;

/// [`ACME_ISSUER`] as the API server stores it: the Gateway parentRef's `group` and `kind`
/// defaulted (by cert-manager's CRD and by certkeeper's alike).
fn acme_issuer_defaulted(issuer: &Value) -> Value {
    let mut stored = issuer.clone();
    let parent = &mut stored["spec"]["acme"]["solvers"][3]["http01"]["gatewayHTTPRoute"]["parentRefs"][0];
    parent["group"] = json!("gateway.networking.k8s.io");
    parent["kind"] = json!("Gateway");
    stored
}

/// Creates the ACME Issuer `issuer` and checks what is stored: its spec, defaulted.
async fn create_acme_issuer(api: &Api, collection: &str, issuer: &Value) -> Result<()> {
    api.create(collection, issuer).await?;
    let name = issuer["metadata"]["name"].as_str().unwrap();
    let (_, stored) = api.get(&format!("{collection}/{name}")).await?;
    assert_eq!(
        stored["spec"],
        acme_issuer_defaulted(issuer)["spec"],
        "{name}: spec changed"
    );
    Ok(())
}

/// What cert-manager's ACME issuer controller writes into an Issuer's status.
fn acme_issuer_status(email: &str) -> Value {
    json!({"status": {
        "acme": {
            "uri": "https://acme-v02.api.letsencrypt.org/acme/acct/123456",
            "lastRegisteredEmail": email,
            "lastPrivateKeyHash": "Lm6OaA0t3lXtT6c7Cbk5dD2B9K2iEj3t6yZJt0d6p3Q=",
        },
        "conditions": [{
            "type": "Ready", "status": "True", "reason": "ACMEAccountRegistered",
            "message": "The ACME account was registered with the ACME server",
            "lastTransitionTime": "2026-01-02T03:04:05Z", "observedGeneration": 1,
        }],
    }})
}

/// What cert-manager writes into a Certificate's status with ACME Renewal Information on.
fn acme_certificate_status() -> Value {
    json!({"status": {
        "acme": {"ari": {
            "explanationURL": "https://letsencrypt.org/ari",
            "lastChecked": "2026-01-02T03:04:05Z",
            "nextCheck": "2026-01-02T09:04:05Z",
            "suggestedWindow": {"start": "2026-02-01T00:00:00Z", "end": "2026-02-03T00:00:00Z"},
        }},
        "revision": 1,
        "notAfter": "2026-03-02T03:04:05Z",
    }})
}

/// Replaces the installed CRDs by `crds` (PUT with the stored resourceVersion) and waits until
/// the API server serves them.
async fn replace_crds(api: &Api, crds: &[Value]) -> Result<()> {
    const PATH: &str = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
    for crd in crds {
        let name = crd["metadata"]["name"].as_str().unwrap();
        let path = format!("{PATH}/{name}");
        let (code, stored) = api.get(&path).await?;
        if code != 200 {
            bail!("GET {path} -> {code}: {stored}");
        }
        let mut crd = crd.clone();
        crd["metadata"]["resourceVersion"] = stored["metadata"]["resourceVersion"].clone();
        let (code, answer) = api
            .client
            .call(Method::PUT, &path, "application/json", Some(&crd))
            .await?;
        if code != 200 {
            bail!("PUT {path} -> {code}: {answer}");
        }
        let deadline = Instant::now() + BOUND;
        loop {
            let (_, now) = api.get(&path).await?;
            let conditions = now["status"]["conditions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if let Some(c) = conditions.iter().find(|c| c["type"] == "NonStructuralSchema") {
                bail!("{name} is not structural: {c}");
            }
            let established = conditions
                .iter()
                .any(|c| c["type"] == "Established" && c["status"] == "True");
            if established && now["metadata"]["labels"] == crd["metadata"]["labels"] {
                break;
            }
            if Instant::now() > deadline {
                bail!("{name} not served after {BOUND:?}: {conditions:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // the apiserver swaps a CRD's schema asynchronously after it is stored
    tokio::time::sleep(Duration::from_secs(2)).await;
    Ok(())
}

/// cert-manager's CRD made installable on v1.20 as certkeeper's are (see
/// tests/testdata/cert-manager/README.md): no `default: ""` (v1.20 reads it as `null`), so the
/// `imagePullSecrets` map lists keyed by `name` become atomic lists.
fn for_v1_20(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map.get("default") == Some(&json!("")) {
                map.remove("default");
            }
            if map.get("x-kubernetes-list-map-keys") == Some(&json!(["name"])) {
                map.remove("x-kubernetes-list-map-keys");
                map.insert("x-kubernetes-list-type".into(), json!("atomic"));
            }
            map.values_mut().for_each(for_v1_20);
        }
        Value::Array(items) => items.iter_mut().for_each(for_v1_20),
        _ => {}
    }
}

fn documents(text: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(Value::deserialize)
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

/// cert-manager's own CRDs (the v1.21.1 copy in the test data) are installed and cert-manager's
/// ACME objects written; then certkeeper's CRDs replace them: nothing cert-manager wrote is
/// pruned (spec, `status.acme` of the Issuer, `status.acme.ari` of the Certificate), and
/// cert-manager's next writes are kept too. certkeeper's verdict on the ACME Issuer is what it
/// always was: not a Vault issuer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certkeeper_crds_over_cert_managers_keep_acme_objects() {
    if !installed() {
        return;
    }
    let kube = KubeApiServer::start().await.unwrap();
    let api = Api::new(&kube).unwrap();
    let testdata = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata/cert-manager");
    let theirs: Vec<Value> = ["issuers", "clusterissuers", "certificates", "certificaterequests"]
        .iter()
        .flat_map(|plural| {
            let path = testdata.join(format!("cert-manager.io_{plural}.yaml"));
            documents(&std::fs::read_to_string(path).unwrap())
        })
        .map(|mut crd| {
            for_v1_20(&mut crd);
            crd
        })
        .collect();
    kube.apply_crds(&theirs, BOUND).await.unwrap();
    kube.create_namespace(NS).await.unwrap();

    // cert-manager's objects under cert-manager's CRDs
    let issuers = format!("{CM}/namespaces/{NS}/issuers");
    let issuer = yaml(ACME_ISSUER);
    create_acme_issuer(&api, &issuers, &issuer).await.unwrap();
    let letsencrypt = format!("{issuers}/letsencrypt");
    let (code, answer) = api
        .merge_patch(
            &format!("{letsencrypt}/status"),
            &acme_issuer_status("ops@example.com"),
        )
        .await
        .unwrap();
    assert_eq!(code, 200, "{answer}");
    let certificates = format!("{CM}/namespaces/{NS}/certificates");
    let mut certificate = yaml(CERTIFICATE);
    certificate["spec"]["issuerRef"]["name"] = json!("letsencrypt");
    round_trip(&api, &certificates, &certificate).await.unwrap();
    let web = format!("{certificates}/web");
    let (code, answer) = api
        .merge_patch(&format!("{web}/status"), &acme_certificate_status())
        .await
        .unwrap();
    assert_eq!(code, 200, "{answer}");

    // certkeeper's CRDs replace cert-manager's: what is stored reads back whole
    replace_crds(
        &api,
        &documents(&certkeeper_crds::group_yaml(certkeeper_crds::GROUP)),
    )
    .await
    .unwrap();
    let (_, stored) = api.get(&letsencrypt).await.unwrap();
    assert_eq!(
        stored["spec"],
        acme_issuer_defaulted(&issuer)["spec"],
        "ACME Issuer spec pruned"
    );
    assert_eq!(
        stored["status"],
        acme_issuer_status("ops@example.com")["status"],
        "status.acme pruned"
    );
    let (_, stored) = api.get(&web).await.unwrap();
    assert_eq!(
        stored["status"],
        acme_certificate_status()["status"],
        "status.acme.ari pruned"
    );

    // cert-manager's next writes: a re-registered account, a new ACME Issuer with its status
    let (code, answer) = api
        .merge_patch(
            &format!("{letsencrypt}/status"),
            &acme_issuer_status("new@example.com"),
        )
        .await
        .unwrap();
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["status"], acme_issuer_status("new@example.com")["status"]);
    let mut second = issuer.clone();
    second["metadata"]["name"] = json!("letsencrypt-2");
    create_acme_issuer(&api, &issuers, &second).await.unwrap();
    let (code, answer) = api
        .merge_patch(
            &format!("{issuers}/letsencrypt-2/status"),
            &acme_issuer_status("ops@example.com"),
        )
        .await
        .unwrap();
    assert_eq!(code, 200, "{answer}");
    let (_, stored) = api.get(&format!("{issuers}/letsencrypt-2")).await.unwrap();
    assert_eq!(stored["spec"], acme_issuer_defaulted(&issuer)["spec"]);
    assert_eq!(stored["status"], acme_issuer_status("ops@example.com")["status"]);
    // the typed schema checks what cert-manager's does: an ACME issuer without a server is refused
    let mut wrong = issuer.clone();
    wrong["metadata"]["name"] = json!("no-server");
    wrong["spec"]["acme"].as_object_mut().unwrap().remove("server");
    assert_refused(&api.post(&issuers, &wrong).await.unwrap(), "spec.acme.server");

    // certkeeper's verdict: not served (not a Vault issuer), as before the types were added
    let value = serde_yaml_ng::to_value(&stored).unwrap();
    let problems: Vec<String> = parse_resource(&value)
        .err()
        .unwrap_or_default()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        problems,
        ["spec.acme: unsupported issuer type acme: certkeeper serves Vault (and OpenBao) issuers only"]
    );
    // and the status certkeeper reads keeps what cert-manager wrote
    let status: certkeeper_core::spec::IssuerStatus =
        serde_json::from_value(stored["status"].clone()).unwrap();
    assert_eq!(
        status.acme.unwrap().last_registered_email.as_deref(),
        Some("ops@example.com")
    );
}
