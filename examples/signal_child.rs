//! The child process of the signal tests (`tests/signals.rs`): an
//! application with its own signal handlers, installed before or after
//! lastwords, and the ways two deaths can meet. Not meant to be run by
//! hand, but you can:
//!
//! ```text
//! LASTWORDS_PATH=/tmp/s.jsonl cargo run --example signal_child -- eintr before
//! ```
//!
//! Arguments: the scenario, then for the handler scenarios the install
//! order: `before` (the application's handler first), `after` (lastwords
//! first, then a plain `sigaction` that replaces its handler) or
//! `after_chain` (lastwords first, then a handler that calls the one it
//! found, as `signal-hook` does). Environment: `LASTWORDS_PATH`,
//! `CRASH_NO_LASTWORDS=1` (do not install lastwords: the baseline).
//!
//! The child prints `ready` on stdout when the parent may send its signal,
//! and what its handlers saw, with `write(2)` (async-signal-safe).

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> Result<ExitCode> {
    let mut args = std::env::args().skip(1);
    let scenario = args.next().unwrap_or_default();
    let order = args.next().unwrap_or_else(|| "none".into());
    match scenario.as_str() {
        "eintr" => eintr(&order),
        "resethand" => resethand(&order),
        "bigstack" => bigstack(&order),
        "wait" => wait(),
        "pid1_stdin" => pid1_stdin(),
        "segv" => segv(),
        "xfsz" => xfsz(),
        "epipe" => epipe(),
        "two_segv" => two_segv(),
        "term_in_exit" => term_in_exit(&order),
        "panics_during_term" => panics_during_term(),
        other => Err(format!("unknown scenario {other}").into()),
    }
}

fn install() {
    if std::env::var_os("CRASH_NO_LASTWORDS").is_some() {
        return;
    }
    lastwords::init().install().expect("lastwords");
    for n in 0..20u64 {
        tracing::info!(n, "record {n}");
    }
}

/// Writes `bytes` to stdout with one `write(2)`. Async-signal-safe.
fn say(bytes: &[u8]) {
    // SAFETY: a valid buffer. Ignored result: the parent reports a
    // missing line.
    unsafe { libc::write(1, bytes.as_ptr().cast(), bytes.len()) };
}

// The handler found when the application installed its own after
// lastwords (`after_chain`), and its flags.
static OLD_HANDLER: AtomicUsize = AtomicUsize::new(libc::SIG_DFL);
static OLD_SIGINFO: AtomicBool = AtomicBool::new(false);

/// Calls the handler found at install time, as `signal-hook` does.
fn chain(signo: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let old = OLD_HANDLER.load(Ordering::Acquire);
    if old == libc::SIG_DFL || old == libc::SIG_IGN {
        return;
    }
    // SAFETY: `old` is the handler the kernel gave us, called the way its
    // flags say.
    unsafe {
        if OLD_SIGINFO.load(Ordering::Acquire) {
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                std::mem::transmute(old);
            f(signo, info, ctx);
        } else {
            let f: extern "C" fn(libc::c_int) = std::mem::transmute(old);
            f(signo);
        }
    }
}

/// Installs `handler` for `signo` with `flags` (SA_SIGINFO added), in the
/// order `order` says relative to lastwords.
fn with_handler(
    order: &str,
    signo: libc::c_int,
    flags: libc::c_int,
    handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void),
) -> Result<()> {
    if order != "before" {
        install();
    }
    // SAFETY: a zeroed sigaction with an empty mask is valid.
    let mut new: libc::sigaction = unsafe { std::mem::zeroed() };
    new.sa_sigaction = handler as usize;
    new.sa_flags = flags | libc::SA_SIGINFO;
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: valid actions.
    if unsafe { libc::sigaction(signo, &new, &mut old) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    if order == "after_chain" {
        OLD_SIGINFO.store(old.sa_flags & libc::SA_SIGINFO != 0, Ordering::Release);
        OLD_HANDLER.store(old.sa_sigaction, Ordering::Release);
    }
    if order == "before" {
        install();
    }
    Ok(())
}

static HANDLED: AtomicBool = AtomicBool::new(false);

extern "C" fn note(signo: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    chain(signo, info, ctx);
    HANDLED.store(true, Ordering::SeqCst);
    say(b"handled\n");
}

/// A SIGTERM handler installed without SA_RESTART: the blocking `read`
/// the signal interrupts must fail with EINTR (a common way to leave a
/// blocking loop). With SA_RESTART it would restart and hang.
fn eintr(order: &str) -> Result<ExitCode> {
    with_handler(order, libc::SIGTERM, 0, note)?;
    let mut fds = [0; 2];
    // SAFETY: a valid array for pipe(2).
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    say(b"ready\n");
    let mut byte = [0u8; 1];
    // SAFETY: a valid buffer; nobody writes to the pipe, whose write end
    // stays open, so only a signal ends this read.
    let n = unsafe { libc::read(fds[0], byte.as_mut_ptr().cast(), 1) };
    let err = std::io::Error::last_os_error();
    if n < 0 && err.raw_os_error() == Some(libc::EINTR) {
        say(b"eintr\n");
        return Ok(ExitCode::SUCCESS);
    }
    say(b"read did not fail with EINTR\n");
    Ok(ExitCode::from(2))
}

/// A one-shot SIGINT handler (SA_RESETHAND): the first Ctrl-C runs it, the
/// second kills the process.
fn resethand(order: &str) -> Result<ExitCode> {
    with_handler(
        order,
        libc::SIGINT,
        libc::SA_RESETHAND | libc::SA_RESTART,
        note,
    )?;
    say(b"ready\n");
    std::thread::sleep(Duration::from_secs(30));
    Ok(ExitCode::from(9))
}

/// A SIGUSR1 handler that needs 32 KiB of stack, installed without
/// SA_ONSTACK: it runs on the thread's own stack, not on the small
/// alternate one.
extern "C" fn big(signo: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    chain(signo, info, ctx);
    let mut frame = [0u8; 32 * 1024];
    for (i, b) in frame.iter_mut().enumerate().step_by(512) {
        *b = i as u8;
    }
    std::hint::black_box(&mut frame);
    HANDLED.store(true, Ordering::SeqCst);
    say(b"handled\n");
}

fn bigstack(order: &str) -> Result<ExitCode> {
    with_handler(order, libc::SIGUSR1, libc::SA_RESTART, big)?;
    say(b"ready\n");
    let start = Instant::now();
    while !HANDLED.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(10));
    }
    say(b"done\n");
    Ok(ExitCode::SUCCESS)
}

/// SIGPIPE set back to the default (as command-line tools do), then
/// waits for a signal.
fn wait() -> Result<ExitCode> {
    // SAFETY: setting a default action.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    install();
    say(b"ready\n");
    std::thread::sleep(Duration::from_secs(30));
    Ok(ExitCode::from(9))
}

/// As PID 1: SIGPIPE set back to the default, then waits for a line on
/// stdin, sent after the signals: the process must still be alive.
fn pid1_stdin() -> Result<ExitCode> {
    // SAFETY: setting a default action.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    install();
    say(b"ready\n");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    tracing::info!(line = line.trim(), "still alive");
    say(b"alive\n");
    Ok(ExitCode::SUCCESS)
}

fn segv() -> Result<ExitCode> {
    install();
    // SAFETY: none; this writes through a null pointer on purpose.
    unsafe { std::ptr::write_volatile(std::ptr::null_mut::<u8>(), 1) };
    Ok(ExitCode::SUCCESS)
}

/// SIGXFSZ from the kernel: a write past a 1 MiB file-size limit.
fn xfsz() -> Result<ExitCode> {
    install();
    let path = std::env::temp_dir().join(format!("signal-child-{}.big", std::process::id()));
    let limit = libc::rlimit {
        rlim_cur: 1 << 20,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: a valid rlimit.
    unsafe { libc::setrlimit(libc::RLIMIT_FSIZE, &limit) };
    let mut file = std::fs::File::create(&path)?;
    std::fs::remove_file(&path)?;
    let chunk = vec![b'x'; 64 * 1024];
    for _ in 0..64 {
        std::io::Write::write_all(&mut file, &chunk)?;
    }
    Ok(ExitCode::from(9))
}

/// SIGPIPE left as std sets it (ignored): a write to a pipe nobody reads
/// fails with EPIPE and the process goes on.
fn epipe() -> Result<ExitCode> {
    install();
    let mut fds = [0; 2];
    // SAFETY: a valid array for pipe(2).
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    // SAFETY: closing our own read end, then writing to the write end.
    let n = unsafe {
        libc::close(fds[0]);
        libc::write(fds[1], b"x".as_ptr().cast(), 1)
    };
    if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EPIPE) {
        say(b"epipe\n");
        return Ok(ExitCode::SUCCESS);
    }
    Ok(ExitCode::from(2))
}

/// Two threads write through a null pointer at the same moment.
fn two_segv() -> Result<ExitCode> {
    install();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
    let threads: Vec<_> = (0..2)
        .map(|t| {
            let barrier = barrier.clone();
            std::thread::Builder::new()
                .name(format!("crasher-{t}"))
                .spawn(move || {
                    tracing::info!(t, "about to crash");
                    barrier.wait();
                    // SAFETY: none; a null write on purpose.
                    unsafe { std::ptr::write_volatile(std::ptr::null_mut::<u8>(), 1) };
                })
        })
        .collect::<std::io::Result<_>>()?;
    for thread in threads {
        // Ignored: the process dies before a crasher returns.
        let _ = thread.join();
    }
    Ok(ExitCode::from(9))
}

extern "C" fn slow_atexit() {
    say(b"in atexit\n");
    std::thread::sleep(Duration::from_secs(5));
}

/// `exit(3)` while an `atexit` handler (registered before or after
/// lastwords) takes its time and other threads log; the parent sends
/// SIGTERM meanwhile.
fn term_in_exit(order: &str) -> Result<ExitCode> {
    if order == "before" {
        // SAFETY: registering a valid handler.
        unsafe { libc::atexit(slow_atexit) };
    }
    install();
    if order != "before" {
        // SAFETY: as above.
        unsafe { libc::atexit(slow_atexit) };
    }
    for t in 0..2u64 {
        std::thread::spawn(move || {
            for i in 0u64.. {
                tracing::info!(t, i, "concurrent record");
                std::thread::sleep(Duration::from_micros(200));
            }
        });
    }
    std::thread::sleep(Duration::from_millis(50));
    std::process::exit(3)
}

/// Worker threads whose requests panic and are caught (a framework's
/// panic guard) while SIGTERM arrives.
fn panics_during_term() -> Result<ExitCode> {
    // Quiet: std's message for each caught panic would flood stderr.
    // Set first, so that lastwords' hook chains to it.
    std::panic::set_hook(Box::new(|_| {}));
    install();
    for t in 0..3u64 {
        std::thread::Builder::new()
            .name(format!("worker-{t}"))
            .spawn(move || {
                for i in 0u64.. {
                    let r = std::panic::catch_unwind(|| {
                        if i % 2 == 0 {
                            panic!("request {i} failed");
                        }
                    });
                    tracing::info!(t, i, failed = r.is_err(), "request served");
                }
            })?;
    }
    std::thread::sleep(Duration::from_millis(100));
    say(b"ready\n");
    std::thread::sleep(Duration::from_secs(30));
    Ok(ExitCode::from(9))
}
