//! hutch's own UDP forwarder, for the published UDP ports a backend
//! cannot deliver (rootless Podman's rootlessport does the same):
//! Debian 12's pasta drops the replies of UDP whose port number it
//! translates, and slirp4netns drops UDP replies unless the host's
//! loopback is open to the container (podman#4586).
//!
//! ```text
//!  host netns                         container netns (joined by setns)
//!  host socket H (bound by hutch) ──► per-client socket, connected to
//!  client C ◄── reply, sent from H ◄── 127.0.0.1:CONTAINERPORT
//! ```
//!
//! Whoever starts the network helper binds the host sockets (so a taken
//! port fails before the container's command runs) and starts the relay
//! the same way: `/proc/self/exe __udp-relay PID PORT...`, tied with
//! PR_SET_PDEATHSIG, handed to a detached container's supervisor, killed
//! with the container. The relay joins the container's user namespace,
//! then its network namespace (the host sockets keep the host's), says it
//! is ready, and forwards until the container's init exits. It runs as the
//! user, in namespaces the user owns: it can do nothing the user cannot.

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sched::CloneFlags;
use nix::unistd::Pid;

use super::ports::{PortMapping, Proto};
use super::{Helper, Network};
use crate::errors::WithHint;
use crate::sys::spawn::Tied;

/// argv[1] of the relay; `run_cli` dispatches it before the parser.
pub const ENTRY: &str = "__udp-relay";

/// The most host ports one container may have relayed.
pub const MAX_PORTS: usize = 256;
/// Clients (host address and port) with a socket in the container.
const MAX_CLIENTS: usize = 256;
/// A client's socket closes after this long without traffic.
const IDLE: Duration = Duration::from_secs(60);
/// The largest UDP payload.
const DATAGRAM: usize = 65536;
/// Datagrams read from one socket per wakeup (fairness between them).
const BURST: usize = 64;
/// How long the relay may take to join the container's namespaces.
const READY_WITHIN_MS: u16 = 10_000;

/// The relay's fds: its ready pipe, then one host socket per port.
const READY_FD: RawFd = 3;
const FIRST_SOCKET_FD: RawFd = 4;

/// Whether the backend of `network` cannot deliver `m` itself, so hutch
/// relays it: pasta translating a UDP port number (`-p 5353:53/udp`,
/// `-p 53/udp`, `-P`), slirp4netns without allow_host_loopback (any UDP).
pub fn relayed(network: Network, m: &PortMapping) -> bool {
    m.proto == Proto::Udp
        && match network {
            Network::Pasta(_) => m.host_port != m.container_port,
            Network::Slirp4netns(u) => !u.allow_host_loopback,
            Network::None | Network::Host | Network::Container => false,
        }
}

/// The mappings the backend publishes, and those hutch relays.
pub fn split(network: Network, ports: &[PortMapping]) -> (Vec<PortMapping>, Vec<PortMapping>) {
    ports.iter().partition(|m| !relayed(network, m))
}

/// What the relay cannot take: more than [`MAX_PORTS`] ports.
pub fn check(relayed: &[PortMapping]) -> anyhow::Result<()> {
    let n: usize = relayed.iter().map(|m| usize::from(m.count)).sum();
    if n > MAX_PORTS {
        return Err(anyhow::anyhow!(
            "publish {n} UDP ports: hutch relays at most {MAX_PORTS} UDP ports per container"
        ))
        .hint("publish fewer UDP ports, or with pasta keep their numbers (`-p 9000-9999:9000-9999/udp`), which pasta forwards itself");
    }
    Ok(())
}

/// A running relay; killed and reaped when dropped.
pub struct Relay {
    child: Tied,
}

impl Helper for Relay {
    fn name(&self) -> &'static str {
        "udp-relay"
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

/// Binds the host side of every relayed port, then starts the relay for
/// the container whose init is `init` and returns once it forwards.
pub fn start(init: Pid, relayed: &[PortMapping], dir: &Path) -> anyhow::Result<Option<Relay>> {
    if relayed.is_empty() {
        return Ok(None);
    }
    check(relayed)?;
    let mut sockets = Vec::new();
    let mut args = vec![ENTRY.to_string(), init.as_raw().to_string()];
    for m in relayed {
        for i in 0..m.count {
            for s in bind_host(m, m.host_port + i)? {
                sockets.push(s);
                args.push((m.container_port + i).to_string());
            }
        }
    }
    // Two sockets a port where the host sets net.ipv6.bindv6only.
    if sockets.len() >= crate::sys::spawn::MAX_PASS {
        return Err(anyhow::anyhow!(
            "publish {} UDP sockets: hutch relays at most {} per container",
            sockets.len(),
            crate::sys::spawn::MAX_PASS - 1
        ))
        .hint("publish fewer UDP ports, or on one host address (`-p 127.0.0.1:PORT:PORT/udp`)");
    }
    let log = dir.join("udp-relay.log");
    let log_file =
        std::fs::File::create(&log).with_context(|| format!("create `{}`", log.display()))?;
    let (ready_r, ready_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("create a pipe")?;
    let mut pass = vec![(ready_w.as_raw_fd(), READY_FD)];
    pass.extend(
        sockets
            .iter()
            .zip(FIRST_SOCKET_FD..)
            .map(|(s, fd)| (s.as_raw_fd(), fd)),
    );
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg0("hutch")
        .args(&args[..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file);
    let child = crate::sys::spawn::spawn_tied(&mut cmd, &pass)
        .context("start the UDP relay (`/proc/self/exe`)")?;
    let relay = Relay {
        child: Tied::new(child),
    };
    drop((ready_w, sockets));
    wait_ready(ready_r).map_err(|e| {
        anyhow::anyhow!("{}", super::log_tail(&log))
            .context(e)
            .context("relay the published UDP ports")
    })?;
    Ok(Some(relay))
}

/// Binds a relayed host port as the backend would: a publish on every
/// address listens on IPv6 and IPv4 (`[::]`, dual-stack unless the host
/// sets net.ipv6.bindv6only, then a second socket on 0.0.0.0), or on IPv4
/// alone where the host has no IPv6.
fn bind_host(m: &PortMapping, port: u16) -> anyhow::Result<Vec<UdpSocket>> {
    let any4 = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port);
    let bind = |addr: SocketAddr| {
        UdpSocket::bind(addr)
            .map_err(|e| {
                anyhow::Error::new(e).context(format!(
                    "publish port `{addr}/udp`: it is not free on the host"
                ))
            })
            .hint("choose another host port (`-p OTHER:PORT`), or stop what listens there (`ss -lnup`)")
    };
    if let Some(ip) = m.host_ip {
        return Ok(vec![bind(SocketAddr::new(ip, port))?]);
    }
    let any6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port);
    match UdpSocket::bind(any6) {
        Ok(s) => {
            let v6only = std::fs::read_to_string("/proc/sys/net/ipv6/bindv6only")
                .is_ok_and(|v| v.trim() == "1");
            if v6only {
                Ok(vec![s, bind(any4)?])
            } else {
                Ok(vec![s])
            }
        }
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EAFNOSUPPORT | libc::EADDRNOTAVAIL)
            ) =>
        {
            Ok(vec![bind(any4)?])
        }
        Err(_) => Ok(vec![bind(any6)?]),
    }
}

/// Reads the "1" the relay writes once it is in the container's network
/// namespace, bounded in time.
fn wait_ready(fd: OwnedFd) -> anyhow::Result<()> {
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    let n = loop {
        match poll(&mut fds, PollTimeout::from(READY_WITHIN_MS)) {
            Err(nix::errno::Errno::EINTR) => continue,
            other => break other.context("wait for the UDP relay")?,
        }
    };
    if n == 0 {
        bail!(
            "the UDP relay was not ready after {} s",
            READY_WITHIN_MS / 1000
        );
    }
    let mut buf = [0u8; 1];
    match std::fs::File::from(fd).read(&mut buf) {
        Ok(1) if buf[0] == b'1' => Ok(()),
        _ => bail!("the UDP relay exited before it was ready"),
    }
}

/// The relay process (`hutch __udp-relay PID PORT...`); its errors go to
/// its log, which `start` shows when it fails to get ready.
pub fn main() -> i32 {
    match serve() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("hutch: {ENTRY}: {e:#}");
            crate::errors::EXIT_HUTCH
        }
    }
}

/// A host client with its socket in the container.
struct Client {
    /// Index of the host socket it wrote to.
    host: usize,
    peer: SocketAddr,
    sock: UdpSocket,
    last: Instant,
}

fn serve() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(2).collect();
    let (pid, ports) = args
        .split_first()
        .context("expected `PID PORT...`: it is internal to hutch")?;
    let pid: i32 = pid.parse().context("parse the container's pid")?;
    let ports = ports
        .iter()
        .map(|p| p.parse::<u16>())
        .collect::<Result<Vec<_>, _>>()
        .context("parse the container ports")?;
    let take = crate::sys::process::inherited_fd;
    let ready = take(READY_FD).context("no ready pipe on fd 3")?;
    let hosts = (0..ports.len())
        .map(|i| take(FIRST_SOCKET_FD + i as RawFd).map(UdpSocket::from))
        .collect::<Option<Vec<_>>>()
        .context("a host socket is missing")?;
    for h in &hosts {
        h.set_nonblocking(true)
            .context("set a host socket non-blocking")?;
    }
    let parent = nix::unistd::getppid();
    // Readable once the init exits: the container is gone.
    let init = crate::sys::pidfd::open(pid).with_context(|| format!("open process {pid}"))?;
    enter(pid)?;
    // Joining the user namespace changed our credentials: tie the relay
    // to its parent again, unless that parent is gone already.
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
        .context("set the parent-death signal")?;
    if nix::unistd::getppid() != parent {
        return Ok(());
    }
    nix::unistd::write(&ready, b"1").context("report ready")?;
    drop(ready);
    forward(&init, &hosts, &ports)
}

/// Joins the user namespace, then the network namespace, of `pid`.
fn enter(pid: i32) -> anyhow::Result<()> {
    for (ns, flag) in [
        ("user", CloneFlags::CLONE_NEWUSER),
        ("net", CloneFlags::CLONE_NEWNET),
    ] {
        let path = format!("/proc/{pid}/ns/{ns}");
        let f = std::fs::File::open(&path).with_context(|| format!("open `{path}`"))?;
        nix::sched::setns(f, flag).with_context(|| format!("join `{path}`"))?;
    }
    Ok(())
}

/// Forwards until the container's init exits.
fn forward(init: &OwnedFd, hosts: &[UdpSocket], ports: &[u16]) -> anyhow::Result<()> {
    let mut clients: Vec<Client> = Vec::new();
    let mut buf = vec![0u8; DATAGRAM];
    loop {
        let now = Instant::now();
        clients.retain(|c| now.duration_since(c.last) < IDLE);
        let mut fds = vec![PollFd::new(init.as_fd(), PollFlags::POLLIN)];
        fds.extend(
            hosts
                .iter()
                .map(|h| PollFd::new(h.as_fd(), PollFlags::POLLIN)),
        );
        fds.extend(
            clients
                .iter()
                .map(|c| PollFd::new(c.sock.as_fd(), PollFlags::POLLIN)),
        );
        match poll(&mut fds, PollTimeout::from(1000u16)) {
            Err(nix::errno::Errno::EINTR) | Ok(0) => continue,
            other => other.context("wait for datagrams")?,
        };
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        if ready[0] {
            return Ok(());
        }
        // Replies first: a new client below may replace an old one.
        let from_clients = &ready[1 + hosts.len()..];
        for (c, _) in clients.iter_mut().zip(from_clients).filter(|(_, r)| **r) {
            for _ in 0..BURST {
                match c.sock.recv(&mut buf) {
                    Ok(n) => {
                        c.last = Instant::now();
                        let _ = hosts[c.host].send_to(&buf[..n], c.peer);
                    }
                    // WouldBlock, or a refusal of an earlier datagram
                    // (nothing listens in the container yet).
                    Err(_) => break,
                }
            }
        }
        for (i, h) in hosts.iter().enumerate().filter(|(i, _)| ready[1 + i]) {
            for _ in 0..BURST {
                let Ok((n, peer)) = h.recv_from(&mut buf) else {
                    break;
                };
                let Some(c) = client(&mut clients, i, peer, ports[i]) else {
                    continue;
                };
                c.last = Instant::now();
                let _ = c.sock.send(&buf[..n]);
            }
        }
    }
}

/// The socket in the container for `peer` on host socket `host`, made
/// (and connected to the container's `port`) on its first datagram; the
/// least recently used one goes when there are too many.
fn client(
    clients: &mut Vec<Client>,
    host: usize,
    peer: SocketAddr,
    port: u16,
) -> Option<&mut Client> {
    if let Some(i) = clients
        .iter()
        .position(|c| c.host == host && c.peer == peer)
    {
        return clients.get_mut(i);
    }
    let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).ok()?;
    sock.connect((Ipv4Addr::LOCALHOST, port)).ok()?;
    sock.set_nonblocking(true).ok()?;
    if clients.len() >= MAX_CLIENTS {
        if let Some(oldest) = clients
            .iter()
            .enumerate()
            .min_by_key(|(_, c)| c.last)
            .map(|(i, _)| i)
        {
            clients.swap_remove(oldest);
        }
    }
    clients.push(Client {
        host,
        peer,
        sock,
        last: Instant::now(),
    });
    clients.last_mut()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::{ports, UserNet};

    fn p(spec: &str) -> PortMapping {
        ports::parse(spec).unwrap()
    }

    #[test]
    fn only_what_the_backend_cannot_deliver_is_relayed() {
        let pasta = Network::Pasta(UserNet::default());
        let slirp = Network::Slirp4netns(UserNet::default());
        let slirp_lo = Network::Slirp4netns(UserNet {
            allow_host_loopback: true,
            ..UserNet::default()
        });
        let table = [
            ("127.0.0.1:5353:53/udp", [true, true, false]),
            ("53/udp", [true, true, false]),
            ("9000-9001:90-91/udp", [true, true, false]),
            ("5353:5353/udp", [false, true, false]),
            ("8080:80", [false, false, false]),
            ("80:80", [false, false, false]),
        ];
        for (spec, want) in table {
            let got = [pasta, slirp, slirp_lo].map(|n| relayed(n, &p(spec)));
            assert_eq!(got, want, "{spec}");
        }
        let (backend, relay) = split(pasta, &[p("8080:80"), p("5353:53/udp"), p("53:53/udp")]);
        assert_eq!(backend, vec![p("8080:80"), p("53:53/udp")]);
        assert_eq!(relay, vec![p("5353:53/udp")]);
    }

    #[test]
    fn too_many_relayed_ports_are_refused() {
        check(&[p("10000-10255:20000-20255/udp")]).unwrap();
        let e = check(&[p("10000-10256:20000-20256/udp")]).unwrap_err();
        let (chain, hints, _) = crate::errors::split(&e);
        assert!(chain[0].contains("at most 256"), "{chain:?}");
        assert!(!hints.is_empty());
    }
}
