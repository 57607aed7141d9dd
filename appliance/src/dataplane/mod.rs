//! DPDK ports, worker loop, tx buffering: the only DPDK user.
