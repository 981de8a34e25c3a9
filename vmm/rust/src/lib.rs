//! The VMM side of the seawall plugin protocol 1.1 (`docs/protocol.md` in the seawall repository
//! is the normative text): report an arm64 KVM memory-error exit — `KVM_EXIT_ARM_SEA`, an
//! unhandled NISV or MMIO access, a memory-error SIGBUS — to the seawall daemon and get the verdict
//! to apply on the vCPU thread, with a deadline, a local fallback, and replay after a reconnect.
//! std only, no dependencies.
//!
//! Optionally the VMM registers its vCPU fds (`Plugin::attach_vcpu`): the plugin passes them to
//! the daemon over the attach socket in every session, so that the daemon reads each exit from
//! the kernel's own `kvm_run` page (docs/protocol.md §9a). The fds stay the VMM's: the plugin
//! neither duplicates nor closes them. vCPUs an attach connection lost when it closed within a
//! session are attached again by `Plugin::reattach`, which the VMM calls when
//! `Plugin::reattach_due` says so, where it reconnects.
//!
//! ```no_run
//! use seawall_plugin::{cap, Action, Config, Exit, Hello, Plugin};
//! let mut plugin = Plugin::new(Config::default());
//! let hello = Hello {
//!     caps: cap::SEA_TO_USER | cap::INJECT_EXT_DABT,
//!     vmm_pid: std::process::id(),
//!     vcpu_count: 2,
//!     vm_id: "vm-7".into(),
//!     ..Hello::default()
//! };
//! let _ = plugin.connect("/run/seawall/plugin.sock", &hello); // without a daemon: fallbacks
//! let verdict = plugin.handle_exit(&Exit::Sea { vcpu: 0, kvm_flags: 1, esr: 0x9200_0010, gva: 0, gpa: 0 });
//! if verdict.action == Action::Inject { /* ioctl(vcpu_fd, KVM_SET_VCPU_EVENTS, &verdict.vcpu_events) */ }
//! # let vcpu_fd = 0;
//! let _ = plugin.attach_vcpu(0, vcpu_fd); // now if connected, and after every WELCOME
//! ```

pub mod attach_wire;
mod connect;
mod fallback;
mod plugin;
mod replay;
mod scm;
mod types;
mod verdict_checks;
pub mod wire;

pub use plugin::{Plugin, Stats};
pub use types::{
    cap, verdict_flag, Action, AttachReply, Config, Error, Exit, Fallback, Hello, Source, Verdict, Welcome,
};
