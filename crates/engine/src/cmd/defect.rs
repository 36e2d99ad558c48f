//! READ DEFECT DATA (10)/(12) (SBC-3 §5.12, §5.13).

use ironlun_scsi::cdb::{ReadDefectData10, ReadDefectData12};
use ironlun_scsi::Sense;

use crate::handler::{Ctx, Done, Outcome};

/// READ DEFECT DATA (10)/(12): no defects are kept, so the requested list(s) come back empty,
/// marked valid (PLISTV/GLISTV) and in the requested DEFECT LIST FORMAT (reserved 111b
/// refused). (10): 4-byte header; (12): 8-byte header with GENERATION CODE 0 (not
/// supported).
pub(crate) fn read_defect_data(c: &Ctx) -> Outcome {
    let ten = c.op.opcode == ReadDefectData10::OPCODE;
    // REQ_PLIST, REQ_GLIST, DEFECT LIST FORMAT and its field in the CDB's form, ALLOCATION
    // LENGTH: the two forms name the same fields.
    macro_rules! decode {
        ($t:ident) => {{
            let d = $t::parse(c.cdb)?;
            let req = (d.req_plist, d.req_glist);
            let alloc = u64::from(d.allocation_length);
            (req, d.defect_list_format, $t::DEFECT_LIST_FORMAT, alloc)
        }};
    }
    let (req, format, format_field, alloc) = if ten {
        decode!(ReadDefectData10)
    } else {
        decode!(ReadDefectData12)
    };
    if format == 0x07 {
        return Err(Sense::invalid_cdb(format_field).into());
    }
    // PLISTV, GLISTV and the format echo the request.
    let b1 = u8::from(req.0) << 4 | u8::from(req.1) << 3 | format;
    let data = if ten {
        vec![0, b1, 0, 0]
    } else {
        vec![0, b1, 0, 0, 0, 0, 0, 0]
    };
    Ok(Done::data(data, alloc))
}
