//! Building a [`Heap`]: chunk-local [`PartialHeap`]s are filled in parallel,
//! then appended in file order to a [`HeapBuilder`], which remaps their local
//! string, class and location ids to global ones and finally resolves addresses.

use crate::intern::{FastMap, Interner, StrId};
use crate::AddressIndex;
use crate::{
    types, ClassId, ClassInfo, DumpFacts, Heap, LocId, Location, ObjId, Root, Shape, NO_CLASS,
    NO_GENERATION, NO_LOC, NO_OBJ, TRACER_STRUCT,
};

/// The type-dependent detail of an object (see [`Heap::detail`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail<'a> {
    None,
    Str(&'a [u8]),
    /// Only for OBJECT: its shape id.
    Number(u32),
}

/// One heap object as the reader hands it over.
#[derive(Debug, Clone, Copy)]
pub struct ObjectRecord<'a> {
    pub address: u64,
    pub type_name: &'a [u8],
    pub class: Option<u64>,
    pub flags: u8,
    pub memsize: u64,
    pub file: Option<&'a [u8]>,
    pub line: Option<u32>,
    pub method: Option<&'a [u8]>,
    pub generation: Option<u32>,
    pub detail: Detail<'a>,
    pub refs: &'a [u64],
    pub object_id: Option<u64>,
    /// For a CLASS without a name (a singleton class): the name of the class
    /// its instances report from `#class`.
    pub real_class_name: Option<&'a [u8]>,
}

#[derive(Debug, Clone, Copy)]
pub struct RootRecord<'a> {
    pub category: &'a [u8],
    pub refs: &'a [u64],
}

#[derive(Debug, Clone, Copy, Default)]
pub struct ShapeRecord<'a> {
    pub address: u64,
    pub id: u32,
    pub parent_id: Option<u32>,
    pub depth: u32,
    pub shape_type: Option<&'a [u8]>,
    pub edge_name: Option<&'a [u8]>,
    pub capacity: Option<u32>,
    pub edges: u32,
    pub memsize: u64,
}

/// Most hops followed from a shared string to a string with a value.
pub const SHARED_STRING_HOPS: usize = 16;

/// Gives each shared string without a value its root string's value. A root
/// is normally not shared itself; a chain is followed for a few hops (a
/// cycle, which no real dump has, ends there).
fn resolve_shared_strings(heap: &mut Heap, notes: &[(ObjId, u64)]) {
    let roots: Vec<(ObjId, ObjId)> = notes
        .iter()
        .filter_map(|&(id, a)| heap.find(a).map(|root| (id, root)))
        .filter(|&(_, root)| heap.otype[root as usize] == types::STRING)
        .collect();
    // Nearly every root has the value: only the others need a map to walk.
    let mut values = Vec::with_capacity(roots.len());
    let mut chained = Vec::new();
    for &(id, root) in &roots {
        match heap.detail[root as usize] {
            u32::MAX => chained.push((id, root)),
            d => values.push((id, d)),
        }
    }
    if !chained.is_empty() {
        let root_of: FastMap<ObjId, ObjId> = roots.iter().copied().collect();
        for (id, mut x) in chained {
            for _ in 1..SHARED_STRING_HOPS {
                match root_of.get(&x) {
                    Some(&root) => x = root,
                    None => break,
                }
                if heap.detail[x as usize] != u32::MAX {
                    values.push((id, heap.detail[x as usize]));
                    break;
                }
            }
        }
    }
    drop(roots);
    for (id, d) in values {
        heap.detail[id as usize] = d;
    }
}

/// IMEMO types whose klass word (dumped as `class` before Ruby 3.2, and left
/// out of `references`) is a field the GC marks: a constant cache's value, an
/// env's iseq, a method entry's defined class, a cref's refinements, an
/// svar's cref_or_me, an iseq's wrapper. Not callcache (its klass is weak)
/// nor callinfo, nor the types whose second word is not an object.
pub const IMEMO_KLASS_MARKED: &[&[u8]] =
    &[b"constcache", b"env", b"ment", b"cref", b"svar", b"iseq"];

/// Unknown type names are stored as `UNKNOWN_BASE + k`, k indexing `unknown_types`.
const UNKNOWN_BASE: u8 = 128;

/// The objects of one chunk of a dump, with chunk-local string ids.
#[derive(Default)]
pub struct PartialHeap {
    strings: Interner,
    unknown_types: Vec<Box<[u8]>>,
    with_refs: bool,
    address: Vec<u64>,
    otype: Vec<u8>,
    flags: Vec<u8>,
    memsize: Vec<u64>,
    class_addr: Vec<u64>,
    location: Vec<LocId>,
    locations: Vec<Location>,
    loc_map: FastMap<(u32, u32), LocId>,
    method: Vec<StrId>,
    generation: Vec<u32>,
    detail: Vec<u32>,
    ref_ends: Vec<u32>,
    ref_addrs: Vec<u64>,
    roots: Vec<(StrId, u32)>,
    root_addrs: Vec<u64>,
    shapes: Vec<Shape>,
    object_ids: Vec<(u32, u64)>,
    real_class_names: Vec<(u32, StrId)>,
    /// `(IMEMO, class address)` of IMEMOs whose klass word the GC marks
    /// (kept only for dumps before Ruby 3.2, see [`Heap::imemo_klass`]).
    imemo_klass_notes: Vec<(u32, u64)>,
    /// `(object, shape_id)` of non-OBJECT objects with a nonzero shape id.
    shape_notes: Vec<(u32, u32)>,
    /// `(fields object, owner address)`.
    owner_notes: Vec<(u32, u64)>,
    /// `(shared string without a value, its root's address)`.
    shared_notes: Vec<(u32, u64)>,
    facts: DumpFacts,
}

impl PartialHeap {
    pub fn new(with_refs: bool) -> Self {
        PartialHeap {
            with_refs,
            ..Default::default()
        }
    }

    pub fn len(&self) -> usize {
        self.address.len()
    }

    pub fn is_empty(&self) -> bool {
        self.address.is_empty()
    }

    pub fn facts_mut(&mut self) -> &mut DumpFacts {
        &mut self.facts
    }

    fn intern_opt(&mut self, s: Option<&[u8]>) -> StrId {
        match s {
            Some(s) => self.strings.intern(s),
            None => StrId::NONE,
        }
    }

    pub fn push_object(&mut self, r: &ObjectRecord<'_>) {
        let t = match types::known(r.type_name) {
            Some(t) => t,
            None => {
                let k = match self.unknown_types.iter().position(|u| **u == *r.type_name) {
                    Some(k) => k,
                    None => {
                        self.unknown_types.push(r.type_name.into());
                        self.unknown_types.len() - 1
                    }
                };
                UNKNOWN_BASE + k.min(126) as u8
            }
        };
        let idx = self.address.len() as u32;
        self.address.push(r.address);
        self.otype.push(t);
        self.flags.push(r.flags);
        self.memsize.push(r.memsize);
        // IMEMO and NODE classes are meaningless (or absent): never resolve them.
        let class = match t {
            types::IMEMO | types::NODE => 0,
            _ => r.class.unwrap_or(0),
        };
        self.class_addr.push(class);
        let loc = match r.file {
            Some(f) => {
                let file = self.strings.intern(f);
                let line = r.line.unwrap_or(0);
                let next = self.locations.len() as LocId;
                *self.loc_map.entry((file.0, line)).or_insert_with(|| {
                    self.locations.push(Location { file, line });
                    next
                })
            }
            None => NO_LOC,
        };
        self.location.push(loc);
        let method = self.intern_opt(r.method);
        self.method.push(method);
        if r.file.is_some() || r.generation.is_some() {
            self.facts.traced_objects += 1;
        }
        self.generation.push(r.generation.unwrap_or(NO_GENERATION));
        let detail = match (r.detail, t) {
            (Detail::Number(n), types::OBJECT) => n,
            (Detail::Str(s), t) if t != types::OBJECT => self.strings.intern(s).0,
            _ => u32::MAX,
        };
        self.detail.push(detail);
        if self.with_refs {
            self.ref_addrs.extend_from_slice(r.refs);
            self.ref_ends.push(self.ref_addrs.len() as u32);
        }
        if let Some(oid) = r.object_id {
            self.object_ids.push((idx, oid));
        }
        if let Some(real) = r.real_class_name {
            let real = self.strings.intern(real);
            self.real_class_names.push((idx, real));
        }
        match (t, r.detail, r.class) {
            (types::CLASS | types::MODULE, _, _) => self.facts.class_records += 1,
            (types::IMEMO, Detail::Str(imemo_type), Some(klass))
                if klass != 0 && IMEMO_KLASS_MARKED.contains(&imemo_type) =>
            {
                self.imemo_klass_notes.push((idx, klass));
            }
            _ => {}
        }
    }

    /// A free slot (`"type":"NONE"`, from `dump_all(full: true)`): counted,
    /// not kept as an object.
    pub fn count_free_slot(&mut self) {
        self.facts.free_slots += 1;
    }

    /// The shape id of the object pushed last, when it is not an OBJECT
    /// (whose shape id is its detail). Kept only if the shape turns out to
    /// name instance variables ([`Heap::ivar_shapes`]).
    pub fn note_shape_id(&mut self, shape_id: u32) {
        if let Some(last) = self.address.len().checked_sub(1) {
            self.shape_notes.push((last as u32, shape_id));
        }
    }

    /// The object pushed last is an IMEMO `fields` object of the object at
    /// `owner` (Ruby 4.0+).
    pub fn note_fields_owner(&mut self, owner: u64) {
        if let Some(last) = self.address.len().checked_sub(1) {
            self.owner_notes.push((last as u32, owner));
        }
    }

    /// The object pushed last is a shared string (no value of its own) whose
    /// root string is at `root`: it gets the root's value.
    pub fn note_shared_root(&mut self, root: u64) {
        if let Some(last) = self.address.len().checked_sub(1) {
            self.shared_notes.push((last as u32, root));
        }
    }

    pub fn push_root(&mut self, r: &RootRecord<'_>) {
        let cat = self.strings.intern(r.category);
        self.root_addrs.extend_from_slice(r.refs);
        self.roots.push((cat, self.root_addrs.len() as u32));
    }

    pub fn push_shape(&mut self, r: &ShapeRecord<'_>) {
        self.facts.has_shapes = true;
        let shape_type = self.intern_opt(r.shape_type);
        let edge_name = self.intern_opt(r.edge_name);
        self.shapes.push(Shape {
            address: r.address,
            id: r.id,
            parent_id: r.parent_id,
            depth: r.depth,
            shape_type,
            edge_name,
            capacity: r.capacity,
            edges: r.edges,
            memsize: r.memsize,
        });
    }
}

/// Appends [`PartialHeap`]s in file order and produces the final [`Heap`].
pub struct HeapBuilder {
    heap: Heap,
    with_refs: bool,
    class_map: FastMap<u64, ClassId>,
    loc_map: FastMap<Location, LocId>,
    ref_addrs: Vec<u64>,
    root_addrs: Vec<u64>,
    real_class_names: FastMap<ObjId, StrId>,
    imemo_klass_notes: Vec<(ObjId, u64)>,
    shape_notes: Vec<(ObjId, u32)>,
    owner_notes: Vec<(ObjId, u64)>,
    shared_notes: Vec<(ObjId, u64)>,
}

impl HeapBuilder {
    /// `expected_objects` pre-sizes the columns (0 when unknown), which avoids
    /// the doubling reallocations that would otherwise double peak memory.
    pub fn new(with_refs: bool, expected_objects: usize) -> Self {
        let mut heap = Heap {
            type_names: types::KNOWN.iter().map(|s| Box::from(*s)).collect(),
            references_loaded: with_refs,
            ..Default::default()
        };
        let n = expected_objects;
        heap.address.reserve_exact(n);
        heap.otype.reserve_exact(n);
        heap.flags.reserve_exact(n);
        heap.memsize.reserve_exact(n);
        heap.class.reserve_exact(n);
        heap.location.reserve_exact(n);
        heap.method.reserve_exact(n);
        heap.generation.reserve_exact(n);
        heap.detail.reserve_exact(n);
        if with_refs {
            heap.ref_offsets.reserve_exact(n + 1);
            heap.ref_offsets.push(0);
        }
        HeapBuilder {
            heap,
            with_refs,
            class_map: FastMap::default(),
            loc_map: FastMap::default(),
            ref_addrs: Vec::new(),
            root_addrs: Vec::new(),
            real_class_names: FastMap::default(),
            imemo_klass_notes: Vec::new(),
            shape_notes: Vec::new(),
            owner_notes: Vec::new(),
            shared_notes: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    pub fn append(&mut self, p: PartialHeap) {
        let h = &mut self.heap;
        let base = h.address.len() as ObjId;
        let smap: Vec<StrId> = p.strings.iter().map(|(_, s)| h.strings.intern(s)).collect();
        let remap = |s: StrId| if s.is_none() { s } else { smap[s.0 as usize] };

        let type_map: Vec<u8> = p
            .unknown_types
            .iter()
            .map(|name| {
                let text = String::from_utf8_lossy(name);
                match h.type_names.iter().position(|t| **t == *text) {
                    Some(i) => i as u8,
                    None if h.type_names.len() < UNKNOWN_BASE as usize => {
                        h.type_names.push(text.into());
                        (h.type_names.len() - 1) as u8
                    }
                    None => (UNKNOWN_BASE - 1).min(h.type_names.len() as u8 - 1),
                }
            })
            .collect();
        let loc_ids: Vec<LocId> = p
            .locations
            .iter()
            .map(|l| {
                let g = Location {
                    file: remap(l.file),
                    line: l.line,
                };
                let next = h.locations.len() as LocId;
                *self.loc_map.entry(g).or_insert_with(|| {
                    h.locations.push(g);
                    next
                })
            })
            .collect();

        h.address.extend_from_slice(&p.address);
        h.flags.extend_from_slice(&p.flags);
        for (i, &t) in p.otype.iter().enumerate() {
            let t = if t >= UNKNOWN_BASE {
                type_map[(t - UNKNOWN_BASE) as usize]
            } else {
                t
            };
            h.otype.push(t);
            let d = p.detail[i];
            h.detail.push(if t == types::OBJECT || d == u32::MAX {
                d
            } else {
                smap[d as usize].0
            });
        }
        for (i, &m) in p.memsize.iter().enumerate() {
            if m >= u32::MAX as u64 {
                h.memsize.push(u32::MAX);
                h.memsize_big.insert(base + i as ObjId, m);
            } else {
                h.memsize.push(m as u32);
            }
        }
        for &addr in &p.class_addr {
            if addr == 0 {
                h.class.push(NO_CLASS);
                continue;
            }
            let next = h.classes.len() as ClassId;
            let classes = &mut h.classes;
            let id = *self.class_map.entry(addr).or_insert_with(|| {
                classes.push(ClassInfo {
                    address: addr,
                    object: NO_OBJ,
                    name: StrId::NONE,
                    real_name: StrId::NONE,
                });
                next
            });
            h.class.push(id);
        }
        h.location.extend(p.location.iter().map(
            |&l| {
                if l == NO_LOC {
                    l
                } else {
                    loc_ids[l as usize]
                }
            },
        ));
        h.method.extend(p.method.iter().map(|&m| remap(m)));
        h.generation.extend_from_slice(&p.generation);
        if self.with_refs {
            let off = self.ref_addrs.len() as u64;
            self.ref_addrs.extend_from_slice(&p.ref_addrs);
            h.ref_offsets
                .extend(p.ref_ends.iter().map(|&e| off + e as u64));
        }
        let root_off = self.root_addrs.len();
        let mut start = root_off;
        self.root_addrs.extend_from_slice(&p.root_addrs);
        for &(cat, end) in &p.roots {
            let end = root_off + end as usize;
            let category = remap(cat);
            h.roots.push(Root {
                category,
                conservative: h.strings.get(category) == b"machine_context",
                refs: start..end,
            });
            start = end;
        }
        for s in p.shapes {
            h.shapes.push(Shape {
                shape_type: remap(s.shape_type),
                edge_name: remap(s.edge_name),
                ..s
            });
        }
        for (i, oid) in p.object_ids {
            h.object_ids.insert(base + i, oid);
        }
        for (i, real) in p.real_class_names {
            self.real_class_names.insert(base + i, remap(real));
        }
        self.imemo_klass_notes
            .extend(p.imemo_klass_notes.iter().map(|&(i, a)| (base + i, a)));
        self.shape_notes
            .extend(p.shape_notes.iter().map(|&(i, s)| (base + i, s)));
        self.owner_notes
            .extend(p.owner_notes.iter().map(|&(i, a)| (base + i, a)));
        self.shared_notes
            .extend(p.shared_notes.iter().map(|&(i, a)| (base + i, a)));
        let f = &mut h.facts;
        f.traced_objects += p.facts.traced_objects;
        f.has_shapes |= p.facts.has_shapes;
        f.integer_flags |= p.facts.integer_flags;
        f.has_slot_size |= p.facts.has_slot_size;
        f.free_slots += p.facts.free_slots;
        f.class_records += p.facts.class_records;
    }

    /// Resolves addresses (references, roots, classes) to object ids.
    pub fn finish(self) -> Heap {
        let HeapBuilder {
            mut heap,
            with_refs,
            ref_addrs,
            root_addrs,
            real_class_names,
            imemo_klass_notes,
            shape_notes,
            owner_notes,
            shared_notes,
            ..
        } = self;
        shrink_columns(&mut heap);
        build_address_index(&mut heap);

        if with_refs {
            let mut dangling = 0u64;
            let mut refs = Vec::with_capacity(ref_addrs.len());
            let mut offsets = Vec::with_capacity(heap.ref_offsets.len());
            offsets.push(0u64);
            for w in heap.ref_offsets.windows(2) {
                for &a in &ref_addrs[w[0] as usize..w[1] as usize] {
                    match heap.find(a) {
                        Some(id) => refs.push(id),
                        None => dangling += 1,
                    }
                }
                offsets.push(refs.len() as u64);
            }
            drop(ref_addrs);
            refs.shrink_to_fit();
            heap.refs = refs;
            heap.ref_offsets = offsets;
            heap.facts.dangling_refs = dangling;
        }

        let mut root_refs = Vec::with_capacity(root_addrs.len());
        let mut roots = std::mem::take(&mut heap.roots);
        for root in &mut roots {
            let start = root_refs.len();
            for &a in &root_addrs[root.refs.clone()] {
                if let Some(id) = heap.find(a) {
                    root_refs.push(id);
                }
            }
            root.refs = start..root_refs.len();
        }
        heap.roots = roots;
        heap.root_refs = root_refs;

        for i in 0..heap.classes.len() {
            let addr = heap.classes[i].address;
            if let Some(obj) = heap.find(addr) {
                let t = heap.otype[obj as usize];
                heap.classes[i].object = obj;
                if t == types::CLASS || t == types::MODULE {
                    heap.classes[i].name = StrId(heap.detail[obj as usize]);
                }
                if let Some(&real) = real_class_names.get(&obj) {
                    heap.classes[i].real_name = real;
                }
            }
        }

        if !shape_notes.is_empty() {
            let named = shapes_naming_ivars(&heap);
            heap.ivar_shapes = shape_notes
                .into_iter()
                .filter(|(_, s)| named.contains_key(s))
                .collect();
        }
        resolve_shared_strings(&mut heap, &shared_notes);
        heap.fields_owner = owner_notes
            .into_iter()
            .filter_map(|(id, a)| heap.find(a).map(|owner| (id, owner)))
            .collect();

        // From 3.2 on IMEMOs carry no `class` (4.0's `fields` carry their
        // owner) and `references` are complete: only older dumps have these.
        if with_refs && !heap.facts.has_shapes && !heap.facts.has_slot_size {
            heap.imemo_klass = imemo_klass_notes
                .into_iter()
                .filter_map(|(id, a)| heap.find(a).map(|target| (id, target)))
                .collect();
        }

        if let Some(tracer_struct) = heap.strings.find(TRACER_STRUCT) {
            heap.tracer = heap.ids().find(|&id| {
                heap.otype[id as usize] == types::DATA
                    && heap.detail[id as usize] == tracer_struct.0
            });
        }
        heap.agent = crate::agent::AgentMarks::compute(&heap);
        heap.facts.max_generation = heap
            .generation
            .iter()
            .copied()
            .filter(|&g| g != NO_GENERATION)
            .max();
        heap
    }
}

/// The ids of shapes with an IVAR shape on their way to the root.
fn shapes_naming_ivars(h: &Heap) -> FastMap<u32, ()> {
    let Some(ivar) = h.strings.find(b"IVAR") else {
        return FastMap::default();
    };
    let index: FastMap<u32, usize> = h
        .shapes
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id, i))
        .collect();
    let mut known: FastMap<u32, bool> = FastMap::default();
    let mut out = FastMap::default();
    for s in &h.shapes {
        // Walk up until a shape whose answer is known, an IVAR or the root;
        // every shape passed on the way gets the same answer.
        let mut passed = Vec::new();
        let mut cur = Some(s.id);
        let answer = loop {
            let Some(id) = cur else { break false };
            if let Some(&k) = known.get(&id) {
                break k;
            }
            let Some(&i) = index.get(&id) else {
                break false;
            };
            if h.shapes[i].shape_type == ivar {
                passed.push(id);
                break true;
            }
            if passed.len() > h.shapes.len() {
                break false; // a cycle
            }
            passed.push(id);
            cur = h.shapes[i].parent_id;
        };
        for id in passed {
            known.insert(id, answer);
            if answer {
                out.insert(id, ());
            }
        }
    }
    out
}

fn shrink_columns(h: &mut Heap) {
    h.address.shrink_to_fit();
    h.otype.shrink_to_fit();
    h.flags.shrink_to_fit();
    h.memsize.shrink_to_fit();
    h.class.shrink_to_fit();
    h.location.shrink_to_fit();
    h.method.shrink_to_fit();
    h.generation.shrink_to_fit();
    h.detail.shrink_to_fit();
    h.ref_offsets.shrink_to_fit();
}

/// Builds the address index. Ruby writes each heap page's objects together
/// and in address order, though pages come in any order; then a map from
/// 16 KiB page to the run of file positions on it is enough, with no sort.
/// Other inputs (hand-made, or broken) fall back to a sorted permutation.
/// Duplicate addresses (only in broken dumps) are counted; lookups find one.
fn build_address_index(h: &mut Heap) {
    if let Some(pages) = page_runs(&h.address) {
        h.index = AddressIndex {
            pages,
            by_address: Vec::new(),
        };
        return;
    }
    let mut ids: Vec<ObjId> = h.ids().collect();
    ids.sort_unstable_by_key(|&id| (h.address[id as usize], id));
    let mut dups = 0;
    ids.dedup_by(|b, a| {
        let same = h.address[*a as usize] == h.address[*b as usize];
        dups += same as u64;
        same
    });
    h.facts.duplicate_addresses = dups;
    let mut pages: FastMap<u64, (u32, u32)> = FastMap::default();
    for (pos, &id) in ids.iter().enumerate() {
        let page = h.address[id as usize] >> PAGE_SHIFT;
        pages
            .entry(page)
            .and_modify(|r| r.1 = pos as u32 + 1)
            .or_insert((pos as u32, pos as u32 + 1));
    }
    h.index = AddressIndex {
        pages,
        by_address: ids,
    };
}

/// Page -> run of positions, if every page's objects are contiguous and ascending.
fn page_runs(address: &[u64]) -> Option<FastMap<u64, (u32, u32)>> {
    let mut pages: FastMap<u64, (u32, u32)> = FastMap::default();
    let mut i = 0;
    while i < address.len() {
        let page = address[i] >> PAGE_SHIFT;
        let mut j = i + 1;
        while j < address.len() && address[j] >> PAGE_SHIFT == page && address[j] > address[j - 1] {
            j += 1;
        }
        if j < address.len() && address[j] >> PAGE_SHIFT == page {
            return None; // out of order within a page
        }
        if pages.insert(page, (i as u32, j as u32)).is_some() {
            return None; // a page split in two runs
        }
        i = j;
    }
    Some(pages)
}

pub(crate) const PAGE_SHIFT: u32 = 14;

#[cfg(test)]
mod tests {
    use super::*;

    fn object<'a>(address: u64, type_name: &'a [u8], class: Option<u64>) -> ObjectRecord<'a> {
        ObjectRecord {
            address,
            type_name,
            class,
            flags: 0,
            memsize: 40,
            file: None,
            line: None,
            method: None,
            generation: None,
            detail: Detail::None,
            refs: &[],
            object_id: None,
            real_class_name: None,
        }
    }

    fn shape<'a>(id: u32, parent: Option<u32>, kind: &'a [u8]) -> ShapeRecord<'a> {
        ShapeRecord {
            id,
            parent_id: parent,
            shape_type: Some(kind),
            edge_name: (kind == b"IVAR").then_some(b"@x".as_slice()),
            ..ShapeRecord::default()
        }
    }

    #[test]
    fn ivar_shapes_and_fields_owners_across_partials() {
        // Shapes: 0 ROOT, 1 FROZEN, 2 IVAR under 0, 3 FROZEN under 2.
        let mut a = PartialHeap::new(false);
        a.push_shape(&shape(0, None, b"ROOT"));
        a.push_shape(&shape(1, Some(0), b"FROZEN"));
        a.push_shape(&shape(2, Some(0), b"IVAR"));
        a.push_shape(&shape(3, Some(2), b"FROZEN"));
        a.push_object(&object(0x1000, b"STRING", Some(0x5000)));
        a.note_shape_id(1); // frozen, no ivars: not kept
        a.push_object(&object(0x1028, b"STRING", Some(0x5000)));
        a.note_shape_id(3); // frozen with an ivar: kept
        let mut b = PartialHeap::new(false);
        b.push_object(&object(0x1050, b"IMEMO", Some(0x1028)));
        b.note_shape_id(2);
        b.note_fields_owner(0x1028);
        b.push_object(&object(0x5000, b"CLASS", None));
        let mut builder = HeapBuilder::new(false, 0);
        builder.append(a);
        builder.append(b);
        let h = builder.finish();
        let id = |a| h.find(a).unwrap();
        assert_eq!(h.ivar_shape(id(0x1000)), None);
        assert_eq!(h.ivar_shape(id(0x1028)), Some(3));
        assert_eq!(h.ivar_shape(id(0x1050)), Some(2));
        assert_eq!(h.fields_owner(id(0x1050)), Some(id(0x1028)));
        assert_eq!(h.fields_owner(id(0x1028)), None);
        // The fields object has no class of its own; grouped, it takes its owner's.
        assert_eq!(h.class[id(0x1050) as usize], NO_CLASS);
        assert_eq!(h.grouping_class(id(0x1050)), h.class[id(0x1028) as usize]);
    }

    /// The memoised walk of `shapes_naming_ivars` against a plain walk up
    /// from every shape, on random shape forests (with cycles and missing
    /// parents).
    #[test]
    fn shapes_naming_ivars_matches_a_plain_walk() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |m: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % m
        };
        for _ in 0..200 {
            let n = 1 + next(40) as u32;
            let mut p = PartialHeap::new(false);
            let kinds: [&[u8]; 3] = [b"ROOT", b"IVAR", b"FROZEN"];
            for id in 0..n {
                // Parents anywhere (cycles), or missing (n + 5), or none.
                let parent = match next(5) {
                    0 => None,
                    1 => Some(n + 5),
                    _ => Some(next(n as u64) as u32),
                };
                p.push_shape(&shape(id, parent, kinds[next(3) as usize]));
            }
            let mut b = HeapBuilder::new(false, 0);
            b.append(p);
            let h = b.finish();
            let got = shapes_naming_ivars(&h);
            let ivar = h.strings.find(b"IVAR");
            for s in &h.shapes {
                let mut cur = Some(s.id);
                let mut want = false;
                for _ in 0..=h.shapes.len() {
                    let Some(sh) = cur.and_then(|c| h.shapes.iter().find(|x| x.id == c)) else {
                        break;
                    };
                    if Some(sh.shape_type) == ivar {
                        want = true;
                        break;
                    }
                    cur = sh.parent_id;
                }
                assert_eq!(
                    got.contains_key(&s.id),
                    want,
                    "shape {} of {:?}",
                    s.id,
                    h.shapes
                );
            }
        }
    }
}
