/* hf_pool_config: strict loading of pool.json into hf_pool_prog_cfg.
 *
 * Failure: the first invalid field is refused with its JSON path and what was expected;
 * nothing is half-applied to the caller's struct.
 * Threading: reentrant.
 */
#include "hf_pool_config.h"

#include <string.h>

#include "hf_config.h"
#include "hf_util.h"

void hf_pool_prog_cfg_defaults(hf_pool_prog_cfg *c)
{
	memset(c, 0, sizeof *c);
	hf_pool_cfg_defaults(&c->pool);
	hf_strlcpy(c->admin_host, "127.0.0.1", sizeof c->admin_host);
	c->log_level = HF_LOG_INFO;
}

int hf_pool_parse_hex32(const char *s, uint32_t *out)
{
	uint8_t b[4];

	if (!s || !hf_hex_decode(s, strlen(s), b, 4))
		return HF_EINVAL;
	*out = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
	return 0;
}

static int listen_field(const char *text, const char *path, char *host, size_t hostsz,
			uint16_t *port, hf_errbuf *eb)
{
	if (!hf_parse_hostport(text, host, hostsz, port))
		return hf_fail(eb, HF_ECONFIG, "%s: expected \"IPV4:PORT\" (port 0 = ephemeral), "
			       "got \"%.100s\"", path, text);
	return 0;
}

static int read_template(const json_t *t, hf_pool_cfg *pc, hf_errbuf *eb)
{
	char version[16] = "", nbits[16] = "";
	const json_t *branch = NULL, *e;
	uint64_t height = pc->height;
	bool has_v = false, has_n = false;
	hf_cfg_field f[] = {
		{ .key = "prevhash", .type = HF_CFG_STRING, .dst = pc->prevhash,
		  .dst_size = sizeof pc->prevhash, .min = 64 },
		{ .key = "coinb1", .type = HF_CFG_STRING, .dst = pc->coinb1,
		  .dst_size = sizeof pc->coinb1 },
		{ .key = "coinb2", .type = HF_CFG_STRING, .dst = pc->coinb2,
		  .dst_size = sizeof pc->coinb2 },
		{ .key = "merkle_branch", .type = HF_CFG_ARRAY, .dst = &branch, .max = 32 },
		{ .key = "version", .type = HF_CFG_STRING, .dst = version, .dst_size = sizeof version,
		  .present = &has_v },
		{ .key = "nbits", .type = HF_CFG_STRING, .dst = nbits, .dst_size = sizeof nbits,
		  .present = &has_n },
		{ .key = "height", .type = HF_CFG_UINT, .dst = &height, .min = 1, .max = 16777215 },
	};
	size_t i;
	int rc = hf_cfg_read(t, "template", f, HF_ARRAY_SIZE(f), eb);

	if (rc)
		return rc;
	if (has_v && hf_pool_parse_hex32(version, &pc->version))
		return hf_fail(eb, HF_ECONFIG, "template.version: expected 8 hex digits");
	if (has_n && hf_pool_parse_hex32(nbits, &pc->nbits))
		return hf_fail(eb, HF_ECONFIG, "template.nbits: expected 8 hex digits");
	pc->height = (uint32_t)height;
	pc->nbranch = 0;
	json_array_foreach(branch, i, e) {
		const char *s = json_string_value(e);
		uint8_t tmp[32];
		if (!s || !hf_hex_decode(s, strlen(s), tmp, 32))
			return hf_fail(eb, HF_ECONFIG, "template.merkle_branch[%zu]: expected 64 hex "
				       "digits", i);
		hf_strlcpy(pc->branch[pc->nbranch++], s, sizeof pc->branch[0]);
	}
	if ((pc->coinb1[0] != 0) != (pc->coinb2[0] != 0))
		return hf_fail(eb, HF_ECONFIG, "template: coinb1 and coinb2 go together");
	return 0;
}

int hf_pool_config_load(const char *path, hf_pool_prog_cfg *out, hf_errbuf *eb)
{
	static const char *const levels[] = { "err", "warn", "notice", "info", "debug", NULL };
	hf_pool_prog_cfg c = *out;
	hf_pool_cfg *pc = &c.pool;
	json_t *root = NULL;
	const json_t *vardiff = NULL, *tls = NULL, *tmpl = NULL, *faults = NULL;
	char listen[128] = "", admin[128] = "", mask[16] = "";
	uint64_t en2 = pc->en2_size, block_ms = 0, job_ms = 0;
	int level = 3;
	bool has_listen = false, has_admin = false, has_mask = false, has_level = false;
	hf_cfg_field top[] = {
		{ .key = "listen", .type = HF_CFG_STRING, .dst = listen, .dst_size = sizeof listen,
		  .min = 1, .present = &has_listen },
		{ .key = "admin_listen", .type = HF_CFG_STRING, .dst = admin,
		  .dst_size = sizeof admin, .min = 1, .present = &has_admin },
		{ .key = "difficulty", .type = HF_CFG_NUMBER, .dst = &pc->difficulty, .min = 1e-12,
		  .max = 1e15 },
		{ .key = "extranonce2_size", .type = HF_CFG_UINT, .dst = &en2, .min = 2, .max = 8 },
		{ .key = "version_mask", .type = HF_CFG_STRING, .dst = mask, .dst_size = sizeof mask,
		  .present = &has_mask },
		{ .key = "vardiff", .type = HF_CFG_OBJECT, .dst = &vardiff },
		{ .key = "tls", .type = HF_CFG_OBJECT, .dst = &tls },
		{ .key = "template", .type = HF_CFG_OBJECT, .dst = &tmpl },
		{ .key = "block_interval_ms", .type = HF_CFG_UINT, .dst = &block_ms, .max = 86400000 },
		{ .key = "job_interval_ms", .type = HF_CFG_UINT, .dst = &job_ms, .max = 86400000 },
		{ .key = "faults", .type = HF_CFG_OBJECT, .dst = &faults },
		{ .key = "log_level", .type = HF_CFG_ENUM, .dst = &level, .choices = levels,
		  .present = &has_level },
	};
	hf_cfg_field vd[] = {
		{ .key = "enabled", .type = HF_CFG_BOOL, .dst = &pc->vardiff },
		{ .key = "shares_per_min", .type = HF_CFG_NUMBER, .dst = &pc->vardiff_spm,
		  .min = 0.01, .max = 100000 },
		{ .key = "min", .type = HF_CFG_NUMBER, .dst = &pc->vardiff_min, .min = 1e-12,
		  .max = 1e15 },
		{ .key = "max", .type = HF_CFG_NUMBER, .dst = &pc->vardiff_max, .min = 1e-12,
		  .max = 1e15 },
	};
	hf_cfg_field tl[] = {
		{ .key = "cert", .type = HF_CFG_STRING, .required = true, .dst = pc->tls_cert,
		  .dst_size = sizeof pc->tls_cert, .min = 1 },
		{ .key = "key", .type = HF_CFG_STRING, .required = true, .dst = pc->tls_key,
		  .dst_size = sizeof pc->tls_key, .min = 1 },
	};
	hf_cfg_field fl[] = {
		{ .key = "refuse_authorize", .type = HF_CFG_BOOL, .dst = &pc->refuse_authorize },
		{ .key = "stall", .type = HF_CFG_BOOL, .dst = &pc->stall },
	};
	int rc = hf_cfg_load_file(path, HF_CFG_MAX_FILE, &root, eb);

	if (rc)
		return rc;
	rc = hf_cfg_read(root, "", top, HF_ARRAY_SIZE(top), eb);
	if (!rc && vardiff)
		rc = hf_cfg_read(vardiff, "vardiff", vd, HF_ARRAY_SIZE(vd), eb);
	if (!rc && tls)
		rc = hf_cfg_read(tls, "tls", tl, HF_ARRAY_SIZE(tl), eb);
	if (!rc && faults)
		rc = hf_cfg_read(faults, "faults", fl, HF_ARRAY_SIZE(fl), eb);
	if (!rc && tmpl)
		rc = read_template(tmpl, pc, eb);
	if (!rc && has_listen)
		rc = listen_field(listen, "listen", pc->listen_host, sizeof pc->listen_host,
				  &pc->port, eb);
	if (!rc && has_admin)
		rc = listen_field(admin, "admin_listen", c.admin_host, sizeof c.admin_host,
				  &c.admin_port, eb);
	if (!rc && has_mask && hf_pool_parse_hex32(mask, &pc->version_mask))
		rc = hf_fail(eb, HF_ECONFIG, "version_mask: expected 8 hex digits, e.g. \"1fffe000\"");
	if (!rc && pc->vardiff_min > pc->vardiff_max)
		rc = hf_fail(eb, HF_ECONFIG, "vardiff.min: greater than vardiff.max");
	json_decref(root);
	if (rc)
		return rc;
	pc->en2_size = (unsigned)en2;
	pc->block_interval_ms = block_ms;
	pc->job_interval_ms = job_ms;
	if (has_level)
		c.log_level = (hf_log_level)(HF_LOG_ERR + level);
	*out = c;
	return 0;
}
