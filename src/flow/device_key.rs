//! What tells devices apart (`--device-key`): the IP address on the local
//! side of their flows, or their MAC, their VLAN, their GTP-U tunnel.
//!
//! Every key is one `u128`, compared and hashed per frame like an address:
//! an IP address as [`addr_bits`] makes it, the others in a range of IPv6
//! reserved by the IETF and never assigned (`00f1::/16` to `00f3::/16`, in
//! `::/8`), so no address a frame carries reads as another kind of key.
//! 0 is no key.
//! A frame without the chosen key (an untagged frame with `vlan`, a packet
//! outside any tunnel with `teid`, a link without MACs) keeps its address.

use super::{addr_bits, bits_addr};
use crate::decode::{Decoded, LinkIds};
use std::net::IpAddr;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeviceKey {
    #[default]
    Ip,
    Mac,
    Vlan,
    Teid,
}

const TAG_SHIFT: u32 = 112;
const MAC_TAG: u128 = 0x00f1;
const VLAN_TAG: u128 = 0x00f2;
const TEID_TAG: u128 = 0x00f3;

fn tagged(tag: u128, value: u128) -> u128 {
    (tag << TAG_SHIFT) | value
}

/// A MAC as a key; none for the all-zero MAC (a link that has none).
pub fn mac_bits(mac: [u8; 6]) -> Option<u128> {
    let v = mac.iter().fold(0u128, |acc, &b| (acc << 8) | u128::from(b));
    (v != 0).then(|| tagged(MAC_TAG, v))
}

pub fn vlan_bits(vlan: u16) -> u128 {
    tagged(VLAN_TAG, u128::from(vlan))
}

pub fn teid_bits(teid: u32) -> u128 {
    tagged(TEID_TAG, u128::from(teid))
}

impl DeviceKey {
    /// The key needs the frame's link header read (MACs, VLAN tags).
    #[inline]
    pub fn reads_link(self) -> bool {
        matches!(self, DeviceKey::Mac | DeviceKey::Vlan)
    }

    /// A new flow's device: `client_sent` when the packet is the client's.
    /// Read once per flow, not per packet.
    pub fn of_flow(self, client: IpAddr, client_sent: bool, d: &Decoded) -> u128 {
        let key = match self {
            DeviceKey::Ip => None,
            DeviceKey::Mac => mac_bits(if client_sent { d.link_ids.src_mac } else { d.link_ids.dst_mac }),
            DeviceKey::Vlan => d.link_ids.vlan.map(vlan_bits),
            DeviceKey::Teid => d.teid.map(teid_bits),
        };
        key.unwrap_or_else(|| addr_bits(client))
    }

    /// A frame outside flows: (device, peer) as the radio stage takes them
    /// (source and destination; `addrs` its IP addresses if it has them).
    pub fn of_frame(self, addrs: Option<(IpAddr, IpAddr)>, ids: &LinkIds, teid: Option<u32>) -> (u128, u128) {
        let by_ip = || addrs.map_or((0, 0), |(src, dst)| (addr_bits(src), addr_bits(dst)));
        match self {
            DeviceKey::Ip => by_ip(),
            DeviceKey::Mac => match mac_bits(ids.src_mac) {
                Some(src) => (src, mac_bits(ids.dst_mac).unwrap_or(0)),
                None => by_ip(),
            },
            DeviceKey::Vlan => ids.vlan.map_or_else(by_ip, |v| (vlan_bits(v), 0)),
            DeviceKey::Teid => teid.map_or_else(by_ip, |t| (teid_bits(t), 0)),
        }
    }
}

/// A key as the report names the device: (id, `kind:value`). `unknown`
/// and no key for 0.
pub fn describe(bits: u128) -> (String, Option<String>) {
    if bits == 0 {
        return ("unknown".into(), None);
    }
    let value = bits & ((1u128 << TAG_SHIFT) - 1);
    match bits >> TAG_SHIFT {
        MAC_TAG => {
            let b = value.to_be_bytes();
            let mac = b.get(10..16).unwrap_or(&[]).iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(":");
            (mac.clone(), Some(format!("mac:{mac}")))
        }
        VLAN_TAG => {
            let key = format!("vlan:{value}");
            (key.clone(), Some(key))
        }
        TEID_TAG => {
            let key = format!("teid:{value:#x}");
            (key.clone(), Some(key))
        }
        _ => {
            let ip = bits_addr(bits).to_string();
            (ip.clone(), Some(format!("ip:{ip}")))
        }
    }
}

/// A `--device-map` key as [`describe`] writes it (`ip:10.0.0.1` and
/// `::ffff:10.0.0.1` as `10.0.0.1`; `MAC:02:00:..` lower case;
/// `teid:4097` as `teid:0x1001`), so the map matches ids and keys alike.
pub fn canonical_map_key(key: &str) -> String {
    let key = key.trim();
    let (kind, value) = match key.split_once(':') {
        Some((k, v)) if ["ip", "mac", "vlan", "teid"].contains(&k.to_ascii_lowercase().as_str()) => {
            (k.to_ascii_lowercase(), v)
        }
        _ => (String::new(), key),
    };
    if let Ok(ip) = value.parse::<IpAddr>()
        && (kind.is_empty() || kind == "ip")
    {
        return ip.to_canonical().to_string();
    }
    let number = |v: &str| match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => v.parse::<u32>().ok(),
    };
    match kind.as_str() {
        "teid" => number(value).map_or_else(|| key.to_string(), |t| format!("teid:{t:#x}")),
        "vlan" => number(value).map_or_else(|| key.to_string(), |v| format!("vlan:{v}")),
        // A MAC is its own id, with or without `mac:`.
        _ => value.to_ascii_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_read_back_as_the_report_writes_them() {
        let mac = mac_bits([2, 0, 0, 0, 0, 0x0a]).unwrap_or(0);
        assert_eq!(describe(mac), ("02:00:00:00:00:0a".into(), Some("mac:02:00:00:00:00:0a".into())));
        assert_eq!(describe(vlan_bits(100)).1.as_deref(), Some("vlan:100"));
        assert_eq!(describe(teid_bits(0x1234)).1.as_deref(), Some("teid:0x1234"));
        let ip: IpAddr = "10.0.0.1".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        assert_eq!(describe(addr_bits(ip)), ("10.0.0.1".into(), Some("ip:10.0.0.1".into())));
        // Multicast destinations (a frame outside flows may name one) stay addresses.
        for a in ["ff02::1:ff00:1", "ff01::1", "ff03::1"] {
            let ip: IpAddr = a.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
            assert_eq!(describe(addr_bits(ip)).1, Some(format!("ip:{a}")));
        }
        assert_eq!(describe(0), ("unknown".into(), None));
        assert_eq!(mac_bits([0; 6]), None);
        for (written, canonical) in [
            ("ip:10.0.0.1", "10.0.0.1"),
            ("::ffff:10.0.0.1", "10.0.0.1"),
            ("MAC:02:00:00:00:00:0A", "02:00:00:00:00:0a"),
            ("02:00:00:00:00:0A", "02:00:00:00:00:0a"),
            ("teid:4660", "teid:0x1234"),
            ("teid:0x00001234", "teid:0x1234"),
            ("vlan:0100", "vlan:100"),
        ] {
            assert_eq!(canonical_map_key(written), canonical, "{written}");
        }
    }
}
