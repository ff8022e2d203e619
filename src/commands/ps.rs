//! `hutch ps`: the caller's containers, from their state records. A
//! record whose process is gone (reboot, supervisor killed) shows as
//! exited (state.rs, `State::effective`).

use std::time::Duration;

use serde::Serialize;

use crate::cli::PsArgs;
use crate::clock;
use crate::state::{self, Dirs, State, Status};

/// One row, as Docker's `ps --format json` names the fields.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
struct Row {
    #[serde(rename = "ID")]
    id: String,
    image: String,
    command: String,
    created_at: String,
    running_for: String,
    status: String,
    state: String,
    names: String,
}

pub fn ps(args: PsArgs) -> anyhow::Result<i32> {
    let dirs = Dirs::new()?;
    let mut all = state::list(&dirs)?;
    all.sort_by_key(|s| std::cmp::Reverse(s.created));
    let now = clock::now();
    let rows: Vec<Row> = all
        .iter()
        .filter(|s| args.all || s.effective().0 == Status::Running)
        .map(|s| row(s, now, args.no_trunc))
        .collect();
    match args.format.as_deref() {
        _ if args.quiet => rows.iter().for_each(|r| println!("{}", r.id)),
        Some("json") => {
            for r in &rows {
                println!("{}", serde_json::to_string(r)?);
            }
        }
        None | Some("table") => print!("{}", table(&rows)),
        Some(other) => anyhow::bail!("format `{other}`: expected table or json"),
    }
    Ok(0)
}

fn row(s: &State, now: Duration, no_trunc: bool) -> Row {
    let since = |t: Option<&String>| {
        t.and_then(|t| clock::parse_rfc3339(t))
            .map(|t| clock::human(now.saturating_sub(t)))
    };
    let created = Duration::from_secs(s.created);
    let (st, code) = s.effective();
    let status = match st {
        Status::Running => format!(
            "Up {}",
            since(s.started_at.as_ref()).unwrap_or_else(|| "Less than a second".into())
        ),
        Status::Created => "Created".into(),
        Status::Exited => match since(s.finished_at.as_ref()) {
            Some(ago) => format!("Exited ({}) {ago} ago", code.unwrap_or(255)),
            None => format!("Exited ({})", code.unwrap_or(255)),
        },
    };
    let command = format!("\"{}\"", s.command.join(" "));
    Row {
        id: if no_trunc {
            s.id.clone()
        } else {
            state::short_id(&s.id).to_string()
        },
        image: s.image.clone(),
        command: if no_trunc {
            command
        } else {
            truncate(&command, 20)
        },
        created_at: clock::rfc3339(created),
        running_for: format!("{} ago", clock::human(now.saturating_sub(created))),
        status,
        state: format!("{st:?}").to_lowercase(),
        names: s.name.clone().unwrap_or_default(),
    }
}

/// Docker shortens long commands to `"sh -c 'while…"`.
fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max - 1).collect();
    t.push('…');
    t
}

/// Columns as wide as their widest cell, three spaces apart, as Docker.
fn table(rows: &[Row]) -> String {
    let head = [
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "NAMES",
    ];
    let cells: Vec<[&str; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.id.as_str(),
                r.image.as_str(),
                r.command.as_str(),
                r.running_for.as_str(),
                r.status.as_str(),
                r.names.as_str(),
            ]
        })
        .collect();
    let mut width = head.map(|h| h.chars().count());
    for c in &cells {
        for (w, cell) in width.iter_mut().zip(c) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for line in std::iter::once(head).chain(cells) {
        let mut text = String::new();
        for (i, cell) in line.iter().enumerate() {
            if i + 1 == line.len() {
                text.push_str(cell);
            } else {
                let pad = width[i] - cell.chars().count() + 3;
                text.push_str(cell);
                text.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> State {
        let mut s = State::new(&"ab".repeat(32), Some("web"));
        s.image = "busybox".into();
        s.command = vec!["sh".into(), "-c".into(), "while :; do date; done".into()];
        s.created = 1000;
        s
    }

    #[test]
    fn rows_say_what_docker_says() {
        let now = Duration::from_secs(1010);
        let mut s = record();
        let r = row(&s, now, false);
        assert_eq!(r.id, "abababababab");
        assert_eq!(r.status, "Created");
        assert_eq!(r.running_for, "10 seconds ago");
        assert_eq!(r.command, "\"sh -c while :; do …");
        assert_eq!(
            row(&s, now, true).command,
            "\"sh -c while :; do date; done\""
        );
        s.status = Status::Exited;
        s.exit_code = Some(3);
        s.finished_at = Some(clock::rfc3339(Duration::from_secs(1008)));
        assert_eq!(row(&s, now, false).status, "Exited (3) 2 seconds ago");
        // "Running" whose process is gone (no start time): exited, 255.
        s.status = Status::Running;
        s.pid = Some(1);
        assert_eq!(row(&s, now, false).status, "Exited (255) 2 seconds ago");
        assert_eq!(row(&s, now, false).state, "exited");
    }

    #[test]
    fn table_pads_columns() {
        let rows = [row(&record(), Duration::from_secs(1000), false)];
        let text = table(&rows);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with("CONTAINER ID   IMAGE     COMMAND"),
            "{text}"
        );
        assert!(
            lines[1].starts_with("abababababab   busybox   \"sh -c"),
            "{text}"
        );
        assert!(lines[1].ends_with("Created   web"), "{text}");
    }
}
