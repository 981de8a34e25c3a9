/*
 * seawall plugin, C11, no dependencies beyond POSIX sockets: the VMM side of the seawall plugin
 * protocol, version 1.1, and 1.0 on request (docs/protocol.md is the normative text; section numbers
 * below refer to it).
 *
 * One struct seawall_plugin per VM connection: a Unix socket it opens (seawall_connect), or an fd
 * the VMM already holds, such as a virtio-serial port that reaches the daemon from inside a guest
 * (seawall_connect_fd). Calls are not thread-safe: a VMM with several vCPU threads wraps every
 * call on a plugin, seawall_handle_sea() included, in one mutex (docs/protocol.md §5.4). The
 * reader-thread model of §5.4 does not fit this library: each seawall_handle_* reads its verdict
 * from the socket itself, so there is no way to hand verdicts to threads that wait for them.
 * Behind that mutex an exit also waits for the exits ahead of it. Once one exit has missed its
 * deadline on a connection, every later exit is answered by the fallback at once (its event is
 * still written, and kept, as after a missed deadline: stalled_fallbacks counts them) until the
 * daemon answers again, with a VERDICT or a HEARTBEAT echo that seawall_handle_* or seawall_poll
 * reads. So with a frozen daemon and N vCPUs queued on the mutex the worst wait is about one
 * deadline (the first exit's) plus the time of N non-blocking writes, not N deadlines. A daemon
 * that still answers each exit just inside its deadline can make the Nth queued vCPU wait up to N
 * deadlines: that is the price of the one mutex.
 * Nothing here calls KVM: the caller applies the verdict on its vCPU thread (§5). Before an INJECT
 * verdict is returned its kvm_vcpu_events image is checked against the HELLO's capabilities (§5.1,
 * INJECT): SError bytes zero, pad and reserved bytes zero for the declared layout (posted with
 * SEAWALL_CAP_EXT_ABT_ESR, merged without), each flag 0 or 1, exactly one of ext_dabt_pending and
 * ext_iabt_pending set, ext_abt_esr zero without ext_abt_has_esr, ext_abt_has_esr only with
 * SEAWALL_CAP_RAS, ext_abt_esr within ISS [24:0] and with an FSC KVM keeps; and no INJECT at all
 * without SEAWALL_CAP_INJECT_EXT_DABT or for a SIGBUS. An image that fails is a protocol error
 * (§5.3): the exit gets the fallback (kept for replay), the connection is dropped and the reconnect
 * is scheduled; refused_verdicts counts them and refusal names the last rule broken.
 *
 * Longer than 350 lines: the whole API a VMM calls, each part documented where its author reads it,
 * in the one header vendored beside seawall_plugin.c.
 *
 * Reconnecting is the caller's job (§9 rule 5): the library never connects by itself, and while
 * it is not connected every exit gets the fallback at once and is kept for replay. A VMM
 *   - calls seawall_connect (or seawall_connect_fd with a freshly opened port) at start-up, and
 *     again whenever seawall_reconnect_due(p) says so: from a timer or its event loop, never on a
 *     vCPU thread, since connect waits up to hello_timeout_ms for WELCOME;
 *   - needs no backoff of its own: every failed connect, and every loss of an established
 *     connection (an I/O error, a protocol error, the daemon's ERROR or GOODBYE SHUTDOWN, seen by
 *     seawall_handle_*, seawall_poll or seawall_send_applied*), puts the next attempt
 *     SEAWALL_RECONNECT_MIN_MS later, doubling up to SEAWALL_RECONNECT_MAX_MS. It starts over once a
 *     session proves useful: at the echo of its replays, at a VERDICT applied, or once the session
 *     has been up SEAWALL_RECONNECT_MAX_MS. A WELCOME alone does not reset it: a daemon that ends
 *     every session right after WELCOME is reconnected to ever more slowly, up to the bound;
 *   - keeps no events itself: the connect that gets WELCOME replays every kept event, then
 *     seawall_poll forgets them when the daemon acknowledges them (its HEARTBEAT echo). A session
 *     that the daemon ends with an ERROR before that echo refused one of them: the oldest replayed
 *     one is dropped and counted (replays_refused) unless the bound dropped it already
 *     (kept_dropped), so an event every session refuses is not replayed for ever. An event the
 *     daemon would refuse for a reason the plugin can see (a vCPU index past the HELLO's
 *     vcpu_count, and the other checks of §4.4 that the event and the HELLO decide) is answered by
 *     the fallback and neither sent nor kept (invalid_events);
 *   - stops asking after seawall_close: a closed plugin is simply not connected, and
 *     seawall_reconnect_due says 1 again once the backoff passes.
 * An exit whose verdict only came late keeps the connection: that is not a disconnect. An exit whose
 * event could not even be written before the deadline (the daemon stopped reading) drops it, so that
 * the reconnect replays the event. A connect holds the plugin (and the VMM's mutex around it) until
 * WELCOME or hello_timeout_ms, and with socket activation and the daemon down every attempt runs to
 * that timeout: where vCPU threads share the plugin, keep hello_timeout_ms no longer than a vCPU may
 * wait (deadline_ms is a good value). With vCPUs registered for attachment (seawall_attach_vcpu,
 * below), a connect that gets WELCOME then attaches them for the new session, waiting up to
 * hello_timeout_ms more for the daemon's replies; and the same timer calls seawall_reattach
 * whenever seawall_reattach_due(p) says so, to attach again the vCPUs a closed attach connection
 * lost within the session.
 */
#ifndef SEAWALL_PLUGIN_H
#define SEAWALL_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#define SEAWALL_PROTOCOL_VERSION 1u
/* The highest minor version spoken (1.1); seawall_set_minor(p, 0) asks for 1.0 instead (§10). A
 * daemon that refuses it (REJECT VERSION, or a 1.0 daemon's ERROR BAD_FIELD) is asked for its lower
 * version in the retry that follows; every later connect asks for the configured minor again. */
#define SEAWALL_PROTOCOL_MINOR 1u
#define SEAWALL_HEADER_SIZE 8u
/* The daemon's default limit; a plugin never needs to receive a larger frame (§7). */
#define SEAWALL_MAX_BODY 16384u
#define SEAWALL_VCPU_EVENTS_SIZE 64u
#define SEAWALL_VM_ID_MAX 128u
#define SEAWALL_LABELS_MAX 32u
#define SEAWALL_LABEL_KEY_MAX 63u
#define SEAWALL_LABEL_VALUE_MAX 255u
#define SEAWALL_VCPUS_MAX 4096u
/* Bound on fallback-handled events kept for replay (§9); past it the oldest is dropped. */
#define SEAWALL_REPLAY_MAX 64u
/* Reconnect backoff (§9 rule 5), in ms: the first wait, doubled after each failure up to the max. */
#define SEAWALL_RECONNECT_MIN_MS 50
#define SEAWALL_RECONNECT_MAX_MS 2000
/* vCPU attachment (§9a): room for an attach socket path (sockaddr_un.sun_path, its NUL included). */
#define SEAWALL_ATTACH_PATH_MAX 108u

/* Status of an attach reply (docs/actions.md "vCPU attachment"). MALFORMED, FD_COUNT, PEER_MISMATCH
 * and SESSION_MISMATCH close the attach connection. */
enum seawall_attach_status {
  SEAWALL_ATTACH_OK = 0,
  SEAWALL_ATTACH_MALFORMED = 1,
  SEAWALL_ATTACH_FD_COUNT = 2,
  SEAWALL_ATTACH_UNKNOWN_SESSION = 3,
  SEAWALL_ATTACH_PEER_MISMATCH = 4,
  SEAWALL_ATTACH_VCPU_RANGE = 5,
  SEAWALL_ATTACH_BAD_FD = 6,
  SEAWALL_ATTACH_NOT_ATTACHED = 7,
  SEAWALL_ATTACH_SESSION_MISMATCH = 8,
  SEAWALL_ATTACH_LIMIT = 9 /* the daemon holds as many attached vCPUs as it takes (attach.maxVcpus) */
};

/* Message types (§2). */
enum seawall_msg {
  SEAWALL_MSG_HELLO = 0x01,
  SEAWALL_MSG_WELCOME = 0x02,
  SEAWALL_MSG_REJECT = 0x03,
  SEAWALL_MSG_EVENT_SEA = 0x10,
  SEAWALL_MSG_EVENT_NISV = 0x11,
  SEAWALL_MSG_EVENT_MMIO = 0x12,
  SEAWALL_MSG_EVENT_SIGBUS = 0x13,
  SEAWALL_MSG_VERDICT = 0x20,
  SEAWALL_MSG_APPLIED = 0x21,
  SEAWALL_MSG_HEARTBEAT = 0x30,
  SEAWALL_MSG_ERROR = 0x31,
  SEAWALL_MSG_GOODBYE = 0x32
};

/* HELLO capability bits (§6). */
#define SEAWALL_CAP_SEA_TO_USER (1u << 0)
#define SEAWALL_CAP_INJECT_EXT_DABT (1u << 1)
#define SEAWALL_CAP_EXT_ABT_ESR (1u << 2)
#define SEAWALL_CAP_EMULATE_ABORT (1u << 3)
#define SEAWALL_CAP_RAS (1u << 4)
#define SEAWALL_CAP_NISV_TO_USER (1u << 5)

/* Event flags (§4.4). */
#define SEAWALL_EVENT_REPLAY 0x0001u

/* si_code of the SIGBUS a memory error raises (sigaction(2)); EVENT_SIGBUS carries one of them. */
#define SEAWALL_BUS_MCEERR_AR 4u
#define SEAWALL_BUS_MCEERR_AO 5u
#define SEAWALL_NO_VCPU 0xFFFFFFFFu
#define SEAWALL_NO_GPA UINT64_C(0xFFFFFFFFFFFFFFFF)

/* kvm_run.arm_sea.flags bit 0. */
#define SEAWALL_KVM_SEA_FLAG_GPA_VALID 0x1u

/* REJECT/ERROR codes a plugin acts on (§8). */
#define SEAWALL_ERR_BAD_FIELD 6u
#define SEAWALL_ERR_VERSION 5u

/* APPLIED source (1.1, §4.6): whose answer the vCPU got. */
#define SEAWALL_APPLIED_VERDICT 0u
#define SEAWALL_APPLIED_FALLBACK 1u

/* VERDICT actions and flags (§4.5). */
enum seawall_action {
  SEAWALL_ACTION_RESUME = 0,
  SEAWALL_ACTION_INJECT = 1,
  SEAWALL_ACTION_INJECT_EMULATED = 2,
  SEAWALL_ACTION_KILL = 3
};
#define SEAWALL_VERDICT_MIGRATING 0x01u
#define SEAWALL_VERDICT_DRY_RUN 0x02u
#define SEAWALL_VERDICT_DOWNGRADED 0x04u

/* GOODBYE reasons (§4.8). */
#define SEAWALL_GOODBYE_NORMAL 0u
#define SEAWALL_GOODBYE_SHUTDOWN 1u
#define SEAWALL_GOODBYE_VM_EXITING 2u

/* What the plugin does by itself when no verdict comes in time (§9). */
enum seawall_fallback { SEAWALL_FALLBACK_INJECT, SEAWALL_FALLBACK_KILL, SEAWALL_FALLBACK_RESUME };

struct seawall_label {
  const char *key;
  const char *value;
};

struct seawall_hello {
  uint32_t caps;
  uint32_t vmm_pid;
  uint32_t vcpu_count;
  /* KVM cap number of the posted IABT/ESR ABI as probed on this host, 0 when absent (§6). */
  uint32_t ext_abt_esr_cap;
  const char *vm_id;
  const struct seawall_label *labels;
  size_t label_count;
};

struct seawall_welcome {
  uint16_t version;
  uint16_t minor; /* the session's minor version: 1 (1.1) or 0 (1.0) */
  uint32_t max_in_flight;
  uint64_t session_id;
  uint32_t heartbeat_ms;
  uint32_t max_body; /* 1.1: the largest body the daemon accepts; 0 in a 1.0 session */
};

/* A KVM_EXIT_ARM_SEA exit: kvm_run.arm_sea copied as the kernel left it. */
struct seawall_sea_exit {
  uint32_t vcpu;
  uint64_t kvm_flags;
  uint64_t esr;
  uint64_t gva;
  uint64_t gpa;
};

/* A KVM_EXIT_ARM_NISV exit: kvm_run.arm_nisv as the kernel left it. */
struct seawall_nisv_exit {
  uint32_t vcpu;
  uint64_t esr_iss;
  uint64_t fault_ipa;
};

/* A KVM_EXIT_MMIO exit the VMM has no device for: kvm_run.mmio as the kernel left it. */
struct seawall_mmio_exit {
  uint32_t vcpu;
  uint64_t phys_addr;
  uint8_t data[8];
  uint32_t len;
  uint8_t is_write;
};

/* A memory-error SIGBUS: vcpu is the vCPU whose thread took a BUS_MCEERR_AR, else SEAWALL_NO_VCPU;
 * gpa is si_addr translated by the VMM, or SEAWALL_NO_GPA. */
struct seawall_sigbus {
  uint32_t vcpu;
  uint16_t si_code;
  uint16_t addr_lsb;
  uint64_t gpa;
};

enum seawall_source { SEAWALL_FROM_DAEMON, SEAWALL_FROM_FALLBACK };

struct seawall_verdict {
  uint32_t seq;
  uint8_t action; /* enum seawall_action */
  uint8_t flags;  /* SEAWALL_VERDICT_* */
  uint32_t grace_ms;
  uint64_t esr;
  /* For INJECT: the struct kvm_vcpu_events image to pass to KVM_SET_VCPU_EVENTS unchanged. */
  uint8_t vcpu_events[SEAWALL_VCPU_EVENTS_SIZE];
  enum seawall_source source;
};

struct seawall_kept {
  uint32_t seq;
  uint32_t len; /* 0: slot outside the ring */
  uint8_t frame[SEAWALL_HEADER_SIZE + 56];
};

/* The late-KILL callback (seawall_on_late_kill). */
typedef void (*seawall_late_kill_fn)(void *ctx, const struct seawall_verdict *kill);

struct seawall_plugin {
  int fd; /* -1 when not connected */
  int deadline_ms;
  int hello_timeout_ms;
  enum seawall_fallback fallback;
  uint32_t next_seq;
  struct seawall_welcome welcome;
  /* Code and text of the last REJECT or ERROR received (0 / "" when none). */
  uint16_t last_code;
  char last_text[256];
  /* Receive state: a frame may arrive across several reads and deadlines. */
  uint8_t rx[SEAWALL_HEADER_SIZE + SEAWALL_MAX_BODY];
  size_t rx_len;
  /* Fallback-handled events awaiting replay, oldest first (a ring of kept_count events, each with
   * len != 0); kept_dropped counts the ones the bound pushed out before they were replayed. */
  struct seawall_kept kept[SEAWALL_REPLAY_MAX];
  size_t kept_head;
  size_t kept_count;
  uint64_t kept_dropped;
  /* Replays written (a kept event written twice, after two reconnects, counts twice). */
  uint64_t replayed;
  /* The first `replay_unacked` kept events were written before the HEARTBEAT `replay_nonce`; its
   * echo means the daemon stored them, and only then are they dropped from the ring (§9).
   * replay_nonce is 0 when no echo is awaited. replay_bound_dropped is 1 once the bound has pushed
   * out the oldest of them to keep a later exit: a session ended by an ERROR then drops no more. */
  size_t replay_unacked;
  uint64_t replay_nonce;
  int replay_bound_dropped;
  uint64_t next_nonce;
  /* 1 when fd is a socket (send with MSG_NOSIGNAL), 0 for other fds such as a virtio-serial port. */
  int fd_is_socket;
  /* VERDICTs that arrived after their deadline and were not applied (§9 rule 4); late_kills counts
   * the KILLs among them, each handed to on_late_kill (seawall_on_late_kill). */
  uint64_t late_verdicts;
  uint64_t late_kills;
  seawall_late_kill_fn on_late_kill;
  void *late_kill_ctx;
  /* 1 once an exit has missed its deadline on this connection, until the daemon answers again (a
   * VERDICT or a HEARTBEAT): meanwhile exits get the fallback at once, counted in
   * stalled_fallbacks (the header's first comment). */
  int stalled;
  uint64_t stalled_fallbacks;
  /* Exits answered by the fallback and neither sent nor kept because the daemon would refuse the
   * event (vCPU index past the HELLO's vcpu_count, …), and kept events dropped for the same reason
   * before a replay. */
  uint64_t invalid_events;
  /* Kept events dropped because the daemon ended their replay session with an ERROR (§9); one the
   * bound dropped first in that session counts in kept_dropped instead. */
  uint64_t replays_refused;
  /* vcpu_count of the last HELLO that got WELCOME (0 before the first): what events are checked
   * against. */
  uint32_t session_vcpus;
  /* caps of that HELLO: in 1.1 an event kind needs its capability declared (§4.4). */
  uint32_t session_caps;
  /* caps of the HELLO of the last connect attempt, answered or not (UINT32_MAX before the first):
   * without SEAWALL_CAP_INJECT_EXT_DABT the INJECT fallback is RESUME (§9). */
  uint32_t declared_caps;
  /* The minor version set by seawall_set_minor (default SEAWALL_PROTOCOL_MINOR), and the one the
   * next HELLO asks for: lowered for the one retry after a daemon that speaks less (§10). */
  uint16_t max_minor;
  uint16_t ask_minor;
  /* REJECT VERSION: the highest version the daemon speaks (0.0 when it named none). */
  uint16_t supported_major;
  uint16_t supported_minor;
  /* Reconnect backoff: the next connect is due from reconnect_at_ms (CLOCK_MONOTONIC, ms; 0: at
   * once), and the failure or loss after it waits reconnect_backoff_ms. */
  int64_t reconnect_at_ms;
  int reconnect_backoff_ms;
  /* When the current session got its WELCOME (CLOCK_MONOTONIC, ms): one up SEAWALL_RECONNECT_MAX_MS
   * proved useful, and its loss schedules the reconnect from the first step. */
  int64_t session_at_ms;
  /* VERDICTs refused because their INJECT image fails the checks against the HELLO (this header's
   * first comment), each a protocol error; refusal names the rule the last one broke (a static
   * string; NULL before the first). */
  uint64_t refused_verdicts;
  const char *refusal;
  /* vCPU attachment (§9a). attach_fd is the session's attach connection (-1: none open); it is
   * opened by the first ATTACH of a session and closed when the session ends. */
  int attach_fd;
  /* The attach socket set by seawall_set_attach_socket (attach_path_set = 1; "" for none), and the
   * default seawall_connect derives from the plugin socket's path ("" for none). */
  int attach_path_set;
  char attach_path[SEAWALL_ATTACH_PATH_MAX];
  char attach_default[SEAWALL_ATTACH_PATH_MAX];
  /* The fd registered for each vCPU (-1: none), still the caller's; and whether the daemon accepted
   * its ATTACH in the current session. */
  int vcpu_fd[SEAWALL_VCPUS_MAX];
  uint8_t vcpu_attached[SEAWALL_VCPUS_MAX];
  /* vCPUs attached in the current session; ATTACHes that got no answer (no attach socket, the
   * connection failed or closed, no reply in time, a malformed reply, a vCPU index past a later
   * HELLO's vcpu_count, and the vCPUs a failed connection left untried) and ATTACHes the daemon
   * refused with a status. */
  uint32_t attached;
  uint64_t attach_failed;
  uint64_t attach_refused;
  /* vCPUs lost within the session with a closed attach connection (vcpu_lost[v] = 1; `lost` of
   * them), for seawall_reattach; the next WELCOME attaches them as it attaches every vCPU. The
   * next seawall_reattach is due from reattach_at_ms (CLOCK_MONOTONIC, ms; 0: at once), and one
   * that leaves vCPUs lost puts the one after it reattach_backoff_ms later. */
  uint8_t vcpu_lost[SEAWALL_VCPUS_MAX];
  uint32_t lost;
  int64_t reattach_at_ms;
  int reattach_backoff_ms;
};

/* Initialises `p` (not connected). deadline_ms bounds each wait for a verdict; the handshake
 * waits hello_timeout_ms. */
void seawall_init(struct seawall_plugin *p, int deadline_ms, int hello_timeout_ms,
                  enum seawall_fallback fallback);

/* Connects to `path`, says HELLO and waits for WELCOME; then replays kept events (§9).
 * Returns 0, or a negative errno: -EINVAL (HELLO outside the limits), -ETIMEDOUT (no WELCOME),
 * -ECONNREFUSED (REJECT or ERROR: see last_code/last_text), -EPROTO (malformed answer),
 * or the errno of socket/connect/write. */
int seawall_connect(struct seawall_plugin *p, const char *path, const struct seawall_hello *hello);

/* Like seawall_connect, over an fd the VMM already opened: a connected stream socket, or a
 * character device such as a virtio-serial port (/dev/vportNpM) whose host end QEMU connects to the
 * daemon's socket. The plugin owns the fd from the call on, whatever the result: every error
 * closes it (-EINVAL for a HELLO outside the limits, -EBADF for an fd that is not open, an fcntl
 * errno, or a failed or refused handshake), and so does a dropped connection later. The caller
 * never closes it; to reconnect, open the port again. The fd is made non-blocking. */
int seawall_connect_fd(struct seawall_plugin *p, int fd, const struct seawall_hello *hello);

/* 1 when the plugin is not connected and its reconnect backoff has passed: time to call
 * seawall_connect (or seawall_connect_fd) again. 0 while connected or still backing off. A plugin
 * that never connected is due at once. */
int seawall_reconnect_due(const struct seawall_plugin *p);

/* Reports one SEA exit and fills `out` with the verdict to apply: the daemon's, or the fallback
 * when the deadline passes or the connection is down (the event is then kept for replay), or when
 * the daemon would refuse the event (then neither sent nor kept: invalid_events).
 * Returns 0 (daemon) or 1 (fallback). */
int seawall_handle_sea(struct seawall_plugin *p, const struct seawall_sea_exit *exit_info,
                       struct seawall_verdict *out);

/* The same for the other events (§4.4): the verdict, or the fallback (after a SIGBUS the inject
 * fallback resumes: KVM defines no injection there). seawall_handle_sigbus returns -EINVAL for a
 * si_code other than BUS_MCEERR_AR/AO. */
int seawall_handle_nisv(struct seawall_plugin *p, const struct seawall_nisv_exit *exit_info,
                        struct seawall_verdict *out);
int seawall_handle_mmio(struct seawall_plugin *p, const struct seawall_mmio_exit *exit_info,
                        struct seawall_verdict *out);
int seawall_handle_sigbus(struct seawall_plugin *p, const struct seawall_sigbus *info,
                          struct seawall_verdict *out);

/* Reads what the daemon sent while no event was waiting — late verdicts (not applied, their kept
 * events forgotten; a late KILL is handed to the late-kill callback) and HEARTBEAT echoes —
 * waiting up to timeout_ms for the first frame. Returns the number of frames handled, or a
 * negative errno after which the connection is dropped. */
int seawall_poll(struct seawall_plugin *p, int timeout_ms);

/* A KILL VERDICT that came after its exit's deadline, when the fallback had already answered that
 * exit. The daemon enforces a KILL even when it is late (docs/protocol.md §5.1): it started the
 * grace when it wrote the VERDICT and SIGKILLs the VMM at its end. So the library does not drop it:
 * it calls `fn` with it (action SEAWALL_ACTION_KILL, its seq and grace_ms, source
 * SEAWALL_FROM_DAEMON), and in a 1.1 session still answers it with APPLIED source FALLBACK for the
 * fallback the vCPU already got. That is the only way a VMM learns of a late KILL: one that sets no
 * callback has its VM killed at the end of the grace without warning. `fn` runs inside whichever
 * call read the VERDICT (seawall_handle_* of another exit, seawall_poll, seawall_close, or a call
 * that found the connection broken), on that call's thread and under the VMM's mutex: it must not
 * call this library, and should only start the VM's termination (set a flag, write an eventfd)
 * and return. late_kills counts late KILLs, with or without a callback. NULL removes it. */
void seawall_on_late_kill(struct seawall_plugin *p, seawall_late_kill_fn fn, void *ctx);

/* Asks for protocol 1.`minor` from the next connect on: 1 (the default) or 0 for a daemon or a
 * deployment that must see 1.0. Returns 0, or -EINVAL for a minor this library does not speak. */
int seawall_set_minor(struct seawall_plugin *p, uint16_t minor);

/* Reports the result of applying a daemon verdict (0 or -errno). Returns 0 or a negative errno. */
int seawall_send_applied(struct seawall_plugin *p, uint32_t seq, int32_t result);

/* Reports that the vCPU got `action` from the plugin's own fallback instead of the verdict `seq`
 * (e.g. after the injection failed with `result`). In a 1.1 session this is the 16-byte APPLIED
 * with source FALLBACK; in 1.0 the plain APPLIED. A late VERDICT is answered so by the library
 * itself (§4.6). Returns 0 or a negative errno. */
int seawall_send_applied_fallback(struct seawall_plugin *p, uint32_t seq, int32_t result, uint8_t action);

/* Says GOODBYE, waits up to the deadline for the daemon's GOODBYE or EOF, and closes; closes the
 * attach connection too, and forgets every registered vCPU fd. */
void seawall_close(struct seawall_plugin *p, uint16_t reason);

/*
 * vCPU attachment (§9a; docs/actions.md "vCPU attachment"), optional: the daemon maps each
 * attached vCPU's kvm_run page and decides that vCPU's exits on the kernel's record rather than on
 * the copy in the event. The VMM registers each vCPU fd once; the library passes it (SCM_RIGHTS)
 * over a SOCK_SEQPACKET attach connection of the current session, and again after every WELCOME:
 * an attachment is bound to a session, and the daemon releases it when the session ends, so each
 * connect that gets WELCOME (a reconnect, a restarted daemon) attaches every registered vCPU anew
 * on a fresh attach connection, after the replays. That connect then waits up to hello_timeout_ms
 * more, for all the replies together. Attachment never stands in the way of the events: a failed
 * or refused ATTACH is counted (attach_failed, attach_refused) and the exits flow on the plugin
 * socket as before. Like the other calls, these are not thread-safe, and they may wait up to
 * hello_timeout_ms: call them where the VMM calls seawall_connect, not on a vCPU thread.
 *
 * Within a session the attach connection may close: an ATTACH or DETACH that fails (no reply in
 * time, an I/O error, a malformed reply), a status that closes it (enum seawall_attach_status), or
 * the daemon closing it. The daemon then releases every vCPU attached over it. Those vCPUs are
 * lost (vcpu_lost, `lost`), and so is a vCPU whose own ATTACH went out on a connection that then
 * failed; `attached` no longer counts them. Nothing is attached again behind the VMM's back, on an
 * exit or any other call: seawall_reattach does it, on one attach connection (the open one, else a
 * fresh one), and the next WELCOME does it anyway. The VMM calls seawall_reattach when
 * seawall_reattach_due says so, from the timer or event loop where it reconnects. An attempt that
 * leaves vCPUs lost (the connection could not be opened, failed or closed again) counts them in
 * attach_failed and puts the next attempt SEAWALL_RECONNECT_MIN_MS later, doubling up to
 * SEAWALL_RECONNECT_MAX_MS; one that attaches them all starts the wait over. A vCPU the daemon
 * refuses with a status is no longer lost: it waits for the next WELCOME, or for the VMM's own
 * seawall_attach_vcpu. A vCPU that was never attached because no attach connection could be
 * opened at all (no attach socket) is not lost either: it too waits for the next WELCOME.
 *
 * The library neither dups nor closes a vCPU fd: a copy held here would keep the VM's kernel
 * objects alive past the VMM's own close. The caller keeps the fd open while it is registered,
 * until seawall_detach_vcpu or seawall_close, which forget it. The per-vCPU tables make struct
 * seawall_plugin about 45 KiB: keep it in static or heap storage.
 */

/* The attach socket: `path`, or "" for none; NULL goes back to the default, which seawall_connect
 * derives from the plugin socket's path as the daemon does: plugin.sock -> attach.sock in the same
 * directory, any other X.sock (or X) -> X-attach.sock. A plugin connected by seawall_connect_fd has
 * no default. Used when the next attach connection opens. Returns 0, or -ENAMETOOLONG. */
int seawall_set_attach_socket(struct seawall_plugin *p, const char *path);

/* Registers `vcpu_fd` as vCPU `vcpu` (replacing an earlier fd of that vCPU) and, in a session,
 * attaches it at once, waiting up to hello_timeout_ms for the reply. Returns -EINVAL for a vCPU
 * index of SEAWALL_VCPUS_MAX or more, or past the vcpu_count of the last HELLO that got WELCOME,
 * and -EBADF for a negative fd: then nothing is registered nor sent. Otherwise the vCPU is
 * registered, attached after every WELCOME from now on, and the result is 0 (attached),
 * -ENOTCONN (no session now: attached after the next WELCOME), a positive status (the daemon
 * refused: an enum seawall_attach_status, or one this library does not know, which keeps the
 * connection; INT_MAX stands for any status above INT_MAX), or a negative errno of the attach
 * connection:
 * -EDESTADDRREQ (no attach socket), -ENOENT or -ECONNREFUSED (nobody listens there), -ETIMEDOUT,
 * -EPIPE (the daemon closed it), -EPROTO (a malformed reply), or that of socket/connect/sendmsg.
 * Such an error, and the statuses that end the connection (enum seawall_attach_status), close the
 * attach connection: the daemon releases every vCPU attached over it, those vCPUs are lost (this
 * one too when its ATTACH went out on that connection) for seawall_reattach, and the next ATTACH
 * opens a fresh one. An attach connection the daemon closed meanwhile (one that held nothing for
 * its attach.idleMs) is replaced by a fresh one without an error; any vCPU it still held is lost. */
int seawall_attach_vcpu(struct seawall_plugin *p, uint32_t vcpu, int vcpu_fd);

/* 1 when in a session some registered vCPUs are lost (above) and the re-attach wait has passed:
 * time to call seawall_reattach. The first attempt after a loss is due at once, unless the wait
 * after a failed attempt is still running. Also 1 when vCPUs are attached over a connection the
 * daemon has closed, or on which a record came that no request asked for: seawall_reattach finds
 * them lost. 0 outside a session, and while nothing is lost. Waits for nothing. */
int seawall_reattach_due(const struct seawall_plugin *p);

/* Attaches the lost vCPUs again, in the current session: first closes an attach connection the
 * daemon closed (its vCPUs are lost), then sends an ATTACH for each lost vCPU on the open
 * connection or one fresh one, all replies within hello_timeout_ms. Once that connection fails or
 * a status closes it, the vCPUs not yet tried are counted in attach_failed and stay lost, with
 * those the closing released: no second connection is opened. Outcomes count as those of
 * seawall_attach_vcpu (attach_failed, attach_refused, `attached`). Returns the number of vCPUs
 * attached again (0 when nothing is lost, or outside a session: the next WELCOME attaches every
 * registered vCPU), or a negative errno when the attach connection could not be opened or ended
 * the attempt: -ECONNRESET for a status that closes it, else as for seawall_attach_vcpu. */
int seawall_reattach(struct seawall_plugin *p);

/* Forgets vCPU `vcpu`'s fd (the caller may close it once this returns) and, when it is attached in
 * the current session, asks the daemon to release it (DETACH), waiting up to hello_timeout_ms.
 * Returns -EINVAL for an index of SEAWALL_VCPUS_MAX or more, -ENOENT when no fd is registered
 * there; else 0, a positive status as for seawall_attach_vcpu, or a negative errno of the attach
 * connection, which is then closed: the daemon releases every vCPU attached over it, and they are
 * lost, for seawall_reattach or the next WELCOME. A lost vCPU detached is no longer lost. */
int seawall_detach_vcpu(struct seawall_plugin *p, uint32_t vcpu);

/* "RESUME", "INJECT", "INJECT_EMULATED", "KILL", or "UNKNOWN". */
const char *seawall_action_name(uint8_t action);

#endif
