//! The slow path: a packet of a session kind (TCP, UDP, ICMP echo) that found no session.
//! It is classified (egress, ingress, hairpin, local, invalid), the policy consulted, the NAT
//! asked for the translation ([`crate::nat::decide`]), the session created, and the packet
//! sent on as the fast path sends it.

use super::action::Disposition;
use super::buf::PacketBuf;
use super::class::{Class, Rules, Trace, Translation};
use super::classify::{refused_source, role};
use super::env::Ctx;
use super::meta::{Kind, Meta};
use super::reason::Discard;
use super::shard::Shard;
use crate::config::{Action, Filtering, Role};
use crate::flow::{CreateError, FlowKey, Hit, NewSession, Side, TcpState};
use crate::nat::decide::match_key;
use crate::nat::{Behind, Hold, SnatError, Taken, Way};
use crate::packet::translate::Transport;
use crate::policy::{Decision, Policy};
use std::net::Ipv4Addr;

/// Whether a packet may open a session: TCP, UDP, or an ICMP echo request (an echo reply
/// without a session is not a new flow).
pub(super) fn opens_flow(meta: &Meta) -> bool {
    match meta.kind {
        Kind::Session(Transport::Tcp | Transport::Udp) => true,
        Kind::Session(Transport::IcmpEcho) => meta.icmp_type == 8,
        _ => false,
    }
}

/// The session a new flow opens, as the slow path decided it.
struct Opening {
    /// The key of its packets arriving from inside.
    inside: FlowKey,
    /// The key of its packets arriving from outside.
    outside: FlowKey,
    /// The side of its first packet.
    orig: Side,
    /// Its TCP state.
    tcp: TcpState,
    /// What the NAT took for it.
    taken: Taken,
}

/// Why the NAT gave no public endpoint, as a drop reason.
fn refused(e: SnatError) -> Discard {
    match e {
        SnatError::Exhausted => Discard::NatPortExhausted,
        SnatError::NoAddress => Discard::NoNatAddress,
        SnatError::Protocol => Discard::ProtocolUnsupported,
    }
}

impl<T: Trace> Shard<T> {
    /// Hints the CPU to load what creating an egress session for `key` (a packet that
    /// missed) will touch that nothing loaded yet: the index bucket of its outside key, as
    /// the NAT will most likely make it ([`crate::nat::Snat::predict_public`]). Nothing for a
    /// packet that will not open an egress session; a wrong guess costs one wasted prefetch.
    #[inline]
    pub(super) fn prefetch_new_session(&self, p: &Policy, key: &FlowKey) {
        let src = key.src_addr();
        if !p.is_private(src) {
            return;
        }
        let proto = key.protocol();
        let inside = (src, key.src_port());
        if let Some(public) = self.snat.predict_public(p, proto, inside) {
            let remote = (key.dst_addr(), key.dst_port());
            self.table
                .prefetch_insert(&FlowKey::sent_to(proto, remote, public));
        }
    }

    /// Whether `dst` is an address of the appliance that a packet arriving on `in_port` may
    /// reach: from inside, any of its addresses; from outside, the public (pool) addresses
    /// and the receiving port's own address, never the inside addresses.
    pub(super) fn is_local(&self, p: &Policy, in_port: u8, dst: Ipv4Addr) -> bool {
        if self.snat.is_pool_address(dst) {
            return true;
        }
        match p.port_with_address(dst) {
            None => false,
            Some(port) => {
                port == usize::from(in_port)
                    || p.ports.get(usize::from(in_port)).map(|x| x.role) == Some(Role::Inside)
            }
        }
    }

    /// A packet of this worker's with no session: which class of new flow it is, what the
    /// policy and the NAT say, and the session it opens, if any. Every class decides the new
    /// session or the packet's end; one place creates the session.
    #[inline(never)]
    pub(super) fn miss<B: PacketBuf>(
        &mut self,
        cx: &Ctx<'_>,
        pkt: &mut B,
        meta: &Meta,
    ) -> Disposition {
        let p = cx.env.policy;
        let (src, dst) = (meta.key.src_addr(), meta.key.dst_addr());
        let side = role(p, cx.in_port, src);
        if let Some(why) = refused_source(p, side, src) {
            return self.discard(why);
        }
        let opening = match side {
            Role::Inside => {
                if self.snat.is_public(p, dst) {
                    self.hairpin(cx, pkt, meta)
                } else if p.port_with_address(dst).is_some() {
                    self.trace.class(Class::Local);
                    return self.local(cx, pkt, meta);
                } else {
                    self.egress(cx, pkt, meta)
                }
            }
            _ => self.ingress(cx, pkt, meta),
        };
        match opening {
            Ok(o) => self.create(cx, pkt, meta, o),
            Err(end) => end,
        }
    }

    /// The TCP state a new session starts in, or `None` when the packet may not open one
    /// (strict mode: only a SYN without ACK).
    pub(super) fn opening(&self, p: &Policy, meta: &Meta) -> Option<TcpState> {
        if meta.kind != Kind::TCP {
            return Some(TcpState::Closed);
        }
        TcpState::open(meta.tcp_flags, p.sessions.tcp_loose)
    }

    /// Whether rule set `rules` lets the new flow of `meta` through (told to the tracer).
    #[inline(always)]
    pub(super) fn allowed(&mut self, p: &Policy, rules: Rules, meta: &Meta) -> bool {
        let set = match rules {
            Rules::Egress => &p.egress,
            Rules::Ingress => &p.ingress,
        };
        // A set without rules decides by its default; no key to build.
        let decision = if set.is_empty() {
            Decision {
                action: set.default_action(),
                rule: None,
            }
        } else {
            set.check(&match_key(&meta.key, meta.icmp_type))
        };
        self.trace.rule(rules, decision);
        decision.action == Action::Allow
    }

    /// A new flow from inside to the outside: egress policy, SNAT.
    #[inline(always)]
    fn egress<B: PacketBuf>(
        &mut self,
        cx: &Ctx<'_>,
        pkt: &mut B,
        meta: &Meta,
    ) -> Result<Opening, Disposition> {
        self.trace.class(Class::Egress);
        let p = cx.env.policy;
        if p.is_private(meta.key.dst_addr()) {
            // Inside to inside is not the NAT's to carry (nor to translate).
            return Err(self.discard(Discard::PrivateDestination));
        }
        if !opens_flow(meta) {
            // An echo reply without a session is not a new flow.
            return Err(self.discard(Discard::ProtocolUnsupported));
        }
        let Some(tcp) = self.opening(p, meta) else {
            return Err(self.discard(Discard::TcpNoSession));
        };
        if !self.allowed(p, Rules::Egress, meta) {
            return Err(self.discard(Discard::EgressDenied));
        }
        if meta.ttl_runs_out(pkt.bytes()) {
            return Err(self.time_exceeded(cx, pkt, meta));
        }
        let k = meta.key;
        let proto = k.protocol();
        let inside = (k.src_addr(), k.src_port());
        let remote = (k.dst_addr(), k.dst_port());
        let taken = match self.snat.public_for(p, proto, inside, remote, &self.table) {
            Ok(t) => t,
            Err(e) => return Err(self.discard(refused(e))),
        };
        Ok(Opening {
            inside: k,
            outside: FlowKey::sent_to(proto, remote, taken.public),
            orig: Side::Inside,
            tcp,
            taken,
        })
    }

    /// What the NAT admits a new flow from outside (or a hairpinned one) to `public` with,
    /// told to the tracer when it is a rule of the file.
    fn behind(
        &mut self,
        p: &Policy,
        meta: &Meta,
        public: (Ipv4Addr, u16),
        remote: Ipv4Addr,
        filtering: Filtering,
    ) -> Option<Behind> {
        if !opens_flow(meta) {
            return None;
        }
        let b = self
            .snat
            .behind(p, meta.key.protocol(), public, remote, filtering)?;
        match b.way {
            Way::Forward(f) => self.trace.translation(Translation::Forward(f)),
            Way::Static(private) => self.trace.translation(Translation::Static {
                public: public.0,
                private,
            }),
            Way::Mapping => {}
        }
        Some(b)
    }

    /// An unsolicited packet from outside: a port forward, a static mapping or an existing
    /// endpoint-independent mapping may admit it; else it is for the appliance or dropped.
    fn ingress<B: PacketBuf>(
        &mut self,
        cx: &Ctx<'_>,
        pkt: &mut B,
        meta: &Meta,
    ) -> Result<Opening, Disposition> {
        self.trace.class(Class::Ingress);
        let p = cx.env.policy;
        let k = meta.key;
        let proto = k.protocol();
        let remote = (k.src_addr(), k.src_port());
        let public = (k.dst_addr(), k.dst_port());
        let Some(behind) = self.behind(p, meta, public, remote.0, p.snat.filtering) else {
            if self.is_local(p, cx.in_port, public.0) {
                return Err(self.local(cx, pkt, meta));
            }
            return Err(self.discard(Discard::NoForward));
        };
        if behind.by_rule() && !self.allowed(p, Rules::Ingress, meta) {
            return Err(self.discard(Discard::IngressDenied));
        }
        let Some(tcp) = self.opening(p, meta) else {
            return Err(self.discard(Discard::TcpNoSession));
        };
        if meta.ttl_runs_out(pkt.bytes()) {
            return Err(self.time_exceeded(cx, pkt, meta));
        }
        let Some(taken) = self.snat.admit(proto, public, remote.0, &behind) else {
            return Err(self.discard(Discard::NoForward));
        };
        Ok(Opening {
            inside: FlowKey::sent_by(proto, behind.inside, remote),
            outside: k,
            orig: Side::Outside,
            tcp,
            taken,
        })
    }

    /// A packet from inside to one of the appliance's public addresses: hairpinning (RFC 4787
    /// REQ-9, RFC 5382 REQ-8). The inside host reaches the other inside host behind the public
    /// endpoint, and is seen there from its own public endpoint.
    fn hairpin<B: PacketBuf>(
        &mut self,
        cx: &Ctx<'_>,
        pkt: &mut B,
        meta: &Meta,
    ) -> Result<Opening, Disposition> {
        self.trace.class(Class::Hairpin);
        let p = cx.env.policy;
        let k = meta.key;
        let proto = k.protocol();
        let from = (k.src_addr(), k.src_port());
        let public = (k.dst_addr(), k.dst_port());
        // An inside host may reach any endpoint-independent mapping (RFC 4787 REQ-9).
        let filtering = Filtering::EndpointIndependent;
        let Some(Behind { inside: to, .. }) = self.behind(p, meta, public, from.0, filtering)
        else {
            return Err(self.local(cx, pkt, meta));
        };
        if !p.snat.hairpinning {
            return Err(self.discard(Discard::HairpinDisabled));
        }
        let Some(tcp) = self.opening(p, meta) else {
            return Err(self.discard(Discard::TcpNoSession));
        };
        if !self.allowed(p, Rules::Egress, meta) {
            return Err(self.discard(Discard::EgressDenied));
        }
        if meta.ttl_runs_out(pkt.bytes()) {
            return Err(self.time_exceeded(cx, pkt, meta));
        }
        let taken = match self.snat.public_for(p, proto, from, to, &self.table) {
            Ok(t) => t,
            Err(e) => return Err(self.discard(refused(e))),
        };
        // The other key is what the target's replies look like: to our public endpoint.
        let other = FlowKey::sent_to(proto, to, taken.public);
        if other == k {
            // A host reaching itself through its own static public endpoint: both tuples of
            // the session would be the same.
            self.snat.give_back(&taken);
            return Err(self.discard(Discard::HairpinToSelf));
        }
        Ok(Opening {
            inside: k,
            outside: other,
            orig: Side::Inside,
            tcp,
            taken,
        })
    }

    /// Creates the session a new flow opens, and sends its first packet.
    #[inline(always)]
    fn create<B: PacketBuf>(
        &mut self,
        cx: &Ctx<'_>,
        pkt: &mut B,
        meta: &Meta,
        o: Opening,
    ) -> Disposition {
        let taken = o.taken;
        let new = NewSession {
            tcp: o.tcp,
            policy_gen: cx.env.policy.generation as u32,
            ..NewSession::translating(o.inside, o.outside, o.orig)
        };
        let (hit, created) = match self.open(cx, pkt, meta, &new, taken.hold.tag()) {
            Ok(opened) => opened,
            Err(end) => {
                self.snat.give_back(&taken);
                return end;
            }
        };
        if !created {
            self.snat.give_back(&taken);
        } else if o.orig == Side::Inside {
            self.trace.translation(match taken.hold {
                Hold::Nothing => Translation::Static {
                    public: taken.public.0,
                    private: taken.inside.0,
                },
                _ => Translation::Snat {
                    public: taken.public,
                },
            });
        }
        self.send_session(cx, pkt, meta, hit)
    }

    /// Puts the session `new` in the table, tagged with what it holds (`tag`), and counts
    /// the packet that opened it: the session to send the packet by, and whether it is new.
    /// If one of the keys is already a session's (a simultaneous open from both sides, two
    /// packets of one new flow in one burst), the packet belongs to that session when the
    /// key is the packet's own, and no session is made. `Err`: the packet's end (the table
    /// is full, or the other key collides); the caller gives back what it took for it.
    #[inline(always)]
    pub(super) fn open<B: PacketBuf>(
        &mut self,
        cx: &Ctx<'_>,
        pkt: &B,
        meta: &Meta,
        new: &NewSession,
        tag: u8,
    ) -> Result<(Hit, bool), Disposition> {
        let snat = &mut self.snat;
        let created = self
            .table
            .create(new, cx.now, |_, s| snat.release_session(s));
        match created {
            Ok(index) => {
                self.counters.bump_created();
                let len = pkt.bytes().len() as u32;
                let Some(s) = self.table.get_mut(index) else {
                    return Err(self.discard(Discard::SessionGone));
                };
                s.set_tag(tag);
                s.count(len);
                let side = new.orig;
                Ok((Hit { index, side }, true))
            }
            Err(CreateError::Full) => Err(self.discard(Discard::SessionTableFull)),
            Err(CreateError::Exists(hit)) => {
                // Only if the key that exists is this packet's own (two packets of one new
                // flow in one burst): a collision of the new session's other key with an
                // existing session must not borrow that session's rewrite.
                let own = self
                    .table
                    .get(hit.index)
                    .is_some_and(|s| hit.side == new.orig && *s.key(hit.side) == meta.key);
                if !own {
                    return Err(self.discard(Discard::NoForward));
                }
                Ok((hit, false))
            }
        }
    }
}
