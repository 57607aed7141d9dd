//! Fuzzing harnesses that are more than a call: the whole-pipeline program interpreter
//! ([`pipeline`], with its tunnel mode in [`tunnel`]) and the frame builder and checksum
//! verifier it uses ([`wire`]). The
//! `fuzz_targets/` binaries call them; `cargo test` here replays the committed seeds.

#![forbid(unsafe_code)]

pub mod pipeline;
pub mod tunnel;
pub mod wire;
