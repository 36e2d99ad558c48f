//! How the host reaches a target: the initiator name, CHAP credentials (one-way and mutual;
//! secrets from the URL, the environment or a file, never required on the command line), a
//! timeout on every network step (connect, login, each command, logout), and login redirects
//! (status class 1) followed at most [`MAX_REDIRECTS`] times.

use std::future::Future;
use std::time::Duration;

use ironlun_initiator::iscsi::pdu::task_attr::SIMPLE;
use ironlun_initiator::{
    ChapConfig, CommandResult, Connection, Error as InitiatorError, LoginConfig, Session,
};

use crate::error::describe;
use crate::url::{IscsiUrl, Portal};
use crate::{HostError, Result};

/// Our initiator name unless `--initiator-name` says otherwise.
pub const DEFAULT_INITIATOR: &str = "iqn.2026-11.org.ironlun:host";
/// Login redirects followed before giving up (a loop ends there).
pub const MAX_REDIRECTS: usize = 4;
/// Environment variables the secrets may come from (ours first, then libiscsi's names).
pub const ENV_SECRET: [&str; 2] = ["IRONLUN_CHAP_SECRET", "LIBISCSI_CHAP_PASSWORD"];
pub const ENV_TARGET_SECRET: [&str; 2] = [
    "IRONLUN_CHAP_TARGET_SECRET",
    "LIBISCSI_CHAP_TARGET_PASSWORD",
];

/// CHAP credentials as given by options, files and the environment (the URL may add a user
/// name and a secret).
#[derive(Clone, Default)]
pub struct Credentials {
    pub user: Option<String>,
    pub secret: Option<Vec<u8>>,
    /// Mutual CHAP: the name the target must answer with (any name when `None`) ...
    pub target_user: Option<String>,
    /// ... and the secret it must prove.
    pub target_secret: Option<Vec<u8>>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("secret", &self.secret.as_ref().map(|_| "***"))
            .field("target_user", &self.target_user)
            .field("target_secret", &self.target_secret.as_ref().map(|_| "***"))
            .finish()
    }
}

impl Credentials {
    /// The first set variable of `names`, if any.
    pub fn from_env(names: &[&str]) -> Option<Vec<u8>> {
        names
            .iter()
            .find_map(std::env::var_os)
            .filter(|v| !v.is_empty())
            .map(|v| v.into_encoded_bytes())
    }

    /// A secret file's content without its trailing newline.
    pub fn from_file(path: &std::path::Path, what: &str) -> Result<Vec<u8>> {
        let mut b = std::fs::read(path)
            .map_err(|e| HostError::new(format!("{what}: cannot read {}: {e}", path.display())))?;
        while b.last().is_some_and(|c| *c == b'\n' || *c == b'\r') {
            b.pop();
        }
        Ok(b)
    }

    /// The CHAP configuration for a login whose URL carries `url_user` / `url_secret`:
    /// `None` for no authentication.
    pub fn chap(
        &self,
        url_user: Option<&str>,
        url_secret: Option<&str>,
    ) -> Result<Option<ChapConfig>> {
        let user = url_user.map(str::to_owned).or_else(|| self.user.clone());
        let secret = url_secret
            .map(|s| s.as_bytes().to_vec())
            .or_else(|| self.secret.clone());
        let mutual = self.target_secret.is_some() || self.target_user.is_some();
        match (user, secret) {
            (None, None) if !mutual => Ok(None),
            (None, _) => Err(HostError::new(
                "CHAP: a secret or a target (mutual) credential was given but no user name \
                 (user@ in the URL, --chap-user or IRONLUN_CHAP_USER)",
            )),
            (Some(u), None) => Err(HostError::new(format!(
                "CHAP: user '{u}' has no secret (set IRONLUN_CHAP_SECRET, or \
                 --chap-secret-file FILE)"
            ))),
            (Some(u), Some(s)) => {
                let mut c = ChapConfig::new(u, s);
                if mutual {
                    let ts = self.target_secret.clone().ok_or_else(|| {
                        HostError::new(
                            "mutual CHAP: --target-user was given but no target secret \
                             (set IRONLUN_CHAP_TARGET_SECRET, or --target-secret-file FILE)",
                        )
                    })?;
                    c = c.mutual(self.target_user.as_deref(), ts);
                }
                Ok(Some(c))
            }
        }
    }
}

/// Our ISID (RFC 7143 §11.12.5): type 10b (random) with fixed bytes, so that one host's
/// separate runs are one initiator port (persistent reservations hold across them).
pub const DEFAULT_ISID: [u8; 6] = [0x80, 0x00, 0x49, 0x4c, 0x00, 0x01];

/// Everything a host command needs to talk to targets.
#[derive(Clone, Debug)]
pub struct Ctx {
    /// The limit of each network step.
    pub timeout: Duration,
    pub initiator_name: String,
    pub credentials: Credentials,
    /// The ISID of our sessions: sessions open at once to one target portal group need
    /// different ones, or the target takes the second login for a reinstatement of the first.
    pub isid: [u8; 6],
}

impl Default for Ctx {
    fn default() -> Ctx {
        Ctx {
            timeout: Duration::from_secs(10),
            initiator_name: DEFAULT_INITIATOR.to_string(),
            credentials: Credentials::default(),
            isid: DEFAULT_ISID,
        }
    }
}

impl Ctx {
    /// This context for path `i` of a set of sessions open at once to one LU: its own ISID
    /// (qualifier `base + i`), as open-iscsi gives each session one, so two portals of one
    /// portal group are two I_T nexuses and not a reinstatement.
    pub fn for_path(&self, base: u16, i: usize) -> Ctx {
        let mut c = self.clone();
        let q = u16::try_from(i).unwrap_or(u16::MAX).wrapping_add(base);
        c.isid[4..6].copy_from_slice(&q.to_be_bytes());
        c
    }

    /// Run one network step under the timeout; `what` names it in any error.
    pub async fn step<T>(
        &self,
        what: &str,
        fut: impl Future<Output = std::result::Result<T, InitiatorError>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(HostError::during(what, &e)),
            Err(_) => Err(HostError::new(format!(
                "{what}: no answer within {} s (--timeout)",
                fmt_secs(self.timeout)
            ))),
        }
    }

    /// Log in to the URL's target for a Normal session.
    pub async fn login(&self, url: &IscsiUrl) -> Result<Session> {
        let chap = self
            .credentials
            .chap(url.user.as_deref(), url.secret.as_deref())?;
        let mut cfg = LoginConfig::normal(&self.initiator_name, &url.target).isid(self.isid);
        if let Some(c) = chap {
            cfg = cfg.chap(c);
        }
        self.login_following(&url.portal, &cfg, &format!("login to {}", url.target))
            .await
    }

    /// Log in for a Discovery session (SendTargets) at `portal`.
    pub async fn login_discovery(
        &self,
        portal: &Portal,
        user: Option<&str>,
        secret: Option<&str>,
    ) -> Result<Session> {
        let mut cfg = LoginConfig::discovery(&self.initiator_name).isid(self.isid);
        if let Some(c) = self.credentials.chap(user, secret)? {
            cfg = cfg.chap(c);
        }
        self.login_following(portal, &cfg, "discovery login").await
    }

    /// Connect and log in at `portal`, following redirects (each hop under its own timeouts).
    async fn login_following(
        &self,
        portal: &Portal,
        cfg: &LoginConfig,
        what: &str,
    ) -> Result<Session> {
        let mut at = portal.clone();
        let mut hops: Vec<String> = Vec::new();
        loop {
            let addr = at.socket_addr_text();
            let mut conn = self
                .step(
                    &format!("connect to {addr}"),
                    Connection::connect(addr.clone()),
                )
                .await?;
            let outcome = tokio::time::timeout(
                self.timeout,
                ironlun_initiator::login::login(&mut conn, cfg),
            )
            .await;
            match outcome {
                Ok(Ok(negotiated)) => return Ok(Session::start(conn, negotiated, cfg.cid)),
                Ok(Err(InitiatorError::Redirected {
                    status_detail,
                    target_address,
                })) => {
                    let Some(to) = target_address else {
                        return Err(HostError::new(format!(
                            "{what} at {addr}: redirected (detail {status_detail:#04x}) \
                             without a TargetAddress"
                        )));
                    };
                    hops.push(addr.clone());
                    if hops.len() > MAX_REDIRECTS {
                        return Err(HostError::new(format!(
                            "{what}: more than {MAX_REDIRECTS} login redirects ({} -> {to}); \
                             a redirect loop?",
                            hops.join(" -> ")
                        )));
                    }
                    let hostport = to.split(',').next().unwrap_or_default();
                    at = Portal::parse(hostport).map_err(|e| {
                        HostError::new(format!(
                            "{what} at {addr}: redirected to an unusable TargetAddress '{to}': {e}"
                        ))
                    })?;
                }
                Ok(Err(e)) => {
                    return Err(HostError::new(format!(
                        "{what} at {addr}: {}",
                        describe(&e)
                    )))
                }
                Err(_) => {
                    return Err(HostError::new(format!(
                        "{what} at {addr}: no answer within {} s (--timeout)",
                        fmt_secs(self.timeout)
                    )))
                }
            }
        }
    }

    /// One SCSI command under the timeout; the outcome (any SCSI status) is returned as data,
    /// an iSCSI response other than Command Completed at Target is an error.
    pub async fn command(
        &self,
        s: &Session,
        lun: u64,
        cdb: &[u8],
        data_out: Option<Vec<u8>>,
        alloc: u32,
        what: &str,
    ) -> Result<CommandResult> {
        // Protocol violations the session survived (Data-In past the expected length or at a
        // bad offset, a SenseLength past the segment …) would leave this command's data
        // short or wrong: they fail it, named.
        let seen = s.violations_total();
        let r = self
            .step(what, s.command(lun, cdb, data_out, alloc, SIMPLE))
            .await?;
        if let Some(v) = s.violation_since(seen) {
            return Err(HostError::new(format!(
                "{what}: protocol violation by the target: {v}"
            )));
        }
        // RFC 7143 §11.4.3: only "Command Completed at Target" carries a SCSI status.
        if r.response != 0 {
            return Err(HostError::new(format!(
                "{what}: iSCSI response {:#04x} (target failure; no SCSI status)",
                r.response
            )));
        }
        Ok(r)
    }

    /// Log out (best effort, under the timeout): the target sees a clean end of the session.
    pub async fn logout(&self, s: &Session) {
        let _ = tokio::time::timeout(self.timeout, s.logout(0)).await;
    }
}

/// Seconds for messages, to a tenth: `10`, `0.5`, `1.5`.
pub fn fmt_secs(d: Duration) -> String {
    let tenths = (d.as_millis() + 50) / 100;
    if tenths.is_multiple_of(10) {
        format!("{}", tenths / 10)
    } else {
        format!("{}.{}", tenths / 10, tenths % 10)
    }
}

/// A logged-in session to one logical unit that answered INQUIRY as present.
#[derive(Debug)]
pub struct Lu {
    pub session: Session,
    pub url: IscsiUrl,
    /// Its standard INQUIRY data (at least 36 bytes).
    pub inquiry: Vec<u8>,
}

impl Ctx {
    /// Log in to the URL's target and check that its LUN holds a logical unit: standard
    /// INQUIRY must answer GOOD with peripheral qualifier 000b (SPC-4 §6.6.2; 011b, or
    /// ILLEGAL REQUEST / LOGICAL UNIT NOT SUPPORTED, means no LU there).
    pub async fn open(&self, url: &IscsiUrl) -> Result<Lu> {
        let session = self.login(url).await?;
        let what = format!("INQUIRY to {url}");
        let cdb = ironlun_initiator::scsi::cdb::inquiry(false, 0, 255);
        let r = self
            .command(&session, url.lun, &cdb, None, 255, &what)
            .await?;
        let missing = || {
            HostError::new(format!(
                "LUN {} does not exist on {} at {}",
                url.lun, url.target, url.portal
            ))
        };
        if r.status != ironlun_scsi::status::GOOD {
            let lu_not_supported = r.sense.is_some_and(|s| {
                s.key == ironlun_scsi::sense::key::ILLEGAL_REQUEST && s.asc.asc == 0x25
            });
            self.logout(&session).await;
            if lu_not_supported {
                return Err(missing());
            }
            return Err(HostError::new(format!(
                "{what}: {}",
                crate::error::scsi_failure(r.status, r.sense.as_ref())
            )));
        }
        let data = r.data_in.to_vec();
        if data.len() < 36 {
            self.logout(&session).await;
            return Err(HostError::new(format!(
                "{what}: standard INQUIRY data of {} bytes (at least 36 required)",
                data.len()
            )));
        }
        if data[0] >> 5 != 0 {
            self.logout(&session).await;
            return Err(missing());
        }
        Ok(Lu {
            session,
            url: url.clone(),
            inquiry: data,
        })
    }
}
