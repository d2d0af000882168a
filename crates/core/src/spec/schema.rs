//! JSON schemas (`schemars`) for the types whose serde form is hand-written, and the schema
//! helpers the derives refer to. The CRD generator (`certkeeper-crds`) turns these into the
//! structural OpenAPI v3 schemas of `deploy/crds/`.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

use super::duration::GoDuration;
use super::syntax::Base64Bytes;
use crate::FailureClass;

/// A Go `time.Duration` string (`2160h`, `1h30m`), as cert-manager's `metav1.Duration`.
impl JsonSchema for GoDuration {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "GoDuration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string" })
    }
}

/// A Go `[]byte`: standard base64 text, which the API server checks (`format: byte`).
impl JsonSchema for Base64Bytes {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "Base64Bytes".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "format": "byte" })
    }
}

/// `spec.renewal.windows` as cert-manager's CRD types it: `cron` and `windowDuration` required,
/// `cron` and `timezone` not empty, `windowDuration` a Go duration in s, m or h, an atomic list.
pub(super) fn renewal_windows(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "x-kubernetes-list-type": "atomic",
        "description": "`windows` mentions the behavior of when the renewal must happen.",
        "items": {
            "type": "object",
            "description": "CertificateRenewalWindows is the definition for renewal windows",
            "required": ["cron", "windowDuration"],
            "properties": {
                "cron": {
                    "type": "string",
                    "minLength": 1,
                    "description": "`cron` is a cron compliant string (minute hour day-of-month month day-of-week) to allow when the renewal should be allowed."
                },
                "timezone": {
                    "type": "string",
                    "minLength": 1,
                    "description": "`timezone` is IANA compliant timezone. For example America/Denver. If this field is not set, timezone is treated as UTC."
                },
                "windowDuration": {
                    "type": "string",
                    "pattern": "^([0-9]+(\\.[0-9]+)?(s|m|h))+$",
                    "description": "`windowDuration` is how long the cron definition is active for."
                }
            }
        }
    })
}

/// A Go `int`: an integer without a format (the API server checks no range), as cert-manager's
/// CRDs have it.
pub(super) fn go_int(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "integer" })
}

/// An RFC 3339 timestamp (Kubernetes `metav1.Time`), checked by the API server.
pub(super) fn date_time(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "string", "format": "date-time" })
}

/// [`FailureClass`] by its stable label (`transient`, `auth_rejected`, ..., `apply`): every
/// class, `apply` included since the controller checks served certificates
/// (`certkeeper.io/verify`).
pub(super) fn failure_class(_: &mut SchemaGenerator) -> Schema {
    let labels: Vec<&str> = FailureClass::ALL.iter().map(|c| c.as_str()).collect();
    json_schema!({ "type": "string", "enum": labels })
}
