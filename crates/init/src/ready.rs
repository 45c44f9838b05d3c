//! `org.slipway.ready`: is a service ready?
//!
//! `file:PATH` is looked up inside the container's root; `tcp:PORT` is a
//! listening socket in the container's network namespace, read from
//! `/proc/<pid>/net/tcp` and `tcp6`, which show the namespace of `<pid>`.

use std::path::{Path, PathBuf};

use slipway_contract::annotations::Ready;

use crate::sys::Sys;

/// TCP state `LISTEN` in `/proc/net/tcp`.
const TCP_LISTEN: &str = "0A";

/// Whether `/proc/net/tcp`-format text has a socket listening on `port`.
pub fn tcp_listening(table: &str, port: u16) -> bool {
    table.lines().skip(1).any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(local), Some(state)) = (fields.get(1), fields.get(3)) else {
            return false;
        };
        let local_port = local
            .rsplit_once(':')
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
        *state == TCP_LISTEN && local_port == Some(port)
    })
}

/// Whether the condition holds for a container whose init is `pid` and
/// whose root is `rootfs`.
pub fn is_ready(sys: &dyn Sys, ready: &Ready, pid: i32, rootfs: &Path) -> bool {
    match ready {
        Ready::File(path) => {
            let inside = PathBuf::from(path.trim_start_matches('/'));
            sys.exists(&rootfs.join(inside))
        }
        Ready::Tcp(port) => ["tcp", "tcp6"].iter().any(|table| {
            sys.read(&PathBuf::from(format!("/proc/{pid}/net/{table}")))
                .map(|t| tcp_listening(&String::from_utf8_lossy(&t), *port))
                .unwrap_or(false)
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fake::FakeSys;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1234 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 1235 1 0000000000000000 100 0 0 10 0
";

    #[test]
    fn tcp_table() {
        assert!(tcp_listening(TCP, 80));
        assert!(!tcp_listening(TCP, 8080), "established, not listening");
        assert!(!tcp_listening(TCP, 22));
        assert!(!tcp_listening("", 80));
    }

    #[test]
    fn conditions() {
        let sys = FakeSys::new();
        let rootfs = Path::new("/containers/services/web/rootfs");
        assert!(!is_ready(&sys, &Ready::File("/run/ok".into()), 5, rootfs));
        sys.add_file("/containers/services/web/rootfs/run/ok", "");
        assert!(is_ready(&sys, &Ready::File("/run/ok".into()), 5, rootfs));
        assert!(!is_ready(&sys, &Ready::Tcp(80), 5, rootfs));
        sys.add_file("/proc/5/net/tcp6", TCP);
        assert!(is_ready(&sys, &Ready::Tcp(80), 5, rootfs));
    }
}
