//! DPDK 22.11 bindings and a thin safe layer.
