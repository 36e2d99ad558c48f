//! The engine's command path (`ironlun_engine`, SAM-5 / SPC-4 / SBC-3): CDB sequences from
//! four I_T nexuses (two initiators on each of two target ports) against two RAM-disk LUs, with
//! task management, I_T nexus loss, device attribute changes and ALUA state changes between
//! commands.
//!
//! Input: a sequence of steps of at most [`MAX_STEPS`]. The first byte of a step names the
//! nexus (low 2 bits) and the kind: a CDB from a list of the opcodes with the most state
//! behind them (persistent reservations, STPG / RTPG, EXTENDED COPY, COMPARE AND WRITE, UNMAP,
//! MODE SELECT, READ / WRITE, …) with input-chosen fields and parameter data, a raw CDB, a
//! TMF, a nexus closed and opened again, a device attribute set, or an ALUA group state set.
//!
//! The ALUA groups' `nonop_delay_msecs` is 0 here (not 100 ms) so that commands on an
//! Active/Non-optimized port do not sleep.
//!
//! Properties: no command returns more data than the initiator expects, and every CHECK
//! CONDITION carries sense data that parses.

use std::sync::Arc;

use ironlun_backstore::RamDisk;
use ironlun_engine::scsi::{status, Sense};
use ironlun_engine::{
    DataDirection, Device, DeviceConfig, InitiatorPortId, Nexus, ScsiRequest, TargetPort, TaskAttr,
    TmfKind,
};

use crate::input::Input;

/// Steps of one input.
pub const MAX_STEPS: usize = 48;
/// Largest Data-Out one command carries.
const MAX_DATA: usize = 16 * 1024;
const BLOCK: u32 = 512;
/// Each LU's size: 1 MiB.
const LU_BYTES: u64 = 1 << 20;

/// Opcodes the templated CDBs pick from, with their service actions where they have some.
const OPS: &[(u8, u8)] = &[
    (0x00, 0),    // TEST UNIT READY
    (0x03, 0),    // REQUEST SENSE
    (0x12, 0),    // INQUIRY
    (0x15, 0),    // MODE SELECT(6)
    (0x16, 0),    // RESERVE(6)
    (0x17, 0),    // RELEASE(6)
    (0x1a, 0),    // MODE SENSE(6)
    (0x1b, 0),    // START STOP UNIT
    (0x1e, 0),    // PREVENT ALLOW MEDIUM REMOVAL
    (0x25, 0),    // READ CAPACITY(10)
    (0x28, 0),    // READ(10)
    (0x2a, 0),    // WRITE(10)
    (0x2e, 0),    // WRITE AND VERIFY(10)
    (0x2f, 0),    // VERIFY(10)
    (0x35, 0),    // SYNCHRONIZE CACHE(10)
    (0x41, 0),    // WRITE SAME(10)
    (0x42, 0),    // UNMAP
    (0x4d, 0),    // LOG SENSE
    (0x55, 0),    // MODE SELECT(10)
    (0x5a, 0),    // MODE SENSE(10)
    (0x5e, 0x00), // PR IN READ KEYS
    (0x5e, 0x01), // PR IN READ RESERVATION
    (0x5e, 0x02), // PR IN REPORT CAPABILITIES
    (0x5e, 0x03), // PR IN READ FULL STATUS
    (0x5f, 0x00), // PR OUT REGISTER
    (0x5f, 0x01), // PR OUT RESERVE
    (0x5f, 0x02), // PR OUT RELEASE
    (0x5f, 0x03), // PR OUT CLEAR
    (0x5f, 0x04), // PR OUT PREEMPT
    (0x5f, 0x05), // PR OUT PREEMPT AND ABORT
    (0x5f, 0x06), // PR OUT REGISTER AND IGNORE EXISTING KEY
    (0x5f, 0x07), // PR OUT REGISTER AND MOVE
    (0x83, 0x00), // EXTENDED COPY (LID1)
    (0x83, 0x01), // EXTENDED COPY (LID4)
    (0x84, 0x00), // RECEIVE COPY STATUS (LID1)
    (0x84, 0x03), // RECEIVE COPY OPERATING PARAMETERS
    (0x84, 0x05), // RECEIVE COPY DATA (LID4)
    (0x88, 0),    // READ(16)
    (0x89, 0),    // COMPARE AND WRITE
    (0x8a, 0),    // WRITE(16)
    (0x8f, 0),    // VERIFY(16)
    (0x93, 0),    // WRITE SAME(16)
    (0x9e, 0x10), // READ CAPACITY(16)
    (0x9e, 0x12), // GET LBA STATUS
    (0xa0, 0),    // REPORT LUNS
    (0xa3, 0x0a), // REPORT TARGET PORT GROUPS
    (0xa3, 0x0c), // REPORT SUPPORTED OPERATION CODES
    (0xa3, 0x0d), // REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS
    (0xa4, 0x0a), // SET TARGET PORT GROUPS
    (0x56, 0),    // RESERVE(10)
    (0x57, 0),    // RELEASE(10)
];

/// Device attributes a step may set, and the values it picks from.
const ATTRS: &[&str] = &[
    "emulate_tpu",
    "emulate_tpws",
    "emulate_3pc",
    "emulate_caw",
    "emulate_pr",
    "emulate_tas",
    "emulate_ua_intlck_ctrl",
    "emulate_write_cache",
    "emulate_fua_write",
    "max_unmap_lba_count",
    "max_unmap_block_desc_count",
    "max_write_same_len",
    "unmap_granularity",
    "unmap_zeroes_data",
    "force_pr_aptpl",
    "emulate_rest_reord",
];
const VALUES: &[&str] = &["0", "1", "2", "8", "1024", "65535"];

/// ALUA states a step may put the second port's group in (SPC-4 Table 414 names).
const ALUA_STATES: &[&str] = &["0", "1", "2", "3", "14", "15"];

struct Rig {
    ports: [Arc<TargetPort>; 2],
    devs: [Arc<Device>; 2],
    ids: [(usize, InitiatorPortId); 4],
    nexuses: Vec<Arc<Nexus>>,
}

fn initiator(name: &str, isid: u8) -> InitiatorPortId {
    InitiatorPortId {
        name: name.into(),
        isid: [0x40, 0, 0, 0, 0, isid],
    }
}

/// A RAM-disk LU of `bytes` with 512-byte blocks, named `rd<n>`, serial `fuzz-<n>`.
pub(crate) fn ram_device(n: u8, bytes: u64) -> Option<Arc<Device>> {
    let disk = Arc::new(RamDisk::new(bytes).ok()?);
    let config = DeviceConfig {
        name: format!("rd{n}"),
        unit_serial: format!("fuzz-{n}"),
        vendor_id: String::from("IRONLUN"),
        product_id: String::from("fuzz"),
        revision: String::from("1.0"),
        block_size: BLOCK,
    };
    Device::new(config, disk).ok()
}

fn rig() -> Option<Rig> {
    let devs = [ram_device(0, LU_BYTES)?, ram_device(1, LU_BYTES)?];
    let ports = [
        TargetPort::new("iqn.2024-01.fuzz.ironlun:engine", 1, 1),
        TargetPort::new("iqn.2024-01.fuzz.ironlun:engine", 2, 2),
    ];
    for d in &devs {
        d.create_alua_group("west", 2).ok()?;
        for g in d.alua_groups() {
            // An Active/Non-optimized port delays each command (100 ms by default): no delay,
            // or the fuzzer spends its time asleep.
            d.set_alua_group_attribute(&g, "nonop_delay_msecs", "0")
                .ok()?;
        }
    }
    for p in &ports {
        p.add_lun(0, devs[0].clone()).ok()?;
        p.add_lun(1, devs[1].clone()).ok()?;
        p.set_demo_mode(true, false);
    }
    for lun in 0..2 {
        ports[1].set_lun_alua_group(lun, "west").ok()?;
    }
    let ids = [
        (0, initiator("iqn.2024-01.fuzz:a", 1)),
        (0, initiator("iqn.2024-01.fuzz:b", 2)),
        (1, initiator("iqn.2024-01.fuzz:a", 1)),
        (1, initiator("iqn.2024-01.fuzz:c", 3)),
    ];
    let mut nexuses = Vec::new();
    for (p, id) in &ids {
        nexuses.push(ports[*p].open_nexus(id.clone()).ok()?);
    }
    Some(Rig {
        ports,
        devs,
        ids,
        nexuses,
    })
}

pub fn run(data: &[u8]) {
    // The rig is the harness's own setup, not input: if it cannot be built, nothing is tested.
    let mut rig = rig().expect("the engine rig builds");
    let mut inp = Input::new(data);
    for _ in 0..MAX_STEPS {
        if inp.is_empty() {
            break;
        }
        step(&mut rig, &mut inp);
    }
    for n in &rig.nexuses {
        n.close();
    }
}

fn step(rig: &mut Rig, inp: &mut Input) {
    let op = inp.byte();
    let which = usize::from(op & 3);
    let lun = match inp.byte() % 8 {
        7 => 5,
        x => u64::from(x & 1),
    };
    match (op >> 2) % 16 {
        0..=8 => {
            let (code, sa) = OPS[usize::from(inp.byte()) % OPS.len()];
            let mut cdb = vec![0u8; cdb_len(code)];
            cdb[0] = code;
            for b in cdb.iter_mut().skip(1) {
                *b = inp.byte();
            }
            if sa != 0 || matches!(code, 0x5e | 0x5f | 0x83 | 0x84) {
                cdb[1] = (cdb[1] & 0xe0) | sa;
            }
            command(&rig.nexuses[which], lun, cdb, inp);
        }
        9..=11 => {
            let cdb = inp.chunk().to_vec();
            command(&rig.nexuses[which], lun, cdb, inp);
        }
        12 => {
            let kind = match inp.byte() % 7 {
                0 => TmfKind::AbortTask {
                    tag: u64::from(inp.byte()),
                },
                1 => TmfKind::AbortTaskSet,
                2 => TmfKind::ClearAca,
                3 => TmfKind::ClearTaskSet,
                4 => TmfKind::LogicalUnitReset,
                5 => TmfKind::TargetWarmReset,
                _ => TmfKind::TargetColdReset,
            };
            let _ = rig.nexuses[which].task_management(lun, kind);
        }
        13 => {
            // I_T nexus loss, then the same initiator port logs in again.
            rig.nexuses[which].close();
            let (p, id) = &rig.ids[which];
            if let Ok(n) = rig.ports[*p].open_nexus(id.clone()) {
                rig.nexuses[which] = n;
            }
        }
        14 => {
            let attr = ATTRS[usize::from(inp.byte()) % ATTRS.len()];
            let value = VALUES[usize::from(inp.byte()) % VALUES.len()];
            let _ = rig.devs[usize::from(op & 1)].set_attribute(attr, value);
        }
        _ => {
            let state = ALUA_STATES[usize::from(inp.byte()) % ALUA_STATES.len()];
            let _ = rig.devs[usize::from(op & 1)].set_alua_group_attribute(
                "west",
                "alua_access_state",
                state,
            );
        }
    }
}

/// Where `opcode` with service action `sa` is in the list the templated CDBs pick from.
pub(crate) fn op_index(opcode: u8, sa: u8) -> Option<u8> {
    let at = OPS.iter().position(|o| *o == (opcode, sa))?;
    u8::try_from(at).ok()
}

/// EXTENDED COPY (LID1, SPC-4 §6.4.3) parameter data copying 8 blocks from LBA 0 of LUN 0 to
/// LBA 16 of LUN 1, naming the LUs by the NAA designators the rig's devices report.
pub(crate) fn xcopy_params() -> Option<Vec<u8>> {
    let rig = rig()?;
    let naa = |lun: u64| {
        let r = rig.nexuses[0].execute(ScsiRequest {
            lun,
            cdb: vec![0x12, 0x01, 0x83, 0x01, 0x00, 0],
            tag: 0,
            attr: TaskAttr::Simple,
            direction: DataDirection::Read,
            expected_len: 256,
            data_out: Vec::new(),
        });
        ironlun_testkit::xcopy::naa_designator(&r.data_in)
    };
    let (src, dst) = (naa(0)?, naa(1)?);
    let mut p = vec![0u8; 16];
    p[1] = 0x18; // LIST ID USAGE 11b: no list identifier
    p[3] = 64; // two target descriptors
    p[11] = 28; // one segment descriptor
    p.extend(ironlun_testkit::xcopy::target_desc(&src, BLOCK));
    p.extend(ironlun_testkit::xcopy::target_desc(&dst, BLOCK));
    let mut seg = vec![0x02, 0, 0, 0x18, 0, 0, 0, 1, 0, 0, 0, 8];
    seg.extend_from_slice(&0u64.to_be_bytes());
    seg.extend_from_slice(&16u64.to_be_bytes());
    p.extend(seg);
    for n in &rig.nexuses {
        n.close();
    }
    Some(p)
}

/// The CDB length of an opcode's group (SPC-4 §4.2.5.1).
pub(crate) fn cdb_len(code: u8) -> usize {
    match code >> 5 {
        0 => 6,
        1 | 2 => 10,
        4 => 16,
        5 => 12,
        _ => 16,
    }
}

fn command(n: &Nexus, lun: u64, cdb: Vec<u8>, inp: &mut Input) {
    let flags = inp.byte();
    let len = match inp.byte() {
        0xff => usize::from(inp.u16()).min(MAX_DATA),
        x => usize::from(x) * 8,
    };
    let data = inp.take(len).to_vec();
    let (direction, expected_len) = if !data.is_empty() {
        (DataDirection::Write, data.len() as u32)
    } else if flags & 1 != 0 {
        (DataDirection::None, 0)
    } else {
        (DataDirection::Read, u32::from(inp.u16()))
    };
    let attr = match (flags >> 1) & 3 {
        0 => TaskAttr::Simple,
        1 => TaskAttr::Ordered,
        2 => TaskAttr::HeadOfQueue,
        _ => TaskAttr::Aca,
    };
    let r = n.execute(ScsiRequest {
        lun,
        cdb,
        tag: u64::from(flags >> 3),
        attr,
        direction,
        expected_len,
        data_out: data,
    });
    assert!(
        r.data_in.len() <= expected_len as usize,
        "{} bytes of Data-In for an expected length of {expected_len}",
        r.data_in.len()
    );
    if r.status == status::CHECK_CONDITION {
        assert!(
            Sense::parse(&r.sense).is_ok(),
            "CHECK CONDITION with sense that does not parse: {:02x?}",
            r.sense
        );
    }
}
