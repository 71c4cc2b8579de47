//! A host of the test's own, for network partitions: a Linux network
//! namespace joined to this machine by one veth pair per link (the broker,
//! the store, the mail server: each its own /30). A process started with
//! [`Host::command`] reaches the machine only through those links, at
//! [`Link::machine`]; taking a link down ([`Host::cut`]) drops what crosses
//! it without a word to either end, as a switch or a firewall does, until
//! [`Host::heal`]. The machine's services listen on loopback only, so the
//! servers such a test uses are its own, listening on every address. The
//! namespace and its links are removed when the host is dropped. Needs
//! root and `ip` (iproute2).

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU8, Ordering};

/// One veth pair: the machine's end and the host's.
pub struct Link {
    machine_end: String,
    /// The machine's address on this link: where the host reaches it.
    pub machine: Ipv4Addr,
    /// The host's address on this link.
    pub host: Ipv4Addr,
}

pub struct Host {
    name: String,
    pub links: Vec<Link>,
}

/// Runs `ip` with `args`; fails the test with its error when it fails.
fn ip(args: &[&str]) {
    let output = Command::new("ip")
        .args(args)
        .output()
        .expect("ip (iproute2)");
    assert!(
        output.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

impl Host {
    /// A namespace with `links` links, each up.
    pub fn new(links: usize) -> Self {
        static NEXT: AtomicU8 = AtomicU8::new(0);
        let pid = std::process::id();
        // 10.<200..249>.<n>.0/30: the second octet from the process, the
        // third counts the links this process made.
        let network = 200 + (pid % 50) as u8;
        let first = NEXT.fetch_add(links as u8, Ordering::Relaxed);
        let name = format!("relais-{pid}-{first}");
        ip(&["netns", "add", &name]);
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        let links = (0..links)
            .map(|n| {
                let number = first.wrapping_add(n as u8);
                let machine_end = format!("rl{}m{number}", pid % 100_000);
                let host_end = format!("rl{}h{number}", pid % 100_000);
                let machine = Ipv4Addr::new(10, network, number, 1);
                let host = Ipv4Addr::new(10, network, number, 2);
                ip(&[
                    "link",
                    "add",
                    &machine_end,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    &host_end,
                ]);
                ip(&["link", "set", &host_end, "netns", &name]);
                ip(&["addr", "add", &format!("{machine}/30"), "dev", &machine_end]);
                ip(&["link", "set", &machine_end, "up"]);
                ip(&[
                    "-n",
                    &name,
                    "addr",
                    "add",
                    &format!("{host}/30"),
                    "dev",
                    &host_end,
                ]);
                ip(&["-n", &name, "link", "set", &host_end, "up"]);
                Link {
                    machine_end,
                    machine,
                    host,
                }
            })
            .collect();
        Self { name, links }
    }

    /// `program` to be run inside the namespace (`ip netns exec` execs it:
    /// the child's pid is the program's, and signals reach it).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name]).arg(program);
        command
    }

    /// Takes link `n` down: nothing crosses it either way.
    pub fn cut(&self, n: usize) {
        ip(&["link", "set", &self.links[n].machine_end, "down"]);
    }

    /// Brings link `n` up again.
    pub fn heal(&self, n: usize) {
        ip(&["link", "set", &self.links[n].machine_end, "up"]);
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        // Removing the namespace removes its ends of the pairs, and with
        // them the machine's ends.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        for link in &self.links {
            let _ = Command::new("ip")
                .args(["link", "del", &link.machine_end])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}
