/* nibble run: not implemented yet. */
#include <stdio.h>

#include "cmds.h"

int cmd_run(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "nibble run: not implemented yet\n");
    return 2;
}
