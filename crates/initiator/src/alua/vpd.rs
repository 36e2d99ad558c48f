//! What INQUIRY tells about ALUA: the TPGS field of standard INQUIRY data (SPC-4 §6.6.2,
//! Table 141) and the Device Identification VPD page (§7.8.6: NAA, T10 vendor ID, relative
//! target port, target port group, logical unit group and SCSI name string designators),
//! parsed strictly.

use ironlun_scsi::alua::access_type;

use crate::{Error, Result};

/// The TPGS field of standard INQUIRY data (byte 5 bits 5..4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tpgs {
    pub implicit: bool,
    pub explicit: bool,
}

impl Tpgs {
    pub fn from_inquiry(d: &[u8]) -> Result<Tpgs> {
        let b = d
            .get(5)
            .ok_or_else(|| Error::Protocol(format!("INQUIRY data of {} bytes", d.len())))?;
        let tpgs = (b >> 4) & 0x03;
        Ok(Tpgs {
            implicit: tpgs & access_type::IMPLICIT != 0,
            explicit: tpgs & access_type::EXPLICIT != 0,
        })
    }
}

/// ASSOCIATION of a designation descriptor (Table 592).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Association {
    LogicalUnit,
    TargetPort,
    TargetDevice,
    Reserved,
}

impl Association {
    fn from_bits(b: u8) -> Association {
        match b & 0x03 {
            0 => Association::LogicalUnit,
            1 => Association::TargetPort,
            2 => Association::TargetDevice,
            _ => Association::Reserved,
        }
    }
}

/// A designator (Table 593), decoded where this crate knows the type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Designator {
    /// Type 1: T10 VENDOR IDENTIFICATION (8 bytes) and the vendor specific rest.
    T10VendorId { vendor: String, specific: Vec<u8> },
    /// Type 2.
    Eui64(Vec<u8>),
    /// Type 3: NAA field (high nibble of the first byte) and the whole designator.
    Naa { naa: u8, bytes: Vec<u8> },
    /// Type 4: RELATIVE TARGET PORT IDENTIFIER.
    RelativeTargetPort(u16),
    /// Type 5: TARGET PORT GROUP.
    TargetPortGroup(u16),
    /// Type 6: LOGICAL UNIT GROUP.
    LuGroup(u16),
    /// Type 8: SCSI name string, trailing NULs removed.
    ScsiName(String),
    /// Any other type, raw.
    Other { kind: u8, bytes: Vec<u8> },
}

/// One designation descriptor (§7.8.6.1, Table 590).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Designation {
    pub protocol_id: u8,
    pub code_set: u8,
    pub piv: bool,
    pub association: Association,
    pub designator_type: u8,
    pub designator: Designator,
}

/// Parsed Device Identification VPD page (0x83).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceIdentification {
    pub designations: Vec<Designation>,
}

impl DeviceIdentification {
    pub fn parse(d: &[u8]) -> Result<DeviceIdentification> {
        if d.len() < 4 {
            return Err(Error::Protocol(format!("VPD 0x83 of {} bytes", d.len())));
        }
        if d[1] != 0x83 {
            return Err(Error::Protocol(format!(
                "VPD page code {:#04x}, not 0x83",
                d[1]
            )));
        }
        let end = 4 + usize::from(u16::from_be_bytes([d[2], d[3]]));
        if end > d.len() {
            return Err(Error::Protocol(format!(
                "VPD 0x83 PAGE LENGTH {} beyond the {} bytes returned",
                end - 4,
                d.len()
            )));
        }
        let mut designations = Vec::new();
        let mut off = 4;
        while off < end {
            if off + 4 > end {
                return Err(Error::Protocol(format!(
                    "designation descriptor header at {off} overruns the page"
                )));
            }
            let h = &d[off..off + 4];
            let len = usize::from(h[3]);
            let dend = off + 4 + len;
            if dend > end {
                return Err(Error::Protocol(format!(
                    "designation descriptor at {off} ({len} B) overruns the page"
                )));
            }
            let body = &d[off + 4..dend];
            let kind = h[1] & 0x0f;
            let designator = decode_designator(kind, body).map_err(|why| {
                Error::Protocol(format!("designator type {kind} at {off}: {why}"))
            })?;
            designations.push(Designation {
                protocol_id: h[0] >> 4,
                code_set: h[0] & 0x0f,
                piv: h[1] & 0x80 != 0,
                association: Association::from_bits(h[1] >> 4),
                designator_type: kind,
                designator,
            });
            off = dend;
        }
        Ok(DeviceIdentification { designations })
    }

    fn find<T>(&self, f: impl Fn(&Designation) -> Option<T>) -> Option<T> {
        self.designations.iter().find_map(f)
    }

    /// The relative target port the command came through.
    pub fn relative_target_port(&self) -> Option<u16> {
        self.find(|d| match d.designator {
            Designator::RelativeTargetPort(r) if d.association == Association::TargetPort => {
                Some(r)
            }
            _ => None,
        })
    }

    /// The target port group of that port.
    pub fn target_port_group(&self) -> Option<u16> {
        self.find(|d| match d.designator {
            Designator::TargetPortGroup(g) if d.association == Association::TargetPort => Some(g),
            _ => None,
        })
    }

    /// The logical unit group of the LU.
    pub fn lu_group(&self) -> Option<u16> {
        self.find(|d| match d.designator {
            Designator::LuGroup(g) if d.association == Association::LogicalUnit => Some(g),
            _ => None,
        })
    }

    /// The LU's NAA designator bytes (the usual multipath WWID).
    pub fn naa(&self) -> Option<Vec<u8>> {
        self.find(|d| match &d.designator {
            Designator::Naa { bytes, .. } if d.association == Association::LogicalUnit => {
                Some(bytes.clone())
            }
            _ => None,
        })
    }

    /// The SCSI name string with association `a` (target port: `<iqn>,t,0x<tpgt>`; target
    /// device: `<iqn>`).
    pub fn scsi_name(&self, a: Association) -> Option<String> {
        self.find(|d| match &d.designator {
            Designator::ScsiName(s) if d.association == a => Some(s.clone()),
            _ => None,
        })
    }
}

fn decode_designator(kind: u8, b: &[u8]) -> std::result::Result<Designator, String> {
    let u16_at_2 = |what: &str| -> std::result::Result<u16, String> {
        if b.len() != 4 {
            return Err(format!("{what} designator of {} bytes, not 4", b.len()));
        }
        Ok(u16::from_be_bytes([b[2], b[3]]))
    };
    Ok(match kind {
        1 => {
            let v = b
                .get(0..8)
                .ok_or_else(|| format!("T10 vendor ID of {} bytes", b.len()))?;
            Designator::T10VendorId {
                vendor: String::from_utf8_lossy(v).into_owned(),
                specific: b[8..].to_vec(),
            }
        }
        2 => Designator::Eui64(b.to_vec()),
        3 => {
            let first = b.first().ok_or("empty NAA designator")?;
            let naa = first >> 4;
            let want = match naa {
                2 | 3 | 5 => 8,
                6 => 16,
                _ => return Err(format!("NAA {naa} is reserved")),
            };
            if b.len() != want {
                return Err(format!("NAA {naa} designator of {} bytes", b.len()));
            }
            Designator::Naa {
                naa,
                bytes: b.to_vec(),
            }
        }
        4 => Designator::RelativeTargetPort(u16_at_2("relative target port")?),
        5 => Designator::TargetPortGroup(u16_at_2("target port group")?),
        6 => Designator::LuGroup(u16_at_2("logical unit group")?),
        8 => {
            // §7.8.6.11: null-terminated, null-padded to a multiple of 4 bytes.
            if !b.len().is_multiple_of(4) {
                return Err(format!("SCSI name string of {} bytes", b.len()));
            }
            let text = b.split(|&c| c == 0).next().unwrap_or(&[]);
            if text.len() == b.len() {
                return Err("SCSI name string without a terminating NUL".into());
            }
            Designator::ScsiName(
                std::str::from_utf8(text)
                    .map_err(|_| "SCSI name string is not UTF-8".to_string())?
                    .to_string(),
            )
        }
        k => Designator::Other {
            kind: k,
            bytes: b.to_vec(),
        },
    })
}
