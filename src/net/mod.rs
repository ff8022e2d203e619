//! Container networking: the `--network` modes, the files that describe the
//! network to the container (/etc/hosts, /etc/resolv.conf), and the
//! user-mode network helpers (pasta, slirp4netns) behind one trait.
//!
//! A rootless user cannot make veth pairs or bridges, so a container with
//! its own network namespace gets a user-mode stack in front of it, as
//! rootless Podman does. The helper runs in the host's network namespace,
//! started by the process that launched the container (the `hutch`
//! process, or a detached container's supervisor) once the container's
//! namespaces exist and before its command runs; it is killed when that
//! process lets go of it, and by PR_SET_PDEATHSIG when that process dies.
//! The published UDP ports a helper cannot deliver go through hutch's own
//! relay instead (`relay.rs`), started and ended the same way.

pub mod files;
pub mod pasta;
pub mod ports;
pub mod relay;
pub mod slirp;

use std::path::Path;

use anyhow::bail;
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::errors::WithHint;
use crate::preflight::find_program;
pub use ports::PortMapping;

/// The MTU both backends are given: large frames cut the per-packet cost
/// of a user-mode stack (Podman's default too).
pub const DEFAULT_MTU: u32 = 65520;

/// Options of a user-mode network (`--network pasta:OPT=V,...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserNet {
    /// Whether the container may reach the host's own loopback services
    /// (through the gateway address, named `host.containers.internal`).
    pub allow_host_loopback: bool,
    pub mtu: u32,
}

impl Default for UserNet {
    fn default() -> Self {
        UserNet {
            allow_host_loopback: false,
            mtu: DEFAULT_MTU,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// A new network namespace with only loopback.
    None,
    /// The host's network namespace.
    Host,
    /// A new network namespace behind pasta (passt package).
    Pasta(UserNet),
    /// A new network namespace behind slirp4netns.
    Slirp4netns(UserNet),
    /// Another container's (`container:NAME`; the name is in the plan).
    Container,
}

impl Network {
    /// Whether the container gets a network namespace of its own.
    pub fn own_namespace(self) -> bool {
        !matches!(self, Network::Host)
    }

    pub fn user_net(self) -> Option<UserNet> {
        match self {
            Network::Pasta(u) | Network::Slirp4netns(u) => Some(u),
            Network::None | Network::Host | Network::Container => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Network::None => "none",
            Network::Host => "host",
            Network::Pasta(_) => "pasta",
            Network::Slirp4netns(_) => "slirp4netns",
            Network::Container => "container",
        }
    }
}

/// Which helpers this host has, and whether the user may open
/// /dev/net/tun (both helpers make a tap device with it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Helpers {
    pub pasta: bool,
    pub slirp4netns: bool,
    pub tun: bool,
}

impl Helpers {
    pub fn probe() -> Helpers {
        Helpers {
            pasta: find_program("pasta").is_some(),
            slirp4netns: find_program("slirp4netns").is_some(),
            tun: nix::unistd::access(
                "/dev/net/tun",
                nix::unistd::AccessFlags::R_OK | nix::unistd::AccessFlags::W_OK,
            )
            .is_ok(),
        }
    }

    /// The default network: the best backend this host has.
    pub fn best(self) -> Network {
        if !self.tun {
            Network::None
        } else if self.pasta {
            Network::Pasta(UserNet::default())
        } else if self.slirp4netns {
            Network::Slirp4netns(UserNet::default())
        } else {
            Network::None
        }
    }
}

/// Parses `--network MODE[:OPT=V,...]`; `None` picks the host's best.
pub fn parse_mode(mode: Option<&str>, have: Helpers) -> anyhow::Result<Network> {
    let Some(mode) = mode else {
        return Ok(have.best());
    };
    let (name, opts) = mode.split_once(':').unwrap_or((mode, ""));
    let net = match name {
        "none" if opts.is_empty() => Network::None,
        "host" if opts.is_empty() => Network::Host,
        "pasta" => Network::Pasta(user_net_options(opts)?),
        "slirp4netns" => Network::Slirp4netns(user_net_options(opts)?),
        "none" | "host" => bail!("use network mode `{name}`: it takes no options"),
        "bridge" | "default" | "private" => have.best(),
        "container" if !opts.is_empty() => Network::Container,
        "container" => bail!("use network mode `{mode}`: expected `container:NAME`"),
        other => {
            return Err(anyhow::anyhow!("use network mode `{other}`: not supported"))
                .hint("use `--network pasta`, `slirp4netns`, `none` (loopback only) or `host`")
        }
    };
    let missing = match net {
        Network::Pasta(_) if !have.pasta => Some(("pasta", "passt")),
        Network::Slirp4netns(_) if !have.slirp4netns => Some(("slirp4netns", "slirp4netns")),
        _ => None,
    };
    if net.user_net().is_some() && !have.tun {
        return Err(anyhow::anyhow!("use network mode `{name}`: you cannot open `/dev/net/tun`"))
            .hint("an administrator can fix it: `sudo chmod 0666 /dev/net/tun` (the mode distributions ship), or use `--network none|host`");
    }
    if let Some((tool, package)) = missing {
        return Err(anyhow::anyhow!(
            "use network mode `{name}`: `{tool}` is not on PATH"
        ))
        .hint(format!(
            "install it (Debian: `apt install {package}`), or choose another `--network`"
        ));
    }
    Ok(net)
}

/// What cannot be published, refused before anything starts: a
/// container whose published port would not deliver must not start. The
/// UDP a backend cannot deliver goes through hutch's relay (`relay.rs`).
pub fn check_ports(network: Network, ports: &[PortMapping]) -> anyhow::Result<()> {
    let (backend, relayed) = relay::split(network, ports);
    relay::check(&relayed)?;
    match network {
        Network::Slirp4netns(_) => slirp::check_ports(&backend),
        Network::Pasta(_) | Network::None | Network::Host | Network::Container => Ok(()),
    }
}

/// The container named by `--network container:NAME`.
pub fn container_target(mode: Option<&str>) -> Option<String> {
    mode?.strip_prefix("container:").map(str::to_string)
}

/// `allow_host_loopback=true,mtu=1500` (Podman's slirp4netns keys).
fn user_net_options(opts: &str) -> anyhow::Result<UserNet> {
    let mut u = UserNet::default();
    for opt in opts.split(',').filter(|o| !o.is_empty()) {
        let (k, v) = opt.split_once('=').unwrap_or((opt, "true"));
        match k {
            "allow_host_loopback" => {
                u.allow_host_loopback = match v {
                    "true" => true,
                    "false" => false,
                    _ => bail!("parse network option `{opt}`: expected true or false"),
                }
            }
            "mtu" => {
                u.mtu = match v.parse::<u32>() {
                    Ok(n) if (1280..=65520).contains(&n) => n,
                    _ => bail!("parse network option `{opt}`: the MTU must be 1280 to 65520"),
                }
            }
            _ => bail!("parse network option `{opt}`: expected allow_host_loopback or mtu"),
        }
    }
    Ok(u)
}

/// A running network helper; ended when dropped.
pub trait Helper {
    fn name(&self) -> &'static str;
    /// The helper's host pid.
    fn pid(&self) -> u32;
    /// Gives the helper up without ending it: its pid and the fds that
    /// keep it running, for a process that takes over (the re-executed
    /// supervisor), which then ends it by pid.
    fn hand_over(self: Box<Self>) -> Kept;
}

/// A helper handed over: end it by pid, then close its fds.
pub struct Kept {
    pub pid: u32,
    pub fds: Vec<std::os::fd::OwnedFd>,
}

/// What a backend needs to attach to a container.
pub struct Attach<'a> {
    /// The container init, waiting before its command runs.
    pub pid: Pid,
    pub net: UserNet,
    pub ports: &'a [PortMapping],
    /// A private directory for the helper's pid file, socket and log.
    pub dir: &'a Path,
}

/// Starts the helper for `network`, if it has one, and returns once the
/// container's network is configured. The helper ends when the returned
/// value is dropped, or when the calling process dies.
pub fn attach(network: Network, a: &Attach<'_>) -> anyhow::Result<Option<Box<dyn Helper>>> {
    Ok(match network {
        Network::None | Network::Host | Network::Container => None,
        Network::Pasta(_) => Some(Box::new(pasta::start(a)?)),
        Network::Slirp4netns(_) => Some(Box::new(slirp::start(a)?)),
    })
}

/// The last lines of a helper's log, for an error message.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(3)..].join("; ")
}

/// Kills and reaps a helper child.
#[cfg(test)]
mod tests {
    use super::*;

    const BOTH: Helpers = Helpers {
        pasta: true,
        slirp4netns: true,
        tun: true,
    };

    #[test]
    fn default_is_the_best_helper_present() {
        assert!(matches!(parse_mode(None, BOTH).unwrap(), Network::Pasta(_)));
        let slirp = Helpers {
            pasta: false,
            ..BOTH
        };
        let no_tun = Helpers { tun: false, ..BOTH };
        assert_eq!(parse_mode(None, no_tun).unwrap(), Network::None);
        assert!(parse_mode(Some("pasta"), no_tun).is_err());
        assert!(matches!(
            parse_mode(None, slirp).unwrap(),
            Network::Slirp4netns(_)
        ));
        assert_eq!(parse_mode(None, Helpers::default()).unwrap(), Network::None);
        assert!(matches!(
            parse_mode(Some("bridge"), slirp).unwrap(),
            Network::Slirp4netns(_)
        ));
    }

    #[test]
    fn options_and_errors() {
        let n = parse_mode(Some("slirp4netns:allow_host_loopback=true,mtu=1500"), BOTH).unwrap();
        assert_eq!(
            n,
            Network::Slirp4netns(UserNet {
                allow_host_loopback: true,
                mtu: 1500
            })
        );
        assert_eq!(
            parse_mode(Some("pasta"), BOTH).unwrap(),
            Network::Pasta(UserNet::default())
        );
        let none = Helpers::default();
        assert_eq!(
            parse_mode(Some("container:web"), none).unwrap(),
            Network::Container
        );
        assert_eq!(
            container_target(Some("container:web")).as_deref(),
            Some("web")
        );
        assert_eq!(container_target(Some("pasta")), None);
        for bad in [
            "pasta:mtu=70000",
            "pasta:mtu=x",
            "pasta:allow_host_loopback=yes",
            "pasta:frob=1",
            "none:x",
            "host:allow_host_loopback",
            "container",
            "container:",
            "macvlan",
        ] {
            assert!(parse_mode(Some(bad), BOTH).is_err(), "{bad}");
        }
        let only_tun = Helpers {
            tun: true,
            ..Helpers::default()
        };
        let e = parse_mode(Some("pasta"), only_tun).unwrap_err();
        assert!(format!("{e:#}").contains("not on PATH"), "{e:#}");
    }

    #[test]
    fn udp_a_backend_cannot_deliver_is_relayed_not_refused() {
        let p = |s: &str| ports::parse(s).unwrap();
        let pasta = Network::Pasta(UserNet::default());
        let slirp = Network::Slirp4netns(UserNet::default());
        for spec in ["127.0.0.1:5353:53/udp", "53/udp", "[::1]:5353:53/udp"] {
            check_ports(pasta, &[p(spec)]).unwrap();
            check_ports(slirp, &[p(spec)]).unwrap();
        }
        // slirp4netns itself still publishes on IPv4 only.
        let e = check_ports(slirp, &[p("[::1]:8080:80")]).unwrap_err();
        assert!(format!("{e:#}").contains("IPv4 addresses only"), "{e:#}");
        let e = check_ports(pasta, &[p("10000-10300:10000-10300/udp"), p("1:2/udp")]);
        assert!(e.is_ok(), "pasta forwards same-number UDP itself");
        assert!(check_ports(slirp, &[p("10000-10300:10000-10300/udp")]).is_err());
    }
}
