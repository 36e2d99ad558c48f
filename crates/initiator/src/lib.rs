//! A small but real iSCSI initiator (RFC 7143) on tokio: the client of ironlun's end-to-end
//! tests, usable against any target.
//!
//! The modules in dependency order; each uses only those above it (and the [`Error`] defined
//! here):
//!
//! * [`connection`]: one TCP connection with PDU framing (§11.1) and digests (§12.1); the
//!   sequence numbers an initiator keeps (§4.2.2); raw send / receive for adversarial tests.
//! * [`login`]: the login phase (§6.3, §7): security stage with CHAP (§12.1.3, MD5 and
//!   SHA-256, one-way and mutual), operational negotiation (§6.2, §13) with configurable
//!   offers, typed login failures.
//! * [`command`]: the outcome of a SCSI command ([`CommandResult`], [`Residual`], §11.4).
//! * [`session`]: full feature phase over one connection: SCSI commands with many outstanding
//!   (CmdSN window §4.2.2.1, ITT allocation), immediate / unsolicited / R2T-solicited Data-Out
//!   (§4.2.5.2), Data-In reassembly (§11.7), NOP (§11.18-19), task management (§11.5), text
//!   and SendTargets discovery (§11.10, Appendix C), logout (§11.14).
//! * [`scsi`]: CDB builders and helpers for common commands (SPC-4, SBC-3).
//! * [`pr`]: persistent reservations (SPC-4 §5.13, §6.15, §6.16): PR IN / OUT encoders,
//!   parsers and iSCSI TransportIDs.
//! * [`alua`]: asymmetric logical unit access (SPC-4 §5.16): REPORT / SET TARGET PORT
//!   GROUPS, Device Identification VPD designators, INQUIRY TPGS, and a path chooser; its
//!   vocabulary is `ironlun_scsi::alua`.
//!
//! Nothing the target sends can panic this crate: malformed or unexpected PDUs become errors
//! or [`session::Event`]s.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod alua;
pub mod chap_config;
pub mod command;
pub mod connection;
pub mod login;
pub mod pr;
pub mod scsi;
pub mod session;

pub use command::{CommandResult, Residual};
pub use connection::Connection;
pub use login::{Auth, ChapConfig, LoginConfig, Negotiated, SessionType};
pub use scsi::Capacity;
pub use session::{
    CommandOptions, DataOutPolicy, DiscoveredTarget, Event, EventReceiver, PendingCommand, Session,
    Stats,
};

pub use bytes::Bytes;
pub use ironlun_iscsi as iscsi;
pub use ironlun_scsi as scsi_codes;

/// Everything that can go wrong on the initiator side.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error("I/O: {0}")]
    Io(String),
    #[error("connection closed by the target")]
    ConnectionClosed,
    /// We closed the connection ([`Session::close_now`]), for this reason.
    #[error("connection closed by the initiator: {0}")]
    ClosedByInitiator(String),
    /// The target refused the login (Login Response status class / detail, §11.13.5).
    #[error("login rejected: status class {status_class:#04x} detail {status_detail:#04x}")]
    LoginRejected { status_class: u8, status_detail: u8 },
    /// The target redirected the login (status class 1, §11.13.5) to `target_address`
    /// (`host:port[,tpgt]`, absent if the target sent none).
    #[error("login redirected (detail {status_detail:#04x}) to {}", target_address.as_deref().unwrap_or("no TargetAddress"))]
    Redirected {
        status_detail: u8,
        target_address: Option<String>,
    },
    /// The target's mutual CHAP response did not verify (we end the login).
    #[error("target failed mutual CHAP authentication: {0}")]
    MutualAuthFailed(String),
    /// A negotiation answer the result function cannot produce (§6.2.2), or a missing one.
    #[error("negotiation: {0}")]
    Negotiation(String),
    /// The target broke the protocol (bad PDU, digest error, offsets out of range ...).
    #[error("protocol violation by the target: {0}")]
    Protocol(String),
    /// The task was ended by a task management function (no SCSI Response will come).
    #[error("task aborted by task management")]
    TaskAborted,
    /// A SCSI status other than GOOD where GOOD was required ([`CommandResult::good`]).
    #[error("SCSI status {status:#04x}{}", sense.map(|s| format!(" sense {s}")).unwrap_or_default())]
    Scsi {
        status: u8,
        sense: Option<ironlun_scsi::Sense>,
    },
    /// The target rejected our PDU (§11.17).
    #[error("PDU rejected by the target, reason {0:#04x}")]
    Rejected(u8),
    /// A caller error (bad argument, wrong state).
    #[error("invalid use: {0}")]
    Invalid(String),
}

impl Error {
    /// For [`Error::LoginRejected`]: `class << 8 | detail`, comparable with
    /// `ironlun_iscsi::pdu::login_status` constants.
    pub fn login_status(&self) -> Option<u16> {
        match self {
            Error::LoginRejected {
                status_class,
                status_detail,
            } => Some((u16::from(*status_class) << 8) | u16::from(*status_detail)),
            Error::Redirected { status_detail, .. } => Some(0x0100 | u16::from(*status_detail)),
            _ => None,
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        match e.kind() {
            std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::BrokenPipe => Error::ConnectionClosed,
            _ => Error::Io(e.to_string()),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
