//! The saved tree as `config.json` plus `config.journal`: each change is one record appended
//! to the journal and made durable (fdatasync) before it is answered, so a change costs the
//! same with ten objects or ten thousand; the journal is folded into `config.json` (written
//! whole, atomically: [`persist::save`]) when it has grown as large as the config, at start
//! and on `config save`.
//!
//! Journal file: a header record naming the `config.json` it follows (its length and
//! CRC32C), then one record per change. A record is `u32 length (LE) | u32 CRC32C (LE) of the
//! payload | payload`, the payload a JSON list of [`Entry`]: the new value of each object the
//! change touched (or its absence). Replaying a record sets those objects, so a record is
//! applied whole or not at all.
//!
//! Crash consistency (DESIGN.md "State and persistence"): a change is answered only after
//! its record is durable, so an acknowledged change survives kill -9. A torn record can only
//! be the last one (records are only appended) and fails its length or CRC check: it and
//! anything after it is ignored (its change was never answered). A journal whose header does
//! not match `config.json` is left over from before the last fold (the crash came between
//! writing `config.json` and the new journal): `config.json` already holds every change it
//! had, so it is ignored. The crash points (`failpoint`, tests only): `journal.half` (half a
//! record written), `journal.written` (written, not synced), `journal.synced` (durable, not
//! yet answered).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::failpoint;
use crate::model::touched::{set_tpg_settings, tpg_shell};
use crate::model::{Config, DevKey, Lun, NodeAcl, ParamSchema, StorageObject, Touched, Tpg};
use crate::persist;

/// Name of the journal inside the state directory.
pub const JOURNAL_FILE: &str = "config.journal";
/// Fold the journal into `config.json` once it is larger than this and than `config.json`.
const FOLD_MIN: u64 = 1 << 20;
/// Longest record accepted on replay (a batch of every object of a large tree).
const MAX_RECORD: u32 = 1 << 30;

/// The new value of one object a change touched; `None`: it no longer exists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Entry {
    Device {
        key: String,
        #[serde(default)]
        so: Option<StorageObject>,
    },
    /// A TPG's settings (its LUNs and ACLs are entries of their own).
    Tpg { target: String, tpg: Tpg },
    Lun {
        target: String,
        tag: u16,
        index: u64,
        #[serde(default)]
        lun: Option<Lun>,
    },
    Acl {
        target: String,
        tag: u16,
        name: String,
        #[serde(default)]
        acl: Option<NodeAcl>,
    },
}

/// The header: which `config.json` the records follow.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    base_len: u64,
    base_crc: u32,
}

/// The entries recording what `touched` names, as `cfg` now has them. `None` when the change
/// is `whole` (saved by a fold instead).
pub fn entries(cfg: &Config, touched: &Touched) -> Option<Vec<Entry>> {
    if touched.whole {
        return None;
    }
    let mut out = Vec::new();
    for key in &touched.devices {
        out.push(Entry::Device {
            key: key.to_string(),
            so: cfg.device(key).cloned(),
        });
    }
    for ((t, tag), what) in &touched.tpgs {
        let g = cfg.target(t).and_then(|x| x.tpg(*tag))?;
        if what.settings || what.all {
            out.push(Entry::Tpg {
                target: t.clone(),
                tpg: tpg_shell(g),
            });
        }
        let lun = |index: u64, lun: Option<&Lun>| Entry::Lun {
            target: t.clone(),
            tag: *tag,
            index,
            lun: lun.cloned(),
        };
        let acl = |name: &str, acl: Option<&NodeAcl>| Entry::Acl {
            target: t.clone(),
            tag: *tag,
            name: name.to_string(),
            acl: acl.cloned(),
        };
        if what.all {
            // Every LUN and ACL as they are, and the ones that went.
            out.extend(g.luns.iter().map(|l| lun(l.index, Some(l))));
            out.extend(g.node_acls.iter().map(|a| acl(&a.node_wwn, Some(a))));
        }
        for l in what
            .luns
            .iter()
            .filter(|l| !what.all || g.lun(**l).is_none())
        {
            out.push(lun(*l, g.lun(*l)));
        }
        for a in what.acls.iter().filter(|a| !what.all || g.acl(a).is_none()) {
            out.push(acl(a, g.acl(a)));
        }
    }
    Some(out)
}

/// Set in `v` the element `f` finds to `x` (replaced in place, added at the end) or remove it.
fn put<T>(v: &mut Vec<T>, x: Option<T>, f: impl Fn(&T) -> bool) {
    match (v.iter().position(f), x) {
        (Some(i), Some(x)) => v[i] = x,
        (Some(i), None) => {
            v.remove(i);
        }
        (None, Some(x)) => v.push(x),
        (None, None) => {}
    }
}

fn need<'c>(cfg: &'c mut Config, t: &str, tag: u16) -> Result<&'c mut Tpg, String> {
    cfg.tpg_mut(t, tag)
        .ok_or_else(|| format!("iscsi/{t}/tpgt_{tag} is not in the config"))
}

/// Apply one record's entries to `cfg`. Err: an entry names a TPG the tree does not have.
fn replay(cfg: &mut Config, entries: Vec<Entry>) -> Result<(), String> {
    for e in entries {
        match e {
            Entry::Device { key, so } => {
                let key = DevKey::parse(&key)?;
                put(&mut cfg.storage_objects, so, |s| s.is(&key));
            }
            Entry::Tpg { target, tpg } => set_tpg_settings(need(cfg, &target, tpg.tag)?, &tpg),
            Entry::Lun {
                target,
                tag,
                index,
                lun,
            } => put(&mut need(cfg, &target, tag)?.luns, lun, |l| {
                l.index == index
            }),
            Entry::Acl {
                target,
                tag,
                name,
                acl,
            } => put(&mut need(cfg, &target, tag)?.node_acls, acl, |a| {
                a.node_wwn == name
            }),
        }
    }
    Ok(())
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&ironlun_iscsi::digest::crc32c(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// The records of a journal's bytes: each whole one's payload, stopping at the first torn
/// or corrupt one. Returns them and how many bytes they cover.
fn records(data: &[u8]) -> (Vec<&[u8]>, usize) {
    let mut out = Vec::new();
    let mut at = 0;
    while data.len() - at >= 8 {
        let word = |o: usize| u32::from_le_bytes([data[o], data[o + 1], data[o + 2], data[o + 3]]);
        let (len, crc) = (word(at), word(at + 4));
        let end = at + 8 + len as usize;
        if len > MAX_RECORD
            || end > data.len()
            || ironlun_iscsi::digest::crc32c(&data[at + 8..end]) != crc
        {
            break;
        }
        out.push(&data[at + 8..end]);
        at = end;
    }
    (out, at)
}

/// `config.json` and its journal in one state directory.
pub struct Store {
    config: PathBuf,
    journal: PathBuf,
    /// The journal, open for appending; `None` until the first fold.
    file: Option<File>,
    /// Bytes of whole records in the journal (where the next one goes).
    len: u64,
    /// Bytes of `config.json` at the last fold.
    base_len: u64,
}

impl Store {
    pub fn new(state_dir: &Path) -> Store {
        Store {
            config: state_dir.join(persist::CONFIG_FILE),
            journal: state_dir.join(JOURNAL_FILE),
            file: None,
            len: 0,
            base_len: 0,
        }
    }

    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// Write `cfg` whole as `config.json`, then start an empty journal that follows it.
    pub fn fold(&mut self, cfg: &Config) -> Result<(), String> {
        let text = persist::to_json(cfg);
        persist::write_atomic(&self.config, text.as_bytes(), "config")
            .map_err(|e| format!("cannot save {}: {e}", self.config.display()))?;
        let header = Header {
            base_len: text.len() as u64,
            base_crc: ironlun_iscsi::digest::crc32c(text.as_bytes()),
        };
        let head = frame(&serde_json::to_vec(&header).unwrap_or_default());
        persist::write_atomic(&self.journal, &head, "journal-head")
            .map_err(|e| format!("cannot save {}: {e}", self.journal.display()))?;
        let file = OpenOptions::new()
            .write(true)
            .open(&self.journal)
            .map_err(|e| format!("cannot open {}: {e}", self.journal.display()))?;
        self.file = Some(file);
        self.len = head.len() as u64;
        self.base_len = text.len() as u64;
        Ok(())
    }

    /// Record one change durably: its entries appended and synced (or, for a `whole` change,
    /// the tree folded). On Err nothing of it is on disk. Folds when the journal has grown.
    pub fn record(&mut self, cfg: &Config, touched: &Touched) -> Result<(), String> {
        let Some(list) = entries(cfg, touched) else {
            return self.fold(cfg);
        };
        if list.is_empty() {
            return Ok(());
        }
        if self.file.is_none() {
            return self.fold(cfg);
        }
        let rec = frame(&serde_json::to_vec(&list).unwrap_or_default());
        self.append(&rec)
            .map_err(|e| format!("cannot save {}: {e}", self.journal.display()))?;
        if self.len > FOLD_MIN.max(self.base_len) {
            // The change is durable already: a failed fold only leaves the journal longer.
            if let Err(e) = self.fold(cfg) {
                tracing::error!("folding the journal into config.json: {e}");
            }
        }
        Ok(())
    }

    fn append(&mut self, rec: &[u8]) -> std::io::Result<()> {
        let file = self.file.as_ref().ok_or(std::io::ErrorKind::NotFound)?;
        let r = (|| {
            if failpoint::armed("journal", "half") {
                file.write_all_at(&rec[..rec.len() / 2], self.len)?;
                failpoint::hit("journal", "half");
            }
            file.write_all_at(rec, self.len)?;
            failpoint::hit("journal", "written");
            file.sync_data()?;
            failpoint::hit("journal", "synced");
            Ok(())
        })();
        match r {
            Ok(()) => self.len += rec.len() as u64,
            Err(_) => {
                // Cut the partial record off; if even that fails, the next change folds
                // (a fresh journal) instead of appending after it.
                if file
                    .set_len(self.len)
                    .and_then(|()| file.sync_data())
                    .is_err()
                {
                    self.file = None;
                }
            }
        }
        r
    }
}

/// Read `config.json` of `state_dir` and replay its journal onto it; then validate the whole.
/// Err: one line naming the file.
pub fn load(state_dir: &Path, params: &dyn ParamSchema) -> Result<Config, String> {
    let mut cfg = read(state_dir)?;
    let at = state_dir.join(persist::CONFIG_FILE);
    cfg.assign_missing_rtpis()?;
    cfg.validate(params)
        .map_err(|e| format!("{}: invalid config: {e}", at.display()))?;
    Ok(cfg)
}

/// The saved tree of `state_dir` as it stands: `config.json` with its journal replayed, not
/// validated ([`load`] validates).
pub fn read(state_dir: &Path) -> Result<Config, String> {
    let store = Store::new(state_dir);
    let text = std::fs::read_to_string(&store.config)
        .map_err(|e| format!("cannot read {}: {e}", store.config.display()))?;
    let mut cfg: Config = serde_json::from_str(&text)
        .map_err(|e| format!("{}: invalid config: {e}", store.config.display()))?;
    let at = store.journal.display();
    let data = match std::fs::read(&store.journal) {
        Ok(data) => data,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(cfg),
        Err(e) => return Err(format!("cannot read {at}: {e}")),
    };
    let (recs, whole) = records(&data);
    let header = recs
        .first()
        .and_then(|h| serde_json::from_slice::<Header>(h).ok());
    let base = Header {
        base_len: text.len() as u64,
        base_crc: ironlun_iscsi::digest::crc32c(text.as_bytes()),
    };
    if header.as_ref() != Some(&base) {
        if recs.len() > 1 {
            tracing::info!("{at}: already folded into config.json (ignored)");
        }
        return Ok(cfg);
    }
    if whole < data.len() {
        tracing::warn!(
            "{at}: {} byte(s) of a change that was never answered (cut short by a crash) ignored",
            data.len() - whole
        );
    }
    for (i, r) in recs.iter().enumerate().skip(1) {
        let list: Vec<Entry> =
            serde_json::from_slice(r).map_err(|e| format!("{at}: record {i}: {e}"))?;
        replay(&mut cfg, list).map_err(|e| format!("{at}: record {i}: {e}"))?;
    }
    if recs.len() > 1 {
        tracing::info!("{at}: replayed {} change(s)", recs.len() - 1);
    }
    Ok(cfg)
}

#[cfg(test)]
mod tests;
