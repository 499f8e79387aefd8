//! A private tansu broker on a free port, reached through a relay that a test may cut and restore
//! (see [`super::outage`]) without disturbing the tests that share the main broker.
//!
//! The outage is a network cut, not a broker restart: a real broker comes back with its topics,
//! offsets and groups. (tansu's in-memory storage comes back empty, and its first metadata answers
//! after such a restart carry a topic entry without a name, which crashes librdkafka 2.12 in
//! `rd_kafka_metadata_cache_find` (strcmp on NULL): seen in a core dump of this test.)

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::outage::Outage;

pub struct PrivateBroker {
    /// Where clients connect: the relay, which is also the address the broker advertises.
    pub relay: Outage,
    child: Child,
}

impl PrivateBroker {
    pub async fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let relay = Outage::relay_to(SocketAddr::from(([127, 0, 0, 1], port))).await;
        let home = std::env::var("HOME").unwrap_or_default();
        let tansu =
            std::env::var("TANSU_BIN").unwrap_or_else(|_| format!("{home}/.cargo/bin/tansu"));
        let child = Command::new(tansu)
            .args([
                "broker",
                "--storage-engine",
                "memory://tansu/",
                "--listener-url",
                &format!("tcp://127.0.0.1:{port}"),
                "--advertised-listener-url",
                &format!("tcp://{}", relay.addr),
            ])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tansu is installed (scripts/services start installs it)");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "tansu did not listen on {port}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self { relay, child }
    }

    /// The bootstrap address for clients (through the relay).
    pub fn address(&self) -> String {
        self.relay.addr.to_string()
    }

    /// The broker becomes unreachable: open connections drop, new ones fail.
    pub async fn cut(&self) {
        self.relay.cut().await;
    }

    /// The broker is reachable again, with everything it had.
    pub fn restore(&self) {
        self.relay.restore();
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
