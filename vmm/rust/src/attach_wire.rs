//! The attach channel's records (docs/actions.md "vCPU attachment"; protocol/attach-wire.ts in the
//! seawall repository is the daemon's side): fixed-size little-endian records on a
//! `SOCK_SEQPACKET` socket, one per message, the vCPU fd beside an ATTACH as `SCM_RIGHTS`.

use std::path::{Path, PathBuf};

use crate::wire::{get_u16, get_u32, put_u16, put_u32, put_u64};

/// "SWAT" read as a little-endian u32.
pub const MAGIC: u32 = 0x5441_5753;
pub const VERSION: u16 = 1;
pub const REQUEST_SIZE: usize = 24;
pub const REPLY_SIZE: usize = 16;
pub const OP_ATTACH: u16 = 1;
pub const OP_DETACH: u16 = 2;
/// A reply echoes its request's op with this bit set.
pub const REPLY_BIT: u16 = 0x80;

/// Reply status (u32).
pub mod status {
    pub const OK: u32 = 0;
    /// Wrong size, magic, version, op or a non-zero reserved field (closes the connection).
    pub const MALFORMED: u32 = 1;
    /// ATTACH without exactly one fd, or DETACH with any (closes).
    pub const FD_COUNT: u32 = 2;
    /// No live plugin session has this id.
    pub const UNKNOWN_SESSION: u32 = 3;
    /// The attaching process is not the one holding the session (closes).
    pub const PEER_MISMATCH: u32 = 4;
    /// vCPU index ≥ the session's `vcpu_count`.
    pub const VCPU_RANGE: u32 = 5;
    /// Not a KVM vCPU fd (nor an accepted stand-in), or the daemon could not map it.
    pub const BAD_FD: u32 = 6;
    /// DETACH of a vCPU this connection has not attached.
    pub const NOT_ATTACHED: u32 = 7;
    /// The connection already serves another session (closes).
    pub const SESSION_MISMATCH: u32 = 8;
    /// The daemon holds as many attached vCPUs as it takes (`attach.maxVcpus`), all sessions
    /// together.
    pub const LIMIT: u32 = 9;

    /// True for the statuses after which the daemon closes the connection.
    pub fn closes(status: u32) -> bool {
        matches!(status, MALFORMED | FD_COUNT | PEER_MISMATCH | SESSION_MISMATCH)
    }
}

/// An ATTACH or DETACH request for vCPU `vcpu` of session `session_id` (the WELCOME's).
pub fn encode_request(op: u16, session_id: u64, vcpu: u32) -> [u8; REQUEST_SIZE] {
    let mut b = [0u8; REQUEST_SIZE];
    put_u32(&mut b, 0, MAGIC);
    put_u16(&mut b, 4, VERSION);
    put_u16(&mut b, 6, op);
    put_u64(&mut b, 8, session_id);
    put_u32(&mut b, 16, vcpu);
    b // +20: reserved, 0
}

/// A reply's `(op, vcpu, status)`, the op without the reply bit; None when `b` is not a reply
/// of this version (size, magic, version, or an op without the reply bit).
pub fn decode_reply(b: &[u8]) -> Option<(u16, u32, u32)> {
    if b.len() != REPLY_SIZE || get_u32(b, 0) != MAGIC || get_u16(b, 4) != VERSION {
        return None;
    }
    let op = get_u16(b, 6);
    (op & REPLY_BIT != 0).then(|| (op & !REPLY_BIT, get_u32(b, 8), get_u32(b, 12)))
}

/// The attach socket a daemon listening on `plugin_socket` opens by default (its
/// `defaultAttachSocket`): `plugin.sock` → `attach.sock` beside it; any other name `X.sock` →
/// `X-attach.sock`, and `X` → `X-attach.sock`, so daemons sharing a directory do not collide.
pub fn default_socket(plugin_socket: &Path) -> PathBuf {
    let name = plugin_socket.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let attach = if name == "plugin.sock" {
        "attach.sock".to_string()
    } else {
        format!("{}-attach.sock", name.strip_suffix(".sock").unwrap_or(&name))
    };
    plugin_socket.with_file_name(attach)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_the_documented_24_bytes() {
        let b = encode_request(OP_ATTACH, 0x0123_4567_89ab_cdef, 3);
        let expected: [u8; 24] = [
            0x53, 0x57, 0x41, 0x54, // "SWAT"
            0x01, 0x00, 0x01, 0x00, // version 1, op ATTACH
            0xef, 0xcd, 0xab, 0x89, 0x67, 0x45, 0x23, 0x01, // session id
            0x03, 0x00, 0x00, 0x00, // vCPU
            0x00, 0x00, 0x00, 0x00, // reserved
        ];
        assert_eq!(b, expected);
        assert_eq!(get_u16(&encode_request(OP_DETACH, 1, 0), 6), OP_DETACH);
    }

    #[test]
    fn a_reply_is_decoded_and_anything_else_is_not() {
        let mut r = [0u8; REPLY_SIZE];
        put_u32(&mut r, 0, MAGIC);
        put_u16(&mut r, 4, VERSION);
        put_u16(&mut r, 6, OP_ATTACH | REPLY_BIT);
        put_u32(&mut r, 8, 2);
        put_u32(&mut r, 12, status::BAD_FD);
        assert_eq!(decode_reply(&r), Some((OP_ATTACH, 2, status::BAD_FD)));
        assert_eq!(decode_reply(&r[..15]), None, "short");
        let mut no_bit = r;
        put_u16(&mut no_bit, 6, OP_ATTACH);
        assert_eq!(decode_reply(&no_bit), None, "a request is not a reply");
        let mut bad_magic = r;
        bad_magic[0] ^= 1;
        assert_eq!(decode_reply(&bad_magic), None);
        let mut v2 = r;
        put_u16(&mut v2, 4, 2);
        assert_eq!(decode_reply(&v2), None);
    }

    #[test]
    fn the_closing_statuses_are_the_daemons() {
        let closing: Vec<u32> = (0..=9).filter(|s| status::closes(*s)).collect();
        assert_eq!(
            closing,
            [status::MALFORMED, status::FD_COUNT, status::PEER_MISMATCH, status::SESSION_MISMATCH]
        );
    }

    #[test]
    fn the_default_socket_is_derived_as_the_daemon_derives_it() {
        for (plugin, attach) in [
            ("/run/seawall/plugin.sock", "/run/seawall/attach.sock"),
            ("/run/seawall/vm1.sock", "/run/seawall/vm1-attach.sock"),
            ("/tmp/x/seawall", "/tmp/x/seawall-attach.sock"),
            ("plugin.sock", "attach.sock"),
            ("/run/a.sock.d/b.sock", "/run/a.sock.d/b-attach.sock"),
            ("/run/plugin.sock.old", "/run/plugin.sock.old-attach.sock"),
        ] {
            assert_eq!(default_socket(Path::new(plugin)), Path::new(attach), "{plugin}");
        }
    }
}
