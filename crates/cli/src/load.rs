//! Loading a dump with a progress bar and warnings on stderr.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use heapscope_reader::{read_input, Dump, Input, ReadError, ReadOptions};
use indicatif::{ProgressBar, ProgressStyle};

use crate::args::CommonArgs;

/// Inputs smaller than this load too fast for a progress bar to help.
const PROGRESS_MIN_BYTES: u64 = 100 << 20;

pub fn load(path: &Path, opts: &ReadOptions, common: &CommonArgs) -> Result<Dump> {
    let input = Input::open(path).map_err(|error| {
        let name = heapscope_reader::display_name(path);
        anyhow::Error::new(ReadError::Io {
            source_name: name,
            error,
        })
    })?;
    let size = input.size_hint.unwrap_or(0);
    let show = !common.no_progress && size >= PROGRESS_MIN_BYTES && std::io::stderr().is_terminal();
    let mut opts = opts.clone();
    let bar = if show {
        let bar = ProgressBar::new(size);
        bar.set_style(
            ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_message(format!("reading {}", input.name));
        let b = bar.clone();
        opts.progress = Some(Arc::new(move |done| b.set_position(done)));
        Some(bar)
    } else {
        None
    };
    let dump = read_input(input, &opts);
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let dump = dump?;
    if !common.quiet {
        for w in dump.diagnostics.warnings(&dump.source) {
            eprintln!("heapscope: warning: {w}");
        }
    }
    Ok(dump)
}
