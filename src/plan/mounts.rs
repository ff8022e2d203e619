//! The container's mount table as plain data, in the OCI runtime spec's
//! shape (destination, type, source, options), and the pure translation
//! of option strings to mount(2) flags. `sandbox::mounts` executes the
//! table; `plan::spec` writes it to config.json.

use std::path::{Path, PathBuf};

use nix::mount::MsFlags;
use serde::{Deserialize, Serialize};

use super::{Network, Volume};

/// Host device nodes bind-mounted into the container's /dev (mknod is
/// not allowed in a user namespace).
pub const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Proc,
    Tmpfs,
    Devpts,
    Mqueue,
    Sysfs,
    Bind,
}

impl Kind {
    pub fn fstype(self) -> &'static str {
        match self {
            Kind::Proc => "proc",
            Kind::Tmpfs => "tmpfs",
            Kind::Devpts => "devpts",
            Kind::Mqueue => "mqueue",
            Kind::Sysfs => "sysfs",
            Kind::Bind => "bind",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    pub destination: String,
    pub kind: Kind,
    /// Host path, for binds.
    pub source: Option<PathBuf>,
    /// OCI-style options: `nosuid`, `ro`, `rbind`, `mode=755`, ...
    pub options: Vec<String>,
    /// Skipped when the rootfs cannot take the mount point (a read-only
    /// `--rootfs` without /etc/hosts, say); not part of the OCI spec.
    #[serde(default)]
    pub optional: bool,
    /// A named volume, filled from the image's directory at the mount
    /// point on its first mount (`sandbox::copyup`); not OCI either.
    #[serde(default)]
    pub copy_up: bool,
    /// The named volume bound here, for `inspect`.
    #[serde(default)]
    pub volume: Option<String>,
}

fn m(destination: &str, kind: Kind, source: Option<PathBuf>, options: &[&str]) -> Mount {
    Mount {
        destination: destination.to_string(),
        kind,
        source,
        options: options.iter().map(|o| o.to_string()).collect(),
        optional: false,
        copy_up: false,
        volume: None,
    }
}

/// The mount table of a container, in mount order.
/// `privileged` leaves /sys writable, as rootless Podman does (the
/// kernel still checks the caller's own rights on every write).
pub fn table(network: Network, volumes: &[Volume], etc_dir: &Path, privileged: bool) -> Vec<Mount> {
    let nosx = ["nosuid", "noexec", "nodev"];
    let mut t = vec![
        m("/proc", Kind::Proc, None, &nosx),
        m(
            "/dev",
            Kind::Tmpfs,
            None,
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
    ];
    for dev in DEVICES {
        let dest = format!("/dev/{dev}");
        t.push(m(&dest, Kind::Bind, Some(PathBuf::from(&dest)), &["bind"]));
    }
    t.extend([
        // gid=5 (tty) is added by the container init when gid 5 is mapped.
        m(
            "/dev/pts",
            Kind::Devpts,
            None,
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
            ],
        ),
        m(
            "/dev/shm",
            Kind::Tmpfs,
            None,
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ),
        m("/dev/mqueue", Kind::Mqueue, None, &nosx),
    ]);
    // A user namespace may mount sysfs only for a network namespace it
    // owns; with the host's network, sysfs is bound from the host.
    let sys_ro = if privileged { "rw" } else { "ro" };
    t.push(if network.own_namespace() {
        m(
            "/sys",
            Kind::Sysfs,
            None,
            &["nosuid", "noexec", "nodev", sys_ro],
        )
    } else {
        m(
            "/sys",
            Kind::Bind,
            Some("/sys".into()),
            &["rbind", "nosuid", "noexec", "nodev", sys_ro],
        )
    });
    for v in volumes {
        let opts: &[&str] = if v.readonly {
            &["rbind", "ro"]
        } else {
            &["rbind"]
        };
        let mut vol = m(&v.target, Kind::Bind, Some(v.source.clone()), opts);
        vol.copy_up = v.name.is_some() && !v.nocopy;
        vol.volume = v.name.clone();
        t.push(vol);
    }
    for name in ["hostname", "hosts", "resolv.conf"] {
        let mut etc = m(
            &format!("/etc/{name}"),
            Kind::Bind,
            Some(etc_dir.join(name)),
            &["bind"],
        );
        etc.optional = true;
        t.push(etc);
    }
    t
}

/// What mount(2) needs from an option list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flags {
    pub flags: MsFlags,
    /// Filesystem-specific options, comma-joined.
    pub data: String,
    /// Read-only: for binds a second, remounting step.
    pub readonly: bool,
}

/// Translates OCI options to flags and data (runc's `parseMountOptions`).
pub fn flags(options: &[String]) -> Flags {
    let mut out = Flags {
        flags: MsFlags::empty(),
        data: String::new(),
        readonly: false,
    };
    let mut data = Vec::new();
    for o in options {
        let f = match o.as_str() {
            "nosuid" => MsFlags::MS_NOSUID,
            "nodev" => MsFlags::MS_NODEV,
            "noexec" => MsFlags::MS_NOEXEC,
            "strictatime" => MsFlags::MS_STRICTATIME,
            "relatime" => MsFlags::MS_RELATIME,
            "noatime" => MsFlags::MS_NOATIME,
            "bind" => MsFlags::MS_BIND,
            "rbind" => MsFlags::MS_BIND | MsFlags::MS_REC,
            "ro" => {
                out.readonly = true;
                MsFlags::MS_RDONLY
            }
            "rw" => MsFlags::empty(),
            other => {
                data.push(other);
                MsFlags::empty()
            }
        };
        out.flags |= f;
    }
    out.data = data.join(",");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn options_become_flags_and_data() {
        let f = flags(&s(&["nosuid", "noexec", "mode=755", "size=1k"]));
        assert_eq!(f.flags, MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC);
        assert_eq!((f.data.as_str(), f.readonly), ("mode=755,size=1k", false));
        let f = flags(&s(&["rbind", "ro"]));
        assert_eq!(
            f.flags,
            MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_RDONLY
        );
        assert!(f.readonly && f.data.is_empty());
        assert_eq!(flags(&[]).flags, MsFlags::empty());
    }

    #[test]
    fn table_order_and_network() {
        let vols = [Volume {
            source: "/data".into(),
            target: "/mnt".into(),
            readonly: true,
            name: None,
            nocopy: false,
        }];
        let t = table(Network::None, &vols, Path::new("/run/c"), false);
        let dests: Vec<&str> = t.iter().map(|m| m.destination.as_str()).collect();
        assert_eq!(&dests[..2], ["/proc", "/dev"]);
        // /dev comes before everything below it; volumes after /sys.
        let pos = |d: &str| dests.iter().position(|x| *x == d).unwrap();
        assert!(pos("/dev") < pos("/dev/pts") && pos("/dev/pts") < pos("/dev/shm"));
        assert!(pos("/sys") < pos("/mnt") && pos("/mnt") < pos("/etc/hosts"));
        assert_eq!(t[pos("/sys")].kind, Kind::Sysfs);
        assert_eq!(t[pos("/mnt")].options, ["rbind", "ro"]);
        assert_eq!(
            t[pos("/etc/hosts")].source.as_deref(),
            Some(Path::new("/run/c/hosts"))
        );
        let t = table(Network::Host, &[], Path::new("/run/c"), false);
        let sys = t.iter().find(|m| m.destination == "/sys").unwrap();
        assert_eq!(
            (sys.kind, sys.source.as_deref()),
            (Kind::Bind, Some(Path::new("/sys")))
        );
    }
}

/// The root filesystem as an overlay of shared image layers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlay {
    /// Unpacked layers, top first (overlayfs lists lowerdirs top first).
    pub lower: Vec<PathBuf>,
    /// Where the container's writes land.
    pub upper: PathBuf,
    pub work: PathBuf,
}

/// Mount data of legacy mount(2) is one page.
const MAX_MOUNT_DATA: usize = 4095;

/// The overlay mount options: `lowerdir=A:B,upperdir=U,workdir=W,userxattr`.
/// `userxattr` lets an unprivileged user namespace mount it (overlay
/// keeps its markers in `user.overlay.*` xattrs). `\`, `:` and `,` in a
/// path are escaped with a backslash, as overlayfs parses them.
pub fn overlay_options(o: &Overlay) -> anyhow::Result<String> {
    let esc = |p: &Path| -> anyhow::Result<String> {
        let s = p.to_str().ok_or_else(|| {
            anyhow::anyhow!("use `{}` for overlay: the path is not UTF-8", p.display())
        })?;
        Ok(s.replace('\\', "\\\\")
            .replace(':', "\\:")
            .replace(',', "\\,"))
    };
    if o.lower.is_empty() {
        anyhow::bail!("mount overlay: the image has no layers");
    }
    let lower = o
        .lower
        .iter()
        .map(|p| esc(p))
        .collect::<anyhow::Result<Vec<_>>>()?
        .join(":");
    let data = format!(
        "lowerdir={lower},upperdir={},workdir={},userxattr",
        esc(&o.upper)?,
        esc(&o.work)?
    );
    if data.len() > MAX_MOUNT_DATA {
        return Err(crate::errors::hint(
            anyhow::anyhow!("mount overlay: {} layers make {} bytes of options, more than mount(2) takes", o.lower.len(), data.len()),
            "a shorter XDG_DATA_HOME path helps; images with hundreds of layers are not supported yet",
        ));
    }
    Ok(data)
}

#[cfg(test)]
mod overlay_tests {
    use super::*;

    #[test]
    fn overlay_options_escape_and_order() {
        let o = Overlay {
            lower: vec!["/s/l/top".into(), "/s/l/a:b,c\\d".into()],
            upper: "/c/upper".into(),
            work: "/c/work".into(),
        };
        assert_eq!(
            overlay_options(&o).unwrap(),
            "lowerdir=/s/l/top:/s/l/a\\:b\\,c\\\\d,upperdir=/c/upper,workdir=/c/work,userxattr"
        );
        let none = Overlay {
            lower: vec![],
            ..o.clone()
        };
        assert!(overlay_options(&none).is_err());
        let many = Overlay {
            lower: vec![PathBuf::from("/x".repeat(100)); 30],
            ..o
        };
        assert!(overlay_options(&many).is_err());
    }
}
