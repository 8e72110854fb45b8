//! The real-time hub at `/hubs/orders`: SignalR's JSON hub protocol over WebSockets, fed by this
//! replica's own notify queue so that every replica's clients hear every event.
//!
//! The hub keeps one bounded queue per connection. Fanning out never waits for a client: a
//! connection whose queue is full is dropped, and its client re-reads state over REST when it
//! reconnects. Connections are indexed by user (and admins kept apart), so an order's update
//! touches its owner's few connections and the admins', not every connection; and they are
//! capped per user and in total, so one account cannot take the replica's memory.

mod backplane;
mod connection;
mod notifications;
mod protocol;
mod routes;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

pub(crate) use backplane::Backplane;
pub(crate) use routes::{__path_negotiate, negotiate, routes};

use notifications::{Audience, Notification};

/// How the hub treats its connections.
#[derive(Debug, Clone)]
pub struct HubSettings {
    /// Messages queued for one connection before its client counts as not reading.
    pub send_buffer: usize,
    /// How often the server pings an otherwise quiet connection.
    pub keep_alive: Duration,
    /// How long a client may stay silent (SignalR clients ping every 15 s), and how long one
    /// write to it may take.
    pub client_timeout: Duration,
    /// How long a new connection has to send its handshake.
    pub handshake_timeout: Duration,
    /// Connections at most, in all and for one user.
    pub max_connections: usize,
    pub max_connections_per_user: usize,
}

/// Why the hub closes every connection at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Broadcast {
    Open,
    /// The backplane was interrupted: clients may have missed events and must re-read.
    Resync(u64),
    ShuttingDown,
}

/// The live connections of this replica. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    settings: HubSettings,
    subscribers: RwLock<Subscribers>,
    /// Connections admitted, per user and in all, from the upgrade to the end.
    admitted: Arc<orion_http::Caps<Uuid>>,
    next_id: AtomicU64,
    broadcast: watch::Sender<Broadcast>,
    /// Connections whose task is still running, registered or not.
    open: watch::Sender<usize>,
    /// Whether the backplane is subscribed: only then does every event reach this replica.
    listening: watch::Sender<bool>,
}

#[derive(Debug)]
struct Subscriber {
    user: Uuid,
    reach: Reach,
    queue: mpsc::Sender<Arc<Notification>>,
    /// Fired when the hub drops the connection; its task then ends wherever it is waiting.
    drop: Option<oneshot::Sender<()>>,
}

/// The registered connections, by id, with the index fan-out reads.
#[derive(Debug, Default)]
struct Subscribers {
    by_id: HashMap<u64, Subscriber>,
    /// Each customer's connections (an admin's are in `admins` only).
    by_user: HashMap<Uuid, HashSet<u64>>,
    admins: HashSet<u64>,
    /// Connections of API keys that read every order.
    order_readers: HashSet<u64>,
}

impl Subscribers {
    fn insert(&mut self, id: u64, subscriber: Subscriber) {
        match subscriber.reach {
            Reach::Admin => {
                self.admins.insert(id);
            }
            Reach::AllOrders => {
                self.order_readers.insert(id);
            }
            Reach::Own => {
                self.by_user.entry(subscriber.user).or_default().insert(id);
            }
        }
        self.by_id.insert(id, subscriber);
    }

    fn remove(&mut self, id: u64) -> Option<Subscriber> {
        let subscriber = self.by_id.remove(&id)?;
        match subscriber.reach {
            Reach::Admin => {
                self.admins.remove(&id);
            }
            Reach::AllOrders => {
                self.order_readers.remove(&id);
            }
            Reach::Own => {
                if let Some(ids) = self.by_user.get_mut(&subscriber.user) {
                    ids.remove(&id);
                    if ids.is_empty() {
                        self.by_user.remove(&subscriber.user);
                    }
                }
            }
        }
        Some(subscriber)
    }

    /// The connections a notification goes to: every admin's, and for an order's news also
    /// every order reader's and the owner's.
    fn audience(&self, audience: Audience) -> impl Iterator<Item = (u64, &Subscriber)> {
        let (readers, owner) = match audience {
            Audience::Admins => (None, None),
            Audience::OrderWatchers => (Some(&self.order_readers), None),
            Audience::Owner(customer) => (Some(&self.order_readers), self.by_user.get(&customer)),
        };
        self.admins
            .iter()
            .chain(readers.into_iter().flatten())
            .chain(owner.into_iter().flatten())
            .filter_map(|id| self.by_id.get(id).map(|subscriber| (*id, subscriber)))
    }
}

/// What a connection hears about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reach {
    /// A customer: their own orders.
    Own,
    /// An API key with `orders:read`: every order (not the stock).
    AllOrders,
    /// An admin: every order and the stock.
    Admin,
}

/// Who is connected: from the verified access token or API key.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caller {
    /// The user, or the API key.
    pub(crate) user: Uuid,
    pub(crate) reach: Reach,
    pub(crate) expires_at: time::OffsetDateTime,
}

/// A connection's place in the hub, given up when dropped.
struct Registration {
    hub: Hub,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.hub.unregister(self.id);
    }
}

/// Counts a connection's task from its upgrade to its end.
struct OpenConnection {
    hub: Hub,
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.hub
            .inner
            .open
            .send_modify(|open| *open = open.saturating_sub(1));
        metrics::gauge!("hub_connections").decrement(1.0);
    }
}

impl Hub {
    pub fn new(mut settings: HubSettings) -> Self {
        // Zero would make a timer that never waits (or panics); the configuration refuses it.
        let floor = Duration::from_millis(100);
        settings.keep_alive = settings.keep_alive.max(floor);
        settings.client_timeout = settings.client_timeout.max(floor);
        settings.handshake_timeout = settings.handshake_timeout.max(floor);
        Self {
            inner: Arc::new(Inner {
                admitted: Arc::new(orion_http::Caps::named(
                    settings.max_connections,
                    settings.max_connections_per_user,
                    "hub_admitted_connections",
                    "hub_connections_refused_total",
                )),
                settings,
                subscribers: RwLock::new(Subscribers::default()),
                next_id: AtomicU64::new(1),
                broadcast: watch::channel(Broadcast::Open).0,
                open: watch::channel(0).0,
                listening: watch::channel(false).0,
            }),
        }
    }

    pub(crate) fn settings(&self) -> &HubSettings {
        &self.inner.settings
    }

    /// Whether the replica is shutting down: no new connections, readiness off.
    pub(crate) fn is_shutting_down(&self) -> bool {
        *self.inner.broadcast.borrow() == Broadcast::ShuttingDown
    }

    /// Set by the backplane as its subscription comes and goes.
    pub(crate) fn set_listening(&self, listening: bool) {
        self.inner.listening.send_replace(listening);
        metrics::gauge!("hub_backplane_up").set(if listening { 1.0 } else { 0.0 });
    }

    /// Waits, at most `within`, until the backplane is subscribed. A client that registered
    /// before would miss what is published until then, with nothing to tell it so.
    async fn listening(&self, within: Duration) -> bool {
        let mut listening = self.inner.listening.subscribe();
        tokio::time::timeout(within, listening.wait_for(|up| *up))
            .await
            .is_ok_and(|up| up.is_ok())
    }

    /// Admits one more connection for `user`, or refuses it: `429` past the per-user cap,
    /// `503` (with `Retry-After`) past the replica's.
    pub(crate) fn admit(
        &self,
        user: Uuid,
    ) -> Result<orion_http::Admitted<Uuid>, crate::error::ApiError> {
        use crate::error::ApiError;
        self.inner
            .admitted
            .admit_key(user)
            .map_err(|why| match why {
                orion_http::Refused::PerClient => {
                    ApiError::TooManyConnections(self.inner.settings.max_connections_per_user)
                }
                orion_http::Refused::Total => ApiError::Unavailable(
                    "this replica has as many hub connections as it takes; connect again shortly"
                        .into(),
                ),
            })
    }

    fn open_connection(&self) -> OpenConnection {
        self.inner.open.send_modify(|open| *open += 1);
        metrics::gauge!("hub_connections").increment(1.0);
        OpenConnection { hub: self.clone() }
    }

    /// Subscribes a connection that completed its handshake.
    fn register(
        &self,
        caller: &Caller,
    ) -> (
        Registration,
        mpsc::Receiver<Arc<Notification>>,
        oneshot::Receiver<()>,
    ) {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (queue, messages) = mpsc::channel(self.inner.settings.send_buffer.max(1));
        let (drop, dropped) = oneshot::channel();
        self.subscribers().insert(
            id,
            Subscriber {
                user: caller.user,
                reach: caller.reach,
                queue,
                drop: Some(drop),
            },
        );
        (
            Registration {
                hub: self.clone(),
                id,
            },
            messages,
            dropped,
        )
    }

    fn unregister(&self, id: u64) {
        self.subscribers().remove(id);
    }

    fn subscribers(&self) -> std::sync::RwLockWriteGuard<'_, Subscribers> {
        self.inner
            .subscribers
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues one message for every connection of its audience, without waiting for any. A
    /// connection whose queue is full is dropped.
    pub(crate) fn dispatch(&self, notification: Notification) {
        let notification = Arc::new(notification);
        let mut slow = Vec::new();
        {
            let subscribers = self
                .inner
                .subscribers
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            for (id, subscriber) in subscribers.audience(notification.audience) {
                if let Err(mpsc::error::TrySendError::Full(_)) =
                    subscriber.queue.try_send(notification.clone())
                {
                    slow.push(id);
                }
            }
        }
        if slow.is_empty() {
            return;
        }
        let mut subscribers = self.subscribers();
        for id in slow {
            if let Some(mut subscriber) = subscribers.remove(id) {
                tracing::warn!(
                    connection = id,
                    user = %subscriber.user,
                    "hub client is not reading; dropping its connection"
                );
                metrics::counter!("hub_connections_closed_total", "reason" => "slow_client")
                    .increment(1);
                if let Some(drop) = subscriber.drop.take() {
                    let _ = drop.send(());
                }
            }
        }
    }

    /// Closes every connection with a message inviting its client to reconnect and re-read:
    /// events may have been missed while the backplane was down.
    pub(crate) fn resync(&self) {
        self.inner.broadcast.send_modify(|state| {
            if let Broadcast::Resync(generation) = *state {
                *state = Broadcast::Resync(generation + 1);
            } else if *state == Broadcast::Open {
                *state = Broadcast::Resync(1);
            }
        });
    }

    /// Closes every connection with a close message and waits, at most `deadline`, for them to
    /// end. New connections are refused from now on.
    pub async fn shut_down(&self, deadline: Duration) {
        self.inner.broadcast.send_replace(Broadcast::ShuttingDown);
        let mut open = self.inner.open.subscribe();
        let closed = open.wait_for(|open| *open == 0);
        if tokio::time::timeout(deadline, closed).await.is_err() {
            tracing::warn!(
                open = *self.inner.open.borrow(),
                "hub connections still open after the shutdown deadline"
            );
        }
    }
}
