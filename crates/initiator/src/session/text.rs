//! Text requests (RFC 7143 §11.10-11) with the target's continuations, and SendTargets
//! discovery (Appendix C).

use ironlun_iscsi::text::{self, TextCollector};
use ironlun_iscsi::{Bhs, Pdu, TextRequest, TextResponse, RESERVED_TAG};
use tokio::sync::oneshot;

use super::state::{fail, unexpected, Shared, State, Task};
use super::window::alloc_itt;
use super::{DiscoveredTarget, Session};
use crate::{Error, Result};

impl Session {
    /// A text request (§11.10) with `pairs`; follows the target's continuations and returns
    /// all response pairs.
    pub async fn text_request(&self, pairs: &[(&str, &str)]) -> Result<Vec<(String, String)>> {
        let data = text::encode(pairs.iter().copied());
        if data.len() > self.sh().params.max_xmit_data_segment_length as usize {
            return Err(Error::Invalid("text request longer than one PDU".into()));
        }
        let (tx, rx) = oneshot::channel();
        let sh = self.sh();
        self.with_window(false, move |st| {
            let itt = alloc_itt(st);
            send_request(sh, st, itt, RESERVED_TAG, data);
            st.tasks.insert(
                itt,
                Task::Text {
                    collector: TextCollector::new(1 << 20),
                    tx,
                },
            );
            Ok(())
        })
        .await?;
        rx.await.unwrap_or(Err(Error::ConnectionClosed))
    }

    /// SendTargets (Appendix C): `"All"` in a discovery session, `""` (or the session's
    /// target name) in a normal one.
    pub async fn send_targets(&self, what: &str) -> Result<Vec<DiscoveredTarget>> {
        let pairs = self.text_request(&[("SendTargets", what)]).await?;
        parse_send_targets(&pairs)
    }
}

/// Parse SendTargets response pairs: each TargetName starts a record, TargetAddress values
/// belong to the record before them.
pub fn parse_send_targets(pairs: &[(String, String)]) -> Result<Vec<DiscoveredTarget>> {
    let mut out: Vec<DiscoveredTarget> = Vec::new();
    for (k, v) in pairs {
        match k.as_str() {
            "TargetName" => out.push(DiscoveredTarget {
                name: v.clone(),
                addresses: Vec::new(),
            }),
            "TargetAddress" => match out.last_mut() {
                Some(t) => t.addresses.push(v.clone()),
                None => {
                    return Err(Error::Protocol(
                        "TargetAddress before any TargetName".into(),
                    ))
                }
            },
            _ => {}
        }
    }
    Ok(out)
}

pub(super) fn on_text(sh: &Shared, st: &mut State, t: &TextResponse, pdu: &Pdu) {
    let Some(Task::Text { collector, .. }) = st.tasks.get_mut(&t.itt) else {
        let task = st.tasks.remove(&t.itt);
        unexpected(sh, st, t.itt, task, pdu.clone());
        return;
    };
    if let Err(e) = collector.push(&pdu.data) {
        if let Some(task) = st.tasks.remove(&t.itt) {
            fail(task, Error::Protocol(e.to_string()));
        }
        return;
    }
    if t.final_ && !t.cont {
        let pairs = collector.finish();
        if let Some(Task::Text { tx, .. }) = st.tasks.remove(&t.itt) {
            let _ = tx.send(pairs.map_err(|e| Error::Protocol(format!("text response: {e}"))));
        }
        return;
    }
    // More to come: ask with an empty Text Request carrying the target's TTT (§11.10.4).
    send_request(sh, st, t.itt, t.ttt, Vec::new());
}

/// Send a final Text Request of task `itt` with the next CmdSN: `ttt` is the reserved tag
/// for a new request, the target's tag to ask for the rest of a response (§11.10.4).
fn send_request(sh: &Shared, st: &mut State, itt: u32, ttt: u32, data: Vec<u8>) {
    let cmd_sn = st.c.cmd_sn;
    st.c.cmd_sn = cmd_sn.wrapping_add(1);
    let bhs = Bhs::TextRequest(TextRequest {
        immediate: false,
        final_: true,
        cont: false,
        lun: [0; 8],
        itt,
        ttt,
        cmd_sn,
        exp_stat_sn: st.c.exp_stat_sn,
    });
    sh.send(Pdu::with_data(bhs, data));
}
