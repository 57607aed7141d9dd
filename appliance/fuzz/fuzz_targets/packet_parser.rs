//! Every packet-layer parser, accessor, rewrite and builder over arbitrary bytes
//! (`appliance::packet::exercise`): no panic, and no valid checksum made invalid.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    appliance::packet::exercise::exercise(data);
});
