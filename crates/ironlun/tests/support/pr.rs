//! The persistent-reservation rig of e2e_pr and e2e_aptpl (SPC-4 §5.13): a daemon with a
//! second target port (`tpgt_2`) on the same RAM disk, I_T nexuses logged in through either
//! port, and the checks both binaries make on PR commands.

use std::future::Future;
use std::net::SocketAddr;
use std::ops::Range;

use ironlun_initiator::pr::{FullStatus, FullStatusDescriptor, PrType, Reservation, TransportId};
use ironlun_initiator::scsi_codes::status;
use ironlun_initiator::{CommandResult, Error, LoginConfig, Session};

use super::{guard, iqn, login_at, pattern, Daemon, BLOCK, TARGET, TPG, TPG2};

/// Daemon portals (tpgt_1) of the PR binaries; tpgt_2 portals come from [`PR_PORTS2`].
pub const PR_PORTS: Range<u16> = 3540..3565;
pub const PR_PORTS2: Range<u16> = 3565..3590;

/// The PR tests' initiator ports: A and A2 (one initiator, two ISIDs), B and C.
pub const ISID1: [u8; 6] = [0x80, 0x00, 0x49, 0x4c, 0x00, 0x01];
pub const ISID2: [u8; 6] = [0x80, 0x00, 0x49, 0x4c, 0x00, 0x02];
pub const ISID_B: [u8; 6] = [0x80, 0x00, 0x49, 0x4c, 0x0b, 0x01];
pub const ISID_C: [u8; 6] = [0x40, 0x00, 0x12, 0x34, 0x0c, 0x01];

/// What READ RESERVATION reports for a reservation of `pr_type` held with `key` (scope 0,
/// SPC-4 §6.15.3; key 0 for an All Registrants type).
pub fn held_by(key: u64, pr_type: u8) -> Option<Reservation> {
    Some(Reservation {
        key,
        scope: 0,
        pr_type,
    })
}

/// A daemon with [`TPG2`] added; the RTPIs of both ports.
pub struct Rig {
    pub d: Daemon,
    pub addr2: SocketAddr,
    pub rtpi1: u16,
    pub rtpi2: u16,
}

/// The PR tests' cast: A and A2 (initiator `a`, two ISIDs) and B through tpgt_1, C through
/// tpgt_2.
pub struct Cast {
    pub a: Nexus,
    pub a2: Nexus,
    pub b: Nexus,
    pub c: Nexus,
}

/// One I_T nexus: a logged-in session and who it is.
pub struct Nexus {
    pub s: Session,
    pub label: String,
    pub name: String,
    pub isid: [u8; 6],
    pub rtpi: u16,
}

impl Rig {
    pub fn new() -> Rig {
        Rig::with(|_| {})
    }

    /// `prepare` runs before tpgt_2 exists (device attributes frozen while exported).
    pub fn with(prepare: impl FnOnce(&Daemon)) -> Rig {
        let d = Daemon::start_in(PR_PORTS);
        prepare(&d);
        let addr2 = d.add_tpg2(PR_PORTS2);
        let rtpi1 = d.rtpi(TPG);
        let rtpi2 = d.rtpi(TPG2);
        assert_ne!(rtpi1, rtpi2, "two target ports with one RTPI");
        Rig {
            d,
            addr2,
            rtpi1,
            rtpi2,
        }
    }

    /// Log in `who` with `isid` through tpgt_1 (or tpgt_2), the config passed through `f`.
    pub async fn login_cfg(
        &self,
        label: &str,
        who: &str,
        isid: [u8; 6],
        tpg2: bool,
        f: impl FnOnce(LoginConfig) -> LoginConfig,
    ) -> Nexus {
        let name = iqn(who);
        let cfg = f(LoginConfig::normal(&name, TARGET).isid(isid));
        let (addr, rtpi) = if tpg2 {
            (self.addr2, self.rtpi2)
        } else {
            (self.d.addr(), self.rtpi1)
        };
        let s = login_at(addr, cfg, 0).await;
        Nexus {
            s,
            label: label.to_string(),
            name,
            isid,
            rtpi,
        }
    }

    pub async fn login(&self, label: &str, who: &str, isid: [u8; 6], tpg2: bool) -> Nexus {
        self.login_cfg(label, who, isid, tpg2, |c| c).await
    }

    pub async fn cast(&self) -> Cast {
        Cast {
            a: self.login("A", "a", ISID1, false).await,
            a2: self.login("A2", "a", ISID2, false).await,
            b: self.login("B", "b", ISID_B, false).await,
            c: self.login("C", "c", ISID_C, true).await,
        }
    }
}

impl Nexus {
    /// This nexus' initiator port as a TransportID (SPC-4 §7.6.4).
    pub fn port(&self) -> TransportId {
        TransportId::iscsi_port(&self.name, self.isid)
    }

    /// `op` as done by this nexus, for messages.
    pub fn what(&self, op: &str) -> String {
        format!("{} {op}", self.label)
    }

    pub async fn full_status(&self) -> FullStatus {
        guard("READ FULL STATUS", self.s.pr_read_full_status(0))
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", self.what("READ FULL STATUS")))
    }

    pub async fn reservation(&self) -> Option<Reservation> {
        guard("READ RESERVATION", self.s.pr_read_reservation(0))
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", self.what("READ RESERVATION")))
            .reservation
    }

    /// WRITE(16) of one block at `lba`.
    pub async fn write(&self, lba: u64) -> CommandResult {
        let data = pattern(lba as u32, BLOCK as usize);
        run(
            &self.what("WRITE(16)"),
            self.s.write16(0, lba, data, BLOCK, false),
        )
        .await
    }
}

/// What READ FULL STATUS must say about one registration of `n`.
pub fn desc(key: u64, n: &Nexus, holder: Option<PrType>) -> FullStatusDescriptor {
    FullStatusDescriptor {
        key,
        all_tg_pt: false,
        r_holder: holder.is_some(),
        scope: 0,
        pr_type: holder.map_or(0, |t| t.code()),
        rtpi: n.rtpi,
        transport_id: n.port(),
    }
}

/// A command that must get an answer (any status) within the guard's time.
pub async fn run(
    what: &str,
    f: impl Future<Output = Result<CommandResult, Error>>,
) -> CommandResult {
    guard(what, f)
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// A command's status and sense, for messages.
pub fn show(r: &CommandResult) -> String {
    match r.sense {
        Some(s) => format!(
            "status {:#04x} sense {:02x}/{:02x}/{:02x} field pointer {:?}",
            r.status, s.key, s.asc.asc, s.asc.ascq, s.field_pointer
        ),
        None => format!(
            "status {:#04x} (no sense), response {}",
            r.status, r.response
        ),
    }
}

#[track_caller]
pub fn ok(r: &CommandResult, what: &str) {
    assert!(
        r.status == status::GOOD && r.response == 0,
        "{what}: expected GOOD, got {}",
        show(r)
    );
}

#[track_caller]
pub fn conflict(r: &CommandResult, what: &str) {
    assert_eq!(
        r.status,
        status::RESERVATION_CONFLICT,
        "{what}: expected RESERVATION CONFLICT, got {}",
        show(r)
    );
}
