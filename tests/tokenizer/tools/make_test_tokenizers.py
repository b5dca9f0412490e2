#!/usr/bin/env python3
"""Writes the small hand-made tokenizers of tests/tokenizer/data/: the styles none of the four real fixtures use
(Llama-2 byte fallback with and without Metaspace, GPT-2/RoBERTa byte level with a prefix space, a BERT-like BPE
with continuing_subword_prefix/end_of_word_suffix, and a file that exercises the rarer pre-tokenizers and
added-token options). Their merges are learned here from a small corpus with a plain BPE trainer; the expected ids
come from Hugging Face's own library (make_refs.js). Run from the repository root."""
import collections, json, os, re

CORPUS = []
refs = json.load(open(os.environ.get("MMFP4_SHARED_DIR", "../shared") + "/fixtures/tokenizers/token_refs_public.json"))
CORPUS += [e["text"] for e in refs["tiny"]]
CORPUS += [open("/usr/share/common-licenses/Apache-2.0").read()[:30000]]
WORDS = collections.Counter(w for t in CORPUS for w in re.findall(r"\S+", t))


def train(words, n_merges):
    """words: {tuple(symbols): count}. Returns the merges, most frequent pair first (ties: smallest pair)."""
    words = {tuple(w): c for w, c in words.items()}
    merges = []
    for _ in range(n_merges):
        pairs = collections.Counter()
        for w, c in words.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] += c
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        a, b = best
        new = {}
        for w, c in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and w[i] == a and w[i + 1] == b:
                    out.append(merge_name(a, b))
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new[tuple(out)] = new.get(tuple(out), 0) + c
        words = new
    return merges


PREFIX = ""  # set while training the continuing-subword model


def merge_name(a, b):
    return a + (b[len(PREFIX):] if PREFIX and b.startswith(PREFIX) else b)


def byte_chars():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def vocab_from(symbols, merges, specials):
    vocab = {}
    for s in specials + sorted(set(symbols)) + [merge_name(a, b) for a, b in merges]:
        vocab.setdefault(s, len(vocab))
    return vocab


def added(id_, content, special=True, normalized=False, lstrip=False, rstrip=False, single_word=False):
    return {"id": id_, "content": content, "single_word": single_word, "lstrip": lstrip, "rstrip": rstrip,
            "normalized": normalized, "special": special}


def bpe(vocab, merges, **kw):
    m = {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None, "end_of_word_suffix": None,
         "fuse_unk": False, "byte_fallback": False, "ignore_merges": False, "vocab": vocab, "merges": merges}
    m.update(kw)
    return m


def write(name, tok, config=None):
    d = "tests/tokenizer/data/" + name
    os.makedirs(d, exist_ok=True)
    tok = {"version": "1.0", "truncation": None, "padding": None, **tok}
    json.dump(tok, open(d + "/tokenizer.json", "w"), ensure_ascii=False)
    if config is not None:
        json.dump(config, open(d + "/tokenizer_config.json", "w"), ensure_ascii=False)


def llama2():
    words = collections.Counter()
    for w, c in WORDS.items():
        words[("\u2581",) + tuple(w)] += c
    merges = train(words, 700)
    chars = [ch for w in words for ch in w]
    specials = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(256)]
    vocab = vocab_from(chars, merges, specials)
    tokens = [added(0, "<unk>"), added(1, "<s>"), added(2, "</s>")]
    template = {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                                         {"Sequence": {"id": "A", "type_id": 0}}],
                "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                         {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}}
    config = {"add_bos_token": True, "add_eos_token": False, "bos_token": "<s>", "eos_token": "</s>",
              "unk_token": "<unk>", "tokenizer_class": "LlamaTokenizer"}
    model = bpe(vocab, [a + " " + b for a, b in merges], unk_token="<unk>", fuse_unk=True, byte_fallback=True)
    # Legacy Llama-2 (SentencePiece converted): Prepend + Replace normalizer, no pre-tokenizer.
    write("llama2_legacy", {
        "added_tokens": tokens,
        "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "\u2581"},
                                                          {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
        "pre_tokenizer": None, "post_processor": template,
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "}, {"type": "ByteFallback"},
            {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": model}, config)
    # Newer conversions: a Metaspace pre-tokenizer that prepends only at the start of the input, a Metaspace
    # decoder; plus added tokens with lstrip/rstrip, a normalized one and a single_word one.
    tokens2 = tokens + [added(len(vocab), "<mask>", lstrip=True), added(len(vocab) + 1, "[SEP]", rstrip=True),
                        added(len(vocab) + 2, "hello", special=False, normalized=True, single_word=True),
                        added(len(vocab) + 3, "<eot>", lstrip=True, rstrip=True)]
    write("llama2_metaspace", {
        "added_tokens": tokens2, "normalizer": None,
        "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": False},
        "post_processor": template,
        "decoder": {"type": "Sequence", "decoders": [{"type": "ByteFallback"},
                                                     {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": False}]},
        "model": model}, config)


def byte_level_models():
    bc = byte_chars()
    words = collections.Counter()
    for w, c in WORDS.items():
        words[tuple(bc[b] for b in (" " + w).encode())] += c
    merges = train(words, 700)
    vocab = vocab_from(list(bc.values()), merges, ["<|endoftext|>", "<s>", "</s>", "<pad>", "<mask>"])
    tokens = [added(0, "<|endoftext|>"), added(1, "<s>"), added(2, "</s>"), added(3, "<pad>"),
              added(4, "<mask>", lstrip=True)]
    # GPT-2 / RoBERTa: ByteLevel with its own regex and a prefix space, Roberta post-processor, merges as pairs.
    write("roberta_style", {
        "added_tokens": tokens, "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "post_processor": {"type": "RobertaProcessing", "sep": ["</s>", 2], "cls": ["<s>", 1], "trim_offsets": True,
                           "add_prefix_space": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": bpe(vocab, [[a, b] for a, b in merges])}, {"bos_token": "<s>", "eos_token": "</s>"})
    # The rarer components: normalizers NFKC, Lowercase, Strip, Replace (regex); Split with literal and regex
    # patterns in several behaviors (one inverted), Punctuation, Digits, CharDelimiterSplit; ignore_merges;
    # normalized added tokens; a Sequence post-processor.
    write("components", {
        "added_tokens": tokens + [added(len(vocab), "Ｈｅｌｌｏ", special=False, normalized=True),
                                  added(len(vocab) + 1, "[SEP]", rstrip=True, lstrip=True)],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "NFKC"}, {"type": "Lowercase"}, {"type": "Strip", "strip_left": True, "strip_right": True},
            {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}]},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"String": "--"}, "behavior": "MergedWithPrevious", "invert": False},
            {"type": "Split", "pattern": {"Regex": "[a-z]+"}, "behavior": "Isolated", "invert": True},
            {"type": "CharDelimiterSplit", "delimiter": "|"},
            {"type": "Punctuation", "behavior": "Contiguous"},
            {"type": "Digits", "individual_digits": False},
            {"type": "Split", "pattern": {"Regex": "\\s"}, "behavior": "MergedWithNext", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
        "post_processor": {"type": "Sequence", "processors": [
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
            {"type": "BertProcessing", "sep": ["</s>", 2], "cls": ["<s>", 1]}]},
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
        "model": bpe(vocab, [a + " " + b for a, b in merges], ignore_merges=True)}, None)


def subword_model():
    global PREFIX
    PREFIX = "##"
    words = collections.Counter()
    for w, c in WORDS.items():
        w = w.lower()
        syms = [w[0]] + ["##" + ch for ch in w[1:]]
        syms[-1] += "</w>"
        words[tuple(syms)] += c
    merges = train(words, 600)
    symbols = set()
    for w in words:
        for ch in w:
            base = ch[2:] if ch.startswith("##") else ch
            base = base[:-4] if base.endswith("</w>") else base
            symbols.update([base, "##" + base, base + "</w>", "##" + base + "</w>"])
    vocab = vocab_from(sorted(symbols), merges, ["[UNK]", "[CLS]", "[SEP]"])
    PREFIX = ""
    tokens = [added(0, "[UNK]"), added(1, "[CLS]"), added(2, "[SEP]")]
    write("subword_suffix", {
        "added_tokens": tokens,
        "normalizer": {"type": "Sequence", "normalizers": [{"type": "NFD"}, {"type": "StripAccents"}, {"type": "Lowercase"}]},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Whitespace"}, {"type": "Digits", "individual_digits": True}]},
        "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", 2], "cls": ["[CLS]", 1]},
        "decoder": {"type": "BPEDecoder", "suffix": "</w>"},
        "model": bpe(vocab, [[a, b] for a, b in merges], unk_token="[UNK]", continuing_subword_prefix="##",
                     end_of_word_suffix="</w>")}, None)


llama2()
byte_level_models()
subword_model()
