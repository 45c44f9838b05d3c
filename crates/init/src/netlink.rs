//! Hand-written rtnetlink: bring a link up, create veth/dummy/bridge links,
//! move a link into another process's network namespace.
//!
//! Why by hand: those are four small messages. The `rtnetlink` crate needs
//! tokio, which the init must not carry; `neli` would add a generic netlink
//! framework for the same few bytes. The messages are built by pure
//! functions, tested byte for byte, and sent over a `nix` socket.

use std::io;

use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, recv, send,
    socket,
};

use crate::sys::LinkOp;

const RTM_NEWLINK: u16 = 16;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const IFLA_IFNAME: u16 = 3;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_PID: u16 = 19;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;
const NLA_F_NESTED: u16 = 0x8000;
const IFF_UP: u32 = 0x1;

fn align4(len: usize) -> usize {
    (len + 3) & !3
}

/// A netlink attribute: header, payload, padding to 4 bytes.
fn nla(kind: u16, payload: &[u8]) -> Vec<u8> {
    let len = 4 + payload.len();
    let mut out = Vec::with_capacity(align4(len));
    out.extend_from_slice(&(len as u16).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(payload);
    out.resize(align4(len), 0);
    out
}

fn name_attr(name: &str) -> Vec<u8> {
    let mut bytes = name.as_bytes().to_vec();
    bytes.push(0);
    nla(IFLA_IFNAME, &bytes)
}

/// `struct ifinfomsg`: family, pad, type, index, flags, change.
fn ifinfomsg(index: i32, flags: u32, change: u32) -> Vec<u8> {
    let mut out = vec![0u8; 4];
    out.extend_from_slice(&index.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&change.to_ne_bytes());
    out
}

/// A whole `RTM_NEWLINK` message with its `nlmsghdr`.
fn message(flags: u16, seq: u32, body: &[u8]) -> Vec<u8> {
    let len = 16 + body.len();
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&(len as u32).to_ne_bytes());
    out.extend_from_slice(&RTM_NEWLINK.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(body);
    out
}

/// Set `IFF_UP` on link `name`. The kernel finds the link by its name
/// when the index is 0, which spares looking the index up first (a socket
/// and an ioctl, ~3 ms under emulation).
pub fn up_message(name: &str, seq: u32) -> Vec<u8> {
    let mut body = ifinfomsg(0, IFF_UP, IFF_UP);
    body.extend(name_attr(name));
    message(NLM_F_REQUEST | NLM_F_ACK, seq, &body)
}

/// Create a link `name` of `kind`; a veth gets its `peer`.
pub fn create_message(name: &str, kind: &str, peer: Option<&str>, seq: u32) -> Vec<u8> {
    let mut info = nla(IFLA_INFO_KIND, kind.as_bytes());
    if let Some(peer) = peer {
        let mut peer_body = ifinfomsg(0, 0, 0);
        peer_body.extend(name_attr(peer));
        let data = nla(VETH_INFO_PEER, &peer_body);
        info.extend(nla(IFLA_INFO_DATA | NLA_F_NESTED, &data));
    }
    let mut body = ifinfomsg(0, 0, 0);
    body.extend(name_attr(name));
    body.extend(nla(IFLA_LINKINFO | NLA_F_NESTED, &info));
    message(
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        seq,
        &body,
    )
}

/// Move link `index` into the network namespace of `pid`.
pub fn move_message(index: i32, pid: i32, seq: u32) -> Vec<u8> {
    let mut body = ifinfomsg(index, 0, 0);
    body.extend(nla(IFLA_NET_NS_PID, &(pid as u32).to_ne_bytes()));
    message(NLM_F_REQUEST | NLM_F_ACK, seq, &body)
}

/// The errno in an `NLMSG_ERROR` reply (0 is an acknowledgement).
pub fn parse_ack(reply: &[u8]) -> io::Result<i32> {
    if reply.len() < 20 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "short netlink reply",
        ));
    }
    let kind = u16::from_ne_bytes([reply[4], reply[5]]);
    if kind != NLMSG_ERROR {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected netlink message type {kind}"),
        ));
    }
    let code = i32::from_ne_bytes([reply[16], reply[17], reply[18], reply[19]]);
    Ok(-code)
}

fn index_of(name: &str) -> io::Result<i32> {
    nix::net::if_::if_nametoindex(name)
        .map(|i| i as i32)
        .map_err(|e| io::Error::other(format!("no network interface {name}: {e}")))
}

/// Send one operation and wait for its acknowledgement.
pub fn apply(op: &LinkOp) -> io::Result<()> {
    let msg = match op {
        LinkOp::Up(name) => up_message(name, 1),
        LinkOp::Create { name, kind, peer } => create_message(name, kind, peer.as_deref(), 1),
        LinkOp::MoveToPid { name, pid } => move_message(index_of(name)?, *pid, 1),
    };
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkRoute,
    )
    .map_err(io::Error::from)?;
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &NetlinkAddr::new(0, 0),
    )
    .map_err(io::Error::from)?;
    send(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &msg,
        MsgFlags::empty(),
    )
    .map_err(io::Error::from)?;
    let mut buf = [0u8; 4096];
    let n = recv(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &mut buf,
        MsgFlags::empty(),
    )
    .map_err(io::Error::from)?;
    match parse_ack(&buf[..n])? {
        0 => Ok(()),
        code => Err(io::Error::from_raw_os_error(code)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u16_at(b: &[u8], at: usize) -> u16 {
        u16::from_ne_bytes([b[at], b[at + 1]])
    }

    #[test]
    fn attributes_are_padded() {
        assert_eq!(nla(1, b"veth").len(), 8);
        let name = name_attr("eth0");
        assert_eq!(u16_at(&name, 0), 9);
        assert_eq!(name.len(), 12);
        assert_eq!(&name[4..9], b"eth0\0");
    }

    #[test]
    fn up_sets_the_flag() {
        let msg = up_message("lo", 7);
        // header 16 + ifinfomsg 16 + IFLA_IFNAME "lo\0" (4 + 3 -> 8).
        assert_eq!(msg.len(), 40);
        assert_eq!(u32::from_ne_bytes(msg[0..4].try_into().unwrap()), 40);
        assert_eq!(u16_at(&msg, 4), RTM_NEWLINK);
        assert_eq!(u16_at(&msg, 6), NLM_F_REQUEST | NLM_F_ACK);
        assert_eq!(u32::from_ne_bytes(msg[8..12].try_into().unwrap()), 7);
        // Index 0: the kernel looks the link up by IFLA_IFNAME.
        assert_eq!(i32::from_ne_bytes(msg[20..24].try_into().unwrap()), 0);
        assert_eq!(u32::from_ne_bytes(msg[24..28].try_into().unwrap()), IFF_UP);
        assert_eq!(u32::from_ne_bytes(msg[28..32].try_into().unwrap()), IFF_UP);
        assert_eq!(u16_at(&msg, 32), 7);
        assert_eq!(u16_at(&msg, 34), IFLA_IFNAME);
        assert_eq!(&msg[36..40], b"lo\0\0");
    }

    #[test]
    fn veth_nests_the_peer() {
        let msg = create_message("veth0", "veth", Some("veth1"), 1);
        assert_eq!(
            u32::from_ne_bytes(msg[0..4].try_into().unwrap()) as usize,
            msg.len()
        );
        // header 16 + ifinfomsg 16, then IFLA_IFNAME "veth0\0" (4 + 6 -> 12).
        assert_eq!(u16_at(&msg, 32 + 2), IFLA_IFNAME);
        let linkinfo = 32 + 12;
        assert_eq!(u16_at(&msg, linkinfo + 2), IFLA_LINKINFO | NLA_F_NESTED);
        assert_eq!(u16_at(&msg, linkinfo) as usize, msg.len() - linkinfo);
        assert_eq!(&msg[linkinfo + 8..linkinfo + 12], b"veth");
        let tail = &msg[msg.len() - 8..];
        assert_eq!(tail, b"veth1\0\0\0");
        let plain = create_message("d0", "dummy", None, 1);
        assert!(!plain.windows(5).any(|w| w == b"veth1"));
    }

    #[test]
    fn move_carries_the_pid() {
        let msg = move_message(3, 4242, 1);
        assert_eq!(msg.len(), 16 + 16 + 8);
        assert_eq!(u16_at(&msg, 34), IFLA_NET_NS_PID);
        assert_eq!(u32::from_ne_bytes(msg[36..40].try_into().unwrap()), 4242);
    }

    #[test]
    fn acks() {
        let mut reply = vec![0u8; 36];
        reply[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        assert_eq!(parse_ack(&reply).unwrap(), 0);
        reply[16..20].copy_from_slice(&(-17i32).to_ne_bytes());
        assert_eq!(parse_ack(&reply).unwrap(), 17);
        assert!(parse_ack(&reply[..10]).is_err());
    }
}
