//! `hutch top`: the processes of a running container, as `ps -ef` shows
//! them (host pids and users, as `docker top` does). A process belongs to
//! the container when its /proc/PID/ns/pid is the init's pid namespace,
//! so `exec`'d processes (children of `hutch exec`, not of the init)
//! are listed too. Runs in the user's own process; reads /proc only.

use std::os::unix::fs::MetadataExt;

use anyhow::Context;

use crate::cli::TopArgs;
use crate::errors::WithHint;
use crate::state::{self, Dirs};

/// One process, from /proc/PID/stat and /proc/PID/cmdline.
#[derive(Debug, PartialEq, Eq)]
struct Proc {
    pid: u32,
    ppid: u32,
    tty_nr: u32,
    /// utime + stime, in clock ticks.
    cpu_ticks: u64,
    /// Since boot, in clock ticks.
    start_ticks: u64,
    comm: String,
}

pub fn top(args: TopArgs) -> anyhow::Result<i32> {
    let dirs = Dirs::new()?;
    let s = state::find(&dirs, &args.container)?;
    let Some(init) = s.pid.filter(|_| state::is_alive(&s)) else {
        return Err(anyhow::anyhow!(
            "list processes of container `{}`: it is not running",
            args.container
        ))
        .hint("`hutch ps -a` shows its state");
    };
    let ns = pid_namespace(init as u32)
        .with_context(|| format!("find the pid namespace of container `{}`", args.container))?;
    let clock = Clock::now()?;
    println!(
        "{:<10} {:>7} {:>7} {:>2} {:<5} {:<8} {:>8} CMD",
        "UID", "PID", "PPID", "C", "STIME", "TTY", "TIME"
    );
    for pid in proc_pids() {
        // The init may be hutch's non-dumpable reaper (--init), whose
        // namespace links we may not read: it is the container's anyway.
        if pid != init as u32 && ns_of(pid) != Some(ns) {
            continue;
        }
        let Some(p) = read_proc(pid) else { continue };
        let uid = std::fs::metadata(format!("/proc/{pid}")).map_or(0, |m| m.uid());
        println!(
            "{}",
            row(&p, &user_name(uid), &cmdline(pid, &p.comm), &clock)
        );
    }
    Ok(0)
}

/// (dev, ino) of the init's pid namespace; through its first child when
/// the init itself is not dumpable.
fn pid_namespace(init: u32) -> anyhow::Result<(u64, u64)> {
    if let Some(ns) = ns_of(init) {
        return Ok(ns);
    }
    let children = std::fs::read_to_string(format!("/proc/{init}/task/{init}/children"))
        .with_context(|| format!("read the children of process {init}"))?;
    children
        .split_whitespace()
        .filter_map(|c| c.parse().ok())
        .find_map(ns_of)
        .context("read `/proc/PID/ns/pid` of the init or its children")
}

fn ns_of(pid: u32) -> Option<(u64, u64)> {
    std::fs::metadata(format!("/proc/{pid}/ns/pid"))
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

fn proc_pids() -> Vec<u32> {
    let mut pids: Vec<u32> = std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    pids.sort_unstable();
    pids
}

fn read_proc(pid: u32) -> Option<Proc> {
    parse_stat(
        pid,
        &std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?,
    )
}

/// Parses /proc/PID/stat (proc(5)); the command name may hold `)`.
fn parse_stat(pid: u32, stat: &str) -> Option<Proc> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_string();
    let f: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
    Some(Proc {
        pid,
        ppid: num(1)? as u32,
        tty_nr: num(4)? as u32,
        cpu_ticks: num(11)? + num(12)?,
        start_ticks: num(19)?,
        comm,
    })
}

fn cmdline(pid: u32, comm: &str) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let args: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    if args.is_empty() {
        format!("[{comm}]")
    } else {
        args.join(" ")
    }
}

fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map_or_else(|| uid.to_string(), |u| u.name)
}

/// What turns clock ticks into times: ticks per second, boot time and now.
struct Clock {
    hz: u64,
    boot: u64,
    now: u64,
}

impl Clock {
    fn now() -> anyhow::Result<Clock> {
        let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .map_or(100, |v| v.max(1) as u64);
        let stat = std::fs::read_to_string("/proc/stat").context("read `/proc/stat`")?;
        let boot = stat
            .lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse().ok())
            .context("read the boot time from `/proc/stat`")?;
        Ok(Clock {
            hz,
            boot,
            now: state::now(),
        })
    }
}

fn row(p: &Proc, user: &str, cmd: &str, clock: &Clock) -> String {
    let started = clock.boot + p.start_ticks / clock.hz;
    let elapsed = clock.now.saturating_sub(started).max(1);
    let cpu_secs = p.cpu_ticks / clock.hz;
    let c = (p.cpu_ticks * 100 / clock.hz / elapsed).min(99);
    format!(
        "{:<10} {:>7} {:>7} {:>2} {:<5} {:<8} {:>8} {}",
        user,
        p.pid,
        p.ppid,
        c,
        stime(started, clock.now),
        tty_name(p.tty_nr),
        cpu_time(cpu_secs),
        cmd
    )
}

/// `ps`'s TIME: [DD-]HH:MM:SS.
fn cpu_time(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}-{h:02}:{m:02}:{s:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}")
    }
}

/// `ps`'s STIME (in UTC): HH:MM within a day, else MonDD.
fn stime(started: u64, now: u64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    if now.saturating_sub(started) < 86400 {
        return format!("{:02}:{:02}", started / 3600 % 24, started / 60 % 60);
    }
    let (_, month, day) = civil_from_days((started / 86400) as i64);
    format!("{}{day:02}", MONTHS[(month - 1) as usize % 12])
}

/// (year, month 1-12, day 1-31) of a day count since 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The terminal of a tty_nr (proc(5)): pts/N, ttyN, or `?`.
fn tty_name(tty_nr: u32) -> String {
    let major = (tty_nr >> 8) & 0xfff;
    let minor = (tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00);
    match major {
        0 => "?".into(),
        136..=143 => format!("pts/{}", (major - 136) * 256 + minor),
        4 if minor < 64 => format!("tty{minor}"),
        _ => format!("{major}:{minor}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_parse_with_hostile_names() {
        let stat = "42 (a) b (c) S 7 42 42 34817 42 4194560 100 0 0 0 250 50 0 0 20 0 1 0 12345 \
                    1000 100 18446744073709551615";
        let p = parse_stat(42, stat).unwrap();
        assert_eq!(
            p,
            Proc {
                pid: 42,
                ppid: 7,
                tty_nr: 34817,
                cpu_ticks: 300,
                start_ticks: 12345,
                comm: "a) b (c".into()
            }
        );
        assert_eq!(parse_stat(1, "1 (x) S"), None);
        assert_eq!(parse_stat(1, ""), None);
    }

    #[test]
    fn times_and_terminals_read_like_ps() {
        let cases = [
            (0, "00:00:00"),
            (61, "00:01:01"),
            (3600 * 25 + 5, "1-01:00:05"),
        ];
        for (secs, want) in cases {
            assert_eq!(cpu_time(secs), want);
        }
        // 2026-12-02 06:30 UTC, seen the same day and 3 days later.
        let t = 1_796_193_000;
        assert_eq!(stime(t, t + 60), "06:30");
        assert_eq!(stime(t, t + 3 * 86400), "Dec02");
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        for (nr, want) in [
            (0, "?"),
            (34817, "pts/1"),
            (1025, "tty1"),
            (0x8800 + 300 % 256 + ((300 / 256) << 20), "pts/300"),
        ] {
            assert_eq!(tty_name(nr), want, "{nr}");
        }
    }
}
