//! The iSCSI fabric (RFC 7143) at ErrorRecoveryLevel 0.
//!
//! Contract used by the control plane: build a [`FabricConfig`] snapshot from the object tree and
//! hand it to [`Fabric::apply`] after every change; the fabric opens and closes portal listeners
//! to match and uses the new snapshot for every later login.
//!
//! Layout (dependencies point down this list, never up):
//! * `server` — portals and listeners (§3.4), [`Fabric::apply`], shutdown.
//! * `login` — the login phase (§6, §11.12-13): stages, CHAP (`login/chap`, §12.1.3), operational
//!   negotiation (§13), session creation and reinstatement.
//! * `conn` — one connection in the full feature phase: `conn/wire` (reader, writer, NOP-In
//!   keep-alive §11.18-19), `conn/command` (SCSI Command intake §11.3), `conn/data_out` (R2T
//!   and Data-Out §11.7-8), `conn/response` (Data-In and SCSI Response §11.4, §11.7),
//!   `conn/runq` (the run queue), `conn/tmf` (TMF §11.5), `conn/text` (Text §11.10),
//!   `conn/logout` (Logout §11.14), `conn/task` (the commands a connection holds).
//! * `shared` — state every task shares: configuration, registry, [`FabricOptions`] (the
//!   timeouts and limits), SendTargets (Appendix C).
//! * `guard` — the failed-login back-off per initiator name and source address.
//! * `session` — sessions and their registry (TSIH), the CmdSN window (§4.2.2), and a
//!   handle per connection (no dependency on `conn`).
//! * `params` — the TPG `param/` keys.

// Tests may unwrap: a panic there is a test failure, not a wire input.
#![cfg_attr(test, allow(clippy::unwrap_used))]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use ironlun_engine::TargetPort;

/// CHAP credentials (LIO `auth/userid`, `auth/password`, `auth/userid_mutual`, `auth/password_mutual`).
/// Empty `userid` = no CHAP credentials configured. `Debug` masks the secrets.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AuthConfig {
    pub userid: String,
    pub password: String,
    pub mutual_userid: String,
    pub mutual_password: String,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("userid", &self.userid)
            .field("password", &Masked(&self.password))
            .field("mutual_userid", &self.mutual_userid)
            .field("mutual_password", &Masked(&self.mutual_password))
            .finish()
    }
}

/// How a secret is shown anywhere but its own `get`: never its text.
pub const SECRET_MASK: &str = "********";

/// A secret for `Debug` output: [`SECRET_MASK`], or `""` when it is not set.
pub struct Masked<'a>(pub &'a str);

impl std::fmt::Debug for Masked<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            f.write_str("\"\"")
        } else {
            f.write_str(SECRET_MASK)
        }
    }
}

/// One target portal group (`iscsi/<iqn>/tpgt_<n>`).
#[derive(Clone)]
pub struct TpgConfig {
    pub tpgt: u16,
    pub enabled: bool,
    /// Network portals (`np/<ip>:<port>`).
    pub portals: Vec<SocketAddr>,
    /// The engine's target port for this TPG (LUNs and ACLs live there).
    pub port: Arc<TargetPort>,
    /// `attrib/authentication`: 1 = CHAP required, 0 = AuthMethod None accepted.
    pub authentication: bool,
    /// TPG-level CHAP credentials (used in demo mode, LIO `tpgt_N/auth/`).
    pub auth: AuthConfig,
    /// Per-ACL CHAP credentials (`acls/<initiator>/auth/`), by initiator name.
    pub acl_auth: BTreeMap<String, AuthConfig>,
    /// `param/<Key>` overrides of the RFC 7143 defaults the target offers/accepts,
    /// e.g. "HeaderDigest" → "CRC32C,None", "MaxRecvDataSegmentLength" → "262144".
    pub params: BTreeMap<String, String>,
    /// `attrib/nopin_timeout`: idle time before the target pings a connection with a NOP-In;
    /// `None` disables the pings (and with them the dead-connection check). `None` in a
    /// config built without the attribute means the server default (`FabricOptions`).
    pub nopin: Option<NopIn>,
}

/// Keep-alive of a TPG's connections (LIO's `nopin_timeout` / `nopin_response_timeout`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NopIn {
    /// No NOP-In pings: an idle connection stays up however long the initiator is silent.
    Off,
    /// Ping after `interval` of silence; drop the connection when no NOP-Out answers within
    /// `response`.
    Every {
        interval: std::time::Duration,
        response: std::time::Duration,
    },
}

/// One target (`iscsi/<iqn>`).
#[derive(Clone)]
pub struct TargetConfig {
    pub name: String,
    pub tpgs: Vec<TpgConfig>,
}

/// The whole fabric configuration.
#[derive(Clone, Default)]
pub struct FabricConfig {
    pub targets: Vec<TargetConfig>,
    /// Discovery-session CHAP (LIO `iscsi/discovery_auth`); `None` = no auth for discovery.
    pub discovery_auth: Option<AuthConfig>,
}

/// Names and default values of the TPG `param/` keys, in display order.
pub fn param_defaults() -> Vec<(&'static str, &'static str)> {
    params::PARAMS.to_vec()
}

/// The words a `param/<key>` value is made of where they are a fixed set (Yes/No, the
/// digests, ...); `None` for numbers and text. What the shell completes.
pub fn param_words(key: &str) -> Option<&'static [&'static str]> {
    params::words(key)
}

/// Validate a `param/<key>` value. Err is one line naming the key and what is valid.
pub fn validate_param(key: &str, value: &str) -> Result<(), String> {
    params::validate(key, value)
}

mod conn;
#[doc(hidden)]
pub mod fuzzing;
mod guard;
mod listing;
mod login;
mod params;
mod server;
mod session;
mod shared;
mod stats;

pub use listing::{ConnInfo, OperationalParams, SessionInfo};
pub use server::Fabric;
pub use shared::FabricOptions;
pub use stats::{FabricStats, LOGIN_FAILURE_REASONS};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_config_debug_masks_the_secrets() {
        let a = AuthConfig {
            userid: "chapuser".into(),
            password: "Sekr1t-initiator".into(),
            mutual_userid: "targetuser".into(),
            mutual_password: "Sekr1t-target".into(),
        };
        let shown = format!("{a:?}");
        assert!(!shown.contains("Sekr1t"), "{shown}");
        assert!(
            shown.contains("chapuser") && shown.contains("targetuser"),
            "{shown}"
        );
        assert_eq!(shown.matches(SECRET_MASK).count(), 2, "{shown}");
        assert!(format!("{:?}", AuthConfig::default()).contains("password: \"\""));
    }
}
