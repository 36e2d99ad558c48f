//! The newstyle fixed handshake (NetworkBlockDevice/nbd doc/proto.md, "Newstyle negotiation",
//! "Fixed newstyle negotiation", "Option types"): greeting, client flags, then options until
//! `NBD_OPT_GO` or `NBD_OPT_EXPORT_NAME` enters transmission, or the client aborts or goes.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::proto::{self, InfoRequest};
use crate::BlockDev;

/// The largest option payload read into memory; a longer one is refused (`NBD_REP_ERR_TOO_BIG`
/// after skipping it, up to [`SKIP_LIMIT`]) and beyond that the connection is closed.
const OPTION_LIMIT: u32 = 8192;
const SKIP_LIMIT: u32 = 1 << 20;
/// Options one connection may send before it is considered abusive.
const MAX_OPTIONS: usize = 1024;

/// What the handshake decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Enter transmission; `structured`: structured replies were negotiated.
    Transmission { structured: bool },
    /// The client aborted, left or broke the protocol; `why` is for the log.
    Closed { why: &'static str },
}

/// What the export looks like to the handshake.
pub(crate) struct Export<'a, D> {
    pub dev: &'a D,
    pub name: &'a str,
}

impl<D: BlockDev> Export<'_, D> {
    /// The transmission flags of this export.
    pub fn tflags(&self) -> u16 {
        let mut f = proto::TFLAG_HAS_FLAGS
            | proto::TFLAG_SEND_FLUSH
            | proto::TFLAG_SEND_FUA
            | proto::TFLAG_CAN_MULTI_CONN;
        if self.dev.can_trim() {
            f |= proto::TFLAG_SEND_TRIM;
        }
        if self.dev.can_write_zeroes() {
            f |= proto::TFLAG_SEND_WRITE_ZEROES;
        }
        f
    }

    /// The empty name is the default export ("NBD_OPT_EXPORT_NAME").
    fn matches(&self, name: &[u8]) -> bool {
        name.is_empty() || name == self.name.as_bytes()
    }

    /// Minimum, preferred and maximum payload ("Size constraints").
    fn block_sizes(&self) -> (u32, u32, u32) {
        let min = self.dev.block_size().max(1);
        let max = self.dev.max_request().max(min);
        let preferred = min.max(4096).min(max).max(512.min(max));
        (min, preferred, max)
    }
}

/// Runs the handshake on a fresh connection.
pub(crate) async fn negotiate<R, W, D>(
    r: &mut R,
    w: &mut W,
    export: &Export<'_, D>,
) -> std::io::Result<Outcome>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
    D: BlockDev,
{
    w.write_all(&proto::server_greeting()).await?;
    w.flush().await?;
    let client_flags = r.read_u32().await?;
    let known = proto::FLAG_C_FIXED_NEWSTYLE | proto::FLAG_C_NO_ZEROES;
    if client_flags & !known != 0 {
        return Ok(Outcome::Closed {
            why: "unknown client flags",
        });
    }
    let fixed = client_flags & proto::FLAG_C_FIXED_NEWSTYLE != 0;
    let no_zeroes = client_flags & proto::FLAG_C_NO_ZEROES != 0;
    let mut structured = false;

    for _ in 0..MAX_OPTIONS {
        if r.read_u64().await? != proto::IHAVEOPT {
            return Ok(Outcome::Closed {
                why: "bad option magic",
            });
        }
        let option = r.read_u32().await?;
        let len = r.read_u32().await?;
        if len > OPTION_LIMIT {
            if len > SKIP_LIMIT || !fixed {
                return Ok(Outcome::Closed {
                    why: "option data too long",
                });
            }
            skip(r, u64::from(len)).await?;
            let msg = b"option data too long";
            reply(w, option, proto::REP_ERR_TOO_BIG, msg).await?;
            continue;
        }
        let mut data = vec![0u8; len as usize];
        r.read_exact(&mut data).await?;

        match option {
            proto::OPT_EXPORT_NAME => {
                if !export.matches(&data) {
                    return Ok(Outcome::Closed {
                        why: "unknown export name",
                    });
                }
                let size = export.dev.size();
                w.write_all(&proto::export_name_reply(size, export.tflags(), no_zeroes))
                    .await?;
                w.flush().await?;
                return Ok(Outcome::Transmission { structured });
            }
            proto::OPT_ABORT => {
                // The client may already have gone; the ACK is a courtesy.
                let _ = reply(w, option, proto::REP_ACK, &[]).await;
                return Ok(Outcome::Closed {
                    why: "client aborted",
                });
            }
            _ if !fixed => {
                return Ok(Outcome::Closed {
                    why: "option other than EXPORT_NAME without fixed newstyle",
                });
            }
            proto::OPT_LIST => {
                if !data.is_empty() {
                    reply(w, option, proto::REP_ERR_INVALID, b"LIST takes no data").await?;
                    continue;
                }
                reply(
                    w,
                    option,
                    proto::REP_SERVER,
                    &proto::rep_server(export.name),
                )
                .await?;
                reply(w, option, proto::REP_ACK, &[]).await?;
            }
            proto::OPT_STRUCTURED_REPLY => {
                if !data.is_empty() {
                    let msg = b"STRUCTURED_REPLY takes no data";
                    reply(w, option, proto::REP_ERR_INVALID, msg).await?;
                    continue;
                }
                structured = true;
                reply(w, option, proto::REP_ACK, &[]).await?;
            }
            proto::OPT_INFO | proto::OPT_GO => {
                let Some(req) = InfoRequest::decode(&data) else {
                    let msg = b"malformed INFO/GO data";
                    reply(w, option, proto::REP_ERR_INVALID, msg).await?;
                    continue;
                };
                if !export.matches(&req.name) {
                    reply(w, option, proto::REP_ERR_UNKNOWN, b"no such export").await?;
                    continue;
                }
                send_info(w, option, export, &req).await?;
                reply(w, option, proto::REP_ACK, &[]).await?;
                if option == proto::OPT_GO {
                    return Ok(Outcome::Transmission { structured });
                }
            }
            _ => {
                reply(w, option, proto::REP_ERR_UNSUP, b"option not supported").await?;
            }
        }
    }
    Ok(Outcome::Closed {
        why: "too many options",
    })
}

/// The `NBD_REP_INFO` replies of INFO/GO: the export always, block sizes always (this server
/// has non-default constraints), the name when asked.
async fn send_info<W: AsyncWrite + Unpin, D: BlockDev>(
    w: &mut W,
    option: u32,
    export: &Export<'_, D>,
    req: &InfoRequest,
) -> std::io::Result<()> {
    let info = proto::info_export(export.dev.size(), export.tflags());
    reply(w, option, proto::REP_INFO, &info).await?;
    let (min, pref, max) = export.block_sizes();
    let info = proto::info_block_size(min, pref, max);
    reply(w, option, proto::REP_INFO, &info).await?;
    if req.infos.contains(&proto::INFO_NAME) {
        reply(w, option, proto::REP_INFO, &proto::info_name(export.name)).await?;
    }
    Ok(())
}

async fn reply<W: AsyncWrite + Unpin>(
    w: &mut W,
    option: u32,
    kind: u32,
    data: &[u8],
) -> std::io::Result<()> {
    w.write_all(&proto::option_reply(option, kind, data))
        .await?;
    w.flush().await
}

/// Reads and drops `n` bytes without holding them.
pub(crate) async fn skip<R: AsyncRead + Unpin>(r: &mut R, n: u64) -> std::io::Result<()> {
    let copied = tokio::io::copy(&mut r.take(n), &mut tokio::io::sink()).await?;
    if copied < n {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}
