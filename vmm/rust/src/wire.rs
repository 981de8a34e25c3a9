//! Frames (docs/protocol.md §2 and §4): every field written and read byte by byte in little endian
//! at the offsets of the spec's tables, so nothing depends on the host's layout.

use crate::types::{cap, Action, Error, Exit, Hello, Source, Verdict, Welcome};

pub const PROTOCOL_VERSION: u16 = 1;
/// The highest minor version spoken: 1.1.
pub const PROTOCOL_MINOR: u16 = 1;
pub const HEADER_SIZE: usize = 8;
/// The largest body this side ever reads: the daemon sends nothing longer than an ERROR text.
pub const MAX_BODY: usize = 16384;

pub const MSG_HELLO: u16 = 0x01;
pub const MSG_WELCOME: u16 = 0x02;
pub const MSG_REJECT: u16 = 0x03;
pub const MSG_EVENT_SEA: u16 = 0x10;
pub const MSG_EVENT_NISV: u16 = 0x11;
pub const MSG_EVENT_MMIO: u16 = 0x12;
pub const MSG_EVENT_SIGBUS: u16 = 0x13;
pub const MSG_VERDICT: u16 = 0x20;
pub const MSG_APPLIED: u16 = 0x21;
pub const MSG_HEARTBEAT: u16 = 0x30;
pub const MSG_ERROR: u16 = 0x31;
pub const MSG_GOODBYE: u16 = 0x32;

pub const EVENT_REPLAY: u16 = 1;
pub const NO_VCPU: u32 = 0xFFFF_FFFF;
pub const NO_GPA: u64 = u64::MAX;

/// REJECT/ERROR codes the plugin acts on (§8).
pub const ERR_VERSION: u16 = 5;
pub const ERR_BAD_FIELD: u16 = 6;

/// APPLIED (1.1) sources.
pub const APPLIED_VERDICT: u8 = 0;
pub const APPLIED_FALLBACK: u8 = 1;

/// GOODBYE reasons (§4.8).
pub mod goodbye {
    pub const NORMAL: u16 = 0;
    pub const SHUTDOWN: u16 = 1;
    pub const VM_EXITING: u16 = 2;
}

const VM_ID_MAX: usize = 128;
const LABELS_MAX: usize = 32;
const LABEL_KEY_MAX: usize = 63;
const LABEL_VALUE_MAX: usize = 255;
const VCPUS_MAX: u32 = 4096;

pub fn put_u16(b: &mut [u8], o: usize, v: u16) {
    b[o..o + 2].copy_from_slice(&v.to_le_bytes());
}
pub fn put_u32(b: &mut [u8], o: usize, v: u32) {
    b[o..o + 4].copy_from_slice(&v.to_le_bytes());
}
pub fn put_u64(b: &mut [u8], o: usize, v: u64) {
    b[o..o + 8].copy_from_slice(&v.to_le_bytes());
}
pub fn get_u16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
pub fn get_u32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}
pub fn get_u64(b: &[u8], o: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(a)
}

fn frame(kind: u16, body_len: usize) -> Vec<u8> {
    let mut f = vec![0u8; HEADER_SIZE + body_len];
    put_u32(&mut f, 0, body_len as u32);
    put_u16(&mut f, 4, kind);
    f
}

/// HELLO asking for 1.`minor`, or why it is outside the limits (§4.1, §7).
pub fn encode_hello(h: &Hello, minor: u16) -> Result<Vec<u8>, Error> {
    let id = h.vm_id.as_bytes();
    if id.is_empty() || id.len() > VM_ID_MAX {
        return Err(Error::InvalidHello(format!("vm id of {} bytes (1..={VM_ID_MAX})", id.len())));
    }
    if h.labels.len() > LABELS_MAX {
        return Err(Error::InvalidHello(format!("{} labels, at most {LABELS_MAX}", h.labels.len())));
    }
    if h.vcpu_count == 0 || h.vcpu_count > VCPUS_MAX {
        return Err(Error::InvalidHello(format!("vcpu count {} (1..={VCPUS_MAX})", h.vcpu_count)));
    }
    let mut size = 24 + id.len();
    for (k, v) in &h.labels {
        if k.is_empty() || k.len() > LABEL_KEY_MAX || v.len() > LABEL_VALUE_MAX {
            return Err(Error::InvalidHello(format!("label '{k}' out of range")));
        }
        size += 4 + k.len() + v.len();
    }
    let mut f = frame(MSG_HELLO, size);
    let b = &mut f[HEADER_SIZE..];
    put_u16(b, 0, PROTOCOL_VERSION);
    put_u16(b, 2, minor);
    put_u32(b, 4, h.caps);
    put_u32(b, 8, h.vmm_pid);
    put_u32(b, 12, h.vcpu_count);
    put_u32(b, 16, h.ext_abt_esr_cap);
    put_u16(b, 20, id.len() as u16);
    put_u16(b, 22, h.labels.len() as u16);
    let mut o = 24;
    b[o..o + id.len()].copy_from_slice(id);
    o += id.len();
    for (k, v) in &h.labels {
        put_u16(b, o, k.len() as u16);
        put_u16(b, o + 2, v.len() as u16);
        o += 4;
        b[o..o + k.len()].copy_from_slice(k.as_bytes());
        o += k.len();
        b[o..o + v.len()].copy_from_slice(v.as_bytes());
        o += v.len();
    }
    Ok(f)
}

/// An event frame for `exit` (§4.4): a fresh event, not a replay.
pub fn encode_exit(exit: &Exit, seq: u32, time_ns: u64) -> Vec<u8> {
    let (kind, size, vcpu) = match *exit {
        Exit::Sea { vcpu, .. } => (MSG_EVENT_SEA, 56, vcpu),
        Exit::Nisv { vcpu, .. } => (MSG_EVENT_NISV, 40, vcpu),
        Exit::Mmio { vcpu, .. } => (MSG_EVENT_MMIO, 48, vcpu),
        Exit::Sigbus { vcpu, .. } => (MSG_EVENT_SIGBUS, 40, vcpu.unwrap_or(NO_VCPU)),
    };
    let mut f = frame(kind, size);
    let b = &mut f[HEADER_SIZE..];
    put_u32(b, 0, seq);
    put_u32(b, 4, vcpu);
    put_u64(b, 8, time_ns);
    match *exit {
        Exit::Sea { kvm_flags, esr, gva, gpa, .. } => {
            put_u64(b, 24, kvm_flags);
            put_u64(b, 32, esr);
            put_u64(b, 40, gva);
            put_u64(b, 48, gpa);
        }
        Exit::Nisv { esr_iss, fault_ipa, .. } => {
            put_u64(b, 24, esr_iss);
            put_u64(b, 32, fault_ipa);
        }
        Exit::Mmio { phys_addr, data, len, is_write, .. } => {
            put_u64(b, 24, phys_addr);
            b[32..40].copy_from_slice(&data);
            put_u32(b, 40, len);
            b[44] = u8::from(is_write);
        }
        Exit::Sigbus { si_code, addr_lsb, gpa, .. } => {
            put_u16(b, 24, si_code);
            put_u16(b, 26, addr_lsb);
            put_u64(b, 32, gpa.unwrap_or(NO_GPA));
        }
    }
    f
}

/// ESR exception classes of an abort taken from the guest: what KVM reports as a SEA (§4.4).
const ESR_EC_IABT_LOW: u64 = 0x20;
const ESR_EC_DABT_LOW: u64 = 0x24;
const BUS_MCEERR_AR: u16 = 4;
const BUS_MCEERR_AO: u16 = 5;

/// True when the daemon would refuse the event `frame` (BAD_FIELD, ending the session) in a session
/// whose HELLO declared `vcpus` vCPUs (0: none sent yet) and the capabilities `caps`, and that speaks
/// 1.`minor`: the checks of §4.4 that the event and the HELLO decide alone (in 1.1, an event kind
/// needs its capability declared). Such an event is answered by the fallback and neither sent nor
/// kept, since every session it was replayed in would end on it.
pub(crate) fn refused_event(frame: &[u8], vcpus: u32, caps: u32, minor: u16) -> bool {
    let (kind, b) = (get_u16(frame, 4), &frame[HEADER_SIZE..]);
    let vcpu = get_u32(b, 4);
    let sigbus = kind == MSG_EVENT_SIGBUS;
    let out_of_range = if vcpu == NO_VCPU { !sigbus } else { vcpus != 0 && vcpu >= vcpus };
    if out_of_range || (sigbus && !matches!(get_u16(b, 24), BUS_MCEERR_AR | BUS_MCEERR_AO)) {
        return true;
    }
    if minor == 0 {
        return false;
    }
    let need = match kind {
        MSG_EVENT_SEA => cap::SEA_TO_USER,
        MSG_EVENT_NISV => cap::NISV_TO_USER,
        _ => 0,
    };
    if caps & need != need {
        return true;
    }
    match kind {
        MSG_EVENT_SEA => !matches!((get_u64(b, 32) >> 26) & 0x3f, ESR_EC_IABT_LOW | ESR_EC_DABT_LOW),
        MSG_EVENT_MMIO => !matches!(get_u32(b, 40), 1 | 2 | 4 | 8),
        // 1.1: an AR names its vCPU, an AO names none.
        MSG_EVENT_SIGBUS => (get_u16(b, 24) == BUS_MCEERR_AR) == (vcpu == NO_VCPU),
        _ => false,
    }
}

/// Marks a kept event frame as a REPLAY of what the fallback applied.
pub fn mark_replay(frame: &mut [u8], fallback: Action) {
    put_u16(frame, HEADER_SIZE + 16, EVENT_REPLAY);
    frame[HEADER_SIZE + 18] = fallback.code();
}

/// APPLIED: 8 bytes ("the verdict, as sent"), or with `what` the 1.1 16-byte form (§4.6).
pub fn encode_applied(seq: u32, result: i32, what: Option<(Action, u8)>) -> Vec<u8> {
    let mut f = frame(MSG_APPLIED, if what.is_some() { 16 } else { 8 });
    let b = &mut f[HEADER_SIZE..];
    put_u32(b, 0, seq);
    put_u32(b, 4, result as u32);
    if let Some((action, source)) = what {
        b[8] = action.code();
        b[9] = source;
    }
    f
}

pub fn encode_heartbeat(nonce: u64) -> Vec<u8> {
    let mut f = frame(MSG_HEARTBEAT, 8);
    put_u64(&mut f, HEADER_SIZE, nonce);
    f
}

pub fn encode_goodbye(reason: u16) -> Vec<u8> {
    let mut f = frame(MSG_GOODBYE, 4);
    put_u16(&mut f, HEADER_SIZE, reason);
    f
}

/// The header checks a plugin applies to what it receives (§2): its own table of types and sizes.
pub fn check_header(len: u32, kind: u16, reserved: u16) -> Result<(), Error> {
    let ok = reserved == 0
        && (len as usize) <= MAX_BODY
        && match kind {
            MSG_WELCOME => len == 24,
            MSG_VERDICT => len == 88,
            MSG_HEARTBEAT => len == 8,
            MSG_GOODBYE => len == 4,
            MSG_REJECT | MSG_ERROR => len >= 4,
            _ => false,
        };
    if ok {
        Ok(())
    } else {
        Err(Error::Protocol(format!("bad header: type 0x{kind:x}, length {len}, reserved {reserved}")))
    }
}

/// WELCOME, checked against the version asked for (§4.2, §10).
pub fn decode_welcome(b: &[u8], asked_minor: u16) -> Result<Welcome, Error> {
    let w = Welcome {
        version: get_u16(b, 0),
        minor: get_u16(b, 2),
        max_in_flight: get_u32(b, 4),
        session_id: get_u64(b, 8),
        heartbeat_ms: get_u32(b, 16),
        max_body: get_u32(b, 20),
    };
    if w.version != PROTOCOL_VERSION || w.minor != asked_minor || (w.minor == 0 && w.max_body != 0) {
        return Err(Error::Protocol(format!(
            "WELCOME for {}.{}, asked for 1.{asked_minor}",
            w.version, w.minor
        )));
    }
    Ok(w)
}

/// VERDICT (§4.5); reserved bytes and unknown actions are protocol errors (§5.3).
pub fn decode_verdict(b: &[u8]) -> Result<Verdict, Error> {
    if get_u16(b, 6) != 0 || get_u32(b, 12) != 0 {
        return Err(Error::Protocol("VERDICT reserved bytes are not zero".into()));
    }
    let action =
        Action::from_code(b[4]).ok_or_else(|| Error::Protocol(format!("unknown action {}", b[4])))?;
    let mut vcpu_events = [0u8; 64];
    vcpu_events.copy_from_slice(&b[24..88]);
    Ok(Verdict {
        seq: get_u32(b, 0),
        action,
        flags: b[5],
        grace_ms: get_u32(b, 8),
        esr: get_u64(b, 16),
        vcpu_events,
        source: Source::Daemon,
    })
}

/// REJECT or ERROR as the refusal it is; a REJECT VERSION names the highest version (§4.3).
pub fn decode_refusal(b: &[u8]) -> Result<Error, Error> {
    let code = get_u16(b, 0);
    let text_len = get_u16(b, 2) as usize;
    let end = 4 + text_len;
    let supported = if code == ERR_VERSION && b.len() == end + 4 {
        Some((get_u16(b, end), get_u16(b, end + 2)))
    } else if b.len() == end {
        None
    } else {
        return Err(Error::Protocol("REJECT/ERROR text length disagrees with the frame".into()));
    };
    let text = String::from_utf8_lossy(&b[4..end]).into_owned();
    Ok(Error::Refused { code, text, supported })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_matches_the_documented_dump() {
        // docs/protocol.md §11 "HELLO": vm-7, tenant=acme, caps 0x33, pid 4242, 4 vCPUs, 1.1.
        let h = Hello {
            caps: 0x33,
            vmm_pid: 4242,
            vcpu_count: 4,
            ext_abt_esr_cap: 0,
            vm_id: "vm-7".into(),
            labels: vec![("tenant".into(), "acme".into())],
        };
        let f = encode_hello(&h, 1).unwrap();
        assert_eq!(f.len(), 8 + 42);
        assert_eq!(&f[..16], &[42, 0, 0, 0, 1, 0, 0, 0, 1, 0, 1, 0, 0x33, 0, 0, 0]);
    }

    #[test]
    fn hello_limits_are_refused_before_sending() {
        let h = Hello { vcpu_count: 1, vm_id: String::new(), ..Hello::default() };
        assert!(matches!(encode_hello(&h, 1), Err(Error::InvalidHello(_))));
    }

    #[test]
    fn reject_version_names_the_highest_version() {
        let text = b"no";
        let mut b = vec![5, 0, text.len() as u8, 0];
        b.extend_from_slice(text);
        b.extend_from_slice(&[1, 0, 1, 0]);
        match decode_refusal(&b).unwrap() {
            Error::Refused { code: 5, supported: Some((1, 1)), .. } => {}
            other => panic!("{other:?}"),
        }
    }
}
