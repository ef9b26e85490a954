/* SPDX-License-Identifier: MIT */
/* Helpers shared by gdroot's subcommands (cmd-util.c). */
#ifndef GDROOT_CMD_UTIL_H
#define GDROOT_CMD_UTIL_H

#include "cli.h"
#include "push.h"

/* push_layer with a progress bar named label on a terminal. */
int cli_push_layer(struct cli *c, struct push_ctx *p, const char *image, const char *label,
		   struct manifest_layer *layer);

#endif
