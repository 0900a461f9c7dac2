//! Dumps loaded for object pages, the dominator explorer and diffs: read
//! from their files with references, their graph and dominator tree built
//! once, kept while they fit in the memory budget (least recently used
//! first out).
//!
//! A file is checked against what was imported before it is read: gone,
//! another size, or another fingerprint each get their own message.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use heapscope_graph::{Dominators, Graph, GraphOptions};
use heapscope_reader::{read_input, Dump, Input, ReadOptions};
use heapscope_store::DumpInfo;

/// Default memory budget for loaded dumps: 4 GiB.
pub const DEFAULT_CACHE_BYTES: usize = 4 << 30;

pub struct Analysed<'a> {
    pub graph: Graph<'a>,
    pub dom: Dominators,
}

self_cell::self_cell!(
    /// A dump with its graph and dominator tree.
    pub struct Loaded {
        owner: Dump,
        #[covariant]
        dependent: Analysed,
    }
);

impl Loaded {
    pub fn dump(&self) -> &Dump {
        self.borrow_owner()
    }
    pub fn graph(&self) -> &Graph<'_> {
        &self.borrow_dependent().graph
    }
    pub fn dom(&self) -> &Dominators {
        &self.borrow_dependent().dom
    }
}

struct Entry {
    dump_id: i64,
    loaded: Arc<Loaded>,
    bytes: usize,
    used: Instant,
}

pub struct Cache {
    entries: Mutex<Vec<Entry>>,
    /// One load at a time: two pages asking for the same big dump wait for
    /// one read instead of making two.
    loading: Mutex<()>,
    budget: usize,
    threads: usize,
}

impl Cache {
    pub fn new(budget: usize, threads: usize) -> Cache {
        Cache {
            entries: Mutex::new(Vec::new()),
            loading: Mutex::new(()),
            budget,
            threads,
        }
    }

    fn cached(&self, dump_id: i64) -> Option<Arc<Loaded>> {
        let mut e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let hit = e.iter_mut().find(|e| e.dump_id == dump_id)?;
        hit.used = Instant::now();
        Some(hit.loaded.clone())
    }

    /// The loaded dump, reading it when it is not in memory; `Err` says
    /// why it cannot be (for the page).
    pub fn get(&self, info: &DumpInfo) -> Result<Arc<Loaded>, String> {
        if let Some(l) = self.cached(info.id) {
            return Ok(l);
        }
        let _one = self.loading.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(l) = self.cached(info.id) {
            return Ok(l);
        }
        check_file(info)?;
        let input = Input::open(std::path::Path::new(&info.path))
            .map_err(|e| format!("The dump file {} cannot be read: {e}", info.path))?;
        let opts = ReadOptions {
            references: true,
            string_values: true,
            threads: self.threads,
            ..ReadOptions::default()
        };
        let dump = read_input(input, &opts)
            .map_err(|e| format!("The dump file {} cannot be read: {e}", info.path))?;
        let bytes = dump.heap.memory_bytes() * 2;
        let loaded = Arc::new(Loaded::new(dump, |d| {
            let graph = Graph::new(&d.heap, GraphOptions::default());
            let dom = Dominators::compute(&graph);
            Analysed { graph, dom }
        }));
        let mut e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        e.push(Entry {
            dump_id: info.id,
            loaded: loaded.clone(),
            bytes,
            used: Instant::now(),
        });
        // Evict the least recently used until the rest fit (always keeping
        // the one just loaded).
        loop {
            let total: usize = e.iter().map(|x| x.bytes).sum();
            if total <= self.budget || e.len() <= 1 {
                break;
            }
            let oldest = e
                .iter()
                .enumerate()
                .filter(|(_, x)| x.dump_id != info.id)
                .min_by_key(|(_, x)| x.used)
                .map(|(i, _)| i);
            match oldest {
                Some(i) => {
                    e.remove(i);
                }
                None => break,
            }
        }
        Ok(loaded)
    }
}

/// The file is still the one imported: there, same size, same fingerprint,
/// same modification time.
fn check_file(info: &DumpInfo) -> Result<(), String> {
    let path = std::path::Path::new(&info.path);
    let meta = std::fs::metadata(path).map_err(|e| {
        format!(
            "The dump file {} is gone (moved or deleted since it was imported: {e}). \
             Object pages read the file; re-import it from its new place, or import with \
             --objects to keep objects in the store.",
            info.path
        )
    })?;
    if meta.len() != info.file_size as u64 {
        return Err(format!(
            "The dump file {} has changed since it was imported: it was {} bytes and is now {} \
             (truncated, or another dump written to the same name). Re-import it.",
            info.path,
            info.file_size,
            meta.len()
        ));
    }
    let (fp, _, mtime) = heapscope_store::import::fingerprint(path)
        .map_err(|e| format!("The dump file {} cannot be read: {e}", info.path))?;
    if fp != info.fingerprint {
        return Err(format!(
            "The dump file {} has changed since it was imported (same size, other contents). \
             Re-import it.",
            info.path
        ));
    }
    // The fingerprint reads only the file's ends: a write in the middle
    // shows in the modification time.
    if let (Some(now), Some(then)) = (mtime, info.file_mtime) {
        if now != then {
            return Err(format!(
                "The dump file {} has been modified since it was imported (its modification \
                 time changed), so its contents may differ from what the store holds. \
                 Re-import it.",
                info.path
            ));
        }
    }
    Ok(())
}
