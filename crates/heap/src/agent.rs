//! Which objects belong to the heapscope agent running in the dumped app.
//!
//! A dump of an app under `heapscope run` holds the agent's own objects: its
//! threads (each with a VM stack of about 1 MiB), the `Heapscope::Agent`
//! instance and what it holds, and, with allocation tracing, whatever the
//! agent's Ruby files allocated. They are not the app's memory, so analyses
//! leave them out unless asked (`--include-agent`), like the allocation
//! tracer's table. Without references an object is the agent's when:
//!
//! - its class is named `Heapscope` or `Heapscope::...` (the agent's threads
//!   are `Heapscope::AgentThread`s), or it is such a class or module itself,
//!   or a DATA object of the native extension's structs;
//! - or it was allocated in one of the agent's Ruby files (a path ending in
//!   `/heapscope.rb` or `/heapscope/<file>.rb`), which needs allocation
//!   tracing; classes, modules and iclasses are never counted this way, since
//!   prepending a module allocates iclasses that carry the target's methods.
//!
//! The Rack and Sidekiq middleware are the exception: an app's request path
//! runs through them and they hold the app, so they are never the agent's.
//! Graph commands also leave out what only agent objects keep alive
//! (`heapscope_graph::Graph::is_agent`).

use crate::{types, ClassId, Heap, LocId, ObjId, NO_CLASS, NO_LOC};

/// The namespace of the agent's classes.
pub const AGENT_NAMESPACE: &[u8] = b"Heapscope";

/// Classes in the namespace that belong to the app's request path.
pub const NOT_AGENT_CLASSES: &[&[u8]] = &[
    b"Heapscope::RackMiddleware",
    b"Heapscope::SidekiqMiddleware",
];

/// The agent's Ruby files, as path suffixes.
pub const AGENT_FILES: &[&[u8]] = &[
    b"/heapscope.rb",
    b"/heapscope/agent.rb",
    b"/heapscope/autostart.rb",
    b"/heapscope/fork_hook.rb",
    b"/heapscope/integrations.rb",
    b"/heapscope/middleware.rb",
    b"/heapscope/ractor_guard.rb",
    b"/heapscope/require_mem.rb",
    b"/heapscope/profile_run.rb",
];

/// DATA structs of the native extension (its profiler's hidden keeper).
pub const AGENT_STRUCTS: &[&[u8]] = &[b"heapscope_profiler"];

/// How much of a heap belongs to the agent: objects and their memsize.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AgentShare {
    pub objects: u64,
    pub bytes: u64,
}

impl AgentShare {
    pub fn add(&mut self, bytes: u64) {
        self.objects += 1;
        self.bytes = self.bytes.saturating_add(bytes);
    }
}

/// Whether a class name is in the agent's namespace (and not middleware).
pub fn is_agent_class_name(name: &[u8]) -> bool {
    let in_namespace = name == AGENT_NAMESPACE
        || (name.starts_with(AGENT_NAMESPACE) && name[AGENT_NAMESPACE.len()..].starts_with(b"::"));
    in_namespace && !NOT_AGENT_CLASSES.contains(&name)
}

/// Whether a path is one of the agent's Ruby files.
pub fn is_agent_file(path: &[u8]) -> bool {
    AGENT_FILES.iter().any(|s| path.ends_with(s))
}

/// What a class says about its instances.
const OTHER: u8 = 0;
const AGENT: u8 = 1;
/// Middleware: never the agent's, wherever allocated.
const NEVER: u8 = 2;

/// Per-class and per-location marks, computed once when a heap is built, so
/// that [`Heap::is_agent`] is two array reads per object.
#[derive(Debug, Clone, Default)]
pub struct AgentMarks {
    /// Whether the heap has any agent object (else every test is skipped).
    pub any: bool,
    /// By [`ClassId`]: OTHER, AGENT or NEVER.
    classes: Vec<u8>,
    /// By [`LocId`]: allocated in an agent file.
    locations: Vec<bool>,
    /// Agent classes and modules themselves, sorted.
    class_objects: Vec<ObjId>,
    /// String ids of [`AGENT_STRUCTS`] present in the heap.
    structs: Vec<u32>,
}

impl AgentMarks {
    pub(crate) fn compute(heap: &Heap) -> AgentMarks {
        let name_of = |c: &crate::ClassInfo| c.name.get().map(|n| heap.strings.get(n));
        let classes: Vec<u8> = heap
            .classes
            .iter()
            .map(|c| match name_of(c) {
                Some(n) if NOT_AGENT_CLASSES.contains(&n) => NEVER,
                Some(n) if is_agent_class_name(n) => AGENT,
                _ => OTHER,
            })
            .collect();
        let mut files: crate::FastMap<u32, bool> = crate::FastMap::default();
        let locations: Vec<bool> = heap
            .locations
            .iter()
            .map(|l| {
                *files
                    .entry(l.file.0)
                    .or_insert_with(|| is_agent_file(heap.strings.get(l.file)))
            })
            .collect();
        let structs: Vec<u32> = AGENT_STRUCTS
            .iter()
            .filter_map(|s| heap.strings.find(s))
            .map(|s| s.0)
            .collect();
        // Class and module objects: the namespace module has no instances, so
        // `classes` alone would miss it.
        let class_objects: Vec<ObjId> = heap
            .ids()
            .filter(|&id| {
                let t = heap.otype[id as usize];
                (t == types::CLASS || t == types::MODULE)
                    && heap
                        .detail_str(id)
                        .is_some_and(|n| n.starts_with(AGENT_NAMESPACE) && is_agent_class_name(n))
            })
            .collect();
        let any = classes.contains(&AGENT)
            || locations.contains(&true)
            || !class_objects.is_empty()
            || !structs.is_empty();
        AgentMarks {
            any,
            classes,
            locations,
            class_objects,
            structs,
        }
    }

    #[inline]
    fn class_mark(&self, c: ClassId) -> u8 {
        if c == NO_CLASS {
            OTHER
        } else {
            self.classes[c as usize]
        }
    }

    #[inline]
    fn located(&self, l: LocId) -> bool {
        l != NO_LOC && self.locations[l as usize]
    }
}

impl Heap {
    /// Whether `id` is one of the heapscope agent's own objects (see the
    /// module docs of `agent`); cheap, and false for every object of a dump
    /// without the agent.
    #[inline]
    pub fn is_agent(&self, id: ObjId) -> bool {
        let m = &self.agent;
        if !m.any {
            return false;
        }
        let i = id as usize;
        match self.otype[i] {
            types::CLASS | types::MODULE => m.class_objects.binary_search(&id).is_ok(),
            types::ICLASS => false,
            // The allocation tracer's table has its own flag.
            _ if self.tracer == Some(id) => false,
            t => match m.class_mark(self.class[i]) {
                AGENT => true,
                NEVER => false,
                _ => {
                    m.located(self.location[i])
                        || (t == types::DATA
                            && !m.structs.is_empty()
                            && m.structs.contains(&self.detail[i]))
                }
            },
        }
    }

    /// The agent's objects in the whole heap (see [`Heap::is_agent`]).
    pub fn agent_share(&self) -> AgentShare {
        let mut share = AgentShare::default();
        if self.agent.any {
            for id in self.ids().filter(|&id| self.is_agent(id)) {
                share.add(self.memsize(id));
            }
        }
        share
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_files() {
        assert!(is_agent_class_name(b"Heapscope"));
        assert!(is_agent_class_name(b"Heapscope::AgentThread"));
        assert!(is_agent_class_name(b"Heapscope::Native"));
        assert!(!is_agent_class_name(b"HeapscopeX"));
        assert!(!is_agent_class_name(b"Heapscope::RackMiddleware"));
        assert!(!is_agent_class_name(b"App::Heapscope"));
        assert!(is_agent_file(b"/gems/heapscope-0.1/lib/heapscope/agent.rb"));
        assert!(is_agent_file(b"/x/lib/heapscope.rb"));
        assert!(!is_agent_file(b"/x/lib/heapscope/agent.rbx"));
        assert!(!is_agent_file(b"/app/my_heapscope.rb"));
        assert!(!is_agent_file(b"heapscope.rb"));
    }
}
