//! Pages drawn from the store alone: processes, a process, a dump, a
//! profile, and the flame graphs. None of them reads a dump file.

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use heapscope_store::{DumpInfo, RowOrder};
use maud::{html, Markup};
use serde_json::Value as Json;

use crate::html::{self, bytes, count, time};
use crate::{missing, with_store, Shared};

/// Query parameters, with repeated keys kept.
pub(crate) fn params(q: &Option<String>) -> Vec<(String, String)> {
    q.as_deref()
        .map(|q| {
            form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn param<'a>(p: &'a [(String, String)], key: &str) -> Option<&'a str> {
    p.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// An id from the URL: anything but a number is a 404.
pub(crate) fn id_of(text: &str) -> Result<i64, Response> {
    text.parse::<i64>()
        .ok()
        .filter(|&i| i > 0)
        .ok_or_else(|| missing("No such id."))
}

pub async fn processes(State(app): State<Shared>) -> Result<Response, Response> {
    let (procs, sparks, profiles, dumps) = with_store(&app, |s| {
        let procs = s.processes()?;
        let mut by_process = s.heap_bytes_by_process()?;
        let sparks: Vec<Vec<f64>> = procs
            .iter()
            .map(|p| by_process.remove(&p.id).unwrap_or_default())
            .collect();
        let dumps = sparks.iter().map(Vec::len).sum::<usize>();
        let profiles = s.profiles(None)?;
        Ok((procs, sparks, profiles, dumps))
    })
    .await?;
    let body = html! {
        @if procs.is_empty() {
            p { "The store is empty. Import dumps with " code { "heapscope import PATH" } " or give them to " code { "heapscope serve PATH" } "." }
        } @else {
            p.muted { (plural(procs.len(), "process", "processes")) ", " (plural(dumps, "dump", "dumps")) "." }
            table.data #processes {
                thead { tr { th { "Process" } th.num { "Dumps" } th { "First" } th { "Last" } th { "Heap bytes per dump" } th { "Verdict" } } }
                tbody {
                    @for (p, spark) in procs.iter().zip(&sparks) {
                        tr {
                            td { a href=(format!("/process/{}", p.id)) { (p.label) } }
                            td.num { (p.dumps) }
                            td { (time(p.first_time)) }
                            td { (time(p.last_time)) }
                            td { (html::sparkline(spark, "heap")) }
                            td { (verdict(p.verdict.as_deref())) }
                        }
                    }
                }
            }
        }
        @if !profiles.is_empty() {
            h2 { "Profiles" }
            ul {
                @for p in &profiles {
                    li { a href=(format!("/profile/{}", p.id)) { (p.file_name) } " " span.muted { "imported " (time(Some(p.imported_at))) } }
                }
            }
        }
    };
    Ok(html::page("Processes", &[], body))
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{} {}", count(n as i64), if n == 1 { one } else { many })
}

fn verdict(v: Option<&str>) -> Markup {
    let v = v.unwrap_or("no dumps");
    let class = match v {
        "leak" => "verdict leak",
        "no leak" => "verdict ok",
        _ => "verdict unknown",
    };
    html! { span class=(class) { (v) } }
}

fn fmt_bytes(v: f64) -> String {
    bytes(v as i64)
}

fn fmt_count(v: f64) -> String {
    count(v as i64)
}

pub async fn process(
    State(app): State<Shared>,
    Path(id): Path<String>,
) -> Result<Response, Response> {
    let id = id_of(&id)?;
    let (proc_, dumps, report, series, profiles) = with_store(&app, move |s| {
        Ok((
            s.process(id)?,
            s.dumps_of(id)?,
            s.leak_report(id)?,
            s.series_of(id)?,
            s.profiles(Some(id))?,
        ))
    })
    .await?;
    let Some(p) = proc_ else {
        return Err(missing("No process has this id."));
    };
    let last = dumps.last().map(|d| d.id).unwrap_or(0);
    let heap_lines = vec![
        html::Line {
            name: "heap bytes",
            class: "s1",
            points: dumps
                .iter()
                .enumerate()
                .map(|(i, d)| (d.taken_at.map_or(i as f64, |t| t as f64), d.bytes as f64))
                .collect(),
            format: fmt_bytes,
        },
        html::Line {
            name: "heap objects",
            class: "s2",
            points: dumps
                .iter()
                .enumerate()
                .map(|(i, d)| (d.taken_at.map_or(i as f64, |t| t as f64), d.objects as f64))
                .collect(),
            format: fmt_count,
        },
    ];
    let body = html! {
        p.muted { (plural(dumps.len(), "dump", "dumps")) " from " (time(p.first_time)) " to " (time(p.last_time)) ". Verdict: " (verdict(p.verdict.as_deref())) }
        (html::chart("Heap over time (each dump)", &heap_lines))
        @for s in &series {
            @let lines = vec![
                html::Line { name: "RSS", class: "s1", points: s.points.iter().filter_map(|(t, r, _)| r.map(|r| (*t, r as f64))).collect(), format: fmt_bytes },
                html::Line { name: "live objects", class: "s2", points: s.points.iter().filter_map(|(t, _, l)| l.map(|l| (*t, l as f64))).collect(), format: fmt_count },
            ];
            (html::chart(&format!("Memory over time: {} ({})", s.label, s.format), &lines))
        }
        @if let Some(r) = &report { (leak_report(last, r)) }
        h2 { "Dumps" }
        form.diff method="get" action="/diff" {
            table.data #dumps {
                thead { tr { th { "Diff" } th { "Dump" } th { "Taken" } th.num { "Objects" } th.num { "Bytes" } th { "Ruby" } } }
                tbody {
                    @for d in &dumps {
                        tr {
                            td { input type="checkbox" name="dump" value=(d.id) aria-label=(format!("select {}", d.file_name)); }
                            td { a href=(format!("/dump/{}", d.id)) { (d.file_name) } }
                            td { (time(d.taken_at)) " " span.muted { "(" (d.time_source) ")" } }
                            td.num { (count(d.objects)) }
                            td.num { (bytes(d.bytes)) }
                            td { (d.ruby.as_deref().unwrap_or("?")) }
                        }
                    }
                }
            }
            p { button type="submit" { "Diff the selected dumps" } " " span.muted { "2 or 3 dumps: objects in the later ones that the earliest did not have (with 3, those of the second still in the third)." } }
        }
        @if !profiles.is_empty() {
            h2 { "Profiles" }
            ul { @for pr in &profiles { li { a href=(format!("/profile/{}", pr.id)) { (pr.file_name) } } } }
        }
    };
    Ok(html::page(
        &p.label,
        &[(format!("/process/{}", p.id), p.label.clone())],
        body,
    ))
}

fn leak_report(last_dump: i64, r: &Json) -> Markup {
    let empty = Vec::new();
    let leaks = r["leaks"].as_array().unwrap_or(&empty);
    let caches = r["caches"].as_array().unwrap_or(&empty);
    let containers = r["containers"].as_array().unwrap_or(&empty);
    html! {
        h2 { "Leaks" }
        p {
            "Heap: " strong { (r["heap_verdict"].as_str().unwrap_or("?")) } ". "
            @if r["verdict"] == "cannot judge" {
                "At least " (r["dumps_needed"]) " dumps are needed to judge; this process has " (r["dumps"].as_array().map_or(0, Vec::len)) ". "
            }
            (count(r["survivors"].as_i64().unwrap_or(0))) " objects (" (bytes(r["survivor_bytes"].as_i64().unwrap_or(0))) ") that the first dump did not have survived in every later dump."
        }
        @for w in r["warnings"].as_array().unwrap_or(&empty) { p.warning { (w.as_str().unwrap_or("")) } }
        @if leaks.is_empty() {
            p.muted { "No site grows." }
        } @else {
            table.data #leaks {
                thead { tr { th.num { "#" } th { "Site" } th { "Verdict" } th { "Objects in each dump" } th.num { "Growth per dump" } th.num { "Bytes per hour" } th.num { "Survivors" } th { "Survivor's path, holder" } } }
                tbody {
                    @for s in leaks {
                        @let counts: Vec<f64> = s["counts"].as_array().unwrap_or(&empty).iter().filter_map(Json::as_f64).collect();
                        tr.leak {
                            td.num { (s["rank"]) }
                            td { span.class { (s["class"].as_str().unwrap_or(s["type"].as_str().unwrap_or("?"))) } " " span.loc { (s["location"].as_str().unwrap_or("(untraced)")) } }
                            td { span class=(format!("verdict {}", if s["verdict"] == "leak" { "leak" } else { "unknown" })) { (s["verdict"].as_str().unwrap_or("")) } }
                            td { (html::sparkline(&counts, "site")) }
                            td.num { (format!("{:+.1}", s["growth_per_dump"].as_f64().unwrap_or(0.0))) }
                            td.num { @match s["bytes_per_hour"].as_f64() { Some(b) => (bytes(b as i64)), None => "—" } }
                            td.num { (count(s["survivors"].as_i64().unwrap_or(0))) }
                            td {
                                @if s["path"].is_object() {
                                    @let steps = s["path"]["steps"].as_array().unwrap_or(&empty);
                                    @if let Some(survivor) = steps.last() {
                                        a.survivor href=(html::object_link(last_dump, survivor["address"].as_str().unwrap_or(""))) { "survivor " (survivor["address"].as_str().unwrap_or("")) }
                                    }
                                    @if let Some(c) = s["container"].as_str() {
                                        " held by " a.holder href=(html::object_link(last_dump, c)) { "container " (c) }
                                    }
                                    details { summary { "path from a root" } (html::path(last_dump, &s["path"])) }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if !containers.is_empty() {
            h3 { "Where they accumulate" }
            @for c in containers {
                div.container {
                    p { (html::object_ref(last_dump, c)) " holds leak sites " (c["site_ranks"].as_array().unwrap_or(&empty).iter().map(|r| format!("#{r}")).collect::<Vec<_>>().join(", ")) ", growing by " (format!("{:.1}", c["growth_per_dump"].as_f64().unwrap_or(0.0))) " objects per dump." }
                    details { summary { "path from a root" } (html::path(last_dump, &c["path"])) }
                }
            }
        }
        h3 { "Caches that levelled off" }
        @if caches.is_empty() {
            p.muted { "None." }
        } @else {
            table.data #caches {
                thead { tr { th { "Site" } th { "Objects per dump" } th.num { "Last" } } }
                tbody {
                    @for s in caches {
                        @let counts: Vec<f64> = s["counts"].as_array().unwrap_or(&empty).iter().filter_map(Json::as_f64).collect();
                        tr {
                            td { span.class { (s["class"].as_str().unwrap_or(s["type"].as_str().unwrap_or("?"))) } " " span.loc { (s["location"].as_str().unwrap_or("(untraced)")) } }
                            td { (html::sparkline(&counts, "site")) }
                            td.num { (count(counts.last().copied().unwrap_or(0.0) as i64)) }
                        }
                    }
                }
            }
        }
    }
}

/// The dump page's tabs: the groupings, then the graph views.
const TABS: &[(&str, &str)] = &[
    ("type", "Type"),
    ("class", "Class"),
    ("location", "Location"),
    ("file", "File"),
    ("gem", "Gem"),
    ("generation", "Generation"),
    ("string", "Strings"),
    ("retained", "Retainers"),
    ("suspects", "Suspects"),
    ("dominators", "Dominator tree"),
    ("flame", "Flame graph"),
];

const PER_PAGE: i64 = 50;

pub async fn dump(
    State(app): State<Shared>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, Response> {
    let id = id_of(&id)?;
    let p = params(&q);
    let tab = param(&p, "tab")
        .filter(|t| TABS.iter().any(|(k, _)| k == t))
        .unwrap_or("type")
        .to_string();
    let filter = param(&p, "q")
        .unwrap_or("")
        .chars()
        // PostgreSQL refuses NUL in text.
        .filter(|&c| c != '\0')
        .take(200)
        .collect::<String>();
    let sort = match param(&p, "sort") {
        Some("count") => RowOrder::Count,
        Some("key") => RowOrder::Key,
        _ if tab == "generation" => RowOrder::Key,
        _ => RowOrder::Bytes,
    };
    let page: i64 = param(&p, "page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
        .clamp(0, 1 << 30);
    let tab2 = tab.clone();
    let filter2 = filter.clone();
    let (info, process, rows, doc) = with_store(&app, move |s| {
        let info = s.dump(id)?;
        let Some(d) = &info else {
            return Ok((None, None, None, None));
        };
        let process = s.process(d.process_id)?;
        let rows = if heapscope_store::import::DIMENSIONS
            .iter()
            .any(|(k, _)| *k == tab2)
        {
            if tab2 == "generation" && sort == RowOrder::Key {
                Some(generation_rows(s, id, &filter2, page * PER_PAGE, PER_PAGE)?)
            } else {
                Some(s.rows(id, &tab2, &filter2, sort, page * PER_PAGE, PER_PAGE)?)
            }
        } else {
            None
        };
        let doc = match tab2.as_str() {
            "retained" => {
                let by = ["retained", "retained_class", "retained_location"];
                let mut docs = Vec::new();
                for k in by {
                    docs.push(
                        s.doc(id, k)?
                            .and_then(|t| serde_json::from_str::<Json>(&t).ok()),
                    );
                }
                Some(Json::Array(
                    docs.into_iter().map(|d| d.unwrap_or(Json::Null)).collect(),
                ))
            }
            "suspects" => s
                .doc(id, "suspects")?
                .and_then(|t| serde_json::from_str(&t).ok()),
            // Only the depth, to size the graph's box.
            "flame" => s.doc(id, "folded")?.map(|t| {
                let depth = t
                    .lines()
                    .map(|l| l.bytes().filter(|&b| b == b';').count() + 1)
                    .max()
                    .unwrap_or(0);
                Json::from(depth)
            }),
            _ => None,
        };
        Ok((info, process, rows, doc))
    })
    .await?;
    let Some(d) = info else {
        return Err(missing("No dump has this id."));
    };
    let crumbs = vec![
        (
            format!("/process/{}", d.process_id),
            process.map(|p| p.label).unwrap_or_default(),
        ),
        (format!("/dump/{}", d.id), d.file_name.clone()),
    ];
    let base = format!("/dump/{}?tab={tab}", d.id);
    let body = html! {
        (dump_header(&d))
        nav.tabs {
            @for (k, label) in TABS {
                a class=(if *k == tab { "tab current" } else { "tab" }) href=(format!("/dump/{}?tab={k}", d.id)) { (label) }
            }
        }
        @if let Some((rows, total)) = &rows {
            @let total_groups = d.meta["row_counts"][tab.as_str()].as_i64().unwrap_or(*total);
            form.filter method="get" action=(format!("/dump/{}", d.id)) {
                input type="hidden" name="tab" value=(tab);
                input type="search" name="q" value=(filter) placeholder="filter (contains, any case)" aria-label="filter";
                button type="submit" { "Filter" }
            }
            @if total_groups > heapscope_store::import::MAX_ROWS as i64 {
                p.muted { "The largest " (count(heapscope_store::import::MAX_ROWS as i64)) " of " (count(total_groups)) " groups are kept." }
            }
            @let qf = if filter.is_empty() { String::new() } else { format!("&q={}", form_urlencoded::byte_serialize(filter.as_bytes()).collect::<String>()) };
            @let sort_name = match sort { RowOrder::Count => "count", RowOrder::Key => "key", RowOrder::Bytes => "bytes" };
            table.data #rows {
                thead { tr {
                    th { a href=(format!("{base}{qf}&sort=key")) { (TABS.iter().find(|t| t.0 == tab).map_or("", |t| t.1)) } }
                    th.num { a href=(format!("{base}{qf}&sort=count")) { "Objects" } }
                    th.num { a href=(format!("{base}{qf}&sort=bytes")) { "Bytes" } }
                    @if tab == "string" { th { "Allocated at" } }
                } }
                tbody {
                    @for r in rows {
                        tr {
                            td.key { @if r.key.is_empty() { span.muted { "(empty)" } } @else { (r.key) } }
                            td.num { (count(r.count)) }
                            td.num { (bytes(r.bytes)) }
                            @if tab == "string" {
                                td.sites { @for l in r.extra.as_ref().and_then(Json::as_array).map(Vec::as_slice).unwrap_or(&[]) { span.loc { (l[0].as_str().unwrap_or("")) " ×" (l[1]) } } }
                            }
                        }
                    }
                }
            }
            (html::pager(&format!("{base}{qf}&sort={sort_name}"), page, PER_PAGE, *total))
        }
        @if tab == "retained" { (retained_tab(d.id, doc.as_ref())) }
        @if tab == "suspects" { (suspects_tab(d.id, doc.as_ref())) }
        @if tab == "dominators" {
            p.muted { "The objects that keep the most memory alive, and what each alone keeps alive. Expanding a node reads the dump file (the first time, this takes about as long as " code { "heapscope retained" } ")." }
            div #domtree data-dump=(d.id) {}
        }
        @if tab == "flame" {
            p.muted { "Each box is an object; its width is the memory it alone keeps alive." }
            (flame_object(&format!("/dump/{}/flame.svg", d.id), doc.as_ref().and_then(Json::as_u64).unwrap_or(0), "dominator flame graph"))
        }
    };
    Ok(html::page(&d.file_name, &crumbs, body))
}

/// The generation rows in numeric order, the keys that are not numbers
/// ("(none)", "untraced") first. `Store::rows` casts keys to integers for
/// this order, which PostgreSQL refuses for those keys; comparing lengths
/// first orders numbers without a cast, alike in both databases.
fn generation_rows(
    s: &mut heapscope_store::Store,
    dump_id: i64,
    filter: &str,
    offset: i64,
    limit: i64,
) -> Result<(Vec<heapscope_store::GroupRow>, i64), heapscope_store::DbError> {
    use heapscope_store::Value;
    // A dump has few generations: filter and page here.
    let params: Vec<Value> = vec![dump_id.into(), "generation".into()];
    let needle = filter.to_lowercase();
    let db = s.db();
    let rows = db.query(
        "SELECT key, count, bytes FROM dump_rows WHERE dump_id = ? AND dim = ? \
             ORDER BY CASE WHEN key IN ('(none)', 'untraced') THEN 0 ELSE 1 END, LENGTH(key), key",
        &params,
    )?;
    let all: Vec<heapscope_store::GroupRow> = rows
        .into_iter()
        .map(|r| {
            let mut it = r.into_iter();
            heapscope_store::GroupRow {
                key: it.next().and_then(Value::into_text).unwrap_or_default(),
                count: it.next().and_then(|v| v.int()).unwrap_or(0),
                bytes: it.next().and_then(|v| v.int()).unwrap_or(0),
                extra: None,
            }
        })
        .filter(|r| r.key.to_lowercase().contains(&needle))
        .collect();
    let total = all.len() as i64;
    let page = all
        .into_iter()
        .skip(offset.max(0) as usize)
        .take(limit.max(0) as usize)
        .collect();
    Ok((page, total))
}

fn dump_header(d: &DumpInfo) -> Markup {
    let t = &d.meta["totals"];
    let empty = Vec::new();
    html! {
        dl.facts {
            dt { "Objects" } dd { (count(d.objects)) }
            dt { "Bytes" } dd { (bytes(d.bytes)) }
            dt { "Reachable" } dd { (count(t["reachable_objects"].as_i64().unwrap_or(0))) " objects, " (bytes(t["reachable_bytes"].as_i64().unwrap_or(0))) }
            dt { "Taken" } dd { (time(d.taken_at)) " (" (d.time_source) ")" }
            dt { "Ruby" } dd { (d.ruby.as_deref().unwrap_or("?")) }
            dt { "Allocation tracing" } dd { @if d.traced_objects > 0 { (count(d.traced_objects)) " objects traced" } @else { "off (no file, line or generation)" } }
            dt { "File" } dd { code { (d.path) } " (" (bytes(d.file_size)) ")" }
        }
        @for w in d.meta["warnings"].as_array().unwrap_or(&empty) { p.warning { (w.as_str().unwrap_or("")) } }
        @if d.meta["diagnostics"]["malformed_lines"].as_i64().unwrap_or(0) > 0 {
            p.warning { (d.meta["diagnostics"]["malformed_lines"]) " malformed lines were skipped." }
        }
    }
}

fn retained_tab(dump_id: i64, doc: Option<&Json>) -> Markup {
    let empty = Vec::new();
    let docs = doc.and_then(Json::as_array).unwrap_or(&empty);
    let objects = docs.first().cloned().unwrap_or(Json::Null);
    html! {
        h2 { "Objects that keep the most memory alive" }
        table.data #retained {
            thead { tr { th { "Object" } th.num { "Shallow" } th.num { "Retained" } } }
            tbody {
                @for o in objects["rows"].as_array().unwrap_or(&empty) {
                    tr { td { (html::object_ref(dump_id, o)) } td.num { (bytes(o["shallow_bytes"].as_i64().unwrap_or(0))) } td.num { (bytes(o["retained_bytes"].as_i64().unwrap_or(0))) } }
                }
            }
        }
        @for (i, title) in [(1, "By class"), (2, "By allocation site")] {
            @if let Some(g) = docs.get(i) {
                h2 { (title) }
                table.data {
                    thead { tr { th { "Group" } th.num { "Objects" } th.num { "Retained" } } }
                    tbody {
                        @for r in g["rows"].as_array().unwrap_or(&empty) {
                            tr {
                                td.key { (r.get("class").or(r.get("location")).and_then(Json::as_str).unwrap_or("(none)")) }
                                td.num { (count(r["count"].as_i64().unwrap_or(0))) }
                                td.num { (bytes(r["retained_bytes"].as_i64().unwrap_or(0))) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn suspects_tab(dump_id: i64, doc: Option<&Json>) -> Markup {
    let empty = Vec::new();
    let Some(d) = doc else {
        return html! { p.muted { "No suspects were stored." } };
    };
    let suspects = d["suspects"].as_array().unwrap_or(&empty);
    html! {
        @if suspects.is_empty() { p { "No object or group keeps more than " (format!("{:.0}%", d["threshold"].as_f64().unwrap_or(0.1) * 100.0)) " of the reachable heap alive." } }
        @for (i, s) in suspects.iter().enumerate() {
            section.suspect {
                h3 { "Suspect " (i + 1) ": " (s["kind"].as_str().unwrap_or("")) " " span.key { (s["key"].as_str().unwrap_or("")) } }
                p { "Keeps " strong { (bytes(s["retained_bytes"].as_i64().unwrap_or(0))) } " (" (format!("{:.1}%", s["share"].as_f64().unwrap_or(0.0) * 100.0)) " of the reachable heap) alive, in " (count(s["count"].as_i64().unwrap_or(0))) " objects." }
                p { "Accumulates in " (html::object_ref(dump_id, &s["accumulation"])) }
                @if s["path"].is_object() { details open { summary { "path from a root" } (html::path(dump_id, &s["path"])) } }
                @if let Some(c) = s["container"].as_str() { p { "Held with other suspects by " a href=(html::object_link(dump_id, c)) { (c) } } }
                table.data {
                    thead { tr { th { "It holds (class)" } th.num { "Bytes" } } }
                    tbody { @for h in s["holds"]["classes"].as_array().unwrap_or(&empty) { tr { td { (h["class"].as_str().unwrap_or("")) } td.num { (bytes(h["bytes"].as_i64().unwrap_or(0))) } } } }
                }
            }
        }
    }
}

/// The box showing a flame graph SVG, as tall as inferno draws a graph of
/// `depth` frames (16 px each, title and footer, the "all" frame; a little
/// more, as the box is a bit wider than the 1200 px drawing).
fn flame_object(src: &str, depth: u64, label: &str) -> Markup {
    let height = ((depth + 1) * 16 + 90) * 11 / 10;
    html! {
        // An attribute, not a style: the policy allows no inline styles.
        object.flame data=(src) type="image/svg+xml" aria-label=(label) height=(height) {}
    }
}

/// An SVG response: its own document, shown in an `<object>`, so that
/// inferno's script runs there and never in the page.
pub(crate) fn svg_response(svg: Vec<u8>) -> Response {
    let mut r = svg.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("image/svg+xml"),
    );
    // inferno's SVG carries its own script and style (search, zoom; search
    // asks with prompt()). It is shown in the UI's own pages only, and
    // sandboxed: an opaque origin, so even a frame name that escaped
    // escaping could not reach the UI or its cookie.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
             frame-ancestors 'self'; sandbox allow-scripts allow-modals",
        ),
    );
    h.insert(
        header::X_FRAME_OPTIONS,
        HeaderValue::from_static("SAMEORIGIN"),
    );
    r
}

pub async fn dump_flame(
    State(app): State<Shared>,
    Path(id): Path<String>,
) -> Result<Response, Response> {
    let id = id_of(&id)?;
    let folded = with_store(&app, move |s| s.doc(id, "folded")).await?;
    let Some(text) = folded else {
        return Err(missing("No dump has this id."));
    };
    let lines = text
        .lines()
        .filter_map(|l| {
            let (stack, n) = l.rsplit_once(' ')?;
            Some((stack.to_string(), n.parse().ok()?))
        })
        .collect();
    let folded = heapscope_export::flame::Folded { lines };
    let mut svg = Vec::new();
    if folded.lines.is_empty() {
        return Ok(svg_response(
            b"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"400\" height=\"30\"><text x=\"4\" y=\"20\">no reachable objects</text></svg>".to_vec(),
        ));
    }
    folded
        .write_svg("Retained memory (dominator tree)", &mut svg)
        .map_err(|e| crate::internal(&e.to_string()))?;
    Ok(svg_response(svg))
}

pub async fn profile(
    State(app): State<Shared>,
    Path(id): Path<String>,
) -> Result<Response, Response> {
    let id = id_of(&id)?;
    let found = with_store(&app, move |s| s.profile(id)).await?;
    let Some((info, summary)) = found else {
        return Err(missing("No profile has this id."));
    };
    let empty = Vec::new();
    let types = summary["sample_types"].as_array().unwrap_or(&empty);
    let shown = summary["shown"].as_u64().unwrap_or(0) as usize;
    let body = html! {
        p.muted { (summary["samples"]) " samples; " code { (info.path) } }
        @for c in summary["comments"].as_array().unwrap_or(&empty) { p.comment { (c.as_str().unwrap_or("")) } }
        @let depth = summary["folded"].as_array().unwrap_or(&empty).iter().filter_map(|l| l[0].as_str()).map(|st| st.matches(';').count() + 1).max().unwrap_or(0);
        (flame_object(&format!("/profile/{}/flame.svg", info.id), depth as u64, "profile flame graph"))
        h2 { "Top sites" }
        table.data #sites {
            thead { tr { th { "Frame" } @for t in types { th.num { (t["type"].as_str().unwrap_or("")) " (" (t["unit"].as_str().unwrap_or("")) ")" } } } }
            tbody {
                @for s in summary["sites"].as_array().unwrap_or(&empty) {
                    tr {
                        td.key { (s["frame"].as_str().unwrap_or("")) }
                        @for (i, v) in s["values"].as_array().unwrap_or(&empty).iter().enumerate() {
                            @let n = v.as_i64().unwrap_or(0);
                            @let unit = types.get(i).and_then(|t| t["unit"].as_str()).unwrap_or("");
                            td.num class=(if i == shown { "shown" } else { "" }) { @if unit == "bytes" { (bytes(n)) } @else { (count(n)) } }
                        }
                    }
                }
            }
        }
    };
    Ok(html::page(
        &info.file_name,
        &[(format!("/profile/{}", info.id), info.file_name.clone())],
        body,
    ))
}

pub async fn profile_flame(
    State(app): State<Shared>,
    Path(id): Path<String>,
) -> Result<Response, Response> {
    let id = id_of(&id)?;
    let found = with_store(&app, move |s| s.profile(id)).await?;
    let Some((_, summary)) = found else {
        return Err(missing("No profile has this id."));
    };
    let empty = Vec::new();
    let lines: Vec<String> = summary["folded"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .filter_map(|l| {
            // Folded stacks separate frames with ';': a frame's own ';' would
            // split it, so it becomes ':'.
            let stack = l[0].as_str()?;
            Some(format!("{} {}", stack, l[1].as_i64()?))
        })
        .collect();
    if lines.is_empty() {
        return Ok(svg_response(
            b"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"400\" height=\"30\"><text x=\"4\" y=\"20\">no samples</text></svg>".to_vec(),
        ));
    }
    let mut opts = inferno::flamegraph::Options::default();
    let shown = summary["shown"].as_u64().unwrap_or(0) as usize;
    let ty = &summary["sample_types"][shown];
    opts.title = format!(
        "{} ({})",
        ty["type"].as_str().unwrap_or("samples"),
        ty["unit"].as_str().unwrap_or("")
    );
    opts.count_name = ty["unit"].as_str().unwrap_or("samples").to_string();
    opts.text_truncate_direction = inferno::flamegraph::TextTruncateDirection::Right;
    let mut svg = Vec::new();
    inferno::flamegraph::from_lines(&mut opts, lines.iter().map(String::as_str), &mut svg)
        .map_err(|e| crate::internal(&e.to_string()))?;
    Ok(svg_response(svg))
}

/// A status page for what an object page cannot show.
pub(crate) fn unavailable(title: &str, why: &str) -> Response {
    html::error_page(StatusCode::CONFLICT, title, why)
}
