//! Drives `Plugin` from a line protocol on stdin, one reply line per command on stdout, so the
//! conformance suite (test/protocol/conformance/ in the seawall repository) can run the same
//! scenarios against this crate, the C library and the TypeScript client:
//!
//!   init DEADLINE_MS inject|kill|resume MINOR   → ok
//!   connect PATH VM_ID CAPS VCPUS VMM_PID EXT_ABT_ESR_CAP [KEY=VALUE…]
//!                                               → welcome MAJOR MINOR MAX_IN_FLIGHT SESSION HEARTBEAT_MS MAX_BODY
//!                                                 | refused CODE SUPPORTED_MAJOR SUPPORTED_MINOR | error TEXT
//!   sea VCPU KVM_FLAGS ESR GVA GPA | nisv VCPU ESR_ISS IPA | mmio VCPU ADDR LEN IS_WRITE
//!   sigbus VCPU|none SI_CODE ADDR_LSB GPA|none  → verdict SEQ ACTION FLAGS GRACE_MS ESR EVENTS_HEX daemon|fallback
//!   applied SEQ RESULT | applied-fallback SEQ RESULT ACTION   → ok | error TEXT
//!   poll MS                                     → polled N | error TEXT
//!   stats                                       → stats FALLBACKS REPLAYED LATE_VERDICTS KEPT
//!   close REASON                                → ok
//!
//! Numbers are decimal or 0x-prefixed hex.

use std::time::Duration;

#[path = "common/mod.rs"]
mod common;
use common::num;
use seawall_plugin::{Action, Config, Error, Exit, Fallback, Hello, Plugin, Source, Verdict};

fn opt(s: &str) -> Option<u64> {
    (s != "none").then(|| num(s))
}

fn verdict_line(v: &Verdict) -> String {
    let hex: String = v.vcpu_events.iter().map(|b| format!("{b:02x}")).collect();
    let source = if v.source == Source::Daemon { "daemon" } else { "fallback" };
    format!(
        "verdict {} {} {} {} 0x{:x} {} {}",
        v.seq,
        v.action.name(),
        v.flags,
        v.grace_ms,
        v.esr,
        hex,
        source
    )
}

fn run(plugin: &mut Plugin, w: &[&str]) -> String {
    match w[0] {
        "init" => {
            let fallback = match w[2] {
                "kill" => Fallback::Kill,
                "resume" => Fallback::Resume,
                _ => Fallback::Inject,
            };
            let deadline = Duration::from_millis(num(w[1]));
            let config = Config {
                deadline,
                hello_timeout: deadline,
                fallback,
                minor: num(w[3]) as u16,
                ..Config::default()
            };
            *plugin = Plugin::new(config);
            "ok".into()
        }
        "connect" => {
            let labels = w[7..]
                .iter()
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let hello = Hello {
                vm_id: w[2].into(),
                caps: num(w[3]) as u32,
                vcpu_count: num(w[4]) as u32,
                vmm_pid: num(w[5]) as u32,
                ext_abt_esr_cap: num(w[6]) as u32,
                labels,
            };
            match plugin.connect(w[1], &hello) {
                Ok(x) => format!(
                    "welcome {} {} {} {} {} {}",
                    x.version, x.minor, x.max_in_flight, x.session_id, x.heartbeat_ms, x.max_body
                ),
                Err(Error::Refused { code, supported, .. }) => {
                    let (ma, mi) = supported.unwrap_or((0, 0));
                    format!("refused {code} {ma} {mi}")
                }
                Err(e) => format!("error {e}"),
            }
        }
        "sea" => verdict_line(&plugin.handle_exit(&Exit::Sea {
            vcpu: num(w[1]) as u32,
            kvm_flags: num(w[2]),
            esr: num(w[3]),
            gva: num(w[4]),
            gpa: num(w[5]),
        })),
        "nisv" => verdict_line(&plugin.handle_exit(&Exit::Nisv {
            vcpu: num(w[1]) as u32,
            esr_iss: num(w[2]),
            fault_ipa: num(w[3]),
        })),
        "mmio" => verdict_line(&plugin.handle_exit(&Exit::Mmio {
            vcpu: num(w[1]) as u32,
            phys_addr: num(w[2]),
            data: [0; 8],
            len: num(w[3]) as u32,
            is_write: num(w[4]) != 0,
        })),
        "sigbus" => verdict_line(&plugin.handle_exit(&Exit::Sigbus {
            vcpu: opt(w[1]).map(|v| v as u32),
            si_code: num(w[2]) as u16,
            addr_lsb: num(w[3]) as u16,
            gpa: opt(w[4]),
        })),
        "applied" => match plugin.send_applied(num(w[1]) as u32, num(w[2]) as i32) {
            Ok(()) => "ok".into(),
            Err(e) => format!("error {e}"),
        },
        "applied-fallback" => {
            let action = Action::from_code(num(w[3]) as u8).expect("action code");
            match plugin.send_applied_fallback(num(w[1]) as u32, num(w[2]) as i32, action) {
                Ok(()) => "ok".into(),
                Err(e) => format!("error {e}"),
            }
        }
        "poll" => match plugin.poll(Duration::from_millis(num(w[1]))) {
            Ok(n) => format!("polled {n}"),
            Err(e) => format!("error {e}"),
        },
        "stats" => {
            let s = plugin.stats();
            format!("stats {} {} {} {}", s.fallbacks, s.replayed, s.late_verdicts, plugin.kept())
        }
        "close" => {
            plugin.close(num(w[1]) as u16);
            "ok".into()
        }
        other => format!("error unknown command {other}"),
    }
}

fn main() {
    let mut plugin = Plugin::new(Config::default());
    common::serve(|words| run(&mut plugin, words));
}
