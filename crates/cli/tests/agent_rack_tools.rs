//! The Rack profiling pages (`?hs=...`) in real Ruby processes: a small Rack
//! app behind `Heapscope::Rack::Profiler` (and the middleware `heapscope
//! run` installs) called through Rack::MockRequest, and Puma on loopback
//! with 4 threads for concurrent requests. A refused request is compared
//! with the same request sent to the bare app: status, headers and body
//! must be identical. Nothing here depends on the Ruby version.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::agent::{autostart_ruby, base_env};
use common::process::Proc;

/// The app: holds 200 copies of a `<script>` string and 150 of one with
/// terminal escapes, allocates 200,000
/// strings on `/churn`, lets `X-Admin: yes` requests use the tools through
/// Heapscope.authorize_request, and echoes the query string. Each case of
/// $CASES (JSON: url and extra Rack env) goes to the app through the
/// profiler and to the bare app; one JSON line per case in $OUT (a file:
/// pages are larger than a pipe holds while the test waits for the exit).
const HARNESS: &str = r#"
require "rack"
require "json"
$held = Array.new(200) { "<script>alert('held by the app')</script>" }
$held_ctl = Array.new(150) { "clear \e[2J\a held" }
inner = lambda do |env|
  Heapscope.authorize_request(env) if env["HTTP_X_ADMIN"] == "yes"
  n = env["PATH_INFO"] == "/churn" ? Array.new(200_000) { |i| "churn #{i}" }.size : 0
  [200, { "content-type" => "text/plain", "x-app" => "yes" }, ["app body #{env['QUERY_STRING']} #{n}"]]
end
wrapped = Rack::Builder.app do
  use Heapscope::Rack::Profiler
  run inner
end
show = lambda do |(status, headers, body)|
  text = +""
  body.each { |part| text << part }
  body.close if body.respond_to?(:close)
  { status: status, headers: headers.to_h, body: text.force_encoding("UTF-8").scrub }
end
out = File.open(ENV.fetch("OUT"), "w")
JSON.parse(ENV.fetch("CASES")).each do |c|
  env = Rack::MockRequest.env_for(c["url"], c["env"] || {})
  got = show.call(wrapped.call(env.dup))
  bare = show.call(inner.call(Rack::MockRequest.env_for(c["url"], c["env"] || {})))
  link = got[:headers]["x-heapscope"] && got[:body][/\?hs=download-dump&(?:amp;)?hs_dump=[\w.-]+/]
  if link
    link = link.sub("&amp;", "&")
    dl = wrapped.call(Rack::MockRequest.env_for("/" + link, c["env"] || {}))
    got[:download] = { status: dl[0], headers: dl[1].to_h, bytes: dl[2].each.sum(&:bytesize) }
  end
  out.puts JSON.generate(got.merge(url: c["url"], bare: bare))
end
out.close
"#;

/// Runs the harness with these cases in a process with `env` (on top of
/// the tests' base environment); one response per case.
fn run_cases(env: &[(&str, &str)], cases: &[Value]) -> Vec<Value> {
    run_cases_in(true, env, cases)
}

/// [`run_cases`], with the agent started by `-rheapscope/autostart` or
/// only loaded (`-rheapscope`: the app uses the middleware, nothing starts
/// the agent).
fn run_cases_in(autostart: bool, env: &[(&str, &str)], cases: &[Value]) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let mut full = base_env(dir.path());
    for (k, v) in env {
        full.push((k, v.to_string()));
    }
    full.push(("CASES", Value::Array(cases.to_vec()).to_string()));
    let out_path = dir.path().join("responses.jsonl");
    full.push(("OUT", out_path.display().to_string()));
    let mut cmd = if autostart {
        autostart_ruby(dir.path(), HARNESS, &full)
    } else {
        let mut c = common::agent::ruby();
        c.current_dir(dir.path())
            .args(["-rheapscope", "-e", HARNESS])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &full {
            c.env(k, v);
        }
        c
    };
    cmd.env_remove("RACK_ENV").env_remove("RAILS_ENV");
    for (k, v) in env {
        if !k.starts_with("HEAPSCOPE_") {
            cmd.env(k, v);
        }
    }
    let out = Proc::spawn(cmd).wait(Duration::from_secs(120));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let rows: Vec<Value> = std::fs::read_to_string(&out_path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), cases.len(), "{stderr}");
    rows
}

fn case(url: &str, env: Value) -> Value {
    json!({ "url": url, "env": env })
}

fn local() -> Value {
    json!({ "REMOTE_ADDR": "127.0.0.1" })
}

fn remote() -> Value {
    json!({ "REMOTE_ADDR": "203.0.113.7" })
}

/// A refused request: exactly what the bare app answers.
fn assert_passed_through(r: &Value) {
    assert_eq!(r["status"], r["bare"]["status"], "{r}");
    assert_eq!(r["headers"], r["bare"]["headers"], "{r}");
    assert_eq!(r["body"], r["bare"]["body"], "{r}");
    assert!(r["body"].as_str().unwrap().starts_with("app body "), "{r}");
}

/// A tool page: no-store, and the header naming why it was allowed.
fn assert_page(r: &Value, status: u64, why: &str) {
    assert_eq!(r["status"], status, "{r}");
    assert_eq!(r["headers"]["cache-control"], "no-store", "{r}");
    assert_eq!(
        r["headers"]["x-heapscope"],
        format!("authorized by {why}"),
        "{r}"
    );
}

const TOKEN: &str = "s3cret-token-for-tests";

#[test]
fn tools_are_off_by_default_and_any_refused_request_passes_through_untouched() {
    let every_page = |env: Value| -> Vec<Value> {
        [
            "/?hs=help",
            "/?a=1&hs=profile-gc",
            "/?hs=analyze-memory",
            "/?hs=profile-memory",
            "/?hs=help&hs_top=abc",
            "/?hs=nope",
        ]
        .iter()
        .map(|u| case(u, env.clone()))
        .collect()
    };
    // Off by default, even from loopback in development with the token.
    let mut with_token = local();
    with_token["HTTP_X_HEAPSCOPE_TOKEN"] = TOKEN.into();
    for r in run_cases(
        &[("RACK_ENV", "development"), ("HEAPSCOPE_RACK_TOKEN", TOKEN)],
        &every_page(with_token),
    ) {
        assert_passed_through(&r);
    }
    // On, but refused: a remote address in development; loopback in
    // production; loopback through a proxy; a wrong or truncated token; a
    // token when none is set is checked in its own process below.
    let mut forwarded = local();
    forwarded["HTTP_X_FORWARDED_FOR"] = "203.0.113.7".into();
    let mut wrong = remote();
    wrong["HTTP_X_HEAPSCOPE_TOKEN"] = "s3cret-token-for-tesTS".into();
    let mut short = remote();
    short["HTTP_X_HEAPSCOPE_TOKEN"] = "s3cret".into();
    let mut admin_header_only = remote();
    admin_header_only["HTTP_X_ADMIN"] = "no".into();
    let mut cases = every_page(remote());
    cases.extend(every_page(forwarded));
    cases.extend(every_page(wrong));
    cases.extend(every_page(short));
    cases.extend(every_page(admin_header_only));
    for r in run_cases(
        &[
            ("RACK_ENV", "development"),
            ("HEAPSCOPE_RACK_TOOLS", "1"),
            ("HEAPSCOPE_RACK_TOKEN", TOKEN),
        ],
        &cases,
    ) {
        assert_passed_through(&r);
    }
    let mut any_token = local();
    any_token["HTTP_X_HEAPSCOPE_TOKEN"] = "".into();
    let mut cases = every_page(local());
    cases.extend(every_page(any_token));
    for r in run_cases(
        &[("RACK_ENV", "production"), ("HEAPSCOPE_RACK_TOOLS", "1")],
        &cases,
    ) {
        assert_passed_through(&r);
    }
}

#[test]
fn each_authorization_path_opens_the_pages() {
    // Loopback while RACK_ENV is development, or RAILS_ENV test (which
    // wins over RACK_ENV), IPv4 and IPv6.
    let rows = run_cases(
        &[("RACK_ENV", "development"), ("HEAPSCOPE_RACK_TOOLS", "1")],
        &[
            case("/?hs=help", local()),
            case("/?hs=help", json!({ "REMOTE_ADDR": "::1" })),
        ],
    );
    for r in &rows {
        assert_page(r, 200, "loopback in development");
    }
    let rows = run_cases(
        &[
            ("RACK_ENV", "production"),
            ("RAILS_ENV", "test"),
            ("HEAPSCOPE_RACK_TOOLS", "1"),
        ],
        &[case("/?hs=help", local())],
    );
    assert_page(&rows[0], 200, "loopback in test");
    // In production from anywhere: the token, or the app's own decision.
    let mut token = remote();
    token["HTTP_X_HEAPSCOPE_TOKEN"] = TOKEN.into();
    let mut admin = remote();
    admin["HTTP_X_ADMIN"] = "yes".into();
    let rows = run_cases(
        &[
            ("RACK_ENV", "production"),
            ("HEAPSCOPE_RACK_TOOLS", "1"),
            ("HEAPSCOPE_RACK_TOKEN", TOKEN),
        ],
        &[
            case("/?hs=help", token.clone()),
            case("/?hs=help", admin.clone()),
            case("/?hs=profile-gc&hs_format=json", admin),
            case("/?hs=help", remote()),
        ],
    );
    assert_page(&rows[0], 200, "token");
    assert_page(&rows[1], 200, "Heapscope.authorize_request");
    assert_page(&rows[2], 200, "Heapscope.authorize_request");
    assert_passed_through(&rows[3]);
}

fn dev_tools() -> [(&'static str, &'static str); 2] {
    [("RACK_ENV", "development"), ("HEAPSCOPE_RACK_TOOLS", "1")]
}

#[test]
fn help_lists_the_pages_and_bad_parameters_get_a_400_page() {
    let rows = run_cases(
        &dev_tools(),
        &[
            case("/?hs=help", local()),
            case("/?hs=help&hs_format=text", local()),
            case("/?hs=analyze-memory&hs_top=abc", local()),
            case("/?hs=profile-gc&hs_top=0", local()),
            case("/?hs=profile-memory&hs_allow_files=%28unclosed", local()),
            case("/?hs=help&hs_format=xml", local()),
            case("/?hs=no-such-page", local()),
            case("/?hs=profile-memory&hs_top=5&hs_ignore_files=gems", local()),
            case("/?hs=download-dump&hs_dump=..%2F..%2Fetc%2Fpasswd", local()),
        ],
    );
    let html = rows[0]["body"].as_str().unwrap();
    assert!(rows[0]["headers"]["content-type"]
        .as_str()
        .unwrap()
        .starts_with("text/html"));
    for page in [
        "?hs=help",
        "?hs=profile-gc",
        "?hs=analyze-memory",
        "?hs=profile-memory",
    ] {
        assert!(html.contains(page), "{html}");
    }
    assert_page(&rows[1], 200, "loopback in development");
    let text = rows[1]["body"].as_str().unwrap();
    assert!(
        text.contains("hs_top ") && text.contains("rows per table"),
        "{text}"
    );
    for (r, says) in rows[2..7].iter().zip([
        "hs_top must be a whole number from 1 to 1000 (got &quot;abc&quot;)",
        "hs_top must be a whole number from 1 to 1000 (got &quot;0&quot;)",
        "hs_allow_files is not a valid regular expression",
        "hs_format must be one of html, text, json",
        "unknown page hs=no-such-page",
    ]) {
        assert_page(r, 400, "loopback in development");
        assert!(r["body"].as_str().unwrap().contains(says), "{r}");
    }
    // profile-memory with good parameters: the request's report.
    assert_page(&rows[7], 200, "loopback in development");
    assert!(rows[7]["body"]
        .as_str()
        .unwrap()
        .contains("<h1>heapscope report</h1>"));
    assert_page(&rows[8], 400, "loopback in development");
}

#[test]
fn profile_gc_shows_the_gc_runs_of_a_churning_request() {
    let rows = run_cases(
        &dev_tools(),
        &[
            case("/churn?hs=profile-gc&hs_format=json", local()),
            case("/churn?hs=profile-gc&hs_format=text", local()),
            case("/churn?hs=profile-gc", local()),
        ],
    );
    assert_page(&rows[0], 200, "loopback in development");
    let v: Value = serde_json::from_str(rows[0]["body"].as_str().unwrap()).unwrap();
    let d = &v["data"];
    assert_eq!(d["request"], "GET /churn", "{v}");
    assert_eq!(d["app_status"], 200);
    // 200,000 strings and their array: at least that many allocations,
    // which no Ruby fits in its initial heap without a GC.
    assert!(d["objects_allocated"].as_u64().unwrap() >= 200_000, "{v}");
    assert!(d["gc_runs"].as_u64().unwrap() >= 1, "{v}");
    assert_eq!(
        d["gc_runs"].as_u64().unwrap(),
        d["minor_gc_runs"].as_u64().unwrap() + d["major_gc_runs"].as_u64().unwrap(),
        "{v}"
    );
    assert!(d["objects_freed"].as_u64().unwrap() > 0, "{v}");
    assert!(d["stats"]["heap_live_slots"]["after"].as_u64().is_some());
    // Types whose live count changed (which ones depends on when GC ran).
    for t in d["live_objects_by_type"].as_object().unwrap().values() {
        let (b, a, c) = (
            t["before"].as_i64(),
            t["after"].as_i64(),
            t["change"].as_i64(),
        );
        assert!(c != Some(0) && a.unwrap() - b.unwrap() == c.unwrap(), "{v}");
    }
    // The largest new objects by allocation site, from the request thread's
    // own allocations: the churning line first, nothing of it still alive.
    let allocated = d["largest_new_objects"]["allocated"].as_array().unwrap();
    assert!(allocated[0]["objects"].as_u64().unwrap() >= 200_000, "{v}");
    assert!(
        allocated[0]["bytes"].as_u64().unwrap() >= 200_000 * 40,
        "{v}"
    );
    let site = allocated[0]["site"].as_str().unwrap();
    assert!(
        d["largest_new_objects"]["retained"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["site"] != site || r["objects"].as_u64().unwrap() < 1_000),
        "{v}"
    );
    let text = rows[1]["body"].as_str().unwrap();
    assert!(text.contains("GC runs"), "{text}");
    assert!(
        text.contains("Largest allocations, by allocation site"),
        "{text}"
    );
    assert!(rows[2]["body"]
        .as_str()
        .unwrap()
        .contains("<h2>This request</h2>"));
}

#[test]
fn analyze_memory_finds_a_script_string_held_by_the_app_escaped() {
    let rows = run_cases(
        &dev_tools(),
        &[
            case("/?hs=analyze-memory&hs_top=50", local()),
            case("/?hs=analyze-memory&hs_format=json&hs_top=50", local()),
            case("/?hs=analyze-memory&hs_format=text&hs_top=50", local()),
        ],
    );
    let r = &rows[0];
    assert_page(r, 200, "loopback in development");
    let html = r["body"].as_str().unwrap();
    let escaped = "&lt;script&gt;alert(&#39;held by the app&#39;)&lt;/script&gt;";
    assert!(html.contains(escaped), "{html}");
    assert!(
        !html.contains("<script>"),
        "an unescaped heap string: {html}"
    );
    assert!(html.contains("<h2>By class</h2>"));
    // The dump behind it downloads, to this authorized request only.
    let dl = &r["download"];
    assert_eq!(dl["status"], 200, "{r}");
    assert_eq!(dl["headers"]["cache-control"], "no-store");
    assert_eq!(dl["headers"]["content-type"], "application/octet-stream");
    assert!(dl["bytes"].as_u64().unwrap() > 100_000, "{dl}");
    assert_eq!(
        dl["headers"]["content-length"],
        dl["bytes"].as_u64().unwrap().to_string()
    );
    // JSON: the 200 copies, counted as one duplicated value.
    let v: Value = serde_json::from_str(rows[1]["body"].as_str().unwrap()).unwrap();
    let d = &v["data"];
    let dup = d["duplicated_strings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row[0] == "<script>alert('held by the app')</script>")
        .unwrap_or_else(|| panic!("{v}"));
    assert!(dup[1].as_u64().unwrap() >= 200, "{dup}");
    assert!(d["objects"].as_u64().unwrap() > 1000);
    let types: Vec<&str> = d["by_type"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[0].as_str().unwrap())
        .collect();
    assert!(types.contains(&"STRING"), "{types:?}");
    let classes: Vec<&str> = d["by_class"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[0].as_str().unwrap())
        .collect();
    assert!(classes.contains(&"String"), "{classes:?}");
    assert!(!d["largest_strings"].as_array().unwrap().is_empty());
    // Text: control characters shown as escapes (ASCII only: Ruby 3.1
    // dumps no value for a string with non-ASCII characters).
    let text = rows[2]["body"].as_str().unwrap();
    assert!(text.contains("Most duplicated strings"));
    assert!(text.contains("clear \\x1B[2J\\x07 held"), "{text}");
    assert!(!text.contains('\u{1b}') && !text.contains('\u{7}'));
}

#[test]
fn the_middleware_works_in_an_app_that_never_starts_the_agent() {
    // `use Heapscope::Rack::Profiler` with only `require "heapscope"`:
    // settings come from the environment; pages that need no agent work,
    // analyze-memory says what it needs.
    let rows = run_cases_in(
        false,
        &dev_tools(),
        &[
            case("/?hs=help", local()),
            case("/churn?hs=profile-gc&hs_format=json", local()),
            case("/?hs=analyze-memory", local()),
            case("/?hs=help", remote()),
        ],
    );
    assert_page(&rows[0], 200, "loopback in development");
    assert_page(&rows[1], 200, "loopback in development");
    assert_page(&rows[2], 503, "loopback in development");
    assert!(rows[2]["body"]
        .as_str()
        .unwrap()
        .contains("analyze-memory needs the agent"));
    assert_passed_through(&rows[3]);
    // Off unless enabled, here too.
    let rows = run_cases_in(
        false,
        &[("RACK_ENV", "development")],
        &[case("/?hs=help", local())],
    );
    assert_passed_through(&rows[0]);
}

#[test]
fn a_download_is_refused_like_any_other_page() {
    // Authorized first, to learn a real dump name; then the same link from
    // a request that is not authorized passes through to the app.
    let rows = run_cases(
        &[
            ("RACK_ENV", "production"),
            ("HEAPSCOPE_RACK_TOOLS", "1"),
            ("HEAPSCOPE_RACK_TOKEN", TOKEN),
        ],
        &[case("/?hs=download-dump&hs_dump=heap-1-2-3.dump", remote())],
    );
    assert_passed_through(&rows[0]);
}

// --- Puma ---------------------------------------------------------------

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP/1.0 GET with extra header lines: (status line, headers, body).
fn http_get(port: u16, path: &str, headers: &str) -> Option<(String, String, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n{headers}\r\n").ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    let (head, body) = resp.split_once("\r\n\r\n")?;
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    Some((status.into(), headers.to_ascii_lowercase(), body.into()))
}

/// Puma with 4 threads serving `dir/config.ru` under `heapscope run
/// --rack-tools` (token auth only: RACK_ENV=production), once it answers
/// `warm_path`; its log goes to `dir/server.log`. The server and its port.
fn start_puma(dir: &std::path::Path, warm_path: &str) -> (Proc, u16) {
    let port = free_port();
    let bind = format!("tcp://127.0.0.1:{port}");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_heapscope"));
    cmd.current_dir(dir)
        .env("HEAPSCOPE_RUBY_LIB", common::agent::ruby_lib())
        .args(["run", "--no-profile", "--no-stats", "--rack-tools"])
        .args(["--dump-dir", "dumps", "--runtime-dir", "run", "--"])
        .args(["puma", "-t", "4:4", "-b", &bind, "config.ru"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("server.log")).unwrap());
    for (k, _) in std::env::vars() {
        if k.starts_with("HEAPSCOPE_") && k != "HEAPSCOPE_RUBY_LIB" || k == "RUBYOPT" {
            cmd.env_remove(k);
        }
    }
    cmd.env("HEAPSCOPE_RACK_TOKEN", TOKEN)
        .env("RACK_ENV", "production");
    let server = Proc::spawn(cmd);
    let log = || std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(60);
    while http_get(port, warm_path, "").is_none() {
        assert!(Instant::now() < deadline, "puma did not answer\n{}", log());
        std::thread::sleep(Duration::from_millis(200));
    }
    (server, port)
}

#[test]
fn concurrent_requests_through_puma_stay_separate() {
    if !common::agent::puma_usable() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // Every request sleeps, so the 4 requests below overlap on 4 threads.
    std::fs::write(
        dir.join("config.ru"),
        "run ->(env) { sleep 1; a = Array.new(5_000) { |i| \"r#{i}\" }; \
         [200, {\"content-type\" => \"text/plain\"}, [\"app #{env['QUERY_STRING']} #{a.size}\"]] }\n",
    )
    .unwrap();
    let (_server, port) = start_puma(dir, "/");
    let log = || std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
    let token = format!("X-Heapscope-Token: {TOKEN}\r\n");
    // Three profile requests and a plain one, all at once.
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let token = token.clone();
            std::thread::spawn(move || {
                if i != 3 {
                    http_get(
                        port,
                        &format!("/?n={i}&hs=profile-gc&hs_format=json"),
                        &token,
                    )
                } else {
                    http_get(port, &format!("/?n={i}"), "")
                }
            })
        })
        .collect();
    let results: Vec<_> = handles
        .into_iter()
        .map(|h| h.join().unwrap().unwrap_or_else(|| panic!("{}", log())))
        .collect();
    let mut reports = 0;
    let mut skipped = 0;
    let mut overlapping = Vec::new();
    for (i, (status, headers, body)) in results.iter().enumerate() {
        assert!(status.contains(" 200 "), "{status}\n{}", log());
        if i == 3 {
            // Plain requests: the app's own answer, nothing added.
            assert_eq!(body, &format!("app n={i} 5000"));
            assert!(!headers.contains("x-heapscope"), "{headers}");
            continue;
        }
        if headers.contains("x-heapscope: skipped: another request is being profiled") {
            // One profiled request at a time: this one went through unprofiled.
            assert_eq!(
                body,
                &format!("app n={i}&hs=profile-gc&hs_format=json 5000")
            );
            skipped += 1;
            continue;
        }
        assert!(
            headers.contains("x-heapscope: authorized by token"),
            "{headers}"
        );
        assert!(headers.contains("cache-control: no-store"), "{headers}");
        let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
        assert_eq!(v["data"]["request"], "GET /", "{v}");
        assert!(v["data"]["wall_ms"].as_f64().unwrap() >= 1000.0, "{v}");
        overlapping.push(v["data"]["other_requests_overlapping"].as_u64().unwrap());
        reports += 1;
    }
    assert!(reports >= 1, "no report among {results:?}");
    assert!(
        skipped >= 1,
        "3 overlapping profiles were all profiled: {results:?}"
    );
    assert_eq!(reports + skipped, 3);
    // The requests that ran during a profile are counted, not hidden: at
    // least the ones it made skip (with one report, all of them).
    if reports == 1 {
        assert!(overlapping[0] >= skipped, "{overlapping:?} {results:?}");
    }
}

#[test]
fn a_failure_inside_the_agent_sends_the_apps_response_with_the_reason() {
    // The kernel refuses new files in /proc, so the dump behind
    // analyze-memory fails: the app answers, and a header says why.
    let rows = run_cases(
        &[
            ("RACK_ENV", "development"),
            ("HEAPSCOPE_RACK_TOOLS", "1"),
            ("HEAPSCOPE_DUMP_DIR", "/proc"),
        ],
        &[case("/?hs=analyze-memory", local())],
    );
    let r = &rows[0];
    assert_eq!(r["status"], 200, "{r}");
    assert_eq!(r["body"], r["bare"]["body"], "{r}");
    let why = r["headers"]["x-heapscope"].as_str().unwrap();
    assert!(
        why.starts_with("failed: Heapscope::Error: heap dump failed"),
        "{why}"
    );
}

/// The report of one request: its own allocation site (the app's
/// `/churn` line) in each format, `hs_allow_files`/`hs_ignore_files`
/// applied, and a `<script>` string the request allocates escaped in HTML.
#[test]
fn profile_memory_reports_the_requests_own_allocations() {
    let rows = run_cases(
        &dev_tools(),
        &[
            case("/churn?hs=profile-memory&hs_format=json&hs_top=5", local()),
            case("/churn?hs=profile-memory&hs_format=text", local()),
            case("/churn?hs=profile-memory", local()),
            case(
                "/churn?hs=profile-memory&hs_format=json&hs_ignore_files=%5C-e",
                local(),
            ),
            case("/?hs=profile-memory&hs_top=abc", local()),
        ],
    );
    // The app's lines are in `-e`; the churn allocates 200,000 strings.
    assert_page(&rows[0], 200, "loopback in development");
    assert!(rows[0]["headers"]["content-type"]
        .as_str()
        .unwrap()
        .starts_with("application/json"));
    let v: Value = serde_json::from_str(rows[0]["body"].as_str().unwrap()).unwrap();
    let by_loc = v["tables"]["allocated"]["objects"]["location"]
        .as_object()
        .unwrap();
    assert!(by_loc.len() <= 5, "{v}");
    let churn = by_loc
        .iter()
        .filter(|(k, _)| k.starts_with("-e:"))
        .map(|(_, n)| n.as_u64().unwrap())
        .max()
        .unwrap_or(0);
    assert!(churn >= 200_000, "{by_loc:?}");
    assert!(v["total_allocated"].as_u64().unwrap() >= 200_000, "{v}");
    let text = rows[1]["body"].as_str().unwrap();
    assert_page(&rows[1], 200, "loopback in development");
    assert!(text.starts_with("Total allocated: "), "{text}");
    assert!(text.contains("allocated objects by location"), "{text}");
    assert!(text.contains("  -e:"), "{text}");
    let html = rows[2]["body"].as_str().unwrap();
    assert_page(&rows[2], 200, "loopback in development");
    assert!(html.contains("allocated objects by location"), "{html}");
    // Ignoring the app's file leaves none of its sites.
    let v: Value = serde_json::from_str(rows[3]["body"].as_str().unwrap()).unwrap();
    let by_loc = v["tables"]["allocated"]["objects"]["location"]
        .as_object()
        .unwrap();
    assert!(by_loc.keys().all(|k| !k.starts_with("-e:")), "{by_loc:?}");
    assert_page(&rows[4], 400, "loopback in development");
    assert!(rows[4]["body"]
        .as_str()
        .unwrap()
        .contains("hs_top must be a whole number"));
}

#[test]
fn profile_memory_escapes_a_script_string_the_request_allocates() {
    // The app allocates `<script>` strings only on /script.
    let program = HARNESS.replace(
        "n = env[\"PATH_INFO\"] == \"/churn\"",
        "$kept = Array.new(3) { \"<script>alert(#{1 + 1})</script>\" } if env[\"PATH_INFO\"] == \"/script\"\n  n = env[\"PATH_INFO\"] == \"/churn\"",
    );
    assert_ne!(program, HARNESS);
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("responses.jsonl");
    let mut full = base_env(dir.path());
    full.push(("RACK_ENV", "development".into()));
    full.push(("HEAPSCOPE_RACK_TOOLS", "1".into()));
    full.push((
        "CASES",
        json!([case("/script?hs=profile-memory", local())]).to_string(),
    ));
    full.push(("OUT", out_path.display().to_string()));
    let mut cmd = autostart_ruby(dir.path(), &program, &full);
    cmd.env("RACK_ENV", "development");
    let out = Proc::spawn(cmd).wait(Duration::from_secs(120));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_str(
        std::fs::read_to_string(&out_path)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_page(&r, 200, "loopback in development");
    let html = r["body"].as_str().unwrap();
    assert!(
        html.contains("&quot;&lt;script&gt;alert(2)&lt;/script&gt;&quot;"),
        "{html}"
    );
    assert!(!html.contains("<script>alert"), "{html}");
    // Retained: $kept holds all 3 after the request.
    assert!(html.contains("retained strings"), "{html}");
}

#[test]
fn concurrent_profile_memory_requests_through_puma_keep_to_their_own_thread() {
    if !common::agent::puma_usable() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // Each request allocates strings and an instance of a class named by
    // its own marker, spread over a second so that the 4 requests overlap.
    std::fs::write(
        dir.join("config.ru"),
        "run ->(env) { m = env['QUERY_STRING'][/m=(\\w+)/, 1]; \
         k = Object.const_defined?(\"Mark#{m}\") ? Object.const_get(\"Mark#{m}\") : Object.const_set(\"Mark#{m}\", Class.new); \
         a = []; 10.times { a << \"marker-#{m}-x\" << k.new; sleep 0.1 }; \
         [200, {\"content-type\" => \"text/plain\"}, [\"app #{m} #{a.size}\"]] }\n",
    )
    .unwrap();
    let (_server, port) = start_puma(dir, "/?m=warm");
    let log = || std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
    let token = format!("X-Heapscope-Token: {TOKEN}\r\n");
    let marks = ["alpha", "bravo", "charlie", "delta"];
    let mut reports = 0;
    // A few rounds, so that more than one request gets profiled while the
    // others run beside it.
    for round in 0..3 {
        let handles: Vec<_> = marks
            .iter()
            .map(|m| {
                let token = token.clone();
                let m = m.to_string();
                std::thread::spawn(move || {
                    let got = http_get(
                        port,
                        &format!("/?m={m}&r={round}&hs=profile-memory&hs_format=json&hs_top=1000"),
                        &token,
                    );
                    (m, got)
                })
            })
            .collect();
        for h in handles {
            let (m, got) = h.join().unwrap();
            let (status, headers, body) = got.unwrap_or_else(|| panic!("{}", log()));
            assert!(status.contains(" 200 "), "{status}\n{}", log());
            if headers.contains("x-heapscope: skipped: another request is being profiled") {
                assert_eq!(body, format!("app {m} 20"));
                continue;
            }
            assert!(
                headers.contains("x-heapscope: authorized by token"),
                "{headers}\n{body}"
            );
            assert!(headers.contains("cache-control: no-store"), "{headers}");
            let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
            let classes = v["tables"]["allocated"]["objects"]["class"]
                .as_object()
                .unwrap();
            let strings: Vec<&str> = v["strings"]["allocated"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|s| s["value"].as_str())
                .collect();
            for other in marks {
                let own = other == m;
                assert_eq!(
                    classes
                        .get(&format!("Mark{other}"))
                        .and_then(|n| n.as_u64()),
                    own.then_some(10),
                    "{m}: {classes:?}"
                );
                assert_eq!(
                    strings
                        .iter()
                        .filter(|s| **s == format!("marker-{other}-x"))
                        .count(),
                    usize::from(own),
                    "{m}: {strings:?}"
                );
            }
            reports += 1;
        }
    }
    assert!(reports >= 1, "no report\n{}", log());
}
