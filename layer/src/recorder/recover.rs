//! Recovery: the last records of a run that ended without its final record,
//! read back from its ring and made into lines for the JSONL file.
//!
//! Each record in the ring is the complete JSONL line the layer made (see
//! the [`recorder`](super) docs); recovery only inserts `"recovered":true`
//! as the line's last key, so a recovered line differs from the original by
//! that key alone. Records whose writer was interrupted are not in the
//! ring's output at all (see the ring's stamps and checksums), so nothing
//! torn is ever copied.

use super::ring::Ring;

/// Most records copied into the JSONL after a death.
pub const MAX_RECOVERED: usize = 10_000;

/// Appends to `out` the last `max` records of `ring`, oldest first, each
/// as its line with `,"recovered":true` before the closing brace. Records
/// that are not a one-line JSON object are left out. Returns how many
/// lines were made.
pub(crate) fn lines(ring: &Ring, max: usize, out: &mut Vec<u8>) -> usize {
    let mut buf = vec![0u8; ring.max_payload()];
    let mut made = 0;
    ring.last(&mut buf, max, |record| {
        if let Some(body) = object_line(record) {
            out.extend_from_slice(body);
            out.extend_from_slice(b",\"recovered\":true}\n");
            made += 1;
        }
    });
    made
}

/// `{…}\n` without its closing `}\n`, if the record is such a line.
fn object_line(record: &[u8]) -> Option<&[u8]> {
    let body = record.strip_suffix(b"}\n")?;
    (body.first() == Some(&b'{') && !body.contains(&b'\n') && body.len() > 1).then_some(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn lines_are_marked_and_in_order_and_junk_is_left_out() {
        let mut mem = vec![0u128; 4096 / 16];
        let head = AtomicU64::new(0);
        // SAFETY: 16-aligned heap memory of 4096 bytes that outlives `ring`.
        let ring = unsafe { Ring::new(mem.as_mut_ptr().cast(), 4096, &head, 5) };
        ring.push(&[b"{\"seq\":1}\n"]);
        ring.push(&[b"not json\n"]);
        ring.push(&[b"{\"a\":\"b\"", b"}\n"]);
        ring.push(&[b"{}\n"]);
        let mut out = Vec::new();
        assert_eq!(lines(&ring, 10, &mut out), 2);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"seq\":1,\"recovered\":true}\n{\"a\":\"b\",\"recovered\":true}\n"
        );
        let mut out = Vec::new();
        assert_eq!(lines(&ring, 1, &mut out), 0, "the newest record is junk");
    }
}
