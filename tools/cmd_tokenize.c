/* nibble tokenize: not implemented yet. */
#include <stdio.h>

#include "cmds.h"

int cmd_tokenize(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "nibble tokenize: not implemented yet\n");
    return 2;
}
