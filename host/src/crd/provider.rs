//! `Provider` (`airlock.dev/v1alpha1`, cluster-scoped): the platform administrator's grant for
//! one provider — which Wasm module implements it and what that module may reach.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{Capabilities, Condition, DNS_SUBDOMAIN_PATTERN};

/// Default [`ProviderLimits::memory_bytes`]: 64 MiB.
pub const DEFAULT_MEMORY_BYTES: i64 = 64 * 1024 * 1024;
/// Default [`ProviderLimits::cpu_millis_per_call`]: 2 seconds of guest CPU time.
pub const DEFAULT_CPU_MILLIS_PER_CALL: i64 = 2_000;
/// Default [`ProviderLimits::max_response_bytes`]: 8 MiB.
pub const DEFAULT_MAX_RESPONSE_BYTES: i64 = 8 * 1024 * 1024;
/// Default [`ProviderLimits::max_concurrent_instances`].
pub const DEFAULT_MAX_CONCURRENT_INSTANCES: i32 = 16;
/// Default wall-clock deadline of one call, in seconds.
pub const DEFAULT_CALL_TIMEOUT_SECONDS: i64 = 30;

/// An OCI reference with a tag, a digest or both:
/// `registry[:port]/repository(:tag|@sha256:<64 hex>|:tag@sha256:<64 hex>)`.
const OCI_REFERENCE_PATTERN: &str = r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?(/[a-z0-9]+([._-]+[a-z0-9]+)*)+(:[A-Za-z0-9_][A-Za-z0-9._-]{0,127}(@sha256:[a-f0-9]{64})?|@sha256:[a-f0-9]{64})$";
/// A relative path without `..` or hidden segments.
const MODULE_PATH_PATTERN: &str = r"^[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$";
/// `scheme://host[:port]` where scheme, host (or its first label) and port may be `*`.
const OUTBOUND_HOST_PATTERN: &str = r"^(\*|https?)://(\*|(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?((\.([a-z0-9]([a-z0-9-]*[a-z0-9])?|\*))*\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)?|\[[0-9a-f:.]+\])(:(\*|[0-9]{1,5}))?$";

/// Which module implements the provider and what it is granted.
// clippy reads the repeated `type_ = ...` of separate printcolumn(...) entries as duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "airlock.dev",
    version = "v1alpha1",
    kind = "Provider",
    plural = "providers",
    status = "ProviderStatus",
    derive = "PartialEq",
    category = "airlock",
    doc = "Provider is a cluster-wide grant for one secret backend. Its name is the key used \
           under spec.provider of SecretStores and ClusterSecretStores, lowercased (a store with \
           `provider: {vault: {...}}` runs the Provider named `vault`; `onepasswordSDK` maps to \
           `onepasswordsdk`). It names the WebAssembly module that implements the backend and \
           everything that module may reach: outbound hosts, private networks, memory, time per \
           call and credentials. Namespace users pick a Provider through their stores but cannot \
           widen its grants.",
    printcolumn(
        name = "Module",
        type_ = "string",
        json_path = ".spec.module['oci','path']"
    ),
    printcolumn(name = "Digest", type_ = "string", json_path = ".status.digest"),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Message",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].message",
        priority = "1"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.signature) || has(self.module.oci)").message("signature can only be checked for oci modules"))]
pub struct ProviderSpec {
    /// The WebAssembly component implementing the provider: a file bundled with the operator
    /// (`path`) or an OCI artifact pinned by digest (`oci`).
    pub module: ProviderModule,

    /// Where the provider may send HTTP requests, as `scheme://host[:port]` patterns. `*`
    /// stands for any scheme, any host, any port, (as `*.`) any subdomain, or (as a whole
    /// inner label) exactly one label. Examples: `https://*.amazonaws.com`,
    /// `https://secretsmanager.*.amazonaws.com`, `https://vault.corp:8200`,
    /// `http://127.0.0.1:*`. Requests to anything else, including redirects, fail inside the
    /// provider with "outbound host … is not granted". Empty (the default) means no network
    /// access.
    #[schemars(length(max = 64), inner(length(min = 1, max = 253), regex(pattern = OUTBOUND_HOST_PATTERN)))]
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,

    /// Private, loopback, link-local and cloud-metadata addresses the provider may reach, as IP
    /// addresses or CIDRs (`10.20.0.0/16`, `127.0.0.1`, `fd00::/8`). The host resolves names
    /// itself and refuses such addresses unless listed here, even when the host name is in
    /// `allowedOutboundHosts`, so DNS tricks cannot reach internal services. Default: none.
    #[schemars(length(max = 64), inner(length(min = 1, max = 64)))]
    #[x_kube(validation = Rule::new("self.all(c, isIP(c) || isCIDR(c))").message("each entry must be an IP address or a CIDR"))]
    #[serde(default)]
    pub allowed_cidrs: Vec<String>,

    /// Base64-encoded PEM CA certificates trusted for TLS to every host the provider reaches,
    /// in addition to the public roots (or to a store's own `caBundle`/`caProvider`): for
    /// private endpoints and TLS-inspecting proxies. Stores cannot set this.
    #[schemars(length(max = 262144))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<String>,

    /// Fixed addresses for host names, as a Pod's `hostAliases` but with an optional port:
    /// requests to these hosts connect to `address` instead of the resolver's answer (a
    /// private endpoint, or a stand-in server in tests). The URL's host still has to match
    /// `allowedOutboundHosts`, TLS still verifies the host name, and a private address still
    /// has to be in `allowedCidrs`.
    #[schemars(length(max = 64))]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_aliases: Vec<ProviderHostAlias>,

    /// Resource limits for every call into the provider. Exceeding one fails that call (and
    /// only the stores using this provider), never the operator.
    #[serde(default)]
    pub limits: ProviderLimits,

    /// Which credentials stores using this provider may ask the host for, beyond those named in
    /// their own configuration.
    #[serde(default)]
    pub credentials: ProviderCredentials,

    /// Require a valid signature on the OCI module before it is loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<ProviderSignature>,
}

/// One entry of `spec.hostAliases`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderHostAlias {
    /// Host names (or IP literals) exactly as they appear in the provider's request URLs.
    #[schemars(length(min = 1, max = 16), inner(length(min = 1, max = 253)))]
    pub hostnames: Vec<String>,
    /// `IP`, `IP:port` or `[IPv6]:port`. Without a port, the URL's port is kept.
    #[schemars(length(min = 1, max = 64))]
    pub address: String,
}

/// The module source. Set exactly one of `path` or `oci`; `pullSecretRef`, `caBundle` and
/// `insecure` only apply to `oci`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.path) != has(self.oci)").message("set exactly one of path or oci"),
    validation = Rule::new("has(self.oci) || (!has(self.pullSecretRef) && !has(self.caBundle) && !has(self.insecure))")
        .message("pullSecretRef, caBundle and insecure only apply to oci modules")
)]
pub struct ProviderModule {
    /// A component shipped inside the operator image, relative to its providers directory,
    /// for example `aws.wasm`.
    #[schemars(length(min = 1, max = 253), regex(pattern = MODULE_PATH_PATTERN))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,

    /// A Wasm component OCI artifact (the wasm-pkg-tools layout: artifact type
    /// `application/vnd.wasm.config.v0+json`, one `application/wasm` layer), best pinned by
    /// digest: `ghcr.io/example/airlock-providers/vault:0.1.0@sha256:<64 hex digits>` (the tag
    /// is then only informative). A reference with only a tag is resolved once and the digest
    /// recorded in `status.resolvedReference`; the tag is not followed afterwards (change the
    /// reference to move). The content is verified against its digest; raw and compiled
    /// modules are cached by digest. Changing it swaps the provider to the new module without
    /// a restart; if the new one cannot be pulled the old one keeps serving.
    #[schemars(length(min = 1, max = 512), regex(pattern = OCI_REFERENCE_PATTERN))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oci: Option<String>,

    /// A `kubernetes.io/dockerconfigjson` Secret with registry credentials for `oci`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_secret_ref: Option<NamespacedSecretRef>,

    /// Base64-encoded PEM certificates to trust for the registry, for private registries with
    /// their own CA.
    #[schemars(extend("format" = "byte"))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<String>,

    /// Talk plain HTTP to the registry. Only for registries on a trusted network (a local
    /// development registry); digests still protect the content, nothing protects the
    /// credentials. Default false (HTTPS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure: Option<bool>,
}

impl ProviderModule {
    /// The module reference as shown in the `Module` column: the OCI reference or the path.
    pub fn reference(&self) -> Option<&str> {
        self.oci.as_deref().or(self.path.as_deref())
    }
}

/// A Secret named from a cluster-scoped object.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct NamespacedSecretRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN))]
    pub name: String,
    /// Namespace of the Secret. Defaults to the namespace the operator runs in.
    #[schemars(length(min = 1, max = 63))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Per-call resource limits of a provider.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ProviderLimits {
    /// Most linear memory one provider instance may grow to, in bytes. Default 67108864
    /// (64 MiB), enough for Rust and Go providers; interpreted guests (Python, JavaScript)
    /// usually need 256 MiB or more. At most 4 GiB.
    #[schemars(range(min = 1_048_576, max = 4_294_967_296_i64))]
    #[serde(default = "default_memory_bytes")]
    pub memory_bytes: i64,

    /// CPU time one call into the provider may use, in milliseconds of guest execution
    /// (counted in 10 ms ticks; time spent waiting for the backend does not count). A guest
    /// over budget is stopped and the call fails with `ProviderCPUDeadlineExceeded`.
    /// Default 2000 (2 s). Every call also has a wall-clock deadline, `callTimeoutSeconds`.
    #[schemars(range(min = 1, max = 600_000))]
    #[serde(default = "default_cpu_millis_per_call")]
    pub cpu_millis_per_call: i64,

    /// Largest HTTP response body the provider may receive, per request, in bytes. Default
    /// 8388608 (8 MiB).
    #[schemars(range(min = 1024, max = 1_073_741_824))]
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: i64,

    /// How many instances of the provider may run at the same time across all stores; further
    /// calls wait. Default 16.
    #[schemars(range(min = 1, max = 1024))]
    #[serde(default = "default_max_concurrent_instances")]
    pub max_concurrent_instances: i32,

    /// Wall-clock deadline of one call into the provider, backend round trips included, in
    /// seconds. Default 30. A call past it fails with `ProviderTimeout`; after one has, the
    /// store's other calls fail at once with the same reason (not queued behind a backend
    /// that does not answer) while a single call at a time finds out whether it is back.
    #[schemars(range(min = 1, max = 600))]
    #[serde(default = "default_call_timeout_seconds")]
    pub call_timeout_seconds: i64,
}

fn default_call_timeout_seconds() -> i64 {
    DEFAULT_CALL_TIMEOUT_SECONDS
}

fn default_memory_bytes() -> i64 {
    DEFAULT_MEMORY_BYTES
}

fn default_cpu_millis_per_call() -> i64 {
    DEFAULT_CPU_MILLIS_PER_CALL
}

fn default_max_response_bytes() -> i64 {
    DEFAULT_MAX_RESPONSE_BYTES
}

fn default_max_concurrent_instances() -> i32 {
    DEFAULT_MAX_CONCURRENT_INSTANCES
}

impl Default for ProviderLimits {
    fn default() -> Self {
        Self {
            memory_bytes: DEFAULT_MEMORY_BYTES,
            cpu_millis_per_call: DEFAULT_CPU_MILLIS_PER_CALL,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            max_concurrent_instances: DEFAULT_MAX_CONCURRENT_INSTANCES,
            call_timeout_seconds: DEFAULT_CALL_TIMEOUT_SECONDS,
        }
    }
}

/// Credential grants beyond what a store's own configuration names.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ProviderCredentials {
    /// Let stores using this provider authenticate as the operator's own ServiceAccount (for
    /// example Vault's Kubernetes auth with neither `serviceAccountRef` nor `secretRef`, as
    /// in ESO's examples, or EKS Pod Identity / GKE Workload Identity bound to the operator).
    /// Off by default: stores must name their own ServiceAccount or Secrets, and a store that
    /// names neither gets an access-denied condition naming this field.
    #[serde(default)]
    pub allow_operator_service_account_token: bool,
}

/// Signature verification for OCI modules.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ProviderSignature {
    /// PEM-encoded public key (cosign format). The artifact's signature must verify with it
    /// before the module is compiled or run.
    #[schemars(length(min = 1))]
    pub public_key: String,
}

/// Observed state of a Provider.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ProviderStatus {
    /// `Ready` condition: `Unknown` (reason `Loading`) while the module is fetched, verified
    /// and compiled; `True` (`Loaded`) once it serves; `False` with the reason (for example
    /// `ArtifactNotFound`, `DigestMismatch`, `SignatureInvalid`, `ProviderImportsNotGranted`,
    /// `ProviderMemoryLimitExceeded`, `InvalidGrant`, `ModuleNotFound`) otherwise, its
    /// message ending in `; to fix: …` when a field of the Provider or its module would fix
    /// it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `sha256:` digest of the loaded module (the component bytes; for an OCI module, its
    /// layer digest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// For an OCI module: the reference pinned to the manifest digest that was loaded,
    /// `registry/repository[:tag]@sha256:…` (a tag in `spec.module.oci` resolves once, to this).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_reference: Option<String>,
    /// The provider's own version, as its metadata reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Size of the module in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
    /// The WIT world the module implements, for example `airlock:provider/provider@0.1.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub world: Option<String>,
    /// What the module supports: `ReadOnly`, `WriteOnly` or `ReadWrite`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Capabilities>,
    /// When the module was last loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loaded_time: Option<Time>,
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::crd::testing::{admission_errors, typed_round_trip};

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn provider(spec: Value) -> Value {
        json!({"apiVersion": "airlock.dev/v1alpha1", "kind": "Provider", "metadata": {"name": "vault"}, "spec": spec})
    }

    fn errors(spec: Value) -> Vec<String> {
        admission_errors(&provider(spec))
    }

    fn assert_rejected(spec: Value, expected: &str) {
        let errors = errors(spec.clone());
        assert!(
            errors.iter().any(|e| e.contains(expected)),
            "{spec}: expected {expected:?}, got {errors:#?}"
        );
    }

    #[test]
    fn bundled_and_oci_modules_are_accepted() {
        let bundled = json!({"module": {"path": "vault.wasm"}, "allowedOutboundHosts": ["https://vault.corp:8200"]});
        assert!(errors(bundled.clone()).is_empty(), "{:#?}", errors(bundled));
        let oci = json!({
            "module": {
                "oci": format!("ghcr.io/example/airlock-providers/aws:0.1.0@{DIGEST}"),
                "pullSecretRef": {"name": "ghcr", "namespace": "airlock-system"},
                "caBundle": "LS0tLS1CRUdJTi0tLS0t",
            },
            "allowedOutboundHosts": ["https://*.amazonaws.com", "https://secretsmanager.*.amazonaws.com", "http://127.0.0.1:*", "*://*:*", "https://[::1]:8443"],
            "allowedCidrs": ["10.0.0.0/8", "127.0.0.1", "fd00::/8", "169.254.169.254/32"],
            "limits": {"memoryBytes": 268435456, "cpuMillisPerCall": 5000, "maxResponseBytes": 1048576, "maxConcurrentInstances": 4, "callTimeoutSeconds": 45},
            "credentials": {"allowOperatorServiceAccountToken": true},
            "signature": {"publicKey": "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n"},
        });
        assert!(errors(oci.clone()).is_empty(), "{:#?}", errors(oci.clone()));
        let object = provider(oci);
        assert_eq!(typed_round_trip(&object).expect("typed"), object);
        let registry_with_port =
            json!({"module": {"oci": format!("localhost:5000/providers/fake@{DIGEST}")}});
        assert!(
            errors(registry_with_port.clone()).is_empty(),
            "{:#?}",
            errors(registry_with_port)
        );
    }

    #[test]
    fn a_module_comes_from_exactly_one_place() {
        let oci = format!("ghcr.io/x/y@{DIGEST}");
        assert_rejected(json!({"module": {}}), "exactly one of path or oci");
        assert_rejected(
            json!({"module": {"path": "a.wasm", "oci": oci}}),
            "exactly one of path or oci",
        );
        assert_rejected(
            json!({"module": {"path": "a.wasm", "pullSecretRef": {"name": "ghcr"}}}),
            "pullSecretRef, caBundle and insecure only apply to oci modules",
        );
        assert_rejected(
            json!({"module": {"path": "a.wasm"}, "signature": {"publicKey": "k"}}),
            "signature can only be checked for oci modules",
        );
    }

    #[test]
    fn references_need_a_tag_or_digest_and_paths_must_stay_inside() {
        let tagged =
            json!({"module": {"oci": "127.0.0.1:5000/providers/fake:1.0", "insecure": true}});
        assert!(errors(tagged.clone()).is_empty(), "{:#?}", errors(tagged));
        for bad in [
            "ghcr.io/x/y",
            "ghcr.io/x/y@sha256:abc",
            "GHCR.io/x/y@sha256:00",
            "y@sha256:00",
        ] {
            assert_rejected(json!({"module": {"oci": bad}}), "oci");
        }
        for bad in ["/etc/passwd", "../x.wasm", "a/../../b.wasm", ".hidden"] {
            assert_rejected(json!({"module": {"path": bad}}), "path");
        }
    }

    #[test]
    fn grants_are_validated() {
        let with = |patch: Value| {
            let mut spec = json!({"module": {"path": "a.wasm"}});
            for (k, v) in patch.as_object().expect("object") {
                spec[k] = v.clone();
            }
            spec
        };
        for bad in [
            "vault.corp",
            "ftp://vault.corp",
            "https://vault.corp/path",
            "https://Vault.corp",
            "https://vault.corp:port",
        ] {
            assert_rejected(
                with(json!({"allowedOutboundHosts": [bad]})),
                "allowedOutboundHosts",
            );
        }
        assert_rejected(
            with(json!({"allowedCidrs": ["10.0.0.0/33"]})),
            "IP address or a CIDR",
        );
        assert_rejected(
            with(json!({"allowedCidrs": ["vault.corp"]})),
            "IP address or a CIDR",
        );
        assert_rejected(
            with(json!({"limits": {"memoryBytes": 1024}})),
            "memoryBytes",
        );
        assert_rejected(
            with(json!({"limits": {"maxConcurrentInstances": 0}})),
            "maxConcurrentInstances",
        );
    }

    #[test]
    fn limits_and_grants_default_to_the_documented_values() {
        let spec: ProviderSpec =
            serde_json::from_value(json!({"module": {"path": "a.wasm"}})).expect("spec");
        assert!(spec.allowed_outbound_hosts.is_empty() && spec.allowed_cidrs.is_empty());
        assert_eq!(
            spec.limits,
            ProviderLimits {
                memory_bytes: 64 << 20,
                cpu_millis_per_call: 2_000,
                max_response_bytes: 8 << 20,
                max_concurrent_instances: 16,
                call_timeout_seconds: 30
            }
        );
        assert!(!spec.credentials.allow_operator_service_account_token);
        assert_eq!(spec.module.reference(), Some("a.wasm"));
        let partial: ProviderLimits =
            serde_json::from_value(json!({"memoryBytes": 1048576})).expect("limits");
        assert_eq!(
            partial,
            ProviderLimits {
                memory_bytes: 1 << 20,
                ..ProviderLimits::default()
            }
        );
    }
}
