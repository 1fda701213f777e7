//! Egress: every outbound request of a guest goes through here. The host checks the
//! request's `scheme://host:port` against the provider's grant, resolves DNS itself,
//! refuses private, loopback, link-local and metadata addresses unless the grant names
//! them, connects to the address it checked (so DNS rebinding cannot swap it), applies the
//! store's TLS settings, pools connections per store and bounds bodies and time.

mod connector;
pub(crate) mod handler;
mod hooks;
mod pattern;

pub use connector::{EgressClient, Resolver, SystemResolver, TlsSettings};
pub use hooks::{EgressHooks, MAX_UNSENT_BODIES};
pub use pattern::HostPattern;

use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;

/// Whether `ip` is in a range a provider may not reach unless granted: private, loopback,
/// link-local (cloud metadata lives at 169.254.169.254 and fd00:ec2::254), carrier-grade
/// NAT (Alibaba's metadata at 100.100.100.200), unique-local and site-local, unspecified,
/// multicast, broadcast, benchmarking, documentation and IETF protocol-assignment ranges,
/// Azure's wire server (168.63.129.16), and IPv6 forms that carry or tunnel to an IPv4
/// address: IPv4-mapped and IPv4-translated addresses, NAT64 (`64:ff9b::/96`) and 6to4
/// (`2002::/16`) are judged by the IPv4 address they embed; deprecated IPv4-compatible
/// addresses (`::a.b.c.d`), local-use NAT64 (`64:ff9b:1::/48`) and Teredo (inside
/// `2001::/23`) are refused outright, since where they lead is not the address they show.
pub fn is_restricted(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || o[0] == 0
                || o[0] >= 240
                // Benchmarking, 198.18.0.0/15.
                || (o[0] == 198 && (o[1] & 0xfe) == 18)
                // IETF protocol assignments, 192.0.0.0/24 (DS-Lite, NAT64 discovery, …).
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                // The 6to4 relay anycast, 192.88.99.0/24: a way into any 6to4 address.
                || (o[0] == 192 && o[1] == 88 && o[2] == 99)
                // Azure's wire server (instance metadata, extensions, DHCP).
                || o == [168, 63, 129, 16]
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            if let Some(v4) = embedded_ipv4(&s) {
                return is_restricted(IpAddr::V4(v4));
            }
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                // IPv4-compatible ::a.b.c.d (deprecated) and everything else in ::/96.
                || s[..6] == [0; 6]
                // Local-use NAT64, 64:ff9b:1::/48: translated by the operator's own network.
                || s[..3] == [0x64, 0xff9b, 1]
                // Discard-only, 100::/64.
                || s[..4] == [0x100, 0, 0, 0]
                // IETF protocol assignments, 2001::/23: Teredo (2001::/32), benchmarking
                // (2001:2::/48), ORCHID and the like.
                || (s[0] == 0x2001 && s[1] < 0x0200)
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                // Site-local, fec0::/10 (deprecated, still routed inside some networks).
                || (s[0] & 0xffc0) == 0xfec0
                || s[0] == 0x2001 && s[1] == 0x0db8
                // Documentation, 3fff::/20.
                || (s[0] & 0xfff0) == 0x3ff0
        }
    }
}

/// The IPv4 address an IPv6 address stands for: IPv4-mapped (`::ffff:a.b.c.d`),
/// IPv4-translated (`::ffff:0:a.b.c.d`), well-known NAT64 (`64:ff9b::a.b.c.d`) and 6to4
/// (`2002:aabb:ccdd::/48`).
fn embedded_ipv4(s: &[u16; 8]) -> Option<Ipv4Addr> {
    let v4 = |hi: u16, lo: u16| Some(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)));
    match s {
        [0, 0, 0, 0, 0, 0xffff, hi, lo]
        | [0, 0, 0, 0, 0xffff, 0, hi, lo]
        | [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => v4(*hi, *lo),
        [0x2002, hi, lo, ..] => v4(*hi, *lo),
        _ => None,
    }
}

/// The address policy of one provider: which restricted addresses it was granted.
#[derive(Debug, Clone, Default)]
pub struct AddressPolicy {
    granted: Vec<IpNet>,
}

impl AddressPolicy {
    /// From the grant's CIDRs plus every IP literal in its host patterns.
    pub fn new(cidrs: &[IpNet], patterns: &[HostPattern]) -> Self {
        let mut granted = cidrs.to_vec();
        granted.extend(patterns.iter().filter_map(|p| p.ip()).map(IpNet::from));
        AddressPolicy { granted }
    }

    /// Whether the host may connect to `ip`.
    pub fn allows(&self, ip: IpAddr) -> bool {
        !is_restricted(ip) || self.granted.iter().any(|net| net.contains(&ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_loopback_and_metadata_addresses_are_restricted() {
        for ip in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "127.0.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_restricted(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["52.94.1.1", "8.8.8.8", "2600:1f18::1"] {
            assert!(!is_restricted(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn special_purpose_ranges_and_ipv6_forms_of_restricted_ipv4_are_restricted() {
        for ip in [
            // NAT64 of loopback, metadata and private addresses.
            "64:ff9b::127.0.0.1",
            "64:ff9b::169.254.169.254",
            "64:ff9b::a00:1",
            "64:ff9b:1::8.8.8.8",
            // IPv4-compatible and IPv4-translated.
            "::127.0.0.1",
            "::8.8.8.8",
            "::ffff:0:169.254.169.254",
            // 6to4 of loopback and private addresses.
            "2002:7f00:1::1",
            "2002:a9fe:a9fe::",
            "2002:c0a8:101::1",
            // Teredo, site-local, discard-only, benchmarking, documentation.
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:2::1",
            "fec0::1",
            "100::1",
            "3fff::1",
            // Benchmarking, IETF protocol assignments, 6to4 relay, Azure wire server.
            "198.18.0.1",
            "198.19.255.255",
            "192.0.0.8",
            "192.0.0.170",
            "192.88.99.1",
            "168.63.129.16",
            "100.100.100.200",
            "255.255.255.255",
            "224.0.0.1",
            "240.0.0.1",
        ] {
            assert!(is_restricted(ip.parse().unwrap()), "{ip}");
        }
        // Public addresses in the same forms stay reachable: DNS64 answers NAT64
        // addresses for public IPv4 hosts in IPv6-only clusters.
        for ip in [
            "64:ff9b::8.8.8.8",
            "::ffff:8.8.8.8",
            "2002:808:808::1",
            "198.20.0.1",
            "192.0.1.1",
            "168.63.129.17",
            "2001:4860:4860::8888",
        ] {
            assert!(!is_restricted(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn a_granted_cidr_reaches_a_special_purpose_range() {
        let policy = AddressPolicy::new(&["198.18.0.0/15".parse().unwrap()], &[]);
        assert!(policy.allows("198.18.3.4".parse().unwrap()));
        // The grant opens that range only.
        assert!(!policy.allows("10.0.0.1".parse().unwrap()));
        assert!(!policy.allows("64:ff9b::a00:1".parse().unwrap()));
        let nat64 = AddressPolicy::new(&["64:ff9b::/96".parse().unwrap()], &[]);
        assert!(nat64.allows("64:ff9b::a00:1".parse().unwrap()));
    }

    #[test]
    fn an_ip_literal_in_a_pattern_grants_that_address_only() {
        let patterns = [HostPattern::parse("http://127.0.0.1:*").unwrap()];
        let policy = AddressPolicy::new(&[], &patterns);
        assert!(policy.allows("127.0.0.1".parse().unwrap()));
        assert!(!policy.allows("127.0.0.2".parse().unwrap()));
        assert!(policy.allows("52.94.1.1".parse().unwrap()));
        let cidr = AddressPolicy::new(&["10.0.0.0/8".parse().unwrap()], &[]);
        assert!(cidr.allows("10.9.9.9".parse().unwrap()));
        assert!(!cidr.allows("169.254.169.254".parse().unwrap()));
    }
}
