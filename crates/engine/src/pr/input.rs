//! PERSISTENT RESERVE IN (SPC-4 §6.15): READ KEYS, READ RESERVATION, REPORT CAPABILITIES and
//! READ FULL STATUS. Each builds its whole parameter data, whose ADDITIONAL LENGTH reports the
//! full length, and `Done::data` cuts it to the ALLOCATION LENGTH (SPC-4 §4.2.5.6) — unlike
//! LIO, READ FULL STATUS does not stop counting at the allocation length.

use ironlun_scsi::cdb::PersistentReserveIn;
use ironlun_scsi::pr::{in_sa, kind, IscsiTransportId};
use ironlun_scsi::Sense;

use crate::handler::{Ctx, Done, Outcome};

pub(crate) fn persistent_reserve_in(c: &Ctx) -> Outcome {
    let cdb = PersistentReserveIn::parse(c.cdb)?;
    let alloc = u64::from(cdb.allocation_length);
    let st = c.dev.pr.load();
    let gen = st.generation.to_be_bytes();
    let mut data = Vec::with_capacity(64);
    data.extend_from_slice(&gen);
    data.extend_from_slice(&[0; 4]);
    match cdb.service_action {
        in_sa::READ_KEYS => {
            for r in &st.registrations {
                data.extend_from_slice(&r.key.to_be_bytes());
            }
        }
        in_sa::READ_RESERVATION => {
            if let Some(res) = &st.reservation {
                // All-registrants types have no single holder key (SPC-4 §6.15.3.2).
                let key = if kind::is_all_registrants(res.kind) {
                    0
                } else {
                    st.registrations.get(res.holder).map_or(0, |r| r.key)
                };
                data.extend_from_slice(&key.to_be_bytes());
                data.extend_from_slice(&[0; 4]);
                // SCOPE 0h (logical unit) | TYPE.
                data.extend_from_slice(&[0, res.kind & 0x0F, 0, 0]);
            }
        }
        in_sa::REPORT_CAPABILITIES => {
            let ptpl_c = c.dev.pr.store().is_some();
            let mut b = vec![0, 8];
            // CRH | SIP_C | ATP_C | PTPL_C (RLR_C = 0: REPLACE LOST RESERVATION is not
            // supported, reservations are never lost).
            b.push(0x10 | 0x08 | 0x04 | u8::from(ptpl_c));
            // TMV | ALLOW COMMANDS 010b (TEST UNIT READY through WE and EA; MODE SENSE,
            // REPORT SUPPORTED OPERATION CODES, ... through WE: our gate) | PTPL_A.
            b.push(0x80 | 0x20 | u8::from(st.aptpl));
            // Type mask: WR_EX_AR, EX_AC_RO, WR_EX_RO, EX_AC, WR_EX; EX_AC_AR.
            b.extend_from_slice(&[0x80 | 0x40 | 0x20 | 0x08 | 0x02, 0x01, 0, 0]);
            return Ok(Done::data(b, alloc));
        }
        in_sa::READ_FULL_STATUS => {
            for (i, r) in st.registrations.iter().enumerate() {
                let holder = st.is_holder(i);
                data.extend_from_slice(&r.key.to_be_bytes());
                data.extend_from_slice(&[0; 4]);
                data.push(if r.all_tg_pt { 0x02 } else { 0 } | u8::from(holder));
                let scope_type = match (&st.reservation, holder) {
                    (Some(res), true) => res.kind & 0x0F,
                    _ => 0,
                };
                data.push(scope_type);
                data.extend_from_slice(&[0; 4]);
                // RTPI is not defined for an all-target-ports registration.
                let rtpi = if r.all_tg_pt { 0 } else { r.rtpi };
                data.extend_from_slice(&rtpi.to_be_bytes());
                let tid = IscsiTransportId {
                    name: r.initiator.clone(),
                    isid: r.isid,
                }
                .encode();
                data.extend_from_slice(&(tid.len() as u32).to_be_bytes());
                data.extend_from_slice(&tid);
            }
        }
        // Unreachable: the opcode table only admits the four service actions.
        _ => return Err(Sense::invalid_cdb(PersistentReserveIn::SERVICE_ACTION).into()),
    }
    let add = (data.len() - 8) as u32;
    data[4..8].copy_from_slice(&add.to_be_bytes());
    Ok(Done::data(data, alloc))
}
