//! The in-memory model of one Ruby heap dump.
//!
//! Objects are numbered `0..n` in file order ([`ObjId`]) and their attributes are
//! kept in parallel columns, so a multi-GB dump fits in a few hundred MB:
//! 42 bytes per object when references are loaded, plus 4 bytes per reference.
//! Strings (file paths, method names, class names, string values) are interned.
//! References form a compressed sparse row (CSR) array: the references of object
//! `i` are `refs[ref_offsets[i]..ref_offsets[i + 1]]`.
//!
//! A heap is built from [`PartialHeap`]s (one per chunk of the file, filled in
//! parallel by the reader) appended in file order to a [`HeapBuilder`].

pub mod agent;
mod build;
mod intern;

pub use agent::{is_agent_class_name, is_agent_file, AgentMarks, AgentShare};
pub use build::{
    Detail, HeapBuilder, ObjectRecord, PartialHeap, RootRecord, ShapeRecord, SHARED_STRING_HOPS,
};
pub use intern::{hash_bytes, FastHash, FastMap, Interner, StrId};

/// Dense id of a heap object: its index in file order.
pub type ObjId = u32;
/// "No object".
pub const NO_OBJ: ObjId = u32::MAX;
/// Index into [`Heap::classes`].
pub type ClassId = u32;
pub const NO_CLASS: ClassId = u32::MAX;
/// Index into [`Heap::locations`].
pub type LocId = u32;
pub const NO_LOC: LocId = u32::MAX;
/// Generation column value for objects allocated while tracing was off.
pub const NO_GENERATION: u32 = u32::MAX;

/// The `struct` of the DATA object in which Ruby's allocation tracing keeps its
/// table. It is bookkeeping, not the app's memory, so analyses leave it out.
pub const TRACER_STRUCT: &[u8] = b"ObjectTracing/allocation_info_tracer";

/// Object types by index into [`Heap::type_names`]. Types not in this list
/// (from future Rubies) get indexes after these, per heap.
pub mod types {
    pub const KNOWN: &[&str] = &[
        "OBJECT", "CLASS", "MODULE", "FLOAT", "STRING", "REGEXP", "ARRAY", "HASH", "STRUCT",
        "BIGNUM", "FILE", "DATA", "MATCH", "COMPLEX", "RATIONAL", "SYMBOL", "IMEMO", "ICLASS",
        "NODE", "ZOMBIE", "MOVED", "NONE", "NIL", "TRUE", "FALSE", "FIXNUM", "UNDEF",
    ];
    pub const OBJECT: u8 = 0;
    pub const CLASS: u8 = 1;
    pub const MODULE: u8 = 2;
    pub const FLOAT: u8 = 3;
    pub const STRING: u8 = 4;
    pub const ARRAY: u8 = 6;
    pub const HASH: u8 = 7;
    pub const DATA: u8 = 11;
    pub const SYMBOL: u8 = 15;
    pub const IMEMO: u8 = 16;
    pub const ICLASS: u8 = 17;
    pub const NODE: u8 = 18;

    /// Index of a known type name.
    pub fn known(name: &[u8]) -> Option<u8> {
        KNOWN
            .iter()
            .position(|k| k.as_bytes() == name)
            .map(|i| i as u8)
    }
}

/// Bits of [`Heap::flags`]: the object's `frozen` key and the GC flags Ruby
/// dumps (whatever the version calls them).
pub mod flags {
    pub const FROZEN: u8 = 1;
    pub const OLD: u8 = 2;
    pub const UNCOLLECTIBLE: u8 = 4;
    pub const MARKED: u8 = 8;
    pub const WB_PROTECTED: u8 = 16;
    pub const PINNED: u8 = 32;
    pub const EMBEDDED: u8 = 64;
    pub const SHARED: u8 = 128;
}

/// A class or module that objects point at, found by address.
#[derive(Debug, Clone)]
pub struct ClassInfo {
    pub address: u64,
    /// The CLASS/MODULE/ICLASS record, when the dump has it.
    pub object: ObjId,
    /// Its `name`, when it has one (anonymous classes have none).
    pub name: StrId,
    /// For a singleton class (Ruby 3.1+ dumps): its `real_class_name`, the
    /// class that its instances' `#class` returns (`Class` for metaclasses).
    pub real_name: StrId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Location {
    pub file: StrId,
    pub line: u32,
}

/// One ROOT record: a category of GC roots and the objects it references.
#[derive(Debug, Clone)]
pub struct Root {
    pub category: StrId,
    /// `machine_context` roots are found by scanning C stacks conservatively.
    pub conservative: bool,
    pub refs: std::ops::Range<usize>,
}

/// A SHAPE record (Ruby 3.2+). Its address is a C pointer, not a heap slot, so
/// shapes live apart from objects.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Shape {
    pub address: u64,
    pub id: u32,
    pub parent_id: Option<u32>,
    pub depth: u32,
    pub shape_type: StrId,
    pub edge_name: StrId,
    pub capacity: Option<u32>,
    pub edges: u32,
    pub memsize: u64,
}

/// Address lookup: a map from 16 KiB page to a run of positions holding the
/// objects on that page in address order. Positions are object ids when
/// `by_address` is empty (the layout Ruby writes), else indexes into it.
#[derive(Default)]
pub struct AddressIndex {
    pub pages: FastMap<u64, (u32, u32)>,
    pub by_address: Vec<ObjId>,
}

/// Facts about the dump as a whole, gathered while reading.
#[derive(Debug, Clone, Default)]
pub struct DumpFacts {
    /// Objects carrying allocation info (file or generation).
    pub traced_objects: u64,
    /// SHAPE records were present (Ruby 3.2+).
    pub has_shapes: bool,
    /// Flags had integer values (Ruby 4.0).
    pub integer_flags: bool,
    /// Objects had `shape_id`/`slot_size` keys (Ruby 3.2+).
    pub has_slot_size: bool,
    /// References to addresses that no record in the dump has (dropped).
    pub dangling_refs: u64,
    /// Heap objects whose address another record already had (kept, but not indexed).
    pub duplicate_addresses: u64,
    /// Highest generation seen.
    pub max_generation: Option<u32>,
    /// Free slots (`"type":"NONE"` records, written by
    /// `dump_all(full: true)`): counted here, never kept as objects.
    pub free_slots: u64,
    /// CLASS or MODULE records in the dump (none in a
    /// `dump_all(since: ...)` dump, which leaves classes out).
    pub class_records: u64,
}

/// A whole heap dump in memory. See the crate docs for the layout.
#[derive(Default)]
pub struct Heap {
    pub strings: Interner,
    pub type_names: Vec<Box<str>>,

    pub address: Vec<u64>,
    pub otype: Vec<u8>,
    pub flags: Vec<u8>,
    /// Memsize; values over `u32::MAX - 1` are saturated and kept in `memsize_big`.
    pub memsize: Vec<u32>,
    pub memsize_big: FastMap<ObjId, u64>,
    pub class: Vec<ClassId>,
    pub location: Vec<LocId>,
    pub method: Vec<StrId>,
    pub generation: Vec<u32>,
    /// Type-dependent: STRING/SYMBOL/FLOAT value, CLASS/MODULE name, DATA
    /// struct, IMEMO imemo_type, NODE node_type (all [`StrId`]), OBJECT
    /// shape_id (a number; `u32::MAX` for none).
    pub detail: Vec<u32>,

    /// CSR offsets (`len() == n + 1`); empty when references were not loaded.
    pub ref_offsets: Vec<u64>,
    pub refs: Vec<ObjId>,
    /// Finds objects by address.
    pub index: AddressIndex,

    pub classes: Vec<ClassInfo>,
    pub locations: Vec<Location>,
    pub roots: Vec<Root>,
    pub root_refs: Vec<ObjId>,
    pub shapes: Vec<Shape>,
    /// Ruby 4.0's stable `object_id` flag, for the objects that have one.
    pub object_ids: FastMap<ObjId, u64>,
    /// Dumps before Ruby 3.2 only: IMEMOs whose `class` is a reference the
    /// GC marks (a constant cache's value, an env's iseq, a method entry's
    /// defined class, a cref's refinements, an svar's cref_or_me, an iseq's
    /// wrapper), which objspace leaves out of `references`: IMEMO -> object.
    pub imemo_klass: FastMap<ObjId, ObjId>,
    /// Shape ids of non-OBJECT objects whose shape names instance variables
    /// (Ruby 3.2+): generic ivars of a String, Array, Hash..., a class's own
    /// ivars, and 4.0's IMEMO `fields` objects. See [`Heap::ivar_shape`].
    pub ivar_shapes: FastMap<ObjId, u32>,
    /// Ruby 4.0+: the owner of each IMEMO `fields` object (the record's
    /// `class`), which keeps the owner's instance variables.
    pub fields_owner: FastMap<ObjId, ObjId>,
    /// The allocation tracer's bookkeeping object, if the dump has one.
    pub tracer: Option<ObjId>,
    /// What marks the heapscope agent's own objects ([`Heap::is_agent`]).
    pub agent: AgentMarks,
    pub facts: DumpFacts,
    pub references_loaded: bool,
}

impl Heap {
    pub fn len(&self) -> usize {
        self.address.len()
    }

    pub fn is_empty(&self) -> bool {
        self.address.is_empty()
    }

    pub fn ids(&self) -> impl Iterator<Item = ObjId> {
        0..self.len() as ObjId
    }

    pub fn memsize(&self, id: ObjId) -> u64 {
        let m = self.memsize[id as usize];
        if m == u32::MAX {
            self.memsize_big[&id]
        } else {
            m as u64
        }
    }

    pub fn type_name(&self, id: ObjId) -> &str {
        &self.type_names[self.otype[id as usize] as usize]
    }

    pub fn generation(&self, id: ObjId) -> Option<u32> {
        let g = self.generation[id as usize];
        (g != NO_GENERATION).then_some(g)
    }

    pub fn location(&self, id: ObjId) -> Option<Location> {
        let l = self.location[id as usize];
        (l != NO_LOC).then(|| self.locations[l as usize])
    }

    pub fn file(&self, id: ObjId) -> Option<&[u8]> {
        self.location(id).map(|l| self.strings.get(l.file))
    }

    pub fn method_name(&self, id: ObjId) -> Option<&[u8]> {
        self.method[id as usize].get().map(|s| self.strings.get(s))
    }

    /// The type-dependent string (see [`Heap::detail`]), if the type has one.
    pub fn detail_str(&self, id: ObjId) -> Option<&[u8]> {
        let t = self.otype[id as usize];
        if t == types::OBJECT {
            return None;
        }
        let d = self.detail[id as usize];
        (d != u32::MAX).then(|| self.strings.get(StrId(d)))
    }

    /// The string value of a STRING (when dumped: Ruby writes only 7-bit ones,
    /// and the reader keeps them only when asked).
    pub fn string_value(&self, id: ObjId) -> Option<&[u8]> {
        (self.otype[id as usize] == types::STRING)
            .then(|| self.detail_str(id))
            .flatten()
    }

    /// Shape id of an OBJECT (Ruby 3.2+).
    pub fn shape_id(&self, id: ObjId) -> Option<u32> {
        let d = self.detail[id as usize];
        (self.otype[id as usize] == types::OBJECT && d != u32::MAX).then_some(d)
    }

    /// The shape that names `id`'s instance variables: an OBJECT's shape id,
    /// else the shape of a non-OBJECT whose shape has ivars (generic or
    /// class-level ivars, a 4.0 `fields` object).
    pub fn ivar_shape(&self, id: ObjId) -> Option<u32> {
        self.shape_id(id)
            .or_else(|| self.ivar_shapes.get(&id).copied())
    }

    /// The owner of an IMEMO `fields` object (Ruby 4.0+).
    pub fn fields_owner(&self, id: ObjId) -> Option<ObjId> {
        self.fields_owner.get(&id).copied()
    }

    /// The class `id` is counted under when grouping by class: its class,
    /// or for a `fields` object (which has none), its owner's class, so that
    /// an object's ivar memory stays with its class on every Ruby version.
    pub fn grouping_class(&self, id: ObjId) -> ClassId {
        let c = self.class[id as usize];
        if c != NO_CLASS || self.fields_owner.is_empty() {
            return c;
        }
        match self.fields_owner(id) {
            Some(owner) => self.class[owner as usize],
            None => c,
        }
    }

    pub fn class_of(&self, id: ObjId) -> Option<&ClassInfo> {
        let c = self.class[id as usize];
        (c != NO_CLASS).then(|| &self.classes[c as usize])
    }

    /// Display name of a class as Ruby's `obj.class` would show it: its name;
    /// for a singleton class, the real class it stands in for (so the class
    /// objects of an app group under `Class`, not under thousands of
    /// metaclasses); else `#<Class:0x...>` for an anonymous class, or
    /// `(unknown class 0x...)` when the dump has no record of the class
    /// (`dump_all(since: ...)` leaves classes out).
    pub fn class_display(&self, class: ClassId) -> String {
        let c = &self.classes[class as usize];
        match c.name.get().or(c.real_name.get()) {
            Some(n) => self.strings.text(n).into_owned(),
            None if c.object == NO_OBJ => format!("(unknown class {:#x})", c.address),
            None => format!("#<Class:{:#x}>", c.address),
        }
    }

    /// For each class, the lowest-numbered class shown under the same name
    /// (a class and the singleton classes that stand in for it), so that
    /// groupings by class count them as one.
    pub fn canonical_classes(&self) -> Vec<ClassId> {
        let mut first: FastMap<String, ClassId> = FastMap::default();
        (0..self.classes.len() as ClassId)
            .map(|c| *first.entry(self.class_display(c)).or_insert(c))
            .collect()
    }

    /// References of an object (empty when references were not loaded).
    pub fn refs(&self, id: ObjId) -> &[ObjId] {
        if self.ref_offsets.is_empty() {
            return &[];
        }
        let i = id as usize;
        &self.refs[self.ref_offsets[i] as usize..self.ref_offsets[i + 1] as usize]
    }

    pub fn root_refs(&self, root: &Root) -> &[ObjId] {
        &self.root_refs[root.refs.clone()]
    }

    /// Object at an address, if the dump has one.
    #[inline]
    pub fn find(&self, address: u64) -> Option<ObjId> {
        let ix = &self.index;
        let &(mut lo, mut hi) = ix.pages.get(&(address >> build::PAGE_SHIFT))?;
        let at = |pos: u32| {
            if ix.by_address.is_empty() {
                pos
            } else {
                ix.by_address[pos as usize]
            }
        };
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let a = self.address[at(mid) as usize];
            if a == address {
                return Some(at(mid));
            }
            if a < address {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        None
    }

    pub fn is_tracer(&self, id: ObjId) -> bool {
        self.tracer == Some(id)
    }

    /// A class, module or included module: a namespace whose constants,
    /// class variables and methods hold objects for the whole program.
    pub fn is_class_like(&self, id: ObjId) -> bool {
        matches!(
            self.otype[id as usize],
            types::CLASS | types::MODULE | types::ICLASS
        )
    }

    /// Bytes of memory the model holds (capacity of every column and table).
    pub fn memory_bytes(&self) -> usize {
        fn v<T>(v: &Vec<T>) -> usize {
            v.capacity() * std::mem::size_of::<T>()
        }
        v(&self.address)
            + v(&self.otype)
            + v(&self.flags)
            + v(&self.memsize)
            + v(&self.class)
            + v(&self.location)
            + v(&self.method)
            + v(&self.generation)
            + v(&self.detail)
            + v(&self.ref_offsets)
            + v(&self.refs)
            + v(&self.index.by_address)
            + self.index.pages.capacity() * 17
            + v(&self.classes)
            + v(&self.locations)
            + v(&self.roots)
            + v(&self.root_refs)
            + v(&self.shapes)
            + self.strings.heap_bytes()
            + (self.memsize_big.capacity() + self.object_ids.capacity()) * 16
            + self.imemo_klass.capacity() * 12
            + (self.ivar_shapes.capacity() + self.fields_owner.capacity()) * 12
    }
}
