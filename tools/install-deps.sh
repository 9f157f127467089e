#!/usr/bin/env bash
# Installs the Debian 12 packages hearth needs to build, test and run its demo. Idempotent:
# packages already present are skipped, and apt-get runs only when something is missing.
# With --bench it also installs the peers `make bench` compares against (PyTorch, NumPy); with
# --fuzz, clang and libFuzzer for `make fuzz` (`make test` needs neither).
set -euo pipefail
pkgs=(
  build-essential          # gcc 12, make
  libopenblas-openmp-dev   # sgemm, the OpenMP build (shares threads with our OpenMP loops)
  libcmocka-dev            # the C test framework
  zlib1g-dev               # reads the gzip'd digits set
  python3-sklearn          # ships the 8x8 handwritten digits (hearth digits)
  fortunes                 # a real English text corpus for the demo
  libpcre2-dev             # PCRE2: the GPT-2 / cl100k pre-tokenizer regex (Unicode properties, JIT)
  libjansson-dev           # jansson: JSON for hearth prepare (JSONL inputs, prepare.json)
  libsqlite3-dev           # SQLite (WAL, FTS5): the vector store's records, metadata and BM25 index
  libmicrohttpd-dev        # HTTP server for hearth serve (OpenAI API, vector-store API, /metrics)
  libicu-dev               # ICU: Unicode categories, NFD and lower-casing for the WordPiece tokenizer (src/embed)
  nodejs                   # runs the npm reference tokenizers (parity tests, tokenizer benchmark)
  libmd4c-dev              # md4c: Markdown parsing for hearth ingest
  libxml2-dev              # libxml2: HTML (its HTML parser) and DOCX's XML for hearth ingest
  libpoppler-glib-dev      # poppler: PDF text, page by page, for hearth ingest
  libzip-dev               # libzip: DOCX files are zips
  groff-base ghostscript   # tests/cli/test_rag.sh makes its PDF with groff + ps2pdf
  python3-nltk             # tools/bm25_ref.py: NLTK's Porter stemmer (the reference BM25)
  openmpi-bin libopenmpi-dev # Open MPI: data-parallel hearth train under mpirun (src/dist)
  iproute2                 # ip netns / tc: tests/dist/test_netns.sh, bench/dist_tail.sh
)
for arg in "$@"; do
  case "$arg" in
    --bench)
      pkgs+=(python3-torch python3-numpy) # the PyTorch peer of bench/train_bench.sh (and tools/gen_fixtures.py)
      pkgs+=(python3-hnswlib python3-faiss dataset-fashion-mnist) # bench/ann_bench.sh: its peers and data
      pkgs+=(postgresql-doc-15) # bench/rag_bench.sh: a real HTML manual to ingest
      ;;
    --fuzz)
      pkgs+=(clang libclang-rt-dev libomp-dev) # make fuzz: clang, libFuzzer + sanitizer runtimes, OpenMP
      ;;
  esac
done
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# npm: nodesource's nodejs includes it; Debian's own nodejs needs the npm package.
if ! command -v npm > /dev/null; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends npm
fi
# The npm reference tokenizers (js-tiktoken, tiktoken, llama-tokenizer-js) pinned by
# package-lock.json, into node_modules/: only when it is missing or older than the lock file.
cd "$(dirname "$0")/.."
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "installing npm packages (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
fi
