//! The commands an initiator needs to find and use a disk (SPC-4, SBC-3), answered from a
//! memory buffer: TEST UNIT READY, INQUIRY (standard data and the supported-pages page), READ
//! CAPACITY(10/16), REPORT LUNS, MODE SENSE(6/10) with no pages, SYNCHRONIZE CACHE, and
//! READ/WRITE(10/16). Everything else is CHECK CONDITION, ILLEGAL REQUEST.

pub const BLOCK: u64 = 512;
pub const GOOD: u8 = 0x00;
pub const CHECK_CONDITION: u8 = 0x02;

/// What a command asks of the transport.
pub enum Action {
    /// Send these bytes (at most the allocation length) as Data-In, then GOOD.
    DataIn(Vec<u8>),
    /// Send `len` bytes of the disk from byte offset `at`, then GOOD.
    Read { at: usize, len: usize },
    /// Take `len` bytes into the disk at byte offset `at`, then GOOD.
    Write { at: usize, len: usize },
    /// Status only, with sense data when CHECK CONDITION.
    Status(u8, Option<[u8; 2]>),
}

/// ASC/ASCQ with sense key ILLEGAL REQUEST (SPC-4 Table 28 and Annex D).
pub const INVALID_OPCODE: [u8; 2] = [0x20, 0x00];
pub const LBA_OUT_OF_RANGE: [u8; 2] = [0x21, 0x00];
pub const INVALID_FIELD_IN_CDB: [u8; 2] = [0x24, 0x00];

/// Fixed-format sense data (SPC-4 §4.5.3) with its 2-byte SenseLength prefix (RFC 7143 §11.4.7.2).
pub fn sense_segment(asc: [u8; 2]) -> Vec<u8> {
    let mut s = vec![0u8; 20];
    s[1] = 18;
    s[2] = 0x70;
    s[4] = 0x05; // ILLEGAL REQUEST
    s[9] = 10;
    s[14] = asc[0];
    s[15] = asc[1];
    s
}

fn be(b: &[u8]) -> u64 {
    b.iter().fold(0, |a, &x| (a << 8) | u64::from(x))
}

fn clip(mut v: Vec<u8>, alloc: u64) -> Action {
    v.truncate(usize::try_from(alloc).unwrap_or(usize::MAX));
    Action::DataIn(v)
}

fn rw(lba: u64, blocks: u64, size: u64, write: bool) -> Action {
    let end = lba.checked_add(blocks).map(|e| e.saturating_mul(BLOCK));
    match end {
        Some(e) if e <= size => {
            // Both fit in usize: they are under `size`, the length of a buffer in memory.
            let at = (lba * BLOCK) as usize;
            let len = (blocks * BLOCK) as usize;
            if write {
                Action::Write { at, len }
            } else {
                Action::Read { at, len }
            }
        }
        _ => Action::Status(CHECK_CONDITION, Some(LBA_OUT_OF_RANGE)),
    }
}

/// Decodes a CDB and says what to do; `size` is the disk's size in bytes.
pub fn execute(cdb: &[u8; 16], size: u64) -> Action {
    let last_lba = (size / BLOCK).saturating_sub(1);
    match cdb[0] {
        0x00 | 0x35 | 0x91 => Action::Status(GOOD, None),
        0x12 if cdb[1] & 1 == 0 => {
            let mut d = vec![0u8; 36];
            d[2] = 0x06; // SPC-4
            d[3] = 0x02;
            d[4] = 31;
            d[7] = 0x02; // CmdQue
            d[8..16].copy_from_slice(b"IRONLUN ");
            d[16..32].copy_from_slice(b"FLOOR           ");
            d[32..36].copy_from_slice(b"0001");
            clip(d, be(&cdb[3..5]))
        }
        0x12 if cdb[2] == 0x00 => clip(vec![0, 0, 0, 1, 0], be(&cdb[3..5])),
        0x12 => Action::Status(CHECK_CONDITION, Some(INVALID_FIELD_IN_CDB)),
        0x25 => {
            let mut d = vec![0u8; 8];
            d[0..4].copy_from_slice(&(last_lba.min(0xffff_ffff) as u32).to_be_bytes());
            d[4..8].copy_from_slice(&(BLOCK as u32).to_be_bytes());
            Action::DataIn(d)
        }
        0x9e if cdb[1] & 0x1f == 0x10 => {
            let mut d = vec![0u8; 32];
            d[0..8].copy_from_slice(&last_lba.to_be_bytes());
            d[8..12].copy_from_slice(&(BLOCK as u32).to_be_bytes());
            clip(d, be(&cdb[10..14]))
        }
        0xa0 => {
            let mut d = vec![0u8; 16];
            d[3] = 8; // one LUN, LUN 0
            clip(d, be(&cdb[6..10]))
        }
        0x1a => clip(vec![3, 0, 0, 0], u64::from(cdb[4])),
        0x5a => clip(vec![0, 6, 0, 0, 0, 0, 0, 0], be(&cdb[7..9])),
        0x28 => rw(be(&cdb[2..6]), be(&cdb[7..9]), size, false),
        0x2a => rw(be(&cdb[2..6]), be(&cdb[7..9]), size, true),
        0x88 => rw(be(&cdb[2..10]), be(&cdb[10..14]), size, false),
        0x8a => rw(be(&cdb[2..10]), be(&cdb[10..14]), size, true),
        _ => Action::Status(CHECK_CONDITION, Some(INVALID_OPCODE)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZE: u64 = 1 << 20;

    fn cdb(bytes: &[u8]) -> [u8; 16] {
        let mut c = [0u8; 16];
        c[..bytes.len()].copy_from_slice(bytes);
        c
    }

    #[test]
    fn read_capacity_16_reports_the_last_lba_and_block_size() {
        let Action::DataIn(d) = execute(
            &cdb(&[0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32]),
            SIZE,
        ) else {
            panic!("READ CAPACITY(16) sends data");
        };
        assert_eq!(d[..8], (SIZE / BLOCK - 1).to_be_bytes());
        assert_eq!(d[8..12], 512u32.to_be_bytes());
    }

    #[test]
    fn write_10_maps_lba_and_length_to_bytes() {
        let a = execute(&cdb(&[0x2a, 0, 0, 0, 0, 8, 0, 0, 2]), SIZE);
        assert!(matches!(
            a,
            Action::Write {
                at: 4096,
                len: 1024
            }
        ));
    }

    #[test]
    fn read_past_the_end_is_lba_out_of_range() {
        let a = execute(
            &cdb(&[0x88, 0, 0, 0, 0, 0, 0, 0, 0x07, 0xff, 0, 0, 0, 2]),
            SIZE,
        );
        assert!(matches!(
            a,
            Action::Status(CHECK_CONDITION, Some(LBA_OUT_OF_RANGE))
        ));
    }

    #[test]
    fn unknown_opcode_is_invalid_command_operation_code() {
        let a = execute(&cdb(&[0xc0]), SIZE);
        assert!(matches!(
            a,
            Action::Status(CHECK_CONDITION, Some(INVALID_OPCODE))
        ));
    }
}
