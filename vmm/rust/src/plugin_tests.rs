//! Unit tests of `plugin.rs` that reach its private state (the reconnect schedule).

use super::*;

fn hello() -> Hello {
    Hello { caps: 3, vmm_pid: std::process::id(), vcpu_count: 1, vm_id: "re".into(), ..Hello::default() }
}

/// A 1.1 WELCOME frame.
fn welcome() -> Vec<u8> {
    let mut welcome = vec![24, 0, 0, 0, wire::MSG_WELCOME as u8, 0, 0, 0, 1, 0, 1, 0, 16, 0, 0, 0];
    welcome.extend_from_slice(&[0; 8]); // session id
    welcome.extend_from_slice(&5000u32.to_le_bytes());
    welcome.extend_from_slice(&16384u32.to_le_bytes());
    welcome
}

/// The wait the call between `before` and `after` scheduled was `expect`.
fn waited(p: &Plugin, before: Instant, after: Instant, expect: Duration) -> bool {
    let at = p.reconnect_at.expect("a reconnect is scheduled");
    at >= before + expect && at <= after + expect
}

#[test]
fn reconnect_backoff_doubles_to_its_bound_resets_on_welcome_and_is_armed_by_a_loss() {
    let mut p = Plugin::new(Config { deadline: Duration::from_millis(200), ..Config::default() });
    assert!(p.reconnect_due(), "never connected: due at once");
    let path = std::env::temp_dir().join(format!("seawall-rust-re-{}.sock", std::process::id()));
    let mut expect = Plugin::RECONNECT_MIN;
    for ms in [50, 100, 200, 400, 800, 1600, 2000, 2000] {
        assert_eq!(expect, Duration::from_millis(ms));
        let before = Instant::now();
        assert!(p.connect(&path, &hello()).is_err());
        assert!(waited(&p, before, Instant::now(), expect), "failure waiting {ms} ms");
        expect = (expect * 2).min(Plugin::RECONNECT_MAX);
    }
    // Exits answered while down do not push the reconnect away.
    let at = p.reconnect_at;
    let sea = Exit::Sea { vcpu: 0, kvm_flags: 1, esr: 0x9200_0010, gva: 0, gpa: 0 };
    assert_eq!(p.handle_exit(&sea).source, crate::Source::Fallback);
    assert_eq!(p.reconnect_at, at);
    while !p.reconnect_due() {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(Instant::now() >= at.unwrap());

    // A WELCOME resets the backoff, and the kept exit is replayed.
    let (ours, mut daemon) = UnixStream::pair().unwrap();
    daemon.write_all(&welcome()).unwrap();
    p.connect_stream(ours, &hello()).expect("WELCOME");
    assert!(!p.reconnect_due());
    assert_eq!((p.backoff, p.reconnect_at, p.stats().replayed), (Plugin::RECONNECT_MIN, None, 1));

    // The daemon goes away: the exit that finds out schedules the reconnect.
    drop(daemon);
    let before = Instant::now();
    assert_eq!(p.handle_exit(&sea).source, crate::Source::Fallback);
    assert!(!p.connected());
    assert!(waited(&p, before, Instant::now(), Plugin::RECONNECT_MIN));
}

#[test]
fn a_daemon_that_floods_heartbeats_and_never_answers_gets_the_fallback_at_the_deadline() {
    let (ours, mut daemon) = UnixStream::pair().unwrap();
    daemon.write_all(&welcome()).unwrap();
    let mut p = Plugin::new(Config { deadline: Duration::from_millis(500), ..Config::default() });
    p.connect_stream(ours, &hello()).expect("WELCOME");
    // HEARTBEATs as fast as the plugin reads them, until it closes its end or 10 s pass.
    let flood = std::thread::spawn(move || {
        let blob = [[8, 0, 0, 0, wire::MSG_HEARTBEAT as u8, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0]; 512].concat();
        daemon.set_write_timeout(Some(Duration::from_millis(50))).unwrap();
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            match daemon.write(&blob) {
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => return "peer", // the plugin closed its end
            }
        }
        "timer"
    });
    let sea = Exit::Sea { vcpu: 0, kvm_flags: 1, esr: 0x9200_0010, gva: 0, gpa: 0 };
    let v = p.handle_exit(&sea);
    let connected = p.connected();
    drop(p);
    assert_eq!(flood.join().unwrap(), "peer", "handle_exit returned while the flood went on");
    assert_eq!(v.source, crate::Source::Fallback);
    assert!(connected, "a verdict that did not come in time keeps the connection");
}
