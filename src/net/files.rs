//! The files that tell the container about its network: /etc/resolv.conf
//! and /etc/hosts, written by `run` into the container's runtime dir and
//! bound over the image's. Pure: the host's files come in as text.

use std::net::{IpAddr, Ipv4Addr};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use super::Network;

/// Where pasta's `--dns-forward` answers: the host's resolver, reached
/// from the host side, so a loopback resolver (systemd-resolved's
/// 127.0.0.53, a dnsmasq on 127.0.0.1) works too. Podman uses the same.
pub const PASTA_DNS: &str = "169.254.1.1";
/// slirp4netns's built-in DNS forwarder and its host-loopback address.
pub const SLIRP_DNS: &str = "10.0.2.3";
pub const SLIRP_HOST: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
/// Names for the host in /etc/hosts (Podman's and Docker Desktop's).
pub const HOST_NAMES: &str = "host.containers.internal host.docker.internal";

/// `--dns`, `--dns-search`, `--dns-option`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    pub servers: Vec<IpAddr>,
    pub search: Vec<String>,
    pub options: Vec<String>,
}

/// `--add-host NAME:IP`; IP may be `host-gateway`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddHost {
    pub name: String,
    /// None for `host-gateway`.
    pub ip: Option<IpAddr>,
}

pub fn parse_add_host(spec: &str) -> anyhow::Result<AddHost> {
    // Docker splits at the first `:` (IPv6 addresses have more); `=` is
    // accepted as well, as newer Docker does.
    let (name, ip) = spec
        .split_once('=')
        .or_else(|| spec.split_once(':'))
        .with_context(|| format!("parse `--add-host {spec}`: expected NAME:IP"))?;
    let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_');
    if name.is_empty() || name.len() > 253 || !name.chars().all(valid) {
        bail!("parse `--add-host {spec}`: `{name}` is not a host name");
    }
    let ip =
        match ip.trim_start_matches('[').trim_end_matches(']') {
            "host-gateway" => None,
            ip => Some(ip.parse().with_context(|| {
                format!("parse `--add-host {spec}`: `{ip}` is not an IP address")
            })?),
        };
    Ok(AddHost {
        name: name.to_string(),
        ip,
    })
}

/// A `--dns-search` domain or `--dns-option` must stay on its own line.
pub fn validate_word(flag: &str, v: &str) -> anyhow::Result<String> {
    if v.is_empty() || v.len() > 253 || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        bail!("parse `{flag} {v}`: expected one word");
    }
    Ok(v.to_string())
}

/// The address at which the container reaches the host itself.
pub fn host_address(network: Network, host_gateway: Option<Ipv4Addr>) -> Option<IpAddr> {
    match network {
        Network::Slirp4netns(_) => Some(IpAddr::V4(SLIRP_HOST)),
        Network::Pasta(_) => host_gateway.map(IpAddr::V4),
        Network::Host => Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        Network::None | Network::Container => None,
    }
}

/// /etc/resolv.conf: `--dns` servers, else the backend's resolver, else
/// the host's; search and options from the flags, else the host's.
pub fn resolv_conf(network: Network, dns: &Dns, host: &str) -> String {
    let host_lines = |key: &str| -> Vec<String> {
        host.lines()
            .filter_map(|l| l.trim().strip_prefix(key))
            .filter(|rest| rest.starts_with([' ', '\t']))
            .flat_map(|rest| rest.split_whitespace().map(str::to_string))
            .collect()
    };
    let servers: Vec<String> = if !dns.servers.is_empty() {
        dns.servers.iter().map(|s| s.to_string()).collect()
    } else {
        match network {
            Network::Pasta(_) => vec![PASTA_DNS.into()],
            Network::Slirp4netns(_) => vec![SLIRP_DNS.into()],
            Network::Host | Network::None | Network::Container => host_lines("nameserver"),
        }
    };
    let search = if dns.search.is_empty() {
        host_lines("search")
    } else {
        dns.search.clone()
    };
    let options = if dns.options.is_empty() {
        host_lines("options")
    } else {
        dns.options.clone()
    };
    let mut out = String::new();
    if !search.is_empty() {
        out += &format!("search {}\n", search.join(" "));
    }
    for s in servers {
        out += &format!("nameserver {s}\n");
    }
    if !options.is_empty() {
        out += &format!("options {}\n", options.join(" "));
    }
    out
}

/// /etc/hosts: loopback names, the container's own name, the host (when
/// the network lets the container reach it), then `--add-host` lines.
pub fn hosts(
    network: Network,
    hostname: &str,
    add: &[AddHost],
    host_hosts: &str,
    host_gateway: Option<Ipv4Addr>,
) -> anyhow::Result<String> {
    let mut out = match network {
        Network::Host => host_hosts.to_string(),
        _ => "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n".to_string(),
    };
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out += &format!("127.0.1.1\t{hostname}\n");
    let host = host_address(network, host_gateway);
    let loopback_allowed = network.user_net().is_some_and(|u| u.allow_host_loopback);
    if let (Some(ip), true) = (host, loopback_allowed) {
        out += &format!("{ip}\t{HOST_NAMES}\n");
    }
    for a in add {
        let ip = match a.ip {
            Some(ip) => ip,
            None => host.with_context(|| {
                format!(
                    "resolve `--add-host {}:host-gateway`: the `{}` network has no way to the host",
                    a.name,
                    network.name()
                )
            })?,
        };
        out += &format!("{ip}\t{}\n", a.name);
    }
    Ok(out)
}

/// A warning when an `--add-host NAME:host-gateway` names an address
/// that does not lead to the host: on pasta and slirp4netns without
/// `allow_host_loopback` the gateway address is not mapped to the host
/// (pasta's is the real router's, slirp4netns refuses 10.0.2.2). The line
/// is still written, as Podman writes it.
pub fn host_gateway_unreachable(network: Network, add: &[AddHost]) -> Option<anyhow::Error> {
    let user = network.user_net()?;
    if user.allow_host_loopback {
        return None;
    }
    let a = add.iter().find(|a| a.ip.is_none())?;
    let name = network.name();
    Some(crate::errors::hint(
        anyhow::anyhow!(
            "`--add-host {}:host-gateway`: the `{name}` gateway address does not reach the host without allow_host_loopback",
            a.name
        ),
        format!(
            "use `--network {name}:allow_host_loopback=true` to reach the host's services through it (the container may then reach everything on the host's loopback)"
        ),
    ))
}

/// The IPv4 default gateway from /proc/net/route text (little-endian hex).
pub fn default_gateway(route: &str) -> Option<Ipv4Addr> {
    route.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 3 || f[1] != "00000000" {
            return None;
        }
        let raw = u32::from_str_radix(f[2], 16).ok()?;
        (raw != 0).then(|| Ipv4Addr::from(raw.to_le_bytes()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::UserNet;

    const HOST_RESOLV: &str = "# generated\nnameserver 127.0.0.53\nsearch corp.example lab\noptions edns0 trust-ad\nnameserver_x junk\n";

    fn pasta(allow: bool) -> Network {
        Network::Pasta(UserNet {
            allow_host_loopback: allow,
            ..UserNet::default()
        })
    }

    #[test]
    fn host_gateway_without_host_loopback_is_warned_about() {
        let gw = |name: &str| AddHost {
            name: name.into(),
            ip: None,
        };
        let fixed = AddHost {
            name: "db".into(),
            ip: Some("10.1.2.3".parse().unwrap()),
        };
        let slirp = |allow| {
            Network::Slirp4netns(UserNet {
                allow_host_loopback: allow,
                ..UserNet::default()
            })
        };
        for net in [pasta(false), slirp(false)] {
            let w = host_gateway_unreachable(net, &[fixed.clone(), gw("gw")])
                .unwrap_or_else(|| panic!("{net:?}: no warning"));
            let (chain, hints, _) = crate::errors::split(&w);
            assert!(
                chain[0].contains("`--add-host gw:host-gateway`")
                    && chain[0].contains("does not reach the host"),
                "{chain:?}"
            );
            assert!(
                hints[0].contains(&format!(
                    "--network {}:allow_host_loopback=true",
                    net.name()
                )),
                "{hints:?}"
            );
        }
        // With the option, with fixed addresses only, or where the
        // address is the host's own (host) or refused already (none): quiet.
        assert!(host_gateway_unreachable(pasta(true), &[gw("gw")]).is_none());
        assert!(host_gateway_unreachable(slirp(true), &[gw("gw")]).is_none());
        assert!(host_gateway_unreachable(pasta(false), std::slice::from_ref(&fixed)).is_none());
        assert!(host_gateway_unreachable(Network::Host, &[gw("gw")]).is_none());
        assert!(host_gateway_unreachable(Network::None, &[gw("gw")]).is_none());
    }

    #[test]
    fn resolv_conf_per_backend() {
        let d = Dns::default();
        assert_eq!(
            resolv_conf(pasta(false), &d, HOST_RESOLV),
            "search corp.example lab\nnameserver 169.254.1.1\noptions edns0 trust-ad\n"
        );
        let slirp = Network::Slirp4netns(UserNet::default());
        assert!(resolv_conf(slirp, &d, "").contains("nameserver 10.0.2.3\n"));
        assert!(resolv_conf(Network::Host, &d, HOST_RESOLV).contains("nameserver 127.0.0.53\n"));
        let flags = Dns {
            servers: vec!["192.0.2.53".parse().unwrap()],
            search: vec!["example.org".into()],
            options: vec!["ndots:2".into()],
        };
        assert_eq!(
            resolv_conf(pasta(false), &flags, HOST_RESOLV),
            "search example.org\nnameserver 192.0.2.53\noptions ndots:2\n"
        );
    }

    #[test]
    fn hosts_names_the_host_only_when_allowed() {
        let gw = Some(Ipv4Addr::new(192, 0, 2, 1));
        let h = hosts(pasta(false), "box", &[], "", gw).unwrap();
        assert!(
            h.contains("127.0.1.1\tbox\n") && !h.contains("host.containers.internal"),
            "{h}"
        );
        let h = hosts(pasta(true), "box", &[], "", gw).unwrap();
        assert!(h.contains("192.0.2.1\thost.containers.internal"), "{h}");
        let slirp = Network::Slirp4netns(UserNet {
            allow_host_loopback: true,
            ..UserNet::default()
        });
        assert!(hosts(slirp, "b", &[], "", None)
            .unwrap()
            .contains("10.0.2.2\thost.containers"));
        let h = hosts(Network::Host, "b", &[], "127.0.0.1 localhost", None).unwrap();
        assert!(h.starts_with("127.0.0.1 localhost\n127.0.1.1\tb\n"), "{h}");
    }

    #[test]
    fn add_host_forms() {
        let a = parse_add_host("db:10.1.2.3").unwrap();
        assert_eq!(a.ip, Some("10.1.2.3".parse().unwrap()));
        assert_eq!(
            parse_add_host("v6:::1").unwrap().ip,
            Some("::1".parse().unwrap())
        );
        assert_eq!(
            parse_add_host("v6=[fe80::1]").unwrap().ip,
            Some("fe80::1".parse().unwrap())
        );
        assert_eq!(parse_add_host("gw:host-gateway").unwrap().ip, None);
        for bad in [
            "nohost",
            ":1.2.3.4",
            "a b:1.2.3.4",
            "x:1.2.3",
            "x\n127.0.0.1 evil:1.1.1.1",
        ] {
            assert!(parse_add_host(bad).is_err(), "{bad}");
        }
        let gw = parse_add_host("gw:host-gateway").unwrap();
        let h = hosts(
            pasta(false),
            "b",
            std::slice::from_ref(&gw),
            "",
            Some(Ipv4Addr::new(192, 0, 2, 1)),
        );
        assert!(h.unwrap().ends_with("192.0.2.1\tgw\n"));
        assert!(hosts(Network::None, "b", &[gw], "", None).is_err());
    }

    #[test]
    fn words_and_gateway() {
        assert!(validate_word("--dns-search", "a b").is_err());
        assert!(validate_word("--dns-option", "x\nnameserver 1.1.1.1").is_err());
        assert!(validate_word("--dns-search", "").is_err());
        let route = "Iface\tDestination\tGateway \tFlags\nlo\t0000007F\t00000000\t0001\neth0\t00000000\t010200C0\t0003\n";
        assert_eq!(default_gateway(route), Some(Ipv4Addr::new(192, 0, 2, 1)));
        assert_eq!(default_gateway("Iface\n"), None);
    }
}
