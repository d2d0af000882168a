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
//!
//! # Trust
//!
//! Whoever may write into the output directory (often the group of the service that reads the
//! certificates) is not trusted. The path of the directory itself is the administrator's and
//! is followed; everything inside it is handled through a descriptor of that directory
//! (`openat`, `mkdirat`, `renameat`, `unlinkat` with `O_NOFOLLOW`), so no check can be
//! raced by swapping a name between the check and its use. No symlink inside it is followed:
//! the only ones certkeeper creates (`..data` -> a slot, `<file>` -> `..data/<file>`) are read
//! with `readlinkat` and checked, and a slot is then opened by its own name. Nothing is ever written, chmod'ed or chown'ed through a symlink, into a file
//! that has other hard links, or into a file or slot owned by someone else. Nothing outside the
//! directory is deleted; inside it, only names in a checked slot, certkeeper's temporary links
//! and stable names that are exactly its links into `..data` are (everything else, hidden or
//! not, is left alone; `unlinkat` removes a link, never what it points to). A directory found
//! tampered with (a slot that is a symlink or not a directory, a file in a slot that is not a
//! plain file of ours, `..data` pointing somewhere that is not a slot, a stable name that is
//! not certkeeper's symlink) is refused with [`OutputError::Tampered`] before `..data` moves:
//! the current revision stays served, untouched.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File, Metadata};
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use certkeeper_core::FailureClass;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat, readlinkat, renameat};
use nix::sys::stat::{Mode, SFlag, fstatat, mkdirat};
use nix::unistd::{UnlinkatFlags, symlinkat, unlinkat};

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
pub enum OutputError {
    #[error("invalid output file name {name:?}: not a plain file name")]
    InvalidName { name: String },
    #[error("cannot write {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Someone changed the directory in a way certkeeper never does; nothing was published.
    #[error("refusing to write {path}: {problem}; the current revision is kept")]
    Tampered { path: PathBuf, problem: Tampering },
}

/// What is wrong with an entry of an output directory that certkeeper did not make so.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Tampering {
    #[error("it is a symbolic link (to {target:?})")]
    Symlink { target: String },
    #[error("it is {found}, not a directory")]
    NotDirectory { found: &'static str },
    #[error("it is {found}, not a regular file")]
    NotRegularFile { found: &'static str },
    #[error("it has {links} hard links")]
    HardLinked { links: u64 },
    #[error("it is owned by uid {uid}, not by certkeeper")]
    ForeignOwner { uid: u32 },
    #[error("it points to {target:?}, which is not a revision slot")]
    NotASlot { target: String },
    #[error("it is {found}, not certkeeper's symbolic link to {expected}")]
    NotOurLink { expected: String, found: String },
}

impl OutputError {
    /// The engine's failure class. A tampered directory needs an administrator: retried on the
    /// slow schedule (not "wait for a change": the change is on disk, where nothing watches),
    /// and the certificate already signed is written then without asking Vault again.
    pub fn class(&self) -> FailureClass {
        match self {
            OutputError::InvalidName { .. } => FailureClass::Invalid,
            OutputError::Tampered { .. } => FailureClass::Rejected,
            OutputError::Io { source, .. } => io_class(source),
        }
    }
}

/// Storage errors: our own setup (permissions, a path that cannot exist) waits for a change;
/// the rest (disk full, I/O errors) may pass.
fn io_class(e: &std::io::Error) -> FailureClass {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::PermissionDenied
        | K::NotFound
        | K::ReadOnlyFilesystem
        | K::InvalidInput
        | K::NotADirectory
        | K::IsADirectory => FailureClass::Invalid,
        _ => FailureClass::Transient,
    }
}

const DATA: &str = "..data";
/// The two revision directories `..data` alternates between.
const SLOTS: [&str; 2] = ["..a", "..b"];
const DATA_TMP: &str = "..data_tmp";

fn io_err(path: &Path, e: impl Into<std::io::Error>) -> OutputError {
    OutputError::Io {
        path: path.to_owned(),
        source: e.into(),
    }
}

fn tampered(path: PathBuf, problem: Tampering) -> OutputError {
    OutputError::Tampered { path, problem }
}

/// Flags for opening a directory inside the output directory: never through a symlink.
fn dir_flags() -> OFlag {
    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
}

/// Flags for opening a file inside a slot. `O_NONBLOCK`: a FIFO planted there must not hang
/// the writer until someone opens its other end (it is refused after the open instead);
/// `O_NOCTTY`: a terminal must not become ours.
fn file_flags(access: OFlag) -> OFlag {
    access | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC
}

/// Who may own what certkeeper writes: the process itself, or the configured owner it chowns
/// its files and slots to.
#[derive(Debug, Clone, Copy)]
struct Ours {
    euid: u32,
    owner: Option<u32>,
}

impl Ours {
    fn new(owner: Owner) -> Self {
        Ours {
            euid: nix::unistd::geteuid().as_raw(),
            owner: owner.uid,
        }
    }

    fn check(self, path: &Path, meta: &Metadata) -> Result<(), OutputError> {
        let uid = meta.uid();
        if uid == self.euid || Some(uid) == self.owner {
            Ok(())
        } else {
            Err(tampered(path.to_owned(), Tampering::ForeignOwner { uid }))
        }
    }
}

fn describe(mode: u32) -> &'static str {
    let kind = SFlag::from_bits_truncate(mode & SFlag::S_IFMT.bits());
    if kind == SFlag::S_IFREG {
        "a regular file"
    } else if kind == SFlag::S_IFDIR {
        "a directory"
    } else if kind == SFlag::S_IFLNK {
        "a symbolic link"
    } else if kind == SFlag::S_IFIFO {
        "a FIFO"
    } else if kind == SFlag::S_IFSOCK {
        "a socket"
    } else if kind == SFlag::S_IFCHR || kind == SFlag::S_IFBLK {
        "a device"
    } else {
        "a file of unknown type"
    }
}

/// An `openat` of `name` failed in a way that says it is not what it should be: find out what
/// it is (without following it) for the error.
fn refuse_entry(dirfd: &File, name: &OsStr, path: PathBuf, want_dir: bool, e: Errno) -> OutputError {
    let st = match fstatat(dirfd.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(_) => return io_err(&path, e),
    };
    let found = describe(st.st_mode);
    let problem = if found == "a symbolic link" {
        let target = readlinkat(dirfd.as_fd(), name).unwrap_or_default();
        Tampering::Symlink {
            target: target.to_string_lossy().into_owned(),
        }
    } else if want_dir {
        Tampering::NotDirectory { found }
    } else {
        Tampering::NotRegularFile { found }
    };
    tampered(path, problem)
}

fn check_name(name: &str) -> Result<(), OutputError> {
    if name.is_empty() || name.contains(['/', '\0']) || name.starts_with("..") || name == "." {
        return Err(OutputError::InvalidName { name: name.into() });
    }
    Ok(())
}

/// Open the output directory itself. Its path is the administrator's configuration and is
/// followed like any configured path; what is inside is not.
fn open_dir(dir: &Path) -> Result<File, OutputError> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    nix::fcntl::open(dir, flags, Mode::empty())
        .map(File::from)
        .map_err(|e| io_err(dir, e))
}

/// The slot `..data` points to: `None` before the first write, refused when it is anything
/// but certkeeper's symlink to a slot.
fn data_slot(out: &File, dir: &Path) -> Result<Option<&'static str>, OutputError> {
    let path = dir.join(DATA);
    match readlinkat(out.as_fd(), DATA) {
        Ok(target) => match SLOTS.iter().find(|s| target == OsStr::new(s)) {
            Some(slot) => Ok(Some(slot)),
            None => Err(tampered(
                path,
                Tampering::NotASlot {
                    target: target.to_string_lossy().into_owned(),
                },
            )),
        },
        Err(Errno::ENOENT) => Ok(None),
        // Not a symlink.
        Err(Errno::EINVAL) => {
            let found = fstatat(out.as_fd(), DATA, AtFlags::AT_SYMLINK_NOFOLLOW)
                .map_or("an entry of unknown type", |st| describe(st.st_mode));
            Err(tampered(
                path,
                Tampering::NotOurLink {
                    expected: SLOTS.join(" or "),
                    found: found.into(),
                },
            ))
        }
        Err(e) => Err(io_err(&path, e)),
    }
}

/// Open a slot (creating it when `create`), refusing one that is not certkeeper's directory.
/// Returns `None` when it does not exist and `create` is false, and whether it was created.
fn open_slot(
    out: &File,
    dir: &Path,
    slot: &str,
    ours: Ours,
    create: bool,
) -> Result<Option<(File, bool)>, OutputError> {
    let path = dir.join(slot);
    let (fd, created) = match openat(out.as_fd(), slot, dir_flags(), Mode::empty()) {
        Ok(fd) => (fd, false),
        Err(Errno::ENOENT) if create => {
            mkdirat(out.as_fd(), slot, Mode::from_bits_truncate(0o755)).map_err(|e| io_err(&path, e))?;
            // Opened again by name: if it was swapped in between, the owner check below sees it.
            let fd = openat(out.as_fd(), slot, dir_flags(), Mode::empty())
                .map_err(|e| refuse_entry(out, OsStr::new(slot), path.clone(), true, e))?;
            (fd, true)
        }
        Err(Errno::ENOENT) => return Ok(None),
        Err(e @ (Errno::ELOOP | Errno::ENOTDIR)) => {
            return Err(refuse_entry(out, OsStr::new(slot), path, true, e));
        }
        Err(e) => return Err(io_err(&path, e)),
    };
    let slot_dir = File::from(fd);
    let meta = slot_dir.metadata().map_err(|e| io_err(&path, e))?;
    ours.check(&path, &meta)?;
    if created {
        // mkdirat's mode is filtered by the umask.
        slot_dir
            .set_permissions(fs::Permissions::from_mode(0o755))
            .map_err(|e| io_err(&path, e))?;
    }
    Ok(Some((slot_dir, created)))
}

/// A file of a slot, opened without following a symlink and refused unless it is a plain file
/// of ours with no other name: then writing it, chmod and chown reach only that file.
fn check_slot_file(path: &Path, file: &File, ours: Ours, created: bool) -> Result<(), OutputError> {
    let meta = file.metadata().map_err(|e| io_err(path, e))?;
    if !meta.file_type().is_file() {
        let found = describe(meta.mode());
        return Err(tampered(path.to_owned(), Tampering::NotRegularFile { found }));
    }
    if meta.nlink() != 1 {
        let links = meta.nlink();
        return Err(tampered(path.to_owned(), Tampering::HardLinked { links }));
    }
    if !created {
        ours.check(path, &meta)?;
    }
    Ok(())
}

/// Write one file of the new revision into its slot; returns whether it was created.
fn write_file(
    slot_dir: &File,
    slot_path: &Path,
    f: &OutputFile,
    owner: Owner,
    ours: Ours,
) -> Result<bool, OutputError> {
    let path = slot_path.join(&f.name);
    let name = OsStr::new(&f.name);
    let flags = file_flags(OFlag::O_WRONLY);
    let (fd, created): (OwnedFd, bool) = match openat(slot_dir.as_fd(), name, flags, Mode::empty()) {
        Ok(fd) => (fd, false),
        Err(Errno::ENOENT) => {
            // O_EXCL: if something appeared under the name meanwhile, fail rather than open it.
            let mode = Mode::from_bits_truncate(f.mode & 0o777);
            let fd = openat(
                slot_dir.as_fd(),
                name,
                flags | OFlag::O_CREAT | OFlag::O_EXCL,
                mode,
            )
            .map_err(|e| io_err(&path, e))?;
            (fd, true)
        }
        Err(e @ (Errno::ELOOP | Errno::EISDIR | Errno::ENXIO | Errno::ENODEV)) => {
            return Err(refuse_entry(slot_dir, name, path, false, e));
        }
        Err(e) => return Err(io_err(&path, e)),
    };
    let mut file = File::from(fd);
    check_slot_file(&path, &file, ours, created)?;
    // Rewritten in place: reusing the inode spares the filesystem an allocation and a
    // deletion per file and revision. Truncated only now, after the checks.
    file.set_len(0).map_err(|e| io_err(&path, e))?;
    file.write_all(&f.contents).map_err(|e| io_err(&path, e))?;
    // The mode given to open() is filtered by the umask (and an existing file keeps its
    // old mode): set it exactly.
    file.set_permissions(fs::Permissions::from_mode(f.mode))
        .map_err(|e| io_err(&path, e))?;
    chown(&path, &file, owner)?;
    file.sync_all().map_err(|e| io_err(&path, e))?;
    Ok(created)
}

/// Names in a directory, read through its descriptor.
fn list(dirfd: &File, path: &Path) -> Result<Vec<OsString>, OutputError> {
    let mut d =
        nix::dir::Dir::openat(dirfd.as_fd(), ".", dir_flags(), Mode::empty()).map_err(|e| io_err(path, e))?;
    let mut names = Vec::new();
    for entry in d.iter() {
        let entry = entry.map_err(|e| io_err(path, e))?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(OsStr::from_bytes(name).to_owned());
        }
    }
    Ok(names)
}

/// Remove a name certkeeper creates (a temporary symlink, a file of its own slot). `unlinkat`
/// never follows a symlink: at worst it removes the link itself. A directory there is refused.
fn unlink(dirfd: &File, name: &OsStr, path: PathBuf) -> Result<bool, OutputError> {
    match unlinkat(dirfd.as_fd(), name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) => Ok(true),
        Err(Errno::ENOENT) => Ok(false),
        Err(e @ (Errno::EISDIR | Errno::EPERM)) => Err(refuse_entry(dirfd, name, path, false, e)),
        Err(e) => Err(io_err(&path, e)),
    }
}

/// Whether the stable name for `name` has to be created: absent, or already certkeeper's link.
/// Anything else there was put by someone else and is refused, before anything changes.
fn needs_stable_link(out: &File, dir: &Path, name: &str) -> Result<bool, OutputError> {
    let path = dir.join(name);
    let expected = format!("{DATA}/{name}");
    let found = match readlinkat(out.as_fd(), name) {
        Ok(target) if target == OsStr::new(&expected) => return Ok(false),
        Ok(target) => format!("a symbolic link to {target:?}"),
        Err(Errno::ENOENT) => return Ok(true),
        Err(Errno::EINVAL) => fstatat(out.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW)
            .map_or("an entry of unknown type", |st| describe(st.st_mode))
            .to_owned(),
        Err(e) => return Err(io_err(&path, e)),
    };
    Err(tampered(path, Tampering::NotOurLink { expected, found }))
}

/// Point `name` at `target` in one step: a new symlink under `tmp`, renamed over `name`.
fn replace_link(out: &File, dir: &Path, tmp: &str, target: &str, name: &str) -> Result<(), OutputError> {
    let tmp_path = dir.join(tmp);
    // A leftover of an interrupted write.
    unlink(out, OsStr::new(tmp), tmp_path.clone())?;
    symlinkat(target, out.as_fd(), tmp).map_err(|e| io_err(&tmp_path, e))?;
    renameat(out.as_fd(), tmp, out.as_fd(), name).map_err(|e| io_err(&dir.join(name), e))
}

/// Write `files` as the new revision of `dir`, atomically.
pub fn write_atomic(dir: &Path, files: &[OutputFile], owner: Owner) -> Result<(), OutputError> {
    for f in files {
        check_name(&f.name)?;
    }
    fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    let out = open_dir(dir)?;
    let ours = Ours::new(owner);
    let previous = data_slot(&out, dir)?;
    // Refused after the flip, a revision would be half published: every stable name is
    // checked first.
    let mut new_links = Vec::new();
    for f in files {
        if needs_stable_link(&out, dir, &f.name)? {
            new_links.push(f.name.as_str());
        }
    }
    // The slot ..data does not point to: its files are two revisions old and nobody is
    // directed to them any more.
    let slot = if previous == Some(SLOTS[0]) {
        SLOTS[1]
    } else {
        SLOTS[0]
    };
    let slot_path = dir.join(slot);
    let Some((slot_dir, created)) = open_slot(&out, dir, slot, ours, true)? else {
        return Err(io_err(&slot_path, std::io::ErrorKind::NotFound));
    };
    // Whether the slot's directory entries change (then the directory itself is fsynced).
    let mut entries_changed = created;
    for f in files {
        entries_changed |= write_file(&slot_dir, &slot_path, f, owner, ours)?;
    }
    for name in list(&slot_dir, &slot_path)? {
        if !files.iter().any(|f| OsStr::new(&f.name) == name) {
            let path = slot_path.join(&name);
            entries_changed |= unlink(&slot_dir, &name, path)?;
        }
    }
    chown(&slot_path, &slot_dir, owner)?;
    if entries_changed {
        slot_dir.sync_all().map_err(|e| io_err(&slot_path, e))?;
    }

    // Flip ..data in one rename.
    replace_link(&out, dir, DATA_TMP, slot, DATA)?;

    // Stable names for every file of this revision; names no longer written are removed.
    for name in new_links {
        replace_link(
            &out,
            dir,
            &format!("..{name}.tmp"),
            &format!("{DATA}/{name}"),
            name,
        )?;
    }
    remove_stale_links(&out, dir, files)?;
    out.sync_all().map_err(|e| io_err(dir, e))
}

/// Remove the stable symlinks of files the new revision no longer has: only names that are
/// exactly certkeeper's link into `..data`; everything else in the directory is left alone.
fn remove_stale_links(out: &File, dir: &Path, files: &[OutputFile]) -> Result<(), OutputError> {
    for name in list(out, dir)? {
        if name.as_bytes().starts_with(b"..") || files.iter().any(|f| OsStr::new(&f.name) == name) {
            continue;
        }
        let mut expected = OsString::from(format!("{DATA}/"));
        expected.push(&name);
        if readlinkat(out.as_fd(), name.as_os_str()).is_ok_and(|t| t == expected) {
            unlink(out, &name, dir.join(&name))?;
        }
    }
    Ok(())
}

/// Read a file of the current revision: from the slot `..data` points to, not through the
/// stable name (which anyone who can write the directory can replace), and only if it passes
/// the checks a write makes. `None` when there is no current revision or no such file.
pub fn read_current(dir: &Path, name: &str, owner: Owner) -> Result<Option<Vec<u8>>, OutputError> {
    check_name(name)?;
    let out = match open_dir(dir) {
        Ok(out) => out,
        Err(OutputError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let ours = Ours::new(owner);
    let Some(slot) = data_slot(&out, dir)? else {
        return Ok(None);
    };
    let Some((slot_dir, _)) = open_slot(&out, dir, slot, ours, false)? else {
        return Ok(None);
    };
    let path = dir.join(slot).join(name);
    let fd = match openat(slot_dir.as_fd(), name, file_flags(OFlag::O_RDONLY), Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(None),
        Err(e @ (Errno::ELOOP | Errno::EISDIR | Errno::ENXIO | Errno::ENODEV)) => {
            return Err(refuse_entry(&slot_dir, OsStr::new(name), path, false, e));
        }
        Err(e) => return Err(io_err(&path, e)),
    };
    let mut file = File::from(fd);
    check_slot_file(&path, &file, ours, false)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(|e| io_err(&path, e))?;
    Ok(Some(bytes))
}

/// Chown a file or slot certkeeper opened (never by name: the descriptor is the checked one).
fn chown(path: &Path, file: &File, owner: Owner) -> Result<(), OutputError> {
    if owner == Owner::default() {
        return Ok(());
    }
    std::os::unix::fs::fchown(file, owner.uid, owner.gid).map_err(|e| io_err(path, e))
}
#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn current(dir: &Path, name: &str) -> Option<Vec<u8>> {
        read_current(dir, name, Owner::default()).unwrap()
    }

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
        assert_eq!(current(&out, "tls.crt").unwrap(), b"cert1");
        assert_eq!(current(&out, "tls.key").unwrap(), b"key1");
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
        assert_eq!(current(&out, "tls.crt").unwrap(), b"cert2");
        assert_eq!(current(&out, "tls.key").unwrap(), b"key2");
        assert_eq!(current(&out, "ca.crt").unwrap(), b"ca");

        // ca.crt dropped in the next revision: its stable name goes too.
        write_atomic(
            &out,
            &[file("tls.crt", "cert3", 0o644), file("tls.key", "key3", 0o600)],
            Owner::default(),
        )
        .unwrap();
        assert!(current(&out, "ca.crt").is_none());
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
        assert_eq!(current(&out, "tls.crt").unwrap(), b"cert1");
        assert_eq!(current(&out, "tls.key").unwrap(), b"key1");
        // The next write cleans up and succeeds.
        write_atomic(
            &out,
            &[file("tls.crt", "cert3", 0o644), file("tls.key", "key3", 0o600)],
            Owner::default(),
        )
        .unwrap();
        assert_eq!(current(&out, "tls.key").unwrap(), b"key3");
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
        assert_eq!(current(&out, "tls.key").unwrap(), b"key3");
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

    fn pair(n: u32) -> [OutputFile; 2] {
        [
            file("tls.crt", &format!("cert{n}"), 0o644),
            file("tls.key", &format!("key{n}"), 0o600),
        ]
    }

    fn write(out: &Path, n: u32) -> Result<(), OutputError> {
        write_atomic(out, &pair(n), Owner::default())
    }

    /// The refusal names the path and the problem, and revision `n` is still the one served.
    fn assert_refused(r: Result<(), OutputError>, path: &Path, out: &Path, n: u32) -> Tampering {
        let problem = match r {
            Err(OutputError::Tampered { path: p, problem }) => {
                assert_eq!(p, path);
                problem
            }
            other => panic!("expected a refusal for {}, got {other:?}", path.display()),
        };
        assert_eq!(current(out, "tls.key").unwrap(), format!("key{n}").as_bytes());
        assert_eq!(
            fs::read(out.join("tls.key")).unwrap(),
            format!("key{n}").as_bytes()
        );
        assert_eq!(
            fs::read(out.join("tls.crt")).unwrap(),
            format!("cert{n}").as_bytes()
        );
        assert_eq!(
            OutputError::Tampered {
                path: path.to_owned(),
                problem: problem.clone()
            }
            .class(),
            FailureClass::Rejected
        );
        problem
    }

    /// A file outside the output directory, readable by all, as a victim would be.
    fn victim(root: &Path) -> PathBuf {
        let path = root.join("victim");
        fs::write(&path, "victim").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        path
    }

    fn assert_untouched(victim: &Path) {
        assert_eq!(fs::read(victim).unwrap(), b"victim");
        let mode = fs::metadata(victim).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o644, "mode of {}", victim.display());
    }

    #[test]
    fn hostile_slot_symlink_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let outside = root.path().join("outside");
        fs::create_dir(&outside).unwrap();
        let victim = victim(&outside);
        let out = root.path().join("web");
        fs::create_dir(&out).unwrap();

        // Before the first write: ..a is the slot about to be written.
        symlink(&outside, out.join(SLOTS[0])).unwrap();
        let r = write(&out, 1);
        assert!(
            matches!(r, Err(OutputError::Tampered { ref path, problem: Tampering::Symlink { .. } })
                if *path == out.join(SLOTS[0])),
            "{r:?}"
        );
        assert!(!out.join(DATA).exists(), "nothing published");
        fs::remove_file(out.join(SLOTS[0])).unwrap();

        // After one: ..b is next.
        write(&out, 1).unwrap();
        symlink(&outside, out.join(SLOTS[1])).unwrap();
        let problem = assert_refused(write(&out, 2), &out.join(SLOTS[1]), &out, 1);
        assert!(matches!(problem, Tampering::Symlink { .. }), "{problem:?}");
        assert_untouched(&victim);
        assert_eq!(
            fs::read_dir(&outside).unwrap().count(),
            1,
            "nothing added outside"
        );

        // A slot that is a file is refused too, not replaced.
        fs::remove_file(out.join(SLOTS[1])).unwrap();
        fs::write(out.join(SLOTS[1]), "x").unwrap();
        let problem = assert_refused(write(&out, 2), &out.join(SLOTS[1]), &out, 1);
        assert_eq!(
            problem,
            Tampering::NotDirectory {
                found: "a regular file"
            }
        );

        // Cleaned up by the administrator: the next write goes through.
        fs::remove_file(out.join(SLOTS[1])).unwrap();
        write(&out, 2).unwrap();
        assert_eq!(current(&out, "tls.key").unwrap(), b"key2");
    }

    #[test]
    fn hostile_symlinked_file_in_slot_leaves_its_target_alone() {
        let root = tempfile::tempdir().unwrap();
        let victim = victim(root.path());
        let out = root.path().join("web");
        write(&out, 1).unwrap();
        write(&out, 2).unwrap();
        // ..data -> ..b: the next write goes to ..a.
        let planted = out.join(SLOTS[0]).join("tls.key");
        fs::remove_file(&planted).unwrap();
        symlink(&victim, &planted).unwrap();
        let problem = assert_refused(write(&out, 3), &planted, &out, 2);
        assert!(matches!(problem, Tampering::Symlink { .. }), "{problem:?}");
        assert_untouched(&victim);
    }

    #[test]
    fn hostile_hard_link_in_slot_leaves_the_other_name_alone() {
        let root = tempfile::tempdir().unwrap();
        let victim = victim(root.path());
        let out = root.path().join("web");
        write(&out, 1).unwrap();
        write(&out, 2).unwrap();
        let planted = out.join(SLOTS[0]).join("tls.key");
        fs::remove_file(&planted).unwrap();
        fs::hard_link(&victim, &planted).unwrap();
        let problem = assert_refused(write(&out, 3), &planted, &out, 2);
        assert_eq!(problem, Tampering::HardLinked { links: 2 });
        assert_untouched(&victim);
    }

    #[test]
    fn hostile_fifo_in_slot_is_refused_without_waiting_for_a_reader() {
        let root = tempfile::tempdir().unwrap();
        let out = root.path().join("web");
        write(&out, 1).unwrap();
        write(&out, 2).unwrap();
        let planted = out.join(SLOTS[0]).join("tls.key");
        fs::remove_file(&planted).unwrap();
        nix::unistd::mkfifo(&planted, Mode::from_bits_truncate(0o666)).unwrap();
        let problem = assert_refused(write(&out, 3), &planted, &out, 2);
        assert_eq!(problem, Tampering::NotRegularFile { found: "a FIFO" });
    }

    #[test]
    fn hostile_data_link_outside_the_slots_is_refused() {
        for target in ["/", "../x", "..c", "..a/../.."] {
            let root = tempfile::tempdir().unwrap();
            let out = root.path().join("web");
            write(&out, 1).unwrap();
            fs::remove_file(out.join(DATA)).unwrap();
            symlink(target, out.join(DATA)).unwrap();
            let r = write(&out, 2);
            assert!(
                matches!(&r, Err(OutputError::Tampered { path, problem: Tampering::NotASlot { target: t } })
                    if *path == out.join(DATA) && t == target),
                "{target}: {r:?}"
            );
            assert!(
                read_current(&out, "tls.key", Owner::default()).is_err(),
                "{target}"
            );
            assert_eq!(fs::read_link(out.join(DATA)).unwrap(), Path::new(target));
        }
        // ..data as a directory of someone else's files.
        let root = tempfile::tempdir().unwrap();
        let out = root.path().join("web");
        fs::create_dir_all(out.join(DATA)).unwrap();
        let r = write(&out, 1);
        assert!(
            matches!(
                &r,
                Err(OutputError::Tampered {
                    problem: Tampering::NotOurLink { .. },
                    ..
                })
            ),
            "{r:?}"
        );
    }

    #[test]
    fn hostile_hidden_symlinks_are_neither_followed_nor_removed() {
        let root = tempfile::tempdir().unwrap();
        let outside = root.path().join("outside");
        fs::create_dir(&outside).unwrap();
        let victim = victim(&outside);
        let out = root.path().join("web");
        fs::create_dir(&out).unwrap();
        symlink(&outside, out.join("..old")).unwrap();
        symlink(&victim, out.join("..tls.key.tmp")).unwrap();
        fs::write(out.join("other.conf"), "the service's own file").unwrap();
        write(&out, 1).unwrap();
        write(&out, 2).unwrap();
        assert_untouched(&victim);
        assert!(outside.is_dir());
        // What certkeeper did not create stays (its own leftover temporary name is reused).
        assert_eq!(fs::read_link(out.join("..old")).unwrap(), outside);
        assert_eq!(
            fs::read(out.join("other.conf")).unwrap(),
            b"the service's own file"
        );
        assert_eq!(current(&out, "tls.key").unwrap(), b"key2");
    }

    #[test]
    fn hostile_stable_name_replaced_is_refused_before_the_flip() {
        let root = tempfile::tempdir().unwrap();
        let victim = victim(root.path());
        let out = root.path().join("web");
        write(&out, 1).unwrap();
        let link = out.join("tls.crt");
        fs::remove_file(&link).unwrap();
        symlink(&victim, &link).unwrap();
        let r = write(&out, 2);
        assert!(
            matches!(&r, Err(OutputError::Tampered { path, problem: Tampering::NotOurLink { .. } })
                if *path == link),
            "{r:?}"
        );
        assert_eq!(
            fs::read_link(out.join(DATA)).unwrap(),
            Path::new(SLOTS[0]),
            "not flipped"
        );
        assert_untouched(&victim);

        fs::remove_file(&link).unwrap();
        fs::write(&link, "a plain file").unwrap();
        let r = write(&out, 2);
        assert!(matches!(&r, Err(OutputError::Tampered { .. })), "{r:?}");
        assert_eq!(fs::read(&link).unwrap(), b"a plain file");
        assert_eq!(
            fs::read_link(out.join(DATA)).unwrap(),
            Path::new(SLOTS[0]),
            "not flipped"
        );
    }

    #[test]
    fn hostile_planted_key_is_not_taken_for_ours() {
        let root = tempfile::tempdir().unwrap();
        let out = root.path().join("web");
        write(&out, 1).unwrap();
        // The stable name replaced by a key someone else knows: the key reused is still ours.
        fs::remove_file(out.join("tls.key")).unwrap();
        fs::write(out.join("tls.key"), "attacker's key").unwrap();
        assert_eq!(current(&out, "tls.key").unwrap(), b"key1");
        // The slot's file replaced by a link to someone else's file: not read at all.
        let victim = victim(root.path());
        let in_slot = out.join(SLOTS[0]).join("tls.key");
        fs::remove_file(&in_slot).unwrap();
        symlink(&victim, &in_slot).unwrap();
        let r = read_current(&out, "tls.key", Owner::default());
        assert!(
            matches!(r, Err(OutputError::Tampered { ref path, .. }) if *path == in_slot),
            "{r:?}"
        );
    }
}
