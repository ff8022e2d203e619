//! `hutch port CONTAINER [PORT[/PROTO]]`: the published ports, printed as
//! `docker port` does (`80/tcp -> 0.0.0.0:8080`), or only the host
//! addresses of one container port.

use anyhow::bail;

use crate::cli::PortArgs;
use crate::net::ports::Proto;
use crate::state::{self, Dirs};

pub fn port(args: PortArgs) -> anyhow::Result<i32> {
    let dirs = Dirs::new()?;
    let st = state::find(&dirs, &args.container)?;
    let want = args.port.as_deref().map(parse_filter).transpose()?;
    for m in &st.ports {
        for line in m.to_string().lines() {
            let (ctr, host) = line.split_once(" -> ").unwrap_or((line, ""));
            match want {
                None => println!("{line}"),
                Some((port, proto)) if ctr == format!("{port}/{}", proto.as_str()) => {
                    println!("{host}")
                }
                Some(_) => {}
            }
        }
    }
    Ok(0)
}

fn parse_filter(s: &str) -> anyhow::Result<(u16, Proto)> {
    let (port, proto) = s.split_once('/').unwrap_or((s, "tcp"));
    let proto = match proto {
        "tcp" => Proto::Tcp,
        "udp" => Proto::Udp,
        other => bail!("parse port `{s}`: unknown protocol `{other}`"),
    };
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok((p, proto)),
        _ => bail!("parse port `{s}`: expected PORT[/tcp|udp]"),
    }
}
