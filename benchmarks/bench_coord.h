/* bench_coord: `hashflop-bench coord`, the coordinator's scale benchmark (see bench_coord.c), in
 * three parts: a sans-I/O HTTP/1.1 response parser (bench_coord_http.c), the simulated fleet on
 * one epoll loop (bench_coord_fleet.c) and the benchmark itself (bench_coord.c).
 *
 * Invariants: responses are capped (head BC_HTTP_HEAD_MAX, body BC_HTTP_BODY_MAX); every node
 * holds at most one long poll at a time on its own connection; reports share a small pool of
 * kept-alive connections (each request carries its node's token).
 * Threading: one bc_fleet is driven by one thread (its epoll loop); nothing here is shared.
 */
#ifndef BENCH_COORD_H
#define BENCH_COORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/types.h>

/* ---- HTTP/1.1 responses (bench_coord_http.c) ---- */
#define BC_HTTP_HEAD_MAX 8192
#define BC_HTTP_BODY_MAX 65536

typedef struct bc_http_resp {
	int status;
	bool close;          /* "Connection: close", or HTTP/1.0 without keep-alive */
	const char *body;    /* into the buffer given (Content-Length) or into scratch (chunked) */
	size_t body_len;
} bc_http_resp;

/* Parses one response at the start of buf[0..len). Returns the bytes it spans (> 0) when it is
 * complete, 0 when more bytes are needed, HF_EPROTO for a malformed response (bad status line,
 * bad or duplicate Content-Length, bad chunk size, no length and no chunking on a keep-alive
 * response with a body), HF_ETOOBIG over the caps. A chunked body is decoded into scratch
 * (BC_HTTP_BODY_MAX bytes); a Content-Length body points into buf. Responses to HEAD and
 * 1xx/204/304 have no body. */
ssize_t bc_http_parse(const char *buf, size_t len, char *scratch, bc_http_resp *out);

/* ---- the simulated fleet (bench_coord_fleet.c) ---- */
typedef struct bc_fleet bc_fleet;

typedef struct bc_fleet_opts {
	struct sockaddr_in server;   /* the coordinator */
	unsigned nodes;              /* registered nodes (ids and tokens below) */
	unsigned polling;            /* nodes 0..polling-1 hold a long poll (<= nodes) */
	unsigned addresses;          /* source addresses 127.0.0.1 .. 127.0.0.K */
	unsigned report_conns;       /* kept-alive connections the reports share */
	unsigned wait_s;             /* the long polls' wait= */
	unsigned max_connecting;     /* connects in flight at once */
	const char *fleet_id;
	const char *version;         /* the reports' "version" */
	char (*ids)[16];             /* nodes entries: "n0000001" ... */
	char (*tokens)[65];          /* nodes entries: 64 hex digits */
} bc_fleet_opts;

/* Report schedule: each node reports every interval_s seconds (spread evenly); 0: off;
 * saturate: every report connection sends the next node's report as soon as the previous one
 * is answered. */
typedef enum bc_report_mode { BC_REPORTS_OFF, BC_REPORTS_INTERVAL, BC_REPORTS_SATURATE } bc_report_mode;

typedef struct bc_fleet_stats {
	uint64_t polls_sent, polls_200, polls_204, polls_other, poll_reconnects;
	uint64_t reports_sent, reports_ok, reports_other, reports_late, report_resends;
	uint64_t connect_errors, io_errors, parse_errors;
	unsigned polling_connected;  /* poll connections established now */
	unsigned polls_outstanding;  /* poll requests sent and not answered */
	int last_bad_status;         /* the last unexpected status seen (0: none) */
	char last_bad_body[160];     /* its body, cleaned */
} bc_fleet_stats;

int bc_fleet_new(const bc_fleet_opts *o, bc_fleet **out, char *err, size_t errsz);
void bc_fleet_free(bc_fleet *f);
void bc_fleet_set_reports(bc_fleet *f, bc_report_mode mode, double interval_s);
/* What bc_fleet_run waits for besides its deadline. */
typedef enum bc_until {
	BC_UNTIL_DEADLINE = 0,
	BC_UNTIL_ADMIN,      /* the admin answer arrived */
	BC_UNTIL_TRACKED,    /* every polling node holds an envelope past the tracked floor */
	BC_UNTIL_POLLS_SENT, /* every polling node is connected and has its poll sent */
} bc_until;

/* Runs the loop until the condition holds (returns 1) or for at most ms milliseconds (returns
 * 0); a negative HF_E* code when the loop itself fails (epoll), with err. */
int bc_fleet_run(bc_fleet *f, uint64_t ms, bc_until until, char *err, size_t errsz);
/* Queues every polling node's connection and the report pool for connecting (at most
 * max_connecting in flight at once); bc_fleet_run(.., BC_UNTIL_POLLS_SENT) then drives them. */
void bc_fleet_connect_all(bc_fleet *f);
void bc_fleet_stats_get(const bc_fleet *f, bc_fleet_stats *st);

/* One admin request (POST path with body, Authorization: Bearer admin_token when non-NULL) on
 * its own connection; t0_us gets the monotonic time just before its first byte was sent. The
 * answer is collected by bc_fleet_run (bc_fleet_admin_result). */
int bc_fleet_admin_post(bc_fleet *f, const char *path, const char *body, const char *admin_token,
			uint64_t *t0_us, char *err, size_t errsz);
/* true once the admin answer arrived: *status (0: the connection failed), the body (valid until
 * the next admin post) and *at_us, the monotonic time it was parsed. */
bool bc_fleet_admin_result(const bc_fleet *f, int *status, const char **body, size_t *len,
			   uint64_t *at_us);

/* Fan-out tracking: from now, the first envelope with issued_ms > floor that node i receives
 * sets lat_us[i] = receipt - t0_us; *done counts them. */
void bc_fleet_track(bc_fleet *f, uint64_t floor_issued_ms, uint64_t t0_us, uint32_t *lat_us);
unsigned bc_fleet_tracked_done(const bc_fleet *f);
/* The highest issued_ms any polling node holds. */
uint64_t bc_fleet_max_held(const bc_fleet *f);

#endif
