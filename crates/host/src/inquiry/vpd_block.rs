//! The block device VPD pages of SBC-3: Block limits (B0h, §6.6.4, Table 193), Block device
//! characteristics (B1h, §6.6.2, with SBC-4's WABEREQ/WACEREQ, ZONED, FUAB and VBULS) and
//! Logical block provisioning (B2h, §6.6.5, with its provisioning group descriptor). Fields
//! added by later revisions are decoded when the page is long enough to hold them (`None`
//! otherwise), as sg_vpd does; text in sg_vpd's words, JSON keys its snake_case names.

use serde::Serialize;

use super::page::{be, be16, be32, body, HEADER};
use super::vpd_ident::{decode_designation, render_designation, Designation};

/// Block limits (B0h).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BlockLimits {
    pub wsnz: bool,
    pub maximum_compare_and_write_length: u8,
    pub optimal_transfer_length_granularity: u16,
    pub maximum_transfer_length: u32,
    pub optimal_transfer_length: u32,
    pub maximum_prefetch_length: Option<u32>,
    pub maximum_unmap_lba_count: Option<u32>,
    pub maximum_unmap_block_descriptor_count: Option<u32>,
    pub optimal_unmap_granularity: Option<u32>,
    pub unmap_granularity_alignment_valid: Option<bool>,
    pub unmap_granularity_alignment: Option<u32>,
    pub maximum_write_same_length: Option<u64>,
    pub maximum_atomic_transfer_length: Option<u32>,
    pub atomic_alignment: Option<u32>,
    pub atomic_transfer_length_granularity: Option<u32>,
    pub maximum_atomic_transfer_length_with_atomic_boundary: Option<u32>,
    pub maximum_atomic_boundary_size: Option<u32>,
}

/// Page bytes through OPTIMAL TRANSFER LENGTH: the SBC-2 page, the least we decode.
const BLOCK_LIMITS_MIN: usize = 16;

/// The 4-byte field at page offset `off`, when the page reaches byte `upto` (fields a
/// revision added together appear together).
fn field32(p: &[u8], off: usize, upto: usize) -> Option<u32> {
    (p.len() >= upto).then(|| be32(p, off))
}

/// The page up to PAGE LENGTH, header included (offsets below are the standard's).
fn whole(page: &[u8], code: u8) -> Result<&[u8], String> {
    let b = body(page, code)?;
    Ok(&page[..HEADER + b.len()])
}

pub fn decode_block_limits(page: &[u8]) -> Result<BlockLimits, String> {
    let p = whole(page, 0xB0)?;
    if p.len() < BLOCK_LIMITS_MIN {
        return Err(format!(
            "PAGE LENGTH {} is short of byte {BLOCK_LIMITS_MIN} (OPTIMAL TRANSFER LENGTH ends \
             there)",
            p.len() - HEADER
        ));
    }
    // Added by SBC-3 r09 (prefetch), r18 (unmap counts), r19 (unmap granularity), r26
    // (write same) and SBC-4 r02 (atomic; the boundary fields end the 0x3C-byte page).
    let f = |off, upto| field32(p, off, upto);
    Ok(BlockLimits {
        wsnz: p[4] & 1 != 0,
        maximum_compare_and_write_length: p[5],
        optimal_transfer_length_granularity: be16(p, 6),
        maximum_transfer_length: be32(p, 8),
        optimal_transfer_length: be32(p, 12),
        maximum_prefetch_length: f(16, 20),
        maximum_unmap_lba_count: f(20, 28),
        maximum_unmap_block_descriptor_count: f(24, 28),
        optimal_unmap_granularity: f(28, 36),
        unmap_granularity_alignment_valid: f(32, 36).map(|v| v & 0x8000_0000 != 0),
        unmap_granularity_alignment: f(32, 36).map(|v| v & 0x7FFF_FFFF),
        maximum_write_same_length: (p.len() >= 44).then(|| be(p, 36, 8)),
        maximum_atomic_transfer_length: f(44, 56),
        atomic_alignment: f(48, 56),
        atomic_transfer_length_granularity: f(52, 56),
        maximum_atomic_transfer_length_with_atomic_boundary: f(56, 64),
        maximum_atomic_boundary_size: f(60, 64),
    })
}

/// `N blocks`, or sg_vpd's word for 0 (and for all ones where it has one).
fn blocks(v: u64, zero: &str) -> String {
    if v == 0 {
        format!("0 blocks [{zero}]")
    } else {
        format!("{v} blocks")
    }
}

pub fn render_block_limits(l: &BlockLimits, out: &mut String) {
    const NR: &str = "not reported";
    const CNI: &str = "command not implemented";
    let mut line = |name: &str, v: String| out.push_str(&format!("  {name}: {v}\n"));
    // Lengths in blocks, in page order: name, value (if the page holds it), the word for 0.
    let opt = |v: Option<u32>| v.map(u64::from);
    let lengths = |ls: &[(&str, Option<u64>, &str)], line: &mut dyn FnMut(&str, String)| {
        for (name, v, zero) in ls {
            if let Some(v) = v {
                line(name, blocks(*v, zero));
            }
        }
    };
    line("Write same non-zero (WSNZ)", u8::from(l.wsnz).to_string());
    lengths(
        &[
            (
                "Maximum compare and write length",
                Some(l.maximum_compare_and_write_length.into()),
                CNI,
            ),
            (
                "Optimal transfer length granularity",
                Some(l.optimal_transfer_length_granularity.into()),
                NR,
            ),
            (
                "Maximum transfer length",
                Some(l.maximum_transfer_length.into()),
                NR,
            ),
            (
                "Optimal transfer length",
                Some(l.optimal_transfer_length.into()),
                NR,
            ),
            (
                "Maximum prefetch length",
                opt(l.maximum_prefetch_length),
                NR,
            ),
        ],
        &mut line,
    );
    let unlimited = |v: u32, unit: &str| match v {
        0 => format!("0 {unit} [{CNI}]"),
        u32::MAX => "unlimited".to_string(),
        v => format!("{v} {unit}"),
    };
    if let Some(v) = l.maximum_unmap_lba_count {
        line("Maximum unmap LBA count", unlimited(v, "blocks"));
    }
    if let Some(v) = l.maximum_unmap_block_descriptor_count {
        line(
            "Maximum unmap block descriptor count",
            unlimited(v, "block descriptors"),
        );
    }
    if let Some(v) = l.optimal_unmap_granularity {
        line("Optimal unmap granularity", blocks(v.into(), NR));
    }
    if let (Some(valid), Some(a)) = (
        l.unmap_granularity_alignment_valid,
        l.unmap_granularity_alignment,
    ) {
        line("Unmap granularity alignment valid", valid.to_string());
        if valid {
            line("Unmap granularity alignment", format!("{a} blocks"));
        }
    }
    lengths(
        &[
            ("Maximum write same length", l.maximum_write_same_length, NR),
            (
                "Maximum atomic transfer length",
                opt(l.maximum_atomic_transfer_length),
                NR,
            ),
            (
                "Atomic alignment",
                opt(l.atomic_alignment),
                "unaligned atomic writes permitted",
            ),
            (
                "Atomic transfer length granularity",
                opt(l.atomic_transfer_length_granularity),
                "no granularity requirement",
            ),
            (
                "Maximum atomic transfer length with atomic boundary",
                opt(l.maximum_atomic_transfer_length_with_atomic_boundary),
                NR,
            ),
            (
                "Maximum atomic boundary size",
                opt(l.maximum_atomic_boundary_size),
                "can only write atomic 1 block",
            ),
        ],
        &mut line,
    );
}

/// Block device characteristics (B1h).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BlockCharacteristics {
    pub medium_rotation_rate: u16,
    pub medium_rotation_rate_meaning: String,
    pub non_rotating: bool,
    pub product_type: u8,
    pub product_type_name: String,
    pub wabereq: u8,
    pub wacereq: u8,
    pub nominal_form_factor: u8,
    pub nominal_form_factor_name: &'static str,
    pub zoned: u8,
    pub zoned_name: &'static str,
    pub fuab: bool,
    pub vbuls: bool,
}

/// Page bytes through byte 8 (ZONED, FUAB, VBULS).
const CHARACTERISTICS_MIN: usize = 9;

pub fn decode_block_characteristics(page: &[u8]) -> Result<BlockCharacteristics, String> {
    let p = whole(page, 0xB1)?;
    if p.len() < CHARACTERISTICS_MIN {
        return Err(format!(
            "PAGE LENGTH {} is short of byte {CHARACTERISTICS_MIN} (ZONED, FUAB and VBULS are \
             in byte 8)",
            p.len() - HEADER
        ));
    }
    let rate = be16(p, 4);
    let product = p[6];
    let form = p[7] & 0x0F;
    let zoned = (p[8] >> 4) & 3;
    Ok(BlockCharacteristics {
        medium_rotation_rate: rate,
        medium_rotation_rate_meaning: match rate {
            0 => "not reported".into(),
            1 => "Non-rotating medium (e.g. solid state)".into(),
            2..=0x400 | 0xFFFF => "reserved".into(),
            r => format!("{r} rpm"),
        },
        non_rotating: rate == 1,
        product_type: product,
        product_type_name: match product {
            0 => "Not specified".into(),
            1 => "CFast".into(),
            2 => "CompactFlash".into(),
            3 => "MemoryStick".into(),
            4 => "MultiMediaCard".into(),
            5 => "Secure Digital Card (SD)".into(),
            6 => "XQD".into(),
            7 => "Universal Flash Storage Card (UFS)".into(),
            0xF0..=0xFF => format!("Vendor specific [{product:#x}]"),
            _ => format!("Reserved [{product:#x}]"),
        },
        wabereq: p[7] >> 6,
        wacereq: (p[7] >> 4) & 3,
        nominal_form_factor: form,
        nominal_form_factor_name: match form {
            0 => "not reported",
            1 => "5.25 inch",
            2 => "3.5 inch",
            3 => "2.5 inch",
            4 => "1.8 inch",
            5 => "less then 1.8 inch",
            _ => "reserved",
        },
        zoned,
        zoned_name: match zoned {
            0 => "not reported",
            1 => "host-aware",
            2 => "host-managed",
            _ => "reserved",
        },
        fuab: p[8] & 0x02 != 0,
        vbuls: p[8] & 0x01 != 0,
    })
}

pub fn render_block_characteristics(c: &BlockCharacteristics, out: &mut String) {
    match c.medium_rotation_rate {
        0 => out.push_str("  Medium rotation rate is not reported\n"),
        1 => out.push_str("  Non-rotating medium (e.g. solid state)\n"),
        r if c.medium_rotation_rate_meaning == "reserved" => {
            out.push_str(&format!("  Medium rotation rate: reserved [{r:#x}]\n"))
        }
        r => out.push_str(&format!("  Nominal rotation rate: {r} rpm\n")),
    }
    out.push_str(&format!("  Product type: {}\n", c.product_type_name));
    out.push_str(&format!(
        "  WABEREQ={}\n  WACEREQ={}\n",
        c.wabereq, c.wacereq
    ));
    out.push_str(&format!(
        "  Nominal form factor: {}\n",
        c.nominal_form_factor_name
    ));
    out.push_str(&format!("  ZONED={} [{}]\n", c.zoned, c.zoned_name));
    out.push_str(&format!(
        "  FUAB={}\n  VBULS={}\n",
        u8::from(c.fuab),
        u8::from(c.vbuls)
    ));
}

/// Logical block provisioning (B2h).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Provisioning {
    pub threshold_exponent: u8,
    pub lbpu: bool,
    pub lbpws: bool,
    pub lbpws10: bool,
    /// Three bits in SBC-4 (one, bit 2, in SBC-3).
    pub lbprz: u8,
    pub anc_sup: bool,
    pub dp: bool,
    pub minimum_percentage: u8,
    pub provisioning_type: u8,
    pub provisioning_type_name: &'static str,
    pub threshold_percentage: u8,
    /// The designation descriptor after byte 8 when DP is set.
    pub provisioning_group_descriptor: Option<Designation>,
}

/// Page bytes through THRESHOLD PERCENTAGE.
const PROVISIONING_MIN: usize = 8;

pub fn decode_provisioning(page: &[u8]) -> Result<Provisioning, String> {
    let p = whole(page, 0xB2)?;
    if p.len() < PROVISIONING_MIN {
        return Err(format!(
            "PAGE LENGTH {} is short of byte {PROVISIONING_MIN} (THRESHOLD PERCENTAGE is \
             byte 7)",
            p.len() - HEADER
        ));
    }
    let dp = p[5] & 0x01 != 0;
    let provisioning_group_descriptor = if dp {
        if p.len() == PROVISIONING_MIN {
            return Err(
                "byte 5 has DP set but the page ends at byte 8, with no provisioning group \
                 descriptor"
                    .into(),
            );
        }
        Some(decode_designation(
            &p[PROVISIONING_MIN..],
            PROVISIONING_MIN,
        )?)
    } else {
        None
    };
    let pt = p[6] & 0x07;
    Ok(Provisioning {
        threshold_exponent: p[4],
        lbpu: p[5] & 0x80 != 0,
        lbpws: p[5] & 0x40 != 0,
        lbpws10: p[5] & 0x20 != 0,
        lbprz: (p[5] >> 2) & 0x07,
        anc_sup: p[5] & 0x02 != 0,
        dp,
        minimum_percentage: p[6] >> 3,
        provisioning_type: pt,
        provisioning_type_name: match pt {
            0 => "not known or fully provisioned",
            1 => "resource provisioned",
            2 => "thin provisioned",
            _ => "reserved",
        },
        threshold_percentage: p[7],
        provisioning_group_descriptor,
    })
}

pub fn render_provisioning(v: &Provisioning, out: &mut String) {
    let b = u8::from;
    out.push_str(&format!(
        "  Threshold exponent={}\n  LBPU={}\n  LBPWS={}\n  LBPWS10={}\n  LBPRZ={}\n  \
         ANC_SUP={}\n  DP={}\n",
        v.threshold_exponent,
        b(v.lbpu),
        b(v.lbpws),
        b(v.lbpws10),
        v.lbprz,
        b(v.anc_sup),
        b(v.dp)
    ));
    match v.minimum_percentage {
        0 => out.push_str("  Minimum percentage: 0 [not reported]\n"),
        m => out.push_str(&format!("  Minimum percentage: {m}\n")),
    }
    if v.provisioning_type <= 2 {
        out.push_str(&format!(
            "  Provisioning type: {}\n",
            v.provisioning_type_name
        ));
    } else {
        out.push_str(&format!(
            "  Provisioning type: reserved [{}]\n",
            v.provisioning_type
        ));
    }
    match v.threshold_percentage {
        0 => out.push_str("  Threshold percentage: 0 [percentages not supported]\n"),
        t => out.push_str(&format!("  Threshold percentage: {t}\n")),
    }
    if let Some(d) = &v.provisioning_group_descriptor {
        out.push_str("  Provisioning group descriptor:\n");
        render_designation(d, "    ", out);
    }
}
