//! Unit tests of `plugin.rs` that reach its private state (the reconnect schedule).

use super::*;

fn hello() -> Hello {
    Hello { caps: 3, vmm_pid: std::process::id(), vcpu_count: 1, vm_id: "re".into(), ..Hello::default() }
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
    let mut welcome = vec![24, 0, 0, 0, wire::MSG_WELCOME as u8, 0, 0, 0, 1, 0, 1, 0, 16, 0, 0, 0];
    welcome.extend_from_slice(&[0; 8]); // session id
    welcome.extend_from_slice(&5000u32.to_le_bytes());
    welcome.extend_from_slice(&16384u32.to_le_bytes());
    daemon.write_all(&welcome).unwrap();
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
