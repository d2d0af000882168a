//! The CustomResourceDefinitions certkeeper serves — cert-manager's `Certificate`,
//! `CertificateRequest`, `Issuer` and `ClusterIssuer` (`cert-manager.io/v1`), and its own
//! `VaultIssuer` and `VaultClusterIssuer` (`certkeeper.io/v1`, cert-manager's `spec.vault` as the
//! whole spec) — generated from `certkeeper-core`'s types.
//!
//! The OpenAPI v3 schemas come from the types' `schemars` derives and are made structural, as
//! `apiextensions.k8s.io/v1` requires: every `$ref` inlined, no `$schema` or `title`, enums as
//! `enum` lists. `default` only where cert-manager's CRDs have one (the types say so with the
//! `x-certkeeper-default` extension; the defaults schemars derives from `#[serde(default)]` are
//! dropped: the API server would apply them, changing objects behind the user's back).
//! `nullable` is left out: certkeeper never writes `null`, and since Kubernetes 1.20 the API
//! server drops `null` values of non-nullable fields, which is what cert-manager's CRDs rely on
//! too. Names, short names, category, printer columns, every property path with its type, enum,
//! `required` list, default, pattern, format and list/map markers follow cert-manager's CRDs
//! (the issuer types certkeeper does not serve included, typed in
//! `certkeeper_core::spec::unserved`; checked against a copy of cert-manager's CRDs in
//! `tests/testdata/cert-manager`), plus `status.certkeeper` and a `NextAttempt` column for
//! certkeeper's retry state (see `certkeeper_core::spec::CertkeeperStatus`). Left out of
//! cert-manager's CRDs, because the oldest API server certkeeper supports (v1.20) does not know
//! them: `selectableFields` (Kubernetes 1.30+) and the CEL rule of `spec.venafi`
//! (`x-kubernetes-validations`, 1.25+); and an ACME solver pod's `imagePullSecrets` is an atomic
//! list, not a map list keyed by `name` with `default: ""`, which v1.20 refuses.
//!
//! The generated files are checked in under `deploy/crds/` (one per CRD, named like
//! cert-manager's) and a unit test fails when they differ from what the types generate. After
//! changing a type, regenerate them with
//!
//! ```text
//! CERTKEEPER_UPDATE_CRDS=1 cargo test -p certkeeper-crds --lib
//! ```
//!
//! `certkeeper crds` prints all six as one multi-document YAML stream
//! (`certkeeper crds | kubectl apply -f -`); `certkeeper crds --group certkeeper.io` only
//! certkeeper's own two, for a cluster where cert-manager brings its four.

use std::fmt;

use certkeeper_core::spec::{
    CERT_MANAGER_GROUP, CERTKEEPER_GROUP, CertificateRequestSpec, CertificateRequestStatus, CertificateSpec,
    CertificateStatus, IssuerSpec, IssuerStatus, VaultIssuer,
};
use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde_json::{Value, json};

/// The API group of cert-manager's four kinds.
pub const GROUP: &str = CERT_MANAGER_GROUP;
/// The only version served.
pub const VERSION: &str = "v1";

/// Namespaced or cluster-scoped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Namespaced,
    Cluster,
}

/// One printer column (`kubectl get`).
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub json_path: &'static str,
    /// `string` or `date`.
    pub kind: &'static str,
    /// 0: always shown; 1: with `-o wide`.
    pub priority: u8,
}

const fn column(name: &'static str, json_path: &'static str, priority: u8) -> Column {
    Column {
        name,
        json_path,
        kind: "string",
        priority,
    }
}

const READY: Column = column("Ready", r#".status.conditions[?(@.type == "Ready")].status"#, 0);
const STATUS: Column = column("Status", r#".status.conditions[?(@.type == "Ready")].message"#, 1);
const AGE: Column = Column {
    name: "Age",
    json_path: ".metadata.creationTimestamp",
    kind: "date",
    priority: 0,
};

/// Required fields, as cert-manager's CRDs have them: (dotted path into the `spec` schema,
/// fields). Beyond what the types' own `required` lists say, because certkeeper's types decode
/// missing fields as empty (so that every missing field is reported at once, with its path).
type Required = &'static [(&'static str, &'static [&'static str])];

const CERTIFICATE_REQUIRED: Required = &[
    ("", &["issuerRef", "secretName"]),
    ("issuerRef", &["name"]),
    ("keystores.jks", &["create"]),
    ("keystores.jks.passwordSecretRef", &["name"]),
    ("keystores.pkcs12", &["create"]),
    ("keystores.pkcs12.passwordSecretRef", &["name"]),
];

const ISSUER_REQUIRED: Required = &[
    ("vault", &["auth", "path", "server"]),
    ("vault.auth.appRole", &["path", "roleId", "secretRef"]),
    ("vault.auth.appRole.secretRef", &["name"]),
    ("vault.auth.kubernetes", &["role"]),
    ("vault.auth.kubernetes.secretRef", &["name"]),
    ("vault.auth.kubernetes.serviceAccountRef", &["name"]),
    ("vault.auth.tokenSecretRef", &["name"]),
    ("vault.caBundleSecretRef", &["name"]),
    ("vault.clientCertSecretRef", &["name"]),
    ("vault.clientKeySecretRef", &["name"]),
];

/// [`ISSUER_REQUIRED`] for certkeeper's kinds, whose `spec` is an Issuer's `spec.vault`.
const VAULT_ISSUER_REQUIRED: Required = &[
    ("", &["auth", "path", "server"]),
    ("auth.appRole", &["path", "roleId", "secretRef"]),
    ("auth.appRole.secretRef", &["name"]),
    ("auth.kubernetes", &["role"]),
    ("auth.kubernetes.secretRef", &["name"]),
    ("auth.kubernetes.serviceAccountRef", &["name"]),
    ("auth.tokenSecretRef", &["name"]),
    ("caBundleSecretRef", &["name"]),
    ("clientCertSecretRef", &["name"]),
    ("clientKeySecretRef", &["name"]),
];

const CERTIFICATE_REQUEST_REQUIRED: Required = &[("issuerRef", &["name"])];

/// Adds the `required` lists of `table` to `schema` (a `spec` schema).
fn require(mut schema: Value, table: Required) -> Value {
    for (path, fields) in table {
        let mut node = &mut schema;
        for segment in path.split('.').filter(|s| !s.is_empty()) {
            node = node
                .pointer_mut(&format!("/properties/{segment}"))
                .unwrap_or_else(|| panic!("no property {segment} of {path} in the schema"));
        }
        let mut required: Vec<String> = node
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default();
        required.extend(fields.iter().map(|f| (*f).to_owned()));
        required.sort();
        required.dedup();
        node["required"] = json!(required);
    }
    schema
}

/// One CustomResourceDefinition.
#[derive(Debug, Clone)]
pub struct Crd {
    /// `cert-manager.io` or `certkeeper.io`.
    pub group: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub short_names: &'static [&'static str],
    pub scope: Scope,
    pub description: &'static str,
    /// Whether an object must have a `spec` (cert-manager requires it of issuers only).
    pub spec_required: bool,
    pub columns: Vec<Column>,
    /// The structural OpenAPI v3 schemas of `spec` and `status`.
    pub spec_schema: Value,
    pub status_schema: Value,
}

impl Crd {
    /// `certificates.cert-manager.io`
    pub fn name(&self) -> String {
        format!("{}.{}", self.plural, self.group)
    }

    /// The file name under `deploy/crds/`, as cert-manager names its CRD files:
    /// `cert-manager.io_certificates.yaml`.
    pub fn file_name(&self) -> String {
        format!("{}_{}.yaml", self.group, self.plural)
    }

    /// The whole object's schema: apiVersion, kind, metadata, spec, status.
    pub fn schema(&self) -> Value {
        let mut schema = json!({
            "description": self.description,
            "type": "object",
            "properties": {
                "apiVersion": {
                    "description": "APIVersion defines the versioned schema of this representation of an object.",
                    "type": "string",
                },
                "kind": {
                    "description": "Kind is a string value representing the REST resource this object represents.",
                    "type": "string",
                },
                "metadata": {"type": "object"},
                "spec": self.spec_schema,
                "status": self.status_schema,
            },
        });
        if self.spec_required {
            schema["required"] = json!(["spec"]);
        }
        schema
    }

    /// The CustomResourceDefinition as a JSON value.
    pub fn to_json(&self) -> Value {
        let columns: Vec<Value> = self
            .columns
            .iter()
            .map(|c| {
                let mut column = json!({"name": c.name, "jsonPath": c.json_path, "type": c.kind});
                if c.priority > 0 {
                    column["priority"] = json!(c.priority);
                }
                column
            })
            .collect();
        let kind = self.kind;
        json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {
                "name": self.name(),
                "labels": {"app.kubernetes.io/name": "certkeeper"},
            },
            "spec": {
                "group": self.group,
                "names": {
                    "categories": [if self.group == GROUP { "cert-manager" } else { "certkeeper" }],
                    "kind": kind,
                    "listKind": format!("{kind}List"),
                    "plural": self.plural,
                    "shortNames": self.short_names,
                    "singular": kind.to_ascii_lowercase(),
                },
                "scope": match self.scope {
                    Scope::Namespaced => "Namespaced",
                    Scope::Cluster => "Cluster",
                },
                "versions": [{
                    "name": VERSION,
                    "served": true,
                    "storage": true,
                    "additionalPrinterColumns": columns,
                    "schema": {"openAPIV3Schema": self.schema()},
                    "subresources": {"status": {}},
                }],
            },
        })
    }

    /// The CustomResourceDefinition as one YAML document (starting with `---`), keys sorted as
    /// controller-gen sorts them.
    pub fn to_yaml(&self) -> String {
        let text = serde_yaml_ng::to_string(&sorted_yaml(&self.to_json()))
            .unwrap_or_else(|e| unreachable!("a JSON value always serialises to YAML: {e}"));
        format!("---\n{text}")
    }
}

impl fmt::Display for Crd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_yaml())
    }
}

/// The six CRDs, in the order `kubectl apply` should see them (issuers first, certkeeper's own
/// two last).
pub fn crds() -> Vec<Crd> {
    vec![
        Crd {
            group: GROUP,
            kind: "Issuer",
            plural: "issuers",
            short_names: &["iss"],
            scope: Scope::Namespaced,
            description: "An Issuer represents a certificate issuing authority which can be referenced \
                as part of `issuerRef` fields. It is scoped to a single namespace and can therefore only \
                be referenced by resources within the same namespace. certkeeper serves `spec.vault`.",
            spec_required: true,
            columns: vec![READY, STATUS, AGE],
            spec_schema: require(schema_of::<IssuerSpec>(), ISSUER_REQUIRED),
            status_schema: schema_of::<IssuerStatus>(),
        },
        Crd {
            group: GROUP,
            kind: "ClusterIssuer",
            plural: "clusterissuers",
            short_names: &["ciss"],
            scope: Scope::Cluster,
            description: "A ClusterIssuer represents a certificate issuing authority which can be \
                referenced as part of `issuerRef` fields. It is similar to an Issuer, however it is \
                cluster-scoped and therefore can be referenced by resources that exist in *any* \
                namespace, not just the same namespace as the referent. certkeeper serves `spec.vault`.",
            spec_required: true,
            columns: vec![READY, STATUS, AGE],
            spec_schema: require(schema_of::<IssuerSpec>(), ISSUER_REQUIRED),
            status_schema: schema_of::<IssuerStatus>(),
        },
        Crd {
            group: GROUP,
            kind: "Certificate",
            plural: "certificates",
            short_names: &["cert", "certs"],
            scope: Scope::Namespaced,
            description: "A Certificate resource should be created to ensure an up to date and signed \
                X.509 certificate is stored in the Kubernetes Secret resource named in `spec.secretName`. \
                certkeeper's retry state is in `status.certkeeper`.",
            spec_required: false,
            columns: vec![
                READY,
                column("Secret", ".spec.secretName", 0),
                column("Issuer", ".spec.issuerRef.name", 1),
                STATUS,
                column("Expiration", ".status.notAfter", 1),
                column("NextAttempt", ".status.certkeeper.nextAttemptTime", 0),
                AGE,
            ],
            spec_schema: require(schema_of::<CertificateSpec>(), CERTIFICATE_REQUIRED),
            status_schema: schema_of::<CertificateStatus>(),
        },
        Crd {
            group: GROUP,
            kind: "CertificateRequest",
            plural: "certificaterequests",
            short_names: &["cr", "crs"],
            scope: Scope::Namespaced,
            description: "A CertificateRequest is used to request a signed certificate from one of the \
                configured issuers. All fields within the CertificateRequest's `spec` are immutable \
                after creation. A CertificateRequest will either succeed or fail, as denoted by its \
                `Ready` status condition and its `status.failureTime` field.",
            spec_required: false,
            columns: vec![
                column(
                    "Approved",
                    r#".status.conditions[?(@.type == "Approved")].status"#,
                    0,
                ),
                column("Denied", r#".status.conditions[?(@.type == "Denied")].status"#, 0),
                READY,
                column("Issuer", ".spec.issuerRef.name", 0),
                column("Requester", ".spec.username", 0),
                STATUS,
                AGE,
            ],
            spec_schema: require(
                schema_of::<CertificateRequestSpec>(),
                CERTIFICATE_REQUEST_REQUIRED,
            ),
            status_schema: schema_of::<CertificateRequestStatus>(),
        },
        Crd {
            group: CERTKEEPER_GROUP,
            kind: "VaultIssuer",
            plural: "vaultissuers",
            short_names: &["vaultiss"],
            scope: Scope::Namespaced,
            description: "A VaultIssuer is certkeeper's Vault or OpenBao issuer as a cert-manager external \
                issuer: its `spec` is cert-manager's Issuer `spec.vault`, unchanged. Certificates and \
                CertificateRequests in its namespace name it with `issuerRef.group: certkeeper.io` and \
                `issuerRef.kind: VaultIssuer`.",
            spec_required: true,
            columns: vec![READY, STATUS, AGE],
            spec_schema: require(schema_of::<VaultIssuer>(), VAULT_ISSUER_REQUIRED),
            status_schema: schema_of::<IssuerStatus>(),
        },
        Crd {
            group: CERTKEEPER_GROUP,
            kind: "VaultClusterIssuer",
            plural: "vaultclusterissuers",
            short_names: &["vaultciss"],
            scope: Scope::Cluster,
            description: "A VaultClusterIssuer is a cluster-scoped VaultIssuer: Certificates and \
                CertificateRequests of any namespace name it with `issuerRef.group: certkeeper.io` and \
                `issuerRef.kind: VaultClusterIssuer`; its Secrets are read from the cluster resource \
                namespace.",
            spec_required: true,
            columns: vec![READY, STATUS, AGE],
            spec_schema: require(schema_of::<VaultIssuer>(), VAULT_ISSUER_REQUIRED),
            status_schema: schema_of::<IssuerStatus>(),
        },
    ]
}

/// All six CRDs as one multi-document YAML stream.
pub fn all_yaml() -> String {
    crds().iter().map(Crd::to_yaml).collect()
}

/// The CRDs of one API group (`cert-manager.io` or `certkeeper.io`) as one YAML stream.
pub fn group_yaml(group: &str) -> String {
    crds()
        .iter()
        .filter(|c| c.group == group)
        .map(Crd::to_yaml)
        .collect()
}

/// The structural schema of `T`.
pub fn schema_of<T: JsonSchema>() -> Value {
    let generator = SchemaSettings::openapi3()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .into_generator();
    let mut schema = generator.into_root_schema_for::<T>().to_value();
    structural(&mut schema);
    schema
}

/// Keywords apiextensions.k8s.io/v1 rejects or that would change objects (`default`), and
/// annotations that only repeat the Rust type name (`title`).
const DROPPED: &[&str] = &[
    "$schema",
    "$defs",
    "definitions",
    "components",
    "title",
    "default",
    "nullable",
    "examples",
    "example",
    "readOnly",
    "writeOnly",
    "deprecated",
];

/// The extension a type's schema declares a CRD default with (see the crate docs).
const DEFAULT: &str = "x-certkeeper-default";

/// Turns a schemars OpenAPI 3 schema into a Kubernetes structural schema (see the crate docs).
fn structural(schema: &mut Value) {
    let Value::Object(object) = schema else {
        return;
    };
    for key in DROPPED {
        object.remove(*key);
    }
    if let Some(default) = object.remove(DEFAULT) {
        object.insert("default".into(), default);
    }
    // Rustdoc links read as plain code in `kubectl explain`.
    if let Some(Value::String(description)) = object.get_mut("description") {
        *description = description.replace("[`", "`").replace("`]", "`");
    }
    // `Option`s: `null` is never written (see the crate docs), so it leaves enums, type lists
    // and combinators.
    for combinator in ["anyOf", "oneOf"] {
        if let Some(Value::Array(branches)) = object.get_mut(combinator) {
            branches.retain(|b| !is_null_only(b));
        }
    }
    if let Some(Value::Array(values)) = object.get_mut("enum") {
        values.retain(|v| !v.is_null());
    }
    if let Some(Value::Array(types)) = object.get_mut("type") {
        types.retain(|t| t != "null");
        if let [single] = types.as_slice() {
            let single = single.clone();
            object.insert("type".into(), single);
        }
    }
    for value in object.values_mut() {
        match value {
            Value::Object(_) => structural(value),
            Value::Array(items) => items.iter_mut().for_each(structural),
            _ => {}
        }
    }
    // A string enum with documented variants comes as `oneOf` of one-value enums.
    for combinator in ["oneOf", "anyOf"] {
        if let Some(Value::Array(branches)) = object.get(combinator)
            && branches.len() > 1
            && let Some(values) = string_enum_values(branches)
        {
            object.remove(combinator);
            object.insert("type".into(), json!("string"));
            object.insert("enum".into(), Value::Array(values));
        }
    }
    // A single-branch combinator (an inlined reference with siblings, an `Option` without its
    // `null`): merge it into its parent.
    for combinator in ["allOf", "anyOf", "oneOf"] {
        if let Some(Value::Array(branches)) = object.get(combinator)
            && branches.len() == 1
            && let Some(Value::Array(mut branches)) = object.remove(combinator)
            && let Some(Value::Object(inner)) = branches.pop()
        {
            for (key, value) in inner {
                object.entry(key).or_insert(value);
            }
        }
    }
    // Lists of fields are replaced as a whole by server-side apply unless a schema says
    // otherwise, as in cert-manager's CRDs (which leave the lists that are map values unmarked).
    if object.get("type") == Some(&json!("array")) && !object.contains_key("x-kubernetes-list-type") {
        object.insert("x-kubernetes-list-type".into(), json!("atomic"));
    }
    if let Some(Value::Object(values)) = object.get_mut("additionalProperties")
        && values.get("type") == Some(&json!("array"))
    {
        values.remove("x-kubernetes-list-type");
    }
    // Integer formats Kubernetes knows are int32 and int64; none is a Go `int`.
    if object.get("type") == Some(&json!("integer"))
        && let Some(format) = object.get("format").and_then(Value::as_str)
    {
        let known = match format {
            "int32" | "int64" => None,
            "uint32" | "uint16" | "uint8" | "int16" | "int8" => Some("int32"),
            _ => Some("int64"),
        };
        if let Some(format) = known {
            object.insert("format".into(), json!(format));
        }
    }
}

/// `{type: null}`, `{enum: [null]}` or `{const: null}`.
fn is_null_only(schema: &Value) -> bool {
    schema.get("type") == Some(&json!("null"))
        || schema.get("enum") == Some(&json!([null]))
        || schema.get("const") == Some(&Value::Null)
}

/// `[{enum: [a]}, {enum: [b]}]` (each maybe with `type: string` and a description) -> `[a, b]`.
fn string_enum_values(branches: &[Value]) -> Option<Vec<Value>> {
    let mut values = Vec::new();
    for branch in branches {
        let branch = branch.as_object()?;
        if branch
            .keys()
            .any(|k| !matches!(k.as_str(), "enum" | "const" | "type" | "description"))
        {
            return None;
        }
        if branch.get("type").is_some_and(|t| t != "string") {
            return None;
        }
        match (branch.get("enum"), branch.get("const")) {
            (Some(Value::Array(v)), None) if v.iter().all(Value::is_string) => {
                values.extend(v.iter().cloned())
            }
            (None, Some(v @ Value::String(_))) => values.push(v.clone()),
            _ => return None,
        }
    }
    Some(values)
}

/// A YAML value with every mapping's keys sorted (serde_json's map order depends on a cargo
/// feature other crates may switch on; the files must not).
fn sorted_yaml(value: &Value) -> serde_yaml_ng::Value {
    use serde_yaml_ng::Value as Y;
    match value {
        Value::Null => Y::Null,
        Value::Bool(b) => Y::Bool(*b),
        Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => Y::Number(u.into()),
            (None, Some(i), _) => Y::Number(i.into()),
            (_, _, Some(f)) => Y::Number(f.into()),
            _ => Y::Null,
        },
        Value::String(s) => Y::String(s.clone()),
        Value::Array(items) => Y::Sequence(items.iter().map(sorted_yaml).collect()),
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Y::Mapping(
                keys.into_iter()
                    .map(|k| (Y::String(k.clone()), sorted_yaml(&map[k])))
                    .collect(),
            )
        }
    }
}

#[cfg(test)]
mod tests;
