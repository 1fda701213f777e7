//! What the cluster admin grants a provider: the outbound hosts it may reach, private
//! networks it may connect to, its resource limits and whether it may use the operator's
//! own service-account token. Built from the `Provider` resource.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;

use super::RuntimeError;
use super::egress::HostPattern;

/// Everything a provider is allowed. Namespace users choose a provider by name; they
/// cannot widen any of this.
#[derive(Debug, Clone)]
pub struct Grants {
    /// `scheme://host:port` patterns the provider may send requests to.
    pub allowed_outbound_hosts: Vec<HostPattern>,
    /// Private, loopback or link-local networks the provider may connect to. Public
    /// addresses need no entry; these are refused unless named here or by an IP literal in
    /// `allowed_outbound_hosts`.
    pub allowed_cidrs: Vec<IpNet>,
    /// Resource limits.
    pub limits: Limits,
    /// Whether `credentials.operator-token` is answered.
    pub allow_operator_token: bool,
    /// PEM CA certificates trusted for every store of the provider, on top of the public
    /// roots or of the store's own CA bundle (a private endpoint, a TLS-inspecting proxy).
    pub ca_bundle_pem: Option<Vec<u8>>,
    /// Host names whose connections go to a fixed address instead of the resolver's answer.
    pub host_aliases: Vec<HostAlias>,
}

/// Where connections to some host names go, in place of what DNS says: a private endpoint,
/// or a stand-in server. The request's URL, and so the grant check, the `Host` header and
/// the TLS server name, still use the host name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostAlias {
    /// Host names (or IP literals) as they appear in request URLs, matched exactly
    /// (ASCII case-insensitively).
    pub hostnames: Vec<String>,
    /// The address connected to; still checked against `allowed_cidrs`.
    pub ip: IpAddr,
    /// The port connected to; `None` keeps the URL's port.
    pub port: Option<u16>,
}

impl HostAlias {
    /// Parses `address` written as `IP`, `IP:port` or `[IPv6]:port`.
    pub fn parse(hostnames: &[String], address: &str) -> Result<Self, RuntimeError> {
        let bad = || {
            RuntimeError::InvalidGrant(format!(
                "host alias address {address:?} is not an IP address, IP:port or [IPv6]:port"
            ))
        };
        let (ip, port) = if let Ok(ip) = address.parse::<IpAddr>() {
            (ip, None)
        } else {
            let sa = address.parse::<SocketAddr>().map_err(|_| bad())?;
            (sa.ip(), Some(sa.port()))
        };
        if port == Some(0) {
            return Err(bad());
        }
        if hostnames.is_empty() || hostnames.iter().any(|h| h.is_empty()) {
            return Err(RuntimeError::InvalidGrant(format!(
                "host alias for {address:?} names no host"
            )));
        }
        Ok(HostAlias {
            hostnames: hostnames.iter().map(|h| h.to_ascii_lowercase()).collect(),
            ip,
            port,
        })
    }

    /// Whether connections to `host` take this alias.
    pub fn matches(&self, host: &str) -> bool {
        self.hostnames.iter().any(|h| h.eq_ignore_ascii_case(host))
    }
}

impl Grants {
    /// Grants nothing: no host, default limits.
    pub fn none() -> Self {
        Grants {
            allowed_outbound_hosts: Vec::new(),
            allowed_cidrs: Vec::new(),
            limits: Limits::default(),
            allow_operator_token: false,
            ca_bundle_pem: None,
            host_aliases: Vec::new(),
        }
    }

    /// Parses outbound-host patterns and CIDRs as written in a `Provider`.
    pub fn parse(hosts: &[String], cidrs: &[String], limits: Limits) -> Result<Self, RuntimeError> {
        let allowed_outbound_hosts = hosts
            .iter()
            .map(|h| HostPattern::parse(h))
            .collect::<Result<_, _>>()?;
        let allowed_cidrs = cidrs
            .iter()
            .map(|c| {
                c.parse::<IpNet>()
                    .or_else(|_| c.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map_err(|_| RuntimeError::InvalidGrant(format!("{c:?} is not an IP or CIDR")))
            })
            .collect::<Result<_, _>>()?;
        Ok(Grants {
            allowed_outbound_hosts,
            allowed_cidrs,
            limits,
            allow_operator_token: false,
            ca_bundle_pem: None,
            host_aliases: Vec::new(),
        })
    }
}

/// Per-provider resource limits. Exceeding any of them fails that call only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Linear memory one instance may grow to, all its memories together.
    pub memory_bytes: u64,
    /// Guest execution time one call may use, counted in epoch ticks of the runtime.
    pub cpu_time: Duration,
    /// Wall-clock time one call may take, waiting on the network included.
    pub call_timeout: Duration,
    /// Largest response body the host passes to the guest.
    pub max_response_bytes: u64,
    /// Largest request body the guest may send.
    pub max_request_bytes: u64,
    /// Instances of this provider running at once; further calls wait.
    pub max_concurrent_instances: u32,
    /// Time to establish one connection.
    pub connect_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 64 << 20,
            cpu_time: Duration::from_secs(2),
            call_timeout: Duration::from_secs(30),
            max_response_bytes: 4 << 20,
            max_request_bytes: 1 << 20,
            max_concurrent_instances: 16,
            connect_timeout: Duration::from_secs(5),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_alias_address_is_an_ip_with_an_optional_port() {
        let names = ["Vault.Example.test".to_string()];
        let a = HostAlias::parse(&names, "127.0.0.1:8443").unwrap();
        assert_eq!((a.ip.to_string(), a.port), ("127.0.0.1".into(), Some(8443)));
        assert!(a.matches("vault.example.TEST"));
        assert!(!a.matches("example.test"));
        let a = HostAlias::parse(&names, "10.0.0.5").unwrap();
        assert_eq!(a.port, None);
        let a = HostAlias::parse(&names, "[fd00::1]:443").unwrap();
        assert_eq!((a.ip.to_string(), a.port), ("fd00::1".into(), Some(443)));
    }

    #[test]
    fn a_host_alias_with_a_name_for_an_address_or_no_host_is_refused() {
        let names = ["vault.example.test".to_string()];
        for bad in [
            "vault.internal",
            "vault.internal:443",
            "127.0.0.1:0",
            "",
            "1.2.3.4:x",
        ] {
            let e = HostAlias::parse(&names, bad).unwrap_err().to_string();
            assert!(e.contains("is not an IP address"), "{bad}: {e}");
        }
        let e = HostAlias::parse(&[], "127.0.0.1").unwrap_err().to_string();
        assert!(e.contains("names no host"), "{e}");
    }
}
