//! Message framing over a byte stream that arrives in arbitrary pieces.

/// What a framing function says about the bytes in front of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// A whole message of this many bytes starts here; it was handled.
    Message(usize),
    /// Not enough bytes yet to handle the next message.
    NeedMore,
}

/// Holds the unhandled tail of one direction's stream so a message split
/// over several segments can be framed once whole. When nothing is pending,
/// input is framed in place and not copied.
#[derive(Clone, Debug)]
pub struct MsgBuf {
    pending: Vec<u8>,
    cap: usize,
}

impl Default for MsgBuf {
    fn default() -> Self {
        MsgBuf::new(64 * 1024)
    }
}

impl MsgBuf {
    /// `cap`: most bytes kept waiting for a message to complete.
    pub fn new(cap: usize) -> MsgBuf {
        MsgBuf { pending: Vec::new(), cap }
    }

    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Frames as many whole messages as `data` (after any pending bytes)
    /// holds, calling `frame` on the bytes at each message start. Returns
    /// `Err(n)` when more than `cap` bytes wait for one message: the caller
    /// must classify those `n` bytes itself (they are dropped here).
    pub fn feed(&mut self, data: &[u8], mut frame: impl FnMut(&[u8]) -> Framing) -> Result<(), usize> {
        if self.pending.is_empty() {
            let used = run(data, &mut frame);
            self.keep(data.get(used..).unwrap_or(&[]))
        } else {
            // Framed where they wait: a message arriving a byte a segment is
            // not copied again with every byte.
            self.pending.extend_from_slice(data);
            let used = run(&self.pending, &mut frame);
            self.pending.drain(..used);
            if self.pending.len() > self.cap {
                return Err(self.take());
            }
            Ok(())
        }
    }

    fn keep(&mut self, rest: &[u8]) -> Result<(), usize> {
        if rest.len() > self.cap {
            self.pending.clear();
            return Err(rest.len());
        }
        self.pending.clear();
        self.pending.extend_from_slice(rest);
        Ok(())
    }

    /// Gives up the pending bytes (at a gap or the end of the flow);
    /// returns how many there were.
    pub fn take(&mut self) -> usize {
        let n = self.pending.len();
        self.pending.clear();
        n
    }

    /// The pending bytes, for a last attempt at the end of the flow.
    pub fn bytes(&self) -> &[u8] {
        &self.pending
    }
}

/// A frame header of at most `N` bytes, gathered from a stream that may
/// split it anywhere.
#[derive(Debug, Clone, Copy)]
pub struct HeaderBuf<const N: usize> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> Default for HeaderBuf<N> {
    fn default() -> Self {
        HeaderBuf { bytes: [0; N], len: 0 }
    }
}

impl<const N: usize> HeaderBuf<N> {
    /// Takes bytes from the front of `input` until `need` (at most `N`) are
    /// held; returns how many it took.
    pub fn fill(&mut self, need: usize, input: &[u8]) -> usize {
        let k = need.min(N).saturating_sub(self.len).min(input.len());
        if let (Some(to), Some(from)) = (self.bytes.get_mut(self.len..self.len + k), input.get(..k)) {
            to.copy_from_slice(from);
            self.len += k;
        }
        k
    }

    /// The bytes held so far.
    pub fn bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or(&[])
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Empties it; returns how many bytes it held.
    pub fn take(&mut self) -> usize {
        std::mem::take(&mut self.len)
    }
}

fn run(data: &[u8], frame: &mut impl FnMut(&[u8]) -> Framing) -> usize {
    let mut off = 0;
    while let Some(rest) = data.get(off..).filter(|r| !r.is_empty()) {
        match frame(rest) {
            Framing::Message(n) if n > 0 => off += n.min(rest.len()),
            _ => break,
        }
    }
    off
}

#[cfg(test)]
mod tests;
