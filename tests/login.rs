//! `hutch login`, `logout` and pulls with the saved credentials, against
//! a real registry requiring basic auth (Debian's docker-registry on
//! 127.0.0.1, started per test by tests/registry-fixture.sh), as the
//! unprivileged user hutch-t1.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::*;

const USER: &str = "tester";
const PASS: &str = "s3cret-pass";

/// A registry on loopback requiring USER:PASS, holding
/// test/busybox:latest; stopped on drop.
struct Registry {
    dir: PathBuf,
    addr: String,
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/registry-fixture.sh")
}

impl Registry {
    fn start(u: &TestUser) -> Option<Registry> {
        for tool in ["docker-registry", "skopeo", "htpasswd"] {
            if !require(tool, have_tool(tool), "needed for registry login tests") {
                return None;
            }
        }
        let dir = u.root_scratch("registry");
        let (ok, out) = host(fixture().to_str()?, &["start", dir.to_str()?, USER, PASS]);
        assert!(ok, "start registry: {out}");
        let addr = out.lines().last()?.trim().to_string();
        let reg = Registry { dir, addr };
        let dest = format!("docker://{}/test/busybox:latest", reg.addr);
        let creds = format!("{USER}:{PASS}");
        let src = images().oci_ref("latest");
        let (ok, out) = host(
            "skopeo",
            &[
                "copy",
                "-q",
                "--dest-tls-verify=false",
                "--dest-creds",
                &creds,
                &src,
                &dest,
            ],
        );
        assert!(ok, "push: {out}");
        Some(reg)
    }

    fn image(&self) -> String {
        format!("{}/test/busybox:latest", self.addr)
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

fn auth_json(u: &TestUser) -> PathBuf {
    u.runtime_dir.join("containers/auth.json")
}

fn login(u: &TestUser, reg: &Registry, password: &str) -> std::process::Output {
    let line = format!("{password}\n");
    hutch_as_stdin(
        u,
        &[
            "login",
            "--tls-verify=false",
            "-u",
            USER,
            "--password-stdin",
            &reg.addr,
        ],
        line.as_bytes(),
    )
}

fn text(out: &std::process::Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn login_checks_the_password_then_pull_uses_it_until_logout() {
    let Some(u) = TestUser::t1() else { return };
    let Some(reg) = Registry::start(&u) else {
        return;
    };
    let pull = ["pull", "-q", "--tls-verify=false", &reg.image()];

    // Without login the pull fails and says how to log in.
    let r = hutch_run(&u, &pull);
    assert_eq!(r.code(), Some(125), "{r}");
    assert!(r.stderr.contains("hutch login"), "{r}");

    let out = login(&u, &reg, "wrong");
    assert_eq!(out.status.code(), Some(125), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refused the credentials"), "{}", text(&out));
    assert!(!auth_json(&u).exists(), "nothing saved on a wrong password");

    let out = login(&u, &reg, PASS);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Login Succeeded!\n");
    let meta = std::fs::metadata(auth_json(&u)).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let saved = std::fs::read_to_string(auth_json(&u)).unwrap();
    assert!(saved.contains(&format!("\"{}\"", reg.addr)), "{saved}");

    let r = hutch_run(&u, &pull);
    assert_eq!(r.code(), Some(0), "{r}");
    assert_eq!(r.stdout.trim().len(), 64, "{r}");

    let r = hutch_run(&u, &["logout", &reg.addr]);
    assert_eq!(r.code(), Some(0), "{r}");
    assert_eq!(
        r.stdout,
        format!("Removed login credentials for {}\n", reg.addr)
    );
    hutch_ok(&u, &["rmi", &reg.image()]);
    let r = hutch_run(&u, &pull);
    assert_eq!(r.code(), Some(125), "{r}");
    assert!(r.stderr.contains("hutch login"), "{r}");

    let r = hutch_run(&u, &["logout", &reg.addr]);
    assert_eq!(r.code(), Some(125), "{r}");
    assert!(
        r.stderr.contains(&format!("not logged into {}", reg.addr)),
        "{r}"
    );
}

#[test]
fn authfile_and_logout_all() {
    let Some(u) = TestUser::t1() else { return };
    let Some(reg) = Registry::start(&u) else {
        return;
    };
    let file = u.scratch("creds").join("my-auth.json");
    let file = file.to_str().unwrap();
    let line = format!("{PASS}\n");
    let args = [
        "login",
        "--tls-verify=false",
        "--authfile",
        file,
        "--username",
        USER,
        "--password-stdin",
        &reg.addr,
    ];
    let out = hutch_as_stdin(&u, &args, line.as_bytes());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(Path::new(file).exists());
    assert!(!auth_json(&u).exists(), "--authfile replaces the default");

    // No terminal and no --password-stdin: an error with a hint, no hang.
    let r = hutch_run(&u, &["login", "-u", USER, &reg.addr]);
    assert_eq!(r.code(), Some(125), "{r}");
    assert!(r.stderr.contains("--password-stdin"), "{r}");

    let r = hutch_run(&u, &["logout", "--authfile", file, "--all"]);
    assert_eq!(r.code(), Some(0), "{r}");
    let saved = std::fs::read_to_string(file).unwrap();
    assert!(!saved.contains(&reg.addr), "{saved}");
}
