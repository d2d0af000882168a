//! The standalone runtime's manifest problems as rows of the status list (see
//! [`certkeeper_serve::status::ProblemStatusRow`]).

use certkeeper_serve::status::{ProblemRow, ProblemStatusRow};

use crate::load::Loaded;

/// The rows of a load's problems: files and documents left out, then objects that cannot run.
pub fn problem_rows(loaded: &Loaded) -> Vec<ProblemStatusRow> {
    let manifest = loaded.manifest_problems.iter().map(|p| {
        let object = p.object.as_ref().map(ToString::to_string);
        let problem = ProblemRow {
            file: Some(p.file.display().to_string()),
            document: p.location.map(|l| l.document),
            item: p.location.and_then(|l| l.item),
            object: object.clone(),
            message: p.fault.to_string(),
        };
        ProblemStatusRow::new(object.unwrap_or_else(|| p.place()), problem)
    });
    let objects = loaded.problems.iter().map(|p| {
        let problem = ProblemRow {
            file: None,
            document: None,
            item: None,
            object: Some(p.source.clone()),
            message: p.message.clone(),
        };
        ProblemStatusRow::new(p.source.clone(), problem)
    });
    manifest.chain(objects).collect()
}
