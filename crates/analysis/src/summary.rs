//! `heapscope summary`: totals and grouped counts/memsize of one heap.

use std::str::FromStr;

use heapscope_heap::{AgentShare, Heap, ObjId, NO_GENERATION};

use crate::group::{group_objects, Group, GroupKey, SortBy};

/// Which generations to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GenerationFilter {
    #[default]
    All,
    /// Inclusive range; objects without a generation never match.
    Range(u32, u32),
}

impl FromStr for GenerationFilter {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("all") {
            return Ok(GenerationFilter::All);
        }
        let num = |t: &str, default: u32| -> Result<u32, String> {
            if t.is_empty() {
                return Ok(default);
            }
            t.parse::<u32>().map_err(|_| {
                format!("'{s}' is not a generation: expected N, N..M, N.., ..M or all")
            })
        };
        let (lo, hi) = match s.split_once("..") {
            Some((a, b)) => (num(a, 0)?, num(b, NO_GENERATION - 1)?),
            None => {
                let n = num(s, 0)?;
                if s.is_empty() {
                    return Err("empty generation".into());
                }
                (n, n)
            }
        };
        if lo > hi {
            return Err(format!(
                "generation range '{s}' is empty (start is after end)"
            ));
        }
        Ok(GenerationFilter::Range(lo, hi))
    }
}

/// Which objects an analysis looks at.
#[derive(Debug, Clone, Default)]
pub struct ObjectFilter {
    pub generations: GenerationFilter,
    /// Type indexes to keep; empty keeps all.
    pub types: Vec<u8>,
    /// Count the allocation tracer's own table as if it were the app's memory.
    pub include_tracer: bool,
    /// Count the heapscope agent's own objects ([`Heap::is_agent`]).
    pub include_agent: bool,
}

impl ObjectFilter {
    pub fn matches(&self, heap: &Heap, id: ObjId) -> bool {
        self.matches_but_agent(heap, id) && (self.include_agent || !heap.is_agent(id))
    }

    /// Whether `id` is left out as the agent's ([`Heap::is_agent`], unless
    /// `include_agent`).
    pub fn leaves_out_agent(&self, heap: &Heap, id: ObjId) -> bool {
        !self.include_agent && heap.is_agent(id)
    }

    /// [`ObjectFilter::matches`] without the agent test, so that callers can
    /// count what the agent test alone leaves out.
    pub fn matches_but_agent(&self, heap: &Heap, id: ObjId) -> bool {
        if !self.include_tracer && heap.is_tracer(id) {
            return false;
        }
        if let GenerationFilter::Range(lo, hi) = self.generations {
            let g = heap.generation[id as usize];
            if g == NO_GENERATION || g < lo || g > hi {
                return false;
            }
        }
        self.types.is_empty() || self.types.contains(&heap.otype[id as usize])
    }

    /// Resolves type names (case-insensitive) against a heap. Unknown names are
    /// an error listing the types the heap has.
    pub fn types_from_names(heap: &Heap, names: &[String]) -> Result<Vec<u8>, String> {
        names
            .iter()
            .map(|n| {
                heap.type_names
                    .iter()
                    .position(|t| t.eq_ignore_ascii_case(n.trim()))
                    .map(|i| i as u8)
                    .ok_or_else(|| {
                        format!(
                            "unknown object type '{n}' (types are: {})",
                            heap_scope_type_list(heap)
                        )
                    })
            })
            .collect()
    }
}

fn heap_scope_type_list(heap: &Heap) -> String {
    heap.type_names
        .iter()
        .map(|t| t.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    /// Objects and memsize that passed the filter.
    pub objects: u64,
    pub memsize: u64,
    /// All heap objects in the dump (tracer included).
    pub dump_objects: u64,
    pub roots: u64,
    pub shapes: u64,
    pub traced_objects: u64,
    /// Memsize of the allocation tracer's table, when the dump has one.
    pub tracer_memsize: Option<u64>,
    pub tracer_included: bool,
    /// The heapscope agent's objects among those the other filters keep:
    /// left out of `objects` and `memsize`, or with `agent_included`
    /// counted in them.
    pub agent: AgentShare,
    pub agent_included: bool,
    /// Free slots in a `dump_all(full: true)` dump (not objects).
    pub free_slots: u64,
}

impl Totals {
    /// The dump-wide figures only; `objects` and `memsize` are left at 0.
    pub fn of_dump(heap: &Heap, filter: &ObjectFilter) -> Totals {
        Totals {
            dump_objects: heap.len() as u64,
            roots: heap.roots.len() as u64,
            shapes: heap.shapes.len() as u64,
            traced_objects: heap.facts.traced_objects,
            tracer_memsize: heap.tracer.map(|id| heap.memsize(id)),
            tracer_included: filter.include_tracer,
            agent_included: filter.include_agent,
            free_slots: heap.facts.free_slots,
            ..Default::default()
        }
    }
}

pub struct SummaryOptions {
    pub by: Vec<GroupKey>,
    pub filter: ObjectFilter,
    pub sort: SortBy,
    pub top: Option<usize>,
}

pub struct Summary {
    pub by: Vec<GroupKey>,
    pub totals: Totals,
    pub groups: Vec<Group>,
    /// Number of groups before `top` cut them.
    pub total_groups: usize,
}

pub fn summarize(heap: &Heap, opts: &SummaryOptions) -> Summary {
    let mut totals = Totals::of_dump(heap, &opts.filter);
    // Totals (and the agent's share) are summed in the same pass as the groups.
    let include_agent = opts.filter.include_agent;
    let ids = heap
        .ids()
        .filter(|&id| opts.filter.matches_but_agent(heap, id))
        .filter(|&id| {
            if heap.is_agent(id) {
                totals.agent.add(heap.memsize(id));
                if !include_agent {
                    return false;
                }
            }
            totals.objects += 1;
            totals.memsize = totals.memsize.saturating_add(heap.memsize(id));
            true
        });
    let (groups, total_groups) = group_objects(heap, ids, &opts.by, opts.sort, opts.top);
    Summary {
        by: opts.by.clone(),
        totals,
        groups,
        total_groups,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_generation_filters() {
        assert_eq!("all".parse(), Ok(GenerationFilter::All));
        assert_eq!("7".parse(), Ok(GenerationFilter::Range(7, 7)));
        assert_eq!("3..9".parse(), Ok(GenerationFilter::Range(3, 9)));
        assert_eq!(
            "3..".parse(),
            Ok(GenerationFilter::Range(3, NO_GENERATION - 1))
        );
        assert_eq!("..4".parse(), Ok(GenerationFilter::Range(0, 4)));
        assert!("9..3".parse::<GenerationFilter>().is_err());
        assert!("x".parse::<GenerationFilter>().is_err());
        assert!("".parse::<GenerationFilter>().is_err());
    }
}
