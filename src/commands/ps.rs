//! `hutch ps`: the caller's containers, from their state records.

use crate::cli::PsArgs;
use crate::state::{self, Dirs, Status};

pub fn ps(args: PsArgs) -> anyhow::Result<i32> {
    let dirs = Dirs::new()?;
    let mut all = state::list(&dirs)?;
    all.sort_by_key(|s| std::cmp::Reverse(s.created));
    if !args.quiet {
        println!(
            "{:<12}  {:<30}  {:<24}  {:<16}  NAMES",
            "CONTAINER ID", "IMAGE", "COMMAND", "STATUS"
        );
    }
    for s in all {
        let alive = state::is_alive(&s);
        if !args.all && !alive {
            continue;
        }
        let short: String = s.id.chars().take(12).collect();
        if args.quiet {
            println!("{short}");
            continue;
        }
        let status = match (&s.status, alive) {
            (_, true) => "Up".to_string(),
            (Status::Exited, _) => format!("Exited ({})", s.exit_code.unwrap_or(-1)),
            (Status::Created, _) => "Created".to_string(),
            (Status::Running, false) => "Exited (unknown)".to_string(),
        };
        let command: String = format!("\"{}\"", s.command.join(" "))
            .chars()
            .take(24)
            .collect();
        let image: String = s.image.chars().take(30).collect();
        println!(
            "{short:<12}  {image:<30}  {command:<24}  {status:<16}  {}",
            s.name.as_deref().unwrap_or("")
        );
    }
    Ok(0)
}
