//! TCP connection tracking as a pure function: the state a middlebox can infer from the flags it
//! sees, without sequence numbers.
//!
//! The states are named after RFC 9293's endpoint states, seen from the middle. What a NAT needs
//! from them is the timeout (RFC 5382 section 5, REQ-5): an *established* connection may idle for
//! at least 2 h 4 min, a *transitory* one (partially open or partially closed) for at least
//! 4 min. So only [`TcpState::Established`] maps to [`TimeoutClass::TcpEstablished`].

use super::timeouts::TimeoutClass;
use crate::packet::TcpFlags;

/// Who sent a packet, relative to the connection: the side that sent the first SYN, or the
/// other one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dir {
    /// From the side that opened the connection.
    Orig,
    /// From the side that accepted it.
    Reply,
}

impl Dir {
    /// The opposite direction.
    #[inline]
    pub const fn other(self) -> Self {
        match self {
            Dir::Orig => Dir::Reply,
            Dir::Reply => Dir::Orig,
        }
    }
}

/// The tracked state of a TCP connection.
///
/// The closing states carry the direction of the first FIN (`closer`), because whether the next
/// FIN or ACK completes the close depends on who sends it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TcpState {
    /// The originator sent a SYN; no answer yet.
    SynSent,
    /// The other side answered with SYN+ACK (or a SYN: simultaneous open); waiting for the
    /// originator's ACK.
    SynReceived,
    /// Handshake complete, no FIN seen.
    Established,
    /// `closer` sent a FIN that the other side has not acknowledged yet.
    FinWait {
        /// Who sent the first FIN.
        closer: Dir,
    },
    /// `closer`'s FIN was acknowledged; the other side may still send data (half close).
    CloseWait {
        /// Who sent the first FIN.
        closer: Dir,
    },
    /// Both sides sent a FIN; waiting for `closer` to acknowledge the second one.
    LastAck {
        /// Who sent the first FIN, and so owes the last ACK.
        closer: Dir,
    },
    /// Both FINs acknowledged; the session lingers for the transitory timeout to absorb
    /// retransmissions, and a new SYN from the originator reopens it.
    TimeWait,
    /// Reset, or never opened: only a new SYN from the originator reopens it.
    Closed,
}

impl TcpState {
    /// The state of a new session whose first packet, from the originator, has `flags`.
    ///
    /// A SYN without ACK opens the session in [`TcpState::SynSent`]. Anything else is refused
    /// (`None`) unless `loose` is set: then a mid-stream packet (an existing connection picked
    /// up after a restart or a route change) opens it as [`TcpState::Established`]. A RST never
    /// opens a session.
    #[inline]
    pub const fn open(flags: TcpFlags, loose: bool) -> Option<TcpState> {
        if flags.rst() {
            None
        } else if flags.pure_syn() {
            Some(TcpState::SynSent)
        } else if loose {
            Some(TcpState::Established)
        } else {
            None
        }
    }

    /// The state after a packet with `flags` travelling in direction `dir`.
    ///
    /// Rules, in order: RST from either side closes; a SYN without ACK from the originator on a
    /// closing or closed connection reopens it ([`TcpState::SynSent`], port reuse per RFC 5382
    /// section 5 and RFC 6191); otherwise the handshake and the close advance as described on
    /// each state. A packet that does not fit the state leaves it unchanged: tracking never
    /// drops, the caller decides what an unexpected packet means.
    #[inline]
    #[must_use]
    pub const fn next(self, flags: TcpFlags, dir: Dir) -> TcpState {
        use TcpState::*;
        if flags.rst() {
            return Closed;
        }
        let orig = matches!(dir, Dir::Orig);
        match self {
            SynSent => {
                if !orig && flags.syn() {
                    SynReceived
                } else {
                    SynSent
                }
            }
            SynReceived => {
                if orig && flags.ack() && !flags.syn() {
                    if flags.fin() {
                        FinWait { closer: Dir::Orig }
                    } else {
                        Established
                    }
                } else {
                    SynReceived
                }
            }
            Established => {
                if flags.fin() {
                    FinWait { closer: dir }
                } else {
                    Established
                }
            }
            FinWait { closer } => {
                if orig && flags.pure_syn() {
                    SynSent
                } else if same_dir(dir, closer) {
                    self
                } else if flags.fin() {
                    LastAck { closer }
                } else if flags.ack() {
                    CloseWait { closer }
                } else {
                    self
                }
            }
            CloseWait { closer } => {
                if orig && flags.pure_syn() {
                    SynSent
                } else if !same_dir(dir, closer) && flags.fin() {
                    LastAck { closer }
                } else {
                    self
                }
            }
            LastAck { closer } => {
                if orig && flags.pure_syn() {
                    SynSent
                } else if same_dir(dir, closer) && flags.ack() {
                    TimeWait
                } else {
                    self
                }
            }
            TimeWait | Closed => {
                if orig && flags.pure_syn() {
                    SynSent
                } else {
                    self
                }
            }
        }
    }

    /// The timeout class of a session in this state: established or transitory (RFC 5382
    /// REQ-5).
    #[inline]
    pub const fn timeout_class(self) -> TimeoutClass {
        match self {
            TcpState::Established => TimeoutClass::TcpEstablished,
            _ => TimeoutClass::TcpTransitory,
        }
    }

    /// [`TcpState::next`] and the timeout class of the new state together.
    #[inline]
    pub const fn step(self, flags: TcpFlags, dir: Dir) -> (TcpState, TimeoutClass) {
        let s = self.next(flags, dir);
        (s, s.timeout_class())
    }

    /// One-byte encoding, for the session record.
    #[inline]
    pub(crate) const fn to_code(self) -> u8 {
        use TcpState::*;
        match self {
            SynSent => 0,
            SynReceived => 1,
            Established => 2,
            FinWait { closer: Dir::Orig } => 3,
            FinWait { closer: Dir::Reply } => 4,
            CloseWait { closer: Dir::Orig } => 5,
            CloseWait { closer: Dir::Reply } => 6,
            LastAck { closer: Dir::Orig } => 7,
            LastAck { closer: Dir::Reply } => 8,
            TimeWait => 9,
            Closed => 10,
        }
    }

    /// Inverse of [`TcpState::to_code`]; unknown codes read as `Closed`.
    #[inline]
    pub(crate) const fn from_code(code: u8) -> Self {
        use TcpState::*;
        match code {
            0 => SynSent,
            1 => SynReceived,
            2 => Established,
            3 => FinWait { closer: Dir::Orig },
            4 => FinWait { closer: Dir::Reply },
            5 => CloseWait { closer: Dir::Orig },
            6 => CloseWait { closer: Dir::Reply },
            7 => LastAck { closer: Dir::Orig },
            8 => LastAck { closer: Dir::Reply },
            9 => TimeWait,
            _ => Closed,
        }
    }
}

#[inline]
const fn same_dir(a: Dir, b: Dir) -> bool {
    matches!((a, b), (Dir::Orig, Dir::Orig) | (Dir::Reply, Dir::Reply))
}

#[cfg(test)]
mod tests {
    use super::Dir::{Orig, Reply};
    use super::TcpState::*;
    use super::*;

    const SYN: TcpFlags = TcpFlags::SYN;
    const ACK: TcpFlags = TcpFlags::ACK;
    const SYN_ACK: TcpFlags = TcpFlags(0x12);
    const FIN_ACK: TcpFlags = TcpFlags(0x11);
    const PSH_ACK: TcpFlags = TcpFlags(0x18);
    const FIN: TcpFlags = TcpFlags::FIN;
    const RST: TcpFlags = TcpFlags::RST;
    const RST_ACK: TcpFlags = TcpFlags(0x14);

    const ALL: [TcpState; 11] = [
        SynSent,
        SynReceived,
        Established,
        FinWait { closer: Orig },
        FinWait { closer: Reply },
        CloseWait { closer: Orig },
        CloseWait { closer: Reply },
        LastAck { closer: Orig },
        LastAck { closer: Reply },
        TimeWait,
        Closed,
    ];

    /// The states after the first FIN or a RST.
    fn closing_or_closed() -> impl Iterator<Item = TcpState> {
        ALL.into_iter()
            .filter(|s| !matches!(s, SynSent | SynReceived | Established))
    }

    /// The timeout class RFC 5382 REQ-5 asks for: the long one for an established connection
    /// only.
    fn class_of(s: TcpState) -> TimeoutClass {
        if s == Established {
            TimeoutClass::TcpEstablished
        } else {
            TimeoutClass::TcpTransitory
        }
    }

    /// Each of `packets` takes `from` to `to`, with `to`'s timeout class.
    fn goes(from: TcpState, packets: &[(TcpFlags, Dir)], to: TcpState) {
        for &(f, d) in packets {
            let want = (to, class_of(to));
            assert_eq!(from.step(f, d), want, "{from:?}, then {f:?} from {d:?}");
        }
    }

    /// Each of `packets` leaves `s` as it is.
    fn stays(s: TcpState, packets: &[(TcpFlags, Dir)]) {
        goes(s, packets, s);
    }

    // =========================================================================================
    // Opening a session
    // =========================================================================================

    #[test]
    fn open_with_syn() {
        assert_eq!(TcpState::open(SYN, false), Some(SynSent));
        assert_eq!(TcpState::open(SYN, true), Some(SynSent));
    }

    #[test]
    fn open_strict_refuses_mid_stream() {
        for f in [ACK, SYN_ACK, FIN_ACK, FIN, TcpFlags(0)] {
            assert_eq!(TcpState::open(f, false), None, "{f:?}");
        }
    }

    #[test]
    fn open_loose_accepts_mid_stream_as_established() {
        for f in [ACK, SYN_ACK, FIN_ACK, PSH_ACK] {
            assert_eq!(TcpState::open(f, true), Some(Established), "{f:?}");
        }
    }

    #[test]
    fn open_never_with_rst() {
        for f in [RST, RST_ACK, SYN | RST] {
            assert_eq!(TcpState::open(f, true), None, "{f:?}");
        }
    }

    #[test]
    fn psh_urg_ece_cwr_change_nothing() {
        for s in ALL {
            for (f, d) in [(SYN, Orig), (SYN_ACK, Reply), (ACK, Orig), (FIN_ACK, Reply)] {
                let noisy = TcpFlags(f.0 | 0x1e8);
                assert_eq!(s.next(noisy, d), s.next(f, d), "{s:?} {f:?} {d:?}");
            }
        }
    }

    // =========================================================================================
    // Any state
    // =========================================================================================

    #[test]
    fn rst_closes_from_every_state_either_direction() {
        for s in ALL {
            goes(
                s,
                &[(RST, Orig), (RST, Reply), (RST_ACK, Orig), (RST_ACK, Reply)],
                Closed,
            );
        }
    }

    #[test]
    fn only_established_has_established_timeout() {
        for s in ALL {
            assert_eq!(s.timeout_class(), class_of(s), "{s:?}");
        }
        assert_eq!(class_of(Established), TimeoutClass::TcpEstablished);
        assert_eq!(class_of(TimeWait), TimeoutClass::TcpTransitory);
    }

    #[test]
    fn code_round_trip() {
        for s in ALL {
            assert_eq!(TcpState::from_code(s.to_code()), s);
        }
        assert_eq!(TcpState::from_code(200), Closed);
    }

    /// Port reuse (RFC 5382 section 5, RFC 6191): a new connection on the same ports.
    #[test]
    fn syn_from_orig_reopens_every_closing_or_closed_state() {
        for s in closing_or_closed() {
            goes(s, &[(SYN, Orig)], SynSent);
        }
    }

    #[test]
    fn syn_from_reply_reopens_nothing() {
        for s in closing_or_closed() {
            stays(s, &[(SYN, Reply)]);
        }
    }

    // =========================================================================================
    // SYN_SENT
    // =========================================================================================

    #[test]
    fn syn_sent_syn_ack_from_reply() {
        goes(SynSent, &[(SYN_ACK, Reply)], SynReceived);
    }

    #[test]
    fn syn_sent_simultaneous_open() {
        goes(SynSent, &[(SYN, Reply)], SynReceived);
    }

    #[test]
    fn syn_sent_retransmitted_syn() {
        stays(SynSent, &[(SYN, Orig)]);
    }

    #[test]
    fn syn_sent_ignores_ack_and_fin_before_answer() {
        stays(
            SynSent,
            &[(ACK, Orig), (ACK, Reply), (FIN_ACK, Orig), (FIN, Reply)],
        );
    }

    // =========================================================================================
    // SYN_RECEIVED
    // =========================================================================================

    #[test]
    fn syn_received_ack_from_orig_establishes() {
        goes(SynReceived, &[(ACK, Orig)], Established);
    }

    #[test]
    fn syn_received_fin_ack_from_orig_establishes_and_closes() {
        goes(SynReceived, &[(FIN_ACK, Orig)], FinWait { closer: Orig });
    }

    #[test]
    fn syn_received_retransmissions_stay() {
        stays(SynReceived, &[(SYN_ACK, Reply), (SYN, Orig)]);
    }

    #[test]
    fn syn_received_ack_from_reply_does_not_establish() {
        stays(SynReceived, &[(ACK, Reply)]);
    }

    // =========================================================================================
    // ESTABLISHED
    // =========================================================================================

    #[test]
    fn established_data_stays() {
        stays(
            Established,
            &[(ACK, Orig), (ACK, Reply), (PSH_ACK, Orig), (PSH_ACK, Reply)],
        );
    }

    #[test]
    fn established_fin_from_either_side_starts_the_close() {
        for d in [Orig, Reply] {
            goes(
                Established,
                &[(FIN_ACK, d), (FIN, d)],
                FinWait { closer: d },
            );
        }
    }

    #[test]
    fn established_syn_does_not_reopen() {
        stays(Established, &[(SYN, Orig), (SYN, Reply)]);
    }

    // =========================================================================================
    // FIN_WAIT
    // =========================================================================================

    #[test]
    fn fin_wait_ack_from_other_side_half_closes() {
        for c in [Orig, Reply] {
            goes(
                FinWait { closer: c },
                &[(ACK, c.other())],
                CloseWait { closer: c },
            );
        }
    }

    #[test]
    fn fin_wait_fin_from_other_side_goes_to_last_ack() {
        for c in [Orig, Reply] {
            goes(
                FinWait { closer: c },
                &[(FIN_ACK, c.other())],
                LastAck { closer: c },
            );
        }
    }

    #[test]
    fn fin_wait_closer_retransmits_stay() {
        for c in [Orig, Reply] {
            stays(FinWait { closer: c }, &[(FIN_ACK, c), (ACK, c)]);
        }
    }

    // =========================================================================================
    // CLOSE_WAIT
    // =========================================================================================

    #[test]
    fn close_wait_data_from_either_side_stays() {
        stays(CloseWait { closer: Orig }, &[(ACK, Reply), (ACK, Orig)]);
    }

    #[test]
    fn close_wait_fin_from_open_side_goes_to_last_ack() {
        for c in [Orig, Reply] {
            goes(
                CloseWait { closer: c },
                &[(FIN_ACK, c.other())],
                LastAck { closer: c },
            );
        }
    }

    #[test]
    fn close_wait_fin_retransmit_from_closer_stays() {
        stays(CloseWait { closer: Reply }, &[(FIN_ACK, Reply)]);
    }

    // =========================================================================================
    // LAST_ACK
    // =========================================================================================

    #[test]
    fn last_ack_ack_from_closer_goes_to_time_wait() {
        for c in [Orig, Reply] {
            goes(LastAck { closer: c }, &[(ACK, c)], TimeWait);
        }
    }

    #[test]
    fn last_ack_packets_from_other_side_stay() {
        stays(LastAck { closer: Orig }, &[(ACK, Reply), (FIN_ACK, Reply)]);
    }

    // =========================================================================================
    // TIME_WAIT and CLOSED
    // =========================================================================================

    #[test]
    fn time_wait_absorbs_retransmissions() {
        stays(
            TimeWait,
            &[
                (ACK, Orig),
                (FIN_ACK, Reply),
                (ACK, Reply),
                (SYN_ACK, Reply),
            ],
        );
    }

    #[test]
    fn closed_stays_closed() {
        stays(
            Closed,
            &[
                (ACK, Orig),
                (FIN_ACK, Reply),
                (SYN_ACK, Reply),
                (SYN, Reply),
            ],
        );
    }

    // =========================================================================================
    // Whole connections
    // =========================================================================================

    const HANDSHAKE: &[(TcpFlags, Dir)] = &[(SYN, Orig), (SYN_ACK, Reply), (ACK, Orig)];

    /// The state after opening with the first of `steps` and following the rest.
    fn run(steps: &[&[(TcpFlags, Dir)]]) -> TcpState {
        let steps = steps.concat();
        let (first, rest) = steps.split_first().expect("a packet");
        assert_eq!(first.1, Orig);
        let mut s = TcpState::open(first.0, false).expect("opens");
        for &(f, d) in rest {
            s = s.next(f, d);
        }
        s
    }

    #[test]
    fn full_connection_active_close_by_orig() {
        let close = [
            (ACK, Reply),
            (FIN_ACK, Orig),
            (ACK, Reply),
            (FIN_ACK, Reply),
            (ACK, Orig),
        ];
        assert_eq!(run(&[HANDSHAKE, &close]), TimeWait);
    }

    #[test]
    fn full_connection_close_by_reply_with_combined_fin() {
        let close = [(FIN_ACK, Reply), (FIN_ACK, Orig), (ACK, Reply)];
        assert_eq!(run(&[HANDSHAKE, &close]), TimeWait);
    }

    #[test]
    fn connection_reuse_after_time_wait() {
        let close = [(FIN_ACK, Orig), (FIN_ACK, Reply), (ACK, Orig)];
        assert_eq!(run(&[HANDSHAKE, &close, HANDSHAKE]), Established);
    }
}
