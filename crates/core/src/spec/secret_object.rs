//! A Kubernetes `v1` `Secret` in a manifest file, as cert-manager's documentation puts one next
//! to the Issuer that references it. The standalone runtime resolves Secret references to it.
//!
//! Decoded and validated as the API server does (`ValidateSecret` in Kubernetes'
//! `pkg/apis/core/validation`): the name a DNS-1123 subdomain, the namespace a DNS-1123 label,
//! every key of `data` and `stringData` a Secret key (`IsConfigMapKey`), the values together at
//! most [`MAX_SECRET_BYTES`], and the keys each built-in `type` requires. `data` values are
//! standard padded base64; `stringData` is merged over `data` (a key in both takes
//! `stringData`'s value), as the API server merges them on write.
//!
//! Values are secret: they are decoded into [`SecretBytes`] and never reach an error message.
//! The decoding is by hand rather than through serde for that reason: serde's type errors quote
//! the value they could not decode (`invalid type: integer `1234``).

use std::collections::BTreeMap;
use std::fmt;

use serde_yaml_ng::Value;

use crate::SecretBytes;

use super::de;
use super::error::{FieldError, FieldPath, Problem};
use super::meta::ObjectMeta;
use super::syntax::{check_secret_key, decode_base64};

/// Kubernetes' `MaxSecretSize`: the most bytes of values one Secret may hold.
pub const MAX_SECRET_BYTES: usize = 1 << 20;

/// The type of a Secret whose manifest names none.
pub const SECRET_TYPE_OPAQUE: &str = "Opaque";

/// Top-level fields of a `v1` Secret.
const FIELDS: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "type",
    "data",
    "stringData",
    "immutable",
];

/// The keys each built-in type requires (Kubernetes' `ValidateSecret`); any one of a list
/// suffices.
fn required_keys(secret_type: &str) -> &'static [&'static str] {
    match secret_type {
        "kubernetes.io/tls" => &["tls.crt", "tls.key"],
        "kubernetes.io/ssh-auth" => &["ssh-privatekey"],
        "kubernetes.io/dockercfg" => &[".dockercfg"],
        "kubernetes.io/dockerconfigjson" => &[".dockerconfigjson"],
        _ => &[],
    }
}

/// A `v1` Secret from a manifest. `Debug` shows its name, type and keys, never values (nor its
/// annotations: `kubectl.kubernetes.io/last-applied-configuration` holds the whole Secret).
#[derive(Clone, PartialEq, Eq)]
pub struct ManifestSecret {
    pub metadata: ObjectMeta,
    /// `type`; [`SECRET_TYPE_OPAQUE`] when the manifest names none.
    pub secret_type: String,
    data: BTreeMap<String, SecretBytes>,
}

impl fmt::Debug for ManifestSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManifestSecret")
            .field("namespace", &self.namespace())
            .field("name", &self.name())
            .field("type", &self.secret_type)
            .field("keys", &self.data.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl ManifestSecret {
    /// The namespace, `default` when the manifest names none.
    pub fn namespace(&self) -> &str {
        self.metadata.namespace_or_default()
    }

    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    /// The value of `key` (after `stringData` was merged over `data`).
    pub fn get(&self, key: &str) -> Option<&SecretBytes> {
        self.data.get(key)
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.data.keys().map(String::as_str)
    }
}

/// The entries of a string-keyed mapping at `path` (absent or null: none).
fn entries<'a>(
    value: Option<&'a Value>,
    path: &FieldPath,
    errors: &mut Vec<FieldError>,
) -> Vec<(&'a str, &'a Value)> {
    match value {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Mapping(mapping)) => mapping
            .iter()
            .filter_map(|(k, v)| match k.as_str() {
                Some(key) => Some((key, v)),
                None => {
                    errors.push(FieldError::new(
                        path.clone(),
                        Problem::Decode("mapping keys must be strings".into()),
                    ));
                    None
                }
            })
            .collect(),
        Some(_) => {
            errors.push(FieldError::new(
                path.clone(),
                Problem::Decode("expected a mapping".into()),
            ));
            Vec::new()
        }
    }
}

/// Decodes and validates a `v1` Secret document: the Secret if it is valid, else every problem
/// (none of which quotes a value).
pub(super) fn decode_secret(value: &Value) -> Result<ManifestSecret, Vec<FieldError>> {
    let mut errors = Vec::new();
    let Some(object) = value.as_mapping() else {
        return Err(vec![FieldError::new(FieldPath::root(), Problem::NotAnObject)]);
    };
    for key in object.keys() {
        match key.as_str() {
            Some(field) if FIELDS.contains(&field) => {}
            Some(field) => errors.push(FieldError::new(
                FieldPath::root().field(field.to_owned()),
                Problem::UnknownField,
            )),
            None => errors.push(FieldError::new(
                FieldPath::root(),
                Problem::Decode("mapping keys must be strings".into()),
            )),
        }
    }
    let meta_path = FieldPath::parse("metadata");
    let metadata = match value.get("metadata") {
        None | Some(Value::Null) => {
            errors.push(FieldError::new(meta_path.field("name"), Problem::Required));
            None
        }
        Some(meta) => {
            let (metadata, meta_errors) = de::decode::<ObjectMeta>(meta, meta_path.clone());
            errors.extend(meta_errors);
            if let Some(m) = &metadata {
                m.validate(&meta_path, true, &mut errors);
            }
            metadata
        }
    };
    let secret_type = match value.get("type") {
        None | Some(Value::Null) => SECRET_TYPE_OPAQUE.to_owned(),
        Some(Value::String(t)) if t.is_empty() => SECRET_TYPE_OPAQUE.to_owned(),
        Some(Value::String(t)) => t.clone(),
        Some(_) => {
            errors.push(FieldError::new(
                FieldPath::parse("type"),
                Problem::Decode("expected a string".into()),
            ));
            SECRET_TYPE_OPAQUE.to_owned()
        }
    };
    if !matches!(value.get("immutable"), None | Some(Value::Null | Value::Bool(_))) {
        errors.push(FieldError::new(
            FieldPath::parse("immutable"),
            Problem::Decode("expected a boolean".into()),
        ));
    }

    let mut data = BTreeMap::new();
    let data_path = FieldPath::parse("data");
    for (key, v) in entries(value.get("data"), &data_path, &mut errors) {
        let path = data_path.key(key);
        if !key_is_valid(key, &path, &mut errors) {
            continue;
        }
        let bytes = match v {
            // Go decodes null into an empty []byte.
            Value::Null => Vec::new(),
            Value::String(text) => match decode_base64(text) {
                Ok(bytes) => bytes,
                Err(reason) => {
                    errors.push(FieldError::new(
                        path,
                        Problem::Decode(format!("invalid base64: {reason}")),
                    ));
                    continue;
                }
            },
            _ => {
                errors.push(FieldError::new(
                    path,
                    Problem::Decode("expected a base64 string".into()),
                ));
                continue;
            }
        };
        data.insert(key.to_owned(), SecretBytes::new(bytes));
    }
    let string_path = FieldPath::parse("stringData");
    for (key, v) in entries(value.get("stringData"), &string_path, &mut errors) {
        let path = string_path.key(key);
        if !key_is_valid(key, &path, &mut errors) {
            continue;
        }
        match v {
            Value::String(text) => {
                data.insert(key.to_owned(), SecretBytes::new(text.as_bytes()));
            }
            Value::Null => {
                data.insert(key.to_owned(), SecretBytes::default());
            }
            _ => errors.push(FieldError::new(path, Problem::Decode("expected a string".into()))),
        }
    }
    let size: usize = data.values().map(SecretBytes::len).sum();
    if size > MAX_SECRET_BYTES {
        let problem = Problem::TooLong {
            max: MAX_SECRET_BYTES,
            len: size,
        };
        errors.push(FieldError::new(data_path.clone(), problem));
    }
    let required = required_keys(&secret_type);
    if !required.is_empty() {
        for key in required {
            if !data.contains_key(*key) {
                errors.push(FieldError::new(data_path.key(*key), Problem::Required));
            }
        }
    }
    if secret_type == "kubernetes.io/basic-auth"
        && !data.contains_key("username")
        && !data.contains_key("password")
    {
        errors.push(FieldError::new(
            data_path.clone(),
            Problem::RequiredOneOf(&["data[username]", "data[password]"]),
        ));
    }
    match metadata {
        Some(metadata) if errors.is_empty() => Ok(ManifestSecret {
            metadata,
            secret_type,
            data,
        }),
        _ => Err(errors),
    }
}

/// Whether `key` is a valid Secret data key (the API server's rule); records the error if not.
fn key_is_valid(key: &str, path: &FieldPath, errors: &mut Vec<FieldError>) -> bool {
    match check_secret_key(key) {
        Ok(()) => true,
        Err(reason) => {
            let problem = Problem::InvalidSecretKey {
                value: key.to_owned(),
                reason,
            };
            errors.push(FieldError::new(path.clone(), problem));
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(yaml: &str) -> Result<ManifestSecret, Vec<String>> {
        let value: Value = serde_yaml_ng::from_str(yaml).unwrap();
        decode_secret(&value).map_err(|e| e.iter().map(ToString::to_string).collect())
    }

    const HEAD: &str = "apiVersion: v1\nkind: Secret\nmetadata: {name: vault-token, namespace: sandbox}\n";

    #[test]
    fn data_is_base64_and_string_data_wins() {
        let secret = decode(&format!(
            "{HEAD}type: Opaque\ndata: {{token: aHZzLmZyb20tZGF0YQ==, other: b3RoZXI=}}\nstringData: {{token: hvs.from-string-data}}\n"
        ))
        .unwrap();
        assert_eq!(secret.namespace(), "sandbox");
        assert_eq!(secret.get("token").unwrap().expose(), b"hvs.from-string-data");
        assert_eq!(secret.get("other").unwrap().expose(), b"other");
        assert_eq!(secret.keys().collect::<Vec<_>>(), ["other", "token"]);
        assert_eq!(secret.secret_type, "Opaque");
        let shown = format!("{secret:?}");
        assert!(
            !shown.contains("from-string-data") && !shown.contains("aHZz"),
            "{shown}"
        );
        // kubectl's last-applied annotation holds the whole Secret: not shown either.
        let applied = decode(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: t\n  annotations: {kubectl.kubernetes.io/last-applied-configuration: '{\"data\":{\"token\":\"aHZzLnNlY3JldA==\"}}'}\ndata: {token: aHZzLnNlY3JldA==}\n",
        )
        .unwrap();
        let shown = format!("{applied:?}");
        assert_eq!(
            shown,
            "ManifestSecret { namespace: \"default\", name: \"t\", type: \"Opaque\", keys: [\"token\"], .. }"
        );
    }

    #[test]
    fn namespace_defaults_and_type_defaults() {
        let secret =
            decode("apiVersion: v1\nkind: Secret\nmetadata: {name: t}\nstringData: {token: x}\n").unwrap();
        assert_eq!(secret.namespace(), "default");
        assert_eq!(secret.secret_type, SECRET_TYPE_OPAQUE);
    }

    #[test]
    fn hostile_names_and_keys_are_refused_as_the_api_server_refuses_them() {
        assert_eq!(
            decode("apiVersion: v1\nkind: Secret\nmetadata: {name: ../../etc, namespace: a/b}\nstringData: {'../token': x, '/etc/shadow': y, '..': z, ok: v}\n")
                .unwrap_err(),
            [
                "metadata.name: invalid name \"../../etc\": must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
                "metadata.namespace: invalid name \"a/b\": must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character",
                "stringData[../token]: invalid Secret key \"../token\": must consist of alphanumeric characters, '-', '_' or '.'",
                "stringData[/etc/shadow]: invalid Secret key \"/etc/shadow\": must consist of alphanumeric characters, '-', '_' or '.'",
                "stringData[..]: invalid Secret key \"..\": must not be '..' or start with '..'",
            ]
        );
        assert_eq!(
            decode("apiVersion: v1\nkind: Secret\nstringData: {token: x}\n").unwrap_err(),
            ["metadata.name: required"]
        );
    }

    /// No message quotes a value, whatever is wrong with it.
    #[test]
    fn hostile_values_are_never_quoted() {
        let errors = decode(&format!(
            "{HEAD}data: {{a: 'sup3rsecret!!', b: 123456789, c: [sup3rsecret]}}\nstringData: {{d: 987654321, e: {{x: sup3rsecret}}}}\nbogus: sup3rsecret\n"
        ))
        .unwrap_err();
        assert_eq!(
            errors,
            [
                "bogus: unknown field",
                "data[a]: invalid base64: length is not a multiple of 4 (missing padding?)",
                "data[b]: expected a base64 string",
                "data[c]: expected a base64 string",
                "stringData[d]: expected a string",
                "stringData[e]: expected a string",
            ]
        );
        assert!(
            errors
                .iter()
                .all(|e| !e.contains("sup3rsecret") && !e.contains("987654321"))
        );
    }

    #[test]
    fn hostile_huge_secret_is_refused_at_kubernetes_limit() {
        let big = "a".repeat(MAX_SECRET_BYTES + 1);
        assert_eq!(
            decode(&format!("{HEAD}stringData: {{token: {big}}}\n")).unwrap_err(),
            [format!(
                "data: must be at most {MAX_SECRET_BYTES} bytes long, got {}",
                MAX_SECRET_BYTES + 1
            )]
        );
        let exact = "a".repeat(MAX_SECRET_BYTES);
        assert!(decode(&format!("{HEAD}stringData: {{token: {exact}}}\n")).is_ok());
    }

    #[test]
    fn built_in_types_require_their_keys() {
        assert_eq!(
            decode(&format!(
                "{HEAD}type: kubernetes.io/tls\nstringData: {{tls.crt: x}}\n"
            ))
            .unwrap_err(),
            ["data[tls.key]: required"]
        );
        assert_eq!(
            decode(&format!(
                "{HEAD}type: kubernetes.io/basic-auth\nstringData: {{x: y}}\n"
            ))
            .unwrap_err(),
            ["data: required: set one of data[username], data[password]"]
        );
        assert!(decode(&format!("{HEAD}type: example.com/custom\nimmutable: true\n")).is_ok());
    }
}
