//! The reader's guards against hostile or accidental input: the first-record
//! bound (exact, whatever the chunking), files that shrink or grow between
//! open and read, and the warnings about several dumps in one file, repeated
//! addresses and missing ROOT records.

use std::fs::{self, OpenOptions};
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};

use heapscope_reader::{read_input, Dump, Input, ReadError, ReadOptions};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

fn opts(threads: usize, chunk_bytes: usize, bound: u64) -> ReadOptions {
    ReadOptions {
        threads,
        chunk_bytes,
        first_record_within: bound,
        ..ReadOptions::default()
    }
}

fn read_bytes(bytes: &[u8], o: &ReadOptions) -> Result<Dump, ReadError> {
    let input = Input::from_reader(
        "mem".into(),
        Box::new(Cursor::new(bytes.to_vec())),
        Some(bytes.len() as u64),
    )
    .unwrap();
    read_input(input, o)
}

fn not_a_dump(r: Result<Dump, ReadError>) -> String {
    match r {
        Err(ReadError::NotADump { why, .. }) => why,
        Err(e) => panic!("expected not a dump, got {e}"),
        Ok(d) => panic!("expected not a dump, got {} objects", d.heap.len()),
    }
}

const RECORD: &str = r#"{"address":"0x7f0000000028", "type":"STRING", "class":"0x7f0000000050", "bytesize":1, "value":"x", "memsize":40}"#;

/// `pad` bytes of padding (blank lines, or one junk line), then a record.
fn padded(pad: usize, junk: bool) -> Vec<u8> {
    let mut v = if junk {
        let mut v = vec![b'#'; pad - 1];
        v.push(b'\n');
        v
    } else {
        vec![b'\n'; pad]
    };
    v.extend_from_slice(RECORD.as_bytes());
    v.push(b'\n');
    v
}

#[test]
fn the_first_record_must_end_within_the_bound_whatever_the_chunking() {
    let bound = 20_000u64;
    // The record's line ends (newline included) exactly at the bound, or one byte past it.
    let fits = bound as usize - RECORD.len() - 1;
    for junk in [false, true] {
        for chunk in [4096, 5000, 16 << 10, 1 << 20] {
            for threads in [1, 2, 3] {
                let o = opts(threads, chunk, bound);
                let ctx = format!("junk {junk}, chunk {chunk}, threads {threads}");
                let d =
                    read_bytes(&padded(fits, junk), &o).unwrap_or_else(|e| panic!("{ctx}: {e}"));
                assert_eq!(d.heap.len(), 1, "{ctx}");
                let why = not_a_dump(read_bytes(&padded(fits + 1, junk), &o));
                assert!(why.contains("20000 bytes"), "{ctx}: {why}");
            }
        }
    }
}

#[test]
fn an_endless_line_before_any_record_is_refused_with_its_line_number() {
    // 2 junk lines, then a line without a newline ten times the bound.
    let bound = 64u64 << 10;
    let mut bytes = b"junk\n\n".to_vec();
    bytes.extend(std::iter::repeat_n(b'z', 10 * bound as usize));
    for chunk in [4096, 40_000] {
        let why = not_a_dump(read_bytes(&bytes, &opts(2, chunk, bound)));
        assert!(
            why.contains("64 MiB") || why.contains("65536 bytes"),
            "{why}"
        );
        assert!(why.contains("line 3 runs on past it"), "{why}");
        assert!(why.contains("zzzz"), "{why}");
    }
    // Zeros are called binary.
    let zeros = vec![0u8; 10 * bound as usize];
    let why = not_a_dump(read_bytes(&zeros, &opts(2, 4096, bound)));
    assert!(
        why.contains("binary data") && why.contains("line 1"),
        "{why}"
    );
}

#[test]
fn after_a_record_lines_may_be_longer_than_the_bound() {
    let bound = 8192u64;
    let mut bytes = RECORD.as_bytes().to_vec();
    bytes.push(b'\n');
    let long_value = "v".repeat(10 * bound as usize);
    bytes.extend_from_slice(
        format!(
            r#"{{"address":"0x7f0000000050", "type":"STRING", "bytesize":{}, "value":"{long_value}"}}"#,
            long_value.len()
        )
        .as_bytes(),
    );
    bytes.push(b'\n');
    for chunk in [4096, 1 << 20] {
        let d = read_bytes(&bytes, &opts(2, chunk, bound)).unwrap();
        assert_eq!(d.heap.len(), 2);
        assert_eq!(d.diagnostics.malformed, 0);
    }
}

fn scratch_copy(name: &str) -> (tempfile::TempDir, PathBuf, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    let bytes = fs::read(fixture(name)).unwrap();
    fs::write(&path, &bytes).unwrap();
    (dir, path, bytes)
}

#[test]
fn a_file_that_shrinks_after_open_is_an_error_not_a_signal() {
    let (_dir, path, bytes) = scratch_copy("ruby-3.4.jsonl");
    for cut in [0, bytes.len() / 2] {
        let input = Input::open(&path).unwrap();
        assert!(input.mapped.is_some(), "a plain file is read in place");
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(cut as u64)
            .unwrap();
        match read_input(input, &ReadOptions::default()) {
            Err(ReadError::Truncated { why, .. }) => {
                assert!(why.contains("truncated while it was being read"), "{why}");
                assert!(
                    why.contains(&format!("of its {} bytes", bytes.len())),
                    "{why}"
                );
            }
            Err(e) => panic!("cut to {cut}: {e}"),
            Ok(_) => panic!("cut to {cut}: read as if whole"),
        }
        fs::write(&path, &bytes).unwrap();
    }
}

#[test]
fn a_file_that_grows_after_open_is_read_to_its_size_at_open_with_a_warning() {
    let (_dir, path, bytes) = scratch_copy("ruby-3.4.jsonl");
    let whole = heapscope_reader::read_path(&path, &ReadOptions::default()).unwrap();
    assert!(whole.diagnostics.file_changed.is_none());
    let input = Input::open(&path).unwrap();
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(RECORD.as_bytes()).unwrap();
    drop(f);
    let d = read_input(input, &ReadOptions::default()).unwrap();
    assert_eq!(d.heap.len(), whole.heap.len());
    assert_eq!(d.diagnostics.bytes, bytes.len() as u64);
    let why = d.diagnostics.file_changed.clone().expect("a warning");
    assert!(why.contains("grew"), "{why}");
    assert!(d
        .diagnostics
        .warnings("x")
        .iter()
        .any(|w| w.contains("grew")));
}

#[test]
fn concatenated_dumps_and_repeated_addresses_are_counted_and_warned_about() {
    let one = fs::read(fixture("ruby-3.4.jsonl")).unwrap();
    let lines = one.iter().filter(|&&b| b == b'\n').count() as u64;
    let single = read_bytes(&one, &ReadOptions::default()).unwrap();
    let d1 = &single.diagnostics;
    assert_eq!((d1.duplicate_addresses, d1.late_roots), (0, 0));
    assert!(d1.structure_warnings("x").is_empty());
    assert!(d1.reachability_warnings("x").is_empty());
    let twice = [one.as_slice(), one.as_slice()].concat();
    for chunk in [4096, 8 << 20] {
        for threads in [1, 2] {
            let d = read_bytes(&twice, &opts(threads, chunk, 64 << 20)).unwrap();
            let g = &d.diagnostics;
            assert_eq!(g.objects, 2 * d1.objects);
            assert_eq!(g.duplicate_addresses, d1.objects);
            assert_eq!(g.late_roots, d1.roots);
            assert_eq!(g.first_late_root, Some(lines + 1), "chunk {chunk}");
            let w = g.structure_warnings("twice");
            assert_eq!(w.len(), 2, "{w:?}");
            assert!(w[0].starts_with(&format!("twice:{}: a ROOT record", lines + 1)));
            assert!(w[1].contains("repeat the address"), "{w:?}");
            assert!(!g.reachability_warnings("twice").is_empty());
        }
    }
}

#[test]
fn a_dump_without_roots_cannot_be_judged_for_reachability() {
    let one = fs::read(fixture("ruby-3.4.jsonl")).unwrap();
    let no_roots: Vec<u8> = one
        .split_inclusive(|&b| b == b'\n')
        .filter(|l| !l.windows(13).any(|w| w == br#""type":"ROOT""#))
        .flatten()
        .copied()
        .collect();
    assert!(no_roots.len() < one.len());
    let d = read_bytes(&no_roots, &ReadOptions::default()).unwrap();
    assert_eq!(d.diagnostics.roots, 0);
    let w = d.diagnostics.reachability_warnings("since");
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("no ROOT records"), "{w:?}");
    // Not a problem for what does not walk the graph.
    assert!(d.diagnostics.warnings("since").is_empty());
}

#[test]
fn many_dangling_references_are_warned_about() {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(br#"{"type":"ROOT", "root":"vm", "references":["0x7f0000000028"]}"#);
    bytes.push(b'\n');
    bytes.extend_from_slice(
        br#"{"address":"0x7f0000000028", "type":"ARRAY", "references":["0x7f0000000050", "0x7f9900000000", "0x7f9900000028"]}"#,
    );
    bytes.push(b'\n');
    bytes.extend_from_slice(br#"{"address":"0x7f0000000050", "type":"STRING"}"#);
    bytes.push(b'\n');
    let d = read_bytes(&bytes, &ReadOptions::default()).unwrap();
    assert_eq!(
        (d.diagnostics.dangling_refs, d.diagnostics.references),
        (2, 3)
    );
    let w = d.diagnostics.structure_warnings("x");
    assert!(w.iter().any(|w| w.contains("2 of 3 references")), "{w:?}");
}
