//! The task set of a logical unit and task management (SAM-5 §8 task attributes, §7 TMFs).
//!
//! Every command enters its LU's task set before it runs and leaves it when done. Task
//! attributes (SAM-5 §8.5-8.7): SIMPLE tasks run concurrently but not before an older ORDERED
//! task completed; an ORDERED task waits until every older task completed; HEAD OF QUEUE tasks
//! run at once. A TMF marks tasks aborted, wakes those still waiting, and waits until every
//! marked task has left the set (SAM-5 §7.1: the TMF completes after the tasks are aborted).
//!
//! A task enters the set when the transport receives it in command order ([`TaskSet::insert`]),
//! which may be long before it runs ([`TaskSet::start`]): an iSCSI write first collects its
//! Data-Out. A TMF reaches such a task like any other; its transport learns of it through the
//! [`TaskListener`] it registered, ends the task, and the TMF completes once it has left.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Weak;

use parking_lot::{Condvar, Mutex};

use crate::{TaskAttr, TaskListener};

/// How an aborted task ends (SAM-5 §5.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Abort {
    /// Aborted by its own I_T nexus, or by another with TAS=0: no response is sent.
    Silent,
    /// Aborted by another I_T nexus with TAS=1: status TASK ABORTED.
    TaskAborted,
}

struct Task {
    nexus: u64,
    itl: u64,
    tag: u64,
    ordered: bool,
    abort: Option<Abort>,
    /// The transport still holds the task (received, not started): it is told of an abort.
    held_by: Option<Weak<dyn TaskListener>>,
}

#[derive(Default)]
struct Inner {
    next: u64,
    tasks: BTreeMap<u64, Task>,
    /// Number of ORDERED tasks in `tasks` (lets SIMPLE tasks skip the scan).
    ordered: usize,
}

#[derive(Default)]
pub(crate) struct TaskSet {
    inner: Mutex<Inner>,
    changed: Condvar,
    /// Bumped (under `inner`) by every TMF that marks a task: a task that could run when it
    /// was received and saw no TMF since starts without taking the lock again.
    aborts: AtomicU64,
}

/// A task received into the set but not started, from [`TaskSet::insert`].
#[derive(Debug)]
pub(crate) struct Entry {
    seq: u64,
    attr: TaskAttr,
    /// Its attribute let it run when it was received.
    ready: bool,
    /// `aborts` when it was received.
    aborts: u64,
}

/// Why a task could not enter or run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The task set already holds `queue_depth` tasks (SAM-5 §5.3.1 TASK SET FULL).
    Full,
    Aborted(Abort),
}

/// Tasks a TMF marked aborted ([`TaskSet::mark`]).
pub(crate) struct Marked {
    /// Their places in the set: the TMF completes once all have left.
    pub tasks: Vec<u64>,
    /// Nexus ids of their owners other than the TMF's own.
    pub owners: Vec<u64>,
}

/// A task's place in the set, returned by [`TaskSet::enter`].
pub(crate) struct Ticket(u64);

impl Ticket {
    /// The task's place in the set (to exclude it from [`Scope::Preempted`]).
    pub(crate) fn seq(&self) -> u64 {
        self.0
    }
}

/// Which tasks a TMF affects.
pub(crate) enum Scope {
    /// ABORT TASK: one tag on one I_T_L nexus.
    Tag { itl: u64, tag: u64 },
    /// ABORT TASK SET: every task of one I_T_L nexus.
    Itl(u64),
    /// CLEAR TASK SET, LOGICAL UNIT RESET: every task of the LU.
    All,
    /// I_T nexus loss: every task of one I_T nexus.
    Nexus(u64),
    /// PREEMPT AND ABORT (SPC-4 §5.13.11.2.5): every task of these I_T_L nexuses except one
    /// task (the PERSISTENT RESERVE OUT itself, by its place in the set).
    Preempted { itls: Vec<u64>, except: u64 },
}

impl TaskSet {
    /// Add a task and block until its attribute lets it run. Err if it was aborted meanwhile.
    #[cfg(test)]
    pub(crate) fn enter(
        &self,
        nexus: u64,
        itl: u64,
        tag: u64,
        attr: TaskAttr,
        limit: usize,
    ) -> Result<Ticket, Refused> {
        let e = self.insert(nexus, itl, tag, attr, limit, None)?;
        self.start(e)
    }

    /// Add a task the transport received (SAM-5 §8.2: it joins the task set in command order),
    /// without running it yet. `held_by` is told if a TMF aborts it before [`TaskSet::start`].
    pub(crate) fn insert(
        &self,
        nexus: u64,
        itl: u64,
        tag: u64,
        attr: TaskAttr,
        limit: usize,
        held_by: Option<Weak<dyn TaskListener>>,
    ) -> Result<Entry, Refused> {
        let mut g = self.inner.lock();
        if g.tasks.len() >= limit {
            return Err(Refused::Full);
        }
        let seq = g.next;
        g.next += 1;
        let ordered = attr == TaskAttr::Ordered;
        g.tasks.insert(
            seq,
            Task {
                nexus,
                itl,
                tag,
                ordered,
                abort: None,
                held_by,
            },
        );
        if ordered {
            g.ordered += 1;
        }
        let ready = Self::may_run(&g, seq, attr);
        Ok(Entry {
            seq,
            attr,
            ready,
            aborts: self.aborts.load(Ordering::Acquire),
        })
    }

    fn may_run(g: &Inner, seq: u64, attr: TaskAttr) -> bool {
        match attr {
            TaskAttr::HeadOfQueue => true,
            TaskAttr::Ordered => g.tasks.range(..seq).next().is_none(),
            _ => g.ordered == 0 || !g.tasks.range(..seq).any(|(_, t)| t.ordered),
        }
    }

    /// [`TaskSet::start`] will not wait for `e`: it could run when it was received and no TMF
    /// has marked anything since (its fast path).
    pub(crate) fn starts_at_once(&self, e: &Entry) -> bool {
        e.ready && self.aborts.load(Ordering::Acquire) == e.aborts
    }

    /// Run a received task: block until its attribute lets it run. Err if it was aborted.
    pub(crate) fn start(&self, e: Entry) -> Result<Ticket, Refused> {
        // Fast path: it could run on arrival and no TMF has marked anything since.
        if e.ready && self.aborts.load(Ordering::Acquire) == e.aborts {
            return Ok(Ticket(e.seq));
        }
        let seq = e.seq;
        let mut g = self.inner.lock();
        loop {
            let Some(t) = g.tasks.get_mut(&seq) else {
                // Only its owner removes a task; a missing one was never inserted.
                return Err(Refused::Aborted(Abort::Silent));
            };
            // Running now: a TMF wakes it through the condvar, not through its transport.
            t.held_by = None;
            if let Some(a) = t.abort {
                Self::remove(&mut g, seq);
                drop(g);
                self.changed.notify_all();
                return Err(Refused::Aborted(a));
            }
            if Self::may_run(&g, seq, e.attr) {
                return Ok(Ticket(seq));
            }
            self.changed.wait(&mut g);
        }
    }

    /// The transport dropped a received task without running it (ended by an abort, or its
    /// connection went away).
    pub(crate) fn withdraw(&self, e: Entry) {
        let mut g = self.inner.lock();
        let t = Self::remove(&mut g, e.seq);
        drop(g);
        if t.is_some_and(|t| t.ordered || t.abort.is_some()) {
            self.changed.notify_all();
        }
    }

    fn remove(g: &mut Inner, seq: u64) -> Option<Task> {
        let t = g.tasks.remove(&seq)?;
        if t.ordered {
            g.ordered -= 1;
        }
        Some(t)
    }

    /// The task completed; returns how it was aborted while running, if it was.
    pub(crate) fn leave(&self, ticket: Ticket) -> Option<Abort> {
        let mut g = self.inner.lock();
        let t = Self::remove(&mut g, ticket.0);
        let wake = g.ordered > 0 || t.as_ref().is_some_and(|t| t.ordered || t.abort.is_some());
        drop(g);
        if wake {
            self.changed.notify_all();
        }
        t.and_then(|t| t.abort)
    }

    /// Mark the tasks in `scope` aborted (`own` nexus → silent; others → `others`), then wait
    /// until all of them have left the set. Returns the nexus ids of the aborted tasks' owners
    /// (for COMMANDS CLEARED BY ANOTHER INITIATOR) and how many tasks were aborted.
    pub(crate) fn abort(&self, scope: Scope, own: u64, others: Abort) -> (Vec<u64>, usize) {
        let nexus_loss = matches!(scope, Scope::Nexus(_));
        let m = self.mark(scope, own, others);
        // I_T nexus loss does not wait: the session is gone and nobody awaits the answer; its
        // transport drops the tasks it holds itself.
        if !nexus_loss {
            self.wait(&m.tasks);
        }
        let n = m.tasks.len();
        (m.owners, n)
    }

    /// The first half of [`TaskSet::abort`]: mark the tasks in `scope` and tell the
    /// transports still holding some of them ([`TaskListener`]); never blocks on them.
    pub(crate) fn mark(&self, scope: Scope, own: u64, others: Abort) -> Marked {
        let mut g = self.inner.lock();
        let mut marked = Vec::new();
        let mut owners = Vec::new();
        let mut tell = Vec::new();
        for (seq, t) in g.tasks.iter_mut() {
            let hit = match &scope {
                Scope::Tag { itl, tag } => t.itl == *itl && t.tag == *tag,
                Scope::Itl(itl) => t.itl == *itl,
                Scope::All => true,
                Scope::Nexus(n) => t.nexus == *n,
                Scope::Preempted { itls, except } => *seq != *except && itls.contains(&t.itl),
            };
            if hit && t.abort.is_none() {
                let how = if t.nexus == own {
                    Abort::Silent
                } else {
                    others
                };
                t.abort = Some(how);
                marked.push(*seq);
                if let Some(l) = t.held_by.take() {
                    tell.push((l, t.tag, how));
                }
                if t.nexus != own && !owners.contains(&t.nexus) {
                    owners.push(t.nexus);
                }
            }
        }
        if marked.is_empty() {
            return Marked {
                tasks: marked,
                owners,
            };
        }
        self.aborts.fetch_add(1, Ordering::AcqRel);
        drop(g);
        self.changed.notify_all();
        if !matches!(scope, Scope::Nexus(_)) {
            // Told without the lock, which the transport takes again to withdraw them.
            let whole_set = !matches!(scope, Scope::Tag { .. });
            for (l, tag, how) in tell {
                if let Some(l) = l.upgrade() {
                    l.aborted(tag, how, whole_set);
                }
            }
        }
        Marked {
            tasks: marked,
            owners,
        }
    }

    /// The second half of [`TaskSet::abort`]: block until the marked tasks have left the set.
    pub(crate) fn wait(&self, marked: &[u64]) {
        if marked.is_empty() {
            return;
        }
        let mut g = self.inner.lock();
        while marked.iter().any(|s| g.tasks.contains_key(s)) {
            self.changed.wait(&mut g);
        }
    }

    /// Whether a running task has been marked aborted: a long command (EXTENDED COPY) polls
    /// this between pieces of work to stop early.
    pub(crate) fn is_aborted(&self, seq: u64) -> bool {
        self.inner
            .lock()
            .tasks
            .get(&seq)
            .is_some_and(|t| t.abort.is_some())
    }

    /// Number of tasks in the set (for tests and the `info` view).
    pub(crate) fn len(&self) -> usize {
        self.inner.lock().tasks.len()
    }

    /// Tasks of I_T nexus `nexus` in the set.
    pub(crate) fn count_of(&self, nexus: u64) -> usize {
        self.inner
            .lock()
            .tasks
            .values()
            .filter(|t| t.nexus == nexus)
            .count()
    }

    /// Tasks marked aborted that have not left the set yet.
    pub(crate) fn aborting(&self) -> usize {
        self.inner
            .lock()
            .tasks
            .values()
            .filter(|t| t.abort.is_some())
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn ordered_waits_for_older_and_blocks_newer_simple() {
        let ts = Arc::new(TaskSet::default());
        let first = ts.enter(1, 1, 1, TaskAttr::Simple, 8).ok();
        let ts2 = ts.clone();
        let ordered = std::thread::spawn(move || {
            let t = ts2.enter(1, 1, 2, TaskAttr::Ordered, 8).ok();
            t.map(|t| ts2.leave(t))
        });
        // Wait until the ORDERED task is queued behind the first one.
        while ts.len() < 2 {
            std::thread::sleep(Duration::from_millis(1));
        }
        // A HEAD OF QUEUE task still runs.
        let hoq = ts.enter(1, 1, 3, TaskAttr::HeadOfQueue, 8).ok();
        assert!(hoq.is_some());
        if let Some(h) = hoq {
            ts.leave(h);
        }
        assert!(!ordered.is_finished());
        if let Some(f) = first {
            assert_eq!(ts.leave(f), None);
        }
        assert_eq!(ordered.join().ok(), Some(Some(None)));
        assert_eq!(ts.len(), 0);
    }

    #[test]
    fn abort_of_a_waiting_task_returns_at_once() {
        let ts = Arc::new(TaskSet::default());
        let blocker = ts.enter(7, 70, 1, TaskAttr::Ordered, 8).ok();
        let ts2 = ts.clone();
        let waiting = std::thread::spawn(move || ts2.enter(8, 80, 5, TaskAttr::Simple, 8).err());
        while ts.len() < 2 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let (owners, n) = ts.abort(Scope::Tag { itl: 80, tag: 5 }, 8, Abort::TaskAborted);
        assert_eq!((owners, n), (vec![], 1));
        assert_eq!(
            waiting.join().ok(),
            Some(Some(Refused::Aborted(Abort::Silent)))
        );
        if let Some(b) = blocker {
            assert_eq!(ts.leave(b), None);
        }
    }

    /// A task its transport still holds is handed back to it; the TMF ends once it is
    /// withdrawn, and a task received after the TMF is not affected.
    #[test]
    fn held_task_is_told_and_waited_for() {
        struct Held {
            ts: Arc<TaskSet>,
            entry: Mutex<Option<Entry>>,
            told: Mutex<Vec<(u64, Abort, bool)>>,
        }
        impl TaskListener for Held {
            fn aborted(&self, tag: u64, how: Abort, whole_set: bool) {
                self.told.lock().push((tag, how, whole_set));
                if let Some(e) = self.entry.lock().take() {
                    self.ts.withdraw(e);
                }
            }
        }
        let ts = Arc::new(TaskSet::default());
        let held = Arc::new(Held {
            ts: ts.clone(),
            entry: Mutex::new(None),
            told: Mutex::new(Vec::new()),
        });
        let weak: Weak<dyn TaskListener> = Arc::downgrade(&held) as Weak<Held>;
        let e = ts.insert(2, 20, 9, TaskAttr::Simple, 8, Some(weak)).ok();
        *held.entry.lock() = e;
        let (owners, n) = ts.abort(Scope::All, 1, Abort::TaskAborted);
        assert_eq!((owners, n), (vec![2], 1));
        assert_eq!(*held.told.lock(), vec![(9, Abort::TaskAborted, true)]);
        assert_eq!(ts.len(), 0);
        // Received after the TMF: runs normally.
        let later = ts.insert(2, 20, 10, TaskAttr::Simple, 8, None).ok();
        let ticket = later.map(|e| ts.start(e));
        assert!(matches!(ticket, Some(Ok(_))));
        if let Some(Ok(t)) = ticket {
            assert_eq!(ts.leave(t), None);
        }
    }
}
