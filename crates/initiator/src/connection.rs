//! One iSCSI connection: TCP plus PDU framing (RFC 7143 §11.1) with the digests in force
//! (§12.1). Used raw by adversarial tests (hand-built PDUs, arbitrary bytes) and by
//! the login phase (`login`) before a session (`session`) takes the connection over. It
//! depends on no other module of this crate.

use bytes::BytesMut;
use ironlun_iscsi::serial::{sn_gt, sn_le};
use ironlun_iscsi::{Bhs, Decoder, Digests, Pdu, PduError, RESERVED_TAG};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpStream, ToSocketAddrs};

use crate::{Error, Result};

/// DataSegmentLength bound before the full feature phase: login and text data are small
/// (the default MaxRecvDataSegmentLength is 8192, §13.12); we allow some slack.
pub const LOGIN_MAX_DATA: u32 = 65_536;

/// Sequence numbers an initiator keeps per session / connection (§4.2.2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// CmdSN of the next non-immediate command.
    pub cmd_sn: u32,
    pub exp_stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
    /// Next Initiator Task Tag to hand out.
    pub next_itt: u32,
}

impl Counters {
    /// Record the sequence numbers in a target PDU: ExpStatSN advances past every StatSN
    /// that was assigned to a status-carrying PDU; ExpCmdSN / MaxCmdSN move forward only,
    /// and only when MaxCmdSN >= ExpCmdSN - 1 (§4.2.2.1). Returns whether the CmdSN window
    /// opened (MaxCmdSN grew).
    pub(crate) fn observe(&mut self, bhs: &Bhs) -> bool {
        let (stat, exp, max) = match bhs {
            Bhs::ScsiResponse(p) => (Some(p.stat_sn), p.exp_cmd_sn, p.max_cmd_sn),
            Bhs::DataIn(p) => (p.status.map(|_| p.stat_sn), p.exp_cmd_sn, p.max_cmd_sn),
            Bhs::NopIn(p) => (
                (p.itt != RESERVED_TAG).then_some(p.stat_sn),
                p.exp_cmd_sn,
                p.max_cmd_sn,
            ),
            Bhs::R2t(p) => (None, p.exp_cmd_sn, p.max_cmd_sn),
            Bhs::TaskMgmtResponse(p) => (Some(p.stat_sn), p.exp_cmd_sn, p.max_cmd_sn),
            Bhs::TextResponse(p) => (Some(p.stat_sn), p.exp_cmd_sn, p.max_cmd_sn),
            Bhs::LogoutResponse(p) => (Some(p.stat_sn), p.exp_cmd_sn, p.max_cmd_sn),
            Bhs::AsyncMessage(p) => (Some(p.stat_sn), p.exp_cmd_sn, p.max_cmd_sn),
            Bhs::Reject(p) => (Some(p.stat_sn), p.exp_cmd_sn, p.max_cmd_sn),
            Bhs::LoginResponse(p) => (Some(p.stat_sn), p.exp_cmd_sn, p.max_cmd_sn),
            _ => return false,
        };
        if let Some(s) = stat {
            let next = s.wrapping_add(1);
            if sn_gt(next, self.exp_stat_sn) {
                self.exp_stat_sn = next;
            }
        }
        let mut opened = false;
        if sn_le(exp, max.wrapping_add(1)) {
            if sn_gt(max, self.max_cmd_sn) {
                self.max_cmd_sn = max;
                opened = true;
            }
            if sn_gt(exp, self.exp_cmd_sn) {
                self.exp_cmd_sn = exp;
            }
        }
        opened
    }
}

/// Reading half: a buffer and a decoder.
#[derive(Debug)]
pub(crate) struct Reader {
    pub(crate) half: OwnedReadHalf,
    pub(crate) buf: BytesMut,
    pub(crate) decoder: Decoder,
}

impl Reader {
    /// The next whole PDU. A data digest error is reported (under ERL 0 we cannot recover
    /// it either, so the caller treats it as fatal).
    pub(crate) async fn recv(&mut self) -> Result<Pdu> {
        loop {
            match self.decoder.decode(&mut self.buf) {
                Ok(Some(p)) => return Ok(p),
                Ok(None) => {}
                Err(PduError::DataDigest { .. }) => {
                    return Err(Error::Protocol("data digest mismatch".into()))
                }
                Err(e) => return Err(Error::Protocol(e.to_string())),
            }
            self.buf.reserve(64 * 1024);
            let n = self.half.read_buf(&mut self.buf).await?;
            if n == 0 {
                return Err(Error::ConnectionClosed);
            }
        }
    }
}

/// Writing half with the digests in force.
#[derive(Debug)]
pub(crate) struct Writer {
    pub(crate) half: OwnedWriteHalf,
    pub(crate) digests: Digests,
}

impl Writer {
    pub(crate) async fn send(&mut self, pdu: &Pdu) -> Result<()> {
        let bytes = pdu
            .to_bytes(self.digests)
            .map_err(|e| Error::Invalid(e.to_string()))?;
        self.half.write_all(&bytes).await?;
        Ok(())
    }
}

/// A TCP connection speaking iSCSI PDUs. After login succeeds it can be used raw or handed
/// to a session.
#[derive(Debug)]
pub struct Connection {
    pub(crate) reader: Reader,
    pub(crate) writer: Writer,
    /// Sequence numbers; raw users read and advance them themselves.
    pub counters: Counters,
}

impl Connection {
    /// Open a TCP connection (no login yet). Digests are off and the receive limit is
    /// [`LOGIN_MAX_DATA`] until login ends.
    pub async fn connect(addr: impl ToSocketAddrs) -> Result<Connection> {
        let stream = TcpStream::connect(addr).await?;
        let _ = stream.set_nodelay(true);
        let (r, w) = stream.into_split();
        Ok(Connection {
            reader: Reader {
                half: r,
                buf: BytesMut::with_capacity(64 * 1024),
                decoder: Decoder {
                    digests: Digests::default(),
                    max_data: LOGIN_MAX_DATA,
                },
            },
            writer: Writer {
                half: w,
                digests: Digests::default(),
            },
            counters: Counters {
                next_itt: 1,
                ..Counters::default()
            },
        })
    }

    /// Digests in force (both directions).
    pub fn digests(&self) -> Digests {
        self.writer.digests
    }

    /// Switch digests on or off for both directions (login does this on entering the full
    /// feature phase).
    pub fn set_digests(&mut self, d: Digests) {
        self.writer.digests = d;
        self.reader.decoder.digests = d;
    }

    /// The largest DataSegmentLength accepted from the target; larger is a protocol error.
    pub fn set_max_recv_data(&mut self, max: u32) {
        self.reader.decoder.max_data = max;
    }

    /// Encode `pdu` with the digests in force and send it.
    pub async fn send_pdu(&mut self, pdu: &Pdu) -> Result<()> {
        self.writer.send(pdu).await
    }

    /// Send arbitrary bytes (for adversarial tests).
    pub async fn send_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        self.writer.half.write_all(bytes).await?;
        Ok(())
    }

    /// Receive the next PDU. [`Error::ConnectionClosed`] when the target closed the
    /// connection at a PDU boundary or mid-PDU.
    pub async fn recv_pdu(&mut self) -> Result<Pdu> {
        self.reader.recv().await
    }

    /// Hand out the next Initiator Task Tag (never the reserved 0xffffffff).
    pub fn next_itt(&mut self) -> u32 {
        let itt = self.counters.next_itt;
        self.counters.next_itt = match itt.wrapping_add(1) {
            RESERVED_TAG => 0,
            n => n,
        };
        itt
    }

    /// Record the sequence numbers a target PDU carries (raw users call this on what they
    /// receive to keep ExpStatSN and the window current).
    pub fn observe(&mut self, pdu: &Pdu) {
        self.counters.observe(&pdu.bhs);
    }

    /// Shut the connection down (TCP FIN, then drop).
    pub async fn close(mut self) {
        let _ = self.writer.half.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nop_in(itt: u32, stat_sn: u32, exp: u32, max: u32) -> Bhs {
        Bhs::NopIn(ironlun_iscsi::NopIn {
            lun: [0; 8],
            itt,
            ttt: RESERVED_TAG,
            stat_sn,
            exp_cmd_sn: exp,
            max_cmd_sn: max,
        })
    }

    #[test]
    fn window_moves_forward_only_and_ignores_bad_pairs() {
        let mut c = Counters {
            exp_stat_sn: 10,
            exp_cmd_sn: 5,
            max_cmd_sn: 8,
            ..Counters::default()
        };
        assert!(c.observe(&nop_in(1, 10, 6, 12)));
        assert_eq!((c.exp_stat_sn, c.exp_cmd_sn, c.max_cmd_sn), (11, 6, 12));
        // An older MaxCmdSN does not shrink the window.
        assert!(!c.observe(&nop_in(2, 11, 6, 9)));
        assert_eq!(c.max_cmd_sn, 12);
        // MaxCmdSN < ExpCmdSN - 1 is not a valid pair: ignored (§4.2.2.1).
        assert!(!c.observe(&nop_in(3, 12, 20, 10)));
        assert_eq!((c.exp_cmd_sn, c.max_cmd_sn), (6, 12));
        // A NOP-In ping (ITT reserved) carries no status: ExpStatSN stays.
        let before = c.exp_stat_sn;
        c.observe(&nop_in(RESERVED_TAG, 40, 6, 12));
        assert_eq!(c.exp_stat_sn, before);
        // Serial arithmetic across the wrap.
        let mut c = Counters {
            exp_cmd_sn: 0xffff_fffe,
            max_cmd_sn: 0xffff_ffff,
            ..Counters::default()
        };
        assert!(c.observe(&nop_in(1, 0, 0xffff_ffff, 3)));
        assert_eq!(c.max_cmd_sn, 3);
    }
}
