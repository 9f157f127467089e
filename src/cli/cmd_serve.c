/* cli/cmd_serve.c: placeholder, replaced by `hearth serve`. */
#include "cli.h"

#include <stdio.h>

int cli_serve(int argc, char **argv) {
    fprintf(stderr, "hearth serve: not built yet\n");
    return 2;
}
