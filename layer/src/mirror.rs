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
    write_fd(libc::STDERR_FILENO, bytes);
}

fn write_fd(fd: libc::c_int, bytes: &[u8]) {
    // Ignored: a closed or full stderr must not disturb the service.
    let _ = crate::sink::write_all_vectored(fd, &[bytes]);
}

/// Collapses repeated lines on their way to stderr.
pub(crate) struct Mirror {
    enabled: bool,
    /// Where lines go: stderr, except in tests.
    fd: libc::c_int,
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
            fd: libc::STDERR_FILENO,
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
            write_fd(self.fd, &repeated_line(last.times));
        }
        write_fd(self.fd, line);
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
                write_fd(self.fd, &repeated_line(last.times));
                last.times = 0;
            }
        }
    }
}

fn repeated_line(times: u64) -> Vec<u8> {
    let plural = if times == 1 { "" } else { "s" };
    format!("[lastwords] (previous line repeated {times} more time{plural})\n").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn identical_lines_are_collapsed_and_counted() {
        let path = std::env::temp_dir().join(format!("lastwords-mirror-{}", std::process::id()));
        let file = std::fs::File::create(&path).unwrap();
        let mut m = Mirror::new(true);
        m.fd = file.as_raw_fd();
        for line in ["a\n", "a\n", "a\n", "b\n", "b\n", "c\n"] {
            m.line(line.as_bytes());
        }
        m.line(b"c\n");
        m.flush();
        let out = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            out,
            "a\n[lastwords] (previous line repeated 2 more times)\nb\n\
             [lastwords] (previous line repeated 1 more time)\nc\n\
             [lastwords] (previous line repeated 1 more time)\n"
        );
        std::fs::remove_file(path).unwrap();
    }
}
