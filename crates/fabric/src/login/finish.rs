//! The end of a login: the connection's place among `max_connections`, the session created,
//! reinstated or joined, and a new session taken back out if its final Login Response never
//! goes out.

use std::sync::Arc;

use tokio::sync::OwnedSemaphorePermit;
use tracing::{info, warn};

use super::*;

/// A session this login registered, until its final Login Response is out. If writing it
/// fails, or the login's time runs out while it is being written (the future is dropped), a
/// session no connection joined is taken out of the registry again: no one could ever use or
/// log out of it, yet it would be listed and counted until its ISID came back.
pub(super) struct Unsent<'a> {
    pub(super) shared: &'a Arc<Shared>,
    pub(super) session: Option<Arc<crate::session::Session>>,
}

impl Unsent<'_> {
    pub(super) fn sent(mut self) {
        self.session = None;
    }
}

impl Drop for Unsent<'_> {
    fn drop(&mut self) {
        if let Some(s) = self.session.take() {
            if s.conn_infos().is_empty() {
                self.shared.registry.remove(&s);
                s.close();
            }
        }
    }
}

impl Login<'_> {
    /// A place among the fabric's `max_connections`, or 0x0302 (out of resources).
    /// After a session reinstatement the closed session's connections give their places
    /// back as their tasks end: wait for one up to [`REINSTATE_WAIT`].
    pub(super) async fn connection_slot(
        &self,
        reinstated: bool,
    ) -> Result<OwnedSemaphorePermit, Fail> {
        let places = self.shared.connections.clone();
        let slot = if reinstated {
            tokio::time::timeout(REINSTATE_WAIT, places.acquire_owned())
                .await
                .ok()
                .and_then(Result::ok)
        } else {
            places.try_acquire_owned().ok()
        };
        slot.ok_or_else(|| {
            warn!(peer = %self.peer, max = self.shared.options.max_connections, "login refused: connections at the limit");
            st::OUT_OF_RESOURCES
        })
    }

    /// Leading login: create the session (reinstating an old one with the same initiator
    /// port, §6.3.5); added connection: join it.
    pub(super) async fn finish(
        &mut self,
        _req: &LoginRequest,
    ) -> Result<(Arc<Session>, u16, OwnedSemaphorePermit), Fail> {
        let Some(first) = self.first.take() else {
            return Err(st::TARGET_ERROR);
        };
        if let Some(s) = first.joining {
            if s.is_closed() {
                return Err(st::SESSION_DOES_NOT_EXIST);
            }
            let slot = self.connection_slot(false).await?;
            return Ok((s, first.cid, slot));
        }
        let registry = &self.shared.registry;
        let mut reinstated = false;
        let (target_name, tpgt, nexus) = match &first.target {
            None => (None, 0, None),
            Some((name, g)) => {
                if let Some(old) = registry.find(&first.initiator, first.isid, Some(name), g.tpgt) {
                    info!(initiator = %first.initiator, tsih = old.tsih, "session reinstatement");
                    registry.remove(&old);
                    old.close();
                    reinstated = true;
                }
                let id = InitiatorPortId {
                    name: first.initiator.clone(),
                    isid: first.isid,
                };
                let nexus = g.port.open_nexus(id).map_err(|e| match e {
                    LoginDenied::NotAuthorized(_) => st::AUTHORIZATION_FAILURE,
                    LoginDenied::Disabled => st::NOT_FOUND,
                })?;
                (Some(name.clone()), g.tpgt, Some(nexus))
            }
        };
        if target_name.is_none() {
            if let Some(old) = registry.find(&first.initiator, first.isid, None, 0) {
                registry.remove(&old);
                old.close();
                reinstated = true;
            }
        }
        let close_nexus = || {
            if let Some(n) = &nexus {
                n.close();
            }
        };
        let max = self.shared.options.max_sessions_per_initiator;
        if registry.count_of(&first.initiator) >= max {
            warn!(initiator = %first.initiator, max, "login refused: sessions per initiator at the limit");
            close_nexus();
            return Err(st::OUT_OF_RESOURCES);
        }
        let slot = self
            .connection_slot(reinstated)
            .await
            .inspect_err(|_| close_nexus())?;
        let Some(tsih) = registry.alloc_tsih() else {
            close_nexus();
            return Err(st::OUT_OF_RESOURCES);
        };
        let mut params = self.agreed.clone();
        params.max_recv_data_segment_length = self.params.max_recv();
        params.first_burst_length = params.first_burst_length.min(params.max_burst_length);
        let session = Arc::new(Session::new(
            tsih,
            first.initiator.clone(),
            first.isid,
            target_name,
            tpgt,
            nexus,
            params,
            first.cmd_sn,
        ));
        if let Some(n) = &session.nexus {
            // TMFs of any I_T nexus reach the tasks this session still holds (session.rs).
            let w: Weak<Session> = Arc::downgrade(&session);
            let l: Weak<dyn TaskListener> = w;
            n.set_task_listener(l);
        }
        let Ok(displaced) = registry.insert_replacing(session.clone(), max) else {
            // Another login of this initiator took the last place while this one waited.
            warn!(initiator = %first.initiator, max, "login refused: sessions per initiator at the limit");
            session.close();
            return Err(st::OUT_OF_RESOURCES);
        };
        for old in displaced {
            // Lost a race with another login of this initiator port: the later one wins.
            info!(initiator = %first.initiator, tsih = old.tsih, "session reinstatement");
            old.close();
        }
        Ok((session, first.cid, slot))
    }
}
