//! Planning rule by rule, in whatever order the rules come: a server hands
//! each rule over as soon as the checker has typed it
//! ([`crate::check::check_for_serving_with`]), and the planner keeps only
//! what the compiled policy needs of it (its verdict's place, or its shape
//! and constants, and its index keys), freeing the rest. The rules' order
//! is known only once all are checked; [`JitPolicy::compile_planned`]
//! finds each rule's plan by where the rule starts in the source.

#![deny(unsafe_code)]

use super::*;
use crate::ir::index::IndexBuilder;

/// Marks a plan that is not a constant verdict in [`Planner`]'s list.
const OTHER: u32 = 1 << 31;

/// What planning made of one rule, kept until the rules' order is known.
pub(super) enum Early {
    /// The JIT does not lower it: the interpreter runs it (its syntax is
    /// kept).
    Interp,
    /// One static verdict (its place in the verdict table): no code.
    Const(u32),
    /// Code: the shape's number and the constants it reads. `lowers`: this
    /// rule keeps the syntax the shape's function is lowered from (the
    /// first rule planned with that shape).
    Jit {
        shape: u32,
        k: Box<[i64]>,
        lowers: bool,
    },
    /// Already taken into the compiled policy.
    Taken,
}

/// Plans rules one at a time: the tables every plan writes into (literals,
/// verdicts, shapes), the plans of rules handed over early, and, for a
/// server, the rule index built from them.
pub struct Planner {
    pub(super) values: Vec<Value>,
    pub(super) ids: FxHashMap<Value, i64>,
    pub(super) verdicts: Vec<Verdict>,
    verdict_ids: VerdictIds,
    /// Shape text to its number.
    shapes: FxHashMap<String, u32>,
    /// Per rule handed over by [`Planner::rule`], in the order they came:
    /// a constant rule's verdict, or ([`OTHER`] |) a place in `others`.
    /// Four bytes a rule while a 100 000-rule policy loads.
    plans: Vec<u32>,
    others: Vec<Early>,
    /// Per rule handed over: where it starts in the source.
    pub(super) starts: Vec<u32>,
    /// Keys of the rules planned so far, numbered as they came (a server's
    /// checker leaves the policy's index to be built from them).
    pub(super) index: Option<IndexBuilder>,
    /// The context fields the rules planned so far read.
    pub(super) fields: u32,
    /// Whether some rule that is code (not a constant verdict) reads
    /// `query.name`: else compiled code never needs the name's id.
    pub(super) name_slot: bool,
    /// Free each rule's syntax once planned, but for the rules that need
    /// it (interpreted ones, and the one each shape is lowered from).
    pub(super) release: bool,
}

impl Planner {
    pub(super) fn new(release: bool) -> Planner {
        Planner {
            values: Vec::new(),
            ids: FxHashMap::default(),
            verdicts: Vec::new(),
            verdict_ids: VerdictIds::default(),
            shapes: FxHashMap::default(),
            plans: Vec::new(),
            others: Vec::new(),
            starts: Vec::new(),
            index: None,
            fields: 0,
            name_slot: false,
            release,
        }
    }

    /// A planner for a server: takes rules from
    /// [`crate::check::check_for_serving_with`]'s hook ([`Planner::rule`]),
    /// frees what it no longer needs of them, and builds the rule index
    /// that checker leaves empty. Finish with [`JitPolicy::compile_planned`].
    pub fn for_serving() -> Planner {
        Planner {
            index: Some(IndexBuilder::default()),
            ..Planner::new(true)
        }
    }

    /// Plans `r`, checked and final, now: indexes it, plans it and takes
    /// the syntax the compiled policy will not read (a constant rule's, or
    /// a rule's whose shape is already planned). `sets` are the policy's
    /// constant sets so far (those `r` reads are among them).
    pub fn rule(&mut self, r: &mut Rule, sets: &[ConstSet]) {
        if let Some(ix) = &mut self.index {
            ix.add(r, sets);
        }
        let planned = self.plan(r, sets);
        match planned {
            Early::Const(v) if v < OTHER => self.plans.push(v),
            other => {
                self.plans.push(OTHER | self.others.len() as u32);
                self.others.push(other);
            }
        }
        self.starts.push(r.span.start);
    }

    /// The plan of the `n`-th rule handed over, taken out.
    pub(super) fn take(&mut self, n: usize) -> Early {
        match self.plans[n] {
            v if v & OTHER == 0 => Early::Const(v),
            o => std::mem::replace(&mut self.others[(o & !OTHER) as usize], Early::Taken),
        }
    }

    /// Frees the plans once all are taken.
    pub(super) fn taken(&mut self) {
        self.plans = Vec::new();
        self.others = Vec::new();
        self.starts = Vec::new();
    }

    /// Plans one rule; frees its syntax when releasing and nothing will
    /// read it again.
    pub(super) fn plan(&mut self, r: &mut Rule, sets: &[ConstSet]) -> Early {
        let (skip_guard, skip_if) = elision(r, sets);
        let used = r.fields_used();
        self.fields |= used;
        let mut plan = Plan {
            jit_values: &mut self.values,
            jit_ids: &mut self.ids,
            verdicts: &mut self.verdicts,
            verdict_ids: &mut self.verdict_ids,
            shape: String::new(),
            k: Vec::new(),
        };
        let planned = match plan.rule(r, skip_guard, skip_if) {
            None => Early::Interp,
            // A rule that is one static verdict is no code.
            Some(())
                if plan.shape.splitn(5, ' ').nth(4) == Some("{ then } ") && plan.k.len() == 1 =>
            {
                Early::Const(plan.k[0] as u32)
            }
            Some(()) => {
                let next = self.shapes.len() as u32;
                let k = std::mem::take(&mut plan.k).into_boxed_slice();
                let (shape, lowers) = match self.shapes.entry(plan.shape) {
                    std::collections::hash_map::Entry::Occupied(e) => (*e.get(), false),
                    std::collections::hash_map::Entry::Vacant(e) => (*e.insert(next), true),
                };
                Early::Jit { shape, k, lowers }
            }
        };
        if !matches!(planned, Early::Const(_)) && used & 1 << Field::QueryName as u32 != 0 {
            self.name_slot = true;
        }
        if self.release && matches!(planned, Early::Const(_) | Early::Jit { lowers: false, .. }) {
            r.guard = None;
            r.body = Vec::new();
        }
        planned
    }

    /// How many distinct shapes (compiled functions) the plans have.
    pub(super) fn shapes(&self) -> usize {
        self.shapes.len()
    }
}

/// Whether the index already proves `r`'s guard, or the condition of the
/// `if` that is its body: the code then does not test it again.
pub(super) fn elision(r: &Rule, sets: &[ConstSet]) -> (bool, bool) {
    let by = indexed_by(r, sets);
    let skip_guard =
        by == IndexedBy::Guard && r.guard.as_ref().is_some_and(|g| is_exact_key(g, sets));
    let skip_if = by == IndexedBy::BodyIf
        && match r.body.as_slice() {
            [Stmt::If { cond, .. }] => is_exact_key(cond, sets),
            _ => false,
        };
    (skip_guard, skip_if)
}
