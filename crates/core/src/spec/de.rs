//! Decoding a YAML value into the spec types with field paths and collected unknown fields.
//!
//! serde alone stops at the first problem and its messages do not say where in the object it
//! is. This deserializer walks a parsed [`Value`] and
//! - reports every unknown field of every struct it enters (with its path) instead of failing on
//!   the first, while still decoding the known fields, and
//! - attaches the path of the value being decoded to any type error (`spec.privateKey.size:
//!   invalid type: string "big", expected u32`).
//!
//! Why unknown fields are errors here: cert-manager's CRDs are structural, and a typo such as
//! `renewBefor` would otherwise be dropped silently and the certificate renewed on the default
//! schedule. The spec types themselves do not deny unknown fields, so decoding objects that a
//! newer cert-manager CRD (or the API server) adds fields to keeps working with plain serde.
//!
//! A null field value counts as absent, as it does when Go decodes the object.
//!
//! A type error still ends the decoding of that object: serde cannot resume a struct after a
//! field failed. The caller reports it along with the unknown fields found so far.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Visitor};
use serde_yaml_ng::Value;

use super::error::{FieldError, FieldPath, Problem};
use super::meta::IGNORED_META_FIELDS;

/// Fields that are recognised but deliberately not decoded, per Rust struct name.
fn ignored_fields(struct_name: &str) -> &'static [&'static str] {
    match struct_name {
        "ObjectMeta" => IGNORED_META_FIELDS,
        // Top-level objects: type information is checked before decoding, status is output.
        "Certificate" | "Issuer" | "ClusterIssuer" | "CertkeeperIssuer" => &["apiVersion", "kind", "status"],
        _ => &[],
    }
}

/// Decodes `value` as `T`. Returns the value if it decoded, and every problem found: unknown
/// fields (which do not stop decoding) and at most one type error (which does).
pub(super) fn decode<T: DeserializeOwned>(value: &Value, path: FieldPath) -> (Option<T>, Vec<FieldError>) {
    let sink = RefCell::new(Vec::new());
    let result = T::deserialize(ValueDeserializer {
        value,
        path: path.clone(),
        sink: &sink,
    });
    let mut errors = sink.into_inner();
    match result {
        Ok(decoded) => (Some(decoded), errors),
        Err(error) => {
            errors.push(error.into_field_error(&path));
            (None, errors)
        }
    }
}

/// A decoding error, located by the innermost value that raised it.
#[derive(Debug)]
pub(super) struct Error {
    path: Option<FieldPath>,
    /// Set by `missing_field`: the path is the struct's plus this field.
    missing: Option<&'static str>,
    problem: Problem,
}

impl Error {
    fn at(mut self, path: &FieldPath) -> Self {
        if self.path.is_none() {
            self.path = Some(match self.missing {
                Some(field) => path.field(field),
                None => path.clone(),
            });
        }
        self
    }

    fn into_field_error(self, fallback: &FieldPath) -> FieldError {
        let Error { path, problem, .. } = self.at(fallback);
        FieldError::new(path.unwrap_or_default(), problem)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.problem.fmt(f)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error {
            path: None,
            missing: None,
            problem: Problem::Decode(msg.to_string()),
        }
    }

    fn missing_field(field: &'static str) -> Self {
        Error {
            path: None,
            missing: Some(field),
            problem: Problem::Required,
        }
    }
}

struct ValueDeserializer<'a> {
    value: &'a Value,
    path: FieldPath,
    sink: &'a RefCell<Vec<FieldError>>,
}

impl<'a> ValueDeserializer<'a> {
    fn child(&self, value: &'a Value, path: FieldPath) -> Self {
        ValueDeserializer {
            value,
            path,
            sink: self.sink,
        }
    }

    /// Entries of a mapping; keys must be strings, as in JSON and so in Kubernetes objects.
    fn entries(&self, mapping: &'a serde_yaml_ng::Mapping) -> Result<Vec<(&'a str, &'a Value)>, Error> {
        mapping
            .iter()
            .map(|(k, v)| match k.as_str() {
                Some(key) => Ok((key, v)),
                None => Err(de::Error::custom("mapping keys must be strings")),
            })
            .collect()
    }
}

macro_rules! forward {
    ($($method:ident)*) => {
        $(fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            self.deserialize_any(visitor)
        })*
    };
}

impl<'de> de::Deserializer<'de> for ValueDeserializer<'_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let result = match self.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    visitor.visit_u64(u)
                } else if let Some(i) = n.as_i64() {
                    visitor.visit_i64(i)
                } else {
                    visitor.visit_f64(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Value::String(s) => visitor.visit_str(s),
            Value::Sequence(items) => visitor.visit_seq(SeqAccess {
                items: items.iter().enumerate(),
                parent: &self,
            }),
            Value::Mapping(mapping) => {
                let entries = self.entries(mapping).map_err(|e| e.at(&self.path))?;
                visitor.visit_map(MapAccess {
                    entries: entries.into_iter(),
                    pending: None,
                    parent: &self,
                    fields: false,
                })
            }
            Value::Tagged(tagged) => Err(de::Error::custom(format_args!(
                "YAML tag {} is not supported",
                tagged.tag
            ))),
        };
        result.map_err(|e| e.at(&self.path))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Null => visitor.visit_none().map_err(|e: Error| e.at(&self.path)),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        // Every cert-manager enum is a plain string.
        let Value::String(s) = self.value else {
            return self.deserialize_any(visitor);
        };
        visitor
            .visit_enum(s.as_str().into_deserializer())
            .map_err(|e: Error| e.at(&self.path))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let Value::Mapping(mapping) = self.value else {
            return self.deserialize_any(visitor);
        };
        let entries = self.entries(mapping).map_err(|e| e.at(&self.path))?;
        let ignored = ignored_fields(name);
        let mut known = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            if fields.contains(&key) {
                // Go decodes JSON null into a field as "not set", and Kubernetes objects
                // follow: `secretName:` with no value is an empty secretName.
                if !value.is_null() {
                    known.push((key, value));
                }
            } else if !ignored.contains(&key) {
                let error = FieldError::new(self.path.field(key.to_owned()), Problem::UnknownField);
                self.sink.borrow_mut().push(error);
            }
        }
        let access = MapAccess {
            entries: known.into_iter(),
            pending: None,
            parent: &self,
            fields: true,
        };
        visitor.visit_map(access).map_err(|e| e.at(&self.path))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    forward! {
        deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128
        deserialize_f32 deserialize_f64 deserialize_char deserialize_str deserialize_string
        deserialize_bytes deserialize_byte_buf deserialize_unit deserialize_seq deserialize_map
        deserialize_identifier
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_any(visitor)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_any(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_any(visitor)
    }
}

struct SeqAccess<'a, 'p> {
    items: std::iter::Enumerate<std::slice::Iter<'a, Value>>,
    parent: &'p ValueDeserializer<'a>,
}

impl<'de> de::SeqAccess<'de> for SeqAccess<'_, '_> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, Error> {
        match self.items.next() {
            Some((index, value)) => {
                let path = self.parent.path.index(index);
                // Errors raised by a `Deserialize` impl after our methods returned (a duration
                // that does not parse) are located here.
                seed.deserialize(self.parent.child(value, path.clone()))
                    .map(Some)
                    .map_err(|e| e.at(&path))
            }
            None => Ok(None),
        }
    }
}

struct MapAccess<'a, 'p> {
    entries: std::vec::IntoIter<(&'a str, &'a Value)>,
    pending: Option<(&'a str, &'a Value)>,
    parent: &'p ValueDeserializer<'a>,
    /// Struct fields print as `.field`, map keys (labels, annotations) as `[key]`.
    fields: bool,
}

impl<'de> de::MapAccess<'de> for MapAccess<'_, '_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Error> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        self.pending = Some((key, value));
        seed.deserialize(key.into_deserializer()).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let (key, value) = self
            .pending
            .take()
            .ok_or_else(|| de::Error::custom("value requested before key"))?;
        let path = if self.fields {
            self.parent.path.field(key.to_owned())
        } else {
            self.parent.path.key(key)
        };
        seed.deserialize(self.parent.child(value, path.clone()))
            .map_err(|e| e.at(&path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::collections::BTreeMap;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "camelCase")]
    struct Inner {
        #[serde(default)]
        size: u32,
        #[serde(default)]
        labels: BTreeMap<String, String>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "camelCase")]
    struct Outer {
        name: String,
        #[serde(default)]
        inner: Option<Inner>,
        #[serde(default)]
        items: Vec<Inner>,
    }

    fn run(yaml: &str) -> (Option<Outer>, Vec<String>) {
        let value: Value = serde_yaml_ng::from_str(yaml).unwrap();
        let (decoded, errors) = decode::<Outer>(&value, FieldPath::parse("spec"));
        (decoded, errors.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn collects_every_unknown_field_and_keeps_decoding() {
        let (decoded, errors) = run("name: x\nnmae: y\ninner: {size: 3, colour: red}\nitems: [{sise: 1}]\n");
        assert_eq!(
            errors,
            [
                "spec.nmae: unknown field",
                "spec.inner.colour: unknown field",
                "spec.items[0].sise: unknown field"
            ]
        );
        assert_eq!(decoded.unwrap().inner.unwrap().size, 3);
    }

    #[test]
    fn type_errors_carry_the_path() {
        let (decoded, errors) = run("name: x\nitems: [{size: 1}, {size: big}]\n");
        assert!(decoded.is_none());
        assert_eq!(
            errors,
            ["spec.items[1].size: invalid type: string \"big\", expected u32"]
        );
        let (_, errors) = run("name: x\ninner: {labels: {app.kubernetes.io/name: [1]}}\n");
        assert_eq!(errors.len(), 1);
        assert!(errors[0].starts_with("spec.inner.labels[app.kubernetes.io/name]: invalid type: sequence"));
    }

    #[test]
    fn null_fields_count_as_absent_but_unknown_ones_are_still_reported() {
        let (decoded, errors) = run("name: x\ninner:\nitems:\ntypo:\n");
        assert_eq!(errors, ["spec.typo: unknown field"]);
        assert_eq!(
            decoded.unwrap(),
            Outer {
                name: "x".into(),
                inner: None,
                items: vec![]
            }
        );
    }

    #[test]
    fn missing_required_field_is_named() {
        let (_, errors) = run("inner: {size: 1}\n");
        assert_eq!(errors, ["spec.name: required"]);
    }
}
