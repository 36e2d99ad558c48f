//! Counters of the iSCSI fabric for the metrics exporter (docs/metrics.md): failed logins by
//! the status of their Login Response (RFC 7143 §11.13.5; timeouts and bad PDUs during login,
//! which get none, under their own reasons) and digest errors (§7.8), with the sessions and
//! connections open at the moment of reading (`Fabric::stats`).

use std::sync::atomic::{AtomicU64, Ordering};

use ironlun_iscsi::pdu::login_status as st;

/// Login failure reasons: the status a failed login is answered with, by its RFC 7143
/// §11.13.5 name; `None`: a login that ended without a Login Response.
pub const LOGIN_FAILURE_REASONS: [(Option<u16>, &str); 18] = [
    (Some(st::INITIATOR_ERROR), "initiator_error"),
    (Some(st::AUTHENTICATION_FAILURE), "authentication_failure"),
    (Some(st::AUTHORIZATION_FAILURE), "authorization_failure"),
    (Some(st::NOT_FOUND), "not_found"),
    (Some(st::TARGET_REMOVED), "target_removed"),
    (Some(st::UNSUPPORTED_VERSION), "unsupported_version"),
    (Some(st::TOO_MANY_CONNECTIONS), "too_many_connections"),
    (Some(st::MISSING_PARAMETER), "missing_parameter"),
    (Some(st::CANT_INCLUDE_IN_SESSION), "cant_include_in_session"),
    (
        Some(st::SESSION_TYPE_NOT_SUPPORTED),
        "session_type_not_supported",
    ),
    (Some(st::SESSION_DOES_NOT_EXIST), "session_does_not_exist"),
    (Some(st::INVALID_DURING_LOGIN), "invalid_during_login"),
    (Some(st::TARGET_ERROR), "target_error"),
    (Some(st::SERVICE_UNAVAILABLE), "service_unavailable"),
    (Some(st::OUT_OF_RESOURCES), "out_of_resources"),
    // Any other status code we might send.
    (None, "other"),
    (None, "timeout"),
    (None, "bad_pdu"),
];
const OTHER: usize = 15;
const TIMEOUT: usize = 16;
const BAD_PDU: usize = 17;

#[derive(Default)]
pub(crate) struct Counters {
    login_failures: [AtomicU64; LOGIN_FAILURE_REASONS.len()],
    header_digest: AtomicU64,
    data_digest: AtomicU64,
}

impl Counters {
    /// A failed login answered with `status`.
    pub(crate) fn login_failed(&self, status: u16) {
        let i = LOGIN_FAILURE_REASONS
            .iter()
            .position(|(s, _)| *s == Some(status))
            .unwrap_or(OTHER);
        self.login_failures[i].fetch_add(1, Ordering::Relaxed);
    }

    /// A login that did not finish within the login timeout.
    pub(crate) fn login_timed_out(&self) {
        self.login_failures[TIMEOUT].fetch_add(1, Ordering::Relaxed);
    }

    /// A login ended by a PDU that is not a Login Request or cannot be decoded (no response).
    pub(crate) fn login_bad_pdu(&self) {
        self.login_failures[BAD_PDU].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn header_digest_error(&self) {
        self.header_digest.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn data_digest_error(&self) {
        self.data_digest.fetch_add(1, Ordering::Relaxed);
    }
}

/// The fabric's counters and gauges at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FabricStats {
    /// Normal sessions logged in.
    pub sessions: usize,
    pub discovery_sessions: usize,
    /// Connections past login (every session).
    pub connections: usize,
    /// By [`LOGIN_FAILURE_REASONS`] name.
    pub login_failures: Vec<(&'static str, u64)>,
    pub header_digest_errors: u64,
    pub data_digest_errors: u64,
}

impl Counters {
    /// The counters with the gauges read by the caller (`Fabric::stats`).
    pub(crate) fn snapshot(
        &self,
        sessions: usize,
        discovery_sessions: usize,
        connections: usize,
    ) -> FabricStats {
        FabricStats {
            sessions,
            discovery_sessions,
            connections,
            login_failures: LOGIN_FAILURE_REASONS
                .iter()
                .zip(&self.login_failures)
                .map(|((_, name), n)| (*name, n.load(Ordering::Relaxed)))
                .collect(),
            header_digest_errors: self.header_digest.load(Ordering::Relaxed),
            data_digest_errors: self.data_digest.load(Ordering::Relaxed),
        }
    }
}
