//! The address index (`Heap::find`) and the builder's resolution of
//! addresses, on heaps built directly with `PartialHeap`/`HeapBuilder`.

use heapscope_heap::{
    Detail, Heap, HeapBuilder, ObjId, ObjectRecord, PartialHeap, RootRecord, ShapeRecord, StrId,
    NO_OBJ, TRACER_STRUCT,
};
use proptest::prelude::*;

const PAGE: u64 = 1 << 14;
const BASE: u64 = 0x7f00_0000_0000;

fn record<'a>(address: u64, type_name: &'a [u8], refs: &'a [u64]) -> ObjectRecord<'a> {
    ObjectRecord {
        address,
        type_name,
        class: None,
        flags: 0,
        memsize: 40,
        file: None,
        line: None,
        method: None,
        generation: None,
        detail: Detail::None,
        refs,
        object_id: None,
        real_class_name: None,
    }
}

/// Builds a heap of OBJECTs at `addrs` (in that file order), split into
/// partials of `per_partial` objects.
fn heap_of(addrs: &[u64], per_partial: usize) -> Heap {
    let mut b = HeapBuilder::new(true, 0);
    for chunk in addrs.chunks(per_partial.max(1)) {
        let mut p = PartialHeap::new(true);
        for &a in chunk {
            p.push_object(&record(a, b"OBJECT", &[]));
        }
        b.append(p);
    }
    b.finish()
}

/// Addresses of `per_page` 40-byte slots on each of `pages` pages.
fn ruby_pages(pages: &[u64], per_page: u64) -> Vec<u64> {
    pages
        .iter()
        .flat_map(|&p| (0..per_page).map(move |s| BASE + p * PAGE + s * 40))
        .collect()
}

fn assert_finds_all(h: &Heap, addrs: &[u64]) {
    assert_eq!(h.len(), addrs.len());
    for (i, &a) in addrs.iter().enumerate() {
        assert_eq!(h.find(a), Some(i as ObjId), "address {a:#x}");
    }
}

fn assert_finds_none(h: &Heap, addrs: &[u64]) {
    let present: std::collections::HashSet<u64> = addrs.iter().copied().collect();
    let mut probes = vec![0, 1, u64::MAX, BASE - 8, BASE - PAGE, BASE + 1000 * PAGE];
    for &a in addrs {
        probes.extend([a + 1, a + 8, a.wrapping_sub(8), a + 20]);
    }
    for p in probes {
        if !present.contains(&p) {
            assert_eq!(h.find(p), None, "address {p:#x} is not in the heap");
        }
    }
}

#[test]
fn sorted_input_uses_page_runs() {
    let addrs = ruby_pages(&[0, 1, 2, 5], 409);
    let h = heap_of(&addrs, usize::MAX);
    assert!(
        h.index.by_address.is_empty(),
        "sorted input needs no permutation"
    );
    assert_eq!(h.index.pages.len(), 4);
    assert_eq!(h.facts.duplicate_addresses, 0);
    assert_finds_all(&h, &addrs);
    assert_finds_none(&h, &addrs);
}

#[test]
fn pages_out_of_order_use_page_runs() {
    // Ruby's layout: each page ascending, pages in any order.
    let addrs = ruby_pages(&[7, 2, 9, 0, 3], 300);
    let h = heap_of(&addrs, usize::MAX);
    assert!(
        h.index.by_address.is_empty(),
        "Ruby's page order needs no permutation"
    );
    assert_eq!(h.facts.duplicate_addresses, 0);
    assert_finds_all(&h, &addrs);
    assert_finds_none(&h, &addrs);
}

#[test]
fn pages_split_across_partials_are_still_runs() {
    let addrs = ruby_pages(&[4, 1, 3], 250);
    for per in [1, 7, 249, 250, 251, 1000] {
        let h = heap_of(&addrs, per);
        assert!(h.index.by_address.is_empty(), "partials of {per}");
        assert_finds_all(&h, &addrs);
        assert_finds_none(&h, &addrs);
    }
}

#[test]
fn shuffled_input_falls_back_to_a_permutation() {
    let mut addrs = ruby_pages(&[0, 1, 2, 3], 200);
    // A fixed pseudo-random shuffle.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for i in (1..addrs.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        addrs.swap(i, (x % (i as u64 + 1)) as usize);
    }
    let h = heap_of(&addrs, 97);
    assert_eq!(h.index.by_address.len(), addrs.len());
    assert_eq!(h.facts.duplicate_addresses, 0);
    assert_finds_all(&h, &addrs);
    assert_finds_none(&h, &addrs);
}

#[test]
fn descending_within_a_page_falls_back() {
    let mut addrs = ruby_pages(&[0], 100);
    addrs.reverse();
    let h = heap_of(&addrs, usize::MAX);
    assert!(!h.index.by_address.is_empty());
    assert_finds_all(&h, &addrs);
    assert_finds_none(&h, &addrs);
}

#[test]
fn a_page_in_two_runs_falls_back() {
    // Page 0, page 1, page 0 again: each run ascending, but page 0 is split.
    let mut addrs = ruby_pages(&[0], 10);
    addrs.extend(ruby_pages(&[1], 10));
    addrs.extend((10..20).map(|s| BASE + s * 40));
    let h = heap_of(&addrs, usize::MAX);
    assert!(!h.index.by_address.is_empty());
    assert_eq!(h.facts.duplicate_addresses, 0);
    assert_finds_all(&h, &addrs);
    assert_finds_none(&h, &addrs);
}

#[test]
fn duplicates_are_counted_and_find_the_first() {
    // Sorted, with one address twice in a row: not strictly ascending.
    let mut addrs = ruby_pages(&[0, 1], 50);
    addrs.insert(30, addrs[29]);
    let h = heap_of(&addrs, usize::MAX);
    assert_eq!(h.facts.duplicate_addresses, 1);
    assert_eq!(
        h.find(addrs[29]),
        Some(29),
        "the first record in file order"
    );
    for (i, &a) in addrs.iter().enumerate() {
        if i != 30 {
            assert_eq!(h.find(a), Some(i as ObjId));
        }
    }

    // The same address three times, far apart, plus another pair.
    let mut addrs = ruby_pages(&[2, 0, 1], 20);
    let a = addrs[5];
    let b = addrs[45];
    addrs.push(a);
    addrs.insert(10, a);
    addrs.push(b);
    let h = heap_of(&addrs, 13);
    assert_eq!(h.facts.duplicate_addresses, 3);
    assert_eq!(h.find(a), Some(5));
    assert_eq!(h.find(b), Some(46), "b moved by one with the insert");
    assert_finds_none(&h, &addrs);
}

#[test]
fn empty_heap_finds_nothing() {
    let h = heap_of(&[], 1);
    assert!(h.is_empty());
    assert_eq!(h.find(BASE), None);
    assert_eq!(h.find(0), None);
}

#[test]
fn references_roots_and_classes_resolve_across_partials() {
    let class_a = BASE + 40;
    let class_b = BASE + 80;
    let anon = BASE + 120;
    let obj1 = BASE + PAGE;
    let obj2 = BASE + PAGE + 40;
    let missing = BASE + 3 * PAGE;
    let mut b = HeapBuilder::new(true, 4);

    let mut p = PartialHeap::new(true);
    let class = |addr, name: Option<&'static [u8]>| ObjectRecord {
        detail: name.map_or(Detail::None, Detail::Str),
        class: Some(class_a),
        ..record(addr, b"CLASS", &[])
    };
    p.push_root(&RootRecord {
        category: b"vm",
        refs: &[obj1, missing, class_b],
    });
    p.push_root(&RootRecord {
        category: b"machine_context",
        refs: &[missing],
    });
    p.push_shape(&ShapeRecord {
        address: obj2,
        id: 0,
        shape_type: Some(b"ROOT"),
        ..Default::default()
    });
    p.push_object(&class(class_a, Some(b"Class")));
    p.push_object(&class(class_b, Some(b"Foo")));
    b.append(p);

    let mut p = PartialHeap::new(true);
    p.push_object(&class(anon, None));
    p.push_object(&ObjectRecord {
        class: Some(class_b),
        file: Some(b"/app/x.rb"),
        line: Some(3),
        method: Some(b"new"),
        generation: Some(9),
        memsize: u32::MAX as u64 + 5,
        detail: Detail::Number(7),
        ..record(obj1, b"OBJECT", &[obj2, obj1, missing, obj2, class_b])
    });
    p.push_object(&ObjectRecord {
        class: Some(anon),
        file: Some(b"/app/x.rb"),
        line: Some(3),
        ..record(obj2, b"OBJECT", &[missing])
    });
    p.push_object(&ObjectRecord {
        class: Some(missing),
        detail: Detail::Str(TRACER_STRUCT),
        memsize: u32::MAX as u64,
        ..record(missing + 8, b"DATA", &[])
    });
    p.push_object(&ObjectRecord {
        class: Some(class_a),
        detail: Detail::Str(b"callcache"),
        ..record(missing + 16, b"IMEMO", &[])
    });
    p.push_object(&record(missing + 24, b"FUTURE_TYPE", &[class_a]));
    b.append(p);
    let h = b.finish();

    assert_eq!(h.len(), 8);
    let id = |a| h.find(a).unwrap();
    // References in order, with the dangling ones dropped and counted.
    assert_eq!(
        h.refs(id(obj1)),
        &[id(obj2), id(obj1), id(obj2), id(class_b)]
    );
    assert_eq!(h.refs(id(obj2)), &[] as &[ObjId]);
    assert_eq!(h.facts.dangling_refs, 2);
    assert_eq!(h.refs(id(missing + 24)), &[id(class_a)]);
    // Roots: categories in order, dangling dropped; a shape's address is not an object.
    assert_eq!(h.roots.len(), 2);
    assert_eq!(h.strings.get(h.roots[0].category), b"vm");
    assert!(!h.roots[0].conservative);
    assert!(h.roots[1].conservative);
    assert_eq!(h.root_refs(&h.roots[0]), &[id(obj1), id(class_b)]);
    assert!(h.root_refs(&h.roots[1]).is_empty());
    assert_eq!(h.shapes.len(), 1);
    assert_eq!(h.find(obj2), Some(4), "the OBJECT, not the shape");
    assert!(h.facts.has_shapes);
    // Classes.
    let cls = |a| {
        h.class_of(id(a)).map(|c| {
            (
                c.address,
                c.object,
                c.name.get().map(|n| h.strings.get(n).to_vec()),
            )
        })
    };
    assert_eq!(
        cls(obj1),
        Some((class_b, id(class_b), Some(b"Foo".to_vec())))
    );
    assert_eq!(cls(obj2), Some((anon, id(anon), None)));
    assert_eq!(cls(missing + 8), Some((missing, NO_OBJ, None)));
    assert_eq!(cls(missing + 16), None, "IMEMO classes are never resolved");
    assert_eq!(h.class_display(h.class[id(obj1) as usize]), "Foo");
    assert_eq!(
        h.class_display(h.class[id(obj2) as usize]),
        format!("#<Class:{anon:#x}>")
    );
    // Columns.
    assert_eq!(h.memsize(id(obj1)), u32::MAX as u64 + 5);
    assert_eq!(h.memsize(id(missing + 8)), u32::MAX as u64);
    assert_eq!(h.memsize(id(obj2)), 40);
    assert_eq!(h.shape_id(id(obj1)), Some(7));
    assert_eq!(h.shape_id(id(obj2)), None);
    assert_eq!(
        h.location(id(obj1)),
        h.location(id(obj2)),
        "one location, shared"
    );
    assert_eq!(h.locations.len(), 1);
    assert_eq!(h.file(id(obj1)), Some(&b"/app/x.rb"[..]));
    assert_eq!(h.method_name(id(obj1)), Some(&b"new"[..]));
    assert_eq!(h.method_name(id(obj2)), None);
    assert_eq!(h.generation(id(obj1)), Some(9));
    assert_eq!(h.generation(id(obj2)), None);
    assert_eq!(h.facts.max_generation, Some(9));
    assert_eq!(h.facts.traced_objects, 2);
    assert_eq!(h.detail_str(id(missing + 16)), Some(&b"callcache"[..]));
    assert_eq!(h.type_name(id(missing + 24)), "FUTURE_TYPE");
    assert_eq!(h.tracer, Some(id(missing + 8)));
    assert!(h.memory_bytes() > 0);
}

#[test]
fn without_references_the_graph_is_empty() {
    let mut b = HeapBuilder::new(false, 0);
    let mut p = PartialHeap::new(false);
    p.push_object(&record(BASE, b"OBJECT", &[BASE, BASE + 8]));
    p.push_root(&RootRecord {
        category: b"vm",
        refs: &[BASE],
    });
    b.append(p);
    let h = b.finish();
    assert!(!h.references_loaded);
    assert!(h.ref_offsets.is_empty());
    assert!(h.refs(0).is_empty());
    assert_eq!(h.facts.dangling_refs, 0);
    assert_eq!(h.root_refs(&h.roots[0]), &[0]);
}

#[test]
fn strings_are_shared_between_partials() {
    let mut b = HeapBuilder::new(false, 0);
    for i in 0..3u64 {
        let mut p = PartialHeap::new(false);
        // Interned in a different order in each partial.
        let (f, m): (&[u8], &[u8]) = if i % 2 == 0 {
            (b"/a.rb", b"x")
        } else {
            (b"x", b"/a.rb")
        };
        p.push_object(&ObjectRecord {
            file: Some(f),
            line: Some(1),
            method: Some(m),
            ..record(BASE + i * 8, b"OBJECT", &[])
        });
        b.append(p);
    }
    let h = b.finish();
    assert_eq!(h.strings.len(), 2);
    assert_eq!(h.file(0), Some(&b"/a.rb"[..]));
    assert_eq!(h.method_name(0), Some(&b"x"[..]));
    assert_eq!(h.file(1), Some(&b"x"[..]));
    assert_eq!(h.method_name(1), Some(&b"/a.rb"[..]));
    assert_eq!(h.locations.len(), 2);
    assert_eq!(h.location(0), h.location(2));
    assert_ne!(h.strings.find(b"x"), None::<StrId>);
}

/// How file positions are laid out.
#[derive(Debug, Clone, Copy)]
enum Order {
    Sorted,
    RubyPages,
    Shuffled,
}

fn order() -> impl Strategy<Value = Order> {
    prop_oneof![
        Just(Order::Sorted),
        Just(Order::RubyPages),
        Just(Order::Shuffled)
    ]
}

proptest! {
    /// Any set of addresses, in any order, split into any partials: every
    /// address finds its (first) object, duplicates are counted, and
    /// addresses not in the set find nothing.
    #[test]
    fn find_finds_every_address(
        slots in prop::collection::vec((0u64..6, 0u64..2048), 0..400),
        dup_picks in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
        ord in order(),
        per_partial in 1usize..200,
        seed in any::<u64>(),
    ) {
        let mut addrs: Vec<u64> = slots.iter().map(|&(p, s)| BASE + p * PAGE + s * 8).collect();
        addrs.sort_unstable();
        addrs.dedup();
        let unique = addrs.len();
        let mut rng = seed | 1;
        let mut next = move || { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; rng };
        match ord {
            Order::Sorted => {}
            Order::RubyPages => {
                let mut pages: Vec<u64> = addrs.iter().map(|a| a >> 14).collect();
                pages.dedup();
                for i in (1..pages.len()).rev() {
                    pages.swap(i, (next() % (i as u64 + 1)) as usize);
                }
                addrs.sort_by_key(|a| (pages.iter().position(|&p| p == a >> 14), *a));
            }
            Order::Shuffled => {
                for i in (1..addrs.len()).rev() {
                    addrs.swap(i, (next() % (i as u64 + 1)) as usize);
                }
            }
        }
        // Duplicates go at the end, so the first occurrence keeps its position.
        if unique > 0 {
            for ix in &dup_picks {
                let a = addrs[ix.index(unique)];
                addrs.push(a);
            }
        }
        let h = heap_of(&addrs, per_partial);
        let dups = addrs.len() - unique;
        prop_assert_eq!(h.facts.duplicate_addresses, dups as u64);
        if dups == 0 && !matches!(ord, Order::Shuffled) {
            prop_assert!(h.index.by_address.is_empty());
        }
        for (i, &a) in addrs.iter().enumerate().take(unique) {
            prop_assert_eq!(h.find(a), Some(i as ObjId));
        }
        let present: std::collections::HashSet<u64> = addrs.iter().copied().collect();
        for p in 0..6u64 {
            for s in (0..2048u64).step_by(61) {
                let a = BASE + p * PAGE + s * 8;
                if !present.contains(&a) {
                    prop_assert_eq!(h.find(a), None);
                }
                prop_assert_eq!(h.find(a + 3), None);
            }
        }
    }
}
