//! `--tmpfs PATH[:OPTS]` and `--read-only` as plain data: Docker's
//! syntax, options checked against an allowlist (they come from the
//! command line, which a script may fill from untrusted input), and
//! Podman's tmpfs mounts that make a read-only rootfs usable. Pure;
//! `sandbox::mounts` executes the result.

use anyhow::bail;

use super::mounts::{Kind, Mount};

/// Docker's and Podman's options for `--tmpfs` without options.
const TMPFS_DEFAULTS: [&str; 3] = ["nosuid", "nodev", "noexec"];

/// Where `--read-only` mounts a writable tmpfs, as Podman's
/// `--read-only-tmpfs` (its default) does: (path, mode).
pub const READ_ONLY_TMPFS: [(&str, &str); 3] =
    [("/tmp", "1777"), ("/var/tmp", "1777"), ("/run", "755")];

/// Parses `PATH[:OPTS]` into a tmpfs mount.
pub fn parse_tmpfs(spec: &str) -> anyhow::Result<Mount> {
    let shown = spec.escape_debug();
    let (path, opts) = spec.split_once(':').unwrap_or((spec, ""));
    if !path.starts_with('/')
        || path == "/"
        || path.split('/').any(|c| c == "..")
        || path.contains(char::is_control)
    {
        bail!("parse tmpfs `{shown}`: the container path must be absolute, not `/`, without `..`");
    }
    if opts.len() > 256 {
        bail!("parse tmpfs `{shown}`: the options are too long");
    }
    let mut options: Vec<String> = TMPFS_DEFAULTS.iter().map(|s| s.to_string()).collect();
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        apply_option(&mut options, o).map_err(|why| {
            anyhow::anyhow!("parse tmpfs `{shown}`: option `{}` {why}", o.escape_debug())
        })?;
    }
    Ok(Mount {
        destination: path.trim_end_matches('/').to_string(),
        kind: Kind::Tmpfs,
        source: None,
        options,
        optional: false,
        copy_up: false,
        volume: None,
    })
}

/// Adds one option, replacing its opposite (or an earlier value).
fn apply_option(options: &mut Vec<String>, o: &str) -> Result<(), &'static str> {
    let flag_pairs = [
        ("ro", "rw"),
        ("nosuid", "suid"),
        ("nodev", "dev"),
        ("noexec", "exec"),
    ];
    for (a, b) in flag_pairs {
        if o == a || o == b {
            options.retain(|x| x != a && x != b);
            // `rw`, `suid`, `dev`, `exec` are the kernel's defaults.
            if o == a {
                options.push(o.to_string());
            }
            return Ok(());
        }
    }
    if let "noatime" | "relatime" | "strictatime" = o {
        options.retain(|x| !matches!(x.as_str(), "noatime" | "relatime" | "strictatime"));
        options.push(o.to_string());
        return Ok(());
    }
    let (key, value) = o.split_once('=').ok_or("is not supported")?;
    let valid = match key {
        "size" => size(value, true),
        "nr_inodes" => size(value, false),
        "mode" => {
            (1..=4).contains(&value.len()) && value.bytes().all(|b| (b'0'..=b'7').contains(&b))
        }
        "uid" | "gid" => value.len() <= 10 && value.parse::<u32>().is_ok(),
        _ => return Err("is not supported"),
    };
    if !valid {
        return Err("has an invalid value");
    }
    let prefix = format!("{key}=");
    options.retain(|x| !x.starts_with(&prefix));
    options.push(o.to_string());
    Ok(())
}

/// Digits with an optional k, m, g (or %, for size) suffix.
fn size(v: &str, percent: bool) -> bool {
    let digits = v.trim_end_matches(|c: char| {
        matches!(c, 'k' | 'K' | 'm' | 'M' | 'g' | 'G') || (percent && c == '%')
    });
    let suffix = v.len() - digits.len();
    !digits.is_empty()
        && digits.len() <= 19
        && suffix <= 1
        && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Docker's "Duplicate mount point": two volumes or tmpfs mounts at one
/// container path would hide each other.
pub fn refuse_duplicates(volumes: &[super::Volume], tmpfs: &[Mount]) -> anyhow::Result<()> {
    let mut seen = std::collections::HashSet::new();
    let norm = |p: &str| p.trim_end_matches('/').to_string();
    let paths = volumes
        .iter()
        .map(|v| norm(&v.target))
        .chain(tmpfs.iter().map(|m| norm(&m.destination)));
    for p in paths {
        if !seen.insert(p.clone()) {
            bail!("mount `{}`: duplicate mount point", p.escape_debug());
        }
    }
    Ok(())
}

/// Podman's writable tmpfs mounts for `--read-only`, except where the
/// user already mounts something.
pub fn read_only_tmpfs(taken: &[Mount]) -> Vec<Mount> {
    READ_ONLY_TMPFS
        .iter()
        .filter(|(p, _)| !taken.iter().any(|m| m.destination == *p))
        .map(|(p, mode)| Mount {
            destination: p.to_string(),
            kind: Kind::Tmpfs,
            source: None,
            options: vec!["nosuid".into(), "nodev".into(), format!("mode={mode}")],
            optional: false,
            copy_up: false,
            volume: None,
        })
        .collect()
}

/// Inserts `extra` before the /etc binds at the end of the table, so a
/// tmpfs on /etc still gets the container's hosts and resolv.conf.
pub fn insert_before_etc(table: &mut Vec<Mount>, extra: Vec<Mount>) {
    let at = table
        .iter()
        .position(|m| m.optional && m.destination.starts_with("/etc/"))
        .unwrap_or(table.len());
    table.splice(at..at, extra);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tmpfs_specs() {
        let cases = [
            ("/run", "/run", vec!["nosuid", "nodev", "noexec"]),
            ("/x/", "/x", vec!["nosuid", "nodev", "noexec"]),
            ("/x:exec", "/x", vec!["nosuid", "nodev"]),
            (
                "/x:ro,size=64m,mode=1777",
                "/x",
                vec!["nosuid", "nodev", "noexec", "ro", "size=64m", "mode=1777"],
            ),
            (
                "/x:size=1k,size=2k",
                "/x",
                vec!["nosuid", "nodev", "noexec", "size=2k"],
            ),
            (
                "/x:rw,dev,suid,uid=1000,gid=0,nr_inodes=10k,size=50%",
                "/x",
                vec!["noexec", "uid=1000", "gid=0", "nr_inodes=10k", "size=50%"],
            ),
            (
                "/x:noatime,strictatime",
                "/x",
                vec!["nosuid", "nodev", "noexec", "strictatime"],
            ),
        ];
        for (spec, dest, opts) in cases {
            let m = parse_tmpfs(spec).unwrap();
            assert_eq!(
                (m.destination.as_str(), m.kind),
                (dest, Kind::Tmpfs),
                "{spec}"
            );
            assert_eq!(m.options, opts, "{spec}");
        }
    }

    #[test]
    fn hostile_tmpfs_specs_are_refused() {
        let long = format!("/x:{}", "size=1k,".repeat(40));
        for bad in [
            "",
            "rel",
            "/",
            "/a/../b",
            "/a\n",
            "/x:bogus",
            "/x:size=",
            "/x:size=1t",
            "/x:size=1%%",
            "/x:size=-1",
            "/x:size=99999999999999999999k",
            "/x:mode=8",
            "/x:mode=17777",
            "/x:uid=-1",
            "/x:uid=4294967296",
            "/x:nr_inodes=5%",
            "/x:context=system_u",
            "/x:size=1k\u{1b}[31m",
            "/x:huge=always",
            "/x:remount",
            "/x:bind",
            long.as_str(),
        ] {
            let e = parse_tmpfs(bad).map(|m| m.options).unwrap_err().to_string();
            assert!(e.starts_with("parse tmpfs"), "{bad}: {e}");
            assert!(!e.contains('\u{1b}') && !e.contains('\n'), "{bad}: {e}");
        }
    }

    #[test]
    fn duplicate_mount_points_are_refused() {
        let vol = |t: &str| super::super::Volume {
            source: "/h".into(),
            target: t.into(),
            readonly: false,
            name: None,
            nocopy: false,
        };
        let t = |p: &str| parse_tmpfs(p).unwrap();
        assert!(refuse_duplicates(&[vol("/a"), vol("/b")], &[t("/c")]).is_ok());
        for (v, tm) in [
            (vec![vol("/a"), vol("/a/")], vec![]),
            (vec![vol("/a")], vec![t("/a")]),
            (vec![], vec![t("/x"), t("/x:size=1k")]),
        ] {
            let e = refuse_duplicates(&v, &tm).unwrap_err().to_string();
            assert!(e.contains("duplicate mount point"), "{e}");
        }
    }

    #[test]
    fn read_only_tmpfs_skips_taken_paths() {
        let taken = [parse_tmpfs("/tmp:size=1m").unwrap()];
        let got: Vec<String> = read_only_tmpfs(&taken)
            .into_iter()
            .map(|m| m.destination)
            .collect();
        assert_eq!(got, ["/var/tmp", "/run"]);
        let mut table = vec![
            parse_tmpfs("/a").unwrap(),
            Mount {
                optional: true,
                ..parse_tmpfs("/etc/hosts").unwrap()
            },
        ];
        insert_before_etc(&mut table, vec![parse_tmpfs("/b").unwrap()]);
        let order: Vec<&str> = table.iter().map(|m| m.destination.as_str()).collect();
        assert_eq!(order, ["/a", "/b", "/etc/hosts"]);
    }
}
