//! Task management (RFC 7143 §11.5-6): the requests, sent immediate, and ending the tasks a
//! completed function ended in the target.

use ironlun_iscsi::pdu::tmf_function;
use ironlun_iscsi::serial::sn_le;
use ironlun_iscsi::{Bhs, Pdu, TaskMgmtRequest, RESERVED_TAG};
use ironlun_scsi::lun;
use tokio::sync::oneshot;

use super::state::{fail, State, Task};
use super::window::alloc_itt;
use super::Session;
use crate::{Error, Result};

impl Session {
    /// A task management request (§11.5), sent immediate; returns the response code
    /// (`ironlun_iscsi::pdu::tmf_response`). On FUNCTION COMPLETE the affected commands of
    /// this session end with [`Error::TaskAborted`].
    pub async fn task_mgmt(&self, function: u8, lun: u64, referenced_itt: u32) -> Result<u8> {
        let (tx, rx) = oneshot::channel();
        let sh = self.sh();
        self.with_window(true, move |st| {
            let itt = alloc_itt(st);
            let ref_cmd_sn = match st.tasks.get(&referenced_itt) {
                Some(Task::Scsi(t)) => t.cmd_sn,
                _ => st.c.cmd_sn,
            };
            let referenced = if function == tmf_function::ABORT_TASK {
                referenced_itt
            } else {
                RESERVED_TAG
            };
            let bhs = Bhs::TaskMgmtRequest(TaskMgmtRequest {
                immediate: true,
                function,
                lun: lun::encode(lun),
                itt,
                referenced_task_tag: referenced,
                cmd_sn: st.c.cmd_sn,
                exp_stat_sn: st.c.exp_stat_sn,
                ref_cmd_sn,
                exp_data_sn: 0,
            });
            sh.send(Pdu::new(bhs));
            st.tasks.insert(
                itt,
                Task::Tmf {
                    function,
                    lun,
                    referenced,
                    cmd_sn: st.c.cmd_sn,
                    tx,
                },
            );
            Ok(())
        })
        .await?;
        rx.await.unwrap_or(Err(Error::ConnectionClosed))
    }

    pub async fn abort_task(&self, lun: u64, itt: u32) -> Result<u8> {
        self.task_mgmt(tmf_function::ABORT_TASK, lun, itt).await
    }
    pub async fn abort_task_set(&self, lun: u64) -> Result<u8> {
        self.task_mgmt(tmf_function::ABORT_TASK_SET, lun, RESERVED_TAG)
            .await
    }
    pub async fn clear_task_set(&self, lun: u64) -> Result<u8> {
        self.task_mgmt(tmf_function::CLEAR_TASK_SET, lun, RESERVED_TAG)
            .await
    }
    pub async fn clear_aca(&self, lun: u64) -> Result<u8> {
        self.task_mgmt(tmf_function::CLEAR_ACA, lun, RESERVED_TAG)
            .await
    }
    pub async fn lun_reset(&self, lun: u64) -> Result<u8> {
        self.task_mgmt(tmf_function::LOGICAL_UNIT_RESET, lun, RESERVED_TAG)
            .await
    }
    pub async fn target_warm_reset(&self) -> Result<u8> {
        self.task_mgmt(tmf_function::TARGET_WARM_RESET, 0, RESERVED_TAG)
            .await
    }
    /// TARGET COLD RESET: the target closes the connection after answering (§11.5.1).
    pub async fn target_cold_reset(&self) -> Result<u8> {
        self.task_mgmt(tmf_function::TARGET_COLD_RESET, 0, RESERVED_TAG)
            .await
    }
}

/// On FUNCTION COMPLETE the target ended the affected tasks without responses (§11.5.1):
/// end them here too. Only tasks issued before the TMF are affected.
pub(super) fn abort_affected(st: &mut State, function: u8, lun: u64, referenced: u32, tmf_sn: u32) {
    let hit: Vec<u32> = st
        .tasks
        .iter()
        .filter_map(|(itt, t)| match t {
            Task::Scsi(s) => {
                let before = sn_le(s.cmd_sn, tmf_sn);
                let yes = match function {
                    tmf_function::ABORT_TASK => *itt == referenced,
                    tmf_function::ABORT_TASK_SET
                    | tmf_function::CLEAR_TASK_SET
                    | tmf_function::LOGICAL_UNIT_RESET => s.lun == lun && before,
                    tmf_function::TARGET_WARM_RESET | tmf_function::TARGET_COLD_RESET => before,
                    _ => false,
                };
                yes.then_some(*itt)
            }
            _ => None,
        })
        .collect();
    for itt in hit {
        if let Some(t) = st.tasks.remove(&itt) {
            fail(t, Error::TaskAborted);
        }
    }
}
