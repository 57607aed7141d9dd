//! The NAT's decisions about flows: which public endpoint a new flow from inside leaves with,
//! which private endpoint stands behind a public one for a new flow from outside, what a
//! session holds of the NAT (so that freeing it gives that back), and whether a session
//! admitted under an older policy is still admitted.
//!
//! The pipeline asks and obeys; everything NAT-shaped is decided here, on the worker's
//! [`Snat`] state and the policy in force.

use super::snat::{Snat, SnatError};
use crate::config::{Action, Filtering, Mapping};
use crate::flow::{FlowKey, FlowTable, Session, Side};
use crate::packet::IpProtocol;
use crate::policy::{Forward, MatchKey, Policy};
use std::net::Ipv4Addr;

/// An address and a port (for ICMP echo, the identifier).
pub type Endpoint = (Ipv4Addr, u16);

/// What a session holds of the NAT. Kept in the session's tag ([`Hold::tag`]), so freeing
/// the session gives back the right thing ([`Snat::release_session`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Hold {
    /// Nothing: a port forward or a static mapping gave the public endpoint.
    Nothing = 0,
    /// A share of a port of the pool, with sessions to other remote endpoints
    /// (endpoint-dependent mapping).
    Port = 1,
    /// A reference on an endpoint-independent mapping.
    Mapping = 2,
    /// A reference on an endpoint-independent mapping, and the session's remote address
    /// counted for address-dependent filtering ([`Snat::counts_contacts`]).
    CountedMapping = 3,
}

impl Hold {
    /// The session tag that stores it.
    #[inline(always)]
    pub const fn tag(self) -> u8 {
        self as u8
    }

    /// The hold a session tag stores (an unknown tag holds nothing).
    #[inline(always)]
    pub const fn of_tag(tag: u8) -> Hold {
        match tag {
            1 => Hold::Port,
            2 => Hold::Mapping,
            3 => Hold::CountedMapping,
            _ => Hold::Nothing,
        }
    }

    /// A reference on a mapping, its contact `counted` or not.
    #[inline(always)]
    pub const fn mapping(counted: bool) -> Hold {
        if counted {
            Hold::CountedMapping
        } else {
            Hold::Mapping
        }
    }

    /// What [`Snat::release`] is told: the mapping behaviour the endpoint was taken under,
    /// and whether the contact was counted. `None`: nothing to give back.
    #[inline(always)]
    fn released_as(self) -> Option<(Mapping, bool)> {
        match self {
            Hold::Nothing => None,
            Hold::Port => Some((Mapping::EndpointDependent, false)),
            Hold::Mapping => Some((Mapping::EndpointIndependent, false)),
            Hold::CountedMapping => Some((Mapping::EndpointIndependent, true)),
        }
    }
}

/// A public endpoint taken for a new session: what the session will hold, and what to give
/// back ([`Snat::give_back`]) if the session is not created after all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Taken {
    /// What the session will hold.
    pub hold: Hold,
    /// The flow's protocol.
    pub proto: IpProtocol,
    /// The inside endpoint.
    pub inside: Endpoint,
    /// The public endpoint it leaves with.
    pub public: Endpoint,
    /// The remote address (counted for address-dependent filtering).
    pub remote: Ipv4Addr,
}

impl Taken {
    /// Nothing taken: the public endpoint `public` of `inside` comes from a rule.
    const fn by_rule(proto: IpProtocol, inside: Endpoint, public: Endpoint) -> Taken {
        Taken {
            hold: Hold::Nothing,
            proto,
            inside,
            public,
            remote: Ipv4Addr::UNSPECIFIED,
        }
    }
}

/// How a new flow from outside reaches the inside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Way {
    /// A port forward (DNAT).
    Forward(Forward),
    /// A static 1:1 mapping of the public address to this inside address (the port kept).
    Static(Ipv4Addr),
    /// The endpoint-independent mapping of an inside endpoint, which the filtering lets the
    /// remote reach.
    Mapping,
}

/// The private endpoint behind a public one, for a new flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Behind {
    /// The inside endpoint the flow goes to.
    pub inside: Endpoint,
    /// What admits it.
    pub way: Way,
}

impl Behind {
    /// Whether a rule of the file (a forward or a static mapping) admits it, so that the
    /// ingress rules are consulted; a mapping is the inside host's own doing.
    pub fn by_rule(&self) -> bool {
        !matches!(self.way, Way::Mapping)
    }
}

/// The public endpoint of an inside endpoint with a static (1:1) mapping: the mapped address,
/// the port kept.
fn static_public(p: &Policy, inside: Endpoint) -> Option<Endpoint> {
    p.statics
        .public_of(inside.0)
        .map(|public| (public, inside.1))
}

/// The policy match key of a session's packets that carry the key `k` (ICMP: an echo
/// request, ports 0).
pub fn match_key(k: &crate::flow::FlowKey, icmp_type: u8) -> MatchKey {
    let icmp = k.protocol() == IpProtocol::ICMP;
    MatchKey {
        proto: k.protocol(),
        src: k.src_addr(),
        dst: k.dst_addr(),
        src_port: if icmp { 0 } else { k.src_port() },
        dst_port: if icmp { 0 } else { k.dst_port() },
        icmp_type: icmp.then_some(icmp_type),
    }
}

impl Snat {
    /// Whether `addr` is one of the appliance's public addresses: the pool's, a port
    /// forward's or a static mapping's.
    #[inline]
    pub fn is_public(&self, p: &Policy, addr: Ipv4Addr) -> bool {
        self.is_pool_address(addr)
            || p.forwards.has_address(addr)
            || p.statics.private_of(addr).is_some()
    }

    /// The public endpoint a new flow from `inside` to `remote` leaves with: its static mapping's
    /// (port kept), else one from the pool under the policy's mapping and pooling
    /// ([`Snat::map_independent`], [`Snat::share_dependent`]). An endpoint-dependent session shares
    /// a port with the sessions in `table` whose remote endpoints differ: a port is free for it
    /// when no session's outside tuple is `remote -> public` (one index lookup a candidate).
    ///
    /// # Errors
    /// [`SnatError`]: no pool address, this worker's ports used up, a protocol without
    /// ports.
    #[inline(always)]
    pub fn public_for(
        &mut self,
        p: &Policy,
        proto: IpProtocol,
        inside: Endpoint,
        remote: Endpoint,
        table: &FlowTable,
    ) -> Result<Taken, SnatError> {
        if let Some(public) = static_public(p, inside) {
            return Ok(Taken::by_rule(proto, inside, public));
        }
        let pooling = p.snat.pooling;
        let (public, hold) = match p.snat.mapping {
            Mapping::EndpointIndependent => (
                self.map_independent(proto, inside, remote.0, pooling)?,
                Hold::mapping(self.counts_contacts()),
            ),
            Mapping::EndpointDependent => {
                let unused = |public| {
                    table
                        .lookup(&FlowKey::sent_to(proto, remote, public))
                        .is_none()
                };
                (
                    self.share_dependent(proto, inside, pooling, unused)?,
                    Hold::Port,
                )
            }
        };
        Ok(Taken {
            hold,
            proto,
            inside,
            public,
            remote: remote.0,
        })
    }

    /// The public endpoint [`Snat::public_for`] will most likely give `inside` now, without
    /// taking it ([`Snat::predict`], or its static mapping's), for prefetching.
    #[inline]
    pub fn predict_public(
        &self,
        p: &Policy,
        proto: IpProtocol,
        inside: Endpoint,
    ) -> Option<Endpoint> {
        static_public(p, inside).or_else(|| self.predict(proto, inside, p.snat.mapping))
    }

    /// The private endpoint behind public endpoint `public` for a new flow from `remote`: a
    /// port forward's target, a static mapping's host (port kept), or the inside endpoint of
    /// an endpoint-independent mapping `filtering` lets `remote` reach.
    pub fn behind(
        &self,
        p: &Policy,
        proto: IpProtocol,
        public: Endpoint,
        remote: Ipv4Addr,
        filtering: Filtering,
    ) -> Option<Behind> {
        if let Some(f) = p.forwards.lookup(proto, public.0, public.1) {
            let inside = (*f.private.ip(), f.private.port());
            Some(Behind {
                inside,
                way: Way::Forward(f),
            })
        } else if let Some(private) = p.statics.private_of(public.0) {
            Some(Behind {
                inside: (private, public.1),
                way: Way::Static(private),
            })
        } else {
            self.inbound(proto, public, remote, filtering)
                .map(|inside| Behind {
                    inside,
                    way: Way::Mapping,
                })
        }
    }

    /// Takes what a new session from `remote` to `public`, admitted as `behind` says, holds:
    /// nothing for a rule, one more reference on the mapping otherwise. `None` if the mapping
    /// is gone.
    pub fn admit(
        &mut self,
        proto: IpProtocol,
        public: Endpoint,
        remote: Ipv4Addr,
        behind: &Behind,
    ) -> Option<Taken> {
        if behind.by_rule() {
            return Some(Taken::by_rule(proto, behind.inside, public));
        }
        let hold = Hold::mapping(self.counts_contacts());
        self.adopt(proto, public, remote).then_some(Taken {
            hold,
            proto,
            inside: behind.inside,
            public,
            remote,
        })
    }

    /// Gives back what `taken` took, for a session that was not created.
    pub fn give_back(&mut self, taken: &Taken) {
        if let Some((mapping, counted)) = taken.hold.released_as() {
            self.release(
                taken.proto,
                taken.inside,
                taken.public,
                taken.remote,
                mapping,
                counted,
            );
        }
    }

    /// Gives back what session `s` holds (its tag says what), when it ends.
    #[inline]
    pub fn release_session(&mut self, s: &Session) {
        let Some((mapping, counted)) = Hold::of_tag(s.tag()).released_as() else {
            return;
        };
        let (inside, outside) = (s.inside(), s.outside());
        self.release(
            inside.protocol(),
            (inside.src_addr(), inside.src_port()),
            (outside.dst_addr(), outside.dst_port()),
            outside.src_addr(),
            mapping,
            counted,
        );
    }

    /// Whether a session admitted under an older policy is still admitted by `p` (the
    /// recheck of DESIGN.md "Policy and the control thread"): the egress rules for a flow
    /// from inside; for one from outside, the forward or static mapping that admitted it
    /// must still lead to the same inside endpoint and the ingress rules allow it, or the
    /// filtering must still let its remote reach its mapping. A session that translates
    /// nothing (a tunnel port's, whose keys are the flow's two directions) is admitted by
    /// the rules of the side that opened it alone.
    pub fn still_admits(&self, p: &Policy, s: &Session) -> bool {
        let (inside, outside) = (s.inside(), s.outside());
        let proto = inside.protocol();
        // An ICMP session is an echo's: its rules match the request.
        let allowed =
            |set: &crate::policy::RuleSet, k| set.check(&match_key(k, 8)).action == Action::Allow;
        match s.orig_side() {
            Side::Inside => allowed(&p.egress, inside),
            Side::Outside if *inside == outside.reverse() => allowed(&p.ingress, outside),
            Side::Outside => {
                let public = (outside.dst_addr(), outside.dst_port());
                let private = (inside.src_addr(), inside.src_port());
                let behind = self.behind(p, proto, public, outside.src_addr(), p.snat.filtering);
                match behind.map(|b| b.way) {
                    Some(Way::Forward(f)) => {
                        (*f.private.ip(), f.private.port()) == private
                            && allowed(&p.ingress, outside)
                    }
                    Some(Way::Static(host)) => host == private.0 && allowed(&p.ingress, outside),
                    Some(Way::Mapping) => {
                        matches!(Hold::of_tag(s.tag()), Hold::Mapping | Hold::CountedMapping)
                    }
                    None => false,
                }
            }
        }
    }

    /// Counts the contacts of the sessions already open on endpoint-independent mappings,
    /// when a policy turns address-dependent filtering on: from then on every live session
    /// on a mapping is counted, as if the filtering had always been address-dependent.
    /// O(capacity), once for such a reload.
    pub fn count_open_contacts(&mut self, table: &mut FlowTable) {
        for idx in 0..table.capacity() {
            let Some(s) = table.get_mut(idx) else {
                continue;
            };
            if Hold::of_tag(s.tag()) != Hold::Mapping {
                continue;
            }
            s.set_tag(Hold::CountedMapping.tag());
            let outside = *s.outside();
            self.add_contact(
                outside.protocol(),
                (outside.dst_addr(), outside.dst_port()),
                outside.src_addr(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_round_trip_through_the_tag() {
        for h in [
            Hold::Nothing,
            Hold::Port,
            Hold::Mapping,
            Hold::CountedMapping,
        ] {
            assert_eq!(Hold::of_tag(h.tag()), h);
            assert!(h.tag() < 8, "three bits of the session's meta");
        }
        assert_eq!(Hold::of_tag(7), Hold::Nothing);
    }
}
