/* The nibble command line: one file per subcommand (tools/cmd_NAME.c). Each returns the process
 * exit status and prints one clear line to stderr on error. argv[0] is the subcommand name. */
#ifndef NB_CMDS_H
#define NB_CMDS_H

int cmd_info(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_logits(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_profile(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);
int cmd_mkmodel(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_chat(int argc, char **argv);

#endif
