//! The operator's Kubernetes client, with ESO's client-side rate limit (`--client-qps`,
//! `--client-burst`): a token bucket in front of every request.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tower_layer::Layer;
use tower_service::Service;

/// A client from KUBECONFIG or the in-cluster configuration, limited to `qps` requests per
/// second with bursts of `burst` (no limit when `qps` is 0 or less).
pub async fn client(qps: f32, burst: u32) -> anyhow::Result<kube::Client> {
    let config = kube::Config::infer().await?;
    let builder = kube::client::ClientBuilder::try_from(config)?;
    Ok(builder.with_layer(&RateLimitLayer::new(qps, burst)).build())
}

/// Tokens refilled at `qps` per second up to `burst`.
#[derive(Debug)]
pub struct Bucket {
    tokens: f64,
    last: Instant,
    qps: f64,
    burst: f64,
}

impl Bucket {
    /// A full bucket.
    pub fn new(qps: f32, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Bucket {
            tokens: burst,
            last: Instant::now(),
            qps: f64::from(qps),
            burst,
        }
    }

    /// Takes a token at `now`, or says how long to wait for one.
    pub fn take(&mut self, now: Instant) -> Option<Duration> {
        if self.qps <= 0.0 {
            return None;
        }
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.qps).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            None
        } else {
            Some(Duration::from_secs_f64((1.0 - self.tokens) / self.qps))
        }
    }
}

/// Wraps a service in a [`RateLimit`] sharing one bucket.
#[derive(Debug, Clone)]
pub struct RateLimitLayer {
    bucket: Arc<Mutex<Bucket>>,
}

impl RateLimitLayer {
    /// `qps` requests per second, bursts of `burst`.
    pub fn new(qps: f32, burst: u32) -> Self {
        RateLimitLayer {
            bucket: Arc::new(Mutex::new(Bucket::new(qps, burst))),
        }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> RateLimit<S> {
        RateLimit {
            inner,
            bucket: self.bucket.clone(),
            sleep: None,
            reserved: false,
        }
    }
}

/// A service that waits for a token before each request.
pub struct RateLimit<S> {
    inner: S,
    bucket: Arc<Mutex<Bucket>>,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    reserved: bool,
}

impl<S> std::fmt::Debug for RateLimit<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimit")
            .field("reserved", &self.reserved)
            .finish_non_exhaustive()
    }
}

impl<S, R> Service<R> for RateLimit<S>
where
    S: Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        loop {
            if self.reserved {
                return self.inner.poll_ready(cx);
            }
            if let Some(sleep) = self.sleep.as_mut() {
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.sleep = None;
            }
            let wait = self
                .bucket
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take(Instant::now());
            match wait {
                None => self.reserved = true,
                Some(d) => self.sleep = Some(Box::pin(tokio::time::sleep(d))),
            }
        }
    }

    fn call(&mut self, request: R) -> S::Future {
        self.reserved = false;
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_allows_a_burst_then_paces_at_qps() {
        let start = Instant::now();
        let mut b = Bucket::new(10.0, 2);
        assert_eq!(b.take(start), None);
        assert_eq!(b.take(start), None);
        let wait = b.take(start).expect("empty after the burst");
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-6, "{wait:?}");
        assert_eq!(b.take(start + Duration::from_millis(100)), None);
        let mut unlimited = Bucket::new(0.0, 1);
        assert!((0..1000).all(|_| unlimited.take(start).is_none()));
    }

    #[tokio::test]
    async fn requests_wait_for_tokens() {
        struct Echo;
        impl Service<u32> for Echo {
            type Response = u32;
            type Error = std::convert::Infallible;
            type Future = std::future::Ready<Result<u32, Self::Error>>;
            fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
                Poll::Ready(Ok(()))
            }
            fn call(&mut self, r: u32) -> Self::Future {
                std::future::ready(Ok(r))
            }
        }
        let mut svc = RateLimitLayer::new(50.0, 1).layer(Echo);
        let start = Instant::now();
        for i in 0..6 {
            std::future::poll_fn(|cx| svc.poll_ready(cx)).await.unwrap();
            assert_eq!(svc.call(i).await.unwrap(), i);
        }
        // One from the burst, then five at 50/s.
        assert!(
            start.elapsed() >= Duration::from_millis(95),
            "{:?}",
            start.elapsed()
        );
    }
}
