//! Ctrl-C and SIGTERM as a flag: the sampling loops check it between samples, so a record is
//! never cut in half and the summary is still printed.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// A flag set by SIGINT or SIGTERM from now on (the signals no longer end the process; a
/// second signal of either kind does, in case the loop is stuck).
pub fn stop_flag() -> std::io::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // Registered first: exits on the signal when the flag is already set.
        signal_hook::flag::register_conditional_shutdown(sig, 130, flag.clone())?;
        signal_hook::flag::register(sig, flag.clone())?;
    }
    Ok(flag)
}
