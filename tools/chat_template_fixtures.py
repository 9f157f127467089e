#!/usr/bin/env python3
"""tools/chat_template_fixtures.py: llama.cpp's rendering of chat conversations, for
tests/server (test_templates_llamacpp), which checks hearth's src/server/chat.c against it byte
for byte.

    /usr/bin/python3 tools/chat_template_fixtures.py LLAMACPP_REF [OUT]

LLAMACPP_REF: tools/llamacpp_ref.c built against llama.cpp's libllama (see its header);
OUT: default tests/fixtures/chat-templates/expected.jsonl. Templates: every built-in one by
its name (llama_chat_builtin_templates), every real template of tests/fixtures/chat-templates
(*.jinja, copied from llama.cpp's models/templates: Llama 3.x, Qwen2.5, Phi-3.5, Gemma 2,
Mistral Nemo, DeepSeek R1, Command R, ...) and a few template texts that reach the other
branches of llama.cpp's detection (and one it does not know). Each is rendered for the
conversations below, with and without the generation prompt (add_ass). One JSON object a line:
{"template": NAME | null, "file": JINJA | null, "text": TEMPLATE_TEXT | null, "add_ass": 0|1,
 "messages": [[ROLE, CONTENT], ...], "rendered": STRING | null (llama.cpp does not know it)}.
"""
import glob
import json
import os
import subprocess
import sys

ref = sys.argv[1]
out = sys.argv[2] if len(sys.argv) > 2 else "tests/fixtures/chat-templates/expected.jsonl"
here = os.path.dirname(out)

NAMES = ["chatml", "llama2", "llama2-sys", "llama2-sys-bos", "llama2-sys-strip", "mistral-v1",
         "mistral-v3", "mistral-v3-tekken", "mistral-v7", "phi3", "phi4", "falcon3", "zephyr",
         "monarch", "gemma", "orion", "openchat", "vicuna", "vicuna-orca", "deepseek",
         "deepseek2", "deepseek3", "command-r", "llama3", "chatglm3", "chatglm4", "glmedge",
         "minicpm", "exaone3", "rwkv-world", "granite", "gigachat", "megrez"]
TEXTS = [
    "{{ bos_token }}{% for m in messages %}{{ ' [INST] ' + system_message }}{% endfor %}",  # mistral-v1
    "{%- if messages[0]['role'] == 'system' %}<<SYS>>\n{% endif %}[INST] {{ m }} [/INST]",  # llama2-sys
    "{{ bos_token + '[INST] ' + message['content'] + ' [/INST]' }}<<SYS>>",  # llama2-sys-bos
    "{{ '[INST] ' + message['content'].strip() + ' [/INST]' }}",  # llama2-sys-strip
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|endoftext|>{% endfor %}",  # zephyr
    "{{ bos_token + message['role'] + '\\n' + message['content'] + eos_token }}",  # monarch
    "{% for m in messages %}### {{ m['role'] }}: {{ m['content'] }}\n{% endfor %}",  # unknown
]
CONVS = [
    [["system", "You are a helpful assistant."], ["user", "Hello"], ["assistant", "Hi there"],
     ["user", "Who are you?"]],
    [["user", "  What is 2+2?  "]],
    [["system", "  Be brief.  "], ["user", "Hi"]],
    [["user", "Hi"], ["assistant", " Hello! "], ["user", "Bye\n"]],
]


def render(tmpl, msgs, add_ass):
    args = [ref, "template", tmpl, str(add_ass)]
    for r, c in msgs:
        args += [r, c]
    return json.loads(subprocess.run(args, check=True, capture_output=True, text=True).stdout)


with open(out, "w", encoding="utf-8") as f:
    cases = [(n, None, n) for n in NAMES]
    cases += [(None, os.path.basename(p), open(p, encoding="utf-8").read())
              for p in sorted(glob.glob(os.path.join(here, "*.jinja")))]
    cases += [(None, None, t) for t in TEXTS]
    for name, file, text in cases:
        for msgs in CONVS:
            for add_ass in (1, 0):
                rec = {"template": name, "file": file,
                       "text": text if name is None and file is None else None,
                       "add_ass": add_ass, "messages": msgs,
                       "rendered": render(text, msgs, add_ass)}
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
print(f"{out}: {len(cases)} templates x {len(CONVS)} conversations x 2")
