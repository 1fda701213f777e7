//! The real `fake.wasm` in the real runtime: every operation of the contract.

mod common;

use airlock::backend::{
    Backend, BackendError, Capabilities, FindCriteria, ProviderError, PushRef, PushRequest,
    RemoteRef, SecretValue, Validation,
};
use airlock::runtime::{Grants, RuntimeError};
use common::{get, install, runtime, store};
use serde_json::json;

fn config() -> serde_json::Value {
    json!({"data": [
        {"key": "production/database", "value": "{\"username\":\"admin\",\"password\":\"s3cr3t\",\"port\":5432}"},
        {"key": "production/database", "version": "v1", "value": "{\"username\":\"old\"}"},
        {"key": "production/api-keys", "value": "{\"api-key\":\"abc123\"}"},
        {"key": "staging/database", "value": "stage"}
    ]})
}

async fn fake() -> (airlock::runtime::Runtime, airlock::backend::StoreContext) {
    let rt = runtime();
    install(&rt, "fake", airlock_test_artifacts::FAKE, Grants::none()).await;
    (rt, store("fake", "fake-store", config()))
}

#[tokio::test]
async fn get_returns_the_value_a_property_and_a_version() {
    let (rt, s) = fake().await;
    let refs = [
        RemoteRef::key("production/database").property("username"),
        RemoteRef::key("production/database").property("port"),
        RemoteRef {
            version: Some("v1".into()),
            ..RemoteRef::key("production/database").property("username")
        },
        RemoteRef::key("staging/database"),
    ];
    let out: Vec<String> = rt
        .get_secrets(&s, &refs)
        .await
        .unwrap()
        .into_iter()
        .map(|r| String::from_utf8(r.unwrap().unwrap().expose().to_vec()).unwrap())
        .collect();
    assert_eq!(out, ["admin", "5432", "old", "stage"]);
}

#[tokio::test]
async fn a_missing_key_property_or_version_is_absent_not_an_error() {
    let (rt, s) = fake().await;
    let refs = [
        RemoteRef::key("nope"),
        RemoteRef::key("production/database").property("nope"),
        RemoteRef {
            version: Some("v9".into()),
            ..RemoteRef::key("production/database")
        },
    ];
    let out = rt.get_secrets(&s, &refs).await.unwrap();
    assert_eq!(out.len(), 3);
    assert!(out.iter().all(|r| matches!(r, Ok(None))), "{out:?}");
}

#[tokio::test]
async fn batched_get_answers_each_ref_in_order_and_a_bad_ref_fails_alone() {
    let (rt, s) = fake().await;
    let refs = [
        RemoteRef::key("staging/database").property("x"),
        RemoteRef::key("production/api-keys").property("api-key"),
    ];
    let out = rt.get_secrets(&s, &refs).await.unwrap();
    assert!(
        matches!(&out[0], Err(ProviderError::Other(m)) if m.contains("not JSON")),
        "{out:?}"
    );
    assert_eq!(
        out[1].as_ref().unwrap().as_ref().unwrap().expose(),
        b"abc123"
    );
}

#[tokio::test]
async fn get_secret_map_explodes_a_json_object() {
    let (rt, s) = fake().await;
    let map = rt
        .get_secret_map(&s, &RemoteRef::key("production/database"))
        .await
        .unwrap()
        .unwrap();
    // Document order (ESO's map has none; the Secret's data is sorted anyway).
    let keys: Vec<&str> = map.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["username", "password", "port"]);
    assert_eq!(map[1].1, SecretValue::new(b"s3cr3t".to_vec()));
    assert!(
        rt.get_secret_map(&s, &RemoteRef::key("nope"))
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn find_filters_by_name_regexp_and_path() {
    let (rt, s) = fake().await;
    let by_name = rt
        .get_all_secrets(
            &s,
            &FindCriteria {
                name_regexp: Some("database$".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let names: Vec<&str> = by_name.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["production/database", "staging/database"]);
    let by_path = rt
        .get_all_secrets(
            &s,
            &FindCriteria {
                path: Some("production/".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(by_path.len(), 2);
    let bad = rt
        .get_all_secrets(
            &s,
            &FindCriteria {
                name_regexp: Some("(".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(bad.reason(), "InvalidRequest", "{bad}");
}

#[tokio::test]
async fn push_then_read_then_delete_through_the_store_cache() {
    let (rt, s) = fake().await;
    let target = PushRef {
        remote_key: "pushed/token".into(),
        property: None,
    };
    assert!(!rt.secret_exists(&s, &target).await.unwrap());
    rt.push_secret(
        &s,
        &PushRequest {
            remote: target.clone(),
            value: SecretValue::new(b"t0ken".to_vec()),
            metadata: None,
        },
    )
    .await
    .unwrap();
    assert!(rt.secret_exists(&s, &target).await.unwrap());
    assert_eq!(
        get(&rt, &s, "pushed/token").await.unwrap().as_deref(),
        Some("t0ken")
    );
    let prop = PushRef {
        remote_key: "pushed/json".into(),
        property: Some("db.password".into()),
    };
    rt.push_secret(
        &s,
        &PushRequest {
            remote: prop.clone(),
            value: SecretValue::new(b"pw".to_vec()),
            metadata: None,
        },
    )
    .await
    .unwrap();
    assert!(rt.secret_exists(&s, &prop).await.unwrap());
    assert_eq!(
        get(&rt, &s, "pushed/json").await.unwrap().as_deref(),
        Some(r#"{"db":{"password":"pw"}}"#)
    );
    rt.delete_secret(&s, &target).await.unwrap();
    assert!(!rt.secret_exists(&s, &target).await.unwrap());
    assert_eq!(get(&rt, &s, "pushed/token").await.unwrap(), None);
}

#[tokio::test]
async fn validate_and_capabilities_follow_the_config() {
    let (rt, s) = fake().await;
    assert_eq!(rt.validate(&s).await.unwrap(), Validation::Ready);
    assert_eq!(rt.capabilities(&s).unwrap(), Capabilities::ReadWrite);
    let unknown = common::store("fake", "u", json!({"validationResult": 1}));
    assert_eq!(rt.validate(&unknown).await.unwrap(), Validation::Unknown);
    let failing = common::store("fake", "f", json!({"validationResult": 2}));
    assert!(rt.validate(&failing).await.is_err());
}

#[tokio::test]
async fn a_config_that_fails_the_provider_schema_names_the_field() {
    let (rt, _) = fake().await;
    let s = common::store(
        "fake",
        "bad",
        json!({"data": [{"value": "no key"}], "extra": true}),
    );
    let err = rt.validate(&s).await.unwrap_err();
    assert_eq!(err.reason(), "InvalidProviderConfig");
    let text = err.to_string();
    assert!(text.contains("spec.provider.fake"), "{text}");
    assert!(text.contains("key") && text.contains("extra"), "{text}");
}

#[tokio::test]
async fn a_store_naming_an_unknown_provider_is_a_clear_error() {
    let (rt, _) = fake().await;
    let s = common::store("vault", "v", json!({}));
    let err = rt.validate(&s).await.unwrap_err();
    assert!(matches!(
        err,
        BackendError::Runtime(RuntimeError::ProviderNotFound(_))
    ));
    assert_eq!(err.reason(), "ProviderNotFound");
    assert!(err.to_string().contains("\"vault\""), "{err}");
}

#[tokio::test]
async fn secret_values_never_show_in_debug_output() {
    let (rt, s) = fake().await;
    let out = rt
        .get_secrets(&s, &[RemoteRef::key("production/api-keys")])
        .await
        .unwrap();
    let text = format!("{out:?}");
    assert!(!text.contains("abc123"), "{text}");
    assert!(text.contains("redacted"), "{text}");
}

#[tokio::test]
async fn a_precompiled_component_is_loaded_from_the_disk_cache() {
    let dir = tempfile::tempdir().unwrap();
    let config = airlock::runtime::EngineConfig {
        cache_dir: Some(dir.path().into()),
        ..Default::default()
    };
    let wasm = airlock_test_artifacts::read(airlock_test_artifacts::FAKE);
    let creds: airlock::runtime::Credentials =
        std::sync::Arc::new(airlock::runtime::StaticCredentials::default());
    let first = airlock::runtime::Runtime::new(&config, creds.clone()).unwrap();
    let p = first.install("fake", &wasm, Grants::none()).await.unwrap();
    assert_eq!(p.origin, airlock::runtime::Origin::Compiled);
    let second = airlock::runtime::Runtime::new(&config, creds).unwrap();
    let p = second.install("fake", &wasm, Grants::none()).await.unwrap();
    assert_eq!(p.origin, airlock::runtime::Origin::Disk);
    assert_eq!(p.digest, airlock::runtime::digest(&wasm));
}

#[tokio::test]
async fn reinstalling_a_provider_swaps_the_component_for_new_calls() {
    let (rt, s) = fake().await;
    assert!(get(&rt, &s, "production/api-keys").await.is_ok());
    let hostile = rt
        .install(
            "fake",
            &airlock_test_artifacts::read(airlock_test_artifacts::HOSTILE),
            Grants::none(),
        )
        .await
        .unwrap();
    assert_eq!(hostile.info.name, "hostile");
    assert_eq!(get(&rt, &s, "counter").await.unwrap().as_deref(), Some("1"));
    let refused = rt
        .install(
            "fake",
            &airlock_test_artifacts::read(airlock_test_artifacts::HOSTILE_FS),
            Grants::none(),
        )
        .await;
    assert!(refused.is_err());
    assert_eq!(
        rt.provider("fake").unwrap().info.name,
        "hostile",
        "a failed install keeps the old one"
    );
}
