//! Header views over byte buffers (filled in by the packet-layer issue).
