//! Network address translation: public port slices and allocation, rewrites, ICMP errors.

pub mod ports;
