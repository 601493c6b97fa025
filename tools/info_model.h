#ifndef NB_INFO_MODEL_H
#define NB_INFO_MODEL_H
/* Prints what `nibble info -m PATH` shows; returns the exit status (one-line error on failure). */
int nb_info_model(const char *path);
#endif
