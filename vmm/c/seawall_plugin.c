/*
 * seawall plugin protocol 1.1 (and 1.0 on request), plugin side (docs/protocol.md). Every field is written and read
 * byte by byte in little endian at the offsets of the spec's tables, so the code is independent
 * of the host's endianness, struct padding and alignment.
 *
 * Longer than 350 lines: the whole plugin side of the protocol in one C file, so a VMM can vendor and
 * compile a single file with no build system.
 */
#define _POSIX_C_SOURCE 200809L

#include "seawall_plugin.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* Fixed body sizes (§2). */
#define BODY_WELCOME 24u
#define BODY_EVENT_SEA 56u
#define BODY_EVENT_NISV 40u
#define BODY_EVENT_MMIO 48u
#define BODY_EVENT_SIGBUS 40u
#define BODY_VERDICT 88u
#define BODY_APPLIED 8u
#define BODY_APPLIED_V11 16u
#define BODY_HEARTBEAT 8u
#define BODY_GOODBYE 4u
#define BODY_TEXT_MIN 4u

/* ---- little-endian field access ---------------------------------------------------------- */

static void put_u16(uint8_t *b, uint16_t v) {
  b[0] = (uint8_t)v;
  b[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t *b, uint32_t v) {
  for (int i = 0; i < 4; i++) b[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *b, uint64_t v) {
  for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get_u16(const uint8_t *b) { return (uint16_t)(b[0] | (b[1] << 8)); }

static uint32_t get_u32(const uint8_t *b) {
  return (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) | ((uint32_t)b[3] << 24);
}

static uint64_t get_u64(const uint8_t *b) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | b[i];
  return v;
}

static void put_header(uint8_t *b, uint32_t body_len, uint16_t type) {
  put_u32(b, body_len);
  put_u16(b + 4, type);
  put_u16(b + 6, 0);
}

/* ---- time --------------------------------------------------------------------------------- */

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t realtime_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int remaining_ms(int64_t deadline) {
  int64_t left = deadline - now_ms();
  return left < 0 ? 0 : (int)left;
}

/* ---- socket I/O --------------------------------------------------------------------------- */

/* The address of the Unix socket `path`: 0, or -ENAMETOOLONG. */
static int unix_address(struct sockaddr_un *addr, const char *path) {
  memset(addr, 0, sizeof *addr);
  addr->sun_family = AF_UNIX;
  if (strlen(path) >= sizeof addr->sun_path) return -ENAMETOOLONG;
  memcpy(addr->sun_path, path, strlen(path));
  return 0;
}

/* A socket of `type` connected to `addr`, close-on-exec and non-blocking: its fd, or a negative
 * errno. Both flags come with the socket itself: set by fcntl after socket(), another VMM thread's
 * fork and exec in between would hand the socket to the child, which would then hold the session
 * (or the attach connection and the vCPUs it holds) open. Non-blocking before connect: a listener
 * with a full backlog gives EAGAIN instead of a hang. */
static int unix_connect(const struct sockaddr_un *addr, int type) {
  int fd = socket(AF_UNIX, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -errno;
  if (connect(fd, (const struct sockaddr *)addr, sizeof *addr) < 0) {
    int err = -errno;
    close(fd);
    return err;
  }
  return fd;
}

/* Closes the attach connection as its session ends: the daemon releases every vCPU attached over
 * it, and the next WELCOME attaches every registered one, so none is left lost either. */
static void close_attach(struct seawall_plugin *p) {
  if (p->attach_fd >= 0) close(p->attach_fd);
  p->attach_fd = -1;
  memset(p->vcpu_attached, 0, sizeof p->vcpu_attached);
  memset(p->vcpu_lost, 0, sizeof p->vcpu_lost);
  p->attached = 0;
  p->lost = 0;
  p->reattach_at_ms = 0;
  p->reattach_backoff_ms = SEAWALL_RECONNECT_MIN_MS;
}

static void mark_lost(struct seawall_plugin *p, uint32_t vcpu) {
  if (p->vcpu_lost[vcpu]) return;
  p->vcpu_lost[vcpu] = 1;
  p->lost++;
}

static void unmark_lost(struct seawall_plugin *p, uint32_t vcpu) {
  if (!p->vcpu_lost[vcpu]) return;
  p->vcpu_lost[vcpu] = 0;
  p->lost--;
}

/* Closes the attach connection within its session (it failed, or a status or the daemon closed
 * it): the daemon releases every vCPU attached over it, and they are lost, for seawall_reattach. */
static void lose_attach(struct seawall_plugin *p) {
  if (p->attach_fd >= 0) close(p->attach_fd);
  p->attach_fd = -1;
  for (uint32_t v = 0; v < SEAWALL_VCPUS_MAX; v++) {
    if (!p->vcpu_attached[v]) continue;
    p->vcpu_attached[v] = 0;
    mark_lost(p, v);
  }
  p->attached = 0;
}

static void drop_connection(struct seawall_plugin *p) {
  close_attach(p); /* attachments are the session's: the daemon releases them as it ends */
  if (p->fd >= 0) close(p->fd);
  p->fd = -1;
  p->rx_len = 0;
  p->replay_unacked = 0; /* the next WELCOME replays them all again */
  p->replay_nonce = 0;
  p->replay_bound_dropped = 0;
  p->stalled = 0; /* a new session starts unstalled */
}

static void end_replay_session(struct seawall_plugin *p);

/* The wait after `ms`: twice as long, up to SEAWALL_RECONNECT_MAX_MS (§9 rule 5). The reconnect
 * and the re-attach backoff both step with it. */
static int next_backoff_ms(int ms) {
  return ms >= SEAWALL_RECONNECT_MAX_MS / 2 ? SEAWALL_RECONNECT_MAX_MS : ms * 2;
}

/* The next reconnect is due after the current backoff, which doubles up to its bound (§9 rule 5). */
static void schedule_reconnect(struct seawall_plugin *p) {
  p->reconnect_at_ms = now_ms() + p->reconnect_backoff_ms;
  p->reconnect_backoff_ms = next_backoff_ms(p->reconnect_backoff_ms);
}

/* A connection that was up is gone (an error, the daemon's GOODBYE): drop it and schedule the
 * reconnect. Nothing to do when it was already down, so exits answered meanwhile do not push the
 * reconnect further away. */
static void lose_connection(struct seawall_plugin *p) {
  if (p->fd < 0) return;
  end_replay_session(p);
  drop_connection(p);
  /* Up as long as the backoff's bound: the session proved useful (§9 rule 5). */
  if (now_ms() - p->session_at_ms >= SEAWALL_RECONNECT_MAX_MS) p->reconnect_backoff_ms = SEAWALL_RECONNECT_MIN_MS;
  schedule_reconnect(p);
}

/* The outcome of a connect attempt: a failure schedules the next. A WELCOME alone does not reset
 * the backoff, even with nothing to replay: a session proves useful only at the echo of its
 * replays (ack_replay), at a VERDICT applied (exchange), or once it has been up as long as the
 * backoff's bound (lose_connection). A daemon that ends every session right after WELCOME is
 * retried ever more slowly, up to the bound (§9 rule 5). */
static int attempted(struct seawall_plugin *p, int r) {
  if (r == 0) {
    p->session_at_ms = now_ms();
    p->reconnect_at_ms = 0;
  } else {
    schedule_reconnect(p);
  }
  return r;
}

/* Writes all of `buf` before `deadline`; 0 or a negative errno. */
static int write_all(struct seawall_plugin *p, const uint8_t *buf, size_t len, int64_t deadline) {
  size_t off = 0;
  while (off < len) {
    /* send(MSG_NOSIGNAL) spares the VMM a SIGPIPE on a socket; a character device (a virtio-serial
     * port) has no send() and reports a vanished host end as EPIPE/EIO without a signal. */
    ssize_t n = p->fd_is_socket ? send(p->fd, buf + off, len - off, MSG_NOSIGNAL)
                                : write(p->fd, buf + off, len - off);
    if (n > 0) {
      off += (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      struct pollfd pfd = {.fd = p->fd, .events = POLLOUT};
      int r = poll(&pfd, 1, remaining_ms(deadline));
      /* Part of the frame is out: the stream can carry no other frame after it, so this is a broken
       * stream, not a plain timeout (a socket sends a frame whole; a character device may not). */
      if (r == 0) return off > 0 ? -EPIPE : -ETIMEDOUT;
      if (r < 0 && errno != EINTR) return -errno;
      continue;
    }
    return n < 0 ? -errno : -EPIPE;
  }
  return 0;
}

/* Expected body size of each type the plugin receives: exact, or minimum for text bodies. */
static int check_header(uint32_t len, uint16_t type, uint16_t reserved) {
  if (reserved != 0 || len > SEAWALL_MAX_BODY) return -EPROTO;
  switch (type) {
  case SEAWALL_MSG_WELCOME:
    return len == BODY_WELCOME ? 0 : -EPROTO;
  case SEAWALL_MSG_VERDICT:
    return len == BODY_VERDICT ? 0 : -EPROTO;
  case SEAWALL_MSG_HEARTBEAT:
    return len == BODY_HEARTBEAT ? 0 : -EPROTO;
  case SEAWALL_MSG_GOODBYE:
    return len == BODY_GOODBYE ? 0 : -EPROTO;
  case SEAWALL_MSG_REJECT:
  case SEAWALL_MSG_ERROR:
    return len >= BODY_TEXT_MIN ? 0 : -EPROTO;
  default:
    return -EPROTO; /* unknown, or not sent to a plugin */
  }
}

/*
 * Reads one frame before `deadline`. Returns 1 with *type, *body (inside p->rx, valid until the
 * next read) and *len; 0 on timeout (a partial frame stays buffered for the next call);
 * -EPIPE on end of file; -EPROTO on a malformed header; another negative errno on error.
 */
static int read_frame(struct seawall_plugin *p, int64_t deadline, uint16_t *type, const uint8_t **body,
                      uint32_t *len) {
  for (;;) {
    size_t need = SEAWALL_HEADER_SIZE;
    if (p->rx_len >= SEAWALL_HEADER_SIZE) {
      uint32_t body_len = get_u32(p->rx);
      int bad = check_header(body_len, get_u16(p->rx + 4), get_u16(p->rx + 6));
      if (bad) return bad;
      need = SEAWALL_HEADER_SIZE + body_len;
      if (p->rx_len == need) {
        *type = get_u16(p->rx + 4);
        *body = p->rx + SEAWALL_HEADER_SIZE;
        *len = body_len;
        p->rx_len = 0;
        return 1;
      }
    }
    /* Read no further than the current frame, so nothing is ever left over between frames. */
    ssize_t n = read(p->fd, p->rx + p->rx_len, need - p->rx_len);
    if (n > 0) {
      p->rx_len += (size_t)n;
      continue;
    }
    if (n == 0) return -EPIPE;
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return -errno;
    struct pollfd pfd = {.fd = p->fd, .events = POLLIN};
    int r = poll(&pfd, 1, remaining_ms(deadline));
    if (r == 0) return 0;
    if (r < 0 && errno != EINTR) return -errno;
  }
}

/* Keeps the text of a REJECT or ERROR body (already length-checked by read_frame), and the
 * version a REJECT VERSION names in the 4 bytes after its text (§4.3). */
static int take_text(struct seawall_plugin *p, const uint8_t *body, uint32_t len) {
  uint16_t text_len = get_u16(body + 2);
  uint16_t code = get_u16(body);
  p->supported_major = 0;
  p->supported_minor = 0;
  if (code == SEAWALL_ERR_VERSION && (uint32_t)text_len + BODY_TEXT_MIN + 4 == len) {
    p->supported_major = get_u16(body + BODY_TEXT_MIN + text_len);
    p->supported_minor = get_u16(body + BODY_TEXT_MIN + text_len + 2);
  } else if ((uint32_t)text_len + BODY_TEXT_MIN != len) {
    return -EPROTO;
  }
  size_t n = text_len < sizeof p->last_text - 1 ? text_len : sizeof p->last_text - 1;
  p->last_code = code;
  memcpy(p->last_text, body + 4, n);
  p->last_text[n] = '\0';
  return 0;
}

/* ---- replay ring (§9) --------------------------------------------------------------------- */

static void keep_for_replay(struct seawall_plugin *p, const uint8_t *frame, uint32_t len, uint32_t seq,
                            uint8_t fallback_action) {
  if (p->kept_count == SEAWALL_REPLAY_MAX) {
    p->kept_head = (p->kept_head + 1) % SEAWALL_REPLAY_MAX;
    p->kept_count--;
    p->kept_dropped++;
    if (p->replay_unacked > 0) { /* the oldest replay awaiting the echo: what a refusal would drop */
      p->replay_unacked--;
      p->replay_bound_dropped = 1;
    }
  }
  struct seawall_kept *k = &p->kept[(p->kept_head + p->kept_count) % SEAWALL_REPLAY_MAX];
  memcpy(k->frame, frame, len);
  k->len = len;
  k->seq = seq;
  put_u16(k->frame + SEAWALL_HEADER_SIZE + 16, SEAWALL_EVENT_REPLAY);
  k->frame[SEAWALL_HEADER_SIZE + 18] = fallback_action;
  p->kept_count++;
}

/* Removes the kept event at position i (0: the oldest); the later ones move up one slot, so the ring
 * holds only events still to replay. */
static void remove_kept(struct seawall_plugin *p, size_t i) {
  for (size_t j = i; j + 1 < p->kept_count; j++)
    p->kept[(p->kept_head + j) % SEAWALL_REPLAY_MAX] = p->kept[(p->kept_head + j + 1) % SEAWALL_REPLAY_MAX];
  p->kept[(p->kept_head + p->kept_count - 1) % SEAWALL_REPLAY_MAX].len = 0;
  p->kept_count--;
  if (i < p->replay_unacked) p->replay_unacked--; /* it was among the replays awaiting the echo */
}

/* A late verdict proves the daemon recorded the event: replaying it would count it twice. A
 * forgotten one neither counts toward SEAWALL_REPLAY_MAX nor is counted as dropped when the ring is
 * full. Returns the fallback action the kept event had, or -1 when no kept event has that seq. */
static int forget_kept(struct seawall_plugin *p, uint32_t seq) {
  for (size_t i = 0; i < p->kept_count; i++) {
    struct seawall_kept *k = &p->kept[(p->kept_head + i) % SEAWALL_REPLAY_MAX];
    if (k->len == 0 || k->seq != seq) continue;
    int action = k->frame[SEAWALL_HEADER_SIZE + 18];
    remove_kept(p, i);
    return action;
  }
  return -1;
}

/* ESR exception classes of an abort taken from the guest: what KVM reports as a SEA (§4.4). */
#define ESR_EC_IABT_LOW 0x20u
#define ESR_EC_DABT_LOW 0x24u

/* 1 when the daemon would refuse the event body `b` of `type` (BAD_FIELD, ending the session) in a
 * session whose HELLO declared `vcpus` vCPUs (0: none sent yet) and the capabilities `caps`, and
 * that speaks 1.`minor`: the checks of §4.4 that the event and the HELLO decide alone (in 1.1, an
 * event kind needs its capability declared). Such an event is answered by the fallback and neither
 * sent nor kept, since every session it was replayed in would end on it. */
static int refused_event(const uint8_t *b, uint16_t type, uint32_t vcpus, uint32_t caps, uint16_t minor) {
  uint32_t vcpu = get_u32(b + 4);
  int sigbus = type == SEAWALL_MSG_EVENT_SIGBUS;
  if (vcpu == SEAWALL_NO_VCPU ? !sigbus : vcpus != 0 && vcpu >= vcpus) return 1;
  if (minor == 0) return 0;
  uint32_t ec, len;
  switch (type) {
  case SEAWALL_MSG_EVENT_SEA:
    if (!(caps & SEAWALL_CAP_SEA_TO_USER)) return 1;
    ec = (uint32_t)(get_u64(b + 32) >> 26) & 0x3f;
    return ec != ESR_EC_IABT_LOW && ec != ESR_EC_DABT_LOW;
  case SEAWALL_MSG_EVENT_NISV:
    return !(caps & SEAWALL_CAP_NISV_TO_USER);
  case SEAWALL_MSG_EVENT_MMIO:
    len = get_u32(b + 40);
    return len != 1 && len != 2 && len != 4 && len != 8;
  case SEAWALL_MSG_EVENT_SIGBUS: /* 1.1: an AR names its vCPU, an AO names none */
    return (get_u16(b + 24) == SEAWALL_BUS_MCEERR_AR) == (vcpu == SEAWALL_NO_VCPU);
  default:
    return 0;
  }
}

#define ISS_MASK 0x1ffffffu
#define FSC_SEA 0x10u

/* Why the VERDICT `v`, the answer to an event of `type`, must not reach KVM_SET_VCPU_EVENTS on the
 * host whose capabilities the session's HELLO declared (`caps`); NULL when it may. Only INJECT
 * carries an image for the kernel. These are the checks of §5.1 (INJECT), those of the TypeScript
 * reference client (vmm/verdict-checks.ts): the image goes to the kernel as received, and the
 * kernel may commit a valid abort from it before it refuses an invalid SError part of it, so a
 * failed ioctl is no safe way to find out. A refused verdict is a protocol error (§5.3). */
static const char *refused_verdict(const struct seawall_verdict *v, uint16_t type, uint32_t caps) {
  if (v->action != SEAWALL_ACTION_INJECT) return NULL;
  if (!(caps & SEAWALL_CAP_INJECT_EXT_DABT)) return "INJECT to a plugin that did not declare INJECT_EXT_DABT";
  if (type == SEAWALL_MSG_EVENT_SIGBUS) return "INJECT after a SIGBUS: KVM defines no injection without an abort exit";
  const uint8_t *e = v->vcpu_events;
  int posted = (caps & SEAWALL_CAP_EXT_ABT_ESR) != 0;
  /* The declared layout's fields: flag bytes 0..2 (0..4 posted), serror_esr at 8..15 and, posted,
   * ext_abt_esr at 16..23. Every other byte is pad or reserved and zero; each flag is 0 or 1. */
  size_t flags = posted ? 5 : 3, fields_end = posted ? 24 : 16;
  for (size_t i = 0; i < SEAWALL_VCPU_EVENTS_SIZE; i++) {
    int field = i < flags || (i >= 8 && i < fields_end);
    if (i < flags ? e[i] > 1 : !field && e[i] != 0)
      return "vcpu_events has a pad or reserved byte of the declared layout set, or a flag not 0 or 1";
  }
  if (e[0] || e[1] || get_u64(e + 8)) return "vcpu_events asks for an SError";
  int dabt = e[2], iabt = posted && e[3], has_esr = posted && e[4];
  uint64_t esr = posted ? get_u64(e + 16) : 0;
  if (!dabt && !iabt) return "vcpu_events sets neither ext_dabt_pending nor ext_iabt_pending";
  if (dabt && iabt) return "vcpu_events sets both ext_dabt_pending and ext_iabt_pending";
  if (!has_esr && esr != 0) return "vcpu_events sets ext_abt_esr without ext_abt_has_esr";
  if (esr > ISS_MASK) return "vcpu_events: ext_abt_esr has bits outside ISS [24:0]";
  if (has_esr && !(caps & SEAWALL_CAP_RAS)) return "vcpu_events: ext_abt_has_esr needs RAS declared";
  /* KVM ORs FSC 0x10 into the ISS: an FSC without that bit reaches the guest changed (FSC 0 asks
   * for KVM's own 0x10). */
  uint32_t fsc = (uint32_t)(esr & 0x3f);
  if (has_esr && fsc != 0 && !(fsc & FSC_SEA)) return "vcpu_events: ext_abt_esr has an FSC KVM would change";
  return NULL;
}

/* Writes every kept event as a REPLAY, then a HEARTBEAT: the daemon echoes it once everything
 * before it is stored, and only then does the ring let them go (ack_replay). Until the echo they
 * stay kept, so a connection lost in between replays them again; the daemon drops repeats. A kept
 * event this session would refuse is dropped first and counted as invalid. */
static int flush_replay(struct seawall_plugin *p, int64_t deadline) {
  for (size_t i = 0; i < p->kept_count;) {
    const uint8_t *f = p->kept[(p->kept_head + i) % SEAWALL_REPLAY_MAX].frame;
    if (!refused_event(f + SEAWALL_HEADER_SIZE, get_u16(f + 4), p->session_vcpus, p->session_caps,
                       p->welcome.minor)) {
      i++;
      continue;
    }
    remove_kept(p, i);
    p->invalid_events++;
  }
  if (p->kept_count == 0) return 0;
  p->replay_nonce = ++p->next_nonce; /* from here on the session awaits the echo */
  p->replay_unacked = p->kept_count;
  p->replay_bound_dropped = 0;
  for (size_t i = 0; i < p->kept_count; i++) {
    struct seawall_kept *k = &p->kept[(p->kept_head + i) % SEAWALL_REPLAY_MAX];
    int r = write_all(p, k->frame, k->len, deadline);
    if (r) return r;
    p->replayed++;
  }
  uint8_t hb[SEAWALL_HEADER_SIZE + BODY_HEARTBEAT];
  put_header(hb, BODY_HEARTBEAT, SEAWALL_MSG_HEARTBEAT);
  put_u64(hb + SEAWALL_HEADER_SIZE, p->replay_nonce);
  return write_all(p, hb, sizeof hb, deadline);
}

/* A HEARTBEAT echo: if it is the one sent after the replays, they are stored; drop them. The
 * session has proved useful: the reconnect backoff starts over (§9 rule 5). */
static void ack_replay(struct seawall_plugin *p, uint64_t nonce) {
  if (p->replay_nonce == 0 || nonce != p->replay_nonce) return;
  for (; p->replay_unacked > 0 && p->kept_count > 0; p->replay_unacked--) {
    p->kept[p->kept_head].len = 0;
    p->kept_head = (p->kept_head + 1) % SEAWALL_REPLAY_MAX;
    p->kept_count--;
  }
  p->replay_unacked = 0;
  p->replay_nonce = 0;
  p->replay_bound_dropped = 0;
  p->reconnect_backoff_ms = SEAWALL_RECONNECT_MIN_MS;
}

static void pass_on_kill(struct seawall_plugin *p, const uint8_t *verdict_body);

/* The daemon writes its ERROR and then stops reading (§8): a write may fail with the ERROR still
 * unread. Reads the frames already received, looking for it. Before it can come at most a late
 * VERDICT for each kept event, the VERDICT of the current one and the replay echo. The echo is
 * taken on the way (ack_replay): the replays before it are stored, whatever ended the session; so
 * is a KILL among those verdicts (pass_on_kill): the daemon enforces it whether it is read or not. */
static void find_error(struct seawall_plugin *p) {
  for (size_t n = 0, most = p->kept_count + 2; n < most; n++) {
    uint16_t type;
    const uint8_t *body;
    uint32_t len;
    if (read_frame(p, now_ms(), &type, &body, &len) <= 0) return;
    if (type == SEAWALL_MSG_HEARTBEAT) ack_replay(p, get_u64(body));
    if (type == SEAWALL_MSG_VERDICT) pass_on_kill(p, body);
    if (type == SEAWALL_MSG_ERROR) {
      take_text(p, body, len);
      return;
    }
  }
}

/* A session ends before the echo of its replays. If it ends with the daemon's ERROR, the daemon
 * refused one of them: it stores replays in order (and recognises those it holds), so the oldest
 * one replayed is either stored already or the refused one. Dropping it, one per such session,
 * loses nothing and ends the loop of a replay every session refuses. The bound may have dropped it
 * already, to keep a later exit: then nothing more goes, since the next one may be the refused one
 * and never stored. A connection that just drops keeps them all. */
static void end_replay_session(struct seawall_plugin *p) {
  if (p->fd < 0) return;
  /* Every lost session is read to its end, for a KILL waiting there; last_code is cleared by
   * every connect. */
  if (p->last_code == 0) find_error(p);
  if (p->replay_nonce == 0 || p->last_code == 0 || p->replay_unacked == 0 || p->replay_bound_dropped) return;
  remove_kept(p, 0);
  p->replays_refused++;
}

/* ---- vCPU attachment (§9a) ---------------------------------------------------------------- */

/* The attach records (docs/actions.md "vCPU attachment"): magic "SWAT" as a little-endian u32. */
#define ATTACH_MAGIC 0x54415753u
#define ATTACH_VERSION 1u
#define ATTACH_OP_ATTACH 1u
#define ATTACH_OP_DETACH 2u
#define ATTACH_REPLY_BIT 0x80u
#define ATTACH_REQUEST_SIZE 24u
#define ATTACH_REPLY_SIZE 16u

static const char *attach_path(const struct seawall_plugin *p) {
  return p->attach_path_set ? p->attach_path : p->attach_default;
}

/* The daemon's default attach socket for the plugin socket `path` (attach/config-schema.ts
 * defaultAttachSocket): plugin.sock -> attach.sock beside it; X.sock or X -> X-attach.sock. "" when
 * it would not fit in sun_path. */
static void derive_attach_path(char *out, const char *path) {
  const char *slash = strrchr(path, '/');
  size_t dir_len = slash ? (size_t)(slash - path) + 1 : 0;
  const char *name = path + dir_len;
  size_t name_len = strlen(name);
  const char *suffix = "-attach.sock";
  if (strcmp(name, "plugin.sock") == 0) {
    name_len = 0;
    suffix = "attach.sock";
  } else if (name_len >= 5 && strcmp(name + name_len - 5, ".sock") == 0) {
    name_len -= 5;
  }
  size_t suffix_len = strlen(suffix);
  out[0] = '\0';
  if (dir_len + name_len + suffix_len >= SEAWALL_ATTACH_PATH_MAX) return;
  memcpy(out, path, dir_len + name_len);
  memcpy(out + dir_len + name_len, suffix, suffix_len + 1);
}

/* Opens the session's attach connection: SOCK_SEQPACKET, close-on-exec, non-blocking. */
static int open_attach(struct seawall_plugin *p) {
  const char *path = attach_path(p);
  if (path[0] == '\0') return -EDESTADDRREQ;
  struct sockaddr_un addr;
  int fd = unix_address(&addr, path);
  if (fd == 0) fd = unix_connect(&addr, SOCK_SEQPACKET);
  if (fd < 0) return fd;
  p->attach_fd = fd;
  return 0;
}

/* Waits until the attach connection is ready for `events` before `deadline`: 0, or -ETIMEDOUT. */
static int attach_wait(const struct seawall_plugin *p, short events, int64_t deadline) {
  for (;;) {
    struct pollfd pfd = {.fd = p->attach_fd, .events = events};
    int r = poll(&pfd, 1, remaining_ms(deadline));
    if (r > 0) return 0;
    if (r == 0) return -ETIMEDOUT;
    if (errno != EINTR) return -errno;
  }
}

/* Sends one request (ATTACH with `vcpu_fd` beside it, DETACH with none) and reads its reply before
 * `deadline`. Returns the reply's status, or a negative errno. */
static int attach_exchange(struct seawall_plugin *p, uint16_t op, uint32_t vcpu, int vcpu_fd, int64_t deadline) {
  uint8_t req[ATTACH_REQUEST_SIZE];
  put_u32(req, ATTACH_MAGIC);
  put_u16(req + 4, ATTACH_VERSION);
  put_u16(req + 6, op);
  put_u64(req + 8, p->welcome.session_id);
  put_u32(req + 16, vcpu);
  put_u32(req + 20, 0);
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(int))];
  } ctrl;
  memset(&ctrl, 0, sizeof ctrl);
  struct iovec iov = {.iov_base = req, .iov_len = sizeof req};
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (vcpu_fd >= 0) {
    msg.msg_control = ctrl.buf;
    msg.msg_controllen = sizeof ctrl.buf;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &vcpu_fd, sizeof(int));
  }
  for (;;) {
    ssize_t n = sendmsg(p->attach_fd, &msg, MSG_NOSIGNAL);
    if (n == (ssize_t)sizeof req) break;
    if (n >= 0) return -EPROTO; /* a SEQPACKET record goes whole or not at all */
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return -errno;
    int r = attach_wait(p, POLLOUT, deadline);
    if (r) return r;
  }
  for (;;) {
    uint8_t reply[ATTACH_REPLY_SIZE + 1];
    union {
      struct cmsghdr align;
      char buf[CMSG_SPACE(4 * sizeof(int))];
    } rctrl;
    struct iovec riov = {.iov_base = reply, .iov_len = sizeof reply};
    struct msghdr rmsg;
    memset(&rmsg, 0, sizeof rmsg);
    rmsg.msg_iov = &riov;
    rmsg.msg_iovlen = 1;
    rmsg.msg_control = rctrl.buf;
    rmsg.msg_controllen = sizeof rctrl.buf;
    /* Close-on-exec as they arrive: fds a daemon sent with a reply live until the loop below
     * closes them, and a fork and exec on another thread meanwhile must not inherit them. */
    ssize_t n = recvmsg(p->attach_fd, &rmsg, MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      int r = attach_wait(p, POLLIN, deadline);
      if (r) return r;
      continue;
    }
    if (n < 0) return -errno;
    if (n == 0) return -EPIPE; /* the daemon closed the connection */
    /* A reply carries no fds; close any that came, so none leaks into the VMM. */
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&rmsg); c; c = CMSG_NXTHDR(&rmsg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; i++) {
        int fd;
        memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
        close(fd);
      }
    }
    if (n != ATTACH_REPLY_SIZE || (rmsg.msg_flags & MSG_TRUNC) || get_u32(reply) != ATTACH_MAGIC ||
        get_u16(reply + 4) != ATTACH_VERSION || get_u16(reply + 6) != (op | ATTACH_REPLY_BIT) ||
        get_u32(reply + 8) != vcpu)
      return -EPROTO;
    /* Any status of a well-formed reply is the daemon's answer: one this library does not know is a
     * refusal that keeps the connection (docs/actions.md), held positive. */
    uint32_t status = get_u32(reply + 12);
    return status > (uint32_t)INT_MAX ? INT_MAX : (int)status;
  }
}

/* One request on the session's attach connection, opened if need be; *reached is set once it
 * went out on a connection. A failed exchange leaves the connection out of step (a late reply
 * would answer the next request), and a closing status ends it on the daemon's side: both close
 * it. An ATTACH that finds an earlier connection closed by the daemon (one that held nothing for
 * attach.idleMs, such as after a DETACH of its last vCPU) is sent again on a fresh one: the daemon
 * released whatever that one held. */
static int attach_request(struct seawall_plugin *p, uint16_t op, uint32_t vcpu, int vcpu_fd, int64_t deadline,
                          int *reached) {
  int reused = p->attach_fd >= 0;
  int r = reused ? 0 : open_attach(p);
  if (r) return r;
  *reached = 1;
  r = attach_exchange(p, op, vcpu, vcpu_fd, deadline);
  if (reused && op == ATTACH_OP_ATTACH && (r == -EPIPE || r == -ECONNRESET)) {
    lose_attach(p);
    r = open_attach(p);
    if (r) return r;
    r = attach_exchange(p, op, vcpu, vcpu_fd, deadline);
  }
  if (r < 0 || r == SEAWALL_ATTACH_MALFORMED || r == SEAWALL_ATTACH_FD_COUNT ||
      r == SEAWALL_ATTACH_PEER_MISMATCH || r == SEAWALL_ATTACH_SESSION_MISMATCH)
    lose_attach(p);
  return r;
}

/* ATTACHes the registered vCPU `vcpu` in the current session and counts the outcome. One that
 * got no answer is lost (for seawall_reattach) when the request went out on a connection that then
 * failed, or when it was lost already: a connection that cannot even be opened (no attach socket)
 * leaves a vCPU that was never attached to the next WELCOME. */
static int attach_one(struct seawall_plugin *p, uint32_t vcpu, int64_t deadline, int *reached) {
  if (p->vcpu_attached[vcpu]) {
    p->vcpu_attached[vcpu] = 0;
    p->attached--;
  }
  int was_lost = p->vcpu_lost[vcpu];
  unmark_lost(p, vcpu);
  *reached = 0;
  int r = attach_request(p, ATTACH_OP_ATTACH, vcpu, p->vcpu_fd[vcpu], deadline, reached);
  if (r == SEAWALL_ATTACH_OK) {
    p->vcpu_attached[vcpu] = 1;
    p->attached++;
  } else if (r > 0) {
    p->attach_refused++;
  } else {
    p->attach_failed++;
    if (*reached || was_lost) mark_lost(p, vcpu);
  }
  return r;
}

/* ATTACHes every registered vCPU (after WELCOME), or only the lost ones (seawall_reattach), all
 * replies before `deadline`, on one attach connection: once it fails or a status closes it, the
 * rest are counted as failed without trying, and lost if that connection had opened. Returns the
 * number attached, or the error that ended the connection (-ECONNRESET for a closing status). */
static int attach_many(struct seawall_plugin *p, int lost_only, int64_t deadline) {
  int done = 0, err = 0, opened = 0;
  for (uint32_t v = 0; v < SEAWALL_VCPUS_MAX; v++) {
    if (p->vcpu_fd[v] < 0 || (lost_only && !p->vcpu_lost[v])) continue;
    if (err || v >= p->session_vcpus) { /* v past it: a later HELLO declared fewer vCPUs */
      p->attach_failed++;
      if (err && opened && v < p->session_vcpus) mark_lost(p, v);
      continue;
    }
    int reached;
    int r = attach_one(p, v, deadline, &reached);
    if (r == SEAWALL_ATTACH_OK) {
      done++;
    } else if (p->attach_fd < 0) { /* the connection failed, or the status closed it */
      err = r < 0 ? r : -ECONNRESET;
      opened = reached;
    }
  }
  return err ? err : done;
}

/* 1 when the attach connection is no longer usable: the daemon closed it, or a record came that
 * no request asked for (the connection is out of step). 0 while it is open and quiet, or none is
 * open. Reads nothing. */
static int attach_closed(const struct seawall_plugin *p) {
  if (p->attach_fd < 0) return 0;
  uint8_t b;
  ssize_t n = recv(p->attach_fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
  return !(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR));
}

/* ---- public API --------------------------------------------------------------------------- */

void seawall_init(struct seawall_plugin *p, int deadline_ms, int hello_timeout_ms,
                  enum seawall_fallback fallback) {
  memset(p, 0, sizeof *p);
  p->fd = -1;
  p->fd_is_socket = 1;
  p->deadline_ms = deadline_ms;
  p->hello_timeout_ms = hello_timeout_ms;
  p->fallback = fallback;
  p->next_seq = 1;
  p->max_minor = SEAWALL_PROTOCOL_MINOR;
  p->ask_minor = SEAWALL_PROTOCOL_MINOR;
  p->reconnect_backoff_ms = SEAWALL_RECONNECT_MIN_MS;
  p->declared_caps = UINT32_MAX; /* no HELLO yet: the INJECT fallback as configured */
  p->attach_fd = -1;
  p->reattach_backoff_ms = SEAWALL_RECONNECT_MIN_MS;
  for (size_t i = 0; i < SEAWALL_VCPUS_MAX; i++) p->vcpu_fd[i] = -1;
}

void seawall_on_late_kill(struct seawall_plugin *p, seawall_late_kill_fn fn, void *ctx) {
  p->on_late_kill = fn;
  p->late_kill_ctx = ctx;
}

int seawall_reconnect_due(const struct seawall_plugin *p) { return p->fd < 0 && now_ms() >= p->reconnect_at_ms; }

int seawall_set_minor(struct seawall_plugin *p, uint16_t minor) {
  if (minor > SEAWALL_PROTOCOL_MINOR) return -EINVAL;
  p->max_minor = minor;
  p->ask_minor = minor;
  return 0;
}

const char *seawall_action_name(uint8_t action) {
  switch (action) {
  case SEAWALL_ACTION_RESUME:
    return "RESUME";
  case SEAWALL_ACTION_INJECT:
    return "INJECT";
  case SEAWALL_ACTION_INJECT_EMULATED:
    return "INJECT_EMULATED";
  case SEAWALL_ACTION_KILL:
    return "KILL";
  default:
    return "UNKNOWN";
  }
}

/* HELLO (§4.1) asking for 1.`minor` into `buf` (large enough for the limits); returns the frame
 * length or -EINVAL. */
static int encode_hello(const struct seawall_hello *h, uint16_t minor, uint8_t *buf, size_t cap) {
  size_t id_len = h->vm_id ? strlen(h->vm_id) : 0;
  if (id_len == 0 || id_len > SEAWALL_VM_ID_MAX || h->label_count > SEAWALL_LABELS_MAX ||
      h->vcpu_count == 0 || h->vcpu_count > SEAWALL_VCPUS_MAX)
    return -EINVAL;
  size_t body = 24 + id_len;
  for (size_t i = 0; i < h->label_count; i++) {
    size_t kl = strlen(h->labels[i].key), vl = strlen(h->labels[i].value);
    if (kl == 0 || kl > SEAWALL_LABEL_KEY_MAX || vl > SEAWALL_LABEL_VALUE_MAX) return -EINVAL;
    body += 4 + kl + vl;
  }
  if (SEAWALL_HEADER_SIZE + body > cap || body > SEAWALL_MAX_BODY) return -EINVAL;
  memset(buf, 0, SEAWALL_HEADER_SIZE + 24);
  put_header(buf, (uint32_t)body, SEAWALL_MSG_HELLO);
  uint8_t *b = buf + SEAWALL_HEADER_SIZE;
  put_u16(b + 0, SEAWALL_PROTOCOL_VERSION);
  put_u16(b + 2, minor);
  put_u32(b + 4, h->caps);
  put_u32(b + 8, h->vmm_pid);
  put_u32(b + 12, h->vcpu_count);
  put_u32(b + 16, h->ext_abt_esr_cap);
  put_u16(b + 20, (uint16_t)id_len);
  put_u16(b + 22, (uint16_t)h->label_count);
  size_t o = 24;
  memcpy(b + o, h->vm_id, id_len);
  o += id_len;
  for (size_t i = 0; i < h->label_count; i++) {
    size_t kl = strlen(h->labels[i].key), vl = strlen(h->labels[i].value);
    put_u16(b + o, (uint16_t)kl);
    put_u16(b + o + 2, (uint16_t)vl);
    memcpy(b + o + 4, h->labels[i].key, kl);
    memcpy(b + o + 4 + kl, h->labels[i].value, vl);
    o += 4 + kl + vl;
  }
  return (int)(SEAWALL_HEADER_SIZE + body);
}

/* HELLO, then WELCOME, on the connected p->fd; then the kept events are replayed (§9). */
static int handshake(struct seawall_plugin *p, const uint8_t *hello, size_t hello_len) {
  int64_t deadline = now_ms() + p->hello_timeout_ms;
  int r = write_all(p, hello, hello_len, deadline);
  while (r == 0) {
    uint16_t type;
    const uint8_t *body;
    uint32_t len;
    r = read_frame(p, deadline, &type, &body, &len);
    if (r == 0) {
      r = -ETIMEDOUT;
      break;
    }
    if (r < 0) break;
    if (type == SEAWALL_MSG_WELCOME) {
      /* Exactly the version asked for (§10); a 1.0 WELCOME keeps +20 reserved. */
      uint16_t minor = get_u16(body + 2);
      if (get_u16(body) != SEAWALL_PROTOCOL_VERSION || minor != p->ask_minor ||
          (minor == 0 && get_u32(body + 20) != 0)) {
        r = -EPROTO;
        break;
      }
      p->welcome.version = get_u16(body);
      p->welcome.minor = minor;
      p->welcome.max_in_flight = get_u32(body + 4);
      p->welcome.session_id = get_u64(body + 8);
      p->welcome.heartbeat_ms = get_u32(body + 16);
      p->welcome.max_body = get_u32(body + 20);
      p->session_vcpus = get_u32(hello + SEAWALL_HEADER_SIZE + 12);
      p->session_caps = get_u32(hello + SEAWALL_HEADER_SIZE + 4);
      r = flush_replay(p, deadline);
      if (r == 0) {
        attach_many(p, 0, now_ms() + p->hello_timeout_ms);
        return 0;
      }
      end_replay_session(p); /* the write failed: an ERROR may be waiting behind it */
      break;
    }
    if (type == SEAWALL_MSG_REJECT || type == SEAWALL_MSG_ERROR) {
      r = take_text(p, body, len) ? -EPROTO : -ECONNREFUSED;
      break;
    }
    if (type != SEAWALL_MSG_HEARTBEAT) r = -EPROTO; /* nothing else may precede WELCOME */
    else if (now_ms() >= deadline) r = -ETIMEDOUT;   /* HEARTBEATs alone do not extend the wait */
    else r = 0;                                      /* skipped: WELCOME may still come */
  }
  drop_connection(p);
  return r;
}

/* After a refused handshake: the lower minor the daemon speaks — the one REJECT VERSION named, or
 * 1.0 after the ERROR BAD_FIELD with which a 1.0 daemon answers a 1.1 HELLO (§10) — for the retry
 * that follows, and only for it: every later connect asks for max_minor again, so a daemon upgraded
 * meanwhile gets the highest version. Returns 1 when a retry can succeed. */
static int lower_minor(struct seawall_plugin *p) {
  if (p->ask_minor == 0) return 0;
  if (p->last_code == SEAWALL_ERR_VERSION && p->supported_major == SEAWALL_PROTOCOL_VERSION &&
      p->supported_minor < p->ask_minor) {
    p->ask_minor = p->supported_minor;
    return 1;
  }
  if (p->last_code == SEAWALL_ERR_BAD_FIELD) {
    p->ask_minor = 0;
    return 1;
  }
  return 0;
}

#define HELLO_FRAME_MAX                                                                            \
  (SEAWALL_HEADER_SIZE + 24 + SEAWALL_VM_ID_MAX +                                                  \
   SEAWALL_LABELS_MAX * (4 + SEAWALL_LABEL_KEY_MAX + SEAWALL_LABEL_VALUE_MAX))

static int connect_path(struct seawall_plugin *p, const char *path, const struct seawall_hello *hello) {
  uint8_t buf[HELLO_FRAME_MAX];
  int frame_len = encode_hello(hello, p->ask_minor, buf, sizeof buf);
  if (frame_len < 0) return frame_len;
  p->declared_caps = hello->caps;

  struct sockaddr_un addr;
  int r = unix_address(&addr, path);
  if (r) return r;

  drop_connection(p);
  p->last_code = 0;
  p->last_text[0] = '\0';
  int fd = unix_connect(&addr, SOCK_STREAM);
  if (fd < 0) return fd;
  p->fd = fd;
  p->fd_is_socket = 1;
  return handshake(p, buf, (size_t)frame_len);
}

int seawall_connect(struct seawall_plugin *p, const char *path, const struct seawall_hello *hello) {
  derive_attach_path(p->attach_default, path);
  int r = connect_path(p, path, hello);
  if (r == -ECONNREFUSED && lower_minor(p)) r = connect_path(p, path, hello);
  p->ask_minor = p->max_minor;
  return attempted(p, r);
}

/* The fd is the plugin's from the call on, whatever the result: every failure closes it, so the
 * caller never has to guess whether it still holds it. A refused handshake too: the caller reopens
 * the port, and the next call (the retry) asks for the version the daemon named (lower_minor); the
 * call after that asks for max_minor again. */
static int connect_fd(struct seawall_plugin *p, int fd, const struct seawall_hello *hello) {
  if (fd < 0) return -EBADF;
  uint8_t buf[HELLO_FRAME_MAX];
  int frame_len = encode_hello(hello, p->ask_minor, buf, sizeof buf);
  if (frame_len < 0) {
    close(fd);
    return frame_len;
  }
  p->declared_caps = hello->caps;
  struct stat st;
  if (fstat(fd, &st) < 0) {
    int err = errno;
    if (err != EBADF) close(fd); /* EBADF: not open, nothing to close */
    return -err;
  }
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
    int err = -errno;
    close(fd);
    return err;
  }
  drop_connection(p);
  p->last_code = 0;
  p->last_text[0] = '\0';
  p->fd = fd;
  p->fd_is_socket = S_ISSOCK(st.st_mode) ? 1 : 0;
  int r = handshake(p, buf, (size_t)frame_len);
  if (r != -ECONNREFUSED || !lower_minor(p)) p->ask_minor = p->max_minor;
  return r;
}

int seawall_connect_fd(struct seawall_plugin *p, int fd, const struct seawall_hello *hello) {
  p->attach_default[0] = '\0'; /* no socket path to put an attach socket beside */
  return attempted(p, connect_fd(p, fd, hello));
}

static void fallback_verdict(const struct seawall_plugin *p, uint32_t seq, uint16_t type,
                             struct seawall_verdict *out) {
  memset(out, 0, sizeof *out);
  out->seq = seq;
  out->source = SEAWALL_FROM_FALLBACK;
  switch (p->fallback) {
  case SEAWALL_FALLBACK_INJECT:
    /* No KVM exit to inject after a SIGBUS; and without KVM_CAP_ARM_INJECT_EXT_DABT byte 2 is pad,
     * which KVM refuses: RESUME, as the daemon answers such a host (§9). */
    if (type == SEAWALL_MSG_EVENT_SIGBUS || !(p->declared_caps & SEAWALL_CAP_INJECT_EXT_DABT)) {
      out->action = SEAWALL_ACTION_RESUME;
      break;
    }
    /* The merged image: ext_dabt_pending = 1, everything else 0; valid on every kernel with
     * KVM_CAP_ARM_INJECT_EXT_DABT (docs/protocol.md §9). */
    out->action = SEAWALL_ACTION_INJECT;
    out->vcpu_events[2] = 1;
    break;
  case SEAWALL_FALLBACK_KILL:
    out->action = SEAWALL_ACTION_KILL;
    break;
  case SEAWALL_FALLBACK_RESUME:
    out->action = SEAWALL_ACTION_RESUME;
    break;
  }
}

/* Decodes a VERDICT body (§4.5); -EPROTO for reserved bytes or an action this plugin cannot apply. */
static int decode_verdict(const uint8_t *b, struct seawall_verdict *v) {
  if (get_u16(b + 6) != 0 || get_u32(b + 12) != 0 || b[4] > SEAWALL_ACTION_KILL) return -EPROTO;
  v->seq = get_u32(b);
  v->action = b[4];
  v->flags = b[5];
  v->grace_ms = get_u32(b + 8);
  v->esr = get_u64(b + 16);
  memcpy(v->vcpu_events, b + 24, SEAWALL_VCPU_EVENTS_SIZE);
  v->source = SEAWALL_FROM_DAEMON;
  return 0;
}

/* A VERDICT body read where no exit waits for it (late, or behind the end of a session): a KILL is
 * handed to the VMM, since the daemon enforces it late or not (seawall_on_late_kill). */
static void pass_on_kill(struct seawall_plugin *p, const uint8_t *verdict_body) {
  struct seawall_verdict v;
  if (decode_verdict(verdict_body, &v) || v.action != SEAWALL_ACTION_KILL) return;
  p->late_kills++;
  if (p->on_late_kill) p->on_late_kill(p->late_kill_ctx, &v);
}

static uint32_t take_seq(struct seawall_plugin *p) {
  uint32_t seq = p->next_seq;
  p->next_seq = p->next_seq == UINT32_MAX ? 1 : p->next_seq + 1;
  return seq;
}

/* The 24-byte event prefix (§4.4) of a fresh event; returns the body pointer. */
static uint8_t *event_frame(uint8_t *frame, uint32_t body_len, uint16_t type, uint32_t seq, uint32_t vcpu) {
  memset(frame, 0, SEAWALL_HEADER_SIZE + body_len);
  put_header(frame, body_len, type);
  uint8_t *b = frame + SEAWALL_HEADER_SIZE;
  put_u32(b + 0, seq);
  put_u32(b + 4, vcpu);
  put_u64(b + 8, realtime_ns());
  /* flags (+16) and fallback_action (+18) stay 0: a fresh event. */
  return b;
}

/* Writes APPLIED before `deadline`: the 8-byte form ("the verdict, as sent"), or the 1.1 16-byte
 * form that says what the vCPU got and whose answer it was (§4.6). 0 or a negative errno. */
static int applied_frame(struct seawall_plugin *p, uint32_t seq, int32_t result, uint8_t action, uint8_t source,
                         uint32_t body_len, int64_t deadline) {
  uint8_t frame[SEAWALL_HEADER_SIZE + BODY_APPLIED_V11];
  memset(frame, 0, sizeof frame);
  put_header(frame, body_len, SEAWALL_MSG_APPLIED);
  put_u32(frame + SEAWALL_HEADER_SIZE, seq);
  put_u32(frame + SEAWALL_HEADER_SIZE + 4, (uint32_t)result);
  frame[SEAWALL_HEADER_SIZE + 8] = action;
  frame[SEAWALL_HEADER_SIZE + 9] = source;
  return write_all(p, frame, SEAWALL_HEADER_SIZE + body_len, deadline);
}

/* Handles one frame received outside a handshake; what it writes back (the APPLIED for a late
 * verdict) must be out by `deadline`. Returns 1 when it is the VERDICT for `seq` (decoded into
 * *out), 0 when it was consumed, or a negative errno that ends the connection. */
static int dispatch(struct seawall_plugin *p, uint16_t type, const uint8_t *body, uint32_t len, uint32_t seq,
                    int64_t deadline, struct seawall_verdict *out) {
  struct seawall_verdict v;
  int late;
  switch (type) {
  case SEAWALL_MSG_VERDICT:
    if (decode_verdict(body, &v)) return -EPROTO;
    p->stalled = 0; /* the daemon answers again */
    if (seq != 0 && v.seq == seq) {
      *out = v;
      return 1;
    }
    /* A late verdict: its event was answered by the fallback. A KILL is passed on all the same (the
     * daemon enforces it), and 1.1 tells the daemon what the vCPU got (§4.6). */
    late = forget_kept(p, v.seq);
    p->late_verdicts++;
    pass_on_kill(p, body);
    if (late >= 0 && p->welcome.minor >= 1)
      return applied_frame(p, v.seq, 0, (uint8_t)late, SEAWALL_APPLIED_FALLBACK, BODY_APPLIED_V11, deadline);
    return 0;
  case SEAWALL_MSG_HEARTBEAT:
    p->stalled = 0;
    ack_replay(p, get_u64(body));
    return 0;
  case SEAWALL_MSG_ERROR:
    return take_text(p, body, len) ? -EPROTO : -ECONNRESET;
  case SEAWALL_MSG_GOODBYE:
    return -ECONNRESET;
  default:
    return -EPROTO; /* WELCOME or REJECT after the handshake */
  }
}

/* Reads one frame, if one is already there, and handles it: 0, or a negative errno that ends the
 * connection. */
static int take_answer(struct seawall_plugin *p) {
  uint16_t type;
  const uint8_t *body;
  uint32_t len;
  int r = read_frame(p, now_ms(), &type, &body, &len);
  if (r <= 0) return r;
  return dispatch(p, type, body, len, 0, now_ms() + p->deadline_ms, NULL);
}

/* Sends one event frame and waits for its verdict until the deadline; the fallback otherwise. */
static int exchange(struct seawall_plugin *p, uint8_t *frame, uint32_t frame_len, uint32_t seq,
                    struct seawall_verdict *out) {
  uint16_t event_type = get_u16(frame + 4);
  /* Connected, the session's checks; while not, only those every version makes (§4.4). */
  uint16_t minor = p->fd >= 0 ? p->welcome.minor : 0;
  if (refused_event(frame + SEAWALL_HEADER_SIZE, event_type, p->session_vcpus, p->session_caps, minor)) {
    p->invalid_events++;
    fallback_verdict(p, seq, event_type, out);
    return 1;
  }
  /* While stalled (an exit missed its deadline and the daemon has not answered since), first take
   * what the daemon sent meanwhile: any answer ends the stall and this exit waits as usual. Still
   * stalled, it gets no wait at all: an exit queued on the VMM's mutex behind one that waited a
   * whole deadline for a frozen daemon must not wait another (the header's first comment). */
  int r = p->fd < 0 ? -ENOTCONN : 0;
  if (r == 0 && p->stalled) r = take_answer(p);
  int stalled = r == 0 && p->stalled;
  int64_t deadline = now_ms() + (stalled ? 0 : p->deadline_ms);
  if (r == 0) r = write_all(p, frame, frame_len, deadline);
  /* 1 when the event went out and only its verdict did not come in time (the daemon is slow or
   * frozen): that alone keeps the connection, since the verdict may still come (§9 rule 4). Every
   * error drops it, a write that timed out too: its event never reached the daemon, and kept events
   * are replayed only after a reconnect. */
  int verdict_late = 0;
  while (r == 0) {
    uint16_t type;
    const uint8_t *body;
    uint32_t len;
    r = read_frame(p, deadline, &type, &body, &len);
    if (r == 0) {
      verdict_late = 1;
      break;
    }
    if (r < 0) break;
    r = dispatch(p, type, body, len, seq, deadline, out);
    if (r == 1) {
      /* An INJECT whose image the declared host would refuse or misread is a protocol error: the
       * exit gets the fallback, kept for the replay after the reconnect (§5.1, §5.3). */
      const char *why = refused_verdict(out, event_type, p->session_caps);
      if (why == NULL) {
        p->reconnect_backoff_ms = SEAWALL_RECONNECT_MIN_MS; /* a verdict applied: the session proved useful */
        return 0;
      }
      p->refused_verdicts++;
      p->refusal = why;
      r = -EPROTO;
      break;
    }
    /* read_frame looks at the clock only when nothing is there to read: a daemon that keeps
     * sending other frames (HEARTBEATs, late verdicts) must not hold the vCPU past its deadline. */
    if (r == 0 && now_ms() >= deadline) {
      verdict_late = 1;
      break;
    }
  }
  if (!verdict_late) lose_connection(p);
  else p->stalled = 1;
  if (verdict_late && stalled) p->stalled_fallbacks++;
  fallback_verdict(p, seq, event_type, out);
  keep_for_replay(p, frame, frame_len, seq, out->action);
  return 1;
}

int seawall_handle_sea(struct seawall_plugin *p, const struct seawall_sea_exit *e, struct seawall_verdict *out) {
  uint32_t seq = take_seq(p);
  uint8_t frame[SEAWALL_HEADER_SIZE + BODY_EVENT_SEA];
  uint8_t *b = event_frame(frame, BODY_EVENT_SEA, SEAWALL_MSG_EVENT_SEA, seq, e->vcpu);
  put_u64(b + 24, e->kvm_flags);
  put_u64(b + 32, e->esr);
  put_u64(b + 40, e->gva);
  put_u64(b + 48, e->gpa);
  return exchange(p, frame, sizeof frame, seq, out);
}

int seawall_handle_nisv(struct seawall_plugin *p, const struct seawall_nisv_exit *e, struct seawall_verdict *out) {
  uint32_t seq = take_seq(p);
  uint8_t frame[SEAWALL_HEADER_SIZE + BODY_EVENT_NISV];
  uint8_t *b = event_frame(frame, BODY_EVENT_NISV, SEAWALL_MSG_EVENT_NISV, seq, e->vcpu);
  put_u64(b + 24, e->esr_iss);
  put_u64(b + 32, e->fault_ipa);
  return exchange(p, frame, sizeof frame, seq, out);
}

int seawall_handle_mmio(struct seawall_plugin *p, const struct seawall_mmio_exit *e, struct seawall_verdict *out) {
  uint32_t seq = take_seq(p);
  uint8_t frame[SEAWALL_HEADER_SIZE + BODY_EVENT_MMIO];
  uint8_t *b = event_frame(frame, BODY_EVENT_MMIO, SEAWALL_MSG_EVENT_MMIO, seq, e->vcpu);
  put_u64(b + 24, e->phys_addr);
  memcpy(b + 32, e->data, 8);
  put_u32(b + 40, e->len);
  b[44] = e->is_write ? 1 : 0;
  return exchange(p, frame, sizeof frame, seq, out);
}

int seawall_handle_sigbus(struct seawall_plugin *p, const struct seawall_sigbus *e, struct seawall_verdict *out) {
  if (e->si_code != SEAWALL_BUS_MCEERR_AR && e->si_code != SEAWALL_BUS_MCEERR_AO) return -EINVAL;
  uint32_t seq = take_seq(p);
  uint8_t frame[SEAWALL_HEADER_SIZE + BODY_EVENT_SIGBUS];
  uint8_t *b = event_frame(frame, BODY_EVENT_SIGBUS, SEAWALL_MSG_EVENT_SIGBUS, seq, e->vcpu);
  put_u16(b + 24, e->si_code);
  put_u16(b + 26, e->addr_lsb);
  put_u64(b + 32, e->gpa);
  return exchange(p, frame, sizeof frame, seq, out);
}

int seawall_poll(struct seawall_plugin *p, int timeout_ms) {
  if (p->fd < 0) return -ENOTCONN;
  int64_t deadline = now_ms() + timeout_ms;
  int handled = 0;
  for (;;) {
    uint16_t type;
    const uint8_t *body;
    uint32_t len;
    int r = read_frame(p, deadline, &type, &body, &len);
    if (r == 0) return handled;
    if (r > 0) r = dispatch(p, type, body, len, 0, now_ms() + p->deadline_ms, NULL);
    if (r < 0) {
      lose_connection(p);
      return r;
    }
    handled++;
    deadline = now_ms(); /* after the first frame, take only what is already there */
  }
}

int seawall_send_applied(struct seawall_plugin *p, uint32_t seq, int32_t result) {
  if (p->fd < 0) return -ENOTCONN;
  int r = applied_frame(p, seq, result, 0, SEAWALL_APPLIED_VERDICT, BODY_APPLIED, now_ms() + p->deadline_ms);
  if (r) lose_connection(p);
  return r;
}

int seawall_send_applied_fallback(struct seawall_plugin *p, uint32_t seq, int32_t result, uint8_t action) {
  if (p->fd < 0) return -ENOTCONN;
  if (action > SEAWALL_ACTION_KILL) return -EINVAL;
  int64_t deadline = now_ms() + p->deadline_ms;
  int r = p->welcome.minor >= 1
              ? applied_frame(p, seq, result, action, SEAWALL_APPLIED_FALLBACK, BODY_APPLIED_V11, deadline)
              : applied_frame(p, seq, result, 0, SEAWALL_APPLIED_VERDICT, BODY_APPLIED, deadline);
  if (r) lose_connection(p);
  return r;
}

void seawall_close(struct seawall_plugin *p, uint16_t reason) {
  for (size_t i = 0; i < SEAWALL_VCPUS_MAX; i++) p->vcpu_fd[i] = -1; /* the caller may close them now */
  if (p->fd < 0) return;
  uint8_t frame[SEAWALL_HEADER_SIZE + BODY_GOODBYE];
  put_header(frame, BODY_GOODBYE, SEAWALL_MSG_GOODBYE);
  put_u16(frame + SEAWALL_HEADER_SIZE, reason);
  put_u16(frame + SEAWALL_HEADER_SIZE + 2, 0);
  int64_t deadline = now_ms() + p->deadline_ms;
  if (write_all(p, frame, sizeof frame, deadline) == 0) {
    /* Read until the daemon's GOODBYE or EOF; verdicts still in flight are not applied, but a KILL
     * among them is passed on (the daemon enforces it). */
    for (;;) {
      uint16_t type;
      const uint8_t *body;
      uint32_t len;
      if (read_frame(p, deadline, &type, &body, &len) <= 0 || type == SEAWALL_MSG_GOODBYE) break;
      if (type == SEAWALL_MSG_VERDICT) pass_on_kill(p, body);
      if (now_ms() >= deadline) break;
    }
  }
  drop_connection(p);
}

int seawall_set_attach_socket(struct seawall_plugin *p, const char *path) {
  if (path == NULL) {
    p->attach_path_set = 0;
    return 0;
  }
  size_t len = strlen(path);
  if (len >= SEAWALL_ATTACH_PATH_MAX) return -ENAMETOOLONG;
  memcpy(p->attach_path, path, len + 1);
  p->attach_path_set = 1;
  return 0;
}

int seawall_attach_vcpu(struct seawall_plugin *p, uint32_t vcpu, int vcpu_fd) {
  if (vcpu >= SEAWALL_VCPUS_MAX || (p->session_vcpus != 0 && vcpu >= p->session_vcpus)) return -EINVAL;
  if (vcpu_fd < 0) return -EBADF;
  p->vcpu_fd[vcpu] = vcpu_fd;
  if (p->fd < 0) return -ENOTCONN; /* attached after the next WELCOME */
  int reached;
  return attach_one(p, vcpu, now_ms() + p->hello_timeout_ms, &reached);
}

int seawall_reattach_due(const struct seawall_plugin *p) {
  return p->fd >= 0 && now_ms() >= p->reattach_at_ms && (p->lost > 0 || (p->attached > 0 && attach_closed(p)));
}

int seawall_reattach(struct seawall_plugin *p) {
  if (p->fd < 0) return 0; /* no session: nothing is lost, the next WELCOME attaches them all */
  if (p->attached > 0 && attach_closed(p)) lose_attach(p);
  if (p->lost == 0) return 0;
  int r = attach_many(p, 1, now_ms() + p->hello_timeout_ms);
  if (p->lost == 0) {
    p->reattach_backoff_ms = SEAWALL_RECONNECT_MIN_MS;
    p->reattach_at_ms = 0;
  } else { /* the connection failed again: the next attempt waits, ever longer up to the bound */
    p->reattach_at_ms = now_ms() + p->reattach_backoff_ms;
    p->reattach_backoff_ms = next_backoff_ms(p->reattach_backoff_ms);
  }
  return r;
}

int seawall_detach_vcpu(struct seawall_plugin *p, uint32_t vcpu) {
  if (vcpu >= SEAWALL_VCPUS_MAX) return -EINVAL;
  if (p->vcpu_fd[vcpu] < 0) return -ENOENT;
  p->vcpu_fd[vcpu] = -1;
  unmark_lost(p, vcpu);
  if (!p->vcpu_attached[vcpu] || p->attach_fd < 0) return 0;
  p->vcpu_attached[vcpu] = 0;
  p->attached--;
  int reached;
  return attach_request(p, ATTACH_OP_DETACH, vcpu, -1, now_ms() + p->hello_timeout_ms, &reached);
}
