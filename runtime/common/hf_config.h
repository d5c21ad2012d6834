/* hf_config: strict JSON loading and field validation for configs and other trusted-format input.
 *
 * A config object is checked against a table of fields: an unknown key, a missing required key,
 * a wrong type or a value out of bounds is refused with the JSON path of the field and what was
 * expected, e.g. `api.port: expected an integer from 0 to 65535, got string "x"` or
 * `api.listn: unknown key (expected one of: listen, port)`. Duplicate keys are refused at parse
 * time. Nothing is written to a destination unless the whole object validates.
 * Threading: reentrant; json_t values belong to the caller.
 */
#ifndef HF_CONFIG_H
#define HF_CONFIG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hf_error.h"

/* Largest config file accepted by hf_cfg_load_file() callers by default. */
#define HF_CFG_MAX_FILE (1u << 20)
/* Longest JSON path kept in messages. */
#define HF_CFG_PATH_MAX 256

typedef enum hf_cfg_type {
	HF_CFG_STRING,  /* dst: char[dst_size]; min = minimum length */
	HF_CFG_UINT,    /* dst: uint64_t *; [min, max] */
	HF_CFG_INT,     /* dst: int64_t *; [min, max] */
	HF_CFG_NUMBER,  /* dst: double *; integer or real within [min, max] */
	HF_CFG_BOOL,    /* dst: bool * */
	HF_CFG_ENUM,    /* dst: int *, index into choices (NULL-terminated) */
	HF_CFG_OBJECT,  /* dst: const json_t ** (borrowed; validate it with its own table) */
	HF_CFG_ARRAY,   /* dst: const json_t ** (borrowed); max = maximum number of elements */
} hf_cfg_type;

typedef struct hf_cfg_field {
	const char *key;
	hf_cfg_type type;
	bool required;
	void *dst;
	size_t dst_size;
	double min, max;
	const char *const *choices;
	bool *present; /* optional: set to whether the key was present */
} hf_cfg_field;

/* Parses JSON text (name is used in messages: "node.json:3:14: ..."). */
int hf_cfg_parse(const char *text, size_t len, const char *name, json_t **out, hf_errbuf *eb);

/* Reads and parses a file of at most max bytes; the top level must be an object. */
int hf_cfg_load_file(const char *path, size_t max, json_t **out, hf_errbuf *eb);

/* Validates obj against fields and, only if everything is valid, stores the values. path is the
 * JSON path of obj ("" for the root). Keys absent from obj leave their destination unchanged, so
 * callers fill in defaults first. */
int hf_cfg_read(const json_t *obj, const char *path, const hf_cfg_field *fields, size_t n,
		hf_errbuf *eb);

/* Joins path and key ("api" + "port" -> "api.port", "" + "port" -> "port"). */
void hf_cfg_path_key(char *out, size_t outsz, const char *path, const char *key);
/* Joins path and an array index ("pools" + 2 -> "pools[2]"). */
void hf_cfg_path_index(char *out, size_t outsz, const char *path, size_t index);

/* A short description of a JSON value for messages: `string "abc"`, `integer 5`, `object`. */
void hf_cfg_describe(const json_t *v, char *out, size_t outsz);

#endif
