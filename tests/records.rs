//! Record-format promises: every line is valid JSON with every key once,
//! `max_record_bytes` caps the whole line, recording a span field replaces
//! its value, and the breadcrumb ring never reports a torn entry.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lastwords_layer::ring::{self, Crumb, CrumbSite};

// ---------------------------------------------------------------------------
// The breadcrumb ring under contention.

const WRITERS: usize = 8;

/// One site per writer thread: the site an entry points at says which
/// thread left it, so an entry whose thread id is another writer's is torn.
static SITES: [CrumbSite; WRITERS] = {
    const fn site(name: &'static str) -> CrumbSite {
        CrumbSite {
            name,
            file: "tests/records.rs",
            line: 1,
        }
    }
    [
        site("ring-writer-0"),
        site("ring-writer-1"),
        site("ring-writer-2"),
        site("ring-writer-3"),
        site("ring-writer-4"),
        site("ring-writer-5"),
        site("ring-writer-6"),
        site("ring-writer-7"),
    ]
};

/// The kernel thread id of the calling thread, as the ring records it.
fn kernel_tid() -> i64 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::syscall(libc::SYS_gettid) as i64 }
}

/// Which writer `crumb` claims to come from, if it is one of [`SITES`]
/// (other tests of this binary may push breadcrumbs of their own).
fn writer_of(crumb: &Crumb) -> Option<usize> {
    SITES.iter().position(|site| std::ptr::eq(site, crumb.site))
}

#[test]
fn the_ring_never_reports_a_torn_entry_under_eight_writers() {
    // Eight writers push their own site as fast as they can while two
    // readers check every entry they are given: its site and its thread id
    // must be the same writer's. Runs until a tear is seen or for a few
    // seconds; the race this guards against (two pushes a lap apart sharing
    // a slot) showed up several times a second on 2 cores.
    let stop = Arc::new(AtomicBool::new(false));
    let tids: Arc<[AtomicI64; WRITERS]> = Arc::new(std::array::from_fn(|_| AtomicI64::new(0)));
    let pushes = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (stop, tids, pushes) = (stop.clone(), tids.clone(), pushes.clone());
            std::thread::spawn(move || {
                tids[w].store(kernel_tid(), Ordering::SeqCst);
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..256 {
                        ring::push(&SITES[w]);
                    }
                    n += 256;
                }
                pushes.fetch_add(n, Ordering::Relaxed);
            })
        })
        .collect();
    while tids.iter().any(|t| t.load(Ordering::SeqCst) == 0) {
        std::thread::yield_now();
    }
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (stop, tids) = (stop.clone(), tids.clone());
            std::thread::spawn(move || {
                let mut torn = Vec::new();
                let mut checked = 0u64;
                let mut buf = [None; ring::CAPACITY];
                while !stop.load(Ordering::Relaxed) {
                    let got = ring::recent(&mut buf);
                    let mut last = None;
                    for crumb in buf[..got].iter().flatten() {
                        assert!(last < Some(crumb.index), "entries out of order");
                        last = Some(crumb.index);
                        let Some(w) = writer_of(crumb) else { continue };
                        checked += 1;
                        if crumb.tid != tids[w].load(Ordering::Relaxed) {
                            torn.push(*crumb);
                        }
                    }
                    if !torn.is_empty() {
                        stop.store(true, Ordering::Relaxed);
                    }
                }
                (torn, checked)
            })
        })
        .collect();
    let started = Instant::now();
    while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(7) {
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let mut torn = Vec::new();
    let mut checked = 0;
    for r in readers {
        let (t, c) = r.join().unwrap();
        torn.extend(t);
        checked += c;
    }
    let tids: Vec<i64> = tids.iter().map(|t| t.load(Ordering::SeqCst)).collect();
    assert!(
        torn.is_empty(),
        "{} torn entries among {checked} checked ({} pushes), writers' tids {tids:?}: {:?}",
        torn.len(),
        pushes.load(Ordering::Relaxed),
        &torn[..torn.len().min(5)]
    );
    assert!(
        checked > 10_000,
        "the readers checked only {checked} entries"
    );
}
