/* tests/fuzz/fuzz_openai.c: an OpenAI request body, parsed as both endpoints' requests
 * (server_req_parse: /v1/completions and /v1/chat/completions); a chat request's messages
 * rendered by every chat template (server_chat_render, all of llama.cpp's); a refusal's error JSON.
 */
#include "fuzz.h"

#include "server/server.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    for (int ep = SERVER_EP_COMPLETIONS; ep <= SERVER_EP_CHAT; ep++) {
        server_req r;
        server_error er;
        base_err e = {0};
        int rc = server_req_parse(&r, (server_endpoint)ep, (const char *)data, size, &er);
        if (rc) snprintf(e.msg, sizeof e.msg, "%s", er.message);
        if (fuzz_report(ep ? "chat" : "completions", rc, &e)) {
            free(server_error_json(&er));
            continue;
        }
        for (int t = 0; ep == SERVER_EP_CHAT && t < SERVER_TMPL_COUNT; t++) {
            base_buf b = {0};
            server_chat_render((server_tmpl)t, r.msgs, r.n_msgs, &b);
            base_buf_free(&b);
        }
        server_req_free(&r);
    }
    return 0;
}
