//! Group retained sizes (`top_groups`) on random heaps, against a slow
//! oracle: a group retains the shallow bytes of the union of what its
//! members dominate (dominance found by removing each object and searching
//! again). The random heaps and the oracle are shared with the graph crate's
//! tests.

#[path = "../../graph/tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;

use common::{spec, Built, Oracle, Spec};
use heapscope_analysis::group::{GroupKey, KeyValue};
use heapscope_analysis::retained::{top_groups, top_objects};
use heapscope_graph::{Dominators, Graph, GraphOptions};
use proptest::prelude::*;

/// (count, shallow, retained) of each group of reachable objects.
fn oracle_groups<K: Ord>(
    b: &Built,
    o: &Oracle,
    key: impl Fn(usize) -> K,
) -> BTreeMap<K, (u64, u64, u64)> {
    let mut members: BTreeMap<K, Vec<usize>> = BTreeMap::new();
    for v in (0..b.n).filter(|&v| o.reach[v]) {
        members.entry(key(v)).or_default().push(v);
    }
    members
        .into_iter()
        .map(|(k, m)| {
            let shallow = m.iter().map(|&v| b.shallow[v]).sum();
            (k, (m.len() as u64, shallow, o.union_retained(b, &m)))
        })
        .collect()
}

fn check(spec: &Spec) -> Result<(), TestCaseError> {
    let b = spec.build();
    let o = Oracle::new(&b);
    let g = Graph::new(
        &b.heap,
        GraphOptions {
            include_tracer: spec.include_tracer,
            include_agent: false,
        },
    );
    let d = Dominators::compute(&g);

    // By generation: a random grouping of the objects.
    let want = oracle_groups(&b, &o, |v| b.generations[v] as u32);
    let (groups, total) = top_groups(&g, &d, &[GroupKey::Generation], None);
    prop_assert_eq!(total, want.len());
    let got: BTreeMap<u32, (u64, u64, u64)> = groups
        .iter()
        .map(|gr| match gr.key[..] {
            [KeyValue::Generation(Some(gen))] => {
                (gen, (gr.count, gr.shallow_bytes, gr.retained_bytes))
            }
            ref k => panic!("unexpected key {k:?}"),
        })
        .collect();
    prop_assert_eq!(&got, &want, "groups by generation");
    // Largest retained first.
    prop_assert!(groups
        .windows(2)
        .all(|w| w[0].retained_bytes >= w[1].retained_bytes));

    // By type.
    let want = oracle_groups(&b, &o, |v| b.kinds[v].type_name().to_string());
    let (groups, total) = top_groups(&g, &d, &[GroupKey::Type], Some(2));
    prop_assert_eq!(total, want.len());
    prop_assert!(groups.len() <= 2);
    for gr in &groups {
        let name = match &gr.key[..] {
            [KeyValue::Text(Some(t))] => t.clone(),
            k => panic!("unexpected key {k:?}"),
        };
        prop_assert_eq!(
            Some(&(gr.count, gr.shallow_bytes, gr.retained_bytes)),
            want.get(&name),
            "group {}",
            name
        );
    }

    // By type and generation together.
    let want = oracle_groups(&b, &o, |v| {
        (b.kinds[v].type_name(), b.generations[v] as u32)
    });
    let (groups, total) = top_groups(&g, &d, &[GroupKey::Type, GroupKey::Generation], None);
    prop_assert_eq!(total, want.len());
    let sum: u64 = groups.iter().map(|gr| gr.count).sum();
    prop_assert_eq!(sum, o.reach.iter().filter(|&&r| r).count() as u64);
    for gr in &groups {
        let k = match &gr.key[..] {
            [KeyValue::Text(Some(t)), KeyValue::Generation(Some(gen))] => (t.clone(), *gen),
            k => panic!("unexpected key {k:?}"),
        };
        let w = want.iter().find(|((t, gen), _)| *t == k.0 && *gen == k.1);
        prop_assert_eq!(
            w.map(|(_, v)| *v),
            Some((gr.count, gr.shallow_bytes, gr.retained_bytes)),
            "group {:?}",
            k
        );
    }

    // One group per object: the object's own retained size.
    let objs = top_objects(&g, &d, usize::MAX);
    prop_assert_eq!(objs.len(), o.reach.iter().filter(|&&r| r).count());
    for ob in &objs {
        prop_assert_eq!(ob.retained_bytes, o.retained[ob.object.id as usize]);
        prop_assert_eq!(ob.shallow_bytes, b.shallow[ob.object.id as usize]);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn group_retained_is_the_union_of_dominated_sets(spec in spec(40)) {
        check(&spec)?;
    }
}
