/* server/chat.c: chat templates — a list of messages becomes one prompt text, byte for byte what
 * llama.cpp's llama_chat_apply_template renders for the same messages (its built-in templates,
 * recognized from a GGUF's tokenizer.chat_template as llm_chat_detect_template recognizes them),
 * plus hearth's own plain-text template for the models it trains. The text is then encoded as
 * every prompt is (infer_prompt_encode): the special tokens written in it become their ids. */
#include "server/server.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static const char *const tmpl_names[SERVER_TMPL_COUNT] = {
    [SERVER_TMPL_HEARTH] = "hearth",
    [SERVER_TMPL_LLAMA2] = "llama2",
    [SERVER_TMPL_CHATML] = "chatml",
    [SERVER_TMPL_LLAMA2_SYS] = "llama2-sys",
    [SERVER_TMPL_LLAMA2_SYS_BOS] = "llama2-sys-bos",
    [SERVER_TMPL_LLAMA2_SYS_STRIP] = "llama2-sys-strip",
    [SERVER_TMPL_MISTRAL_V1] = "mistral-v1",
    [SERVER_TMPL_MISTRAL_V3] = "mistral-v3",
    [SERVER_TMPL_MISTRAL_V3_TEKKEN] = "mistral-v3-tekken",
    [SERVER_TMPL_MISTRAL_V7] = "mistral-v7",
    [SERVER_TMPL_PHI3] = "phi3",
    [SERVER_TMPL_PHI4] = "phi4",
    [SERVER_TMPL_FALCON3] = "falcon3",
    [SERVER_TMPL_ZEPHYR] = "zephyr",
    [SERVER_TMPL_MONARCH] = "monarch",
    [SERVER_TMPL_GEMMA] = "gemma",
    [SERVER_TMPL_ORION] = "orion",
    [SERVER_TMPL_OPENCHAT] = "openchat",
    [SERVER_TMPL_VICUNA] = "vicuna",
    [SERVER_TMPL_VICUNA_ORCA] = "vicuna-orca",
    [SERVER_TMPL_DEEPSEEK] = "deepseek",
    [SERVER_TMPL_DEEPSEEK2] = "deepseek2",
    [SERVER_TMPL_DEEPSEEK3] = "deepseek3",
    [SERVER_TMPL_COMMAND_R] = "command-r",
    [SERVER_TMPL_LLAMA3] = "llama3",
    [SERVER_TMPL_CHATGLM3] = "chatglm3",
    [SERVER_TMPL_CHATGLM4] = "chatglm4",
    [SERVER_TMPL_GLMEDGE] = "glmedge",
    [SERVER_TMPL_MINICPM] = "minicpm",
    [SERVER_TMPL_EXAONE3] = "exaone3",
    [SERVER_TMPL_RWKV_WORLD] = "rwkv-world",
    [SERVER_TMPL_GRANITE] = "granite",
    [SERVER_TMPL_GIGACHAT] = "gigachat",
    [SERVER_TMPL_MEGREZ] = "megrez",
};

int server_tmpl_parse(const char *name, server_tmpl *out) {
    for (int i = 0; i < SERVER_TMPL_COUNT; i++)
        if (!strcmp(name, tmpl_names[i])) {
            *out = (server_tmpl)i;
            return 0;
        }
    return -1;
}

const char *server_tmpl_name(server_tmpl t) {
    return (unsigned)t < SERVER_TMPL_COUNT ? tmpl_names[t] : "?";
}

const char *server_tmpl_names(void) {
    static char list[1024];
    if (!list[0]) {
        size_t n = 0;
        for (int i = 0; i < SERVER_TMPL_COUNT && n + 32 < sizeof list; i++)
            n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", i ? ", " : "", tmpl_names[i]);
    }
    return list;
}

int server_tmpl_detect(const char *tmpl, server_tmpl *out) {
    if (!server_tmpl_parse(tmpl, out) && *out != SERVER_TMPL_HEARTH) return 0;
#define HAS(s) (strstr(tmpl, s) != NULL)
    server_tmpl t = SERVER_TMPL_COUNT;
    if (HAS("<|im_start|>")) {
        t = HAS("<|im_sep|>") ? SERVER_TMPL_PHI4 : SERVER_TMPL_CHATML;
    } else if (!strncmp(tmpl, "mistral", 7) || HAS("[INST]")) {
        if (HAS("[SYSTEM_PROMPT]"))
            t = SERVER_TMPL_MISTRAL_V7;
        else if (HAS("' [INST] ' + system_message") || HAS("[AVAILABLE_TOOLS]"))
            t = HAS(" [INST]")      ? SERVER_TMPL_MISTRAL_V1
                : HAS("\"[INST]\"") ? SERVER_TMPL_MISTRAL_V3_TEKKEN
                                    : SERVER_TMPL_MISTRAL_V3;
        else if (HAS("content.strip()"))
            t = SERVER_TMPL_LLAMA2_SYS_STRIP;
        else if (HAS("bos_token + '[INST]"))
            t = SERVER_TMPL_LLAMA2_SYS_BOS;
        else if (HAS("<<SYS>>"))
            t = SERVER_TMPL_LLAMA2_SYS;
        else
            t = SERVER_TMPL_LLAMA2;
    } else if (HAS("<|assistant|>") && HAS("<|end|>")) {
        t = SERVER_TMPL_PHI3;
    } else if (HAS("<|assistant|>") && HAS("<|user|>")) {
        t = HAS("</s>") ? SERVER_TMPL_FALCON3 : SERVER_TMPL_GLMEDGE;
    } else if (HAS("<|user|>") && HAS("<|endoftext|>")) {
        t = SERVER_TMPL_ZEPHYR;
    } else if (HAS("bos_token + message['role']")) {
        t = SERVER_TMPL_MONARCH;
    } else if (HAS("<start_of_turn>")) {
        t = SERVER_TMPL_GEMMA;
    } else if (HAS("'\\n\\nAssistant: ' + eos_token")) {
        t = SERVER_TMPL_ORION;
    } else if (HAS("GPT4 Correct ")) {
        t = SERVER_TMPL_OPENCHAT;
    } else if (HAS("USER: ") && HAS("ASSISTANT: ")) {
        t = HAS("SYSTEM: ") ? SERVER_TMPL_VICUNA_ORCA : SERVER_TMPL_VICUNA;
    } else if (HAS("### Instruction:") && HAS("<|EOT|>")) {
        t = SERVER_TMPL_DEEPSEEK;
    } else if (HAS("<|START_OF_TURN_TOKEN|>") && HAS("<|USER_TOKEN|>")) {
        t = SERVER_TMPL_COMMAND_R;
    } else if (HAS("<|start_header_id|>") && HAS("<|end_header_id|>")) {
        t = SERVER_TMPL_LLAMA3;
    } else if (HAS("[gMASK]sop")) {
        t = SERVER_TMPL_CHATGLM3;
    } else if (HAS("[gMASK]<sop>")) {
        t = SERVER_TMPL_CHATGLM4;
    } else if (HAS("<\xe7\x94\xa8\xe6\x88\xb7>")) { /* <用户> */
        t = SERVER_TMPL_MINICPM;
    } else if (HAS("'Assistant: ' + message['content'] + eos_token")) {
        t = SERVER_TMPL_DEEPSEEK2;
    } else if (HAS("<\xef\xbd\x9c"
                   "Assistant\xef\xbd\x9c>") &&
               HAS("<\xef\xbd\x9cUser\xef\xbd\x9c>") &&
               HAS("<\xef\xbd\x9c"
                   "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>")) {
        t = SERVER_TMPL_DEEPSEEK3;
    } else if (HAS("[|system|]") && HAS("[|assistant|]") && HAS("[|endofturn|]")) {
        t = SERVER_TMPL_EXAONE3;
    } else if (HAS("rwkv-world")) {
        t = SERVER_TMPL_RWKV_WORLD;
    } else if (HAS("<|start_of_role|>")) {
        t = SERVER_TMPL_GRANITE;
    } else if (HAS("message['role'] + additional_special_tokens[0] + message['content'] + "
                   "additional_special_tokens[1]")) {
        t = SERVER_TMPL_GIGACHAT;
    } else if (HAS("<|role_start|>")) {
        t = SERVER_TMPL_MEGREZ;
    }
#undef HAS
    if (t == SERVER_TMPL_COUNT) return -1;
    *out = t;
    return 0;
}

server_tmpl server_tmpl_default(nn_family family, int tok_kind) {
    return family == NN_LLAMA && tok_kind == TOK_KIND_SPM ? SERVER_TMPL_LLAMA2 : SERVER_TMPL_HEARTH;
}

server_tmpl server_tmpl_for_model(const char *chat_template, int from_gguf, nn_family family,
                                  int tok_kind, int *unknown) {
    server_tmpl t;
    *unknown = 0;
    if (chat_template && !server_tmpl_detect(chat_template, &t)) return t;
    if (chat_template || from_gguf) {
        /* llama.cpp's fallback: a template it does not know, or none, renders as ChatML */
        *unknown = chat_template != NULL;
        return SERVER_TMPL_CHATML;
    }
    return server_tmpl_default(family, tok_kind);
}

server_tmpl server_tmpl_of_model(const infer_model *m, int *unknown) {
    return server_tmpl_for_model(infer_model_chat_template(m), infer_model_nn(m) == NULL,
                                 infer_model_family(m), tok_kind(infer_model_vocab(m)), unknown);
}

const char *server_tmpl_stop(server_tmpl t) {
    /* hearth's plain-text template has no end-of-turn token: the next turn's tag ends it.
     * Every other template's end of turn is a token the scheduler stops at (tok_is_eog). */
    return t == SERVER_TMPL_HEARTH ? "\nUser:" : NULL;
}

/* ---- rendering */

static void put(base_buf *b, const char *s) {
    base_buf_append(b, s, strlen(s));
}

/* s without leading and trailing whitespace (C's isspace, as llama.cpp's trim) */
static void put_trim(base_buf *b, const char *s) {
    size_t n = strlen(s), i = 0;
    while (i < n && isspace((unsigned char)s[i])) i++;
    while (n > i && isspace((unsigned char)s[n - 1])) n--;
    base_buf_append(b, s + i, n - i);
}

static int is(const char *role, const char *r) {
    return !strcmp(role, r);
}

/* hearth's own: "System: ...\nUser: ...\nAssistant: ..." (the last assistant turn left open) */
static void render_hearth(base_buf *b, const server_msg *m, size_t n, int add_ass) {
    for (size_t i = 0; i < n; i++) {
        put(b, is(m[i].role, "system") ? "System: "
               : is(m[i].role, "user") ? "User: "
                                       : "Assistant: ");
        put(b, m[i].content);
        if (!(i + 1 == n && !add_ass)) put(b, "\n");
    }
    if (add_ass) put(b, "Assistant:");
}

int server_chat_render_ex(server_tmpl t, const server_msg *m, size_t n, int add_ass, base_buf *b) {
    switch (t) {
    case SERVER_TMPL_HEARTH:
        render_hearth(b, m, n, add_ass);
        break;
    case SERVER_TMPL_CHATML:
        for (size_t i = 0; i < n; i++) {
            put(b, "<|im_start|>"), put(b, m[i].role), put(b, "\n"), put(b, m[i].content);
            put(b, "<|im_end|>\n");
        }
        if (add_ass) put(b, "<|im_start|>assistant\n");
        break;
    case SERVER_TMPL_MISTRAL_V7:
        for (size_t i = 0; i < n; i++) {
            if (is(m[i].role, "system"))
                put(b, "[SYSTEM_PROMPT] "), put(b, m[i].content), put(b, "[/SYSTEM_PROMPT]");
            else if (is(m[i].role, "user"))
                put(b, "[INST] "), put(b, m[i].content), put(b, "[/INST]");
            else
                put(b, " "), put(b, m[i].content), put(b, "</s>");
        }
        break;
    case SERVER_TMPL_MISTRAL_V1:
    case SERVER_TMPL_MISTRAL_V3:
    case SERVER_TMPL_MISTRAL_V3_TEKKEN: {
        const char *lead = t == SERVER_TMPL_MISTRAL_V1 ? " " : "";
        const char *trail = t == SERVER_TMPL_MISTRAL_V3_TEKKEN ? "" : " ";
        int inside = 0;
        for (size_t i = 0; i < n; i++) {
            if (!inside) put(b, lead), put(b, "[INST]"), put(b, trail), inside = 1;
            if (is(m[i].role, "system")) {
                put(b, m[i].content), put(b, "\n\n");
            } else if (is(m[i].role, "user")) {
                put(b, m[i].content), put(b, lead), put(b, "[/INST]");
            } else {
                put(b, trail);
                if (t == SERVER_TMPL_MISTRAL_V3)
                    put_trim(b, m[i].content);
                else
                    put(b, m[i].content);
                put(b, "</s>");
                inside = 0;
            }
        }
        break;
    }
    case SERVER_TMPL_LLAMA2:
    case SERVER_TMPL_LLAMA2_SYS:
    case SERVER_TMPL_LLAMA2_SYS_BOS:
    case SERVER_TMPL_LLAMA2_SYS_STRIP: {
        int sys_ok = t != SERVER_TMPL_LLAMA2, strip = t == SERVER_TMPL_LLAMA2_SYS_STRIP;
        int inside = 1;
        put(b, "[INST] ");
        for (size_t i = 0; i < n; i++) {
            if (!inside) put(b, t == SERVER_TMPL_LLAMA2_SYS_BOS ? "<s>[INST] " : "[INST] ");
            inside = 1;
            void (*c)(base_buf *, const char *) = strip ? put_trim : put;
            if (is(m[i].role, "system")) {
                /* without <<SYS>>: the system prompt opens the first turn, as llama.cpp does */
                if (sys_ok) put(b, "<<SYS>>\n");
                c(b, m[i].content);
                put(b, sys_ok ? "\n<</SYS>>\n\n" : "\n");
            } else if (is(m[i].role, "user")) {
                c(b, m[i].content), put(b, " [/INST]");
            } else {
                c(b, m[i].content), put(b, "</s>");
                inside = 0;
            }
        }
        break;
    }
    case SERVER_TMPL_PHI3:
        for (size_t i = 0; i < n; i++) {
            put(b, "<|"), put(b, m[i].role), put(b, "|>\n"), put(b, m[i].content);
            put(b, "<|end|>\n");
        }
        if (add_ass) put(b, "<|assistant|>\n");
        break;
    case SERVER_TMPL_PHI4:
        for (size_t i = 0; i < n; i++) {
            put(b, "<|im_start|>"), put(b, m[i].role), put(b, "<|im_sep|>"), put(b, m[i].content);
            put(b, "<|im_end|>");
        }
        if (add_ass) put(b, "<|im_start|>assistant<|im_sep|>");
        break;
    case SERVER_TMPL_FALCON3:
        for (size_t i = 0; i < n; i++)
            put(b, "<|"), put(b, m[i].role), put(b, "|>\n"), put(b, m[i].content), put(b, "\n");
        if (add_ass) put(b, "<|assistant|>\n");
        break;
    case SERVER_TMPL_ZEPHYR:
        for (size_t i = 0; i < n; i++) {
            put(b, "<|"), put(b, m[i].role), put(b, "|>\n"), put(b, m[i].content);
            put(b, "<|endoftext|>\n");
        }
        if (add_ass) put(b, "<|assistant|>\n");
        break;
    case SERVER_TMPL_MONARCH:
        for (size_t i = 0; i < n; i++) {
            if (i) put(b, "<s>");
            put(b, m[i].role), put(b, "\n"), put(b, m[i].content), put(b, "</s>\n");
        }
        if (add_ass) put(b, "<s>assistant\n");
        break;
    case SERVER_TMPL_GEMMA: {
        /* no system turn: the system prompt (trimmed) opens the next user turn */
        const char *sys = NULL;
        for (size_t i = 0; i < n; i++) {
            if (is(m[i].role, "system")) {
                sys = m[i].content;
                continue;
            }
            int model = is(m[i].role, "assistant");
            put(b, "<start_of_turn>"), put(b, model ? "model" : m[i].role), put(b, "\n");
            if (sys && !model) {
                base_buf tb = {0};
                put_trim(&tb, sys);
                if (tb.len) base_buf_append(b, tb.data, tb.len), put(b, "\n\n");
                base_buf_free(&tb);
                sys = NULL;
            }
            put_trim(b, m[i].content), put(b, "<end_of_turn>\n");
        }
        if (add_ass) put(b, "<start_of_turn>model\n");
        break;
    }
    case SERVER_TMPL_ORION: {
        const char *sys = NULL;
        for (size_t i = 0; i < n; i++) {
            if (is(m[i].role, "system")) {
                sys = m[i].content;
            } else if (is(m[i].role, "user")) {
                put(b, "Human: ");
                if (sys && *sys) put(b, sys), put(b, "\n\n");
                sys = NULL;
                put(b, m[i].content), put(b, "\n\nAssistant: </s>");
            } else {
                put(b, m[i].content), put(b, "</s>");
            }
        }
        break;
    }
    case SERVER_TMPL_OPENCHAT:
        for (size_t i = 0; i < n; i++) {
            if (is(m[i].role, "system")) {
                put(b, m[i].content);
            } else {
                char r[32];
                snprintf(r, sizeof r, "%s", m[i].role);
                r[0] = (char)toupper((unsigned char)r[0]);
                put(b, "GPT4 Correct "), put(b, r), put(b, ": "), put(b, m[i].content);
            }
            put(b, "<|end_of_turn|>");
        }
        if (add_ass) put(b, "GPT4 Correct Assistant:");
        break;
    case SERVER_TMPL_VICUNA:
    case SERVER_TMPL_VICUNA_ORCA:
        for (size_t i = 0; i < n; i++) {
            if (is(m[i].role, "system")) {
                if (t == SERVER_TMPL_VICUNA_ORCA)
                    put(b, "SYSTEM: "), put(b, m[i].content), put(b, "\n");
                else
                    put(b, m[i].content), put(b, "\n\n");
            } else if (is(m[i].role, "user")) {
                put(b, "USER: "), put(b, m[i].content), put(b, "\n");
            } else if (is(m[i].role, "assistant")) {
                put(b, "ASSISTANT: "), put(b, m[i].content), put(b, "</s>\n");
            }
        }
        if (add_ass) put(b, "ASSISTANT:");
        break;
    case SERVER_TMPL_DEEPSEEK:
        for (size_t i = 0; i < n; i++) {
            if (is(m[i].role, "system"))
                put(b, m[i].content);
            else if (is(m[i].role, "user"))
                put(b, "### Instruction:\n"), put(b, m[i].content), put(b, "\n");
            else if (is(m[i].role, "assistant"))
                put(b, "### Response:\n"), put(b, m[i].content), put(b, "\n<|EOT|>\n");
        }
        if (add_ass) put(b, "### Response:\n");
        break;
    case SERVER_TMPL_COMMAND_R:
        for (size_t i = 0; i < n; i++) {
            const char *tag = is(m[i].role, "system") ? "<|SYSTEM_TOKEN|>"
                              : is(m[i].role, "user") ? "<|USER_TOKEN|>"
                                                      : "<|CHATBOT_TOKEN|>";
            put(b, "<|START_OF_TURN_TOKEN|>"), put(b, tag), put_trim(b, m[i].content);
            put(b, "<|END_OF_TURN_TOKEN|>");
        }
        if (add_ass) put(b, "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>");
        break;
    case SERVER_TMPL_LLAMA3:
        for (size_t i = 0; i < n; i++) {
            put(b, "<|start_header_id|>"), put(b, m[i].role), put(b, "<|end_header_id|>\n\n");
            put_trim(b, m[i].content), put(b, "<|eot_id|>");
        }
        if (add_ass) put(b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
        break;
    case SERVER_TMPL_CHATGLM3:
    case SERVER_TMPL_CHATGLM4:
    case SERVER_TMPL_GLMEDGE:
        if (t == SERVER_TMPL_CHATGLM3) put(b, "[gMASK]sop");
        if (t == SERVER_TMPL_CHATGLM4) put(b, "[gMASK]<sop>");
        for (size_t i = 0; i < n; i++) {
            put(b, "<|"), put(b, m[i].role), put(b, t == SERVER_TMPL_CHATGLM3 ? "|>\n " : "|>\n");
            put(b, m[i].content);
        }
        if (add_ass) put(b, "<|assistant|>");
        break;
    case SERVER_TMPL_MINICPM:
        for (size_t i = 0; i < n; i++) {
            if (is(m[i].role, "user"))
                put(b, "<\xe7\x94\xa8\xe6\x88\xb7>"), put_trim(b, m[i].content), put(b, "<AI>");
            else
                put_trim(b, m[i].content);
        }
        break;
    case SERVER_TMPL_DEEPSEEK2:
        for (size_t i = 0; i < n; i++) {
            if (is(m[i].role, "system"))
                put(b, m[i].content), put(b, "\n\n");
            else if (is(m[i].role, "user"))
                put(b, "User: "), put(b, m[i].content), put(b, "\n\n");
            else if (is(m[i].role, "assistant"))
                put(b, "Assistant: "), put(b, m[i].content),
                    put(b, "<\xef\xbd\x9c"
                           "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>");
        }
        if (add_ass) put(b, "Assistant:");
        break;
    case SERVER_TMPL_DEEPSEEK3:
        for (size_t i = 0; i < n; i++) {
            if (is(m[i].role, "system"))
                put(b, m[i].content), put(b, "\n\n");
            else if (is(m[i].role, "user"))
                put(b, "<\xef\xbd\x9cUser\xef\xbd\x9c>"), put(b, m[i].content);
            else if (is(m[i].role, "assistant"))
                put(b, "<\xef\xbd\x9c"
                       "Assistant\xef\xbd\x9c>"),
                    put(b, m[i].content),
                    put(b, "<\xef\xbd\x9c"
                           "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>");
        }
        if (add_ass)
            put(b, "<\xef\xbd\x9c"
                   "Assistant\xef\xbd\x9c>");
        break;
    case SERVER_TMPL_EXAONE3:
        for (size_t i = 0; i < n; i++) {
            if (is(m[i].role, "system"))
                put(b, "[|system|]"), put_trim(b, m[i].content), put(b, "[|endofturn|]\n");
            else if (is(m[i].role, "user"))
                put(b, "[|user|]"), put_trim(b, m[i].content), put(b, "\n");
            else if (is(m[i].role, "assistant"))
                put(b, "[|assistant|]"), put_trim(b, m[i].content), put(b, "[|endofturn|]\n");
        }
        if (add_ass) put(b, "[|assistant|]");
        break;
    case SERVER_TMPL_RWKV_WORLD:
        for (size_t i = 0; i < n; i++) {
            if (is(m[i].role, "user"))
                put(b, "User: "), put(b, m[i].content), put(b, "\n\nAssistant:");
            else
                put(b, m[i].content), put(b, "\n\n");
        }
        break;
    case SERVER_TMPL_GRANITE:
        for (size_t i = 0; i < n; i++) {
            put(b, "<|start_of_role|>"), put(b, m[i].role), put(b, "<|end_of_role|>");
            put(b, m[i].content), put(b, "<|end_of_text|>\n");
        }
        if (add_ass) put(b, "<|start_of_role|>assistant<|end_of_role|>\n");
        break;
    case SERVER_TMPL_GIGACHAT: {
        size_t i = 0;
        put(b, "<s>");
        if (n && is(m[0].role, "system")) put(b, m[0].content), put(b, "<|message_sep|>"), i = 1;
        for (; i < n; i++) {
            if (is(m[i].role, "user"))
                put(b, "user<|role_sep|>"), put(b, m[i].content),
                    put(b, "<|message_sep|>available functions<|role_sep|>[]<|message_sep|>");
            else if (is(m[i].role, "assistant"))
                put(b, "assistant<|role_sep|>"), put(b, m[i].content), put(b, "<|message_sep|>");
        }
        if (add_ass) put(b, "assistant<|role_sep|>");
        break;
    }
    case SERVER_TMPL_MEGREZ:
        for (size_t i = 0; i < n; i++) {
            put(b, "<|role_start|>"), put(b, m[i].role), put(b, "<|role_end|>");
            put(b, m[i].content), put(b, "<|turn_end|>");
        }
        if (add_ass) put(b, "<|role_start|>assistant<|role_end|>");
        break;
    default:
        return BASE_EINVAL;
    }
    return b->failed ? BASE_ENOMEM : 0;
}

int server_chat_render(server_tmpl t, const server_msg *m, size_t n, base_buf *out) {
    return server_chat_render_ex(t, m, n, 1, out); /* llama-server: the generation prompt */
}

static int chat_encode(server_tmpl t, tok_vocab *v, int native, const server_msg *m, size_t n,
                       int add_ass, tok_ids *out, base_err *e) {
    base_buf b = {0};
    int rc = server_chat_render_ex(t, m, n, add_ass, &b);
    if (rc) {
        base_buf_free(&b);
        return base_fail(e, rc,
                         rc == BASE_ENOMEM ? "out of memory in the chat template"
                                           : "unknown chat template");
    }
    rc = infer_prompt_encode_vocab(v, native, b.data ? b.data : "", b.len, out, e);
    base_buf_free(&b);
    return rc;
}

int server_chat_encode(server_tmpl t, infer_model *model, const server_msg *m, size_t n,
                       tok_ids *out, base_err *e) {
    /* llama-server: the generation prompt */
    return chat_encode(t, infer_model_vocab(model), infer_model_nn(model) != NULL, m, n, 1, out, e);
}

int server_chat_encode_vocab(server_tmpl t, tok_vocab *v, int hearth_native, const server_msg *m,
                             size_t n, int add_ass, tok_ids *out, base_err *e) {
    return chat_encode(t, v, hearth_native, m, n, add_ass, out, e);
}

/* ---- a lower bound on a prompt's tokens */

size_t server_token_bytes_max(const tok_vocab *v) {
    size_t best = 1;
    int32_t n = tok_vocab_size(v);
    for (int32_t id = 0; id < n; id++) {
        const char *t;
        size_t len;
        if (tok_token_text(v, id, &t, &len, NULL) == 0 && len > best) best = len;
    }
    return best;
}
