//! The EAL `--lcores` syntax, parsed so that `check` catches mistakes before EAL does and
//! knows how many workers a configuration gets.
//!
//! ```text
//! lcores := group (',' group)*
//! group  := set ('@' set)?          lcore ids, optionally pinned to CPU ids
//! set    := n | n '-' n | '(' item (',' item)* ')'
//! item   := n | n '-' n
//! ```

/// The lcore ids named by an `--lcores` string, sorted and de-duplicated, or what is wrong.
pub fn parse_lcores(s: &str) -> Result<Vec<u32>, String> {
    let mut p = Parser {
        s: s.trim().as_bytes(),
        at: 0,
    };
    let mut ids = Vec::new();
    loop {
        ids.extend(p.set()?);
        if p.eat(b'@') {
            p.set()?; // CPU ids: checked for syntax only.
        }
        if p.at == p.s.len() {
            break;
        }
        if !p.eat(b',') {
            return Err(p.unexpected());
        }
    }
    ids.sort_unstable();
    ids.dedup();
    if let Some(&big) = ids.iter().find(|&&i| i >= 1024) {
        return Err(format!("lcore id {big} is too large (at most 1023)"));
    }
    Ok(ids)
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
