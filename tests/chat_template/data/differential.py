#!/usr/bin/env python3
"""Differential check of the C++ chat template renderer against Python Jinja2 on random templates.

Two generators: random expressions and statements over a chat-like context (operators, filters, tests, methods,
slices, loops, macros, namespaces), and random whitespace-control layouts (text, newlines, tabs and CRLF
around tags with -/+ modifiers, comments, raw blocks). Each template is rendered by make_expected.render (Python
Jinja2 in transformers' environment) and by the chat_template_render tool; both succeeding with different text, or
only one of them failing, is reported. Known, documented differences are skipped: Jinja prints generator objects
with an address, reports errors inside a generator filter only when it is consumed, and folds slices of literal
numbers to Undefined.

  python3 differential.py BUILD/tests/chat_template/chat_template_render [--seed N] [--count N] [--whitespace]
"""

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_expected as me  # noqa: E402

R = random.Random(0)
warnings.filterwarnings("ignore", category=SyntaxWarning)  # Jinja compiling slices of literals

CTX = {
    "messages": [
        {"role": "system", "content": "Sys é"},
        {"role": "user", "content": "  Hello <think>x</think> world  "},
        {"role": "assistant", "content": "Ans\n\nwith lines", "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1, "b": "two"}}}]},
        {"role": "tool", "content": "42"},
    ],
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}}}}],
    "n": 3, "fl": 2.5, "neg": -4, "s": "Héllo, Wörld", "e": "", "l": [3, 1, 2, 1], "ls": ["b", "A", "c"],
    "d": {"b": 2, "a": 1, "z": None}, "t": True, "f": False, "nn": None,
    "users": [{"name": "x", "age": 3}, {"name": "Y", "age": 1}],
}

STR_LITS = ["'a'", "'ab,c'", "\"q'uote\"", "'  sp  '", "'héé'", "''", "'A-b c'", "'\\n'", "'1'", "'2.5'", "'x</think>y'"]
NUM_LITS = ["0", "1", "2", "-3", "7", "1.5", "0.1", "-2.5", "10"]
VARS = ["n", "fl", "neg", "s", "e", "l", "ls", "d", "t", "f", "nn", "users", "messages", "tools", "missing"]
FILTERS0 = ["length", "upper", "lower", "title", "capitalize", "trim", "first", "last", "list", "string", "int",
            "float", "abs", "round", "sort", "reverse", "unique", "sum", "min", "max", "tojson", "items", "dictsort",
            "count", "escape", "safe", "wordcount", "join", "select", "reject", "length"]
TESTS = ["defined", "undefined", "none", "string", "number", "integer", "float", "mapping", "iterable", "sequence",
         "odd", "even", "true", "false", "boolean", "lower", "upper", "callable"]
METHODS = ["strip()", "upper()", "lower()", "split()", "split(',')", "startswith('H')", "endswith('d')",
           "replace('l', 'L')", "find('l')", "count('l')", "title()", "lstrip('H')", "rstrip('d')", "splitlines()",
           "items()", "keys()", "values()", "get('a')", "get('q', 5)", "index(1)", "format(1, 2)", "isdigit()", "join(['x', 'y'])"]

def lit(depth):
    c = R.random()
    if c < 0.35: return R.choice(STR_LITS)
    if c < 0.65: return R.choice(NUM_LITS)
    if c < 0.75: return R.choice(["true", "false", "none"])
    if c < 0.88 and depth > 0: return "[" + ", ".join(expr(depth - 1) for _ in range(R.randint(0, 3))) + "]"
    if depth > 0: return "{" + ", ".join("%s: %s" % (R.choice(STR_LITS), expr(depth - 1)) for _ in range(R.randint(0, 2))) + "}"
    return R.choice(STR_LITS)

def primary(depth):
    c = R.random()
    if c < 0.45: return lit(depth)
    if c < 0.85: return R.choice(VARS)
    return "(" + expr(depth - 1 if depth else 0) + ")"

def postfix(e, depth):
    c = R.random()
    if c < 0.15: return e + "." + R.choice(["role", "content", "name", "a", "b", "0", "function", "x"])
    if c < 0.25: return e + "[" + R.choice(["0", "-1", "1", "'a'", "'role'", "n"]) + "]"
    if c < 0.33: return e + "[" + R.choice(["1:", ":2", "::-1", "-2:", "1:3", "::2"]) + "]"
    if c < 0.45: return e + "." + R.choice(METHODS)
    return e

def filt(e, depth):
    c = R.random()
    if c < 0.5: return e + " | " + R.choice(FILTERS0)
    if c < 0.6: return e + " | join(" + R.choice(["', '", "'-'"]) + ")"
    if c < 0.65: return e + " | default(" + lit(0) + ")"
    if c < 0.7: return e + " | replace(" + R.choice(STR_LITS) + ", " + R.choice(STR_LITS) + ")"
    if c < 0.75: return e + " | map(" + R.choice(["'upper'", "attribute='name'", "'length'", "'string'"]) + ") | list"
    if c < 0.8: return e + " | select(" + R.choice(["'odd'", "'string'", "'>', 1", "'defined'"]) + ") | list"
    if c < 0.85: return e + " | tojson(" + R.choice(["indent=2", "sort_keys=true", "ensure_ascii=true", "separators=(',', ':')"]) + ")"
    if c < 0.9: return e + " | sort(" + R.choice(["reverse=true", "attribute='age'", "case_sensitive=true"]) + ")"
    if c < 0.95: return e + " | indent(" + R.choice(["2", "2, true", "'>'"]) + ")"
    return e + " | batch(2) | list"

def expr(depth):
    if depth <= 0:
        e = primary(0)
        return postfix(e, 0)
    c = R.random()
    if c < 0.25:
        e = postfix(primary(depth), depth)
        if R.random() < 0.5: e = filt(e, depth)
        return e
    if c < 0.5:
        op = R.choice(["+", "-", "*", "/", "//", "%", "~", "==", "!=", "<", ">=", "in", "not in", "and", "or", "**"])
        return "%s %s %s" % (expr(depth - 1), op, expr(depth - 1))
    if c < 0.6: return "not " + expr(depth - 1)
    if c < 0.7: return "%s is %s%s" % (postfix(primary(depth - 1), depth), R.choice(["", "not "]), R.choice(TESTS))
    if c < 0.8: return "%s if %s else %s" % (expr(depth - 1), expr(depth - 1), expr(depth - 1))
    if c < 0.9: return filt(postfix(primary(depth - 1), depth), depth)
    return "-" + primary(depth - 1)

def stmt(depth):
    c = R.random()
    if c < 0.4 or depth <= 0: return "{{ " + expr(2) + " }}"
    if c < 0.55: return "{%% if %s %%}%s{%% else %%}%s{%% endif %%}" % (expr(2), body(depth - 1), body(depth - 1))
    if c < 0.7:
        return "{%% for x in %s %%}[{{ x }}|{{ loop.index }}]%s{%% else %%}E{%% endfor %%}" % (R.choice(VARS + ["range(3)", "'ab'"]), body(depth - 1))
    if c < 0.8: return "{%% set v = %s %%}{{ v }}" % expr(2)
    if c < 0.9: return "{%% set ns = namespace(c=0) %%}{%% for x in %s %%}{%% set ns.c = ns.c + 1 %%}{%% endfor %%}{{ ns.c }}" % R.choice(VARS)
    return "{%% macro mm(a, b=%s) %%}<{{ a }}|{{ b }}>{%% endmacro %%}{{ mm(%s) }}" % (lit(1), expr(1))

def body(depth):
    return "".join(R.choice(["", " ", "\n", "  x\n"]) + stmt(depth) for _ in range(R.randint(1, 3)))

def ws(): return "".join(R.choice([" ", "\n", "\t", "", "", "x", "  ", "\n  ", "\r\n", "y\n"]) for _ in range(R.randint(0, 4)))
def mod(): return R.choice(["", "", "-", "+"])
def tag(kind, inner):
    if kind == "v": return "{{" + mod().replace("+", "") + " " + inner + " " + mod().replace("+", "") + "}}"
    if kind == "c": return "{#" + mod() + " " + inner + " " + mod() + "#}"
    return "{%" + mod() + " " + inner + " " + mod() + "%}"
def ws_piece(d):
    c = R.random()
    if c < 0.25 or d == 0: return ws() + tag("v", R.choice(["1", "'a'", "n", "' s '"])) + ws()
    if c < 0.4: return ws() + tag("c", "note") + ws()
    if c < 0.55: return ws() + tag("b", "if n") + ws_body(d - 1) + tag("b", "else") + ws_body(d - 1) + tag("b", "endif") + ws()
    if c < 0.7: return ws() + tag("b", "for i in [1, 2]") + ws_body(d - 1) + tag("b", "endfor") + ws()
    if c < 0.8: return ws() + tag("b", "set q = 3") + ws()
    if c < 0.9: return ws() + tag("b", "raw") + ws() + "{{ x }}" + ws() + tag("b", "endraw") + ws()
    return ws() + tag("b", "macro m()") + ws_body(d - 1) + tag("b", "endmacro") + ws() + tag("v", "m()") + ws()
def ws_body(d): return "".join(ws_piece(d) for _ in range(R.randint(1, 3)))

KNOWN = ("generator object", "reversed object", "reverseiterator", "reversekeyiterator")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--count", type=int, default=300)
    ap.add_argument("--whitespace", action="store_true", help="whitespace-control layouts instead of expressions")
    a = ap.parse_args()
    R.seed(a.seed)
    ctx = {"n": 1} if a.whitespace else CTX
    tmp = tempfile.mkdtemp()
    cpath = os.path.join(tmp, "c.json")
    with open(cpath, "w") as f:
        json.dump(ctx, f)
    same = differ = 0
    for _ in range(a.count):
        t = ws_body(2) if a.whitespace else body(2)
        py = me.render(t, json.loads(json.dumps(ctx)))
        tpath = os.path.join(tmp, "t.jinja")
        with open(tpath, "w", encoding="utf-8", newline="") as f:
            f.write(t)
        r = subprocess.run([a.binary, tpath, cpath, me.NOW.strftime("%Y-%m-%d-%H-%M-%S")], capture_output=True)
        got = r.stdout.decode("utf-8", "replace")
        if "output" in py and r.returncode == 0 and got == py["output"]:
            same += 1
            continue
        if "error" in py and r.returncode != 0:
            same += 1
            continue
        if "output" in py and any(k in py["output"] for k in KNOWN):
            continue
        if "output" in py and r.returncode != 0 and "object is not subscriptable" in got:
            continue  # Jinja's constant folding of literal slices
        differ += 1
        print("DIFF %r\n  python: %r\n  c++:    %r" % (t, py.get("output", py.get("error")), got))
    print("%d templates: %d agree, %d differ" % (a.count, same, differ))
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
