//! Fuzz target `engine`: see `ironlun_fuzzkit::engine` for the input format and the properties.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ironlun_fuzzkit::engine::run(data));
