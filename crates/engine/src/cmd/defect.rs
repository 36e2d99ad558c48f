//! READ DEFECT DATA (10)/(12) (SBC-3 §5.12, §5.13).

use ironlun_scsi::cdb::{be16, be32, byte};
use ironlun_scsi::Sense;

use crate::handler::{Ctx, Done, Outcome};

/// READ DEFECT DATA (10)/(12): no defects are kept, so the requested list(s) come back empty,
/// marked valid (PLISTV/GLISTV) and in the requested DEFECT LIST FORMAT (reserved 111b
/// refused). (10): 4-byte header, allocation length bytes 7-8; (12): 8-byte header with
/// GENERATION CODE 0 (not supported), allocation length bytes 6-9.
pub(crate) fn read_defect_data(c: &Ctx) -> Outcome {
    let ten = byte(c.cdb, 0) == ironlun_scsi::opcode::READ_DEFECT_DATA_10;
    let at = if ten { 2 } else { 1 };
    let req = byte(c.cdb, at);
    if req & 0x07 == 0x07 {
        return Err(Sense::invalid_cdb_field(at as u16, Some(2)).into());
    }
    // PLISTV, GLISTV and the format echo the request.
    let b1 = req & 0x1F;
    let (data, alloc) = if ten {
        (vec![0, b1, 0, 0], u64::from(be16(c.cdb, 7)))
    } else {
        (vec![0, b1, 0, 0, 0, 0, 0, 0], u64::from(be32(c.cdb, 6)))
    };
    Ok(Done::data(data, alloc))
}
