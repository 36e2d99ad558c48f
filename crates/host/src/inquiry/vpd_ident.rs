//! The identifying VPD pages: Supported VPD pages (00h, SPC-4 §7.8.14), Unit serial number
//! (80h, §7.8.15) and Device identification (83h, §7.8.6) with every designation descriptor
//! (Table 590) and its designator decoded by type (§7.8.6.2-§7.8.6.11, SPC-5 UUID). Text
//! in sg_vpd's words; a descriptor that overruns the page, or whose designator has a length
//! its type does not allow, is malformed (an error naming the byte offset in the page).

use serde::Serialize;

use super::names;
use super::page::{be, be16, body, text, HEADER};

/// Supported VPD pages (00h).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SupportedPages {
    pub pages: Vec<PageEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PageEntry {
    pub code: u8,
    /// `None` for a code we have no name for.
    pub name: Option<&'static str>,
}

impl SupportedPages {
    pub fn lists(&self, code: u8) -> bool {
        self.pages.iter().any(|p| p.code == code)
    }
}

/// Decode VPD 00h; the page's device type (byte 0) picks the names of B0h..BFh.
pub fn decode_supported(page: &[u8]) -> Result<SupportedPages, String> {
    let b = body(page, 0x00)?;
    let pdt = page[0] & 0x1F;
    Ok(SupportedPages {
        pages: b
            .iter()
            .map(|&code| PageEntry {
                code,
                name: names::vpd_page(code, pdt),
            })
            .collect(),
    })
}

/// Unit serial number (80h).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UnitSerial {
    /// PRODUCT SERIAL NUMBER, leading and trailing spaces removed.
    pub product_serial_number: String,
}

pub fn decode_serial(page: &[u8]) -> Result<UnitSerial, String> {
    let b = body(page, 0x80)?;
    Ok(UnitSerial {
        product_serial_number: text(b).trim_start().to_string(),
    })
}

/// Device identification (83h): every designation descriptor, in page order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeviceIdentification {
    pub designators: Vec<Designation>,
}

/// One designation descriptor (Table 590).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Designation {
    /// Byte offset of the descriptor in its page.
    pub offset: usize,
    pub code_set: u8,
    pub code_set_name: String,
    /// PROTOCOL IDENTIFIER valid (with association target port or target device).
    pub piv: bool,
    pub association: u8,
    pub association_name: &'static str,
    pub designator_type: u8,
    pub designator_type_name: String,
    /// The PROTOCOL IDENTIFIER field as sent (meaningful only when `protocol` is set).
    pub protocol_identifier: u8,
    /// Its name when PIV is set and the association is target port or target device.
    pub protocol: Option<&'static str>,
    /// DESIGNATOR LENGTH.
    pub length: usize,
    /// The designator, decoded by type.
    pub designator: Designator,
    /// The designator in hex, whatever its type.
    pub hex: String,
    /// What sg_vpd would warn about (an unexpected code set or association), if anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A designator decoded by its type (Table 593).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Designator {
    /// Type 0: as text when it is printable ASCII / UTF-8.
    VendorSpecific { text: Option<String> },
    /// Type 1: T10 VENDOR IDENTIFICATION and the vendor specific rest (text for ASCII /
    /// UTF-8, hex otherwise).
    T10VendorId {
        vendor_id: String,
        vendor_specific: String,
    },
    /// Type 2: 8, 12 or 16 bytes.
    Eui64 {
        /// IDENTIFIER EXTENSION (16-byte form).
        identifier_extension: Option<String>,
        /// The EUI-64 (IEEE company id and vendor specific extension).
        ieee_identifier: String,
        /// DIRECTORY ID (12-byte form).
        directory_id: Option<String>,
    },
    /// Type 3.
    Naa {
        naa: u8,
        naa_type: &'static str,
        /// IEEE company id (NAA 5 and 6) or AOI (NAA 2), hex.
        company_id: Option<String>,
        /// The whole NAA designator, `0x…` as sg_vpd prints it.
        value: String,
    },
    /// Type 4.
    RelativeTargetPort { relative_target_port: u16 },
    /// Type 5.
    TargetPortGroup { target_port_group: u16 },
    /// Type 6.
    LogicalUnitGroup { logical_unit_group: u16 },
    /// Type 7.
    Md5LogicalUnitIdentifier { md5: String },
    /// Type 8: trailing NULs removed.
    ScsiNameString { name: String },
    /// Type 9.
    ProtocolSpecificPortIdentifier { hex: String },
    /// Type Ah (SPC-5): locally assigned UUID.
    Uuid { uuid: String },
    /// Reserved types.
    Reserved { hex: String },
}

impl DeviceIdentification {
    /// The designators with association `association` (0 logical unit, 1 target port, 2
    /// target device), in page order.
    pub fn with_association(&self, association: u8) -> impl Iterator<Item = &Designation> {
        self.designators
            .iter()
            .filter(move |d| d.association == association)
    }

    /// The relative target port the command came through (type 4, target port).
    pub fn relative_target_port(&self) -> Option<u16> {
        self.with_association(1).find_map(|d| match d.designator {
            Designator::RelativeTargetPort {
                relative_target_port,
            } => Some(relative_target_port),
            _ => None,
        })
    }

    /// The target port group of that port (type 5, target port).
    pub fn target_port_group(&self) -> Option<u16> {
        self.with_association(1).find_map(|d| match d.designator {
            Designator::TargetPortGroup { target_port_group } => Some(target_port_group),
            _ => None,
        })
    }
}

/// Decode VPD 83h.
pub fn decode_device_id(page: &[u8]) -> Result<DeviceIdentification, String> {
    let b = body(page, 0x83)?;
    let mut designators = Vec::new();
    let mut off = 0;
    while off < b.len() {
        let d = decode_designation(&b[off..], HEADER + off)?;
        off += 4 + d.length;
        designators.push(d);
    }
    Ok(DeviceIdentification { designators })
}

fn hexs(b: &[u8]) -> String {
    crate::output::hex(b)
}

/// Decode the designation descriptor at the start of `d`, which is at byte `at` of its page
/// (for messages). `d` may run past the descriptor; its DESIGNATOR LENGTH says where it ends.
pub fn decode_designation(d: &[u8], at: usize) -> Result<Designation, String> {
    if d.len() < 4 {
        return Err(format!(
            "designation descriptor at byte {at}: its 4-byte header overruns the page ({} \
             bytes left)",
            d.len()
        ));
    }
    let code_set = d[0] & 0x0F;
    let protocol_identifier = d[0] >> 4;
    let piv = d[1] & 0x80 != 0;
    let association = (d[1] >> 4) & 3;
    let kind = d[1] & 0x0F;
    let length = usize::from(d[3]);
    let id = d.get(4..4 + length).ok_or_else(|| {
        format!(
            "designation descriptor at byte {at}: DESIGNATOR LENGTH {length} overruns the page \
             ({} bytes left after the header)",
            d.len() - 4
        )
    })?;
    let wrong = |want: &str| {
        format!(
            "designation descriptor at byte {at}: {} designator of {length} bytes ({want})",
            names::designator_type(kind)
        )
    };
    let fixed = |n: usize| {
        if length == n {
            Ok(())
        } else {
            Err(wrong(&format!("must be {n}")))
        }
    };
    let textual = code_set == 2 || code_set == 3;
    let designator = match kind {
        0 => Designator::VendorSpecific {
            text: (textual && id.iter().all(|c| (0x20..0x7F).contains(c))).then(|| text(id)),
        },
        1 => {
            if length < 8 {
                return Err(wrong("at least the 8-byte T10 vendor id"));
            }
            Designator::T10VendorId {
                vendor_id: text(&id[..8]),
                vendor_specific: if textual {
                    text(&id[8..])
                } else {
                    hexs(&id[8..])
                },
            }
        }
        2 => {
            let (ext, eui, dir) = match length {
                8 => (None, &id[..8], None),
                12 => (None, &id[..8], Some(hexs(&id[8..12]))),
                16 => (Some(hexs(&id[..8])), &id[8..16], None),
                _ => return Err(wrong("must be 8, 12 or 16")),
            };
            Designator::Eui64 {
                identifier_extension: ext,
                ieee_identifier: hexs(eui),
                directory_id: dir,
            }
        }
        3 => {
            let naa = id
                .first()
                .map(|b| b >> 4)
                .ok_or_else(|| wrong("no NAA field"))?;
            let company_id = match naa {
                2 | 3 | 5 => {
                    fixed(8)?;
                    match naa {
                        2 => Some(format!("{:#08x}", be(id, 2, 3))),
                        5 => Some(format!("{:#08x}", (be(id, 0, 4) >> 4) & 0xFF_FFFF)),
                        _ => None,
                    }
                }
                6 => {
                    fixed(16)?;
                    Some(format!("{:#08x}", (be(id, 0, 4) >> 4) & 0xFF_FFFF))
                }
                _ => None,
            };
            Designator::Naa {
                naa,
                naa_type: names::naa_type(naa),
                company_id,
                value: format!("0x{}", hexs(id)),
            }
        }
        4 => {
            fixed(4)?;
            Designator::RelativeTargetPort {
                relative_target_port: be16(id, 2),
            }
        }
        5 => {
            fixed(4)?;
            Designator::TargetPortGroup {
                target_port_group: be16(id, 2),
            }
        }
        6 => {
            fixed(4)?;
            Designator::LogicalUnitGroup {
                logical_unit_group: be16(id, 2),
            }
        }
        7 => {
            fixed(16)?;
            Designator::Md5LogicalUnitIdentifier { md5: hexs(id) }
        }
        8 => Designator::ScsiNameString { name: text(id) },
        9 => Designator::ProtocolSpecificPortIdentifier { hex: hexs(id) },
        0xA => {
            fixed(18)?;
            let u = hexs(&id[2..18]);
            Designator::Uuid {
                uuid: format!(
                    "{}-{}-{}-{}-{}",
                    &u[..8],
                    &u[8..12],
                    &u[12..16],
                    &u[16..20],
                    &u[20..]
                ),
            }
        }
        _ => Designator::Reserved { hex: hexs(id) },
    };
    Ok(Designation {
        offset: at,
        code_set,
        code_set_name: names::code_set(code_set),
        piv,
        association,
        association_name: names::association(association),
        designator_type: kind,
        designator_type_name: names::designator_type(kind),
        protocol_identifier,
        protocol: (piv && (association == 1 || association == 2))
            .then(|| names::protocol(protocol_identifier)),
        length,
        designator,
        hex: hexs(id),
        note: note(kind, code_set, association, id),
    })
}

/// sg_vpd's warnings: the code set and association each type expects (§7.8.6).
fn note(kind: u8, code_set: u8, association: u8, id: &[u8]) -> Option<String> {
    let binary = matches!(kind, 2 | 3 | 4 | 5 | 6 | 7 | 0xA);
    if binary && code_set != 1 {
        return Some("expected the binary code set".into());
    }
    if kind == 8 && code_set != 3 && code_set != 2 {
        return Some("expected the UTF-8 code set".into());
    }
    if matches!(kind, 4 | 5) && association != 1 {
        return Some("expected target port association".into());
    }
    if matches!(kind, 6 | 7) && association != 0 {
        return Some("expected logical unit association".into());
    }
    if kind == 0xA && id.first().map(|b| b >> 4) != Some(1) {
        return Some("expected a locally assigned UUID (type 1)".into());
    }
    None
}

pub fn render_supported(p: &SupportedPages, out: &mut String) {
    if p.pages.is_empty() {
        out.push_str("  (none listed)\n");
    }
    for e in &p.pages {
        match e.name {
            Some(n) => out.push_str(&format!("  {:#04x}  {n}\n", e.code)),
            None => out.push_str(&format!("  {:#04x}\n", e.code)),
        }
    }
}

pub fn render_serial(s: &UnitSerial, out: &mut String) {
    out.push_str(&format!(
        "  Product serial number: {}\n",
        s.product_serial_number
    ));
}

pub fn render_device_id(d: &DeviceIdentification, out: &mut String) {
    if d.designators.is_empty() {
        out.push_str("  (no designation descriptors)\n");
    }
    for (i, dd) in d.designators.iter().enumerate() {
        out.push_str(&format!(
            "  Designation descriptor number {}, descriptor length: {}\n",
            i + 1,
            dd.length + 4
        ));
        render_designation(dd, "    ", out);
    }
}

/// A designation descriptor's lines, each after `lead`.
pub fn render_designation(dd: &Designation, lead: &str, out: &mut String) {
    let mut line = |s: String| {
        out.push_str(lead);
        out.push_str(&s);
        out.push('\n');
    };
    line(format!(
        "designator type: {},  code set: {}",
        dd.designator_type_name, dd.code_set_name
    ));
    line(format!("associated with the {}", dd.association_name));
    match (dd.piv, dd.protocol) {
        (true, Some(p)) => line(format!(
            "PIV=1  transport: {p} [protocol identifier {:#x}]",
            dd.protocol_identifier
        )),
        (true, None) => line(format!(
            "PIV=1  [protocol identifier {:#x} not valid with this association]",
            dd.protocol_identifier
        )),
        (false, _) => line("PIV=0".into()),
    }
    if let Some(n) = &dd.note {
        line(format!("  << {n} >>"));
    }
    match &dd.designator {
        Designator::VendorSpecific { text: Some(t) } => line(format!("  vendor specific: {t}")),
        Designator::VendorSpecific { text: None } => {
            line(format!("  vendor specific: 0x{}", dd.hex))
        }
        Designator::T10VendorId {
            vendor_id,
            vendor_specific,
        } => {
            line(format!("  vendor id: {vendor_id}"));
            if !vendor_specific.is_empty() {
                line(format!("  vendor specific: {vendor_specific}"));
            }
        }
        Designator::Eui64 {
            identifier_extension,
            ieee_identifier,
            directory_id,
        } => {
            line(format!("  EUI-64 based {} byte identifier", dd.length));
            if let Some(x) = identifier_extension {
                line(format!("  Identifier extension: 0x{x}"));
            }
            line(format!("  IEEE identifier: 0x{ieee_identifier}"));
            if let Some(x) = directory_id {
                line(format!("  Directory ID: 0x{x}"));
            }
        }
        Designator::Naa {
            naa,
            naa_type,
            company_id,
            value,
        } => {
            match company_id {
                Some(c) if *naa == 2 => line(format!("  NAA {naa} ({naa_type}), AOI: {c}")),
                Some(c) => line(format!("  NAA {naa} ({naa_type}), company id: {c}")),
                None => line(format!("  NAA {naa} ({naa_type})")),
            }
            line(format!("  {value}"));
        }
        Designator::RelativeTargetPort {
            relative_target_port,
        } => line(format!("  Relative target port: {relative_target_port:#x}")),
        Designator::TargetPortGroup { target_port_group } => {
            line(format!("  Target port group: {target_port_group:#x}"))
        }
        Designator::LogicalUnitGroup { logical_unit_group } => {
            line(format!("  Logical unit group: {logical_unit_group:#x}"))
        }
        Designator::Md5LogicalUnitIdentifier { md5 } => {
            line(format!("  MD5 logical unit identifier: {md5}"))
        }
        Designator::ScsiNameString { name } => {
            line("  SCSI name string:".into());
            line(format!("  {name}"));
        }
        Designator::ProtocolSpecificPortIdentifier { hex } => {
            line(format!("  Protocol specific port identifier: 0x{hex}"))
        }
        Designator::Uuid { uuid } => line(format!("  Locally assigned UUID: {uuid}")),
        Designator::Reserved { hex } => line(format!(
            "  reserved designator={:#x}: 0x{hex}",
            dd.designator_type
        )),
    }
}
