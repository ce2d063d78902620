//! The byte ledger per application protocol: what each protocol's flows
//! spent, class by class (from the listed flows).

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

impl AppLedger {
    /// One row per (app, inner) of the listed flows, most bytes first.
    pub fn of(flows: &[FlowRecord]) -> Vec<AppLedger> {
        let mut by: BTreeMap<(Proto, Option<Proto>), (u64, Ledger)> = BTreeMap::new();
        for f in flows {
            let e = by.entry((f.app, f.inner)).or_default();
            e.0 += 1;
            e.1.merge(&f.classes);
        }
        let mut out: Vec<AppLedger> = by
            .into_iter()
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
