//! The stderr mirror: the records that say something went wrong, also written
//! to stderr as one human line each, so `docker logs` and `journalctl` show
//! them even when the JSONL file is lost with the container.
//!
//! Each line goes out with one `write(2)`. A line identical to the previous
//! one is not repeated: it is counted, and the count is written as
//! `[lastwords] (previous line repeated N times)` before the next different
//! line, so a retry loop spinning on the same error cannot flood stderr. The
//! JSONL file still gets every record.

use std::sync::Mutex;

/// Writes `bytes` to stderr with `write(2)`, ignoring failure: there is
/// nowhere left to report a broken stderr. Async-signal-safe.
pub(crate) fn write_stderr(bytes: &[u8]) {
    // Ignored: a closed or full stderr must not disturb the service.
    let _ = crate::sink::write_all_vectored(libc::STDERR_FILENO, &[bytes]);
}

/// Collapses repeated lines on their way to stderr.
pub(crate) struct Mirror {
    enabled: bool,
    last: Mutex<Repeat>,
}

#[derive(Default)]
struct Repeat {
    line: Vec<u8>,
    times: u64,
}

impl Mirror {
    /// A mirror that writes (`enabled`) or stays silent.
    pub(crate) fn new(enabled: bool) -> Mirror {
        Mirror {
            enabled,
            last: Mutex::new(Repeat::default()),
        }
    }

    /// Whether lines are written at all.
    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }

    /// Writes `line` (which ends with `\n`) unless it repeats the previous
    /// one. Not for signal handlers (it locks): those use [`write_stderr`].
    pub(crate) fn line(&self, line: &[u8]) {
        if !self.enabled {
            return;
        }
        let mut last = match self.last.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if last.line == line {
            last.times += 1;
            return;
        }
        if last.times > 0 {
            write_stderr(&repeated_line(last.times));
        }
        write_stderr(line);
        last.line.clear();
        last.line.extend_from_slice(line);
        last.times = 0;
    }

    /// Writes the pending "repeated N times" line, if any; called when the
    /// process ends so the count is not lost.
    pub(crate) fn flush(&self) {
        if !self.enabled {
            return;
        }
        // try_lock: an exit can happen while another thread holds the lock,
        // and waiting for it there could deadlock.
        if let Ok(mut last) = self.last.try_lock() {
            if last.times > 0 {
                write_stderr(&repeated_line(last.times));
                last.times = 0;
            }
        }
    }
}

fn repeated_line(times: u64) -> Vec<u8> {
    format!("[lastwords] (previous line repeated {times} times)\n").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_lines_are_collapsed_and_counted() {
        let m = Mirror::new(true);
        // Exercise the bookkeeping directly; the output goes to the test's
        // stderr, which is captured.
        m.line(b"a\n");
        m.line(b"a\n");
        m.line(b"a\n");
        assert_eq!(m.last.lock().unwrap().times, 2);
        m.line(b"b\n");
        let last = m.last.lock().unwrap();
        assert_eq!(last.times, 0);
        assert_eq!(last.line, b"b\n");
    }
}
