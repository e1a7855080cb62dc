//! ctnet-cni: a CNI plugin (spec 1.0.0 verbs and 1.1.0's STATUS and GC)
//! that forwards to ctnet's API. The runtime execs it with CNI_* in the
//! environment and the network configuration on stdin; stdout carries the
//! result or a CNI error object, and nothing else.
mod config;
mod error;
mod result;
mod verbs;
mod version;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::time::Duration;

use config::{Command, Container, NetConf};
use error::{CniError, Kind, Result};
use serde_json::Value;

/// Configurations are a few KiB; a runaway stdin is cut off here.
const MAX_STDIN: u64 = 1 << 20;
/// The whole verb, connection included.
const DEADLINE: Duration = Duration::from_secs(60);

fn main() {
    let env: HashMap<String, String> = std::env::vars().collect();
    let mut stdin = Vec::new();
    let read = std::io::stdin().take(MAX_STDIN).read_to_end(&mut stdin);
    let (version, out) = match read {
        Ok(_) => run(&env, &stdin),
        Err(e) => (
            version::LATEST.to_string(),
            Err(CniError::new(Kind::Io, format!("reading stdin: {e}"))),
        ),
    };
    let mut stdout = std::io::stdout().lock();
    let code = match out {
        Ok(Some(v)) => {
            let _ = writeln!(stdout, "{v}");
            0
        }
        Ok(None) => 0,
        Err(e) => {
            let _ = writeln!(stdout, "{}", e.to_json(&version));
            1
        }
    };
    let _ = stdout.flush();
    std::process::exit(code);
}

/// The verb's output, and the version to write an error in.
fn run(env: &HashMap<String, String>, stdin: &[u8]) -> (String, Result<Option<Value>>) {
    // stdin is parsed once; an error is written in the version it asked
    // for when that is one ctnet-cni speaks.
    let input = config::json(stdin);
    let asked = input
        .as_ref()
        .ok()
        .and_then(|v| v.get("cniVersion").and_then(Value::as_str))
        .unwrap_or_default()
        .to_string();
    let requested = version::Version::parse(&asked).unwrap_or(version::LATEST).to_string();
    let out = config::command(env).and_then(|cmd| {
        let v = input?;
        if cmd == Command::Version {
            return Ok(Some(version::answer(&asked)));
        }
        let ver = config::version_of(&v)?;
        let conf = NetConf::parse(v, ver)?;
        let container = match cmd {
            Command::Add | Command::Del | Command::Check => Some(Container::from_env(env, cmd)?),
            _ => None,
        };
        runtime()?.block_on(async {
            tokio::time::timeout(DEADLINE, verb(cmd, &conf, container.as_ref()))
                .await
                .unwrap_or_else(|_| {
                    Err(CniError::new(Kind::TryAgainLater, "ctnet did not answer within 60 s"))
                })
        })
    });
    (requested, out)
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CniError::new(Kind::Io, format!("starting the runtime: {e}")))
}

async fn verb(cmd: Command, conf: &NetConf, c: Option<&Container>) -> Result<Option<Value>> {
    let too_old = |verb: &str, since: &str| {
        CniError::new(
            Kind::IncompatibleVersion,
            format!(
                "{verb} needs cniVersion {since} or later; the configuration says {}",
                conf.version
            ),
        )
    };
    match (cmd, c) {
        (Command::Add, Some(c)) => verbs::add(conf, c).await.map(Some),
        (Command::Del, Some(c)) => verbs::del(conf, c).await.map(|()| None),
        (Command::Check, Some(c)) if conf.version.has_check() => {
            verbs::check(conf, c).await.map(|()| None)
        }
        (Command::Check, _) => Err(too_old("CHECK", "0.4.0")),
        (Command::Status, _) if conf.version.has_status_and_gc() => {
            verbs::status(conf).await.map(|()| None)
        }
        (Command::Gc, _) if conf.version.has_status_and_gc() => {
            verbs::gc(conf).await.map(|()| None)
        }
        (Command::Status | Command::Gc, _) => Err(too_old("STATUS and GC", "1.1.0")),
        _ => Err(CniError::new(
            Kind::InvalidEnvironment,
            "CNI_CONTAINERID, CNI_NETNS and CNI_IFNAME are needed",
        )),
    }
}
