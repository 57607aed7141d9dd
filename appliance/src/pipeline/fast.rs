//! The fast path: a packet of a known session is checked against the session (the side it
//! arrived on, the policy generation), counted, tracked (TCP), translated from the session's
//! keys and checksum deltas, and forwarded. A session admitted under an older policy is
//! rechecked first, once.

use super::action::Disposition;
use super::buf::PacketBuf;
use super::class::{Class, Trace};
use super::env::{Ctx, Env};
use super::meta::{Kind, Meta};
use super::reason::Discard;
use super::shard::Shard;
use crate::config::{OnReload, Role};
use crate::flow::{FlowKey, Hit, Session, Side};
use crate::packet::translate::translate;
use crate::packet::ChecksumDeltas;

impl<T: Trace> Shard<T> {
    /// The fast path: a packet of a known session.
    ///
    /// It fetches the session record once, for the checks, the count and the rewrite. (Three
    /// fetches, each with its own bounds and liveness test, cost 22 instructions a packet more
    /// by callgrind: the compiler cannot keep a record across the writes in between.)
    ///
    /// `TUNNEL`: the burst came in on a `gwlb` port ([`super::tunnel`]). Its packets
    /// translate nothing and go back into the tunnel; one that came in no tunnel never uses
    /// a session. The data path's other ports get the code without these steps.
    #[inline(always)]
    pub(super) fn hit<B: PacketBuf, const TUNNEL: bool>(
        &mut self,
        cx: &Ctx<'_>,
        pkt: &mut B,
        meta: &Meta,
        hit: Hit,
    ) -> Disposition {
        if TUNNEL && !meta.via.tunnelled() {
            return self.untunnelled(cx, pkt, meta);
        }
        self.trace.class(Class::Reply);
        let generation = cx.env.policy.generation as u32;
        let len = pkt.bytes().len() as u32;
        let Some(s) = self.table.get_mut(hit.index) else {
            return self.discard(Discard::SessionGone);
        };
        if !arrives_right(cx, hit.side, s) || (TUNNEL && !meta.via.may_use(hit.side)) {
            return self.discard(Discard::SpoofedSource);
        }
        if s.policy_generation() != generation {
            return self.hit_recheck::<B, TUNNEL>(cx, pkt, meta, hit);
        }
        s.count(len);
        let idle = cx.now > s.last_seen();
        let to = *s.key(hit.side.other());
        let deltas = s.deltas_from(hit.side);
        let tcp = (meta.kind == Kind::TCP).then_some(meta.tcp_flags);
        self.table.follow(hit, cx.now, tcp, idle);
        if TUNNEL {
            return self.send_back(cx, pkt, meta);
        }
        self.send_translated(cx, pkt, meta, &to, deltas)
    }

    /// The fast path of a session admitted under an older policy: checks it against the
    /// current one first (once per session and policy change), then takes the fast path,
    /// which the recheck made current.
    #[cold]
    #[inline(never)]
    fn hit_recheck<B: PacketBuf, const TUNNEL: bool>(
        &mut self,
        cx: &Ctx<'_>,
        pkt: &mut B,
        meta: &Meta,
        hit: Hit,
    ) -> Disposition {
        if !self.recheck(&cx.env, hit.index) {
            return self.discard(Discard::PolicyRecheckDeny);
        }
        self.hit::<B, TUNNEL>(cx, pkt, meta, hit)
    }

    /// Re-checks session `idx` against the current policy; false if it was closed.
    fn recheck(&mut self, env: &Env<'_>, idx: u32) -> bool {
        let generation = env.policy.generation as u32;
        let keep = env.policy.sessions.on_reload == OnReload::Keep || {
            let Some(s) = self.table.get(idx) else {
                return false;
            };
            self.snat.still_admits(env.policy, s)
        };
        if keep {
            if let Some(s) = self.table.get_mut(idx) {
                s.set_policy_generation(generation);
            }
            true
        } else {
            self.close(idx);
            false
        }
    }

    /// Translates a packet of session `hit` (it arrived on `hit.side`), decrements its TTL,
    /// routes it and addresses the frame to the next hop: [`Shard::send_translated`] with the
    /// session's rewrite. The tail of session creation.
    #[inline(always)]
    pub(super) fn send_session<B: PacketBuf>(
        &mut self,
        cx: &Ctx<'_>,
        pkt: &mut B,
        meta: &Meta,
        hit: Hit,
    ) -> Disposition {
        let Some(s) = self.table.get(hit.index) else {
            return self.discard(Discard::SessionGone);
        };
        let to = *s.key(hit.side.other());
        let deltas = s.deltas_from(hit.side);
        self.send_translated(cx, pkt, meta, &to, deltas)
    }

    /// Translates a packet to `to`, the session's key of the other side, with the checksum
    /// `deltas` of its direction ([`translate`]), decrements its TTL, routes it and
    /// addresses the frame to the next hop. A packet whose TTL runs out is answered with an
    /// ICMP time exceeded instead.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn send_translated<B: PacketBuf>(
        &mut self,
        cx: &Ctx<'_>,
        pkt: &mut B,
        meta: &Meta,
        to: &FlowKey,
        deltas: ChecksumDeltas,
    ) -> Disposition {
        let (addrs, ports) = to.reverse_wire();
        let transport = meta.kind.transport();
        if translate(pkt.bytes_mut(), &meta.at, transport, addrs, ports, deltas) {
            self.forward(cx, pkt, meta, to.src_addr())
        } else {
            self.time_exceeded(cx, pkt, meta)
        }
    }
}

/// Whether a packet that matched `side` of session `s` came in where that side's packets
/// come from: a session's inside tuple only from an inside (or one-arm) port, its outside
/// tuple only from an outside (or one-arm) port, or from an inside port when the session is
/// hairpinned (its other end is an inside host). Otherwise somebody outside forges an inside
/// host's packets (or the reverse), and the packet must not use the session.
#[inline]
pub(super) fn arrives_right(cx: &Ctx<'_>, side: Side, s: &Session) -> bool {
    match (side, cx.role) {
        (Side::Inside, Some(Role::Outside)) => false,
        // The outside tuple's source is a private host only for a hairpinned session, whose
        // packets come from the inside, never from the outside port.
        (Side::Outside, Some(Role::Inside)) => cx.env.policy.is_private(s.outside().src_addr()),
        (Side::Outside, Some(Role::Outside)) => !cx.env.policy.is_private(s.outside().src_addr()),
        _ => true,
    }
}
