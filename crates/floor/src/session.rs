//! One connection: login, then full feature phase (RFC 7143 §4, §11). Writes are solicited
//! with R2T after any immediate data (the floor answers InitialR2T=Yes, §13.10), one R2T
//! outstanding per command; reads go out as Data-In with the status in the last one (§11.7.4).

use std::collections::HashMap;
use std::io::{self, BufReader, BufWriter, Write};
use std::net::TcpStream;
use std::sync::MutexGuard;

use crate::login::{self, Params};
use crate::scsi::{self, Action, CHECK_CONDITION, GOOD};
use crate::wire::*;
use crate::Disk;

/// Where a Data-In's bytes come from.
#[derive(Clone, Copy)]
enum Source<'a> {
    Bytes(&'a [u8]),
    Disk { at: usize, len: usize },
}

/// A WRITE waiting for Data-Out.
struct Pending {
    lun: [u8; 8],
    at: usize,
    len: usize,
    got: usize,
    /// Where the outstanding R2T's burst ends.
    burst_end: usize,
    r2t_sn: u32,
}

struct Session<'a> {
    w: BufWriter<TcpStream>,
    disk: &'a Disk,
    p: Params,
    stat_sn: u32,
    exp_cmd_sn: u32,
    pending: HashMap<u32, Pending>,
    next_ttt: u32,
}

fn violation(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

pub fn serve(stream: TcpStream, disk: &Disk) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut r = BufReader::with_capacity(MAX_RECV + 4096, stream.try_clone()?);
    let mut s = Session {
        w: BufWriter::with_capacity(MAX_RECV + 4096, stream),
        disk,
        p: Params::default(),
        stat_sn: 1,
        exp_cmd_sn: 0,
        pending: HashMap::new(),
        next_ttt: 1,
    };
    let mut data = Vec::with_capacity(MAX_RECV);
    let mut first = true;
    loop {
        let bhs = read_pdu(&mut r, &mut data)?;
        if bhs[0] & 0x3f != LOGIN_REQ {
            return Err(violation("expected a Login Request"));
        }
        s.exp_cmd_sn = be32(&bhs, 24);
        let a = login::answer(&bhs, &data, &mut s.p, s.stat_sn, first);
        first = false;
        s.stat_sn = s.stat_sn.wrapping_add(1);
        write_pdu(&mut s.w, a.bhs, &a.text)?;
        s.w.flush()?;
        if a.full_feature {
            break;
        }
    }
    loop {
        let bhs = read_pdu(&mut r, &mut data)?;
        let pdu = Pdu { bhs, data };
        let go_on = s.handle(&pdu)?;
        data = pdu.data;
        if !go_on {
            return s.w.flush();
        }
        if r.buffer().is_empty() {
            s.w.flush()?;
        }
    }
}

impl Session<'_> {
    /// A response header with the opcode, flags, ITT and the sequence numbers set.
    fn header(&mut self, op: u8, flags: u8, itt: u32, with_status: bool) -> [u8; BHS_LEN] {
        let mut b = [0u8; BHS_LEN];
        b[0] = op;
        b[1] = flags;
        put32(&mut b, 16, itt);
        if with_status {
            put32(&mut b, 24, self.stat_sn);
            self.stat_sn = self.stat_sn.wrapping_add(1);
        }
        put32(&mut b, 28, self.exp_cmd_sn);
        put32(&mut b, 32, self.exp_cmd_sn.wrapping_add(127));
        b
    }

    fn disk(&self) -> MutexGuard<'_, Vec<u8>> {
        // A thread that panicked while holding it left only bytes behind; carry on.
        self.disk.bytes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Handles one PDU in full feature phase; false after a logout.
    fn handle(&mut self, pdu: &Pdu) -> io::Result<bool> {
        let itt = pdu.itt();
        match pdu.opcode() {
            SCSI_CMD => {
                if !pdu.immediate() {
                    self.exp_cmd_sn = be32(&pdu.bhs, 24).wrapping_add(1);
                }
                self.command(pdu)?;
            }
            DATA_OUT => self.data_out(pdu)?,
            NOP_OUT => {
                if !pdu.immediate() {
                    self.exp_cmd_sn = be32(&pdu.bhs, 24).wrapping_add(1);
                }
                if itt != NO_TAG {
                    let mut b = self.header(NOP_IN, FINAL, itt, true);
                    put32(&mut b, 20, NO_TAG);
                    write_pdu(&mut self.w, b, &pdu.data)?;
                }
            }
            TMF_REQ => {
                // Function complete (§11.6.1): nothing is ever left running to abort.
                let b = self.header(TMF_RSP, FINAL, itt, true);
                write_pdu(&mut self.w, b, &[])?;
            }
            TEXT_REQ => {
                let mut b = self.header(TEXT_RSP, FINAL, itt, true);
                put32(&mut b, 20, NO_TAG);
                write_pdu(&mut self.w, b, &[])?;
            }
            LOGOUT_REQ => {
                let b = self.header(LOGOUT_RSP, FINAL, itt, true);
                write_pdu(&mut self.w, b, &[])?;
                return Ok(false);
            }
            _ => return Err(violation("unexpected opcode")),
        }
        Ok(true)
    }

    fn command(&mut self, pdu: &Pdu) -> io::Result<()> {
        let itt = pdu.itt();
        let mut cdb = [0u8; 16];
        cdb.copy_from_slice(&pdu.bhs[32..48]);
        let mut lun = [0u8; 8];
        lun.copy_from_slice(&pdu.bhs[8..16]);
        let edtl = be32(&pdu.bhs, 20) as usize;
        match scsi::execute(&cdb, self.disk.size) {
            Action::DataIn(v) => self.data_in(itt, lun, edtl, Source::Bytes(&v)),
            Action::Read { at, len } => self.data_in(itt, lun, edtl, Source::Disk { at, len }),
            Action::Status(status, sense) => self.status(itt, status, sense),
            Action::Write { at, len } => {
                if len != edtl || pdu.data.len() > len {
                    return self.status(itt, CHECK_CONDITION, Some(scsi::INVALID_FIELD_IN_CDB));
                }
                let imm = pdu.data.len();
                self.disk()[at..at + imm].copy_from_slice(&pdu.data);
                if imm == len {
                    return self.status(itt, GOOD, None);
                }
                let w = Pending {
                    lun,
                    at,
                    len,
                    got: imm,
                    burst_end: imm,
                    r2t_sn: 0,
                };
                self.pending.insert(itt, w);
                self.r2t(itt)
            }
        }
    }

    /// Solicits the next burst of a pending WRITE (§11.8).
    fn r2t(&mut self, itt: u32) -> io::Result<()> {
        let ttt = self.next_ttt;
        self.next_ttt = self.next_ttt.wrapping_add(1) & 0x7fff_ffff;
        let Some(w) = self.pending.get_mut(&itt) else {
            return Ok(());
        };
        let offset = w.got;
        let len = (w.len - w.got).min(self.p.max_burst);
        w.burst_end = offset + len;
        let (lun, sn) = (w.lun, w.r2t_sn);
        w.r2t_sn = w.r2t_sn.wrapping_add(1);
        let mut b = self.header(R2T, FINAL, itt, false);
        put32(&mut b, 24, self.stat_sn);
        b[8..16].copy_from_slice(&lun);
        put32(&mut b, 20, ttt);
        put32(&mut b, 36, sn);
        put32(&mut b, 40, offset as u32);
        put32(&mut b, 44, len as u32);
        write_pdu(&mut self.w, b, &[])
    }

    fn data_out(&mut self, pdu: &Pdu) -> io::Result<()> {
        let itt = pdu.itt();
        let offset = be32(&pdu.bhs, 40) as usize;
        let Some(w) = self.pending.get_mut(&itt) else {
            return Err(violation("Data-Out for no pending WRITE"));
        };
        let end = offset
            .checked_add(pdu.data.len())
            .filter(|&e| e <= w.burst_end);
        let Some(end) = end else {
            return Err(violation("Data-Out outside its burst"));
        };
        let at = w.at;
        w.got += pdu.data.len();
        let (got, len, burst_end) = (w.got, w.len, w.burst_end);
        self.disk()[at + offset..at + end].copy_from_slice(&pdu.data);
        if pdu.bhs[1] & FINAL == 0 {
            return Ok(());
        }
        if got != burst_end {
            // A burst ended short: the floor does no recovery (ERL 0).
            return Err(violation("Data-Out burst ended short"));
        }
        if got < len {
            return self.r2t(itt);
        }
        self.pending.remove(&itt);
        self.status(itt, GOOD, None)
    }

    /// Sends `src` as Data-In, the status in the last PDU.
    fn data_in(&mut self, itt: u32, lun: [u8; 8], edtl: usize, src: Source) -> io::Result<()> {
        let have = match src {
            Source::Bytes(v) => v.len(),
            Source::Disk { len, .. } => len,
        };
        let total = have.min(edtl);
        let (residual_flag, residual) = match have.cmp(&edtl) {
            std::cmp::Ordering::Less => (0x02, edtl - have),
            std::cmp::Ordering::Greater => (0x04, have - edtl),
            std::cmp::Ordering::Equal => (0, 0),
        };
        if total == 0 {
            return self.status(itt, GOOD, None);
        }
        let mut offset = 0;
        let mut data_sn = 0u32;
        while offset < total {
            let n = (total - offset).min(self.p.peer_max_recv);
            let last = offset + n == total;
            let flags = if last {
                FINAL | 0x01 | residual_flag
            } else {
                0
            };
            let mut b = self.header(DATA_IN, flags, itt, last);
            if last {
                b[3] = GOOD;
                put32(&mut b, 44, residual as u32);
            }
            b[8..16].copy_from_slice(&lun);
            put32(&mut b, 20, NO_TAG);
            put32(&mut b, 36, data_sn);
            put32(&mut b, 40, offset as u32);
            match src {
                Source::Disk { at, .. } => {
                    let disk = self.disk.bytes.lock().unwrap_or_else(|e| e.into_inner());
                    write_pdu(&mut self.w, b, &disk[at + offset..at + offset + n])?;
                }
                Source::Bytes(v) => write_pdu(&mut self.w, b, &v[offset..offset + n])?,
            }
            offset += n;
            data_sn += 1;
        }
        Ok(())
    }

    fn status(&mut self, itt: u32, status: u8, sense: Option<[u8; 2]>) -> io::Result<()> {
        let mut b = self.header(SCSI_RSP, FINAL, itt, true);
        b[3] = status;
        let data = sense.map(scsi::sense_segment).unwrap_or_default();
        write_pdu(&mut self.w, b, &data)
    }
}
