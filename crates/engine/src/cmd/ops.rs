//! Looking a CDB up in the opcode table and checking it: one list drives dispatch, CDB
//! validation (every bit not in the CDB usage data is reserved or unsupported → INVALID FIELD
//! IN CDB with a field pointer, SPC-4 §4.5.2.4.2) and REPORT SUPPORTED OPERATION CODES
//! (SPC-4 §6.35).

use std::sync::OnceLock;

use ironlun_scsi::cdb::{CdbError, SERVICE_ACTION};
use ironlun_scsi::sense::{asc, Sense};

use super::table::OPS;
use crate::handler::{cdb_sense, OpInfo};

/// Index of the first table entry for each opcode.
fn index() -> &'static [Option<u8>; 256] {
    static INDEX: OnceLock<[Option<u8>; 256]> = OnceLock::new();
    INDEX.get_or_init(|| {
        let mut idx = [None; 256];
        for (i, o) in OPS.iter().enumerate().rev() {
            idx[usize::from(o.opcode)] = u8::try_from(i).ok();
        }
        idx
    })
}

/// Entries for one opcode (several for service-action opcodes).
pub(crate) fn entries(opcode: u8) -> &'static [OpInfo] {
    match index()[usize::from(opcode)] {
        Some(first) => {
            let first = usize::from(first);
            let n = OPS[first..]
                .iter()
                .take_while(|o| o.opcode == opcode)
                .count();
            &OPS[first..first + n]
        }
        None => &[],
    }
}

/// Find the entry for a CDB. Unknown opcode → INVALID COMMAND OPERATION CODE; known
/// service-action opcode with an unsupported service action → INVALID FIELD IN CDB pointing
/// at the SERVICE ACTION field (SPC-4 §4.2.5.2; libiscsi accepts either for such opcodes).
/// Entries carrying any flag in `hidden` (features switched off) do not exist.
pub(crate) fn lookup(cdb: &[u8], hidden: u16) -> Result<&'static OpInfo, Sense> {
    let opcode = *cdb
        .first()
        .ok_or(Sense::illegal(asc::INVALID_COMMAND_OPERATION_CODE))?;
    let mut list = entries(opcode).iter().filter(|o| o.flags & hidden == 0);
    let Some(first) = list.next() else {
        return Err(Sense::illegal(asc::INVALID_COMMAND_OPERATION_CODE));
    };
    if first.sa.is_none() {
        return Ok(first);
    }
    let sa = SERVICE_ACTION.get(cdb) as u8;
    std::iter::once(first)
        .chain(list)
        .find(|o| o.sa == Some(sa))
        .ok_or(Sense::invalid_cdb(SERVICE_ACTION))
}

/// Check every CDB bit against the usage data: a set bit the device server does not use is
/// a reserved or unsupported field (SPC-4 §4.2.5 "reserved fields ... shall be checked").
pub(crate) fn validate(o: &OpInfo, cdb: &[u8], dpofua: bool, tpws: bool) -> Result<(), Sense> {
    if cdb.len() < o.usage.len() {
        // A CDB shorter than its opcode's group requires: point at the missing first byte.
        return Err(cdb_sense(CdbError::Short {
            need: o.usage.len(),
            got: cdb.len(),
        }));
    }
    // Same masks as `usage_for`, without allocating on the command path.
    let hide = o.hidden_byte1(dpofua, tpws);
    for (i, (&b, &u)) in cdb.iter().zip(o.usage.iter()).enumerate().skip(1) {
        let allowed = match i {
            // The service action bits were matched by `lookup`.
            1 if o.sa.is_some() => u | 0x1F,
            1 => u & !hide,
            _ => u,
        };
        let bad = b & !allowed;
        if bad != 0 {
            let bit = 7 - bad.leading_zeros() as u8;
            return Err(Sense::invalid_cdb_field(i as u16, Some(bit)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handler::{F_PR, F_RSOC, F_TPU};

    #[test]
    fn table_is_sorted_and_usage_lengths_match_group_codes() {
        for w in OPS.windows(2) {
            assert!((w[0].opcode, w[0].sa) < (w[1].opcode, w[1].sa));
        }
        for o in OPS {
            assert_eq!(Some(o.usage.len()), ironlun_scsi::cdb::cdb_len(o.opcode));
            assert_eq!(o.usage[0], o.opcode);
            if let Some(sa) = o.sa {
                assert_eq!(o.usage[1] & 0x1F, sa);
            }
        }
    }

    #[test]
    fn lookup_distinguishes_opcode_and_service_action_errors() {
        assert!(lookup(&[0x28; 16], 0).is_ok());
        let e = lookup(&[0xE0; 16], 0).err();
        assert_eq!(e.map(|s| s.asc), Some(asc::INVALID_COMMAND_OPERATION_CODE));
        let e = lookup(&[0x9E, 0x13, 0, 0], 0).err();
        assert_eq!(e.and_then(|s| s.field_pointer).map(|f| f.field), Some(1));
        // GET LBA STATUS exists only with emulate_tpu.
        assert!(lookup(&[0x9E, 0x12, 0, 0], 0).is_ok());
        let e = lookup(&[0x9E, 0x12, 0, 0], F_TPU).err();
        assert_eq!(e.and_then(|s| s.field_pointer).map(|f| f.field), Some(1));
        assert!(lookup(&[0xA3, 0x0C], F_RSOC).is_err());
        let e = lookup(&[0x5E, 0, 0, 0], F_PR).err();
        assert_eq!(e.map(|s| s.asc), Some(asc::INVALID_COMMAND_OPERATION_CODE));
        let e = lookup(&[0x5F, 0x08, 0, 0], 0).err();
        assert_eq!(e.and_then(|s| s.field_pointer).map(|f| f.field), Some(1));
    }

    #[test]
    fn reserved_bits_point_at_the_highest_offending_bit() {
        let o = &OPS[0];
        let e = validate(o, &[0, 0, 0, 0x24, 0, 0], true, true).err();
        let fp = e.and_then(|s| s.field_pointer);
        assert_eq!(fp.map(|f| (f.field, f.bit)), Some((3, Some(5))));
    }
}
