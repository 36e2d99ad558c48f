//! The names INQUIRY's codes are printed with, in sg_inq's and sg_vpd's vocabulary: peripheral
//! qualifier and device type (SPC-4 §6.6.2, Table 140/142), the VERSION field (Table 143),
//! version descriptors (Table 144, by standard), VPD page names (§7.8.1, SBC-3 §6.6.1), the
//! designation descriptor's code set, association and designator type (§7.8.6.1, Tables
//! 590-593) and protocol identifiers (§7.6.1, Table 362).

/// PERIPHERAL QUALIFIER (Table 140).
pub fn peripheral_qualifier(pq: u8) -> &'static str {
    match pq {
        0 => "LU accessible",
        1 => "LU temporarily unavailable",
        3 => "LU not accessible via this port",
        _ => "value reserved by T10",
    }
}

/// PERIPHERAL DEVICE TYPE (Table 142), as sg3_utils names them.
pub fn device_type(pdt: u8) -> String {
    let s = match pdt {
        0x00 => "disk",
        0x01 => "tape",
        0x02 => "printer",
        0x03 => "processor",
        0x04 => "write once optical disk",
        0x05 => "cd/dvd",
        0x06 => "scanner",
        0x07 => "optical memory device",
        0x08 => "medium changer",
        0x09 => "communications",
        0x0A => "graphics [0xa]",
        0x0B => "graphics [0xb]",
        0x0C => "storage array controller",
        0x0D => "enclosure services device",
        0x0E => "simplified direct access device",
        0x0F => "optical card reader/writer device",
        0x10 => "bridge controller commands",
        0x11 => "object based storage",
        0x12 => "automation/driver interface",
        0x13 => "security manager device",
        0x14 => "host managed zoned block",
        0x1E => "well known logical unit",
        0x1F => "unknown or no device type",
        other => return format!("{other:#04x}"),
    };
    s.to_string()
}

/// Device types whose pages B0h..B2h are SBC's (block limits, block device characteristics,
/// logical block provisioning); other types give those codes other meanings.
pub fn is_block_device(pdt: u8) -> bool {
    matches!(pdt, 0x00 | 0x04 | 0x07 | 0x0E | 0x14)
}

/// The VERSION field (Table 143).
pub fn ansi_version(v: u8) -> &'static str {
    match v {
        0x00 => "no conformance claimed",
        0x01 => "SCSI-1",
        0x02 => "SCSI-2",
        0x03 => "SPC",
        0x04 => "SPC-2",
        0x05 => "SPC-3",
        0x06 => "SPC-4",
        0x07 => "SPC-5",
        0x08..=0x0C => "obsolete",
        0x0D => "SPC-6",
        0x0E => "SPC-7",
        0x0F => "reserved",
        _ => "old or reserved version code",
    }
}

/// The TPGS field (Table 146): which ways of changing ALUA states the LU supports.
pub fn tpgs(t: u8) -> &'static str {
    match t & 3 {
        1 => "only implicit asymmetric logical unit access",
        2 => "only explicit asymmetric logical unit access",
        3 => "both explicit and implicit asymmetric logical unit access",
        _ => "not supported",
    }
}

/// HOT PLUGGABLE (SPC-6).
pub fn hot_pluggable(h: u8) -> &'static str {
    match h {
        0 => "No information",
        1 => "target device designed to be removed from SCSI domain",
        2 => "target device not designed to be removed from SCSI domain",
        _ => "value reserved by T10",
    }
}

/// The standards whose version descriptors we name: the first code of each standard's block
/// (the code that claims no particular version).
const VERSION_FAMILIES: &[(u16, &str)] = &[
    (0x0020, "SAM"),
    (0x0040, "SAM-2"),
    (0x0060, "SAM-3"),
    (0x0080, "SAM-4"),
    (0x00A0, "SAM-5"),
    (0x00C0, "SAM-6"),
    (0x0120, "SPC"),
    (0x0140, "MMC"),
    (0x0160, "SCC"),
    (0x0180, "SBC"),
    (0x01A0, "SMC"),
    (0x01C0, "SES"),
    (0x01E0, "SCC-2"),
    (0x0200, "SSC"),
    (0x0220, "RBC"),
    (0x0240, "MMC-2"),
    (0x0260, "SPC-2"),
    (0x02A0, "MMC-3"),
    (0x02E0, "SMC-2"),
    (0x0300, "SPC-3"),
    (0x0320, "SBC-2"),
    (0x0340, "OSD"),
    (0x0360, "SSC-2"),
    (0x03A0, "MMC-4"),
    (0x03C0, "ADC"),
    (0x03E0, "SES-2"),
    (0x0400, "SSC-3"),
    (0x0420, "MMC-5"),
    (0x0440, "OSD-2"),
    (0x0460, "SPC-4"),
    (0x0480, "SMC-3"),
    (0x04A0, "ADC-2"),
    (0x04C0, "SBC-3"),
    (0x04E0, "MMC-6"),
    (0x0500, "ADC-3"),
    (0x0520, "SSC-4"),
    (0x0560, "OSD-3"),
    (0x0580, "SES-3"),
    (0x05A0, "SSC-5"),
    (0x05C0, "SPC-5"),
    (0x0600, "SBC-4"),
    (0x0620, "ZBC"),
    (0x0640, "ADC-4"),
    (0x0660, "ZBC-2"),
    (0x0680, "SES-4"),
    (0x06A0, "ZBC-3"),
    (0x06C0, "SBC-5"),
    (0x06E0, "SPC-6"),
    (0x0700, "SPC-7"),
    (0x0720, "SBC-6"),
    (0x08C0, "FCP"),
    (0x08E0, "SBP-2"),
    (0x0900, "FCP-2"),
    (0x0940, "SRP"),
    (0x0960, "iSCSI"),
    (0x0980, "SBP-3"),
    (0x09A0, "SRP-2"),
    (0x0A00, "FCP-3"),
    (0x0A40, "FCP-4"),
    (0x0A80, "FCP-5"),
    (0x0AA0, "SPI"),
    (0x0AE0, "SPI-2"),
    (0x0B00, "SPI-3"),
    (0x0B40, "SPI-4"),
    (0x0B60, "SPI-5"),
    (0x0BE0, "SAS"),
    (0x0C00, "SAS-1.1"),
    (0x0C20, "SAS-2"),
    (0x0C40, "SAS-2.1"),
    (0x0C60, "SAS-3"),
    (0x0C80, "SAS-4"),
    (0x0CA0, "SAS-4.1"),
    (0x0CC0, "SAS-5"),
    (0x1740, "UAS"),
    (0x1780, "UAS-2"),
    (0x17C0, "UAS-3"),
    (0x1EA0, "SAT"),
    (0x1EC0, "SAT-2"),
    (0x1EE0, "SAT-3"),
    (0x1F00, "SAT-4"),
    (0x1F20, "SAT-5"),
    (0x1F40, "SAT-6"),
];

/// A version descriptor: `SPC-4 (no version claimed)`, `SBC-3 (version code 0x04c5)`, or
/// `unrecognised version descriptor code 0x1234`.
pub fn version_descriptor(code: u16) -> String {
    let family = VERSION_FAMILIES
        .iter()
        .find(|(base, _)| code & !0x1F == *base);
    match family {
        Some((base, name)) if code == *base => format!("{name} (no version claimed)"),
        Some((_, name)) => format!("{name} (version code {code:#06x})"),
        None => format!("unrecognised version descriptor code {code:#06x}"),
    }
}

/// A VPD page's name (SPC-4 Table 589, SBC-3 Table 159), for device type `pdt` (B0h..B7h
/// are SBC's only for block devices).
pub fn vpd_page(code: u8, pdt: u8) -> Option<&'static str> {
    let n = match code {
        0x00 => "Supported VPD pages",
        0x80 => "Unit serial number",
        0x81 => "Implemented operating definition (obsolete)",
        0x82 => "ASCII implemented operating definition (obsolete)",
        0x83 => "Device identification",
        0x84 => "Software interface identification",
        0x85 => "Management network addresses",
        0x86 => "Extended INQUIRY data",
        0x87 => "Mode page policy",
        0x88 => "SCSI ports",
        0x89 => "ATA information",
        0x8A => "Power condition",
        0x8B => "Device constituents",
        0x8C => "CFA profile information",
        0x8D => "Power consumption",
        0x8F => "Third party copy",
        0x90 => "Protocol specific logical unit information",
        0x91 => "Protocol specific port information",
        0x92 => "SCSI feature sets",
        0xB0..=0xB9 if !is_block_device(pdt) => return None,
        0xB0 => "Block limits",
        0xB1 => "Block device characteristics",
        0xB2 => "Logical block provisioning",
        0xB3 => "Referrals",
        0xB4 => "Supported Block Lengths and Protection Types",
        0xB5 => "Block device characteristics extension",
        0xB6 => "Zoned block device characteristics",
        0xB7 => "Block limits extension",
        0xB8 => "Format presets",
        0xB9 => "Concurrent positioning ranges",
        _ => return None,
    };
    Some(n)
}

/// CODE SET (Table 590).
pub fn code_set(c: u8) -> String {
    match c {
        1 => "Binary".into(),
        2 => "ASCII".into(),
        3 => "UTF-8".into(),
        other => format!("Reserved [{other:#x}]"),
    }
}

/// ASSOCIATION (Table 592).
pub fn association(a: u8) -> &'static str {
    match a & 3 {
        0 => "Addressed logical unit",
        1 => "Target port",
        2 => "Target device that contains addressed lu",
        _ => "Reserved [0x3]",
    }
}

/// DESIGNATOR TYPE (Table 593).
pub fn designator_type(t: u8) -> String {
    let s = match t {
        0 => "Vendor specific [0x0]",
        1 => "T10 vendor identification",
        2 => "EUI-64 based",
        3 => "NAA",
        4 => "Relative target port",
        5 => "Target port group",
        6 => "Logical unit group",
        7 => "MD5 logical unit identifier",
        8 => "SCSI name string",
        9 => "Protocol specific port identifier",
        0xA => "UUID identifier",
        other => return format!("Reserved [{other:#x}]"),
    };
    s.to_string()
}

/// The NAA field of an NAA designator (§7.8.6.6, Table 604).
pub fn naa_type(naa: u8) -> &'static str {
    match naa {
        2 => "IEEE Extended",
        3 => "Locally Assigned",
        5 => "IEEE Registered",
        6 => "IEEE Registered Extended",
        _ => "reserved NAA",
    }
}

/// PROTOCOL IDENTIFIER (Table 362).
pub fn protocol(p: u8) -> &'static str {
    match p {
        0x0 => "Fibre Channel Protocol for SCSI (FCP-5)",
        0x1 => "SCSI Parallel Interface (SPI-5)",
        0x2 => "Serial Storage Architecture SCSI-3 Protocol (SSA-S3P)",
        0x3 => "Serial Bus Protocol for IEEE 1394 (SBP-3)",
        0x4 => "SCSI RDMA Protocol (SRP)",
        0x5 => "Internet SCSI (iSCSI)",
        0x6 => "Serial Attached SCSI Protocol (SPL-4)",
        0x7 => "Automation/Drive Interface Transport (ADT-2)",
        0x8 => "AT Attachment Interface (ACS-2)",
        0x9 => "USB Attached SCSI (UAS-2)",
        0xA => "SCSI over PCI Express (SOP)",
        0xB => "PCIe",
        0xF => "No specific protocol",
        _ => "reserved protocol identifier",
    }
}
