//! The byte ledger per application protocol: what each protocol's flows
//! spent, class by class, over every flow (listed or not).

use crate::flow::FlowRecord;
use crate::ledger::Ledger;
use crate::vocab::Proto;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppLedger {
    /// The flows' application protocol; with TLS, the protocol inside when known.
    pub app: Proto,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inner: Option<Proto>,
    pub flows: u64,
    pub wire_bytes: u64,
    pub classes: Ledger,
}

/// Flows and their classes by (app, inner), as flows finish: a few
/// entries, integer sums, so the same for any order and any number of jobs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AppLedgers {
    by: BTreeMap<(Proto, Option<Proto>), (u64, Ledger)>,
}

impl AppLedgers {
    pub fn add(&mut self, f: &FlowRecord) {
        let e = self.by.entry((f.app, f.inner)).or_default();
        e.0 += 1;
        e.1.merge(&f.classes);
    }

    pub fn merge(&mut self, o: &AppLedgers) {
        for (k, (n, classes)) in &o.by {
            let e = self.by.entry(*k).or_default();
            e.0 += n;
            e.1.merge(classes);
        }
    }

    /// One row per (app, inner), most bytes first.
    pub fn rows(&self) -> Vec<AppLedger> {
        AppLedger::rows(self.by.iter().map(|(k, v)| (*k, *v)))
    }
}

impl AppLedger {
    /// One row per (app, inner) of `flows`, most bytes first.
    pub fn of(flows: &[FlowRecord]) -> Vec<AppLedger> {
        let mut all = AppLedgers::default();
        flows.iter().for_each(|f| all.add(f));
        all.rows()
    }

    fn rows(by: impl Iterator<Item = ((Proto, Option<Proto>), (u64, Ledger))>) -> Vec<AppLedger> {
        let mut out: Vec<AppLedger> = by
            .map(|((app, inner), (n, classes))| AppLedger {
                app,
                inner,
                flows: n,
                wire_bytes: classes.total(),
                classes,
            })
            .collect();
        out.sort_by(|a, b| b.wire_bytes.cmp(&a.wire_bytes).then_with(|| (a.app, a.inner).cmp(&(b.app, b.inner))));
        out
    }
}
