/* nibble logits: not implemented yet. */
#include <stdio.h>

#include "cmds.h"

int cmd_logits(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "nibble logits: not implemented yet\n");
    return 2;
}
