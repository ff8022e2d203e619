//! Command-line structures only (clap derive). Flags follow Docker and
//! Podman so that `alias docker=hutch` works for everyday scripts.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "hutch",
    version,
    about = "Rootless, daemonless containers that keep your audit identity"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Parses argv; usage errors exit 125 as Docker's do, help and version 0.
    pub fn parse_from_env() -> Cli {
        match Cli::try_parse() {
            Ok(cli) => cli,
            Err(err) => {
                let code = if err.use_stderr() { 125 } else { 0 };
                let _ = err.print();
                std::process::exit(code);
            }
        }
    }
}

// Parsed once per process: the size of `RunArgs` does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a command in a new container
    Run(RunArgs),
    /// Check what this host offers hutch, and how to fix what is missing
    Doctor(DoctorArgs),
    /// Show the host, the store and the storage driver hutch uses
    Info(InfoArgs),
    /// Manage named volumes: create, ls, inspect, rm, prune
    Volume(VolumeArgs),
    /// List containers
    Ps(PsArgs),
    /// List a container's published ports
    Port(PortArgs),
    /// Remove containers (-f: running ones too)
    Rm(RmArgs),
    /// Create a container without starting it (takes `run`'s flags)
    Create(RunArgs),
    /// Start created or stopped containers
    Start(StartArgs),
    /// Stop, then start containers
    Restart(StopArgs),
    /// Print a detached container's output
    Logs(LogsArgs),
    /// Stop containers: SIGTERM, then SIGKILL after a timeout
    Stop(StopArgs),
    /// Send a signal to containers (default KILL)
    Kill(KillArgs),
    /// Wait for containers to exit and print their exit codes
    Wait(WaitArgs),
    /// Show details of containers as JSON
    Inspect(InspectContainersArgs),
    /// Manage containers: ls, rm, inspect, stop, kill, wait, logs, prune
    Container(ContainerArgs),
    /// List images in the local store
    Images(ImagesArgs),
    /// Manage images: ls, inspect, rm, prune
    Image(ImageArgs),
    /// Give an image another name
    Tag(TagArgs),
    /// Remove images by name or id
    Rmi(RmiArgs),
    /// Pull an image from a registry
    Pull(PullArgs),
    /// Load images from a docker-archive or oci-archive file
    Load(LoadArgs),
    /// Save images to a docker-archive or oci-archive file
    Save(SaveArgs),
    /// Log in to a registry, saving the credentials for pulls
    Login(LoginArgs),
    /// Log out of a registry, removing its saved credentials
    Logout(LogoutArgs),
    /// Run a command in a running container
    Exec(ExecArgs),
    /// Show the processes of a running container
    Top(TopArgs),
    /// Copy files between a running container and the host
    Cp(CpArgs),
}

#[derive(Debug, Args)]
pub struct CpArgs {
    /// CONTAINER:PATH, a host path, or `-` for a tar stream on stdin
    pub src: String,
    /// CONTAINER:PATH, a host path, or `-` for a tar stream on stdout
    pub dest: String,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Keep STDIN open
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    pub tty: bool,
    /// Start the command and return at once, its output discarded
    #[arg(short, long)]
    pub detach: bool,
    /// Set environment variables (KEY=VALUE, or KEY to copy from the host)
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Read environment variables from a file
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// User to run as: NAME|UID[:GROUP|GID] (default: the container's)
    #[arg(short, long)]
    pub user: Option<String>,
    /// Working directory inside the container (default: the container's)
    #[arg(short, long = "workdir", value_name = "DIR")]
    pub workdir: Option<String>,
    /// The container: name, id or unique id prefix
    pub container: String,
    /// COMMAND [ARG...]
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        required = true,
        value_name = "COMMAND"
    )]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct TopArgs {
    /// The container: name, id or unique id prefix
    pub container: String,
}

/// How to reach registries; shared by `pull` and `run`.
#[derive(Debug, Args, Default, Clone)]
pub struct RegistryArgs {
    /// Require HTTPS with verified certificates (`--tls-verify=false` allows plain HTTP)
    #[arg(long = "tls-verify", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub tls_verify: Option<bool>,
    /// Pull for this platform (os/arch[/variant]) instead of the host's
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// The image: NAME[:TAG|@DIGEST]
    pub image: String,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Print nothing but the image id
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The registry: HOST[:PORT]
    pub registry: String,
    /// User name (prompted for on a terminal when not given)
    #[arg(short, long)]
    pub username: Option<String>,
    /// Password; visible to other users in `ps`: prefer --password-stdin
    #[arg(short, long)]
    pub password: Option<String>,
    /// Read the password from the first line of stdin
    #[arg(long = "password-stdin", conflicts_with = "password")]
    pub password_stdin: bool,
    /// Require HTTPS with verified certificates (`--tls-verify=false` allows plain HTTP)
    #[arg(long = "tls-verify", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub tls_verify: Option<bool>,
    /// Write the credentials to this file instead of the default auth.json
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// The registry: HOST[:PORT]
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub registry: Option<String>,
    /// Remove the credentials of every registry
    #[arg(short, long)]
    pub all: bool,
    /// Remove from this file instead of the default auth.json
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Only print image ids
    #[arg(short, long)]
    pub quiet: bool,
    /// Do not truncate image ids
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Output format: `table` (default) or `json`
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
}

#[derive(Debug, Args)]
pub struct ImageArgs {
    #[command(subcommand)]
    pub command: ImageCommand,
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// List images (same as `hutch images`)
    #[command(alias = "list")]
    Ls(ImagesArgs),
    /// Show details of images as JSON
    Inspect(InspectArgs),
    /// Remove images (same as `hutch rmi`)
    Rm(RmiArgs),
    /// Remove dangling images and unused blobs
    Prune(PruneArgs),
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Images, by name or id
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct TagArgs {
    /// The image to name, by name or id
    #[arg(value_name = "SOURCE_IMAGE")]
    pub source: String,
    /// The new name, NAME[:TAG]
    #[arg(value_name = "TARGET_IMAGE")]
    pub target: String,
}

#[derive(Debug, Args)]
pub struct RmiArgs {
    /// Remove an image even when it has several names
    #[arg(short, long)]
    pub force: bool,
    /// Images, by name or id
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The archive to read (default: standard input)
    #[arg(short, long, value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Accepted for Docker compatibility (hutch prints no progress)
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct SaveArgs {
    /// The archive to write (default: standard output, unless a terminal)
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Archive format: docker-archive (default) or oci-archive
    #[arg(long, value_name = "FORMAT", default_value = "docker-archive")]
    pub format: String,
    /// Images, by name or id
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    pub all: bool,
    /// Only print container ids
    #[arg(short, long)]
    pub quiet: bool,
    /// Do not truncate ids and commands
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Output format: `table` (default) or `json` (one object per line)
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
}

#[derive(Debug, Args)]
pub struct PortArgs {
    /// The container, by name or id prefix
    pub container: String,
    /// Only this container port: PORT[/PROTO]
    pub port: Option<String>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Kill and remove running containers too
    #[arg(short, long)]
    pub force: bool,
    /// Containers to remove, by name or id prefix
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Follow the output until the container exits
    #[arg(short, long)]
    pub follow: bool,
    /// Only the last N lines (or `all`)
    #[arg(short = 'n', long, value_name = "N")]
    pub tail: Option<String>,
    /// Prefix each line with its RFC 3339 time
    #[arg(short, long)]
    pub timestamps: bool,
    /// The container, by name or id prefix
    pub container: String,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    /// Seconds to wait after SIGTERM before SIGKILL
    #[arg(short, long, value_name = "SECONDS", default_value_t = 10)]
    pub time: u64,
    /// Containers, by name or id prefix
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct KillArgs {
    /// The signal: a name (KILL, SIGTERM) or a number
    #[arg(short, long, default_value = "KILL")]
    pub signal: String,
    /// Containers, by name or id prefix
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Containers, by name or id prefix
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct InspectContainersArgs {
    /// Containers, by name or id prefix
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ContainerArgs {
    #[command(subcommand)]
    pub command: ContainerCommand,
}

// Parsed once per process: the size of `RunArgs` does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum ContainerCommand {
    /// List containers (same as `hutch ps`)
    #[command(alias = "list", alias = "ps")]
    Ls(PsArgs),
    /// Remove containers (same as `hutch rm`)
    Rm(RmArgs),
    /// Show details of containers as JSON
    Inspect(InspectContainersArgs),
    /// Stop containers
    Stop(StopArgs),
    /// Send a signal to containers
    Kill(KillArgs),
    /// Wait for containers to exit
    Wait(WaitArgs),
    /// Print a detached container's output
    Logs(LogsArgs),
    /// Remove every container that is not running
    Prune(PruneArgs),
    /// Create a container without starting it
    Create(RunArgs),
    /// Start created or stopped containers
    Start(StartArgs),
    /// Stop, then start containers
    Restart(StopArgs),
}

#[derive(Debug, Args)]
pub struct VolumeArgs {
    #[command(subcommand)]
    pub command: VolumeCommand,
}

#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// Create a volume (a random name when none is given)
    Create {
        /// [a-zA-Z0-9][a-zA-Z0-9_.-]*
        name: Option<String>,
    },
    /// List volumes
    #[command(alias = "list")]
    Ls {
        /// Only print volume names
        #[arg(short, long)]
        quiet: bool,
        /// Output format: `table` (default) or `json`
        #[arg(long, value_name = "FORMAT")]
        format: Option<String>,
    },
    /// Show details of volumes as JSON
    Inspect {
        #[arg(required = true, value_name = "VOLUME")]
        names: Vec<String>,
    },
    /// Remove volumes (one in use by a container only with -f)
    #[command(alias = "remove")]
    Rm {
        /// Remove even when a container uses the volume
        #[arg(short, long)]
        force: bool,
        #[arg(required = true, value_name = "VOLUME")]
        names: Vec<String>,
    },
    /// Remove every volume no container uses
    Prune {
        /// Do not prompt for confirmation
        #[arg(short, long)]
        force: bool,
    },
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Output format: `table` (default) or `json`
    #[arg(short, long, value_name = "FORMAT")]
    pub format: Option<String>,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args, Default)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// Print help
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,

    /// Run a plain root filesystem directory instead of an image
    #[arg(long, value_name = "DIR")]
    pub rootfs: Option<PathBuf>,

    /// Remove the container when it exits
    #[arg(long)]
    pub rm: bool,

    /// Keep STDIN open
    #[arg(short, long)]
    pub interactive: bool,

    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    pub tty: bool,

    /// Run in the background under a small supervisor; print the id
    #[arg(short, long)]
    pub detach: bool,

    /// Assign a name to the container
    #[arg(long)]
    pub name: Option<String>,

    /// Set environment variables (KEY=VALUE, or KEY to copy from the host)
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,

    /// Read environment variables from a file
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<PathBuf>,

    /// Working directory inside the container
    #[arg(short, long = "workdir", value_name = "DIR")]
    pub workdir: Option<String>,

    /// User to run as: NAME|UID[:GROUP|GID]
    #[arg(short, long)]
    pub user: Option<String>,

    /// Container host name
    #[arg(short = 'h', long)]
    pub hostname: Option<String>,

    /// Bind mount a volume: HOST-DIR:CONTAINER-DIR[:OPTIONS]
    #[arg(short, long = "volume", value_name = "HOST:CTR[:ro]")]
    pub volume: Vec<String>,

    /// Network: pasta, slirp4netns (each with :allow_host_loopback=true,mtu=N),
    /// none or host; the default is the best helper this host has
    #[arg(long, alias = "net", value_name = "MODE")]
    pub network: Option<String>,

    /// Publish container ports: [HOSTIP:][HOSTPORT:]PORT[/tcp|udp], ranges allowed
    #[arg(short, long = "publish", value_name = "PORTS")]
    pub publish: Vec<String>,

    /// Publish the image's exposed ports on free host ports
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,

    /// DNS servers for the container's resolv.conf
    #[arg(long, value_name = "IP")]
    pub dns: Vec<String>,

    /// DNS search domains
    #[arg(long = "dns-search", value_name = "DOMAIN")]
    pub dns_search: Vec<String>,

    /// DNS resolver options
    #[arg(long = "dns-option", alias = "dns-opt", value_name = "OPT")]
    pub dns_option: Vec<String>,

    /// Add a line to /etc/hosts: NAME:IP (IP may be `host-gateway`)
    #[arg(long = "add-host", value_name = "NAME:IP")]
    pub add_host: Vec<String>,

    /// User namespace mode: keep-id, or auto (the default)
    #[arg(long, value_name = "MODE")]
    pub userns: Option<String>,

    /// Add Linux capabilities
    #[arg(long = "cap-add", value_name = "CAP")]
    pub cap_add: Vec<String>,

    /// Drop Linux capabilities
    #[arg(long = "cap-drop", value_name = "CAP")]
    pub cap_drop: Vec<String>,

    /// Security options: no-new-privileges, seccomp=unconfined
    #[arg(long = "security-opt", value_name = "OPT")]
    pub security_opt: Vec<String>,

    /// Give extended privileges (still only the caller's own rights)
    #[arg(long)]
    pub privileged: bool,

    /// Run a small init as pid 1 that forwards signals and reaps zombies
    #[arg(long)]
    pub init: bool,

    /// Override the image's entrypoint
    #[arg(long, value_name = "CMD")]
    pub entrypoint: Option<String>,

    /// Memory limit (needs cgroup v2 delegation)
    #[arg(short, long, value_name = "BYTES")]
    pub memory: Option<String>,

    /// Number of CPUs (needs cgroup v2 delegation)
    #[arg(long, value_name = "NUMBER")]
    pub cpus: Option<String>,

    /// Process limit (needs cgroup v2 delegation)
    #[arg(long = "pids-limit", value_name = "N")]
    pub pids_limit: Option<String>,

    /// Pull the image: always, missing (default) or never
    #[arg(long, value_name = "POLICY")]
    pub pull: Option<String>,

    /// Mount the container's root filesystem read-only (with tmpfs on /tmp, /var/tmp, /run)
    #[arg(long = "read-only")]
    pub read_only: bool,

    /// Mount a tmpfs: PATH[:OPTIONS] (size=, mode=, uid=, gid=, nr_inodes=, ro, noexec, ...)
    #[arg(long, value_name = "PATH[:OPTS]")]
    pub tmpfs: Vec<String>,

    /// How to build the rootfs from stored layers: overlay, fuse-overlayfs or vfs
    #[arg(long = "storage-driver", value_name = "DRIVER")]
    pub storage_driver: Option<String>,

    #[command(flatten)]
    pub registry: RegistryArgs,

    /// Suppress pull progress
    #[arg(short, long)]
    pub quiet: bool,

    /// IMAGE [COMMAND [ARG...]], or COMMAND [ARG...] with --rootfs
    #[arg(trailing_var_arg = true, required = true, value_name = "IMAGE")]
    pub args: Vec<String>,

    /// `hutch create`: prepare everything, start nothing.
    #[arg(skip)]
    pub create_only: bool,
}

#[derive(Debug, Args)]
pub struct StartArgs {
    /// Attach: wait in the foreground with the container's output
    #[arg(short, long)]
    pub attach: bool,
    /// Containers, by name or id prefix
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}
