//! Test data that the engine's own tests (crates/engine/tests) and the end-to-end tests through
//! the daemon (crates/ironlun/tests) both build, written once: the heartbeat blocks of the
//! COMPARE AND WRITE stress tests and the EXTENDED COPY descriptors that name an LU.

/// COMPARE AND WRITE heartbeats (SBC-3 §5.2): one block per value.
pub mod heartbeat {
    /// The block for value `v`: a marker byte whose position depends on `v`, and `v` in the last
    /// 8 bytes, so two values first differ at varying offsets (MISCOMPARE's INFORMATION must
    /// report exactly that offset).
    pub fn beat(v: u64, block_size: usize) -> Vec<u8> {
        let mut b = vec![0u8; block_size];
        b[(v as usize * 97) % (block_size - 8)] = 1;
        b[block_size - 8..].copy_from_slice(&v.to_be_bytes());
        b
    }

    /// The value a heartbeat block carries (its last 8 bytes; 0 for a block under 8 bytes).
    pub fn value(b: &[u8]) -> u64 {
        b.len()
            .checked_sub(8)
            .and_then(|at| b.get(at..))
            .and_then(|t| <[u8; 8]>::try_from(t).ok())
            .map_or(0, u64::from_be_bytes)
    }

    /// Offset of the first byte where `a` and `b` differ.
    pub fn first_diff(a: &[u8], b: &[u8]) -> Option<u64> {
        a.iter().zip(b).position(|(x, y)| x != y).map(|i| i as u64)
    }
}

/// EXTENDED COPY (SPC-4 §6.4) descriptors that name an LU by its NAA designator.
pub mod xcopy {
    /// The NAA designator (association LU, binary) of Device Identification VPD page data
    /// (SPC-4 §7.8.6), header included, as an identification target descriptor carries it.
    pub fn naa_designator(vpd83: &[u8]) -> Option<Vec<u8>> {
        let mut at = 4;
        while at + 4 <= vpd83.len() {
            let len = usize::from(vpd83[at + 3]);
            if vpd83[at + 1] & 0x3F == 0x03 && vpd83[at] & 0x0F == 1 {
                return vpd83.get(at..at + 4 + len).map(<[u8]>::to_vec);
            }
            at += 4 + len;
        }
        None
    }

    /// An identification descriptor target descriptor (E4h, SPC-4 §6.4.5.3) for `designator`
    /// with the LU's block size in its device type specific parameters.
    pub fn target_desc(designator: &[u8], block_size: u32) -> Vec<u8> {
        let mut t = vec![0u8; 32];
        t[0] = 0xE4;
        let n = designator.len().min(28);
        t[4..4 + n].copy_from_slice(&designator[..n]);
        t[29..32].copy_from_slice(&block_size.to_be_bytes()[1..]);
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeats_carry_their_value_and_differ_where_the_marker_moves() {
        let (a, b) = (heartbeat::beat(1, 512), heartbeat::beat(2, 512));
        assert_eq!((heartbeat::value(&a), heartbeat::value(&b)), (1, 2));
        assert_eq!(heartbeat::first_diff(&a, &b), Some(97));
        assert_eq!(heartbeat::first_diff(&a, &a), None);
    }

    #[test]
    fn the_naa_designator_is_found_among_others() {
        // Header, a T10 vendor id designator (type 1), then NAA (type 3, binary).
        let mut d = vec![0, 0x83, 0, 0, 0x02, 0x01, 0, 4, b'a', b'b', b'c', b'd'];
        d.extend_from_slice(&[0x01, 0x03, 0, 2, 0x6f, 0x01]);
        assert_eq!(
            xcopy::naa_designator(&d),
            Some(vec![0x01, 0x03, 0, 2, 0x6f, 0x01])
        );
        assert_eq!(xcopy::naa_designator(&d[..12]), None);
        let t = xcopy::target_desc(&[0x01, 0x03, 0, 2, 0x6f, 0x01], 4096);
        assert_eq!(
            (t[0], &t[4..10], &t[29..32]),
            (0xE4, &[1, 3, 0, 2, 0x6f, 1][..], &[0, 0x10, 0][..])
        );
    }
}
