#!/usr/bin/python3
"""tools/bm25_ref.py: a plain reference BM25 over a BEIR-format set, written apart from hearth's
C code, to compare `hearth eval-retrieval` against.

Analysis (Lucene EnglishAnalyzer-like): words are runs of letters and digits (letters joined
across ' and ., digits across . and ,), a trailing possessive 's dropped, lower-cased, Lucene's 33
English stop words removed, then NLTK's Porter stemmer in its MARTIN_EXTENSIONS mode (Porter's
reference implementation; Debian's python3-nltk). Scoring is Lucene's BM25: idf = ln(1 + (N - n +
0.5) / (n + 0.5)), tf / (tf + k1 (1 - b + b dl / avgdl)), k1 0.9, b 0.4; a document is its title
and its text. Metrics as trec_eval computes them: nDCG@10 (gain = the qrels grade, log2 discount,
the ideal from every judged document with grade > 0), MAP over the top 100, recall@100.

    /usr/bin/python3 tools/bm25_ref.py --corpus C --queries Q --qrels R [--k1 0.9 --b 0.4]
    [--no-stem] [--keep-stop] [--run FILE]   (FILE: TREC run lines, for comparing rankings)
"""
import argparse
import json
import math
import re
import sys
from collections import Counter, defaultdict

from nltk.stem.porter import PorterStemmer

STOP = set("a an and are as at be but by for if in into is it no not of on or such that the their "
           "then there these they this to was will with".split())
WORD = re.compile(r"[^\W_]+(?:(?:['.\u2019](?=[^\W\d_])|[.,](?=\d))[^\W_]+)*|_+", re.UNICODE)


class Analyzer:
    def __init__(self, stem=True, stop=True):
        self.stemmer = PorterStemmer(mode=PorterStemmer.MARTIN_EXTENSIONS) if stem else None
        self.stop = stop
        self.cache = {}

    def __call__(self, text):
        out = []
        for w in WORD.findall(text):
            if len(w) >= 3 and w[-1] in "sS" and w[-2] in "'\u2019":
                w = w[:-2]
            w = w.lower()
            if self.stop and w in STOP:
                continue
            if self.stemmer:
                s = self.cache.get(w)
                if s is None:
                    s = self.cache[w] = self.stemmer.stem(w, to_lowercase=False) if len(w) > 2 else w
                w = s
            out.append(w)
        return out


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def read_qrels(path):
    qrels = defaultdict(dict)
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            p = line.rstrip("\n").split("\t")
            if i == 0 and p[0] == "query-id":
                continue
            qrels[p[0]][p[1]] = int(p[2])
    return qrels


def evaluate(run, qrels, k_ndcg=10, k_rec=100):
    """run: {qid: [docid, ...] best first}. Means over the queries that have judgements."""
    nd = mp = rc = 0.0
    n = 0
    for qid, rel in qrels.items():
        if not any(g > 0 for g in rel.values()):
            continue
        n += 1
        ranked = run.get(qid, [])
        dcg = sum(rel.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:k_ndcg]) if rel.get(d, 0) > 0)
        ideal = sorted((g for g in rel.values() if g > 0), reverse=True)[:k_ndcg]
        idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
        nd += dcg / idcg if idcg > 0 else 0
        nrel = sum(1 for g in rel.values() if g > 0)
        hits = 0
        ap = 0.0
        for i, d in enumerate(ranked[:k_rec]):
            if rel.get(d, 0) > 0:
                hits += 1
                ap += hits / (i + 1)
        mp += ap / nrel
        rc += hits / nrel
    return {"queries": n, "ndcg@10": nd / n, "map@100": mp / n, "recall@100": rc / n}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--queries", required=True)
    ap.add_argument("--qrels", required=True)
    ap.add_argument("--k1", type=float, default=0.9)
    ap.add_argument("--b", type=float, default=0.4)
    ap.add_argument("--no-stem", action="store_true")
    ap.add_argument("--keep-stop", action="store_true")
    ap.add_argument("--run")
    a = ap.parse_args()
    an = Analyzer(stem=not a.no_stem, stop=not a.keep_stop)

    ids, lens, postings = [], [], defaultdict(list)  # term -> [(doc index, tf)]
    for d in read_jsonl(a.corpus):
        terms = an((d.get("title") or "") + " " + (d.get("text") or ""))
        i = len(ids)
        ids.append(str(d["_id"]))
        lens.append(len(terms))
        for t, tf in Counter(terms).items():
            postings[t].append((i, tf))
    N = len(ids)
    avgdl = sum(lens) / N if N else 1.0
    qrels = read_qrels(a.qrels)
    run = {}
    out = open(a.run, "w") if a.run else None
    for q in read_jsonl(a.queries):
        qid = str(q["_id"])
        if qid not in qrels:
            continue
        scores = defaultdict(float)
        for t in an(q["text"]):  # a repeated query term counts once per occurrence, as in Lucene
            plist = postings.get(t)
            if not plist:
                continue
            idf = math.log(1 + (N - len(plist) + 0.5) / (len(plist) + 0.5))
            for i, tf in plist:
                scores[i] += idf * tf / (tf + a.k1 * (1 - a.b + a.b * lens[i] / avgdl))
        top = sorted(scores.items(), key=lambda x: (-x[1], x[0]))[:100]
        run[qid] = [ids[i] for i, _ in top]
        if out:
            for r, (i, s) in enumerate(top):
                out.write(f"{qid} Q0 {ids[i]} {r + 1} {s:.6f} bm25_ref\n")
    if out:
        out.close()
    m = evaluate(run, qrels)
    print(json.dumps({"documents": N, **m}))


if __name__ == "__main__":
    sys.exit(main())
