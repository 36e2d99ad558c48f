//! The multipath policy, free of any network: what a command outcome means for the map, how
//! paths group by priority (multipath-tools' `group_by_prio` with the ALUA prioritizer,
//! libmultipath/prioritizers/alua.c) and which path the next I/O takes.
//!
//! Outcomes (SPC-4 §5.16.2.4 and Annex D; scsi_dh_alua's alua_check_sense):
//! * UNIT ATTENTION 2Ah/06h (asymmetric access state changed), 2Ah/07h (implicit transition
//!   failed), 3Fh/0Eh (reported LUNs data changed), 3Fh/03h (inquiry data changed), and
//!   NOT READY 04h/0Bh (standby), 04h/0Ch (unavailable), 04h/12h (offline): the ALUA picture
//!   is stale; re-read it and retry on the path then chosen.
//! * NOT READY 04h/0Ah: the group is transitioning: re-read, hold and retry with backoff up
//!   to the implicit transition time, then fail over.
//! * Any other UNIT ATTENTION: retry (the condition was reported and is cleared).
//! * BUSY and TASK SET FULL (SAM-5 §5.3.1): the target cannot take the command now; retry
//!   with backoff for up to the command timeout, as Linux's midlayer requeues them.
//! * Anything else that is not GOOD: the command's own outcome, returned to the caller.
//!
//! Asynchronous Messages from the target (RFC 7143 §11.9.1), see [`on_async`]: a SCSI
//! asynchronous event whose sense is one of the ALUA ones above re-reads the picture; a logout
//! request (AsyncEvent 1) or a connection / session drop announced (2, 3) takes the path out
//! (logged out, then reconnected in the background); a negotiation request (4) is answered
//! with a Text Request, as §11.9.1 requires; the rest are noted only.

use std::time::Duration;

use ironlun_initiator::alua::alua_priority;
use ironlun_initiator::iscsi::pdu::async_event;
use ironlun_initiator::iscsi::AsyncMessage;
use ironlun_initiator::CommandResult;
use ironlun_scsi::alua::AccessState;
use ironlun_scsi::sense::key;
use ironlun_scsi::status;
use serde::Serialize;

// The tur checker, as `paths` judges it (one place for both).
pub use crate::paths::{tur_verdict, Checker};

/// What the engine does with one command outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// GOOD (or a failure that is the command's own): hand it to the caller.
    Done,
    /// The ALUA picture is stale: re-read RTPG and retry on the newly chosen path.
    Reread,
    /// NOT READY 04h/0Ah: the path's group is transitioning.
    Transitioning,
    /// Another UNIT ATTENTION: retry as it is.
    Retry,
    /// BUSY or TASK SET FULL: retry after a pause.
    Busy,
}

/// Classify a command outcome (module docs).
pub fn classify(r: &CommandResult) -> Verdict {
    if r.status == status::BUSY || r.status == status::TASK_SET_FULL {
        return Verdict::Busy;
    }
    if r.status != status::CHECK_CONDITION {
        return Verdict::Done;
    }
    match &r.sense {
        Some(s) => classify_sense(s),
        None => Verdict::Done,
    }
}

/// What CHECK CONDITION with this sense means for the map (module docs).
pub fn classify_sense(s: &ironlun_scsi::Sense) -> Verdict {
    let (a, q) = (s.asc.asc, s.asc.ascq);
    match s.key {
        key::UNIT_ATTENTION => match (a, q) {
            (0x2A, 0x06) | (0x2A, 0x07) | (0x3F, 0x0E) | (0x3F, 0x03) => Verdict::Reread,
            _ => Verdict::Retry,
        },
        key::NOT_READY if a == 0x04 && q == 0x0A => Verdict::Transitioning,
        key::NOT_READY if a == 0x04 && matches!(q, 0x0B | 0x0C | 0x12) => Verdict::Reread,
        _ => Verdict::Done,
    }
}

/// What the engine does with an Asynchronous Message (module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AsyncAction {
    Reread,
    /// Take the path out for this reason (logout, then reconnect).
    Leave(String),
    Negotiate,
    Nothing,
}

/// The action for an Asynchronous Message with its data segment (for SCSI events:
/// SenseLength, then the sense data, §11.9.4).
pub fn on_async(m: &AsyncMessage, data: &[u8]) -> AsyncAction {
    match m.event {
        async_event::SCSI_ASYNC_EVENT => {
            let len = match data {
                [a, b, ..] => usize::from(u16::from_be_bytes([*a, *b])),
                _ => 0,
            };
            let sense = data
                .get(2..2 + len)
                .and_then(|s| ironlun_scsi::Sense::parse(s).ok());
            let news = sense.is_some_and(|s| {
                matches!(classify_sense(&s), Verdict::Reread | Verdict::Transitioning)
            });
            if news {
                AsyncAction::Reread
            } else {
                AsyncAction::Nothing
            }
        }
        async_event::LOGOUT_REQUEST => AsyncAction::Leave(format!(
            "the target asked for a logout within {} s (Asynchronous Message, AsyncEvent 1)",
            m.param3
        )),
        async_event::CONNECTION_DROP => AsyncAction::Leave(
            "the target announced it drops the connection (Asynchronous Message, AsyncEvent 2)"
                .into(),
        ),
        async_event::SESSION_DROP => AsyncAction::Leave(
            "the target announced it drops the session (Asynchronous Message, AsyncEvent 3)".into(),
        ),
        async_event::NEGOTIATION_REQUEST => AsyncAction::Negotiate,
        _ => AsyncAction::Nothing,
    }
}

/// What the chooser knows of one path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathInfo {
    /// The path's access state; `None` when the LU has no TPGS (every path optimized).
    pub state: Option<AccessState>,
    pub pref: bool,
    /// The session is up and the checker does not call it faulty.
    pub up: bool,
}

impl PathInfo {
    /// The ALUA prioritizer's value (the constant prioritizer's 1 without TPGS).
    pub fn priority(&self) -> u32 {
        match self.state {
            Some(st) => alua_priority(st, self.pref, false),
            None => 1,
        }
    }

    /// I/O may go here: up, and Active/Optimized or Active/Non-optimized (never Standby,
    /// Unavailable, Offline, Transitioning; LBA Dependent is not read, so not used).
    pub fn usable(&self) -> bool {
        self.up
            && match self.state {
                None => true,
                Some(st) => matches!(
                    st,
                    AccessState::ActiveOptimized | AccessState::ActiveNonOptimized
                ),
            }
    }
}

/// The priority of the group I/O goes to: the highest priority with a usable path.
pub fn active_priority(paths: &[PathInfo]) -> Option<u32> {
    paths
        .iter()
        .filter(|p| p.usable())
        .map(PathInfo::priority)
        .max()
}

/// The path for the next I/O: round-robin (by `turn`) over the usable paths of the active
/// group (`group_by_prio`: a group is the paths of one priority).
pub fn choose(paths: &[PathInfo], turn: usize) -> Option<usize> {
    let best = active_priority(paths)?;
    let members: Vec<usize> = paths
        .iter()
        .enumerate()
        .filter(|(_, p)| p.usable() && p.priority() == best)
        .map(|(i, _)| i)
        .collect();
    members.get(turn % members.len()).copied()
}

/// How long to hold I/O on a transitioning group: the IMPLICIT TRANSITION TIME of the
/// extended RTPG header, or `default` when unknown (0 or no extended header).
pub fn transition_time(secs: Option<u8>, default: Duration) -> Duration {
    match secs {
        Some(s) if s > 0 => Duration::from_secs(u64::from(s)),
        _ => default,
    }
}

/// Backoff between tries: 50 ms doubling, capped at `cap`.
pub fn backoff(attempt: u32, cap: Duration) -> Duration {
    let ms = 50u64.saturating_mul(1u64 << attempt.min(16));
    Duration::from_millis(ms).min(cap)
}

/// Explicit failover (scsi_dh_alua's activate): with no usable path, a Standby group whose
/// LU allows explicit transitions is made Active/Optimized. The group to activate: the
/// standby one with the highest priority (PREF first), lowest id on a tie.
pub fn stpg_candidate(paths: &[(Option<u16>, PathInfo)], explicit: bool) -> Option<u16> {
    if !explicit || paths.iter().any(|(_, p)| p.usable()) {
        return None;
    }
    paths
        .iter()
        .filter(|(g, p)| g.is_some() && p.up && p.state == Some(AccessState::Standby))
        .max_by_key(|(g, p)| (p.priority(), std::cmp::Reverse(*g)))
        .and_then(|(g, _)| *g)
}

/// Per-path counters as the status shows them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Commands completed through this path (any SCSI status).
    pub ios: u64,
    /// Transport failures and commands that failed here.
    pub errors: u64,
    /// Times I/O left this path for another one.
    pub failovers: u64,
}

/// One path in [`MultipathStatus`].
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct PathStatus {
    pub url: String,
    pub target_port_group: Option<u16>,
    /// multipath-tools' words ("active/optimized", "standby", …); "active/optimized"
    /// without TPGS.
    pub state: &'static str,
    pub pref: bool,
    pub priority: u32,
    pub checker: Checker,
    /// The session is up (not failed, not reconnecting).
    pub connected: bool,
    /// I/O goes to this path now (it is in the active group and usable).
    pub in_use: bool,
    pub counters: Counters,
    /// Why the path last failed or could not be taken back (kept until it is back).
    pub last_error: Option<String>,
}

/// A snapshot of the map.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct MultipathStatus {
    pub wwid: String,
    pub size_bytes: u64,
    pub block_size: u32,
    /// The priority of the group I/O goes to; `None` when no path is usable.
    pub active_priority: Option<u32>,
    /// The target port group(s) of the paths in use.
    pub active_groups: Vec<u16>,
    /// Times the ALUA picture was re-read.
    pub alua_rereads: u64,
    pub paths: Vec<PathStatus>,
}
