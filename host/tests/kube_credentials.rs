//! The Kubernetes credential source against a real API server.

use airlock::kube_credentials::KubeCredentials;
use airlock::runtime::{CredentialError, CredentialSource};
use airlock_testenv::ControlPlane;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use kube::api::{Api, PostParams};
use secrecy::ExposeSecret;
use std::time::Duration;

#[tokio::test]
async fn secret_and_config_map_keys_and_service_account_tokens_come_from_the_api() {
    let cp = ControlPlane::shared();
    let client = cp.client();
    let ns = cp.new_namespace("creds").await.expect("namespace");
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "aws-credentials"},
        "stringData": {"access-key": "AKIA"}
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &secret)
        .await
        .expect("secret");
    let map: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "ca"}, "data": {"ca.crt": "PEM"}
    }))
    .unwrap();
    Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &map)
        .await
        .expect("configmap");
    let account: ServiceAccount =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "vault-auth"}})).unwrap();
    Api::<ServiceAccount>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &account)
        .await
        .expect("serviceaccount");

    let creds = KubeCredentials::new(client).with_operator_token_file("/nonexistent/token");
    let key = creds
        .secret_key(&ns, "aws-credentials", "access-key")
        .await
        .expect("secret key");
    assert_eq!(key.expose_secret(), b"AKIA");
    assert!(matches!(
        creds.secret_key(&ns, "aws-credentials", "nope").await,
        Err(CredentialError::NotFound(_))
    ));
    assert!(matches!(
        creds.secret_key(&ns, "missing", "access-key").await,
        Err(CredentialError::NotFound(_))
    ));
    assert_eq!(
        creds.config_map_key(&ns, "ca", "ca.crt").await.unwrap(),
        "PEM"
    );
    let token = creds
        .service_account_token(&ns, "vault-auth", &["vault".to_string()])
        .await
        .expect("token");
    assert_eq!(token.token.expose_secret().split('.').count(), 3);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(token.expires_at_ms > now_ms + Duration::from_secs(600).as_millis() as u64);
    assert!(matches!(
        creds.operator_token(&[]).await,
        Err(CredentialError::NotFound(_))
    ));
}
