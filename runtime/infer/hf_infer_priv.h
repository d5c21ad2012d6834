/* hf_infer_priv: what the files of the inference server share: the server object, a run (the
 * repository and the batchers of one start..release), per-model counters, and the request
 * object that travels from an HTTP handler through a batcher to its answer.
 * Invariants: s->run changes only under the write side of run_lock (start publishes it,
 * release takes it away); handlers use it under the read side and never wait on compute
 * there; a slot's batcher is set once under the write lock and freed only after the run left
 * s->run. Every accepted request (hf_ireq) is answered exactly once, by the batcher's done().
 * Threading: see hf_infer.h; counters are atomics; the counter table grows only on the
 * switcher thread (start), under counters_lock.
 */
#ifndef HF_INFER_PRIV_H
#define HF_INFER_PRIV_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>

#include "hf_batcher.h"
#include "hf_httpd.h"
#include "hf_infer.h"
#include "hf_model_repo.h"
#include "hf_oip.h"

typedef enum hf_infer_state {
	HF_INFER_STOPPED = 0,
	HF_INFER_LOADING,
	HF_INFER_READY,
	HF_INFER_DRAINING,
} hf_infer_state;

const char *hf_infer_state_name(hf_infer_state st);

/* HTTP status classes counted per model (hashflop_infer_requests_total{code}). */
typedef enum hf_infer_code {
	HF_IC_200 = 0, HF_IC_400, HF_IC_404, HF_IC_413, HF_IC_500, HF_IC_503, HF_IC_COUNT
} hf_infer_code;

/* Why a request failed (hashflop_infer_failures_total{reason}). */
typedef enum hf_infer_fail {
	HF_IF_BAD_REQUEST = 0, /* 400: the body or its tensors do not fit the model */
	HF_IF_TOO_LARGE,       /* 413 */
	HF_IF_QUEUE_FULL,      /* 503 */
	HF_IF_NOT_READY,       /* 503: stopped, loading, failed model */
	HF_IF_DRAINING,        /* 503 */
	HF_IF_TIMEOUT,         /* 503: queued past request_timeout_ms */
	HF_IF_CANCELED,        /* 503: drained or stopped before it ran */
	HF_IF_COMPUTE,         /* 500: the executor failed */
	HF_IF_CLIENT_GONE,     /* the client left before its answer */
	HF_IF_COUNT
} hf_infer_fail;

typedef struct hf_infer_counters {
	char name[HF_MODEL_NAME_MAX];
	atomic_uint_fast64_t codes[HF_IC_COUNT];
	atomic_uint_fast64_t fails[HF_IF_COUNT];
} hf_infer_counters;

typedef enum hf_slot_state { HF_SLOT_LOADING = 0, HF_SLOT_READY, HF_SLOT_FAILED } hf_slot_state;

typedef struct hf_infer_slot {
	struct hf_infer *s;
	const hf_model *m;            /* the repository's entry */
	hf_batcher *b;                /* NULL unless it started */
	_Atomic hf_slot_state state;
	char reason[HF_ERRBUF_SIZE];  /* the load or start failure (cleaned) */
	hf_infer_counters *cnt;
	double flops_per_item;        /* hf_graph_work_flops_per_sample, once at load (0: failed) */
	uint64_t start_ms;            /* its instances' open: device, executor, warm-up */
} hf_infer_slot;

typedef struct hf_infer_run {
	uint64_t device_ms, load_ms;  /* the device lookup, the repository load */
	hf_model_repo *repo;
	size_t n;
	hf_infer_slot slots[HF_MODEL_REPO_MAX];
} hf_infer_run;

struct hf_infer {
	hf_infer_config cfg;
	hf_httpd *httpd;
	pthread_rwlock_t run_lock;
	hf_infer_run *run;
	_Atomic hf_infer_state state;
	char last_error[HF_ERRBUF_SIZE]; /* the last failed start (switcher thread; under run_lock) */
	pthread_mutex_t counters_lock;
	hf_infer_counters counters[HF_MODEL_REPO_MAX];
	atomic_size_t ncounters;
	atomic_uint_fast64_t unknown_model_total; /* requests for a model that is not there */
	/* the work done over the object's life (hf_infer_work): items answered and their FLOPs */
	pthread_mutex_t work_lock;
	uint64_t work_inferences;
	double work_flops;
};

/* Counts a batch the executor finished: items answered, items * the slot's FLOPs per item. */
void hf_infer_work_add(hf_infer_slot *slot, size_t items);
/* The slot named name in the current run (run_lock read side held), or NULL. */
hf_infer_slot *hf_infer_find_slot(hf_infer *s, const char *name);
void hf_infer_count(hf_infer_counters *c, int http_status);
void hf_infer_count_fail(hf_infer_counters *c, hf_infer_fail why);

/* ---- the route table (hf_infer_http.c) ---- */
extern const hf_http_route hf_infer_routes[];
extern const size_t hf_infer_nroutes;

/* ---- a request in flight (hf_infer_req.c) ---- */
typedef struct hf_ireq {
	hf_batcher_req br;            /* br.user = this, br.items = n */
	hf_http_pending *pending;
	hf_infer_slot *slot;
	hf_oip_request req;           /* owns the input data */
	size_t n;                     /* batch items */
	size_t in_map[HF_GRAPH_MAX_IO]; /* graph input i -> req.inputs index */
	size_t nout;
	int out_value[HF_GRAPH_MAX_IO]; /* graph output index of each returned output */
	bool out_binary[HF_GRAPH_MAX_IO];
	float *out_data[HF_GRAPH_MAX_IO]; /* n x per_sample floats each */
	uint64_t received_us;
} hf_ireq;

/* Checks a parsed request against the slot's graph and max batch size and allocates its
 * outputs: 0, or an HTTP status (400; 500 for memory) with the message in eb. */
int hf_ireq_bind(hf_ireq *q, hf_infer_slot *slot, hf_errbuf *eb);
/* Copies the request's items of graph input i into dst (batch staging at its offset). */
void hf_ireq_gather(const hf_ireq *q, size_t i, float *dst);
const float *hf_ireq_input(const hf_ireq *q, size_t i);
/* Copies the request's items of graph output j from src (batch staging at its offset), for
 * each returned output that is graph output j. */
void hf_ireq_scatter(hf_ireq *q, size_t j, const float *src);
/* Builds the answer of a finished run into resp (initialised): 200, or 500 when the body
 * cannot be built. */
void hf_ireq_response(const hf_ireq *q, hf_http_resp *resp);
void hf_ireq_free(hf_ireq *q);

/* ---- the executor behind a batcher (hf_infer_exec.c) ---- */
/* open: an hf_cl on cfg.device and an hf_exec for the slot's graph and max batch, on the
 * instance thread; run: gather, one hf_exec_run, scatter; close. */
int hf_infer_exec_open(void *slot, unsigned idx, void **inst, hf_errbuf *eb);
int hf_infer_exec_run(void *slot, void *inst, hf_batcher_req *const *reqs, size_t n,
		      size_t items, hf_errbuf *eb);
void hf_infer_exec_close(void *slot, void *inst);
/* PoCL's LLVM installs its own (malloc'ed) alternate signal stack on a thread that first
 * calls into it; AddressSanitizer unmaps the thread's current one at thread exit. Every OpenCL
 * call of the server (the switcher's device lookup, the instances' calls) is wrapped: save
 * before, put the saved one back after. */
void hf_infer_altstack_save(stack_t *saved);
void hf_infer_altstack_restore(const stack_t *saved);
/* The batcher's done(): answers the request (hf_infer_http.c). */
void hf_infer_answer(void *slot, hf_batcher_req *req, int result, const char *msg);

/* ---- status and metrics (hf_infer_status.c) ---- */
void hf_infer_write_status(hf_infer *s, json_t *obj);
void hf_infer_write_metrics(hf_infer *s, hf_buf *b);

#endif
