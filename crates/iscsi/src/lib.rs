//! Pure iSCSI encodings (RFC 7143). No I/O.
