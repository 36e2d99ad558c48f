//! Fuzz target `control`: see `ironlun_fuzzkit::control` for the input format and the properties.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ironlun_fuzzkit::control::run(data));
