use super::page::{judge, Fetch};
use super::standard::decode_standard;
use super::vpd_block::{decode_block_characteristics, decode_block_limits, decode_provisioning};
use super::vpd_ident::{
    decode_designation, decode_device_id, decode_serial, decode_supported, Designator,
};
use super::*;

// ---------------------------------------------------------------- builders

/// A VPD page: disk, `code`, PAGE LENGTH = body length.
fn page(code: u8, body: &[u8]) -> Vec<u8> {
    let mut p = vec![0x00, code];
    p.extend_from_slice(&(body.len() as u16).to_be_bytes());
    p.extend_from_slice(body);
    p
}

/// A designation descriptor.
fn desig(proto: u8, code_set: u8, piv: bool, assoc: u8, kind: u8, id: &[u8]) -> Vec<u8> {
    let mut d = vec![
        (proto << 4) | code_set,
        (u8::from(piv) << 7) | (assoc << 4) | kind,
        0,
        id.len() as u8,
    ];
    d.extend_from_slice(id);
    d
}

/// 96 bytes of standard INQUIRY data with every flag clear.
fn std_inquiry() -> Vec<u8> {
    let mut d = vec![0u8; 96];
    d[2] = 0x06;
    d[3] = 0x02;
    d[4] = 91;
    d[8..16].copy_from_slice(b"IRONLUN ");
    d[16..32].copy_from_slice(b"disk0           ");
    d[32..36].copy_from_slice(b"1.0 ");
    for (i, v) in [0x00A0u16, 0x0960, 0x0460, 0x04C0].iter().enumerate() {
        d[58 + 2 * i..60 + 2 * i].copy_from_slice(&v.to_be_bytes());
    }
    d
}

fn naa6() -> Vec<u8> {
    vec![
        0x60, 0x01, 0x40, 0x5d, 0x9c, 0x5a, 0x8b, 0x21, 0xc4, 0xf4, 0xe0, 0xa9, 0xb3, 0xe5, 0xf2,
        0xd7,
    ]
}

// ---------------------------------------------------------------- standard INQUIRY

#[test]
fn standard_fields_of_a_plain_disk() {
    let s = decode_standard(&std_inquiry()).unwrap();
    assert_eq!(s.peripheral_qualifier, 0);
    assert_eq!(s.peripheral_qualifier_meaning, "LU accessible");
    assert_eq!(s.peripheral_device_type, 0);
    assert_eq!(s.peripheral_device_type_name, "disk");
    assert_eq!(s.version, 6);
    assert_eq!(s.version_name, "SPC-4");
    assert_eq!(s.response_data_format, 2);
    assert_eq!(s.length, 96);
    assert_eq!(s.decoded_length, 96);
    assert_eq!(s.t10_vendor_identification, "IRONLUN");
    assert_eq!(s.product_identification, "disk0");
    assert_eq!(s.product_revision_level, "1.0");
    let names: Vec<&str> = s
        .version_descriptors
        .iter()
        .map(|v| v.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "SAM-5 (no version claimed)",
            "iSCSI (no version claimed)",
            "SPC-4 (no version claimed)",
            "SBC-3 (no version claimed)"
        ]
    );
    assert!(!(s.rmb || s.lu_cong || s.normaca || s.hisup || s.sccs || s.acc));
    assert!(!(s.third_party_copy || s.protect || s.encserv || s.multip || s.cmdque));
    assert_eq!(
        (s.tpgs, s.implicit_alua, s.explicit_alua),
        (0, false, false)
    );
    assert_eq!(s.tpgs_meaning, "not supported");
}

#[test]
fn each_standard_flag_is_read_from_its_own_bit() {
    type Get = fn(&Standard) -> bool;
    let flags: [(usize, u8, &str, Get); 12] = [
        (1, 7, "rmb", |s| s.rmb),
        (1, 6, "lu_cong", |s| s.lu_cong),
        (3, 5, "normaca", |s| s.normaca),
        (3, 4, "hisup", |s| s.hisup),
        (5, 7, "sccs", |s| s.sccs),
        (5, 6, "acc", |s| s.acc),
        (5, 3, "3pc", |s| s.third_party_copy),
        (5, 0, "protect", |s| s.protect),
        (6, 6, "encserv", |s| s.encserv),
        (6, 4, "multip", |s| s.multip),
        (7, 1, "cmdque", |s| s.cmdque),
        (5, 4, "implicit_alua", |s| s.implicit_alua),
    ];
    for (byte, bit, name, get) in flags {
        let mut d = std_inquiry();
        d[byte] |= 1 << bit;
        let s = decode_standard(&d).unwrap();
        assert!(get(&s), "{name} not read from byte {byte} bit {bit}");
        // No other flag moved.
        for (b2, bit2, n2, g2) in flags {
            if (b2, bit2) != (byte, bit) {
                assert!(!g2(&s), "{n2} set by byte {byte} bit {bit}");
            }
        }
        let j = to_json(&s);
        assert_eq!(j[name], Value::Bool(true), "JSON key {name}");
    }
}

#[test]
fn tpgs_is_spelled_out() {
    let want = [
        (0, false, false, "not supported"),
        (
            1,
            true,
            false,
            "only implicit asymmetric logical unit access",
        ),
        (
            2,
            false,
            true,
            "only explicit asymmetric logical unit access",
        ),
        (
            3,
            true,
            true,
            "both explicit and implicit asymmetric logical unit access",
        ),
    ];
    for (t, imp, exp, meaning) in want {
        let mut d = std_inquiry();
        d[5] = t << 4;
        let s = decode_standard(&d).unwrap();
        assert_eq!((s.tpgs, s.implicit_alua, s.explicit_alua), (t, imp, exp));
        assert_eq!(s.tpgs_meaning, meaning);
        let mut text = String::new();
        standard::render_standard(&s, &mut text);
        assert!(text.contains(&format!("TPGS={t}: {meaning}")), "{text}");
    }
}

#[test]
fn standard_qualifier_type_hot_plug_and_version() {
    let mut d = std_inquiry();
    d[0] = (1 << 5) | 0x01;
    d[1] = 0x20;
    d[2] = 0x07;
    d[3] = 0x0F & 0x02;
    let s = decode_standard(&d).unwrap();
    assert_eq!(s.peripheral_qualifier, 1);
    assert_eq!(s.peripheral_qualifier_meaning, "LU temporarily unavailable");
    assert_eq!(s.peripheral_device_type_name, "tape");
    assert_eq!(s.hot_pluggable, 2);
    assert_eq!(s.version_name, "SPC-5");
    let mut text = String::new();
    standard::render_standard(&s, &mut text);
    assert!(text.starts_with("standard INQUIRY: [PQ indicates LU temporarily unavailable]\n"));
    assert!(
        text.contains("PQual=1  PDT=1  RMB=0  LU_CONG=0  hot_pluggable=2  version=0x07  [SPC-5]")
    );
}

#[test]
fn version_descriptors_stop_at_the_additional_length() {
    let mut d = std_inquiry();
    d[4] = 62 - 5; // data ends after the second descriptor
    let s = decode_standard(&d).unwrap();
    assert_eq!(s.length, 62);
    assert_eq!(s.version_descriptors.len(), 2);
    // 36 bytes, as the minimum: no descriptors at all.
    let s = decode_standard(&d[..36]).unwrap();
    assert!(s.version_descriptors.is_empty());
    assert_eq!(s.decoded_length, 36);
}

#[test]
fn version_descriptor_names() {
    assert_eq!(
        names::version_descriptor(0x04C5),
        "SBC-3 (version code 0x04c5)"
    );
    assert_eq!(
        names::version_descriptor(0x0320),
        "SBC-2 (no version claimed)"
    );
    assert_eq!(
        names::version_descriptor(0xFFE0),
        "unrecognised version descriptor code 0xffe0"
    );
}

#[test]
fn standard_data_under_36_bytes_is_an_error() {
    let e = decode_standard(&std_inquiry()[..35]).unwrap_err();
    assert!(e.contains("35 bytes"), "{e}");
}

// ---------------------------------------------------------------- page header

#[test]
fn page_header_faults_are_malformed() {
    let e = decode_supported(&[0, 0, 0]).unwrap_err();
    assert!(e.contains("3 bytes returned"), "{e}");
    let e = decode_supported(&page(0x80, &[0x00])).unwrap_err();
    assert!(e.contains("byte 1 (PAGE CODE) is 0x80, not 0x00"), "{e}");
    let mut p = page(0x00, &[0x00, 0x80]);
    p[3] = 5;
    let e = decode_supported(&p).unwrap_err();
    assert!(e.contains("PAGE LENGTH 5") && e.contains("byte 9"), "{e}");
    // The same checks guard every page.
    for code in [0x80, 0x83, 0xB0, 0xB1, 0xB2] {
        assert!(decode_page(code, &page(0x00, &[0; 64])).is_err());
        let mut p = page(code, &[0; 60]);
        p[2] = 1;
        assert!(decode_page(code, &p).is_err(), "{code:#x}");
    }
}

#[test]
fn bytes_past_page_length_are_ignored() {
    let mut p = page(0x00, &[0x00, 0x80]);
    p.extend_from_slice(&[0x83, 0xB0]);
    let s = decode_supported(&p).unwrap();
    assert_eq!(s.pages.len(), 2);
}

#[test]
fn fetching_asks_again_while_page_length_says_more() {
    // Complete: the page fits.
    assert_eq!(judge(&page(0x83, &[0; 10]), 0x83, 255), Fetch::Complete(14));
    // Truncated at the allocation length: ask for exactly what PAGE LENGTH needs.
    let mut p = page(0x83, &[0; 300]);
    p.truncate(255);
    assert_eq!(judge(&p, 0x83, 255), Fetch::Again(304));
    // Longer than INQUIRY can carry: the largest allocation length, then give up.
    let mut big = vec![0u8, 0x83, 0xFF, 0xFF];
    big.resize(255, 0);
    assert_eq!(judge(&big, 0x83, 255), Fetch::Again(u16::MAX));
    big.resize(usize::from(u16::MAX), 0);
    assert_eq!(judge(&big, 0x83, u16::MAX), Fetch::TooLong(65539));
    // Fewer bytes than PAGE LENGTH although the allocation length allowed them.
    let mut short = page(0x83, &[0; 100]);
    short.truncate(50);
    match judge(&short, 0x83, 255) {
        Fetch::Malformed(m) => assert!(m.contains("PAGE LENGTH 100") && m.contains("50 bytes")),
        other => panic!("{other:?}"),
    }
    assert!(matches!(judge(&[0, 0x83], 0x83, 255), Fetch::Malformed(_)));
    assert!(matches!(
        judge(&page(0x80, &[1]), 0x83, 255),
        Fetch::Malformed(m) if m.contains("PAGE CODE")
    ));
}

// ---------------------------------------------------------------- 00h, 80h

#[test]
fn supported_pages_are_named() {
    let s = decode_supported(&page(0x00, &[0x00, 0x80, 0x83, 0x86, 0xB0, 0xB2, 0xC5])).unwrap();
    let got: Vec<(u8, Option<&str>)> = s.pages.iter().map(|e| (e.code, e.name)).collect();
    assert_eq!(
        got,
        [
            (0x00, Some("Supported VPD pages")),
            (0x80, Some("Unit serial number")),
            (0x83, Some("Device identification")),
            (0x86, Some("Extended INQUIRY data")),
            (0xB0, Some("Block limits")),
            (0xB2, Some("Logical block provisioning")),
            (0xC5, None)
        ]
    );
    assert!(s.lists(0xB0) && !s.lists(0xB1));
    // B0h is not "Block limits" for a tape.
    let mut tape = page(0x00, &[0xB0]);
    tape[0] = 0x01;
    assert_eq!(decode_supported(&tape).unwrap().pages[0].name, None);
}

#[test]
fn unit_serial_number_is_trimmed() {
    let s = decode_serial(&page(0x80, b"   beaf11\0\0")).unwrap();
    assert_eq!(s.product_serial_number, "beaf11");
    assert_eq!(
        decode_serial(&page(0x80, b""))
            .unwrap()
            .product_serial_number,
        ""
    );
}

// ---------------------------------------------------------------- 83h

#[test]
fn every_designator_type_is_decoded() {
    let mut b = Vec::new();
    b.extend(desig(0, 1, false, 0, 3, &naa6()));
    b.extend(desig(0, 2, false, 0, 1, b"IRONLUN disk0:beaf11"));
    b.extend(desig(5, 1, true, 1, 4, &[0, 0, 0, 2]));
    b.extend(desig(5, 1, true, 1, 5, &[0, 0, 0x01, 0x03]));
    b.extend(desig(0, 1, false, 0, 6, &[0, 0, 0, 7]));
    b.extend(desig(
        5,
        3,
        true,
        1,
        8,
        b"iqn.2026-11.org.ironlun:t,t,0x1\0",
    ));
    b.extend(desig(5, 3, true, 2, 8, b"iqn.2026-11.org.ironlun:t\0\0\0"));
    b.extend(desig(0, 1, false, 0, 7, &[0xAB; 16]));
    b.extend(desig(0, 1, false, 0, 2, &[1, 2, 3, 4, 5, 6, 7, 8]));
    b.extend(desig(0, 1, false, 0, 0xA, &{
        let mut u = vec![0x10, 0x00];
        u.extend(0..16u8);
        u
    }));
    b.extend(desig(0, 2, false, 0, 0, b"hello"));
    b.extend(desig(0, 1, false, 0, 0, &[0x00, 0xFF]));
    b.extend(desig(9, 1, true, 1, 9, &[0x12, 0, 0x03, 0]));
    b.extend(desig(0, 1, false, 0, 0xC, &[0xEE]));
    let d = decode_device_id(&page(0x83, &b)).unwrap();
    let ds = &d.designators;
    assert_eq!(ds.len(), 14);

    assert_eq!(ds[0].offset, 4);
    assert_eq!(ds[0].designator_type_name, "NAA");
    assert_eq!(ds[0].code_set_name, "Binary");
    assert_eq!(ds[0].association_name, "Addressed logical unit");
    assert_eq!((ds[0].piv, ds[0].protocol), (false, None));
    assert_eq!(
        ds[0].designator,
        Designator::Naa {
            naa: 6,
            naa_type: "IEEE Registered Extended",
            company_id: Some("0x001405".into()),
            value: "0x6001405d9c5a8b21c4f4e0a9b3e5f2d7".into()
        }
    );
    assert_eq!(ds[0].hex, "6001405d9c5a8b21c4f4e0a9b3e5f2d7");
    assert_eq!(ds[1].offset, 4 + 20);
    assert_eq!(
        ds[1].designator,
        Designator::T10VendorId {
            vendor_id: "IRONLUN".into(),
            vendor_specific: "disk0:beaf11".into()
        }
    );
    assert_eq!(ds[1].code_set_name, "ASCII");
    assert_eq!(
        ds[2].designator,
        Designator::RelativeTargetPort {
            relative_target_port: 2
        }
    );
    assert!(ds[2].piv);
    assert_eq!(ds[2].association_name, "Target port");
    assert_eq!(ds[2].protocol_identifier, 5);
    assert_eq!(ds[2].protocol, Some("Internet SCSI (iSCSI)"));
    assert_eq!(
        ds[3].designator,
        Designator::TargetPortGroup {
            target_port_group: 0x103
        }
    );
    assert_eq!(
        ds[4].designator,
        Designator::LogicalUnitGroup {
            logical_unit_group: 7
        }
    );
    assert_eq!(
        ds[5].designator,
        Designator::ScsiNameString {
            name: "iqn.2026-11.org.ironlun:t,t,0x1".into()
        }
    );
    assert_eq!(ds[5].code_set_name, "UTF-8");
    assert_eq!(
        ds[6].association_name,
        "Target device that contains addressed lu"
    );
    assert_eq!(ds[6].protocol, Some("Internet SCSI (iSCSI)"));
    assert_eq!(
        ds[7].designator,
        Designator::Md5LogicalUnitIdentifier {
            md5: "ab".repeat(16)
        }
    );
    assert_eq!(
        ds[8].designator,
        Designator::Eui64 {
            identifier_extension: None,
            ieee_identifier: "0102030405060708".into(),
            directory_id: None
        }
    );
    assert_eq!(
        ds[9].designator,
        Designator::Uuid {
            uuid: "00010203-0405-0607-0809-0a0b0c0d0e0f".into()
        }
    );
    assert_eq!(
        ds[10].designator,
        Designator::VendorSpecific {
            text: Some("hello".into())
        }
    );
    assert_eq!(ds[11].designator, Designator::VendorSpecific { text: None });
    assert_eq!(ds[11].hex, "00ff");
    assert_eq!(
        ds[12].designator,
        Designator::ProtocolSpecificPortIdentifier {
            hex: "12000300".into()
        }
    );
    assert_eq!(ds[12].protocol, Some("USB Attached SCSI (UAS-2)"));
    assert_eq!(ds[13].designator_type_name, "Reserved [0xc]");
    assert_eq!(ds[13].designator, Designator::Reserved { hex: "ee".into() });
    assert!(ds.iter().all(|d| d.note.is_none()), "{ds:#?}");
}

#[test]
fn naa_types_and_eui_forms() {
    let one = |kind: u8, id: &[u8]| {
        decode_designation(&desig(0, 1, false, 0, kind, id), 4)
            .unwrap()
            .designator
    };
    let naa = |id: &[u8]| match one(3, id) {
        Designator::Naa {
            naa,
            naa_type,
            company_id,
            ..
        } => (naa, naa_type, company_id),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        naa(&[0x21, 0x23, 0xAA, 0xBB, 0xCC, 1, 2, 3]),
        (2, "IEEE Extended", Some("0xaabbcc".into()))
    );
    assert_eq!(naa(&[0x3F; 8]), (3, "Locally Assigned", None));
    assert_eq!(
        naa(&[0x50, 0x01, 0x40, 0x50, 0, 0, 0, 1]),
        (5, "IEEE Registered", Some("0x001405".into()))
    );
    assert_eq!(naa(&[0x10, 1, 2]), (1, "reserved NAA", None));
    assert_eq!(
        one(2, &(0..12).collect::<Vec<u8>>()),
        Designator::Eui64 {
            identifier_extension: None,
            ieee_identifier: "0001020304050607".into(),
            directory_id: Some("08090a0b".into())
        }
    );
    assert_eq!(
        one(2, &(0..16).collect::<Vec<u8>>()),
        Designator::Eui64 {
            identifier_extension: Some("0001020304050607".into()),
            ieee_identifier: "08090a0b0c0d0e0f".into(),
            directory_id: None
        }
    );
    // Binary vendor specific part of a T10 designator is shown in hex.
    assert_eq!(
        one(1, b"VENDOR  \x01\x02"),
        Designator::T10VendorId {
            vendor_id: "VENDOR".into(),
            vendor_specific: "0102".into()
        }
    );
}

#[test]
fn designator_lengths_wrong_for_their_type_are_malformed() {
    let cases: [(u8, Vec<u8>, &str); 12] = [
        (3, vec![0x60; 8], "must be 16"),
        (3, vec![0x50; 16], "must be 8"),
        (3, vec![0x20; 4], "must be 8"),
        (3, vec![0x30; 9], "must be 8"),
        (3, vec![], "no NAA field"),
        (4, vec![0, 1], "must be 4"),
        (5, vec![0; 8], "must be 4"),
        (6, vec![0; 3], "must be 4"),
        (7, vec![0; 15], "must be 16"),
        (2, vec![0; 10], "must be 8, 12 or 16"),
        (1, b"SHORT".to_vec(), "at least the 8-byte"),
        (0xA, vec![0x10; 16], "must be 18"),
    ];
    for (kind, id, want) in cases {
        let mut b = desig(0, 1, false, 0, 3, &naa6());
        b.extend(desig(0, 1, false, 0, kind, &id));
        let e = decode_device_id(&page(0x83, &b)).unwrap_err();
        assert!(
            e.contains("at byte 24") && e.contains(want),
            "type {kind} len {}: {e}",
            id.len()
        );
    }
}

#[test]
fn designators_overrunning_the_page_are_malformed() {
    // The header itself does not fit.
    let mut b = desig(0, 1, false, 0, 4, &[0, 0, 0, 1]);
    b.extend_from_slice(&[0x01, 0x03, 0x00]);
    let e = decode_device_id(&page(0x83, &b)).unwrap_err();
    assert!(
        e.contains("at byte 12") && e.contains("4-byte header"),
        "{e}"
    );
    // DESIGNATOR LENGTH runs past PAGE LENGTH (data beyond the page does not count).
    let mut b = desig(0, 1, false, 0, 3, &naa6());
    b[3] = 20;
    let mut p = page(0x83, &b);
    p.extend_from_slice(&[0; 8]);
    let e = decode_device_id(&p).unwrap_err();
    assert!(
        e.contains("at byte 4") && e.contains("DESIGNATOR LENGTH 20 overruns"),
        "{e}"
    );
}

#[test]
fn unexpected_code_sets_and_associations_are_noted_not_fatal() {
    let d = decode_designation(&desig(0, 2, false, 0, 3, &naa6()), 4).unwrap();
    assert_eq!(d.note.as_deref(), Some("expected the binary code set"));
    let d = decode_designation(&desig(0, 1, false, 0, 4, &[0, 0, 0, 1]), 4).unwrap();
    assert_eq!(d.note.as_deref(), Some("expected target port association"));
    let d = decode_designation(&desig(0, 1, false, 1, 6, &[0, 0, 0, 1]), 4).unwrap();
    assert_eq!(d.note.as_deref(), Some("expected logical unit association"));
    let d = decode_designation(&desig(0, 1, false, 0, 8, b"abc\0"), 4).unwrap();
    assert_eq!(d.note.as_deref(), Some("expected the UTF-8 code set"));
    // PIV with logical unit association: the protocol identifier is not valid.
    let d = decode_designation(&desig(5, 1, true, 0, 3, &naa6()), 4).unwrap();
    assert_eq!((d.piv, d.protocol), (true, None));
    let mut text = String::new();
    vpd_ident::render_designation(&d, "", &mut text);
    assert!(text.contains("not valid with this association"), "{text}");
}

#[test]
fn device_identification_text_reads_like_sg_vpd() {
    let mut b = desig(0, 1, false, 0, 3, &naa6());
    b.extend(desig(5, 1, true, 1, 4, &[0, 0, 0, 1]));
    let d = decode_device_id(&page(0x83, &b)).unwrap();
    let mut t = String::new();
    vpd_ident::render_device_id(&d, &mut t);
    let want = "  Designation descriptor number 1, descriptor length: 20
    designator type: NAA,  code set: Binary
    associated with the Addressed logical unit
    PIV=0
      NAA 6 (IEEE Registered Extended), company id: 0x001405
      0x6001405d9c5a8b21c4f4e0a9b3e5f2d7
  Designation descriptor number 2, descriptor length: 8
    designator type: Relative target port,  code set: Binary
    associated with the Target port
    PIV=1  transport: Internet SCSI (iSCSI) [protocol identifier 0x5]
      Relative target port: 0x1
";
    assert_eq!(t, want);
}

// ---------------------------------------------------------------- B0h

/// A 0x3C-byte block limits page whose every field holds a distinct value.
fn block_limits_page() -> Vec<u8> {
    let mut b = vec![0u8; 0x3C];
    b[0] = 0x01; // WSNZ
    b[1] = 0x80; // MAXIMUM COMPARE AND WRITE LENGTH
    b[2..4].copy_from_slice(&8u16.to_be_bytes());
    b[4..8].copy_from_slice(&8192u32.to_be_bytes());
    b[8..12].copy_from_slice(&1024u32.to_be_bytes());
    b[12..16].copy_from_slice(&77u32.to_be_bytes());
    b[16..20].copy_from_slice(&u32::MAX.to_be_bytes());
    b[20..24].copy_from_slice(&4096u32.to_be_bytes());
    b[24..28].copy_from_slice(&2048u32.to_be_bytes());
    b[28..32].copy_from_slice(&(0x8000_0000u32 | 3).to_be_bytes());
    b[32..40].copy_from_slice(&0x1_0000_0000u64.to_be_bytes());
    b[40..44].copy_from_slice(&16u32.to_be_bytes());
    b[44..48].copy_from_slice(&4u32.to_be_bytes());
    b[48..52].copy_from_slice(&2u32.to_be_bytes());
    b[52..56].copy_from_slice(&32u32.to_be_bytes());
    b[56..60].copy_from_slice(&64u32.to_be_bytes());
    page(0xB0, &b)
}

#[test]
fn block_limits_every_field() {
    let l = decode_block_limits(&block_limits_page()).unwrap();
    let want = vpd_block::BlockLimits {
        wsnz: true,
        maximum_compare_and_write_length: 0x80,
        optimal_transfer_length_granularity: 8,
        maximum_transfer_length: 8192,
        optimal_transfer_length: 1024,
        maximum_prefetch_length: Some(77),
        maximum_unmap_lba_count: Some(u32::MAX),
        maximum_unmap_block_descriptor_count: Some(4096),
        optimal_unmap_granularity: Some(2048),
        unmap_granularity_alignment_valid: Some(true),
        unmap_granularity_alignment: Some(3),
        maximum_write_same_length: Some(0x1_0000_0000),
        maximum_atomic_transfer_length: Some(16),
        atomic_alignment: Some(4),
        atomic_transfer_length_granularity: Some(2),
        maximum_atomic_transfer_length_with_atomic_boundary: Some(32),
        maximum_atomic_boundary_size: Some(64),
    };
    assert_eq!(l, want);
    let mut t = String::new();
    vpd_block::render_block_limits(&l, &mut t);
    for line in [
        "  Write same non-zero (WSNZ): 1\n",
        "  Maximum compare and write length: 128 blocks\n",
        "  Maximum unmap LBA count: unlimited\n",
        "  Maximum unmap block descriptor count: 4096 block descriptors\n",
        "  Unmap granularity alignment valid: true\n",
        "  Unmap granularity alignment: 3 blocks\n",
        "  Maximum write same length: 4294967296 blocks\n",
        "  Maximum atomic boundary size: 64 blocks\n",
    ] {
        assert!(t.contains(line), "{line:?} not in\n{t}");
    }
}

#[test]
fn block_limits_fields_appear_with_the_revision_that_added_them() {
    let full = block_limits_page();
    let cut = |body_len: usize| {
        let mut p = full[..4 + body_len].to_vec();
        p[2..4].copy_from_slice(&(body_len as u16).to_be_bytes());
        decode_block_limits(&p).unwrap()
    };
    let sbc2 = cut(12);
    assert_eq!(sbc2.optimal_transfer_length, 1024);
    assert_eq!(sbc2.maximum_prefetch_length, None);
    assert_eq!(sbc2.maximum_write_same_length, None);
    let r18 = cut(24);
    assert_eq!(r18.maximum_unmap_block_descriptor_count, Some(4096));
    assert_eq!(r18.optimal_unmap_granularity, None);
    assert_eq!(r18.unmap_granularity_alignment_valid, None);
    let r26 = cut(40);
    assert_eq!(r26.maximum_write_same_length, Some(0x1_0000_0000));
    assert_eq!(r26.maximum_atomic_transfer_length, None);
    let atomic = cut(52);
    assert_eq!(atomic.atomic_transfer_length_granularity, Some(2));
    assert_eq!(atomic.maximum_atomic_boundary_size, None);
    let mut t = String::new();
    vpd_block::render_block_limits(&sbc2, &mut t);
    assert!(!t.contains("prefetch"), "{t}");
    // Zero means "not reported" / "not implemented" in words.
    let mut zero = full.clone();
    zero[4..].fill(0);
    let z = decode_block_limits(&zero).unwrap();
    assert_eq!(z.unmap_granularity_alignment_valid, Some(false));
    let mut t = String::new();
    vpd_block::render_block_limits(&z, &mut t);
    assert!(t.contains("Maximum compare and write length: 0 blocks [command not implemented]"));
    assert!(t.contains("Maximum transfer length: 0 blocks [not reported]"));
    assert!(!t.contains("Unmap granularity alignment:"), "{t}");
}

#[test]
fn block_limits_shorter_than_sbc2_is_malformed() {
    let e = decode_block_limits(&page(0xB0, &[0; 8])).unwrap_err();
    assert!(e.contains("PAGE LENGTH 8") && e.contains("byte 16"), "{e}");
}

// ---------------------------------------------------------------- B1h

#[test]
fn block_device_characteristics_every_field() {
    let mut b = vec![0u8; 0x3C];
    b[0..2].copy_from_slice(&1u16.to_be_bytes());
    b[2] = 0x05;
    b[3] = (1 << 6) | (2 << 4) | 0x03;
    b[4] = (2 << 4) | 0x02 | 0x01;
    let c = decode_block_characteristics(&page(0xB1, &b)).unwrap();
    assert_eq!(c.medium_rotation_rate, 1);
    assert!(c.non_rotating);
    assert_eq!(c.product_type_name, "Secure Digital Card (SD)");
    assert_eq!((c.wabereq, c.wacereq), (1, 2));
    assert_eq!(c.nominal_form_factor_name, "2.5 inch");
    assert_eq!((c.zoned, c.zoned_name), (2, "host-managed"));
    assert!(c.fuab && c.vbuls);
    let mut t = String::new();
    vpd_block::render_block_characteristics(&c, &mut t);
    assert_eq!(
        t,
        "  Non-rotating medium (e.g. solid state)\n  Product type: Secure Digital Card (SD)\n  \
         WABEREQ=1\n  WACEREQ=2\n  Nominal form factor: 2.5 inch\n  ZONED=2 [host-managed]\n  \
         FUAB=1\n  VBULS=1\n"
    );
}

#[test]
fn rotation_rates_and_product_types() {
    let with = |rate: u16, product: u8| {
        let mut b = vec![0u8; 5];
        b[0..2].copy_from_slice(&rate.to_be_bytes());
        b[2] = product;
        decode_block_characteristics(&page(0xB1, &b)).unwrap()
    };
    assert_eq!(with(0, 0).medium_rotation_rate_meaning, "not reported");
    assert_eq!(with(7200, 0).medium_rotation_rate_meaning, "7200 rpm");
    assert_eq!(with(0x200, 0).medium_rotation_rate_meaning, "reserved");
    assert_eq!(with(0, 0xF3).product_type_name, "Vendor specific [0xf3]");
    assert_eq!(with(0, 0x20).product_type_name, "Reserved [0x20]");
    assert!(!with(7200, 0).non_rotating);
    let e = decode_block_characteristics(&page(0xB1, &[0; 4])).unwrap_err();
    assert!(e.contains("PAGE LENGTH 4"), "{e}");
}

// ---------------------------------------------------------------- B2h

#[test]
fn logical_block_provisioning_every_field() {
    let p = decode_provisioning(&page(
        0xB2,
        &[9, 0xE0 | (0x05 << 2) | 0x02, (7 << 3) | 2, 40],
    ))
    .unwrap();
    assert_eq!(p.threshold_exponent, 9);
    assert!(p.lbpu && p.lbpws && p.lbpws10 && p.anc_sup && !p.dp);
    assert_eq!(p.lbprz, 5);
    assert_eq!(p.minimum_percentage, 7);
    assert_eq!(
        (p.provisioning_type, p.provisioning_type_name),
        (2, "thin provisioned")
    );
    assert_eq!(p.threshold_percentage, 40);
    assert_eq!(p.provisioning_group_descriptor, None);
    let mut t = String::new();
    vpd_block::render_provisioning(&p, &mut t);
    assert!(t.contains("  LBPRZ=5\n") && t.contains("  Provisioning type: thin provisioned\n"));
    let full = decode_provisioning(&page(0xB2, &[0, 0, 0, 0])).unwrap();
    assert_eq!(
        full.provisioning_type_name,
        "not known or fully provisioned"
    );
    assert!(!(full.lbpu || full.lbpws || full.lbpws10 || full.anc_sup));
}

#[test]
fn provisioning_group_descriptor_when_dp() {
    let mut b = vec![0, 0x01, 1, 0];
    b.extend(desig(0, 1, false, 0, 3, &naa6()));
    let p = decode_provisioning(&page(0xB2, &b)).unwrap();
    let d = p.provisioning_group_descriptor.unwrap();
    assert_eq!(d.offset, 8);
    assert_eq!(d.designator_type_name, "NAA");
    // DP set but nothing after byte 8, or a descriptor that overruns: malformed.
    let e = decode_provisioning(&page(0xB2, &[0, 0x01, 0, 0])).unwrap_err();
    assert!(e.contains("DP set"), "{e}");
    let mut b = vec![0, 0x01, 0, 0];
    b.extend(&desig(0, 1, false, 0, 3, &naa6())[..10]);
    let e = decode_provisioning(&page(0xB2, &b)).unwrap_err();
    assert!(e.contains("at byte 8"), "{e}");
    let e = decode_provisioning(&page(0xB2, &[0, 0])).unwrap_err();
    assert!(e.contains("PAGE LENGTH 2"), "{e}");
}

// ---------------------------------------------------------------- the report

const URL: &str = "iscsi://127.0.0.1:3260/iqn.2026-11.org.ironlun:t/0";

fn ident_page() -> Vec<u8> {
    let mut b = desig(0, 1, false, 0, 3, &naa6());
    b.extend(desig(5, 1, true, 1, 5, &[0, 0, 0, 1]));
    page(0x83, &b)
}

#[test]
fn the_report_holds_listed_pages_refusals_and_absences() {
    let page0 = page(0x00, &[0x00, 0x80, 0x83, 0xB0, 0xB2]);
    let fetched = vec![
        (0x80, Fetched::Page(page(0x80, b"abc"))),
        (0x83, Fetched::Page(ident_page())),
        (
            0xB0,
            Fetched::Unavailable("refused: SCSI status CHECK CONDITION".into()),
        ),
        (0xB2, Fetched::Page(page(0xB2, &[0, 0x80, 2, 0]))),
    ];
    let r = assemble(URL, &std_inquiry(), &page0, &fetched).unwrap();
    let codes: Vec<u8> = r.pages.iter().map(|(c, _)| *c).collect();
    assert_eq!(codes, PAGES);
    assert_eq!(r.pages[3].1, PageOutcome::NotListed);

    let t = r.text();
    assert!(t.starts_with("standard INQUIRY:\n"), "{t}");
    assert!(t.contains("Unit serial number VPD page:\n  Product serial number: abc\n"));
    assert!(
        t.contains("Block limits VPD page (SBC): error: refused: SCSI status CHECK CONDITION\n")
    );
    assert!(t.contains(
        "Block device characteristics VPD page (SBC): not listed in the supported VPD pages\n"
    ));
    assert!(t.contains("Logical block provisioning VPD page (SBC):\n  Threshold exponent=0\n"));
    assert!(t.contains("      Target port group: 0x1\n"), "{t}");

    let j = r.json();
    assert_eq!(j["url"], URL);
    assert_eq!(j["standard"]["t10_vendor_identification"], "IRONLUN");
    assert_eq!(j["standard"]["tpgs"], 0);
    let vpd = j["vpd"].as_object().unwrap();
    let keys: Vec<&str> = vpd.keys().map(String::as_str).collect();
    assert_eq!(keys, ["0x00", "0x80", "0x83", "0xb0", "0xb2"]);
    assert_eq!(vpd["0x00"]["name"], "Supported VPD pages");
    assert_eq!(vpd["0x00"]["pages"][4]["code"], 0xB2);
    assert_eq!(vpd["0x80"]["product_serial_number"], "abc");
    assert_eq!(vpd["0x83"]["name"], "Device identification");
    let d = &vpd["0x83"]["designators"];
    assert_eq!(d[0]["designator"]["kind"], "naa");
    assert_eq!(d[0]["designator"]["naa_type"], "IEEE Registered Extended");
    assert_eq!(d[0]["association"], 0);
    assert_eq!(d[1]["piv"], true);
    assert_eq!(d[1]["protocol"], "Internet SCSI (iSCSI)");
    assert_eq!(d[1]["designator"]["kind"], "target_port_group");
    assert_eq!(d[1]["designator"]["target_port_group"], 1);
    assert_eq!(vpd["0xb0"]["error"], "refused: SCSI status CHECK CONDITION");
    assert_eq!(vpd["0xb0"]["name"], "Block limits");
    assert_eq!(vpd["0xb2"]["lbpu"], true);
    assert_eq!(vpd["0xb2"]["provisioning_type_name"], "thin provisioned");
}

#[test]
fn a_malformed_listed_page_fails_the_report_naming_page_and_offset() {
    let page0 = page(0x00, &[0x00, 0x83]);
    let mut bad = ident_page();
    bad[4 + 20 + 3] = 8; // the target port group designator claims 8 bytes
    let e = assemble(URL, &std_inquiry(), &page0, &[(0x83, Fetched::Page(bad))]).unwrap_err();
    assert_eq!(
        e.0,
        format!(
            "VPD page 0x83 (Device identification) from {URL} is malformed: designation \
             descriptor at byte 24: DESIGNATOR LENGTH 8 overruns the page (4 bytes left after \
             the header)"
        )
    );
    assert!(!e.0.contains('\n'));
    let e = assemble(URL, &std_inquiry(), &page(0x80, &[]), &[]).unwrap_err();
    assert!(
        e.0.starts_with("VPD page 0x00 (Supported VPD pages) from"),
        "{e}"
    );
}

#[test]
fn block_pages_only_for_block_devices() {
    assert_eq!(pages_for(0x00), PAGES);
    assert_eq!(pages_for(0x14), PAGES);
    assert_eq!(pages_for(0x01), [0x80, 0x83]);
    let mut tape = std_inquiry();
    tape[0] = 0x01;
    let r = assemble(URL, &tape, &page(0x00, &[0x00, 0xB0]), &[]).unwrap();
    assert_eq!(r.pages.len(), 2);
    assert!(r.json()["vpd"].get("0xb0").is_none());
}

#[test]
fn each_provisioning_flag_is_read_from_its_own_bit() {
    type Get = fn(&vpd_block::Provisioning) -> bool;
    let flags: [(u8, &str, Get); 6] = [
        (7, "lbpu", |p| p.lbpu),
        (6, "lbpws", |p| p.lbpws),
        (5, "lbpws10", |p| p.lbpws10),
        (2, "lbprz", |p| p.lbprz != 0),
        (1, "anc_sup", |p| p.anc_sup),
        (0, "dp", |p| p.dp),
    ];
    for (bit, name, get) in flags {
        let mut b = vec![0, 1 << bit, 0, 0];
        b.extend(desig(0, 1, false, 0, 3, &naa6()));
        let p = decode_provisioning(&page(0xB2, &b)).unwrap();
        assert!(get(&p), "{name} not read from byte 5 bit {bit}");
        for (bit2, n2, g2) in flags {
            assert_eq!(
                g2(&p),
                bit2 == bit,
                "{n2} with byte 5 bit {bit} ({name}) set"
            );
        }
    }
}

#[test]
fn each_characteristics_flag_is_read_from_its_own_bit() {
    for (byte8, fuab, vbuls) in [(0x02, true, false), (0x01, false, true)] {
        let c = decode_block_characteristics(&page(0xB1, &[0, 0, 0, 0, byte8])).unwrap();
        assert_eq!((c.fuab, c.vbuls, c.zoned), (fuab, vbuls, 0));
    }
    let c = decode_block_characteristics(&page(0xB1, &[0, 0, 0, 0x80, 0x10])).unwrap();
    assert_eq!((c.wabereq, c.wacereq, c.zoned), (2, 0, 1));
    assert_eq!(c.zoned_name, "host-aware");
    let c = decode_block_characteristics(&page(0xB1, &[0, 0, 0, 0x14, 0])).unwrap();
    assert_eq!((c.wabereq, c.wacereq, c.nominal_form_factor), (0, 1, 4));
    assert_eq!(c.nominal_form_factor_name, "1.8 inch");
}
