/* cli/cmd_generate.c: placeholder, replaced by `hearth generate`. */
#include "cli.h"

#include <stdio.h>

int cli_generate(int argc, char **argv) {
    fprintf(stderr, "hearth generate: not built yet\n");
    return 2;
}
