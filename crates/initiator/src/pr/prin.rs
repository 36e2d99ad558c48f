//! PERSISTENT RESERVE IN (SPC-4 §6.15): the CDB (§6.15.1) and strict parsers of READ KEYS
//! (§6.15.2), READ RESERVATION (§6.15.3), REPORT CAPABILITIES (§6.15.4) and READ FULL STATUS
//! (§6.15.5).

use ironlun_scsi::cdb::PersistentReserveIn;

use super::transport_id::TransportId;
use super::{be16, be32, be64, PrType};
use crate::{Error, Result};

/// The PERSISTENT RESERVE IN CDB (SPC-4 §6.15.1).
pub fn prin_cdb(service_action: u8, alloc: u16) -> [u8; 10] {
    PersistentReserveIn {
        service_action,
        allocation_length: alloc,
    }
    .encode()
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
