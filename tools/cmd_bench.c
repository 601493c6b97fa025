/* nibble bench: not implemented yet. */
#include <stdio.h>

#include "cmds.h"

int cmd_bench(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "nibble bench: not implemented yet\n");
    return 2;
}
