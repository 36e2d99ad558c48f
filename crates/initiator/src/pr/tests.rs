//! Unit tests of the PR encoders and parsers: byte-exact layouts and refused malformations.

use super::prin::*;
use super::prout::*;
use super::transport_id::*;
use super::*;

const ISID: [u8; 6] = [0x80, 0x00, 0x49, 0x4c, 0x00, 0x0A];

#[test]
fn cdbs_are_spc4_layouts() {
    assert_eq!(
        prout_cdb(out_sa::PREEMPT_AND_ABORT, 0, 7, 0x0102_0304),
        [0x5f, 0x05, 0x07, 0, 0, 1, 2, 3, 4, 0]
    );
    // SCOPE in the high nibble, TYPE low; SA masked to 5 bits.
    assert_eq!(
        prout_cdb(0x21, 0xf, 3, 24),
        [0x5f, 0x01, 0xf3, 0, 0, 0, 0, 0, 24, 0]
    );
    // TYPE masked to 4 bits.
    assert_eq!(prout_cdb(1, 0, 0x17, 0)[2], 0x07);
    assert_eq!(
        prin_cdb(in_sa::READ_FULL_STATUS, 0x1234),
        [0x5e, 0x03, 0, 0, 0, 0, 0, 0x12, 0x34, 0]
    );
    assert_eq!(prin_cdb(0xE1, 8), [0x5e, 0x01, 0, 0, 0, 0, 0, 0, 8, 0]);
}

#[test]
fn basic_parameter_list_is_24_bytes() {
    let p = ProutParams {
        key: 0x0102_0304_0506_0708,
        sa_key: 0x1112_1314_1516_1718,
        spec_i_pt: false,
        all_tg_pt: true,
        aptpl: true,
        transport_ids: Vec::new(),
    };
    let mut want = vec![1, 2, 3, 4, 5, 6, 7, 8, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16];
    want.extend_from_slice(&[0x17, 0x18, 0, 0, 0, 0, 0x05, 0, 0, 0]);
    assert_eq!(p.encode(), want);
}

#[test]
fn spec_i_pt_appends_length_and_transport_ids() {
    let t0 = TransportId::iscsi("iqn.x:a");
    let t1 = TransportId::iscsi_port("iqn.x:b", ISID);
    let p = ProutParams {
        key: 0,
        sa_key: 9,
        spec_i_pt: true,
        all_tg_pt: false,
        aptpl: false,
        transport_ids: vec![t0.clone(), t1.clone()],
    };
    let e = p.encode();
    assert_eq!(e[20], 0x08);
    let tids = [t0.encode(), t1.encode()].concat();
    assert_eq!(&e[24..28], &(tids.len() as u32).to_be_bytes());
    assert_eq!(&e[28..], &tids[..]);
    // A raw (malformed) TransportID goes in verbatim.
    let raw = p.encode_with(&[0x45, 0, 0, 3, b'a', b'b', 0]);
    assert_eq!(&raw[24..], &[0, 0, 0, 7, 0x45, 0, 0, 3, b'a', b'b', 0]);
}

#[test]
fn iscsi_transport_ids_both_formats() {
    // Format 00b: "iqn.x:a" + NUL = 8 bytes, padded to the minimum of 20.
    let e = TransportId::iscsi("iqn.x:a").encode();
    assert_eq!(&e[..4], &[0x05, 0, 0, 20]);
    assert_eq!(&e[4..12], b"iqn.x:a\0");
    assert!(e[12..].iter().all(|&b| b == 0));
    assert_eq!(e.len(), 24);
    // Format 01b: name,i,0x<isid> NUL, padded to a multiple of 4.
    let name = "iqn.2026-11.org.example:host-one";
    let e = TransportId::iscsi_port(name, ISID).encode();
    let text = format!("{name},i,0x8000494c000a");
    let add = (text.len() + 1).next_multiple_of(4);
    assert_eq!(e[0], 0x45);
    assert_eq!(usize::from(u16::from_be_bytes([e[2], e[3]])), add);
    assert_eq!(&e[4..4 + text.len()], text.as_bytes());
    assert_eq!(e.len(), 4 + add);
    assert_eq!(
        TransportId::parse(&e).unwrap(),
        (TransportId::iscsi_port(name, ISID), e.len())
    );
    // Upper-case ISID digits parse too.
    let up = format!("{name},i,0x8000494C000A");
    let mut e2 = vec![0x45, 0, 0, 0];
    e2.extend_from_slice(up.as_bytes());
    e2.resize(4 + (up.len() + 1).next_multiple_of(4), 0);
    e2[3] = (e2.len() - 4) as u8;
    assert_eq!(
        TransportId::parse(&e2).unwrap().0,
        TransportId::iscsi_port(name, ISID)
    );
}

#[test]
fn transport_id_parser_refuses_malformed() {
    let good = TransportId::iscsi("iqn.x:a").encode();
    let mut no_nul = good.clone();
    no_nul[4..].fill(b'a');
    let mut odd_len = good.clone();
    odd_len[3] = 19;
    let mut bad_fmt = good.clone();
    bad_fmt[0] = 0x85;
    let mut dirty_pad = good.clone();
    dirty_pad[23] = 1;
    let mut no_sep = good.clone();
    no_sep[0] = 0x45;
    for bad in [
        &no_nul,
        &odd_len,
        &bad_fmt,
        &dirty_pad,
        &no_sep,
        &good[..10],
    ] {
        assert!(TransportId::parse(bad).is_err(), "{bad:?}");
    }
    let fc = [0u8; 24];
    assert_eq!(TransportId::parse(&fc).unwrap().1, 24);
    assert!(TransportId::parse(&fc[..23]).is_err());
}

#[test]
fn register_and_move_list() {
    let t = TransportId::iscsi_port("iqn.x:dst", ISID);
    let p = RegisterAndMoveParams {
        key: 1,
        sa_key: 2,
        unreg: true,
        aptpl: true,
        rtpi: 0x0203,
        transport_id: t.clone(),
    };
    let e = p.encode();
    let tid = t.encode();
    assert_eq!(&e[0..8], &1u64.to_be_bytes());
    assert_eq!(&e[8..16], &2u64.to_be_bytes());
    assert_eq!(&e[16..24], &[0, 0x03, 0x02, 0x03, 0, 0, 0, tid.len() as u8]);
    assert_eq!(&e[24..], &tid[..]);
    let p = RegisterAndMoveParams {
        unreg: false,
        aptpl: false,
        ..p
    };
    assert_eq!(p.encode()[17], 0);
}

#[test]
fn read_keys_and_reservation_parse() {
    let mut d = vec![0, 0, 0, 7, 0, 0, 0, 24];
    for k in [1u64, 2, 3] {
        d.extend_from_slice(&k.to_be_bytes());
    }
    let rk = ReadKeys::parse(&d).unwrap();
    assert_eq!((rk.generation, rk.additional_length), (7, 24));
    assert_eq!(rk.keys, vec![1, 2, 3]);
    // Truncated by the allocation length: the count still says three.
    assert_eq!(ReadKeys::parse(&d[..16]).unwrap().keys, vec![1]);
    d[7] = 20;
    assert!(ReadKeys::parse(&d).is_err());

    let mut r = vec![0, 0, 1, 0, 0, 0, 0, 16];
    r.extend_from_slice(&0xabu64.to_be_bytes());
    r.extend_from_slice(&[0, 0, 0, 0, 0, 0x05, 0, 0]);
    let rr = ReadReservation::parse(&r).unwrap();
    assert_eq!(rr.generation, 256);
    assert_eq!(
        rr.reservation,
        Some(Reservation {
            key: 0xab,
            scope: 0,
            pr_type: 5
        })
    );
    assert_eq!(
        ReadReservation::parse(&[0, 0, 0, 1, 0, 0, 0, 0])
            .unwrap()
            .reservation,
        None
    );
    assert!(ReadReservation::parse(&[0, 0, 0, 1, 0, 0, 0, 8]).is_err());
}

#[test]
fn capabilities_parse() {
    let d = [0, 8, 0x1d, 0x91, 0xea, 0x01, 0, 0];
    let c = Capabilities::parse(&d).unwrap();
    assert!(c.crh && c.sip_c && c.atp_c && c.ptpl_c && !c.rlr_c);
    assert!(c.tmv && c.ptpl_a);
    assert_eq!(c.allow_commands, 1);
    assert!(PrType::ALL.iter().all(|&t| c.supports(t)));
    let d = [0, 8, 0, 0, 0x02, 0x00, 0, 0];
    let c = Capabilities::parse(&d).unwrap();
    assert!(c.supports(PrType::WriteExclusive));
    assert!(!c.supports(PrType::ExclusiveAccessAllRegistrants));
    assert!(Capabilities::parse(&[0, 6, 0, 0, 0, 0]).is_err());
}

#[test]
fn full_status_parse() {
    let t0 = TransportId::iscsi_port("iqn.x:a", ISID);
    let t1 = TransportId::iscsi("iqn.x:b");
    let mut body = Vec::new();
    for (key, flags, st, rtpi, t) in [(5u64, 0x01u8, 0x03u8, 2u16, &t0), (6, 0x02, 0, 0, &t1)] {
        let tid = t.encode();
        body.extend_from_slice(&key.to_be_bytes());
        body.extend_from_slice(&[0, 0, 0, 0, flags, st, 0, 0, 0, 0]);
        body.extend_from_slice(&rtpi.to_be_bytes());
        body.extend_from_slice(&(tid.len() as u32).to_be_bytes());
        body.extend_from_slice(&tid);
    }
    let mut d = vec![0, 0, 0, 9];
    d.extend_from_slice(&(body.len() as u32).to_be_bytes());
    d.extend_from_slice(&body);
    let fs = FullStatus::parse(&d).unwrap();
    assert_eq!(fs.generation, 9);
    assert_eq!(
        fs.descriptors,
        vec![
            FullStatusDescriptor {
                key: 5,
                all_tg_pt: false,
                r_holder: true,
                scope: 0,
                pr_type: 3,
                rtpi: 2,
                transport_id: t0
            },
            FullStatusDescriptor {
                key: 6,
                all_tg_pt: true,
                r_holder: false,
                scope: 0,
                pr_type: 0,
                rtpi: 0,
                transport_id: t1
            }
        ]
    );
    assert_eq!(fs.holders().count(), 1);
    // Cut short of its ADDITIONAL LENGTH, or a descriptor overrunning it: refused.
    assert!(FullStatus::parse(&d[..d.len() - 1]).is_err());
    let mut over = d.clone();
    over[7] -= 4;
    assert!(FullStatus::parse(&over[..over.len() - 4]).is_err());
}

#[test]
fn types_and_codes() {
    for t in PrType::ALL {
        assert_eq!(PrType::from_code(t.code()), Some(t));
    }
    assert_eq!(PrType::from_code(2), None);
    assert_eq!(PrType::from_code(4), None);
    assert!(PrType::ExclusiveAccessAllRegistrants.all_registrants());
    assert!(PrType::ExclusiveAccessAllRegistrants.exclusive_access());
    assert!(!PrType::WriteExclusive.registrants_have_access());
    assert_eq!(isid_hex(ISID), "8000494c000a");
}
