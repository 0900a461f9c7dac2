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
    finish_groups(ctx, sums, by, sort, top, duplicates_only)
}

/// Sorts and cuts summed groups (see [`group_inner`]).
fn finish_groups(
    ctx: &Grouper<'_>,
    mut sums: FastMap<[u32; MAX_KEYS], (u64, u64)>,
    by: &[GroupKey],
    sort: SortBy,
    top: Option<usize>,
    duplicates_only: bool,
) -> (Vec<Group>, Vec<[u32; MAX_KEYS]>, usize) {
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

/// One pass over `ids` for several single-key groupings at once, each
/// giving what [`group_objects`] would: generation, type, class and location
/// are counted per object into arrays; file and gem are summed from the
/// location totals (a location has one file, a file one gem). String
/// groupings are not done here (`group_objects` has their second pass).
pub fn group_objects_by_each(
    heap: &Heap,
    ids: impl Iterator<Item = ObjId>,
    keys: &[GroupKey],
    sort: SortBy,
    top: Option<usize>,
) -> Vec<(Vec<Group>, usize)> {
    assert!(!keys.contains(&GroupKey::String) && !keys.contains(&GroupKey::Method));
    let mut ctx = Grouper::new(heap);
    let canon: Vec<u32> = ctx.class_canon().to_vec();
    let gens = heap.facts.max_generation.map_or(0, |g| g as usize + 1);
    // Last slot of each: none (u32::MAX, NO_GENERATION).
    let mut by_gen = vec![(0u64, 0u64); gens + 1];
    let mut by_type = vec![(0u64, 0u64); heap.type_names.len() + 1];
    let mut by_class = vec![(0u64, 0u64); heap.classes.len() + 1];
    let mut by_loc = vec![(0u64, 0u64); heap.locations.len() + 1];
    let add = |v: &mut Vec<(u64, u64)>, raw: u32, m: u64| {
        let last = v.len() - 1;
        let slot = &mut v[(raw as usize).min(last)];
        slot.0 += 1;
        slot.1 = slot.1.saturating_add(m);
    };
    for id in ids {
        let i = id as usize;
        let m = heap.memsize(id);
        add(&mut by_gen, heap.generation[i], m);
        add(&mut by_type, heap.otype[i] as u32, m);
        let c = heap.grouping_class(id);
        add(
            &mut by_class,
            if c == NO_CLASS {
                u32::MAX
            } else {
                canon[c as usize]
            },
            m,
        );
        add(&mut by_loc, heap.location[i], m);
    }
    let to_map = |v: &Vec<(u64, u64)>| -> FastMap<[u32; MAX_KEYS], (u64, u64)> {
        let last = v.len() - 1;
        v.iter()
            .enumerate()
            .filter(|(_, s)| s.0 > 0)
            .map(|(i, &s)| {
                let raw = if i == last { u32::MAX } else { i as u32 };
                ([raw, 0, 0, 0], s)
            })
            .collect()
    };
    // File and gem totals from the locations'.
    let mut by_file: FastMap<[u32; MAX_KEYS], (u64, u64)> = FastMap::default();
    let mut by_gem: FastMap<[u32; MAX_KEYS], (u64, u64)> = FastMap::default();
    let last = by_loc.len() - 1;
    for (l, &(count, bytes)) in by_loc.iter().enumerate() {
        if count == 0 {
            continue;
        }
        let (file, gem) = if l == last {
            (u32::MAX, u32::MAX)
        } else {
            let f = heap.locations[l].file.0;
            // The gem of any object of this location: the file decides.
            (f, ctx.gem_of(f))
        };
        for (map, raw) in [(&mut by_file, file), (&mut by_gem, gem)] {
            let e = map.entry([raw, 0, 0, 0]).or_insert((0, 0));
            e.0 += count;
            e.1 = e.1.saturating_add(bytes);
        }
    }
    keys.iter()
        .map(|&key| {
            let sums = match key {
                GroupKey::Generation => {
                    // Generations are counted with NO_GENERATION as none.
                    let mut m = to_map(&by_gen);
                    if let Some(s) = m.remove(&[u32::MAX, 0, 0, 0]) {
                        m.insert([NO_GENERATION, 0, 0, 0], s);
                    }
                    m
                }
                GroupKey::Type => to_map(&by_type),
                GroupKey::Class => to_map(&by_class),
                GroupKey::Location => {
                    let mut m = to_map(&by_loc);
                    if let Some(s) = m.remove(&[u32::MAX, 0, 0, 0]) {
                        m.insert([NO_LOC, 0, 0, 0], s);
                    }
                    m
                }
                GroupKey::File => by_file.clone(),
                GroupKey::Gem => by_gem.clone(),
                GroupKey::String | GroupKey::Method => unreachable!("checked above"),
            };
            let (groups, _, total) = finish_groups(&ctx, sums, &[key], sort, top, false);
            (groups, total)
        })
        .collect()
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

    /// The gem (raw key) of a file.
    fn gem_of(&mut self, file: u32) -> u32 {
        if let Some(&g) = self.gem_of_file.get(&file) {
            return g;
        }
        let label = origin_of(self.heap.strings.get(StrId(file))).label();
        let next = self.gem_names.len() as u32;
        let g = *self.gem_index.entry(label.clone()).or_insert_with(|| {
            self.gem_names.push(label);
            next
        });
        self.gem_of_file.insert(file, g);
        g
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
                Some(l) => self.gem_of(l.file.0),
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

#[cfg(test)]
mod each_tests {
    use super::*;
    use crate::paths::tests::heap_of;

    /// Objects with and without class, location and generation, in app and
    /// gem files, some sharing a file across lines.
    const DUMP: &str = r#"{"type":"ROOT", "root":"vm", "references":["0x1000"]}
{"address":"0x100", "type":"CLASS", "name":"Foo", "memsize":500}
{"address":"0x1000", "type":"ARRAY", "class":"0x100", "file":"/app/a.rb", "line":3, "generation":5, "memsize":40}
{"address":"0x1028", "type":"STRING", "class":"0x100", "file":"/app/a.rb", "line":4, "generation":6, "memsize":60}
{"address":"0x1050", "type":"STRING", "file":"/gems/rack-3.0.0/lib/rack.rb", "line":9, "generation":6, "memsize":70}
{"address":"0x1078", "type":"HASH", "file":"/gems/rack-3.0.0/lib/rack/utils.rb", "line":1, "memsize":80}
{"address":"0x10a0", "type":"OBJECT", "class":"0x100", "memsize":90}
{"address":"0x10c8", "type":"OBJECT", "class":"0x999", "generation":2, "memsize":90}
"#;

    #[test]
    fn one_pass_equals_one_grouping_each() {
        let heap = heap_of(DUMP);
        let keys = [
            GroupKey::Generation,
            GroupKey::Type,
            GroupKey::Class,
            GroupKey::Location,
            GroupKey::File,
            GroupKey::Gem,
        ];
        for sort in [SortBy::Memsize, SortBy::Count] {
            for top in [None, Some(2)] {
                let each = group_objects_by_each(&heap, heap.ids(), &keys, sort, top);
                for (k, got) in keys.iter().zip(each) {
                    let want = group_objects(&heap, heap.ids(), &[*k], sort, top);
                    assert_eq!(got, want, "{k:?} {sort:?} {top:?}");
                }
            }
        }
    }
}
