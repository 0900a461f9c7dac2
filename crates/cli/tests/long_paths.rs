//! Paths through a long linked list (a real Ruby 3.1 dump of a chain of
//! 200,000 objects): `suspects`, `path` and `leaks` print the first and last
//! steps and one line for the steps left out between, JSON says how many
//! with `elided`, and `--full-path` prints every step.

mod common;

use std::path::{Path, PathBuf};

use common::{heapscope, require_ruby, ruby_script, scratch_dir};
use serde_json::Value;
use tempfile::TempDir;

const NODES: u64 = 200_000;
/// The payload array at the end of the chain, after the NODES nodes.
const PATH_LEN: u64 = NODES + 1;
/// Steps kept at each end.
const ENDS: u64 = 10;

/// Runs `tests/ruby/hostile/long_chain.rb` for a chain of `nodes` nodes and
/// `dumps` dumps; returns the directory (kept alive), the dumps and the
/// addresses the program printed.
fn chain(nodes: u64, dumps: u32) -> (TempDir, Vec<PathBuf>, Value) {
    require_ruby();
    let dir = scratch_dir("long-paths-");
    let out = std::process::Command::new("ruby")
        .arg(ruby_script("hostile/long_chain.rb"))
        .arg(dir.path())
        .arg(nodes.to_string())
        .arg(dumps.to_string())
        .current_dir(dir.path())
        .output()
        .expect("ruby runs");
    assert!(
        out.status.success(),
        "long_chain.rb failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let addresses: Value = serde_json::from_slice(&out.stdout).expect("addresses as JSON");
    let files = (1..=dumps)
        .map(|i| dir.path().join(format!("chain-{i}.dump")))
        .collect();
    (dir, files, addresses)
}

fn arg(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn elision_line(left_out: u64) -> String {
    format!(
        "… {} steps left out (--full-path shows every step) …",
        common::thousands(left_out)
    )
}

/// A JSON path of the chain: 2 × ENDS steps, the counts, and its last step.
fn check_elided_json(path: &Value, len: u64, last: &str) {
    let steps = path["steps"].as_array().unwrap();
    assert_eq!(steps.len() as u64, 2 * ENDS, "{path}");
    assert_eq!(path["length"], len);
    assert_eq!(path["elided"], len - 2 * ENDS);
    assert_eq!(path["elided_after"], ENDS);
    assert_eq!(steps.last().unwrap()["address"], last);
}

#[test]
fn suspects_and_path_elide_a_200k_step_chain() {
    let (_dir, dumps, addr) = chain(NODES, 1);
    let dump = arg(&dumps[0]);
    let payload = addr["payload"].as_str().unwrap();
    let head = addr["head"].as_str().unwrap();
    let left_out = elision_line(PATH_LEN - 2 * ENDS);

    // suspects: the head of the chain retains nearly everything, and the
    // memory accumulates in the payload at its far end.
    let run = heapscope(&["suspects", dump]);
    run.ok();
    let text = run.stdout_text();
    assert!(text.len() < 8_000, "{} bytes:\n{text}", text.len());
    assert!(text.lines().count() < 60, "{text}");
    assert!(text.contains(&left_out), "{text}");
    assert!(text.contains(head) && text.contains(payload), "{text}");
    let v = heapscope(&["suspects", dump, "--format", "json"]).json();
    let s = &v["suspects"][0];
    assert_eq!(s["accumulation"]["address"], payload);
    check_elided_json(&s["path"], PATH_LEN, payload);
    assert_eq!(s["path"]["steps"][0]["address"], head);
    assert!(v.to_string().len() < 20_000);

    // path: the same elision, in the table and in JSON.
    let run = heapscope(&["path", dump, payload]);
    run.ok();
    let text = run.stdout_text();
    assert!(text.len() < 5_000, "{} bytes:\n{text}", text.len());
    assert!(text.contains(&left_out), "{text}");
    let v = heapscope(&["path", dump, payload, "--format", "json"]).json();
    check_elided_json(&v["paths"][0], PATH_LEN, payload);

    // The dominator chain is as long, and elided the same way.
    let run = heapscope(&["path", dump, payload, "--dominators"]);
    let text = run.ok().stdout_text();
    assert!(text.contains(&left_out), "{text}");
    assert!(text.lines().count() < 30, "{text}");
    let v = heapscope(&["path", dump, payload, "--dominators", "-f", "json"]).json();
    assert_eq!(v["dominators"].as_array().unwrap().len() as u64, 2 * ENDS);
    assert_eq!(v["dominators_length"], PATH_LEN);
    assert_eq!(v["dominators_elided"], PATH_LEN - 2 * ENDS);

    // --full-path: every step, one line each.
    let run = heapscope(&["path", dump, payload, "--dominators", "--full-path"]);
    let text = run.ok().stdout_text();
    assert!(!text.contains("left out"));
    let rows = text.lines().filter(|l| l.contains(" OBJECT ")).count() as u64;
    assert_eq!(rows, NODES);
    // A short path is never cut.
    let v = heapscope(&["path", dump, head, "--format", "json"]).json();
    assert_eq!(v["paths"][0]["steps"].as_array().unwrap().len(), 1);
    assert_eq!(v["paths"][0]["elided"], 0);
    assert_eq!(v["paths"][0]["elided_after"], Value::Null);
}

#[test]
fn leaks_elide_the_path_to_a_leaking_site() {
    // Four dumps; the payload's strings grow by 1,000 each time, held at
    // the end of a 50,000-node chain.
    let nodes = 50_000;
    let (_dir, dumps, addr) = chain(nodes, 4);
    let payload = addr["payload"].as_str().unwrap();
    let mut args = vec!["leaks"];
    args.extend(dumps.iter().map(|d| arg(d)));
    args.extend(["--time", "0,600,1200,1800"]);
    let run = heapscope(&args);
    let text = run.ok().stdout_text();
    // The string's path: the nodes, the payload array, the string.
    let len = nodes + 2;
    assert!(text.contains(&elision_line(len - 2 * ENDS)), "{text}");
    assert!(text.len() < 8_000, "{} bytes:\n{text}", text.len());
    args.extend(["--format", "json"]);
    let v = heapscope(&args).json();
    let leak = &v["processes"][0]["leaks"][0];
    assert_eq!(leak["class"], "String");
    let path = &leak["path"];
    let steps = path["steps"].as_array().unwrap();
    assert_eq!(steps.len() as u64, 2 * ENDS);
    assert_eq!(path["length"], len);
    assert_eq!(path["elided"], len - 2 * ENDS);
    assert_eq!(steps[steps.len() - 2]["address"], payload);
    // --full-path: all of it.
    args.push("--full-path");
    let v = heapscope(&args).json();
    let path = &v["processes"][0]["leaks"][0]["path"];
    assert_eq!(path["steps"].as_array().unwrap().len() as u64, len);
    assert_eq!(path["elided"], 0);
}
