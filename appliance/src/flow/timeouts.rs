//! Idle timeouts: the class a session is in and the seconds each class may stay idle.

/// Which idle timeout applies to a session: its class, as `appliance sessions`, the metrics
/// (`class` label) and the session filter name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum TimeoutClass {
    /// TCP partially open or partially closed (RFC 5382 REQ-5: at least 4 minutes).
    TcpTransitory = 0,
    /// TCP established (RFC 5382 REQ-5: at least 2 hours 4 minutes).
    TcpEstablished = 1,
    /// UDP (RFC 4787 REQ-5: at least 2 minutes, 5 recommended); also other protocols.
    Udp = 2,
    /// ICMP echo (RFC 5508 REQ-1: at least 60 seconds).
    Icmp = 3,
}

impl TimeoutClass {
    /// All classes, in list order.
    pub const ALL: [TimeoutClass; 4] = [
        TimeoutClass::TcpTransitory,
        TimeoutClass::TcpEstablished,
        TimeoutClass::Udp,
        TimeoutClass::Icmp,
    ];

    /// The snake_case name used in JSON, filters and metric labels.
    pub const fn name(self) -> &'static str {
        match self {
            TimeoutClass::TcpTransitory => "tcp_transitory",
            TimeoutClass::TcpEstablished => "tcp_established",
            TimeoutClass::Udp => "udp",
            TimeoutClass::Icmp => "icmp",
        }
    }

    #[inline]
    pub(crate) const fn from_bits(b: u8) -> Self {
        match b & 3 {
            0 => TimeoutClass::TcpTransitory,
            1 => TimeoutClass::TcpEstablished,
            2 => TimeoutClass::Udp,
            _ => TimeoutClass::Icmp,
        }
    }
}

/// Idle timeouts per class, in seconds (the unit of the table's clock): the file's
/// `[nat.timeouts]`, where each has the floor its RFC sets and lower values are refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    /// Established TCP connections; default and floor 7440 s (2 h 4 min, RFC 5382 REQ-5).
    pub tcp_established: u32,
    /// TCP connections opening or closing (SYN sent, FIN or RST seen); default and floor
    /// 240 s (RFC 5382 REQ-5).
    pub tcp_transitory: u32,
    /// UDP and other protocols; at least 120 s (RFC 4787 REQ-5), default 300 s as it
    /// recommends.
    pub udp: u32,
    /// ICMP echo; default and floor 60 s (RFC 5508 REQ-1).
    pub icmp: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            tcp_established: 7440,
            tcp_transitory: 240,
            udp: 300,
            icmp: 60,
        }
    }
}

impl Timeouts {
    /// The timeout of `class`.
    #[inline]
    pub const fn of(&self, class: TimeoutClass) -> u32 {
        match class {
            TimeoutClass::TcpTransitory => self.tcp_transitory,
            TimeoutClass::TcpEstablished => self.tcp_established,
            TimeoutClass::Udp => self.udp,
            TimeoutClass::Icmp => self.icmp,
        }
    }
}

/// Whether a session last seen at `last_seen` with timeout `timeout` has expired at `now`
/// (`last_seen + timeout <= now`, without overflow).
#[inline(always)]
pub(crate) fn is_expired(last_seen: u32, timeout: u32, now: u32) -> bool {
    u64::from(last_seen) + u64::from(timeout) <= u64::from(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_meet_the_rfcs() {
        let t = Timeouts::default();
        assert!(t.tcp_established >= 7440);
        assert!(t.tcp_transitory >= 240);
        assert!(t.udp >= 120);
        assert!(t.icmp >= 60);
        assert_eq!(t.of(TimeoutClass::Udp), 300);
    }

    #[test]
    fn expiry_boundary_and_overflow() {
        assert!(!is_expired(100, 60, 159));
        assert!(is_expired(100, 60, 160));
        assert!(!is_expired(u32::MAX - 10, 60, u32::MAX));
    }

    #[test]
    fn class_bits_round_trip() {
        for c in TimeoutClass::ALL {
            assert_eq!(TimeoutClass::from_bits(c as u8), c);
        }
    }
}
