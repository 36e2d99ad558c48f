//! Fuzz target `login`: see `ironlun_fuzzkit::login` for the input format and the properties.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ironlun_fuzzkit::login::run(data));
