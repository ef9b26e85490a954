// SPDX-License-Identifier: MIT
/* What several subcommands share beyond cli.c: pushing a layer image with
 * a progress bar. (In the gdroot program only, not the fetcher.) */
#include "cmd-util.h"

int cli_push_layer(struct cli *c, struct push_ctx *p, const char *image, const char *label,
		   struct manifest_layer *layer)
{
	struct progress_bar pb;
	progress_bar_begin(&pb, label, c->progress);
	p->progress = progress_bar_update;
	p->progress_ud = &pb;
	int r = push_layer(p, image, layer);
	progress_bar_end(&pb);
	p->progress = NULL;
	return r;
}
