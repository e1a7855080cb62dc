//! One thread owns the nf_tables socket and applies every change to the
//! table, in arrival order, so no lock is needed to keep a rebuild from an
//! older mirror from landing after a newer delta.
//!
//! Group commit: the deltas of every request that queued up while the
//! previous transaction ran go to the kernel in one batch. nf_tables aborts
//! a whole batch on any error, naming the refused messages: their requests
//! fail, and the others are sent again without them. Each request is
//! answered only once its own changes are in the kernel.
use std::collections::VecDeque;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

use super::element::{self, Element};
use super::nfnl::{self, Outcome};
use super::{render, Delta, FwState};
use crate::error::{Cause, ExecError, Result};

/// What the writer and the request handlers share.
pub struct Shared {
    /// The desired table as last synced and updated; None until the first
    /// sync, so drift repair never "restores" an empty table.
    pub mirror: Mutex<Option<FwState>>,
    /// Pids of our recent nft children: their generations are not drift.
    own_pids: Mutex<VecDeque<u32>>,
    /// Our socket's netlink port id: our batches' generations are not drift.
    portid: u32,
}

const OWN_PIDS_KEPT: usize = 256;
/// Element messages per batch: every ack takes about 1 KiB of the socket's
/// receive buffer until it is read.
const MAX_MESSAGES: usize = 1024;

impl Shared {
    pub fn is_own(&self, portid: u32, pid: u32) -> bool {
        portid == self.portid || lock(&self.own_pids).contains(&pid)
    }
}

pub enum Job {
    /// Add and remove exactly these elements.
    Delta(Delta, oneshot::Sender<Result<()>>),
    /// Run this nft script; on success the mirror becomes `mirror`, if set.
    Script { text: String, mirror: Option<FwState>, done: oneshot::Sender<Result<()>> },
    /// Rebuild the table from the mirror (drift repair).
    Restore(oneshot::Sender<Result<()>>),
}

/// One element change, in the order the transaction makes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Add(Element),
    /// Whether or not the element is there.
    Remove(Element),
}

impl Change {
    fn element(&self) -> &Element {
        match self {
            Change::Add(e) | Change::Remove(e) => e,
        }
    }
}

/// A delta's changes: removals first, so a port can move.
pub fn changes(d: &Delta) -> Vec<Change> {
    let removed = FwState {
        networks: d.remove_networks.clone(),
        ports: d.remove_ports.clone(),
        guards: d.remove_guards.clone(),
    };
    let added = FwState {
        networks: d.add_networks.clone(),
        ports: d.add_ports.clone(),
        guards: d.add_guards.clone(),
    };
    let mut out: Vec<Change> =
        element::of_state(&removed).into_iter().map(Change::Remove).collect();
    out.extend(element::of_state(&added).into_iter().map(Change::Add));
    out
}

/// Netlink messages a change takes (a removal is an add and a delete).
fn messages(c: &[Change]) -> usize {
    c.iter().map(|c| if matches!(c, Change::Remove(_)) { 2 } else { 1 }).sum()
}

/// The kernel's side of a group commit.
pub trait Kernel {
    /// Makes `changes` as one transaction. Refused: the indexes of the
    /// changes the kernel named, with their errno; nothing was committed.
    fn commit(&mut self, changes: &[Change]) -> std::io::Result<Refusal>;
}

pub type Refusal = Vec<(usize, i32)>;

impl Kernel for nfnl::Socket {
    fn commit(&mut self, changes: &[Change]) -> std::io::Result<Refusal> {
        let mut batch = self.batch();
        let mut owner = Vec::new();
        for (i, c) in changes.iter().enumerate() {
            match c {
                Change::Add(e) => owner.push((batch.add(e), i)),
                Change::Remove(e) => owner.extend(batch.remove(e).map(|seq| (seq, i))),
            }
        }
        match nfnl::Socket::commit(self, batch)? {
            Outcome::Committed => Ok(Vec::new()),
            Outcome::Refused(seqs) => Ok(seqs
                .into_iter()
                .filter_map(|(seq, errno)| {
                    owner.iter().find(|(s, _)| *s == seq).map(|(_, i)| (*i, errno))
                })
                .collect()),
        }
    }
}

fn refused(c: &Change, errno: i32) -> ExecError {
    let e = c.element();
    if errno == libc::EEXIST {
        return ExecError::FailedPrecondition(format!(
            "firewall: {} already holds {} with another value",
            e.set,
            e.key_text()
        ));
    }
    ExecError::step(&format!("nf_tables change to set {}", e.set), Cause::Reply(errno))
}

/// Commits every delta's changes, as few batches as the kernel allows; one
/// result per delta, in order.
pub fn group_commit(kernel: &mut impl Kernel, deltas: &[Vec<Change>]) -> Vec<Result<()>> {
    // None: not settled yet, goes in the next batch.
    let mut outcome: Vec<Option<Result<()>>> =
        deltas.iter().map(|c| c.is_empty().then_some(Ok(()))).collect();
    loop {
        let (all, owner): (Vec<Change>, Vec<usize>) = deltas
            .iter()
            .enumerate()
            .filter(|(d, _)| matches!(outcome.get(*d), Some(None)))
            .flat_map(|(d, changes)| changes.iter().map(move |c| (c.clone(), d)))
            .unzip();
        if all.is_empty() {
            break;
        }
        let bad = match kernel.commit(&all) {
            Ok(bad) if bad.is_empty() => {
                settle(&mut outcome, || Ok(()));
                break;
            }
            Ok(bad) => bad,
            Err(e) => {
                tracing::error!(error = %e, "nf_tables batch failed");
                let cause = e.to_string();
                settle(&mut outcome, || {
                    Err(ExecError::step("nf_tables batch", Cause::Message(cause.clone())))
                });
                break;
            }
        };
        let mut named = false;
        for (i, errno) in bad {
            let (Some(&d), Some(change)) = (owner.get(i), all.get(i)) else { continue };
            if let Some(slot @ None) = outcome.get_mut(d) {
                tracing::warn!(
                    set = change.element().set,
                    errno,
                    "a request's element refused; the others go again"
                );
                *slot = Some(Err(refused(change, errno)));
                named = true;
            }
        }
        if !named {
            // Refused without naming one of ours: none can be told apart.
            settle(&mut outcome, || Err(ExecError::Internal("nf_tables refused the batch".into())));
            break;
        }
    }
    outcome.into_iter().map(|o| o.unwrap_or(Ok(()))).collect()
}

fn settle(outcome: &mut [Option<Result<()>>], with: impl Fn() -> Result<()>) {
    for o in outcome.iter_mut().filter(|o| o.is_none()) {
        *o = Some(with());
    }
}

/// The writer thread's state.
pub struct Writer {
    socket: nfnl::Socket,
    nft: PathBuf,
    shared: Arc<Shared>,
}

impl Writer {
    /// Opens the socket in the calling thread's network namespace (netexec's
    /// own) and starts the thread; returns the queue and what it shares.
    pub fn start(nft: PathBuf) -> std::io::Result<(mpsc::Sender<Job>, Arc<Shared>)> {
        let socket = nfnl::Socket::open()?;
        let shared = Arc::new(Shared {
            mirror: Mutex::new(None),
            own_pids: Mutex::new(VecDeque::new()),
            portid: socket.portid(),
        });
        let (tx, rx) = mpsc::channel(4096);
        let w = Writer { socket, nft, shared: shared.clone() };
        std::thread::Builder::new().name("ctnet-nft-writer".into()).spawn(move || w.run(rx))?;
        Ok((tx, shared))
    }

    fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        let mut held: Option<Job> = None;
        while let Some(job) = held.take().or_else(|| rx.blocking_recv()) {
            match job {
                Job::Delta(d, done) => {
                    let first = changes(&d);
                    let mut size = messages(&first);
                    let mut group = vec![(first, d, done)];
                    // Everything queued meanwhile joins, up to the limit.
                    while size < MAX_MESSAGES {
                        match rx.try_recv() {
                            Ok(Job::Delta(d, done)) => {
                                let c = changes(&d);
                                if size + messages(&c) > MAX_MESSAGES {
                                    held = Some(Job::Delta(d, done));
                                    break;
                                }
                                size += messages(&c);
                                group.push((c, d, done));
                            }
                            Ok(other) => {
                                held = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    self.deltas(group);
                }
                Job::Script { text, mirror, done } => {
                    let r = self.script(&text);
                    if let (Ok(()), Some(m)) = (&r, mirror) {
                        *lock(&self.shared.mirror) = Some(m);
                    }
                    let _ = done.send(r);
                }
                Job::Restore(done) => {
                    let state = lock(&self.shared.mirror).clone();
                    let r = state.map_or(Ok(()), |s| self.script(&render::full(&s)));
                    let _ = done.send(r);
                }
            }
        }
    }

    fn deltas(&mut self, group: Vec<(Vec<Change>, Delta, oneshot::Sender<Result<()>>)>) {
        let (changes, rest): (Vec<_>, Vec<_>) =
            group.into_iter().map(|(c, d, t)| (c, (d, t))).unzip();
        let results = match (changes.as_slice(), rest.as_slice()) {
            // Too big for one batch: nft splits it and still commits once.
            ([one], [(d, _)]) if messages(one) > MAX_MESSAGES => {
                vec![self.script(&render::delta(d))]
            }
            _ => group_commit(&mut self.socket, &changes),
        };
        let mut mirror = lock(&self.shared.mirror);
        for ((d, done), r) in rest.into_iter().zip(results) {
            if let (Ok(()), Some(m)) = (&r, mirror.as_mut()) {
                m.apply(&d);
            }
            let _ = done.send(r);
        }
    }

    /// Pipes `text` to `nft -f -`, one atomic transaction.
    fn script(&self, text: &str) -> Result<()> {
        let mut child = Command::new(&self.nft)
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| ExecError::step("run nft", e))?;
        {
            let mut own = lock(&self.shared.own_pids);
            own.push_back(child.id());
            if own.len() > OWN_PIDS_KEPT {
                own.pop_front();
            }
        }
        let Some(mut stdin) = child.stdin.take() else {
            return Err(ExecError::Internal("nft started without its stdin".into()));
        };
        let written = stdin.write_all(text.as_bytes());
        drop(stdin);
        let out = child.wait_with_output().map_err(|e| ExecError::step("wait for nft", e))?;
        written.map_err(|e| ExecError::step("write to nft", e))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            tracing::error!(stderr = %err, "nft transaction refused");
            return Err(ExecError::step("nft transaction", Cause::Message(err.trim().to_string())));
        }
        Ok(())
    }
}

/// The lock's data; the mirror and the pid list hold no invariant that a
/// panic elsewhere could leave half-made.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::fixtures::port;
    use crate::firewall::Proto;

    /// Refuses (EEXIST) any batch holding an add of a port on `taken`.
    struct Fake {
        taken: u16,
        committed: Vec<Vec<Change>>,
        batches: usize,
    }

    impl Kernel for Fake {
        fn commit(&mut self, changes: &[Change]) -> std::io::Result<Refusal> {
            self.batches += 1;
            let bad: Refusal = changes
                .iter()
                .enumerate()
                .filter(|(_, c)| matches!(c, Change::Add(e) if e.key.contains(&element::Part::Port(self.taken))))
                .map(|(i, _)| (i, libc::EEXIST))
                .collect();
            if bad.is_empty() {
                self.committed.push(changes.to_vec());
            }
            Ok(bad)
        }
    }

    fn adding(host_port: u16) -> Vec<Change> {
        changes(&Delta {
            add_ports: vec![port(Proto::Tcp, None, host_port, "198.18.0.2", 80)],
            ..Default::default()
        })
    }

    #[test]
    fn one_conflicting_request_of_sixteen_fails_alone() {
        let deltas: Vec<Vec<Change>> =
            (0..16).map(|i| adding(if i == 5 { 9 } else { 1000 + i })).collect();
        let mut k = Fake { taken: 9, committed: Vec::new(), batches: 0 };
        let results = group_commit(&mut k, &deltas);
        let failed: Vec<usize> =
            results.iter().enumerate().filter(|(_, r)| r.is_err()).map(|(i, _)| i).collect();
        assert_eq!(failed, [5]);
        assert!(matches!(results[5], Err(ExecError::FailedPrecondition(_))), "{:?}", results[5]);
        // Refused once, then the other fifteen in one transaction.
        assert_eq!(k.batches, 2);
        assert_eq!(k.committed.len(), 1);
        assert_eq!(k.committed[0].len(), 15);
        assert!(!k.committed[0].contains(&deltas[5][0]));
    }

    #[test]
    fn a_group_without_conflicts_is_one_batch() {
        let deltas: Vec<Vec<Change>> = (0..4).map(adding).chain([Vec::new()]).collect();
        let mut k = Fake { taken: 9, committed: Vec::new(), batches: 0 };
        assert!(group_commit(&mut k, &deltas).iter().all(Result::is_ok));
        assert_eq!(k.batches, 1);
    }

    #[test]
    fn removals_come_before_additions() {
        let p = port(Proto::Tcp, None, 8080, "198.18.0.2", 80);
        let moved =
            Delta { remove_ports: vec![p.clone()], add_ports: vec![p], ..Default::default() };
        let c = changes(&moved);
        assert!(matches!(c.as_slice(), [Change::Remove(_), Change::Add(_)]));
        assert_eq!(messages(&c), 3);
    }

    struct Broken;
    impl Kernel for Broken {
        fn commit(&mut self, _: &[Change]) -> std::io::Result<Refusal> {
            Err(std::io::Error::other("gone"))
        }
    }

    #[test]
    fn a_failed_send_fails_every_request_of_the_group() {
        let results = group_commit(&mut Broken, &[adding(1), adding(2)]);
        assert!(results.iter().all(Result::is_err));
    }
}

#[cfg(test)]
mod kernel {
    //! Group commit against the real kernel, in a scratch namespace (root).
    use super::*;
    use crate::firewall::fixtures::{listing, nft, port, scratch};
    use crate::firewall::Proto;

    fn publish(host_port: u16, target: &str) -> Vec<Change> {
        changes(&Delta {
            add_ports: vec![port(Proto::Tcp, None, host_port, target, 80)],
            ..Default::default()
        })
    }

    #[test]
    fn sixteen_requests_one_conflicting_element_exactly_that_one_fails() {
        let (results, listed) = scratch(|| {
            nft(&render::table(&FwState::default()));
            nft("add element inet ctnet ports_any { tcp . 7000 : 198.18.0.9 . 80 }");
            let mut socket = nfnl::Socket::open().unwrap();
            let deltas: Vec<Vec<Change>> = (0..16)
                .map(|i| {
                    if i == 11 {
                        publish(7000, "198.18.0.2")
                    } else {
                        publish(7100 + i, "198.18.0.2")
                    }
                })
                .collect();
            (group_commit(&mut socket, &deltas), listing())
        });
        let failed: Vec<usize> =
            results.iter().enumerate().filter(|(_, r)| r.is_err()).map(|(i, _)| i).collect();
        assert_eq!(failed, [11], "{results:?}");
        for i in (0..16).filter(|i| *i != 11) {
            assert!(listed.contains(&format!("tcp . {} ", 7100 + i)), "{i} missing: {listed}");
        }
        assert!(listed.contains("tcp . 7000 : 198.18.0.9 . 80"), "the old mapping stays: {listed}");
    }
}
