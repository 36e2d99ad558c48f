//! One iSCSI connection: TCP plus PDU framing (RFC 7143 §11.1) with the digests in force
//! (§12.1). Used raw by adversarial tests (hand-built PDUs, arbitrary bytes) and by
//! [`crate::login`] before a [`crate::Session`] takes the connection over.

use bytes::BytesMut;
use ironlun_iscsi::{Decoder, Digests, Pdu, PduError};
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

/// A TCP connection speaking iSCSI PDUs. After [`crate::login::login`] succeeds it can be
/// used raw or turned into a [`crate::Session`].
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
            ironlun_iscsi::RESERVED_TAG => 0,
            n => n,
        };
        itt
    }

    /// Record the sequence numbers a target PDU carries (raw users call this on what they
    /// receive to keep ExpStatSN and the window current).
    pub fn observe(&mut self, pdu: &Pdu) {
        crate::session::observe_sns(&mut self.counters, &pdu.bhs);
    }

    /// Shut the connection down (TCP FIN, then drop).
    pub async fn close(mut self) {
        let _ = self.writer.half.shutdown().await;
    }
}
