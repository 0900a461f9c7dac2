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
use heapscope_heap::{flags, types, FastMap, Heap, ObjId, StrId};

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
    /// How many addresses the record's `references` list holds (the heap
    /// drops dangling ones): with it, positions are exact per object.
    pub references: Option<u64>,
    /// OBJECT `too_complex_shape` (3.2-4.0) or `complex_shape` (4.1-dev):
    /// its ivars live in a hash table the dump does not name.
    pub too_complex: bool,
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

fn true_after(raw: &[u8], key: &str) -> bool {
    value_after(raw, key).is_some_and(|v| v.starts_with(b"true"))
}

/// The number of strings in the `references` array.
fn references_count(raw: &[u8]) -> Option<u64> {
    let v = value_after(raw, "references")?.strip_prefix(b"[")?;
    let end = v.iter().position(|&b| b == b']')?;
    Some(v[..end].iter().filter(|&&b| b == b'"').count() as u64 / 2)
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
            shared: true_after(raw, "shared"),
            superclass: address_after(raw, "superclass"),
            references: references_count(raw),
            too_complex: true_after(raw, "too_complex_shape") || true_after(raw, "complex_shape"),
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

impl ObjectRef {
    /// Its class, else its type.
    pub fn class_or_type(&self) -> &str {
        self.class.as_deref().unwrap_or(&self.type_name)
    }
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
    /// Shape types that start a chain: ROOT, and 3.3-3.4's T_OBJECT (whose
    /// `parent_id` is INVALID_SHAPE_ID in 3.4).
    chain_roots: [Option<StrId>; 2],
}

/// At most this many names are listed in one label.
const NAMES_SHOWN: usize = 5;

/// "@a, @b, @c" or "@a, @b, @c, @d, @e, … (30 in all)".
fn name_list(names: &[String]) -> String {
    if names.len() <= NAMES_SHOWN + 1 {
        names.join(", ")
    } else {
        format!(
            "{}, … ({} in all)",
            names[..NAMES_SHOWN].join(", "),
            names.len()
        )
    }
}

/// "an Array", "a String".
fn with_article(word: &str) -> String {
    let vowel = word
        .chars()
        .next()
        .is_some_and(|c| "AEIOUaeiou".contains(c));
    format!("{} {word}", if vowel { "an" } else { "a" })
}

/// The shape id Ruby writes for "no shape": INVALID_SHAPE_ID of a 64-bit
/// (u32) or a 32-bit (u16) build.
fn invalid_shape_id(id: u32) -> bool {
    id == u32::MAX || id == u16::MAX as u32
}

/// Why an object's ivars are not named, for the end of a label.
const TOO_COMPLEX: &str = "names not in this dump: the object's shape is too complex";
const NO_SHAPES: &str = "names not in this dump: it was written without shapes";
const BEFORE_3_2: &str = "no names in dumps before Ruby 3.2";

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
            chain_roots: [heap.strings.find(b"ROOT"), heap.strings.find(b"T_OBJECT")],
        }
    }

    /// Instance variable names of `id` from its shape (an OBJECT's, or the
    /// shape of a String, Array, class... with generic or class-level ivars,
    /// or of a 4.0 `fields` object), walking the parent chain and collecting
    /// IVAR edges; `None` without shapes (Ruby < 3.2, `shapes: false`) or
    /// when the chain is broken. The walk ends at a ROOT or T_OBJECT shape or
    /// a parent of INVALID_SHAPE_ID (3.4).
    pub fn ivar_names(&self, id: ObjId) -> Option<IvarNames> {
        let heap = self.graph.heap;
        let mut shape = heap.ivar_shape(id)?;
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
            let at_root = self.chain_roots.contains(&Some(s.shape_type));
            match s.parent_id {
                Some(p) if !at_root && (self.shapes.contains_key(&p) || !invalid_shape_id(p)) => {
                    shape = p
                }
                _ => {
                    names.reverse();
                    return Some(IvarNames { names, too_complex });
                }
            }
        }
        None
    }

    /// Names of `id`'s ivars, when its shape has any and is not too complex.
    fn named_ivars(&self, id: ObjId) -> Option<Vec<String>> {
        self.ivar_names(id)
            .filter(|iv| !iv.too_complex && !iv.names.is_empty())
            .map(|iv| iv.names)
    }

    /// `id` keeps its ivars in a 4.0 `fields` object among its references.
    fn has_fields_object(&self, id: ObjId) -> bool {
        let heap = self.graph.heap;
        !heap.fields_owner.is_empty()
            && heap
                .refs(id)
                .iter()
                .any(|&r| heap.fields_owner(r) == Some(id))
    }

    /// "NamesRegistry" for a class, "#<Class:0x...>" for an anonymous one.
    fn class_name(&self, id: ObjId) -> String {
        let me = object_ref(self.graph.heap, id);
        me.name
            .unwrap_or_else(|| format!("#<Class:{:#x}>", me.address))
    }

    /// How an owner holds its `fields` object.
    fn fields_object_label(&self, fields: ObjId) -> String {
        match self.named_ivars(fields) {
            Some(names) => format!(
                "its instance variables (a fields object: {})",
                name_list(&names)
            ),
            None => "its instance variables (a fields object)".into(),
        }
    }

    /// How a 4.0 `fields` object holds the ivar values of `owner`.
    fn fields_entry_label(
        &self,
        fields: ObjId,
        owner: ObjId,
        positions: &[usize],
        n: usize,
    ) -> String {
        let heap = self.graph.heap;
        let t = heap.otype[owner as usize];
        let (what, whose) = match t {
            types::OBJECT => (
                "instance variable",
                format!("of its owner ({})", object_ref(heap, owner).class_or_type()),
            ),
            types::CLASS | types::MODULE => (
                "class-level instance variable",
                format!("of {}", self.class_name(owner)),
            ),
            _ => (
                "generic instance variable",
                format!(
                    "of its owner ({})",
                    with_article(object_ref(heap, owner).class_or_type())
                ),
            ),
        };
        match self.named_ivars(fields) {
            // As many references as names: each is one, in shape order (a
            // dropped reference or an immediate value would make fewer).
            Some(names) if names.len() == n => {
                let names: Vec<&str> = positions.iter().map(|&p| names[p].as_str()).collect();
                format!("{what} {} {whose}", names.join(", "))
            }
            Some(names) => format!(
                "{} {whose}, one of {}",
                with_article(what),
                name_list(&names)
            ),
            // A fields object whose shape names nothing holds a too complex
            // owner's hash table of ivars.
            None if heap.shapes.is_empty() => {
                format!("{} {whose} ({NO_SHAPES})", with_article(what))
            }
            None => format!(
                "{} {whose} (names not in this dump: the owner's shape is too complex)",
                with_article(what)
            ),
        }
    }

    /// How many of the first references of a non-OBJECT `from` are its
    /// generic instance variables (Ruby marks them before anything else):
    /// at least `lower`, at most `upper`, with their names when the shape
    /// tells. `type_refs_max` bounds the type's own references (the shared
    /// root, elements, entries), when the record says.
    fn generic_split(
        &self,
        from: ObjId,
        n: usize,
        type_refs_max: Option<usize>,
    ) -> (usize, usize, Option<Vec<String>>) {
        let heap = self.graph.heap;
        if self.has_fields_object(from) {
            // 4.0: one fields object first, holding all of them.
            let first = heap.refs(from).first().copied();
            let lead = usize::from(first.is_some_and(|f| heap.fields_owner(f) == Some(from)));
            return (lead, lead, None);
        }
        let lower = type_refs_max.map_or(0, |t| n.saturating_sub(t));
        match self.named_ivars(from) {
            Some(names) => {
                let upper = names.len().min(n);
                (lower.min(upper), upper, Some(names))
            }
            // With shapes, a shape naming no ivars means there are none.
            None if heap.shapes.is_empty() => (lower, lower, None),
            None => (0, 0, None),
        }
    }

    /// The label of a generic ivar at position `p` (< upper).
    fn generic_label(
        p: usize,
        lower: usize,
        upper: usize,
        names: &Option<Vec<String>>,
        otherwise: &str,
    ) -> String {
        match names {
            Some(names) if lower == upper && upper == names.len() => {
                format!("generic instance variable {}", names[p])
            }
            Some(names) if p < lower => {
                format!("a generic instance variable, one of {}", name_list(names))
            }
            Some(names) => format!(
                "a generic instance variable (one of {}) or {otherwise}",
                name_list(names)
            ),
            None => "a generic instance variable".into(),
        }
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
        // Dropped dangling references would shift positions: the record's
        // own count says whether this object lost any.
        let exact = match facts.and_then(|f| f.references) {
            Some(r) => r == n as u64,
            None => heap.facts.dangling_refs == 0,
        };
        let first = positions[0];
        let t = heap.otype[from as usize];
        if heap.fields_owner(to) == Some(from) {
            return self.fields_object_label(to);
        }
        if t == types::IMEMO {
            if let Some(owner) = heap.fields_owner(from) {
                return self.fields_entry_label(from, owner, &positions, n);
            }
        }
        // The record's `shared` key (the model keeps it as a flag).
        let shared =
            heap.flags[from as usize] & flags::SHARED != 0 || facts.is_some_and(|f| f.shared);
        // Generic instance variables come first in a non-OBJECT's references.
        let type_refs_max = match t {
            types::STRING => Some(usize::from(shared)),
            types::ARRAY => {
                if shared {
                    Some(1)
                } else {
                    facts.and_then(|f| f.length.map(|l| l as usize))
                }
            }
            types::HASH => facts.and_then(|f| {
                f.size
                    .map(|s| 2 * s as usize + usize::from(f.default.is_some()))
            }),
            _ => None,
        };
        let (lower, upper, generic_names) = match t {
            types::OBJECT | types::CLASS | types::MODULE | types::ICLASS | types::IMEMO => {
                (0, 0, None)
            }
            _ => self.generic_split(from, n, type_refs_max),
        };
        let own_thing = match t {
            types::ARRAY => "an element",
            types::HASH => "a key or a value",
            types::STRING => "its shared string buffer",
            _ => "a reference",
        };
        if first < upper {
            return Self::generic_label(first, lower, upper, &generic_names, own_thing);
        }
        // The type's own references, after `lower` generic ivars (exact when
        // lower == upper).
        let skip = if lower == upper { upper } else { 0 };
        let split_known = lower == upper;
        let refs = &refs[skip..];
        let positions: Vec<usize> = positions.iter().map(|p| p - skip).collect();
        let n = refs.len();
        match t {
            types::ARRAY => {
                if shared {
                    return "its shared root (the array it shares elements with)".into();
                }
                match facts.and_then(|f| f.length) {
                    // As many references as elements: each is one.
                    Some(len) if split_known && len == n as u64 => {
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
                let pairs_known = split_known
                    && match facts.and_then(|f| f.size) {
                        Some(size) => entries as u64 == 2 * size,
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
            types::OBJECT => self.object_ivar_label(from, &positions, n, first, exact, facts),
            types::CLASS | types::MODULE => {
                if let Some(sc) = facts.and_then(|f| f.superclass) {
                    if heap.address[to as usize] == sc {
                        return "its superclass".into();
                    }
                }
                let name = self.class_name(from);
                if heap.otype[to as usize] == types::IMEMO {
                    // Ivars, constants and class variables are Ruby values,
                    // never IMEMOs.
                    return format!("a method entry or call cache of {name}");
                }
                // 3.2-3.4 mark a class's own ivars among its method table,
                // constants and class variables, in no order the dump shows.
                match self.named_ivars(from) {
                    Some(names) if !self.has_fields_object(from) => format!(
                        "a class-level instance variable (one of {}), or a constant, class \
                         variable or method of {name}",
                        name_list(&names)
                    ),
                    _ => format!("a constant, class variable or method of {name}"),
                }
            }
            // Ruby marks the shared root last.
            types::STRING => {
                if shared && positions.contains(&(n - 1)) {
                    "its shared string buffer".into()
                } else {
                    "a reference".into()
                }
            }
            types::ICLASS => "a method table or constant of an included module".into(),
            // A WeakKeyMap holds its values strongly while their keys live.
            types::DATA if heap.detail_str(from) == Some(b"weakkeymap") => {
                "a value of this ObjectSpace::WeakKeyMap (held while its key lives)".into()
            }
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

    /// How an OBJECT holds the value of one of its ivars.
    fn object_ivar_label(
        &self,
        from: ObjId,
        positions: &[usize],
        n: usize,
        first: usize,
        exact: bool,
        facts: Option<&RecordFacts>,
    ) -> String {
        let heap = self.graph.heap;
        let iv = self.ivar_names(from);
        let too_complex =
            facts.is_some_and(|f| f.too_complex) || iv.as_ref().is_some_and(|iv| iv.too_complex);
        if too_complex {
            return format!("an instance variable ({TOO_COMPLEX})");
        }
        match iv {
            Some(iv) if !iv.names.is_empty() => {
                if iv.names.len() == n {
                    let names: Vec<&str> =
                        positions.iter().map(|&p| iv.names[p].as_str()).collect();
                    format!("instance variable {}", names.join(", "))
                } else {
                    format!("an instance variable, one of {}", name_list(&iv.names))
                }
            }
            // A shape naming no ivars for an object holding references: 4.0
            // writes too complex objects with shape 0.
            Some(_) => format!("an instance variable ({TOO_COMPLEX})"),
            None => {
                let why = if heap.shapes.is_empty() && heap.facts.has_slot_size {
                    NO_SHAPES
                } else if heap.shapes.is_empty() {
                    BEFORE_3_2
                } else {
                    return "an instance variable".into();
                };
                if facts.and_then(|f| f.ivars) == Some(n as u64) && exact {
                    format!("instance variable #{} of {n} ({why})", first + 1)
                } else {
                    format!("an instance variable ({why})")
                }
            }
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
                types::ARRAY
                    | types::HASH
                    | types::OBJECT
                    | types::CLASS
                    | types::MODULE
                    | types::STRING
                    | types::IMEMO
            ) || heap.ivar_shape(id).is_some()
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

    #[test]
    fn ivar_names_in_the_ruby_3_4_fixture_stop_at_invalid_parents() {
        // T_OBJECT shapes have parent_id INVALID_SHAPE_ID, as real 3.4 writes.
        let heap = heap_of(include_str!("../../../tests/fixtures/ruby-3.4.jsonl"));
        let g = Graph::new(&heap, GraphOptions::default());
        let l = Labeler::new(&g);
        let post = heap.find(0x7f51e0812118).unwrap();
        assert_eq!(l.ivar_names(post).unwrap().names, ["@id", "@title"]);
        let draft = heap.find(0x7f51e08120a0).unwrap();
        assert_eq!(l.held_as(post, draft, None), "instance variable @id");
    }

    /// A 32-bit 3.4 dump: T_OBJECT under parent 65535; an object, a String
    /// with a generic ivar (marked before its shared root), a class with its
    /// own ivars and a method entry.
    const RUBY_3_4_32BIT: &str = r#"{"type":"ROOT", "root":"global_tbl", "references":["0x100", "0x200", "0x300"]}
{"address":"0x9000", "type":"SHAPE", "id":0, "depth":1, "shape_type":"ROOT", "edges":2, "memsize":1}
{"address":"0x9018", "type":"SHAPE", "id":3, "parent_id":65535, "depth":1, "shape_type":"T_OBJECT", "edges":1, "memsize":1}
{"address":"0x9030", "type":"SHAPE", "id":5, "parent_id":3, "depth":2, "shape_type":"IVAR","edge_name":"@a", "edges":0, "memsize":1}
{"address":"0x9048", "type":"SHAPE", "id":6, "parent_id":0, "depth":2, "shape_type":"IVAR","edge_name":"@tag", "edges":1, "memsize":1}
{"address":"0x9060", "type":"SHAPE", "id":7, "parent_id":6, "depth":3, "shape_type":"IVAR","edge_name":"@label", "edges":0, "memsize":1}
{"address":"0x100", "type":"OBJECT", "shape_id":5, "class":"0x500", "ivars":1, "references":["0x140"], "memsize":20}
{"address":"0x140", "type":"STRING", "shape_id":0, "class":"0x540", "value":"a", "memsize":20}
{"address":"0x200", "type":"STRING", "shape_id":6, "class":"0x540", "shared":true, "references":["0x240", "0x280"], "memsize":20}
{"address":"0x240", "type":"STRING", "shape_id":0, "class":"0x540", "value":"tag", "memsize":20}
{"address":"0x280", "type":"STRING", "shape_id":1, "class":"0x540", "frozen":true, "value":"root", "memsize":20}
{"address":"0x300", "type":"CLASS", "shape_id":7, "class":"0x580", "name":"Registry", "references":["0x340", "0x380"], "memsize":20}
{"address":"0x340", "type":"IMEMO", "imemo_type":"ment", "memsize":20}
{"address":"0x380", "type":"ARRAY", "shape_id":0, "class":"0x5c0", "length":0, "memsize":20}
{"address":"0x500", "type":"CLASS", "shape_id":0, "name":"Holder", "memsize":20}
{"address":"0x540", "type":"CLASS", "shape_id":0, "name":"String", "memsize":20}
{"address":"0x580", "type":"CLASS", "shape_id":0, "memsize":20}
{"address":"0x5c0", "type":"CLASS", "shape_id":0, "name":"Array", "memsize":20}
"#;

    fn facts_from_dump(text: &str, heap: &Heap) -> FastMap<ObjId, RecordFacts> {
        text.lines()
            .filter(|l| !l.contains("\"SHAPE\"") && !l.contains("\"ROOT\""))
            .filter_map(|l| {
                let f = RecordFacts::from_raw(l.as_bytes());
                let addr = address_after(l.as_bytes(), "address")?;
                Some((heap.find(addr)?, f))
            })
            .collect()
    }

    #[test]
    fn generic_and_class_level_ivars_on_ruby_3_4() {
        let heap = heap_of(RUBY_3_4_32BIT);
        let g = Graph::new(&heap, GraphOptions::default());
        let l = Labeler::new(&g);
        let facts = facts_from_dump(RUBY_3_4_32BIT, &heap);
        let id = |a| heap.find(a).unwrap();
        let held = |from, to| l.held_as(id(from), id(to), facts.get(&id(from)));
        assert_eq!(held(0x100, 0x140), "instance variable @a");
        // Only shapes that name ivars are kept for non-OBJECTs.
        assert_eq!(heap.ivar_shape(id(0x200)), Some(6));
        assert_eq!(heap.ivar_shape(id(0x280)), None);
        assert_eq!(held(0x200, 0x240), "generic instance variable @tag");
        assert_eq!(held(0x200, 0x280), "its shared string buffer");
        // The model keeps `shared`: the split is known without the record.
        assert_eq!(
            l.held_as(id(0x200), id(0x240), None),
            "generic instance variable @tag"
        );
        assert_eq!(
            held(0x300, 0x380),
            "a class-level instance variable (one of @tag, @label), or a constant, class \
             variable or method of Registry"
        );
        assert_eq!(
            held(0x300, 0x340),
            "a method entry or call cache of Registry"
        );
        assert_eq!(
            record_count(br#"{"references":["0x1", "0x2", "0x3"], "memsize":1}"#),
            Some(3)
        );
    }

    fn record_count(raw: &[u8]) -> Option<u64> {
        RecordFacts::from_raw(raw).references
    }

    /// A 4.0 dump: ivars in IMEMO `fields` objects, whose `class` is the owner.
    const RUBY_4_0_FIELDS: &str = r#"{"type":"ROOT", "root":"global_tbl", "references":["0x100", "0x200", "0x300", "0x400"]}
{"address":"0x9000", "type":"SHAPE", "id":0, "depth":1, "shape_type":"ROOT", "edges":2, "memsize":1}
{"address":"0x9018", "type":"SHAPE", "id":1, "parent_id":0, "depth":2, "shape_type":"IVAR","edge_name":"@w0", "edges":1, "memsize":1}
{"address":"0x9030", "type":"SHAPE", "id":2, "parent_id":1, "depth":3, "shape_type":"IVAR","edge_name":"@w1", "edges":0, "memsize":1}
{"address":"0x9048", "type":"SHAPE", "id":3, "parent_id":0, "depth":2, "shape_type":"IVAR","edge_name":"@registry", "edges":0, "memsize":1}
{"address":"0x100", "type":"OBJECT", "shape_id":2, "class":"0x500", "ivars":2, "references":["0x140"], "memsize":20}
{"address":"0x140", "type":"IMEMO", "shape_id":2, "class":"0x100", "imemo_type":"fields", "references":["0x180", "0x1c0"], "memsize":200}
{"address":"0x180", "type":"STRING", "shape_id":0, "class":"0x540", "value":"w0", "memsize":20}
{"address":"0x1c0", "type":"STRING", "shape_id":0, "class":"0x540", "value":"w1", "memsize":20}
{"address":"0x200", "type":"CLASS", "shape_id":3, "class":"0x580", "name":"Registry", "references":["0x240"], "memsize":20}
{"address":"0x240", "type":"IMEMO", "shape_id":3, "class":"0x200", "imemo_type":"fields", "references":["0x280"], "memsize":20}
{"address":"0x280", "type":"ARRAY", "shape_id":0, "class":"0x5c0", "length":0, "memsize":20}
{"address":"0x300", "type":"OBJECT", "shape_id":0, "class":"0x500", "ivars":1, "complex_shape":true, "references":["0x340"], "memsize":20}
{"address":"0x340", "type":"IMEMO", "shape_id":0, "class":"0x300", "imemo_type":"fields", "references":["0x380"], "memsize":60}
{"address":"0x380", "type":"STRING", "shape_id":0, "class":"0x540", "value":"x", "memsize":20}
{"address":"0x400", "type":"OBJECT", "shape_id":0, "class":"0x500", "ivars":1, "too_complex_shape":true, "references":["0x380"], "memsize":20}
{"address":"0x500", "type":"CLASS", "shape_id":0, "name":"Wide", "memsize":20}
{"address":"0x540", "type":"CLASS", "shape_id":0, "name":"String", "memsize":20}
{"address":"0x580", "type":"CLASS", "shape_id":0, "real_class_name":"Class", "memsize":20}
{"address":"0x5c0", "type":"CLASS", "shape_id":0, "name":"Array", "memsize":20}
"#;

    #[test]
    fn fields_objects_name_their_owners_ivars() {
        let heap = heap_of(RUBY_4_0_FIELDS);
        let g = Graph::new(&heap, GraphOptions::default());
        let l = Labeler::new(&g);
        let facts = facts_from_dump(RUBY_4_0_FIELDS, &heap);
        let id = |a| heap.find(a).unwrap();
        let held = |from, to| l.held_as(id(from), id(to), facts.get(&id(from)));
        assert_eq!(heap.fields_owner(id(0x140)), Some(id(0x100)));
        assert_eq!(
            held(0x100, 0x140),
            "its instance variables (a fields object: @w0, @w1)"
        );
        assert_eq!(
            held(0x140, 0x1c0),
            "instance variable @w1 of its owner (Wide)"
        );
        assert_eq!(
            held(0x240, 0x280),
            "class-level instance variable @registry of Registry"
        );
        assert_eq!(
            held(0x340, 0x380),
            "an instance variable of its owner (Wide) (names not in this dump: the owner's \
             shape is too complex)"
        );
        // 4.0 writes a too complex object with shape 0 and its values inline.
        assert_eq!(
            held(0x400, 0x380),
            "an instance variable (names not in this dump: the object's shape is too complex)"
        );
        assert!(facts[&id(0x300)].too_complex && facts[&id(0x400)].too_complex);
        // Grouped by class, a fields object counts under its owner's class.
        assert_eq!(heap.class_display(heap.grouping_class(id(0x140))), "Wide");
        assert_eq!(
            heap.grouping_class(id(0x180)),
            heap.class[id(0x180) as usize]
        );
    }

    #[test]
    fn dumps_without_shapes_say_so() {
        // 3.2+ keys (shape_id) but no SHAPE records: dump_all(shapes: false).
        let text = r#"{"type":"ROOT", "root":"global_tbl", "references":["0x100"]}
{"address":"0x100", "type":"OBJECT", "shape_id":5, "class":"0x500", "ivars":2, "references":["0x140", "0x180"], "memsize":20}
{"address":"0x140", "type":"STRING", "shape_id":0, "class":"0x540", "memsize":20}
{"address":"0x180", "type":"STRING", "shape_id":0, "class":"0x540", "memsize":20}
"#;
        let heap = heap_of(text);
        let g = Graph::new(&heap, GraphOptions::default());
        let l = Labeler::new(&g);
        let facts = facts_from_dump(text, &heap);
        let o = heap.find(0x100).unwrap();
        let s = heap.find(0x180).unwrap();
        assert_eq!(
            l.held_as(o, s, facts.get(&o)),
            "instance variable #2 of 2 (names not in this dump: it was written without shapes)"
        );
        assert_eq!(
            l.held_as(o, s, None),
            "an instance variable (names not in this dump: it was written without shapes)"
        );
    }

    #[test]
    fn long_name_lists_are_cut() {
        let names: Vec<String> = (0..30).map(|i| format!("@w{i}")).collect();
        assert_eq!(name_list(&names[..3]), "@w0, @w1, @w2");
        assert_eq!(name_list(&names), "@w0, @w1, @w2, @w3, @w4, … (30 in all)");
        assert_eq!(with_article("Array"), "an Array");
        assert_eq!(with_article("String"), "a String");
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
