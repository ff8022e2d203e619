//! Table tests of the pure plan.

use super::*;
use clap::Parser;

fn args(argv: &[&str]) -> RunArgs {
    let mut full = vec!["hutch", "run"];
    full.extend_from_slice(argv);
    match crate::cli::Cli::try_parse_from(full).unwrap().command {
        crate::cli::Command::Run(a) => a,
        _ => unreachable!(),
    }
}

fn image() -> ImageConfig {
    ImageConfig {
        entrypoint: vec![],
        cmd: vec!["sh".into()],
        env: vec!["PATH=/bin".into(), "IMAGE_VAR=1".into()],
        working_dir: Some("/srv".into()),
        user: Some("tester".into()),
        exposed_ports: vec!["80/tcp".into(), "53/udp".into()],
    }
}

/// A plan from flags and a busybox-like image, for other modules' tests.
pub(crate) fn plan_for(argv: &[&str]) -> Plan {
    plan(argv, Some(&image())).unwrap()
}

fn plan(argv: &[&str], img: Option<&ImageConfig>) -> anyhow::Result<Plan> {
    let a = args(argv);
    let command: Vec<String> = a
        .args
        .iter()
        .skip(if a.rootfs.is_some() { 0 } else { 1 })
        .cloned()
        .collect();
    let host_env = |k: &str| (k == "FROM_HOST").then(|| "yes".to_string());
    Plan::new(&Inputs {
        args: &a,
        image: img,
        command: &command,
        id: "0123456789abcdef0123",
        host_hostname: "hostbox",
        host_uid: 1000,
        host_gid: 1001,
        cwd: Path::new("/home/u"),
        etc_dir: Path::new("/run/c1"),
        data_dir: Path::new("/d"),
        host_env: &host_env,
        net_helpers: crate::net::Helpers::default(),
    })
}

#[test]
fn defaults_follow_docker() {
    let p = plan(&["oci:x"], Some(&image())).unwrap();
    assert_eq!(p.process.args, ["sh"]);
    assert_eq!(p.process.cwd, "/srv");
    assert_eq!(p.process.user.as_deref(), Some("tester"));
    assert_eq!(p.hostname, "0123456789ab");
    assert_eq!(p.network, Network::None);
    assert!(p.seccomp && !p.no_new_privs && !p.init);
    assert_eq!(p.caps.len(), DEFAULT_CAPS.len());
    assert!(p.process.env.contains(&"PATH=/bin".to_string()));
    assert!(p.process.env.contains(&"HOSTNAME=0123456789ab".to_string()));
    assert_eq!(p.masked_paths.len(), MASKED_PATHS.len());
}

#[test]
fn command_entrypoint_rules() {
    let mut img = image();
    img.entrypoint = vec!["/bin/echo".into(), "entry:".into()];
    img.cmd = vec!["default".into()];
    let cases: &[(&[&str], &[&str])] = &[
        (&["oci:x"], &["/bin/echo", "entry:", "default"]),
        (&["oci:x", "a", "b"], &["/bin/echo", "entry:", "a", "b"]),
        (&["--entrypoint", "/bin/ls", "oci:x"], &["/bin/ls"]),
        (
            &["--entrypoint", "/bin/ls", "oci:x", "-l"],
            &["/bin/ls", "-l"],
        ),
        (&["--entrypoint", "", "oci:x", "id"], &["id"]),
    ];
    for (argv, want) in cases {
        assert_eq!(
            plan(argv, Some(&img)).unwrap().process.args,
            *want,
            "{argv:?}"
        );
    }
    assert!(plan(&["--entrypoint", "", "oci:x"], Some(&img)).is_err());
    assert!(plan(&["--rootfs", "/r", "true"], None).is_ok());
}

#[test]
fn env_flags_override_image_and_copy_host() {
    let p = plan(
        &[
            "-e",
            "IMAGE_VAR=2",
            "-e",
            "FROM_HOST",
            "-e",
            "UNSET_ON_HOST",
            "-t",
            "oci:x",
        ],
        Some(&image()),
    )
    .unwrap();
    let env = &p.process.env;
    assert!(env.contains(&"IMAGE_VAR=2".to_string()));
    assert!(env.contains(&"FROM_HOST=yes".to_string()));
    assert!(!env.iter().any(|e| e.starts_with("UNSET_ON_HOST")));
    assert!(env.contains(&"TERM=xterm".to_string()));
    assert!(plan(&["-e", "=x", "oci:x"], Some(&image())).is_err());
}

#[test]
fn capabilities_add_drop() {
    let p = plan(
        &[
            "--cap-drop",
            "all",
            "--cap-add",
            "net_admin",
            "--cap-add",
            "CAP_KILL",
            "oci:x",
        ],
        Some(&image()),
    )
    .unwrap();
    assert_eq!(
        p.caps.iter().collect::<Vec<_>>(),
        ["CAP_KILL", "CAP_NET_ADMIN"]
    );
    let p = plan(&["--cap-drop", "CHOWN", "oci:x"], Some(&image())).unwrap();
    assert!(!p.caps.contains("CAP_CHOWN") && p.caps.contains("CAP_KILL"));
    assert!(plan(&["--cap-add", "NOPE", "oci:x"], Some(&image())).is_err());
    let p = plan(&["--privileged", "oci:x"], Some(&image())).unwrap();
    assert!(p.caps.contains("CAP_SYS_ADMIN") && !p.seccomp && p.masked_paths.is_empty());
}

#[test]
fn security_opts_and_userns() {
    let p = plan(
        &[
            "--security-opt",
            "no-new-privileges",
            "--security-opt",
            "seccomp=unconfined",
            "oci:x",
        ],
        Some(&image()),
    )
    .unwrap();
    assert!(p.no_new_privs && !p.seccomp);
    assert!(plan(
        &["--security-opt", "seccomp=/etc/x.json", "oci:x"],
        Some(&image())
    )
    .is_err());
    let p = plan(&["--userns", "keep-id", "oci:x"], Some(&image())).unwrap();
    assert_eq!(p.process.user.as_deref(), Some("1000:1001"));
    assert!(plan(&["--userns", "host", "oci:x"], Some(&image())).is_err());
}

#[test]
fn network_and_hostname() {
    let p = plan(&["--network", "host", "oci:x"], Some(&image())).unwrap();
    assert_eq!((p.network, p.hostname.as_str()), (Network::Host, "hostbox"));
    let p = plan(&["-h", "box", "--net", "none", "oci:x"], Some(&image())).unwrap();
    assert_eq!(p.hostname, "box");
    // Docker's `bridge` is the default network: here, the best helper.
    let p = plan(&["--network", "bridge", "oci:x"], Some(&image())).unwrap();
    assert_eq!(p.network, Network::None);
    assert!(plan(&["--network", "macvlan", "oci:x"], Some(&image())).is_err());
    assert!(plan(&["-h", "bad name", "oci:x"], Some(&image())).is_err());
    assert!(plan(&["--name", "web_1.a-b", "oci:x"], Some(&image())).is_ok());
    for bad in ["_x", "a/b", "..", "a b", ""] {
        assert!(
            plan(&["--name", bad, "oci:x"], Some(&image())).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn unsupported_flags_are_clear_errors() {
    for argv in [
        &["--memory", "1g", "oci:x"][..],
        &["--pids-limit", "5", "oci:x"],
    ] {
        assert!(plan(argv, Some(&image())).is_err(), "{argv:?}");
    }
    assert!(plan(&["-w", "relative", "oci:x"], Some(&image())).is_err());
}

#[test]
fn volumes() {
    let cwd = Path::new("/home/u");
    let data = Path::new("/d");
    let v = parse_volume("/data:/mnt:ro", cwd, data).unwrap();
    assert_eq!(
        (v.source.as_path(), v.target.as_str(), v.readonly),
        (Path::new("/data"), "/mnt", true)
    );
    assert_eq!(v.name, None);
    let v = parse_volume("./d:/x", cwd, data).unwrap();
    assert_eq!(v.source, Path::new("/home/u/./d"));
    let v = parse_volume("my-vol.1:/x:ro", cwd, data).unwrap();
    assert_eq!(
        (v.source.as_path(), v.name.as_deref(), v.readonly),
        (
            Path::new("/d/volumes/my-vol.1/_data"),
            Some("my-vol.1"),
            true
        )
    );
    let p = plan(
        &["-v", "a:/x", "-v", "/h:/y", "-v", "b:/z", "oci:x"],
        Some(&image()),
    )
    .unwrap();
    assert_eq!(p.named_volumes, ["a", "b"]);
    // Named volumes are filled from the image on first mount, unless nocopy.
    let copy: Vec<(&str, bool)> = p
        .mounts
        .iter()
        .filter(|m| ["/x", "/y", "/z"].contains(&m.destination.as_str()))
        .map(|m| (m.destination.as_str(), m.copy_up))
        .collect();
    assert_eq!(copy, [("/x", true), ("/y", false), ("/z", true)]);
    let v = parse_volume("a:/x:ro,nocopy", cwd, data).unwrap();
    assert!(v.nocopy && v.readonly);
    for bad in [
        "-name:/x",
        "na me:/x",
        "a..b/c:/x",
        "_x:/x",
        "/a",
        "/a:rel",
        "/a:/",
        "/a:/x/../..",
        "/a:/x:bogus",
        "/a:/b:ro:x",
    ] {
        assert!(parse_volume(bad, cwd, data).is_err(), "{bad}");
    }
}

#[test]
fn exec_env_layers_files_then_flags_over_the_containers() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("env");
    std::fs::write(&file, "# comment\n\nA=file\nB=file\nFROM_HOST\n").unwrap();
    let host = |k: &str| (k == "FROM_HOST").then(|| "host".to_string());
    let base = vec!["PATH=/bin".to_string(), "A=ctr".to_string()];
    let cases: &[(&[&str], &[&str])] = &[
        (&[], &["PATH=/bin", "A=file", "B=file", "FROM_HOST=host"]),
        (
            &["B=flag", "C"],
            &["PATH=/bin", "A=file", "B=flag", "FROM_HOST=host"],
        ),
        (&["A="], &["PATH=/bin", "A=", "B=file", "FROM_HOST=host"]),
    ];
    for (flags, want) in cases {
        let flags: Vec<String> = flags.iter().map(|s| s.to_string()).collect();
        let got = merge_env(&base, std::slice::from_ref(&file), &flags, &host).unwrap();
        assert_eq!(got, *want, "{flags:?}");
    }
    assert!(merge_env(&base, &[], &["=x".to_string()], &host).is_err());
    assert!(merge_env(&base, &[dir.path().join("missing")], &[], &host).is_err());
}

#[test]
fn publish_dns_and_hosts_flags() {
    let p = plan(
        &[
            "--network",
            "host",
            "-p",
            "8080:80",
            "-P",
            "--dns",
            "192.0.2.1",
            "--add-host",
            "db:10.0.0.1",
            "oci:x",
        ],
        Some(&image()),
    )
    .unwrap();
    let ports: Vec<String> = p.ports.iter().map(|m| m.to_string()).collect();
    assert_eq!(
        ports,
        [
            "80/tcp -> 0.0.0.0:8080",
            "80/tcp -> 0.0.0.0:0",
            "53/udp -> 0.0.0.0:0"
        ]
    );
    assert_eq!(
        p.dns.servers,
        ["192.0.2.1".parse::<std::net::IpAddr>().unwrap()]
    );
    assert_eq!(p.add_hosts[0].name, "db");
    // Loopback only: nothing to publish on.
    assert!(plan(&["--network", "none", "-p", "80", "oci:x"], Some(&image())).is_err());
    assert!(plan(
        &["-p", "1:2", "-p", "1:3", "--network", "host", "oci:x"],
        Some(&image())
    )
    .is_err());
    assert!(plan(&["--dns", "x", "oci:x"], Some(&image())).is_err());
}
