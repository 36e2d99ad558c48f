//! End to end: a removable LU (`attrib/removable 1`) over iSCSI from two sessions. PREVENT
//! MEDIUM REMOVAL by one session refuses the other's eject (and its own) with MEDIUM REMOVAL
//! PREVENTED until that session logs out (I_T nexus loss ends its prevention, SBC-3 §5.5);
//! then the eject works, medium access gets NOT READY, MEDIUM NOT PRESENT, and a load raises
//! MEDIUM MAY HAVE CHANGED on the other session. Ports 3760-3779.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use ironlun_initiator::iscsi::pdu::{logout, task_attr};
use ironlun_initiator::scsi_codes::status;
use ironlun_initiator::{CommandResult, LoginConfig, Session};
use support::*;

const TGT: &str = "iqn.2026-11.org.ironlun:media";
const DEV: &str = "core/rd_mcp_1/removable0";

async fn cmd(s: &Session, cdb: &[u8], data: Option<Vec<u8>>, e: u32) -> CommandResult {
    guard("command", s.command(0, cdb, data, e, task_attr::SIMPLE))
        .await
        .unwrap()
}

/// (key, asc, ascq) of a CHECK CONDITION.
fn kaq(r: &CommandResult) -> (u8, u8, u8) {
    assert_eq!(r.status, status::CHECK_CONDITION, "{r:?}");
    let s = r.sense.as_ref().expect("sense");
    (s.key, s.asc.asc, s.asc.ascq)
}

const EJECT: [u8; 6] = [0x1B, 0, 0, 0, 0x02, 0];
const LOAD: [u8; 6] = [0x1B, 0, 0, 0, 0x03, 0];
const PREVENT: [u8; 6] = [0x1E, 0, 0, 0, 0x01, 0];
const TUR: [u8; 6] = [0; 6];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prevent_by_one_session_blocks_eject_by_the_other_until_logout() {
    let d = Daemon::start_in(3760..3770);
    d.cli(&["create", DEV, "size=4M"]);
    d.cli(&["set", &format!("{DEV}/attrib/removable"), "1"]);
    let (_, addr) = d.add_target(TGT, DEV, 3770..3780);
    let s1 = login_at(addr, LoginConfig::normal(&iqn("media-1"), TGT), 0).await;
    let s2 = login_at(addr, LoginConfig::normal(&iqn("media-2"), TGT), 0).await;
    let s3 = login_at(addr, LoginConfig::normal(&iqn("media-3"), TGT), 0).await;

    let inq = cmd(&s1, &[0x12, 0, 0, 0, 36, 0], None, 36).await;
    assert_eq!(inq.clone().good().unwrap()[1] & 0x80, 0x80, "RMB");

    assert_eq!(cmd(&s1, &PREVENT, None, 0).await.status, status::GOOD);
    assert_eq!(kaq(&cmd(&s2, &EJECT, None, 0).await), (0x05, 0x53, 0x02));
    assert_eq!(kaq(&cmd(&s1, &EJECT, None, 0).await), (0x05, 0x53, 0x02));
    assert_eq!(cmd(&s2, &TUR, None, 0).await.status, status::GOOD);

    let r = guard("logout", s1.logout(logout::CLOSE_SESSION))
        .await
        .unwrap();
    assert_eq!(r.response, logout::RESP_SUCCESS);

    // The target ends the session's I_T nexus after the logout response; allow it a moment.
    let mut ejected = false;
    for _ in 0..100 {
        let r = cmd(&s2, &EJECT, None, 0).await;
        if r.status == status::GOOD {
            ejected = true;
            break;
        }
        assert_eq!(kaq(&r), (0x05, 0x53, 0x02));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(ejected, "prevention outlived the logout");
    assert_eq!(kaq(&cmd(&s2, &TUR, None, 0).await), (0x02, 0x3A, 0x00));
    let rd = [0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0];
    assert_eq!(kaq(&cmd(&s2, &rd, None, BLOCK).await), (0x02, 0x3A, 0x00));

    // The other session learns of the load from a unit attention.
    assert_eq!(cmd(&s2, &LOAD, None, 0).await.status, status::GOOD);
    assert_eq!(cmd(&s2, &TUR, None, 0).await.status, status::GOOD);
    assert_eq!(kaq(&cmd(&s3, &TUR, None, 0).await), (0x06, 0x28, 0x00));
    assert_eq!(cmd(&s3, &rd, None, BLOCK).await.status, status::GOOD);
}
