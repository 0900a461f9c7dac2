//! Saving a [`SeriesBuilder`] between imports: the web UI's store folds each
//! new dump of a process into the saved state instead of re-reading the
//! earlier dumps. A compact little-endian encoding of its own (a baseline of
//! millions of identities is 8 bytes each), versioned by a leading tag.

use heapscope_heap::{AgentShare, FastMap};

use super::{DumpTotals, SeriesBuilder, SiteKey};
use crate::diff::{IdentitySet, ObjIdentity};

const TAG: &[u8; 8] = b"HSSERIE1";

struct Writer(Vec<u8>);

impl Writer {
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bool(&mut self, v: bool) {
        self.0.push(v as u8);
    }
    fn str(&mut self, s: &str) {
        self.u64(s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
    }
    fn opt_str(&mut self, s: &Option<String>) {
        self.bool(s.is_some());
        if let Some(s) = s {
            self.str(s);
        }
    }
    fn u64s(&mut self, v: &[u64]) {
        self.u64(v.len() as u64);
        self.0.reserve(v.len() * 8);
        for &x in v {
            self.u64(x);
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn len(&mut self, unit: usize) -> Option<usize> {
        let n = usize::try_from(self.u64()?).ok()?;
        // A length longer than what is left is corrupt, not a reason to allocate.
        (n.checked_mul(unit)? <= self.0.len()).then_some(n)
    }
    fn bool(&mut self) -> Option<bool> {
        Some(self.take(1)?[0] != 0)
    }
    fn str(&mut self) -> Option<String> {
        let n = self.len(1)?;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
    fn opt_str(&mut self) -> Option<Option<String>> {
        Some(if self.bool()? {
            Some(self.str()?)
        } else {
            None
        })
    }
    fn u64s(&mut self) -> Option<Vec<u64>> {
        let n = self.len(8)?;
        (0..n).map(|_| self.u64()).collect()
    }
}

fn write_identity(w: &mut Writer, i: &ObjIdentity) {
    w.u64(i.address);
    w.u64(i.object_id.map_or(0, |o| o.get()));
}

fn read_identity(r: &mut Reader<'_>) -> Option<ObjIdentity> {
    Some(ObjIdentity {
        address: r.u64()?,
        object_id: std::num::NonZeroU64::new(r.u64()?),
    })
}

impl SeriesBuilder {
    /// The builder's state, for [`SeriesBuilder::restore`].
    pub fn save(&self) -> Vec<u8> {
        let mut w = Writer(Vec::new());
        w.0.extend_from_slice(TAG);
        w.bool(self.include_tracer);
        w.bool(self.include_agent);
        w.u64(self.dumps as u64);
        w.u64(self.totals.len() as u64);
        for t in &self.totals {
            w.u64(t.objects);
            w.u64(t.bytes);
            w.u64(t.traced_objects);
            w.bool(t.has_shapes);
            w.bool(t.integer_flags);
            w.u64(t.max_generation.map_or(0, |g| g as u64 + 1));
            w.u64(t.agent.objects);
            w.u64(t.agent.bytes);
        }
        // Sites in a fixed order, so that equal states save equal bytes.
        let mut sites: Vec<(&SiteKey, &Vec<(u64, u64)>)> = self.sites.iter().collect();
        sites.sort_unstable_by(|a, b| a.0.cmp(b.0));
        w.u64(sites.len() as u64);
        for ((t, class, loc), series) in sites {
            w.str(t);
            w.opt_str(class);
            w.opt_str(loc);
            w.u64(series.len() as u64);
            for &(c, b) in series {
                w.u64(c);
                w.u64(b);
            }
        }
        w.bool(self.baseline.is_some());
        if let Some(base) = &self.baseline {
            w.u64(base.objects);
            for col in base.columns() {
                w.u64s(col);
            }
        }
        w.bool(self.survivors.is_some());
        if let Some(s) = &self.survivors {
            w.u64(s.len() as u64);
            for i in s {
                write_identity(&mut w, i);
            }
        }
        w.0
    }

    /// A builder from [`SeriesBuilder::save`]'s bytes; `None` when they are
    /// not such a state (another version, cut short, corrupt).
    pub fn restore(bytes: &[u8]) -> Option<SeriesBuilder> {
        let mut r = Reader(bytes.strip_prefix(TAG.as_slice())?);
        let include_tracer = r.bool()?;
        let include_agent = r.bool()?;
        let dumps = usize::try_from(r.u64()?).ok()?;
        let n = r.len(8 * 7 + 2)?;
        let mut totals = Vec::with_capacity(n);
        for _ in 0..n {
            totals.push(DumpTotals {
                objects: r.u64()?,
                bytes: r.u64()?,
                traced_objects: r.u64()?,
                has_shapes: r.bool()?,
                integer_flags: r.bool()?,
                max_generation: match r.u64()? {
                    0 => None,
                    g => Some(u32::try_from(g - 1).ok()?),
                },
                agent: AgentShare {
                    objects: r.u64()?,
                    bytes: r.u64()?,
                },
            });
        }
        let n = r.len(8)?;
        let mut sites = FastMap::default();
        for _ in 0..n {
            let key = (r.str()?, r.opt_str()?, r.opt_str()?);
            let len = r.len(16)?;
            let series = (0..len)
                .map(|_| Some((r.u64()?, r.u64()?)))
                .collect::<Option<Vec<_>>>()?;
            if series.len() != dumps {
                return None;
            }
            sites.insert(key, series);
        }
        let baseline = if r.bool()? {
            let objects = r.u64()?;
            Some(IdentitySet::from_columns(
                [r.u64s()?, r.u64s()?, r.u64s()?, r.u64s()?],
                objects,
            ))
        } else {
            None
        };
        let survivors = if r.bool()? {
            let n = r.len(16)?;
            Some(
                (0..n)
                    .map(|_| read_identity(&mut r))
                    .collect::<Option<Vec<_>>>()?,
            )
        } else {
            None
        };
        // The same invariants add_dump keeps.
        let consistent = totals.len() == dumps
            && match dumps {
                0 => baseline.is_none() && survivors.is_none(),
                1 => baseline.is_some() && survivors.is_none(),
                _ => baseline.is_none() && survivors.is_some(),
            };
        (consistent && r.0.is_empty()).then_some(SeriesBuilder {
            include_tracer,
            include_agent,
            dumps,
            totals,
            sites,
            baseline,
            survivors,
        })
    }

    /// Whether this builder counts the tracer's and the agent's objects.
    pub fn includes(&self) -> (bool, bool) {
        (self.include_tracer, self.include_agent)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{LeakOptions, SeriesBuilder};
    use crate::paths::tests::heap_of;

    /// Dump `n` of a series: a root Array holding `n` leaked strings, plus a
    /// string that is new each time.
    fn dump(n: usize) -> String {
        let mut s = String::new();
        let refs: Vec<String> = (0..n)
            .map(|i| format!("\"0x{:x}\"", 0x2000 + i * 0x28))
            .collect();
        s += "{\"type\":\"ROOT\", \"root\":\"global_tbl\", \"references\":[\"0x1000\"]}\n";
        s += &format!(
            "{{\"address\":\"0x1000\", \"type\":\"ARRAY\", \"length\":{n}, \"references\":[{}], \"file\":\"app.rb\", \"line\":3, \"memsize\":40}}\n",
            refs.join(", ")
        );
        for i in 0..n {
            s += &format!(
                "{{\"address\":\"0x{:x}\", \"type\":\"STRING\", \"bytesize\":3, \"value\":\"abc\", \"file\":\"app.rb\", \"line\":7, \"memsize\":40}}\n",
                0x2000 + i * 0x28
            );
        }
        s += &format!(
            "{{\"address\":\"0x{:x}\", \"type\":\"STRING\", \"bytesize\":3, \"value\":\"tmp\", \"file\":\"app.rb\", \"line\":9, \"memsize\":40}}\n",
            0x9000 + n * 0x28
        );
        s
    }

    #[test]
    fn a_saved_and_restored_builder_folds_on_as_the_original() {
        let heaps: Vec<_> = (1..=5).map(|n| heap_of(&dump(n * 2))).collect();
        let opts = LeakOptions {
            min_growth: 0.5,
            paths: 5,
            path_ends: None,
        };
        let times: Vec<Option<i64>> = (0..5).map(|i| Some(1_700_000_000 + i * 60)).collect();
        let mut plain = SeriesBuilder::new(false, false);
        let mut saved = SeriesBuilder::new(false, false).save();
        for h in &heaps {
            plain.add_dump(h);
            let mut b = SeriesBuilder::restore(&saved).expect("restores");
            b.add_dump(h);
            saved = b.save();
            assert_eq!(saved, plain.save(), "same state after each dump");
        }
        let a = plain.finish(&heaps[4], &times, &opts);
        let b = SeriesBuilder::restore(&saved)
            .unwrap()
            .finish(&heaps[4], &times, &opts);
        assert_eq!(format!("{:?}", a.leaks), format!("{:?}", b.leaks));
        assert_eq!(a.survivors, b.survivors);
        assert_eq!(a.verdict(), "leak");
    }

    #[test]
    fn corrupt_states_are_refused() {
        let mut b = SeriesBuilder::new(false, false);
        b.add_dump(&heap_of(&dump(2)));
        let bytes = b.save();
        for cut in [0, 7, 8, 20, bytes.len() - 1] {
            assert!(
                SeriesBuilder::restore(&bytes[..cut]).is_none(),
                "cut at {cut}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(SeriesBuilder::restore(&longer).is_none());
        let mut huge = bytes.clone();
        huge[10..18].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(SeriesBuilder::restore(&huge).is_none());
        assert!(SeriesBuilder::restore(&bytes).is_some());
    }
}
