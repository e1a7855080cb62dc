//! The audit log: one JSON line per mutating call and per refused call, in
//! its own file, written before the response is sent. Refused calls are
//! limited per identity (REFUSED_PER_WINDOW lines a window, then one summary
//! line). The file is rotated to `PATH.1` at MAX_BYTES. A line that cannot
//! be written fails its mutating call with Unavailable, and while the log is
//! unwritable mutating calls are refused before they change anything and
//! health is NOT_SERVING; each later line tries again.
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Error, Result};

/// The file is rotated past this size (one old generation is kept).
pub const MAX_BYTES: u64 = 16 << 20;
/// Refused-call lines per identity per window; the rest are summed up.
pub const REFUSED_PER_WINDOW: u32 = 20;
const WINDOW: Duration = Duration::from_secs(10);
/// Identities whose refusals are counted at once, before quiet ones go.
const MAX_IDENTITIES_TRACKED: usize = 4096;

#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// Seconds since the Unix epoch.
    pub time: i64,
    pub identity: String,
    pub tenant: String,
    pub method: String,
    pub resources: Vec<String>,
    /// The gRPC code's name: "Ok", "NotFound", ...
    pub outcome: String,
    /// The call's request id (see `request_id`).
    pub request_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suppressed: Option<u32>,
}

struct Inner {
    file: Option<std::fs::File>,
    size: u64,
    /// Per identity: window start, lines written, lines held back.
    refused: HashMap<String, (Instant, u32, u32)>,
}

pub struct Audit {
    path: Option<PathBuf>,
    inner: Mutex<Inner>,
    healthy: AtomicBool,
}

impl Audit {
    /// None: no audit log (library use and unit tests).
    pub fn open(path: Option<PathBuf>) -> Result<Arc<Self>> {
        let audit = Arc::new(Self {
            path,
            inner: Mutex::new(Inner { file: None, size: 0, refused: HashMap::new() }),
            healthy: AtomicBool::new(true),
        });
        if let Some(dir) = audit.path.as_ref().and_then(|p| p.parent()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::store("create the audit log's directory", e))?;
        }
        if audit.path.is_some() {
            audit.with_file(|_| Ok(())).map_err(|e| Error::store("open the audit log", e))?;
        }
        Ok(audit)
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::SeqCst)
    }

    /// Mutating calls are refused while the log cannot be written.
    pub fn ready(&self) -> Result<()> {
        if self.path.is_none() || self.is_healthy() || self.probe() {
            return Ok(());
        }
        Err(Error::Unavailable("the audit log cannot be written; retry later".into()))
    }

    /// While unhealthy: one probe line, so recovery is seen only once a
    /// line really is written.
    fn probe(&self) -> bool {
        let probe = format!("{{\"time\":{},\"method\":\"(audit probe)\"}}", crate::model::now());
        self.with_file(|f| {
            writeln!(f, "{probe}")?;
            f.sync_data()
        })
        .is_ok()
    }

    /// The lines a call's entry makes: none when a refused call's line is
    /// held back by the rate limit (cheap: no file work).
    fn lines_for(&self, e: &Entry, refused: bool) -> std::io::Result<Vec<String>> {
        let mut lines = Vec::new();
        if refused {
            let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
            let now = Instant::now();
            // Bounded: identities quiet for a window are forgotten.
            if inner.refused.len() >= MAX_IDENTITIES_TRACKED {
                inner.refused.retain(|_, s| now.duration_since(s.0) < WINDOW);
            }
            let slot = inner.refused.entry(e.identity.to_string()).or_insert((now, 0, 0));
            if now.duration_since(slot.0) >= WINDOW {
                if slot.2 > 0 {
                    let summary = Entry {
                        method: "(refused calls held back)".into(),
                        outcome: "Summary".into(),
                        resources: Vec::new(),
                        suppressed: Some(slot.2),
                        ..e.clone()
                    };
                    lines.push(serde_json::to_string(&summary)?);
                }
                *slot = (now, 0, 0);
            }
            if slot.1 >= REFUSED_PER_WINDOW {
                slot.2 += 1;
                return Ok(lines);
            }
            slot.1 += 1;
        }
        lines.push(serde_json::to_string(e)?);
        Ok(lines)
    }

    /// Appends lines (blocking: called on a blocking thread by `write`).
    fn write_lines(&self, lines: &[String], refused: bool) -> std::io::Result<()> {
        self.with_file(|f| {
            for l in lines {
                writeln!(f, "{l}")?;
            }
            // A change's record is durable before its answer; a refusal's
            // need not be (a flood of refusals must not become one of syncs).
            if refused {
                Ok(())
            } else {
                f.sync_data()
            }
        })
    }

    /// Writes the line off the async workers. Err (Unavailable) when a
    /// mutating call's line could not be written.
    pub async fn write(self: &Arc<Self>, e: Entry, refused: bool) -> Result<()> {
        if self.path.is_none() {
            return Ok(());
        }
        // Held-back refusals never reach a blocking thread.
        let lines = match self.lines_for(&e, refused) {
            Ok(l) if l.is_empty() => return Ok(()),
            other => other,
        };
        let me = self.clone();
        let written = tokio::task::spawn_blocking(move || me.write_lines(&lines?, refused))
            .await
            .map_err(|e| Error::Internal(format!("audit task: {e}")))?;
        written.map_err(|e| {
            tracing::error!(error = %e, "audit log write failed: mutating calls refused until it works");
            Error::Unavailable("the audit log cannot be written; the call's record is missing".into())
        })
    }

    /// Runs `f` on the open file, opening (and rotating) it as needed; a
    /// failure marks the log unhealthy and closes the file.
    fn with_file(
        &self,
        f: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let Some(path) = &self.path else { return Ok(()) };
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let done = (|| {
            if inner.size >= MAX_BYTES {
                inner.file = None;
                let mut old = path.clone().into_os_string();
                old.push(".1");
                std::fs::rename(path, old)?;
            }
            if inner.file.is_none() {
                let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
                inner.size = file.metadata()?.len();
                inner.file = Some(file);
            }
            let file = inner.file.as_mut().ok_or_else(|| std::io::Error::other("not open"))?;
            f(file)?;
            inner.size = file.metadata()?.len();
            Ok(())
        })();
        if done.is_err() {
            inner.file = None;
        }
        self.healthy.store(done.is_ok(), Ordering::SeqCst);
        done
    }
}

/// The ids of what a call touched, put into a response's extensions by
/// its handler for the audit line.
#[derive(Debug, Clone, Default)]
pub struct Resources(pub Vec<String>);
