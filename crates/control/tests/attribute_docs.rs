//! docs/cli.md's table of TPG attributes is the one the declarations make
//! (crates/control/src/model/attrib.rs): a new or changed attribute shows up there, or this
//! test fails. `IRONLUN_UPDATE_DOCS=1` rewrites the table instead of comparing.

use ironlun_control::model::tpg_attribute_defs;
use ironlun_engine::attr::doc_table_in_step;

#[test]
fn docs_cli_lists_every_tpg_attribute_as_declared() {
    let doc = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/cli.md");
    let defs: Vec<_> = tpg_attribute_defs().copied().collect();
    let rewrite = std::env::var_os("IRONLUN_UPDATE_DOCS").is_some();
    if let Err(e) = doc_table_in_step(&doc, "TPG attributes", &defs, rewrite) {
        panic!("{e}");
    }
}
