/* hf_coord_fleet: nodes in an open-addressing table (linear probing, backward-shift deletion),
 * parked polls in a slab of waiters (stable addresses, recycled, freed with the fleet) linked
 * per node and kept in a min-heap by deadline for the timer thread.
 *
 * Invariants: w->active exactly while w is in its node's list and in the heap; the gone()
 * argument is the waiter, which is never freed before the fleet, so a late gone() compares
 * w->p with its handle under the lock and ignores a recycled waiter.
 * Threading: see hf_coord_fleet.h; f->lock guards everything below it in struct hf_coord_fleet.
 */
#include "hf_coord_fleet.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hf_prom.h"
#include "hf_util.h"

#define SLAB_CHUNK 4096u
#define TIMER_BATCH 4096u
#define HIST_BUCKETS 13

static const double hist_bounds[HIST_BUCKETS] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
						  0.25, 0.5, 1, 2.5, 5, 10 };

typedef struct cnode cnode;

typedef struct waiter {
	hf_coord_fleet *f;            /* immutable */
	hf_http_pending *p;
	cnode *node;
	struct waiter *prev, *next;   /* the node's list; next also links the free list */
	uint64_t after, deadline_ms;
	size_t heap_i;
	bool active;
} waiter;

struct cnode {
	char id[HF_COORD_NODE_ID_MAX + 1];
	char token_hash[HF_COORD_TOKEN_HASH_LEN + 1];
	uint64_t hold_until_ms;
	char hold_by[64];
	hf_coord_env *own;
	uint64_t last_seen_ms, last_report_ms, acked_issued_ms, converged_since_ms;
	bool has_report, converged, mark;
	hf_coord_report_sum rep;
	waiter *wh;
	size_t nwait;
};

typedef struct hist {
	uint64_t b[HIST_BUCKETS + 1];
	uint64_t count;
	double sum;
} hist;

struct hf_coord_fleet {
	pthread_mutex_t lock;
	pthread_cond_t cond;          /* the timer: an earlier deadline, or stop */
	pthread_t timer;
	bool timer_started;
	unsigned max_wait_s, offline_after_s, max_nodes;
	bool stop;
	cnode **tab;
	size_t cap, count;
	hf_coord_env *fleet_env;
	uint64_t fleet_hold_until_ms; /* a fleet-wide operator hold (every node) */
	char fleet_hold_by[64];
	waiter **chunks;
	size_t nchunks, used;
	waiter *free_list;
	waiter **heap;
	size_t nheap, heap_cap;
	uint64_t polls_total, polls_timeout_total, polls_gone_total, polls_answered_total;
	uint64_t reports_total, acks_total, publishes_total;
	hist fanout, ack;
};

/* ---- envelopes ---- */

hf_coord_env *hf_coord_env_new(const char *text, size_t len)
{
	hf_coord_env *e = calloc(1, sizeof *e);
	if (!e)
		return NULL;
	e->text = malloc(len + 1);
	if (!e->text) {
		free(e);
		return NULL;
	}
	memcpy(e->text, text, len);
	e->text[len] = '\0';
	e->len = len;
	atomic_init(&e->refs, 1);
	return e;
}

hf_coord_env *hf_coord_env_ref(hf_coord_env *e)
{
	if (e)
		atomic_fetch_add(&e->refs, 1);
	return e;
}

void hf_coord_env_unref(hf_coord_env *e)
{
	if (!e || atomic_fetch_sub(&e->refs, 1) != 1)
		return;
	json_decref(e->mining);
	json_decref(e->inference);
	json_decref(e->reason);
	free(e->text);
	free(e);
}

static hf_coord_env *effective(const hf_coord_fleet *f, const cnode *n)
{
	if (n->own && (!f->fleet_env || n->own->issued_ms >= f->fleet_env->issued_ms))
		return n->own;
	return f->fleet_env;
}

/* n's hold in force: its own or the fleet's, whichever ends later. */
static uint64_t hold_of(const hf_coord_fleet *f, const cnode *n, const char **by)
{
	bool fleet = f->fleet_hold_until_ms > n->hold_until_ms;
	if (by)
		*by = fleet ? f->fleet_hold_by : n->hold_by;
	return fleet ? f->fleet_hold_until_ms : n->hold_until_ms;
}

static void hist_observe(hist *h, double v)
{
	size_t i = 0;
	while (i < HIST_BUCKETS && v > hist_bounds[i])
		i++;
	h->b[i]++;
	h->count++;
	h->sum += v;
}

/* ---- the node table ---- */

static uint64_t hash_id(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static size_t slot_of(const hf_coord_fleet *f, const char *id)
{
	size_t mask = f->cap - 1, i = hash_id(id) & mask;
	while (f->tab[i] && strcmp(f->tab[i]->id, id) != 0)
		i = (i + 1) & mask;
	return i;
}

static cnode *find(const hf_coord_fleet *f, const char *id)
{
	return f->tab[slot_of(f, id)];
}

static int grow(hf_coord_fleet *f)
{
	size_t ncap = f->cap * 2, mask = ncap - 1;
	cnode **nt = calloc(ncap, sizeof *nt);
	if (!nt)
		return HF_ENOMEM;
	for (size_t i = 0; i < f->cap; i++) {
		if (!f->tab[i])
			continue;
		size_t j = hash_id(f->tab[i]->id) & mask;
		while (nt[j])
			j = (j + 1) & mask;
		nt[j] = f->tab[i];
	}
	free(f->tab);
	f->tab = nt;
	f->cap = ncap;
	return 0;
}

static void table_delete(hf_coord_fleet *f, size_t i)
{
	size_t mask = f->cap - 1, j = i;

	f->tab[i] = NULL;
	for (;;) {
		j = (j + 1) & mask;
		if (!f->tab[j])
			break;
		size_t k = hash_id(f->tab[j]->id) & mask;
		/* Leave tab[j] where it is when its home k lies cyclically in (i, j]. */
		bool stays = i <= j ? (k > i && k <= j) : (k > i || k <= j);
		if (!stays) {
			f->tab[i] = f->tab[j];
			f->tab[j] = NULL;
			i = j;
		}
	}
	f->count--;
}

/* ---- waiters ---- */

static waiter *waiter_alloc(hf_coord_fleet *f)
{
	waiter *w = f->free_list;
	if (w) {
		f->free_list = w->next;
		return w;
	}
	if (f->used == f->nchunks * SLAB_CHUNK) {
		waiter **nc = realloc(f->chunks, (f->nchunks + 1) * sizeof *nc);
		if (!nc)
			return NULL;
		f->chunks = nc;
		nc[f->nchunks] = calloc(SLAB_CHUNK, sizeof **nc);
		if (!nc[f->nchunks])
			return NULL;
		for (size_t i = 0; i < SLAB_CHUNK; i++)
			nc[f->nchunks][i].f = f;
		f->nchunks++;
	}
	w = &f->chunks[f->used / SLAB_CHUNK][f->used % SLAB_CHUNK];
	f->used++;
	return w;
}

static void heap_swap(hf_coord_fleet *f, size_t a, size_t b)
{
	waiter *t = f->heap[a];
	f->heap[a] = f->heap[b];
	f->heap[b] = t;
	f->heap[a]->heap_i = a;
	f->heap[b]->heap_i = b;
}

static void heap_up(hf_coord_fleet *f, size_t i)
{
	while (i > 0 && f->heap[(i - 1) / 2]->deadline_ms > f->heap[i]->deadline_ms) {
		heap_swap(f, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void heap_down(hf_coord_fleet *f, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < f->nheap && f->heap[l]->deadline_ms < f->heap[m]->deadline_ms)
			m = l;
		if (r < f->nheap && f->heap[r]->deadline_ms < f->heap[m]->deadline_ms)
			m = r;
		if (m == i)
			return;
		heap_swap(f, i, m);
		i = m;
	}
}

static int heap_push(hf_coord_fleet *f, waiter *w)
{
	if (f->nheap == f->heap_cap) {
		size_t ncap = f->heap_cap ? f->heap_cap * 2 : 1024;
		waiter **nh = realloc(f->heap, ncap * sizeof *nh);
		if (!nh)
			return HF_ENOMEM;
		f->heap = nh;
		f->heap_cap = ncap;
	}
	w->heap_i = f->nheap;
	f->heap[f->nheap++] = w;
	heap_up(f, w->heap_i);
	return 0;
}

static void heap_remove(hf_coord_fleet *f, waiter *w)
{
	size_t i = w->heap_i;
	f->nheap--;
	if (i == f->nheap)
		return;
	f->heap[i] = f->heap[f->nheap];
	f->heap[i]->heap_i = i;
	heap_up(f, i);
	heap_down(f, f->heap[i]->heap_i);
}

/* Takes w out of its node's list and the heap, recycles it; returns its handle. */
static hf_http_pending *waiter_take(hf_coord_fleet *f, waiter *w)
{
	hf_http_pending *p = w->p;
	cnode *n = w->node;

	if (w->prev)
		w->prev->next = w->next;
	else
		n->wh = w->next;
	if (w->next)
		w->next->prev = w->prev;
	n->nwait--;
	heap_remove(f, w);
	w->active = false;
	w->p = NULL;
	w->node = NULL;
	w->prev = NULL;
	w->next = f->free_list;
	f->free_list = w;
	return p;
}

static void on_gone(void *arg, hf_http_pending *p)
{
	waiter *w = arg;
	hf_coord_fleet *f = w->f;
	bool mine = false;

	pthread_mutex_lock(&f->lock);
	if (w->active && w->p == p) {
		waiter_take(f, w);
		f->polls_gone_total++;
		mine = true;
	}
	pthread_mutex_unlock(&f->lock);
	if (mine)
		hf_http_pending_complete(p, NULL);
}

/* A growable list of handles to complete outside the lock. */
typedef struct plist {
	hf_http_pending **v;
	size_t n, cap;
} plist;

static bool plist_add(plist *l, hf_http_pending *p)
{
	if (l->n == l->cap) {
		size_t ncap = l->cap ? l->cap * 2 : 64;
		hf_http_pending **nv = realloc(l->v, ncap * sizeof *nv);
		if (!nv)
			return false;
		l->v = nv;
		l->cap = ncap;
	}
	l->v[l->n++] = p;
	return true;
}

/* Moves n's waiters with after < issued (all when issued is UINT64_MAX) into l. */
static void collect(hf_coord_fleet *f, cnode *n, uint64_t issued, plist *l)
{
	waiter *w = n->wh, *next;
	for (; w; w = next) {
		next = w->next;
		if (issued != UINT64_MAX && w->after >= issued)
			continue;
		if (!plist_add(l, w->p))
			return; /* out of memory: the rest stay parked until their deadline */
		waiter_take(f, w);
	}
}

static void resp_env(hf_http_resp *resp, const hf_coord_env *e)
{
	resp->status = 200;
	resp->content_type = "application/json";
	if (hf_buf_append(&resp->body, e->text, e->len) < 0) {
		hf_http_resp_clear(resp);
		hf_http_resp_error(resp, 500, "out of memory");
	}
}

/* Completes every handle of l with e (NULL: 204; e == (void *)1: 401), frees l. */
static void complete_all(plist *l, const hf_coord_env *e, bool unauthorised)
{
	for (size_t i = 0; i < l->n; i++) {
		if (unauthorised) {
			hf_http_pending_complete_json(l->v[i], 401, json_pack("{s:s}", "error",
						      "unknown node (removed from the coordinator)"));
			continue;
		}
		hf_http_resp r;
		hf_http_resp_init(&r);
		if (e)
			resp_env(&r, e);
		else
			r.status = 204;
		hf_http_pending_complete(l->v[i], &r);
		hf_http_resp_clear(&r);
	}
	free(l->v);
	l->v = NULL;
	l->n = l->cap = 0;
}

/* ---- the timer ---- */

static void *timer_main(void *arg)
{
	hf_coord_fleet *f = arg;
	plist l = { 0 };

	pthread_mutex_lock(&f->lock);
	while (!f->stop) {
		uint64_t now = hf_mono_ms();
		if (f->nheap == 0) {
			pthread_cond_wait(&f->cond, &f->lock);
			continue;
		}
		if (f->heap[0]->deadline_ms > now) {
			struct timespec ts;
			uint64_t due = f->heap[0]->deadline_ms - now;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_sec += (time_t)(due / 1000);
			ts.tv_nsec += (long)(due % 1000) * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&f->cond, &f->lock, &ts);
			continue;
		}
		while (f->nheap && f->heap[0]->deadline_ms <= now && l.n < TIMER_BATCH) {
			waiter *w = f->heap[0];
			if (!plist_add(&l, w->p))
				break;
			waiter_take(f, w);
			f->polls_timeout_total++;
		}
		pthread_mutex_unlock(&f->lock);
		complete_all(&l, NULL, false);
		pthread_mutex_lock(&f->lock);
	}
	pthread_mutex_unlock(&f->lock);
	return NULL;
}

int hf_coord_fleet_new(const hf_coord_fleet_opts *opts, hf_coord_fleet **out, hf_errbuf *eb)
{
	pthread_condattr_t ca;
	hf_coord_fleet *f;

	*out = NULL;
	f = calloc(1, sizeof *f);
	if (!f)
		return hf_fail(eb, HF_ENOMEM, "out of memory");
	f->max_wait_s = opts->max_wait_s ? opts->max_wait_s : 300;
	f->offline_after_s = opts->offline_after_s ? opts->offline_after_s : 30;
	f->max_nodes = opts->max_nodes ? opts->max_nodes : 100000;
	f->cap = 1024;
	f->tab = calloc(f->cap, sizeof *f->tab);
	if (!f->tab) {
		free(f);
		return hf_fail(eb, HF_ENOMEM, "out of memory");
	}
	pthread_mutex_init(&f->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&f->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&f->timer, NULL, timer_main, f) != 0) {
		hf_coord_fleet_free(f);
		return hf_fail(eb, HF_ENOMEM, "cannot start the poll timer thread");
	}
	f->timer_started = true;
	*out = f;
	return 0;
}

static void node_free(cnode *n)
{
	hf_coord_env_unref(n->own);
	free(n);
}

void hf_coord_fleet_free(hf_coord_fleet *f)
{
	plist l = { 0 };

	if (!f)
		return;
	pthread_mutex_lock(&f->lock);
	f->stop = true;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->lock);
	if (f->timer_started)
		pthread_join(f->timer, NULL);
	pthread_mutex_lock(&f->lock);
	for (size_t i = 0; i < f->cap; i++)
		if (f->tab[i])
			collect(f, f->tab[i], UINT64_MAX, &l);
	pthread_mutex_unlock(&f->lock);
	for (size_t i = 0; i < l.n; i++)
		hf_http_pending_complete_json(l.v[i], 503, json_pack("{s:s}", "error",
					      "coordinator shutting down"));
	free(l.v);
	for (size_t i = 0; i < f->cap; i++)
		if (f->tab[i])
			node_free(f->tab[i]);
	for (size_t i = 0; i < f->nchunks; i++)
		free(f->chunks[i]);
	free(f->chunks);
	free(f->heap);
	free(f->tab);
	hf_coord_env_unref(f->fleet_env);
	pthread_cond_destroy(&f->cond);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

/* ---- nodes ---- */

static int add_node(hf_coord_fleet *f, const hf_coord_node_rec *r)
{
	cnode *n;

	if (f->count >= f->max_nodes)
		return HF_ETOOBIG;
	if ((f->count + 1) * 2 > f->cap && grow(f) < 0)
		return HF_ENOMEM;
	n = calloc(1, sizeof *n);
	if (!n)
		return HF_ENOMEM;
	hf_strlcpy(n->id, r->id, sizeof n->id);
	f->tab[slot_of(f, r->id)] = n;
	f->count++;
	n->mark = true;
	return 0;
}

int hf_coord_fleet_sync_nodes(hf_coord_fleet *f, const hf_coord_node_rec *recs, size_t nrecs,
			      hf_errbuf *eb)
{
	plist gone = { 0 };
	cnode **drop = NULL;
	size_t ndrop = 0;
	int rc = 0;

	pthread_mutex_lock(&f->lock);
	for (size_t i = 0; i < f->cap; i++)
		if (f->tab[i])
			f->tab[i]->mark = false;
	for (size_t i = 0; i < nrecs; i++) {
		cnode *n = find(f, recs[i].id);
		if (!n) {
			int r = add_node(f, &recs[i]);
			if (r < 0) {
				rc = hf_fail(eb, r, "%s nodes: %s", r == HF_ETOOBIG ? "more than limits.max_nodes"
					     : "cannot add", hf_strerror(r));
				continue;
			}
			n = find(f, recs[i].id);
		}
		n->mark = true;
		hf_strlcpy(n->token_hash, recs[i].token_hash, sizeof n->token_hash);
		n->hold_until_ms = recs[i].hold_until_ms;
		hf_strlcpy(n->hold_by, recs[i].hold_by, sizeof n->hold_by);
	}
	drop = calloc(f->count ? f->count : 1, sizeof *drop);
	for (size_t i = 0; drop && i < f->cap; i++)
		if (f->tab[i] && !f->tab[i]->mark)
			drop[ndrop++] = f->tab[i];
	for (size_t i = 0; i < ndrop; i++) {
		collect(f, drop[i], UINT64_MAX, &gone);
		table_delete(f, slot_of(f, drop[i]->id));
	}
	pthread_mutex_unlock(&f->lock);
	complete_all(&gone, NULL, true);
	for (size_t i = 0; i < ndrop; i++)
		node_free(drop[i]);
	free(drop);
	return rc;
}

size_t hf_coord_fleet_node_count(hf_coord_fleet *f)
{
	size_t n;
	pthread_mutex_lock(&f->lock);
	n = f->count;
	pthread_mutex_unlock(&f->lock);
	return n;
}

bool hf_coord_fleet_has_node(hf_coord_fleet *f, const char *id)
{
	bool ok;
	pthread_mutex_lock(&f->lock);
	ok = find(f, id) != NULL;
	pthread_mutex_unlock(&f->lock);
	return ok;
}

static int cmp_id(const void *a, const void *b)
{
	return strcmp(a, b);
}

int hf_coord_fleet_node_ids(hf_coord_fleet *f, char (**ids)[HF_COORD_NODE_ID_MAX + 1], size_t *n)
{
	size_t k = 0;

	pthread_mutex_lock(&f->lock);
	*ids = malloc((f->count ? f->count : 1) * sizeof **ids);
	if (!*ids) {
		pthread_mutex_unlock(&f->lock);
		return HF_ENOMEM;
	}
	for (size_t i = 0; i < f->cap; i++)
		if (f->tab[i])
			hf_strlcpy((*ids)[k++], f->tab[i]->id, sizeof **ids);
	pthread_mutex_unlock(&f->lock);
	qsort(*ids, k, sizeof **ids, cmp_id);
	*n = k;
	return 0;
}

int hf_coord_fleet_auth(hf_coord_fleet *f, const char *id, const char *token_hash)
{
	int rc = HF_ENOTFOUND;
	cnode *n;

	if (strlen(token_hash) != HF_COORD_TOKEN_HASH_LEN)
		return HF_EREFUSED;
	pthread_mutex_lock(&f->lock);
	n = find(f, id);
	if (n)
		rc = strlen(n->token_hash) == HF_COORD_TOKEN_HASH_LEN &&
		     CRYPTO_memcmp(n->token_hash, token_hash, HF_COORD_TOKEN_HASH_LEN) == 0 ? 0 : HF_EREFUSED;
	pthread_mutex_unlock(&f->lock);
	return rc;
}

/* ---- polls and publishing ---- */

void hf_coord_fleet_poll(hf_coord_fleet *f, const char *id, uint64_t after, uint64_t wait_s,
			 const hf_http_req *req, hf_http_resp *resp)
{
	hf_coord_env *e;
	waiter *w;
	cnode *n;

	pthread_mutex_lock(&f->lock);
	n = find(f, id);
	if (!n) {
		pthread_mutex_unlock(&f->lock);
		hf_http_resp_error(resp, 401, "unknown node");
		return;
	}
	n->last_seen_ms = hf_wall_ms();
	f->polls_total++;
	e = effective(f, n);
	if (e && e->issued_ms > after && e->expires_ms > n->last_seen_ms) {
		e = hf_coord_env_ref(e);
		f->polls_answered_total++;
		pthread_mutex_unlock(&f->lock);
		resp_env(resp, e);
		hf_coord_env_unref(e);
		return;
	}
	if (wait_s == 0 || f->stop) {
		pthread_mutex_unlock(&f->lock);
		resp->status = 204;
		return;
	}
	if (wait_s > f->max_wait_s)
		wait_s = f->max_wait_s;
	w = waiter_alloc(f);
	if (w)
		w->deadline_ms = hf_mono_ms() + wait_s * 1000;
	if (!w || heap_push(f, w) < 0) {
		if (w) {
			w->next = f->free_list;
			f->free_list = w;
		}
		pthread_mutex_unlock(&f->lock);
		hf_http_resp_error(resp, 503, "out of memory for waiting polls");
		return;
	}
	w->p = hf_http_defer(req, on_gone, w);
	if (!w->p) {
		heap_remove(f, w);
		w->next = f->free_list;
		f->free_list = w;
		pthread_mutex_unlock(&f->lock);
		hf_http_resp_error(resp, 503, "cannot hold the poll (server stopping)");
		return;
	}
	w->node = n;
	w->after = after;
	w->prev = NULL;
	w->next = n->wh;
	if (n->wh)
		n->wh->prev = w;
	n->wh = w;
	n->nwait++;
	w->active = true;
	if (f->heap[0] == w)
		pthread_cond_signal(&f->cond);
	pthread_mutex_unlock(&f->lock);
}

size_t hf_coord_fleet_publish(hf_coord_fleet *f, hf_coord_env *e, size_t *woken)
{
	hf_coord_env *old = NULL;
	plist l = { 0 };
	size_t count = 0;

	*woken = 0;
	pthread_mutex_lock(&f->lock);
	if (strcmp(e->node, "*") == 0) {
		if (!f->fleet_env || f->fleet_env->issued_ms < e->issued_ms) {
			old = f->fleet_env;
			f->fleet_env = hf_coord_env_ref(e);
			for (size_t i = 0; i < f->cap; i++) {
				cnode *n = f->tab[i];
				if (n && effective(f, n) == e) {
					count++;
					collect(f, n, e->issued_ms, &l);
				}
			}
		}
	} else {
		cnode *n = find(f, e->node);
		if (n && (!n->own || n->own->issued_ms < e->issued_ms)) {
			old = n->own;
			n->own = hf_coord_env_ref(e);
			if (effective(f, n) == e) {
				count = 1;
				collect(f, n, e->issued_ms, &l);
			}
		}
	}
	f->publishes_total++;
	f->polls_answered_total += l.n;
	pthread_mutex_unlock(&f->lock);
	*woken = l.n;
	complete_all(&l, e, false);
	if (*woken) {
		double s = (double)(hf_mono_us() - e->decided_us) / 1e6;
		pthread_mutex_lock(&f->lock);
		hist_observe(&f->fanout, s);
		pthread_mutex_unlock(&f->lock);
	}
	hf_coord_env_unref(old);
	return count;
}

bool hf_coord_fleet_current(hf_coord_fleet *f, const char *id, hf_coord_env **env,
			    uint64_t *hold_until_ms)
{
	cnode *n = NULL;
	bool star = strcmp(id, "*") == 0;

	*env = NULL;
	*hold_until_ms = 0;
	pthread_mutex_lock(&f->lock);
	if (!star)
		n = find(f, id);
	if (n || star) {
		*env = hf_coord_env_ref(n ? effective(f, n) : f->fleet_env);
		if (n)
			*hold_until_ms = hold_of(f, n, NULL);
	}
	pthread_mutex_unlock(&f->lock);
	return n || star;
}

uint64_t hf_coord_fleet_fleet_issued(hf_coord_fleet *f)
{
	uint64_t v;
	pthread_mutex_lock(&f->lock);
	v = f->fleet_env ? f->fleet_env->issued_ms : 0;
	pthread_mutex_unlock(&f->lock);
	return v;
}

void hf_coord_fleet_set_hold(hf_coord_fleet *f, const char *id, uint64_t until_ms, const char *by)
{
	cnode *n;

	pthread_mutex_lock(&f->lock);
	if (strcmp(id, "*") == 0) {
		f->fleet_hold_until_ms = until_ms;
		hf_strlcpy(f->fleet_hold_by, by, sizeof f->fleet_hold_by);
	} else if ((n = find(f, id))) {
		n->hold_until_ms = until_ms;
		hf_strlcpy(n->hold_by, by, sizeof n->hold_by);
	}
	pthread_mutex_unlock(&f->lock);
}

bool hf_coord_fleet_report(hf_coord_fleet *f, const char *id, const hf_coord_report_sum *sum,
			   uint64_t wall_ms, uint64_t *ack_issued_ms)
{
	hf_coord_env *e, *acked = NULL;
	bool conv;
	cnode *n;

	*ack_issued_ms = 0;
	pthread_mutex_lock(&f->lock);
	n = find(f, id);
	if (!n) {
		pthread_mutex_unlock(&f->lock);
		return false;
	}
	f->reports_total++;
	n->last_seen_ms = n->last_report_ms = wall_ms;
	n->rep = *sum;
	e = effective(f, n);
	conv = sum->converged && (!e || sum->applied_issued_ms >= e->issued_ms);
	if (conv != n->converged || !n->has_report)
		n->converged_since_ms = wall_ms;
	n->converged = conv;
	n->has_report = true;
	if (n->own && sum->applied_issued_ms == n->own->issued_ms)
		acked = n->own;
	else if (f->fleet_env && sum->applied_issued_ms == f->fleet_env->issued_ms)
		acked = f->fleet_env;
	if (acked && sum->applied_issued_ms != n->acked_issued_ms) {
		n->acked_issued_ms = sum->applied_issued_ms;
		*ack_issued_ms = sum->applied_issued_ms;
		f->acks_total++;
		hist_observe(&f->ack, (double)(hf_mono_us() - acked->decided_us) / 1e6);
	}
	pthread_mutex_unlock(&f->lock);
	return true;
}

size_t hf_coord_fleet_due_resign(hf_coord_fleet *f, uint64_t now_ms, hf_coord_env ***out,
				 size_t max)
{
	size_t k = 0;

	*out = NULL;
	pthread_mutex_lock(&f->lock);
	for (size_t i = 0; i < f->cap && k < max; i++) {
		cnode *n = f->tab[i];
		hf_coord_env *e = n ? n->own : NULL;
		if (!e || e != effective(f, n) || e->authority != HF_COORD_BY_COORDINATOR ||
		    hold_of(f, n, NULL) > now_ms ||
		    now_ms < e->issued_ms + (e->expires_ms - e->issued_ms) / 2)
			continue;
		if (!*out && !(*out = calloc(max, sizeof **out)))
			break;
		(*out)[k++] = hf_coord_env_ref(e);
	}
	pthread_mutex_unlock(&f->lock);
	return k;
}

/* ---- views ---- */

static json_t *node_view(const hf_coord_fleet *f, const cnode *n, uint64_t now)
{
	const hf_coord_env *e = effective(f, n);
	bool offline = !n->last_seen_ms || now > n->last_seen_ms + f->offline_after_s * 1000ull;
	const char *by;
	uint64_t hold = hold_of(f, n, &by);
	json_t *j = json_pack("{s:s, s:b, s:I, s:n, s:n, s:I, s:I}", "id", n->id,
			      "offline", offline, "last_seen_ms", (json_int_t)n->last_seen_ms,
			      "desired", "report", "hold_until_ms", (json_int_t)hold,
			      "waiting_polls", (json_int_t)n->nwait);
	if (!j)
		return NULL;
	if (hold > now)
		json_object_set_new(j, "hold_by", json_string(by));
	if (e)
		json_object_set_new(j, "desired", json_pack("{s:s, s:I, s:I, s:I, s:s, s:s}",
				    "mode", e->mode, "issued_ms", (json_int_t)e->issued_ms,
				    "expires_ms", (json_int_t)e->expires_ms, "seq", (json_int_t)e->seq,
				    "by", e->authority == HF_COORD_BY_OPERATOR ? "operator" : "coordinator",
				    "source", e->source));
	json_object_set_new(j, "desired_mode", e ? json_string(e->mode) : json_null());
	json_object_set_new(j, "mode", n->has_report ? json_string(n->rep.mode) : json_null());
	json_object_set_new(j, "converged", json_boolean(n->has_report && n->converged));
	json_object_set_new(j, "converged_since_ms", n->has_report ?
			    json_integer((json_int_t)n->converged_since_ms) : json_null());
	json_object_set_new(j, "applied_issued_ms", json_integer((json_int_t)(n->has_report ?
			    n->rep.applied_issued_ms : 0)));
	json_object_set_new(j, "acked_issued_ms", json_integer((json_int_t)n->acked_issued_ms));
	json_object_set_new(j, "last_report_age_s", n->has_report ?
			    json_real((double)(now > n->last_report_ms ? now - n->last_report_ms : 0) / 1000) :
			    json_null());
	if (n->has_report)
		json_object_set_new(j, "report", json_pack("{s:I, s:s, s:s, s:s, s:s, s:f, s:f, s:f, s:o}",
				    "wall_ms", (json_int_t)n->last_report_ms, "phase", n->rep.phase,
				    "desired_mode", n->rep.desired_mode, "convergence", n->rep.convergence,
				    "version", n->rep.version, "hashrate_hs", n->rep.hashrate_hs,
				    "flops", n->rep.flops, "inferences_per_s", n->rep.inferences_per_s,
				    "power", n->rep.has_power ? json_pack("{s:f, s:s}", "watts", n->rep.watts,
				    "source", n->rep.power_source) : json_null()));
	return j;
}

static int cmp_node(const void *a, const void *b)
{
	return strcmp((*(cnode *const *)a)->id, (*(cnode *const *)b)->id);
}

json_t *hf_coord_fleet_json(hf_coord_fleet *f, uint64_t now_ms)
{
	json_t *nodes = json_array(), *root;
	size_t k = 0, offline = 0, converged = 0;
	cnode **v;

	pthread_mutex_lock(&f->lock);
	v = malloc((f->count ? f->count : 1) * sizeof *v);
	if (!v || !nodes) {
		pthread_mutex_unlock(&f->lock);
		free(v);
		json_decref(nodes);
		return NULL;
	}
	for (size_t i = 0; i < f->cap; i++)
		if (f->tab[i])
			v[k++] = f->tab[i];
	qsort(v, k, sizeof *v, cmp_node);
	for (size_t i = 0; i < k; i++) {
		json_t *nj = node_view(f, v[i], now_ms);
		if (json_is_true(json_object_get(nj, "offline")))
			offline++;
		if (json_is_true(json_object_get(nj, "converged")))
			converged++;
		json_array_append_new(nodes, nj);
	}
	root = json_pack("{s:I, s:I, s:I, s:I, s:I, s:o}", "now_ms", (json_int_t)now_ms,
			 "count", (json_int_t)k, "offline", (json_int_t)offline,
			 "converged", (json_int_t)converged, "waiting_polls", (json_int_t)f->nheap,
			 "nodes", nodes);
	if (root && f->fleet_env)
		json_object_set_new(root, "fleet_desired", json_pack("{s:s, s:I, s:I, s:I}",
				    "mode", f->fleet_env->mode, "issued_ms", (json_int_t)f->fleet_env->issued_ms,
				    "expires_ms", (json_int_t)f->fleet_env->expires_ms,
				    "seq", (json_int_t)f->fleet_env->seq));
	pthread_mutex_unlock(&f->lock);
	free(v);
	return root;
}

json_t *hf_coord_fleet_node_json(hf_coord_fleet *f, const char *id, uint64_t now_ms)
{
	json_t *j = NULL;
	cnode *n;

	pthread_mutex_lock(&f->lock);
	n = find(f, id);
	if (n)
		j = node_view(f, n, now_ms);
	pthread_mutex_unlock(&f->lock);
	return j;
}

/* ---- node views (issue 15) ---- */

static int cmp_view(const void *a, const void *b)
{
	return strcmp(((const hf_coord_node_view *)a)->id, ((const hf_coord_node_view *)b)->id);
}

static void view_of(const hf_coord_fleet *f, const cnode *n, uint64_t now, hf_coord_node_view *v)
{
	const hf_coord_env *e = effective(f, n);

	memset(v, 0, sizeof *v);
	hf_strlcpy(v->id, n->id, sizeof v->id);
	if (e) {
		v->has_env = true;
		hf_strlcpy(v->mode, e->mode, sizeof v->mode);
		v->issued_ms = e->issued_ms;
		v->seq = e->seq;
		v->resigned_from = e->resigned_from;
		hf_strlcpy(v->source, e->source, sizeof v->source);
		v->authority = e->authority;
	}
	v->hold_until_ms = hold_of(f, n, NULL);
	v->has_report = n->has_report;
	if (n->has_report) {
		v->report_wall_ms = n->last_report_ms;
		v->rep = n->rep;
	}
	v->converged = n->has_report && n->converged;
	v->offline = !n->last_seen_ms || now > n->last_seen_ms + f->offline_after_s * 1000ull;
}

int hf_coord_fleet_node_views(hf_coord_fleet *f, uint64_t now_ms, hf_coord_node_view **out,
			      size_t *n)
{
	size_t k = 0;

	*out = NULL;
	*n = 0;
	pthread_mutex_lock(&f->lock);
	*out = malloc((f->count ? f->count : 1) * sizeof **out);
	if (!*out) {
		pthread_mutex_unlock(&f->lock);
		return HF_ENOMEM;
	}
	for (size_t i = 0; i < f->cap; i++)
		if (f->tab[i])
			view_of(f, f->tab[i], now_ms, &(*out)[k++]);
	pthread_mutex_unlock(&f->lock);
	qsort(*out, k, sizeof **out, cmp_view);
	*n = k;
	return 0;
}

size_t hf_coord_fleet_waiting(hf_coord_fleet *f)
{
	size_t n;
	pthread_mutex_lock(&f->lock);
	n = f->nheap;
	pthread_mutex_unlock(&f->lock);
	return n;
}

static void hist_write(hf_buf *b, const char *name, const char *help, const hist *h)
{
	char bucket[96], le[32];
	uint64_t cum = 0;

	hf_prom_family(b, name, "histogram", help);
	snprintf(bucket, sizeof bucket, "%s_bucket", name);
	for (size_t i = 0; i <= HIST_BUCKETS; i++) {
		const char *labels[2] = { "le", le };
		cum += h->b[i];
		if (i < HIST_BUCKETS)
			snprintf(le, sizeof le, "%g", hist_bounds[i]);
		else
			hf_strlcpy(le, "+Inf", sizeof le);
		hf_prom_sample(b, bucket, labels, 1, (double)cum);
	}
	snprintf(bucket, sizeof bucket, "%s_sum", name);
	hf_prom_sample(b, bucket, NULL, 0, h->sum);
	snprintf(bucket, sizeof bucket, "%s_count", name);
	hf_prom_sample(b, bucket, NULL, 0, (double)h->count);
}

static void gauge(hf_buf *b, const char *name, const char *help, double v)
{
	hf_prom_family(b, name, "gauge", help);
	hf_prom_sample(b, name, NULL, 0, v);
}

static void counter(hf_buf *b, const char *name, const char *help, uint64_t v)
{
	hf_prom_family(b, name, "counter", help);
	hf_prom_sample(b, name, NULL, 0, (double)v);
}

static void by_mode(hf_buf *b, const char *name, const char *help, const size_t c[4])
{
	static const char *const names[4] = { "idle", "mining", "inference", "unknown" };
	hf_prom_family(b, name, "gauge", help);
	for (size_t i = 0; i < 4; i++) {
		const char *labels[2] = { "mode", names[i] };
		hf_prom_sample(b, name, labels, 1, (double)c[i]);
	}
}

static size_t mode_index(const char *m)
{
	return strcmp(m, "idle") == 0 ? 0 : strcmp(m, "mining") == 0 ? 1 :
	       strcmp(m, "inference") == 0 ? 2 : 3;
}

void hf_coord_fleet_metrics(hf_coord_fleet *f, uint64_t now_ms, hf_buf *b)
{
	size_t mode[4] = { 0 }, desired[4] = { 0 }, conv = 0, off = 0, held = 0, count;
	hist fan, ack;
	uint64_t polls, timeouts, gone, answered, reports, acks, waiting;

	pthread_mutex_lock(&f->lock);
	for (size_t i = 0; i < f->cap; i++) {
		cnode *n = f->tab[i];
		const hf_coord_env *e;
		if (!n)
			continue;
		e = effective(f, n);
		mode[n->has_report ? mode_index(n->rep.mode) : 3]++;
		desired[e ? mode_index(e->mode) : 3]++;
		conv += n->has_report && n->converged;
		off += !n->last_seen_ms || now_ms > n->last_seen_ms + f->offline_after_s * 1000ull;
		held += hold_of(f, n, NULL) > now_ms;
	}
	count = f->count;
	fan = f->fanout;
	ack = f->ack;
	polls = f->polls_total;
	timeouts = f->polls_timeout_total;
	gone = f->polls_gone_total;
	answered = f->polls_answered_total;
	reports = f->reports_total;
	acks = f->acks_total;
	waiting = f->nheap;
	pthread_mutex_unlock(&f->lock);
	gauge(b, "hashflop_coord_nodes", "Registered nodes.", (double)count);
	by_mode(b, "hashflop_coord_nodes_mode", "Nodes by the mode they last reported (unknown: no "
		"report yet).", mode);
	by_mode(b, "hashflop_coord_nodes_desired_mode", "Nodes by the mode of their effective "
		"envelope (unknown: none).", desired);
	gauge(b, "hashflop_coord_nodes_converged", "Nodes that report converged on their current "
	      "envelope.", (double)conv);
	gauge(b, "hashflop_coord_nodes_offline", "Nodes with no poll or report for offline_after_s.",
	      (double)off);
	gauge(b, "hashflop_coord_nodes_held", "Nodes under an operator hold.", (double)held);
	gauge(b, "hashflop_coord_polls_waiting", "Long polls parked now.", (double)waiting);
	counter(b, "hashflop_coord_polls_total", "Instruction polls received.", polls);
	counter(b, "hashflop_coord_polls_answered_total", "Polls answered with an envelope.", answered);
	counter(b, "hashflop_coord_polls_timeout_total", "Parked polls answered 204 at their wait.",
		timeouts);
	counter(b, "hashflop_coord_polls_gone_total", "Parked polls whose client left.", gone);
	counter(b, "hashflop_coord_reports_total", "Node reports applied.", reports);
	counter(b, "hashflop_coord_acks_total", "Acknowledgments recorded (first report of an "
		"applied envelope).", acks);
	hist_write(b, "hashflop_coord_fanout_seconds", "From a decision to the last waiting poll "
		   "answered with its envelope.", &fan);
	hist_write(b, "hashflop_coord_ack_seconds", "From a decision to a node's acknowledgment in "
		   "its report.", &ack);
}
