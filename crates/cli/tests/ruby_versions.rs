//! The version matrix's smoke test: every wasm Ruby and the native one run a
//! corpus program, and `summary --by class` finds what it built.

mod common;

use common::rubies::{self, WASM_VERSIONS};

fn class_count(dump: &std::path::Path, class: &str) -> u64 {
    let dump = dump.to_str().unwrap();
    let json = common::heapscope(&[
        "summary", "--by", "class", "-n", "0", "--format", "json", dump,
    ])
    .json();
    json["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["class"] == class)
        .map(|r| r["count"].as_u64().unwrap())
        .unwrap_or(0)
}

#[test]
fn every_wasm_ruby_writes_a_dump_heapscope_reads() {
    for version in WASM_VERSIONS {
        let dir = rubies::wasm_run(version, "smoke.rb");
        let expect = rubies::expectations(&dir);
        assert_eq!(
            class_count(&dir.join("smoke.dump"), "CorpusSmoke"),
            10,
            "Ruby {}",
            expect["ruby"]
        );
    }
}

#[test]
fn the_native_ruby_writes_a_dump_heapscope_reads() {
    let dir = rubies::native_run("smoke.rb");
    assert_eq!(
        class_count(&dir.path().join("smoke.dump"), "CorpusSmoke"),
        10,
        "Ruby {}",
        rubies::native_version()
    );
}
