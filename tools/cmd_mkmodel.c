/* nibble mkmodel: not implemented yet. */
#include <stdio.h>

#include "cmds.h"

int cmd_mkmodel(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "nibble mkmodel: not implemented yet\n");
    return 2;
}
