//! Real faults for the tests that prove Orion survives them: the shared PostgreSQL stopped, the
//! shared broker restarted, a network path that silently loses every packet. Tests that use the
//! first two run alone, after every other test.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Stops the local PostgreSQL cluster, and starts it again when dropped (also when the test
/// fails), so the rest of the suite finds it up.
pub(crate) struct DatabaseOutage {
    cluster: (String, String),
}

impl DatabaseOutage {
    pub(crate) fn begin() -> DatabaseOutage {
        let listing = std::process::Command::new("pg_lsclusters")
            .arg("--no-header")
            .output()
            .expect("pg_lsclusters runs");
        let listing = String::from_utf8_lossy(&listing.stdout);
        let mut fields = listing
            .lines()
            .find(|line| line.contains("5432"))
            .expect("a cluster on port 5432")
            .split_whitespace();
        let cluster = (
            fields.next().unwrap().to_owned(),
            fields.next().unwrap().to_owned(),
        );
        let outage = DatabaseOutage { cluster };
        outage.ctl("stop");
        outage
    }

    fn ctl(&self, action: &str) {
        let mut command = std::process::Command::new("pg_ctlcluster");
        command.args([
            "--skip-systemctl-redirect",
            &self.cluster.0,
            &self.cluster.1,
            action,
        ]);
        if action == "stop" {
            // Connections are cut at once, as a crash or a failover does.
            command.args(["--", "-m", "fast"]);
        }
        let status = command.status().expect("pg_ctlcluster runs");
        assert!(status.success(), "pg_ctlcluster {action}");
    }
}

impl Drop for DatabaseOutage {
    fn drop(&mut self) {
        self.ctl("start");
    }
}

/// Stops or starts the node's RabbitMQ application (`stop_app`, `start_app`); every other test
/// on the broker would notice, so the tests that do run alone.
pub(crate) fn restart_broker_app(action: &str) {
    let status = std::process::Command::new("rabbitmqctl")
        .arg(action)
        .status()
        .expect("rabbitmqctl is installed");
    assert!(status.success(), "rabbitmqctl {action}");
}

/// A TCP proxy in front of `upstream` that can be cut: while cut, nothing passes either way and
/// new connections are taken but never answered — packets silently lost, as in a network
/// partition, not connections politely refused. When the cut heals, what was waiting flows on,
/// as TCP retransmission would deliver it.
pub(crate) struct Partition {
    address: SocketAddr,
    cut: Arc<AtomicBool>,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
}

impl Partition {
    pub(crate) async fn in_front_of(upstream: SocketAddr) -> Partition {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let address = listener.local_addr().expect("local address");
        let cut = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (flag, count) = (cut.clone(), accepted.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let flag = flag.clone();
                tokio::spawn(async move {
                    wait_while_cut(&flag).await;
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    tokio::join!(
                        pump(client_read, server_write, flag.clone()),
                        pump(server_read, client_write, flag)
                    );
                });
            }
        });
        Partition {
            address,
            cut,
            accepted,
        }
    }

    /// How many connections it has taken so far, cut or not.
    pub(crate) fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Where to connect instead of the upstream.
    pub(crate) fn address(&self) -> SocketAddr {
        self.address
    }

    pub(crate) fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
    }

    pub(crate) fn heal(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

/// The TCP sockets on this machine towards `127.0.0.1:port` that some process still holds open,
/// by state (`ESTABLISHED`, `SYN_SENT`, or the kernel's hex code for the others), from the
/// kernel's table: a socket no descriptor refers to any more shows inode 0 while it winds down.
pub(crate) fn open_sockets_towards(port: u16) -> Vec<String> {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp is readable");
    let remote = format!("0100007F:{port:04X}");
    table
        .lines()
        .skip(1)
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .filter(|fields| fields.get(2) == Some(&remote.as_str()))
        .filter(|fields| fields.get(9).is_some_and(|inode| *inode != "0"))
        .map(|fields| match fields[3] {
            "01" => "ESTABLISHED".to_owned(),
            "02" => "SYN_SENT".to_owned(),
            other => other.to_owned(),
        })
        .collect()
}

async fn wait_while_cut(cut: &AtomicBool) {
    while cut.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Copies one direction; holds what it read while the path is cut.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    cut: Arc<AtomicBool>,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        wait_while_cut(&cut).await;
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        wait_while_cut(&cut).await;
        if to.write_all(&buffer[..read]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// A TCP proxy in front of an SMTP server that drops each connection right after the server
/// accepted a message (its reply to the end of the message data), as a server that crashes just
/// then, or a link that breaks, would.
pub(crate) struct DropAfterAccept {
    address: SocketAddr,
    dropped: Arc<std::sync::atomic::AtomicUsize>,
}

impl DropAfterAccept {
    pub(crate) async fn in_front_of(upstream: SocketAddr) -> DropAfterAccept {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let address = listener.local_addr().expect("local address");
        let dropped = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = dropped.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let count = count.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (mut client_read, client_write) = client.into_split();
                    let (server_read, mut server_write) = server.into_split();
                    let message_sent = Arc::new(AtomicBool::new(false));
                    let sent = message_sent.clone();
                    // Client to server: note when a message's data has ended ("\r\n.\r\n").
                    let upstream_pump = async move {
                        let mut buffer = vec![0u8; 16 * 1024];
                        let mut tail: Vec<u8> = Vec::new();
                        loop {
                            let read = match client_read.read(&mut buffer).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            tail.extend_from_slice(&buffer[..read]);
                            if tail.windows(5).any(|w| w == b"\r\n.\r\n") {
                                sent.store(true, Ordering::SeqCst);
                            }
                            let keep = tail.len().saturating_sub(4);
                            tail.drain(..keep);
                            if server_write.write_all(&buffer[..read]).await.is_err() {
                                break;
                            }
                        }
                    };
                    // Server to client: once the server accepted the message, pass its reply on
                    // and hang up.
                    let downstream_pump = async move {
                        let mut server_read = server_read;
                        let mut client_write = client_write;
                        let mut buffer = vec![0u8; 16 * 1024];
                        loop {
                            let read = match server_read.read(&mut buffer).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            if client_write.write_all(&buffer[..read]).await.is_err() {
                                break;
                            }
                            if message_sent.load(Ordering::SeqCst)
                                && buffer[..read].starts_with(b"250")
                            {
                                count.fetch_add(1, Ordering::SeqCst);
                                break;
                            }
                        }
                        let _ = client_write.shutdown().await;
                    };
                    tokio::select! {
                        () = upstream_pump => {}
                        () = downstream_pump => {}
                    }
                });
            }
        });
        DropAfterAccept { address, dropped }
    }

    pub(crate) fn address(&self) -> SocketAddr {
        self.address
    }

    /// Connections dropped right after an accepted message.
    pub(crate) fn dropped(&self) -> usize {
        self.dropped.load(Ordering::SeqCst)
    }
}

/// Sends the saga queue of `topology` an event, about an order that does not exist, whose
/// handler plays `fault` (`panic` or `crash`) in a worker with fault injection on; returns the
/// message's id.
pub(crate) async fn publish_poison(
    topology: &orion_messaging::Topology,
    fault: &str,
) -> uuid::Uuid {
    use orion_messaging::{Broker, Envelope, FAULT_HEADER, Publisher, WorkQueue};
    let envelope = Envelope {
        specversion: Envelope::SPEC_VERSION.to_owned(),
        id: uuid::Uuid::now_v7(),
        kind: "order.cancelled".to_owned(),
        source: "orion-tests".to_owned(),
        time: time::OffsetDateTime::now_utc(),
        subject: uuid::Uuid::now_v7().to_string(),
        correlation_id: None,
        causation_id: None,
        traceparent: None,
        datacontenttype: "application/json".to_owned(),
        data: serde_json::json!({"order_id": uuid::Uuid::now_v7(), "reason": "injected fault"}),
    };
    let mut headers = lapin::types::FieldTable::default();
    headers.insert(
        FAULT_HEADER.into(),
        lapin::types::AMQPValue::LongString(fault.into()),
    );
    Publisher::new(Arc::new(Broker::new(super::amqp_url())), topology.clone())
        .send_to_queue(
            &topology.queue(WorkQueue::Saga),
            &envelope.to_bytes().expect("an envelope encodes"),
            envelope.properties().with_headers(headers),
        )
        .await
        .expect("the broker confirms the poison message");
    envelope.id
}
