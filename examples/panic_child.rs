//! The child process of the panic tests (`tests/panics.rs`): panics (caught,
//! in a thread, inside spans another layer holds) and signals the
//! application handles itself, each followed by what the test needs to see
//! next. Not meant to be run by hand, but you can:
//!
//! ```text
//! LASTWORDS_PATH=/tmp/p.jsonl cargo run --example panic_child -- rss
//! ```
//!
//! Environment: `LASTWORDS_PATH` (the file), `PANIC_NO_LASTWORDS=1` (do not
//! install lastwords: the baseline the tests compare with).

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> Result<()> {
    let scenario = std::env::args().nth(1).unwrap_or_default();
    let lastwords = std::env::var_os("PANIC_NO_LASTWORDS").is_none();
    match scenario.as_str() {
        // Starts, and ends at once: the next start of a killed run.
        "start" => install(lastwords),
        "thread_panic_then_serve" => thread_panic_then_serve(lastwords),
        "handled_sighup_then_serve" => handled_sighup_then_serve(lastwords),
        "panic_in_a_locked_span" => panic_in_a_locked_span(lastwords),
        "rss" => rss(lastwords),
        other => Err(format!("unknown scenario {other}").into()),
    }
}

fn install(lastwords: bool) -> Result<()> {
    if lastwords {
        lastwords::init().install()?;
    }
    Ok(())
}

/// Tells the parent the scenario reached the point where it waits to be
/// killed, then waits.
fn ready_then_wait() -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(b"ready\n")?;
    out.flush()?;
    drop(out);
    std::thread::sleep(Duration::from_secs(60));
    Err("nobody killed this process".into())
}

/// Serves "requests" for longer than a dying process takes to die.
fn serve(requests: u64) {
    for n in 0..requests {
        tracing::info!(n, "served a request");
    }
    std::thread::sleep(Duration::from_millis(100));
    tracing::info!("still serving");
}

/// A worker thread panics; the service goes on serving, and is then
/// killed (by the parent, with SIGKILL).
fn thread_panic_then_serve(lastwords: bool) -> Result<()> {
    install(lastwords)?;
    tracing::info!("started");
    let joined = std::thread::Builder::new()
        .name("worker".into())
        .spawn(|| panic!("worker died"))?
        .join();
    println!("worker panicked: {}", joined.is_err());
    std::thread::sleep(Duration::from_millis(100));
    serve(1_000);
    ready_then_wait()
}

static HUPPED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_hup(_: libc::c_int) {
    HUPPED.store(true, Ordering::SeqCst);
}

/// The application reloads its configuration on SIGHUP (its own handler),
/// goes on serving, and is then killed.
fn handled_sighup_then_serve(lastwords: bool) -> Result<()> {
    // SAFETY: installs an async-signal-safe handler (one atomic store).
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_hup as extern "C" fn(libc::c_int) as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        if libc::sigaction(libc::SIGHUP, &action, std::ptr::null_mut()) != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
    }
    install(lastwords)?;
    tracing::info!("started");
    // SAFETY: raise(3) to this thread; the handler above keeps it alive.
    if unsafe { libc::raise(libc::SIGHUP) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    println!("reloaded: {}", HUPPED.load(Ordering::SeqCst));
    tracing::info!("reloaded the configuration");
    std::thread::sleep(Duration::from_millis(100));
    serve(1_000);
    ready_then_wait()
}

/// A span field whose `Debug` panics, recorded while the `fmt` layer (which
/// formats span fields holding the span's lock) comes before lastwords in
/// the stack: the panic hook runs with that lock taken by this very thread.
/// The panic is caught; the process waits long enough for anything a
/// reader of that lock would do once the unwinding poisons it, then exits 0.
fn panic_in_a_locked_span(lastwords: bool) -> Result<()> {
    use tracing_subscriber::prelude::*;

    struct BrokenDebug;
    impl std::fmt::Debug for BrokenDebug {
        fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            panic!("broken Debug")
        }
    }

    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    if lastwords {
        let layer = lastwords::init().layer()?;
        tracing_subscriber::registry()
            .with(fmt)
            .with(layer)
            .try_init()?;
        lastwords::install_hooks()?;
    } else {
        tracing_subscriber::registry().with(fmt).try_init()?;
    }
    let span = tracing::info_span!("conn", peer = 7, bad = tracing::field::Empty);
    {
        let _entered = span.enter();
        tracing::info!("in the span");
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            span.record("bad", tracing::field::debug(BrokenDebug));
        }));
        println!("caught: {}", caught.is_err());
    }
    std::thread::sleep(Duration::from_millis(600));
    tracing::info!("after the panic");
    Ok(())
}

/// Resident memory in KiB, from `/proc/self/status`.
fn vm_rss_kib() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .ok_or("no VmRSS line")?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .ok_or("no VmRSS value")?
        .parse()?)
}

/// 10,000 caught panics after 1,000 to warm up: prints the resident memory
/// before and after, and the time per panic, as
/// `rss_kib=<before> <after> us_per_panic=<t>`. std's panic message goes
/// to stderr as without lastwords.
fn rss(lastwords: bool) -> Result<()> {
    install(lastwords)?;
    let panic_once = |n: u32| {
        let caught = std::panic::catch_unwind(|| {
            if std::hint::black_box(n) < u32::MAX {
                panic!("request {n} failed");
            }
        });
        assert!(caught.is_err());
    };
    (0..1_000).for_each(panic_once);
    let before = vm_rss_kib()?;
    let started = std::time::Instant::now();
    (0..10_000).for_each(panic_once);
    let us = started.elapsed().as_secs_f64() * 1e6 / 10_000.0;
    let after = vm_rss_kib()?;
    println!("rss_kib={before} {after} us_per_panic={us:.1}");
    Ok(())
}
