//! A floor under the speed of every body read from a registry, as curl's
//! `--speed-limit`/`--speed-time`.
//!
//! ureq bounds each read by `HUTCH_REGISTRY_TIMEOUT`, which stops a
//! registry that falls silent but not one that trickles: a byte sent just
//! before every read timeout would keep a pull alive forever.
//! [`SpeedFloor`] wraps a body and fails the read that closes a window of
//! that same length in which fewer than [`FLOOR`] bytes arrived. Runs in
//! the `hutch` process, on the thread that pulls.

use std::fmt;
use std::io::{self, Read};
use std::time::{Duration, Instant};

use crate::errors::hint;

/// Bytes a registry must send in each window (one `HUTCH_REGISTRY_TIMEOUT`
/// long) to keep a body going. 1 KiB is less than one full TCP segment
/// (about 1.4 KiB on Ethernet) per window, 17 bytes a second at the
/// default 60 s: any link that moves at all moves that much, so an honest
/// slow link is never cut, while a registry feeding a byte per read
/// timeout, a few bytes per window, is.
pub(crate) const FLOOR: u64 = 1024;

/// A reader failing with [`TooSlow`] (as an `io::Error` of kind
/// `TimedOut`) when a window of `window` ends with under [`FLOOR`] bytes.
/// The windows follow one another from the wrapping on; a read that ends
/// the body (0 bytes) is never failed.
pub(crate) struct SpeedFloor<R, C = fn() -> Instant> {
    inner: R,
    clock: C,
    window: Duration,
    start: Instant,
    got: u64,
}

impl<R: Read> SpeedFloor<R> {
    pub(crate) fn new(inner: R, window: Duration) -> Self {
        SpeedFloor::with_clock(inner, window, Instant::now)
    }
}

impl<R: Read, C: FnMut() -> Instant> SpeedFloor<R, C> {
    /// As [`SpeedFloor::new`], telling time by `clock` (a fake one in tests).
    pub(crate) fn with_clock(inner: R, window: Duration, mut clock: C) -> Self {
        let start = clock();
        SpeedFloor {
            inner,
            clock,
            window,
            start,
            got: 0,
        }
    }
}

impl<R: Read, C: FnMut() -> Instant> Read for SpeedFloor<R, C> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 {
            return Ok(0);
        }
        self.got = self
            .got
            .saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
        let now = (self.clock)();
        if now.saturating_duration_since(self.start) < self.window {
            return Ok(n);
        }
        if self.got < FLOOR {
            // The bytes of this read are dropped with the error: the
            // caller never saw them, so a resume asks for them again.
            let slow = TooSlow {
                got: self.got,
                window: self.window,
            };
            return Err(io::Error::new(io::ErrorKind::TimedOut, slow));
        }
        self.start = now;
        self.got = 0;
        Ok(n)
    }
}

/// A registry sent fewer than [`FLOOR`] bytes in a whole window.
#[derive(Debug)]
pub(crate) struct TooSlow {
    got: u64,
    window: Duration,
}

impl fmt::Display for TooSlow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the registry is too slow: it sent {} bytes in the last {} s, under the floor of {FLOOR} bytes",
            self.got,
            self.window.as_secs()
        )
    }
}

impl std::error::Error for TooSlow {}

/// The hint for a [`TooSlow`] error.
pub(crate) const HINT: &str = "if the link is just slow, raise HUTCH_REGISTRY_TIMEOUT \
     (seconds, default 60): the registry must send 1 KiB in that many seconds";

/// `e` as an error, with [`HINT`] when it is a [`TooSlow`].
pub(crate) fn explain(e: io::Error) -> anyhow::Error {
    if is_too_slow(&e) {
        return hint(e, HINT);
    }
    anyhow::Error::new(e)
}

pub(crate) fn is_too_slow(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<TooSlow>())
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;

    use super::*;

    /// Moves the shared clock by `step` at every read, then returns
    /// `chunk` bytes, for `reads` reads; then the end of the body.
    struct Slow {
        now: Rc<Cell<Instant>>,
        step: Duration,
        chunk: usize,
        reads: usize,
    }

    impl Read for Slow {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.now.set(self.now.get() + self.step);
            if self.reads == 0 {
                return Ok(0);
            }
            self.reads -= 1;
            let n = self.chunk.min(buf.len());
            buf.iter_mut().take(n).for_each(|b| *b = b'x');
            Ok(n)
        }
    }

    /// Reads all of a body of `reads` reads of `chunk` bytes each `step`
    /// through a 2 s window: the bytes read, or the error.
    fn drain(step_ms: u64, chunk: usize, reads: usize) -> Result<usize, io::Error> {
        let now = Rc::new(Cell::new(Instant::now()));
        let slow = Slow {
            now: now.clone(),
            step: Duration::from_millis(step_ms),
            chunk,
            reads,
        };
        let clock = move || now.get();
        let mut r = SpeedFloor::with_clock(slow, Duration::from_secs(2), clock);
        let (mut buf, mut total) = (vec![0u8; 64 * 1024], 0);
        loop {
            match r.read(&mut buf)? {
                0 => return Ok(total),
                n => total += n,
            }
        }
    }

    #[test]
    fn a_trickle_fails_once_a_window_ends_under_the_floor() {
        // A byte every 0.3 s: 7 bytes when the first window ends at 2.1 s.
        let e = drain(300, 1, 1000).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(is_too_slow(&e));
        let text = e.to_string();
        assert!(text.contains("sent 7 bytes in the last 2 s"), "{text}");
        // A byte just before each 2 s read timeout: caught at the second.
        let e = drain(1999, 1, 1000).unwrap_err();
        assert!(e.to_string().contains("sent 2 bytes"), "{e}");
        // Just under the floor per window.
        let e = drain(1000, 511, 1000).unwrap_err();
        assert!(e.to_string().contains("sent 1022 bytes"), "{e}");
    }

    #[test]
    fn a_slow_but_steady_body_and_a_short_one_pass() {
        // 4 KiB/s for 40 windows, the floor exactly, and a bulk read.
        assert_eq!(drain(250, 1024, 320).unwrap(), 320 * 1024);
        assert_eq!(drain(1000, 512, 100).unwrap(), 512 * 100);
        assert_eq!(drain(0, 64 * 1024, 16).unwrap(), 1024 * 1024);
        // A body that ends before its first window is over.
        assert_eq!(drain(100, 1, 10).unwrap(), 10);
        // The end of a body is never an error, however late: a byte at
        // 1.9 s, the end at 3.8 s.
        assert_eq!(drain(1900, 1, 1).unwrap(), 1);
        assert_eq!(drain(5000, 1, 0).unwrap(), 0);
    }

    #[test]
    fn only_too_slow_gets_the_hint() {
        let e = drain(300, 1, 1000).unwrap_err();
        let (_, hints, _) = crate::errors::split(&explain(e));
        assert_eq!(hints, [HINT]);
        let e = io::Error::new(io::ErrorKind::TimedOut, "stalled");
        assert!(!is_too_slow(&e));
        assert!(crate::errors::split(&explain(e)).1.is_empty());
    }
}
