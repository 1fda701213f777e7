//! The data pipeline of one sync, as ESO runs it: key conversion, `rewrite[]`, key
//! validation, `decodingStrategy` and `nullBytePolicy`. Error messages name the entry, never
//! the value.

use base64::Engine as _;

use crate::backend::SecretValue;
use crate::controller::Error;
use crate::crd::external_secret::{
    ConversionStrategy, DecodingStrategy, ExternalSecretRewrite, NullBytePolicy,
};
use crate::template::Engine;
use crate::template::apply::transform_key;

/// ESO's key conversion for `dataFrom`: `Default` turns every character other than letters,
/// digits, `-`, `.` and `_` into `_`; `Unicode` into `_U<hex>_`.
pub fn convert_key(key: &str, strategy: ConversionStrategy) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_') {
                c.to_string()
            } else {
                match strategy {
                    ConversionStrategy::Default => "_".to_string(),
                    ConversionStrategy::Unicode => format!("_U{:04x}_", c as u32),
                }
            }
        })
        .collect()
}

/// Applies `rewrite[]` to a key, in order: `regexp` replaces matches, `transform` renders
/// a template with the key as `.value` (with the ExternalSecret's template `engine`).
pub fn rewrite_key(
    key: &str,
    rewrites: &[ExternalSecretRewrite],
    what: &str,
    engine: Engine,
) -> Result<String, Error> {
    let mut key = key.to_string();
    for (i, r) in rewrites.iter().enumerate() {
        if let Some(re) = &r.regexp {
            let compiled = regex::Regex::new(&re.source).map_err(|e| {
                Error::InvalidData(format!("{what}: rewrite regexp {:?}: {e}", re.source))
            })?;
            key = compiled.replace_all(&key, re.target.as_str()).into_owned();
        } else if let Some(t) = &r.transform {
            let name = format!("{what}.rewrite[{i}].transform");
            key = transform_key(engine, &name, &t.template, &key)?;
        } else {
            return Err(Error::Unsupported {
                reason: "RewriteNotSupportedYet",
                message: format!("{what}: rewrite.merge is not supported yet"),
            });
        }
    }
    Ok(key)
}

/// A generator's output under the keys `rewrite[]` gives them, each checked (ESO's order for
/// `dataFrom[].sourceRef.generatorRef`: generate, rewrite, validate keys).
pub fn generated_keys(
    generated: std::collections::BTreeMap<String, Vec<u8>>,
    rewrites: &[ExternalSecretRewrite],
    what: &str,
    engine: Engine,
) -> Result<Vec<(String, Vec<u8>)>, Error> {
    generated
        .into_iter()
        .map(|(key, value)| {
            let key = if rewrites.is_empty() {
                key
            } else {
                rewrite_key(&key, rewrites, what, engine)?
            };
            check_key(&key, what)?;
            Ok((key, value))
        })
        .collect()
}

/// Refuses keys a Secret cannot hold.
pub fn check_key(key: &str, what: &str) -> Result<(), Error> {
    let valid = key.len() <= 253
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    if valid {
        Ok(())
    } else {
        Err(Error::InvalidData(format!(
            "{what}: invalid secret key {key:?} (TIP: use rewrite or conversionStrategy to change keys)"
        )))
    }
}

/// Applies a `decodingStrategy`. `Auto` tries Base64, then Base64URL, else keeps the bytes.
pub fn decode(
    value: SecretValue,
    strategy: DecodingStrategy,
    what: &str,
) -> Result<SecretValue, Error> {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE};
    let bytes = value.expose();
    let decoded = match strategy {
        DecodingStrategy::None => return Ok(value),
        DecodingStrategy::Base64 => STANDARD.decode(bytes),
        DecodingStrategy::Base64Url => URL_SAFE.decode(bytes),
        DecodingStrategy::Auto => {
            match STANDARD.decode(bytes).or_else(|_| URL_SAFE.decode(bytes)) {
                Ok(v) => Ok(v),
                Err(_) => return Ok(value),
            }
        }
    };
    decoded.map(SecretValue::new).map_err(|_| {
        Error::InvalidData(format!(
            "{what}: the value is not valid {}",
            match strategy {
                DecodingStrategy::Base64Url => "base64url",
                _ => "base64",
            }
        ))
    })
}

/// Refuses NUL bytes when `nullBytePolicy` is `Fail`.
pub fn check_null_bytes(
    value: &SecretValue,
    policy: NullBytePolicy,
    what: &str,
) -> Result<(), Error> {
    if policy == NullBytePolicy::Fail && value.expose().contains(&0) {
        return Err(Error::InvalidData(format!(
            "{what}: the value contains a NUL byte (nullBytePolicy: Fail)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_convert_like_eso() {
        assert_eq!(
            convert_key("production/db key", ConversionStrategy::Default),
            "production_db_key"
        );
        assert_eq!(convert_key("a/b", ConversionStrategy::Unicode), "a_U002f_b");
    }

    #[test]
    fn decoding_strategies_decode_or_refuse_without_showing_the_value() {
        let v = |s: &str| SecretValue::new(s.as_bytes().to_vec());
        let text = |r: Result<SecretValue, Error>| {
            String::from_utf8(r.unwrap().expose().to_vec()).unwrap()
        };
        assert_eq!(
            text(decode(v("aGVsbG8="), DecodingStrategy::Base64, "x")),
            "hello"
        );
        assert_eq!(
            text(decode(v("aGk_"), DecodingStrategy::Base64Url, "x")),
            "hi?"
        );
        assert_eq!(
            text(decode(v("not base64!"), DecodingStrategy::Auto, "x")),
            "not base64!"
        );
        assert_eq!(
            text(decode(v("aGVsbG8="), DecodingStrategy::None, "x")),
            "aGVsbG8="
        );
        let err = decode(v("s3cr3t!!"), DecodingStrategy::Base64, "spec.data[0]").unwrap_err();
        assert!(!err.to_string().contains("s3cr3t"), "{err}");
    }

    #[test]
    fn rewrites_apply_in_order() {
        use crate::crd::external_secret::RewriteRegexp;
        let rw = |s: &str, t: &str| ExternalSecretRewrite {
            regexp: Some(RewriteRegexp {
                source: s.into(),
                target: t.into(),
            }),
            transform: None,
            merge: None,
        };
        let out = rewrite_key(
            "production/api-keys",
            &[rw("^production/", ""), rw("-", "_")],
            "x",
            Engine::Go,
        )
        .unwrap();
        assert_eq!(out, "api_keys");
    }

    #[test]
    fn transform_rewrites_render_the_key_as_value() {
        use crate::crd::external_secret::RewriteTransform;
        let tf = |t: &str| ExternalSecretRewrite {
            regexp: None,
            transform: Some(RewriteTransform { template: t.into() }),
            merge: None,
        };
        let out = rewrite_key(
            "db/password",
            &[tf(r#"{{ .value | replace "/" "_" | upper }}"#)],
            "spec.dataFrom[0]",
            Engine::Go,
        )
        .unwrap();
        assert_eq!(out, "DB_PASSWORD");
        let err =
            rewrite_key("k", &[tf("{{ .nope }}")], "spec.dataFrom[0]", Engine::Go).unwrap_err();
        assert_eq!(err.reason(), "TemplateRenderError");
        assert!(
            err.to_string().starts_with(
                "template \"spec.dataFrom[0].rewrite[0].transform\": line 1, column 4"
            ),
            "{err}"
        );
    }
}
