//! The login phase without sockets, for the fuzz targets (`fuzz/`, harness in
//! `crates/fuzzkit`): a configuration snapshot installed without binding portals, and one
//! login (`login.rs`) run over any in-memory stream. Not part of the fabric's API.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::shared::{FabricOptions, Shared};
use crate::FabricConfig;

/// A fabric's shared state with `config` in force and no listener.
pub struct LoginRig {
    shared: Arc<Shared>,
}

/// How one login ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedIn {
    /// The session's TSIH.
    pub tsih: u16,
    /// The initiator name the session belongs to.
    pub initiator: String,
    /// Whether the session is a normal session (with an I_T nexus), not discovery.
    pub normal: bool,
}

impl LoginRig {
    /// Must be called inside a tokio runtime.
    pub fn new(config: FabricConfig) -> LoginRig {
        let shared = Arc::new(Shared::new(FabricOptions::default()));
        *shared.config.write() = Arc::new(config);
        LoginRig { shared }
    }

    /// Run the target's side of one login over `stream`, as if it came in on `portal`.
    /// `None`: the login failed or the stream ended. A session that logged in stays
    /// registered (so a later login may join or reinstate it) until [`LoginRig::close`].
    pub async fn login<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: &mut S,
        portal: SocketAddr,
    ) -> Option<LoggedIn> {
        let ok = crate::login::login(stream, portal, portal, portal, &self.shared).await?;
        let s = &ok.setup.session;
        Some(LoggedIn {
            tsih: s.tsih,
            initiator: s.initiator.clone(),
            normal: s.nexus.is_some(),
        })
    }

    /// End every session the logins made (their I_T nexuses close).
    pub fn close(&self) {
        for s in self.shared.registry.all() {
            self.shared.registry.remove(&s);
            s.close();
        }
    }
}
