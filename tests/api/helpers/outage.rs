//! A TCP relay in front of a real service, which a test can cut and restore to simulate an outage
//! of that service without disturbing the tests running beside it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct Outage {
    pub addr: SocketAddr,
    down: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
    /// Relayed connections still open.
    open: Arc<AtomicUsize>,
}

impl Outage {
    /// Relays 127.0.0.1:<free port> to `target` until cut.
    pub async fn relay_to(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let addr = listener.local_addr().unwrap();
        let down = Arc::new(AtomicBool::new(false));
        let (cut, cuts) = watch::channel(0u64);
        let accepting = down.clone();
        let open = Arc::new(AtomicUsize::new(0));
        let counting = open.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if accepting.load(Ordering::SeqCst) {
                    continue; // dropped: the service looks unreachable
                }
                let mut cuts = cuts.clone();
                cuts.borrow_and_update(); // only cuts after this connection opened end it
                let open = counting.clone();
                open.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(target).await {
                        tokio::select! {
                            biased;
                            _ = cuts.changed() => {}
                            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        }
                    }
                    open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Self {
            addr,
            down,
            cut,
            open,
        }
    }

    /// Drops every open connection and refuses new ones; returns once every relayed connection
    /// is closed, so the next request cannot slip through one that has not noticed the cut yet.
    pub async fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
        let started = Instant::now();
        while self.open.load(Ordering::SeqCst) > 0 && started.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}
