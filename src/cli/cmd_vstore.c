/* cli/cmd_vstore.c: placeholder, replaced by `hearth vstore`. */
#include "cli.h"

#include <stdio.h>

int cli_vstore(int argc, char **argv) {
    fprintf(stderr, "hearth vstore: not built yet\n");
    return 2;
}
