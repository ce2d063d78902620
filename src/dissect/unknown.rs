//! Transport payload of a protocol wiretax does not know: all `payload`.

use super::{Dir, Dissector, Emit, MsgRef};
use crate::ledger::Class;

#[derive(Clone, Default)]
pub struct Unknown;

impl Dissector for Unknown {
    fn data(&mut self, _dir: Dir, data: &[u8], emit: &mut Emit) {
        emit.span(Class::Payload, data.len() as u64, MsgRef::Flow);
    }
    fn gap(&mut self, _dir: Dir, _len: u64, _emit: &mut Emit) {}
    fn finish(&mut self, _emit: &mut Emit) {}
}
