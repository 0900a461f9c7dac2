//! Decoding pprof files with `protoc` against the official `profile.proto`
//! (Debian's golang-github-google-pprof-dev), so profiles are checked by a
//! decoder heapscope did not write.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

const PPROF_PROTO_DIR: &str = "/usr/share/gocode/src/github.com/google/pprof/proto";

/// Finds `protoc` and the official schema; None (with a note) when missing.
fn protoc_and_schema() -> Option<PathBuf> {
    let dir = PathBuf::from(
        std::env::var_os("HEAPSCOPE_PPROF_PROTO_DIR").unwrap_or_else(|| PPROF_PROTO_DIR.into()),
    );
    if !dir.join("profile.proto").is_file() {
        eprintln!(
            "note: skipping the protoc check: no {}/profile.proto (Debian package \
             golang-github-google-pprof-dev, or set HEAPSCOPE_PPROF_PROTO_DIR)",
            dir.display()
        );
        return None;
    }
    match Command::new("protoc").arg("--version").output() {
        Ok(o) if o.status.success() => Some(dir),
        _ => {
            eprintln!(
                "note: skipping the protoc check: `protoc` is not installed (Debian package \
                 protobuf-compiler)"
            );
            None
        }
    }
}

/// `protoc --decode=perftools.profiles.Profile` of a gzipped profile, as
/// text; asserts that it decodes. None when protoc or the schema is missing.
pub fn decode_gz(gz: &[u8]) -> Option<String> {
    let proto_dir = protoc_and_schema()?;
    let mut raw = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(gz), &mut raw).unwrap();
    let mut child = Command::new("protoc")
        .arg("--decode=perftools.profiles.Profile")
        .arg("-I")
        .arg(&proto_dir)
        .arg("profile.proto")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run protoc");
    child.stdin.take().unwrap().write_all(&raw).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "protoc could not decode the profile: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}
