//! Why a packet was refused: one variant per drop reason.
//!
//! The data path counts drops per reason without allocating, so the error is a small `Copy`
//! enum whose variants map one-to-one to counter names ([`Error::name`]) and to counter slots
//! ([`Error::index`] into [`Error::ALL`]).

use core::fmt;

macro_rules! drop_reasons {
    ($( $(#[$doc:meta])* $variant:ident => $name:literal, )+) => {
        /// A packet-layer failure; each variant is a named drop reason with its own counter.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Error {
            $( $(#[$doc])* $variant, )+
        }

        impl Error {
            /// Every variant, in counter order: `Error::ALL[e.index()] == e`.
            pub const ALL: &'static [Error] = &[ $( Error::$variant, )+ ];

            /// Number of variants, to size a counter array.
            pub const COUNT: usize = Error::ALL.len();

            /// The snake_case drop-reason name used for counters and logs.
            pub const fn name(self) -> &'static str {
                match self {
                    $( Error::$variant => $name, )+
                }
            }
        }
    };
}

drop_reasons! {
    /// Frame shorter than the 14-byte Ethernet II header.
    EthernetTruncated => "ethernet_truncated",
    /// An 802.1Q/802.1ad tag announced by its TPID does not fit in the frame.
    VlanTruncated => "vlan_truncated",
    /// More than two VLAN tags (only single tags and QinQ are carried).
    VlanTooManyTags => "vlan_too_many_tags",
    /// ARP packet shorter than the 28 bytes of Ethernet/IPv4 ARP.
    ArpTruncated => "arp_truncated",
    /// ARP for something other than IPv4 over Ethernet (hardware/protocol type or lengths).
    ArpUnsupported => "arp_unsupported",
    /// Buffer shorter than the IPv4 header, or than the total length the header claims
    /// (RFC 1812 section 5.2.2, first and fourth checks).
    Ipv4Truncated => "ipv4_truncated",
    /// IPv4 version field is not 4 (RFC 1812 section 5.2.2).
    Ipv4BadVersion => "ipv4_bad_version",
    /// IHL below 5 words (RFC 1812 section 5.2.2).
    Ipv4BadHeaderLen => "ipv4_bad_header_len",
    /// Total length smaller than the header length (RFC 1812 section 5.2.2).
    Ipv4BadTotalLen => "ipv4_bad_total_len",
    /// IPv4 header checksum does not verify (RFC 1812 section 5.2.2).
    Ipv4BadChecksum => "ipv4_bad_checksum",
    /// An IPv4 option runs past the header or has a length below 2 (RFC 791 section 3.1).
    Ipv4BadOption => "ipv4_bad_option",
    /// TTL would reach 0 when forwarding (RFC 1812 section 5.3.1); answer with time exceeded.
    Ipv4TtlExpired => "ipv4_ttl_expired",
    /// A non-first fragment: it carries no transport header, so no ports can be read.
    Ipv4Fragment => "ipv4_fragment",
    /// Buffer shorter than the 40-byte IPv6 header or than its payload length.
    Ipv6Truncated => "ipv6_truncated",
    /// IPv6 version field is not 6.
    Ipv6BadVersion => "ipv6_bad_version",
    /// An IPv6 extension header runs past the packet.
    Ipv6BadExtHeader => "ipv6_bad_ext_header",
    /// More IPv6 extension headers than the walk accepts (a resource-exhaustion guard).
    Ipv6TooManyExtHeaders => "ipv6_too_many_ext_headers",
    /// TCP segment shorter than its 20-byte fixed header.
    TcpTruncated => "tcp_truncated",
    /// TCP data offset below 5 words or beyond the segment (RFC 9293 section 3.1).
    TcpBadDataOffset => "tcp_bad_data_offset",
    /// A TCP option runs past the header or has an impossible length.
    TcpBadOption => "tcp_bad_option",
    /// TCP checksum does not verify.
    TcpBadChecksum => "tcp_bad_checksum",
    /// UDP datagram shorter than its 8-byte header.
    UdpTruncated => "udp_truncated",
    /// UDP length field below 8 or beyond the IP payload (RFC 768).
    UdpBadLength => "udp_bad_length",
    /// UDP checksum present and wrong.
    UdpBadChecksum => "udp_bad_checksum",
    /// ICMP message shorter than its 8-byte header.
    IcmpTruncated => "icmp_truncated",
    /// ICMP checksum does not verify (RFC 792).
    IcmpBadChecksum => "icmp_bad_checksum",
    /// The IPv4 header quoted in an ICMP error is malformed, or fewer than 8 bytes of its
    /// transport header are quoted (RFC 792).
    IcmpBadQuote => "icmp_bad_quote",
    /// An ICMP type the operation does not handle (for example a port rewrite on an ICMP
    /// message that is not an echo).
    IcmpUnsupported => "icmp_unsupported",
    /// GENEVE header shorter than its 8 bytes (RFC 8926 section 3.4).
    GeneveTruncated => "geneve_truncated",
    /// GENEVE version other than 0: a version we do not know, which RFC 8926 section 3.4
    /// says to drop.
    GeneveBadVersion => "geneve_bad_version",
    /// The GENEVE option length runs past the packet (RFC 8926 section 3.4).
    GeneveBadOptionsLen => "geneve_bad_options_len",
    /// A GENEVE option's header or data runs past the options area (RFC 8926 section 3.5).
    GeneveBadOption => "geneve_bad_option",
    /// VXLAN header shorter than its 8 bytes (RFC 7348 section 5).
    VxlanTruncated => "vxlan_truncated",
    /// VXLAN flags without the I bit, which says the VNI is valid (RFC 7348 section 5).
    VxlanIFlagMissing => "vxlan_i_flag_missing",
    /// A frame where a tunnel packet was expected that is not IPv4 UDP to the tunnel's port,
    /// or is a fragment of one (the appliance does not reassemble).
    TunnelNotEncapsulated => "tunnel_not_encapsulated",
    /// No reply may be generated for this packet (RST for a RST, ICMP error about an ICMP
    /// error, a non-first fragment, or a non-unicast address; RFC 1812 section 4.3.2.7).
    ReplyNotAllowed => "reply_not_allowed",
    /// The caller's buffer cannot hold the packet to be written.
    BufferTooSmall => "buffer_too_small",
}

impl Error {
    /// Position of this variant in [`Error::ALL`], to index a counter array.
    pub fn index(self) -> usize {
        // The enum is fieldless and declared in the same order as ALL.
        self as usize
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_index_order_and_names_are_unique_snake_case() {
        for (i, e) in Error::ALL.iter().enumerate() {
            assert_eq!(e.index(), i);
            let n = e.name();
            assert!(
                n.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{n}"
            );
            assert_eq!(Error::ALL.iter().filter(|o| o.name() == n).count(), 1);
        }
        assert_eq!(Error::COUNT, Error::ALL.len());
        assert_eq!(Error::Ipv4BadChecksum.name(), "ipv4_bad_checksum");
        assert_eq!(Error::Ipv4BadChecksum.to_string(), "ipv4_bad_checksum");
    }
}
