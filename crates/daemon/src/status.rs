//! One row per certificate, as `certkeeper status` and `/api/v1/status` show it.

use serde::Serialize;

use certkeeper_engine::state::{CertState, to_unix};
use certkeeper_engine::{CertJob, CertStatus};

use crate::runtime::rfc3339;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StatusRow {
    pub name: String,
    pub issuer: String,
    pub ready: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renewal_time: Option<String>,
    pub revision: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<FailureRow>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct FailureRow {
    pub class: String,
    pub message: String,
    pub attempts: u32,
    pub first_failure: String,
    pub last_failure: String,
    /// RFC 3339, or "on change" when it waits for the spec, issuer or a file to change.
    pub next_attempt: String,
}

/// A row from a job and its persisted state, `now` in Unix seconds.
pub fn row(job: &CertJob, state: &CertState, now: i64) -> StatusRow {
    let issued = state.issued.as_ref();
    StatusRow {
        name: job.id.clone(),
        issuer: job.issuer.clone(),
        ready: issued.is_some_and(|i| i.not_after > now && i.spec_fingerprint == job.fingerprint),
        not_after: issued.map(|i| rfc3339(i.not_after)),
        renewal_time: issued.map(|i| rfc3339(i.renewal_time)),
        revision: state.revision,
        serial: issued.map(|i| i.serial.clone()),
        last_failure: state.failure.as_ref().map(|f| FailureRow {
            class: f.class.as_str().to_owned(),
            message: f.message.clone(),
            attempts: f.attempts,
            first_failure: rfc3339(f.first_failure),
            last_failure: rfc3339(f.last_failure),
            next_attempt: f.next_attempt.map_or_else(|| "on change".to_owned(), rfc3339),
        }),
        warning: issued.and_then(|i| i.warning.clone()),
    }
}

pub fn rows_from_engine(statuses: &[CertStatus]) -> Vec<StatusRow> {
    let now = to_unix(std::time::SystemTime::now());
    let mut rows: Vec<StatusRow> = statuses.iter().map(|s| row(&s.job, &s.state, now)).collect();
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    rows
}

/// A fixed-width table for people.
pub fn table(rows: &[StatusRow]) -> String {
    let mut lines = vec![[
        "NAME".to_owned(),
        "READY".to_owned(),
        "NOT AFTER".to_owned(),
        "RENEWAL".to_owned(),
        "LAST FAILURE".to_owned(),
        "NEXT ATTEMPT".to_owned(),
    ]];
    for r in rows {
        let (failure, next) = match &r.last_failure {
            Some(f) => {
                let mut msg: String = f.message.chars().take(60).collect();
                if f.message.chars().count() > 60 {
                    msg.push_str("...");
                }
                (
                    format!("{} x{}: {msg}", f.class, f.attempts),
                    f.next_attempt.clone(),
                )
            }
            None => ("-".to_owned(), "-".to_owned()),
        };
        lines.push([
            r.name.clone(),
            if r.ready { "True" } else { "False" }.to_owned(),
            r.not_after.clone().unwrap_or_else(|| "-".into()),
            r.renewal_time.clone().unwrap_or_else(|| "-".into()),
            failure,
            next,
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|c| lines.iter().map(|l| l[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for l in &lines {
        let cells: Vec<String> = l.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}
