#!/usr/bin/env python3
"""`mmfp4 tokenize` / `detokenize` end to end: every reference string of the four real tokenizers, through the JSONL
batch mode (with and without special tokens), must give the reference ids; a sample goes through -p --ids-only
and detokenize; a malformed JSONL line is an error naming its line. Usage: cli_check.py MMFP4_BINARY SHARED_DIR"""
import json, subprocess, sys

mmfp4, shared = sys.argv[1], sys.argv[2]
refs = json.load(open(shared + "/fixtures/tokenizers/token_refs_public.json"))
failures = 0
checks = 0


def run(args, stdin=None):
    return subprocess.run([mmfp4] + args, input=stdin, capture_output=True, text=True)


for name, cases in refs.items():
    d = "%s/fixtures/tokenizers/%s" % (shared, name)
    lines = "".join(json.dumps(e["text"], ensure_ascii=False) + "\n" for e in cases)
    for flag, key in (([], "ids_with_special"), (["--no-special"], "ids")):
        checks += 1
        p = run(["tokenize", "-m", d, "--input-jsonl", "-"] + flag, lines)
        got = [json.loads(l) for l in p.stdout.splitlines()]
        want = [e[key] for e in cases]
        if p.returncode != 0 or got != want:
            failures += 1
            print("FAIL %s %s: rc %d, %d of %d lines differ %s" % (name, key, p.returncode,
                  sum(a != b for a, b in zip(got, want)) + abs(len(got) - len(want)), len(want), p.stderr[:200]))
    for e in cases[:5]:
        checks += 1
        p = run(["tokenize", "-m", d, "-p", e["text"], "--ids-only"])
        ids = [int(x) for x in p.stdout.strip().split(",") if x]
        q = run(["detokenize", "-m", d, "--ids", ",".join(map(str, e["ids"])), "--json"])
        if ids != e["ids_with_special"] or json.loads(q.stdout) != e["decoded"]:
            failures += 1
            print("FAIL %s -p/detokenize: %r" % (name, e["text"][:40]))
    checks += 1
    p = run(["tokenize", "-m", d, "--input-jsonl", "-"], '"fine"\n[1, 2]\n')
    if p.returncode == 0 or "-:2" not in p.stderr:
        failures += 1
        print("FAIL %s: malformed line not reported: %r" % (name, p.stderr))

print("%d passed, %d failed" % (checks - failures, failures))
sys.exit(1 if failures else 0)
