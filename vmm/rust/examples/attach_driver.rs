//! Drives `Plugin`'s vCPU attachment from a line protocol on stdin, one reply line per command on
//! stdout, so seawall's tests (test/protocol/rust-attach.test.ts in the seawall repository) can
//! run it against a real daemon, with the vCPU fds the test hands over as inherited fds:
//!
//!   connect PATH VM_ID VCPUS          → welcome SESSION_ID | error TEXT
//!   attach VCPU FD | detach VCPU      → reply ok | reply not-sent | reply refused STATUS
//!                                       | reply failed KIND | error TEXT
//!   sea VCPU KVM_FLAGS ESR GVA GPA    → verdict ACTION daemon|fallback
//!   poll MS                           → polled N | error TEXT
//!   stats                             → stats ATTACHED REFUSED FAILED ATTACHED_VCPUS CONNECTED
//!   lost                              → lost LOST_VCPUS due 0|1 (`reattach_due`)
//!   reattach                          → reattached N | failed KIND
//!   close                             → ok
//!
//! Numbers are decimal or 0x-prefixed hex. `attach_driver --hello-timeout-ms N` waits N ms for
//! WELCOME and for each attach reply instead of 20 s.

use std::time::Duration;

#[path = "common/mod.rs"]
mod common;
use common::num;
use seawall_plugin::{cap, wire, AttachReply, Config, Exit, Hello, Plugin, Source};

fn reply_line(r: Result<AttachReply, seawall_plugin::Error>) -> String {
    match r {
        Ok(AttachReply::Ok) => "reply ok".into(),
        Ok(AttachReply::NotSent) => "reply not-sent".into(),
        Ok(AttachReply::Refused(s)) => format!("reply refused {s}"),
        Ok(AttachReply::Failed(kind)) => format!("reply failed {kind:?}"),
        Err(e) => format!("error {e}"),
    }
}

fn run(plugin: &mut Plugin, w: &[&str]) -> String {
    match w[0] {
        "connect" => {
            let hello = Hello {
                caps: cap::SEA_TO_USER | cap::INJECT_EXT_DABT | cap::RAS,
                vmm_pid: std::process::id(),
                vcpu_count: num(w[3]) as u32,
                vm_id: w[2].into(),
                ..Hello::default()
            };
            match plugin.connect(w[1], &hello) {
                Ok(x) => format!("welcome {}", x.session_id),
                Err(e) => format!("error {e}"),
            }
        }
        "attach" => reply_line(plugin.attach_vcpu(num(w[1]) as u32, num(w[2]) as i32)),
        "detach" => reply_line(Ok(plugin.detach_vcpu(num(w[1]) as u32))),
        "sea" => {
            let v = plugin.handle_exit(&Exit::Sea {
                vcpu: num(w[1]) as u32,
                kvm_flags: num(w[2]),
                esr: num(w[3]),
                gva: num(w[4]),
                gpa: num(w[5]),
            });
            let source = if v.source == Source::Daemon { "daemon" } else { "fallback" };
            format!("verdict {} {source}", v.action.name())
        }
        "poll" => match plugin.poll(Duration::from_millis(num(w[1]))) {
            Ok(n) => format!("polled {n}"),
            Err(e) => format!("error {e}"),
        },
        "stats" => {
            let s = plugin.stats();
            let connected = u8::from(plugin.connected());
            let attached = plugin.attached_vcpus();
            format!("stats {} {} {} {attached} {connected}", s.attached, s.attach_refused, s.attach_failed)
        }
        "lost" => format!("lost {} due {}", plugin.lost_vcpus(), u8::from(plugin.reattach_due())),
        "reattach" => match plugin.reattach() {
            Ok(n) => format!("reattached {n}"),
            Err(kind) => format!("failed {kind:?}"),
        },
        "close" => {
            plugin.close(wire::goodbye::NORMAL);
            "ok".into()
        }
        other => format!("error unknown command {other}"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let hello_timeout = match args.get(1).map(String::as_str) {
        Some("--hello-timeout-ms") => Duration::from_millis(num(&args[2])),
        _ => Duration::from_secs(20),
    };
    let config = Config { deadline: Duration::from_secs(20), hello_timeout, ..Config::default() };
    let mut plugin = Plugin::new(config);
    common::serve(|words| run(&mut plugin, words));
}
