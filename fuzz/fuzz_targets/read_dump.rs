//! Arbitrary bytes through `read_input`, as if they were a file's contents.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    common::read("fuzz", data.to_vec());
});
