//! Signed calls to AWS: the JSON 1.1 protocol (Secrets Manager, SSM) and the Query
//! protocol (STS), and AWS errors as the contract's errors.

use airlock_provider_sdk::Error;
use airlock_provider_sdk::http::{self, Request};
use serde_json::Value as Json;

use crate::sigv4::{self, Credentials, Scope, Unsigned};

/// An error answer from AWS, or a failure to reach it.
#[derive(Debug)]
pub struct AwsError {
    /// The operation (`GetSecretValue`).
    pub operation: String,
    /// AWS's error code (`ResourceNotFoundException`); empty when AWS was not reached.
    pub code: String,
    /// AWS's message.
    pub message: String,
    /// The HTTP status; 0 when AWS was not reached.
    pub status: u16,
    /// A `Retry-After` the server sent, in milliseconds.
    pub retry_after_ms: Option<u64>,
    /// The transport error when AWS was not reached.
    pub transport: Option<Box<Error>>,
}

/// Codes that mean "slow down".
const THROTTLING: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "RequestThrottledException",
    "ProvisionedThroughputExceededException",
];

/// Codes that mean the credentials or the policy refused the call.
const DENIED: &[&str] = &[
    "AccessDeniedException",
    "AccessDenied",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "ExpiredTokenException",
    "ExpiredToken",
    "InvalidSignatureException",
    "MissingAuthenticationToken",
    "AuthFailure",
];

impl AwsError {
    /// Whether AWS answered with `code`.
    pub fn is(&self, code: &str) -> bool {
        self.code == code
    }

    /// Whether the credentials were refused (not a missing permission).
    pub fn is_bad_credentials(&self) -> bool {
        DENIED.contains(&self.code.as_str())
            && !matches!(self.code.as_str(), "AccessDeniedException" | "AccessDenied")
    }

    /// The contract's error, keeping AWS's code and message.
    pub fn into_error(self) -> Error {
        if let Some(transport) = self.transport {
            return *transport;
        }
        let text = format!("aws {}: {}: {}", self.operation, self.code, self.message);
        let code = self.code.as_str();
        if THROTTLING.contains(&code) || self.status == 429 {
            Error::rate_limited(text, self.retry_after_ms)
        } else if DENIED.contains(&code) || self.status == 401 || self.status == 403 {
            Error::access_denied(text)
        } else if matches!(
            code,
            "ValidationException" | "InvalidParameterException" | "InvalidRequestException"
        ) || code.starts_with("ParameterPattern")
        {
            Error::invalid_request(text)
        } else if self.status >= 500 {
            Error::unavailable(text)
        } else {
            Error::other(text)
        }
    }
}

/// Where and as what a request is signed.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The endpoint URL (`https://ssm.eu-west-1.amazonaws.com`).
    pub endpoint: &'a str,
    /// The signing region.
    pub region: &'a str,
    /// The signing name.
    pub service: &'a str,
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The current Unix time in seconds.
pub fn now() -> u64 {
    now_unix()
}

/// Builds the signed HTTP request.
pub fn signed(
    target: Target<'_>,
    content_type: &str,
    extra: &[(&str, &str)],
    body: Vec<u8>,
    credentials: &Credentials,
    unix_seconds: u64,
) -> Result<Request, Error> {
    let host = authority(target.endpoint)?;
    let path = path_of(target.endpoint);
    let stamp = sigv4::timestamp(unix_seconds);
    let mut headers = vec![
        ("host".to_string(), host),
        ("x-amz-date".to_string(), stamp.clone()),
        ("content-type".to_string(), content_type.to_string()),
    ];
    if let Some(token) = &credentials.session_token {
        headers.push(("x-amz-security-token".to_string(), token.clone()));
    }
    headers.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let authz = sigv4::authorization(
        &Unsigned {
            method: "POST",
            path: &path,
            query: "",
            headers: &headers,
            body: &body,
        },
        Scope {
            region: target.region,
            service: target.service,
            timestamp: &stamp,
        },
        credentials,
    );
    let mut request = Request::new(
        "POST",
        target.endpoint.trim_end_matches('/').to_string() + &path_suffix(&path),
    );
    // The host header comes from the URL; every other signed header is sent as signed.
    for (k, v) in headers.into_iter().filter(|(k, _)| k != "host") {
        request = request.header(&k, v);
    }
    Ok(request.header("authorization", authz).body(body))
}

fn path_suffix(path: &str) -> String {
    if path == "/" {
        "/".into()
    } else {
        String::new()
    }
}

fn authority(endpoint: &str) -> Result<String, Error> {
    let rest = endpoint
        .split_once("://")
        .map(|(_, r)| r)
        .ok_or_else(|| Error::invalid_config(format!("endpoint {endpoint:?} is not a URL")))?;
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    // Default ports are not part of the Host header the server sees.
    let authority = authority
        .strip_suffix(":443")
        .filter(|_| endpoint.starts_with("https://"))
        .or_else(|| {
            authority
                .strip_suffix(":80")
                .filter(|_| endpoint.starts_with("http://"))
        })
        .unwrap_or(authority);
    Ok(authority.to_string())
}

fn path_of(endpoint: &str) -> String {
    let rest = endpoint
        .split_once("://")
        .map(|(_, r)| r)
        .unwrap_or(endpoint);
    match rest.find('/') {
        Some(i) if rest[i..].len() > 1 => rest[i..].to_string(),
        _ => "/".to_string(),
    }
}

fn retry_after(response: &http::Response) -> Option<u64> {
    response
        .header("retry-after")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| s * 1000)
}

/// A failure before or instead of an AWS answer.
pub fn transport(operation: &str, e: Error) -> AwsError {
    AwsError {
        operation: operation.to_string(),
        code: String::new(),
        message: String::new(),
        status: 0,
        retry_after_ms: None,
        transport: Some(Box::new(e)),
    }
}

/// Calls a JSON 1.1 operation (`secretsmanager.GetSecretValue`).
pub fn call_json(
    target: Target<'_>,
    prefix: &str,
    operation: &str,
    body: &Json,
    credentials: &Credentials,
) -> Result<Json, AwsError> {
    let amz_target = format!("{prefix}.{operation}");
    let request = signed(
        target,
        "application/x-amz-json-1.1",
        &[("x-amz-target", &amz_target)],
        body.to_string().into_bytes(),
        credentials,
        now_unix(),
    )
    .map_err(|e| transport(operation, e))?;
    let response = http::send(&request).map_err(|e| transport(operation, e))?;
    if response.is_success() {
        if response.body.is_empty() {
            return Ok(Json::Object(Default::default()));
        }
        return serde_json::from_slice(&response.body).map_err(|e| AwsError {
            operation: operation.to_string(),
            code: "InvalidResponse".into(),
            message: format!("the answer is not JSON: {e}"),
            status: response.status,
            retry_after_ms: None,
            transport: None,
        });
    }
    let parsed: Json = serde_json::from_slice(&response.body).unwrap_or(Json::Null);
    // Signature failures can come back as a Query-style XML error even on JSON services.
    let xml = String::from_utf8_lossy(&response.body);
    let code = parsed
        .get("__type")
        .and_then(Json::as_str)
        .or_else(|| response.header("x-amzn-errortype"))
        .map(short_code)
        .or_else(|| xml_text(&xml, "Code"))
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| format!("HTTP{}", response.status));
    let message = parsed
        .get("message")
        .or_else(|| parsed.get("Message"))
        .and_then(Json::as_str)
        .map(str::to_string)
        .or_else(|| xml_text(&xml, "Message"))
        .unwrap_or_else(|| snippet(&response.body));
    Err(AwsError {
        operation: operation.to_string(),
        code,
        message,
        status: response.status,
        retry_after_ms: retry_after(&response),
        transport: None,
    })
}

/// Calls a Query-protocol operation (STS) and returns the XML text of the answer.
pub fn call_query(
    target: Target<'_>,
    operation: &str,
    params: &[(String, String)],
    credentials: Option<&Credentials>,
) -> Result<String, AwsError> {
    let mut form = format!("Action={operation}&Version=2011-06-15");
    for (k, v) in params {
        form.push_str(&format!("&{}={}", http::encode(k), http::encode(v)));
    }
    let content_type = "application/x-www-form-urlencoded; charset=utf-8";
    let request = match credentials {
        Some(c) => signed(target, content_type, &[], form.into_bytes(), c, now_unix())
            .map_err(|e| transport(operation, e))?,
        None => Request::new("POST", target.endpoint.to_string())
            .header("content-type", content_type)
            .body(form.into_bytes()),
    };
    let response = http::send(&request).map_err(|e| transport(operation, e))?;
    let text = String::from_utf8_lossy(&response.body).into_owned();
    if response.is_success() {
        return Ok(text);
    }
    Err(AwsError {
        operation: operation.to_string(),
        code: xml_text(&text, "Code").unwrap_or_else(|| format!("HTTP{}", response.status)),
        message: xml_text(&text, "Message").unwrap_or_else(|| snippet(&response.body)),
        status: response.status,
        retry_after_ms: retry_after(&response),
        transport: None,
    })
}

fn short_code(raw: &str) -> String {
    let after_hash = raw.rsplit('#').next().unwrap_or(raw);
    after_hash
        .split(':')
        .next()
        .unwrap_or(after_hash)
        .to_string()
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    text.chars().take(200).collect()
}

/// The unescaped text of the first `<tag>…</tag>` in `xml`.
pub fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&close)?;
    Some(
        xml[start..end]
            .trim()
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(code: &str, status: u16) -> Error {
        AwsError {
            operation: "GetSecretValue".into(),
            code: code.into(),
            message: "details".into(),
            status,
            retry_after_ms: Some(2000),
            transport: None,
        }
        .into_error()
    }

    #[test]
    fn aws_errors_keep_code_and_message_and_pick_the_contract_case() {
        match err("ThrottlingException", 400) {
            Error::RateLimited(r) => {
                assert_eq!(r.retry_after_ms, Some(2000));
                assert!(r.message.contains("ThrottlingException: details"));
            }
            other => panic!("{other:?}"),
        }
        match err("SignatureDoesNotMatch", 403) {
            Error::AccessDenied(m) => {
                assert_eq!(m, "aws GetSecretValue: SignatureDoesNotMatch: details")
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            err("InternalServiceError", 500),
            Error::Unavailable(_)
        ));
        assert!(matches!(
            err("ValidationException", 400),
            Error::InvalidRequest(_)
        ));
        assert!(matches!(err("Weird", 400), Error::Other(_)));
    }

    #[test]
    fn error_types_lose_their_namespace() {
        assert_eq!(
            short_code("com.amazonaws.secretsmanager#ResourceNotFoundException"),
            "ResourceNotFoundException"
        );
        assert_eq!(
            short_code("ParameterNotFound:http://x"),
            "ParameterNotFound"
        );
    }

    #[test]
    fn signed_requests_carry_the_target_date_token_and_authorization() {
        let creds = Credentials {
            access_key_id: "AKID".into(),
            secret_access_key: "secret".into(),
            session_token: Some("tok".into()),
        };
        let target = Target {
            endpoint: "http://127.0.0.1:5000",
            region: "us-east-1",
            service: "secretsmanager",
        };
        let r = signed(
            target,
            "application/x-amz-json-1.1",
            &[("x-amz-target", "secretsmanager.GetSecretValue")],
            b"{}".to_vec(),
            &creds,
            1_440_938_160,
        )
        .unwrap();
        assert_eq!(r.url, "http://127.0.0.1:5000/");
        let h = |n: &str| {
            r.headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        assert_eq!(h("x-amz-date"), "20150830T123600Z");
        assert_eq!(h("x-amz-security-token"), "tok");
        assert!(h("authorization").contains(
            "Credential=AKID/20150830/us-east-1/secretsmanager/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target"
        ));
        assert_eq!(
            authority("https://sm.x.amazonaws.com:443").unwrap(),
            "sm.x.amazonaws.com"
        );
        assert_eq!(
            authority("http://127.0.0.1:5000/").unwrap(),
            "127.0.0.1:5000"
        );
    }

    #[test]
    fn xml_text_finds_and_unescapes_elements() {
        let xml = "<ErrorResponse><Error><Code>InvalidClientTokenId</Code>\
                   <Message>a &amp; b</Message></Error></ErrorResponse>";
        assert_eq!(
            xml_text(xml, "Code").as_deref(),
            Some("InvalidClientTokenId")
        );
        assert_eq!(xml_text(xml, "Message").as_deref(), Some("a & b"));
        assert_eq!(xml_text(xml, "Nope"), None);
    }
}
