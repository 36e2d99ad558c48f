//! MODE SENSE(6)/(10) and MODE SELECT(6)/(10) (SPC-4 §6.11-6.14, mode pages SPC-4 §7.5,
//! SBC-3 §6.4). Pages: 01h read-write error recovery, 08h caching (WCE changeable), 0Ah
//! control (D_SENSE and SWP changeable), 1Ch informational exceptions control. Saved values
//! are not supported (PC 11b → SAVING PARAMETERS NOT SUPPORTED, SP=1 → INVALID FIELD IN CDB).
//! Mode parameters are per LU, shared by all I_T nexuses: a change raises MODE PARAMETERS
//! CHANGED on the other I_T_L nexuses.

use std::sync::atomic::Ordering;

use ironlun_scsi::cdb::{
    be16, be32, be64, byte, CdbError, Field, ModeSelect10, ModeSelect6, ModeSense10, ModeSense6,
};
use ironlun_scsi::sense::asc;
use ironlun_scsi::{opcode as op, Sense};

use crate::core::device::Device;
use crate::handler::{Ctx, Done, Outcome};

/// Page control (SPC-4 §6.11.1 table 112).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pc {
    Current,
    Changeable,
    Default,
}

const PAGE_CODES: &[u8] = &[0x01, 0x08, 0x0A, 0x1C];

fn page(dev: &Device, code: u8, pc: Pc) -> Option<Vec<u8>> {
    let mut p = match code {
        0x01 | 0x1C => vec![0u8; 12],
        0x08 => vec![0u8; 20],
        0x0A => vec![0u8; 12],
        _ => return None,
    };
    p[0] = code;
    p[1] = (p.len() - 2) as u8;
    match (code, pc) {
        (0x08, Pc::Changeable) => p[2] = 0x04,
        (0x08, _) => {
            let wce = match pc {
                Pc::Default => dev.write_cache_default(),
                _ => dev.write_cache.load(Ordering::Relaxed),
            };
            if wce {
                p[2] = 0x04;
            }
        }
        (0x0A, Pc::Changeable) => {
            p[2] = 0x04; // D_SENSE
            p[4] = 0x08; // SWP
        }
        (0x0A, _) => {
            let current = pc == Pc::Current;
            p[2] = 0x02; // GLTSD: no log parameters are saved
            if current && dev.d_sense.load(Ordering::Relaxed) {
                p[2] |= 0x04;
            }
            p[3] = 0x10; // QUEUE ALGORITHM MODIFIER 1: unrestricted reordering allowed
            p[4] = match dev.ua_intlck.load(Ordering::Relaxed) {
                0 => 0x00,
                1 => 0x20,
                _ => 0x30,
            };
            if current && dev.swp.load(Ordering::Relaxed) {
                p[4] |= 0x08;
            }
            if dev.tas.load(Ordering::Relaxed) {
                p[5] = 0x40;
            }
            p[8] = 0xFF; // BUSY TIMEOUT PERIOD: unlimited
            p[9] = 0xFF;
        }
        _ => {}
    }
    Some(p)
}

fn write_protected(c: &Ctx) -> bool {
    c.dev.backstore.read_only()
        || c.slot.write_protect.load(Ordering::Relaxed)
        || c.dev.swp.load(Ordering::Relaxed)
}

/// MODE SENSE (6) or (10), decoded, with the fields INVALID FIELD IN CDB points at in its
/// form.
struct SenseCdb {
    ten: bool,
    dbd: bool,
    llbaa: bool,
    pc: u8,
    page_code: u8,
    subpage_code: u8,
    alloc: u64,
    /// PC, PAGE CODE and SUBPAGE CODE.
    fields: [Field; 3],
}

impl SenseCdb {
    fn parse(cdb: &[u8]) -> Result<SenseCdb, CdbError> {
        Ok(if byte(cdb, 0) == op::MODE_SENSE_10 {
            let m = ModeSense10::parse(cdb)?;
            SenseCdb {
                ten: true,
                dbd: m.dbd,
                llbaa: m.llbaa,
                pc: m.pc,
                page_code: m.page_code,
                subpage_code: m.subpage_code,
                alloc: u64::from(m.allocation_length),
                fields: [
                    ModeSense10::PC,
                    ModeSense10::PAGE_CODE,
                    ModeSense10::SUBPAGE_CODE,
                ],
            }
        } else {
            let m = ModeSense6::parse(cdb)?;
            SenseCdb {
                ten: false,
                dbd: m.dbd,
                llbaa: false,
                pc: m.pc,
                page_code: m.page_code,
                subpage_code: m.subpage_code,
                alloc: u64::from(m.allocation_length),
                fields: [
                    ModeSense6::PC,
                    ModeSense6::PAGE_CODE,
                    ModeSense6::SUBPAGE_CODE,
                ],
            }
        })
    }
}

pub(crate) fn mode_sense(c: &Ctx) -> Outcome {
    let cdb = SenseCdb::parse(c.cdb)?;
    let [pc_field, page_field, subpage_field] = cdb.fields;
    let (ten, dbd, llbaa) = (cdb.ten, cdb.dbd, cdb.llbaa);
    let pc = match cdb.pc {
        0 => Pc::Current,
        1 => Pc::Changeable,
        2 => Pc::Default,
        _ => {
            return Err(Sense::illegal(asc::SAVING_PARAMETERS_NOT_SUPPORTED)
                .with_field_pointer(ironlun_scsi::FieldPointer::cdb(
                    pc_field.byte,
                    Some(pc_field.bit),
                ))
                .into())
        }
    };
    let (code, sub, alloc) = (cdb.page_code, cdb.subpage_code, cdb.alloc);
    let mut pages = Vec::new();
    if code == 0x3F {
        if sub != 0x00 && sub != 0xFF {
            return Err(Sense::invalid_cdb(subpage_field).into());
        }
        for &p in PAGE_CODES {
            pages.extend(page(c.dev, p, pc).unwrap_or_default());
        }
    } else {
        let p = page(c.dev, code, pc).ok_or(Sense::invalid_cdb(page_field))?;
        if sub != 0 {
            return Err(Sense::invalid_cdb(subpage_field).into());
        }
        pages = p;
    }
    let mut devspec = 0u8;
    if write_protected(c) {
        devspec |= 0x80; // WP
    }
    if c.dev.dpofua() {
        devspec |= 0x10; // DPOFUA
    }
    let bs = c.dev.block_size();
    let blocks = c.dev.blocks();
    let bd: Vec<u8> = if dbd {
        Vec::new()
    } else if llbaa {
        let mut d = vec![0u8; 16];
        d[..8].copy_from_slice(&blocks.to_be_bytes());
        d[12..16].copy_from_slice(&bs.to_be_bytes());
        d
    } else {
        let mut d = vec![0u8; 8];
        let n = u32::try_from(blocks).unwrap_or(u32::MAX);
        d[..4].copy_from_slice(&n.to_be_bytes());
        d[5..8].copy_from_slice(&bs.to_be_bytes()[1..]);
        d
    };
    let mut data = if ten {
        let mut h = vec![0u8; 8];
        h[3] = devspec;
        if llbaa && !dbd {
            h[4] = 0x01; // LONGLBA
        }
        h[6..8].copy_from_slice(&(bd.len() as u16).to_be_bytes());
        h
    } else {
        vec![0, 0, devspec, bd.len() as u8]
    };
    data.extend_from_slice(&bd);
    data.extend_from_slice(&pages);
    if ten {
        let len = (data.len() - 2) as u16;
        data[..2].copy_from_slice(&len.to_be_bytes());
    } else {
        data[0] = (data.len() - 1) as u8;
    }
    Ok(Done::data(data, alloc))
}

fn param_len_error() -> Sense {
    Sense::illegal(asc::PARAMETER_LIST_LENGTH_ERROR)
}

pub(crate) fn mode_select(c: &Ctx) -> Outcome {
    // (pf, sp, PARAMETER LIST LENGTH) and the PF and SP fields of the CDB's form.
    let ten = c.op.opcode == op::MODE_SELECT_10;
    let ((pf, sp, len), [pf_field, sp_field]) = if ten {
        let m = ModeSelect10::parse(c.cdb)?;
        let len = u64::from(m.parameter_list_length);
        ((m.pf, m.sp, len), [ModeSelect10::PF, ModeSelect10::SP])
    } else {
        let m = ModeSelect6::parse(c.cdb)?;
        let len = u64::from(m.parameter_list_length);
        ((m.pf, m.sp, len), [ModeSelect6::PF, ModeSelect6::SP])
    };
    if sp {
        // SP: saving pages is not supported.
        return Err(Sense::invalid_cdb(sp_field).into());
    }
    let data = c.data_out(len)?;
    if len == 0 {
        return Ok(Done::good());
    }
    if !pf {
        // PF=0: vendor-specific (SCSI-1) page format is not supported.
        return Err(Sense::invalid_cdb(pf_field).into());
    }
    let hs = if ten { 8 } else { 4 };
    if data.len() < hs {
        return Err(param_len_error().into());
    }
    let medium_type_at = if ten { 2 } else { 1 };
    if data[medium_type_at] != 0 {
        return Err(Sense::invalid_param_field(medium_type_at as u16, Some(7)).into());
    }
    let (bdlen, bd_at, long) = if ten {
        (usize::from(be16(data, 6)), 6u16, byte(data, 4) & 1 != 0)
    } else {
        (usize::from(data[3]), 3u16, false)
    };
    let dev = c.dev;
    match (bdlen, long) {
        (0, _) => {}
        (8, false) | (16, true) if hs + bdlen <= data.len() => {
            let d = &data[hs..hs + bdlen];
            let (blocks, bs, bs_at) = if long {
                (be64(d, 0), be32(d, 12), 12)
            } else {
                (u64::from(be32(d, 0)), be32(d, 4) & 0x00FF_FFFF, 5)
            };
            if bs != dev.block_size() {
                return Err(Sense::invalid_param_field((hs + bs_at) as u16, None).into());
            }
            let cap = if long {
                dev.blocks()
            } else {
                dev.blocks().min(u64::from(u32::MAX))
            };
            if blocks != 0 && blocks != cap {
                return Err(Sense::invalid_param_field(hs as u16, None).into());
            }
        }
        (n, _) if hs + n > data.len() => return Err(param_len_error().into()),
        _ => return Err(Sense::invalid_param_field(bd_at, None).into()),
    }
    // Validate every page before changing anything.
    let mut accepted: Vec<(u8, Vec<u8>)> = Vec::new();
    let mut off = hs + bdlen;
    while off < data.len() {
        if off + 2 > data.len() {
            return Err(param_len_error().into());
        }
        let b0 = data[off];
        if b0 & 0x80 != 0 {
            return Err(Sense::invalid_param_field(off as u16, Some(7)).into());
        }
        if b0 & 0x40 != 0 {
            return Err(Sense::invalid_param_field(off as u16, Some(6)).into());
        }
        let code = b0 & 0x3F;
        let plen = usize::from(data[off + 1]);
        if off + 2 + plen > data.len() {
            return Err(param_len_error().into());
        }
        let (Some(cur), Some(chg)) = (
            page(dev, code, Pc::Current),
            page(dev, code, Pc::Changeable),
        ) else {
            return Err(Sense::invalid_param_field(off as u16, Some(5)).into());
        };
        if plen != cur.len() - 2 {
            return Err(Sense::invalid_param_field(off as u16 + 1, Some(7)).into());
        }
        let new = &data[off..off + 2 + plen];
        for i in 2..new.len() {
            let bad = (new[i] ^ cur[i]) & !chg[i];
            if bad != 0 {
                let bit = 7 - bad.leading_zeros() as u8;
                return Err(Sense::invalid_param_field((off + i) as u16, Some(bit)).into());
            }
        }
        accepted.push((code, new.to_vec()));
        off += 2 + plen;
    }
    let mut changed = false;
    let mut set = |a: &std::sync::atomic::AtomicBool, v: bool| {
        if a.swap(v, Ordering::Relaxed) != v {
            changed = true;
        }
    };
    for (code, p) in &accepted {
        match code {
            0x08 => set(&dev.write_cache, p[2] & 0x04 != 0),
            0x0A => {
                set(&dev.d_sense, p[2] & 0x04 != 0);
                set(&dev.swp, p[4] & 0x08 != 0);
            }
            _ => {}
        }
    }
    if changed {
        dev.raise_ua(asc::MODE_PARAMETERS_CHANGED, Some(c.slot.id));
    }
    Ok(Done::consumed(len))
}
