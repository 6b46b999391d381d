//! A three-node JetStream cluster of real `nats-server` processes on loopback,
//! started with the settings of `deploy/nats/cluster.conf` given as flags (each
//! node its own name, client port, route port and store).

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::nats_server::{free_port, is_listening};

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
    pub fn start(size: usize) -> NatsCluster {
        let binary = super::nats_binary();
        let store = tempfile::tempdir().expect("temp dir");
        let ports: Vec<(u16, u16)> = (0..size)
            .map(|_| (free_port().unwrap(), free_port().unwrap()))
            .collect();
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
                .arg(store.path().join(&name))
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
        for node in &nodes {
            let addr: SocketAddr = ([127, 0, 0, 1], node.port).into();
            while !is_listening(&addr) {
                assert!(Instant::now() < deadline, "{} did not start", node.name);
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        NatsCluster {
            nodes,
            _store: store,
        }
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

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
