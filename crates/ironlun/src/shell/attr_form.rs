//! The targetcli forms of `get` and `set` in the shell: `get PATH ATTR…` and
//! `set [PATH] ATTR=VALUE…` (targetcli-fb's `get [group] [param…]` and
//! `set [group] [param=value…]`; our groups are the `attrib/`, `param/` and `auth/` objects,
//! or any object with attributes). The CLI's own forms, `get PATH` and `set PATH VALUE`, stay
//! as they are: a line is read in the targetcli form only where that one fits.

use super::tree_path;

/// The forms, as `help` shows them.
pub(super) const USAGE: &str =
    "get PATH ATTR… and set [PATH] ATTR=VALUE…: attributes of the object at PATH (targetcli's forms)";

/// How a `get` or `set` line is read.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Form {
    /// The CLI's own form (its parser reads the line).
    Cli,
    /// `get PATH ATTR…`: the tree paths of the attributes, with their names as typed.
    Gets(Vec<(String, String)>),
    /// `set [PATH] ATTR=VALUE…`: tree paths of the attributes and their new values, in order.
    Sets(Vec<(String, String)>),
}

/// Reads the words `w` of a `get` or `set` line typed in `cwd`. `is_attr` says whether a tree
/// path names an attribute; it is asked only for `set PATH X=Y`, which is also the CLI's
/// `set PATH VALUE` with a value holding `=` when PATH is an attribute. Err: one line.
pub(super) fn form(
    cwd: &str,
    w: &[String],
    is_attr: impl Fn(&str) -> bool,
) -> Result<Form, String> {
    let (Some(verb), args) = (w.first(), w.get(1..).unwrap_or_default()) else {
        return Ok(Form::Cli);
    };
    if args.iter().any(|a| a.starts_with('-')) {
        return Ok(Form::Cli);
    }
    let pair = |a: &String| a.contains('=');
    match verb.as_str() {
        "get" if args.len() >= 2 => {
            let base = tree_path(cwd, &args[0]);
            Ok(Form::Gets(
                args[1..]
                    .iter()
                    .map(|a| (tree_path(&base, a), a.clone()))
                    .collect(),
            ))
        }
        "set" if args.first().is_some_and(pair) => sets(cwd, args),
        "set" if args.len() >= 2 && args[1..].iter().all(pair) => {
            let base = tree_path(cwd, &args[0]);
            if args.len() == 2 && is_attr(&base) {
                return Ok(Form::Cli);
            }
            sets(&base, &args[1..])
        }
        "set" if args.len() > 2 => Err(not_a_pair(
            args.iter()
                .skip(1)
                .find(|a| !pair(a))
                .map_or("", |a| a.as_str()),
        )),
        _ => Ok(Form::Cli),
    }
}

/// The error line for a word of `set` that is not `ATTR=VALUE`.
fn not_a_pair(word: &str) -> String {
    format!("set: {word:?} is not ATTR=VALUE; give `set [PATH] ATTR=VALUE…` or `set PATH VALUE`")
}

/// `ATTR=VALUE…` of the object at tree path `base`.
fn sets(base: &str, pairs: &[String]) -> Result<Form, String> {
    let mut out = Vec::with_capacity(pairs.len());
    for p in pairs {
        match p.split_once('=') {
            Some((name, value)) if !name.is_empty() => {
                out.push((tree_path(base, name), value.to_string()));
            }
            _ => return Err(not_a_pair(p)),
        }
    }
    Ok(Form::Sets(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_string).collect()
    }

    fn p(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    const TPG: &str = "iscsi/iqn.x:t/tpgt_1";

    #[test]
    fn the_cli_forms_stay() {
        let never = |_: &str| panic!("not asked");
        for line in [
            "get enable",
            "set enable 1",
            "set attrib/nopin_timeout 20",
            "set",
            "get",
        ] {
            assert_eq!(form(TPG, &w(line), never), Ok(Form::Cli), "{line}");
        }
        assert_eq!(form(TPG, &w("get attrib x --help"), never), Ok(Form::Cli));
        // A value holding `=` for an attribute: the CLI's `set PATH VALUE`.
        assert_eq!(
            form(TPG, &w("set auth/userid a=b"), |p| p.ends_with("/userid")),
            Ok(Form::Cli)
        );
    }

    #[test]
    fn targetcli_forms_name_attributes_of_an_object() {
        let no = |_: &str| false;
        assert_eq!(
            form(TPG, &w("get attrib nopin_timeout authentication"), no),
            Ok(Form::Gets(p(&[
                (&format!("{TPG}/attrib/nopin_timeout"), "nopin_timeout"),
                (&format!("{TPG}/attrib/authentication"), "authentication"),
            ])))
        );
        assert_eq!(
            form(TPG, &w("set attrib nopin_timeout=20 authentication=0"), no),
            Ok(Form::Sets(p(&[
                (&format!("{TPG}/attrib/nopin_timeout"), "20"),
                (&format!("{TPG}/attrib/authentication"), "0"),
            ])))
        );
        // No PATH: the current object; a value may hold `=`; a name may be a path.
        assert_eq!(
            form(TPG, &w("set enable=1 auth/userid=a=b"), no),
            Ok(Form::Sets(p(&[
                (&format!("{TPG}/enable"), "1"),
                (&format!("{TPG}/auth/userid"), "a=b"),
            ])))
        );
        assert_eq!(
            form(TPG, &w("set /core/rd_mcp_0/r0/attrib emulate_tpu=1"), no),
            Ok(Form::Sets(p(&[(
                "core/rd_mcp_0/r0/attrib/emulate_tpu",
                "1"
            )])))
        );
        assert_eq!(
            form(TPG, &w("get .. tpgt_1/enable"), no),
            Ok(Form::Gets(p(&[(
                &format!("{TPG}/enable"),
                "tpgt_1/enable"
            )])))
        );
    }

    #[test]
    fn a_word_that_is_not_a_pair_is_one_error_line() {
        let no = |_: &str| false;
        for line in ["set attrib a=1 b", "set a=1 b", "set =1"] {
            let e = form(TPG, &w(line), no).err().unwrap_or_default();
            assert!(e.starts_with("set: ") && !e.contains('\n'), "{line}: {e}");
        }
    }
}
