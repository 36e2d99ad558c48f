//! End to end: Persist Through Power Loss (SPC-4 §5.13.5; APTPL in REGISTER / REGISTER AND
//! MOVE, §6.16.3-4; PTPL_A in REPORT CAPABILITIES, §6.15.4). The daemon is killed with
//! SIGKILL — no flush, no goodbye — and restarted on the same state directory:
//!
//! * the registrations (keys, initiator ports, target ports), the holder and the type come
//!   back, each registration live again once its initiator port logs in through the same
//!   target port, and the reservation still keeps non-holders out;
//! * killed at a random moment of a burst of PR OUT commands, the state found afterwards is
//!   the last acknowledged one or the one the command in flight would have made — never a
//!   mix, never older;
//! * a corrupt or truncated APTPL file (`<state-dir>/pr/aptpl_<unit serial>`) stops the
//!   daemon from starting, naming the file; restoring it brings everything back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ironlun_initiator::pr::{FullStatus, PrType, RegisterAndMoveParams, RegisterFlags};
use ironlun_initiator::{CommandResult, Error, Session};
use ironlun_scsi::status;
use support::pr::*;
use support::*;

const KA: u64 = 0xA1;
const KA2: u64 = 0xA2;
const KA_MOVED: u64 = 0xA1A1;
const KB: u64 = 0xB0;
const KC: u64 = 0xC0;

fn aptpl() -> RegisterFlags {
    RegisterFlags::aptpl()
}

impl Rig {
    /// `<state-dir>/pr/aptpl_<unit serial>` of the RAM disk.
    fn aptpl_file(&self) -> PathBuf {
        let serial = self.d.unit_serial(RAMDISK);
        // The serial is a UUID: nothing in it needs escaping in the file name.
        assert!(
            serial
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-'),
            "{serial}"
        );
        self.d
            .state_dir()
            .join("pr")
            .join(format!("aptpl_{serial}"))
    }
}

fn sorted(fs: &FullStatus) -> Vec<String> {
    let mut v: Vec<String> = fs.descriptors.iter().map(|d| format!("{d:?}")).collect();
    v.sort();
    v
}

/// REGISTER (APTPL=1) through both target ports, RESERVE, PREEMPT, REGISTER AND MOVE; kill -9;
/// restart: the same registrations, holder and type; the reservation still holds.
#[tokio::test]
async fn aptpl_state_survives_kill9() {
    let mut rig = Rig::new();
    let Cast { a, a2, b, c } = rig.cast().await;
    for (n, k) in [(&a, KA), (&b, KB), (&c, KC)] {
        let r = run("REGISTER", n.s.pr_register(0, 0, k, &aptpl())).await;
        ok(&r, &format!("{} REGISTER APTPL=1", n.label));
    }
    // A2 through every target port (ALL_TG_PT): it comes back for its initiator port
    // wherever it logs in.
    let all = RegisterFlags {
        all_tg_pt: true,
        ..aptpl()
    };
    let r = run("REGISTER", a2.s.pr_register(0, 0, KA2, &all)).await;
    ok(&r, "A2 REGISTER APTPL=1 ALL_TG_PT=1");
    let caps = guard("REPORT CAPABILITIES", b.s.pr_report_capabilities(0))
        .await
        .unwrap();
    assert!(caps.ptpl_c && caps.ptpl_a, "PTPL_C / PTPL_A: {caps:?}");
    ok(
        &run(
            "RESERVE",
            a.s.pr_reserve(0, KA, PrType::WriteExclusiveRegistrantsOnly),
        )
        .await,
        "A RESERVE WE-RO",
    );
    ok(
        &run(
            "PREEMPT",
            b.s.pr_preempt(0, KB, KA, PrType::ExclusiveAccess),
        )
        .await,
        "B PREEMPT A -> EA",
    );
    let mv = RegisterAndMoveParams {
        key: KB,
        sa_key: KA_MOVED,
        unreg: false,
        aptpl: true,
        rtpi: rig.rtpi1,
        transport_id: a.port(),
    };
    ok(
        &run(
            "REGISTER AND MOVE",
            b.s.pr_register_and_move(0, PrType::ExclusiveAccess, &mv),
        )
        .await,
        "B moves the reservation to A",
    );
    let before = b.full_status().await;
    let want = [
        desc(KA_MOVED, &a, Some(PrType::ExclusiveAccess)),
        desc(KB, &b, None),
        desc(KC, &c, None),
    ];
    // A2's ALL_TG_PT registration: one descriptor for all ports or one per port, each marked.
    let (of_a2, others): (Vec<_>, Vec<_>) = before
        .descriptors
        .iter()
        .cloned()
        .partition(|d| d.transport_id == a2.port());
    assert!(!of_a2.is_empty(), "no registration of A2: {before:?}");
    for d in &of_a2 {
        assert!(d.key == KA2 && d.all_tg_pt && !d.r_holder, "{d:?}");
    }
    let before_others = FullStatus {
        descriptors: others,
        ..before.clone()
    };
    assert_eq!(
        sorted(&before_others),
        sorted(&FullStatus {
            generation: 0,
            additional_length: 0,
            descriptors: want.to_vec(),
        }),
        "state before the kill"
    );
    let res_before = b.reservation().await;
    assert_eq!(res_before, held_by(KA_MOVED, 3));
    let file = rig.aptpl_file();
    assert!(file.is_file(), "{} missing", file.display());

    drop((a, a2, b, c));
    let st = rig.d.kill9();
    assert!(!st.success(), "SIGKILL: {st}");
    rig.d.restart();

    // Through a fresh login of B: every registration is there, logged in or not.
    let b = rig.login("B after restart", "b", ISID_B, false).await;
    let after = b.full_status().await;
    assert_eq!(
        sorted(&after),
        sorted(&before),
        "READ FULL STATUS after kill -9"
    );
    assert_eq!(
        b.reservation().await,
        res_before,
        "READ RESERVATION after kill -9"
    );
    let caps = guard("REPORT CAPABILITIES", b.s.pr_report_capabilities(0))
        .await
        .unwrap();
    assert!(caps.ptpl_a, "PTPL_A after restart: {caps:?}");

    // The reservation (EA, held by A) still keeps everyone else out.
    let c = rig.login("C after restart", "c", ISID_C, true).await;
    conflict(&c.write(8).await, "registered non-holder C writes");
    conflict(
        &run("READ", c.s.read16(0, 8, 1, BLOCK)).await,
        "registered non-holder C reads under EA",
    );
    conflict(&b.write(8).await, "registered non-holder B writes");
    let e = rig.login("E (never registered)", "e", ISID1, false).await;
    conflict(&e.write(8).await, "unregistered E writes");
    // c's registration is through tpgt_2 only: through tpgt_1 it is a stranger.
    let c1 = rig.login("C through tpgt_1", "c", ISID_C, false).await;
    conflict(
        &run("REGISTER", c1.s.pr_register(0, KC, KC, &aptpl())).await,
        "C through tpgt_1 is not registered",
    );
    // The holder is the holder: it writes, and releases with its moved key.
    let a = rig.login("A after restart", "a", ISID1, false).await;
    ok(&a.write(8).await, "holder A writes");
    let a2 = rig.login("A2 after restart", "a", ISID2, false).await;
    conflict(&a2.write(8).await, "A2 writes");
    ok(
        &run(
            "RELEASE",
            a.s.pr_release(0, KA_MOVED, PrType::ExclusiveAccess),
        )
        .await,
        "A RELEASE with the moved key",
    );
    ok(&c.write(8).await, "C writes once released");
    // A2's ALL_TG_PT registration is live through tpgt_2 as well.
    let a2_at2 = rig.login("A2 through tpgt_2", "a", ISID2, true).await;
    ok(
        &run("REGISTER", a2_at2.s.pr_register(0, KA2, KA2, &aptpl())).await,
        "A2 through tpgt_2 is registered (ALL_TG_PT, after restart)",
    );
}

/// The persistent state as READ FULL STATUS shows it for the one initiator port of the burst.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct State {
    key: Option<u64>,
    /// Reservation type held by the port.
    holds: Option<u8>,
}

const EMPTY: State = State {
    key: None,
    holds: None,
};

/// The n-th command of the burst (five per cycle, from an empty state) and the state it
/// leads to.
fn burst_op(n: u64) -> (u8, u64, u64, PrType, State) {
    use ironlun_initiator::pr::out_sa;
    let cycle = n / 5;
    let t = PrType::ALL[(cycle % 6) as usize];
    let k1 = 0x1000_0000 + cycle * 2;
    let k2 = k1 + 1;
    match n % 5 {
        0 => (
            out_sa::REGISTER_AND_IGNORE_EXISTING_KEY,
            0,
            k1,
            t,
            State {
                key: Some(k1),
                holds: None,
            },
        ),
        1 => (
            out_sa::RESERVE,
            k1,
            0,
            t,
            State {
                key: Some(k1),
                holds: Some(t.code()),
            },
        ),
        2 => (
            out_sa::REGISTER,
            k1,
            k2,
            t,
            State {
                key: Some(k2),
                holds: Some(t.code()),
            },
        ),
        3 => (
            out_sa::RELEASE,
            k2,
            0,
            t,
            State {
                key: Some(k2),
                holds: None,
            },
        ),
        _ => (out_sa::REGISTER, k2, 0, t, EMPTY),
    }
}

async fn send_op(s: &Session, n: u64) -> Result<CommandResult, Error> {
    use ironlun_initiator::pr::out_sa;
    let (sa, key, sa_key, t, _) = burst_op(n);
    match sa {
        out_sa::REGISTER => s.pr_register(0, key, sa_key, &aptpl()).await,
        out_sa::REGISTER_AND_IGNORE_EXISTING_KEY => s.pr_register_ignore(0, sa_key, &aptpl()).await,
        out_sa::RESERVE => s.pr_reserve(0, key, t).await,
        _ => s.pr_release(0, key, t).await,
    }
}

async fn observe(n: &Nexus) -> State {
    let fs = n.full_status().await;
    assert!(fs.descriptors.len() <= 1, "{fs:?}");
    let Some(d) = fs.descriptors.first() else {
        assert_eq!(
            n.reservation().await,
            None,
            "a reservation without registrations"
        );
        return EMPTY;
    };
    assert_eq!((&d.transport_id, d.rtpi), (&n.port(), n.rtpi), "{d:?}");
    let holds = d.r_holder.then_some(d.pr_type);
    assert_eq!(
        n.reservation().await.map(|r| r.pr_type),
        holds,
        "READ RESERVATION against READ FULL STATUS {d:?}"
    );
    State {
        key: Some(d.key),
        holds,
    }
}

/// xorshift64*: a seeded, reproducible sequence of kill delays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// SIGKILL at a random moment of a burst of PR OUT commands (one outstanding at a time, each
/// making the state durable before GOOD): after the restart the state is the last
/// acknowledged one, or the one the command in flight was making.
#[tokio::test]
async fn kill_during_pr_out_burst_keeps_acknowledged_state() {
    const SEED: u64 = 0x1D0C_0FFE_E5EE_D123;
    const ITERATIONS: usize = 5;
    let mut rig = Rig::new();
    let mut rng = Rng(SEED);
    let mut total_acked = 0u64;
    let mut next_op = 0u64;
    for iteration in 0..ITERATIONS {
        let n = rig.login("burst", "burst", ISID1, false).await;
        // Start each burst from the empty state (the previous one's state was verified).
        if let Some(k) = observe(&n).await.key {
            let r = run("unregister", n.s.pr_register(0, k, 0, &aptpl())).await;
            ok(&r, "unregister before the burst");
        }
        assert_eq!(observe(&n).await, EMPTY);
        // Restart the op sequence at a cycle boundary so keys keep growing.
        next_op = next_op.div_ceil(5) * 5;
        let first = next_op;
        let acked = Arc::new(Mutex::new(None::<u64>));
        let acked_w = acked.clone();
        let s = n.s.clone();
        let burst = tokio::spawn(async move {
            let mut op = first;
            loop {
                match send_op(&s, op).await {
                    Ok(r) if r.status == status::GOOD => {
                        *acked_w.lock().unwrap() = Some(op);
                        op += 1;
                    }
                    Ok(r) => panic!(
                        "burst op {op} {:?}: status {:#04x} sense {:?}",
                        burst_op(op),
                        r.status,
                        r.sense
                    ),
                    Err(_) => return op,
                }
            }
        });
        let delay = 50 + rng.next() % 700;
        tokio::time::sleep(Duration::from_millis(delay)).await;
        rig.d.kill9();
        let in_flight = guard("burst ends with the connection", burst)
            .await
            .expect("burst task");
        drop(n);
        let last = *acked.lock().unwrap();
        rig.d.restart();
        let n = rig
            .login("burst after restart", "burst", ISID1, false)
            .await;
        let got = observe(&n).await;
        let acked_state = last.map_or(EMPTY, |op| burst_op(op).4);
        let flight_state = burst_op(in_flight).4;
        assert!(
            got == acked_state || got == flight_state,
            "iteration {iteration} (kill after {delay} ms): state {got:?}; last acknowledged \
             op {last:?} -> {acked_state:?}, in flight op {in_flight} -> {flight_state:?}"
        );
        total_acked += last.map_or(0, |l| l + 1 - first);
        eprintln!(
            "iteration {iteration}: killed after {delay} ms, ops {first}..={last:?} acknowledged, \
             op {in_flight} in flight; found {got:?}"
        );
        next_op = in_flight + 1;
    }
    // The bursts really ran (each PR OUT with APTPL is one durable write).
    assert!(
        total_acked >= ITERATIONS as u64,
        "only {total_acked} commands acknowledged over {ITERATIONS} bursts"
    );
}

/// A corrupt or truncated APTPL file: the daemon does not start and says which file; with the
/// file restored it starts and the registration is back.
#[tokio::test]
async fn corrupt_aptpl_file_refuses_start() {
    let mut rig = Rig::new();
    let a = rig.login("A", "a", ISID1, false).await;
    let r = run("REGISTER", a.s.pr_register(0, 0, KA, &aptpl())).await;
    ok(&r, "A REGISTER APTPL=1");
    let file = rig.aptpl_file();
    let good = std::fs::read(&file).expect("the APTPL file exists after REGISTER APTPL=1");
    drop(a);
    rig.d.kill9();
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    for (what, bytes) in [
        ("garbage", b"{ this is not an APTPL file".to_vec()),
        ("truncated", good[..good.len() / 2].to_vec()),
        ("empty", Vec::new()),
    ] {
        std::fs::write(&file, &bytes).unwrap();
        let seen = rig.d.log_tail(usize::MAX).lines().count();
        let st = rig.d.restart_refused();
        assert!(!st.success(), "{what} APTPL file: daemon exit status {st}");
        // Only what this start wrote (the log is appended across starts).
        let log = rig.d.log_tail(usize::MAX);
        let new: Vec<&str> = log.lines().skip(seen).collect();
        assert!(
            new.iter().any(|l| l.contains(&name)),
            "{what} APTPL file: the daemon's error does not name {name}:\n{}",
            new.join("\n")
        );
    }
    std::fs::write(&file, &good).unwrap();
    rig.d.restart();
    let a = rig.login("A after restore", "a", ISID1, false).await;
    let k = guard("READ KEYS", a.s.pr_read_keys(0)).await.unwrap();
    assert_eq!(k.keys, vec![KA], "registration after the file was restored");
}
