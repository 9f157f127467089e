#!/usr/bin/python3
"""tools/porter_ref.py: Porter stemmer reference pairs for tests/vstore/porter_sample.tsv.

NLTK's PorterStemmer in MARTIN_EXTENSIONS mode is Porter's reference implementation (the one
that produced his published voc.txt / output.txt pairs, with its two departures from the paper:
-bli -> -ble and -logi -> -log). The vocabulary is every distinct lower-case ASCII word of the
texts given (the sample was recorded from the Cranfield and CISI corpora); every STEP-th word in
sorted order is written as "word<TAB>stem".

    /usr/bin/python3 tools/porter_ref.py --step 13 ../shared/data/ir/cranfield/corpus.jsonl \\
        ../shared/data/ir/cisi/corpus.jsonl > tests/vstore/porter_sample.tsv
"""
import argparse
import re

from nltk.stem.porter import PorterStemmer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--step", type=int, default=13)
    ap.add_argument("files", nargs="+")
    a = ap.parse_args()
    words = set()
    for f in a.files:
        with open(f, encoding="utf-8") as fh:
            words.update(re.findall(r"[a-z]+", fh.read().lower()))
    p = PorterStemmer(mode=PorterStemmer.MARTIN_EXTENSIONS)
    for w in sorted(words)[:: a.step]:
        print(f"{w}\t{p.stem(w, to_lowercase=False) if len(w) > 2 else w}")


if __name__ == "__main__":
    main()
