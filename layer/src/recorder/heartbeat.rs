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
//! The thread holds no lock any other code takes, never keeps the process
//! alive (it is detached, and process exit ends it), and blocks every
//! signal, so signals sent to the process still reach the program's own
//! threads.
//!
//! Each beat also advances the epoch of the calls-in-flight accounting
//! ([`super::counts`]) and, with `.stuck_after(d)`, checks every annotated
//! function's oldest call in flight: when it passes `d`, one `stuck` record
//! (WARN, mirrored to stderr) names the function, its count and the age;
//! when the function has no call older than `d` again, one more record with
//! `"state":"recovered"`. The records are ordinary `tracing` events
//! (`lastwords::stuck`), emitted from this thread.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::counts::Counts;
use super::file::Header;
use crate::clock::Timestamp;

/// `.stuck_after()` in ms; 0: off.
static STUCK_AFTER_MS: AtomicU64 = AtomicU64::new(0);

/// Sets the threshold of the `stuck` records (`None`: off).
pub(crate) fn set_stuck_after(after: Option<Duration>) {
    let ms = after.map_or(0, |d| {
        u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
    });
    STUCK_AFTER_MS.store(ms, Ordering::Relaxed);
}

/// Time between two beats.
pub(crate) const PERIOD: Duration = Duration::from_millis(500);

/// Starts the heartbeat thread for `header`. Returns `false` when the
/// thread cannot be spawned (the recorder then works without `last_alive`
/// updates past the start).
pub(crate) fn start(header: &'static Header, counts: Option<&'static Counts>) -> bool {
    let statm = std::fs::File::open("/proc/self/statm").ok();
    // The thread is born with every signal blocked (it inherits the mask
    // in force while it is created), so that a signal sent to the process
    // (SIGTERM, SIGINT…) is never delivered here but to one of the
    // program's own threads, as without lastwords.
    // SAFETY: sigset_t is plain data filled by sigfillset; pthread_sigmask
    // only changes this thread's mask, restored just below.
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe {
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
    }
    let spawned = std::thread::Builder::new()
        .name("lastwords-heartbeat".into())
        .spawn(move || {
            let mut stuck = Vec::new();
            loop {
                beat(header, statm.as_ref());
                if let Some(counts) = counts {
                    let now = header.last_alive_micros.load(Ordering::Relaxed);
                    counts.tick(now);
                    check_stuck(counts, now, &mut stuck);
                }
                std::thread::sleep(PERIOD);
            }
        })
        .is_ok();
    // SAFETY: restores the mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    spawned
}

/// Writes the time and the RSS into `header` once.
pub(crate) fn beat(header: &Header, statm: Option<&std::fs::File>) {
    if let Some(rss) = statm.and_then(rss_bytes) {
        header.rss_bytes.store(rss, Ordering::Relaxed);
    }
    let now = Timestamp::now().as_micros() as u64;
    header.last_alive_micros.store(now, Ordering::Release);
}

/// Writes a `stuck` record for each function whose oldest call in flight
/// just passed the threshold, and a `recovered` one for each that was
/// stuck and no longer is. `stuck[i]`: fn slot `i` is reported stuck.
fn check_stuck(counts: &Counts, now: u64, stuck: &mut Vec<bool>) {
    let after = STUCK_AFTER_MS.load(Ordering::Relaxed);
    if after == 0 {
        return;
    }
    stuck.resize(counts.fns(), false);
    for (i, was) in stuck.iter_mut().enumerate() {
        let (name, count, age) = counts.fn_state(i, now);
        let is = count > 0 && age >= after;
        if is == *was {
            continue;
        }
        *was = is;
        let secs = age / 1000;
        let (message, state) = if is {
            (
                format!("{name}: {count} calls in flight, oldest {secs} s"),
                "stuck",
            )
        } else {
            (
                format!("{name}: recovered, {count} calls in flight"),
                "recovered",
            )
        };
        tracing::event!(
            name: "lastwords::stuck",
            target: "lastwords",
            tracing::Level::WARN,
            message = message.as_str(),
            r#fn = name,
            state,
            in_flight = count,
            oldest_age_ms = age,
            stuck_after_ms = after,
        );
    }
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
    fn the_thread_beats_and_blocks_process_signals() {
        let dir = crate::recorder::test_dir("heartbeat");
        let mut file = super::super::RingFile::take(&dir.join("a.jsonl"), 0o600).unwrap();
        let info = super::super::file::RunInfo {
            run_id: "hb",
            pid: 1,
            start_micros: 0,
            memory_limit: None,
            oom_kills: None,
            cgroup: None,
        };
        file.start(1 << 16, &info).unwrap();
        let file: &'static super::super::RingFile = Box::leak(Box::new(file));
        let header = file.header().unwrap();
        assert_eq!(header.last_alive_micros.load(Ordering::Relaxed), 0);
        assert!(start(header, None));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while header.last_alive_micros.load(Ordering::Relaxed) == 0 {
            assert!(std::time::Instant::now() < deadline, "no beat");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(header.rss_bytes.load(Ordering::Relaxed) > 0);
        // The heartbeat thread's blocked mask includes SIGTERM and SIGINT.
        let mut masks = Vec::new();
        for task in std::fs::read_dir("/proc/self/task").unwrap() {
            let task = task.unwrap().path();
            let comm = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
            if comm.trim_end() == "lastwords-heart" {
                let status = std::fs::read_to_string(task.join("status")).unwrap();
                let blk = status
                    .lines()
                    .find_map(|l| l.strip_prefix("SigBlk:"))
                    .unwrap();
                masks.push(u64::from_str_radix(blk.trim(), 16).unwrap());
            }
        }
        assert!(!masks.is_empty(), "no heartbeat thread found");
        for mask in masks {
            for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT] {
                assert_ne!(mask & 1 << (sig - 1), 0, "{sig} not blocked: {mask:x}");
            }
        }
        // This thread's own mask is as it was.
        let own = std::fs::read_to_string("/proc/thread-self/status").unwrap();
        let blk = own.lines().find_map(|l| l.strip_prefix("SigBlk:")).unwrap();
        assert_eq!(
            u64::from_str_radix(blk.trim(), 16).unwrap() & 1 << (libc::SIGTERM - 1),
            0
        );
    }

    #[test]
    fn rss_is_read_and_plausible() {
        let statm = std::fs::File::open("/proc/self/statm").unwrap();
        let rss = rss_bytes(&statm).unwrap();
        assert!(rss > 100 << 10 && rss < 64 << 30, "{rss}");
    }
}
