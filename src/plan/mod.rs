//! The plan: every decision of `hutch run`, as plain data. Pure: built
//! from the parsed flags, the image config and the caller's environment,
//! and table-tested without privileges. Everything that touches the
//! kernel happens after it (DESIGN.md, "Data flow").

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use crate::cli::RunArgs;
use crate::errors::{hint, WithHint};
use crate::image::ImageConfig;
use crate::net;
use crate::userns::Mode;

pub mod mounts;
pub mod spec;
pub mod storage;

pub use mounts::Mount;

/// Docker's and Podman's default capability set.
pub const DEFAULT_CAPS: [&str; 11] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_NET_BIND_SERVICE",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_CHROOT",
];

/// The OCI runtime spec's default masked paths (runtime-spec config-linux),
/// and Docker's powercap (its energy counters are a side channel,
/// CVE-2020-8694).
pub const MASKED_PATHS: [&str; 11] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// ...and the read-only ones.
pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

pub use crate::net::Network;

/// A `-v HOST:CTR[:ro]` or `-v NAME:CTR[:ro]` bind mount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    pub source: PathBuf,
    pub target: String,
    pub readonly: bool,
    /// The volume's name, for a named volume (`crate::volume`).
    pub name: Option<String>,
    /// `nocopy`: a new named volume is not filled from the image.
    #[serde(default)]
    pub nocopy: bool,
}

/// The process to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    pub args: Vec<String>,
    /// KEY=VALUE, image first, then flags; HOME is added in the container
    /// from its /etc/passwd when absent.
    pub env: Vec<String>,
    pub cwd: String,
    /// `-u` as given (NAME|UID[:GROUP|GID]), resolved in the container.
    pub user: Option<String>,
    /// The user comes from the image's config, not from `-u`.
    pub user_from_image: bool,
    pub terminal: bool,
    pub stdin: bool,
}

/// Serialized whole (`hutch create` keeps it for `hutch start`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub process: Process,
    pub hostname: String,
    pub network: Network,
    /// `-p`/`-P`, host ports still 0 where `run` picks free ones.
    pub ports: Vec<net::PortMapping>,
    pub dns: net::files::Dns,
    pub add_hosts: Vec<net::files::AddHost>,
    /// The container whose network `--network container:NAME` shares.
    #[serde(default)]
    pub network_of: Option<String>,
    pub userns: Mode,
    /// The mount table, in order (`mounts::table`).
    pub mounts: Vec<Mount>,
    /// The bounding set; also effective/permitted for a root process.
    pub caps: BTreeSet<String>,
    pub no_new_privs: bool,
    pub seccomp: bool,
    pub masked_paths: Vec<String>,
    pub readonly_paths: Vec<String>,
    /// `--read-only`: the rootfs is remounted read-only after the mounts.
    pub readonly_rootfs: bool,
    /// Named volumes, created on first use.
    pub named_volumes: Vec<String>,
    pub init: bool,
    pub remove: bool,
    pub name: Option<String>,
}

/// What the plan needs from outside the flags.
pub struct Inputs<'a> {
    pub args: &'a RunArgs,
    pub image: Option<&'a ImageConfig>,
    /// The command after the image name (or all arguments with --rootfs).
    pub command: &'a [String],
    pub id: &'a str,
    pub host_hostname: &'a str,
    pub host_uid: u32,
    pub host_gid: u32,
    pub cwd: &'a Path,
    /// Where `run` writes the container's hostname, hosts, resolv.conf.
    pub etc_dir: &'a Path,
    /// The data dir, under which named volumes live.
    pub data_dir: &'a Path,
    pub host_env: &'a dyn Fn(&str) -> Option<String>,
    /// The network helpers this host has, for the default `--network`.
    pub net_helpers: net::Helpers,
}

impl Plan {
    pub fn new(i: &Inputs<'_>) -> anyhow::Result<Plan> {
        let a = i.args;
        refuse_unsupported(a)?;
        let network = net::parse_mode(a.network.as_deref(), i.net_helpers)?;
        let userns = userns(a.userns.as_deref())?;
        let (no_new_privs, seccomp) = security_opts(&a.security_opt, a.privileged)?;
        let img = i.image.cloned().unwrap_or_default();
        let volumes = a
            .volume
            .iter()
            .map(|v| parse_volume(v, i.cwd, i.data_dir))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let user = match (&a.user, userns) {
            (Some(u), _) => Some(u.clone()),
            (None, Mode::KeepId) => Some(format!("{}:{}", i.host_uid, i.host_gid)),
            (None, Mode::Root) => img.user.clone().filter(|u| !u.is_empty()),
        };
        let hostname = match (&a.hostname, network) {
            (Some(h), _) => validate_hostname(h)?,
            (None, Network::Host) => i.host_hostname.to_string(),
            (None, _) => i.id.chars().take(12).collect(),
        };
        let mut env = img.env.clone();
        let env_files = read_env_files(&a.env_file)?;
        for kv in env_files.iter().chain(&a.env) {
            apply_env(&mut env, kv, i.host_env)?;
        }
        set_default(&mut env, "PATH", DEFAULT_PATH);
        set_env(&mut env, "HOSTNAME", &hostname);
        set_default(&mut env, "container", "hutch");
        if a.tty {
            set_default(&mut env, "TERM", "xterm");
        }
        let (masked, readonly) = if a.privileged {
            (Vec::new(), Vec::new())
        } else {
            (strings(&MASKED_PATHS), strings(&READONLY_PATHS))
        };
        Ok(Plan {
            process: Process {
                args: command(&img, a.entrypoint.as_deref(), i.command)?,
                env,
                cwd: workdir(a.workdir.as_deref(), img.working_dir.as_deref())?,
                user_from_image: a.user.is_none() && userns == Mode::Root && user.is_some(),
                user,
                terminal: a.tty,
                stdin: a.interactive,
            },
            hostname,
            network,
            ports: publish(a, &img, network)?,
            dns: dns(a)?,
            add_hosts: a
                .add_host
                .iter()
                .map(|h| net::files::parse_add_host(h))
                .collect::<anyhow::Result<_>>()?,
            network_of: shared_network(a, network)?,
            userns,
            mounts: storage_mounts(
                mounts::table(network, &volumes, i.etc_dir, a.privileged),
                &volumes,
                a,
            )?,
            caps: capabilities(&a.cap_add, &a.cap_drop, a.privileged)?,
            no_new_privs,
            seccomp,
            masked_paths: masked,
            readonly_paths: readonly,
            readonly_rootfs: a.read_only,
            named_volumes: volumes.iter().filter_map(|v| v.name.clone()).collect(),
            init: a.init,
            remove: a.rm,
            name: a.name.as_deref().map(validate_name).transpose()?,
        })
    }
}

/// The table plus `--tmpfs` mounts and, with `--read-only`, Podman's
/// writable tmpfs mounts (`storage.rs`).
fn storage_mounts(
    mut table: Vec<Mount>,
    volumes: &[Volume],
    a: &RunArgs,
) -> anyhow::Result<Vec<Mount>> {
    let mut extra = a
        .tmpfs
        .iter()
        .map(|t| storage::parse_tmpfs(t))
        .collect::<anyhow::Result<Vec<_>>>()?;
    storage::refuse_duplicates(volumes, &extra)?;
    if a.read_only {
        let taken: Vec<Mount> = table.iter().chain(&extra).cloned().collect();
        extra.extend(storage::read_only_tmpfs(&taken));
    }
    storage::insert_before_etc(&mut table, extra);
    Ok(table)
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn refuse_unsupported(a: &RunArgs) -> anyhow::Result<()> {
    let limits = [
        ("--memory", &a.memory),
        ("--cpus", &a.cpus),
        ("--pids-limit", &a.pids_limit),
    ];
    if let Some((flag, _)) = limits.iter().find(|(_, v)| v.is_some()) {
        return Err(hint(
            anyhow::anyhow!("set resource limit `{flag}`: this host has no delegated cgroup v2, so hutch runs containers without cgroups"),
            "drop the limit, or ask an admin to delegate a cgroup v2 subtree to your user (`hutch doctor` shows the state)",
        ));
    }
    Ok(())
}

/// `-p` and `-P` (the image's exposed ports on free host ports).
fn publish(
    a: &RunArgs,
    img: &ImageConfig,
    network: Network,
) -> anyhow::Result<Vec<net::PortMapping>> {
    let mut ports = a
        .publish
        .iter()
        .map(|p| net::ports::parse(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if a.publish_all {
        for e in &img.exposed_ports {
            ports.push(net::ports::parse(e).with_context(|| "read the image's ExposedPorts")?);
        }
    }
    net::ports::check_overlap(&ports)?;
    if !ports.is_empty() && network == Network::None {
        return Err(hint(
            anyhow::anyhow!("publish ports: the `none` network has only loopback"),
            "drop `--network none`, or use `--network pasta|slirp4netns`",
        ));
    }
    net::check_ports(network, &ports)?;
    Ok(ports)
}

/// `--network container:NAME`: the network is that container's, so the
/// flags that configure a network conflict with it (as in Docker).
fn shared_network(a: &RunArgs, network: Network) -> anyhow::Result<Option<String>> {
    if network != Network::Container {
        return Ok(None);
    }
    let conflicts = [
        ("-p", !a.publish.is_empty() || a.publish_all),
        (
            "--dns",
            !a.dns.is_empty() || !a.dns_search.is_empty() || !a.dns_option.is_empty(),
        ),
        ("--add-host", !a.add_host.is_empty()),
        ("--hostname", a.hostname.is_some()),
    ];
    if let Some((flag, _)) = conflicts.iter().find(|(_, on)| *on) {
        return Err(hint(
            anyhow::anyhow!("use `{flag}` with `--network container:NAME`: the network is the other container's"),
            "set it on the container whose network is shared",
        ));
    }
    Ok(net::container_target(a.network.as_deref()))
}

fn dns(a: &RunArgs) -> anyhow::Result<net::files::Dns> {
    Ok(net::files::Dns {
        servers: a
            .dns
            .iter()
            .map(|s| {
                s.parse()
                    .with_context(|| format!("parse `--dns {s}`: expected an IP address"))
            })
            .collect::<anyhow::Result<_>>()?,
        search: a
            .dns_search
            .iter()
            .map(|s| net::files::validate_word("--dns-search", s))
            .collect::<anyhow::Result<_>>()?,
        options: a
            .dns_option
            .iter()
            .map(|s| net::files::validate_word("--dns-option", s))
            .collect::<anyhow::Result<_>>()?,
    })
}

fn userns(mode: Option<&str>) -> anyhow::Result<Mode> {
    match mode.unwrap_or("") {
        "" | "auto" => Ok(Mode::Root),
        "keep-id" => Ok(Mode::KeepId),
        other => bail!("use user namespace mode `{other}`: expected `keep-id` or `auto`"),
    }
}

/// Returns (no_new_privs, seccomp).
fn security_opts(opts: &[String], privileged: bool) -> anyhow::Result<(bool, bool)> {
    let mut nnp = false;
    let mut seccomp = !privileged;
    for opt in opts {
        let (key, value) = opt.split_once(['=', ':']).unwrap_or((opt.as_str(), ""));
        match (key, value) {
            ("no-new-privileges", "" | "true") => nnp = true,
            ("no-new-privileges", "false") => nnp = false,
            ("seccomp", "unconfined") => seccomp = false,
            // SELinux and AppArmor are not applied by hutch; accept the
            // common "turn it off" spellings so scripts keep working.
            ("label", "disable") | ("apparmor", "unconfined") => {}
            _ => {
                return Err(hint(
                    anyhow::anyhow!("apply security option `{opt}`: not supported"),
                    "supported: no-new-privileges[=true|false], seccomp=unconfined",
                ))
            }
        }
    }
    Ok((nnp, seccomp))
}

/// Normalises `net_admin`, `NET_ADMIN` and `CAP_NET_ADMIN` alike.
pub fn cap_name(s: &str) -> anyhow::Result<String> {
    let up = s.trim().to_ascii_uppercase();
    let name = if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    };
    name.parse::<caps::Capability>()
        .map(|_| name.clone())
        .map_err(|_| anyhow::anyhow!("parse capability `{s}`: unknown"))
        .hint("see capabilities(7) for the names, e.g. NET_ADMIN or CAP_SYS_PTRACE")
}

fn capabilities(
    add: &[String],
    drop: &[String],
    privileged: bool,
) -> anyhow::Result<BTreeSet<String>> {
    let all = || {
        caps::all()
            .into_iter()
            .map(|c| c.to_string())
            .collect::<BTreeSet<_>>()
    };
    let mut set: BTreeSet<String> = if privileged {
        all()
    } else {
        strings(&DEFAULT_CAPS).into_iter().collect()
    };
    for d in drop {
        if d.eq_ignore_ascii_case("all") {
            set.clear();
        } else {
            set.remove(&cap_name(d)?);
        }
    }
    for a in add {
        if a.eq_ignore_ascii_case("all") {
            set = all();
        } else {
            set.insert(cap_name(a)?);
        }
    }
    Ok(set)
}

/// Docker's rule: --entrypoint replaces the image's entrypoint and drops
/// its Cmd; arguments replace Cmd.
fn command(
    img: &ImageConfig,
    entrypoint: Option<&str>,
    args: &[String],
) -> anyhow::Result<Vec<String>> {
    let (ep, default_cmd) = match entrypoint {
        Some("") => (Vec::new(), Vec::new()),
        Some(e) => (vec![e.to_string()], Vec::new()),
        None => (img.entrypoint.clone(), img.cmd.clone()),
    };
    let cmd = if args.is_empty() {
        default_cmd
    } else {
        args.to_vec()
    };
    let argv: Vec<String> = ep.into_iter().chain(cmd).collect();
    if argv.is_empty() {
        return Err(hint(
            anyhow::anyhow!("start container: no command specified"),
            "give a command after the image, or use an image with a Cmd or Entrypoint",
        ));
    }
    Ok(argv)
}

fn workdir(flag: Option<&str>, image: Option<&str>) -> anyhow::Result<String> {
    let dir = flag.or(image).filter(|d| !d.is_empty()).unwrap_or("/");
    if !dir.starts_with('/') {
        bail!("set working directory `{dir}`: the path must be absolute");
    }
    Ok(dir.to_string())
}

/// Docker's rule: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
fn validate_name(n: &str) -> anyhow::Result<String> {
    let mut bytes = n.bytes();
    let ok = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        && n.len() <= 128;
    if !ok {
        bail!("use container name `{n}`: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed");
    }
    Ok(n.to_string())
}

fn validate_hostname(h: &str) -> anyhow::Result<String> {
    let ok = !h.is_empty()
        && h.len() <= 64
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if !ok {
        bail!("set hostname `{h}`: use up to 64 letters, digits, `-` and `.`");
    }
    Ok(h.to_string())
}

fn read_env_files(files: &[PathBuf]) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("read env file `{}`", f.display()))?;
        out.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string),
        );
    }
    Ok(out)
}

/// `KEY=VALUE` sets; a bare `KEY` copies the host's value when set.
fn apply_env(
    env: &mut Vec<String>,
    kv: &str,
    host: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<()> {
    let (key, value) = match kv.split_once('=') {
        Some((k, v)) => (k, Some(v.to_string())),
        None => (kv, host(kv)),
    };
    if key.is_empty() || key.contains('\0') || value.as_deref().is_some_and(|v| v.contains('\0')) {
        bail!("set environment variable `{kv}`: expected KEY=VALUE");
    }
    if let Some(v) = value {
        set_env(env, key, &v);
    }
    Ok(())
}

fn set_env(env: &mut Vec<String>, key: &str, value: &str) {
    let entry = format!("{key}={value}");
    match env.iter_mut().find(|e| e.split('=').next() == Some(key)) {
        Some(e) => *e = entry,
        None => env.push(entry),
    }
}

fn set_default(env: &mut Vec<String>, key: &str, value: &str) {
    if !env.iter().any(|e| e.split('=').next() == Some(key)) {
        env.push(format!("{key}={value}"));
    }
}

/// `HOST:CTR[:OPTS]` or `NAME:CTR[:OPTS]`, OPTS a comma list of ro,
/// rw, nocopy, z, Z. A HOST path starts with `/` or `.`; anything else is a
/// volume name (Docker's rule), kept under `data_dir`.
pub fn parse_volume(spec: &str, cwd: &Path, data_dir: &Path) -> anyhow::Result<Volume> {
    let shown = spec.escape_debug();
    let parts: Vec<&str> = spec.split(':').collect();
    let (src, dst, opts) = match parts.as_slice() {
        [s, d] => (*s, *d, ""),
        [s, d, o] => (*s, *d, *o),
        _ => bail!("parse volume `{shown}`: expected HOST-DIR:CONTAINER-DIR[:OPTIONS]"),
    };
    let name = if src.starts_with('/') || src.starts_with('.') {
        None
    } else {
        Some(
            crate::volume::check_name(src)
                .with_context(|| format!("parse volume `{shown}`"))?
                .to_string(),
        )
    };
    if !dst.starts_with('/') || dst == "/" || dst.split('/').any(|c| c == "..") {
        bail!("parse volume `{shown}`: the container path must be absolute, not `/`, without `..`");
    }
    let (mut readonly, mut nocopy) = (false, false);
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => readonly = true,
            "rw" => readonly = false,
            "nocopy" => nocopy = true,
            "z" | "Z" | "rbind" | "bind" => {}
            _ => bail!(
                "parse volume `{shown}`: unknown option `{}`",
                o.escape_debug()
            ),
        }
    }
    Ok(Volume {
        source: match &name {
            Some(n) => crate::volume::data_path(data_dir, n),
            None => cwd.join(src),
        },
        target: dst.to_string(),
        readonly,
        name,
        nocopy,
    })
}

/// `hutch exec`'s environment: the container's, then `--env-file`
/// files, then `-e` (a bare `KEY` copies the caller's value when set).
pub fn merge_env(
    base: &[String],
    env_files: &[PathBuf],
    env: &[String],
    host: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<Vec<String>> {
    let mut out = base.to_vec();
    for kv in read_env_files(env_files)?.iter().chain(env) {
        apply_env(&mut out, kv, host)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
