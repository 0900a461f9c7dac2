//! `heapscope require-mem`: TODO (being written).

use std::process::ExitCode;

use anyhow::Result;
use clap::Args as ClapArgs;

/// The full `--help` text (the variant's doc comment is the short one).
pub const LONG_ABOUT: &str = "TODO\n\nExamples:\n    heapscope require-mem --help";

#[derive(ClapArgs, Debug)]
pub struct Args {}

pub fn run(_a: Args) -> Result<ExitCode> {
    anyhow::bail!("not written yet")
}
