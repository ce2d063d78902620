//! wiretax: what IoT protocols cost on the wire, in the radio and on the bill.
//!
//! One pipeline, one direction:
//! `capture` -> `decode` -> `flow` -> `dissect` -> `ledger` -> `radio` -> `report`.

pub mod analyze;
pub mod bins;
pub mod capture;
pub mod compare;
pub mod decode;
pub mod decrypt;
pub mod dissect;
pub mod findings;
pub mod flow;
#[doc(hidden)]
pub mod fuzzing;
pub mod keylog;
pub mod ledger;
pub mod live;
pub mod radio;
pub mod report;
pub mod stats;
pub mod vocab;
pub mod whatif;
