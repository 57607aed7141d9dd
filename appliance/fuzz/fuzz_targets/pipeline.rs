//! The whole pipeline: the input is a program of bursts from either port, clock steps, expiry
//! ticks and policy reloads, run on one or two shards with a fixed two-arm policy
//! (`appliance_fuzz::pipeline` documents the format and the invariants checked).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    appliance_fuzz::pipeline::run(data);
});
