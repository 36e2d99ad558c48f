//! Asymmetric logical unit access from the initiator side (SPC-4 §5.16): REPORT TARGET PORT
//! GROUPS (§6.36, both parameter data formats, Tables 162-165), SET TARGET PORT GROUPS
//! (§6.44, Tables 245-246), the Device Identification VPD page (§7.8.6: NAA, T10 vendor ID,
//! relative target port, target port group, logical unit group and SCSI name string
//! designators), the TPGS field of standard INQUIRY data (§6.6.2, Table 141), and a small path
//! chooser in the spirit of Linux's scsi_dh_alua / multipath-tools' ALUA prioritizer.
//!
//! Parsers are strict (anything inconsistent is an [`Error::Protocol`]) because their job is
//! to judge a target; data cut short by the ALLOCATION LENGTH is not inconsistent and is
//! reported as truncated instead.

use ironlun_iscsi::pdu::task_attr;
use ironlun_scsi::opcode::{self, mi, mo};
use ironlun_scsi::sense::key;
use ironlun_scsi::status;

use crate::command::CommandResult;
use crate::scsi::cdb;
use crate::session::Session;
use crate::{Error, Result};

const SIMPLE: u8 = task_attr::SIMPLE;

/// A target port asymmetric access state (SPC-4 Table 164).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AccessState {
    ActiveOptimized,
    ActiveNonOptimized,
    Standby,
    Unavailable,
    LbaDependent,
    Offline,
    Transitioning,
    /// A reserved code (kept so a target sending one can be judged, and so tests can send one).
    Reserved(u8),
}

impl AccessState {
    /// The 4-bit code.
    pub fn code(self) -> u8 {
        match self {
            AccessState::ActiveOptimized => 0x0,
            AccessState::ActiveNonOptimized => 0x1,
            AccessState::Standby => 0x2,
            AccessState::Unavailable => 0x3,
            AccessState::LbaDependent => 0x4,
            AccessState::Offline => 0xE,
            AccessState::Transitioning => 0xF,
            AccessState::Reserved(c) => c & 0x0f,
        }
    }

    /// From the low 4 bits of `code`.
    pub fn from_code(code: u8) -> AccessState {
        match code & 0x0f {
            0x0 => AccessState::ActiveOptimized,
            0x1 => AccessState::ActiveNonOptimized,
            0x2 => AccessState::Standby,
            0x3 => AccessState::Unavailable,
            0x4 => AccessState::LbaDependent,
            0xE => AccessState::Offline,
            0xF => AccessState::Transitioning,
            c => AccessState::Reserved(c),
        }
    }

    /// The ASCQ of NOT READY / ASC 04h a target reports for a command refused in this state
    /// (SPC-4 §5.16.2.4), if the state refuses commands at all.
    pub fn not_ready_ascq(self) -> Option<u8> {
        match self {
            AccessState::Transitioning => Some(0x0A),
            AccessState::Standby => Some(0x0B),
            AccessState::Unavailable => Some(0x0C),
            AccessState::Offline => Some(0x12),
            _ => None,
        }
    }
}

/// The supported-state bits of a target port group descriptor (byte 1, Table 163).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SupportedStates {
    /// T_SUP: Transitioning.
    pub transitioning: bool,
    /// O_SUP: Offline.
    pub offline: bool,
    /// LBD_SUP: LBA Dependent.
    pub lba_dependent: bool,
    /// U_SUP: Unavailable.
    pub unavailable: bool,
    /// S_SUP: Standby.
    pub standby: bool,
    /// AN_SUP: Active/Non-optimized.
    pub active_nonoptimized: bool,
    /// AO_SUP: Active/Optimized.
    pub active_optimized: bool,
}

impl SupportedStates {
    pub fn from_byte(b: u8) -> SupportedStates {
        SupportedStates {
            transitioning: b & 0x80 != 0,
            offline: b & 0x40 != 0,
            lba_dependent: b & 0x10 != 0,
            unavailable: b & 0x08 != 0,
            standby: b & 0x04 != 0,
            active_nonoptimized: b & 0x02 != 0,
            active_optimized: b & 0x01 != 0,
        }
    }

    pub fn to_byte(self) -> u8 {
        (u8::from(self.transitioning) << 7)
            | (u8::from(self.offline) << 6)
            | (u8::from(self.lba_dependent) << 4)
            | (u8::from(self.unavailable) << 3)
            | (u8::from(self.standby) << 2)
            | (u8::from(self.active_nonoptimized) << 1)
            | u8::from(self.active_optimized)
    }
}

/// STATUS CODE of a target port group descriptor (Table 165).
pub mod status_code {
    pub const NONE: u8 = 0x00;
    /// Altered by SET TARGET PORT GROUPS.
    pub const ALTERED_BY_STPG: u8 = 0x01;
    /// Altered by implicit asymmetric logical unit access behaviour.
    pub const ALTERED_BY_IMPLICIT: u8 = 0x02;
}

/// One target port group descriptor of REPORT TARGET PORT GROUPS (Table 163).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortGroup {
    /// PREF: a preferred target port group.
    pub pref: bool,
    pub state: AccessState,
    pub supported: SupportedStates,
    pub group_id: u16,
    /// STATUS CODE ([`status_code`]).
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
pub fn rtpg_cdb(extended: bool, alloc: u32) -> [u8; 12] {
    let mut c = [0u8; 12];
    c[0] = opcode::MAINTENANCE_IN;
    c[1] = (u8::from(extended) << 5) | mi::REPORT_TARGET_PORT_GROUPS;
    c[6..10].copy_from_slice(&alloc.to_be_bytes());
    c
}

/// SET TARGET PORT GROUPS CDB (MAINTENANCE OUT, §6.44).
pub fn stpg_cdb(param_len: u32) -> [u8; 12] {
    let mut c = [0u8; 12];
    c[0] = opcode::MAINTENANCE_OUT;
    c[1] = mo::SET_TARGET_PORT_GROUPS;
    c[6..10].copy_from_slice(&param_len.to_be_bytes());
    c
}

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
        Ok(Tpgs {
            implicit: b & 0x10 != 0,
            explicit: b & 0x20 != 0,
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

impl Session {
    /// REPORT TARGET PORT GROUPS with an explicit allocation length, raw.
    pub async fn rtpg_raw(&self, lun: u64, extended: bool, alloc: u32) -> Result<CommandResult> {
        self.command(lun, &rtpg_cdb(extended, alloc), None, alloc, SIMPLE)
            .await
    }

    /// REPORT TARGET PORT GROUPS, parsed and complete (re-issued with a larger allocation
    /// length if the first answer was truncated); non-GOOD is an error.
    pub async fn report_target_port_groups(&self, lun: u64, extended: bool) -> Result<Rtpg> {
        let mut alloc = 1024u32;
        for _ in 0..3 {
            let d = self.rtpg_raw(lun, extended, alloc).await?.good()?;
            let r = Rtpg::parse(&d, extended)?;
            if !r.truncated {
                return Ok(r);
            }
            alloc = r.return_data_length.saturating_add(8);
        }
        Err(Error::Protocol(
            "RTPG data still truncated after growing the allocation length".into(),
        ))
    }

    /// SET TARGET PORT GROUPS with these descriptors (raw result: CHECK CONDITION is data).
    pub async fn set_target_port_groups(
        &self,
        lun: u64,
        descriptors: &[StpgDescriptor],
    ) -> Result<CommandResult> {
        self.stpg_raw(lun, stpg_params(descriptors)).await
    }

    /// SET TARGET PORT GROUPS with an arbitrary parameter list.
    pub async fn stpg_raw(&self, lun: u64, params: Vec<u8>) -> Result<CommandResult> {
        let len = u32::try_from(params.len())
            .map_err(|_| Error::Invalid("parameter list longer than 4 GiB".into()))?;
        let data = (!params.is_empty()).then_some(params);
        self.command(lun, &stpg_cdb(len), data, 0, SIMPLE).await
    }

    /// The Device Identification VPD page, parsed; non-GOOD is an error.
    pub async fn device_identification(&self, lun: u64) -> Result<DeviceIdentification> {
        let alloc = 1024u16;
        let d = self
            .command(
                lun,
                &cdb::inquiry(true, 0x83, alloc),
                None,
                alloc.into(),
                SIMPLE,
            )
            .await?
            .good()?;
        DeviceIdentification::parse(&d)
    }

    /// The TPGS bits of standard INQUIRY data; non-GOOD is an error.
    pub async fn inquiry_tpgs(&self, lun: u64) -> Result<Tpgs> {
        let d = self.inquiry(lun, false, 0, 96).await?.good()?;
        Tpgs::from_inquiry(&d)
    }
}

/// Does this outcome mean the ALUA picture may have changed, so paths must be re-read?
/// UNIT ATTENTION 2A/06 (asymmetric access state changed), 2A/07 (implicit transition
/// failed), 3F/03 (inquiry data changed: e.g. the port changed group), and NOT READY for a
/// refused state: 04/0A transitioning, 04/0B standby, 04/0C unavailable, 04/12 offline.
pub fn needs_reread(r: &CommandResult) -> bool {
    if r.status != status::CHECK_CONDITION {
        return false;
    }
    matches!(
        r.sense_triple(),
        Some((key::UNIT_ATTENTION, 0x2A, 0x06 | 0x07))
            | Some((key::UNIT_ATTENTION, 0x3F, 0x03))
            | Some((key::NOT_READY, 0x04, 0x0A | 0x0B | 0x0C | 0x12))
    )
}

/// What the chooser knows about one path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathState {
    pub rtpi: u16,
    pub group_id: u16,
    pub state: AccessState,
    pub pref: bool,
}

impl PathState {
    /// Active/Optimized or Active/Non-optimized: commands go through. LBA Dependent is not
    /// counted usable (the chooser does not read the LBA map), nor is any refusing state.
    pub fn usable(&self) -> bool {
        matches!(
            self.state,
            AccessState::ActiveOptimized | AccessState::ActiveNonOptimized
        )
    }

    /// multipath-tools' ALUA prioritizer: AO 50, ANO 10, Standby 1, else 0; +80 if PREF.
    pub fn priority(&self) -> u32 {
        let base = match self.state {
            AccessState::ActiveOptimized => 50,
            AccessState::ActiveNonOptimized => 10,
            AccessState::Standby => 1,
            _ => 0,
        };
        base + if self.pref { 80 } else { 0 }
    }
}

/// Indices of the usable paths, best first: AO before ANO, then PREF before not, then the
/// order given (stable). Paths not yet known (`None`) or in a refusing state are left out.
pub fn rank(paths: &[Option<PathState>]) -> Vec<usize> {
    let mut v: Vec<(usize, PathState)> = paths
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.filter(PathState::usable).map(|p| (i, p)))
        .collect();
    v.sort_by_key(|(i, p)| (p.state != AccessState::ActiveOptimized, !p.pref, *i));
    v.into_iter().map(|(i, _)| i).collect()
}

/// Several sessions (paths) to the same logical unit: reads each path's relative port and
/// group from VPD 0x83 and the group's state from REPORT TARGET PORT GROUPS, ranks them
/// ([`rank`]), and marks itself stale when a command outcome says the states may have changed
/// ([`needs_reread`]).
#[derive(Debug)]
pub struct PathChooser {
    lun: u64,
    sessions: Vec<Session>,
    states: Vec<Option<PathState>>,
    stale: bool,
}

impl PathChooser {
    pub fn new(lun: u64, sessions: Vec<Session>) -> PathChooser {
        let n = sessions.len();
        PathChooser {
            lun,
            sessions,
            states: vec![None; n],
            stale: true,
        }
    }

    pub fn session(&self, i: usize) -> Option<&Session> {
        self.sessions.get(i)
    }

    pub fn states(&self) -> &[Option<PathState>] {
        &self.states
    }

    pub fn is_stale(&self) -> bool {
        self.stale
    }

    /// Re-read every path. A path whose VPD or RTPG cannot be read (e.g. refused, or the
    /// session is gone) is unknown, hence unusable, until the next refresh.
    pub async fn refresh(&mut self) {
        for (i, s) in self.sessions.iter().enumerate() {
            self.states[i] = Self::read_path(s, self.lun).await.ok();
        }
        self.stale = false;
    }

    async fn read_path(s: &Session, lun: u64) -> Result<PathState> {
        let id = s.device_identification(lun).await?;
        let rtpi = id
            .relative_target_port()
            .ok_or_else(|| Error::Protocol("VPD 0x83 without a relative target port".into()))?;
        let group_id = id
            .target_port_group()
            .ok_or_else(|| Error::Protocol("VPD 0x83 without a target port group".into()))?;
        // A unit attention (most likely the very 2A/06 that made us re-read) is reported on
        // RTPG like on any command but INQUIRY: take it and ask again, as scsi_dh_alua does.
        let mut rtpg = s.report_target_port_groups(lun, true).await;
        for _ in 0..4 {
            match &rtpg {
                Err(Error::Scsi {
                    status: status::CHECK_CONDITION,
                    sense: Some(sn),
                }) if sn.key == key::UNIT_ATTENTION => {
                    rtpg = s.report_target_port_groups(lun, true).await;
                }
                _ => break,
            }
        }
        let rtpg = rtpg?;
        let g = rtpg.group(group_id).ok_or_else(|| {
            Error::Protocol(format!("RTPG does not list group {group_id} of VPD 0x83"))
        })?;
        Ok(PathState {
            rtpi,
            group_id,
            state: g.state,
            pref: g.pref,
        })
    }

    /// Record a command outcome (of any path): marks the chooser stale if it asks for a
    /// re-read; returns whether it did.
    pub fn observe(&mut self, r: &CommandResult) -> bool {
        let again = needs_reread(r);
        self.stale |= again;
        again
    }

    /// The best usable path now (refreshing first if stale), if any.
    pub async fn best(&mut self) -> Option<usize> {
        if self.stale {
            self.refresh().await;
        }
        rank(&self.states).first().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use ironlun_scsi::sense::Asc;
    use ironlun_scsi::Sense;

    fn pg(pref: bool, state: AccessState, id: u16, st: u8, ports: &[u16]) -> PortGroup {
        PortGroup {
            pref,
            state,
            supported: SupportedStates::from_byte(0xDF),
            group_id: id,
            status: st,
            vendor_specific: 0,
            ports: ports.to_vec(),
        }
    }

    #[test]
    fn cdbs_are_byte_exact() {
        assert_eq!(
            rtpg_cdb(false, 0x0102_0304),
            [0xA3, 0x0A, 0, 0, 0, 0, 1, 2, 3, 4, 0, 0]
        );
        assert_eq!(rtpg_cdb(true, 8)[1], 0x2A);
        assert_eq!(stpg_cdb(12), [0xA4, 0x0A, 0, 0, 0, 0, 0, 0, 0, 12, 0, 0]);
    }

    #[test]
    fn stpg_parameter_list_is_byte_exact() {
        let p = stpg_params(&[
            StpgDescriptor::Primary {
                group: 0x0102,
                state: AccessState::ActiveNonOptimized,
            },
            StpgDescriptor::Offline { rtpi: 7 },
            StpgDescriptor::Primary {
                group: 2,
                state: AccessState::Standby,
            },
        ]);
        assert_eq!(
            p,
            vec![0, 0, 0, 0, 0x01, 0, 0x01, 0x02, 0x0E, 0, 0, 7, 0x02, 0, 0, 2]
        );
    }

    #[test]
    fn rtpg_length_only_parses_every_field() {
        let d = [
            0, 0, 0, 24, // RETURN DATA LENGTH
            0x81, 0xDF, 0, 1, 0, 0x01, 0x5A, 2, // PREF, ANO, every state, group 1
            0, 0, 0, 3, 0, 0, 0, 4, // RTPIs 3, 4
            0x02, 0x05, 0, 2, 0, 0x02, 0, 0, // Standby, S_SUP|AO_SUP, group 2, no ports
        ];
        let r = Rtpg::parse(&d, false).unwrap();
        assert_eq!(r.format, RtpgFormat::LengthOnly);
        assert!(!r.truncated);
        assert_eq!(r.return_data_length, 24);
        let g = &r.groups[0];
        assert!(g.pref);
        assert_eq!(g.state, AccessState::ActiveNonOptimized);
        assert_eq!(
            g.supported,
            SupportedStates {
                transitioning: true,
                offline: true,
                lba_dependent: true,
                unavailable: true,
                standby: true,
                active_nonoptimized: true,
                active_optimized: true,
            }
        );
        assert_eq!(
            (g.group_id, g.status, g.vendor_specific),
            (1, status_code::ALTERED_BY_STPG, 0x5A)
        );
        assert_eq!(g.ports, vec![3, 4]);
        let g2 = &r.groups[1];
        assert_eq!(
            (g2.pref, g2.state, g2.group_id),
            (false, AccessState::Standby, 2)
        );
        assert_eq!(g2.status, status_code::ALTERED_BY_IMPLICIT);
        assert_eq!(g2.supported.to_byte(), 0x05);
        assert!(g2.ports.is_empty());
        assert_eq!(r.group_of_port(4).map(|g| g.group_id), Some(1));
        assert_eq!(Rtpg::encode(RtpgFormat::LengthOnly, &r.groups), d.to_vec());
    }

    #[test]
    fn rtpg_extended_header_carries_implicit_transition_time() {
        let groups = vec![pg(false, AccessState::Transitioning, 9, 0, &[1])];
        let d = Rtpg::encode(
            RtpgFormat::Extended {
                implicit_transition_secs: 30,
            },
            &groups,
        );
        assert_eq!(&d[..8], &[0, 0, 0, 16, 0x10, 30, 0, 0]);
        let r = Rtpg::parse(&d, true).unwrap();
        assert_eq!(
            r.format,
            RtpgFormat::Extended {
                implicit_transition_secs: 30
            }
        );
        assert_eq!(r.groups, groups);
        // A target that ignores the request answers length-only: byte 4 is then a descriptor.
        let lo = Rtpg::encode(RtpgFormat::LengthOnly, &groups);
        assert_eq!(Rtpg::parse(&lo, true).unwrap().groups, groups);
        // LIO's short RETURN DATA LENGTH (descriptor bytes only) is caught.
        let mut quirk = d.clone();
        quirk[3] = 12;
        assert!(Rtpg::parse(&quirk, true).is_err());
        // Reserved format type.
        let mut bad = d;
        bad[4] = 0x20;
        assert!(Rtpg::parse(&bad, true).is_err());
    }

    #[test]
    fn rtpg_truncation_and_overruns() {
        let groups = vec![
            pg(false, AccessState::ActiveOptimized, 1, 0, &[1, 2]),
            pg(true, AccessState::Standby, 2, 2, &[3]),
        ];
        let d = Rtpg::encode(RtpgFormat::LengthOnly, &groups);
        // Cut inside the second descriptor: the first is kept, truncation reported.
        let r = Rtpg::parse(&d[..d.len() - 2], false).unwrap();
        assert!(r.truncated);
        assert_eq!(r.groups, groups[..1].to_vec());
        // Header only.
        let r = Rtpg::parse(&d[..4], false).unwrap();
        assert!(r.truncated && r.groups.is_empty());
        assert!(Rtpg::parse(&d[..3], false).is_err());
        // Port count reaching past RETURN DATA LENGTH.
        let mut bad = d.clone();
        bad[4 + 7] = 6;
        assert!(Rtpg::parse(&bad, false).is_err());
        // RETURN DATA LENGTH ending inside a descriptor header.
        let mut bad = d;
        bad[3] -= 18;
        assert!(Rtpg::parse(&bad, false).is_err());
    }

    fn vpd83() -> Vec<u8> {
        let mut body = Vec::new();
        // NAA 6, binary, LU.
        body.extend_from_slice(&[0x01, 0x03, 0, 16, 0x60, 0x01, 0x40, 0x5a]);
        body.extend_from_slice(&[0xbc, 0xde, 0xf0, 0x12, 0x34, 0x56, 0x78, 0x9a, 0, 0, 0, 0]);
        // T10 vendor ID, ASCII, LU.
        body.extend_from_slice(&[0x02, 0x01, 0, 12]);
        body.extend_from_slice(b"IRONLUN ab:1");
        // Relative target port 0x0102, iSCSI, PIV, port.
        body.extend_from_slice(&[0x51, 0x94, 0, 4, 0, 0, 0x01, 0x02]);
        // Target port group 2.
        body.extend_from_slice(&[0x51, 0x95, 0, 4, 0, 0, 0, 2]);
        // LU group 0x0a0b, LU association.
        body.extend_from_slice(&[0x01, 0x06, 0, 4, 0, 0, 0x0a, 0x0b]);
        // SCSI name string, UTF-8, port: "iqn.x,t,0x0001" (14 + NUL -> 16).
        body.extend_from_slice(&[0x53, 0x98, 0, 16]);
        body.extend_from_slice(b"iqn.x,t,0x0001\0\0");
        // SCSI name string, target device: "iqn.x" (5 + NUL -> 8).
        body.extend_from_slice(&[0x53, 0xA8, 0, 8]);
        body.extend_from_slice(b"iqn.x\0\0\0");
        // Unknown type 0xA (UUID), kept raw.
        body.extend_from_slice(&[0x01, 0x0A, 0, 2, 0xEE, 0xFF]);
        let mut d = vec![0x00, 0x83];
        d.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
        d.extend_from_slice(&body);
        d
    }

    #[test]
    fn vpd83_designators_parse() {
        let id = DeviceIdentification::parse(&vpd83()).unwrap();
        assert_eq!(id.designations.len(), 8);
        assert_eq!(id.relative_target_port(), Some(0x0102));
        assert_eq!(id.target_port_group(), Some(2));
        assert_eq!(id.lu_group(), Some(0x0a0b));
        assert_eq!(id.naa().map(|n| n[0]), Some(0x60));
        assert_eq!(
            id.scsi_name(Association::TargetPort).as_deref(),
            Some("iqn.x,t,0x0001")
        );
        assert_eq!(
            id.scsi_name(Association::TargetDevice).as_deref(),
            Some("iqn.x")
        );
        let rtp = &id.designations[2];
        assert_eq!(
            (
                rtp.protocol_id,
                rtp.code_set,
                rtp.piv,
                rtp.association,
                rtp.designator_type
            ),
            (5, 1, true, Association::TargetPort, 4)
        );
        assert_eq!(
            id.designations[1].designator,
            Designator::T10VendorId {
                vendor: "IRONLUN ".into(),
                specific: b"ab:1".to_vec()
            }
        );
        assert_eq!(
            id.designations[7].designator,
            Designator::Other {
                kind: 0xA,
                bytes: vec![0xEE, 0xFF]
            }
        );
    }

    #[test]
    fn vpd83_rejects_inconsistencies() {
        let d = vpd83();
        // Page length beyond the data.
        assert!(DeviceIdentification::parse(&d[..d.len() - 1]).is_err());
        // Wrong page.
        let mut bad = d.clone();
        bad[1] = 0x80;
        assert!(DeviceIdentification::parse(&bad).is_err());
        // A descriptor length overrunning the page.
        let mut bad = d.clone();
        bad[4 + 3] = 200;
        assert!(DeviceIdentification::parse(&bad).is_err());
        // Relative target port designator of the wrong length.
        let bad = [0, 0x83, 0, 7, 0x51, 0x94, 0, 3, 0, 0, 1];
        assert!(DeviceIdentification::parse(&bad).is_err());
        // SCSI name string without NUL.
        let bad = [0, 0x83, 0, 8, 0x53, 0x98, 0, 4, b'i', b'q', b'n', b'.'];
        assert!(DeviceIdentification::parse(&bad).is_err());
        // Reserved NAA.
        let bad = [0, 0x83, 0, 12, 0x01, 0x03, 0, 8, 0x70, 0, 0, 0, 0, 0, 0, 0];
        assert!(DeviceIdentification::parse(&bad).is_err());
        // Empty page is fine.
        assert!(DeviceIdentification::parse(&[0, 0x83, 0, 0])
            .unwrap()
            .designations
            .is_empty());
    }

    #[test]
    fn tpgs_bits() {
        let mut inq = vec![0u8; 36];
        inq[5] = 0x80 | 0x30;
        assert_eq!(
            Tpgs::from_inquiry(&inq).unwrap(),
            Tpgs {
                implicit: true,
                explicit: true
            }
        );
        inq[5] = 0x10;
        assert_eq!(
            Tpgs::from_inquiry(&inq).unwrap(),
            Tpgs {
                implicit: true,
                explicit: false
            }
        );
        assert!(Tpgs::from_inquiry(&inq[..5]).is_err());
    }

    #[test]
    fn access_state_codes_round_trip() {
        for c in 0..16u8 {
            assert_eq!(AccessState::from_code(c).code(), c);
        }
        assert_eq!(AccessState::Standby.not_ready_ascq(), Some(0x0B));
        assert_eq!(AccessState::ActiveNonOptimized.not_ready_ascq(), None);
    }

    fn path(state: AccessState, pref: bool) -> Option<PathState> {
        Some(PathState {
            rtpi: 1,
            group_id: 1,
            state,
            pref,
        })
    }

    #[test]
    fn ranking_prefers_ao_then_pref_and_skips_unusable() {
        use AccessState::*;
        let paths = [
            path(ActiveNonOptimized, true),
            path(Standby, true),
            path(ActiveOptimized, false),
            None,
            path(ActiveNonOptimized, false),
            path(ActiveOptimized, true),
            path(Transitioning, false),
            path(Unavailable, false),
            path(Offline, false),
            path(LbaDependent, false),
        ];
        assert_eq!(rank(&paths), vec![5, 2, 0, 4]);
        assert_eq!(rank(&[path(Standby, false), None]), Vec::<usize>::new());
        assert_eq!(path(ActiveOptimized, true).unwrap().priority(), 130);
        assert_eq!(path(ActiveNonOptimized, false).unwrap().priority(), 10);
        assert_eq!(path(Standby, false).unwrap().priority(), 1);
        assert_eq!(path(Unavailable, true).unwrap().priority(), 80);
    }

    fn checked(key: u8, asc: u8, ascq: u8) -> CommandResult {
        CommandResult {
            response: 0,
            status: status::CHECK_CONDITION,
            sense: Some(Sense::new(key, Asc::new(asc, ascq))),
            sense_bytes: Bytes::new(),
            data_in: Bytes::new(),
            residual: crate::Residual::None,
            data_in_pdus: 0,
        }
    }

    #[test]
    fn reread_triggers() {
        for (k, a, q) in [
            (6, 0x2A, 0x06),
            (6, 0x2A, 0x07),
            (6, 0x3F, 0x03),
            (2, 0x04, 0x0A),
            (2, 0x04, 0x0B),
            (2, 0x04, 0x0C),
            (2, 0x04, 0x12),
        ] {
            assert!(needs_reread(&checked(k, a, q)), "{k:x}/{a:x}/{q:x}");
        }
        for (k, a, q) in [
            (6, 0x29, 0x00),
            (2, 0x04, 0x00),
            (5, 0x24, 0x00),
            (6, 0x2A, 0x03),
        ] {
            assert!(!needs_reread(&checked(k, a, q)), "{k:x}/{a:x}/{q:x}");
        }
        let mut good = checked(6, 0x2A, 0x06);
        good.status = status::GOOD;
        assert!(!needs_reread(&good));
    }

    #[test]
    fn chooser_goes_stale_on_reread_triggers_only() {
        let mut c = PathChooser::new(0, Vec::new());
        c.stale = false;
        assert!(!c.observe(&checked(5, 0x24, 0)));
        assert!(!c.is_stale());
        assert!(c.observe(&checked(2, 0x04, 0x0B)));
        assert!(c.is_stale());
    }
}
