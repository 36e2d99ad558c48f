//! End to end: persistent reservations (SPC-4 §5.13; PERSISTENT RESERVE IN §6.15, OUT §6.16;
//! SBC-3 §4.18 for the block commands) driven through real iSCSI by three initiators over two
//! target ports of one logical unit: the default target's `tpgt_1` and a second TPG,
//! `tpgt_2`, exporting the same RAM disk.
//!
//! Cast (names from `support::iqn`): `a` logs in twice through tpgt_1 with two ISIDs (two
//! initiator ports of one initiator device: A and A2), `b` through tpgt_1 (B), `c` through
//! tpgt_2 (C). Registrations are per I_T nexus (initiator port + target port, SPC-4 §5.13.7),
//! so A2 is *not* registered because A is (where LIO keys "registered" on the ACL, the
//! standard wins). Expectations follow SPC-4; where SPC-4 leaves a choice the assertion accepts
//! every conforming answer and says so.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::ops::RangeInclusive;
use std::time::Duration;

use ironlun_initiator::pr::{
    in_sa, out_sa, prin_cdb, prout_cdb, FullStatus, FullStatusDescriptor, PrType, ProutParams,
    ReadKeys, RegisterAndMoveParams, RegisterFlags, TransportId,
};
use ironlun_initiator::scsi::cdb;
use ironlun_initiator::session::DataOutPolicy;
use ironlun_initiator::{Bytes, CommandOptions, CommandResult, PendingCommand};
use ironlun_scsi::status;
use support::pr::*;
use support::*;

const KA: u64 = 0xA1A1_0000_0000_00A1;
const KA2: u64 = 0xA2A2_0000_0000_00A2;
const KB: u64 = 0xB0B0_0000_0000_00B0;
const KC: u64 = 0xC0C0_0000_0000_00C0;

const ILLEGAL: u8 = 0x05;
const UNIT_ATTENTION: u8 = 0x06;
const PARAM_LIST_LENGTH: (u8, u8, u8) = (ILLEGAL, 0x1A, 0x00);
const INVALID_CDB: (u8, u8, u8) = (ILLEGAL, 0x24, 0x00);
const INVALID_PARAM: (u8, u8, u8) = (ILLEGAL, 0x26, 0x00);
const INVALID_RELEASE: (u8, u8, u8) = (ILLEGAL, 0x26, 0x04);
const RESERVATIONS_PREEMPTED: (u8, u8) = (0x2A, 0x03);
const RESERVATIONS_RELEASED: (u8, u8) = (0x2A, 0x04);
const REGISTRATIONS_PREEMPTED: (u8, u8) = (0x2A, 0x05);

const HELD_LEN: usize = 64 * 1024;

impl Rig {
    /// A session that holds writes deterministically (ImmediateData=No, InitialR2T=Yes).
    async fn held_ini(&self, label: &str, who: &str, isid: [u8; 6], tpg2: bool) -> Nexus {
        self.login_cfg(label, who, isid, tpg2, |c| {
            c.offer("ImmediateData", "No").offer("InitialR2T", "Yes")
        })
        .await
    }
}

#[track_caller]
fn sense(r: &CommandResult, want: (u8, u8, u8), what: &str) {
    assert_eq!(
        (r.status, r.sense_triple()),
        (status::CHECK_CONDITION, Some(want)),
        "{what}: got {}",
        show(r)
    );
}

/// CHECK CONDITION with `want` and a field pointer (SKSV = 1) into the CDB (`cd`) or the
/// parameter list at a byte of `bytes`, its bit pointer one of `bits` (SPC-4 §4.5.2.4.2: a
/// multi-bit field is pointed at by its most significant bit; BPV = 0 is allowed).
#[track_caller]
fn sense_at(
    r: &CommandResult,
    want: (u8, u8, u8),
    cd: bool,
    bytes: RangeInclusive<u16>,
    bits: &[Option<u8>],
    what: &str,
) {
    sense(r, want, what);
    let fp = r
        .sense
        .and_then(|s| s.field_pointer)
        .unwrap_or_else(|| panic!("{what}: no sense-key-specific field pointer: {}", show(r)));
    assert!(
        fp.cd == cd && bytes.contains(&fp.field) && bits.contains(&fp.bit),
        "{what}: field pointer {fp:?}, expected C/D={cd} byte in {bytes:?} bit in {bits:?}"
    );
}

/// PARAMETER LIST LENGTH ERROR; a field pointer, if given, names the CDB's PARAMETER LIST
/// LENGTH field (bytes 5..=8).
#[track_caller]
fn length_error(r: &CommandResult, what: &str) {
    sense(r, PARAM_LIST_LENGTH, what);
    if let Some(fp) = r.sense.and_then(|s| s.field_pointer) {
        assert!(
            fp.cd && (5..=8).contains(&fp.field),
            "{what}: field pointer {fp:?} is not the PARAMETER LIST LENGTH"
        );
    }
}

impl Nexus {
    async fn out(&self, op: &str, sa: u8, t: u8, params: Vec<u8>) -> CommandResult {
        run(&self.what(op), self.s.pr_out(0, sa, t, params)).await
    }

    async fn register(&self, old: u64, new: u64) -> CommandResult {
        let w = self.what(&format!("REGISTER {old:#x} -> {new:#x}"));
        run(
            &w,
            self.s.pr_register(0, old, new, &RegisterFlags::default()),
        )
        .await
    }

    async fn register_flags(&self, old: u64, new: u64, f: &RegisterFlags) -> CommandResult {
        let w = self.what(&format!("REGISTER {old:#x} -> {new:#x} {f:?}"));
        run(&w, self.s.pr_register(0, old, new, f)).await
    }

    async fn riek(&self, new: u64) -> CommandResult {
        let w = self.what(&format!("REGISTER AND IGNORE EXISTING KEY {new:#x}"));
        run(
            &w,
            self.s.pr_register_ignore(0, new, &RegisterFlags::default()),
        )
        .await
    }

    async fn reserve(&self, key: u64, t: PrType) -> CommandResult {
        let w = self.what(&format!("RESERVE {key:#x} {t:?}"));
        run(&w, self.s.pr_reserve(0, key, t)).await
    }

    async fn release(&self, key: u64, t: PrType) -> CommandResult {
        let w = self.what(&format!("RELEASE {key:#x} {t:?}"));
        run(&w, self.s.pr_release(0, key, t)).await
    }

    async fn clear(&self, key: u64) -> CommandResult {
        run(
            &self.what(&format!("CLEAR {key:#x}")),
            self.s.pr_clear(0, key),
        )
        .await
    }

    async fn preempt(&self, key: u64, victim: u64, t: PrType) -> CommandResult {
        let w = self.what(&format!("PREEMPT {key:#x} victim {victim:#x} {t:?}"));
        run(&w, self.s.pr_preempt(0, key, victim, t)).await
    }

    async fn ram(&self, t: PrType, p: &RegisterAndMoveParams) -> CommandResult {
        let w = self.what(&format!("REGISTER AND MOVE {p:?}"));
        run(&w, self.s.pr_register_and_move(0, t, p)).await
    }

    async fn keys(&self) -> ReadKeys {
        guard("READ KEYS", self.s.pr_read_keys(0))
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", self.what("READ KEYS")))
    }

    async fn generation(&self) -> u32 {
        self.keys().await.generation
    }

    async fn tur(&self) -> CommandResult {
        run(&self.what("TEST UNIT READY"), self.s.test_unit_ready(0)).await
    }

    /// The one unit attention pending for this nexus must be 06/`asc` (consumed), and no
    /// other after it.
    async fn expect_ua(&self, asc: (u8, u8), why: &str) {
        let r = self.tur().await;
        assert_eq!(
            (r.status, r.sense_triple()),
            (
                status::CHECK_CONDITION,
                Some((UNIT_ATTENTION, asc.0, asc.1))
            ),
            "{}: expected UNIT ATTENTION {:02x}/{:02x} ({why}), got {}",
            self.label,
            asc.0,
            asc.1,
            show(&r)
        );
        self.expect_no_ua(why).await;
    }

    /// No unit attention pending for this nexus.
    async fn expect_no_ua(&self, why: &str) {
        let r = self.tur().await;
        assert!(
            r.status == status::GOOD,
            "{}: expected no unit attention ({why}), got {}",
            self.label,
            show(&r)
        );
    }
}

/// Each nexus REGISTERs its key (from no key); each must succeed.
async fn register_all(who: &[(&Nexus, u64)]) {
    for (i, key) in who {
        ok(&i.register(0, *key).await, &i.what("REGISTER"));
    }
}

/// Compare READ FULL STATUS descriptors as a set (SPC-4 does not order them).
#[track_caller]
fn same_descriptors(got: &FullStatus, want: &[FullStatusDescriptor], what: &str) {
    let key = |d: &FullStatusDescriptor| format!("{d:?}");
    let mut g: Vec<_> = got.descriptors.iter().map(key).collect();
    let mut w: Vec<_> = want.iter().map(key).collect();
    g.sort();
    w.sort();
    assert_eq!(g, w, "{what}: READ FULL STATUS descriptors");
}

#[tokio::test]
async fn report_capabilities_and_the_empty_state() {
    let rig = Rig::new();
    let a = rig.login("A", "a", ISID1, false).await;
    let caps = guard("REPORT CAPABILITIES", a.s.pr_report_capabilities(0))
        .await
        .unwrap();
    assert!(caps.sip_c, "SIP_C: {caps:?}");
    assert!(caps.atp_c, "ATP_C: {caps:?}");
    assert!(caps.ptpl_c, "PTPL_C: {caps:?}");
    assert!(caps.crh, "CRH: {caps:?}");
    assert!(caps.tmv, "TMV: {caps:?}");
    assert!(!caps.ptpl_a, "PTPL_A without APTPL: {caps:?}");
    // 001b..011b all say TEST UNIT READY passes WE / EA reservations, which it does below.
    assert!(
        (1..=3).contains(&caps.allow_commands),
        "ALLOW COMMANDS {}",
        caps.allow_commands
    );
    // Exactly the six types (SPC-4 Table 169): WR_EX_AR EX_AC_RO WR_EX_RO EX_AC WR_EX | EX_AC_AR.
    assert_eq!(caps.type_mask, 0xEA01, "type mask {:#06x}", caps.type_mask);
    let k = a.keys().await;
    assert_eq!((k.generation, k.additional_length, k.keys.len()), (0, 0, 0));
    assert_eq!(a.reservation().await, None);
    let fs = a.full_status().await;
    assert_eq!(
        (fs.generation, fs.additional_length, fs.descriptors.len()),
        (0, 0, 0)
    );
}

/// REGISTER, REGISTER AND IGNORE EXISTING KEY, RESERVE, RELEASE, CLEAR: the key checks,
/// PRgeneration (SPC-4 §6.15.2: +1 for every REGISTER / RIEK / CLEAR / PREEMPT / RAM, none for
/// RESERVE / RELEASE or a command that failed), READ FULL STATUS contents and the CLEAR unit
/// attention.
#[tokio::test]
async fn register_reserve_release_clear_and_generation() {
    let rig = Rig::new();
    let Cast { a, a2, b, c } = rig.cast().await;

    // An unregistered nexus must send RESERVATION KEY 0.
    conflict(
        &a.register(0x99, KA).await,
        "REGISTER by unregistered with key",
    );
    assert_eq!(
        a.generation().await,
        0,
        "a failed REGISTER changed PRgeneration"
    );
    ok(&a.register(0, KA).await, "A REGISTER");
    let k = a.keys().await;
    assert_eq!((k.generation, k.keys.clone()), (1, vec![KA]));
    // A registered nexus must send its key.
    conflict(
        &a.register(0, KA2).await,
        "A REGISTER with key 0 while registered",
    );
    conflict(&a.register(KB, KA2).await, "A REGISTER with a wrong key");
    assert_eq!(a.generation().await, 1);
    ok(&a.register(KA, KA2).await, "A changes its key");
    assert_eq!(a.keys().await.keys, vec![KA2]);
    ok(&a.riek(KA).await, "A RIEK back");
    let k = a.keys().await;
    assert_eq!((k.generation, k.keys.clone()), (3, vec![KA]));
    // RIEK registers an unregistered nexus whatever the key field says.
    ok(&a2.riek(KA2).await, "A2 RIEK");
    ok(&b.register(0, KB).await, "B REGISTER");
    assert_eq!(b.generation().await, 5);
    // REGISTER with SERVICE ACTION RESERVATION KEY 0 by an unregistered nexus: nothing.
    ok(&c.register(0, 0).await, "C REGISTER 0 -> 0");
    let fs = c.full_status().await;
    same_descriptors(
        &fs,
        &[desc(KA, &a, None), desc(KA2, &a2, None), desc(KB, &b, None)],
        "three registrations",
    );
    let mut keys = c.keys().await.keys;
    keys.sort();
    assert_eq!(keys, vec![KA, KA2, KB]);
    let g = fs.generation;

    // RESERVE: unregistered or wrong key => conflict.
    conflict(
        &c.reserve(KC, PrType::WriteExclusive).await,
        "C (unregistered) RESERVE",
    );
    conflict(
        &b.reserve(KA, PrType::WriteExclusive).await,
        "B RESERVE with A's key",
    );
    ok(&a.reserve(KA, PrType::WriteExclusive).await, "A RESERVE WE");
    let want = held_by(KA, 1);
    assert_eq!(b.reservation().await, want);
    ok(
        &a.reserve(KA, PrType::WriteExclusive).await,
        "A RESERVE WE again",
    );
    conflict(
        &a.reserve(KA, PrType::ExclusiveAccess).await,
        "holder RESERVE of another type",
    );
    conflict(
        &b.reserve(KB, PrType::WriteExclusive).await,
        "B RESERVE while A holds",
    );
    let fs = c.full_status().await;
    assert_eq!(fs.generation, g, "RESERVE changed PRgeneration");
    same_descriptors(
        &fs,
        &[
            desc(KA, &a, Some(PrType::WriteExclusive)),
            desc(KA2, &a2, None),
            desc(KB, &b, None),
        ],
        "A holds WE",
    );

    // RELEASE: by a registered non-holder: GOOD, nothing happens.
    ok(
        &b.release(KB, PrType::WriteExclusive).await,
        "B RELEASE (not holder)",
    );
    assert_eq!(b.reservation().await, want);
    conflict(
        &a.release(KB, PrType::WriteExclusive).await,
        "A RELEASE with B's key",
    );
    sense(
        &a.release(KA, PrType::ExclusiveAccess).await,
        INVALID_RELEASE,
        "A RELEASE with the wrong type",
    );
    assert_eq!(b.reservation().await, want);
    ok(&a.release(KA, PrType::WriteExclusive).await, "A RELEASE");
    assert_eq!(b.reservation().await, None);
    ok(
        &a.release(KA, PrType::WriteExclusive).await,
        "RELEASE without reservation",
    );
    assert_eq!(a.generation().await, g, "RELEASE changed PRgeneration");
    // Releasing a WE reservation raises no unit attention.
    for i in [&a, &a2, &b, &c] {
        i.expect_no_ua("release of WE").await;
    }

    // Unregistering counts as a REGISTER: PRgeneration + 1 (SPC-4 §6.15.2).
    ok(&a2.register(KA2, 0).await, "A2 unregisters");
    let k = a.keys().await;
    assert_eq!(k.generation, g + 1, "unregister must bump PRgeneration");
    let mut keys = k.keys;
    keys.sort();
    assert_eq!(keys, vec![KA, KB]);

    // CLEAR: unregistered or wrong key => conflict; else everything goes, PRgeneration + 1,
    // 2A/03 to every other registered nexus (A), none to the rest.
    conflict(&c.clear(KC).await, "C (unregistered) CLEAR");
    conflict(&b.clear(KA).await, "B CLEAR with A's key");
    ok(
        &a.reserve(KA, PrType::ExclusiveAccess).await,
        "A RESERVE EA",
    );
    ok(&b.clear(KB).await, "B CLEAR");
    let fs = c.full_status().await;
    assert_eq!((fs.generation, fs.descriptors.len()), (g + 2, 0));
    assert_eq!(c.reservation().await, None);
    a.expect_ua(RESERVATIONS_PREEMPTED, "CLEAR by B").await;
    for i in [&a2, &b, &c] {
        i.expect_no_ua("CLEAR by B").await;
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    /// Allowed whatever the reservation (SPC-4 Table 66 / SBC-3 Table 13 "Allowed").
    Always,
    /// Reads: conflict under the Exclusive Access types for non-holders that have no access.
    Read,
    /// Writes and SYNCHRONIZE CACHE: conflict for every non-holder without access.
    Write,
}

const PROBES: [(&str, Class); 9] = [
    ("TEST UNIT READY", Class::Always),
    ("INQUIRY", Class::Always),
    ("REPORT LUNS", Class::Always),
    ("READ CAPACITY(16)", Class::Always),
    ("PERSISTENT RESERVE IN", Class::Always),
    ("READ(16)", Class::Read),
    ("MODE SENSE(10)", Class::Read),
    ("WRITE(16)", Class::Write),
    ("SYNCHRONIZE CACHE(16)", Class::Write),
];

async fn probe(i: &Nexus, name: &str) -> CommandResult {
    let s = &i.s;
    let f = async {
        match name {
            "TEST UNIT READY" => s.test_unit_ready(0).await,
            "INQUIRY" => s.inquiry(0, false, 0, 96).await,
            "REPORT LUNS" => {
                s.command(0, &cdb::report_luns(0, 256), None, 256, SIMPLE_ATTR)
                    .await
            }
            "READ CAPACITY(16)" => {
                s.command(0, &cdb::read_capacity16(32), None, 32, SIMPLE_ATTR)
                    .await
            }
            "PERSISTENT RESERVE IN" => s.pr_in(0, in_sa::READ_KEYS, 256).await,
            "READ(16)" => s.read16(0, 64, 1, BLOCK).await,
            "MODE SENSE(10)" => s.mode_sense10(0, 0, 0x3f, 0, 512).await,
            "WRITE(16)" => {
                s.write16(0, 64, pattern(64, BLOCK as usize), BLOCK, false)
                    .await
            }
            "SYNCHRONIZE CACHE(16)" => s.sync_cache(0).await,
            other => panic!("no probe {other}"),
        }
    };
    run(&i.what(name), f).await
}

const SIMPLE_ATTR: u8 = ironlun_initiator::iscsi::pdu::task_attr::SIMPLE;

/// SPC-4 §5.13.1 Table 66 and SBC-3 Table 13 for a nexus that is not a holder.
fn allowed(class: Class, t: PrType, registered: bool) -> bool {
    match class {
        Class::Always => true,
        Class::Read => !t.exclusive_access() || (t.registrants_have_access() && registered),
        Class::Write => t.registrants_have_access() && registered,
    }
}

/// Every reservation type against reads, writes and no-data commands from the holder, a
/// registered nexus, an unregistered port of the holder's own initiator and an unregistered
/// nexus through the other target port; then RELEASE and its unit attentions (2A/04 to the
/// other registrants for the Registrants Only / All Registrants types, SPC-4 §5.13.11.2.2).
#[tokio::test]
async fn conflict_table_for_all_six_types() {
    let rig = Rig::new();
    let Cast { a, a2, b, c } = rig.cast().await;
    register_all(&[(&a, KA), (&b, KB)]).await;
    let mut wrong = Vec::new();
    for t in PrType::ALL {
        ok(&a.reserve(KA, t).await, &format!("A RESERVE {t:?}"));
        // All Registrants: READ RESERVATION reports key 0 and every registrant is a holder.
        let want = held_by(if t.all_registrants() { 0 } else { KA }, t.code());
        assert_eq!(c.reservation().await, want, "{t:?}");
        let b_holds = t.all_registrants();
        same_descriptors(
            &c.full_status().await,
            &[desc(KA, &a, Some(t)), desc(KB, &b, b_holds.then_some(t))],
            &format!("{t:?} held"),
        );
        let cast: [(&Nexus, bool, bool); 4] = [
            (&a, true, true),
            (&b, b_holds, true),
            (&a2, false, false),
            (&c, false, false),
        ];
        for (i, holder, registered) in cast {
            for (name, class) in PROBES {
                let r = probe(i, name).await;
                let want = holder || allowed(class, t, registered);
                let fine = if want {
                    r.status == status::GOOD
                } else {
                    r.status == status::RESERVATION_CONFLICT
                };
                if !fine {
                    wrong.push(format!(
                        "{t:?}: {} (holder={holder}, registered={registered}) {name}: expected {}, got {}",
                        i.label,
                        if want { "GOOD" } else { "RESERVATION CONFLICT" },
                        show(&r)
                    ));
                }
            }
        }
        ok(&a.release(KA, t).await, &format!("A RELEASE {t:?}"));
        assert_eq!(c.reservation().await, None, "{t:?} released");
        if t.registrants_have_access() {
            b.expect_ua(RESERVATIONS_RELEASED, &format!("release of {t:?}"))
                .await;
        }
        for i in [&a, &a2, &b, &c] {
            i.expect_no_ua(&format!("release of {t:?}")).await;
        }
    }
    assert!(wrong.is_empty(), "conflict table:\n{}", wrong.join("\n"));
}

/// PREEMPT (SPC-4 §5.13.11.2.4): of the holder (the reservation moves, with a new type:
/// 2A/05 to the preempted, 2A/04 to the other registrants) and of a non-holder (registrations
/// only); no match => RESERVATION CONFLICT; All Registrants with key 0 removes everyone else.
/// Then every type preempted with its own type (no 2A/04).
#[tokio::test]
async fn preempt_and_its_unit_attentions() {
    let rig = Rig::new();
    let Cast { a, a2, b, c } = rig.cast().await;
    register_all(&[(&a, KA), (&a2, KA2), (&b, KB), (&c, KC)]).await;
    ok(
        &a.reserve(KA, PrType::WriteExclusiveRegistrantsOnly).await,
        "A RESERVE WE-RO",
    );
    let g = c.generation().await;

    conflict(
        &c.preempt(KC, 0x7777, PrType::ExclusiveAccess).await,
        "PREEMPT of a key nobody has",
    );
    let d = rig.login("D (unregistered)", "d", ISID1, false).await;
    conflict(
        &d.preempt(0, KA, PrType::ExclusiveAccess).await,
        "PREEMPT by an unregistered nexus",
    );
    conflict(
        &b.preempt(KC, KA, PrType::ExclusiveAccess).await,
        "PREEMPT with a wrong key",
    );
    assert_eq!(
        c.generation().await,
        g,
        "failed PREEMPTs changed PRgeneration"
    );

    // B preempts the holder with a new type.
    ok(
        &b.preempt(KB, KA, PrType::ExclusiveAccess).await,
        "B PREEMPT A -> EA",
    );
    // Read through the preemptor: the others have unit attentions pending.
    assert_eq!(b.generation().await, g + 1);
    assert_eq!(b.reservation().await, held_by(KB, 3));
    same_descriptors(
        &b.full_status().await,
        &[
            desc(KA2, &a2, None),
            desc(KB, &b, Some(PrType::ExclusiveAccess)),
            desc(KC, &c, None),
        ],
        "after B preempted A",
    );
    a.expect_ua(REGISTRATIONS_PREEMPTED, "A preempted").await;
    a2.expect_ua(RESERVATIONS_RELEASED, "type changed WE-RO -> EA")
        .await;
    c.expect_ua(RESERVATIONS_RELEASED, "type changed WE-RO -> EA")
        .await;
    b.expect_no_ua("the preempting nexus").await;
    d.expect_no_ua("unregistered").await;
    conflict(&a.write(10).await, "preempted A writes under EA");

    // B preempts a non-holder (C): registrations only, same type and holder.
    ok(
        &b.preempt(KB, KC, PrType::ExclusiveAccess).await,
        "B PREEMPT C",
    );
    assert_eq!(b.generation().await, g + 2);
    c.expect_ua(REGISTRATIONS_PREEMPTED, "C preempted").await;
    for i in [&a, &a2, &b, &d] {
        i.expect_no_ua("C preempted").await;
    }
    assert_eq!(b.reservation().await, held_by(KB, 3));
    same_descriptors(
        &b.full_status().await,
        &[
            desc(KA2, &a2, None),
            desc(KB, &b, Some(PrType::ExclusiveAccess)),
        ],
        "after B preempted C",
    );

    // SERVICE ACTION RESERVATION KEY 0 without an All Registrants reservation: invalid.
    sense_at(
        &b.preempt(KB, 0, PrType::ExclusiveAccess).await,
        INVALID_PARAM,
        false,
        8..=15,
        &[None, Some(7)],
        "PREEMPT key 0 under EA",
    );

    // All Registrants, key 0: everybody else goes, the preemptor holds with the new type.
    ok(&b.release(KB, PrType::ExclusiveAccess).await, "B RELEASE");
    ok(&a.register(0, KA).await, "A REGISTER again");
    ok(&c.register(0, KC).await, "C REGISTER again");
    ok(
        &a.reserve(KA, PrType::WriteExclusiveAllRegistrants).await,
        "A RESERVE WE-AR",
    );
    let g = b.generation().await;
    ok(
        &b.preempt(KB, 0, PrType::ExclusiveAccessAllRegistrants)
            .await,
        "B PREEMPT 0 -> EA-AR",
    );
    assert_eq!(b.generation().await, g + 1);
    same_descriptors(
        &b.full_status().await,
        &[desc(KB, &b, Some(PrType::ExclusiveAccessAllRegistrants))],
        "after PREEMPT of all",
    );
    for i in [&a, &a2, &c] {
        i.expect_ua(REGISTRATIONS_PREEMPTED, "preempted by key 0")
            .await;
    }
    b.expect_no_ua("the preempting nexus").await;
    ok(&b.register(KB, 0).await, "B unregisters");
    assert_eq!(
        b.reservation().await,
        None,
        "last All Registrants registrant left"
    );

    // Each type preempted by B with the same type: A loses its registration and the
    // reservation (All Registrants: just its registration), nobody gets 2A/04.
    for t in PrType::ALL {
        register_all(&[(&a, KA), (&b, KB)]).await;
        ok(&a.reserve(KA, t).await, &format!("A RESERVE {t:?}"));
        ok(&b.preempt(KB, KA, t).await, &format!("B PREEMPT A {t:?}"));
        let want = held_by(if t.all_registrants() { 0 } else { KB }, t.code());
        assert_eq!(b.reservation().await, want, "{t:?}");
        same_descriptors(
            &b.full_status().await,
            &[desc(KB, &b, Some(t))],
            &format!("{t:?} preempted"),
        );
        a.expect_ua(REGISTRATIONS_PREEMPTED, &format!("{t:?}"))
            .await;
        for i in [&a2, &b, &c, &d] {
            i.expect_no_ua(&format!("{t:?} preempted, same type")).await;
        }
        ok(&b.write(20).await, &format!("B writes under {t:?}"));
        conflict(&a.write(20).await, &format!("A writes under {t:?}"));
        ok(&b.clear(KB).await, "B CLEAR");
    }
}

/// Start a write whose data we withhold; returns once the target's R2T for it arrived.
async fn held_write(i: &Nexus, lba: u64, seed: u32) -> PendingCommand {
    let before = i.s.stats().r2ts;
    let opts = CommandOptions {
        data_out: DataOutPolicy::Withhold,
        ..CommandOptions::default()
    };
    let data = Bytes::from(pattern(seed, HELD_LEN));
    let p = guard(
        "start held write",
        i.s.start_command(
            0,
            &cdb::write16(lba, (HELD_LEN as u32) / BLOCK, false),
            Some(data),
            0,
            opts,
        ),
    )
    .await
    .unwrap();
    guard("R2T for the held write", i.s.until(|st| st.r2ts > before))
        .await
        .unwrap();
    p
}

/// `by` (with its key) PREEMPT AND ABORTs `victim` (with its key) while `held`, a write of the
/// victim's, waits for its data. An initiator keeps answering R2Ts (RFC 7143 §4.2.3); a target
/// may finish the abort before or after that data comes. Give it the chance to finish first,
/// then release the held data.
async fn preempt_and_abort_over_held(
    (by, key): (&Nexus, u64),
    (victim, victim_key): (&Nexus, u64),
    t: PrType,
    held: &PendingCommand,
) -> CommandResult {
    let s = by.s.clone();
    let mut paa = tokio::spawn(async move { s.pr_preempt_and_abort(0, key, victim_key, t).await });
    let early = tokio::time::timeout(Duration::from_secs(1), &mut paa).await;
    let _ = victim.s.release_data(held.itt);
    match early {
        Ok(r) => r,
        Err(_) => guard("PREEMPT AND ABORT", paa).await,
    }
    .expect("PAA task")
    .expect("PAA")
}

async fn read_region(i: &Nexus, lba: u64) -> Bytes {
    good(
        guard("read", i.s.read16(0, lba, (HELD_LEN as u32) / BLOCK, BLOCK)).await,
        "read region",
    )
}

/// PREEMPT AND ABORT (SPC-4 §5.13.11.2.5, SAM-5 §5.6): the preempted nexus' task in flight (a
/// WRITE held waiting for its Data-Out) ends with TASK ABORTED (TAS=1, the default) and
/// writes nothing; a task of a registrant that was not preempted completes; 2A/05 goes to the
/// preempted nexus only.
#[tokio::test]
async fn preempt_and_abort_aborts_the_preempted_nexus_tasks() {
    let rig = Rig::new();
    let a = rig.login("A", "a", ISID1, false).await;
    let b = rig.held_ini("B", "b", ISID_B, false).await;
    let c = rig.held_ini("C", "c", ISID_C, true).await;
    register_all(&[(&a, KA), (&b, KB), (&c, KC)]).await;
    ok(
        &a.reserve(KA, PrType::WriteExclusiveRegistrantsOnly).await,
        "A RESERVE WE-RO",
    );
    let g = a.generation().await;

    let b1 = held_write(&b, 1000, 1).await;
    let c1 = held_write(&c, 3000, 3).await;
    let r = preempt_and_abort_over_held(
        (&a, KA),
        (&b, KB),
        PrType::WriteExclusiveRegistrantsOnly,
        &b1,
    )
    .await;
    ok(&r, "A PREEMPT AND ABORT B");
    let r = guard("B's held write", b1.wait())
        .await
        .expect("B's held write ends with a status (TAS=1)");
    assert_eq!(
        r.status,
        status::TASK_ABORTED,
        "B's held write: {}",
        show(&r)
    );
    c.s.release_data(c1.itt).unwrap();
    let r = guard("C's held write", c1.wait()).await.unwrap();
    ok(&r, "C's write (not preempted)");
    assert_eq!(&read_region(&a, 1000).await[..], &vec![0u8; HELD_LEN][..]);
    assert_eq!(&read_region(&a, 3000).await[..], &pattern(3, HELD_LEN)[..]);

    assert_eq!(a.generation().await, g + 1);
    b.expect_ua(REGISTRATIONS_PREEMPTED, "B preempted and aborted")
        .await;
    a.expect_no_ua("the preempting nexus").await;
    c.expect_no_ua("not preempted").await;
    assert_eq!(a.reservation().await, held_by(KA, 5));
    same_descriptors(
        &a.full_status().await,
        &[
            desc(KA, &a, Some(PrType::WriteExclusiveRegistrantsOnly)),
            desc(KC, &c, None),
        ],
        "after PAA",
    );
    conflict(&b.write(50).await, "B (preempted) writes under WE-RO");
    ok(&c.write(50).await, "C (registered) writes under WE-RO");

    // PAA of the holder by C, with a new type: A goes, C holds EA.
    ok(
        &run(
            "C PAA A",
            c.s.pr_preempt_and_abort(0, KC, KA, PrType::ExclusiveAccess),
        )
        .await,
        "C PREEMPT AND ABORT A",
    );
    a.expect_ua(REGISTRATIONS_PREEMPTED, "A preempted").await;
    b.expect_no_ua("not registered").await;
    c.expect_no_ua("the preempting nexus").await;
    same_descriptors(
        &c.full_status().await,
        &[desc(KC, &c, Some(PrType::ExclusiveAccess))],
        "after C's PAA",
    );
}

/// SPEC_I_PT (SPC-4 §6.16.3, §5.13.7): REGISTER also registers the I_T nexuses the
/// TransportIDs name with the receiving target port — format 01b (an initiator port, logged
/// in or not) and 00b (every port of an initiator device) — all or nothing; refused for a
/// registered nexus.
#[tokio::test]
async fn spec_i_pt_both_formats_all_or_nothing() {
    let rig = Rig::new();
    let Cast { a, a2, b, c } = rig.cast().await;

    // 01b: A2 (logged in through tpgt_1) and c's port (only logged in through tpgt_2).
    let f = RegisterFlags {
        spec_i_pt: Some(vec![a2.port(), c.port()]),
        ..RegisterFlags::default()
    };
    ok(
        &b.register_flags(0, KB, &f).await,
        "B REGISTER SPEC_I_PT 01b",
    );
    let c_at1 = rig.login("C@tpgt_1", "c", ISID_C, false).await;
    let fs = a.full_status().await;
    let g = fs.generation;
    assert!(g >= 1, "SPEC_I_PT REGISTER did not bump PRgeneration");
    same_descriptors(
        &fs,
        &[
            desc(KB, &b, None),
            desc(KB, &a2, None),
            desc(KB, &c_at1, None),
        ],
        "SPEC_I_PT registrations on the receiving port",
    );
    // Who is registered now: A2 and c through tpgt_1; not A, not c through tpgt_2.
    conflict(&a.register(KB, KA).await, "A is not registered");
    conflict(
        &c.register(KB, KC).await,
        "C through tpgt_2 is not registered",
    );
    ok(&a2.register(KB, KA2).await, "A2 is registered with B's key");
    ok(
        &c_at1.register(KB, KC).await,
        "c through tpgt_1 is registered with B's key",
    );
    let before = a.full_status().await;

    // All or nothing: a good TransportID followed by a bad one registers neither.
    // A port of an initiator that is not logged in (registering it is fine on its own).
    let good_tid = TransportId::iscsi_port(&iqn("d"), ISID1).encode();
    let start = 28 + good_tid.len() as u16;
    let mut no_nul = TransportId::iscsi(&iqn("x")).encode();
    let n = no_nul.len();
    no_nul[4..n].fill(b'x');
    let mut bad_format = TransportId::iscsi(&iqn("x")).encode();
    bad_format[0] = 0x80 | 0x05;
    let no_sep = {
        // Format 01b without ",i,0x".
        let mut t = TransportId::iscsi(&iqn("x")).encode();
        t[0] = 0x45;
        t
    };
    let mut fc = vec![0u8; 24]; // protocol 0: Fibre Channel, not this port's protocol
    fc[8..16].copy_from_slice(&[0x21, 0, 0, 0x24, 0xff, 0x12, 0x34, 0x56]);
    let mut overrun = TransportId::iscsi(&iqn("x")).encode();
    overrun[3] = overrun[3].wrapping_add(8); // ADDITIONAL LENGTH beyond the list
    let cases: [(&str, Vec<u8>); 5] = [
        ("name not NUL-terminated", no_nul),
        ("reserved FORMAT CODE 10b", bad_format),
        ("format 01b without ,i,0x<ISID>", no_sep),
        ("Fibre Channel TransportID", fc),
        ("ADDITIONAL LENGTH past the list", overrun),
    ];
    for (what, bad) in cases {
        let len = bad.len() as u16;
        let p = ProutParams {
            key: 0,
            sa_key: KA,
            spec_i_pt: true,
            ..ProutParams::default()
        }
        .encode_with(&[good_tid.clone(), bad].concat());
        let r = a.out(what, out_sa::REGISTER, 0, p).await;
        // The field pointer names a byte of the bad TransportID, or (for a length that
        // runs past the list) the TRANSPORTID PARAMETER DATA LENGTH.
        sense(&r, INVALID_PARAM, what);
        let fp = r.sense.and_then(|s| s.field_pointer);
        assert!(
            fp.is_some_and(|fp| !fp.cd
                && ((start..start + len).contains(&fp.field) || (24..28).contains(&fp.field))),
            "{what}: field pointer {fp:?}, expected a parameter byte in {start}..{} or 24..28",
            start + len
        );
        assert_eq!(a.full_status().await, before, "{what}: state changed");
    }
    // SPEC_I_PT from a registered nexus: INVALID FIELD IN CDB (SPC-4 §5.13.7, the table of
    // REGISTER behaviours for a registered I_T nexus).
    let f = RegisterFlags {
        spec_i_pt: Some(vec![a.port()]),
        ..RegisterFlags::default()
    };
    sense(
        &b.register_flags(KB, KB, &f).await,
        INVALID_CDB,
        "SPEC_I_PT from a registered nexus",
    );
    assert_eq!(a.full_status().await, before, "state changed");

    // 00b names the initiator device: both of a's ports through tpgt_1 get registered.
    ok(&b.clear(KB).await, "B CLEAR");
    a2.expect_ua(RESERVATIONS_PREEMPTED, "CLEAR").await;
    c_at1.expect_ua(RESERVATIONS_PREEMPTED, "CLEAR").await;
    for i in [&a, &b, &c] {
        i.expect_no_ua("CLEAR").await;
    }
    let f = RegisterFlags {
        spec_i_pt: Some(vec![TransportId::iscsi(&a.name)]),
        ..RegisterFlags::default()
    };
    ok(
        &b.register_flags(0, KB, &f).await,
        "B REGISTER SPEC_I_PT 00b",
    );
    let fs = b.full_status().await;
    let of_a: Vec<_> = fs
        .descriptors
        .iter()
        .filter(|d| matches!(&d.transport_id, TransportId::Iscsi { name, .. } if *name == a.name))
        .collect();
    assert!(!of_a.is_empty(), "no registration for {}: {fs:?}", a.name);
    for d in of_a {
        assert_eq!(
            (d.key, d.rtpi, d.all_tg_pt),
            (KB, rig.rtpi1, false),
            "{d:?}"
        );
    }
    ok(
        &b.reserve(KB, PrType::WriteExclusiveRegistrantsOnly).await,
        "B RESERVE WE-RO",
    );
    ok(&a.write(30).await, "A (registered by 00b) writes");
    ok(&a2.write(30).await, "A2 (registered by 00b) writes");
    conflict(&c.write(30).await, "C (not registered) writes");
}

const ALL_BITS: [Option<u8>; 9] = [
    None,
    Some(0),
    Some(1),
    Some(2),
    Some(3),
    Some(4),
    Some(5),
    Some(6),
    Some(7),
];

/// ALL_TG_PT (SPC-4 §6.16.3): the registration holds for the initiator port through every
/// target port; READ FULL STATUS marks it; other ports of the same initiator are not covered.
#[tokio::test]
async fn all_tg_pt_registration_spans_target_ports() {
    let rig = Rig::new();
    let Cast { a, a2, b: _b, c } = rig.cast().await;
    let f = RegisterFlags {
        all_tg_pt: true,
        ..RegisterFlags::default()
    };
    ok(&a.register_flags(0, KA, &f).await, "A REGISTER ALL_TG_PT");
    let fs = c.full_status().await;
    assert!(!fs.descriptors.is_empty());
    // One descriptor for all target ports or one per port: each marked ALL_TG_PT.
    for d in &fs.descriptors {
        assert_eq!(d.key, KA, "{d:?}");
        assert!(d.all_tg_pt, "descriptor without ALL_TG_PT: {d:?}");
        assert_eq!(d.transport_id, a.port(), "{d:?}");
        assert!(!d.r_holder);
    }
    assert!(c.keys().await.keys.iter().all(|&k| k == KA));

    // The same initiator port through tpgt_2 is registered; a's other port is not.
    let a_at2 = rig.login("A@tpgt_2", "a", ISID1, true).await;
    ok(
        &a.reserve(KA, PrType::WriteExclusiveRegistrantsOnly).await,
        "A RESERVE WE-RO",
    );
    ok(
        &a_at2.write(40).await,
        "A through tpgt_2 (ALL_TG_PT registered) writes",
    );
    conflict(&a2.write(40).await, "A2 (another initiator port) writes");
    conflict(&c.write(40).await, "C (unregistered) writes");
    ok(
        &a.release(KA, PrType::WriteExclusiveRegistrantsOnly).await,
        "A RELEASE",
    );
    // 2A/04 to the registrants other than the releasing nexus (A through tpgt_2 is one).
    a_at2
        .expect_ua(RESERVATIONS_RELEASED, "WE-RO released")
        .await;
    for i in [&a, &a2, &c] {
        i.expect_no_ua("WE-RO released").await;
    }

    // C registers with ALL_TG_PT through tpgt_2; it is then registered through tpgt_1.
    ok(&c.register_flags(0, KC, &f).await, "C REGISTER ALL_TG_PT");
    let c_at1 = rig.login("C@tpgt_1", "c", ISID_C, false).await;
    ok(
        &a.reserve(KA, PrType::ExclusiveAccessRegistrantsOnly).await,
        "A RESERVE EA-RO",
    );
    ok(&c_at1.write(41).await, "C through tpgt_1 writes");
    ok(&c.write(41).await, "C through tpgt_2 writes");
    conflict(&a2.write(41).await, "A2 writes");
}

/// REGISTER AND MOVE (SPC-4 §5.13.8, §6.16.4) to an initiator port through the other target
/// port (its RTPI), then onwards with UNREG; the errors that leave everything as it was.
#[tokio::test]
async fn register_and_move_to_another_port() {
    let rig = Rig::new();
    let Cast { a, a2: _a2, b, c } = rig.cast().await;
    ok(&a.register(0, KA).await, "A REGISTER");
    ok(&a.reserve(KA, PrType::WriteExclusive).await, "A RESERVE WE");
    let g = a.generation().await;
    let to_c = RegisterAndMoveParams {
        key: KA,
        sa_key: KC,
        unreg: false,
        aptpl: false,
        rtpi: rig.rtpi2,
        transport_id: c.port(),
    };
    ok(
        &a.ram(PrType::WriteExclusive, &to_c).await,
        "A moves to C@tpgt_2",
    );
    let fs = b.full_status().await;
    assert_eq!(fs.generation, g + 1, "REGISTER AND MOVE bumps PRgeneration");
    same_descriptors(
        &fs,
        &[
            desc(KA, &a, None),
            desc(KC, &c, Some(PrType::WriteExclusive)),
        ],
        "after the move to C",
    );
    ok(&c.write(60).await, "C (new holder) writes");
    conflict(
        &a.write(60).await,
        "A (registered, not holder) writes under WE",
    );
    for i in [&a, &b, &c] {
        i.expect_no_ua("REGISTER AND MOVE").await;
    }

    // Onwards to B through tpgt_1 with UNREG: C's registration goes.
    let to_b = RegisterAndMoveParams {
        key: KC,
        sa_key: KB,
        unreg: true,
        aptpl: false,
        rtpi: rig.rtpi1,
        transport_id: b.port(),
    };
    ok(
        &c.ram(PrType::WriteExclusive, &to_b).await,
        "C moves to B, UNREG",
    );
    same_descriptors(
        &b.full_status().await,
        &[
            desc(KA, &a, None),
            desc(KB, &b, Some(PrType::WriteExclusive)),
        ],
        "after the move to B",
    );
    conflict(&c.register(KC, KC).await, "C unregistered by UNREG");

    // Errors: nothing changes.
    let before = b.full_status().await;
    let to = |rtpi: u16, t: TransportId| RegisterAndMoveParams {
        key: KB,
        sa_key: KC,
        unreg: false,
        aptpl: false,
        rtpi,
        transport_id: t,
    };
    let unknown_rtpi = rig.rtpi1.max(rig.rtpi2) + 100;
    let r = b
        .ram(PrType::WriteExclusive, &to(unknown_rtpi, c.port()))
        .await;
    sense_at(&r, INVALID_PARAM, false, 18..=19, &ALL_BITS, "unknown RTPI");
    let zero_key = RegisterAndMoveParams {
        sa_key: 0,
        ..to(rig.rtpi2, c.port())
    };
    let r = b.ram(PrType::WriteExclusive, &zero_key).await;
    sense_at(
        &r,
        INVALID_PARAM,
        false,
        8..=15,
        &[None, Some(7)],
        "SERVICE ACTION KEY 0",
    );
    let r = b
        .ram(PrType::WriteExclusive, &to(rig.rtpi1, b.port()))
        .await;
    sense_at(
        &r,
        INVALID_PARAM,
        false,
        18..=100,
        &ALL_BITS,
        "move to itself",
    );
    let mut bad = c.port().encode();
    bad[0] = 0x85;
    let p = to(rig.rtpi2, c.port()).encode_with(&bad);
    let r = b
        .out("RAM reserved FORMAT CODE", out_sa::REGISTER_AND_MOVE, 1, p)
        .await;
    sense_at(
        &r,
        INVALID_PARAM,
        false,
        24..=24,
        &ALL_BITS,
        "RAM reserved FORMAT CODE",
    );
    conflict(
        &a.ram(
            PrType::WriteExclusive,
            &RegisterAndMoveParams {
                key: KA,
                ..to(rig.rtpi2, c.port())
            },
        )
        .await,
        "RAM by a registered non-holder",
    );
    conflict(
        &c.ram(
            PrType::WriteExclusive,
            &RegisterAndMoveParams {
                key: 0,
                ..to(rig.rtpi2, a.port())
            },
        )
        .await,
        "RAM by an unregistered nexus",
    );
    assert_eq!(
        b.full_status().await,
        before,
        "a failed REGISTER AND MOVE changed state"
    );
    // All Registrants reservations cannot be moved.
    ok(&b.release(KB, PrType::WriteExclusive).await, "B RELEASE");
    ok(
        &b.reserve(KB, PrType::WriteExclusiveAllRegistrants).await,
        "B RESERVE WE-AR",
    );
    let before = b.full_status().await;
    conflict(
        &b.ram(
            PrType::WriteExclusiveAllRegistrants,
            &to(rig.rtpi2, c.port()),
        )
        .await,
        "RAM of an All Registrants reservation",
    );
    assert_eq!(b.full_status().await, before);
    // No reservation: nothing to move (INVALID FIELD IN CDB, as LIO and SCST answer).
    ok(
        &b.release(KB, PrType::WriteExclusiveAllRegistrants).await,
        "B RELEASE",
    );
    let before = b.full_status().await;
    sense(
        &b.ram(PrType::WriteExclusive, &to(rig.rtpi2, c.port()))
            .await,
        INVALID_CDB,
        "RAM without a reservation",
    );
    assert_eq!(b.full_status().await, before);
}

/// Unregistering the holder (SPC-4 §5.13.11.3): the reservation goes with it (2A/04 to the
/// other registrants for Registrants Only, nothing for WE); All Registrants reservations stay
/// until the last registrant leaves.
#[tokio::test]
async fn unregistering_the_holder() {
    let rig = Rig::new();
    let Cast { a, a2, b, c } = rig.cast().await;
    ok(&b.register(0, KB).await, "B REGISTER");
    for (t, ua) in [
        (PrType::WriteExclusive, false),
        (PrType::ExclusiveAccessRegistrantsOnly, true),
    ] {
        ok(&a.register(0, KA).await, "A REGISTER");
        ok(&a.reserve(KA, t).await, &format!("A RESERVE {t:?}"));
        ok(&a.register(KA, 0).await, "A unregisters");
        if ua {
            b.expect_ua(RESERVATIONS_RELEASED, &format!("{t:?} holder left"))
                .await;
        }
        for i in [&a, &a2, &b, &c] {
            i.expect_no_ua(&format!("{t:?} holder left")).await;
        }
        assert_eq!(b.reservation().await, None, "{t:?}: holder left");
    }
    ok(&a.register(0, KA).await, "A REGISTER");
    ok(
        &a.reserve(KA, PrType::ExclusiveAccessAllRegistrants).await,
        "A RESERVE EA-AR",
    );
    ok(&a.register(KA, 0).await, "A unregisters");
    assert_eq!(
        b.reservation().await,
        held_by(0, 8),
        "EA-AR stays while B is registered"
    );
    for i in [&a, &a2, &b, &c] {
        i.expect_no_ua("an EA-AR registrant left").await;
    }
    ok(&b.write(70).await, "B (registrant) writes");
    conflict(&a.write(70).await, "A (gone) writes");
    ok(&b.register(KB, 0).await, "B unregisters");
    assert_eq!(b.reservation().await, None, "last registrant left");
    ok(&c.write(70).await, "C writes with no reservation");
}

/// Bad parameter lists and CDB fields: the precise sense and no change (READ FULL STATUS,
/// which carries PRgeneration, and READ RESERVATION identical afterwards).
#[tokio::test]
async fn bad_parameter_lists_change_nothing() {
    let rig = Rig::new();
    let Cast { a, a2: _a2, b, c } = rig.cast().await;
    register_all(&[(&a, KA), (&b, KB)]).await;
    ok(&a.reserve(KA, PrType::WriteExclusive).await, "A RESERVE WE");
    let before = (a.full_status().await, a.reservation().await);
    let same = || async { (a.full_status().await, a.reservation().await) };

    let basic = |key: u64, sa_key: u64| ProutParams::keys(key, sa_key).encode();
    // Short and wrong-length lists (SPC-4 §6.16.3: 24 bytes unless SPEC_I_PT).
    for (n, op, sa, t, params, what) in [
        (
            &b,
            "short REGISTER",
            out_sa::REGISTER,
            0,
            basic(KB, KC)[..20].to_vec(),
            "REGISTER with 20 bytes",
        ),
        (
            &b,
            "long REGISTER",
            out_sa::REGISTER,
            0,
            [basic(KB, KC), vec![0; 8]].concat(),
            "REGISTER with 32 bytes, SPEC_I_PT=0",
        ),
        (
            &b,
            "long RIEK",
            out_sa::REGISTER_AND_IGNORE_EXISTING_KEY,
            0,
            [basic(0, KC), vec![0; 4]].concat(),
            "RIEK with 28 bytes",
        ),
        (
            &a,
            "short RELEASE",
            out_sa::RELEASE,
            1,
            basic(KA, 0)[..23].to_vec(),
            "RELEASE with 23 bytes",
        ),
        (
            &b,
            "empty CLEAR",
            out_sa::CLEAR,
            0,
            Vec::new(),
            "CLEAR with no parameter list",
        ),
        (
            &b,
            "long PREEMPT",
            out_sa::PREEMPT,
            1,
            [basic(KB, KA), vec![0; 4]].concat(),
            "PREEMPT with 28 bytes",
        ),
    ] {
        length_error(&n.out(op, sa, t, params).await, what);
    }
    assert_eq!(same().await, before, "after the length errors");

    // SPEC_I_PT from a registered nexus.
    let p = ProutParams {
        key: KB,
        sa_key: KB,
        spec_i_pt: true,
        transport_ids: vec![c.port()],
        ..ProutParams::default()
    };
    let r = b
        .out("REGISTER SPEC_I_PT", out_sa::REGISTER, 0, p.encode())
        .await;
    sense(&r, INVALID_CDB, "SPEC_I_PT from a registered nexus");
    // SPEC_I_PT with another service action.
    let mut p = basic(KA, 0);
    p[20] = 0x08;
    let r = a.out("RESERVE SPEC_I_PT", out_sa::RESERVE, 1, p).await;
    sense_at(
        &r,
        INVALID_PARAM,
        false,
        20..=20,
        &[None, Some(3)],
        "SPEC_I_PT on RESERVE",
    );
    // Unknown RTPI / malformed TransportID in REGISTER AND MOVE.
    let mv = RegisterAndMoveParams {
        key: KA,
        sa_key: KC,
        unreg: false,
        aptpl: false,
        rtpi: rig.rtpi1.max(rig.rtpi2) + 7,
        transport_id: c.port(),
    };
    let r = a.ram(PrType::WriteExclusive, &mv).await;
    sense_at(&r, INVALID_PARAM, false, 18..=19, &ALL_BITS, "unknown RTPI");
    let mut tid = c.port().encode();
    let n = tid.len();
    tid[4..n].fill(b'q');
    let p = RegisterAndMoveParams {
        rtpi: rig.rtpi2,
        ..mv.clone()
    }
    .encode_with(&tid);
    let r = a
        .out(
            "RAM TransportID without NUL",
            out_sa::REGISTER_AND_MOVE,
            1,
            p,
        )
        .await;
    sense_at(
        &r,
        INVALID_PARAM,
        false,
        24..=(24 + n as u16),
        &ALL_BITS,
        "malformed TransportID",
    );
    // PREEMPT with key 0 and no All Registrants reservation.
    let r = b
        .out("PREEMPT key 0", out_sa::PREEMPT, 1, basic(KB, 0))
        .await;
    sense_at(
        &r,
        INVALID_PARAM,
        false,
        8..=15,
        &[None, Some(7)],
        "PREEMPT key 0",
    );
    // RELEASE with the wrong type.
    sense(
        &a.release(KA, PrType::ExclusiveAccess).await,
        INVALID_RELEASE,
        "RELEASE wrong type",
    );
    assert_eq!(same().await, before, "after the parameter errors");

    // CDB fields: unknown service actions, invalid types, a scope other than LU_SCOPE.
    for sa in [0x09u8, 0x10, 0x1f] {
        let r = a
            .out(&format!("PR OUT SA {sa:#x}"), sa, 1, basic(KA, 0))
            .await;
        sense_at(
            &r,
            INVALID_CDB,
            true,
            1..=1,
            &[None, Some(4)],
            &format!("PR OUT SA {sa:#x}"),
        );
    }
    for sa in [0x04u8, 0x1f] {
        let r = run(&format!("PR IN SA {sa:#x}"), a.s.pr_in(0, sa, 256)).await;
        sense_at(
            &r,
            INVALID_CDB,
            true,
            1..=1,
            &[None, Some(4)],
            &format!("PR IN SA {sa:#x}"),
        );
    }
    for t in [0u8, 2, 4, 9, 0xf] {
        let r = a
            .out(
                &format!("holder RESERVE type {t}"),
                out_sa::RESERVE,
                t,
                basic(KA, 0),
            )
            .await;
        sense_at(
            &r,
            INVALID_CDB,
            true,
            2..=2,
            &[None, Some(3)],
            &format!("holder RESERVE type {t}"),
        );
    }
    let cdb = prout_cdb(out_sa::RESERVE, 1, 1, 24);
    let r = run(
        "RESERVE scope 1",
        a.s.command(0, &cdb, Some(basic(KA, 0)), 0, SIMPLE_ATTR),
    )
    .await;
    sense_at(
        &r,
        INVALID_CDB,
        true,
        2..=2,
        &[None, Some(7)],
        "RESERVE scope 1",
    );
    assert_eq!(same().await, before, "after the CDB errors");
    let _ = prin_cdb;
}

/// ALLOCATION LENGTH (SPC-4 §4.2.5.6, §6.15): the data is cut, the length fields are not.
#[tokio::test]
async fn allocation_length_truncates_data_not_lengths() {
    let rig = Rig::new();
    let Cast { a, a2, b, c: _c } = rig.cast().await;
    register_all(&[(&a, KA), (&a2, KA2), (&b, KB)]).await;
    ok(
        &a.reserve(KA, PrType::ExclusiveAccess).await,
        "A RESERVE EA",
    );
    let full_keys = run("READ KEYS", a.s.pr_in(0, in_sa::READ_KEYS, 1024)).await;
    ok(&full_keys, "READ KEYS");
    let full_fs = run(
        "READ FULL STATUS",
        a.s.pr_in(0, in_sa::READ_FULL_STATUS, 4096),
    )
    .await;
    ok(&full_fs, "READ FULL STATUS");
    let fs_len = full_fs.data_in.len();
    for (sa, alloc, full) in [
        (in_sa::READ_KEYS, 8u16, full_keys.data_in.clone()),
        (in_sa::READ_KEYS, 12, full_keys.data_in.clone()),
        (in_sa::READ_KEYS, 16, full_keys.data_in.clone()),
        (in_sa::READ_FULL_STATUS, 8, full_fs.data_in.clone()),
        (
            in_sa::READ_FULL_STATUS,
            (fs_len - 1) as u16,
            full_fs.data_in.clone(),
        ),
    ] {
        let r = run("PR IN", a.s.pr_in(0, sa, alloc)).await;
        ok(&r, &format!("PR IN SA {sa} alloc {alloc}"));
        assert_eq!(
            &r.data_in[..],
            &full[..usize::from(alloc).min(full.len())],
            "PR IN SA {sa} alloc {alloc}"
        );
    }
    assert_eq!(
        ReadKeys::parse(&full_keys.data_in)
            .unwrap()
            .additional_length,
        24
    );
    // READ RESERVATION cut to its header still says 16 more bytes exist.
    let r = run("READ RESERVATION", a.s.pr_in(0, in_sa::READ_RESERVATION, 8)).await;
    ok(&r, "READ RESERVATION alloc 8");
    assert_eq!(r.data_in.len(), 8);
    assert_eq!(&r.data_in[4..8], &[0, 0, 0, 16]);
    let r = run(
        "REPORT CAPABILITIES",
        a.s.pr_in(0, in_sa::REPORT_CAPABILITIES, 4),
    )
    .await;
    ok(&r, "REPORT CAPABILITIES alloc 4");
    assert_eq!(&r.data_in[..2], &[0, 8]);
    assert_eq!(r.data_in.len(), 4);
    // ALLOCATION LENGTH 0 is not an error (SPC-4 §4.2.5.6).
    let r = run(
        "READ KEYS alloc 0",
        a.s.command(0, &prin_cdb(in_sa::READ_KEYS, 0), None, 0, SIMPLE_ATTR),
    )
    .await;
    ok(&r, "READ KEYS alloc 0");
    assert!(r.data_in.is_empty());
}

/// REPLACE LOST RESERVATION: supported only if REPORT CAPABILITIES says RLR_C; else the
/// service action is unknown (INVALID FIELD IN CDB at the SERVICE ACTION).
#[tokio::test]
async fn replace_lost_reservation_matches_rlr_c() {
    let rig = Rig::new();
    let a = rig.login("A", "a", ISID1, false).await;
    let caps = guard("REPORT CAPABILITIES", a.s.pr_report_capabilities(0))
        .await
        .unwrap();
    ok(&a.register(0, KA).await, "A REGISTER");
    let r = run(
        "REPLACE LOST RESERVATION",
        a.s.pr_replace_lost_reservation(0, KA, PrType::WriteExclusive),
    )
    .await;
    if caps.rlr_c {
        // Supported: its semantics (a lost reservation) cannot be provoked from here.
        eprintln!("RLR_C = 1: REPLACE LOST RESERVATION answered {}", show(&r));
        return;
    }
    sense_at(
        &r,
        INVALID_CDB,
        true,
        1..=1,
        &[None, Some(4)],
        "RLR without RLR_C",
    );
    assert_eq!(a.reservation().await, None);
}

/// PREEMPT AND ABORT with TAS = 0 (`emulate_tas 0`): the preempted nexus' held task is
/// aborted silently — no status ever comes, nothing is written (SAM-5 §5.6) — and the nexus
/// learns of it through unit attentions: REGISTRATIONS PREEMPTED, possibly with COMMANDS
/// CLEARED BY ANOTHER INITIATOR (2F/00).
#[tokio::test]
async fn preempt_and_abort_with_tas_0_aborts_silently() {
    let rig = Rig::with(|d| {
        let lun = format!("{TPG}/lun/lun_0");
        d.cli(&["delete", &lun]);
        d.cli(&["set", &format!("{RAMDISK}/attrib/emulate_tas"), "0"]);
        d.cli(&["create", &lun, &format!("dev={RAMDISK}")]);
    });
    let a = rig.login("A", "a", ISID1, false).await;
    let b = rig.held_ini("B", "b", ISID_B, false).await;
    register_all(&[(&a, KA), (&b, KB)]).await;
    ok(
        &a.reserve(KA, PrType::WriteExclusiveAllRegistrants).await,
        "A RESERVE WE-AR",
    );
    let b1 = held_write(&b, 2000, 2).await;
    let r = preempt_and_abort_over_held(
        (&a, KA),
        (&b, KB),
        PrType::WriteExclusiveAllRegistrants,
        &b1,
    )
    .await;
    ok(&r, "A PREEMPT AND ABORT B (TAS=0)");
    // The session goes on; a NOP round trip on B's connection after the abort, then the
    // held command must still be unanswered.
    guard("ping B", b.s.ping(Vec::new())).await.unwrap();
    match tokio::time::timeout(Duration::from_millis(500), b1.wait()).await {
        Err(_) => {}
        Ok(r) => panic!("silently aborted write was answered: {r:?}"),
    }
    assert_eq!(&read_region(&a, 2000).await[..], &vec![0u8; HELD_LEN][..]);
    let mut uas = Vec::new();
    for _ in 0..4 {
        let r = b.tur().await;
        if r.status == status::GOOD {
            break;
        }
        uas.push(r.sense_triple());
    }
    assert!(
        uas.contains(&Some((UNIT_ATTENTION, 0x2A, 0x05)))
            && uas.iter().all(|u| matches!(
                u,
                Some((UNIT_ATTENTION, 0x2A, 0x05)) | Some((UNIT_ATTENTION, 0x2F, 0x00))
            )),
        "B's unit attentions after a TAS=0 PREEMPT AND ABORT: {uas:?}"
    );
    a.expect_no_ua("the preempting nexus").await;
    conflict(&b.write(90).await, "B (preempted) writes under WE-AR");
}
