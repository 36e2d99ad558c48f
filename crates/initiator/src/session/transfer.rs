//! SCSI commands and their data (RFC 7143 §4.2.5, §11.3-8): immediate data and unsolicited
//! Data-Out up to FirstBurstLength (§4.2.5.2, §13.13-14), R2T-solicited Data-Out in PDUs of at
//! most the target's MaxRecvDataSegmentLength (§11.8), Data-In reassembly by buffer offset
//! with status in the final Data-In (§11.7.4), and the SCSI Response (§11.4).

use bytes::Bytes;
use ironlun_iscsi::pdu::ahs_type;
use ironlun_iscsi::{Bhs, DataIn, DataOut, Pdu, R2t, ScsiCommand, ScsiResponse, RESERVED_TAG};
use ironlun_scsi::lun;
use tokio::sync::oneshot;

use super::state::{fail, unexpected, ScsiTask, Shared, State, Task};
use super::window::alloc_itt;
use super::{CommandOptions, DataOutPolicy, PendingCommand, Session, Stats};
use crate::command::{CommandResult, Residual};
use crate::{Error, Result};

impl Session {
    /// Issue a SCSI command and wait for its outcome.
    pub async fn command(
        &self,
        lun: u64,
        cdb: &[u8],
        data_out: Option<Vec<u8>>,
        expected_in: u32,
        attr: u8,
    ) -> Result<CommandResult> {
        let opts = CommandOptions {
            attr,
            ..CommandOptions::default()
        };
        self.start_command(lun, cdb, data_out.map(Bytes::from), expected_in, opts)
            .await?
            .wait()
            .await
    }

    /// Issue a SCSI command and return once it is queued for sending (its ITT is known);
    /// many may be outstanding at once, bounded by the target's CmdSN window.
    pub async fn start_command(
        &self,
        lun: u64,
        cdb: &[u8],
        data_out: Option<Bytes>,
        expected_in: u32,
        opts: CommandOptions,
    ) -> Result<PendingCommand> {
        if cdb.is_empty() || cdb.len() > 16 + 1019 {
            return Err(Error::Invalid(format!("CDB of {} bytes", cdb.len())));
        }
        let data_out = data_out.unwrap_or_default();
        if !data_out.is_empty() && expected_in > 0 {
            return Err(Error::Invalid(
                "bidirectional commands are not supported".into(),
            ));
        }
        let u32_len = u32::try_from(data_out.len())
            .map_err(|_| Error::Invalid("data-out longer than 4 GiB".into()))?;
        let p = self.sh().params.clone();
        let mut cdb16 = [0u8; 16];
        let head = cdb.len().min(16);
        cdb16[..head].copy_from_slice(&cdb[..head]);
        let ahs = if cdb.len() > 16 {
            // Extended CDB AHS (§11.3.5): length counts the reserved byte, padded to 4.
            let rest = &cdb[16..];
            let mut a = Vec::with_capacity(rest.len() + 8);
            a.extend_from_slice(&((rest.len() + 1) as u16).to_be_bytes());
            a.push(ahs_type::EXTENDED_CDB);
            a.push(0);
            a.extend_from_slice(rest);
            while a.len() % 4 != 0 {
                a.push(0);
            }
            Bytes::from(a)
        } else {
            Bytes::new()
        };
        let lun_raw = lun::encode(lun);
        let (tx, rx) = oneshot::channel();
        let sh = self.sh();
        self.with_window(opts.immediate, move |st| {
            let itt = alloc_itt(st);
            let cmd_sn = st.c.cmd_sn;
            if !opts.immediate {
                st.c.cmd_sn = cmd_sn.wrapping_add(1);
            }
            let len = data_out.len();
            let mxdsl = p.max_xmit_data_segment_length as usize;
            let fbl = p.first_burst_length as usize;
            let imm = if opts.unsolicited && p.immediate_data {
                len.min(fbl).min(mxdsl)
            } else {
                0
            };
            let unsol_end = if opts.unsolicited && !p.initial_r2t {
                len.min(fbl)
            } else {
                imm
            };
            let cmd = ScsiCommand {
                immediate: opts.immediate,
                final_: unsol_end == imm,
                read: expected_in > 0,
                write: len > 0,
                attr: opts.attr,
                lun: lun_raw,
                itt,
                expected_data_length: if len > 0 { u32_len } else { expected_in },
                cmd_sn,
                exp_stat_sn: st.c.exp_stat_sn,
                cdb: cdb16,
            };
            let mut pdu = Pdu::with_data(Bhs::ScsiCommand(cmd), data_out.slice(..imm));
            pdu.ahs = ahs;
            sh.send(pdu);
            st.stats.immediate_bytes += imm as u64;
            if unsol_end > imm {
                let burst = Burst {
                    lun_raw,
                    itt,
                    ttt: RESERVED_TAG,
                    exp_stat_sn: st.c.exp_stat_sn,
                };
                let pdus = data_out_pdus(&burst, &data_out, imm, unsol_end - imm, mxdsl);
                for d in pdus {
                    count_data_out(&mut st.stats, &d);
                    sh.send(d);
                }
                st.stats.unsolicited_bytes += (unsol_end - imm) as u64;
            }
            st.tasks.insert(
                itt,
                Task::Scsi(Box::new(ScsiTask {
                    lun,
                    lun_raw,
                    cmd_sn,
                    data_out,
                    policy: opts.data_out,
                    held: Vec::new(),
                    next_r2t_sn: 0,
                    next_data_sn: 0,
                    buf: vec![0; expected_in as usize],
                    high_water: 0,
                    tx,
                })),
            );
            Ok(PendingCommand { itt, cmd_sn, rx })
        })
        .await
    }

    /// Answer the R2Ts held for a command under [`DataOutPolicy::Withhold`] / `Batch` and
    /// answer further ones promptly.
    pub fn release_data(&self, itt: u32) -> Result<()> {
        let mut st = self.sh().lock();
        let State {
            c, tasks, stats, ..
        } = &mut *st;
        let Some(Task::Scsi(t)) = tasks.get_mut(&itt) else {
            return Err(Error::Invalid(format!("no command with ITT {itt:#x}")));
        };
        t.policy = DataOutPolicy::Prompt;
        let held = std::mem::take(&mut t.held);
        for r in held {
            answer_r2t(&self.h.shared, c.exp_stat_sn, t, &r, stats);
        }
        Ok(())
    }
}

/// Who a Data-Out sequence belongs to.
pub(super) struct Burst {
    pub(super) lun_raw: [u8; 8],
    pub(super) itt: u32,
    pub(super) ttt: u32,
    pub(super) exp_stat_sn: u32,
}

/// One sequence of Data-Out PDUs covering `data[offset..offset + len]` in segments of at
/// most `max_seg`, DataSN from 0, F on the last (§11.7).
pub(super) fn data_out_pdus(
    b: &Burst,
    data: &Bytes,
    offset: usize,
    len: usize,
    max_seg: usize,
) -> Vec<Pdu> {
    let max_seg = max_seg.max(1);
    let mut out = Vec::with_capacity(len.div_ceil(max_seg));
    let mut done = 0usize;
    let mut sn = 0u32;
    while done < len {
        let n = (len - done).min(max_seg);
        let at = offset + done;
        let bhs = Bhs::DataOut(DataOut {
            final_: done + n == len,
            lun: b.lun_raw,
            itt: b.itt,
            ttt: b.ttt,
            exp_stat_sn: b.exp_stat_sn,
            data_sn: sn,
            buffer_offset: at as u32,
        });
        out.push(Pdu::with_data(bhs, data.slice(at..at + n)));
        done += n;
        sn += 1;
    }
    out
}

pub(super) fn count_data_out(stats: &mut Stats, p: &Pdu) {
    stats.data_out_pdus += 1;
    stats.max_data_out_segment = stats.max_data_out_segment.max(p.data.len() as u32);
}

/// Send the data one R2T asks for.
pub(super) fn answer_r2t(
    sh: &Shared,
    exp_stat_sn: u32,
    t: &mut ScsiTask,
    r: &R2t,
    stats: &mut Stats,
) {
    let burst = Burst {
        lun_raw: t.lun_raw,
        itt: r.itt,
        ttt: r.ttt,
        exp_stat_sn,
    };
    let pdus = data_out_pdus(
        &burst,
        &t.data_out,
        r.buffer_offset as usize,
        r.desired_length as usize,
        sh.params.max_xmit_data_segment_length as usize,
    );
    stats.solicited_bytes += u64::from(r.desired_length);
    for p in pdus {
        count_data_out(stats, &p);
        sh.send(p);
    }
}

/// The SCSI task `itt` names, with the statistics; a PDU for any other tag (or task kind)
/// is reported as unexpected instead.
fn scsi_task<'a>(
    sh: &Shared,
    st: &'a mut State,
    itt: u32,
    pdu: &Pdu,
) -> Option<(&'a mut ScsiTask, &'a mut Stats)> {
    if !matches!(st.tasks.get(&itt), Some(Task::Scsi(_))) {
        let task = st.tasks.remove(&itt);
        unexpected(sh, st, itt, task, pdu.clone());
        return None;
    }
    let State { tasks, stats, .. } = st;
    match tasks.get_mut(&itt) {
        Some(Task::Scsi(t)) => Some((t, stats)),
        _ => None,
    }
}

/// Judge a per-task sequence number (DataSN §11.7.5, R2TSN §11.8.5) against the one due,
/// and expect the one after it next.
fn next_sn(stats: &mut Stats, what: &str, got: u32, due: &mut u32, itt: u32) {
    if got != *due {
        stats.violation(format!("{what} {got} where {due} was due (ITT {itt:#x})"));
    }
    *due = got.wrapping_add(1);
}

pub(super) fn on_data_in(sh: &Shared, st: &mut State, d: &DataIn, pdu: &Pdu) {
    let seg = pdu.data.len();
    st.stats.data_in_pdus += 1;
    st.stats.max_data_in_segment = st.stats.max_data_in_segment.max(seg as u32);
    let Some((t, stats)) = scsi_task(sh, st, d.itt, pdu) else {
        return;
    };
    next_sn(
        stats,
        "Data-In DataSN",
        d.data_sn,
        &mut t.next_data_sn,
        d.itt,
    );
    let off = d.buffer_offset as usize;
    match off.checked_add(seg).filter(|&e| e <= t.buf.len()) {
        Some(end) => {
            t.buf[off..end].copy_from_slice(&pdu.data);
            t.high_water = t.high_water.max(end);
        }
        None => stats.violation(format!(
            "Data-In offset {off} + {seg} beyond the expected {} bytes (ITT {:#x})",
            t.buf.len(),
            d.itt
        )),
    }
    if let Some(status) = d.status {
        if !d.final_ {
            stats.violation(format!("Data-In with S but without F (ITT {:#x})", d.itt));
        }
        let residual = Residual::from_flags(d.underflow, d.overflow, d.residual);
        if let Some(Task::Scsi(t)) = st.tasks.remove(&d.itt) {
            let mut buf = t.buf;
            buf.truncate(t.high_water);
            let _ = t.tx.send(Ok(CommandResult {
                response: 0,
                status,
                sense: None,
                sense_bytes: Bytes::new(),
                data_in: Bytes::from(buf),
                residual,
                data_in_pdus: d.data_sn.wrapping_add(1),
            }));
        }
    }
}

pub(super) fn on_response(sh: &Shared, st: &mut State, r: &ScsiResponse, pdu: &Pdu) {
    let task = st.tasks.remove(&r.itt);
    let Some(Task::Scsi(t)) = task else {
        unexpected(sh, st, r.itt, task, pdu.clone());
        return;
    };
    // Data segment: SenseLength (2 bytes), sense data, then response data (§11.4.7).
    let d = &pdu.data;
    let sense_bytes = if d.len() >= 2 {
        let n = usize::from(u16::from_be_bytes([d[0], d[1]]));
        if 2 + n > d.len() {
            st.stats.violation(format!(
                "SenseLength {n} beyond the data segment (ITT {:#x})",
                r.itt
            ));
        }
        d.slice(2..(2 + n).min(d.len()))
    } else {
        Bytes::new()
    };
    let sense = if sense_bytes.is_empty() {
        None
    } else {
        ironlun_scsi::Sense::parse(&sense_bytes).ok()
    };
    let mut buf = t.buf;
    buf.truncate(t.high_water);
    let _ = t.tx.send(Ok(CommandResult {
        response: r.response,
        status: r.status,
        sense,
        sense_bytes,
        data_in: Bytes::from(buf),
        residual: Residual::from_flags(r.underflow, r.overflow, r.residual),
        data_in_pdus: t.next_data_sn,
    }));
}

pub(super) fn on_r2t(sh: &Shared, st: &mut State, r: &R2t, pdu: &Pdu) {
    st.stats.r2ts += 1;
    st.stats.max_r2t_length = st.stats.max_r2t_length.max(r.desired_length);
    let exp_stat_sn = st.c.exp_stat_sn;
    let Some((t, stats)) = scsi_task(sh, st, r.itt, pdu) else {
        return;
    };
    next_sn(stats, "R2TSN", r.r2t_sn, &mut t.next_r2t_sn, r.itt);
    if r.desired_length > sh.params.max_burst_length {
        stats.violation(format!(
            "R2T for {} bytes exceeds MaxBurstLength {}",
            r.desired_length, sh.params.max_burst_length
        ));
    }
    if r.ttt == RESERVED_TAG {
        stats.violation(format!("R2T with the reserved TTT (ITT {:#x})", r.itt));
    }
    let in_range = (r.buffer_offset as usize)
        .checked_add(r.desired_length as usize)
        .is_some_and(|e| e <= t.data_out.len());
    if !in_range || r.desired_length == 0 {
        stats.violation(format!(
            "R2T offset {} length {} outside the {} bytes of data-out",
            r.buffer_offset,
            r.desired_length,
            t.data_out.len()
        ));
        if let Some(t) = st.tasks.remove(&r.itt) {
            fail(t, Error::Protocol("R2T outside the data-out buffer".into()));
        }
        return;
    }
    t.held.push(r.clone());
    let n = t.held.len() as u32;
    stats.max_outstanding_r2t = stats.max_outstanding_r2t.max(n);
    let go = match t.policy {
        DataOutPolicy::Prompt => true,
        DataOutPolicy::Withhold => false,
        DataOutPolicy::Batch(k) => {
            let last_end = t
                .held
                .iter()
                .map(|h| h.buffer_offset as usize + h.desired_length as usize)
                .max()
                .unwrap_or(0);
            n >= k || last_end >= t.data_out.len()
        }
    };
    if go {
        let held = std::mem::take(&mut t.held);
        for h in held {
            answer_r2t(sh, exp_stat_sn, t, &h, stats);
        }
    }
}
