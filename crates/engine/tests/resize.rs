//! A live capacity change (SBC-3 §4.9): the backstore is resized under an exported LU, then
//! `Device::capacity_changed` raises CAPACITY DATA HAS CHANGED, reported once per I_T nexus;
//! READ CAPACITY and LBA range checks follow the new size at once.

mod common;

use std::sync::Arc;

use common::*;
use ironlun_backstore::{Backstore, RamDisk};
use ironlun_engine::scsi::{status, Sense};
use ironlun_engine::*;

const MIB: u64 = 1024 * 1024;
const TUR: [u8; 6] = [0; 6];

struct Lu {
    store: Arc<RamDisk>,
    dev: Arc<Device>,
    a: Arc<Nexus>,
    b: Arc<Nexus>,
    _port: Arc<TargetPort>,
}

/// A 1 MiB ramdisk LU at LUN 0 with two nexuses whose power-on conditions are consumed.
fn lu() -> Lu {
    let store = Arc::new(RamDisk::new(MIB).expect("ramdisk"));
    let dev = Device::new(config(), store.clone()).expect("device");
    let (port, a, b) = export_two(&dev, "iqn.2024-01.org.ironlun:resize");
    Lu {
        store,
        dev,
        a,
        b,
        _port: port,
    }
}

fn read_capacity_16() -> Vec<u8> {
    vec![0x9E, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0]
}

fn read_capacity_10() -> Vec<u8> {
    vec![0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0]
}

/// The sense of a command expected to fail with a unit attention.
fn unit_attention(n: &Nexus, cdb: &[u8]) -> (u8, u8, u8) {
    let r = run(n, 0, cdb, DataDirection::Read, 4096, vec![]);
    assert_eq!(r.status, status::CHECK_CONDITION, "cdb {cdb:02x?}");
    kaq(&Sense::parse(&r.sense).expect("sense"))
}

fn last_lba_16(n: &Nexus) -> u64 {
    let d = cmd_in(n, &read_capacity_16(), 32);
    u64::from_be_bytes(d[..8].try_into().expect("8 bytes"))
}

#[test]
fn growing_reports_the_new_capacity_once_per_nexus_and_opens_the_new_blocks() {
    let lu = lu();
    let old_blocks = MIB / BS as u64;
    assert_eq!(last_lba_16(&lu.a), old_blocks - 1);
    // Before the resize, the block after the end is out of range.
    let s = cmd_fail(&lu.a, &read10(old_blocks as u32, 1));
    assert_eq!(kaq(&s), (5, 0x21, 0));

    lu.store.resize(4 * MIB).expect("grow");
    lu.dev.capacity_changed();
    let new_blocks = 4 * MIB / BS as u64;

    // Nexus a: READ CAPACITY(16) first reports the unit attention, then the new size.
    assert_eq!(unit_attention(&lu.a, &read_capacity_16()), (6, 0x2A, 0x09));
    assert_eq!(last_lba_16(&lu.a), new_blocks - 1);
    let d = cmd_in(&lu.a, &read_capacity_10(), 8);
    assert_eq!(&d[..4], &(new_blocks as u32 - 1).to_be_bytes());
    assert_eq!(&d[4..], &(BS as u32).to_be_bytes());
    // Reported once: the next commands are GOOD.
    let r = run(&lu.a, 0, &TUR, DataDirection::None, 0, vec![]);
    assert_eq!(r.status, status::GOOD);

    // Nexus b: its own unit attention on its next command (a write past the old end),
    // which is not executed; the retry is.
    let data: Vec<u8> = (0..BS).map(|i| (i % 251) as u8 + 1).collect();
    let w = write10(old_blocks as u32 + 7, 1, 0);
    let r = run(&lu.b, 0, &w, DataDirection::Write, BS as u32, data.clone());
    assert_eq!(r.status, status::CHECK_CONDITION);
    assert_eq!(
        kaq(&Sense::parse(&r.sense).expect("sense")),
        (6, 0x2A, 0x09)
    );
    cmd_out(&lu.b, &w, data.clone());
    assert_eq!(
        cmd_in(&lu.b, &read10(old_blocks as u32 + 7, 1), BS as u32),
        data
    );
    // And from the other nexus too; the last block is in range, the one after is not.
    assert_eq!(
        cmd_in(&lu.a, &read10(old_blocks as u32 + 7, 1), BS as u32),
        data
    );
    cmd_in(&lu.a, &read10(new_blocks as u32 - 1, 1), BS as u32);
    let s = cmd_fail(&lu.a, &read10(new_blocks as u32, 1));
    assert_eq!(kaq(&s), (5, 0x21, 0));
    assert_eq!(lu.dev.info().blocks, new_blocks);
}

#[test]
fn shrinking_puts_the_dropped_blocks_out_of_range() {
    let lu = lu();
    lu.store.resize(MIB / 2).expect("shrink");
    lu.dev.capacity_changed();
    let blocks = MIB / 2 / BS as u64;
    assert_eq!(unit_attention(&lu.b, &TUR), (6, 0x2A, 0x09));
    assert_eq!(last_lba_16(&lu.b), blocks - 1);
    let s = cmd_fail(&lu.b, &read10(blocks as u32, 1));
    assert_eq!(kaq(&s), (5, 0x21, 0));
    // PRE-FETCH(10) with length 0 means "to the end": the end is the new one.
    let r = run(
        &lu.b,
        0,
        &[0x34, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        DataDirection::None,
        0,
        vec![],
    );
    assert_eq!(r.status, status::CONDITION_MET);
    assert_eq!(unit_attention(&lu.a, &read10(0, 1)), (6, 0x2A, 0x09));
    cmd_in(&lu.a, &read10(blocks as u32 - 1, 1), BS as u32);
}
