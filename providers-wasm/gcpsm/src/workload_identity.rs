//! GKE Workload Identity as ESO does it: a token of the store's Kubernetes ServiceAccount
//! for the cluster's identity pool (`<clusterProjectID>.svc.id.goog`) is exchanged at
//! `securetoken.googleapis.com/v1/identitybindingtoken` for a federated access token; when
//! the ServiceAccount carries `iam.gke.io/gcp-service-account`, that token then buys the
//! Google service account's own token from IAM Credentials `generateAccessToken`. Cluster
//! facts the store leaves out are read from the GKE metadata server (which the admin must
//! grant: it is never granted by default).
//!
//! Workload Identity Federation with a Kubernetes ServiceAccount as the subject
//! ([`federated_grant`]) is the same shape at Google's STS (`sts.googleapis.com/v1/token`)
//! for the pool provider the store's `audience` names.

use airlock_provider_sdk::credentials::{self, ServiceAccountSelector};
use airlock_provider_sdk::http::{self, Request, Response};
use airlock_provider_sdk::{Error, credential_error};
use serde_json::json;

use crate::config::{AccountSelector, Federation, WorkloadIdentity};
use crate::token::{CLOUD_PLATFORM, Grant};

/// Google's Security Token Service, for Workload Identity Federation.
pub const STS_URL: &str = "https://sts.googleapis.com/v1/token";
/// The identity-binding token endpoint ESO calls.
pub const IDENTITY_BINDING_URL: &str = "https://securetoken.googleapis.com/v1/identitybindingtoken";
/// IAM Credentials, for impersonating the annotated Google service account.
pub const IAM_CREDENTIALS_URL: &str = "https://iamcredentials.googleapis.com/v1";
/// The GKE metadata server (plain HTTP on the link-local address, as Google's clients use it).
pub const METADATA_URL: &str = "http://169.254.169.254/computeMetadata/v1";
/// The ServiceAccount annotation naming the Google service account to impersonate.
pub const GCP_SA_ANNOTATION: &str = "iam.gke.io/gcp-service-account";
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// The identity pool and the cluster's identity provider URL.
pub fn pool_and_provider(wi: &WorkloadIdentity) -> Result<(String, String), Error> {
    let project = match &wi.cluster_project_id {
        Some(p) => p.clone(),
        None => metadata("project/project-id", "clusterProjectID")?,
    };
    let location = match &wi.cluster_location {
        Some(l) => l.clone(),
        None => metadata("instance/attributes/cluster-location", "clusterLocation")?,
    };
    let name = match &wi.cluster_name {
        Some(n) => n.clone(),
        None => metadata("instance/attributes/cluster-name", "clusterName")?,
    };
    Ok((
        format!("{project}.svc.id.goog"),
        format!(
            "https://container.googleapis.com/v1/projects/{project}/locations/{location}/clusters/{name}"
        ),
    ))
}

/// A new access token for the store's ServiceAccount.
pub fn grant(wi: &WorkloadIdentity) -> Result<Grant, Error> {
    let (pool, provider) = pool_and_provider(wi)?;
    let account = &wi.service_account_ref;
    let selector = |audiences: Vec<String>| ServiceAccountSelector {
        name: account.name.clone(),
        namespace: account.namespace.clone(),
        audiences,
    };
    let mut audiences = vec![pool.clone()];
    audiences.extend(account.audiences.iter().cloned());
    let subject = credentials::service_account_token(&selector(audiences))
        .map_err(|e| credential_error("auth.workloadIdentity.serviceAccountRef", e))?;
    let body = json!({
        "grant_type": TOKEN_EXCHANGE,
        "subject_token_type": JWT_TOKEN_TYPE,
        "requested_token_type": ACCESS_TOKEN_TYPE,
        "subject_token": subject.token,
        "audience": format!("identitynamespace:{pool}:{provider}"),
        "scope": CLOUD_PLATFORM,
    });
    let request = Request::new("POST", IDENTITY_BINDING_URL)
        .header("Content-Type", "application/json")
        .header("Accept", "application/json")
        .body(body.to_string());
    let response = send(&request, "the identity-binding token request")?;
    let federated = crate::token::oauth_answer(&response, "the identity-binding token request")?;
    let field = "auth.workloadIdentity.serviceAccountRef";
    match annotated_account(account, field)? {
        // Without the annotation the federated token is used as is: Secret Manager grants
        // then name `serviceAccount:<pool>[<namespace>/<name>]`.
        None => Ok(federated),
        Some(email) => impersonate(&federated.token, &email, None),
    }
}

/// A new access token by Workload Identity Federation: the ServiceAccount's token (for the
/// audiences its selector names, else the API server's) exchanged at STS for `audience`,
/// then, with `gcpServiceAccountEmail` or the ServiceAccount's `iam.gke.io/gcp-service-account`
/// annotation, that account's token.
pub fn federated_grant(federation: &Federation) -> Result<Grant, Error> {
    let field = "auth.workloadIdentityFederation.serviceAccountRef";
    let (Some(account), Some(audience)) = (&federation.service_account_ref, &federation.audience)
    else {
        return Err(Error::invalid_config(
            "spec.provider.gcpsm.auth.workloadIdentityFederation needs serviceAccountRef and audience",
        ));
    };
    let subject = credentials::service_account_token(&ServiceAccountSelector {
        name: account.name.clone(),
        namespace: account.namespace.clone(),
        audiences: account.audiences.clone(),
    })
    .map_err(|e| credential_error(field, e))?;
    let body = http::form(&[
        ("grant_type", TOKEN_EXCHANGE),
        ("audience", audience),
        ("scope", CLOUD_PLATFORM),
        ("requested_token_type", ACCESS_TOKEN_TYPE),
        ("subject_token", &subject.token),
        ("subject_token_type", JWT_TOKEN_TYPE),
    ]);
    let request = Request::new("POST", STS_URL)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Accept", "application/json")
        .body(body);
    let what = "the STS token exchange";
    let response = send(&request, what)?;
    let federated = crate::token::oauth_answer(&response, what)?;
    let email = match &federation.gcp_service_account_email {
        Some(email) => Some(email.clone()),
        None => annotated_account(account, field)?,
    };
    match email {
        None => Ok(federated),
        Some(email) => impersonate(&federated.token, &email, Some("3600s")),
    }
}

/// The ServiceAccount's `iam.gke.io/gcp-service-account` annotation, checked.
fn annotated_account(account: &AccountSelector, field: &str) -> Result<Option<String>, Error> {
    let selector = ServiceAccountSelector {
        name: account.name.clone(),
        namespace: account.namespace.clone(),
        audiences: Vec::new(),
    };
    let email = credentials::service_account_annotation(&selector, GCP_SA_ANNOTATION)
        .map_err(|e| credential_error(field, e))?
        .map(|e| e.trim().to_string())
        .filter(|e| !e.is_empty());
    if let Some(email) = &email
        && (!email.contains('@') || email.contains('/') || email.contains(char::is_whitespace))
    {
        return Err(Error::invalid_config(format!(
            "the ServiceAccount's annotation {GCP_SA_ANNOTATION} {email:?} is not a service-account email"
        )));
    }
    Ok(email)
}

/// The token of Google service account `email`, bought with `federated` from IAM
/// Credentials `generateAccessToken`.
fn impersonate(federated: &str, email: &str, lifetime: Option<&str>) -> Result<Grant, Error> {
    let url = format!(
        "{IAM_CREDENTIALS_URL}/projects/-/serviceAccounts/{}:generateAccessToken",
        http::encode(email)
    );
    let mut body = json!({"scope": [CLOUD_PLATFORM]});
    if let Some(lifetime) = lifetime {
        body["lifetime"] = json!(lifetime);
    }
    let request = Request::new("POST", &url)
        .header("Content-Type", "application/json")
        .header("Accept", "application/json")
        .header("Authorization", format!("Bearer {federated}"))
        .body(body.to_string());
    let what = format!("generateAccessToken for {email}");
    let response = send(&request, &what)?;
    if !response.is_success() {
        let text = response.describe("gcpsm", &what, &crate::message(&response));
        return Err(match response.status {
            401 | 403 | 404 => Error::access_denied(text),
            _ => response.status_error(text),
        });
    }
    let answer = crate::parse(&response, &what)?;
    let token = answer["accessToken"]
        .as_str()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Error::other("gcpsm: generateAccessToken answered no accessToken"))?;
    let life_ms = answer["expireTime"]
        .as_str()
        .and_then(airlock_provider_sdk::time::parse_rfc3339)
        .map(|expires| expires.saturating_sub(crate::token::now_secs()) * 1000)
        .unwrap_or(300_000);
    Ok(Grant {
        token: token.to_string(),
        life_ms,
    })
}

/// One value from the GKE metadata server, for the store field that would have named it.
fn metadata(path: &str, field: &str) -> Result<String, Error> {
    let request =
        Request::new("GET", format!("{METADATA_URL}/{path}")).header("Metadata-Flavor", "Google");
    let what = format!("the metadata server's {path} (auth.workloadIdentity.{field} is not set)");
    let response = send(&request, &what)?;
    if !response.is_success() {
        return Err(response.status_error(response.describe(
            "the GKE metadata server",
            &what,
            &crate::message(&response),
        )));
    }
    let value = String::from_utf8_lossy(&response.body).trim().to_string();
    if value.is_empty() || !value.chars().all(|c| c.is_ascii_graphic()) {
        return Err(Error::other(format!("{what}: the answer is not a name")));
    }
    Ok(value)
}

fn send(request: &Request, what: &str) -> Result<Response, Error> {
    http::send(request).map_err(|e| crate::explain_refusal(&request.url, e, what))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_cluster_facts_build_the_pool_and_provider_without_the_metadata_server() {
        let wi: WorkloadIdentity = serde_json::from_value(json!({
            "clusterLocation": "us-central1", "clusterName": "my-cluster",
            "clusterProjectID": "cluster-project",
            "serviceAccountRef": {"name": "sa"}}))
        .unwrap();
        let (pool, provider) = pool_and_provider(&wi).unwrap();
        assert_eq!(pool, "cluster-project.svc.id.goog");
        assert_eq!(
            provider,
            "https://container.googleapis.com/v1/projects/cluster-project/locations/us-central1/clusters/my-cluster"
        );
    }
}
