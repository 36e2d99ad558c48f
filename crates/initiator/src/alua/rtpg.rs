//! REPORT TARGET PORT GROUPS (SPC-4 §6.36: both parameter data formats, Tables 162-165) and
//! SET TARGET PORT GROUPS (§6.44, Tables 245-246): CDBs, parameter lists and a strict parser.
//! Data cut short by the ALLOCATION LENGTH is not inconsistent: it is reported as truncated.

use ironlun_scsi::alua::{AccessState, SupportedStates};
use ironlun_scsi::cdb::{ReportTargetPortGroups, SetTargetPortGroups};

use crate::{Error, Result};

/// One target port group descriptor of REPORT TARGET PORT GROUPS (Table 163).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortGroup {
    /// PREF: a preferred target port group.
    pub pref: bool,
    pub state: AccessState,
    pub supported: SupportedStates,
    pub group_id: u16,
    /// STATUS CODE (`ironlun_scsi::alua::status_code`).
    pub status: u8,
    pub vendor_specific: u8,
    /// RELATIVE TARGET PORT IDENTIFIERs of the group's ports, in the order sent.
    pub ports: Vec<u16>,
}

impl PortGroup {
    /// The descriptor's bytes (8 + 4 per port).
    pub fn encode(&self) -> Vec<u8> {
        let mut v = vec![
            (u8::from(self.pref) << 7) | self.state.code(),
            self.supported.to_byte(),
        ];
        v.extend_from_slice(&self.group_id.to_be_bytes());
        v.push(0);
        v.push(self.status);
        v.push(self.vendor_specific);
        v.push(u8::try_from(self.ports.len()).unwrap_or(u8::MAX));
        for p in &self.ports {
            v.extend_from_slice(&[0, 0]);
            v.extend_from_slice(&p.to_be_bytes());
        }
        v
    }
}

/// The parameter data format of REPORT TARGET PORT GROUPS (§6.36, CDB byte 1 bits 7..5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RtpgFormat {
    /// 000b: a 4-byte header (RETURN DATA LENGTH).
    LengthOnly,
    /// 001b: an 8-byte header with FORMAT TYPE 1 and IMPLICIT TRANSITION TIME (seconds).
    Extended { implicit_transition_secs: u8 },
}

/// Parsed REPORT TARGET PORT GROUPS parameter data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rtpg {
    pub format: RtpgFormat,
    /// RETURN DATA LENGTH as sent (bytes after byte 3).
    pub return_data_length: u32,
    /// Every descriptor wholly inside the returned bytes.
    pub groups: Vec<PortGroup>,
    /// The returned bytes end before RETURN DATA LENGTH says (allocation length too small).
    pub truncated: bool,
}

impl Rtpg {
    /// Parse `d`. `extended_requested`: the CDB asked for the extended format; the target may
    /// still answer in the length-only one (SPC-4 §6.36: FORMAT TYPE tells), so the header is
    /// judged by byte 4 only when it was requested.
    pub fn parse(d: &[u8], extended_requested: bool) -> Result<Rtpg> {
        let len4 = d
            .get(0..4)
            .ok_or_else(|| Error::Protocol(format!("RTPG data of {} bytes", d.len())))?;
        let rdl = u32::from_be_bytes([len4[0], len4[1], len4[2], len4[3]]);
        let (format, header) = match d.get(4) {
            Some(b) if extended_requested && (b >> 4) & 0x07 == 1 => {
                if d.len() < 8 || rdl < 4 {
                    return Err(Error::Protocol(format!(
                        "extended RTPG header cut short (data {} B, RETURN DATA LENGTH {rdl})",
                        d.len()
                    )));
                }
                (
                    RtpgFormat::Extended {
                        implicit_transition_secs: d[5],
                    },
                    8usize,
                )
            }
            Some(b) if extended_requested && (b >> 4) & 0x07 != 0 => {
                return Err(Error::Protocol(format!(
                    "RTPG FORMAT TYPE {} is reserved",
                    (b >> 4) & 0x07
                )))
            }
            _ => (RtpgFormat::LengthOnly, 4usize),
        };
        // SPC-4: RETURN DATA LENGTH counts every byte after byte 3, the rest of the extended
        // header included.
        let end = 4usize.saturating_add(rdl as usize);
        let avail = end.min(d.len());
        let mut groups = Vec::new();
        let mut off = header;
        while off < end {
            if off + 8 > avail {
                if off + 8 > end {
                    return Err(Error::Protocol(format!(
                        "RTPG descriptor at {off} overruns RETURN DATA LENGTH {rdl}"
                    )));
                }
                break;
            }
            let g = &d[off..off + 8];
            let count = usize::from(g[7]);
            let dend = off + 8 + 4 * count;
            if dend > end {
                return Err(Error::Protocol(format!(
                    "RTPG descriptor at {off} with {count} ports overruns RETURN DATA LENGTH {rdl}"
                )));
            }
            if dend > avail {
                break;
            }
            let ports = d[off + 8..dend]
                .chunks_exact(4)
                .map(|p| u16::from_be_bytes([p[2], p[3]]))
                .collect();
            groups.push(PortGroup {
                pref: g[0] & 0x80 != 0,
                state: AccessState::from_code(g[0]),
                supported: SupportedStates::from_byte(g[1]),
                group_id: u16::from_be_bytes([g[2], g[3]]),
                status: g[5],
                vendor_specific: g[6],
                ports,
            });
            off = dend;
        }
        Ok(Rtpg {
            format,
            return_data_length: rdl,
            groups,
            truncated: end > d.len(),
        })
    }

    /// The descriptor of group `id`.
    pub fn group(&self, id: u16) -> Option<&PortGroup> {
        self.groups.iter().find(|g| g.group_id == id)
    }

    /// The descriptor of the group holding relative target port `rtpi`.
    pub fn group_of_port(&self, rtpi: u16) -> Option<&PortGroup> {
        self.groups.iter().find(|g| g.ports.contains(&rtpi))
    }

    /// Parameter data as a conforming target would send it (tests, fakes).
    pub fn encode(format: RtpgFormat, groups: &[PortGroup]) -> Vec<u8> {
        let mut v = vec![0u8; 4];
        if let RtpgFormat::Extended {
            implicit_transition_secs,
        } = format
        {
            v.extend_from_slice(&[0x10, implicit_transition_secs, 0, 0]);
        }
        for g in groups {
            v.extend_from_slice(&g.encode());
        }
        let rdl = u32::try_from(v.len() - 4).unwrap_or(u32::MAX);
        v[0..4].copy_from_slice(&rdl.to_be_bytes());
        v
    }
}

/// One SET TARGET PORT GROUPS descriptor (Table 246).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StpgDescriptor {
    /// Move target port group `group` to a primary state.
    Primary { group: u16, state: AccessState },
    /// Put relative target port `rtpi` in the secondary state Offline.
    Offline { rtpi: u16 },
}

impl StpgDescriptor {
    pub fn encode(&self) -> [u8; 4] {
        let (state, id) = match *self {
            StpgDescriptor::Primary { group, state } => (state.code(), group),
            StpgDescriptor::Offline { rtpi } => (AccessState::Offline.code(), rtpi),
        };
        let id = id.to_be_bytes();
        [state, 0, id[0], id[1]]
    }
}

/// The SET TARGET PORT GROUPS parameter list: 4 reserved bytes, then the descriptors.
pub fn stpg_params(descriptors: &[StpgDescriptor]) -> Vec<u8> {
    let mut v = vec![0u8; 4];
    for d in descriptors {
        v.extend_from_slice(&d.encode());
    }
    v
}

/// REPORT TARGET PORT GROUPS CDB (MAINTENANCE IN, §6.36).
/// `extended` asks for PARAMETER DATA FORMAT 001b.
pub fn rtpg_cdb(extended: bool, alloc: u32) -> [u8; 12] {
    ReportTargetPortGroups {
        parameter_data_format: u8::from(extended),
        allocation_length: alloc,
    }
    .encode()
}

/// SET TARGET PORT GROUPS CDB (MAINTENANCE OUT, §6.44).
pub fn stpg_cdb(param_len: u32) -> [u8; 12] {
    SetTargetPortGroups {
        parameter_list_length: param_len,
    }
    .encode()
}
