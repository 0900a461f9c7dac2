//! The page layout and the small drawings every page uses. maud escapes
//! every interpolated string; nothing here builds HTML by hand.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};

pub fn page(title: &str, crumbs: &[(String, String)], body: Markup) -> Response {
    let doc = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · heapscope" }
                link rel="stylesheet" href="/assets/app.css";
                script src="/assets/app.js" defer {}
            }
            body {
                header.top {
                    a.brand href="/" { "heapscope" }
                    nav.crumbs {
                        @for (href, text) in crumbs {
                            span.sep { "›" }
                            a href=(href) { (text) }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    };
    let mut r = axum::response::Html(doc.into_string()).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

pub fn error_page(status: StatusCode, title: &str, why: &str) -> Response {
    let mut r = page(
        title,
        &[],
        html! {
            p.error { (why) }
            p { a href="/" { "All processes" } }
        },
    );
    *r.status_mut() = status;
    r
}

pub fn bytes(n: i64) -> String {
    heapscope_report::human_bytes(n.max(0) as u64)
}

pub fn count(n: i64) -> String {
    heapscope_report::thousands(n.max(0) as u64)
}

pub fn time(t: Option<i64>) -> String {
    match t.and_then(|t| chrono::DateTime::from_timestamp(t, 0)) {
        Some(d) => d.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        None => "—".into(),
    }
}

/// A small line of values, as inline SVG (no script, no external file).
pub fn sparkline(values: &[f64], class: &str) -> Markup {
    let (w, h) = (120.0, 24.0);
    if values.len() < 2 {
        return html! { span.muted { "—" } };
    }
    let (lo, hi) = values
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let span = if hi > lo { hi - lo } else { 1.0 };
    let n = values.len() as f64 - 1.0;
    let points: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            format!(
                "{:.1},{:.1}",
                i as f64 / n * w,
                h - 2.0 - (v - lo) / span * (h - 4.0)
            )
        })
        .collect();
    html! {
        svg.spark class=(class) width=(w) height=(h) viewBox=(format!("0 0 {w} {h}")) role="img" {
            polyline points=(points.join(" ")) {}
        }
    }
}

/// One series of a [`chart`].
pub struct Line<'a> {
    pub name: &'a str,
    pub class: &'a str,
    pub points: Vec<(f64, f64)>,
    /// Formats a value for the axis.
    pub format: fn(f64) -> String,
}

/// A chart of up to two series over time, each on its own scale (left and
/// right axis), as inline SVG.
pub fn chart(title: &str, lines: &[Line<'_>]) -> Markup {
    let (w, h, pad_l, pad_r, pad_y) = (720.0, 220.0, 70.0, 70.0, 20.0);
    let xs: Vec<f64> = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.0))
        .collect();
    if xs.len() < 2 {
        return html! { p.muted { (title) ": not enough points to draw." } };
    }
    let (x0, x1) = xs
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
    let xspan = if x1 > x0 { x1 - x0 } else { 1.0 };
    let plot_w = w - pad_l - pad_r;
    let plot_h = h - 2.0 * pad_y;
    html! {
        figure.chart {
            figcaption { (title) }
            svg width=(w) height=(h) viewBox=(format!("0 0 {w} {h}")) role="img" {
                rect.frame x=(pad_l) y=(pad_y) width=(plot_w) height=(plot_h) {}
                // x is a Unix time when it looks like one (else an index).
                @if x0 > 1.0e8 {
                    text.axis x=(pad_l) y=(h - 4.0) text-anchor="start" { (time(Some(x0 as i64))) }
                    text.axis x=(w - pad_r) y=(h - 4.0) text-anchor="end" { (time(Some(x1 as i64))) }
                }
                @for (i, l) in lines.iter().enumerate().take(2) {
                    @let ys: Vec<f64> = l.points.iter().map(|p| p.1).collect();
                    @let lo = ys.iter().cloned().fold(f64::MAX, f64::min).min(0.0_f64.max(ys.iter().cloned().fold(f64::MAX, f64::min)));
                    @let hi = ys.iter().cloned().fold(f64::MIN, f64::max);
                    @let yspan = if hi > lo { hi - lo } else { 1.0 };
                    @let pts: Vec<String> = l.points.iter().map(|(x, y)| format!("{:.1},{:.1}", pad_l + (x - x0) / xspan * plot_w, pad_y + plot_h - (y - lo) / yspan * plot_h)).collect();
                    polyline class=(l.class) points=(pts.join(" ")) {}
                    @for (x, y) in &l.points {
                        circle class=(l.class) r="2.5" cx=(format!("{:.1}", pad_l + (x - x0) / xspan * plot_w)) cy=(format!("{:.1}", pad_y + plot_h - (y - lo) / yspan * plot_h)) {}
                    }
                    @let ax = if i == 0 { pad_l - 6.0 } else { w - pad_r + 6.0 };
                    @let anchor = if i == 0 { "end" } else { "start" };
                    text class=(l.class) x=(ax) y=(pad_y + 4.0) text-anchor=(anchor) { ((l.format)(hi)) }
                    text class=(l.class) x=(ax) y=(pad_y + plot_h) text-anchor=(anchor) { ((l.format)(lo)) }
                }
            }
            p.legend {
                @for l in lines.iter().take(2) {
                    span class=(format!("key {}", l.class)) { "■ " (l.name) } " "
                }
            }
        }
    }
}

/// Page links: `base` already has its query; `page` is 0-based.
pub fn pager(base: &str, page: i64, per_page: i64, total: i64) -> Markup {
    let pages = (total + per_page - 1) / per_page;
    let sep = if base.contains('?') { '&' } else { '?' };
    html! {
        @if pages > 1 {
            nav.pager {
                @if page > 0 {
                    a href=(format!("{base}{sep}page={}", page - 1)) rel="prev" { "‹ previous" }
                }
                span { "page " (page + 1) " of " (pages) " (" (count(total)) " rows)" }
                @if page + 1 < pages {
                    a href=(format!("{base}{sep}page={}", page + 1)) rel="next" { "next ›" }
                }
            }
        } @else {
            p.muted { (count(total)) " rows" }
        }
    }
}

/// A link to an object page.
pub fn object_link(dump_id: i64, address: &str) -> String {
    format!("/dump/{dump_id}/object/{address}")
}

/// An object as `Class (TYPE) location`, linked to its page.
pub fn object_ref(dump_id: i64, o: &serde_json::Value) -> Markup {
    let address = o["address"].as_str().unwrap_or("");
    let class = o["class"].as_str().or(o["type"].as_str()).unwrap_or("?");
    html! {
        a.obj href=(object_link(dump_id, address)) {
            span.class { (class) }
            @if let Some(n) = o["name"].as_str() { " " span.name { (n) } }
            " " span.addr { (address) }
        }
        @if let Some(l) = o["location"].as_str() { " " span.loc { (l) } }
    }
}

/// A root path (`{root, steps: [...]}` as the JSON reports give it), each
/// step linked to its object.
pub fn path(dump_id: i64, p: &serde_json::Value) -> Markup {
    html! {
        ol.path {
            @let root = p["root"].as_str().unwrap_or("?");
            @let roots = p["roots"].as_array().map(|r| r.iter().filter_map(|c| c.as_str()).collect::<Vec<_>>().join(", "));
            li.root { "root: " (roots.unwrap_or_else(|| root.to_string()))
                // Stale only when no precise root holds it too (those come first).
                @if p["conservative"].as_bool() == Some(true) && root == "machine_context" { span.muted { " (found on a C stack: may be stale)" } }
            }
            @for (i, s) in p["steps"].as_array().map(Vec::as_slice).unwrap_or(&[]).iter().enumerate() {
                @if p["elided_after"].as_u64() == Some(i as u64) && p["elided"].as_u64().unwrap_or(0) > 0 {
                    li.elided { "… " (p["elided"]) " steps left out …" }
                }
                li {
                    (object_ref(dump_id, s))
                    @if let Some(h) = s["held_as"].as_str() { " " span.held { "held as " (h) } }
                }
            }
        }
    }
}
