#!/usr/bin/env python3
"""Expected outputs for the chat template tests, rendered by Python Jinja2 the way transformers does it.

transformers' apply_chat_template (utils/chat_template_utils.py) compiles templates in an
ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols]) (plus its
{% generation %} tracker), replaces the tojson filter with json.dumps(x, ensure_ascii=False, indent=indent,
separators=separators, sort_keys=sort_keys), adds the globals raise_exception(msg) and strftime_now(fmt), and
renders with messages=..., tools=..., documents=..., add_generation_prompt=... and the remaining kwargs
(special tokens, enable_thinking...). This script rebuilds that environment, pins strftime_now to NOW so the
expected strings are stable (the C++ tests pin the same clock), and writes:

  expected_templates.json  the real templates of templates/ x the conversations below
  expected_semantics.json  small templates covering each feature, including the error cases

Usage: python3 make_expected.py            (needs jinja2 >= 3.1; writes next to this file)
       python3 make_expected.py --compare BUILD/tests/chat_template/chat_template_render
                                           (renders every case with the C++ tool and lists differences)
"""

import json
import os
import subprocess
import sys
import tempfile
from datetime import datetime

import jinja2
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = os.path.dirname(os.path.abspath(__file__))
NOW = datetime(2025, 3, 7, 9, 5, 3)  # a Friday; pinned for strftime_now


class GenerationTag(Extension):
    """transformers' AssistantTracker without the index tracking: {% generation %}body{% endgeneration %}."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def make_env():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format):
        return NOW.strftime(format)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[GenerationTag, loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


ENV = make_env()


def render(template, context):
    """Returns {"output": text} or {"error": {"type", "message"}} (raise_exception keeps its message)."""
    ctx = dict(context)
    # apply_chat_template always passes these three.
    ctx.setdefault("tools", None)
    ctx.setdefault("documents", None)
    ctx.setdefault("add_generation_prompt", False)
    try:
        return {"output": ENV.from_string(template).render(**ctx)}
    except jinja2.exceptions.TemplateSyntaxError as e:
        return {"error": {"type": "syntax", "message": str(e), "line": e.lineno}}
    except jinja2.exceptions.TemplateError as e:
        kind = "raised" if type(e) is jinja2.exceptions.TemplateError else "runtime"
        return {"error": {"type": kind, "message": str(e)}}
    except Exception as e:  # TypeError, ValueError, ZeroDivisionError... raised while rendering
        return {"error": {"type": "runtime", "message": "%s: %s" % (type(e).__name__, e)}}


# ---------------------------------------------------------------------------------------------------------------
# Real templates x conversations
# ---------------------------------------------------------------------------------------------------------------

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the current weather in a city — °C or °F",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "description": "City name, e.g. \"Zürich\""},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                    "days": {"type": "integer", "minimum": 1, "maximum": 7.5},
                },
                "required": ["city"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "search",
            "description": "Search the web",
            "parameters": {"type": "object", "properties": {"query": {"type": "string"}, "top_k": {"type": "integer"}}},
        },
    },
]

SYSTEM = {"role": "system", "content": "You are a helpful assistant."}

CONVERSATIONS = {
    "single_user": {"messages": [{"role": "user", "content": "Hello!"}], "add_generation_prompt": True},
    "single_user_no_prompt": {"messages": [{"role": "user", "content": "Hello!"}], "add_generation_prompt": False},
    "system_user": {
        "messages": [SYSTEM, {"role": "user", "content": "What is 2 + 2?"}],
        "add_generation_prompt": True,
    },
    "multi_turn": {
        "messages": [
            SYSTEM,
            {"role": "user", "content": "Hi there"},
            {"role": "assistant", "content": "Hello! How can I help?"},
            {"role": "user", "content": "  Tell me a joke.  "},
        ],
        "add_generation_prompt": True,
    },
    "multi_turn_no_prompt": {
        "messages": [
            {"role": "user", "content": "Hi there"},
            {"role": "assistant", "content": "Hello! How can I help?"},
            {"role": "user", "content": "Thanks"},
            {"role": "assistant", "content": "You're welcome."},
        ],
        "add_generation_prompt": False,
    },
    "unicode": {
        "messages": [
            {"role": "system", "content": "Réponds en français. 日本語もOK 🎉"},
            {"role": "user", "content": "Quote \"this\" and 'that', a \\ backslash,\ttab\nnew line <b>&amp;</b>"},
            {"role": "assistant", "content": "D'accord — «ok» ✓"},
            {"role": "user", "content": "Ünïcödé?"},
        ],
        "add_generation_prompt": True,
    },
    "thinking_history": {
        "messages": [
            {"role": "user", "content": "Compute 3*7."},
            {"role": "assistant", "content": "<think>\n3*7 = 21.\n</think>\n\nIt is 21."},
            {"role": "user", "content": "And 4*5?"},
        ],
        "add_generation_prompt": True,
    },
    "thinking_last_assistant": {
        "messages": [
            {"role": "user", "content": "Compute 3*7."},
            {"role": "assistant", "content": "It is 21.", "reasoning_content": "Multiply: 3*7 = 21."},
        ],
        "add_generation_prompt": False,
    },
    "thinking_off": {
        "messages": [SYSTEM, {"role": "user", "content": "Quick answer please."}],
        "add_generation_prompt": True,
        "enable_thinking": False,
    },
    "thinking_on": {
        "messages": [SYSTEM, {"role": "user", "content": "Think hard."}],
        "add_generation_prompt": True,
        "enable_thinking": True,
    },
    "tools_call": {
        "messages": [
            SYSTEM,
            {"role": "user", "content": "What's the weather in Zürich?"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": {"city": "Zürich", "unit": "celsius", "days": 2}},
                    }
                ],
            },
            {"role": "tool", "content": "{\"temperature\": 21.5, \"sky\": \"clear\"}"},
            {"role": "assistant", "content": "It is 21.5 °C and clear."},
            {"role": "user", "content": "Thanks!"},
        ],
        "tools": TOOLS,
        "add_generation_prompt": True,
    },
    "tools_parallel_calls": {
        "messages": [
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {
                "role": "assistant",
                "content": "Let me check both.",
                "tool_calls": [
                    {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
                    {"type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Rome\"}"}},
                ],
            },
            {"role": "tool", "content": "18"},
            {"role": "tool", "content": "24"},
        ],
        "tools": TOOLS,
        "add_generation_prompt": True,
    },
    "tools_no_call": {
        "messages": [{"role": "user", "content": "Search for jinja templates"}],
        "tools": TOOLS,
        "add_generation_prompt": True,
    },
    "tools_in_system_prompt": {
        "messages": [SYSTEM, {"role": "user", "content": "Search for jinja"}],
        "tools": TOOLS,
        "tools_in_user_message": False,
        "add_generation_prompt": True,
    },
    "deepseek_tool_call": {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "system", "content": "Use tools."},
            {"role": "user", "content": "Weather in Oslo?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}},
                    {"type": "function", "function": {"name": "search", "arguments": "{\"query\": \"Oslo\"}"}},
                ],
            },
            {"role": "tool", "content": "-3"},
            {"role": "tool", "content": "snow"},
            {"role": "assistant", "content": "Cold and snowy."},
        ],
        "add_generation_prompt": True,
    },
    "builtin_tools": {
        "messages": [
            {"role": "system", "content": "You search."},
            {"role": "user", "content": "Who won?"},
            {
                "role": "assistant",
                "tool_calls": [
                    {"type": "function", "function": {"name": "brave_search", "arguments": {"query": "who won"}}}
                ],
            },
            {"role": "ipython", "content": {"result": "Team A"}},
        ],
        "builtin_tools": ["brave_search", "wolfram_alpha", "code_interpreter"],
        "add_generation_prompt": True,
    },
    "date_string": {
        "messages": [{"role": "user", "content": "What day is it?"}],
        "date_string": "01 Jan 2030",
        "add_generation_prompt": True,
    },
    "multimodal_parts": {
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Describe "}, {"type": "image"}, {"type": "text", "text": "this."}]},
            {"role": "assistant", "content": "A cat."},
        ],
        "add_generation_prompt": False,
    },
    "clear_thinking_false": {
        "messages": [
            {"role": "user", "content": "Q1"},
            {"role": "assistant", "content": "A1", "reasoning_content": "R1"},
            {"role": "user", "content": "Q2"},
            {"role": "assistant", "content": "A2", "reasoning_content": "R2"},
        ],
        "clear_thinking": False,
        "add_generation_prompt": False,
    },
    # Error paths: the template's raise_exception, or a Python error, must be an error in C++ too.
    "tools_without_user": {"messages": [SYSTEM], "tools": TOOLS, "add_generation_prompt": True},
    "two_tool_calls_llama": {
        "messages": [
            {"role": "user", "content": "x"},
            {
                "role": "assistant",
                "tool_calls": [
                    {"type": "function", "function": {"name": "a", "arguments": {}}},
                    {"type": "function", "function": {"name": "b", "arguments": {}}},
                ],
            },
        ],
        "add_generation_prompt": False,
    },
}

TOKENS = {
    "qwen3": {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
    "deepseek_v3": {"bos_token": "<｜begin▁of▁sentence｜>", "eos_token": "<｜end▁of▁sentence｜>"},
    "llama3_fixture": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
    "llama3_1_instruct": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
    "llama3_2_instruct": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
    "glm4_6": {"eos_token": "<|endoftext|>"},
    "glm4_7": {"eos_token": "<|endoftext|>"},
    "chatml": {"eos_token": "<|im_end|>"},
}


def template_cases():
    cases = []
    for tname in sorted(TOKENS):
        with open(os.path.join(HERE, "templates", tname + ".jinja"), encoding="utf-8") as f:
            template = f.read()
        for cname, conv in CONVERSATIONS.items():
            context = dict(TOKENS[tname])
            context.update(conv)
            case = {"template": tname, "conversation": cname, "context": context}
            case.update(render(template, context))
            cases.append(case)
    return cases


# ---------------------------------------------------------------------------------------------------------------
# Feature cases: (name, template, context)
# ---------------------------------------------------------------------------------------------------------------

DATA = {
    "d": {"a": 1, "b": "two", "items": 3, "nested": {"x": [1, 2, {"y": "deep"}]}},
    "l": [3, 1, 2],
    "s": "Hello, World",
    "users": [
        {"name": "carol", "role": "admin", "active": True, "age": 35},
        {"name": "Alice", "role": "user", "active": False, "age": 30},
        {"name": "bob", "role": "admin", "active": True, "age": 25},
    ],
    "tree": [
        {"name": "a", "children": [{"name": "b", "children": []}, {"name": "c", "children": [{"name": "d", "children": []}]}]},
        {"name": "e", "children": []},
    ],
    "x": {
        "name": "t\u00e9st \"q\" \\ \n\t\u0001\u007f 😀",
        "n": [1, 2.0, 0.1, 1e-07, 2.5e20, -0.0, True, False, None],
        "empty": [[], {}],
        "nested": {"b": 1, "a": [1, {"z": None}]},
    },
    "t": True,
    "f": False,
    "n": None,
    "zero": 0,
    "big": 9007199254740993,
    "neg": -7,
    "pi": 3.14159,
}

SEMANTIC_CASES = [
    # --- whitespace control and lexing ---
    ("ws_plain_tags", "a  {% if true %}  b  {% endif %}  c", {}),
    ("ws_lines", "line1\n  {% if true %}\n  x\n  {% endif %}\nline2\n", {}),
    ("ws_minus", "a  {%- if true -%}  x  {%- endif -%}  b", {}),
    ("ws_var_minus", "p  {{- 'x' -}}  q\n  {{- 'y' }}  \n", {}),
    ("ws_comment", "a\n{# comment #}\nb\n  {# indented #}\nc {#- strip -#}   d", {}),
    ("ws_raw", "a  {% raw %}\n  {{ x }} {% if %}  {% endraw %}\nb", {}),
    ("ws_raw_minus", "  {% raw -%}  x  {%- endraw %}  \nb", {}),
    ("ws_crlf", "a\r\nb\r\n{% if true %}\r\nc{% endif %}\r\n\r\n", {}),
    ("ws_trailing_newline", "x\n", {}),
    ("ws_two_trailing_newlines", "x\n\n", {}),
    ("ws_plus", "a\n{% if true +%}\nkeep{% endif %}\n  {%+ if true %}x{% endif %}", {}),
    ("ws_tabs", "\t{% if true %}\n\tx\n\t{% endif %}\n", {}),
    ("ws_var_not_lstripped", "  {{ 1 }}  \n  {{ 2 }}\n", {}),
    ("ws_nested", "{% for i in [1, 2] %}\n  {% if i %}\n    {{ i }}\n  {% endif %}\n{% endfor %}\n", {}),
    ("ws_block_midline", "a {% if true %}b{% endif %} c\n  d {% if true %}\n  e\n{% endif %}", {}),
    ("lex_braces_balance", "{{ {'a': {'b': 1}} }}|{{ [[1]] }}", {}),
    ("lex_escapes", "{{ 'a\\nb\\tc\\x41\\u00e9\\U0001F600\\\\\\'\\\"' }}|{{ \"\\q\\d\" }}|{{ '\\101' }}", {}),
    ("lex_adjacent_strings", "{{ 'a' \"b\" 'c' }}", {}),
    ("lex_numbers", "{{ 1_000 }} {{ 0x1F }} {{ 0b101 }} {{ 0o17 }} {{ 1.5e3 }} {{ 2E-3 }} {{ 12.5 }}", {}),
    ("lex_constants", "{{ none }} {{ None }} {{ true }} {{ True }} {{ false }} {{ False }}", {}),
    ("lex_int_after_dot", "{{ m.0.1 }}|{{ m.0.1.0 }}|{{ m[0][1] }}|{{ 0.5 }}", {"m": [["a", ["b"]]]}),
    ("lex_multiline_tag", "{{\n  1 +\n  2\n}}|{%\n if true\n%}y{% endif %}", {}),
    ("lex_opener_at_end", "a{#", {}),
    ("lex_raw_at_end", "a{% raw %}", {}),
    ("lex_string_with_tags", "{{ '{{ x }}' }}{{ \"{% if %}\" }}{{ '#}' }}", {}),
    # --- expressions ---
    ("arith_ints", "{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ 2 ** 10 }} {{ 2 ** 3 ** 2 }}", {}),
    ("arith_floats", "{{ 7 / 2 }} {{ 2 ** -2 }} {{ 1.5 + 1 }} {{ 0.1 + 0.2 }} {{ 10 / 4 }} {{ 3.0 }} {{ -0.0 }} {{ 7.5 // 2 }} {{ -7.5 % 2 }} {{ 1 / 3 }}", {}),
    ("float_repr", "{{ 1.0 }} {{ 100.0 }} {{ 1e16 }} {{ 1e15 }} {{ 1e-5 }} {{ 0.0001 }} {{ 123456789.123 }} {{ 1e100 }} {{ 1.5e-10 }} {{ 2.5e20 }}", {}),
    ("neg_pow", "{{ - 2 ** 2 }} {{ -(2 ** 2) }} {{ -neg }} {{ +neg }} {{ -pi }}", DATA),
    ("concat_ops", "{{ 'ab' + 'cd' }} {{ 'ab' * 3 }} {{ 3 * 'x' }} {{ [1] + [2] }} {{ [0] * 3 }} {{ (1,) + (2,) }} {{ 'x' * 0 }} {{ 'x' * -1 }}", {}),
    ("tilde", "{{ 1 ~ 2 ~ none ~ true ~ 1.5 ~ [1] ~ missing ~ 'z' }}", {}),
    ("compare_chain", "{{ 1 < 2 < 3 }} {{ 1 < 3 < 2 }} {{ 'a' < 'b' }} {{ 'B' < 'a' }} {{ [1, 2] < [1, 3] }} {{ [1] < [1, 0] }} {{ 1 == 1.0 }} {{ 1 == true }} {{ 'a' != 'b' }} {{ none == none }} {{ 2 >= 2 }} {{ 2 <= 1 }} {{ (1, 2) == [1, 2] }}", {}),
    ("compare_unicode", "{{ 'é' > 'z' }} {{ 'ａ' > 'é' }} {{ ['b', 'é', 'a', 'Z'] | sort }}", {}),
    ("in_ops", "{{ 'a' in 'cat' }} {{ 2 in [1, 2] }} {{ 'k' in {'k': 1} }} {{ 'z' not in 'abc' }} {{ 3 not in [1] }} {{ '' in 'x' }} {{ 1 in (1, 2) }} {{ 'a' in ['a'] }}", {}),
    ("logic_values", "{{ 0 or 'x' }} {{ 'a' and 'b' }} {{ '' and 'b' }} {{ not '' }} {{ none or [] }} {{ [] or {} }} {{ 1 and 0 }} {{ not not 3 }}", {}),
    ("truthiness", "{% for v in [0, 1, '', 'a', [], [0], {}, {'a': 1}, none, 0.0, 0.5, true, false] %}{{ 'T' if v else 'F' }}{% endfor %}", {}),
    ("ternary", "{{ 'y' if t else 'n' }} {{ 'y' if f else 'n' }} [{{ 'y' if f }}] {{ 1 if f else 2 if t else 3 }}", DATA),
    ("slicing", "{{ 'hello'[1:3] }} {{ 'hello'[::-1] }} {{ [1, 2, 3, 4][::2] }} {{ [1, 2, 3][-2:] }} {{ 'héllo'[1:3] }} [{{ 'abc'[5:] }}] {{ [1, 2, 3][:-1] }} {{ 'abcdef'[-1:-4:-1] }} {{ 'abcdef'[10:0:-2] }} {{ l[::-1] }} {{ (1, 2, 3)[1:] }}", DATA),
    ("subscripts", "{{ 'héllo'[1] }} {{ [1, 2, 3][-1] }} {{ d['a'] }} {{ d.a }} {{ l.0 }} {{ d.nested.x[2].y }} {{ d['nested']['x'][-1]['y'] }} [{{ l[10] }}] [{{ 'abc'[-4] }}]", DATA),
    ("literals_repr", "{{ {'a': 1, 'b': [1, 'x', none, true, 1.5]} }} {{ (1,) }} {{ () }} {{ [] }} {{ {} }} {{ (1, 'a') }} {{ [[], {}] }}", {}),
    ("string_repr", "{{ [\"it's\", 'say \"hi\"', 'both \\' \"', 'nl\\n', 'tab\\t', 'back\\\\slash', 'é', '\\x00', '\\x7f', '\\u00a0', '😀'] }}", {}),
    ("tuple_output", "{{ 1, 2 }}|{{ 'a', }}", {}),
    ("big_ints", "{{ big }} {{ big + 1 }} {{ 2 ** 62 }} {{ -big }}", DATA),
    ("dict_keys_mixed", "{{ {1: 'a', true: 'b', 1.0: 'c', 'x': 1} }} {{ {none: 1, (1, 2): 3} }}", {}),
    # --- undefined ---
    ("undef_print", "[{{ missing }}]|{{ missing is defined }}|{{ missing is undefined }}|{{ d.missing is defined }}", DATA),
    ("undef_default", "{{ missing | default('d') }} [{{ '' | default('d') }}] {{ '' | default('d', true) }} {{ none | d('x', boolean=true) }} {{ none | default('x') }} {{ missing | d }}", {}),
    ("undef_attr_of_dict", "[{{ d.missing }}][{{ d['missing'] }}][{{ n.x }}][{{ 'abc'.nope }}][{{ l.nope }}]", DATA),
    ("undef_attr_chain_error", "{{ d.missing.x }}", DATA),
    ("undef_name_attr_error", "{{ missing.x }}", {}),
    ("undef_none_chain_error", "{{ n.x.y }}", DATA),
    ("undef_loop", "{% for x in missing %}a{% else %}empty{% endfor %}", {}),
    ("undef_filters", "{{ missing | length }}|{{ missing | upper }}|{{ missing | trim }}|{{ missing | list }}|{{ missing | first }}|{{ missing | string }}|{{ missing | join(',') }}|{{ missing | int }}|{{ missing | float }}|{{ missing | items | list }}|{{ missing | select | list }}", {}),
    ("undef_concat", "{{ missing ~ 'a' }}|{{ 'a' ~ missing }}", {}),
    ("undef_add_error", "{{ missing + 'a' }}", {}),
    ("undef_radd_error", "{{ 'a' + missing }}", {}),
    ("undef_if", "{% if missing %}y{% else %}n{% endif %}{% if not missing %}!{% endif %}", {}),
    ("undef_eq", "{{ missing == missing }} {{ missing == none }} {{ missing != 1 }}", {}),
    ("undef_in_error", "{{ 'a' in missing }}", {}),
    ("undef_tojson_error", "{{ missing | tojson }}", {}),
    ("undef_call_error", "{{ missing() }}", {}),
    ("undef_method_error", "{{ 'abc'.nope() }}", {}),
    ("undef_index_error", "{{ missing[0] }}", {}),
    ("undef_list_element", "[{{ l[5] }}]", DATA),
    ("undef_list_element_attr_error", "{{ l[5].q }}", DATA),
    ("undef_compare_error", "{{ missing < 1 }}", {}),
    ("undef_tests", "{{ missing is iterable }} {{ missing is sequence }} {{ missing is none }} {{ missing is string }} {{ missing is mapping }}", {}),
    # --- statements ---
    ("for_loop_vars", "{% for x in 'abc' %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.depth }}{{ loop.depth0 }}|{% endfor %}", {}),
    ("for_prev_next", "{% for x in [1, 2, 3] %}[{{ loop.previtem }}-{{ loop.nextitem }}]{% endfor %}", {}),
    ("for_cycle", "{% for x in range(5) %}{{ loop.cycle('a', 'b', 'c') }}{% endfor %}", {}),
    ("for_changed", "{% for x in [1, 1, 2, 2, 1] %}{% if loop.changed(x) %}{{ x }}{% endif %}{% endfor %}", {}),
    ("for_else", "{% for x in [] %}{{ x }}{% else %}none{% endfor %}|{% for x in [1] %}{{ x }}{% else %}none{% endfor %}", {}),
    ("for_filter", "{% for x in range(10) if x is odd %}{{ x }}{{ loop.index }}{{ loop.last }},{% else %}no{% endfor %}", {}),
    ("for_filter_empty", "{% for x in range(3) if x > 5 %}{{ x }}{% else %}empty{% endfor %}", {}),
    ("for_unpack", "{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }};{% endfor %}{% for a, b in [[1, 2], (3, 4), 'xy'] %}{{ a }}{{ b }}{% endfor %}", {}),
    ("for_dict_keys", "{% for k in {'b': 1, 'a': 2} %}{{ k }}{% endfor %}", {}),
    ("for_nested_unpack", "{% for a, (b, c) in [(1, (2, 3)), (4, [5, 6])] %}{{ a }}{{ b }}{{ c }}{% endfor %}", {}),
    ("for_unpack_error", "{% for a, b in [[1, 2, 3]] %}{% endfor %}", {}),
    ("for_unpack_short_error", "{% for a, b, c in [[1, 2]] %}{% endfor %}", {}),
    ("for_break_continue", "{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 5 %}{% break %}{% endif %}{{ x }}{% endfor %}", {}),
    ("for_nested_loops", "{% for i in range(3) %}{% for j in range(i) %}{{ i }}{{ j }}{{ loop.index }} {% endfor %}{{ loop.index }}|{% endfor %}", {}),
    ("for_over_string", "{% for c in 'héé' %}[{{ c }}]{% endfor %}", {}),
    ("for_over_none_error", "{% for x in n %}{% endfor %}", DATA),
    ("for_over_int_error", "{% for x in 3 %}{% endfor %}", {}),
    ("scope_loop_set", "{% set x = 0 %}{% for i in [1, 2] %}{% set x = x + i %}[{{ x }}]{% endfor %}{{ x }}", {}),
    ("scope_loop_fresh_iteration", "{% for i in [1, 2, 3] %}[{{ y }}]{% set y = i %}{% endfor %}[{{ y }}]", {"y": 0}),
    ("scope_if_leaks", "{% if true %}{% set z = 3 %}{% endif %}{{ z }}", {}),
    ("scope_loop_var_gone", "{% for i in [1] %}{% endfor %}[{{ i }}]", {}),
    ("scope_shadow_context", "{% set messages = messages[1:] %}{{ messages | length }}", {"messages": [1, 2, 3]}),
    ("namespace_basic", "{% set ns = namespace(total=0, seen=[]) %}{% for i in [1, 2, 3] %}{% set ns.total = ns.total + i %}{% endfor %}{{ ns.total }} {{ ns.seen }}", {}),
    ("namespace_init", "{% set ns = namespace({'a': 1}, b=2) %}{{ ns.a }}{{ ns.b }}{{ ns['a'] }}[{{ ns.c }}]", {}),
    ("namespace_non_ns_error", "{% set x = {} %}{% set x.a = 2 %}", {}),
    ("set_tuple", "{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set t = 1, 2 %}{{ t }}{% set (c, d) = [3, 4] %}{{ c }}{{ d }}", {}),
    ("set_block", "{% set x %}  hello {{ 1 + 1 }}  {% endset %}[{{ x }}]{% set y | upper | trim %}  abc  {% endset %}[{{ y }}]", {}),
    ("if_chain", "{% for v in [1, 2, 3, 4] %}{% if v == 1 %}one{% elif v == 2 %}two{% elif v == 3 %}three{% else %}many{% endif %},{% endfor %}", {}),
    ("if_colon", "{% if true: %}y{% endif %}", {}),
    ("macro_defaults", "{% macro greet(name, punct='!') %}Hello {{ name }}{{ punct }}{% endmacro %}{{ greet('A') }} {{ greet('B', '?') }} {{ greet(name='C', punct='.') }} {{ greet(punct=':', name='D') }}", {}),
    ("macro_varargs_kwargs", "{% macro m(a) %}{{ a }}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, 2, 3, x=4) }}|{{ m(1) }}", {}),
    ("macro_missing_param", "{% macro m(a, b) %}[{{ a }}][{{ b }}][{{ b is defined }}]{% endmacro %}{{ m(1) }}", {}),
    ("macro_too_many_error", "{% macro m(a) %}{{ a }}{% endmacro %}{{ m(1, 2) }}", {}),
    ("macro_unknown_kwarg_error", "{% macro m(a) %}{{ a }}{% endmacro %}{{ m(b=1) }}", {}),
    ("macro_duplicate_arg_error", "{% macro m(a) %}{{ a }}{% endmacro %}{{ m(1, a=2) }}", {}),
    ("macro_recursion", "{% macro f(n) %}{% if n > 0 %}{{ n }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(5) }}", {}),
    ("macro_returns_string", "{% macro m() %}abc{% endmacro %}{{ m() | length }}{{ m() | upper }}{{ m() ~ m() }}", {}),
    ("macro_late_binding", "{% macro m() %}{{ q }}{% endmacro %}{% set q = 1 %}{{ m() }}{% set q = 2 %}{{ m() }}", {}),
    ("macro_default_uses_param", "{% macro m(a, b=a * 2) %}{{ a }}-{{ b }}{% endmacro %}{{ m(3) }}", {}),
    ("macro_in_loop", "{% for i in [1, 2] %}{% macro m() %}<{{ i }}>{% endmacro %}{{ m() }}{% endfor %}", {}),
    ("macro_whitespace", "{%- macro item(x) -%}\n  <{{ x }}>\n{%- endmacro -%}\n{{ item(1) }}\n{{ item(2) }}\n", {}),
    ("call_block", "{% macro wrap() %}<{{ caller() }}>{% endmacro %}{% call wrap() %}inner{% endcall %}", {}),
    ("call_block_args", "{% macro each(items) %}{% for i in items %}{{ caller(i) }}{% endfor %}{% endmacro %}{% call(x) each([1, 2]) %}[{{ x }}]{% endcall %}", {}),
    ("filter_block", "{% filter upper %}hello {{ 'x' }}{% endfilter %}|{% filter trim | replace('a', 'b') %}  aaa  {% endfilter %}", {}),
    ("with_block", "{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}[{{ a }}]", {}),
    ("generation_tag", "A{% generation %}gen {{ 1 }}{% endgeneration %}B", {}),
    ("recursive_loop", "{% for item in tree recursive %}{{ item.name }}{{ loop.depth }}{% if item.children %}({{ loop(item.children) }}){% endif %}{% endfor %}", DATA),
    # --- filters ---
    ("f_trim", "[{{ '  a b  ' | trim }}][{{ 'xxaxx' | trim('x') }}][{{ '\\n\\t a \\u3000' | trim }}][{{ 5 | trim }}]", {}),
    ("f_case", "{{ 'hello wORLD-foo(bar) x_y' | title }} {{ \"they're\" | title }} {{ 'hELLO wORLD' | capitalize }} {{ 'ünïcode ß é' | upper }} {{ 'ÀÉÎ ΣΑ' | lower }} {{ 'abc' | upper }}", {}),
    ("f_replace", "{{ 'aaa' | replace('a', 'b') }} {{ 'aaa' | replace('a', 'b', 2) }} {{ 'abc' | replace('', '-') }} {{ 123 | replace(2, 9) }} {{ 'a.b.c' | replace('.', '') }}", {}),
    ("f_join", "{{ [1, 2, 3] | join(', ') }} {{ 'abc' | join('-') }} {{ users | join(',', attribute='name') }} {{ [] | join('x') }} {{ [none, true] | join }}", DATA),
    ("f_length", "{{ 'héllo' | length }} {{ [1, 2] | count }} {{ {'a': 1} | length }} {{ '' | length }} {{ (1, 2, 3) | length }}", {}),
    ("f_length_error", "{{ 5 | length }}", {}),
    ("f_first_last", "{{ [1, 2, 3] | first }} {{ [1, 2, 3] | last }} {{ 'abc' | first }} {{ 'abc' | last }} [{{ [] | first }}] {{ {'k': 1, 'j': 2} | first }} {{ {'k': 1, 'j': 2} | last }}", {}),
    ("f_list", "{{ 'abc' | list }} {{ {'a': 1, 'b': 2} | list }} {{ (1, 2) | list }} {{ range(3) | list }}", {}),
    ("f_string_int_float", "{{ 12 | string }} {{ '12' | int + 1 }} {{ '3.7' | int }} {{ 'x' | int }} {{ 'x' | int(5) }} {{ '0x1A' | int(base=16) }} {{ '1A' | int(0, 16) }} {{ 3.9 | int }} {{ -3.9 | int }} {{ '2.5' | float }} {{ 'a' | float }} {{ 2 | float }} {{ true | int }} {{ ' 42 ' | int }} {{ '1_000' | int }} {{ 'inf' | float }} {{ none | int }} {{ none | string }}", {}),
    ("f_abs_round", "{{ -3 | abs }} {{ -2.5 | abs }} {{ 2.5 | round }} {{ 3.5 | round }} {{ 2.675 | round(2) }} {{ 2.1 | round(method='ceil') }} {{ 2.9 | round(method='floor') }} {{ 7 | round }} {{ 1234.5678 | round(-2) }} {{ 1.25 | round(1) }} {{ -0.5 | round }} {{ 0.125 | round(2, 'floor') }}", {}),
    ("f_map", "{{ ['a', 'b'] | map('upper') | join }} {{ [{'x': 1}, {'x': 2}] | map(attribute='x') | list }} {{ [{'x': 1}, {}] | map(attribute='x', default=0) | list }} {{ [' a', 'b '] | map('trim') | list }} {{ [[1, 2], [3]] | map('length') | list }} {{ ['a', 'b'] | map('replace', 'a', 'z') | list }} {{ users | map(attribute='name') | map('capitalize') | join('/') }} {{ [] | map('upper') | list }}", DATA),
    ("f_map_nested_attr", "{{ [{'a': {'b': [7, 8]}}] | map(attribute='a.b.1') | list }}", {}),
    ("f_select_reject", "{{ [1, 2, 3, 4] | select('odd') | list }} {{ [1, 2, 3, 4] | reject('even') | list }} {{ [0, 1, '', 'a', none] | select | list }} {{ [0, 1, '', 'a'] | reject | list }} {{ [1, 2, 3] | select('>', 1) | list }} {{ ['a', 'b'] | select('equalto', 'a') | list }} {{ [1, 2, 3] | select('in', [1, 3]) | list }} {{ ['a', 1, none] | select('string') | list }} {{ [1, 2, 3] | select('divisibleby', 3) | list }}", {}),
    ("f_selectattr", "{{ users | selectattr('active') | map(attribute='name') | join(',') }} {{ users | rejectattr('active') | map(attribute='name') | join(',') }} {{ users | selectattr('role', 'equalto', 'admin') | list | length }} {{ users | selectattr('age', 'gt', 28) | map(attribute='name') | list }} {{ users | selectattr('missing', 'defined') | list }}", DATA),
    ("f_items_dictsort", "{{ {'b': 2, 'a': 1} | items | list }} {{ {'b': 2, 'A': 1, 'c': 0} | dictsort }} {{ {'b': 2, 'a': 1, 'c': 2} | dictsort(by='value', reverse=true) }} {{ {'b': 1, 'A': 2} | dictsort(case_sensitive=true) }} {{ {'b': 1, 'A': 2} | dictsort(false, 'value') }}", {}),
    ("f_items_error", "{{ [1] | items | list }}", {}),
    ("f_unique", "{{ [1, 2, 1, 3] | unique | list }} {{ ['a', 'A', 'b'] | unique | list }} {{ ['a', 'A'] | unique(case_sensitive=true) | list }} {{ users | unique(attribute='role') | map(attribute='name') | list }} {{ 'abcab' | unique | list }}", DATA),
    ("f_sum_min_max", "{{ [1, 2, 3] | sum }} {{ [1.5, 2] | sum }} {{ users | sum(attribute='age') }} {{ [3, 1, 2] | min }} {{ [3, 1, 2] | max }} {{ ['b', 'A', 'c'] | min }} {{ ['b', 'A', 'c'] | max }} {{ ['b', 'A', 'c'] | max(case_sensitive=true) }} [{{ [] | max }}] {{ [[1], [2]] | sum(start=[]) }} {{ users | min(attribute='age') }} {{ [1, 1.0, true] | max }}", DATA),
    ("f_sort_reverse", "{{ [3, 1, 2] | sort }} {{ [3, 1, 2] | sort(reverse=true) }} {{ ['b', 'A', 'c', 'a'] | sort }} {{ ['b', 'A', 'c', 'a'] | sort(case_sensitive=true) }} {{ users | sort(attribute='name') | map(attribute='name') | join }} {{ users | sort(attribute='role,age') | map(attribute='name') | join }} {{ 'abc' | reverse }} {{ [1, 2] | reverse | list }} {{ 'héllo' | reverse }} {{ {'a': 1, 'b': 2} | reverse | list }}", DATA),
    ("f_sort_mixed_error", "{{ [1, 'a'] | sort }}", {}),
    ("f_sort_equal_keys", "{{ [none, none] | sort }} {{ [a, b] | sort }} {{ [[1], [1]] | sort }} {{ users | sort(attribute='missing') | length }}", DATA),
    ("f_sort_none_mixed_error", "{{ [none, 1] | sort }}", {}),
    ("f_batch_slice", "{{ range(7) | batch(3) | list }} {{ range(7) | batch(3, 'x') | list }} {{ range(7) | slice(3) | list }} {{ range(7) | slice(3, 0) | list }}", {}),
    ("f_indent", "[{{ 'a\\nb\\n\\nc' | indent }}]|[{{ 'a\\nb' | indent(2, true) }}]|[{{ 'a\\n\\nb' | indent(2, blank=true) }}]|[{{ 'a\\nb' | indent('> ') }}]|[{{ 'a\\r\\nb\\n' | indent(1) }}]|[{{ '' | indent(2, true) }}]", {}),
    ("f_center", "[{{ 'ab' | center(7) }}] [{{ 'abc' | center(8) }}] [{{ 'abcd' | center(2) }}]", {}),
    ("f_escape_safe", "{{ '<a href=\"x\">&\\'</a>' | e }} {{ 5 | safe }} {{ '<b>' | safe }} {{ '<>' | forceescape }} {{ [1] | safe | length }}", {}),
    ("f_wordcount_truncate", "{{ 'hello big, world!' | wordcount }} {{ 'foo bar baz qux' | truncate(9) }} {{ 'foo bar baz qux' | truncate(9, true) }} {{ 'foo bar baz qux quux corge' | truncate(11, false, '..', 0) }} {{ 'short' | truncate(3, leeway=5) }} {{ 'héllo wörld' | wordcount }}", {}),
    ("f_format", "{{ '%s-%d' | format('a', 3) }} {{ '%(x)s!' | format(x=1) }} {{ '%.2f|%5s|%-5s|%05d|%x|%X|%o|%r|%c|%%|%+d|% d|%e|%g' % (3.14159, 'ab', 'cd', 42, 255, 255, 8, 'q', 65, 5, 5, 12345.678, 0.00001) }} {{ '%s' % none }} {{ '%s and %s' % ('a', [1]) }} {{ '%d' % 3.9 }} {{ '%s' % {'k': 1} }} {{ '%(k)s' % {'k': 2} }} {{ '%-6.2f|' % 2.5 }} {{ '%x' % -255 }}", {}),
    ("f_format_error", "{{ '%s %s' % ('a',) }}", {}),
    ("f_format_extra_error", "{{ '%s' % ('a', 'b') }}", {}),
    ("f_attr", "{{ namespace(a=5) | attr('a') }} [{{ {'a': 1} | attr('a') }}] {{ {'a': 1} | attr('keys') is callable }}", {}),
    ("f_tojson", "{{ x | tojson }}", DATA),
    ("f_tojson_indent", "{{ x | tojson(indent=2) }}", DATA),
    ("f_tojson_indent_str", "{{ x.nested | tojson(indent='\\t') }}", DATA),
    ("f_tojson_indent0", "{{ x.nested | tojson(indent=0) }}", DATA),
    ("f_tojson_ascii", "{{ x | tojson(ensure_ascii=true) }}", DATA),
    ("f_tojson_separators", "{{ x | tojson(separators=(',', ':')) }}|{{ x.nested | tojson(indent=2, separators=(', ', ': ')) }}", DATA),
    ("f_tojson_sort", "{{ x | tojson(sort_keys=true) }}|{{ users | tojson(sort_keys=true, indent=1) }}", DATA),
    ("f_tojson_types", "{{ (1, 'a') | tojson }} {{ {2: 'a', false: 'b', none: 'c', 1.5: 'd'} | tojson }} {{ (1e400) | tojson }} {{ -(1e400) | tojson }} {{ 'é' | tojson }} {{ '' | tojson }} {{ 1e22 | tojson }} {{ 12 | tojson }}", {}),
    ("f_tojson_ns_error", "{{ namespace(a=1) | tojson }}", {}),
    ("f_tojson_tuple_key_error", "{{ {(1, 2): 1} | tojson }}", {}),
    # Jinja's generator results: always true, one-shot, no len()
    ("gen_truthy", "{{ 'yes' if ([] | select) else 'no' }} {{ 'yes' if ([] | map('upper')) else 'no' }} {{ 'yes' if ([] | list) else 'no' }} {{ 'yes' if (missing | items) else 'no' }}", {}),
    ("gen_one_shot", "{% set g = [1, 2, 3] | map('string') %}{{ g | join(',') }}|{{ g | join(',') }}|{% set h = [1, 2] | select %}{% for x in h %}{{ x }}{% endfor %}{% for x in h %}{{ x }}{% else %}empty{% endfor %}", {}),
    ("gen_first_consumes", "{% set g = [1, 2, 3] | select %}{{ g | first }}{{ g | first }}{{ g | list }}{{ g | first }}", {}),
    ("gen_in_consumes", "{% set g = [1, 2, 3, 4] | select %}{{ 2 in g }}{{ g | list }}", {}),
    ("gen_length_error", "{{ [1] | select | length }}", {}),
    ("gen_last_error", "{{ [1] | select | last }}", {}),
    ("gen_reverse", "{{ [1, 2] | select | reverse }}{{ [1, 2] | reverse | join }}{{ [1, 2] | reverse | list }}", {}),
    ("gen_tests", "{{ [1] | select is iterable }}{{ [1] | select is sequence }}{{ [1] | unique is iterable }}", {}),
    ("gen_tojson_error", "{{ [1] | map('string') | tojson }}", {}),
    ("undef_callable", "{{ missing is callable }}{{ ''.name is callable }}", {}),
    ("undef_key_in_dict", "{{ missing in {'a': 1} }}{{ d.nope in d }}", DATA),
    ("slice_runtime_error", "{% set x = 10 %}{{ x[1:] }}", {}),
    ("slice_dict_error", "{{ d[1:] }}", DATA),
    ("slice_none_error", "{{ n[1:] }}", DATA),
    ("f_indent_list_error", "{{ [1] | indent }}", {}),
    ("f_indent_int_error", "{{ 5 | indent }}", {}),
    # --- tests ---
    ("t_numbers", "{{ 1 is odd }}{{ 2 is even }}{{ 6 is divisibleby 3 }}{{ 7 is divisibleby(3) }}{{ 3.0 is odd }}{{ -3 is odd }}", {}),
    ("t_singletons", "{{ none is none }}{{ 0 is none }}{{ true is boolean }}{{ 1 is boolean }}{{ true is true }}{{ 1 is true }}{{ false is false }}{{ 0 is false }}", {}),
    ("t_types", "{{ 1 is integer }}{{ true is integer }}{{ 1.0 is integer }}{{ 1.0 is float }}{{ 1 is number }}{{ 'a' is number }}{{ true is number }}{{ 'a' is string }}{{ 1 is string }}{{ {} is mapping }}{{ [] is mapping }}{{ [] is iterable }}{{ 'a' is iterable }}{{ 1 is iterable }}{{ {} is sequence }}{{ 'a' is sequence }}{{ 1 is sequence }}{{ (1,) is sequence }}{{ namespace() is mapping }}", {}),
    ("t_callable", "{{ range is callable }}{{ 'a' is callable }}{{ 'abc'.upper is callable }}{{ raise_exception is callable }}{{ none is callable }}", {}),
    ("t_case", "{{ 'abc' is lower }}{{ 'Abc' is lower }}{{ 'ABC' is upper }}{{ '123' is lower }}{{ 'ab1' is lower }}", {}),
    ("t_compare", "{{ 1 is eq 1 }}{{ 1 is equalto 2 }}{{ 1 is ne 2 }}{{ 1 is lt 2 }}{{ 2 is gt 1 }}{{ 2 is ge 2 }}{{ 2 is le 1 }}{{ 1 is in [1, 2] }}{{ 'a' is in 'cat' }}{{ 2 is greaterthan 1 }}{{ 1 is lessthan 1 }}", {}),
    ("t_filter_test", "{{ 'upper' is filter }}{{ 'nope' is filter }}{{ 'odd' is test }}{{ 'tojson' is filter }}", {}),
    ("t_sameas", "{{ t is sameas true }}{{ n is sameas none }}{{ l is sameas l }}{{ [] is sameas [] }}{{ 1 is sameas 1 }}", DATA),
    ("t_negated", "{{ x is not none }}{{ missing is not defined }}{{ 3 is not odd }}{{ not 3 is odd }}", DATA),
    ("t_escaped", "{{ 'a' is escaped }}", {}),
    # --- methods ---
    ("m_strip", "[{{ '  a  '.strip() }}][{{ 'xxaxx'.strip('x') }}][{{ 'xxaxx'.lstrip('x') }}][{{ 'xxaxx'.rstrip('x') }}][{{ '\\n\\na\\n'.lstrip('\\n') }}][{{ '\\u3000a\\xa0'.strip() }}][{{ 'abcba'.strip('ab') }}][{{ 'éaé'.strip('é') }}]", {}),
    ("m_split", "{{ 'a,b,,c'.split(',') }} {{ ' a  b c '.split() }} {{ 'a,b,c'.split(',', 1) }} {{ 'a,b,c'.rsplit(',', 1) }} {{ '  a b  c '.split(none, 1) }} {{ '  a b  c '.rsplit(none, 1) }} {{ 'a\\nb\\r\\nc\\n'.splitlines() }} {{ 'abc'.split('abc') }} {{ ''.split(',') }} {{ ''.split() }} {{ 'a</think>b</think>c'.split('</think>')[-1] }} {{ 'x y'.split(maxsplit=0) }} {{ 'a\\nb\\n'.splitlines(true) }}", {}),
    ("m_split_empty_sep_error", "{{ 'abc'.split('') }}", {}),
    ("m_starts_ends", "{{ 'hello'.startswith('he') }} {{ 'hello'.startswith(('x', 'h')) }} {{ 'hello'.endswith('lo') }} {{ 'hello'.endswith(('x', 'y')) }} {{ 'hello'.startswith('l', 2) }} {{ 'hello'.endswith('l', 0, 4) }} {{ 'héllo'.startswith('hé') }} {{ ''.startswith('') }}", {}),
    ("m_find", "{{ 'héllo'.find('l') }} {{ 'hello'.rfind('l') }} {{ 'hello'.find('z') }} {{ 'hello'.index('e') }} {{ 'hello'.count('l') }} {{ 'aaa'.count('') }} {{ 'hello'.find('l', 3) }} {{ 'hello'.rindex('l') }} {{ 'aaaa'.count('aa') }}", {}),
    ("m_index_error", "{{ 'hello'.index('z') }}", {}),
    ("m_misc", "{{ 'a b'.replace(' ', '_') }} {{ 'aaa'.replace('a', 'b', 1) }} {{ '-'.join(['a', 'b']) }} {{ 'x'.join('abc') }} {{ 'hello world'.title() }} {{ \"they're bill's\".title() }} {{ 'hello'.capitalize() }} {{ 'Hi'.swapcase() }} {{ 'ab'.upper() }} {{ 'AB'.lower() }}", {}),
    ("m_join_error", "{{ ', '.join([1, 2]) }}", {}),
    ("m_format", "{{ '{} and {}'.format('a', 'b') }} {{ '{0}{1}{0}'.format('x', 'y') }} {{ '{name}!'.format(name='n') }} {{ '{:>5}|{:<5}|{:^5}'.format('a', 'b', 'c') }} {{ '{:.2f}'.format(3.14159) }} {{ '{{}}{}'.format(1) }} {{ '{!r}'.format('a') }} {{ '{:05d}'.format(42) }} {{ '{:*^7}'.format('x') }} {{ '{0[0]}{0[1]}'.format('ab') }} {{ '{:x}{:b}'.format(255, 5) }} {{ '{}'.format(1.5) }} {{ '{:+d}'.format(3) }} {{ '{:.1%}'.format(0.25) }}", {}),
    ("m_justify", "[{{ 'ab'.center(6, '*') }}][{{ 'ab'.center(5) }}][{{ 'ab'.ljust(5) }}][{{ 'ab'.rjust(5, '.') }}][{{ '42'.zfill(5) }}][{{ '-42'.zfill(5) }}][{{ 'abc'.ljust(2) }}]", {}),
    ("m_prefix_partition", "{{ 'prefix_x'.removeprefix('prefix_') }} {{ 'x.txt'.removesuffix('.txt') }} {{ 'x'.removesuffix('') }} {{ 'a=b=c'.partition('=') }} {{ 'a=b=c'.rpartition('=') }} {{ 'abc'.partition('z') }} {{ 'abc'.rpartition('z') }}", {}),
    ("m_is", "{{ '123'.isdigit() }}{{ 'abc'.isalpha() }}{{ 'a1'.isalnum() }}{{ '  '.isspace() }}{{ ''.isspace() }}{{ 'abc'.islower() }}{{ 'ABC'.isupper() }}{{ 'a b'.isalpha() }}{{ ''.isdigit() }}{{ 'Ab'.islower() }}", {}),
    ("m_dict", "{{ d.get('a') }} {{ d.get('z') }} {{ d.get('z', 5) }} {{ d.keys() | list }} {{ d.values() | list | length }} {{ d.items() | list | first }} {{ d['items'] }} {{ d.items is callable }} {{ {'a': 1}.copy() }}", DATA),
    ("m_list", "{{ [1, 2, 3].index(2) }} {{ [1, 1, 2].count(1) }} {{ (1, 2, 1).count(1) }} {{ ['a', 'b'].index('b') }}", {}),
    ("m_list_index_error", "{{ [1].index(5) }}", {}),
    ("m_unknown_method_error", "{{ 'abc'.frobnicate() }}", {}),
    # --- globals ---
    ("g_range", "{{ range(5) | list }} {{ range(2, 5) | list }} {{ range(10, 0, -3) | list }} {{ range(0) | list }} {{ range(-3) | list }} {{ range(1, 10, 4) | list }} {{ range(5) | length }}", {}),
    ("g_range_step0_error", "{{ range(1, 2, 0) }}", {}),
    ("g_range_too_big_error", "{{ range(100001) | length }}", {}),
    ("g_range_max_ok", "{{ range(100000) | length }}", {}),
    ("g_dict", "{{ dict(a=1, b=2) }} {{ dict([('x', 1), ['y', 2]]) }} {{ dict({'k': 'v'}, z=0) }} {{ dict() }}", {}),
    ("g_cycler", "{% set c = cycler('a', 'b') %}{{ c.next() }}{{ c.next() }}{{ c.next() }}{{ c.current }}{{ c.reset() }}{{ c.next() }}", {}),
    ("g_joiner", "{% set j = joiner('|') %}{% for x in [1, 2, 3] %}{{ j() }}{{ x }}{% endfor %}{% set k = joiner() %}{{ k() }}{{ k() }}", {}),
    ("g_raise", "before{{ raise_exception('boom: ' ~ 1) }}after", {}),
    ("g_raise_in_loop", "{% for m in messages %}{% if m.role not in ['user', 'assistant'] %}{{ raise_exception('Conversation roles must be user or assistant, got ' + m.role) }}{% endif %}{% endfor %}", {"messages": [{"role": "user"}, {"role": "tool"}]}),
    ("g_strftime", "{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%Y-%m-%d %H:%M:%S') }}|{{ strftime_now('%A %B %j %I %p %y %a %w %U %W %V %G %u %e %C') }}|{{ strftime_now('%-d %-m %%') }}|{{ strftime_now('%c|%x|%X|%D|%F|%T|%R|%r|%h') }}", {}),
    ("g_strftime_defined", "{{ strftime_now is defined }}{{ raise_exception is defined }}{{ range is defined }}{{ lipsum is defined }}", {}),
    # --- errors found at parse time (Python raises TemplateSyntaxError) ---
    ("e_unknown_filter", "line1\n{{ x | nope }}", {}),
    ("e_unknown_test", "{{ x is frobbed }}", {}),
    ("e_unknown_tag", "{% frob %}", {}),
    ("e_unclosed_if", "{% if x %}a", {}),
    ("e_unexpected_end", "{% endfor %}", {}),
    ("e_wrong_end", "{% if x %}a{% endfor %}", {}),
    ("e_bad_expr", "{{ 1 + }}", {}),
    ("e_unclosed_string", "{{ 'abc }}", {}),
    ("e_unclosed_comment", "a {# x", {}),
    ("e_mismatched_bracket", "{{ (1, 2] }}", {}),
    ("e_unclosed_var", "{{ x ", {}),
    ("e_break_outside_loop", "{% break %}", {}),
    ("e_include", "{% include 'x.jinja' %}", {}),
    ("e_extends", "{% extends 'base' %}", {}),
    ("e_empty_output", "{{ }}", {}),
    ("e_assign_const", "{% set true = 1 %}", {}),
    # --- runtime errors ---
    ("r_add_int_str", "{{ 1 + 'a' }}", {}),
    ("r_sub_str", "{{ 'a' - 1 }}", {}),
    ("r_div_zero", "{{ 1 / 0 }}", {}),
    ("r_floordiv_zero", "{{ 1 // 0 }}", {}),
    ("r_mod_zero", "{{ 1 % 0 }}", {}),
    ("r_compare_types", "{{ [1] < 'a' }}", {}),
    ("r_call_int", "{{ 5() }}", {}),
    ("r_neg_str", "{{ -'a' }}", {}),
    ("r_str_in_int", "{{ 1 in 'abc' }}", {}),
    ("r_unhashable_key", "{{ {[1]: 2} }}", {}),
]


def semantic_cases():
    cases = []
    names = set()
    for name, template, context in SEMANTIC_CASES:
        assert name not in names, name
        names.add(name)
        case = {"name": name, "template": template, "context": context}
        case.update(render(template, context))
        cases.append(case)
    return cases


def write(path, payload):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(payload, f, ensure_ascii=False, indent=1)
        f.write("\n")


def compare(binary):
    """Renders every case with the C++ tool and prints the ones that differ."""
    now = NOW.strftime("%Y-%m-%d-%H-%M-%S")
    bad = 0
    all_cases = [("templates/" + c["template"] + ".jinja", c, c["template"] + "/" + c["conversation"]) for c in template_cases()]
    all_cases += [(None, c, c["name"]) for c in semantic_cases()]
    with tempfile.TemporaryDirectory() as tmp:
        for path, case, label in all_cases:
            tpath = os.path.join(HERE, path) if path else os.path.join(tmp, "t.jinja")
            if not path:
                with open(tpath, "w", encoding="utf-8") as f:
                    f.write(case["template"])
            cpath = os.path.join(tmp, "c.json")
            ctx = dict(case["context"])
            with open(cpath, "w", encoding="utf-8") as f:
                json.dump(ctx, f, ensure_ascii=False)
            res = subprocess.run([binary, tpath, cpath, now], capture_output=True)
            got = res.stdout.decode("utf-8", "replace")
            if "output" in case:
                if res.returncode != 0 or got != case["output"]:
                    bad += 1
                    print("DIFF %s\n  want %r\n  got  %r" % (label, case["output"], got))
            elif res.returncode == 0:
                bad += 1
                print("NOERR %s: python error %r\n  got %r" % (label, case["error"], got))
    print("%d of %d cases differ" % (bad, len(all_cases)))
    return bad


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--compare":
        sys.exit(1 if compare(sys.argv[2]) else 0)
    meta = {"generator": "make_expected.py", "jinja2": jinja2.__version__, "now": NOW.strftime("%Y-%m-%d %H:%M:%S")}
    write(os.path.join(HERE, "expected_templates.json"), dict(meta, cases=template_cases()))
    write(os.path.join(HERE, "expected_semantics.json"), dict(meta, cases=semantic_cases()))


if __name__ == "__main__":
    main()
