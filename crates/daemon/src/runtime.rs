//! The engine's storage for the standalone runtime: certificate files written atomically into
//! each certificate's output directory, state in the embedded database, hooks after a change
//! and the `verify` check (the engine's `apply`: a failure there is class `apply`), and one log
//! line per decision.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use certkeeper_core::{FailureClass, Secret};
use certkeeper_engine::outputs::output_items;
use certkeeper_engine::state::CertState;
use certkeeper_engine::{CertId, CertJob, EngineEvent, Issued, Runtime, RuntimeError};

use crate::config::CertOutput;
use crate::hooks::{HookError, run_hooks};
use crate::model::CertMeta;
use crate::output::{OutputFile, Owner, read_current, write_atomic};
use crate::statedb::StateDb;
use crate::verify::{VerifyError, check, written_leaf};

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
        Ok(())
    }

    async fn apply(&self, job: &CertJob) -> Result<(), RuntimeError> {
        let result = match self.meta(&job.id) {
            Some(meta) => apply_output(&job.id, &meta.output).await,
            None => Err(ApplyError::NoOutput(job.id.to_string())),
        };
        result.map_err(|e| RuntimeError {
            class: e.class(),
            message: e.to_string(),
        })
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

/// Why a stored certificate is not (yet) in use.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Hook(#[from] HookError),
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error("certificate {0} has no output settings")]
    NoOutput(String),
    #[error("the verify check stopped without a result: {0}")]
    VerifyTask(String),
}

impl ApplyError {
    /// Always [`FailureClass::Apply`]: the certificate is stored; the hooks and the check are
    /// retried, the certificate is not issued again.
    pub fn class(&self) -> FailureClass {
        FailureClass::Apply
    }
}

/// Runs the hooks of `output`, then checks that each `verify` address serves the leaf of the
/// `tls.crt` written there. A served certificate near its own expiry is said loudly.
pub async fn apply_output(id: &str, output: &CertOutput) -> Result<(), ApplyError> {
    run_hooks(id, output).await?;
    if output.verify.is_empty() {
        return Ok(());
    }
    let (dir, targets) = (output.dir.clone(), output.verify.clone());
    let checked = tokio::task::spawn_blocking(move || -> Result<usize, VerifyError> {
        let path = dir.join(TLS_CRT);
        let shown = path.display().to_string();
        let pem = std::fs::read_to_string(&path).map_err(|e| VerifyError::Written {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
        let leaf = written_leaf(&pem, &shown)?;
        for target in &targets {
            check(target, &leaf)?;
        }
        Ok(targets.len())
    })
    .await
    .map_err(|e| ApplyError::VerifyTask(e.to_string()))?;
    match checked {
        Ok(n) => {
            tracing::info!(
                certificate = id,
                addresses = n,
                "verified: every address serves the certificate written"
            );
            Ok(())
        }
        Err(e) => {
            if e.near_expiry() {
                tracing::warn!(certificate = id, error = %e,
                               "THE CERTIFICATE SERVED IS NEAR ITS EXPIRY and is not the one written");
            }
            Err(e.into())
        }
    }
}

/// Poll interval for renew requests written by `certkeeper renew`.
pub const RENEW_POLL: Duration = Duration::from_secs(1);
