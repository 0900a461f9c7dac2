//! `heapscope diff`: objects present in AFTER and not in BEFORE (and, with a
//! third dump, still present in LATER).
//!
//! An object's address identity is its address and type plus, when the dump
//! has them, its allocation file, line and generation. Addresses alone are
//! reused after GC, so the allocation info keeps a new object at a recycled
//! address from passing for an old one.
//!
//! Ruby 4.0 writes an object's `object_id` in its `flags` once the object has
//! one, and that id never changes nor is reused, wherever the object moves
//! (`GC.compact`). Two objects of two dumps are the same object when
//! - the earlier one had an object_id: the later one has the same id (and
//!   type), wherever it sits; another object at its address is a new one;
//! - the earlier one had none: their address identities are equal (an object
//!   can get an id between the dumps, never lose or change it).
//!
//! Only 64-bit hashes of identities are kept for the BEFORE and LATER dumps,
//! so their heaps need not stay in memory.

use std::hash::{BuildHasher, Hasher};
use std::num::NonZeroU64;

use heapscope_heap::{hash_bytes, AgentShare, FastHash, Heap, ObjId, NO_LOC};

use crate::group::{group_objects, Group, GroupKey, SortBy};
use crate::summary::ObjectFilter;

/// How one object of one dump is known to other dumps: hashes of its
/// address identity and, when the dump gives one, of its type and object_id
/// (16 bytes: `leaks` keeps one per survivor).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjIdentity {
    pub address: u64,
    pub object_id: Option<NonZeroU64>,
}

impl ObjIdentity {
    /// The one hash that names the object within its dump: the object_id's
    /// when it has one.
    pub fn key(&self) -> u64 {
        self.object_id.map_or(self.address, NonZeroU64::get)
    }
}

/// The identities of one dump's objects, without the dump.
pub struct IdentitySet {
    /// Sorted object_id hashes of the objects that have one.
    object_ids: Vec<u64>,
    /// Sorted address identities of the objects without an object_id.
    plain: Vec<u64>,
    /// Sorted address identities of the objects with an object_id.
    identified: Vec<u64>,
    /// Sorted addresses.
    addresses: Vec<u64>,
    pub objects: u64,
    pub memsize: u64,
    pub traced_objects: u64,
    pub max_generation: Option<u32>,
}

/// Hashes the identities of a heap's objects. Type names and locations are
/// hashed once each, by content, so that hashes agree across heaps whose
/// interned ids differ.
pub struct Identities<'h> {
    heap: &'h Heap,
    type_hash: Vec<u64>,
    loc_hash: Vec<u64>,
}

/// Mixed into object_id hashes so that they never equal an address identity
/// by construction.
const OBJECT_ID_DOMAIN: u64 = 0x6f62_6a65_6374_5f69;

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

    /// Address, type, file, line, generation.
    pub fn address_identity(&self, id: ObjId) -> u64 {
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

    /// Type and object_id, for an object whose record has an `object_id` flag.
    pub fn object_id_identity(&self, id: ObjId) -> Option<NonZeroU64> {
        let h = self.heap;
        if h.object_ids.is_empty() {
            return None;
        }
        let oid = *h.object_ids.get(&id)?;
        let mut s = FastHash.build_hasher();
        s.write_u64(OBJECT_ID_DOMAIN);
        s.write_u64(self.type_hash[h.otype[id as usize] as usize]);
        s.write_u64(oid);
        NonZeroU64::new(s.finish() | 1)
    }

    pub fn of(&self, id: ObjId) -> ObjIdentity {
        ObjIdentity {
            address: self.address_identity(id),
            object_id: self.object_id_identity(id),
        }
    }
}

impl IdentitySet {
    /// The identities of `heap`'s objects but the allocation tracer's table
    /// (unless included). The heapscope agent's objects are in the set, so
    /// that a later dump's agent objects are not new, but out of the totals
    /// unless included.
    pub fn of(heap: &Heap, include_tracer: bool, include_agent: bool) -> IdentitySet {
        let mut set = IdentitySet {
            object_ids: Vec::new(),
            plain: Vec::with_capacity(heap.len()),
            identified: Vec::new(),
            addresses: Vec::with_capacity(heap.len()),
            objects: 0,
            memsize: 0,
            traced_objects: heap.facts.traced_objects,
            max_generation: heap.facts.max_generation,
        };
        let identities = Identities::new(heap);
        for id in heap.ids() {
            if !include_tracer && heap.is_tracer(id) {
                continue;
            }
            set.push(identities.of(id));
            set.addresses.push(heap.address[id as usize]);
            if !include_agent && heap.is_agent(id) {
                continue;
            }
            set.objects += 1;
            set.memsize = set.memsize.saturating_add(heap.memsize(id));
        }
        set.seal();
        set
    }

    /// A set of bare identities (no addresses, sizes or facts).
    pub fn from_identities(identities: &[ObjIdentity]) -> IdentitySet {
        let mut set = IdentitySet {
            object_ids: Vec::new(),
            plain: Vec::new(),
            identified: Vec::new(),
            addresses: Vec::new(),
            objects: identities.len() as u64,
            memsize: 0,
            traced_objects: 0,
            max_generation: None,
        };
        for &i in identities {
            set.push(i);
        }
        set.seal();
        set
    }

    fn push(&mut self, i: ObjIdentity) {
        match i.object_id {
            Some(o) => {
                self.object_ids.push(o.get());
                self.identified.push(i.address);
            }
            None => self.plain.push(i.address),
        }
    }

    fn seal(&mut self) {
        for v in [
            &mut self.object_ids,
            &mut self.plain,
            &mut self.identified,
            &mut self.addresses,
        ] {
            v.sort_unstable();
        }
    }

    /// The identity columns, for [`crate::leaks::SeriesBuilder::save`].
    pub(crate) fn columns(&self) -> [&Vec<u64>; 4] {
        [
            &self.object_ids,
            &self.plain,
            &self.identified,
            &self.addresses,
        ]
    }

    /// A set from saved columns (each already sorted).
    pub(crate) fn from_columns(columns: [Vec<u64>; 4], objects: u64) -> IdentitySet {
        let [object_ids, plain, identified, addresses] = columns;
        IdentitySet {
            object_ids,
            plain,
            identified,
            addresses,
            objects,
            memsize: 0,
            traced_objects: 0,
            max_generation: None,
        }
    }

    /// Objects that had an object_id.
    pub fn with_object_ids(&self) -> u64 {
        self.object_ids.len() as u64
    }

    /// Whether this (earlier) dump had `later`, an object of a later dump.
    pub fn had(&self, later: ObjIdentity) -> bool {
        later
            .object_id
            .is_some_and(|o| self.object_ids.binary_search(&o.get()).is_ok())
            || self.plain.binary_search(&later.address).is_ok()
    }

    /// Whether this (later) dump still has `earlier`, an object of an
    /// earlier dump.
    pub fn still_has(&self, earlier: ObjIdentity) -> bool {
        match earlier.object_id {
            Some(o) => self.object_ids.binary_search(&o.get()).is_ok(),
            None => {
                self.plain.binary_search(&earlier.address).is_ok()
                    || self.identified.binary_search(&earlier.address).is_ok()
            }
        }
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
    /// The heapscope agent's objects among the new ones (with LATER: still
    /// in LATER): left out of `new_*` unless `agent_included`.
    pub new_agent: AgentShare,
    pub agent_included: bool,
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
    totals.agent_included = opts.filter.include_agent;
    for id in after.ids() {
        if !opts.filter.include_tracer && after.is_tracer(id) {
            continue;
        }
        let agent = after.is_agent(id);
        if agent && !opts.filter.include_agent {
            if !opts.filter.matches_but_agent(after, id) {
                continue;
            }
            let ident = identities.of(id);
            if !before.had(ident) && later.is_none_or(|l| l.still_has(ident)) {
                totals.new_agent.add(after.memsize(id));
            }
            continue;
        }
        totals.after_objects += 1;
        totals.after_memsize = totals.after_memsize.saturating_add(after.memsize(id));
        if !opts.filter.matches(after, id) {
            continue;
        }
        let ident = identities.of(id);
        if before.had(ident) {
            continue;
        }
        if before.has_address(after.address[id as usize]) {
            totals.reused_addresses += 1;
        }
        if let Some(l) = later {
            if !l.still_has(ident) {
                freed += 1;
                continue;
            }
        }
        if agent {
            totals.new_agent.add(after.memsize(id));
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
        let with_ids = before.with_object_ids() > 0
            || !after.object_ids.is_empty()
            || later.is_some_and(|l| l.with_object_ids() > 0);
        warnings.push(format!(
            "{} {} no allocation tracing, so objects are told apart by address and type only{}: \
             a new object at an address an old one had (after GC or GC.compact) passes for the old one. \
             Enable ObjectSpace.trace_object_allocations_start for reliable diffs.",
            untraced.join(" and "),
            if untraced.len() == 1 { "has" } else { "have" },
            if with_ids {
                " (or by object_id, for objects whose Ruby 4.0+ record has one)"
            } else {
                ""
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::KeyValue;
    use crate::paths::tests::heap_of;
    use proptest::prelude::*;

    fn object(address: u32, class: u32, object_id: Option<u32>) -> String {
        let flags = match object_id {
            Some(o) => format!(r#"{{"wb_protected":true, "age":1, "object_id":{o}}}"#),
            None => r#"{"wb_protected":true, "age":1}"#.to_string(),
        };
        format!(
            r#"{{"address":"0x{address:x}", "type":"OBJECT", "shape_id":9, "slot_size":40, "class":"0x{class:x}", "embedded":true, "ivars":0, "memsize":40, "flags":{flags}}}"#
        )
    }

    /// A Ruby 4.0-style untraced dump: classes Old (0x100) and New (0x200),
    /// then `objects` as (address, class, object_id).
    fn dump(objects: &[(u32, u32, Option<u32>)]) -> Heap {
        let mut lines = vec![
            r#"{"type":"ROOT", "root":"vm", "references":["0x100", "0x200"]}"#.to_string(),
            r#"{"address":"0x100", "type":"CLASS", "class":"0x300", "name":"Old", "memsize":40, "flags":{"age":3}}"#.to_string(),
            r#"{"address":"0x200", "type":"CLASS", "class":"0x300", "name":"New", "memsize":40, "flags":{"age":3}}"#.to_string(),
        ];
        lines.extend(objects.iter().map(|&(a, c, o)| object(a, c, o)));
        heap_of(&(lines.join("\n") + "\n"))
    }

    fn new_by_class(before: &Heap, after: &Heap, later: Option<&Heap>) -> Vec<(String, u64)> {
        let b = IdentitySet::of(before, false, false);
        let l = later.map(|l| IdentitySet::of(l, false, false));
        let d = diff(
            &b,
            after,
            l.as_ref(),
            &DiffOptions {
                by: vec![GroupKey::Class],
                filter: ObjectFilter::default(),
                sort: SortBy::Count,
                top: None,
            },
        );
        let mut rows: Vec<(String, u64)> = d
            .groups
            .iter()
            .map(|g| match &g.key[0] {
                KeyValue::Text(t) => (t.clone().unwrap_or_default(), g.count),
                KeyValue::Generation(_) => unreachable!(),
            })
            .collect();
        rows.sort();
        rows
    }

    #[test]
    fn object_ids_tell_a_reused_address_from_the_old_object() {
        // Old objects with ids die; New objects take their addresses.
        let before = dump(&[(0x1000, 0x100, Some(8)), (0x1028, 0x100, Some(12))]);
        let after = dump(&[(0x1000, 0x200, None), (0x1028, 0x200, Some(16))]);
        assert_eq!(new_by_class(&before, &after, None), vec![("New".into(), 2)]);
    }

    #[test]
    fn an_object_that_moved_keeps_its_object_id() {
        let before = dump(&[(0x1000, 0x100, Some(8)), (0x1028, 0x100, Some(12))]);
        // GC.compact moved both, and a New object now sits where one was.
        let after = dump(&[
            (0x2000, 0x100, Some(8)),
            (0x2028, 0x100, Some(12)),
            (0x1000, 0x200, None),
        ]);
        assert_eq!(new_by_class(&before, &after, None), vec![("New".into(), 1)]);
        // LATER: the first moved again, the second died; the New one stays.
        let later = dump(&[(0x3000, 0x100, Some(8)), (0x1000, 0x200, None)]);
        assert_eq!(
            new_by_class(&dump(&[]), &after, Some(&later)),
            vec![("New".into(), 1), ("Old".into(), 1)]
        );
    }

    #[test]
    fn an_object_that_got_an_object_id_is_the_same_object() {
        let before = dump(&[(0x1000, 0x100, None)]);
        let after = dump(&[(0x1000, 0x100, Some(8)), (0x1028, 0x100, Some(12))]);
        assert_eq!(new_by_class(&before, &after, None), vec![("Old".into(), 1)]);
        // And without ids on either side, the address decides.
        let after = dump(&[(0x1000, 0x200, None)]);
        assert_eq!(new_by_class(&before, &after, None), Vec::new());
    }

    /// The rule, spelled out: `later` is the object `earlier` was when
    /// `earlier` had an object_id and `later` has the same, or when `earlier`
    /// had none and their address identities are equal.
    fn same(earlier: ObjIdentity, later: ObjIdentity) -> bool {
        match earlier.object_id {
            Some(o) => later.object_id == Some(o),
            None => later.address == earlier.address,
        }
    }

    fn identities() -> impl Strategy<Value = Vec<ObjIdentity>> {
        prop::collection::vec(
            (0u64..6, prop::option::of(100u64..106)).prop_map(|(address, object_id)| ObjIdentity {
                address,
                object_id: object_id.and_then(NonZeroU64::new),
            }),
            0..12,
        )
    }

    proptest! {
        #[test]
        fn identity_sets_agree_with_the_rule(earlier in identities(), later in identities()) {
            let e = IdentitySet::from_identities(&earlier);
            let l = IdentitySet::from_identities(&later);
            for &a in &later {
                prop_assert_eq!(e.had(a), earlier.iter().any(|&b| same(b, a)));
            }
            for &b in &earlier {
                prop_assert_eq!(l.still_has(b), later.iter().any(|&a| same(b, a)));
            }
        }
    }
}
