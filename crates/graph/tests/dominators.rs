//! The dominator tree, retained sizes and root paths on random heaps,
//! against a slow oracle (reachability by BFS, dominance by removing each
//! object in turn and searching again).

mod common;

use std::collections::HashSet;

use common::{distances, spec, Built, Kind, Oracle, Spec};
use heapscope_graph::{shortest_paths, Dominators, Graph, GraphOptions};
use proptest::prelude::*;

fn graph<'a>(b: &'a Built, spec: &Spec) -> Graph<'a> {
    Graph::new(
        &b.heap,
        GraphOptions {
            include_tracer: spec.include_tracer,
            include_agent: false,
        },
    )
}

fn check_dominators(spec: &Spec) -> Result<(), TestCaseError> {
    let b = spec.build();
    let n = b.n;
    prop_assert_eq!(b.heap.len(), n);
    for (i, &a) in b.addresses.iter().enumerate() {
        prop_assert_eq!(b.heap.find(a), Some(i as u32));
    }
    let o = Oracle::new(&b);
    let g = graph(&b, spec);
    let root = g.root();
    prop_assert_eq!(root as usize, n);
    // The graph's edges are the oracle's (as multisets, in order).
    for v in 0..n {
        prop_assert_eq!(
            g.succs(v as u32),
            b.succ[v].iter().map(|&w| w as u32).collect::<Vec<_>>(),
            "successors of {}",
            v
        );
        prop_assert_eq!(g.is_weak_container(v as u32), b.kinds[v].is_weak());
        prop_assert_eq!(g.shallow(v as u32), b.shallow[v]);
    }
    let d = Dominators::compute(&g);
    prop_assert_eq!(d.root(), root);
    prop_assert_eq!(d.idom(root), None);
    prop_assert!(d.is_reachable(root));
    prop_assert_eq!(d.reachable_bytes(), o.reachable_bytes(&b));
    prop_assert_eq!(d.retained(root), o.reachable_bytes(&b));
    prop_assert!(d.chain(root).is_empty());

    let unreachable: Vec<u32> = d.unreachable().collect();
    let expected: Vec<u32> = (0..n as u32).filter(|&v| !o.reach[v as usize]).collect();
    prop_assert_eq!(&unreachable, &expected, "unreachable objects");

    for v in 0..n {
        let id = v as u32;
        prop_assert_eq!(d.is_reachable(id), o.reach[v], "reachability of {}", v);
        prop_assert_eq!(d.idom(id).map(|x| x as usize), o.idom[v], "idom of {}", v);
        prop_assert_eq!(d.retained(id), o.retained[v], "retained of {}", v);
        // chain: v, idom(v), idom(idom(v)), ... up to the super-root's child.
        let mut chain = Vec::new();
        let mut x = v;
        while o.reach[v] && x != n {
            chain.push(x as u32);
            x = o.idom[x].unwrap();
        }
        prop_assert_eq!(d.chain(id), chain, "chain of {}", v);
    }

    // Children lists agree with idom, each in preorder.
    let pre = d.preorder();
    let mut pos = vec![usize::MAX; n + 1];
    for (i, &v) in pre.iter().enumerate() {
        prop_assert_eq!(pos[v as usize], usize::MAX, "{} twice in preorder", v);
        pos[v as usize] = i;
    }
    prop_assert_eq!(pre.first().copied(), Some(root));
    prop_assert_eq!(pre.len(), 1 + o.reach.iter().filter(|&&r| r).count());
    for v in 0..=n {
        let kids = d.children(v as u32);
        let mut want: Vec<u32> = (0..n)
            .filter(|&y| o.idom[y] == Some(v))
            .map(|y| y as u32)
            .collect();
        let mut got = kids.to_vec();
        prop_assert!(
            got.windows(2)
                .all(|w| pos[w[0] as usize] < pos[w[1] as usize]),
            "children of {} not in preorder: {:?}",
            v,
            got
        );
        got.sort_unstable();
        want.sort_unstable();
        prop_assert_eq!(got, want, "children of {}", v);
        if v < n && o.reach[v] {
            prop_assert!(pos[o.idom[v].unwrap()] < pos[v], "{} before its idom", v);
            // Retained = shallow + the children's retained.
            let sum: u64 = kids.iter().map(|&c| d.retained(c)).sum();
            prop_assert_eq!(d.retained(v as u32), b.shallow[v] + sum);
        }
    }
    let top: u64 = d.children(root).iter().map(|&c| d.retained(c)).sum();
    prop_assert_eq!(top, d.reachable_bytes());
    Ok(())
}

fn check_paths(spec: &Spec) -> Result<(), TestCaseError> {
    let b = spec.build();
    let n = b.n;
    let g = graph(&b, spec);
    let starts: Vec<usize> = b.root_refs.iter().map(|&(t, _)| t).collect();
    let dist = distances(&b.succ, &starts);
    let edges: HashSet<(u32, u32)> = (0..n)
        .flat_map(|v| b.succ[v].iter().map(move |&w| (v as u32, w as u32)))
        .collect();
    let rooted: HashSet<u32> = starts.iter().map(|&s| s as u32).collect();
    // Objects a precise (not machine_context) root references: paths from
    // them come first.
    let precise: HashSet<u32> = b
        .root_refs
        .iter()
        .filter(|&&(_, c)| c != "machine_context")
        .map(|&(s, _)| s as u32)
        .collect();
    let dist_from_precise = distances(
        &b.succ,
        &precise.iter().map(|&s| s as usize).collect::<Vec<_>>(),
    );
    let check_path = |p: &heapscope_graph::RootPath, t: u32| -> Result<(), TestCaseError> {
        prop_assert_eq!(p.nodes.last().copied(), Some(t));
        prop_assert!(rooted.contains(&p.nodes[0]), "{:?} starts at a root", p);
        for w in p.nodes.windows(2) {
            prop_assert!(edges.contains(&(w[0], w[1])), "{:?}: no edge {:?}", p, w);
        }
        let mut cats: Vec<&str> = b
            .root_refs
            .iter()
            .filter(|&&(s, _)| s as u32 == p.nodes[0])
            .map(|&(_, c)| c)
            .collect();
        cats.sort_unstable();
        cats.dedup();
        let mut got: Vec<String> = p
            .categories
            .iter()
            .map(|&c| b.heap.strings.text(c).into_owned())
            .collect();
        got.sort_unstable();
        prop_assert_eq!(got, cats, "categories of {:?}", p);
        Ok(())
    };
    for (t, &dist_t) in dist.iter().enumerate() {
        let id = t as u32;
        let one = shortest_paths(&g, id, 1);
        let all = shortest_paths(&g, id, 5);
        match dist_t {
            None => {
                prop_assert!(one.is_empty(), "a path to unreachable {}: {:?}", t, one);
                prop_assert!(all.is_empty());
            }
            Some(len) => {
                // The shortest path from a precise root when there is one,
                // else the shortest from a conservative one.
                let first = dist_from_precise[t].unwrap_or(len);
                prop_assert_eq!(one.len(), 1);
                prop_assert_eq!(one[0].nodes.len(), first, "first path to {}", t);
                prop_assert_eq!(
                    precise.contains(&one[0].nodes[0]),
                    dist_from_precise[t].is_some()
                );
                check_path(&one[0], id)?;
                prop_assert_eq!(&all[0].nodes.len(), &first);
                // Up to 5 paths, from distinct root-referenced objects, each
                // the shortest from its start: those from precise roots
                // first, shortest first, then the others, shortest first.
                let reaching: Vec<u32> = rooted
                    .iter()
                    .copied()
                    .filter(|&s| distances(&b.succ, &[s as usize])[t].is_some())
                    .collect();
                // A path through another root-referenced object (as
                // trusted as its own root) repeats that object's path, so
                // there may be fewer.
                prop_assert!(!all.is_empty() && all.len() <= reaching.len().min(5));
                let firsts: HashSet<u32> = all.iter().map(|p| p.nodes[0]).collect();
                prop_assert_eq!(firsts.len(), all.len(), "distinct starts: {:?}", all);
                for p in &all {
                    check_path(p, id)?;
                    let trusted = precise.contains(&p.nodes[0]);
                    prop_assert!(
                        p.nodes[1..]
                            .iter()
                            .all(|x| !precise.contains(x) && (trusted || !rooted.contains(x))),
                        "{:?} passes through a root-referenced object",
                        p
                    );
                    let from = distances(&b.succ, &[p.nodes[0] as usize])[t].unwrap();
                    prop_assert_eq!(p.nodes.len(), from, "{:?} is not shortest", p);
                }
                let key =
                    |p: &heapscope_graph::RootPath| (!precise.contains(&p.nodes[0]), p.nodes.len());
                prop_assert!(
                    all.windows(2).all(|w| key(&w[0]) <= key(&w[1])),
                    "{:?}",
                    all
                );
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn dominators_match_removal_oracle(spec in spec(40)) {
        check_dominators(&spec)?;
    }

    #[test]
    fn shortest_paths_match_bfs(spec in spec(40)) {
        check_paths(&spec)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Bigger heaps (up to 120 objects), for deeper dominator trees and
    /// longer compressed paths.
    #[test]
    fn dominators_match_removal_oracle_bigger(spec in spec(120)) {
        check_dominators(&spec)?;
    }
}

/// A deterministic spec: `edges` as (from, to), roots as targets.
fn fixed(n: usize, edges: &[(usize, usize)], roots: &[usize], weak: &[usize]) -> Spec {
    let mut objs: Vec<common::ObjSpec> = (0..n)
        .map(|i| common::ObjSpec {
            kind: if weak.contains(&i) {
                Kind::WeakMap
            } else {
                Kind::Object
            },
            memsize: 10 * (i as u64 + 1),
            refs: Vec::new(),
            class: None,
            generation: 0,
        })
        .collect();
    for &(a, t) in edges {
        objs[a].refs.push(t as u8);
    }
    Spec {
        objs,
        roots: vec![(0, roots.iter().map(|&r| r as u8).collect())],
        seed: 7,
        sorted_layout: true,
        per_partial: 3,
        include_tracer: false,
        local: false,
        agent: Vec::new(),
    }
}

#[test]
fn diamond_cycle_and_weakmap() {
    // 0 -> 1, 0 -> 2, 1 -> 3, 2 -> 3 (diamond); 3 -> 4 -> 3 (cycle), 4 -> 4;
    // 5 is a weakmap referencing 6 (6 unreachable); root -> 0 and 5.
    let spec = fixed(
        7,
        &[
            (0, 1),
            (0, 2),
            (1, 3),
            (2, 3),
            (3, 4),
            (4, 3),
            (4, 4),
            (5, 6),
        ],
        &[0, 5],
        &[5],
    );
    check_dominators(&spec).unwrap();
    check_paths(&spec).unwrap();
    let b = spec.build();
    let g = graph(&b, &spec);
    let d = Dominators::compute(&g);
    assert_eq!(d.idom(3), Some(0));
    assert_eq!(d.idom(4), Some(3));
    assert_eq!(d.idom(0), Some(7));
    assert_eq!(d.retained(3), 40 + 50);
    assert_eq!(d.retained(0), 10 + 20 + 30 + 40 + 50);
    assert_eq!(d.unreachable().collect::<Vec<_>>(), vec![6]);
    assert_eq!(d.chain(4), vec![4, 3, 0]);
}

#[test]
fn long_chain_does_not_overflow_the_stack() {
    // 200,000 objects in one chain: recursion would overflow the stack.
    let n = 200_000usize;
    let mut bld = heapscope_heap::HeapBuilder::new(true, n);
    let mut p = heapscope_heap::PartialHeap::new(true);
    let addr = |i: usize| common::BASE + i as u64 * 40;
    p.push_root(&heapscope_heap::RootRecord {
        category: b"vm",
        refs: &[addr(0)],
    });
    for i in 0..n {
        let refs = if i + 1 < n { vec![addr(i + 1)] } else { vec![] };
        p.push_object(&heapscope_heap::ObjectRecord {
            address: addr(i),
            type_name: b"ARRAY",
            class: None,
            flags: 0,
            memsize: 1,
            file: None,
            line: None,
            method: None,
            generation: None,
            detail: heapscope_heap::Detail::None,
            refs: &refs,
            object_id: None,
            real_class_name: None,
        });
    }
    bld.append(p);
    let heap = bld.finish();
    let g = Graph::new(&heap, GraphOptions::default());
    let d = Dominators::compute(&g);
    assert_eq!(d.reachable_bytes(), n as u64);
    assert_eq!(d.retained(0), n as u64);
    assert_eq!(d.retained(n as u32 - 1), 1);
    assert_eq!(d.idom(n as u32 - 1), Some(n as u32 - 2));
    assert_eq!(d.chain(n as u32 - 1).len(), n);
    let paths = shortest_paths(&g, n as u32 - 1, 5);
    assert_eq!(paths.len(), 1);
    assert_eq!(paths[0].nodes.len(), n);
}
