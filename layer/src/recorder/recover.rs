//! Recovery: the last records of a run that ended without its final record,
//! read back from its ring and made into lines for the JSONL file.
//!
//! Each record in the ring is the complete JSONL line the layer made (see
//! the [`recorder`](super) docs); recovery copies the ones the file does
//! not have (those without `seq`) and only inserts `"recovered":true` as
//! the line's last key. Records whose writer was interrupted are not in the
//! ring's output at all (see the ring's stamps and checksums), so nothing
//! torn is ever copied.

use super::ring::Ring;

/// Longest record recovered; a record is at most the configured
/// `max_record_bytes`, far below this.
const MAX_RECORD: usize = 16 << 20;

/// Most records copied into the JSONL after a death.
pub const MAX_RECOVERED: usize = 10_000;

/// Appends to `out` the last `max` records of `ring` that the file does
/// not have, oldest first, each as its line with `,"recovered":true`
/// before the closing brace. A record that went to the file as well
/// carries its `seq` and is already there, so it is not copied again: every
/// record is in the file once. Records that are not a one-line JSON
/// object are left out. Returns how many lines were made.
pub(crate) fn lines(ring: &Ring, max: usize, out: &mut Vec<u8>) -> usize {
    // Bounded: the ring's size comes from a file another run wrote.
    let mut buf = vec![0u8; ring.max_payload().min(MAX_RECORD)];
    fn wanted(record: &[u8]) -> Option<&[u8]> {
        object_line(record).filter(|body| !has_seq(body))
    }
    // Count the wanted ones first, so that the cap keeps the newest.
    let mut total = 0usize;
    ring.scan(&mut buf, |_, record| {
        total += usize::from(wanted(record).is_some());
        true
    });
    let mut skip = total.saturating_sub(max);
    let mut made = 0;
    ring.scan(&mut buf, |_, record| {
        if let Some(body) = wanted(record) {
            if skip > 0 {
                skip -= 1;
            } else {
                out.extend_from_slice(body);
                out.extend_from_slice(b",\"recovered\":true}\n");
                made += 1;
            }
        }
        made < max
    });
    made
}

/// Whether the line has the schema's `seq`, which follows `run_id` (a user
/// field or span field called `seq` is elsewhere, or renamed).
fn has_seq(body: &[u8]) -> bool {
    const RUN_ID: &[u8] = b"\"run_id\":\"";
    let Some(at) = body.windows(RUN_ID.len()).position(|w| w == RUN_ID) else {
        return false;
    };
    let value = &body[at + RUN_ID.len()..];
    // A run_id is plain hex: its closing quote is the next one.
    let Some(end) = value.iter().position(|&b| b == b'"') else {
        return false;
    };
    value[end + 1..].starts_with(b",\"seq\":")
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
    fn only_lines_the_file_lacks_are_copied_marked_and_in_order() {
        let mut mem = vec![0u128; 4096 / 16];
        let head = AtomicU64::new(0);
        // SAFETY: 16-aligned heap memory of 4096 bytes that outlives `ring`.
        let ring = unsafe { Ring::new(mem.as_mut_ptr().cast(), 4096, &head, 5) };
        ring.push(&[b"{\"run_id\":\"ab\",\"n\":1}\n"]);
        ring.push(&[b"not json\n"]);
        ring.push(&[b"{\"run_id\":\"ab\",\"seq\":7,\"n\":2}\n"]);
        ring.push(&[b"{\"run_id\":\"ab\"", b",\"span\":{\"seq\":1}}\n"]);
        ring.push(&[b"{}\n"]);
        let mut out = Vec::new();
        assert_eq!(lines(&ring, 10, &mut out), 2);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"run_id\":\"ab\",\"n\":1,\"recovered\":true}\n\
             {\"run_id\":\"ab\",\"span\":{\"seq\":1},\"recovered\":true}\n"
        );
        let mut out = Vec::new();
        assert_eq!(lines(&ring, 1, &mut out), 1, "the cap keeps the newest");
        assert!(String::from_utf8(out).unwrap().contains("span"));
    }
}
