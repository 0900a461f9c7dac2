//! `heapscope leaks`: allocation sites whose objects keep piling up across a
//! series of dumps of one process.
//!
//! Dumps are folded in one at a time ([`SeriesBuilder::add_dump`]), so a long
//! series never needs more than one heap in memory. For every site (type,
//! class, location) the builder keeps its count and bytes per dump; for the
//! survivors (objects absent from the first dump and present in every later
//! one, identified as in `diff`, by Ruby 4.0's object_id where the earlier
//! dump has one) it keeps a shrinking set of identities, each in the form of
//! the latest dump (an object may have moved or got an object_id since).
//! The last dump is then read with its references to find a path from a root
//! to one survivor of each suspect site. The nearest object on that path that
//! is not itself a survivor is the site's container; sites that share one (an
//! app's log Array holding entries of four kinds) are grouped under it.

use std::path::{Path, PathBuf};

use heapscope_graph::{shortest_paths, Graph, RootPath};
use heapscope_heap::{AgentShare, FastMap, Heap, ObjId};

use crate::diff::{Identities, IdentitySet, ObjIdentity};
use crate::group::{GroupKey, Grouper, KeyValue, MAX_KEYS};
use crate::paths::{label_path, object_ref, LabeledPath, Labeler, ObjectRef};
use crate::trend::{classify, Trend, Verdict};

mod state;

/// Sites that level off below this many objects are not listed as caches.
pub const MIN_CACHE_OBJECTS: u64 = 10;

/// The default of `--min-growth`: objects per dump a site must grow by to be a leak.
pub const DEFAULT_MIN_GROWTH: f64 = 1.0;

/// With fewer dumps no series can show a trend, so nothing can be called a
/// leak, a cache, or stable: the report says it cannot judge.
pub const MIN_DUMPS: usize = crate::trend::MIN_POINTS;

/// One dump of a series, as found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpFile {
    pub path: PathBuf,
    /// Unix time in seconds, when known.
    pub time: Option<i64>,
    /// Process id, when the file name carries one (`heap-<pid>-<unixtime>-...`).
    pub pid: Option<u32>,
}

/// Where the order of the dumps came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderSource {
    /// A 10-digit unix timestamp in each file name.
    FileNames,
    /// The `--time` values given.
    TimeFlag,
    /// File modification times.
    ModificationTimes,
}

impl OrderSource {
    pub fn describe(self) -> &'static str {
        match self {
            OrderSource::FileNames => "the unix timestamps in the file names",
            OrderSource::TimeFlag => "the --time values",
            OrderSource::ModificationTimes => "file modification times (no timestamp in the names)",
        }
    }
}

/// The unix timestamp (10 digits, 2001-2286) and pid in a dump's file name:
/// `heap-1479820044.dump`, `heap-<pid>-<unixtime>-<seq>.dump`.
pub fn parse_file_name(path: &Path) -> (Option<i64>, Option<u32>) {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let runs: Vec<&str> = name
        .split(|c: char| !c.is_ascii_digit())
        .filter(|r| !r.is_empty())
        .collect();
    let ts_at = runs
        .iter()
        .position(|r| r.len() == 10 && r.starts_with('1') || r.len() == 10 && r.starts_with('2'));
    let time = ts_at.and_then(|i| runs[i].parse::<i64>().ok());
    let pid = match ts_at {
        Some(i) if i > 0 => runs[i - 1].parse::<u32>().ok(),
        _ => None,
    };
    (time, pid)
}

/// Orders dumps (by file-name timestamps, else `times`, else modification
/// times) and splits them by process when the names carry pids.
pub fn order_dumps(
    paths: &[PathBuf],
    times: Option<&[i64]>,
) -> Result<(Vec<Vec<DumpFile>>, OrderSource), String> {
    if paths.is_empty() {
        return Err("no heap dumps to analyse".into());
    }
    let parsed: Vec<(Option<i64>, Option<u32>)> =
        paths.iter().map(|p| parse_file_name(p)).collect();
    let (files, source): (Vec<DumpFile>, OrderSource) = if parsed.iter().all(|(t, _)| t.is_some()) {
        let files = paths
            .iter()
            .zip(&parsed)
            .map(|(p, &(time, pid))| DumpFile {
                path: p.clone(),
                time,
                pid,
            })
            .collect();
        (files, OrderSource::FileNames)
    } else if let Some(times) = times {
        if times.len() != paths.len() {
            return Err(format!(
                "{} --time values for {} dumps: give one per dump, in the order of the dumps",
                times.len(),
                paths.len()
            ));
        }
        let files = paths
            .iter()
            .zip(times)
            .zip(&parsed)
            .map(|((p, &t), &(_, pid))| DumpFile {
                path: p.clone(),
                time: Some(t),
                pid,
            })
            .collect();
        (files, OrderSource::TimeFlag)
    } else {
        let mut files = Vec::new();
        for (p, &(_, pid)) in paths.iter().zip(&parsed) {
            let mtime = std::fs::metadata(p)
                .and_then(|m| m.modified())
                .map_err(|e| format!("{}: {e}", p.display()))?;
            let secs = mtime
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            files.push(DumpFile {
                path: p.clone(),
                time: Some(secs),
                pid,
            });
        }
        (files, OrderSource::ModificationTimes)
    };
    let mut by_pid: Vec<(Option<u32>, Vec<DumpFile>)> = Vec::new();
    for f in files {
        match by_pid.iter_mut().find(|(pid, _)| *pid == f.pid) {
            Some((_, v)) => v.push(f),
            None => by_pid.push((f.pid, vec![f])),
        }
    }
    let mut groups: Vec<Vec<DumpFile>> = by_pid.into_iter().map(|(_, v)| v).collect();
    for g in &mut groups {
        g.sort_by(|a, b| a.time.cmp(&b.time).then_with(|| a.path.cmp(&b.path)));
    }
    groups.sort_by_key(|g| g.first().and_then(|f| f.pid));
    Ok((groups, source))
}

/// A site: type, class and location, as displayed.
pub type SiteKey = (String, Option<String>, Option<String>);

/// What one dump contributes, besides its sites.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DumpTotals {
    pub objects: u64,
    pub bytes: u64,
    pub traced_objects: u64,
    pub has_shapes: bool,
    pub integer_flags: bool,
    pub max_generation: Option<u32>,
    /// The heapscope agent's objects: left out of `objects` and `bytes`
    /// unless included (then counted in them too).
    pub agent: AgentShare,
}

/// Folds dumps in, one at a time.
pub struct SeriesBuilder {
    include_tracer: bool,
    include_agent: bool,
    dumps: usize,
    totals: Vec<DumpTotals>,
    sites: FastMap<SiteKey, Vec<(u64, u64)>>,
    /// The first dump's identities, until the second dump is folded in.
    baseline: Option<IdentitySet>,
    /// The survivors so far, as the latest dump knows them, sorted.
    survivors: Option<Vec<ObjIdentity>>,
}

impl SeriesBuilder {
    pub fn new(include_tracer: bool, include_agent: bool) -> Self {
        SeriesBuilder {
            include_tracer,
            include_agent,
            dumps: 0,
            totals: Vec::new(),
            sites: FastMap::default(),
            baseline: None,
            survivors: None,
        }
    }

    pub fn dumps(&self) -> usize {
        self.dumps
    }

    fn counted(&self, heap: &Heap, id: ObjId) -> bool {
        (self.include_tracer || !heap.is_tracer(id)) && (self.include_agent || !heap.is_agent(id))
    }

    /// Folds in the next dump (in time order).
    pub fn add_dump(&mut self, heap: &Heap) {
        let by = [GroupKey::Type, GroupKey::Class, GroupKey::Location];
        let mut grouper = Grouper::new(heap);
        let mut local: FastMap<[u32; MAX_KEYS], (u64, u64)> = FastMap::default();
        let mut totals = DumpTotals {
            traced_objects: heap.facts.traced_objects,
            has_shapes: heap.facts.has_shapes,
            integer_flags: heap.facts.integer_flags,
            max_generation: heap.facts.max_generation,
            ..Default::default()
        };
        let identities = Identities::new(heap);
        let mut idents = Vec::with_capacity(heap.len());
        for id in heap.ids() {
            if heap.is_agent(id) && (self.include_tracer || !heap.is_tracer(id)) {
                totals.agent.add(heap.memsize(id));
            }
            if !self.counted(heap, id) {
                continue;
            }
            let m = heap.memsize(id);
            totals.objects += 1;
            totals.bytes = totals.bytes.saturating_add(m);
            let e = local.entry(grouper.raw_key(id, &by)).or_insert((0, 0));
            e.0 += 1;
            e.1 = e.1.saturating_add(m);
            idents.push(identities.of(id));
        }
        let n = self.dumps;
        for (raw, (count, bytes)) in local {
            let values = grouper.values(&by, &raw);
            let key = site_key(&values);
            let series = self.sites.entry(key).or_insert_with(|| vec![(0, 0); n]);
            series.push((count, bytes));
        }
        for series in self.sites.values_mut() {
            if series.len() == n {
                series.push((0, 0));
            }
        }
        match (n, self.survivors.take()) {
            (0, _) => self.baseline = Some(IdentitySet::from_identities(&idents)),
            (1, _) => {
                let base = self.baseline.take().expect("the first dump's identities");
                // Sorted first: the look-ups into the sorted baseline then
                // walk it in order, which keeps them in cache (3x faster on
                // millions of objects than in file order).
                idents.sort_unstable();
                idents.dedup();
                idents.retain(|&i| !base.had(i));
                self.survivors = Some(idents);
            }
            (_, Some(prev)) => self.survivors = Some(follow(&prev, idents)),
            (_, None) => unreachable!("survivors exist from the second dump on"),
        }
        self.totals.push(totals);
        self.dumps += 1;
    }
}

fn site_key(values: &[KeyValue]) -> SiteKey {
    let text = |v: &KeyValue| match v {
        KeyValue::Text(t) => t.clone(),
        KeyValue::Generation(g) => g.map(|g| g.to_string()),
    };
    (
        text(&values[0]).unwrap_or_default(),
        text(&values[1]),
        text(&values[2]),
    )
}

/// The survivors `prev` (identities in the previous dump's form) that the
/// next dump (`next`, all its objects) still has, in the next dump's form: an
/// object with an object_id is found by it (it may have moved), one without
/// by its address identity (it may have got an object_id since).
fn follow(prev: &[ObjIdentity], next: Vec<ObjIdentity>) -> Vec<ObjIdentity> {
    let mut by_address = next;
    by_address.sort_unstable_by_key(|i| i.address);
    let mut by_object_id: Vec<(std::num::NonZeroU64, ObjIdentity)> = by_address
        .iter()
        .filter_map(|i| i.object_id.map(|o| (o, *i)))
        .collect();
    by_object_id.sort_unstable_by_key(|p| p.0);
    let mut out = Vec::new();
    for e in prev {
        match e.object_id {
            Some(o) => {
                if let Ok(k) = by_object_id.binary_search_by_key(&o, |p| p.0) {
                    out.push(by_object_id[k].1);
                }
            }
            None => {
                let from = by_address.partition_point(|i| i.address < e.address);
                out.extend(
                    by_address[from..]
                        .iter()
                        .take_while(|i| i.address == e.address),
                );
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// One site's story across the dumps.
#[derive(Debug, Clone)]
pub struct Site {
    pub key: SiteKey,
    pub counts: Vec<u64>,
    pub bytes: Vec<u64>,
    pub trend: Trend,
    /// Theil-Sen growth of the count and bytes per dump.
    pub growth_per_dump: f64,
    pub bytes_per_dump: f64,
    pub bytes_per_hour: Option<f64>,
    /// Objects of this site in the last dump that were in none of the first
    /// dump and in all the later ones.
    pub survivors: u64,
    pub survivor_bytes: u64,
    pub path: Option<LabeledPath>,
    /// The container holding this site's survivor on `path` (an index into
    /// [`LeakReport::containers`]), when the site has a path.
    pub container: Option<usize>,
    /// The rest of `path`, from the container down to the survivor.
    pub from_container: Option<LabeledPath>,
}

/// Where leaking sites accumulate: the object closest to a survivor on its
/// path from a root that is not itself new (absent from the first dump or
/// dead since), such as an app's log Array whose entries of several kinds
/// pile up. Sites that share one are one finding.
#[derive(Debug, Clone)]
pub struct Container {
    pub object: ObjectRef,
    /// From a root to the container.
    pub path: LabeledPath,
    /// The sites it holds (indexes into [`LeakReport::leaks`]), best ranked first.
    pub sites: Vec<usize>,
}

#[derive(Debug, Clone, Copy)]
pub struct LeakOptions {
    /// Sites growing by fewer objects per dump are not leaks.
    pub min_growth: f64,
    /// How many leak suspects get a path from a root.
    pub paths: usize,
    /// Steps kept at each end of a long path (`None`: all).
    pub path_ends: Option<usize>,
}

/// The result for one process.
#[derive(Debug, Clone)]
pub struct LeakReport {
    pub times: Vec<Option<i64>>,
    pub totals: Vec<DumpTotals>,
    pub total_trend: Trend,
    /// Ranked: most evidence first.
    pub leaks: Vec<Site>,
    /// The containers of the leaks that have a path, in the order of their
    /// best-ranked site.
    pub containers: Vec<Container>,
    /// Sites that grew, then levelled off.
    pub caches: Vec<Site>,
    pub survivors: u64,
    pub survivor_bytes: u64,
    /// The last dump's heapscope agent objects, and whether they were counted.
    pub agent: AgentShare,
    pub agent_included: bool,
    /// Why the result may mislead.
    pub warnings: Vec<String>,
}

impl LeakReport {
    /// Whether the series is long enough for any verdict (see [`MIN_DUMPS`]).
    pub fn can_judge(&self) -> bool {
        self.totals.len() >= MIN_DUMPS
    }

    /// The verdict on the whole process: `leak`, `no leak` or `cannot judge`.
    pub fn verdict(&self) -> &'static str {
        if !self.can_judge() {
            "cannot judge"
        } else if self.leaks.iter().any(|s| s.trend.verdict == Verdict::Leak) {
            "leak"
        } else {
            "no leak"
        }
    }
}

impl SeriesBuilder {
    /// Classifies every site and ranks the leaks; `last` is the last dump,
    /// read with its references, for paths from roots to survivors.
    pub fn finish(self, last: &Heap, times: &[Option<i64>], opts: &LeakOptions) -> LeakReport {
        self.finish_with(last, None, times, opts)
    }

    /// [`SeriesBuilder::finish`] with the last dump's graph already built
    /// (it must leave out the tracer and the agent as this builder does).
    pub fn finish_with(
        self,
        last: &Heap,
        graph: Option<&Graph<'_>>,
        times: &[Option<i64>],
        opts: &LeakOptions,
    ) -> LeakReport {
        let secs: Option<Vec<f64>> = times.iter().map(|t| t.map(|t| t as f64)).collect();
        let secs = secs.as_deref();
        let mut survivors: Vec<u64> = self
            .survivors
            .unwrap_or_default()
            .iter()
            .map(ObjIdentity::key)
            .collect();
        survivors.sort_unstable();
        // Survivors in the last dump, by site.
        let by = [GroupKey::Type, GroupKey::Class, GroupKey::Location];
        let mut grouper = Grouper::new(last);
        let identities = Identities::new(last);
        let mut survivor_sites: FastMap<[u32; MAX_KEYS], (u64, u64, ObjId)> = FastMap::default();
        let (mut all_survivors, mut all_bytes) = (0u64, 0u64);
        for id in last.ids() {
            if (!self.include_tracer && last.is_tracer(id))
                || (!self.include_agent && last.is_agent(id))
            {
                continue;
            }
            if survivors.binary_search(&identities.of(id).key()).is_ok() {
                let m = last.memsize(id);
                let e = survivor_sites
                    .entry(grouper.raw_key(id, &by))
                    .or_insert((0, 0, id));
                e.0 += 1;
                e.1 = e.1.saturating_add(m);
                all_survivors += 1;
                all_bytes = all_bytes.saturating_add(m);
            }
        }
        let mut survivor_by_site: FastMap<SiteKey, (u64, u64, ObjId)> = FastMap::default();
        for (raw, v) in survivor_sites {
            survivor_by_site.insert(site_key(&grouper.values(&by, &raw)), v);
        }

        let mut leaks = Vec::new();
        let mut caches = Vec::new();
        let mut representative = FastMap::default();
        for (key, series) in self.sites {
            let counts: Vec<u64> = series.iter().map(|s| s.0).collect();
            let bytes: Vec<u64> = series.iter().map(|s| s.1).collect();
            let values: Vec<f64> = counts.iter().map(|&c| c as f64).collect();
            let trend = classify(secs, &values);
            let byte_values: Vec<f64> = bytes.iter().map(|&b| b as f64).collect();
            let byte_trend = classify(secs, &byte_values);
            let (surv, surv_bytes, rep) = survivor_by_site.get(&key).copied().unwrap_or((0, 0, 0));
            let site = Site {
                growth_per_dump: trend.slope_per_dump,
                bytes_per_dump: byte_trend.slope_per_dump,
                bytes_per_hour: byte_trend.slope_per_hour,
                key: key.clone(),
                counts,
                bytes,
                trend,
                survivors: surv,
                survivor_bytes: surv_bytes,
                path: None,
                container: None,
                from_container: None,
            };
            match site.trend.verdict {
                // Objects that do not survive from dump to dump are not piling up.
                Verdict::Leak if site.growth_per_dump >= opts.min_growth && surv > 0 => {
                    representative.insert(key, rep);
                    leaks.push(site)
                }
                // A cache worth listing holds a few objects at least.
                Verdict::Plateau
                    if site.trend.early_slope >= opts.min_growth
                        && site.counts.last().is_some_and(|&c| c >= MIN_CACHE_OBJECTS) =>
                {
                    caches.push(site)
                }
                _ => {}
            }
        }
        // Most evidence first: bytes added per dump, weighted by how steadily.
        let score = |s: &Site| s.bytes_per_dump.max(0.0) * (0.5 + 0.5 * s.trend.monotonic);
        leaks.sort_by(|a, b| {
            score(b)
                .total_cmp(&score(a))
                .then(b.survivor_bytes.cmp(&a.survivor_bytes))
                .then_with(|| a.key.cmp(&b.key))
        });
        caches.sort_by(|a, b| {
            b.bytes
                .last()
                .cmp(&a.bytes.last())
                .then_with(|| a.key.cmp(&b.key))
        });

        let mut containers: Vec<Container> = Vec::new();
        if opts.paths > 0 && !leaks.is_empty() && last.references_loaded {
            let owned;
            let graph = match graph {
                Some(g) => g,
                None => {
                    owned = Graph::new(
                        last,
                        heapscope_graph::GraphOptions {
                            include_tracer: self.include_tracer,
                            include_agent: self.include_agent,
                        },
                    );
                    &owned
                }
            };
            let labeler = Labeler::new(graph);
            let facts = FastMap::default();
            let is_survivor = |id: ObjId| survivors.binary_search(&identities.of(id).key()).is_ok();
            let mut by_container: FastMap<ObjId, usize> = FastMap::default();
            for (i, site) in leaks.iter_mut().enumerate().take(opts.paths) {
                let Some(&id) = representative.get(&site.key) else {
                    continue;
                };
                let Some(p) = shortest_paths(graph, id, 1).into_iter().next() else {
                    continue;
                };
                site.path = Some(label_path(&labeler, &p, &facts, opts.path_ends));
                // The nearest object above the survivor that is not new.
                let at = p.nodes.iter().rposition(|&x| !is_survivor(x)).unwrap_or(0);
                let holder = p.nodes[at];
                let ci = *by_container.entry(holder).or_insert_with(|| {
                    let upto = RootPath {
                        categories: p.categories.clone(),
                        nodes: p.nodes[..=at].to_vec(),
                    };
                    containers.push(Container {
                        object: object_ref(last, holder),
                        path: label_path(&labeler, &upto, &facts, opts.path_ends),
                        sites: Vec::new(),
                    });
                    containers.len() - 1
                });
                containers[ci].sites.push(i);
                site.container = Some(ci);
                let below = RootPath {
                    categories: Vec::new(),
                    nodes: p.nodes[at..].to_vec(),
                };
                site.from_container = Some(label_path(&labeler, &below, &facts, opts.path_ends));
            }
        }

        let total_values: Vec<f64> = self.totals.iter().map(|t| t.bytes as f64).collect();
        let mut warnings = Vec::new();
        if self.totals.iter().any(|t| t.traced_objects == 0) {
            warnings.push(
                "some dumps have no allocation tracing: survivors are matched by address and type \
                 only (or by object_id, for objects whose Ruby 4.0+ record has one), and sites have \
                 no location; start tracing early for a reliable report"
                    .to_string(),
            );
        }
        let first = &self.totals[0];
        if self
            .totals
            .iter()
            .any(|t| t.has_shapes != first.has_shapes || t.integer_flags != first.integer_flags)
        {
            warnings
                .push("the dumps come from different Ruby versions (their formats differ)".into());
        }
        if self
            .totals
            .iter()
            .any(|t| (t.traced_objects == 0) != (first.traced_objects == 0))
        {
            warnings.push("allocation tracing differs between the dumps".into());
        }
        if self
            .totals
            .windows(2)
            .any(|w| match (w[0].max_generation, w[1].max_generation) {
                (Some(a), Some(b)) => b < a,
                _ => false,
            })
        {
            warnings.push(
                "a dump's newest generation is older than the one before it: are these dumps from one process, in order?"
                    .into(),
            );
        }
        // Fewer than MIN_DUMPS is not a warning but the verdict (`can_judge`).
        LeakReport {
            times: times.to_vec(),
            agent: self.totals.last().map(|t| t.agent).unwrap_or_default(),
            agent_included: self.include_agent,
            total_trend: classify(secs, &total_values),
            totals: self.totals,
            leaks,
            containers,
            caches,
            survivors: all_survivors,
            survivor_bytes: all_bytes,
            warnings,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_give_time_and_pid() {
        let p = |s: &str| parse_file_name(Path::new(s));
        assert_eq!(p("heap-1479820044.dump"), (Some(1479820044), None));
        assert_eq!(
            p("/tmp/heap-4242-1700000600-3.dump"),
            (Some(1700000600), Some(4242))
        );
        assert_eq!(p("heap.dump"), (None, None));
        assert_eq!(p("heap-12.dump"), (None, None));
    }

    #[test]
    fn orders_by_name_timestamps_and_splits_processes() {
        let paths: Vec<PathBuf> = [
            "heap-2-1700000600-2.dump",
            "heap-1-1700000000-1.dump",
            "heap-1-1700000600-2.dump",
            "heap-2-1700000000-1.dump",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        let (groups, source) = order_dumps(&paths, None).unwrap();
        assert_eq!(source, OrderSource::FileNames);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0][0].path, PathBuf::from("heap-1-1700000000-1.dump"));
        assert_eq!(groups[0][1].path, PathBuf::from("heap-1-1700000600-2.dump"));
        assert_eq!(groups[1][0].pid, Some(2));
    }

    #[test]
    fn time_flag_needs_one_value_per_dump() {
        let paths = vec![PathBuf::from("a.dump"), PathBuf::from("b.dump")];
        assert!(order_dumps(&paths, Some(&[1])).is_err());
        let (groups, source) = order_dumps(&paths, Some(&[20, 10])).unwrap();
        assert_eq!(source, OrderSource::TimeFlag);
        assert_eq!(groups[0][0].path, PathBuf::from("b.dump"));
    }

    fn ident(address: u64, object_id: Option<u64>) -> ObjIdentity {
        ObjIdentity {
            address,
            object_id: object_id.and_then(std::num::NonZeroU64::new),
        }
    }

    #[test]
    fn survivors_follow_object_ids_and_addresses() {
        let prev = vec![
            ident(1, Some(100)), // moves to address 9
            ident(2, Some(200)), // dies; a new object takes address 2
            ident(3, None),      // gets object_id 300
            ident(4, None),      // dies
            ident(5, None),      // stays as it was
        ];
        let next = vec![
            ident(9, Some(100)),
            ident(2, Some(201)),
            ident(3, Some(300)),
            ident(5, None),
            ident(6, None),
        ];
        let mut want = vec![ident(9, Some(100)), ident(3, Some(300)), ident(5, None)];
        want.sort_unstable();
        assert_eq!(follow(&prev, next), want);
    }
}
