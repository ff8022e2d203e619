//! Error reporting: exit codes, hints, and printing the chain once.

use std::fmt;

/// Docker's exit code when the runtime itself failed.
pub const EXIT_HUTCH: i32 = 125;
/// The command was found but could not be executed.
pub const EXIT_CANNOT_EXEC: i32 = 126;
/// The command was not found.
pub const EXIT_NOT_FOUND: i32 = 127;

/// An error that carries its own exit code (126/127 for exec failures).
#[derive(Debug)]
pub struct ExitCode(pub i32);

impl fmt::Display for ExitCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "exit code {}", self.0)
    }
}

impl std::error::Error for ExitCode {}

/// Adds a user-facing hint to any error.
pub fn hint<E>(err: E, text: impl Into<String>) -> anyhow::Error
where
    E: Into<anyhow::Error>,
{
    anyhow::Error::new(Hinted {
        hint: text.into(),
        inner: err.into(),
    })
}

/// An error with a hint: a link of the chain of its own (not a context
/// layer), so [`split`] can find every hint, however deep, by type.
#[derive(Debug)]
struct Hinted {
    hint: String,
    inner: anyhow::Error,
}

impl fmt::Display for Hinted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hint)
    }
}

impl std::error::Error for Hinted {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.inner.as_ref())
    }
}

/// Extension to attach a hint to a `Result`.
pub trait WithHint<T> {
    fn hint(self, text: impl Into<String>) -> anyhow::Result<T>;
}

impl<T, E: Into<anyhow::Error>> WithHint<T> for Result<T, E> {
    fn hint(self, text: impl Into<String>) -> anyhow::Result<T> {
        self.map_err(|e| hint(e, text))
    }
}

/// Adds the fix to an error that ran out of disk space or quota while
/// writing below `dir` (an unpack, a blob); other errors pass unchanged.
/// The chain itself already names ENOSPC ("No space left on device").
pub fn hint_if_full(err: anyhow::Error, dir: &std::path::Path) -> anyhow::Error {
    let full = |code: i32| code == libc::ENOSPC || code == libc::EDQUOT;
    let is_full = err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::raw_os_error)
            .is_some_and(full)
            || c.downcast_ref::<nix::errno::Errno>()
                .is_some_and(|e| full(*e as i32))
    });
    if !is_full {
        return err;
    }
    hint(
        err,
        format!(
            "free space on the filesystem of `{}` (`df -h` shows it), or keep hutch's data on a larger one by setting XDG_DATA_HOME",
            dir.display()
        ),
    )
}

/// Splits an error into its chain (outermost first, hint and exit-code
/// links left out), its hints (outermost first) and its exit code.
/// Hints are links of their own type; the exit code is a context layer,
/// which anyhow's `downcast_ref` finds anywhere in the chain.
pub fn split(err: &anyhow::Error) -> (Vec<String>, Vec<String>, i32) {
    let code = err.downcast_ref::<ExitCode>().map_or(EXIT_HUTCH, |c| c.0);
    let code_text = ExitCode(code).to_string();
    let (mut chain, mut hints) = (Vec::new(), Vec::new());
    for cause in err.chain() {
        match cause.downcast_ref::<Hinted>() {
            Some(h) => hints.push(h.hint.clone()),
            None if cause.to_string() == code_text => {}
            None => chain.push(cause.to_string()),
        }
    }
    (chain, hints, code)
}

/// Rebuilds an error reported by another process (the container init).
pub fn rebuild(chain: &[String], hints: &[String], code: i32) -> anyhow::Error {
    let mut parts = chain.iter().rev();
    let mut err = anyhow::anyhow!("{}", parts.next().map_or("unknown error", |s| s.as_str()));
    for p in parts {
        err = err.context(p.clone());
    }
    for h in hints.iter().rev() {
        err = hint(err, h.clone());
    }
    if code != EXIT_HUTCH {
        err = err.context(ExitCode(code));
    }
    err
}

/// Prints an error that did not stop the command, as `warning: ...`.
pub fn warn(err: &anyhow::Error) {
    let (chain, hints, _) = split(err);
    eprintln!("warning: {}", chain.join(": "));
    for h in hints {
        eprintln!("hint: {h}");
    }
}

/// Prints `hutch: a: b: c` and `hint: ...` once, and returns the exit code.
pub fn report(err: &anyhow::Error) -> i32 {
    let (chain, hints, code) = split(err);
    eprintln!("hutch: {}", chain.join(": "));
    for h in hints {
        eprintln!("hint: {h}");
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn a_full_disk_gets_a_hint_and_other_errors_do_not() {
        let dir = std::path::Path::new("/store");
        let full = anyhow::Error::new(std::io::Error::from_raw_os_error(libc::ENOSPC))
            .context("write file");
        let (chain, hints, _) = split(&hint_if_full(full, dir));
        assert_eq!(chain[1], "No space left on device (os error 28)");
        assert!(hints[0].contains("`/store`"), "{hints:?}");
        let quota = anyhow::Error::new(nix::errno::Errno::EDQUOT).context("create file");
        assert_eq!(split(&hint_if_full(quota, dir)).1.len(), 1);
        let other = anyhow::Error::new(nix::errno::Errno::EACCES).context("create file");
        assert!(split(&hint_if_full(other, dir)).1.is_empty());
    }

    #[test]
    fn split_finds_exit_code_and_every_hint() {
        let err = anyhow::anyhow!("not found")
            .context(ExitCode(127))
            .context("exec `foo`");
        assert_eq!(
            split(&err),
            (vec!["exec `foo`".into(), "not found".into()], vec![], 127)
        );
        // Two hints at different depths, with context layers between.
        let inner: anyhow::Result<()> = Err(anyhow::anyhow!("boom")).hint("do x");
        let outer = inner
            .context("find image")
            .hint("do y")
            .context("start container");
        let (chain, hints, code) = split(&outer.unwrap_err());
        assert_eq!(chain, ["start container", "find image", "boom"]);
        assert_eq!(hints, ["do y", "do x"]);
        assert_eq!(code, EXIT_HUTCH);
    }

    #[test]
    fn rebuild_round_trips_through_split() {
        let chain = vec!["start container".to_string(), "boom".to_string()];
        let hints = vec!["do y".to_string(), "do x".to_string()];
        let err = rebuild(&chain, &hints, 126);
        assert_eq!(split(&err), (chain, hints, 126));
    }

    #[test]
    fn root_cause_survives_a_hint() {
        let err = hint(
            anyhow::Error::new(nix::errno::Errno::EACCES).context("create"),
            "fix it",
        );
        assert_eq!(
            err.root_cause().downcast_ref::<nix::errno::Errno>(),
            Some(&nix::errno::Errno::EACCES)
        );
    }
}
