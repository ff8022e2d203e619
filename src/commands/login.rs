//! `hutch login` and `hutch logout`, as Podman and Docker have them.
//!
//! Login reads a user name and password (flags, one line of stdin with
//! `--password-stdin`, or a prompt on a terminal with echo off), checks
//! them against the registry's `/v2/` (see the registry client's
//! `check_login`), and only then writes them to the auth file
//! (`$REGISTRY_AUTH_FILE`, else `$XDG_RUNTIME_DIR/containers/auth.json`,
//! or `--authfile`), which `hutch pull` reads. Logout removes the entry.
//! Runs in the `hutch` process; nothing else sees the password.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::PathBuf;

use anyhow::Context;
use nix::sys::termios::{self, LocalFlags, SetArg, Termios};

use super::pull::PullOptions;
use crate::cli::{LoginArgs, LogoutArgs, RegistryArgs};
use crate::errors::{hint, WithHint};
use crate::image::registry::auth::{self, Credentials};
use crate::image::registry::{Client, ClientOptions};

/// Longest user name or password line read.
const MAX_LINE: u64 = 64 * 1024;

pub fn login(args: LoginArgs) -> anyhow::Result<i32> {
    let (key, host) = registry_key(&args.registry)?;
    let creds = read_credentials(&args, &key)?;
    let registry = RegistryArgs {
        tls_verify: args.tls_verify,
        platform: None,
    };
    let pull = PullOptions::new(&registry, true)?;
    let client = Client::new(ClientOptions::from_env(pull.tls_verify, pull.platform)?);
    client.check_login(&host, &creds)?;
    let path = auth_path(args.authfile)?;
    auth::add(&path, &key, &creds)?;
    println!("Login Succeeded!");
    Ok(0)
}

pub fn logout(args: LogoutArgs) -> anyhow::Result<i32> {
    let path = auth_path(args.authfile)?;
    let Some(arg) = args.registry.filter(|_| !args.all) else {
        auth::remove_all(&path)?;
        println!("Removed login credentials for all registries");
        return Ok(0);
    };
    let (key, _) = registry_key(&arg)?;
    if auth::remove(&path, &key)? {
        println!("Removed login credentials for {key}");
        return Ok(0);
    }
    let err = anyhow::anyhow!("not logged into {key}");
    // Another tool's file may hold them (podman says the same).
    let elsewhere = auth::auth_files()
        .into_iter()
        .filter(|p| *p != path)
        .find(|p| matches!(auth::lookup_in(p, &key, ""), Ok(Some(_))));
    match elsewhere {
        Some(p) => Err(hint(
            err,
            format!(
                "credentials for `{key}` are in `{}`, which `hutch logout` leaves alone; \
                 remove them with the tool that wrote them",
                p.display()
            ),
        )),
        None => Err(err),
    }
}

fn auth_path(authfile: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match authfile {
        Some(p) => Ok(p),
        None => auth::write_path().hint("pass `--authfile FILE`"),
    }
}

/// The auth.json key (`host[:port][/path]`, a scheme and Docker Hub's
/// aliases normalized away) and the host to check the login against.
fn registry_key(arg: &str) -> anyhow::Result<(String, String)> {
    let key = auth::normalize_key(arg);
    let host = key.split('/').next().unwrap_or_default().to_owned();
    let valid = |c: char| c.is_ascii_alphanumeric() || "-.:[]_".contains(c);
    if host.is_empty() || !host.chars().all(valid) || key.chars().any(char::is_whitespace) {
        anyhow::bail!("parse registry `{arg}`: expected HOST[:PORT]");
    }
    Ok((key, host))
}

/// The user name and password from the flags, stdin or a prompt.
fn read_credentials(args: &LoginArgs, key: &str) -> anyhow::Result<Credentials> {
    let tty = std::io::stdin().is_terminal();
    let username = match &args.username {
        Some(u) => u.clone(),
        None if args.password_stdin => {
            anyhow::bail!("read the user name: `--password-stdin` needs `--username`")
        }
        None if tty => prompt("Username: ", true)?,
        None => return Err(no_terminal("user name", key, "--username USER")),
    };
    if username.is_empty() || username.contains(':') {
        anyhow::bail!("read the user name: it must be non-empty and without `:`");
    }
    let password = match &args.password {
        Some(p) => p.clone(),
        None if args.password_stdin => {
            read_line(&mut std::io::stdin().lock()).context("read the password from stdin")?
        }
        None if tty => prompt("Password: ", false)?,
        None => return Err(no_terminal("password", key, "--password-stdin")),
    };
    if password.is_empty() {
        anyhow::bail!("read the password: it is empty");
    }
    Ok(Credentials { username, password })
}

fn no_terminal(what: &str, key: &str, flag: &str) -> anyhow::Error {
    hint(
        anyhow::anyhow!("read the {what}: stdin is not a terminal to prompt on"),
        format!("pass `{flag}`, e.g. `hutch login -u USER --password-stdin {key}`"),
    )
}

/// Asks on stderr and reads one line from the terminal on stdin, with
/// echo off for a password (restored however the read ends).
fn prompt(question: &str, echo: bool) -> anyhow::Result<String> {
    let mut err = std::io::stderr();
    let _ = err.write_all(question.as_bytes());
    let _ = err.flush();
    let guard = match echo {
        true => None,
        false => Some(EchoOff::new()?),
    };
    let line = read_line(&mut std::io::stdin().lock());
    drop(guard);
    line.with_context(|| format!("read `{}`", question.trim_end_matches([':', ' '])))
}

/// One line (at most [`MAX_LINE`] bytes) without its line ending; end of
/// input before any byte is an error.
fn read_line(r: &mut impl BufRead) -> anyhow::Result<String> {
    let mut line = String::new();
    let n = r
        .take(MAX_LINE)
        .read_line(&mut line)
        .context("read a line")?;
    if n == 0 {
        anyhow::bail!("read a line: end of input");
    }
    if !line.ends_with('\n') && u64::try_from(n).is_ok_and(|n| n >= MAX_LINE) {
        anyhow::bail!("read a line: longer than {MAX_LINE} bytes");
    }
    let trimmed = line.strip_suffix('\n').unwrap_or(&line);
    Ok(trimmed.strip_suffix('\r').unwrap_or(trimmed).to_owned())
}

/// Terminal echo turned off on stdin (but the newline still echoed, as
/// getpass(3) does); the saved settings come back on drop.
struct EchoOff {
    saved: Termios,
}

impl EchoOff {
    fn new() -> anyhow::Result<EchoOff> {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(&stdin).context("read the terminal settings")?;
        let mut quiet = saved.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        quiet.local_flags.insert(LocalFlags::ECHONL);
        termios::tcsetattr(&stdin, SetArg::TCSAFLUSH, &quiet).context("turn off echo")?;
        Ok(EchoOff { saved })
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin(), SetArg::TCSAFLUSH, &self.saved);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_keys_are_host_and_port_as_given() {
        let key = |s: &str| registry_key(s).map(|(k, h)| format!("{k} {h}")).ok();
        assert_eq!(key("docker.io").as_deref(), Some("docker.io docker.io"));
        assert_eq!(
            key("https://index.docker.io/v1/").as_deref(),
            Some("docker.io docker.io")
        );
        assert_eq!(
            key("127.0.0.1:5000").as_deref(),
            Some("127.0.0.1:5000 127.0.0.1:5000")
        );
        assert_eq!(key("quay.io/org").as_deref(), Some("quay.io/org quay.io"));
        for bad in ["", "/x", "a b", "bad!host"] {
            assert_eq!(key(bad), None, "{bad}");
        }
    }

    #[test]
    fn lines_lose_their_ending_and_stay_bounded() {
        let mut r: &[u8] = b"pa ss\r\nnext\n";
        assert_eq!(read_line(&mut r).unwrap(), "pa ss");
        assert_eq!(read_line(&mut r).unwrap(), "next");
        assert!(read_line(&mut r).is_err());
        let mut r: &[u8] = b"last";
        assert_eq!(read_line(&mut r).unwrap(), "last");
        let long = vec![b'x'; 100_000];
        assert!(read_line(&mut &long[..]).is_err());
    }
}
