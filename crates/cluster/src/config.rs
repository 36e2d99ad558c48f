//! The cluster's configuration of clustered objects: each gateway's part (its clustered LUs,
//! their groups, the target ports that export them) is a `config.json` fragment under
//! `config/<node>` in etcd, written from any machine with `ironlun cluster config-set`. The
//! gateway applies it when it joins and whenever it changes: its running configuration with
//! the fragment's storage objects and TPGs put in place of those of the same name (the rest
//! untouched), made real by the control plane's `apply` (validated whole, fewest changes). What
//! became of it goes to `config-status/<node>`.

use std::sync::Arc;

use ironlun_control::model::Config;
use ironlun_control::runtime::EngineRuntime;
use ironlun_control::service::{Control, Request};

use crate::{keys, Inner};

/// The control plane this gateway applies its fragment through.
pub type ControlHandle = Arc<tokio::sync::Mutex<Control<EngineRuntime>>>;

/// `local` with the fragment's objects in place of those of the same name.
pub fn merge(local: &Config, frag: &Config) -> Config {
    let mut out = local.clone();
    for so in &frag.storage_objects {
        match out.storage_objects.iter_mut().find(|o| o.key() == so.key()) {
            Some(o) => *o = so.clone(),
            None => out.storage_objects.push(so.clone()),
        }
    }
    for t in &frag.targets {
        match out
            .targets
            .iter_mut()
            .find(|x| x.wwn.eq_ignore_ascii_case(&t.wwn))
        {
            Some(x) => {
                for g in &t.tpgs {
                    match x.tpgs.iter_mut().find(|y| y.tag == g.tag) {
                        Some(y) => *y = g.clone(),
                        None => x.tpgs.push(g.clone()),
                    }
                }
            }
            None => out.targets.push(t.clone()),
        }
    }
    for g in &frag.alua_lu_gps {
        if !out.alua_lu_gps.iter().any(|x| x.name == g.name) {
            out.alua_lu_gps.push(g.clone());
        }
    }
    out
}

impl Inner {
    /// Apply this gateway's fragment (revision `rev` of its key) and say how it went.
    pub(crate) async fn apply_fragment(&self, value: &[u8], rev: u64) {
        let Some(control) = self.control.lock().clone() else {
            return;
        };
        let outcome = match serde_json::from_slice::<Config>(value) {
            Err(e) => Err(format!("not a config.json fragment: {e}")),
            Ok(frag) => {
                let mut c = control.lock().await;
                let shown = c.handle(Request::ShowConfig).await;
                match serde_json::from_str::<Config>(&shown.output) {
                    Err(e) => Err(format!("the running configuration: {e}")),
                    Ok(local) => {
                        let merged = merge(&local, &frag);
                        let r = c
                            .handle(Request::ApplyConfig {
                                config: Box::new(merged),
                                aptpl: Vec::new(),
                                dry_run: false,
                            })
                            .await;
                        if r.ok {
                            Ok(r.output)
                        } else {
                            Err(r.error)
                        }
                    }
                }
            }
        };
        let status = match &outcome {
            Ok(plan) => {
                tracing::info!(
                    "cluster configuration revision {rev} applied: {}",
                    plan.trim()
                );
                format!("applied {rev}")
            }
            Err(e) => {
                tracing::warn!("cluster configuration revision {rev} refused: {e}");
                format!("refused {rev}: {e}")
            }
        };
        let mut c = self.conn.client();
        if let Err(e) = c
            .put(keys::config_status(&self.opts.node), status, None)
            .await
        {
            self.conn.failed(e);
        }
    }
}
