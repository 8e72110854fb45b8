//! A request of arbitrary bytes through the API's body, path and query extractors and its
//! request validation.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    orion_api::fuzzing::request(data);
});
