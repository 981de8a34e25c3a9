//! The values a VMM hands to the plugin and gets back: docs/protocol.md §4 in Rust types.

use std::fmt;
use std::io;
use std::time::Duration;

/// HELLO capability bits (§6).
pub mod cap {
    /// `KVM_CAP_ARM_SEA_TO_USER` is enabled: the VMM receives `KVM_EXIT_ARM_SEA`.
    pub const SEA_TO_USER: u32 = 1 << 0;
    /// `KVM_CAP_ARM_INJECT_EXT_DABT`: `ext_dabt_pending` works.
    pub const INJECT_EXT_DABT: u32 = 1 << 1;
    /// The posted IABT/ESR `kvm_vcpu_events` ABI; its cap number goes in `Hello::ext_abt_esr_cap`.
    pub const EXT_ABT_ESR: u32 = 1 << 2;
    /// The VMM can emulate an abort by register writes (`Action::InjectEmulated`).
    pub const EMULATE_ABORT: u32 = 1 << 3;
    /// FEAT_RAS on the host and exposed to the guest.
    pub const RAS: u32 = 1 << 4;
    /// `KVM_CAP_ARM_NISV_TO_USER` is enabled.
    pub const NISV_TO_USER: u32 = 1 << 5;
}

/// What the plugin says about its VM and host in HELLO (§4.1).
#[derive(Clone, Debug, Default)]
pub struct Hello {
    pub caps: u32,
    /// `std::process::id()`: for the daemon's logs only, kills use the socket's peer credentials.
    pub vmm_pid: u32,
    /// 1..=4096; every exit's vCPU is below it.
    pub vcpu_count: u32,
    /// The KVM capability number the VMM probed for the posted IABT/ESR ABI; 0 when absent.
    pub ext_abt_esr_cap: u32,
    /// Unique among the daemon's live sessions, 1..=128 bytes.
    pub vm_id: String,
    /// What policies match on (`tenant`, `tier`, ...): at most 32, keys 1..=63 bytes, values 0..=255.
    pub labels: Vec<(String, String)>,
}

/// What the plugin does by itself when no verdict comes in time (§9).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fallback {
    /// The merged `ext_dabt_pending` image after an abort exit; resume after a SIGBUS.
    Inject,
    Kill,
    Resume,
}

/// The plugin's settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// How long a stalled vCPU waits for its verdict before the fallback answers.
    pub deadline: Duration,
    /// How long `connect` waits for WELCOME (a socket-activated daemon may still be starting).
    pub hello_timeout: Duration,
    pub fallback: Fallback,
    /// The minor version to ask for: 1 (protocol 1.1) or 0 (1.0 compatibility).
    pub minor: u16,
    /// Bound on events kept for replay; past it the oldest is dropped and counted.
    pub max_kept: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            deadline: Duration::from_millis(1000),
            hello_timeout: Duration::from_secs(10),
            fallback: Fallback::Inject,
            minor: crate::wire::PROTOCOL_MINOR,
            max_kept: 4096,
        }
    }
}

/// WELCOME (§4.2): the session the daemon admitted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Welcome {
    pub version: u16,
    pub minor: u16,
    pub max_in_flight: u32,
    pub session_id: u64,
    pub heartbeat_ms: u32,
    /// 1.1: the largest frame body the daemon accepts (0 in a 1.0 session).
    pub max_body: u32,
}

/// One exit to report, copied from `kvm_run` as the kernel left it (§4.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// `KVM_EXIT_ARM_SEA`: `kvm_run.arm_sea`.
    Sea { vcpu: u32, kvm_flags: u64, esr: u64, gva: u64, gpa: u64 },
    /// `KVM_EXIT_ARM_NISV`: `kvm_run.arm_nisv`.
    Nisv { vcpu: u32, esr_iss: u64, fault_ipa: u64 },
    /// A `KVM_EXIT_MMIO` the VMM has no device for: `kvm_run.mmio`.
    Mmio { vcpu: u32, phys_addr: u64, data: [u8; 8], len: u32, is_write: bool },
    /// A memory-error SIGBUS: AR (4) on the vCPU thread that took it, AO (5) with no vCPU.
    Sigbus { vcpu: Option<u32>, si_code: u16, addr_lsb: u16, gpa: Option<u64> },
}

impl Exit {
    pub(crate) fn is_sigbus(&self) -> bool {
        matches!(self, Exit::Sigbus { .. })
    }
}

/// What to do with the vCPU (§5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Apply nothing; `KVM_RUN` again.
    Resume,
    /// `KVM_SET_VCPU_EVENTS` with `Verdict::vcpu_events`, exactly as received.
    Inject,
    /// Emulate the abort with `Verdict::esr` by register writes (§5.1 lists them).
    InjectEmulated,
    /// Terminate the VM within `Verdict::grace_ms`.
    Kill,
}

impl Action {
    pub fn code(self) -> u8 {
        match self {
            Action::Resume => 0,
            Action::Inject => 1,
            Action::InjectEmulated => 2,
            Action::Kill => 3,
        }
    }

    pub fn from_code(code: u8) -> Option<Action> {
        match code {
            0 => Some(Action::Resume),
            1 => Some(Action::Inject),
            2 => Some(Action::InjectEmulated),
            3 => Some(Action::Kill),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Action::Resume => "RESUME",
            Action::Inject => "INJECT",
            Action::InjectEmulated => "INJECT_EMULATED",
            Action::Kill => "KILL",
        }
    }
}

/// Whose answer a verdict is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Daemon,
    Fallback,
}

/// VERDICT flag bits (§4.5): information for logs, the action alone says what to do.
pub mod verdict_flag {
    pub const MIGRATING: u8 = 1 << 0;
    pub const DRY_RUN: u8 = 1 << 1;
    pub const DOWNGRADED: u8 = 1 << 2;
}

/// The verdict to apply on the vCPU thread before the next `KVM_RUN`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub seq: u32,
    pub action: Action,
    pub flags: u8,
    pub grace_ms: u32,
    /// For `InjectEmulated`: the ESR with EC for a lower EL (make it the current-EL class at EL1).
    pub esr: u64,
    /// For `Inject`: the `struct kvm_vcpu_events` image, to pass to the ioctl unchanged.
    pub vcpu_events: [u8; 64],
    pub source: Source,
}

/// What became of an ATTACH or DETACH (docs/actions.md "vCPU attachment"). Attachment never
/// breaks the plugin: whatever this says, exits are reported on the plugin socket as before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachReply {
    /// Nothing was sent: not connected (the vCPU is attached after the next WELCOME), no attach
    /// socket is known (`connect_stream` without `set_attach_socket`), or a DETACH of a vCPU that
    /// was not attached.
    NotSent,
    /// The daemon said OK.
    Ok,
    /// The daemon refused with this status (`attach_wire::status`).
    Refused(u32),
    /// No answer: the attach socket could not be reached, the connection failed, or no reply came
    /// within `Config::hello_timeout` (`TimedOut`).
    Failed(io::ErrorKind),
}

/// Why a connection failed. Exits never fail: without a daemon they get the fallback.
#[derive(Debug)]
pub enum Error {
    Io(io::Error),
    /// No WELCOME within the hello timeout.
    Timeout,
    /// REJECT or ERROR before WELCOME (§8); `supported` is what a REJECT VERSION named.
    Refused {
        code: u16,
        text: String,
        supported: Option<(u16, u16)>,
    },
    /// The daemon sent something this plugin cannot accept.
    Protocol(String),
    /// The HELLO is outside the protocol's limits.
    InvalidHello(String),
    NotConnected,
    /// `attach_vcpu` of an index past the HELLO's `vcpu_count` (or past 4096 before a HELLO).
    InvalidVcpu(u32),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "{e}"),
            Error::Timeout => write!(f, "no WELCOME in time"),
            Error::Refused { code, text, .. } => {
                write!(f, "refused by the daemon (code {code}): {text}")
            }
            Error::Protocol(m) => write!(f, "protocol error: {m}"),
            Error::InvalidHello(m) => write!(f, "invalid HELLO: {m}"),
            Error::NotConnected => write!(f, "not connected"),
            Error::InvalidVcpu(v) => write!(f, "vCPU {v} is past the HELLO's vcpu_count (or 4096)"),
        }
    }
}

impl std::error::Error for Error {}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}
