//! Pull progress, as Podman shows it: on a terminal, one line per layer
//! with bytes and rate, redrawn in place while layers download in
//! parallel; otherwise one plain line per layer when it is done. `-q`
//! prints nothing. Runs in the `hutch` process during a pull only.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::images::human_size;

const WAITING: u8 = 0;
const COPYING: u8 = 1;
const DONE: u8 = 2;
const SKIPPED: u8 = 3;
const FAILED: u8 = 4;

/// How often the terminal board is redrawn.
const TICK: Duration = Duration::from_millis(150);

struct Row {
    id: String,
    total: u64,
    done: AtomicU64,
    state: AtomicU8,
    started: Mutex<Option<Instant>>,
}

/// The progress of every layer of one pull.
pub struct Board {
    rows: Vec<Row>,
    live: bool,
    quiet: bool,
    drawn: AtomicBool,
}

impl Board {
    /// `layers`: (short id, size). `live`: stderr is a terminal.
    pub fn new(layers: Vec<(String, u64)>, quiet: bool) -> Board {
        let live = !quiet && nix::unistd::isatty(2).unwrap_or(false);
        let rows = layers
            .into_iter()
            .map(|(id, total)| Row {
                id,
                total,
                done: AtomicU64::new(0),
                state: AtomicU8::new(WAITING),
                started: Mutex::new(None),
            })
            .collect();
        Board {
            rows,
            live,
            quiet,
            drawn: AtomicBool::new(false),
        }
    }

    pub fn start(&self, i: usize) {
        if let Some(r) = self.rows.get(i) {
            r.state.store(COPYING, Ordering::Relaxed);
            if let Ok(mut s) = r.started.lock() {
                *s = Some(Instant::now());
            }
        }
    }

    pub fn add(&self, i: usize, n: u64) {
        if let Some(r) = self.rows.get(i) {
            r.done.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Marks a layer finished (`ok`), skipped or failed; prints its line
    /// when the output is not live.
    pub fn finish(&self, i: usize, state: Finished) {
        let Some(r) = self.rows.get(i) else { return };
        let code = match state {
            Finished::Done => DONE,
            Finished::Skipped => SKIPPED,
            Finished::Failed => FAILED,
        };
        r.state.store(code, Ordering::Relaxed);
        if !self.live && !self.quiet && code != FAILED {
            let _ = writeln!(std::io::stderr(), "{}", line(r));
        }
    }

    /// Redraws the board every tick until `stop` is set, then once more.
    pub fn run(&self, stop: &AtomicBool) {
        if !self.live {
            return;
        }
        while !stop.load(Ordering::Relaxed) {
            self.draw();
            std::thread::sleep(TICK);
        }
        self.draw();
    }

    fn draw(&self) {
        let mut err = std::io::stderr().lock();
        if self.drawn.swap(true, Ordering::Relaxed) {
            let _ = write!(err, "\x1b[{}A", self.rows.len());
        }
        for r in &self.rows {
            let _ = writeln!(err, "\x1b[2K{}", line(r));
        }
        let _ = err.flush();
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Finished {
    Done,
    Skipped,
    Failed,
}

fn line(r: &Row) -> String {
    let done = r.done.load(Ordering::Relaxed);
    let secs = r
        .started
        .lock()
        .ok()
        .and_then(|s| *s)
        .map_or(0.0, |t| t.elapsed().as_secs_f64())
        .max(0.001);
    let rate = human_size((done as f64 / secs) as u64);
    let (size, total) = (human_size(done), human_size(r.total));
    match r.state.load(Ordering::Relaxed) {
        WAITING => format!("Copying blob {} waiting", r.id),
        COPYING => format!("Copying blob {} [{size} / {total}] {rate}/s", r.id),
        DONE => format!(
            "Copying blob {} done  {total} in {secs:.1}s ({rate}/s)",
            r.id
        ),
        SKIPPED => format!("Copying blob {} skipped: already exists", r.id),
        _ => format!("Copying blob {} failed", r.id),
    }
}

/// A writer that counts what passes through it into a board row.
pub struct Counting<'a, W> {
    pub inner: W,
    pub board: &'a Board,
    pub row: usize,
}

impl<W: Write> Write for Counting<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.board.add(self.row, n as u64);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_follow_the_state() {
        let b = Board::new(vec![("abc".into(), 2048), ("def".into(), 10)], true);
        assert_eq!(line(&b.rows[0]), "Copying blob abc waiting");
        b.start(0);
        b.add(0, 1024);
        assert!(
            line(&b.rows[0]).starts_with("Copying blob abc [1.02kB / 2.05kB]"),
            "{}",
            line(&b.rows[0])
        );
        b.finish(0, Finished::Done);
        assert!(line(&b.rows[0]).starts_with("Copying blob abc done  2.05kB in "));
        b.finish(1, Finished::Skipped);
        assert_eq!(line(&b.rows[1]), "Copying blob def skipped: already exists");
        // Out-of-range rows are ignored, not a panic.
        b.add(9, 1);
        b.finish(9, Finished::Done);
    }
}
