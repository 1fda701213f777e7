//! Generators (`generators.external-secrets.io/v1alpha1`) as sources of values for
//! ExternalSecrets (`dataFrom[].sourceRef.generatorRef`) and PushSecrets
//! (`selector.generatorRef`): `Password`, `UUID`, `Fake` and a `ClusterGenerator` wrapping
//! one of them.
//!
//! These generators keep no state (ESO's return none either), so nothing is written to a
//! `GeneratorState`: a value stays what it is because the ExternalSecret is not refreshed
//! (its `refreshPolicy` and `refreshInterval` decide when it is generated again), exactly as
//! ESO behaves.

use std::collections::BTreeMap;

use kube::ResourceExt;
use kube::api::Api;

use super::{Context, Error};
use crate::crd::PushSecret;
use crate::crd::external_secret::{GeneratorKind, GeneratorRef};
use crate::crd::generator::{ClusterGenerator, Fake, FakeSpec, Password, PasswordSpec, UUID};

/// ESO's default symbol characters.
const DEFAULT_SYMBOLS: &str = "~!@#$%^&*()_+`-={}|[]\\:\"<>?,./";
const LOWER: &str = "abcdefghijklmnopqrstuvwxyz";
const UPPER: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const DIGITS: &str = "0123456789";

/// The values a PushSecret's `selector.generatorRef` generates.
pub async fn generate_for_push<B>(
    ctx: &Context<B>,
    ps: &PushSecret,
    generator: &GeneratorRef,
) -> Result<BTreeMap<String, Vec<u8>>, Error> {
    generate(ctx, &ps.namespace().unwrap_or_default(), generator).await
}

/// Reads the generator `generator` names (in `namespace`, or the ClusterGenerator) and runs
/// it once.
pub async fn generate<B>(
    ctx: &Context<B>,
    namespace: &str,
    generator: &GeneratorRef,
) -> Result<BTreeMap<String, Vec<u8>>, Error> {
    let name = &generator.name;
    let missing = |kind: &str| {
        Error::InvalidData(format!(
            "unable to resolve generator: {kind} {name:?} not found in namespace {namespace:?}"
        ))
    };
    match generator.kind {
        GeneratorKind::Password => {
            let api: Api<Password> = Api::namespaced(ctx.client.clone(), namespace);
            let g = api
                .get_opt(name)
                .await?
                .ok_or_else(|| missing("Password"))?;
            password(&g.spec)
        }
        GeneratorKind::UUID => {
            let api: Api<UUID> = Api::namespaced(ctx.client.clone(), namespace);
            api.get_opt(name).await?.ok_or_else(|| missing("UUID"))?;
            uuid()
        }
        GeneratorKind::Fake => {
            let api: Api<Fake> = Api::namespaced(ctx.client.clone(), namespace);
            let g = api.get_opt(name).await?.ok_or_else(|| missing("Fake"))?;
            Ok(fake(&g.spec))
        }
        GeneratorKind::ClusterGenerator => {
            let api: Api<ClusterGenerator> = Api::all(ctx.client.clone());
            let g = api.get_opt(name).await?.ok_or_else(|| {
                Error::InvalidData(format!(
                    "unable to resolve generator: ClusterGenerator {name:?} not found"
                ))
            })?;
            let specs = &g.spec.generator;
            let absent = || {
                Error::InvalidData(format!(
                    "ClusterGenerator {name:?}: kind {} has no matching generator.*Spec",
                    g.spec.kind
                ))
            };
            match g.spec.kind.as_str() {
                "Password" => password(specs.password_spec.as_ref().ok_or_else(absent)?),
                "UUID" => specs
                    .uuid_spec
                    .as_ref()
                    .ok_or_else(absent)
                    .and_then(|_| uuid()),
                "Fake" => Ok(fake(specs.fake_spec.as_ref().ok_or_else(absent)?)),
                other => Err(unsupported(other)),
            }
        }
        other => Err(unsupported(&format!("{other:?}"))),
    }
}

fn unsupported(kind: &str) -> Error {
    Error::Unsupported {
        reason: "GeneratorNotSupportedYet",
        message: format!(
            "generator kind {kind} is not supported yet (supported: Password, UUID, Fake, ClusterGenerator of those)"
        ),
    }
}

fn fake(spec: &FakeSpec) -> BTreeMap<String, Vec<u8>> {
    spec.data
        .iter()
        .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
        .collect()
}

/// Fills `buf` from the operating system's secure random source (through rustls' ring).
fn random_bytes(buf: &mut [u8]) -> Result<(), Error> {
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(buf)
        .map_err(|_| Error::InvalidData("the system random source failed".into()))
}

/// A uniform random number below `n` (rejection sampling, no modulo bias).
fn below(n: usize) -> Result<usize, Error> {
    let n = n as u64;
    let zone = u64::MAX - (u64::MAX % n);
    loop {
        let mut b = [0u8; 8];
        random_bytes(&mut b)?;
        let v = u64::from_le_bytes(b);
        if v < zone {
            return Ok((v % n) as usize);
        }
    }
}

fn uuid() -> Result<BTreeMap<String, Vec<u8>>, Error> {
    let mut b = [0u8; 16];
    random_bytes(&mut b)?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    let text = format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    );
    Ok(BTreeMap::from([("uuid".to_string(), text.into_bytes())]))
}

/// ESO's Password generator: each key of `secretKeys` (default `password`) gets its own
/// password.
pub fn password(spec: &PasswordSpec) -> Result<BTreeMap<String, Vec<u8>>, Error> {
    let keys = match &spec.secret_keys {
        Some(keys) if keys.is_empty() || keys.iter().any(String::is_empty) => {
            return Err(Error::InvalidData(
                "secretKeys must be non-empty and unique".into(),
            ));
        }
        Some(keys) => keys.clone(),
        None => vec!["password".to_string()],
    };
    let mut out = BTreeMap::new();
    for key in keys {
        if out.contains_key(&key) {
            return Err(Error::InvalidData(
                "secretKeys must be non-empty and unique".into(),
            ));
        }
        out.insert(key, generate_password(spec)?.into_bytes());
    }
    Ok(out)
}

/// sethvargo/go-password's `Generate`: `length - digits - symbols` letters, then the digits,
/// then the symbols, each inserted at a random position; without `allowRepeat` no character
/// appears twice.
pub fn generate_password(spec: &PasswordSpec) -> Result<String, Error> {
    // The CRD bounds these to 0..=4096; a negative value from an older object reads as 0.
    let count = |n: i32| usize::try_from(n).unwrap_or(0);
    let length = count(spec.length);
    let quarter = length / 4;
    let digits = spec.digits.map_or(quarter, count);
    let symbols = spec.symbols.map_or(quarter, count);
    let symbol_set: Vec<char> = spec
        .symbol_characters
        .as_deref()
        .unwrap_or(DEFAULT_SYMBOLS)
        .chars()
        .collect();
    let mut letters: Vec<char> = LOWER.chars().collect();
    if !spec.no_upper {
        letters.extend(UPPER.chars());
    }
    let digit_set: Vec<char> = DIGITS.chars().collect();
    let chars = length.checked_sub(digits + symbols).ok_or_else(|| {
        Error::InvalidData("number of digits and symbols exceeds the password length".into())
    })?;
    if !spec.allow_repeat {
        for (want, pool, what) in [
            (chars, letters.len(), "letters"),
            (digits, digit_set.len(), "digits"),
            (symbols, symbol_set.len(), "symbols"),
        ] {
            if want > pool {
                return Err(Error::InvalidData(format!(
                    "number of {what} exceeds the available {what} and repeats are not allowed"
                )));
            }
        }
    }
    if symbols > 0 && symbol_set.is_empty() {
        return Err(Error::InvalidData("symbolCharacters is empty".into()));
    }
    let mut result: Vec<char> = Vec::with_capacity(length);
    for (count, pool) in [
        (chars, &letters),
        (digits, &digit_set),
        (symbols, &symbol_set),
    ] {
        let mut added = 0;
        while added < count {
            let c = pool[below(pool.len())?];
            if !spec.allow_repeat && result.contains(&c) {
                continue;
            }
            let at = below(result.len() + 1)?;
            result.insert(at, c);
            added += 1;
        }
    }
    Ok(result.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> PasswordSpec {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_default_password_has_eso_s_shape() {
        let p = generate_password(&spec(serde_json::json!({}))).unwrap();
        assert_eq!(p.chars().count(), 24);
        assert_eq!(p.chars().filter(char::is_ascii_digit).count(), 6);
        assert_eq!(
            p.chars().filter(|c| DEFAULT_SYMBOLS.contains(*c)).count(),
            6
        );
        let mut seen: Vec<char> = p.chars().collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 24, "no repeats by default: {}", p.len());
    }

    #[test]
    fn password_options_follow_eso() {
        let p = generate_password(&spec(serde_json::json!({
            "length": 40, "digits": 5, "symbols": 2, "symbolCharacters": "-_", "noUpper": true,
            "allowRepeat": true})))
        .unwrap();
        assert_eq!(p.chars().count(), 40);
        assert_eq!(p.chars().filter(char::is_ascii_digit).count(), 5);
        assert_eq!(p.chars().filter(|c| "-_".contains(*c)).count(), 2);
        assert!(!p.chars().any(|c| c.is_ascii_uppercase()));
        let e = generate_password(&spec(
            serde_json::json!({"length": 4, "digits": 3, "symbols": 3}),
        ))
        .unwrap_err();
        assert!(e.to_string().contains("exceeds the password length"), "{e}");
        let e = generate_password(&spec(
            serde_json::json!({"length": 60, "digits": 0, "symbols": 0}),
        ))
        .unwrap_err();
        assert!(e.to_string().contains("repeats are not allowed"), "{e}");
        let two = password(&spec(serde_json::json!({"secretKeys": ["a", "b"]}))).unwrap();
        assert_eq!(two.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_ne!(two["a"], two["b"]);
    }

    #[test]
    fn uuids_are_random_version_4() {
        let a = String::from_utf8(uuid().unwrap()["uuid"].clone()).unwrap();
        let b = String::from_utf8(uuid().unwrap()["uuid"].clone()).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!("89ab".contains(&a[19..20]), "{a}");
    }
}
