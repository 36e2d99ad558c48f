//! Fuzz target `pdu`: see `ironlun_fuzzkit::pdu` for the input format and the properties.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ironlun_fuzzkit::pdu::run(data));
