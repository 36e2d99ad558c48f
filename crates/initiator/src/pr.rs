//! Persistent reservations from the initiator side (SPC-4 §5.13): PERSISTENT RESERVE OUT
//! (§6.16: CDB, basic parameter list §6.16.3 with SPEC_I_PT TransportIDs, REGISTER AND MOVE
//! parameter list §6.16.4) and PERSISTENT RESERVE IN (§6.15: READ KEYS, READ RESERVATION,
//! REPORT CAPABILITIES, READ FULL STATUS), with iSCSI TransportIDs (§7.6.4.6, formats 00b and
//! 01b).
//!
//! Encoders produce exactly the bytes SPC-4 lays out; parsers are strict, because their job
//! is to judge a target: anything inconsistent is an [`Error::Protocol`].

use ironlun_iscsi::pdu::task_attr;
use ironlun_scsi::opcode;

use crate::command::CommandResult;
use crate::session::Session;
use crate::{Error, Result};

/// PERSISTENT RESERVE IN/OUT service actions: the codes the target uses too.
pub use ironlun_scsi::pr::{in_sa, out_sa};

/// SCSI transport protocol identifier of iSCSI (SPC-4 Table 444).
pub const PROTOCOL_ISCSI: u8 = 0x5;

/// The persistent reservation types (SPC-4 Table 168).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PrType {
    WriteExclusive,
    ExclusiveAccess,
    WriteExclusiveRegistrantsOnly,
    ExclusiveAccessRegistrantsOnly,
    WriteExclusiveAllRegistrants,
    ExclusiveAccessAllRegistrants,
}

impl PrType {
    pub const ALL: [PrType; 6] = [
        PrType::WriteExclusive,
        PrType::ExclusiveAccess,
        PrType::WriteExclusiveRegistrantsOnly,
        PrType::ExclusiveAccessRegistrantsOnly,
        PrType::WriteExclusiveAllRegistrants,
        PrType::ExclusiveAccessAllRegistrants,
    ];

    /// The TYPE code.
    pub fn code(self) -> u8 {
        match self {
            PrType::WriteExclusive => 1,
            PrType::ExclusiveAccess => 3,
            PrType::WriteExclusiveRegistrantsOnly => 5,
            PrType::ExclusiveAccessRegistrantsOnly => 6,
            PrType::WriteExclusiveAllRegistrants => 7,
            PrType::ExclusiveAccessAllRegistrants => 8,
        }
    }

    pub fn from_code(code: u8) -> Option<PrType> {
        PrType::ALL.into_iter().find(|t| t.code() == code)
    }

    /// Exclusive Access flavour (reads are restricted too), as opposed to Write Exclusive.
    pub fn exclusive_access(self) -> bool {
        matches!(
            self,
            PrType::ExclusiveAccess
                | PrType::ExclusiveAccessRegistrantsOnly
                | PrType::ExclusiveAccessAllRegistrants
        )
    }

    /// Registrants Only or All Registrants: every registered I_T nexus gets access.
    pub fn registrants_have_access(self) -> bool {
        !matches!(self, PrType::WriteExclusive | PrType::ExclusiveAccess)
    }

    /// All Registrants: every registrant is a reservation holder (SPC-4 §5.13.10).
    pub fn all_registrants(self) -> bool {
        matches!(
            self,
            PrType::WriteExclusiveAllRegistrants | PrType::ExclusiveAccessAllRegistrants
        )
    }

    /// The bit of this type in REPORT CAPABILITIES' PERSISTENT RESERVATION TYPE MASK
    /// (bytes 4..6 read as a big-endian u16; SPC-4 Table 169).
    pub fn mask_bit(self) -> u16 {
        match self {
            PrType::WriteExclusiveAllRegistrants => 0x8000,
            PrType::ExclusiveAccessRegistrantsOnly => 0x4000,
            PrType::WriteExclusiveRegistrantsOnly => 0x2000,
            PrType::ExclusiveAccess => 0x0800,
            PrType::WriteExclusive => 0x0200,
            PrType::ExclusiveAccessAllRegistrants => 0x0001,
        }
    }
}

/// A TransportID (SPC-4 §7.6.4): an initiator port or device as named in parameter data.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TransportId {
    /// iSCSI (§7.6.4.6): format 00b names the initiator device (`isid: None`), format 01b
    /// the initiator port (`name,i,0x<ISID>`).
    Iscsi { name: String, isid: Option<[u8; 6]> },
    /// Another protocol's TransportID, kept as received (FC, SAS, SRP, SBP: 24 bytes).
    Other { protocol: u8, bytes: Vec<u8> },
}

fn be16(b: &[u8], at: usize) -> Result<u16> {
    match b.get(at..at + 2) {
        Some(s) => Ok(u16::from_be_bytes([s[0], s[1]])),
        None => Err(Error::Protocol(format!("no 16-bit field at offset {at}"))),
    }
}

fn be32(b: &[u8], at: usize) -> Result<u32> {
    match b.get(at..at + 4) {
        Some(s) => Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]])),
        None => Err(Error::Protocol(format!("no 32-bit field at offset {at}"))),
    }
}

fn be64(b: &[u8], at: usize) -> Result<u64> {
    match b.get(at..at + 8) {
        Some(s) => {
            let mut a = [0u8; 8];
            a.copy_from_slice(s);
            Ok(u64::from_be_bytes(a))
        }
        None => Err(Error::Protocol(format!("no 64-bit field at offset {at}"))),
    }
}

fn hex_isid(text: &str) -> Option<[u8; 6]> {
    if text.len() != 12 || !text.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let mut isid = [0u8; 6];
    for (i, b) in isid.iter_mut().enumerate() {
        *b = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(isid)
}

/// The ISID as the 12 lower-case hex digits of iSCSI initiator port names (RFC 7143 §4.2.7.2,
/// SPC-4 §7.6.4.6).
pub fn isid_hex(isid: [u8; 6]) -> String {
    isid.iter().map(|b| format!("{b:02x}")).collect()
}

impl TransportId {
    /// Format 00b: the iSCSI initiator device name.
    pub fn iscsi(name: &str) -> TransportId {
        TransportId::Iscsi {
            name: name.to_string(),
            isid: None,
        }
    }

    /// Format 01b: the iSCSI initiator port (name and ISID).
    pub fn iscsi_port(name: &str, isid: [u8; 6]) -> TransportId {
        TransportId::Iscsi {
            name: name.to_string(),
            isid: Some(isid),
        }
    }

    /// FORMAT CODE (bits 7..6 of byte 0).
    pub fn format(&self) -> u8 {
        match self {
            TransportId::Iscsi { isid: Some(_), .. } => 1,
            TransportId::Iscsi { isid: None, .. } => 0,
            TransportId::Other { bytes, .. } => bytes.first().map_or(0, |b| b >> 6),
        }
    }

    /// The bytes of the TransportID. iSCSI: the name (with `,i,0x<ISID>` for format 01b)
    /// NUL-terminated, padded with zeros to a multiple of 4 and to at least 20 bytes of
    /// ADDITIONAL LENGTH (SPC-4 Table 450).
    pub fn encode(&self) -> Vec<u8> {
        match self {
            TransportId::Iscsi { name, isid } => {
                let mut text = name.as_bytes().to_vec();
                if let Some(isid) = isid {
                    text.extend_from_slice(b",i,0x");
                    text.extend_from_slice(isid_hex(*isid).as_bytes());
                }
                text.push(0);
                let add = text.len().next_multiple_of(4).max(20);
                text.resize(add, 0);
                let mut out = Vec::with_capacity(4 + add);
                out.push((self.format() << 6) | PROTOCOL_ISCSI);
                out.push(0);
                out.extend_from_slice(&(add as u16).to_be_bytes());
                out.extend_from_slice(&text);
                out
            }
            TransportId::Other { bytes, .. } => bytes.clone(),
        }
    }

    /// Parse one TransportID at the start of `b`; returns it and its length.
    pub fn parse(b: &[u8]) -> Result<(TransportId, usize)> {
        let b0 = *b
            .first()
            .ok_or_else(|| Error::Protocol("empty TransportID".into()))?;
        let protocol = b0 & 0x0f;
        let format = b0 >> 6;
        if protocol != PROTOCOL_ISCSI {
            // Every other protocol's TransportID is 24 bytes (SPC-4 §7.6.4.2-5, .7).
            let bytes = b
                .get(..24)
                .ok_or_else(|| Error::Protocol("TransportID shorter than 24 bytes".into()))?;
            return Ok((
                TransportId::Other {
                    protocol,
                    bytes: bytes.to_vec(),
                },
                24,
            ));
        }
        if b0 & 0x30 != 0 || format > 1 {
            return Err(Error::Protocol(format!(
                "iSCSI TransportID byte 0 {b0:#04x}: format {format} or reserved bits"
            )));
        }
        let add = usize::from(be16(b, 2)?);
        if add < 20 || add % 4 != 0 {
            return Err(Error::Protocol(format!(
                "iSCSI TransportID ADDITIONAL LENGTH {add} (must be >= 20, multiple of 4)"
            )));
        }
        let field = b
            .get(4..4 + add)
            .ok_or_else(|| Error::Protocol(format!("iSCSI TransportID of {add} bytes cut")))?;
        let nul = field
            .iter()
            .position(|&c| c == 0)
            .ok_or_else(|| Error::Protocol("iSCSI TransportID name not NUL-terminated".into()))?;
        if field[nul..].iter().any(|&c| c != 0) {
            return Err(Error::Protocol(
                "iSCSI TransportID padding is not zero".into(),
            ));
        }
        let text = std::str::from_utf8(&field[..nul])
            .map_err(|_| Error::Protocol("iSCSI TransportID name is not UTF-8".into()))?;
        let tid = if format == 1 {
            let (name, isid) = text.rsplit_once(",i,0x").ok_or_else(|| {
                Error::Protocol(format!("format 01b TransportID {text:?} without ,i,0x"))
            })?;
            let isid = hex_isid(isid)
                .ok_or_else(|| Error::Protocol(format!("TransportID ISID {isid:?}")))?;
            TransportId::iscsi_port(name, isid)
        } else {
            TransportId::iscsi(text)
        };
        Ok((tid, 4 + add))
    }
}

/// The PERSISTENT RESERVE OUT CDB (SPC-4 §6.16.1).
pub fn prout_cdb(service_action: u8, scope: u8, pr_type: u8, param_len: u32) -> [u8; 10] {
    let l = param_len.to_be_bytes();
    [
        opcode::PERSISTENT_RESERVE_OUT,
        service_action & 0x1f,
        ((scope & 0x0f) << 4) | (pr_type & 0x0f),
        0,
        0,
        l[0],
        l[1],
        l[2],
        l[3],
        0,
    ]
}

/// The PERSISTENT RESERVE IN CDB (SPC-4 §6.15.1).
pub fn prin_cdb(service_action: u8, alloc: u16) -> [u8; 10] {
    let a = alloc.to_be_bytes();
    [
        opcode::PERSISTENT_RESERVE_IN,
        service_action & 0x1f,
        0,
        0,
        0,
        0,
        0,
        a[0],
        a[1],
        0,
    ]
}

/// The basic PERSISTENT RESERVE OUT parameter list (SPC-4 §6.16.3), used by every service
/// action but REGISTER AND MOVE.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProutParams {
    /// RESERVATION KEY.
    pub key: u64,
    /// SERVICE ACTION RESERVATION KEY.
    pub sa_key: u64,
    /// SPEC_I_PT: the TransportIDs below are registered too (bytes 24.. present).
    pub spec_i_pt: bool,
    pub all_tg_pt: bool,
    pub aptpl: bool,
    pub transport_ids: Vec<TransportId>,
}

impl ProutParams {
    pub fn keys(key: u64, sa_key: u64) -> ProutParams {
        ProutParams {
            key,
            sa_key,
            ..ProutParams::default()
        }
    }

    /// 24 bytes, or with SPEC_I_PT 28 + the TransportIDs.
    pub fn encode(&self) -> Vec<u8> {
        let tids: Vec<u8> = self.transport_ids.iter().flat_map(|t| t.encode()).collect();
        self.encode_with(&tids)
    }

    /// As [`encode`](Self::encode) but with `tid_data` (possibly malformed) as the
    /// TransportIDs when SPEC_I_PT is set; TRANSPORTID PARAMETER DATA LENGTH is its length.
    pub fn encode_with(&self, tid_data: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; 24];
        out[0..8].copy_from_slice(&self.key.to_be_bytes());
        out[8..16].copy_from_slice(&self.sa_key.to_be_bytes());
        out[20] = (u8::from(self.spec_i_pt) << 3)
            | (u8::from(self.all_tg_pt) << 2)
            | u8::from(self.aptpl);
        if self.spec_i_pt {
            out.extend_from_slice(&(tid_data.len() as u32).to_be_bytes());
            out.extend_from_slice(tid_data);
        }
        out
    }
}

/// The REGISTER AND MOVE parameter list (SPC-4 §6.16.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisterAndMoveParams {
    pub key: u64,
    /// The key the destination I_T nexus gets.
    pub sa_key: u64,
    /// Unregister the source I_T nexus.
    pub unreg: bool,
    pub aptpl: bool,
    /// RELATIVE TARGET PORT IDENTIFIER of the destination target port.
    pub rtpi: u16,
    /// The destination initiator port.
    pub transport_id: TransportId,
}

impl RegisterAndMoveParams {
    pub fn encode(&self) -> Vec<u8> {
        self.encode_with(&self.transport_id.encode())
    }

    /// With `tid` (possibly malformed) as the TransportID.
    pub fn encode_with(&self, tid: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; 24];
        out[0..8].copy_from_slice(&self.key.to_be_bytes());
        out[8..16].copy_from_slice(&self.sa_key.to_be_bytes());
        out[17] = (u8::from(self.unreg) << 1) | u8::from(self.aptpl);
        out[18..20].copy_from_slice(&self.rtpi.to_be_bytes());
        out[20..24].copy_from_slice(&(tid.len() as u32).to_be_bytes());
        out.extend_from_slice(tid);
        out
    }
}

/// Flags of a registration (REGISTER / REGISTER AND IGNORE EXISTING KEY).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegisterFlags {
    pub aptpl: bool,
    pub all_tg_pt: bool,
    /// `Some`: SPEC_I_PT = 1 with these TransportIDs.
    pub spec_i_pt: Option<Vec<TransportId>>,
}

impl RegisterFlags {
    pub fn aptpl() -> RegisterFlags {
        RegisterFlags {
            aptpl: true,
            ..RegisterFlags::default()
        }
    }

    fn params(&self, key: u64, sa_key: u64) -> ProutParams {
        ProutParams {
            key,
            sa_key,
            spec_i_pt: self.spec_i_pt.is_some(),
            all_tg_pt: self.all_tg_pt,
            aptpl: self.aptpl,
            transport_ids: self.spec_i_pt.clone().unwrap_or_default(),
        }
    }
}

/// READ KEYS parameter data (SPC-4 §6.15.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadKeys {
    pub generation: u32,
    /// ADDITIONAL LENGTH as sent (8 × registrations, even when truncated by the allocation
    /// length).
    pub additional_length: u32,
    /// The keys that were transferred.
    pub keys: Vec<u64>,
}

impl ReadKeys {
    pub fn parse(d: &[u8]) -> Result<ReadKeys> {
        let generation = be32(d, 0)?;
        let additional_length = be32(d, 4)?;
        if additional_length % 8 != 0 {
            return Err(Error::Protocol(format!(
                "READ KEYS ADDITIONAL LENGTH {additional_length} is not a multiple of 8"
            )));
        }
        let end = d
            .len()
            .min(8usize.saturating_add(additional_length as usize));
        let keys = d[8..end]
            .chunks_exact(8)
            .map(|c| be64(c, 0))
            .collect::<Result<Vec<u64>>>()?;
        Ok(ReadKeys {
            generation,
            additional_length,
            keys,
        })
    }
}

/// The persistent reservation reported by READ RESERVATION.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reservation {
    /// RESERVATION KEY (zero for the all-registrants types, SPC-4 §6.15.3.2).
    pub key: u64,
    pub scope: u8,
    /// TYPE code.
    pub pr_type: u8,
}

/// READ RESERVATION parameter data (SPC-4 §6.15.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadReservation {
    pub generation: u32,
    pub reservation: Option<Reservation>,
}

impl ReadReservation {
    pub fn parse(d: &[u8]) -> Result<ReadReservation> {
        let generation = be32(d, 0)?;
        let add = be32(d, 4)?;
        let reservation = match add {
            0 => None,
            16 => {
                let b21 = *d
                    .get(21)
                    .ok_or_else(|| Error::Protocol("READ RESERVATION data cut".into()))?;
                Some(Reservation {
                    key: be64(d, 8)?,
                    scope: b21 >> 4,
                    pr_type: b21 & 0x0f,
                })
            }
            n => {
                return Err(Error::Protocol(format!(
                    "READ RESERVATION ADDITIONAL LENGTH {n} (0 or 16)"
                )))
            }
        };
        Ok(ReadReservation {
            generation,
            reservation,
        })
    }
}

/// REPORT CAPABILITIES parameter data (SPC-4 §6.15.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    pub length: u16,
    /// Replace Lost Reservation Capable.
    pub rlr_c: bool,
    /// Compatible Reservation Handling.
    pub crh: bool,
    /// Specify Initiator Ports Capable.
    pub sip_c: bool,
    /// All Target Ports Capable.
    pub atp_c: bool,
    /// Persist Through Power Loss Capable.
    pub ptpl_c: bool,
    /// Type Mask Valid.
    pub tmv: bool,
    /// ALLOW COMMANDS (3 bits).
    pub allow_commands: u8,
    /// Persist Through Power Loss Active.
    pub ptpl_a: bool,
    /// PERSISTENT RESERVATION TYPE MASK (bytes 4..6).
    pub type_mask: u16,
}

impl Capabilities {
    pub fn parse(d: &[u8]) -> Result<Capabilities> {
        let length = be16(d, 0)?;
        if length != 8 {
            return Err(Error::Protocol(format!(
                "REPORT CAPABILITIES LENGTH {length} (8)"
            )));
        }
        let (Some(&b2), Some(&b3)) = (d.get(2), d.get(3)) else {
            return Err(Error::Protocol("REPORT CAPABILITIES data cut".into()));
        };
        Ok(Capabilities {
            length,
            rlr_c: b2 & 0x80 != 0,
            crh: b2 & 0x10 != 0,
            sip_c: b2 & 0x08 != 0,
            atp_c: b2 & 0x04 != 0,
            ptpl_c: b2 & 0x01 != 0,
            tmv: b3 & 0x80 != 0,
            allow_commands: (b3 >> 4) & 0x07,
            ptpl_a: b3 & 0x01 != 0,
            type_mask: be16(d, 4)?,
        })
    }

    /// The type mask says `t` is supported.
    pub fn supports(&self, t: PrType) -> bool {
        self.type_mask & t.mask_bit() != 0
    }
}

/// One READ FULL STATUS descriptor (SPC-4 §6.15.5, Table 166).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FullStatusDescriptor {
    pub key: u64,
    pub all_tg_pt: bool,
    pub r_holder: bool,
    pub scope: u8,
    pub pr_type: u8,
    /// RELATIVE TARGET PORT IDENTIFIER (not meaningful with ALL_TG_PT).
    pub rtpi: u16,
    pub transport_id: TransportId,
}

/// READ FULL STATUS parameter data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FullStatus {
    pub generation: u32,
    pub additional_length: u32,
    pub descriptors: Vec<FullStatusDescriptor>,
}

impl FullStatus {
    /// Parse; every descriptor within ADDITIONAL LENGTH must be whole (use an allocation
    /// length that fits them all).
    pub fn parse(d: &[u8]) -> Result<FullStatus> {
        let generation = be32(d, 0)?;
        let additional_length = be32(d, 4)?;
        let end = 8usize.saturating_add(additional_length as usize);
        if d.len() < end {
            return Err(Error::Protocol(format!(
                "READ FULL STATUS: ADDITIONAL LENGTH {additional_length} but {} bytes",
                d.len()
            )));
        }
        let mut at = 8;
        let mut descriptors = Vec::new();
        while at < end {
            let desc = &d[at..end];
            let add = be32(desc, 20)? as usize;
            let tid_bytes = desc.get(24..24 + add).ok_or_else(|| {
                Error::Protocol(format!("READ FULL STATUS descriptor at {at} overruns"))
            })?;
            let (transport_id, used) = TransportId::parse(tid_bytes)?;
            if used != add {
                return Err(Error::Protocol(format!(
                    "descriptor at {at}: ADDITIONAL DESCRIPTOR LENGTH {add}, TransportID {used}"
                )));
            }
            descriptors.push(FullStatusDescriptor {
                key: be64(desc, 0)?,
                all_tg_pt: desc[12] & 0x02 != 0,
                r_holder: desc[12] & 0x01 != 0,
                scope: desc[13] >> 4,
                pr_type: desc[13] & 0x0f,
                rtpi: be16(desc, 18)?,
                transport_id,
            });
            at += 24 + add;
        }
        Ok(FullStatus {
            generation,
            additional_length,
            descriptors,
        })
    }

    /// The holders (R_HOLDER = 1).
    pub fn holders(&self) -> impl Iterator<Item = &FullStatusDescriptor> {
        self.descriptors.iter().filter(|d| d.r_holder)
    }
}

/// Allocation length of the parsed PR IN helpers: room for many registrations.
pub const PRIN_ALLOC: u16 = 0x4000;

const SIMPLE: u8 = task_attr::SIMPLE;

impl Session {
    /// PERSISTENT RESERVE OUT with a raw parameter list (PARAMETER LIST LENGTH = its length).
    pub async fn pr_out(
        &self,
        lun: u64,
        service_action: u8,
        pr_type: u8,
        params: Vec<u8>,
    ) -> Result<CommandResult> {
        let len = u32::try_from(params.len())
            .map_err(|_| Error::Invalid("parameter list longer than 4 GiB".into()))?;
        let cdb = prout_cdb(service_action, 0, pr_type, len);
        let data = (!params.is_empty()).then_some(params);
        self.command(lun, &cdb, data, 0, SIMPLE).await
    }

    /// PERSISTENT RESERVE IN returning the raw result.
    pub async fn pr_in(&self, lun: u64, service_action: u8, alloc: u16) -> Result<CommandResult> {
        self.command(
            lun,
            &prin_cdb(service_action, alloc),
            None,
            u32::from(alloc),
            SIMPLE,
        )
        .await
    }

    /// REGISTER: `old` must be the nexus' current key (0 if unregistered), `new` 0 unregisters.
    pub async fn pr_register(
        &self,
        lun: u64,
        old: u64,
        new: u64,
        flags: &RegisterFlags,
    ) -> Result<CommandResult> {
        let p = flags.params(old, new).encode();
        self.pr_out(lun, out_sa::REGISTER, 0, p).await
    }

    /// REGISTER AND IGNORE EXISTING KEY.
    pub async fn pr_register_ignore(
        &self,
        lun: u64,
        new: u64,
        flags: &RegisterFlags,
    ) -> Result<CommandResult> {
        let p = flags.params(0, new).encode();
        self.pr_out(lun, out_sa::REGISTER_AND_IGNORE_EXISTING_KEY, 0, p)
            .await
    }

    pub async fn pr_reserve(&self, lun: u64, key: u64, t: PrType) -> Result<CommandResult> {
        let p = ProutParams::keys(key, 0).encode();
        self.pr_out(lun, out_sa::RESERVE, t.code(), p).await
    }

    pub async fn pr_release(&self, lun: u64, key: u64, t: PrType) -> Result<CommandResult> {
        let p = ProutParams::keys(key, 0).encode();
        self.pr_out(lun, out_sa::RELEASE, t.code(), p).await
    }

    pub async fn pr_clear(&self, lun: u64, key: u64) -> Result<CommandResult> {
        let p = ProutParams::keys(key, 0).encode();
        self.pr_out(lun, out_sa::CLEAR, 0, p).await
    }

    /// PREEMPT the registrations with key `victim` (reserving with `t` if they held it).
    pub async fn pr_preempt(
        &self,
        lun: u64,
        key: u64,
        victim: u64,
        t: PrType,
    ) -> Result<CommandResult> {
        let p = ProutParams::keys(key, victim).encode();
        self.pr_out(lun, out_sa::PREEMPT, t.code(), p).await
    }

    /// PREEMPT AND ABORT: as PREEMPT, and the preempted nexuses' tasks are aborted.
    pub async fn pr_preempt_and_abort(
        &self,
        lun: u64,
        key: u64,
        victim: u64,
        t: PrType,
    ) -> Result<CommandResult> {
        let p = ProutParams::keys(key, victim).encode();
        self.pr_out(lun, out_sa::PREEMPT_AND_ABORT, t.code(), p)
            .await
    }

    /// REGISTER AND MOVE; the reservation keeps its type (the CDB TYPE is sent as `t`).
    pub async fn pr_register_and_move(
        &self,
        lun: u64,
        t: PrType,
        params: &RegisterAndMoveParams,
    ) -> Result<CommandResult> {
        self.pr_out(lun, out_sa::REGISTER_AND_MOVE, t.code(), params.encode())
            .await
    }

    /// REPLACE LOST RESERVATION (SPC-4 §5.13.11).
    pub async fn pr_replace_lost_reservation(
        &self,
        lun: u64,
        key: u64,
        t: PrType,
    ) -> Result<CommandResult> {
        let p = ProutParams::keys(key, 0).encode();
        self.pr_out(lun, out_sa::REPLACE_LOST_RESERVATION, t.code(), p)
            .await
    }

    /// READ KEYS, parsed; non-GOOD is an error.
    pub async fn pr_read_keys(&self, lun: u64) -> Result<ReadKeys> {
        let d = self
            .pr_in(lun, in_sa::READ_KEYS, PRIN_ALLOC)
            .await?
            .good()?;
        ReadKeys::parse(&d)
    }

    /// READ RESERVATION, parsed; non-GOOD is an error.
    pub async fn pr_read_reservation(&self, lun: u64) -> Result<ReadReservation> {
        let d = self
            .pr_in(lun, in_sa::READ_RESERVATION, PRIN_ALLOC)
            .await?
            .good()?;
        ReadReservation::parse(&d)
    }

    /// REPORT CAPABILITIES, parsed; non-GOOD is an error.
    pub async fn pr_report_capabilities(&self, lun: u64) -> Result<Capabilities> {
        let d = self
            .pr_in(lun, in_sa::REPORT_CAPABILITIES, PRIN_ALLOC)
            .await?
            .good()?;
        Capabilities::parse(&d)
    }

    /// READ FULL STATUS, parsed; non-GOOD is an error.
    pub async fn pr_read_full_status(&self, lun: u64) -> Result<FullStatus> {
        let d = self
            .pr_in(lun, in_sa::READ_FULL_STATUS, PRIN_ALLOC)
            .await?
            .good()?;
        FullStatus::parse(&d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISID: [u8; 6] = [0x80, 0x00, 0x49, 0x4c, 0x00, 0x0A];

    #[test]
    fn cdbs_are_spc4_layouts() {
        assert_eq!(
            prout_cdb(out_sa::PREEMPT_AND_ABORT, 0, 7, 0x0102_0304),
            [0x5f, 0x05, 0x07, 0, 0, 1, 2, 3, 4, 0]
        );
        // SCOPE in the high nibble, TYPE low; SA masked to 5 bits.
        assert_eq!(prout_cdb(0x21, 0xf, 3, 24)[1..3], [0x01, 0xf3]);
        assert_eq!(
            prin_cdb(in_sa::READ_FULL_STATUS, 0x1234),
            [0x5e, 0x03, 0, 0, 0, 0, 0, 0x12, 0x34, 0]
        );
    }

    #[test]
    fn basic_parameter_list_is_24_bytes() {
        let p = ProutParams {
            key: 0x0102_0304_0506_0708,
            sa_key: 0x1112_1314_1516_1718,
            spec_i_pt: false,
            all_tg_pt: true,
            aptpl: true,
            transport_ids: Vec::new(),
        };
        let mut want = vec![1, 2, 3, 4, 5, 6, 7, 8, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16];
        want.extend_from_slice(&[0x17, 0x18, 0, 0, 0, 0, 0x05, 0, 0, 0]);
        assert_eq!(p.encode(), want);
    }

    #[test]
    fn spec_i_pt_appends_length_and_transport_ids() {
        let t0 = TransportId::iscsi("iqn.x:a");
        let t1 = TransportId::iscsi_port("iqn.x:b", ISID);
        let p = ProutParams {
            key: 0,
            sa_key: 9,
            spec_i_pt: true,
            all_tg_pt: false,
            aptpl: false,
            transport_ids: vec![t0.clone(), t1.clone()],
        };
        let e = p.encode();
        assert_eq!(e[20], 0x08);
        let tids = [t0.encode(), t1.encode()].concat();
        assert_eq!(&e[24..28], &(tids.len() as u32).to_be_bytes());
        assert_eq!(&e[28..], &tids[..]);
        // A raw (malformed) TransportID goes in verbatim.
        let raw = p.encode_with(&[0x45, 0, 0, 3, b'a', b'b', 0]);
        assert_eq!(&raw[24..], &[0, 0, 0, 7, 0x45, 0, 0, 3, b'a', b'b', 0]);
    }

    #[test]
    fn iscsi_transport_ids_both_formats() {
        // Format 00b: "iqn.x:a" + NUL = 8 bytes, padded to the minimum of 20.
        let e = TransportId::iscsi("iqn.x:a").encode();
        assert_eq!(&e[..4], &[0x05, 0, 0, 20]);
        assert_eq!(&e[4..12], b"iqn.x:a\0");
        assert!(e[12..].iter().all(|&b| b == 0));
        assert_eq!(e.len(), 24);
        // Format 01b: name,i,0x<isid> NUL, padded to a multiple of 4.
        let name = "iqn.2026-11.org.example:host-one";
        let e = TransportId::iscsi_port(name, ISID).encode();
        let text = format!("{name},i,0x8000494c000a");
        let add = (text.len() + 1).next_multiple_of(4);
        assert_eq!(e[0], 0x45);
        assert_eq!(usize::from(u16::from_be_bytes([e[2], e[3]])), add);
        assert_eq!(&e[4..4 + text.len()], text.as_bytes());
        assert_eq!(e.len(), 4 + add);
        assert_eq!(
            TransportId::parse(&e).unwrap(),
            (TransportId::iscsi_port(name, ISID), e.len())
        );
        // Upper-case ISID digits parse too.
        let up = format!("{name},i,0x8000494C000A");
        let mut e2 = vec![0x45, 0, 0, 0];
        e2.extend_from_slice(up.as_bytes());
        e2.resize(4 + (up.len() + 1).next_multiple_of(4), 0);
        e2[3] = (e2.len() - 4) as u8;
        assert_eq!(
            TransportId::parse(&e2).unwrap().0,
            TransportId::iscsi_port(name, ISID)
        );
    }

    #[test]
    fn transport_id_parser_refuses_malformed() {
        let good = TransportId::iscsi("iqn.x:a").encode();
        let mut no_nul = good.clone();
        no_nul[4..].fill(b'a');
        let mut odd_len = good.clone();
        odd_len[3] = 19;
        let mut bad_fmt = good.clone();
        bad_fmt[0] = 0x85;
        let mut dirty_pad = good.clone();
        dirty_pad[23] = 1;
        let mut no_sep = good.clone();
        no_sep[0] = 0x45;
        for bad in [
            &no_nul,
            &odd_len,
            &bad_fmt,
            &dirty_pad,
            &no_sep,
            &good[..10],
        ] {
            assert!(TransportId::parse(bad).is_err(), "{bad:?}");
        }
        let fc = [0u8; 24];
        assert_eq!(TransportId::parse(&fc).unwrap().1, 24);
        assert!(TransportId::parse(&fc[..23]).is_err());
    }

    #[test]
    fn register_and_move_list() {
        let t = TransportId::iscsi_port("iqn.x:dst", ISID);
        let p = RegisterAndMoveParams {
            key: 1,
            sa_key: 2,
            unreg: true,
            aptpl: true,
            rtpi: 0x0203,
            transport_id: t.clone(),
        };
        let e = p.encode();
        let tid = t.encode();
        assert_eq!(&e[0..8], &1u64.to_be_bytes());
        assert_eq!(&e[8..16], &2u64.to_be_bytes());
        assert_eq!(&e[16..24], &[0, 0x03, 0x02, 0x03, 0, 0, 0, tid.len() as u8]);
        assert_eq!(&e[24..], &tid[..]);
        let p = RegisterAndMoveParams {
            unreg: false,
            aptpl: false,
            ..p
        };
        assert_eq!(p.encode()[17], 0);
    }

    #[test]
    fn read_keys_and_reservation_parse() {
        let mut d = vec![0, 0, 0, 7, 0, 0, 0, 24];
        for k in [1u64, 2, 3] {
            d.extend_from_slice(&k.to_be_bytes());
        }
        let rk = ReadKeys::parse(&d).unwrap();
        assert_eq!((rk.generation, rk.additional_length), (7, 24));
        assert_eq!(rk.keys, vec![1, 2, 3]);
        // Truncated by the allocation length: the count still says three.
        assert_eq!(ReadKeys::parse(&d[..16]).unwrap().keys, vec![1]);
        d[7] = 20;
        assert!(ReadKeys::parse(&d).is_err());

        let mut r = vec![0, 0, 1, 0, 0, 0, 0, 16];
        r.extend_from_slice(&0xabu64.to_be_bytes());
        r.extend_from_slice(&[0, 0, 0, 0, 0, 0x05, 0, 0]);
        let rr = ReadReservation::parse(&r).unwrap();
        assert_eq!(rr.generation, 256);
        assert_eq!(
            rr.reservation,
            Some(Reservation {
                key: 0xab,
                scope: 0,
                pr_type: 5
            })
        );
        assert_eq!(
            ReadReservation::parse(&[0, 0, 0, 1, 0, 0, 0, 0])
                .unwrap()
                .reservation,
            None
        );
        assert!(ReadReservation::parse(&[0, 0, 0, 1, 0, 0, 0, 8]).is_err());
    }

    #[test]
    fn capabilities_parse() {
        let d = [0, 8, 0x1d, 0x91, 0xea, 0x01, 0, 0];
        let c = Capabilities::parse(&d).unwrap();
        assert!(c.crh && c.sip_c && c.atp_c && c.ptpl_c && !c.rlr_c);
        assert!(c.tmv && c.ptpl_a);
        assert_eq!(c.allow_commands, 1);
        assert!(PrType::ALL.iter().all(|&t| c.supports(t)));
        let d = [0, 8, 0, 0, 0x02, 0x00, 0, 0];
        let c = Capabilities::parse(&d).unwrap();
        assert!(c.supports(PrType::WriteExclusive));
        assert!(!c.supports(PrType::ExclusiveAccessAllRegistrants));
        assert!(Capabilities::parse(&[0, 6, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn full_status_parse() {
        let t0 = TransportId::iscsi_port("iqn.x:a", ISID);
        let t1 = TransportId::iscsi("iqn.x:b");
        let mut body = Vec::new();
        for (key, flags, st, rtpi, t) in [(5u64, 0x01u8, 0x03u8, 2u16, &t0), (6, 0x02, 0, 0, &t1)] {
            let tid = t.encode();
            body.extend_from_slice(&key.to_be_bytes());
            body.extend_from_slice(&[0, 0, 0, 0, flags, st, 0, 0, 0, 0]);
            body.extend_from_slice(&rtpi.to_be_bytes());
            body.extend_from_slice(&(tid.len() as u32).to_be_bytes());
            body.extend_from_slice(&tid);
        }
        let mut d = vec![0, 0, 0, 9];
        d.extend_from_slice(&(body.len() as u32).to_be_bytes());
        d.extend_from_slice(&body);
        let fs = FullStatus::parse(&d).unwrap();
        assert_eq!(fs.generation, 9);
        assert_eq!(
            fs.descriptors,
            vec![
                FullStatusDescriptor {
                    key: 5,
                    all_tg_pt: false,
                    r_holder: true,
                    scope: 0,
                    pr_type: 3,
                    rtpi: 2,
                    transport_id: t0
                },
                FullStatusDescriptor {
                    key: 6,
                    all_tg_pt: true,
                    r_holder: false,
                    scope: 0,
                    pr_type: 0,
                    rtpi: 0,
                    transport_id: t1
                }
            ]
        );
        assert_eq!(fs.holders().count(), 1);
        // Cut short of its ADDITIONAL LENGTH, or a descriptor overrunning it: refused.
        assert!(FullStatus::parse(&d[..d.len() - 1]).is_err());
        let mut over = d.clone();
        over[7] -= 4;
        assert!(FullStatus::parse(&over[..over.len() - 4]).is_err());
    }

    #[test]
    fn types_and_codes() {
        for t in PrType::ALL {
            assert_eq!(PrType::from_code(t.code()), Some(t));
        }
        assert_eq!(PrType::from_code(2), None);
        assert_eq!(PrType::from_code(4), None);
        assert!(PrType::ExclusiveAccessAllRegistrants.all_registrants());
        assert!(PrType::ExclusiveAccessAllRegistrants.exclusive_access());
        assert!(!PrType::WriteExclusive.registrants_have_access());
        assert_eq!(isid_hex(ISID), "8000494c000a");
    }
}
