//! SPC-4 commands through the public surface: INQUIRY / VPD, REPORT LUNS, REQUEST SENSE,
//! MODE SENSE / SELECT, RSOC, RSTMF, RTPG, CDB validation, unmapped LUNs, attributes.

mod common;

use std::sync::Arc;

use common::*;
use ironlun_engine::scsi::sense::{asc, key};
use ironlun_engine::scsi::{status, Sense};
use ironlun_engine::*;

#[test]
fn standard_inquiry_is_96_bytes_spc4_with_implicit_and_explicit_alua_and_cmdque() {
    let r = rig();
    let d = cmd_in(&r.a, &[0x12, 0, 0, 0x01, 0x00, 0], 256);
    assert_eq!(d.len(), 96);
    assert_eq!(d[0], 0x00);
    assert_eq!(d[2], 0x06);
    assert_eq!(d[3] & 0x0F, 0x02);
    assert_eq!(d[4] as usize, 96 - 5);
    assert_eq!(
        d[5] & 0x30,
        0x30,
        "TPGS implicit and explicit (LIO default)"
    );
    assert_eq!(d[7] & 0x02, 0x02, "CmdQue");
    assert_eq!(&d[8..16], b"IRONLUN ");
    assert_eq!(&d[16..32], b"ramdisk0        ");
    assert_eq!(
        &d[58..66],
        &[0x00, 0xA0, 0x09, 0x60, 0x04, 0x60, 0x04, 0xC0]
    );
}

#[test]
fn inquiry_allocation_length_truncates_and_reports_underflow() {
    let r = rig();
    let resp = run(
        &r.a,
        0,
        &[0x12, 0, 0, 0, 5, 0],
        DataDirection::Read,
        255,
        vec![],
    );
    assert_eq!(resp.status, status::GOOD);
    assert_eq!(resp.data_in.len(), 5);
    assert_eq!(resp.residual, Residual::Underflow(250));
    // Expected length smaller than the allocation length: overflow.
    let resp = run(
        &r.a,
        0,
        &[0x12, 0, 0, 0, 96, 0],
        DataDirection::Read,
        36,
        vec![],
    );
    assert_eq!(resp.data_in.len(), 36);
    assert_eq!(resp.residual, Residual::Overflow(60));
}

#[test]
fn inquiry_page_code_without_evpd_points_at_page_code() {
    let r = rig();
    let s = cmd_fail(&r.a, &[0x12, 0, 0x80, 0, 255, 0]);
    assert_eq!(kaq(&s), (5, 0x24, 0));
    assert_eq!(pointer(&s), Some((true, 2, Some(7))));
    let s = cmd_fail(&r.a, &[0x12, 1, 0xC7, 0, 255, 0]);
    assert_eq!(pointer(&s), Some((true, 2, Some(7))));
}

#[test]
fn vpd_pages_list_serial_and_lio_style_identifiers() {
    let r = rig();
    let d = cmd_in(&r.a, &[0x12, 1, 0x00, 0, 255, 0], 255);
    assert_eq!(&d[4..], &[0x00, 0x80, 0x83, 0x86, 0xB0, 0xB1, 0xB2]);
    let d = cmd_in(&r.a, &[0x12, 1, 0x80, 0, 255, 0], 255);
    assert_eq!(&d[4..], config().unit_serial.as_bytes());
    let d = cmd_in(&r.a, &[0x12, 1, 0x83, 0, 255, 0], 255);
    let len = u16::from_be_bytes([d[2], d[3]]) as usize;
    assert_eq!(len + 4, d.len());
    // NAA 6 from OUI 001405 and the serial's hex digits.
    assert_eq!(&d[4..8], &[0x01, 0x03, 0x00, 0x10]);
    assert_eq!(&d[8..12], &[0x60, 0x01, 0x40, 0x5d]);
    // Walk the descriptors: relative target port 1 and SCSI name strings present.
    let mut at = 4;
    let mut kinds = Vec::new();
    while at + 4 <= d.len() {
        kinds.push((d[at + 1] & 0x0F, d[at + 1] >> 4 & 3));
        if d[at + 1] & 0x0F == 4 {
            assert_eq!(&d[at + 4..at + 8], &[0, 0, 0, 1]);
        }
        at += 4 + d[at + 3] as usize;
    }
    assert_eq!(
        kinds,
        vec![(3, 0), (1, 0), (4, 1), (5, 1), (6, 0), (8, 1), (8, 2)]
    );
    let d = cmd_in(&r.a, &[0x12, 1, 0xB0, 0, 255, 0], 255);
    assert_eq!(d[3], 0x3C);
    let max = u32::from_be_bytes([d[8], d[9], d[10], d[11]]);
    assert_eq!(max, (8 << 20) / 512);
    let d = cmd_in(&r.a, &[0x12, 1, 0xB1, 0, 255, 0], 255);
    assert_eq!(d[5], 0);
    r.dev.set_attribute("is_nonrot", "1").expect("nonrot");
    let d = cmd_in(&r.a, &[0x12, 1, 0xB1, 0, 255, 0], 255);
    assert_eq!(d[5], 1);
}

#[test]
fn unmapped_lun_answers_inquiry_report_luns_and_request_sense_only() {
    let r = rig();
    let resp = run(
        &r.a,
        5,
        &[0x12, 0, 0, 0, 96, 0],
        DataDirection::Read,
        96,
        vec![],
    );
    assert_eq!(resp.status, status::GOOD);
    assert_eq!(resp.data_in[0], 0x7F);
    let resp = run(
        &r.a,
        5,
        &[0x03, 0, 0, 0, 18, 0],
        DataDirection::Read,
        18,
        vec![],
    );
    assert_eq!(resp.status, status::GOOD);
    let s = Sense::parse(&resp.data_in).expect("sense");
    assert_eq!(kaq(&s), (5, 0x25, 0));
    let resp = run(
        &r.a,
        5,
        &[0xA0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0],
        DataDirection::Read,
        256,
        vec![],
    );
    assert_eq!(resp.status, status::GOOD);
    assert_eq!(&resp.data_in[..4], &[0, 0, 0, 8]);
    let s = cmd_fail_with(&r.a, 5, &[0, 0, 0, 0, 0, 0], DataDirection::None, 0, vec![]);
    assert_eq!(kaq(&s), (5, 0x25, 0));
}

#[test]
fn report_luns_select_report_and_truncation() {
    let r = rig();
    let dev2 = Device::new(
        DeviceConfig {
            name: "d2".into(),
            unit_serial: "2".into(),
            ..config()
        },
        Mem::new(BS * 8, false),
    )
    .expect("dev2");
    r.port.add_lun(300, dev2).expect("lun 300");
    drain_ua(&r.a, 0);
    let d = cmd_in(&r.a, &[0xA0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0], 256);
    assert_eq!(&d[..4], &[0, 0, 0, 16]);
    assert_eq!(&d[8..16], &[0; 8]);
    assert_eq!(&d[16..24], &[0x41, 0x2C, 0, 0, 0, 0, 0, 0]);
    let d = cmd_in(&r.a, &[0xA0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0], 256);
    assert_eq!(d, vec![0; 8]);
    let d = cmd_in(&r.a, &[0xA0, 0, 2, 0, 0, 0, 0, 0, 0, 16, 0, 0], 256);
    assert_eq!(d.len(), 16);
    let s = cmd_fail(&r.a, &[0xA0, 0, 0x10, 0, 0, 0, 0, 0, 1, 0, 0, 0]);
    assert_eq!(pointer(&s), Some((true, 2, Some(7))));
}

#[test]
fn unsupported_opcodes_and_service_actions() {
    let r = rig();
    // UNMAP without emulate_tpu, PREVENT ALLOW on a fixed medium, LOG SENSE, vendor-specific.
    for op in [0x42, 0x1E, 0x4D, 0xC0] {
        let s = cmd_fail(&r.a, &[op, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(kaq(&s), (5, 0x20, 0), "opcode {op:#x}");
    }
    // GET LBA STATUS without emulate_tpu: unsupported service action of SERVICE ACTION IN(16).
    let s = cmd_fail(
        &r.a,
        &[0x9E, 0x12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 24, 0, 0],
    );
    assert_eq!(kaq(&s), (5, 0x24, 0));
    assert_eq!(pointer(&s), Some((true, 1, Some(4))));
}

#[test]
fn reserved_bits_naca_and_aca_are_invalid_fields() {
    let r = rig();
    // TEST UNIT READY byte 2 reserved.
    let s = cmd_fail(&r.a, &[0, 0, 0x01, 0, 0, 0]);
    assert_eq!(pointer(&s), Some((true, 2, Some(0))));
    // NACA in the CONTROL byte.
    let s = cmd_fail(&r.a, &[0, 0, 0, 0, 0, 0x04]);
    assert_eq!(pointer(&s), Some((true, 5, Some(2))));
    // RDPROTECT without protection information.
    let s = cmd_fail(&r.a, &[0x28, 0x20, 0, 0, 0, 0, 0, 0, 1, 0]);
    assert_eq!(kaq(&s), (5, 0x24, 0));
    assert_eq!(pointer(&s), Some((true, 1, Some(5))));
    let mut req = request(0, &[0, 0, 0, 0, 0, 0], DataDirection::None, 0, vec![]);
    req.attr = TaskAttr::Aca;
    let resp = r.a.execute(req);
    assert_eq!(resp.status, status::CHECK_CONDITION);
    let s = Sense::parse(&resp.sense).expect("sense");
    assert_eq!(kaq(&s), (5, 0x24, 0));
}

#[test]
fn request_sense_reports_no_sense_and_honours_desc() {
    let r = rig();
    let d = cmd_in(&r.a, &[0x03, 0, 0, 0, 252, 0], 252);
    assert_eq!(d.len(), 18);
    assert_eq!(d[0], 0x70);
    let d = cmd_in(&r.a, &[0x03, 1, 0, 0, 252, 0], 252);
    assert_eq!(d[0], 0x72);
    let s = Sense::parse(&d).expect("sense");
    assert_eq!(kaq(&s), (0, 0, 0));
}

fn mode_sense6(n: &Nexus, b1: u8, b2: u8, b3: u8) -> Vec<u8> {
    cmd_in(n, &[0x1A, b1, b2, b3, 255, 0], 255)
}

fn find_page(d: &[u8], start: usize, code: u8) -> Option<Vec<u8>> {
    let mut at = start;
    while at + 2 <= d.len() {
        let len = d[at + 1] as usize + 2;
        if d[at] & 0x3F == code {
            return d.get(at..at + len).map(<[u8]>::to_vec);
        }
        at += len;
    }
    None
}

#[test]
fn mode_sense_all_pages_header_and_block_descriptor() {
    let r = rig();
    let d = mode_sense6(&r.a, 0, 0x3F, 0);
    assert_eq!(d[0] as usize, d.len() - 1);
    assert_eq!(d[2], 0x10, "DPOFUA, not WP");
    assert_eq!(d[3], 8);
    assert_eq!(&d[4..12], &[0, 0, 0x08, 0, 0, 0, 0x02, 0]);
    let codes: Vec<u8> = {
        let mut v = Vec::new();
        let mut at = 12;
        while at < d.len() {
            v.push(d[at]);
            at += d[at + 1] as usize + 2;
        }
        v
    };
    assert_eq!(codes, vec![0x01, 0x08, 0x0A, 0x1C]);
    let caching = find_page(&d, 12, 0x08).expect("caching");
    assert_eq!(caching[2] & 0x04, 0x04, "WCE follows the backstore");
    let control = find_page(&d, 12, 0x0A).expect("control");
    assert_eq!(control.len(), 12);
    assert_eq!(control[5] & 0x40, 0x40, "TAS");
    // DBD and one page.
    let d = mode_sense6(&r.a, 0x08, 0x0A, 0);
    assert_eq!(d[3], 0);
    assert_eq!(d.len(), 4 + 12);
    // Changeable values.
    let d = mode_sense6(&r.a, 0x08, 0x40 | 0x0A, 0);
    assert_eq!((d[6], d[8]), (0x04, 0x08));
    // MODE SENSE(10) with LLBAA: long block descriptor.
    let d = cmd_in(&r.a, &[0x5A, 0x10, 0x08, 0, 0, 0, 0, 0x01, 0, 0], 256);
    assert_eq!(u16::from_be_bytes([d[0], d[1]]) as usize, d.len() - 2);
    assert_eq!(d[4] & 1, 1);
    assert_eq!(u16::from_be_bytes([d[6], d[7]]), 16);
    assert_eq!(&d[8..16], &(BLOCKS as u64).to_be_bytes());
}

#[test]
fn mode_sense_errors() {
    let r = rig();
    let s = cmd_fail(&r.a, &[0x1A, 0, 0xC8, 0, 255, 0]);
    assert_eq!(kaq(&s), (5, 0x39, 0));
    let s = cmd_fail(&r.a, &[0x1A, 0, 0x19, 0, 255, 0]);
    assert_eq!(pointer(&s), Some((true, 2, Some(5))));
    let s = cmd_fail(&r.a, &[0x1A, 0, 0x3F, 0x01, 255, 0]);
    assert_eq!(pointer(&s), Some((true, 3, Some(7))));
}

fn control_page_select(n: &Nexus, d_sense: bool, swp: bool) -> ScsiResponse {
    let d = mode_sense6(n, 0x08, 0x0A, 0);
    let mut page = d[4..].to_vec();
    page[2] = (page[2] & !0x04) | if d_sense { 0x04 } else { 0 };
    page[4] = (page[4] & !0x08) | if swp { 0x08 } else { 0 };
    let mut data = vec![0, 0, 0, 0];
    data.extend_from_slice(&page);
    let len = data.len() as u8;
    run(
        n,
        0,
        &[0x15, 0x10, 0, 0, len, 0],
        DataDirection::Write,
        len as u32,
        data,
    )
}

#[test]
fn mode_select_d_sense_switches_sense_format_and_raises_ua_elsewhere() {
    let r = rig();
    assert_eq!(control_page_select(&r.a, true, false).status, status::GOOD);
    let resp = run(
        &r.a,
        0,
        &read10(BLOCKS as u32, 1),
        DataDirection::Read,
        512,
        vec![],
    );
    assert_eq!(resp.sense[0], 0x72);
    // A transport that refuses a command itself asks the same question (LUN 0; none at 7).
    assert!(r.a.descriptor_sense(0));
    assert!(!r.a.descriptor_sense(7));
    assert_eq!(control_page_select(&r.a, false, false).status, status::GOOD);
    assert!(!r.a.descriptor_sense(0));
    assert_eq!(control_page_select(&r.a, true, false).status, status::GOOD);
    // The other nexus is told; the one that changed it is not.
    let s = cmd_fail(&r.b, &[0, 0, 0, 0, 0, 0]);
    assert_eq!(kaq(&s), (6, 0x2A, 0x01));
    assert_eq!(
        run(&r.a, 0, &[0; 6], DataDirection::None, 0, vec![]).status,
        status::GOOD
    );
}

#[test]
fn mode_select_swp_write_protects() {
    let r = rig();
    assert_eq!(control_page_select(&r.a, false, true).status, status::GOOD);
    let s = cmd_fail_with(
        &r.a,
        0,
        &write10(0, 1, 0),
        DataDirection::Write,
        512,
        vec![0; 512],
    );
    assert_eq!(kaq(&s), (7, 0x27, 0x02));
    let d = mode_sense6(&r.a, 0x08, 0x0A, 0);
    assert_eq!(d[2] & 0x80, 0x80, "WP");
    cmd_in(&r.a, &read10(0, 1), 512);
}

#[test]
fn mode_select_rejects_unchangeable_fields_sp_and_short_lists() {
    let r = rig();
    let d = mode_sense6(&r.a, 0x08, 0x0A, 0);
    let mut data = vec![0, 0, 0, 0];
    data.extend_from_slice(&d[4..]);
    data[4 + 5] ^= 0x40; // TAS is not changeable
    let len = data.len() as u8;
    let resp = run(
        &r.a,
        0,
        &[0x15, 0x10, 0, 0, len, 0],
        DataDirection::Write,
        len as u32,
        data.clone(),
    );
    let s = Sense::parse(&resp.sense).expect("sense");
    assert_eq!(kaq(&s), (5, 0x26, 0));
    assert_eq!(pointer(&s), Some((false, 9, Some(6))));
    let s = cmd_fail_with(
        &r.a,
        0,
        &[0x15, 0x11, 0, 0, len, 0],
        DataDirection::Write,
        len as u32,
        data,
    );
    assert_eq!(pointer(&s), Some((true, 1, Some(0))));
    let s = cmd_fail_with(
        &r.a,
        0,
        &[0x15, 0x10, 0, 0, 3, 0],
        DataDirection::Write,
        3,
        vec![0; 3],
    );
    assert_eq!(kaq(&s), (5, 0x1A, 0));
    // MODE SELECT with a caching page turning WCE off.
    let d = mode_sense6(&r.a, 0x08, 0x08, 0);
    let mut data = vec![0, 0, 0, 0];
    data.extend_from_slice(&d[4..]);
    data[6] &= !0x04;
    let len = data.len() as u8;
    cmd_out(&r.a, &[0x15, 0x10, 0, 0, len, 0], data);
    assert_eq!(r.dev.attribute("emulate_write_cache").as_deref(), Some("0"));
}

#[test]
fn rsoc_reports_the_dispatch_table() {
    let r = rig();
    let d = cmd_in(&r.a, &[0xA3, 0x0C, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0], 4096);
    let len = u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as usize;
    assert_eq!(len + 4, d.len());
    assert_eq!(len % 8, 0);
    let ops: Vec<u8> = d[4..].chunks(8).map(|c| c[0]).collect();
    assert!(ops.contains(&0x28) && ops.contains(&0x9E) && ops.contains(&0x5E));
    assert!(ops.contains(&0x41) && ops.contains(&0x93));
    // UNMAP is listed only with emulate_tpu.
    assert!(!ops.contains(&0x42));
    // RCTD: 20-byte descriptors with CTDP.
    let d = cmd_in(
        &r.a,
        &[0xA3, 0x0C, 0x80, 0, 0, 0, 0, 0, 0x10, 0, 0, 0],
        4096,
    );
    assert_eq!((d.len() - 4) % 20, 0);
    assert_eq!(d[4 + 5] & 0x02, 0x02);
    assert_eq!(&d[4 + 8..4 + 10], &[0, 0x0A]);
    // One command: READ(10) usage data.
    let d = cmd_in(&r.a, &[0xA3, 0x0C, 1, 0x28, 0, 0, 0, 0, 1, 0, 0, 0], 256);
    assert_eq!(d[1] & 7, 3);
    assert_eq!(&d[2..4], &[0, 10]);
    assert_eq!(
        &d[4..14],
        &[0x28, 0x1A, 0xFF, 0xFF, 0xFF, 0xFF, 0x1F, 0xFF, 0xFF, 0]
    );
    // Service-action opcode with option 1 is an error; option 2 finds READ CAPACITY(16).
    let s = cmd_fail(&r.a, &[0xA3, 0x0C, 1, 0x9E, 0, 0, 0, 0, 1, 0, 0, 0]);
    assert_eq!(kaq(&s), (5, 0x24, 0));
    let d = cmd_in(&r.a, &[0xA3, 0x0C, 2, 0x9E, 0, 0x10, 0, 0, 1, 0, 0, 0], 256);
    assert_eq!((d[1] & 7, d[4], d[5]), (3, 0x9E, 0x10));
    let d = cmd_in(&r.a, &[0xA3, 0x0C, 2, 0x5F, 0, 0x07, 0, 0, 1, 0, 0, 0], 256);
    assert_eq!((d[1] & 7, d[4], d[5]), (3, 0x5F, 0x07), "REGISTER AND MOVE");
    let d = cmd_in(&r.a, &[0xA3, 0x0C, 2, 0x5F, 0, 0x08, 0, 0, 1, 0, 0, 0], 256);
    assert_eq!(d[1] & 7, 1, "REPLACE LOST RESERVATION is not supported");
    let d = cmd_in(&r.a, &[0xA3, 0x0C, 1, 0x42, 0, 0, 0, 0, 1, 0, 0, 0], 256);
    assert_eq!(d[1] & 7, 1, "UNMAP is not supported without emulate_tpu");
    let d = cmd_in(&r.a, &[0xA3, 0x0C, 2, 0x48, 0, 0x03, 0, 0, 1, 0, 0, 0], 256);
    assert_eq!(d[1] & 7, 1, "SANITIZE CRYPTOGRAPHIC ERASE is not supported");
    // emulate_rsoc=0 hides it.
    r.dev.set_attribute("emulate_rsoc", "0").expect("rsoc");
    let s = cmd_fail(&r.a, &[0xA3, 0x0C, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0]);
    assert_eq!(kaq(&s), (5, 0x24, 0));
}

#[test]
fn rstmf_and_rtpg() {
    let r = rig();
    let d = cmd_in(&r.a, &[0xA3, 0x0D, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0], 16);
    assert_eq!(d, vec![0xDA, 0, 0, 0]);
    let d = cmd_in(&r.a, &[0xA3, 0x0D, 0x80, 0, 0, 0, 0, 0, 0, 16, 0, 0], 16);
    assert_eq!((d.len(), d[3]), (16, 0x0C));
    let d = cmd_in(&r.a, &[0xA3, 0x0A, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0], 256);
    assert_eq!(
        d,
        vec![0, 0, 0, 12, 0x00, 0xCF, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1]
    );
    let d = cmd_in(&r.a, &[0xA3, 0x2A, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0], 256);
    // Extended header: 4 header bytes after the length field plus one 12-byte descriptor.
    assert_eq!(&d[..8], &[0, 0, 0, 16, 0x10, 0, 0, 0]);
    let d = cmd_in(&r.a, &[0xA3, 0x0A, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0], 256);
    assert_eq!(d, vec![0, 0, 0, 12]);
    let s = cmd_fail(&r.a, &[0xA3, 0x4A, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]);
    assert_eq!(pointer(&s), Some((true, 1, Some(7))));
}

#[test]
fn attributes_validate_and_report() {
    let r = rig();
    assert_eq!(r.dev.attribute("block_size").as_deref(), Some("512"));
    assert_eq!(r.dev.attribute("emulate_tas").as_deref(), Some("1"));
    assert_eq!(r.dev.attribute("hw_max_sectors").as_deref(), Some("16384"));
    assert!(r.dev.attribute("nope").is_none());
    let e = r
        .dev
        .set_attribute("block_size", "4096")
        .expect_err("exported");
    assert!(e.starts_with("block_size:"), "{e}");
    assert_eq!(r.dev.attribute("emulate_caw").as_deref(), Some("1"));
    let e = r.dev.set_attribute("emulate_caw", "2").expect_err("caw");
    assert!(e.starts_with("emulate_caw:"), "{e}");
    assert!(r.dev.set_attribute("emulate_caw", "0").is_ok());
    assert_eq!(r.dev.attribute("emulate_caw").as_deref(), Some("0"));
    assert!(r.dev.set_attribute("queue_depth", "0").is_err());
    assert!(r.dev.set_attribute("emulate_fua_write", "2").is_err());
    assert!(r.dev.set_attribute("hw_block_size", "512").is_err());
    for n in r.dev.attribute_names() {
        assert!(r.dev.attribute(n).is_some(), "{n}");
    }
    // Not exported: block size may change.
    r.port.remove_lun(0).expect("remove");
    r.dev.set_attribute("block_size", "4096").expect("bs");
    assert_eq!(r.dev.config().block_size, 4096);
    assert_eq!(r.dev.info().blocks, (BS * BLOCKS / 4096) as u64);
    assert!(r.dev.set_attribute("block_size", "1000").is_err());
}

#[test]
fn write_cache_attribute_changes_raise_mode_parameters_changed() {
    let r = rig();
    r.dev.set_attribute("emulate_write_cache", "0").expect("wc");
    for n in [&r.a, &r.b] {
        let s = cmd_fail(n, &[0, 0, 0, 0, 0, 0]);
        assert_eq!(kaq(&s), (key::UNIT_ATTENTION, 0x2A, 0x01));
    }
    let _ = asc::MODE_PARAMETERS_CHANGED;
}

/// A port exporting `n` LUNs 0..n, one small device each, and one nexus whose power-on unit
/// attentions are consumed on `drain`.
fn many_luns(n: u64, drain: &[u64]) -> Arc<Nexus> {
    let port = TargetPort::new("iqn.2024-01.org.ironlun:many", 1, 1);
    for lun in 0..n {
        let dev = Device::new(
            DeviceConfig {
                name: format!("d{lun}"),
                unit_serial: format!("s{lun}"),
                ..config()
            },
            Mem::new(BS * 8, false),
        )
        .expect("device");
        port.add_lun(lun, dev).expect("add lun");
    }
    port.set_demo_mode(true, false);
    let a = port.open_nexus(initiator("iqn.a", 1)).expect("nexus");
    for &lun in drain {
        drain_ua(&a, lun);
    }
    a
}

/// REPORT LUNS with an allocation length of `alloc` through LUN 0.
fn report_luns(n: &Nexus, alloc: u32) -> ScsiResponse {
    let mut cdb = [0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    cdb[6..10].copy_from_slice(&alloc.to_be_bytes());
    run(n, 0, &cdb, DataDirection::Read, alloc, vec![])
}

#[test]
fn report_luns_lists_ten_thousand_luns_peripheral_then_flat_space() {
    let a = many_luns(10_000, &[0, 255, 256, 300, 9999]);
    let r = report_luns(&a, 16 + 8 * 10_000);
    assert_eq!(r.status, status::GOOD);
    let d = r.data_in;
    assert_eq!(d.len(), 8 + 8 * 10_000);
    assert_eq!(
        &d[..8],
        &[0, 1, 0x38, 0x80, 0, 0, 0, 0],
        "LUN LIST LENGTH 80,000"
    );
    for (i, e) in d[8..].chunks_exact(8).enumerate() {
        // SAM-5 §4.7.7.3 peripheral device addressing below 256, §4.7.7.5 flat space above.
        let want = if i < 256 {
            [0, i as u8, 0, 0, 0, 0, 0, 0]
        } else {
            [0x40 | (i >> 8) as u8, i as u8, 0, 0, 0, 0, 0, 0]
        };
        assert_eq!(e, want, "entry {i}");
    }
    assert_eq!(&d[8 + 8 * 9999..], &[0x67, 0x0F, 0, 0, 0, 0, 0, 0]);
    // Commands reach the LUNs the list names.
    for lun in [255, 256, 300, 9999] {
        let r = run(
            &a,
            lun,
            &read10(0, 1),
            DataDirection::Read,
            BS as u32,
            vec![],
        );
        assert_eq!(r.status, status::GOOD, "READ on LUN {lun}");
    }
    let r = run(&a, 10_000, &[0u8; 6], DataDirection::None, 0, vec![]);
    assert_eq!(
        r.status,
        status::CHECK_CONDITION,
        "LUN 10,000 is not mapped"
    );
}

#[test]
fn a_long_lun_list_is_cut_at_the_allocation_length_and_keeps_its_length() {
    let a = many_luns(2_000, &[0]);
    // Cut inside the header, on an entry boundary, and inside an entry.
    for alloc in [4u32, 8, 16, 8 + 8 * 300, 8 + 8 * 300 + 5] {
        let r = report_luns(&a, alloc);
        assert_eq!(r.status, status::GOOD, "alloc {alloc}");
        assert_eq!(r.data_in.len(), alloc as usize, "alloc {alloc}");
        let len = &r.data_in[..4.min(alloc as usize)];
        assert_eq!(len, &16_000u32.to_be_bytes()[..len.len()], "alloc {alloc}");
        assert_eq!(r.residual, Residual::None, "alloc {alloc}");
    }
    let d = report_luns(&a, 8 + 8 * 300 + 5).data_in;
    assert_eq!(
        &d[8 + 8 * 299..8 + 8 * 300],
        &[0x41, 0x2B, 0, 0, 0, 0, 0, 0]
    );
    assert_eq!(&d[8 + 8 * 300..], &[0x41, 0x2C, 0, 0, 0]);
    // An expected length past the list: the data stops at the list, with an underflow.
    let r = report_luns(&a, 100_000);
    assert_eq!(r.data_in.len(), 16_008);
    assert_eq!(r.residual, Residual::Underflow(100_000 - 16_008));
}
