/*
 * The benchmark's load generator: one process, epoll, many connections, many events in flight,
 * so the client is never what a figure measures (a Node client hid most of the daemon's tail).
 *
 * It knows nothing of the protocol beyond its framing (docs/protocol.md §3: a frame is an 8-byte
 * header whose first u32 is the body length, then a u16 type), that every event body and every
 * VERDICT body starts with the u32 seq, and that HELLO's vmm_pid is the u32 at body offset 8 (it
 * writes its own pid there: the daemon compares it with the connecting process's, SO_PEERCRED).
 * The frames themselves come from the TypeScript encoder (bench/frames.ts writes them to a file
 * and checks those offsets), so this file repeats no message layout.
 *
 * Every reply is checked: its body is REPLY_LEN bytes and its seq is one this connection sent and
 * has not had answered yet; anything else (an unknown or repeated seq, another length), or an
 * event left unanswered at the end, ends the client with a message and exit status 1, so a
 * server that answers wrongly scores nothing.
 *
 * Usage: client SOCKET FRAMES_FILE MODE COUNT INFLIGHT REPLY_TYPE REPLY_LEN
 *   FRAMES_FILE  u32 conns, then per connection: u32 hello_len, hello bytes (0: no handshake),
 *                u32 event_len, event bytes (a template; its seq is rewritten per event),
 *                u32 applied_len, applied bytes (0: none; else sent for each reply, before the next
 *                event, with the reply's seq written at body offset 0, as a plugin reports APPLIED)
 *   MODE         latency  — connection 0 only, INFLIGHT forced to 1, COUNT round trips
 *                throughput — every connection keeps INFLIGHT events outstanding, COUNT in all
 *                hold — connect and handshake every connection, print "held", wait for stdin EOF
 *   REPLY_TYPE   the frame type that answers an event (0x20 VERDICT; the event's own type for an
 *                echo server); other frames (WELCOME, HEARTBEAT) are read and skipped
 *   REPLY_LEN    the body length of every reply (VERDICT's, or the event's for an echo server)
 * Prints one JSON line: {"count":…,"seconds":…,"perSecond":…,"p50":…,"p99":…,"p99.9":…} (µs).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define HEADER 8u
#define RXBUF 65536u
#define TYPE_WELCOME 0x02u
#define TYPE_REJECT 0x03u

struct conn {
  int fd;
  uint8_t *hello, *event, *applied;
  uint32_t hello_len, event_len, applied_len;
  int ready;
  uint32_t next_seq, in_flight;
  uint8_t rx[RXBUF];
  size_t rx_len;
  uint64_t *sent_ns;     /* by seq % window */
  uint32_t *outstanding; /* by seq % window: the seq sent and not yet answered there, or 0 */
};

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what) {
  perror(what);
  exit(1);
}

static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

static uint8_t *read_blob(FILE *f, uint32_t *len) {
  uint8_t b[4];
  if (fread(b, 1, 4, f) != 4) die("frames file");
  *len = rd32(b);
  uint8_t *p = malloc(*len ? *len : 1);
  if (!p || (*len && fread(p, 1, *len, f) != *len)) die("frames file");
  return p;
}

static void write_all(int fd, const uint8_t *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w > 0) {
      p += w;
      n -= (size_t)w;
    } else if (w < 0 && errno != EINTR && errno != EAGAIN) die("write");
  }
}

static void put_seq(uint8_t *frame, uint32_t seq) {
  frame[HEADER] = (uint8_t)seq;
  frame[HEADER + 1] = (uint8_t)(seq >> 8);
  frame[HEADER + 2] = (uint8_t)(seq >> 16);
  frame[HEADER + 3] = (uint8_t)(seq >> 24);
}

static void send_event(struct conn *c, uint32_t window) {
  uint32_t seq = ++c->next_seq;
  if (c->outstanding[seq % window] != 0) {
    fprintf(stderr, "client: seq %u still unanswered %u events later\n", c->outstanding[seq % window], window);
    exit(1);
  }
  put_seq(c->event, seq);
  c->outstanding[seq % window] = seq;
  c->sent_ns[seq % window] = now_ns();
  c->in_flight++;
  write_all(c->fd, c->event, c->event_len);
}

/*
 * After the last reply: every event sent was answered, and no further reply comes within 50 ms
 * (a second answer to the last events would otherwise go unseen). 1 when either fails.
 */
static int check_end(struct conn *conns, uint32_t nconn, int ep, uint32_t reply_type, uint64_t sent,
                     uint64_t done) {
  uint64_t open = 0;
  for (uint32_t i = 0; i < nconn; i++) open += conns[i].in_flight;
  if (open != 0 || sent != done) {
    fprintf(stderr, "client: %llu events sent, %llu answered\n", (unsigned long long)sent,
            (unsigned long long)done);
    return 1;
  }
  struct epoll_event evs[64];
  uint64_t until = now_ns() + 50000000u;
  for (uint64_t t = now_ns(); t < until; t = now_ns()) {
    int n = epoll_wait(ep, evs, 64, (int)((until - t) / 1000000u) + 1);
    for (int j = 0; j < n; j++) {
      struct conn *c = &conns[evs[j].data.u32];
      ssize_t r = read(c->fd, c->rx + c->rx_len, RXBUF - c->rx_len);
      if (r <= 0) {
        if (r == 0) epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        continue;
      }
      c->rx_len += (size_t)r;
      size_t off = 0;
      while (c->rx_len - off >= HEADER && rd32(c->rx + off) <= RXBUF - HEADER &&
             c->rx_len - off >= HEADER + rd32(c->rx + off)) {
        uint32_t type = (uint32_t)c->rx[off + 4] | (uint32_t)c->rx[off + 5] << 8;
        if (type == reply_type) {
          fprintf(stderr, "client: a reply after every event sent was answered\n");
          return 1;
        }
        off += HEADER + rd32(c->rx + off);
      }
      memmove(c->rx, c->rx + off, c->rx_len - off);
      c->rx_len -= off;
    }
  }
  return 0;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static double pct(const uint64_t *s, size_t n, double p) {
  size_t i = (size_t)(p * (double)(n - 1) + 0.5);
  return (double)s[i] / 1000.0;
}

int main(int argc, char **argv) {
  if (argc != 8) {
    fprintf(stderr, "usage: %s SOCKET FRAMES_FILE latency|throughput|hold COUNT INFLIGHT REPLY_TYPE REPLY_LEN\n",
            argv[0]);
    return 2;
  }
  const char *mode = argv[3];
  int latency = strcmp(mode, "latency") == 0, hold = strcmp(mode, "hold") == 0;
  uint64_t count = strtoull(argv[4], NULL, 10);
  uint32_t inflight = latency ? 1 : (uint32_t)strtoul(argv[5], NULL, 10);
  uint32_t reply_type = (uint32_t)strtoul(argv[6], NULL, 0);
  uint32_t reply_len = (uint32_t)strtoul(argv[7], NULL, 0);
  uint32_t pid = (uint32_t)getpid();
  uint32_t window = inflight * 2 + 1;

  FILE *f = fopen(argv[2], "rb");
  if (!f) die("frames file");
  uint8_t nb[4];
  if (fread(nb, 1, 4, f) != 4) die("frames file");
  uint32_t nconn = rd32(nb);
  if (latency) nconn = nconn > 0 ? 1 : 0;
  struct conn *conns = calloc(nconn, sizeof *conns);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (!conns || ep < 0) die("setup");
  for (uint32_t i = 0; i < nconn; i++) {
    struct conn *c = &conns[i];
    c->hello = read_blob(f, &c->hello_len);
    c->event = read_blob(f, &c->event_len);
    c->applied = read_blob(f, &c->applied_len);
    c->sent_ns = calloc(window, sizeof *c->sent_ns);
    c->outstanding = calloc(window, sizeof *c->outstanding);
    if (!c->sent_ns || !c->outstanding) die("setup");
    if (c->hello_len > 0) {
      if (c->hello_len < HEADER + 12) die("frames file: HELLO");
      memcpy(c->hello + HEADER + 8, (uint8_t[4]){(uint8_t)pid, (uint8_t)(pid >> 8), (uint8_t)(pid >> 16), (uint8_t)(pid >> 24)}, 4);
    }
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strncpy(a.sun_path, argv[1], sizeof a.sun_path - 1);
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&a, sizeof a) < 0) die("connect");
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
    if (c->hello_len > 0) write_all(c->fd, c->hello, c->hello_len);
    else c->ready = 1;
  }
  fclose(f);

  uint64_t samples_cap = latency ? count : 0;
  uint64_t *samples = latency ? malloc(count * sizeof *samples) : NULL;
  uint64_t sent = 0, done = 0, nsamples = 0, start = 0;
  uint32_t ready = 0;
  for (uint32_t i = 0; i < nconn; i++) ready += (uint32_t)conns[i].ready;
  struct epoll_event evs[256];
  int started = 0;
  while (hold ? ready < nconn : done < count) {
    if (!started && ready == nconn) {
      if (hold) break;
      started = 1;
      start = now_ns();
      for (uint32_t i = 0; i < nconn; i++)
        for (uint32_t k = 0; k < inflight && sent < count; k++, sent++) send_event(&conns[i], window);
    }
    int n = epoll_wait(ep, evs, 256, 10000);
    if (n == 0) {
      fprintf(stderr, "client: no reply within 10 s (%llu of %llu answered)\n", (unsigned long long)done,
              (unsigned long long)count);
      return 1;
    }
    for (int j = 0; j < n; j++) {
      struct conn *c = &conns[evs[j].data.u32];
      ssize_t r = read(c->fd, c->rx + c->rx_len, RXBUF - c->rx_len);
      if (r <= 0) {
        if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        fprintf(stderr, "client: connection closed by the server\n");
        return 1;
      }
      c->rx_len += (size_t)r;
      size_t off = 0;
      while (c->rx_len - off >= HEADER) {
        uint32_t body = rd32(c->rx + off);
        if (body > RXBUF - HEADER) {
          fprintf(stderr, "client: frame of %u bytes\n", body);
          return 1;
        }
        if (c->rx_len - off < HEADER + body) break;
        uint32_t type = (uint32_t)c->rx[off + 4] | (uint32_t)c->rx[off + 5] << 8;
        if (type == TYPE_REJECT) {
          fprintf(stderr, "client: HELLO rejected\n");
          return 1;
        }
        if (!c->ready && type == TYPE_WELCOME) {
          c->ready = 1;
          ready++;
        } else if (type == reply_type) {
          if (body != reply_len) {
            fprintf(stderr, "client: a reply of %u bytes, not %u\n", body, reply_len);
            return 1;
          }
          uint32_t seq = rd32(c->rx + off + HEADER);
          if (seq == 0 || c->outstanding[seq % window] != seq) {
            fprintf(stderr, "client: a reply to seq %u, not sent or already answered on this connection\n", seq);
            return 1;
          }
          c->outstanding[seq % window] = 0;
          uint64_t t = now_ns();
          if (nsamples < samples_cap) samples[nsamples++] = t - c->sent_ns[seq % window];
          c->in_flight--;
          done++;
          if (c->applied_len > 0) {
            put_seq(c->applied, seq);
            write_all(c->fd, c->applied, c->applied_len);
          }
          if (sent < count) {
            send_event(c, window);
            sent++;
          }
        }
        off += HEADER + body;
      }
      memmove(c->rx, c->rx + off, c->rx_len - off);
      c->rx_len -= off;
    }
  }
  if (hold) {
    printf("held %u\n", nconn);
    fflush(stdout);
    char b[64];
    while (read(0, b, sizeof b) > 0) {
    }
    return 0;
  }
  double seconds = (double)(now_ns() - start) / 1e9;
  if (check_end(conns, nconn, ep, reply_type, sent, done)) return 1;
  printf("{\"count\":%llu,\"seconds\":%.4f,\"perSecond\":%.0f", (unsigned long long)done, seconds,
         (double)done / seconds);
  if (latency && nsamples > 0) {
    qsort(samples, nsamples, sizeof *samples, cmp_u64);
    printf(",\"p50\":%.1f,\"p99\":%.1f,\"p99.9\":%.1f,\"max\":%.1f", pct(samples, nsamples, 0.5),
           pct(samples, nsamples, 0.99), pct(samples, nsamples, 0.999), pct(samples, nsamples, 1.0));
  }
  printf("}\n");
  return 0;
}
