//! Wall-clock timestamps in the record format: RFC 3339, UTC, exactly six
//! fraction digits and a `Z`, e.g. `2026-11-25T08:02:03.123456Z`.
//!
//! Everything here is async-signal-safe: `clock_gettime(2)` is on the POSIX
//! list, and the calendar conversion is plain integer arithmetic that writes
//! into a caller-provided array, so signal handlers use the same code as the
//! ordinary record path.

/// Length of a formatted timestamp in bytes.
pub(crate) const TIMESTAMP_LEN: usize = 27;

/// A point in wall-clock time, microsecond resolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Timestamp {
    /// Seconds since the Unix epoch.
    pub(crate) secs: i64,
    /// Microseconds within the second, `0..1_000_000`.
    pub(crate) micros: u32,
}

impl Timestamp {
    /// Reads `CLOCK_REALTIME`. Async-signal-safe.
    pub(crate) fn now() -> Timestamp {
        Timestamp::from_clock(libc::CLOCK_REALTIME)
    }

    /// Reads `CLOCK_REALTIME_COARSE`: a few nanoseconds instead of a few tens,
    /// at the resolution of the kernel tick. Used where the cost matters more
    /// than the last digits (breadcrumb ring entries). Async-signal-safe.
    pub(crate) fn now_coarse() -> Timestamp {
        Timestamp::from_clock(libc::CLOCK_REALTIME_COARSE)
    }

    fn from_clock(clock: libc::clockid_t) -> Timestamp {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec. The call cannot fail for
        // these clock ids on Linux; on failure `ts` stays at the epoch, which
        // is still a well-formed timestamp.
        unsafe { libc::clock_gettime(clock, &mut ts) };
        Timestamp {
            secs: ts.tv_sec,
            micros: (ts.tv_nsec / 1_000) as u32,
        }
    }

    /// Microseconds since the Unix epoch.
    pub(crate) fn as_micros(self) -> i64 {
        self.secs * 1_000_000 + i64::from(self.micros)
    }

    /// Inverse of [`Timestamp::as_micros`].
    pub(crate) fn from_micros(micros: i64) -> Timestamp {
        Timestamp {
            secs: micros.div_euclid(1_000_000),
            micros: micros.rem_euclid(1_000_000) as u32,
        }
    }

    /// Formats as `YYYY-MM-DDTHH:MM:SS.ffffffZ`. Async-signal-safe.
    pub(crate) fn format(self) -> [u8; TIMESTAMP_LEN] {
        let days = self.secs.div_euclid(86_400);
        let sod = self.secs.rem_euclid(86_400) as u32;
        let (y, m, d) = civil_from_days(days);
        let mut out = *b"0000-00-00T00:00:00.000000Z";
        put_digits(&mut out[0..4], y.clamp(0, 9999) as u32);
        put_digits(&mut out[5..7], m);
        put_digits(&mut out[8..10], d);
        put_digits(&mut out[11..13], sod / 3600);
        put_digits(&mut out[14..16], sod / 60 % 60);
        put_digits(&mut out[17..19], sod % 60);
        put_digits(&mut out[20..26], self.micros);
        out
    }
}

/// Formats the timestamps of one thread's records, redoing the calendar
/// arithmetic (most of [`Timestamp::format`]'s cost) only when the second
/// changes: records within one second rewrite just the six fraction digits.
///
/// Not for signal handlers: one interrupting an update would read a torn
/// cache. They use [`Timestamp::format`].
pub(crate) struct FormatCache {
    secs: i64,
    text: [u8; TIMESTAMP_LEN],
}

impl FormatCache {
    /// An empty cache: the first `format` fills it.
    pub(crate) const fn new() -> FormatCache {
        FormatCache {
            secs: i64::MIN,
            text: [0; TIMESTAMP_LEN],
        }
    }

    /// `at` formatted as [`Timestamp::format`] does.
    #[inline]
    pub(crate) fn format(&mut self, at: Timestamp) -> &[u8; TIMESTAMP_LEN] {
        if at.secs == self.secs {
            // Two digits at a time from a table: three multiplications
            // instead of six divide-and-remainder steps.
            let micros = at.micros.min(999_999);
            let (high, low) = (micros / 10_000, micros % 10_000);
            let (mid, low) = (low / 100, low % 100);
            for (i, pair) in [high, mid, low].into_iter().enumerate() {
                let at = 20 + 2 * i;
                self.text[at..at + 2].copy_from_slice(&DIGIT_PAIRS[pair as usize]);
            }
        } else {
            self.text = at.format();
            self.secs = at.secs;
        }
        &self.text
    }
}

/// `"00"` to `"99"`.
pub(crate) const DIGIT_PAIRS: [[u8; 2]; 100] = {
    let mut pairs = [[0u8; 2]; 100];
    let mut i = 0;
    while i < 100 {
        pairs[i] = [b'0' + (i / 10) as u8, b'0' + (i % 10) as u8];
        i += 1;
    }
    pairs
};

/// Writes `value` as zero-padded decimal filling `out` exactly.
fn put_digits(out: &mut [u8], mut value: u32) {
    for slot in out.iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day).
/// Howard Hinnant's `civil_from_days`, valid for the whole `i64` day range we
/// can meet.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(secs: i64, micros: u32) -> String {
        String::from_utf8(Timestamp { secs, micros }.format().to_vec()).unwrap()
    }

    #[test]
    fn formats_known_instants() {
        assert_eq!(fmt(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(fmt(951_782_400, 7), "2000-02-29T00:00:00.000007Z");
        assert_eq!(fmt(1_795_593_723, 123_456), "2026-11-25T08:02:03.123456Z");
        assert_eq!(fmt(4_102_444_799, 999_999), "2099-12-31T23:59:59.999999Z");
    }

    #[test]
    fn agrees_with_day_by_day_walk() {
        // Walk forward a day at a time from the epoch for ~140 years and check
        // that the month/day sequence is the calendar's.
        let mut expect = (1970i64, 1u32, 1u32);
        for day in 0..51_000i64 {
            assert_eq!(civil_from_days(day), expect, "day {day}");
            let (y, m, d) = expect;
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let len = [
                31,
                if leap { 29 } else { 28 },
                31,
                30,
                31,
                30,
                31,
                31,
                30,
                31,
                30,
                31,
            ][m as usize - 1];
            expect = if d < len {
                (y, m, d + 1)
            } else if m < 12 {
                (y, m + 1, 1)
            } else {
                (y + 1, 1, 1)
            };
        }
    }

    #[test]
    fn the_cache_formats_as_format_does_across_seconds() {
        let mut cache = FormatCache::new();
        let start = 1_795_593_599_999_000i64; // a minute, hour and day boundary
        for step in 0..3_000 {
            for at in [start + step * 7, start - step * 333] {
                let at = Timestamp::from_micros(at);
                assert_eq!(cache.format(at), &at.format(), "{at:?}");
            }
        }
    }

    #[test]
    fn micros_round_trip() {
        for t in [0i64, 1, 999_999, 1_000_000, 1_795_593_723_123_456] {
            assert_eq!(Timestamp::from_micros(t).as_micros(), t);
        }
    }
}
