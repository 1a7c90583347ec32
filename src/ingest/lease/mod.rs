//! Leases: at most one process writes what a lease covers at a time. Each source has
//! its own (`_medallion/leases/<source>`): one run per source ingests at a time, while
//! runs of different sources proceed together. A gold model fed by several sources has
//! a lock of its own (`_medallion/leases/gold.<model>`), held while one of them
//! refreshes it. What changes the whole lakehouse (`rebuild`, `optimize`, labelling an
//! old ledger, completing a rebuild) holds every source's lease. A [`Lease`] may
//! cover several tables, taken in name order; gold locks are taken after a source's
//! lease, and a holder of a gold lock never waits for a source's lease, so two
//! processes never wait for each other.
//!
//! Each lease is a Delta table (one row per event) whose every commit
//! carries the application transaction `medallion/lease` with a new epoch. Two processes
//! that try to take the lease at once commit the same app id, so Delta's conflict check
//! lets exactly one win. The holder renews it in the background every `ttl / 3`; a
//! killed holder stops renewing, so its lease expires after `ttl` — at once when it
//! was a process on this host that no longer exists. Renewals run on a thread of their
//! own so a busy ingest cannot starve them. The holder stops before its next commit
//! when a renewal finds the lease taken over, and also when its last renewal is older
//! than two thirds of the TTL (before anyone else may take the lease). Exactly-once
//! does not rest on the lease alone: every stage commit is also fenced by its own
//! transaction version (see `run`).

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;

use crate::error::{MedallionError, Result};
use crate::storage::{FileSize, Lakehouse};

mod events;
use events::{
    Outcome, commit_event, current, holder_id, holder_is_dead, lease_schema, newest_event,
};

/// Where the lease tables are.
pub const LEASES_DIR: &str = "_medallion/leases";
const LEASE_APP: &str = "medallion/lease";

/// The lease table of source `name`: one run of the source at a time.
pub fn source_lease(name: &str) -> String {
    format!("{LEASES_DIR}/{name}")
}

/// The lock of gold model `name` when several sources feed it: one refresh at a time.
pub fn gold_lock(name: &str) -> String {
    format!("{LEASES_DIR}/gold.{name}")
}

/// Held leases (one or more tables); released on `release`, or left to expire when the
/// process dies.
pub struct Lease {
    /// Taken at `acquire`, plus those taken for a while with [`Lease::hold_more`]
    /// (checked together, so a lapsed lock stops the caller like a lapsed lease).
    held: Mutex<Vec<Held>>,
    wait: Duration,
    ttl: Duration,
}

/// One held lease table.
struct Held {
    lake: Lakehouse,
    table: String,
    holder: String,
    ttl: Duration,
    shared: Arc<Shared>,
    stop: std::sync::mpsc::Sender<()>,
    renewer: Option<std::thread::JoinHandle<()>>,
}

/// What the holder and its renewer thread share.
struct Shared {
    epoch: AtomicI64,
    lost: AtomicBool,
    /// When the last renewal commit started: the lease is ours until `ttl` after that.
    renewed_at: Mutex<Instant>,
}

/// How long after its expiry a lease of a holder that may still be alive (on another
/// host) counts as released: far longer than any commit can be in flight.
const LONG_EXPIRED: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

/// The lease table's version while no run holds the lease, or `None` (held, or no
/// lease table yet). Its newest lease event is a release, or a lease whose holder is a
/// process of this host that no longer exists, or one that expired long ago. Every
/// writer commits to the lease table before its first write, so nothing was written
/// since as long as the table has no later version. Commits that are not lease events
/// (a vacuum's) are passed over: they write no rows.
pub async fn released_version(lake: &Lakehouse, lease: &str) -> Result<Option<i64>> {
    let Some(table) = lake.uncached().open(lease).await? else {
        return Ok(None);
    };
    let newest = newest_event(&table).await?;
    let released = newest.is_some_and(|e| {
        e.action == "release"
            || (e.expires_at < Utc::now() && holder_is_dead(&e.holder))
            || e.expires_at + LONG_EXPIRED < Utc::now()
    });
    Ok(released
        .then(|| table.version().map(|v| v as i64))
        .flatten())
}

impl Lease {
    /// Take the leases of `tables` (in name order), waiting up to `wait` for each while
    /// another live process holds it. Every writer takes a lease first, so this is also
    /// where a lakehouse on an object store is checked to refuse conflicting commits
    /// (once, see `storage::probe`).
    pub async fn acquire(
        lake: &Lakehouse,
        tables: &[String],
        ttl: Duration,
        wait: Duration,
    ) -> Result<Lease> {
        lake.ensure_writable().await?;
        let lease = Lease {
            held: Mutex::new(Vec::new()),
            wait,
            ttl,
        };
        if let Err(e) = lease.take(lake, tables, wait).await {
            if let Err(release) = lease.release().await {
                tracing::warn!("cannot release a lease (it will expire): {release}");
            }
            return Err(e);
        }
        Ok(lease)
    }

    /// Take `tables` (in name order) into this lease, waiting up to `wait` for each.
    async fn take(&self, lake: &Lakehouse, tables: &[String], wait: Duration) -> Result<()> {
        let mut tables = tables.to_vec();
        tables.sort();
        tables.dedup();
        for table in tables {
            let held = Held::acquire(lake, &table, self.ttl, wait).await?;
            self.held
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(held);
        }
        Ok(())
    }

    /// Also hold `tables` (gold models' locks) until [`Lease::let_go`]: taken after this
    /// lease's own tables, so a holder of them never waits for a source's lease. With
    /// `try_once`, a table another process holds is not waited for: an error at once.
    pub async fn hold_more(
        &self,
        lake: &Lakehouse,
        tables: &[String],
        try_once: bool,
    ) -> Result<()> {
        let wait = if try_once { Duration::ZERO } else { self.wait };
        if let Err(e) = self.take(lake, tables, wait).await {
            self.let_go(tables).await;
            return Err(e);
        }
        Ok(())
    }

    /// Release `tables` taken with [`Lease::hold_more`] (a failure only lets them
    /// expire).
    pub async fn let_go(&self, tables: &[String]) {
        let taken: Vec<Held> = {
            let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
            let (out, keep) = std::mem::take(&mut *held)
                .into_iter()
                .partition(|h| tables.contains(&h.table));
            *held = keep;
            out
        };
        for h in taken {
            let table = h.table.clone();
            if let Err(e) = h.release().await {
                tracing::warn!(lease = %table, "cannot release (it will expire): {e}");
            }
        }
    }

    /// Whether this lease holds every one of `tables`.
    pub fn covers(&self, tables: &[String]) -> bool {
        let held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        tables.iter().all(|t| held.iter().any(|h| h.table == *t))
    }

    /// Fail when a lease was lost or may have lapsed: the caller must not commit
    /// anything more. A lease counts as lapsed a third of the TTL before it expires
    /// for other processes, which leaves that much time for the commit that follows.
    pub fn check(&self) -> Result<()> {
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .try_for_each(Held::check)
    }

    /// Give the leases back so the next process need not wait for them to expire.
    pub async fn release(self) -> Result<()> {
        let held = self.held.into_inner().unwrap_or_else(|p| p.into_inner());
        let mut result = Ok(());
        for h in held {
            let released = h.release().await;
            if result.is_ok() {
                result = released;
            }
        }
        result
    }
}

impl Held {
    async fn acquire(lake: &Lakehouse, lease: &str, ttl: Duration, wait: Duration) -> Result<Held> {
        // Read fresh every time, and also from the renewer's runtime (see `uncached`).
        let lake = &lake.uncached();
        let holder = holder_id();
        let started = std::time::Instant::now();
        // Waiting runs poll with a growing pause: on an object store every poll costs
        // requests, and a crowd of waiters must not slow down the holder.
        let mut pause = Duration::from_millis(200);
        let max_pause = if lake.root().is_local() {
            Duration::from_secs(1)
        } else {
            Duration::from_secs(5)
        };
        loop {
            let table = lake
                .open_or_create(lease, &lease_schema(), FileSize::Append)
                .await?;
            let (epoch, event) = current(&table).await?;
            let blocker = match event {
                Some((h, action, expires))
                    if action != "release" && expires > Utc::now() && !holder_is_dead(&h) =>
                {
                    Some((h, expires))
                }
                _ => None,
            };
            match blocker {
                None => {
                    let taken_at = Instant::now();
                    let event = (holder.as_str(), "acquire");
                    // An acquire of this holder found already taken (`Earlier`) started
                    // at an unknown time: it is left to expire, never assumed held.
                    if commit_event(lake, lease, event, epoch + 1, ttl).await? == Outcome::Committed
                    {
                        let table = lease.to_string();
                        return Ok(Self::start(
                            lake.clone(),
                            table,
                            holder,
                            ttl,
                            epoch + 1,
                            taken_at,
                        ));
                    }
                }
                Some((h, expires)) if started.elapsed() >= wait => {
                    return Err(MedallionError::LeaseHeld {
                        holder: h,
                        expires_at: expires,
                    });
                }
                Some(_) => {}
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(max_pause);
        }
    }

    /// Start renewing on a thread of its own, with its own runtime, so that a busy
    /// ingest cannot starve the renewals.
    fn start(
        lake: Lakehouse,
        table: String,
        holder: String,
        ttl: Duration,
        epoch: i64,
        taken_at: Instant,
    ) -> Held {
        let shared = Arc::new(Shared {
            epoch: AtomicI64::new(epoch),
            lost: AtomicBool::new(false),
            renewed_at: Mutex::new(taken_at),
        });
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let renewer = {
            let (lake, table, holder, shared) =
                (lake.clone(), table.clone(), holder.clone(), shared.clone());
            std::thread::Builder::new()
                .name("lease-renewer".into())
                .spawn(move || {
                    renew_until_stopped(&lake, (&table, &holder), ttl, &shared, &stopped)
                })
                .ok()
        };
        if renewer.is_none() {
            // Without a renewer the lease simply runs out: `check` stops the run in time.
            tracing::warn!("cannot start the lease renewer thread");
        }
        Held {
            lake,
            table,
            holder,
            ttl,
            shared,
            stop,
            renewer,
        }
    }

    fn check(&self) -> Result<()> {
        let renewed_at = *self
            .shared
            .renewed_at
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if self.shared.lost.load(Ordering::SeqCst)
            || renewed_at.elapsed() + self.ttl / 3 >= self.ttl
        {
            return Err(MedallionError::LeaseLost);
        }
        Ok(())
    }

    async fn release(mut self) -> Result<()> {
        let _ = self.stop.send(());
        if let Some(renewer) = self.renewer.take() {
            let _ = tokio::task::spawn_blocking(move || renewer.join()).await;
        }
        if !self.shared.lost.load(Ordering::SeqCst) {
            let next = self.shared.epoch.load(Ordering::SeqCst) + 1;
            let event = (self.holder.as_str(), "release");
            let outcome = commit_event(&self.lake, &self.table, event, next, self.ttl).await?;
            // A renewal of ours may have landed unrecognised (reported failed, and not
            // found then): the release follows it.
            if outcome == Outcome::Lost
                && let Some(table) = self.lake.open(&self.table).await?
                && let (epoch, Some((h, ..))) = current(&table).await?
                && h == self.holder
            {
                commit_event(&self.lake, &self.table, event, epoch + 1, self.ttl).await?;
            }
        }
        Ok(())
    }
}

/// The renewer thread: renew every `ttl / 3` until told to stop or the lease is lost.
fn renew_until_stopped(
    lake: &Lakehouse,
    (lease, holder): (&str, &str),
    ttl: Duration,
    shared: &Shared,
    stopped: &std::sync::mpsc::Receiver<()>,
) {
    // One worker, but a multi-thread runtime: deltalake's S3 credential resolution
    // blocks in place on the runtime it runs on, which a current-thread runtime cannot.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::warn!("cannot start the lease renewer: {e}");
            return;
        }
    };
    // When the first attempt at the next epoch started: an attempt reported failed may
    // have landed (or land later), and its event expires a `ttl` after it started, so a
    // renewal counts from then, whichever attempt it was.
    let mut first: Option<(i64, Instant)> = None;
    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(ttl / 3) {
        let next = shared.epoch.load(Ordering::SeqCst) + 1;
        let started = match first {
            Some((epoch, at)) if epoch == next => at,
            _ => first.insert((next, Instant::now())).1,
        };
        match runtime.block_on(commit_event(lake, lease, (holder, "renew"), next, ttl)) {
            Ok(Outcome::Committed | Outcome::Earlier) => {
                shared.epoch.store(next, Ordering::SeqCst);
                *shared.renewed_at.lock().unwrap_or_else(|p| p.into_inner()) = started;
            }
            Ok(Outcome::Lost) => {
                tracing::error!(lease, "the lease was taken over by another process");
                shared.lost.store(true, Ordering::SeqCst);
                return;
            }
            Err(e) => tracing::warn!(lease, "cannot renew the lease (will retry): {e}"),
        }
    }
}
