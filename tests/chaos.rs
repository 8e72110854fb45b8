//! The fault suite (`cargo xtask chaos`): Orion's real processes — two API replicas and two
//! workers, each an OS process of its own, the gateway in front, the shared PostgreSQL, RabbitMQ
//! and mail catcher — under a stream of orders from clients that retry with their
//! `Idempotency-Key`, through each fault in turn. After each fault, with nothing but the
//! processes themselves to recover, every accepted order is final and confirmed (the item is in
//! stock), nothing is oversold and stock is conserved, authorizations equal voids plus confirmed
//! orders, exactly one email per order and kind reached the mail catcher, nothing is parked but
//! the one message injected to make its handler panic, and the outbox is drained. At the end
//! every process stops cleanly on SIGTERM. The figures go to `tests/artifacts/chaos/report.md`
//! and the test's output.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::support::{
    ADMIN, DatabaseOutage, DropAfterAccept, Mailbox, OrionProcess, Partition, REGISTERED_PASSWORD,
    Running, WorkerProcess, amqp_url, api_args, database_url, management_url, publish_poison,
    restart_broker_app, spawn_gateway,
};

/// The item every order takes one unit of; far more than the run can sell.
const SKU: &str = "CHAOS-1";
const STOCK: i64 = 500_000;
/// Customers placing orders at the same time.
const CLIENTS: usize = 4;
/// Longest a client keeps retrying one order before the test counts it as refused.
const CLIENT_PATIENCE: Duration = Duration::from_secs(300);
/// Longest the system may take to settle after a fault heals.
const SETTLE_LIMIT: Duration = Duration::from_secs(240);
/// How long each process may take to stop on SIGTERM.
const STOP_LIMIT: Duration = Duration::from_secs(15);
/// The worker's flags: a provider slow enough that payments are often between their two
/// transactions when a fault strikes, quick sweeps, the queue policies in place, and the faults
/// a message asks for played.
fn worker_flags(extra: &[&str]) -> Vec<String> {
    let mut flags: Vec<String> = [
        "--payment-latency-ms",
        "100",
        "--payment-timeout-seconds",
        "2",
        "--fault-injection",
        "--amqp-management-url",
    ]
    .map(str::to_owned)
    .to_vec();
    flags.push(management_url());
    flags.extend(extra.iter().map(|flag| (*flag).to_owned()));
    flags
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    DatabaseStopped(Duration),
    DatabaseRestartedTwice,
    BrokerRestarted,
    WorkerKilledThreeTimes,
    ApiReplicaKilled,
    ProviderTimesOutAfterAuthorizing,
    SmtpDropsAfterAccepting,
    WorkerPartitionedFromDatabase(Duration),
    HandlerPanics,
}

impl Fault {
    /// Whether the fault kills a worker mid-work, which may leave an email's send unknown.
    fn kills_a_worker(self) -> bool {
        matches!(self, Self::WorkerKilledThreeTimes)
    }

    fn describe(self) -> String {
        match self {
            Self::DatabaseStopped(d) => format!("PostgreSQL stopped for {} s", d.as_secs()),
            Self::DatabaseRestartedTwice => "PostgreSQL restarted twice in quick succession".into(),
            Self::BrokerRestarted => "RabbitMQ restarted".into(),
            Self::WorkerKilledThreeTimes => "a worker SIGKILLed three times".into(),
            Self::ApiReplicaKilled => "an API replica SIGKILLed".into(),
            Self::ProviderTimesOutAfterAuthorizing => {
                "the payment provider times out after authorizing".into()
            }
            Self::SmtpDropsAfterAccepting => {
                "the SMTP server drops the connection after accepting each message".into()
            }
            Self::WorkerPartitionedFromDatabase(d) => format!(
                "a worker cut off from PostgreSQL for {} s (packets lost)",
                d.as_secs()
            ),
            Self::HandlerPanics => "one message whose handler panics".into(),
        }
    }
}

/// One line of the report.
struct Outcome {
    fault: String,
    placed: usize,
    refused_while_down: usize,
    recovered_after: Duration,
    confirmed: i64,
    total: i64,
    emails: usize,
    /// Emails whose send a killed worker interrupted (recorded failed, not sent twice).
    interrupted: usize,
}

/// What one client saw.
#[derive(Default)]
struct ClientReport {
    accepted: Vec<String>,
    unavailable: usize,
    unexpected: Vec<String>,
}

struct Customer {
    email: String,
    token: String,
}

struct Suite {
    pool: PgPool,
    db: String,
    prefix: String,
    http: reqwest::Client,
    apis: Vec<Option<OrionProcess>>,
    api_addresses: Vec<SocketAddr>,
    workers: Vec<Option<WorkerProcess>>,
    /// The second worker reaches PostgreSQL through this.
    partition: Partition,
    gateway: Running,
    customers: Vec<Customer>,
    orders: Vec<String>,
    outcomes: Vec<Outcome>,
    /// The id of the message injected to make its handler panic, once injected.
    poison: Option<Uuid>,
}

#[sqlx::test(migrations = false)]
#[ignore = "the fault suite: stops and kills the shared services; `cargo xtask chaos` runs it"]
async fn every_accepted_order_survives_each_fault_in_turn(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let mut suite = Suite::start(&options).await;
    for fault in [
        Fault::DatabaseStopped(Duration::from_secs(120)),
        Fault::DatabaseRestartedTwice,
        Fault::BrokerRestarted,
        Fault::WorkerKilledThreeTimes,
        Fault::ApiReplicaKilled,
        Fault::ProviderTimesOutAfterAuthorizing,
        Fault::SmtpDropsAfterAccepting,
        Fault::WorkerPartitionedFromDatabase(Duration::from_secs(30)),
        Fault::HandlerPanics,
    ] {
        suite.endure(fault).await;
    }
    suite.report();
    suite.stop_all().await;
}

impl Suite {
    async fn start(options: &PgConnectOptions) -> Suite {
        let db = database_url(options);
        let prefix = format!("chaos-{}.", Uuid::new_v4().simple());
        let mut apis = Vec::new();
        for _ in 0..2 {
            apis.push(Some(Self::api(&db, &prefix, None).await));
        }
        let api_addresses: Vec<SocketAddr> =
            apis.iter().flatten().map(OrionProcess::address).collect();
        let partition = Partition::in_front_of(socket_address(&db)).await;
        let flags = worker_flags(&[]);
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let workers = vec![
            Some(WorkerProcess::spawn_on(&db, &prefix, &flags).await),
            Some(WorkerProcess::spawn_on(&through(&db, &partition), &prefix, &flags).await),
        ];
        let gateway = spawn_gateway(&api_addresses, &[]).await;
        let pool = PgPool::connect(&db).await.unwrap();
        let mut suite = Suite {
            pool,
            db,
            prefix,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()
                .unwrap(),
            apis,
            api_addresses,
            workers,
            partition,
            gateway,
            customers: Vec::new(),
            orders: Vec::new(),
            outcomes: Vec::new(),
            poison: None,
        };
        suite.stock_the_item().await;
        for _ in 0..CLIENTS {
            let customer = suite.register().await;
            suite.customers.push(customer);
        }
        // Repeats the worker's own first checks: the pipeline works before any fault.
        suite.endure_nothing().await;
        suite
    }

    async fn api(db: &str, prefix: &str, address: Option<SocketAddr>) -> OrionProcess {
        let args = api_args(db, prefix, &["--access-token-ttl-seconds", "7200"]);
        OrionProcess::spawn("orion-api", &args, address).await
    }

    async fn worker(&self, index: usize, extra: &[&str]) -> WorkerProcess {
        let flags = worker_flags(extra);
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let db = if index == 0 {
            self.db.clone()
        } else {
            through(&self.db, &self.partition)
        };
        WorkerProcess::spawn_on(&db, &self.prefix, &flags).await
    }

    fn url(&self, path: &str) -> String {
        self.gateway.url(path)
    }

    async fn login(&self, email: &str, password: &str) -> String {
        let answer: Value = self
            .http
            .post(self.url("/api/auth/login"))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answer["access_token"].as_str().unwrap().to_owned()
    }

    async fn stock_the_item(&self) {
        let admin = self.login(ADMIN.0, ADMIN.1).await;
        let created = self
            .http
            .post(self.url("/api/inventory"))
            .bearer_auth(&admin)
            .json(&json!({"sku": SKU, "name": "Chaos monkey plush", "price": {"amount": 1250, "currency": "USD"},
                          "available": STOCK, "low_stock_threshold": 0}))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201, "{}", created.text().await.unwrap());
    }

    async fn register(&self) -> Customer {
        let email = format!("chaos-{}@example.com", Uuid::now_v7());
        let response = self
            .http
            .post(self.url("/api/auth/register"))
            .json(
                &json!({"email": email, "password": REGISTERED_PASSWORD, "name": "Chaos Customer"}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let token = self.login(&email, REGISTERED_PASSWORD).await;
        Customer { email, token }
    }

    /// A short stream with no fault: proves the pipeline before the faults begin.
    async fn endure_nothing(&mut self) {
        let stop = Arc::new(AtomicBool::new(false));
        let clients = self.clients(&stop);
        tokio::time::sleep(Duration::from_secs(2)).await;
        stop.store(true, Ordering::SeqCst);
        for client in clients {
            let report = client.await.unwrap();
            assert!(report.unexpected.is_empty(), "{:?}", report.unexpected);
            self.orders.extend(report.accepted);
        }
        self.settle(Instant::now()).await;
        self.check("no fault").await;
    }

    /// One fault: orders stream in before, during and after it; then the system must settle on
    /// its own and every invariant must hold.
    async fn endure(&mut self, fault: Fault) {
        eprintln!("chaos: {}", fault.describe());
        let placed_before = self.orders.len();
        let stop = Arc::new(AtomicBool::new(false));
        let clients = self.clients(&stop);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        self.inject(fault).await;
        let healed = Instant::now();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        stop.store(true, Ordering::SeqCst);
        let mut unavailable = 0;
        for client in clients {
            let report = client.await.unwrap();
            assert!(
                report.unexpected.is_empty(),
                "{}: clients were answered {:?}",
                fault.describe(),
                report.unexpected
            );
            unavailable += report.unavailable;
            self.orders.extend(report.accepted);
        }
        let recovered_after = self.settle(healed).await;
        let (confirmed, total, emails, interrupted) = self.check(&fault.describe()).await;
        let interrupted_before = self.outcomes.last().map_or(0, |o| o.interrupted);
        assert!(
            fault.kills_a_worker() || interrupted == interrupted_before,
            "{}: {} email sends recorded as interrupted, though no worker was killed",
            fault.describe(),
            interrupted - interrupted_before
        );
        self.outcomes.push(Outcome {
            fault: fault.describe(),
            placed: self.orders.len() - placed_before,
            refused_while_down: unavailable,
            recovered_after,
            confirmed,
            total,
            emails,
            interrupted,
        });
    }

    async fn inject(&mut self, fault: Fault) {
        match fault {
            Fault::DatabaseStopped(duration) => {
                let outage = DatabaseOutage::begin();
                tokio::time::sleep(duration).await;
                drop(outage);
            }
            Fault::DatabaseRestartedTwice => {
                for _ in 0..2 {
                    let outage = DatabaseOutage::begin();
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    drop(outage);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            Fault::BrokerRestarted => {
                tokio::task::spawn_blocking(|| {
                    restart_broker_app("stop_app");
                    std::thread::sleep(Duration::from_secs(3));
                    restart_broker_app("start_app");
                })
                .await
                .unwrap();
            }
            Fault::WorkerKilledThreeTimes => {
                for _ in 0..3 {
                    self.workers[0].take().unwrap().kill().await;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    self.workers[0] = Some(self.worker(0, &[]).await);
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
            Fault::ApiReplicaKilled => {
                self.apis[1].take().unwrap().kill().await;
                tokio::time::sleep(Duration::from_secs(3)).await;
                self.apis[1] =
                    Some(Self::api(&self.db, &self.prefix, Some(self.api_addresses[1])).await);
            }
            Fault::ProviderTimesOutAfterAuthorizing => {
                // The first worker's provider authorizes every payment, then loses the answer.
                self.first_worker_for_a_while(&["--payment-fault", "timeout-after-authorize"])
                    .await;
            }
            Fault::SmtpDropsAfterAccepting => {
                // The first worker's mail goes through a link that breaks after each acceptance.
                let dropper =
                    DropAfterAccept::in_front_of(socket_address(&crate::support::smtp_url())).await;
                let through = format!("smtp://{}", dropper.address());
                self.first_worker_for_a_while(&["--smtp-url", &through])
                    .await;
                assert!(
                    dropper.dropped() > 0,
                    "the SMTP link broke after an accepted message"
                );
            }
            Fault::WorkerPartitionedFromDatabase(duration) => {
                self.partition.cut();
                tokio::time::sleep(duration).await;
                self.partition.heal();
            }
            Fault::HandlerPanics => {
                let poison =
                    publish_poison(&crate::support::topology(self.prefix.clone()), "panic").await;
                self.poison = Some(poison);
                // Retried with backoff and parked while the orders keep flowing around it.
                let parked_by = Instant::now() + Duration::from_secs(60);
                while parked_count(&self.pool, poison).await == 0 {
                    assert!(
                        Instant::now() < parked_by,
                        "the panicking message was never parked"
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    /// Runs the first worker with `extra` flags for a few seconds of the stream, then as before;
    /// each swap is a clean stop, as a redeploy would do.
    async fn first_worker_for_a_while(&mut self, extra: &[&str]) {
        for flags in [extra, &[]] {
            self.workers[0]
                .take()
                .unwrap()
                .terminate_within(STOP_LIMIT)
                .await;
            self.workers[0] = Some(self.worker(0, flags).await);
            if !flags.is_empty() {
                tokio::time::sleep(Duration::from_secs(8)).await;
            }
        }
    }

    /// Starts the clients: each places one-unit orders through the gateway until `stop`,
    /// retrying each with its `Idempotency-Key` until it is accepted.
    fn clients(&self, stop: &Arc<AtomicBool>) -> Vec<tokio::task::JoinHandle<ClientReport>> {
        self.customers
            .iter()
            .map(|customer| {
                let http = self.http.clone();
                let url = self.url("/api/orders");
                let token = customer.token.clone();
                let stop = stop.clone();
                tokio::spawn(async move {
                    let mut report = ClientReport::default();
                    while !stop.load(Ordering::SeqCst) {
                        place(&http, &url, &token, &mut report).await;
                        tokio::time::sleep(Duration::from_millis(150)).await;
                    }
                    report
                })
            })
            .collect()
    }

    /// Waits until every accepted order is final, every email settled and the outbox empty;
    /// returns how long that took after `since`.
    async fn settle(&self, since: Instant) -> Duration {
        let expected_emails = i64::try_from(self.orders.len() * 2).unwrap();
        loop {
            let row = sqlx::query(
                r#"select
                     (select count(*) from orders
                        where status not in ('confirmed', 'failed', 'cancelled')) as open,
                     (select count(*) from email_deliveries where status in ('sent', 'failed')) as emails,
                     (select count(*) from outbox where published_at is null) as outbox"#,
            )
            .fetch_one(&self.pool)
            .await;
            if let Ok(row) = row {
                let open: i64 = row.get("open");
                let emails: i64 = row.get("emails");
                let outbox: i64 = row.get("outbox");
                if open == 0 && emails >= expected_emails && outbox == 0 {
                    return since.elapsed();
                }
            }
            assert!(
                since.elapsed() < SETTLE_LIMIT,
                "not settled within {SETTLE_LIMIT:?} of the fault healing"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Every invariant, over every order so far; returns (confirmed, total, emails received,
    /// sends interrupted by a killed worker).
    async fn check(&self, fault: &str) -> (i64, i64, usize, usize) {
        let recipients: Vec<String> = self.customers.iter().map(|c| c.email.clone()).collect();
        check(&self.pool, &self.orders, &recipients, fault, self.poison).await
    }

    fn report(&self) {
        let mut table = String::from(
            "| fault | orders placed meanwhile | answers `503`/`502` while down | recovered after | confirmed / accepted | emails received | sends interrupted by a kill |\n|---|---|---|---|---|---|---|\n",
        );
        for o in &self.outcomes {
            let _ = writeln!(
                table,
                "| {} | {} | {} | {:.1} s | {} / {} | {} | {} |",
                o.fault,
                o.placed,
                o.refused_while_down,
                o.recovered_after.as_secs_f64(),
                o.confirmed,
                o.total,
                o.emails,
                o.interrupted
            );
        }
        eprintln!("\n{table}");
        let dir = crate::support::manifest_dir().join("artifacts/chaos");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("report.md"), table).unwrap();
    }

    /// Every process must stop cleanly, and promptly, when asked.
    async fn stop_all(mut self) {
        for api in self.apis.iter_mut().filter_map(Option::take) {
            api.terminate_within(STOP_LIMIT).await;
        }
        for worker in self.workers.iter_mut().filter_map(Option::take) {
            worker.terminate_within(STOP_LIMIT).await;
        }
        self.gateway.stop().await;
        let channel = orion_messaging::Broker::new(crate::support::amqp_url())
            .channel()
            .await
            .unwrap();
        let topology = crate::support::topology(self.prefix.clone());
        orion_messaging::Management::new(&management_url(), &amqp_url())
            .unwrap()
            .remove(&topology.policies())
            .await
            .unwrap();
        topology.delete(&channel).await.unwrap();
    }
}

/// How many times the message `id` was parked.
async fn parked_count(pool: &PgPool, id: Uuid) -> i64 {
    sqlx::query_scalar("select count(*) from dead_letters where message_id = $1")
        .bind(id.to_string())
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Places one order, retrying it with the same key through outages; records the outcome.
async fn place(http: &reqwest::Client, url: &str, token: &str, report: &mut ClientReport) {
    let key = Uuid::new_v4().to_string();
    let started = Instant::now();
    while started.elapsed() < CLIENT_PATIENCE {
        let sent = http
            .post(url)
            .bearer_auth(token)
            .header("idempotency-key", &key)
            .json(&json!({"items": [{"sku": SKU, "quantity": 1}]}))
            .send()
            .await;
        let Ok(response) = sent else {
            tokio::time::sleep(Duration::from_millis(300)).await;
            continue;
        };
        match response.status().as_u16() {
            200 | 202 => {
                let order: Value = response.json().await.unwrap();
                report
                    .accepted
                    .push(order["id"].as_str().unwrap().to_owned());
                return;
            }
            // Down, or a replica away: the key makes the retry safe.
            502..=504 | 429 => {
                report.unavailable += 1;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            status => {
                let body = response.text().await.unwrap_or_default();
                report.unexpected.push(format!("{status}: {body}"));
                return;
            }
        }
    }
    report.unexpected.push(format!(
        "order {key} not accepted within {CLIENT_PATIENCE:?}"
    ));
}

async fn check(
    pool: &PgPool,
    orders: &[String],
    recipients: &[String],
    fault: &str,
    poison: Option<Uuid>,
) -> (i64, i64, usize, usize) {
    let total = i64::try_from(orders.len()).unwrap();
    let statuses = counts(pool, "select status, count(*) from orders group by status").await;
    let confirmed = statuses.get("confirmed").copied().unwrap_or(0);
    assert_eq!(
        statuses.values().sum::<i64>(),
        total,
        "after {fault}: one order per accepted placement, no more: {statuses:?}"
    );
    assert_eq!(
        confirmed, total,
        "after {fault}: every order confirmed: {statuses:?}"
    );

    let stock = sqlx::query("select available, reserved from inventory_items where sku = $1")
        .bind(SKU)
        .fetch_one(pool)
        .await
        .unwrap();
    let (available, reserved): (i32, i32) = (stock.get(0), stock.get(1));
    assert_eq!(
        i64::from(reserved),
        confirmed,
        "after {fault}: exactly the confirmed orders hold stock"
    );
    assert_eq!(
        i64::from(available) + i64::from(reserved),
        STOCK,
        "after {fault}: stock conserved"
    );
    let held: i64 = sqlx::query_scalar(
        "select coalesce(sum(quantity), 0)::int8 from inventory_reservations where sku = $1 and status = 'held'",
    )
    .bind(SKU)
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(
        held, confirmed,
        "after {fault}: reservations agree with the counters"
    );

    let payments = counts(
        pool,
        "select status, count(*) from payments group by status",
    )
    .await;
    // Authorizations equal voids plus confirmed orders: every order here is confirmed, so every
    // authorization is held by one, none voided, none left without an order.
    let authorized = payments.get("authorized").copied().unwrap_or(0);
    let voided = payments.get("voided").copied().unwrap_or(0);
    assert_eq!(
        (authorized, voided),
        (confirmed, 0),
        "after {fault}: one authorization per confirmed order: {payments:?}"
    );

    let parked: i64 = sqlx::query_scalar(
        "select count(*) from dead_letters where message_id is distinct from $1",
    )
    .bind(poison.map(|id| id.to_string()))
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(
        parked, 0,
        "after {fault}: nothing parked but the poison message"
    );
    if let Some(poison) = poison {
        assert_eq!(
            parked_count(pool, poison).await,
            1,
            "after {fault}: the poison message parked once"
        );
    }
    let unpublished: i64 =
        sqlx::query_scalar("select count(*) from outbox where published_at is null")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(unpublished, 0, "after {fault}: the outbox is drained");
    // What the customers actually got: one "received" and one "confirmed" per order. The one
    // exception Orion allows is a send interrupted by a killed worker: whether the SMTP server
    // took it is unknown, so it is recorded failed and never sent again (at most one, perhaps
    // none). Every such delivery is counted in the report.
    let deliveries: HashMap<(String, String), (String, Option<String>)> =
        sqlx::query("select order_id::text, kind, status, last_error from email_deliveries")
            .fetch_all(pool)
            .await
            .unwrap()
            .into_iter()
            .map(|r| ((r.get(0), r.get(1)), (r.get(2), r.get(3))))
            .collect();
    let mailbox = Mailbox::new();
    let mut received = 0;
    let mut per_subject: HashMap<String, usize> = HashMap::new();
    for recipient in recipients {
        for message in mailbox.to(recipient).await {
            received += 1;
            *per_subject
                .entry(message["subject"].as_str().unwrap_or_default().to_owned())
                .or_default() += 1;
        }
    }
    let mut interrupted = 0;
    for id in orders {
        let reference = id.replace('-', "")[22..].to_uppercase();
        for (kind, subject) in [
            (
                "order_received",
                format!("We received your order {reference}"),
            ),
            (
                "order_confirmed",
                format!("Your order {reference} is confirmed"),
            ),
        ] {
            let got = per_subject.get(&subject).copied().unwrap_or(0);
            let (status, error) = deliveries
                .get(&(id.clone(), kind.to_owned()))
                .unwrap_or_else(|| panic!("after {fault}: no {kind} delivery for {id}"));
            match status.as_str() {
                "sent" => assert_eq!(
                    got, 1,
                    "after {fault}: \"{subject}\" reached its customer once"
                ),
                "failed"
                    if error
                        .as_deref()
                        .is_some_and(|e| e.starts_with("the worker stopped while sending")) =>
                {
                    interrupted += 1;
                    assert!(got <= 1, "after {fault}: \"{subject}\" sent twice");
                }
                other => panic!("after {fault}: {kind} of {id} is {other}: {error:?}"),
            }
        }
    }
    (confirmed, total, received, interrupted)
}

/// The host and port a service URL points at (PostgreSQL's port when it names none).
fn socket_address(url: &str) -> SocketAddr {
    let url = url::Url::parse(url).expect("a service URL");
    format!(
        "{}:{}",
        url.host_str().expect("a host"),
        url.port().unwrap_or(5432)
    )
    .parse()
    .expect("an IP address and port")
}

/// The database URL `db`, reached through `partition` instead.
fn through(db: &str, partition: &Partition) -> String {
    let mut url = url::Url::parse(db).expect("a database URL");
    url.set_port(Some(partition.address().port()))
        .expect("a URL with a host");
    url.to_string()
}

/// A `select key, count(*) … group by key` as a map.
async fn counts(pool: &PgPool, sql: &'static str) -> HashMap<String, i64> {
    sqlx::query(sql)
        .fetch_all(pool)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}
