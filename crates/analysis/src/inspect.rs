//! Everything known about one object: its record's columns, sizes, immediate
//! dominator, roots, and the objects on either side of it (paged).

use heapscope_graph::{Dominators, Graph, RootCoverage};
use heapscope_heap::{flags, types, FastMap, ObjId};

use crate::paths::{object_ref, IvarNames, Labeler, ObjectRef, RecordFacts};

/// A window of a longer list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Length of the whole list.
    pub total: usize,
    pub offset: usize,
    pub limit: usize,
}

/// The index range of the page `offset..offset + limit` of a list of `total`
/// items (empty past the end).
pub fn page_range(total: usize, offset: usize, limit: usize) -> std::ops::Range<usize> {
    let start = offset.min(total);
    start..start.saturating_add(limit).min(total)
}

/// An object next to the inspected one and how the edge holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbour {
    pub object: ObjectRef,
    pub held_as: String,
    /// A reference the record lists that is not a graph edge (a WeakMap's
    /// entries): it does not keep the object alive.
    pub weak: bool,
}

/// What immediately dominates an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dominator {
    /// Only the roots themselves: several roots or root paths reach it.
    Root,
    /// No root in the dump reaches the object (what that says about the
    /// next GC depends on [`Inspection::coverage`]).
    Unreachable,
    Object(ObjectRef),
}

/// The inspected object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    pub object: ObjectRef,
    /// The type-dependent string and what it is (`value`, `name`, `struct`,
    /// `imemo_type`, `node_type`).
    pub detail: Option<(&'static str, String)>,
    pub flags: Vec<&'static str>,
    pub method: Option<String>,
    pub generation: Option<u32>,
    pub shape_id: Option<u32>,
    pub ivar_names: Option<IvarNames>,
    /// Ruby 4.0's `object_id` flag (a stable identity), when it has one.
    pub object_id: Option<u64>,
    /// For a 4.0 IMEMO `fields` object: the object whose ivars it keeps.
    pub owner: Option<ObjectRef>,
    pub shallow_bytes: u64,
    pub retained_bytes: u64,
    /// Left out as the heapscope agent's (its own object, or kept alive only
    /// by its objects): sizes count as 0 ([`Graph::is_agent`]).
    pub agent: bool,
    pub reachable: bool,
    pub dominator: Dominator,
    /// What "unreachable" means in this dump (see [`RootCoverage`]).
    pub coverage: RootCoverage,
    pub root_categories: Vec<String>,
    pub referrers: Page<Neighbour>,
    pub referents: Page<Neighbour>,
}

/// Objects with an edge to `id`, each once, in reference order (the
/// super-root left out: see root categories).
pub fn referrers(g: &Graph<'_>, id: ObjId) -> Vec<ObjId> {
    dedup_in_order(g.preds(id).iter().copied().filter(|&p| p != g.root()))
}

/// Objects `id` has an edge to (its references, then its class), each once.
pub fn referents(g: &Graph<'_>, id: ObjId) -> Vec<ObjId> {
    dedup_in_order(g.succs(id).into_iter())
}

/// References `id`'s record lists that are not edges of the graph (a
/// WeakMap's entries), each once, in record order.
pub fn weak_referents(g: &Graph<'_>, id: ObjId) -> Vec<ObjId> {
    let strong = g.succs(id);
    let refs = g.heap.refs(id);
    // The edges are the references (and the class): all of them, or, for
    // a weak container, none.
    if strong.len() >= refs.len() {
        return Vec::new();
    }
    let strong: FastMap<ObjId, ()> = strong.into_iter().map(|s| (s, ())).collect();
    dedup_in_order(refs.iter().copied().filter(|r| !strong.contains_key(r)))
}

/// How a weak container holds what its record lists.
fn weak_label(heap: &heapscope_heap::Heap, id: ObjId, to: ObjId) -> String {
    let proc_ = heap.otype[to as usize] == types::DATA && heap.detail_str(to) == Some(b"proc");
    match heap.detail_str(id) {
        // Up to 3.2 a WeakMap's one listed reference is its own finalizer
        // (a lambda that deletes entries), even when the map is empty.
        Some(b"weakmap") if proc_ => "its finalizer proc (Ruby before 3.3 lists it; WeakMap \
                                      references are not counted as edges)"
            .into(),
        Some(b"weakmap") => "an ObjectSpace::WeakMap entry (weak: not an edge)".into(),
        _ => "a weak reference (not an edge)".into(),
    }
}

fn dedup_in_order(it: impl Iterator<Item = ObjId>) -> Vec<ObjId> {
    let mut seen = heapscope_heap::FastMap::default();
    it.filter(|&v| seen.insert(v, ()).is_none()).collect()
}

/// Names of the flag bits set on `id`.
pub fn flag_names(bits: u8) -> Vec<&'static str> {
    const NAMES: [(u8, &str); 8] = [
        (flags::FROZEN, "frozen"),
        (flags::OLD, "old"),
        (flags::UNCOLLECTIBLE, "uncollectible"),
        (flags::MARKED, "marked"),
        (flags::WB_PROTECTED, "wb_protected"),
        (flags::PINNED, "pinned"),
        (flags::EMBEDDED, "embedded"),
        (flags::SHARED, "shared"),
    ];
    NAMES
        .iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, n)| *n)
        .collect()
}

fn detail_key(t: u8) -> Option<&'static str> {
    Some(match t {
        types::STRING | types::SYMBOL | types::FLOAT => "value",
        types::CLASS | types::MODULE => "name",
        types::DATA => "struct",
        types::IMEMO => "imemo_type",
        types::NODE => "node_type",
        _ => return None,
    })
}

/// Inspects `id`. `facts` holds the raw-record facts of the objects the
/// caller could re-read (the object itself and the referrers on the page).
pub fn inspect(
    labeler: &Labeler<'_, '_>,
    dom: &Dominators,
    id: ObjId,
    offset: usize,
    limit: usize,
    facts: &FastMap<ObjId, RecordFacts>,
) -> Inspection {
    let g = labeler.graph;
    let heap = g.heap;
    let t = heap.otype[id as usize];
    let detail = detail_key(t).and_then(|k| {
        heap.detail_str(id)
            .map(|s| (k, String::from_utf8_lossy(s).into_owned()))
    });
    let reachable = dom.is_reachable(id);
    let dominator = match dom.idom(id) {
        None => Dominator::Unreachable,
        Some(d) if d == g.root() => Dominator::Root,
        Some(d) => Dominator::Object(object_ref(heap, d)),
    };
    let preds = referrers(g, id);
    let r = page_range(preds.len(), offset, limit);
    let referrers_page = Page {
        items: preds[r]
            .iter()
            .map(|&p| Neighbour {
                object: object_ref(heap, p),
                held_as: labeler.held_as(p, id, facts.get(&p)),
                weak: false,
            })
            .collect(),
        total: preds.len(),
        offset,
        limit,
    };
    let mut succs: Vec<(ObjId, bool)> = referents(g, id).into_iter().map(|s| (s, false)).collect();
    succs.extend(weak_referents(g, id).into_iter().map(|s| (s, true)));
    let r = page_range(succs.len(), offset, limit);
    let referents_page = Page {
        items: succs[r]
            .iter()
            .map(|&(s, weak)| Neighbour {
                object: object_ref(heap, s),
                held_as: if weak {
                    weak_label(heap, id, s)
                } else {
                    labeler.held_as(id, s, facts.get(&id))
                },
                weak,
            })
            .collect(),
        total: succs.len(),
        offset,
        limit,
    };
    Inspection {
        agent: g.is_agent(id),
        object: object_ref(heap, id),
        detail,
        flags: flag_names(heap.flags[id as usize]),
        method: heap
            .method_name(id)
            .map(|m| String::from_utf8_lossy(m).into_owned()),
        generation: heap.generation(id),
        shape_id: heap.ivar_shape(id),
        // 4.0+ writes a too complex object with shape 0: its record says so.
        ivar_names: labeler.ivar_names(id).map(|mut iv| {
            iv.too_complex |= facts.get(&id).is_some_and(|f| f.too_complex);
            iv
        }),
        object_id: heap.object_ids.get(&id).copied(),
        owner: heap.fields_owner(id).map(|o| object_ref(heap, o)),
        shallow_bytes: g.shallow(id),
        retained_bytes: dom.retained(id),
        reachable,
        dominator,
        coverage: g.root_coverage(),
        root_categories: g
            .root_categories_of(id)
            .into_iter()
            .map(|c| heap.strings.text(c).into_owned())
            .collect(),
        referrers: referrers_page,
        referents: referents_page,
    }
}

/// Finds the raw JSON line of each wanted address in a dump read line by
/// line: lines with `"address":"0x..."` (not SHAPE records, whose addresses
/// are C pointers). Stops once all are found. Returns `(address, line)`.
pub fn find_raw_records(
    mut input: impl std::io::BufRead,
    wanted: &[u64],
    mut find: impl FnMut(&[u8], &[u8]) -> Option<usize>,
) -> std::io::Result<Vec<(u64, Vec<u8>)>> {
    const KEY: &[u8] = b"\"address\":\"0x";
    let mut left: Vec<u64> = wanted.to_vec();
    left.sort_unstable();
    left.dedup();
    let mut out = Vec::new();
    let mut line = Vec::new();
    while !left.is_empty() {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        let Some(at) = find(&line, KEY) else { continue };
        let hex = &line[at + KEY.len()..];
        let end = hex
            .iter()
            .position(|b| !b.is_ascii_hexdigit())
            .unwrap_or(hex.len());
        let Some(addr) = std::str::from_utf8(&hex[..end])
            .ok()
            .and_then(|h| u64::from_str_radix(h, 16).ok())
        else {
            continue;
        };
        let Ok(i) = left.binary_search(&addr) else {
            continue;
        };
        if find(&line, b"\"type\":\"SHAPE\"").is_some() {
            continue;
        }
        left.remove(i);
        while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            line.pop();
        }
        out.push((addr, line.clone()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paths::tests::{heap_of, SHAPED};
    use heapscope_graph::GraphOptions;

    fn naive_find(hay: &[u8], needle: &[u8]) -> Option<usize> {
        hay.windows(needle.len()).position(|w| w == needle)
    }

    #[test]
    fn pages() {
        assert_eq!(page_range(3000, 0, 20), 0..20);
        assert_eq!(page_range(30, 20, 20), 20..30);
        assert_eq!(page_range(10, 50, 20), 10..10);
        assert_eq!(page_range(10, 0, usize::MAX), 0..10);
    }

    #[test]
    fn flags() {
        assert_eq!(
            flag_names(flags::FROZEN | flags::OLD | flags::MARKED),
            ["frozen", "old", "marked"]
        );
        assert!(flag_names(0).is_empty());
    }

    #[test]
    fn inspects_an_object() {
        let heap = heap_of(SHAPED);
        let g = Graph::new(&heap, GraphOptions::default());
        let dom = Dominators::compute(&g);
        let l = Labeler::new(&g);
        let obj = heap.find(0x1078).unwrap();
        let i = inspect(&l, &dom, obj, 0, 20, &FastMap::default());
        assert_eq!(i.object.class.as_deref(), Some("Holder"));
        assert!(i.reachable);
        assert!(i.retained_bytes >= i.shallow_bytes);
        assert!(matches!(&i.dominator, Dominator::Object(o) if o.address == 0x1050));
        assert_eq!(i.referrers.total, 1);
        assert_eq!(i.referrers.items[0].object.address, 0x1050);
        // three ivars plus the class
        assert_eq!(i.referents.total, 4);
        assert_eq!(i.referents.items[3].held_as, "its class");
        assert_eq!(i.referents.items[0].held_as, "instance variable @a");
        assert_eq!(i.shape_id, Some(4));
        // paging
        let i = inspect(&l, &dom, obj, 1, 2, &FastMap::default());
        assert_eq!(i.referents.items.len(), 2);
        assert_eq!(i.referents.items[0].object.address, 0x10c8);
        // a root-referenced object and an unreachable one
        let h = inspect(
            &l,
            &dom,
            heap.find(0x1000).unwrap(),
            0,
            20,
            &FastMap::default(),
        );
        assert_eq!(h.dominator, Dominator::Root);
        assert_eq!(h.root_categories, ["global_tbl"]);
        let u = inspect(
            &l,
            &dom,
            heap.find(0x1118).unwrap(),
            0,
            20,
            &FastMap::default(),
        );
        assert_eq!(u.dominator, Dominator::Unreachable);
        assert!(!u.reachable);
        let s = inspect(
            &l,
            &dom,
            heap.find(0x1028).unwrap(),
            0,
            20,
            &FastMap::default(),
        );
        assert_eq!(s.detail, Some(("value", "k".to_string())));
    }

    #[test]
    fn a_weakmaps_listed_references_are_weak_referents() {
        let text = r#"{"type":"ROOT", "root":"global_tbl", "references":["0x100"]}
{"address":"0x100", "type":"DATA", "struct":"weakmap", "references":["0x140"], "memsize":40}
{"address":"0x140", "type":"DATA", "struct":"proc", "memsize":40}
"#;
        let heap = heap_of(text);
        let g = Graph::new(&heap, GraphOptions::default());
        let dom = Dominators::compute(&g);
        let l = Labeler::new(&g);
        let map = heap.find(0x100).unwrap();
        let i = inspect(&l, &dom, map, 0, 20, &FastMap::default());
        assert_eq!(i.referents.total, 1);
        let n = &i.referents.items[0];
        assert!(n.weak);
        assert_eq!(n.object.address, 0x140);
        assert!(n.held_as.starts_with("its finalizer proc"), "{}", n.held_as);
    }

    #[test]
    fn finds_raw_records_not_shapes() {
        let text = "{\"type\":\"ROOT\", \"root\":\"vm\", \"references\":[\"0x10\"]}\n\
{\"address\":\"0x10\", \"type\":\"SHAPE\", \"id\":0}\n\
{\"address\":\"0x20\", \"type\":\"STRING\"}\r\n\
{\"address\":\"0x10\", \"type\":\"ARRAY\", \"length\":1}";
        let found = find_raw_records(text.as_bytes(), &[0x10, 0x20, 0x30], naive_find).unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(
            found[0],
            (
                0x20,
                b"{\"address\":\"0x20\", \"type\":\"STRING\"}".to_vec()
            )
        );
        assert_eq!(found[1].0, 0x10);
        assert!(found[1].1.ends_with(b"\"length\":1}"));
    }
}
