//! Writing a certificate's files so that a reader never sees a key that does not match the
//! certificate beside it, and a crash at any point leaves the previous good set in place.
//!
//! The layout is the one Kubernetes uses for mounted Secrets (its "atomic writer"):
//!
//! ```text
//! <dir>/..a/ and <dir>/..b/                 two revisions of the files (tls.crt, tls.key, ca.crt, ...)
//! <dir>/..data -> ..a                       the current one
//! <dir>/tls.crt -> ..data/tls.crt           (one stable symlink per file name)
//! ```
//!
//! A new revision is written and fsynced into the slot `..data` does not point to (its files
//! are rewritten in place: no inode churn per renewal), then `..data` is replaced by `rename(2)`
//! of a new symlink: one atomic step flips every file at once. A kill -9 before that rename
//! leaves the old `..data` and its files untouched; after it, the new one. A reader that opens `tls.crt` and
//! `tls.key` through the stable names sees one revision unless the flip happens between its two
//! opens — the same guarantee Kubernetes gives; readers that need one read use the combined PEM.
//! Unlike Kubernetes (which writes a new directory per revision), a slot is reused two
//! revisions later: a reader that keeps a file open across two renewals sees it rewritten.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

/// One output file.
#[derive(Clone)]
pub struct OutputFile {
    /// File name inside the output directory (no separators).
    pub name: String,
    pub contents: Vec<u8>,
    pub mode: u32,
}

impl std::fmt::Debug for OutputFile {
    // Contents may be a private key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputFile")
            .field("name", &self.name)
            .field("bytes", &self.contents.len())
            .field("mode", &format_args!("{:o}", self.mode))
            .finish()
    }
}

/// Ownership to apply to written files (and the revision directory).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Owner {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}: {source}")]
pub struct OutputError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

const DATA: &str = "..data";
/// The two revision directories `..data` alternates between.
const SLOTS: [&str; 2] = ["..a", "..b"];
const DATA_TMP: &str = "..data_tmp";

fn io<T>(path: &Path, r: std::io::Result<T>) -> Result<T, OutputError> {
    r.map_err(|source| OutputError {
        path: path.to_owned(),
        source,
    })
}

/// Write `files` as the new revision of `dir`, atomically.
pub fn write_atomic(dir: &Path, files: &[OutputFile], owner: Owner) -> Result<(), OutputError> {
    for f in files {
        if f.name.is_empty() || f.name.contains('/') || f.name.starts_with("..") {
            let path = dir.join(&f.name);
            return Err(OutputError {
                path,
                source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a plain file name"),
            });
        }
    }
    io(dir, fs::create_dir_all(dir))?;
    let previous = fs::read_link(dir.join(DATA)).ok();
    // The slot ..data does not point to: its files are two revisions old and nobody is
    // directed to them any more.
    let slot = if previous.as_deref() == Some(Path::new(SLOTS[0])) {
        SLOTS[1]
    } else {
        SLOTS[0]
    };
    let rev = dir.join(slot);
    // Whether the slot's directory entries change (then the directory itself is fsynced).
    let mut entries_changed = false;
    if !rev.is_dir() {
        let _ = fs::remove_file(&rev);
        io(&rev, fs::create_dir(&rev))?;
        io(&rev, fs::set_permissions(&rev, fs::Permissions::from_mode(0o755)))?;
        entries_changed = true;
    }
    for f in files {
        let path = rev.join(&f.name);
        entries_changed |= !path.exists();
        // Rewritten in place: reusing the inode spares the filesystem an allocation and a
        // deletion per file and revision.
        let mut file = io(
            &path,
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(f.mode)
                .open(&path),
        )?;
        io(&path, file.write_all(&f.contents))?;
        // The mode given to open() is filtered by the umask (and an existing file keeps its
        // old mode): set it exactly.
        io(&path, file.set_permissions(fs::Permissions::from_mode(f.mode)))?;
        chown(&path, owner)?;
        io(&path, file.sync_all())?;
    }
    for entry in io(&rev, fs::read_dir(&rev))? {
        let entry = io(&rev, entry)?;
        if !files
            .iter()
            .any(|f| *f.name == *entry.file_name().to_string_lossy())
        {
            io(&entry.path(), fs::remove_file(entry.path()))?;
            entries_changed = true;
        }
    }
    chown(&rev, owner)?;
    if entries_changed {
        io(&rev, File::open(&rev).and_then(|d| d.sync_all()))?;
    }

    // Flip ..data in one rename.
    let tmp = dir.join(DATA_TMP);
    let _ = fs::remove_file(&tmp);
    io(&tmp, symlink(slot, &tmp))?;
    io(&dir.join(DATA), fs::rename(&tmp, dir.join(DATA)))?;

    // Stable names for every file of this revision; names no longer written are removed.
    for f in files {
        let link = dir.join(&f.name);
        let target = Path::new(DATA).join(&f.name);
        if fs::read_link(&link).ok().as_deref() != Some(target.as_path()) {
            let tmp = dir.join(format!("..{}.tmp", f.name));
            let _ = fs::remove_file(&tmp);
            io(&tmp, symlink(&target, &tmp))?;
            io(&link, fs::rename(&tmp, &link))?;
        }
    }
    if let Some(prev) = &previous {
        remove_stale_links(dir, prev, files)?;
    }
    io(dir, File::open(dir).and_then(|d| d.sync_all()))?;

    // Anything hidden that is not a slot (directories of an older layout, leftovers): only
    // possible when `..data` did not point to a slot before this write.
    if previous
        .as_deref()
        .is_some_and(|p| SLOTS.iter().any(|s| p == Path::new(s)))
    {
        return Ok(());
    }
    for entry in io(dir, fs::read_dir(dir))? {
        let entry = io(dir, entry)?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("..") && !SLOTS.contains(&&*name) && name != DATA && entry.path().is_dir() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
    Ok(())
}

/// Remove stable symlinks that pointed into `..data` for files the new revision no longer has.
fn remove_stale_links(dir: &Path, previous: &Path, files: &[OutputFile]) -> Result<(), OutputError> {
    let old_dir = dir.join(previous);
    let Ok(entries) = fs::read_dir(&old_dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if files.iter().any(|f| f.name == name) {
            continue;
        }
        let link = dir.join(&name);
        if fs::read_link(&link).is_ok_and(|t| t == Path::new(DATA).join(&name)) {
            io(&link, fs::remove_file(&link))?;
        }
    }
    Ok(())
}

/// Read a file of the current revision through its stable name.
pub fn read_current(dir: &Path, name: &str) -> Option<Vec<u8>> {
    fs::read(dir.join(name)).ok()
}

fn chown(path: &Path, owner: Owner) -> Result<(), OutputError> {
    if owner == Owner::default() {
        return Ok(());
    }
    let uid = owner.uid.map(nix::unistd::Uid::from_raw);
    let gid = owner.gid.map(nix::unistd::Gid::from_raw);
    nix::unistd::fchownat(
        nix::fcntl::AT_FDCWD,
        path,
        uid,
        gid,
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(|e| OutputError {
        path: path.to_owned(),
        source: e.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, contents: &str, mode: u32) -> OutputFile {
        OutputFile {
            name: name.into(),
            contents: contents.as_bytes().to_vec(),
            mode,
        }
    }

    #[test]
    fn revisions_flip_together_and_old_ones_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("web");
        write_atomic(
            &out,
            &[file("tls.crt", "cert1", 0o644), file("tls.key", "key1", 0o600)],
            Owner::default(),
        )
        .unwrap();
        assert_eq!(read_current(&out, "tls.crt").unwrap(), b"cert1");
        assert_eq!(read_current(&out, "tls.key").unwrap(), b"key1");
        let mode = fs::metadata(out.join("tls.key")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);

        write_atomic(
            &out,
            &[
                file("tls.crt", "cert2", 0o644),
                file("tls.key", "key2", 0o600),
                file("ca.crt", "ca", 0o644),
            ],
            Owner::default(),
        )
        .unwrap();
        assert_eq!(read_current(&out, "tls.crt").unwrap(), b"cert2");
        assert_eq!(read_current(&out, "tls.key").unwrap(), b"key2");
        assert_eq!(read_current(&out, "ca.crt").unwrap(), b"ca");

        // ca.crt dropped in the next revision: its stable name goes too.
        write_atomic(
            &out,
            &[file("tls.crt", "cert3", 0o644), file("tls.key", "key3", 0o600)],
            Owner::default(),
        )
        .unwrap();
        assert!(read_current(&out, "ca.crt").is_none());
        let hidden: Vec<_> = fs::read_dir(&out)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("..") && n != DATA)
            .collect();
        let mut hidden = hidden;
        hidden.sort();
        assert_eq!(hidden, SLOTS.map(String::from), "only the two slots remain");
        assert!(
            !out.join(SLOTS[0]).join("ca.crt").exists(),
            "files no longer written are removed"
        );
    }

    #[test]
    fn an_interrupted_write_leaves_the_previous_revision_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("web");
        write_atomic(
            &out,
            &[file("tls.crt", "cert1", 0o644), file("tls.key", "key1", 0o600)],
            Owner::default(),
        )
        .unwrap();
        // What a kill -9 in the middle of the next write leaves: a half-written revision
        // directory and a dangling ..data_tmp, but ..data untouched.
        let partial = out.join(SLOTS[1]);
        fs::create_dir(&partial).unwrap();
        fs::write(partial.join("tls.crt"), "cert2").unwrap();
        symlink(SLOTS[1], out.join(DATA_TMP)).unwrap();
        assert_eq!(read_current(&out, "tls.crt").unwrap(), b"cert1");
        assert_eq!(read_current(&out, "tls.key").unwrap(), b"key1");
        // The next write cleans up and succeeds.
        write_atomic(
            &out,
            &[file("tls.crt", "cert3", 0o644), file("tls.key", "key3", 0o600)],
            Owner::default(),
        )
        .unwrap();
        assert_eq!(read_current(&out, "tls.key").unwrap(), b"key3");
        assert_eq!(
            fs::read(partial.join("tls.crt")).unwrap(),
            b"cert3",
            "the half-written slot was rewritten"
        );
    }

    #[test]
    fn renewals_reuse_the_slots_files() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("web");
        let write = |n: u32| {
            let files = [
                file("tls.crt", &format!("cert{n}"), 0o644),
                file("tls.key", &format!("key{n}"), 0o600),
            ];
            write_atomic(&out, &files, Owner::default()).unwrap();
        };
        write(1);
        let inode = fs::metadata(out.join(SLOTS[0]).join("tls.key")).unwrap().ino();
        write(2);
        write(3);
        assert_eq!(read_current(&out, "tls.key").unwrap(), b"key3");
        assert_eq!(
            fs::metadata(out.join(SLOTS[0]).join("tls.key")).unwrap().ino(),
            inode
        );
    }

    #[test]
    fn file_names_must_be_plain() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["", "../x", "a/b", "..data"] {
            assert!(
                write_atomic(dir.path(), &[file(bad, "x", 0o644)], Owner::default()).is_err(),
                "{bad}"
            );
        }
        assert!(!format!("{:?}", file("tls.key", "SECRET", 0o600)).contains("SECRET"));
    }
}
