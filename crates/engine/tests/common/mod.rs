//! Test rig: an in-memory backstore with counters and an optional gate that holds reads, a
//! device exported through one port, and CDB-plus-expectation helpers.
#![allow(dead_code)]

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use ironlun_backstore::Backstore;
use ironlun_engine::scsi::{status, Sense};
use ironlun_engine::*;
use parking_lot::{Condvar, Mutex, RwLock};

pub const BS: usize = 512;
pub const BLOCKS: usize = 2048;

#[derive(Default)]
pub struct Mem {
    pub data: RwLock<Vec<u8>>,
    pub wc: bool,
    pub ro: bool,
    pub flushes: AtomicUsize,
    pub writes: AtomicUsize,
    pub fua_writes: AtomicUsize,
    /// While true, reads wait (to hold a task in the task set).
    gate: Mutex<bool>,
    gate_cv: Condvar,
    pub reads_waiting: AtomicUsize,
    /// Claim to be memory that never blocks (`Backstore::never_blocks`).
    pub nonblocking: bool,
}

impl Mem {
    pub fn new(bytes: usize, wc: bool) -> Arc<Mem> {
        Arc::new(Mem {
            data: RwLock::new(vec![0; bytes]),
            wc,
            ..Mem::default()
        })
    }

    /// Memory that says it never blocks (its gate must then stay open).
    pub fn nonblocking(bytes: usize) -> Arc<Mem> {
        Arc::new(Mem {
            data: RwLock::new(vec![0; bytes]),
            nonblocking: true,
            ..Mem::default()
        })
    }

    pub fn read_only(bytes: usize) -> Arc<Mem> {
        Arc::new(Mem {
            data: RwLock::new(vec![0; bytes]),
            ro: true,
            ..Mem::default()
        })
    }

    pub fn close_gate(&self) {
        *self.gate.lock() = true;
    }

    pub fn open_gate(&self) {
        *self.gate.lock() = false;
        self.gate_cv.notify_all();
    }
}

impl Backstore for Mem {
    fn size(&self) -> u64 {
        self.data.read().len() as u64
    }
    fn hw_block_size(&self) -> u32 {
        512
    }
    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<()> {
        {
            let mut g = self.gate.lock();
            if *g {
                self.reads_waiting.fetch_add(1, Ordering::SeqCst);
                while *g {
                    self.gate_cv.wait(&mut g);
                }
                self.reads_waiting.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let d = self.data.read();
        let off = off as usize;
        let src = d
            .get(off..off + buf.len())
            .ok_or_else(|| io::Error::other("out of range"))?;
        buf.copy_from_slice(src);
        Ok(())
    }
    fn write_at(&self, buf: &[u8], off: u64, fua: bool) -> io::Result<()> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        if fua {
            self.fua_writes.fetch_add(1, Ordering::SeqCst);
        }
        let mut d = self.data.write();
        let off = off as usize;
        let dst = d
            .get_mut(off..off + buf.len())
            .ok_or_else(|| io::Error::other("out of range"))?;
        dst.copy_from_slice(buf);
        Ok(())
    }
    fn flush(&self) -> io::Result<()> {
        self.flushes.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn write_cache(&self) -> bool {
        self.wc
    }
    fn never_blocks(&self) -> bool {
        self.nonblocking
    }
    fn read_only(&self) -> bool {
        self.ro
    }
}

pub struct Rig {
    pub mem: Arc<Mem>,
    pub dev: Arc<Device>,
    pub port: Arc<TargetPort>,
    pub a: Arc<Nexus>,
    pub b: Arc<Nexus>,
}

pub fn config() -> DeviceConfig {
    DeviceConfig {
        name: "ramdisk0".into(),
        unit_serial: "d9c5a8b2-1c4f-4e0a-9b3e-5f2d7c1a0b99".into(),
        vendor_id: "IRONLUN".into(),
        product_id: "ramdisk0".into(),
        revision: "4.0".into(),
        block_size: BS as u32,
    }
}

pub fn initiator(name: &str, isid: u8) -> InitiatorPortId {
    InitiatorPortId {
        name: name.into(),
        isid: [0x40, 0, 0, 0, 0, isid],
    }
}

/// A device (write cache on) at LUN 0 of a demo-mode port with two nexuses whose power-on
/// unit attentions are already consumed.
pub fn rig() -> Rig {
    rig_with(Mem::new(BS * BLOCKS, true))
}

pub fn rig_with(mem: Arc<Mem>) -> Rig {
    let dev = Device::new(config(), mem.clone()).expect("device");
    let (port, a, b) = export_two(&dev, "iqn.2024-01.org.ironlun:t1");
    Rig {
        mem,
        dev,
        port,
        a,
        b,
    }
}

/// `dev` at LUN 0 of a demo-mode port `target`, with two nexuses (iqn.a, iqn.b) whose power-on
/// unit attentions are already consumed.
pub fn export_two(dev: &Arc<Device>, target: &str) -> (Arc<TargetPort>, Arc<Nexus>, Arc<Nexus>) {
    let port = TargetPort::new(target, 1, 1);
    port.add_lun(0, dev.clone()).expect("lun");
    port.set_demo_mode(true, false);
    let a = port.open_nexus(initiator("iqn.a", 1)).expect("a");
    let b = port.open_nexus(initiator("iqn.b", 2)).expect("b");
    drain_ua(&a, 0);
    drain_ua(&b, 0);
    (port, a, b)
}

pub fn drain_ua(n: &Nexus, lun: u64) {
    for _ in 0..20 {
        if run(n, lun, &[0u8; 6], DataDirection::None, 0, vec![]).status == status::GOOD {
            return;
        }
    }
    panic!("unit attentions did not drain");
}

pub fn cdb16(bytes: &[u8]) -> Vec<u8> {
    let mut c = bytes.to_vec();
    c.resize(16.max(bytes.len()), 0);
    c
}

pub fn request(lun: u64, cdb: &[u8], dir: DataDirection, e: u32, data: Vec<u8>) -> ScsiRequest {
    ScsiRequest {
        lun,
        cdb: cdb16(cdb),
        tag: 0,
        attr: TaskAttr::Simple,
        direction: dir,
        expected_len: e,
        data_out: data,
    }
}

pub fn run(
    n: &Nexus,
    lun: u64,
    cdb: &[u8],
    dir: DataDirection,
    e: u32,
    data: Vec<u8>,
) -> ScsiResponse {
    n.execute(request(lun, cdb, dir, e, data))
}

/// Data-in command expected to succeed; returns the data.
pub fn cmd_in(n: &Nexus, cdb: &[u8], len: u32) -> Vec<u8> {
    let r = run(n, 0, cdb, DataDirection::Read, len, vec![]);
    assert_eq!(
        r.status,
        status::GOOD,
        "cdb {cdb:02x?}: sense {:?}",
        Sense::parse(&r.sense)
    );
    r.data_in
}

/// Data-out (or no-data) command expected to succeed.
pub fn cmd_out(n: &Nexus, cdb: &[u8], data: Vec<u8>) {
    let dir = if data.is_empty() {
        DataDirection::None
    } else {
        DataDirection::Write
    };
    let r = run(n, 0, cdb, dir, data.len() as u32, data);
    assert_eq!(
        r.status,
        status::GOOD,
        "cdb {cdb:02x?}: sense {:?}",
        Sense::parse(&r.sense)
    );
}

/// A command expected to end in CHECK CONDITION; returns the parsed sense.
pub fn cmd_fail_with(
    n: &Nexus,
    lun: u64,
    cdb: &[u8],
    dir: DataDirection,
    e: u32,
    data: Vec<u8>,
) -> Sense {
    let r = run(n, lun, cdb, dir, e, data);
    assert_eq!(r.status, status::CHECK_CONDITION, "cdb {cdb:02x?}");
    Sense::parse(&r.sense).expect("sense parses")
}

pub fn cmd_fail(n: &Nexus, cdb: &[u8]) -> Sense {
    cmd_fail_with(n, 0, cdb, DataDirection::Read, 4096, vec![])
}

/// (key, asc, ascq)
pub fn kaq(s: &Sense) -> (u8, u8, u8) {
    (s.key, s.asc.asc, s.asc.ascq)
}

/// (byte, bit) of an INVALID FIELD IN CDB / PARAMETER LIST field pointer.
pub fn pointer(s: &Sense) -> Option<(bool, u16, Option<u8>)> {
    s.field_pointer.map(|f| (f.cd, f.field, f.bit))
}

pub fn read10(lba: u32, n: u16) -> Vec<u8> {
    let mut c = vec![0x28, 0];
    c.extend_from_slice(&lba.to_be_bytes());
    c.push(0);
    c.extend_from_slice(&n.to_be_bytes());
    c.push(0);
    c
}

pub fn write10(lba: u32, n: u16, flags: u8) -> Vec<u8> {
    let mut c = read10(lba, n);
    c[0] = 0x2A;
    c[1] = flags;
    c
}

/// WRITE SAME(16) of `n` blocks at `lba`, byte 1 = `b1` (UNMAP 0x08, ANCHOR 0x10, NDOB 0x01).
pub fn ws16(lba: u64, n: u32, b1: u8) -> Vec<u8> {
    let mut c = vec![0x93, b1];
    c.extend_from_slice(&lba.to_be_bytes());
    c.extend_from_slice(&n.to_be_bytes());
    c.extend_from_slice(&[0, 0]);
    c
}

/// WRITE SAME(10), as [`ws16`].
pub fn ws10(lba: u32, n: u16, b1: u8) -> Vec<u8> {
    let mut c = vec![0x41, b1];
    c.extend_from_slice(&lba.to_be_bytes());
    c.push(0);
    c.extend_from_slice(&n.to_be_bytes());
    c.push(0);
    c
}
