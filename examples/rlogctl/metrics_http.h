/*
 * metrics_http — the small HTTP/1.x server behind `rlogctl node
 * --metrics-address HOST:PORT`: GET /metrics answers the Prometheus text
 * a callback renders; nothing else is served. One thread, poll(), bounded:
 * METRICS_HTTP_MAX_CONNS connections at once (more are closed at accept),
 * METRICS_HTTP_MAX_HEADER bytes of request head, METRICS_HTTP_TIMEOUT_MS
 * to send it and take the answer; one request per connection.
 */
#ifndef METRICS_HTTP_H
#define METRICS_HTTP_H

#include <stddef.h>

#define METRICS_HTTP_MAX_CONNS 16
#define METRICS_HTTP_MAX_HEADER 8192
#define METRICS_HTTP_TIMEOUT_MS 5000

/* Renders the body into *text (freed with rlog_free) of *len bytes; 0 or an error
 * (answered 503). Called on the server's thread. */
typedef int (*metrics_http_fn)(void *arg, char **text, size_t *len);

struct metrics_http;

/* Binds and listens on "HOST:PORT" ("[v6]:PORT" too). NULL on failure,
 * with the reason (address in use, bad address...) in why. */
struct metrics_http *metrics_http_open(const char *hostport, char *why, size_t whylen);
/* Starts serving on its own thread. 0, or -1 with why set. */
int metrics_http_start(struct metrics_http *h, metrics_http_fn fn, void *arg, char *why,
                       size_t whylen);
/* Stops the thread (after a callback under way returns), closes every
 * socket, frees h. NULL is fine. */
void metrics_http_close(struct metrics_http *h);

#endif
