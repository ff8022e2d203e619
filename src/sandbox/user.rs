//! Resolving `-u NAME|UID[:GROUP|GID]` against the container's own
//! /etc/passwd and /etc/group, as Docker does. Pure; the container init
//! reads the files after pivot_root and calls [`resolve`].

use anyhow::bail;

/// The credentials the command runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub home: String,
}

struct Passwd<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

fn passwd_entries(text: &str) -> impl Iterator<Item = Passwd<'_>> {
    text.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 6).then_some(())?;
        Some(Passwd {
            name: f[0],
            uid: f[2].parse().ok()?,
            gid: f[3].parse().ok()?,
            home: f[5],
        })
    })
}

/// (name, gid, members)
fn group_entries(text: &str) -> impl Iterator<Item = (&str, u32, Vec<&str>)> {
    text.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 4).then_some(())?;
        let members = f[3].split(',').filter(|m| !m.is_empty()).collect();
        Some((f[0], f[2].parse().ok()?, members))
    })
}

/// Resolves `spec` (None: root). Unknown numeric ids are allowed (gid 0,
/// home `/`), unknown names are an error.
pub fn resolve(spec: Option<&str>, passwd: &str, group: &str) -> anyhow::Result<Resolved> {
    let spec = spec.unwrap_or("0");
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let entry = match user.parse::<u32>() {
        Ok(uid) => passwd_entries(passwd).find(|p| p.uid == uid),
        Err(_) => Some(
            passwd_entries(passwd)
                .find(|p| p.name == user)
                .ok_or_else(|| {
                    anyhow::anyhow!("find user `{user}` in the container's /etc/passwd")
                })?,
        ),
    };
    let uid = match (&entry, user.parse::<u32>()) {
        (_, Ok(uid)) => uid,
        (Some(p), Err(_)) => p.uid,
        (None, Err(_)) => bail!("find user `{user}` in the container's /etc/passwd"),
    };
    let gid = match grp {
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => group_entries(group)
                .find(|(n, _, _)| *n == g)
                .map(|(_, gid, _)| gid)
                .ok_or_else(|| anyhow::anyhow!("find group `{g}` in the container's /etc/group"))?,
        },
        None => entry.as_ref().map_or(0, |p| p.gid),
    };
    // Supplementary groups come from /etc/group only with no explicit
    // group (Docker's rule), and only for users known by name.
    let mut groups = Vec::new();
    if let (Some(p), None) = (&entry, grp) {
        for (_, g, members) in group_entries(group) {
            if members.contains(&p.name) && g != gid && !groups.contains(&g) {
                groups.push(g);
            }
        }
    }
    let home = entry.as_ref().map_or("/", |p| p.home).to_string();
    Ok(Resolved {
        uid,
        gid,
        groups,
        home: if home.is_empty() { "/".into() } else { home },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
                          tester:x:1000:1000::/home/tester:/bin/sh\n\
                          broken line\n\
                          nobody:x:65534:65534::/nonexistent:/bin/false\n";
    const GROUP: &str =
        "root:x:0:\ntty:x:5:\ntester:x:1000:\nextra:x:1001:tester,other\nwheel:x:10:tester\n";

    fn r(uid: u32, gid: u32, groups: &[u32], home: &str) -> Resolved {
        Resolved {
            uid,
            gid,
            groups: groups.to_vec(),
            home: home.into(),
        }
    }

    #[test]
    fn resolves_like_docker() {
        let cases: &[(Option<&str>, Resolved)] = &[
            (None, r(0, 0, &[], "/root")),
            (Some("tester"), r(1000, 1000, &[1001, 10], "/home/tester")),
            (Some("1000"), r(1000, 1000, &[1001, 10], "/home/tester")),
            (Some("1000:1000"), r(1000, 1000, &[], "/home/tester")),
            (Some("tester:extra"), r(1000, 1001, &[], "/home/tester")),
            (Some("4242"), r(4242, 0, &[], "/")),
            (Some("4242:77"), r(4242, 77, &[], "/")),
        ];
        for (spec, want) in cases {
            assert_eq!(&resolve(*spec, PASSWD, GROUP).unwrap(), want, "{spec:?}");
        }
    }

    #[test]
    fn unknown_names_are_errors() {
        for spec in ["ghost", "tester:ghosts", "ghost:1"] {
            assert!(resolve(Some(spec), PASSWD, GROUP).is_err(), "{spec}");
        }
        assert_eq!(resolve(None, "", "").unwrap(), r(0, 0, &[], "/"));
    }
}
