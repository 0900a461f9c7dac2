//! Trend classification of one allocation site's time series across a
//! series of heap dumps (`heapscope leaks`).
//!
//! Each series holds one value per dump (an object count or a byte size),
//! optionally with the dump's time in seconds. [`classify`] sorts it into one
//! of four [`Verdict`]s using robust, rank-based statistics that tolerate
//! outliers and short series (about 5 to 50 points):
//!
//! - [`theil_sen`]: the median of all pairwise slopes. One wild point moves
//!   only a few of the `n(n-1)/2` slopes, so it barely moves the median.
//! - [`mann_kendall`]: the Mann-Kendall trend test (sign of every later-minus-
//!   earlier difference), with the tie-corrected variance, a continuity
//!   correction and a two-sided p-value from the normal approximation.
//! - The **floor** (low boundary): `floor[i] = min(values[i..])`, the running
//!   minimum taken *from the end*: the lowest value the site ever goes down to
//!   from dump `i` on. It never decreases. A leak keeps raising it (memory
//!   that is never given back); a sawtooth or a GC-driven oscillation leaves
//!   it flat, however high its peaks climb. (The running minimum from the
//!   start, `min(values[..=i])`, never increases and cannot show growth, so
//!   it is not used.) The Mann-Kendall test on the floor gives
//!   [`Trend::floor_z`] and [`Trend::floor_p`].
//!
//! # Rules
//!
//! The series is split into an early half `values[..ceil(n/2)]` and a late
//! half `values[n/2..]` (they share the middle point when `n` is odd); their
//! Theil-Sen slopes are [`Trend::early_slope`] and [`Trend::late_slope`].
//! Verdicts are tried in this order:
//!
//! 1. **Too little data.** With fewer than [`MIN_POINTS`] (3) points no trend
//!    can be told: the series is `Stable` when its values differ by at most
//!    [`MIN_RELATIVE_CHANGE`] (10%) of their magnitude, else `Noisy`
//!    ("undecided"). A series whose values are all equal is always `Stable`.
//! 2. **Leak**, when all three hold:
//!    - the series trends up: Mann-Kendall `z > 0` with one-sided p (half the
//!      two-sided one) below [`SIGNIFICANCE`] (0.05); or, for short series
//!      (`n <=` [`SHORT_SERIES_MAX`] = 5, where the test has little power),
//!      at least [`SHORT_SERIES_MONOTONIC`] (75%) of the steps go up and the
//!      last value is above the first;
//!    - the floor trends up: the same one-sided test on the floor is
//!      significant, or the floor rises strictly at every step;
//!    - it is still growing: `late_slope > 0` and, when the early half grew,
//!      `late_slope >=` [`LEAK_LATE_RATIO`] (25%) of `early_slope`.
//! 3. **Plateau** (a bounded cache: grew, then levelled off). With
//!    `level = median(late half)`, `base = min(early half)` and
//!    `rise = level - base`, all of:
//!    - `rise > 0` and `rise >` [`MIN_RELATIVE_CHANGE`] (10%) of
//!      `max(|level|, |base|)`;
//!    - the late half is flat: its Theil-Sen drift
//!      `|late_slope| * (late_len - 1)` is at most [`PLATEAU_LATE_DRIFT`]
//!      (25%) of `rise`, and its median absolute deviation from `level` is at
//!      most [`PLATEAU_LATE_SPREAD`] (25%) of `rise`;
//!    - it got there by growing, not through a dip: the first value lies in
//!      the lower [`PLATEAU_START_FRACTION`] (half) of the rise, and the
//!      Mann-Kendall S of the whole series is positive.
//! 4. **Stable**: little variation. With `sigma = 1.4826 * MAD` (a robust
//!    standard deviation), `sigma <=` [`MIN_RELATIVE_CHANGE`] (10%) of
//!    `|median|`, and at most [`STABLE_MAX_OUTLIER_FRACTION`] (20%) of the
//!    points lie further than `max(`[`OUTLIER_SIGMAS`]` * sigma, 10% of
//!    |median|)` from the median (so one spike in a flat series is tolerated).
//! 5. **Noisy**: anything else; no upward trend but large variation. This
//!    includes series that clearly *decrease* (shrinking sites are not a
//!    memory problem and have no verdict of their own) unless they vary
//!    little enough to be `Stable`.
//!
//! # Limits
//!
//! Non-finite values are dropped before the analysis (with their times).
//! The floor is a minimum, so a single deep *downward* outlier late in a
//! leaking series flattens the floor before it and can hide the leak; upward
//! spikes (the common case: a burst of temporary allocations caught by a
//! dump) do not affect it.

/// Fewer points than this cannot show a trend (see the module doc, rule 1).
pub const MIN_POINTS: usize = 3;
/// One-sided significance level of the Mann-Kendall tests.
pub const SIGNIFICANCE: f64 = 0.05;
/// Series up to this length may qualify as trending up by the share of
/// increasing steps alone (the test has little power there).
pub const SHORT_SERIES_MAX: usize = 5;
/// Share of increasing steps that makes a short series trend up.
pub const SHORT_SERIES_MONOTONIC: f64 = 0.75;
/// A leak's late-half slope is at least this share of its early-half slope.
pub const LEAK_LATE_RATIO: f64 = 0.25;
/// A plateau's late-half drift is at most this share of its rise.
pub const PLATEAU_LATE_DRIFT: f64 = 0.25;
/// A plateau's late-half median absolute deviation is at most this share of
/// its rise.
pub const PLATEAU_LATE_SPREAD: f64 = 0.25;
/// A plateau's first value lies in this lower share of its rise.
pub const PLATEAU_START_FRACTION: f64 = 0.5;
/// Relative change below which a variation is "small": the bound on a stable
/// series' robust spread, and the least rise of a plateau.
pub const MIN_RELATIVE_CHANGE: f64 = 0.10;
/// A stable series may have at most this share of outlying points.
pub const STABLE_MAX_OUTLIER_FRACTION: f64 = 0.2;
/// Distance from the median, in robust standard deviations, beyond which a
/// point of a stable series counts as an outlier.
pub const OUTLIER_SIGMAS: f64 = 3.0;

/// Scale from the median absolute deviation to the standard deviation of a
/// normal distribution.
const MAD_TO_SIGMA: f64 = 1.4826;
pub(crate) const SECONDS_PER_HOUR: f64 = 3600.0;

/// The shape of one series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verdict {
    /// Keeps growing, and its low boundary keeps rising.
    Leak,
    /// Grew, then levelled off (a bounded cache).
    Plateau,
    /// Flat.
    Stable,
    /// No clear growth pattern but large variation (or too little data).
    Noisy,
}

impl Verdict {
    /// Lowercase name, as shown in reports: `leak`, `plateau`, `stable`,
    /// `noisy`.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Leak => "leak",
            Verdict::Plateau => "plateau",
            Verdict::Stable => "stable",
            Verdict::Noisy => "noisy",
        }
    }
}

/// The verdict on one series and the statistics behind it.
#[derive(Debug, Clone, PartialEq)]
pub struct Trend {
    pub verdict: Verdict,
    /// Theil-Sen slope per dump (units of the values) over the whole series.
    pub slope_per_dump: f64,
    /// Theil-Sen slope per hour from the times (seconds); `None` when the
    /// times are unknown, not one per value, not finite, or not pairwise
    /// distinct.
    pub slope_per_hour: Option<f64>,
    /// Mann-Kendall S statistic on the series.
    pub mk_s: i64,
    /// Mann-Kendall z score (tie-corrected variance, continuity correction).
    pub mk_z: f64,
    /// Two-sided p-value of `mk_z` (normal approximation).
    pub mk_p: f64,
    /// Mann-Kendall z score on the floor, the running minimum taken from the
    /// end (`floor[i] = min(values[i..])`): the low boundary that the later
    /// values never go below. It rises with `i` for a leak and stays flat
    /// for a sawtooth.
    pub floor_z: f64,
    /// Two-sided p-value of `floor_z`.
    pub floor_p: f64,
    /// Fraction of consecutive steps that increase (0..=1; 0 for fewer than
    /// two points).
    pub monotonic: f64,
    /// Theil-Sen slope per dump of the first half, `values[..ceil(n/2)]`.
    pub early_slope: f64,
    /// Theil-Sen slope per dump of the second half, `values[n/2..]`.
    pub late_slope: f64,
}

/// Classifies one series.
///
/// `times` are the dumps' times in seconds (e.g. unix time), one per value,
/// or `None`; they only feed [`Trend::slope_per_hour`] and are ignored when
/// their length differs from `values`'. `values` holds one value per dump in
/// dump order. Non-finite values are dropped (with their times). Never
/// panics.
pub fn classify(times: Option<&[f64]>, values: &[f64]) -> Trend {
    let times = times.filter(|t| t.len() == values.len());
    let (times, values): (Option<Vec<f64>>, Vec<f64>) = match times {
        Some(t) => {
            let (t, v): (Vec<f64>, Vec<f64>) = t
                .iter()
                .zip(values)
                .filter(|(_, v)| v.is_finite())
                .map(|(&t, &v)| (t, v))
                .unzip();
            (Some(t), v)
        }
        None => (
            None,
            values.iter().copied().filter(|v| v.is_finite()).collect(),
        ),
    };
    let n = values.len();

    let index: Vec<f64> = (0..n).map(|i| i as f64).collect();
    let slope_per_dump = theil_sen(&index, &values);
    let slope_per_hour = times
        .filter(|t| n >= 2 && distinct_finite(t))
        .map(|t| theil_sen(&t, &values) * SECONDS_PER_HOUR);
    let (mk_s, mk_z, mk_p) = mann_kendall(&values);
    let floor = floor_from_end(&values);
    let (_, floor_z, floor_p) = mann_kendall(&floor);
    let monotonic = if n >= 2 {
        let ups = values.windows(2).filter(|w| w[1] > w[0]).count();
        ups as f64 / (n - 1) as f64
    } else {
        0.0
    };
    let early = &values[..n.div_ceil(2)];
    let late = &values[n / 2..];
    let early_slope = theil_sen(&index[..early.len()], early);
    let late_slope = theil_sen(&index[..late.len()], late);

    let mut trend = Trend {
        verdict: Verdict::Stable,
        slope_per_dump,
        slope_per_hour,
        mk_s,
        mk_z,
        mk_p,
        floor_z,
        floor_p,
        monotonic,
        early_slope,
        late_slope,
    };
    trend.verdict = verdict(&trend, &values, &floor);
    trend
}

/// Applies the rules of the module doc to a series and its statistics.
fn verdict(t: &Trend, values: &[f64], floor: &[f64]) -> Verdict {
    let n = values.len();
    let (lo, hi) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    if n < 2 || lo == hi {
        return Verdict::Stable;
    }
    if n < MIN_POINTS {
        let magnitude = lo.abs().max(hi.abs());
        return if hi - lo <= MIN_RELATIVE_CHANGE * magnitude {
            Verdict::Stable
        } else {
            Verdict::Noisy
        };
    }

    // Leak.
    let trends_up = (t.mk_z > 0.0 && t.mk_p / 2.0 < SIGNIFICANCE)
        || (n <= SHORT_SERIES_MAX
            && t.monotonic >= SHORT_SERIES_MONOTONIC
            && values[n - 1] > values[0]);
    let floor_up = (t.floor_z > 0.0 && t.floor_p / 2.0 < SIGNIFICANCE)
        || floor.windows(2).all(|w| w[1] > w[0]);
    let still_growing = t.late_slope > 0.0
        && (t.early_slope <= 0.0 || t.late_slope >= LEAK_LATE_RATIO * t.early_slope);
    if trends_up && floor_up && still_growing {
        return Verdict::Leak;
    }

    // Plateau.
    let early = &values[..n.div_ceil(2)];
    let late = &values[n / 2..];
    let level = median(late);
    let base = early.iter().copied().fold(f64::INFINITY, f64::min);
    let rise = level - base;
    let drift = t.late_slope.abs() * (late.len() - 1) as f64;
    let late_spread = mad(late, level);
    if rise > 0.0
        && rise > MIN_RELATIVE_CHANGE * level.abs().max(base.abs())
        && drift <= PLATEAU_LATE_DRIFT * rise
        && late_spread <= PLATEAU_LATE_SPREAD * rise
        && values[0] - base <= PLATEAU_START_FRACTION * rise
        && t.mk_s > 0
    {
        return Verdict::Plateau;
    }

    // Stable or noisy.
    let mid = median(values);
    let sigma = MAD_TO_SIGMA * mad(values, mid);
    let small = MIN_RELATIVE_CHANGE * mid.abs();
    let outlier_at = (OUTLIER_SIGMAS * sigma).max(small);
    let outliers = values
        .iter()
        .filter(|v| (*v - mid).abs() > outlier_at)
        .count();
    if sigma <= small && outliers as f64 <= STABLE_MAX_OUTLIER_FRACTION * n as f64 {
        Verdict::Stable
    } else {
        Verdict::Noisy
    }
}

/// Theil-Sen slope of `y` against `x`: the median of the slopes
/// `(y[j] - y[i]) / (x[j] - x[i])` over all pairs `i < j` with distinct `x`
/// (pairs with equal `x`, and NaN slopes, are skipped). Only the first
/// `min(x.len(), y.len())` points are used. Returns 0 when there is no pair.
pub fn theil_sen(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len().min(y.len());
    let mut slopes = Vec::with_capacity(n * n.saturating_sub(1) / 2);
    for i in 0..n {
        for j in i + 1..n {
            let dx = x[j] - x[i];
            if dx != 0.0 {
                let slope = (y[j] - y[i]) / dx;
                if !slope.is_nan() {
                    slopes.push(slope);
                }
            }
        }
    }
    median(&slopes)
}

/// Mann-Kendall trend test: `(S, z, p)`.
///
/// `S` is the sum of `sign(y[j] - y[i])` over all pairs `i < j`. Its
/// variance under the no-trend hypothesis, corrected for ties, is
/// `(n(n-1)(2n+5) - sum over groups of t equal values of t(t-1)(2t+5)) / 18`;
/// `z = (S - 1) / sd` for `S > 0`, `(S + 1) / sd` for `S < 0` (continuity
/// correction) and 0 for `S = 0` or zero variance; `p` is the two-sided
/// p-value `2 (1 - Phi(|z|))` from the normal approximation. A positive `z`
/// means an upward trend. Series of fewer than 2 points give `(0, 0, 1)`.
/// NaN values are compared as unequal to everything (they add nothing to S).
pub fn mann_kendall(y: &[f64]) -> (i64, f64, f64) {
    let n = y.len();
    let mut s: i64 = 0;
    for i in 0..n {
        for j in i + 1..n {
            if y[j] > y[i] {
                s += 1;
            } else if y[j] < y[i] {
                s -= 1;
            }
        }
    }

    let mut sorted = y.to_vec();
    sorted.sort_by(f64::total_cmp);
    let tie_term: f64 = sorted
        .chunk_by(|a, b| a == b)
        .map(|g| {
            let t = g.len() as f64;
            t * (t - 1.0) * (2.0 * t + 5.0)
        })
        .sum();
    let nf = n as f64;
    let var = (nf * (nf - 1.0) * (2.0 * nf + 5.0) - tie_term) / 18.0;
    let z = if var <= 0.0 || s == 0 {
        0.0
    } else {
        let corrected = if s > 0 { s - 1 } else { s + 1 };
        corrected as f64 / var.sqrt()
    };
    (s, z, two_sided_p(z))
}

/// `floor[i] = min(values[i..])`: the running minimum taken from the end.
fn floor_from_end(values: &[f64]) -> Vec<f64> {
    let mut floor = values.to_vec();
    for i in (0..floor.len().saturating_sub(1)).rev() {
        floor[i] = floor[i].min(floor[i + 1]);
    }
    floor
}

/// Whether all times are finite and pairwise distinct.
fn distinct_finite(times: &[f64]) -> bool {
    if !times.iter().all(|t| t.is_finite()) {
        return false;
    }
    let mut sorted = times.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.windows(2).all(|w| w[0] != w[1])
}

/// Median (mean of the two middle values for an even count); 0 when empty.
pub(crate) fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        // Halve first so that two huge values cannot overflow.
        sorted[mid - 1] / 2.0 + sorted[mid] / 2.0
    }
}

/// Median absolute deviation of `values` from `center`.
fn mad(values: &[f64], center: f64) -> f64 {
    let deviations: Vec<f64> = values.iter().map(|v| (v - center).abs()).collect();
    median(&deviations)
}

/// Two-sided p-value of a standard normal z score, `2 (1 - Phi(|z|))`,
/// which equals `erfc(|z| / sqrt 2)`.
fn two_sided_p(z: f64) -> f64 {
    if z.is_nan() || z == 0.0 {
        return 1.0;
    }
    erfc(z.abs() / std::f64::consts::SQRT_2).clamp(0.0, 1.0)
}

/// Complementary error function for `x >= 0`, from Abramowitz and Stegun,
/// formula 7.1.26 (absolute error below 1.5e-7):
/// `erfc(x) = (a1 t + a2 t^2 + a3 t^3 + a4 t^4 + a5 t^5) exp(-x^2)` with
/// `t = 1 / (1 + p x)`. Plenty for comparing p-values with 0.05.
fn erfc(x: f64) -> f64 {
    const P: f64 = 0.327_591_1;
    const A: [f64; 5] = [
        0.254_829_592,
        -0.284_496_736,
        1.421_413_741,
        -1.453_152_027,
        1.061_405_429,
    ];
    let t = 1.0 / (1.0 + P * x);
    // Horner's scheme for t (a1 + t (a2 + t (a3 + t (a4 + t a5)))).
    let poly = A.iter().rev().fold(0.0, |acc, a| acc * t + a) * t;
    poly * (-x * x).exp()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn verdict_of(values: &[f64]) -> Verdict {
        classify(None, values).verdict
    }

    /// Tiny deterministic linear congruential generator (Knuth's MMIX
    /// constants); `next_unit` gives a value in [0, 1).
    struct Lcg(u64);

    impl Lcg {
        fn next_unit(&mut self) -> f64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    #[test]
    fn names() {
        assert_eq!(Verdict::Leak.name(), "leak");
        assert_eq!(Verdict::Plateau.name(), "plateau");
        assert_eq!(Verdict::Stable.name(), "stable");
        assert_eq!(Verdict::Noisy.name(), "noisy");
    }

    #[test]
    fn theil_sen_small_cases() {
        let x = [0.0, 1.0, 2.0, 3.0];
        assert_eq!(theil_sen(&x, &[1.0, 3.0, 5.0, 7.0]), 2.0);
        // Slopes: 1, 4, 1.5 (0-1, 0-2, 0-3), 7, 1.75 (1-2, 1-3), -3.5
        // (2-3); sorted -3.5, 1, 1.5, 1.75, 4, 7: median (1.5 + 1.75) / 2.
        assert_eq!(theil_sen(&x, &[0.0, 1.0, 8.0, 4.5]), 1.625);
        // Pairs with equal x are skipped: only (0,2) and (1,2) remain.
        assert_eq!(theil_sen(&[0.0, 0.0, 1.0], &[0.0, 2.0, 4.0]), 3.0);
        assert_eq!(theil_sen(&[1.0], &[1.0]), 0.0);
        assert_eq!(theil_sen(&[], &[]), 0.0);
        // One outlier does not move it.
        let y = [0.0, 1.0, 2.0, 1000.0, 4.0, 5.0, 6.0];
        let x: Vec<f64> = (0..7).map(f64::from).collect();
        assert_eq!(theil_sen(&x, &y), 1.0);
    }

    #[test]
    fn mann_kendall_small_cases() {
        // S = 10 = 5*4/2; var = 5*4*15/18 = 50/3; z = 9 / sqrt(50/3).
        let (s, z, p) = mann_kendall(&[1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(s, 10);
        assert!((z - 2.204_540_7).abs() < 1e-6, "z = {z}");
        assert!((p - 0.027_486).abs() < 2e-5, "p = {p}");

        let (s, z, p) = mann_kendall(&[5.0, 4.0, 3.0, 2.0, 1.0]);
        assert_eq!(s, -10);
        assert!((z + 2.204_540_7).abs() < 1e-6);
        assert!((p - 0.027_486).abs() < 2e-5);

        // Ties: [1, 2, 2, 3]: S = 3 + 1 + 1 + 0 = 5; var = (4*3*13 -
        // 2*1*9) / 18 = 138/18; z = 4 / sqrt(138/18).
        let (s, z, _) = mann_kendall(&[1.0, 2.0, 2.0, 3.0]);
        assert_eq!(s, 5);
        assert!((z - 4.0 / (138.0f64 / 18.0).sqrt()).abs() < 1e-12);

        assert_eq!(mann_kendall(&[3.0, 3.0, 3.0]), (0, 0.0, 1.0));
        assert_eq!(mann_kendall(&[1.0]), (0, 0.0, 1.0));
        assert_eq!(mann_kendall(&[]), (0, 0.0, 1.0));
        let (s, z, p) = mann_kendall(&[1.0, 3.0, 2.0]);
        assert_eq!((s, z, p), (1, 0.0, 1.0));
    }

    #[test]
    fn normal_tail() {
        assert!((two_sided_p(0.0) - 1.0).abs() < 1e-6);
        assert!((two_sided_p(1.959_964) - 0.05).abs() < 1e-6);
        assert!((two_sided_p(-1.644_854) - 0.10).abs() < 1e-6);
        assert!((two_sided_p(3.0) - 0.002_699_8).abs() < 1e-6);
        assert!(two_sided_p(40.0) >= 0.0);
        assert_eq!(two_sided_p(f64::NAN), 1.0);
    }

    #[test]
    fn examples_from_the_spec() {
        assert_eq!(
            verdict_of(&[0.0, 200.0, 400.0, 500.0, 500.0, 500.0, 500.0]),
            Verdict::Plateau
        );
        assert_eq!(
            verdict_of(&[100.0, 200.0, 300.0, 400.0, 500.0, 600.0]),
            Verdict::Leak
        );
        assert_eq!(
            verdict_of(&[10.0, 12.0, 10.0, 11.0, 10.0, 12.0]),
            Verdict::Stable
        );
        assert_eq!(
            verdict_of(&[5.0, 80.0, 3.0, 60.0, 10.0, 90.0, 2.0]),
            Verdict::Noisy
        );
    }

    #[test]
    fn sawtooth_with_rising_peaks_is_not_a_leak() {
        let t = classify(None, &[10.0, 50.0, 10.0, 60.0, 10.0, 70.0, 10.0]);
        assert_eq!(t.verdict, Verdict::Noisy);
        assert_eq!(t.floor_z, 0.0);
        // Rising peaks *and* rising minima is a leak.
        let values = [10.0, 50.0, 20.0, 60.0, 30.0, 70.0, 40.0, 80.0, 50.0, 90.0];
        assert_eq!(verdict_of(&values), Verdict::Leak);
    }

    #[test]
    fn noisy_linear_growth_is_a_leak() {
        for seed in 0..50 {
            let mut rng = Lcg(seed);
            let values: Vec<f64> = (0..24)
                .map(|i| (1000.0 + 100.0 * f64::from(i)) * (0.8 + 0.4 * rng.next_unit()))
                .collect();
            let t = classify(None, &values);
            assert_eq!(t.verdict, Verdict::Leak, "seed {seed}: {values:?} {t:?}");
            assert!(t.slope_per_dump > 50.0 && t.slope_per_dump < 150.0);
        }
    }

    #[test]
    fn slow_filling_cache_is_a_plateau() {
        let values = [100.0, 180.0, 250.0, 310.0, 350.0, 360.0, 360.0, 360.0];
        let t = classify(None, &values);
        assert_eq!(t.verdict, Verdict::Plateau, "{t:?}");
        // The same with a little jitter on the plateau.
        let values = [100.0, 180.0, 250.0, 310.0, 352.0, 361.0, 358.0, 360.0];
        assert_eq!(verdict_of(&values), Verdict::Plateau);
    }

    #[test]
    fn steady_leak_with_one_huge_spike_is_a_leak() {
        let mut values: Vec<f64> = (0..12).map(|i| 1000.0 + 50.0 * f64::from(i)).collect();
        for at in [0, 3, 6, 11] {
            let saved = values[at];
            values[at] = 1e9;
            let t = classify(None, &values);
            assert_eq!(t.verdict, Verdict::Leak, "spike at {at}: {t:?}");
            assert!((t.slope_per_dump - 50.0).abs() < 10.0);
            values[at] = saved;
        }
    }

    #[test]
    fn decreasing_series_is_noisy_or_stable_never_a_leak() {
        // A large decrease varies a lot: Noisy.
        let values = [1000.0, 900.0, 800.0, 700.0, 600.0, 500.0, 400.0];
        let t = classify(None, &values);
        assert_eq!(t.verdict, Verdict::Noisy);
        assert!(t.mk_z < 0.0 && t.slope_per_dump == -100.0);
        // A slight decrease is flat enough: Stable.
        let values = [1000.0, 998.0, 996.0, 994.0, 992.0, 990.0];
        assert_eq!(verdict_of(&values), Verdict::Stable);
    }

    #[test]
    fn short_series() {
        assert_eq!(verdict_of(&[]), Verdict::Stable);
        assert_eq!(verdict_of(&[5.0]), Verdict::Stable);
        assert_eq!(verdict_of(&[5.0, 5.0]), Verdict::Stable);
        assert_eq!(verdict_of(&[100.0, 105.0]), Verdict::Stable);
        assert_eq!(verdict_of(&[100.0, 300.0]), Verdict::Noisy);
        assert_eq!(verdict_of(&[1.0, 2.0, 3.0]), Verdict::Leak);
        assert_eq!(verdict_of(&[1.0, 2.0, 3.0, 2.5, 4.0]), Verdict::Leak);
        assert_eq!(verdict_of(&[1.0, 3.0, 2.0]), Verdict::Noisy);
    }

    #[test]
    fn spike_in_a_flat_series_is_stable() {
        let values = [100.0, 101.0, 100.0, 5000.0, 99.0, 100.0, 100.0];
        assert_eq!(verdict_of(&values), Verdict::Stable);
        let values = [100.0, 900.0, 100.0, 5000.0, 99.0, 100.0, 3.0];
        assert_eq!(verdict_of(&values), Verdict::Noisy);
    }

    #[test]
    fn a_dip_is_not_a_plateau() {
        let values = [100.0, 100.0, 5.0, 100.0, 100.0, 100.0, 100.0, 100.0];
        assert_ne!(verdict_of(&values), Verdict::Plateau);
        let values = [100.0, 5.0, 100.0, 100.0, 100.0, 100.0, 100.0, 100.0];
        assert_ne!(verdict_of(&values), Verdict::Plateau);
    }

    #[test]
    fn slope_per_hour_from_times() {
        // One dump every 10 minutes, +50 per dump: +300 per hour.
        let times: Vec<f64> = (0..6).map(|i| 1.7e9 + 600.0 * f64::from(i)).collect();
        let values: Vec<f64> = (0..6).map(|i| 1000.0 + 50.0 * f64::from(i)).collect();
        let t = classify(Some(&times), &values);
        assert_eq!(t.slope_per_dump, 50.0);
        let per_hour = t.slope_per_hour.unwrap();
        assert!((per_hour - 300.0).abs() < 1e-6, "{per_hour}");

        // Irregular spacing: the slope follows the times, not the indices.
        let times = [0.0, 3600.0, 3.0 * 3600.0, 4.0 * 3600.0];
        let values = [0.0, 10.0, 30.0, 40.0];
        let t = classify(Some(&times), &values);
        assert_eq!(t.slope_per_hour, Some(10.0));

        assert_eq!(classify(None, &values).slope_per_hour, None);
        let dup = [0.0, 60.0, 60.0, 120.0];
        assert_eq!(classify(Some(&dup), &values).slope_per_hour, None);
        let short = [0.0, 60.0];
        assert_eq!(classify(Some(&short), &values).slope_per_hour, None);
        let nan = [0.0, f64::NAN, 120.0, 180.0];
        assert_eq!(classify(Some(&nan), &values).slope_per_hour, None);
    }

    #[test]
    fn non_finite_values_are_dropped() {
        let values = [100.0, f64::NAN, 200.0, 300.0, f64::INFINITY, 400.0, 500.0];
        let times = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let t = classify(Some(&times), &values);
        assert_eq!(t.verdict, Verdict::Leak);
        assert_eq!(t.slope_per_dump, 100.0);
        assert!(t.slope_per_hour.is_some());
    }

    #[test]
    fn floor_is_the_running_minimum_from_the_end() {
        assert_eq!(
            floor_from_end(&[3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0]),
            [1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 6.0]
        );
        assert!(floor_from_end(&[]).is_empty());
    }

    fn finite() -> impl Strategy<Value = f64> {
        prop_oneof![
            prop::num::f64::NORMAL | prop::num::f64::SUBNORMAL | prop::num::f64::ZERO,
            -1e6..1e6f64,
            Just(f64::MAX),
            Just(f64::MIN),
        ]
    }

    proptest! {
        #[test]
        fn classify_never_panics(
            values in prop::collection::vec(finite(), 0..60),
            times in prop::option::of(prop::collection::vec(finite(), 0..60)),
        ) {
            let t = classify(times.as_deref(), &values);
            prop_assert!((0.0..=1.0).contains(&t.monotonic));
            prop_assert!((0.0..=1.0).contains(&t.mk_p));
            prop_assert!((0.0..=1.0).contains(&t.floor_p));
        }

        #[test]
        fn constant_series_is_stable(value in finite(), n in 0usize..60) {
            let values = vec![value; n];
            prop_assert_eq!(verdict_of(&values), Verdict::Stable);
        }

        #[test]
        fn increasing_linear_series_is_a_leak(
            intercept in -1e9..1e9f64,
            slope in 1e-3..1e6f64,
            n in 5usize..60,
        ) {
            let values: Vec<f64> = (0..n).map(|i| intercept + slope * i as f64).collect();
            prop_assume!(values.windows(2).all(|w| w[1] > w[0]));
            prop_assert_eq!(verdict_of(&values), Verdict::Leak);
        }

        #[test]
        fn rise_then_constant_is_a_plateau(
            n in 3usize..60,
            rise_len in 1usize..30,
            steps in prop::collection::vec(1.0..1e6f64, 30),
            base_share in 0.0..5.0f64,
        ) {
            // Points 0..rise_len rise strictly; from rise_len on the series
            // stays at its final level, which covers at least the last half.
            let rise_len = rise_len.min(n / 2);
            let rise: f64 = steps[..rise_len].iter().sum();
            let mut values = vec![base_share * rise];
            for step in &steps[..rise_len] {
                let last = values[values.len() - 1];
                values.push(last + step);
            }
            let level = values[values.len() - 1];
            values.resize(n, level);
            prop_assert_eq!(verdict_of(&values), Verdict::Plateau, "{:?}", values);
        }
    }
}
