//! moto (a real implementation of the AWS wire protocols) started on 127.0.0.1 for one
//! test, seeded with plain JSON calls, and its request recorder for counting calls.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use airlock_testenv::process::{DeathSignal, spawn_supervised};
use serde_json::{Value, json};

/// A running moto server.
pub struct Moto {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The region seeding calls are signed for (moto keeps data per region).
    pub region: String,
    child: Child,
    // moto's recorder writes to a file: one directory per server keeps logs apart.
    _dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Moto {
    /// moto accepting any credentials, with its request recorder on.
    pub async fn start() -> Moto {
        Moto::spawn(&[("MOTO_ENABLE_RECORDING", "True")]).await
    }

    /// moto that verifies SigV4 signatures after `unauthenticated` requests.
    pub async fn start_verifying(unauthenticated: u32) -> Moto {
        Moto::spawn(&[("INITIAL_NO_AUTH_ACTION_COUNT", &unauthenticated.to_string())]).await
    }

    async fn spawn(env: &[(&str, &str)]) -> Moto {
        let port = free_port();
        let dir = tempfile::tempdir().expect("temp dir");
        let mut command = Command::new(airlock_testenv::tools::python_tool("moto_server"));
        command
            .current_dir(dir.path())
            .env("MOTO_RECORDER_FILEPATH", dir.path().join("recording.jsonl"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in env {
            command.env(k, v);
        }
        let child = spawn_supervised(command, DeathSignal::Kill).expect("moto_server starts");
        // reqwest is built without a default TLS crypto provider (oci-client asks for
        // `rustls-no-provider`): the process-wide one is ring, as in the operator.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let moto = Moto {
            port,
            region: "us-east-1".into(),
            child,
            _dir: dir,
            http: reqwest::Client::new(),
        };
        let started = Instant::now();
        loop {
            let up = moto
                .http
                .get(moto.url("/moto-api/data.json"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if up {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "moto_server did not answer on port {port}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if env.iter().any(|(k, _)| *k == "MOTO_ENABLE_RECORDING") {
            moto.http
                .post(moto.url("/moto-api/recorder/start-recording"))
                .send()
                .await
                .expect("recording starts");
        }
        moto
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The grant pattern for this server.
    pub fn grant(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn authorization(&self, service: &str) -> String {
        format!(
            "AWS4-HMAC-SHA256 Credential=AKIDSEED/20260101/{}/{service}/aws4_request, \
             SignedHeaders=host, Signature=0",
            self.region
        )
    }

    /// An unsigned JSON 1.1 call (moto accepts it outside verification mode).
    pub async fn json(&self, service: &str, target: &str, body: Value) -> Value {
        let response = self
            .http
            .post(self.url("/"))
            .header("x-amz-target", target)
            .header("content-type", "application/x-amz-json-1.1")
            .header("authorization", self.authorization(service))
            .body(body.to_string())
            .send()
            .await
            .expect("moto answers");
        let status = response.status();
        let text = response.text().await.expect("body");
        assert!(status.is_success(), "{target}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// A Secrets Manager call.
    pub async fn sm(&self, operation: &str, body: Value) -> Value {
        self.json(
            "secretsmanager",
            &format!("secretsmanager.{operation}"),
            body,
        )
        .await
    }

    /// An SSM call.
    pub async fn ssm(&self, operation: &str, body: Value) -> Value {
        self.json("ssm", &format!("AmazonSSM.{operation}"), body)
            .await
    }

    /// Creates a secret, optionally with tags.
    pub async fn create_secret(&self, name: &str, value: &str, tags: &[(&str, &str)]) -> Value {
        let tags: Vec<Value> = tags
            .iter()
            .map(|(k, v)| json!({"Key": k, "Value": v}))
            .collect();
        self.sm(
            "CreateSecret",
            json!({"Name": name, "SecretString": value, "Tags": tags}),
        )
        .await
    }

    /// Creates a parameter.
    pub async fn put_parameter(&self, name: &str, value: &str, kind: &str, tags: &[(&str, &str)]) {
        let mut body = json!({"Name": name, "Value": value, "Type": kind});
        if !tags.is_empty() {
            body["Tags"] = tags
                .iter()
                .map(|(k, v)| json!({"Key": k, "Value": v}))
                .collect();
        }
        self.ssm("PutParameter", body).await;
    }

    /// An unsigned Query-protocol call (IAM, STS) returning the XML text.
    pub async fn query(&self, service: &str, form: &[(&str, &str)]) -> String {
        let body: String = form
            .iter()
            .map(|(k, v)| format!("{k}={}", urlencode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let response = self
            .http
            .post(self.url("/"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("authorization", self.authorization(service))
            .body(body)
            .send()
            .await
            .expect("moto answers");
        let status = response.status();
        let text = response.text().await.expect("body");
        assert!(status.is_success(), "{form:?}: {status} {text}");
        text
    }

    /// Creates an IAM user allowed everything and returns its access key id and secret.
    pub async fn iam_user(&self) -> (String, String) {
        let v = "2010-05-08";
        self.query(
            "iam",
            &[
                ("Action", "CreateUser"),
                ("Version", v),
                ("UserName", "airlock"),
            ],
        )
        .await;
        let xml = self
            .query(
                "iam",
                &[
                    ("Action", "CreateAccessKey"),
                    ("Version", v),
                    ("UserName", "airlock"),
                ],
            )
            .await;
        let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
        self.query(
            "iam",
            &[
                ("Action", "PutUserPolicy"),
                ("Version", v),
                ("UserName", "airlock"),
                ("PolicyName", "all"),
                ("PolicyDocument", policy),
            ],
        )
        .await;
        (
            xml_text(&xml, "AccessKeyId"),
            xml_text(&xml, "SecretAccessKey"),
        )
    }

    /// How many recorded requests carried `X-Amz-Target: target` (or, for Query calls,
    /// `Action=target` in the body) since the server started.
    pub async fn count(&self, target: &str) -> usize {
        self.count_for(target, "").await
    }

    /// Like [`Moto::count`], only requests whose body contains `needle`.
    pub async fn count_for(&self, target: &str, needle: &str) -> usize {
        let text = self
            .http
            .get(self.url("/moto-api/recorder/download-recording"))
            .send()
            .await
            .expect("recording")
            .text()
            .await
            .expect("recording body");
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|r| {
                let header = r["headers"]
                    .as_object()
                    .and_then(|h| {
                        h.iter()
                            .find(|(k, _)| k.eq_ignore_ascii_case("x-amz-target"))
                            .and_then(|(_, v)| v.as_str().map(str::to_string))
                    })
                    .unwrap_or_default();
                let body = body_text(r);
                (header == target || body.contains(&format!("Action={target}&")))
                    && body.contains(needle)
            })
            .count()
    }
}

fn body_text(record: &Value) -> String {
    let body = record["body"].as_str().unwrap_or("");
    if record["body_encoded"].as_bool() == Some(true) {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    } else {
        body.to_string()
    }
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn xml_text(xml: &str, tag: &str) -> String {
    let open = format!("<{tag}>");
    let start = xml.find(&open).expect(tag) + open.len();
    let end = start + xml[start..].find(&format!("</{tag}>")).expect(tag);
    xml[start..end].to_string()
}
