//! A request head of arbitrary bytes through the gateway's edge checks and header hygiene.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    orion_gateway::fuzzing::request_head(data);
});
