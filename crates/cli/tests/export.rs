//! `heapscope flamegraph` and `heapscope pprof` on real Ruby heap dumps:
//! the dumps of `examples/leaky_app.rb` and one written without allocation
//! tracing.
//!
//! The pprof output is also decoded by `protoc` against the official
//! `profile.proto` when both are installed (Debian: `apt-get install
//! protobuf-compiler golang-github-google-pprof-dev`); otherwise that check
//! prints a note and passes.

mod common;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::{heapscope, repo_root, run_ruby, scratch_dir, summary_json};
use heapscope_export::pprof::{read_gz, Profile};
use serde_json::Value;
use tempfile::TempDir;

struct Dumps {
    _dir: TempDir,
    /// The third dump of `examples/leaky_app.rb` (the leak at its largest).
    leaky: PathBuf,
    /// A dump of a process that never traced allocations.
    untraced: PathBuf,
}

fn dumps() -> &'static Dumps {
    static DUMPS: OnceLock<Dumps> = OnceLock::new();
    DUMPS.get_or_init(|| {
        let dir = scratch_dir("heapscope-export-");
        let out = dir.path().join("leaky");
        run_ruby(
            &repo_root().join("examples").join("leaky_app.rb"),
            &[&out],
            &[],
            &repo_root(),
        );
        let leaky = out.join("heap-3.dump");
        assert!(leaky.is_file(), "leaky_app.rb wrote no {}", leaky.display());
        let script = dir.path().join("untraced.rb");
        fs::write(
            &script,
            "require \"objspace\"\n\
             KEEP = Array.new(500) { |i| \"untraced string #{i}\" * 3 }\n\
             GC.start\n\
             File.open(ARGV[0], \"w\") { |f| ObjectSpace.dump_all(output: f) }\n",
        )
        .unwrap();
        let untraced = dir.path().join("untraced.dump");
        run_ruby(&script, &[&untraced], &[], dir.path());
        Dumps {
            _dir: dir,
            leaky,
            untraced,
        }
    })
}

fn run_ok(args: &[&OsStr]) -> common::Run {
    let r = heapscope(args);
    r.ok();
    r
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

/// Files in `dir` other than `keep`: atomic writes must leave no temporary file.
fn stray_files(dir: &Path, keep: &[&Path]) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !keep.contains(&p.as_path()))
        .collect()
}

fn reachable_bytes(dump: &Path, extra: &[&str]) -> u64 {
    let mut args = vec![os("retained"), dump.as_os_str(), os("--format"), os("json")];
    args.extend(extra.iter().map(|s| os(s)));
    let v = run_ok(&args).json();
    v["reachable"]["bytes"]
        .as_u64()
        .unwrap_or_else(|| panic!("no reachable.bytes in {v}"))
}

/// Parses folded stacks, checking every line's shape.
fn parse_folded(text: &str) -> Vec<(Vec<String>, u64)> {
    text.lines()
        .map(|line| {
            let (stack, value) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("folded line without a value: {line:?}"));
            let value: u64 = value
                .parse()
                .unwrap_or_else(|_| panic!("folded line with a bad value: {line:?}"));
            assert!(value > 0, "zero-valued line: {line:?}");
            let frames: Vec<String> = stack.split(';').map(str::to_string).collect();
            assert!(
                frames.iter().all(|f| !f.is_empty()),
                "empty frame in {line:?}"
            );
            (frames, value)
        })
        .collect()
}

fn folded(dump: &Path, extra: &[&str]) -> Vec<(Vec<String>, u64)> {
    let mut args = vec![os("flamegraph"), dump.as_os_str(), os("--folded")];
    args.extend(extra.iter().map(|s| os(s)));
    parse_folded(&run_ok(&args).stdout_text())
}

#[test]
fn flamegraph_svg_shows_the_leak() {
    let d = dumps();
    let dir = scratch_dir("heapscope-export-svg-");
    let svg_path = dir.path().join("leak.svg");
    run_ok(&[
        os("flamegraph"),
        d.leaky.as_os_str(),
        os("-o"),
        svg_path.as_os_str(),
    ]);
    let svg = fs::read_to_string(&svg_path).expect("the SVG was written");
    let head = svg.trim_start();
    assert!(
        head.starts_with("<?xml") || head.starts_with("<svg"),
        "not an SVG: {}",
        &head[..head.len().min(200)]
    );
    assert!(svg.contains("<svg"), "no <svg> element");
    assert!(svg.trim_end().ends_with("</svg>"), "the SVG is cut short");
    assert!(
        svg.contains("heapscope: retained memory of "),
        "no title in the SVG"
    );
    assert!(svg.contains("LeakedEntry"), "no LeakedEntry frame");
    assert!(svg.contains("examples/leaky.rb:"), "no allocation site");
    assert!(svg.contains("bytes"), "the count name is bytes");
    assert_eq!(stray_files(dir.path(), &[&svg_path]), Vec::<PathBuf>::new());
}

#[test]
fn folded_stacks_total_the_reachable_bytes() {
    let d = dumps();
    let reachable = reachable_bytes(&d.leaky, &[]);
    let lines = folded(&d.leaky, &[]);
    let total: u64 = lines.iter().map(|l| l.1).sum();
    assert_eq!(
        total, reachable,
        "folded total vs `retained` reachable bytes"
    );
    // Stacks are merged: each appears once.
    let mut seen = BTreeMap::new();
    for (frames, _) in &lines {
        assert!(
            seen.insert(frames.join(";"), ()).is_none(),
            "stack repeated: {frames:?}"
        );
    }
    // The leak: LeakedEntry objects under the Array RequestLog keeps.
    let leaked: Vec<_> = lines
        .iter()
        .filter(|(f, _)| {
            let leaf = f.last().unwrap();
            leaf.starts_with("LeakedEntry ") && leaf.contains("examples/leaky.rb:")
        })
        .collect();
    assert!(!leaked.is_empty(), "no stack ends in a LeakedEntry frame");
    for (frames, _) in &leaked {
        let parent = &frames[frames.len() - 2];
        assert!(parent.starts_with("Array "), "LeakedEntry under {parent}");
    }

    // Cutting the depth moves bytes up, never loses them.
    let cut = folded(&d.leaky, &["--max-depth", "2"]);
    assert!(cut.iter().all(|(f, _)| f.len() <= 2));
    assert_eq!(cut.iter().map(|l| l.1).sum::<u64>(), reachable);

    // With the tracer's table counted, both grow alike.
    let with_tracer = reachable_bytes(&d.leaky, &["--include-tracer"]);
    let lines = folded(&d.leaky, &["--include-tracer"]);
    assert_eq!(lines.iter().map(|l| l.1).sum::<u64>(), with_tracer);
    assert!(with_tracer > reachable, "leaky_app.rb traces allocations");
}

#[test]
fn folded_to_a_file_matches_stdout() {
    let d = dumps();
    let dir = scratch_dir("heapscope-export-folded-");
    let path = dir.path().join("heap.folded");
    let stdout = run_ok(&[os("flamegraph"), d.untraced.as_os_str(), os("--folded")]).stdout;
    run_ok(&[
        os("flamegraph"),
        d.untraced.as_os_str(),
        os("--folded"),
        os("-o"),
        path.as_os_str(),
    ]);
    assert_eq!(fs::read(&path).unwrap(), stdout);
    let total: u64 = parse_folded(&String::from_utf8(stdout).unwrap())
        .iter()
        .map(|l| l.1)
        .sum();
    assert_eq!(total, reachable_bytes(&d.untraced, &[]));
}

#[test]
fn bad_arguments_and_outputs_are_usage_errors() {
    let d = dumps();
    let dir = scratch_dir("heapscope-export-bad-");
    let missing = dir.path().join("no-such-dir").join("out.svg");
    heapscope(&[
        os("flamegraph"),
        d.untraced.as_os_str(),
        os("-o"),
        missing.as_os_str(),
    ])
    .usage_error();
    heapscope(&[
        os("pprof"),
        d.untraced.as_os_str(),
        os("-o"),
        missing.as_os_str(),
    ])
    .usage_error();
    heapscope(&[
        os("flamegraph"),
        d.untraced.as_os_str(),
        os("--max-depth"),
        os("0"),
    ])
    .usage_error();
    assert_eq!(stray_files(dir.path(), &[]), Vec::<PathBuf>::new());
}

fn pprof_bytes(dump: &Path, extra: &[&str]) -> (Vec<u8>, Profile) {
    let dir = scratch_dir("heapscope-export-pprof-");
    let path = dir.path().join("heap.pb.gz");
    let mut args = vec![os("pprof"), dump.as_os_str(), os("-o"), path.as_os_str()];
    args.extend(extra.iter().map(|s| os(s)));
    run_ok(&args);
    let gz = fs::read(&path).expect("the profile was written");
    assert_eq!(&gz[..2], &[0x1f, 0x8b], "the profile is gzipped");
    assert_eq!(stray_files(dir.path(), &[&path]), Vec::<PathBuf>::new());
    let profile = read_gz(&gz).expect("the profile decodes");
    (gz, profile)
}

/// Per sample: (function, file, line, type label, class label, count, bytes).
type Row = (String, String, i64, String, Option<String>, i64, i64);

fn check_and_rows(p: &Profile) -> Vec<Row> {
    let s = |i: i64| -> String {
        p.string_table
            .get(i as usize)
            .unwrap_or_else(|| panic!("string index {i} out of the table"))
            .clone()
    };
    assert_eq!(p.string_table.first().map(String::as_str), Some(""));
    let types: Vec<(String, String)> = p
        .sample_type
        .iter()
        .map(|t| (s(t.r#type), s(t.unit)))
        .collect();
    assert_eq!(
        types,
        heapscope_pprof::SAMPLE_TYPES
            .map(|(t, u)| (t.to_string(), u.to_string()))
            .to_vec(),
        "the agent's sample types"
    );
    assert_eq!(s(p.default_sample_type), "inuse_space");
    let locations: BTreeMap<u64, _> = p.location.iter().map(|l| (l.id, l)).collect();
    let functions: BTreeMap<u64, _> = p.function.iter().map(|f| (f.id, f)).collect();
    assert_eq!(locations.len(), p.location.len(), "location ids are unique");
    assert_eq!(functions.len(), p.function.len(), "function ids are unique");
    let mut keys = BTreeMap::new();
    p.sample
        .iter()
        .map(|smp| {
            assert_eq!(smp.location_id.len(), 1, "one location per sample");
            assert_eq!(smp.value.len(), 4, "four values per sample");
            // A dump holds live objects only: alloc_* = inuse_*.
            assert_eq!(smp.value[..2], smp.value[2..]);
            let loc = locations[&smp.location_id[0]];
            assert_eq!(loc.line.len(), 1);
            let f = functions[&loc.line[0].function_id];
            assert_eq!(f.start_line, loc.line[0].line);
            let label = |k: &str| {
                let found: Vec<String> = smp
                    .label
                    .iter()
                    .filter(|l| s(l.key) == k)
                    .map(|l| s(l.str))
                    .collect();
                assert!(found.len() <= 1, "label {k} repeated");
                found.into_iter().next()
            };
            let row: Row = (
                s(f.name),
                s(f.filename),
                loc.line[0].line,
                label("type").expect("every sample has a type label"),
                label("class"),
                smp.value[2],
                smp.value[3],
            );
            let key = (
                row.0.clone(),
                row.1.clone(),
                row.2,
                row.3.clone(),
                row.4.clone(),
            );
            assert!(
                keys.insert(key, ()).is_none(),
                "two samples for one site/type/class: {row:?}"
            );
            row
        })
        .collect()
}

fn totals(rows: &[Row]) -> (u64, u64) {
    (
        rows.iter().map(|r| r.5 as u64).sum(),
        rows.iter().map(|r| r.6 as u64).sum(),
    )
}

fn summary_totals(dump: &Path, extra: &[&str]) -> (u64, u64) {
    let v = summary_json(dump, extra);
    let t = &v["totals"];
    (
        t["objects"].as_u64().expect("totals.objects"),
        t["memsize"].as_u64().expect("totals.memsize"),
    )
}

fn class_count(dump: &Path, class: &str) -> u64 {
    let v: Value = summary_json(dump, &["--by", "class", "--top", "0"]);
    common::single_count(&v, "class", &Value::String(class.to_string()))
}

#[test]
fn pprof_totals_match_summary() {
    let d = dumps();
    let (_, p) = pprof_bytes(&d.leaky, &[]);
    let rows = check_and_rows(&p);
    assert_eq!(totals(&rows), summary_totals(&d.leaky, &[]));

    // The leaked objects, by their class label, at their allocation site.
    let leaked: Vec<&Row> = rows
        .iter()
        .filter(|r| r.4.as_deref() == Some("LeakedEntry"))
        .collect();
    assert!(!leaked.is_empty(), "no sample labelled class=LeakedEntry");
    for r in &leaked {
        assert!(r.1.ends_with("examples/leaky.rb"), "{r:?}");
        assert_eq!(r.3, "OBJECT");
        assert!(r.2 > 0 && r.0 != "(untraced)", "{r:?}");
    }
    assert_eq!(
        leaked.iter().map(|r| r.5 as u64).sum::<u64>(),
        class_count(&d.leaky, "LeakedEntry")
    );

    let (_, with) = pprof_bytes(&d.leaky, &["--include-tracer"]);
    let with_rows = check_and_rows(&with);
    assert_eq!(
        totals(&with_rows),
        summary_totals(&d.leaky, &["--include-tracer"])
    );
    assert_eq!(
        totals(&with_rows).0,
        totals(&rows).0 + 1,
        "one tracer table"
    );
}

#[test]
fn pprof_of_an_untraced_dump_has_one_untraced_location() {
    let d = dumps();
    let (_, p) = pprof_bytes(&d.untraced, &[]);
    let rows = check_and_rows(&p);
    assert_eq!(totals(&rows), summary_totals(&d.untraced, &[]));
    assert_eq!(p.location.len(), 1, "only the (untraced) location");
    assert!(rows.iter().all(|r| r.0 == "(untraced)" && r.1.is_empty()));
    let strings: u64 = rows
        .iter()
        .filter(|r| r.3 == "STRING" && r.4.as_deref() == Some("String"))
        .map(|r| r.5 as u64)
        .sum();
    assert!(strings >= 500, "the 500 kept strings: {strings}");
}

#[test]
fn pprof_decodes_with_protoc_against_the_official_schema() {
    let d = dumps();
    let (gz, p) = pprof_bytes(&d.leaky, &[]);
    let Some(text) = common::protoc::decode_gz(&gz) else {
        return;
    };
    for s in [
        "alloc_objects",
        "alloc_space",
        "inuse_objects",
        "inuse_space",
        "count",
        "bytes",
        "LeakedEntry",
    ] {
        assert!(
            text.contains(&format!("string_table: \"{s}\"")),
            "protoc's decoding has no string {s:?}"
        );
    }
    assert_eq!(text.matches("\nsample {").count(), p.sample.len());
    assert_eq!(text.matches("sample_type {").count(), 4);
    assert!(
        text.contains(&format!("default_sample_type: {}", p.default_sample_type)),
        "no default_sample_type in protoc's decoding"
    );
}

/// Runs `heapscope ARGS` from a shell that first plants, in `dir`, a symlink
/// to `victim` at the name the temporary file of `out` used to have
/// (`.NAME.PID.tmp`: the shell `exec`s heapscope, so `$$` is its pid), and
/// another at `out` itself. Returns the exit code.
fn run_with_planted_symlinks(dir: &Path, out: &str, victim: &Path, args: &[&str]) -> Option<i32> {
    let script =
        format!(r#"ln -s "$1" ".{out}.$$.tmp" && ln -sf "$1" "{out}" && shift && exec "$@""#);
    let status = std::process::Command::new("sh")
        .current_dir(dir)
        .arg("-c")
        .arg(script)
        .arg("sh")
        .arg(victim)
        .arg(env!("CARGO_BIN_EXE_heapscope"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    status.code()
}

#[test]
fn outputs_are_never_written_through_planted_symlinks() {
    let dump = repo_root().join("tests/fixtures/ruby-3.1-tracing.jsonl");
    let dump = dump.to_str().unwrap();
    let log = repo_root().join("tests/fixtures/memlogs/watch.jsonl");
    let log = log.to_str().unwrap();
    let mut sleeper = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let pid = sleeper.id().to_string();
    // `leaks` takes each file once: three copies of one dump.
    let series = tempfile::tempdir().unwrap();
    let copies: Vec<String> = (1..=3)
        .map(|i| {
            let p = series.path().join(format!("heap-{i}.dump"));
            fs::copy(dump, &p).unwrap();
            p.to_str().unwrap().to_string()
        })
        .collect();
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("flame.svg", vec!["flamegraph", dump, "-o", "flame.svg"]),
        (
            "flame.folded",
            vec!["flamegraph", dump, "--folded", "-o", "flame.folded"],
        ),
        ("heap.pb.gz", vec!["pprof", dump, "-o", "heap.pb.gz"]),
        ("mem.png", vec!["plot", log, "-o", "mem.png"]),
        ("mem.svg", vec!["plot", log, "-o", "mem.svg"]),
        (
            "leaks.svg",
            vec![
                "leaks",
                &copies[0],
                &copies[1],
                &copies[2],
                "--time",
                "0,60,120",
                "--plot",
                "leaks.svg",
            ],
        ),
        (
            "watch.csv",
            vec![
                "watch",
                &pid,
                "--duration",
                "1s",
                "-i",
                "0.2",
                "-o",
                "watch.csv",
            ],
        ),
    ];
    for (out, args) in &cases {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, "precious").unwrap();
        let code = run_with_planted_symlinks(dir.path(), out, &victim, args);
        assert_eq!(code, Some(0), "heapscope {args:?}");
        assert_eq!(
            fs::read_to_string(&victim).unwrap(),
            "precious",
            "heapscope {args:?} wrote through a planted symlink"
        );
        let written = dir.path().join(out);
        let meta = fs::symlink_metadata(&written).unwrap();
        assert!(meta.is_file(), "{out} is not a fresh regular file");
        assert!(meta.len() > 0, "{out} is empty");
        // The planted link is left alone, and no temporary file is left.
        let mut names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names.len(), 3, "{names:?}");
        assert!(names
            .iter()
            .any(|n| n.starts_with('.') && n.ends_with(".tmp")));
    }
    let _ = sleeper.kill();
    let _ = sleeper.wait();
}

/// The frames of an inferno SVG: (title without its size, label shown).
fn svg_frames(svg: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for g in svg.split("<g>").skip(1) {
        let (Some(t0), Some(t1)) = (g.find("<title>"), g.find("</title>")) else {
            continue;
        };
        let title = &g[t0 + "<title>".len()..t1];
        // "NAME (1,234 bytes, 5.00%)"
        let name = title.rsplit_once(" (").map_or(title, |p| p.0).to_string();
        let label = g
            .find("<text")
            .and_then(|a| {
                let rest = &g[a..];
                let open = rest.find('>')? + 1;
                let close = rest.find("</text>")?;
                Some(rest[open..close].to_string())
            })
            .unwrap_or_default();
        out.push((name, label));
    }
    out
}

/// Labels too long for their frame keep the class and the start of the
/// path, and are cut on the right (inferno cuts on the left by default, which
/// loses the class); the details line speaks of bytes.
#[test]
fn flamegraph_labels_keep_the_class_name() {
    let dir = scratch_dir("heapscope-export-labels-");
    // A long, deep application path, as in a container (/app/...).
    let app = dir
        .path()
        .join("app/very/long/application/directory/structure/lib/audit");
    fs::create_dir_all(&app).unwrap();
    let script = app.join("audit_log_with_a_long_file_name.rb");
    fs::write(
        &script,
        "require \"objspace\"\n\
         ObjectSpace.trace_object_allocations_start\n\
         class AuditLog\n  def initialize; @entries = []; end\n  def add(e); @entries << e; end\nend\n\
         class Small; def initialize; @s = \"s\" * 100; end; end\n\
         LOG = AuditLog.new\n\
         3000.times { |i| LOG.add(\"audit entry #{i} \" * 4) }\n\
         SMALL = Array.new(3) { Small.new }\n\
         GC.start\n\
         File.open(ARGV[0], \"w\") { |f| ObjectSpace.dump_all(output: f) }\n",
    )
    .unwrap();
    let dump = dir.path().join("audit.dump");
    run_ruby(&script, &[&dump], &[], dir.path());
    let svg_path = dir.path().join("audit.svg");
    run_ok(&[
        os("flamegraph"),
        dump.as_os_str(),
        os("-o"),
        svg_path.as_os_str(),
    ]);
    let svg = fs::read_to_string(&svg_path).unwrap();
    assert!(
        svg.contains("truncate_text_right = true"),
        "the script would cut labels on the left when zoomed"
    );
    assert!(!svg.contains("Objects:"), "the details line says Objects:");
    assert!(svg.contains("'Bytes retained by'"));
    let frames = svg_frames(&svg);
    let mut cut = 0;
    let mut audit = 0;
    for (name, label) in &frames {
        assert!(!label.starts_with(".."), "{name:?} shown as {label:?}");
        if let Some(kept) = label.strip_suffix("..") {
            cut += 1;
            assert!(name.starts_with(kept), "{name:?} shown as {label:?}");
        } else if !label.is_empty() {
            assert_eq!(label, name);
        }
        if name.starts_with("AuditLog ") && !label.is_empty() {
            audit += 1;
            assert!(
                label.starts_with("AuditLog "),
                "{name:?} shown as {label:?}"
            );
        }
    }
    assert!(cut > 0, "no label was cut: {frames:?}");
    assert!(audit > 0, "no AuditLog frame labelled: {frames:?}");
}
