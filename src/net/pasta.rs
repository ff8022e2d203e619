//! pasta (Debian's `passt` package): attaches to the container's user and
//! network namespaces by pid, makes a tap device with the host's addresses
//! and routes (MTU 65520), and forwards published ports.
//!
//! Readiness is pasta's documented contract: with `--pid FILE` it writes
//! its pid "once initialisation is done". It runs in the foreground as our
//! child (PR_SET_PDEATHSIG), so it can never outlive the process that
//! started it; `--quiet` and a log file keep its stderr off the terminal.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::sys::spawn::Tied;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::files::PASTA_DNS;
use super::ports::{PortMapping, Proto};
use super::{Attach, Helper};
use crate::errors::WithHint;

/// How long pasta may take to configure the namespace.
const READY_WITHIN: Duration = Duration::from_secs(10);

pub struct Pasta {
    child: Tied,
}

impl Helper for Pasta {
    fn name(&self) -> &'static str {
        "pasta"
    }
    fn pid(&self) -> u32 {
        self.child.pid()
    }
    fn hand_over(self: Box<Self>) -> super::Kept {
        super::Kept {
            pid: self.child.hand_over(),
            fds: Vec::new(),
        }
    }
}

/// pasta's `-t`/`-u` options for the mappings of one protocol: one option
/// per mapping, since pasta takes one address per option (joined with
/// commas, every range would bind on the first one's address).
fn port_options(ports: &[PortMapping], proto: Proto) -> Vec<String> {
    let flag = match proto {
        Proto::Tcp => "-t",
        Proto::Udp => "-u",
    };
    let specs: Vec<String> = ports
        .iter()
        .filter(|m| m.proto == proto)
        .map(|m| {
            let addr = m.host_ip.map(|ip| format!("{ip}/")).unwrap_or_default();
            let last = |p: u16| p + (m.count - 1);
            if m.count == 1 {
                format!("{addr}{}:{}", m.host_port, m.container_port)
            } else {
                format!(
                    "{addr}{}-{}:{}-{}",
                    m.host_port,
                    last(m.host_port),
                    m.container_port,
                    last(m.container_port)
                )
            }
        })
        .collect();
    if specs.is_empty() {
        return vec![flag.into(), "none".into()];
    }
    specs
        .into_iter()
        .flat_map(|s| [flag.to_string(), s])
        .collect()
}

/// The full argument list (pure, so it is tested).
pub fn args(a: &Attach<'_>, pid_file: &Path) -> Vec<String> {
    let mut v: Vec<String> = ["--config-net", "--foreground", "--quiet", "--pid"]
        .map(String::from)
        .to_vec();
    v.push(pid_file.display().to_string());
    // Without these, pasta forwards every port the container listens on
    // ("auto"), and every host port to the container.
    v.extend(port_options(a.ports, Proto::Tcp));
    v.extend(port_options(a.ports, Proto::Udp));
    v.extend(["-T", "none", "-U", "none"].map(String::from));
    v.extend(["--dns-forward".into(), PASTA_DNS.into()]);
    if !a.net.allow_host_loopback {
        // The gateway address would otherwise reach the host's loopback.
        v.push("--no-map-gw".into());
    }
    v.extend(["--mtu".into(), a.net.mtu.to_string()]);
    v.push(a.pid.as_raw().to_string());
    v
}

pub fn start(a: &Attach<'_>) -> anyhow::Result<Pasta> {
    let program = crate::preflight::find_program("pasta")
        .context("start pasta: `pasta` is not on PATH")
        .hint(
            "install it (Debian: `apt install passt`) or use `--network slirp4netns|none|host`",
        )?;
    let pid_file = a.dir.join("pasta.pid");
    let log = a.dir.join("pasta.log");
    let _ = std::fs::remove_file(&pid_file);
    let log_file =
        std::fs::File::create(&log).with_context(|| format!("create `{}`", log.display()))?;
    let mut cmd = Command::new(&program);
    cmd.args(args(a, &pid_file))
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().context("open pasta's log")?)
        .stderr(log_file);
    let child = crate::sys::spawn::spawn_tied(&mut cmd, &[])
        .with_context(|| format!("start `{}`", program.display()))?;
    let mut pasta = Pasta {
        child: Tied::new(child),
    };
    wait_ready(&mut pasta.child, &pid_file, &log)?;
    Ok(pasta)
}

/// Waits until pasta wrote its pid file (configured), or failed.
fn wait_ready(child: &mut Tied, pid_file: &PathBuf, log: &Path) -> anyhow::Result<()> {
    let end = Instant::now() + READY_WITHIN;
    let mut pause = Duration::from_micros(200);
    loop {
        if std::fs::metadata(pid_file).is_ok_and(|m| m.len() > 0) {
            return Ok(());
        }
        if let Some(status) = child.try_wait().context("wait for pasta")? {
            return Err(anyhow::anyhow!("{}", super::log_tail(log)))
                .context(format!("pasta exited ({status})"))
                .context("set up the container's network with pasta")
                .hint("`hutch doctor` checks /dev/net/tun and the helpers; a published port may be taken");
        }
        if Instant::now() > end {
            bail!(
                "set up the container's network with pasta: not ready after {} s",
                READY_WITHIN.as_secs()
            );
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::{ports, UserNet};
    use nix::unistd::Pid;

    #[test]
    fn arguments_forward_only_what_was_published() {
        let ps = [
            ports::parse("127.0.0.1:8080:80").unwrap(),
            ports::parse("9000-9001:90-91").unwrap(),
            ports::parse("5353:53/udp").unwrap(),
        ];
        let a = Attach {
            pid: Pid::from_raw(42),
            net: UserNet::default(),
            ports: &ps,
            dir: Path::new("/r"),
        };
        let v = args(&a, Path::new("/r/p")).join(" ");
        assert!(
            v.contains("-t 127.0.0.1/8080:80 -t 9000-9001:90-91 -u 5353:53 -T none -U none"),
            "{v}"
        );
        assert!(
            v.contains("--no-map-gw") && v.ends_with("--mtu 65520 42"),
            "{v}"
        );
        let none = Attach {
            ports: &[],
            net: UserNet {
                allow_host_loopback: true,
                mtu: 1500,
            },
            ..a
        };
        let v = args(&none, Path::new("/r/p")).join(" ");
        assert!(
            v.contains("-t none -u none") && !v.contains("no-map-gw"),
            "{v}"
        );
    }
}
