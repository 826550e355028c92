//! Leader election with a coordination.k8s.io Lease, and the write fence that goes with it.
//!
//! Only the Lease holder runs the reconcilers. Being elected is not enough for safe writes: a
//! leader frozen (SIGSTOP, a long GC-like pause, a partition) does not know it lost the Lease,
//! and when it resumes its queued reconciles would write over the new leader's. So every write
//! the controller makes passes a [`Fence`], checked when the request is sent (each retry
//! included):
//!
//! - the leader renews every `retry` period; a renewal that succeeds moves the fence's deadline
//!   to *the instant the renewal was sent* plus `renew_deadline`;
//! - past that deadline the fence refuses every write (without sending it) and the controller
//!   exits: it never renews a Lease it may have lost, since the renewal carries the
//!   resourceVersion it read (a taken Lease answers 409);
//! - a follower takes the Lease only after seeing the same holder record unchanged for the full
//!   `lease` duration on its own monotonic clock (or the Lease released).
//!
//! The old leader's last write passes the fence before `sent + renew_deadline`; the follower
//! saw that renewal after `sent` and waits `lease` from then, so it starts at least
//! `lease - renew_deadline` after the old leader's fence closed. That margin must cover a write
//! already passed by the fence travelling to the apiserver: the fenced clients' connect and
//! write timeouts are each half of it. Clocks are never compared across processes (only
//! durations on each process's monotonic clock, which keeps counting while a process is
//! stopped).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, Patch, PatchParams, PostParams};
use tokio::time::Instant;

/// Timing of the election, validated from the flags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseTiming {
    /// How long a Lease lasts without renewal (what followers wait).
    pub lease: Duration,
    /// How long after a renewal was sent the leader may still write.
    pub renew_deadline: Duration,
    /// How often the leader renews and followers look.
    pub retry: Duration,
}

impl LeaseTiming {
    /// Validate `--leader-elect-lease-seconds` and `--leader-elect-renew-deadline-seconds`
    /// (default: two thirds of the lease).
    pub fn from_flags(
        lease_seconds: u64,
        renew_deadline_seconds: Option<u64>,
    ) -> Result<Self, String> {
        if !(2..=3600).contains(&lease_seconds) {
            return Err(format!(
                "--leader-elect-lease-seconds {lease_seconds}: must be between 2 and 3600"
            ));
        }
        let lease = Duration::from_secs(lease_seconds);
        let renew_deadline = match renew_deadline_seconds {
            Some(0) => {
                return Err("--leader-elect-renew-deadline-seconds 0: must be at least 1".into());
            }
            Some(s) if s >= lease_seconds => {
                return Err(format!(
                    "--leader-elect-renew-deadline-seconds {s}: must be shorter than \
                     --leader-elect-lease-seconds {lease_seconds} (the difference is the margin \
                     that fences a stale leader's writes)"
                ));
            }
            Some(s) => Duration::from_secs(s),
            None => lease * 2 / 3,
        };
        Ok(LeaseTiming {
            lease,
            renew_deadline,
            retry: (renew_deadline / 4).max(Duration::from_millis(100)),
        })
    }

    /// Connect and write timeouts of the fenced clients: a write the fence passed reaches the
    /// apiserver before the new leader can start.
    pub fn request_timeout(&self) -> Duration {
        (self.lease - self.renew_deadline) / 2
    }
}

/// Whether writes may be sent now. Cloned into every fenced client.
#[derive(Clone, Debug)]
pub struct Fence {
    /// `None`: no election (always open). `Some(None)`: closed. `Some(Some(t))`: open until `t`.
    deadline: Option<Arc<Mutex<Option<Instant>>>>,
}

impl Fence {
    /// A fence that never closes (a single replica without leader election).
    pub fn open() -> Fence {
        Fence { deadline: None }
    }

    /// A fence closed until the first renewal.
    pub fn closed() -> Fence {
        Fence {
            deadline: Some(Arc::new(Mutex::new(None))),
        }
    }

    /// Whether a write may be sent now.
    pub fn may_write(&self) -> bool {
        self.may_write_at(Instant::now())
    }

    fn may_write_at(&self, now: Instant) -> bool {
        match &self.deadline {
            None => true,
            Some(d) => lock(d).is_some_and(|until| now < until),
        }
    }

    /// A renewal sent at `sent` succeeded: writes may go on until `sent + renew_deadline`.
    fn renewed(&self, sent: Instant, renew_deadline: Duration) {
        if let Some(d) = &self.deadline {
            *lock(d) = Some(sent + renew_deadline);
        }
    }

    /// Refuse every write from now on.
    pub fn close(&self) {
        if let Some(d) = &self.deadline {
            *lock(d) = None;
        }
    }

    /// The instant the fence closes, if open with a deadline.
    fn until(&self) -> Option<Instant> {
        self.deadline.as_ref().and_then(|d| *lock(d))
    }
}

fn lock(m: &Mutex<Option<Instant>>) -> std::sync::MutexGuard<'_, Option<Instant>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The error of a write the fence refused.
#[derive(Debug, thiserror::Error)]
#[error("write fenced: this controller no longer holds a fresh leader Lease")]
pub struct FencedWrite;

/// Tower layer checking the [`Fence`] before every mutating request.
#[derive(Clone, Debug)]
pub struct FenceLayer(pub Fence);

impl<S> tower::Layer<S> for FenceLayer {
    type Service = Fenced<S>;
    fn layer(&self, inner: S) -> Fenced<S> {
        Fenced {
            inner,
            fence: self.0.clone(),
        }
    }
}

/// Service of [`FenceLayer`].
#[derive(Clone, Debug)]
pub struct Fenced<S> {
    inner: S,
    fence: Fence,
}

type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S, B> tower::Service<http::Request<B>> for Fenced<S>
where
    S: tower::Service<http::Request<B>, Error = tower::BoxError>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = tower::BoxError;
    type Future = BoxFuture<Result<S::Response, tower::BoxError>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let write = !matches!(
            *req.method(),
            http::Method::GET | http::Method::HEAD | http::Method::OPTIONS
        );
        if write && !self.fence.may_write() {
            tracing::warn!(method = %req.method(), uri = %req.uri(), "write fenced: leader Lease not renewed in time");
            return Box::pin(async { Err(Box::new(FencedWrite) as tower::BoxError) });
        }
        Box::pin(self.inner.call(req))
    }
}

/// A client whose every write passes `fence`, each retry of kube's server-aware retry policy
/// included (the fence sits under the retry layer). With an election (`timing`), connect and
/// write timeouts are capped at [`LeaseTiming::request_timeout`], so a write the fence passed
/// reaches the apiserver (or fails) before a new leader can be elected.
pub fn fenced_client(
    mut config: kube::Config,
    fence: &Fence,
    timing: Option<&LeaseTiming>,
) -> kube::Result<kube::Client> {
    let retry = std::mem::replace(&mut config.default_retry, false);
    if let Some(timing) = timing {
        let cap = timing.request_timeout();
        config.connect_timeout = Some(config.connect_timeout.map_or(cap, |t| t.min(cap)));
        config.write_timeout = Some(config.write_timeout.map_or(cap, |t| t.min(cap)));
    }
    // kube's stack is a boxed service that cannot be cloned, and retrying needs a clone of what
    // it retries: a buffer in front of it makes one (it forwards calls, so they stay concurrent).
    let builder = kube::client::ClientBuilder::try_from(config)?
        .with_layer(&tower::buffer::BufferLayer::new(1024))
        .with_layer(&FenceLayer(fence.clone()));
    Ok(match retry {
        true => builder
            .with_layer(&tower::retry::RetryLayer::new(
                kube::client::retry::RetryPolicy::server_retry(),
            ))
            .build(),
        false => builder.build(),
    })
}

/// Why leadership ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lost {
    /// No renewal succeeded within the renew deadline.
    RenewDeadline,
    /// Another replica holds the Lease.
    TakenBy(String),
}

impl std::fmt::Display for Lost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Lost::RenewDeadline => f.write_str("no renewal succeeded within the renew deadline"),
            Lost::TakenBy(h) => write!(f, "the Lease is held by {h}"),
        }
    }
}

/// One replica's side of the election on the Lease `api`/`name`.
pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    timing: LeaseTiming,
    fence: Fence,
}

/// What a follower last saw of the Lease, and since when (its own clock).
#[derive(PartialEq, Eq)]
struct Observed {
    holder: Option<String>,
    renew_time: Option<String>,
    resource_version: Option<String>,
}

impl Elector {
    /// An elector for `identity` opening `fence` while it holds the Lease.
    pub fn new(
        api: Api<Lease>,
        name: &str,
        identity: &str,
        timing: LeaseTiming,
        fence: Fence,
    ) -> Self {
        Elector {
            api,
            name: name.into(),
            identity: identity.into(),
            timing,
            fence,
        }
    }

    /// Wait until this replica holds the Lease (the fence is then open).
    pub async fn acquire(&self) {
        let mut seen: Option<(Observed, Instant)> = None;
        loop {
            match self.try_acquire(&mut seen).await {
                Ok(true) => return,
                Ok(false) => {}
                Err(e) => tracing::debug!("leader election: {e}"),
            }
            tokio::time::sleep(self.timing.retry).await;
        }
    }

    async fn try_acquire(&self, seen: &mut Option<(Observed, Instant)>) -> kube::Result<bool> {
        let sent = Instant::now();
        let Some(lease) = self.api.get_opt(&self.name).await? else {
            let lease = self.record(None, 0);
            self.api.create(&PostParams::default(), &lease).await?;
            self.fence.renewed(sent, self.timing.renew_deadline);
            return Ok(true);
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let observed = Observed {
            holder: holder.clone(),
            renew_time: spec.renew_time.as_ref().map(|t| t.0.to_string()),
            resource_version: lease.metadata.resource_version.clone(),
        };
        let now = Instant::now();
        let free = match (&holder, &*seen) {
            (None, _) => true,
            (Some(_), Some((o, since))) if *o == observed => {
                now.duration_since(*since) >= self.timing.lease
            }
            (Some(_), _) => false,
        };
        if !free {
            if seen.as_ref().is_none_or(|(o, _)| *o != observed) {
                *seen = Some((observed, now));
            }
            return Ok(false);
        }
        let transitions = spec.lease_transitions.unwrap_or(0) + 1;
        let taken = self.record(lease.metadata.resource_version.clone(), transitions);
        let sent = Instant::now();
        self.compare_and_patch(&taken).await?;
        self.fence.renewed(sent, self.timing.renew_deadline);
        if let Some(h) = holder {
            tracing::info!(previous = %h, "took over the expired leader Lease");
        }
        Ok(true)
    }

    /// Write `lease`'s spec only if the Lease still has `lease`'s resourceVersion (a merge patch
    /// carrying `metadata.resourceVersion` is a precondition: 409 Conflict otherwise). A patch,
    /// not an update, because patch is the verb the chart's Role grants.
    async fn compare_and_patch(&self, lease: &Lease) -> kube::Result<Lease> {
        let spec = lease.spec.clone().unwrap_or_default();
        let patch = serde_json::json!({
            "metadata": {"resourceVersion": lease.metadata.resource_version},
            "spec": {
                "holderIdentity": spec.holder_identity,
                "leaseDurationSeconds": spec.lease_duration_seconds,
                "acquireTime": spec.acquire_time,
                "renewTime": spec.renew_time,
                "leaseTransitions": spec.lease_transitions,
            },
        });
        self.api
            .patch(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
    }

    fn record(&self, resource_version: Option<String>, transitions: i32) -> Lease {
        let now = MicroTime(jiff::Timestamp::now());
        let mut lease = Lease {
            spec: Some(LeaseSpec {
                holder_identity: Some(self.identity.clone()),
                lease_duration_seconds: Some(self.timing.lease.as_secs() as i32),
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                lease_transitions: Some(transitions),
                ..Default::default()
            }),
            ..Default::default()
        };
        lease.metadata.name = Some(self.name.clone());
        lease.metadata.resource_version = resource_version;
        lease
    }

    /// Renew the Lease until it is lost; returns why. The fence is closed on return.
    pub async fn hold(&self) -> Lost {
        let lost = loop {
            tokio::time::sleep(self.timing.retry).await;
            let Some(until) = self.fence.until() else {
                break Lost::RenewDeadline;
            };
            if Instant::now() >= until {
                break Lost::RenewDeadline;
            }
            // Bound the renewal by the deadline: a renewal answered later is worth nothing.
            match tokio::time::timeout_at(until, self.renew()).await {
                Ok(Ok(None)) => {}
                Ok(Ok(Some(lost))) => break lost,
                Ok(Err(e)) => tracing::warn!("leader Lease renewal failed: {e}"),
                Err(_) => tracing::warn!("leader Lease renewal timed out"),
            }
        };
        self.fence.close();
        lost
    }

    async fn renew(&self) -> kube::Result<Option<Lost>> {
        let mut lease = self.api.get(&self.name).await?;
        let mut spec = lease.spec.take().unwrap_or_default();
        match spec.holder_identity.as_deref() {
            Some(h) if h == self.identity => {}
            other => return Ok(Some(Lost::TakenBy(other.unwrap_or("nobody").to_string()))),
        }
        let sent = Instant::now();
        if self.fence.until().is_none_or(|until| sent >= until) {
            return Ok(Some(Lost::RenewDeadline));
        }
        spec.renew_time = Some(MicroTime(jiff::Timestamp::now()));
        spec.lease_duration_seconds = Some(self.timing.lease.as_secs() as i32);
        lease.spec = Some(spec);
        // The resourceVersion read above makes this fail (409) if anyone took the Lease since.
        self.compare_and_patch(&lease).await?;
        self.fence.renewed(sent, self.timing.renew_deadline);
        Ok(None)
    }

    /// Give the Lease up (on shutdown) so a follower takes over at once; only while the fence is
    /// open, with the resourceVersion read, so a Lease someone else took is left alone.
    pub async fn release(&self) {
        if !self.fence.may_write() {
            return;
        }
        let result = async {
            let mut lease = self.api.get(&self.name).await?;
            if let Some(spec) = lease.spec.as_mut()
                && spec.holder_identity.as_deref() == Some(self.identity.as_str())
            {
                spec.holder_identity = None;
                spec.renew_time = None;
                spec.acquire_time = None;
                self.compare_and_patch(&lease).await?;
            }
            Ok::<(), kube::Error>(())
        };
        if let Err(e) = tokio::time::timeout(Duration::from_secs(5), result).await {
            tracing::warn!("releasing the leader Lease: {e}");
        }
        self.fence.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renew_deadline_must_be_shorter_than_the_lease() {
        let t = LeaseTiming::from_flags(15, None).expect("defaults");
        assert_eq!(t.renew_deadline, Duration::from_secs(10));
        assert_eq!(t.request_timeout(), Duration::from_millis(2500));
        let err = LeaseTiming::from_flags(10, Some(10)).expect_err("equal");
        assert!(
            err.contains("--leader-elect-renew-deadline-seconds 10"),
            "{err}"
        );
        assert!(LeaseTiming::from_flags(1, None).is_err());
        assert!(LeaseTiming::from_flags(10, Some(0)).is_err());
    }

    #[test]
    fn the_fence_closes_at_the_renew_deadline_counted_from_the_send() {
        let fence = Fence::closed();
        assert!(!fence.may_write(), "closed until elected");
        let sent = Instant::now();
        fence.renewed(sent, Duration::from_secs(2));
        assert!(fence.may_write_at(sent + Duration::from_millis(1999)));
        assert!(
            !fence.may_write_at(sent + Duration::from_secs(2)),
            "2 s after the renewal was sent, whenever its answer came"
        );
        fence.close();
        assert!(!fence.may_write_at(sent));
        assert!(Fence::open().may_write());
    }

    #[tokio::test]
    async fn a_closed_fence_refuses_writes_but_not_reads() {
        use tower::{Layer, Service, ServiceExt};
        let inner = tower::service_fn(|_req: http::Request<()>| async {
            Ok::<_, tower::BoxError>(http::Response::new(()))
        });
        let mut svc = FenceLayer(Fence::closed()).layer(inner);
        let get = http::Request::get("/api/v1/nodes")
            .body(())
            .expect("request");
        assert!(svc.ready().await.expect("ready").call(get).await.is_ok());
        let patch = http::Request::patch("/api/v1/nodes/n")
            .body(())
            .expect("request");
        let err = svc
            .ready()
            .await
            .expect("ready")
            .call(patch)
            .await
            .expect_err("fenced");
        assert!(err.is::<FencedWrite>(), "{err}");
    }
}
