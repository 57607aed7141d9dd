//! Reads the `runs.csv` that `benches/compare.sh` writes (one line per run) and draws it: for
//! each flow count, one bar per device under test with the median over repetitions and a
//! min-max whisker, sink Mpps above and cycles per packet below.
#![deny(unsafe_code)]

pub mod chart;
pub mod runs;
