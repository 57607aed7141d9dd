//! The EAL `--lcores` syntax, parsed so that `check` catches mistakes before EAL does and
//! knows how many workers a configuration gets; and `"auto"`, which fits the lcores to the
//! CPUs the process is given, so that one file (the VM image's) serves every machine size.
//!
//! ```text
//! lcores := group (',' group)*
//! group  := set ('@' set)?          lcore ids, optionally pinned to CPU ids
//! set    := n | n '-' n | '(' item (',' item)* ')'
//! item   := n | n '-' n
//! ```

/// The value of `eal.lcores` that asks for one lcore per CPU of the process's affinity.
pub const AUTO: &str = "auto";

/// At most this many lcores from `"auto"`: DPDK 22.11 as Debian builds it has
/// `RTE_MAX_LCORE` = 128, and lcore ids must stay below it.
const AUTO_MAX_LCORES: usize = 128;

/// The lcore ids named by an `--lcores` string, sorted and de-duplicated, or what is wrong.
pub fn parse_lcores(s: &str) -> Result<Vec<u32>, String> {
    parse_lcore_set(s).map(|set| set.lcores)
}

/// What an `--lcores` string names: its lcores, and the CPUs their threads run on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LcoreSet {
    /// Lcore ids, sorted and de-duplicated.
    pub lcores: Vec<u32>,
    /// CPU ids, sorted and de-duplicated: the `@` sets, or for a group without one the lcore
    /// ids themselves (EAL pins lcore `n` to CPU `n` then).
    pub cpus: Vec<u32>,
}

/// Parses an `--lcores` string into its lcores and CPUs, or says what is wrong.
pub fn parse_lcore_set(s: &str) -> Result<LcoreSet, String> {
    let mut p = Parser {
        s: s.trim().as_bytes(),
        at: 0,
    };
    let mut ids = Vec::new();
    let mut cpus = Vec::new();
    loop {
        let group = p.set()?;
        if p.eat(b'@') {
            cpus.extend(p.set()?);
        } else {
            cpus.extend(&group);
        }
        ids.extend(group);
        if p.at == p.s.len() {
            break;
        }
        if !p.eat(b',') {
            return Err(p.unexpected());
        }
    }
    for v in [&mut ids, &mut cpus] {
        v.sort_unstable();
        v.dedup();
    }
    if let Some(&big) = ids.iter().find(|&&i| i >= 1024) {
        return Err(format!("lcore id {big} is too large (at most 1023)"));
    }
    Ok(LcoreSet { lcores: ids, cpus })
}

/// The `--lcores` string `"auto"` stands for on a process that may run on `cpus`: lcore 0
/// (control) on the first CPU, then one worker lcore on each other CPU. With a single CPU
/// one worker shares it with control: slow, but the appliance still forwards.
pub fn auto_lcores(cpus: &[u32]) -> String {
    let mut cpus: Vec<u32> = cpus.to_vec();
    cpus.sort_unstable();
    cpus.dedup();
    let first = cpus.first().copied().unwrap_or(0);
    if cpus.len() < 2 {
        return format!("0@{first},1@{first}");
    }
    cpus.iter()
        .take(AUTO_MAX_LCORES)
        .enumerate()
        .map(|(lcore, cpu)| format!("{lcore}@{cpu}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The CPUs this process may run on (`Cpus_allowed_list` in `/proc/self/status`): EAL pins
/// its threads within them, and a thread pinned outside fails.
pub fn allowed_cpus() -> Result<Vec<u32>, String> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("cannot read /proc/self/status: {e}"))?;
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .ok_or("/proc/self/status has no Cpus_allowed_list")?;
    parse_cpu_list(list)
}

/// A kernel CPU list (`"0-3,6"`), as in `Cpus_allowed_list`.
fn parse_cpu_list(list: &str) -> Result<Vec<u32>, String> {
    let mut p = Parser {
        s: list.trim().as_bytes(),
        at: 0,
    };
    let mut cpus = p.item()?;
    while p.eat(b',') {
        cpus.extend(p.item()?);
    }
    if p.at != p.s.len() {
        return Err(format!("CPU list {:?}: {}", list.trim(), p.unexpected()));
    }
    cpus.sort_unstable();
    cpus.dedup();
    Ok(cpus)
}

/// A short form of sorted CPU ids for messages: `0-3,6`.
pub fn cpu_list(cpus: &[u32]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let mut j = i;
        while j + 1 < cpus.len() && cpus[j + 1] == cpus[j] + 1 {
            j += 1;
        }
        out.push(if i == j {
            cpus[i].to_string()
        } else {
            format!("{}-{}", cpus[i], cpus[j])
        });
        i = j + 1;
    }
    out.join(",")
}

struct Parser<'a> {
    s: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn eat(&mut self, c: u8) -> bool {
        if self.s.get(self.at) == Some(&c) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn unexpected(&self) -> String {
        match self.s.get(self.at) {
            Some(&c) => format!("unexpected {:?} at position {}", c as char, self.at + 1),
            None => "unexpected end".to_string(),
        }
    }

    fn number(&mut self) -> Result<u32, String> {
        let start = self.at;
        while self.s.get(self.at).is_some_and(u8::is_ascii_digit) {
            self.at += 1;
        }
        if start == self.at {
            return Err(self.unexpected());
        }
        std::str::from_utf8(&self.s[start..self.at])
            .ok()
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| "number too large".to_string())
    }

    fn item(&mut self) -> Result<Vec<u32>, String> {
        let a = self.number()?;
        if self.eat(b'-') {
            let b = self.number()?;
            if b < a {
                return Err(format!("range {a}-{b} is backwards"));
            }
            if b - a > 1024 {
                return Err(format!("range {a}-{b} is too large"));
            }
            Ok((a..=b).collect())
        } else {
            Ok(vec![a])
        }
    }

    fn set(&mut self) -> Result<Vec<u32>, String> {
        if self.eat(b'(') {
            let mut v = self.item()?;
            while self.eat(b',') {
                v.extend(self.item()?);
            }
            if !self.eat(b')') {
                return Err(self.unexpected());
            }
            Ok(v)
        } else {
            self.item()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(parse_lcores("0-1").unwrap(), vec![0, 1]);
        assert_eq!(parse_lcores("0,2,4").unwrap(), vec![0, 2, 4]);
        assert_eq!(parse_lcores("0@0,1@1,2@1").unwrap(), vec![0, 1, 2]);
        assert_eq!(parse_lcores("(0-2)@(0,1)").unwrap(), vec![0, 1, 2]);
        assert_eq!(parse_lcores(" 3 ").unwrap(), vec![3]);
        assert_eq!(parse_lcores("1,1").unwrap(), vec![1]);
    }

    #[test]
    fn cpus_are_the_at_sets_or_the_lcores_themselves() {
        let set = |s| parse_lcore_set(s).unwrap();
        assert_eq!(set("0-2").cpus, vec![0, 1, 2]);
        assert_eq!(set("0@0,1@1,2@1").cpus, vec![0, 1]);
        assert_eq!(set("(0-2)@(4,5)").cpus, vec![4, 5]);
        assert_eq!(set("0@3,1").cpus, vec![1, 3]);
        assert_eq!(set("0@3,1").lcores, vec![0, 1]);
    }

    #[test]
    fn auto_is_control_on_the_first_cpu_and_a_worker_on_each_other() {
        assert_eq!(auto_lcores(&[0, 1]), "0@0,1@1");
        assert_eq!(auto_lcores(&[2, 3, 5, 4]), "0@2,1@3,2@4,3@5");
        // One CPU: control and one worker share it.
        assert_eq!(auto_lcores(&[7]), "0@7,1@7");
        let many: Vec<u32> = (0..300).collect();
        assert_eq!(parse_lcores(&auto_lcores(&many)).unwrap().len(), 128);
        // What auto gives is itself valid --lcores syntax naming exactly those CPUs.
        assert_eq!(
            parse_lcore_set(&auto_lcores(&[2, 3, 5])).unwrap().cpus,
            vec![2, 3, 5]
        );
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-1\n").unwrap(), vec![0, 1]);
        assert_eq!(parse_cpu_list("0,2-4,7").unwrap(), vec![0, 2, 3, 4, 7]);
        assert!(parse_cpu_list("0-").is_err());
        assert!(parse_cpu_list("0 1").is_err());
        assert_eq!(cpu_list(&[0, 1, 2, 4, 6, 7]), "0-2,4,6-7");
        assert_eq!(cpu_list(&[3]), "3");
        assert!(!allowed_cpus().unwrap().is_empty());
    }

    #[test]
    fn mistakes() {
        for bad in [
            "",
            "a",
            "0-",
            "2-1",
            "0,,1",
            "0@",
            "(0,1",
            "0-1,banana",
            "5000",
            "0 1",
        ] {
            assert!(parse_lcores(bad).is_err(), "{bad:?}");
        }
    }
}
