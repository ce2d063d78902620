//! When each live flow times out. A flow's deadline is its last packet's
//! time plus its kind's timeout (open TCP, closed TCP, UDP), so each kind
//! keeps its flows in a list ordered by last packet: with timestamps in
//! order, the front of each list is the next of its kind to time out, and a
//! packet only moves its flow to the back. A packet older than the back of
//! its list (timestamps out of order) puts its flow in an ordered set
//! instead, so deadlines stay exact whatever the capture's timestamps.
//!
//! Links live in arrays by slot, apart from the flows: looking at deadlines
//! never touches a flow that is not due.

use std::collections::BTreeSet;

/// A flow's kind of timeout; each has a list of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    TcpOpen = 0,
    TcpClosed = 1,
    Udp = 2,
}

const KINDS: usize = 3;
const NONE: u32 = u32::MAX;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    Unarmed,
    /// In the list of its kind.
    Listed,
    /// In `late` (with its deadline as the set's key).
    Late,
}

#[derive(Clone, Copy, Debug)]
struct Link {
    prev: u32,
    next: u32,
    due: i64,
    kind: Kind,
    place: Place,
}

const UNARMED: Link = Link { prev: NONE, next: NONE, due: 0, kind: Kind::TcpOpen, place: Place::Unarmed };

#[derive(Clone, Copy, Debug)]
struct Ends {
    front: u32,
    back: u32,
}

#[derive(Clone, Debug)]
pub struct Timers {
    links: Vec<Link>,
    lists: [Ends; KINDS],
    late: BTreeSet<(i64, u32)>,
    /// No armed deadline is earlier: most packets find nothing due by one
    /// comparison. Lowered as deadlines are set, made exact when a look
    /// finds nothing due.
    earliest: i64,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            links: Vec::new(),
            lists: [Ends { front: NONE, back: NONE }; KINDS],
            late: BTreeSet::new(),
            earliest: i64::MAX,
        }
    }
}

impl Timers {
    /// Sets flow `slot`'s deadline (arming it if it had none). While its
    /// kind stays the same a deadline only moves later: a packet stamped
    /// earlier than the flow's latest one does not shorten its life.
    pub fn set(&mut self, slot: usize, kind: Kind, due: i64) {
        let Ok(s) = u32::try_from(slot) else { return };
        if s == NONE {
            return;
        }
        if self.links.len() <= slot {
            self.links.resize(slot + 1, UNARMED);
        }
        let Some(&link) = self.links.get(slot) else { return };
        let same_kind = link.place != Place::Unarmed && link.kind == kind;
        let due = if same_kind { due.max(link.due) } else { due };
        self.earliest = self.earliest.min(due);
        // Already last of its list: only the deadline moves (later).
        if same_kind && link.place == Place::Listed && link.next == NONE {
            if let Some(l) = self.links.get_mut(slot) {
                l.due = due;
            }
            return;
        }
        self.unset(slot);
        let ends = self.lists.get(kind as usize).copied().unwrap_or(Ends { front: NONE, back: NONE });
        if self.due_of(ends.back).is_some_and(|d| d > due) {
            self.late.insert((due, s));
            if let Some(l) = self.links.get_mut(slot) {
                *l = Link { prev: NONE, next: NONE, due, kind, place: Place::Late };
            }
            return;
        }
        if let Some(l) = self.links.get_mut(slot) {
            *l = Link { prev: ends.back, next: NONE, due, kind, place: Place::Listed };
        }
        match self.links.get_mut(ends.back as usize) {
            Some(b) => b.next = s,
            None => self.set_front(kind, s),
        }
        self.set_back(kind, s);
    }

    /// Forgets flow `slot`'s deadline.
    pub fn unset(&mut self, slot: usize) {
        let Some(link) = self.links.get_mut(slot) else { return };
        let old = std::mem::replace(link, UNARMED);
        match old.place {
            Place::Unarmed => {}
            Place::Late => {
                if let Ok(s) = u32::try_from(slot) {
                    self.late.remove(&(old.due, s));
                }
            }
            Place::Listed => {
                match self.links.get_mut(old.prev as usize) {
                    Some(p) => p.next = old.next,
                    None => self.set_front(old.kind, old.next),
                }
                match self.links.get_mut(old.next as usize) {
                    Some(n) => n.prev = old.prev,
                    None => self.set_back(old.kind, old.prev),
                }
            }
        }
    }

    /// A flow whose deadline is before `now`, if any (still armed: finishing
    /// it is the caller's, and unsets it).
    pub fn due_before(&mut self, now: i64) -> Option<usize> {
        if self.earliest >= now {
            return None;
        }
        for ends in &self.lists {
            if let Some(d) = self.due_of(ends.front)
                && d < now
            {
                return Some(ends.front as usize);
            }
        }
        match self.late.first() {
            Some(&(d, s)) if d < now => Some(s as usize),
            _ => {
                let fronts = self.lists.iter().filter_map(|e| self.due_of(e.front));
                let late = self.late.first().map(|&(d, _)| d);
                self.earliest = fronts.chain(late).min().unwrap_or(i64::MAX);
                None
            }
        }
    }

    /// The armed flow with the earliest deadline, if any.
    pub fn earliest(&self) -> Option<usize> {
        let fronts = self.lists.iter().filter_map(|e| Some((self.due_of(e.front)?, e.front)));
        let late = self.late.first().map(|&(d, s)| (d, s));
        fronts.chain(late).min().map(|(_, s)| s as usize)
    }

    pub fn clear(&mut self) {
        *self = Timers::default();
    }

    fn due_of(&self, slot: u32) -> Option<i64> {
        self.links.get(slot as usize).map(|l| l.due)
    }

    fn set_front(&mut self, kind: Kind, s: u32) {
        if let Some(e) = self.lists.get_mut(kind as usize) {
            e.front = s;
        }
    }

    fn set_back(&mut self, kind: Kind, s: u32) {
        if let Some(e) = self.lists.get_mut(kind as usize) {
            e.back = s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every slot due before `now`, finishing (unsetting) each as it comes.
    fn drain(t: &mut Timers, now: i64) -> Vec<usize> {
        let mut out = Vec::new();
        while let Some(s) = t.due_before(now) {
            t.unset(s);
            out.push(s);
        }
        out.sort_unstable();
        out
    }

    #[test]
    fn in_order_deadlines_come_due_in_time() {
        let mut t = Timers::default();
        t.set(0, Kind::TcpOpen, 100);
        t.set(1, Kind::TcpOpen, 110);
        t.set(2, Kind::Udp, 105);
        assert_eq!(drain(&mut t, 100), Vec::<usize>::new());
        assert_eq!(drain(&mut t, 106), vec![0, 2]);
        assert_eq!(drain(&mut t, 111), vec![1]);
        assert!(t.late.is_empty());
    }

    #[test]
    fn a_packet_moves_its_flow_to_the_back() {
        let mut t = Timers::default();
        t.set(0, Kind::TcpOpen, 100);
        t.set(1, Kind::TcpOpen, 110);
        t.set(0, Kind::TcpOpen, 120);
        assert_eq!(drain(&mut t, 115), vec![1]);
        assert_eq!(drain(&mut t, 121), vec![0]);
    }

    #[test]
    fn the_earliest_deadline_of_all_lists() {
        let mut t = Timers::default();
        assert_eq!(t.earliest(), None);
        t.set(0, Kind::TcpOpen, 100);
        t.set(1, Kind::Udp, 90);
        t.set(2, Kind::TcpOpen, 80); // out of order: in `late`
        assert_eq!(t.earliest(), Some(2));
        t.unset(2);
        assert_eq!(t.earliest(), Some(1));
        t.unset(1);
        assert_eq!(t.earliest(), Some(0));
    }

    #[test]
    fn closing_moves_a_flow_to_another_list() {
        let mut t = Timers::default();
        t.set(0, Kind::TcpOpen, 1_000);
        t.set(1, Kind::TcpOpen, 1_001);
        t.set(0, Kind::TcpClosed, 50);
        assert_eq!(drain(&mut t, 51), vec![0]);
        assert_eq!(drain(&mut t, 1_000), Vec::<usize>::new());
        assert_eq!(drain(&mut t, 1_002), vec![1]);
    }

    #[test]
    fn out_of_order_deadlines_stay_exact() {
        let mut t = Timers::default();
        t.set(0, Kind::Udp, 100);
        t.set(1, Kind::Udp, 200);
        // Older than the back of the list: kept apart, still found in time.
        t.set(2, Kind::Udp, 150);
        t.set(3, Kind::Udp, 50);
        assert_eq!(drain(&mut t, 60), vec![3]);
        assert_eq!(drain(&mut t, 151), vec![0, 2]);
        assert_eq!(drain(&mut t, 201), vec![1]);
        // A deadline never moves earlier while the kind stays.
        t.set(4, Kind::Udp, 300);
        t.set(5, Kind::Udp, 400);
        t.set(5, Kind::Udp, 250);
        assert_eq!(drain(&mut t, 301), vec![4]);
        assert_eq!(drain(&mut t, 401), vec![5]);
        // A new kind starts a new deadline, earlier or not.
        t.set(6, Kind::TcpOpen, 1_000);
        t.set(6, Kind::TcpClosed, 500);
        assert_eq!(drain(&mut t, 501), vec![6]);
    }

    #[test]
    fn unset_unlinks_from_anywhere() {
        let mut t = Timers::default();
        for s in 0..5 {
            t.set(s, Kind::TcpOpen, 10 * s as i64);
        }
        t.unset(2);
        t.unset(0);
        t.unset(4);
        t.unset(4);
        assert_eq!(drain(&mut t, 1_000), vec![1, 3]);
        t.set(7, Kind::TcpOpen, 5);
        assert_eq!(drain(&mut t, 6), vec![7]);
    }

    #[test]
    fn matches_a_sorted_set_on_shuffled_input() {
        // A model: the set of (due, slot) of armed flows.
        let mut t = Timers::default();
        let mut model: std::collections::BTreeMap<usize, i64> = Default::default();
        let mut kinds: std::collections::BTreeMap<usize, Kind> = Default::default();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rnd = |m: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % m
        };
        for step in 0..20_000i64 {
            let slot = rnd(64) as usize;
            match rnd(10) {
                0 => {
                    t.unset(slot);
                    model.remove(&slot);
                    kinds.remove(&slot);
                }
                1 => {
                    let now = step + rnd(200) as i64 - 100;
                    let mut want: Vec<usize> = model.iter().filter(|(_, d)| **d < now).map(|(s, _)| *s).collect();
                    want.sort_unstable();
                    for s in &want {
                        model.remove(s);
                        kinds.remove(s);
                    }
                    assert_eq!(drain(&mut t, now), want, "step {step}");
                }
                r => {
                    // Mostly in order, sometimes back in time.
                    let due = step + if r == 2 { -(rnd(300) as i64) } else { rnd(5) as i64 };
                    let kind = [Kind::TcpOpen, Kind::TcpClosed, Kind::Udp][rnd(3) as usize];
                    t.set(slot, kind, due);
                    let due = match kinds.insert(slot, kind) {
                        Some(k) if k == kind => due.max(model.get(&slot).copied().unwrap_or(due)),
                        _ => due,
                    };
                    model.insert(slot, due);
                }
            }
        }
    }
}
