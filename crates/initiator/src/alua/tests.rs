//! Unit tests of the ALUA parsers, encoders, ranking and re-read triggers.

use bytes::Bytes;
use ironlun_scsi::sense::Asc;
use ironlun_scsi::{status, Sense};

use super::path::{alua_priority, needs_reread, rank, PathChooser, PathState};
use super::rtpg::{rtpg_cdb, stpg_cdb, stpg_params, PortGroup, Rtpg, RtpgFormat, StpgDescriptor};
use super::vpd::{Association, Designator, DeviceIdentification, Tpgs};
use super::{status_code, AccessState, SupportedStates};
use crate::command::{CommandResult, Residual};

fn pg(pref: bool, state: AccessState, id: u16, st: u8, ports: &[u16]) -> PortGroup {
    PortGroup {
        pref,
        state,
        supported: SupportedStates::from_byte(0xDF),
        group_id: id,
        status: st,
        vendor_specific: 0,
        ports: ports.to_vec(),
    }
}

#[test]
fn cdbs_are_byte_exact() {
    assert_eq!(
        rtpg_cdb(false, 0x0102_0304),
        [0xA3, 0x0A, 0, 0, 0, 0, 1, 2, 3, 4, 0, 0]
    );
    assert_eq!(
        rtpg_cdb(true, 8),
        [0xA3, 0x2A, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0]
    );
    assert_eq!(stpg_cdb(12), [0xA4, 0x0A, 0, 0, 0, 0, 0, 0, 0, 12, 0, 0]);
}

#[test]
fn stpg_parameter_list_is_byte_exact() {
    let p = stpg_params(&[
        StpgDescriptor::Primary {
            group: 0x0102,
            state: AccessState::ActiveNonOptimized,
        },
        StpgDescriptor::Offline { rtpi: 7 },
        StpgDescriptor::Primary {
            group: 2,
            state: AccessState::Standby,
        },
    ]);
    assert_eq!(
        p,
        vec![0, 0, 0, 0, 0x01, 0, 0x01, 0x02, 0x0E, 0, 0, 7, 0x02, 0, 0, 2]
    );
}

#[test]
fn rtpg_length_only_parses_every_field() {
    let d = [
        0, 0, 0, 24, // RETURN DATA LENGTH
        0x81, 0xDF, 0, 1, 0, 0x01, 0x5A, 2, // PREF, ANO, every state, group 1
        0, 0, 0, 3, 0, 0, 0, 4, // RTPIs 3, 4
        0x02, 0x05, 0, 2, 0, 0x02, 0, 0, // Standby, S_SUP|AO_SUP, group 2, no ports
    ];
    let r = Rtpg::parse(&d, false).unwrap();
    assert_eq!(r.format, RtpgFormat::LengthOnly);
    assert!(!r.truncated);
    assert_eq!(r.return_data_length, 24);
    let g = &r.groups[0];
    assert!(g.pref);
    assert_eq!(g.state, AccessState::ActiveNonOptimized);
    assert_eq!(
        g.supported,
        SupportedStates {
            transitioning: true,
            offline: true,
            lba_dependent: true,
            unavailable: true,
            standby: true,
            active_nonoptimized: true,
            active_optimized: true,
        }
    );
    assert_eq!(
        (g.group_id, g.status, g.vendor_specific),
        (1, status_code::ALTERED_BY_STPG, 0x5A)
    );
    assert_eq!(g.ports, vec![3, 4]);
    let g2 = &r.groups[1];
    assert_eq!(
        (g2.pref, g2.state, g2.group_id),
        (false, AccessState::Standby, 2)
    );
    assert_eq!(g2.status, status_code::ALTERED_BY_IMPLICIT);
    assert_eq!(g2.supported.to_byte(), 0x05);
    assert!(g2.ports.is_empty());
    assert_eq!(r.group_of_port(4).map(|g| g.group_id), Some(1));
    assert_eq!(Rtpg::encode(RtpgFormat::LengthOnly, &r.groups), d.to_vec());
}

#[test]
fn rtpg_extended_header_carries_implicit_transition_time() {
    let groups = vec![pg(false, AccessState::Transitioning, 9, 0, &[1])];
    let d = Rtpg::encode(
        RtpgFormat::Extended {
            implicit_transition_secs: 30,
        },
        &groups,
    );
    assert_eq!(&d[..8], &[0, 0, 0, 16, 0x10, 30, 0, 0]);
    let r = Rtpg::parse(&d, true).unwrap();
    assert_eq!(
        r.format,
        RtpgFormat::Extended {
            implicit_transition_secs: 30
        }
    );
    assert_eq!(r.groups, groups);
    // A target that ignores the request answers length-only: byte 4 is then a descriptor.
    let lo = Rtpg::encode(RtpgFormat::LengthOnly, &groups);
    assert_eq!(Rtpg::parse(&lo, true).unwrap().groups, groups);
    // LIO's short RETURN DATA LENGTH (descriptor bytes only) is caught.
    let mut quirk = d.clone();
    quirk[3] = 12;
    assert!(Rtpg::parse(&quirk, true).is_err());
    // Reserved format type.
    let mut bad = d;
    bad[4] = 0x20;
    assert!(Rtpg::parse(&bad, true).is_err());
}

#[test]
fn rtpg_truncation_and_overruns() {
    let groups = vec![
        pg(false, AccessState::ActiveOptimized, 1, 0, &[1, 2]),
        pg(true, AccessState::Standby, 2, 2, &[3]),
    ];
    let d = Rtpg::encode(RtpgFormat::LengthOnly, &groups);
    // Cut inside the second descriptor: the first is kept, truncation reported.
    let r = Rtpg::parse(&d[..d.len() - 2], false).unwrap();
    assert!(r.truncated);
    assert_eq!(r.groups, groups[..1].to_vec());
    // Header only.
    let r = Rtpg::parse(&d[..4], false).unwrap();
    assert!(r.truncated && r.groups.is_empty());
    assert!(Rtpg::parse(&d[..3], false).is_err());
    // Port count reaching past RETURN DATA LENGTH.
    let mut bad = d.clone();
    bad[4 + 7] = 6;
    assert!(Rtpg::parse(&bad, false).is_err());
    // RETURN DATA LENGTH ending inside a descriptor header.
    let mut bad = d;
    bad[3] -= 18;
    assert!(Rtpg::parse(&bad, false).is_err());
}

fn vpd83() -> Vec<u8> {
    let mut body = Vec::new();
    // NAA 6, binary, LU.
    body.extend_from_slice(&[0x01, 0x03, 0, 16, 0x60, 0x01, 0x40, 0x5a]);
    body.extend_from_slice(&[0xbc, 0xde, 0xf0, 0x12, 0x34, 0x56, 0x78, 0x9a, 0, 0, 0, 0]);
    // T10 vendor ID, ASCII, LU.
    body.extend_from_slice(&[0x02, 0x01, 0, 12]);
    body.extend_from_slice(b"IRONLUN ab:1");
    // Relative target port 0x0102, iSCSI, PIV, port.
    body.extend_from_slice(&[0x51, 0x94, 0, 4, 0, 0, 0x01, 0x02]);
    // Target port group 2.
    body.extend_from_slice(&[0x51, 0x95, 0, 4, 0, 0, 0, 2]);
    // LU group 0x0a0b, LU association.
    body.extend_from_slice(&[0x01, 0x06, 0, 4, 0, 0, 0x0a, 0x0b]);
    // SCSI name string, UTF-8, port: "iqn.x,t,0x0001" (14 + NUL -> 16).
    body.extend_from_slice(&[0x53, 0x98, 0, 16]);
    body.extend_from_slice(b"iqn.x,t,0x0001\0\0");
    // SCSI name string, target device: "iqn.x" (5 + NUL -> 8).
    body.extend_from_slice(&[0x53, 0xA8, 0, 8]);
    body.extend_from_slice(b"iqn.x\0\0\0");
    // Unknown type 0xA (UUID), kept raw.
    body.extend_from_slice(&[0x01, 0x0A, 0, 2, 0xEE, 0xFF]);
    let mut d = vec![0x00, 0x83];
    d.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
    d.extend_from_slice(&body);
    d
}

#[test]
fn vpd83_designators_parse() {
    let id = DeviceIdentification::parse(&vpd83()).unwrap();
    assert_eq!(id.designations.len(), 8);
    assert_eq!(id.relative_target_port(), Some(0x0102));
    assert_eq!(id.target_port_group(), Some(2));
    assert_eq!(id.lu_group(), Some(0x0a0b));
    assert_eq!(id.naa().map(|n| n[0]), Some(0x60));
    assert_eq!(
        id.scsi_name(Association::TargetPort).as_deref(),
        Some("iqn.x,t,0x0001")
    );
    assert_eq!(
        id.scsi_name(Association::TargetDevice).as_deref(),
        Some("iqn.x")
    );
    let rtp = &id.designations[2];
    assert_eq!(
        (
            rtp.protocol_id,
            rtp.code_set,
            rtp.piv,
            rtp.association,
            rtp.designator_type
        ),
        (5, 1, true, Association::TargetPort, 4)
    );
    assert_eq!(
        id.designations[1].designator,
        Designator::T10VendorId {
            vendor: "IRONLUN ".into(),
            specific: b"ab:1".to_vec()
        }
    );
    assert_eq!(
        id.designations[7].designator,
        Designator::Other {
            kind: 0xA,
            bytes: vec![0xEE, 0xFF]
        }
    );
}

#[test]
fn vpd83_rejects_inconsistencies() {
    let d = vpd83();
    // Page length beyond the data.
    assert!(DeviceIdentification::parse(&d[..d.len() - 1]).is_err());
    // Wrong page.
    let mut bad = d.clone();
    bad[1] = 0x80;
    assert!(DeviceIdentification::parse(&bad).is_err());
    // A descriptor length overrunning the page.
    let mut bad = d.clone();
    bad[4 + 3] = 200;
    assert!(DeviceIdentification::parse(&bad).is_err());
    // Relative target port designator of the wrong length.
    let bad = [0, 0x83, 0, 7, 0x51, 0x94, 0, 3, 0, 0, 1];
    assert!(DeviceIdentification::parse(&bad).is_err());
    // SCSI name string without NUL.
    let bad = [0, 0x83, 0, 8, 0x53, 0x98, 0, 4, b'i', b'q', b'n', b'.'];
    assert!(DeviceIdentification::parse(&bad).is_err());
    // Reserved NAA.
    let bad = [0, 0x83, 0, 12, 0x01, 0x03, 0, 8, 0x70, 0, 0, 0, 0, 0, 0, 0];
    assert!(DeviceIdentification::parse(&bad).is_err());
    // Empty page is fine.
    assert!(DeviceIdentification::parse(&[0, 0x83, 0, 0])
        .unwrap()
        .designations
        .is_empty());
}

#[test]
fn tpgs_bits() {
    let mut inq = vec![0u8; 36];
    inq[5] = 0x80 | 0x30;
    assert_eq!(
        Tpgs::from_inquiry(&inq).unwrap(),
        Tpgs {
            implicit: true,
            explicit: true
        }
    );
    inq[5] = 0x10;
    assert_eq!(
        Tpgs::from_inquiry(&inq).unwrap(),
        Tpgs {
            implicit: true,
            explicit: false
        }
    );
    assert!(Tpgs::from_inquiry(&inq[..5]).is_err());
}

#[test]
fn access_state_codes_round_trip() {
    for c in 0..16u8 {
        assert_eq!(AccessState::from_code(c).code(), c);
    }
    assert_eq!(AccessState::Standby.not_ready_ascq(), Some(0x0B));
    assert_eq!(AccessState::ActiveNonOptimized.not_ready_ascq(), None);
}

fn path(state: AccessState, pref: bool) -> Option<PathState> {
    Some(PathState {
        rtpi: 1,
        group_id: 1,
        state,
        pref,
    })
}

#[test]
fn ranking_prefers_ao_then_pref_and_skips_unusable() {
    use AccessState::*;
    let paths = [
        path(ActiveNonOptimized, true),
        path(Standby, true),
        path(ActiveOptimized, false),
        None,
        path(ActiveNonOptimized, false),
        path(ActiveOptimized, true),
        path(Transitioning, false),
        path(Unavailable, false),
        path(Offline, false),
        path(LbaDependent, false),
    ];
    assert_eq!(rank(&paths), vec![5, 2, 0, 4]);
    assert_eq!(rank(&[path(Standby, false), None]), Vec::<usize>::new());
    // multipath-tools: PREF adds nothing to an optimized group (unless exclusive_pref_bit).
    assert_eq!(path(ActiveOptimized, true).unwrap().priority(), 50);
    assert_eq!(alua_priority(ActiveOptimized, true, true), 130);
    assert_eq!(alua_priority(ActiveNonOptimized, true, false), 90);
    assert_eq!(alua_priority(LbaDependent, false, false), 5);
    assert_eq!(alua_priority(Transitioning, true, false), 80);
    assert_eq!(path(ActiveNonOptimized, false).unwrap().priority(), 10);
    assert_eq!(path(Standby, false).unwrap().priority(), 1);
    assert_eq!(path(Unavailable, true).unwrap().priority(), 80);
}

fn checked(key: u8, asc: u8, ascq: u8) -> CommandResult {
    CommandResult {
        response: 0,
        status: status::CHECK_CONDITION,
        sense: Some(Sense::new(key, Asc::new(asc, ascq))),
        sense_bytes: Bytes::new(),
        data_in: Bytes::new(),
        residual: Residual::None,
        data_in_pdus: 0,
    }
}

#[test]
fn reread_triggers() {
    for (k, a, q) in [
        (6, 0x2A, 0x06),
        (6, 0x2A, 0x07),
        (6, 0x3F, 0x03),
        (2, 0x04, 0x0A),
        (2, 0x04, 0x0B),
        (2, 0x04, 0x0C),
        (2, 0x04, 0x12),
    ] {
        assert!(needs_reread(&checked(k, a, q)), "{k:x}/{a:x}/{q:x}");
    }
    for (k, a, q) in [
        (6, 0x29, 0x00),
        (2, 0x04, 0x00),
        (5, 0x24, 0x00),
        (6, 0x2A, 0x03),
    ] {
        assert!(!needs_reread(&checked(k, a, q)), "{k:x}/{a:x}/{q:x}");
    }
    let mut good = checked(6, 0x2A, 0x06);
    good.status = status::GOOD;
    assert!(!needs_reread(&good));
}

#[tokio::test]
async fn chooser_goes_stale_on_reread_triggers_only() {
    let mut c = PathChooser::new(0, Vec::new());
    assert!(c.is_stale());
    // Refreshing (no paths to read here) makes it current.
    c.refresh().await;
    assert!(!c.observe(&checked(5, 0x24, 0)));
    assert!(!c.is_stale());
    assert!(c.observe(&checked(2, 0x04, 0x0B)));
    assert!(c.is_stale());
}
