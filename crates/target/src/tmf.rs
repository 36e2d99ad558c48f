//! The task set of a logical unit and task management (SAM-5 §8 task attributes, §7 TMFs).
//!
//! Every command enters its LU's task set before it runs and leaves it when done. Task
//! attributes (SAM-5 §8.5-8.7): SIMPLE tasks run concurrently but not before an older ORDERED
//! task completed; an ORDERED task waits until every older task completed; HEAD OF QUEUE tasks
//! run at once. A TMF marks tasks aborted, wakes those still waiting, and waits until every
//! marked task has left the set (SAM-5 §7.1: the TMF completes after the tasks are aborted).

use std::collections::BTreeMap;

use parking_lot::{Condvar, Mutex};

use crate::TaskAttr;

/// How an aborted task ends (SAM-5 §5.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Abort {
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
}

/// Why a task could not enter or run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The task set already holds `queue_depth` tasks (SAM-5 §5.3.1 TASK SET FULL).
    Full,
    Aborted(Abort),
}

/// A task's place in the set, returned by [`TaskSet::enter`].
pub(crate) struct Ticket(u64);

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
}

impl TaskSet {
    /// Add a task and block until its attribute lets it run. Err if it was aborted meanwhile.
    pub(crate) fn enter(
        &self,
        nexus: u64,
        itl: u64,
        tag: u64,
        attr: TaskAttr,
        limit: usize,
    ) -> Result<Ticket, Refused> {
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
            },
        );
        if ordered {
            g.ordered += 1;
        }
        loop {
            let may_run = match attr {
                TaskAttr::HeadOfQueue => true,
                TaskAttr::Ordered => g.tasks.range(..seq).next().is_none(),
                _ => g.ordered == 0 || !g.tasks.range(..seq).any(|(_, t)| t.ordered),
            };
            let abort = g.tasks.get(&seq).and_then(|t| t.abort);
            if let Some(a) = abort {
                Self::remove(&mut g, seq);
                drop(g);
                self.changed.notify_all();
                return Err(Refused::Aborted(a));
            }
            if may_run {
                return Ok(Ticket(seq));
            }
            self.changed.wait(&mut g);
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
        let mut g = self.inner.lock();
        let mut marked = Vec::new();
        let mut owners = Vec::new();
        for (seq, t) in g.tasks.iter_mut() {
            let hit = match scope {
                Scope::Tag { itl, tag } => t.itl == itl && t.tag == tag,
                Scope::Itl(itl) => t.itl == itl,
                Scope::All => true,
                Scope::Nexus(n) => t.nexus == n,
            };
            if hit && t.abort.is_none() {
                t.abort = Some(if t.nexus == own {
                    Abort::Silent
                } else {
                    others
                });
                marked.push(*seq);
                if t.nexus != own && !owners.contains(&t.nexus) {
                    owners.push(t.nexus);
                }
            }
        }
        if marked.is_empty() {
            return (owners, 0);
        }
        self.changed.notify_all();
        // I_T nexus loss does not wait: the session is gone and nobody awaits the answer.
        if !matches!(scope, Scope::Nexus(_)) {
            while marked.iter().any(|s| g.tasks.contains_key(s)) {
                self.changed.wait(&mut g);
            }
        }
        (owners, marked.len())
    }

    /// Number of tasks in the set (for tests and the `info` view).
    pub(crate) fn len(&self) -> usize {
        self.inner.lock().tasks.len()
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
}
