//! A live capacity change through a device's `control` leaf (LIO's `control` key list): its
//! parsing and checks, and the tree after the backstore was resized (SBC-3 §4.6: initiators
//! learn of it through CAPACITY DATA HAS CHANGED).

use super::path::ObjPath;
use super::Inspect;
use crate::model::{parse_bool, parse_size, Config, DevKey, Kind};

/// A live capacity change asked for with `set core/<kind>_<n>/<dev>/control size=…` or
/// `… rescan=1` (LIO's `control` is a comma separated `key=value` list; we accept the keys
/// `size`, `shrink`, `sparse` (`sparse=0`: preallocate what a growth adds) and `rescan`, plus the creation keys `path`, `write_back`, `readonly`
/// when they repeat the current value, so a full `control` line can be written back).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resize {
    pub key: DevKey,
    /// The new capacity in bytes; `None`: rescan the block device and take its capacity.
    pub size: Option<u64>,
    /// `sparse=0`: allocate the added range's space before growing (fileio on a file).
    pub thick: bool,
}

/// Parse and check a `control` write. `Ok(None)`: `path` is not a device's `control` leaf.
/// Err: one line naming the field; nothing is to change.
///
/// Rules: `size=` for rd_mcp and fileio (for a block device it must be what the device has
/// now, or for fileio a prefix of it: the backstore checks that); `rescan=1` for iblock and
/// fileio on a block device; the size is nonzero and a multiple of the LU block size; a size
/// below the current one discards data and needs `shrink=1`. A rescan follows the device
/// whatever its new size: the device is the authority on what it holds.
pub fn resize_request(
    cfg: &Config,
    insp: &dyn Inspect,
    path: &str,
    value: &str,
) -> Result<Option<Resize>, String> {
    let key = match ObjPath::parse(path)? {
        ObjPath::DeviceLeaf(key, leaf) if leaf == "control" => key,
        _ => return Ok(None),
    };
    let at = format!("{key}/control");
    let so = cfg
        .device(&key)
        .ok_or_else(|| format!("{key}: no such device"))?;
    let mut size = None;
    let mut shrink = false;
    let mut rescan = false;
    let mut thick = false;
    let mut seen = Vec::new();
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').ok_or_else(|| {
            format!("{at}: '{part}' is not key=value; expected size=<bytes|K|M|G|T>[,shrink=1] or rescan=1")
        })?;
        let (k, v) = (k.trim(), v.trim());
        if seen.contains(&k) {
            return Err(format!("{at}: {k} given twice"));
        }
        seen.push(k);
        match k {
            "size" => size = Some(parse_size(&format!("{at}: size"), v)?),
            "shrink" => shrink = parse_bool(&format!("{at}: shrink"), v)?,
            "sparse" => thick = !parse_bool(&format!("{at}: sparse"), v)?,
            "rescan" if v == "1" => rescan = true,
            "rescan" => {
                return Err(format!(
                    "{at}: rescan: '{v}' is not valid; only 1 (rescan now)"
                ))
            }
            "path" | "write_back" | "readonly" => {
                let current = so.control_text().split(',').find_map(|p| {
                    p.strip_prefix(k)
                        .and_then(|r| r.strip_prefix('='))
                        .map(str::to_string)
                });
                let same = match (current.as_deref(), k) {
                    (Some(c), "path") => c == v,
                    (Some(c), _) => parse_bool(&format!("{at}: {k}"), v)? == (c == "1"),
                    (None, _) => false,
                };
                if !same {
                    return Err(format!(
                        "{at}: {k} cannot be changed on a configured device (delete it and create it again)"
                    ));
                }
            }
            _ => {
                return Err(format!(
                    "{at}: unknown key '{k}'; valid: size, shrink, sparse, rescan"
                ))
            }
        }
    }
    let kind = key.kind.tree_name();
    match (size, rescan) {
        (None, false) => {
            return Err(format!(
                "{at}: expected size=<bytes|K|M|G|T>[,shrink=1] or rescan=1"
            ))
        }
        (Some(_), true) => {
            return Err(format!("{at}: give size= or rescan=1, not both"));
        }
        (None, true) if key.kind == Kind::RdMcp => {
            return Err(format!(
                "{at}: rescan=1 is for a block device (iblock, fileio on a block device); {kind} takes size="
            ));
        }
        (None, true) if shrink => {
            return Err(format!(
                "{at}: shrink=1 goes with size= (a rescan follows the device)"
            ));
        }
        (None, true) if thick => {
            return Err(format!(
                "{at}: sparse=0 goes with size= (a rescan follows the device)"
            ));
        }
        (None, true) => {
            return Ok(Some(Resize {
                key,
                size: None,
                thick,
            }))
        }
        (Some(_), false) if thick && key.kind != Kind::FileIo => {
            return Err(format!(
                "{at}: sparse=0 is for fileio (a file to preallocate); {kind} has nothing to allocate"
            ));
        }
        (Some(_), false) => {}
    }
    let size = size.unwrap_or_default();
    if size == 0 {
        return Err(format!("{at}: size must not be zero"));
    }
    let block_size = insp
        .device_attributes(&key)
        .into_iter()
        .find(|(n, _)| n == "block_size")
        .map(|(_, v)| v)
        .and_then(|v| v.parse::<u64>().ok())
        .or_else(|| so.attributes.get("block_size").map(|&b| u64::from(b)))
        .unwrap_or(512);
    if !size.is_multiple_of(block_size) {
        return Err(format!(
            "{at}: size {size} is not a multiple of the {block_size}-byte logical block size"
        ));
    }
    let current = insp.device_size(&key).or(so.size).ok_or_else(|| {
        format!("{at}: the device is not running, so its current size is unknown")
    })?;
    if size < current && !shrink {
        return Err(format!(
            "{at}: size {size} is smaller than the current {current} bytes; shrinking discards the data past the new end: add shrink=1 to do it"
        ));
    }
    Ok(Some(Resize {
        key,
        size: Some(size),
        thick,
    }))
}

/// The tree after a live resize of `key` from `old` to `new` bytes, and the reply line.
pub fn resized(
    cfg: &Config,
    insp: &dyn Inspect,
    key: &DevKey,
    old: u64,
    new: u64,
) -> Result<(Config, String), String> {
    let mut next = cfg.clone();
    next.device_mut(key)
        .ok_or_else(|| format!("{key}: no such device"))?
        .record_size(new);
    next.validate(insp)?;
    let msg = if old == new {
        format!("{key}/control: size unchanged ({new} bytes)")
    } else {
        format!(
            "{key}/control: size {old} -> {new} bytes; initiators get CAPACITY DATA HAS CHANGED"
        )
    };
    Ok((next, msg))
}
