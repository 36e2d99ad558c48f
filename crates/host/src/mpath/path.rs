//! One path of a multipath LU: its own session (its own I_T nexus, RFC 7143 §4.4.1: each
//! path logs in with its own ISID), what the path knows of its ALUA state (read the way
//! scsi_dh_alua reads it, [`read_alua`]) and the commands sent through it, with transport
//! failures told apart from SCSI outcomes.

use std::fmt::Display;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use ironlun_initiator::Bytes;

use ironlun_initiator::iscsi::pdu::task_attr::SIMPLE;
use ironlun_initiator::{CommandOptions, CommandResult, Error as InitiatorError, Session};
use ironlun_scsi::alua::AccessState;

use super::policy::{tur_verdict, Checker, Counters, PathInfo};
use crate::ctx::{Ctx, Lu};
use crate::error::describe;
use crate::url::IscsiUrl;
use crate::{HostError, Result};

// One path's ALUA picture, read as `paths` reads it (one place for both).
pub use crate::paths::{read_view, View};

/// The mutable part of a path.
#[derive(Clone, Debug)]
pub struct PathSt {
    /// `None` while failed (and reconnecting).
    pub session: Option<Session>,
    pub inquiry: Vec<u8>,
    pub group: Option<u16>,
    pub state: Option<AccessState>,
    pub pref: bool,
    pub checker: Checker,
    pub transition_secs: Option<u8>,
    pub reconnecting: bool,
    pub last_error: Option<String>,
    /// Its ALUA view was read at least once (a path down since the start was never).
    pub seen: bool,
}

/// One path.
#[derive(Debug)]
pub struct Path {
    pub url: IscsiUrl,
    /// The context with this path's ISID.
    pub ctx: Ctx,
    st: Mutex<PathSt>,
    pub ios: AtomicU64,
    pub errors: AtomicU64,
    pub failovers: AtomicU64,
}

impl Path {
    pub fn new(url: IscsiUrl, ctx: Ctx, lu: &Lu, view: &View, checker: Checker) -> Path {
        Path {
            url,
            ctx,
            st: Mutex::new(PathSt {
                session: Some(lu.session.clone()),
                inquiry: lu.inquiry.clone(),
                group: view.group,
                state: view.state,
                pref: view.pref,
                checker,
                transition_secs: view.transition_secs,
                reconnecting: false,
                last_error: None,
                seen: true,
            }),
            ios: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            failovers: AtomicU64::new(0),
        }
    }

    /// A path that could not be opened (`why`): failed, reconnecting, its state unknown.
    pub fn down(url: IscsiUrl, ctx: Ctx, why: String) -> Path {
        Path {
            url,
            ctx,
            st: Mutex::new(PathSt {
                session: None,
                inquiry: Vec::new(),
                group: None,
                state: None,
                pref: false,
                checker: Checker::Faulty,
                transition_secs: None,
                reconnecting: true,
                last_error: Some(why),
                seen: false,
            }),
            ios: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            failovers: AtomicU64::new(0),
        }
    }

    pub fn st(&self) -> MutexGuard<'_, PathSt> {
        // A panic while holding the lock leaves plain data behind: still usable.
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The open LU of this path, if its session is up.
    pub fn lu(&self) -> Option<Lu> {
        let st = self.st();
        st.session.as_ref().map(|s| Lu {
            session: s.clone(),
            url: self.url.clone(),
            inquiry: st.inquiry.clone(),
        })
    }

    /// The session alone (what each I/O needs; cheaper than [`Path::lu`]).
    pub fn session(&self) -> Option<Session> {
        self.st().session.clone()
    }

    pub fn info(&self) -> PathInfo {
        let st = self.st();
        PathInfo {
            state: st.state,
            pref: st.pref,
            up: st.session.is_some() && st.checker != Checker::Faulty,
        }
    }

    pub fn counters(&self) -> Counters {
        Counters {
            ios: self.ios.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            failovers: self.failovers.load(Ordering::Relaxed),
        }
    }

    /// Take in a view read through this path.
    pub fn apply(&self, v: &View) {
        let mut st = self.st();
        st.seen = true;
        st.group = v.group;
        st.state = v.state;
        st.pref = v.pref;
        if v.transition_secs.is_some() {
            st.transition_secs = v.transition_secs;
        }
    }

    /// Mark the path failed: its session is dropped (the connection is gone or given up).
    /// Returns true when it was up and a reconnect should start.
    pub fn fail(&self, why: &str) -> bool {
        let mut st = self.st();
        st.checker = Checker::Faulty;
        let was_up = st.session.take().is_some();
        if was_up {
            // The first reason is the one: the commands that were in flight on the path
            // fail after it, each with its own echo of it.
            st.last_error = Some(why.to_string());
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        let start = !st.reconnecting;
        st.reconnecting = true;
        start
    }
}

/// A command's fate on one path: the SCSI outcome, or the transport lost (the reason).
pub enum Sent {
    Outcome(CommandResult),
    Transport(String),
    /// No answer within the timeout (the reason): the command may still be in the target, so
    /// [`settle`] must end it there before it is sent anywhere else. Only [`send_unsettled`]
    /// returns this.
    Hung(String),
}

/// One command for [`send`]: its LUN, CDB, data-out, allocation length (data-in expected) and
/// its name for messages.
pub struct Cmd<'a> {
    pub lun: u64,
    pub cdb: &'a [u8],
    pub data: Option<Bytes>,
    pub alloc: u32,
    pub what: &'a (dyn Display + Sync),
}

/// Send one command through `s` under the context's timeout. Connection loss and protocol
/// errors are transport failures; a command that does not complete in time is ended in the
/// target ([`settle`]) before this returns, so the old nexus cannot complete it after a retry
/// elsewhere.
pub async fn send(ctx: &Ctx, s: &Session, cmd: Cmd<'_>) -> Result<Sent> {
    let (lun, what) = (cmd.lun, cmd.what);
    match send_unsettled(ctx, s, cmd).await? {
        Sent::Hung(why) => {
            settle(ctx, s, lun, what).await;
            Ok(Sent::Transport(why))
        }
        sent => Ok(sent),
    }
}

/// [`send`], but a command that does not complete in time is returned as [`Sent::Hung`] at
/// once: the caller can mark the path failed (with this, the first reason) before the abort
/// ends the path's other commands, then calls [`settle`].
pub async fn send_unsettled(ctx: &Ctx, s: &Session, cmd: Cmd<'_>) -> Result<Sent> {
    let Cmd {
        lun,
        cdb,
        data,
        alloc,
        what,
    } = cmd;
    // A deviation by the target while the command ran (Data-In past the expected length or
    // at a bad offset, a SenseLength past the segment …) leaves its data short or wrong: the
    // path is taken for broken and the command goes elsewhere (it has completed here, so
    // the old nexus cannot complete it again).
    let seen = s.violations_total();
    let run = async {
        let opts = CommandOptions {
            attr: SIMPLE,
            ..CommandOptions::default()
        };
        s.start_command(lun, cdb, data, alloc, opts)
            .await?
            .wait()
            .await
    };
    match tokio::time::timeout(ctx.timeout, run).await {
        Ok(Ok(r)) => match s.violation_since(seen) {
            Some(v) => Ok(Sent::Transport(format!(
                "{what}: protocol violation by the target: {v}"
            ))),
            None if r.response == 0 => Ok(Sent::Outcome(r)),
            None => Err(HostError::new(format!(
                "{what}: iSCSI response {:#04x} (target failure; no SCSI status)",
                r.response
            ))),
        },
        Ok(Err(e @ InitiatorError::Invalid(_))) => Err(HostError::during(&what.to_string(), &e)),
        Ok(Err(e)) => Ok(Sent::Transport(format!("{what}: {}", describe(&e)))),
        Err(_) => Ok(Sent::Hung(format!(
            "{what}: no answer within {} s",
            crate::ctx::fmt_secs(ctx.timeout)
        ))),
    }
}

/// End a command that got no answer: ABORT TASK SET on its LU, and if that is not answered
/// either, drop the connection (a target that answers neither will not answer a logout; Linux
/// drops a session whose error handling failed), so that nothing of it completes later.
pub async fn settle(ctx: &Ctx, s: &Session, lun: u64, what: &(dyn Display + Sync)) {
    let abort = tokio::time::timeout(ctx.timeout, s.abort_task_set(lun)).await;
    if !matches!(abort, Ok(Ok(0))) {
        s.close_now(&format!(
            "{what}: no answer within {} s, nor to ABORT TASK SET",
            crate::ctx::fmt_secs(ctx.timeout)
        ));
    }
}

/// multipath-tools' tur checker on an open LU (unit attentions asked again, up to 5 tries);
/// `Err` when the transport failed.
pub async fn tur(ctx: &Ctx, lu: &Lu) -> std::result::Result<Checker, String> {
    let what = format!("TEST UNIT READY to {}", lu.url);
    let cdb = ironlun_initiator::scsi::cdb::test_unit_ready();
    for _ in 0..5 {
        let cmd = Cmd {
            lun: lu.url.lun,
            cdb: &cdb,
            data: None,
            alloc: 0,
            what: &what,
        };
        match send(ctx, &lu.session, cmd).await {
            Ok(Sent::Outcome(r)) => {
                if let Some(c) = tur_verdict(&r) {
                    return Ok(c);
                }
            }
            Ok(Sent::Transport(e) | Sent::Hung(e)) => return Err(e),
            Err(_) => return Ok(Checker::Faulty),
        }
    }
    Ok(Checker::Faulty)
}
