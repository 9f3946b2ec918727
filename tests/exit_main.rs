//! An annotated `main` that installs the subscriber itself still gets its
//! `fn_exit`: its guard starts before anything listens. (A test binary of
//! its own: it sets the global subscriber.)

use std::sync::Mutex;

use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

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
