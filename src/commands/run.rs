//! `hutch run`: a recipe of named stages (DESIGN.md, "Data flow").
//! Runs in the user's own process; the container is its descendant.

use std::path::{Path, PathBuf};

use anyhow::Context;
use caps::CapsHashSet;

use crate::cli::RunArgs;
use crate::errors::WithHint;
use crate::image::{self, ImageRef};
use crate::plan::{self, Inputs, Network, Plan};
use crate::rootfs::RootfsMount;
use crate::sandbox::{child, parent, seccomp, supervisor};
use crate::state::{self, Container, Dirs, ProcId, State};
use crate::store::Store;
use crate::userns::{self, IdMaps};

pub fn run(args: RunArgs) -> anyhow::Result<i32> {
    let dirs = Dirs::new()?;
    if let Some(w) = crate::rootfs::network_warning(&dirs) {
        eprintln!("{w}");
    }
    let (source, command) = source_and_command(&args)?;
    refuse_detached_tty(&args)?;
    // Checked first: a bad flag or config file fails before any work.
    let explicit_driver = crate::rootfs::driver::explicit(args.storage_driver.as_deref())?;
    let id = state::new_id()?;
    let mut first = State::new(&id, args.name.as_deref());
    let container = Container::create(&dirs, &mut first)?;
    // From here on, the container's directories go away on every error.
    let mut cleanup = Cleanup {
        container: &container,
        maps: None,
        keep: false,
    };
    // Opened once: each open takes the store lock and tidies its temp files.
    // `oci:` images too: their layers are unpacked into the store's shared
    // layers, keyed by diff_id, and go through the storage ladder.
    let store = matches!(source, Source::Stored(_) | Source::Image(_))
        .then(|| Store::open(&dirs))
        .transpose()?;
    let (image, diff_ids) = open_image(&source, &container, store.as_ref(), &args)?.unzip();
    let config = image.as_ref().map(|i| &i.config);
    let mut plan = make_plan(&args, config, &command, &id, &container.run_dir, &dirs.data)?;
    settle_network(&args, &mut plan)?;
    let mut record = new_record(&plan, &source, image.as_ref(), &container);
    // The name given, or the one `create` generated.
    record.name = first.name.clone();
    record.volumes = plan.named_volumes.clone();
    // A concurrent `image prune` keeps the layers a container lists.
    record.layers = diff_ids.clone().unwrap_or_default();
    // Images stand on shared layers: choose how (DESIGN.md, storage).
    let storage = store
        .is_some()
        .then(|| crate::rootfs::driver::decide(explicit_driver, &dirs, false))
        .transpose()?;
    record.storage = storage.clone();
    // Saved before the slow steps, so `ps -a` and `rm` see an interrupted start.
    container.save(&dirs, &record)?;
    // After the save: from here `volume prune` sees them in use.
    for name in &plan.named_volumes {
        crate::volume::ensure(&dirs.data, name)?;
    }
    let maps = id_maps(&plan)?;
    cleanup.maps = Some(maps.clone());
    let (rootfs, mount) = match (&store, image.as_ref(), diff_ids, &storage) {
        (Some(store), Some(img), Some(diff_ids), Some(choice)) => {
            crate::rootfs::prepare(store, img, &diff_ids, &container, &maps, choice)?
        }
        _ => (plain_rootfs(&source)?, RootfsMount::Plain),
    };
    // An `oci-archive:`'s extracted layout is not needed past the unpack.
    drop(image);
    let shared = shared_network(&dirs, &plan, &maps)?;
    write_etc_files(&container, &plan, shared.as_ref())?;
    let config_json = container.run_dir.join("config.json");
    plan::spec::write(&plan, &rootfs, &maps, &config_json)?;
    let launch = Launch {
        plan: &plan,
        rootfs: &rootfs,
        mount: &mount,
        maps: &maps,
        run_dir: &container.run_dir,
        join: shared.as_ref().map(|s| &s.init),
    };
    // Only `start` and `restart` read it; a foreground `--rm` container is
    // gone before either could.
    if args.create_only || args.detach || !plan.remove {
        super::start::save_launch(&container, &launch)?;
    }
    let code = go(&args, &launch, &dirs, &container, &mut record)?;
    // A created container stays; a supervisor owns a detached one,
    // --rm included.
    cleanup.keep = args.create_only || args.detach || !plan.remove;
    Ok(code)
}

fn refuse_detached_tty(args: &RunArgs) -> anyhow::Result<()> {
    if args.detach && args.tty {
        return Err(anyhow::anyhow!(
            "run a detached container with a terminal: not supported yet"
        ))
        .hint("drop -t; read its output with `hutch logs`");
    }
    Ok(())
}

/// `create` stops here and `-d` hands over to a supervisor, both
/// printing the id; otherwise the container runs in the foreground.
fn go(
    args: &RunArgs,
    l: &Launch<'_>,
    dirs: &Dirs,
    c: &Container,
    record: &mut State,
) -> anyhow::Result<i32> {
    if !args.create_only && !args.detach {
        return start_and_wait(l, dirs, c, record);
    }
    if args.detach {
        start_detached(l, dirs, c, record)?;
    }
    println!("{}", c.id);
    Ok(0)
}

fn new_record(plan: &Plan, source: &Source, image: Option<&image::Image>, c: &Container) -> State {
    State {
        image: source_name(source),
        image_id: image.map(|i| i.id.clone()).unwrap_or_default(),
        command: plan.process.args.clone(),
        rootfs: rootfs_path(source, c),
        config: config_of(plan),
        ports: plan.ports.clone(),
        ..State::new(&c.id, plan.name.as_deref())
    }
}

/// The part of the plan `inspect` shows.
fn config_of(plan: &Plan) -> state::Config {
    use crate::plan::mounts::Kind;
    let volumes = plan.mounts.iter().filter(|m| {
        m.kind == Kind::Bind && m.destination != "/sys" && m.options.iter().any(|o| o == "rbind")
    });
    state::Config {
        env: plan.process.env.clone(),
        working_dir: plan.process.cwd.clone(),
        user: plan.process.user.clone(),
        hostname: plan.hostname.clone(),
        network: plan.network.name().into(),
        mounts: volumes
            .filter_map(|m| {
                Some(state::MountInfo {
                    source: m.source.clone()?,
                    destination: m.destination.clone(),
                    rw: !m.options.iter().any(|o| o == "ro"),
                    name: m.volume.clone(),
                })
            })
            .collect(),
    }
}

pub(super) fn id_maps(plan: &Plan) -> anyhow::Result<IdMaps> {
    let (facts, maps) = userns::plan(plan.userns)?;
    if maps.fallback.is_some() {
        // Reads /etc/subuid and /etc/subgid again, only on this path.
        let fix = crate::preflight::subid_fix(&facts.user);
        if let Some(w) = maps.fallback_warning(&fix) {
            eprintln!("{w}");
        }
    }
    Ok(maps)
}

/// Launches the container, records it as running, waits, records its end.
/// What the container is started from.
pub(super) struct Launch<'a> {
    pub plan: &'a Plan,
    pub rootfs: &'a Path,
    /// How the rootfs is mounted (storage driver).
    pub mount: &'a RootfsMount,
    pub maps: &'a IdMaps,
    /// The container's runtime dir (the network helper's files).
    pub run_dir: &'a Path,
    /// `--network container:NAME`: that container's init.
    pub join: Option<&'a ProcId>,
}

pub(super) fn start_and_wait(
    l: &Launch<'_>,
    dirs: &Dirs,
    container: &Container,
    record: &mut State,
) -> anyhow::Result<i32> {
    let (caps, bpf) = caps_and_seccomp(l, dirs)?;
    let setup = setup(l, &caps, bpf.as_ref());
    let running = parent::launch(&setup, l.maps)?;
    let pid = running.init_pid();
    record.set_running(&ProcId::of(pid.as_raw())?);
    record.net_helper_pid = running.net_helper().map(|(_, p)| p);
    record.udp_relay_pid = running.udp_relay_pid();
    // This process records the exit: `rm -f` and `wait` wait for it.
    record.supervisor = Some(ProcId::of(std::process::id() as i32)?);
    record.attached = true;
    container.save(dirs, record)?;
    let code = parent::wait(running, l.plan.process.stdin)?;
    record.set_exited(code);
    container.save(dirs, record)?;
    Ok(code)
}

/// `-d`: a supervisor starts the container and stays with it; returns
/// once it reports the container started.
pub(super) fn start_detached(
    l: &Launch<'_>,
    dirs: &Dirs,
    container: &Container,
    record: &mut State,
) -> anyhow::Result<()> {
    let (caps, bpf) = caps_and_seccomp(l, dirs)?;
    let setup = setup(l, &caps, bpf.as_ref());
    let job = supervisor::Job {
        setup: &setup,
        maps: l.maps,
        dirs,
        container,
        remove: l.plan.remove,
    };
    record.attached = false;
    supervisor::detach(&job, record)
}

fn caps_and_seccomp(
    l: &Launch<'_>,
    dirs: &Dirs,
) -> anyhow::Result<(CapsHashSet, Option<seccomp::Bpf>)> {
    let caps = cap_set(l.plan)?;
    let bpf = l
        .plan
        .seccomp
        .then(|| seccomp::compile_default_cached(&caps, &dirs.runtime))
        .transpose()?;
    Ok((caps, bpf))
}

fn setup<'a>(
    l: &Launch<'a>,
    caps: &'a CapsHashSet,
    bpf: Option<&'a seccomp::Bpf>,
) -> child::Setup<'a> {
    child::Setup {
        plan: l.plan,
        rootfs: l.rootfs,
        caps,
        seccomp: bpf,
        tty_gid_mapped: userns::idmap::to_host(&l.maps.gid_map, 5).is_some(),
        setgroups_allowed: l.maps.helpers.is_some(),
        overlay: match l.mount {
            RootfsMount::Overlay(opts) => Some(opts),
            _ => None,
        },
        fuse: match l.mount {
            RootfsMount::Fuse(m) => Some(m),
            _ => None,
        },
        net_dir: l.run_dir,
        join: l.join,
    }
}

/// The running container whose network `--network container:NAME`
/// shares: its init, and its runtime dir (hosts, resolv.conf).
pub(super) struct Shared {
    pub init: ProcId,
    run_dir: PathBuf,
}

pub(super) fn shared_network(
    dirs: &Dirs,
    plan: &Plan,
    maps: &IdMaps,
) -> anyhow::Result<Option<Shared>> {
    let Some(name) = &plan.network_of else {
        return Ok(None);
    };
    let st = state::find(dirs, name)?;
    let init = st
        .init()
        .filter(|_| state::is_alive(&st))
        .with_context(|| format!("share the network of container `{name}`: it is not running"))
        .hint(format!("start it first: `hutch start {name}`"))?;
    // Its user namespace becomes ours: files must map the same way.
    let same = |kind: &str, want: &[userns::IdMapEntry]| {
        let text =
            std::fs::read_to_string(format!("/proc/{}/{kind}", init.pid)).unwrap_or_default();
        let got: Vec<Vec<&str>> = text
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        let want = userns::idmap::to_proc_text(want);
        got == want
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .collect::<Vec<_>>()
    };
    if !same("uid_map", &maps.uid_map) || !same("gid_map", &maps.gid_map) {
        return Err(anyhow::anyhow!(
            "share the network of container `{name}`: its user namespace maps ids differently"
        ))
        .hint("use the same --userns mode for both containers");
    }
    Ok(Some(Shared {
        init,
        run_dir: Container::open(dirs, &st.id).run_dir,
    }))
}

/// Where the root filesystem comes from.
enum Source {
    Dir(PathBuf),
    Image(ImageRef),
    /// A name or id in the image store (`hutch load`).
    Stored(String),
}

fn source_and_command(args: &RunArgs) -> anyhow::Result<(Source, Vec<String>)> {
    match &args.rootfs {
        Some(dir) => {
            let dir = std::fs::canonicalize(dir)
                .with_context(|| format!("find rootfs `{}`", dir.display()))?;
            Ok((Source::Dir(dir), args.args.clone()))
        }
        None => {
            let (name, rest) = args.args.split_first().context("run: no image given")?;
            let source = if name.starts_with("oci:") || name.starts_with("oci-archive:") {
                Source::Image(ImageRef::parse(name)?)
            } else {
                Source::Stored(name.clone())
            };
            Ok((source, rest.to_vec()))
        }
    }
}

fn source_name(source: &Source) -> String {
    match source {
        Source::Dir(d) => d.display().to_string(),
        Source::Image(r) => r.to_string(),
        Source::Stored(name) => name.clone(),
    }
}

fn open_image(
    source: &Source,
    c: &Container,
    store: Option<&Store>,
    args: &RunArgs,
) -> anyhow::Result<Option<(image::Image, Vec<String>)>> {
    match source {
        Source::Dir(_) => Ok(None),
        Source::Image(r) => image::open(r, &c.data_dir).map(|i| {
            let diff_ids = i.diff_ids.clone();
            Some((i, diff_ids))
        }),
        Source::Stored(name) => {
            let store = store.context("open image: the store is not open")?;
            let rec = find_or_pull(store, name, args)?;
            let image = store.to_image(&rec)?;
            Ok(Some((image, rec.diff_ids)))
        }
    }
}

/// Docker's and Podman's `--pull` policies; `missing` is the default.
fn find_or_pull(
    store: &Store,
    name: &str,
    args: &RunArgs,
) -> anyhow::Result<crate::store::ImageRecord> {
    let opts = || super::pull::PullOptions::new(&args.registry, args.quiet);
    match args.pull.as_deref().unwrap_or("missing") {
        "always" => super::pull::pull_image(store, name, &opts()?),
        "missing" => match store.find(name) {
            Ok(rec) => Ok(rec),
            Err(_) => super::pull::pull_image(store, name, &opts()?),
        },
        "never" => store.find(name),
        other => anyhow::bail!("use pull policy `{other}`: expected always, missing or never"),
    }
}

fn make_plan(
    args: &RunArgs,
    img: Option<&image::ImageConfig>,
    command: &[String],
    id: &str,
    etc_dir: &Path,
    data_dir: &Path,
) -> anyhow::Result<Plan> {
    let host_hostname = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into());
    let cwd = std::env::current_dir().context("find the current directory")?;
    let host_env = |k: &str| std::env::var(k).ok();
    Plan::new(&Inputs {
        args,
        image: img,
        command,
        id,
        host_hostname: &host_hostname,
        host_uid: nix::unistd::Uid::current().as_raw(),
        host_gid: nix::unistd::Gid::current().as_raw(),
        cwd: &cwd,
        etc_dir,
        data_dir,
        host_env: &host_env,
        net_helpers: crate::net::Helpers::probe(),
    })
}

/// `--rootfs DIR` is used in place; images go through `rootfs::prepare`.
fn plain_rootfs(source: &Source) -> anyhow::Result<PathBuf> {
    match source {
        Source::Dir(d) => Ok(d.clone()),
        _ => anyhow::bail!("prepare rootfs: the image was not opened"),
    }
}

/// The plain directory, or where an image is unpacked.
fn rootfs_path(source: &Source, c: &Container) -> PathBuf {
    match source {
        Source::Dir(d) => d.clone(),
        Source::Image(_) | Source::Stored(_) => c.data_dir.join("rootfs"),
    }
}

/// Says what the default network fell back to, drops ports the host
/// network cannot publish (as Docker does), and checks that every
/// published host port is free (picking free ones for `-p PORT`).
fn settle_network(args: &RunArgs, plan: &mut Plan) -> anyhow::Result<()> {
    if args.network.is_none() && plan.network == Network::None {
        crate::errors::warn(&crate::errors::hint(
            anyhow::anyhow!("the container has no network but loopback: this host has no usable pasta or slirp4netns"),
            "`hutch doctor` says what is missing; pass `--network none` to silence this",
        ));
    }
    if let Some(w) = crate::net::files::host_gateway_unreachable(plan.network, &plan.add_hosts) {
        crate::errors::warn(&w);
    }
    if plan.network == Network::Host && !plan.ports.is_empty() {
        crate::errors::warn(&anyhow::anyhow!(
            "published ports are discarded with `--network host`"
        ));
        plan.ports.clear();
    }
    crate::net::ports::check_free(&mut plan.ports)
}

/// /etc/hostname, /etc/hosts and /etc/resolv.conf for the container;
/// with a shared network, the other container's hosts and resolv.conf.
pub(super) fn write_etc_files(
    c: &Container,
    plan: &Plan,
    shared: Option<&Shared>,
) -> anyhow::Result<()> {
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let (hosts, resolv) = match shared {
        Some(s) => (
            format!(
                "{}127.0.1.1\t{}\n",
                read(&s.run_dir.join("hosts")),
                plan.hostname
            ),
            read(&s.run_dir.join("resolv.conf")),
        ),
        None => (
            crate::net::files::hosts(
                plan.network,
                &plan.hostname,
                &plan.add_hosts,
                &read(Path::new("/etc/hosts")),
                crate::net::files::default_gateway(&read(Path::new("/proc/net/route"))),
            )?,
            crate::net::files::resolv_conf(
                plan.network,
                &plan.dns,
                &read(Path::new("/etc/resolv.conf")),
            ),
        ),
    };
    // The plan's mount table binds these names from the runtime dir.
    let files = [
        ("hostname", format!("{}\n", plan.hostname)),
        ("hosts", hosts),
        ("resolv.conf", resolv),
    ];
    for (name, text) in files {
        let path = c.run_dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("write `{}`", path.display()))?;
    }
    Ok(())
}

fn cap_set(plan: &Plan) -> anyhow::Result<CapsHashSet> {
    plan.caps
        .iter()
        .map(|c| {
            c.parse()
                .map_err(|_| anyhow::anyhow!("parse capability `{c}`"))
        })
        .collect()
}

/// Removes the container's directories unless told to keep them.
struct Cleanup<'a> {
    container: &'a Container,
    maps: Option<IdMaps>,
    keep: bool,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        if let Err(e) = super::remove_container(self.container, self.maps.as_ref()) {
            crate::errors::warn(&e.context(format!("clean up container `{}`", self.container.id)));
        }
    }
}
