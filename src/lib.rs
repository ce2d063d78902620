//! wiretax: what IoT protocols cost on the wire, in the radio and on the bill.
//!
//! One pipeline, one direction:
//! `capture` -> `decode` -> `flow` -> `dissect` -> `ledger` -> `radio` -> `report`.

pub mod dissect;
pub mod keylog;
pub mod ledger;
pub mod decrypt;
pub mod radio;
