#!/usr/bin/env bash
# tests/cli/test_chat.sh: `hearth chat` driven through a pipe, on a tiny byte-level run trained
# here, greedy so every answer is reproducible: the history is what the template renders
# (/history), /clear forgets it (the next answer is the one a fresh chat gives), the oldest
# turns go with a note when the context is full, the system prompt stays, /commands, and bad
# input (clear message, exit 2 for usage).
# Usage: test_chat.sh PATH/TO/hearth
set -u
H=${1:?usage: test_chat.sh path/to/hearth}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
export OMP_NUM_THREADS=2

for i in $(seq 200); do printf 'User: hello %d\nAssistant: hi there %d\n' $((i % 5)) $((i % 3)); done > "$T/c.txt"
"$H" train --data "$T/c.txt" --out "$T/run" --steps 20 --batch 4 --seq 64 --ckpt-every 20 --sample 0 \
  > "$T/train.log" 2>&1 || { echo "setup failed: $(tail -3 "$T/train.log")"; exit 1; }

C=(chat -m "$T/run" -n 8 --temperature 0 -t 2)
# chat INPUT NAME [ARGS...]: runs the chat on INPUT (printf format), stdout to $T/out; exit 0 wanted
chat() {
  local input=$1 name=$2; shift 2
  printf "$input" | "$H" "${C[@]}" "$@" > "$T/out" 2> "$T/err" || { bad "$name: exit $?: $(cat "$T/err")"; return 1; }
}
# same FILE_A FILE_B NAME: the files are byte-identical
same() { cmp -s "$1" "$2" && ok || bad "$3: '$(cat "$1")' vs '$(cat "$2")'"; }

# one turn: the answer and a newline on stdout, the banner on stderr; end of input ends the chat
chat 'hello\n' "one turn" && cp "$T/out" "$T/a1" &&
  { grep -q "template hearth, context 128 tokens" "$T/err" && [ -s "$T/a1" ] && ok || bad "one turn: $(cat "$T/err")"; }
# /history: the conversation as the template renders it, the answer as it was streamed
chat 'hello\n/history\n' "history" &&
  { python3 - "$T/a1" "$T/out" << 'EOF' && ok || bad "history: $(cat "$T/out")"
import sys
a = open(sys.argv[1]).read()[:-1]           # the answer, without the newline after it
want = a + "\n" + "User: hello\nAssistant: " + a + "\n"
sys.exit(open(sys.argv[2]).read() != want)
EOF
  }
# two turns: both in the history, in order
chat 'hello\nhi\n/history\n' "two turns" &&
  { grep -q "^User: hello$" "$T/out" && grep -q "^User: hi$" "$T/out" &&
    [ "$(grep -n '^User: ' "$T/out" | cut -d: -f1 | head -1)" -lt "$(grep -n '^User: hi$' "$T/out" | cut -d: -f1)" ] &&
    ok || bad "two turns: $(cat "$T/out")"; }
# /clear forgets: the answer after it is the one a fresh chat gives; /history after /clear is empty
chat 'hi\n' "fresh" && cp "$T/out" "$T/fresh"
chat 'hello\n/clear\n/history\nhi\n' "clear" &&
  { grep -q "conversation is cleared" "$T/err" && ok || bad "clear: no note: $(cat "$T/err")"
    tail -c "$(wc -c < "$T/fresh")" "$T/out" > "$T/after"; same "$T/after" "$T/fresh" "answer after /clear"
    [ "$(wc -c < "$T/out")" -eq $(( $(wc -c < "$T/a1") + $(wc -c < "$T/fresh") )) ] && ok ||
      bad "/history after /clear printed something: $(cat "$T/out")"; }
# /bye and /quit end the chat: what follows is not read
chat 'hello\n/bye\nhi\n/history\n' "bye" && { same "$T/out" "$T/a1" "/bye"; }
chat 'hello\n/quit\nhi\n' "quit" && { same "$T/out" "$T/a1" "/quit"; }
# /help lists the commands; an unknown one is named; //text sends /text
chat '/help\n' "help" && { grep -q "/clear" "$T/out" && grep -q "/bye" "$T/out" && ok || bad "/help: $(cat "$T/out")"; }
chat '/frob\n' "unknown command" && { grep -q "unknown command '/frob'" "$T/err" && ok || bad "/frob: $(cat "$T/err")"; }
chat '//frob\n/history\n' "escaped slash" && { grep -q "^User: /frob$" "$T/out" && ok || bad "//frob: $(cat "$T/out")"; }
# a system prompt comes first and survives /clear
chat 'hello\n/clear\n/history\n' "system" --system "be brief" &&
  { [ "$(tail -1 "$T/out")" = "Assistant:" ] && grep -q "^System: be brief$" "$T/out" && ! grep -q "User: hello" "$T/out" &&
    ok || bad "system prompt: $(cat "$T/out")"; }
# another template by name
chat 'hello\n/history\n' "chatml" --chat-template chatml &&
  { grep -q "template chatml" "$T/err" && grep -q "^<|im_start|>user$" "$T/out" && grep -q "^hello<|im_end|>$" "$T/out" &&
    ok || bad "chatml: $(cat "$T/out")"; }
# a full context: the oldest turns go, with a note, and the chat goes on
chat 'hello 1\nhello 2\nhello 3\nhello 4\nhello 5\n/history\n' "context full" -c 48 &&
  { grep -q "no longer fits the context (48 tokens): its oldest 2 messages were dropped" "$T/err" &&
    ! grep -q "^User: hello 1$" "$T/out" && grep -q "^User: hello 5$" "$T/out" && ok ||
    bad "context full: $(cat "$T/err") / $(cat "$T/out")"; }
# a message longer than the whole context is refused, and the chat goes on
long=$(printf 'hello %.0s' $(seq 30))
chat "$long\nhello\n" "too long" -c 32 &&
  { grep -q "that message is too long: the prompt is [0-9]* tokens and the context holds 32" "$T/err" && [ -s "$T/out" ] &&
    ok || bad "too long: $(cat "$T/err")"; }

# bad input: usage errors exit 2, a model that does not load exits 1
expect_fail() {
  local name=$1 want=$2 pat=$3; shift 3
  echo hi | "$H" "$@" > "$T/out" 2> "$T/err"; local st=$?
  [ $st -eq "$want" ] && grep -qE -- "$pat" "$T/err" && ok || bad "$name: exit $st, stderr: $(cat "$T/err")"
}
expect_fail "no model" 2 "--model PATH is required" chat
expect_fail "bad template" 2 "unknown chat template 'alpaca'" chat -m "$T/run" --chat-template alpaca
expect_fail "stray argument" 2 "unexpected argument 'hello'" chat -m "$T/run" hello
expect_fail "bad max-tokens" 2 "--max-tokens must be an integer in \[0, 16777216\], got 'x'" chat -m "$T/run" -n x
expect_fail "text as model" 1 "c.txt is a text file, not a model" chat -m "$T/c.txt"

echo "test_chat: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
