//! The heartbeat: a background thread that writes, twice a second, the time
//! and the resident set size into the ring file's header.
//!
//! A run killed by SIGKILL or the OOM killer cannot say when it died; the
//! next start reads the last heartbeat instead, so `previous_run.last_alive`
//! is at most about half a second before the death even when the process
//! logged nothing for hours, and `rss_bytes` is its memory then.
//!
//! Cost: one thread, asleep but for a `clock_gettime` and one `pread(2)` of
//! `/proc/self/statm` every 500 ms (a few microseconds of CPU per second).
//! The thread holds no lock any other code takes, and it never keeps the
//! process alive: it is detached, and process exit ends it.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::file::Header;
use crate::clock::Timestamp;

/// Time between two beats.
pub(crate) const PERIOD: Duration = Duration::from_millis(500);

/// Starts the heartbeat thread for `header`. Returns `false` when the
/// thread cannot be spawned (the recorder then works without `last_alive`
/// updates past the start).
pub(crate) fn start(header: &'static Header) -> bool {
    let statm = std::fs::File::open("/proc/self/statm").ok();
    std::thread::Builder::new()
        .name("lastwords-heartbeat".into())
        .spawn(move || loop {
            beat(header, statm.as_ref());
            std::thread::sleep(PERIOD);
        })
        .is_ok()
}

/// Writes the time and the RSS into `header` once.
pub(crate) fn beat(header: &Header, statm: Option<&std::fs::File>) {
    if let Some(rss) = statm.and_then(rss_bytes) {
        header.rss_bytes.store(rss, Ordering::Relaxed);
    }
    let now = Timestamp::now().as_micros() as u64;
    header.last_alive_micros.store(now, Ordering::Release);
}

/// Resident set size from `/proc/self/statm` (its second field, in pages).
fn rss_bytes(statm: &std::fs::File) -> Option<u64> {
    use std::os::unix::fs::FileExt;
    let mut buf = [0u8; 128];
    let n = statm.read_at(&mut buf, 0).ok()?;
    let text = std::str::from_utf8(&buf[..n]).ok()?;
    let pages: u64 = text.split(' ').nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * page.max(4096) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_is_read_and_plausible() {
        let statm = std::fs::File::open("/proc/self/statm").unwrap();
        let rss = rss_bytes(&statm).unwrap();
        assert!(rss > 100 << 10 && rss < 64 << 30, "{rss}");
    }
}
