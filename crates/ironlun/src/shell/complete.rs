//! Tab completion of the shell (rustyline's [`Completer`]): command names (the shell's and the
//! CLI's, from its clap definition), subcommands and `--flags`; object paths, their children
//! fetched from the daemon with an `ls` request as Tab is pressed; attribute names (the
//! leaves of the object, also after `get PATH` and as `ATTR=` after `set PATH`); and the
//! values an attribute takes where they are known: the path read with the tree's own grammar
//! ([`ObjPath`]), then the attribute schemas the daemon checks values with, linked into this
//! same binary (the engine's [`device_attribute_defs`] and
//! [`alua_group_attribute_defs`], the control plane's [`tpg_attribute_defs`], the fabric's
//! [`param_words`]: flags 0/1, lists, Yes/No, digests), ALUA states by name (ao/ano/s/u/o/t,
//! SPC-4 §6.37 table of asymmetric access states) and, for other leaves, 0/1 or Yes/No when
//! the current value is one of them. File names for `apply` and `config save|restore`.

use std::cell::RefCell;
use std::rc::Rc;

use clap::CommandFactory;
use ironlun_control::model::attrib::tpg_attribute_defs;
use ironlun_control::tree::ObjPath;
use ironlun_engine::attr::{AttrDef, Domain};
use ironlun_engine::{alua_group_attribute_defs, device_attribute_defs, settable_alua_states};
use ironlun_fabric::param_words;
use rustyline::completion::{Completer, FilenameCompleter, Pair};
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::{Context, Helper};

use super::{command_names, tree_path, Conn, Kind};
use crate::Cli;

/// The short names of the ALUA access states a group may be put in (`alua set-state`,
/// `set …/alua_access_state`): ao ano s u o t.
fn alua_states() -> Vec<String> {
    settable_alua_states()
        .map(|s| s.short_name().to_string())
        .collect()
}

/// What the word under the cursor is.
#[derive(Debug, PartialEq, Eq)]
enum Want {
    Command,
    /// A subcommand of this command (pr, alua, config).
    Sub(String),
    /// An object path; `leaves`: attributes too, not only objects.
    Path {
        leaves: bool,
    },
    /// A value of the attribute at `path` (as typed), starting `skip` bytes into the word
    /// (after `ATTR=`).
    Value {
        path: String,
        skip: usize,
    },
    /// After `set PATH`: a value if PATH is an attribute, else `ATTR=` of that object.
    SetAfter(String),
    /// Attribute names of the object at this path (as typed; empty: the current one),
    /// followed by `=` (`set`) or a blank (`get`).
    Attrs {
        at: String,
        eq: bool,
    },
    /// ALUA group names of the device at this path (as typed).
    Group(String),
    Words(&'static [&'static str]),
    /// ALUA access states.
    States,
    /// `--flags` of this command (and subcommand).
    Flags(Vec<String>),
    File,
    Nothing,
}

/// What to complete, from the words before the cursor (`done`) with `cur` being typed.
fn want(done: &[&str], cur: &str) -> Want {
    let Some((cmd, rest)) = done.split_first() else {
        return Want::Command;
    };
    // Positional words only: flags do not count.
    let pos: Vec<&str> = rest
        .iter()
        .copied()
        .filter(|w| !w.starts_with('-'))
        .collect();
    if cur.starts_with('-') {
        let mut names = vec![cmd.to_string()];
        names.extend(pos.first().map(|s| s.to_string()));
        return Want::Flags(names);
    }
    match (*cmd, pos.as_slice()) {
        ("help", []) => Want::Command,
        ("cd", []) => Want::Path { leaves: false },
        ("ls" | "create" | "delete", []) | ("link", [] | [_]) => Want::Path { leaves: false },
        ("get", []) => Want::Path { leaves: true },
        ("get", [p, ..]) => Want::Attrs {
            at: p.to_string(),
            eq: false,
        },
        ("set", pos) => set_want(pos, cur),
        ("pr" | "alua" | "config", []) => Want::Sub(cmd.to_string()),
        ("pr", [_]) | ("alua", [_]) => Want::Path { leaves: false },
        ("alua", ["set-state" | "set-pref", dev]) => Want::Group(dev.to_string()),
        ("alua", ["set-state", _, _]) => Want::States,
        ("alua", ["set-pref", _, _]) => Want::Words(&["on", "off"]),
        ("apply", []) | ("config", [_]) => Want::File,
        _ => Want::Nothing,
    }
}

/// What follows `set` and the words after it (`pos`), `cur` being typed: the CLI's
/// `set PATH VALUE` or the targetcli form `set [PATH] ATTR=VALUE…` (shell `attr_form`).
fn set_want(pos: &[&str], cur: &str) -> Want {
    let base = match pos.first() {
        Some(p) if !p.contains('=') => *p,
        _ => "",
    };
    if let Some((name, _)) = cur.split_once('=') {
        let path = if base.is_empty() {
            name.to_string()
        } else {
            format!("{}/{name}", base.trim_end_matches('/'))
        };
        return Want::Value {
            path,
            skip: name.len() + 1,
        };
    }
    match pos {
        [] => Want::Path { leaves: true },
        [p] if !p.contains('=') => Want::SetAfter(p.to_string()),
        _ => Want::Attrs {
            at: base.to_string(),
            eq: true,
        },
    }
}

/// The values of the attribute at tree path `path` from its schema, if the schema lists
/// them.
fn schema_values(path: &str) -> Option<Vec<String>> {
    let named = |n: &str, d: &&AttrDef| d.name == n;
    // What the path names, read with the tree's own grammar.
    let def: AttrDef = match ObjPath::parse(path).ok()? {
        ObjPath::AluaGroupAttr(_, _, n) if n == "alua_access_state" => {
            return Some(alua_states());
        }
        ObjPath::AluaGroupAttr(_, _, n) => *alua_group_attribute_defs().find(|d| named(&n, d))?,
        ObjPath::DeviceAttr(_, n) => *device_attribute_defs().find(|d| named(&n, d))?,
        ObjPath::TpgAttrib(_, n) => *tpg_attribute_defs().find(|d| named(&n, d))?,
        ObjPath::TpgParam(_, n) => {
            return param_words(&n).map(|w| w.iter().map(|s| s.to_string()).collect());
        }
        _ => return None,
    };
    let list = match def.domain {
        Domain::Flag => vec!["0".to_string(), "1".into()],
        Domain::OneOf(l) => l.iter().map(u32::to_string).collect(),
        Domain::Only(v, _) => vec![v.to_string()],
        // "0 (None), 1 (Implicit), …": the leading numbers.
        Domain::Parsed(_, text) => text
            .split(';')
            .next()
            .unwrap_or_default()
            .split(',')
            .filter_map(|p| p.split_whitespace().next())
            .filter(|n| n.parse::<u32>().is_ok())
            .map(str::to_string)
            .collect(),
        Domain::Range(..) | Domain::Bounded(_) | Domain::ReadOnly => return None,
    };
    Some(list)
}

/// Candidates from a fixed list.
fn pairs<'a>(list: impl IntoIterator<Item = &'a str>, prefix: &str, tail: &str) -> Vec<Pair> {
    list.into_iter()
        .filter(|w| w.starts_with(prefix))
        .map(|w| Pair {
            display: w.to_string(),
            replacement: format!("{w}{tail}"),
        })
        .collect()
}

/// The shell's rustyline helper: completion only.
pub(crate) struct ShellHelper {
    conn: Rc<Conn>,
    cwd: Rc<RefCell<String>>,
    files: FilenameCompleter,
}

impl ShellHelper {
    pub(crate) fn new(conn: Rc<Conn>, cwd: Rc<RefCell<String>>) -> ShellHelper {
        ShellHelper {
            conn,
            cwd,
            files: FilenameCompleter::new(),
        }
    }

    /// Candidates for `cur`, an object path being typed: the children of its directory part
    /// whose names start with the rest. Objects end in `/`; attributes only with `leaves`.
    fn paths(&self, cur: &str, leaves: bool) -> (usize, Vec<Pair>) {
        let (dir, prefix) = match cur.rfind('/') {
            Some(i) => (&cur[..=i], &cur[i + 1..]),
            None => ("", cur),
        };
        let base = tree_path(&self.cwd.borrow(), dir);
        let mut out: Vec<Pair> = self
            .conn
            .children(&base)
            .into_iter()
            .filter(|e| e.name.starts_with(prefix) && (leaves || e.kind != Kind::Leaf))
            .map(|e| Pair {
                replacement: match e.kind {
                    Kind::Dir | Kind::Link => format!("{}/", e.name),
                    Kind::Leaf => format!("{} ", e.name),
                },
                display: match e.kind {
                    Kind::Dir => format!("{}/", e.name),
                    Kind::Link => format!("{} -> {}", e.name, e.value),
                    Kind::Leaf => e.name,
                },
            })
            .collect();
        if prefix.starts_with('.') && "..".starts_with(prefix) {
            out.push(Pair {
                display: "..".into(),
                replacement: "../".into(),
            });
        }
        (cur.len() - prefix.len(), out)
    }

    /// Candidates for the attribute names of the object at `typed` (a path as typed).
    fn attrs(&self, typed: &str, cur: &str, eq: bool) -> Vec<Pair> {
        let names: Vec<String> = self
            .conn
            .children(&tree_path(&self.cwd.borrow(), typed))
            .into_iter()
            .filter(|e| e.kind == Kind::Leaf)
            .map(|e| e.name)
            .collect();
        pairs(
            names.iter().map(String::as_str),
            cur,
            if eq { "=" } else { " " },
        )
    }

    /// The values of the attribute at `typed` (a path as typed); in a comma list (AuthMethod,
    /// the digests) the word after the last comma. The offset of the word in `cur` with them.
    fn values(&self, typed: &str, cur: &str) -> (usize, Vec<Pair>) {
        let at = cur.rfind(',').map_or(0, |i| i + 1);
        (at, self.values_of(typed, &cur[at..]))
    }

    fn values_of(&self, typed: &str, cur: &str) -> Vec<Pair> {
        let path = tree_path(&self.cwd.borrow(), typed);
        let (parent, name) = path.rsplit_once('/').unwrap_or(("", path.as_str()));
        let list = schema_values(&path).unwrap_or_else(|| {
            let now = self
                .conn
                .children(parent)
                .into_iter()
                .find(|e| e.name == name && e.kind == Kind::Leaf)
                .map(|e| e.value)
                .unwrap_or_default();
            match now.as_str() {
                "0" | "1" => vec!["0".into(), "1".into()],
                "Yes" | "No" => vec!["Yes".into(), "No".into()],
                _ => Vec::new(),
            }
        });
        pairs(list.iter().map(String::as_str), cur, "")
    }

    fn candidates(&self, line: &str, pos: usize) -> (usize, Vec<Pair>) {
        let before = &line[..pos];
        let start = before.rfind(char::is_whitespace).map_or(0, |i| {
            i + before[i..].chars().next().map_or(1, char::len_utf8)
        });
        let cur = &before[start..];
        let done: Vec<&str> = before[..start].split_whitespace().collect();
        let (at, list) = match want(&done, cur) {
            Want::Command => (
                0,
                pairs(command_names().iter().map(String::as_str), cur, " "),
            ),
            Want::Sub(cmd) => {
                let cli = Cli::command();
                let subs: Vec<String> = cli
                    .find_subcommand(&cmd)
                    .map(|c| {
                        c.get_subcommands()
                            .map(|s| s.get_name().to_string())
                            .collect()
                    })
                    .unwrap_or_default();
                (0, pairs(subs.iter().map(String::as_str), cur, " "))
            }
            Want::Path { leaves } => self.paths(cur, leaves),
            Want::Value { path, skip } => {
                let (at, list) = self.values(&path, cur.get(skip..).unwrap_or_default());
                (skip + at, list)
            }
            Want::SetAfter(p) => {
                let path = tree_path(&self.cwd.borrow(), &p);
                if super::kind_at(&self.conn, &path, true) == Ok(Kind::Leaf) {
                    self.values(&p, cur)
                } else {
                    (0, self.attrs(&p, cur, true))
                }
            }
            Want::Attrs { at, eq } => (0, self.attrs(&at, cur, eq)),
            Want::Group(dev) => {
                let alua = tree_path(&self.cwd.borrow(), &format!("{dev}/alua"));
                let groups: Vec<String> = self
                    .conn
                    .children(&alua)
                    .into_iter()
                    .filter(|e| e.kind == Kind::Dir)
                    .map(|e| e.name)
                    .collect();
                (0, pairs(groups.iter().map(String::as_str), cur, " "))
            }
            Want::Words(w) => (0, pairs(w.iter().copied(), cur, " ")),
            Want::States => (0, pairs(alua_states().iter().map(String::as_str), cur, " ")),
            Want::Flags(names) => {
                let cli = Cli::command();
                let mut at = cli.find_subcommand(&names[0]);
                if let (Some(c), Some(sub)) = (at, names.get(1)) {
                    at = c.find_subcommand(sub).or(Some(c));
                }
                let flags: Vec<String> = at
                    .map(|c| {
                        c.get_arguments()
                            .filter_map(|a| a.get_long())
                            .filter(|l| !["state-dir", "socket"].contains(l))
                            .map(|l| format!("--{l}"))
                            .collect()
                    })
                    .unwrap_or_default();
                (0, pairs(flags.iter().map(String::as_str), cur, " "))
            }
            Want::File => match self.files.complete_path(cur, cur.len()) {
                Ok((at, list)) => (at, list),
                Err(_) => (0, Vec::new()),
            },
            Want::Nothing => (0, Vec::new()),
        };
        (start + at, list)
    }
}

impl Completer for ShellHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        Ok(self.candidates(line, pos))
    }
}

impl Hinter for ShellHelper {
    type Hint = String;
}
impl Highlighter for ShellHelper {}
impl Validator for ShellHelper {}
impl Helper for ShellHelper {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_word_under_the_cursor_is_known() {
        assert_eq!(want(&[], "l"), Want::Command);
        assert_eq!(want(&["cd"], "is"), Want::Path { leaves: false });
        assert_eq!(want(&["get"], ""), Want::Path { leaves: true });
        assert_eq!(want(&["set"], "attrib/au"), Want::Path { leaves: true });
        assert_eq!(
            want(&["set", "enable"], ""),
            Want::SetAfter("enable".into())
        );
        assert_eq!(
            want(&["set", "attrib"], "nopin_timeout=2"),
            Want::Value {
                path: "attrib/nopin_timeout".into(),
                skip: 14
            }
        );
        assert_eq!(
            want(&["set"], "enable="),
            Want::Value {
                path: "enable".into(),
                skip: 7
            }
        );
        assert_eq!(
            want(&["set", "attrib", "a=1"], "no"),
            Want::Attrs {
                at: "attrib".into(),
                eq: true
            }
        );
        assert_eq!(
            want(&["set", "a=1"], ""),
            Want::Attrs {
                at: "".into(),
                eq: true
            }
        );
        assert_eq!(
            want(&["get", "attrib"], "nop"),
            Want::Attrs {
                at: "attrib".into(),
                eq: false
            }
        );
        assert_eq!(want(&["alua"], "se"), Want::Sub("alua".into()));
        assert_eq!(
            want(&["alua", "set-state", "d"], ""),
            Want::Group("d".into())
        );
        assert_eq!(want(&["alua", "set-state", "d", "g"], ""), Want::States);
        assert_eq!(
            want(&["pr", "clear", "--force"], "c"),
            Want::Path { leaves: false }
        );
        assert_eq!(want(&["config", "save"], "/tm"), Want::File);
        assert_eq!(want(&["pwd"], ""), Want::Nothing);
        assert_eq!(
            want(&["sessions"], "--d"),
            Want::Flags(vec!["sessions".into()])
        );
    }

    #[test]
    fn schemas_give_values() {
        let dev = "core/rd_mcp_0/r0";
        assert_eq!(
            schema_values(&format!("{dev}/attrib/emulate_tpu")),
            Some(vec!["0".to_string(), "1".into()])
        );
        assert_eq!(
            schema_values(&format!("{dev}/attrib/block_size")),
            Some(vec![
                "512".to_string(),
                "1024".into(),
                "2048".into(),
                "4096".into()
            ])
        );
        assert_eq!(
            schema_values(&format!("{dev}/alua/g/alua_access_type")),
            Some(vec!["0".to_string(), "1".into(), "2".into(), "3".into()])
        );
        let states = schema_values(&format!("{dev}/alua/default_tg_pt_gp/alua_access_state"));
        assert_eq!(
            states.map(|s| s.join(" ")).as_deref(),
            Some("ao ano s u o t")
        );
        assert_eq!(schema_values(&format!("{dev}/attrib/queue_depth")), None);
        assert_eq!(schema_values("iscsi/t/tpgt_1/enable"), None);
        let tpg = "iscsi/iqn.2026-11.org.ironlun:t/tpgt_1";
        assert_eq!(
            schema_values(&format!("{tpg}/attrib/authentication")),
            Some(vec!["0".to_string(), "1".into()])
        );
        assert_eq!(schema_values(&format!("{tpg}/attrib/nopin_timeout")), None);
        assert_eq!(
            schema_values(&format!("{tpg}/param/HeaderDigest")),
            Some(vec!["CRC32C".to_string(), "None".into()])
        );
        assert_eq!(
            schema_values(&format!("{tpg}/param/ImmediateData")),
            Some(vec!["Yes".to_string(), "No".into()])
        );
        assert_eq!(schema_values(&format!("{tpg}/param/MaxBurstLength")), None);
    }
}
