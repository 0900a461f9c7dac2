//! Live objects by allocation site as a pprof profile (`profile.proto`,
//! gzipped), for `go tool pprof`, Pyroscope and other pprof readers.
//!
//! The sample types are the agent's ([`heapscope_pprof::SAMPLE_TYPES`]:
//! `alloc_objects`, `alloc_space`, `inuse_objects`, `inuse_space`, the
//! default), so one set of `go tool pprof` flags reads both. A dump holds
//! only objects still alive, so its `alloc_*` values are those of the live
//! objects (allocations that survived), equal to `inuse_*`; a comment says
//! so. There is one sample per (allocation site, type, class): its location
//! is the site (file, line, method) and it carries `type` and `class` string
//! labels, exact because samples never mix types or classes. Objects
//! without allocation information share one location whose function is
//! `(untraced)`. The allocation tracer's own table and the heapscope agent's
//! objects are left out unless asked for. Functions and the mapping (named after the dump) are made as the
//! agent makes them, so pprof shows Ruby names unchanged.

use heapscope_heap::{FastMap, Heap, LocId, StrId, NO_CLASS, NO_LOC};

use heapscope_pprof::StringTable as Strings;
pub use heapscope_pprof::{
    read_gz, write_gz, Function, Label, Line, Location, Profile, Sample, ValueType,
};

/// Function name of allocation sites without a method.
pub const UNKNOWN_METHOD: &str = "(unknown)";
/// Function name of the one location of objects without allocation info.
pub const UNTRACED: &str = "(untraced)";

#[derive(Debug, Clone, Copy, Default)]
pub struct PprofOptions {
    /// Count the allocation tracer's table as a live object.
    pub include_tracer: bool,
    /// Count the heapscope agent's own objects (`Heap::is_agent`).
    pub include_agent: bool,
    /// `time_nanos` of the profile (e.g. the dump file's modification time);
    /// 0 leaves it unset.
    pub time_nanos: i64,
}

/// The profile's comment saying what its `alloc_*` values are.
pub const ALLOC_COMMENT: &str =
    "alloc_objects and alloc_space count the live objects only: a heap dump holds no freed ones";

/// What a sample is keyed by: location (NO_LOC for untraced), method, type, class.
type SampleKey = (LocId, StrId, u8, u32);

/// Builds the profile of a heap's live objects (the heap needs no references).
/// `program` names the profile's mapping (the dump, as pprof prints it in
/// its `File:` line).
pub fn profile(heap: &Heap, opts: &PprofOptions, comment: &str, program: &str) -> Profile {
    let mut groups: FastMap<SampleKey, (u64, u64)> = FastMap::default();
    for id in heap.ids() {
        if (!opts.include_tracer && heap.is_tracer(id))
            || (!opts.include_agent && heap.is_agent(id))
        {
            continue;
        }
        let i = id as usize;
        let loc = heap.location[i];
        let method = if loc == NO_LOC {
            StrId::NONE
        } else {
            heap.method[i]
        };
        let key = (loc, method, heap.otype[i], heap.class[i]);
        let e = groups.entry(key).or_insert((0, 0));
        e.0 += 1;
        e.1 = e.1.saturating_add(heap.memsize(id));
    }
    // Classes that display alike (singleton classes show as the class their
    // instances report) are one label: merge their groups.
    let canonical = heap.canonical_classes();
    let mut merged: FastMap<SampleKey, (u64, u64)> = FastMap::default();
    for ((loc, method, otype, class), (n, size)) in groups {
        let class = if class == NO_CLASS {
            class
        } else {
            canonical[class as usize]
        };
        let e = merged.entry((loc, method, otype, class)).or_insert((0, 0));
        e.0 += n;
        e.1 = e.1.saturating_add(size);
    }
    // Largest first; ties in a fixed order, so output is reproducible.
    let mut groups: Vec<(SampleKey, (u64, u64))> = merged.into_iter().collect();
    groups.sort_unstable_by(|a, b| b.1 .1.cmp(&a.1 .1).then(a.0.cmp(&b.0)));

    let mut strings = Strings::new();
    let mut profile = Profile::default();
    heapscope_pprof::set_sample_types(&mut profile, &mut strings, 1);
    let type_key = strings.get(heapscope_pprof::LABEL_TYPE);
    let class_key = strings.get(heapscope_pprof::LABEL_CLASS);
    let comments = vec![strings.get(comment), strings.get(ALLOC_COMMENT)];
    let program = strings.get(program);

    let mut locations: Vec<Location> = Vec::new();
    let mut functions: Vec<Function> = Vec::new();
    let mut location_of: FastMap<(LocId, StrId), u64> = FastMap::default();
    let mut class_names: FastMap<u32, i64> = FastMap::default();
    let mut samples = Vec::with_capacity(groups.len());
    for ((loc, method, otype, class), (n, size)) in groups {
        let location_id = *location_of.entry((loc, method)).or_insert_with(|| {
            let (name, filename, line) = if loc == NO_LOC {
                (strings.get(UNTRACED), 0, 0)
            } else {
                let l = heap.locations[loc as usize];
                let name = match method.get() {
                    Some(m) => strings.get(&heap.strings.text(m)),
                    None => strings.get(UNKNOWN_METHOD),
                };
                (name, strings.get(&heap.strings.text(l.file)), l.line as i64)
            };
            let id = functions.len() as u64 + 1;
            functions.push(heapscope_pprof::function(id, name, filename, line));
            locations.push(Location {
                id,
                mapping_id: heapscope_pprof::MAPPING_ID,
                address: 0,
                line: vec![Line {
                    function_id: id,
                    line,
                }],
                is_folded: false,
            });
            id
        });
        let mut label = vec![Label {
            key: type_key,
            str: strings.get(&heap.type_names[otype as usize]),
            num: 0,
            num_unit: 0,
        }];
        if class != NO_CLASS {
            let s = *class_names
                .entry(class)
                .or_insert_with(|| strings.get(&heap.class_display(class)));
            label.push(Label {
                key: class_key,
                str: s,
                num: 0,
                num_unit: 0,
            });
        }
        let (n, size) = (n as i64, size.min(i64::MAX as u64) as i64);
        samples.push(Sample {
            location_id: vec![location_id],
            value: vec![n, size, n, size],
            label,
        });
    }
    profile.sample = samples;
    profile.location = locations;
    profile.function = functions;
    profile.mapping = vec![heapscope_pprof::mapping(program)];
    profile.string_table = strings.into_table();
    profile.time_nanos = opts.time_nanos;
    profile.comment = comments;
    profile
}

#[cfg(test)]
mod tests {
    use super::*;
    use heapscope_heap::{Detail, HeapBuilder, ObjectRecord, PartialHeap};

    const BASE: u64 = 0x7f00_0000_0000;

    /// File, line, method.
    type Site<'a> = (&'a [u8], u32, Option<&'a [u8]>);

    struct Obj<'a> {
        type_name: &'a [u8],
        class: Option<u64>,
        memsize: u64,
        site: Option<Site<'a>>,
        detail: Detail<'a>,
    }

    fn heap(objs: &[Obj<'_>]) -> Heap {
        let mut p = PartialHeap::new(false);
        for (i, o) in objs.iter().enumerate() {
            p.push_object(&ObjectRecord {
                address: BASE + 40 * i as u64,
                type_name: o.type_name,
                class: o.class,
                flags: 0,
                memsize: o.memsize,
                file: o.site.map(|s| s.0),
                line: o.site.map(|s| s.1),
                method: o.site.and_then(|s| s.2),
                generation: o.site.map(|_| 7),
                detail: o.detail,
                refs: &[],
                object_id: None,
                real_class_name: None,
            });
        }
        let mut b = HeapBuilder::new(false, objs.len());
        b.append(p);
        b.finish()
    }

    fn o<'a>(
        type_name: &'a [u8],
        class: Option<u64>,
        memsize: u64,
        site: Option<Site<'a>>,
    ) -> Obj<'a> {
        Obj {
            type_name,
            class,
            memsize,
            site,
            detail: Detail::None,
        }
    }

    /// Decoded samples as (function, file, line, type, class, count, bytes).
    fn rows(p: &Profile) -> Vec<(String, String, i64, String, String, i64, i64)> {
        let s = |i: i64| p.string_table[i as usize].clone();
        let mut out: Vec<_> = p
            .sample
            .iter()
            .map(|smp| {
                assert_eq!(smp.location_id.len(), 1);
                let loc = &p.location[smp.location_id[0] as usize - 1];
                assert_eq!(loc.id, smp.location_id[0]);
                let line = &loc.line[0];
                let f = &p.function[line.function_id as usize - 1];
                let label = |k: &str| {
                    smp.label
                        .iter()
                        .find(|l| s(l.key) == k)
                        .map(|l| s(l.str))
                        .unwrap_or_default()
                };
                (
                    s(f.name),
                    s(f.filename),
                    line.line,
                    label("type"),
                    label("class"),
                    smp.value[2],
                    smp.value[3],
                )
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn samples_by_site_type_and_class() {
        let class_addr = BASE;
        let mut objs = vec![
            o(b"CLASS", None, 500, None),
            o(
                b"OBJECT",
                Some(class_addr),
                40,
                Some((b"a.rb", 3, Some(b"make"))),
            ),
            o(
                b"OBJECT",
                Some(class_addr),
                40,
                Some((b"a.rb", 3, Some(b"make"))),
            ),
            o(b"STRING", None, 41, Some((b"a.rb", 3, Some(b"make")))),
            o(b"STRING", None, 100, Some((b"b.rb", 9, None))),
            o(b"ARRAY", None, 80, None),
        ];
        objs[0].detail = Detail::Str(b"Widget");
        let h = heap(&objs);
        let p = profile(&h, &PprofOptions::default(), "test", "heap.dump");
        assert_eq!(p.string_table[0], "");
        let st = |v: &ValueType| {
            (
                p.string_table[v.r#type as usize].as_str(),
                p.string_table[v.unit as usize].as_str(),
            )
        };
        let types: Vec<_> = p.sample_type.iter().map(st).collect();
        assert_eq!(types, heapscope_pprof::SAMPLE_TYPES);
        assert!(p.sample.iter().all(|s| s.value[..2] == s.value[2..]));
        assert!(p.function.iter().all(|f| f.system_name == 0));
        assert_eq!(p.string_table[p.mapping[0].filename as usize], "heap.dump");
        assert_eq!(
            p.string_table[p.default_sample_type as usize],
            "inuse_space"
        );
        let r = |f: &str, file: &str, line, t: &str, c: &str, n, b| {
            (f.into(), file.into(), line, t.into(), c.into(), n, b)
        };
        assert_eq!(
            rows(&p),
            vec![
                r("(unknown)", "b.rb", 9, "STRING", "", 1, 100),
                r("(untraced)", "", 0, "ARRAY", "", 1, 80),
                r("(untraced)", "", 0, "CLASS", "", 1, 500),
                r("make", "a.rb", 3, "OBJECT", "Widget", 2, 80),
                r("make", "a.rb", 3, "STRING", "", 1, 41),
            ]
        );
        // One location per site: a.rb:3 is shared by two samples.
        assert_eq!(p.location.len(), 3);
        assert_eq!(p.function.len(), 3);
        let objects: i64 = p.sample.iter().map(|s| s.value[2]).sum();
        let bytes: i64 = p.sample.iter().map(|s| s.value[3]).sum();
        assert_eq!((objects, bytes), (6, 801));
    }

    #[test]
    fn classes_that_display_alike_share_a_sample() {
        let site = Some((&b"d.rb"[..], 1, Some(&b"m"[..])));
        let mut objs = vec![
            o(b"CLASS", None, 100, None),
            o(b"CLASS", None, 100, None),
            o(b"OBJECT", Some(BASE), 40, site),
            o(b"OBJECT", Some(BASE + 40), 40, site),
        ];
        objs[0].detail = Detail::Str(b"Dup");
        objs[1].detail = Detail::Str(b"Dup");
        let h = heap(&objs);
        assert_eq!(h.classes.len(), 2);
        let p = profile(&h, &PprofOptions::default(), "", "heap.dump");
        let r = rows(&p);
        assert_eq!(r.len(), 2, "{r:?}");
        assert_eq!(
            r[1],
            (
                "m".into(),
                "d.rb".into(),
                1,
                "OBJECT".into(),
                "Dup".into(),
                2,
                80
            )
        );
    }

    #[test]
    fn round_trips_through_gzip_and_prost() {
        let objs = vec![
            o(b"STRING", None, 41, Some((b"a.rb", 3, Some(b"make")))),
            o(b"HASH", None, 160, None),
        ];
        let h = heap(&objs);
        let p = profile(
            &h,
            &PprofOptions {
                include_tracer: false,
                include_agent: false,
                time_nanos: 1_700_000_000_000_000_000,
            },
            "heapscope: test",
            "heap.dump",
        );
        let mut gz = Vec::new();
        write_gz(&p, &mut gz).unwrap();
        assert_eq!(&gz[..2], &[0x1f, 0x8b]);
        let back = read_gz(&gz).unwrap();
        assert_eq!(back, p);
        assert_eq!(
            back.string_table[back.comment[0] as usize],
            "heapscope: test"
        );
    }

    #[test]
    fn empty_heap_gives_an_empty_profile() {
        let h = heap(&[]);
        let p = profile(&h, &PprofOptions::default(), "", "heap.dump");
        assert!(p.sample.is_empty());
        assert_eq!(p.string_table[0], "");
        assert_eq!(p.sample_type.len(), 4);
    }
}
