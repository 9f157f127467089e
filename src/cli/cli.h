/* cli: the `hearth` command and its subcommands. The only place that prints and exits. */
#ifndef HEARTH_CLI_H
#define HEARTH_CLI_H

#include <stddef.h>

int cli_train(int argc, char **argv);
int cli_digits(int argc, char **argv);
int cli_tokenizer(int argc, char **argv);
int cli_prepare(int argc, char **argv);
int cli_export(int argc, char **argv);
int cli_inspect(int argc, char **argv);
int cli_generate(int argc, char **argv);
int cli_serve(int argc, char **argv);
int cli_vstore(int argc, char **argv);
/* `hearth export --format gguf` (cmd_export_gguf.c); returns the exit status. tokenizer NULL-able. */
int cli_export_gguf(const char *src, const char *tokenizer, const char *out);

/* Parses an integer / number flag value, printing "hearth: FLAG ..." on error (returns -1). */
int cli_int(const char *flag, const char *v, long lo, long hi, long *out);
int cli_float(const char *flag, const char *v, double lo, double hi, double *out);
/* The value after argv[*i] for flag argv[*i], or NULL (with a message) if there is none. */
const char *cli_value(int argc, char **argv, int *i);

#endif
