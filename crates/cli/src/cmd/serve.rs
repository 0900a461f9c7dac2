//! `heapscope serve [PATH...]`: imports what it is given, then serves the
//! web UI (heapscope-web) over the store.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args as ClapArgs;
use heapscope_report::escape_control_text;
use heapscope_store::{ImportOptions, Outcome};
use heapscope_web::{Config, DEFAULT_CACHE_BYTES};

use super::import::StoreArg;

/// The full `--help` text (the variant's doc comment is the short one).
pub const LONG_ABOUT: &str = "\
Serve a web UI over a store of imported dumps (see `heapscope import`), after importing the PATHs
given, if any.

Pages: the processes (dumps, heap trend, leak verdict); a process (heap over time, RSS and live
objects from imported memory logs, the ranked leak report with each site's survivor, its path
from a root and the container holding it, the caches that levelled off, a form to diff 2 or 3
dumps); a dump (totals, objects by type, class, location, file, gem, generation and string,
sortable, filterable and paginated; top retainers; leak suspects; a dominator-tree explorer; the
dominator flame graph); an object (its record, shallow and retained size, dominator chain, paths
from roots, referrers and referents); a diff; a pprof profile (flame graph and top sites).

Object pages, the dominator explorer and diffs read the dump file (kept in memory up to
--cache-memory, least recently used first out): the first such page of a big dump takes about as
long as `heapscope retained`. A dump moved or changed since it was imported gets a message, not
an error; with `import --objects` object pages fall back to the store's tables.

The UI is read-only and served by heapscope itself (no CDN, no network). It listens on 127.0.0.1
by default and then answers only to Host 127.0.0.1:PORT or localhost:PORT (no DNS rebinding);
--listen with any other address requires --token (or HEAPSCOPE_TOKEN), which every request must
then present (?token=... once, then a cookie, or Authorization: Bearer ...). The URL is printed
on stdout once the server listens. Pages, options and the security model: docs/serve.md.

Examples:
    heapscope serve tmp/heapscope/ --open
    heapscope serve --store team.sqlite --listen 127.0.0.1:8080
    heapscope serve --store postgres://heapscope@db/heapscope --listen 0.0.0.0:8080 --token \"$(openssl rand -hex 16)\"";

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Dumps, memory logs and profiles to import first (files, directories, quoted globs).
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    #[command(flatten)]
    pub store: StoreArg,

    /// Address and port to listen on (port 0: any free port).
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:7878")]
    pub listen: SocketAddr,

    /// A secret every request must present; required when --listen is not a loopback address.
    #[arg(
        long,
        value_name = "SECRET",
        env = "HEAPSCOPE_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,

    /// Open the UI in a browser once it is up (xdg-open).
    #[arg(long)]
    pub open: bool,

    /// Memory for dumps loaded by object pages, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = (DEFAULT_CACHE_BYTES >> 20) as u64)]
    pub cache_memory: u64,

    /// Also store every object and reference of the dumps imported (see `import --objects`).
    #[arg(long)]
    pub objects: bool,

    /// Parser threads (default: one per core).
    #[arg(long, value_name = "N", default_value_t = 0, hide_default_value = true)]
    pub threads: usize,
}

pub fn run(a: Args) -> Result<ExitCode> {
    let config = Config {
        listen: a.listen,
        token: a.token.clone(),
        cache_bytes: (a.cache_memory as usize).saturating_mul(1 << 20),
        threads: a.threads,
    };
    // Refuse a bad --listen/--token before any import work.
    heapscope_web::check(&config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut store = a.store.open()?;
    if !a.paths.is_empty() {
        let opts = ImportOptions {
            objects: a.objects,
            process: None,
            threads: a.threads,
            progress: super::import::progress(false),
        };
        let outcomes = store.import(&a.paths, &opts, &mut |o| {
            if let Outcome::Failed { path, reason } = o {
                eprintln!(
                    "failed: {}: {}",
                    escape_control_text(&path.display().to_string()),
                    escape_control_text(reason)
                );
            }
        });
        let imported = outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Imported { .. }))
            .count();
        let failed = outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Failed { .. }))
            .count();
        eprintln!("{imported} imported, {failed} failed");
    }
    let described = store.describe();
    let token = a.token.clone();
    let open = a.open;
    heapscope_web::serve(store, config, move |addr| {
        let url = match &token {
            Some(t) => format!("http://{addr}/?token={t}"),
            None => format!("http://{addr}/"),
        };
        eprintln!(
            "serving {} on {url} (Ctrl-C stops)",
            escape_control_text(&described)
        );
        // Tests and scripts read this line for the port.
        println!("{url}");
        if open {
            let _ = std::process::Command::new("xdg-open")
                .arg(&url)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn();
        }
    })
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(ExitCode::SUCCESS)
}
