//! Arbitrary bytes gzip-compressed, then through `read_input`.
#![no_main]

mod common;

use std::io::Write;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    common::read("fuzz.gz", enc.finish().unwrap());
});
