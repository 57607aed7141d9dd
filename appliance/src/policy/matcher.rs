//! Compiled first-match rule sets: the bit-vector packet classifier.
//!
//! A rule set is an ordered list of [`Rule`]s; a flow gets the action of the first rule all of
//! whose fields match it, or the set's default. A linear scan costs one rule test per rule, so
//! a few thousand rules would eat the whole per-packet budget. The compiled form is the
//! bit-vector scheme of Lakshman and Stiliadis ("High-speed policy-based packet forwarding
//! using efficient multi-dimensional range matching", SIGCOMM 1998), with the aggregation of
//! Baboescu and Varghese ("Scalable packet classification", SIGCOMM 2001):
//!
//! - Each field (protocol, source, destination, source port, destination port, ICMP type) is
//!   cut into *elementary intervals*: the ranges between consecutive rule boundaries, inside
//!   which every value matches exactly the same rules. Each interval points to a bitset with
//!   bit `i` set when rule `i` matches the values there. Identical bitsets are stored once.
//! - A lookup finds the interval of each field (for addresses and ports an index on the top
//!   16 or 8 bits narrows a binary search to the interval starts of that block; protocol and
//!   ICMP type use a direct table), ANDs the six bitsets and takes the lowest set bit: rule
//!   order is bit order, so that is the first match.
//! - Each bitset carries a summary word per 64 words (bit `j` set when word `j` is not zero).
//!   The AND runs over the summaries first and touches only words whose summary bit survives,
//!   so a match reads a few words instead of `rules / 64` of them.
//!
//! Lookup cost is one index read and a short binary search per field plus the words visited;
//! it allocates nothing and takes no scratch space. Below [`LINEAR_MAX`] rules a plain scan
//! is cheaper than six field lookups, so [`RuleSet::check`] scans those. Memory is the distinct bitsets per field (at most about
//! `2 * prefixes + 1` intervals, each `rules / 8` bytes), which is what [`MAX_RULES`] bounds.
//!
//! [`MAX_RULES`]: crate::config::validate::MAX_RULES

use super::PolicyError;
use crate::config::{Action, PortRange, Prefix};
use crate::packet::IpProtocol;
use hashbrown::HashMap;
use std::net::Ipv4Addr;

/// The fields of a packet a rule can look at.
///
/// For ICMP the ports are whatever the caller puts there (rules naming ports only match TCP
/// and UDP after validation); `icmp_type` is `None` for anything but ICMP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MatchKey {
    /// IP protocol.
    pub proto: IpProtocol,
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// TCP/UDP source port.
    pub src_port: u16,
    /// TCP/UDP destination port.
    pub dst_port: u16,
    /// ICMP type (RFC 792), for ICMP packets.
    pub icmp_type: Option<u8>,
}

/// The outcome of matching a flow against a rule set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Decision {
    /// What to do with the flow.
    pub action: Action,
    /// Index of the rule that decided, in file order; `None` when the set's default did.
    pub rule: Option<usize>,
}

/// One rule, with its values parsed. Empty lists match anything; a rule matches when every
/// field does.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rule {
    /// What a match does.
    pub action: Action,
    /// IP protocol, `None` for any.
    pub proto: Option<IpProtocol>,
    /// Source prefixes.
    pub src: Vec<Prefix>,
    /// Destination prefixes.
    pub dst: Vec<Prefix>,
    /// Source port ranges.
    pub src_ports: Vec<PortRange>,
    /// Destination port ranges.
    pub dst_ports: Vec<PortRange>,
    /// ICMP types; a rule with any only matches ICMP packets of those types.
    pub icmp_types: Vec<u8>,
}

impl Rule {
    /// A rule that matches every packet.
    pub fn any(action: Action) -> Rule {
        Rule {
            action,
            proto: None,
            src: Vec::new(),
            dst: Vec::new(),
            src_ports: Vec::new(),
            dst_ports: Vec::new(),
            icmp_types: Vec::new(),
        }
    }

    /// Whether the rule matches `key`, tested field by field (the definition the compiled
    /// matcher is checked against).
    pub fn matches(&self, key: &MatchKey) -> bool {
        self.proto.is_none_or(|p| p == key.proto)
            && (self.src.is_empty() || self.src.iter().any(|p| p.contains(key.src)))
            && (self.dst.is_empty() || self.dst.iter().any(|p| p.contains(key.dst)))
            && (self.src_ports.is_empty()
                || self.src_ports.iter().any(|r| r.contains(key.src_port)))
            && (self.dst_ports.is_empty()
                || self.dst_ports.iter().any(|r| r.contains(key.dst_port)))
            && (self.icmp_types.is_empty()
                || key.icmp_type.is_some_and(|t| self.icmp_types.contains(&t)))
    }
}

/// How a field's value finds its class (its distinct set of matching rules).
#[derive(Debug, Clone)]
enum Lookup {
    /// Interval starts (ascending, the first is 0) and the class of each interval, with an
    /// index on the value's top bits so the binary search runs over a handful of starts:
    /// `index[b]` is the first interval starting at or after `b << shift`.
    Intervals {
        shift: u32,
        index: Box<[u32]>,
        starts: Box<[u32]>,
        classes: Box<[u32]>,
    },
    /// The class of every value (small domains: protocol, ICMP type).
    Direct(Box<[u32]>),
}

/// One field: its lookup, and per class a bitset of `words` words and its summary of
/// `words / 64` words, rounded up (bit `j` of the summary: word `j` is not zero). Summaries are kept
/// apart from the words so that the first pass of a match reads a few dense cache lines.
#[derive(Debug, Clone)]
struct Field {
    lookup: Lookup,
    words: usize,
    summaries: Box<[u64]>,
    bits: Box<[u64]>,
}

impl Field {
    fn class(&self, value: u32) -> usize {
        match &self.lookup {
            Lookup::Intervals {
                shift,
                index,
                starts,
                classes,
            } => {
                let bucket = (value >> shift) as usize;
                let lo = index[bucket] as usize;
                let hi = index[bucket + 1] as usize;
                // Starts in this bucket that are <= value; none: the interval began in an
                // earlier bucket (lo > 0 then, as starts[0] == 0 is in bucket 0).
                let k = starts[lo..hi].partition_point(|&s| s <= value);
                classes[lo + k - 1] as usize
            }
            Lookup::Direct(table) => table[value as usize] as usize,
        }
    }

    /// Cuts `0..=max` into elementary intervals for `ranges` (rule, first, last) and gives each
    /// the bitset of rules matching there; rules in `wildcard` match everywhere. The top-bits
    /// index gets about one block per interval, at most `2^max_index_bits` blocks (0: a direct
    /// table of every value instead). Errors: the bitsets would pass `max_bytes`.
    fn build(
        rules: usize,
        max: u32,
        ranges: &[(usize, u32, u32)],
        wildcard: &[usize],
        max_index_bits: u32,
        max_bytes: usize,
    ) -> Result<Field, ()> {
        let words = rules.div_ceil(64);
        // (position, rule, +1 / -1): a range adds its rule at `first` and drops it after `last`.
        let mut events: Vec<(u32, usize, bool)> = Vec::with_capacity(ranges.len() * 2);
        for &(rule, first, last) in ranges {
            events.push((first, rule, true));
            if last < max {
                events.push((last + 1, rule, false));
            }
        }
        events.sort_unstable_by_key(|e| e.0);
        let mut current = vec![0u64; words];
        for &r in wildcard {
            current[r / 64] |= 1 << (r % 64);
        }
        // A rule may list overlapping ranges: it matches while any of them is open.
        let mut open = vec![0u32; rules];
        let mut dedup: HashMap<Vec<u64>, u32> = HashMap::new();
        let mut summaries: Vec<u64> = Vec::new();
        let mut bits: Vec<u64> = Vec::new();
        let mut starts: Vec<u32> = Vec::new();
        let mut classes: Vec<u32> = Vec::new();
        let mut e = 0;
        let mut pos = 0u32;
        loop {
            while e < events.len() && events[e].0 == pos {
                let (_, rule, add) = events[e];
                if add {
                    open[rule] += 1;
                    current[rule / 64] |= 1 << (rule % 64);
                } else {
                    open[rule] -= 1;
                    if open[rule] == 0 {
                        current[rule / 64] &= !(1 << (rule % 64));
                    }
                }
                e += 1;
            }
            let next_class = dedup.len() as u32;
            if 8 * (summaries.len() + bits.len() + words.div_ceil(64) + words) > max_bytes {
                return Err(());
            }
            let class = *dedup.entry_ref(current.as_slice()).or_insert_with(|| {
                for chunk in current.chunks(64) {
                    let mut s = 0u64;
                    for (j, w) in chunk.iter().enumerate() {
                        s |= u64::from(*w != 0) << j;
                    }
                    summaries.push(s);
                }
                bits.extend_from_slice(&current);
                next_class
            });
            if classes.last() != Some(&class) {
                starts.push(pos);
                classes.push(class);
            }
            match events.get(e) {
                Some(&(p, _, _)) => pos = p,
                None => break,
            }
        }
        let lookup = if max_index_bits == 0 {
            let mut table = Vec::with_capacity(max as usize + 1);
            for (i, &class) in classes.iter().enumerate() {
                let end = starts.get(i + 1).map_or(max as usize + 1, |&s| s as usize);
                table.resize(end, class);
            }
            Lookup::Direct(table.into_boxed_slice())
        } else {
            let domain_bits = (u64::from(max) + 1).ilog2();
            let index_bits = starts
                .len()
                .next_power_of_two()
                .ilog2()
                .clamp(1, max_index_bits);
            let shift = domain_bits - index_bits;
            let mut index = Vec::with_capacity((1 << index_bits) + 1);
            let mut i = 0;
            for block in 0..=1u64 << index_bits {
                while i < starts.len() && u64::from(starts[i]) >> shift < block {
                    i += 1;
                }
                index.push(i as u32);
            }
            Lookup::Intervals {
                shift,
                index: index.into_boxed_slice(),
                starts: starts.into_boxed_slice(),
                classes: classes.into_boxed_slice(),
            }
        };
        Ok(Field {
            lookup,
            words,
            summaries: summaries.into_boxed_slice(),
            bits: bits.into_boxed_slice(),
        })
    }

    fn memory_bytes(&self) -> usize {
        let lookup = match &self.lookup {
            Lookup::Intervals {
                index,
                starts,
                classes,
                ..
            } => 4 * (index.len() + starts.len() + classes.len()),
            Lookup::Direct(t) => 4 * t.len(),
        };
        lookup + 8 * (self.summaries.len() + self.bits.len())
    }

    fn intervals(&self) -> usize {
        match &self.lookup {
            Lookup::Intervals { starts, .. } => starts.len(),
            Lookup::Direct(t) => t.len(),
        }
    }

    fn classes(&self) -> usize {
        self.bits.len().checked_div(self.words).unwrap_or(1)
    }
}

/// Rule sets up to this size are matched by a linear scan, which the bench
/// (`benches/benches/policy.rs`, group `policy_crossover`) measures faster there.
pub const LINEAR_MAX: usize = 16;

/// Most bytes of bitsets one field of a rule set may compile to.
pub const MAX_FIELD_BYTES: usize = 256 << 20;

/// The value the ICMP-type field takes for packets that are not ICMP.
const NO_ICMP_TYPE: u32 = 256;

/// A compiled, immutable rule set: first match wins, else the default.
#[derive(Debug, Clone)]
pub struct RuleSet {
    rules: Vec<Rule>,
    actions: Box<[Action]>,
    default: Action,
    summary_words: usize,
    proto: Field,
    src: Field,
    dst: Field,
    src_port: Field,
    dst_port: Field,
    icmp_type: Field,
}

/// Size figures of a compiled rule set, for `appliance check` and the benches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleSetStats {
    /// Number of rules.
    pub rules: usize,
    /// Elementary intervals of the source and destination address fields.
    pub address_intervals: [usize; 2],
    /// Elementary intervals of the source and destination port fields.
    pub port_intervals: [usize; 2],
    /// Distinct bitsets (sets of matching rules) of the source address, destination
    /// address, source port and destination port fields.
    pub bitsets: [usize; 4],
    /// Bytes held by the compiled matcher (lookup tables and bitsets).
    pub memory_bytes: usize,
}

impl RuleSet {
    /// Compiles `rules` (in match order) with `default` for flows no rule matches.
    ///
    /// Errors: more than [`MAX_RULES`](crate::config::validate::MAX_RULES) rules; bitsets of one field
    /// past [`MAX_FIELD_BYTES`] (many rules, each listing many prefixes or port ranges).
    pub fn new(rules: Vec<Rule>, default: Action) -> Result<RuleSet, PolicyError> {
        Self::with_limit(rules, default, MAX_FIELD_BYTES)
    }

    fn with_limit(
        rules: Vec<Rule>,
        default: Action,
        max_bytes: usize,
    ) -> Result<RuleSet, PolicyError> {
        let max = crate::config::validate::MAX_RULES;
        if rules.len() > max {
            return Err(PolicyError::TooManyRules {
                count: rules.len(),
                max,
            });
        }
        let n = rules.len();
        let field = |name: &'static str,
                     max: u32,
                     index_bits: u32,
                     ranges_of: &dyn Fn(&Rule) -> Vec<(u32, u32)>| {
            let mut ranges = Vec::new();
            let mut wildcard = Vec::new();
            for (i, r) in rules.iter().enumerate() {
                let rs = ranges_of(r);
                if rs.is_empty() {
                    wildcard.push(i);
                }
                ranges.extend(rs.into_iter().map(|(a, b)| (i, a, b)));
            }
            Field::build(n, max, &ranges, &wildcard, index_bits, max_bytes).map_err(|()| {
                PolicyError::MatcherTooLarge {
                    field: name,
                    max_bytes,
                }
            })
        };
        let prefixes = |ps: &[Prefix]| ps.iter().map(|p| (p.first(), p.last())).collect();
        let ports = |rs: &[PortRange]| {
            rs.iter()
                .map(|r| (u32::from(r.start), u32::from(r.end)))
                .collect()
        };
        let proto = field("proto", 255, 0, &|r| {
            r.proto
                .map(|p| (u32::from(p.value()), u32::from(p.value())))
                .into_iter()
                .collect()
        })?;
        let src = field("src", u32::MAX, 16, &|r| prefixes(&r.src))?;
        let dst = field("dst", u32::MAX, 16, &|r| prefixes(&r.dst))?;
        let src_port = field("src_ports", 65535, 16, &|r| ports(&r.src_ports))?;
        let dst_port = field("dst_ports", 65535, 16, &|r| ports(&r.dst_ports))?;
        let icmp_type = field("icmp_types", NO_ICMP_TYPE, 0, &|r| {
            r.icmp_types
                .iter()
                .map(|&t| (u32::from(t), u32::from(t)))
                .collect()
        })?;
        Ok(RuleSet {
            actions: rules.iter().map(|r| r.action).collect(),
            summary_words: n.div_ceil(64).div_ceil(64),
            rules,
            default,
            proto,
            src,
            dst,
            src_port,
            dst_port,
            icmp_type,
        })
    }

    /// The first rule matching `key`, or the default. Allocates nothing.
    ///
    /// Sets of at most [`LINEAR_MAX`] rules are scanned (fewer loads than six field lookups);
    /// larger ones take the bit-vector path.
    #[inline]
    pub fn check(&self, key: &MatchKey) -> Decision {
        if self.rules.len() <= LINEAR_MAX {
            self.check_linear(key)
        } else {
            self.check_bitvector(key)
        }
    }

    /// The first rule matching `key` by the bit-vector path, whatever the set's size (what
    /// [`RuleSet::check`] does for sets past [`LINEAR_MAX`] rules).
    pub fn check_bitvector(&self, key: &MatchKey) -> Decision {
        let fields = [
            (&self.proto, u32::from(key.proto.value())),
            (&self.src, u32::from(key.src)),
            (&self.dst, u32::from(key.dst)),
            (&self.src_port, u32::from(key.src_port)),
            (&self.dst_port, u32::from(key.dst_port)),
            (
                &self.icmp_type,
                key.icmp_type.map_or(NO_ICMP_TYPE, u32::from),
            ),
        ];
        let sw = self.summary_words;
        let nw = self.proto.words;
        // The class bitsets of this packet's values: summaries and words, field by field.
        let classes = fields.map(|(f, v)| (f, f.class(v)));
        let summaries = classes.map(|(f, c)| &f.summaries[c * sw..(c + 1) * sw]);
        let words = classes.map(|(f, c)| &f.bits[c * nw..(c + 1) * nw]);
        for j in 0..sw {
            let mut summary = summaries.iter().fold(u64::MAX, |acc, s| acc & s[j]);
            while summary != 0 {
                let w = j * 64 + summary.trailing_zeros() as usize;
                let word = words.iter().fold(u64::MAX, |acc, s| acc & s[w]);
                if word != 0 {
                    let rule = w * 64 + word.trailing_zeros() as usize;
                    return Decision {
                        action: self.actions[rule],
                        rule: Some(rule),
                    };
                }
                summary &= summary - 1;
            }
        }
        Decision {
            action: self.default,
            rule: None,
        }
    }

    /// The same answer as [`RuleSet::check`], by testing every rule in order: the reference
    /// the compiled matcher is tested and benchmarked against, and the path `explain` takes.
    #[inline(always)]
    pub fn check_linear(&self, key: &MatchKey) -> Decision {
        match self.rules.iter().position(|r| r.matches(key)) {
            Some(i) => Decision {
                action: self.rules[i].action,
                rule: Some(i),
            },
            None => Decision {
                action: self.default,
                rule: None,
            },
        }
    }

    /// The rules, in match order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The verdict when no rule matches.
    pub fn default_action(&self) -> Action {
        self.default
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there are no rules (every flow gets the default).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Size figures of the compiled form.
    pub fn stats(&self) -> RuleSetStats {
        let fields = [
            &self.proto,
            &self.src,
            &self.dst,
            &self.src_port,
            &self.dst_port,
            &self.icmp_type,
        ];
        RuleSetStats {
            rules: self.rules.len(),
            address_intervals: [self.src.intervals(), self.dst.intervals()],
            port_intervals: [self.src_port.intervals(), self.dst_port.intervals()],
            bitsets: [
                self.src.classes(),
                self.dst.classes(),
                self.src_port.classes(),
                self.dst_port.classes(),
            ],
            memory_bytes: fields.iter().map(|f| f.memory_bytes()).sum(),
        }
    }
}

#[cfg(test)]
mod tests;
