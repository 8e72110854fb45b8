//! The shared harness: Orion's processes started in-process on port 0, each against its own
//! fresh database, and stopped through the same graceful path as SIGTERM.

mod api;
mod app;
mod faults;
mod gateway;
mod hub;
mod otlp;
mod process;
mod receiver;
mod worker;

pub(crate) use api::{
    ADMIN, CUSTOMER, Customer, JWT_SECRET, REGISTERED_PASSWORD, TestApi, amqp_url, api_args,
    expect_problem, sign_in, topology, with_token,
};
pub(crate) use app::{Running, database_url, signal};
pub(crate) use faults::{
    DatabaseOutage, DropAfterAccept, Partition, open_sockets_towards, publish_poison,
    restart_broker_app,
};
pub(crate) use gateway::{gateway_args, spawn_gateway};
pub(crate) use hub::{Connection, HubProbe, NodeScript, js_dir, manifest_dir};
pub(crate) use otlp::{OtlpReceiver, ReceivedSpan};
pub(crate) use process::{Launch, OrionProcess, binary as binary_path};
pub(crate) use receiver::{Answer, Received, WebhookReceiver};
pub(crate) use worker::{
    Mailbox, TestWorker, WorkerProcess, management_url, smtp_url, worker_args,
};

/// The Python that has the pinned packages of `tests/python/requirements.txt`.
pub(crate) fn python() -> std::path::PathBuf {
    std::env::var_os("ORION_TEST_PYTHON")
        .map(std::path::PathBuf::from)
        .expect(
            "ORION_TEST_PYTHON is not set: run `cargo xtask test`, which installs \
             tests/python/requirements.txt into .tools/venv and names that venv's python",
        )
}
