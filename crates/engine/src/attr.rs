//! Attribute schemas (LIO's configfs `attrib/` files): each attribute is declared once, with
//! its name, the values it takes, its default, whether it may change while its object is
//! exported and the unit attention a change raises. Text is parsed here, once, into the typed
//! value the engine keeps; error lines and the reference table of docs/cli.md come from the
//! same declaration.

use std::fmt::Write as _;

use ironlun_scsi::Asc;

/// The values an attribute takes (all are unsigned integers on the wire of the control
/// plane, as in LIO's configfs).
#[derive(Clone, Copy, Debug)]
pub enum Domain {
    /// 0 or 1.
    Flag,
    /// One of a short list.
    OneOf(&'static [u32]),
    /// Any integer in `min..=max`.
    Range(u32, u32),
    /// An integer whose bounds depend on the object (checked by its behaviour); the text says
    /// which, for error lines and the documentation.
    Bounded(&'static str),
    /// LIO has the attribute but ironlun has not the feature: only this value is accepted,
    /// and the text says why.
    Only(u32, &'static str),
    /// A value written as a number or a name, read by the function (None: not valid); the
    /// text lists what is valid.
    Parsed(fn(&str) -> Option<u32>, &'static str),
    /// Shown, never set.
    ReadOnly,
}

/// Whether a value may change while the object is exported (initiators read some of them once,
/// at discovery, or hold state that depends on them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WhileExported {
    Live,
    Frozen,
}

/// An attribute's default: a value, or a rule that depends on the object (its backstore, its
/// block size), described in words.
#[derive(Clone, Copy, Debug)]
pub enum Default {
    Value(u32),
    Derived(&'static str),
}

/// One attribute, declared once.
#[derive(Clone, Copy, Debug)]
pub struct AttrDef {
    pub name: &'static str,
    pub domain: Domain,
    pub default: Default,
    pub while_exported: WhileExported,
    /// The unit attention every I_T nexus of the object gets when the value changes.
    pub ua: Option<(Asc, &'static str)>,
    /// What it does, for the documentation.
    pub help: &'static str,
}

impl AttrDef {
    /// Parses a value written by an administrator. Err: one line naming the attribute and
    /// what is valid.
    pub fn parse(&self, text: &str) -> Result<u32, String> {
        let name = self.name;
        let t = text.trim();
        match self.domain {
            Domain::ReadOnly => Err(format!("{name}: read-only attribute")),
            Domain::Only(v, why) => match t.parse::<u32>() {
                Ok(n) if n == v => Ok(n),
                _ => Err(format!("{name}: only {v} is accepted ({why})")),
            },
            Domain::Flag => match t {
                "0" => Ok(0),
                "1" => Ok(1),
                _ => Err(format!(
                    "{name}: invalid value {text:?}; valid values: 0, 1"
                )),
            },
            Domain::OneOf(list) => {
                let n = t.parse::<u32>().map_err(|_| {
                    format!(
                        "{name}: invalid value {text:?}; valid values: {}",
                        join(list)
                    )
                })?;
                if list.contains(&n) {
                    Ok(n)
                } else {
                    Err(format!(
                        "{name}: invalid value {n}; valid values: {}",
                        join(list)
                    ))
                }
            }
            Domain::Range(lo, hi) => match t.parse::<u32>() {
                Ok(n) if (lo..=hi).contains(&n) => Ok(n),
                _ if (lo, hi) == (0, u32::MAX) => Err(format!(
                    "{name}: invalid value {text:?}; expected an integer 0..=4294967295"
                )),
                _ => Err(format!(
                    "{name}: invalid value {text:?}; valid values: {lo}-{hi}"
                )),
            },
            Domain::Parsed(read, valid) => read(t)
                .ok_or_else(|| format!("{name}: invalid value {text:?}; valid values: {valid}")),
            Domain::Bounded(_) => t.parse::<u32>().map_err(|_| {
                format!("{name}: invalid value {text:?}; expected an integer 0..=4294967295")
            }),
        }
    }

    /// What is valid, in words (the documentation's "valid" column).
    pub fn valid_text(&self) -> String {
        match self.domain {
            Domain::Flag => "0/1".to_string(),
            Domain::OneOf(list) => join(list),
            Domain::Range(0, u32::MAX) => "u32".to_string(),
            Domain::Range(lo, hi) => format!("{lo}-{hi}"),
            Domain::Bounded(b) | Domain::Parsed(_, b) => b.to_string(),
            Domain::Only(v, why) => format!("only {v} is accepted ({why})"),
            Domain::ReadOnly => "read-only".to_string(),
        }
    }

    fn default_text(&self) -> String {
        match self.default {
            Default::Value(v) => v.to_string(),
            Default::Derived(d) => d.to_string(),
        }
    }
}

fn join(list: &[u32]) -> String {
    list.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The reference table of a set of attributes, as docs/cli.md shows it.
pub fn markdown_table(defs: &[AttrDef]) -> String {
    let mut s = String::from("| attribute | default | valid / meaning |\n|---|---|---|\n");
    for d in defs {
        let mut meaning = d.valid_text();
        if !d.help.is_empty() {
            meaning.push_str(": ");
            meaning.push_str(d.help);
        }
        if let Some((_, ua)) = d.ua {
            let _ = write!(meaning, "; a change raises {ua}");
        }
        if d.while_exported == WhileExported::Frozen {
            meaning.push_str("; not while exported");
        }
        let _ = writeln!(s, "| {} | {} | {} |", d.name, d.default_text(), meaning);
    }
    s
}

/// Keeps a generated table of a Markdown document in step with its declarations: the text
/// between `<!-- begin {name} -->` and `<!-- end {name} -->` must be [`markdown_table`] of
/// `defs`. With `rewrite` the document is rewritten instead of compared. Err: one line saying
/// what is stale or missing and how to regenerate it.
pub fn doc_table_in_step(
    doc: &std::path::Path,
    name: &str,
    defs: &[AttrDef],
    rewrite: bool,
) -> Result<(), String> {
    let text = std::fs::read_to_string(doc).map_err(|e| format!("{}: {e}", doc.display()))?;
    let begin = format!("<!-- begin {name} -->\n");
    let end_marker = format!("<!-- end {name} -->");
    let (Some(b), Some(end)) = (text.find(&begin), text.find(&end_marker)) else {
        return Err(format!(
            "{}: no {begin:?} … {end_marker:?} markers",
            doc.display()
        ));
    };
    let start = b + begin.len();
    let table = markdown_table(defs);
    if rewrite {
        let new = format!("{}{}{}", &text[..start], table, &text[end..]);
        return std::fs::write(doc, new).map_err(|e| format!("{}: {e}", doc.display()));
    }
    if text.get(start..end) == Some(table.as_str()) {
        Ok(())
    } else {
        Err(format!(
            "{}: the {name} table is stale; rerun this test with IRONLUN_UPDATE_DOCS=1",
            doc.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn def(name: &'static str, domain: Domain) -> AttrDef {
        AttrDef {
            name,
            domain,
            default: Default::Value(0),
            while_exported: WhileExported::Live,
            ua: None,
            help: "",
        }
    }

    #[test]
    fn each_domain_parses_its_values_and_names_what_is_valid() {
        assert_eq!(def("f", Domain::Flag).parse(" 1 "), Ok(1));
        assert_eq!(
            def("f", Domain::Flag).parse("2"),
            Err("f: invalid value \"2\"; valid values: 0, 1".to_string())
        );
        let bs = def("block_size", Domain::OneOf(&[512, 4096]));
        assert_eq!(bs.parse("4096"), Ok(4096));
        assert_eq!(
            bs.parse("1000"),
            Err("block_size: invalid value 1000; valid values: 512, 4096".to_string())
        );
        let r = def("r", Domain::Range(1, 10));
        assert_eq!(r.parse("10"), Ok(10));
        assert!(r.parse("0").expect_err("below").contains("1-10"));
        assert!(def("u", Domain::Range(0, u32::MAX))
            .parse("-1")
            .expect_err("not a number")
            .contains("0..=4294967295"));
        assert_eq!(def("o", Domain::Only(0, "why")).parse("0"), Ok(0));
        assert_eq!(
            def("o", Domain::Only(0, "why")).parse("1"),
            Err("o: only 0 is accepted (why)".to_string())
        );
        assert_eq!(
            def("ro", Domain::ReadOnly).parse("1"),
            Err("ro: read-only attribute".to_string())
        );
    }

    #[test]
    fn the_table_has_one_row_per_attribute() {
        let t = markdown_table(&[def("a", Domain::Flag), def("b", Domain::ReadOnly)]);
        assert_eq!(t.lines().count(), 4);
        assert!(t.contains("| a | 0 | 0/1 |"));
    }
}
