//! The multipath engine: one logical unit over N paths, I/O sent where the policy says
//! ([`super::policy`]), the ALUA picture re-read once for all I/Os that found it stale, failed
//! paths reconnected in the background and watched by a path checker, as dm-multipath with
//! `group_by_prio`, the alua prioritizer, scsi_dh_alua and the tur checker do. Each session's
//! unsolicited events are read as they come ([`watch`]): a connection that ends fails its path
//! at once, and Asynchronous Messages are acted on ([`on_async`]).

use std::fmt::Display;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ironlun_initiator::alua::{stpg_cdb, stpg_params, StpgDescriptor};
use ironlun_initiator::Bytes;
use ironlun_initiator::{Capacity, CommandResult, Event, EventReceiver};
use ironlun_scsi::alua::AccessState;
use tokio::sync::{watch as stop_signal, Notify};
use tokio::task::JoinHandle;

use super::path::{read_view, send, send_unsettled, settle, tur, Cmd, Path, Sent, View};
use super::policy::{
    active_priority, backoff, classify, on_async, stpg_candidate, transition_time, AsyncAction,
    Checker, PathInfo, Verdict,
};
use crate::ctx::{fmt_secs, Ctx};
use crate::url::IscsiUrl;
use crate::{HostError, Result};

/// The engine's settings (multipath.conf's words where it has them).
#[derive(Clone, Debug)]
pub struct MpathOptions {
    /// How often the path checker sends TEST UNIT READY to failed and standby paths.
    pub checker_interval: Duration,
    /// How long I/O is queued while no path is usable, before it fails.
    pub no_path_retry: Duration,
    /// How long a better group must be usable before I/O goes back to it (0: at once).
    pub failback_delay: Duration,
    /// Send SET TARGET PORT GROUPS when only Standby paths are left and TPGS allows it.
    pub explicit_failover: bool,
    /// The hold on a transitioning group when RTPG gives no implicit transition time.
    pub default_transition: Duration,
    /// Longest pause between reconnect attempts of a failed path.
    pub reconnect_max: Duration,
}

impl Default for MpathOptions {
    fn default() -> MpathOptions {
        MpathOptions {
            checker_interval: Duration::from_secs(2),
            no_path_retry: Duration::from_secs(30),
            failback_delay: Duration::ZERO,
            explicit_failover: false,
            default_transition: Duration::from_secs(10),
            reconnect_max: Duration::from_secs(2),
        }
    }
}

/// Commands retried on plain UNIT ATTENTIONs before the outcome is returned.
const MAX_UA_RETRIES: u32 = 16;
/// The longest pause while no path is usable (the ALUA picture is re-read after each).
const NO_PATH_POLL: Duration = Duration::from_millis(250);

/// The shared state of a multipath LU.
#[derive(Debug)]
pub struct Inner {
    pub opts: MpathOptions,
    pub paths: Vec<Path>,
    pub wwid: String,
    pub lun: u64,
    pub capacity: Capacity,
    pub explicit: bool,
    /// Held while the ALUA picture is re-read; `epoch` counts the re-reads done.
    reread: tokio::sync::Mutex<()>,
    pub epoch: AtomicU64,
    /// Woken when a path comes back or the picture changes.
    changed: Notify,
    turn: AtomicUsize,
    /// The group priority I/O goes to and, with a failback delay, when a better one was seen.
    current: Mutex<(Option<u32>, Option<Instant>)>,
    pub closed: AtomicBool,
    /// Set once the LU is closed or dropped: ends the event watchers.
    pub stop: stop_signal::Sender<bool>,
}

/// Log in on every path, read each one's ALUA view, check they name one LU, read its
/// capacity. Each path logs in with its own ISID. A path that cannot be opened is kept as a
/// failed one that reconnects in the background (as multipathd keeps a path that is down at
/// boot); with no path open at all, or paths to two LUs, the open fails.
pub async fn open_inner(ctx: &Ctx, urls: &[IscsiUrl], opts: MpathOptions) -> Result<Arc<Inner>> {
    if urls.is_empty() {
        return Err(HostError::new("multipath: no path (URL) given"));
    }
    let mut set = tokio::task::JoinSet::new();
    for (i, u) in urls.iter().enumerate() {
        let c = ctx.for_path(0x2000, i);
        let u = u.clone();
        set.spawn(async move {
            let r = async {
                let lu = c.open(&u).await?;
                let v = read_view(&c, &lu).await?;
                let ck = tur(&c, &lu).await.unwrap_or(Checker::Faulty);
                Ok::<_, HostError>((lu, v, ck))
            }
            .await;
            (i, c, u, r)
        });
    }
    let mut got: Vec<(usize, Path, View)> = Vec::new();
    let mut down: Vec<(usize, Path)> = Vec::new();
    let mut errs = Vec::new();
    while let Some(j) = set.join_next().await {
        let (i, c, u, r) = j.map_err(|e| HostError::new(format!("multipath: open: {e}")))?;
        match r {
            Ok((lu, v, ck)) => got.push((i, Path::new(u, c, &lu, &v, ck), v)),
            Err(e) => {
                errs.push(format!("path {u}: {}", e.0));
                down.push((i, Path::down(u, c, e.0)));
            }
        }
    }
    if got.is_empty() {
        return Err(HostError::new(format!(
            "multipath: cannot open any path: {}",
            errs.join("; ")
        )));
    }
    got.sort_by_key(|(i, _, _)| *i);
    let order: Vec<usize> = got.iter().map(|(i, _, _)| *i).collect();
    let got: Vec<(Path, View)> = got.into_iter().map(|(_, p, v)| (p, v)).collect();
    let wwid = got[0].1.wwid.clone();
    if let Some((p, v)) = got.iter().find(|(_, v)| v.wwid != wwid) {
        return Err(HostError::new(format!(
            "multipath: path {} leads to another logical unit (WWID {}) than {} (WWID {wwid}); \
             refused",
            p.url, v.wwid, got[0].0.url
        )));
    }
    let explicit = got.iter().any(|(_, v)| v.explicit);
    share_pref(&got);
    let lun = got[0].0.url.lun;
    let lu = got[0]
        .0
        .lu()
        .ok_or_else(|| HostError::new("multipath: first path lost"))?;
    let capacity = read_capacity(&got[0].0.ctx, &lu).await?;
    // Every path in the order of the URLs, the failed ones among them.
    let mut slots: Vec<Option<Path>> = (0..urls.len()).map(|_| None).collect();
    for (i, (p, _)) in order.into_iter().zip(got) {
        slots[i] = Some(p);
    }
    let failed: Vec<usize> = down.iter().map(|(i, _)| *i).collect();
    for (i, p) in down {
        slots[i] = Some(p);
    }
    let inner = Arc::new(Inner {
        opts,
        paths: slots.into_iter().flatten().collect(),
        wwid,
        lun,
        capacity,
        explicit,
        reread: tokio::sync::Mutex::new(()),
        epoch: AtomicU64::new(0),
        changed: Notify::new(),
        turn: AtomicUsize::new(0),
        current: Mutex::new((None, None)),
        closed: AtomicBool::new(false),
        stop: stop_signal::channel(false).0,
    });
    for (i, p) in inner.paths.iter().enumerate() {
        if let Some(lu) = p.lu() {
            watch(&inner, i, lu.session.events());
        }
    }
    for i in failed {
        tracing::warn!(
            "multipath: path {} is down at start: {}; it reconnects in the background",
            inner.paths[i].url,
            inner.paths[i].st().last_error.clone().unwrap_or_default()
        );
        let me = inner.clone();
        tokio::spawn(async move { me.reconnect(i).await });
    }
    Ok(inner)
}

/// Read one path's session events until the session ends or the LU closes (module docs). The
/// watcher does not keep the session, nor the LU, alive.
fn watch(inner: &Arc<Inner>, i: usize, rx: EventReceiver) {
    let weak = Arc::downgrade(inner);
    let mut stop = inner.stop.subscribe();
    tokio::spawn(async move {
        loop {
            let ev = tokio::select! {
                ev = rx.next() => ev,
                _ = stop.wait_for(|s| *s) => return,
            };
            let Some(ev) = ev else { return };
            let Some(me) = weak.upgrade() else { return };
            if me.closed.load(Ordering::Acquire) {
                return;
            }
            match ev {
                Event::Closed(why) => {
                    if me.paths[i].lu().is_some_and(|lu| rx.of(&lu.session)) {
                        me.path_failed(i, &why);
                    }
                    return;
                }
                Event::Async { msg, data } => {
                    let Some(lu) = me.paths[i].lu().filter(|lu| rx.of(&lu.session)) else {
                        continue;
                    };
                    match on_async(&msg, &data) {
                        AsyncAction::Reread => {
                            Box::pin(me.reread(me.epoch.load(Ordering::Acquire))).await;
                        }
                        AsyncAction::Leave(why) => {
                            me.path_failed(i, &why);
                            me.paths[i].ctx.logout(&lu.session).await;
                        }
                        AsyncAction::Negotiate => {
                            let t = me.paths[i].ctx.timeout;
                            let _ = tokio::time::timeout(t, lu.session.text_request(&[])).await;
                        }
                        AsyncAction::Nothing => {}
                    }
                }
                // Counted in the session's statistics; read here so they do not pile up.
                Event::Reject { .. } | Event::Unexpected(_) => {}
            }
        }
    });
}

/// A path whose port refused RTPG takes its group's PREF from another path's report.
fn share_pref(got: &[(Path, View)]) {
    let known: Vec<(u16, AccessState, bool)> =
        got.iter().flat_map(|(_, v)| v.reported.clone()).collect();
    for (p, v) in got.iter().filter(|(_, v)| v.refused) {
        if let Some(&(_, _, pref)) = known.iter().find(|(g, _, _)| Some(*g) == v.group) {
            p.st().pref = pref;
        }
    }
}

/// READ CAPACITY (16) (SBC-4 §5.16.2), unit attentions asked again.
async fn read_capacity(ctx: &Ctx, lu: &crate::ctx::Lu) -> Result<Capacity> {
    let what = format!("READ CAPACITY (16) to {}", lu.url);
    let cdb = ironlun_initiator::scsi::cdb::read_capacity16(32);
    for _ in 0..5 {
        let r = ctx
            .command(&lu.session, lu.url.lun, &cdb, None, 32, &what)
            .await?;
        if r.status == ironlun_scsi::status::GOOD {
            return Capacity::parse(&r.data_in)
                .map_err(|e| HostError::new(format!("{what}: {}", crate::error::describe(&e))));
        }
        if classify(&r) == Verdict::Done {
            return Err(HostError::new(format!(
                "{what}: {}",
                crate::error::scsi_failure(r.status, r.sense.as_ref())
            )));
        }
    }
    Err(HostError::new(format!(
        "{what}: still UNIT ATTENTION after 5 tries"
    )))
}

impl Inner {
    pub fn infos(&self) -> Vec<PathInfo> {
        self.paths.iter().map(Path::info).collect()
    }

    /// The group priority I/O goes to now, failback delay applied.
    pub fn active(&self, infos: &[PathInfo]) -> Option<u32> {
        let best = active_priority(infos)?;
        let mut cur = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let delay = self.opts.failback_delay;
        let still = |p: u32| infos.iter().any(|i| i.usable() && i.priority() == p);
        match cur.0 {
            Some(c) if c < best && !delay.is_zero() && still(c) => {
                let since = *cur.1.get_or_insert_with(Instant::now);
                if since.elapsed() < delay {
                    return Some(c);
                }
            }
            _ => {}
        }
        *cur = (Some(best), None);
        Some(best)
    }

    /// The path for the next command.
    fn pick(&self) -> Option<usize> {
        let infos = self.infos();
        let prio = self.active(&infos)?;
        let member = |i: &PathInfo| i.usable() && i.priority() == prio;
        let n = infos.iter().filter(|i| member(i)).count();
        let t = self.turn.fetch_add(1, Ordering::Relaxed) % n.max(1);
        infos
            .iter()
            .enumerate()
            .filter(|(_, i)| member(i))
            .nth(t)
            .map(|(i, _)| i)
    }

    /// One command through the map (module docs); a non-GOOD outcome that is the command's
    /// own is returned as data.
    pub async fn execute(
        self: &Arc<Self>,
        cdb: &[u8],
        data: Option<Bytes>,
        alloc: u32,
        what: &(dyn Display + Sync),
    ) -> Result<CommandResult> {
        // The rare paths (re-reads, explicit failover) are boxed: every I/O's future stays
        // small, and spawning or finishing it moves less memory.
        let mut no_path_since: Option<Instant> = None;
        let mut transitioning_since: Option<Instant> = None;
        let mut busy_since: Option<Instant> = None;
        let (mut attempt, mut uas) = (0u32, 0u32);
        let mut left: Option<usize> = None;
        loop {
            let epoch = self.epoch.load(Ordering::Acquire);
            let Some(i) = self.pick() else {
                let since = *no_path_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= self.opts.no_path_retry {
                    return Err(HostError::new(format!(
                        "{what}: no usable path for {} s (no_path_retry): {}",
                        fmt_secs(since.elapsed()),
                        self.summary()
                    )));
                }
                if self.opts.explicit_failover {
                    Box::pin(self.explicit_failover()).await;
                }
                let pause = backoff(attempt, NO_PATH_POLL);
                attempt = attempt.saturating_add(1);
                // Woken by news (a re-read, a path back) or the pause; re-read only if no one
                // else did meanwhile, so queued I/Os do not wake each other into a storm.
                let before = self.epoch.load(Ordering::Acquire);
                let _ = tokio::time::timeout(pause, self.changed.notified()).await;
                if self.epoch.load(Ordering::Acquire) == before {
                    Box::pin(self.reread(before)).await;
                }
                continue;
            };
            no_path_since = None;
            let p = &self.paths[i];
            if let Some(l) = left.take().filter(|&l| l != i) {
                self.paths[l].failovers.fetch_add(1, Ordering::Relaxed);
            }
            let Some(session) = p.session() else {
                continue;
            };
            let cmd = Cmd {
                lun: self.lun,
                cdb,
                data: data.clone(),
                alloc,
                what,
            };
            let sent = send_unsettled(&p.ctx, &session, cmd);
            let r = match sent.await? {
                Sent::Transport(why) => {
                    self.path_failed(i, &why);
                    left = Some(i);
                    continue;
                }
                Sent::Hung(why) => {
                    // The path's failure is this command's silence; then the command is ended
                    // in the target before it goes anywhere else.
                    self.path_failed(i, &why);
                    Box::pin(settle(&p.ctx, &session, self.lun, what)).await;
                    left = Some(i);
                    continue;
                }
                Sent::Outcome(r) => r,
            };
            p.ios.fetch_add(1, Ordering::Relaxed);
            match classify(&r) {
                Verdict::Done => return Ok(r),
                Verdict::Reread => {
                    left = Some(i);
                    Box::pin(self.reread(epoch)).await;
                }
                Verdict::Retry => {
                    uas += 1;
                    if uas > MAX_UA_RETRIES {
                        return Ok(r);
                    }
                }
                Verdict::Busy => {
                    let since = *busy_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= p.ctx.timeout {
                        return Ok(r);
                    }
                    tokio::time::sleep(backoff(attempt, Duration::from_millis(200))).await;
                    attempt = attempt.saturating_add(1);
                }
                Verdict::Transitioning => {
                    // Held on this group up to its transition time: the re-read marks it
                    // Transitioning (not usable), so I/O waits unless another group is
                    // usable; past the time, the path is taken for Unavailable until the
                    // next re-read, and I/O fails over.
                    left = Some(i);
                    let since = *transitioning_since.get_or_insert_with(Instant::now);
                    let limit =
                        transition_time(p.st().transition_secs, self.opts.default_transition);
                    if since.elapsed() >= limit {
                        p.st().state = Some(AccessState::Unavailable);
                    } else {
                        tokio::time::sleep(backoff(attempt, Duration::from_millis(500))).await;
                        attempt = attempt.saturating_add(1);
                        Box::pin(self.reread(epoch)).await;
                    }
                }
            }
        }
    }

    /// Re-read the ALUA picture through every connected path, unless another I/O did since
    /// `seen` (the epoch when the caller's command was sent): one re-read for all.
    pub async fn reread(self: &Arc<Self>, seen: u64) {
        let _g = self.reread.lock().await;
        if self.epoch.load(Ordering::Acquire) != seen {
            return;
        }
        if self.paths.iter().all(|p| p.lu().is_none()) {
            // Nothing to ask: the reconnects will bring news.
            return;
        }
        let mut set = tokio::task::JoinSet::new();
        for (i, p) in self.paths.iter().enumerate() {
            if let Some(lu) = p.lu() {
                let c = p.ctx.clone();
                set.spawn(async move { (i, read_view(&c, &lu).await, lu) });
            }
        }
        let mut views: Vec<(usize, View)> = Vec::new();
        while let Some(j) = set.join_next().await {
            let Ok((i, r, lu)) = j else { continue };
            match r {
                Ok(v) if v.wwid == self.wwid => views.push((i, v)),
                Ok(v) => {
                    let why = format!("now leads to another LU (WWID {})", v.wwid);
                    self.paths[i].st().last_error = Some(why);
                    self.paths[i].st().checker = Checker::Faulty;
                }
                Err(e) => {
                    if lu.session.closed().is_some() {
                        self.path_failed(i, &e.0);
                    } else {
                        self.paths[i].st().last_error = Some(e.0);
                    }
                }
            }
        }
        let known: Vec<(u16, AccessState, bool)> =
            views.iter().flat_map(|(_, v)| v.reported.clone()).collect();
        for (i, mut v) in views {
            if v.refused {
                if let Some(pref) = crate::paths::reported_pref(v.group, &known) {
                    v.pref = pref;
                }
            }
            self.paths[i].apply(&v);
        }
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.changed.notify_waiters();
    }

    /// A path's transport failed: drop its session and reconnect it in the background.
    pub fn path_failed(self: &Arc<Self>, i: usize, why: &str) {
        if self.paths[i].fail(why) {
            tracing::warn!("multipath: path {} failed: {why}", self.paths[i].url);
            let me = self.clone();
            tokio::spawn(async move { me.reconnect(i).await });
        }
    }

    /// Log the path in again, with backoff, until it is back with the same WWID.
    async fn reconnect(self: Arc<Self>, i: usize) {
        let p = &self.paths[i];
        let mut attempt = 0u32;
        loop {
            if self.closed.load(Ordering::Acquire) {
                return;
            }
            tokio::time::sleep(backoff(attempt, self.opts.reconnect_max)).await;
            attempt = attempt.saturating_add(1);
            let r = async {
                let lu = p.ctx.open(&p.url).await?;
                let v = read_view(&p.ctx, &lu).await?;
                if v.wwid != self.wwid {
                    p.ctx.logout(&lu.session).await;
                    return Err(HostError::new(format!(
                        "{}: now leads to another LU (WWID {}); not taken back",
                        p.url, v.wwid
                    )));
                }
                let ck = tur(&p.ctx, &lu).await.map_err(HostError::new)?;
                Ok((lu, v, ck))
            }
            .await;
            match r {
                Ok((lu, v, ck)) => {
                    {
                        let mut st = p.st();
                        st.session = Some(lu.session);
                        st.inquiry = lu.inquiry;
                        st.checker = ck;
                        st.reconnecting = false;
                        st.last_error = None;
                    }
                    p.apply(&v);
                    tracing::info!("multipath: path {} is back", p.url);
                    if let Some(lu) = p.lu() {
                        watch(&self, i, lu.session.events());
                    }
                    // The other paths may have moved meanwhile.
                    self.reread(self.epoch.load(Ordering::Acquire)).await;
                    return;
                }
                Err(e) => p.st().last_error = Some(e.0),
            }
        }
    }

    /// The path checker: TEST UNIT READY on failed-checker and standby paths, a closed
    /// session noticed on any; a change re-reads the ALUA picture.
    pub async fn checker(self: Arc<Self>) {
        let mut last_epoch = self.epoch.load(Ordering::Acquire);
        loop {
            tokio::time::sleep(self.opts.checker_interval).await;
            if self.closed.load(Ordering::Acquire) {
                return;
            }
            // multipathd refreshes every path's priority each checker interval (the alua
            // prioritizer sends RTPG): a change that raises no unit attention, such as the
            // PREF bit, is seen within one interval. Skipped when I/O re-read meanwhile.
            let now = self.epoch.load(Ordering::Acquire);
            if now == last_epoch {
                self.reread(now).await;
            }
            last_epoch = self.epoch.load(Ordering::Acquire);
            let mut changed = false;
            for (i, p) in self.paths.iter().enumerate() {
                let Some(lu) = p.lu() else { continue };
                if let Some(why) = lu.session.closed() {
                    self.path_failed(i, &why);
                    continue;
                }
                let info = p.info();
                if info.usable() && p.st().checker == Checker::Ready {
                    continue;
                }
                match tur(&p.ctx, &lu).await {
                    Ok(ck) => {
                        let mut st = p.st();
                        changed |= st.checker != ck || ck == Checker::Ready;
                        st.checker = ck;
                    }
                    Err(why) => self.path_failed(i, &why),
                }
            }
            if changed {
                self.reread(self.epoch.load(Ordering::Acquire)).await;
            }
        }
    }

    /// Explicit failover: SET TARGET PORT GROUPS making the best standby group
    /// Active/Optimized (SPC-4 §6.44), sent through one of its paths.
    async fn explicit_failover(self: &Arc<Self>) {
        let list: Vec<(Option<u16>, PathInfo)> = self
            .paths
            .iter()
            .map(|p| (p.st().group, p.info()))
            .collect();
        let Some(g) = stpg_candidate(&list, self.explicit) else {
            return;
        };
        let Some(p) = self
            .paths
            .iter()
            .find(|p| p.st().group == Some(g) && p.lu().is_some())
        else {
            return;
        };
        let Some(lu) = p.lu() else { return };
        let params = stpg_params(&[StpgDescriptor::Primary {
            group: g,
            state: AccessState::ActiveOptimized,
        }]);
        let len = u32::try_from(params.len()).unwrap_or(u32::MAX);
        let what = format!("SET TARGET PORT GROUPS to {}", p.url);
        let cmd = Cmd {
            lun: self.lun,
            cdb: &stpg_cdb(len),
            data: Some(params.into()),
            alloc: 0,
            what: &what,
        };
        let _ = send(&p.ctx, &lu.session, cmd).await;
        self.reread(self.epoch.load(Ordering::Acquire)).await;
    }

    /// Each path's state in a line, for errors.
    fn summary(&self) -> String {
        self.paths
            .iter()
            .map(|p| {
                let st = p.st();
                format!(
                    "{} {}{}",
                    p.url,
                    st.state
                        .map_or("active/optimized", crate::paths::mp_state_name),
                    st.last_error
                        .as_ref()
                        .map(|e| format!(" (failed: {e})"))
                        .unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Every path's session handle, for a clean end.
    pub fn sessions(&self) -> Vec<(Ctx, ironlun_initiator::Session)> {
        self.paths
            .iter()
            .filter_map(|p| p.lu().map(|lu| (p.ctx.clone(), lu.session)))
            .collect()
    }
}

/// The handle of the background checker task.
pub fn spawn_checker(inner: &Arc<Inner>) -> JoinHandle<()> {
    tokio::spawn(inner.clone().checker())
}
