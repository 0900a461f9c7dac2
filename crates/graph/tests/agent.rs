//! What the heapscope agent alone keeps alive (`Graph::is_agent`), on random
//! heaps with random agent objects, against the definition computed the slow
//! way: reachable from the roots, but no longer once every agent object is
//! removed.

mod common;

use common::{spec, Built, Spec};
use heapscope_graph::{shortest_paths, Dominators, Graph, GraphOptions};
use proptest::prelude::*;

/// Reachability by repeated relaxation until nothing changes (deliberately
/// not a search), never entering `skip`.
fn reach_slow(b: &Built, skip: &[bool]) -> Vec<bool> {
    let mut seen = vec![false; b.n];
    for &(t, _) in &b.root_refs {
        if !skip[t] {
            seen[t] = true;
        }
    }
    loop {
        let mut changed = false;
        for v in 0..b.n {
            if !seen[v] {
                continue;
            }
            for &w in &b.succ[v] {
                if !skip[w] && !seen[w] {
                    seen[w] = true;
                    changed = true;
                }
            }
        }
        if !changed {
            return seen;
        }
    }
}

fn check(spec: &Spec) -> Result<(), TestCaseError> {
    let b = spec.build();
    let seeds: Vec<bool> = (0..b.n as u32).map(|v| b.heap.is_agent(v)).collect();
    // Every object the spec made the agent's is marked; classes named in the
    // namespace mark their instances too, so there may be more.
    // (The allocation tracer's table never is: --include-tracer governs it.)
    for (i, &a) in spec.agent.iter().enumerate().take(b.n) {
        if b.heap.is_tracer(i as u32) {
            prop_assert!(!seeds[i]);
        } else if a {
            prop_assert!(seeds[i], "object {} of the agent is not marked", i);
        }
    }
    let all = reach_slow(&b, &vec![false; b.n]);
    let without = reach_slow(&b, &seeds);
    let expected: Vec<bool> = (0..b.n)
        .map(|v| seeds[v] || (all[v] && !without[v]))
        .collect();

    let g = Graph::new(&b.heap, GraphOptions::default());
    let got: Vec<bool> = (0..b.n as u32).map(|v| g.is_agent(v)).collect();
    prop_assert_eq!(&got, &expected);
    let share = g.agent_share();
    prop_assert_eq!(
        share.objects,
        expected.iter().filter(|&&x| x).count() as u64
    );
    prop_assert_eq!(
        share.bytes,
        (0..b.n)
            .filter(|&v| expected[v])
            .map(|v| b.heap.memsize(v as u32))
            .sum::<u64>()
    );

    // Left-out objects weigh nothing, but stay reachable.
    let d = Dominators::compute(&g);
    for v in 0..b.n {
        prop_assert_eq!(d.is_reachable(v as u32), all[v], "reachability of {}", v);
        if expected[v] {
            prop_assert_eq!(g.shallow(v as u32), 0);
        }
    }
    let app_bytes: u64 = (0..b.n)
        .filter(|&v| all[v] && !expected[v])
        .map(|v| g.shallow(v as u32))
        .sum();
    prop_assert_eq!(d.reachable_bytes(), app_bytes);

    // Paths to an app object never pass through the agent's objects.
    for v in 0..b.n {
        if all[v] && !expected[v] {
            let paths = shortest_paths(&g, v as u32, 2);
            prop_assert!(!paths.is_empty(), "no path to {}", v);
            for p in paths {
                prop_assert!(p.nodes.iter().all(|&x| !g.is_agent(x)), "{:?}", p.nodes);
            }
        }
    }

    // With include_agent nothing is left out.
    let g = Graph::new(
        &b.heap,
        GraphOptions {
            include_agent: true,
            ..GraphOptions::default()
        },
    );
    prop_assert!((0..b.n as u32).all(|v| !g.is_agent(v)));
    prop_assert_eq!(g.agent_share().objects, 0);
    Ok(())
}

fn with_agents() -> impl Strategy<Value = Spec> {
    (
        spec(60),
        prop::collection::vec(prop::bool::weighted(0.15), 60),
    )
        .prop_map(|(mut s, agent)| {
            s.agent = agent;
            s
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn agent_marks_match_the_definition(s in with_agents()) {
        check(&s)?;
    }
}
