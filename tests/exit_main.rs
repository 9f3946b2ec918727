//! An annotated `main` that installs the subscriber itself still gets its
//! `fn_exit`: its guard starts before anything listens; and a fn whose tail
//! is `process::exit` records its exit before the process ends (run as a
//! child: this test binary again, marked by `EXIT_MAIN_CHILD`). A test
//! binary of its own: it sets the global subscriber.

use std::sync::Mutex;

use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

static MESSAGES: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Keeps the `message` of every `fn_exit`.
struct Exits;

impl<S: Subscriber> Layer<S> for Exits {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        struct Message(Option<String>);
        impl tracing::field::Visit for Message {
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                if field.name() == "message" {
                    self.0 = Some(value.to_owned());
                }
            }
            fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
        }
        if event.metadata().name() == "lastwords::fn_exit" {
            let mut message = Message(None);
            event.record(&mut message);
            if let Some(message) = &message.0 {
                eprintln!("fn_exit: {message}");
            }
            MESSAGES.lock().unwrap().extend(message.0);
        }
    }
}

mod app {
    /// Stands for a binary's `main`, which installs the subscriber first.
    #[lastwords::exit_path]
    pub fn main() {
        tracing_subscriber::registry().with(super::Exits).init();
    }

    use tracing_subscriber::prelude::*;

    /// Ends the process from its tail.
    #[lastwords::exit_path]
    pub fn quit(code: i32) -> u32 {
        std::process::exit(code)
    }
}

#[test]
fn main_installing_the_subscriber_gets_its_fn_exit() {
    app::main();
    let messages = MESSAGES.lock().unwrap();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert!(
        messages[0].starts_with("exit_main::app::main left via its tail"),
        "{messages:?}"
    );
}

#[test]
fn a_tail_process_exit_is_recorded_before_the_process_ends() {
    if std::env::var_os("EXIT_MAIN_CHILD").is_some() {
        tracing_subscriber::registry().with(Exits).init();
        app::quit(3);
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_tail_process_exit_is_recorded_before_the_process_ends",
            "--nocapture",
        ])
        .env("EXIT_MAIN_CHILD", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("fn_exit: exit_main::app::quit left via its tail"),
        "{stderr}"
    );
}
