/* JSON lines to the test on the control port (one line per write, under a lock). */
#ifndef REPORT_H
#define REPORT_H

#include "lane.h"

void report_open(int fd);
/* printf-style; the text must be one JSON object without the trailing newline. */
void report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void report_result(const struct lane_result *r);
/* The 64 bytes of `b` as 128 lowercase hex digits and a NUL. */
void hex64(char out[129], const uint8_t b[64]);
/* Reads one line from the test (e.g. "go"), up to timeout_ms; 0 or -errno. */
int report_wait(const char *phase, int timeout_ms);

#endif
