//! `ls` and `get`: reading the rendered tree ([`render`](mod@super::render)) at a path read with the one
//! grammar ([`ObjPath`]).

use super::path::{segments, ObjPath};
use super::render::{render_branch, Node};
use super::Inspect;
use crate::model::Config;
use ironlun_fabric::SECRET_MASK;

/// The rendered node at `path`. Each segment is read with the one grammar ([`ObjPath::child`])
/// and then looked up among the rendered children; a segment the grammar refuses names nothing
/// (every rendered path parses). Err: `<first missing prefix>: no such object`.
fn lookup<'a>(root: &'a Node, path: &str) -> Result<&'a Node, String> {
    let mut at = ObjPath::Root;
    let mut node = root;
    let mut walked = String::new();
    for seg in segments(path) {
        if !walked.is_empty() {
            walked.push('/');
        }
        walked.push_str(seg);
        let missing = || format!("{walked}: no such object");
        at = at.child(seg).map_err(|_| missing())?;
        node = node
            .children()
            .iter()
            .find(|c| c.name() == seg)
            .ok_or_else(missing)?;
    }
    Ok(node)
}

/// `ls PATH`: the subtree below PATH, two spaces per level, leaves as `name = value`,
/// links as `name -> target`; secrets shown as `********` (use `get` to read one).
pub fn ls(cfg: &Config, insp: &dyn Inspect, path: &str) -> Result<String, String> {
    let root = render_branch(cfg, insp, &segments(path));
    let node = lookup(&root, path)?;
    let mut out = String::new();
    match node {
        Node::Dir { name, children } if name.is_empty() => {
            for c in children {
                write_node(&mut out, c, 0);
            }
        }
        _ => write_node(&mut out, node, 0),
    }
    Ok(out)
}

fn write_node(out: &mut String, node: &Node, depth: usize) {
    let pad = "  ".repeat(depth);
    match node {
        Node::Dir { name, children } => {
            out.push_str(&format!("{pad}{name}/\n"));
            for c in children {
                write_node(out, c, depth + 1);
            }
        }
        Node::Leaf {
            name,
            value,
            secret,
        } => {
            let shown = if *secret && !value.is_empty() {
                SECRET_MASK
            } else {
                value.as_str()
            };
            // Multi-line values (pr/ registrations) continue indented under their name.
            let cont = format!("\n{pad}    ");
            out.push_str(&format!("{pad}{name} = {}\n", shown.replace('\n', &cont)));
        }
        Node::Link {
            name,
            target,
            children,
        } => {
            out.push_str(&format!("{pad}{name} -> {target}\n"));
            for c in children {
                write_node(out, c, depth + 1);
            }
        }
    }
}

/// `get PATH`: a leaf's value or a link's target.
pub fn get(cfg: &Config, insp: &dyn Inspect, path: &str) -> Result<String, String> {
    let root = render_branch(cfg, insp, &segments(path));
    match lookup(&root, path)? {
        Node::Leaf { value, .. } => Ok(value.clone()),
        Node::Link { target, .. } => Ok(target.clone()),
        Node::Dir { .. } => Err(format!(
            "{}: is a directory; use ls",
            path.trim_matches('/')
        )),
    }
}
