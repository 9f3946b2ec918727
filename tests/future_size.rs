//! An annotated async fn's future is at most 16 bytes larger than the
//! same fn's without the attribute.

#![deny(warnings)]

macro_rules! both {
    ($($item:item)*) => {
        mod annotated {
            #![allow(dead_code)]
            use super::*;
            $(#[lastwords::exit_path] $item)*
        }
        mod plain {
            #![allow(dead_code)]
            use super::*;
            $($item)*
        }
    };
}

macro_rules! bail {
    ($msg:expr) => {
        return Err(String::from($msg))
    };
}

async fn tick() {
    tokio::task::yield_now().await;
}

both! {
    pub async fn small(n: u32) -> u32 {
        tick().await;
        n + 1
    }

    pub async fn big(buf: [u8; 256], fail: bool) -> Result<usize, String> {
        tick().await;
        if fail {
            return Err("failed".into());
        }
        Ok(buf.len())
    }

    pub async fn hidden(v: Vec<u32>) -> Result<usize, String> {
        tick().await;
        if v.is_empty() {
            bail!("empty");
        }
        Ok(v.len())
    }

    pub async fn select_hidden(buf: [u8; 64], fail: bool) -> Result<usize, String> {
        tokio::select! {
            () = tick() => {
                if fail {
                    return Err("failed".into());
                }
            }
        }
        Ok(buf.len())
    }

    /// A `?` in a `while let` scrutinee: its temporaries live through the
    /// body's `.await`s.
    pub async fn lines(mut rx: tokio::sync::mpsc::Receiver<Result<String, String>>) -> Result<usize, String> {
        let mut n = 0;
        while let Some(line) = rx.recv().await.transpose()? {
            tick().await;
            n += line.len();
        }
        Ok(n)
    }
}

/// The same items under an attribute, with `#[exit_path]` below it and
/// without.
macro_rules! both_under {
    (#[$outer:meta] $($item:item)*) => {
        pub mod annotated {
            $(#[$outer] #[lastwords::exit_path] $item)*
        }
        pub mod plain {
            $(#[$outer] $item)*
        }
    };
}

/// `#[tracing::instrument]` above `#[exit_path]`: the body lastwords
/// adopts from instrument's output is polled where it was, and the call
/// starts there.
mod instrumented {
    both_under! {
        #[tracing::instrument(skip(buf))]
        pub async fn plain_span(buf: [u8; 64], n: u32) -> Result<usize, String> {
            super::super::tick().await;
            if n == 0 {
                return Err("zero".into());
            }
            Ok(buf.len())
        }
    }
}

/// The same with `err`: instrument's body awaits the user's in a `match`.
mod instrumented_err {
    both_under! {
        #[tracing::instrument(err, skip(buf))]
        pub async fn with_err(buf: [u8; 64], n: u32) -> Result<usize, String> {
            super::super::tick().await;
            if n == 0 {
                return Err("zero".into());
            }
            Ok(buf.len())
        }
    }
}

/// The futures stay `Send` (tokio::spawn requires it), as without the
/// attribute.
#[test]
fn futures_stay_send() {
    fn send<F: std::future::Future + Send>(_: &F) {}
    let (_tx, rx) = tokio::sync::mpsc::channel(1);
    send(&annotated::lines(rx));
    send(&annotated::big([0; 256], true));
    send(&annotated::hidden(vec![]));
    send(&annotated::select_hidden([0; 64], true));
    send(&instrumented_err::annotated::with_err([0; 64], 1));
}

#[test]
fn futures_grow_by_at_most_16_bytes() {
    let sizes = [
        (
            "small",
            size_of_val(&annotated::small(1)),
            size_of_val(&plain::small(1)),
        ),
        (
            "big",
            size_of_val(&annotated::big([0; 256], false)),
            size_of_val(&plain::big([0; 256], false)),
        ),
        (
            "hidden",
            size_of_val(&annotated::hidden(vec![])),
            size_of_val(&plain::hidden(vec![])),
        ),
        (
            "select_hidden",
            size_of_val(&annotated::select_hidden([0; 64], true)),
            size_of_val(&plain::select_hidden([0; 64], true)),
        ),
        (
            "instrumented",
            size_of_val(&instrumented::annotated::plain_span([0; 64], 1)),
            size_of_val(&instrumented::plain::plain_span([0; 64], 1)),
        ),
        (
            "instrumented_err",
            size_of_val(&instrumented_err::annotated::with_err([0; 64], 1)),
            size_of_val(&instrumented_err::plain::with_err([0; 64], 1)),
        ),
        (
            "lines",
            size_of_val(&annotated::lines(tokio::sync::mpsc::channel(1).1)),
            size_of_val(&plain::lines(tokio::sync::mpsc::channel(1).1)),
        ),
    ];
    eprintln!("(name, annotated, plain): {sizes:?}");
    for (name, with, without) in sizes {
        assert!(
            with <= without + 16,
            "{name}: {with} bytes annotated, {without} plain: {sizes:?}"
        );
    }
}
