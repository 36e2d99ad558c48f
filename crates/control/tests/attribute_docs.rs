//! docs/cli.md's table of TPG attributes is the one the declarations make
//! (crates/control/src/model/attrib.rs): a new or changed attribute shows up there, or this
//! test fails. `IRONLUN_UPDATE_DOCS=1` rewrites the table instead of comparing.

use ironlun_control::model::tpg_attribute_defs;
use ironlun_engine::attr::markdown_table;

const BEGIN: &str = "<!-- begin TPG attributes -->\n";
const END: &str = "<!-- end TPG attributes -->";

#[test]
fn docs_cli_lists_every_tpg_attribute_as_declared() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/cli.md");
    let doc = std::fs::read_to_string(&path).expect("docs/cli.md");
    let start = doc.find(BEGIN).expect("begin marker") + BEGIN.len();
    let end = doc.find(END).expect("end marker");
    let defs: Vec<_> = tpg_attribute_defs().copied().collect();
    let table = markdown_table(&defs);
    if std::env::var_os("IRONLUN_UPDATE_DOCS").is_some() {
        let new = format!("{}{}{}", &doc[..start], table, &doc[end..]);
        std::fs::write(&path, new).expect("write docs/cli.md");
        return;
    }
    assert_eq!(
        &doc[start..end],
        table,
        "docs/cli.md's TPG attribute table is stale: run IRONLUN_UPDATE_DOCS=1 cargo test -p ironlun-control --test attribute_docs"
    );
}
