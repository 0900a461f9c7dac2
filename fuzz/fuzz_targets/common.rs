//! Shared by the fuzz targets: read `bytes` as a dump and check what every
//! successful read must satisfy.

use std::io::Cursor;

use heapscope_reader::{read_input, Input, ReadError, ReadOptions};

pub fn read(name: &str, bytes: Vec<u8>) {
    let size = bytes.len() as u64;
    let opts = ReadOptions {
        references: true,
        string_values: true,
        threads: 2,
        // The smallest chunk, and a first-record bound small enough for
        // fuzzed inputs to cross it, so chunk seams and the bound's
        // hand-over between threads are exercised.
        chunk_bytes: 4096,
        first_record_within: 6000,
        ..ReadOptions::default()
    };
    let input = match Input::from_reader(name.into(), Box::new(Cursor::new(bytes)), Some(size)) {
        Ok(i) => i,
        // A zstd frame header the decoder refuses at once.
        Err(_) => return,
    };
    match read_input(input, &opts) {
        Ok(dump) => {
            let d = &dump.diagnostics;
            assert!(d.records() > 0, "a dump with no record was accepted");
            assert_eq!(dump.heap.len() as u64, d.objects);
            assert_eq!(dump.heap.roots.len() as u64, d.roots);
            assert!(d.malformed <= d.lines);
            assert!(d.lines >= d.records() + d.blank_lines);
            for id in dump.heap.ids() {
                let _ = dump.heap.memsize(id);
                let _ = dump.heap.class_of(id);
            }
            let _ = d.warnings(&dump.source);
            let _ = d.reachability_warnings(&dump.source);
        }
        Err(ReadError::NotADump { why, .. }) => assert!(!why.is_empty()),
        Err(ReadError::Io { .. } | ReadError::Truncated { .. }) => {}
    }
}
