//! slirp4netns: attaches to the container's namespaces by pid, driven
//! only through its documented fd contract (Podman does the same):
//!
//! ```text
//!  hutch                               slirp4netns
//!  ready pipe (read end)  ◄── "1" ──── --ready-fd=3   configured, API up
//!  exit pipe (write end)  ─── close ─► --exit-fd=4    exits on POLLHUP
//!  api socket             ── add_hostfwd {...} ──►    one per published port
//! ```
//!
//! The exit pipe closes when hutch drops the helper or dies, and
//! PR_SET_PDEATHSIG covers the rest.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::sys::spawn::Tied;
use std::time::Duration;

use anyhow::{bail, Context};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::ports::{PortMapping, Proto};
use super::{Attach, Helper};
use crate::errors::WithHint;

const READY_WITHIN_MS: u16 = 10_000;
/// The container's address with `--configure` (slirp4netns(1)).
const GUEST_ADDR: &str = "10.0.2.100";

pub struct Slirp {
    /// Dropped first: killed and reaped, then the exit pipe closes.
    child: Tied,
    /// Closing it tells slirp4netns to exit.
    _exit: OwnedFd,
}

impl Helper for Slirp {
    fn name(&self) -> &'static str {
        "slirp4netns"
    }
    fn pid(&self) -> u32 {
        self.child.pid()
    }
    fn hand_over(self: Box<Self>) -> super::Kept {
        let Slirp { child, _exit } = *self;
        super::Kept {
            pid: child.hand_over(),
            fds: vec![_exit],
        }
    }
}

pub fn args(a: &Attach<'_>, api: &Path) -> Vec<String> {
    let mut v = vec![
        "--configure".to_string(),
        format!("--mtu={}", a.net.mtu),
        "--ready-fd=3".into(),
        "--exit-fd=4".into(),
        format!("--api-socket={}", api.display()),
        // IPv6 too (fd00::100 inside), as Podman does.
        "--enable-ipv6".into(),
    ];
    if !a.net.allow_host_loopback {
        v.push("--disable-host-loopback".into());
    }
    v.push(a.pid.as_raw().to_string());
    v.push("tap0".into());
    v
}

/// What slirp4netns cannot publish (see `super::check_ports`); the UDP
/// it would not deliver (`relay.rs`) is not among `ports`.
pub fn check_ports(ports: &[PortMapping]) -> anyhow::Result<()> {
    for m in ports {
        if m.host_ip.is_some_and(|ip| ip.is_ipv6()) {
            return Err(anyhow::anyhow!(
                "publish port `{m}`: slirp4netns publishes on IPv4 addresses only"
            ))
            .hint("use `--network pasta`, or an IPv4 host address");
        }
    }
    Ok(())
}

pub fn start(a: &Attach<'_>) -> anyhow::Result<Slirp> {
    check_ports(a.ports)?;
    let program = crate::preflight::find_program("slirp4netns")
        .context("start slirp4netns: `slirp4netns` is not on PATH")
        .hint(
            "install it (Debian: `apt install slirp4netns`) or use `--network pasta|none|host`",
        )?;
    // A socket path is limited to 107 bytes and container dirs are deep:
    // slirp4netns runs in the directory and gets a relative path; we
    // connect through /proc/self/fd of an O_PATH handle on it.
    let api = Path::new("slirp4netns.sock");
    let dir = std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open(a.dir)
        .with_context(|| format!("open `{}`", a.dir.display()))?;
    let api_via = PathBuf::from(format!(
        "/proc/self/fd/{}/slirp4netns.sock",
        dir.as_raw_fd()
    ));
    let log = a.dir.join("slirp4netns.log");
    let _ = std::fs::remove_file(a.dir.join(api));
    let log_file =
        std::fs::File::create(&log).with_context(|| format!("create `{}`", log.display()))?;
    // Close-on-exec: only the ends dup'ed onto 3 and 4 reach the helper.
    let cloexec = nix::fcntl::OFlag::O_CLOEXEC;
    let (ready_r, ready_w) = nix::unistd::pipe2(cloexec).context("create a pipe")?;
    let (exit_r, exit_w) = nix::unistd::pipe2(cloexec).context("create a pipe")?;
    let mut cmd = Command::new(&program);
    // Its stdout only describes the network; errors go to stderr.
    cmd.args(args(a, api))
        .current_dir(a.dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file);
    let pass = [(ready_w.as_raw_fd(), 3), (exit_r.as_raw_fd(), 4)];
    let child = crate::sys::spawn::spawn_tied(&mut cmd, &pass)
        .with_context(|| format!("start `{}`", program.display()))?;
    drop((ready_w, exit_r));
    let slirp = Slirp {
        child: Tied::new(child),
        _exit: exit_w,
    };
    wait_ready(&ready_r).map_err(|e| {
        anyhow::anyhow!("{}", super::log_tail(&log))
            .context(e)
            .context("set up the container's network with slirp4netns")
    })?;
    for m in a.ports {
        forward(&api_via, m)?;
    }
    Ok(slirp)
}

/// Reads the "1" slirp4netns writes when it is ready, bounded in time.
fn wait_ready(fd: &OwnedFd) -> anyhow::Result<()> {
    let mut fds = [PollFd::new(std::os::fd::AsFd::as_fd(fd), PollFlags::POLLIN)];
    let n = loop {
        match poll(&mut fds, PollTimeout::from(READY_WITHIN_MS)) {
            Err(nix::errno::Errno::EINTR) => continue,
            other => break other.context("wait for slirp4netns")?,
        }
    };
    if n == 0 {
        bail!(
            "slirp4netns was not ready after {} s",
            READY_WITHIN_MS / 1000
        );
    }
    let mut buf = [0u8; 1];
    let mut f = std::fs::File::from(fd.try_clone().context("read the ready pipe")?);
    match f.read(&mut buf) {
        Ok(1) if buf[0] == b'1' => Ok(()),
        _ => bail!("slirp4netns exited before it was ready"),
    }
}

/// One `add_hostfwd` request per port of the mapping.
fn forward(api: &Path, m: &PortMapping) -> anyhow::Result<()> {
    for i in 0..m.count {
        let req = serde_json::json!({
            "execute": "add_hostfwd",
            "arguments": {
                "proto": match m.proto { Proto::Tcp => "tcp", Proto::Udp => "udp" },
                "host_addr": m.host_ip.map_or("0.0.0.0".to_string(), |ip| ip.to_string()),
                "host_port": m.host_port + i,
                // --configure's address; libslirp's default would be
                // the DHCP range's first (10.0.2.15), unused here.
                "guest_addr": GUEST_ADDR,
                "guest_port": m.container_port + i,
            }
        });
        let reply = request(api, &req).with_context(|| {
            format!(
                "publish port {}/{} with slirp4netns",
                m.host_port + i,
                m.proto.as_str()
            )
        })?;
        if let Some(err) = reply.get("error") {
            let desc = err
                .get("desc")
                .and_then(|d| d.as_str())
                .unwrap_or("unknown error");
            return Err(anyhow::anyhow!("{desc}"))
                .context(format!(
                    "publish port {}/{} with slirp4netns",
                    m.host_port + i,
                    m.proto.as_str()
                ))
                .hint("choose another host port (`-p OTHER:PORT`)");
        }
    }
    Ok(())
}

fn request(api: &Path, req: &serde_json::Value) -> anyhow::Result<serde_json::Value> {
    let mut s =
        UnixStream::connect(api).with_context(|| format!("connect to `{}`", api.display()))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(req.to_string().as_bytes())?;
    s.shutdown(std::net::Shutdown::Write)?;
    let mut reply = Vec::new();
    s.take(64 * 1024).read_to_end(&mut reply)?;
    serde_json::from_slice(&reply).context("parse the reply of slirp4netns")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::UserNet;
    use nix::unistd::Pid;

    #[test]
    fn arguments() {
        let a = Attach {
            pid: Pid::from_raw(7),
            net: UserNet::default(),
            ports: &[],
            dir: Path::new("/r"),
        };
        let v = args(&a, Path::new("/r/s.sock")).join(" ");
        assert_eq!(
            v,
            "--configure --mtu=65520 --ready-fd=3 --exit-fd=4 --api-socket=/r/s.sock --enable-ipv6 --disable-host-loopback 7 tap0"
        );
    }
}
