//! Networking, as the unprivileged user hutch-t1: the user-mode backends
//! (pasta, slirp4netns), published ports over TCP and UDP, the host's
//! loopback behind an explicit option, DNS through a resolver on the
//! host's loopback, and the helper process ending with its container.
//! Every peer is on loopback or inside namespaces the tests make; every
//! wait is bounded.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;

const BACKENDS: [&str; 2] = ["pasta", "slirp4netns"];

fn helpers_present() -> bool {
    require(
        "pasta and slirp4netns",
        have_tool("pasta") && have_tool("slirp4netns"),
        "install Debian's passt and slirp4netns",
    )
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("pick a free port")
}

/// Waits until no process of the invocation's audit session is left (the
/// network helper inherits the session, so this covers it).
fn assert_nothing_left(run: &Run, what: &str) {
    let s = run.session.expect("session of the run");
    let left = wait_session_empty(s, Duration::from_secs(5));
    let names: Vec<String> = left
        .iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/comm")).ok())
        .collect();
    assert!(left.is_empty(), "{what}: processes left: {names:?}");
}

/// `run --rm --network NET -p PUBLISH ... true`: a start that only
/// publishes (the errors are the point).
fn run_published(u: &TestUser, net: &str, publish: &str) -> Run {
    let rootfs = images().rootfs();
    hutch_run(
        u,
        &[
            "run",
            "--rm",
            "--network",
            net,
            "-p",
            publish,
            "--rootfs",
            &rootfs,
            "true",
        ],
    )
}

/// `run --network NET FLAGS... --rootfs ROOTFS CMD...` in the background,
/// once it printed `marker`; if that does not come within 20 s, the test
/// fails naming NET and showing the run (ended by its bounded timeout).
#[track_caller]
fn spawn_on(u: &TestUser, net: &str, flags: &[&str], cmd: &[&str], marker: &str) -> Running {
    let rootfs = images().rootfs();
    let mut args = vec!["run", "--network", net];
    args.extend(flags);
    args.extend(["--rootfs", &rootfs]);
    args.extend(cmd);
    let mut r = spawn_hutch(u, &args, &Opts::default());
    if !r.wait_for_stdout(marker, Duration::from_secs(20)) {
        panic!("{net}: no `{marker}` within 20 s: {}", r.wait());
    }
    r
}

fn tool_path(name: &str) -> PathBuf {
    let (ok, out) = host("sh", &["-c", &format!("command -v {name}")]);
    assert!(ok, "{name} not found");
    PathBuf::from(out.trim())
}

#[test]
fn none_has_only_loopback_and_user_mode_networks_have_a_large_mtu() {
    let Some(u) = TestUser::t1() else { return };
    if !helpers_present() {
        return;
    }
    let rootfs = images().rootfs();
    let links = |net: Option<&str>| {
        let mut args = vec!["run", "--rm"];
        if let Some(n) = net {
            args.extend(["--network", n]);
        }
        args.extend(["--rootfs", &rootfs, "ip", "-o", "link"]);
        let r = hutch_run(&u, &args);
        assert_eq!(r.code(), Some(0), "{r}");
        assert!(!r.stderr.contains("warning"), "{r}");
        r.stdout
    };
    let none = links(Some("none"));
    assert_eq!(none.lines().count(), 1, "{none}");
    assert!(none.contains(": lo:"), "{none}");
    // The default is the best helper, pasta: one more interface, MTU 65520.
    for (net, ifname) in [
        (None, ""),
        (Some("pasta"), ""),
        (Some("slirp4netns"), "tap0"),
    ] {
        let out = links(net);
        let other: Vec<&str> = out.lines().filter(|l| !l.contains(": lo:")).collect();
        assert_eq!(other.len(), 1, "{net:?}: {out}");
        assert!(other[0].contains("mtu 65520"), "{net:?}: {out}");
        assert!(other[0].contains(ifname), "{net:?}: {out}");
    }
}

/// Connects to 127.0.0.1:port until the container answers (bounded).
/// A connection slirp4netns accepted before the container listened stays
/// pending until its retried SYN gets through: wait for it, since the
/// one-shot server inside answers only one connection.
fn fetch(port: u16) -> String {
    fetch_at(std::net::Ipv4Addr::LOCALHOST.into(), port)
}

/// `fetch` from `ip:port`.
fn fetch_at(ip: std::net::IpAddr, port: u16) -> String {
    let end = Instant::now() + Duration::from_secs(30);
    while Instant::now() < end {
        if let Ok(mut s) = TcpStream::connect((ip, port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(15)));
            // The server answers only after a line: the answer can only
            // come over a connection that reached it end to end.
            let _ = s.write_all(b"GET / HTTP/1.0\r\n\r\n");
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            if !out.is_empty() {
                return out;
            }
        }
        thread::sleep(Duration::from_millis(100));
    }
    String::new()
}

#[test]
fn a_published_tcp_port_reaches_the_container_and_port_lists_it() {
    let Some(u) = TestUser::t1() else { return };
    if !helpers_present() {
        return;
    }
    for backend in BACKENDS {
        let port = free_port();
        let name = format!("web-{backend}");
        let publish = format!("127.0.0.1:{port}:80");
        let r = spawn_on(
            &u,
            backend,
            &["--name", &name, "-p", &publish],
            &[
                "sh",
                "-c",
                "echo ready; nc -l -p 80 -e sh -c 'read l; echo served-by-container; sleep 1'",
            ],
            "ready",
        );
        let got = fetch(port);
        let run = r.wait();
        assert!(
            got.contains("served-by-container"),
            "{backend}: got {got:?}\n{run}"
        );
        assert_eq!(run.code(), Some(0), "{backend}: {run}");
        assert_nothing_left(&run, backend);
        let ports = hutch_ok(&u, &["port", &name]);
        assert_eq!(
            ports.trim(),
            format!("80/tcp -> 127.0.0.1:{port}"),
            "{backend}"
        );
        let one = hutch_ok(&u, &["port", &name, "80/tcp"]);
        assert_eq!(one.trim(), format!("127.0.0.1:{port}"));
        hutch_ok(&u, &["rm", &name]);
    }
}

#[test]
fn a_published_udp_port_reaches_the_container_and_a_killed_hutch_leaves_no_helper() {
    let Some(u) = TestUser::t1() else { return };
    if !helpers_present() {
        return;
    }
    for backend in BACKENDS {
        let port = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // What each backend delivers itself (hutch relays the rest, see
        // `a_translated_udp_port_is_relayed_by_hutch_on_both_backends`):
        // pasta the same port number, slirp4netns with the host's loopback
        // open (its UDP replies go through that address).
        let (inside, net) = if backend == "pasta" {
            (port.to_string(), backend.to_string())
        } else {
            (
                "5353".to_string(),
                format!("{backend}:allow_host_loopback=true"),
            )
        };
        let publish = format!("127.0.0.1:{port}:{inside}/udp");
        let name = format!("udp-{backend}");
        let r = spawn_on(
            &u,
            &net,
            &["--rm", "--name", &name, "-p", &publish],
            &["udpecho", &inside, "60"],
            "listening",
        );
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut answer = String::new();
        for _ in 0..30 {
            let _ = sock.send_to(b"ping", ("127.0.0.1", port));
            let mut buf = [0u8; 64];
            if let Ok((n, _)) = sock.recv_from(&mut buf) {
                answer = String::from_utf8_lossy(&buf[..n]).to_string();
                break;
            }
        }
        assert_eq!(answer, "echo:ping", "{backend}");
        // The backend delivered it: no relay of hutch's.
        let rec = record_after_launch(&u, &name);
        assert!(rec["net_helper_pid"].is_u64(), "{backend}: {rec}");
        assert!(rec.get("udp_relay_pid").is_none(), "{backend}: {rec}");
        // hutch dies at once: the container and the helper must go too.
        r.signal(Signal::SIGKILL);
        let run = r.wait();
        assert_nothing_left(&run, backend);
    }
}

/// The record of the container named `name`, read from the host as root.
fn record_named(u: &TestUser, name: &str) -> serde_json::Value {
    let dir = u.data_dir.join("hutch/containers");
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for e in entries.flatten() {
        let Ok(text) = std::fs::read_to_string(e.path().join("state.json")) else {
            continue;
        };
        match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(v) if v["name"] == name => return v,
            _ => {}
        }
    }
    panic!("no container named {name} in {}", dir.display());
}

/// The record of the container named `name` once hutch has saved what it
/// launched (the helper's pid): the command may print before that save.
fn record_after_launch(u: &TestUser, name: &str) -> serde_json::Value {
    let end = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let rec = record_named(u, name);
        if rec.get("net_helper_pid").is_some_and(|p| p.is_u64()) || std::time::Instant::now() > end
        {
            return rec;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether `pid` is hutch's UDP relay (`hutch __udp-relay PID PORT...`).
fn is_relay(pid: u64) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| c.split(|b| *b == 0).nth(1) == Some(b"__udp-relay".as_slice()))
}

/// `n` clients on the host's loopback each send `clientI` to `port`,
/// all before any reads, and return the answers they got (bounded).
fn udp_clients_ask(port: u16, n: usize) -> Vec<String> {
    let socks: Vec<UdpSocket> = (0..n)
        .map(|_| {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            s
        })
        .collect();
    let mut answers = vec![String::new(); n];
    for _ in 0..30 {
        for (i, s) in socks.iter().enumerate() {
            if answers[i].is_empty() {
                let _ = s.send_to(format!("client{i}").as_bytes(), ("127.0.0.1", port));
            }
        }
        for (i, s) in socks.iter().enumerate() {
            let mut buf = [0u8; 64];
            if answers[i].is_empty() {
                if let Ok((len, _)) = s.recv_from(&mut buf) {
                    answers[i] = String::from_utf8_lossy(&buf[..len]).to_string();
                }
            }
        }
        if answers.iter().all(|a| !a.is_empty()) {
            break;
        }
    }
    answers
}

/// A UDP port free on the host's loopback.
fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("pick a free UDP port")
}

#[test]
fn a_translated_udp_port_is_relayed_by_hutch_on_both_backends() {
    let Some(u) = TestUser::t1() else { return };
    if !helpers_present() {
        return;
    }
    // pasta drops the replies of UDP it translates, slirp4netns those of
    // any UDP without allow_host_loopback: hutch relays both itself. The
    // container exits on its own once /tmp/done exists (bounded).
    let serve = "udpecho 53 60 & i=0; \
                 while [ ! -e /tmp/done ] && [ $i -lt 60 ]; do sleep 1; i=$((i+1)); done; \
                 echo finished";
    for backend in BACKENDS {
        let port = free_udp_port();
        let publish = format!("127.0.0.1:{port}:53/udp");
        let name = format!("relay-{backend}");
        let r = spawn_on(
            &u,
            backend,
            // /tmp/done must not land in the shared test rootfs.
            &["--rm", "--name", &name, "-p", &publish, "--tmpfs", "/tmp"],
            &["sh", "-c", serve],
            "listening",
        );
        let relay = record_after_launch(&u, &name)["udp_relay_pid"]
            .as_u64()
            .unwrap_or_else(|| panic!("{backend}: no relay recorded"));
        assert!(alive(relay) && is_relay(relay), "{backend}: {relay}");
        // Two clients at once: each gets its own answer.
        let answers = udp_clients_ask(port, 2);
        assert_eq!(answers, ["echo:client0", "echo:client1"], "{backend}");
        // `hutch port` shows the mapping as published.
        let listed = hutch_ok(&u, &["port", &name]);
        assert_eq!(
            listed.trim(),
            format!("53/udp -> 127.0.0.1:{port}"),
            "{backend}"
        );
        // The container ends normally: its relay goes, the port is free.
        hutch_ok(&u, &["exec", &name, "touch", "/tmp/done"]);
        let run = r.wait();
        assert_eq!(run.code(), Some(0), "{backend}: {run}");
        assert!(run.stdout.contains("finished"), "{backend}: {run}");
        assert!(
            gone_within(relay, Duration::from_secs(10)),
            "{backend}: the relay {relay} outlived its container"
        );
        assert_nothing_left(&run, backend);
        assert!(
            UdpSocket::bind(("127.0.0.1", port)).is_ok(),
            "{backend}: port {port} still taken"
        );
    }
}

#[test]
fn the_relay_ends_with_its_container_and_a_taken_port_fails_first() {
    let Some(u) = TestUser::t1() else { return };
    if !helpers_present() {
        return;
    }
    for backend in BACKENDS {
        // A relayed host port that is taken: a clear error before start.
        let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
        let busy = taken.local_addr().unwrap().port();
        let r = run_published(&u, backend, &format!("127.0.0.1:{busy}:53/udp"));
        assert_eq!(r.code(), Some(125), "{backend}: {r}");
        assert!(
            r.stderr.contains(&format!(
                "publish port `127.0.0.1:{busy}/udp`: it is not free on the host"
            )),
            "{backend}: {r}"
        );
        assert!(r.stderr.contains("hint:"), "{backend}: {r}");
        assert_nothing_left(&r, backend);
        drop(taken);
        // A detached container removed with `rm -f` takes its relay along;
        // `-p IP::53/udp` (a free host port, which pasta would translate).
        let name = format!("relay-d-{backend}");
        let id = hutch_ok(
            &u,
            &[
                "run",
                "-d",
                "--name",
                &name,
                "--network",
                backend,
                "-p",
                "127.0.0.1::53/udp",
                "--rootfs",
                &images().rootfs(),
                "udpecho",
                "53",
                "60",
            ],
        );
        let listed = hutch_ok(&u, &["port", &name]);
        let port: u16 = listed
            .trim()
            .strip_prefix("53/udp -> 127.0.0.1:")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("{backend}: port lists {listed:?}"));
        let id = id.trim();
        let relay = record(&u, id)["udp_relay_pid"]
            .as_u64()
            .unwrap_or_else(|| panic!("{backend}: no relay recorded"));
        assert!(alive(relay) && is_relay(relay), "{backend}: {relay}");
        assert_eq!(udp_clients_ask(port, 1), ["echo:client0"], "{backend}");
        hutch_ok(&u, &["rm", "-f", id]);
        assert!(
            gone_within(relay, Duration::from_secs(10)),
            "{backend}: the relay {relay} outlived its container"
        );
        assert!(
            UdpSocket::bind(("127.0.0.1", port)).is_ok(),
            "{backend}: port {port} still taken"
        );
        // hutch killed in the foreground: the relay goes with it.
        let port = free_udp_port();
        let publish = format!("127.0.0.1:{port}:53/udp");
        let r = spawn_on(
            &u,
            backend,
            &["--rm", "-p", &publish],
            &["udpecho", "53", "60"],
            "listening",
        );
        assert_eq!(udp_clients_ask(port, 1), ["echo:client0"], "{backend}");
        r.signal(Signal::SIGKILL);
        let run = r.wait();
        assert_nothing_left(&run, backend);
        assert!(
            UdpSocket::bind(("127.0.0.1", port)).is_ok(),
            "{backend}: port {port} still taken"
        );
    }
}

#[test]
fn a_host_port_in_use_or_published_twice_is_a_clear_error() {
    let Some(u) = TestUser::t1() else { return };
    if !helpers_present() {
        return;
    }
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    for backend in BACKENDS {
        let publish = format!("127.0.0.1:{port}:80");
        let r = run_published(&u, backend, &publish);
        assert_eq!(r.code(), Some(125), "{r}");
        assert!(r.stderr.contains("not free on the host"), "{r}");
        assert!(r.stderr.contains("hint:"), "{r}");
        assert_nothing_left(&r, backend);
    }
    let r = hutch_run(
        &u,
        &[
            "run",
            "--rm",
            "-p",
            "8080:80",
            "-p",
            "8080:81",
            "--rootfs",
            &images().rootfs(),
            "true",
        ],
    );
    assert_eq!(r.code(), Some(125), "{r}");
    assert!(r.stderr.contains("publish host port 8080/tcp twice"), "{r}");
    let r = hutch_run(
        &u,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "-p",
            "8080:80",
            "--rootfs",
            &images().rootfs(),
            "true",
        ],
    );
    assert_eq!(r.code(), Some(125), "{r}");
}

/// A one-shot-per-connection HTTP server on the host's loopback.
fn host_server(stop: Arc<AtomicBool>) -> (u16, thread::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let port = l.local_addr().unwrap().port();
    let h = thread::spawn(move || {
        let end = Instant::now() + Duration::from_secs(60);
        while !stop.load(Ordering::SeqCst) && Instant::now() < end {
            match l.accept() {
                Ok((mut s, _)) => {
                    let _ = s.set_nonblocking(false);
                    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                    let mut buf = [0u8; 1024];
                    let _ = s.read(&mut buf);
                    let _ = s
                        .write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 14\r\n\r\nfrom-the-host\n");
                }
                Err(_) => thread::sleep(Duration::from_millis(20)),
            }
        }
    });
    (port, h)
}

#[test]
fn the_hosts_loopback_is_reachable_only_when_allowed() {
    let Some(u) = TestUser::t1() else { return };
    if !helpers_present() {
        return;
    }
    // In a namespace of the test's own: without the option, pasta sends
    // a connection to the gateway address out through the host's real
    // default route, and that must not leave the machine.
    let iso = StandInHost::new();
    let rootfs = images().rootfs();
    iso.within(|| {
        let stop = Arc::new(AtomicBool::new(false));
        let (port, server) = host_server(stop.clone());
        for backend in BACKENDS {
            // The gateway address is the way to the host on both backends.
            // (busybox's static wget and name lookups crash without NSS
            // libraries in the rootfs: nc and an address.)
            let script = format!(
                "gw=$(ip route | awk '/^default/ {{print $3}}'); \
                 printf 'GET / HTTP/1.0\\r\\n\\r\\n' | timeout 5 nc -w 3 $gw {port} || echo unreachable; \
                 echo \"hosts: $(grep -c \"^$gw.*host.containers.internal\" /etc/hosts)\""
            );
            let allowed = format!("{backend}:allow_host_loopback=true");
            let r = hutch_run(
                &u,
                &[
                    "run", "--rm", "--network", &allowed, "--rootfs", &rootfs, "sh", "-c",
                    &script,
                ],
            );
            assert!(r.stdout.contains("from-the-host"), "{backend} allowed: {r}");
            assert!(
                r.stdout.contains("hosts: 1"),
                "{backend}: /etc/hosts names the host: {r}"
            );
            // Control: the same request without the option does not arrive.
            let r = hutch_run(
                &u,
                &[
                    "run", "--rm", "--network", backend, "--rootfs", &rootfs, "sh", "-c",
                    &script,
                ],
            );
            assert!(
                !r.stdout.contains("from-the-host"),
                "{backend} default: {r}"
            );
            assert!(
                r.stdout.contains("unreachable") && r.stdout.contains("hosts: 0"),
                "{backend} default: {r}"
            );
        }
        stop.store(true, Ordering::SeqCst);
        server.join().unwrap();
    });
}

/// Answers every DNS query with one A record, 192.0.2.77 (RFC 1035 4.1).
fn dns_server(sock: UdpSocket, stop: Arc<AtomicBool>) -> thread::JoinHandle<usize> {
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    thread::spawn(move || {
        let mut answered = 0;
        let end = Instant::now() + Duration::from_secs(60);
        while !stop.load(Ordering::SeqCst) && Instant::now() < end {
            let mut q = [0u8; 512];
            let Ok((n, from)) = sock.recv_from(&mut q) else {
                continue;
            };
            if n < 12 {
                continue;
            }
            // Header: same id, QR|RD|RA, 1 question, 1 answer.
            let mut r = q[..n].to_vec();
            r[2] = 0x81;
            r[3] = 0x80;
            r[6..12].copy_from_slice(&[0, 1, 0, 0, 0, 0]);
            let qtype_a = n >= 4 && q[n - 4..n - 2] == [0, 1];
            if qtype_a {
                r[7] = 1;
                // Name pointer to the question, A, IN, TTL 60, 4 bytes.
                r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 77]);
            }
            let _ = sock.send_to(&r, from);
            answered += 1;
        }
        answered
    })
}

#[test]
fn dns_works_through_a_resolver_on_the_hosts_loopback() {
    let Some(u) = TestUser::t1() else { return };
    if !helpers_present() {
        return;
    }
    let sock = match UdpSocket::bind("127.0.0.1:53") {
        Ok(s) => s,
        Err(e) => panic!("bind the test resolver on 127.0.0.1:53: {e}"),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let server = dns_server(sock, stop.clone());
    // The host, as hutch and its helper see it, uses that resolver (as a
    // host with systemd-resolved or a local dnsmasq does).
    let resolv = u.root_dir.join("resolv.conf");
    std::fs::write(&resolv, "nameserver 127.0.0.1\n").unwrap();
    let opts = Opts {
        binds: vec![(resolv, PathBuf::from("/etc/resolv.conf"))],
        ..Opts::default()
    };
    for backend in BACKENDS {
        let r = run_hutch(
            &u,
            &[
                "run",
                "--rm",
                "--network",
                backend,
                "--rootfs",
                &images().rootfs(),
                "sh",
                "-c",
                "cat /etc/resolv.conf; nslookup -type=a hutch.test",
            ],
            &opts,
        );
        assert_eq!(r.code(), Some(0), "{backend}: {r}");
        assert!(r.stdout.contains("192.0.2.77"), "{backend}: {r}");
    }
    stop.store(true, Ordering::SeqCst);
    assert!(server.join().unwrap() > 0);
}

#[test]
fn dns_flags_and_add_host_are_written_and_checked() {
    let Some(u) = TestUser::t1() else { return };
    let r = hutch_run(
        &u,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "--dns",
            "192.0.2.53",
            "--dns-search",
            "example.org",
            "--dns-option",
            "ndots:2",
            "--add-host",
            "db:10.1.2.3",
            "--rootfs",
            &images().rootfs(),
            "cat",
            "/etc/resolv.conf",
            "/etc/hosts",
        ],
    );
    assert_eq!(r.code(), Some(0), "{r}");
    for line in [
        "search example.org",
        "nameserver 192.0.2.53",
        "options ndots:2",
        "10.1.2.3\tdb",
    ] {
        assert!(r.stdout.contains(line), "{line}: {r}");
    }
    let rootfs = images().rootfs();
    for bad in [
        vec!["--add-host", "x\n1.2.3.4 evil:1.1.1.1"],
        vec!["--dns", "not-an-ip"],
        vec!["--dns-search", "a\nnameserver 6.6.6.6"],
        vec!["--add-host", "gw:host-gateway", "--network", "none"],
        vec!["-p", "80/sctp"],
        vec!["--network", "pasta:frob=1"],
    ] {
        let mut args = vec!["run", "--rm"];
        args.extend(bad.iter().copied());
        args.extend(["--rootfs", &rootfs, "true"]);
        let r = hutch_run(&u, &args);
        assert_eq!(r.code(), Some(125), "{bad:?}: {r}");
    }
}

#[test]
fn each_backend_works_alone_and_none_is_said() {
    let Some(u) = TestUser::t1() else { return };
    if !helpers_present() {
        return;
    }
    let hide = |names: &[&str]| Opts {
        binds: names
            .iter()
            .map(|n| (PathBuf::from("/dev/null"), tool_path(n)))
            .collect(),
        ..Opts::default()
    };
    let ip = ["--rootfs", &images().rootfs(), "ip", "-o", "link"];
    let run = |opts: &Opts, net: &[&str]| {
        let mut args = vec!["run", "--rm"];
        args.extend(net);
        args.extend(ip);
        run_hutch(&u, &args, opts)
    };
    // The default network carries traffic: a published port reaches a
    // server in the container (its interfaces listed first).
    let serve = |opts: &Opts| {
        let port = free_port();
        let publish = format!("127.0.0.1:{port}:80");
        let mut r = spawn_hutch(
            &u,
            &[
                "run",
                "--rm",
                "-p",
                &publish,
                "--rootfs",
                &images().rootfs(),
                "sh",
                "-c",
                "ip -o link; echo ready; nc -l -p 80 -e sh -c 'read l; echo served-by-container; sleep 1'",
            ],
            opts,
        );
        let ready = r.wait_for_stdout("ready", Duration::from_secs(20));
        let got = if ready { fetch(port) } else { String::new() };
        let run = r.wait();
        assert!(got.contains("served-by-container"), "got {got:?}\n{run}");
        assert_eq!(run.code(), Some(0), "{run}");
        run
    };
    // Only slirp4netns: it is the default, and `hutch info` says so.
    let r = serve(&hide(&["pasta"]));
    assert!(r.stdout.contains("tap0"), "{r}");
    let info = run_hutch(&u, &["info"], &hide(&["pasta"]));
    assert!(
        info.stdout.contains("network:\n  default: slirp4netns\n"),
        "{info}"
    );
    let info = run_hutch(&u, &["info"], &Opts::default());
    assert!(
        info.stdout.contains("network:\n  default: pasta\n"),
        "{info}"
    );
    let r = run(&hide(&["pasta"]), &["--network", "pasta"]);
    assert_eq!(r.code(), Some(125), "{r}");
    assert!(
        r.stderr.contains("`pasta` is not on PATH") && r.stderr.contains("apt install passt"),
        "{r}"
    );
    // Only pasta.
    let r = serve(&hide(&["slirp4netns"]));
    let links = r.stdout.lines().filter(|l| l.contains(": <")).count();
    assert!(!r.stdout.contains("tap0") && links == 2, "{r}");
    // Neither: loopback only, and hutch says so once.
    let r = run(&hide(&["pasta", "slirp4netns"]), &[]);
    assert_eq!(r.code(), Some(0), "{r}");
    assert_eq!(r.stdout.lines().count(), 1, "{r}");
    assert_eq!(
        r.stderr.matches("no network but loopback").count(),
        1,
        "{r}"
    );
}

#[test]
fn a_failed_start_leaves_no_helper() {
    let Some(u) = TestUser::t1() else { return };
    if !helpers_present() {
        return;
    }
    for backend in BACKENDS {
        let r = hutch_run(
            &u,
            &[
                "run",
                "--rm",
                "--network",
                backend,
                "--rootfs",
                &images().rootfs(),
                "/no/such/command",
            ],
        );
        assert_eq!(r.code(), Some(127), "{r}");
        assert_nothing_left(&r, backend);
    }
}

#[test]
fn a_container_can_share_another_containers_network() {
    let Some(u) = TestUser::t1() else { return };
    if !helpers_present() {
        return;
    }
    let rootfs = images().rootfs();
    let server = "while true; do nc -l -p 7000 -e echo from-the-first; done";
    let id = hutch_ok(
        &u,
        &[
            "run", "-d", "--name", "first", "--rootfs", &rootfs, "sh", "-c", server,
        ],
    );
    let links = |args: &[&str]| {
        let mut all = vec!["run", "--rm"];
        all.extend(args);
        all.extend(["--rootfs", &rootfs, "sh", "-c"]);
        all.push("ip -o link | cut -d' ' -f2; echo x | nc -w 5 127.0.0.1 7000; ps -o pid,comm | wc -l; exit 3");
        hutch_run(&u, &all)
    };
    let r = links(&["--network", "container:first"]);
    // The first container's interfaces and its loopback server; its own
    // processes only (ps, sh, header); the command's exit code.
    assert_eq!(r.code(), Some(3), "{r}");
    assert!(
        r.stdout.contains("lo:") && r.stdout.lines().filter(|l| l.ends_with(':')).count() == 2,
        "{r}"
    );
    assert!(r.stdout.contains("from-the-first"), "{r}");
    assert_nothing_left(&r, "shared network");
    // Control: a container of its own network does not reach that server.
    let r = links(&[]);
    assert!(!r.stdout.contains("from-the-first"), "{r}");
    // Flags that configure a network conflict, as in Docker; a container
    // that is not running has no network to share.
    for bad in [
        vec!["-p", "80:80"],
        vec!["--dns", "192.0.2.1"],
        vec!["--hostname", "x"],
    ] {
        let mut args = vec!["run", "--rm", "--network", "container:first"];
        args.extend(bad.iter().copied());
        args.extend(["--rootfs", &rootfs, "true"]);
        assert_eq!(hutch_run(&u, &args).code(), Some(125), "{bad:?}");
    }
    hutch_ok(&u, &["rm", "-f", id.trim()]);
    let r = hutch_run(
        &u,
        &[
            "run",
            "--rm",
            "--network",
            "container:first",
            "--rootfs",
            &rootfs,
            "true",
        ],
    );
    assert_eq!(r.code(), Some(125), "{r}");
}

/// Whether a TCP connection to `addr` is accepted within a second.
fn connects(addr: std::net::SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
}

#[test]
fn mappings_with_different_host_addresses_each_bind_their_own() {
    let Some(u) = TestUser::t1() else { return };
    if !helpers_present() {
        return;
    }
    for backend in BACKENDS {
        // Every address (`-p P:90`) and loopback only (`-p 127.0.0.1:Q:80`).
        let (any, lo) = (free_port(), free_port());
        let name = format!("two-{backend}");
        let (p1, p2) = (format!("{any}:90"), format!("127.0.0.1:{lo}:80"));
        let r = spawn_on(
            &u,
            backend,
            &["--name", &name, "-p", &p1, "-p", &p2],
            &[
                "sh",
                "-c",
                "nc -l -p 90 -e sh -c 'read l; echo served-on-90; sleep 1' & \
                 echo ready; nc -l -p 80 -e sh -c 'read l; echo served-on-80; sleep 1'; wait",
            ],
            "ready",
        );
        // Each mapping on its own address. pasta binds the wildcard one on
        // ::1 too, and the loopback one must not be there (a refused
        // connection never reaches the one-shot server); slirp4netns binds
        // IPv4 only.
        let v6 = backend == "pasta";
        if v6 {
            let addr = std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, lo));
            assert!(!connects(addr), "{backend}: 127.0.0.1:{lo} also on ::1");
        }
        let any_ip: std::net::IpAddr = if v6 {
            std::net::Ipv6Addr::LOCALHOST.into()
        } else {
            std::net::Ipv4Addr::LOCALHOST.into()
        };
        let (got90, got80) = (fetch_at(any_ip, any), fetch(lo));
        let run = r.wait();
        assert!(
            got90.contains("served-on-90"),
            "{backend}: {got90:?}\n{run}"
        );
        assert!(
            got80.contains("served-on-80"),
            "{backend}: {got80:?}\n{run}"
        );
        assert_eq!(run.code(), Some(0), "{backend}: {run}");
        assert_nothing_left(&run, backend);
        let ports = hutch_ok(&u, &["port", &name]);
        assert!(
            ports.contains(&format!("90/tcp -> 0.0.0.0:{any}")),
            "{ports}"
        );
        assert!(
            ports.contains(&format!("80/tcp -> 127.0.0.1:{lo}")),
            "{ports}"
        );
        hutch_ok(&u, &["rm", &name]);
    }
}

#[test]
fn user_mode_networks_give_ipv6_and_pasta_publishes_on_it() {
    let Some(u) = TestUser::t1() else { return };
    if !helpers_present() {
        return;
    }
    // The backends give the container IPv6 where the host has a global
    // IPv6 route (the routes pasta copies; slirp4netns routes through
    // the host's sockets); ::1 alone is not a host with IPv6.
    let v6_lo = UdpSocket::bind("[::1]:0").is_ok();
    let (_, routes) = host("ip", &["-6", "route", "show", "default"]);
    let v6_route = routes.lines().any(|l| l.starts_with("default "));
    if !require(
        "IPv6 on the host",
        v6_lo && v6_route,
        &format!("::1 bindable: {v6_lo}; a global IPv6 default route: {v6_route} (`ip -6 route`)"),
    ) {
        return;
    }
    let rootfs = images().rootfs();
    // slirp4netns's address comes from its router advertisement (SLAAC):
    // wait for it, at most 10 s.
    let script = "for i in $(seq 20); do \
                    ip -o -6 addr show scope global | grep -v tentative | grep -q inet6 && break; \
                    sleep 0.5; done; \
                  ip -o -6 addr show scope global; ip -6 route show default";
    for backend in BACKENDS {
        let r = hutch_run(
            &u,
            &[
                "run",
                "--rm",
                "--network",
                backend,
                "--rootfs",
                &rootfs,
                "sh",
                "-c",
                script,
            ],
        );
        assert_eq!(r.code(), Some(0), "{backend}: {r}");
        assert!(
            r.stdout.contains("inet6 "),
            "{backend}: no IPv6 address: {r}"
        );
        assert!(
            r.stdout.contains("default via"),
            "{backend}: no IPv6 route: {r}"
        );
    }
    // pasta publishes on an IPv6 host address; slirp4netns says it cannot.
    let port = free_port();
    let publish = format!("[::1]:{port}:80");
    let r = run_published(&u, "slirp4netns", &publish);
    assert_eq!(r.code(), Some(125), "{r}");
    assert!(r.stderr.contains("IPv4 addresses only"), "{r}");
    let r = spawn_on(
        &u,
        "pasta",
        &["--rm", "-p", &publish],
        &[
            "sh",
            "-c",
            "echo ready; nc -l -p 80 -e sh -c 'read l; echo served-over-ipv6; sleep 1'",
        ],
        "ready",
    );
    let got = fetch_at(std::net::Ipv6Addr::LOCALHOST.into(), port);
    let run = r.wait();
    assert!(got.contains("served-over-ipv6"), "{got:?}\n{run}");
    assert_eq!(run.code(), Some(0), "{run}");
}

/// The container's record, read from the host as root.
fn record(u: &TestUser, id: &str) -> serde_json::Value {
    let path = u
        .data_dir
        .join(format!("hutch/containers/{}/state.json", id.trim()));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// Whether `pid` is a live (not zombie) process.
fn alive(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, r)| !r.starts_with('Z')))
        .unwrap_or(false)
}

/// Waits (bounded) until `pid` is gone.
fn gone_within(pid: u64, limit: Duration) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if !alive(pid) {
            return true;
        }
        thread::sleep(Duration::from_millis(50));
    }
    !alive(pid)
}

/// `run -d` of a container publishing `publish`, that sleeps.
fn run_detached(u: &TestUser, name: &str, net: &str, publish: &str) -> String {
    run_detached_publishing(u, name, net, &[publish])
}

/// `run -d` of a container publishing each of `publish`, that sleeps.
fn run_detached_publishing(u: &TestUser, name: &str, net: &str, publish: &[&str]) -> String {
    let rootfs = images().rootfs();
    let mut args = vec!["run", "-d", "--name", name, "--network", net];
    for p in publish {
        args.extend(["-p", p]);
    }
    args.extend(["--rootfs", &rootfs, "sleep", "60"]);
    hutch_ok(u, &args).trim().to_string()
}

/// The network the tests publish UDP through, per backend.
fn udp_net(backend: &str) -> String {
    if backend == "slirp4netns" {
        format!("{backend}:allow_host_loopback=true")
    } else {
        backend.to_string()
    }
}

#[test]
fn a_second_container_on_a_published_port_is_a_clear_error() {
    let Some(u) = TestUser::t1() else { return };
    if !helpers_present() {
        return;
    }
    for backend in BACKENDS {
        for proto in ["tcp", "udp"] {
            let port = free_port();
            // pasta forwards UDP to the same number only.
            let publish = format!("127.0.0.1:{port}:{port}/{proto}");
            let net = udp_net(backend);
            let name = format!("first-{backend}-{proto}");
            let id = run_detached(&u, &name, &net, &publish);
            let helper = record(&u, &id)["net_helper_pid"].as_u64();
            assert!(helper.is_some_and(alive), "{backend}/{proto}: no helper");
            let r = run_published(&u, &net, &publish);
            assert_eq!(r.code(), Some(125), "{backend}/{proto}: {r}");
            assert!(
                r.stderr.contains(&format!(
                    "publish port `127.0.0.1:{port}/{proto}`: it is not free on the host"
                )),
                "{backend}/{proto}: {r}"
            );
            assert!(r.stderr.contains("hint:"), "{backend}/{proto}: {r}");
            assert_nothing_left(&r, backend);
            // The first one still runs, its helper too.
            assert!(helper.is_some_and(alive), "{backend}/{proto}");
            hutch_ok(&u, &["rm", "-f", &id]);
        }
    }
}

#[test]
fn the_helper_ends_with_a_detached_container_however_it_ends() {
    let Some(u) = TestUser::t1() else { return };
    if !helpers_present() {
        return;
    }
    for backend in BACKENDS {
        for how in [
            "init killed",
            "hutch kill",
            "hutch rm -f",
            "supervisor killed",
        ] {
            let name = format!("end-{backend}-{}", how.replace(' ', "-"));
            let port = free_port();
            let publish = format!("127.0.0.1:{port}:80");
            // And a UDP port hutch relays itself: its relay ends too.
            let udp = free_udp_port();
            let relayed = format!("127.0.0.1:{udp}:53/udp");
            let id = run_detached_publishing(&u, &name, backend, &[&publish, &relayed]);
            let rec = record(&u, &id);
            let helper = rec["net_helper_pid"].as_u64().expect("helper pid");
            assert!(alive(helper), "{backend}, {how}: helper not running");
            let relay = rec["udp_relay_pid"].as_u64().expect("relay pid");
            assert!(is_relay(relay), "{backend}, {how}: relay not running");
            let comm = std::fs::read_to_string(format!("/proc/{helper}/comm")).unwrap();
            let want = if backend == "pasta" {
                "pas"
            } else {
                "slirp4netns"
            };
            assert!(comm.starts_with(want), "{backend}: helper is {comm:?}");
            let kill9 = |pid: u64| {
                let (ok, out) = host("kill", &["-KILL", &pid.to_string()]);
                assert!(ok, "{backend}, {how}: kill {pid}: {out}");
            };
            match how {
                "init killed" => kill9(rec["pid"].as_u64().expect("init pid")),
                "hutch kill" => drop(hutch_ok(&u, &["kill", &id])),
                "hutch rm -f" => drop(hutch_ok(&u, &["rm", "-f", &id])),
                _ => kill9(rec["supervisor"]["pid"].as_u64().expect("supervisor pid")),
            }
            assert!(
                gone_within(helper, Duration::from_secs(10)),
                "{backend}, {how}: the helper {helper} outlived its container"
            );
            assert!(
                gone_within(relay, Duration::from_secs(10)),
                "{backend}, {how}: the relay {relay} outlived its container"
            );
            assert!(
                UdpSocket::bind(("127.0.0.1", udp)).is_ok(),
                "{backend}, {how}: UDP port {udp} still taken"
            );
            // Its port is free again.
            assert!(
                TcpListener::bind(("127.0.0.1", port)).is_ok(),
                "{backend}, {how}: port {port} still taken"
            );
            let r = hutch_run(&u, &["rm", "-f", &id]);
            assert!(r.code() == Some(0) || how == "hutch rm -f", "{r}");
        }
    }
}

/// A copy of the test OCI layout whose `latest` EXPOSEs `exposed`;
/// returns its `oci:DIR:latest` reference.
fn image_exposing(u: &TestUser, exposed: &[&str]) -> String {
    use sha2::Digest;
    let dir = u.root_dir.join("oci-expose");
    let (ok, out) = host(
        "cp",
        &[
            "-a",
            &images().oci.display().to_string(),
            &dir.display().to_string(),
        ],
    );
    assert!(ok, "copy the layout: {out}");
    let blob = |digest: &str| {
        dir.join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    };
    let put = |bytes: &[u8]| -> (String, usize) {
        let digest = format!("sha256:{:x}", sha2::Sha256::digest(bytes));
        std::fs::write(blob(&digest), bytes).unwrap();
        (digest, bytes.len())
    };
    let read = |p: PathBuf| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap()
    };
    let mut index = read(dir.join("index.json"));
    let entry = index["manifests"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == "latest")
        .expect("latest in the test layout");
    let mut manifest = read(blob(entry["digest"].as_str().unwrap()));
    let mut config = read(blob(manifest["config"]["digest"].as_str().unwrap()));
    config["config"]["ExposedPorts"] = exposed
        .iter()
        .map(|p| (p.to_string(), serde_json::json!({})))
        .collect::<serde_json::Map<_, _>>()
        .into();
    let (digest, size) = put(&serde_json::to_vec(&config).unwrap());
    manifest["config"]["digest"] = digest.into();
    manifest["config"]["size"] = size.into();
    let (digest, size) = put(&serde_json::to_vec(&manifest).unwrap());
    entry["digest"] = digest.into();
    entry["size"] = size.into();
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    format!("oci:{}:latest", dir.display())
}

/// Two host ports in a row, both free.
fn free_pair() -> u16 {
    for _ in 0..50 {
        let p = free_port();
        if p < u16::MAX && TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
    panic!("no two free ports in a row");
}

/// The host ports `hutch port NAME` lists for container ports 80 and 81.
fn listed_ports(u: &TestUser, name: &str, host_ip: &str) -> Vec<u16> {
    let out = hutch_ok(u, &["port", name]);
    ["80/tcp", "81/tcp"]
        .iter()
        .map(|c| {
            let line = out
                .lines()
                .find(|l| l.starts_with(&format!("{c} -> {host_ip}:")))
                .unwrap_or_else(|| panic!("{c} not listed: {out}"));
            line.rsplit(':').next().unwrap().parse().unwrap()
        })
        .collect()
}

#[test]
fn publish_all_and_port_ranges_reach_the_container() {
    let Some(u) = TestUser::t1() else { return };
    if !helpers_present() {
        return;
    }
    let image = image_exposing(&u, &["80/tcp", "81/tcp"]);
    let rootfs = images().rootfs();
    let serve = "nc -l -p 80 -e sh -c 'read l; echo served-on-80; sleep 1' & \
                 echo ready; nc -l -p 81 -e sh -c 'read l; echo served-on-81; sleep 1'; wait";
    for backend in BACKENDS {
        let first = free_pair();
        let range = format!("127.0.0.1:{first}-{}:80-81", first + 1);
        let ways: [(&str, Vec<&str>, &str); 2] = [
            ("P", vec!["-P", &image], "0.0.0.0"),
            (
                "range",
                vec!["-p", &range, "--rootfs", &rootfs],
                "127.0.0.1",
            ),
        ];
        for (way, flags, host_ip) in ways {
            let name = format!("{way}-{backend}");
            let mut args = vec!["run", "--name", &name, "--network", backend];
            args.extend(flags);
            args.extend(["sh", "-c", serve]);
            let mut r = spawn_hutch(&u, &args, &Opts::default());
            assert!(
                r.wait_for_stdout("ready", Duration::from_secs(20)),
                "{backend} {way}"
            );
            let ports = listed_ports(&u, &name, host_ip);
            if way == "range" {
                assert_eq!(ports, [first, first + 1], "{backend}");
            }
            let (got80, got81) = (fetch(ports[0]), fetch(ports[1]));
            let run = r.wait();
            assert!(
                got80.contains("served-on-80"),
                "{backend} {way}: {got80:?}\n{run}"
            );
            assert!(
                got81.contains("served-on-81"),
                "{backend} {way}: {got81:?}\n{run}"
            );
            assert_eq!(run.code(), Some(0), "{backend} {way}: {run}");
            assert_nothing_left(&run, backend);
            hutch_ok(&u, &["rm", &name]);
        }
    }
}

/// A network namespace with a veth pair to the host: the host end has
/// `.1`, the namespace's `.2` of a /30. Deleted when dropped.
struct PeerNs {
    name: String,
    host_ip: std::net::Ipv4Addr,
    peer_ip: std::net::Ipv4Addr,
}

impl PeerNs {
    fn new() -> PeerNs {
        let id = std::process::id();
        let name = format!("hutch-net-{id}");
        let (veth, peer) = (
            format!("hn{}a", id % 100_000),
            format!("hn{}b", id % 100_000),
        );
        let octet = (id % 250) as u8;
        let host_ip = std::net::Ipv4Addr::new(10, 213, octet, 1);
        let peer_ip = std::net::Ipv4Addr::new(10, 213, octet, 2);
        let ns = PeerNs {
            name: name.clone(),
            host_ip,
            peer_ip,
        };
        let steps: [Vec<String>; 7] = [
            vec!["netns".into(), "add".into(), name.clone()],
            vec![
                "link".into(),
                "add".into(),
                veth.clone(),
                "type".into(),
                "veth".into(),
                "peer".into(),
                "name".into(),
                peer.clone(),
                "netns".into(),
                name.clone(),
            ],
            vec![
                "addr".into(),
                "add".into(),
                format!("{host_ip}/30"),
                "dev".into(),
                veth.clone(),
            ],
            vec!["link".into(), "set".into(), veth, "up".into()],
            vec![
                "-n".into(),
                name.clone(),
                "addr".into(),
                "add".into(),
                format!("{peer_ip}/30"),
                "dev".into(),
                peer.clone(),
            ],
            vec![
                "-n".into(),
                name.clone(),
                "link".into(),
                "set".into(),
                peer,
                "up".into(),
            ],
            vec![
                "-n".into(),
                name,
                "link".into(),
                "set".into(),
                "lo".into(),
                "up".into(),
            ],
        ];
        for step in steps {
            let args: Vec<&str> = step.iter().map(String::as_str).collect();
            let (ok, out) = host("ip", &args);
            assert!(ok, "ip {args:?}: {out}");
        }
        ns
    }

    /// `fetch_at(ip, port)` from inside the namespace.
    fn fetch(&self, ip: std::net::Ipv4Addr, port: u16) -> String {
        let path = format!("/run/netns/{}", self.name);
        thread::spawn(move || {
            let f = std::fs::File::open(&path).expect("open the namespace");
            // Only this thread moves.
            nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            fetch_at(ip.into(), port)
        })
        .join()
        .unwrap()
    }
}

impl Drop for PeerNs {
    fn drop(&mut self) {
        // The veth pair goes with the namespace.
        let _ = host("ip", &["netns", "del", &self.name]);
    }
}

/// The peer address in the container's `netstat` line (`peer=ADDR:PORT`),
/// without the IPv4-mapped prefix.
fn peer_seen(out: &str) -> String {
    let line = out.lines().find_map(|l| l.strip_prefix("peer="));
    let addr = line.unwrap_or_else(|| panic!("no peer in {out:?}"));
    let addr = addr.trim().trim_start_matches("::ffff:");
    addr.rsplit_once(':').map_or(addr, |(a, _)| a).to_string()
}

#[test]
fn the_container_sees_the_client_address_where_the_backend_gives_it() {
    let Some(u) = TestUser::t1() else { return };
    if !helpers_present() {
        return;
    }
    let ns = PeerNs::new();
    // One connection at a time: each handler prints the peer of its
    // established connection to port 80.
    let serve = "echo ready; for i in 1 2; do \
                 nc -l -p 80 -e sh -c \"read l; netstat -tn | awk '\\$4 ~ /:80\\$/ && /ESTABLISHED/ {print \\\"peer=\\\" \\$5}'\"; \
                 done";
    for backend in BACKENDS {
        let port = free_port();
        // Every host address: the namespace reaches it through the veth.
        let publish = format!("{port}:80");
        let r = spawn_on(
            &u,
            backend,
            &["--rm", "-p", &publish],
            &["sh", "-c", serve],
            "ready",
        );
        let from_lo = fetch(port);
        let from_ns = ns.fetch(ns.host_ip, port);
        let run = r.wait();
        assert_eq!(run.code(), Some(0), "{backend}: {run}");
        // A client on the host's loopback: pasta splices it through its
        // own socket on the container's loopback, slirp4netns shows its
        // gateway (the host) address. Neither can give 127.0.0.1 as such.
        let lo_seen = if backend == "pasta" {
            "127.0.0.1"
        } else {
            "10.0.2.2"
        };
        assert_eq!(
            peer_seen(&from_lo),
            lo_seen,
            "{backend}: {from_lo:?}\n{run}"
        );
        // A client on another address: both give it as it is.
        assert_eq!(
            peer_seen(&from_ns),
            ns.peer_ip.to_string(),
            "{backend}: {from_ns:?}\n{run}"
        );
    }
}

#[test]
fn host_networking_shares_the_hosts_interfaces_and_loopback() {
    let Some(u) = TestUser::t1() else { return };
    let stop = Arc::new(AtomicBool::new(false));
    let (port, server) = host_server(stop.clone());
    let script = format!(
        "ip -o link | cut -d' ' -f2; \
         printf 'GET / HTTP/1.0\\r\\n\\r\\n' | timeout 5 nc -w 3 127.0.0.1 {port} || echo unreachable"
    );
    let r = hutch_run(
        &u,
        &[
            "run",
            "--rm",
            "--network",
            "host",
            "--rootfs",
            &images().rootfs(),
            "sh",
            "-c",
            &script,
        ],
    );
    stop.store(true, Ordering::SeqCst);
    server.join().unwrap();
    assert_eq!(r.code(), Some(0), "{r}");
    // The host's interfaces, by name, as the host lists them.
    let (ok, links) = host("sh", &["-c", "ip -o link | cut -d' ' -f2"]);
    assert!(ok, "{links}");
    for name in links.lines().filter(|l| !l.is_empty()) {
        assert!(r.stdout.lines().any(|l| l == name), "{name} missing: {r}");
    }
    // A server on the host's loopback, with no option.
    assert!(r.stdout.contains("from-the-host"), "{r}");
}

/// A network namespace of the test's own standing in for the host: lo and
/// a veth pair with IPv4 and IPv6 default routes through one end. A
/// backend started there copies its addresses and gateways; the other
/// end, in the same namespace and without addresses, answers nothing: no
/// probe of the gateway addresses leaves the namespace.
struct StandInHost {
    name: String,
}

impl StandInHost {
    fn new() -> StandInHost {
        // Unique per test: tests of one binary run in parallel.
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "hutch-iso-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let _ = host("ip", &["netns", "del", &name]);
        let ns = StandInHost { name: name.clone() };
        let n = name.as_str();
        for step in [
            vec!["netns", "add", n],
            vec!["-n", n, "link", "set", "lo", "up"],
            vec![
                "-n", n, "link", "add", "d0", "type", "veth", "peer", "name", "d1",
            ],
            vec!["-n", n, "link", "set", "d1", "up"],
            vec!["-n", n, "addr", "add", "10.77.0.2/24", "dev", "d0"],
            vec!["-n", n, "addr", "add", "fd77::2/64", "dev", "d0", "nodad"],
            vec!["-n", n, "link", "set", "d0", "up"],
            vec!["-n", n, "route", "add", "default", "via", "10.77.0.1"],
            vec!["-n", n, "-6", "route", "add", "default", "via", "fd77::1"],
        ] {
            let (ok, out) = host("ip", &step);
            assert!(ok, "ip {step:?}: {out}");
        }
        ns
    }

    /// Runs `f` on a thread moved into the namespace (what it spawns,
    /// hutch included, starts there).
    fn within<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        thread::scope(|s| {
            s.spawn(move || {
                let ns = std::fs::File::open(&path).expect("open the namespace");
                // Only this thread moves.
                nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
                f()
            })
            .join()
            .unwrap()
        })
    }
}

impl Drop for StandInHost {
    fn drop(&mut self) {
        let _ = host("ip", &["netns", "del", &self.name]);
    }
}

/// `host_server` on 127.0.0.1 and ::1, the same port on both.
fn loopback_server(stop: Arc<AtomicBool>) -> (u16, thread::JoinHandle<()>) {
    let v4 = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = v4.local_addr().unwrap().port();
    let v6 = TcpListener::bind(("::1", port)).unwrap();
    let h = thread::spawn(move || {
        for l in [&v4, &v6] {
            l.set_nonblocking(true).unwrap();
        }
        let end = Instant::now() + Duration::from_secs(120);
        while !stop.load(Ordering::SeqCst) && Instant::now() < end {
            for l in [&v4, &v6] {
                if let Ok((mut s, _)) = l.accept() {
                    let _ = s.set_nonblocking(false);
                    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                    let mut buf = [0u8; 1024];
                    let _ = s.read(&mut buf);
                    let _ = s
                        .write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 14\r\n\r\nfrom-the-host\n");
                }
            }
            thread::sleep(Duration::from_millis(20));
        }
    });
    (port, h)
}

/// The addresses by which a backend's container would reach the host's
/// loopback: its gateways (pasta's are the host's, copied) and
/// slirp4netns's fixed host addresses.
fn host_addresses(backend: &str) -> [&'static str; 2] {
    if backend == "pasta" {
        ["10.77.0.1", "fd77::1"]
    } else {
        ["10.0.2.2", "fd00::2"]
    }
}

#[test]
fn nothing_is_published_and_the_hosts_loopback_stays_closed_unless_asked() {
    let Some(u) = TestUser::t1() else { return };
    if !helpers_present() {
        return;
    }
    let iso = StandInHost::new();
    let rootfs = images().rootfs();
    iso.within(|| {
        let stop = Arc::new(AtomicBool::new(false));
        let (port, server) = loopback_server(stop.clone());
        // Inside: a server on 8080, unpublished; then one request to
        // the host's loopback port through each host address (slirp4netns
        // takes its IPv6 address from a router advertisement: wait for
        // it, at most 10 s).
        let probe = |addrs: [&str; 2]| {
            format!(
                "nc -l -p 8080 -e echo served-by-container & echo listening; sleep 5; \
                 for i in $(seq 20); do \
                   ip -o -6 addr show scope global | grep -v tentative | grep -q inet6 && break; \
                   sleep 0.5; done; \
                 for a in {} {}; do \
                   printf 'GET / HTTP/1.0\\r\\n\\r\\n' | timeout 5 nc -w 3 $a {port} > /tmp/got 2>&1; \
                   if grep -q from-the-host /tmp/got; then echo \"$a reached\"; else echo \"$a closed\"; fi; \
                 done",
                addrs[0], addrs[1]
            )
        };
        for backend in BACKENDS {
            let addrs = host_addresses(backend);
            let script = probe(addrs);
            let r = spawn_on(&u, backend, &["--rm"], &["sh", "-c", &script], "listening");
            // pasta's default would forward every port the container
            // listens on, found by a scan each second: try for 4 s.
            let mut published = Vec::new();
            let end = Instant::now() + Duration::from_secs(4);
            while Instant::now() < end {
                for ip in ["127.0.0.1", "::1"] {
                    let addr = std::net::SocketAddr::new(ip.parse().unwrap(), 8080);
                    if connects(addr) {
                        published.push(addr);
                    }
                }
                thread::sleep(Duration::from_millis(250));
            }
            let run = r.wait();
            assert_eq!(run.code(), Some(0), "{backend}: {run}");
            assert!(published.is_empty(), "{backend}: published {published:?}\n{run}");
            for a in addrs {
                assert!(
                    run.stdout.contains(&format!("{a} closed")),
                    "{backend}: the host's loopback through {a}: {run}"
                );
            }
            // Control: with the option, the same addresses do reach it.
            let allowed = format!("{backend}:allow_host_loopback=true");
            let script = probe(addrs).replace("sleep 5", "true");
            let r = hutch_run(
                &u,
                &[
                    "run", "--rm", "--network", &allowed, "--rootfs", &rootfs, "sh", "-c",
                    &script,
                ],
            );
            assert_eq!(r.code(), Some(0), "{backend}: {r}");
            for a in addrs {
                assert!(
                    r.stdout.contains(&format!("{a} reached")),
                    "{backend} allowed: the host's loopback through {a}: {r}"
                );
            }
        }
        stop.store(true, Ordering::SeqCst);
        server.join().unwrap();
    });
}

#[test]
fn ping_works_without_net_raw_in_the_containers_own_network() {
    let Some(u) = TestUser::t1() else { return };
    if !helpers_present() {
        return;
    }
    let rootfs = images().rootfs();
    // pingprobe echoes 127.0.0.1 over an ICMP datagram socket, as
    // iputils' ping does without CAP_NET_RAW (busybox's ping opens a raw
    // socket only); the namespace's ping_group_range must allow it.
    let script = "cat /proc/sys/net/ipv4/ping_group_range; ip -o link show lo; pingprobe";
    for net in ["none", "pasta", "slirp4netns"] {
        let r = hutch_run(
            &u,
            &[
                "run",
                "--rm",
                "--network",
                net,
                "--rootfs",
                &rootfs,
                "sh",
                "-c",
                script,
            ],
        );
        assert_eq!(r.code(), Some(0), "{net}: {r}");
        assert!(r.stdout.starts_with("0\t0\n"), "{net}: {r}");
        assert!(r.stdout.contains(",UP"), "{net}: lo is down: {r}");
        assert!(r.stdout.contains("ping: ok"), "{net}: {r}");
    }
    // The host's own setting is left alone, --network host included.
    let range = "/proc/sys/net/ipv4/ping_group_range";
    let before = std::fs::read_to_string(range).unwrap();
    let r = hutch_run(
        &u,
        &[
            "run",
            "--rm",
            "--network",
            "host",
            "--rootfs",
            &rootfs,
            "cat",
            range,
        ],
    );
    assert_eq!(r.code(), Some(0), "{r}");
    // (Seen through the user namespace: unmapped groups read as 65534.)
    assert!(!r.stdout.starts_with("0\t0"), "{r}");
    assert_eq!(std::fs::read_to_string(range).unwrap(), before);
}
