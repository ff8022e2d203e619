//! `hutch doctor`: every check of [`crate::preflight`], its result, its fix.
//!
//! ```text
//!   ok    user namespaces      enabled (max_user_namespaces=96343)
//!   warn  subuid               no range for alice in /etc/subuid; ...
//!         hint: an administrator can add a range: `sudo usermod ...`
//! ```
//!
//! Exit status 0 when `hutch run` can work on this host, 1 otherwise.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};

use anyhow::Context;

use crate::cli::DoctorArgs;
use crate::preflight::{self, Check, Report, Status};

pub fn doctor(args: DoctorArgs) -> anyhow::Result<i32> {
    let report = preflight::probe();
    let mut out = std::io::stdout().lock();
    let text = if args.json {
        let mut json = serde_json::to_string_pretty(&JsonReport::new(&report))
            .context("encode the report as JSON")?;
        json.push('\n');
        json
    } else {
        render(&report, out.is_terminal())
    };
    out.write_all(text.as_bytes())
        .context("write the report to stdout")?;
    Ok(if report.can_run() { 0 } else { 1 })
}

/// The report plus the verdict, for `--json`.
#[derive(serde::Serialize)]
struct JsonReport<'a> {
    can_run: bool,
    #[serde(flatten)]
    report: &'a Report,
}

impl<'a> JsonReport<'a> {
    fn new(report: &'a Report) -> JsonReport<'a> {
        JsonReport {
            can_run: report.can_run(),
            report,
        }
    }
}

/// One line per check, hints indented under it, then a summary line.
fn render(report: &Report, color: bool) -> String {
    let mut s = format!("hutch doctor: {} (uid {})\n", report.user, report.uid);
    for check in &report.checks {
        render_check(&mut s, check, color);
    }
    let (warn, fail, info) = (
        report.count(Status::Warn),
        report.count(Status::Fail),
        report.count(Status::Info),
    );
    let verdict = if report.can_run() {
        "hutch run can work here"
    } else {
        "hutch run cannot work here until the failures above are fixed"
    };
    let _ = writeln!(
        s,
        "\n{} checks: {fail} failed, {warn} warnings, {info} notes; {verdict}",
        report.checks.len()
    );
    s
}

fn render_check(s: &mut String, check: &Check, color: bool) {
    let (word, code) = match check.status {
        Status::Ok => ("ok", "32"),
        Status::Warn => ("warn", "33"),
        Status::Fail => ("FAIL", "31"),
        Status::Info => ("info", "36"),
    };
    let word = if color {
        format!("\x1b[{code}m{word:<6}\x1b[0m")
    } else {
        format!("{word:<6}")
    };
    let _ = writeln!(s, "  {word}{:<21}{}", check.name, check.detail);
    if let Some(hint) = &check.hint {
        let mut lines = hint.lines();
        if let Some(first) = lines.next() {
            let _ = writeln!(s, "        hint: {first}");
        }
        for line in lines {
            let _ = writeln!(s, "              {line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preflight::Facts;

    fn report(checks: Vec<Check>) -> Report {
        Report {
            user: "alice".into(),
            uid: 1000,
            checks,
            facts: Facts::default(),
        }
    }

    fn check(name: &'static str, status: Status, hint: Option<&str>) -> Check {
        Check {
            name,
            status,
            detail: "detail".into(),
            hint: hint.map(String::from),
        }
    }

    #[test]
    fn renders_columns_hints_and_summary() {
        let r = report(vec![
            check("user namespaces", Status::Ok, None),
            check("subuid", Status::Warn, Some("line one\nline two")),
        ]);
        let text = render(&r, false);
        let want = "hutch doctor: alice (uid 1000)\n\
                    \x20 ok    user namespaces      detail\n\
                    \x20 warn  subuid               detail\n\
                    \x20       hint: line one\n\
                    \x20             line two\n\
                    \n\
                    2 checks: 0 failed, 1 warnings, 0 notes; hutch run can work here\n";
        assert_eq!(text, want);
    }

    #[test]
    fn failure_flips_verdict_and_json_carries_it() -> anyhow::Result<()> {
        let r = report(vec![check("user namespaces", Status::Fail, Some("fix"))]);
        assert!(
            render(&r, false).ends_with("cannot work here until the failures above are fixed\n")
        );
        let json: serde_json::Value = serde_json::to_value(JsonReport::new(&r))?;
        assert_eq!(json["can_run"], false);
        assert_eq!(json["checks"][0]["status"], "fail");
        assert_eq!(json["checks"][0]["hint"], "fix");
        assert_eq!(json["user"], "alice");
        Ok(())
    }

    #[test]
    fn color_only_wraps_the_status_word() {
        let r = report(vec![check("cgroups", Status::Info, None)]);
        assert!(render(&r, true).contains("\x1b[36minfo  \x1b[0mcgroups"));
    }
}
