//! Chains of references from GC roots to an object, labelled with how each
//! object holds the next where the dump lets us tell: array element index,
//! hash key or value, instance variable name (from shapes, Ruby 3.2+), the
//! implicit class edge.
//!
//! A few facts that the heap model does not keep (an ARRAY's `length`, a
//! HASH's `size` and `default`, `shared`, a CLASS's `superclass`) come from
//! the object's raw record when the caller could re-read it
//! ([`RecordFacts::from_raw`]); without them labels are less precise.

use heapscope_graph::{Dominators, Graph, RootPath};
use heapscope_heap::{types, FastMap, Heap, ObjId, StrId};

use crate::group::location_text;

/// Facts from an object's raw JSON record that the heap model leaves out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordFacts {
    /// ARRAY `length`.
    pub length: Option<u64>,
    /// HASH `size`.
    pub size: Option<u64>,
    /// HASH `default` (address of the default value or proc).
    pub default: Option<u64>,
    /// OBJECT `ivars`.
    pub ivars: Option<u64>,
    /// ARRAY or STRING `shared`: its reference is the shared root, not elements.
    pub shared: bool,
    /// CLASS `superclass`.
    pub superclass: Option<u64>,
}

/// The text right after `"key":` (spaces allowed), if the record has the key.
fn value_after<'a>(raw: &'a [u8], key: &str) -> Option<&'a [u8]> {
    let pat = format!("\"{key}\"");
    let pat = pat.as_bytes();
    let mut from = 0;
    while from + pat.len() <= raw.len() {
        let i = raw[from..].windows(pat.len()).position(|w| w == pat)? + from;
        let mut j = i + pat.len();
        while j < raw.len() && raw[j].is_ascii_whitespace() {
            j += 1;
        }
        if j < raw.len() && raw[j] == b':' {
            j += 1;
            while j < raw.len() && raw[j].is_ascii_whitespace() {
                j += 1;
            }
            return Some(&raw[j..]);
        }
        from = i + 1;
    }
    None
}

fn int_after(raw: &[u8], key: &str) -> Option<u64> {
    let v = value_after(raw, key)?;
    let end = v
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(v.len());
    std::str::from_utf8(&v[..end]).ok()?.parse().ok()
}

fn address_after(raw: &[u8], key: &str) -> Option<u64> {
    let v = value_after(raw, key)?;
    let v = v.strip_prefix(b"\"0x")?;
    let end = v
        .iter()
        .position(|b| !b.is_ascii_hexdigit())
        .unwrap_or(v.len());
    u64::from_str_radix(std::str::from_utf8(&v[..end]).ok()?, 16).ok()
}

impl RecordFacts {
    /// Reads the facts from one raw JSON line of the dump. Keys are looked
    /// for by name; values Ruby does not write for the type stay `None`.
    pub fn from_raw(raw: &[u8]) -> RecordFacts {
        // The references list can be huge and holds only addresses: look
        // for keys before and after it, not inside it.
        RecordFacts {
            length: int_after(raw, "length"),
            size: int_after(raw, "size"),
            default: address_after(raw, "default"),
            ivars: int_after(raw, "ivars"),
            shared: value_after(raw, "shared").is_some_and(|v| v.starts_with(b"true")),
            superclass: address_after(raw, "superclass"),
        }
    }
}

/// An object as one line of a path or listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    pub id: ObjId,
    pub address: u64,
    pub type_name: String,
    pub class: Option<String>,
    /// A CLASS or MODULE's own name.
    pub name: Option<String>,
    pub location: Option<String>,
}

pub fn object_ref(heap: &Heap, id: ObjId) -> ObjectRef {
    let t = heap.otype[id as usize];
    ObjectRef {
        id,
        address: heap.address[id as usize],
        type_name: heap.type_name(id).to_string(),
        class: heap
            .class_of(id)
            .map(|_| heap.class_display(heap.class[id as usize])),
        name: (t == types::CLASS || t == types::MODULE)
            .then(|| heap.detail_str(id))
            .flatten()
            .map(|s| String::from_utf8_lossy(s).into_owned()),
        location: location_text(heap, heap.location[id as usize]),
    }
}

/// The instance variable names of an OBJECT's shape (Ruby 3.2+).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IvarNames {
    /// IVAR edge names from the root shape down: the order Ruby stores (and
    /// marks) the values in.
    pub names: Vec<String>,
    /// The chain has an OBJ_TOO_COMPLEX shape: values live in a hash table,
    /// in no known order.
    pub too_complex: bool,
}

/// Labels edges; holds an index of the dump's shapes.
pub struct Labeler<'g, 'h> {
    pub graph: &'g Graph<'h>,
    shapes: FastMap<u32, usize>,
    ivar: Option<StrId>,
    too_complex: Option<StrId>,
}

impl<'g, 'h> Labeler<'g, 'h> {
    pub fn new(graph: &'g Graph<'h>) -> Self {
        let heap = graph.heap;
        let shapes = heap
            .shapes
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id, i))
            .collect();
        Labeler {
            graph,
            shapes,
            ivar: heap.strings.find(b"IVAR"),
            too_complex: heap.strings.find(b"OBJ_TOO_COMPLEX"),
        }
    }

    /// Instance variable names of `id` from its shape, walking the parent
    /// chain and collecting IVAR edges; `None` without shapes (Ruby < 3.2)
    /// or when the chain is broken.
    pub fn ivar_names(&self, id: ObjId) -> Option<IvarNames> {
        let heap = self.graph.heap;
        let mut shape = heap.shape_id(id)?;
        let mut names = Vec::new();
        let mut too_complex = false;
        // A chain longer than the number of shapes has a cycle.
        for _ in 0..=heap.shapes.len() {
            let s = &heap.shapes[*self.shapes.get(&shape)?];
            if Some(s.shape_type) == self.ivar {
                if let Some(n) = s.edge_name.get() {
                    names.push(heap.strings.text(n).into_owned());
                }
            } else if Some(s.shape_type) == self.too_complex {
                too_complex = true;
            }
            match s.parent_id {
                Some(p) => shape = p,
                None => {
                    names.reverse();
                    return Some(IvarNames { names, too_complex });
                }
            }
        }
        None
    }

    /// How `from` holds `to`, as far as the dump tells.
    pub fn held_as(&self, from: ObjId, to: ObjId, facts: Option<&RecordFacts>) -> String {
        let g = self.graph;
        let heap = g.heap;
        let refs = heap.refs(from);
        let positions: Vec<usize> = refs
            .iter()
            .enumerate()
            .filter(|(_, &r)| r == to)
            .map(|(i, _)| i)
            .collect();
        if positions.is_empty() {
            return if g.class_edge(from) == Some(to) {
                g.implicit_edge_label(from)
            } else {
                "a reference".into()
            };
        }
        let n = refs.len();
        // Dropped dangling references would shift positions.
        let exact = heap.facts.dangling_refs == 0;
        let first = positions[0];
        match heap.otype[from as usize] {
            types::ARRAY => {
                if facts.is_some_and(|f| f.shared) {
                    return "its shared root (the array it shares elements with)".into();
                }
                match facts.and_then(|f| f.length) {
                    Some(len) if exact && len == n as u64 => {
                        let idx: Vec<String> = positions.iter().map(|p| format!("[{p}]")).collect();
                        if idx.len() == 1 {
                            format!("element {}", idx[0])
                        } else {
                            format!("elements {}", idx.join(", "))
                        }
                    }
                    Some(_) => "an element (index unknown: not all elements are heap objects)".into(),
                    None => "an element".into(),
                }
            }
            types::HASH => {
                let default_last = match facts.and_then(|f| f.default) {
                    Some(d) => refs.last().is_some_and(|&l| heap.address[l as usize] == d),
                    None => false,
                };
                if default_last && positions.iter().all(|&p| p == n - 1) {
                    return "its default value or default proc".into();
                }
                let entries = if default_last { n - 1 } else { n };
                let pairs_known = match facts.and_then(|f| f.size) {
                    Some(size) => exact && entries as u64 == 2 * size,
                    None => exact && n.is_multiple_of(2),
                };
                if pairs_known {
                    let key = positions.iter().any(|p| p % 2 == 0);
                    let value = positions.iter().any(|p| p % 2 == 1);
                    match (key, value) {
                        (true, true) => "a key and a value".into(),
                        (true, false) => "a key".into(),
                        _ => "a value".into(),
                    }
                } else {
                    "a key or a value".into()
                }
            }
            types::OBJECT => match self.ivar_names(from) {
                Some(iv) if !iv.names.is_empty() => {
                    if !iv.too_complex && exact && iv.names.len() == n {
                        let names: Vec<&str> =
                            positions.iter().map(|&p| iv.names[p].as_str()).collect();
                        format!("instance variable {}", names.join(", "))
                    } else {
                        format!("an instance variable, one of {}", iv.names.join(", "))
                    }
                }
                _ => {
                    if facts.and_then(|f| f.ivars) == Some(n as u64) && exact {
                        format!(
                            "instance variable #{} of {n} (no names in dumps before Ruby 3.2)",
                            first + 1
                        )
                    } else if heap.shapes.is_empty() {
                        "an instance variable (dumps name them from Ruby 3.2)".into()
                    } else {
                        "an instance variable".into()
                    }
                }
            },
            types::CLASS | types::MODULE => {
                if let Some(sc) = facts.and_then(|f| f.superclass) {
                    if heap.address[to as usize] == sc {
                        return "its superclass".into();
                    }
                }
                let me = object_ref(heap, from);
                let name = me
                    .name
                    .unwrap_or_else(|| format!("#<Class:{:#x}>", me.address));
                format!("a constant, class variable or method of {name}")
            }
            types::STRING => "its shared string buffer".into(),
            types::ICLASS => "a method table or constant of an included module".into(),
            types::DATA => match heap.detail_str(from) {
                Some(s) => format!(
                    "a reference from its C data ({})",
                    String::from_utf8_lossy(s)
                ),
                None => "a reference from its C data".into(),
            },
            types::IMEMO => match heap.detail_str(from) {
                Some(s) => format!("a reference from its {}", String::from_utf8_lossy(s)),
                None => "a reference".into(),
            },
            8 /* STRUCT */ => "a member".into(),
            _ => "a reference".into(),
        }
    }
}

/// What a root category is, for people.
pub fn root_description(category: &str) -> Option<&'static str> {
    Some(match category {
        "vm" => "the VM: threads, stacks, loaded code, special variables",
        "global_tbl" => "global variables",
        "global_list" => "C global variables registered with the GC",
        "machine_context" => "conservative: found on a C stack, may be a stale value",
        "end_proc" => "at_exit blocks",
        "finalizers" => "finalizers",
        "object_id" => "object_id table",
        "symbols" => "symbol table",
        "global_symbols" => "symbol table",
        "encodings" => "encodings",
        "generic_ivars" => "instance variables of non-OBJECT objects",
        "live_method_entries" => "method entries",
        "parser" => "the parser",
        "objspace" => "GC internals",
        _ => return None,
    })
}

/// "ROOT vm", "ROOT global_tbl (global variables)".
pub fn root_label(category: &str) -> String {
    match root_description(category) {
        Some(d) => format!("ROOT {category} ({d})"),
        None => format!("ROOT {category}"),
    }
}

/// Steps shown at each end of a long path unless the whole path is asked
/// for: a 2-million-object linked list would otherwise print 2 million lines.
pub const PATH_ENDS: usize = 10;

/// Where a long path or chain was cut, and how much was left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elision {
    /// The number of steps shown before the gap.
    pub after: usize,
    /// The number of steps left out.
    pub count: usize,
}

/// Which steps of a path of `len` steps are shown when `ends` steps are kept
/// at each end (`None`: all of them). Nothing is left out of a path short
/// enough that the gap would hide a single step.
pub fn shown_steps(len: usize, ends: Option<usize>) -> (Vec<usize>, Option<Elision>) {
    match ends {
        Some(k) if len > 2 * k + 1 => {
            let shown = (0..k).chain(len - k..len).collect();
            (
                shown,
                Some(Elision {
                    after: k,
                    count: len - 2 * k,
                }),
            )
        }
        _ => ((0..len).collect(), None),
    }
}

/// One object on a path and how it holds the next one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathStep {
    pub object: ObjectRef,
    /// How this object holds the next step (`None` on the target).
    pub held_as: Option<String>,
}

/// A labelled chain of references from a root to the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabeledPath {
    /// Root categories referencing the first object, the first one shown.
    pub categories: Vec<String>,
    /// A `machine_context` (conservative) root references the first object.
    pub conservative: bool,
    /// The steps shown: all of them, or the ends of a long path.
    pub steps: Vec<PathStep>,
    /// The steps left out between the ends, if any.
    pub elided: Option<Elision>,
}

impl LabeledPath {
    pub fn root(&self) -> &str {
        self.categories.first().map_or("?", |s| s.as_str())
    }

    /// The number of objects on the whole path, the left-out ones included.
    pub fn len(&self) -> usize {
        self.steps.len() + self.elided.map_or(0, |e| e.count)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Objects on the paths whose raw record would sharpen the labels: those
/// shown (see [`shown_steps`]) that hold a next step.
pub fn objects_needing_records(heap: &Heap, paths: &[RootPath], ends: Option<usize>) -> Vec<ObjId> {
    let mut out: Vec<ObjId> = paths
        .iter()
        .flat_map(|p| {
            let n = p.nodes.len();
            shown_steps(n, ends)
                .0
                .into_iter()
                .filter(move |&i| i + 1 < n)
                .map(|i| p.nodes[i])
        })
        .filter(|&id| {
            matches!(
                heap.otype[id as usize],
                types::ARRAY | types::HASH | types::OBJECT | types::CLASS | types::MODULE
            )
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Labels a path found by [`heapscope_graph::shortest_paths`]: every step,
/// or with `ends` only that many at each end of a long path (the others are
/// never described, so a path through millions of objects costs little).
pub fn label_path(
    labeler: &Labeler<'_, '_>,
    path: &RootPath,
    facts: &FastMap<ObjId, RecordFacts>,
    ends: Option<usize>,
) -> LabeledPath {
    let heap = labeler.graph.heap;
    let conservative = heap
        .roots
        .iter()
        .any(|r| r.conservative && path.categories.contains(&r.category));
    let mut categories: Vec<String> = path
        .categories
        .iter()
        .map(|&c| heap.strings.text(c).into_owned())
        .collect();
    // Show a precise root first when there is one.
    categories.sort_by_key(|c| c == "machine_context");
    let (shown, elided) = shown_steps(path.nodes.len(), ends);
    let steps = shown
        .into_iter()
        .map(|i| {
            let id = path.nodes[i];
            PathStep {
                object: object_ref(heap, id),
                held_as: path
                    .nodes
                    .get(i + 1)
                    .map(|&next| labeler.held_as(id, next, facts.get(&id))),
            }
        })
        .collect();
    LabeledPath {
        categories,
        conservative,
        steps,
        elided,
    }
}

/// One object on the dominator chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DominatorStep {
    pub object: ObjectRef,
    pub shallow_bytes: u64,
    pub retained_bytes: u64,
}

/// The dominator chain of `target`, from the top-level dominator (one only
/// the super-root dominates) down to `target`; empty when unreachable. With
/// `ends`, a long chain keeps only that many steps at each end.
pub fn dominator_chain(
    g: &Graph<'_>,
    dom: &Dominators,
    target: ObjId,
    ends: Option<usize>,
) -> (Vec<DominatorStep>, Option<Elision>) {
    let mut chain = dom.chain(target);
    chain.reverse();
    let (shown, elided) = shown_steps(chain.len(), ends);
    let steps = shown
        .into_iter()
        .map(|i| {
            let id = chain[i];
            DominatorStep {
                object: object_ref(g.heap, id),
                shallow_bytes: g.shallow(id),
                retained_bytes: dom.retained(id),
            }
        })
        .collect();
    (steps, elided)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use heapscope_graph::{shortest_paths, GraphOptions};
    use heapscope_heap::Heap;
    use heapscope_reader::{read_input, Input, ReadOptions};

    pub(crate) fn heap_of(text: &str) -> Heap {
        let input = Input::from_reader(
            "test".into(),
            Box::new(std::io::Cursor::new(text.as_bytes().to_vec())),
            None,
        )
        .unwrap();
        let opts = ReadOptions {
            references: true,
            string_values: true,
            threads: 1,
            ..ReadOptions::default()
        };
        read_input(input, &opts).unwrap().heap
    }

    /// A Ruby 3.2-style dump: shapes ROOT(0) -> @a(1) -> @b(2) -> FROZEN(3)
    /// -> @c(4); an OBJECT of shape 4 whose three ivars are all objects.
    pub(crate) const SHAPED: &str = r#"{"type":"ROOT", "root":"global_tbl", "references":["0x1000"]}
{"address":"0x9000", "type":"SHAPE", "id":0, "depth":0, "shape_type":"ROOT", "edges":1, "memsize":1}
{"address":"0x9020", "type":"SHAPE", "id":1, "parent_id":0, "depth":1, "shape_type":"IVAR", "edge_name":"@a", "edges":1, "memsize":1}
{"address":"0x9040", "type":"SHAPE", "id":2, "parent_id":1, "depth":2, "shape_type":"IVAR", "edge_name":"@b", "edges":1, "memsize":1}
{"address":"0x9060", "type":"SHAPE", "id":3, "parent_id":2, "depth":3, "shape_type":"FROZEN", "edges":1, "memsize":1}
{"address":"0x9080", "type":"SHAPE", "id":4, "parent_id":3, "depth":4, "shape_type":"IVAR", "edge_name":"@c", "edges":0, "memsize":1}
{"address":"0x1000", "type":"HASH", "shape_id":0, "class":"0x5000", "size":1, "references":["0x1028", "0x1050"], "memsize":100}
{"address":"0x1028", "type":"STRING", "shape_id":0, "class":"0x5028", "value":"k", "memsize":40}
{"address":"0x1050", "type":"ARRAY", "shape_id":0, "class":"0x5050", "length":1, "references":["0x1078"], "memsize":40}
{"address":"0x1078", "type":"OBJECT", "shape_id":4, "class":"0x50a0", "ivars":3, "references":["0x10a0", "0x10c8", "0x10f0"], "memsize":40}
{"address":"0x10a0", "type":"STRING", "shape_id":0, "class":"0x5028", "value":"a", "memsize":40}
{"address":"0x10c8", "type":"STRING", "shape_id":0, "class":"0x5028", "value":"b", "memsize":40}
{"address":"0x10f0", "type":"STRING", "shape_id":0, "class":"0x5028", "value":"c", "memsize":5000}
{"address":"0x1118", "type":"OBJECT", "shape_id":4, "class":"0x50a0", "ivars":3, "references":["0x10a0"], "memsize":40}
{"address":"0x5000", "type":"CLASS", "shape_id":0, "name":"Hash", "memsize":10}
{"address":"0x5028", "type":"CLASS", "shape_id":0, "name":"String", "memsize":10}
{"address":"0x5050", "type":"CLASS", "shape_id":0, "name":"Array", "memsize":10}
{"address":"0x50a0", "type":"CLASS", "shape_id":0, "name":"Holder", "memsize":10}
"#;

    fn facts_of(heap: &Heap) -> FastMap<ObjId, RecordFacts> {
        let mut m = FastMap::default();
        m.insert(
            heap.find(0x1000).unwrap(),
            RecordFacts::from_raw(br#"{"address":"0x1000", "type":"HASH", "size":1}"#),
        );
        m.insert(
            heap.find(0x1050).unwrap(),
            RecordFacts::from_raw(br#"{"address":"0x1050", "type":"ARRAY", "length":1}"#),
        );
        m
    }

    #[test]
    fn record_facts_parse() {
        let f = RecordFacts::from_raw(
            br#"{"address":"0x1", "type":"HASH", "size": 3, "default":"0x7f00", "references":["0x2"], "memsize":40}"#,
        );
        assert_eq!(f.size, Some(3));
        assert_eq!(f.default, Some(0x7f00));
        assert_eq!(f.length, None);
        let a = RecordFacts::from_raw(
            br#"{"address":"0x1", "type":"ARRAY", "length":12, "shared":true}"#,
        );
        assert_eq!(a.length, Some(12));
        assert!(a.shared);
        let c = RecordFacts::from_raw(br#"{"type":"CLASS", "superclass":"0xabc", "name":"X"}"#);
        assert_eq!(c.superclass, Some(0xabc));
    }

    #[test]
    fn ivar_names_follow_the_shape_chain_by_depth() {
        let heap = heap_of(SHAPED);
        let g = Graph::new(&heap, GraphOptions::default());
        let l = Labeler::new(&g);
        let obj = heap.find(0x1078).unwrap();
        let iv = l.ivar_names(obj).unwrap();
        assert_eq!(iv.names, ["@a", "@b", "@c"]);
        assert!(!iv.too_complex);
        let c = heap.find(0x10f0).unwrap();
        assert_eq!(l.held_as(obj, c, None), "instance variable @c");
        // Fewer references than ivars: candidates only.
        let partial = heap.find(0x1118).unwrap();
        let a = heap.find(0x10a0).unwrap();
        assert_eq!(
            l.held_as(partial, a, None),
            "an instance variable, one of @a, @b, @c"
        );
    }

    #[test]
    fn labels_a_path_through_hash_array_and_object() {
        let heap = heap_of(SHAPED);
        let g = Graph::new(&heap, GraphOptions::default());
        let l = Labeler::new(&g);
        let target = heap.find(0x10f0).unwrap();
        let paths = shortest_paths(&g, target, 5);
        assert_eq!(paths.len(), 1);
        let need = objects_needing_records(&heap, &paths, None);
        assert_eq!(need.len(), 3);
        let p = label_path(&l, &paths[0], &facts_of(&heap), None);
        assert_eq!(p.root(), "global_tbl");
        assert!(!p.conservative);
        let held: Vec<Option<&str>> = p.steps.iter().map(|s| s.held_as.as_deref()).collect();
        assert_eq!(
            held,
            [
                Some("a value"),
                Some("element [0]"),
                Some("instance variable @c"),
                None
            ]
        );
        assert_eq!(p.steps[2].object.class.as_deref(), Some("Holder"));
        // Without record facts: parity still works (even count), index does not.
        let p = label_path(&l, &paths[0], &FastMap::default(), None);
        assert_eq!(p.steps[0].held_as.as_deref(), Some("a value"));
        assert_eq!(p.steps[1].held_as.as_deref(), Some("an element"));
    }

    #[test]
    fn class_edges_and_class_names() {
        let heap = heap_of(SHAPED);
        let g = Graph::new(&heap, GraphOptions::default());
        let l = Labeler::new(&g);
        let obj = heap.find(0x1078).unwrap();
        let class = heap.find(0x50a0).unwrap();
        assert_eq!(l.held_as(obj, class, None), "its class");
        let r = object_ref(&heap, class);
        assert_eq!(r.name.as_deref(), Some("Holder"));
    }

    #[test]
    fn hash_labels_with_size_and_default() {
        let text = r#"{"address":"0x1000", "type":"HASH", "size":1, "default":"0x1050", "references":["0x1028", "0x1050"], "memsize":100}
{"address":"0x1028", "type":"STRING", "value":"v", "memsize":40}
{"address":"0x1050", "type":"DATA", "struct":"proc", "memsize":40}
"#;
        let heap = heap_of(text);
        let g = Graph::new(&heap, GraphOptions::default());
        let l = Labeler::new(&g);
        let h = heap.find(0x1000).unwrap();
        let facts = RecordFacts::from_raw(text.lines().next().unwrap().as_bytes());
        // size 1 but a default proc last: one entry whose key is not a heap object.
        let v = heap.find(0x1028).unwrap();
        let p = heap.find(0x1050).unwrap();
        assert_eq!(l.held_as(h, v, Some(&facts)), "a key or a value");
        assert_eq!(
            l.held_as(h, p, Some(&facts)),
            "its default value or default proc"
        );
        // Without facts, the brief's parity rule on an even count.
        assert_eq!(l.held_as(h, p, None), "a value");
    }

    #[test]
    fn dominator_chain_runs_top_down() {
        let heap = heap_of(SHAPED);
        let g = Graph::new(&heap, GraphOptions::default());
        let dom = Dominators::compute(&g);
        let target = heap.find(0x10f0).unwrap();
        let (chain, elided) = dominator_chain(&g, &dom, target, Some(PATH_ENDS));
        assert_eq!(elided, None);
        assert_eq!(chain.last().unwrap().object.id, target);
        assert_eq!(chain[0].object.address, 0x1000);
        assert!(chain
            .windows(2)
            .all(|w| w[0].retained_bytes >= w[1].retained_bytes));
    }

    #[test]
    fn ivar_names_in_the_ruby_3_2_fixture() {
        let heap = heap_of(include_str!("../../../tests/fixtures/ruby-3.2.jsonl"));
        let g = Graph::new(&heap, GraphOptions::default());
        let l = Labeler::new(&g);
        let names = |a: u64| l.ivar_names(heap.find(a).unwrap()).unwrap();
        assert_eq!(names(0x7f3e9b0a1140).names, ["@name", "@age"]);
        // FROZEN on top of @age; CAPACITY_CHANGE between @age and @email.
        assert_eq!(names(0x7f3e9b0a1168).names, ["@name", "@age"]);
        assert_eq!(names(0x7f3e9b1c2050).names, ["@name", "@age", "@email"]);
        let complex = names(0x7f3e9b1c20a0);
        assert!(complex.too_complex && complex.names.is_empty());
        // Two ivars, one reference (the other is not a heap object): candidates.
        let person = heap.find(0x7f3e9b0a1140).unwrap();
        let alice = heap.find(0x7f3e9b0a1078).unwrap();
        assert_eq!(
            l.held_as(person, alice, None),
            "an instance variable, one of @name, @age"
        );
    }

    /// A global hash holding the first of `n` arrays, each holding the next.
    fn chain_dump(n: usize) -> String {
        let mut s = String::from(
            "{\"type\":\"ROOT\", \"root\":\"global_tbl\", \"references\":[\"0x1000\"]}\n",
        );
        for i in 0..n {
            let me = 0x1000 + 0x28 * i;
            let refs = if i + 1 < n {
                format!("\"0x{:x}\"", me + 0x28)
            } else {
                String::new()
            };
            let len = usize::from(i + 1 < n);
            s.push_str(&format!(
                "{{\"address\":\"0x{me:x}\", \"type\":\"ARRAY\", \"length\":{len}, \"references\":[{refs}], \"memsize\":40}}\n"
            ));
        }
        s
    }

    #[test]
    fn shown_steps_keep_both_ends() {
        assert_eq!(shown_steps(5, Some(2)), ((0..5).collect(), None));
        let (shown, e) = shown_steps(6, Some(2));
        assert_eq!(shown, [0, 1, 4, 5]);
        assert_eq!(e, Some(Elision { after: 2, count: 2 }));
        assert_eq!(shown_steps(1_000, None).0.len(), 1_000);
        let (shown, e) = shown_steps(2_000_000, Some(PATH_ENDS));
        assert_eq!(shown.len(), 2 * PATH_ENDS);
        assert_eq!(shown[PATH_ENDS], 2_000_000 - PATH_ENDS);
        assert_eq!(e.unwrap().count, 2_000_000 - 2 * PATH_ENDS);
    }

    #[test]
    fn a_long_path_is_labelled_at_its_ends_only() {
        let heap = heap_of(&chain_dump(100));
        let g = Graph::new(&heap, GraphOptions::default());
        let l = Labeler::new(&g);
        let last = heap.find(0x1000 + 0x28 * 99).unwrap();
        let paths = shortest_paths(&g, last, 1);
        assert_eq!(paths[0].nodes.len(), 100);
        let p = label_path(&l, &paths[0], &FastMap::default(), Some(3));
        assert_eq!(p.steps.len(), 6);
        assert_eq!(p.len(), 100);
        assert_eq!(
            p.elided,
            Some(Elision {
                after: 3,
                count: 94
            })
        );
        assert_eq!(p.steps[2].object.address, 0x1000 + 0x28 * 2);
        assert_eq!(p.steps[3].object.address, 0x1000 + 0x28 * 97);
        // The last step before the gap still says how it holds the next object.
        assert_eq!(p.steps[2].held_as.as_deref(), Some("an element"));
        assert_eq!(p.steps[5].held_as, None);
        // Only shown objects are worth re-reading.
        assert_eq!(objects_needing_records(&heap, &paths, Some(3)).len(), 5);
        assert_eq!(objects_needing_records(&heap, &paths, None).len(), 99);
        let full = label_path(&l, &paths[0], &FastMap::default(), None);
        assert_eq!((full.steps.len(), full.elided), (100, None));

        let dom = Dominators::compute(&g);
        let (chain, e) = dominator_chain(&g, &dom, last, Some(3));
        assert_eq!(chain.len(), 6);
        assert_eq!(
            e,
            Some(Elision {
                after: 3,
                count: 94
            })
        );
        assert_eq!(chain.last().unwrap().object.id, last);
    }

    #[test]
    fn root_labels() {
        assert_eq!(root_label("vm").split(' ').nth(1), Some("vm"));
        assert_eq!(
            root_label("global_tbl"),
            "ROOT global_tbl (global variables)"
        );
        assert_eq!(root_label("new_thing"), "ROOT new_thing");
    }
}
