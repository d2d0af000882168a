//! The embedded state database (redb) with each certificate's [`CertState`], and renew-now
//! requests.
//!
//! redb is crash-safe (copy-on-write B-trees, atomic commits). The daemon is the one writer
//! (single-writer mode); `certkeeper status` opens the same file read-only and sees its commits.
//! `certkeeper renew` leaves a request file in `<stateDir>/renew/` that the daemon takes on its
//! next poll, so the CLI never needs to write the database the daemon holds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use certkeeper_engine::CertId;
use certkeeper_engine::state::CertState;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

const CERTS: TableDefinition<&str, &[u8]> = TableDefinition::new("certificates");
/// The id of a renew request for every certificate.
pub const RENEW_ALL: &str = "*";
/// Directory (under the state directory) of renew request files.
const RENEW_DIR: &str = "renew";

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
    #[error("state database {path} is open read-only")]
    ReadOnly { path: PathBuf },
    #[error("renew request in {path}: {source}")]
    Request { path: PathBuf, source: std::io::Error },
}

enum Handle {
    Writer(Database),
    Reader(redb::ReadOnlyDatabase),
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Handle::Writer(_) => "Writer",
            Handle::Reader(_) => "Reader",
        })
    }
}

#[derive(Debug)]
pub struct StateDb {
    db: Handle,
    path: PathBuf,
}

/// redb's page cache. Its default (1 GiB) fills with every page written; the state is a few
/// hundred bytes per certificate, read once at start, so a small cache costs nothing.
const CACHE_BYTES: usize = 2 << 20;

fn builder() -> redb::Builder {
    let mut b = redb::Builder::new();
    b.set_concurrency_mode(redb::ConcurrencyMode::SingleWriter);
    b.set_cache_size(CACHE_BYTES);
    b
}

impl StateDb {
    /// Open (or create) the database for writing, creating its table so readers never miss it.
    pub fn open(path: &Path) -> Result<Self, StateError> {
        let db = builder().create(path).map_err(|source| StateError::Open {
            path: path.to_owned(),
            source,
        })?;
        let this = StateDb {
            db: Handle::Writer(db),
            path: path.to_owned(),
        };
        this.write(|txn| {
            txn.open_table(CERTS)?;
            Ok(())
        })?;
        Ok(this)
    }

    /// Open for reading, next to a running daemon that writes.
    pub fn open_read_only(path: &Path) -> Result<Self, StateError> {
        let db = builder()
            .open_read_only(path)
            .map_err(|source| StateError::Open {
                path: path.to_owned(),
                source,
            })?;
        Ok(StateDb {
            db: Handle::Reader(db),
            path: path.to_owned(),
        })
    }

    fn begin_read(&self) -> Result<redb::ReadTransaction, StateError> {
        match &self.db {
            Handle::Writer(db) => db.begin_read(),
            Handle::Reader(db) => db.begin_read(),
        }
        .map_err(|e| self.err(e))
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
        let Handle::Writer(db) = &self.db else {
            return Err(StateError::ReadOnly {
                path: self.path.clone(),
            });
        };
        let txn = db.begin_write().map_err(|e| self.err(e))?;
        let out = f(&txn).map_err(|e| self.err(e))?;
        txn.commit().map_err(|e| self.err(e))?;
        Ok(out)
    }

    /// The certificates table, or `None` in a database whose creator has not committed it yet
    /// (a reader that opens the file in the moment between the daemon creating it and its
    /// first commit).
    fn table(
        &self,
        txn: &redb::ReadTransaction,
    ) -> Result<Option<redb::ReadOnlyTable<&'static str, &'static [u8]>>, StateError> {
        match txn.open_table(CERTS) {
            Ok(t) => Ok(Some(t)),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Every certificate's state, by id.
    pub fn load_all(&self) -> Result<BTreeMap<String, CertState>, StateError> {
        let txn = self.begin_read()?;
        let mut out = BTreeMap::new();
        let Some(table) = self.table(&txn)? else {
            return Ok(out);
        };
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
        let txn = self.begin_read()?;
        let Some(table) = self.table(&txn)? else {
            return Ok(None);
        };
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

    /// Several states in one transaction (one commit).
    pub fn put_many(&self, states: &[(CertId, CertState)]) -> Result<(), StateError> {
        let mut encoded = Vec::with_capacity(states.len());
        for (id, state) in states {
            let bytes = serde_json::to_vec(state).map_err(|source| StateError::Corrupt {
                path: self.path.clone(),
                key: id.to_string(),
                source,
            })?;
            encoded.push((id.as_str(), bytes));
        }
        self.write(|txn| {
            let mut table = txn.open_table(CERTS)?;
            for (id, bytes) in &encoded {
                table.insert(*id, bytes.as_slice())?;
            }
            Ok(())
        })
    }

    pub fn remove(&self, id: &str) -> Result<(), StateError> {
        self.write(|txn| {
            txn.open_table(CERTS)?.remove(id)?;
            Ok(())
        })
    }
}

/// Ask for `id` (or [`RENEW_ALL`]) to be issued now, bypassing any backoff: a file in
/// `<state_dir>/renew/` that the daemon takes on its next poll.
pub fn request_renew(state_dir: &Path, id: &str) -> Result<(), StateError> {
    let dir = state_dir.join(RENEW_DIR);
    let err = |source| StateError::Request {
        path: dir.clone(),
        source,
    };
    std::fs::create_dir_all(&dir).map_err(err)?;
    let name = id.replace('%', "%25").replace('/', "%2F");
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, id).map_err(err)?;
    std::fs::rename(&tmp, dir.join(name)).map_err(err)
}

/// Take every pending renew request (ids, possibly [`RENEW_ALL`]).
pub fn take_renew_requests(state_dir: &Path) -> Result<Vec<String>, StateError> {
    let dir = state_dir.join(RENEW_DIR);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(StateError::Request { path: dir, source }),
    };
    let mut ids = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if let Ok(id) = std::fs::read_to_string(&path) {
            ids.push(id.trim().to_owned());
        }
        let _ = std::fs::remove_file(&path);
    }
    ids.sort();
    Ok(ids)
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
            deferred: None,
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
    fn renew_requests_are_taken_once() {
        let dir = tempfile::tempdir().unwrap();
        assert!(take_renew_requests(dir.path()).unwrap().is_empty());
        request_renew(dir.path(), "default/web").unwrap();
        request_renew(dir.path(), RENEW_ALL).unwrap();
        request_renew(dir.path(), "default/web").unwrap();
        let got = take_renew_requests(dir.path()).unwrap();
        assert_eq!(got, vec![RENEW_ALL.to_owned(), "default/web".to_owned()]);
        assert!(take_renew_requests(dir.path()).unwrap().is_empty());
    }
}
