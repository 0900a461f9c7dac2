//! The pprof profile format (`profile.proto`) as prost messages, a string
//! table builder, gzip reading and writing, and atomic file writes.
//!
//! Shared by the analyser's `heapscope pprof` export and by the in-process
//! agent's sampling heap profiler, which must not pull in the analyser.
//!
//! The message structs are written from the field numbers of the profile
//! format; fields heapscope never sets (addresses, drop/keep frames) are
//! left out, which decoders read as defaults.
//!
//! Both producers (the agent and `heapscope pprof`) write the same sample
//! types ([`SAMPLE_TYPES`]), the same labels ([`LABEL_TYPE`], [`LABEL_CLASS`])
//! and functions and mappings made by [`function`] and [`mapping`], which is
//! what keeps `go tool pprof` from rewriting Ruby names (see [`function`]).

/// The sample types of every heapscope profile, in order: pprof's
/// conventional heap-profile names, so `go tool pprof -inuse_space` (and
/// `-alloc_space`, `-inuse_objects`, `-alloc_objects`) select them.
/// `inuse_*` are live objects (their shallow size), `alloc_*` allocations.
pub const SAMPLE_TYPES: [(&str, &str); 4] = [
    ("alloc_objects", "count"),
    ("alloc_space", "bytes"),
    ("inuse_objects", "count"),
    ("inuse_space", "bytes"),
];

/// The default sample type: bytes of live objects.
pub const DEFAULT_SAMPLE_TYPE: &str = "inuse_space";

/// Label key of an object's builtin type, written as heap dumps write it
/// (`STRING`, `OBJECT`, `IMEMO`).
pub const LABEL_TYPE: &str = "type";
/// Label key of an object's class name (`String`, `MyApp::User`); absent for
/// objects without a real class (IMEMO, NODE).
pub const LABEL_CLASS: &str = "class";

/// Sets [`SAMPLE_TYPES`], the default sample type and the period type
/// (allocations counted every `period`) on `profile`.
pub fn set_sample_types(profile: &mut Profile, strings: &mut StringTable, period: i64) {
    profile.sample_type = SAMPLE_TYPES
        .iter()
        .map(|(t, u)| ValueType {
            r#type: strings.get(t),
            unit: strings.get(u),
        })
        .collect();
    profile.default_sample_type = strings.get(DEFAULT_SAMPLE_TYPE);
    profile.period_type = Some(ValueType {
        r#type: strings.get("alloc_objects"),
        unit: strings.get("count"),
    });
    profile.period = period;
}

/// A function named `name` (already in the string table).
///
/// `system_name` is left empty on purpose: pprof treats a function whose
/// `system_name` equals its `name` as not yet demangled and runs its C++
/// simplifier on it, which strips `<...>` and `(...)` from Ruby names
/// (`<main>` and `<class:Foo>` become empty, `block (2 levels) in <main>`
/// becomes `block  in `). A name with a different (empty) `system_name`
/// counts as already demangled and is shown as written.
pub fn function(id: u64, name: i64, filename: i64, start_line: i64) -> Function {
    Function {
        id,
        name,
        system_name: 0,
        filename,
        start_line,
    }
}

/// The one mapping every location points at (id 1): `file` names the
/// program. Marked as already symbolized (functions, file names, line
/// numbers), so pprof neither looks for the binary nor warns "Main binary
/// filename not available."
pub fn mapping(file: i64) -> Mapping {
    Mapping {
        id: MAPPING_ID,
        filename: file,
        has_functions: true,
        has_filenames: true,
        has_line_numbers: true,
        ..Default::default()
    }
}

/// The id of the mapping made by [`mapping`], for `Location::mapping_id`.
pub const MAPPING_ID: u64 = 1;

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use flate2::write::GzEncoder;
use flate2::Compression;
use prost::Message;

/// `perftools.profiles.Profile`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Profile {
    #[prost(message, repeated, tag = "1")]
    pub sample_type: Vec<ValueType>,
    #[prost(message, repeated, tag = "2")]
    pub sample: Vec<Sample>,
    #[prost(message, repeated, tag = "3")]
    pub mapping: Vec<Mapping>,
    #[prost(message, repeated, tag = "4")]
    pub location: Vec<Location>,
    #[prost(message, repeated, tag = "5")]
    pub function: Vec<Function>,
    #[prost(string, repeated, tag = "6")]
    pub string_table: Vec<String>,
    #[prost(int64, tag = "9")]
    pub time_nanos: i64,
    #[prost(int64, tag = "10")]
    pub duration_nanos: i64,
    #[prost(message, optional, tag = "11")]
    pub period_type: Option<ValueType>,
    #[prost(int64, tag = "12")]
    pub period: i64,
    #[prost(int64, repeated, tag = "13")]
    pub comment: Vec<i64>,
    #[prost(int64, tag = "14")]
    pub default_sample_type: i64,
}

/// `ValueType`: indexes into the string table.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ValueType {
    #[prost(int64, tag = "1")]
    pub r#type: i64,
    #[prost(int64, tag = "2")]
    pub unit: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    #[prost(uint64, repeated, packed = "true", tag = "1")]
    pub location_id: Vec<u64>,
    #[prost(int64, repeated, packed = "true", tag = "2")]
    pub value: Vec<i64>,
    #[prost(message, repeated, tag = "3")]
    pub label: Vec<Label>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    #[prost(int64, tag = "1")]
    pub key: i64,
    #[prost(int64, tag = "2")]
    pub str: i64,
    #[prost(int64, tag = "3")]
    pub num: i64,
    #[prost(int64, tag = "4")]
    pub num_unit: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Mapping {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(uint64, tag = "2")]
    pub memory_start: u64,
    #[prost(uint64, tag = "3")]
    pub memory_limit: u64,
    #[prost(uint64, tag = "4")]
    pub file_offset: u64,
    #[prost(int64, tag = "5")]
    pub filename: i64,
    #[prost(int64, tag = "6")]
    pub build_id: i64,
    #[prost(bool, tag = "7")]
    pub has_functions: bool,
    #[prost(bool, tag = "8")]
    pub has_filenames: bool,
    #[prost(bool, tag = "9")]
    pub has_line_numbers: bool,
    #[prost(bool, tag = "10")]
    pub has_inline_frames: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Location {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(uint64, tag = "2")]
    pub mapping_id: u64,
    #[prost(uint64, tag = "3")]
    pub address: u64,
    #[prost(message, repeated, tag = "4")]
    pub line: Vec<Line>,
    #[prost(bool, tag = "5")]
    pub is_folded: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Line {
    #[prost(uint64, tag = "1")]
    pub function_id: u64,
    #[prost(int64, tag = "2")]
    pub line: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Function {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(int64, tag = "2")]
    pub name: i64,
    #[prost(int64, tag = "3")]
    pub system_name: i64,
    #[prost(int64, tag = "4")]
    pub filename: i64,
    #[prost(int64, tag = "5")]
    pub start_line: i64,
}

/// The string table: index 0 is always "".
pub struct StringTable {
    index: HashMap<String, i64>,
    table: Vec<String>,
}

impl StringTable {
    pub fn new() -> StringTable {
        let mut s = StringTable {
            index: HashMap::new(),
            table: Vec::new(),
        };
        s.get("");
        s
    }

    /// The index of `s`, added on first use.
    pub fn get(&mut self, s: &str) -> i64 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.table.len() as i64;
        self.table.push(s.to_string());
        self.index.insert(s.to_string(), i);
        i
    }
}

impl Default for StringTable {
    fn default() -> Self {
        StringTable::new()
    }
}

impl StringTable {
    /// The finished table, for `Profile::string_table`.
    pub fn into_table(self) -> Vec<String> {
        self.table
    }
}

/// Writes a profile gzipped, as pprof tools expect.
pub fn write_gz(profile: &Profile, w: &mut dyn Write) -> io::Result<()> {
    let mut gz = GzEncoder::new(w, Compression::default());
    gz.write_all(&profile.encode_to_vec())?;
    gz.finish()?;
    Ok(())
}

/// Reads a profile written by [`write_gz`] (or any gzipped `profile.proto`
/// whose fields heapscope knows; others are skipped).
pub fn read_gz(gz: &[u8]) -> io::Result<Profile> {
    let mut raw = Vec::new();
    io::Read::read_to_end(&mut flate2::read::GzDecoder::new(gz), &mut raw)?;
    Profile::decode(&raw[..]).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Writes `path` atomically and privately: `write` fills a new temporary
/// file in the same directory, which is flushed to disk and then renamed over
/// `path`. On any error the temporary file is removed and `path` is left as
/// it was. The file is created with mode 0600 (see [`write_atomic_mode`] for
/// another mode).
///
/// The temporary file has an unpredictable name and is created with
/// `O_CREAT | O_EXCL | O_NOFOLLOW`, so a file or symlink planted in the
/// directory is never written through: the create fails instead (and is
/// retried under another name). The rename replaces a symlink at `path`
/// itself, never its target.
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    write_atomic_mode(path, 0o600, write)
}

/// [`write_atomic`] creating the file with `mode` (the process's umask still
/// applies): 0o644 for outputs the user means to share, 0o600 for anything
/// that may hold an app's data.
pub fn write_atomic_mode(
    path: &Path,
    mode: u32,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "the output path has no file name",
        )
    })?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let (file, tmp) = create_temp(dir, name, mode)?;
    let result = (|| {
        let mut w = BufWriter::new(file);
        write(&mut w)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)?;
        // The rename itself is durable once the directory is synced; a
        // directory that cannot be opened or synced is not an error.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// `O_NOFOLLOW` on Linux (its value depends on the architecture).
#[cfg(any(
    target_arch = "aarch64",
    target_arch = "arm",
    target_arch = "powerpc",
    target_arch = "powerpc64"
))]
const O_NOFOLLOW: i32 = 0o100000;
#[cfg(not(any(
    target_arch = "aarch64",
    target_arch = "arm",
    target_arch = "powerpc",
    target_arch = "powerpc64"
)))]
const O_NOFOLLOW: i32 = 0o400000;

/// Creates `.<name>.<random>.tmp` in `dir` with `O_CREAT | O_EXCL |
/// O_NOFOLLOW` (and close-on-exec), trying new names when one is taken.
fn create_temp(
    dir: &Path,
    name: &std::ffi::OsStr,
    mode: u32,
) -> io::Result<(File, std::path::PathBuf)> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut last = None;
    for _ in 0..32 {
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".{:016x}.tmp", unpredictable()));
        let tmp = dir.join(tmp_name);
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(O_NOFOLLOW)
            .open(&tmp)
        {
            Ok(f) => return Ok((f, tmp)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no free temporary name")))
}

/// 64 bits an observer cannot predict: from the kernel's random pool, else
/// from std's randomly keyed hasher (itself seeded from the kernel) over the
/// time and a counter.
fn unpredictable() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut bytes = [0u8; 8];
    if let Ok(mut f) = File::open("/dev/urandom") {
        if io::Read::read_exact(&mut f, &mut bytes).is_ok() {
            return u64::from_ne_bytes(bytes);
        }
    }
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_replaces_and_cleans_up() {
        let dir = std::env::temp_dir().join(format!("heapscope-pprof-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out.txt");
        std::fs::write(&path, "old").unwrap();
        write_atomic(&path, |w| w.write_all(b"new")).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        let err = write_atomic(&path, |w| {
            w.write_all(b"partial")?;
            Err(io::Error::other("boom"))
        });
        assert!(err.is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(left.len(), 1, "the temporary file must be removed");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn write_atomic_is_private_and_never_follows_planted_links() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("heapscope-pprof-x-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let victim = dir.join("victim");
        std::fs::write(&victim, "precious").unwrap();
        // Links under the names the old code used, and one at the target.
        let path = dir.join("out.txt");
        std::os::unix::fs::symlink(
            &victim,
            dir.join(format!(".out.txt.{}.tmp", std::process::id())),
        )
        .unwrap();
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        write_atomic(&path, |w| w.write_all(b"new")).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_file(), "the link itself is replaced");
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        let shared = dir.join("shared.svg");
        write_atomic_mode(&shared, 0o644, |w| w.write_all(b"<svg/>")).unwrap();
        let mode = std::fs::metadata(&shared).unwrap().permissions().mode() & 0o777;
        // 0644 less whatever the umask takes away.
        assert_eq!(mode & !0o644, 0, "{mode:o}");
        // Two temporary names are never the same.
        assert_ne!(unpredictable(), unpredictable());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
