//! The verdict the plugin applies by itself when the daemon does not answer in time (docs/protocol.md
//! §9): what every host can take, so a guest never waits on the daemon.

use crate::types::{cap, Action, Exit, Fallback, Source, Verdict};

/// The merged `kvm_vcpu_events` image with `ext_dabt_pending` = 1: valid on every kernel with
/// `KVM_CAP_ARM_INJECT_EXT_DABT`, whichever ABI the host has.
const MERGED_DABT: [u8; 64] = {
    let mut image = [0u8; 64];
    image[2] = 1;
    image
};

/// The fallback for `exit` on a host whose HELLO declared `caps`.
pub(crate) fn fallback_verdict(fallback: Fallback, seq: u32, exit: &Exit, caps: u32) -> Verdict {
    let action = match fallback {
        // KVM defines no injection after a SIGBUS: there was no abort exit. Without
        // KVM_CAP_ARM_INJECT_EXT_DABT byte 2 is pad, which KVM refuses: RESUME, as the daemon
        // answers such a host.
        Fallback::Inject if exit.is_sigbus() || caps & cap::INJECT_EXT_DABT == 0 => Action::Resume,
        Fallback::Inject => Action::Inject,
        Fallback::Kill => Action::Kill,
        Fallback::Resume => Action::Resume,
    };
    let vcpu_events = if action == Action::Inject { MERGED_DABT } else { [0u8; 64] };
    Verdict { seq, action, flags: 0, grace_ms: 0, esr: 0, vcpu_events, source: Source::Fallback }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inject_after_an_abort_exit_resume_after_a_sigbus() {
        let sea = Exit::Sea { vcpu: 0, kvm_flags: 0, esr: 0x9200_0010, gva: 0, gpa: 0 };
        let v = fallback_verdict(Fallback::Inject, 7, &sea, cap::INJECT_EXT_DABT);
        assert_eq!((v.seq, v.action, v.vcpu_events[2]), (7, Action::Inject, 1));
        let sigbus = Exit::Sigbus { vcpu: None, si_code: 5, addr_lsb: 12, gpa: None };
        assert_eq!(fallback_verdict(Fallback::Inject, 8, &sigbus, u32::MAX).action, Action::Resume);
        assert_eq!(fallback_verdict(Fallback::Kill, 9, &sigbus, u32::MAX).action, Action::Kill);
    }

    #[test]
    fn inject_only_on_a_host_with_inject_ext_dabt() {
        let sea = Exit::Sea { vcpu: 0, kvm_flags: 0, esr: 0x9200_0010, gva: 0, gpa: 0 };
        let without = fallback_verdict(Fallback::Inject, 7, &sea, u32::MAX & !cap::INJECT_EXT_DABT);
        assert_eq!((without.action, without.vcpu_events), (Action::Resume, [0u8; 64]));
        assert_eq!(fallback_verdict(Fallback::Inject, 7, &sea, u32::MAX).action, Action::Inject);
    }
}
