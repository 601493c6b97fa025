#ifndef NB_INFO_MODEL_H
#define NB_INFO_MODEL_H
/* Prints what `nibble info -m PATH` shows; returns the exit status (one-line error on failure). */
int nb_info_model(const char *path);
/* nibble info --pipelines (tools/info_pipelines.c): the model's pipelines on the device with the
 * driver's compiler statistics, as a table or CSV; 0, or 1 with a one-line error. */
#include <stdbool.h>
int nb_info_pipelines(const char *model, bool csv);
#endif
