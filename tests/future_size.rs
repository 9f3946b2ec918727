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
    ];
    for (name, with, without) in sizes {
        assert!(
            with <= without + 16,
            "{name}: {with} bytes annotated, {without} plain: {sizes:?}"
        );
    }
}
