//! Real headless Chromium (Debian's /usr/bin/chromium) for the web UI tests,
//! driven over the DevTools protocol by the `headless_chrome` crate.
//!
//! We start chromium ourselves (tied to the test binary with
//! `process::spawn_tied`, so no browser outlives it) and connect to it; the
//! crate never looks for or downloads a browser. The sandbox is off (tests
//! run as root), and every host name but localhost resolves to nothing, so
//! a page can reach loopback only.
//!
//! Each `Page` records uncaught exceptions and `console.error` calls
//! (`js_errors`) and every `alert`/`confirm`/`prompt` (`dialogs`, dismissed at
//! once: a dialog from a page built from a dump is XSS evidence).
//! Screenshots go to `$CARGO_TARGET_DIR/test-artifacts/screenshots/`.
//!
//! Skip rule: without chromium, `browser_or_skip` prints "skipped: ..." and
//! returns None, unless `CI=true` or `HEAPSCOPE_REQUIRE_BROWSER=1`, where a
//! missing browser is a failure.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use headless_chrome::protocol::cdp::types::Event;
use headless_chrome::protocol::cdp::{Input, Page as Cdp, Runtime};
use headless_chrome::Tab;
use serde_json::Value;
use tempfile::TempDir;

use super::process::spawn_tied;
use super::scratch_dir;

/// How long `wait_for` and friends wait.
pub const WAIT: Duration = Duration::from_secs(15);

/// The browser binary: `HEAPSCOPE_CHROMIUM`, else Debian's.
pub fn chromium_path() -> PathBuf {
    std::env::var_os("HEAPSCOPE_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

pub fn chromium_available() -> bool {
    chromium_path().is_file()
}

/// `CI=true` or `HEAPSCOPE_REQUIRE_BROWSER=1`: a missing browser fails the test.
pub fn browser_required() -> bool {
    let on = |k: &str| {
        std::env::var(k)
            .map(|v| v.eq_ignore_ascii_case("true") || v == "1")
            .unwrap_or(false)
    };
    on("CI") || on("HEAPSCOPE_REQUIRE_BROWSER")
}

/// A new browser, or None after printing why `test` is skipped. Panics
/// instead when the browser is required (`browser_required`).
pub fn browser_or_skip(test: &str) -> Option<Browser> {
    if chromium_available() {
        return Some(Browser::launch());
    }
    let why = format!(
        "no {} (apt-get install chromium)",
        chromium_path().display()
    );
    if browser_required() {
        panic!("{test}: Chromium is required here (CI=true or HEAPSCOPE_REQUIRE_BROWSER=1): {why}");
    }
    eprintln!("skipped: {test}: {why}");
    None
}

/// `$CARGO_TARGET_DIR/test-artifacts/screenshots`: next to the test binaries
/// (`CARGO_TARGET_TMPDIR` is `$CARGO_TARGET_DIR/tmp`), kept after the run.
pub fn screenshot_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent()
        .unwrap_or(tmp)
        .join("test-artifacts")
        .join("screenshots")
}

/// A running headless Chromium; killed when dropped.
pub struct Browser {
    chrome: Option<headless_chrome::Browser>,
    child: Option<Child>,
    dir: TempDir,
    /// From spawning the process to a working DevTools connection.
    pub launch_time: Duration,
}

impl Browser {
    /// Starts chromium. Panics when it is missing or does not start: check
    /// `chromium_available` or use `browser_or_skip` first.
    pub fn launch() -> Browser {
        let started = Instant::now();
        let path = chromium_path();
        let dir = scratch_dir("heapscope-chromium-");
        let profile = dir.path().join("profile");
        let log_path = dir.path().join("chromium.log");
        let log = fs::File::create(&log_path).expect("create the chromium log");
        let mut cmd = Command::new(&path);
        cmd.args([
            "--headless",
            // Tests run as root, where the sandbox cannot start.
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            // Nothing leaves the machine: no background services, and no
            // host but localhost and 127.0.0.1 resolves.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-domain-reliability",
            "--disable-client-side-phishing-detection",
            "--disable-sync",
            "--disable-extensions",
            "--disable-default-apps",
            "--disable-breakpad",
            "--no-pings",
            "--metrics-recording-only",
            "--no-first-run",
            "--no-default-browser-check",
            "--password-store=basic",
            "--use-mock-keychain",
            "--mute-audio",
            // Tabs opened earlier are in the background: their timers
            // (and `wait_until`'s polling) must not be slowed down.
            "--disable-background-timer-throttling",
            "--disable-renderer-backgrounding",
            "--disable-backgrounding-occluded-windows",
            "--hide-scrollbars",
            "--force-color-profile=srgb",
            "--window-size=1280,900",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        // Its own group: a Ctrl-C meant for cargo goes to us, then to it.
        .process_group(0);
        let mut child = spawn_tied(cmd, libc::SIGKILL)
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", path.display()));
        // Chromium writes its DevTools port and browser path here.
        let port_file = profile.join("DevToolsActivePort");
        let deadline = Instant::now() + Duration::from_secs(30);
        let ws_url = loop {
            if let Ok(text) = fs::read_to_string(&port_file) {
                let mut lines = text.lines();
                if let (Some(port), Some(target)) = (lines.next(), lines.next()) {
                    break format!("ws://127.0.0.1:{}{}", port.trim(), target.trim());
                }
            }
            let exited = child.try_wait().ok().flatten();
            if exited.is_some() || Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{} did not start ({}); the end of its log:\n{}",
                    path.display(),
                    exited.map_or("timed out".to_string(), |s| s.to_string()),
                    tail(&log_path, 40)
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        // The connection would be dropped after this long without events.
        let chrome = headless_chrome::Browser::connect_with_timeout(
            ws_url.clone(),
            Duration::from_secs(3600),
        )
        .unwrap_or_else(|e| panic!("cannot connect to chromium at {ws_url}: {e:#}"));
        let launch_time = started.elapsed();
        eprintln!("chromium started in {launch_time:.2?} ({ws_url})");
        Browser {
            chrome: Some(chrome),
            child: Some(child),
            dir,
            launch_time,
        }
    }

    /// A new tab showing `url` (loaded: its load event has fired).
    pub fn open(&self, url: &str) -> Page {
        let tab = self
            .chrome
            .as_ref()
            .unwrap()
            .new_tab()
            .unwrap_or_else(|e| panic!("cannot open a tab: {e:#}"));
        let page = Page::attach(tab);
        page.goto(url);
        page
    }

    /// The end of chromium's own log, for a failure message.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.dir.path().join("chromium.log"), lines)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The connection first, so its threads do not report the kill.
        drop(self.chrome.take());
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// What a page's listener saw.
#[derive(Default)]
struct Seen {
    errors: Vec<String>,
    dialogs: Vec<String>,
}

/// One tab.
pub struct Page {
    tab: Arc<Tab>,
    seen: Arc<Mutex<Seen>>,
}

impl Page {
    fn attach(tab: Arc<Tab>) -> Page {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let weak: Weak<Tab> = Arc::downgrade(&tab);
        let sink = Arc::clone(&seen);
        tab.add_event_listener(Arc::new(move |event: &Event| match event {
            Event::RuntimeExceptionThrown(e) => {
                let d = &e.params.exception_details;
                let what = d
                    .exception
                    .as_ref()
                    .and_then(|x| x.description.clone())
                    .unwrap_or_else(|| d.text.clone());
                let at = d.url.clone().unwrap_or_default();
                sink.lock().unwrap().errors.push(format!(
                    "uncaught: {what} ({at}:{}:{})",
                    d.line_number + 1,
                    d.column_number + 1
                ));
            }
            Event::RuntimeConsoleAPICalled(e)
                if e.params.Type == Runtime::ConsoleAPICalledEventTypeOption::Error =>
            {
                let words: Vec<String> = e.params.args.iter().map(remote_text).collect();
                sink.lock()
                    .unwrap()
                    .errors
                    .push(format!("console.error: {}", words.join(" ")));
            }
            Event::PageJavascriptDialogOpening(e) => {
                sink.lock()
                    .unwrap()
                    .dialogs
                    .push(format!("{:?}: {}", e.params.Type, e.params.message));
                // The page is blocked until the dialog is handled. This
                // runs on the tab's event thread; the reply comes on the
                // connection's, so waiting for it here is fine.
                if let Some(tab) = weak.upgrade() {
                    let _ = tab.get_dialog().dismiss();
                }
            }
            _ => {}
        }))
        .expect("add the page's event listener");
        tab.enable_runtime().expect("enable the Runtime domain");
        tab.set_default_timeout(WAIT);
        Page { tab, seen }
    }

    /// Loads `url` in this tab (a new document, not a #fragment of this one)
    /// and waits until it has loaded (readyState "complete"). Not the crate's
    /// `wait_until_navigated`, which waits for the network to idle 500 ms.
    pub fn goto(&self, url: &str) {
        if let Err(e) = self.try_goto(url) {
            panic!("cannot load {url}: {e}");
        }
    }

    /// `goto`, with a navigation that fails (a refused connection, a name
    /// that does not resolve) as Err with Chromium's error text.
    pub fn try_goto(&self, url: &str) -> Result<(), String> {
        // A new document lacks the mark the old one gets here.
        let _ = self.try_eval("window.__heapscopeOldDocument = true");
        let r = self
            .tab
            .call_method(Cdp::Navigate {
                url: url.to_string(),
                referrer: None,
                transition_Type: None,
                frame_id: None,
                referrer_policy: None,
            })
            .map_err(|e| format!("{e:#}"))?;
        if let Some(error) = r.error_text {
            return Err(error);
        }
        self.wait_until(
            "!window.__heapscopeOldDocument && document.readyState === 'complete'",
            &format!("{url} to load"),
        );
        Ok(())
    }

    pub fn url(&self) -> String {
        self.tab.get_url()
    }

    /// The underlying tab, for what this API does not cover.
    pub fn tab(&self) -> &Arc<Tab> {
        &self.tab
    }

    /// Evaluates `js` (an expression; a promise is awaited) and returns its
    /// value as JSON (undefined is null). Panics when it throws.
    pub fn eval(&self, js: &str) -> Value {
        self.try_eval(js)
            .unwrap_or_else(|e| panic!("evaluating {js:?} on {}: {e}", self.url()))
    }

    /// `eval`, with a throw (or a document going away meanwhile) as Err.
    pub fn try_eval(&self, js: &str) -> Result<Value, String> {
        let r = self
            .tab
            .call_method(Runtime::Evaluate {
                expression: js.to_string(),
                object_group: None,
                include_command_line_api: None,
                silent: Some(true),
                context_id: None,
                return_by_value: Some(true),
                generate_preview: None,
                user_gesture: Some(true),
                await_promise: Some(true),
                throw_on_side_effect: None,
                timeout: None,
                disable_breaks: None,
                repl_mode: None,
                allow_unsafe_eval_blocked_by_csp: None,
                unique_context_id: None,
                serialization_options: None,
            })
            .map_err(|e| format!("{e:#}"))?;
        if let Some(d) = r.exception_details {
            return Err(format!(
                "threw {}",
                d.exception.and_then(|x| x.description).unwrap_or(d.text)
            ));
        }
        Ok(r.result.value.unwrap_or(Value::Null))
    }

    /// Polls the expression `js` until it is truthy (a throw counts as not
    /// yet); panics after `WAIT` with `what` and the page's text.
    pub fn wait_until(&self, js: &str, what: &str) {
        self.poll(&format!("({js})"), what);
    }

    /// Evaluates the expression `js` every 20 ms inside the page until it is
    /// truthy, and returns that value. One protocol call, not one per try:
    /// each call through headless_chrome costs about 100 ms. A navigation
    /// meanwhile ends the call; the polling then goes on in the new document.
    fn poll(&self, js: &str, what: &str) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline
                .saturating_duration_since(Instant::now())
                .as_millis();
            let script = format!(
                "new Promise(resolve => {{ \
                   const end = Date.now() + {left}; let last = null; \
                   const poll = () => {{ \
                     let v = null; \
                     try {{ v = {js}; last = v; }} catch (e) {{ last = 'threw ' + e; }} \
                     if (v) resolve({{ok: true, value: v}}); \
                     else if (Date.now() >= end) resolve({{ok: false, last: String(last)}}); \
                     else setTimeout(poll, 20); \
                   }}; \
                   poll(); \
                 }})"
            );
            let last = match self.try_eval(&script) {
                Ok(v) if v["ok"] == true => return v["value"].clone(),
                Ok(v) => format!("last value {}", v["last"]),
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {WAIT:?} waiting for {what} on {} ({last}); the page says:\n{}",
                    self.url(),
                    self.try_eval("document.body ? document.body.innerText.slice(0, 2000) : ''")
                        .map(|v| v.as_str().unwrap_or_default().to_string())
                        .unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until an element matches `css`.
    pub fn wait_for(&self, css: &str) {
        self.wait_until(
            &format!("document.querySelector({}) !== null", js_str(css)),
            &format!("an element matching {css:?}"),
        );
    }

    /// Waits for the first element matching `css` to have a size, scrolls it
    /// into view and clicks the middle of its first line box with the mouse
    /// (press and release), as a user would: whatever is on top at that point
    /// gets the click. (The middle of a link that wraps can be blank space.)
    pub fn click(&self, css: &str) {
        let at = self.poll(
            &format!(
                "(() => {{ const e = document.querySelector({}); if (!e) return null; \
                 e.scrollIntoView({{block: 'center', inline: 'center', behavior: 'instant'}}); \
                 const rs = e.getClientRects(); const r = rs.length ? rs[0] : e.getBoundingClientRect(); \
                 return r.width * r.height > 0 ? [r.left + r.width / 2, r.top + r.height / 2] : null }})()",
                js_str(css)
            ),
            &format!("an element matching {css:?} to click"),
        );
        let (x, y) = (at[0].as_f64().unwrap(), at[1].as_f64().unwrap());
        for kind in [
            Input::DispatchMouseEventTypeOption::MousePressed,
            Input::DispatchMouseEventTypeOption::MouseReleased,
        ] {
            self.tab
                .call_method(Input::DispatchMouseEvent {
                    Type: kind,
                    x,
                    y,
                    modifiers: None,
                    timestamp: None,
                    button: Some(Input::MouseButton::Left),
                    buttons: None,
                    click_count: Some(1),
                    force: None,
                    tangential_pressure: None,
                    tilt_x: None,
                    tilt_y: None,
                    twist: None,
                    delta_x: None,
                    delta_y: None,
                    pointer_Type: None,
                })
                .unwrap_or_else(|e| panic!("clicking {css:?} on {}: {e:#}", self.url()));
        }
    }

    /// The text (`innerText`) of the first element matching `css`; panics
    /// when none does.
    pub fn text(&self, css: &str) -> String {
        let v = self.eval(&format!(
            "(() => {{ const e = document.querySelector({}); return e ? e.innerText : null }})()",
            js_str(css)
        ));
        match v {
            Value::String(s) => s,
            _ => panic!(
                "no element matches {css:?} on {}; the page says:\n{}",
                self.url(),
                self.body_text(2000)
            ),
        }
    }

    /// The texts of every element matching `css`, in document order.
    pub fn texts(&self, css: &str) -> Vec<String> {
        let v = self.eval(&format!(
            "Array.from(document.querySelectorAll({}), e => e.innerText)",
            js_str(css)
        ));
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|s| s.as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Attribute `name` of the first element matching `css` (None when the
    /// element lacks it); panics when no element matches.
    pub fn attr(&self, css: &str, name: &str) -> Option<String> {
        let v = self.eval(&format!(
            "(() => {{ const e = document.querySelector({}); \
             return e ? [e.getAttribute({})] : null }})()",
            js_str(css),
            js_str(name)
        ));
        match v {
            Value::Array(mut a) => match a.pop() {
                Some(Value::String(s)) => Some(s),
                _ => None,
            },
            _ => panic!("no element matches {css:?} on {}", self.url()),
        }
    }

    /// The number of elements matching `css`.
    pub fn count(&self, css: &str) -> usize {
        self.eval(&format!(
            "document.querySelectorAll({}).length",
            js_str(css)
        ))
        .as_u64()
        .unwrap_or(0) as usize
    }

    /// The page's visible text, cut to `max` characters.
    pub fn body_text(&self, max: usize) -> String {
        let v = self.eval("document.body ? document.body.innerText : ''");
        v.as_str().unwrap_or_default().chars().take(max).collect()
    }

    /// The whole document as HTML.
    pub fn html(&self) -> String {
        self.eval("document.documentElement.outerHTML")
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Saves a PNG of the viewport as `screenshot_dir()/NAME.png` (NAME made
    /// safe for a file name), prints and returns its path.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let png = self
            .tab
            .capture_screenshot(Cdp::CaptureScreenshotFormatOption::Png, None, None, true)
            .unwrap_or_else(|e| panic!("screenshot of {}: {e:#}", self.url()));
        let dir = screenshot_dir();
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        let path = dir.join(format!("{safe}.png"));
        fs::write(&path, png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        eprintln!("screenshot: {}", path.display());
        path
    }

    /// Uncaught exceptions and `console.error` messages so far, in order.
    pub fn js_errors(&self) -> Vec<String> {
        self.seen.lock().unwrap().errors.clone()
    }

    /// Every alert/confirm/prompt so far, as "Type: message" (all dismissed).
    pub fn dialogs(&self) -> Vec<String> {
        self.seen.lock().unwrap().dialogs.clone()
    }

    /// Panics when any JavaScript error or dialog happened on this page.
    pub fn assert_clean(&self) {
        let s = self.seen.lock().unwrap();
        assert!(
            s.errors.is_empty() && s.dialogs.is_empty(),
            "{}: JavaScript errors {:?}, dialogs {:?}",
            self.url(),
            s.errors,
            s.dialogs
        );
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        let _ = self.tab.close(false);
    }
}

/// `s` as a JavaScript string literal.
pub fn js_str(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        _ => true,
    }
}

/// A console argument as text: strings bare, others by their description.
fn remote_text(o: &Runtime::RemoteObject) -> String {
    match &o.value {
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => o
            .description
            .clone()
            .unwrap_or_else(|| format!("{:?}", o.Type)),
    }
}
