//! Does a process's memory keep growing, or does it level off? A verdict on
//! one [`MemSeries`] (`heapscope trend`, `heapscope bench`).
//!
//! # The low boundary
//!
//! Raw RSS or live-object counts of a Ruby process are a sawtooth: garbage
//! piles up between collections and disappears at each GC. Its peaks say
//! little; what a leak raises is the **low boundary**, the level memory
//! returns to. The samples that carry the metric are cut into
//! equal-width time buckets, and each bucket contributes one point: its
//! minimum (at the time of that sample). When the samples carry GC counts
//! (`minor_gc_count`/`major_gc_count`), only samples taken after a GC ran
//! (a count went up since the previous sample) are candidates, when the
//! bucket has any: the **minima after GC**. There are about one bucket per
//! [`SAMPLES_PER_BUCKET`] (5) samples, but at most [`MAX_BOUNDARY_POINTS`]
//! (50): a bucket must be wide enough to hold a trough of the sawtooth (50
//! buckets of a one-hour recording are 72 s wide), and few points keep the
//! O(m²) statistics (Theil-Sen, Mann-Kendall) cheap on hours of samples at
//! 1 Hz. Series of fewer than
//! [`MIN_SAMPLES_TO_BUCKET`] (20) samples are used as they are ("raw
//! samples").
//!
//! # Statistics
//!
//! On the boundary points `(t, b)` (m of them, spanning `T` seconds):
//! - `slope`: the Theil-Sen slope of `b` against `t` (`trend::theil_sen`);
//! - `p`: the one-sided p-value of the Mann-Kendall test for an upward
//!   trend of `b` (`trend::mann_kendall`);
//! - `level`: the median of the late half of `b` (the points from `m/2`);
//! - `rise = slope * T`, and `late_slope`, the Theil-Sen slope of the late
//!   half alone.
//!
//! # Verdicts, tried in order
//!
//! 1. **not enough data**: fewer than [`MIN_SAMPLES`] (8) samples with the
//!    metric, fewer than [`MIN_BOUNDARY_POINTS`] (5) boundary points, or all
//!    at one time.
//! 2. **growing**: all of
//!    - the boundary trends up: `p <` [`SIGNIFICANCE`] (0.01);
//!    - the growth matters: `rise >=` [`MIN_RELATIVE_RISE`] (5%) of `level`;
//!    - it has not stopped: `late_slope >=` [`LATE_RATIO`] (30%) of `slope`.
//! 3. **levelled off**: the boundary rose, then stopped: with `base` the
//!    minimum of the early half, `level - base >=` [`MIN_RELATIVE_RISE`] (5%)
//!    of `level`, and the late half's projected rise `late_slope * T_late`
//!    is at most [`LATE_RATIO`] (30%) of `level - base` (a fill-then-plateau
//!    cache, or warm-up followed by steady state).
//! 4. **not enough data** also when the boundary rose by at least
//!    [`MIN_RELATIVE_RISE`] of `level` but neither test above holds (too few
//!    or too noisy points to tell a leak from a plateau).
//! 5. **flat**: anything else (including memory that shrinks).
//!
//! # Confidence (0..1)
//!
//! Scaled by the amount of data, `d = min(1, m / ` [`FULL_CONFIDENCE_POINTS`]
//! `)` (20 boundary points):
//! - growing: `d * (1 - p)`;
//! - levelled off: `d * (1 - late_rise / (LATE_RATIO * (level - base)))`,
//!   i.e. how far the late half's growth is below the limit;
//! - flat: `d * (1 - max(0, rise) / (MIN_RELATIVE_RISE * level))`: how far
//!   the growth is below the threshold;
//! - not enough data: 0.
//!
//! Slopes are per hour of clock time, or per sample when the log has no
//! clock (see [`memory_trend_by_sample`]), and per 1,000 requests when at
//! least [`MIN_BOUNDARY_POINTS`] boundary points know the request count and
//! it grew (Theil-Sen of `b` against the cumulative count).

use crate::memseries::{MemSample, MemSeries};
use crate::trend::{mann_kendall, median, theil_sen, SECONDS_PER_HOUR};

/// Fewer samples than this give "not enough data".
pub const MIN_SAMPLES: usize = 8;
/// Fewer boundary points than this give "not enough data".
pub const MIN_BOUNDARY_POINTS: usize = 5;
/// Series shorter than this are not bucketed.
pub const MIN_SAMPLES_TO_BUCKET: usize = 20;
/// About this many samples per bucket.
pub const SAMPLES_PER_BUCKET: usize = 5;
/// Below this many samples, buckets hold [`SHORT_SAMPLES_PER_BUCKET`] (3):
/// five points cannot make a Mann-Kendall test significant at 1%, so a short
/// run (a 4-second `bench`) needs more of them.
pub const SHORT_SERIES: usize = 100;
pub const SHORT_SAMPLES_PER_BUCKET: usize = 3;
/// At most this many buckets (boundary points).
pub const MAX_BOUNDARY_POINTS: usize = 50;
/// One-sided significance of the Mann-Kendall test for growth.
pub const SIGNIFICANCE: f64 = 0.01;
/// Least growth over the recording, relative to the level, that counts.
pub const MIN_RELATIVE_RISE: f64 = 0.05;
/// A growing series' late-half slope is at least this share of its slope;
/// a levelled-off series' late half rises by at most this share of its rise.
pub const LATE_RATIO: f64 = 0.3;
/// Boundary points for full confidence.
pub const FULL_CONFIDENCE_POINTS: usize = 20;

/// What is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    Rss,
    Pss,
    Uss,
    LiveObjects,
}

impl Metric {
    /// `rss`, `pss`, `uss`, `live-objects`.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Rss => "rss",
            Metric::Pss => "pss",
            Metric::Uss => "uss",
            Metric::LiveObjects => "live-objects",
        }
    }

    /// Whether values are bytes (else object counts).
    pub fn is_bytes(self) -> bool {
        self != Metric::LiveObjects
    }

    /// The metric's value in one sample.
    pub fn of(self, s: &MemSample) -> Option<u64> {
        match self {
            Metric::Rss => s.rss_bytes,
            Metric::Pss => s.pss_bytes,
            Metric::Uss => s.uss_bytes,
            Metric::LiveObjects => s.live_objects,
        }
    }
}

/// The verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemVerdict {
    Growing,
    LevelledOff,
    Flat,
    NotEnoughData,
}

impl MemVerdict {
    /// "growing", "levelled off", "flat", "not enough data".
    pub fn name(self) -> &'static str {
        match self {
            MemVerdict::Growing => "growing",
            MemVerdict::LevelledOff => "levelled off",
            MemVerdict::Flat => "flat",
            MemVerdict::NotEnoughData => "not enough data",
        }
    }
}

/// The verdict on one series and the numbers behind it. Values are in the
/// metric's units (bytes or objects).
#[derive(Debug, Clone, PartialEq)]
pub struct MemTrend {
    pub verdict: MemVerdict,
    /// Growth of the low boundary per hour (`None` without a clock or with
    /// too little data).
    pub slope_per_hour: Option<f64>,
    /// Growth per sample, for logs without a clock (derailed).
    pub slope_per_sample: Option<f64>,
    /// Growth per 1,000 requests, when request counts are known.
    pub slope_per_1000_requests: Option<f64>,
    pub confidence: f64,
    /// Samples with the metric.
    pub samples: usize,
    /// Points of the low boundary.
    pub boundary_points: usize,
    /// Time from the first to the last sample (0 without a clock).
    pub span_seconds: f64,
    /// Whether sample times are clock times (false for derailed output,
    /// whose samples are only numbered).
    pub has_clock: bool,
    pub first: f64,
    pub last: f64,
    pub peak: f64,
    /// Level of the low boundary (median of its late half).
    pub level: f64,
    /// One-sided Mann-Kendall p-value for growth of the boundary.
    pub p_value: f64,
    /// How the boundary was taken: "bucket minima", "minima after GC" or
    /// "raw samples".
    pub boundary: &'static str,
}

/// Where a process's memory grows, judged from its RSS and its Ruby heap
/// (live objects) together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GrowthSite {
    /// Live objects grow (RSS with them, or not yet): objects accumulate in
    /// the Ruby heap, which heap dumps show.
    RubyHeap,
    /// RSS grows while live objects stay flat or level off: memory outside
    /// the Ruby heap's slots (C extensions, malloc fragmentation, or a few
    /// objects whose malloc'd buffers grow).
    OutsideRubyHeap,
    /// Neither grows.
    Neither,
    /// One of the two has too little data to say.
    Unclear,
}

impl GrowthSite {
    /// `ruby_heap`, `outside_ruby_heap`, `neither`, `unclear` (JSON).
    pub fn name(self) -> &'static str {
        match self {
            GrowthSite::RubyHeap => "ruby_heap",
            GrowthSite::OutsideRubyHeap => "outside_ruby_heap",
            GrowthSite::Neither => "neither",
            GrowthSite::Unclear => "unclear",
        }
    }
}

/// The verdicts on a process's memory in bytes and on its live objects,
/// and what they say together.
#[derive(Debug, Clone, PartialEq)]
pub struct GrowthSplit {
    pub site: GrowthSite,
    /// The byte metric compared (RSS unless another was asked for).
    pub bytes_metric: Metric,
    pub bytes: MemTrend,
    pub live_objects: MemTrend,
}

/// Compares the growth of `bytes_metric` (a byte metric) with that of the
/// live objects in the same series. `None` unless at least [`MIN_SAMPLES`]
/// samples carry each: a log of RSS alone (or objects alone) cannot say.
///
/// - live objects growing: [`GrowthSite::RubyHeap`], whatever RSS does (Ruby
///   reuses free slots before RSS follows);
/// - RSS growing and live objects flat or levelled off:
///   [`GrowthSite::OutsideRubyHeap`];
/// - neither growing (and neither undecided): [`GrowthSite::Neither`];
/// - otherwise [`GrowthSite::Unclear`].
pub fn growth_split(series: &MemSeries, bytes_metric: Metric, clock: bool) -> Option<GrowthSplit> {
    let bytes_metric = if bytes_metric.is_bytes() {
        bytes_metric
    } else {
        Metric::Rss
    };
    let count = |m: Metric| series.samples.iter().filter(|s| m.of(s).is_some()).count();
    if count(bytes_metric) < MIN_SAMPLES || count(Metric::LiveObjects) < MIN_SAMPLES {
        return None;
    }
    let bytes = trend(series, bytes_metric, clock);
    let live_objects = trend(series, Metric::LiveObjects, clock);
    use MemVerdict::*;
    let site = match (bytes.verdict, live_objects.verdict) {
        (_, Growing) => GrowthSite::RubyHeap,
        (Growing, Flat | LevelledOff) => GrowthSite::OutsideRubyHeap,
        (Flat | LevelledOff, Flat | LevelledOff) => GrowthSite::Neither,
        _ => GrowthSite::Unclear,
    };
    Some(GrowthSplit {
        site,
        bytes_metric,
        bytes,
        live_objects,
    })
}

/// The trend of `metric` in a series whose times are clock seconds.
pub fn memory_trend(series: &MemSeries, metric: Metric) -> MemTrend {
    trend(series, metric, true)
}

/// The same for a series whose times are sample numbers (derailed output):
/// the slope is per sample, not per hour.
pub fn memory_trend_by_sample(series: &MemSeries, metric: Metric) -> MemTrend {
    trend(series, metric, false)
}

/// A point of the low boundary.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Point {
    time: f64,
    value: f64,
    requests: Option<u64>,
}

/// The low boundary of `(sample, value)` pairs in time order, and its name.
fn low_boundary(points: &[(&MemSample, f64)]) -> (Vec<Point>, &'static str) {
    let to_point = |(s, v): &(&MemSample, f64)| Point {
        time: s.time,
        value: *v,
        requests: s.requests,
    };
    let n = points.len();
    if n < MIN_SAMPLES_TO_BUCKET {
        return (points.iter().map(to_point).collect(), "raw samples");
    }
    let per_bucket = if n < SHORT_SERIES {
        SHORT_SAMPLES_PER_BUCKET
    } else {
        SAMPLES_PER_BUCKET
    };
    let buckets = (n / per_bucket).clamp(MIN_BOUNDARY_POINTS, MAX_BOUNDARY_POINTS);
    let t0 = points[0].0.time;
    let span = points[n - 1].0.time - t0;
    let gc_total = |s: &MemSample| match (s.minor_gc_count, s.major_gc_count) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
    };
    let with_gc = points.iter().all(|(s, _)| gc_total(s).is_some());
    // after_gc[i]: a GC ran between sample i-1 and sample i.
    let after_gc: Vec<bool> = (0..n)
        .map(|i| i > 0 && with_gc && gc_total(points[i].0) > gc_total(points[i - 1].0))
        .collect();
    let mut out = Vec::with_capacity(buckets);
    let mut used_gc = false;
    let mut start = 0;
    for b in 0..buckets {
        let end_time = t0 + span * (b + 1) as f64 / buckets as f64;
        let mut end = start;
        while end < n && (b + 1 == buckets || points[end].0.time < end_time) {
            end += 1;
        }
        if end > start {
            let range = start..end;
            let pick = |only_gc: bool| {
                range
                    .clone()
                    .filter(|&i| !only_gc || after_gc[i])
                    .min_by(|&a, &b| points[a].1.total_cmp(&points[b].1))
            };
            let best = match pick(true) {
                Some(i) => {
                    used_gc = true;
                    i
                }
                None => pick(false).expect("non-empty bucket"),
            };
            out.push(to_point(&points[best]));
        }
        start = end;
    }
    let name = if used_gc {
        "minima after GC"
    } else {
        "bucket minima"
    };
    (out, name)
}

fn trend(series: &MemSeries, metric: Metric, clock: bool) -> MemTrend {
    let mut points: Vec<(&MemSample, f64)> = series
        .samples
        .iter()
        .filter(|s| s.time.is_finite())
        .filter_map(|s| metric.of(s).map(|v| (s, v as f64)))
        .collect();
    points.sort_by(|a, b| a.0.time.total_cmp(&b.0.time));
    let n = points.len();
    let first = points.first().map_or(f64::NAN, |p| p.1);
    let last = points.last().map_or(f64::NAN, |p| p.1);
    let peak = points
        .iter()
        .map(|p| p.1)
        .reduce(f64::max)
        .unwrap_or(f64::NAN);
    let span = match (points.first(), points.last()) {
        (Some(a), Some(b)) => b.0.time - a.0.time,
        _ => 0.0,
    };
    let mut out = MemTrend {
        verdict: MemVerdict::NotEnoughData,
        slope_per_hour: None,
        slope_per_sample: None,
        slope_per_1000_requests: None,
        confidence: 0.0,
        samples: n,
        boundary_points: 0,
        span_seconds: if clock { span } else { 0.0 },
        has_clock: clock,
        first,
        last,
        peak,
        level: f64::NAN,
        p_value: 1.0,
        boundary: "raw samples",
    };
    if n < MIN_SAMPLES || span <= 0.0 {
        return out;
    }
    let (boundary, name) = low_boundary(&points);
    out.boundary = name;
    let m = boundary.len();
    out.boundary_points = m;
    if m < MIN_BOUNDARY_POINTS {
        return out;
    }
    let t: Vec<f64> = boundary.iter().map(|p| p.time).collect();
    let b: Vec<f64> = boundary.iter().map(|p| p.value).collect();
    let slope = theil_sen(&t, &b);
    let (_, z, p2) = mann_kendall(&b);
    let p = if z > 0.0 { p2 / 2.0 } else { 1.0 - p2 / 2.0 };
    let late = m / 2;
    let level = median(&b[late..]);
    let late_slope = theil_sen(&t[late..], &b[late..]);
    let late_span = t[m - 1] - t[late];
    let boundary_span = t[m - 1] - t[0];
    let rise = slope * boundary_span;
    let base = b[..m.div_ceil(2)]
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min);
    let climbed = level - base;
    let late_rise = late_slope * late_span;
    let scale = level.abs().max(f64::MIN_POSITIVE);
    let d = (m as f64 / FULL_CONFIDENCE_POINTS as f64).min(1.0);

    out.level = level;
    out.p_value = p;
    if clock {
        out.slope_per_hour = Some(slope * SECONDS_PER_HOUR);
    } else {
        out.slope_per_sample = Some(slope);
    }
    let with_requests: Vec<(f64, f64)> = boundary
        .iter()
        .filter_map(|p| p.requests.map(|r| (r as f64, p.value)))
        .collect();
    if with_requests.len() >= MIN_BOUNDARY_POINTS {
        let lo = with_requests
            .iter()
            .map(|p| p.0)
            .fold(f64::INFINITY, f64::min);
        let hi = with_requests
            .iter()
            .map(|p| p.0)
            .fold(f64::NEG_INFINITY, f64::max);
        if hi > lo {
            let (r, v): (Vec<f64>, Vec<f64>) = with_requests.into_iter().unzip();
            out.slope_per_1000_requests = Some(theil_sen(&r, &v) * 1000.0);
        }
    }

    let growing = z > 0.0
        && p < SIGNIFICANCE
        && rise >= MIN_RELATIVE_RISE * scale
        && late_slope >= LATE_RATIO * slope;
    let levelled = climbed >= MIN_RELATIVE_RISE * scale && late_rise <= LATE_RATIO * climbed;
    (out.verdict, out.confidence) = if growing {
        (MemVerdict::Growing, d * (1.0 - p))
    } else if levelled {
        let c = 1.0 - late_rise.max(0.0) / (LATE_RATIO * climbed);
        (MemVerdict::LevelledOff, d * c)
    } else if rise >= MIN_RELATIVE_RISE * scale {
        // It rose by more than "flat" allows, but not steadily enough to
        // call: too few or too noisy points. Say so rather than "flat".
        (MemVerdict::NotEnoughData, 0.0)
    } else {
        let c = 1.0 - rise.max(0.0) / (MIN_RELATIVE_RISE * scale);
        (MemVerdict::Flat, d * c)
    };
    out.confidence = out.confidence.clamp(0.0, 1.0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MB: f64 = 1024.0 * 1024.0;

    /// Deterministic noise in [0, 1).
    struct Lcg(u64);

    impl Lcg {
        fn unit(&mut self) -> f64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    fn series(
        times: impl IntoIterator<Item = f64>,
        mut rss: impl FnMut(usize, f64) -> f64,
    ) -> MemSeries {
        MemSeries {
            pid: Some(1),
            source: None,
            label: "pid 1".into(),
            samples: times
                .into_iter()
                .enumerate()
                .map(|(i, t)| MemSample {
                    time: t,
                    rss_bytes: Some(rss(i, t).max(0.0) as u64),
                    ..MemSample::default()
                })
                .collect(),
        }
    }

    fn every_second(n: usize) -> impl Iterator<Item = f64> {
        (0..n).map(|i| 1.7e9 + i as f64)
    }

    fn verdict(s: &MemSeries) -> MemVerdict {
        memory_trend(s, Metric::Rss).verdict
    }

    #[test]
    fn names() {
        assert_eq!(MemVerdict::Growing.name(), "growing");
        assert_eq!(MemVerdict::LevelledOff.name(), "levelled off");
        assert_eq!(MemVerdict::Flat.name(), "flat");
        assert_eq!(MemVerdict::NotEnoughData.name(), "not enough data");
    }

    #[test]
    fn growing_with_noise_and_outliers() {
        for seed in 0..20 {
            let mut rng = Lcg(seed);
            // 200 MB growing 20 MB/hour over two hours, ±5 MB noise, and
            // a spike (up or down) every 97 samples.
            let s = series((0..720).map(|i| 1.7e9 + 10.0 * i as f64), |i, t| {
                let base = 200.0 * MB + 20.0 * MB * (t - 1.7e9) / 3600.0;
                let noise = (rng.unit() - 0.5) * 10.0 * MB;
                let spike = match i % 97 {
                    13 => 500.0 * MB,
                    50 => -150.0 * MB,
                    _ => 0.0,
                };
                base + noise + spike
            });
            let t = memory_trend(&s, Metric::Rss);
            assert_eq!(t.verdict, MemVerdict::Growing, "seed {seed}: {t:?}");
            let per_hour = t.slope_per_hour.unwrap() / MB;
            assert!((per_hour - 20.0).abs() < 4.0, "{per_hour}");
            assert!(t.confidence > 0.9);
            assert_eq!(t.boundary, "bucket minima");
            assert!(t.boundary_points <= MAX_BOUNDARY_POINTS);
        }
    }

    #[test]
    fn sawtooth_with_a_flat_floor_is_flat() {
        // GC every 30 s: climbs 40 MB, drops back to 300 MB; peaks rise.
        let s = series(every_second(3600), |i, _| {
            let phase = (i % 30) as f64 / 30.0;
            300.0 * MB + phase * (40.0 + i as f64 / 100.0) * MB
        });
        let t = memory_trend(&s, Metric::Rss);
        assert_eq!(t.verdict, MemVerdict::Flat, "{t:?}");
        assert!(t.confidence > 0.5);
        // Raw peaks rise, but the boundary does not.
        assert!(t.peak > t.first + 60.0 * MB);
        assert!(t.slope_per_hour.unwrap().abs() < MB);
    }

    #[test]
    fn minima_after_gc() {
        // Live objects: +1000 per sample, a GC every 7 samples brings them
        // back to 10,000 (+50 per GC: slow growth of the floor, 0.5%/GC).
        let mut gcs = 0;
        let samples = (0..400)
            .map(|i| {
                if i % 7 == 0 {
                    gcs += 1;
                }
                MemSample {
                    time: i as f64,
                    live_objects: Some(10_000 + (i % 7) as u64 * 1000),
                    minor_gc_count: Some(gcs),
                    major_gc_count: Some(0),
                    ..MemSample::default()
                }
            })
            .collect();
        let s = MemSeries {
            pid: None,
            source: None,
            label: "x".into(),
            samples,
        };
        let t = memory_trend(&s, Metric::LiveObjects);
        assert_eq!(t.boundary, "minima after GC");
        assert_eq!(t.verdict, MemVerdict::Flat, "{t:?}");
        assert_eq!(t.level, 10_000.0);
    }

    #[test]
    fn fill_then_plateau_levels_off() {
        for seed in 0..10 {
            let mut rng = Lcg(seed);
            // Fills 100 MB in the first 10 minutes, then stays, over an hour.
            let s = series(every_second(3600), |i, _| {
                let fill = (i as f64 / 600.0).min(1.0) * 100.0 * MB;
                200.0 * MB + fill + rng.unit() * 8.0 * MB
            });
            let t = memory_trend(&s, Metric::Rss);
            assert_eq!(t.verdict, MemVerdict::LevelledOff, "seed {seed}: {t:?}");
            assert!(t.confidence > 0.5);
        }
    }

    #[test]
    fn flat_with_noise() {
        let mut rng = Lcg(7);
        let s = series(every_second(600), |_, _| 150.0 * MB + rng.unit() * 3.0 * MB);
        let t = memory_trend(&s, Metric::Rss);
        assert_eq!(t.verdict, MemVerdict::Flat, "{t:?}");
        // Shrinking memory is flat too.
        let s = series(every_second(600), |i, _| 300.0 * MB - i as f64 * 0.1 * MB);
        assert_eq!(verdict(&s), MemVerdict::Flat);
    }

    #[test]
    fn too_short() {
        let s = series(every_second(5), |i, _| (100 + i) as f64 * MB);
        let t = memory_trend(&s, Metric::Rss);
        assert_eq!(t.verdict, MemVerdict::NotEnoughData);
        assert_eq!(t.confidence, 0.0);
        assert_eq!(t.samples, 5);
        // All at one time.
        let s = series((0..50).map(|_| 5.0), |i, _| (100 + i) as f64 * MB);
        assert_eq!(verdict(&s), MemVerdict::NotEnoughData);
        // No sample has the metric.
        let s = series(every_second(50), |_, _| 1.0);
        assert_eq!(
            memory_trend(&s, Metric::Pss).verdict,
            MemVerdict::NotEnoughData
        );
        assert!(memory_trend(&s, Metric::Pss).first.is_nan());
    }

    #[test]
    fn short_raw_series_grow() {
        // Ten derailed samples, by sample number.
        let s = series((0..10).map(|i| i as f64), |i, _| (100 + 3 * i) as f64 * MB);
        let t = memory_trend_by_sample(&s, Metric::Rss);
        assert_eq!(t.verdict, MemVerdict::Growing);
        assert_eq!(t.boundary, "raw samples");
        assert_eq!(t.slope_per_hour, None);
        assert_eq!(t.slope_per_sample, Some(3.0 * MB));
    }

    #[test]
    fn per_thousand_requests() {
        let samples = (0..300)
            .map(|i| MemSample {
                time: i as f64,
                rss_bytes: Some(100_000_000 + 2_000 * 10 * i as u64),
                requests: Some(10 * i as u64),
                ..MemSample::default()
            })
            .collect();
        let s = MemSeries {
            pid: None,
            source: None,
            label: "x".into(),
            samples,
        };
        let t = memory_trend(&s, Metric::Rss);
        assert_eq!(t.verdict, MemVerdict::Growing);
        assert_eq!(t.slope_per_1000_requests, Some(2_000_000.0));
    }

    #[test]
    fn growth_split_tells_the_heap_from_the_rest() {
        let with = |rss: &dyn Fn(f64) -> f64, live: &dyn Fn(f64) -> f64| MemSeries {
            pid: Some(1),
            source: None,
            label: "pid 1".into(),
            samples: every_second(200)
                .map(|t| MemSample {
                    time: t,
                    rss_bytes: Some(rss(t - 1.7e9) as u64),
                    live_objects: Some(live(t - 1.7e9) as u64),
                    ..MemSample::default()
                })
                .collect(),
        };
        let rising_rss = |t: f64| 100.0 * MB + t * 0.5 * MB;
        let flat_rss = |_: f64| 100.0 * MB;
        let rising_live = |t: f64| 200_000.0 + t * 1_000.0;
        let flat_live = |t: f64| 200_000.0 + (t % 7.0) * 100.0;
        let site = |s: &MemSeries| growth_split(s, Metric::Rss, true).unwrap().site;
        assert_eq!(
            site(&with(&rising_rss, &flat_live)),
            GrowthSite::OutsideRubyHeap
        );
        assert_eq!(site(&with(&rising_rss, &rising_live)), GrowthSite::RubyHeap);
        assert_eq!(site(&with(&flat_rss, &rising_live)), GrowthSite::RubyHeap);
        assert_eq!(site(&with(&flat_rss, &flat_live)), GrowthSite::Neither);
        // The byte metric asked for is kept; live objects fall back to RSS.
        let s = with(&rising_rss, &flat_live);
        assert_eq!(
            growth_split(&s, Metric::LiveObjects, true)
                .unwrap()
                .bytes_metric,
            Metric::Rss
        );
        // RSS alone cannot say.
        let mut rss_only = s.clone();
        for x in &mut rss_only.samples {
            x.live_objects = None;
        }
        assert_eq!(growth_split(&rss_only, Metric::Rss, true), None);
    }

    #[test]
    fn long_series_are_bucketed() {
        // Ten hours at 1 Hz.
        let s = series(every_second(36_000), |i, _| 100.0 * MB + i as f64 * 1000.0);
        let start = std::time::Instant::now();
        let t = memory_trend(&s, Metric::Rss);
        assert_eq!(t.boundary_points, MAX_BOUNDARY_POINTS);
        assert_eq!(t.verdict, MemVerdict::Growing);
        assert!(start.elapsed().as_secs() < 10);
    }

    proptest! {
        #[test]
        fn never_panics(
            values in prop::collection::vec(prop::option::of(0u64..u64::MAX), 0..80),
            times in prop::collection::vec(-1e10..1e10f64, 80),
        ) {
            let samples = values
                .iter()
                .zip(&times)
                .map(|(v, t)| MemSample { time: *t, rss_bytes: *v, ..MemSample::default() })
                .collect();
            let s = MemSeries { pid: None, source: None, label: String::new(), samples };
            let t = memory_trend(&s, Metric::Rss);
            prop_assert!((0.0..=1.0).contains(&t.confidence));
        }

        #[test]
        fn constant_is_flat(v in 1u64..1 << 40, n in 8usize..200) {
            let s = series(every_second(n), |_, _| v as f64);
            prop_assert_eq!(verdict(&s), MemVerdict::Flat);
        }
    }
}
