//! `heapscope watch PID`: samples a process's memory (and its descendants') from /proc every
//! interval, shows a live line, and writes CSV or JSON lines; the statistics of the heapscope
//! agent, when the process runs it, are merged into each record.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args as ClapArgs, ValueEnum};
use heapscope_agent::state::runtime_dir;
use heapscope_live::proc::{self, Liveness};
use heapscope_live::record::{Format, Record, RecordWriter};
use heapscope_live::sampler::Sampler;
use heapscope_report::human_bytes;

/// The full `--help` text (the variant's doc comment is the short one).
pub const LONG_ABOUT: &str = "\
Sample a running process's memory every interval: RSS, PSS and USS from /proc/PID/smaps_rollup
(RSS from /proc/PID/status when that cannot be read). No agent is needed. A live line on stderr
shows the elapsed time, the memory, its change since the start and, when known, live objects.

Records (one per process per sample; with --children the process and each descendant, told
apart by `pid`) go to -o FILE, or to stdout when it is not a terminal. Fields: time (unix
seconds), pid, rss_bytes, pss_bytes, uss_bytes; and when the process runs the heapscope agent,
its latest statistics: heap_live_slots, heap_free_slots, total_allocated_objects,
total_freed_objects, minor_gc_count, major_gc_count, malloc_increase_bytes,
oldmalloc_increase_bytes, requests, jobs. CSV has a header row and every column (empty when
unknown); JSON lines leave unknown fields out. Each record is flushed as it is written.

Watching stops when the process exits (or is a zombie), after --duration, or on Ctrl-C
(SIGINT or SIGTERM), with a one-line summary. `heapscope plot` and `heapscope trend` read the
file.

Examples:
    heapscope watch 4242 -o mem.jsonl
    heapscope watch $(pgrep -f 'puma: cluster worker' | head -1) --interval 5s -o worker.csv
    heapscope watch 4242 --children --duration 10m -o mem.jsonl && heapscope trend mem.jsonl
    heapscope watch 4242 --format csv > mem.csv";

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum WatchFormat {
    Csv,
    Jsonl,
}

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// The process id.
    #[arg(value_name = "PID")]
    pub pid: u32,

    /// Time between samples: seconds (0.5) or with a unit (500ms, 2s, 1m).
    #[arg(long, short = 'i', value_name = "TIME", default_value = "1s",
          value_parser = heapscope_live::parse_seconds)]
    pub interval: f64,

    /// Also sample every descendant process (e.g. Puma's or Unicorn's workers): one record per
    /// process per sample.
    #[arg(long)]
    pub children: bool,

    /// Write the records to FILE (CSV if it ends in .csv, else JSON lines).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Record format (default: from the file's extension; JSON lines on stdout).
    #[arg(long, value_enum)]
    pub format: Option<WatchFormat>,

    /// Stop after this long (seconds, or 30s, 10m, 2h).
    #[arg(long, value_name = "TIME", value_parser = heapscope_live::parse_seconds)]
    pub duration: Option<f64>,

    /// Where agents announce themselves: the agent's HEAPSCOPE_RUNTIME_DIR (default: that
    /// variable here, else $XDG_RUNTIME_DIR/heapscope, else /tmp/heapscope-<uid>).
    #[arg(long, value_name = "DIR")]
    pub runtime_dir: Option<PathBuf>,

    /// No live line and no summary.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// Where records go.
enum Sink {
    File(RecordWriter),
    Stdout(Format),
    None,
}

impl Sink {
    fn write(&mut self, r: &Record) -> Result<()> {
        match self {
            Sink::File(w) => w.write(r).context("cannot write the records"),
            Sink::Stdout(f) => {
                let line = match f {
                    Format::Csv => r.csv_row(),
                    Format::Jsonl => r.to_json().to_string(),
                };
                let mut out = std::io::stdout().lock();
                writeln!(out, "{line}")
                    .and_then(|_| out.flush())
                    .context("cannot write to stdout")
            }
            Sink::None => Ok(()),
        }
    }
}

pub fn run(a: Args) -> Result<ExitCode> {
    if a.interval < 0.01 {
        bail!("--interval must be at least 10ms");
    }
    match proc::liveness(a.pid) {
        Liveness::Running => {}
        Liveness::Zombie => bail!("process {} has already exited (a zombie)", a.pid),
        Liveness::Gone => bail!("no process {} is running", a.pid),
    }
    let format = |default: Format| match a.format {
        Some(WatchFormat::Csv) => Format::Csv,
        Some(WatchFormat::Jsonl) => Format::Jsonl,
        None => default,
    };
    let mut sink = match &a.output {
        Some(path) => Sink::File(
            RecordWriter::create(path, format(Format::from_path(path)))
                .with_context(|| format!("cannot create {}", path.display()))?,
        ),
        None if a.format.is_some() || !std::io::stdout().is_terminal() => {
            let f = format(Format::Jsonl);
            if f == Format::Csv {
                println!("{}", heapscope_live::record::csv_header());
            }
            Sink::Stdout(f)
        }
        None => Sink::None,
    };
    let configured = match &a.runtime_dir {
        Some(d) => d.to_string_lossy().into_owned(),
        None => std::env::var("HEAPSCOPE_RUNTIME_DIR").unwrap_or_default(),
    };
    let stop = heapscope_live::signals::stop_flag().context("cannot handle Ctrl-C")?;
    let mut sampler = Sampler::new(a.pid, a.children, &runtime_dir(&configured));
    let mut line = LiveLine::new(a.quiet);
    let mut stats = Stats::default();
    let interval = Duration::from_secs_f64(a.interval);
    let started = Instant::now();
    let end = a.duration.map(|d| started + Duration::from_secs_f64(d));
    let mut next = started;
    let why = loop {
        let sample = sampler.sample();
        if !sample.running {
            break "the process exited";
        }
        for r in &sample.records {
            sink.write(r)?;
        }
        stats.add(a.pid, &sample.records, started.elapsed());
        line.show(&stats);
        next += interval;
        // Sleep in short slices, so Ctrl-C, the end and the process's exit are seen quickly.
        let why = loop {
            if stop.load(Ordering::SeqCst) {
                break Some("interrupted");
            }
            if end.is_some_and(|e| Instant::now() >= e) {
                break Some("--duration reached");
            }
            if proc::liveness(a.pid) != Liveness::Running {
                break Some("the process exited");
            }
            let now = Instant::now();
            if now >= next {
                // Late (a slow sample, a suspended terminal): no burst of catch-up samples.
                if now > next + interval {
                    next = now;
                }
                break None;
            }
            std::thread::sleep((next - now).min(Duration::from_millis(50)));
        };
        if let Some(why) = why {
            break why;
        }
    };
    line.clear();
    if !a.quiet {
        eprintln!("heapscope: {}", stats.summary(a.pid, why));
    }
    Ok(ExitCode::SUCCESS)
}

/// What the live line and the summary show.
#[derive(Default)]
struct Stats {
    samples: u64,
    elapsed: Duration,
    first: Option<u64>,
    last: Option<u64>,
    peak: u64,
    pss: Option<u64>,
    uss: Option<u64>,
    live_objects: Option<u64>,
    processes: usize,
    total_rss: u64,
    first_total: Option<u64>,
    peak_total: u64,
}

impl Stats {
    fn add(&mut self, pid: u32, records: &[Record], elapsed: Duration) {
        self.samples += 1;
        self.elapsed = elapsed;
        self.processes = records.len();
        self.total_rss = records.iter().map(|r| r.mem.rss_bytes).sum();
        self.first_total.get_or_insert(self.total_rss);
        self.peak_total = self.peak_total.max(self.total_rss);
        if let Some(r) = records.iter().find(|r| r.pid == pid) {
            let rss = r.mem.rss_bytes;
            self.first.get_or_insert(rss);
            self.last = Some(rss);
            self.peak = self.peak.max(rss);
            self.pss = r.mem.pss_bytes;
            self.uss = r.mem.uss_bytes;
            if let Some(n) = r.live_objects() {
                self.live_objects = Some(n);
            }
        }
    }

    fn line(&self) -> String {
        let opt = |v: Option<u64>| v.map(human_bytes).unwrap_or_else(|| "?".into());
        let change = match (self.first, self.last) {
            (Some(f), Some(l)) => signed_bytes(l as i64 - f as i64),
            _ => "?".into(),
        };
        let mut s = format!(
            "{:>7.1}s  RSS {}  PSS {}  USS {}  ({change} since start)",
            self.elapsed.as_secs_f64(),
            opt(self.last),
            opt(self.pss),
            opt(self.uss)
        );
        if let Some(n) = self.live_objects {
            s.push_str(&format!(
                "  live objects {}",
                heapscope_report::thousands(n)
            ));
        }
        if self.processes > 1 {
            s.push_str(&format!(
                "  | {} processes: RSS {}",
                self.processes,
                human_bytes(self.total_rss)
            ));
        }
        s
    }

    fn summary(&self, pid: u32, why: &str) -> String {
        let mut s = format!(
            "watched {pid} for {:.1} s, {} samples ({why})",
            self.elapsed.as_secs_f64(),
            self.samples
        );
        if let (Some(f), Some(l)) = (self.first, self.last) {
            s.push_str(&format!(
                "; RSS first {}, last {}, peak {} ({} since start)",
                human_bytes(f),
                human_bytes(l),
                human_bytes(self.peak),
                signed_bytes(l as i64 - f as i64)
            ));
        }
        if self.peak_total > self.peak {
            s.push_str(&format!(
                "; with descendants peak {}",
                human_bytes(self.peak_total)
            ));
        }
        s
    }
}

fn signed_bytes(d: i64) -> String {
    let sign = if d < 0 { "-" } else { "+" };
    format!("{sign}{}", human_bytes(d.unsigned_abs()))
}

/// The live line: redrawn in place on a terminal; elsewhere one line every 10 s.
struct LiveLine {
    quiet: bool,
    tty: bool,
    drawn: bool,
    last_plain: Option<Instant>,
}

impl LiveLine {
    fn new(quiet: bool) -> LiveLine {
        LiveLine {
            quiet,
            tty: std::io::stderr().is_terminal(),
            drawn: false,
            last_plain: None,
        }
    }

    fn show(&mut self, stats: &Stats) {
        if self.quiet {
            return;
        }
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r\x1b[2K{}", stats.line());
            let _ = err.flush();
            self.drawn = true;
        } else if self
            .last_plain
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(10))
        {
            self.last_plain = Some(Instant::now());
            let _ = writeln!(err, "heapscope: {}", stats.line());
        }
    }

    fn clear(&mut self) {
        if self.drawn {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
            self.drawn = false;
        }
    }
}
