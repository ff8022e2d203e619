//! `-p/--publish` specs, as Docker parses them, and the check that a host
//! port is free before the container starts. Pure except `check_free`.
//!
//! ```text
//! [HOSTIP:][HOSTPORT[-END]:]CONTAINERPORT[-END][/tcp|/udp]
//! 8080:80   127.0.0.1:5353:53/udp   [::1]:8080:80   8000-8002:9000-9002   80
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// One published range: `count` consecutive ports from `host_port` on the
/// host to `container_port` in the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    /// None: every host address (Docker's 0.0.0.0).
    pub host_ip: Option<IpAddr>,
    /// 0 until `assign_host_ports` picks a free one (`-p 80`).
    pub host_port: u16,
    pub container_port: u16,
    pub count: u16,
    pub proto: Proto,
}

impl std::fmt::Display for PortMapping {
    /// As `docker port` prints it: `80/tcp -> 0.0.0.0:8080` (first port).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for i in 0..self.count {
            if i > 0 {
                writeln!(f)?;
            }
            let host = match self.host_ip {
                Some(IpAddr::V6(ip)) => format!("[{ip}]"),
                Some(IpAddr::V4(ip)) => ip.to_string(),
                None => "0.0.0.0".into(),
            };
            write!(
                f,
                "{}/{} -> {host}:{}",
                self.container_port + i,
                self.proto.as_str(),
                self.host_port + i
            )?;
        }
        Ok(())
    }
}

/// Parses one `-p` value.
pub fn parse(spec: &str) -> anyhow::Result<PortMapping> {
    parse_inner(spec).with_context(|| format!("parse port mapping `{spec}`"))
}

fn parse_inner(spec: &str) -> anyhow::Result<PortMapping> {
    let (rest, proto) = match spec.rsplit_once('/') {
        Some((r, "tcp")) => (r, Proto::Tcp),
        Some((r, "udp")) => (r, Proto::Udp),
        Some((_, p)) => bail!("protocol `{p}` is not supported: use tcp or udp"),
        None => (spec, Proto::Tcp),
    };
    let (host_ip, rest) = split_ip(rest)?;
    let parts: Vec<&str> = rest.split(':').collect();
    let (host, ctr) = match parts.as_slice() {
        [c] => ("", *c),
        [h, c] => (*h, *c),
        // `IP::80`: an address with no host port.
        _ => bail!("expected [HOSTIP:][HOSTPORT:]CONTAINERPORT[/PROTO]"),
    };
    let (cstart, ccount) = range(ctr)?;
    let (hstart, hcount) = if host.is_empty() {
        (0, ccount)
    } else {
        range(host)?
    };
    if hcount != ccount {
        bail!("the host range has {hcount} ports but the container range has {ccount}");
    }
    Ok(PortMapping {
        host_ip,
        host_port: hstart,
        container_port: cstart,
        count: ccount,
        proto,
    })
}

/// Splits a leading `IP:` or `[IPv6]:` off.
fn split_ip(s: &str) -> anyhow::Result<(Option<IpAddr>, &str)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (ip, rest) = rest.split_once("]:").context("expected `[IPv6]:PORT`")?;
        let ip: IpAddr = ip
            .parse()
            .with_context(|| format!("parse address `{ip}`"))?;
        return Ok((Some(ip), rest));
    }
    match s.split(':').count() {
        3 => {
            let (ip, rest) = s.split_once(':').context("expected IP:HOSTPORT:PORT")?;
            if ip.is_empty() {
                return Ok((None, rest));
            }
            let ip: IpAddr = ip
                .parse()
                .with_context(|| format!("parse address `{ip}`"))?;
            Ok((Some(ip), rest))
        }
        _ => Ok((None, s)),
    }
}

/// `80` or `8000-8010` as (start, count).
fn range(s: &str) -> anyhow::Result<(u16, u16)> {
    let port = |p: &str| -> anyhow::Result<u16> {
        match p.parse::<u16>() {
            Ok(n) if n > 0 => Ok(n),
            _ => bail!("`{p}` is not a port number (1-65535)"),
        }
    };
    match s.split_once('-') {
        None => Ok((port(s)?, 1)),
        Some((a, b)) => {
            let (a, b) = (port(a)?, port(b)?);
            if b < a {
                bail!("the range `{s}` ends before it starts");
            }
            Ok((a, b - a + 1))
        }
    }
}

/// Two mappings that would bind the same host port and protocol.
pub fn check_overlap(ports: &[PortMapping]) -> anyhow::Result<()> {
    for (i, a) in ports.iter().enumerate() {
        for b in &ports[i + 1..] {
            let same_ip = a.host_ip.is_none() || b.host_ip.is_none() || a.host_ip == b.host_ip;
            let a_end = u32::from(a.host_port) + u32::from(a.count);
            let b_end = u32::from(b.host_port) + u32::from(b.count);
            let meet = u32::from(a.host_port) < b_end && u32::from(b.host_port) < a_end;
            if a.proto == b.proto && same_ip && a.host_port != 0 && b.host_port != 0 && meet {
                bail!(
                    "publish host port {}/{} twice",
                    a.host_port.max(b.host_port),
                    a.proto.as_str()
                );
            }
        }
    }
    Ok(())
}

fn bind_addr(m: &PortMapping, port: u16) -> SocketAddr {
    SocketAddr::new(m.host_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)), port)
}

fn bind(proto: Proto, addr: SocketAddr) -> std::io::Result<u16> {
    match proto {
        Proto::Tcp => TcpListener::bind(addr)?.local_addr().map(|a| a.port()),
        Proto::Udp => UdpSocket::bind(addr)?.local_addr().map(|a| a.port()),
    }
}

/// Binds the mapping's address for a moment; a wildcard publish (pasta
/// listens on `*`, both families) must be free on IPv6 too. A host
/// without IPv6 cannot bind `[::]` at all: only "in use" counts there.
fn try_bind(m: &PortMapping, port: u16) -> std::io::Result<u16> {
    let port = bind(m.proto, bind_addr(m, port))?;
    if m.host_ip.is_none() {
        let any6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port);
        match bind(m.proto, any6) {
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => return Err(e),
            _ => {}
        }
    }
    Ok(port)
}

/// Fails with a clear error when a host port is taken, before anything
/// starts; picks free host ports for `-p CONTAINERPORT`. A port can still
/// be taken between this check and the helper's bind: the helper's own
/// error then reports it.
pub fn check_free(ports: &mut [PortMapping]) -> anyhow::Result<()> {
    for m in ports.iter_mut() {
        if m.host_port == 0 {
            if m.count != 1 {
                bail!(
                    "publish container ports {}-{}: give a host range too",
                    m.container_port,
                    m.container_port + m.count - 1
                );
            }
            m.host_port = try_bind(m, 0).context("pick a free host port")?;
            continue;
        }
        for i in 0..m.count {
            let port = m.host_port + i;
            if let Err(e) = try_bind(m, port) {
                return Err(bind_failed(m, port, e));
            }
        }
    }
    Ok(())
}

/// The error for a host port the check could not bind: taken, or below
/// the kernel's unprivileged port start (EACCES), which no other port
/// choice on the container side changes.
fn bind_failed(m: &PortMapping, port: u16, e: std::io::Error) -> anyhow::Error {
    let addr = bind_addr(m, port);
    let proto = m.proto.as_str();
    if e.kind() == std::io::ErrorKind::PermissionDenied {
        let err = anyhow::Error::new(e).context(format!(
            "publish port `{addr}/{proto}`: host port {port} is privileged, and hutch runs as your user"
        ));
        return crate::errors::hint(
            err,
            format!(
                "publish on a host port from 1024 up (`-p 8080:{}`), or let users bind from {port} up: \
                 `sysctl net.ipv4.ip_unprivileged_port_start={port}` (as root; it applies to every user)",
                m.container_port + (port - m.host_port)
            ),
        );
    }
    let err = anyhow::Error::new(e).context(format!(
        "publish port `{addr}/{proto}`: it is not free on the host"
    ));
    crate::errors::hint(
        err,
        "choose another host port (`-p OTHER:PORT`), or stop what listens there (`ss -lntup`)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_privileged_host_port_is_said_apart_from_a_taken_one() {
        let map = m(None, 80, 8000, 1, Proto::Tcp);
        let eacces = std::io::Error::from_raw_os_error(libc::EACCES);
        let (chain, hints, _) = crate::errors::split(&bind_failed(&map, 80, eacces));
        assert!(chain[0].contains("host port 80 is privileged"), "{chain:?}");
        assert!(!chain[0].contains("not free"), "{chain:?}");
        assert_eq!(hints.len(), 1, "{hints:?}");
        assert!(
            hints[0].contains("net.ipv4.ip_unprivileged_port_start=80")
                && hints[0].contains("`-p 8080:8000`")
                && !hints[0].contains("stop what listens"),
            "{hints:?}"
        );
        let inuse = std::io::Error::from_raw_os_error(libc::EADDRINUSE);
        let (chain, hints, _) = crate::errors::split(&bind_failed(&map, 80, inuse));
        assert!(chain[0].contains("not free on the host"), "{chain:?}");
        assert!(hints[0].contains("stop what listens there"), "{hints:?}");
    }

    fn m(ip: Option<&str>, h: u16, c: u16, n: u16, p: Proto) -> PortMapping {
        PortMapping {
            host_ip: ip.map(|s| s.parse().unwrap()),
            host_port: h,
            container_port: c,
            count: n,
            proto: p,
        }
    }

    #[test]
    fn parses_docker_forms() {
        use Proto::*;
        let table = [
            ("8080:80", m(None, 8080, 80, 1, Tcp)),
            ("80", m(None, 0, 80, 1, Tcp)),
            (
                "127.0.0.1:5353:53/udp",
                m(Some("127.0.0.1"), 5353, 53, 1, Udp),
            ),
            ("[::1]:8080:80/tcp", m(Some("::1"), 8080, 80, 1, Tcp)),
            ("8000-8002:9000-9002", m(None, 8000, 9000, 3, Tcp)),
            ("127.0.0.1::80", m(Some("127.0.0.1"), 0, 80, 1, Tcp)),
            (":8080:80", m(None, 8080, 80, 1, Tcp)),
            ("65535:65535", m(None, 65535, 65535, 1, Tcp)),
        ];
        for (spec, want) in table {
            assert_eq!(parse(spec).unwrap(), want, "{spec}");
        }
    }

    #[test]
    fn refuses_hostile_and_wrong_specs() {
        for bad in [
            "",
            "0",
            "65536",
            "80/sctp",
            "8080:80:90:1",
            "a:80",
            "80-70",
            "1-3:1-2",
            "[::1:80",
            "300.1.1.1:80:80",
            "-1",
            "80-",
            "8080:",
            "1:2:3/tcp/udp",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn displays_like_docker_port() {
        let p = parse("127.0.0.1:8080-8081:80-81").unwrap();
        assert_eq!(
            p.to_string(),
            "80/tcp -> 127.0.0.1:8080\n81/tcp -> 127.0.0.1:8081"
        );
        assert_eq!(
            parse("53:53/udp").unwrap().to_string(),
            "53/udp -> 0.0.0.0:53"
        );
    }

    #[test]
    fn overlap_is_refused_per_protocol() {
        let a = parse("8080-8085:80-85").unwrap();
        let b = parse("127.0.0.1:8085:90").unwrap();
        assert!(check_overlap(&[a, b]).is_err());
        let c = parse("8085:90/udp").unwrap();
        assert!(check_overlap(&[a, c]).is_ok());
        let d = parse("8086:90").unwrap();
        assert!(check_overlap(&[a, d]).is_ok());
    }

    #[test]
    fn a_taken_port_is_a_clear_error_and_zero_gets_a_free_one() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let mut ps = vec![parse(&format!("127.0.0.1:{port}:80")).unwrap()];
        let e = check_free(&mut ps).unwrap_err();
        assert!(format!("{e:#}").contains("not free on the host"), "{e:#}");
        drop(l);
        let mut ps = vec![parse("127.0.0.1::80").unwrap()];
        check_free(&mut ps).unwrap();
        assert_ne!(ps[0].host_port, 0);
    }

    #[test]
    fn a_wildcard_publish_must_be_free_on_ipv6_too() {
        // Only where the host has IPv6 on loopback (CI's hosts do).
        let Ok(l) = UdpSocket::bind("[::1]:0") else {
            assert!(std::env::var_os("CI").is_none(), "this host has no ::1");
            return;
        };
        let port = l.local_addr().unwrap().port();
        let mut ps = vec![parse(&format!("{port}:53/udp")).unwrap()];
        let e = check_free(&mut ps).unwrap_err();
        assert!(format!("{e:#}").contains("not free on the host"), "{e:#}");
        // An IPv4 address of its own does not meet it.
        let mut ps = vec![parse(&format!("127.0.0.1:{port}:53/udp")).unwrap()];
        check_free(&mut ps).unwrap();
    }
}
