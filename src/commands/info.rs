//! `hutch info`: what this host gives hutch, as `podman info` shows it:
//! kernel, id mapping, cgroups, where the store is, on which filesystem,
//! the storage driver a container would get and why, the runtime dir, and
//! the network a container gets by default.
//! Runs in the user's own process; probes like `run` does (one forked
//! overlay probe), never changes anything but a scratch dir.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use serde::Serialize;

use crate::cli::InfoArgs;
use crate::rootfs::driver::{self, Choice};
use crate::state::Dirs;
use crate::userns::{idmap, Facts, IdMaps, Mode};

#[derive(Debug, Serialize)]
struct Info {
    host: Host,
    store: Store,
    network: Network,
}

#[derive(Debug, Serialize)]
struct Network {
    /// What `run` gets without `--network`: the best helper present.
    default: &'static str,
    pasta: Option<PathBuf>,
    slirp4netns: Option<PathBuf>,
    /// Whether this user may open /dev/net/tun (both helpers need it).
    tun: bool,
}

#[derive(Debug, Serialize)]
struct Host {
    kernel: String,
    user: String,
    uid: u32,
    /// `/proc/PID/uid_map` lines a container gets (inside outside count).
    uid_map: Vec<String>,
    gid_map: Vec<String>,
    /// `subordinate ids (newuidmap)` or the reason for a single-id map.
    id_mapping: String,
    cgroups: &'static str,
    runtime_dir: PathBuf,
}

#[derive(Debug, Serialize)]
struct Store {
    path: PathBuf,
    filesystem: String,
    network_filesystem: bool,
    /// Where containers' upper dirs and private copies live.
    containers_dir: PathBuf,
    config_file: Option<PathBuf>,
    /// The driver a container would get; `none` when none can be chosen.
    storage_driver: &'static str,
    /// Why (or the error that prevents a choice).
    storage_driver_reason: String,
}

pub fn info(args: InfoArgs) -> anyhow::Result<i32> {
    let dirs = Dirs::new()?;
    let facts = Facts::probe()?;
    let maps = IdMaps::new(&facts, Mode::Root);
    let lines = |m: &[idmap::IdMapEntry]| {
        idmap::to_proc_text(m)
            .lines()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    let (filesystem, network) = crate::preflight::fs_name(&dirs.data).unwrap_or(("unknown", false));
    let (storage_driver, storage_driver_reason) =
        match driver::explicit(None).and_then(|e| driver::decide(e, &dirs, true)) {
            Ok(Choice { driver, reason, .. }) => (driver.name(), reason),
            Err(e) => ("none", format!("{e:#}")),
        };
    let info = Info {
        host: Host {
            kernel: nix::sys::utsname::uname()
                .map(|u| u.release().to_string_lossy().into_owned())
                .unwrap_or_default(),
            user: facts.user.clone(),
            uid: facts.uid,
            uid_map: lines(&maps.uid_map),
            gid_map: lines(&maps.gid_map),
            id_mapping: match &maps.fallback {
                None => "subordinate ids through newuidmap/newgidmap".into(),
                Some(why) => format!("single id ({why})"),
            },
            cgroups: "disabled",
            runtime_dir: dirs.runtime.clone(),
        },
        store: Store {
            path: dirs.data.clone(),
            filesystem: filesystem.into(),
            network_filesystem: network,
            containers_dir: dirs.containers.clone(),
            config_file: driver::config_path().filter(|p| p.exists()),
            storage_driver,
            storage_driver_reason,
        },
        network: network_info(),
    };
    let text = match args.format.as_deref() {
        None | Some("table" | "text") => render(&info),
        Some("json") => {
            serde_json::to_string_pretty(&info).context("encode the report as JSON")? + "\n"
        }
        Some(other) => anyhow::bail!(
            "use format `{}`: expected json or table",
            other.escape_debug()
        ),
    };
    std::io::stdout()
        .write_all(text.as_bytes())
        .context("write to stdout")?;
    Ok(0)
}

fn network_info() -> Network {
    let helpers = crate::net::Helpers::probe();
    Network {
        default: helpers.best().name(),
        pasta: crate::preflight::find_program("pasta"),
        slirp4netns: crate::preflight::find_program("slirp4netns"),
        tun: helpers.tun,
    }
}

fn render(i: &Info) -> String {
    let mut s = String::new();
    let h = &i.host;
    let _ = writeln!(s, "host:");
    let _ = writeln!(s, "  kernel: {}", h.kernel);
    let _ = writeln!(s, "  user: {} (uid {})", h.user, h.uid);
    let _ = writeln!(s, "  idMapping: {}", h.id_mapping);
    let _ = writeln!(s, "  uidMap: {}", h.uid_map.join(", "));
    let _ = writeln!(s, "  gidMap: {}", h.gid_map.join(", "));
    let _ = writeln!(s, "  cgroups: {}", h.cgroups);
    let _ = writeln!(s, "  runtimeDir: {}", h.runtime_dir.display());
    let st = &i.store;
    let _ = writeln!(s, "store:");
    let _ = writeln!(s, "  path: {}", st.path.display());
    let net = if st.network_filesystem {
        " (network)"
    } else {
        ""
    };
    let _ = writeln!(s, "  filesystem: {}{net}", st.filesystem);
    let _ = writeln!(s, "  containersDir: {}", st.containers_dir.display());
    if let Some(c) = &st.config_file {
        let _ = writeln!(s, "  configFile: {}", c.display());
    }
    let _ = writeln!(s, "  storageDriver: {}", st.storage_driver);
    let _ = writeln!(s, "  storageDriverReason: {}", st.storage_driver_reason);
    let n = &i.network;
    let path = |p: &Option<PathBuf>| {
        p.as_ref()
            .map_or("not found".into(), |p| p.display().to_string())
    };
    let _ = writeln!(s, "network:");
    let _ = writeln!(s, "  default: {}", n.default);
    let _ = writeln!(s, "  pasta: {}", path(&n.pasta));
    let _ = writeln!(s, "  slirp4netns: {}", path(&n.slirp4netns));
    let _ = writeln!(
        s,
        "  tun: {}",
        if n.tun {
            "usable"
        } else {
            "not usable: /dev/net/tun"
        }
    );
    s
}
