//! [`HostError`]: why a host command failed, as one line a person can act on. The CLI prints
//! it after `ironlun host: ` and exits with status 2.

use std::fmt;

use ironlun_initiator::Error as InitiatorError;
use ironlun_iscsi::pdu::login_status as ls;
use ironlun_scsi::sense::{asc, Asc};
use ironlun_scsi::Sense;

/// One failure of a host command: a message naming what was being done and what went wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostError(pub String);

impl HostError {
    pub fn new(msg: impl Into<String>) -> HostError {
        HostError(msg.into())
    }

    /// A refused user-given value: `--state 'x': valid: …` (nothing is sent).
    pub fn bad_value(field: &str, value: &str, valid: &str) -> HostError {
        HostError(format!("{field} '{value}': {valid}"))
    }

    /// `what` failed because of `e` (an initiator error), as one line.
    pub fn during(what: &str, e: &InitiatorError) -> HostError {
        HostError(format!("{what}: {}", describe(e)))
    }
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HostError {}

/// An initiator error in words: login failures by status class and detail (RFC 7143
/// §11.13.5), SCSI failures by status and sense.
pub fn describe(e: &InitiatorError) -> String {
    match e {
        InitiatorError::LoginRejected {
            status_class,
            status_detail,
        } => format!(
            "login rejected: {} (status class {status_class:#04x}, detail {status_detail:#04x}: {})",
            login_class_name(*status_class),
            login_detail_name(*status_class, *status_detail)
        ),
        InitiatorError::Scsi { status, sense } => scsi_failure(*status, sense.as_ref()),
        other => other.to_string(),
    }
}

/// The name of a Login Response status class (§11.13.5).
pub fn login_class_name(class: u8) -> &'static str {
    match class {
        0 => "success",
        1 => "redirection",
        2 => "initiator error",
        3 => "target error",
        _ => "reserved status class",
    }
}

/// The name of a Login Response status class and detail (§11.13.5, Table of status codes).
pub fn login_detail_name(class: u8, detail: u8) -> &'static str {
    match (u16::from(class) << 8) | u16::from(detail) {
        ls::SUCCESS => "success",
        ls::TARGET_MOVED_TEMPORARILY => "target moved temporarily",
        ls::TARGET_MOVED_PERMANENTLY => "target moved permanently",
        ls::INITIATOR_ERROR => "initiator error",
        ls::AUTHENTICATION_FAILURE => "authentication failure",
        ls::AUTHORIZATION_FAILURE => "authorization failure",
        ls::NOT_FOUND => "target not found",
        ls::TARGET_REMOVED => "target removed",
        ls::UNSUPPORTED_VERSION => "unsupported version",
        ls::TOO_MANY_CONNECTIONS => "too many connections",
        ls::MISSING_PARAMETER => "missing parameter",
        ls::CANT_INCLUDE_IN_SESSION => "cannot include in session",
        ls::SESSION_TYPE_NOT_SUPPORTED => "session type not supported",
        ls::SESSION_DOES_NOT_EXIST => "session does not exist",
        ls::INVALID_DURING_LOGIN => "invalid request during login",
        ls::TARGET_ERROR => "target error",
        ls::SERVICE_UNAVAILABLE => "service unavailable",
        ls::OUT_OF_RESOURCES => "out of resources",
        _ => "unknown detail",
    }
}

/// The name of a SCSI status (SAM-5 §5.3).
pub fn status_name(status: u8) -> &'static str {
    match status {
        0x00 => "GOOD",
        0x02 => "CHECK CONDITION",
        0x04 => "CONDITION MET",
        0x08 => "BUSY",
        0x18 => "RESERVATION CONFLICT",
        0x28 => "TASK SET FULL",
        0x30 => "ACA ACTIVE",
        0x40 => "TASK ABORTED",
        _ => "reserved status",
    }
}

/// The name of a sense key (SPC-4 Table 49).
pub fn sense_key_name(key: u8) -> &'static str {
    match key {
        0x0 => "NO SENSE",
        0x1 => "RECOVERED ERROR",
        0x2 => "NOT READY",
        0x3 => "MEDIUM ERROR",
        0x4 => "HARDWARE ERROR",
        0x5 => "ILLEGAL REQUEST",
        0x6 => "UNIT ATTENTION",
        0x7 => "DATA PROTECT",
        0x8 => "BLANK CHECK",
        0x9 => "VENDOR SPECIFIC",
        0xA => "COPY ABORTED",
        0xB => "ABORTED COMMAND",
        0xD => "VOLUME OVERFLOW",
        0xE => "MISCOMPARE",
        _ => "reserved sense key",
    }
}

/// A non-GOOD SCSI outcome in words: `SCSI status CHECK CONDITION (0x02), sense key ILLEGAL
/// REQUEST (0x5), ASC/ASCQ 24h/00h (INVALID FIELD IN CDB, at CDB byte 1 bit 4)`.
pub fn scsi_failure(status: u8, sense: Option<&Sense>) -> String {
    let mut s = format!("SCSI status {} ({status:#04x})", status_name(status));
    if let Some(sn) = sense {
        s.push_str(&format!(
            ", sense key {} ({:#x}), ASC/ASCQ {:02X}h/{:02X}h",
            sense_key_name(sn.key),
            sn.key,
            sn.asc.asc,
            sn.asc.ascq
        ));
        let mut notes: Vec<String> = Vec::new();
        if let Some(n) = asc_name(sn.asc) {
            notes.push(n.to_string());
        }
        if let Some(fp) = sn.field_pointer {
            let place = if fp.cd { "CDB" } else { "parameter list" };
            let bit = fp.bit.map(|b| format!(" bit {b}")).unwrap_or_default();
            notes.push(format!("at {place} byte {}{bit}", fp.field));
        }
        if !notes.is_empty() {
            s.push_str(&format!(" ({})", notes.join(", ")));
        }
    }
    s
}

/// The additional sense codes the host commands meet (SPC-4 Annex D), in words.
pub fn asc_name(a: Asc) -> Option<&'static str> {
    Some(match a {
        asc::PARAMETER_LIST_LENGTH_ERROR => "PARAMETER LIST LENGTH ERROR",
        asc::INVALID_COMMAND_OPERATION_CODE => "INVALID COMMAND OPERATION CODE",
        asc::INVALID_FIELD_IN_CDB => "INVALID FIELD IN CDB",
        asc::LOGICAL_UNIT_NOT_SUPPORTED => "LOGICAL UNIT NOT SUPPORTED",
        asc::INVALID_FIELD_IN_PARAMETER_LIST => "INVALID FIELD IN PARAMETER LIST",
        asc::INVALID_RELEASE_OF_PERSISTENT_RESERVATION => {
            "INVALID RELEASE OF PERSISTENT RESERVATION"
        }
        asc::POWER_ON_RESET_OR_BUS_DEVICE_RESET_OCCURRED => {
            "POWER ON, RESET, OR BUS DEVICE RESET OCCURRED"
        }
        asc::I_T_NEXUS_LOSS_OCCURRED => "I_T NEXUS LOSS OCCURRED",
        asc::RESERVATIONS_PREEMPTED => "RESERVATIONS PREEMPTED",
        asc::RESERVATIONS_RELEASED => "RESERVATIONS RELEASED",
        asc::REGISTRATIONS_PREEMPTED => "REGISTRATIONS PREEMPTED",
        asc::INTERNAL_TARGET_FAILURE => "INTERNAL TARGET FAILURE",
        asc::INSUFFICIENT_REGISTRATION_RESOURCES => "INSUFFICIENT REGISTRATION RESOURCES",
        asc::LOGICAL_UNIT_NOT_READY => "LOGICAL UNIT NOT READY, CAUSE NOT REPORTABLE",
        asc::NOT_READY_ASYMMETRIC_ACCESS_STATE_TRANSITION => {
            "LOGICAL UNIT NOT ACCESSIBLE, ASYMMETRIC ACCESS STATE TRANSITION"
        }
        asc::NOT_READY_TARGET_PORT_IN_STANDBY_STATE => {
            "LOGICAL UNIT NOT ACCESSIBLE, TARGET PORT IN STANDBY STATE"
        }
        asc::NOT_READY_TARGET_PORT_IN_UNAVAILABLE_STATE => {
            "LOGICAL UNIT NOT ACCESSIBLE, TARGET PORT IN UNAVAILABLE STATE"
        }
        asc::NOT_READY_OFFLINE => "LOGICAL UNIT NOT READY, OFFLINE",
        asc::ASYMMETRIC_ACCESS_STATE_CHANGED => "ASYMMETRIC ACCESS STATE CHANGED",
        asc::INQUIRY_DATA_HAS_CHANGED => "INQUIRY DATA HAS CHANGED",
        _ => return None,
    })
}
