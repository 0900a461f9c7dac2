//! `heapscope serve` over plain HTTP: the token, Host and method rules,
//! 404 pages for unknown ids, dump files changed after import (409 pages,
//! the server stays up), the `--objects` fallback, the diff's JSON against
//! `heapscope diff`, page timings, and the same HTML from PostgreSQL as from
//! SQLite. The browser tests are in `web_ui.rs`.

mod common;
#[path = "web/support.rs"]
mod support;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::webprograms::leaky_series;
use common::{heapscope, scratch_dir};
use serde_json::Value;
use support::{first_address, hrefs, import, Server, TABS};

/// A SQLite store in `dir` with the leaky series imported (`extra`: more
/// import options), and a server over it.
fn leaky_server(dir: &Path, dumps: &Path, extra: &[&str]) -> (String, Server) {
    let store = dir.join("store.sqlite").display().to_string();
    let mut args: Vec<&std::ffi::OsStr> = extra.iter().map(|s| s.as_ref()).collect();
    args.push(dumps.as_os_str());
    import(&store, &args);
    let server = Server::start(&["--store", &store], &dir.join("serve.log"));
    (store, server)
}

/// The process page's path (there is one process).
fn process_path(s: &Server) -> String {
    hrefs(&s.page("/"), "/process/")
        .into_iter()
        .next()
        .expect("a process link")
}

/// Dump page paths of the process, in time order.
fn dump_paths(s: &Server) -> Vec<String> {
    let html = s.page(&process_path(s));
    let mut v: Vec<String> = hrefs(&html, "/dump/")
        .into_iter()
        .filter(|h| {
            h.trim_start_matches("/dump/")
                .chars()
                .all(|c| c.is_ascii_digit())
        })
        .collect();
    v.dedup();
    v
}

#[test]
fn non_loopback_listen_without_token_is_refused() {
    let dir = scratch_dir("heapscope-web-listen-");
    let store = dir.path().join("s.sqlite");
    let run = heapscope(&[
        "serve".as_ref(),
        "--store".as_ref(),
        store.as_os_str(),
        "--listen".as_ref(),
        "0.0.0.0:0".as_ref(),
    ]);
    run.usage_error();
    assert!(
        run.stderr.contains("--token") && run.stderr.contains("loopback"),
        "{}",
        run.stderr
    );
    // Nothing was created on the way to the refusal.
    assert!(!store.exists(), "the store was created before refusing");
}

#[test]
fn any_address_with_a_token_takes_any_host_with_the_token() {
    let dir = scratch_dir("heapscope-web-anyaddr-");
    let store = dir.path().join("s.sqlite").display().to_string();
    let token = "another-secret-for-the-tests";
    let s = Server::start_listening(
        &["--listen", "0.0.0.0:0", "--store", &store, "--token", token],
        &dir.path().join("serve.log"),
    );
    let port = s.host.rsplit(':').next().unwrap().to_string();
    // Clients name the machine as they know it.
    let host = format!("heapscope.example:{port}");
    let bearer = format!("Bearer {token}");
    let ok = s.request("GET", "/", &[("Host", &host), ("Authorization", &bearer)]);
    assert_eq!(ok.status, 200, "{}", ok.body);
    let none = s.request("GET", "/", &[("Host", &host)]);
    assert_eq!(none.status, 401, "{}", none.body);
    let wrong = s.request(
        "GET",
        "/",
        &[
            ("Host", &host),
            ("Authorization", "Bearer wrong-token-of-length"),
        ],
    );
    assert_eq!(wrong.status, 403);
}

#[test]
fn token_host_and_method_rules() {
    let dir = scratch_dir("heapscope-web-token-");
    let store = dir.path().join("s.sqlite").display().to_string();
    let token = "s3cret-token-for-the-tests";
    let s = Server::start(
        &["--store", &store, "--token", token],
        &dir.path().join("serve.log"),
    );
    let none = s.get("/");
    assert_eq!(none.status, 401, "{}", none.body);
    assert!(none.body.contains("Token needed"), "{}", none.body);
    let wrong = s.get("/?token=not-the-token-at-all");
    assert_eq!(wrong.status, 403, "{}", wrong.body);
    let wrong_cookie = s.request("GET", "/", &[("Cookie", "hs_token=nope")]);
    assert_eq!(wrong_cookie.status, 403);

    let ok = s.get(&format!("/?token={token}"));
    assert_eq!(ok.status, 200, "{}", ok.body);
    let cookie = ok.header("set-cookie").expect("a cookie with the token");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    let pair = cookie.split(';').next().unwrap().to_string();
    // The cookie alone now opens every page (links carry no token).
    let by_cookie = s.request("GET", "/", &[("Cookie", &pair)]);
    assert_eq!(by_cookie.status, 200);
    let by_bearer = s.request("GET", "/", &[("Authorization", &format!("Bearer {token}"))]);
    assert_eq!(by_bearer.status, 200);
    // Security headers on every page.
    let csp = by_cookie.header("content-security-policy").unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("default-src 'none'"));
    assert_eq!(by_cookie.header("x-content-type-options"), Some("nosniff"));

    // A page of another site that made its name resolve to us.
    let foreign = s.request(
        "GET",
        &format!("/?token={token}"),
        &[("Host", "evil.example:80")],
    );
    assert_eq!(foreign.status, 421, "{}", foreign.body);
    let post = s.request("POST", "/", &[("Cookie", &pair)]);
    assert_eq!(post.status, 405, "{}", post.body);
    assert!(s.request("POST", "/diff", &[]).status == 401);
}

#[test]
fn host_and_method_rules_without_token() {
    let dir = scratch_dir("heapscope-web-host-");
    let store = dir.path().join("s.sqlite").display().to_string();
    let s = Server::start(&["--store", &store], &dir.path().join("serve.log"));
    assert_eq!(s.get("/").status, 200);
    let port = s.host.rsplit(':').next().unwrap();
    let local = s.request("GET", "/", &[("Host", &format!("localhost:{port}"))]);
    assert_eq!(local.status, 200);
    for host in ["evil.example", "127.0.0.1.nip.io", "localhost", ""] {
        let r = s.request("GET", "/", &[("Host", host)]);
        assert_eq!(r.status, 421, "Host {host:?}: {}", r.body);
    }
    for m in ["POST", "PUT", "DELETE"] {
        assert_eq!(s.request(m, "/", &[]).status, 405, "{m}");
    }
    // The empty store says how to fill it.
    assert!(s.page("/").contains("heapscope import"));
}

#[test]
fn unknown_ids_and_addresses_are_404_pages() {
    let series = leaky_series();
    let dir = scratch_dir("heapscope-web-404-");
    let (_, s) = leaky_server(dir.path(), &series.dir, &[]);
    let dumps = dump_paths(&s);
    let first = &dumps[0];
    for path in [
        "/dump/abc".to_string(),
        "/dump/999999".to_string(),
        "/dump/0".to_string(),
        "/dump/-1".to_string(),
        "/dump/999999/flame.svg".to_string(),
        "/dump/999999/dominators".to_string(),
        format!("{first}/object/0xdeadbeef"),
        format!("{first}/object/not-an-address"),
        format!("{first}/dominators?node=0xdeadbeef"),
        "/dump/999999/object/0x10".to_string(),
        "/process/0".to_string(),
        "/process/999999".to_string(),
        "/process/x".to_string(),
        "/profile/0".to_string(),
        "/profile/999999".to_string(),
        "/profile/999999/flame.svg".to_string(),
        "/no/such/page".to_string(),
        "/diff?dump=999998&dump=999999".to_string(),
    ] {
        let r = s.get(&path);
        assert_eq!(r.status, 404, "{path}: {}", r.body);
        if !path.contains("dominators") {
            assert!(r.body.contains("<h1>"), "{path}: not a page: {}", r.body);
        }
    }
    // Out of range and odd query values are not errors either.
    for q in [
        "?tab=nope",
        "?page=99999",
        "?page=-3",
        "?sort=zzz",
        "?q=%00%ff",
    ] {
        assert_eq!(s.get(&format!("{first}{q}")).status, 200, "{q}");
    }
    // A diff needs 2 or 3 dumps and known keys.
    assert_eq!(s.get("/diff?dump=1").status, 400);
    assert_eq!(s.get("/diff?dump=1&dump=2&dump=3&dump=4").status, 400);
    assert_eq!(s.get("/diff?dump=1&dump=2&by=nope").status, 400);
}

/// Copies the leaky series to `dir` (so its files can be moved and broken).
fn copy_series(dir: &Path) -> (PathBuf, Vec<PathBuf>) {
    let to = dir.join("dumps");
    fs::create_dir_all(&to).unwrap();
    let series = leaky_series();
    let copies = series
        .dumps
        .iter()
        .map(|d| {
            let c = to.join(d.file_name().unwrap());
            fs::copy(d, &c).unwrap();
            c
        })
        .collect();
    (to, copies)
}

#[test]
fn changed_dump_files_get_a_409_page_and_the_server_stays_up() {
    let dir = scratch_dir("heapscope-web-409-");
    let (dumps_dir, files) = copy_series(dir.path());
    let (_, s) = leaky_server(dir.path(), &dumps_dir, &[]);
    let dumps = dump_paths(&s);
    assert_eq!(dumps.len(), 5);
    let address: Vec<String> = files.iter().map(|f| first_address(f)).collect();
    // Works while the file is there.
    s.page(&format!("{}/object/{}", dumps[4], address[4]));

    // Moved away; truncated; the same size with another beginning (another
    // dump written to the same name); one byte changed in the middle (only
    // the modification time tells).
    fs::rename(&files[1], dir.path().join("moved.dump")).unwrap();
    let f = fs::OpenOptions::new().write(true).open(&files[2]).unwrap();
    f.set_len(fs::metadata(&files[2]).unwrap().len() / 2)
        .unwrap();
    drop(f);
    let mut bytes = fs::read(&files[3]).unwrap();
    let at = bytes.iter().position(|&b| b == b'{').unwrap() + 1;
    bytes[at..at + 5].copy_from_slice(b"XXXXX");
    fs::write(&files[3], &bytes).unwrap();
    let mut bytes = fs::read(&files[0]).unwrap();
    let at = bytes.len() / 2;
    bytes[at] = if bytes[at] == b' ' { b'\t' } else { b' ' };
    fs::write(&files[0], &bytes).unwrap();

    for (i, want) in [
        (1, "is gone"),
        (2, "has changed"),
        (3, "other contents"),
        (0, "has been modified"),
    ] {
        let path = format!("{}/object/{}", dumps[i], address[i]);
        let r = s.get(&path);
        assert_eq!(r.status, 409, "{path}: {}", r.body);
        assert!(r.body.contains(want), "{path}: {}", r.body);
        assert!(r.body.contains("--objects"), "{path}: {}", r.body);
        let dom = s.get(&format!("{}/dominators?node=root", dumps[i]));
        assert_eq!(dom.status, 409, "{}", dom.body);
        assert!(dom.body.contains(want), "{}", dom.body);
        // The store-only pages of that dump still work.
        s.page(&dumps[i]);
        s.page(&format!("{}?tab=retained", dumps[i]));
        s.page(&format!("{}/flame.svg", dumps[i]));
    }
    let diff = s.get(&format!(
        "/diff?dump={}&dump={}",
        dumps[4].trim_start_matches("/dump/"),
        dumps[1].trim_start_matches("/dump/")
    ));
    assert_eq!(diff.status, 409, "{}", diff.body);
    assert!(diff.body.contains("is gone"));
    // The server is still up, and the intact dumps still load.
    s.page("/");
    s.page(&process_path(&s));
    s.page(&format!("{}/object/{}", dumps[4], address[4]));
}

#[test]
fn objects_tables_stand_in_for_a_moved_dump() {
    let dir = scratch_dir("heapscope-web-objects-");
    let (dumps_dir, files) = copy_series(dir.path());
    let (_, s) = leaky_server(dir.path(), &dumps_dir, &["--objects"]);
    let dumps = dump_paths(&s);
    let last = files.last().unwrap();
    let address = first_address(last);
    let path = format!("{}/object/{address}", dumps[4]);
    // Another dump's object page reads its file (this one's is not loaded:
    // once loaded, a dump is served from memory).
    let other = format!("{}/object/{}", dumps[3], first_address(&files[3]));
    assert!(s.page(&other).contains("retained size"));
    fs::rename(last, dir.path().join("elsewhere.dump")).unwrap();
    let from_store = s.page(&path);
    assert!(from_store.contains("is gone"), "{from_store}");
    assert!(
        from_store.contains("object tables"),
        "no fallback: {from_store}"
    );
    assert!(from_store.contains(&address), "{from_store}");
    // An address the dump does not have is still a 404.
    assert_eq!(
        s.get(&format!("{}/object/0xdeadbeef", dumps[4])).status,
        404
    );
}

#[test]
fn loaded_dumps_stay_within_the_cache_budget() {
    let dir = scratch_dir("heapscope-web-cache-");
    let (dumps_dir, files) = copy_series(dir.path());
    let store = dir.path().join("store.sqlite").display().to_string();
    import(&store, &[dumps_dir.as_os_str()]);
    // 1 MiB holds one of these dumps at most: loading another evicts it.
    let s = Server::start(
        &["--store", &store, "--cache-memory", "1"],
        &dir.path().join("serve.log"),
    );
    let dumps = dump_paths(&s);
    let addresses: Vec<String> = files.iter().map(|f| first_address(f)).collect();
    let object = |i: usize| format!("{}/object/{}", dumps[i], addresses[i]);
    s.page(&object(0));
    s.page(&object(1));
    // Dump 1 is in memory: it answers without its file. Dump 0 was evicted:
    // it needs its file again.
    fs::rename(&files[0], dir.path().join("away-0.dump")).unwrap();
    fs::rename(&files[1], dir.path().join("away-1.dump")).unwrap();
    s.page(&object(1));
    let r = s.get(&object(0));
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.body.contains("is gone"));
}

/// The rows of a diff's JSON as key -> (count, memsize).
fn diff_rows(v: &Value) -> BTreeMap<String, (u64, u64)> {
    v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let key = format!("{}|{}|{}", r["type"], r["class"], r["location"]);
            (
                key,
                (r["count"].as_u64().unwrap(), r["memsize"].as_u64().unwrap()),
            )
        })
        .collect()
}

#[test]
fn diff_json_equals_heapscope_diff() {
    let series = leaky_series();
    let dir = scratch_dir("heapscope-web-diffjson-");
    let (_, s) = leaky_server(dir.path(), &series.dir, &[]);
    let ids: Vec<String> = dump_paths(&s)
        .iter()
        .map(|p| p.trim_start_matches("/dump/").to_string())
        .collect();
    for pick in [vec![0, 4], vec![4, 1], vec![0, 2, 4]] {
        let query: Vec<String> = pick.iter().map(|&i| format!("dump={}", ids[i])).collect();
        let web: Value =
            serde_json::from_str(&s.page(&format!("/diff?{}&format=json&top=10", query.join("&"))))
                .unwrap();
        let mut files: Vec<&Path> = pick.iter().map(|&i| series.dumps[i].as_path()).collect();
        files.sort();
        let mut args: Vec<&std::ffi::OsStr> = vec!["diff".as_ref()];
        args.extend(files.iter().map(|f| f.as_os_str()));
        args.extend(["--format", "json", "--top", "10"].map(std::ffi::OsStr::new));
        let cli = heapscope(&args).json();
        assert_eq!(diff_rows(&web), diff_rows(&cli), "dumps {pick:?}");
        assert_eq!(web["totals"], cli["totals"], "dumps {pick:?}");
        assert!(!diff_rows(&web).is_empty());
    }
}

#[test]
fn store_pages_answer_within_100ms() {
    let series = leaky_series();
    let dir = scratch_dir("heapscope-web-timing-");
    let (_, s) = leaky_server(dir.path(), &series.dir, &[]);
    let process = process_path(&s);
    let dumps = dump_paths(&s);
    let last = dumps.last().unwrap();
    let mut paths = vec!["/".to_string(), process.clone()];
    for &tab in support::TABS {
        paths.push(format!("{last}?tab={tab}"));
    }
    paths.push(format!("{last}?tab=location&q=leaky&sort=count"));
    paths.push(format!("{last}/flame.svg"));
    paths.push("/assets/app.js".into());
    let mut worst = Vec::new();
    for p in &paths {
        // Warm-up, then the slowest of 5.
        s.page(p);
        let slowest = (0..5)
            .map(|_| {
                let (r, t) = s.timed(p);
                assert_eq!(r.status, 200, "{p}");
                t
            })
            .max()
            .unwrap();
        eprintln!("timing: {p}: {:.1} ms", slowest.as_secs_f64() * 1000.0);
        worst.push((p.clone(), slowest));
    }
    for (p, t) in &worst {
        assert!(*t < Duration::from_millis(100), "{p} took {t:?}");
    }
    // The flame graph SVG keeps its own policy: a sandbox (opaque origin)
    // framed only by the UI; the pages allow it as a frame.
    let svg = s.get(&format!("{last}/flame.svg"));
    let csp = svg.header("content-security-policy").unwrap();
    assert!(csp.contains("sandbox allow-scripts"), "{csp}");
    assert!(csp.contains("frame-ancestors 'self'"), "{csp}");
    assert_eq!(svg.header("x-frame-options"), Some("SAMEORIGIN"));
    let page = s.get(&format!("{last}?tab=flame"));
    let csp = page.header("content-security-policy").unwrap();
    assert!(
        csp.contains("frame-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
}

/// Pages with the store's own numbers taken out: ids and the store's paths.
fn normalised(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    // Ids in links differ between stores only if sequences do; map them
    // by order of appearance.
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    while let Some(i) = rest.find("href=\"/") {
        out.push_str(&rest[..i + 7]);
        let tail = &rest[i + 7..];
        let end = tail.find('"').unwrap();
        let link = &tail[..end];
        let mut parts: Vec<String> = Vec::new();
        for seg in link.split('/') {
            let (num, more) =
                seg.split_at(seg.find(|c: char| !c.is_ascii_digit()).unwrap_or(seg.len()));
            if num.is_empty() {
                parts.push(seg.to_string());
            } else {
                let n = seen.len();
                let k = *seen.entry(num.to_string()).or_insert(n);
                parts.push(format!("#{k}{more}"));
            }
        }
        out.push_str(&parts.join("/"));
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[test]
fn postgres_store_serves_the_same_pages_as_sqlite() {
    let Some(pg) = common::pg::server_or_skip("postgres_store_serves_the_same_pages_as_sqlite")
    else {
        return;
    };
    let series = leaky_series();
    let dir = scratch_dir("heapscope-web-pg-");
    let (_, lite) = leaky_server(dir.path(), &series.dir, &[]);
    let url = pg.fresh_database("web_pages");
    import(&url, &[series.dir.as_os_str()]);
    let pgs = Server::start(&["--store", &url], &dir.path().join("serve-pg.log"));
    let lite_dumps = dump_paths(&lite);
    let pg_dumps = dump_paths(&pgs);
    assert_eq!(lite_dumps.len(), pg_dumps.len());
    let mut pairs = vec![
        ("/".to_string(), "/".to_string()),
        (process_path(&lite), process_path(&pgs)),
    ];
    for (a, b) in lite_dumps.iter().zip(&pg_dumps) {
        pairs.push((a.clone(), b.clone()));
    }
    let (a, b) = (lite_dumps.last().unwrap(), pg_dumps.last().unwrap());
    // The type tab is the dump page itself (above); the dominator explorer
    // and the flame graph load their content separately.
    for tab in TABS
        .iter()
        .filter(|t| !["type", "dominators", "flame"].contains(t))
    {
        pairs.push((format!("{a}?tab={tab}"), format!("{b}?tab={tab}")));
    }
    pairs.push((
        format!("{a}?tab=location&q=LEAKY&sort=count"),
        format!("{b}?tab=location&q=LEAKY&sort=count"),
    ));
    for (a, b) in pairs {
        let (x, y) = (normalised(&lite.page(&a)), normalised(&pgs.page(&b)));
        // Warmed up by the line above: PostgreSQL's pages are as quick.
        let slowest = (0..3).map(|_| pgs.timed(&b).1).max().unwrap();
        eprintln!(
            "timing (PostgreSQL): {b}: {:.1} ms",
            slowest.as_secs_f64() * 1000.0
        );
        assert!(slowest < Duration::from_millis(100), "{b} took {slowest:?}");
        if x != y {
            let at = x
                .chars()
                .zip(y.chars())
                .position(|(p, q)| p != q)
                .unwrap_or(x.len().min(y.len()));
            let from = at.saturating_sub(200);
            panic!(
                "{a} differs from PostgreSQL's {b} at {at}:\nsqlite:   {}\npostgres: {}",
                x.chars().skip(from).take(400).collect::<String>(),
                y.chars().skip(from).take(400).collect::<String>()
            );
        }
    }
}

#[test]
fn serve_help_and_docs_name_every_option() {
    let help = heapscope(&["serve", "--help"]).stdout_text();
    assert!(help.contains("Examples:"), "{help}");
    assert!(help.contains("docs/serve.md"), "{help}");
    let docs = fs::read_to_string(common::repo_root().join("docs/serve.md")).unwrap();
    let mut n = 0;
    for line in help.lines() {
        let Some(at) = line.find("--") else { continue };
        if !line.trim_start().starts_with('-') {
            continue;
        }
        let name: String = line[at..]
            .chars()
            .take_while(|c| *c == '-' || c.is_ascii_alphanumeric())
            .collect();
        if name == "--help" || name == "--version" {
            continue;
        }
        n += 1;
        assert!(
            docs.contains(&format!("`{name}")),
            "docs/serve.md does not document {name}"
        );
    }
    assert!(n >= 7, "only {n} options in:\n{help}");
}
