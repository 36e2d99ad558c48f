//! INQUIRY data: standard data (SPC-4 §6.6.2, 96 bytes as LIO) and the VPD pages
//! 00h supported pages, 80h unit serial number, 83h device identification (SPC-4 §7.8),
//! 86h extended INQUIRY data, B0h block limits, B1h block device characteristics and
//! B2h logical block provisioning (SBC-3 §6.5).

use std::sync::atomic::Ordering;

use ironlun_scsi::{device_type, version_descriptor as vd};

use crate::alua;
use crate::core::device::slot::LunSlot;
use crate::core::device::{Device, COMPANY_ID};
use crate::core::port::nexus::Nexus;
use crate::handler::Ctx;

const STANDARD_LEN: usize = 96;

/// Pages we offer, ascending (VPD 00h).
const PAGES: &[u8] = &[0x00, 0x80, 0x83, 0x86, 0xB0, 0xB1, 0xB2];

/// iSCSI protocol identifier (SPC-4 §7.6.1 table 362) for designators with PIV=1.
const PROTOCOL_ISCSI: u8 = 0x5;

fn put_ascii(out: &mut [u8], s: &str) {
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = s.as_bytes().get(i).copied().unwrap_or(b' ');
    }
}

fn standard_common(vendor: &str, product: &str, revision: &str) -> Vec<u8> {
    let mut d = vec![0u8; STANDARD_LEN];
    d[2] = 0x06; // VERSION: SPC-4
    d[3] = 0x02; // RESPONSE DATA FORMAT 2
    d[4] = (STANDARD_LEN - 5) as u8;
    d[7] = 0x02; // CMDQUE
    put_ascii(&mut d[8..16], vendor);
    put_ascii(&mut d[16..32], product);
    put_ascii(&mut d[32..36], revision);
    for (i, v) in [vd::SAM_5, vd::ISCSI, vd::SPC_4, vd::SBC_3]
        .iter()
        .enumerate()
    {
        d[58 + 2 * i..60 + 2 * i].copy_from_slice(&v.to_be_bytes());
    }
    d
}

/// Standard INQUIRY data of a mapped LU.
pub(crate) fn standard_inquiry(c: &Ctx) -> Vec<u8> {
    let dev = c.dev;
    let mut d = standard_common(&dev.vendor(), &dev.product(), &dev.revision());
    d[0] = device_type::DIRECT_ACCESS;
    if dev.media.removable() {
        d[1] |= 0x80; // RMB
    }
    d[5] = alua::gate::tpgs_bits(c.slot);
    if dev.emulate_3pc.load(Ordering::Relaxed) {
        d[5] |= 0x08; // 3PC: EXTENDED COPY is offered
    }
    if dev.exports().len() > 1 {
        d[6] |= 0x10; // MULTIP
    }
    d
}

/// Standard INQUIRY data for a LUN with no LU: peripheral qualifier 011b, type 1Fh.
pub(crate) fn absent_lun_inquiry() -> Vec<u8> {
    let mut d = standard_common("IRONLUN", "", "");
    d[0] = 0x60 | device_type::UNKNOWN;
    d
}

fn page_header(code: u8, body: Vec<u8>) -> Vec<u8> {
    let mut d = vec![device_type::DIRECT_ACCESS, code];
    d.extend_from_slice(&(body.len() as u16).to_be_bytes());
    d.extend_from_slice(&body);
    d
}

pub(crate) fn page(c: &Ctx, code: u8) -> Option<Vec<u8>> {
    let dev = c.dev;
    let body = match code {
        0x00 => PAGES.to_vec(),
        0x80 => dev.serial().into_bytes(),
        0x83 => device_identification(c),
        0x86 => {
            let mut b = vec![0u8; 0x3C];
            b[1] = 0x07; // HEADSUP | ORDSUP | SIMPSUP
            if dev.write_cache.load(Ordering::Relaxed) {
                b[2] = 0x01; // V_SUP
            }
            b
        }
        0xB0 => block_limits(dev),
        0xB1 => {
            let mut b = vec![0u8; 0x3C];
            if dev.nonrot.load(Ordering::Relaxed) {
                b[1] = 0x01; // MEDIUM ROTATION RATE: non-rotating
            }
            if dev.emulate_tpu.load(Ordering::Relaxed) {
                // WABEREQ 01b: after SANITIZE BLOCK ERASE (offered with thin provisioning),
                // reads of the erased blocks return GOOD status (zeroes, LBPRZ).
                b[3] |= 0x40;
            }
            b
        }
        0xB2 => logical_block_provisioning(dev),
        _ => return None,
    };
    Some(page_header(code, body))
}

fn block_limits(dev: &Device) -> Vec<u8> {
    let mut b = vec![0u8; 0x3C];
    if dev.wsnz() {
        b[0] = 0x01; // WSNZ
    }
    // MAXIMUM COMPARE AND WRITE LENGTH (byte 5 of the page); at most 128, fits the byte.
    b[1] = u8::try_from(dev.max_caw_blocks()).unwrap_or(u8::MAX);
    b[2..4].copy_from_slice(&1u16.to_be_bytes()); // OPTIMAL TRANSFER LENGTH GRANULARITY
    b[4..8].copy_from_slice(&dev.hw_max_sectors().to_be_bytes());
    b[8..12].copy_from_slice(&dev.optimal_sectors().to_be_bytes());
    if dev.emulate_tpu.load(Ordering::Relaxed) {
        // Bytes 20..36 of the page: MAXIMUM UNMAP LBA COUNT, MAXIMUM UNMAP BLOCK DESCRIPTOR
        // COUNT, OPTIMAL UNMAP GRANULARITY, UGAVALID + UNMAP GRANULARITY ALIGNMENT. UGAVALID
        // is set: the backstores free granules counted from offset 0.
        b[16..20].copy_from_slice(&dev.max_unmap_lba().to_be_bytes());
        b[20..24].copy_from_slice(&dev.max_unmap_descriptors().to_be_bytes());
        b[24..28].copy_from_slice(&dev.unmap_granularity_blocks().to_be_bytes());
        b[28..32].copy_from_slice(&(dev.unmap_alignment() & 0x7FFF_FFFF).to_be_bytes());
        b[28] |= 0x80;
    }
    // MAXIMUM WRITE SAME LENGTH (bytes 36..44 of the page).
    b[32..40].copy_from_slice(&u64::from(dev.max_write_same_blocks()).to_be_bytes());
    // WRITE ATOMIC(16) limits (bytes 44..64 of the page).
    b[40..60].copy_from_slice(&crate::cmd::atomic::atomic_limits(dev));
    b
}

/// Logical Block Provisioning VPD page body (SBC-3 §6.5.4): LBPU with `emulate_tpu`, LBPWS and
/// LBPWS10 with `emulate_tpws`, LBPRZ, ANC_SUP=0, PROVISIONING TYPE 010b (thin) while either
/// is on, else 000b (full; every other field zero).
fn logical_block_provisioning(dev: &Device) -> Vec<u8> {
    let mut b = vec![0u8; 4];
    if dev.emulate_tpu.load(Ordering::Relaxed) {
        b[1] |= 0x80; // LBPU
    }
    if dev.tpws() {
        b[1] |= 0x60; // LBPWS | LBPWS10
    }
    if dev.lbprz() {
        b[1] |= 0x04; // LBPRZ
    }
    if dev.thin() {
        b[2] = 0x02; // PROVISIONING TYPE: thin provisioned
    }
    b
}

/// The NAA IEEE Registered Extended designator LIO derives from the unit serial: NAA 6, the
/// 24-bit company id, then the serial's hex digits (others skipped), zero-filled, 16 bytes.
pub(crate) fn naa_designator(serial: &str) -> [u8; 16] {
    let mut nibbles: Vec<u8> = vec![0x6];
    for i in (0..6).rev() {
        nibbles.push(((COMPANY_ID >> (4 * i)) & 0xF) as u8);
    }
    nibbles.extend(
        serial
            .chars()
            .filter_map(|ch| ch.to_digit(16))
            .map(|d| d as u8)
            .take(32 - 7),
    );
    nibbles.resize(32, 0);
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        *o = (nibbles[2 * i] << 4) | nibbles[2 * i + 1];
    }
    out
}

/// A designation descriptor (SPC-4 §7.8.6.1): code set, PIV/association/type, identifier.
fn designator(code_set: u8, piv: bool, assoc: u8, kind: u8, id: &[u8]) -> Vec<u8> {
    let proto = if piv { PROTOCOL_ISCSI << 4 } else { 0 };
    let mut d = vec![
        proto | code_set,
        (u8::from(piv) << 7) | (assoc << 4) | kind,
        0,
        id.len() as u8,
    ];
    d.extend_from_slice(id);
    d
}

/// SCSI name string: UTF-8, NUL terminated and padded to a multiple of 4 (SPC-4 §7.8.6.11).
fn name_string(s: &str) -> Vec<u8> {
    let mut v: Vec<u8> = s.as_bytes().iter().copied().take(251).collect();
    v.push(0);
    while v.len() & 3 != 0 {
        v.push(0);
    }
    v
}

const BINARY: u8 = 1;
const ASCII: u8 = 2;
const UTF8: u8 = 3;
/// Designator associations (SPC-4 §7.8.6.1): the LU, the target port, the target device.
const LU: u8 = 0;
const PORT: u8 = 1;
const DEVICE: u8 = 2;

fn device_identification(c: &Ctx) -> Vec<u8> {
    let dev = c.dev;
    let serial = dev.serial();
    let mut b = Vec::new();
    if !serial.is_empty() {
        b.extend(designator(BINARY, false, LU, 0x3, &naa_designator(&serial)));
    }
    let mut t10 = Vec::new();
    let mut vendor = [b' '; 8];
    put_ascii(&mut vendor, &dev.vendor());
    t10.extend_from_slice(&vendor);
    t10.extend_from_slice(dev.product().trim_end().as_bytes());
    t10.push(b':');
    t10.extend_from_slice(serial.as_bytes());
    t10.truncate(252);
    b.extend(designator(ASCII, false, LU, 0x1, &t10));
    // LIO's order: the port's numbers, the LU group, then the names.
    b.extend(port_numbers(c.nexus, c.slot));
    // Logical unit group (SPC-4 §7.8.6.8): the device's LU group, 0 = default_lu_gp.
    let lug = alua::gate::lu_group_of(c.dev).to_be_bytes();
    b.extend(designator(BINARY, false, LU, 0x6, &[0, 0, lug[0], lug[1]]));
    b.extend(port_names(c.nexus));
    b
}

/// The designators of the port the command came through and of the target (SPC-4
/// §7.8.6.5-7.8.6.11): relative target port, target port group, the port's and the target's
/// SCSI name strings. A pass-through LU gets these in place of its device's own.
pub(crate) fn port_designators(nexus: &Nexus, slot: &LunSlot) -> Vec<u8> {
    [port_numbers(nexus, slot), port_names(nexus)].concat()
}

/// Relative target port and target port group designators.
fn port_numbers(nexus: &Nexus, slot: &LunSlot) -> Vec<u8> {
    let rtpi = nexus.port.rtpi().to_be_bytes();
    let tpg = alua::gate::group_of(slot).to_be_bytes();
    [
        designator(BINARY, true, PORT, 0x4, &[0, 0, rtpi[0], rtpi[1]]),
        designator(BINARY, true, PORT, 0x5, &[0, 0, tpg[0], tpg[1]]),
    ]
    .concat()
}

/// The SCSI name strings of the target port and of the target.
fn port_names(nexus: &Nexus) -> Vec<u8> {
    let port = &nexus.port;
    [
        designator(UTF8, true, PORT, 0x8, &name_string(&port.port_name())),
        designator(UTF8, true, DEVICE, 0x8, &name_string(port.target_name())),
    ]
    .concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn naa_is_lio_compatible() {
        let naa = naa_designator("d9c5a8b2-1c4f-4e0a-9b3e-5f2d7c1a0b99");
        // 6 | 001405 | d9c5a8b21c4f4e0a9b3e5f2d7 (25 hex digits)
        assert_eq!(
            naa,
            [
                0x60, 0x01, 0x40, 0x5d, 0x9c, 0x5a, 0x8b, 0x21, 0xc4, 0xf4, 0xe0, 0xa9, 0xb3, 0xe5,
                0xf2, 0xd7
            ]
        );
    }

    #[test]
    fn name_strings_are_nul_padded_to_four() {
        assert_eq!(name_string("abc"), b"abc\0".to_vec());
        assert_eq!(name_string("abcd"), b"abcd\0\0\0\0".to_vec());
    }
}
