//! The browser harness itself (`tests/common/browser.rs`) against a tiny
//! loopback HTTP server written here: following a link, clicking a button
//! whose script adds nodes, reading text and attributes, a screenshot, no
//! host but loopback, and catching a thrown error, a console.error and an
//! alert().

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Instant;

use common::browser::{self, Page};

const ONE: &str = r#"<!doctype html><html><head><meta charset="utf-8"><title>one</title></head>
<body style="font-family: sans-serif"><h1 id="title">Page one</h1>
<p>heapscope browser harness</p><a id="next" href="/two">to page two</a></body></html>"#;

const TWO: &str = r#"<!doctype html><html><head><meta charset="utf-8"><title>two</title></head>
<body style="font-family: sans-serif"><h1 id="title">Page two</h1>
<button id="add" data-kind="adder">add an item</button><ul id="list"></ul>
<script>
let n = 0;
document.getElementById("add").addEventListener("click", () => {
  n += 1;
  const li = document.createElement("li");
  li.className = "item";
  li.textContent = "item " + n;
  document.getElementById("list").appendChild(li);
});
</script></body></html>"#;

const THREE: &str = r#"<!doctype html><html><head><meta charset="utf-8"><title>three</title></head>
<body><script>console.error("console says", 42);</script>
<script>throw new Error("boom on page three");</script><p id="after">after the error</p></body></html>"#;

const FOUR: &str = r#"<!doctype html><html><head><meta charset="utf-8"><title>four</title></head>
<body><p id="before">before</p><script>alert("xss from " + document.title);</script>
<p id="after">after the alert</p></body></html>"#;

/// Serves the four pages on 127.0.0.1 from a thread; returns the base URL.
fn serve() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || answer(conn));
        }
    });
    base
}

fn answer(mut conn: TcpStream) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut request = String::new();
    if reader.read_line(&mut request).is_err() {
        return;
    }
    // The headers end at the first empty line.
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line.trim() != "" {
        line.clear();
    }
    let path = request.split_whitespace().nth(1).unwrap_or("/");
    let (status, body) = match path {
        "/" => ("200 OK", ONE),
        "/two" => ("200 OK", TWO),
        "/three" => ("200 OK", THREE),
        "/four" => ("200 OK", FOUR),
        _ => ("404 Not Found", ""),
    };
    let _ = write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// Waits until the page has recorded `n` JavaScript errors (events arrive
/// on their own thread).
fn wait_errors(page: &Page, n: usize) -> Vec<String> {
    let deadline = Instant::now() + browser::WAIT;
    loop {
        let e = page.js_errors();
        if e.len() >= n || Instant::now() > deadline {
            return e;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
}

#[test]
fn link_click_text_attributes_and_screenshot() {
    let Some(browser) = browser::browser_or_skip("link_click_text_attributes_and_screenshot")
    else {
        return;
    };
    eprintln!("browser launch: {:.2?}", browser.launch_time);
    let base = serve();
    let t = Instant::now();
    let page = browser.open(&format!("{base}/"));
    eprintln!("first page loaded in {:.2?}", t.elapsed());
    assert_eq!(page.text("#title"), "Page one");

    page.click("#next");
    page.wait_for("#add");
    assert_eq!(page.text("#title"), "Page two");
    assert!(page.url().ends_with("/two"), "{}", page.url());
    assert_eq!(page.attr("#add", "data-kind").as_deref(), Some("adder"));
    assert_eq!(page.attr("#add", "no-such-attribute"), None);

    page.click("#add");
    page.click("#add");
    page.wait_until(
        "document.querySelectorAll('.item').length === 2",
        "two items",
    );
    assert_eq!(page.texts(".item"), ["item 1", "item 2"]);
    assert_eq!(page.count("li"), 2);
    assert_eq!(page.eval("1 + 2"), serde_json::json!(3));
    assert_eq!(
        page.eval("Promise.resolve('later')"),
        serde_json::json!("later")
    );

    let shot = page.screenshot("infra_browser-page-two");
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "not a PNG: {}",
        shot.display()
    );
    assert!(
        png.len() > 2000,
        "a suspiciously small screenshot: {} bytes",
        png.len()
    );
    assert!(shot.starts_with(browser::screenshot_dir()));
    page.assert_clean();

    // Loopback only: other host names do not resolve.
    let refused = page.try_goto("http://example.com/").unwrap_err();
    assert!(refused.contains("ERR_NAME_NOT_RESOLVED"), "{refused}");
}

#[test]
fn thrown_errors_console_errors_and_alerts_are_caught() {
    let Some(browser) =
        browser::browser_or_skip("thrown_errors_console_errors_and_alerts_are_caught")
    else {
        return;
    };
    let base = serve();

    let page = browser.open(&format!("{base}/three"));
    page.wait_for("#after");
    let errors = wait_errors(&page, 2);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors
            .iter()
            .any(|e| e.contains("console.error: console says 42")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("uncaught: Error: boom on page three")),
        "{errors:?}"
    );
    assert!(page.dialogs().is_empty());

    // The alert is dismissed, so the rest of the page loads.
    let page = browser.open(&format!("{base}/four"));
    page.wait_for("#after");
    assert_eq!(page.dialogs(), ["Alert: xss from four"]);
    assert!(page.js_errors().is_empty(), "{:?}", page.js_errors());
}
