//! The agent's sampling heap profiler end to end: Ruby programs in
//! `tests/ruby/agent/profiler_*.rb` load the freshly built extension, retain
//! known numbers of objects at lines marked `# @name`, and flush pprof files
//! that are checked here (decoded with `heapscope_pprof::read_gz`, and by
//! `protoc` against the official `profile.proto` when it is installed).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use heapscope_pprof::Profile;
use tempfile::TempDir;

/// Runs `tests/ruby/agent/<program>` with `args` (the output dir appended by
/// the caller where the program wants it); panics with its output on failure.
/// Runs a program under tests/ruby/agent; returns its stdout.
fn run_program(program: &str, args: &[&str]) -> String {
    let script = common::ruby_script(&format!("agent/{program}"));
    let out = common::agent::ruby()
        .arg(&script)
        .args(args)
        .output()
        .expect("run ruby");
    assert!(
        out.status.success(),
        "ruby {program} {args:?} failed ({})\n--- stdout:\n{}\n--- stderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The line of `# @name` in a program.
fn marker_line(program: &str, name: &str) -> i64 {
    let text = std::fs::read_to_string(common::ruby_script(&format!("agent/{program}"))).unwrap();
    let marker = format!("# @{name}");
    let found: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.trim_end().ends_with(&marker))
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(found.len(), 1, "{program}: one line marked {marker}");
    found[0] as i64
}

fn read_profile(path: &Path) -> Profile {
    let gz = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    heapscope_pprof::read_gz(&gz).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One sample, decoded.
#[derive(Debug)]
struct Row {
    /// (function name, file, line), leaf first.
    frames: Vec<(String, String, i64)>,
    ty: String,
    class: Option<String>,
    /// inuse_objects, inuse_space, alloc_objects, alloc_space (live first,
    /// as the tests read them; the profile's order is SAMPLE_TYPES').
    values: [i64; 4],
}

fn rows(p: &Profile) -> Vec<Row> {
    let s = |i: i64| p.string_table[i as usize].clone();
    let types: Vec<(String, String)> = p
        .sample_type
        .iter()
        .map(|t| (s(t.r#type), s(t.unit)))
        .collect();
    assert_eq!(
        types,
        [
            ("alloc_objects", "count"),
            ("alloc_space", "bytes"),
            ("inuse_objects", "count"),
            ("inuse_space", "bytes")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    assert_eq!(s(p.default_sample_type), "inuse_space");
    let locations: BTreeMap<u64, _> = p.location.iter().map(|l| (l.id, l)).collect();
    let functions: BTreeMap<u64, _> = p.function.iter().map(|f| (f.id, f)).collect();
    p.sample
        .iter()
        .map(|sample| {
            let frames = sample
                .location_id
                .iter()
                .map(|id| {
                    let loc = locations[id];
                    assert_eq!(loc.line.len(), 1);
                    let f = functions[&loc.line[0].function_id];
                    (s(f.name), s(f.filename), loc.line[0].line)
                })
                .collect();
            let mut ty = String::new();
            let mut class = None;
            for l in &sample.label {
                match s(l.key).as_str() {
                    "type" => ty = s(l.str),
                    "class" => class = Some(s(l.str)),
                    other => panic!("unexpected label {other}"),
                }
            }
            assert!(!ty.is_empty(), "every sample has a type label");
            let v: [i64; 4] = sample.value.clone().try_into().expect("four values");
            Row {
                frames,
                ty,
                class,
                values: [v[2], v[3], v[0], v[1]],
            }
        })
        .collect()
}

/// Totals of samples whose leaf-most frame in `program` is at `line` and
/// whose type label is `ty`, with the class labels seen.
///
/// Matching on the leaf-most frame *of the program's file* finds the
/// allocating line (a C frame such as `String#*` carries the file and line of
/// the Ruby line that called it); matching on the type skips Ruby's own
/// allocations at the same line (none at rate 1 for these one-object-per-
/// iteration lines, but the filter keeps the test about what it counts).
fn at_line(rows: &[Row], program: &str, line: i64, ty: &str) -> ([i64; 4], Vec<Option<String>>) {
    let mut total = [0i64; 4];
    let mut classes = Vec::new();
    for r in rows {
        let leaf = r.frames.iter().find(|f| f.1.ends_with(program));
        if leaf.map(|f| f.2) == Some(line) && r.ty == ty {
            for (t, v) in total.iter_mut().zip(r.values) {
                *t += v;
            }
            if !classes.contains(&r.class) {
                classes.push(r.class.clone());
            }
        }
    }
    (total, classes)
}

fn comment_value(p: &Profile, key: &str) -> Option<String> {
    p.comment.iter().find_map(|&c| {
        p.string_table[c as usize]
            .strip_prefix(&format!("{key}="))
            .map(|v| v.split_whitespace().next().unwrap_or("").to_string())
    })
}

/// `key=value` pairs the programs write to a text file.
fn kv(path: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .split_whitespace()
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const RETAINED: &str = "profiler_retained.rb";

struct RetainedRun {
    dir: TempDir,
}

impl RetainedRun {
    fn new(rate: &str, n: u64, max_samples: u64) -> RetainedRun {
        let dir = TempDir::new().unwrap();
        run_program(
            RETAINED,
            &[
                rate,
                &n.to_string(),
                &max_samples.to_string(),
                dir.path().to_str().unwrap(),
            ],
        );
        RetainedRun { dir }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn rows(&self, name: &str) -> Vec<Row> {
        rows(&read_profile(&self.file(name)))
    }
}

fn line(name: &str) -> i64 {
    marker_line(RETAINED, name)
}

#[test]
fn rate_one_counts_live_objects_exactly_through_compaction_and_stop() {
    let n = 1000;
    let run = RetainedRun::new("1", n, 1_000_000);
    let stats = kv(&run.file("stats.txt"));
    assert_eq!(stats["flushes"], "3");
    assert_eq!(stats["dropped"], "0");
    assert_eq!(stats["hook_errors"], "0");

    for file in [
        "before_compact.pprof.gz",
        "after_compact.pprof.gz",
        "second.pprof.gz",
        "after_stop.pprof.gz",
    ] {
        let rows = run.rows(file);
        let n = n as i64;
        // Each iteration of these lines allocates exactly one object; an
        // empty String and a one-element Array are embedded: 40 bytes each.
        let (s, classes) = at_line(&rows, RETAINED, line("strings"), "STRING");
        assert_eq!(s, [n, 40 * n, n, 40 * n], "{file}: strings");
        assert_eq!(classes, [Some("String".to_string())]);
        let (a, classes) = at_line(&rows, RETAINED, line("arrays"), "ARRAY");
        assert_eq!(
            a,
            [3 * n / 10, 40 * 3 * n / 10, 3 * n / 10, 40 * 3 * n / 10],
            "{file}: arrays"
        );
        assert_eq!(classes, [Some("Array".to_string())]);
        let (w, classes) = at_line(&rows, RETAINED, line("widgets"), "OBJECT");
        assert_eq!((w[0], w[2]), (n / 10, n / 10), "{file}: widgets");
        assert!(w[1] >= 40 * n / 10, "{file}: widget bytes {}", w[1]);
        assert_eq!(classes, [Some("Widget".to_string())]);
        // Garbage is freed by GC.start; conservative stack scanning may keep
        // the last one or two alive.
        let (g, _) = at_line(&rows, RETAINED, line("garbage"), "STRING");
        assert_eq!(g[2], 2 * n, "{file}: garbage allocations");
        assert!(g[0] <= 2, "{file}: garbage in use {}", g[0]);
        // Measured when freed: empty strings are one 40-byte slot each.
        assert_eq!(g[3], 40 * 2 * n, "{file}: garbage bytes");
        let (t, _) = at_line(&rows, RETAINED, line("temp"), "STRING");
        assert_eq!(t[2], n / 2, "{file}: temp allocations");
        if file == "before_compact.pprof.gz" {
            assert_eq!(t[0], n / 2, "{file}: temp in use");
        } else {
            // TEMP was cleared after compaction: the frees were only matched
            // if the compact callback rewrote the moved addresses.
            assert!(t[0] <= 2, "{file}: temp in use {}", t[0]);
            // Measured (40 bytes) at the first flush, so they settle 40 each.
            assert_eq!(t[3], 40 * n / 2, "{file}: temp bytes");
        }
        // A flush's own allocations (frame names, class names) are never sampled.
        for r in &rows {
            assert!(
                !r.frames.iter().any(|f| f.0.contains("profiler_flush")),
                "{file}: a flush's own allocation was sampled: {r:?}"
            );
        }
    }
    let moved: u64 = kv(&run.file("stats.txt"))["moved_strings"].parse().unwrap();
    assert!(
        moved > 0,
        "compaction moved no strings: the test proves nothing"
    );

    let p = read_profile(&run.file("after_stop.pprof.gz"));
    assert_eq!(comment_value(&p, "sample_rate").as_deref(), Some("1"));
    assert_eq!(comment_value(&p, "dropped_samples").as_deref(), Some("0"));
}

/// Binomial bounds: `n` allocations each sampled with probability `rate`,
/// every sample scaled by 1/rate. Five standard deviations: a false failure
/// about once in 1.7 million runs.
fn assert_estimate(what: &str, got: i64, n: i64, rate: f64) {
    let sd = (n as f64 * rate * (1.0 - rate)).sqrt() / rate;
    let err = (got - n).abs() as f64;
    assert!(
        err <= 5.0 * sd + 1.0,
        "{what}: estimated {got} for {n} at rate {rate} (sd {sd:.0})"
    );
}

#[test]
fn sampled_estimates_are_within_binomial_bounds() {
    for (rate, n) in [(0.1, 20_000i64), (0.01, 200_000)] {
        let run = RetainedRun::new(&rate.to_string(), n as u64, 1_000_000);
        let rows = run.rows("after_compact.pprof.gz");
        let (s, _) = at_line(&rows, RETAINED, line("strings"), "STRING");
        assert_estimate("in-use strings", s[0], n, rate);
        assert_estimate("allocated strings", s[2], n, rate);
        assert_eq!(s[1], 40 * s[0], "in-use string bytes scale with counts");
        let (a, _) = at_line(&rows, RETAINED, line("arrays"), "ARRAY");
        assert_estimate("in-use arrays", a[0], 3 * n / 10, rate);
        let (g, _) = at_line(&rows, RETAINED, line("garbage"), "STRING");
        assert_estimate("allocated garbage", g[2], 2 * n, rate);
        let p = read_profile(&run.file("after_compact.pprof.gz"));
        assert_eq!(
            comment_value(&p, "sample_rate").as_deref(),
            Some(rate.to_string().as_str())
        );
    }
}

#[test]
fn the_cap_drops_samples_and_counts_them() {
    let n = 1000;
    let run = RetainedRun::new("1", n, 100);
    let stats = kv(&run.file("stats.txt"));
    let dropped: i64 = stats["dropped"].parse().unwrap();
    let tracked: i64 = stats["tracked"].parse().unwrap();
    assert!(tracked <= 100, "tracked {tracked} over the cap");
    // At least the strings, arrays and widgets beyond the first 100.
    assert!(dropped >= 1300, "dropped {dropped}");
    let p = read_profile(&run.file("second.pprof.gz"));
    // The flush's comment: the drops up to that flush (the program's few
    // allocations between that flush and profiler_stats may add some).
    let commented: i64 = comment_value(&p, "dropped_samples")
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (dropped - 10..=dropped).contains(&commented),
        "dropped_samples={commented} in the profile, {dropped} in the stats"
    );
    let rows = rows(&p);
    let in_use: i64 = rows.iter().map(|r| r.values[0]).sum();
    assert!(in_use <= 100, "in use {in_use} over the cap");
    // Dropped samples still count as allocations (a slot each).
    let (s, _) = at_line(&rows, RETAINED, line("strings"), "STRING");
    assert_eq!(s[2], n as i64);
}

#[test]
fn a_forked_child_flushes_its_own_profile() {
    let program = "profiler_fork.rb";
    let dir = TempDir::new().unwrap();
    let n = 1000i64;
    run_program(program, &[&n.to_string(), dir.path().to_str().unwrap()]);
    let parent_line = marker_line(program, "parent");
    let child_line = marker_line(program, "child");

    let child = kv(&dir.path().join("child_stats.txt"));
    assert_eq!(child["running"], "true");
    // Counters start over (a couple of allocations happen between
    // profiler_after_fork and profiler_stats reading them).
    assert!(child["after_fork_sampled"].parse::<i64>().unwrap() < 10);
    assert!(child["after_fork_tracked"].parse::<i64>().unwrap() >= n);

    let rows_child = rows(&read_profile(&dir.path().join("child.pprof.gz")));
    let (c, _) = at_line(&rows_child, program, child_line, "STRING");
    assert_eq!((c[0], c[2]), (n / 2, n / 2), "the child's own strings");
    // The parent's strings are live in the child too, but were not
    // allocated since the fork.
    let (p, _) = at_line(&rows_child, program, parent_line, "STRING");
    assert_eq!(
        (p[0], p[2], p[3]),
        (n, 0, 0),
        "inherited strings in the child"
    );

    let rows_parent = rows(&read_profile(&dir.path().join("parent.pprof.gz")));
    let (p, _) = at_line(&rows_parent, program, parent_line, "STRING");
    assert_eq!((p[0], p[2]), (n, n));
    let (c, _) = at_line(&rows_parent, program, child_line, "STRING");
    assert_eq!(c, [0; 4], "the child's allocations are not the parent's");
    let paused = kv(&dir.path().join("paused.txt"));
    assert_eq!(paused["running"], "false");
}

#[test]
fn profiles_decode_with_protoc_against_the_official_schema() {
    let run = RetainedRun::new("0.5", 1000, 1_000_000);
    let path = run.file("after_compact.pprof.gz");
    let p = read_profile(&path);
    let Some(text) = common::protoc::decode_gz(&std::fs::read(&path).unwrap()) else {
        return;
    };
    for s in [
        "alloc_objects",
        "alloc_space",
        "inuse_objects",
        "inuse_space",
        "type",
        "class",
        "Widget",
        "Object#keep_strings",
        "dropped_samples=0",
    ] {
        assert!(
            text.contains(&format!("string_table: \"{s}\"")),
            "protoc's decoding has no string {s:?}"
        );
    }
    assert_eq!(text.matches("\nsample {").count(), p.sample.len());
    assert_eq!(text.matches("\nlocation {").count(), p.location.len());
    assert_eq!(text.matches("\nfunction {").count(), p.function.len());
    assert_eq!(text.matches("sample_type {").count(), 4);
    assert!(text.contains(&format!("default_sample_type: {}", p.default_sample_type)));
}

#[test]
fn windowed_hook_estimates_stay_unbiased() {
    // 1 in 5 GC intervals watched, sampling 5% inside them: 1% overall.
    let (rate, duty, rounds) = (0.01, 0.2, 400i64);
    let program = "profiler_windows.rb";
    let dir = TempDir::new().unwrap();
    let out = dir.path().join("windows.pprof.gz");
    run_program(
        program,
        &[
            &rate.to_string(),
            &duty.to_string(),
            &rounds.to_string(),
            out.to_str().unwrap(),
        ],
    );
    let p = read_profile(&out);
    let coverage: f64 = p
        .comment
        .iter()
        .flat_map(|&c| p.string_table[c as usize].split_whitespace())
        .find_map(|kv| kv.strip_prefix("hook_coverage="))
        .expect("a hook_coverage comment")
        .parse()
        .unwrap();
    assert!(
        coverage > 0.0 && coverage < 0.6,
        "the hook should have watched only some intervals, coverage {coverage}"
    );
    let rows = rows(&p);
    let kept = 500 * rounds;
    let churned = 5000 * rounds;
    let (k, _) = at_line(&rows, program, marker_line(program, "kept"), "STRING");
    let (c, _) = at_line(&rows, program, marker_line(program, "churn"), "STRING");
    // Sampling and window choice together: allow 25% (the binomial part
    // alone is about 2% for the kept strings).
    for (what, got, want) in [
        ("in-use kept strings", k[0], kept),
        ("allocated kept strings", k[2], kept),
        ("allocated churned strings", c[2], churned),
    ] {
        let err = (got - want).abs() as f64 / want as f64;
        assert!(err < 0.25, "{what}: estimated {got}, true {want}");
    }
    assert!(
        c[0] * 50 < churned,
        "churned strings are not in use: {}",
        c[0]
    );
}

/// Objects sampled in a window are followed through Ruby's weak map once it
/// closes: those kept stay in use, those dropped and collected while no
/// hook reports frees (their slots refilled, the heap compacted) do not.
#[test]
fn objects_outlive_their_window_only_while_they_live() {
    let program = "profiler_handoff.rb";
    let dir = TempDir::new().unwrap();
    let out = dir.path().join("handoff.pprof.gz");
    let n = 3000i64;
    let stdout = run_program(program, &[&n.to_string(), out.to_str().unwrap()]);
    let stats: BTreeMap<String, String> = stdout
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(stats["hook_errors"], "0", "{stdout}");
    let rows = rows(&read_profile(&out));
    let (kept, _) = at_line(&rows, program, marker_line(program, "kept"), "STRING");
    let (dropped, _) = at_line(&rows, program, marker_line(program, "dropped"), "STRING");
    // Every allocation in the window was sampled; estimates are scaled by
    // the share of all allocations the hook saw, the same for both lines
    // (give or take a string Ruby itself makes on the first call).
    assert!(
        kept[2] > 0 && (kept[2] - dropped[2]).abs() * 100 <= kept[2],
        "{kept:?} {dropped:?}"
    );
    assert_eq!(kept[0], kept[2], "every kept string is still in use");
    assert_eq!(dropped[0], 0, "no dropped string is in use: {dropped:?}");
    assert_eq!(dropped[1], 0);
}

/// Runs `tests/ruby/agent/<program>` under the agent (`-rheapscope/autostart`)
/// at sample rate 1, the profile flushed at exit to `dir/<program>.pprof.gz`.
fn autostart_profile(program: &str, dir: &Path) -> PathBuf {
    autostart_profile_with(program, dir, &[])
}

fn autostart_profile_with(program: &str, dir: &Path, env: &[(&str, &str)]) -> PathBuf {
    let out = dir.join(format!("{program}.pprof.gz"));
    let mut cmd = common::agent::ruby();
    cmd.current_dir(dir)
        .arg("-rheapscope/autostart")
        .arg(common::ruby_script(&format!("agent/{program}")));
    for (k, v) in common::agent::base_env(dir) {
        cmd.env(k, v);
    }
    cmd.env("HEAPSCOPE_PROFILE", "1")
        .env("HEAPSCOPE_SAMPLE_RATE", "1")
        .env("HEAPSCOPE_PROFILE_INTERVAL", "0")
        .env("HEAPSCOPE_PROFILE_PATH", &out);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = cmd.output().expect("run ruby");
    assert!(
        o.status.success() && out.is_file(),
        "ruby {program} failed ({}) or wrote no profile\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

const NAMES: &str = "profiler_names.rb";

/// Ruby's frame names as `go tool pprof` shows them with no flags: pprof's
/// C++ name simplifier used to turn `<main>` into `<unknown>` and every
/// `block (N levels) in <...>` into `block in `. C methods show at the Ruby
/// line that called them, and the profile names its program (no "Main
/// binary filename not available.").
#[test]
fn go_tool_pprof_shows_ruby_names_as_written() {
    let dir = TempDir::new().unwrap();
    let prof = autostart_profile(NAMES, dir.path());
    // Every Ruby from 3.1 to 3.4 labels these frames the same way.
    let names = [
        "<main>",
        "<top (required)>",
        "<class:Foo>",
        "block in <class:Foo>",
        "block in <main>",
        "block (2 levels) in <main>",
        "Foo#bar",
        "Foo.baz",
        "String#*",
        "Hash#merge",
    ];
    for view in ["-top", "-traces"] {
        let (stdout, stderr) = common::gopprof::run(&[view, "-nodefraction=0"], &prof);
        common::gopprof::assert_no_warnings(&stderr);
        let shown: Vec<String> = if view == "-top" {
            common::gopprof::top_names(&stdout)
        } else {
            common::gopprof::trace_frames(&stdout).concat()
        };
        for n in names {
            assert!(
                shown.iter().any(|s| s == n),
                "{view}: no frame named {n:?} in\n{stdout}"
            );
        }
        for bad in ["<unknown>", "block in ", "block  in ", "block in"] {
            assert!(
                !shown.iter().any(|s| s == bad),
                "{view}: a mangled name {bad:?} in\n{stdout}"
            );
        }
    }
    // -lines: C methods at the calling Ruby line; nothing without a file.
    let (stdout, stderr) = common::gopprof::run(&["-lines", "-top", "-nodefraction=0"], &prof);
    common::gopprof::assert_no_warnings(&stderr);
    let rows = common::gopprof::top_names(&stdout);
    let script = common::ruby_script(&format!("agent/{NAMES}"));
    let at = |name: &str, marker: &str| {
        format!("{name} {}:{}", script.display(), marker_line(NAMES, marker))
    };
    for want in [
        at("String#*", "string_times"),
        at("Hash#merge", "hash_merge"),
        at("Foo#bar", "string_times"),
        at("Foo.baz", "array_new"),
        at("block (2 levels) in <main>", "hash_merge"),
        at("block in <class:Foo>", "class_body"),
        at("<main>", "main"),
    ] {
        assert!(rows.contains(&want), "-lines: no row {want:?} in\n{stdout}");
    }
    let lib = common::ruby_script(&format!("agent/{}", "profiler_names_lib.rb"));
    let top_required = format!(
        "<top (required)> {}:{}",
        lib.display(),
        marker_line("profiler_names_lib.rb", "top_required")
    );
    assert!(
        rows.contains(&top_required),
        "-lines: no {top_required:?} in\n{stdout}"
    );
    // Every row of the program's allocations has a file (none under
    // pprof's `<unknown>` file), C frames included.
    for r in &rows {
        assert!(
            r.contains(".rb") || r.contains("<internal:"),
            "-lines: a row without a Ruby file: {r:?}\n{stdout}"
        );
    }
    // -files: the program's share is the allocations' share.
    let (stdout, _) = common::gopprof::run(&["-files", "-top", "-sample_index=alloc_space"], &prof);
    assert!(!stdout.contains("<unknown>"), "-files:\n{stdout}");
    // The File: header names Ruby's executable (the mapping's file).
    let (stdout, _) = common::gopprof::run(&["-top"], &prof);
    assert!(
        stdout.lines().any(|l| l.starts_with("File: ruby")),
        "no File: line naming ruby in\n{stdout}"
    );
}

/// pprof's conventional sample types: every heap-profile flag selects one,
/// and the default is inuse_space.
#[test]
fn go_tool_pprof_sample_type_flags_work() {
    let dir = TempDir::new().unwrap();
    let prof = autostart_profile(NAMES, dir.path());
    for (flag, ty) in [
        ("-inuse_space", "inuse_space"),
        ("-alloc_space", "alloc_space"),
        ("-inuse_objects", "inuse_objects"),
        ("-alloc_objects", "alloc_objects"),
        ("-nodecount=5", "inuse_space"),
    ] {
        let (stdout, stderr) = common::gopprof::run(&[flag, "-top"], &prof);
        common::gopprof::assert_no_warnings(&stderr);
        assert!(
            stdout.contains(&format!("Type: {ty}\n")),
            "{flag}: not Type: {ty}\n{stdout}"
        );
    }
    // The labels: a type as dumps spell it, and the class name.
    let (stdout, _) = common::gopprof::run(&["-tags"], &prof);
    for want in [
        "type: Total",
        "STRING",
        "HASH",
        "class: Total",
        "String",
        "Hash",
    ] {
        assert!(stdout.contains(want), "-tags: no {want:?}\n{stdout}");
    }
}

/// The agent's own allocations (its thread, Heapscope.start, the final
/// flush at exit) are left out, and the profile says how many there were.
#[test]
fn the_agents_own_allocations_are_left_out() {
    let dir = TempDir::new().unwrap();
    let prof = read_profile(&autostart_profile(NAMES, dir.path()));
    let lib = common::agent::ruby_lib();
    let lib = lib.to_str().unwrap();
    let rows = rows(&prof);
    // An allocation is the agent's when, going out from the allocating
    // frame, the agent's code comes before the program's (stdlib frames in
    // between do not count; the app under the Rack middleware is the app's).
    let program = common::ruby_script(&format!("agent/{NAMES}"));
    let program = program.to_str().unwrap();
    let agents = |r: &Row| {
        r.frames
            .iter()
            .find(|f| f.1.starts_with(lib) || f.1 == program)
            .is_some_and(|f| f.1.starts_with(lib))
    };
    let own: Vec<&Row> = rows.iter().filter(|r| agents(r)).collect();
    // Ruby caches a call site (an IMEMO) the first time it runs it, which
    // for a call into the agent is before the agent can mark the call as
    // its own: one per call site, once, not one per request (the
    // middleware ran 300 times).
    let not_imemo: Vec<_> = own.iter().filter(|r| r.ty != "IMEMO").collect();
    assert!(
        not_imemo.is_empty(),
        "the agent's allocations: {not_imemo:#?}"
    );
    let imemo: i64 = own.iter().map(|r| r.values[2]).sum();
    assert!(
        imemo <= 20,
        "{imemo} IMEMO allocations by the agent: {own:#?}"
    );
    // The app's bodies, made under the middleware, are all there.
    let (bodies, _) = at_line(&rows, NAMES, marker_line(NAMES, "rack_app"), "STRING");
    // 300 bodies, plus the Integer#to_s of each interpolation.
    assert!(bodies[2] >= 300, "the Rack app's own strings: {bodies:?}");
    let left_out: i64 = comment_value(&prof, "agent_allocations")
        .unwrap()
        .parse()
        .unwrap();
    assert!(left_out > 10, "agent_allocations={left_out}");
}

/// `profile_agent` puts the agent's own allocations back in.
#[test]
fn profile_agent_counts_the_agents_own_allocations() {
    let dir = TempDir::new().unwrap();
    let path = autostart_profile_with(NAMES, dir.path(), &[("HEAPSCOPE_PROFILE_AGENT", "1")]);
    let prof = read_profile(&path);
    assert_eq!(
        comment_value(&prof, "agent_allocations").as_deref(),
        Some("counted")
    );
    let lib = common::agent::ruby_lib();
    let lib = lib.to_str().unwrap();
    let own: i64 = rows(&prof)
        .iter()
        .filter(|r| r.ty != "IMEMO" && r.frames.iter().any(|f| f.1.starts_with(lib)))
        .map(|r| r.values[2])
        .sum();
    assert!(own > 10, "the agent's allocations: {own}");
}

/// Allocated bytes are measured (when freed, or while live), not guessed:
/// at rate 1 the agent's alloc_space of a workload of large short-lived
/// strings and arrays is within 5% of memory_profiler's allocated bytes.
#[test]
fn allocated_bytes_match_memory_profiler() {
    let program = "profiler_bytes.rb";
    let dir = TempDir::new().unwrap();
    let out = dir.path().join("bytes.pprof.gz");
    run_program(program, &["agent", out.to_str().unwrap()]);
    let truth_file = dir.path().join("memory_profiler.json");
    run_program(program, &["memory_profiler", truth_file.to_str().unwrap()]);
    let truth: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&truth_file).unwrap()).unwrap();
    let script = common::ruby_script(&format!("agent/{program}"));
    let truth = truth[script.to_str().unwrap()]
        .as_i64()
        .unwrap_or_else(|| panic!("memory_profiler has no bytes for {program}: {truth}"));
    let p = read_profile(&out);
    let rows = rows(&p);
    // Allocations whose leaf frame is in the program (C frames carry it).
    let ours: i64 = rows
        .iter()
        .filter(|r| r.frames.first().is_some_and(|f| f.1.ends_with(program)))
        .map(|r| r.values[3])
        .sum();
    let err = (ours - truth).abs() as f64 / truth as f64;
    eprintln!(
        "alloc_space {ours}, memory_profiler {truth}, error {:.2}%",
        err * 100.0
    );
    assert!(
        err < 0.05,
        "alloc_space {ours} vs memory_profiler's {truth} bytes: {:.1}% apart",
        err * 100.0
    );
    assert!(truth > 10_000_000, "the workload is too small: {truth}");
}
