//! Grouping objects by one or more keys (generation, type, class, ...), summing
//! count and memsize per group. Shared by `summary` and `diff`.

use std::fmt;
use std::str::FromStr;

use heapscope_heap::{FastMap, Heap, ObjId, StrId, NO_CLASS, NO_GENERATION, NO_LOC};

use crate::origin::origin_of;

/// What objects can be grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupKey {
    Generation,
    Type,
    Class,
    Location,
    File,
    Method,
    Gem,
    String,
}

impl GroupKey {
    pub const ALL: [GroupKey; 8] = [
        GroupKey::Generation,
        GroupKey::Type,
        GroupKey::Class,
        GroupKey::Location,
        GroupKey::File,
        GroupKey::Method,
        GroupKey::Gem,
        GroupKey::String,
    ];

    /// The name used on the command line and as the JSON key.
    pub fn name(self) -> &'static str {
        match self {
            GroupKey::Generation => "generation",
            GroupKey::Type => "type",
            GroupKey::Class => "class",
            GroupKey::Location => "location",
            GroupKey::File => "file",
            GroupKey::Method => "method",
            GroupKey::Gem => "gem",
            GroupKey::String => "string",
        }
    }
}

impl fmt::Display for GroupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for GroupKey {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        GroupKey::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                let names: Vec<&str> = GroupKey::ALL.iter().map(|k| k.name()).collect();
                format!(
                    "unknown grouping '{s}' (expected one of: {})",
                    names.join(", ")
                )
            })
    }
}

/// At most this many keys can be combined (`--by type,class,location,method`).
pub const MAX_KEYS: usize = 4;

/// One key's value in a group, ready for display.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum KeyValue {
    /// A generation number; `None` for objects allocated without tracing.
    Generation(Option<u32>),
    /// Text; `None` when the object has no such attribute.
    Text(Option<String>),
}

impl KeyValue {
    /// How the value reads in a table.
    pub fn display(&self, key: GroupKey) -> String {
        match self {
            KeyValue::Generation(Some(g)) => g.to_string(),
            KeyValue::Generation(None) => "untraced".into(),
            KeyValue::Text(Some(t)) => t.clone(),
            KeyValue::Text(None) => match key {
                GroupKey::Class => "(no class)".into(),
                GroupKey::Location | GroupKey::File | GroupKey::Gem => "(untraced)".into(),
                GroupKey::Method => "(no method)".into(),
                _ => "(none)".into(),
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub key: Vec<KeyValue>,
    pub count: u64,
    pub memsize: u64,
    /// For `string` groups: where the copies were allocated, most first.
    pub locations: Vec<(String, u64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortBy {
    #[default]
    Memsize,
    Count,
}

/// Groups the objects yielded by `ids`. Rows come back sorted (generation
/// groupings by generation, others by `sort`), and cut to `top` when given;
/// the second value is the number of groups before the cut.
pub fn group_objects(
    heap: &Heap,
    ids: impl Iterator<Item = ObjId>,
    by: &[GroupKey],
    sort: SortBy,
    top: Option<usize>,
) -> (Vec<Group>, usize) {
    assert!(!by.is_empty() && by.len() <= MAX_KEYS);
    let mut ctx = Grouper::new(heap);
    if !by.contains(&GroupKey::String) {
        let (groups, _, total) = group_inner(&mut ctx, ids, by, sort, top, false);
        return (groups, total);
    }
    // Only strings whose value was dumped take part; they are visited twice,
    // the second time to find where each shown group's copies came from.
    let strings: Vec<ObjId> = ids.filter(|&id| heap.string_value(id).is_some()).collect();
    let (mut groups, keys, total) =
        group_inner(&mut ctx, strings.iter().copied(), by, sort, top, true);
    let row_of: FastMap<[u32; MAX_KEYS], usize> =
        keys.into_iter().enumerate().map(|(i, k)| (k, i)).collect();
    let mut per: Vec<FastMap<u32, u64>> = vec![FastMap::default(); groups.len()];
    for &id in &strings {
        if let Some(&g) = row_of.get(&ctx.raw_key(id, by)) {
            *per[g].entry(heap.location[id as usize]).or_default() += 1;
        }
    }
    for (g, locs) in groups.iter_mut().zip(per) {
        let mut v: Vec<(String, u64)> = locs
            .into_iter()
            .map(|(l, c)| {
                (
                    location_text(heap, l).unwrap_or_else(|| "(untraced)".into()),
                    c,
                )
            })
            .collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v.truncate(3);
        g.locations = v;
    }
    (groups, total)
}

/// Groups, sorts and cuts; returns the groups, their raw keys and the number
/// of groups before the cut. With `duplicates_only`, single-member groups are dropped.
fn group_inner(
    ctx: &mut Grouper<'_>,
    ids: impl Iterator<Item = ObjId>,
    by: &[GroupKey],
    sort: SortBy,
    top: Option<usize>,
    duplicates_only: bool,
) -> (Vec<Group>, Vec<[u32; MAX_KEYS]>, usize) {
    let heap = ctx.heap;
    let mut sums: FastMap<[u32; MAX_KEYS], (u64, u64)> = FastMap::default();
    if let (&[key], Some(bound)) = (by, dense_bound(heap, by)) {
        // One key with small dense values: count into an array, no hashing.
        // The last slot is for "none" (u32::MAX).
        let mut dense = vec![(0u64, 0u64); bound + 1];
        for id in ids {
            let raw = ctx.raw(id, key);
            let slot = &mut dense[(raw as usize).min(bound)];
            slot.0 += 1;
            slot.1 = slot.1.saturating_add(heap.memsize(id));
        }
        for (i, &(count, memsize)) in dense.iter().enumerate() {
            if count > 0 {
                let raw = if i == bound { u32::MAX } else { i as u32 };
                sums.insert([raw, 0, 0, 0], (count, memsize));
            }
        }
    } else {
        for id in ids {
            let e = sums.entry(ctx.raw_key(id, by)).or_insert((0, 0));
            e.0 += 1;
            e.1 = e.1.saturating_add(heap.memsize(id));
        }
    }
    if duplicates_only {
        // Only values that occur more than once are duplicates.
        sums.retain(|_, (count, _)| *count > 1);
    }
    let total = sums.len();
    let mut rows: Vec<([u32; MAX_KEYS], u64, u64)> =
        sums.into_iter().map(|(k, (c, m))| (k, c, m)).collect();
    let by_generation = by[0] == GroupKey::Generation && sort == SortBy::Memsize && by.len() == 1;
    if by_generation {
        // Untraced first, then oldest to newest, as heapy prints them.
        rows.sort_unstable_by_key(|r| (r.0[0] != NO_GENERATION, r.0[0]));
    } else {
        let display = |k: &[u32; MAX_KEYS]| -> Vec<KeyValue> {
            by.iter()
                .zip(k)
                .map(|(&key, &raw)| ctx.value(key, raw))
                .collect()
        };
        let mut keyed: Vec<_> = rows.into_iter().map(|r| (display(&r.0), r)).collect();
        keyed.sort_unstable_by(|a, b| {
            let (ca, ma, cb, mb) = (a.1 .1, a.1 .2, b.1 .1, b.1 .2);
            let primary = match sort {
                SortBy::Memsize => (mb, cb).cmp(&(ma, ca)),
                SortBy::Count => (cb, mb).cmp(&(ca, ma)),
            };
            primary.then_with(|| a.0.cmp(&b.0))
        });
        rows = keyed.into_iter().map(|(_, r)| r).collect();
    }
    if let Some(n) = top {
        rows.truncate(n);
    }
    let groups: Vec<Group> = rows
        .iter()
        .map(|(k, count, memsize)| Group {
            key: by
                .iter()
                .zip(k)
                .map(|(&key, &raw)| ctx.value(key, raw))
                .collect(),
            count: *count,
            memsize: *memsize,
            locations: Vec::new(),
        })
        .collect();
    (groups, rows.into_iter().map(|r| r.0).collect(), total)
}

/// An upper bound of a single key's raw values, when they are dense ids.
fn dense_bound(heap: &Heap, by: &[GroupKey]) -> Option<usize> {
    let bound = match by {
        [GroupKey::Generation] => heap.facts.max_generation.map_or(0, |g| g as usize + 1),
        [GroupKey::Type] => heap.type_names.len(),
        [GroupKey::Class] => heap.classes.len(),
        [GroupKey::Location] => heap.locations.len(),
        [GroupKey::File | GroupKey::Method | GroupKey::String] => heap.strings.len(),
        _ => return None,
    };
    // A generation filter on a huge, sparse range would waste memory.
    (bound <= 64 << 20).then_some(bound)
}

pub fn location_text(heap: &Heap, loc: u32) -> Option<String> {
    (loc != NO_LOC).then(|| {
        let l = heap.locations[loc as usize];
        format!("{}:{}", heap.strings.text(l.file), l.line)
    })
}

/// Maps objects to raw u32 keys (cheap to hash and compare) and raw keys to
/// display values. Caches per-file gem attribution and class-name merging.
pub struct Grouper<'h> {
    heap: &'h Heap,
    /// Each class's representative among the classes shown under the same
    /// name (a class and the singleton classes that stand in for it).
    class_canon: Vec<u32>,
    gem_of_file: FastMap<u32, u32>,
    gem_names: Vec<String>,
    gem_index: FastMap<String, u32>,
}

impl<'h> Grouper<'h> {
    pub fn new(heap: &'h Heap) -> Self {
        Grouper {
            heap,
            class_canon: Vec::new(),
            gem_of_file: FastMap::default(),
            gem_names: Vec::new(),
            gem_index: FastMap::default(),
        }
    }

    fn class_canon(&mut self) -> &[u32] {
        if self.class_canon.is_empty() && !self.heap.classes.is_empty() {
            self.class_canon = self.heap.canonical_classes();
        }
        &self.class_canon
    }

    /// The raw key of `id` under `by` (unused slots are 0).
    pub fn raw_key(&mut self, id: ObjId, by: &[GroupKey]) -> [u32; MAX_KEYS] {
        let mut k = [0u32; MAX_KEYS];
        for (slot, &key) in k.iter_mut().zip(by) {
            *slot = self.raw(id, key);
        }
        k
    }

    fn raw(&mut self, id: ObjId, key: GroupKey) -> u32 {
        let h = self.heap;
        let i = id as usize;
        match key {
            GroupKey::Generation => h.generation[i],
            GroupKey::Type => h.otype[i] as u32,
            GroupKey::Class => {
                // A 4.0 `fields` object counts under its owner's class.
                let c = h.grouping_class(id);
                if c == NO_CLASS {
                    c
                } else {
                    self.class_canon()[c as usize]
                }
            }
            GroupKey::Location => h.location[i],
            GroupKey::File => match h.location(id) {
                Some(l) => l.file.0,
                None => u32::MAX,
            },
            GroupKey::Method => h.method[i].0,
            GroupKey::String => h.detail[i],
            GroupKey::Gem => match h.location(id) {
                Some(l) => {
                    if let Some(&g) = self.gem_of_file.get(&l.file.0) {
                        return g;
                    }
                    let label = origin_of(h.strings.get(l.file)).label();
                    let next = self.gem_names.len() as u32;
                    let g = *self.gem_index.entry(label.clone()).or_insert_with(|| {
                        self.gem_names.push(label);
                        next
                    });
                    self.gem_of_file.insert(l.file.0, g);
                    g
                }
                None => u32::MAX,
            },
        }
    }

    /// The display values of a raw key.
    pub fn values(&self, by: &[GroupKey], raw: &[u32; MAX_KEYS]) -> Vec<KeyValue> {
        by.iter()
            .zip(raw)
            .map(|(&k, &r)| self.value(k, r))
            .collect()
    }

    pub fn value(&self, key: GroupKey, raw: u32) -> KeyValue {
        let h = self.heap;
        let text = |s: u32| (s != u32::MAX).then(|| h.strings.text(StrId(s)).into_owned());
        match key {
            GroupKey::Generation => KeyValue::Generation((raw != NO_GENERATION).then_some(raw)),
            GroupKey::Type => KeyValue::Text(Some(h.type_names[raw as usize].to_string())),
            GroupKey::Class => KeyValue::Text((raw != NO_CLASS).then(|| h.class_display(raw))),
            GroupKey::Location => KeyValue::Text(location_text(h, raw)),
            GroupKey::File | GroupKey::Method | GroupKey::String => KeyValue::Text(text(raw)),
            GroupKey::Gem => {
                KeyValue::Text((raw != u32::MAX).then(|| self.gem_names[raw as usize].clone()))
            }
        }
    }
}
