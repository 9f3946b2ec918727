//! The child process of the crash tests (`tests/crash.rs`): installs
//! lastwords, logs numbered records, leaves breadcrumbs, then ends the way
//! its first argument names. Not meant to be run by hand, but you can:
//!
//! ```text
//! LASTWORDS_PATH=/tmp/c.jsonl cargo run --example crash_child -- segv
//! ```
//!
//! Environment: `LASTWORDS_PATH` (the file), `CRASH_RECORDS` (how many
//! numbered records to log first, default 100), `CRASH_NO_LASTWORDS=1`
//! (do not install lastwords: the baseline the tests compare the exit
//! status with), `CRASH_TERMINATION_LOG` (see the termination log block at
//! the end).

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// A breadcrumb in the ring and as a record: what `lastwords::crumb!`
/// expands to, spelled out so these tests do not depend on the macro crate.
macro_rules! leave_crumb {
    ($name:literal) => {{
        static SITE: lastwords::__private::CrumbSite = lastwords::__private::CrumbSite {
            name: $name,
            file: file!(),
            line: line!(),
        };
        lastwords::__private::push_crumb(&SITE);
        tracing::info!(name: "lastwords::breadcrumb", file = file!(), line = line!(), $name);
    }};
}

fn main() -> Result<ExitCode> {
    let scenario = std::env::args().nth(1).unwrap_or_else(|| "ok".into());
    let records: u64 = std::env::var("CRASH_RECORDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100);
    if scenario == "tokio_term_before" {
        // The application's tokio handler is registered before lastwords.
        return tokio_term(records, false);
    }
    install();
    leave_crumb!("installed");
    log_records(records);
    leave_crumb!("logged");
    match scenario.as_str() {
        "ok" => Ok(ExitCode::SUCCESS),
        "err" => Err("the service gave up".into()),
        "exitcode3" => Ok(ExitCode::from(3)),
        "exit7" => std::process::exit(7),
        "lastwords_exit" => lastwords::exit(5),
        "exit_thread" => exit_from_thread(),
        "panic_main" => panic!("boom in main"),
        "panic_thread" => {
            let joined = std::thread::Builder::new()
                .name("worker".into())
                .spawn(|| panic!("boom in a thread"))?
                .join();
            tracing::info!(failed = joined.is_err(), "worker joined");
            Ok(ExitCode::SUCCESS)
        }
        "panic_tokio" => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("task-worker")
                .build()?;
            let joined =
                rt.block_on(async { tokio::spawn(async { panic!("boom in a task") }).await });
            tracing::info!(failed = joined.is_err(), "task joined");
            Ok(ExitCode::SUCCESS)
        }
        "double_panic" => {
            struct PanicOnDrop;
            impl Drop for PanicOnDrop {
                fn drop(&mut self) {
                    panic!("second panic, while unwinding");
                }
            }
            let _bomb = PanicOnDrop;
            panic!("first panic");
        }
        "abort" => std::process::abort(),
        "segv" => {
            // SAFETY: none; this writes through a null pointer on purpose.
            unsafe { std::ptr::write_volatile(std::ptr::null_mut::<u8>(), 1) };
            Ok(ExitCode::SUCCESS)
        }
        "sigbus" => read_past_the_end_of_a_file(),
        "sigill" => illegal_instruction(),
        "sigfpe" => divide_by_zero(),
        "stack_overflow" => {
            let depth = recurse(0);
            println!("{depth}");
            Ok(ExitCode::SUCCESS)
        }
        "stack_overflow_thread" => {
            let depth = std::thread::Builder::new()
                .name("deep".into())
                .spawn(|| recurse(0))?
                .join();
            println!("{depth:?}");
            Ok(ExitCode::SUCCESS)
        }
        "wait" => wait_for_signal(),
        "term_self" => term_self(),
        "threads" => many_threads(),
        "tokio_term_after" => tokio_term(0, true),
        "tokio_ctrl_c" => tokio_ctrl_c(),
        "devfull" => {
            let dropped = lastwords::Lastwords::current().map_or(0, |l| l.dropped_records());
            println!("dropped_records={dropped}");
            Ok(ExitCode::SUCCESS)
        }
        other => Err(format!("unknown scenario {other}").into()),
    }
}

fn install() {
    if std::env::var_os("CRASH_NO_LASTWORDS").is_some() {
        return;
    }
    with_termination_log(lastwords::init())
        .install()
        .expect("lastwords");
    // A second call is a no-op: the tests see one record per death.
    lastwords::install_hooks().expect("install_hooks is idempotent");
    termination_log_unexpected_exit();
}

fn log_records(n: u64) {
    for i in 0..n {
        tracing::info!(n = i, "record {i}");
    }
}

/// 8 threads × 50,000 records, all at once.
fn many_threads() -> Result<ExitCode> {
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..50_000u64 {
                    tracing::info!(
                        t,
                        i,
                        text = "line \"quoted\"\nand broken",
                        "threaded record"
                    );
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().map_err(|_| "a logging thread panicked")?;
    }
    Ok(ExitCode::SUCCESS)
}

fn ready() {
    let mut out = std::io::stdout().lock();
    // Ignored: the parent waits for this line; if it cannot read it, it
    // times out and says so.
    let _ = out.write_all(b"ready\n").and_then(|()| out.flush());
}

fn wait_for_signal() -> Result<ExitCode> {
    ready();
    std::thread::sleep(Duration::from_secs(30));
    tracing::error!("no signal came");
    Ok(ExitCode::from(9))
}

/// SIGTERM sent to itself, as a container's init does when its own
/// shutdown logic decides to stop. As PID 1 a signal the process sends
/// itself is delivered only because a handler is installed.
fn term_self() -> Result<ExitCode> {
    // SAFETY: kill(2) to our own pid.
    if unsafe { libc::kill(libc::getpid(), libc::SIGTERM) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    // A handled SIGTERM sent to oneself runs before kill returns; reaching
    // this line means nothing ended the process.
    tracing::error!("SIGTERM did not end the process");
    Ok(ExitCode::from(9))
}

/// `process::exit(7)` from one thread while four others log.
fn exit_from_thread() -> Result<ExitCode> {
    for t in 0..4 {
        std::thread::Builder::new()
            .name(format!("logger-{t}"))
            .spawn(move || {
                for i in 0u64.. {
                    tracing::info!(t, i, "concurrent record");
                }
            })?;
    }
    std::thread::Builder::new()
        .name("exiter".into())
        .spawn(|| {
            std::thread::sleep(Duration::from_millis(50));
            std::process::exit(7);
        })?;
    std::thread::sleep(Duration::from_secs(30));
    Ok(ExitCode::from(9))
}

/// Graceful shutdown on SIGTERM through tokio; `lastwords_first` says which
/// handler is registered first.
fn tokio_term(records: u64, lastwords_first: bool) -> Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        if !lastwords_first {
            install();
            leave_crumb!("installed after tokio");
            log_records(records);
        }
        ready();
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::time::sleep(Duration::from_secs(30)) => {
                return Ok(ExitCode::from(9));
            }
        }
        leave_crumb!("graceful shutdown");
        tracing::info!("graceful shutdown");
        Ok(ExitCode::SUCCESS)
    })
}

/// Graceful shutdown on SIGINT through `tokio::signal::ctrl_c`, registered
/// after lastwords.
fn tokio_ctrl_c() -> Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::pin!(ctrl_c);
        // Poll once so the handler is registered before "ready".
        tokio::select! {
            biased;
            r = &mut ctrl_c => { r?; return Ok(ExitCode::from(8)); }
            _ = std::future::ready(()) => {}
        }
        ready();
        tokio::select! {
            r = &mut ctrl_c => r?,
            _ = tokio::time::sleep(Duration::from_secs(30)) => {
                return Ok(ExitCode::from(9));
            }
        }
        tracing::info!("graceful shutdown");
        Ok(ExitCode::SUCCESS)
    })
}

/// SIGBUS from the CPU: a shared mapping of an empty file, read. The
/// kernel has no page of the file to map in, so the load faults with
/// `BUS_ADRERR`.
fn read_past_the_end_of_a_file() -> Result<ExitCode> {
    let path = std::env::temp_dir().join(format!("crash-child-{}.empty", std::process::id()));
    // Opened for reading: a shared mapping needs a readable descriptor.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)?;
    // SAFETY: sysconf has no preconditions.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })?;
    // SAFETY: a fresh shared read-only mapping of an open file; checked
    // below.
    let mem = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            page,
            libc::PROT_READ,
            libc::MAP_SHARED,
            std::os::fd::AsRawFd::as_raw_fd(&file),
            0,
        )
    };
    // The mapping keeps the file alive; remove it now so no run leaves
    // one behind.
    std::fs::remove_file(&path)?;
    if mem == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error().into());
    }
    // SAFETY: none; the page is mapped but beyond the end of the file, so
    // this read raises SIGBUS on purpose.
    let byte = unsafe { std::ptr::read_volatile(mem.cast::<u8>()) };
    println!("{byte}");
    Ok(ExitCode::SUCCESS)
}

/// SIGILL from the CPU: an instruction defined to be undefined.
fn illegal_instruction() -> Result<ExitCode> {
    // SAFETY: none; this raises SIGILL on purpose.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        std::arch::asm!("ud2", options(nomem, nostack));
    }
    // SAFETY: as above.
    #[cfg(target_arch = "aarch64")]
    unsafe {
        std::arch::asm!("udf #0", options(nomem, nostack));
    }
    Err("sigill: no undefined instruction for this architecture".into())
}

/// SIGFPE from the CPU: an integer division by zero. Rust checks `/` for a
/// zero divisor and panics, so the division is written in assembly. Only
/// x86 traps on it (aarch64 returns 0).
fn divide_by_zero() -> Result<ExitCode> {
    #[cfg(target_arch = "x86_64")]
    {
        let divisor: u32 = std::hint::black_box(0);
        // SAFETY: none; `div` by zero raises SIGFPE on purpose.
        unsafe {
            std::arch::asm!(
                "div {d:e}",
                d = in(reg) divisor,
                inout("eax") 1u32 => _,
                inout("edx") 0u32 => _,
                options(nomem, nostack),
            );
        }
    }
    Err("sigfpe: no trapping integer division on this architecture".into())
}

fn recurse(depth: u64) -> u64 {
    let mut frame = [0u8; 4096];
    frame[depth as usize % 4096] = 1;
    std::hint::black_box(&mut frame);
    if depth == u64::MAX {
        return depth;
    }
    recurse(depth + 1) + u64::from(frame[0])
}

// --- Kubernetes' termination message (tests/termination_log.rs) ---
//
// `CRASH_TERMINATION_LOG=<path>` makes the child write its termination
// message to <path> (`off`: `.termination_log(None)`), and take one
// `#[exit_path(unexpected)]` exit right after install, so the message has
// an unexpected exit site to name.

fn with_termination_log(builder: lastwords::Builder) -> lastwords::Builder {
    match std::env::var_os("CRASH_TERMINATION_LOG") {
        Some(path) if path == "off" => builder.termination_log(None),
        Some(path) => builder.termination_log(std::path::PathBuf::from(path)),
        None => builder,
    }
}

fn termination_log_unexpected_exit() {
    if std::env::var_os("CRASH_TERMINATION_LOG").is_none() {
        return;
    }
    // Ignored: the error is what the termination message must name.
    let _ = watch_upstream();
    leave_crumb!("upstream watcher ended");
}

#[lastwords::exit_path(unexpected)]
fn watch_upstream() -> std::io::Result<()> {
    Err(std::io::Error::other("upstream closed the stream"))
}
