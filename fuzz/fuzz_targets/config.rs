//! Fuzz target `config`: see `ironlun_fuzzkit::config` for the input format and the properties.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ironlun_fuzzkit::config::run(data));
