#!/usr/bin/python3
"""tools/gguf_vocab_fixture.py: writes a small vocabulary-only GGUF (a tokenizer test fixture)
from a larger one, with gguf-py (llama.cpp's, at $LLAMA_CPP/gguf-py).

  gguf_vocab_fixture.py SRC OUT [--keep N] [--pre NAME] [--name NAME] [--add TEXT:TYPE ...]
                        [--key KEY=VALUE ...]

Byte-level BPE (tokenizer.ggml.model "gpt2"): keeps the single-character tokens (the byte
alphabet), the tokens the first N merges make, those N merges in their order, and every token
that is not NORMAL (control, user-defined, ...). SentencePiece ("llama"): keeps the tokens with
id < N and every token that is not NORMAL (the byte tokens among them). Ids are renumbered in
their old order; the special-id keys follow their token (dropped with it). The file's other
scalar keys are copied (the architecture's hyperparameters, which llama.cpp's vocab-only load
reads), tokenizer.chat_template is not, <arch>.vocab_size is set to the new size.

--pre sets tokenizer.ggml.pre (a synthetic vocabulary: another pre-tokenizer over the same
tokens), --name general.name, --add appends a token (TYPE: control, user) and --key sets a key
after the tokens are known: KEY=TEXT takes the id of the token of that text (for
tokenizer.ggml.*_token_id), KEY=true/false a bool.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.environ.get('LLAMA_CPP', os.path.expanduser(
    '~/.cache/hearth-peers/llama.cpp')), 'gguf-py'))
import gguf  # noqa: E402
from gguf import GGUFReader, GGUFValueType, GGUFWriter  # noqa: E402

ID_KEYS = ['bos', 'eos', 'unknown', 'seperator', 'padding', 'eot', 'eom', 'mask']
TYPES = {'normal': 1, 'unknown': 2, 'control': 3, 'user': 4, 'unused': 5, 'byte': 6}


def field_value(f):
    t = f.types[0]
    if t == GGUFValueType.ARRAY:
        return None
    v = f.parts[f.data[0]]
    if t == GGUFValueType.STRING:
        return bytes(v).decode('utf-8')
    return v[0].item()


def main():
    args = sys.argv[1:]
    src, out = args[0], args[1]
    keep_n, pre, name, adds, keys = 4000, None, None, [], []
    i = 2
    while i < len(args):
        a = args[i]
        if a == '--keep':
            keep_n = int(args[i + 1])
        elif a == '--pre':
            pre = args[i + 1]
        elif a == '--name':
            name = args[i + 1]
        elif a == '--add':
            text, _, ty = args[i + 1].rpartition(':')
            adds.append((text, TYPES[ty]))
        elif a == '--key':
            keys.append(args[i + 1].split('=', 1))
        else:
            sys.exit('unknown argument ' + a)
        i += 2

    r = GGUFReader(src)
    fields = r.fields
    model = field_value(fields['tokenizer.ggml.model'])
    tf = fields['tokenizer.ggml.tokens']
    tokens = [bytes(tf.parts[d]).decode('utf-8') for d in tf.data]
    types = [int(fields['tokenizer.ggml.token_type'].parts[d][0])
             for d in fields['tokenizer.ggml.token_type'].data] \
        if 'tokenizer.ggml.token_type' in fields else [1] * len(tokens)
    scores = [float(fields['tokenizer.ggml.scores'].parts[d][0])
              for d in fields['tokenizer.ggml.scores'].data] \
        if 'tokenizer.ggml.scores' in fields else None
    merges = []
    if model == 'gpt2':
        mf = fields['tokenizer.ggml.merges']
        merges = [bytes(mf.parts[d]).decode('utf-8') for d in mf.data]

    keep = set(i for i, t in enumerate(types) if t != 1)
    kept_merges = []
    if model == 'gpt2':
        index = {t: i for i, t in enumerate(tokens)}
        keep |= set(i for i, t in enumerate(tokens) if types[i] == 1 and len(t) == 1)
        for m in merges[:keep_n]:
            a, _, b = m.partition(' ')
            if a in index and b in index and (a + b) in index and \
                    index[a] in keep and index[b] in keep:
                keep.add(index[a + b])
                kept_merges.append(m)
    else:
        keep |= set(range(min(keep_n, len(tokens))))
    old_ids = sorted(keep)
    new_id = {o: n for n, o in enumerate(old_ids)}
    new_tokens = [tokens[o] for o in old_ids]
    new_types = [types[o] for o in old_ids]
    new_scores = [scores[o] for o in old_ids] if scores else None
    for text, ty in adds:
        new_tokens.append(text)
        new_types.append(ty)
        if new_scores is not None:
            new_scores.append(0.0)

    arch = field_value(fields['general.architecture'])
    w = GGUFWriter(out, arch)
    for k, f in fields.items():
        if k.startswith('GGUF.') or k.startswith('tokenizer.') or k == 'general.architecture':
            continue
        v = field_value(f)
        if v is None:
            continue
        if k == 'general.name' and name:
            v = name
        if k == arch + '.vocab_size':
            v = len(new_tokens)
        w.add_key_value(k, v, f.types[0])
    if name and 'general.name' not in fields:
        w.add_name(name)
    w.add_tokenizer_model(model)
    if pre:
        w.add_tokenizer_pre(pre)
    elif 'tokenizer.ggml.pre' in fields:
        w.add_tokenizer_pre(field_value(fields['tokenizer.ggml.pre']))
    w.add_token_list(new_tokens)
    w.add_token_types(new_types)
    if new_scores is not None:
        w.add_token_scores(new_scores)
    if kept_merges:
        w.add_token_merges(kept_merges)
    set_keys = set(k for k, _ in keys)
    for idk in ID_KEYS:
        k = 'tokenizer.ggml.%s_token_id' % idk
        if k in fields and k not in set_keys:
            old = field_value(fields[k])
            if old in new_id:
                w.add_uint32(k, new_id[old])
    for k in ('tokenizer.ggml.add_bos_token', 'tokenizer.ggml.add_eos_token',
              'tokenizer.ggml.add_space_prefix'):
        if k in fields and k not in set_keys:
            w.add_bool(k, bool(field_value(fields[k])))
    for k, v in keys:
        if v in ('true', 'false'):
            w.add_bool(k, v == 'true')
        else:
            w.add_uint32(k, new_tokens.index(v))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    w.close()
    print('%s: %d tokens, %d merges' % (out, len(new_tokens), len(kept_merges)))


if __name__ == '__main__':
    main()
