//! Sense data (SPC-4 §4.5): sense keys, additional sense codes, and the [`Sense`] value with
//! its fixed-format (§4.5.3, response code 70h/71h) and descriptor-format (§4.5.2, 72h/73h)
//! encodings and a parser for both.

use thiserror::Error;

/// Sense keys (SPC-4 §4.5.6 table 27).
pub mod key {
    pub const NO_SENSE: u8 = 0x0;
    pub const RECOVERED_ERROR: u8 = 0x1;
    pub const NOT_READY: u8 = 0x2;
    pub const MEDIUM_ERROR: u8 = 0x3;
    pub const HARDWARE_ERROR: u8 = 0x4;
    pub const ILLEGAL_REQUEST: u8 = 0x5;
    pub const UNIT_ATTENTION: u8 = 0x6;
    pub const DATA_PROTECT: u8 = 0x7;
    pub const BLANK_CHECK: u8 = 0x8;
    pub const COPY_ABORTED: u8 = 0xA;
    pub const ABORTED_COMMAND: u8 = 0xB;
    pub const VOLUME_OVERFLOW: u8 = 0xD;
    pub const MISCOMPARE: u8 = 0xE;
}

/// An additional sense code and qualifier pair (ASC, ASCQ).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Asc {
    pub asc: u8,
    pub ascq: u8,
}

impl Asc {
    pub const fn new(asc: u8, ascq: u8) -> Asc {
        Asc { asc, ascq }
    }
}

/// Additional sense codes used by the target and understood by the initiator
/// (SPC-4 Annex D.2 table D.1).
pub mod asc {
    use super::Asc;
    pub const NO_ADDITIONAL_SENSE: Asc = Asc::new(0x00, 0x00);
    pub const OPERATION_IN_PROGRESS: Asc = Asc::new(0x00, 0x16);
    pub const LOGICAL_UNIT_NOT_READY: Asc = Asc::new(0x04, 0x00);
    /// LOGICAL UNIT NOT READY, INITIALIZING COMMAND REQUIRED (a stopped LU: START STOP UNIT).
    pub const NOT_READY_INITIALIZING_COMMAND_REQUIRED: Asc = Asc::new(0x04, 0x02);
    pub const NOT_READY_ASYMMETRIC_ACCESS_STATE_TRANSITION: Asc = Asc::new(0x04, 0x0A);
    pub const NOT_READY_TARGET_PORT_IN_STANDBY_STATE: Asc = Asc::new(0x04, 0x0B);
    pub const NOT_READY_TARGET_PORT_IN_UNAVAILABLE_STATE: Asc = Asc::new(0x04, 0x0C);
    pub const NOT_READY_OFFLINE: Asc = Asc::new(0x04, 0x12);
    pub const NOT_READY_SANITIZE_IN_PROGRESS: Asc = Asc::new(0x04, 0x1B);
    pub const COPY_TARGET_DEVICE_NOT_REACHABLE: Asc = Asc::new(0x0D, 0x02);
    pub const INCORRECT_COPY_TARGET_DEVICE_TYPE: Asc = Asc::new(0x0D, 0x03);
    pub const LOGICAL_UNIT_COMMUNICATION_FAILURE: Asc = Asc::new(0x08, 0x00);
    pub const WRITE_ERROR: Asc = Asc::new(0x0C, 0x00);
    pub const INVALID_FIELD_IN_COMMAND_INFORMATION_UNIT: Asc = Asc::new(0x0E, 0x03);
    pub const UNRECOVERED_READ_ERROR: Asc = Asc::new(0x11, 0x00);
    pub const PARAMETER_LIST_LENGTH_ERROR: Asc = Asc::new(0x1A, 0x00);
    pub const MISCOMPARE_DURING_VERIFY_OPERATION: Asc = Asc::new(0x1D, 0x00);
    pub const INVALID_COMMAND_OPERATION_CODE: Asc = Asc::new(0x20, 0x00);
    pub const LOGICAL_BLOCK_ADDRESS_OUT_OF_RANGE: Asc = Asc::new(0x21, 0x00);
    pub const INVALID_FIELD_IN_CDB: Asc = Asc::new(0x24, 0x00);
    pub const LOGICAL_UNIT_NOT_SUPPORTED: Asc = Asc::new(0x25, 0x00);
    pub const INVALID_FIELD_IN_PARAMETER_LIST: Asc = Asc::new(0x26, 0x00);
    pub const INVALID_RELEASE_OF_PERSISTENT_RESERVATION: Asc = Asc::new(0x26, 0x04);
    pub const TOO_MANY_TARGET_DESCRIPTORS: Asc = Asc::new(0x26, 0x06);
    pub const UNSUPPORTED_TARGET_DESCRIPTOR_TYPE_CODE: Asc = Asc::new(0x26, 0x07);
    pub const TOO_MANY_SEGMENT_DESCRIPTORS: Asc = Asc::new(0x26, 0x08);
    pub const UNSUPPORTED_SEGMENT_DESCRIPTOR_TYPE_CODE: Asc = Asc::new(0x26, 0x09);
    pub const INLINE_DATA_LENGTH_EXCEEDED: Asc = Asc::new(0x26, 0x0B);
    pub const WRITE_PROTECTED: Asc = Asc::new(0x27, 0x00);
    pub const SOFTWARE_WRITE_PROTECTED: Asc = Asc::new(0x27, 0x02);
    pub const POWER_ON_RESET_OR_BUS_DEVICE_RESET_OCCURRED: Asc = Asc::new(0x29, 0x00);
    pub const POWER_ON_OCCURRED: Asc = Asc::new(0x29, 0x01);
    pub const SCSI_BUS_RESET_OCCURRED: Asc = Asc::new(0x29, 0x02);
    pub const BUS_DEVICE_RESET_FUNCTION_OCCURRED: Asc = Asc::new(0x29, 0x03);
    pub const I_T_NEXUS_LOSS_OCCURRED: Asc = Asc::new(0x29, 0x07);
    pub const PARAMETERS_CHANGED: Asc = Asc::new(0x2A, 0x00);
    pub const MODE_PARAMETERS_CHANGED: Asc = Asc::new(0x2A, 0x01);
    pub const RESERVATIONS_PREEMPTED: Asc = Asc::new(0x2A, 0x03);
    pub const RESERVATIONS_RELEASED: Asc = Asc::new(0x2A, 0x04);
    pub const REGISTRATIONS_PREEMPTED: Asc = Asc::new(0x2A, 0x05);
    pub const ASYMMETRIC_ACCESS_STATE_CHANGED: Asc = Asc::new(0x2A, 0x06);
    pub const CAPACITY_DATA_HAS_CHANGED: Asc = Asc::new(0x2A, 0x09);
    /// NOT READY TO READY CHANGE, MEDIUM MAY HAVE CHANGED.
    pub const MEDIUM_MAY_HAVE_CHANGED: Asc = Asc::new(0x28, 0x00);
    pub const PREVIOUS_TASK_SET_FULL_STATUS: Asc = Asc::new(0x2C, 0x08);
    pub const PREVIOUS_RESERVATION_CONFLICT_STATUS: Asc = Asc::new(0x2C, 0x09);
    pub const COMMANDS_CLEARED_BY_ANOTHER_INITIATOR: Asc = Asc::new(0x2F, 0x00);
    pub const SAVING_PARAMETERS_NOT_SUPPORTED: Asc = Asc::new(0x39, 0x00);
    pub const MEDIUM_NOT_PRESENT: Asc = Asc::new(0x3A, 0x00);
    pub const INQUIRY_DATA_HAS_CHANGED: Asc = Asc::new(0x3F, 0x03);
    pub const REPORTED_LUNS_DATA_HAS_CHANGED: Asc = Asc::new(0x3F, 0x0E);
    pub const SANITIZE_COMMAND_FAILED: Asc = Asc::new(0x31, 0x03);
    pub const INTERNAL_TARGET_FAILURE: Asc = Asc::new(0x44, 0x00);
    pub const MEDIUM_REMOVAL_PREVENTED: Asc = Asc::new(0x53, 0x02);
    pub const INSUFFICIENT_RESOURCES: Asc = Asc::new(0x55, 0x03);
    pub const INSUFFICIENT_REGISTRATION_RESOURCES: Asc = Asc::new(0x55, 0x04);
}

/// The sense-key-specific field pointer (SPC-4 §4.5.2.4.2): which CDB byte (C/D = 1) or
/// parameter-list byte (C/D = 0), and optionally which bit, is in error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldPointer {
    /// true: the error is in the CDB; false: in the parameter list (Data-Out).
    pub cd: bool,
    /// Bit 0..=7 within the byte (BPV = 1), the left-most bit of a multi-bit field.
    pub bit: Option<u8>,
    /// Byte index.
    pub field: u16,
}

impl FieldPointer {
    pub fn cdb(field: u16, bit: Option<u8>) -> FieldPointer {
        FieldPointer {
            cd: true,
            bit,
            field,
        }
    }

    pub fn param(field: u16, bit: Option<u8>) -> FieldPointer {
        FieldPointer {
            cd: false,
            bit,
            field,
        }
    }

    /// The 3 sense-key-specific bytes with SKSV set.
    pub fn encode(&self) -> [u8; 3] {
        let mut b0 = 0x80;
        if self.cd {
            b0 |= 0x40;
        }
        if let Some(bit) = self.bit {
            b0 |= 0x08 | (bit & 0x07);
        }
        let [hi, lo] = self.field.to_be_bytes();
        [b0, hi, lo]
    }

    fn decode(b: [u8; 3]) -> FieldPointer {
        FieldPointer {
            cd: b[0] & 0x40 != 0,
            bit: (b[0] & 0x08 != 0).then_some(b[0] & 0x07),
            field: u16::from_be_bytes([b[1], b[2]]),
        }
    }
}

/// One sense datum: what went wrong with a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sense {
    /// Sense key ([`key`]).
    pub key: u8,
    pub asc: Asc,
    /// INFORMATION field (e.g. the byte offset of a miscompare).
    pub information: Option<u64>,
    /// Sense-key-specific field pointer (ILLEGAL REQUEST only).
    pub field_pointer: Option<FieldPointer>,
    /// Deferred error (response code 71h / 73h) rather than current.
    pub deferred: bool,
}

/// Length of fixed-format sense data we produce (SPC-4 §4.5.3: 18 bytes with SKS).
pub const FIXED_LEN: usize = 18;

impl Sense {
    pub const fn new(key: u8, asc: Asc) -> Sense {
        Sense {
            key,
            asc,
            information: None,
            field_pointer: None,
            deferred: false,
        }
    }

    /// ILLEGAL REQUEST / INVALID FIELD IN CDB pointing at `byte` (and `bit`) of the CDB.
    pub fn invalid_cdb_field(byte: u16, bit: Option<u8>) -> Sense {
        Sense::new(key::ILLEGAL_REQUEST, asc::INVALID_FIELD_IN_CDB)
            .with_field_pointer(FieldPointer::cdb(byte, bit))
    }

    /// ILLEGAL REQUEST / INVALID FIELD IN CDB pointing at a CDB field: its byte and most
    /// significant bit.
    pub fn invalid_cdb(f: crate::cdb::Field) -> Sense {
        Sense::invalid_cdb_field(f.byte, Some(f.bit))
    }

    /// ILLEGAL REQUEST / INVALID FIELD IN PARAMETER LIST pointing at `byte` of the data-out.
    pub fn invalid_param_field(byte: u16, bit: Option<u8>) -> Sense {
        Sense::new(key::ILLEGAL_REQUEST, asc::INVALID_FIELD_IN_PARAMETER_LIST)
            .with_field_pointer(FieldPointer::param(byte, bit))
    }

    pub fn illegal(asc: Asc) -> Sense {
        Sense::new(key::ILLEGAL_REQUEST, asc)
    }

    pub fn unit_attention(asc: Asc) -> Sense {
        Sense::new(key::UNIT_ATTENTION, asc)
    }

    pub fn not_ready(asc: Asc) -> Sense {
        Sense::new(key::NOT_READY, asc)
    }

    pub fn hardware_error(asc: Asc) -> Sense {
        Sense::new(key::HARDWARE_ERROR, asc)
    }

    pub fn medium_error(asc: Asc) -> Sense {
        Sense::new(key::MEDIUM_ERROR, asc)
    }

    pub fn data_protect(asc: Asc) -> Sense {
        Sense::new(key::DATA_PROTECT, asc)
    }

    pub fn aborted_command(asc: Asc) -> Sense {
        Sense::new(key::ABORTED_COMMAND, asc)
    }

    pub fn copy_aborted(asc: Asc) -> Sense {
        Sense::new(key::COPY_ABORTED, asc)
    }

    pub fn miscompare(asc: Asc) -> Sense {
        Sense::new(key::MISCOMPARE, asc)
    }

    /// NO SENSE / NO ADDITIONAL SENSE INFORMATION: what REQUEST SENSE returns when nothing is
    /// pending.
    pub fn no_sense() -> Sense {
        Sense::new(key::NO_SENSE, asc::NO_ADDITIONAL_SENSE)
    }

    pub fn with_information(mut self, info: u64) -> Sense {
        self.information = Some(info);
        self
    }

    /// PROGRESS INDICATION (SPC-4 §4.5.2.4.4, e.g. SANITIZE IN PROGRESS): SKSV=1 and the
    /// fraction done × 65536 in the two bytes after it. That is the field-pointer layout with
    /// C/D=0 and no bit pointer, so it travels (and parses back) as one.
    pub fn with_progress(self, progress: u16) -> Sense {
        self.with_field_pointer(FieldPointer::param(progress, None))
    }

    pub fn with_field_pointer(mut self, fp: FieldPointer) -> Sense {
        self.field_pointer = Some(fp);
        self
    }

    /// Encode in the format selected by the control mode page D_SENSE bit.
    pub fn encode(&self, descriptor: bool) -> Vec<u8> {
        if descriptor {
            self.encode_descriptor()
        } else {
            self.encode_fixed()
        }
    }

    /// Fixed format, 18 bytes. An INFORMATION value wider than 32 bits cannot be represented
    /// and is left out (VALID = 0), as SPC-4 §4.5.3 requires.
    pub fn encode_fixed(&self) -> Vec<u8> {
        let mut out = vec![0u8; FIXED_LEN];
        out[0] = if self.deferred { 0x71 } else { 0x70 };
        if let Some(info) = self.information.and_then(|i| u32::try_from(i).ok()) {
            out[0] |= 0x80;
            out[3..7].copy_from_slice(&info.to_be_bytes());
        }
        out[2] = self.key & 0x0F;
        out[7] = (FIXED_LEN - 8) as u8;
        out[12] = self.asc.asc;
        out[13] = self.asc.ascq;
        if let Some(fp) = self.field_pointer {
            out[15..18].copy_from_slice(&fp.encode());
        }
        out
    }

    /// Descriptor format: header plus an information descriptor (§4.5.2.2) and a
    /// sense-key-specific descriptor (§4.5.2.4) when present.
    pub fn encode_descriptor(&self) -> Vec<u8> {
        let mut out = vec![0u8; 8];
        out[0] = if self.deferred { 0x73 } else { 0x72 };
        out[1] = self.key & 0x0F;
        out[2] = self.asc.asc;
        out[3] = self.asc.ascq;
        if let Some(info) = self.information {
            out.extend_from_slice(&[0x00, 0x0A, 0x80, 0x00]);
            out.extend_from_slice(&info.to_be_bytes());
        }
        if let Some(fp) = self.field_pointer {
            out.extend_from_slice(&[0x02, 0x06, 0x00, 0x00]);
            out.extend_from_slice(&fp.encode());
            out.push(0);
        }
        out[7] = (out.len() - 8) as u8;
        out
    }

    /// Parse fixed or descriptor format sense data (as found after the 2-byte SENSE LENGTH
    /// in an iSCSI SCSI Response data segment).
    pub fn parse(b: &[u8]) -> Result<Sense, SenseParseError> {
        let code = *b.first().ok_or(SenseParseError::Empty)? & 0x7F;
        match code {
            0x70 | 0x71 => Self::parse_fixed(b, code == 0x71),
            0x72 | 0x73 => Self::parse_descriptor(b, code == 0x73),
            other => Err(SenseParseError::ResponseCode(other)),
        }
    }

    fn parse_fixed(b: &[u8], deferred: bool) -> Result<Sense, SenseParseError> {
        if b.len() < 8 {
            return Err(SenseParseError::Truncated);
        }
        let end = (8 + usize::from(b[7])).min(b.len());
        let get = |i: usize| if i < end { b[i] } else { 0 };
        let key = b[2] & 0x0F;
        let information =
            (b[0] & 0x80 != 0).then(|| u64::from(u32::from_be_bytes([b[3], b[4], b[5], b[6]])));
        let sks = [get(15), get(16), get(17)];
        Ok(Sense {
            key,
            asc: Asc::new(get(12), get(13)),
            information,
            field_pointer: Self::sks_field_pointer(key, sks),
            deferred,
        })
    }

    fn parse_descriptor(b: &[u8], deferred: bool) -> Result<Sense, SenseParseError> {
        if b.len() < 8 {
            return Err(SenseParseError::Truncated);
        }
        let end = (8 + usize::from(b[7])).min(b.len());
        let mut sense = Sense {
            key: b[1] & 0x0F,
            asc: Asc::new(b[2], b[3]),
            information: None,
            field_pointer: None,
            deferred,
        };
        let mut at = 8;
        while at + 2 <= end {
            let kind = b[at];
            let len = usize::from(b[at + 1]);
            let body = b
                .get(at + 2..at + 2 + len)
                .ok_or(SenseParseError::Truncated)?;
            match kind {
                0x00 if len >= 10 && body[0] & 0x80 != 0 => {
                    let mut v = [0u8; 8];
                    v.copy_from_slice(&body[2..10]);
                    sense.information = Some(u64::from_be_bytes(v));
                }
                0x02 if len >= 5 => {
                    sense.field_pointer =
                        Self::sks_field_pointer(sense.key, [body[2], body[3], body[4]]);
                }
                _ => {}
            }
            at += 2 + len;
        }
        Ok(sense)
    }

    fn sks_field_pointer(key: u8, sks: [u8; 3]) -> Option<FieldPointer> {
        (key == key::ILLEGAL_REQUEST && sks[0] & 0x80 != 0).then(|| FieldPointer::decode(sks))
    }
}

impl std::fmt::Display for Sense {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:02x}/{:02x}/{:02x}",
            self.key, self.asc.asc, self.asc.ascq
        )?;
        if let Some(info) = self.information {
            write!(f, " info={info:#x}")?;
        }
        if let Some(fp) = self.field_pointer {
            write!(f, " {}[{}]", if fp.cd { "cdb" } else { "param" }, fp.field)?;
            if let Some(bit) = fp.bit {
                write!(f, ".{bit}")?;
            }
        }
        Ok(())
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SenseParseError {
    #[error("empty sense data")]
    Empty,
    #[error("sense data truncated")]
    Truncated,
    #[error("unknown sense response code {0:#04x}")]
    ResponseCode(u8),
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fixed_layout_matches_spc4_table_48() {
        let s = Sense::invalid_cdb_field(2, Some(7));
        let b = s.encode_fixed();
        assert_eq!(b.len(), 18);
        assert_eq!(b[0], 0x70);
        assert_eq!(b[2], 0x05);
        assert_eq!(b[7], 10);
        assert_eq!((b[12], b[13]), (0x24, 0x00));
        assert_eq!(&b[15..18], &[0x80 | 0x40 | 0x08 | 7, 0, 2]);
    }

    #[test]
    fn descriptor_layout_has_information_and_sks() {
        let s = Sense::new(key::MISCOMPARE, asc::MISCOMPARE_DURING_VERIFY_OPERATION)
            .with_information(0x1_0000_0000);
        let b = s.encode_descriptor();
        assert_eq!(&b[..4], &[0x72, 0x0E, 0x1D, 0x00]);
        assert_eq!(b[7] as usize, b.len() - 8);
        assert_eq!(&b[8..12], &[0x00, 0x0A, 0x80, 0x00]);
        assert_eq!(Sense::parse(&b), Ok(s));
    }

    #[test]
    fn fixed_drops_information_wider_than_32_bits() {
        let s = Sense::new(key::MISCOMPARE, asc::MISCOMPARE_DURING_VERIFY_OPERATION)
            .with_information(1 << 40);
        let b = s.encode_fixed();
        assert_eq!(b[0] & 0x80, 0);
        assert_eq!(Sense::parse(&b).map(|p| p.information), Ok(None));
    }

    #[test]
    fn parser_rejects_garbage() {
        assert_eq!(Sense::parse(&[]), Err(SenseParseError::Empty));
        assert_eq!(Sense::parse(&[0x70, 0]), Err(SenseParseError::Truncated));
        assert_eq!(
            Sense::parse(&[0x10; 20]),
            Err(SenseParseError::ResponseCode(0x10))
        );
        assert_eq!(
            Sense::parse(&[0x72, 5, 0x24, 0, 0, 0, 0, 4, 0x02, 9]),
            Err(SenseParseError::Truncated)
        );
    }

    fn arb_sense(max_info: u64) -> impl Strategy<Value = Sense> {
        (
            0u8..16,
            any::<u8>(),
            any::<u8>(),
            proptest::option::of(0..=max_info),
            proptest::option::of((any::<bool>(), proptest::option::of(0u8..8), any::<u16>())),
            any::<bool>(),
        )
            .prop_map(|(key, a, q, information, fp, deferred)| Sense {
                key,
                asc: Asc::new(a, q),
                information,
                // Field pointers are only defined for ILLEGAL REQUEST.
                field_pointer: fp
                    .filter(|_| key == key::ILLEGAL_REQUEST)
                    .map(|(cd, bit, field)| FieldPointer { cd, bit, field }),
                deferred,
            })
    }

    proptest! {
        #[test]
        fn fixed_round_trips(s in arb_sense(u64::from(u32::MAX))) {
            prop_assert_eq!(Sense::parse(&s.encode_fixed()), Ok(s));
        }

        #[test]
        fn descriptor_round_trips(s in arb_sense(u64::MAX)) {
            prop_assert_eq!(Sense::parse(&s.encode_descriptor()), Ok(s));
        }

        #[test]
        fn parser_never_panics(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Sense::parse(&b);
        }
    }
}
