//! AWS Signature Version 4 for the requests this provider sends (JSON 1.1 and Query
//! protocol POSTs), proven against AWS's published test-suite vectors.
//!
//! The `aws-sigv4` crate pulls the smithy runtime into the guest; the signing itself is a
//! canonical request, a string to sign and four HMACs, so it lives here.

use airlock_provider_sdk::time::{civil_from_days, days_from_civil};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The credentials a request is signed with.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The access key id (not secret).
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
    /// The session token of temporary credentials.
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("session_token", &self.session_token.is_some())
            .finish_non_exhaustive()
    }
}

/// What a signature is scoped to.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// The region (`us-east-1`).
    pub region: &'a str,
    /// The signing name of the service (`secretsmanager`, `ssm`, `sts`).
    pub service: &'a str,
    /// The time as `YYYYMMDDTHHMMSSZ`.
    pub timestamp: &'a str,
}

/// A request to sign: method, path, raw query (`a=b&c=d`, already percent-encoded),
/// headers and body.
#[derive(Debug)]
pub struct Unsigned<'a> {
    /// `GET`, `POST`.
    pub method: &'a str,
    /// The URL path, `/` at least.
    pub path: &'a str,
    /// The query string without `?`.
    pub query: &'a str,
    /// Headers to sign; must contain `host` and `x-amz-date`.
    pub headers: &'a [(String, String)],
    /// The body bytes.
    pub body: &'a [u8],
}

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// Hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The derived signing key for one day, region and service.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let k = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k = hmac(&k, region.as_bytes());
    let k = hmac(&k, service.as_bytes());
    hmac(&k, b"aws4_request")
}

fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(&str, &str)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// The canonical request and the signed-header list.
pub fn canonical_request(request: &Unsigned<'_>) -> (String, String) {
    let mut headers: Vec<(String, String)> = request
        .headers
        .iter()
        .map(|(k, v)| {
            let value = v.split_whitespace().collect::<Vec<_>>().join(" ");
            (k.to_ascii_lowercase(), value)
        })
        .collect();
    headers.sort_by(|a, b| a.0.cmp(&b.0));
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
    let signed = signed.join(";");
    let creq = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        request.method,
        request.path,
        canonical_query(request.query),
        canonical_headers,
        signed,
        sha256_hex(request.body)
    );
    (creq, signed)
}

/// The `Authorization` header value for `request`.
pub fn authorization(
    request: &Unsigned<'_>,
    scope: Scope<'_>,
    credentials: &Credentials,
) -> String {
    let (creq, signed) = canonical_request(request);
    let date = &scope.timestamp[..8];
    let credential_scope = format!("{date}/{}/{}/aws4_request", scope.region, scope.service);
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{}\n{credential_scope}\n{}",
        scope.timestamp,
        sha256_hex(creq.as_bytes())
    );
    let key = signing_key(
        &credentials.secret_access_key,
        date,
        scope.region,
        scope.service,
    );
    let signature = hex::encode(hmac(&key, to_sign.as_bytes()));
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{credential_scope}, SignedHeaders={signed}, Signature={signature}",
        credentials.access_key_id
    )
}

/// `YYYYMMDDTHHMMSSZ` for a Unix time in seconds.
pub fn timestamp(unix_seconds: u64) -> String {
    let (y, m, d) = civil_from_days((unix_seconds / 86_400) as i64);
    let s = unix_seconds % 86_400;
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        s / 3600,
        (s / 60) % 60,
        s % 60
    )
}

/// Parses an ISO 8601 UTC time (`2026-11-28T04:40:52Z`, fractions allowed) into Unix
/// seconds.
pub fn parse_iso8601(text: &str) -> Option<u64> {
    let text = text.trim();
    let num = |r: std::ops::Range<usize>| text.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let days = days_from_civil(y, mo, d);
    u64::try_from(days * 86_400 + h * 3600 + mi * 60 + s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAMP: &str = "20150830T123600Z";

    fn suite_credentials() -> Credentials {
        Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        }
    }

    fn sign_suite(method: &str, query: &str, extra: &[(&str, &str)], body: &[u8]) -> String {
        let mut headers = vec![
            ("Host".to_string(), "example.amazonaws.com".to_string()),
            ("X-Amz-Date".to_string(), STAMP.to_string()),
        ];
        headers.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let request = Unsigned {
            method,
            path: "/",
            query,
            headers: &headers,
            body,
        };
        let scope = Scope {
            region: "us-east-1",
            service: "service",
            timestamp: STAMP,
        };
        authorization(&request, scope, &suite_credentials())
    }

    fn suite_authz(signed: &str, signature: &str) -> String {
        format!(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders={signed}, Signature={signature}"
        )
    }

    #[test]
    fn the_get_vanilla_vector_signs_as_published() {
        assert_eq!(
            sign_suite("GET", "", &[], b""),
            suite_authz(
                "host;x-amz-date",
                "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
            )
        );
    }

    #[test]
    fn the_post_vanilla_query_vector_signs_as_published() {
        assert_eq!(
            sign_suite("POST", "Param1=value1", &[], b""),
            suite_authz(
                "host;x-amz-date",
                "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11"
            )
        );
    }

    #[test]
    fn the_post_x_www_form_urlencoded_vector_signs_as_published() {
        assert_eq!(
            sign_suite(
                "POST",
                "",
                &[("Content-Type", "application/x-www-form-urlencoded")],
                b"Param1=value1"
            ),
            suite_authz(
                "content-type;host;x-amz-date",
                "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"
            )
        );
    }

    #[test]
    fn the_documented_iam_list_users_example_reproduces_its_key_and_signature() {
        // The worked example of AWS's "Create a signed AWS API request" guide.
        let key = signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20150830",
            "us-east-1",
            "iam",
        );
        assert_eq!(
            hex::encode(&key),
            "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
        );
        let headers = vec![
            (
                "Content-Type".to_string(),
                "application/x-www-form-urlencoded; charset=utf-8".to_string(),
            ),
            ("Host".to_string(), "iam.amazonaws.com".to_string()),
            ("X-Amz-Date".to_string(), STAMP.to_string()),
        ];
        let request = Unsigned {
            method: "GET",
            path: "/",
            query: "Action=ListUsers&Version=2010-05-08",
            headers: &headers,
            body: b"",
        };
        let scope = Scope {
            region: "us-east-1",
            service: "iam",
            timestamp: STAMP,
        };
        let authz = authorization(&request, scope, &suite_credentials());
        assert!(
            authz.ends_with(
                "Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
            ),
            "{authz}"
        );
    }

    #[test]
    fn timestamps_round_trip_through_the_calendar() {
        assert_eq!(timestamp(1_440_938_160), STAMP);
        assert_eq!(parse_iso8601("2015-08-30T12:36:00Z"), Some(1_440_938_160));
        assert_eq!(
            parse_iso8601("2015-08-30T12:36:00.123Z"),
            Some(1_440_938_160)
        );
        assert_eq!(timestamp(951_782_400), "20000229T000000Z");
        assert_eq!(parse_iso8601("garbage"), None);
    }

    #[test]
    fn credentials_debug_hides_the_secret_key() {
        let shown = format!("{:?}", suite_credentials());
        assert!(!shown.contains("EXAMPLEKEY"), "{shown}");
    }
}
