//! The check of an INJECT verdict before the VMM hands its image to `KVM_SET_VCPU_EVENTS`
//! (docs/protocol.md §5.1, INJECT): the 64 bytes go to the kernel as received, so an image the
//! host the HELLO declared would refuse, or would read as something else, is caught here. The
//! kernel may commit a valid abort from an image before it refuses an invalid SError part of it,
//! so a failed ioctl is no safe way to find out. The rules are those of the TypeScript reference
//! client (`vmm/verdict-checks.ts` in the seawall repository); an image that fails is a protocol
//! error (§5.3): the exit gets the fallback and the connection is dropped.

use crate::types::{cap, Action, Verdict};
use crate::wire;

/// ISS [24:0]: the only ESR bits `ext_abt_esr` may carry.
const ISS_MASK: u64 = 0x1ff_ffff;
/// The FSC bit KVM ORs into `ext_abt_esr`.
const FSC_SEA: u64 = 0x10;

/// Why `v`, the verdict for an event of frame type `event_kind`, must not be applied by a plugin
/// whose HELLO declared `caps`; None when it may. Only INJECT carries an image for the kernel.
pub(crate) fn refusal(v: &Verdict, event_kind: u16, caps: u32) -> Option<String> {
    if v.action != Action::Inject {
        return None;
    }
    if caps & cap::INJECT_EXT_DABT == 0 {
        return Some("INJECT to a plugin that did not declare INJECT_EXT_DABT".into());
    }
    if event_kind == wire::MSG_EVENT_SIGBUS {
        return Some("INJECT after a SIGBUS: KVM defines no injection without an abort exit".into());
    }
    let e = &v.vcpu_events;
    let posted = caps & cap::EXT_ABT_ESR != 0;
    // The declared layout's fields: flag bytes 0..=2 (0..=4 posted), serror_esr at 8..16 and,
    // posted, ext_abt_esr at 16..24. Every other byte is pad or reserved and zero; a flag is 0 or 1.
    let (flags, fields_end) = if posted { (5, 24) } else { (3, 16) };
    let layout = if posted { "ext-abt-esr" } else { "merged" };
    for (i, &b) in e.iter().enumerate() {
        let bad = if i < flags { b > 1 } else { !(8..fields_end).contains(&i) && b != 0 };
        if bad {
            return Some(format!(
                "vcpu_events byte {i} is 0x{b:x}: pad or reserved in the {layout} layout, or a flag not 0 or 1"
            ));
        }
    }
    if e[0] != 0 || e[1] != 0 || wire::get_u64(e, 8) != 0 {
        return Some("vcpu_events asks for an SError".into());
    }
    let dabt = e[2] != 0;
    let iabt = posted && e[3] != 0;
    let has_esr = posted && e[4] != 0;
    let esr = if posted { wire::get_u64(e, 16) } else { 0 };
    let why = if !dabt && !iabt {
        "vcpu_events sets neither ext_dabt_pending nor ext_iabt_pending: INJECT would inject nothing"
    } else if dabt && iabt {
        "vcpu_events sets both ext_dabt_pending and ext_iabt_pending"
    } else if !has_esr && esr != 0 {
        "vcpu_events sets ext_abt_esr without ext_abt_has_esr"
    } else if esr > ISS_MASK {
        "vcpu_events: ext_abt_esr has bits outside ISS [24:0]"
    } else if has_esr && caps & cap::RAS == 0 {
        "vcpu_events: ext_abt_has_esr needs a host with FEAT_RAS (RAS declared)"
    } else if has_esr && esr & 0x3f != 0 && esr & FSC_SEA == 0 {
        // KVM ORs FSC 0x10 into the ISS: an FSC without it reaches the guest changed (FSC 0 asks
        // for KVM's own 0x10).
        "vcpu_events: ext_abt_esr has an FSC KVM would change"
    } else {
        return None;
    };
    Some(why.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Source;

    fn inject(bytes: &[(usize, u8)]) -> Verdict {
        let mut vcpu_events = [0u8; 64];
        for &(at, b) in bytes {
            vcpu_events[at] = b;
        }
        Verdict {
            seq: 1,
            action: Action::Inject,
            flags: 0,
            grace_ms: 0,
            esr: 0,
            vcpu_events,
            source: Source::Daemon,
        }
    }

    const MERGED: u32 = cap::SEA_TO_USER | cap::INJECT_EXT_DABT | cap::RAS | cap::NISV_TO_USER;
    const POSTED: u32 = MERGED | cap::EXT_ABT_ESR;

    #[test]
    fn each_rule_refuses_its_image_and_the_daemon_s_images_pass() {
        let sea = wire::MSG_EVENT_SEA;
        let refused = [
            (&[(2, 1), (3, 1)][..], MERGED, "byte 3"),
            (&[(2, 1), (16, 0x10)], MERGED, "byte 16"),
            (&[(2, 1), (63, 1)], POSTED, "byte 63"),
            (&[(2, 1), (6, 1)], POSTED, "byte 6"),
            (&[(2, 2)], MERGED, "byte 2"),
            (&[(3, 1), (4, 2)], POSTED, "byte 4"),
            (&[(1, 1), (2, 1)], MERGED, "SError"),
            (&[(2, 1), (8, 1)], MERGED, "SError"),
            (&[], POSTED, "neither"),
            (&[(2, 1), (3, 1)], POSTED, "both"),
            (&[(3, 1), (16, 0x10)], POSTED, "without ext_abt_has_esr"),
            (&[(3, 1), (4, 1)], POSTED & !cap::RAS, "FEAT_RAS"),
            (&[(3, 1), (4, 1), (19, 2)], POSTED, "outside ISS"),
            (&[(2, 1), (4, 1), (16, 0x21)], POSTED, "FSC"),
            (&[(2, 1)], MERGED & !cap::INJECT_EXT_DABT, "INJECT_EXT_DABT"),
        ];
        for (bytes, caps, want) in refused {
            let why = refusal(&inject(bytes), sea, caps).unwrap_or_default();
            assert!(why.contains(want), "{bytes:?} caps {caps:#x}: {why:?}");
        }
        assert!(refusal(&inject(&[(2, 1)]), wire::MSG_EVENT_SIGBUS, MERGED).unwrap().contains("SIGBUS"));
        for (bytes, caps) in [
            (&[(2, 1)][..], MERGED),
            (&[(2, 1)], POSTED),
            (&[(3, 1), (4, 1), (16, 0x10), (17, 6)], POSTED),
            (&[(2, 1), (4, 1), (17, 6)], POSTED),
        ] {
            assert_eq!(refusal(&inject(bytes), sea, caps), None, "{bytes:?}");
        }
        // Only INJECT carries an image.
        let kill = Verdict { action: Action::Kill, ..inject(&[(0, 1), (3, 1)]) };
        assert_eq!(refusal(&kill, wire::MSG_EVENT_SIGBUS, 0), None);
    }
}
