//! Initiator Task Tags and the CmdSN window (RFC 7143 §4.2.2.1): a non-immediate request is
//! sent only while CmdSN <= MaxCmdSN; the reader task wakes the waiters when the window opens.

use ironlun_iscsi::serial::sn_le;
use ironlun_iscsi::RESERVED_TAG;

use super::state::State;
use super::Session;
use crate::{Error, Result};

impl Session {
    /// Wait for the CmdSN window (unless `immediate`), then run `f` under the state lock.
    pub(super) async fn with_window<T>(
        &self,
        immediate: bool,
        f: impl FnOnce(&mut State) -> Result<T>,
    ) -> Result<T> {
        let mut f = Some(f);
        loop {
            let notified = self.sh().window.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut st = self.sh().lock();
                if let Some(why) = &st.closed {
                    return Err(why.error());
                }
                if immediate || sn_le(st.c.cmd_sn, st.c.max_cmd_sn) {
                    let Some(f) = f.take() else {
                        return Err(Error::Invalid("window closure reused".into()));
                    };
                    return f(&mut st);
                }
            }
            notified.await;
        }
    }
}

pub(super) fn alloc_itt(st: &mut State) -> u32 {
    loop {
        let itt = st.c.next_itt;
        st.c.next_itt = itt.wrapping_add(1);
        if itt != RESERVED_TAG && !st.tasks.contains_key(&itt) {
            return itt;
        }
    }
}
