//! `spec.provider.azurekv` as ESO defines it, and the endpoints of each Azure cloud.

use airlock_provider_sdk::Error;
use serde::Deserialize;

/// ESO's `SecretKeySelector`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct KeySelector {
    /// Secret name.
    pub name: String,
    /// Key in the Secret.
    #[serde(default)]
    pub key: String,
    /// Namespace (ClusterSecretStore only).
    #[serde(default)]
    pub namespace: Option<String>,
}

/// ESO's `ServiceAccountSelector`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct AccountSelector {
    /// ServiceAccount name.
    pub name: String,
    /// Namespace (ClusterSecretStore only).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Token audiences; ESO's default is `api://AzureADTokenExchange`.
    #[serde(default)]
    pub audiences: Vec<String>,
}

/// How the store authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// An application registration: client secret or client certificate.
    ServicePrincipal {
        /// Directory (tenant) ID.
        tenant: String,
        /// `authSecretRef.clientId`.
        client_id: KeySelector,
        /// `authSecretRef.clientSecret`.
        client_secret: Option<KeySelector>,
        /// `authSecretRef.clientCertificate` (PEM certificate and private key).
        client_certificate: Option<KeySelector>,
    },
    /// The node's managed identity from IMDS; `identity` selects a user-assigned one.
    ManagedIdentity {
        /// `identityId`: a client ID, or an ARM resource ID (`/subscriptions/…`).
        identity: Option<String>,
    },
    /// A ServiceAccount token exchanged for an Entra ID token (federated credential).
    WorkloadIdentity {
        /// `serviceAccountRef`.
        account: AccountSelector,
        /// `tenantId`, `authSecretRef.tenantId` or the ServiceAccount's annotation.
        tenant: Option<TenantSource>,
        /// `authSecretRef.clientId` or the ServiceAccount's annotation.
        client_id: Option<KeySelector>,
    },
}

/// Where a workload-identity tenant comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantSource {
    /// `spec.provider.azurekv.tenantId`.
    Literal(String),
    /// `authSecretRef.tenantId`.
    Secret(KeySelector),
}

/// `spec.provider.azurekv`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `https://<vault>.vault.azure.net`, without a trailing `/`.
    pub vault_url: String,
    /// How to get a token.
    pub auth: Auth,
    /// The Entra ID authority host, ending in `/`.
    pub authority: String,
    /// The Key Vault resource whose `/.default` scope tokens are asked for.
    pub resource: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    vault_url: String,
    #[serde(default)]
    auth_type: Option<String>,
    #[serde(default)]
    tenant_id: Option<String>,
    #[serde(default)]
    auth_secret_ref: Option<RawSecretRef>,
    #[serde(default)]
    identity_id: Option<String>,
    #[serde(default)]
    service_account_ref: Option<AccountSelector>,
    #[serde(default)]
    environment_type: Option<String>,
    #[serde(default)]
    custom_cloud_config: Option<RawCloud>,
    // The Go SDK switch; both of ESO's clients speak the same REST API.
    #[serde(default, rename = "useAzureSDK")]
    #[allow(dead_code)]
    use_azure_sdk: Option<bool>,
    // Applied by the host to this store's TLS connections.
    #[serde(default)]
    #[allow(dead_code)]
    ca_bundle: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    ca_provider: Option<serde_json::Value>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawSecretRef {
    #[serde(default)]
    client_id: Option<KeySelector>,
    #[serde(default)]
    client_secret: Option<KeySelector>,
    #[serde(default)]
    client_certificate: Option<KeySelector>,
    #[serde(default)]
    tenant_id: Option<KeySelector>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCloud {
    active_directory_endpoint: String,
    #[serde(default)]
    key_vault_endpoint: Option<String>,
    #[serde(default, rename = "keyVaultDNSSuffix")]
    #[allow(dead_code)]
    key_vault_dns_suffix: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    resource_manager_endpoint: Option<String>,
}

/// The Entra ID authority and Key Vault resource of one of ESO's `environmentType`s.
pub fn cloud(environment: &str) -> Option<(&'static str, &'static str)> {
    Some(match environment {
        "PublicCloud" => (
            "https://login.microsoftonline.com/",
            "https://vault.azure.net",
        ),
        "USGovernmentCloud" => (
            "https://login.microsoftonline.us/",
            "https://vault.usgovcloudapi.net",
        ),
        "ChinaCloud" => ("https://login.chinacloudapi.cn/", "https://vault.azure.cn"),
        "GermanCloud" => (
            "https://login.microsoftonline.de/",
            "https://vault.microsoftazure.de",
        ),
        _ => return None,
    })
}

const FIELD: &str = "spec.provider.azurekv";

fn selector(field: &str, s: Option<KeySelector>) -> Result<Option<KeySelector>, Error> {
    match s {
        Some(s) if s.name.is_empty() || s.key.is_empty() => Err(Error::invalid_config(format!(
            "{FIELD}.authSecretRef.{field} needs name and key"
        ))),
        other => Ok(other),
    }
}

impl Config {
    /// Parses and checks the store's configuration.
    pub fn parse(text: &str) -> Result<Config, Error> {
        let raw: Raw = serde_json::from_str(text)
            .map_err(|e| Error::invalid_config(format!("{FIELD}: {e}")))?;
        let vault_url = raw.vault_url.trim().trim_end_matches('/').to_string();
        let rest = vault_url.strip_prefix("https://").ok_or_else(|| {
            Error::invalid_config(format!(
                "{FIELD}.vaultUrl {:?} must be https://<vault>.vault.azure.net",
                raw.vault_url
            ))
        })?;
        if rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
            return Err(Error::invalid_config(format!(
                "{FIELD}.vaultUrl {:?} must be https://host[:port] without a path",
                raw.vault_url
            )));
        }
        let environment = raw.environment_type.as_deref().unwrap_or("PublicCloud");
        let (authority, resource) = match (&raw.custom_cloud_config, environment) {
            (Some(custom), _) => {
                let authority = format!(
                    "{}/",
                    custom
                        .active_directory_endpoint
                        .trim()
                        .trim_end_matches('/')
                );
                if !authority.starts_with("https://") {
                    return Err(Error::invalid_config(format!(
                        "{FIELD}.customCloudConfig.activeDirectoryEndpoint must be an https:// URL"
                    )));
                }
                let resource = custom
                    .key_vault_endpoint
                    .as_deref()
                    .map(|e| e.trim().trim_end_matches('/').to_string())
                    .or_else(|| cloud(environment).map(|(_, r)| r.to_string()))
                    .ok_or_else(|| {
                        Error::invalid_config(format!(
                            "{FIELD}.customCloudConfig.keyVaultEndpoint is required for {environment}"
                        ))
                    })?;
                (authority, resource)
            }
            (None, "AzureStackCloud") => {
                return Err(Error::invalid_config(format!(
                    "{FIELD}.customCloudConfig is required when environmentType is AzureStackCloud"
                )));
            }
            (None, env) => {
                let (a, r) = cloud(env).ok_or_else(|| {
                    Error::invalid_config(format!(
                        "{FIELD}.environmentType {env:?} is not one of PublicCloud, USGovernmentCloud, ChinaCloud, GermanCloud, AzureStackCloud"
                    ))
                })?;
                (a.to_string(), r.to_string())
            }
        };
        let refs = raw.auth_secret_ref.unwrap_or_default();
        let tenant_literal = raw.tenant_id.filter(|t| !t.trim().is_empty());
        let auth = match raw.auth_type.as_deref().unwrap_or("ServicePrincipal") {
            "ServicePrincipal" => {
                let tenant = tenant_literal.ok_or_else(|| {
                    Error::invalid_config(format!(
                        "{FIELD}.tenantId is required for authType ServicePrincipal"
                    ))
                })?;
                let client_id = selector("clientId", refs.client_id)?.ok_or_else(|| {
                    Error::invalid_config(format!(
                        "{FIELD}.authSecretRef.clientId is required for authType ServicePrincipal"
                    ))
                })?;
                let client_secret = selector("clientSecret", refs.client_secret)?;
                let client_certificate = selector("clientCertificate", refs.client_certificate)?;
                if client_secret.is_some() == client_certificate.is_some() {
                    return Err(Error::invalid_config(format!(
                        "{FIELD}.authSecretRef needs exactly one of clientSecret and clientCertificate"
                    )));
                }
                Auth::ServicePrincipal {
                    tenant,
                    client_id,
                    client_secret,
                    client_certificate,
                }
            }
            "ManagedIdentity" => Auth::ManagedIdentity {
                identity: raw.identity_id.filter(|i| !i.trim().is_empty()),
            },
            "WorkloadIdentity" => {
                let account = raw.service_account_ref.ok_or_else(|| {
                    Error::invalid_config(format!(
                        "{FIELD}.serviceAccountRef is required for authType WorkloadIdentity (the AKS webhook's environment variables are not available to a sandboxed provider)"
                    ))
                })?;
                let tenant = match (tenant_literal, selector("tenantId", refs.tenant_id)?) {
                    (Some(t), _) => Some(TenantSource::Literal(t)),
                    (None, Some(s)) => Some(TenantSource::Secret(s)),
                    (None, None) => None,
                };
                Auth::WorkloadIdentity {
                    account,
                    tenant,
                    client_id: selector("clientId", refs.client_id)?,
                }
            }
            other => {
                return Err(Error::invalid_config(format!(
                    "{FIELD}.authType {other:?} is not one of ServicePrincipal, ManagedIdentity, WorkloadIdentity"
                )));
            }
        };
        Ok(Config {
            vault_url,
            auth,
            authority,
            resource,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SP: &str = r#""tenantId":"t","authSecretRef":{"clientId":{"name":"az","key":"id"},"clientSecret":{"name":"az","key":"secret"}}"#;

    fn parse(fields: &str) -> Result<Config, Error> {
        Config::parse(&format!(
            r#"{{"vaultUrl":"https://kv.vault.azure.net/"{fields}}}"#
        ))
    }

    #[test]
    fn the_public_cloud_and_a_service_principal_are_the_defaults() {
        let c = parse(&format!(",{SP}")).unwrap();
        assert_eq!(c.vault_url, "https://kv.vault.azure.net");
        assert_eq!(c.authority, "https://login.microsoftonline.com/");
        assert_eq!(c.resource, "https://vault.azure.net");
        assert!(matches!(c.auth, Auth::ServicePrincipal { ref tenant, .. } if tenant == "t"));
    }

    #[test]
    fn sovereign_and_custom_clouds_change_the_authority_and_resource() {
        let c = parse(&format!(r#",{SP},"environmentType":"ChinaCloud""#)).unwrap();
        assert_eq!(c.authority, "https://login.chinacloudapi.cn/");
        assert_eq!(c.resource, "https://vault.azure.cn");
        let c = parse(&format!(
            r#",{SP},"environmentType":"AzureStackCloud","customCloudConfig":{{"activeDirectoryEndpoint":"https://login.stack.example","keyVaultEndpoint":"https://vault.stack.example/"}}"#
        ))
        .unwrap();
        assert_eq!(c.authority, "https://login.stack.example/");
        assert_eq!(c.resource, "https://vault.stack.example");
        assert!(matches!(
            parse(&format!(r#",{SP},"environmentType":"AzureStackCloud""#)),
            Err(Error::InvalidConfig(m)) if m.contains("customCloudConfig is required")
        ));
        assert!(matches!(
            parse(&format!(r#",{SP},"environmentType":"Mars""#)),
            Err(Error::InvalidConfig(m)) if m.contains("not one of")
        ));
    }

    #[test]
    fn each_auth_type_checks_what_it_needs() {
        assert!(matches!(
            parse(r#","authSecretRef":{"clientId":{"name":"a","key":"b"},"clientSecret":{"name":"a","key":"c"}}"#),
            Err(Error::InvalidConfig(m)) if m.contains("tenantId is required")
        ));
        assert!(matches!(
            parse(r#","tenantId":"t","authSecretRef":{"clientId":{"name":"a","key":"b"}}"#),
            Err(Error::InvalidConfig(m)) if m.contains("exactly one of")
        ));
        let mi = parse(r#","authType":"ManagedIdentity","identityId":"client-id""#).unwrap();
        assert_eq!(
            mi.auth,
            Auth::ManagedIdentity {
                identity: Some("client-id".into())
            }
        );
        assert!(matches!(
            parse(r#","authType":"WorkloadIdentity""#),
            Err(Error::InvalidConfig(m)) if m.contains("serviceAccountRef is required")
        ));
        assert!(matches!(
            Config::parse(r#"{"vaultUrl":"http://kv.vault.azure.net","authType":"ManagedIdentity"}"#),
            Err(Error::InvalidConfig(m)) if m.contains("https://")
        ));
    }
}
