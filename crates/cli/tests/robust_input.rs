//! Hostile and accidental inputs: endless input without a newline
//! (`/dev/zero`, gzip bombs), a dump truncated while it is read, several
//! dumps in one file, dumps without ROOT records, and zstd files that start
//! with a skippable frame. Each must end with a clear message (exit 2) or a
//! warning, in bounded memory and time, never with a signal.

mod common;

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{heapscope, population, require_ruby, scratch_dir, summary_run, Run};
use serde_json::Value;

/// The address-space limit the endless inputs run under: far above what
/// reading needs (about 100 MB), far below what an unbounded buffer reaches.
const AS_LIMIT: u64 = 2 << 30;

/// Runs `heapscope ARGS` under `prlimit --as=AS_LIMIT` with `stdin`,
/// sampling its peak resident set (VmHWM) while it runs. Returns the run,
/// the peak in KiB and the wall time.
fn limited(args: &[&str], stdin: Stdio) -> (Run, u64, Duration) {
    let start = Instant::now();
    let mut child = Command::new("prlimit")
        .arg(format!("--as={AS_LIMIT}"))
        .arg(env!("CARGO_BIN_EXE_heapscope"))
        .args(args)
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run prlimit (util-linux)");
    // prlimit execs heapscope in place, so the pid is heapscope's.
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = 0u64;
    loop {
        if let Ok(text) = fs::read_to_string(&status_path) {
            if let Some(kb) = text
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse::<u64>().ok())
            {
                peak = peak.max(kb);
            }
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "heapscope {args:?} still running after 2 minutes"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = child.wait_with_output().unwrap();
    let run = Run {
        args: args.iter().map(|s| s.to_string()).collect(),
        code: out.status.code(),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    (run, peak, start.elapsed())
}

/// Exit 2, "not a Ruby heap dump", no panic or allocation failure, bounded
/// memory and time.
fn assert_refused_quickly(what: &str, run: &Run, peak_kb: u64, took: Duration) {
    eprintln!(
        "{what}: exit {:?} after {:.2} s, peak RSS {} MiB: {}",
        run.code,
        took.as_secs_f64(),
        peak_kb >> 10,
        run.stderr.trim()
    );
    run.usage_error();
    assert!(
        run.stderr.contains("not a Ruby heap dump"),
        "{what}: {}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("panicked") && !run.stderr.contains("memory allocation"),
        "{what}: {}",
        run.stderr
    );
    assert!(
        peak_kb < 512 << 10,
        "{what}: peak RSS {} MiB",
        peak_kb >> 10
    );
    assert!(
        took < Duration::from_secs(60),
        "{what}: took {:.1} s",
        took.as_secs_f64()
    );
}

#[test]
fn dev_zero_is_refused_in_bounded_memory() {
    let (run, peak, took) = limited(&["summary", "--threads", "2", "/dev/zero"], Stdio::null());
    assert_refused_quickly("/dev/zero", &run, peak, took);
    assert!(run.stderr.contains("/dev/zero"), "{}", run.stderr);
    assert!(run.stderr.contains("binary data"), "{}", run.stderr);
    assert!(run.stderr.contains("64 MiB"), "{}", run.stderr);
    assert!(run.stderr.contains("line 1"), "{}", run.stderr);

    // The same stream on stdin, and through a graph command.
    let (run, peak, took) = limited(
        &["summary", "--threads", "2", "-"],
        File::open("/dev/zero").unwrap().into(),
    );
    assert_refused_quickly("stdin from /dev/zero", &run, peak, took);
    let (run, peak, took) = limited(&["retained", "--threads", "2", "/dev/zero"], Stdio::null());
    assert_refused_quickly("retained /dev/zero", &run, peak, took);
}

/// `count` gzip members of `member_mib` MiB of `byte` each: a tiny file that
/// decompresses to `count * member_mib` MiB.
fn gzip_bomb(path: &Path, byte: u8, member_mib: usize, count: usize) -> u64 {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(&vec![byte; member_mib << 20]).unwrap();
    let member = enc.finish().unwrap();
    let mut f = File::create(path).unwrap();
    for _ in 0..count {
        f.write_all(&member).unwrap();
    }
    ((member_mib << 20) * count) as u64
}

#[test]
fn gzip_bombs_are_refused_quickly_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    // 16 GiB of zeros in about 16 MB of file.
    let zeros = dir.path().join("zeros.gz");
    let expands_to = gzip_bomb(&zeros, 0, 16, 1024);
    eprintln!(
        "bomb of zeros: {} bytes expanding to {} GiB",
        fs::metadata(&zeros).unwrap().len(),
        expands_to >> 30
    );
    let z = zeros.to_str().unwrap();
    let (run, peak, took) = limited(&["summary", "--threads", "2", z], Stdio::null());
    assert_refused_quickly("gzip bomb of zeros", &run, peak, took);
    assert!(run.stderr.contains("binary data"), "{}", run.stderr);
    let (run, peak, took) = limited(
        &["summary", "--threads", "2", "-"],
        File::open(&zeros).unwrap().into(),
    );
    assert_refused_quickly("gzip bomb of zeros on stdin", &run, peak, took);

    // Newlines only: short lines, but no record in the first 64 MiB either.
    let newlines = dir.path().join("newlines.gz");
    gzip_bomb(&newlines, b'\n', 16, 1024);
    let (run, peak, took) = limited(
        &["summary", "--threads", "2", newlines.to_str().unwrap()],
        Stdio::null(),
    );
    assert_refused_quickly("gzip bomb of newlines", &run, peak, took);
    assert!(run.stderr.contains("blank lines"), "{}", run.stderr);

    // Spaces: one endless blank line.
    let spaces = dir.path().join("spaces.gz");
    gzip_bomb(&spaces, b' ', 16, 1024);
    let (run, peak, took) = limited(
        &["summary", "--threads", "2", spaces.to_str().unwrap()],
        Stdio::null(),
    );
    assert_refused_quickly("gzip bomb of spaces", &run, peak, took);
}

#[test]
fn a_long_line_before_any_record_is_refused_with_its_line_number() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("long.txt");
    let mut f = File::create(&path).unwrap();
    f.write_all(b"hello\n\n").unwrap();
    f.write_all(&vec![b'a'; 80 << 20]).unwrap();
    f.write_all(b"\n").unwrap();
    drop(f);
    let (run, peak, took) = limited(
        &["summary", "--threads", "2", path.to_str().unwrap()],
        Stdio::null(),
    );
    assert_refused_quickly("a text line of 80 MiB", &run, peak, took);
    assert!(run.stderr.contains("line 3"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("no record ends within its first 64 MiB, and line 3 runs on"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("aaaa"), "{}", run.stderr);
}

/// A line of `{"address":..., "type":"ARRAY", ...}` with `n` references to
/// `target`, as Ruby writes a huge array.
fn huge_array_line(address: u64, class: &str, target: &str, n: usize) -> Vec<u8> {
    let mut line = format!(
        r#"{{"address":"0x{address:x}", "type":"ARRAY", "class":"{class}", "length":{n}, "references":["#
    )
    .into_bytes();
    let one = format!(r#""{target}""#);
    for i in 0..n {
        if i > 0 {
            line.push(b',');
        }
        line.extend_from_slice(one.as_bytes());
    }
    line.extend_from_slice(br#"], "memsize":40, "flags":{"wb_protected":true}}"#);
    line.push(b'\n');
    line
}

fn json_lines(path: &Path) -> Vec<Value> {
    fs::read(path)
        .unwrap()
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect()
}

#[test]
fn lines_over_the_bound_after_a_record_are_read_whole() {
    // A real dump with an array line of 80 MiB appended: the bound is on the
    // first record only.
    let pop = population();
    let records = json_lines(&pop.dump);
    let some_object = records
        .iter()
        .find(|r| r["type"] == "STRING")
        .expect("a STRING in the dump");
    let array_class = records
        .iter()
        .find(|r| r["type"] == "ARRAY")
        .and_then(|r| r["class"].as_str())
        .expect("an ARRAY in the dump");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("with-huge-array.dump");
    let mut bytes = fs::read(&pop.dump).unwrap();
    let line = huge_array_line(
        0x7fff_0000_0000,
        array_class,
        some_object["address"].as_str().unwrap(),
        5_000_000,
    );
    assert!(line.len() > 64 << 20, "{}", line.len());
    bytes.extend_from_slice(&line);
    fs::write(&path, &bytes).unwrap();
    let v = summary_run(
        &path,
        &[
            "--format",
            "json",
            "--by",
            "type",
            "--top",
            "0",
            "--include-tracer",
        ],
    )
    .json();
    assert_eq!(
        v["totals"]["dump_objects"].as_u64().unwrap(),
        pop.num("heap_object_lines") + 1
    );
    assert_eq!(
        v["diagnostics"]["malformed_lines"], 0,
        "{}",
        v["diagnostics"]
    );
    // With references loaded too (a graph command).
    let run = heapscope(&["retained", path.to_str().unwrap(), "--format", "json"]);
    run.ok();
}

/// A real dump of about 100 MB (bench/gen_dump.rb), written once per run.
fn big_real_dump() -> &'static Path {
    static DUMP: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &DUMP
        .get_or_init(|| {
            require_ruby();
            let dir = scratch_dir("heapscope-robust-");
            let path = dir.path().join("big.dump");
            let script = common::repo_root().join("bench").join("gen_dump.rb");
            let out = Command::new("ruby")
                .arg(&script)
                .arg(&path)
                .arg("100")
                .current_dir(dir.path())
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "gen_dump.rb: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            (dir, path)
        })
        .1
}

#[test]
fn a_dump_truncated_while_it_is_read_fails_cleanly() {
    let src = big_real_dump();
    let len = fs::metadata(src).unwrap().len();
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("rewritten.dump");
    let mut hits = 0;
    let mut outcomes = Vec::new();
    // Truncate after various delays until it happens mid-read at least twice
    // (a debug build reads 100 MB in a few seconds; the first tries hit).
    let delays = [300u64, 150, 600, 80, 40, 1000, 20, 1500, 10, 2500];
    for (attempt, &delay) in delays.iter().enumerate() {
        fs::copy(src, &work).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_heapscope"))
            .args(["summary", "--threads", "2"])
            .arg(&work)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        // What copytruncate does, or a new dump opened with O_TRUNC at the
        // same path: cut the file, then write something else.
        let mut f = OpenOptions::new().write(true).open(&work).unwrap();
        f.set_len(if attempt % 2 == 0 { 0 } else { len / 3 })
            .unwrap();
        f.write_all(b"{\"type\":\"ROOT\"").unwrap();
        drop(f);
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let code = out.status.code();
        assert!(
            code.is_some(),
            "attempt {attempt} (truncated after {delay} ms): killed by a signal ({}): {stderr}",
            out.status
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        match code {
            Some(2) => {
                assert!(
                    stderr.contains("truncated while it was being read")
                        && stderr.contains("rewritten.dump"),
                    "attempt {attempt}: exit 2 for another reason: {stderr}"
                );
                assert!(out.stdout.is_empty());
                hits += 1;
            }
            Some(0) => {
                // It finished first; then the change may have been seen at the end.
                if stderr.contains("warning") {
                    assert!(
                        stderr.contains("truncated") || stderr.contains("modified"),
                        "attempt {attempt}: {stderr}"
                    );
                }
            }
            other => panic!("attempt {attempt}: exit {other:?}: {stderr}"),
        }
        outcomes.push((delay, code, stderr.lines().last().unwrap_or("").to_string()));
        if hits >= 2 {
            break;
        }
    }
    eprintln!("outcomes: {outcomes:#?}");
    assert!(
        hits >= 1,
        "the truncation never happened mid-read: {outcomes:#?}"
    );
}

#[test]
fn a_file_that_grows_while_it_is_read_is_read_to_its_size_at_open_with_a_warning() {
    let src = big_real_dump();
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("growing.dump");
    fs::copy(src, &work).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_heapscope"))
        .args(["summary", "--threads", "2", "--format", "json"])
        .arg(&work)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let mut f = OpenOptions::new().append(true).open(&work).unwrap();
    f.write_all(b"{\"address\":\"0x1\", \"type\":\"STRING\"}\n")
        .unwrap();
    drop(f);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    // Either it was done before the append, or it says so.
    if !v["diagnostics"]["file_changed"].is_null() {
        assert!(stderr.contains("grew"), "{stderr}");
        assert!(v["diagnostics"]["file_changed"]
            .as_str()
            .unwrap()
            .contains("grew"));
    }
    assert_eq!(v["diagnostics"]["bytes"], fs::metadata(src).unwrap().len());
}

fn dump_count(v: &Value) -> u64 {
    v["totals"]["dump_objects"].as_u64().unwrap()
}

#[test]
fn concatenated_dumps_are_warned_about() {
    let pop = population();
    let dir = tempfile::tempdir().unwrap();
    let twice = dir.path().join("twice.dump");
    let one = fs::read(&pop.dump).unwrap();
    fs::write(&twice, [one.as_slice(), one.as_slice()].concat()).unwrap();
    let lines = one.iter().filter(|&&b| b == b'\n').count() as u64;

    // The clean dump: no warnings at all.
    let clean = summary_run(&pop.dump, &["--format", "json"]);
    assert!(clean.stderr.is_empty(), "{}", clean.stderr);
    let clean = clean.json();
    assert_eq!(clean["diagnostics"]["warnings"], serde_json::json!([]));
    assert_eq!(clean["diagnostics"]["duplicate_addresses"], 0);

    let run = summary_run(&twice, &["--format", "json"]);
    let v = run.json();
    let objects = dump_count(&clean);
    assert_eq!(dump_count(&v), 2 * objects, "both copies are counted");
    assert_eq!(v["diagnostics"]["duplicate_addresses"], objects);
    assert_eq!(
        v["diagnostics"]["late_roots"],
        clean["diagnostics"]["roots"]
    );
    // The first ROOT of the second copy, by line number.
    let first_line = format!("twice.dump:{}:", lines + 1);
    assert!(run.stderr.contains(&first_line), "{}", run.stderr);
    assert!(
        run.stderr.contains("several dumps concatenated"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains(&format!("{objects} heap objects repeat the address")),
        "{}",
        run.stderr
    );
    let warnings = v["diagnostics"]["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    // -q silences stderr, not the JSON.
    let quiet = summary_run(&twice, &["--format", "json", "-q"]);
    assert!(quiet.stderr.is_empty(), "{}", quiet.stderr);
    assert_eq!(
        quiet.json()["diagnostics"]["warnings"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // diff carries them in its warnings.
    let run = common::diff_run(&[&pop.dump, &twice], &["--format", "json"]);
    let v = run.json();
    let w: Vec<&str> = v["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w.as_str())
        .collect();
    assert!(w.iter().any(|w| w.contains("repeat the address")), "{w:?}");

    // Graph commands say that reachability cannot be judged, and still run.
    for cmd in ["retained", "suspects"] {
        let run = heapscope(&[cmd, twice.to_str().unwrap()]);
        run.ok();
        assert!(
            run.stderr.contains("reachability cannot be judged"),
            "{cmd}: {}",
            run.stderr
        );
        // And in JSON, for readers that never see stderr.
        let run = heapscope(&[cmd, twice.to_str().unwrap(), "--format", "json", "-q"]);
        run.ok();
        let v: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
        let w = v["warnings"].as_array().expect("a warnings array");
        assert!(
            w.iter().any(|w| w
                .as_str()
                .unwrap()
                .contains("reachability cannot be judged")),
            "{cmd}: {w:?}"
        );
    }
}

#[test]
fn a_dump_without_roots_says_reachability_cannot_be_judged() {
    // A real `dump_all(since:)` dump: no ROOT records.
    require_ruby();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("since.dump");
    let out = Command::new("ruby")
        .arg("-robjspace")
        .arg("-e")
        .arg(
            r#"ObjectSpace.trace_object_allocations_start
GC.start
gen = GC.count
$keep = Array.new(2000) { |i| "kept #{i}" }
File.open(ARGV[0], "w") { |f| ObjectSpace.dump_all(output: f, since: gen) }"#,
        )
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = fs::read_to_string(&path).unwrap();
    assert!(
        !text.contains(r#""type":"ROOT""#),
        "since: wrote ROOT records"
    );

    // summary does not care about reachability: no warning.
    let run = summary_run(&path, &[]);
    run.ok();
    assert!(!run.stderr.contains("ROOT"), "{}", run.stderr);
    // The graph commands do.
    for cmd in ["retained", "suspects"] {
        let run = heapscope(&[cmd, path.to_str().unwrap()]);
        run.ok();
        assert!(
            run.stderr.contains("no ROOT records")
                && run.stderr.contains("reachability cannot be judged"),
            "{cmd}: {}",
            run.stderr
        );
    }
}

/// A zstd skippable frame: magic 0x184D2A5?, a little-endian length, data.
fn skippable_frame(nibble: u8, data: &[u8]) -> Vec<u8> {
    let mut f = (0x184D_2A50u32 | nibble as u32).to_le_bytes().to_vec();
    f.extend_from_slice(&(data.len() as u32).to_le_bytes());
    f.extend_from_slice(data);
    f
}

#[test]
fn zstd_with_a_leading_skippable_frame_is_read() {
    let pop = population();
    let dir = tempfile::tempdir().unwrap();
    let report = |p: &Path| {
        let mut v =
            summary_run(p, &["--format", "json", "--by", "type,class", "--top", "0"]).json();
        v.as_object_mut().unwrap().remove("source");
        v
    };
    let want = report(&pop.dump);
    let frame = zstd::stream::encode_all(File::open(&pop.dump).unwrap(), 3).unwrap();
    for nibble in [0u8, 0xa, 0xf] {
        let path = dir.path().join(format!("skippable-{nibble}.zst"));
        fs::write(
            &path,
            [skippable_frame(nibble, b"pzstd index"), frame.clone()].concat(),
        )
        .unwrap();
        assert_eq!(report(&path), want, "skippable frame {nibble:x}");
        // On stdin too.
        let run = common::heapscope_with_stdin(
            &[
                "summary",
                "-",
                "--format",
                "json",
                "--by",
                "type,class",
                "--top",
                "0",
            ],
            File::open(&path).unwrap(),
        );
        let mut v = run.json();
        v.as_object_mut().unwrap().remove("source");
        assert_eq!(v, want);
    }
    // pzstd's own output, when it is installed (Debian's zstd package).
    if Command::new("pzstd").arg("--version").output().is_ok() {
        let out = dir.path().join("pzstd.zst");
        let status = Command::new("pzstd")
            .args(["-q", "-p", "2", "-f"])
            .arg(&pop.dump)
            .arg("-o")
            .arg(&out)
            .status()
            .unwrap();
        assert!(status.success());
        let head = fs::read(&out).unwrap();
        assert_eq!(
            &head[1..4],
            &[0x2a, 0x4d, 0x18],
            "pzstd starts with a skippable frame"
        );
        assert_eq!(report(&out), want, "pzstd output");
    } else {
        eprintln!("pzstd not installed: checked hand-made skippable frames only");
    }
}
