//! The install manifests of `deploy/`, rendered with `kubectl kustomize` as a user renders them:
//! the release (`deploy/release`, checked in as `deploy/certkeeper.yaml`) and the example
//! overlays of `deploy/examples/` (the components `namespaced`, `external-issuer`,
//! `servicemonitor`, `prometheusrule`).
//!
//! - `deploy/certkeeper.yaml` is exactly `kubectl kustomize deploy/release`.
//! - Each rendering has the shape its component promises (no kube-apiserver needed): the
//!   namespaced Role has the ClusterRole's rules minus the cluster-scoped kinds, nothing
//!   cluster-scoped is left, the arguments and the downward-API variable are there; the
//!   external-issuer rendering has no cert-manager.io CRD and no Namespace, and its ClusterRole
//!   writes nothing of cert-manager.io but CertificateRequests' status, and no Secret.
//! - Every object of every rendering passes a server-side dry-run on the test kube-apiserver:
//!   server-side apply with `dryRun=All`, as `kubectl apply --server-side --dry-run=server` (and
//!   Flux) send it, which also refuses a field the kind's schema does not declare (a plain
//!   create on v1.20 drops it silently); and the answer still holds every field sent (nothing
//!   pruned or rewritten).
//! - The controller runs with exactly the ServiceAccount, RBAC and arguments a rendering
//!   creates (objects created from the rendering, a TokenRequest token of its ServiceAccount,
//!   the Deployment's arguments mapped to the configuration): the external-issuer rendering
//!   makes a VaultIssuer and a VaultClusterIssuer Ready and signs a CertificateRequest naming
//!   each once approved as cert-manager's approver approves, and cert-manager's ServiceAccount
//!   may `approve` those signers as cert-manager's webhook asks; the namespaced rendering
//!   issues a Certificate in `team-a` (Secret, status, Event, Lease there) with its Role only.
//!
//! The full mode with the release's RBAC is `tests/rbac.rs`. kubectl: see
//! `certkeeper_testkit::kustomize_kubectl` (`CERTKEEPER_KUBECTL` makes these tests required);
//! skipped, with the reason printed, without one or without the kube binaries.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use base64::Engine;
use certkeeper_controller::ControllerConfig;
use certkeeper_controller::leader::LeaseConfig;
use certkeeper_controller::run::Mode;
use certkeeper_testkit::{DevServer, KubeApiServer, PkiOptions, csr_p256};
use common::{Api, BOUND, apply_object, condition, config_for, installed, ready, spawn_controller, wait_for};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

/// The renderings checked: (name, directory under deploy/).
const RENDERINGS: [(&str, &str); 4] = [
    ("release", "release"),
    ("namespaced", "examples/namespaced"),
    ("external-issuer", "examples/external-issuer"),
    ("monitoring", "examples/monitoring"),
];

fn deploy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

/// The kubectl to render with; `None` (reason printed) when the test skips.
fn kubectl() -> Option<PathBuf> {
    match certkeeper_testkit::kustomize_kubectl().unwrap() {
        Ok(kubectl) => Some(kubectl),
        Err(why) => {
            eprintln!("SKIPPED: {why}");
            None
        }
    }
}

fn render_text(kubectl: &std::path::Path, dir: &str) -> Result<String> {
    certkeeper_testkit::kustomize(kubectl, &deploy_dir().join(dir))
}

fn render(kubectl: &std::path::Path, dir: &str) -> Result<Vec<Value>> {
    let text = render_text(kubectl, dir)?;
    let mut objects = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(&text) {
        let object = Value::deserialize(document)?;
        if object.is_object() {
            objects.push(object);
        }
    }
    Ok(objects)
}

fn find<'o>(objects: &'o [Value], kind: &str, name: &str) -> Option<&'o Value> {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
}

fn id(object: &Value) -> String {
    let ns = object["metadata"]["namespace"].as_str().unwrap_or("");
    format!(
        "{} {}{}{}",
        object["kind"].as_str().unwrap_or("?"),
        ns,
        if ns.is_empty() { "" } else { "/" },
        object["metadata"]["name"].as_str().unwrap_or("?")
    )
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The controller container of a rendering's Deployment.
fn container(objects: &[Value]) -> &Value {
    &find(objects, "Deployment", "certkeeper").expect("a Deployment certkeeper")["spec"]["template"]["spec"]["containers"]
        [0]
}

#[test]
fn release_manifest_is_the_rendering_of_deploy_release() {
    let Some(kubectl) = kubectl() else { return };
    let rendered = render_text(&kubectl, "release").unwrap();
    let checked_in = std::fs::read_to_string(deploy_dir().join("certkeeper.yaml")).unwrap_or_default();
    assert!(
        rendered == checked_in,
        "deploy/certkeeper.yaml is not `kubectl kustomize deploy/release`; regenerate it with\n    kubectl kustomize deploy/release > deploy/certkeeper.yaml"
    );
}

/// A Role's or ClusterRole's rules as (group, resource) -> sorted verbs, resourceNames apart.
fn grants(rules: &Value) -> BTreeMap<(String, String, Vec<String>), Vec<String>> {
    let mut out: BTreeMap<_, Vec<String>> = BTreeMap::new();
    for rule in rules.as_array().cloned().unwrap_or_default() {
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                let verbs = out
                    .entry((group.clone(), resource, strings(&rule["resourceNames"])))
                    .or_default();
                verbs.extend(strings(&rule["verbs"]));
                verbs.sort();
                verbs.dedup();
            }
        }
    }
    out
}

#[test]
fn renderings_have_the_promised_shape() {
    let Some(kubectl) = kubectl() else { return };
    let release = render(&kubectl, "release").unwrap();

    // namespaced: the ClusterRole's rules without the cluster-scoped kinds, as a Role in team-a.
    let namespaced = render(&kubectl, "examples/namespaced").unwrap();
    let cluster_scoped = ["clusterissuers", "vaultclusterissuers"];
    let mut expected = grants(&find(&release, "ClusterRole", "certkeeper-controller").unwrap()["rules"]);
    expected.retain(|(_, resource, _), _| !cluster_scoped.contains(&resource.split('/').next().unwrap()));
    let role = find(&namespaced, "Role", "certkeeper-controller").expect("Role certkeeper-controller");
    assert_eq!(grants(&role["rules"]), expected, "the namespaced Role's rules");
    for object in &namespaced {
        assert_eq!(
            object["metadata"]["namespace"],
            "team-a",
            "{} is in team-a",
            id(object)
        );
    }
    let c = container(&namespaced);
    assert!(
        strings(&c["args"]).contains(&"--namespace=$(POD_NAMESPACE)".to_owned()),
        "{c}"
    );
    assert_eq!(
        c["env"],
        json!([{"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}])
    );
    let binding = find(&namespaced, "RoleBinding", "certkeeper-controller").unwrap();
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": "certkeeper", "namespace": "team-a"}])
    );

    // external-issuer: no cert-manager.io CRD, no Namespace; writes nothing of cert-manager's but
    // CertificateRequests' status, and no Secret.
    let external = render(&kubectl, "examples/external-issuer").unwrap();
    let crds: Vec<String> = external
        .iter()
        .filter(|o| o["kind"] == "CustomResourceDefinition")
        .map(|o| o["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        crds,
        ["vaultclusterissuers.certkeeper.io", "vaultissuers.certkeeper.io"]
    );
    assert!(find(&external, "Namespace", "cert-manager").is_none());
    assert!(strings(&container(&external)["args"]).contains(&"--external-issuer".to_owned()));
    let rules = grants(&find(&external, "ClusterRole", "certkeeper-controller").unwrap()["rules"]);
    let read = ["get", "list", "watch"].map(str::to_owned).to_vec();
    for ((group, resource, names), verbs) in &rules {
        assert!(names.is_empty(), "{resource}: {names:?}");
        match (group.as_str(), resource.as_str()) {
            ("certkeeper.io", "vaultissuers" | "vaultclusterissuers")
            | ("cert-manager.io", "certificaterequests")
            | ("", "secrets") => assert_eq!(verbs, &read, "{group}/{resource}"),
            ("certkeeper.io", "vaultissuers/status" | "vaultclusterissuers/status")
            | ("cert-manager.io", "certificaterequests/status") => {
                assert_eq!(verbs, &["get", "patch", "update"], "{group}/{resource}");
            }
            ("", "events") => assert_eq!(verbs, &["create", "patch"]),
            other => panic!("the external-issuer ClusterRole grants {other:?}: {verbs:?}"),
        }
    }
    let approver = find(
        &external,
        "ClusterRole",
        "cert-manager-controller-approve:certkeeper-io",
    )
    .unwrap();
    assert_eq!(
        approver["rules"],
        json!([{"apiGroups": ["cert-manager.io"], "resources": ["signers"], "verbs": ["approve"],
                "resourceNames": ["vaultissuers.certkeeper.io/*", "vaultclusterissuers.certkeeper.io/*"]}])
    );

    // monitoring: the release plus the two monitoring.coreos.com objects, in its namespace.
    let monitoring = render(&kubectl, "examples/monitoring").unwrap();
    assert_eq!(monitoring.len(), release.len() + 2);
    for kind in ["ServiceMonitor", "PrometheusRule"] {
        let object = find(&monitoring, kind, "certkeeper").unwrap();
        assert_eq!(object["apiVersion"], "monitoring.coreos.com/v1");
        assert_eq!(object["metadata"]["namespace"], "cert-manager");
    }
    let monitor = find(&monitoring, "ServiceMonitor", "certkeeper").unwrap();
    let service = find(&monitoring, "Service", "certkeeper").unwrap();
    assert_eq!(
        monitor["spec"]["selector"]["matchLabels"],
        service["metadata"]["labels"]
    );
    assert_eq!(
        monitor["spec"]["endpoints"][0]["port"],
        service["spec"]["ports"][0]["name"]
    );
}

/// Stand-ins for the Prometheus Operator's CRDs (none is installable from the registries
/// here): the group, version, kind and scope only, any content (`x-kubernetes-preserve-unknown-
/// fields`). The dry-run then checks a ServiceMonitor's and a PrometheusRule's group, kind and
/// shape only; promtool checks the rules' content (crates/certkeeper/tests/monitoring.rs).
fn monitoring_stand_in_crds() -> Vec<Value> {
    [
        ("ServiceMonitor", "servicemonitors"),
        ("PrometheusRule", "prometheusrules"),
    ]
    .into_iter()
    .map(|(kind, plural)| {
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                   "metadata": {"name": format!("{plural}.monitoring.coreos.com")},
                   "spec": {"group": "monitoring.coreos.com", "scope": "Namespaced",
                            "names": {"kind": kind, "plural": plural,
                                      "singular": kind.to_lowercase(), "listKind": format!("{kind}List")},
                            "versions": [{"name": "v1", "served": true, "storage": true,
                                          "schema": {"openAPIV3Schema": {"type": "object",
                                                     "x-kubernetes-preserve-unknown-fields": true}}}]}})
    })
    .collect()
}

/// Discovery: (apiVersion, kind) -> (plural, namespaced).
struct Resources<'a> {
    api: &'a Api,
    known: BTreeMap<(String, String), (String, bool)>,
}

impl Resources<'_> {
    async fn path(&mut self, object: &Value) -> Result<String> {
        let api_version = object["apiVersion"].as_str().unwrap_or_default().to_owned();
        let kind = object["kind"].as_str().unwrap_or_default().to_owned();
        let prefix = if api_version.contains('/') {
            format!("/apis/{api_version}")
        } else {
            format!("/api/{api_version}")
        };
        if !self.known.keys().any(|(v, _)| *v == api_version) {
            let list = self
                .api
                .get(&prefix)
                .await?
                .with_context(|| format!("{api_version} is not served"))?;
            for r in list["resources"].as_array().cloned().unwrap_or_default() {
                let name = r["name"].as_str().unwrap_or_default();
                if !name.contains('/') {
                    self.known.insert(
                        (
                            api_version.clone(),
                            r["kind"].as_str().unwrap_or_default().to_owned(),
                        ),
                        (name.to_owned(), r["namespaced"] == true),
                    );
                }
            }
        }
        let Some((plural, namespaced)) = self.known.get(&(api_version.clone(), kind.clone())) else {
            bail!("{kind} of {api_version} is not served");
        };
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        Ok(match (namespaced, object["metadata"]["namespace"].as_str()) {
            (true, Some(ns)) => format!("{prefix}/namespaces/{ns}/{plural}/{name}"),
            (true, None) => bail!("{} has no namespace", id(object)),
            (false, _) => format!("{prefix}/{plural}/{name}"),
        })
    }
}

/// The fields of `sent` that `stored` lacks or holds with another value (paths).
fn dropped(path: &str, sent: &Value, stored: &Value, out: &mut Vec<String>) {
    match (sent, stored) {
        (Value::Object(sent), Value::Object(stored)) => {
            for (key, value) in sent {
                match stored.get(key) {
                    Some(kept) => dropped(&format!("{path}.{key}"), value, kept, out),
                    None => out.push(format!("{path}.{key}")),
                }
            }
        }
        (Value::Array(sent), Value::Array(stored)) if sent.len() == stored.len() => {
            for (i, (value, kept)) in sent.iter().zip(stored).enumerate() {
                dropped(&format!("{path}[{i}]"), value, kept, out);
            }
        }
        _ if sent == stored => {}
        _ => out.push(format!("{path}: sent {sent}, stored {stored}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rendering_passes_server_side_dry_run() -> Result<()> {
    let Some(kubectl) = kubectl() else { return Ok(()) };
    if !installed() {
        return Ok(());
    }
    let started = Instant::now();
    let mut renderings = Vec::new();
    for (name, dir) in RENDERINGS {
        renderings.push((name, render(&kubectl, dir)?));
    }
    let rendered_in = started.elapsed();

    let kube = KubeApiServer::start().await?;
    let started = Instant::now();
    // What a dry-run needs to exist for real: the namespaces objects go to, every CRD of a
    // rendering (their custom resources are validated against them) and the operator's.
    for ns in ["cert-manager", "team-a"] {
        kube.create_namespace(ns).await?;
    }
    let mut crds = monitoring_stand_in_crds();
    crds.extend(
        renderings[0]
            .1
            .iter()
            .filter(|o| o["kind"] == "CustomResourceDefinition")
            .cloned(),
    );
    kube.apply_crds(&crds, BOUND).await?;
    let api = Api::new(&kube)?;
    let mut resources = Resources {
        api: &api,
        known: BTreeMap::new(),
    };
    let mut count = 0;
    for (rendering, objects) in &renderings {
        for object in objects {
            let path = resources.path(object).await?;
            let query = "dryRun=All&fieldManager=certkeeper-release-test&force=true";
            let deadline = Instant::now() + BOUND;
            let stored = loop {
                let (status, answer) = api
                    .client
                    .call(
                        Method::PATCH,
                        &format!("{path}?{query}"),
                        "application/apply-patch+yaml",
                        Some(object),
                    )
                    .await?;
                match status {
                    200 | 201 => break answer,
                    // A custom resource is served a moment after its CRD is Established.
                    404 if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
                    _ => bail!(
                        "{rendering}: the server refuses {}: {status} {}",
                        id(object),
                        answer["message"]
                            .as_str()
                            .map_or(answer.to_string(), str::to_owned)
                    ),
                }
            };
            let mut lost = Vec::new();
            dropped("", object, &stored, &mut lost);
            ensure!(
                lost.is_empty(),
                "{rendering}: the server did not keep these fields of {}: {lost:?}",
                id(object)
            );
            count += 1;
        }
    }
    // Nothing was created by the dry-runs.
    ensure!(
        api.get("/apis/apps/v1/namespaces/cert-manager/deployments/certkeeper")
            .await?
            .is_none()
    );
    eprintln!(
        "{count} objects of {} renderings: rendered in {rendered_in:?}, dry-run (with the CRDs) in {:?}",
        renderings.len(),
        started.elapsed()
    );
    Ok(())
}

/// Creates the ServiceAccounts and RBAC objects of a rendering, as `kubectl apply` would.
async fn create_identity(api: &Api, objects: &[Value]) -> Result<()> {
    for object in objects {
        let kind = object["kind"].as_str().unwrap_or_default();
        if matches!(
            kind,
            "ServiceAccount" | "ClusterRole" | "ClusterRoleBinding" | "Role" | "RoleBinding"
        ) {
            apply_object(api, object).await?;
        }
    }
    Ok(())
}

/// The controller's configuration from the rendered Deployment, as `certkeeper controller`
/// reads its arguments (crates/certkeeper/src/controller.rs), with a TokenRequest token of its
/// ServiceAccount. Fails on an argument it does not know, so a component's new argument is
/// mapped here.
async fn configuration(kube: &KubeApiServer, objects: &[Value], identity: &str) -> Result<ControllerConfig> {
    let deployment = find(objects, "Deployment", "certkeeper").context("no Deployment certkeeper")?;
    let pod_namespace = deployment["metadata"]["namespace"].as_str().unwrap_or_default();
    let spec = &deployment["spec"]["template"]["spec"];
    let account = spec["serviceAccountName"].as_str().unwrap_or("default");
    let token = kube.token_request(pod_namespace, account, &[], 3600).await?;
    let mut config = config_for(kube, &token);
    let container = &spec["containers"][0];
    // The downward API's variables the arguments may name.
    let mut env = BTreeMap::new();
    for var in container["env"].as_array().cloned().unwrap_or_default() {
        if var["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace" {
            env.insert(
                format!("$({})", var["name"].as_str().unwrap_or_default()),
                pod_namespace,
            );
        }
    }
    let args = strings(&container["args"]);
    let mut leader_elect = false;
    let mut args = args.iter();
    ensure!(args.next().map(String::as_str) == Some("controller"));
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag, Some(value.to_owned())),
            None => (arg.as_str(), None),
        };
        match flag {
            "--leader-elect" => leader_elect = true,
            "--external-issuer" => config.mode = Mode::ExternalIssuer,
            "--json-logs" => {}
            // Listens on the pod's address; not needed here.
            "--listen" => {
                if inline.is_none() {
                    args.next();
                }
            }
            "--namespace" => {
                let value = inline.or_else(|| args.next().cloned()).unwrap_or_default();
                let value = env.get(value.as_str()).map_or(value.clone(), |v| (*v).to_owned());
                config.namespace = Some(value);
            }
            other => bail!("argument {other} of the rendered Deployment is not mapped by this test"),
        }
    }
    if leader_elect {
        let namespace = config
            .namespace
            .clone()
            .unwrap_or_else(|| config.cluster_resource_namespace.clone());
        config.leader_election = Some(LeaseConfig::new(namespace, identity));
    }
    Ok(config)
}

/// Secret `vault-token` in `ns` holding `token`.
fn token_secret(ns: &str, token: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "vault-token", "namespace": ns},
           "type": "Opaque",
           "data": {"token": base64::engine::general_purpose::STANDARD.encode(token)}})
}

/// Whether `user` (a ServiceAccount) may do `verb` on `resource` `name` of `group` cluster-wide.
async fn allowed(api: &Api, user: &str, group: &str, resource: &str, verb: &str, name: &str) -> Result<bool> {
    let sa_ns = user.split(':').nth(2).unwrap_or_default();
    let review = api
        .create(
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            &json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                    "spec": {"user": user,
                             "groups": ["system:serviceaccounts", format!("system:serviceaccounts:{sa_ns}"),
                                        "system:authenticated"],
                             "resourceAttributes": {"group": group, "resource": resource, "verb": verb,
                                                    "name": name, "version": "*"}}}),
        )
        .await?;
    Ok(review["status"]["allowed"] == true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_issuer_rendering_signs_with_its_own_rbac() -> Result<()> {
    let Some(kubectl) = kubectl() else { return Ok(()) };
    if !installed() {
        return Ok(());
    }
    let objects = render(&kubectl, "examples/external-issuer")?;
    let (kube, bao) = tokio::join!(KubeApiServer::start(), DevServer::start());
    let (kube, bao) = (kube?, bao?);
    let pki = bao.admin().setup_pki(PkiOptions::default()).await?;
    let api = Api::new(&kube)?;
    // cert-manager's install: its namespace and its CertificateRequest CRD (its release's file,
    // as checked in for the CRD comparison test); then the rendering's CRDs.
    kube.create_namespace("cert-manager").await?;
    kube.create_namespace("apps").await?;
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../crds/tests/testdata/cert-manager/cert-manager.io_certificaterequests.yaml"
    ))?;
    let mut crds = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(&text) {
        let crd = Value::deserialize(document)?;
        if crd.is_object() {
            crds.push(crd);
        }
    }
    crds.extend(
        objects
            .iter()
            .filter(|o| o["kind"] == "CustomResourceDefinition")
            .cloned(),
    );
    kube.apply_crds(&crds, BOUND).await?;
    create_identity(&api, &objects).await?;

    // cert-manager's webhook lets its approver approve a request for these signers: the
    // SubjectAccessReviews its approval check makes (cluster scope, version "*"), for the
    // ServiceAccount the shipped binding names.
    let cert_manager = "system:serviceaccount:cert-manager:cert-manager";
    for signer in [
        "vaultissuers.certkeeper.io/*",
        "vaultclusterissuers.certkeeper.io/*",
    ] {
        ensure!(
            allowed(
                &api,
                cert_manager,
                "cert-manager.io",
                "signers",
                "approve",
                signer
            )
            .await?,
            "cert-manager may not approve {signer}"
        );
    }
    ensure!(
        !allowed(
            &api,
            cert_manager,
            "cert-manager.io",
            "signers",
            "approve",
            "issuers.example.com/*"
        )
        .await?
    );

    let config = configuration(&kube, &objects, "release-test").await?;
    ensure!(config.mode == Mode::ExternalIssuer);
    let started = Instant::now();
    let (stop_tx, controller) = spawn_controller(config);

    // A VaultIssuer in `apps` and a VaultClusterIssuer (its Secret in the cluster resource
    // namespace), each with a token Secret.
    let token = bao.admin().create_token(&[&pki.policy], "1h", true, 0).await?;
    let spec = json!({"server": bao.addr(), "path": pki.sign_path,
                      "auth": {"tokenSecretRef": {"name": "vault-token", "key": "token"}}});
    for ns in ["apps", "cert-manager"] {
        api.create(
            &format!("/api/v1/namespaces/{ns}/secrets"),
            &token_secret(ns, &token),
        )
        .await?;
    }
    let issuers = [
        (
            "VaultIssuer",
            "/apis/certkeeper.io/v1/namespaces/apps/vaultissuers",
        ),
        ("VaultClusterIssuer", "/apis/certkeeper.io/v1/vaultclusterissuers"),
    ];
    for (kind, collection) in issuers {
        let mut metadata = json!({"name": "vault"});
        if kind == "VaultIssuer" {
            metadata["namespace"] = json!("apps");
        }
        api.create(
            collection,
            &json!({"apiVersion": "certkeeper.io/v1", "kind": kind, "metadata": metadata, "spec": spec}),
        )
        .await?;
    }
    for (kind, collection) in issuers {
        api.wait_until(&format!("{kind} Ready"), &format!("{collection}/vault"), ready)
            .await?;
    }

    // A CertificateRequest naming each, approved as cert-manager's approver approves
    // (pkg/controller/certificaterequests/approver): signed.
    let requests = "/apis/cert-manager.io/v1/namespaces/apps/certificaterequests";
    for (kind, _) in issuers {
        let name = kind.to_lowercase();
        let host = format!("{name}.example.com");
        let (csr, _key) = csr_p256(&host, &[host.as_str()])?;
        api.create(
            requests,
            &json!({"apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest",
                    "metadata": {"name": name, "namespace": "apps"},
                    "spec": {"request": base64::engine::general_purpose::STANDARD.encode(csr),
                             "duration": "1h", "usages": ["digital signature", "server auth"],
                             "issuerRef": {"group": "certkeeper.io", "kind": kind, "name": "vault"}}}),
        )
        .await?;
        api.patch(
            &format!("{requests}/{name}/status"),
            &json!({"status": {"conditions": [{"type": "Approved", "status": "True", "reason": "cert-manager.io",
                                               "message": "Certificate request has been approved by cert-manager.io",
                                               "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}),
        )
        .await?;
    }
    for (kind, _) in issuers {
        let name = kind.to_lowercase();
        let cr = api
            .wait_until(&format!("{name} signed"), &format!("{requests}/{name}"), ready)
            .await?;
        ensure!(
            cr["status"]["certificate"].is_string() && cr["status"]["ca"].is_string(),
            "{cr}"
        );
        ensure!(
            condition(&cr, "Ready").is_some_and(|c| c["reason"] == "Issued"),
            "{cr}"
        );
    }
    eprintln!(
        "external-issuer rendering: both issuers Ready and their requests signed in {:?}",
        started.elapsed()
    );
    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(30), controller).await???;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaced_rendering_issues_in_its_namespace_with_a_role_only() -> Result<()> {
    let Some(kubectl) = kubectl() else { return Ok(()) };
    if !installed() {
        return Ok(());
    }
    let objects = render(&kubectl, "examples/namespaced")?;
    ensure!(
        !objects
            .iter()
            .any(|o| o["kind"] == "ClusterRole" || o["kind"] == "ClusterRoleBinding"),
        "the namespaced rendering grants nothing cluster-wide"
    );
    let (kube, bao) = tokio::join!(KubeApiServer::start(), DevServer::start());
    let (kube, bao) = (kube?, bao?);
    let pki = bao.admin().setup_pki(PkiOptions::default()).await?;
    let api = Api::new(&kube)?;
    // The cluster admin's part: the CRDs; the team's namespace exists.
    let crds: Vec<Value> = render(&kubectl, "crds")?;
    kube.apply_crds(&crds, BOUND).await?;
    kube.create_namespace("team-a").await?;
    create_identity(&api, &objects).await?;

    let config = configuration(&kube, &objects, "release-test").await?;
    ensure!(
        config.namespace.as_deref() == Some("team-a"),
        "{:?}",
        config.namespace
    );
    let started = Instant::now();
    let (stop_tx, controller) = spawn_controller(config);

    let token = bao.admin().create_token(&[&pki.policy], "1h", true, 0).await?;
    api.create(
        "/api/v1/namespaces/team-a/secrets",
        &token_secret("team-a", &token),
    )
    .await?;
    api.create(
        "/apis/cert-manager.io/v1/namespaces/team-a/issuers",
        &json!({"apiVersion": "cert-manager.io/v1", "kind": "Issuer",
                "metadata": {"name": "vault", "namespace": "team-a"},
                "spec": {"vault": {"server": bao.addr(), "path": pki.sign_path,
                                   "auth": {"tokenSecretRef": {"name": "vault-token", "key": "token"}}}}}),
    )
    .await?;
    api.create(
        "/apis/cert-manager.io/v1/namespaces/team-a/certificates",
        &json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
                "metadata": {"name": "web", "namespace": "team-a"},
                "spec": {"secretName": "web-tls", "commonName": "web.example.com", "duration": "1h",
                         "issuerRef": {"name": "vault"}}}),
    )
    .await?;
    api.wait_until(
        "Certificate Ready",
        "/apis/cert-manager.io/v1/namespaces/team-a/certificates/web",
        ready,
    )
    .await?;
    ensure!(
        api.get("/api/v1/namespaces/team-a/secrets/web-tls")
            .await?
            .is_some()
    );
    let lease = api
        .get("/apis/coordination.k8s.io/v1/namespaces/team-a/leases/certkeeper-controller")
        .await?
        .context("no Lease in team-a")?;
    ensure!(lease["spec"]["holderIdentity"] == "release-test", "{lease}");
    wait_for("an Issued Event in team-a", BOUND, || async {
        let events = api
            .get("/api/v1/namespaces/team-a/events")
            .await?
            .unwrap_or_default();
        Ok(events["items"]
            .as_array()
            .and_then(|items| items.iter().find(|e| e["reason"] == "Issued").cloned()))
    })
    .await?;
    eprintln!(
        "namespaced rendering: Certificate issued in {:?}",
        started.elapsed()
    );
    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(30), controller).await???;
    Ok(())
}
