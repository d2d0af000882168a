//! deploy/monitoring against what the binary really exports: certkeeper runs standalone against a
//! real OpenBao while Vault refuses one certificate's name (and one through a ClusterIssuer),
//! refuses one issuer's token (its policy emptied), one issuer's Vault is down and one manifest
//! is broken; its /metrics is scraped, every metric named
//! by the rules and the dashboard must be in it, and the scraped series become the input of
//! `promtool test rules`, which must fire exactly the expected alerts (none for the healthy
//! certificate) and find every dashboard query answering.
#![allow(clippy::unwrap_used)] // tests state their expectations by unwrapping

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use common::*;
use serde_json::{Value, json};

fn monitoring_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/monitoring")
}

fn yaml(path: &Path) -> Value {
    serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Every rule of the rules file, as JSON.
fn rules() -> Vec<Value> {
    let file = yaml(&monitoring_dir().join("rules.yaml"));
    file["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().clone())
        .collect()
}

/// Every PromQL expression of the rules and of the dashboard, with where it comes from.
fn expressions() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = rules()
        .iter()
        .map(|r| {
            (
                format!("rule {}", r["alert"].as_str().unwrap()),
                r["expr"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(monitoring_dir().join("dashboard.json")).unwrap())
            .unwrap();
    fn walk(v: &Value, out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(e)) = m.get("expr") {
                    out.push(("dashboard".to_owned(), e.clone()));
                }
                if let (Some(Value::String(q)), Some(Value::String(_))) = (m.get("query"), m.get("name")) {
                    out.push(("dashboard variable".to_owned(), q.clone()));
                }
                m.values().for_each(|x| walk(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    walk(&dashboard, &mut out);
    out
}

/// The metric-name tokens of a PromQL expression: words starting `certkeeper_` or `certmanager_`.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut names = BTreeSet::new();
    let mut rest = expr;
    while let Some(i) = rest.find(|c: char| word(c)) {
        let tail = &rest[i..];
        let end = tail.find(|c: char| !word(c)).unwrap_or(tail.len());
        let token = &tail[..end];
        let quoted = rest[..i].ends_with('"');
        if !quoted && (token.starts_with("certkeeper_") || token.starts_with("certmanager_")) {
            names.insert(token.to_owned());
        }
        rest = &tail[end..];
    }
    names
}

#[test]
fn prometheus_rule_holds_the_rules_file_and_the_dashboard_is_sound() {
    let plain = yaml(&monitoring_dir().join("rules.yaml"));
    let operator = yaml(&monitoring_dir().join("prometheusrule.yaml"));
    assert_eq!(operator["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(operator["kind"], "PrometheusRule");
    assert_eq!(
        operator["spec"]["groups"], plain["groups"],
        "prometheusrule.yaml and rules.yaml hold the same groups"
    );
    let exprs = expressions();
    assert!(
        exprs.iter().filter(|(w, _)| w == "dashboard").count() >= 10,
        "{exprs:?}"
    );
    for (what, e) in &exprs {
        assert!(
            !metric_names(e).is_empty() || what == "dashboard variable",
            "{what}: {e}"
        );
    }
    assert_eq!(
        metric_names(
            "sum by (class) (increase(certkeeper_issuance_attempts_total{class=\"certkeeper_x\"}[5m]))"
        ),
        BTreeSet::from(["certkeeper_issuance_attempts_total".to_owned()])
    );
}

/// One scraped sample: family name, labels as written, value.
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    raw_labels: String,
    value: f64,
}

fn parse_labels(raw: &str) -> BTreeMap<String, String> {
    // certkeeper's own label values are plain here (names, paths, classes): no escapes to undo.
    let mut out = BTreeMap::new();
    let mut rest = raw;
    while let Some((k, v)) = rest.split_once("=\"") {
        let end = v.find('"').unwrap();
        out.insert(k.trim_start_matches(',').to_owned(), v[..end].to_owned());
        rest = &v[end + 1..];
    }
    out
}

/// Families by TYPE, and the samples.
fn parse(text: &str) -> (BTreeMap<String, String>, Vec<Sample>) {
    let mut types = BTreeMap::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(t) = line.strip_prefix("# TYPE ") {
            let (name, kind) = t.split_once(' ').unwrap();
            types.insert(name.to_owned(), kind.to_owned());
        } else if !line.starts_with('#') && !line.is_empty() {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let (name, raw_labels) = match series.split_once('{') {
                Some((n, l)) => (n, l.trim_end_matches('}')),
                None => (series, ""),
            };
            samples.push(Sample {
                name: name.to_owned(),
                labels: parse_labels(raw_labels),
                raw_labels: raw_labels.to_owned(),
                value: value.parse().unwrap(),
            });
        }
    }
    (types, samples)
}

fn exported(name: &str, types: &BTreeMap<String, String>) -> bool {
    types.contains_key(name)
        || ["_bucket", "_sum", "_count"].iter().any(|s| {
            name.strip_suffix(s)
                .is_some_and(|f| types.get(f).is_some_and(|t| t == "histogram"))
        })
}

async fn scrape(port: u16) -> String {
    let resp = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap()
}

fn issuer_yaml(name: &str, server: &str, sign_path: &str, role_id: &str, secret: &str) -> String {
    format!(
        "apiVersion: cert-manager.io/v1\nkind: Issuer\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  vault:\n    server: {server}\n    path: {sign_path}\n    auth:\n      appRole: {{path: approle, roleId: {role_id}, secretRef: {{name: {secret}, key: secretId}}}}\n"
    )
}

fn cert_yaml(name: &str, issuer: &str, host: &str, extra: &str) -> String {
    format!(
        "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  secretName: {name}-tls\n  commonName: {host}\n  dnsNames: [{host}]\n  issuerRef: {{name: {issuer}}}\n  privateKey: {{algorithm: ECDSA, size: 256}}\n{extra}"
    )
}

/// Minutes from the start of the promtool test at which the scrape is placed: the alerts are
/// evaluated there (every `for:` is shorter) and later, once the 1-hour certificate is past its
/// notAfter if nothing changes.
const SCRAPE_AT_MIN: u64 = 45;
const LATER_MIN: u64 = 110;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_fire_on_series_scraped_from_a_real_run() {
    let started = Instant::now();
    let port = certkeeper_testkit::free_port();
    let dead = certkeeper_testkit::free_port();
    let s = setup_with(Default::default(), &[], &format!("listen: 127.0.0.1:{port}\n")).await;
    // A certificate whose reload hook always fails: written, not in use (class apply).
    let config = std::fs::read_to_string(&s.config).unwrap().replace(
        "outputs: {dir: \"certs/{namespace}/{secretName}\"}",
        "outputs: {dir: \"certs/{namespace}/{secretName}\", certificates: {default/hooked: {hooks: [{command: [\"false\"]}]}}}",
    );
    assert!(config.contains("default/hooked"), "{config}");
    std::fs::write(&s.config, config).unwrap();
    let admin = s.bao.admin();
    let policy = policy_text(&admin, &s.policy).await;
    // A second issuer with its own AppRole role and policy, whose policy is emptied later.
    admin.put_policy("locked", &policy).await.unwrap();
    let (locked_role, locked_secret) = admin
        .approle_role("approle", "locked", &["locked"], 0, "")
        .await
        .unwrap();
    let secrets = s.root.join("secrets/default");
    std::fs::create_dir_all(secrets.join("locked-approle")).unwrap();
    std::fs::write(secrets.join("locked-approle/secretId"), &locked_secret).unwrap();
    // A ClusterIssuer's Secrets are in the cluster resource namespace, as cert-manager's.
    let cluster_secret = s.root.join("secrets/cert-manager/vault-approle");
    std::fs::create_dir_all(&cluster_secret).unwrap();
    std::fs::copy(
        secrets.join("vault-approle/secretId"),
        cluster_secret.join("secretId"),
    )
    .unwrap();
    let vault_role = std::fs::read_to_string(s.root.join("manifests/issuer.yaml")).unwrap();
    let vault_role = vault_role
        .split("roleId: ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .unwrap()
        .to_owned();
    let addr = s.bao.addr();
    let offline = format!("http://127.0.0.1:{dead}");
    let broken = "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {name: broken, namespace: default}\nspec: {secretName: b, colour: blue, issuerRef: {name: vault}}\n";
    for (file, text) in [
        (
            "locked",
            issuer_yaml("locked", &addr, &s.sign_path, &locked_role, "locked-approle"),
        ),
        (
            "offline",
            issuer_yaml("offline", &offline, &s.sign_path, &vault_role, "vault-approle"),
        ),
        (
            "healthy",
            cert_yaml("healthy", "vault", "healthy.example.com", ""),
        ),
        ("hooked", cert_yaml("hooked", "vault", "hooked.example.com", "")),
        // The role allows example.com names only: Vault rejects this one request.
        (
            "denied",
            cert_yaml("denied", "vault", "denied.forbidden.test", ""),
        ),
        (
            "expiring",
            cert_yaml("expiring", "locked", "expiring.example.com", "  duration: 1h\n"),
        ),
        (
            "waiting",
            cert_yaml("waiting", "offline", "waiting.example.com", ""),
        ),
        (
            "cluster",
            issuer_yaml("cluster", &addr, &s.sign_path, &vault_role, "vault-approle").replace(
                "kind: Issuer\nmetadata: {name: cluster, namespace: default}",
                "kind: ClusterIssuer\nmetadata: {name: cluster}",
            ),
        ),
        // Through a ClusterIssuer (issuer_kind "ClusterIssuer", issuer "ClusterIssuer/cluster").
        (
            "clustered",
            cert_yaml(
                "clustered",
                "cluster, kind: ClusterIssuer",
                "clustered.forbidden.test",
                "",
            ),
        ),
        ("broken", broken.to_owned()),
    ] {
        std::fs::write(s.root.join(format!("manifests/{file}.yaml")), text).unwrap();
    }

    let daemon = Daemon::start(&s.config);
    wait_for(
        &s.config,
        "healthy and expiring issued",
        Duration::from_secs(60),
        &daemon,
        |r| {
            r.iter()
                .filter(|x| {
                    ["default/healthy", "default/expiring"].contains(&x["name"].as_str().unwrap_or(""))
                        && x["ready"] == true
                })
                .count()
                == 2
        },
    );
    // Vault now refuses the second issuer's token: its renewal, asked for now, is auth_rejected.
    admin.put_policy("locked", NO_RIGHTS_POLICY).await.unwrap();
    let out = ck(&[
        "renew",
        "--config",
        s.config.to_str().unwrap(),
        "expiring",
        "--wait",
        "0",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // Every state provoked, as the status and the metrics tell it.
    wait_for(
        &s.config,
        "the failures recorded",
        Duration::from_secs(60),
        &daemon,
        |r| {
            row(r, "default/expiring")["lastFailure"]["class"] == "auth_rejected"
                && row(r, "default/denied")["lastFailure"]["class"] == "rejected"
                && row(r, "default/waiting")["lastFailure"]["class"] == "transient"
                && row(r, "default/clustered")["lastFailure"]["class"] == "rejected"
                && row(r, "default/healthy")["ready"] == true
                && row(r, "default/hooked")["lastFailure"]["class"] == "apply"
        },
    );
    let failing = |samples: &[Sample], cert: &str| {
        samples.iter().any(|x| {
            x.name == "certkeeper_certificate_failed_attempts" && x.labels["name"] == cert && x.value > 0.0
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let (types, samples, scraped_at) = loop {
        let at = SystemTime::now();
        let text = scrape(port).await;
        let has = |l: &str| text.lines().any(|x| x.starts_with(l));
        let (types, samples) = parse(&text);
        if has(
            "certkeeper_issuer_circuit_open_reason{issuer=\"Issuer/default/locked\",reason=\"auth_rejected\"} 1",
        ) && has("certkeeper_issuer_circuit_state{issuer=\"Issuer/default/offline\",state=\"open\"} 1")
            && has(
                "certkeeper_issuance_attempts_total{issuer=\"Issuer/default/vault\",result=\"failure\",class=\"rejected\"}",
            )
            && has("certkeeper_manifest_problems{")
            && has("certkeeper_certificate_failure_class{name=\"hooked\"")
            && ["expiring", "denied", "waiting", "clustered"]
                .iter()
                .all(|c| failing(&samples, c))
            && !failing(&samples, "healthy")
            && !failing(&samples, "hooked")
        {
            break (types, samples, at);
        }
        assert!(
            Instant::now() < deadline,
            "states not reached in 60 s:\n{text}\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };

    // (b) Every metric named by a rule or a dashboard query is one the binary exports.
    let mut checked = BTreeSet::new();
    for (what, expr) in expressions() {
        for name in metric_names(&expr) {
            assert!(
                exported(&name, &types),
                "{what} names {name}, which certkeeper does not export:\n{expr}\nexported: {:?}",
                types.keys().collect::<Vec<_>>()
            );
            checked.insert(name);
        }
    }
    eprintln!(
        "{} metric names used by the rules and the dashboard, all exported: {checked:?}",
        checked.len()
    );

    // (a) promtool, on the scraped series.
    let Some(promtool) = certkeeper_testkit::promtool().unwrap() else {
        eprintln!(
            "SKIPPED promtool check/test rules: no promtool on PATH and CERTKEEPER_PROMTOOL unset (scripts/test installs Debian's prometheus package)"
        );
        return;
    };
    let version = certkeeper_testkit::run(&promtool, &["--version"], b"").unwrap();
    eprintln!(
        "{}",
        String::from_utf8_lossy(&version.stdout)
            .lines()
            .next()
            .unwrap_or("")
    );
    let rules_file = monitoring_dir().join("rules.yaml").canonicalize().unwrap();
    let check =
        certkeeper_testkit::run(&promtool, &["check", "rules", rules_file.to_str().unwrap()], b"").unwrap();
    eprintln!("{}", String::from_utf8_lossy(&check.stdout).trim());
    // The dashboard's queries, with Grafana's variables filled in, each as an alert that fires
    // when the query returns a series: they parse, and each answers on the scraped series.
    let queries: Vec<Value> = expressions()
        .into_iter()
        .filter(|(what, _)| what == "dashboard")
        .enumerate()
        .map(|(i, (_, e))| {
            let e = e
                .replace("$__rate_interval", "5m")
                .replace("$__range", "6h")
                .replace("$namespace", ".*")
                .replace("$issuer", ".*");
            json!({"alert": format!("DashboardQuery{i}"), "expr": format!("count({e}) > 0"), "annotations": {"query": e}})
        })
        .collect();
    let scratch = tempfile::tempdir().unwrap();
    let dashboard_rules = scratch.path().join("dashboard-queries.yaml");
    let groups = json!({"groups": [{"name": "dashboard", "rules": queries}]});
    std::fs::write(&dashboard_rules, serde_yaml_ng::to_string(&groups).unwrap()).unwrap();
    let check = certkeeper_testkit::run(
        &promtool,
        &["check", "rules", dashboard_rules.to_str().unwrap()],
        b"",
    )
    .unwrap();
    eprintln!(
        "dashboard queries: {}",
        String::from_utf8_lossy(&check.stdout).trim()
    );

    let input = input_series(&types, &samples, scraped_at);
    let find = |name: &str, cert: &str| -> BTreeMap<String, String> {
        samples
            .iter()
            .find(|x| x.name == name && x.labels.get("name").map(String::as_str) == Some(cert))
            .unwrap_or_else(|| panic!("no {name} for {cert}"))
            .labels
            .clone()
    };
    let with = |mut l: BTreeMap<String, String>, extra: &[(&str, &str)]| {
        for (k, v) in extra {
            l.insert((*k).to_owned(), (*v).to_owned());
        }
        l
    };
    let expiring = find("certmanager_certificate_expiration_timestamp_seconds", "expiring");
    let failing = |cert: &str, issuer: &str, class: &str| {
        with(
            find("certkeeper_certificate_failed_attempts", cert),
            &[("issuer", issuer), ("class", class)],
        )
    };
    let not_ready: Vec<BTreeMap<String, String>> = samples
        .iter()
        .filter(|x| {
            x.name == "certmanager_certificate_ready_status"
                && x.labels["condition"] != "True"
                && x.value == 1.0
        })
        .map(|x| x.labels.clone())
        .collect();
    let not_ready_names: BTreeSet<&str> = not_ready.iter().map(|l| l["name"].as_str()).collect();
    assert_eq!(
        not_ready_names,
        BTreeSet::from(["clustered", "denied", "waiting"]),
        "only the certificates never issued are not Ready: {not_ready:?}"
    );
    let problem_file = samples
        .iter()
        .find(|x| x.name == "certkeeper_manifest_problems")
        .unwrap()
        .labels
        .clone();
    assert!(problem_file["file"].ends_with("broken.yaml"), "{problem_file:?}");

    let now: Vec<(&str, Vec<BTreeMap<String, String>>)> = vec![
        (
            "CertkeeperCertificateExpiringWhileFailing",
            vec![expiring.clone()],
        ),
        ("CertkeeperCertificateExpired", vec![]),
        (
            "CertkeeperCertificateRefused",
            vec![
                failing("expiring", "Issuer/default/locked", "auth_rejected"),
                failing("denied", "Issuer/default/vault", "rejected"),
                failing("clustered", "ClusterIssuer/cluster", "rejected"),
            ],
        ),
        (
            "CertkeeperIssuerNotReady",
            vec![BTreeMap::from([
                ("issuer".to_owned(), "Issuer/default/locked".to_owned()),
                ("reason".to_owned(), "auth_rejected".to_owned()),
            ])],
        ),
        (
            "CertkeeperIssuerCircuitOpen",
            vec![BTreeMap::from([(
                "issuer".to_owned(),
                "Issuer/default/offline".to_owned(),
            )])],
        ),
        ("CertkeeperCertificateNotReady", not_ready),
        ("CertkeeperManifestProblems", vec![problem_file]),
        // Only the certificate whose hook fails; its issuance succeeded, so no issuance alert
        // names it (CertkeeperCertificateRefused would if apply failures counted as issuance's).
        (
            "CertkeeperHookFailing",
            vec![find("certkeeper_certificate_failure_class", "hooked")],
        ),
    ];
    let later = vec![("CertkeeperCertificateExpired", vec![expiring])];
    let rules = rules();
    let expect = |at: u64, alerts: &[(&str, Vec<BTreeMap<String, String>>)]| -> Vec<Value> {
        alerts
            .iter()
            .map(|(alert, firing)| {
                let rule = rules.iter().find(|r| r["alert"] == *alert).unwrap();
                let exp: Vec<Value> = firing
                    .iter()
                    .map(|labels| {
                        let mut labels = with(
                            labels.clone(),
                            &[("severity", rule["labels"]["severity"].as_str().unwrap())],
                        );
                        // Prometheus drops empty labels (issuer_kind and issuer_group are the
                        // issuerRef's as written, empty when omitted, as cert-manager exports them).
                        labels.retain(|_, v| !v.is_empty());
                        let annotations: BTreeMap<String, String> = rule["annotations"]
                            .as_object()
                            .unwrap()
                            .iter()
                            .map(|(k, v)| (k.clone(), render(v.as_str().unwrap(), &labels)))
                            .collect();
                        assert!(
                            annotations["summary"].contains(
                                &labels
                                    .get("name")
                                    .or(labels.get("issuer"))
                                    .or(labels.get("file"))
                                    .cloned()
                                    .unwrap()
                            ),
                            "{alert}: the summary names what fails: {annotations:?}"
                        );
                        json!({"exp_labels": labels, "exp_annotations": annotations})
                    })
                    .collect();
                json!({"eval_time": format!("{at}m"), "alertname": alert, "exp_alerts": exp})
            })
            .collect()
    };
    let mut cases = expect(SCRAPE_AT_MIN, &now);
    cases.extend(queries.iter().map(|q| {
        json!({
            "eval_time": format!("{SCRAPE_AT_MIN}m"),
            "alertname": q["alert"],
            "exp_alerts": [{"exp_labels": {}, "exp_annotations": q["annotations"]}],
        })
    }));
    cases.extend(expect(LATER_MIN, &later));
    // The healthy certificate is in the input and in no expected alert: promtool fails on any
    // alert not listed.
    assert!(
        input
            .iter()
            .any(|s| s["series"].as_str().unwrap().contains("name=\"healthy\""))
    );
    let test = json!({
        "rule_files": [rules_file, dashboard_rules],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": input, "alert_rule_test": cases}],
    });
    let dir = tempfile::tempdir().unwrap();
    let test_file = dir.path().join("certkeeper_test.yaml");
    std::fs::write(&test_file, serde_yaml_ng::to_string(&test).unwrap()).unwrap();
    let unit = certkeeper_testkit::run(&promtool, &["test", "rules", test_file.to_str().unwrap()], b"")
        .unwrap_or_else(|e| {
            panic!(
                "{e}\ntest file:\n{}",
                std::fs::read_to_string(&test_file).unwrap()
            )
        });
    eprintln!("{}", String::from_utf8_lossy(&unit.stdout).trim());
    assert!(daemon.stop().success());
    eprintln!("alerts test took {:?}", started.elapsed());
}

/// Substitute `{{ $labels.x }}` (the only template form the rules use) with the labels' values.
fn render(template: &str, labels: &BTreeMap<String, String>) -> String {
    let mut out = template.to_owned();
    for (k, v) in labels {
        out = out.replace(&format!("{{{{ $labels.{k} }}}}"), v);
    }
    assert!(
        !out.contains("{{"),
        "a template form the test does not render: {template}"
    );
    out
}

/// The scraped samples as promtool input series, one sample a minute for two hours and a half:
/// gauges hold their scraped value throughout; counters (and histograms) start at 0, the process
/// start, and hold their scraped value from the first minute on. Unix timestamps are moved so
/// that the moment of the scrape is minute [`SCRAPE_AT_MIN`] of the test (promtool's clock starts
/// at 0); 0 (nothing issued or scheduled) stays 0.
fn input_series(types: &BTreeMap<String, String>, samples: &[Sample], scraped_at: SystemTime) -> Vec<Value> {
    let now = scraped_at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let shift = now - (SCRAPE_AT_MIN * 60) as f64;
    samples
        .iter()
        .map(|x| {
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| {
                    x.name
                        .strip_suffix(s)
                        .filter(|f| types.get(*f).is_some_and(|t| t == "histogram"))
                })
                .unwrap_or(&x.name);
            let kind = types.get(family).map(String::as_str).unwrap_or("untyped");
            let value = if family.ends_with("_timestamp_seconds") && x.value != 0.0 {
                (x.value - shift).round()
            } else {
                x.value
            };
            let values = match kind {
                "counter" | "histogram" => format!("0 {value}x150"),
                _ => format!("{value}x150"),
            };
            json!({"series": format!("{}{{{}}}", x.name, x.raw_labels), "values": values})
        })
        .collect()
}
