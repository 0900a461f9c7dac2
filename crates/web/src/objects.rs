//! Pages that need a dump's objects: an object, the dominator explorer's
//! children, a diff. They read the dump file through the cache in
//! `heaps.rs`; an object page falls back to the `--objects` tables when the
//! file is gone or changed.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use heapscope_analysis::diff::{diff as diff_dumps, DiffOptions, IdentitySet};
use heapscope_analysis::group::{GroupKey, SortBy};
use heapscope_analysis::inspect::inspect;
use heapscope_analysis::paths::{dominator_chain, label_path, Labeler};
use heapscope_analysis::retained::describe;
use heapscope_analysis::summary::ObjectFilter;
use heapscope_graph::shortest_paths;
use heapscope_heap::FastMap;
use heapscope_report::inspect::{inspect_json, InspectReport, RawRecord};
use heapscope_report::path::labeled_path_json;
use heapscope_report::retained::object_json;
use heapscope_store::DumpInfo;
use maud::html;
use serde_json::{json, Value as Json};

use crate::heaps::Loaded;
use crate::html::{self, bytes, count};
use crate::pages::{id_of, param, params, unavailable};
use crate::{internal, missing, with_store, Shared};

/// Referrers and referents listed per page.
const NEIGHBOURS: usize = 50;
/// Children listed when a dominator-tree node is expanded.
const CHILDREN: usize = 30;
/// Rows of a diff unless `top=` says otherwise (`heapscope diff`'s default).
const DIFF_TOP: usize = 25;

fn parse_address(text: &str) -> Option<u64> {
    let t = text.trim();
    match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => t.parse().ok(),
    }
}

async fn dump_info(app: &Shared, id: i64) -> Result<DumpInfo, Response> {
    with_store(app, move |s| s.dump(id))
        .await?
        .ok_or_else(|| missing("No dump has this id."))
}

/// The process's name for the breadcrumbs ("process" if the store cannot say).
async fn process_label(app: &Shared, id: i64) -> String {
    with_store(app, move |s| s.process(id))
        .await
        .ok()
        .flatten()
        .map_or_else(|| "process".to_string(), |p| p.label)
}

/// Loads (or finds in memory) a dump, off the async threads.
async fn load(app: &Shared, info: DumpInfo) -> Result<Arc<Loaded>, String> {
    let app = app.clone();
    tokio::task::spawn_blocking(move || app.heaps.get(&info))
        .await
        .unwrap_or_else(|_| Err("loading the dump failed".into()))
}

pub async fn object(
    State(app): State<Shared>,
    Path((id, address)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Result<Response, Response> {
    let id = id_of(&id)?;
    let address = parse_address(&address).ok_or_else(|| missing("That is not an address."))?;
    let info = dump_info(&app, id).await?;
    let p = params(&q);
    let offset: usize = param(&p, "offset")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let crumbs = vec![
        (
            format!("/process/{}", info.process_id),
            process_label(&app, info.process_id).await,
        ),
        (format!("/dump/{}", info.id), info.file_name.clone()),
        (
            html::object_link(info.id, &format!("{address:#x}")),
            format!("{address:#x}"),
        ),
    ];
    match load(&app, info.clone()).await {
        Ok(loaded) => {
            let page = tokio::task::spawn_blocking(move || object_view(&loaded, address, offset))
                .await
                .map_err(|_| internal("the page's worker failed"))?;
            match page {
                Some((inspection, paths, chain)) => Ok(html::page(
                    &format!(
                        "{} {address:#x}",
                        inspection["class"]
                            .as_str()
                            .or(inspection["type"].as_str())
                            .unwrap_or("Object")
                    ),
                    &crumbs,
                    object_body(info.id, &inspection, &paths, &chain, offset),
                )),
                None => Err(missing(&format!(
                    "The dump {} has no object at {address:#x}.",
                    info.file_name
                ))),
            }
        }
        Err(why) if info.has_objects => {
            let id2 = info.id;
            let (record, out, inc) = with_store(&app, move |s| {
                Ok((
                    s.stored_object(id2, address)?,
                    s.stored_refs(id2, address, true, NEIGHBOURS as i64)?,
                    s.stored_refs(id2, address, false, NEIGHBOURS as i64)?,
                ))
            })
            .await?;
            let Some(record) = record else {
                return Err(missing(&format!(
                    "The dump {} has no object at {address:#x}.",
                    info.file_name
                )));
            };
            Ok(html::page(
                &format!("Object {address:#x}"),
                &crumbs,
                html! {
                    p.warning { (why) }
                    p.muted { "Shown from the store's object tables (imported with --objects): retained sizes and paths need the dump file." }
                    table.data.record { tbody { @for (k, v) in &record { tr { th { (k) } td { (v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())) } } } } }
                    h2 { "References" }
                    ul { @for a in &out { li { a href=(html::object_link(info.id, &format!("{a:#x}"))) { (format!("{a:#x}")) } } } }
                    h2 { "Referrers" }
                    ul { @for a in &inc { li { a href=(html::object_link(info.id, &format!("{a:#x}"))) { (format!("{a:#x}")) } } } }
                },
            ))
        }
        Err(why) => Err(unavailable(
            "The dump file is needed",
            &format!(
                "{why} Object pages read the dump file, or the store's object tables when the \
                 dump was imported with --objects (this one was not)."
            ),
        )),
    }
}

type ObjectView = (Json, Vec<Json>, Json);

fn object_view(loaded: &Loaded, address: u64, offset: usize) -> Option<ObjectView> {
    let dump = loaded.dump();
    let heap = &dump.heap;
    let id = heap.find(address)?;
    let graph = loaded.graph();
    let dom = loaded.dom();
    let labeler = Labeler::new(graph);
    let facts = FastMap::default();
    let inspection = inspect(&labeler, dom, id, offset, NEIGHBOURS, &facts);
    let record = RawRecord::Unavailable("not re-read by the web UI".into());
    let report = InspectReport {
        source: &dump.source,
        inspection: &inspection,
        record: &record,
    };
    let inspection = inspect_json(&report);
    let paths: Vec<Json> = shortest_paths(graph, id, 3)
        .iter()
        .map(|p| labeled_path_json(&label_path(&labeler, p, &facts, Some(15))))
        .collect();
    let (chain, _) = dominator_chain(graph, dom, id, Some(15));
    let chain = Json::Array(
        chain
            .iter()
            .map(|s| {
                json!({
                    "address": format!("{:#x}", s.object.address),
                    "type": s.object.type_name,
                    "class": s.object.class,
                    "name": s.object.name,
                    "location": s.object.location,
                    "shallow_bytes": s.shallow_bytes,
                    "retained_bytes": s.retained_bytes,
                })
            })
            .collect(),
    );
    Some((inspection, paths, chain))
}

fn object_body(
    dump_id: i64,
    o: &Json,
    paths: &[Json],
    chain: &Json,
    offset: usize,
) -> maud::Markup {
    let empty = Vec::new();
    let facts = [
        "type",
        "class",
        "name",
        "location",
        "method",
        "generation",
        "detail",
        "object_id",
        "shape_id",
    ];
    html! {
        dl.facts #record {
            @for k in facts {
                @if !o[k].is_null() {
                    dt { (k) } dd { (o[k].as_str().map(str::to_string).unwrap_or_else(|| o[k].to_string())) }
                }
            }
            @if let Some(flags) = o["flags"].as_array() {
                dt { "flags" } dd { (flags.iter().filter_map(Json::as_str).collect::<Vec<_>>().join(", ")) }
            }
            dt { "shallow size" } dd { (bytes(o["shallow_bytes"].as_i64().unwrap_or(0))) }
            dt { "retained size" } dd #retained-size { (bytes(o["retained_bytes"].as_i64().unwrap_or(0))) }
            dt { "reachable" } dd { (if o["reachable"].as_bool() == Some(true) { "yes" } else { "no: nothing keeps it alive" }) }
        }
        h2 { "Paths from roots" }
        @if paths.is_empty() { p.muted { "No root reaches it." } }
        @for p in paths { (html::path(dump_id, p)) }
        h2 { "Dominator chain" }
        p.muted { "Each object here alone keeps the next one alive; freeing any of them frees this one." }
        ol.chain #chain {
            @for s in chain.as_array().unwrap_or(&empty) {
                li { (html::object_ref(dump_id, s)) " " span.muted { "retains " (bytes(s["retained_bytes"].as_i64().unwrap_or(0))) } }
            }
        }
        @for (key, title) in [("referrers", "Referrers (what references it)"), ("referents", "Referents (what it references)")] {
            @let list = &o[key];
            h2 { (title) " — " (count(list["total"].as_i64().unwrap_or(0))) }
            ul.neighbours id=(key) {
                @for n in list["items"].as_array().unwrap_or(&empty) {
                    li { (html::object_ref(dump_id, n)) @if let Some(h) = n["held_as"].as_str() { " " span.held { (h) } } }
                }
            }
            @let total = list["total"].as_u64().unwrap_or(0) as usize;
            @if total > NEIGHBOURS {
                nav.pager {
                    @if offset > 0 { a href=(format!("?offset={}", offset.saturating_sub(NEIGHBOURS))) { "‹ previous" } }
                    span { (offset + 1) "–" ((offset + NEIGHBOURS).min(total)) " of " (count(total as i64)) }
                    @if offset + NEIGHBOURS < total { a href=(format!("?offset={}", offset + NEIGHBOURS)) { "next ›" } }
                }
            }
        }
    }
}

/// JSON for the dominator explorer: the largest children of a node
/// (`node=root` or an address).
pub async fn dominators(
    State(app): State<Shared>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, Response> {
    let id = id_of(&id)?;
    let info = dump_info(&app, id).await?;
    let p = params(&q);
    let node = param(&p, "node").unwrap_or("root").to_string();
    let json_error = |status: axum::http::StatusCode, why: String| {
        let mut r = json!({ "error": why }).to_string().into_response();
        *r.status_mut() = status;
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        r
    };
    let loaded = match load(&app, info.clone()).await {
        Ok(l) => l,
        Err(why) => return Err(json_error(axum::http::StatusCode::CONFLICT, why)),
    };
    let dump_id = info.id;
    let body = tokio::task::spawn_blocking(move || -> Result<Json, String> {
        let graph = loaded.graph();
        let dom = loaded.dom();
        let v = if node == "root" {
            dom.root()
        } else {
            let a = parse_address(&node).ok_or("not an address")?;
            loaded.dump().heap.find(a).ok_or("no object at this address")?
        };
        let mut kids: Vec<u32> = dom
            .children(v)
            .iter()
            .copied()
            .filter(|&c| !graph.is_agent(c))
            .collect();
        let total = kids.len();
        kids.sort_unstable_by_key(|&c| std::cmp::Reverse(dom.retained(c)));
        kids.truncate(CHILDREN);
        let rest: u64 = dom
            .children(v)
            .iter()
            .filter(|&&c| !graph.is_agent(c))
            .map(|&c| dom.retained(c))
            .sum::<u64>()
            .saturating_sub(kids.iter().map(|&c| dom.retained(c)).sum());
        Ok(json!({
            "node": node,
            "total_children": total,
            "rest_bytes": rest,
            "children": kids.iter().map(|&c| {
                let mut o = object_json(&describe(graph, dom, c));
                o["children"] = json!(dom.children(c).len());
                o["href"] = json!(html::object_link(dump_id, &format!("{:#x}", loaded.dump().heap.address[c as usize])));
                o["retained_text"] = json!(bytes(dom.retained(c) as i64));
                o
            }).collect::<Vec<_>>(),
        }))
    })
    .await
    .map_err(|_| internal("the request's worker failed"))?;
    match body {
        Ok(j) => {
            let mut r = j.to_string().into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            Ok(r)
        }
        Err(why) => Err(json_error(
            axum::http::StatusCode::NOT_FOUND,
            why.to_string(),
        )),
    }
}

/// `/diff?dump=A&dump=B[&dump=C]`: what `heapscope diff A B [C]` shows, by
/// type, class and location (`by=` to choose), as a page or `format=json`.
pub async fn diff(State(app): State<Shared>, RawQuery(q): RawQuery) -> Result<Response, Response> {
    let p = params(&q);
    let mut ids: Vec<i64> = p
        .iter()
        .filter(|(k, _)| k == "dump")
        .filter_map(|(_, v)| v.parse().ok())
        .collect();
    ids.dedup();
    if !(2..=3).contains(&ids.len()) {
        return Err(html::error_page(
            axum::http::StatusCode::BAD_REQUEST,
            "Pick 2 or 3 dumps",
            "A diff compares 2 dumps (objects in the second that the first did not have) or 3 \
             (those of the second still in the third). Tick them on a process page.",
        ));
    }
    let by_text = param(&p, "by").unwrap_or("type,class,location").to_string();
    let by: Vec<GroupKey> = by_text
        .split(',')
        .filter_map(|k| k.trim().parse::<GroupKey>().ok())
        .take(4)
        .collect();
    if by.is_empty() {
        return Err(html::error_page(
            axum::http::StatusCode::BAD_REQUEST,
            "Unknown grouping",
            "by= takes the keys of heapscope diff --by: type, class, location, file, method, \
             gem, generation, string.",
        ));
    }
    let as_json = param(&p, "format") == Some("json");
    // As `heapscope diff --top N` (0: all rows).
    let top: usize = param(&p, "top")
        .and_then(|v| v.parse().ok())
        .unwrap_or(DIFF_TOP);
    let mut infos = Vec::new();
    for &id in &ids {
        infos.push(dump_info(&app, id).await?);
    }
    // Oldest first, as the diff reads them.
    infos.sort_by_key(|d| (d.taken_at, d.id));
    let mut loaded = Vec::new();
    for info in &infos {
        match load(&app, info.clone()).await {
            Ok(l) => loaded.push(l),
            Err(why) => return Err(unavailable("The dump file is needed", &why)),
        }
    }
    let by2 = by.clone();
    let result = tokio::task::spawn_blocking(move || {
        let before = IdentitySet::of(&loaded[0].dump().heap, false, false);
        let later = loaded
            .get(2)
            .map(|l| IdentitySet::of(&l.dump().heap, false, false));
        let after = &loaded[1].dump();
        let d = diff_dumps(
            &before,
            &after.heap,
            later.as_ref(),
            &DiffOptions {
                by: by2,
                filter: ObjectFilter::default(),
                sort: SortBy::Memsize,
                top: (top > 0).then_some(top),
            },
        );
        let sources = heapscope_report::DiffSources {
            before: &loaded[0].dump().source,
            after: &after.source,
            later: loaded.get(2).map(|l| l.dump().source.as_str()),
        };
        heapscope_report::diff_json(&sources, &d, &[])
    })
    .await
    .map_err(|_| internal("the diff's worker failed"))?;
    if as_json {
        let mut r = result.to_string().into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        return Ok(r);
    }
    let empty = Vec::new();
    let rows = result["rows"].as_array().unwrap_or(&empty);
    let names: Vec<&str> = by.iter().map(|k| k.name()).collect();
    let t = &result["totals"];
    let body = html! {
        p { "Objects in " strong { (infos[1].file_name) } " that " strong { (infos[0].file_name) } " did not have"
            @if infos.len() == 3 { ", still in " strong { (infos[2].file_name) } } ": "
            (count(t["new_objects"].as_i64().unwrap_or(0))) " objects, " (bytes(t["new_memsize"].as_i64().unwrap_or(0))) "." }
        @for w in result["warnings"].as_array().unwrap_or(&empty) { p.warning { (w.as_str().unwrap_or("")) } }
        @let query = ids.iter().map(|i| format!("dump={i}")).collect::<Vec<_>>().join("&");
        p.muted {
            @let by_norm = names.join(",");
            "Grouped by " (by_norm) "; "
            @if top > 0 { "the " (top) " largest groups by bytes (" a href=(format!("/diff?{query}&by={by_norm}&top=0")) { "all" } "). " }
            @else { "all groups. " }
            a href=(format!("/diff?{query}&by={by_norm}&top={top}&format=json")) { "As JSON" } " (as " code { "heapscope diff --format json" } ")."
        }
        table.data #diff data-top=(top) {
            thead { tr { @for n in &names { th { (n) } } th.num { "Objects" } th.num { "Bytes" } } }
            tbody {
                @for r in rows {
                    @let key = names.iter().map(|n| r[*n].as_str().unwrap_or("")).collect::<Vec<_>>().join("\u{1f}");
                    tr data-key=(key) data-count=(r["count"].as_i64().unwrap_or(0)) data-bytes=(r["memsize"].as_i64().unwrap_or(0)) {
                        @for n in &names { td.key { (r[*n].as_str().map(str::to_string).unwrap_or_else(|| if r[*n].is_null() { "(none)".into() } else { r[*n].to_string() })) } }
                        td.num { (count(r["count"].as_i64().unwrap_or(0))) }
                        td.num { (bytes(r["memsize"].as_i64().unwrap_or(0))) }
                    }
                }
            }
        }
    };
    let label = process_label(&app, infos[0].process_id).await;
    Ok(html::page(
        "Diff",
        &[(format!("/process/{}", infos[0].process_id), label)],
        body,
    ))
}
