//! Standard INQUIRY data (SPC-4 §6.6.2, Table 139), decoded with sg_inq's field names: the
//! JSON keys are those of `sg_inq --json` (`peripheral_qualifier`, `normaca`, `3pc`, …),
//! the text is sg_inq's lines without the obsolete SPI fields.

use serde::Serialize;

use super::names;
use super::page::{be16, text};

/// Bytes of standard INQUIRY data every target must return (through PRODUCT REVISION LEVEL).
pub const MIN_LEN: usize = 36;

/// Where the version descriptors are (bytes 58..74, eight of two bytes).
const VERSION_DESCRIPTORS: std::ops::Range<usize> = 58..74;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VersionDescriptor {
    pub code: u16,
    pub name: String,
}

/// Decoded standard INQUIRY data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Standard {
    pub peripheral_qualifier: u8,
    pub peripheral_qualifier_meaning: &'static str,
    pub peripheral_device_type: u8,
    pub peripheral_device_type_name: String,
    pub rmb: bool,
    pub lu_cong: bool,
    pub hot_pluggable: u8,
    pub version: u8,
    pub version_name: &'static str,
    pub normaca: bool,
    pub hisup: bool,
    pub response_data_format: u8,
    /// ADDITIONAL LENGTH + 5: the length the target says its data has.
    pub length: usize,
    /// Bytes decoded: the returned data up to `length`.
    pub decoded_length: usize,
    pub sccs: bool,
    pub acc: bool,
    pub tpgs: u8,
    pub tpgs_meaning: &'static str,
    /// TPGS bit 0: the target changes ALUA states by itself.
    pub implicit_alua: bool,
    /// TPGS bit 1: SET TARGET PORT GROUPS is supported.
    pub explicit_alua: bool,
    #[serde(rename = "3pc")]
    pub third_party_copy: bool,
    pub protect: bool,
    pub encserv: bool,
    pub multip: bool,
    pub cmdque: bool,
    pub t10_vendor_identification: String,
    pub product_identification: String,
    pub product_revision_level: String,
    /// The non-zero version descriptors, in order.
    pub version_descriptors: Vec<VersionDescriptor>,
}

fn bit(b: u8, n: u8) -> bool {
    b & (1 << n) != 0
}

/// Decode standard INQUIRY data `d` as returned (at least 36 bytes).
pub fn decode_standard(d: &[u8]) -> Result<Standard, String> {
    if d.len() < MIN_LEN {
        return Err(format!(
            "standard INQUIRY data of {} bytes (at least {MIN_LEN} required)",
            d.len()
        ));
    }
    let length = usize::from(d[4]) + 5;
    // A target may return less than it has (allocation length) or pad past it.
    let decoded_length = length.min(d.len()).max(MIN_LEN);
    let valid = &d[..decoded_length];
    let pq = d[0] >> 5;
    let pdt = d[0] & 0x1F;
    let tpgs = (d[5] >> 4) & 3;
    let mut version_descriptors = Vec::new();
    let mut off = VERSION_DESCRIPTORS.start;
    while off + 2 <= valid.len().min(VERSION_DESCRIPTORS.end) {
        let code = be16(valid, off);
        if code != 0 {
            version_descriptors.push(VersionDescriptor {
                code,
                name: names::version_descriptor(code),
            });
        }
        off += 2;
    }
    Ok(Standard {
        peripheral_qualifier: pq,
        peripheral_qualifier_meaning: names::peripheral_qualifier(pq),
        peripheral_device_type: pdt,
        peripheral_device_type_name: names::device_type(pdt),
        rmb: bit(d[1], 7),
        lu_cong: bit(d[1], 6),
        hot_pluggable: (d[1] >> 4) & 3,
        version: d[2],
        version_name: names::ansi_version(d[2]),
        normaca: bit(d[3], 5),
        hisup: bit(d[3], 4),
        response_data_format: d[3] & 0x0F,
        length,
        decoded_length,
        sccs: bit(d[5], 7),
        acc: bit(d[5], 6),
        tpgs,
        tpgs_meaning: names::tpgs(tpgs),
        implicit_alua: bit(tpgs, 0),
        explicit_alua: bit(tpgs, 1),
        third_party_copy: bit(d[5], 3),
        protect: bit(d[5], 0),
        encserv: bit(d[6], 6),
        multip: bit(d[6], 4),
        cmdque: bit(d[7], 1),
        t10_vendor_identification: text(&d[8..16]),
        product_identification: text(&d[16..32]),
        product_revision_level: text(&d[32..36]),
        version_descriptors,
    })
}

/// sg_inq's lines for the standard data.
pub fn render_standard(s: &Standard, out: &mut String) {
    let b = u8::from;
    out.push_str("standard INQUIRY:");
    match s.peripheral_qualifier {
        0 => {}
        1 => out.push_str(" [PQ indicates LU temporarily unavailable]"),
        3 => out.push_str(" [PQ indicates LU not accessible via this port]"),
        q => out.push_str(&format!(" [reserved or vendor specific qualifier [{q}]]")),
    }
    out.push('\n');
    out.push_str(&format!(
        "  PQual={}  PDT={}  RMB={}  LU_CONG={}  hot_pluggable={}  version={:#04x}  [{}]\n",
        s.peripheral_qualifier,
        s.peripheral_device_type,
        b(s.rmb),
        b(s.lu_cong),
        s.hot_pluggable,
        s.version,
        s.version_name
    ));
    out.push_str(&format!(
        "  NormACA={}  HiSUP={}  Resp_data_format={}\n",
        b(s.normaca),
        b(s.hisup),
        s.response_data_format
    ));
    out.push_str(&format!(
        "  SCCS={}  ACC={}  TPGS={}  3PC={}  Protect={}\n",
        b(s.sccs),
        b(s.acc),
        s.tpgs,
        b(s.third_party_copy),
        b(s.protect)
    ));
    out.push_str(&format!(
        "  EncServ={}  MultiP={}  CmdQue={}\n",
        b(s.encserv),
        b(s.multip),
        b(s.cmdque)
    ));
    out.push_str(&format!("    length={} ({:#x})", s.length, s.length));
    if s.decoded_length < s.length {
        out.push_str(&format!(", but only fetched {} bytes", s.decoded_length));
    }
    out.push_str(&format!(
        "   Peripheral device type: {}\n",
        s.peripheral_device_type_name
    ));
    out.push_str(&format!(
        "  TPGS={}: {} (implicit: {}, explicit: {})\n",
        s.tpgs,
        s.tpgs_meaning,
        yes_no(s.implicit_alua),
        yes_no(s.explicit_alua)
    ));
    out.push_str(&format!(
        "  Vendor identification: {}\n",
        s.t10_vendor_identification
    ));
    out.push_str(&format!(
        "  Product identification: {}\n",
        s.product_identification
    ));
    out.push_str(&format!(
        "  Product revision level: {}\n",
        s.product_revision_level
    ));
    if s.version_descriptors.is_empty() {
        out.push_str("  No version descriptors available\n");
    } else {
        out.push_str("  Version descriptors:\n");
        for v in &s.version_descriptors {
            out.push_str(&format!("    {}\n", v.name));
        }
    }
}

fn yes_no(v: bool) -> &'static str {
    if v {
        "yes"
    } else {
        "no"
    }
}
