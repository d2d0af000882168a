//! The embedded state database (redb): each certificate's [`CertState`] and pending renew-now
//! requests.
//!
//! redb is crash-safe (copy-on-write B-trees, atomic commits) and lets several processes open
//! one file, so `certkeeper status` and `certkeeper renew` read and write the same database the
//! daemon uses; the daemon picks renew requests up on its next poll.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use certkeeper_engine::state::CertState;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

const CERTS: TableDefinition<&str, &[u8]> = TableDefinition::new("certificates");
const RENEW: TableDefinition<&str, i64> = TableDefinition::new("renew_requests");
/// The key of a renew request for every certificate.
pub const RENEW_ALL: &str = "*";

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot open state database {path}: {source}")]
    Open {
        path: PathBuf,
        source: redb::DatabaseError,
    },
    #[error("state database {path}: {source}")]
    Access { path: PathBuf, source: redb::Error },
    #[error("state database {path}: entry {key:?} is unreadable: {source}")]
    Corrupt {
        path: PathBuf,
        key: String,
        source: serde_json::Error,
    },
}

#[derive(Debug)]
pub struct StateDb {
    db: Database,
    path: PathBuf,
}

impl StateDb {
    /// Open (or create) the database, creating its tables so readers never miss them.
    pub fn open(path: &Path) -> Result<Self, StateError> {
        let db = Database::create(path).map_err(|source| StateError::Open {
            path: path.to_owned(),
            source,
        })?;
        let this = StateDb {
            db,
            path: path.to_owned(),
        };
        this.write(|txn| {
            txn.open_table(CERTS)?;
            txn.open_table(RENEW)?;
            Ok(())
        })?;
        Ok(this)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, e: impl Into<redb::Error>) -> StateError {
        StateError::Access {
            path: self.path.clone(),
            source: e.into(),
        }
    }

    fn write<T>(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<T, redb::Error>,
    ) -> Result<T, StateError> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        let out = f(&txn).map_err(|e| self.err(e))?;
        txn.commit().map_err(|e| self.err(e))?;
        Ok(out)
    }

    /// Every certificate's state, by id.
    pub fn load_all(&self) -> Result<BTreeMap<String, CertState>, StateError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(CERTS).map_err(|e| self.err(e))?;
        let mut out = BTreeMap::new();
        for entry in table.iter().map_err(|e| self.err(e))? {
            let (k, v) = entry.map_err(|e| self.err(e))?;
            let key = k.value().to_owned();
            let state = serde_json::from_slice(v.value()).map_err(|source| StateError::Corrupt {
                path: self.path.clone(),
                key: key.clone(),
                source,
            })?;
            out.insert(key, state);
        }
        Ok(out)
    }

    pub fn get(&self, id: &str) -> Result<Option<CertState>, StateError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(CERTS).map_err(|e| self.err(e))?;
        let Some(v) = table.get(id).map_err(|e| self.err(e))? else {
            return Ok(None);
        };
        serde_json::from_slice(v.value())
            .map(Some)
            .map_err(|source| StateError::Corrupt {
                path: self.path.clone(),
                key: id.to_owned(),
                source,
            })
    }

    pub fn put(&self, id: &str, state: &CertState) -> Result<(), StateError> {
        let bytes = serde_json::to_vec(state).map_err(|source| StateError::Corrupt {
            path: self.path.clone(),
            key: id.to_owned(),
            source,
        })?;
        self.write(|txn| {
            txn.open_table(CERTS)?.insert(id, bytes.as_slice())?;
            Ok(())
        })
    }

    pub fn remove(&self, id: &str) -> Result<(), StateError> {
        self.write(|txn| {
            txn.open_table(CERTS)?.remove(id)?;
            Ok(())
        })
    }

    /// Ask for `id` (or [`RENEW_ALL`]) to be issued now, bypassing any backoff.
    pub fn request_renew(&self, id: &str, at: i64) -> Result<(), StateError> {
        self.write(|txn| {
            txn.open_table(RENEW)?.insert(id, at)?;
            Ok(())
        })
    }

    /// Take every pending renew request (ids, possibly [`RENEW_ALL`]).
    pub fn take_renew_requests(&self) -> Result<Vec<String>, StateError> {
        // Most polls find nothing: check with a read transaction before taking the write lock.
        {
            let txn = self.db.begin_read().map_err(|e| self.err(e))?;
            let table = txn.open_table(RENEW).map_err(|e| self.err(e))?;
            if table.is_empty().map_err(|e| self.err(e))? {
                return Ok(Vec::new());
            }
        }
        self.write(|txn| {
            let mut table = txn.open_table(RENEW)?;
            let mut ids = Vec::new();
            for entry in table.iter()? {
                ids.push(entry?.0.value().to_owned());
            }
            for id in &ids {
                table.remove(id.as_str())?;
            }
            Ok(ids)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use certkeeper_core::FailureClass;
    use certkeeper_engine::state::FailureRecord;

    fn sample() -> CertState {
        CertState {
            revision: 2,
            issued: None,
            failure: Some(FailureRecord {
                class: FailureClass::Rejected,
                message: "common name x not allowed by this role".into(),
                attempts: 3,
                first_failure: 1,
                last_failure: 2,
                next_attempt: Some(3),
                spec_fingerprint: 9,
            }),
        }
    }

    #[test]
    fn states_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        {
            let db = StateDb::open(&path).unwrap();
            db.put("default/web", &sample()).unwrap();
            db.put("default/api", &CertState::default()).unwrap();
            db.remove("default/api").unwrap();
        }
        let db = StateDb::open(&path).unwrap();
        let all = db.load_all().unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all["default/web"], sample());
        assert_eq!(db.get("default/web").unwrap(), Some(sample()));
        assert_eq!(db.get("nope").unwrap(), None);
    }

    #[test]
    fn renew_requests_are_taken_once_across_handles() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let daemon = StateDb::open(&path).unwrap();
        assert!(daemon.take_renew_requests().unwrap().is_empty());
        daemon.request_renew("default/web", 5).unwrap();
        daemon.request_renew(RENEW_ALL, 6).unwrap();
        let mut got = daemon.take_renew_requests().unwrap();
        got.sort();
        assert_eq!(got, vec![RENEW_ALL.to_owned(), "default/web".to_owned()]);
        assert!(daemon.take_renew_requests().unwrap().is_empty());
    }
}
