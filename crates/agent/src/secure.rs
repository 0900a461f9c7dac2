//! Private files and directories, and who a process is.
//!
//! Everything the agent writes may hold the app's secrets (a heap dump holds
//! every string in the process), so directories it creates are 0700 and
//! files 0600 (a stricter umask still applies). The runtime directory, where
//! `heapscope dump` learns which signal to send to which pid, must belong to
//! the user and be writable by nobody else, and must not be a symlink:
//! otherwise another local user could plant announcements or links in it.
//!
//! A process is identified by its pid *and* its start time (field 22 of
//! `/proc/PID/stat`, in clock ticks since boot), so a pid reused by an
//! unrelated process is never mistaken for the agent that announced itself.

use std::fs::File;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

/// The effective user id of this process.
pub fn euid() -> u32 {
    // SAFETY: geteuid cannot fail and has no preconditions.
    unsafe { libc_geteuid() }
}

/// Mode of directories the agent creates.
pub const DIR_MODE: u32 = 0o700;
/// Mode of files the agent creates.
pub const FILE_MODE: u32 = 0o600;

/// Creates `dir` and any missing parents with mode 0700 (existing
/// directories are left as they are).
pub fn create_private_dir_all(dir: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
}

/// Opens `path` for appending, creating it 0600; never through a symlink.
pub fn open_private_append(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(FILE_MODE)
        .custom_flags(o_nofollow())
        .open(path)
}

/// `O_NOFOLLOW` on Linux (its value depends on the architecture).
pub fn o_nofollow() -> i32 {
    if cfg!(any(
        target_arch = "aarch64",
        target_arch = "arm",
        target_arch = "powerpc",
        target_arch = "powerpc64"
    )) {
        0o100000
    } else {
        0o400000
    }
}

/// Why a directory is not safe to keep announcements in.
pub fn check_private_dir(dir: &Path, owners: &[u32]) -> Result<(), String> {
    let meta =
        std::fs::symlink_metadata(dir).map_err(|e| format!("cannot use {}: {e}", dir.display()))?;
    if meta.file_type().is_symlink() {
        return Err(format!(
            "{} is a symlink (owned by uid {}); refusing it",
            dir.display(),
            meta.uid()
        ));
    }
    if !meta.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    if !owners.contains(&meta.uid()) {
        return Err(format!(
            "{} belongs to uid {}, not to uid {}; refusing it (another user may have planted it)",
            dir.display(),
            meta.uid(),
            owners.first().copied().unwrap_or_else(euid)
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "{} is writable by other users (mode {:o}); refusing it (make it 0700)",
            dir.display(),
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

/// Creates the runtime directory 0700 when missing (its missing parents too)
/// and checks it: a directory, not a symlink, owned by this user, writable
/// by nobody else.
pub fn prepare_runtime_dir(dir: &Path) -> Result<(), String> {
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                create_private_dir_all(parent)
                    .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
            }
            match std::fs::DirBuilder::new().mode(DIR_MODE).create(dir) {
                Ok(()) => {}
                // Created meanwhile (by a sibling process): checked below.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(format!("cannot create {}: {e}", dir.display())),
            }
        }
        Err(e) => return Err(format!("cannot use {}: {e}", dir.display())),
        Ok(_) => {}
    }
    check_private_dir(dir, &[euid()])?;
    narrow_if_default(dir, &crate::state::runtime_dir(""));
    Ok(())
}

/// The default runtime directory (`$XDG_RUNTIME_DIR/heapscope`, else
/// `/tmp/heapscope-<uid>`), when it already exists, is the user's and others
/// may list it, is made 0700: the announcements in it are 0600, but their
/// names give away which pids run the agent. A directory the user configured
/// keeps its mode. The mode is changed through a descriptor opened without
/// following links and checked again, so nothing swapped in meanwhile is
/// touched; any failure leaves the directory as it was.
fn narrow_if_default(dir: &Path, default: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if dir != default {
        return;
    }
    let Ok(f) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(o_nofollow())
        .open(dir)
    else {
        return;
    };
    let Ok(meta) = f.metadata() else { return };
    if meta.is_dir() && meta.uid() == euid() && meta.mode() & 0o077 != 0 {
        let _ = f.set_permissions(std::fs::Permissions::from_mode(
            meta.mode() & 0o7000 | DIR_MODE,
        ));
    }
}

/// The fields of `/proc/PID/stat` after the command name (field 3 first).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// When `pid` started (clock ticks since boot, field 22 of
/// `/proc/PID/stat`), or None when there is no such process.
pub fn proc_start_time(pid: u32) -> Option<u64> {
    // Field 3 is index 0, so field 22 is index 19.
    stat_fields(pid)?.get(19)?.parse().ok()
}

/// Running and not a zombie (an exited child its parent has not reaped).
pub fn proc_running(pid: u32) -> bool {
    pid != 0
        && stat_fields(pid)
            .and_then(|f| f.first().cloned())
            .is_some_and(|state| state != "Z" && state != "X")
}

/// The line `Key:` of `/proc/PID/status`, without the key.
fn status_line(pid: u32, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|v| v.trim().to_string())
}

/// The effective user id of `pid`.
pub fn proc_euid(pid: u32) -> Option<u32> {
    status_line(pid, "Uid:")?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Whether `pid` has a handler for `signal` (its `SigCgt` mask), so the
/// signal cannot hit its default action (which for most signals ends the
/// process). None when unknown.
pub fn proc_catches(pid: u32, signal: i32) -> Option<bool> {
    if !(1..=64).contains(&signal) {
        return Some(false);
    }
    let mask = u64::from_str_radix(&status_line(pid, "SigCgt:")?, 16).ok()?;
    Some(mask & (1u64 << (signal - 1)) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn this_process_has_an_identity() {
        let me = std::process::id();
        let t = proc_start_time(me).unwrap();
        assert_eq!(proc_start_time(me), Some(t));
        assert!(proc_running(me));
        assert_eq!(proc_euid(me), Some(euid()));
        assert_eq!(proc_start_time(u32::MAX - 1), None);
        assert!(!proc_running(0));
        // The test harness does not catch SIGRTMIN+7.
        assert_eq!(proc_catches(me, 41), Some(false));
    }

    #[test]
    fn runtime_dirs_are_created_private_and_checked() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("a/b/run");
        prepare_runtime_dir(&dir).unwrap();
        for d in [base.path().join("a"), base.path().join("a/b"), dir.clone()] {
            let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode & !DIR_MODE, 0, "{} is {mode:o}", d.display());
        }
        // Existing and fine: accepted again.
        prepare_runtime_dir(&dir).unwrap();
        // World writable: refused.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = prepare_runtime_dir(&dir).unwrap_err();
        assert!(e.contains("writable by other users"), "{e}");
        // A symlink to a good directory: refused.
        let good = base.path().join("good");
        prepare_runtime_dir(&good).unwrap();
        let link = base.path().join("link");
        std::os::unix::fs::symlink(&good, &link).unwrap();
        let e = prepare_runtime_dir(&link).unwrap_err();
        assert!(e.contains("is a symlink"), "{e}");
        // Someone else's: refused.
        let e = check_private_dir(&good, &[euid() + 1]).unwrap_err();
        assert!(e.contains("belongs to uid"), "{e}");
        // A file: refused.
        let file = base.path().join("file");
        std::fs::write(&file, "").unwrap();
        assert!(prepare_runtime_dir(&file).is_err());
    }

    #[test]
    fn the_default_runtime_dir_is_narrowed_to_0700() {
        let base = tempfile::tempdir().unwrap();
        let mode = |d: &Path| std::fs::metadata(d).unwrap().permissions().mode() & 0o7777;
        let default = base.path().join("heapscope-default");
        let configured = base.path().join("my-run");
        for d in [&default, &configured] {
            std::fs::create_dir(d).unwrap();
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
            check_private_dir(d, &[euid()]).unwrap();
            narrow_if_default(d, &default);
        }
        assert_eq!(mode(&default), 0o700);
        // The user's own choice of directory keeps its mode.
        assert_eq!(mode(&configured), 0o755);
        // A symlink at the default path: left alone, and so is its target
        // (prepare_runtime_dir refuses it before this).
        let link = base.path().join("link");
        std::os::unix::fs::symlink(&configured, &link).unwrap();
        narrow_if_default(&link, &link);
        assert_eq!(mode(&configured), 0o755);
        assert!(prepare_runtime_dir(&link).is_err());
    }

    #[test]
    fn appended_files_are_private_and_not_followed() {
        let base = tempfile::tempdir().unwrap();
        let path = base.path().join("s.jsonl");
        {
            use std::io::Write;
            let mut f = open_private_append(&path).unwrap();
            f.write_all(b"x\n").unwrap();
        }
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, FILE_MODE);
        let link = base.path().join("l.jsonl");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(open_private_append(&link).is_err());
    }
}
