//! A three-node JetStream cluster of real `nats-server` processes on loopback,
//! started with the settings of `deploy/nats/cluster.conf` given as flags (each
//! node its own name, client port, route port and store).

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::nats_server::is_listening;

/// One node of the cluster.
pub struct Node {
    pub name: String,
    pub port: u16,
    child: Option<Child>,
}

/// Nodes `nats-1` … `nats-N`, killed when dropped.
pub struct NatsCluster {
    pub nodes: Vec<Node>,
    _store: tempfile::TempDir,
}

impl NatsCluster {
    /// Starts `size` nodes and waits until each accepts clients.
    ///
    /// Every node must know the others' route ports before it starts (a
    /// JetStream cluster refuses to start without routes), so the ports are
    /// chosen free beforehand; should another process take one first, a node
    /// fails to start and the whole cluster is started again on new ports.
    pub fn start(size: usize) -> NatsCluster {
        let store = tempfile::tempdir().expect("temp dir");
        for attempt in 1..=3 {
            match Self::try_start(size, &store.path().join(format!("attempt-{attempt}"))) {
                Ok(nodes) => {
                    return NatsCluster {
                        nodes,
                        _store: store,
                    };
                }
                Err(e) => {
                    eprintln!("testkit: NATS cluster attempt {attempt}: {e}; trying new ports")
                }
            }
        }
        panic!("the NATS cluster did not start in 3 attempts");
    }

    fn try_start(size: usize, store: &std::path::Path) -> Result<Vec<Node>, String> {
        let binary = super::nats_binary();
        // Held together while choosing, so no two nodes get the same port.
        let held: Vec<std::net::TcpListener> = (0..size * 2)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("a free port"))
            .collect();
        let free: Vec<u16> = held
            .iter()
            .map(|l| l.local_addr().expect("local addr").port())
            .collect();
        drop(held);
        let ports: Vec<(u16, u16)> = free.chunks(2).map(|p| (p[0], p[1])).collect();
        let routes = ports
            .iter()
            .map(|(_, route)| format!("nats://127.0.0.1:{route}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut nodes = Vec::new();
        for (i, (port, route)) in ports.iter().enumerate() {
            let name = format!("nats-{}", i + 1);
            let child = Command::new(&binary)
                .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-n", &name])
                .args(["-js", "-sd"])
                .arg(store.join(&name))
                .args(["--cluster_name", "selfhelp"])
                .args(["--cluster", &format!("nats://127.0.0.1:{route}")])
                .args(["--routes", &routes])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("starting nats-server");
            nodes.push(Node {
                name,
                port: *port,
                child: Some(child),
            });
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        for i in 0..nodes.len() {
            let addr: SocketAddr = ([127, 0, 0, 1], nodes[i].port).into();
            while !is_listening(&addr) {
                let exited = nodes[i]
                    .child
                    .as_mut()
                    .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))));
                if exited || Instant::now() > deadline {
                    let name = nodes[i].name.clone();
                    kill_all(&mut nodes);
                    return Err(format!("{name} did not start (a port taken?)"));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(nodes)
    }

    /// Every node's client URL, comma-separated (what `nats.url` takes).
    pub fn url(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("nats://127.0.0.1:{}", n.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// SIGKILLs node `name`, as a lost machine would.
    pub fn kill(&mut self, name: &str) {
        let node = self
            .nodes
            .iter_mut()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"));
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn kill_all(nodes: &mut [Node]) {
    for node in nodes {
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        kill_all(&mut self.nodes);
    }
}
