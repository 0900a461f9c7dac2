//! `heapscope require-mem` on real Ruby programs: tests/ruby/require_mem/main.rb
//! requires files of known cost (30, 10, 15, 2 and 0 MiB kept alive), and
//! a comparison with `derailed bundle:mem` on `require "rails/all"`.

mod common;

use std::path::Path;
use std::process::Command;

use serde_json::Value;

const MIB: f64 = 1024.0 * 1024.0;

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// `heapscope require-mem ARGS` with REQMEM_MODE set, in `dir`.
fn require_mem(args: &[&str], mode: &str, dir: &Path) -> Out {
    common::require_ruby();
    let out = Command::new(env!("CARGO_BIN_EXE_heapscope"))
        .arg("require-mem")
        .args(args)
        .env("REQMEM_MODE", mode)
        .current_dir(dir)
        .output()
        .expect("run heapscope");
    Out {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn main_rb() -> String {
    common::ruby_script("require_mem/main.rb")
        .display()
        .to_string()
}

fn json_run(mode: &str, extra: &[&str]) -> (Out, Value) {
    let main = main_rb();
    let mut args = vec!["--format", "json"];
    args.extend(extra);
    args.extend(["--", "ruby", main.as_str()]);
    let out = require_mem(&args, mode, &common::repo_root());
    let v: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\nstderr:\n{}", out.stdout, out.stderr));
    (out, v)
}

fn process(v: &Value) -> &Value {
    let ps = v["processes"].as_array().expect("processes");
    assert_eq!(ps.len(), 1, "one Ruby process: {v:#}");
    &ps[0]
}

/// The node whose feature ends with `suffix`, anywhere in `nodes`.
fn find<'a>(nodes: &'a Value, suffix: &str) -> Option<&'a Value> {
    for n in nodes.as_array()? {
        if n["feature"].as_str()?.ends_with(suffix) {
            return Some(n);
        }
        if let Some(f) = find(&n["children"], suffix) {
            return Some(f);
        }
    }
    None
}

fn node<'a>(nodes: &'a Value, suffix: &str) -> &'a Value {
    find(nodes, suffix).unwrap_or_else(|| panic!("no node {suffix} in {nodes:#}"))
}

fn mib(n: &Value, key: &str) -> f64 {
    n[key].as_i64().unwrap_or_else(|| panic!("{key} in {n}")) as f64 / MIB
}

fn names(nodes: &Value) -> Vec<String> {
    nodes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let f = n["feature"].as_str().unwrap();
            f.rsplit('/').next().unwrap().to_string()
        })
        .collect()
}

fn assert_between(what: &str, v: f64, lo: f64, hi: f64) {
    assert!(
        (lo..=hi).contains(&v),
        "{what}: {v:.2} MiB, expected {lo}..{hi}"
    );
}

#[test]
fn ranks_nests_and_totals_known_requires() {
    let (out, v) = json_run("", &[]);
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    let p = process(&v);
    let roots = &p["requires"];
    // Largest first: heavy_a (30 + 10 + 2) > heavy_c (15) > light (0).
    assert_eq!(names(roots), ["heavy_a", "heavy_c", "light"]);
    let a = node(roots, "heavy_a");
    assert_between("heavy_a total", mib(a, "total"), 40.0, 48.0);
    assert_between("heavy_a own", mib(a, "own"), 29.0, 34.0);
    assert_eq!(names(&a["children"]), ["nested_b", "shared", "fill"]);
    let b = node(&a["children"], "nested_b");
    assert_between("nested_b", mib(b, "total"), 9.5, 12.0);
    let shared = node(&a["children"], "shared");
    assert_between("shared", mib(shared, "total"), 1.8, 3.0);
    let c = node(roots, "heavy_c");
    assert_between("heavy_c", mib(c, "total"), 14.5, 18.0);
    assert!(mib(a, "total") > mib(c, "total") && mib(c, "total") > mib(b, "total"));
    // shared.rb is loaded once, under heavy_a; heavy_c and main.rb required it again.
    assert!(find(&c["children"], "shared").is_none(), "{c:#}");
    let also: Vec<&str> = shared["also_required_by"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(also.len(), 2, "{also:?}");
    assert_eq!(also[0], "heavy_c");
    assert!(
        also[1].ends_with("tests/ruby/require_mem/main.rb"),
        "{also:?}"
    );
    assert_eq!(p["already_loaded_calls"], 2);
    // The cut-off (0.3 MiB) flags light.rb and fill.rb but JSON keeps them.
    assert_eq!(node(roots, "light")["below_cutoff"], true);
    assert_eq!(node(roots, "fill")["below_cutoff"], true);
    assert_eq!(a["below_cutoff"], false);
    assert_eq!(p["below_cutoff"], 2);
    // The whole run: TOP covers the requires.
    let top = mib(p, "total");
    assert!(top >= mib(p, "in_requires") - 0.5, "{p:#}");
    assert_between("in requires", mib(p, "in_requires"), 55.0, 66.0);
}

#[test]
fn json_shape_and_program_stdout_moved_to_stderr() {
    let (out, v) = json_run("", &[]);
    assert!(out.stderr.contains("main: start") && out.stderr.contains("main: done"));
    for k in [
        "command",
        "exit_code",
        "exit_signal",
        "success",
        "cutoff_bytes",
        "units",
        "processes",
        "orphan_events",
    ] {
        assert!(v.get(k).is_some(), "no {k}: {v:#}");
    }
    assert_eq!(v["cutoff_bytes"], 314_573);
    assert_eq!(v["success"], true);
    let p = process(&v);
    for k in [
        "pid",
        "run",
        "script",
        "ruby",
        "rss_start",
        "rss_end",
        "exited",
        "total",
        "in_requires",
        "calls",
        "nodes",
        "requires",
    ] {
        assert!(p.get(k).is_some(), "no {k}: {p:#}");
    }
    assert_eq!(p["exited"], true);
    assert_eq!(p["calls"], 8);
    let a = node(&p["requires"], "heavy_a");
    assert_eq!(a["via"], "require_relative");
    assert_eq!(a["outcome"], "loaded");
    assert!(a["path"]
        .as_str()
        .unwrap()
        .ends_with("tests/ruby/require_mem/heavy_a.rb"));
    assert!(a["rss_after"].as_u64().unwrap() > a["rss_before"].as_u64().unwrap());
    for k in [
        "name",
        "own",
        "gc_runs",
        "seconds",
        "error",
        "also_required_by",
        "children",
    ] {
        assert!(a.get(k).is_some(), "no {k}: {a:#}");
    }
    assert_eq!(node(&p["requires"], "heavy_c")["via"], "require");
}

#[test]
fn text_tree_hides_nodes_under_the_cutoff() {
    let main = main_rb();
    let out = require_mem(&["--", "ruby", &main], "", &common::repo_root());
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let t = &out.stdout;
    assert!(t.starts_with("main: start\nmain: done\n"), "{t}");
    let line = |name: &str| {
        t.lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("no {name} line in\n{t}"))
            .to_string()
    };
    assert!(line("TOP: ").starts_with("TOP: "));
    assert!(line("./tests/ruby/require_mem/heavy_a: ").starts_with("  ./"));
    assert!(line("./tests/ruby/require_mem/nested_b: ").starts_with("    ./"));
    assert!(line("heavy_c: ").starts_with("  heavy_c"));
    let shared = line("shared: ");
    assert!(shared.starts_with("    shared"), "{shared}");
    assert!(shared.contains("(also required by: heavy_c, /"), "{shared}");
    assert!(
        shared.ends_with("tests/ruby/require_mem/main.rb)"),
        "{shared}"
    );
    assert!(!t.contains("light"), "{t}");
    assert!(t.contains("(2 of 6 requires under 0.30 MiB hidden;"), "{t}");
    // Order: heavy_a's subtree comes before heavy_c.
    assert!(t.find("heavy_a").unwrap() < t.find("heavy_c").unwrap());

    let out = require_mem(
        &["--cutoff", "0", "--", "ruby", &main],
        "",
        &common::repo_root(),
    );
    assert!(
        out.stdout
            .contains("  ./tests/ruby/require_mem/light: 0.00 MiB"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("hidden"));
    let out = require_mem(
        &["--cutoff", "12", "--", "ruby", &main],
        "",
        &common::repo_root(),
    );
    assert!(
        !out.stdout.contains("nested_b") && out.stdout.contains("heavy_c"),
        "{}",
        out.stdout
    );
}

#[test]
fn exit_status_passes_through_with_the_tree() {
    let main = main_rb();
    let out = require_mem(&["--", "ruby", &main], "exit3", &common::repo_root());
    assert_eq!(out.code, Some(3));
    assert!(out.stdout.contains("(exit status 3)") && out.stdout.contains("heavy_c: "));
    assert!(
        out.stderr.contains("the program failed (exit status 3)"),
        "{}",
        out.stderr
    );
}

#[test]
fn partial_tree_when_the_program_raises_halfway() {
    let (out, v) = json_run("raise", &[]);
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr
            .contains("raising.rb fails halfway (RuntimeError)"),
        "{}",
        out.stderr
    );
    assert_eq!(v["exit_code"], 1);
    assert_eq!(v["success"], false);
    let p = process(&v);
    assert_eq!(names(&p["requires"]), ["heavy_a", "raising"]);
    let r = node(&p["requires"], "raising");
    assert_eq!(r["outcome"], "failed");
    assert_eq!(r["error"], "RuntimeError: raising.rb fails halfway");
    assert_between("raising", mib(r, "total"), 4.5, 7.0);
    assert!(find(&p["requires"], "heavy_c").is_none());
    // at_exit still ran.
    assert_eq!(p["exited"], true);

    let main = main_rb();
    let out = require_mem(&["--", "ruby", &main], "raise", &common::repo_root());
    assert!(out.stdout.contains("raising: "), "{}", out.stdout);
    assert!(out
        .stdout
        .contains("raised RuntimeError: raising.rb fails halfway"));
}

#[test]
fn unfinished_require_when_the_program_exits_inside_it() {
    let (out, v) = json_run("exit!", &[]);
    assert_eq!(out.code, Some(4));
    let p = process(&v);
    assert_eq!(p["exited"], false);
    let d = node(&p["requires"], "dying");
    assert_eq!(d["outcome"], "unfinished");
    // Shown whatever the cut-off: it is where the program ended.
    assert_eq!(d["below_cutoff"], false);
    assert!(node(&p["requires"], "heavy_a")["total"].as_i64().unwrap() > 0);
}

#[test]
fn clear_errors() {
    let dir = common::repo_root();
    let out = require_mem(&["--", "no-such-command-heapscope"], "", &dir);
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr
            .contains("command not found: no-such-command-heapscope"),
        "{}",
        out.stderr
    );
    let out = require_mem(&["--", "true"], "", &dir);
    assert_eq!(out.code, Some(2));
    assert!(out.stderr.contains("no require recorded"), "{}", out.stderr);
    assert!(
        out.stderr.contains("is it a Ruby program"),
        "{}",
        out.stderr
    );
    let out = require_mem(&["--", "ruby", "-e", "puts 1"], "", &dir);
    assert_eq!(out.code, Some(2));
    assert!(out.stderr.contains("required nothing"), "{}", out.stderr);
    assert_eq!(out.stdout, "1\n");
    let out = require_mem(&["--cutoff", "-1", "--", "ruby", "-e", "1"], "", &dir);
    assert_eq!(out.code, Some(2));
}

/// The top of derailed's tree: (name, MiB) of `parent`'s children, and its own MiB.
fn derailed_children(text: &str, parent: &str) -> (f64, Vec<(String, f64)>) {
    let parsed: Vec<(usize, String, f64)> = text
        .lines()
        .filter_map(|l| {
            let depth = (l.len() - l.trim_start().len()) / 2;
            let (name, rest) = l.trim_start().split_once(": ")?;
            let mib: f64 = rest.split_once(" MiB")?.0.parse().ok()?;
            Some((depth, name.to_string(), mib))
        })
        .collect();
    let i = parsed
        .iter()
        .position(|(_, n, _)| n == parent)
        .unwrap_or_else(|| panic!("no {parent} in derailed's output:\n{text}"));
    let (depth, _, total) = parsed[i].clone();
    let kids = parsed[i + 1..]
        .iter()
        .take_while(|(d, _, _)| *d > depth)
        .filter(|(d, _, _)| *d == depth + 1)
        .map(|(_, n, m)| (n.clone(), *m))
        .collect();
    (total, kids)
}

#[test]
fn agrees_with_derailed_bundle_mem_on_rails() {
    let have = |cmd: &str, args: &[&str]| {
        Command::new(cmd)
            .args(args)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    common::require_ruby();
    if !have("ruby", &["-e", "require 'rails/all'"]) || !have("derailed", &["help"]) {
        eprintln!("skipped: needs rails and derailed (apt-get install ruby-rails ruby-derailed-benchmarks)");
        return;
    }
    let dir = common::scratch_dir("require-mem-derailed");
    std::fs::write(
        dir.path().join("Gemfile"),
        "source \"https://rubygems.org\"\ngem \"rails\"\ngem \"derailed_benchmarks\", require: false\n",
    )
    .unwrap();
    let ok = Command::new("bundle")
        .args(["install", "--local", "--quiet"])
        .current_dir(dir.path())
        .env("BUNDLE_GEMFILE", dir.path().join("Gemfile"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("skipped: `bundle install --local` cannot resolve rails from the installed gems");
        return;
    }
    let derailed = Command::new("derailed")
        .arg("bundle:mem")
        .current_dir(dir.path())
        .env("BUNDLE_GEMFILE", dir.path().join("Gemfile"))
        .env("CUT_OFF", "0")
        .output()
        .expect("run derailed");
    assert!(
        derailed.status.success(),
        "{}",
        String::from_utf8_lossy(&derailed.stderr)
    );
    let (d_total, d_kids) =
        derailed_children(&String::from_utf8_lossy(&derailed.stdout), "rails/all");

    let out = Command::new(env!("CARGO_BIN_EXE_heapscope"))
        .args(["require-mem", "--cutoff", "0", "--format", "json", "--"])
        .args(["ruby", "-e", "require 'bundler/setup'; require 'rails/all'"])
        .current_dir(dir.path())
        .env("BUNDLE_GEMFILE", dir.path().join("Gemfile"))
        .output()
        .expect("run heapscope");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rails = node(&process(&v)["requires"], "rails/all");
    let h_total = mib(rails, "total");
    let h_kids: Vec<(String, f64)> = rails["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["feature"].as_str().unwrap().to_string(), mib(c, "total")))
        .collect();
    eprintln!("rails/all: derailed {d_total:.2} MiB, heapscope {h_total:.2} MiB");
    for i in 0..5 {
        eprintln!("  {:?}  {:?}", d_kids.get(i), h_kids.get(i));
    }
    assert!(
        (h_total - d_total).abs() <= 0.25 * d_total,
        "rails/all: heapscope {h_total:.2} MiB, derailed {d_total:.2} MiB"
    );
    // The two heaviest agree in order; below them GC timing can swap
    // neighbours of similar size (active_storage/engine and action_text/engine
    // are both about 3.5 MiB), so each tool's top 3 must be in the other's top 4.
    let top = |k: &[(String, f64)], n: usize| {
        k.iter().take(n).map(|(s, _)| s.clone()).collect::<Vec<_>>()
    };
    assert_eq!(top(&d_kids, 2), top(&h_kids, 2));
    for n in top(&d_kids, 3) {
        assert!(
            top(&h_kids, 4).contains(&n),
            "{n} in derailed's top 3, not heapscope's top 4"
        );
    }
    for n in top(&h_kids, 3) {
        assert!(
            top(&d_kids, 4).contains(&n),
            "{n} in heapscope's top 3, not derailed's top 4"
        );
    }
}
