/* nibble profile: not implemented yet. */
#include <stdio.h>

#include "cmds.h"

int cmd_profile(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "nibble profile: not implemented yet\n");
    return 2;
}
