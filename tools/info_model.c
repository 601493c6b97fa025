/* nibble info -m MODEL: architecture, configuration, tensor counts by type and sizes.
 * Placeholder until the model layer lands. */
#include <stdio.h>

#include "info_model.h"

int nb_info_model(const char *path)
{
    fprintf(stderr, "nibble info: %s: model info not implemented yet\n", path);
    return 2;
}
