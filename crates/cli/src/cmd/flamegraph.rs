//! `heapscope flamegraph`.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args as ClapArgs;

use crate::args::InputArgs;

#[derive(ClapArgs, Debug)]
pub struct Args {
    #[command(flatten)]
    pub input: InputArgs,
}

pub fn run(_a: Args) -> Result<ExitCode> {
    anyhow::bail!("`heapscope flamegraph` is not implemented yet")
}
