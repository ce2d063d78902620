//! Devices: each flow's ledger and exchanges tallied by its client's
//! address on the workers, joined with each device's radio model and its
//! name (`--device-map`) into the report's `devices` and `fleet`.

use super::Options;
use crate::findings::Finding;
use crate::flow::{Endpoint, FlowRecord, describe_device};
use crate::ledger::Ledger;
use crate::radio::{CostOptions, CostReport, DeviceRadio, FleetSums, RadioReport, cost};
use crate::report::devices::*;
use serde_json::Value;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

/// Devices tallied at most (past them, flows are in the totals only). Only
/// listed devices are tallied (`RadioTap::tally`), so this is a guard only.
const MAX_TALLIED: usize = 1 << 20;

/// Connections remembered per device for telling a crowd behind one
/// address: the first by start time (the same set for any number of jobs).
const MAX_CONNS: usize = 64;

/// Simultaneous connections of one shape from one address that make it
/// look like several devices.
const CROWD: u64 = 4;

/// One connection: its server (address, port, transport) and its span.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
struct Conn {
    start_ts: f64,
    end_ts: f64,
    server: crate::flow::Endpoint,
    tcp: bool,
}

/// Client addresses and servers remembered per device for telling which
/// findings concern it: the lowest (the same set for any number of jobs).
const MAX_CLIENTS: usize = 8;
const MAX_SERVERS: usize = 64;

#[derive(Clone, Default)]
pub(super) struct DeviceTally {
    classes: Ledger,
    flows: u64,
    exchanges: u64,
    /// Its first connections by start time, each naming its server by its
    /// place in `conn_servers`: a device's connections reach few servers,
    /// and a span is a third the size of a whole `Conn`.
    conns: Vec<ConnSpan>,
    conn_servers: Vec<(Endpoint, bool)>,
    /// The addresses its flows' clients had (one, keyed by address).
    clients: Vec<IpAddr>,
    servers: Vec<Endpoint>,
}

/// A connection of a [`DeviceTally`]: its span, and its server (address,
/// port, transport) as an index into the tally's `conn_servers`.
#[derive(Clone, Copy)]
struct ConnSpan {
    start_ts: f64,
    end_ts: f64,
    server: u32,
}

impl DeviceTally {
    fn add_conn(&mut self, start_ts: f64, end_ts: f64, server: (Endpoint, bool)) {
        let at = match self.conn_servers.iter().position(|s| *s == server) {
            Some(at) => at,
            None => {
                room_for_one(&mut self.conn_servers);
                self.conn_servers.push(server);
                self.conn_servers.len() - 1
            }
        };
        room_for_one(&mut self.conns);
        self.conns.push(ConnSpan { start_ts, end_ts, server: at as u32 });
        if self.conns.len() >= 2 * MAX_CONNS {
            self.keep_first_conns();
        }
    }

    /// The connections as whole `Conn`s.
    fn conns(&self) -> impl Iterator<Item = Conn> + '_ {
        self.conns.iter().filter_map(|c| {
            let &(server, tcp) = self.conn_servers.get(c.server as usize)?;
            Some(Conn { start_ts: c.start_ts, end_ts: c.end_ts, server, tcp })
        })
    }

    /// The first `MAX_CONNS` connections by start, end, server and
    /// transport: the same set whatever order the flows came in (jobs).
    fn first_conns(&self) -> Vec<Conn> {
        let mut conns: Vec<Conn> = self.conns().collect();
        conns.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        conns.truncate(MAX_CONNS);
        conns
    }

    /// Keeps the first connections, and the servers they reach.
    fn keep_first_conns(&mut self) {
        let conns = self.first_conns();
        self.conns.clear();
        self.conn_servers.clear();
        for c in conns {
            self.add_conn(c.start_ts, c.end_ts, (c.server, c.tcp));
        }
    }

    fn note(&mut self, client: IpAddr, server: Endpoint) {
        keep_lowest(&mut self.clients, client, MAX_CLIENTS);
        keep_lowest(&mut self.servers, server, MAX_SERVERS);
    }
}

/// `v` sorted, without repeats, with `x` in if it is among the `max` lowest.
fn keep_lowest<T: Ord>(v: &mut Vec<T>, x: T, max: usize) {
    if let Err(at) = v.binary_search(&x)
        && at < max
    {
        room_for_one(v);
        v.insert(at, x);
        v.truncate(max);
    }
}

/// Room for one more in `v`, doubling from one: most devices have one
/// client address and reach a server or two, and `Vec`'s first room of
/// four would be most of a listed device's memory.
fn room_for_one<T>(v: &mut Vec<T>) {
    if v.len() == v.capacity() {
        v.reserve_exact(v.capacity().max(1));
    }
}

/// What a device's tally takes of a finished flow: a copy, for it travels
/// from the flow's worker to the radio stage (which knows whether the
/// device is listed) a round later.
#[derive(Clone, Copy, Debug)]
pub(super) struct FlowTally {
    device: u128,
    classes: Ledger,
    exchanges: u64,
    client: IpAddr,
    server: Endpoint,
    start_ts: f64,
    end_ts: f64,
    tcp: bool,
}

impl FlowTally {
    pub(super) fn of(rec: &FlowRecord) -> FlowTally {
        FlowTally {
            device: rec.device,
            classes: rec.classes,
            exchanges: rec.exchanges,
            client: rec.client.0.ip().to_canonical(),
            server: rec.server,
            start_ts: rec.start_ts,
            end_ts: rec.end_ts,
            tcp: rec.l4 == crate::vocab::L4::Tcp,
        }
    }

    pub(super) fn device(&self) -> u128 {
        self.device
    }
}

/// Every finished flow's ledger by its device's key (`--device-key`), for
/// the listed devices (the caller picks them). Each tally on the heap: the
/// table of ten thousand listed devices is then 24 bytes a slot, not 200
/// (and not twice that while it grows).
#[derive(Clone, Default)]
pub(super) struct DeviceTallies {
    by_addr: HashMap<u128, Box<DeviceTally>, foldhash::fast::RandomState>,
}

impl DeviceTallies {
    /// Devices tallied.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.by_addr.len()
    }

    pub(super) fn add(&mut self, f: &FlowTally) {
        let addr = f.device;
        if self.by_addr.len() >= MAX_TALLIED && !self.by_addr.contains_key(&addr) {
            return;
        }
        let t = self.by_addr.entry(addr).or_default();
        t.classes.merge(&f.classes);
        t.flows += 1;
        t.exchanges += f.exchanges;
        t.note(f.client, f.server);
        t.add_conn(f.start_ts, f.end_ts, (f.server, f.tcp));
    }
}

/// The most connections to one server open at once, and that server.
fn crowd(conns: &[Conn]) -> Option<Crowd> {
    let mut servers: Vec<(crate::flow::Endpoint, bool)> = conns.iter().map(|c| (c.server, c.tcp)).collect();
    servers.sort();
    servers.dedup();
    let mut best: Option<(u64, crate::flow::Endpoint)> = None;
    for (server, tcp) in servers {
        // Starts before ends at the same instant: connections that touch overlap.
        let mut events: Vec<(f64, i8)> = conns
            .iter()
            .filter(|c| c.server == server && c.tcp == tcp)
            .flat_map(|c| [(c.start_ts, -1), (c.end_ts, 1)])
            .collect();
        events.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        let (mut open, mut most) = (0i64, 0i64);
        for (_, e) in events {
            open -= i64::from(e);
            most = most.max(open);
        }
        let most = most.max(0) as u64;
        if best.is_none_or(|(n, _)| most > n) {
            best = Some((most, server));
        }
    }
    let (simultaneous, server) = best?;
    (simultaneous >= CROWD).then(|| Crowd {
        simultaneous,
        server: server.to_string(),
        separating_keys: vec!["mac".into(), "teid".into(), "vlan".into()],
    })
}

/// What a listed device's flows reached, for [`scope_findings`].
pub(super) struct DeviceScope {
    clients: Vec<IpAddr>,
    servers: Vec<Endpoint>,
}

/// The devices' reports and the fleet's, the cost the fleet's day comes
/// to, and each listed device's scope. `total` is every device's radio summed.
pub(super) fn build(
    radios: Vec<DeviceRadio>,
    sums: &FleetSums,
    total: &RadioReport,
    tallies: &DeviceTallies,
    opts: &Options,
) -> (Vec<DeviceReport>, FleetReport, CostReport, Vec<DeviceScope>) {
    let scopes = radios
        .iter()
        .map(|d| {
            let t = tallies.by_addr.get(&d.addr);
            DeviceScope {
                clients: t.map(|t| t.clients.clone()).unwrap_or_default(),
                servers: t.map(|t| t.servers.clone()).unwrap_or_default(),
            }
        })
        .collect();
    let empty = DeviceTally::default();
    let devices: Vec<DeviceReport> = radios
        .into_iter()
        .map(|d| {
            let (id, key) = describe_device(d.addr);
            let t = tallies.by_addr.get(&d.addr).map_or(&empty, |t| &**t);
            let r = d.figures;
            DeviceReport {
                name: opts.device_names.get(&id).cloned(),
                keys: key.into_iter().collect(),
                id,
                frames: r.frames,
                wire_bytes: r.bytes,
                billed_bytes: r.billed_bytes,
                classes: t.classes,
                flows: t.flows,
                exchanges: t.exchanges,
                radio: DeviceRadioFigures {
                    radio_on_s: r.radio_on_s,
                    energy_j: r.energy_j,
                    charge_mah: r.charge_mah,
                    wakeups: r.wakeups,
                    promotions: r.promotions,
                },
                battery_life_days: r.battery_life_days,
                per_day: r.per_day,
                crowd: crowd(&t.first_conns()),
                findings: Vec::new(),
            }
        })
        .collect();
    let seen = sums.devices.max(1);
    let (fleet_devices, scaled) = if opts.cost.devices_given { (opts.cost.devices, seen > 1) } else { (seen, false) };
    let scale = fleet_devices as f64 / seen as f64;
    let day = &total.per_day;
    let per_day = FleetDay {
        bytes: (day.bytes as f64 * scale).round() as u64,
        billed_bytes: (day.billed_bytes as f64 * scale).round() as u64,
        charge_mah: day.charge_mah * scale,
    };
    let column = |f: fn(&(f64, f64, f64)) -> f64| {
        let mut v: Vec<f64> = sums.per_day.iter().map(f).collect();
        Spread::of(&mut v)
    };
    let fleet = FleetReport {
        devices: fleet_devices,
        devices_seen: sums.devices,
        devices_listed: devices.len() as u64,
        scaled,
        per_day,
        spread: FleetSpread { billed_bytes: column(|d| d.0), bytes: column(|d| d.1), charge_mah: column(|d| d.2) },
        unprojected: sums.devices.saturating_sub(sums.per_day.len() as u64),
    };
    let billed = if opts.cost.bill_link { fleet.per_day.bytes } else { fleet.per_day.billed_bytes };
    let mean_device_day = billed as f64 / fleet_devices.max(1) as f64;
    let mut c = cost(mean_device_day, &CostOptions { devices: fleet_devices, ..opts.cost.clone() });
    c.devices_seen = sums.devices;
    c.scaled = scaled;
    (devices, fleet, c, scopes)
}

/// Marks on each device the findings that concern it: those whose
/// evidence names one of its flows' client addresses (`client` anywhere in
/// it); a finding that names no client concerns the devices that reached a
/// server it names (its scope `server ...`, `server` in its evidence); a
/// finding of the whole capture (scope `capture`), every device. With a
/// key other than `ip` several devices may share the client address named.
pub(super) fn scope_findings(devices: &mut [DeviceReport], scopes: &[DeviceScope], findings: &[Finding]) {
    for (i, f) in findings.iter().enumerate() {
        let (mut clients, mut servers) = (Vec::new(), Vec::new());
        named(&f.evidence, &mut clients, &mut servers);
        if let Some(s) = f.scope.strip_prefix("server ").and_then(|s| s.parse::<SocketAddr>().ok()) {
            servers.push(Endpoint(s));
        }
        for (d, s) in devices.iter_mut().zip(scopes) {
            let concerns = if !clients.is_empty() {
                clients.iter().any(|c| s.clients.contains(c))
            } else if !servers.is_empty() {
                servers.iter().any(|x| s.servers.contains(x))
            } else {
                f.scope == "capture"
            };
            if concerns {
                d.findings.push(i);
            }
        }
    }
}

/// The client addresses and servers a finding's evidence names.
fn named(v: &Value, clients: &mut Vec<IpAddr>, servers: &mut Vec<Endpoint>) {
    let addr = |v: &Value| -> Option<IpAddr> {
        let s = v.as_str()?;
        s.parse::<IpAddr>().ok().or_else(|| s.parse::<SocketAddr>().ok().map(|a| a.ip())).map(|a| a.to_canonical())
    };
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match k.as_str() {
                    "client" => clients.extend(addr(x)),
                    "server" => servers.extend(x.as_str().and_then(|s| s.parse::<SocketAddr>().ok()).map(Endpoint)),
                    _ => named(x, clients, servers),
                }
            }
        }
        Value::Array(a) => {
            for x in a {
                named(x, clients, servers);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ten thousand listed devices' tallies were 11 MB of the 1 GB bench
    /// capture's peak at two jobs, most of it `Vec`'s first room of four
    /// for lists that hold one: a device of one address reaching one
    /// server keeps room for one of each, and its connections double from one.
    #[test]
    fn a_device_of_one_server_keeps_room_for_one() {
        let server = Endpoint(SocketAddr::from(([192, 0, 2, 1], 443)));
        let client = IpAddr::from([10, 0, 0, 2]);
        let mut t = DeviceTally::default();
        for i in 0..3 {
            t.note(client, server);
            t.add_conn(f64::from(i), f64::from(i) + 0.5, (server, true));
        }
        assert_eq!((t.clients.capacity(), t.servers.capacity(), t.conn_servers.capacity()), (1, 1, 1));
        assert_eq!((t.conns.len(), t.conns.capacity()), (3, 4));
        assert_eq!((t.clients.as_slice(), t.servers.as_slice()), ([client].as_slice(), [server].as_slice()));
    }

    /// Room made one at a time changes nothing of what is kept: the lowest,
    /// sorted, without repeats.
    #[test]
    fn keep_lowest_keeps_the_lowest_in_order() {
        let mut v = Vec::new();
        for x in [5, 3, 9, 3, 1, 7, 2] {
            keep_lowest(&mut v, x, 4);
        }
        assert_eq!(v, [1, 2, 3, 5]);
    }
}
