//! User namespaces: subordinate id ranges, id-map computation, and writing
//! the maps (through newuidmap/newgidmap, or a single-id map as fallback).
//! Runs in the `hutch` process; nothing here runs in the container.

pub mod idmap;
pub mod subid;
pub mod write;

use std::path::{Path, PathBuf};

use anyhow::Context;
use nix::unistd::{Gid, Uid, User};

pub use idmap::{IdMapEntry, Mode};
use subid::SubidRange;

/// The maps of one container and how they are written.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IdMaps {
    pub uid_map: Vec<IdMapEntry>,
    pub gid_map: Vec<IdMapEntry>,
    /// The setuid helpers to use; `None` means a single-id map written
    /// directly (with setgroups denied).
    pub helpers: Option<Helpers>,
    /// Why hutch fell back to a single-id map, to tell the user once.
    pub fallback: Option<String>,
    /// The fallback is for the helpers (the ranges are there).
    #[serde(default)]
    pub helpers_at_fault: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Helpers {
    pub newuidmap: PathBuf,
    pub newgidmap: PathBuf,
}

/// What the host says about the caller, gathered once.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub user: String,
    pub uid: u32,
    pub gid: u32,
    pub subuids: Vec<SubidRange>,
    pub subgids: Vec<SubidRange>,
    pub helpers: Option<Helpers>,
    /// Why `helpers` is `None` (not installed, not setuid).
    pub helper_problem: Option<String>,
}

impl Facts {
    /// Reads the caller's name, ids, ranges and the helpers' location.
    pub fn probe() -> anyhow::Result<Facts> {
        let uid = Uid::current();
        let user = User::from_uid(uid)
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_else(|| uid.to_string());
        let (helpers, helper_problem) = match find_helpers() {
            Ok(h) => (Some(h), None),
            Err(why) => (None, Some(why)),
        };
        Ok(Facts {
            subuids: subid::lookup(Path::new("/etc/subuid"), &user, uid.as_raw())?,
            subgids: subid::lookup(Path::new("/etc/subgid"), &user, uid.as_raw())?,
            helpers,
            helper_problem,
            uid: uid.as_raw(),
            gid: Gid::current().as_raw(),
            user,
        })
    }
}

impl IdMaps {
    /// Decides the maps (pure): subordinate ranges through the helpers
    /// when both exist, otherwise a single-id map and the reason.
    pub fn new(facts: &Facts, mode: Mode) -> IdMaps {
        let has_ranges = !facts.subuids.is_empty() && !facts.subgids.is_empty();
        let missing = if !has_ranges {
            Some(format!(
                "no subordinate id ranges for user `{}` in /etc/subuid and /etc/subgid",
                facts.user
            ))
        } else if facts.helpers.is_none() {
            Some(
                facts
                    .helper_problem
                    .clone()
                    .unwrap_or_else(|| "newuidmap and newgidmap are not installed".to_string()),
            )
        } else {
            None
        };
        let (subuids, subgids): (&[SubidRange], &[SubidRange]) = match missing {
            Some(_) => (&[], &[]),
            None => (&facts.subuids, &facts.subgids),
        };
        IdMaps {
            uid_map: idmap::compute(facts.uid, subuids, mode),
            gid_map: idmap::compute(facts.gid, subgids, mode),
            helpers: if missing.is_some() {
                None
            } else {
                facts.helpers.clone()
            },
            helpers_at_fault: missing.is_some() && has_ranges,
            fallback: missing,
        }
    }

    /// The warning printed once when falling back to a single-id map;
    /// `subid_fix` is how an admin gives the user ranges
    /// (`preflight::subid_fix`).
    pub fn fallback_warning(&self, subid_fix: &str) -> Option<String> {
        let why = self.fallback.as_ref()?;
        // The helpers are judged only once the ranges are there.
        let fix = if self.helpers_at_fault {
            "an administrator can run `apt-get install uidmap`, or make the helper setuid \
             root (`hutch doctor` shows the exact command)"
                .to_string()
        } else {
            format!("{subid_fix} (see `hutch doctor`)")
        };
        Some(format!(
            "warning: {why}; running with a single-id map: only your own uid exists in the \
             container, files owned by other ids show as `nobody` and changing owner fails\n\
             hint: {fix}"
        ))
    }
}

/// Both helpers, when both can map ids (the same check as `doctor`'s).
fn find_helpers() -> Result<Helpers, String> {
    use crate::preflight::usable_helper;
    Ok(Helpers {
        newuidmap: usable_helper("newuidmap")?,
        newgidmap: usable_helper("newgidmap")?,
    })
}

/// Convenience for `run`: probe the host and decide the maps.
pub fn plan(mode: Mode) -> anyhow::Result<(Facts, IdMaps)> {
    let facts = Facts::probe().context("read subordinate id ranges")?;
    let maps = IdMaps::new(&facts, mode);
    Ok((facts, maps))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        Facts {
            user: "alice".into(),
            uid: 1000,
            gid: 1000,
            subuids: vec![SubidRange {
                start: 100000,
                count: 65536,
            }],
            subgids: vec![SubidRange {
                start: 200000,
                count: 65536,
            }],
            helpers: Some(Helpers {
                newuidmap: "/usr/bin/newuidmap".into(),
                newgidmap: "/usr/bin/newgidmap".into(),
            }),
            helper_problem: None,
        }
    }

    #[test]
    fn ranges_and_helpers_give_full_maps() {
        let m = IdMaps::new(&facts(), Mode::Root);
        assert!(m.fallback.is_none() && m.helpers.is_some());
        assert_eq!(m.gid_map[1].outside, 200000);
        assert!(m.fallback_warning("FIX").is_none());
    }

    #[test]
    fn missing_pieces_fall_back_to_single_map() {
        let mut no_gids = facts();
        no_gids.subgids.clear();
        let mut no_helpers = facts();
        no_helpers.helpers = None;
        let mut not_setuid = facts();
        not_setuid.helpers = None;
        not_setuid.helper_problem = Some("`/x/newuidmap` is neither setuid root".into());
        for (f, why, fix) in [
            (no_gids, "subordinate", "FIX (see `hutch doctor`)"),
            (no_helpers, "newuidmap", "apt-get install uidmap"),
            (
                not_setuid,
                "`/x/newuidmap` is neither setuid root",
                "setuid root",
            ),
        ] {
            let m = IdMaps::new(&f, Mode::Root);
            assert_eq!(
                m.uid_map,
                vec![IdMapEntry {
                    inside: 0,
                    outside: 1000,
                    count: 1
                }]
            );
            assert_eq!(m.gid_map.len(), 1);
            assert!(m.helpers.is_none());
            let w = m.fallback_warning("FIX").unwrap();
            assert!(w.contains(why) && w.contains("single-id map") && w.contains(fix));
        }
    }
}
