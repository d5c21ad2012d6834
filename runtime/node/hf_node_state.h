/* hf_node_state: the node's persisted desired state (<state_dir>/state.json), so a reboot
 * resumes the last desired mode.
 *
 * Invariants: written only with hf_file_write_atomic (a crash leaves the old or the new file,
 * never a torn one); a file that fails validation is never trusted: the daemon moves it aside
 * (state.json.corrupt-<ms>) and starts from its configured initial mode.
 * Threading: an hf_node_state is plain data owned by its holder.
 */
#ifndef HF_NODE_STATE_H
#define HF_NODE_STATE_H

#include <jansson.h>
#include <stdint.h>

#include "hf_error.h"
#include "hf_mode.h"

#define HF_NODE_STATE_FILE "state.json"
#define HF_NODE_STATE_MAX (64u << 10)

typedef struct hf_node_state {
	hf_mode desired_mode;
	json_t *mode_params;      /* owned, NULL for the config's defaults */
	json_t *last_instruction; /* owned, NULL until an instruction was accepted: its summary and
				   * the envelope itself */
	uint64_t last_issued_ms;  /* anti-replay: issued_ms of the last accepted instruction */
	uint64_t hold_until_ms;   /* operator pin: automatic instructions refused until then */
	uint64_t updated_ms;      /* wall clock of the last save */
} hf_node_state;

/* HF_ENOTFOUND when there is no state yet; HF_EPARSE/HF_ECONFIG when the file is corrupt. */
int hf_node_state_load(const char *state_dir, hf_node_state *st, hf_errbuf *eb);
/* Saves st atomically (sets st->updated_ms). */
int hf_node_state_save(const char *state_dir, hf_node_state *st, hf_errbuf *eb);
/* Moves a corrupt state file aside; writes the new name into moved_to (size movedsz). */
int hf_node_state_quarantine(const char *state_dir, char *moved_to, size_t movedsz, hf_errbuf *eb);
void hf_node_state_clear(hf_node_state *st);

#endif
