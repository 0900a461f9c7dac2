//! Ways of handing a dump to heapscope: compressed, on stdin, with huge lines,
//! large with scattered broken lines, with one or several parser threads.

mod common;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use common::{counts_by, heapscope_with_stdin, population, rows, summary_json, summary_run};
use serde_json::Value;

/// The report without its `source` (which names the input).
fn without_source(mut v: Value) -> Value {
    v.as_object_mut().unwrap().remove("source");
    v
}

fn gzip(src: &Path, dst: &Path) {
    let mut enc =
        flate2::write::GzEncoder::new(File::create(dst).unwrap(), flate2::Compression::fast());
    io::copy(&mut File::open(src).unwrap(), &mut enc).unwrap();
    enc.finish().unwrap();
}

fn zstd_file(src: &Path, dst: &Path) {
    zstd::stream::copy_encode(File::open(src).unwrap(), File::create(dst).unwrap(), 1).unwrap();
}

const REPORT: [&str; 7] = [
    "--by",
    "type,class",
    "--top",
    "0",
    "--include-tracer",
    "--format",
    "json",
];

fn report(dump: &Path) -> Value {
    summary_run(dump, &REPORT).json()
}

#[test]
fn plain_gzip_zstd_and_stdin_give_the_same_report() {
    let pop = population();
    let dir = tempfile::tempdir().unwrap();
    let gz = dir.path().join("heap.dump.gz");
    let zst = dir.path().join("heap.dump.zst");
    gzip(&pop.dump, &gz);
    zstd_file(&pop.dump, &zst);

    let plain = report(&pop.dump);
    assert_eq!(plain["source"], pop.dump.to_str().unwrap());
    assert_eq!(
        plain["totals"]["dump_objects"],
        pop.num("heap_object_lines")
    );
    let want = without_source(plain);
    for path in [&gz, &zst] {
        let v = report(path);
        assert_eq!(v["source"], path.to_str().unwrap());
        assert_eq!(without_source(v), want, "{}", path.display());
    }

    // stdin, plain and compressed.
    for path in [&pop.dump, &gz, &zst] {
        let args = [&["summary", "-"][..], &REPORT].concat();
        let v = heapscope_with_stdin(&args, File::open(path).unwrap()).json();
        assert_eq!(v["source"], "<stdin>");
        assert_eq!(without_source(v), want, "stdin from {}", path.display());
    }
}

#[test]
fn compression_is_recognised_by_content_not_name() {
    let pop = population();
    let dir = tempfile::tempdir().unwrap();
    let want = without_source(report(&pop.dump));
    // gzip named .zst, zstd named .jsonl, plain named .gz, both without extension.
    let gz_as_zst = dir.path().join("really-gzip.zst");
    gzip(&pop.dump, &gz_as_zst);
    let zst_as_jsonl = dir.path().join("really-zstd.jsonl");
    zstd_file(&pop.dump, &zst_as_jsonl);
    let plain_as_gz = dir.path().join("really-plain.gz");
    fs::copy(&pop.dump, &plain_as_gz).unwrap();
    let gz_bare = dir.path().join("heap");
    fs::copy(&gz_as_zst, &gz_bare).unwrap();
    for path in [&gz_as_zst, &zst_as_jsonl, &plain_as_gz, &gz_bare] {
        assert_eq!(without_source(report(path)), want, "{}", path.display());
    }
}

#[test]
fn concatenated_compressed_streams_are_read_whole() {
    // `cat a.gz b.gz` and several zstd frames are valid single streams.
    let dir = tempfile::tempdir().unwrap();
    let (path, exp) = write_generated(dir.path(), 20_000, 0);
    let text = fs::read(&path).unwrap();
    let half = text[..text.len() / 2]
        .iter()
        .rposition(|&b| b == b'\n')
        .unwrap()
        + 1;
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    fs::write(&a, &text[..half]).unwrap();
    fs::write(&b, &text[half..]).unwrap();
    let want = without_source(report(&path));
    assert_eq!(want["totals"]["dump_objects"], exp.objects);

    let gz = dir.path().join("two-members.gz");
    let (a_gz, b_gz) = (dir.path().join("a.gz"), dir.path().join("b.gz"));
    gzip(&a, &a_gz);
    gzip(&b, &b_gz);
    fs::write(
        &gz,
        [fs::read(&a_gz).unwrap(), fs::read(&b_gz).unwrap()].concat(),
    )
    .unwrap();
    assert_eq!(without_source(report(&gz)), want, "two gzip members");

    let zst = dir.path().join("two-frames.zst");
    let (a_zst, b_zst) = (dir.path().join("a.zst"), dir.path().join("b.zst"));
    zstd_file(&a, &a_zst);
    zstd_file(&b, &b_zst);
    fs::write(
        &zst,
        [fs::read(&a_zst).unwrap(), fs::read(&b_zst).unwrap()].concat(),
    )
    .unwrap();
    assert_eq!(without_source(report(&zst)), want, "two zstd frames");
}

#[test]
fn thread_counts_give_identical_output() {
    let pop = population();
    // The population dump is larger than one reader chunk, so two threads
    // really parse in parallel.
    for by in ["generation", "type,class", "location", "string"] {
        let run = |threads: &str| {
            summary_json(&pop.dump, &["--by", by, "--top", "0", "--threads", threads])
        };
        let one = run("1");
        assert_eq!(one, run("2"), "--by {by}: --threads 1 and 2 differ");
        assert_eq!(one, run("3"), "--by {by}: --threads 1 and 3 differ");
    }
    // Tables too.
    let table = |threads: &str| {
        summary_run(&pop.dump, &["--threads", threads])
            .ok()
            .stdout_text()
    };
    assert_eq!(table("1"), table("2"));
}

/// What a generated dump holds.
#[derive(Debug, Default)]
struct Expect {
    lines: u64,
    objects: u64,
    roots: u64,
    memsize: u64,
    by_type: BTreeMap<String, u64>,
    by_generation: BTreeMap<String, u64>,
    malformed: Vec<u64>,
}

const CLASSES: [(&str, u64); 4] = [
    ("Object", 0x7f00_0000_0028),
    ("String", 0x7f00_0000_0050),
    ("Array", 0x7f00_0000_0078),
    ("Hash", 0x7f00_0000_00a0),
];

/// A broken line of one of several kinds.
fn malformed_line(k: u64) -> Vec<u8> {
    match k % 4 {
        0 => br#"{"address":"0x7f5c1a040168", "type":"STRING", "class":"0x7f00000000"#.to_vec(),
        1 => b"I, [2024-06-01T09:14:02.117853 #4821]  INFO -- : this is a log line".to_vec(),
        2 => b"\x00\x01\xfe\xff{\x80\"addr\x00\x1b[0m".to_vec(),
        _ => br#"{"address":"0x7f5c1a040190", "type":"OBJECT", "class":"0x7f00000028", "ivars":"#
            .to_vec(),
    }
}

/// Writes `objects` heap objects in Ruby 3.1's layout after one ROOT record,
/// replacing every line whose number is a multiple of `bad_every` (when not 0)
/// by a broken line.
fn write_generated(dir: &Path, objects: u64, bad_every: u64) -> (PathBuf, Expect) {
    let path = dir.join(format!("generated-{objects}-{bad_every}.jsonl"));
    let mut out = BufWriter::new(File::create(&path).unwrap());
    let mut e = Expect::default();
    let mut line_no = 0u64;
    let mut next_object = 0u64;
    let mut addr = 0x7f10_0000_0000u64;
    let mut next_bad = if bad_every > 0 { bad_every } else { u64::MAX };
    writeln!(
        out,
        r#"{{"type":"ROOT", "root":"vm", "references":["0x{:x}", "0x{:x}"]}}"#,
        CLASSES[0].1, CLASSES[1].1
    )
    .unwrap();
    line_no += 1;
    e.roots += 1;
    while next_object < objects {
        line_no += 1;
        if line_no == next_bad {
            next_bad += bad_every;
            out.write_all(&malformed_line(line_no / bad_every)).unwrap();
            out.write_all(b"\n").unwrap();
            e.malformed.push(line_no);
            continue;
        }
        let i = next_object;
        next_object += 1;
        e.objects += 1;
        if (i as usize) < CLASSES.len() {
            let (name, a) = CLASSES[i as usize];
            writeln!(
                out,
                r#"{{"address":"0x{a:x}", "type":"CLASS", "class":"0x7f0000000100", "name":"{name}", "references":[], "memsize":1000, "flags":{{"wb_protected":true, "old":true, "uncollectible":true, "marked":true}}}}"#
            )
            .unwrap();
            e.memsize += 1000;
            *e.by_type.entry("CLASS".into()).or_default() += 1;
            *e.by_generation.entry("none".into()).or_default() += 1;
            continue;
        }
        addr += 40;
        // Every fifth object (phase 0) was allocated before tracing started.
        let phase = i % 5;
        let traced = phase != 0;
        let generation = 10 + i % 7;
        let site = if traced {
            format!(
                r#", "file":"/app/models/m{}.rb", "line":{}, "method":"new", "generation":{generation}"#,
                i % 13,
                i % 101 + 1
            )
        } else {
            String::new()
        };
        let (t, body, memsize) = match i % 4 {
            0 => (
                "OBJECT",
                format!(
                    r#""class":"0x{:x}", "ivars":3, "references":["0x{:x}"]"#,
                    CLASSES[0].1,
                    addr - 40
                ),
                40,
            ),
            1 => (
                "STRING",
                format!(
                    r#""class":"0x{:x}", "embedded":true, "bytesize":5, "value":"v{:04}", "encoding":"UTF-8""#,
                    CLASSES[1].1,
                    i % 1000
                ),
                40,
            ),
            2 => (
                "ARRAY",
                format!(
                    r#""class":"0x{:x}", "length":2, "embedded":true, "references":["0x{:x}", "0x{:x}"]"#,
                    CLASSES[2].1,
                    addr - 40,
                    addr - 80
                ),
                40,
            ),
            _ => (
                "HASH",
                format!(
                    r#""class":"0x{:x}", "size":1, "references":["0x{:x}"]"#,
                    CLASSES[3].1,
                    addr - 40
                ),
                160 + i % 3 * 8,
            ),
        };
        writeln!(
            out,
            r#"{{"address":"0x{addr:x}", "type":"{t}", {body}{site}, "memsize":{memsize}, "flags":{{"wb_protected":true}}}}"#
        )
        .unwrap();
        e.memsize += memsize;
        *e.by_type.entry(t.into()).or_default() += 1;
        let g = if traced {
            generation.to_string()
        } else {
            "none".into()
        };
        *e.by_generation.entry(g).or_default() += 1;
    }
    out.flush().unwrap();
    e.lines = line_no;
    (path, e)
}

fn as_by_generation(v: &Value) -> BTreeMap<String, u64> {
    counts_by(v, "generation")
        .into_iter()
        .map(|(k, n)| (if k == "null" { "none".into() } else { k }, n))
        .collect()
}

#[test]
fn large_dump_with_scattered_malformed_lines() {
    let dir = tempfile::tempdir().unwrap();
    let (path, e) = write_generated(dir.path(), 200_000, 10_000);
    assert_eq!(e.malformed.len(), 20);
    assert_eq!(e.lines, 200_021);
    let run = summary_run(&path, &["--by", "type", "--top", "0", "--format", "json"]);
    let v = run.json();
    let d = &v["diagnostics"];
    assert_eq!(d["lines"], e.lines);
    assert_eq!(d["objects"], e.objects);
    assert_eq!(d["roots"], e.roots);
    assert_eq!(d["malformed_lines"], e.malformed.len());
    assert_eq!(d["truncated_last_line"], Value::Null);
    let first: Vec<u64> = d["first_malformed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["line"].as_u64().unwrap())
        .collect();
    assert!(!first.is_empty(), "no malformed lines listed");
    assert_eq!(
        first,
        e.malformed[..first.len()],
        "the first malformed lines, in order"
    );
    assert_eq!(
        first.len(),
        10,
        "heapscope keeps the first 10 malformed lines"
    );
    assert_eq!(v["totals"]["dump_objects"], e.objects);
    assert_eq!(v["totals"]["memsize"], e.memsize);
    assert_eq!(counts_by(&v, "type"), e.by_type);

    // stderr names the first ones and counts the rest.
    let shown = path.display().to_string();
    for l in &first {
        let at = format!("heapscope: warning: {shown}:{l}:");
        assert!(run.stderr.contains(&at), "no {at:?} in:\n{}", run.stderr);
    }
    assert!(
        !run.stderr
            .contains(&format!("{shown}:{}:", e.malformed[10])),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("and 10 more malformed lines"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains(&format!("20 of {} lines were malformed", e.lines)),
        "{}",
        run.stderr
    );

    let g = summary_json(&path, &["--top", "0", "-q", "--threads", "1"]);
    assert_eq!(as_by_generation(&g), e.by_generation);
    let g2 = summary_json(&path, &["--top", "0", "-q", "--threads", "2"]);
    assert_eq!(g, g2, "--threads 1 and 2 differ");
}

/// Writes `n` references as `"0x...", ...`.
fn write_refs(out: &mut impl Write, n: u64, base: u64) {
    for i in 0..n {
        if i > 0 {
            out.write_all(b", ").unwrap();
        }
        write!(out, "\"0x{:x}\"", base + 40 * i).unwrap();
    }
}

#[test]
fn huge_lines_are_read_whole() {
    const BIG: u64 = 3_000_000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge-lines.jsonl");
    let mut out = BufWriter::new(File::create(&path).unwrap());
    let mut line = 0u64;
    let array_class = 0x7f00_0000_0078u64;
    // A ROOT with a million references (about 18 MB).
    out.write_all(br#"{"type":"ROOT", "root":"vm", "references":["#)
        .unwrap();
    write_refs(&mut out, 1_000_000, 0x7f20_0000_0000);
    out.write_all(b"]}\n").unwrap();
    line += 1;
    writeln!(out, r#"{{"address":"0x{array_class:x}", "type":"CLASS", "class":"0x7f0000000100", "name":"Array", "references":[], "memsize":2000}}"#).unwrap();
    line += 1;
    // Enough small lines that the big one starts in the middle of a chunk.
    let small = 30_000u64;
    for i in 0..small {
        writeln!(out, r#"{{"address":"0x{:x}", "type":"STRING", "class":"0x7f0000000050", "bytesize":1, "value":"x", "encoding":"UTF-8", "file":"small.rb", "line":1, "method":"x", "generation":3, "memsize":40, "flags":{{"wb_protected":true}}}}"#, 0x7f30_0000_0000u64 + 40 * i).unwrap();
        line += 1;
    }
    // An ARRAY with 3 million references: a line of about 54 MB, several
    // times the reader's chunk.
    write!(out, r#"{{"address":"0x7f4000000000", "type":"ARRAY", "class":"0x{array_class:x}", "length":{BIG}, "references":["#).unwrap();
    write_refs(&mut out, BIG, 0x7f10_0000_0000);
    writeln!(out, r#"], "file":"big.rb", "line":7, "method":"build", "generation":4, "memsize":24000040, "flags":{{"wb_protected":true, "old":true, "uncollectible":true, "marked":true}}}}"#).unwrap();
    line += 1;
    let big_line = line;
    // A broken line right after it, to check line numbers.
    out.write_all(b"not json at all\n").unwrap();
    line += 1;
    let bad_line = line;
    let after = 5_000u64;
    for i in 0..after {
        writeln!(out, r#"{{"address":"0x{:x}", "type":"OBJECT", "class":"0x7f0000000028", "ivars":0, "file":"after.rb", "line":2, "method":"new", "generation":5, "memsize":40, "flags":{{"wb_protected":true}}}}"#, 0x7f50_0000_0000u64 + 40 * i).unwrap();
        line += 1;
    }
    out.flush().unwrap();
    drop(out);
    let size = fs::metadata(&path).unwrap().len();
    assert!(size > 70 << 20, "the file is only {size} bytes");

    for threads in ["1", "2"] {
        let run = summary_run(
            &path,
            &[
                "--by",
                "type,location",
                "--top",
                "0",
                "--format",
                "json",
                "--threads",
                threads,
            ],
        );
        let v = run.json();
        let d = &v["diagnostics"];
        assert_eq!(d["lines"], line, "--threads {threads}");
        assert_eq!(d["bytes"], size);
        assert_eq!(d["roots"], 1);
        assert_eq!(d["objects"], 1 + small + 1 + after, "--threads {threads}");
        assert_eq!(d["malformed_lines"], 1);
        assert_eq!(
            d["first_malformed"][0]["line"], bad_line,
            "line numbers after a huge line"
        );
        assert!(
            run.stderr
                .contains(&format!("{}:{bad_line}:", path.display())),
            "{}",
            run.stderr
        );
        let find = |t: &str, loc: &str| -> Vec<&Value> {
            rows(&v)
                .iter()
                .filter(|r| r["type"] == t && r["location"] == loc)
                .collect()
        };
        let big = find("ARRAY", "big.rb:7");
        assert_eq!(big.len(), 1, "the huge ARRAY (line {big_line})");
        assert_eq!(big[0]["count"], 1);
        assert_eq!(big[0]["memsize"], 24_000_040);
        assert_eq!(find("STRING", "small.rb:1")[0]["count"], small);
        assert_eq!(
            find("OBJECT", "after.rb:2")[0]["count"],
            after,
            "objects after the huge line"
        );
    }
    // diff reads huge lines too.
    let v = common::diff_run(&[&path, &path], &["--format", "json", "-q"]).json();
    assert_eq!(v["totals"]["new_objects"], 0);
    assert_eq!(v["totals"]["after_objects"], 1 + small + 1 + after);
}

#[test]
fn last_line_without_newline_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-final-newline.jsonl");
    let text = concat!(
        r#"{"type":"ROOT", "root":"vm", "references":["0x7f0000000028"]}"#,
        "\n",
        r#"{"address":"0x7f0000000028", "type":"CLASS", "class":"0x7f0000000100", "name":"Object", "references":[], "memsize":100}"#,
        "\n",
        r#"{"address":"0x7f0000000050", "type":"OBJECT", "class":"0x7f0000000028", "ivars":0, "memsize":40}"#
    );
    fs::write(&path, text).unwrap();
    let v = summary_json(&path, &["--by", "type"]);
    assert_eq!(v["totals"]["objects"], 2);
    assert_eq!(v["diagnostics"]["lines"], 3);
    assert_eq!(v["diagnostics"]["malformed_lines"], 0);
    assert_eq!(v["diagnostics"]["truncated_last_line"], Value::Null);
}

#[test]
fn truncated_compressed_input_fails_cleanly_or_is_read_in_part() {
    // A process killed while writing `dump_all | gzip` leaves a cut stream.
    let pop = population();
    let dir = tempfile::tempdir().unwrap();
    let gz = dir.path().join("whole.gz");
    let zst = dir.path().join("whole.zst");
    gzip(&pop.dump, &gz);
    zstd_file(&pop.dump, &zst);
    for whole in [gz, zst] {
        let bytes = fs::read(&whole).unwrap();
        let cut = dir.path().join(format!(
            "cut-{}",
            whole.file_name().unwrap().to_str().unwrap()
        ));
        fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let run = summary_run(&cut, &["--format", "json"]);
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
        match run.code {
            // Either an input error that names the file...
            Some(2) => {
                run.usage_error();
                assert!(run.stderr.contains(cut.to_str().unwrap()), "{}", run.stderr);
            }
            // ...or the part that could be read, with the cut reported.
            Some(0) => {
                let v = run.json();
                let objects = v["totals"]["dump_objects"].as_u64().unwrap();
                assert!(
                    objects > 0 && objects < pop.num("heap_object_lines"),
                    "{objects} objects"
                );
                assert!(
                    v["diagnostics"]["malformed_lines"].as_u64().unwrap() > 0
                        || !run.stderr.is_empty()
                );
            }
            other => panic!("{}: exit code {other:?}\n{}", cut.display(), run.stderr),
        }
    }
}

#[test]
fn truncated_last_line_of_a_large_dump() {
    // The cut line is in the last of several chunks; plain and gzip.
    let dir = tempfile::tempdir().unwrap();
    let (path, e) = write_generated(dir.path(), 100_000, 0);
    let mut f = fs::OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(br#"{"address":"0x7f5c1a040168", "type":"STRING", "class":"0x7f0000000050", "file":"/app/x.rb", "li"#)
        .unwrap();
    drop(f);
    let gz = dir.path().join("cut-line.gz");
    gzip(&path, &gz);
    for p in [&path, &gz] {
        let run = summary_run(p, &["--format", "json"]);
        let v = run.json();
        let d = &v["diagnostics"];
        assert_eq!(d["lines"], e.lines + 1);
        assert_eq!(d["objects"], e.objects, "the cut record is not counted");
        assert_eq!(d["truncated_last_line"], e.lines + 1);
        assert_eq!(d["malformed_lines"], 1);
        assert_eq!(d["first_malformed"], serde_json::json!([]));
        let at = format!("heapscope: warning: {}:{}:", p.display(), e.lines + 1);
        assert!(
            run.stderr.contains(&at) && run.stderr.contains("truncated"),
            "{}",
            run.stderr
        );
    }
}
