//! One row per certificate, as `certkeeper status` and `/api/v1/status` show it, then one row
//! per manifest problem (a file or document left out, an object that cannot run).
//!
//! Problem rows share the certificates' list so that every reader of `/api/v1/status` keeps
//! working (the list stays a list of rows with `name`, `ready` and `revision`); they are told
//! apart by `manifestProblem`, and their names (`Certificate default/web`, a file) never collide
//! with a certificate's `namespace/name`.

use serde::Serialize;

use certkeeper_core::time::{rfc3339_unix, to_unix};
use certkeeper_engine::state::{CertState, Readiness};
use certkeeper_engine::{CertJob, CertStatus};

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StatusRow {
    pub name: String,
    pub issuer: String,
    pub ready: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
    /// When automatic renewal starts; absent when it is disabled (see `renewal_note`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renewal_time: Option<String>,
    /// Why the renewal time is what it is: automatic renewal disabled, or forced outside the
    /// renewal windows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewal_note: Option<String>,
    pub revision: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<FailureRow>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// A manifest problem as a row of the status list: a certificate row's `name`, `issuer` (empty),
/// `ready` (false) and `revision` (0), so that readers of the list keep working, and what is
/// wrong in `manifestProblem`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ProblemStatusRow {
    pub name: String,
    pub issuer: String,
    pub ready: bool,
    pub revision: u64,
    pub manifest_problem: ProblemRow,
}

impl ProblemStatusRow {
    /// The row of one problem, named `name` (an object, or a file's place).
    pub fn new(name: String, problem: ProblemRow) -> Self {
        ProblemStatusRow {
            name,
            issuer: String::new(),
            ready: false,
            revision: 0,
            manifest_problem: problem,
        }
    }
}

/// What was left out, or cannot run, and why.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ProblemRow {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<usize>,
    /// "Certificate default/web", "Issuer/default/vault", when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    pub message: String,
}

/// The status list as JSON: the certificates' rows, then the problems' rows.
pub fn status_json(rows: &[StatusRow], problems: &[ProblemStatusRow]) -> String {
    #[derive(Serialize)]
    #[serde(untagged)]
    enum Row<'a> {
        Certificate(&'a StatusRow),
        Problem(&'a ProblemStatusRow),
    }
    let all: Vec<Row<'_>> = rows
        .iter()
        .map(Row::Certificate)
        .chain(problems.iter().map(Row::Problem))
        .collect();
    serde_json::to_string_pretty(&all).unwrap_or_else(|_| "[]".into())
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
        name: job.id.to_string(),
        issuer: job.issuer.to_string(),
        ready: Readiness::of(issued, job.fingerprint, now).is_ready(),
        not_after: issued.map(|i| rfc3339_unix(i.not_after)),
        renewal_time: issued.and_then(|i| i.renewal_time).map(rfc3339_unix),
        renewal_note: issued
            .and_then(|i| i.renewal_note.as_ref())
            .map(|n| n.message().to_owned()),
        revision: state.revision,
        serial: issued.map(|i| i.serial.clone()),
        last_failure: state.failure.as_ref().map(|f| FailureRow {
            class: f.class.as_str().to_owned(),
            message: f.message.clone(),
            attempts: f.attempts,
            first_failure: rfc3339_unix(f.first_failure),
            last_failure: rfc3339_unix(f.last_failure),
            next_attempt: f
                .next_attempt
                .map_or_else(|| "on change".to_owned(), rfc3339_unix),
        }),
        // A held re-issue says so first: it is what to look at (a loop deleting the Secret,
        // a spec flapping).
        warning: state
            .deferred
            .as_deref()
            .map(certkeeper_engine::state::BudgetDeferral::message)
            .or_else(|| issued.and_then(|i| i.warning.clone())),
    }
}

impl StatusRow {
    /// Stored, but not in use: a hook failed or a `verify` address serves another certificate
    /// (class `apply`). Such a row is ready (the certificate is valid) yet not well.
    pub fn apply_failing(&self) -> bool {
        self.last_failure
            .as_ref()
            .is_some_and(|f| f.class == certkeeper_core::FailureClass::Apply.as_str())
    }

    /// Ready and in use: what `certkeeper status` exits 0 for.
    pub fn is_well(&self) -> bool {
        self.ready && !self.apply_failing()
    }
}

pub fn rows_from_engine(statuses: &[CertStatus]) -> Vec<StatusRow> {
    let now = to_unix(std::time::SystemTime::now());
    let mut rows: Vec<StatusRow> = statuses.iter().map(|s| row(&s.job, &s.state, now)).collect();
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    rows
}

/// The RENEWAL cell: the time, `disabled`, or the time marked as outside the windows.
fn renewal_cell(r: &StatusRow) -> String {
    match (&r.renewal_time, &r.renewal_note) {
        (Some(time), Some(_)) => format!("{time} (outside windows)"),
        (Some(time), None) => time.clone(),
        (None, Some(_)) => "disabled".to_owned(),
        (None, None) => "-".to_owned(),
    }
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
            renewal_cell(r),
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

/// The manifest problems for people, one a line under a heading; empty without any.
pub fn problems_table(problems: &[ProblemStatusRow]) -> String {
    let mut out = String::new();
    if !problems.is_empty() {
        out.push_str("MANIFEST PROBLEMS (left out; everything else runs)\n");
        for p in problems.iter().map(|r| &r.manifest_problem) {
            let mut place = p.file.clone().unwrap_or_default();
            if let Some(document) = p.document {
                place.push_str(&format!(": document {document}"));
            }
            if let Some(item) = p.item {
                place.push_str(&format!(", item {item}"));
            }
            let line = match (place.is_empty(), &p.object) {
                (false, Some(object)) => format!("{place} ({object}): {}", p.message),
                (false, None) => format!("{place}: {}", p.message),
                (true, Some(object)) => format!("{object}: {}", p.message),
                (true, None) => p.message.clone(),
            };
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failing(class: &str) -> StatusRow {
        StatusRow {
            name: "default/web".into(),
            issuer: "Issuer/default/vault".into(),
            ready: true,
            not_after: None,
            renewal_time: None,
            renewal_note: None,
            revision: 1,
            serial: None,
            last_failure: Some(FailureRow {
                class: class.into(),
                message: "hook 0 (nginx) exited with exit status: 1".into(),
                attempts: 2,
                first_failure: String::new(),
                last_failure: String::new(),
                next_attempt: String::new(),
            }),
            warning: None,
        }
    }

    #[test]
    fn a_ready_certificate_whose_hooks_fail_is_not_well() {
        assert!(failing("apply").apply_failing() && !failing("apply").is_well());
        // Vault failing while the served certificate is still good: ready and well, as before.
        assert!(failing("transient").is_well());
        let not_ready = StatusRow {
            ready: false,
            last_failure: None,
            ..failing("apply")
        };
        assert!(!not_ready.is_well());
        assert!(table(&[failing("apply")]).contains("apply x2: hook 0 (nginx) exited"));
    }
}
