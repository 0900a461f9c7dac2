//! `heapscope diff`: objects present in AFTER and not in BEFORE (and, with a
//! third dump, still present in LATER).
//!
//! An object's identity is its address and type plus, when the dump has them,
//! its allocation file, line and generation. Addresses alone are reused after
//! GC, so the allocation info keeps a new object at a recycled address from
//! passing for an old one. Only 64-bit hashes of identities are kept for the
//! BEFORE and LATER dumps, so their heaps need not stay in memory.

use std::hash::{BuildHasher, Hasher};

use heapscope_heap::{hash_bytes, FastHash, Heap, ObjId, NO_LOC};

use crate::group::{group_objects, Group, GroupKey, SortBy};
use crate::summary::ObjectFilter;

/// The identities of one dump's objects, without the dump.
pub struct IdentitySet {
    /// Sorted identity hashes.
    hashes: Vec<u64>,
    /// Sorted addresses.
    addresses: Vec<u64>,
    pub objects: u64,
    pub memsize: u64,
    pub traced_objects: u64,
    pub max_generation: Option<u32>,
}

/// Hashes (address, type, file, line, generation) of a heap's objects. Type
/// names and locations are hashed once each, by content, so that hashes agree
/// across heaps whose interned ids differ.
pub struct Identities<'h> {
    heap: &'h Heap,
    type_hash: Vec<u64>,
    loc_hash: Vec<u64>,
}

impl<'h> Identities<'h> {
    pub fn new(heap: &'h Heap) -> Self {
        let type_hash = heap
            .type_names
            .iter()
            .map(|t| hash_bytes(t.as_bytes()))
            .collect();
        let loc_hash = heap
            .locations
            .iter()
            .map(|l| {
                let mut h = FastHash.build_hasher();
                h.write(heap.strings.get(l.file));
                h.write_u32(l.line);
                h.finish()
            })
            .collect();
        Identities {
            heap,
            type_hash,
            loc_hash,
        }
    }

    pub fn of(&self, id: ObjId) -> u64 {
        let h = self.heap;
        let i = id as usize;
        let mut s = FastHash.build_hasher();
        s.write_u64(h.address[i]);
        s.write_u64(self.type_hash[h.otype[i] as usize]);
        let loc = h.location[i];
        s.write_u64(if loc == NO_LOC {
            0
        } else {
            self.loc_hash[loc as usize]
        });
        s.write_u32(h.generation[i]);
        s.finish()
    }
}

impl IdentitySet {
    pub fn of(heap: &Heap, include_tracer: bool) -> IdentitySet {
        let mut hashes = Vec::with_capacity(heap.len());
        let mut addresses = Vec::with_capacity(heap.len());
        let mut memsize: u64 = 0;
        let identities = Identities::new(heap);
        for id in heap.ids() {
            if !include_tracer && heap.is_tracer(id) {
                continue;
            }
            hashes.push(identities.of(id));
            addresses.push(heap.address[id as usize]);
            memsize = memsize.saturating_add(heap.memsize(id));
        }
        hashes.sort_unstable();
        addresses.sort_unstable();
        IdentitySet {
            objects: hashes.len() as u64,
            hashes,
            addresses,
            memsize,
            traced_objects: heap.facts.traced_objects,
            max_generation: heap.facts.max_generation,
        }
    }

    pub fn contains(&self, identity: u64) -> bool {
        self.hashes.binary_search(&identity).is_ok()
    }

    fn has_address(&self, address: u64) -> bool {
        self.addresses.binary_search(&address).is_ok()
    }
}

pub struct DiffOptions {
    pub by: Vec<GroupKey>,
    pub filter: ObjectFilter,
    pub sort: SortBy,
    pub top: Option<usize>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiffTotals {
    pub before_objects: u64,
    pub before_memsize: u64,
    pub after_objects: u64,
    pub after_memsize: u64,
    pub later_objects: Option<u64>,
    pub later_memsize: Option<u64>,
    /// Objects in AFTER but not in BEFORE (and, with LATER, still in LATER).
    pub new_objects: u64,
    pub new_memsize: u64,
    /// With LATER: objects new in AFTER that LATER no longer has.
    pub freed_by_later: Option<u64>,
    /// New objects sitting at an address BEFORE used for another object.
    pub reused_addresses: u64,
}

pub struct Diff {
    pub by: Vec<GroupKey>,
    pub totals: DiffTotals,
    pub groups: Vec<Group>,
    pub total_groups: usize,
    /// Reasons the result may mislead, for the user.
    pub warnings: Vec<String>,
}

/// Diffs `after` against the identities of `before` (and `later`).
pub fn diff(
    before: &IdentitySet,
    after: &Heap,
    later: Option<&IdentitySet>,
    opts: &DiffOptions,
) -> Diff {
    let after_set_traced = after.facts.traced_objects;
    let mut totals = DiffTotals {
        before_objects: before.objects,
        before_memsize: before.memsize,
        later_objects: later.map(|l| l.objects),
        later_memsize: later.map(|l| l.memsize),
        ..Default::default()
    };
    let mut new_ids = Vec::new();
    let mut freed = 0u64;
    let identities = Identities::new(after);
    for id in after.ids() {
        if !opts.filter.include_tracer && after.is_tracer(id) {
            continue;
        }
        totals.after_objects += 1;
        totals.after_memsize = totals.after_memsize.saturating_add(after.memsize(id));
        if !opts.filter.matches(after, id) {
            continue;
        }
        let ident = identities.of(id);
        if before.contains(ident) {
            continue;
        }
        if before.has_address(after.address[id as usize]) {
            totals.reused_addresses += 1;
        }
        if let Some(l) = later {
            if !l.contains(ident) {
                freed += 1;
                continue;
            }
        }
        totals.new_objects += 1;
        totals.new_memsize = totals.new_memsize.saturating_add(after.memsize(id));
        new_ids.push(id);
    }
    if later.is_some() {
        totals.freed_by_later = Some(freed);
    }
    let (groups, total_groups) =
        group_objects(after, new_ids.into_iter(), &opts.by, opts.sort, opts.top);
    let mut warnings = Vec::new();
    let untraced: Vec<&str> = [
        ("BEFORE", before.traced_objects),
        ("AFTER", after_set_traced),
        ("LATER", later.map(|l| l.traced_objects).unwrap_or(1)),
    ]
    .iter()
    .filter(|(_, t)| *t == 0)
    .map(|(n, _)| *n)
    .collect();
    if !untraced.is_empty() {
        warnings.push(format!(
            "{} {} no allocation tracing, so objects are told apart by address and type only: \
             a new object at an address an old one had (after GC or GC.compact) passes for the old one. \
             Enable ObjectSpace.trace_object_allocations_start for reliable diffs.",
            untraced.join(" and "),
            if untraced.len() == 1 { "has" } else { "have" }
        ));
    }
    if let (Some(b), Some(a)) = (before.max_generation, after.facts.max_generation) {
        if a < b {
            warnings.push(format!(
                "AFTER's newest generation ({a}) is older than BEFORE's ({b}): are the dumps in order, and from one process?"
            ));
        }
    }
    if let (Some(l), Some(a)) = (
        later.and_then(|l| l.max_generation),
        after.facts.max_generation,
    ) {
        if l < a {
            warnings.push(format!(
                "LATER's newest generation ({l}) is older than AFTER's ({a}): are the dumps in order, and from one process?"
            ));
        }
    }
    Diff {
        by: opts.by.clone(),
        totals,
        groups,
        total_groups,
        warnings,
    }
}
