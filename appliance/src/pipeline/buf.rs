//! What the pipeline needs of a packet buffer: its bytes, writable, and a length it may
//! change (a reply can be longer than the packet it answers).

/// A packet buffer: a DPDK mbuf in the data path, a `Vec` in tests.
pub trait PacketBuf {
    /// The frame, from the Ethernet header on.
    fn bytes(&self) -> &[u8];
    /// The frame, writable.
    fn bytes_mut(&mut self) -> &mut [u8];
    /// Sets the frame length, growing or shrinking it; false if the buffer cannot hold `len`
    /// bytes (the contents are then unchanged).
    fn set_len(&mut self, len: usize) -> bool;
}

/// A heap buffer with a fixed capacity, like an mbuf's data room: for tests, fuzzing and
/// `explain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VecBuf {
    data: Vec<u8>,
    len: usize,
}

impl VecBuf {
    /// Capacity of every `VecBuf`, as a default mbuf's data room.
    pub const CAPACITY: usize = 2048;

    /// A buffer holding `frame` (truncated to the capacity).
    pub fn new(frame: &[u8]) -> Self {
        let mut data = vec![0u8; Self::CAPACITY];
        let len = frame.len().min(Self::CAPACITY);
        data[..len].copy_from_slice(&frame[..len]);
        VecBuf { data, len }
    }
}

// Inlined, as the mbuf's are: the fast path and its benches pay what a worker pays.
impl PacketBuf for VecBuf {
    #[inline]
    fn bytes(&self) -> &[u8] {
        &self.data[..self.len]
    }

    #[inline]
    fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.data[..self.len]
    }

    fn set_len(&mut self, len: usize) -> bool {
        if len > self.data.len() {
            return false;
        }
        self.len = len;
        true
    }
}
