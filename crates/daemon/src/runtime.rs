//! The engine's storage for the standalone runtime: certificate files written atomically into
//! each certificate's output directory, state in the embedded database, hooks after a change,
//! and one log line per decision.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use certkeeper_core::{FailureClass, Secret};
use certkeeper_engine::outputs::output_items;
use certkeeper_engine::state::CertState;
use certkeeper_engine::{CertId, CertJob, EngineEvent, Issued, Runtime, RuntimeError};

use crate::hooks::run_hooks;
use crate::model::CertMeta;
use crate::output::{OutputFile, Owner, read_current, write_atomic};
use crate::statedb::StateDb;

/// File names, as cert-manager names the keys of its Secret.
pub use certkeeper_engine::outputs::{
    CA_CRT, COMBINED_PEM, KEY_DER, KEYSTORE_JKS, KEYSTORE_P12, TLS_CRT, TLS_KEY, TRUSTSTORE_JKS,
    TRUSTSTORE_P12,
};

#[derive(Debug)]
pub struct FileRuntime {
    db: Arc<StateDb>,
    metas: RwLock<HashMap<CertId, CertMeta>>,
}

impl FileRuntime {
    pub fn new(db: Arc<StateDb>) -> Self {
        FileRuntime {
            db,
            metas: RwLock::new(HashMap::new()),
        }
    }

    /// Replace the output settings after a (re)load.
    pub fn set_metas(&self, metas: HashMap<CertId, CertMeta>) {
        *self
            .metas
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = metas;
    }

    fn meta(&self, id: &str) -> Option<CertMeta> {
        self.metas
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(id)
            .cloned()
    }
}

/// The files of one issued certificate (the engine's [`output_items`], with the configured
/// modes: key material with the key's mode, the rest with the certificate's).
pub async fn output_files(
    meta: &CertMeta,
    issued: &Issued,
    encoding: certkeeper_core::pki::KeyEncoding,
) -> Result<Vec<OutputFile>, RuntimeError> {
    let out = &meta.output;
    let items = output_items(&meta.formats, issued, encoding).await?;
    Ok(items
        .into_iter()
        .map(|item| OutputFile {
            name: item.name.into(),
            contents: item.contents,
            mode: if item.private { out.key_mode } else { out.cert_mode },
        })
        .collect())
}

impl Runtime for FileRuntime {
    async fn current_key(&self, job: &CertJob) -> Option<Secret> {
        let output = self.meta(&job.id)?.output;
        let owner = Owner {
            uid: output.user,
            gid: output.group,
        };
        let read = tokio::task::spawn_blocking(move || read_current(&output.dir, TLS_KEY, owner))
            .await
            .ok()?;
        let bytes = match read {
            Ok(bytes) => bytes?,
            // A key that is not certainly ours is not reused; the write that follows refuses
            // the directory if it is still tampered with.
            Err(e) => {
                tracing::warn!(certificate = %job.id, error = %e, "not reusing the key on disk");
                return None;
            }
        };
        String::from_utf8(bytes).ok().map(Secret::new)
    }

    async fn write(&self, job: &CertJob, issued: &Issued) -> Result<(), RuntimeError> {
        let meta = self.meta(&job.id).ok_or_else(|| RuntimeError {
            class: FailureClass::Invalid,
            message: format!("certificate {} has no output settings", job.id),
        })?;
        let files = output_files(&meta, issued, job.key_encoding).await?;
        let dir = meta.output.dir.clone();
        let owner = Owner {
            uid: meta.output.user,
            gid: meta.output.group,
        };
        tokio::task::spawn_blocking(move || write_atomic(&dir, &files, owner))
            .await
            .map_err(|e| RuntimeError {
                class: FailureClass::Transient,
                message: format!("write task failed: {e}"),
            })?
            .map_err(|e| RuntimeError {
                class: e.class(),
                message: e.to_string(),
            })?;
        run_hooks(&job.id, &meta.output).await;
        Ok(())
    }

    async fn save_states(&self, states: Vec<(CertId, CertState)>) -> Result<(), RuntimeError> {
        if states.is_empty() {
            return Ok(());
        }
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || db.put_many(&states))
            .await
            .map_err(|e| RuntimeError {
                class: FailureClass::Transient,
                message: format!("state task failed: {e}"),
            })?
            .map_err(|e| RuntimeError {
                class: FailureClass::Transient,
                message: e.to_string(),
            })
    }

    fn event(&self, job: &CertJob, event: EngineEvent) {
        event.log(&job.id);
    }
}

/// Poll interval for renew requests written by `certkeeper renew`.
pub const RENEW_POLL: Duration = Duration::from_secs(1);
