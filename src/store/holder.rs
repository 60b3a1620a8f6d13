//! Who holds a lease (`cinematch_leases`): the host, process and a random
//! token, and whether that process is known to be gone, which lets a lease
//! of a process that died on this machine be taken over at once instead of
//! waited out. The pipeline lease and the ingestion leases use it.

/// Who holds a lease: host, process and a random token, plus what tells
/// whether a process id on this host is comparable (boot and pid
/// namespace), stored as `host/pid/node/token`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    host: String,
    pid: u32,
    /// Boot id and pid namespace; empty where unknown (then no liveness check).
    node: String,
    token: String,
}

impl Holder {
    /// This process, with a fresh token.
    pub fn this_process() -> Holder {
        Holder {
            host: hostname(),
            pid: std::process::id(),
            node: node_id(),
            token: random_token(),
        }
    }

    /// The holder a lease row names; `None` for a holder string of another form.
    pub fn parse(s: &str) -> Option<Holder> {
        let mut parts = s.rsplitn(4, '/');
        let token = parts.next()?.to_string();
        let node = parts.next()?.to_string();
        let pid = parts.next()?.parse().ok()?;
        let host = parts.next()?.to_string();
        Some(Holder {
            host,
            pid,
            node,
            token,
        })
    }

    /// Whether this holder's process is known to be gone: it ran on this
    /// machine, in this boot and pid namespace, and its pid no longer
    /// exists. Anything uncertain (another host, another container, a pid
    /// reused) answers no, and the lease is waited out instead.
    pub fn is_gone(&self) -> bool {
        let me = Holder::this_process();
        if self.node.is_empty() || self.host != me.host || self.node != me.node {
            return false;
        }
        !pid_alive(self.pid)
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}/{}", self.host, self.pid, self.node, self.token)
    }
}

/// Tells two holders in one process apart (std's hasher keys are random).
fn random_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    format!("{:08x}", h.finish() as u32)
}

fn hostname() -> String {
    #[cfg(unix)]
    {
        let mut buf = [0u8; 256];
        // SAFETY: the buffer is valid for its length; gethostname writes a
        // NUL-terminated name into it (truncated if longer).
        let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
        if rc == 0 {
            let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
            let name = String::from_utf8_lossy(&buf[..end]).replace('/', "_");
            if !name.is_empty() {
                return name;
            }
        }
    }
    "unknown-host".to_string()
}

/// The boot id and pid namespace of this process (Linux), so a pid is only
/// ever compared within the same kernel and namespace.
fn node_id() -> String {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().chars().take(8).collect::<String>())
        .unwrap_or_default();
    let ns = std::fs::read_link("/proc/self/ns/pid")
        .ok()
        .and_then(|p| {
            let s = p.to_string_lossy().into_owned();
            let digits: String = s.chars().filter(char::is_ascii_digit).collect();
            (!digits.is_empty()).then_some(digits)
        })
        .unwrap_or_default();
    if boot.is_empty() || ns.is_empty() {
        String::new()
    } else {
        format!("{boot}-{ns}")
    }
}

fn pid_alive(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            return true;
        };
        // SAFETY: signal 0 only checks that the process exists.
        let rc = unsafe { libc::kill(pid, 0) };
        rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holder_round_trips_and_knows_itself_alive() {
        let me = Holder::this_process();
        let parsed = Holder::parse(&me.to_string()).unwrap();
        assert_eq!(parsed, me);
        assert!(!me.is_gone(), "this process is alive");
        assert_eq!(Holder::parse("not a holder"), None);
    }

    #[test]
    #[cfg_attr(
        not(node_id),
        ignore = "no boot id or pid namespace id on this machine (build.rs): a dead holder cannot be told apart"
    )]
    fn a_dead_local_holder_is_gone_a_remote_one_never() {
        // A child that has exited and been reaped: its pid is free.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let me = Holder::this_process();
        assert!(
            !me.node.is_empty(),
            "build.rs found a boot id and a pid namespace, but this process has no node id"
        );
        let dead = Holder { pid, ..me.clone() };
        assert!(dead.is_gone());
        let elsewhere = Holder {
            host: format!("{}-other", me.host),
            ..dead.clone()
        };
        assert!(!elsewhere.is_gone(), "another host: wait for the expiry");
        let other_ns = Holder {
            node: "x-1".into(),
            ..dead
        };
        assert!(
            !other_ns.is_gone(),
            "another container: wait for the expiry"
        );
    }
}
