//! A loopback OCI registry for pull tests (Debian's docker-registry,
//! started by tests/registry-fixture.sh as root), stopped on drop.

use std::fs;
use std::path::{Path, PathBuf};

use super::{have_tool, host, require, TestUser};

pub struct Registry {
    pub dir: PathBuf,
    pub addr: String,
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/registry-fixture.sh")
}

impl Registry {
    /// An empty registry; None (a printed skip, a failure under CI) when
    /// docker-registry or skopeo is missing. `why` says what for.
    pub fn start(u: &TestUser, why: &str) -> Option<Registry> {
        for tool in ["docker-registry", "skopeo"] {
            if !require(tool, have_tool(tool), why) {
                return None;
            }
        }
        let dir = u.root_scratch("registry");
        let (ok, out) = host(fixture().to_str()?, &["start", dir.to_str()?]);
        assert!(ok, "start registry: {out}");
        let addr = out.lines().last()?.trim().to_string();
        Some(Registry { dir, addr })
    }

    /// `skopeo copy EXTRA... SRC docker://ADDR/NAME`.
    pub fn copy(&self, src: &str, name: &str, extra: &[&str]) {
        let dest = format!("docker://{}/{name}", self.addr);
        let mut args = vec!["copy", "-q", "--dest-tls-verify=false"];
        args.extend(extra);
        args.extend([src, dest.as_str()]);
        let (ok, out) = host("skopeo", &args);
        assert!(ok, "push {name}: {out}");
    }

    /// `ADDR/REPO`, as hutch names it.
    pub fn name(&self, repo: &str) -> String {
        format!("{}/{repo}", self.addr)
    }

    /// Every stored blob file of the registry (layers, configs, manifests).
    pub fn blob_files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![self.dir.clone()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.file_name().is_some_and(|n| n == "data")
                    && p.to_string_lossy().contains("/blobs/")
                {
                    out.push(p);
                }
            }
        }
        out
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = host(
            fixture().to_str().unwrap_or_default(),
            &["stop", self.dir.to_str().unwrap_or_default()],
        );
    }
}
