/* nibble info: not implemented yet. */
#include <stdio.h>

#include "cmds.h"

int cmd_info(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "nibble info: not implemented yet\n");
    return 2;
}
