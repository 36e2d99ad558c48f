//! PERSISTENT RESERVE OUT (SPC-4 §6.16; the service actions' semantics §5.13.7-§5.13.11).
//!
//! Order of checks: CDB fields and the parameter list's shape (PARAMETER LIST LENGTH ERROR,
//! INVALID FIELD IN CDB / PARAMETER LIST), then the nexus' registration and key (RESERVATION
//! CONFLICT), then the service action. Every service action is computed on a copy of the
//! state; an error leaves the state untouched. With APTPL active the copy is made durable
//! before it is published and before GOOD (SPC-4 §5.13.5). Unit attentions and PREEMPT AND
//! ABORT's aborts happen after publishing, outside the PR lock.
//!
//! REPLACE LOST RESERVATION is not supported: a reservation is never lost here (REPORT
//! CAPABILITIES RLR_C = 0), so its service action code is refused like any unknown one.

use ironlun_scsi::cdb::{be16, be32, be64, byte, PersistentReserveOut};
use ironlun_scsi::pr::{kind, out_sa, IscsiTransportId};
use ironlun_scsi::sense::asc;
use ironlun_scsi::{Asc, Sense};

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{
    slots_of, PrChange, PrEffects, PrRegistration, PrReservation, PrSender, PrState, PrUa,
    ShareError, MAX_REGISTRATIONS,
};
use crate::core::device::slot::LunSlot;
use crate::core::tmf::{Abort, Scope};
use crate::handler::{Ctx, Done, Fail, Outcome};

/// The basic parameter list (SPC-4 §6.16.3) or the REGISTER AND MOVE one (§6.16.4).
struct Params {
    key: u64,
    sa_key: u64,
    spec_i_pt: bool,
    all_tg_pt: bool,
    aptpl: bool,
    /// SPEC_I_PT TransportIDs (REGISTER) or the REGISTER AND MOVE destination, each with its
    /// offset in the parameter list.
    tids: Vec<(IscsiTransportId, usize)>,
    rtpi: u16,
    unreg: bool,
}

fn bad_param(byte: usize, bit: Option<u8>) -> Fail {
    Sense::invalid_param_field(u16::try_from(byte).unwrap_or(u16::MAX), bit).into()
}

fn length_error() -> Fail {
    Sense::illegal(asc::PARAMETER_LIST_LENGTH_ERROR).into()
}

fn parse(sa: u8, d: &[u8]) -> Result<Params, Fail> {
    let mut p = Params {
        key: be64(d, 0),
        sa_key: be64(d, 8),
        spec_i_pt: false,
        all_tg_pt: false,
        aptpl: false,
        tids: Vec::new(),
        rtpi: 0,
        unreg: false,
    };
    if sa == out_sa::REGISTER_AND_MOVE {
        p.unreg = byte(d, 17) & 0x02 != 0;
        p.aptpl = byte(d, 17) & 0x01 != 0;
        p.rtpi = be16(d, 18);
        let tid_len = be32(d, 20) as usize;
        if d.len().checked_sub(24) != Some(tid_len) {
            return Err(length_error());
        }
        let (tid, n) = IscsiTransportId::parse(d.get(24..).unwrap_or_default())
            .map_err(|e| bad_param(24 + e.offset, e.bit))?;
        if n != tid_len {
            return Err(bad_param(20, None));
        }
        p.tids.push((tid, 24));
        return Ok(p);
    }
    let flags = byte(d, 20);
    p.spec_i_pt = flags & 0x08 != 0;
    p.all_tg_pt = flags & 0x04 != 0;
    p.aptpl = flags & 0x01 != 0;
    if !p.spec_i_pt {
        if d.len() != 24 {
            return Err(length_error());
        }
        return Ok(p);
    }
    // SPEC_I_PT is valid only with REGISTER (SPC-4 §6.16.3).
    if sa != out_sa::REGISTER {
        return Err(bad_param(20, Some(3)));
    }
    if d.len() < 28 || d.len() - 28 != be32(d, 24) as usize {
        return Err(length_error());
    }
    let mut at = 28;
    while at < d.len() {
        let (tid, n) =
            IscsiTransportId::parse(&d[at..]).map_err(|e| bad_param(at + e.offset, e.bit))?;
        p.tids.push((tid, at));
        at += n;
    }
    Ok(p)
}

/// What a service action does besides changing the state, by registration (so that every
/// gateway of a clustered LU can apply it to its own nexuses): unit attentions for the nexuses
/// of some registrations (the sender's excepted) and, for PREEMPT AND ABORT, the registrations
/// whose nexuses' tasks are aborted.
#[derive(Default)]
struct Effects {
    uas: Vec<(Asc, Vec<PrRegistration>)>,
    abort: Vec<PrRegistration>,
}

impl Effects {
    fn named(self) -> PrEffects {
        PrEffects {
            uas: self
                .uas
                .into_iter()
                .map(|(a, to)| PrUa {
                    asc: a.asc,
                    ascq: a.ascq,
                    to,
                })
                .collect(),
            abort: self.abort,
            reset: None,
        }
    }
}

/// Everything a service action needs.
struct Run<'a, 'c> {
    c: &'a Ctx<'c>,
    sa: u8,
    /// The CDB's SCOPE and TYPE.
    scope: u8,
    kind: u8,
    p: &'a Params,
    old: &'a PrState,
    /// The sender's registration in `old`.
    me: Option<usize>,
}

pub(crate) fn persistent_reserve_out(c: &Ctx) -> Outcome {
    let sa = c.op.sa.unwrap_or(0);
    let cdb = PersistentReserveOut::parse(c.cdb)?;
    let (scope, kind, len) = (cdb.scope, cdb.kind, cdb.parameter_list_length);
    // RESERVE, PREEMPT and PREEMPT AND ABORT create a reservation of this scope and type:
    // only the logical-unit scope and the six types exist (SPC-4 §6.16.2).
    if matches!(
        sa,
        out_sa::RESERVE | out_sa::PREEMPT | out_sa::PREEMPT_AND_ABORT
    ) {
        if scope != 0 {
            return Err(Sense::invalid_cdb(PersistentReserveOut::SCOPE).into());
        }
        if !kind::is_valid(kind) {
            return Err(Sense::invalid_cdb(PersistentReserveOut::TYPE).into());
        }
    }
    if len < 24 {
        return Err(length_error());
    }
    let data = c.data_out(u64::from(len))?;
    let p = parse(sa, data)?;
    let registers = matches!(
        sa,
        out_sa::REGISTER | out_sa::REGISTER_AND_IGNORE_EXISTING_KEY | out_sa::REGISTER_AND_MOVE
    );
    let unit = &c.dev.pr;
    let share = c.dev.shared.share();
    let mut stale = 0;
    loop {
        let guard = unit.write.lock();
        // APTPL = 1 needs somewhere durable to put the state (SPC-4 §6.16.3: not supported →
        // INVALID FIELD IN PARAMETER LIST). A clustered LU's state is as durable as the
        // cluster's store.
        if registers && p.aptpl && unit.store().is_none() && share.is_none() {
            let at = if sa == out_sa::REGISTER_AND_MOVE {
                17
            } else {
                20
            };
            return Err(bad_param(at, Some(0)));
        }
        let old = unit.load();
        let base = c.dev.shared.rev.load(Ordering::Acquire);
        let r = Run {
            c,
            sa,
            scope,
            kind,
            p: &p,
            old: &old,
            me: old.find(&c.nexus.ident),
        };
        let mut new = (*old).clone();
        let mut fx = Effects::default();
        r.apply(&mut new, &mut fx)?;
        let force = c.dev.force_pr_aptpl.load(Ordering::Relaxed);
        if registers {
            new.aptpl = p.aptpl || force;
        } else if force {
            new.aptpl = true;
        }
        if new == *old {
            drop(guard);
            apply_effects(c, fx.named());
            return Ok(Done::consumed(u64::from(len)));
        }
        let Some(sh) = &share else {
            unit.commit(&old, new).map_err(|e| {
                tracing::error!(device = c.dev.name(), "persisting PR state failed: {e}");
                Fail::from(Sense::hardware_error(asc::INTERNAL_TARGET_FAILURE))
            })?;
            drop(guard);
            apply_effects(c, fx.named());
            return Ok(Done::consumed(u64::from(len)));
        };
        let change = PrChange {
            state: new,
            effects: fx.named(),
            sender: Some(PrSender::of(&c.nexus.ident)),
            spc2: c.dev.spc2.holder_ident(),
        };
        match sh.commit(base, &change) {
            Ok(rev) => {
                unit.install(change.state);
                c.dev.shared.rev.store(rev, Ordering::Release);
                drop(guard);
                apply_effects(c, change.effects);
                // GOOD only once every live gateway has applied it (and aborted what
                // PREEMPT AND ABORT aborts on its nexuses).
                sh.confirm(rev).map_err(cut_off)?;
                return Ok(Done::consumed(u64::from(len)));
            }
            Err(ShareError::Stale) if stale < MAX_STALE => {
                drop(guard);
                stale += 1;
                sh.catch_up().map_err(cut_off)?;
            }
            Err(e) => return Err(cut_off(e)),
        }
    }
}

/// Tries of a clustered PR OUT that found the cluster's state moved on before it gives up.
const MAX_STALE: u32 = 16;

/// A clustered LU's change could not be made cluster-wide: this gateway is cut off (or lost
/// the race too often). NOT READY, ASYMMETRIC ACCESS STATE TRANSITION: the initiator retries,
/// on another path if it has one (as scsi_dh_alua does for 04/0A).
pub(super) fn cut_off(e: ShareError) -> Fail {
    tracing::warn!("clustered PR OUT not completed: {e:?}");
    Sense::not_ready(asc::NOT_READY_ASYMMETRIC_ACCESS_STATE_TRANSITION).into()
}

/// The unit attentions and aborts of a change made through this nexus, on this gateway's
/// nexuses (the sender's own excepted).
fn apply_effects(c: &Ctx, fx: PrEffects) {
    let slots = c.dev.live_slots();
    for ua in fx.uas {
        for s in slots_of(&slots, &ua.to, Some(c.nexus.id)) {
            s.ua.raise(Asc::new(ua.asc, ua.ascq));
        }
    }
    if !fx.abort.is_empty() {
        abort_preempted(c, &slots_of(&slots, &fx.abort, None));
    }
}

/// PREEMPT AND ABORT (SPC-4 §5.13.11.2.5): abort every task of the preempted I_T_L nexuses,
/// as ABORT TASK SET would but from another nexus — TASK ABORTED with TAS = 1, silently
/// otherwise — the PERSISTENT RESERVE OUT itself excepted, and complete after they ended.
fn abort_preempted(c: &Ctx, slots: &[Arc<LunSlot>]) {
    let tasks = &c.dev.tasks;
    let others = if c.dev.tas.load(Ordering::Relaxed) {
        Abort::TaskAborted
    } else {
        Abort::Silent
    };
    let itls = slots.iter().map(|s| s.id).collect();
    let m = tasks.mark(
        Scope::Preempted {
            itls,
            except: c.task,
        },
        c.nexus.id,
        others,
    );
    tasks.wait(&m.tasks);
}

impl Run<'_, '_> {
    fn apply(&self, new: &mut PrState, fx: &mut Effects) -> Result<(), Fail> {
        match self.sa {
            out_sa::REGISTER | out_sa::REGISTER_AND_IGNORE_EXISTING_KEY => self.register(new, fx),
            out_sa::RESERVE => self.reserve(new),
            out_sa::RELEASE => self.release(new, fx),
            out_sa::CLEAR => self.clear(new, fx),
            out_sa::PREEMPT | out_sa::PREEMPT_AND_ABORT => self.preempt(new, fx),
            out_sa::REGISTER_AND_MOVE => self.register_and_move(new),
            _ => Err(Sense::invalid_cdb(PersistentReserveOut::SERVICE_ACTION).into()),
        }
    }

    /// The sender's registration with the key checked: unregistered or a different key →
    /// RESERVATION CONFLICT (SPC-4 §6.16.3 RESERVATION KEY).
    fn registered(&self) -> Result<usize, Fail> {
        match self.me {
            Some(i) if self.old.registrations.get(i).map(|r| r.key) == Some(self.p.key) => Ok(i),
            _ => Err(Fail::ReservationConflict),
        }
    }

    /// The unit attention's addressees: the nexuses of `regs` (the sender's excepted when the
    /// effects are applied).
    fn others_registered(&self, regs: &[PrRegistration]) -> Vec<PrRegistration> {
        regs.to_vec()
    }

    /// A new registration through the receiving target port.
    fn registration(&self, initiator: &str, isid: Option<[u8; 6]>) -> PrRegistration {
        let who = &self.c.nexus.ident;
        PrRegistration {
            key: self.p.sa_key,
            initiator: initiator.to_string(),
            isid,
            target: who.target.clone(),
            tpgt: who.tpgt,
            rtpi: who.rtpi,
            all_tg_pt: self.p.all_tg_pt,
        }
    }

    /// REGISTER / REGISTER AND IGNORE EXISTING KEY (SPC-4 §5.13.7).
    fn register(&self, new: &mut PrState, fx: &mut Effects) -> Result<(), Fail> {
        let ignore = self.sa == out_sa::REGISTER_AND_IGNORE_EXISTING_KEY;
        let Some(i) = self.me else {
            // Unregistered: the RESERVATION KEY must be zero for REGISTER.
            if !ignore && self.p.key != 0 {
                return Err(Fail::ReservationConflict);
            }
            new.generation = new.generation.wrapping_add(1);
            if self.p.sa_key == 0 {
                // Nothing to register: GOOD.
                return Ok(());
            }
            let who = &self.c.nexus.ident;
            let mine = self.registration(&who.initiator.name, Some(who.initiator.isid));
            // ALL_TG_PT = 1 acts as a REGISTER through every port: one where this
            // initiator port is already registered (with another key) conflicts.
            if new.registrations.iter().any(|r| r.overlaps(&mine)) {
                return Err(Fail::ReservationConflict);
            }
            let mut adds = vec![mine];
            for (tid, at) in &self.p.tids {
                let r = self.registration(&tid.name, tid.isid);
                // An initiator that cannot log in through this port, or an I_T nexus that is
                // already registered (or named twice), cannot be registered: all or nothing.
                let taken = new
                    .registrations
                    .iter()
                    .chain(&adds)
                    .any(|o| o.overlaps(&r));
                if taken || !self.c.nexus.port.allows(&tid.name) {
                    return Err(bad_param(*at, None));
                }
                adds.push(r);
            }
            if new.registrations.len() + adds.len() > MAX_REGISTRATIONS {
                return Err(Sense::illegal(asc::INSUFFICIENT_REGISTRATION_RESOURCES).into());
            }
            new.registrations.extend(adds);
            return Ok(());
        };
        if !ignore {
            self.registered()?;
        }
        // SPC-4 §5.13.7 table 41: SPEC_I_PT = 1 on a registered I_T nexus.
        if self.p.spec_i_pt {
            return Err(Sense::illegal(asc::INVALID_FIELD_IN_CDB).into());
        }
        new.generation = new.generation.wrapping_add(1);
        if self.p.sa_key != 0 {
            if let Some(r) = new.registrations.get_mut(i) {
                r.key = self.p.sa_key;
            }
            return Ok(());
        }
        // Unregister (SPC-4 §5.13.10.2): a holder's reservation ends with it, except that an
        // all-registrants reservation stays while any registrant remains.
        let (_, holder_gone) = remove(new, |j, _| j == i);
        if holder_gone {
            if let Some(res) = self.old.reservation.as_ref() {
                if kind::is_all_registrants(res.kind) && !new.registrations.is_empty() {
                    new.reservation = Some(PrReservation {
                        holder: 0,
                        kind: res.kind,
                    });
                } else if kind::is_registrants_only(res.kind) {
                    fx.uas.push((
                        asc::RESERVATIONS_RELEASED,
                        self.others_registered(&new.registrations),
                    ));
                }
            }
        }
        Ok(())
    }

    /// RESERVE (SPC-4 §5.13.9).
    fn reserve(&self, new: &mut PrState) -> Result<(), Fail> {
        let i = self.registered()?;
        match &self.old.reservation {
            None => {
                new.reservation = Some(PrReservation {
                    holder: i,
                    kind: self.kind,
                });
                Ok(())
            }
            // Already held by this nexus with the same type (scope is always LU): no change.
            Some(r) if self.old.is_holder(i) && r.kind == self.kind => Ok(()),
            Some(_) => Err(Fail::ReservationConflict),
        }
    }

    /// RELEASE (SPC-4 §5.13.11.2.2).
    fn release(&self, new: &mut PrState, fx: &mut Effects) -> Result<(), Fail> {
        let i = self.registered()?;
        let Some(r) = &self.old.reservation else {
            return Ok(());
        };
        if !self.old.is_holder(i) {
            return Ok(());
        }
        if r.kind != self.kind || self.scope != 0 {
            return Err(Sense::illegal(asc::INVALID_RELEASE_OF_PERSISTENT_RESERVATION).into());
        }
        new.reservation = None;
        if kind::is_registrants_only(r.kind) || kind::is_all_registrants(r.kind) {
            fx.uas.push((
                asc::RESERVATIONS_RELEASED,
                self.others_registered(&self.old.registrations),
            ));
        }
        Ok(())
    }

    /// CLEAR (SPC-4 §5.13.11.2.6).
    fn clear(&self, new: &mut PrState, fx: &mut Effects) -> Result<(), Fail> {
        self.registered()?;
        fx.uas.push((
            asc::RESERVATIONS_PREEMPTED,
            self.others_registered(&self.old.registrations),
        ));
        new.registrations.clear();
        new.reservation = None;
        new.generation = new.generation.wrapping_add(1);
        Ok(())
    }

    /// PREEMPT / PREEMPT AND ABORT (SPC-4 §5.13.11.4).
    fn preempt(&self, new: &mut PrState, fx: &mut Effects) -> Result<(), Fail> {
        let i = self.registered()?;
        let sa_key = self.p.sa_key;
        let old = self.old;
        // Does SERVICE ACTION RESERVATION KEY preempt the reservation itself?
        let takes_reservation = match &old.reservation {
            Some(r) if kind::is_all_registrants(r.kind) => sa_key == 0,
            Some(r) => old.registrations.get(r.holder).map(|h| h.key) == Some(sa_key),
            None => false,
        };
        if sa_key == 0 && !takes_reservation {
            return Err(bad_param(8, None));
        }
        if !takes_reservation && !old.registrations.iter().any(|r| r.key == sa_key) {
            return Err(Fail::ReservationConflict);
        }
        let (removed, _) = if sa_key == 0 {
            // All-registrants reservation preempted: every other registration goes.
            remove(new, |j, _| j != i)
        } else {
            remove(new, |j, r| j != i && r.key == sa_key)
        };
        let me = new.find(&self.c.nexus.ident).unwrap_or(0);
        if takes_reservation {
            let changed = old.reservation.as_ref().map(|r| r.kind) != Some(self.kind);
            new.reservation = Some(PrReservation {
                holder: me,
                kind: self.kind,
            });
            if changed {
                fx.uas.push((
                    asc::RESERVATIONS_RELEASED,
                    self.others_registered(&new.registrations),
                ));
            }
        } else if let Some(r) = &old.reservation {
            // The reservation stays. An all-registrants one may have lost the registration
            // that stood for it: the sender (still a registrant) stands for it now.
            if new.reservation.is_none() {
                new.reservation = Some(PrReservation {
                    holder: me,
                    kind: r.kind,
                });
            }
        }
        new.generation = new.generation.wrapping_add(1);
        if self.sa == out_sa::PREEMPT_AND_ABORT {
            fx.abort = removed.clone();
        }
        fx.uas.push((asc::REGISTRATIONS_PREEMPTED, removed));
        Ok(())
    }

    /// REGISTER AND MOVE (SPC-4 §5.13.8).
    fn register_and_move(&self, new: &mut PrState) -> Result<(), Fail> {
        let i = self.registered()?;
        if self.p.sa_key == 0 {
            return Err(bad_param(8, None));
        }
        let held = match &self.old.reservation {
            Some(r) if !kind::is_all_registrants(r.kind) && r.holder == i => r.kind,
            // SPC-4 §5.13.8: with no persistent reservation established there is nothing to
            // move: ILLEGAL REQUEST, INVALID FIELD IN CDB (no single field is at fault, so no
            // field pointer; LIO answers the same).
            None => return Err(Sense::illegal(asc::INVALID_FIELD_IN_CDB).into()),
            // Held by another nexus, or an all-registrants type (no single holder to move).
            _ => return Err(Fail::ReservationConflict),
        };
        let Some((tid, at)) = self.p.tids.first() else {
            return Err(bad_param(24, None));
        };
        // The destination port may be another gateway's, for a clustered LU.
        let local = self
            .c
            .dev
            .exports()
            .into_iter()
            .find(|e| e.rtpi == self.p.rtpi);
        let port = match local {
            Some(e) => Some((e.target, e.tpgt)),
            None => self
                .c
                .dev
                .shared
                .remote()
                .iter()
                .find(|r| r.rtpi == self.p.rtpi)
                .map(|r| (r.target.clone(), r.tpgt)),
        };
        let Some((target, tpgt)) = port else {
            return Err(bad_param(18, None));
        };
        let dest = PrRegistration {
            key: self.p.sa_key,
            initiator: tid.name.clone(),
            isid: tid.isid,
            target,
            tpgt,
            rtpi: self.p.rtpi,
            all_tg_pt: false,
        };
        // The destination may not be the I_T nexus the command came through.
        if self
            .old
            .registrations
            .get(i)
            .is_some_and(|r| r.overlaps(&dest))
        {
            return Err(bad_param(*at, None));
        }
        let j = match new.registrations.iter().position(|r| r.overlaps(&dest)) {
            Some(j) => {
                if let Some(r) = new.registrations.get_mut(j) {
                    r.key = self.p.sa_key;
                }
                j
            }
            None => {
                if new.registrations.len() >= MAX_REGISTRATIONS {
                    return Err(Sense::illegal(asc::INSUFFICIENT_REGISTRATION_RESOURCES).into());
                }
                new.registrations.push(dest);
                new.registrations.len() - 1
            }
        };
        new.reservation = Some(PrReservation {
            holder: j,
            kind: held,
        });
        if self.p.unreg {
            remove(new, |k, _| k == i);
        }
        new.generation = new.generation.wrapping_add(1);
        Ok(())
    }
}

/// Remove the registrations `gone` selects, keeping the holder index right. Returns them and
/// whether the holder's registration was among them (then the reservation is dropped; the
/// caller decides what follows).
fn remove(
    st: &mut PrState,
    gone: impl Fn(usize, &PrRegistration) -> bool,
) -> (Vec<PrRegistration>, bool) {
    let holder = st.reservation.as_ref().map(|r| r.holder);
    let mut removed = Vec::new();
    let mut kept = Vec::new();
    let mut new_holder = None;
    for (j, r) in std::mem::take(&mut st.registrations)
        .into_iter()
        .enumerate()
    {
        if gone(j, &r) {
            removed.push(r);
        } else {
            if holder == Some(j) {
                new_holder = Some(kept.len());
            }
            kept.push(r);
        }
    }
    st.registrations = kept;
    let holder_gone = holder.is_some() && new_holder.is_none();
    match (st.reservation.as_mut(), new_holder) {
        (Some(res), Some(h)) => res.holder = h,
        (Some(_), None) => st.reservation = None,
        _ => {}
    }
    (removed, holder_gone)
}
