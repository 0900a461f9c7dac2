//! Files written as they go (`watch -o`, `bench`'s memory record and Puma
//! log), created the safe way.
//!
//! A whole output goes through [`heapscope_pprof::write_atomic`], which fills
//! a private temporary file (unpredictable name, `O_EXCL | O_NOFOLLOW`) and
//! renames it over the path. A stream cannot wait for its end to appear:
//! records are read while it runs, and a killed watcher must leave what it
//! wrote. So [`create_streaming`] publishes early: the atomic writer creates
//! the file with its first bytes and renames it into place, and the file is
//! then reopened for appending, checked to be that same fresh file. Neither
//! the temporary name nor the final path is ever written through a planted
//! symlink.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

/// Creates (replaces) `path` holding `head`, and returns it open for
/// appending the rest. Fails if the path was swapped between its creation
/// and the reopen (for a symlink, another owner's file, or a hard link).
pub fn create_streaming(path: &Path, head: &[u8]) -> io::Result<File> {
    heapscope_pprof::write_atomic(path, |w| w.write_all(head))?;
    let file = OpenOptions::new()
        .append(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    let m = file.metadata()?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if !m.file_type().is_file() || m.uid() != me || m.nlink() != 1 || m.len() != head.len() as u64 {
        return Err(io::Error::other(format!(
            "{} was replaced by another file while it was being created",
            path.display()
        )));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn streams_into_a_fresh_file_and_never_through_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        let out = dir.path().join("out.csv");
        std::os::unix::fs::symlink(&victim, &out).unwrap();
        let mut f = create_streaming(&out, b"a,b\n").unwrap();
        f.write_all(b"1,2\n").unwrap();
        drop(f);
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        assert!(!std::fs::symlink_metadata(&out).unwrap().is_symlink());
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "a,b\n1,2\n");
        // Nothing else is left in the directory.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }
}
