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
}

impl<T, E: Into<anyhow::Error>> WithHint<T> for Result<T, E> {
    fn hint(self, text: impl Into<String>) -> anyhow::Result<T> {
        self.map_err(|e| hint(e, text))
    }
}

/// Splits an error into its chain (outermost first, hint and exit-code
/// layers left out), its hints and its exit code. anyhow's `downcast_ref`
/// finds context layers anywhere in the chain; `chain()` items cannot be
/// downcast to a context type, so layers are told apart by their text.
pub fn split(err: &anyhow::Error) -> (Vec<String>, Vec<String>, i32) {
    let code = err.downcast_ref::<ExitCode>().map_or(EXIT_HUTCH, |c| c.0);
    let hint = err.downcast_ref::<HintLayer>().map(|h| h.0.clone());
    let skip_code = ExitCode(code).to_string();
    let chain = err
        .chain()
        .map(|c| c.to_string())
        .filter(|s| Some(s) != hint.as_ref() && *s != skip_code)
        .collect();
    (chain, hint.into_iter().collect(), code)
}

/// Rebuilds an error reported by another process (the container init).
pub fn rebuild(chain: &[String], hints: &[String], code: i32) -> anyhow::Error {
    let mut parts = chain.iter().rev();
    let mut err = anyhow::anyhow!("{}", parts.next().map_or("unknown error", |s| s.as_str()));
    for p in parts {
        err = err.context(p.clone());
    }
    if !hints.is_empty() {
        err = err.context(HintLayer(hints.join("\nhint: ")));
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
