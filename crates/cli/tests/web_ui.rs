//! The web UI in real headless Chromium (`tests/common/browser.rs`): the
//! leak flow from the processes page to the object holding the leak, the
//! dominator explorer, the diff form against `heapscope diff`, and the
//! hostile dumps' attack strings shown as text on every page. Screenshots
//! are kept under `$CARGO_TARGET_DIR/test-artifacts/screenshots/web-*.png`.
//! The HTTP-level tests are in `web_http.rs`.

mod common;
#[path = "web/support.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::Path;

use common::browser::{browser_or_skip, js_str, Page};
use common::webprograms::{hostile_dumps, leaky_series};
use common::{heapscope, scratch_dir};
use serde_json::Value;
use support::{hrefs, import, Server};

/// The object page's record (`dl#record`) as name -> value.
fn record(page: &Page) -> BTreeMap<String, String> {
    page.wait_for("#record");
    let v = page.eval(
        "(() => { const out = {}; const dts = document.querySelectorAll('#record dt'); \
         dts.forEach(dt => { out[dt.textContent] = dt.nextElementSibling.textContent; }); \
         return out })()",
    );
    v.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect()
}

/// Loads `url`, checks it is clean, keeps a screenshot.
fn visit(page: &Page, url: &str, shot: &str) {
    page.goto(url);
    page.screenshot(shot);
    page.assert_clean();
}

/// Coloured pixels (inferno's palettes are saturated; the page around is
/// white and grey) inside the page's `object.flame`, from a screenshot: the SVG is
/// sandboxed (an opaque origin), so the page cannot look into it.
fn flame_pixels(page: &Page, shot: &str) -> usize {
    page.wait_for("object.flame");
    let rect = page.eval(
        "(() => { const e = document.querySelector('object.flame'); \
         e.scrollIntoView({block: 'start', behavior: 'instant'}); \
         const r = e.getBoundingClientRect(); \
         return [r.left, r.top, r.right, Math.min(r.bottom, window.innerHeight)] })()",
    );
    let r: Vec<f64> = rect
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let mut best = 0;
    // The SVG loads after the page: look again until it shows.
    for _ in 0..20 {
        let path = page.screenshot(shot);
        let file = std::fs::File::open(&path).unwrap();
        let mut reader = png::Decoder::new(std::io::BufReader::new(file))
            .read_info()
            .unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        let channels = info.color_type.samples();
        let (w, h) = (info.width as usize, info.height as usize);
        let mut n = 0;
        for y in (r[1].max(0.0) as usize)..(r[3] as usize).min(h) {
            for x in (r[0].max(0.0) as usize)..(r[2] as usize).min(w) {
                let p = &buf[(y * w + x) * channels..];
                let (hi, lo) = (p[0].max(p[1]).max(p[2]), p[0].min(p[1]).min(p[2]));
                if hi - lo > 80 {
                    n += 1;
                }
            }
        }
        best = best.max(n);
        if best > 2000 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    best
}

#[test]
fn leak_flow_dominators_and_diff_form() {
    let Some(browser) = browser_or_skip("leak_flow_dominators_and_diff_form") else {
        return;
    };
    let series = leaky_series();
    let dir = scratch_dir("heapscope-web-ui-");
    let store = dir.path().join("store.sqlite").display().to_string();
    import(&store, &[series.dir.as_os_str()]);
    let s = Server::start(&["--store", &store], &dir.path().join("serve.log"));
    let page = browser.open(&format!("{}/", s.base));

    // 1. Processes: the series' process, verdict leak.
    page.wait_for("#processes");
    let row = page.text("#processes tbody tr");
    assert!(row.contains(&series.pid().to_string()), "{row}");
    assert_eq!(page.text("#processes tbody tr .verdict"), "leak");
    page.screenshot("web-processes");
    page.assert_clean();

    // The process page: the leak sites ranked, with sparklines.
    page.click("#processes tbody tr a");
    page.wait_for("#leaks");
    page.screenshot("web-process");
    page.assert_clean();
    let process_url = page.url();
    let locs = page.texts("#leaks tr.leak > td:nth-child(2) > .loc");
    let mut want = series.locations("leak");
    want.sort();
    let mut top: Vec<String> = locs.iter().take(want.len()).cloned().collect();
    top.sort();
    assert_eq!(top, want, "the leak sites rank first: {locs:?}");
    assert_eq!(
        page.texts("#leaks tr.leak td:first-child")[..2],
        ["1".to_string(), "2".to_string()]
    );
    assert!(page.count("#leaks tr.leak svg.spark") >= 2);
    let text = page.body_text(20_000);
    assert!(
        text.contains("that the first dump did not have survived in every later dump"),
        "{text}"
    );
    assert!(
        page.count("#caches tbody tr") >= 1,
        "the levelled-off cache"
    );

    // leak -> survivor: the object page of an object of the first site.
    let site_class = page.text("#leaks tr.leak > td:nth-child(2) > .class");
    let site_loc = page.text("#leaks tr.leak > td:nth-child(2) > .loc");
    page.click("#leaks tr.leak a.survivor");
    let r = record(&page);
    assert_eq!(r["class"], site_class, "{r:?}");
    assert_eq!(r["location"], site_loc, "{r:?}");
    page.screenshot("web-object-survivor");
    page.assert_clean();
    // -> a path step: the step before the survivor holds it (the Array).
    let steps = page.count("ol.path:first-of-type > li:not(.root):not(.elided)");
    assert!(steps >= 2, "a path of {steps} steps");
    page.click("ol.path:first-of-type > li:not(.root):not(.elided):nth-last-child(2) a.obj");
    let holder = record(&page);
    assert_eq!(holder["class"], "Array", "{holder:?}");
    assert_eq!(
        holder["location"],
        series.summary["containers"]["leak"].as_str().unwrap()
    );
    page.assert_clean();
    // -> the holder named by the leak report: the same Array.
    let holder_addr = page.url().rsplit('/').next().unwrap().to_string();
    page.goto(&process_url);
    page.click("#leaks a.holder");
    let container = record(&page);
    assert_eq!(container["class"], "Array");
    assert_eq!(container["location"], holder["location"]);
    assert!(page.url().ends_with(&holder_addr), "{}", page.url());
    page.screenshot("web-object-holder");
    page.assert_clean();

    // 2. The dominator explorer, expanded twice deep.
    page.goto(&process_url);
    let dumps: Vec<String> = page
        .eval(
            "Array.from(document.querySelectorAll('#dumps tbody a'), a => a.getAttribute('href'))",
        )
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(dumps.len(), 5);
    page.goto(&format!("{}{}?tab=dominators", s.base, dumps[4]));
    page.wait_for("#domtree > ul > li.node");
    let first = "#domtree > ul > li.node:has(> button.toggle:enabled)";
    page.click(&format!("{first} > button.toggle"));
    page.wait_for(&format!("{first} > ul > li.node"));
    let second = format!("{first} > ul > li.node:has(> button.toggle:enabled)");
    page.click(&format!("{second} > button.toggle"));
    page.wait_for(&format!("{second} > ul > li.node"));
    assert!(page.count("#domtree li.node li.node li.node") > 0);
    // Collapsing hides, expanding again does not fetch twice.
    page.click(&format!("{second} > button.toggle"));
    page.wait_until(
        &format!(
            "document.querySelector({}).hidden",
            js_str(&format!("{second} > ul"))
        ),
        "the node to collapse",
    );
    page.screenshot("web-dominators");
    page.assert_clean();

    // The flame graph tab draws the sandboxed SVG.
    page.goto(&format!("{}{}?tab=flame", s.base, dumps[4]));
    let n = flame_pixels(&page, "web-flame");
    assert!(n > 2000, "the flame graph is not drawn ({n} flame pixels)");
    page.assert_clean();

    // 3. The diff form, with 2 dumps and with 3.
    for pick in [vec![0usize, 4], vec![0, 2, 4]] {
        page.goto(&process_url);
        for &i in &pick {
            let id = dumps[i].trim_start_matches("/dump/");
            page.click(&format!("#dumps input[name=dump][value=\"{id}\"]"));
        }
        page.click("form.diff button[type=submit]");
        page.wait_for("#diff");
        page.screenshot(&format!("web-diff-{}", pick.len()));
        page.assert_clean();
        let rows = page.eval(
            "Array.from(document.querySelectorAll('#diff tbody tr'), tr => \
             [tr.dataset.key, Number(tr.dataset.count), Number(tr.dataset.bytes)])",
        );
        let web: BTreeMap<String, (u64, u64)> = rows
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r[0].as_str().unwrap().to_string(),
                    (r[1].as_u64().unwrap(), r[2].as_u64().unwrap()),
                )
            })
            .collect();
        let top = page.eval("document.querySelector('#diff').dataset.top");
        let top = top.as_str().unwrap().to_string();
        let files: Vec<&Path> = pick.iter().map(|&i| series.dumps[i].as_path()).collect();
        let mut args: Vec<&std::ffi::OsStr> = vec!["diff".as_ref()];
        args.extend(files.iter().map(|f| f.as_os_str()));
        args.extend(
            [
                "--by",
                "type,class,location",
                "--format",
                "json",
                "--top",
                &top,
            ]
            .map(std::ffi::OsStr::new),
        );
        let cli = heapscope(&args).json();
        let want: BTreeMap<String, (u64, u64)> = cli["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let key = ["type", "class", "location"]
                    .map(|k| match &r[k] {
                        Value::String(s) => s.clone(),
                        _ => String::new(),
                    })
                    .join("\u{1f}");
                (
                    key,
                    (r["count"].as_u64().unwrap(), r["memsize"].as_u64().unwrap()),
                )
            })
            .collect();
        assert!(!want.is_empty());
        assert_eq!(web, want, "diff of dumps {pick:?}");
    }
}

#[test]
fn hostile_strings_stay_text_on_every_page() {
    let Some(browser) = browser_or_skip("hostile_strings_stay_text_on_every_page") else {
        return;
    };
    let h = hostile_dumps();
    let dir = scratch_dir("heapscope-web-hostile-");
    let store = dir.path().join("store.sqlite").display().to_string();
    // A pprof profile of the last dump: frames named by hostile methods and files.
    let profile = dir.path().join("hostile.pb.gz");
    heapscope(&[
        "pprof".as_ref(),
        h.last().as_os_str(),
        "-o".as_ref(),
        profile.as_os_str(),
    ])
    .ok();
    import(&store, &[h.dir.as_os_str(), profile.as_os_str()]);
    let s = Server::start(&["--store", &store], &dir.path().join("serve.log"));
    let page = browser.open(&format!("{}/", s.base));
    let home = s.page("/");
    let process = hrefs(&home, "/process/")[0].clone();
    let profile_path = hrefs(&home, "/profile/")
        .into_iter()
        .next()
        .expect("the imported profile is listed");
    let dumps: Vec<String> = hrefs(&s.page(&process), "/dump/")
        .into_iter()
        .filter(|h| h[6..].chars().all(|c| c.is_ascii_digit()))
        .collect();
    let last = dumps.last().unwrap().clone();

    // The DOM must hold the attacks as text only: no element or attribute
    // came out of a dump string.
    // want: "" (nothing), "alert(" or "<script>alert(" in the text.
    let check = |what: &str, want: &str| {
        let v = page.eval(
            "(() => { \
               const bad = []; \
               for (const e of document.querySelectorAll('*')) { \
                 if (e.tagName === 'IMG') bad.push('img ' + e.outerHTML.slice(0, 80)); \
                 if (e.tagName === 'SCRIPT' && !e.src.endsWith('/assets/app.js')) bad.push('script ' + e.outerHTML.slice(0, 80)); \
                 for (const a of e.attributes) { \
                   if (/^on/i.test(a.name)) bad.push('handler ' + a.name); \
                   if (/^\\s*javascript:/i.test(a.value)) bad.push('js url ' + a.name); \
                 } \
               } \
               return { bad, text: document.body.textContent } })()",
        );
        assert_eq!(v["bad"], Value::Array(vec![]), "{what}: {}", v["bad"]);
        let text = v["text"].as_str().unwrap_or_default();
        assert!(
            text.contains(want),
            "{what}: {want:?} is not shown as text:\n{}",
            text.chars().take(3000).collect::<String>()
        );
        assert!(page.dialogs().is_empty(), "{what}: {:?}", page.dialogs());
        page.assert_clean();
    };

    visit(&page, &format!("{}/", s.base), "web-hostile-processes");
    check("processes", "");
    visit(
        &page,
        &format!("{}{process}", s.base),
        "web-hostile-process",
    );
    check("process", "<script>alert(");
    for &tab in support::TABS {
        let url = format!("{}{last}?tab={tab}", s.base);
        visit(&page, &url, &format!("web-hostile-dump-{tab}"));
        if tab == "dominators" {
            page.wait_for("#domtree li.node");
            page.click("#domtree > ul > li.node:has(> button.toggle:enabled) > button.toggle");
            page.wait_for("#domtree li.node li.node");
        }
        if tab == "flame" {
            let n = flame_pixels(&page, "web-hostile-dump-flame");
            assert!(n > 2000, "the flame graph is not drawn ({n} flame pixels)");
        }
        let want = match tab {
            "class" | "location" | "file" | "string" | "retained" => "<script>alert(",
            "gem" => "onerror=alert(7)",
            _ => "",
        };
        check(&format!("dump tab {tab}"), want);
        // Filtering by an attack string finds it and shows it as text.
        if matches!(tab, "class" | "location" | "file" | "string") {
            page.goto(&format!("{url}&q={}", "%3Cscript%3E"));
            check(&format!("dump tab {tab} filtered"), "<script>alert(");
        }
    }
    // Object pages of hostile objects: the largest retainers of the last
    // dump, and the leak report's survivors and containers.
    let mut objects: Vec<String> = hrefs(&s.page(&format!("{last}?tab=retained")), "/dump/")
        .into_iter()
        .filter(|h| h.contains("/object/"))
        .take(3)
        .collect();
    page.goto(&format!("{}{process}", s.base));
    let linked = page.eval(
        "Array.from(document.querySelectorAll('#leaks a.survivor, #leaks a.holder'), \
         a => a.getAttribute('href'))",
    );
    for h in linked.as_array().unwrap() {
        let h = h.as_str().unwrap().to_string();
        if !objects.contains(&h) && objects.len() < 8 {
            objects.push(h);
        }
    }
    assert!(objects.len() >= 4, "{objects:?}");
    let mut shown = false;
    for (i, o) in objects.iter().enumerate() {
        page.goto(&format!("{}{o}", s.base));
        if i < 4 {
            page.screenshot(&format!("web-hostile-object-{i}"));
        }
        check(&format!("object {o}"), "");
        shown |= page
            .eval("document.body.textContent.includes('alert(')")
            .as_bool()
            .unwrap();
    }
    assert!(shown, "no object page showed a hostile name");
    // The diff of the series.
    let ids: Vec<&str> = dumps
        .iter()
        .map(|d| d.trim_start_matches("/dump/"))
        .collect();
    visit(
        &page,
        &format!(
            "{}/diff?dump={}&dump={}",
            s.base,
            ids[0],
            ids[ids.len() - 1]
        ),
        "web-hostile-diff",
    );
    check("diff", "<script>alert(");
    // The profile page, and both flame graphs opened as documents of their own.
    visit(
        &page,
        &format!("{}{profile_path}", s.base),
        "web-hostile-profile",
    );
    check("profile", "<script>alert(");
    for svg in [
        format!("{last}/flame.svg"),
        format!("{profile_path}/flame.svg"),
    ] {
        page.goto(&format!("{}{svg}", s.base));
        page.wait_until("document.documentElement.tagName === 'svg'", "the SVG");
        let v = page.eval(
            "(() => { const bad = []; \
               for (const e of document.querySelectorAll('*')) { \
                 if (e.localName === 'img' || e.localName === 'image' || e.localName === 'foreignObject') bad.push(e.localName); \
                 for (const a of e.attributes) if (/^\\s*javascript:/i.test(a.value)) bad.push('js url ' + a.name); \
               } \
               return { bad, text: document.documentElement.textContent.includes('alert(') } })()",
        );
        assert_eq!(v["bad"], Value::Array(vec![]), "{svg}: {v}");
        assert_eq!(v["text"], true, "{svg}: the hostile frames are not there");
        page.screenshot(&format!("web-hostile-flame-{}", svg.contains("profile")));
        assert!(page.dialogs().is_empty(), "{svg}: {:?}", page.dialogs());
    }
    assert!(page.dialogs().is_empty(), "{:?}", page.dialogs());
}
