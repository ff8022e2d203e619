//! `hutch logs [-f] [--tail N] [-t]`: prints a detached container's log
//! (logfile.rs), stdout to stdout and stderr to stderr. `-f` follows it
//! until the container and its supervisor are gone. Runs in the caller's
//! process; reads only.

use std::io::{Read, Seek, SeekFrom, Write};
use std::time::Duration;

use anyhow::Context;

use crate::cli::LogsArgs;
use crate::logfile::{self, Entry, Stream};
use crate::state::{self, Container, Dirs, State, Status};

pub fn logs(args: LogsArgs) -> anyhow::Result<i32> {
    let dirs = Dirs::new()?;
    let s = state::find(&dirs, &args.container)?;
    let c = Container::open(&dirs, &s.id);
    let tail = parse_tail(args.tail.as_deref())?;
    let path = c.log_path();
    // Docker logs every run; hutch's foreground path hands the terminal
    // to the container directly, so nothing is kept: say so, not silence.
    if s.attached {
        let name = s.name.as_deref().unwrap_or(&s.id);
        eprintln!(
            "note: the last run of container `{name}` was attached (without -d): its output went to the terminal and was not logged; run with -d to keep a log"
        );
    }
    let mut file = match std::fs::File::open(&path) {
        Ok(f) => f,
        // Run in the foreground (see above) or not started yet: nothing
        // logged.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !args.follow => return Ok(0),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return follow_missing(&c, &args),
        Err(e) => return Err(e).with_context(|| format!("open `{}`", path.display())),
    };
    let mut text = String::new();
    file.read_to_string(&mut text)
        .with_context(|| format!("read `{}`", path.display()))?;
    let (complete, _partial) = split_complete(&text);
    let entries = logfile::parse(complete);
    let skip = tail.map_or(0, |n| entries.len().saturating_sub(n));
    print(&entries[skip..], args.timestamps);
    if args.follow {
        let offset = complete.len() as u64;
        follow(&c, file, offset, args.timestamps)?;
    }
    Ok(0)
}

/// `--tail all` or a count.
fn parse_tail(t: Option<&str>) -> anyhow::Result<Option<usize>> {
    match t {
        None | Some("all") => Ok(None),
        Some(n) => n
            .parse()
            .map(Some)
            .with_context(|| format!("parse --tail `{n}`: expected a number or `all`")),
    }
}

/// (complete lines, a trailing partial line still being written).
fn split_complete(text: &str) -> (&str, &str) {
    match text.rfind('\n') {
        Some(i) => text.split_at(i + 1),
        None => ("", text),
    }
}

fn print(entries: &[Entry], timestamps: bool) {
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
    for e in entries {
        let w: &mut dyn Write = match e.stream {
            Stream::Stdout => &mut out,
            Stream::Stderr => &mut err,
        };
        let _ = match timestamps {
            true => write!(w, "{} {}", e.time, e.log),
            false => w.write_all(e.log.as_bytes()),
        };
        let _ = w.flush();
    }
}

/// Whether anything may still write to the log.
fn writing(c: &Container) -> bool {
    c.load().is_ok_and(|s: State| {
        s.effective().0 == Status::Running || s.supervisor.as_ref().is_some_and(|p| p.is_alive())
    })
}

fn follow(c: &Container, mut file: std::fs::File, mut offset: u64, ts: bool) -> anyhow::Result<()> {
    let mut pending = String::new();
    loop {
        // Checked before reading, so the last read sees all output.
        let more = writing(c);
        file.seek(SeekFrom::Start(offset)).context("seek the log")?;
        let mut chunk = String::new();
        let n = file.read_to_string(&mut chunk).context("read the log")?;
        offset += n as u64;
        pending.push_str(&chunk);
        let (complete, rest) = split_complete(&pending);
        print(&logfile::parse(complete), ts);
        pending = rest.to_string();
        if !more {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `-f` on a container whose log does not exist yet (created, starting).
fn follow_missing(c: &Container, args: &LogsArgs) -> anyhow::Result<i32> {
    for _ in 0..50 {
        if let Ok(f) = std::fs::File::open(c.log_path()) {
            follow(c, f, 0, args.timestamps)?;
            return Ok(0);
        }
        if !writing(c) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_and_partial_lines() {
        assert_eq!(parse_tail(None).unwrap(), None);
        assert_eq!(parse_tail(Some("all")).unwrap(), None);
        assert_eq!(parse_tail(Some("3")).unwrap(), Some(3));
        assert!(parse_tail(Some("-1")).is_err());
        assert_eq!(split_complete("a\nb\nc"), ("a\nb\n", "c"));
        assert_eq!(split_complete("abc"), ("", "abc"));
        assert_eq!(split_complete(""), ("", ""));
    }
}
