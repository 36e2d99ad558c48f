//! `batch`: several `set`, `create`, `delete` and `link` requests as one change ([`Request::Batch`],
//! `ironlun batch FILE`), made in order, validated where they touched, applied and recorded
//! once: all or none. Building a large tree this way costs one journal record, not one per
//! object.

use super::{Control, Request, Response};
use crate::model::{Snapshot, Touched};
use crate::runtime::Runtime;
use crate::tree::{self, Op};

impl<R: Runtime> Control<R> {
    /// `batch`: every op made in order on the tree, then applied and recorded as one change.
    /// The first op refused puts back those before it; nothing changes.
    pub(super) async fn batch(&mut self, reqs: Vec<Request>) -> Response {
        let mut ops = Vec::with_capacity(reqs.len());
        for (i, r) in reqs.into_iter().enumerate() {
            ops.push(match r {
                Request::Create { path, args } => Op::Create { path, args },
                Request::Delete { path } => Op::Delete { path },
                Request::Link { src, dst } => Op::Link { src, dst },
                Request::Set { path, value } => match tree::resize_request(&self.cfg, &self.rt, &path, &value) {
                    Ok(None) => Op::Set { path, value },
                    Ok(Some(_)) => return Response::refused(format!("batch op {}: {path}: a capacity change is not batched; run it on its own; nothing changed", i + 1)),
                    Err(e) => return Response::refused(format!("batch op {}: {e}; nothing changed", i + 1)),
                },
                other => return Response::refused(format!("batch op {}: only set, create, delete and link are batched, not {}; nothing changed", i + 1, op_name(&other))),
            });
        }
        if ops.is_empty() {
            return Response::ok("batch: nothing to do");
        }
        // A sparse=0 file is made before its device opens it: not in a batch.
        if let Some(i) = ops.iter().position(|o| matches!(o, Op::Create { args, .. } if args.iter().any(|a| a.starts_with("sparse=")))) {
            return Response::refused(format!("batch op {}: sparse= preallocates a file; create it on its own; nothing changed", i + 1));
        }
        let whole = ops
            .iter()
            .any(|o| tree::scope::touched_by(&self.cfg, o).whole);
        let before = whole.then(|| Box::new(self.cfg.clone()));
        let mut touched = Touched::default();
        let mut snaps = Vec::with_capacity(ops.len());
        for (i, op) in ops.iter().enumerate() {
            match tree::mutate_in_place(&mut self.cfg, &self.rt, op) {
                Ok((_, t, snap)) => {
                    touched.merge(&t);
                    snaps.push(snap);
                }
                Err(e) => {
                    Snapshot::Many(snaps).restore(&mut self.cfg);
                    return Response::refused(format!("batch op {}: {e}; nothing changed", i + 1));
                }
            }
        }
        if let Err(e) = self.cfg.validate_touched(&touched, &self.rt) {
            Snapshot::Many(snaps).restore(&mut self.cfg);
            return Response::refused(format!("batch: {e}; nothing changed"));
        }
        let snap = match before {
            Some(old) => {
                touched = Touched::whole();
                Snapshot::Whole(old)
            }
            None => Snapshot::Many(snaps),
        };
        let n = ops.len();
        match self.commit_touched(&touched, snap).await {
            Ok(()) => {
                tracing::info!("batch of {n} change(s) applied");
                Response::ok(format!("{n} change(s) applied"))
            }
            Err(r) => r,
        }
    }
}

/// A request's `op` name, for messages.
fn op_name(r: &Request) -> String {
    serde_json::to_value(r)
        .ok()
        .and_then(|v| v.get("op").and_then(|o| o.as_str()).map(str::to_string))
        .unwrap_or_default()
}
