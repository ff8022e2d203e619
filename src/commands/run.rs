//! `hutch run`: a recipe of named stages (DESIGN.md, "Data flow").
//! Runs in the user's own process; the container is its descendant.

use std::path::{Path, PathBuf};

use anyhow::Context;
use caps::CapsHashSet;

use crate::cli::RunArgs;
use crate::image::{self, ImageRef};
use crate::plan::{self, Inputs, Network, Plan};
use crate::rootfs::RootfsMount;
use crate::sandbox::{child, parent, seccomp};
use crate::state::{self, Container, Dirs, State, Status};
use crate::store::Store;
use crate::userns::{self, IdMaps};

pub fn run(args: RunArgs) -> anyhow::Result<i32> {
    let dirs = Dirs::new()?;
    if let Some(w) = crate::rootfs::network_warning(&dirs) {
        eprintln!("{w}");
    }
    let (source, command) = source_and_command(&args)?;
    // Checked first: a bad flag or config file fails before any work.
    let explicit_driver = crate::rootfs::driver::explicit(args.storage_driver.as_deref())?;
    let id = state::new_id()?;
    let container = Container::create(&dirs, &id, args.name.as_deref())?;
    // From here on, the container's directories go away on every error.
    let mut cleanup = Cleanup {
        container: &container,
        maps: None,
        keep: false,
    };
    // Opened once: each open takes the store lock and tidies its temp files.
    let store = matches!(source, Source::Stored(_))
        .then(|| Store::open(&dirs))
        .transpose()?;
    let (image, diff_ids) = open_image(&source, &container, store.as_ref(), &args)?.unzip();
    let config = image.as_ref().map(|i| &i.config);
    let plan = make_plan(&args, config, &command, &id, &container.run_dir, &dirs.data)?;
    let mut record = new_record(&plan, &source, image.as_ref(), &container);
    record.volumes = plan.named_volumes.clone();
    // Only stored images have diff ids; a concurrent prune keeps these.
    record.layers = diff_ids.clone().unwrap_or_default();
    // Stored images stand on shared layers: choose how (DESIGN.md, storage).
    let storage = store
        .is_some()
        .then(|| crate::rootfs::driver::decide(explicit_driver, &dirs, false))
        .transpose()?;
    record.storage = storage.clone();
    // Saved before the slow steps, so `ps -a` and `rm` see an interrupted start.
    container.save(&record)?;
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
        _ => (
            prepare_rootfs(&source, image, &container, &maps)?,
            RootfsMount::Plain,
        ),
    };
    write_etc_files(&container, &plan)?;
    let config_json = container.run_dir.join("config.json");
    plan::spec::write(&plan, &rootfs, &maps, &config_json)?;
    let launch = Launch {
        plan: &plan,
        rootfs: &rootfs,
        mount: &mount,
        maps: &maps,
    };
    let code = start_and_wait(&launch, &dirs, &container, &mut record)?;
    cleanup.keep = !plan.remove;
    Ok(code)
}

fn new_record(plan: &Plan, source: &Source, image: Option<&image::Image>, c: &Container) -> State {
    State {
        id: c.id.clone(),
        name: plan.name.clone(),
        image: source_name(source),
        image_id: image.map(|i| i.id.clone()).unwrap_or_default(),
        layers: Vec::new(),
        command: plan.process.args.clone(),
        created: state::now(),
        status: Status::Created,
        pid: None,
        exit_code: None,
        rootfs: rootfs_path(source, c),
        storage: None,
        volumes: Vec::new(),
    }
}

fn id_maps(plan: &Plan) -> anyhow::Result<IdMaps> {
    let (facts, maps) = userns::plan(plan.userns)?;
    if let Some(w) = maps.fallback_warning(&facts.user) {
        eprintln!("{w}");
    }
    Ok(maps)
}

/// Launches the container, records it as running, waits, records its end.
/// What the container is started from.
struct Launch<'a> {
    plan: &'a Plan,
    rootfs: &'a Path,
    /// How the rootfs is mounted (storage driver).
    mount: &'a RootfsMount,
    maps: &'a IdMaps,
}

fn start_and_wait(
    l: &Launch<'_>,
    dirs: &Dirs,
    container: &Container,
    record: &mut State,
) -> anyhow::Result<i32> {
    let caps = cap_set(l.plan)?;
    let bpf = l
        .plan
        .seccomp
        .then(|| seccomp::compile_default_cached(&caps, &dirs.runtime))
        .transpose()?;
    let setup = child::Setup {
        plan: l.plan,
        rootfs: l.rootfs,
        caps: &caps,
        seccomp: bpf.as_ref(),
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
    };
    let running = parent::launch(&setup, l.maps)?;
    record.status = Status::Running;
    record.pid = running.guard.pid().map(|p| p.as_raw());
    container.save(record)?;
    let code = parent::wait(running, l.plan.process.stdin)?;
    record.status = Status::Exited;
    record.exit_code = Some(code);
    container.save(record)?;
    Ok(code)
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
        Source::Image(r) => image::open(r, &c.data_dir).map(|i| Some((i, Vec::new()))),
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
    })
}

/// A plain directory is used in place; an image is unpacked into the
/// container's data directory, inside the user namespace so that file
/// owners map into the subordinate range.
fn prepare_rootfs(
    source: &Source,
    image: Option<image::Image>,
    c: &Container,
    maps: &IdMaps,
) -> anyhow::Result<PathBuf> {
    let image = match (source, image) {
        (Source::Dir(d), _) => return Ok(d.clone()),
        (_, Some(image)) => image,
        (_, None) => anyhow::bail!("prepare rootfs: image not opened"),
    };
    let rootfs = rootfs_path(source, c);
    std::fs::create_dir(&rootfs).with_context(|| format!("create `{}`", rootfs.display()))?;
    crate::rootfs::private_copy(&image, &rootfs, maps)?;
    Ok(rootfs)
}

/// The plain directory, or where an image is unpacked.
fn rootfs_path(source: &Source, c: &Container) -> PathBuf {
    match source {
        Source::Dir(d) => d.clone(),
        Source::Image(_) | Source::Stored(_) => c.data_dir.join("rootfs"),
    }
}

/// /etc/hostname, /etc/hosts and /etc/resolv.conf for the container.
fn write_etc_files(c: &Container, plan: &Plan) -> anyhow::Result<()> {
    let host_hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    let hosts = match plan.network {
        Network::Host => format!("{host_hosts}127.0.1.1\t{}\n", plan.hostname),
        Network::None => format!(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{}\n",
            plan.hostname
        ),
    };
    let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
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
