//! Unit tests of the session's pure parts: Data-Out sequencing and SendTargets records.

use bytes::Bytes;
use ironlun_iscsi::Bhs;

use super::text::parse_send_targets;
use super::transfer::{data_out_pdus, Burst};

#[test]
fn data_out_sequences_split_and_number() {
    let data = Bytes::from(vec![7u8; 10_000]);
    let b = Burst {
        lun_raw: [0; 8],
        itt: 9,
        ttt: 0x44,
        exp_stat_sn: 3,
    };
    let pdus = data_out_pdus(&b, &data, 1000, 9000, 4096);
    assert_eq!(pdus.len(), 3);
    let sizes: Vec<usize> = pdus.iter().map(|p| p.data.len()).collect();
    assert_eq!(sizes, vec![4096, 4096, 808]);
    for (i, p) in pdus.iter().enumerate() {
        let Bhs::DataOut(d) = &p.bhs else { panic!() };
        assert_eq!(d.data_sn, i as u32);
        assert_eq!(d.buffer_offset, 1000 + 4096 * i as u32);
        assert_eq!(d.final_, i == 2);
        assert_eq!(d.ttt, 0x44);
    }
}

#[test]
fn send_targets_records() {
    let p = |k: &str, v: &str| (k.to_string(), v.to_string());
    let pairs = vec![
        p("TargetName", "iqn.a"),
        p("TargetAddress", "1.2.3.4:3260,1"),
        p("TargetName", "iqn.b"),
    ];
    let t = parse_send_targets(&pairs).unwrap();
    assert_eq!(t.len(), 2);
    assert_eq!(t[0].addresses, vec!["1.2.3.4:3260,1"]);
    assert!(t[1].addresses.is_empty());
    assert!(parse_send_targets(&[p("TargetAddress", "x")]).is_err());
}
