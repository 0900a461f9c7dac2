//! The agent's own objects in dumps of an app it runs in: a small app under
//! `heapscope run --trace-allocations` dumps itself twice through the API,
//! and every analysis leaves the agent's objects (its threads, the
//! Heapscope::Agent, what the agent's files allocated) out by default, says
//! how much, and counts them with --include-agent.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::{heapscope, rows, thousands};
use serde_json::Value;

/// A small app: a Keeper holding 2,000 strings, a dump, 500 more strings, a
/// second dump. Returns the two dumps in order.
fn dumps() -> &'static (tempfile::TempDir, Vec<PathBuf>) {
    static DUMPS: OnceLock<(tempfile::TempDir, Vec<PathBuf>)> = OnceLock::new();
    DUMPS.get_or_init(|| {
        common::require_ruby();
        // Kept in a static, so never dropped: under target/tmp, where the next
        // run removes it, rather than left in /tmp.
        let dir = common::scratch_dir("heapscope-agent-self-");
        let app = dir.path().join("app.rb");
        std::fs::write(
            &app,
            r#"
class Keeper
  def initialize
    @items = Array.new(2000) { |i| "item-#{i}" * 3 }
  end
end
$keeper = Keeper.new
Heapscope.dump(timeout: 60)
$more = Array.new(500) { |i| "more-#{i}" * 3 }
sleep 0.3
Heapscope.dump(timeout: 60)
print :done
"#,
        )
        .unwrap();
        let dump_dir = dir.path().join("dumps");
        let app = app.to_str().unwrap();
        let out = run_agent(dir.path(), &["--trace-allocations"], &["ruby", app]);
        assert_eq!(out, "done");
        let mut names: Vec<String> = common::file_names(&dump_dir)
            .into_iter()
            .filter(|n| n.ends_with(".dump"))
            .collect();
        // heap-<pid>-<unixtime>-<seq>.dump: order by sequence number.
        names.sort_by_key(|n| {
            n.trim_end_matches(".dump")
                .rsplit('-')
                .next()
                .and_then(|s| s.parse::<u64>().ok())
        });
        assert_eq!(names.len(), 2, "{names:?}");
        let paths = names.iter().map(|n| dump_dir.join(n)).collect();
        (dir, paths)
    })
}

/// Runs `command` in `dir` under `heapscope run` (no profile, no
/// statistics, dumps in `dir/dumps`) plus `flags`; it must exit 0. Its
/// standard output.
fn run_agent(dir: &Path, flags: &[&str], command: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_heapscope"))
        .current_dir(dir)
        .args(["run", "--no-profile", "--no-stats"])
        .args(flags)
        .arg("--dump-dir")
        .arg(dir.join("dumps"))
        .arg("--runtime-dir")
        .arg(dir.join("run"))
        .arg("--")
        .args(command)
        .env("HEAPSCOPE_RUBY_LIB", common::agent::ruby_lib())
        .env_remove("RUBYOPT")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn first() -> &'static Path {
    &dumps().1[0]
}

fn second() -> &'static Path {
    &dumps().1[1]
}

fn json(args: &[&str], dump: &Path, include: bool) -> Value {
    let mut a: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    a.push(dump.display().to_string());
    a.extend(["--format".into(), "json".into()]);
    if include {
        a.push("--include-agent".into());
    }
    heapscope(&a).json()
}

fn classes(v: &Value) -> Vec<String> {
    rows(v)
        .iter()
        .filter_map(|r| r["class"].as_str().map(str::to_string))
        .collect()
}

/// Bytes of the agent's threads in `dump`: their VM stacks count in their
/// memsize on Ruby 3.1 (about 1 MiB each), not on 3.3 and later.
fn agent_thread_bytes(dump: &Path) -> u64 {
    let with = json(&["summary", "--by", "class", "--top", "0"], dump, true);
    let bytes = rows(&with)
        .iter()
        .filter(|r| r["class"] == "Heapscope::AgentThread")
        .map(|r| r["memsize"].as_u64().unwrap())
        .sum::<u64>();
    assert!(bytes > 0, "no Heapscope::AgentThread in {dump:?}");
    bytes
}

fn is_agent_file(location: &str) -> bool {
    let file = location.rsplit_once(':').map_or(location, |(f, _)| f);
    file.ends_with("/heapscope.rb") || file.contains("/heapscope/")
}

#[test]
fn summary_leaves_the_agent_out_and_says_how_much() {
    let dump = second();
    let out = json(&["summary", "--by", "class", "--top", "0"], dump, false);
    let with = json(&["summary", "--by", "class", "--top", "0"], dump, true);
    let agent = &out["totals"]["agent"];
    let (n, bytes) = (
        agent["objects"].as_u64().unwrap(),
        agent["bytes"].as_u64().unwrap(),
    );
    assert_eq!(agent["included"], false);
    assert_eq!(with["totals"]["agent"]["included"], true);
    assert!(n > 10 && bytes > agent_thread_bytes(dump), "{agent}");
    assert_eq!(with["totals"]["agent"]["objects"], n);

    let plain = classes(&out);
    for c in ["Heapscope::AgentThread", "Heapscope::Agent"] {
        assert!(!plain.iter().any(|x| x == c), "{c} in {plain:?}");
        assert!(
            classes(&with).iter().any(|x| x == c),
            "{c} missing with --include-agent"
        );
    }
    assert!(plain.iter().any(|x| x == "Keeper"));
    let objects = |v: &Value| v["totals"]["objects"].as_u64().unwrap();
    let memsize = |v: &Value| v["totals"]["memsize"].as_u64().unwrap();
    assert_eq!(objects(&with) - objects(&out), n);
    assert_eq!(memsize(&with) - memsize(&out), bytes);

    // The one line in the table.
    let text = heapscope(&["summary", dump.to_str().unwrap(), "--bytes"]);
    let expected = format!(
        "left out {} objects ({}) of the heapscope agent; --include-agent counts them",
        thousands(n),
        thousands(bytes)
    );
    assert!(
        text.ok().stdout_text().contains(&expected),
        "{expected:?} in\n{}",
        text.stdout_text()
    );
    let text = heapscope(&["summary", dump.to_str().unwrap(), "--include-agent"]);
    assert!(text
        .ok()
        .stdout_text()
        .contains("of the heapscope agent (--include-agent)"));
}

#[test]
fn by_gem_does_not_count_the_agent_as_the_app() {
    let dump = second();
    let out = json(&["summary", "--by", "gem", "--top", "0"], dump, false);
    let with = json(&["summary", "--by", "gem", "--top", "0"], dump, true);
    let bytes = out["totals"]["agent"]["bytes"].as_u64().unwrap();
    let app = |v: &Value| {
        rows(v)
            .iter()
            .filter(|r| r["gem"] == "app")
            .map(|r| r["memsize"].as_u64().unwrap())
            .sum::<u64>()
    };
    // The agent's objects (its thread first) were allocated in its files,
    // which are not a gem here: they would count as the app.
    assert!(
        app(&with) >= app(&out) + agent_thread_bytes(dump),
        "{} vs {}",
        app(&with),
        app(&out)
    );
    let total = |v: &Value| {
        rows(v)
            .iter()
            .map(|r| r["memsize"].as_u64().unwrap())
            .sum::<u64>()
    };
    assert_eq!(total(&with), total(&out) + bytes);
}

#[test]
fn retained_leaves_the_agent_and_what_only_it_holds_out() {
    let dump = second();
    let out = json(&["retained", "--top", "0"], dump, false);
    let with = json(&["retained", "--top", "0"], dump, true);
    let summary = json(&["summary"], dump, false);
    let left = out["agent"]["objects"].as_u64().unwrap();
    // The graph also leaves out what only the agent's objects keep alive.
    assert!(
        left > summary["totals"]["agent"]["objects"].as_u64().unwrap(),
        "{}",
        out["agent"]
    );
    assert!(out["agent"]["bytes"].as_u64().unwrap() > agent_thread_bytes(dump));
    for r in rows(&out) {
        if r["type"] == "ICLASS" {
            // The agent's prepended hooks (40 bytes each) stay: they carry
            // the methods of the module they are prepended to.
            continue;
        }
        let c = r["class"].as_str().unwrap_or("");
        assert!(!c.starts_with("Heapscope::") && c != "Heapscope", "{r}");
        if let Some(l) = r["location"].as_str() {
            assert!(!is_agent_file(l), "{r}");
        }
    }
    assert!(classes(&with).iter().any(|c| c == "Heapscope::AgentThread"));
    // Nothing the agent held is reported as unreachable instead.
    assert_eq!(
        out["unreachable"]["objects"],
        with["unreachable"]["objects"]
    );
    let reachable = |v: &Value| v["reachable"]["objects"].as_u64().unwrap();
    assert!(reachable(&with) > reachable(&out));
    let text = heapscope(&["retained", dump.to_str().unwrap()]);
    assert!(text
        .ok()
        .stdout_text()
        .contains(&format!("left out {} objects (", thousands(left))));

    // inspect says so for the agent's thread.
    let thread = rows(&with)
        .iter()
        .find(|r| r["class"] == "Heapscope::AgentThread")
        .unwrap()["address"]
        .as_str()
        .unwrap()
        .to_string();
    let inspected = heapscope(&[
        "inspect",
        dump.to_str().unwrap(),
        &thread,
        "--format",
        "json",
    ])
    .json();
    assert_eq!(inspected["agent"], true, "{inspected}");
    assert_eq!(inspected["retained_bytes"], 0);
}

#[test]
fn diff_rows_leave_out_what_the_agent_allocated() {
    let (a, b) = (first().to_str().unwrap(), second().to_str().unwrap());
    let run = |include: bool| {
        let mut args = vec![
            "diff", a, b, "--by", "location", "--top", "0", "--format", "json",
        ];
        if include {
            args.push("--include-agent");
        }
        heapscope(&args).json()
    };
    let (out, with) = (run(false), run(true));
    let located = |v: &Value| -> u64 {
        rows(v)
            .iter()
            .filter(|r| r["location"].as_str().is_some_and(is_agent_file))
            .map(|r| r["count"].as_u64().unwrap())
            .sum()
    };
    assert_eq!(located(&out), 0, "{}", out["rows"]);
    let new_agent = out["totals"]["new_agent"]["objects"].as_u64().unwrap();
    assert!(new_agent > 0, "{}", out["totals"]);
    assert!(located(&with) > 0);
    let new = |v: &Value| v["totals"]["new_objects"].as_u64().unwrap();
    assert_eq!(new(&with) - new(&out), new_agent);
    // The app's 500 strings are there either way.
    assert!(rows(&out).iter().any(|r| r["location"]
        .as_str()
        .is_some_and(|l| l.ends_with("app.rb:9"))));
    let text = heapscope(&["diff", a, b]);
    assert!(text
        .ok()
        .stdout_text()
        .contains(&format!("left out {} ", thousands(new_agent))));
}

#[test]
fn graph_exports_and_leaks_leave_the_agent_out() {
    let dump = second().to_str().unwrap();
    let folded = heapscope(&["flamegraph", dump, "--folded"]);
    let text = folded.ok().stdout_text();
    assert!(!text.contains("Heapscope::Agent"), "{text}");
    assert!(
        folded.stderr.contains("of the heapscope agent"),
        "{}",
        folded.stderr
    );
    let with = heapscope(&["flamegraph", dump, "--folded", "--include-agent"]);
    assert!(with.ok().stdout_text().contains("Heapscope::AgentThread"));

    let suspects = heapscope(&["suspects", dump, "--format", "json"]).json();
    assert!(suspects["agent"]["objects"].as_u64().unwrap() > 0);

    let leaks = heapscope(&["leaks", first().to_str().unwrap(), dump, "--format", "json"]).json();
    let agent = &leaks["processes"][0]["agent_in_last_dump"];
    assert!(agent["objects"].as_u64().unwrap() > 0, "{leaks}");
    assert_eq!(agent["included"], false);

    let dir = tempfile::tempdir().unwrap();
    let prof = dir.path().join("p.pb.gz");
    let p = heapscope(&["pprof", dump, "-o", prof.to_str().unwrap()]);
    assert!(
        p.ok().stderr.contains("of the heapscope agent"),
        "{}",
        p.stderr
    );
}

#[test]
fn timer_dumps_without_tracing_leave_the_agent_threads_out() {
    common::require_ruby();
    let dir = tempfile::tempdir().unwrap();
    let dump_dir = dir.path().join("dumps");
    // Dumps by timer; no allocation tracing, so only classes tell the
    // agent's objects apart.
    run_agent(
        dir.path(),
        &["--dump-every-seconds", "0.5"],
        &[
            "ruby",
            "-e",
            "$keep = Array.new(1000) { |i| i.to_s * 4 }; sleep 0.1 until Dir.glob('dumps/*.dump').size >= 2",
        ],
    );
    let dump = common::file_names(&dump_dir)
        .into_iter()
        .find(|n| n.ends_with(".dump"))
        .map(|n| dump_dir.join(n))
        .unwrap();
    let out = json(&["summary", "--by", "class", "--top", "0"], &dump, false);
    let with = json(&["summary", "--by", "class", "--top", "0"], &dump, true);
    assert!(!classes(&out)
        .iter()
        .any(|c| c.starts_with("Heapscope::Agent")));
    assert!(classes(&with).iter().any(|c| c == "Heapscope::AgentThread"));
    let agent = &out["totals"]["agent"];
    assert!(
        agent["bytes"].as_u64().unwrap() > agent_thread_bytes(&dump),
        "{agent}"
    );
    let retained = json(&["retained"], &dump, false);
    assert!(retained["agent"]["objects"].as_u64().unwrap() > agent["objects"].as_u64().unwrap());
    for r in rows(&retained) {
        assert!(
            r["type"] == "ICLASS" || !r["class"].as_str().unwrap_or("").starts_with("Heapscope"),
            "{r}"
        );
    }
}
