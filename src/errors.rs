//! Error reporting: exit codes, hints, and printing the chain once.

use std::fmt;

/// Docker's exit code when the runtime itself failed.
pub const EXIT_HUTCH: i32 = 125;
/// The command was found but could not be executed.
pub const EXIT_CANNOT_EXEC: i32 = 126;
/// The command was not found.
pub const EXIT_NOT_FOUND: i32 = 127;

/// A hint attached to an error chain: what the user can do about it.
/// Attach with `.context(Hint("..."))` at the place that knows the fix,
/// or wrap with [`hint`].
#[derive(Debug)]
pub struct Hint(pub String);

impl fmt::Display for Hint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Hint {}

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
    let err: anyhow::Error = err.into();
    err.context(HintLayer(text.into()))
}

/// Wrapper so a hint does not print as a context line of its own.
#[derive(Debug)]
struct HintLayer(String);

impl fmt::Display for HintLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HintLayer {}

/// Extension to attach a hint to a `Result`.
pub trait WithHint<T> {
    fn hint(self, text: impl Into<String>) -> anyhow::Result<T>;
    fn with_hint<F: FnOnce() -> String>(self, f: F) -> anyhow::Result<T>;
}

impl<T, E: Into<anyhow::Error>> WithHint<T> for Result<T, E> {
    fn hint(self, text: impl Into<String>) -> anyhow::Result<T> {
        self.map_err(|e| hint(e, text))
    }
    fn with_hint<F: FnOnce() -> String>(self, f: F) -> anyhow::Result<T> {
        self.map_err(|e| hint(e, f()))
    }
}

/// Prints `hutch: a: b: c` and `hint: ...` once, and returns the exit code.
pub fn report(err: &anyhow::Error) -> i32 {
    let mut code = EXIT_HUTCH;
    let mut hints = Vec::new();
    let mut parts = Vec::new();
    for cause in err.chain() {
        if let Some(h) = cause.downcast_ref::<HintLayer>() {
            hints.push(h.0.clone());
        } else if let Some(c) = cause.downcast_ref::<ExitCode>() {
            code = c.0;
        } else {
            parts.push(cause.to_string());
        }
    }
    eprintln!("hutch: {}", parts.join(": "));
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
    fn report_picks_exit_code_and_keeps_hint_out_of_chain() {
        let err = anyhow::anyhow!("not found")
            .context(ExitCode(127))
            .context("exec `foo`");
        assert_eq!(report(&err), 127);
        let err: anyhow::Result<()> = Err(anyhow::anyhow!("boom")).hint("do x");
        let err = err.context("start container").unwrap_err();
        assert_eq!(report(&err), EXIT_HUTCH);
        let shown: Vec<String> = err.chain().map(|c| c.to_string()).collect();
        assert_eq!(shown, ["start container", "do x", "boom"]);
    }
}
