//! Version-dependent graph rules on small hand-written dumps (the real
//! dumps are in `crates/cli/tests/versions_graph.rs`): hidden IMEMO edges
//! before Ruby 3.2, WeakKeyMap values, free slots, root coverage and
//! precise roots first.

use std::io::Cursor;

use heapscope_graph::{shortest_paths, Dominators, Graph, GraphOptions, RootCoverage};
use heapscope_heap::Heap;
use heapscope_reader::{read_input, Dump, Input, ReadOptions};

fn read(text: &str) -> Dump {
    let bytes = text.as_bytes().to_vec();
    let len = bytes.len() as u64;
    let input = Input::from_reader("mem".into(), Box::new(Cursor::new(bytes)), Some(len)).unwrap();
    let opts = ReadOptions {
        references: true,
        threads: 1,
        ..ReadOptions::default()
    };
    read_input(input, &opts).unwrap()
}

fn graph(heap: &Heap) -> Graph<'_> {
    Graph::new(heap, GraphOptions::default())
}

fn id(heap: &Heap, address: u64) -> u32 {
    heap.find(address).unwrap()
}

/// A constant cache held by a method's iseq; the cache's value only in its
/// `class`, as Ruby 3.1 writes it. `extra` is added to every object record.
fn cache_dump(extra: &str) -> String {
    format!(
        r#"{{"type":"ROOT", "root":"vm", "references":["0x1000"]}}
{{"address":"0x1000", "type":"IMEMO", "class":"0x9000", "imemo_type":"iseq", "references":["0x1028", "0x1050"]{extra}}}
{{"address":"0x1028", "type":"IMEMO", "class":"0x1078", "imemo_type":"constcache"{extra}}}
{{"address":"0x1050", "type":"IMEMO", "class":"0x10a0", "imemo_type":"callcache"{extra}}}
{{"address":"0x1078", "type":"ARRAY", "class":"0x10c8", "length":0, "memsize":4000{extra}}}
{{"address":"0x10a0", "type":"CLASS", "name":"Cached"{extra}}}
{{"address":"0x10c8", "type":"CLASS", "name":"Array"{extra}}}
"#
    )
}

#[test]
fn before_3_2_a_constant_cache_holds_its_value_through_its_class() {
    let d = read(&cache_dump(""));
    let h = &d.heap;
    let g = graph(h);
    let (iseq, cache, callcache, value) =
        (id(h, 0x1000), id(h, 0x1028), id(h, 0x1050), id(h, 0x1078));
    assert_eq!(
        h.imemo_klass.len(),
        1,
        "only the constcache's class is an edge"
    );
    assert_eq!(g.succs(cache), vec![value]);
    assert!(g.succs(callcache).is_empty(), "a callcache's klass is weak");
    assert!(g.succs(iseq).contains(&cache));
    assert!(g.implicit_edge_label(cache).contains("constant value"));
    let dom = Dominators::compute(&g);
    assert!(dom.is_reachable(value));
    assert_eq!(dom.idom(value), Some(cache));
    let paths = shortest_paths(&g, value, 1);
    assert_eq!(paths[0].nodes, vec![iseq, cache, value]);
    // The class Cached is reached by nothing: a callcache holds it weakly.
    assert!(!dom.is_reachable(id(h, 0x10a0)));
}

#[test]
fn from_3_2_imemos_have_no_hidden_edge() {
    // Ruby 3.2+ records carry shape_id/slot_size; an IMEMO `class` there
    // (4.0's `fields` owner, or anything) is not a klass-word edge.
    let d = read(&cache_dump(r#", "shape_id":0, "slot_size":40"#));
    let h = &d.heap;
    let g = graph(h);
    assert!(h.imemo_klass.is_empty());
    assert!(g.succs(id(h, 0x1028)).is_empty());
    assert!(!Dominators::compute(&g).is_reachable(id(h, 0x1078)));
}

#[test]
fn weak_key_map_values_are_edges_weak_map_entries_are_not() {
    let d = read(
        r#"{"type":"ROOT", "root":"global_tbl", "references":["0x1000", "0x1028"]}
{"address":"0x1000", "type":"DATA", "struct":"weakkeymap", "references":["0x1050"]}
{"address":"0x1028", "type":"DATA", "struct":"weakmap", "references":["0x1078"]}
{"address":"0x1050", "type":"STRING", "memsize":100}
{"address":"0x1078", "type":"STRING", "memsize":100}
"#,
    );
    let h = &d.heap;
    let g = graph(h);
    assert!(!g.is_weak_container(id(h, 0x1000)));
    assert!(g.is_weak_container(id(h, 0x1028)));
    let dom = Dominators::compute(&g);
    assert!(dom.is_reachable(id(h, 0x1050)));
    assert_eq!(dom.idom(id(h, 0x1050)), Some(id(h, 0x1000)));
    assert!(!dom.is_reachable(id(h, 0x1078)));
}

#[test]
fn free_slots_are_counted_not_kept() {
    let d = read(
        r#"{"type":"ROOT", "root":"vm", "references":["0x1000"]}
{"address":"0x1000", "type":"STRING", "memsize":40}
{"address":"0x1028", "type":"NONE", "class":"0x1050"}
{"address":"0x1050", "type":"NONE"}
{"address":"0x1078", "type":"NONE", "shape_id":0, "slot_size":40}
"#,
    );
    assert_eq!(d.heap.len(), 1);
    assert_eq!(d.heap.facts.free_slots, 3);
    assert_eq!(d.diagnostics.free_slots, 3);
    assert!(d.heap.classes.is_empty(), "a free-list pointer is no class");
}

#[test]
fn root_coverage_and_class_records_by_dump() {
    let since = read(
        r#"{"address":"0x1000", "type":"STRING", "class":"0x9000", "memsize":40}
"#,
    );
    assert_eq!(graph(&since.heap).root_coverage(), RootCoverage::Missing);
    assert!(since.diagnostics.since_dump());
    assert_eq!(
        since.heap.class_display(since.heap.class[0]),
        "(unknown class 0x9000)"
    );
    assert!(since
        .diagnostics
        .structure_warnings("x")
        .iter()
        .any(|w| w.contains("no CLASS records")));

    let new = read(
        r#"{"type":"ROOT", "root":"vm", "references":["0x1000"]}
{"address":"0x1000", "type":"CLASS", "name":"Foo"}
"#,
    );
    assert_eq!(graph(&new.heap).root_coverage(), RootCoverage::NoFinalizers);
    assert!(!new.diagnostics.since_dump());
    let old = read(
        r#"{"type":"ROOT", "root":"vm", "references":["0x1000"]}
{"type":"ROOT", "root":"finalizers", "references":["0x1000"]}
{"address":"0x1000", "type":"CLASS", "name":"Foo"}
"#,
    );
    assert_eq!(graph(&old.heap).root_coverage(), RootCoverage::Complete);
    assert!(RootCoverage::Complete
        .unreachable_meaning(false)
        .unwrap()
        .contains("the next GC frees it"));
    assert!(RootCoverage::NoFinalizers
        .unreachable_meaning(true)
        .unwrap()
        .contains("does not prove"));
    assert!(RootCoverage::Missing.unreachable_meaning(true).is_none());
}

#[test]
fn a_precise_path_comes_before_a_shorter_conservative_one() {
    // machine_context -> T directly; vm -> A -> B -> T.
    let d = read(
        r#"{"type":"ROOT", "root":"vm", "references":["0x1000"]}
{"type":"ROOT", "root":"machine_context", "references":["0x1078"]}
{"address":"0x1000", "type":"ARRAY", "references":["0x1028"]}
{"address":"0x1028", "type":"ARRAY", "references":["0x1050"]}
{"address":"0x1050", "type":"STRING"}
{"address":"0x1078", "type":"ARRAY", "references":["0x1050"]}
"#,
    );
    let h = &d.heap;
    let g = graph(h);
    let t = id(h, 0x1050);
    let one = shortest_paths(&g, t, 1);
    assert_eq!(one[0].nodes, vec![id(h, 0x1000), id(h, 0x1028), t]);
    let all = shortest_paths(&g, t, 5);
    assert_eq!(all.len(), 2);
    assert_eq!(all[1].nodes, vec![id(h, 0x1078), t]);
    // Only a conservative root reaches it: that path is shown.
    let only = shortest_paths(&g, id(h, 0x1078), 1);
    assert_eq!(only[0].nodes, vec![id(h, 0x1078)]);
}
