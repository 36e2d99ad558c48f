//! iSCSI sessions (RFC 7143 §4.2): identity (InitiatorName + ISID, TSIH), the connections
//! that belong to it, and the session-wide CmdSN window with in-order delivery (§4.2.2.1,
//! §3.2.2.1): commands are released to execution in CmdSN order across all connections;
//! immediate commands bypass the order; commands outside the window are silently dropped.
//!
//! A session holds a [`ConnHandle`] per connection — its CID and the [`Link`] through which
//! the session stops it, asks it to log out, or reaches the tasks it holds when a TMF of any
//! I_T nexus aborts them (`TaskListener`, RFC 7143 §4.2.3.3) — not the connection itself:
//! `conn` depends on this module, never the reverse.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use ironlun_engine::{Abort, Nexus, TaskListener};
use ironlun_iscsi::negotiation::OperationalParams;
use ironlun_iscsi::serial::{sn_le, sn_lt};
use parking_lot::Mutex;

use crate::listing::ConnInfo;

/// Commands the target accepts ahead of completion (MaxCmdSN - ExpCmdSN + 1).
pub(crate) const QUEUE_DEPTH: u32 = 128;

/// A unit of work released in CmdSN order.
pub(crate) type Job = Box<dyn FnOnce() + Send>;

/// What a session may ask of one of its connections (implemented by the connection, `conn`).
pub(crate) trait Link: Send + Sync {
    /// Close the connection (logout elsewhere, reinstatement, shutdown).
    fn stop(&self);
    /// Ask the initiator to log out (an Asynchronous Message, RFC 7143 §11.9.1 event 1).
    fn request_logout(&self);
    /// A TMF aborted the task with this ITT; end it as `how` if this connection holds it in
    /// its LU's task set. False: no such task here.
    fn abort_held(self: Arc<Self>, itt: u32, how: Abort, whole_set: bool) -> bool;
    /// Drop the tasks this connection holds that still wait for their CmdSN turn and that
    /// `pick` selects; returns how many.
    fn drop_unadmitted(&self, pick: &dyn Fn(&TaskRef) -> bool) -> usize;
}

/// A task held by a connection, as a TMF selects it.
pub(crate) struct TaskRef {
    pub itt: u32,
    pub cmd_sn: u32,
    pub lun: u64,
}

/// The session's handle on one of its connections.
#[derive(Clone)]
pub(crate) struct ConnHandle {
    /// Unique within the session (a reinstated CID gets a new one).
    id: u64,
    cid: u16,
    link: Arc<dyn Link>,
    /// What `ironlun sessions` shows of it.
    info: ConnInfo,
}

struct Window {
    exp_cmd_sn: u32,
    /// Commands that arrived ahead of a gap (multiple connections), by CmdSN.
    waiting: HashMap<u32, Job>,
}

pub(crate) struct Session {
    pub tsih: u16,
    pub initiator: String,
    pub isid: [u8; 6],
    /// `None` for discovery sessions.
    pub target: Option<String>,
    pub tpgt: u16,
    pub nexus: Option<Arc<Nexus>>,
    pub params: OperationalParams,
    window: Mutex<Window>,
    /// CmdSN of the first command + number of non-immediate commands finished: MaxCmdSN is
    /// this + QUEUE_DEPTH - 1, so at most QUEUE_DEPTH commands are ever outstanding.
    finished: AtomicU32,
    exp_cache: AtomicU32,
    conns: Mutex<Vec<ConnHandle>>,
    next_conn_id: AtomicU64,
    closed: AtomicBool,
}

impl Session {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        tsih: u16,
        initiator: String,
        isid: [u8; 6],
        target: Option<String>,
        tpgt: u16,
        nexus: Option<Arc<Nexus>>,
        params: OperationalParams,
        first_cmd_sn: u32,
    ) -> Session {
        Session {
            tsih,
            initiator,
            isid,
            target,
            tpgt,
            nexus,
            params,
            window: Mutex::new(Window {
                exp_cmd_sn: first_cmd_sn,
                waiting: HashMap::new(),
            }),
            finished: AtomicU32::new(first_cmd_sn),
            exp_cache: AtomicU32::new(first_cmd_sn),
            conns: Mutex::new(Vec::new()),
            next_conn_id: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        }
    }

    /// The connections as `ironlun sessions` shows them, by CID.
    pub(crate) fn conn_infos(&self) -> Vec<ConnInfo> {
        let mut v: Vec<ConnInfo> = self.conns.lock().iter().map(|c| c.info.clone()).collect();
        v.sort_by_key(|c| c.cid);
        v
    }

    pub(crate) fn is_discovery(&self) -> bool {
        self.target.is_none()
    }

    pub(crate) fn exp_cmd_sn(&self) -> u32 {
        self.exp_cache.load(Ordering::Acquire)
    }

    pub(crate) fn max_cmd_sn(&self) -> u32 {
        self.finished
            .load(Ordering::Acquire)
            .wrapping_add(QUEUE_DEPTH - 1)
    }

    /// One non-immediate command has finished: open the window by one.
    pub(crate) fn finish_one(&self) {
        self.finished.fetch_add(1, Ordering::AcqRel);
    }

    /// Admit a non-immediate command with `cmd_sn`. Returns the jobs to run now, in CmdSN
    /// order: none if this one waits behind a gap, else `job` itself first. `None`: outside
    /// the window, the command is silently ignored (§4.2.2.1) and `job` is dropped unrun.
    /// Takes only the window's lock and runs nothing under it.
    pub(crate) fn admit(&self, cmd_sn: u32, job: Job) -> Option<Vec<Job>> {
        let mut w = self.window.lock();
        let max = self.max_cmd_sn();
        // A closed session admits nothing: [`Session::close`] has emptied the window for good.
        if self.is_closed() || !(sn_le(w.exp_cmd_sn, cmd_sn) && sn_le(cmd_sn, max)) {
            return None;
        }
        if cmd_sn != w.exp_cmd_sn {
            w.waiting.insert(cmd_sn, job);
            return Some(Vec::new());
        }
        let mut ready = vec![job];
        w.exp_cmd_sn = w.exp_cmd_sn.wrapping_add(1);
        loop {
            let next = w.exp_cmd_sn;
            let Some(j) = w.waiting.remove(&next) else {
                break;
            };
            ready.push(j);
            w.exp_cmd_sn = w.exp_cmd_sn.wrapping_add(1);
        }
        self.exp_cache.store(w.exp_cmd_sn, Ordering::Release);
        Some(ready)
    }

    /// Is `sn` in the window and not yet received (ABORT TASK RefCmdSN rule, §11.5.1)?
    pub(crate) fn not_yet_received(&self, sn: u32) -> bool {
        let w = self.window.lock();
        sn_le(w.exp_cmd_sn, sn) && sn_le(sn, self.max_cmd_sn()) && !w.waiting.contains_key(&sn)
    }

    /// Mark the command with `sn` as aborted before arrival: it counts as received (so the
    /// window moves past it) and the command itself will be discarded when it arrives.
    pub(crate) fn consume_sn(&self, sn: u32) -> Vec<Job> {
        let this_finishes: Job = Box::new(|| {});
        let r = self.admit(sn, this_finishes).unwrap_or_default();
        self.finish_one();
        r
    }

    /// True once the session has been torn down (logout, reinstatement, last connection gone).
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Tear down: stop every connection and close the I_T nexus (once).
    pub(crate) fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let conns: Vec<ConnHandle> = self.conns.lock().drain(..).collect();
        for c in conns {
            c.link.stop();
        }
        // Commands waiting behind a CmdSN gap will never run; their jobs hold their
        // connections, which hold this session: drop them (outside the lock) or both leak.
        let waiting = std::mem::take(&mut self.window.lock().waiting);
        drop(waiting);
        if let Some(n) = &self.nexus {
            n.close();
        }
    }

    /// Add a connection with `cid`, stopping one with the same CID (connection reinstatement,
    /// RFC 7143 §6.3.4). Returns its id for [`Session::detach`].
    pub(crate) fn attach(&self, info: ConnInfo, link: Arc<dyn Link>) -> u64 {
        let cid = info.cid;
        let id = self.next_conn_id.fetch_add(1, Ordering::Relaxed);
        let mut conns = self.conns.lock();
        if let Some(pos) = conns.iter().position(|c| c.cid == cid) {
            conns.remove(pos).link.stop();
        }
        conns.push(ConnHandle {
            id,
            cid,
            link,
            info,
        });
        id
    }

    /// Remove the connection `id` has named; true when no connection is left.
    pub(crate) fn detach(&self, id: u64) -> bool {
        let mut conns = self.conns.lock();
        conns.retain(|c| c.id != id);
        conns.is_empty()
    }

    /// May a connection with `cid` join: it replaces one, or MaxConnections is not reached.
    pub(crate) fn can_add(&self, cid: u16) -> bool {
        let conns = self.conns.lock();
        conns.iter().any(|c| c.cid == cid) || (conns.len() as u32) < self.params.max_connections
    }

    /// Stop the connection with `cid`; false when there is none.
    pub(crate) fn stop_conn(&self, cid: u16) -> bool {
        let found = self.conns.lock().iter().find(|c| c.cid == cid).cloned();
        match found {
            Some(c) => {
                c.link.stop();
                true
            }
            None => false,
        }
    }

    /// Stop every connection but the one with `cid` (logout closing the session).
    pub(crate) fn stop_others(&self, cid: u16) {
        let others: Vec<ConnHandle> = self
            .handles()
            .into_iter()
            .filter(|c| c.cid != cid)
            .collect();
        for o in others {
            o.link.stop();
        }
    }

    /// Ask the initiator to log out on every connection (shutdown).
    pub(crate) fn request_logout(&self) {
        for c in self.conns.lock().iter() {
            c.link.request_logout();
        }
    }

    /// Drop the tasks of every connection that still wait for their CmdSN turn and that
    /// `pick` selects (the engine does not know them yet); returns how many.
    pub(crate) fn drop_unadmitted(&self, pick: &dyn Fn(&TaskRef) -> bool) -> usize {
        self.handles()
            .iter()
            .map(|c| c.link.drop_unadmitted(pick))
            .sum()
    }

    fn handles(&self) -> Vec<ConnHandle> {
        self.conns.lock().clone()
    }

    /// Check in-order bookkeeping is consistent for debugging assertions in tests.
    #[cfg(test)]
    pub(crate) fn waiting_len(&self) -> usize {
        self.window.lock().waiting.len()
    }
}

/// TMFs of any I_T nexus reach the tasks this session's connections still hold (the engine
/// calls this with the task's tag, see `Nexus::set_task_listener` in login.rs).
impl TaskListener for Session {
    fn aborted(&self, tag: u64, how: Abort, whole_set: bool) {
        let Ok(itt) = u32::try_from(tag) else {
            return;
        };
        for c in self.handles() {
            if c.link.abort_held(itt, how, whole_set) {
                return;
            }
        }
    }
}

/// All sessions of the fabric, by TSIH.
#[derive(Default)]
pub(crate) struct Registry {
    inner: Mutex<RegInner>,
}

#[derive(Default)]
struct RegInner {
    next_tsih: u16,
    sessions: HashMap<u16, Arc<Session>>,
}

impl Registry {
    /// A fresh non-zero TSIH not in use.
    pub(crate) fn alloc_tsih(&self) -> Option<u16> {
        let mut r = self.inner.lock();
        for _ in 0..=u16::MAX {
            r.next_tsih = r.next_tsih.wrapping_add(1);
            let t = r.next_tsih;
            if t != 0 && !r.sessions.contains_key(&t) {
                return Some(t);
            }
        }
        None
    }
    /// Register a new leading session and, in the same critical section, unregister every
    /// other session of the same initiator port on the same target portal group (§6.3.5: one
    /// session per InitiatorName + ISID). The caller closes what is returned. Doing the two
    /// under one lock keeps racing logins with one ISID from leaving several sessions open.
    /// The limit on sessions per initiator is checked in the same critical section, so logins
    /// racing from one initiator name cannot all pass it: `Err(())` when the initiator already
    /// has `max` sessions besides those this one displaces (nothing is changed then).
    pub(crate) fn insert_replacing(
        &self,
        s: Arc<Session>,
        max: usize,
    ) -> Result<Vec<Arc<Session>>, ()> {
        let mut r = self.inner.lock();
        let displaced: Vec<u16> = r
            .sessions
            .values()
            .filter(|o| {
                o.tsih != s.tsih
                    && o.initiator == s.initiator
                    && o.isid == s.isid
                    && o.target == s.target
                    && o.tpgt == s.tpgt
            })
            .map(|o| o.tsih)
            .collect();
        let others = r
            .sessions
            .values()
            .filter(|o| o.initiator == s.initiator && !displaced.contains(&o.tsih))
            .count();
        if others >= max {
            return Err(());
        }
        let out = displaced
            .iter()
            .filter_map(|t| r.sessions.remove(t))
            .collect();
        r.sessions.insert(s.tsih, s);
        Ok(out)
    }
    /// Sessions of `initiator` (every target, discovery included).
    pub(crate) fn count_of(&self, initiator: &str) -> usize {
        let r = self.inner.lock();
        r.sessions
            .values()
            .filter(|s| s.initiator == initiator)
            .count()
    }
    pub(crate) fn get(&self, tsih: u16) -> Option<Arc<Session>> {
        self.inner.lock().sessions.get(&tsih).cloned()
    }
    /// Remove `s` if it is still the registered session for its TSIH.
    pub(crate) fn remove(&self, s: &Arc<Session>) {
        let mut r = self.inner.lock();
        if r.sessions.get(&s.tsih).is_some_and(|x| Arc::ptr_eq(x, s)) {
            r.sessions.remove(&s.tsih);
        }
    }
    /// The session of this initiator port on this target portal group (for reinstatement).
    pub(crate) fn find(
        &self,
        initiator: &str,
        isid: [u8; 6],
        target: Option<&str>,
        tpgt: u16,
    ) -> Option<Arc<Session>> {
        self.inner
            .lock()
            .sessions
            .values()
            .find(|s| {
                s.initiator == initiator
                    && s.isid == isid
                    && s.target.as_deref() == target
                    && s.tpgt == tpgt
            })
            .cloned()
    }
    pub(crate) fn all(&self) -> Vec<Arc<Session>> {
        self.inner.lock().sessions.values().cloned().collect()
    }
}

/// `a < b` re-exported for callers comparing RefCmdSN with a TMF's CmdSN.
pub(crate) fn sn_before(a: u32, b: u32) -> bool {
    sn_lt(a, b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn session(first: u32) -> Session {
        Session::new(
            1,
            "i".into(),
            [0; 6],
            Some("t".into()),
            1,
            None,
            OperationalParams::default(),
            first,
        )
    }

    #[test]
    fn releases_in_cmdsn_order() {
        let s = session(10);
        let order = Arc::new(Mutex::new(Vec::new()));
        let job = |n: u32| -> Job {
            let o = order.clone();
            Box::new(move || o.lock().push(n))
        };
        assert_eq!(s.admit(12, job(12)).map(|v| v.len()), Some(0));
        assert_eq!(s.admit(11, job(11)).map(|v| v.len()), Some(0));
        assert_eq!(s.waiting_len(), 2);
        let ready = s.admit(10, job(10)).unwrap();
        for j in ready {
            j();
        }
        assert_eq!(*order.lock(), vec![10, 11, 12]);
        assert_eq!(s.exp_cmd_sn(), 13);
    }

    #[test]
    fn outside_window_is_dropped() {
        let s = session(0xffff_fffe);
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        assert!(s
            .admit(
                0xffff_fffd,
                Box::new(move || {
                    r.fetch_add(1, Ordering::SeqCst);
                })
            )
            .is_none());
        assert!(s
            .admit(0xffff_fffe_u32.wrapping_add(QUEUE_DEPTH), Box::new(|| {}))
            .is_none());
        // Wraps through zero.
        assert!(s.admit(0xffff_fffe, Box::new(|| {})).is_some());
        assert!(s.admit(0xffff_ffff, Box::new(|| {})).is_some());
        assert!(s.admit(0, Box::new(|| {})).is_some());
        assert_eq!(s.exp_cmd_sn(), 1);
        assert_eq!(ran.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn close_drops_the_jobs_waiting_behind_a_gap() {
        // A waiting job holds its connection, and the connection holds the session: the window
        // must let go of it on close, or session and connection outlive both (a leak per
        // session that ends with a CmdSN gap).
        let s = session(5);
        let held = Arc::new(());
        let h = held.clone();
        assert_eq!(
            s.admit(7, Box::new(move || drop(h))).map(|v| v.len()),
            Some(0)
        );
        assert_eq!(Arc::strong_count(&held), 2);
        s.close();
        assert_eq!(s.waiting_len(), 0);
        assert_eq!(Arc::strong_count(&held), 1);
        // Nothing more is admitted once closed.
        assert!(s.admit(5, Box::new(|| {})).is_none());
    }

    #[test]
    fn window_opens_as_commands_finish() {
        let s = session(0);
        assert_eq!(s.max_cmd_sn(), QUEUE_DEPTH - 1);
        s.finish_one();
        assert_eq!(s.max_cmd_sn(), QUEUE_DEPTH);
    }

    #[test]
    fn tsih_is_nonzero_and_unique() {
        let r = Registry::default();
        let a = r.alloc_tsih().unwrap();
        r.insert_replacing(
            Arc::new(Session::new(
                a,
                "i".into(),
                [0; 6],
                None,
                0,
                None,
                OperationalParams::default(),
                0,
            )),
            8,
        )
        .unwrap();
        let b = r.alloc_tsih().unwrap();
        assert!(a != 0 && b != 0 && a != b);
    }

    fn port_session(r: &Registry, isid: u8, target: &str) -> Arc<Session> {
        let tsih = r.alloc_tsih().unwrap();
        Arc::new(Session::new(
            tsih,
            "iqn.2026-11.test:i".into(),
            [0x80, 0, 0, 0, 0, isid],
            Some(target.into()),
            1,
            None,
            OperationalParams::default(),
            0,
        ))
    }

    #[test]
    fn a_new_session_displaces_only_its_own_initiator_port() {
        let r = Registry::default();
        let first = port_session(&r, 1, "iqn.2026-11.test:t");
        assert!(r.insert_replacing(first.clone(), 8).unwrap().is_empty());
        let other_isid = port_session(&r, 2, "iqn.2026-11.test:t");
        assert!(r
            .insert_replacing(other_isid.clone(), 8)
            .unwrap()
            .is_empty());
        let other_target = port_session(&r, 1, "iqn.2026-11.test:u");
        assert!(r
            .insert_replacing(other_target.clone(), 8)
            .unwrap()
            .is_empty());

        let again = port_session(&r, 1, "iqn.2026-11.test:t");
        let displaced = r.insert_replacing(again.clone(), 8).unwrap();
        assert_eq!(displaced.len(), 1);
        assert!(Arc::ptr_eq(&displaced[0], &first));
        let mut left: Vec<u16> = r.all().iter().map(|s| s.tsih).collect();
        left.sort_unstable();
        let mut want = vec![other_isid.tsih, other_target.tsih, again.tsih];
        want.sort_unstable();
        assert_eq!(left, want);
    }

    #[test]
    fn the_session_limit_is_checked_where_the_session_is_inserted() {
        // Two logins of one initiator that both passed the early check before either was
        // inserted: only one of them may take the last place.
        let r = Registry::default();
        let first = port_session(&r, 1, "iqn.2026-11.test:t");
        r.insert_replacing(first.clone(), 2).unwrap();
        let a = port_session(&r, 2, "iqn.2026-11.test:t");
        let b = port_session(&r, 3, "iqn.2026-11.test:t");
        assert!(r.insert_replacing(a.clone(), 2).unwrap().is_empty());
        assert!(r.insert_replacing(b.clone(), 2).is_err());
        assert_eq!(r.count_of("iqn.2026-11.test:i"), 2);
        assert!(r.get(b.tsih).is_none());
        // Reinstating an initiator port at the limit replaces it and is allowed.
        let again = port_session(&r, 2, "iqn.2026-11.test:t");
        let displaced = r.insert_replacing(again.clone(), 2).unwrap();
        assert!(Arc::ptr_eq(&displaced[0], &a));
        assert_eq!(r.count_of("iqn.2026-11.test:i"), 2);
    }

    fn conn_info(cid: u16) -> ConnInfo {
        let a: std::net::SocketAddr = ([127, 0, 0, 1], 3260).into();
        ConnInfo {
            cid,
            peer: a,
            local: a,
            chap: false,
            digests: (false, false),
            since: std::time::SystemTime::now(),
        }
    }

    /// A connection that counts what the session asks of it.
    #[derive(Default)]
    struct Probe {
        stops: AtomicUsize,
        logouts: AtomicUsize,
    }

    impl Link for Probe {
        fn stop(&self) {
            self.stops.fetch_add(1, Ordering::SeqCst);
        }
        fn request_logout(&self) {
            self.logouts.fetch_add(1, Ordering::SeqCst);
        }
        fn abort_held(self: Arc<Self>, _: u32, _: Abort, _: bool) -> bool {
            false
        }
        fn drop_unadmitted(&self, _: &dyn Fn(&TaskRef) -> bool) -> usize {
            1
        }
    }

    fn stops(p: &Probe) -> usize {
        p.stops.load(Ordering::SeqCst)
    }

    #[test]
    fn a_login_with_a_live_cid_replaces_that_connection() {
        let s = session(0);
        let (a, b, again) = (
            Arc::new(Probe::default()),
            Arc::new(Probe::default()),
            Arc::new(Probe::default()),
        );
        let id_a = s.attach(conn_info(1), a.clone());
        let id_b = s.attach(conn_info(2), b.clone());
        let id_again = s.attach(conn_info(1), again.clone());
        assert!(id_a != id_b && id_a != id_again && id_b != id_again);
        assert_eq!((stops(&a), stops(&b), stops(&again)), (1, 0, 0));
        // The replaced connection's own teardown finds nothing left to remove.
        assert!(!s.detach(id_a));
        assert!(!s.detach(id_b));
        assert!(s.detach(id_again));
    }

    #[test]
    fn max_connections_bounds_new_cids_only() {
        let params = OperationalParams {
            max_connections: 1,
            ..OperationalParams::default()
        };
        let s = Session::new(1, "i".into(), [0; 6], Some("t".into()), 1, None, params, 0);
        assert!(s.can_add(7));
        s.attach(conn_info(7), Arc::new(Probe::default()));
        assert!(s.can_add(7), "reinstating CID 7");
        assert!(!s.can_add(8));
    }

    #[test]
    fn logout_and_shutdown_reach_the_right_connections() {
        let s = session(0);
        let probes: Vec<Arc<Probe>> = (0..3).map(|_| Arc::new(Probe::default())).collect();
        for (cid, p) in probes.iter().enumerate() {
            s.attach(conn_info(cid as u16), p.clone());
        }
        assert!(!s.stop_conn(9));
        assert!(s.stop_conn(2));
        assert_eq!(
            probes.iter().map(|p| stops(p)).collect::<Vec<_>>(),
            [0, 0, 1]
        );
        s.stop_others(0);
        assert_eq!(
            probes.iter().map(|p| stops(p)).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        s.request_logout();
        assert!(probes.iter().all(|p| p.logouts.load(Ordering::SeqCst) == 1));
        assert_eq!(s.drop_unadmitted(&|_| true), 3);
        s.close();
        assert_eq!(
            probes.iter().map(|p| stops(p)).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert!(s.is_closed());
    }
}
