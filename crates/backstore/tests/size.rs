//! parse_size: the CLI's human sizes.
use ironlun_backstore::parse_size;

#[test]
fn plain_numbers_are_bytes() {
    assert_eq!(parse_size("4096"), Ok(4096));
    assert_eq!(parse_size(" 512 "), Ok(512));
    assert_eq!(parse_size("4096B"), Ok(4096));
}

#[test]
fn suffixes_are_powers_of_1024_in_any_spelling() {
    assert_eq!(parse_size("1k"), Ok(1024));
    assert_eq!(parse_size("1K"), Ok(1024));
    assert_eq!(parse_size("512M"), Ok(512 << 20));
    assert_eq!(parse_size("1G"), Ok(1 << 30));
    assert_eq!(parse_size("10GiB"), Ok(10 << 30));
    assert_eq!(parse_size("2gb"), Ok(2 << 30));
    assert_eq!(parse_size("3T"), Ok(3 << 40));
    assert_eq!(parse_size("1P"), Ok(1 << 50));
    assert_eq!(parse_size("8 MiB"), Ok(8 << 20));
}

#[test]
fn malformed_sizes_are_errors() {
    for bad in ["", "G", "-1", "1.5G", "1X", "12Q", "1GG", "0x10", "１G"] {
        let err = parse_size(bad).expect_err(bad);
        assert!(err.contains("invalid size"), "{bad}: {err}");
    }
}

#[test]
fn overflow_is_an_error() {
    assert!(parse_size("18446744073709551616").is_err());
    assert!(parse_size("16384P").is_err());
    assert_eq!(parse_size("16383P"), Ok(16383 << 50));
}
