/* nibble perplexity: not implemented yet. */
#include <stdio.h>

#include "cmds.h"

int cmd_perplexity(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "nibble perplexity: not implemented yet\n");
    return 2;
}
