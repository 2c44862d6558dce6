//! A plugin's rule names, for metrics, `/plugins` and the decision log.
//! Kept in one block of text: a 100 000-rule policy's names take ~1 MB
//! here against ~3 MB as separate strings (24 bytes a `String` and a
//! 16- to 32-byte allocation each), for as long as the policy serves.

/// Rule names in one block, by rule number.
#[derive(Debug, Default)]
pub struct RuleNames {
    text: String,
    /// Where each name ends in `text`.
    ends: Vec<u32>,
}

/// No names (a plugin without rules).
pub static NO_RULES: RuleNames = RuleNames {
    text: String::new(),
    ends: Vec::new(),
};

impl RuleNames {
    /// Room for `n` names of `bytes` bytes in all.
    pub fn with_capacity(n: usize, bytes: usize) -> RuleNames {
        RuleNames {
            text: String::with_capacity(bytes),
            ends: Vec::with_capacity(n),
        }
    }

    /// Adds the next rule's name.
    pub fn push(&mut self, name: &str) {
        self.text.push_str(name);
        // A policy's text is far below 4 GiB (the checker's spans are u32).
        self.ends.push(self.text.len() as u32);
    }

    /// How many rules.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The name of rule `i`.
    pub fn get(&self, i: usize) -> Option<&str> {
        let end = *self.ends.get(i)? as usize;
        let start = match i {
            0 => 0,
            _ => self.ends[i - 1] as usize,
        };
        self.text.get(start..end)
    }

    /// The names in rule order.
    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }
}

impl<S: AsRef<str>> FromIterator<S> for RuleNames {
    fn from_iter<I: IntoIterator<Item = S>>(names: I) -> RuleNames {
        let mut out = RuleNames::default();
        for n in names {
            out.push(n.as_ref());
        }
        out.text.shrink_to_fit();
        out.ends.shrink_to_fit();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_back_by_number_and_in_order() {
        let names: RuleNames = ["a", "", "long_name", "é"].into_iter().collect();
        assert_eq!(names.len(), 4);
        assert_eq!(names.get(0), Some("a"));
        assert_eq!(names.get(1), Some(""));
        assert_eq!(names.get(2), Some("long_name"));
        assert_eq!(names.get(3), Some("é"));
        assert_eq!(names.get(4), None);
        assert_eq!(
            names.iter().collect::<Vec<_>>(),
            ["a", "", "long_name", "é"]
        );
        assert!(NO_RULES.is_empty());
        assert_eq!(NO_RULES.get(0), None);
    }
}
