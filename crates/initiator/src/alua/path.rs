//! Choosing among several paths to one logical unit by their asymmetric access states (SPC-4
//! §5.16.2), in the spirit of Linux's scsi_dh_alua / multipath-tools' ALUA prioritizer: which
//! command outcomes ask for a re-read, how paths rank, and a chooser over sessions.

use ironlun_scsi::alua::AccessState;
use ironlun_scsi::sense::{asc, key, Asc};
use ironlun_scsi::status;

use crate::command::CommandResult;
use crate::session::Session;
use crate::{Error, Result};

/// Does this outcome mean the ALUA picture may have changed, so paths must be re-read?
/// UNIT ATTENTION 2A/06 (asymmetric access state changed), 2A/07 (implicit transition
/// failed), 3F/03 (inquiry data changed: e.g. the port changed group), and NOT READY with
/// the ASCQ of a refusing state ([`AccessState::not_ready_ascq`]: transitioning, standby,
/// unavailable, offline).
pub fn needs_reread(r: &CommandResult) -> bool {
    let Some(s) = r.sense.filter(|_| r.status == status::CHECK_CONDITION) else {
        return false;
    };
    match s.key {
        key::UNIT_ATTENTION => {
            s.asc == asc::ASYMMETRIC_ACCESS_STATE_CHANGED
                || s.asc == IMPLICIT_TRANSITION_FAILED
                || s.asc == asc::INQUIRY_DATA_HAS_CHANGED
        }
        key::NOT_READY => {
            s.asc.asc == asc::LOGICAL_UNIT_NOT_READY.asc
                && (0..16u8)
                    .map(AccessState::from_code)
                    .any(|st| st.not_ready_ascq() == Some(s.asc.ascq))
        }
        _ => false,
    }
}

/// IMPLICIT ASYMMETRIC ACCESS STATE TRANSITION FAILED (SPC-4 Annex D).
const IMPLICIT_TRANSITION_FAILED: Asc = Asc::new(0x2A, 0x07);

/// What the chooser knows about one path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathState {
    pub rtpi: u16,
    pub group_id: u16,
    pub state: AccessState,
    pub pref: bool,
}

impl PathState {
    /// Active/Optimized or Active/Non-optimized: commands go through. LBA Dependent is not
    /// counted usable (the chooser does not read the LBA map), nor is any refusing state.
    pub fn usable(&self) -> bool {
        matches!(
            self.state,
            AccessState::ActiveOptimized | AccessState::ActiveNonOptimized
        )
    }

    /// multipath-tools' ALUA prioritizer ([`alua_priority`]) without `exclusive_pref_bit`.
    pub fn priority(&self) -> u32 {
        alua_priority(self.state, self.pref, false)
    }
}

/// multipath-tools' ALUA prioritizer (libmultipath/prioritizers/alua.c): Active/Optimized 50,
/// Active/Non-optimized 10, LBA Dependent 5, Standby 1, any other state 0; PREF adds 80,
/// except to an Active/Optimized group unless the prioritizer runs with `exclusive_pref_bit`.
pub fn alua_priority(state: AccessState, pref: bool, exclusive_pref_bit: bool) -> u32 {
    let base = match state {
        AccessState::ActiveOptimized => 50,
        AccessState::ActiveNonOptimized => 10,
        AccessState::LbaDependent => 5,
        AccessState::Standby => 1,
        _ => 0,
    };
    let bonus = pref && (state != AccessState::ActiveOptimized || exclusive_pref_bit);
    base + if bonus { 80 } else { 0 }
}

/// Indices of the usable paths, best first: AO before ANO, then PREF before not, then the
/// order given (stable). Paths not yet known (`None`) or in a refusing state are left out.
pub fn rank(paths: &[Option<PathState>]) -> Vec<usize> {
    let mut v: Vec<(usize, PathState)> = paths
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.filter(PathState::usable).map(|p| (i, p)))
        .collect();
    v.sort_by_key(|(i, p)| (p.state != AccessState::ActiveOptimized, !p.pref, *i));
    v.into_iter().map(|(i, _)| i).collect()
}

/// Several sessions (paths) to the same logical unit: reads each path's relative port and
/// group from VPD 0x83 and the group's state from REPORT TARGET PORT GROUPS, ranks them
/// ([`rank`]), and marks itself stale when a command outcome says the states may have changed
/// ([`needs_reread`]).
#[derive(Debug)]
pub struct PathChooser {
    lun: u64,
    sessions: Vec<Session>,
    states: Vec<Option<PathState>>,
    stale: bool,
}

impl PathChooser {
    pub fn new(lun: u64, sessions: Vec<Session>) -> PathChooser {
        let n = sessions.len();
        PathChooser {
            lun,
            sessions,
            states: vec![None; n],
            stale: true,
        }
    }

    pub fn session(&self, i: usize) -> Option<&Session> {
        self.sessions.get(i)
    }

    pub fn states(&self) -> &[Option<PathState>] {
        &self.states
    }

    pub fn is_stale(&self) -> bool {
        self.stale
    }

    /// Re-read every path. A path whose VPD or RTPG cannot be read (e.g. refused, or the
    /// session is gone) is unknown, hence unusable, until the next refresh.
    pub async fn refresh(&mut self) {
        for (i, s) in self.sessions.iter().enumerate() {
            self.states[i] = Self::read_path(s, self.lun).await.ok();
        }
        self.stale = false;
    }

    async fn read_path(s: &Session, lun: u64) -> Result<PathState> {
        let id = s.device_identification(lun).await?;
        let rtpi = id
            .relative_target_port()
            .ok_or_else(|| Error::Protocol("VPD 0x83 without a relative target port".into()))?;
        let group_id = id
            .target_port_group()
            .ok_or_else(|| Error::Protocol("VPD 0x83 without a target port group".into()))?;
        // A unit attention (most likely the very 2A/06 that made us re-read) is reported on
        // RTPG like on any command but INQUIRY: take it and ask again, as scsi_dh_alua does.
        let mut rtpg = s.report_target_port_groups(lun, true).await;
        for _ in 0..4 {
            match &rtpg {
                Err(Error::Scsi {
                    status: status::CHECK_CONDITION,
                    sense: Some(sn),
                }) if sn.key == key::UNIT_ATTENTION => {
                    rtpg = s.report_target_port_groups(lun, true).await;
                }
                _ => break,
            }
        }
        let rtpg = rtpg?;
        let g = rtpg.group(group_id).ok_or_else(|| {
            Error::Protocol(format!("RTPG does not list group {group_id} of VPD 0x83"))
        })?;
        Ok(PathState {
            rtpi,
            group_id,
            state: g.state,
            pref: g.pref,
        })
    }

    /// Record a command outcome (of any path): marks the chooser stale if it asks for a
    /// re-read; returns whether it did.
    pub fn observe(&mut self, r: &CommandResult) -> bool {
        let again = needs_reread(r);
        self.stale |= again;
        again
    }

    /// The best usable path now (refreshing first if stale), if any.
    pub async fn best(&mut self) -> Option<usize> {
        if self.stale {
            self.refresh().await;
        }
        rank(&self.states).first().copied()
    }
}
