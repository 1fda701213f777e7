//! What the cluster admin grants a provider: the outbound hosts it may reach, private
//! networks it may connect to, its resource limits and whether it may use the operator's
//! own service-account token. Built from the `Provider` resource.

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
}

impl Grants {
    /// Grants nothing: no host, default limits.
    pub fn none() -> Self {
        Grants {
            allowed_outbound_hosts: Vec::new(),
            allowed_cidrs: Vec::new(),
            limits: Limits::default(),
            allow_operator_token: false,
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
