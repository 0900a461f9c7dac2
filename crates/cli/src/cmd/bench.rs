//! `heapscope bench`: hit a Rack app on loopback N times while recording its memory, then plot
//! it and give the trend verdict (derailed_benchmarks' `perf:mem_over_time`, with a verdict).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::IsTerminal;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args as ClapArgs;
use heapscope_agent::state::runtime_dir;
use heapscope_analysis::memseries::{MemSample, MemSeries};
use heapscope_analysis::memtrend::{memory_trend, MemTrend, MemVerdict, Metric};
use heapscope_export::memplot::{plot_memory, MemPlotLine};
use heapscope_live::load::{loopback_target, run_load, LoadProgress, LoadReport, LoadSpec, Origin};
use heapscope_live::proc;
use heapscope_live::puma::{Puma, PumaOptions};
use heapscope_live::record::{Format, Record, RecordWriter};
use heapscope_live::sampler::Sampler;
use heapscope_report::{human_bytes, thousands};
use indicatif::{ProgressBar, ProgressStyle};

/// The full `--help` text (the variant's doc comment is the short one).
pub const LONG_ABOUT: &str = "\
Send N requests to a Rack app on loopback while recording its memory, then plot the memory and
give the trend verdict (growing, levelled off, flat, not enough data), like derailed_benchmarks'
perf:mem_over_time with a verdict instead of a column of numbers.

The app: --rackup config.ru starts it with Puma (`puma -b tcp://127.0.0.1:PORT -t T:T`, on a
free port, in the config's directory; --workers for cluster mode), or --url targets one already
running. Only loopback addresses (127.0.0.0/8, ::1, localhost) are accepted; redirects are not
followed and proxy settings are ignored.

Requests: -n (default 5,000) over --concurrency keep-alive connections, rotating through the
--path values. When the flags are absent, derailed's settings are read from the environment:
TEST_COUNT, PATH_TO_HIT, REQUEST_METHOD, REQUEST_BODY, and HTTP_* variables as headers
(HTTP_AUTHORIZATION becomes Authorization; HTTP_PROXY is ignored). The run is bounded by
--timeout; responses other than 2xx/3xx and errors are counted and shown, and the run stops early
if the first 20 requests all fail.

Memory: the app's process and its children (Puma's workers) are sampled every --interval
from /proc (RSS, PSS, USS), with the request count so far, into OUT/memory.jsonl (the format of
`heapscope watch`, plus `requests`). The verdict is on RSS, per process. OUT/memory.png plots it.

With --agent, Puma runs under `heapscope run`, so the agent's GC statistics (live objects) are
merged into the records, and --dump-every K writes a heap dump every K requests into OUT/dumps,
with allocation tracing on, ready for `heapscope leaks`.

With --report memory, the app runs under the agent and bench prints the exact allocation
report (Heapscope.report, like derailed's perf:objects) over the measured requests, warm-up
excluded: allocated and retained memory and objects in total and per request (total / requests),
the top gems, locations and classes. It spans the first measured request's arrival to the last
one's end on every thread, so Puma's own work for those requests is counted. The full report is
written into OUT/report (memory.txt, .json, .html, .pb.gz); --report-out FILE copies one by
extension. --report gc gives GC runs (minor, major), GC time, objects allocated and freed, heap
slots and pages, and live objects by type, in total and per request (like perf:gc). --report
needs --rackup in single mode (no --url: an app bench did not start cannot be instrumented).

Exit status: 0, or 1 with --fail-if-growing when a process's memory is growing; 2 on errors
(including every request failing, and a --report that could not be made).

Examples:
    heapscope bench --rackup config.ru -n 5000 --warmup 500
    heapscope bench --rackup config.ru
    heapscope bench --rackup config.ru -n 20000 --concurrency 4 --workers 2 --path / --path /users
    heapscope bench --url http://127.0.0.1:3000/users -H 'Authorization: Bearer x' --fail-if-growing
    PATH_TO_HIT=/users TEST_COUNT=10000 heapscope bench --rackup config.ru
    heapscope bench --rackup config.ru --agent --dump-every 1000 -o tmp/bench
    heapscope leaks tmp/bench/dumps/heap-*.dump
    heapscope bench --rackup config.ru -n 200 --warmup 20 --report memory --report-out mem.html
    heapscope bench --rackup config.ru -n 200 --report gc";

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Start this Rack app with Puma on a free loopback port.
    #[arg(
        long,
        value_name = "CONFIG.RU",
        conflicts_with = "url",
        required_unless_present = "url"
    )]
    pub rackup: Option<PathBuf>,

    /// Target an app already running on loopback (http://127.0.0.1:PORT/...).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,

    /// With --url: the app's process to sample (default: the process listening on the URL's port).
    #[arg(long, value_name = "PID", requires = "url")]
    pub pid: Option<u32>,

    /// Requests to send (default: $TEST_COUNT, else 5,000).
    #[arg(long = "requests", short = 'n', value_name = "N")]
    pub requests: Option<u64>,

    /// Requests sent before recording starts, to get past boot-time growth (caches filling, the
    /// Ruby heap sizing itself), which a short run would otherwise judge as growth.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub warmup: u64,

    /// Requests in flight at once (one thread and keep-alive connection each).
    #[arg(long, short = 'c', value_name = "C", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=256))]
    pub concurrency: u32,

    /// Path to request; repeat to rotate through several (default: $PATH_TO_HIT, else the
    /// URL's path, else /).
    #[arg(long = "path", value_name = "PATH")]
    pub paths: Vec<String>,

    /// HTTP method (default: $REQUEST_METHOD, else GET).
    #[arg(long, short = 'X', value_name = "METHOD")]
    pub method: Option<String>,

    /// A request header 'Name: value'; repeatable (default: the HTTP_* variables).
    #[arg(long = "header", short = 'H', value_name = "'K: V'")]
    pub headers: Vec<String>,

    /// Request body: a string, or @FILE of at most 64 MiB (default: $REQUEST_BODY).
    #[arg(long, value_name = "STRING|@FILE")]
    pub body: Option<String>,

    /// Puma threads per process (default: --concurrency).
    #[arg(long, value_name = "T", requires = "rackup")]
    pub threads: Option<u32>,

    /// Puma cluster workers (0: single mode).
    #[arg(long, value_name = "N", default_value_t = 0, requires = "rackup")]
    pub workers: u32,

    /// Give up on the whole run (requests) after this long.
    #[arg(long, value_name = "TIME", default_value = "600",
          value_parser = heapscope_live::parse_seconds)]
    pub timeout: f64,

    /// Give up on one request after this long.
    #[arg(long, value_name = "TIME", default_value = "30",
          value_parser = heapscope_live::parse_seconds)]
    pub request_timeout: f64,

    /// How long Puma may take to accept connections.
    #[arg(long, value_name = "TIME", default_value = "60",
          value_parser = heapscope_live::parse_seconds)]
    pub boot_timeout: f64,

    /// Time between memory samples.
    #[arg(long, short = 'i', value_name = "TIME", default_value = "0.2",
          value_parser = heapscope_live::parse_seconds)]
    pub interval: f64,

    /// Output directory (default: tmp/bench-<UTC time>).
    #[arg(long, short = 'o', value_name = "DIR")]
    pub output: Option<PathBuf>,

    /// Exit with status 1 when a process's memory is growing.
    #[arg(long)]
    pub fail_if_growing: bool,

    /// Run Puma under `heapscope run` (the agent): GC statistics merged into the records.
    #[arg(long, requires = "rackup")]
    pub agent: bool,

    /// With the agent: a heap dump every K requests into OUT/dumps, allocation tracing on
    /// (implies --agent).
    #[arg(long, value_name = "K", requires = "rackup",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub dump_every: Option<u64>,

    /// Report over the measured requests (not the warm-up), in total and per request: `memory`
    /// (every allocation, as derailed's perf:objects: allocated and retained memory and objects
    /// by gem, file, location and class) or `gc` (GC runs, GC time, objects allocated and freed,
    /// as perf:gc). Starts the app under the agent; not with --url or --workers.
    #[arg(long, value_name = "memory|gc", value_enum)]
    pub report: Option<ReportKind>,

    /// With --report: also write the full report to FILE, by extension (memory: .txt, .json,
    /// .html or .pb.gz; gc: .txt or .json).
    #[arg(long, value_name = "FILE", requires = "report")]
    pub report_out: Option<PathBuf>,

    /// With --url: where the app's agent announces itself (as for `heapscope dump`).
    #[arg(long, value_name = "DIR")]
    pub runtime_dir: Option<PathBuf>,

    /// No progress bar.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// What `--report` measures.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportKind {
    Memory,
    Gc,
}

impl ReportKind {
    fn name(self) -> &'static str {
        match self {
            ReportKind::Memory => "memory",
            ReportKind::Gc => "gc",
        }
    }
}

/// The request settings after the environment's defaults.
struct Requests {
    count: u64,
    paths: Vec<String>,
    method: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn env_nonempty(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.trim().is_empty())
}

/// `HTTP_X_API_KEY` → `X-Api-Key`.
fn header_name(var: &str) -> String {
    var.split('_')
        .filter(|w| !w.is_empty())
        .map(|w| {
            let lower = w.to_ascii_lowercase();
            let mut c = lower.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

fn requests_from(a: &Args, url_path: Option<&str>) -> Result<Requests> {
    let count = match a.requests {
        Some(n) => n,
        None => match env_nonempty("TEST_COUNT") {
            Some(v) => v
                .trim()
                .parse()
                .with_context(|| format!("TEST_COUNT={v:?} is not a number"))?,
            None => 5_000,
        },
    };
    if count == 0 {
        bail!("-n must be at least 1");
    }
    let mut paths = a.paths.clone();
    if paths.is_empty() {
        if let Some(p) = env_nonempty("PATH_TO_HIT") {
            paths.push(p);
        } else {
            paths.push(url_path.unwrap_or("/").to_string());
        }
    }
    for p in &mut paths {
        if p.contains("://") {
            bail!("--path {p:?}: give a path (like /users?page=2), not a URL");
        }
        if !p.starts_with('/') {
            p.insert(0, '/');
        }
    }
    let method = a
        .method
        .clone()
        .or_else(|| env_nonempty("REQUEST_METHOD"))
        .unwrap_or_else(|| "GET".into())
        .to_ascii_uppercase();
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-') {
        bail!("--method {method:?} is not an HTTP method");
    }
    let mut headers = Vec::new();
    if a.headers.is_empty() {
        let mut vars: Vec<(String, String)> = std::env::vars()
            .filter(|(k, _)| k.starts_with("HTTP_") && k != "HTTP_PROXY")
            .collect();
        vars.sort();
        for (k, v) in vars {
            headers.push((header_name(&k["HTTP_".len()..]), v));
        }
    } else {
        for h in &a.headers {
            let Some((k, v)) = h.split_once(':') else {
                bail!("--header {h:?}: write it as 'Name: value'");
            };
            let k = k.trim();
            if k.is_empty() || k.contains(char::is_whitespace) {
                bail!("--header {h:?}: bad header name");
            }
            headers.push((k.to_string(), v.trim().to_string()));
        }
    }
    let body = match a.body.clone().or_else(|| env_nonempty("REQUEST_BODY")) {
        Some(b) => match b.strip_prefix('@') {
            Some(file) => read_body_file(Path::new(file))?,
            None => b.into_bytes(),
        },
        None => Vec::new(),
    };
    Ok(Requests {
        count,
        paths,
        method,
        headers,
        body,
    })
}

/// The largest request body `--body @FILE` reads: every request sends it
/// whole, and `@/dev/zero` must not read until memory runs out.
pub const MAX_BODY: u64 = 64 * 1024 * 1024;

fn read_body_file(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let shown = path.display();
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read the body file {shown}"))?;
    let mut body = Vec::new();
    file.take(MAX_BODY + 1)
        .read_to_end(&mut body)
        .with_context(|| format!("cannot read the body file {shown}"))?;
    if body.len() as u64 > MAX_BODY {
        bail!(
            "the body file {shown} is larger than {} MiB, the most a request body can be",
            MAX_BODY >> 20
        );
    }
    Ok(body)
}

/// `tmp/bench-20261121T073000Z`.
fn default_output() -> PathBuf {
    let stamp = chrono::Utc::now().format("bench-%Y%m%dT%H%M%SZ");
    PathBuf::from("tmp").join(stamp.to_string())
}

pub fn run(a: Args) -> Result<ExitCode> {
    // Everything that can be refused is refused before anything starts or is sent.
    let url = match &a.url {
        Some(u) => Some(loopback_target(u).map_err(anyhow::Error::msg)?),
        None => None,
    };
    let req = requests_from(&a, url.as_ref().map(|(_, p)| p.as_str()))?;
    if a.interval < 0.01 {
        bail!("--interval must be at least 10ms");
    }
    if let Some(kind) = a.report {
        if a.url.is_some() || a.rackup.is_none() {
            bail!(
                "--report needs --rackup: only an app that bench starts can run under the agent \
                 that measures it (for an app already running, use its Rack pages, ?hs=profile-gc)"
            );
        }
        if a.workers > 0 {
            bail!("--report needs Puma in single mode (--workers 0): one process to measure");
        }
        if let Some(f) = &a.report_out {
            report_extension(kind, f)?;
        }
    }
    let agent = a.agent || a.dump_every.is_some() || a.report.is_some();
    let out = a.output.clone().unwrap_or_else(default_output);
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let out = std::fs::canonicalize(&out).unwrap_or(out);
    let stop = heapscope_live::signals::stop_flag().context("cannot handle Ctrl-C")?;

    // The app.
    let agent_dir = out.join("agent");
    let dumps_dir = out.join("dumps");
    let report_dir = out.join("report");
    if a.report.is_some() {
        // A fresh, private directory: the report quotes the app's strings.
        if report_dir.exists() {
            std::fs::remove_dir_all(&report_dir)
                .with_context(|| format!("cannot clear {}", report_dir.display()))?;
        }
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&report_dir)
            .with_context(|| format!("cannot create {}", report_dir.display()))?;
    }
    let mut puma = None;
    let (origin, roots, rt_dir): (Origin, Vec<u32>, PathBuf) = match (&a.rackup, url) {
        (Some(rackup), _) => {
            let mut env = Vec::new();
            let mut wrapper: Vec<OsString> = Vec::new();
            if agent {
                let exe = std::env::current_exe().context("cannot find the heapscope binary")?;
                wrapper = vec![exe.into_os_string(), "run".into(), "--".into()];
                let set = |env: &mut Vec<(String, String)>, k: &str, v: String| {
                    // The user's own HEAPSCOPE_* settings win.
                    if std::env::var_os(k).is_none() {
                        env.push((k.to_string(), v));
                    }
                };
                env.push(("HEAPSCOPE_RUNTIME_DIR".into(), path_str(&agent_dir)));
                env.push((
                    "HEAPSCOPE_STATS_PATH".into(),
                    path_str(&agent_dir.join("gc-%{pid}.jsonl")),
                ));
                env.push(("HEAPSCOPE_STATS".into(), "1".into()));
                set(
                    &mut env,
                    "HEAPSCOPE_STATS_INTERVAL",
                    format!("{}", a.interval),
                );
                set(&mut env, "HEAPSCOPE_PROFILE", "0".into());
                set(
                    &mut env,
                    "HEAPSCOPE_PROFILE_PATH",
                    path_str(&out.join("profiles/mem-%{pid}-%{time}.pprof.gz")),
                );
                if let Some(kind) = a.report {
                    env.push(("HEAPSCOPE_BENCH_REPORT".into(), kind.name().into()));
                    env.push(("HEAPSCOPE_BENCH_REPORT_DIR".into(), path_str(&report_dir)));
                    env.push(("HEAPSCOPE_BENCH_REPORT_SKIP".into(), a.warmup.to_string()));
                    env.push((
                        "HEAPSCOPE_BENCH_REPORT_REQUESTS".into(),
                        req.count.to_string(),
                    ));
                }
                if let Some(k) = a.dump_every {
                    env.push(("HEAPSCOPE_DUMP_EVERY_REQUESTS".into(), k.to_string()));
                    env.push(("HEAPSCOPE_DUMP_DIR".into(), path_str(&dumps_dir)));
                    env.push(("HEAPSCOPE_TRACE_ALLOCATIONS".into(), "1".into()));
                    set(&mut env, "HEAPSCOPE_DUMP_KEEP", "0".into());
                }
            }
            let opts = PumaOptions {
                rackup: rackup.clone(),
                threads: a.threads.unwrap_or(a.concurrency) as usize,
                workers: a.workers as usize,
                port: None,
                log: out.join("puma.log"),
                wrapper,
                env,
                boot_timeout: Duration::from_secs_f64(a.boot_timeout),
            };
            if !a.quiet {
                eprintln!("heapscope: starting Puma for {}", rackup.display());
            }
            let p = Puma::start(&opts).map_err(anyhow::Error::msg)?;
            let origin = Origin {
                ip: std::net::Ipv4Addr::LOCALHOST.into(),
                port: p.port,
            };
            let pid = p.pid;
            puma = Some(p);
            (origin, vec![pid], agent_dir.clone())
        }
        (None, Some((origin, _))) => {
            let configured = match &a.runtime_dir {
                Some(d) => path_str(d),
                None => std::env::var("HEAPSCOPE_RUNTIME_DIR").unwrap_or_default(),
            };
            let roots = match a.pid {
                Some(p) => vec![p],
                None => proc::topmost(&proc::listening_pids(origin.port)),
            };
            if roots.is_empty() && !a.quiet {
                eprintln!(
                    "heapscope: warning: no process of this user listens on port {}: memory \
                     will not be recorded (give --pid)",
                    origin.port
                );
            }
            (origin, roots, runtime_dir(&configured))
        }
        (None, None) => bail!("give --rackup CONFIG.RU or --url URL"),
    };

    let spec = LoadSpec {
        origin,
        paths: req.paths.clone(),
        method: req.method.clone(),
        headers: req.headers.clone(),
        body: req.body.clone(),
        requests: req.count,
        concurrency: a.concurrency as usize,
        request_timeout: Duration::from_secs_f64(a.request_timeout.max(0.001)),
        deadline: Instant::now() + Duration::from_secs_f64(a.timeout),
    };
    let memory_path = out.join("memory.jsonl");
    let mut writer = RecordWriter::create(&memory_path, Format::Jsonl)
        .with_context(|| format!("cannot create {}", memory_path.display()))?;
    let mut samplers: Vec<Sampler> = roots
        .iter()
        .map(|p| {
            // Puma in single mode has no children but the agent's dump writers.
            let children = a.rackup.is_none() || a.workers > 0;
            Sampler::new(*p, children, &rt_dir).direct_children_only()
        })
        .collect();
    let mut records: Vec<Record> = Vec::new();
    let mut take = |done: u64, records: &mut Vec<Record>| -> Result<bool> {
        let mut running = false;
        for s in samplers.iter_mut() {
            let sample = s.sample();
            running |= sample.running;
            for mut r in sample.records {
                r.requests = Some(done);
                writer.write(&r).context("cannot write memory.jsonl")?;
                records.push(r);
            }
        }
        Ok(running || samplers.is_empty())
    };

    if a.warmup > 0 {
        let warm = LoadSpec {
            requests: a.warmup,
            ..spec.clone()
        };
        let bar = progress_bar(a.quiet, a.warmup);
        bar.set_message("warming up");
        let progress = LoadProgress::default();
        let report = std::thread::scope(|scope| {
            let load = scope.spawn(|| run_load(&warm, &progress));
            while !load.is_finished() {
                std::thread::sleep(Duration::from_millis(50));
                if stop.load(Ordering::SeqCst) {
                    progress.interrupt();
                }
                bar.set_position(progress.done.load(Ordering::SeqCst));
            }
            load.join()
        })
        .map_err(|_| anyhow::anyhow!("the load generator panicked"))?;
        bar.finish_and_clear();
        if report.ok() == 0 {
            bail!(
                "none of the {} warm-up requests succeeded; check --path and the app's log",
                report.sent()
            );
        }
    }
    let bar = progress_bar(a.quiet, req.count);
    let progress = LoadProgress::default();
    let interval = Duration::from_secs_f64(a.interval);
    let started = Instant::now();
    take(0, &mut records)?;
    let mut app_died = false;
    let report = std::thread::scope(|scope| -> Result<LoadReport> {
        let load = scope.spawn(|| run_load(&spec, &progress));
        let mut next = Instant::now() + interval;
        while !load.is_finished() {
            std::thread::sleep(
                next.saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(50)),
            );
            if stop.load(Ordering::SeqCst) {
                progress.interrupt();
            }
            if Instant::now() < next {
                continue;
            }
            next = (next + interval).max(Instant::now());
            let done = progress.done.load(Ordering::SeqCst);
            if !take(done, &mut records)? && !app_died {
                app_died = true;
                progress.interrupt();
            }
            let secs = started.elapsed().as_secs_f64().max(0.001);
            bar.set_position(done);
            bar.set_message(format!(
                "{:.0} req/s, RSS {}",
                done as f64 / secs,
                human_bytes(total_rss(&records))
            ));
        }
        load.join()
            .map_err(|_| anyhow::anyhow!("the load generator panicked"))
    })?;
    let sent = report.sent();
    take(progress.done.load(Ordering::SeqCst), &mut records)?;
    bar.finish_and_clear();

    if app_died {
        let log = puma.as_ref().map(|p| p.log_tail()).unwrap_or_default();
        bail!(
            "the app's process exited during the run after {sent} requests{}",
            if log.is_empty() {
                String::new()
            } else {
                format!("; Puma said:\n{log}")
            }
        );
    }

    // Dumps still being written are waited for before Puma stops.
    let mut dumps_note = None;
    if let Some(k) = a.dump_every {
        let expected = if a.workers == 0 { sent / k } else { 0 };
        dumps_note = Some(wait_for_dumps(&dumps_dir, expected, &stop, a.quiet));
    }
    // The report is written before the last measured response goes out; a run cut short
    // never completes it.
    let report_files = match a.report {
        Some(kind) if report.reason == heapscope_live::load::StopReason::Completed => Some(
            wait_for_report(&report_dir, kind, &stop)
                .map(|()| kind)
                .map_err(|e| format!("{e:#}")),
        ),
        Some(_) => Some(Err(format!(
            "not written: the run did not complete its {} requests",
            req.count
        ))),
        None => None,
    };
    let mut puma_status = None;
    if let Some(mut p) = puma.take() {
        puma_status = p.stop(Duration::from_secs(10));
    }

    // The report.
    let mut text = String::new();
    let elapsed = report.elapsed.as_secs_f64().max(0.001);
    text.push_str(&format!(
        "requests: {} in {:.1} s ({:.0}/s, concurrency {}), {} ok",
        thousands(sent),
        elapsed,
        sent as f64 / elapsed,
        a.concurrency,
        thousands(report.ok())
    ));
    if report.failed() > 0 {
        text.push_str(&format!(", {} failed", thousands(report.failed())));
    }
    text.push('\n');
    let statuses: Vec<String> = report
        .statuses
        .iter()
        .map(|(s, n)| format!("{s}: {}", thousands(*n)))
        .chain((report.errors > 0).then(|| format!("errors: {}", thousands(report.errors))))
        .collect();
    text.push_str(&format!("statuses: {}\n", statuses.join(", ")));
    for e in &report.error_samples {
        text.push_str(&format!("  error: {e}\n"));
    }
    let stopped = match report.reason {
        heapscope_live::load::StopReason::Completed => None,
        heapscope_live::load::StopReason::Deadline => {
            Some(format!("stopped by --timeout after {:.0} s", a.timeout))
        }
        heapscope_live::load::StopReason::Interrupted => Some("interrupted".to_string()),
        heapscope_live::load::StopReason::AllFailed => None,
    };
    if let Some(s) = &stopped {
        text.push_str(&format!(
            "{s} ({} of {} sent)\n",
            thousands(sent),
            thousands(req.count)
        ));
    }

    let root_role = match (&a.rackup, a.workers) {
        (Some(_), 0) => "puma",
        (Some(_), _) => "puma master",
        (None, _) => "app",
    };
    let series = series_of(&records, &roots, root_role);
    let mut growing = false;
    for s in &series {
        let t = memory_trend(s, Metric::Rss);
        growing |= t.verdict == MemVerdict::Growing;
        text.push_str(&verdict_line(s, &t));
        text.push('\n');
        if s.samples.iter().any(|x| x.live_objects.is_some()) {
            let t = memory_trend(s, Metric::LiveObjects);
            text.push_str(&format!("  live objects: {}\n", trend_numbers(&t, false)));
        }
    }
    if series.is_empty() {
        text.push_str("memory: not recorded\n");
    } else {
        text.push_str(&format!("memory: {}\n", memory_path.display()));
    }
    let png = out.join("memory.png");
    match plot(&png, &series, &a, &req) {
        Ok(()) => text.push_str(&format!("plot: {}\n", png.display())),
        Err(e) => text.push_str(&format!("plot: not written: {e:#}\n")),
    }
    if let Some(note) = dumps_note {
        text.push_str(&note);
        text.push('\n');
    }
    let mut report_failed = false;
    match report_files {
        Some(Ok(kind)) => {
            match report_section(kind, &report_dir, req.count, a.report_out.as_deref()) {
                Ok(section) => text.push_str(&section),
                Err(e) => {
                    report_failed = true;
                    text.push_str(&format!("report: {e:#}\n"));
                }
            }
        }
        Some(Err(e)) => {
            report_failed = true;
            text.push_str(&format!("report: {e}\n"));
        }
        None => {}
    }
    if let Some(p) = puma_status.filter(|s| !s.success() && s.code().is_some()) {
        text.push_str(&format!("note: Puma exited with {p}\n"));
    }
    // Error samples quote what the app answered: no raw control characters.
    crate::print(&heapscope_report::escape_control_text(&text))?;

    if report.reason == heapscope_live::load::StopReason::AllFailed {
        bail!(
            "every request failed ({} sent), so the run was stopped; see the statuses and errors \
             above{}",
            sent,
            if a.rackup.is_some() {
                format!(" and {}", out.join("puma.log").display())
            } else {
                String::new()
            }
        );
    }
    if report_failed {
        bail!(
            "the {} report was not made; see above and {}",
            a.report.map(ReportKind::name).unwrap_or(""),
            out.join("puma.log").display()
        );
    }
    if a.fail_if_growing && growing {
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// The extension `--report-out` names, checked before anything starts.
fn report_extension(kind: ReportKind, path: &Path) -> Result<&'static str> {
    let name = path.to_string_lossy();
    let allowed: &[&'static str] = match kind {
        ReportKind::Memory => &["txt", "json", "html", "pb.gz"],
        ReportKind::Gc => &["txt", "json"],
    };
    allowed
        .iter()
        .copied()
        .find(|ext| name.ends_with(&format!(".{ext}")))
        .with_context(|| {
            format!(
                "--report-out {}: give a file ending in .{} for the {} report",
                path.display(),
                allowed.join(", ."),
                kind.name()
            )
        })
}

/// Waits for the agent's report file (or its error file).
fn wait_for_report(
    dir: &Path,
    kind: ReportKind,
    stop: &std::sync::atomic::AtomicBool,
) -> Result<()> {
    let file = dir.join(format!("{}.json", kind.name()));
    let error = dir.join("error.txt");
    let started = Instant::now();
    loop {
        // The error first: a failed report must never pass for a complete one.
        if let Ok(e) = std::fs::read_to_string(&error) {
            bail!("{}", e.trim());
        }
        if file.exists() {
            return Ok(());
        }
        if started.elapsed() >= Duration::from_secs(60) || stop.load(Ordering::SeqCst) {
            bail!(
                "the agent wrote no report into {} (did every request go through Rack?)",
                dir.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `1,234 (12.34 per request)`.
fn per_request(total: f64, requests: u64, bytes: bool) -> (String, String) {
    let per = total / requests.max(1) as f64;
    if bytes {
        (
            human_bytes(total.max(0.0) as u64),
            human_bytes(per.max(0.0).round() as u64),
        )
    } else {
        let sign = if total < 0.0 { "-" } else { "" };
        let per = if per.abs() >= 1000.0 {
            let sign = if per < 0.0 { "-" } else { "" };
            format!("{sign}{}", thousands(per.abs().round() as u64))
        } else {
            format!("{per:.2}")
        };
        (
            format!("{sign}{}", thousands(total.abs().round() as u64)),
            per,
        )
    }
}

/// The report's lines for bench's output, and `--report-out`.
fn report_section(
    kind: ReportKind,
    dir: &Path,
    requests: u64,
    out: Option<&Path>,
) -> Result<String> {
    let path = dir.join(format!("{}.json", kind.name()));
    let json: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?,
    )
    .with_context(|| format!("{} is not JSON", path.display()))?;
    let num = |v: &serde_json::Value| v.as_f64().unwrap_or(0.0);
    let mut s = format!(
        "{} report over the {} measured requests (warm-up not counted):\n",
        kind.name(),
        thousands(requests)
    );
    let row = |s: &mut String, label: &str, total: f64, bytes: bool| {
        let (t, p) = per_request(total, requests, bytes);
        s.push_str(&format!(
            "  {label:<26} {t:>14} total {p:>12} per request\n"
        ));
    };
    match kind {
        ReportKind::Memory => {
            row(
                &mut s,
                "allocated memory",
                num(&json["total_allocated_memsize"]),
                true,
            );
            row(
                &mut s,
                "allocated objects",
                num(&json["total_allocated"]),
                false,
            );
            row(
                &mut s,
                "retained memory",
                num(&json["total_retained_memsize"]),
                true,
            );
            row(
                &mut s,
                "retained objects",
                num(&json["total_retained"]),
                false,
            );
            row(&mut s, "GC runs", num(&json["gc"]["count"]), false);
            for (table, title, bytes) in [
                ("allocated/memory/gem", "allocated memory by gem", true),
                (
                    "allocated/objects/location",
                    "allocated objects by location",
                    false,
                ),
                (
                    "allocated/objects/class",
                    "allocated objects by class",
                    false,
                ),
                (
                    "retained/objects/location",
                    "retained objects by location",
                    false,
                ),
            ] {
                let mut v = &json["tables"];
                for k in table.split('/') {
                    v = &v[k];
                }
                let Some(rows) = v.as_object().filter(|o| !o.is_empty()) else {
                    continue;
                };
                let mut rows: Vec<(&String, f64)> = rows.iter().map(|(k, v)| (k, num(v))).collect();
                rows.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
                s.push_str(&format!("  {title} (top 10):\n"));
                for (name, total) in rows.into_iter().take(10) {
                    let (t, p) = per_request(total, requests, bytes);
                    s.push_str(&format!("    {t:>14} {p:>12}/req  {name}\n"));
                }
            }
            s.push_str(&format!(
                "  full report: {} (also .json, .html, .pb.gz)\n",
                dir.join("memory.txt").display()
            ));
        }
        ReportKind::Gc => {
            let stat = &json["stat"];
            let delta = |k: &str| num(&stat[k]["after"]) - num(&stat[k]["before"]);
            row(&mut s, "GC runs", delta("count"), false);
            row(&mut s, "minor GC runs", delta("minor_gc_count"), false);
            row(&mut s, "major GC runs", delta("major_gc_count"), false);
            if stat.get("time").is_some() {
                let t = delta("time");
                s.push_str(&format!(
                    "  {:<26} {:>11.0} ms total {:>9.3} ms per request\n",
                    "GC time",
                    t,
                    t / requests.max(1) as f64
                ));
            }
            row(
                &mut s,
                "objects allocated",
                delta("total_allocated_objects"),
                false,
            );
            row(&mut s, "objects freed", delta("total_freed_objects"), false);
            for k in ["heap_live_slots", "heap_allocated_pages"] {
                if stat.get(k).is_some() {
                    s.push_str(&format!(
                        "  {k:<26} {:>14} before {:>12} after\n",
                        thousands(num(&stat[k]["before"]) as u64),
                        thousands(num(&stat[k]["after"]) as u64)
                    ));
                }
            }
            if let Some(types) = json["count_objects"].as_object() {
                let mut rows: Vec<(&String, f64)> = types
                    .iter()
                    .filter(|(k, _)| k.starts_with("T_"))
                    .map(|(k, v)| (k, num(&v["after"]) - num(&v["before"])))
                    .filter(|(_, d)| *d != 0.0)
                    .collect();
                rows.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()).then(a.0.cmp(b.0)));
                if !rows.is_empty() {
                    s.push_str("  live objects by type, change (ObjectSpace.count_objects):\n");
                    for (name, d) in rows.into_iter().take(10) {
                        let (t, p) = per_request(d, requests, false);
                        s.push_str(&format!("    {t:>14} {p:>12}/req  {name}\n"));
                    }
                }
            }
            s.push_str(&format!("  full report: {}\n", path.display()));
        }
    }
    if let Some(out) = out {
        let ext = report_extension(kind, out)?;
        let written = if kind == ReportKind::Gc && ext == "txt" {
            std::fs::write(out, &s)
        } else {
            std::fs::copy(dir.join(format!("{}.{ext}", kind.name())), out).map(|_| ())
        };
        written.with_context(|| format!("cannot write {}", out.display()))?;
        s.push_str(&format!("  written to {}\n", out.display()));
    }
    Ok(s)
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn progress_bar(quiet: bool, total: u64) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "bench [{bar:30}] {pos}/{len} requests, {msg}, {elapsed} eta {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// RSS of every process in the newest sample.
fn total_rss(records: &[Record]) -> u64 {
    let Some(last) = records.last() else {
        return 0;
    };
    records
        .iter()
        .rev()
        .take_while(|r| r.time == last.time)
        .map(|r| r.mem.rss_bytes)
        .sum()
}

/// One series per process, the sampled roots first.
fn series_of(records: &[Record], roots: &[u32], root_role: &str) -> Vec<MemSeries> {
    let mut by_pid: BTreeMap<u32, Vec<MemSample>> = BTreeMap::new();
    for r in records {
        by_pid.entry(r.pid).or_default().push(MemSample {
            time: r.time,
            rss_bytes: Some(r.mem.rss_bytes),
            pss_bytes: r.mem.pss_bytes,
            uss_bytes: r.mem.uss_bytes,
            live_objects: r.live_objects(),
            requests: r.requests,
            minor_gc_count: r.stat("minor_gc_count"),
            major_gc_count: r.stat("major_gc_count"),
        });
    }
    let mut out: Vec<MemSeries> = by_pid
        .into_iter()
        .map(|(pid, samples)| {
            let role = if roots.contains(&pid) {
                root_role
            } else {
                "worker"
            };
            MemSeries {
                pid: Some(pid),
                source: None,
                label: format!("{role} {pid}"),
                samples,
            }
        })
        .collect();
    out.sort_by_key(|s| (!roots.contains(&s.pid.unwrap_or(0)), s.pid));
    out
}

fn verdict_line(s: &MemSeries, t: &MemTrend) -> String {
    format!("memory of {}: {}", s.label, trend_numbers(t, true))
}

fn trend_numbers(t: &MemTrend, bytes: bool) -> String {
    let amount = |v: f64| {
        if bytes {
            let sign = if v < 0.0 { "-" } else { "+" };
            format!("{sign}{}", human_bytes(v.abs() as u64))
        } else {
            let sign = if v < 0.0 { "-" } else { "+" };
            format!("{sign}{}", thousands(v.abs().round() as u64))
        }
    };
    let mut s = t.verdict.name().to_string();
    if t.verdict != MemVerdict::NotEnoughData {
        s.push_str(&format!(" (confidence {:.2}", t.confidence));
        if let Some(h) = t.slope_per_hour {
            s.push_str(&format!(", {}/hour", amount(h)));
        }
        if let Some(k) = t.slope_per_1000_requests {
            s.push_str(&format!(", {} per 1,000 requests", amount(k)));
        }
        s.push(')');
    }
    if bytes {
        s.push_str(&format!(
            "; RSS first {}, last {}, peak {}",
            human_bytes(t.first as u64),
            human_bytes(t.last as u64),
            human_bytes(t.peak as u64)
        ));
    }
    s
}

/// Waits until the dumps asked for are complete: at least `expected` of them, and none still
/// being written. Returns the line to print.
fn wait_for_dumps(
    dir: &Path,
    expected: u64,
    stop: &std::sync::atomic::AtomicBool,
    quiet: bool,
) -> String {
    let started = Instant::now();
    let limit = Duration::from_secs(120);
    let list = || -> (Vec<PathBuf>, usize) {
        let mut done = Vec::new();
        let mut writing = 0;
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with("heap-") && name.ends_with(".dump") {
                    done.push(e.path());
                } else if name.ends_with(".tmp") {
                    writing += 1;
                }
            }
        }
        done.sort();
        (done, writing)
    };
    if !quiet && expected > 0 {
        eprintln!("heapscope: waiting for {expected} heap dumps");
    }
    loop {
        let (done, writing) = list();
        let settled = started.elapsed() >= Duration::from_secs(1);
        if (done.len() as u64 >= expected && writing == 0 && settled)
            || started.elapsed() >= limit
            || stop.load(Ordering::SeqCst)
        {
            let mut s = format!("dumps: {} in {}", done.len(), dir.display());
            if (done.len() as u64) < expected {
                s.push_str(&format!(
                    " (expected {expected}; the rest did not complete)"
                ));
            }
            if !done.is_empty() {
                s.push_str(&format!(
                    "\nnext: heapscope leaks {}",
                    dir.join("heap-*.dump").display()
                ));
            }
            return s;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn plot(png: &Path, series: &[MemSeries], a: &Args, req: &Requests) -> Result<()> {
    if series.is_empty() {
        bail!("no memory samples");
    }
    // The same lines as `heapscope plot` draws from the records: without
    // `--agent` there are no live objects, and the legend does not list them.
    let lines: Vec<MemPlotLine> = series.iter().map(crate::cmd::plot::plot_line).collect();
    let target = match (&a.rackup, &a.url) {
        (Some(r), _) => r.display().to_string(),
        (None, Some(u)) => u.clone(),
        (None, None) => String::new(),
    };
    let title = format!(
        "heapscope bench {target}: {} x {} {}",
        thousands(req.count),
        req.method,
        req.paths.join(" ")
    );
    plot_memory(png, &title, &lines).with_context(|| format!("cannot write {}", png.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derailed_header_variables_become_header_names() {
        assert_eq!(header_name("AUTHORIZATION"), "Authorization");
        assert_eq!(header_name("X_API_KEY"), "X-Api-Key");
        let out = default_output().to_string_lossy().into_owned();
        assert!(
            out.starts_with("tmp/bench-20") && out.ends_with('Z'),
            "{out}"
        );
        assert_eq!(out.len(), "tmp/bench-20261121T073000Z".len());
    }
}
