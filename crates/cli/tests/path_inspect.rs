//! `heapscope path` and `heapscope inspect` end to end on a real Ruby dump
//! written at test time.

mod common;

use std::fs;
use std::path::PathBuf;
use std::sync::OnceLock;

use common::{heapscope, require_ruby, run_ruby, scratch_dir};
use serde_json::Value;
use tempfile::TempDir;

/// `$registry = {"k" => [Holder.new]}`, Holder's `@payload` a 5,000-byte
/// string; plus garbage strings allocated after the last GC (unreachable).
const PROGRAM: &str = r#"
require "objspace"
require "json"
ObjectSpace.trace_object_allocations_start
class Holder
  def initialize
    @payload = "x" * 5000
  end
end
$registry = {"k" => [Holder.new]}
GC.start
GC.disable
def make_garbage
  40.times { "g" * 3001 }
  nil
end
make_garbage
# In a method, so that no local variable of the main script holds the
# objects (the VM stack is a root).
def addr(obj)
  "0x%x" % ObjectSpace.dump(obj).match(/"address":"0x(\h+)"/)[1].to_i(16)
end
def addresses
  holder = $registry["k"][0]
  {
    "hash" => addr($registry),
    "array" => addr($registry["k"]),
    "holder" => addr(holder),
    "payload" => addr(holder.instance_variable_get(:@payload)),
  }
end
info = addresses
File.open(ARGV[0], "w") { |f| ObjectSpace.dump_all(output: f) }
File.write(ARGV[1], JSON.generate(info))
"#;

struct Dump {
    _dir: TempDir,
    path: PathBuf,
    info: Value,
}

impl Dump {
    fn addr(&self, what: &str) -> String {
        self.info[what].as_str().unwrap().to_string()
    }
}

fn dump() -> &'static Dump {
    static D: OnceLock<Dump> = OnceLock::new();
    D.get_or_init(|| {
        require_ruby();
        let dir = scratch_dir("heapscope-path-inspect-");
        let script = dir.path().join("registry.rb");
        fs::write(&script, PROGRAM).unwrap();
        let path = dir.path().join("registry.dump");
        let info_path = dir.path().join("info.json");
        run_ruby(&script, &[&path, &info_path], &[], dir.path());
        let info = serde_json::from_str(&fs::read_to_string(&info_path).unwrap()).unwrap();
        Dump {
            _dir: dir,
            path,
            info,
        }
    })
}

fn run(cmd: &str, address: &str, extra: &[&str]) -> common::Run {
    let d = dump();
    let mut args = vec![cmd, d.path.to_str().unwrap(), address];
    args.extend_from_slice(extra);
    heapscope(&args)
}

fn steps(path: &Value) -> &Vec<Value> {
    path["steps"].as_array().expect("steps")
}

#[test]
fn path_to_the_payload_goes_through_hash_array_and_holder() {
    let d = dump();
    let v = run("path", &d.addr("payload"), &["--format", "json"]).json();
    assert_eq!(v["reachable"], true);
    let paths = v["paths"].as_array().unwrap();
    assert_eq!(paths.len(), 1);
    let p = &paths[0];
    let root = p["root"].as_str().unwrap();
    assert!(root == "global_tbl" || root == "vm", "root {root}");
    let s = steps(p);
    let addrs: Vec<&str> = s.iter().map(|x| x["address"].as_str().unwrap()).collect();
    let (h, a, o, t) = (
        d.addr("hash"),
        d.addr("array"),
        d.addr("holder"),
        d.addr("payload"),
    );
    let pos = |x: &str| {
        addrs
            .iter()
            .position(|y| *y == x)
            .unwrap_or_else(|| panic!("{x} not on the path {addrs:?}"))
    };
    assert!(pos(&h) < pos(&a) && pos(&a) < pos(&o) && pos(&o) < pos(&t));
    assert_eq!(pos(&t), s.len() - 1);
    assert_eq!(s[pos(&h)]["type"], "HASH");
    assert_eq!(s[pos(&h)]["held_as"], "a value");
    assert_eq!(s[pos(&a)]["held_as"], "element [0]");
    assert_eq!(s[pos(&o)]["class"], "Holder");
    assert!(s[pos(&o)]["held_as"]
        .as_str()
        .unwrap()
        .contains("instance variable"));
    assert_eq!(s[pos(&t)]["held_as"], Value::Null);
    assert_eq!(s[pos(&t)]["type"], "STRING");

    let text = run("path", &d.addr("payload"), &[]).ok().stdout_text();
    assert!(text.starts_with("ROOT "), "{text}");
    assert!(
        text.contains("element [0]") && text.contains("Holder"),
        "{text}"
    );
}

#[test]
fn all_paths_start_at_roots() {
    let d = dump();
    for extra in [&["--all"][..], &["--all", "3"][..]] {
        let mut args = vec!["--format", "json"];
        args.extend_from_slice(extra);
        let v = run("path", &d.addr("payload"), &args).json();
        let paths = v["paths"].as_array().unwrap();
        assert!(!paths.is_empty());
        for p in paths {
            assert!(p["root"].as_str().is_some_and(|r| !r.is_empty()));
            assert!(p["conservative"].is_boolean());
            let s = steps(p);
            assert_eq!(s.last().unwrap()["address"], d.addr("payload").as_str());
        }
    }
}

#[test]
fn dominator_chain_ends_at_the_object_with_shrinking_retained_sizes() {
    let d = dump();
    let v = run("path", &d.addr("payload"), &["--dominators", "-f", "json"]).json();
    let chain = v["dominators"].as_array().unwrap();
    assert!(chain.len() >= 4, "{chain:?}");
    assert_eq!(chain.last().unwrap()["address"], d.addr("payload").as_str());
    let retained: Vec<u64> = chain
        .iter()
        .map(|s| s["retained_bytes"].as_u64().unwrap())
        .collect();
    assert!(
        retained.windows(2).all(|w| w[0] >= w[1]),
        "retained sizes grow down the chain: {retained:?}"
    );
    assert!(*retained.last().unwrap() >= 5000);
    let text = run("path", &d.addr("payload"), &["--dominators"])
        .ok()
        .stdout_text();
    assert!(text.contains("Holder"), "{text}");
}

#[test]
fn inspect_shows_referrers_sizes_and_record() {
    let d = dump();
    let v = run("inspect", &d.addr("holder"), &["--format", "json"]).json();
    assert_eq!(v["type"], "OBJECT");
    assert_eq!(v["class"], "Holder");
    let shallow = v["shallow_bytes"].as_u64().unwrap();
    let retained = v["retained_bytes"].as_u64().unwrap();
    assert!(
        retained >= shallow && retained >= 5000,
        "{retained} {shallow}"
    );
    assert_eq!(v["reachable"], true);
    assert_eq!(v["dominator"]["address"], d.addr("array").as_str());
    let referrers = &v["referrers"];
    assert_eq!(referrers["total"], 1);
    assert_eq!(referrers["items"][0]["address"], d.addr("array").as_str());
    assert_eq!(referrers["items"][0]["type"], "ARRAY");
    assert_eq!(referrers["items"][0]["held_as"], "element [0]");
    let referents: Vec<&str> = v["referents"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["address"].as_str().unwrap())
        .collect();
    assert!(referents.contains(&d.addr("payload").as_str()));
    assert_eq!(v["record"]["address"], d.addr("holder").as_str());
    assert_eq!(v["location"].as_str().map(|l| l.contains(':')), Some(true));

    let text = run("inspect", &d.addr("holder"), &[]).ok().stdout_text();
    assert!(text.contains("Referrers (1 of 1)"), "{text}");
    assert!(text.contains(&d.addr("array")), "{text}");
}

#[test]
fn inspect_pages_referents() {
    let d = dump();
    // The hash references its key, its value and its class.
    let all = run("inspect", &d.addr("hash"), &["-f", "json"]).json();
    let total = all["referents"]["total"].as_u64().unwrap();
    assert!(total >= 2);
    let page = run(
        "inspect",
        &d.addr("hash"),
        &["-f", "json", "--limit", "1", "--offset", "1"],
    )
    .json();
    assert_eq!(page["referents"]["total"].as_u64(), Some(total));
    let items = page["referents"]["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0], all["referents"]["items"][1]);
    assert!(all["root_categories"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c == "global_tbl" || c == "vm"));
}

#[test]
fn inspect_of_compressed_input_has_no_record() {
    let d = dump();
    let gz = d.path.with_extension("dump.gz");
    {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(
            fs::File::create(&gz).unwrap(),
            flate2::Compression::fast(),
        );
        e.write_all(&fs::read(&d.path).unwrap()).unwrap();
        e.finish().unwrap();
    }
    let v = heapscope(&[
        "inspect",
        gz.to_str().unwrap(),
        &d.addr("holder"),
        "-f",
        "json",
    ])
    .json();
    assert_eq!(v["record"], Value::Null);
    assert!(v["record_note"].as_str().unwrap().contains("not available"));
}

/// A dump read from a named pipe cannot be re-read for its records: the
/// second open used to wait for a writer forever.
#[test]
fn inspect_and_path_of_a_fifo_do_not_hang() {
    let d = dump();
    let dir = scratch_dir("heapscope-fifo-");
    for (cmd, what) in [("inspect", "holder"), ("path", "payload")] {
        let fifo = dir.path().join(format!("{cmd}.fifo"));
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let data = fs::read(&d.path).unwrap();
        let writer = {
            let fifo = fifo.clone();
            std::thread::spawn(move || {
                // Blocks until heapscope opens the pipe; written once.
                let _ = fs::write(&fifo, data);
            })
        };
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_heapscope"))
            .args([cmd, fifo.to_str().unwrap(), &d.addr(what), "-f", "json"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let started = std::time::Instant::now();
        while child.try_wait().unwrap().is_none() {
            if started.elapsed() > std::time::Duration::from_secs(60) {
                let _ = child.kill();
                panic!("heapscope {cmd} on a FIFO hangs");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        writer.join().unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        if cmd == "inspect" {
            assert_eq!(v["record"], Value::Null);
            let note = v["record_note"].as_str().unwrap();
            assert!(note.contains("not a regular file"), "{note}");
        } else {
            assert_eq!(v["paths"][0]["steps"].as_array().unwrap().len(), 4);
        }
    }
}

#[test]
fn unknown_address_is_an_error() {
    for cmd in ["path", "inspect"] {
        let r = run(cmd, "0x10", &[]);
        r.usage_error();
        assert!(r.stderr.contains("no object at 0x10"), "{}", r.stderr);
    }
    run("path", "zzz", &[]).usage_error();
}

#[test]
fn unreachable_object_is_reported() {
    let d = dump();
    let text = fs::read_to_string(&d.path).unwrap();
    // Garbage strings made after the last GC; most are unreachable (a few may
    // be held conservatively from the machine stack).
    let candidates: Vec<String> = text
        .lines()
        .filter(|l| l.contains("\"bytesize\":3001"))
        .filter_map(|l| {
            let v: Value = serde_json::from_str(l).ok()?;
            Some(v["address"].as_str()?.to_string())
        })
        .collect();
    assert!(!candidates.is_empty(), "no garbage strings in the dump");
    let mut seen = false;
    for a in candidates.iter().take(10) {
        let r = run("path", a, &[]);
        if r.code == Some(2) {
            r.usage_error();
            assert!(
                r.stderr.contains("unreachable from any root"),
                "{}",
                r.stderr
            );
            let i = run("inspect", a, &["-f", "json"]).json();
            assert_eq!(i["reachable"], false);
            assert_eq!(i["dominator"], Value::Null);
            seen = true;
            break;
        }
    }
    assert!(seen, "no unreachable garbage string among {candidates:?}");
}

/// A Payload held by a constant of Object and by a global Hash; the dump and
/// the Payload's address.
const CONSTANT_PROGRAM: &str = r#"
require "objspace"
ObjectSpace.trace_object_allocations_start
class Payload; end
HOLDER = [Payload.new]
$also = { "k" => HOLDER[0] }
GC.start
File.open(ARGV[0], "w") { |f| ObjectSpace.dump_all(output: f) }
File.write(ARGV[1], "0x%x" % ObjectSpace.dump(HOLDER[0]).match(/"address":"0x(\h+)"/)[1].to_i(16))
"#;

#[test]
fn all_paths_differ_in_their_holders_not_in_class_hops() {
    require_ruby();
    let dir = scratch_dir("heapscope-path-const-");
    let script = dir.path().join("constant.rb");
    fs::write(&script, CONSTANT_PROGRAM).unwrap();
    let dump = dir.path().join("constant.dump");
    let addr_file = dir.path().join("address");
    run_ruby(&script, &[&dump, &addr_file], &[], dir.path());
    let address = fs::read_to_string(&addr_file).unwrap();
    let v = heapscope(&[
        "path",
        dump.to_str().unwrap(),
        &address,
        "--all",
        "--format",
        "json",
    ])
    .json();
    let paths = v["paths"].as_array().unwrap();
    // Every class leads to Object through superclasses: before, --all listed
    // "Class TracePoint -> its superclass -> Object -> constant" and the like.
    for p in paths {
        let s = steps(p);
        assert!(
            !(s.len() > 1 && s[0]["type"] == "CLASS" && s[1]["type"] == "CLASS"),
            "a path through class-to-class hops: {p:#}"
        );
    }
    // The two holders that matter: the constant's Array and the global Hash
    // (then maybe paths from stale C-stack values).
    let precise: Vec<&Value> = paths
        .iter()
        .filter(|p| p["root"] != "machine_context")
        .collect();
    assert_eq!(precise.len(), 2, "{v:#}");
    let holders: Vec<&str> = precise
        .iter()
        .map(|p| {
            let s = steps(p);
            s[s.len() - 2]["type"].as_str().unwrap()
        })
        .collect();
    assert!(
        holders.contains(&"ARRAY") && holders.contains(&"HASH"),
        "{holders:?}"
    );
}

#[test]
fn a_machine_context_root_is_described_once() {
    // Objects only a C stack references: some IMEMOs of the dump_all call
    // itself, in every dump Ruby 3.1 writes.
    let d = dump();
    let text = fs::read_to_string(&d.path).unwrap();
    let mut machine = std::collections::BTreeSet::new();
    let mut precise = std::collections::BTreeSet::new();
    for line in text.lines().filter(|l| l.contains(r#""type":"ROOT""#)) {
        let r: Value = serde_json::from_str(line).unwrap();
        let set = if r["root"] == "machine_context" {
            &mut machine
        } else {
            &mut precise
        };
        for a in r["references"].as_array().unwrap() {
            set.insert(a.as_str().unwrap().to_string());
        }
    }
    let found = machine.difference(&precise).find_map(|a| {
        let v = run("path", a, &["--format", "json"]).json();
        (v["paths"][0]["root"] == "machine_context").then(|| a.clone())
    });
    let address = found.expect("no object that only a machine_context root reaches");
    let text = run("path", &address, &[]).ok().stdout_text();
    let first = text.lines().next().unwrap();
    assert_eq!(
        first,
        "ROOT machine_context (conservative: found on a C stack, may be a stale value)"
    );
    assert_eq!(text.matches("C stack").count(), 1, "{text}");
}
