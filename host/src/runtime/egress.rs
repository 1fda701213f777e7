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
pub use hooks::EgressHooks;
pub use pattern::HostPattern;

use std::net::IpAddr;

use ipnet::IpNet;

/// Whether `ip` is in a range a provider may not reach unless granted: private, loopback,
/// link-local (cloud metadata lives at 169.254.169.254 and fd00:ec2::254), carrier-grade
/// NAT, unique-local, unspecified, multicast, broadcast or documentation addresses.
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
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_restricted(IpAddr::V4(v4));
            }
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || s[0] == 0x2001 && s[1] == 0x0db8
        }
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
