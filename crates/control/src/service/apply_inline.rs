//! [`super::Request::ApplyConfig`]: `ironlun apply` for a config sent inline (`config import-lio`),
//! with the persistent reservation (SPC-4 §5.13.5 APTPL) states of the devices it creates.

use super::{Control, Response};
use crate::model::Config;
use crate::pr;
use crate::runtime::Runtime;

impl<R: Runtime> Control<R> {
    /// [`super::Request::ApplyConfig`]: validate, plan, write the imported APTPL files of devices the
    /// apply creates, apply. A failed apply removes the files it wrote.
    pub(super) async fn apply_config(
        &mut self,
        mut new: Config,
        aptpl: &[crate::lio::aptpl::AptplImport],
        dry_run: bool,
    ) -> Response {
        if let Err(e) = new
            .assign_missing_rtpis()
            .and_then(|()| new.validate(&self.rt))
        {
            return Response::refused(format!("invalid config: {e}; nothing changed"));
        }
        let mut notes = Vec::new();
        let mut files = Vec::new();
        for a in aptpl {
            let Some(so) = new.storage_objects.iter().find(|s| s.wwn == a.serial) else {
                return Response::refused(format!(
                    "APTPL state for unit serial '{}': no device of the config has it; nothing changed",
                    a.serial
                ));
            };
            if self.cfg.storage_objects.iter().any(|s| s.wwn == a.serial) {
                notes.push(format!(
                    "{}: already running with unit serial {}; its live reservations are kept, the imported APTPL state is not written",
                    so.key(),
                    a.serial
                ));
                continue;
            }
            let file = pr::AptplFile::new(&self.state_dir.join(pr::PR_DIR), &a.serial);
            notes.push(format!(
                "{}: APTPL state ({} registrations{}) {} {}",
                so.key(),
                a.state.registrations.len(),
                if a.state.reservation.is_some() {
                    ", a reservation"
                } else {
                    ""
                },
                if dry_run {
                    "would be written to"
                } else {
                    "written to"
                },
                file.path().display()
            ));
            files.push((file, &a.state));
        }
        crate::plan::adopt_engine_owned(&self.cfg, &mut new);
        let changes = crate::plan::plan(&self.cfg, &new);
        let plan = crate::plan::render(&changes);
        let with_notes = |head: String| {
            notes.iter().fold(head, |mut s, n| {
                s.push('\n');
                s.push_str(n);
                s
            })
        };
        if dry_run {
            return Response::ok(with_notes(if changes.is_empty() {
                plan
            } else {
                format!("{plan} (dry run: nothing changed)")
            }));
        }
        if changes.is_empty() {
            // Nothing to create, so no APTPL file to write either.
            return Response::ok(with_notes(plan));
        }
        let mut written: Vec<&pr::AptplFile> = Vec::new();
        for (file, state) in &files {
            if let Err(e) = ironlun_engine::AptplStore::save(file, state) {
                remove_all(&written);
                return Response::failed(format!(
                    "cannot write {}: {e}; nothing changed",
                    file.path().display()
                ));
            }
            written.push(file);
        }
        match self.commit_showing_progress(new).await {
            Ok(()) => Response::ok(with_notes(format!("{plan} applied"))),
            Err(r) => {
                remove_all(&written);
                r
            }
        }
    }
}

/// Undo APTPL files written for an apply that did not happen (best effort: a leftover file
/// only matters to a device with that serial, which the next import rewrites).
fn remove_all(files: &[&pr::AptplFile]) {
    for f in files {
        if let Err(e) = ironlun_engine::AptplStore::clear(*f) {
            tracing::warn!("cannot remove {}: {e}", f.path().display());
        }
    }
}
