//! `heapscope serve`: a read-only web UI over a store (heapscope-store).
//!
//! `lib.rs` runs the server (axum on a small tokio runtime) and guards every
//! request: the token, the Host header, security headers. `pages.rs` renders
//! the pages from what the store holds; `objects.rs` the pages that need the
//! dump itself (an object, the dominator explorer, a diff), through the
//! bounded cache of loaded dumps in `heaps.rs`; `html.rs` holds the layout
//! and the small drawings (sparklines, charts). Every string from a dump
//! reaches HTML through maud, which escapes it; the Content-Security-Policy
//! allows only the server's own script and style on top of that.

// Handlers return `Result<Response, Response>`, axum's usual shape: the
// error is the page to send, not worth boxing.
#![allow(clippy::result_large_err)]

mod heaps;
mod html;
mod objects;
mod pages;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use heapscope_store::Store;

pub use heaps::DEFAULT_CACHE_BYTES;

/// How the server runs.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// Required when `listen` is not a loopback address.
    pub token: Option<String>,
    /// Memory for dumps loaded by object pages (least recently used go first).
    pub cache_bytes: usize,
    /// Parser threads for dumps loaded by object pages (0: one per core).
    pub threads: usize,
}

/// Why the server cannot start.
#[derive(Debug)]
pub struct ServeError(pub String);

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ServeError {}

pub(crate) struct App {
    pub store: Mutex<Store>,
    pub heaps: heaps::Cache,
    pub token: Option<String>,
    /// Host header values accepted: the listen address, and for loopback
    /// `localhost` too (a DNS-rebinding page names its own host). Empty:
    /// any host (another address than loopback, where a token is required
    /// and clients name the machine as they please).
    pub hosts: Vec<String>,
}

pub(crate) type Shared = Arc<App>;

/// Checks the configuration: another address than loopback needs a token.
pub fn check(config: &Config) -> Result<(), ServeError> {
    if !config.listen.ip().is_loopback() && config.token.as_deref().is_none_or(str::is_empty) {
        return Err(ServeError(format!(
            "--listen {} is not a loopback address: dumps hold the app's secrets, so every \
             request must then present a token. Give --token SECRET (or HEAPSCOPE_TOKEN), \
             or listen on 127.0.0.1",
            config.listen
        )));
    }
    if let Some(t) = &config.token {
        if t.len() < 16 {
            return Err(ServeError(
                "--token must be at least 16 characters long".to_string(),
            ));
        }
    }
    Ok(())
}

fn host_names(addr: SocketAddr) -> Vec<String> {
    if !addr.ip().is_loopback() {
        // The token guards this server: a rebinding page cannot present it.
        return Vec::new();
    }
    let port = addr.port();
    let mut v = vec![addr.to_string()];
    if addr.ip().is_loopback() {
        v.push(format!("localhost:{port}"));
        v.push(format!("127.0.0.1:{port}"));
        v.push(format!("[::1]:{port}"));
    }
    v
}

/// Binds, calls `ready` with the bound address (the port when 0 was asked),
/// and serves until Ctrl-C or SIGTERM.
pub fn serve(
    store: Store,
    config: Config,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), ServeError> {
    check(&config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| ServeError(format!("cannot start the server: {e}")))?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| ServeError(format!("cannot listen on {}: {e}", config.listen)))?;
        let addr = listener
            .local_addr()
            .map_err(|e| ServeError(format!("cannot listen on {}: {e}", config.listen)))?;
        let app = Arc::new(App {
            store: Mutex::new(store),
            heaps: heaps::Cache::new(config.cache_bytes, config.threads),
            token: config.token.clone(),
            hosts: host_names(addr),
        });
        ready(addr);
        axum::serve(listener, router(app))
            .with_graceful_shutdown(shutdown())
            .await
            .map_err(|e| ServeError(format!("the server stopped: {e}")))
    })
}

async fn shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
}

fn router(app: Shared) -> Router {
    Router::new()
        .route("/", get(pages::processes))
        .route("/process/{id}", get(pages::process))
        .route("/dump/{id}", get(pages::dump))
        .route("/dump/{id}/flame.svg", get(pages::dump_flame))
        .route("/dump/{id}/object/{address}", get(objects::object))
        .route("/dump/{id}/dominators", get(objects::dominators))
        .route("/diff", get(objects::diff))
        .route("/profile/{id}", get(pages::profile))
        .route("/profile/{id}/flame.svg", get(pages::profile_flame))
        .route("/assets/app.css", get(css))
        .route("/assets/app.js", get(js))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app)
}

const CSS: &str = include_str!("../assets/app.css");
const JS: &str = include_str!("../assets/app.js");

async fn css() -> Response {
    asset(CSS, "text/css; charset=utf-8")
}

async fn js() -> Response {
    asset(JS, "text/javascript; charset=utf-8")
}

fn asset(body: &'static str, kind: &'static str) -> Response {
    let mut r = Response::new(Body::from(body));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

async fn not_found() -> Response {
    html::error_page(StatusCode::NOT_FOUND, "Not found", "There is no such page.")
}

/// The token the request presents: `?token=`, `Authorization: Bearer`, or
/// the cookie set when a token was first presented (so links work).
fn presented_token(req: &Request) -> Option<String> {
    if let Some(q) = req.uri().query() {
        for (k, v) in form_urlencoded::parse(q.as_bytes()) {
            if k == "token" {
                return Some(v.into_owned());
            }
        }
    }
    let headers = req.headers();
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        if let Some(t) = v.strip_prefix("Bearer ") {
            return Some(t.trim().to_string());
        }
    }
    for cookie in headers.get_all(header::COOKIE) {
        if let Ok(text) = cookie.to_str() {
            for part in text.split(';') {
                if let Some(t) = part.trim().strip_prefix("hs_token=") {
                    return Some(t.to_string());
                }
            }
        }
    }
    None
}

/// Compares without stopping at the first difference.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

async fn guard(State(app): State<Shared>, req: Request, next: Next) -> Response {
    // A page of another site that resolves its own name to 127.0.0.1
    // (DNS rebinding) sends its own Host: refuse it.
    let host_ok = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|h| {
            app.hosts.is_empty() || app.hosts.iter().any(|ok| ok.eq_ignore_ascii_case(h))
        });
    if !host_ok {
        return html::error_page(
            StatusCode::MISDIRECTED_REQUEST,
            "Unknown host",
            "This server answers only to the address it listens on.",
        );
    }
    let mut set_cookie = None;
    if let Some(token) = &app.token {
        match presented_token(&req) {
            Some(t) if same(&t, token) => {
                if req.uri().query().is_some_and(|q| q.contains("token=")) {
                    set_cookie = Some(token.clone());
                }
            }
            Some(_) => {
                return html::error_page(
                    StatusCode::FORBIDDEN,
                    "Wrong token",
                    "The token presented is not this server's.",
                )
            }
            None => {
                return html::error_page(
                    StatusCode::UNAUTHORIZED,
                    "Token needed",
                    "This server asks for a token: open the URL it printed (with ?token=...), \
                     or send Authorization: Bearer TOKEN.",
                )
            }
        }
    }
    if req.method() != axum::http::Method::GET && req.method() != axum::http::Method::HEAD {
        return html::error_page(
            StatusCode::METHOD_NOT_ALLOWED,
            "Read only",
            "This UI only reads the store.",
        );
    }
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    // A response with a policy of its own (the flame graph SVGs) keeps it.
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                 object-src 'self'; frame-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; \
                 frame-ancestors 'none'",
            ),
        );
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !h.contains_key(header::X_FRAME_OPTIONS) {
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    if let Some(t) = set_cookie {
        if let Ok(v) =
            HeaderValue::from_str(&format!("hs_token={t}; Path=/; HttpOnly; SameSite=Strict"))
        {
            h.insert(header::SET_COOKIE, v);
        }
    }
    res
}

/// Runs store work off the async threads.
pub(crate) async fn with_store<T: Send + 'static>(
    app: &Shared,
    f: impl FnOnce(&mut Store) -> Result<T, heapscope_store::DbError> + Send + 'static,
) -> Result<T, Response> {
    let app = app.clone();
    tokio::task::spawn_blocking(move || {
        let mut store = app.store.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut store)
    })
    .await
    .map_err(|_| internal("the request's worker failed"))?
    .map_err(|e| internal(&e.0))
}

pub(crate) fn internal(why: &str) -> Response {
    html::error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "The store could not answer",
        why,
    )
}

pub(crate) fn missing(what: &str) -> Response {
    html::error_page(StatusCode::NOT_FOUND, "Not found", what)
}

impl IntoResponse for ServeError {
    fn into_response(self) -> Response {
        internal(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_loopback_needs_a_long_token() {
        let mut c = Config {
            listen: "0.0.0.0:8080".parse().unwrap(),
            token: None,
            cache_bytes: 0,
            threads: 0,
        };
        assert!(check(&c).is_err());
        c.token = Some("short".into());
        assert!(check(&c).is_err());
        c.token = Some("a-long-enough-secret".into());
        assert!(check(&c).is_ok());
        c.listen = "127.0.0.1:0".parse().unwrap();
        c.token = None;
        assert!(check(&c).is_ok());
    }

    #[test]
    fn token_comparison() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "abcd"));
    }
}
